"""Put the pinned KSeF spec and schemas where the build needs them, checked against openapi/lock.json.

    python openapi/fetch_spec.py --data ../shared/ksef --out ksef_client/_data/ksef-openapi.json

Each file (the spec, then the lock's ``schemas``: UPO, invoice forms with their base types,
AuthTokenRequest) is copied from the reference data folder (``$KSEF_DATA/<data_path>``) when it is
there, otherwise downloaded from its official ``source_url``. A SHA-256 that differs from the lock is
an error: the pins move only with ``make spec-update SPEC=...``.

The spec is found by its hash, not by its name: when the data folder's current spec has moved
ahead of the pin (KSeF published a new version), the pinned one is looked for among every spec in
the folder (``openapi/history/`` included), so a newer spec in the shared data never breaks a build.

Building a wheel or sdist (``setup.py``'s build hook) calls ``ensure_package_data``, which looks in
this order: ``ksef_client/_data/`` already holding every pinned file with the pinned hash (``make
spec`` ran, or the build runs from an sdist), then ``$KSEF_DATA``, then ``../shared/ksef`` beside
the source tree, then the official URLs. Every file is SHA-256 checked; a file that cannot be found
or does not match stops the build with a message saying what to do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

LOCK = Path(__file__).with_name("lock.json")
SPEC_NAME = "ksef-openapi.json"


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class DataUnavailableError(SystemExit):
    """A pinned file could not be obtained (no reference data folder and no network)."""


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - URL from the lock
            content: bytes = response.read()
    except OSError as error:  # URLError, timeouts, refused connections
        raise DataUnavailableError(
            f"error: cannot download {url} ({error}). Without network, point KSEF_DATA at a copy of the "
            "KSeF reference data (spec in openapi/, XSDs in xsd/), e.g. KSEF_DATA=../shared/ksef."
        ) from error
    return content


def _api_version(content: bytes) -> str:
    """The API version KSeF writes in the spec's description ("Wersja API: 2.9.0")."""
    try:
        info = json.loads(content)["info"]
    except (ValueError, KeyError, TypeError):
        return "unknown version"
    match = re.search(r"Wersja API:\**\s*([0-9][0-9A-Za-z.\-]*)", str(info.get("description", "")))
    return match[1] if match else str(info.get("version", "unknown version"))


def _obtain(data_dir: Path | None, entry: dict[str, str], what: str, lock_path: Path) -> tuple[bytes, str]:
    local = data_dir / entry["data_path"] if data_dir else None
    if local and local.is_file():
        content, origin = local.read_bytes(), str(local)
    else:
        content, origin = _download(entry["source_url"]), entry["source_url"]
    digest = _sha256(content)
    if digest != entry["sha256"]:
        namespace = re.search(rb'targetNamespace="([^"]+)"', content[:4096])
        found = f" (targetNamespace {namespace[1].decode(errors='replace')})" if namespace else ""
        raise SystemExit(
            f"error: the {what} from {origin}{found} has SHA-256 {digest[:12]}…, but {lock_path} pins "
            f"{entry['sha256'][:12]}…. Point KSEF_DATA at a folder holding the pinned file. A new schema "
            'version is a change of the invoice models: its entry in the lock\'s "schemas", then make generate.'
        )
    return content, origin


def _pinned_spec(data_dir: Path | None, lock: dict[str, str]) -> tuple[bytes, str]:
    """The spec whose SHA-256 the lock pins: the lock's path, any spec in the data folder, or the URL."""
    candidates = [data_dir / lock["data_path"]] if data_dir else []
    if data_dir and (data_dir / "openapi").is_dir():
        candidates += sorted((data_dir / "openapi").rglob("*.json"))
    seen: list[str] = []
    for path in candidates:
        if not path.is_file():
            continue
        content = path.read_bytes()
        if _sha256(content) == lock["sha256"]:
            return content, str(path)
        seen.append(f"{path} (API {_api_version(content)})")
    if not seen:  # no reference data here: the official download
        content = _download(lock["source_url"])
        if _sha256(content) == lock["sha256"]:
            return content, lock["source_url"]
        seen.append(f"{lock['source_url']} (API {_api_version(content)})")
    where = f"{data_dir}/openapi" if data_dir else "the official URL"
    raise SystemExit(
        f"error: no spec with the pinned SHA-256 {lock['sha256'][:12]}… (API {lock['api_version']}) in "
        f"{where}; found {', '.join(seen[:3])}{' …' if len(seen) > 3 else ''}. "
        f"To move the pin to one of them: make spec-update SPEC={seen[0].split(' (')[0]}"
    )


def _write(out: Path, content: bytes) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_bytes() != content:
        out.write_bytes(content)


def fetch(data_dir: Path | None, out: Path, lock_path: Path = LOCK) -> str:
    """Copy or download the spec to ``out``; return where it came from."""
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    content, origin = _pinned_spec(data_dir, lock)
    _write(out, content)
    return origin


def fetch_schemas(data_dir: Path | None, out_dir: Path, lock_path: Path = LOCK) -> list[Path]:
    """Copy or download every pinned XSD into ``out_dir``; return the written paths."""
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    written = []
    for entry in lock.get("schemas", []):
        content, _ = _obtain(data_dir, entry, f"schema {entry['dest']}", lock_path)
        _write(out_dir / entry["dest"], content)
        written.append(out_dir / entry["dest"])
    return written


def _pinned_files(out_dir: Path, lock: dict[str, Any], spec_name: str) -> list[tuple[Path, str]]:
    files = [(out_dir / spec_name, str(lock["sha256"]))]
    return files + [(out_dir / e["dest"], str(e["sha256"])) for e in lock.get("schemas", [])]


def package_data_complete(out_dir: Path, lock_path: Path = LOCK, spec_name: str = SPEC_NAME) -> bool:
    """Whether ``out_dir`` already holds every pinned file with its pinned SHA-256."""
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    return all(p.is_file() and _sha256(p.read_bytes()) == h for p, h in _pinned_files(out_dir, lock, spec_name))


def ensure_package_data(
    out_dir: Path, data_dirs: list[Path], lock_path: Path = LOCK, spec_name: str = SPEC_NAME
) -> str:
    """Fill ``out_dir`` (``ksef_client/_data``) for a build; return where the files came from.

    Kept as they are when already complete; otherwise taken from the first of ``data_dirs`` that
    exists (``$KSEF_DATA``, ``../shared/ksef``), else downloaded from the lock's official URLs.
    """
    if package_data_complete(out_dir, lock_path, spec_name):
        return f"{out_dir} (already in place, SHA-256 verified)"
    data_dir = next((d for d in data_dirs if d.is_dir()), None)
    try:
        fetch(data_dir, out_dir / spec_name, lock_path)
        fetch_schemas(data_dir, out_dir, lock_path)
    except DataUnavailableError as error:
        looked = ", ".join(str(d) for d in data_dirs)
        raise DataUnavailableError(
            f"{error.code} (ksef_client/_data is empty and no reference data folder was found: looked in {looked})"
        ) from error
    return f"{data_dir} (SHA-256 verified)" if data_dir else "the official URLs in openapi/lock.json (SHA-256 verified)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/ksef"), help="KSeF reference data folder")
    parser.add_argument("--out", type=Path, required=True, help="where to write the spec")
    args = parser.parse_args(argv)
    origin = fetch(args.data, args.out)
    print(f"spec: {args.out} (from {origin}, SHA-256 verified)", file=sys.stderr)
    schemas = fetch_schemas(args.data, args.out.parent)
    print(f"schemas: {len(schemas)} XSD files in {args.out.parent} (SHA-256 verified)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
