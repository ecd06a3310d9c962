"""Export packages of either format are unpacked under the same rules: plain files with KSeF
numbers as names, capped sizes; a tar.gz cannot smuggle a link or a path out of the folder."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest

from ksef_client import BodyLimits
from ksef_client._generated.models import InvoicePackage
from ksef_client._moving import _replaceable
from ksef_client.crypto import sha256_b64
from ksef_client.errors import ExportError
from ksef_client.export import unpack_export
from ksef_client.identifiers import make_ksef_number

NUMBER = make_ksef_number("5265877635", "20261201", "0123456789AB")


def _package(compression: str) -> InvoicePackage:
    return InvoicePackage.from_dict(
        {"invoiceCount": 1, "size": 1, "parts": [], "isTruncated": False, "compressionType": compression}
    )


def _tar(path: Path, entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, mode="w:gz") as archive:
        for entry in entries:
            payload = data.get(entry.name)
            if payload is not None:
                entry.size = len(payload)
            archive.addfile(entry, io.BytesIO(payload) if payload is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def test_a_tar_gz_package_unpacks_like_a_zip(tmp_path: Path) -> None:
    metadata = _listing(NUMBER, invoice=b"<Faktura/>")
    archive = _tar(tmp_path / "p.tar.gz", [_file(f"{NUMBER}.xml"), _file("_metadata.json")],
                   {f"{NUMBER}.xml": b"<Faktura/>", "_metadata.json": metadata})  # fmt: skip
    result = unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")
    assert [p.name for p in result.files] == [f"{NUMBER}.xml"] and result.ksef_numbers == [NUMBER]
    assert not archive.exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE])
def test_a_tar_entry_that_is_not_a_plain_file_is_refused(tmp_path: Path, kind: bytes) -> None:
    odd = _file(f"{NUMBER}.xml")
    odd.type, odd.linkname = kind, "/etc/passwd"
    archive = _tar(tmp_path / "p.tar.gz", [odd], {})
    with pytest.raises(ExportError, match="not plain files"):
        unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")
    assert not (tmp_path / "out" / f"{NUMBER}.xml").exists()


def test_a_tar_entry_named_outside_the_folder_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "p.tar.gz", [_file("../escape.xml")], {"../escape.xml": b"x"})
    with pytest.raises(ExportError):
        unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")
    assert not (tmp_path / "escape.xml").exists()


def test_a_package_that_is_not_what_it_says_is_an_export_error(tmp_path: Path) -> None:
    bogus = tmp_path / "p.tar.gz"
    bogus.write_bytes(b"PK\x03\x04 not a tar")
    with pytest.raises(ExportError, match="cannot be read"):
        unpack_export("EX", _package("TarGz"), bogus, tmp_path / "out")


OTHER = make_ksef_number("5265877635", "20261201", "0123456789AC")


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _listing(*numbers: str, invoice: bytes = b"<a/>") -> bytes:
    """``_metadata.json`` listing ``numbers``, each record's ``invoiceHash`` that of ``invoice``."""
    return json.dumps({"invoices": [{"ksefNumber": n, "invoiceHash": sha256_b64(invoice)} for n in numbers]}).encode()


@pytest.mark.parametrize(
    ("entries", "count", "message"),
    [
        ({f"{NUMBER}.xml": b"<a/>"}, 1, "no _metadata.json"),
        ({f"{NUMBER}.xml": b"<a/>", "_metadata.json": _listing(NUMBER, OTHER)}, 2, f"no file for 1 .*: {OTHER}"),
        (
            {f"{NUMBER}.xml": b"<a/>", f"{OTHER}.xml": b"<b/>", "_metadata.json": _listing(NUMBER)},
            2,
            f"1 invoice file.* not listed in it: {OTHER}",
        ),
        ({f"{NUMBER}.xml": b"<a/>", "_metadata.json": _listing(NUMBER)}, 2, "invoiceCount is 2"),
    ],
    ids=["no-metadata", "listed-without-file", "file-not-listed", "count"],
)
def test_a_package_that_does_not_match_its_metadata_is_refused(
    tmp_path: Path, entries: dict[str, bytes], count: int, message: str
) -> None:
    package = InvoicePackage.from_dict(
        {"invoiceCount": count, "size": 1, "parts": [], "isTruncated": False, "compressionType": "Zip"}
    )
    with pytest.raises(ExportError, match=message):
        unpack_export("EX", package, _zip(tmp_path / "p.zip", entries), tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())  # what was written before the check is removed


