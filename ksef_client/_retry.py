"""Every repeat the client makes is decided here, by one ``RetryPolicy`` and one budget per request.

A request may be sent again by three hands, and all of them ask this policy first:

- the transport (``_transport``), after a 429, a 5xx or a broken connection;
- the bearer auth (``_auth``), once it has refreshed the token that a 401 refused;
- a flow (``_flows.Retry``), restarting a step whose answer was lost (a streamed export part
  broken off mid-body; a session close whose status says it did not happen).

Each request (or each restarted flow step) carries a ``RetryBudget`` whose ``used`` counts the
repeats made by any of them, so ``max_retries`` is the most any one operation is ever repeated
and ``max_retries=0`` means no repeat anywhere. The functions are pure; the transports log and
count.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import ssl
from dataclasses import dataclass

import httpx

from ksef_client._operations import find_operation

# The request extension holding the request's RetryBudget.
BUDGET = "ksef_retry_budget"
# A response extension: the client's ``max_retry_after``, so an answer whose ``Retry-After`` is
# longer raises ``RetryAfterTooLongError`` (``_core.raise_for_status``) whatever the budget left.
MAX_RETRY_AFTER = "ksef_max_retry_after"

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass
class RetryBudget:
    """The repeats one request (or one restarted flow step) has used so far: ``used`` in all,
    ``uncertain`` of them after an attempt the server may have processed although it failed (a
    5xx, or a connection broken once made; not a 429, a 401 or a connection never made, which
    are refused unprocessed). For a request that is not idempotent but safe to repeat (sending an
    invoice), ``uncertain`` says that an earlier attempt may have been taken: KSeF then lists the
    repeat as a 440 duplicate of it. ``refreshing``: a token refresh for the request began and has
    not succeeded (``_auth``); when the request's call fails with it set, the failure is the
    refresh's, and the request itself has not gone out since (it went out only before, if KSeF
    refused it with a 401)."""

    used: int = 0
    uncertain: int = 0
    refreshing: bool = False


def budget_of(request: httpx.Request) -> RetryBudget:
    """The request's budget, created on its first send."""
    budget = request.extensions.get(BUDGET)
    if not isinstance(budget, RetryBudget):
        budget = request.extensions[BUDGET] = RetryBudget()
    return budget


# Transport failures before a connection exists: the request never left the machine.
NEVER_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class DeadlineExceeded(httpx.TimeoutException):
    """The call's overall deadline passed (a slow or silent server, or retries that would outlast
    it). ``nothing_sent``: it passed before the request's first attempt went out (waiting for the
    client-side throttle or for KSeF's block of its group; or before the flow's step began, then
    with no ``request``)."""

    def __init__(self, message: str, *, request: httpx.Request | None = None, nothing_sent: bool = False) -> None:
        super().__init__(message, request=request)
        self.nothing_sent = nothing_sent


def never_sent(error: BaseException | None) -> bool:
    """Whether a request that failed with ``error`` cannot have reached the server: no connection
    was made, or its call's deadline passed before it first went out. KSeF neither processed nor
    counted it. The one test of "never sent": the retry policy, the throttle's count and
    ``session.send``'s ``maybe_sent`` all ask it."""
    if isinstance(error, DeadlineExceeded):
        return error.nothing_sent
    return isinstance(error, NEVER_CONNECTED)


