"""Batch packages: zip the invoices, split, encrypt and hash the parts, on disk, never whole in memory.

``BatchPackage.build(invoices, key)`` streams each invoice into a zip whose bytes are cut, as they
are written, into parts of at most ``part_size`` bytes (KSeF: 100 MB, MB = 10^6 B); each part is
encrypted with the session's AES key into its own temporary file, and sizes and SHA-256 hashes are
recorded on the way (no second pass over the zip). KSeF's limits (10,000 invoices, 50 parts, 5 GB)
are checked before anything is sent.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import sys
import tempfile
import threading
import unicodedata
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

import httpx

from ksef_client._tarstream import TarGzStream
from ksef_client._threads import is_async_callable
from ksef_client._zipstream import Compression, ZipStream
from ksef_client.crypto import SymmetricKey, digest_b64
from ksef_client.errors import BatchError, BatchFileNameError

if TYPE_CHECKING:
    from ksef_client.schemas import LimitsInForce

MAX_INVOICES = 10_000  # KSeF's default (schemas.KSEF_LIMITS); a context's own: LimitsInForce
# How a batch package is compressed: a zip (deflated or stored members) or a tar.gz.
PackageCompression = Compression | Literal["targz"]
MAX_PARTS = 50
MAX_PART_BYTES = 100_000_000
MAX_PACKAGE_BYTES = 5_000_000_000
MAX_BATCH_INVOICE_BYTES = 3_000_000  # KSeF's default with attachments; plain invoices: 1 MB
CHUNK = 1 << 20

Progress = Callable[[str, int, int], None]


def check_progress(progress: Progress | None) -> None:
    """``TypeError`` for an ``async def`` progress callback: it is called, never awaited, so it
    would never run (from ``AsyncKSeF`` a plain one runs on the event loop's thread, where it may
    hand the numbers on, e.g. with ``queue.put_nowait``)."""
    if progress is not None and is_async_callable(progress):
        raise TypeError(
            "progress: a plain function (stage, done, total) -> None, not an async def one (it would "
            "never be awaited); AsyncKSeF calls it on the event loop's thread"
        )


class SupportsToXml(Protocol):
    """An invoice object (``ksef_client.invoice.Invoice``): sent as the bytes of its ``to_xml()``."""

    def to_xml(self) -> bytes: ...


# An invoice to send in a batch: its XML (bytes, or an ``Invoice``: named invoice-NNNNN.xml by its
# position), a path to it (named as the file), or a (file name, XML) pair.
InvoiceSource = bytes | str | os.PathLike[str] | SupportsToXml | tuple[str, bytes | SupportsToXml]
# A check of each invoice as it goes into the package: (position from 1, file name, bytes); it
# raises to stop the build (``sending`` checks the form's XSD with it).
InvoiceCheck = Callable[[int, str, bytes], None]


@dataclass
class EncryptedPart:
    """One encrypted part in a temporary file, with what ``fileParts`` declares for it."""

    ordinal_number: int
    size: int
    hash: str
    file: IO[bytes] = field(repr=False)

    def read(self) -> bytes:
        """The encrypted bytes (one part, at most ~100 MB)."""
        self.file.seek(0)
        return self.file.read()

    def chunks(self) -> Iterator[bytes]:
        """The encrypted bytes from the start, ``CHUNK`` at a time."""
        self.file.seek(0)
        while chunk := self.file.read(CHUNK):
            yield chunk


class UploadBody:
    """A part as an httpx request body (sync clients): streamed from its file, a megabyte at a time,
    and iterable again from the start, so a retried PUT sends it whole again."""

    def __init__(self, part: EncryptedPart) -> None:
        self._part = part

    def __iter__(self) -> Iterator[bytes]:
        return self._part.chunks()


class AsyncUploadBody:
    """``UploadBody`` for async clients (httpx takes a body that is both kinds as a sync one)."""

    def __init__(self, part: EncryptedPart) -> None:
        self._part = part

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._part.chunks():
            yield chunk


@dataclass(frozen=True)
class PartUpload:
    """One part's PUT to the presigned link ``POST /sessions/batch`` gave for it."""

    method: str
    url: str
    headers: dict[str, str]
    part: EncryptedPart


