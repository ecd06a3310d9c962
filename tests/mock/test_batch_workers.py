"""A large batch package checked in worker processes (``mock/workers.py``) ends exactly as when the
session's thread checks it: same statuses, codes, details and numbering order; a worker process
that dies ends the session with 500 instead of leaving it processing; the processes are never
part of the saved state.

One pool serves the module (a process start costs time); the threshold and the chunk size are
lowered so that a package of a dozen invoices spans several chunks.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import pickle
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from ksef_client.mock import KSeFBackend
from ksef_client.mock import workers as workers_module
from ksef_client.mock.server import build_parser
from ksef_client.mock.state import invoice_checks
from ksef_client.mock.state import sessions as sessions_state
from ksef_client.mock.state.sessions import BatchPackage, Session
from ksef_client.testing import sample_invoice

NIP = "5265877635"
OTHER = "1111111111"
WAIT = 60  # seconds a test waits for a batch before it fails (never reached when all is well)


@pytest.fixture(scope="module")
def pooled() -> Iterator[KSeFBackend]:
    """A backend whose every batch of 2 invoices or more is checked by 2 worker processes."""
    backend = KSeFBackend(workers=2)
    backend.batch_workers.threshold = 2
    yield backend
    backend.close()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module, "CHUNK_INVOICES", 3)


def _package() -> bytes:
    """Valid invoices among every kind of rejection, in a stored zip (the last member is corrupt)."""
    today = dt.datetime.now(sessions_state.WARSAW).date()
    valid = sample_invoice("FV/W/1")
    members = {
        "01-valid.xml": valid,
        "02-schema.xml": sample_invoice("FV/W/2").replace(f"<P_1>{today}".encode(), b"<P_1>jutro"),
        "03-future.xml": sample_invoice("FV/W/3", issue_date=today + dt.timedelta(days=2)),
        "04-other-seller.xml": sample_invoice("FV/W/4", seller_nip=OTHER, buyer_nip=NIP),
        "05-bom.xml": b"\xef\xbb\xbf" + sample_invoice("FV/W/5"),
        "06-not-xml.xml": sample_invoice("FV/W/6").replace(b"<P_2>", b"<P_2X>", 1),
        "07-duplicate-in-package.xml": valid,
        "08-sent-before.xml": sample_invoice("FV/W/EARLIER"),
        "09-valid.xml": sample_invoice("FV/W/9"),
        "10-valid.xml": sample_invoice("FV/W/10"),
        "11-valid.xml": sample_invoice("FV/W/11"),
        "12-corrupt.xml": sample_invoice("FV/W/CORRUPT"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    package = bytearray(buffer.getvalue())
    package[package.rindex(b"FV/W/CORRUPT")] ^= 0xFF  # a CRC error when the member is read
    return bytes(package)


def _batch(backend: KSeFBackend, package: bytes, monkeypatch: pytest.MonkeyPatch) -> Session:
    """A batch session whose (decrypted) package is ``package``, processed as after its close."""
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access, "Batch")
    session.batch = BatchPackage(len(package), "", [], dt.datetime.now(dt.UTC))
    monkeypatch.setattr(sessions_state, "_decrypted_package", lambda batch, key: package)
    worker = threading.Thread(target=backend.sessions._process_batch, args=(session,))
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), "the batch is still being processed"
    return session


def _outcome(backend: KSeFBackend, package: bytes, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Each invoice of the package as the API shows it, KSeF numbers replaced by the position of
    the invoice that holds them (numbers are random, their order is not)."""
    backend.reset()
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    earlier = backend.sessions.open(access)
    assert backend.sessions.add_invoice(earlier, sample_invoice("FV/W/EARLIER")).accepted
    session = _batch(backend, package, monkeypatch)
    holders = {i.ksef_number: f"#{i.ordinal_number}" for i in session.invoices if i.ksef_number}
    holders.update({i.ksef_number: "earlier" for i in earlier.invoices})
    sessions = {session.reference_number: "this", earlier.reference_number: "earlier"}
    outcome = []
    for invoice in session.invoices:
        named = {value: holders.get(value, sessions.get(value)) for value in (invoice.status.extensions or {}).values()}
        extensions = {key: named[value] for key, value in (invoice.status.extensions or {}).items()}
        outcome.append((
            invoice.ordinal_number, invoice.file_name, invoice.status.code, invoice.status.description,
            invoice.status.details, extensions, holders.get(invoice.ksef_number), invoice.invoice_number,
            invoice.invoice_hash, invoice.offline,
        ))  # fmt: skip
    return outcome


