"""Client-side throttling from each operation's ``x-rate-limits`` in the spec.

KSeF counts requests per context and IP in sliding windows of a second, a minute and an hour,
per limit group (``counter_of``): the operations of a named group, e.g. ``sessionMisc``, share one
counter; each operation of ``other`` (the default limits) has its own. Besides, every request of
an IP address counts against ``global``, and the unauthenticated ones are counted per address
alone (``anonymous``), whatever context the client works in. A client that waits before exceeding
them never sees a 429. The limits and groups come from the generated operation table, not from
hand-typed numbers (``global``'s excepted: the spec gives it in an example only).

One ``Throttle`` is shared by every client that KSeF counts together (``shared_throttle``): the
``with_options`` copies of a client, and clients of the same API logged into the same context;
another by every client of the same API in the process (one IP address) for the per-address
counters. Their windows are guarded by a lock, so threads and tasks may share them.
"""

from __future__ import annotations

import math
import threading
import weakref
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from ksef_client._generated.operations import Operation, RateLimits
from ksef_client._operations import find_operation
from ksef_client._retry import never_sent

_WINDOWS = (1.0, 60.0, 3600.0)


# limity/limity-api.md, "Pozostałe" (the group ``other``, "POST/GET /*"): "Domyślne limity
# obowiązują dla wszystkich zasobów API, które nie mają określonych wartości szczegółowych [...].
# Każdy taki endpoint posiada własny licznik limitów, a jego żądania nie wpływają na inne zasoby."
# The guide says so of no other group: a named group's limits are one counter for its operations
# (sessionMisc is a single row, "Pozostałe | GET /sessions/*", of the sessions' table; the
# changelog raises "limit godzinowy dla grupy sessionMisc (zasoby GET /sessions/*)" for its four
# operations together). Where the guide is silent one counter is the safe side: a client never
# sends more than KSeF allows, only waits longer than it might.
PER_ENDPOINT_GROUPS = frozenset({"other"})


# GET /rate-limits, ``EffectiveApiRateLimits.global``: "Limity globalne dla wszystkich operacji API
# (per adres IP)"; the spec's example answer gives 75 per second, -1 (none) per minute and hour. No
# operation's x-rate-limits carries it, so it is typed here (tests pin it to that example).
GLOBAL_GROUP = "global"
GLOBAL_RATE_LIMITS = RateLimits(75, None, None)
# ``EffectiveApiRateLimits.anonymous``: "Limity dla anonimowych operacji API (nieuwierzytelnionych)";
# limity/limity-api.md: public resources such as /auth/challenge "nie wymagają uwierzytelnienia [...]
# - limit wynosi 60 żądań na sekundę dla jednego adresu IP". Without a context to count them by,
# KSeF counts them per address: one counter for every client of the process.
ANONYMOUS_GROUP = "anonymous"


def per_address(operation: Operation) -> bool:
    """Whether KSeF counts ``operation`` per IP address alone: an anonymous one (its spec group),
    or one sent without an access token (no context to count it by)."""
    return operation.rate_limit_group == ANONYMOUS_GROUP or not operation.requires_token


def counter_of(key: str, operation: Operation) -> str:
    """The counter KSeF counts a request of ``operation`` (``key``: ``tag.operation_id``) on: its
    limit group's, or the endpoint's own for a group of ``PER_ENDPOINT_GROUPS`` (``other (GET
    /limits/context)``), or the operation's where the spec names no group (before API 2.9.0).
    Limits set for a group (``/testdata/rate-limits``) still apply to each of its counters."""
    group = operation.rate_limit_group
    if group is None:
        return key
    if group in PER_ENDPOINT_GROUPS:
        return f"{group} ({operation.method} {operation.path})"
    return group


def match_operation(method: str, path: str) -> tuple[str, RateLimits | None] | None:
    """The counter (``counter_of``) and limits of a request; ``path`` is the part after ``/v2``."""
    found = find_operation(method, path)
    if found is None:
        return None
    key, operation = found
    return counter_of(key, operation), operation.rate_limits


# How long a request still unanswered counts as made "now" (KSeF may count it at any moment
# until it answers; its answer then puts it at the answer's time). Past this mark it stays at the
# mark: a wait then ends even when the sleep never lets the request finish (a test's fake async
# sleep that does not yield to the event loop), instead of waiting window after window forever.
IN_FLIGHT_LIMIT = 60.0


