"""ksef.sessions against the emulator on 127.0.0.1: listing, paging, polling, errors."""

from __future__ import annotations

import math

import pytest

from ksef_client import AsyncKSeF, AuthenticationError, BadRequestError, KSeF, PollTimeoutError
from ksef_client.errors import InternalServerError, RetryAfterTooLongError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.models import Session
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP
from tests.helpers import FakeTime, invoice_xml


def _session(backend: KSeFBackend, invoices: list[bytes], nip: str = NIP, close: bool = True) -> Session:
    access = backend.authenticate("Bearer " + backend.mint_access_token(nip))
    session = backend.sessions.open(access)
    for xml in invoices:
        backend.sessions.add_invoice(session, xml)
    if close:
        backend.sessions.close(session)
    return session


class TestSessions:
    @pytest.mark.parametrize("page_size", [10, 137, 1000])
    def test_lists_every_session_through_pages(self, ksef: KSeF, backend: KSeFBackend, page_size: int) -> None:
        access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
        held = {backend.sessions.open(access).reference_number for _ in range(2345)}
        # Up to 235 pages of sessionList (60 an hour): the client's pacing waits hours (of fake
        # time), each wait past the default max_retry_after, which would raise ThrottleWaitTooLongError.
        patient = ksef.with_options(max_retry_after=math.inf)
        listed = [s.reference_number for s in patient.sessions.list("Online", page_size=page_size)]
        patient.close()
        assert len(listed) == 2345
        assert set(listed) == held

    def test_a_saved_cursor_resumes_the_listing(self, ksef: KSeF, backend: KSeFBackend) -> None:
        access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
        for _ in range(25):
            backend.sessions.open(access)
        pager = ksef.sessions.list("Online", page_size=10)
        first = next(pager.pages())
        resumed = ksef.sessions.list("Online", page_size=10, cursor=pager.cursor)
        rest = [s.reference_number for s in resumed]
        assert len(first.items) == 10 and len(rest) == 15
        assert not {s.reference_number for s in first.items} & set(rest)

    def test_status_filter(self, ksef: KSeF, backend: KSeFBackend) -> None:
        ok = _session(backend, [invoice_xml("FV/1")])
        _session(backend, [])  # cancelled: nothing sent
        _session(backend, [invoice_xml("FV/2")], close=False)
        succeeded = [s.reference_number for s in ksef.sessions.list("Online", statuses=["Succeeded"])]
        assert succeeded == [ok.reference_number]
        assert len(list(ksef.sessions.list("Online", statuses=["InProgress", "Cancelled"]))) == 2

    def test_invoices_and_failed_invoices(self, ksef: KSeF, backend: KSeFBackend) -> None:
        xmls = [invoice_xml(f"FV/{i}") for i in range(30)] + [invoice_xml("FV/3"), b"<not-xml"]
        session = _session(backend, xmls)
        invoices = list(ksef.sessions.invoices(session.reference_number, page_size=10))
        failed = list(ksef.sessions.invoices(session.reference_number, failed=True, page_size=10))
        assert [i.ordinal_number for i in invoices] == list(range(1, 33))
        assert [f.status.code for f in failed] == [440, 430]
        duplicate = failed[0].status.extensions
        assert (
            duplicate is not None and duplicate.additional_properties["originalKsefNumber"] == invoices[3].ksef_number
        )

    def test_wait_polls_until_processed(self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
        backend.transitions.session_reads = 4  # four reads in progress, the fifth processed
        session = _session(backend, [invoice_xml("FV/1")])
        status = ksef.sessions.wait(session.reference_number, interval=2)
        assert status.status.code == 200
        assert fake_time.sleeps == [2, 2, 2, 2]

    def test_wait_times_out_cleanly(self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
        backend.transitions.session_reads = 1000
        session = _session(backend, [invoice_xml("FV/1")])
        with pytest.raises(PollTimeoutError, match="still at 170") as raised:
            ksef.sessions.wait(session.reference_number, timeout=30, interval=5)
        assert raised.value.last.status.code == 170
        assert sum(fake_time.sleeps) <= 30

    def test_other_contexts_sessions_are_not_found(self, ksef: KSeF, backend: KSeFBackend) -> None:
        foreign = _session(backend, [invoice_xml("FV/1", seller="1111111111")], nip="1111111111")
        with pytest.raises(BadRequestError) as raised:
            ksef.sessions.get(foreign.reference_number)
        assert raised.value.codes == [21173]
        assert list(ksef.sessions.list("Online")) == []

    def test_no_token_is_an_authentication_error(self, ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
        with KSeF(base_url=ksef_server.base_url) as anonymous, pytest.raises(AuthenticationError) as raised:
            list(anonymous.sessions.list("Online"))
        assert raised.value.status_code == 401

    def test_429_is_retried_after_retry_after(self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
        session = _session(backend, [invoice_xml("FV/1")])
        backend.faults.add(429, operation="sessions_status.get_session_status", times=2, retry_after=3)
        assert ksef.sessions.get(session.reference_number).status.code == 200
        assert fake_time.sleeps == [3, 3]
        assert ksef.send_state.retries == 2

    def test_retry_after_beyond_the_cap_raises(self, ksef: KSeF, backend: KSeFBackend) -> None:
        session = _session(backend, [invoice_xml("FV/1")])
        backend.faults.add(429, operation="sessions_status.get_session_status", retry_after=3600)
        with pytest.raises(RetryAfterTooLongError):
            ksef.sessions.get(session.reference_number)

    def test_gateway_html_errors_are_retried_then_reported(self, ksef: KSeF, backend: KSeFBackend) -> None:
        session = _session(backend, [invoice_xml("FV/1")])
        backend.faults.add(503, times=10)
        with pytest.raises(InternalServerError, match="HTML body"):
            ksef.sessions.get(session.reference_number)
        assert ksef.send_state.retries == 3

    def test_bad_input_fails_before_any_request(self, ksef: KSeF) -> None:
        with pytest.raises(ValueError, match="reference_number"):
            ksef.sessions.get("not-a-reference")
        with pytest.raises(ValueError, match="page_size"):
            ksef.sessions.list("Online", page_size=5000)


class TestAsyncSessions:
    @pytest.mark.anyio
    async def test_lists_and_waits(self, ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
        import httpx

        from ksef_client.mock import create_app

        backend.transitions.session_reads = 2
        session = _session(backend, [invoice_xml(f"FV/{i}") for i in range(12)])
        time = FakeTime()
        transport = httpx.ASGITransport(app=create_app(backend, strict=True))
        async with AsyncKSeF(
            base_url="http://ksef.local/v2",
            access_token=backend.mint_access_token(NIP),
            transport=transport,
            sleep=time.asleep,
            clock=time.clock,
        ) as ksef:
            status = await ksef.sessions.wait(session.reference_number, interval=1)
            numbers = [i.ksef_number async for i in ksef.sessions.invoices(session.reference_number, page_size=10)]
            sessions = [s.reference_number async for s in ksef.sessions.list("Online")]
            upo = await ksef.upo.get_session_upo(session.reference_number)
        assert status.status.code == 200
        assert len(numbers) == 12 and sessions == [session.reference_number]
        assert [d.ksef_number for d in upo.documents] == numbers
