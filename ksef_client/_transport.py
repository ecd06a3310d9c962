"""httpx transports that throttle and retry; only the send loop differs between sync and async.

The decisions are ``_retry.RetryPolicy``'s and ``_throttle``'s; every request that goes through
a ``KSeF`` client, the generated ``ksef.raw`` calls included, passes through here.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import httpx

from ksef_client._body import BODY_KIND, BodyLimits, aread_capped, read_capped
from ksef_client._retry import (
    MAX_RETRY_AFTER,
    DeadlineExceeded,
    RetryBudget,
    RetryPolicy,
    budget_of,
    is_repeat_safe,
    never_sent,
    parse_retry_after,
)
from ksef_client._throttle import Pacing, Slot, Throttle
from ksef_client.errors import RateLimitError, RetryAfterTooLongError, ThrottleWaitTooLongError, make_status_error
from ksef_client.system_warnings import HEADER, KEPT, SystemWarning, parse_system_warnings

log = logging.getLogger("ksef_client")

# A request extension: the ``Deadline`` of the SDK call that sent the request (every request of
# the call carries the same one), which its retries, waits and bodies must meet; ``NO_DEADLINE``:
# none (a batch part's PUT, bounded by the per-request ``timeout=`` only: a 100 MB part on a slow
# uplink may outlast any deadline meant for API calls).
DEADLINE = "ksef_deadline"
NO_DEADLINE = "none"

# A request extension: a ``CallOff``; once its event is set, the request's repeats are called off:
# the transport sends it no more and the last answer (or error) stands. A sync batch gives one to
# each part upload, on the batch's failure event (the session will not be closed once a part
# failed, so a repeat only wastes the uplink); async uploads are cancelled with their task group
# instead. Not for streamed requests (``STREAMED``), whose answer is closed before a repeat and
# could not stand.
CALLED_OFF = "ksef_called_off"

# A request extension: the time (the client's clock) by which the client's own pacing of the
# request must be over; a longer wait raises ``ThrottleWaitTooLongError`` (nothing sent), as one
# past ``max_retry_after`` does. A poll's reads carry its timeout (``_flows.PaceWithin``).
PACE_UNTIL = "ksef_pace_until"


class CallOff:
    """A request's ``CALLED_OFF``: ``event`` (shared: set, it calls off every request that has
    it), and ``cut``, which the transport sets when it did leave out a repeat of this request
    (its last answer or error then says so)."""

    __slots__ = ("cut", "event")

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.cut = False

    def is_set(self) -> bool:
        """Whether the request is called off."""
        return self.event.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait until the request is called off, ``timeout`` seconds at most."""
        return self.event.wait(timeout)


class Deadline:
    """When one SDK call must be over, on the client's clock.

    The call's requests share it: the waits the client-side throttle imposes on them move it
    (the SDK's own pacing, not the server's delay; KSeF's block of a group after a 429 is the
    server's and does not), and nothing another call waits does.
    """

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def postpone(self, seconds: float) -> None:
        """Give the call ``seconds`` more."""
        self.at += max(0.0, seconds)