def part_uploads(requests: Iterable[Any], parts: Iterable[EncryptedPart]) -> list[PartUpload]:
    """Pair each upload request of the opened session (``partUploadRequests``) with its part."""
    by_number = {p.ordinal_number: p for p in parts}
    uploads = []
    for request in requests:
        part = by_number.get(request.ordinal_number)
        if part is None:
            raise BatchError(f"KSeF asked for part {request.ordinal_number}, which the package does not have")
        raw = request.headers.to_dict() if hasattr(request.headers, "to_dict") else dict(request.headers or {})
        # Presigned URLs carry their own authorization: never send ours. The body streams from the
        # part's file: its length is declared, so no chunked encoding (which blob storage refuses
        # for a single PUT).
        headers = {str(k): str(v) for k, v in raw.items() if str(k).lower() != "authorization"}
        uploads.append(
            PartUpload(str(request.method), str(request.url), {**headers, "Content-Length": str(part.size)}, part)
        )
    return uploads


def check_upload(response: httpx.Response, ordinal: int) -> None:
    """``BatchError`` unless storage took the part."""
    if response.status_code not in (200, 201):
        raise BatchError(f"upload of part {ordinal} failed: HTTP {response.status_code} {response.text[:200]}")


@dataclass
class BatchPackage:
    """A zip of invoices, encrypted in parts, ready to declare and upload."""

    invoice_count: int
    file_size: int
    file_hash: str
    parts: list[EncryptedPart]
    compression_type: str = "Zip"

    def batch_file_info(self) -> dict[str, object]:
        """The ``batchFile`` object of ``POST /sessions/batch``."""
        return {
            "fileSize": self.file_size,
            "fileHash": self.file_hash,
            "compressionType": self.compression_type,
            "fileParts": [
                {"ordinalNumber": p.ordinal_number, "fileSize": p.size, "fileHash": p.hash} for p in self.parts
            ],
        }

    def close(self) -> None:
        """Delete the temporary files."""
        for part in self.parts:
            part.file.close()

    def __enter__(self) -> BatchPackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def build(
        cls,
        invoices: Iterable[InvoiceSource],
        key: SymmetricKey,
        *,
        part_size: int = MAX_PART_BYTES,
        progress: Progress | None = None,
        compression: PackageCompression = "deflate",
        check: InvoiceCheck | None = None,
        limits: LimitsInForce | None = None,
        stop: threading.Event | None = None,
    ) -> BatchPackage:
        """Zip, split, encrypt and hash; ``BatchError`` when KSeF's limits would be broken.

        ``invoices``: bytes, ``Invoice`` objects (their ``to_xml()``), paths, or ``(file name, bytes
        or Invoice)`` pairs (``InvoiceSource``); bytes and objects are named ``invoice-00001.xml``...
        by their position.

        ``compression="stored"`` skips deflate: the build is faster, the upload 2-5x larger.
        ``compression="targz"`` builds KSeF's other package format, a tar.gz (one gzip stream
        over the whole archive: smaller than a zip of small invoices, built in one thread).
        ``check(position, name, xml)`` is called for each invoice before it is written; what it
        raises ends the build (the parts written so far are deleted). ``limits``: the number and
        sizes of invoices the context may send in a batch (KSeF's defaults when not given).
        ``stop``, checked before each invoice, ends it the same way (``BatchError``) once set: from
        another thread, e.g. when the async caller was cancelled. ``progress`` is a plain function
        (``TypeError`` for an ``async def`` one, which would never run).
        """
        if not 1 <= part_size <= MAX_PART_BYTES:
            raise ValueError(f"part_size: 1..{MAX_PART_BYTES} bytes")
        check_progress(progress)
        if limits is None:
            from ksef_client.schemas import LimitsInForce  # noqa: PLC0415  (lxml: only for a build)

            limits = LimitsInForce()
        names: set[str] = set()
        with _Hashing() as hashing:
            parts = _EncryptedParts(key, part_size, hashing, progress)
            try:
                package = TarGzStream(parts) if compression == "targz" else ZipStream(parts, compression=compression)
                package.write_all(_checked(invoices, progress, names, check, limits, stop))
                if not names:
                    raise BatchError("no invoices to send")
                size = package.close()
                parts.close()
            except BaseException:
                parts.discard()
                raise
        kind = "TarGz" if compression == "targz" else "Zip"
        return cls(len(names), size, digest_b64(parts.package_hash), parts.finished(), kind)


