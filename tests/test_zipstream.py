"""The batch zip writer: what it writes opens in zipfile, byte for byte, in every mode."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksef_client import _zipstream
from ksef_client._zipstream import ZipStream
from ksef_client.crypto import SymmetricKey
from ksef_client.schemas import validate_invoice
from ksef_client.testing import sample_invoice
from ksef_client.upo import sha256_b64

NAMES = st.text(st.characters(codec="utf-8", exclude_characters="/\\\x00"), min_size=1, max_size=40)
MEMBERS = st.dictionaries(NAMES, st.binary(max_size=3000), min_size=1, max_size=30)


def _zip(members: dict[str, bytes], **options: object) -> bytes:
    out = io.BytesIO()
    stream = ZipStream(out, **options)  # type: ignore[arg-type]
    for name, data in members.items():
        stream.write(name, data)
    size = stream.close()
    assert size == len(out.getvalue())
    return out.getvalue()


def _read(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as package:
        assert package.testzip() is None  # every CRC checks
        return {info.filename: package.read(info) for info in package.infolist()}


@settings(max_examples=60, deadline=None)
@given(MEMBERS, st.sampled_from(["deflate", "stored"]))
def test_members_read_back_unchanged(members: dict[str, bytes], compression: str) -> None:
    assert _read(_zip(members, compression=compression)) == members


@settings(max_examples=30, deadline=None)
@given(MEMBERS, st.sampled_from([1, 3]))
def test_parallel_writing_keeps_order_and_content(members: dict[str, bytes], workers: int) -> None:
    out = io.BytesIO()
    stream = ZipStream(out, workers=workers)
    stream.write_all(members.items())
    assert stream.close() == len(out.getvalue())
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as package:
        assert package.namelist() == list(members)  # in the order given, whatever thread deflated them
    assert _read(out.getvalue()) == members


@pytest.mark.parametrize("library", ["installed", "zlib"])
def test_many_invoices_in_parallel_groups(library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # ISA-L deflates where it is installed (CPython on x86-64/ARM64), zlib elsewhere: both must
    # give a zip the standard library reads back.
    if library == "zlib":
        monkeypatch.setattr(_zipstream, "_deflate", zlib.compress)
        monkeypatch.setattr(_zipstream, "_crc32", zlib.crc32)
    invoices = {f"{i}.xml": sample_invoice(f"Z/{i}", lines=1 + i % 30) for i in range(300)}
    out = io.BytesIO()
    stream = ZipStream(out, workers=2)
    stream.write_all(invoices.items())  # several groups of GROUP_MEMBERS / GROUP_BYTES
    stream.close()
    assert _read(out.getvalue()) == invoices


def test_sample_invoices_of_any_length_are_valid_fa3() -> None:
    for lines in (1, 2, 25):
        invoice = sample_invoice("FV/L/1", lines=lines, net="10.00")
        validate_invoice(invoice)
        assert invoice.count(b"<FaWiersz>") == lines
        assert f"<P_13_1>{10 * lines}.00</P_13_1>".encode() in invoice
    with pytest.raises(ValueError, match="lines"):
        sample_invoice(lines=0)


def test_isal_deflates_where_it_has_wheels() -> None:
    # A dependency on CPython for x86-64 and ARM64 (pyproject's marker): CI runs there.
    assert _zipstream.DEFLATE_LIBRARY == "isal"


def test_zip64_records_are_written_past_the_limit() -> None:
    # A real archive passes 4 GiB only with gigabytes of invoices; the limit is lowered instead.
    members = {f"{i}.xml": bytes([i]) * 700 for i in range(40)}
    archive = _zip(members, compression="stored", zip64_limit=5_000)
    assert b"PK\x06\x06" in archive and b"PK\x06\x07" in archive  # ZIP64 end record and locator
    with zipfile.ZipFile(io.BytesIO(archive)) as package:
        assert package.infolist()[-1].header_offset > 5_000
    assert _read(archive) == members


def test_deflate_shrinks_invoices_and_stored_does_not() -> None:
    members = {f"{i}.xml": b"<Faktura>" + b"<Wiersz>1</Wiersz>" * 100 + b"</Faktura>" for i in range(10)}
    deflated, stored = _zip(members), _zip(members, compression="stored")
    assert len(deflated) * 5 < len(stored)
    assert _read(deflated) == _read(stored) == members


def test_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="compression"):
        ZipStream(io.BytesIO(), compression="bzip2")  # type: ignore[arg-type]


def test_parts_end_where_the_zip_ends_whatever_the_chunking() -> None:
    # The zip's bytes are encrypted in chunks as they come; the last part must be finished (padded,
    # hashed) also when the zip ends exactly on a chunk's end, and no part may cross part_size.
    from ksef_client.batch import CHUNK, _EncryptedParts, _Hashing

    key = SymmetricKey.generate()
    for part_size, writes in [(10 * CHUNK, [CHUNK]), (CHUNK, [CHUNK, 1]), (3000, [1000] * 9), (3000, [7000, 10])]:
        data = os.urandom(sum(writes))
        with _Hashing() as hashing:
            parts = _EncryptedParts(key, part_size, hashing, None)
            offset = 0
            for size in writes:
                parts.write(data[offset : offset + size])
                offset += size
            parts.close()
        finished = parts.finished()
        plain = [key.decrypt(part.read()) for part in finished]
        assert b"".join(plain) == data and all(len(p) <= part_size for p in plain)
        assert len(finished) == -(-len(data) // part_size)
        assert [part.hash for part in finished] == [sha256_b64(part.read()) for part in finished]
        assert parts.package_hash.digest() == hashlib.sha256(data).digest()
        for part in finished:
            part.file.close()
