"""Put the pinned KSeF spec where the build needs it, after checking it against openapi/lock.json.

    python openapi/fetch_spec.py --data ../shared/ksef --out ksef_client/_data/ksef-openapi.json

The spec is copied from the reference data folder (``$KSEF_DATA/<data_path>``) when it is there,
otherwise downloaded from the lock's ``source_url``. A SHA-256 that differs from the lock is an
error: the pinned spec changes only through ``make spec-update``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

LOCK = Path(__file__).with_name("lock.json")


def fetch(data_dir: Path, out: Path, lock_path: Path = LOCK) -> str:
    """Copy or download the spec to ``out``; return where it came from."""
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    local = data_dir / lock["data_path"]
    if local.is_file():
        content, origin = local.read_bytes(), str(local)
    else:
        with urllib.request.urlopen(lock["source_url"], timeout=60) as response:  # noqa: S310 - https URL from the lock
            content, origin = response.read(), lock["source_url"]
    digest = hashlib.sha256(content).hexdigest()
    if digest != lock["sha256"]:
        raise SystemExit(
            f"error: the spec from {origin} has SHA-256 {digest}, but {lock_path} pins "
            f"{lock['sha256']} (API {lock['api_version']}). Use the pinned spec, or run "
            "'make spec-update SPEC=...' to move the pin."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_bytes() != content:
        out.write_bytes(content)
    return origin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/ksef"), help="KSeF reference data folder")
    parser.add_argument("--out", type=Path, required=True, help="where to write the spec")
    args = parser.parse_args(argv)
    origin = fetch(args.data, args.out)
    print(f"spec: {args.out} (from {origin}, SHA-256 verified)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
