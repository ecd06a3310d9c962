"""Client-side throttling keeps a burst within the spec's limits; identifiers and retry parsing."""

from __future__ import annotations

import httpx

from ksef_client import KSeF
from ksef_client._generated.operations import OPERATIONS
from ksef_client._retry import parse_retry_after
from ksef_client.identifiers import is_valid_nip, make_ksef_number, validate_ksef_number
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP
from tests.helpers import FakeTime, RecordingTransport, invoice_xml
from tests.resources.test_sessions import _session


def test_a_burst_of_100_calls_stays_within_the_limits(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    session = _session(backend, [invoice_xml("FV/1")])
    time = FakeTime()
    recorder = RecordingTransport(httpx.HTTPTransport(), time)
    with KSeF(
        base_url=ksef_server.base_url,
        access_token=backend.mint_access_token(NIP),
        transport=recorder,
        sleep=time.sleep,
        clock=time.clock,
    ) as ksef:
        for _ in range(100):
            ksef.sessions.get(session.reference_number)
    limits = OPERATIONS["sessions_status.get_session_status"].rate_limits
    assert limits is not None
    times = [t for t, _, _ in recorder.sent]
    assert len(times) == 100
    for window, limit in ((1, limits.per_second), (60, limits.per_minute)):
        assert limit is not None
        assert max(sum(1 for u in times if t <= u < t + window) for t in times) <= limit
    assert limits.per_second is not None
    assert time.now - 1000 >= 100 // limits.per_second - 1  # the burst was spread out, not sent at once


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 25 Nov 2026 13:00:10 GMT", now=1795611600.0) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


def test_identifiers() -> None:
    assert is_valid_nip(NIP) and not is_valid_nip("5265877636")
    number = make_ksef_number(NIP, "20261125", "0123456789AB")
    assert validate_ksef_number(number) == number
