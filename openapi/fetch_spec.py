"""Put the pinned KSeF spec and schemas where the build needs them, checked against openapi/lock.json.

    python openapi/fetch_spec.py --data ../shared/ksef --out ksef_client/_data/ksef-openapi.json

Each file (the spec, then the lock's ``schemas``: UPO, invoice forms with their base types,
AuthTokenRequest) is copied from the reference data folder (``$KSEF_DATA/<data_path>``) when it is
there, otherwise downloaded from its official ``source_url``. A SHA-256 that differs from the lock is
an error: the pins move only with ``make spec-update SPEC=...``.

The spec is found by its hash, not by its name: when the data folder's current spec has moved
ahead of the pin (KSeF published a new version), the pinned one is looked for among every spec in
the folder (``openapi/history/`` included), so a newer spec in the shared data never breaks a build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import urllib.request
from pathlib import Path

LOCK = Path(__file__).with_name("lock.json")


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - URL from the lock
        content: bytes = response.read()
    return content


def _api_version(content: bytes) -> str:
    """The API version KSeF writes in the spec's description ("Wersja API: 2.9.0")."""
    try:
        info = json.loads(content)["info"]
    except (ValueError, KeyError, TypeError):
        return "unknown version"
    match = re.search(r"Wersja API:\**\s*([0-9][0-9A-Za-z.\-]*)", str(info.get("description", "")))
    return match[1] if match else str(info.get("version", "unknown version"))


def _obtain(data_dir: Path, entry: dict[str, str], what: str, lock_path: Path) -> tuple[bytes, str]:
    local = data_dir / entry["data_path"]
    if local.is_file():
        content, origin = local.read_bytes(), str(local)
    else:
        content, origin = _download(entry["source_url"]), entry["source_url"]
    digest = _sha256(content)
    if digest != entry["sha256"]:
        raise SystemExit(
            f"error: the {what} from {origin} has SHA-256 {digest}, but {lock_path} pins "
            f"{entry['sha256']}. Use the pinned file, or move the pin on purpose (openapi/lock.json)."
        )
    return content, origin


def _pinned_spec(data_dir: Path, lock: dict[str, str]) -> tuple[bytes, str]:
    """The spec whose SHA-256 the lock pins: the lock's path, any spec in the data folder, or the URL."""
    candidates = [data_dir / lock["data_path"]]
    candidates += sorted((data_dir / "openapi").rglob("*.json")) if (data_dir / "openapi").is_dir() else []
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
    raise SystemExit(
        f"error: no spec with the pinned SHA-256 {lock['sha256'][:12]}… (API {lock['api_version']}) in "
        f"{data_dir}/openapi; found {', '.join(seen[:3])}{' …' if len(seen) > 3 else ''}. "
        f"To move the pin to one of them: make spec-update SPEC={seen[0].split(' (')[0]}"
    )


def _write(out: Path, content: bytes) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_bytes() != content:
        out.write_bytes(content)


def fetch(data_dir: Path, out: Path, lock_path: Path = LOCK) -> str:
    """Copy or download the spec to ``out``; return where it came from."""
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    content, origin = _pinned_spec(data_dir, lock)
    _write(out, content)
    return origin


def fetch_schemas(data_dir: Path, out_dir: Path, lock_path: Path = LOCK) -> list[Path]:
    """Copy or download every pinned XSD into ``out_dir``; return the written paths."""
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    written = []
    for entry in lock.get("schemas", []):
        content, _ = _obtain(data_dir, entry, f"schema {entry['dest']}", lock_path)
        _write(out_dir / entry["dest"], content)
        written.append(out_dir / entry["dest"])
    return written


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
