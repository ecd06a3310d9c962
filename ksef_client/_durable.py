"""Files that survive a crash: atomic, durable writes, folder flushes, and exclusive lock files.

``invoices.sync`` keeps its state with these: a crash must leave the old state or the new one,
never a torn one, and never a state saved past invoice files a power cut lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` atomically and durably: into a temporary file of a name of its own beside
    ``path`` (never one another writer uses), flushed to disk, renamed over ``path``, and the
    rename flushed too (the folder, on POSIX). A crash leaves the old file or the new one."""
    name = _flushed_beside(path, data)
    try:
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    flush_folder(path.parent)


def write_durably_new(path: Path, data: bytes) -> None:
    """As ``write_durably``, but only if no file is at ``path``: ``FileExistsError`` otherwise,
    leaving that file as it is. Put in place with a hard link, which fails when the name exists,
    where a rename would replace it: of two writers of one name at once, one wins, the other is
    told, and none overwrites."""
    name = _flushed_beside(path, data)
    try:
        os.link(name, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
    flush_folder(path.parent)


def _flushed_beside(path: Path, data: bytes) -> str:
    """``data`` in a new temporary file beside ``path`` (mode 0600, a name of its own), flushed to
    disk; its name (removed again if writing fails)."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return name


def flush_folder(folder: Path) -> None:
    """Flush a folder's entries (renames into it) to disk: POSIX only; on Windows a folder cannot
    be opened for that, and a rename is written through by the file system."""
    if os.name != "posix":
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@contextmanager
def hold_lock(lock_file: Path, busy: Callable[[], Exception]) -> Iterator[None]:
    """Hold ``lock_file`` exclusively while the block runs (created when missing, left in place),
    or raise ``busy()`` at once, without waiting, when another holder has it. An OS lock (``flock``; ``msvcrt.locking``
    on Windows), not the file's existence: it ends with its process, so a holder that crashed
    leaves no stale lock."""
    handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            _lock(handle)
        except OSError:
            raise busy() from None
        try:
            yield
        finally:
            _unlock(handle)
    finally:
        os.close(handle)


if sys.platform == "win32":

    def _lock(handle: int) -> None:
        os.lseek(handle, 0, os.SEEK_SET)
        msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)

    def _unlock(handle: int) -> None:
        os.lseek(handle, 0, os.SEEK_SET)
        msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)

else:

    def _lock(handle: int) -> None:
        # flock, not lockf: flock's locks belong to the open file, so two runs in one process
        # (two threads, two tasks) exclude each other too; lockf's would both succeed.
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: int) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
