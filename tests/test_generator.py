"""The generator pipeline: overlay naming, strictness, and every published spec version."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from generator.pipeline import OVERLAY, GenerationError, check_fast_paths, generate, spec_operations
from generator.preprocess import derive_operation_id, load_overlay, operation_key, preprocess
from tests.conftest import KSEF_DATA, SPEC_FILE

ROOT = Path(__file__).resolve().parent.parent


def _with_extra_operation(spec: dict[str, Any]) -> dict[str, Any]:
    extended = copy.deepcopy(spec)
    extended["paths"]["/invoices/{ksefNumber}/pdfPreview"] = {
        "get": {
            "tags": ["Pobieranie faktur"],
            "parameters": [{"name": "ksefNumber", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}},
        }
    }
    return extended


def test_derived_names_are_deterministic_snake_case() -> None:
    assert derive_operation_id("GET", "/invoices/{ksefNumber}/pdfPreview") == "get_invoices_ksef_number_pdf_preview"
    assert derive_operation_id("get", "/api/v2/invoices/{ksefNumber}/pdfPreview") == (
        "get_invoices_ksef_number_pdf_preview"
    )


def test_legacy_prefix_is_ignored_when_naming() -> None:
    assert operation_key("post", "/api/v2/sessions/online") == "POST /sessions/online"


def test_preprocess_names_unknown_operations_from_method_and_path(pinned_spec: dict[str, Any]) -> None:
    result = preprocess(_with_extra_operation(pinned_spec), load_overlay(OVERLAY))
    assert result.unnamed == ["GET /invoices/{ksefNumber}/pdfPreview"]
    operation = result.spec["paths"]["/invoices/{ksefNumber}/pdfPreview"]["get"]
    assert operation["operationId"] == "get_invoices_ksef_number_pdf_preview"
    assert operation["tags"] == ["invoices"]
    assert "operationId" not in pinned_spec["paths"]["/sessions"]["get"]  # input untouched


def test_strict_generation_lists_unnamed_operations(pinned_spec: dict[str, Any], tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(_with_extra_operation(pinned_spec)), encoding="utf-8")
    with pytest.raises(GenerationError, match=r"GET /invoices/\{ksefNumber\}/pdfPreview"):
        generate(spec_file, tmp_path / "out", strict=True)


def test_cli_warns_and_generates_unnamed_operations(pinned_spec: dict[str, Any], tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(_with_extra_operation(pinned_spec)), encoding="utf-8")
    out = tmp_path / "pkg"
    proc = subprocess.run(
        [sys.executable, "-m", "generator", str(spec_file), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: operations named from method and path" in proc.stderr
    assert "84 operations generated" in proc.stderr
    assert (out / "api" / "invoices" / "get_invoices_ksef_number_pdf_preview.py").is_file()


def test_cli_fails_with_a_clear_message_on_a_bad_spec(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text('{"openapi": "3.0.4"}', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "generator", str(spec_file), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("generator: error:")


def _history_specs() -> list[Path]:
    return sorted((KSEF_DATA / "openapi" / "history").glob("ksef-openapi-*.json"))


@pytest.mark.slow
@pytest.mark.parametrize("spec_file", _history_specs(), ids=lambda p: p.stem.removeprefix("ksef-openapi-"))
def test_every_published_spec_generates(spec_file: Path, tmp_path: Path) -> None:
    report = generate(spec_file, tmp_path / "pkg")
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    assert len(report.operations) == len(spec_operations(spec)) >= 74
    assert not [w for w in report.warnings if "named from method and path" in w]
    assert (tmp_path / "pkg" / "api" / "sessions_status" / "get_session_upo.py").is_file()


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    generate(SPEC_FILE, tmp_path / "pkg")
    committed = ROOT / "ksef_client" / "_generated"
    fresh = {p.relative_to(tmp_path / "pkg"): p.read_bytes() for p in (tmp_path / "pkg").rglob("*.py")}
    current = {p.relative_to(committed): p.read_bytes() for p in committed.rglob("*.py")}
    assert fresh == current


GENERATED = ROOT / "ksef_client" / "_generated"


def test_the_generated_client_keeps_the_templates_fast_paths() -> None:
    assert check_fast_paths(GENERATED) == []


@pytest.mark.parametrize(
    ("path", "fast", "slow", "reported"),
    [
        ("api/sessions_status/get_session_status.py", "json_loads(response.content)", "response.json()", "json_loads"),
        ("models/session_status_response.py", "= _StatusInfo_from_dict(", "= StatusInfo.from_dict(", "unbound"),
        ("models/session_status_response.py", "_object_new(cls)", "cls()", "_object_new"),
        ("types.py", "_fast_loads(content)", "_json_loads(content)", "orjson"),
        (
            "models/session_invoice_status_response.py",
            "_enum_from_value(InvoicingMode)",
            "InvoicingMode.from_value",
            "enum_from_value",
        ),
        ("models/session_invoice_status_response.py", "@_additional_properties_on_demand\n", "", "on demand"),
    ],
)
def test_a_lost_fast_path_fails_the_check(path: str, fast: str, slow: str, reported: str, tmp_path: Path) -> None:
    """What an openapi-python-client upgrade could do silently: render text the templates' string
    replacements no longer match. The code would still work, only slower; the check says so."""
    copy_ = tmp_path / "pkg"
    shutil.copytree(GENERATED, copy_)
    target = copy_ / path
    text = target.read_text(encoding="utf-8")
    assert fast in text
    target.write_text(text.replace(fast, slow), encoding="utf-8")
    broken = check_fast_paths(copy_)
    assert broken and reported in " ".join(broken)


def test_a_field_named_like_the_key_counts_fails_the_check(tmp_path: Path) -> None:
    # from_dict counts the keys of src_dict in `_keys` and the optional keys missing in `_missing`:
    # a field whose variable had either name (a future spec's "keys" or "missing") would break the
    # count of unknown keys silently. The check refuses the generated code then.
    copy_ = tmp_path / "pkg"
    shutil.copytree(GENERATED, copy_)
    target = copy_ / "models/session_invoice_status_response.py"
    text = target.read_text(encoding="utf-8")
    assert text.count("_acquisition_date") > 1
    target.write_text(text.replace("_acquisition_date", "_missing"), encoding="utf-8")
    broken = check_fast_paths(copy_)
    assert broken and "_keys or _missing" in " ".join(broken)


def test_repeat_safe_names_must_exist_in_a_strict_run(pinned_spec: dict[str, Any]) -> None:
    overlay = load_overlay(OVERLAY)
    names = {str(name) for name in preprocess(pinned_spec, overlay).names.values()}
    assert overlay.repeat_safe <= names
    assert "online_session.send_invoice" in overlay.repeat_safe