@dataclass
class SendState:
    """What both transports share: policy, pacing, clocks and counters (for reports)."""

    policy: RetryPolicy
    pacing: Pacing
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
    # The counters above are added to by every thread that sends through the client.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def throttle(self) -> Throttle:
        """The client-side throttle this client counts its requests in now (``_throttle``)."""
        return self.pacing.throttle()

    def deadline_of(self, request: httpx.Request) -> Deadline | None:
        """The request's deadline: its call's, or (a request sent outside any SDK call, e.g. through
        ``ksef.raw``) ``deadline`` seconds from its first send; ``None`` for ``NO_DEADLINE``."""
        deadline = request.extensions.get(DEADLINE)
        if deadline is None and self.deadline is not None:
            deadline = request.extensions[DEADLINE] = Deadline(self.clock() + self.deadline)
        return deadline if isinstance(deadline, Deadline) else None

    def check_deadline(
        self, request: httpx.Request, deadline: Deadline | None, wait: float = 0.0, before_attempt: bool = False
    ) -> None:
        """``DeadlineExceeded`` when ``deadline`` has passed (or would, after ``wait`` seconds).
        ``before_attempt``: checked before an attempt goes out (nothing sent if it is the first)."""
        if deadline is not None and self.clock() + wait >= deadline.at:
            nothing_sent = before_attempt and not budget_of(request).used
            raise DeadlineExceeded(
                f"the call's deadline passed ({self.deadline_text(request)})",
                request=request,
                nothing_sent=nothing_sent,
            )

    def deadline_text(self, request: httpx.Request) -> str:
        """Where to change the deadline, for messages."""
        return f"{request.method} {request.url.path}; deadline= on the client or with_options()"

    def bounded(self, request: httpx.Request, deadline: Deadline | None) -> None:
        """Cut the request's connect/read/write/pool timeouts to the time left before ``deadline``,
        so a silent server cannot hold it past the deadline."""
        if deadline is None:
            return
        left = max(deadline.at - self.clock(), 0.001)
        timeouts = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            key: left if timeouts.get(key) is None else min(float(timeouts[key]), left)
            for key in ("connect", "read", "write", "pool")
        }

    def body_kind(self, request: httpx.Request) -> tuple[str, int]:
        """Which cap the answer to ``request`` has (``BodyLimits``)."""
        kind = request.extensions.get(BODY_KIND) or "json"
        return str(kind), self.limits.of(kind)

    def pace(self, request: httpx.Request, deadline: Deadline | None) -> Slot:
        """A place for the next attempt of ``request`` under the spec's rate limits (``Slot.wait``
        0: send it inside ``with slot:``), or the seconds to wait before asking again.

        Every attempt asks, repeats included: KSeF counts each request that reaches it. A wait
        has two parts. KSeF's block of the group after a 429 (``Slot.held``) is the server's
        delay, as that 429's ``Retry-After`` is for the request it answered: it must fit in the
        call's deadline and in ``max_retry_after``, else a ``RateLimitError`` carrying that 429
        (``RetryAfterTooLongError`` past ``max_retry_after``) is raised, nothing sent. The rest is
        the client's own pacing: it moves the call's deadline, and one longer than
        ``max_retry_after`` raises ``ThrottleWaitTooLongError`` (nothing sent) rather than hang
        the caller in silence.
        """
        self.check_deadline(request, deadline, before_attempt=True)
        path = request.url.path
        if not path.startswith(self.api_path_prefix):
            return Slot(0.0)  # presigned storage URLs are not rate-limited
        slot = self.pacing.take(request.method, path[len(self.api_path_prefix) :] or "/")
        if slot.wait <= 0:
            return slot
        if slot.held > 0 and slot.held_by is not None:
            self._check_block(request, deadline, slot, slot.held_by)
        pacing = slot.wait - slot.held
        cap = self.policy.max_retry_after
        until = request.extensions.get(PACE_UNTIL)
        if until is not None:
            cap = min(cap, max(0.0, float(until) - self.clock()))
        if slot.wait > cap:
            raise ThrottleWaitTooLongError(slot.wait, cap, slot.key, request.method, path)
        log.info("%s %s: rate limits of group %s, waiting %.2f s", request.method, path, slot.key, slot.wait)
        if deadline is not None:
            deadline.postpone(pacing)  # our own pacing: not the server's delay
        with self._lock:
            self.throttled_seconds += slot.wait
        return slot

    def _check_block(
        self, request: httpx.Request, deadline: Deadline | None, slot: Slot, answer: httpx.Response
    ) -> None:
        """The ``RateLimitError`` for ``request`` when KSeF's block of its group (``answer``: the
        429 that set it) would outlast ``max_retry_after`` or the call's deadline."""
        cap = self.policy.max_retry_after
        too_long = slot.held > cap
        if not too_long and (deadline is None or self.clock() + slot.held < deadline.at):
            return
        why = f"more than max_retry_after ({cap:g} s)" if too_long else "past the call's deadline"
        blocked = answer.request
        message = (
            f"{request.method} {request.url.path}: not sent: KSeF blocks the requests of group {slot.key!r} for "
            f"{slot.held:.0f} s more (HTTP 429 with Retry-After to {blocked.method} {blocked.url.path}), {why}"
        )
        raise _blocked_error(message, answer, slot.held, cap if too_long else None)

    def called_off(self, request: httpx.Request) -> bool:
        """Whether ``request``'s repeats were called off (``CALLED_OFF``); when they were, a repeat
        that was due is left out, and its ``CallOff`` says so (``cut``)."""
        off = request.extensions.get(CALLED_OFF)
        if not isinstance(off, CallOff) or not off.is_set() or request.extensions.get(STREAMED):
            return False
        off.cut = True
        return True

    def sending(self) -> None:
        """Count one attempt sent."""
        with self._lock:
            self.requests_sent += 1

    def after_response(
        self, request: httpx.Request, response: httpx.Response, slot: Slot, deadline: Deadline | None
    ) -> float | None:
        """Seconds to wait before sending ``request`` again, or ``None``: ``response`` is the answer
        (also when the wait would outlast ``deadline``)."""
        if HEADER in response.headers:
            self._note_system_warnings(request, response.headers[HEADER])
        now = self.wall_clock()
        if response.status_code == 429:
            response.extensions[MAX_RETRY_AFTER] = self.policy.max_retry_after
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
            if retry_after is not None:
                slot.hold(retry_after, request, response)
        budget = budget_of(request)
        safe = is_repeat_safe(request, self.api_path_prefix)
        delay = self.policy.delay_after_response(response, safe, budget, self.rng, now)
        if delay is not None and self.called_off(request):
            return None
        # a 5xx may come after the server processed the request (a gateway's 502/504 too); a 429 not
        uncertain = response.status_code != 429
        return self._counted(request, budget, self._within(deadline, delay), str(response.status_code), uncertain)

    def after_error(
        self, request: httpx.Request, error: httpx.TransportError, deadline: Deadline | None
    ) -> float | None:
        """Seconds to wait before sending ``request`` again, or ``None``: ``error`` is raised (also
        when the wait would outlast ``deadline``)."""
        budget = budget_of(request)
        delay = self.policy.delay_after_error(error, is_repeat_safe(request, self.api_path_prefix), budget, self.rng)
        if delay is not None and self.called_off(request):
            return None
        uncertain = not never_sent(error)  # a connection broken once made: the request may have arrived
        return self._counted(request, budget, self._within(deadline, delay), type(error).__name__, uncertain)

    def after_refresh(self, request: httpx.Request) -> bool:
        """Whether ``request``, refused with 401, is sent again with the refreshed token."""
        budget = budget_of(request)
        return self._counted(request, budget, 0.0 if self.policy.may_repeat(budget) else None, "401") is not None

    def restart(self, budget: RetryBudget, what: str, at_least: float | None = None) -> float | None:
        """Seconds to wait before a flow restarts a step (``what``), or ``None``: it gives up.
        ``at_least``: the wait the failure asked for (a 429's or a 5xx's ``Retry-After``)."""
        delay = self.policy.delay_to_restart(budget, self.rng, at_least)
        if delay is not None:
            with self._lock:
                budget.used += 1
                self.retries += 1
            log.info("%s: restart %d in %.2f s", what, budget.used, delay)
        return delay

    def _note_system_warnings(self, request: httpx.Request, value: str) -> None:
        for warning in parse_system_warnings(value, request.method, request.url.path):
            self.system_warnings.append(warning)
            log.warning("KSeF system warning on %s %s: [%s] %s", warning.method, warning.path, warning.code,
                        warning.message)  # fmt: skip

    def _within(self, deadline: Deadline | None, delay: float | None) -> float | None:
        """``delay``, or ``None`` when waiting it before a repeat would pass the deadline (then the
        last answer or error stands, and no repeat is counted)."""
        if delay is None or (deadline is not None and self.clock() + delay >= deadline.at):
            return None
        return delay

    def _counted(
        self, request: httpx.Request, budget: RetryBudget, delay: float | None, cause: str, uncertain: bool = False
    ) -> float | None:
        """``delay``; when it is not ``None`` (a repeat follows), the repeat is counted on
        ``budget`` (``uncertain``: the failed attempt may have been processed, see ``RetryBudget``)."""
        if delay is not None:
            with self._lock:
                budget.used += 1
                budget.uncertain += int(uncertain)
                self.retries += 1
            log.info("%s %s -> %s, retry %d in %.2f s", request.method, request.url.path, cause, budget.used, delay)
        return delay


