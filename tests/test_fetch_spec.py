"""`make spec`: the pinned spec is copied only when its SHA-256 matches the lock."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("fetch_spec", ROOT / "openapi" / "fetch_spec.py")
assert _spec is not None and _spec.loader is not None
fetch_spec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch_spec)


def test_copies_the_pinned_spec(ksef_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    origin = fetch_spec.fetch(ksef_data, out)
    assert origin.endswith("ksef-openapi.json")
    assert json.loads(out.read_bytes())["openapi"].startswith("3.0")


def test_a_different_spec_is_a_clear_error(ksef_data: Path, tmp_path: Path) -> None:
    lock = json.loads((ROOT / "openapi" / "lock.json").read_text())
    lock["data_path"] = "openapi/history/ksef-openapi-2026-07-09.json"
    lock_path = tmp_path / "lock.json"
    lock_path.write_text(json.dumps(lock))
    with pytest.raises(SystemExit, match="pins 4ad48436"):
        fetch_spec.fetch(ksef_data, tmp_path / "spec.json", lock_path)
    assert not (tmp_path / "spec.json").exists()


def test_copies_every_pinned_schema(ksef_data: Path, tmp_path: Path) -> None:
    written = fetch_spec.fetch_schemas(ksef_data, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"upo-v4-3.xsd", "fa3/schemat_FA(3)_v1-0E.xsd", "fa3/bazowe/StrukturyDanych_v10-0E.xsd"} <= names
    assert all(p.read_bytes().lstrip().startswith(b"<?xml") for p in written)