@dataclass
class _Group:
    """One limit group's requests: when each was counted (sorted; a request on its way at its
    ``IN_FLIGHT_LIMIT`` mark, read as "now" until then), until when KSeF has blocked the group,
    and the 429 that blocked it (``held_by``)."""

    counted: list[float] = field(default_factory=list)
    held_until: float = -math.inf
    held_by: httpx.Response | None = None


class Throttle:
    """Sliding-window limiter; ``scale`` multiplies every limit (``0`` switches throttling off).

    The emulator counts a request when it arrives (``delay``); a client takes a place before it
    sends (``take``) and settles it with the time of the answer (``Slot``).
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._groups: dict[str, _Group] = {}
        # Threads sharing a client share this throttle: deciding and counting must be one step
        # (two threads must not both take the last place), and the lists must not change while
        # one is read. Nothing awaits inside, so asyncio tasks never hold it across a switch.
        self._lock = threading.Lock()

    def allowed(self, limit: int, *, exact: bool = False, scale: float | None = None) -> int:
        """Calls allowed in a window whose spec limit is ``limit``, at this throttle's scale (or
        ``scale``; or, ``exact``, as given: a limit set for a context rather than the spec's)."""
        return max(1, limit if exact else int(limit * (self.scale if scale is None else scale)))

    def delay(self, key: str, limits: RateLimits | None, now: float, *, exact: bool = False) -> float:
        """Seconds to wait before a call of ``key`` at ``now``; 0 counts the call as made at ``now``
        (the emulator's view: a request is counted when it arrives). ``exact`` takes ``limits`` as
        they are, not times ``scale`` (still none at scale 0)."""
        if limits is None or self.scale <= 0:
            return 0.0
        with self._lock:
            wait = self._wait(self._group(key), limits, now, lambda limit: self.allowed(limit, exact=exact))
            if wait <= 0:
                insort(self._group(key).counted, now)
        return wait

    def take(self, key: str, limits: RateLimits, now: float, scale: float) -> float:
        """Seconds a client must wait before sending a request of ``key`` at ``now`` (the limits
        times ``scale``); 0 takes a place for it, counted as made now (for ``IN_FLIGHT_LIMIT``
        seconds at most) until ``settle`` says when its answer came."""
        with self._lock:
            group = self._group(key)
            wait = self._wait(group, limits, now, lambda limit: self.allowed(limit, scale=scale))
            if wait <= 0:
                insort(group.counted, now + IN_FLIGHT_LIMIT)
        return wait

    def settle(self, key: str, taken: float, at: float | None) -> None:
        """The request ``take`` let through at ``taken`` is over: counted at ``at``, or not at all
        (``None``: it never reached the server)."""
        with self._lock:
            counted = self._group(key).counted
            index = bisect_left(counted, taken + IN_FLIGHT_LIMIT)
            if index < len(counted) and counted[index] == taken + IN_FLIGHT_LIMIT:
                del counted[index]
            if at is not None:
                insort(counted, at)

    def hold(self, key: str, until: float, answer: httpx.Response) -> None:
        """KSeF blocked the group (``answer``: a 429 with ``Retry-After``): no request of it
        before ``until``."""
        with self._lock:
            group = self._group(key)
            if until > group.held_until:
                group.held_until, group.held_by = until, answer

    def held(self, key: str, now: float) -> tuple[float, httpx.Response | None]:
        """Seconds KSeF's block of the group still lasts at ``now`` (0: none), and its 429."""
        with self._lock:
            group = self._group(key)
            return max(0.0, group.held_until - now), group.held_by

    def _group(self, key: str) -> _Group:
        return self._groups.setdefault(key, _Group())

    def binding(
        self, key: str, limits: RateLimits | None, now: float, *, exact: bool = False
    ) -> tuple[float, int] | None:
        """The window (1, 60 or 3600 seconds) whose limit holds a call of ``key`` at ``now`` the
        longest, and the calls it allows (as ``delay`` counts them); ``None`` when every window
        has room. Counts nothing: the emulator names the limit in its 429 with it."""
        if limits is None or self.scale <= 0:
            return None
        with self._lock:
            group = self._group(key)
            full = list(self._full_windows(group, limits, now, lambda limit: self.allowed(limit, exact=exact)))
        return max(full)[1:] if full else None

    @staticmethod
    def _full_windows(
        group: _Group, limits: RateLimits, now: float, allowed: Callable[[int], int]
    ) -> Iterator[tuple[float, float, int]]:
        """Each window of ``limits`` with no room at ``now``: the wait until it has, the window and
        the calls it allows."""
        counted = group.counted
        for window, limit in zip(_WINDOWS, limits, strict=True):
            if limit is None:
                continue
            start = bisect_right(counted, now - window)
            cap = allowed(limit)
            over = len(counted) - start - cap
            if over >= 0:
                # counted[start + over] must leave the window before another request may enter;
                # one still unanswered (its mark ahead of now) counts as made now
                yield min(counted[start + over], now) + window - now, window, cap

    @classmethod
    def _wait(cls, group: _Group, limits: RateLimits, now: float, allowed: Callable[[int], int]) -> float:
        counted = group.counted
        del counted[: bisect_right(counted, now - _WINDOWS[-1])]
        waits = [wait for wait, _, _ in cls._full_windows(group, limits, now, allowed)]
        return max(0.0, group.held_until - now, *waits)


