"""``python -m generator SPEC_FILE OUTPUT_DIR [--strict]``: generate the client for any spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generator.pipeline import GenerationError, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator", description="Generate the KSeF client package.")
    parser.add_argument("spec", type=Path, help="OpenAPI spec file (JSON)")
    parser.add_argument("output", type=Path, help="package directory to (re)write, e.g. ksef_client/_generated")
    parser.add_argument("--strict", action="store_true", help="fail on operations the overlay does not name")
    args = parser.parse_args(argv)
    try:
        report = generate(args.spec, args.output, strict=args.strict)
    except GenerationError as error:
        print(f"generator: error: {error}", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"generator: warning: {warning}", file=sys.stderr)
    print(f"generator: {len(report.operations)} operations generated into {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
