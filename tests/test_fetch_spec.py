"""`make spec`: the pinned spec is copied only when its SHA-256 matches the lock."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("fetch_spec", ROOT / "openapi" / "fetch_spec.py")
assert _spec is not None and _spec.loader is not None
fetch_spec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch_spec)


def _lock(tmp_path: Path, **changes: str) -> Path:
    lock = json.loads((ROOT / "openapi" / "lock.json").read_text())
    lock.update(changes)
    lock_path = tmp_path / "lock.json"
    lock_path.write_text(json.dumps(lock))
    return lock_path


def test_copies_the_pinned_spec(ksef_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    origin = fetch_spec.fetch(ksef_data, out)
    assert origin.endswith("ksef-openapi.json")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == json.loads(fetch_spec.LOCK.read_text())["sha256"]


def test_an_older_pin_is_found_in_the_history_by_its_hash(ksef_data: Path, tmp_path: Path) -> None:
    # The shared data moving ahead of the pin (a new KSeF release) must not break the build.
    older = ksef_data / "openapi" / "history" / "ksef-openapi-2026-07-21.json"
    lock_path = _lock(tmp_path, sha256=hashlib.sha256(older.read_bytes()).hexdigest(), api_version="2.7.0")
    origin = fetch_spec.fetch(ksef_data, tmp_path / "spec.json", lock_path)
    assert origin == str(older)
    assert (tmp_path / "spec.json").read_bytes() == older.read_bytes()


def test_no_spec_with_the_pinned_hash_is_a_one_line_error(ksef_data: Path, tmp_path: Path) -> None:
    lock_path = _lock(tmp_path, sha256="0" * 64, api_version="9.9.9")
    with pytest.raises(SystemExit) as raised:
        fetch_spec.fetch(ksef_data, tmp_path / "spec.json", lock_path)
    message = str(raised.value)
    assert "\n" not in message
    assert "API 9.9.9" in message and "(API 2.9.0)" in message  # the pin's version and the files' own
    assert "make spec-update SPEC=" in message
    assert not (tmp_path / "spec.json").exists()


def test_copies_every_pinned_schema(ksef_data: Path, tmp_path: Path) -> None:
    written = fetch_spec.fetch_schemas(ksef_data, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"upo-v4-3.xsd", "fa3/schemat_FA(3)_v1-0E.xsd", "fa3/bazowe/StrukturyDanych_v10-0E.xsd"} <= names
    assert all(p.read_bytes().lstrip().startswith(b"<?xml") for p in written)