@dataclass
class Slot:
    """One attempt's places (``places``: its own counter's first, then ``global``'s) in the windows
    (``wait`` 0), or the seconds to wait before asking again: ``held`` of them KSeF's block of the
    group (a 429's ``Retry-After``, ``held_by`` that 429), the rest the client's own pacing.
    ``key``: the counter named in messages (the one that made the wait; else the request's own).

    Used as a context manager around the attempt: on leaving, the request is counted at the time
    its answer (or error) came. KSeF counts a request somewhere between the moment the client
    starts sending it and the moment it answers; the client cannot know where (a slow TLS
    handshake, a congested link, a large body). Counting it at the answer puts each request at
    or after KSeF's own count, so a window the client sees as free is free at KSeF too; counting
    it when deciding to send (as before) let a request sent after a slow one reach KSeF inside
    that one's window, and KSeF answered the client's own pacing with a 429. Until the answer
    comes the request counts as made now (``IN_FLIGHT_LIMIT``). A connection never made is not
    counted. The price: the next window opens a round trip later than it might.
    """

    wait: float
    places: tuple[tuple[Throttle, str], ...] = ()
    key: str = ""
    clock: Callable[[], float] | None = None
    taken: float = 0.0
    held: float = 0.0
    held_by: httpx.Response | None = None

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.clock is not None:
            at = None if never_sent(error) else self.clock()
            for throttle, key in self.places:
                throttle.settle(key, self.taken, at)

    def hold(self, seconds: float, request: httpx.Request, answer: httpx.Response) -> None:
        """Hold the whole group for ``seconds``: KSeF answered ``request`` 429 (``answer``) with
        that ``Retry-After``, and every request of the group (any thread's, any copy's) would meet
        the same block; each one sent into it may lengthen the block (limity/limity-api.md)."""
        own = [throttle for throttle, key in self.places if key == self.key]
        if own and self.clock is not None:
            own[0].hold(self.key, self.clock() + seconds, _kept(request, answer))


def _kept(request: httpx.Request, answer: httpx.Response) -> httpx.Response:
    """The 429 as the group's other requests report it: status, headers and body, and the method
    and URL (no query) of the request it answered, without that request's headers (its token)."""
    try:
        body = answer.content
    except httpx.ResponseNotRead:  # a streamed answer: its body is the caller's to read
        body = b""
    return httpx.Response(
        answer.status_code,
        headers=answer.headers,
        content=body,
        request=httpx.Request(request.method, request.url.copy_with(query=None)),
    )


_SHARED: weakref.WeakValueDictionary[Hashable, Throttle] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()
# How often the server behind each base URL started afresh (``forget_counts``): part of the shared
# throttles' keys, so the counts made before do not apply to it.
_GENERATIONS: dict[str, int] = {}


