"""``BatchPackage.build``'s checks: invoices are checked in runs before they are zipped, in order,
with a bounded number held between their check and the zip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ksef_client import batch
from ksef_client.batch import BatchPackage
from ksef_client.crypto import SymmetricKey
from ksef_client.errors import BatchError
from ksef_client.testing import sample_invoice

COUNT = 3000  # several runs of CHECK_RUN_INVOICES


def _invoices(read: list[int]) -> Iterator[bytes]:
    template = sample_invoice("RUN/0000")
    for index in range(1, COUNT + 1):
        read.append(index)
        yield template.replace(b"RUN/0000", f"RUN/{index:04d}".encode())


def test_invoices_are_checked_in_bounded_runs_ahead_of_the_zip_and_in_order() -> None:
    # Checked one after another (libxml2's schema stays in the CPU caches), but never more than
    # CHECK_RUN_INVOICES ahead of what was zipped: memory stays flat however many invoices.
    checked: list[int] = []
    ahead: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "zip":  # ``done`` invoices were handed to the zip
            ahead.append(len(checked) - done)

    with BatchPackage.build(
        _invoices([]), SymmetricKey.generate(), check=lambda i, name, xml: checked.append(i), progress=progress
    ) as package:
        assert package.invoice_count == COUNT
    assert checked == list(range(1, COUNT + 1))
    assert max(ahead) < batch.CHECK_RUN_INVOICES and max(ahead) > 0


def test_a_run_of_large_invoices_ends_at_the_byte_bound() -> None:
    # 20-line invoices reach CHECK_RUN_BYTES before CHECK_RUN_INVOICES: the bytes checked ahead of
    # the zip stay within the bound plus one invoice, however many there are.
    template = sample_invoice("RUN/0000", lines=200)
    count = 2 * batch.CHECK_RUN_BYTES // len(template) + 10  # past two runs of the byte bound
    assert batch.CHECK_RUN_BYTES // len(template) < batch.CHECK_RUN_INVOICES
    checked: list[int] = []
    ahead: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "zip":
            ahead.append(len(checked) - done)

    def check(index: int, name: str, xml: bytes) -> None:
        checked.append(index)

    invoices = (template.replace(b"RUN/0000", f"RUN/{index:04d}".encode()) for index in range(1, count + 1))
    with BatchPackage.build(invoices, SymmetricKey.generate(), check=check, progress=progress) as package:
        assert package.invoice_count == count
    assert 0 < max(ahead) * len(template) <= batch.CHECK_RUN_BYTES + len(template)


def test_a_failed_check_stops_the_reading_at_that_invoice() -> None:
    read: list[int] = []

    def check(index: int, name: str, xml: bytes) -> None:
        if index == 7:
            raise BatchError(f"invoice {index} refused")

    with pytest.raises(BatchError, match="invoice 7 refused"):
        BatchPackage.build(_invoices(read), SymmetricKey.generate(), check=check)
    assert read == list(range(1, 8))  # nothing past the invoice that failed was read
