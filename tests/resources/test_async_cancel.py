"""``AsyncKSeF`` when the caller is cancelled (AnyIO cancel scopes, asyncio's ``task.cancel()`` and
``asyncio.timeout``) or leaves an ``async with online_session()`` block with an error: the session
is still closed, the error the caller gets is the one that ended the block, a batch's build stops
and no thread outlives the call. The emulator runs in-process (ASGI transport); the moments of the
cancellations come from the requests themselves (a transport that cancels when a given request
goes out), so nothing waits on a timer.

Ministry guide, sesja-interaktywna.md, "3. Zamknięcie sesji": "Po wysłaniu wszystkich faktur
należy zamknąć sesję, co inicjuje asynchroniczne generowanie zbiorczego UPO" (a session left open
is only closed at its ``validUntil``, 12 hours later).
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import anyio
import anyio.lowlevel
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF, _threads
from ksef_client._flows import arun, blocking
from ksef_client.batch import BatchPackage
from ksef_client.errors import InternalServerError
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime

pytestmark = pytest.mark.anyio
SEND = "/invoices"
CLOSE = "/close"


class Interrupting(httpx.AsyncBaseTransport):
    """The emulator in-process. The first POST whose path ends with ``path`` calls ``interrupt()``
    (a cancellation) and then hangs as an answer that never comes, until cancelled; ``after``:
    the request reaches the emulator first (KSeF took it, the answer is lost to the cancellation).
    With ``interrupt=None`` it only hangs."""

    def __init__(self, backend: KSeFBackend, path: str, *, after: bool = False) -> None:
        self.inner = httpx.ASGITransport(app=create_app(backend, strict=True))
        self.path, self.after = path, after
        self.interrupt: Callable[[], object] | None = None
        self.armed = True
        self.posts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await anyio.lowlevel.checkpoint()  # as a request over the network, which always waits
        if request.method == "POST":
            self.posts.append(request.url.path)
        if not (self.armed and request.method == "POST" and request.url.path.endswith(self.path)):
            return await self.inner.handle_async_request(request)
        self.armed = False
        if self.after:
            await self.inner.handle_async_request(request)
        if self.interrupt is not None:
            self.interrupt()
        await anyio.sleep_forever()
        raise AssertionError("not reached")


class Signalling(httpx.AsyncBaseTransport):
    """The emulator in-process. The first ``method`` request whose path ends with ``path`` is
    handed on to the emulator, and once the emulator took a fault for it (a ``delay`` holds it
    there), ``interrupt()`` is called (a cancellation). ``outcome`` says how the request ended:
    ``"answered"``, or ``"cancelled"`` (the client gave it up before the answer came). Requests
    are handed to ``inner`` (another ``Signalling``) when given; with ``armed=False`` nothing is
    signalled until ``armed`` is set."""

    def __init__(
        self, backend: KSeFBackend, method: str, path: str, *, inner: Signalling | None = None, armed: bool = True
    ) -> None:
        self.backend = backend
        self.inner: httpx.AsyncBaseTransport = inner or httpx.ASGITransport(app=create_app(backend, strict=True))
        self.method, self.path, self.armed = method, path, armed
        self.interrupt: Callable[[], object] = lambda: None
        self.outcome: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await anyio.lowlevel.checkpoint()
        if not self.armed or request.method != self.method or not request.url.path.endswith(self.path):
            return await self.inner.handle_async_request(request)
        self.armed = False
        self.outcome = "in flight"
        self._interrupt_once_held(self.backend.faults.injected)
        try:
            response = await self.inner.handle_async_request(request)
        except anyio.get_cancelled_exc_class():
            self.outcome = "cancelled"
            raise
        self.outcome = "answered"
        return response

    def _interrupt_once_held(self, injected: int) -> None:
        """``interrupt()`` once the emulator took a fault for the request in flight: looked at on
        each turn of the event loop (no timer), until then or until the request ended."""
        if self.outcome != "in flight":
            return
        if self.backend.faults.injected == injected:
            asyncio.get_running_loop().call_soon(self._interrupt_once_held, injected)
        else:
            self.interrupt()


def _client(backend: KSeFBackend, transport: httpx.AsyncBaseTransport, **options: Any) -> AsyncKSeF:
    time = FakeTime()  # retries never wait; the deadline never passes
    token = backend.mint_access_token(NIP)
    return AsyncKSeF(
        base_url="http://ksef.local/v2",
        access_token=token,
        transport=transport,
        sleep=time.asleep,
        clock=time.clock,
        **options,
    )


def _closed_on_ksef(backend: KSeFBackend, reference_number: str | None) -> bool:
    assert reference_number is not None
    return backend.sessions.state.sessions[reference_number].closed is not None


# --- 1. leaving `async with online_session()` ----------------------------------------------------


async def test_a_block_cancelled_by_an_anyio_scope_still_closes_its_session(backend: KSeFBackend) -> None:
    # Was: the close was cancelled at once with the block (AnyIO's cancellation is level-triggered),
    # so `session.closed` stayed False and KSeF showed the session open (100).
    transport = Interrupting(backend, SEND)
    async with _client(backend, transport) as ksef:
        with anyio.CancelScope() as scope:  # as move_on_after / fail_after / a failed task group
            transport.interrupt = scope.cancel
            async with ksef.online_session() as session:
                await session.send(sample_invoice("CANCEL/1"))
        assert scope.cancelled_caught
    assert session.closed and _closed_on_ksef(backend, session.reference_number)


async def test_a_block_ended_by_asyncio_timeout_closes_and_stays_a_timeout(backend: KSeFBackend) -> None:
    # asyncio's cancellation strikes once: the close after it went through before too; pinned here
    # with the shielded, bounded close.
    transport = Interrupting(backend, SEND)
    async with _client(backend, transport) as ksef:
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(None) as timeout:
                transport.interrupt = lambda: timeout.reschedule(asyncio.get_running_loop().time())
                async with ksef.online_session() as session:
                    await session.send(sample_invoice("CANCEL/2"))
    assert not getattr(caught.value, "__notes__", None)
    assert session.closed and _closed_on_ksef(backend, session.reference_number)


async def test_a_close_that_fails_after_a_timeout_is_a_note_on_the_timeout(backend: KSeFBackend) -> None:
    # Was: the timeout came out as the close's InternalServerError (the TimeoutError only its
    # __context__), which `except TimeoutError` around the block does not catch.
    transport = Interrupting(backend, SEND)
    backend.faults.add(503, operation="online_session.close_online_session", times=100)
    async with _client(backend, transport) as ksef:
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(None) as timeout:
                transport.interrupt = lambda: timeout.reschedule(asyncio.get_running_loop().time())
                async with ksef.online_session() as session:
                    await session.send(sample_invoice("CANCEL/3"))
    (note,) = caught.value.__cause__.__notes__  # type: ignore[union-attr]  # on the cancellation it came from
    assert f"online session {session.reference_number} may still be open" in note and "InternalServerError" in note
    assert not session.closed and not _closed_on_ksef(backend, session.reference_number)


async def test_the_close_after_a_cancellation_is_bounded_by_timeout(backend: KSeFBackend) -> None:
    # Was: bounded only by the client's deadline (300 s): asyncio.timeout(0.5) took as long as the
    # close did. Here the close never answers; the cancelled block gives up after timeout= seconds.
    transport = Interrupting(backend, CLOSE)
    async with _client(backend, transport, timeout=0.05) as ksef:
        with anyio.fail_after(30), pytest.raises(TimeoutError) as caught:  # fail_after: the old code hung
            async with asyncio.timeout(None) as timeout, ksef.online_session() as session:
                await session.send(sample_invoice("CANCEL/4"))
                timeout.reschedule(asyncio.get_running_loop().time())
                await anyio.sleep_forever()
    (note,) = caught.value.__cause__.__notes__  # type: ignore[union-attr]
    assert "did not end within timeout=0.05 s" in note and not session.closed


@pytest.mark.parametrize("reached", [False, True], ids=["close-not-sent", "close-taken-answer-lost"])
async def test_a_close_cancelled_half_way_is_settled_by_the_session_status(backend: KSeFBackend, reached: bool) -> None:
    # The block ended normally; the cancellation came during its close. KSeF may or may not have
    # taken that close: the status tells, and the close is sent again only while it is open (a
    # second close of a closed session would be refused with 21180).
    transport = Interrupting(backend, CLOSE, after=reached)
    async with _client(backend, transport) as ksef:
        with anyio.CancelScope() as scope:
            transport.interrupt = scope.cancel
            async with ksef.online_session() as session:
                await session.send(sample_invoice("CANCEL/5"))
        assert scope.cancelled_caught
    assert session.closed and _closed_on_ksef(backend, session.reference_number)
    assert sum(path.endswith(CLOSE) for path in transport.posts) == (1 if reached else 2)


async def test_a_send_cancelled_in_flight_is_named_by_its_number_in_outcomes(backend: KSeFBackend) -> None:
    # The send is recorded before its request (KSeF may hold it whatever became of the answer);
    # was: recorded by its hash only, so outcomes() said ('unknown', invoice_number None) where a
    # send that raised says its P_2 (docs/sending.md: each outcome "carries invoice_number").
    transport = Interrupting(backend, SEND)
    async with _client(backend, transport) as ksef:
        session = await ksef.online_session().open()
        with anyio.CancelScope() as scope:
            transport.interrupt = scope.cancel
            await session.send(sample_invoice("CANCEL/6"))
        assert scope.cancelled_caught
        await session.close()
        await ksef.sessions.wait(str(session.reference_number))
        (outcome,) = await session.outcomes()
    assert [(s.reference_number, s.invoice_number) for s in session.sent] == [(None, "CANCEL/6")]
    assert (outcome.kind, outcome.reference_number, outcome.invoice_number) == ("unknown", None, "CANCEL/6")


class Mine(Exception):
    pass


def test_sync_a_close_that_fails_after_the_block_raised_is_a_note_on_the_block_s_error(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # Was: the close's InternalServerError replaced the caller's own error (kept only as its
    # __context__). The block's error is what the caller must see; the close's failure and where
    # the session stands are its note.
    backend.faults.add(503, operation="online_session.close_online_session", times=100)
    token = backend.mint_access_token(NIP)
    ksef = KSeF(base_url=ksef_server.base_url, access_token=token, sleep=fake_time.sleep, clock=fake_time.clock)
    with ksef, pytest.raises(Mine) as caught, ksef.online_session() as session:
        session.send(sample_invoice("EXIT/1"))
        raise Mine("the caller's own error")
    (note,) = caught.value.__notes__
    assert f"online session {session.reference_number} may still be open" in note and "InternalServerError" in note
    assert f"ksef.sessions.get({session.reference_number!r})" in note


async def test_async_a_close_that_fails_after_the_block_raised_is_a_note_on_the_block_s_error(
    backend: KSeFBackend,
) -> None:
    backend.faults.add(503, operation="online_session.close_online_session", times=100)
    async with _client(backend, httpx.ASGITransport(app=create_app(backend, strict=True))) as ksef:
        with pytest.raises(Mine) as caught:
            async with ksef.online_session() as session:
                await session.send(sample_invoice("EXIT/2"))
                raise Mine("the caller's own error")
    (note,) = caught.value.__notes__
    assert "InternalServerError" in note and not isinstance(caught.value.__context__, InternalServerError)


class LoopErrors:
    """What the event loop reports to its exception handler meanwhile ("Task exception was never
    retrieved" and the like), collected instead of logged."""

    def __enter__(self) -> list[dict[str, Any]]:
        self.loop = asyncio.get_running_loop()
        self.previous = self.loop.get_exception_handler()
        self.reported: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda loop, context: self.reported.append(context))
        return self.reported

    def __exit__(self, *exc: object) -> None:
        gc.collect()  # tasks whose exception nobody read are reported when collected
        self.loop.set_exception_handler(self.previous)


