"""Client-side throttling keeps bursts, repeats, threads, tasks and copies within the spec's limits;
identifiers and retry parsing."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import os
import sys
import threading
import time as time_module
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._generated.api.auth import create_challenge
from ksef_client._generated.operations import OPERATIONS, RateLimits
from ksef_client._retry import parse_retry_after
from ksef_client._throttle import GLOBAL_RATE_LIMITS, Throttle, counter_of, forget_counts
from ksef_client.errors import APITimeoutError, RateLimitError, RetryAfterTooLongError, ThrottleWaitTooLongError
from ksef_client.identifiers import is_valid_nip, make_ksef_number, validate_ksef_number
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import self_signed_certificate
from tests.conftest import NIP
from tests.helpers import FakeTime, RecordingTransport, SharedTime, invoice_xml
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
    # The guide's numbers, not the code's table (which the pacing reads): limity/limity-api.md,
    # "Pozostałe | GET /sessions/* | 10 | 120 | 1200" (sessionMisc).
    per_second, per_minute = 10, 120
    assert OPERATIONS["sessions_status.get_session_status"].rate_limits == (per_second, per_minute, 1200)
    times = [t for t, _, _ in recorder.sent]
    assert len(times) == 100
    for window, limit in ((1, per_second), (60, per_minute)):
        assert max(sum(1 for u in times if t <= u < t + window) for t in times) <= limit
    assert time.now - 1000 >= 100 // per_second - 1  # the burst was spread out, not sent at once


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 25 Nov 2026 13:00:10 GMT", now=1795611600.0) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo", "Europe/Warsaw", "UTC"])
def test_an_http_date_without_a_zone_is_gmt_wherever_the_client_runs(zone: str) -> None:
    # Review: asctime ("Wed Dec  2 13:00:30 2026") and "-0000" dates carry no zone and were read in
    # the machine's local time: a 30 s wait read as 18,030 s in New York (the limit group refused
    # for 5 hours) and as 0 in Warsaw. RFC 9110, 5.6.7: HTTP dates are GMT.
    now = dt.datetime(2026, 12, 2, 13, 0, tzinfo=dt.UTC).timestamp()
    with _time_zone(zone):
        assert parse_retry_after("Wed Dec  2 13:00:30 2026", now=now) == 30
        assert parse_retry_after("Wed, 02 Dec 2026 13:00:30 -0000", now=now) == 30
        assert parse_retry_after("Wed, 02 Dec 2026 13:00:30 GMT", now=now) == 30


def test_a_negative_or_endless_retry_after_is_unusable() -> None:
    # "-5" was read as 0: four attempts at once into KSeF's block ("Wielokrotne przekroczenia mogą
    # skutkować znacznym wydłużeniem blokady", limity/limity-api.md). Unusable: the usual backoff.
    assert parse_retry_after("-5") is None
    assert parse_retry_after("1e400") is None
    assert parse_retry_after("0") == 0


@contextlib.contextmanager
def _time_zone(zone: str) -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time_module.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time_module.tzset()


def test_identifiers() -> None:
    assert is_valid_nip(NIP) and not is_valid_nip("5265877636")
    number = make_ksef_number(NIP, "20261125", "0123456789AB")
    assert validate_ksef_number(number) == number


# --- regressions: every attempt paced, counted at its answer, shared, locked, bounded ------------
#
# The emulator enforces the spec's limits here (``backend.rate_limits.scale = 1.0``) on the same
# fake time as the client (``SharedTime``): a 429 from it is the client's own pacing failing, and
# ``max_retries=0`` turns it into a RateLimitError instead of a silent retry.

OTHER = "limits.get_context_limits"  # GET /limits/context, group "other": 10/s, 30/min, 120/h


def _enforcing(backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> SharedTime:
    backend.rate_limits.scale = 1.0
    return SharedTime(backend, monkeypatch)


def _client(server: ThreadedServer, backend: KSeFBackend, time: SharedTime, **options: Any) -> KSeF:
    options = {"access_token": backend.mint_access_token(NIP), "max_retries": 0, **options}
    return KSeF(base_url=server.base_url, sleep=time.sleep, clock=time.clock, **options)


def _most_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_every_attempt_is_paced_and_counted(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # limity/limity-api.md: "Wszystkie żądania do API KSeF podlegają limitom" -- a repeat after a
    # 503 is a request like any other. Each call's first attempt meets a 503, so 30 calls are 60
    # requests, which "other" (10/s, 30/min) spreads over two minutes (the repeats went out
    # unpaced and uncounted: 60 requests in 6.8 s).
    time = SharedTime(backend, monkeypatch)
    recorder = RecordingTransport(httpx.HTTPTransport(), time)
    with _client(ksef_server, backend, time, transport=recorder, max_retries=3) as ksef:
        for _ in range(30):
            backend.faults.add(503, operation=OTHER, times=1)
            ksef.limits.context()
    sent = [t for t, _, path in recorder.sent if path.endswith("/limits/context")]
    assert len(sent) == 60
    assert _most_in_window(sent, 1.0) <= 10 and _most_in_window(sent, 60.0) <= 30


def test_each_endpoint_of_other_is_paced_on_its_own_counter(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # limity/limity-api.md, "Pozostałe" (``other``: 10 req/s, 30/min): "Każdy taki endpoint
    # posiada własny licznik limitów, a jego żądania nie wpływają na inne zasoby." Was: the pacer
    # counted the three reads below in one budget and waited after the 10th, though KSeF (and the
    # emulator) lets each endpoint have its 10 in the second.
    time = _enforcing(backend, monkeypatch)
    with _client(ksef_server, backend, time) as ksef:
        for _ in range(10):
            ksef.limits.context()
            ksef.limits.subject()
            ksef.limits.rate()
        assert ksef.send_state.throttled_seconds == 0 and time.now == 1000
        ksef.limits.context()  # the 11th of one endpoint waits for its own window
        assert ksef.send_state.throttled_seconds > 0.9


def test_the_counters_are_the_guide_s() -> None:
    # Each operation of ``other`` on its own counter (limity/limity-api.md, "Pozostałe"); a named
    # group, e.g. sessionMisc ("Pozostałe | GET /sessions/*", one row), one counter for all of its.
    counters: dict[str, set[str]] = {}
    for key, operation in OPERATIONS.items():
        if operation.rate_limit_group is not None:
            counters.setdefault(operation.rate_limit_group, set()).add(counter_of(key, operation))
    others = [op for op in OPERATIONS.values() if op.rate_limit_group == "other"]
    assert len(counters["other"]) == len(others) > 40
    assert counter_of("limits.get_context_limits", OPERATIONS["limits.get_context_limits"]) == (
        "other (GET /limits/context)"
    )
    assert all(counters[group] == {group} for group in counters if group != "other")
    assert len([op for op in OPERATIONS.values() if op.rate_limit_group == "sessionMisc"]) == 4


def _nips(count: int) -> list[str]:
    """``count`` valid NIPs, always the same ones."""
    return [nip for nip in (f"52600000{i:02d}" for i in range(100)) if is_valid_nip(nip)][:count]


def test_the_global_limit_is_paced_over_every_client_of_the_process(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EffectiveApiRateLimits.global: "Limity globalne dla wszystkich operacji API (per adres IP)",
    # 75 per second (the spec's example of GET /rate-limits). Eight clients of eight contexts, 10
    # reads each in one instant: each context is within its own limits, the process (one address)
    # is not. Was: no client counted the others' requests, and the emulator refused the 76th (429).
    time = _enforcing(backend, monkeypatch)
    recorder = RecordingTransport(httpx.HTTPTransport(), time)
    clients = [_client(ksef_server, backend, time, transport=recorder,
                       access_token=backend.mint_access_token(nip)) for nip in _nips(8)]  # fmt: skip
    try:
        for _ in range(10):
            for client in clients:
                client.limits.context()
    finally:
        for client in clients:
            client.close()
    sent = [t for t, _, _ in recorder.sent]
    assert len(sent) == 80 and _most_in_window(sent, 1.0) == 75
    assert time.now - 1000 >= 1.0  # the last five waited for the address's second to pass


def test_anonymous_operations_are_paced_per_address_whatever_the_login(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # limity/limity-api.md: public resources such as /auth/challenge "nie wymagają uwierzytelnienia
    # [...] - limit wynosi 60 żądań na sekundę dla jednego adresu IP". Two clients of other logins
    # (each login was a budget of its own): 31 challenges each in one instant are 62 from the
    # address. Was: each client let its 31 through and the emulator refused the 61st (429).
    time = _enforcing(backend, monkeypatch)
    clients = [_client(ksef_server, backend, time, access_token=backend.mint_access_token(nip)) for nip in _nips(2)]
    try:
        for _ in range(31):
            for client in clients:
                assert create_challenge.sync_detailed(client=client.raw).status_code == 200
    finally:
        for client in clients:
            client.close()
    assert sum(client.send_state.throttled_seconds for client in clients) >= 1.0


def test_the_global_limit_is_the_spec_s(pinned_spec: dict[str, Any]) -> None:
    # The only limit no operation's x-rate-limits carries: typed by hand, pinned to the spec.
    example = pinned_spec["paths"]["/rate-limits"]["get"]["responses"]["200"]["content"]["application/json"]
    expected = example["example"]["global"]
    assert tuple(None if v < 0 else v for v in expected.values()) == GLOBAL_RATE_LIMITS
    assert list(expected) == ["perSecond", "perMinute", "perHour"]


class _SlowFirst(httpx.BaseTransport):
    """The first request spends ``seconds`` on the wire (a TLS handshake, a slow link) before the
    emulator sees it; the clock moves meanwhile."""

    def __init__(self, time: SharedTime, seconds: float) -> None:
        self.inner, self.time, self.seconds = httpx.HTTPTransport(), time, seconds

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.seconds:
            self.time.sleep(self.seconds)
            self.seconds = 0.0
        return self.inner.handle_request(request)


def test_a_request_is_counted_when_its_answer_comes(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KSeF counts a request when it reaches it, which the client cannot see; the answer is the
    # latest it can have been counted. Stamped when the client decided to send, the first call
    # (150 ms on the wire) left KSeF's window 150 ms after the client's: the 11th call got a 429.
    time = _enforcing(backend, monkeypatch)
    with _client(ksef_server, backend, time, transport=_SlowFirst(time, 0.15)) as ksef:
        for _ in range(11):
            ksef.limits.context()
    assert time.now - 1000 > 1.1  # the 11th went out a second after the first's answer


class _AsyncLatency(httpx.AsyncBaseTransport):
    """Every request spends ``seconds`` on the wire before the in-process emulator sees it."""

    def __init__(self, app: Any, time: SharedTime, seconds: float) -> None:
        self.inner, self.time, self.seconds = httpx.ASGITransport(app=app), time, seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.time.sleep(self.seconds)
        await anyio.lowlevel.checkpoint()  # other tasks run while this one is on the wire
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_concurrent_async_sends_never_meet_a_429(backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    # 25 invoices sent at once by tasks of one session (invoiceSend: 10/s, 30/min); each request
    # 50 ms on the wire. The client's pacing must hold every one of them under the limits.
    time = _enforcing(backend, monkeypatch)
    transport = _AsyncLatency(create_app(backend, strict=True), time, 0.05)
    ksef = AsyncKSeF(base_url="http://ksef.local/v2", access_token=backend.mint_access_token(NIP),
                     transport=transport, sleep=time.asleep, clock=time.clock, max_retries=0)  # fmt: skip
    sent: list[str] = []

    async def send(session: Any, number: str) -> None:
        sent.append(await session.send(invoice_xml(number)))

    async with ksef, ksef.online_session() as session, anyio.create_task_group() as tasks:
        for i in range(25):
            tasks.start_soon(send, session, f"FV/T/{i}")
    assert len(set(sent)) == 25


def test_threads_sharing_a_throttle_never_break_it_or_over_grant() -> None:
    # docs/authentication.md "Threads or tasks sharing a client": the windows are read, decided on
    # and appended to by every thread; unlocked, a thread iterating the window while another
    # appended raised "deque mutated during iteration", and two threads took the same last place.
    limits = RateLimits(60, 120, 240)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(5):
            throttle, granted, errors = Throttle(), list[int](), list[Any]()
            start = threading.Barrier(8)

            def caller(
                throttle: Throttle = throttle,
                granted: list[int] = granted,
                errors: list[Any] = errors,
                start: threading.Barrier = start,
            ) -> None:
                start.wait()
                for _ in range(100):
                    try:
                        if throttle.delay("g", limits, 1000.0) == 0:
                            granted.append(1)
                    except Exception as error:  # each one is the defect
                        errors.append(error)

            threads = [threading.Thread(target=caller) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == [] and len(granted) == 60
    finally:
        sys.setswitchinterval(switch)


def test_threads_sharing_a_client_stay_within_the_limits(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _session(backend, [invoice_xml("FV/1")])
    time = _enforcing(backend, monkeypatch)
    errors: list[BaseException] = []
    with _client(ksef_server, backend, time) as ksef:

        def reader() -> None:
            try:
                for _ in range(15):
                    ksef.sessions.get(session.reference_number)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []  # no 429 from the emulator, no RuntimeError from the throttle


def test_with_options_copies_share_the_pacing(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/security.md recommends ksef.with_options(deadline=10) per call; each copy forgot the
    # calls made before it, and the 11th call in a second met a 429.
    time = _enforcing(backend, monkeypatch)
    with _client(ksef_server, backend, time) as ksef:
        for _ in range(12):
            copy = ksef.with_options(deadline=10)
            copy.limits.context()
            copy.close()
            del copy
            gc.collect()  # a copy dropped after its call must not take the counts with it
        assert ksef.with_options(deadline=10).send_state.throttle is ksef.send_state.throttle


def test_a_server_started_afresh_gets_fresh_counts_from_every_client() -> None:
    # docs/testing-with-the-emulator.md: the ksef_mock fixture's emulator is "reset before each
    # test", its own counts with it; the clients' windows of the same base URL and login were
    # shared on, while any client of them lived (_throttle.shared_throttle), into the next test.
    here, elsewhere = "http://127.0.0.1:1/v2", "http://127.0.0.1:2/v2"
    with KSeF(base_url=here, access_token="t") as kept, KSeF(base_url=elsewhere, access_token="t") as other:
        copy = kept.with_options(deadline=10)
        before, before_other = kept.send_state.throttle, other.send_state.throttle
        forget_counts(here + "/")  # as a base URL may be given
        after = kept.send_state.throttle
        assert after is not before and copy.send_state.throttle is after  # copies still share
        assert other.send_state.throttle is before_other
        assert before not in kept.send_state.pacing._held.values()  # not kept once per reset
        copy.close()


def test_clients_logged_into_one_context_share_the_pacing_and_others_do_not(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # limity/limity-api.md: "Limity żądań są naliczane niezależnie dla każdej pary: kontekst i
    # adres IP" -- two clients of one context in one process are one budget; other contexts'
    # clients keep their own.
    time = _enforcing(backend, monkeypatch)
    creds, stranger = self_signed_certificate(), self_signed_certificate()
    clients = [_client(ksef_server, backend, time, access_token=None) for _ in range(3)]
    try:
        for client, who in zip(clients, (creds, creds, stranger), strict=True):
            client.auth.login_with_certificate(who, context_nip=who.nip)
        first, second, other = clients
        for _ in range(6):
            first.limits.context()
            second.limits.context()
        assert first.send_state.throttled_seconds + second.send_state.throttled_seconds > 0
        for _ in range(10):
            other.limits.context()
        assert other.send_state.throttled_seconds == 0
    finally:
        for client in clients:
            client.close()


class _Meddling(httpx.BaseTransport):
    """Once the first request of ``path_part`` has its answer, runs ``beside()`` (another call on
    the same client) before handing it back, as another thread would between two steps."""

    def __init__(self, path_part: str, beside: Callable[[], None]) -> None:
        self.inner, self.path_part, self.beside = httpx.HTTPTransport(), path_part, beside
        self.done = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not self.done and self.path_part in request.url.path:
            self.done = True
            response.read()
            self.beside()
        return response


def test_another_calls_throttle_waits_do_not_extend_this_calls_deadline(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # docs/security.md: "One SDK call ... must finish within it"; the throttle's waits of the call's
    # own requests move its deadline, and nothing else does. Between the UPO call's two steps
    # (deadline 10 s), another call on the client waits a minute for "other"; the UPO call must
    # then be out of time (it went on, its deadline moved by the other call's minute).
    session = _session(backend, [invoice_xml("FV/1")])
    time = FakeTime()
    ksef: KSeF

    def other_call() -> None:
        for _ in range(31):  # "other": 30 a minute; the 31st waits the minute out
            ksef.limits.context()

    meddling = _Meddling(f"/sessions/{session.reference_number}", other_call)
    with _client_of(ksef_server, backend, time, meddling, deadline=10) as ksef:
        with pytest.raises(APITimeoutError, match="deadline"):
            ksef.upo.get_session_upo(session.reference_number)
        assert time.now - 1000 >= 60


def _client_of(
    server: ThreadedServer, backend: KSeFBackend, time: FakeTime, transport: httpx.BaseTransport, **options: Any
) -> KSeF:
    token = backend.mint_access_token(NIP)
    return KSeF(base_url=server.base_url, access_token=token, transport=transport, sleep=time.sleep,
                clock=time.clock, **options)  # fmt: skip


def _metadata_query(ksef: KSeF) -> None:
    list(ksef.invoices.query(date_from=dt.date(2026, 11, 1), date_to=dt.date(2026, 11, 30)))


def test_a_pacing_wait_past_max_retry_after_raises_and_others_are_logged(
    ksef: KSeF, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    # invoiceMetadata allows 20 queries an hour: the 21st would wait about an hour, silently,
    # whatever deadline= said. Like a server's Retry-After past max_retry_after ("waiting silently
    # would hang the caller"), it raises; nothing is sent. Shorter waits are logged at INFO.
    caplog.set_level(logging.INFO, logger="ksef_client")
    for _ in range(20):
        _metadata_query(ksef)
        fake_time.sleep(1)  # 16 a minute: the 17th waits
    assert any("invoiceMetadata, waiting" in record.getMessage() for record in caplog.records)
    sent = ksef.send_state.requests_sent
    with pytest.raises(ThrottleWaitTooLongError) as refused:
        _metadata_query(ksef)
    assert refused.value.group == "invoiceMetadata" and refused.value.retry_after > 3000
    assert ksef.send_state.requests_sent == sent
    patient = ksef.with_options(max_retry_after=3600)
    _metadata_query(patient)  # allowed to wait the hour out (on the fake clock)
    assert fake_time.sleeps[-1] > 3000
    patient.close()


# --- KSeF's block of a group after a 429 ---------------------------------------------------------
#
# limity/limity-api.md: after a 429 "kolejne żądania są tymczasowo blokowane" for Retry-After
# seconds; the client holds the whole group until then, for every call. That wait is the server's
# delay, not the SDK's own pacing (_transport.Deadline: the throttle's waits move the deadline as
# "the SDK's own pacing, not the server's delay"): it must fit in each call's deadline and in
# max_retry_after, and a call it does not fit fails as the call that met the 429 does.

LIST = "sessions_status.list_sessions"


def _first_page(ksef: KSeF) -> object:
    return next(ksef.sessions.list("Online").pages())


def test_a_429_block_counts_against_the_deadline_of_every_call_of_the_group(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # Was: the call that met the 429 raised at once (60 s past its deadline of 10), the next call
    # of the group waited those 60 s in silence and succeeded: its deadline moved by KSeF's block.
    time = FakeTime()
    backend.faults.add(429, operation=LIST, retry_after=60)
    with _client_of(ksef_server, backend, time, httpx.HTTPTransport(), deadline=10) as ksef:
        with pytest.raises(RateLimitError) as met:
            _first_page(ksef)
        sent = ksef.send_state.requests_sent
        with pytest.raises(RateLimitError) as blocked:
            _first_page(ksef)
        assert ksef.send_state.requests_sent == sent and time.sleeps == []  # not sent, not waited
        time.sleep(60)  # the block is over
        _first_page(ksef)
    assert met.value.retry_after == 60 and not isinstance(met.value, RetryAfterTooLongError)
    error = blocked.value
    assert not isinstance(error, RetryAfterTooLongError) and error.retry_after == 60
    assert (error.status_code, error.codes) == (429, [429])  # the 429 that set the block
    assert "not sent" in str(error) and "'sessionList' for 60 s more" in str(error) and "deadline" in str(error)


def test_a_429_block_within_the_deadline_is_waited_for(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    time = FakeTime()
    backend.faults.add(429, operation=LIST, retry_after=60)
    with _client_of(ksef_server, backend, time, httpx.HTTPTransport(), deadline=100, max_retries=0) as ksef:
        with pytest.raises(RateLimitError):  # max_retries=0: not repeated
            _first_page(ksef)
        _first_page(ksef)  # waits the block out
    assert time.sleeps == [60]


def test_a_429_block_past_max_retry_after_is_a_retry_after_too_long_error_for_every_call(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # Was: the call that met the 429 got RetryAfterTooLongError (a RateLimitError), the next one
    # ThrottleWaitTooLongError, a plain KSeFError blaming "the rate limits of group 'sessionList'",
    # which an `except RateLimitError` that backs off does not catch.
    time = FakeTime()
    backend.faults.add(429, operation=LIST, retry_after=200)
    with _client_of(ksef_server, backend, time, httpx.HTTPTransport()) as ksef:
        with pytest.raises(RetryAfterTooLongError):
            _first_page(ksef)
        sent = ksef.send_state.requests_sent
        with pytest.raises(RetryAfterTooLongError) as blocked:
            _first_page(ksef)
        assert ksef.send_state.requests_sent == sent and time.sleeps == []
    error = blocked.value
    assert isinstance(error, RateLimitError) and (error.retry_after, error.cap, error.status_code) == (200, 120, 429)
    assert "not sent" in str(error) and "more than max_retry_after (120 s)" in str(error)
    assert error.response.request.method == "GET" and "authorization" not in error.response.request.headers
