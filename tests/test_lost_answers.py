"""An invoice whose send raised when it may have reached KSeF (review of retries, finding 1).

The error of ``session.send`` says whether KSeF may hold the invoice (``maybe_sent``), names it
(its hash as KSeF computes it, its number) and the session; ``session.outcomes()`` reports it,
found in the session's listing by its hash: API 2.9.0 ``SessionInvoiceStatusResponse`` requires
``invoiceHash``, "Skrót SHA256 faktury, zakodowany w formacie Base64", and the guide's changelog
marks it "zawsze zwracaną". Sending it again is safe: faktury/weryfikacja-faktury.md, "KSeF
wykrywa duplikaty faktur globalnie ... NIP sprzedawcy, Rodzaj faktury, Numer faktury (P_2) ...
W przypadku duplikatu zwracany jest kod błędu 440".

Faults come from the emulator (``backend.faults``): ``DROP_AFTER`` stores the invoice and loses
the answer, ``DROP`` breaks the connection before the request is handled.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._body import BodyLimits
from ksef_client._flows import CallDeadline
from ksef_client._retry import DeadlineExceeded, RetryBudget, never_sent
from ksef_client.crypto import sha256_b64
from ksef_client.errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    InternalServerError,
    KSeFError,
    RateLimitError,
    ResponseFormatError,
    ResponseTooLargeError,
    ThrottleWaitTooLongError,
    make_status_error,
)
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.faults import DROP, DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from ksef_client.outcomes import SentInvoice, session_outcomes
from ksef_client.sending import may_have_reached_ksef
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.helpers import FakeTime
from tests.hostile import Tamper
from tests.test_outcomes import _listed
from tests.test_retry import Clients

SEND = "online_session.send_invoice"


def _lost(backend: KSeFBackend, repeats: int = 3) -> None:
    """The next send is stored by KSeF and its answer lost; its ``repeats`` do not get through."""
    backend.faults.add(DROP_AFTER, operation=SEND)
    backend.faults.add(DROP, operation=SEND, times=repeats)


class TestTheError:
    def test_names_the_invoice_and_the_session_and_says_ksef_may_hold_it(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        invoice = sample_invoice("FV/LOST/1")
        with ksef.online_session() as session:
            _lost(backend)
            with pytest.raises(APIConnectionError) as raised:
                session.send(invoice)
        error = raised.value
        assert error.maybe_sent is True  # was: a bare APIConnectionError
        assert error.invoice_hash == sha256_b64(invoice)  # KSeF's invoiceHash of the XML
        assert error.invoice_number == "FV/LOST/1"
        assert error.session_reference_number == session.reference_number
        (note,) = error.__notes__
        assert "'FV/LOST/1'" in note and sha256_b64(invoice) in note and str(session.reference_number) in note
        assert "may have reached KSeF" in note and "session.outcomes()" in note and "440" in note

    def test_a_technical_correction_whose_answer_was_lost_gets_its_own_advice(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        # The note said a resend "ends as a 440 duplicate naming its KSeF number"; for a correction
        # KSeF already took, a resend is refused first: the spec's send-invoice 400 table, "21166 |
        # Korekta techniczna niedostępna. | Faktura posiada już przetworzoną prawidłowo korektę
        # techniczną." The SDK's own repeat meets that 21166 here (maybe_sent: it was repeated).
        rejected = sample_invoice("FV/TK/LOST").replace(b"<P_2>", b"<P_2x>").replace(b"</P_2>", b"</P_2x>")
        with ksef.online_session(validate=False) as first:
            first.send(rejected, offline=True)
        fixed = sample_invoice("FV/TK/LOST")
        with ksef.online_session() as session:
            backend.faults.add(DROP_AFTER, operation=SEND)  # taken, the answer lost; the repeat: 21166
            with pytest.raises(BadRequestError) as raised:
                session.send(fixed, hash_of_corrected_invoice=sha256_b64(rejected))
            with pytest.raises(BadRequestError) as again:  # what the note now says a resend does
                session.send(fixed, hash_of_corrected_invoice=sha256_b64(rejected))
        assert raised.value.maybe_sent is True and 21166 in raised.value.codes and 21166 in again.value.codes
        (note,) = raised.value.__notes__
        assert "technical correction 'FV/TK/LOST'" in note and sha256_b64(rejected) in note
        assert "session.outcomes()" in note and "21166" in note and "440" not in note
        # The resend, refused at its only attempt, is not taken, and sending it again is no cure.
        (refused,) = again.value.__notes__
        assert (
            again.value.maybe_sent is False and "do not send it again" in refused and "(in a new session" not in refused
        )
        ksef.sessions.wait(str(session.reference_number))
        (taken,) = session.outcomes()  # the lost send; the refused resend was not taken
        assert taken.accepted and taken.invoice_hash == sha256_b64(fixed)

    def test_a_refusal_without_repeats_is_not_sent(self, ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
        # A 429 is refused unprocessed (limity/limity-api.md); with no repeat no earlier attempt
        # can have reached KSeF: maybe_sent False, and the invoice is not in outcomes().
        with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP), max_retries=0) as ksef:
            with ksef.online_session() as session:
                backend.faults.add(429, operation=SEND, retry_after=1)
                with pytest.raises(RateLimitError) as raised:
                    session.send(sample_invoice("FV/429/1"))
            ksef.sessions.wait(str(session.reference_number))
            assert session.outcomes() == []
        assert raised.value.maybe_sent is False
        assert raised.value.session_reference_number == session.reference_number
        assert "was not taken by KSeF" in raised.value.__notes__[0]

    @pytest.mark.parametrize("second", [429, 400])
    def test_repeats_after_429s_only_are_not_sent(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime, second: int
    ) -> None:
        # A 429 is refused unprocessed, so its repeats leave nothing KSeF may hold: a 429 at every
        # attempt, or a 429 and then a 400, is "not sent". Was: maybe_sent True (any repeat counted)
        # and the note "may have reached KSeF ... wait for the session" for an invoice never taken.
        token = backend.mint_access_token(NIP)
        with KSeF(base_url=ksef_server.base_url, access_token=token, sleep=fake_time.sleep) as ksef:
            with ksef.online_session() as session:
                backend.faults.add(429, operation=SEND, retry_after=1, times=4 if second == 429 else 1)
                if second == 400:
                    backend.faults.add(400, operation=SEND)
                with pytest.raises(KSeFError) as raised:
                    session.send(sample_invoice("FV/429/2"))
            ksef.sessions.wait(str(session.reference_number))
            assert session.outcomes() == [] and session.sent == []
        assert ksef.send_state.retries >= 1  # it was repeated
        assert isinstance(raised.value, RateLimitError if second == 429 else BadRequestError)
        assert raised.value.maybe_sent is False and "was not taken by KSeF" in raised.value.__notes__[0]

    @pytest.mark.parametrize("when", ["before", "after a 401"])
    def test_a_failed_token_refresh_is_not_sent(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime, when: str
    ) -> None:
        # The refresh the send needs fails (503 at each of its attempts): before the send, when the
        # token is about to expire, or after KSeF refused the send with a 401. The error is the
        # refresh's, and the invoice never went out after it. Was: maybe_sent True (a 5xx).
        creds = self_signed_certificate()
        with KSeF(base_url=ksef_server.base_url, sleep=fake_time.sleep) as ksef:
            ksef.auth.login_with_certificate(creds, context_nip=creds.nip)
            with ksef.online_session() as session:
                if when == "before":  # the client knows the token expires within its margin
                    ksef._tokens.valid_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
                else:
                    backend.faults.add(401, operation=SEND)
                backend.faults.add(503, operation="auth.refresh_token", times=4)
                with pytest.raises(InternalServerError, match="refresh") as raised:
                    session.send(sample_invoice("FV/REFRESH/1", seller_nip=creds.nip))
                assert raised.value.maybe_sent is False and "was not taken by KSeF" in raised.value.__notes__[0]
                assert session.sent == []
                session.send(sample_invoice("FV/REFRESH/1", seller_nip=creds.nip))  # what the note says
            ksef.sessions.wait(str(session.reference_number))
            (outcome,) = session.outcomes()
        assert outcome.accepted and outcome.invoice_number == "FV/REFRESH/1"

    def test_the_deadline_passing_after_a_request_went_out(
        self, ksef_server: ThreadedServer, backend: KSeFBackend
    ) -> None:
        # The first attempt is stored and its answer lost; while the client waits to repeat it,
        # the call's deadline passes: the timeout may not read as "not sent".
        time = FakeTime()

        def slow_sleep(seconds: float) -> None:
            time.sleep(seconds + 100)  # the host was suspended while waiting

        options = {"access_token": backend.mint_access_token(NIP), "clock": time.clock, "sleep": slow_sleep}
        with KSeF(base_url=ksef_server.base_url, deadline=30, **options) as ksef:  # type: ignore[arg-type]
            with ksef.online_session() as session:
                backend.faults.add(DROP_AFTER, operation=SEND)
                with pytest.raises(APITimeoutError, match="deadline") as raised:
                    session.send(sample_invoice("FV/DEADLINE/1"))
            ksef.sessions.wait(str(session.reference_number))
            (outcome,) = session.outcomes()
        assert raised.value.maybe_sent is True
        assert outcome.kind == "accepted" and outcome.invoice_number == "FV/DEADLINE/1"

    def test_an_answer_past_the_body_cap_is_maybe_sent(self, ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
        # Was: maybe_sent False and "was not taken by KSeF ... send it again", the attempt dropped
        # from session.sent, although KSeF had stored the invoice and answered 202 (the answer,
        # padded by a proxy, was only past the client's body cap: ResponseTooLargeError).
        time = FakeTime()
        with KSeF(
            base_url=ksef_server.base_url,
            access_token=backend.mint_access_token(NIP),
            transport=PaddedSendAnswer(),
            body_limits=BodyLimits(json=64 * 1024),
            sleep=time.sleep,
            clock=time.clock,
        ) as ksef:
            with ksef.online_session() as session, pytest.raises(ResponseTooLargeError) as raised:
                session.send(sample_invoice("FV/BIG/1"))
            ksef.sessions.wait(str(session.reference_number))
            (outcome,) = session.outcomes()
        assert raised.value.maybe_sent is True and "may have reached KSeF" in raised.value.__notes__[0]
        assert [(sent.reference_number, sent.invoice_number) for sent in session.sent] == [(None, "FV/BIG/1")]
        assert outcome.kind == "accepted" and outcome.invoice_number == "FV/BIG/1"

    @pytest.mark.anyio
    async def test_an_unreadable_answer_is_maybe_sent_in_the_async_client(self, backend: KSeFBackend) -> None:
        # In-process (ASGI) the lost answer arrives as a 200 with half a body: KSeF took the
        # invoice, the answer is unreadable (ResponseFormatError) and not repeated.
        time = FakeTime()
        async with AsyncKSeF(
            base_url="http://ksef.local/v2",
            access_token=backend.mint_access_token(NIP),
            transport=httpx.ASGITransport(app=create_app(backend)),
            sleep=time.asleep,
            clock=time.clock,
        ) as client:
            async with client.online_session() as session:
                backend.faults.add(DROP_AFTER, operation=SEND)
                with pytest.raises(ResponseFormatError) as raised:
                    await session.send(sample_invoice("FV/ASYNC/1"))
            await client.sessions.wait(str(session.reference_number))
            (outcome,) = await session.outcomes()
            numbers = await session.ksef_numbers()
        assert raised.value.maybe_sent and raised.value.invoice_number == "FV/ASYNC/1"
        assert outcome.kind == "accepted" and numbers == [outcome.ksef_number]


class TestOutcomes:
    def test_an_invoice_ksef_took_whose_answer_was_lost_is_in_outcomes(self, ksef: KSeF, backend: KSeFBackend) -> None:
        invoice = sample_invoice("FV/LOST/2")
        with ksef.online_session() as session:
            session.send(sample_invoice("FV/OK/2"))
            _lost(backend)
            with pytest.raises(APIConnectionError):
                session.send(invoice)
        ksef.sessions.wait(str(session.reference_number))
        listed = {o.invoice_number: o for o in ksef.sessions.outcomes(str(session.reference_number))}
        first, lost = session.outcomes()  # was: only the first one
        assert first.invoice_number == "FV/OK/2" and first.accepted
        assert lost == listed["FV/LOST/2"] and lost.accepted and lost.invoice_hash == sha256_b64(invoice)
        assert session.ksef_numbers() == [first.ksef_number, lost.ksef_number]
        # repeated: the answer of the first attempt was lost, and the retry policy sent it again
        assert session.sent[1] == SentInvoice(sha256_b64(invoice), None, "FV/LOST/2", repeated=True)

    def test_sending_it_again_in_the_session_is_a_440_naming_its_number(self, ksef: KSeF, backend: KSeFBackend) -> None:
        invoice = sample_invoice("FV/LOST/3")
        with ksef.online_session() as session:
            _lost(backend)
            with pytest.raises(APIConnectionError):
                session.send(invoice)
            session.send(invoice)  # what the note advises
        ksef.sessions.wait(str(session.reference_number))
        lost, again = session.outcomes()
        assert lost.accepted and lost.ksef_number is not None
        assert (again.kind, again.code, again.duplicate_of) == ("duplicate", 440, lost.ksef_number)
        assert session.ksef_numbers() == [lost.ksef_number, lost.ksef_number]

    def test_an_invoice_that_never_reached_ksef_is_unknown_without_a_reference(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        # Every attempt broke before KSeF handled it, but the client cannot know that (a broken
        # connection may come after KSeF stored the invoice): maybe_sent, and outcomes() tells.
        with ksef.online_session() as session:
            backend.faults.add(DROP, operation=SEND, times=4)
            with pytest.raises(APIConnectionError) as raised:
                session.send(sample_invoice("FV/NEVER/1"))
        ksef.sessions.wait(str(session.reference_number))
        (outcome,) = session.outcomes()
        assert raised.value.maybe_sent
        assert (outcome.kind, outcome.reference_number, outcome.invoice_number) == ("unknown", None, "FV/NEVER/1")
        assert "send it again" in outcome.description and session.ksef_numbers() == [None]


SESSION = "20261125-SO-0000000000-0000000000-00"
HASH_A, HASH_B = "A" * 43 + "=", "B" * 43 + "="


def test_nothing_ksef_lists_is_left_out() -> None:
    # A hidden attempt (reference never seen) whose hash no send has is reported after the sends.
    listing = [
        _listed("R1", 200, ksefNumber="N1", invoiceHash=HASH_A),
        _listed("R9", 200, ksefNumber="N9", invoiceHash=HASH_B, ordinalNumber=2),
    ]
    outcomes = session_outcomes(listing, [SentInvoice(HASH_A, "R1")], SESSION)
    assert [(o.reference_number, o.ksef_number) for o in outcomes] == [("R1", "N1"), ("R9", "N9")]


def test_a_lost_send_takes_the_acceptance_among_its_attempts() -> None:
    # Two hidden attempts of one invoice (the retry policy sent it twice, both answers lost): the
    # send's outcome is the acceptance, the other attempt (440 naming it) is folded into it.
    duplicate = {"code": 440, "description": "Duplikat faktury", "extensions": {"originalKsefNumber": "N1"}}
    listing = [
        _listed("R1", 200, ksefNumber="N1", invoiceHash=HASH_A, ordinalNumber=1),
        _listed("R2", 440, invoiceHash=HASH_A, ordinalNumber=2, status=duplicate),
    ]
    (outcome,) = session_outcomes(listing, [SentInvoice(HASH_A)], SESSION)
    assert (outcome.reference_number, outcome.kind, outcome.ksef_number) == ("R1", "accepted", "N1")


def test_what_may_have_reached_ksef() -> None:
    # Not taken only when known: a 4xx, a request that never went out (no connection; the deadline
    # before it, in the flow or the transport), the client's own pacing; everything else may be
    # in KSeF (docs/sending.md, "When send raises"). One test of "never sent" (_retry.never_sent)
    # serves the retry policy and this.
    request = httpx.Request("POST", "https://ksef.test/v2/sessions/online/x/invoices")
    fresh, repeated = RetryBudget(), RetryBudget(used=1, uncertain=1)
    # Repeats only after answers KSeF gives unprocessed (429s, a refreshed 401): as fresh. A
    # refresh that failed (the error is its own): the send did not go out after it.
    refused_repeats, refreshing = RetryBudget(used=3), RetryBudget(refreshing=True)

    def failure(cause: Exception | None, kind: type[APIConnectionError] = APIConnectionError) -> APIConnectionError:
        error = kind("x")
        error.__cause__ = cause
        return error

    def answered(status: int) -> KSeFError:
        return make_status_error(httpx.Response(status, request=request))

    refused = httpx.ConnectError("refused", request=request)
    time = FakeTime()
    with KSeF(base_url="https://ksef.test/v2", access_token="t", deadline=10, clock=time.clock) as ksef:
        deadline = CallDeadline(ksef)
    time.sleep(10)
    with pytest.raises(APITimeoutError) as flow_deadline:
        deadline.check()
    not_taken = [
        failure(refused),
        failure(DeadlineExceeded("passed", request=request, nothing_sent=True), APITimeoutError),
        flow_deadline.value,  # the flow's check before the send step
        answered(400),
        answered(429),
        ThrottleWaitTooLongError(200, 120, "invoiceSend", "POST", "/v2/sessions/online/x/invoices"),
    ]
    may_be_taken = [
        failure(httpx.ReadTimeout("slow", request=request), APITimeoutError),
        failure(DeadlineExceeded("passed", request=request), APITimeoutError),  # mid-body
        failure(None),  # nothing known about it
        answered(500),
        answered(503),
        ResponseFormatError("half a body"),
        ResponseTooLargeError("json", 1024),
        KSeFError("anything else"),
    ]
    assert [may_have_reached_ksef(error, fresh) for error in not_taken] == [False] * len(not_taken)
    assert all(may_have_reached_ksef(error, fresh) for error in may_be_taken)
    assert all(may_have_reached_ksef(error, repeated) for error in not_taken)  # an earlier attempt
    assert not any(may_have_reached_ksef(error, refused_repeats) for error in not_taken)  # was: all True
    assert not any(may_have_reached_ksef(error, refreshing) for error in may_be_taken)
    assert may_have_reached_ksef(answered(503), RetryBudget(used=1, uncertain=1, refreshing=True))
    assert never_sent(refused) and not never_sent(httpx.ReadTimeout("slow", request=request))


class PaddedSendAnswer(httpx.BaseTransport):
    """The emulator over HTTP, but the 202 answer to an invoice's send comes padded with JSON
    whitespace to 100 KiB (as a broken proxy might send it): past a 64 KiB body cap."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/invoices") and response.status_code == 202:
            body = response.read() + b" " * (100 * 1024)
            # streamed (read, and capped, by the client as it comes)
            return httpx.Response(202, headers={"content-type": "application/json"}, stream=httpx.ByteStream(body))
        return response