async def _raise_in_block_cancelled_in_close(ksef: AsyncKSeF, transport: Signalling, how: str) -> tuple[Any, Any]:
    """An ``async with online_session()`` block that sends and raises ``Mine``; asyncio's
    cancellation (``how``) strikes when the close goes out. The session and the cancellation
    that came out (for ``asyncio.timeout``, the one its ``TimeoutError`` is raised from)."""
    session = ksef.online_session()

    async def block() -> None:
        async with session:
            await session.send(sample_invoice("EXIT/3"))
            raise Mine("the block's own error")

    if how == "asyncio.timeout":
        with pytest.raises(TimeoutError) as timed_out:
            async with asyncio.timeout(None) as timeout:
                transport.interrupt = lambda: timeout.reschedule(asyncio.get_running_loop().time())
                await block()
        return session, timed_out.value.__cause__
    task = asyncio.create_task(block())
    transport.interrupt = task.cancel
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await task
    return session, cancelled.value


@pytest.mark.parametrize("how", ["asyncio.timeout", "task.cancel"])
async def test_a_close_after_the_block_raised_is_settled_when_asyncio_cancels_it(
    backend: KSeFBackend, how: str
) -> None:
    # docs/sending.md, "Cancellation": the session is still closed. Was: asyncio's cancellation
    # passed the close's shield and abandoned it half-way: the session stayed open (100) until
    # validUntil, with no note naming it, and the block's own error was lost. Now the close struck
    # half-way is settled by the session's status (sent again: it was still open), then the
    # cancellation goes on, the block's error its __context__.
    backend.faults.add(200, operation="online_session.close_online_session", delay=60)  # the first close: slow
    transport = Signalling(backend, "POST", CLOSE)
    with LoopErrors() as reported:
        async with _client(backend, transport) as ksef:
            with anyio.fail_after(30):  # only a guard
                session, cancellation = await _raise_in_block_cancelled_in_close(ksef, transport, how)
    assert transport.outcome == "cancelled"  # the cancellation struck the close in flight
    assert isinstance(cancellation, asyncio.CancelledError) and not getattr(cancellation, "__notes__", None)
    assert isinstance(cancellation.__context__, Mine)  # the block's error, reachable
    assert session.closed and _closed_on_ksef(backend, session.reference_number)
    assert not reported


