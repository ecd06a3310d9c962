"""Invoice sizes and counts are checked against the context's own limits, not only KSeF's defaults.

The Ministry marks the defaults as raised for a context on request (``faktury/weryfikacja-faktury.md``:
"Maksymalny rozmiar faktury bez załączników: 1 MB*", "z załącznikami: 3 MB*", "Maksymalna liczba
faktur: 10 000*", "* ... zwiększone na wniosek"); ``GET /limits/context`` says what is in force
(the spec: ``OnlineSessionContextLimitsOverride`` allows up to 5 MB, 10 MB with attachments and
100,000 invoices). The emulator enforces what ``POST /testdata/limits/context/session`` set.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.batch import BatchPackage
from ksef_client.crypto import SymmetricKey
from ksef_client.errors import BatchError, InvoiceRejectedError, InvoiceSchemaError
from ksef_client.invoice import Invoice
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.schemas import KSEF_LIMITS, LimitsInForce, SessionLimits, validate_invoice
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime

BIG_LINES = 7000  # about 1.3 MB: over KSeF's default 1 MB


def _raise_limits(ksef: KSeF, megabytes: int) -> None:
    """``POST /testdata/limits/context/session``: both kinds of session take ``megabytes`` MB."""
    http = ksef.raw.get_httpx_client()
    limits = http.get("/limits/context").json()
    for kind in ("onlineSession", "batchSession"):
        limits[kind]["maxInvoiceSizeInMB"] = megabytes
    assert http.post("/testdata/limits/context/session", json=limits).status_code == 200


@pytest.fixture
def big() -> bytes:
    xml = sample_invoice("FV/BIG/1", lines=BIG_LINES)
    assert 1_000_000 < len(xml) < 2_000_000
    return xml


@pytest.fixture
def limit_reads(ksef: KSeF) -> Iterator[list[str]]:
    """The paths of ``GET /limits/context`` requests the client makes."""
    seen: list[str] = []
    http = ksef.raw.get_httpx_client()

    def note(request: httpx.Request) -> None:
        if request.url.path.endswith("/limits/context"):
            seen.append(request.url.path)

    http.event_hooks["request"].append(note)
    yield seen
    http.event_hooks["request"].remove(note)


def test_an_online_session_takes_what_the_context_s_raised_limit_allows(
    ksef: KSeF, big: bytes, limit_reads: list[str]
) -> None:
    with ksef.online_session() as session, pytest.raises(InvoiceRejectedError, match="at most 1000000"):
        session.send(big)  # KSeF's default, and the context's own too
    _raise_limits(ksef, 2)
    limit_reads.clear()
    with ksef.online_session() as session:
        session.send(sample_invoice("FV/SMALL/1"))
        assert not limit_reads  # within KSeF's defaults: nothing read
        session.send(big)  # was refused locally: "KSeF accepts at most 1000000"
        session.send(big.replace(b"FV/BIG/1", b"FV/BIG/2"))
    assert len(limit_reads) == 1  # read once a session, when an invoice passed the defaults
    ksef.sessions.wait(session.reference_number)
    assert [outcome.code for outcome in session.outcomes()] == [200, 200, 200]


def test_limits_given_are_used_as_given(ksef: KSeF, big: bytes, limit_reads: list[str]) -> None:
    # The caller's limits (or ksef.limits.context()) replace the defaults, and nothing is read.
    with ksef.online_session(limits=SessionLimits(max_invoice_bytes=2_000_000)) as session:
        session.send(big)  # the local check passes; the context's limit is still 1 MB
    assert not limit_reads
    ksef.sessions.wait(session.reference_number)
    assert [outcome.code for outcome in session.outcomes()] == [430]
    _raise_limits(ksef, 2)
    with ksef.online_session(limits=ksef.limits.context()) as session:
        session.send(big.replace(b"FV/BIG/1", b"FV/BIG/3"))
    with pytest.raises(InvoiceSchemaError, match="at most 900000"):
        validate_invoice(big, limits=SessionLimits(max_invoice_bytes=900_000))


def test_a_batch_takes_what_the_context_s_raised_limit_allows(ksef: KSeF, big: bytes) -> None:
    with pytest.raises(InvoiceRejectedError, match="at most 1000000"):
        ksef.send_batch([big])
    _raise_limits(ksef, 2)
    result = ksef.send_batch([big, sample_invoice("FV/SMALL/2")], wait=True)
    assert result.status is not None and result.status.successful_invoice_count == 2


@pytest.mark.anyio
async def test_an_async_batch_reads_the_limits_from_its_build_thread(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime, big: bytes
) -> None:
    _raise_limits(ksef, 2)
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        result = await client.send_batch([big], wait=True)
        assert result.status is not None and result.status.successful_invoice_count == 1
        async with client.online_session() as session:
            await session.send(big.replace(b"FV/BIG/1", b"FV/BIG/4"))


def test_the_count_of_a_batch_follows_the_context_s_limit() -> None:
    # Was: more than 10,000 invoices always refused, even with validate=False.
    reads: list[int] = []

    def read() -> SessionLimits:
        reads.append(1)
        return SessionLimits(max_invoices=20_000)

    in_force = LimitsInForce(read=read)
    assert in_force.covering(count=KSEF_LIMITS.max_invoices) == KSEF_LIMITS and not reads
    assert in_force.covering(count=KSEF_LIMITS.max_invoices + 1).max_invoices == 20_000 and reads == [1]
    in_force.covering(count=KSEF_LIMITS.max_invoices + 2)
    assert reads == [1]  # once
    invoices = [sample_invoice(f"FV/N/{i}") for i in range(3)]
    with pytest.raises(BatchError, match="more than 2 invoices"):
        BatchPackage.build(invoices, SymmetricKey.generate(), limits=LimitsInForce(SessionLimits(max_invoices=2)))


def test_a_typed_invoice_past_the_default_size_is_checked_against_the_context_s_limit(ksef: KSeF, big: bytes) -> None:
    # Was: session.send(invoice) and send_batch([invoice]) serialized it with to_xml(), which checks
    # against KSeF's default limits, so a typed invoice the context's raised limit takes was refused
    # ("at most 1000000") before the session's own check (its form, its context's limits) ran.
    invoice = Invoice.from_xml(big, validate=False)
    _raise_limits(ksef, 2)
    with ksef.online_session() as session:
        session.send(invoice)
    ksef.sessions.wait(session.reference_number)
    assert [outcome.code for outcome in session.outcomes()] == [200]
    second = Invoice.from_xml(big.replace(b"FV/BIG/1", b"FV/BIG/5"), validate=False)
    result = ksef.send_batch([second], wait=True)
    assert result.status is not None and result.status.successful_invoice_count == 1
    _raise_limits(ksef, 1)
    with ksef.online_session() as session, pytest.raises(InvoiceRejectedError, match="at most 1000000"):
        session.send(Invoice.from_xml(big.replace(b"FV/BIG/1", b"FV/BIG/6"), validate=False))
