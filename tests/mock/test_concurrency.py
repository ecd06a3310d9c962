"""The emulator with a batch processed after its close (a worker thread): numbering stays unique,
a broken package member is rejected rather than lost, other clients keep being served while a
session is processed, and persistence saves only finished work."""

from __future__ import annotations

import datetime as dt
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksef_client.mock import KSeFBackend
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state import sessions as sessions_state
from ksef_client.mock.state.sessions import BatchPackage, Session
from ksef_client.testing import sample_invoice

NIP = "5265877635"
WAIT = 10  # seconds a test waits for a thread before it fails (never reached when all is well)


def _access(backend: KSeFBackend) -> Any:
    return backend.authenticate("Bearer " + backend.mint_access_token(NIP))


def _batch(backend: KSeFBackend, package: bytes, monkeypatch: pytest.MonkeyPatch) -> Session:
    """A batch session whose (decrypted) package is ``package``."""
    session = backend.sessions.open(_access(backend), "Batch")
    session.batch = BatchPackage(len(package), "", [], dt.datetime.now(dt.UTC))
    monkeypatch.setattr(sessions_state, "_decrypted_package", lambda batch, key: package)
    return session


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_one_invoice_sent_twice_at_once_is_numbered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = KSeFBackend()
    access = _access(backend)
    first, second = backend.sessions.open(access), backend.sessions.open(access)
    both_verified = threading.Barrier(2, timeout=WAIT)
    verify = sessions_state.Sessions._verify

    def verified_then_wait(self: Any, *args: Any) -> Any:
        result = verify(self, *args)
        both_verified.wait()  # both copies pass every check before either is numbered
        return result

    monkeypatch.setattr(sessions_state.Sessions, "_verify", verified_then_wait)
    xml = sample_invoice("FV/RACE/1")
    threads = [threading.Thread(target=backend.sessions.add_invoice, args=(s, xml)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    codes = sorted(i.status.code for s in (first, second) for i in s.invoices)
    assert codes == [200, 440]
    assert len(backend.invoices.state.accepted) == 1


def test_a_broken_member_is_rejected_and_the_rest_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = KSeFBackend()
    package = bytearray(_zip({"a.xml": sample_invoice("FV/Z/1"), "b.xml": sample_invoice("FV/Z/2")}))
    second = package.rindex(b"FV/Z/2")
    package[second] ^= 0xFF  # a CRC error when the member is read
    session = _batch(backend, bytes(package), monkeypatch)
    backend.sessions._process_batch(session)
    outcome = {i.file_name: (i.status.code, i.status.details[:1]) for i in session.invoices}
    assert outcome["a.xml"][0] == 200
    assert outcome["b.xml"][0] == 430 and outcome["b.xml"][1][0].startswith("[xml]")


def test_a_crashing_worker_never_ends_as_processed(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = KSeFBackend()
    session = _batch(backend, _zip({"a.xml": sample_invoice("FV/C/1")}), monkeypatch)

    def crash(self: Any, session: Session) -> None:
        raise RuntimeError("emulator bug")

    monkeypatch.setattr(sessions_state.Sessions, "_unpack_batch", crash)
    backend.sessions._process_batch(session)
    assert session.status.code == 500 and "emulator bug" in session.status.details[0]


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ThreadedServer, threading.Event, str]]:
    """An emulator whose next batch is processed only once the event is set."""
    release = threading.Event()
    unpack = sessions_state.Sessions._unpack_batch

    def held(self: Any, session: Session) -> Any:
        release.wait(WAIT)
        return unpack(self, session)

    monkeypatch.setattr(sessions_state.Sessions, "_unpack_batch", held)
    with ThreadedServer(KSeFBackend(), strict=True) as server:
        token = server.backend.mint_access_token(NIP)
        from ksef_client import KSeF

        with KSeF(base_url=server.base_url, access_token=token) as client:
            result = client.send_batch([sample_invoice(f"FV/G/{i}") for i in range(3)])
        yield server, release, result.reference_number
        release.set()


def test_other_clients_are_served_while_a_session_is_processed(
    gated: tuple[ThreadedServer, threading.Event, str],
) -> None:
    server, release, reference = gated
    token = server.backend.mint_access_token(NIP)
    status: dict[str, Any] = {}

    def read_status() -> None:  # waits for the processing, in the emulator's worker thread
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            status.update(client.get(f"/sessions/{reference}", timeout=WAIT).json())

    waiting = threading.Thread(target=read_status)
    waiting.start()
    other = httpx.get(server.base_url + "/security/public-key-certificates", timeout=WAIT)
    assert other.status_code == 200 and not status  # answered while the status read still waits
    release.set()
    waiting.join(WAIT)
    assert status["status"]["code"] == 200 and status["successfulInvoiceCount"] == 3


def test_the_state_is_saved_once_the_processing_is_over(
    gated: tuple[ThreadedServer, threading.Event, str], tmp_path: Path
) -> None:
    server, release, reference = gated
    store = SQLiteStore(tmp_path / "state.sqlite")
    saving = threading.Thread(target=store.save, args=(server.backend,))
    saving.start()
    release.set()
    saving.join(WAIT)
    restored = KSeFBackend()
    assert store.load(restored)
    session = restored.sessions.state.sessions[reference]
    assert [i.status.code for i in session.invoices] == [200, 200, 200]
