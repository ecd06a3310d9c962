"""Batch sending when things take long or go wrong: a slow upload is still closed, and an error
after the session was opened names it. Each case runs with the sync and the async client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._client import _first_error
from ksef_client._transport import CALLED_OFF
from ksef_client.errors import (
    APIConnectionError,
    BadRequestError,
    BatchError,
    InternalServerError,
    InvoiceRejectedError,
    KSeFError,
)
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP
from ksef_client.mock.server import ThreadedServer
from ksef_client.schemas import FormCode
from ksef_client.sending import BatchResult
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime

UPLOAD_SECONDS = 400.0  # each part's PUT, on the fake clock: longer than the whole deadline


def _invoices(count: int, prefix: str = "SLOW") -> list[bytes]:
    return [sample_invoice(f"{prefix}/{i}", seller_nip=NIP) for i in range(count)]


class SlowUplink(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Real HTTP to the emulator; every part PUT takes ``seconds`` of the fake clock. Records each
    request's method, path and read timeout."""

    def __init__(self, time: FakeTime, seconds: float) -> None:
        self.time, self.seconds = time, seconds
        self.sync, self.async_ = httpx.HTTPTransport(), httpx.AsyncHTTPTransport()
        self.sent: list[tuple[str, str, float | None]] = []

    def _note(self, request: httpx.Request) -> None:
        timeout = request.extensions.get("timeout") or {}
        self.sent.append((request.method, request.url.path, timeout.get("read")))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._note(request)
        response = self.sync.handle_request(request)
        if request.method == "PUT":
            self.time.now += self.seconds
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._note(request)
        response = await self.async_.handle_async_request(request)
        if request.method == "PUT":
            self.time.now += self.seconds
        return response

    def puts(self) -> list[tuple[str, str, float | None]]:
        return [sent for sent in self.sent if sent[0] == "PUT"]

    def closes(self) -> int:
        return sum(path.endswith("/close") for _, path, _ in self.sent)


Batch = Callable[..., BatchResult]


