"""Files that survive a crash: atomic, durable writes, folder flushes, and exclusive lock files.

``invoices.sync`` keeps its state with these: a crash must leave the old state or the new one,
never a torn one, and never a state saved past invoice files a power cut lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import time
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
    told, and none overwrites.

    On a file system without hard links (FAT, exFAT, some SMB, FUSE and container mounts: the link
    fails with ``EPERM``, ``EOPNOTSUPP``/``ENOTSUP``, ``ENOSYS``, ``EMLINK``, ``EXDEV``; on Windows
    "Incorrect function" or "not supported"), the file is created under its final name instead,
    exclusively (``O_CREAT | O_EXCL``, mode 0600: it still never replaces a file, and of two writers
    one is told), written and flushed (a failure there removes it again), and the folder flushed.
    The trade-off: it is not atomic there. While it is being written another reader may see it
    short, and a crash (a power cut, a ``kill -9``) in the middle can leave it partly written
    under its final name. ``ksef cert obtain`` claims ``<FILE>.pending`` this way *before* it sends
    the request, and replaces it later only with ``write_durably`` (a rename, made there too), so
    a pending file cut short that shows no reference number means the request was never sent:
    ``ksef cert complete`` says so and that the file can be removed (one damaged after sending, by
    a copy or a disk, still shows its reference number, and ``complete`` names that request). A ``.p12`` cut short, with
    its pending file still there, is refused by ``cert complete`` as not holding the request's
    certificate until it is moved away or ``--force`` given, which fetches the certificate again.
    Every other error of the link (``EEXIST``: the name exists; ``EACCES``, ``ENOSPC``, ...) is
    raised as before; the temporary file is removed either way."""
    name = _flushed_beside(path, data)
    try:
        try:
            os.link(name, path)
        except OSError as error:
            if not _no_hard_links(error):
                raise
            _write_exclusively(path, data)  # flushes the folder itself
            return
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
    flush_folder(path.parent)


# The errnos of a link(2) a file system cannot make at all: EPERM (Linux: "The filesystem containing
# oldpath and newpath does not support the creation of hard links", what FAT, exFAT, vboxsf give),
# EOPNOTSUPP/ENOTSUP (BSD, macOS, SMB servers that refuse it), ENOSYS (FUSE file systems without a
# link operation), EMLINK (a file system whose files take one link only: ours has one),
# EXDEV (union mounts such as mergerfs, whose branches cannot link across). Our temporary file is a
# regular file of ours in the same folder, so none of them means anything else here.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV})
# Windows (CreateHardLinkW; Python maps these to EINVAL): ERROR_INVALID_FUNCTION (FAT, exFAT),
# ERROR_NOT_SUPPORTED (network shares), ERROR_TOO_MANY_LINKS.
_NO_HARD_LINKS_WINERROR = frozenset({1, 50, 1142})


def _no_hard_links(error: OSError) -> bool:
    """Whether ``os.link`` failed because the file system makes no hard links (not because the
    name exists, the disk is full, or access is denied)."""
    if sys.platform == "win32":
        return getattr(error, "winerror", None) in _NO_HARD_LINKS_WINERROR or error.errno == errno.EXDEV
    return error.errno in _NO_HARD_LINKS


def _write_exclusively(path: Path, data: bytes) -> None:
    """``data`` in a file created at ``path`` (``FileExistsError`` if one is there: never replaced),
    mode 0600, flushed, closed (removed again if that fails), then the folder flushed (a failure
    there leaves the whole file in place, as after the link)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    _fill(handle, path, data)
    flush_folder(path.parent)


def _flushed_beside(path: Path, data: bytes) -> str:
    """``data`` in a new temporary file beside ``path`` (mode 0600, a name of its own), flushed to
    disk; its name (removed again if writing fails)."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    _fill(handle, name, data)
    return name


def _fill(handle: int, name: str | Path, data: bytes) -> None:
    """Write ``data`` to the new file open as ``handle``, flush it to disk and close it; the file,
    named ``name``, is removed again if any of it fails (Ctrl-C included)."""
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


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


def make_folders(folder: Path) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``, with the entry of each folder it creates
    flushed to disk in its parent (``flush_folder`` of each such parent, once): on POSIX a new
    folder's entry is not on disk before its parent is flushed, so after a power cut a state file
    written durably elsewhere could outlive the folder it names and the files in it. Nothing is
    flushed when nothing is created. A parent this user may not read (a folder of mode ``--x``)
    cannot be opened to be flushed: left to the system (``PermissionError`` is not raised for it)."""
    created = []
    at = Path(os.path.abspath(folder))
    while not os.path.lexists(at) and at.parent != at:
        created.append(at)
        at = at.parent
    folder.mkdir(parents=True, exist_ok=True)
    for made in reversed(created):
        with contextlib.suppress(PermissionError):
            flush_folder(made.parent)


# What a lock call fails with when another holder has the lock; any other error (ENOLCK on NFS
# without lockd, EOPNOTSUPP or ENOSYS on some FUSE and network mounts) is the file system's: no
# amount of waiting gets the lock there.
HELD_ELSEWHERE = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)})


@contextmanager
def hold_lock(
    lock_file: Path, busy: Callable[[], Exception], *, wait: float = 0.0, best_effort: bool = False
) -> Iterator[None]:
    """Hold ``lock_file`` exclusively while the block runs (created when missing, left in place),
    or raise ``busy()`` when another holder has it: at once, without waiting, by default; after
    trying again for up to ``wait`` seconds otherwise (for holders that keep it briefly). An OS
    lock (``flock``; ``msvcrt.locking`` on Windows), not the file's existence: it ends with its
    process, so a holder that crashed leaves no stale lock.

    On a file system that cannot lock at all (``HELD_ELSEWHERE`` aside) the block runs without the
    lock when ``best_effort``; otherwise that ``OSError`` is raised, naming the lock file."""
    handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        locked = _acquire_or_not(handle, busy, wait, lock_file, best_effort=best_effort)
        try:
            yield
        finally:
            if locked:
                _unlock(handle)
    finally:
        os.close(handle)


def _acquire_or_not(
    handle: int, busy: Callable[[], Exception], wait: float, lock_file: Path, *, best_effort: bool
) -> bool:
    """``_acquire``; whether the lock is held (``False``: the file system cannot lock, and
    ``best_effort`` takes that)."""
    try:
        _acquire(handle, busy, wait)
    except _CannotLock as cannot:
        error = cannot.error
        if not best_effort:
            raise OSError(
                error.errno, f"cannot lock {lock_file}: the file system refused ({error.strerror})"
            ) from error
        return False  # the caller accepted a file system that does not keep two writers apart
    return True


class _CannotLock(Exception):
    """The file system refused a lock call (``error``), which no waiting changes."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _acquire(handle: int, busy: Callable[[], Exception], wait: float) -> None:
    """Lock ``handle``, trying again (5 ms, doubling up to 100 ms apart) until ``wait`` seconds
    have passed; ``busy()`` then. A lock call that fails for another reason than a holder
    (``HELD_ELSEWHERE``) raises ``_CannotLock`` at once."""
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            _lock(handle)
        except OSError as error:
            if error.errno not in HELD_ELSEWHERE:
                raise _CannotLock(error) from error
            left = deadline - time.monotonic()
            if left <= 0:
                raise busy() from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.1)
        else:
            return


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
