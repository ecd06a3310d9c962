"""Multi-step work written once, run by a sync and an async driver (httpx's ``auth_flow`` idea).

A flow is a generator that yields steps and receives their results:

- ``Call(operation, kwargs, bearer=None, budget=None, body="json")``: a generated operation
  (module with ``build_request`` and ``parse_response``); the result is its ``Response``.
  ``bearer`` sends another token than the client's access token (the authentication token while
  logging in); ``budget`` shares one retry budget between the repeats of a step the flow may
  restart; ``body`` names the cap of the answer (a ``BodyLimits`` field: ``invoice``, ``upo``).
- ``Sleep(seconds)``: wait (the client's injectable sleep); result ``None``.
- ``Now()``: the client's monotonic clock; result a float.
- ``ClientSettings()``: the client's ``Settings`` (``require_hash``, the base URL, ...).
- ``Download(url)``: GET a presigned link (a UPO) without the token; result ``(bytes, headers)``.
- ``StreamDownload(url, receive, budget=None)``: the same, its body handed to ``receive`` chunk by
  chunk as it arrives (never whole in memory); result the headers.
- ``Retry(budget, what, at_least=None)``: ask the client's retry policy whether to restart a step
  (``_retry``); if so the driver waits the policy's delay (``at_least`` seconds or more: a 429's
  ``Retry-After``), and the result is ``True``.
- ``Upload(parts, workers, progress)``: PUT batch parts to their presigned links, concurrently; result
  ``None``. The upload is not held to the call's deadline: each PUT is bounded by the per-request
  ``timeout=`` and ``max_retries`` only, and the run's deadline moves by the time the upload took
  (a large package on a slow uplink must still be closed).
- ``Extend(seconds)``: the call may take that much longer than the client's ``deadline`` (a
  flow that polls for ``timeout`` seconds asks for them); result ``None``.
- ``FreshDeadline()``: the run's deadline starts again, the client's whole ``deadline`` from now
  (a flow made of independent reads, each held to it as a call of its own would be: the UPOs of
  ``check_duplicates``); result ``None``. What ``Extend`` and ``Upload`` steps added before it is
  dropped (a flow that needs more yields ``Extend`` after it); a ``PaceWithin`` bound is kept.
  Each one lets the run take another ``deadline``: a flow yields it once per unit of work it
  bounds (a read), never in a loop that a failure could keep going (``check_duplicates`` raises
  a timeout and any other failure that is not of one read).
- ``PaceWithin(until)``: the client's own pacing of the run's next requests must be over by
  ``until`` (``None``: by ``max_retry_after`` only), else ``ThrottleWaitTooLongError``, nothing
  sent (a poll's reads: not past its timeout); result ``None``.
- ``Blocking(fn, args)``: local work that takes long (unpacking an export, parsing a large UPO):
  ``run`` calls ``fn(*args)`` inline, ``arun`` in a worker thread so the event loop goes on (a
  cancelled call waits for the thread: ``_threads.in_thread``). Not held to the call's deadline
  (it is no request, and stopping it half-way would leave its files behind). Flows yield it
  through ``blocking(fn, *args)``, which returns what ``fn`` returns and raises what it raises.

``run(flow, client)`` and ``await arun(flow, client)`` drive it; the flow's return value is theirs.
A step's ``KSeFError`` is thrown into the flow, which may handle it or let it propagate. One run
is one SDK call: it has one deadline (the client's ``deadline`` seconds from its start, plus what
``Extend`` steps add and ``Upload`` steps take; a ``FreshDeadline`` step starts it again) that
every request, retry, wait and body of the call must meet (``APITimeoutError`` otherwise).

The reusable flows live here too: ``poll_flow`` (the one poll loop) and ``pager``/``apager``
(a listing whose pages are flows, walked by ``Pager``/``AsyncPager``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ksef_client._auth import BEARER
from ksef_client._body import BODY_KIND
from ksef_client._core import not_taken, parse_answer, parsed
from ksef_client._generated.types import Response
from ksef_client._retry import BUDGET, DeadlineExceeded, RetryBudget
from ksef_client._threads import in_thread
from ksef_client._transport import DEADLINE, PACE_UNTIL, Deadline
from ksef_client.errors import (
    APITimeoutError,
    InternalServerError,
    KSeFError,
    PollTimeoutError,
    RateLimitError,
    ResponseFormatError,
    ThrottleWaitTooLongError,
)
from ksef_client.pagination import (
    AsyncPager,
    Pager,
    RepeatedCursor,
    Within,
    next_offset,
    offset_cursor,
    offset_page_size,
    read_token_cursor,
    token_cursor,
)

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF
    from ksef_client.batch import PartUpload, Progress

T = TypeVar("T")
C = TypeVar("C")
S = TypeVar("S")


@dataclass(frozen=True)
class Call:
    """Run one generated operation."""

    operation: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    bearer: str | None = field(default=None, repr=False)
    budget: RetryBudget | None = None
    body: str = "json"


@dataclass(frozen=True)
class Sleep:
    """Wait before the next step."""

    seconds: float


@dataclass(frozen=True)
class Now:
    """Read the client's clock."""