@pytest.mark.parametrize(
    "invoice_hash",
    [None, sha256_b64(b"<b/>"), "not base64!", "ąęść", 5],
    ids=["absent", "another-invoice", "not-base64", "not-ascii", "not-a-string"],
)
def test_a_file_whose_sha_256_is_not_its_records_invoice_hash_is_refused(tmp_path: Path, invoice_hash: object) -> None:
    # InvoiceMetadata.invoiceHash (spec 2.9.0, required): "Skrót SHA256 faktury, zakodowany w
    # formacie Base64". A record without it cannot vouch for its file: refused the same way.
    record = {"ksefNumber": NUMBER, **({"invoiceHash": invoice_hash} if invoice_hash is not None else {})}
    metadata = json.dumps({"invoices": [record]}).encode()
    archive = _zip(tmp_path / "p.zip", {f"{NUMBER}.xml": b"<a/>", "_metadata.json": metadata})
    with pytest.raises(ExportError, match=f"is not what its record's invoiceHash .*says: {NUMBER}"):
        unpack_export("EX", _package("Zip"), archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_a_metadata_only_package_holds_no_invoice_file(tmp_path: Path) -> None:
    package = InvoicePackage.from_dict(
        {"invoiceCount": 1, "size": 1, "parts": [], "isTruncated": False, "compressionType": "Zip"}
    )
    archive = _zip(tmp_path / "p.zip", {"_metadata.json": _listing(NUMBER)})
    result = unpack_export("EX", package, archive, tmp_path / "out", only_metadata=True)
    assert result.files == [] and result.ksef_numbers == [NUMBER]
    archive = _zip(tmp_path / "p.zip", {f"{NUMBER}.xml": b"<a/>", "_metadata.json": _listing(NUMBER)})
    with pytest.raises(ExportError, match="in a metadata-only package"):
        unpack_export("EX", package, archive, tmp_path / "out", only_metadata=True)


# --- a refused package never costs the files already in the folder ---------------------------------
# The reviewer's finding 1: "refused" meant unlinking every path the call had opened, files of an
# earlier export of the same dates included (`ksef invoices download` tells the user to run the
# same range again after a truncated export). docs/security.md: a refused export keeps nothing of
# it; the folder stays as it was.


def _earlier_export(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    kept = {f"{NUMBER}.xml": b"<Faktura>earlier</Faktura>", "notes.txt": b"mine"}
    for name, data in kept.items():
        (folder / name).write_bytes(data)
    return kept


@pytest.mark.parametrize("compression", ["Zip", "TarGz"])
def test_a_refused_package_leaves_the_files_already_in_the_folder(tmp_path: Path, compression: str) -> None:
    out = tmp_path / "out"
    kept = _earlier_export(out)
    entries = {f"{NUMBER}.xml": b"<a/>", f"{OTHER}.xml": b"<b/>", "_metadata.json": _listing(NUMBER)}  # OTHER unlisted
    if compression == "Zip":
        archive = _zip(tmp_path / "p.zip", entries)
    else:
        archive = _tar(tmp_path / "p.tar.gz", [_file(name) for name in entries], entries)
    package = InvoicePackage.from_dict(  # as many files as it says: the one left out of the metadata is named
        {"invoiceCount": 2, "size": 1, "parts": [], "isTruncated": False, "compressionType": compression}
    )
    with pytest.raises(ExportError, match="not listed"):
        unpack_export("EX", package, archive, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == kept  # no temporary folder left either


def test_an_invoice_over_the_cap_leaves_the_files_already_in_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    kept = _earlier_export(out)
    archive = _zip(
        tmp_path / "p.zip", {f"{NUMBER}.xml": b"<a>" + b"x" * 5000 + b"</a>", "_metadata.json": _listing(NUMBER)}
    )
    with pytest.raises(ExportError, match=f"invoice {NUMBER} is larger"):
        unpack_export("EX", _package("Zip"), archive, out, BodyLimits(invoice=1000))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == kept


def test_a_package_checked_whole_replaces_the_same_invoice_and_keeps_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _earlier_export(out)
    archive = _zip(tmp_path / "p.zip", {f"{NUMBER}.xml": b"<a/>", "_metadata.json": _listing(NUMBER)})
    result = unpack_export("EX", _package("Zip"), archive, out)
    assert result.files == [out / f"{NUMBER}.xml"] and (out / f"{NUMBER}.xml").read_bytes() == b"<a/>"
    assert sorted(p.name for p in out.iterdir()) == [f"{NUMBER}.xml", "notes.txt"]


# --- a damaged package is an ExportError, whatever zipfile, gzip or zlib raise ----------------------
# The reviewer's finding 6: unpack_export's docstring says "Anything else is ExportError" and
# docs/security.md lists ExportError for a bad package, yet an encrypted entry was a RuntimeError,
# an unknown compression method a NotImplementedError, damaged deflate data a bare zlib.error.

INVOICE = b"<Faktura>" + b"x" * 5000 + b"</Faktura>"


def _patched_zip(path: Path, patch: Callable[[bytearray, int, int], None]) -> Path:
    """A whole zip package whose invoice entry ``patch(data, local header, central header)`` damages."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("_metadata.json", _listing(NUMBER))
        archive.writestr(f"{NUMBER}.xml", INVOICE)
    data, name = bytearray(path.read_bytes()), f"{NUMBER}.xml".encode()
    local = next(i for i in range(len(data)) if data[i : i + 4] == b"PK\x03\x04" and data[i + 30 :].startswith(name))
    central = next(i for i in range(len(data)) if data[i : i + 4] == b"PK\x01\x02" and data[i + 46 :].startswith(name))
    patch(data, local, central)
    path.write_bytes(bytes(data))
    return path


def _encrypted(data: bytearray, local: int, central: int) -> None:
    data[local + 6] |= 1
    data[central + 8] |= 1


def _method(method: int) -> Callable[[bytearray, int, int], None]:
    def patch(data: bytearray, local: int, central: int) -> None:
        struct.pack_into("<H", data, local + 8, method)
        struct.pack_into("<H", data, central + 10, method)

    return patch


def _bad_deflate(data: bytearray, local: int, central: int) -> None:
    start = local + 30 + len(NUMBER) + 4
    data[start : start + 3] = b"\xff\xff\xff"  # a block of the reserved type 3: "invalid block type"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (_encrypted, "is encrypted"),
        (_method(99), "method 99"),
        (_method(14), "method 14"),  # lzma over deflate data
        (_method(12), "method 12"),  # bzip2 over deflate data
        (_bad_deflate, "cannot be read"),
    ],
    ids=["encrypted", "aes", "lzma", "bzip2", "bad-deflate"],
)
def test_a_damaged_zip_package_is_an_export_error(tmp_path: Path, patch: Any, message: str) -> None:
    archive = _patched_zip(tmp_path / "p.zip", patch)
    with pytest.raises(ExportError, match=message):
        unpack_export("EX", _package("Zip"), archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_a_damaged_tar_gz_stream_is_an_export_error(tmp_path: Path) -> None:
    tar = io.BytesIO()
    _tar(tmp_path / "whole.tar.gz", [_file("_metadata.json"), _file(f"{NUMBER}.xml")],
         {"_metadata.json": _listing(NUMBER), f"{NUMBER}.xml": INVOICE})  # fmt: skip
    tar.write(gzip.decompress((tmp_path / "whole.tar.gz").read_bytes()))
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = deflate.compress(tar.getvalue()[:1024]) + deflate.flush(zlib.Z_FULL_FLUSH)  # the metadata entry
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(first + b"\xff\xff\xff" + bytes(100))  # then a block of the reserved type 3
    with pytest.raises(ExportError, match="cannot be read"):
        unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")


# --- a tar.gz is read one header at a time, each cap applied as it comes ----------------------------
# The reviewer's finding 3: tarfile listed the whole package (getmembers) before any cap applied:
# a GNU long-name header declaring a 1 GiB name was read whole (and echoed in the error), 300,000
# empty entries were all listed before the 10,000 cap was counted, and an entry declaring 4 GiB
# of zeros was inflated just to skip it. docs/security.md: "reading stops as soon as the cap is
# passed; the body is never held whole first".


def _gz(*chunks: bytes) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(deflate.compress(chunk) for chunk in chunks) + deflate.flush()


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE, fmt: Literal[0, 1, 2] = tarfile.GNU_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=fmt)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_a_tar_gz_package_of_any_tar_format_unpacks(tmp_path: Path, fmt: int) -> None:
    entries = {f"{NUMBER}.xml": INVOICE, "_metadata.json": _listing(NUMBER, invoice=INVOICE)}
    archive = tmp_path / "p.tar.gz"
    with tarfile.open(archive, mode="w:gz", format=fmt) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uname = len(data), 1.5, "żółw"  # a pax header in PAX_FORMAT
            tar.addfile(info, io.BytesIO(data))
    result = unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")
    assert result.ksef_numbers == [NUMBER] and result.files[0].read_bytes() == INVOICE


def test_a_long_name_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    name = "a" * 20_000_000  # as the reviewer's 1 GiB, scaled down
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(_gz(_header("././@LongLink", len(name), tarfile.GNUTYPE_LONGNAME), name.encode(),
                            bytes(-len(name) % 512), _header("x.xml", 0), bytes(1024)))  # fmt: skip
    tracemalloc.start()
    with pytest.raises(ExportError, match="extension header") as refused:
        unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000 and len(str(refused.value)) < 300


def test_entries_past_the_cap_are_not_read(tmp_path: Path) -> None:
    numbers = [make_ksef_number("5265877635", "20261201", f"{i:012X}") for i in range(20_000)]
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(_gz(*(_header(f"{n}.xml", 0) for n in numbers), bytes(1024)))
    tracemalloc.start()
    package = InvoicePackage.from_dict({**_package("TarGz").to_dict(), "invoiceCount": 20_000})  # says as many
    with pytest.raises(ExportError, match=r"more than 10 invoice file\(s\) .*BodyLimits.export_entries"):
        unpack_export("EX", package, archive, tmp_path / "out", BodyLimits(export_entries=10))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000  # the 20,000 listed first took ~15 MB


def test_an_entry_declaring_more_than_its_cap_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    # Its header declares 1 GiB, and the package ends after 1 KiB of it: only a reader that
    # inflates the entry (tarfile skipping to the next header) finds out the package is cut.
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(_gz(_header("_metadata.json", 1 << 30), bytes(1024)))
    with pytest.raises(ExportError, match="inflates past the metadata cap"):
        unpack_export("EX", _package("TarGz"), archive, tmp_path / "out", BodyLimits(metadata=1_000_000))


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([_header("x", 0, tarfile.XHDTYPE, tarfile.USTAR_FORMAT)] * 4, "more than 3 extension headers"),
        ([b"\1" * 512], "checksum"),
        ([_header(f"{NUMBER}.xml", 100)[:512], b"x" * 50], "ends inside entry"),
        (
            [_header("_metadata.json", len(_listing())), _listing().ljust(512, b"\0"), bytes(1024), b"x"],
            "after the end of the",
        ),
    ],
    ids=["extension-headers", "checksum", "truncated", "trailing-data"],
)
def test_a_tar_that_is_not_what_it_says_is_an_export_error(tmp_path: Path, chunks: list[bytes], message: str) -> None:
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(_gz(*chunks))
    with pytest.raises(ExportError, match=message):
        unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")


def test_a_sparse_file_behind_a_pax_header_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo(f"{NUMBER}.xml")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": f"{NUMBER}.xml"}
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(_gz(info.tobuf(format=tarfile.PAX_FORMAT), bytes(1024)))
    with pytest.raises(ExportError, match="not plain files"):
        unpack_export("EX", _package("TarGz"), archive, tmp_path / "out")


@pytest.mark.parametrize("compression", ["Zip", "TarGz"])
def test_a_long_entry_name_is_cut_short_in_the_error(tmp_path: Path, compression: str) -> None:
    name = "b" * 900 + ".xml"
    if compression == "Zip":
        archive = _zip(tmp_path / "p.zip", {name: b"<a/>"})
    else:
        archive = _tar(tmp_path / "p.tar.gz", [_file(name)], {name: b"<a/>"})
    with pytest.raises(ExportError, match="characters") as refused:
        unpack_export("EX", _package(compression), archive, tmp_path / "out")
    assert len(str(refused.value)) < 300


# --- a file the rename could not replace is found before anything is moved -------------------------


@pytest.mark.skipif(os.name == "nt", reason="the POSIX rule")
@pytest.mark.parametrize(
    ("user", "file_owner", "folder_owner", "sticky", "replaceable"),
    [
        (1000, 1001, 1002, False, True),  # a plain folder: the rename needs only the folder writable
        (1000, 1001, 1002, True, False),  # a sticky folder (/tmp): another user's file stays
        (1000, 1000, 1002, True, True),  # ... but one's own file is replaced
        (1000, 1001, 1000, True, True),  # ... and any in one's own folder
        (0, 1001, 1002, True, True),  # ... and root replaces anything
    ],
)
def test_a_file_in_a_sticky_folder_is_replaceable_only_as_the_os_allows(
    monkeypatch: pytest.MonkeyPatch, user: int, file_owner: int, folder_owner: int, sticky: bool, replaceable: bool
) -> None:
    # rename(2), EPERM: "The directory containing oldpath has the sticky bit (S_ISVTX) set and the
    # process's effective user ID is neither the user ID of the file to be deleted nor that of the
    # directory containing it, and the process is not privileged"; the same holds for newpath.
    monkeypatch.setattr(os, "geteuid", lambda: user)
    found = os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, file_owner, 0, 0, 0, 0, 0))
    folder = os.stat_result(
        (stat.S_IFDIR | 0o777 | (stat.S_ISVTX if sticky else 0), 0, 0, 1, folder_owner, 0, 0, 0, 0, 0)
    )
    assert _replaceable(Path("x.xml"), found, folder) is replaceable
