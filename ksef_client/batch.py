"""Batch packages: zip the invoices, split, encrypt and hash the parts, on disk, never whole in memory.

``BatchPackage.build(invoices, key)`` streams each invoice into a zip in a temporary file, cuts the
zip into parts of at most ``part_size`` bytes (KSeF: 100 MB, MB = 10^6 B), encrypts each part with
the session's AES key into its own temporary file, and records sizes and SHA-256 hashes. KSeF's
limits (10,000 invoices, 50 parts, 5 GB) are checked before anything is sent.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ksef_client._zipstream import Compression, ZipStream
from ksef_client.crypto import SymmetricKey
from ksef_client.errors import BatchError

MAX_INVOICES = 10_000
MAX_PARTS = 50
MAX_PART_BYTES = 100_000_000
MAX_PACKAGE_BYTES = 5_000_000_000
MAX_BATCH_INVOICE_BYTES = 3_000_000  # with attachments; plain invoices stay under 1 MB
CHUNK = 1 << 20

Progress = Callable[[str, int, int], None]
InvoiceSource = bytes | str | Path | tuple[str, bytes]


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


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


@dataclass
class BatchPackage:
    """A zip of invoices, encrypted in parts, ready to declare and upload."""

    invoice_count: int
    file_size: int
    file_hash: str
    parts: list[EncryptedPart]

    def batch_file_info(self) -> dict[str, object]:
        """The ``batchFile`` object of ``POST /sessions/batch``."""
        return {
            "fileSize": self.file_size,
            "fileHash": self.file_hash,
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
        cls, invoices: Iterable[InvoiceSource], key: SymmetricKey, *, part_size: int = MAX_PART_BYTES,
        progress: Progress | None = None, compression: Compression = "deflate",
    ) -> BatchPackage:  # fmt: skip
        """Zip, split, encrypt and hash; ``BatchError`` when KSeF's limits would be broken.

        ``compression="stored"`` skips deflate: the build is ~5x faster, the upload ~5x larger.
        """
        if not 1 <= part_size <= MAX_PART_BYTES:
            raise ValueError(f"part_size: 1..{MAX_PART_BYTES} bytes")
        with tempfile.TemporaryFile() as archive:
            count, size = _write_zip(archive, invoices, progress, compression)
            if size > MAX_PACKAGE_BYTES:
                raise BatchError(f"the package has {size} bytes; KSeF accepts at most {MAX_PACKAGE_BYTES}")
            part_count = max(1, -(-size // part_size))
            if part_count > MAX_PARTS:
                raise BatchError(f"{part_count} parts of {part_size} bytes; KSeF accepts at most {MAX_PARTS}")
            archive.seek(0)
            package_hash = hashlib.sha256()
            parts = []
            with _Hashing() as hashing:
                for ordinal in range(1, part_count + 1):
                    parts.append(_encrypt_part(archive, ordinal, part_size, key, package_hash, hashing))
                    if progress:
                        progress("encrypt", ordinal, part_count)
        return cls(count, size, _b64(package_hash.digest()), parts)


def _name_and_bytes(source: InvoiceSource, index: int) -> tuple[str, bytes]:
    if isinstance(source, tuple):
        return source
    if isinstance(source, bytes):
        return f"invoice-{index:05d}.xml", source
    path = Path(source)
    return path.name, path.read_bytes()


def _write_zip(
    archive: IO[bytes], invoices: Iterable[InvoiceSource], progress: Progress | None, compression: Compression
) -> tuple[int, int]:
    package = ZipStream(archive, compression=compression)
    names: set[str] = set()
    package.write_all(_checked(invoices, progress, names))
    if not names:
        raise BatchError("no invoices to send")
    return len(names), package.close()


def _checked(
    invoices: Iterable[InvoiceSource], progress: Progress | None, names: set[str]
) -> Iterator[tuple[str, bytes]]:
    """The invoices as ``(name, bytes)``, each checked against KSeF's limits as it is read; ``names``
    collects their (unique) names, so its size is the count."""
    for index, source in enumerate(invoices, start=1):
        if index > MAX_INVOICES:
            raise BatchError(f"more than {MAX_INVOICES} invoices; KSeF accepts at most {MAX_INVOICES} per batch")
        name, data = _name_and_bytes(source, index)
        if not data:
            raise BatchError(f"invoice {index} ({name}) is empty")
        if len(data) > MAX_BATCH_INVOICE_BYTES:
            raise BatchError(f"invoice {index} ({name}) has {len(data)} bytes; at most {MAX_BATCH_INVOICE_BYTES}")
        if name in names:
            raise BatchError(f"two invoices named {name!r} in one package")
        names.add(name)
        yield name, data
        if progress and index % 100 == 0:
            progress("zip", index, 0)


def _chunks(source: IO[bytes], size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


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


def _encrypt_part(
    archive: IO[bytes], ordinal: int, part_size: int, key: SymmetricKey, package_hash: hashlib._Hash,
    hashing: _Hashing,
) -> EncryptedPart:  # fmt: skip
    def plain() -> Iterator[bytes]:
        for chunk in _chunks(archive, part_size):
            hashing.update(package_hash, chunk)
            yield chunk

    out = tempfile.TemporaryFile()  # noqa: SIM115 - lives on in EncryptedPart; BatchPackage.close() closes it
    digest = hashlib.sha256()
    size = 0
    for block in key.encrypt_stream(plain()):
        out.write(block)
        hashing.update(digest, block)
        size += len(block)
    out.flush()
    hashing.wait()
    return EncryptedPart(ordinal, size, _b64(digest.digest()), out)