@pytest.mark.parametrize("how", ["asyncio.timeout", "task.cancel"])
async def test_a_close_after_the_block_raised_that_asyncio_cancels_and_cannot_settle_is_a_note(
    backend: KSeFBackend, how: str
) -> None:
    # The same, and the session's status cannot be read to settle it: the cancellation names the
    # session (the note a close failing on leaving the block gives) and the block's error stays.
    backend.faults.add(200, operation="online_session.close_online_session", delay=60)
    backend.faults.add(503, operation="sessions_status.get_session_status", times=100)
    transport = Signalling(backend, "POST", CLOSE)
    with LoopErrors() as reported:
        async with _client(backend, transport) as ksef:
            with anyio.fail_after(30):
                session, cancellation = await _raise_in_block_cancelled_in_close(ksef, transport, how)
    (note,) = cancellation.__notes__
    assert f"online session {session.reference_number} may still be open" in note and "InternalServerError" in note
    assert isinstance(cancellation.__context__, Mine)
    assert not session.closed and not _closed_on_ksef(backend, session.reference_number)
    assert not reported


@pytest.mark.parametrize("raised", [False, True], ids=["block-ended", "block-raised"])
async def test_a_second_asyncio_cancellation_does_not_abandon_the_settling_of_the_close(
    backend: KSeFBackend, raised: bool
) -> None:
    # task.cancel() while the close goes out, and again while its settling reads the session's
    # status (a task group cancelling its tasks, then its host cancelled too). Was: the second
    # passed the shield and abandoned the settling, leaving the session open (100).
    backend.faults.add(200, operation="online_session.close_online_session", delay=60)
    backend.faults.add(200, operation="sessions_status.get_session_status", delay=60)
    status = Signalling(backend, "GET", "", armed=False)  # the first GET after the close: the status
    close = Signalling(backend, "POST", CLOSE, inner=status)
    session = None

    async def block() -> None:
        nonlocal session
        async with ksef.online_session() as session:
            await session.send(sample_invoice("EXIT/5"))
            if raised:
                raise Mine("the block's own error")

    with LoopErrors() as reported:
        async with _client(backend, close) as ksef:
            task = asyncio.create_task(block())
            close.interrupt = lambda: (task.cancel(), setattr(status, "armed", True))
            status.interrupt = task.cancel
            with anyio.fail_after(30), pytest.raises(asyncio.CancelledError) as caught:
                await task
    assert close.outcome == status.outcome == "cancelled"
    assert session is not None and session.closed and _closed_on_ksef(backend, session.reference_number)
    assert isinstance(caught.value.__context__, Mine) == raised and not getattr(caught.value, "__notes__", None)
    assert not reported


