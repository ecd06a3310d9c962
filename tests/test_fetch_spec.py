"""`make spec`: the pinned spec is copied only when its SHA-256 matches the lock."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

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


# --- the build hook (setup.py): ksef_client/_data for a wheel built from a clean checkout -----------


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def refuse(url: str, timeout: float) -> None:
        asked.append(url)
        raise fetch_spec.urllib.error.URLError("no network here")

    monkeypatch.setattr(fetch_spec.urllib.request, "urlopen", refuse)
    return asked


def test_the_build_fills_an_empty_data_folder_from_the_first_reference_folder(
    ksef_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _no_network(monkeypatch)
    out = tmp_path / "_data"
    origin = fetch_spec.ensure_package_data(out, [tmp_path / "missing", ksef_data])
    assert origin.startswith(str(ksef_data)) and not asked
    assert fetch_spec.package_data_complete(out)
    assert (out / "fa3" / "schemat_FA(3)_v1-0E.xsd").is_file()
    # A second build keeps what is there (an sdist carries it), still checking every hash.
    assert "already in place" in fetch_spec.ensure_package_data(out, [])
    (out / "upo-v4-3.xsd").write_bytes(b"<tampered/>")
    assert not fetch_spec.package_data_complete(out)
    assert fetch_spec.ensure_package_data(out, [ksef_data]).startswith(str(ksef_data))
    assert fetch_spec.package_data_complete(out)


def test_the_build_without_data_or_network_fails_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _no_network(monkeypatch)
    with pytest.raises(fetch_spec.DataUnavailableError) as raised:
        fetch_spec.ensure_package_data(tmp_path / "_data", [tmp_path / "nowhere"])
    message = str(raised.value)
    assert asked == [json.loads(fetch_spec.LOCK.read_text())["source_url"]]
    assert "cannot download" in message and "KSEF_DATA" in message and str(tmp_path / "nowhere") in message
    assert not (tmp_path / "_data" / "ksef-openapi.json").exists()


def test_a_schema_with_another_hash_names_the_file_and_what_to_do(ksef_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ksef_data, data)
    (data / "xsd" / "upo" / "upo-v4-3.xsd").write_text('<xs:schema targetNamespace="urn:other"/>')
    with pytest.raises(SystemExit) as raised:
        fetch_spec.fetch_schemas(data, tmp_path / "out")
    message = str(raised.value)
    assert "upo-v4-3.xsd" in message and "urn:other" in message and "KSEF_DATA" in message


def test_setup_py_hooks_the_data_into_build_py_and_sdist() -> None:
    # `pip wheel .` runs build_py, `python -m build` runs sdist first: both must fetch (CI builds a
    # wheel from a clean clone: `make wheel-from-clone`).
    source = (ROOT / "setup.py").read_text()
    assert '"build_py": BuildPyWithData' in source and '"sdist": SdistWithData' in source
    assert "openapi/fetch_spec.py" in (ROOT / "MANIFEST.in").read_text()


# --- the AuthTokenRequest schemas KSeF accepts --------------------------------------------------------

# The Ministry's ksef-docs repository, where the spec links its XSDs (github.com/CIRFMF/ksef-api
# redirects there): the raw file is at the same path.
_KSEF_DOCS_RAW = "https://raw.githubusercontent.com/CIRFMF/ksef-docs/main/"


def test_every_auth_schema_the_spec_names_is_pinned_and_shipped(
    ksef_data: Path, pinned_spec: dict[str, Any], tmp_path: Path
) -> None:
    # POST /auth/xades-signature: "Obsługiwane schematy: [auth v2.0](.../auth/schemy/schemat_auth_v2-0.xsd)
    # [auth v2.1](.../auth/schemy/schemat_auth_v2-1.xsd)". Each must be in the lock (so `make spec` and
    # the wheel's build hook copy it into ksef_client/_data), with the Ministry's URL and the hash of
    # the reference copy.
    description = pinned_spec["paths"]["/auth/xades-signature"]["post"]["description"]
    named = re.findall(r"/blob/main/(auth/schemy/(schemat_auth_v[\d-]+\.xsd))\)", description)
    assert [name for _, name in named] == ["schemat_auth_v2-0.xsd", "schemat_auth_v2-1.xsd"]
    pinned = {entry["dest"]: entry for entry in json.loads(fetch_spec.LOCK.read_text())["schemas"]}
    for path, name in named:
        entry = pinned[f"auth/{name}"]
        assert entry["data_path"] == f"xsd/auth/{name}"
        assert entry["source_url"] == _KSEF_DOCS_RAW + path
        assert entry["sha256"] == hashlib.sha256((ksef_data / entry["data_path"]).read_bytes()).hexdigest()
    out = tmp_path / "_data"
    fetch_spec.fetch_schemas(ksef_data, out)
    for _, name in named:  # what the wheel carries (package data "_data/**/*.xsd")
        assert (out / "auth" / name).read_bytes() == (ksef_data / "xsd" / "auth" / name).read_bytes()
