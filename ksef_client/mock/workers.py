"""Worker processes that check the invoices of a large batch package on every core.

One emulator process runs Python on one core at a time, and lxml's XSD validation is serialised
under one lock (``_xml.SCHEMA_LOCK``), so a second thread does not help; processes do. The
stateless checks (``state.invoice_checks``) of a package of ``threshold`` invoices or more go to a
pool of ``workers`` processes in chunks, and their results come back in archive order, so the
session's thread numbers the invoices exactly as it would have checked them itself.

The pool starts when the first large package is declared or closed (``forkserver`` where there is
one, else ``spawn``: never a plain ``fork`` of a threaded server), lives as long as the backend and
is shut down by ``KSeFBackend.close()``; where no process can be made, the checks stay in the
session's thread. It is not state: snapshots, ``reset()`` and ``--state`` never see it.
As with any ``multiprocessing`` program, a script that starts the emulator itself needs the
``if __name__ == "__main__":`` guard (worker processes import the main module), or ``workers=1``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ksef_client.mock.state import invoice_checks
from ksef_client.mock.state.invoice_checks import KSEF_SIZE_LIMITS, FileCheck, SizeLimits, check_file, check_files

# Below this many invoices a package is checked in the session's thread: starting the pool and
# moving the invoices to it would cost more than it saves.
DEFAULT_THRESHOLD = 500
# A chunk is one task of a worker: large enough that the queueing is noise, small enough that
# both workers get their share of a package of a few thousand invoices.
CHUNK_INVOICES = 250
CHUNK_BYTES = 4_000_000
# Chunks kept in the pool per worker: one being checked, one ready for when it is done.
CHUNKS_PER_WORKER = 2
# A package declared this large per invoice of ``threshold`` (zipped FA(3) invoices take 600 B and
# up) starts the pool while it is uploaded, so that its close does not wait for the processes.
DECLARED_BYTES_PER_INVOICE = 512
_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class BatchWorkers:
    """The batch checks of one backend: in ``workers`` processes for large packages, else in the
    calling thread (``workers=1``: always; ``None``: one process per core)."""

    def __init__(self, workers: int | None = None, threshold: int = DEFAULT_THRESHOLD) -> None:
        count = workers if workers is not None else (os.cpu_count() or 1)
        if count < 1:
            raise ValueError(f"workers: at least 1, not {count}")
        self.workers = count
        self.threshold = threshold
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def declared(self, form_code: str, package_bytes: int) -> None:
        """A batch package of ``package_bytes`` (zipped) was declared: when it is likely to be large,
        start the processes in the background (the caller, an HTTP request, does not wait)."""
        if self.workers == 1 or package_bytes < self.threshold * DECLARED_BYTES_PER_INVOICE:
            return
        with self._lock:
            if self._pool is not None or (self._warming is not None and self._warming.is_alive()):
                return
            self._warming = threading.Thread(target=self._warm, args=(form_code,), daemon=True)
            self._warming.start()

    @property
    def started(self) -> bool:
        """Whether the worker processes are running."""
        return self._pool is not None

    def checking(self, form_code: str, count: int, limits: SizeLimits | None = None) -> BatchChecks:
        """The checks of a package of ``count`` invoices of ``form_code`` against the context's size
        ``limits`` (KSeF's defaults unless given), fed one invoice at a time."""
        pool = self._started() if self.workers > 1 and count >= self.threshold else None
        return BatchChecks(self, form_code, pool, limits or KSEF_SIZE_LIMITS)

    def close(self) -> None:
        """Stop the worker processes (a later large package starts new ones)."""
        if self._warming is not None:
            self._warming.join()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def discard(self, pool: ProcessPoolExecutor) -> None:
        """Forget a pool one of whose processes died (it takes no more work); the next large
        package starts a new one."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False)  # its queued chunks fail with the break (see ``BatchChecks.results``)

    def _started(self) -> ProcessPoolExecutor | None:
        """The pool, started now if need be; ``None`` where processes cannot be made (then never again)."""
        with self._lock:
            if self._pool is None and self.workers > 1:
                context = multiprocessing.get_context(_START_METHOD)
                if _START_METHOD == "forkserver":
                    # The server imports the checks once; each worker is a fork of it, ready at once.
                    context.set_forkserver_preload([invoice_checks.__name__])
                try:
                    self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_exit_with_parent)
                except (OSError, ImportError, NotImplementedError) as error:  # no semaphores (some sandboxes)
                    warnings.warn(f"ksef-mock: no batch worker processes ({error}); checking in the server process",
                                  RuntimeWarning, stacklevel=2)  # fmt: skip
                    self.workers = 1
            return self._pool

    def _warm(self, form_code: str) -> None:
        pool = self._started()
        if pool is None:
            return
        try:
            for _ in range(self.workers):  # each process starts with its first task
                pool.submit(invoice_checks.prepare, form_code)
        except RuntimeError:  # closed meanwhile: nothing to warm
            pass


class BatchChecks:
    """The ``FileCheck`` of each invoice of one package, in the order the invoices were added.

    With a pool, the package is cut into chunks while it is unpacked and a few chunks per worker
    are kept in the pool, the next ones sent as results are taken; a thread that would wait for a
    chunk checks the last chunk not sent yet itself, so a pool still starting or a machine busy
    elsewhere never leaves it idle. Nothing sent is ever cancelled: in Python 3.11 a chunk
    cancelled while a dead worker breaks the pool stops the pool's own thread. Without a pool,
    each invoice is checked when its result is taken (as the session's thread always did).
    """

    def __init__(
        self, owner: BatchWorkers, form_code: str, pool: ProcessPoolExecutor | None,
        limits: SizeLimits = KSEF_SIZE_LIMITS,
    ) -> None:  # fmt: skip
        self._owner, self._form_code, self._pool, self._limits = owner, form_code, pool, limits
        self._waiting: list[bytes] = []  # the chunk being filled
        self._waiting_bytes = 0
        self._chunks: list[list[bytes]] = []
        self._futures: dict[int, Future[list[FileCheck]]] = {}
        self._checked_here: dict[int, list[FileCheck]] = {}
        # Chunks [0, _sent) went to the pool, [_sent, _end) wait, [_end, ...) were checked here;
        # the results of chunk _taken are the next ones handed out.
        self._sent = self._end = self._taken = 0

    def add(self, xml: bytes) -> None:
        """One more invoice of the package."""
        self._waiting.append(xml)
        self._waiting_bytes += len(xml)
        if self._pool is not None and (len(self._waiting) >= CHUNK_INVOICES or self._waiting_bytes >= CHUNK_BYTES):
            self._cut()

    def results(self) -> Iterator[FileCheck]:
        """The checks of every invoice added, in order (a dead worker process: ``BrokenProcessPool``)."""
        if self._pool is None:
            yield from (check_file(self._form_code, xml, self._limits) for xml in self._waiting)
            return
        self._cut()
        try:
            for index in range(len(self._chunks)):
                yield from self._checks_of(index)
        except BrokenProcessPool:
            self._owner.discard(self._pool)
            raise

    def _cut(self) -> None:
        if self._waiting:
            self._chunks.append(self._waiting)
        self._waiting, self._waiting_bytes = [], 0
        self._end = len(self._chunks)
        self._send_more()

    def _send_more(self) -> None:
        assert self._pool is not None
        while self._sent < self._end and self._sent - self._taken < CHUNKS_PER_WORKER * self._owner.workers:
            # Looked up at each call, not bound at import: tests put a crashing task in its place.
            task = invoice_checks.check_files
            self._futures[self._sent] = self._pool.submit(task, self._form_code, self._chunks[self._sent], self._limits)
            self._sent += 1

    def _checks_of(self, index: int) -> list[FileCheck]:
        """Chunk ``index``'s checks: from its worker (checking the last waiting chunks here
        meanwhile), or made here already."""
        self._taken = index
        self._send_more()
        future = self._futures.pop(index, None)
        if future is None:  # every chunk from here on was checked here
            return self._checked_here.pop(index)
        while not future.done() and self._sent < self._end:
            self._end -= 1
            self._checked_here[self._end] = check_files(self._form_code, self._chunks[self._end], self._limits)
        return future.result()


def _exit_with_parent() -> None:
    """A worker's first act: end when the emulator process ends, even when it was killed (a worker
    blocked on its task queue would otherwise wait forever)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="ksef-mock-parent-watch", daemon=True).start()