@pytest.fixture(params=["sync", "async"])
def send_batch(
    request: pytest.FixtureRequest, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> Callable[..., BatchResult]:
    """``send_batch(invoices, transport=None, deadline=300, **options)`` through a new sync or async
    client of the emulator on the fake clock."""

    def run(invoices: list[bytes], transport: Any = None, deadline: float = 300.0, **options: Any) -> BatchResult:
        client: dict[str, Any] = {
            "base_url": ksef_server.base_url,
            "access_token": backend.mint_access_token(NIP),
            "clock": fake_time.clock,
            "deadline": deadline,
            "transport": transport,
        }
        if request.param == "sync":
            with KSeF(**client, sleep=fake_time.sleep) as ksef:
                return ksef.send_batch(invoices, **options)

        async def main() -> BatchResult:
            async with AsyncKSeF(**client, sleep=fake_time.asleep) as ksef:
                return await ksef.send_batch(invoices, **options)

        return anyio.run(main)

    return run


def test_an_upload_longer_than_the_deadline_is_still_closed(
    send_batch: Batch, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # Three parts, one at a time, each PUT 400 s on a client whose deadline is 300 s (3 x 100 MB
    # on a slow uplink with the default deadline); the first PUT of part 2 meets a 503 after its
    # 400 s and is sent again. Was: no close sent (APITimeoutError), or no repeat of the PUT.
    uplink = SlowUplink(fake_time, UPLOAD_SECONDS)
    backend.faults.add(503, operation="storage.upload_part", times=1)
    result = send_batch(_invoices(60), uplink, part_size=20_000, workers=1, wait=True)
    assert result.part_count == 3 and len(uplink.puts()) == 4 and uplink.closes() == 1
    assert result.status is not None and result.status.successful_invoice_count == 60
    # Each PUT is bounded by the client's timeout= (30 s), not cut to what was left of a deadline.
    assert {read for _, _, read in uplink.puts()} == {30.0}


def test_the_open_and_close_still_meet_the_deadline(
    send_batch: Batch, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # Only the upload is exempt: a close that the server holds past the deadline (here: retried
    # 503s whose waits outlast it) still ends in an error, which names the session.
    backend.faults.add(503, operation="batch_session.close_batch_session", times=1000)
    with pytest.raises(KSeFError) as caught:
        send_batch(_invoices(3), SlowUplink(fake_time, UPLOAD_SECONDS), deadline=1.0)
    (session,) = backend.sessions.state.sessions
    assert caught.value.session_reference_number == session
    assert backend.sessions.state.sessions[session].status.code == 100  # still open


def test_an_error_after_the_open_names_the_session(send_batch: Batch, backend: KSeFBackend) -> None:
    backend.faults.add(400, operation="batch_session.close_batch_session", times=1)  # refused, not repeated
    with pytest.raises(BadRequestError) as caught:
        send_batch(_invoices(3))
    (session,) = backend.sessions.state.sessions
    assert caught.value.session_reference_number == session
    assert any(session in note and "may not be closed" in note for note in caught.value.__notes__)


def test_an_error_while_waiting_says_the_batch_was_sent(send_batch: Batch, backend: KSeFBackend) -> None:
    # Closed and processing: the caller must wait for this session, not send the batch again.
    backend.faults.add(503, operation="sessions_status.get_session_status", times=4)  # 1 + 3 retries
    with pytest.raises(InternalServerError) as caught:
        send_batch(_invoices(3), wait=True)
    (session,) = backend.sessions.state.sessions
    assert caught.value.session_reference_number == session
    assert any(f"sessions.wait({session!r})" in note for note in caught.value.__notes__)


def test_errors_before_the_open_name_no_session(send_batch: Batch, backend: KSeFBackend) -> None:
    backend.faults.add(400, operation="batch_session.open_batch_session", times=1)
    with pytest.raises(BadRequestError) as caught:
        send_batch(_invoices(3))
    assert caught.value.session_reference_number is None and not getattr(caught.value, "__notes__", [])


def test_a_failed_upload_is_a_batch_error_naming_the_session(send_batch: Batch, backend: KSeFBackend) -> None:
    # Was, with AsyncKSeF: an ExceptionGroup from the uploads' task group, which `except
    # KSeFError` / `except BatchError` does not catch; the sync client raised BatchError.
    backend.faults.add(403, operation="storage.upload_part", times=1)  # refused, not repeated
    with pytest.raises(BatchError, match="upload of part 1 failed: HTTP 403") as caught:
        send_batch(_invoices(3))
    (session,) = backend.sessions.state.sessions
    assert caught.value.session_reference_number == session
    assert any(session in note and "may not be closed" in note for note in caught.value.__notes__)


class Stopped(Exception):
    """A ``progress`` callback's own exception (no ``KSeFError``)."""


@pytest.mark.parametrize("raised", [Stopped, KeyboardInterrupt])
def test_whatever_ends_the_batch_after_the_open_names_the_session(
    send_batch: Batch, backend: KSeFBackend, request: pytest.FixtureRequest, raised: type[BaseException]
) -> None:
    # docs/sending.md, "When a batch fails": an error after the open names the session, as
    # `error.session_reference_number` and a note. Was: the attribute only on a KSeFError (a
    # KeyboardInterrupt, a cancellation or a progress callback's exception had the note alone).
    if raised is KeyboardInterrupt and "async" in request.node.callspec.id:
        pytest.skip("a KeyboardInterrupt inside an event loop's task is the loop's to handle")

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "upload":
            raise raised("stop")

    with pytest.raises(raised) as caught:
        send_batch(_invoices(3), progress=progress)
    (session,) = backend.sessions.state.sessions
    notes = getattr(caught.value, "__notes__", [])
    assert any(session in note and "may not be closed" in note for note in notes)
    assert getattr(caught.value, "session_reference_number", None) == session


class FirstPartHeld(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Real HTTP to the emulator; part 1's first PUT waits until the storage has answered another
    part's PUT (a slow part under way when another fails). No timer: each side waits for the
    other's request."""

    def __init__(self, backend: KSeFBackend) -> None:
        self.backend = backend
        self.sync, self.async_ = httpx.HTTPTransport(), httpx.AsyncHTTPTransport()
        self.lock, self.held = threading.Lock(), False
        self.answered = threading.Event()
        self.async_answered: anyio.Event | None = None

    def _part(self, request: httpx.Request) -> int | None:
        slot = self.backend.storage.upload_slot(request.url.path.rsplit("/", 1)[-1])
        return slot[1] if request.method == "PUT" and slot is not None else None

    def _hold(self, request: httpx.Request) -> bool:
        with self.lock:
            hold = not self.held and self._part(request) == 1
            self.held = self.held or hold
            return hold

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        held = self._hold(request)
        if held:
            assert self.answered.wait(timeout=60), "no other part was answered"
        try:
            response = self.sync.handle_request(request)
            if held:  # the storage's DROP is a body broken off: it fails here, where the wait below sees it
                response.read()
        except httpx.TransportError:
            if held:
                self._other_failed(request)
            raise
        if self._part(request) not in (None, 1):
            self.answered.set()
        if held and response.status_code >= 400:
            self._other_failed(request)
        return response

    @staticmethod
    def _other_failed(request: httpx.Request) -> None:
        # Part 1's failed attempt comes back once the other part's failure is known (the sync
        # upload's event, which the transport reads before a repeat): no race with its thread.
        assert request.extensions[CALLED_OFF].wait(timeout=60), "the other part's failure never came"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answered = self.async_answered = self.async_answered or anyio.Event()
        if self._hold(request):
            await answered.wait()
        response = await self.async_.handle_async_request(request)
        if self._part(request) not in (None, 1):
            answered.set()
        return response


@pytest.mark.parametrize("fault", [503, DROP], ids=["503", "dropped"])
def test_after_a_refused_part_no_other_is_uploaded(
    send_batch: Batch, backend: KSeFBackend, request: pytest.FixtureRequest, fault: int
) -> None:
    # Part 1 is under way (held) when the storage refuses part 2 (403, not repeated); part 1 then
    # meets a 503 or a dropped connection, which the retries would repeat. After the refusal no part may start and none
    # may be repeated: the session is never closed, so every part uploaded then is wasted (up to
    # 50 of 100 MB). Was (sync): pool.map raised a failure only when it reached it in part order,
    # and while it waited for part 1 the other thread went on uploading every part left (the
    # reviewer: parts 3-7 after part 2 was refused while part 1 was slow); then, part 1 went
    # through its three repeats and was stored. AsyncKSeF's task group stops at once. Counted by
    # the emulator: the parts it stored and the faults it gave.
    backend.faults.add(403, operation="storage.upload_part")  # the first to arrive: part 2
    backend.faults.add(fault, operation="storage.upload_part", times=3)
    with pytest.raises(BatchError, match="upload of part 2 failed: HTTP 403") as caught:
        send_batch(_invoices(120), FirstPartHeld(backend), part_size=20_000, workers=2)
    (session,) = backend.sessions.state.sessions.values()
    assert session.batch is not None and len(session.batch.parts) >= 5
    stored = [part.ordinal_number for part in session.batch.parts if part.data is not None]
    assert stored == []
    if "async" in request.node.callspec.id:  # part 1 cancelled with the task group (its 503 or before)
        assert backend.faults.injected in (1, 2)
    else:  # part 1 was under way: its attempt ended in the 503, and no repeat followed
        assert backend.faults.injected == 2
        (other,) = caught.value.__context__.exceptions
        if fault == 503:
            assert "upload of part 1 failed: HTTP 503" in str(other)
        else:  # the error's text is the OS's (a reset, or the server's disconnect)
            assert isinstance(other, APIConnectionError) and "/_upload/" in str(other)
        assert "repeats of part 1 were called off" in " ".join(other.__notes__)


def test_a_part_refused_after_another_is_not_said_to_be_called_off(
    send_batch: Batch, backend: KSeFBackend, request: pytest.FixtureRequest
) -> None:
    # Part 2 is refused (403), then part 1, under way meanwhile, is refused too: a 403 is never
    # repeated, so no repeat of it was called off. Was (review s11-final, L2): the note said so of
    # any part failing after another had.
    backend.faults.add(403, operation="storage.upload_part", times=2)
    with pytest.raises(BatchError, match="upload of part 2 failed: HTTP 403") as caught:
        send_batch(_invoices(120), FirstPartHeld(backend), part_size=20_000, workers=2)
    if "sync" in request.node.callspec.id.split("-"):  # part 1's own failure (async: cancelled)
        assert isinstance(caught.value.__context__, BaseExceptionGroup)
        (other,) = caught.value.__context__.exceptions
        assert "upload of part 1 failed: HTTP 403" in str(other)
        assert not any("called off" in note for note in getattr(other, "__notes__", []))


@pytest.mark.parametrize("workers", [1, 2])
def test_after_the_first_refusals_no_other_part_is_uploaded(
    send_batch: Batch, backend: KSeFBackend, workers: int
) -> None:
    # The storage refuses the first PUT of each worker: nothing is under way when the first
    # refusal comes back, so nothing is stored.
    backend.faults.add(403, operation="storage.upload_part", times=workers)
    with pytest.raises(BatchError, match="HTTP 403"):
        send_batch(_invoices(120), part_size=20_000, workers=workers)
    (session,) = backend.sessions.state.sessions.values()
    assert session.batch is not None and len(session.batch.parts) >= 5
    assert [part.ordinal_number for part in session.batch.parts if part.data is not None] == []
    assert 1 <= backend.faults.injected <= workers


def test_of_several_failed_uploads_the_first_ksef_error_is_raised() -> None:
    first, other, bug = BatchError("part 2"), BatchError("part 3"), OSError("disk")
    group = BaseExceptionGroup("uploads", [bug, first, ExceptionGroup("nested", [other])])
    raised = _first_error(group)
    assert raised is first
    assert isinstance(raised.__context__, BaseExceptionGroup)
    assert list(raised.__context__.exceptions) == [bug, other]
    assert "2 other upload(s) failed too" in raised.__notes__[0]
    assert _first_error(ExceptionGroup("one", [bug])) is bug  # no KSeFError: the first error, unwrapped


def test_invoices_are_checked_before_anything_is_sent(
    send_batch: Batch, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # As online_session(validate=True) does: was, a package KSeF refuses was opened, uploaded and
    # closed, and only processing rejected it (wait=True returned without an error).
    invoices = [("good.xml", sample_invoice("V/1")), ("bad.xml", b"<Faktura/>"), ("worse.xml", b"not xml")]
    wire = SlowUplink(fake_time, 0)
    with pytest.raises(InvoiceRejectedError, match=r"invoice 2 \(bad\.xml\) does not match FA \(3\)"):
        send_batch(invoices, wire)
    with pytest.raises(InvoiceRejectedError, match=r"invoice 1 \(invoice-00001\.xml\) .*not well-formed"):
        send_batch([b"not xml"], wire)
    assert wire.sent == [] and backend.sessions.state.sessions == {}
    result = send_batch(invoices, wire, validate=False, wait=True)  # KSeF's own verdict then
    assert result.status is not None
    assert (result.status.successful_invoice_count, result.status.failed_invoice_count) == (1, 2)


@pytest.mark.parametrize("form", ["PEF(3)", "PEF_KOR (3)", FormCode("PEF (3)", "2-1", "PEF")])
def test_a_pef_form_is_refused_before_anything_is_read_or_sent(
    send_batch: Batch, backend: KSeFBackend, fake_time: FakeTime, form: str | FormCode
) -> None:
    # OpenBatchSessionRequest.formCode, "Obsługiwane schematy" (API 2.9.0): FA (2), FA (3), FA_RR (1);
    # the PEF forms are listed for online sessions only, and KSeF refuses them for a batch with
    # 400 / 21405. Was: the package was built and the session's opening sent, to be refused.
    read: list[int] = []

    def invoices() -> Iterator[bytes]:
        read.append(1)
        yield sample_invoice("PEF/1", seller_nip=NIP)

    uplink = SlowUplink(fake_time, 0.0)
    with pytest.raises(ValueError, match="PEF invoices go through an online session") as caught:
        send_batch(invoices(), uplink, form=form)
    assert "take FA (3), FA (2), FA_RR (1) only" in str(caught.value) and "21405" in str(caught.value)
    assert 'online_session(form="PEF' in str(caught.value)
    assert read == [] and uplink.sent == [] and backend.sessions.state.sessions == {}


@pytest.mark.parametrize("form", ["FA(2)", "FA_RR(1)"])
def test_the_other_forms_the_spec_lists_for_batch_are_sent(send_batch: Batch, form: str) -> None:
    # validate=False: the point is the form, which the emulator takes for a batch (an FA(3) file
    # under another form is KSeF's to refuse per invoice, after the session opened).
    result = send_batch(_invoices(1, form), form=form, validate=False)
    assert result.invoice_count == 1