@pytest.mark.anyio
async def test_overlapping_async_sends_keep_their_places(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # Three sends at once in one session, no repeats; one of them (whichever takes the fault)
    # raises with maybe_sent. Each send keeps the place it started in; outcomes() has all three.
    import anyio

    names = ["FV/GATHER/1", "FV/GATHER/2", "FV/GATHER/3"]
    invoices = {name: sample_invoice(name) for name in names}  # made once: they carry a timestamp
    errors: list[Exception] = []
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, max_retries=0, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        async with client.online_session() as session:
            backend.faults.add(DROP_AFTER, operation=SEND)

            async def send(name: str) -> None:
                try:
                    await session.send(invoices[name])
                except APIConnectionError as error:
                    errors.append(error)

            async with anyio.create_task_group() as group:
                for name in names:
                    group.start_soon(send, name)
        await client.sessions.wait(str(session.reference_number))
        outcomes = await session.outcomes()
    assert len(errors) == 1 and getattr(errors[0], "maybe_sent", False)
    assert [o.invoice_number for o in outcomes] == names and all(o.accepted for o in outcomes)
    assert [s.invoice_hash for s in session.sent] == [sha256_b64(invoices[n]) for n in names]


# --- a send the retry policy repeated (review of transport, finding 1) ----------------------------
# A repeat of a send KSeF took is a 440: faktury/weryfikacja-faktury.md, "W przypadku duplikatu
# zwracany jest kod błędu 440 („Duplikat faktury”)"; the spec's SessionInvoiceStatusResponse gives a
# 440 the extensions 'originalSessionReferenceNumber', 'originalKsefNumber' (the accepted attempt)
# and no ksefNumber. What send() returns is the last attempt's reference (docs/sending.md,
# "Duplicates and lost answers"): the session's record and a WARNING say the send was repeated, and
# ksef.sessions.outcomes() marks that 440 as a repeat of the accepted file.


@pytest.fixture(params=["sync", "async"])
def clients(request: pytest.FixtureRequest, ksef_server: ThreadedServer, backend: KSeFBackend) -> Clients:
    """Runs a call on a sync or an async client of the emulator (``test_retry.Clients``)."""
    return Clients(request.param, ksef_server.base_url, backend.mint_access_token(NIP), FakeTime())


def _send_repeated_after(backend: KSeFBackend, fault: int) -> Callable[[Any], Any]:
    """``call(client)`` for ``Clients.run``: open a session, send one invoice whose first attempt
    meets ``fault`` (injected into ``backend``), close; the session."""

    def call(ksef: Any) -> Any:
        session = ksef.online_session()
        invoice = sample_invoice("FV/REP/1")
        if isinstance(ksef, KSeF):
            with session:
                backend.faults.add(fault, operation=SEND, retry_after=1)
                session.send(invoice)
            return session

        async def send() -> Any:
            async with session:
                backend.faults.add(fault, operation=SEND, retry_after=1)
                await session.send(invoice)
            return session

        return send()

    return call


@pytest.mark.parametrize(
    ("fault", "repeated"),
    [(DROP_AFTER, True), (503, True), (DROP, True), (429, False)],
    ids=["answer-lost", "5xx", "connection-broken", "429"],
)
def test_a_send_repeated_after_an_attempt_ksef_may_have_taken_says_so(
    clients: Clients, backend: KSeFBackend, caplog: pytest.LogCaptureFixture, fault: int, repeated: bool
) -> None:
    # A broken connection or a 5xx may come after KSeF took the invoice (the retry's repeat is then
    # a 440); a 429 is refused unprocessed (limity/limity-api.md), so its repeat is the invoice.
    with caplog.at_level(logging.WARNING, logger="ksef_client"):
        session = clients.run(3, _send_repeated_after(backend, fault))
    (sent,) = session.sent
    assert backend.faults.injected == 1
    assert (sent.repeated, sent.invoice_number, sent.reference_number) == (repeated, "FV/REP/1", sent.reference_number)
    warnings = [r.getMessage() for r in caplog.records if r.name == "ksef_client" and r.levelno == logging.WARNING]
    assert len(warnings) == (1 if repeated else 0)  # was: none (an INFO line of the transport only)
    if repeated:
        (text,) = warnings
        assert "'FV/REP/1'" in text and sent.invoice_hash in text and str(sent.reference_number) in text
        assert "440" in text and "session.outcomes()" in text and "2 times" in text


def test_what_send_returns_after_a_repeat_and_where_the_verdict_is(
    ksef: KSeF, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    invoice = sample_invoice("FV/REP/2")
    with caplog.at_level(logging.DEBUG), ksef.online_session() as session:
        backend.faults.add(DROP_AFTER, operation=SEND)  # KSeF takes the first attempt, its answer is lost
        returned = session.send(invoice)
    ref = str(session.reference_number)
    ksef.sessions.wait(ref)
    # As documented: the reference returned is the repeat's, which KSeF lists as the 440 ...
    assert ksef.sessions.invoice(ref, returned).status.code == 440
    assert session.sent == [SentInvoice(sha256_b64(invoice), returned, "FV/REP/2", repeated=True)]
    # ... the session's outcomes() gives the verdict: the first attempt's acceptance ...
    (outcome,) = session.outcomes()
    assert outcome.accepted and outcome.reference_number != returned
    # ... and KSeF's listing, read without the session object, marks the 440 as a repeat of it.
    listing = ksef.sessions.outcomes(ref)
    accepted, repeat = listing
    assert accepted == outcome and (repeat.kind, repeat.reference_number) == ("duplicate", returned)
    assert repeat.is_repeat and repeat.repeat_of == accepted.reference_number  # was: a plain duplicate
    assert repeat.duplicate_of == accepted.ksef_number and not accepted.is_repeat
    assert [o for o in listing if not o.accepted and not o.is_repeat] == []  # no failure to count
    # repeat_of leads to the invoice's UPO, which the returned reference has none of
    assert ksef.upo.get_invoice_upo(ref, invoice_reference_number=str(repeat.repeat_of)).documents
    with pytest.raises(BadRequestError):
        ksef.upo.get_invoice_upo(ref, invoice_reference_number=returned)
    assert ksef.access_token and ksef.access_token not in caplog.text  # logged at DEBUG: no token


# --- a close whose answer was lost and could not be settled (review of transport, finding 2) -----
# The spec's close answers 400 "21180 | Status sesji nie pozwala na wykonanie operacji. | Status sesji
# {code} uniemożliwia jej zamknięcie." for a session no longer open; docs/errors-and-retries.md:
# "`session.close()` / end of `with` | closing again does nothing".

CLOSE = "online_session.close_online_session"
STATUS = "sessions_status.get_session_status"


def _close_unsettled(backend: KSeFBackend) -> Callable[[Any], Any]:
    """``call(client)`` for ``Clients.run``: a session whose close KSeF takes, its answer lost, and
    the status read to settle it fails every attempt (503); then ``close()`` again. Returns the
    error that left the block, ``session.closed`` after it, the session, and KSeF's status code."""

    def arm() -> None:
        backend.faults.add(DROP_AFTER, operation=CLOSE)
        backend.faults.add(503, operation=STATUS, times=4)  # 1 + max_retries

    def call(ksef: Any) -> Any:
        session = ksef.online_session()
        if isinstance(ksef, KSeF):
            with pytest.raises(KSeFError) as left, session:
                session.send(sample_invoice("FV/CLOSE/1"))
                arm()
            closed = session.closed
            session.close()  # was: BadRequestError 21180 although KSeF had closed it
            return left.value, closed, session, ksef.sessions.wait(str(session.reference_number)).status.code

        async def close_twice() -> Any:
            with pytest.raises(KSeFError) as left:
                async with session:
                    await session.send(sample_invoice("FV/CLOSE/1"))
                    arm()
            closed = session.closed
            await session.close()
            return left.value, closed, session, (await ksef.sessions.wait(str(session.reference_number))).status.code

        return close_twice()

    return call


def test_an_unsettled_close_names_the_session_and_a_second_close_settles_it(
    clients: Clients, backend: KSeFBackend
) -> None:
    error, closed_before, session, code = clients.run(3, _close_unsettled(backend))
    ref = str(session.reference_number)
    # The error is the close's (was: the 503 of a GET the caller never made, naming nothing) ...
    assert isinstance(error, APIConnectionError) and "/close" in str(error)
    assert error.session_reference_number == ref
    unread, named = error.__notes__
    assert "status" in unread and "InternalServerError" in unread and "503" in unread
    assert f"ksef.sessions.get({ref!r})" in named and "may have gone through" in named and "close()" in named
    # ... and the second close() settles it by the session's status: KSeF closed it.
    assert not closed_before and session.closed and code == 200
    assert backend.faults.injected == 5


def test_a_close_sent_again_after_a_status_behind_the_close_is_settled(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # The close's answer is lost and the status read just after still says 100 (not yet closed):
    # the close is sent again and meets 21180, because the first one did go through. Was: raised.
    reads: list[str] = []

    def lagging(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if len(reads) != 1 or request.method != "GET" or not request.url.path.endswith(f"/sessions/{reads[0]}"):
            return None
        reads.append("status")
        body = json.loads(response.read())
        body["status"] = {"code": 100, "description": "Sesja interaktywna otwarta"}
        return httpx.Response(200, json=body, request=request)

    transport = Tamper(lagging)
    token = backend.mint_access_token(NIP)
    options = {"access_token": token, "sleep": fake_time.sleep, "clock": fake_time.clock}
    with KSeF(base_url=ksef_server.base_url, transport=transport, **options) as ksef:  # type: ignore[arg-type]
        with ksef.online_session() as session:
            session.send(sample_invoice("FV/CLOSE/2"))
            reads.append(str(session.reference_number))
            backend.faults.add(DROP_AFTER, operation=CLOSE)
        assert session.closed and ksef.sessions.wait(str(session.reference_number)).status.code == 200
    closes = [path for method, path in transport.seen if path.endswith("/close")]
    assert len(closes) == 2 and reads == [str(session.reference_number), "status"]


def test_a_first_close_refused_with_21180_still_raises_naming_the_session(ksef: KSeF) -> None:
    # Nothing of this object's was sent before: a 21180 is KSeF's word (closed elsewhere), not
    # an earlier close of its own that went through.
    session = ksef.online_session().open()
    elsewhere = ksef.online_session()
    elsewhere.reference_number = session.reference_number
    elsewhere.close()
    with pytest.raises(BadRequestError) as refused:
        session.close()
    assert 21180 in refused.value.codes and refused.value.session_reference_number == session.reference_number
    assert not session.closed and "ksef.sessions.get(" in refused.value.__notes__[-1]