@dataclass(frozen=True)
class ClientSettings:
    """Read the client's settings."""


@dataclass(frozen=True)
class Download:
    """Fetch a presigned storage link (no Authorization header)."""

    url: str


@dataclass(frozen=True)
class StreamDownload:
    """Fetch a presigned storage link, passing the body on in chunks."""

    url: str
    receive: Callable[[bytes], None]
    budget: RetryBudget | None = None


@dataclass(frozen=True)
class Retry:
    """Restart a step if the retry policy allows (``budget`` counts the repeats so far), after at
    least ``at_least`` seconds (what the failure asked for: ``retry_after_of``); one past
    ``max_retry_after`` is not waited for, the step is not restarted."""

    budget: RetryBudget
    what: str
    at_least: float | None = None


def retry_after_of(error: KSeFError) -> float | None:
    """The wait the answer that failed a step asked for: a 429's or a 5xx's ``Retry-After``."""
    return error.retry_after if isinstance(error, RateLimitError | InternalServerError) else None


@dataclass(frozen=True)
class Upload:
    """PUT batch parts to their presigned links."""

    parts: list[PartUpload]
    workers: int
    progress: Progress | None = None


@dataclass(frozen=True)
class Extend:
    """Give the call ``seconds`` more than the client's deadline (a poll's own timeout)."""

    seconds: float


@dataclass(frozen=True)
class FreshDeadline:
    """Start the run's deadline again: what follows has the client's whole ``deadline`` (earlier
    ``Extend``/``Upload`` time dropped, a ``PaceWithin`` bound kept)."""


@dataclass(frozen=True)
class PaceWithin:
    """The client's own pacing of the run's next requests must end by ``until`` (its clock), else
    ``ThrottleWaitTooLongError`` (nothing sent); ``None``: only ``max_retry_after`` (a poll's
    reads, which must not wait past the poll's timeout inside a request)."""

    until: float | None