def forget_counts(base_url: str) -> None:
    """The server behind ``base_url`` starts afresh (the ``ksef_mock`` fixture's emulator, reset
    before each test, whose own counts start again): every client of it, alive or made later, counts
    its requests in new windows from now on. Without this the requests of one test (of clients
    still alive, or not yet collected) were counted against the next one."""
    url = base_url.rstrip("/")  # as the client's settings have it
    with _SHARED_LOCK:
        _GENERATIONS[url] = _GENERATIONS.get(url, 0) + 1


def shared_throttle(key: Hashable) -> Throttle:
    """The throttle of every client whose requests KSeF counts together (``key``: the API's base
    URL and how often its server started afresh, the clock the windows are measured on, and the
    login's context, or none: the counters per IP address); it lives while one of them holds it."""
    with _SHARED_LOCK:
        throttle = _SHARED.get(key)
        if throttle is None:
            throttle = Throttle()
            _SHARED[key] = throttle
        return throttle


# In place of a login in the key of the per-address throttle: no login is this object.
_ADDRESS = object()


class Pacing:
    """A client's use of the shared throttle: the spec's limits times ``scale``, counted with every
    client of the same API (``base_url``), login and ``clock``.

    ``login()`` says whose requests KSeF counts together: the login's context when the client
    knows it (a login it made), else the token holder itself (shared by ``with_options`` copies
    only: a bare access token does not say its context). KSeF counts per context and IP address;
    one process is one address: the per-address counters (``global``, the unauthenticated
    operations) are shared by every client of the API in the process, whatever its login.
    """

    def __init__(self, scale: float, base_url: str, clock: Callable[[], float], login: Callable[[], Hashable]) -> None:
        self.scale = scale
        self._base_url = base_url
        self._clock = clock
        self._login = login
        # The shared throttles this client (and its ``with_options`` copies: ``share_with``) used,
        # kept alive while one of them lives.
        self._held: dict[Hashable, Throttle] = {}

    def share_with(self, original: Pacing) -> None:
        """Keep the throttles alive together with ``original`` (this client is its copy): a copy
        made per call and dropped must not take the counts with it."""
        self._held = original._held

    def throttle(self) -> Throttle:
        """The throttle shared with the clients counted together with this one now."""
        return self._shared(self._login())

    def address_throttle(self) -> Throttle:
        """The throttle of the counters per IP address, shared with every client of the API in
        the process (on the same clock)."""
        return self._shared(_ADDRESS)

    def _shared(self, login: Hashable) -> Throttle:
        generation = _GENERATIONS.get(self._base_url, 0)
        key = (self._base_url, generation, self._clock, login)
        throttle = self._held.get(key)
        if throttle is None:
            self._forget_older(generation)
            throttle = self._held[key] = shared_throttle(key)
        return throttle

    def _forget_older(self, generation: int) -> None:
        """Let go of the throttles of this base URL from before its server last started afresh
        (``forget_counts``): they no longer apply, and a client living through many resets
        would keep one per reset."""
        for key in list(self._held):  # a copy: another thread's copy of the client may add to it
            if isinstance(key, tuple) and key[0] == self._base_url and key[1] != generation:
                self._held.pop(key, None)

    def take(self, method: str, path: str) -> Slot:
        """A place for one request (``path`` after ``/v2``) on its own counter and on ``global``,
        or the wait before asking again."""
        found = find_operation(method, path)
        if found is None or self.scale <= 0:
            return Slot(0.0)
        key, operation = found
        address = self.address_throttle()
        own = (address if per_address(operation) else self.throttle(), counter_of(key, operation))
        counters = [(*own, operation.rate_limits), (address, GLOBAL_GROUP, GLOBAL_RATE_LIMITS)]
        now = self._clock()
        taken: list[tuple[Throttle, str]] = []
        waits: list[tuple[float, str]] = []
        for throttle, counter, limits in counters:
            if limits is None:
                continue
            wait = throttle.take(counter, limits, now, self.scale)
            if wait > 0:
                waits.append((wait, counter))
            else:
                taken.append((throttle, counter))
        if not waits:
            return Slot(0.0, tuple(taken), own[1], self._clock, now)
        for throttle, counter in taken:  # all places or none: give back those taken
            throttle.settle(counter, now, None)
        wait, counter = max(waits)
        held, held_by = own[0].held(own[1], now)
        return Slot(wait, key=own[1] if held > 0 else counter, held=min(held, wait), held_by=held_by)
