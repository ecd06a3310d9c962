"""``make spec-update SPEC=path-or-url``: move the pin to another spec version, with a change report.

Prints what changed (``spec_diff``: grouped, breaking first, each change with the hand-written
files it affects), writes the new spec where the build reads it, and updates ``openapi/lock.json``
(SHA-256, API version, build, where it came from). The Makefile then regenerates the client
(``--strict``: a new operation without an English name in the overlay stops here, listed in the
report) and runs the quick conformance profile.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

from generator.spec_diff import diff_specs
from ksef_client.spec_version import api_version, declared_version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "openapi" / "lock.json"
PINNED = ROOT / "ksef_client" / "_data" / "ksef-openapi.json"
OVERLAY = Path(__file__).with_name("overlay.yaml")


def read_spec(source: str) -> tuple[bytes, bool]:
    """The spec's bytes from a path or an http(s) URL; ``True`` when downloaded."""
    if source.startswith(("https://", "http://")):
        with urllib.request.urlopen(source, timeout=60) as response:
            return response.read(), True
    return Path(source).read_bytes(), False


def update(source: str, data_dir: Path, lock_path: Path = LOCK, pinned: Path = PINNED) -> str:
    """Pin ``source``; return the change report."""
    content, downloaded = read_spec(source)
    new_spec = json.loads(content)
    old_spec = json.loads(pinned.read_text(encoding="utf-8")) if pinned.is_file() else {"paths": {}}
    report = diff_specs(old_spec, new_spec, OVERLAY, ROOT).render()
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    lock["api_version"] = api_version(new_spec)
    declared = declared_version(new_spec)
    lock["build"] = (declared.build if declared else None) or lock.get("build")
    lock["sha256"] = hashlib.sha256(content).hexdigest()
    if downloaded:
        lock["source_url"] = source
    else:
        path = Path(source).resolve()
        if path.is_relative_to(data_dir.resolve()):
            lock["data_path"] = path.relative_to(data_dir.resolve()).as_posix()
    lock_path.write_text(json.dumps(lock, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    pinned.parent.mkdir(parents=True, exist_ok=True)
    pinned.write_bytes(content)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="path or https URL of the new spec")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "ksef")
    args = parser.parse_args(argv)
    print(update(args.spec, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
