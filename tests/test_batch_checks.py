"""``BatchPackage.build``'s checks: invoices are checked in runs before they are zipped, in order,
with a bounded number held between their check and the zip."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from ksef_client import KSeF, batch
from ksef_client.batch import BatchPackage
from ksef_client.crypto import SymmetricKey
from ksef_client.errors import BatchError, BatchFileNameError
from ksef_client.mock import KSeFBackend
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


# --- file names (security review, session 10, finding 7) -----------------------------------------

BAD_NAMES = [
    ("x" * 125 + ".xml", "has 129 characters; KSeF takes at most 128"),
    ("", "is empty"),
    ("../../outside.xml", "is a path"),
    ("dir/sub.xml", "is a path"),
    ("C:\\win.xml", "is a path"),
    ("..", "is a path"),
    (".", "is a path"),
    ("esc\x1b]0;pwned\x07.xml", "control character"),
    ("nul\x00.xml", "control character"),
    ("c1\x9b.xml", "control character"),
    ("surrogate\ud800.xml", "lone surrogate"),
]


@pytest.mark.parametrize(
    ("name", "problem"),
    BAD_NAMES,
    ids=[
        "129-chars",
        "empty",
        "parent-path",
        "folder",
        "backslash",
        "dot-dot",
        "dot",
        "esc-bel",
        "nul",
        "c1",
        "surrogate",
    ],
)
def test_a_file_name_ksef_would_not_take_is_refused_before_any_request(
    ksef: KSeF, backend: KSeFBackend, name: str, problem: str
) -> None:
    # They went into the package as given: the long one was refused by KSeF only after the upload
    # (430, never numbered), the others were echoed back by sessions.invoices as sent.
    sources = [("good.xml", sample_invoice("FV/N/1")), (name, sample_invoice("FV/N/2"))]
    with pytest.raises(BatchFileNameError, match=re.escape(problem)) as caught:
        ksef.send_batch(sources)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, BatchError)
    assert str(caught.value).startswith("invoice 2: ") and len(str(caught.value)) < 250
    assert "\x1b" not in str(caught.value) and "\x00" not in str(caught.value)
    assert backend.sessions.state.sessions == {}  # no session opened, nothing uploaded


def test_two_invoices_of_one_name_are_refused_as_before(ksef: KSeF, backend: KSeFBackend) -> None:
    sources = [("a.xml", sample_invoice("FV/D/1")), ("a.xml", sample_invoice("FV/D/2"))]
    with pytest.raises(BatchFileNameError, match=r"invoice 2: two invoices named 'a.xml' in one package"):
        ksef.send_batch(sources)
    with pytest.raises(TypeError, match="invoice 1: its file name must be a str, got bytes"):
        ksef.send_batch([(b"a.xml", sample_invoice("FV/D/1"))])  # type: ignore[list-item]
    assert backend.sessions.state.sessions == {}


@pytest.mark.parametrize("name", ["faktura\xa0nr 1.xml", "a\u200db.xml", "..a.xml"], ids=["nbsp", "zwj", "dots"])
def test_a_name_str_isprintable_refuses_but_ksef_takes_is_sent(ksef: KSeF, name: str) -> None:
    # A no-break space (Zs) and a zero-width joiner (Cf) are not "printable" to Python, yet are no
    # control characters: the quick check must hand them to the full one, not refuse them.
    result = ksef.send_batch([(name, sample_invoice("FV/P/1"))], wait=True)
    assert [i.invoice_file_name for i in ksef.sessions.invoices(result.reference_number)] == [name]


@pytest.mark.parametrize("compression", ["deflate", "targz"])
def test_a_name_of_128_characters_is_sent_and_reported_whole(ksef: KSeF, compression: str) -> None:
    name = "Faktura zaliczkowa ąę " + "x" * (128 - 26) + ".xml"
    assert len(name) == 128
    result = ksef.send_batch([(name, sample_invoice("FV/L/1"))], wait=True, compression=compression)  # type: ignore[arg-type]
    assert [i.invoice_file_name for i in ksef.sessions.invoices(result.reference_number)] == [name]