def _blocked_error(message: str, answer: httpx.Response, retry_after: float, cap: float | None) -> RateLimitError:
    """A ``RateLimitError`` for a request not sent into KSeF's block of its group: ``answer`` is
    the 429 that set the block (its codes and body), ``retry_after`` the seconds it still lasts;
    ``cap``: a ``RetryAfterTooLongError``, the block being longer than ``max_retry_after``."""
    parsed = make_status_error(answer)
    fields: dict[str, Any] = {
        "response": answer,
        "errors": parsed.errors,
        "reference_number": parsed.reference_number,
        "trace_id": parsed.trace_id,
        "body": parsed.body,
        "retry_after": retry_after,
    }
    if cap is None:
        return RateLimitError(message, **fields)
    return RetryAfterTooLongError(message, cap=cap, **fields)


# A request extension: the caller reads the body as it streams (and restarts on a break itself);
# the transport retries up to the answer's headers only, so the body is never held whole.
STREAMED = "ksef_streamed"


T = TypeVar("T", httpx.BaseTransport, httpx.AsyncBaseTransport)


class Connections(Generic[T]):
    """The connections a client sends through: ``inner``, httpx's transport with its connection
    pool (or the ``transport=`` the client was given), and whether its owner closed it.

    The client that made it owns it, and its close closes it. A ``with_options`` copy that sends
    the same way (the same ``transport=``; without one, the same ``verify=`` and ``base_url``)
    borrows it (``RetryingTransport.borrow``): the copy's requests reuse the owner's connections,
    the copy's close leaves them open, and once the owner closed them a request of the copy raises
    ``RuntimeError``, as a closed httpx client's does, rather than open connections nobody closes.
    The options that differ between the two (``timeout=`` included: httpx passes it with each
    request) are the copy's own, in its httpx client and ``SendState``.
    """

    __slots__ = ("closed", "inner", "loop")
    inner: T
    closed: bool
    loop: object  # an async pool's event loop, once known (``AsyncRetryingTransport.borrow``)

    def __init__(self, inner: T) -> None:
        self.inner = inner
        self.closed = False
        self.loop = None

    def check_open(self) -> None:
        """``RuntimeError`` once the owner closed the connections."""
        if self.closed:
            raise RuntimeError(
                "Cannot send a request: its connections are closed (by the client's close, or, for a copy made "
                "with with_options(), by the close of the client it was made from, whose connections it shares)"
            )


