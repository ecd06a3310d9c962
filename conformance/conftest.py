"""Shared pieces of the conformance suite: the pinned spec and how many cases to draw."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILE = ROOT / "ksef_client" / "_data" / "ksef-openapi.json"
# Quick profile in `make test`; `make conformance` raises it.
EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "5"))


def pinned_spec() -> dict[str, Any]:
    """The spec `make spec` put in the package."""
    spec: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return spec


CASES: dict[str, int] = {}


def count_case(operation: str) -> None:
    """Record one generated case of ``operation`` (for the summary line)."""
    CASES[operation] = CASES.get(operation, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how much of the spec the run exercised."""
    if CASES:
        terminalreporter.write_line(
            f"conformance: {len(CASES)} operations exercised, {sum(CASES.values())} generated cases"
        )