def certificate_refused(error: BaseException) -> bool:
    """Whether ``error`` is the server's TLS certificate refused: the same every time, so no
    attempt is repeated (the first one names the cause)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return "certificate verify failed" in str(error).lower()


def is_repeat_safe(request: httpx.Request, api_path_prefix: str) -> bool:
    """Whether sending ``request`` again cannot change anything twice: an idempotent method, or a
    POST the operation table marks ``repeat_safe`` (queries, the challenge, sending an invoice,
    opening a session: see ``repeat_safe`` in generator/overlay.yaml)."""
    if request.method in IDEMPOTENT_METHODS:
        return True
    path = request.url.path
    if not path.startswith(api_path_prefix):
        return False
    found = find_operation(request.method, path[len(api_path_prefix) :] or "/")
    return found is not None and found[1].repeat_safe


@dataclass(frozen=True)
class RetryPolicy:
    """How a client repeats requests.

    Attributes:
        max_retries: repeats after the first attempt, by anyone (0: none at all).
        backoff: first backoff delay in seconds, doubled each attempt, with full jitter.
        max_backoff: cap of one backoff delay.
        max_retry_after: longest wait the client accepts: a ``Retry-After`` (429 or 5xx, and
            KSeF's block of a group after a 429), or its own pacing (``_throttle``); a 429 or a
            block asking longer raises ``RetryAfterTooLongError``, a pacing wait longer
            ``ThrottleWaitTooLongError``, instead of blocking the caller.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 120.0

    def may_repeat(self, budget: RetryBudget) -> bool:
        """Whether the budget allows one more repeat."""
        return budget.used < self.max_retries

    def backoff_delay(self, used: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff before repeat number ``used + 1``."""
        return rng.uniform(0, min(self.max_backoff, self.backoff * 2**used))

    def too_long(self, retry_after: float | None) -> bool:
        """Whether a wait the server asks for is past ``max_retry_after`` (then nothing waits for
        it: the answer is raised, ``RetryAfterTooLongError`` for a 429)."""
        return retry_after is not None and retry_after > self.max_retry_after

    def delay_after_response(
        self, response: httpx.Response, safe: bool, budget: RetryBudget, rng: random.Random, now: float
    ) -> float | None:
        """Seconds to wait before sending again after ``response``, or ``None`` to return it.

        A 429 is always safe to repeat (KSeF did not process the request); 5xx answers are
        repeated only for ``safe`` requests (``is_repeat_safe``). Both wait what their
        ``Retry-After`` asks (``now``: POSIX time, for the HTTP-date form), else a backoff; a
        ``Retry-After`` past ``max_retry_after`` is not waited for.
        """
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        if not self.may_repeat(budget) or self.too_long(retry_after):
            return None
        if response.status_code == 429 or (response.status_code in RETRY_STATUSES and safe):
            return self.backoff_delay(budget.used, rng) if retry_after is None else retry_after
        return None

    def delay_after_error(
        self, error: httpx.TransportError, safe: bool, budget: RetryBudget, rng: random.Random
    ) -> float | None:
        """Seconds to wait before sending again after a transport error, or ``None`` to raise it.

        A connection that was never made cannot have reached KSeF, so any request may be sent
        again; other failures (reset, read timeout) only ``safe`` ones.
        """
        if not self.may_repeat(budget) or certificate_refused(error):
            return None
        return self.backoff_delay(budget.used, rng) if never_sent(error) or safe else None

    def delay_to_restart(self, budget: RetryBudget, rng: random.Random, at_least: float | None = None) -> float | None:
        """Seconds to wait before a flow restarts a step it knows is safe to restart, or ``None``.

        ``at_least``: what the failure asked for (a 429's or a 5xx's ``Retry-After``); past
        ``max_retry_after`` the flow gives up rather than restart into KSeF's block.
        """
        if not self.may_repeat(budget) or self.too_long(at_least):
            return None
        return max(self.backoff_delay(budget.used, rng), at_least or 0.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or HTTP date); ``None`` if unusable
    (the caller then backs off as after any failure).

    ``now`` is a POSIX timestamp, needed only for the HTTP-date form. An HTTP date is GMT whatever
    form it takes (RFC 9110, 5.6.7: the asctime form carries no zone; it was read in the machine's
    local time, so a 30 s wait read as 5 hours in New York). Delay seconds are a non-negative
    number (RFC 9110, 10.2.3: ``1*DIGIT``): a negative one is unusable, not "now".
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(http_date: str, now: float | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or now is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)
