"""Blocking work of the async client in a worker thread, and callbacks from it back on the loop.

``in_thread`` runs a function in an AnyIO worker thread and never lets the thread outlive the
call: a cancelled caller sets the work's ``stop`` flag and waits for the thread to end before the
cancellation goes on. AnyIO's own ``to_thread.run_sync`` cannot promise that: asyncio's
``task.cancel()`` (``asyncio.timeout``, ``wait_for``) passes its shield and abandons the thread,
which then goes on reading the caller's data and writing temporary files after the call ended.

``on_loop`` wraps a callback so that calls from that thread run on the event loop's thread, where
async code expects its callbacks (``asyncio.Queue.put_nowait`` is not thread-safe).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

T = TypeVar("T")


async def in_thread(
    work: Callable[[], T], stop: threading.Event | None = None, discard: Callable[[T], None] | None = None
) -> T:
    """``work()`` in a worker thread; its result or error. When the caller is cancelled (by AnyIO
    or asyncio) while it runs, ``stop`` is set (``work`` checks it to end early), the thread is
    waited for, ``discard`` gets a result that came too late, and then the cancellation goes on.
    Cancelled before a thread took the work (AnyIO's pool full: its threads are shared with every
    ``run_sync`` of the app), the work never runs and the cancellation goes on at once."""
    run = _Run(work)
    try:
        await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        return run.results[0]
    except BaseException:
        if run.began_or_never_will():  # cancelled while the thread works: stop it, wait for it
            if not run.ended.is_set():
                if stop is not None:
                    stop.set()
                await _until(run.ended)
            if run.results and discard is not None:
                discard(run.results[0])
        raise


class _Run(Generic[T]):
    """``work`` as the worker thread runs it, unless the caller gave it up first: who comes first,
    the thread starting it or the cancelled caller, is decided under a lock, so the caller only
    waits for work that really started (and so ends)."""

    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.results: list[T] = []
        self.ended = threading.Event()
        self._lock = threading.Lock()
        self._began = self._given_up = False

    def __call__(self) -> None:
        with self._lock:
            if self._given_up:  # the caller is gone: the work is not done
                return
            self._began = True
        try:
            self.results.append(self.work())
        finally:
            self.ended.set()

    def began_or_never_will(self) -> bool:
        """True if the thread began the work; otherwise the work is given up (it never runs)."""
        with self._lock:
            self._given_up = not self._began
            return self._began


async def _until(ended: threading.Event) -> None:
    """Wait, shielded, until ``ended`` is set. asyncio's cancellations pass a shield: they are
    absorbed here (the original one goes on once the thread has ended). The wait takes a thread
    outside AnyIO's default pool: that pool may be full (the cancelled work's thread gave its place
    back when it was abandoned) and its other users may keep it for as long as they like."""
    own = anyio.CapacityLimiter(1)
    with anyio.CancelScope(shield=True):
        while not ended.is_set():
            with contextlib.suppress(anyio.get_cancelled_exc_class()):
                await anyio.to_thread.run_sync(ended.wait, limiter=own)


def is_async_callable(function: object) -> bool:
    """An ``async def`` function (or an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - the method, not whether it is callable
    )


def on_loop(callback: Callable[..., None], stop: threading.Event) -> Callable[..., None]:
    """``callback`` called from an AnyIO worker thread runs on the event loop's thread (the worker
    waits for it; what it raises is raised in the worker); nothing is called once ``stop`` is set
    (the caller was cancelled)."""

    def call(*args: Any) -> None:
        if not stop.is_set():
            anyio.from_thread.run_sync(callback, *args)

    return call