def test_a_package_checked_by_worker_processes_ends_as_checked_in_the_thread(
    pooled: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _package()  # one build: its invoices carry their creation second, hence their hashes
    in_thread = _outcome(KSeFBackend(workers=1), package, monkeypatch)
    in_workers = _outcome(pooled, package, monkeypatch)
    assert pooled.batch_workers.started
    assert in_workers == in_thread
    codes = {row[1]: row[2] for row in in_thread}
    assert codes == {
        "01-valid.xml": 200, "02-schema.xml": 430, "03-future.xml": 450, "04-other-seller.xml": 410,
        "05-bom.xml": 430, "06-not-xml.xml": 430, "07-duplicate-in-package.xml": 440, "08-sent-before.xml": 440,
        "09-valid.xml": 200, "10-valid.xml": 200, "11-valid.xml": 200, "12-corrupt.xml": 430,
    }  # fmt: skip
    numbered = [row[6] for row in in_workers if row[6] is not None]
    assert numbered == ["#1", "#9", "#10", "#11"]  # in archive order


class _LateFuture(Future[Any]):
    """A chunk whose worker is busy until someone looks at it a second time (or waits for it)."""

    def __init__(self, task: Any, args: tuple[Any, ...]) -> None:
        super().__init__()
        self._run, self._args, self._looks = task, args, 0

    def done(self) -> bool:
        self._looks += 1
        if self._looks > 1:
            self._finish()
        return super().done()

    def result(self, timeout: float | None = None) -> Any:
        self._finish()
        return super().result(timeout)

    def _finish(self) -> None:
        if not super().done():
            self.set_result(self._run(*self._args))


class _SlowPool:
    """A pool of one busy worker: each chunk is done only once the waiting thread had to wait."""

    def __init__(self) -> None:
        self.sent = 0

    def submit(self, task: Any, *args: Any) -> Future[Any]:
        self.sent += 1
        return _LateFuture(task, args)


def test_while_it_waits_the_thread_checks_the_last_chunks_itself_and_the_order_holds() -> None:
    xmls = [sample_invoice(f"FV/S/{i}") for i in range(19)] + [b"<Faktura>"]  # 7 chunks of 3
    pool = _SlowPool()
    checks = workers_module.BatchChecks(workers_module.BatchWorkers(1), "FA (3)", pool)  # type: ignore[arg-type]
    for xml in xmls:
        checks.add(xml)
    assert list(checks.results()) == [invoice_checks.check_file("FA (3)", xml) for xml in xmls]
    assert 0 < pool.sent < 7  # the pool had some chunks, the waiting thread the others


def test_worker_processes_check_sizes_against_the_context_s_limits(
    pooled: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The context's maxInvoiceSizeInMB / maxInvoiceWithAttachmentSizeInMB (GET /limits/context, set by
    # /testdata/limits/context/session) apply to a large package checked in the worker processes too.
    pooled.reset()
    access = pooled.authenticate("Bearer " + pooled.mint_access_token(NIP))
    limits = pooled.testdata.context_limits(access.context)
    limits["batchSession"].update(maxInvoiceSizeInMB=2, maxInvoiceWithAttachmentSizeInMB=1)
    pooled.testdata.set_session_limits(access.context, limits)
    attachment = b"<Zalacznik><BlokDanych><MetaDane><ZKlucz>k</ZKlucz><ZWartosc>v</ZWartosc></MetaDane></BlokDanych>"
    members = {
        "plain-1.3MB.xml": sample_invoice("FV/S/1", lines=7000),  # over KSeF's 1 MB, within the context's 2
        "attached-1.3MB.xml": sample_invoice("FV/S/2", lines=7000).replace(
            b"</Faktura>", attachment + b"</Zalacznik></Faktura>"
        ),
        "small.xml": sample_invoice("FV/S/3"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    session = _batch(pooled, buffer.getvalue(), monkeypatch)
    assert pooled.batch_workers.started
    codes = {i.file_name: (i.status.code, i.status.details[:1]) for i in session.invoices}
    assert codes["plain-1.3MB.xml"] == (200, [])
    assert codes["attached-1.3MB.xml"][0] == 430 and codes["attached-1.3MB.xml"][1][0].startswith("[size]")
    assert codes["small.xml"] == (200, [])


def _crash_the_worker(form_code: str, xmls: list[bytes], *limits: Any) -> list[Any]:
    """A worker process's task that ends its process (imported by the worker from this module)."""
    os._exit(70)


def test_a_worker_process_that_dies_ends_the_session_with_500_and_the_next_package_gets_new_ones(
    pooled: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    pooled.reset()
    package = _package()
    with monkeypatch.context() as crashing:
        crashing.setattr(invoice_checks, "check_files", _crash_the_worker)
        session = _batch(pooled, package, monkeypatch)
    assert session.status.code == 500
    assert session.status.description == "Nieznany błąd (500)" and "BrokenProcessPool" in session.status.details[0]
    assert not pooled.batch_workers.started  # the broken pool is gone
    pooled.reset()
    again = _batch(pooled, package, monkeypatch)
    assert pooled.batch_workers.started
    assert [i.status.code for i in again.invoices].count(200) == 5  # FV/W/EARLIER is new here


def test_the_worker_processes_are_not_state(pooled: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    pooled.reset()
    _batch(pooled, _package(), monkeypatch)
    assert pooled.batch_workers.started
    restored = KSeFBackend(workers=1)
    restored.restore(pickle.loads(pickle.dumps(pooled.snapshot())))
    assert sorted(restored.sessions.state.sessions) == sorted(pooled.sessions.state.sessions)
    assert pooled.batch_workers.started  # neither reset() nor a snapshot stops them


def test_one_worker_means_no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = KSeFBackend(workers=1)
    backend.batch_workers.threshold = 2
    backend.batch_workers.declared("FA (3)", 10**9)
    session = _batch(backend, _package(), monkeypatch)
    assert [i.status.code for i in session.invoices].count(200) == 5
    assert not backend.batch_workers.started


def test_where_no_process_can_be_made_the_thread_checks_every_invoice(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_semaphores(*args: Any, **kwargs: Any) -> None:
        raise OSError("sem_open: function not implemented")

    monkeypatch.setattr(workers_module, "ProcessPoolExecutor", no_semaphores)
    backend = KSeFBackend(workers=2)
    backend.batch_workers.threshold = 2
    with pytest.warns(RuntimeWarning, match="no batch worker processes"):
        session = _batch(backend, _package(), monkeypatch)
    assert [i.status.code for i in session.invoices].count(200) == 5
    assert backend.batch_workers.workers == 1 and not backend.batch_workers.started


def test_ksef_mock_takes_the_number_of_worker_processes() -> None:
    assert build_parser().parse_args(["--workers", "2"]).workers == 2
    assert build_parser().parse_args([]).workers is None  # one per core
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--workers", "0"])
    with pytest.raises(ValueError, match="at least 1"):
        KSeFBackend(workers=0)


# A worker that dies on a later chunk must not leave the session's earlier invoices numbered
# while the session itself ends 500.
def _crash_on_the_second_chunk(form_code: str, xmls: list[bytes], *limits: Any) -> list[Any]:
    if any(b"FV/W/9<" in xml or b"FV/W/EARLIER" in xml for xml in xmls):
        os._exit(70)
    return invoice_checks.check_files(form_code, xmls, *limits)


def test_a_worker_dying_on_a_later_chunk_leaves_no_invoice_numbered_in_a_failed_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers_module, "CHUNK_INVOICES", 3)
    backend = KSeFBackend(workers=2)
    backend.batch_workers.threshold = 2
    try:
        with monkeypatch.context() as crashing:
            crashing.setattr(invoice_checks, "check_files", _crash_on_the_second_chunk)
            session = _batch(backend, _package(), monkeypatch)
        assert session.status.code == 500
        numbered = [i.ksef_number for i in session.invoices if i.ksef_number]
        assert numbered == [], f"session 500, yet {len(numbered)} of its invoices numbered"
    finally:
        backend.close()
