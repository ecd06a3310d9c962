"""The change report between published specs, and moving the pin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from generator.spec_diff import api_version, diff_specs
from generator.spec_update import update

ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ROOT / "generator" / "overlay.yaml"


def _load(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


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
    assert report.breaking == [] and report.overlay_gaps == []
    assert "operation added: POST /collective-identifiers" in report.render()


def test_breaking_changes_are_marked_and_the_legacy_prefix_is_ignored(ksef_data: Path) -> None:
    old = _load(ksef_data / "openapi/history/ksef-openapi-2025-10-27.json")  # paths under /api/v2
    new = _load(ksef_data / "openapi/history/ksef-openapi-2026-07-09.json")
    report = diff_specs(old, new, OVERLAY)
    assert not report.of_kind("operation removed")  # same operations despite the prefix change
    breaking = {str(c) for c in report.breaking}
    assert "[BREAKING] enum value removed: InvoiceQueryFormType.RR" in breaking
    assert any("request field now required: POST /permissions/persons/grants" in b for b in breaking)


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
    assert "2.9.0 -> 2.6.1" in report and "[BREAKING] operation removed: POST /collective-identifiers" in report
    written = json.loads(lock.read_text())
    assert written["api_version"] == "2.6.1" and written["data_path"] == "openapi/history/ksef-openapi-2026-07-09.json"
    assert pinned.read_bytes() == older.read_bytes()
    assert api_version(json.loads(pinned.read_text())) == "2.6.1"
