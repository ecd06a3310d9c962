"""Every operation of the pinned spec is generated, with the right method and URL."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from generator.pipeline import OVERLAY, spec_operations
from generator.preprocess import load_overlay, operation_key

FUNCTIONS = ("sync", "sync_detailed", "asyncio", "asyncio_detailed")


def _normalized(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_spec_operation_is_generated(pinned_spec: dict[str, Any]) -> None:
    overlay = load_overlay(OVERLAY)
    operations = spec_operations(pinned_spec)
    generated = []
    for key in operations:
        name = overlay.operations[operation_key(*key.split(" ", 1))]
        module = importlib.import_module(f"ksef_client._generated.api.{name.tag}.{name.operation_id}")
        assert all(callable(getattr(module, f, None)) for f in FUNCTIONS), key
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        method, path = key.split(" ", 1)
        url = re.search(r'"url": "([^"]+)"', source)
        assert f'"method": "{method.lower()}"' in source, key
        assert url is not None and _normalized(url.group(1)) == _normalized(path), key
        generated.append(key)
    print(f"operations generated: {len(generated)}/{len(operations)}")
    assert len(generated) == len(operations) == 83


def test_overlay_names_are_unique() -> None:
    names = [str(n) for n in load_overlay(OVERLAY).operations.values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("module", "kind"),
    [
        ("sessions_status.get_session_upo", "response"),
        ("sessions_status.get_invoice_upo_by_ksef_number", "response"),
        ("sessions_status.get_invoice_upo_by_reference_number", "response"),
        ("invoices.get_invoice", "response"),
        ("auth.authenticate_xades_signature", "request"),
    ],
)
def test_xml_operations_carry_bytes(module: str, kind: str) -> None:
    source = importlib.import_module(f"ksef_client._generated.api.{module}").__file__ or ""
    text = Path(source).read_text(encoding="utf-8")
    if kind == "response":
        assert "File(payload=BytesIO(response.content))" in text
    else:
        assert 'headers["Content-Type"] = "application/xml"' in text
        assert "body: File" in text