@dataclass(frozen=True)
class Blocking:
    """Run local work that blocks (CPU, disk) where it does not hold up an event loop."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()

    def outcome(self) -> _Outcome:
        """``fn(*args)``, its return value or what it raised (thrown into the flow by ``blocking``)."""
        try:
            return _Outcome(self.fn(*self.args))
        except Exception as error:  # handed back to the flow, which raises it
            return _Outcome(None, error)


@dataclass(frozen=True)
class _Outcome:
    value: Any
    error: Exception | None = None


Step = (
    Call
    | Sleep
    | Now
    | ClientSettings
    | Download
    | StreamDownload
    | Retry
    | Upload
    | Extend
    | FreshDeadline
    | PaceWithin
    | Blocking
)
Flow = Generator[Step, Any, T]


def blocking(fn: Callable[..., T], *args: Any) -> Flow[T]:
    """``fn(*args)`` as a ``Blocking`` step: its return value, or what it raised raised here."""
    done = yield Blocking(fn, args)
    assert isinstance(done, _Outcome)
    if done.error is not None:
        raise done.error
    value: T = done.value
    return value


@dataclass(frozen=True)
class _Done:
    value: Any


class CallDeadline:
    """The deadline of one run (``shared`` ``None``: the client has none).

    Every request of the run carries ``shared``, so the waits the client-side throttle imposes on
    them move it (the SDK's own pacing, not the server's delay: not KSeF's block after a 429), and
    no other run's waits do.
    """

    def __init__(self, client: KSeF | AsyncKSeF) -> None:
        state = client.send_state
        self._clock = client._clock
        self.shared = None if state.deadline is None else Deadline(self._clock() + state.deadline)
        self.pace_until: float | None = None  # ``PaceWithin``

    def fresh(self, client: KSeF | AsyncKSeF) -> CallDeadline:
        """``FreshDeadline``: the client's whole deadline from now, with this one's ``pace_until``
        (what ``extend`` added is not carried over)."""
        fresh = CallDeadline(client)
        fresh.pace_until = self.pace_until
        return fresh

    def extend(self, seconds: float) -> None:
        if self.shared is not None:
            self.shared.postpone(seconds)

    def check(self, wait: float = 0.0) -> None:
        """``APITimeoutError`` when the deadline has passed, or would after ``wait`` seconds."""
        if self.shared is not None and self._clock() + wait >= self.shared.at:
            message = "the call's deadline passed (deadline= on the client or with_options())"
            # before the step: its request (if it makes one) never went out
            raise APITimeoutError(message) from DeadlineExceeded(message, nothing_sent=True)


def _advance(flow: Flow[Any], result: Any, error: KSeFError | None) -> Step | _Done:
    try:
        return flow.throw(error) if error is not None else flow.send(result)
    except StopIteration as stop:
        return _Done(stop.value)


def request_of(step: Call, deadline: Deadline | None = None, pace_until: float | None = None) -> dict[str, Any]:
    """The ``httpx`` request arguments of a ``Call`` (a wrong argument raises ``TypeError`` here)."""
    request: dict[str, Any] = step.operation.build_request(**step.kwargs)
    extensions: dict[str, Any] = {}
    if step.bearer is not None:
        extensions[BEARER] = step.bearer
    if step.budget is not None:
        extensions[BUDGET] = step.budget
    if step.body != "json":
        extensions[BODY_KIND] = step.body
    if deadline is not None:
        extensions[DEADLINE] = deadline
    if pace_until is not None:
        extensions[PACE_UNTIL] = pace_until
    if extensions:
        request["extensions"] = extensions
    return request


def _wait_of(step: Sleep | Retry, client: KSeF | AsyncKSeF) -> float | None:
    """Seconds a ``Sleep`` or ``Retry`` step waits; ``None``: the retry policy gives up."""
    if isinstance(step, Sleep):
        return step.seconds
    return client.send_state.restart(step.budget, step.what, step.at_least)


def run(flow: Flow[T], client: KSeF) -> T:
    """Drive ``flow`` with the synchronous client."""
    deadline = CallDeadline(client)
    result: Any = None
    error: KSeFError | None = None
    while not isinstance(step := _advance(flow, result, error), _Done):
        result, error = None, None
        try:
            if isinstance(step, Extend):
                deadline.extend(step.seconds)
            elif isinstance(step, FreshDeadline):
                deadline = deadline.fresh(client)
            elif isinstance(step, PaceWithin):
                deadline.pace_until = step.until
            elif isinstance(step, ClientSettings):
                result = client.settings
            elif isinstance(step, Blocking):  # local work: no deadline (see the module's docstring)
                result = step.outcome()
            else:
                result = _run_step(step, client, deadline)
        except KSeFError as raised:
            error = raised
    value: T = step.value
    return value


def _run_step(step: Step, client: KSeF, deadline: CallDeadline) -> Any:
    deadline.check()
    if isinstance(step, Call):
        request = request_of(step, deadline.shared, deadline.pace_until)
        return parse_answer(step.operation, client.raw, client._request(request))
    if isinstance(step, Sleep | Retry):
        delay = _wait_of(step, client)
        if delay is not None:
            deadline.check(delay)
            client._sleep(delay)
        return delay is not None
    if isinstance(step, Download):
        return client._download(step.url, deadline.shared)
    if isinstance(step, StreamDownload):
        return client._download_to(step.url, step.receive, step.budget, deadline.shared)
    if isinstance(step, Upload):
        started = client._clock()
        try:
            return client._upload(step.parts, step.workers, step.progress)
        finally:
            deadline.extend(client._clock() - started)  # the upload's time is not the call's
    return client._clock()


async def arun(flow: Flow[T], client: AsyncKSeF) -> T:
    """Drive ``flow`` with the asynchronous client (errors thrown into the flow, as in ``run``)."""
    deadline = CallDeadline(client)
    result: Any = None
    error: KSeFError | None = None
    while not isinstance(step := _advance(flow, result, error), _Done):
        result, error = None, None
        try:
            if isinstance(step, Extend):
                deadline.extend(step.seconds)
            elif isinstance(step, FreshDeadline):
                deadline = deadline.fresh(client)
            elif isinstance(step, PaceWithin):
                deadline.pace_until = step.until
            elif isinstance(step, ClientSettings):
                result = client.settings
            elif isinstance(step, Blocking):  # in a worker thread: the event loop goes on
                result = await in_thread(step.outcome)
            else:
                result = await _arun_step(step, client, deadline)
        except KSeFError as raised:
            error = raised
    value: T = step.value
    return value


async def _arun_step(step: Step, client: AsyncKSeF, deadline: CallDeadline) -> Any:
    deadline.check()
    if isinstance(step, Call):
        request = request_of(step, deadline.shared, deadline.pace_until)
        return parse_answer(step.operation, client.raw, await client._request(request))
    if isinstance(step, Sleep | Retry):
        delay = _wait_of(step, client)
        if delay is not None:
            deadline.check(delay)
            await client._sleep(delay)
        return delay is not None
    if isinstance(step, Download):
        return await client._download(step.url, deadline.shared)
    if isinstance(step, StreamDownload):
        return await client._download_to(step.url, step.receive, step.budget, deadline.shared)
    if isinstance(step, Upload):
        started = client._clock()
        try:
            return await client._upload(step.parts, step.workers, step.progress)
        finally:
            deadline.extend(client._clock() - started)  # the upload's time is not the call's
    return client._clock()


def response_of(result: object) -> Response[Any]:
    """Type helper: the result of a ``Call`` step."""
    assert isinstance(result, Response)
    return result


def sent_once(call: Call, expected: type[T], note: str) -> Flow[T]:
    """Send a request the client never repeats (a POST that is not ``repeat_safe`` and whose answer
    alone names what it made: a permission grant, a KSeF token, a certificate request) and return
    its typed answer. An error that may have come after KSeF took the request (``not_taken`` does
    not clear it: a 5xx, a connection broken after sending, a timeout waiting for the answer, an
    answer that cannot be read) gets ``maybe_sent = True`` and ``note``, which tells the caller how
    to find out what KSeF made and what to do about it."""
    try:
        return parsed(response_of((yield call)), expected)
    except KSeFError as error:
        if not not_taken(error):
            error.maybe_sent = True
            error.add_note(note)
        raise


def within_budget(budget: RetryBudget, flow: Flow[T]) -> Flow[T]:
    """``flow``, its requests counting their repeats in ``budget`` (those that have no budget of
    their own): one budget for a unit of work that is restarted as a whole, so ``max_retries``
    bounds the repeats of the restarts and of their requests together."""
    result: Any = None
    error: KSeFError | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(result)
        except StopIteration as stop:
            value: T = stop.value
            return value
        if isinstance(step, Call) and step.budget is None:
            step = replace(step, budget=budget)
        result, error = None, None
        try:
            result = yield step
        except KSeFError as raised:
            error = raised


# How a poll backs off (``poll_wait``): it reads every ``interval`` seconds at first, then every
# tenth of the time waited so far, at most every 30 s. A status read counts against its group's
# limits like any request, and these are per hour too: GET /sessions/{ref} is in ``sessionMisc``,
# 1200 an hour for the context (its UPO downloads and every other wait of the context included),
# export status 600 an hour. At a fixed 2 s a one-hour wait makes 1800 reads; backed off, some 150,
# and a result comes at most a tenth of the time waited later than it was there.
POLL_BACKOFF_SHARE = 0.1
POLL_MAX_INTERVAL = 30.0


def poll_wait(interval: float, waited: float) -> float:
    """Seconds a poll waits before its next read, ``waited`` seconds after it started:
    ``interval``, and once a tenth of ``waited`` is longer, that, up to ``POLL_MAX_INTERVAL`` (a
    longer ``interval`` as given)."""
    return max(interval, min(POLL_MAX_INTERVAL, waited * POLL_BACKOFF_SHARE))


def poll_flow(
    read: Callable[[], Flow[S]],
    done: Callable[[S], bool],
    describe: Callable[[S], str],
    timeout: float,
    interval: float,
    hint: Callable[[S], str] = lambda status: "",
) -> Flow[S]:
    """Read a status until ``done(status)``, every ``interval`` seconds at first and less often
    as the wait gets long (``poll_wait``); ``PollTimeoutError`` (``describe(status)``: what is
    still not done; ``hint(status)``: what the message adds after the time waited, e.g. why; its
    ``last`` the status) when ``timeout`` would pass first. The call's deadline grows by
    ``timeout``: the poll's own limit is the one that counts.

    A read the client's own pacing holds back longer than ``max_retry_after`` (the group's
    limits used up: ``ThrottleWaitTooLongError``, nothing sent) is part of the wait: the poll
    sleeps until the group has room and reads then, or, when that is past ``timeout``, raises
    ``PollTimeoutError`` at once with the status read last (``None`` if none was). A shorter hold
    is waited inside the read (the transport's pacing), but never past ``timeout``
    (``PaceWithin``): a hold that would end later is handled as the long ones."""
    yield Extend(timeout)
    started = yield Now()
    deadline = started + timeout
    last: S | None = None
    reads = 0
    while True:
        yield PaceWithin(deadline)  # the client's pacing of a read may not wait past the timeout
        try:
            status = yield from read()
        except ThrottleWaitTooLongError as held:
            yield PaceWithin(None)
            now = yield Now()
            if now + held.retry_after > deadline:
                why = _held_back(held, now - started, timeout, reads, last, describe, hint)
                raise PollTimeoutError(why, last) from held
            yield Sleep(held.retry_after)
            continue
        except Exception:
            yield PaceWithin(None)  # the run may go on (a login restarts from a new challenge)
            raise
        yield PaceWithin(None)
        reads += 1
        if done(status):
            return status
        last = status
        now = yield Now()
        if now + interval > deadline:
            waited = round(max(now - started, timeout), 1)  # a slow answer may pass the timeout
            raise PollTimeoutError(f"{describe(status)} after {waited:g} s{hint(status)}", status)
        yield Sleep(min(poll_wait(interval, now - started), deadline - now))


def _held_back(
    held: ThrottleWaitTooLongError,
    waited: float,
    timeout: float,
    reads: int,
    last: S | None,
    describe: Callable[[S], str],
    hint: Callable[[S], str],
) -> str:
    """The ``PollTimeoutError`` message of a poll whose next read the rate limits hold past its
    timeout (``reads``: how many it made; ``last``: the status read last, ``None`` also for a
    poll whose reads found nothing yet, e.g. a certificate not issued)."""
    why = (
        f"the rate limits of group {held.group!r} allow the next read in {held.retry_after:.0f} s, "
        f"past the timeout ({timeout:g} s)"
    )
    if last is None:
        seen = "no status read" if reads == 0 else f"nothing final in {reads} read(s)"
        return f"{seen} after {waited:.0f} s: {why}"
    return f"{describe(last)} after {waited:.0f} s ({why}){hint(last)}"


PageFlow = Callable[[C | None], Flow[tuple[list[T], C | None]]]


class Listing(Generic[C, T]):
    """A listing's pages (a ``PageFlow``: ``listing(cursor)``) and where its cursor stands inside
    a page (``within``, a ``pagination.Within``), so that ``pager.cursor`` read between two items
    resumes after the first; ``check`` raises ``ValueError`` for a cursor not of the listing."""

    def __init__(
        self, page: PageFlow[C, T], within: Within[C, T] | None, check: Callable[[object], object] = lambda c: c
    ) -> None:
        self.page = page
        self.within = within
        self.check = check

    def __call__(self, cursor: C | None) -> Flow[tuple[list[T], C | None]]:
        return self.page(cursor)


def token_pages(page: PageFlow[str, T]) -> Listing[str, T]:
    """The pages of a continuation-token listing (``page``: the page at a token KSeF gave), their
    cursors ``pagination.token_cursor``'s: one inside a page names its token and how many of its
    items were handed out, and the page read at it starts after them."""

    def resumed(cursor: str | None) -> Flow[tuple[list[T], str | None]]:
        token, handed = read_token_cursor(cursor)
        items, following = yield from page(token)
        if handed > len(items) and following is not None:
            # read with a smaller page_size than the cursor was saved with: the rest of what was
            # handed out starts the next page (a token stands at a place in the listing)
            return [], token_cursor(following, handed - len(items))
        return items[handed:], token_cursor(following)

    def within(start: str | None, items: list[T]) -> str | None:
        token, handed = read_token_cursor(start)
        return token_cursor(token, handed + len(items))

    return Listing(resumed, within, read_token_cursor)


def _within_offsets(start: int | None, items: list[Any]) -> int:
    return offset_cursor(start) + len(items)


def pager(page: PageFlow[C, T], client: KSeF, cursor: C | None = None) -> Pager[T, C]:
    """A ``Pager`` whose page at a cursor is the flow ``page(cursor)``, run by ``client`` (a
    ``Listing``: its cursor also stands between the items of a page; ``cursor`` checked now)."""
    within = _checked(page, cursor)
    return Pager(lambda at: run(page(at), client), cursor, within)


def apager(page: PageFlow[C, T], client: AsyncKSeF, cursor: C | None = None) -> AsyncPager[T, C]:
    """``pager`` for the asynchronous client."""
    within = _checked(page, cursor)
    return AsyncPager(lambda at: arun(page(at), client), cursor, within)


def _checked(page: PageFlow[C, T], cursor: C | None) -> Within[C, T] | None:
    """``page``'s ``within`` (a ``Listing``'s), ``cursor`` checked first (``ValueError``)."""
    if not isinstance(page, Listing):
        return None
    page.check(cursor)
    return page.within


def offset_pages(operation: Any, items: str, page_size: int | None, arguments: dict[str, Any]) -> Listing[int, Any]:
    """The pages of a ``pageOffset``/``hasMore`` operation, ``items`` naming the page's list field;
    ``page_size`` as ``offset_page_size`` gives it (by default the operation's largest).

    The cursor is the number of items before the page (``pagination.offset_cursor``), so a walk
    resumes at the same item with any page size: page ``cursor // size``, less its first
    ``cursor % size`` items. Only for an operation the spec table does not know (no page size to
    count by: the server's default applies) is it the page number, and ``pager.cursor`` points at
    whole pages only."""
    size = offset_page_size(operation, page_size)
    sized = {"page_size": size} if size is not None else {}

    def page(cursor: int | None) -> Flow[tuple[list[Any], int | None]]:
        first = offset_cursor(cursor)
        at, read = divmod(first, size) if size is not None else (first, 0)
        response = response_of((yield Call(operation, {"page_offset": at, **sized, **arguments})))
        body: Any = response.parsed
        if not isinstance(getattr(body, items, None), list) or not hasattr(body, "has_more"):
            raise ResponseFormatError(
                f"HTTP {int(response.status_code)}: no {items!r} list with has_more in the answer"
            )
        following = next_offset(at, body.has_more)
        if following is not None and size is not None:
            following *= size
        return getattr(body, items)[read:], following

    # the cursor counts items: inside a page too (by page numbers, of an unknown size, it cannot)
    return Listing(page, _within_offsets if size is not None else None, offset_cursor)


# The spec's 100 of an operation not done yet: "Operacja przyjęta do realizacji" (permissions),
# "Wniosek przyjęty do realizacji" (certificate requests).
IN_PROGRESS = 100


def poll_in_progress(read: Callable[[], Flow[S]], what: str, timeout: float, interval: float) -> Flow[S]:
    """``poll_flow`` of a status whose ``status.code`` is 100 while the operation is in progress
    (KSeF's operations: permissions, certificate requests): the first other status, or
    ``PollTimeoutError`` saying "``what`` still 100 <description>"."""
    return (
        yield from poll_flow(
            read,
            lambda s: s.status.code != IN_PROGRESS,  # type: ignore[attr-defined]
            lambda s: f"{what} still {s.status.code} {s.status.description}",  # type: ignore[attr-defined]
            timeout,
            interval,
        )
    )


def all_items(page: PageFlow[C, T]) -> Flow[list[T]]:
    """Every item of a listing, all its pages read in one flow."""
    items: list[T] = []
    cursor: C | None = None
    walk = RepeatedCursor()  # a token handed back again would make this loop forever
    while True:
        walk.visit(cursor)
        found, cursor = yield from page(cursor)
        items += found
        if cursor is None:
            return items
