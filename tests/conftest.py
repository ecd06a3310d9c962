"""Shared fixtures: where the reference data and the pinned spec are."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.mock.server import ThreadedServer
from tests.helpers import FakeTime

ROOT = Path(__file__).resolve().parent.parent
KSEF_DATA = Path(os.environ.get("KSEF_DATA", ROOT.parent / "shared" / "ksef"))
NIP = "5265877635"
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


@pytest.fixture(scope="session")
def ksef_server(ksef_mock_server: ThreadedServer) -> ThreadedServer:
    """One emulator on 127.0.0.1 for the whole run (the package's own ``ksef_mock`` plugin
    fixture, as users get it); tests reset it."""
    return ksef_mock_server


@pytest.fixture
def backend(ksef_mock: KSeFMock) -> KSeFBackend:
    """The emulator's state, empty at the start of each test (reset by the plugin's fixture)."""
    return ksef_mock.backend


@pytest.fixture
def fake_time() -> FakeTime:
    """Clock and sleep that never wait."""
    return FakeTime()


@pytest.fixture
def ksef(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> Iterator[KSeF]:
    """A client of the emulator, authenticated for NIP 5265877635, never really sleeping."""
    token = backend.mint_access_token(NIP)
    with KSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.sleep, clock=fake_time.clock
    ) as client:
        yield client


@pytest.fixture
async def aksef(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> AsyncIterator[AsyncKSeF]:
    """``ksef``'s asynchronous twin: an ``AsyncKSeF`` of the emulator on the fake clock."""
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        yield client
