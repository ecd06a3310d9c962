"""Shared fixtures: where the reference data and the pinned spec are."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
KSEF_DATA = Path(os.environ.get("KSEF_DATA", ROOT.parent / "shared" / "ksef"))
SPEC_FILE = ROOT / "ksef_client" / "_data" / "ksef-openapi.json"


@pytest.fixture(scope="session")
def ksef_data() -> Path:
    """The KSeF reference data folder (../shared/ksef or $KSEF_DATA)."""
    if not KSEF_DATA.is_dir():
        pytest.skip(f"KSeF reference data not found at {KSEF_DATA} (set KSEF_DATA)")
    return KSEF_DATA


@pytest.fixture(scope="session")
def pinned_spec() -> dict[str, Any]:
    """The pinned spec as `make spec` placed it."""
    return dict(json.loads(SPEC_FILE.read_text(encoding="utf-8")))
