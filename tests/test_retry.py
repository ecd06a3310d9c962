"""One retry policy: what it decides, and how many attempts each kind of repeat really makes.

The attempt counts are measured on the emulator with injected faults (``backend.faults``): every
attempt of a faulted operation consumes one fault, so ``faults.injected`` counts the attempts.
Each case runs with the sync and the async client.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._retry import RetryBudget, RetryPolicy, is_repeat_safe
from ksef_client.errors import (
    APIConnectionError,
    AuthenticationError,
    InternalServerError,
    KSeFError,
    RateLimitError,
    RetryAfterTooLongError,
)
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.helpers import FakeTime, RecordingTransport

RNG = random.Random(0)
REF = "20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"
EVERY_ATTEMPT = 1000  # a fault rule that outlasts any retry budget


def _request(method: str, path: str) -> httpx.Request:
    return httpx.Request(method, f"https://ksef.local/v2{path}")


class TestPolicy:
    def test_a_429_waits_what_retry_after_asks(self) -> None:
        answer = httpx.Response(429, headers={"Retry-After": "7"})
        assert RetryPolicy().delay_after_response(answer, False, RetryBudget(), RNG, 0.0) == 7.0

    def test_a_429_asking_too_long_is_not_waited_for(self) -> None:
        # The policy returns the answer; the client raises it as RetryAfterTooLongError (below).
        answer = httpx.Response(429, headers={"Retry-After": "600"})
        assert RetryPolicy().delay_after_response(answer, False, RetryBudget(), RNG, 0.0) is None

    def test_a_5xx_is_repeated_only_when_safe(self) -> None:
        answer = httpx.Response(503)
        assert RetryPolicy().delay_after_response(answer, True, RetryBudget(), RNG, 0.0) is not None
        assert RetryPolicy().delay_after_response(answer, False, RetryBudget(), RNG, 0.0) is None

    def test_a_connection_never_made_is_repeated_for_any_request(self) -> None:
        error = httpx.ConnectError("refused")
        assert RetryPolicy().delay_after_error(error, False, RetryBudget(), RNG) is not None
        assert RetryPolicy().delay_after_error(httpx.ReadError("reset"), False, RetryBudget(), RNG) is None

    def test_the_budget_is_the_limit_of_every_kind_of_repeat(self) -> None:
        policy, spent = RetryPolicy(max_retries=2), RetryBudget(used=2)
        assert policy.delay_after_response(httpx.Response(429), True, spent, RNG, 0.0) is None
        assert policy.delay_after_error(httpx.ConnectError("x"), True, spent, RNG) is None
        assert policy.delay_to_restart(spent, RNG) is None
        assert not policy.may_repeat(spent)

    def test_max_retries_zero_repeats_nothing(self) -> None:
        policy, fresh = RetryPolicy(max_retries=0), RetryBudget()
        assert policy.delay_after_response(httpx.Response(429), True, fresh, RNG, 0.0) is None
        assert policy.delay_after_error(httpx.ConnectError("x"), True, fresh, RNG) is None
        assert policy.delay_to_restart(fresh, RNG) is None

    def test_safe_posts_come_from_the_operation_table(self) -> None:
        assert is_repeat_safe(_request("POST", f"/sessions/online/{REF}/invoices"), "/v2")
        assert is_repeat_safe(_request("POST", "/invoices/query/metadata"), "/v2")
        assert is_repeat_safe(_request("POST", "/auth/challenge"), "/v2")
        assert not is_repeat_safe(_request("POST", f"/sessions/online/{REF}/close"), "/v2")
        assert not is_repeat_safe(_request("POST", "/auth/token/redeem"), "/v2")
        assert is_repeat_safe(_request("PUT", "/any/storage/link"), "/v2")


# --- attempt counts on the emulator, sync and async ---------------------------------------------


class Clients:
    """Makes a sync or an async client of the emulator and runs a call on it the same way."""

    def __init__(self, mode: str, base_url: str, token: str, time: FakeTime) -> None:
        self.mode, self.base_url, self.token, self.time = mode, base_url, token, time

    def run(self, max_retries: int, call: Callable[[Any], Any]) -> Any:
        """``call(client)``, awaited for the async client; returns its result."""
        options: dict[str, Any] = {"base_url": self.base_url, "access_token": self.token, "max_retries": max_retries}
        if self.mode == "sync":
            with KSeF(**options, sleep=self.time.sleep, clock=self.time.clock) as ksef:
                return call(ksef)

        async def main() -> Any:
            async with AsyncKSeF(**options, sleep=self.time.asleep, clock=self.time.clock) as ksef:
                return await _awaited(call(ksef))

        import anyio

        return anyio.run(main)


async def _awaited(value: Any) -> Any:
    return await value if hasattr(value, "__await__") else value


@pytest.fixture(params=["sync", "async"])
def clients(request: pytest.FixtureRequest, ksef_server: ThreadedServer, backend: KSeFBackend) -> Clients:
    return Clients(request.param, ksef_server.base_url, backend.mint_access_token(NIP), FakeTime())


def _send_one(ksef: Any) -> Any:
    session = ksef.online_session()
    if isinstance(ksef, KSeF):
        session.open()
        return session.send(sample_invoice("FV/R/1"))

    async def send() -> str:
        await session.open()
        return str(await session.send(sample_invoice("FV/R/1")))

    return send()


@pytest.mark.parametrize("max_retries", [0, 3])
def test_a_send_over_a_dead_connection_makes_one_plus_max_retries_attempts(
    clients: Clients, backend: KSeFBackend, max_retries: int
) -> None:
    backend.faults.add(DROP, operation="online_session.send_invoice", times=EVERY_ATTEMPT)
    with pytest.raises(APIConnectionError):
        clients.run(max_retries, _send_one)
    assert backend.faults.injected == 1 + max_retries  # was 36 with max_retries=3: 4 sends x 9 resends


@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_5xx_on_a_safe_post_is_repeated_within_the_budget(
    clients: Clients, backend: KSeFBackend, max_retries: int
) -> None:
    backend.faults.add(503, operation="online_session.send_invoice", times=max_retries)
    assert clients.run(max_retries, _send_one)  # the last allowed attempt goes through
    assert backend.faults.injected == max_retries


def _close_one(ksef: Any) -> Any:
    session = ksef.online_session()
    if isinstance(ksef, KSeF):
        session.open()
        return session.close()

    async def close() -> None:
        await session.open()
        await session.close()

    return close()


@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_close_that_never_arrives_is_sent_one_plus_max_retries_times(
    clients: Clients, backend: KSeFBackend, max_retries: int
) -> None:
    backend.faults.add(DROP, operation="online_session.close_online_session", times=EVERY_ATTEMPT)
    with pytest.raises(APIConnectionError):
        clients.run(max_retries, _close_one)
    assert backend.faults.injected == 1 + max_retries


# RFC 9110 10.2.3: a 503's Retry-After "indicates how long the service is expected to be unavailable
# to the client"; docs/errors-and-retries.md: "a 5xx with Retry-After waits what it asks", and one
# "longer than [max_retry_after] is not waited for (... a 5xx its InternalServerError)". The steps
# the transport does not repeat (a session close, a login's redeem) are restarted by their flows,
# which waited only a backoff of a fraction of a second, and restarted into a block of an hour.


def test_a_close_answered_503_is_restarted_after_its_retry_after(clients: Clients, backend: KSeFBackend) -> None:
    backend.faults.add(503, operation="online_session.close_online_session", times=1, retry_after=30)
    clients.run(3, _close_one)
    assert backend.faults.injected == 1  # then the second close went through
    assert 30 in clients.time.sleeps  # was: a backoff of at most 0.5 s


def test_a_close_answered_503_past_max_retry_after_is_not_restarted(clients: Clients, backend: KSeFBackend) -> None:
    backend.faults.add(503, operation="online_session.close_online_session", times=EVERY_ATTEMPT, retry_after=3600)
    with pytest.raises(InternalServerError) as failed:
        clients.run(3, _close_one)
    assert failed.value.retry_after == 3600 and "close" in str(failed.value)
    assert backend.faults.injected == 1 and not clients.time.sleeps  # was: sent again after a backoff


def test_a_login_restart_after_a_503_waits_its_retry_after(clients: Clients, backend: KSeFBackend) -> None:
    backend.faults.add(503, operation="auth.redeem_token", times=1, retry_after=30)
    clients.run(3, _login)
    assert backend.faults.injected == 1 and 30 in clients.time.sleeps  # was: a backoff of 0.15 s


def test_a_login_meeting_a_503_past_max_retry_after_gives_up_at_once(clients: Clients, backend: KSeFBackend) -> None:
    backend.faults.add(503, operation="auth.redeem_token", times=EVERY_ATTEMPT, retry_after=3600)
    with pytest.raises(InternalServerError, match="token/redeem"):
        clients.run(3, _login)
    assert backend.faults.injected == 1 and max(clients.time.sleeps, default=0) < 3600


def _export(directory: Path) -> Callable[[Any], Any]:
    import datetime as dt

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return lambda ksef: ksef.invoices.export(directory, date_from=start)


@pytest.mark.parametrize("max_retries", [0, 2])
def test_an_export_part_broken_off_is_fetched_one_plus_max_retries_times(
    clients: Clients, backend: KSeFBackend, tmp_path: Path, max_retries: int
) -> None:
    clients.run(3, _send_one)
    backend.faults.add(DROP, operation="storage.download", times=EVERY_ATTEMPT)
    with pytest.raises(APIConnectionError):
        clients.run(max_retries, _export(tmp_path / "out"))
    assert backend.faults.injected == 1 + max_retries  # was 3 parts x 4 transport attempts


# --- a 401 answered by a token refresh ----------------------------------------------------------


def _refreshing(refused: int) -> Callable[[httpx.Request], httpx.Response]:
    """An API that refuses the first ``refused`` requests with 401 and refreshes tokens."""
    calls = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/token/refresh"):
            return httpx.Response(200, json={"accessToken": {"token": "new", "validUntil": "2099-01-01T00:00:00Z"}})
        calls["n"] += 1
        if calls["n"] <= refused:
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        return httpx.Response(204)

    return handle


@pytest.mark.parametrize(("max_retries", "passes"), [(0, False), (1, True)])
def test_a_401_is_sent_again_after_the_refresh_only_within_the_budget(max_retries: int, passes: bool) -> None:
    from ksef_client.resources.auth import AuthTokens

    transport = httpx.MockTransport(_refreshing(refused=1))
    with KSeF(base_url="http://ksef.local/v2", transport=transport, max_retries=max_retries) as ksef:
        ksef.auth.resume(AuthTokens("ref", "old", _far(), "refresh", _far()))
        if passes:
            ksef.tokens.revoke(REF)
        else:
            with pytest.raises(AuthenticationError):
                ksef.tokens.revoke(REF)
        assert ksef.access_token == "new"  # refreshed either way: the next request works
        assert ksef.send_state.retries == (1 if passes else 0)


def _far() -> Any:
    import datetime as dt

    return dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


# --- a login: one budget for its restarts and their requests --------------------------------------


def _login(ksef: Any) -> Any:
    creds = _CREDENTIALS
    return ksef.auth.login_with_certificate(creds, context_nip=creds.nip)


_CREDENTIALS = self_signed_certificate()


@pytest.mark.parametrize("fault", [503, DROP, 429])
@pytest.mark.parametrize("max_retries", [0, 3])
def test_a_login_makes_at_most_1_plus_max_retries_attempts(
    clients: Clients, backend: KSeFBackend, fault: int, max_retries: int
) -> None:
    # docs/security.md: "max_retries (default 3) bounds every repeat, a login restarted from a new
    # challenge included". A restart had its own budget and each restart's requests theirs:
    # (1 + 3) x (1 + 3) = 16 challenges for one login.
    backend.faults.add(fault, operation="auth.create_challenge", times=EVERY_ATTEMPT, retry_after=1)
    with pytest.raises(KSeFError):
        clients.run(max_retries, _login)
    assert backend.faults.injected == 1 + max_retries


def test_a_login_restarts_within_the_same_budget(clients: Clients, backend: KSeFBackend) -> None:
    # Two 503s on the challenge (repeated by the transport), then a 503 on the redeem (not safe to
    # repeat: the login restarts) use the budget of 3; the second redeem's 503 ends the login.
    backend.faults.add(503, operation="auth.create_challenge", times=2)
    backend.faults.add(503, operation="auth.redeem_token", times=2)
    with pytest.raises(InternalServerError, match="token/redeem"):
        clients.run(3, _login)
    assert backend.faults.injected == 4


def test_a_login_restart_after_a_429_waits_its_retry_after(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    # limity/limity-api.md: after a 429 "kolejne żądania są tymczasowo blokowane" for Retry-After
    # seconds, and "Wielokrotne przekroczenia mogą skutkować znacznym wydłużeniem blokady". The
    # restart of a login waited only its backoff: three challenges went out within 2 s of each
    # other inside a 100 s block.
    time = FakeTime()
    recorder = RecordingTransport(httpx.HTTPTransport(), time)
    backend.faults.add(429, operation="auth.create_challenge", times=EVERY_ATTEMPT, retry_after=100)
    with KSeF(base_url=ksef_server.base_url, transport=recorder, sleep=time.sleep, clock=time.clock,
              deadline=250, rate_limit_scale=0) as ksef, pytest.raises(KSeFError):  # fmt: skip
        _login(ksef)
    sent = [t for t, _, path in recorder.sent if path.endswith("/auth/challenge")]
    assert len(sent) == 3  # at 0, 100 and 200 s; a fourth would be past the deadline
    assert all(later - earlier >= 100 for earlier, later in itertools.pairwise(sent))


# --- a Retry-After past max_retry_after -------------------------------------------------------------


@pytest.mark.parametrize("max_retries", [0, 3])
def test_a_429_past_max_retry_after_is_the_same_rate_limit_error_whatever_the_budget(
    ksef: KSeF, backend: KSeFBackend, max_retries: int
) -> None:
    # docs/errors-and-retries.md: RateLimitError is the 429 (.retry_after, .codes, .response). The
    # same answer was a RateLimitError with max_retries=0 and, with 3, a RetryAfterTooLongError
    # that was no RateLimitError and had no status, codes, response nor path.
    backend.faults.add(429, operation="limits.get_context_limits", retry_after=600)
    with pytest.raises(RateLimitError) as refused:
        ksef.with_options(max_retries=max_retries).limits.context()
    error = refused.value
    assert isinstance(error, RetryAfterTooLongError)
    assert (error.status_code, error.codes, error.retry_after, error.cap) == (429, [429], 600, 120)
    assert error.response.status_code == 429 and "GET /v2/limits/context" in str(error)
    assert backend.faults.injected == 1


def test_a_login_meeting_a_429_past_max_retry_after_gives_up_at_once(clients: Clients, backend: KSeFBackend) -> None:
    # A login restarts after a RateLimitError; one asking past max_retry_after is not waited for.
    backend.faults.add(429, operation="auth.create_challenge", times=EVERY_ATTEMPT, retry_after=600)
    with pytest.raises(RetryAfterTooLongError):
        clients.run(3, _login)
    assert backend.faults.injected == 1


def test_a_503_with_retry_after_waits_what_it_asks(ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
    # RFC 9110 10.2.3: Retry-After on a 503 says how long the service expects to be unavailable;
    # it was ignored for a backoff of a fraction of a second.
    backend.faults.add(503, operation="limits.get_context_limits", times=2, retry_after=30)
    ksef.limits.context()
    assert fake_time.sleeps == [30, 30]
    backend.faults.add(503, operation="limits.get_context_limits", times=1, retry_after=600)
    with pytest.raises(InternalServerError):  # past max_retry_after: not waited for
        ksef.limits.context()
