"""The change report between published specs, and moving the pin."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from generator.code_usage import CodeIndex
from generator.preprocess import OperationName
from generator.spec_diff import Report, api_version, diff_specs
from generator.spec_update import update

ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ROOT / "generator" / "overlay.yaml"
SECTIONS = ("Breaking:", "Added:", "Changed:", "Descriptions changed (text only):")


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _section(text: str, title: str) -> list[str]:
    """The lines of one section of a rendered report (without the title)."""
    lines = text.splitlines()
    if title not in lines:
        return []
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return lines[start:end]


def _affects_after(text: str, needle: str) -> str:
    """The "affects:" line under the report line containing ``needle``."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if needle in line and not line.lstrip().startswith("affects"))
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return following if following.lstrip().startswith("affects:") else ""


@pytest.fixture(scope="module")
def move_2_9(ksef_data: Path) -> Report:
    """The real move of the pin: API 2.7.0 -> 2.9.0, tagged with this checkout's code."""
    old = _load(ksef_data / "openapi/history/ksef-openapi-2026-07-21.json")
    new = _load(ksef_data / "openapi/ksef-openapi.json")
    return diff_specs(old, new, OVERLAY, ROOT)


def test_from_2_6_1_to_2_7_0_the_collective_identifiers_arrive(ksef_data: Path) -> None:
    old = _load(ksef_data / "openapi/history/ksef-openapi-2026-07-09.json")
    new = _load(ksef_data / "openapi/history/ksef-openapi-2026-07-21.json")
    report = diff_specs(old, new, OVERLAY)
    assert (report.old_version, report.new_version) == ("2.6.1", "2.7.0")
    added = {c.where for c in report.of_kind("operation added")}
    assert {
        "POST /collective-identifiers",
        "POST /collective-identifiers/query",
        "GET /collective-identifiers/{collectiveIdentifierNumber}/invoices",
        "GET /collective-identifiers/ksef/{ksefNumber}",
    } <= added
    assert "TokenPermissionType.CollectiveIdentifierManage" in {c.where for c in report.of_kind("enum value added")}
    # The one break: test data's rate-limit override must now say the collective identifiers' limits.
    assert [c.where for c in report.breaking] == ["ApiRateLimitsOverride.collectiveIdentifier"]
    assert report.breaking[0].reaches == (("POST /testdata/rate-limits", "request"),)
    assert report.overlay_gaps == []
    assert "operation added: POST /collective-identifiers" in report.render()


def test_breaking_changes_are_marked_and_the_legacy_prefix_is_ignored(ksef_data: Path) -> None:
    old = _load(ksef_data / "openapi/history/ksef-openapi-2025-10-27.json")  # paths under /api/v2
    new = _load(ksef_data / "openapi/history/ksef-openapi-2026-07-09.json")
    report = diff_specs(old, new, OVERLAY)
    assert not report.of_kind("operation removed")  # same operations despite the prefix change
    breaking = {str(c) for c in report.breaking}
    assert "[BREAKING] enum value removed: InvoiceQueryFormType.RR" in breaking
    assert any(
        c.where == "PersonPermissionsGrantRequest.subjectDetails" and c.detail == "required"
        for c in report.breaking
        if ("POST /permissions/persons/grants", "request") in c.reaches
    )