def _name_and_bytes(source: InvoiceSource, index: int, checked_after: bool) -> tuple[str, bytes]:
    if isinstance(source, tuple):
        name, xml = source
        return name, _xml(xml, index, checked_after)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return path.name, path.read_bytes()
    return f"invoice-{index:05d}.xml", _xml(source, index, checked_after)


def invoice_bytes(
    xml: bytes | SupportsToXml, what: str = "invoice: expected bytes or an Invoice", *, checked_after: bool = False
) -> bytes:
    """The XML of an invoice given as bytes (or bytearray) or as an object with ``to_xml()`` (an
    ``Invoice``); anything else is a ``TypeError`` starting with ``what``. ``checked_after``: the
    caller checks the bytes itself (against its session's form and its context's limits), so an
    ``Invoice`` is written without its own check, which knows KSeF's default limits only."""
    data: object = xml
    if not isinstance(xml, bytes | bytearray) and callable(getattr(xml, "to_xml", None)):
        data = _written(xml, checked_after)
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"{what}, got {type(data).__name__}")
    return bytes(data)


def _written(invoice: SupportsToXml, checked_after: bool) -> object:
    # An Invoice exists only once its module is loaded: no import (and no xsdata) for other objects.
    model = sys.modules.get("ksef_client.invoice.model")
    if checked_after and model is not None and isinstance(invoice, model.Invoice):
        return invoice.to_xml(validate=False)
    return invoice.to_xml()


def _xml(xml: bytes | SupportsToXml, index: int, checked_after: bool) -> bytes:
    # Refused by what it is: it was read as a path ("expected str, bytes or os.PathLike object, not Invoice").
    what = f"invoice {index}: expected bytes, an Invoice (to_xml()), a path or a (file name, bytes) pair"
    return invoice_bytes(xml, what, checked_after=checked_after)


# Invoices checked one after another before any of them is zipped: libxml2 then finds the compiled
# schema still in the CPU's caches, where zipping and encrypting between two checks evicted it and
# each check cost about twice as much. Bounded in bytes and count, so memory stays flat. Runs of
# up to 1,024 (was 128) build 5,000 checked invoices with 15-20 % less CPU (median of 12
# alternating builds: 0.46 s against 0.59 s of one-line invoices; 0.94 against 1.06 of 20-line
# ones): each run starts with the schema out of the caches. The byte bound ends a run of 20-line
# invoices at about 430: a bound of 1, 2 or 4 MiB built them alike (1.26-1.31 s of CPU, medians of
# 12), and 4 MiB waiting for the zip cost the client 5 MB more while sending.
CHECK_RUN_BYTES = 2 * 1024 * 1024
CHECK_RUN_INVOICES = 1024


def _checked(
    invoices: Iterable[InvoiceSource],
    progress: Progress | None,
    names: set[str],
    check: InvoiceCheck | None,
    limits: LimitsInForce,
    stop: threading.Event | None = None,
) -> Iterator[tuple[str, bytes]]:
    """The invoices as ``(name, bytes)``, each checked against the context's ``limits`` (and by
    ``check``) as it is read; ``names`` collects their (unique) names, so its size is the count.
    Once ``stop`` is set no further invoice is read. With a ``check``, invoices are read and
    checked in runs (``CHECK_RUN_BYTES``, ``CHECK_RUN_INVOICES``) before they are passed on."""
    run: list[tuple[int, str, bytes]] = []
    run_bytes = index = 0
    for index, source in enumerate(invoices, start=1):
        name, data = _read(source, index, names, limits, stop, check is not None)
        if check is not None:
            check(index, name, data)
        names.add(name)
        run.append((index, name, data))
        run_bytes += len(data)
        if check is None or len(run) >= CHECK_RUN_INVOICES or run_bytes >= CHECK_RUN_BYTES:
            yield from _passed_on(run, progress)
            run, run_bytes = [], 0
    yield from _passed_on(run, progress)
    if progress and index % 100:
        progress("zip", index, 0)  # the final count, once