# --- 4, 5. send_batch: progress on the loop's thread; a cancelled build stops ---------------------


def _named(count: int) -> list[tuple[str, bytes]]:
    xml = sample_invoice("BUILD/1", seller_nip=NIP)
    return [(f"{i:05d}.xml", xml) for i in range(count)]  # the build only needs distinct names


async def test_progress_is_called_on_the_event_loop_s_thread(backend: KSeFBackend) -> None:
    # Was: "zip" and "encrypt" from the build's worker thread, so an asyncio.Queue.put_nowait in
    # the callback was a cross-thread call (refused in asyncio's debug mode, failing the batch).
    loop_thread = threading.get_ident()
    calls: list[tuple[str, int]] = []
    async with _client(backend, httpx.ASGITransport(app=create_app(backend, strict=True))) as ksef:
        await ksef.send_batch(
            _named(250), part_size=20_000, progress=lambda stage, *_: calls.append((stage, threading.get_ident()))
        )
    assert {stage for stage, _ in calls} == {"zip", "encrypt", "upload"}
    assert {thread for _, thread in calls} == {loop_thread}


async def test_an_async_def_progress_is_refused_before_anything_is_sent(backend: KSeFBackend) -> None:
    # Was: called and never awaited (a "never awaited" RuntimeWarning, no progress at all).
    async def progress(stage: str, done: int, total: int) -> None:
        raise AssertionError("never called")

    async with _client(backend, httpx.ASGITransport(app=create_app(backend, strict=True))) as ksef:
        with pytest.raises(TypeError, match="async def"):
            await ksef.send_batch(_named(3), progress=progress)
        sent = ksef.send_state.requests_sent
    with pytest.raises(TypeError, match="async def"), KSeF(base_url="https://ksef.local/v2", access_token="t") as sync:
        sync.send_batch(_named(3), progress=progress)
    assert sent == 0 and not backend.sessions.state.sessions