def test_overlay_gaps_list_unnamed_operations(ksef_data: Path) -> None:
    new = _load(ksef_data / "openapi/ksef-openapi.json")
    paths = dict(new["paths"])  # type: ignore[call-overload]
    paths["/brand-new"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    report = diff_specs(new, {**new, "paths": paths}, OVERLAY)
    assert report.overlay_gaps == ["GET /brand-new"]


def test_update_moves_the_pin(ksef_data: Path, tmp_path: Path) -> None:
    lock, pinned = tmp_path / "lock.json", tmp_path / "spec.json"
    shutil.copy(ROOT / "openapi/lock.json", lock)
    shutil.copy(ksef_data / "openapi/ksef-openapi.json", pinned)
    older = ksef_data / "openapi/history/ksef-openapi-2026-07-09.json"
    report = update(str(older), ksef_data, lock, pinned)
    assert "2.9.0 -> 2.6.1" in report
    assert "  operation removed: POST /collective-identifiers" in _section(report, "Breaking:")
    written = json.loads(lock.read_text())
    assert written["api_version"] == "2.6.1" and written["data_path"] == "openapi/history/ksef-openapi-2026-07-09.json"
    assert pinned.read_bytes() == older.read_bytes()
    assert api_version(json.loads(pinned.read_text())) == "2.6.1"


def test_the_2_9_0_report_reads_in_a_minute(move_2_9: Report) -> None:
    text = move_2_9.render()
    assert text.startswith("KSeF spec 2.7.0 -> 2.9.0:")
    assert len(text.splitlines()) < 40
    # One line for the 403 answers: the shared ForbiddenProblemDetails lost `timestamp` from required.
    forbidden = [line for line in text.splitlines() if "403" in line]
    assert forbidden == [
        "  ForbiddenProblemDetails: `timestamp` no longer required — in the 403 answer of 68 operations"
    ]
    assert [c.where for c in move_2_9.changes if c.subject == "ForbiddenProblemDetails"] == [
        "ForbiddenProblemDetails.timestamp"
    ]
    assert len(move_2_9.of_kind("field no longer required")[0].operations) == 68


def test_breaking_changes_come_first(move_2_9: Report) -> None:
    text = move_2_9.render()
    titles = [line for line in text.splitlines() if line in SECTIONS]
    assert titles == list(SECTIONS)
    breaking = _section(text, "Breaking:")
    assert "  operation removed: GET /collective-identifiers/{collectiveIdentifierNumber}/invoices" in breaking
    assert any(line.startswith("  ForbiddenProblemDetails: `timestamp` no longer required") for line in breaking)
    assert any(
        line.startswith("  SetSessionLimitsRequest: new required field `collectiveIdentifier`") for line in breaking
    )
    assert any(
        line.startswith("  GenerateCollectiveIdentifierRequest.invoices: minItems none -> 2") for line in breaking
    )
    assert {c.subject for c in move_2_9.breaking} == {
        "GET /collective-identifiers/{collectiveIdentifierNumber}/invoices",
        "ForbiddenProblemDetails",
        "SetSessionLimitsRequest",
        "GenerateCollectiveIdentifierRequest.invoices",
    }


def test_schema_level_changes_are_found(move_2_9: Report) -> None:
    text = move_2_9.render()
    added = _section(text, "Added:")
    assert any(line.startswith("  InvoicePackage: new required field `compressionType`") for line in added)
    rate_limits = (
        "  EffectiveApiRateLimits: new required fields `anonymous`, `batchSessionClose`, `global`, `onlineSessionClose`"
    )
    assert any(line.startswith(rate_limits) for line in added)
    assert any(line.startswith("  EffectiveContextLimits: new required field `collectiveIdentifier`") for line in added)
    owner = "  QueryPersonalPermissionsResponse: new optional field `ownerPermissions`"
    assert any(line.startswith(owner) for line in added)
    new_schemas = next(line for line in added if line.startswith("  new schemas: "))
    assert "CollectiveIdentifierContextLimitsOverride" in new_schemas and "OwnerPermissionScope" in new_schemas
    changed = _section(text, "Changed:")
    key_id = "  PublicKeyCertificate.publicKeyId: minLength none -> 44, maxLength none -> 44"
    assert any(line.startswith(key_id) for line in changed)
    # The export's package restates InvoicePackage's required list: reported once, at InvoicePackage.
    assert not [c for c in move_2_9.changes if c.subject.startswith("InvoiceExportStatusResponse")]
    descriptions = " ".join(_section(text, "Descriptions changed (text only):"))
    assert "InvoiceQueryFilters (dateRange)" in descriptions


def test_each_change_names_the_code_it_affects(move_2_9: Report) -> None:
    text = move_2_9.render()
    assert "ksef_client/export.py" in _affects_after(text, "InvoicePackage: new required field")
    assert "ksef_client/mock/routes/" in _affects_after(text, "operation added: POST /collective-identifiers/invoices")
    assert "docs/testing-with-the-emulator.md" in _affects_after(text, "EffectiveApiRateLimits:")
    assert all("_generated" not in path for change in move_2_9.changes for path in change.affects)


def test_markdown_for_the_changelog(move_2_9: Report) -> None:
    markdown = move_2_9.render_markdown()
    lines = markdown.splitlines()
    assert lines[0] == "KSeF spec 2.7.0 -> 2.9.0: 16 changes, 4 breaking"
    assert lines.index("**Breaking**") < lines.index("**Added**") < lines.index("**Changed**")
    assert "- `ForbiddenProblemDetails`: `timestamp` no longer required — in the 403 answer of 68 operations" in lines
    assert all(len(line) <= 100 for line in lines)


def _spec(response: dict[str, Any], request: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-operation spec: POST /things takes ``Thing`` and answers ``ThingInfo``."""
    thing = request or {"type": "object", "properties": {"name": {"type": "string"}}}
    operation = {
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
        "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ThingInfo"}}}}},
    }
    schemas = {"Thing": thing, "ThingInfo": response}
    return {"info": {"version": "1"}, "paths": {"/things": {"post": operation}}, "components": {"schemas": schemas}}


def _object(required: list[str], **properties: str) -> dict[str, Any]:
    """An object schema; each property a type name or a component's name (capitalised)."""
    fields = {
        name: {"$ref": f"#/components/schemas/{kind}"} if kind[0].isupper() else {"type": kind}
        for name, kind in properties.items()
    }
    return {"type": "object", "required": required, "properties": fields}


def test_synthetic_response_field_removed_breaks_an_added_one_does_not() -> None:
    before = _object(["id", "size"], id="string", size="integer")
    after = _object(["id"], id="string", note="string")
    report = diff_specs(_spec(before), _spec(after))
    removed, added = report.of_kind("field removed"), report.of_kind("field added")
    assert [(c.where, c.breaking) for c in removed] == [("ThingInfo.size", True)]
    assert [(c.where, c.detail, c.breaking) for c in added] == [("ThingInfo.note", "optional", False)]
    assert removed[0].reaches == (("POST /things", "200"),)
    assert "  ThingInfo: field `size` removed — in the 200 answer of POST /things" in _section(
        report.render(), "Breaking:"
    )


def test_synthetic_required_and_enum_changes_by_direction() -> None:
    status = {"type": "string", "enum": ["A", "B"]}
    old = _spec(_object(["id"], id="string"), _object([], name="string", status="Status"))
    new = json.loads(json.dumps(old))
    new["components"]["schemas"]["Thing"]["required"] = ["name"]  # a request field now required: breaks
    new["components"]["schemas"]["ThingInfo"]["required"] = []  # an answer's field no longer required: breaks
    old["components"]["schemas"]["Status"] = status
    new["components"]["schemas"]["Status"] = {**status, "enum": ["A", "C"]}  # sent by clients: removing B breaks
    report = diff_specs(old, new)
    kinds = {(c.kind, c.where): c.breaking for c in report.changes}
    assert kinds == {
        ("field now required", "Thing.name"): True,
        ("field no longer required", "ThingInfo.id"): True,
        ("enum value added", "Status.C"): False,
        ("enum value removed", "Status.B"): True,
    }


def test_every_published_spec_diffs_against_the_next(ksef_data: Path) -> None:
    history = [*sorted((ksef_data / "openapi/history").glob("*.json")), ksef_data / "openapi/ksef-openapi.json"]
    specs = [_load(path) for path in history]
    assert all(path.startswith("/api/v2/") for spec in specs[:2] for path in spec["paths"])  # the RC prefix
    for old, new in [*itertools.pairwise(specs), (specs[0], specs[-1])]:
        report = diff_specs(old, new, OVERLAY, ROOT)
        assert report.render().startswith(f"KSeF spec {api_version(old)} -> {api_version(new)}:")
        assert report.render_markdown()
    assert not diff_specs(specs[1], specs[2]).of_kind("operation removed")  # the prefix is not a change


def test_code_index_finds_uses_not_mentions() -> None:
    index = CodeIndex({
        "sdk.py": "from ksef_client._generated.api.tokens import (\n    create_token,\n    list_tokens,\n)\n",
        "routes.py": '@api_endpoint("tokens.create_token")\ndef create(): ...\n',
        "other.py": "def create_token(): ...  # a namesake, not the generated function\n",
        "models.py": "from ksef_client._generated.models import InvoicePackage\n",
        "guide.md": "DELETE /tokens/{ref} revokes (a /tokens/ prefix is no use); see `InvoicePackage`.\n",
        "report.md": "```text\nInvoicePackage: new field — in POST /tokens\n```\n",
    })  # fmt: skip
    assert index.operation_users("POST /tokens", OperationName("tokens", "create_token")) == ("routes.py", "sdk.py")
    assert index.operation_users("DELETE /tokens/{referenceNumber}", None) == ("guide.md",)
    assert index.schema_users("InvoicePackage", generated_class=True) == ("guide.md", "models.py")
    assert index.schema_users("Nip", generated_class=False) == ()
