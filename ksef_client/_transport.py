"""httpx transports that throttle and retry; only the send loop differs between sync and async.

The decisions are ``_retry.RetryPolicy``'s and ``_throttle``'s; every request that goes through
a ``KSeF`` client, the generated ``ksef.raw`` calls included, passes through here.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import httpx

from ksef_client._body import BODY_KIND, BodyLimits, aread_capped, read_capped
from ksef_client._retry import RetryBudget, RetryPolicy, budget_of, is_repeat_safe
from ksef_client._throttle import Throttle, match_operation
from ksef_client.system_warnings import HEADER, KEPT, SystemWarning, parse_system_warnings

log = logging.getLogger("ksef_client")

# A request extension: the clock time (``SendState.clock``) by which the SDK call that sent the
# request must be over, retries, waits and the body included; ``NO_DEADLINE``: none (a batch
# part's PUT, bounded by the per-request ``timeout=`` only: a 100 MB part on a slow uplink may
# outlast any deadline meant for API calls).
DEADLINE = "ksef_deadline"
NO_DEADLINE = "none"


class DeadlineExceeded(httpx.TimeoutException):
    """The call's overall deadline passed (a slow or silent server, or retries that would outlast it)."""


@dataclass
class SendState:
    """What both transports share: policy, throttle, clocks and counters (for reports)."""

    policy: RetryPolicy
    throttle: Throttle
    api_path_prefix: str
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    limits: BodyLimits = field(default_factory=BodyLimits)
    deadline: float | None = None
    retries: int = 0
    throttled_seconds: float = 0.0
    requests_sent: int = 0
    # KSeF's X-System-Warning of recent answers, newest last (system_warnings.py).
    system_warnings: deque[SystemWarning] = field(default_factory=lambda: deque(maxlen=KEPT))

    def deadline_of(self, request: httpx.Request) -> float | None:
        """The request's deadline: its call's, or (a request sent outside any SDK call, e.g. through
        ``ksef.raw``) ``deadline`` seconds from its first send; ``None`` for ``NO_DEADLINE``."""
        deadline = request.extensions.get(DEADLINE)
        if deadline == NO_DEADLINE:
            return None
        if deadline is None and self.deadline is not None:
            deadline = request.extensions[DEADLINE] = self.clock() + self.deadline
        return deadline if isinstance(deadline, int | float) else None

    def postpone(self, request: httpx.Request, deadline: float | None, seconds: float) -> float | None:
        """Move the request's deadline by the ``seconds`` the client-side throttle makes it wait."""
        if deadline is not None:
            deadline = request.extensions[DEADLINE] = deadline + seconds
        return deadline

    def check_deadline(self, request: httpx.Request, deadline: float | None, wait: float = 0.0) -> None:
        """``DeadlineExceeded`` when ``deadline`` has passed (or would, after ``wait`` seconds)."""
        if deadline is not None and self.clock() + wait >= deadline:
            raise DeadlineExceeded(f"the call's deadline passed ({self.deadline_text(request)})", request=request)

    def deadline_text(self, request: httpx.Request) -> str:
        """Where to change the deadline, for messages."""
        return f"{request.method} {request.url.path}; deadline= on the client or with_options()"

    def bounded(self, request: httpx.Request, deadline: float | None) -> None:
        """Cut the request's connect/read/write/pool timeouts to the time left before ``deadline``,
        so a silent server cannot hold it past the deadline."""
        if deadline is None:
            return
        left = max(deadline - self.clock(), 0.001)
        timeouts = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            key: left if timeouts.get(key) is None else min(float(timeouts[key]), left)
            for key in ("connect", "read", "write", "pool")
        }

    def body_kind(self, request: httpx.Request) -> tuple[str, int]:
        """Which cap the answer to ``request`` has (``BodyLimits``)."""
        kind = request.extensions.get(BODY_KIND) or "json"
        return str(kind), self.limits.of(kind)

    def throttle_delay(self, request: httpx.Request) -> float:
        """Wait needed before sending ``request`` under the spec's rate limits."""
        path = request.url.path
        if not path.startswith(self.api_path_prefix):
            return 0.0  # presigned storage URLs are not rate-limited
        matched = match_operation(request.method, path[len(self.api_path_prefix) :] or "/")
        if matched is None:
            return 0.0
        return self.throttle.delay(matched[0], matched[1], self.clock())

    def after_response(self, request: httpx.Request, response: httpx.Response) -> float | None:
        """Seconds to wait before sending ``request`` again, or ``None``: ``response`` is the answer."""
        if HEADER in response.headers:
            self._note_system_warnings(request, response.headers[HEADER])
        budget = budget_of(request)
        safe = is_repeat_safe(request, self.api_path_prefix)
        delay = self.policy.delay_after_response(response, safe, budget, self.rng, self.wall_clock())
        return self._counted(request, budget, delay, str(response.status_code))

    def after_error(self, request: httpx.Request, error: httpx.TransportError) -> float | None:
        """Seconds to wait before sending ``request`` again, or ``None``: ``error`` is raised."""
        budget = budget_of(request)
        delay = self.policy.delay_after_error(error, is_repeat_safe(request, self.api_path_prefix), budget, self.rng)
        return self._counted(request, budget, delay, type(error).__name__)

    def after_refresh(self, request: httpx.Request) -> bool:
        """Whether ``request``, refused with 401, is sent again with the refreshed token."""
        budget = budget_of(request)
        return self._counted(request, budget, 0.0 if self.policy.may_repeat(budget) else None, "401") is not None

    def restart(self, budget: RetryBudget, what: str) -> float | None:
        """Seconds to wait before a flow restarts a step (``what``), or ``None``: it gives up."""
        delay = self.policy.delay_to_restart(budget, self.rng)
        if delay is not None:
            budget.used += 1
            self.retries += 1
            log.info("%s: restart %d in %.2f s", what, budget.used, delay)
        return delay

    def _note_system_warnings(self, request: httpx.Request, value: str) -> None:
        for warning in parse_system_warnings(value, request.method, request.url.path):
            self.system_warnings.append(warning)
            log.warning("KSeF system warning on %s %s: [%s] %s", warning.method, warning.path, warning.code,
                        warning.message)  # fmt: skip

    def _counted(self, request: httpx.Request, budget: RetryBudget, delay: float | None, cause: str) -> float | None:
        if delay is not None:
            budget.used += 1
            self.retries += 1
            log.info("%s %s -> %s, retry %d in %.2f s", request.method, request.url.path, cause, budget.used, delay)
        return delay


