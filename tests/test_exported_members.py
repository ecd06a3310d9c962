"""``ksef_client.__all__`` is accurate: every name resolves, lazily imported or not, and every
documented name is in it."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ksef_client
from ksef_client import errors

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_name_resolves() -> None:
    for name in ksef_client.__all__:
        assert getattr(ksef_client, name) is not None
    with pytest.raises(AttributeError):
        ksef_client.NoSuchThing  # noqa: B018


def test_import_does_not_load_the_client_or_the_generated_code() -> None:
    code = "import sys, ksef_client; print(sorted(m for m in sys.modules if m.startswith('ksef_client')))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "ksef_client._client" not in loaded and "ksef_client._generated" not in loaded


@pytest.mark.parametrize("client", ["KSeF", "AsyncKSeF"])
def test_a_client_made_but_unused_loads_no_connection_code_nor_attrs(client: str) -> None:
    # Start-up (issue 18): the connection pool (httpcore, a TLS context), the generated client and
    # models (attrs) and the flows load on the first request, not when a client is made.
    code = (
        f"import sys; from ksef_client import {client}; {client}(base_url='http://x.invalid/v2', access_token='t'); "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('httpcore', 'attrs', 'attr', 'lxml', 'cryptography') "
        "or m in ('ksef_client._flows', 'ksef_client._generated.client', 'ksef_client._generated.types')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]", loaded


def _error_classes() -> set[str]:
    return {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.KSeFError) and not name.startswith("_")
    }


def test_every_error_is_in_the_tree_and_exported() -> None:
    tree = set(re.findall(r"\b([A-Z][A-Za-z]*Error)\b", errors.__doc__ or ""))
    assert tree == _error_classes()
    assert _error_classes() <= set(ksef_client.__all__)


def test_every_documented_name_is_exported() -> None:
    """Each error the docs and the README name (in backticks) can be imported from ``ksef_client``."""
    documented: set[str] = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        documented |= set(re.findall(r"`([A-Z][A-Za-z]*Error)`", page.read_text(encoding="utf-8")))
    ours = documented & _error_classes()
    assert ours, "the docs name no errors: the pattern is wrong"
    assert ours <= set(ksef_client.__all__), sorted(ours - set(ksef_client.__all__))
    assert not {name for name in documented - ours if not hasattr(builtins, name)}