def _read(
    source: InvoiceSource,
    index: int,
    names: set[str],
    limits: LimitsInForce,
    stop: threading.Event | None,
    checked_after: bool,
) -> tuple[str, bytes]:
    """Invoice ``index``, within the context's ``limits`` in number and size, with a name not yet
    taken."""
    if stop is not None and stop.is_set():
        raise BatchError(f"the build was stopped before invoice {index} (stop is set); nothing was kept")
    most = limits.covering(count=index).max_invoices
    if index > most:
        raise BatchError(f"more than {most} invoices; KSeF accepts at most {most} per batch")
    name, data = _name_and_bytes(source, index, checked_after)
    _check_file_name(name, index, names)
    if not data:
        raise BatchError(f"invoice {index} ({name}) is empty")
    allowed = limits.covering(size=len(data))
    largest = max(allowed.max_invoice_bytes, allowed.max_invoice_with_attachment_bytes)  # attachments or not
    if len(data) > largest:
        raise BatchError(f"invoice {index} ({name}) has {len(data)} bytes; at most {largest}")
    return name, data


# SessionInvoiceStatusResponse.invoiceFileName, the name KSeF reports a batch invoice by: at most
# 128 characters (the spec's maxLength). Neither the spec nor the Ministry's docs say which
# characters a name may have, or what KSeF makes of a folder in the package: a name is one file
# name, with no separator and no character a terminal or a log would act on.
MAX_FILE_NAME = 128
_SEPARATORS = ("/", "\\")


def _check_file_name(name: object, index: int, names: Collection[str] = ()) -> str:
    """``name``, the file name of invoice ``index`` in a batch package, if KSeF can take it:
    ``BatchFileNameError`` (a ``ValueError``) for one that is empty, longer than
    ``MAX_FILE_NAME`` characters, holds a ``/`` or ``\\`` (a path: the archive would hold a folder,
    or a name that leaves it: ``../x.xml``), is ``.`` or ``..``, holds a control character (C0,
    DEL, C1) or a lone surrogate (no UTF-8), or is among ``names`` (taken already); ``TypeError``
    for a name that is not a ``str``. The message shows the name as ``repr``, cut short."""
    if not isinstance(name, str):
        raise TypeError(f"invoice {index}: its file name must be a str, got {type(name).__name__}")
    # The common name passes in C calls only (0.2 µs; the full look costs 0.5 µs a name, 5 ms per
    # 10,000 invoices).
    usual = 0 < len(name) <= MAX_FILE_NAME and name.isprintable() and "/" not in name and "\\" not in name
    problem = None if usual and name not in (".", "..") else _file_name_problem(name)
    if problem is not None:
        raise BatchFileNameError(f"invoice {index}: file name {_shown(name)} {problem}")
    if name in names:
        raise BatchFileNameError(f"invoice {index}: two invoices named {_shown(name)} in one package")
    return name


def _file_name_problem(name: str) -> str | None:
    """What is wrong with a file name that is empty, long, holds a separator or is not printable
    (a name ``str.isprintable`` refuses may still be fine: a no-break space, say)."""
    problem = None
    if not name:
        problem = "is empty"
    elif len(name) > MAX_FILE_NAME:
        problem = f"has {len(name)} characters; KSeF takes at most {MAX_FILE_NAME} (invoiceFileName)"
    elif any(separator in name for separator in _SEPARATORS) or name in (".", ".."):
        problem = "is a path, not a file name (no '/' or '\\', not '.' or '..')"
    elif not name.isprintable() and any(unicodedata.category(character) in ("Cc", "Cs") for character in name):
        # isprintable first (C, at once): a name per character through unicodedata cost 26 ms per
        # 10,000 invoices, a tenth of building their package.
        problem = "holds a control character (or a lone surrogate)"
    return problem


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 60 else repr(name[:60]) + f"... ({len(name)} characters)"


def _passed_on(run: list[tuple[int, str, bytes]], progress: Progress | None) -> Iterator[tuple[str, bytes]]:
    for index, name, data in run:
        yield name, data
        if progress and index % 100 == 0:
            progress("zip", index, 0)