# A request extension: the caller reads the body as it streams (and restarts on a break itself);
# the transport retries up to the answer's headers only, so the body is never held whole.
STREAMED = "ksef_streamed"


class RetryingTransport(httpx.BaseTransport):
    """Wraps a sync transport with throttling and retries."""

    def __init__(self, inner: httpx.BaseTransport, state: SendState, sleep: Callable[[float], None] = time.sleep):
        self._inner = inner
        self._state = state
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        state = self._state
        deadline = state.deadline_of(request)
        while (wait := state.throttle_delay(request)) > 0:
            deadline = state.postpone(request, deadline, wait)  # our own pacing: not the server's delay
            state.throttled_seconds += wait
            self._sleep(wait)
        kind, limit = state.body_kind(request)
        while True:
            state.check_deadline(request, deadline)
            state.bounded(request, deadline)
            state.requests_sent += 1
            try:
                response = self._inner.handle_request(request)
                if not request.extensions.get(STREAMED):
                    # inside the retry loop: a connection dropped mid-body is retried too
                    read_capped(response, kind, limit, lambda: state.check_deadline(request, deadline))
            except httpx.TransportError as error:
                state.check_deadline(request, deadline)
                delay = state.after_error(request, error)
                if delay is None or _outlasts(state, deadline, delay):
                    raise
            else:
                delay = state.after_response(request, response)
                if delay is None or _outlasts(state, deadline, delay):
                    return response
                response.close()
            self._sleep(delay)

    def close(self) -> None:
        self._inner.close()


class AsyncRetryingTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport with throttling and retries."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        state: SendState,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ):
        self._inner = inner
        self._state = state
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        state = self._state
        deadline = state.deadline_of(request)
        while (wait := state.throttle_delay(request)) > 0:
            deadline = state.postpone(request, deadline, wait)  # our own pacing: not the server's delay
            state.throttled_seconds += wait
            await self._sleep(wait)
        kind, limit = state.body_kind(request)
        while True:
            state.check_deadline(request, deadline)
            state.bounded(request, deadline)
            state.requests_sent += 1
            try:
                response = await self._inner.handle_async_request(request)
                if not request.extensions.get(STREAMED):
                    # a connection dropped mid-body is retried too
                    await aread_capped(response, kind, limit, lambda: state.check_deadline(request, deadline))
            except httpx.TransportError as error:
                state.check_deadline(request, deadline)
                delay = state.after_error(request, error)
                if delay is None or _outlasts(state, deadline, delay):
                    raise
            else:
                delay = state.after_response(request, response)
                if delay is None or _outlasts(state, deadline, delay):
                    return response
                await response.aclose()
            await self._sleep(delay)

    async def aclose(self) -> None:
        await self._inner.aclose()


class DeferredTransport(httpx.BaseTransport):
    """httpx's own transport, made on the first request: creating one loads httpcore and builds a
    TLS context (tens of milliseconds), which a client that never sends should not pay for."""

    def __init__(self, verify: bool) -> None:
        self._verify = verify
        self._transport: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def _inner(self) -> httpx.HTTPTransport:
        with self._lock:
            if self._transport is None:
                self._transport = httpx.HTTPTransport(verify=self._verify)
            return self._transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return (self._transport or self._inner()).handle_request(request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class AsyncDeferredTransport(httpx.AsyncBaseTransport):
    """``DeferredTransport`` for ``AsyncKSeF``."""

    def __init__(self, verify: bool) -> None:
        self._verify = verify
        self._transport: httpx.AsyncHTTPTransport | None = None
        self._lock = threading.Lock()  # made without awaiting; a client may serve several loops' threads

    def _inner(self) -> httpx.AsyncHTTPTransport:
        with self._lock:
            if self._transport is None:
                self._transport = httpx.AsyncHTTPTransport(verify=self._verify)
            return self._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await (self._transport or self._inner()).handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


def _outlasts(state: SendState, deadline: float | None, delay: float) -> bool:
    """Whether waiting ``delay`` before a repeat would pass the deadline (then the last answer or
    error stands)."""
    return deadline is not None and state.clock() + delay >= deadline
