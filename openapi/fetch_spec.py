"""Put the pinned KSeF spec and schemas where the build needs them, checked against openapi/lock.json.

    python openapi/fetch_spec.py --data ../shared/ksef --out ksef_client/_data/ksef-openapi.json

Each file (the spec, then the lock's ``schemas``: UPO, FA(3) with its base types, AuthTokenRequest)
is copied from the reference data folder (``$KSEF_DATA/<data_path>``) when it is there, otherwise
downloaded from its official ``source_url``. A SHA-256 that differs from the lock is an error: the
pins change only by editing the lock on purpose.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

LOCK = Path(__file__).with_name("lock.json")


def _obtain(data_dir: Path, entry: dict[str, str], what: str, lock_path: Path) -> tuple[bytes, str]:
    local = data_dir / entry["data_path"]
    if local.is_file():
        content, origin = local.read_bytes(), str(local)
    else:
        with urllib.request.urlopen(entry["source_url"], timeout=60) as response:  # noqa: S310 - URL from the lock
            content, origin = response.read(), entry["source_url"]
    digest = hashlib.sha256(content).hexdigest()
    if digest != entry["sha256"]:
        raise SystemExit(
            f"error: the {what} from {origin} has SHA-256 {digest}, but {lock_path} pins "
            f"{entry['sha256']}. Use the pinned file, or edit the lock on purpose to move the pin."
        )
    return content, origin


def _write(out: Path, content: bytes) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_bytes() != content:
        out.write_bytes(content)


def fetch(data_dir: Path, out: Path, lock_path: Path = LOCK) -> str:
    """Copy or download the spec to ``out``; return where it came from."""
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    content, origin = _obtain(data_dir, lock, f"spec (API {lock['api_version']})", lock_path)
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
