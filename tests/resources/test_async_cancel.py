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
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.batch import BatchPackage
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime

pytestmark = pytest.mark.anyio
SEND = "/invoices"
CLOSE = "/close"


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
    with pytest.raises(TypeError, match="async def"), KSeF(base_url="http://ksef.local/v2", access_token="t") as sync:
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
