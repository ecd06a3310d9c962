"""``_durable.write_durably_new`` on a file system without hard links.

FAT, exFAT, some SMB, FUSE and container mounts make no hard links: ``link(2)`` fails there with
EPERM (Linux: "The filesystem containing oldpath and newpath does not support the creation of hard
links"), EOPNOTSUPP/ENOTSUP (BSD, macOS, SMB), ENOSYS (FUSE without a link operation), EMLINK or
EXDEV. The tests cannot mount one, so ``os.link`` stands for it: it raises what such a file system
answers. The code under test is not patched. Windows answers with ``winerror`` codes instead,
which an ``OSError`` made here cannot carry: these tests are for POSIX systems.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ksef_client._durable import hold_lock, write_durably_new

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX link errors; Windows gives winerror codes")

DATA = b'{"format": "ksef-cli-pending-certificate/2"}\n' * 100


def no_hard_links(code: int) -> Callable[[str, str], None]:
    """An ``os.link`` as a file system without hard links answers it."""

    def link(source: str, target: str) -> None:
        raise OSError(code, os.strerror(code), source, None, target)

    return link


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    "code",
    [errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV],
    ids=lambda code: errno.errorcode[code],
)
def test_without_hard_links_the_file_is_written_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(os, "link", no_hard_links(code))
    target = tmp_path / "erp.p12.pending"
    write_durably_new(target, DATA)
    assert target.read_bytes() == DATA
    if os.name == "posix":
        assert stat.S_IMODE(target.stat().st_mode) == 0o600  # as the linked temporary file (mkstemp)
    assert files(tmp_path) == ["erp.p12.pending"]  # no temporary file left


def test_without_hard_links_an_existing_file_is_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "link", no_hard_links(errno.EPERM))
    target = tmp_path / "erp.p12.pending"
    target.write_bytes(b"another run's request")
    with pytest.raises(FileExistsError):
        write_durably_new(target, DATA)
    assert target.read_bytes() == b"another run's request" and files(tmp_path) == ["erp.p12.pending"]


def test_without_hard_links_a_file_made_meanwhile_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two writers of one name at once: the other one creates it between the failed link and ours.
    target = tmp_path / "erp.p12.pending"

    def link(source: str, destination: str) -> None:
        target.write_bytes(b"another run's request")
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), source, None, destination)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(FileExistsError):
        write_durably_new(target, DATA)
    assert target.read_bytes() == b"another run's request" and files(tmp_path) == ["erp.p12.pending"]


@pytest.mark.parametrize("failure", [OSError(errno.EIO, "Input/output error"), KeyboardInterrupt()])
def test_without_hard_links_a_failed_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    # The disk fails (or Ctrl-C comes) while the file under its final name is flushed: it goes.
    monkeypatch.setattr(os, "link", no_hard_links(errno.EPERM))
    target = tmp_path / "erp.p12.pending"
    real_fsync = os.fsync

    def fsync(handle: int) -> None:
        if target.exists() and os.path.samestat(os.fstat(handle), target.stat()):
            raise failure
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(type(failure)) as caught:
        write_durably_new(target, DATA)
    assert caught.value is failure  # raised on, after the file under its final name was made
    assert files(tmp_path) == []


def test_with_hard_links_an_existing_name_is_file_exists_as_before(tmp_path: Path) -> None:
    target = tmp_path / "erp.p12"
    target.write_bytes(b"another run's certificate")
    with pytest.raises(FileExistsError):
        write_durably_new(target, DATA)
    assert target.read_bytes() == b"another run's certificate" and files(tmp_path) == ["erp.p12"]
    write_durably_new(tmp_path / "new.p12", DATA)
    assert (tmp_path / "new.p12").read_bytes() == DATA and files(tmp_path) == ["erp.p12", "new.p12"]


@pytest.mark.parametrize(("code", "raised"), [(errno.EEXIST, FileExistsError), (errno.EACCES, PermissionError),
                                              (errno.ENOSPC, OSError), (errno.EIO, OSError)])  # fmt: skip
def test_other_link_errors_are_raised_as_before_without_writing_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, raised: type[OSError]
) -> None:
    # EEXIST says the name exists (it was made after the link was tried): not a reason to write
    # in place; a refused, full or failing disk is not either.
    monkeypatch.setattr(os, "link", no_hard_links(code))
    target = tmp_path / "erp.p12.pending"
    with pytest.raises(raised) as caught:
        write_durably_new(target, DATA)
    assert caught.value.errno == code
    assert files(tmp_path) == []  # nothing written in place, no temporary file left


# --- hold_lock on a file system that cannot lock (final review of session 10, M1) ---------------
# NFS without lockd answers flock(2) with ENOLCK, some FUSE and network mounts with EOPNOTSUPP or
# ENOSYS: no waiting gets the lock there. ``fcntl.flock`` stands for such a file system.


def no_locks(code: int) -> Callable[[int, int], None]:
    def flock(handle: int, operation: int) -> None:
        raise OSError(code, os.strerror(code))

    return flock


class Busy(Exception):
    pass


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS], ids=errno.errorcode.get)
def test_a_file_system_that_cannot_lock_is_named_not_taken_for_a_busy_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    import fcntl

    monkeypatch.setattr(fcntl, "flock", no_locks(code))
    with pytest.raises(OSError, match=r"cannot lock .*the file system refused") as refused:  # noqa: SIM117
        with hold_lock(tmp_path / "state.lock", Busy, wait=2.0):  # at once, not after the 2 s
            pytest.fail("ran without the lock")
    assert refused.value.errno == code and not isinstance(refused.value, Busy)
    ran = []
    with hold_lock(tmp_path / "state.lock", Busy, wait=2.0, best_effort=True):
        ran.append(True)
    assert ran == [True]


def test_the_cli_saves_credentials_on_a_file_system_that_cannot_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: every save waited the 10 s out and failed with "locked by another ksef process".
    import fcntl

    from ksef_client.cli.config import CredentialStore

    monkeypatch.setenv("KSEF_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("KSEF_CREDENTIAL_STORE", "file")
    monkeypatch.setattr(fcntl, "flock", no_locks(errno.ENOLCK))
    monkeypatch.setattr("ksef_client.cli.config.LOCK_WAIT", 2.0)  # waited out, it fails as "locked"
    store = CredentialStore()
    store.set("default", "ksef-token", "secret")
    assert store.get("default", "ksef-token") == "secret"


def test_a_lock_held_elsewhere_is_still_busy(tmp_path: Path) -> None:
    with hold_lock(tmp_path / "state.lock", Busy), pytest.raises(Busy):  # noqa: SIM117
        with hold_lock(tmp_path / "state.lock", Busy):  # a second open file: flock excludes it
            pass