class _Hashing:
    """SHA-256 updates on a worker thread, in order, while the caller encrypts the next chunk.

    hashlib releases the GIL on large updates, so hashing the plain and the encrypted bytes costs
    (almost) no time beside AES. At most a few chunks wait, so memory stays bounded.
    """

    WINDOW = 4

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ksef-sha256")
        self._pending: deque[concurrent.futures.Future[None]] = deque()

    def update(self, digest: hashlib._Hash, data: bytes) -> None:
        """``digest.update(data)``, later (in submission order)."""
        self._pending.append(self._pool.submit(digest.update, data))
        while len(self._pending) > self.WINDOW:
            self._pending.popleft().result()

    def wait(self) -> None:
        """Until every update so far is done."""
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> _Hashing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()
        self._pool.shutdown()


class _EncryptedParts:
    """Where the zip is written: its bytes hashed whole and cut into parts of ``part_size``, each part
    encrypted (AES-256-CBC, padded on its own) into a temporary file and hashed, chunk by chunk.

    AES runs on ``CHUNK``-sized pieces while the deflate workers go on (cryptography releases the
    GIL), so encrypting costs little beside zipping, and the zip is never read back from disk.
    """

    def __init__(self, key: SymmetricKey, part_size: int, hashing: _Hashing, progress: Progress | None) -> None:
        self.package_hash = hashlib.sha256()
        self._key, self._part_size, self._hashing, self._progress = key, part_size, hashing, progress
        self._chunk = min(CHUNK, part_size)
        self._size = 0
        self._pending = bytearray()
        self._done: list[tuple[int, IO[bytes], hashlib._Hash]] = []
        self._part: _OpenPart | None = None

    def write(self, data: bytes) -> int:
        """Take the next bytes of the zip."""
        self._size += len(data)
        if self._size > MAX_PACKAGE_BYTES:
            raise BatchError(f"the package passes {MAX_PACKAGE_BYTES} bytes; KSeF accepts at most that")
        self._pending += data
        if len(self._pending) >= self._chunk:
            self._encrypt_pending(final=False)
        return len(data)

    def close(self) -> None:
        """Encrypt what is left and finish the last part."""
        self._encrypt_pending(final=True)
        if self._part is not None:
            self._finish_part()

    def finished(self) -> list[EncryptedPart]:
        """The parts, once the hashing is done."""
        return [
            EncryptedPart(ordinal, size, digest_b64(digest), file)
            for ordinal, (size, file, digest) in enumerate(self._done, start=1)
        ]

    def discard(self) -> None:
        """Delete every temporary file (the build failed)."""
        for _, file, _ in self._done:
            file.close()
        if self._part is not None:
            self._part.file.close()

    def _encrypt_pending(self, *, final: bool) -> None:
        start, pending = 0, self._pending
        while len(pending) - start >= self._chunk or (final and start < len(pending)):
            part = self._part or self._open_part()
            end = start + min(CHUNK, self._part_size - part.plain, len(pending) - start)
            chunk = bytes(pending[start:end])
            self._hashing.update(self.package_hash, chunk)
            part.add(chunk, self._hashing)
            start = end
            if part.plain == self._part_size:
                self._finish_part()
        del pending[:start]

    def _open_part(self) -> _OpenPart:
        if len(self._done) == MAX_PARTS:
            raise BatchError(
                f"more than {MAX_PARTS} parts of {self._part_size} bytes; KSeF accepts at most {MAX_PARTS}"
            )
        self._part = _OpenPart(self._key)
        return self._part

    def _finish_part(self) -> None:
        assert self._part is not None
        self._done.append(self._part.finish(self._hashing))
        self._part = None
        if self._progress:
            self._progress("encrypt", len(self._done), 0)


class _OpenPart:
    """The part being written: its temporary file, encryptor and hash of the encrypted bytes."""

    def __init__(self, key: SymmetricKey) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - lives on in EncryptedPart; BatchPackage.close() closes it
        self.plain = 0
        self._size = 0
        self._digest = hashlib.sha256()
        self._encryptor = key.encryptor()

    def add(self, chunk: bytes, hashing: _Hashing) -> None:
        self.plain += len(chunk)
        self._write(self._encryptor.update(chunk), hashing)

    def finish(self, hashing: _Hashing) -> tuple[int, IO[bytes], hashlib._Hash]:
        self._write(self._encryptor.finalize(), hashing)
        self.file.flush()
        return self._size, self.file, self._digest

    def _write(self, block: bytes, hashing: _Hashing) -> None:
        self.file.write(block)
        hashing.update(self._digest, block)
        self._size += len(block)