class Build:
    """Invoices for a batch that trigger a cancellation when the build reads the 50th; records what
    the build read and whether ``BatchPackage.build`` had returned."""

    TOTAL, AT = 3000, 50

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cancel: Callable[[], object] = lambda: None
        self.read = 0
        self.returned = threading.Event()
        self.loop = asyncio.get_running_loop()
        self.fds = len(os.listdir("/proc/self/fd"))
        build = BatchPackage.build

        def tracked(*args: Any, **kwargs: Any) -> BatchPackage:
            try:
                return build(*args, **kwargs)
            finally:
                self.returned.set()

        monkeypatch.setattr(BatchPackage, "build", tracked)

    def invoices(self) -> Iterator[tuple[str, bytes]]:
        for index, invoice in enumerate(_named(self.TOTAL), start=1):
            self.read = index
            if index == self.AT:
                self.loop.call_soon_threadsafe(self.cancel)
            yield invoice

    def check_stopped(self) -> None:
        """When the cancellation came out: the build had returned (no thread left reading the
        invoices or writing temporary files), soon after the cancellation."""
        assert self.returned.is_set()
        assert self.read < self.TOTAL
        assert len(os.listdir("/proc/self/fd")) == self.fds  # its part files closed (deleted)


async def test_a_task_cancelled_while_the_batch_is_built_waits_for_the_build_to_stop(
    backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: task.cancel() ended the call at once and abandoned the build's thread, which went on
    # reading the caller's invoices, calling progress and writing temporary files.
    build = Build(monkeypatch)
    progress: list[int] = []
    async with _client(backend, httpx.ASGITransport(app=create_app(backend, strict=True))) as ksef:
        task = asyncio.create_task(
            ksef.send_batch(build.invoices(), part_size=100_000, progress=lambda *a: progress.append(a[1]))
        )
        build.cancel = task.cancel
        with pytest.raises(asyncio.CancelledError):
            await task
        build.check_stopped()
        called = len(progress)
    assert not backend.sessions.state.sessions  # nothing was sent
    await anyio.to_thread.run_sync(lambda: None)  # a trip to a worker thread and back: no late calls
    assert len(progress) == called


async def test_a_batch_cancelled_after_its_open_names_its_session(backend: KSeFBackend) -> None:
    # docs/sending.md, "When a batch fails": what ends the call after the open names the session,
    # a cancellation too. Was: the note only, no `session_reference_number` on the CancelledError.
    transport = Interrupting(backend, CLOSE)
    async with _client(backend, transport) as ksef:
        task = asyncio.create_task(ksef.send_batch([sample_invoice("CANCEL/B/1")]))
        transport.interrupt = task.cancel
        with pytest.raises(asyncio.CancelledError) as caught:
            await task
    (session,) = backend.sessions.state.sessions
    assert getattr(caught.value, "session_reference_number", None) == session
    assert any(session in note and "may not be closed" in note for note in caught.value.__notes__)


async def test_an_anyio_cancelled_batch_build_stops_instead_of_running_to_the_end(
    backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: AnyIO's shield made the call wait for the whole build (every invoice read, zipped,
    # encrypted) before the cancellation took effect.
    build = Build(monkeypatch)
    async with _client(backend, httpx.ASGITransport(app=create_app(backend, strict=True))) as ksef:
        with anyio.CancelScope() as scope:
            build.cancel = scope.cancel
            await ksef.send_batch(build.invoices(), part_size=100_000)
        assert scope.cancelled_caught
        build.check_stopped()
    assert not backend.sessions.state.sessions


# --- 6. AnyIO's thread pool full: a cancelled call still ends -------------------------------------
#
# AnyIO's worker threads (40 by default) are shared with every `run_sync` of the app (FastAPI's sync
# endpoints and dependencies): a call may wait for one. docs/sending.md: cancelled while the package
# is built, the call "waits for the thread to end"; a call whose work never started has no thread to
# wait for and must end at once.


class OneThread:
    """AnyIO's default thread limiter cut to one thread, which a task of the app takes (``take``)
    and keeps until ``release`` is set; ``taken`` is set once that task's thread runs."""

    def __init__(self) -> None:
        self.limiter = anyio.to_thread.current_default_thread_limiter()
        self.total = self.limiter.total_tokens
        self.taken, self.release = threading.Event(), threading.Event()

    async def __aenter__(self) -> OneThread:
        self.limiter.total_tokens = 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        self.limiter.total_tokens = self.total

    def take(self) -> asyncio.Task[None]:
        def hold() -> None:
            self.taken.set()
            self.release.wait()

        return asyncio.create_task(anyio.to_thread.run_sync(hold))

    async def held(self) -> None:
        """Until the app's task holds the thread."""
        await _until_set(self.taken)

    async def queued(self) -> None:
        """Until a task waits for the thread (checkpoints only: nothing waits on a timer)."""
        while not self.limiter.statistics().tasks_waiting:
            await anyio.lowlevel.checkpoint()


async def _until_set(event: threading.Event) -> None:
    while not event.is_set():  # checkpoints only: the thread sets it at once
        await anyio.lowlevel.checkpoint()


def _cancellable(call: Callable[[], Any], how: str) -> tuple[asyncio.Task[Any], Callable[[], object]]:
    """``call()`` in a task and what cancels it: asyncio's ``task.cancel()`` or an AnyIO scope."""
    if how == "task.cancel":
        task = asyncio.create_task(call())
        return task, task.cancel
    scope = anyio.CancelScope()

    async def scoped() -> None:
        with scope:
            await call()

    return asyncio.create_task(scoped()), scope.cancel


async def _ended(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` ended; the timeout is only a guard (the old code never ended)."""
    done, _ = await asyncio.wait({task}, timeout=30)
    return bool(done)


@pytest.mark.parametrize("how", ["task.cancel", "cancel scope"])
async def test_a_batch_cancelled_while_waiting_for_a_worker_thread_ends_at_once(
    backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # Was: in_thread waited, shielded, for the end of a thread that never started: the call hung
    # for ever (and, once the pool had room, kept one of its threads waiting for ever too).
    build = Build(monkeypatch)
    async with _client(backend, httpx.ASGITransport(app=create_app(backend, strict=True))) as ksef:
        async with OneThread() as pool:
            app = pool.take()
            await pool.held()  # the app's task holds the only thread
            call, cancel = _cancellable(lambda: ksef.send_batch(build.invoices(), part_size=100_000), how)
            await pool.queued()  # the batch waits for a thread to build its package in
            cancel()
            assert await _ended(call) and call.cancelled() == (how == "task.cancel")
            assert not app.done()  # the app's task still holds the thread
        await app
        await anyio.to_thread.run_sync(lambda: None)  # a thread free again: the work given up stays so
    assert build.read == 0 and not build.returned.is_set()
    assert not backend.sessions.state.sessions


@pytest.mark.parametrize("how", ["task.cancel", "cancel scope"])
async def test_a_blocking_step_cancelled_while_waiting_for_a_worker_thread_ends_at_once(
    backend: KSeFBackend, how: str
) -> None:
    # The same for every Blocking step of AsyncKSeF (unpacking an export or a sync window, parsing
    # a large session UPO): they run through the same in_thread.
    ran: list[str] = []
    async with _client(backend, httpx.ASGITransport(app=create_app(backend, strict=True))) as ksef:
        async with OneThread() as pool:
            app = pool.take()
            await pool.held()
            call, cancel = _cancellable(lambda: arun(blocking(ran.append, "unpacked"), ksef), how)
            await pool.queued()
            cancel()
            assert await _ended(call) and not app.done()
        await app
        await anyio.to_thread.run_sync(lambda: None)
    assert not ran


async def test_work_a_thread_takes_after_the_caller_gave_it_up_never_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The other order of the same race: the work was handed to a thread, the caller cancelled before
    # the thread began it. The caller does not wait (the thread may be slow to come); the work,
    # when the thread comes to it, is not done.
    handed: list[Callable[[], object]] = []

    async def run_sync(work: Callable[[], object], **options: object) -> NoReturn:
        if handed:  # was: the caller waited (in a thread of its own) for the work's end
            raise AssertionError("the cancelled caller waits for work no thread began")
        handed.append(work)  # a thread will take it later
        await anyio.sleep_forever()
        raise AssertionError("not reached")

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
    ran: list[str] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        await _threads.in_thread(lambda: ran.append("work"))
    assert scope.cancelled_caught
    handed[0]()  # the thread takes it now
    assert not ran


async def test_a_cancelled_call_waits_for_its_running_work_without_a_thread_of_the_full_pool() -> None:
    # Was: the wait for the cancelled work's end took a thread of AnyIO's default pool, whose only
    # place the app took the moment the cancelled work gave it back: the call waited for the app.
    stop, running = threading.Event(), threading.Event()
    async with OneThread() as pool:

        def work() -> None:
            running.set()
            stop.wait()  # until the cancellation stops it
            pool.taken.wait()  # and ends only once the app's task holds the pool's only thread

        call = asyncio.create_task(_threads.in_thread(work, stop))
        await _until_set(running)
        app = pool.take()
        await pool.queued()
        call.cancel()
        assert await _ended(call) and call.cancelled()
        assert not app.done()  # the app's task still holds the thread
    await app


# --- 7. send_batch: the build's read of the context's limits is cancelled with the call ----------


@pytest.mark.parametrize("how", ["task.cancel", "cancel scope"])
async def test_a_batch_cancelled_while_its_build_reads_the_context_s_limits_ends_at_once(
    backend: KSeFBackend, how: str
) -> None:
    # An invoice past KSeF's default 1 MB makes the build (in a worker thread) read the context's
    # limits through the event loop. Was: that read ran as a task of its own, outside the caller's
    # cancel scope, so task.cancel() / asyncio.timeout waited out the whole GET /limits/context
    # (up to deadline=, with retries) before the cancellation went on.
    backend.faults.add(200, operation="limits.get_context_limits", delay=60)  # a slow read
    transport = Signalling(backend, "GET", "/limits/context")
    big = sample_invoice("FV/BIG/1", lines=7000)
    assert len(big) > 1_000_000
    with LoopErrors() as reported:
        async with _client(backend, transport) as ksef:
            others = asyncio.all_tasks() - {asyncio.current_task()}
            call, cancel = _cancellable(lambda: ksef.send_batch([big]), how)
            transport.interrupt = cancel
            assert await _ended(call)  # _ended's timeout is only a guard: the old code took the delay
            assert transport.outcome == "cancelled"  # the read was cancelled, not waited out
            assert call.cancelled() == (how == "task.cancel")
            assert asyncio.all_tasks() - {asyncio.current_task()} <= others  # nothing left running
    assert not backend.sessions.state.sessions and not reported
