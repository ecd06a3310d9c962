"""An export package stops at its size limit as well as at its count.

The spec, POST /invoices/exports: "System pobiera faktury rosnąco według daty określonej w filtrze
(Invoicing, Issue, PermanentStorage) i dodaje faktury(nazwa pliku: {ksefNumber}.xml) do paczki aż
do osiągnięcia jednego z poniższych limitów: * Limit liczby faktur: 10 000 sztuk * Limit rozmiaru
danych(skompresowanych): 1GB"; "Plik z metadanymi(_metadata.json) nie jest wliczany do limitów
algorytmu budowania paczki". InvoicePackage.isTruncated: "Określa, czy wynik eksportu został ucięty
z powodu przekroczenia limitu liczby faktur lub wielkości paczki".

The emulator cut packages at the count only: a client never met a package cut by its size. The
limit is ``backend.export_package_limit`` (1 GB scaled down here, as ``metadata_limit`` is).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.crypto import SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.state.invoices import compressed_size
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import issued_by
from tests.mock.conftest import session_encryption


def _store(backend: KSeFBackend, count: int, prefix: str) -> list[int]:
    """``count`` invoices of the seller NIP accepted (through the state), a second or more after
    the one before (no two share a date); the compressed size of each, in order."""
    # In the past, a second a reading: the real clock (put back after) is past them all, the HWM too.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    seconds = itertools.count()
    real, backend.clock = backend.clock, lambda: start + dt.timedelta(seconds=next(seconds))
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access)
    for number in range(count):
        # Longer and longer numbers: the invoices differ in size, the limit falls between them.
        invoice = backend.sessions.add_invoice(
            session, sample_invoice(f"FV/{prefix}/{number}/" + "9" * number, issue_date=issued_by(backend))
        )
        assert invoice.accepted, invoice.status
    backend.sessions.close(session)
    backend.clock = real
    return [compressed_size(invoice.xml) for invoice in backend.invoices.state.accepted]


def _export(raw: httpx.Client, only_metadata: bool = False) -> tuple[dict[str, Any], zipfile.ZipFile]:
    """An export of everything the seller issued (PermanentStorage dates): its package, and the
    package's zip, downloaded and decrypted."""
    key = SymmetricKey.generate()
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    body = {
        "encryption": session_encryption(key), "onlyMetadata": only_metadata,
        "filters": {"subjectType": "Subject1", "dateRange": {"dateType": "PermanentStorage", "from": since}},
    }  # fmt: skip
    started = raw.post("/invoices/exports", json=body)
    assert started.status_code == 201, started.text
    status = raw.get(f"/invoices/exports/{started.json()['referenceNumber']}").json()
    assert status["status"]["code"] == 200, status
    package: dict[str, Any] = status["package"]
    plain = b"".join(key.decrypt(httpx.get(part["url"]).content) for part in package["parts"])
    return package, zipfile.ZipFile(io.BytesIO(plain))


def _xml_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [info for info in archive.infolist() if info.filename != "_metadata.json"]


@pytest.mark.parametrize("slack", [0, 1])
def test_a_package_stops_before_the_invoice_that_would_pass_the_size_limit(
    raw: httpx.Client, backend: KSeFBackend, slack: int
) -> None:
    sizes = _store(backend, 6, "CUT")
    assert len(set(sizes)) > 1  # the limit is in bytes, not a count in disguise
    # Room for the first three and a byte less than the fourth (slack 0: the sum of three exactly,
    # which is not past the limit).
    backend.export_package_limit = sum(sizes[:3]) + (sizes[3] - 1) * slack
    package, archive = _export(raw)
    assert (package["invoiceCount"], package["isTruncated"]) == (3, True)
    # What the limit counts is what the zip holds: each invoice's compressed bytes.
    members = _xml_members(archive)
    assert [info.compress_size for info in members] == sizes[:3]
    assert sum(info.compress_size for info in members) <= backend.export_package_limit
    # The next window starts at the date of the package's last invoice (the guide: "Gdy IsTruncated
    # = true, kolejne wywołanie należy rozpocząć od LastPermanentStorageDate").
    third = backend.invoices.state.accepted[2]
    assert dt.datetime.fromisoformat(package["lastPermanentStorageDate"]) == third.stored
    assert not {"lastIssueDate", "lastInvoicingDate"} & set(package)


def test_the_metadata_file_does_not_count(raw: httpx.Client, backend: KSeFBackend) -> None:
    # "Plik z metadanymi(_metadata.json) nie jest wliczany do limitów algorytmu budowania paczki":
    # a limit the invoices fill exactly holds them all, the metadata file on top.
    sizes = _store(backend, 4, "META")
    backend.export_package_limit = sum(sizes)
    package, archive = _export(raw)
    assert (package["invoiceCount"], package["isTruncated"]) == (4, False)
    assert archive.getinfo("_metadata.json").compress_size > 0
    assert not {"lastIssueDate", "lastInvoicingDate", "lastPermanentStorageDate"} & set(package)


def test_an_invoice_larger_than_the_limit_still_makes_a_package_of_one(raw: httpx.Client, backend: KSeFBackend) -> None:
    # An empty truncated package would never move its window on: the first invoice always goes in.
    _store(backend, 3, "BIG")
    backend.export_package_limit = 1
    package, archive = _export(raw)
    assert (package["invoiceCount"], package["isTruncated"]) == (1, True)
    assert len(_xml_members(archive)) == 1
    first = backend.invoices.state.accepted[0]
    assert dt.datetime.fromisoformat(package["lastPermanentStorageDate"]) == first.stored


def test_an_only_metadata_package_holds_no_invoice_data_to_count(raw: httpx.Client, backend: KSeFBackend) -> None:
    # onlyMetadata: "plik _metadata.json bez faktur": no {ksefNumber}.xml, nothing the size limit
    # counts; the count limit still cuts it.
    _store(backend, 3, "ONLY")
    backend.export_package_limit = 1
    package, archive = _export(raw, only_metadata=True)
    assert (package["invoiceCount"], package["isTruncated"]) == (3, False)
    assert archive.namelist() == ["_metadata.json"]
    backend.metadata_limit = 2
    assert _export(raw, only_metadata=True)[0]["isTruncated"] is True


def test_sync_delivers_every_invoice_once_across_packages_cut_by_size(
    ksef: KSeF, backend: KSeFBackend, tmp_path: Path
) -> None:
    # Packages cut by size, not count: each window starts at the last one's
    # lastPermanentStorageDate, and sync() still hands over each invoice exactly once.
    sizes = _store(backend, 12, "SYNC")
    backend.export_package_limit = max(sizes) * 3  # three or four invoices a package, never 10,000
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    result = ksef.invoices.sync("Subject1", tmp_path / "state.json", tmp_path / "inbox", start=start)
    stored = [str(invoice.ksef_number) for invoice in backend.invoices.state.accepted]
    assert sorted(result.ksef_numbers) == sorted(stored)  # all, none twice
    assert len(result.files) == len(stored) == len({path.name for path in result.files})
    packages = [export.package for export in backend.invoices.state.exports.values()]
    cut = [package for package in packages if package is not None and package["isTruncated"]]
    assert len(cut) >= 3 and all(package["invoiceCount"] <= 4 for package in cut)
