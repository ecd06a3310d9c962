"""Helpers for the emulator's own tests: raw HTTP answers (the spec's view, not the SDK's)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.mock.pytest_plugin import KSeFMock
from tests.conftest import NIP


@pytest.fixture
def raw(ksef_mock: KSeFMock) -> Iterator[httpx.Client]:
    """An httpx client of the emulator's API, with an access token for NIP 5265877635."""
    headers = {"Authorization": f"Bearer {ksef_mock.token(NIP)}"}
    with httpx.Client(base_url=ksef_mock.base_url, headers=headers) as client:
        yield client


def sent_statuses(ksef: KSeF, invoices: list[bytes]) -> list[tuple[int, list[str]]]:
    """Send ``invoices`` unchecked in one online session; each invoice's status code and details."""
    with ksef.online_session(validate=False) as session:
        for xml in invoices:
            session.send(xml)
    assert session.reference_number is not None
    found = []
    for ref in session.invoice_reference_numbers:
        status = ksef.sessions.invoice(session.reference_number, ref).status
        found.append((status.code, [str(d) for d in status.details or []]))
    return found