def _running_loop() -> object:
    """The event loop running this task: asyncio's loop, or trio's token; ``None`` when neither
    can be told (the shared connections are used then)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    return None


class RetryingTransport(httpx.BaseTransport):
    """Wraps a sync transport with throttling and retries."""

    def __init__(self, inner: httpx.BaseTransport, state: SendState, sleep: Callable[[float], None] = time.sleep):
        self._connections: Connections[httpx.BaseTransport] = Connections(inner)
        self._owner = True
        self._state = state
        self._sleep = sleep

    @property
    def _inner(self) -> httpx.BaseTransport:
        return self._connections.inner

    def borrow(self, lender: RetryingTransport) -> None:
        """Send through ``lender``'s connections from now on, not owning them (``Connections``).
        Called on a new ``with_options`` copy before it sends anything: the inner transport it
        was made with is dropped unused (one made on first use never opened a connection)."""
        self._connections, self._owner = lender._connections, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        connections = self._connections
        state = self._state
        deadline = state.deadline_of(request)
        kind, limit = state.body_kind(request)
        while True:
            # Each attempt, before it takes a place in the throttle (a refusal is no request): the
            # connections' owner may have closed them while a repeat waited.
            connections.check_open()
            while (slot := state.pace(request, deadline)).wait > 0:
                self._sleep(slot.wait)
            try:
                with slot:  # counted in the throttle when the answer (or error) comes
                    state.bounded(request, deadline)
                    state.sending()
                    response = connections.inner.handle_request(request)
                    if not request.extensions.get(STREAMED):
                        # inside the retry loop: a connection dropped mid-body is retried too
                        read_capped(response, kind, limit, lambda: state.check_deadline(request, deadline))
            except httpx.TransportError as error:
                state.check_deadline(request, deadline)
                delay = state.after_error(request, error, deadline)
                if delay is None or not self._waited(request, delay):
                    raise
            else:
                delay = state.after_response(request, response, slot, deadline)
                if delay is None:
                    return response
                response.close()  # read whole (unless streamed): its content stays
                if not self._waited(request, delay):
                    return response

    def _waited(self, request: httpx.Request, delay: float) -> bool:
        """Wait ``delay`` before a repeat of ``request``; ``False`` when it was called off by then
        (``CALLED_OFF``). On the real clock the wait ends the moment it is called off."""
        off = request.extensions.get(CALLED_OFF)
        if isinstance(off, CallOff) and self._sleep is time.sleep:
            off.wait(delay)
        else:
            self._sleep(delay)
        return not self._state.called_off(request)

    def close(self) -> None:
        """Close the connections if this transport owns them (a borrower's leaves them open)."""
        if self._owner:
            self._connections.closed = True
            self._inner.close()


class AsyncRetryingTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport with throttling and retries."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        state: SendState,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ):
        self._connections: Connections[httpx.AsyncBaseTransport] = Connections(inner)
        self._owner = True
        self._own_connections: Connections[httpx.AsyncBaseTransport] | None = None  # see borrow
        self._state = state
        self._sleep = sleep

    @property
    def _inner(self) -> httpx.AsyncBaseTransport:
        return self._connections.inner

    def borrow(self, lender: AsyncRetryingTransport) -> None:
        """``RetryingTransport.borrow``, in the event loop the lender's connections serve: an
        async connection pool is bound to the loop it first sent in, and a copy used in another
        (``asyncio.run`` per job, a loop per thread) sends through connections of its own, made
        on its first request there and closed by its ``aclose`` (``_connections_here``)."""
        own = self._connections
        self._connections, self._owner = lender._connections, False
        # The same transport= object is the lender's own: nothing of the copy's to fall back on.
        self._own_connections = None if own.inner is lender._connections.inner else own

    def _connections_here(self) -> Connections[httpx.AsyncBaseTransport]:
        """The connections to send through from the running event loop: the owner's always (it
        binds them to its loop); a borrower's only in the loop the owner sent from, else its
        own (an owner that has not sent yet: ``asyncio.run`` per job may close the loop a first
        borrower would have bound them to)."""
        shared = self._connections
        if self._owner:
            if shared.loop is None:
                shared.loop = _running_loop()
            return shared
        if self._own_connections is None or (shared.loop is not None and shared.loop is _running_loop()):
            return shared
        return self._own_connections

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        connections = self._connections_here()
        state = self._state
        deadline = state.deadline_of(request)
        kind, limit = state.body_kind(request)
        while True:
            # Each attempt, before it takes a place in the throttle (a refusal is no request): the
            # connections' owner may have closed them while a repeat waited.
            connections.check_open()
            while (slot := state.pace(request, deadline)).wait > 0:
                await self._sleep(slot.wait)
            try:
                with slot:  # counted in the throttle when the answer (or error) comes
                    state.bounded(request, deadline)
                    state.sending()
                    response = await connections.inner.handle_async_request(request)
                    if not request.extensions.get(STREAMED):
                        # a connection dropped mid-body is retried too
                        await aread_capped(response, kind, limit, lambda: state.check_deadline(request, deadline))
            except httpx.TransportError as error:
                state.check_deadline(request, deadline)
                delay = state.after_error(request, error, deadline)
                if delay is None or not await self._waited(request, delay):
                    raise
            else:
                delay = state.after_response(request, response, slot, deadline)
                if delay is None:
                    return response
                await response.aclose()  # read whole (unless streamed): its content stays
                if not await self._waited(request, delay):
                    return response

    async def _waited(self, request: httpx.Request, delay: float) -> bool:
        """``RetryingTransport._waited``; async uploads are cancelled rather than called off, so
        this only waits."""
        await self._sleep(delay)
        return not self._state.called_off(request)

    async def aclose(self) -> None:
        """Close the connections if this transport owns them (a borrower's leaves them open, and
        closes those it made in another event loop than its lender's)."""
        if self._owner:
            self._connections.closed = True
            await self._inner.aclose()
        elif self._own_connections is not None:
            self._own_connections.closed = True
            await self._own_connections.inner.aclose()


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
