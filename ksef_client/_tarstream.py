"""A tar.gz archive written front to back into any writer (KSeF's ``TarGz`` batch packages).

The same shape as ``_zipstream.ZipStream``: members go in as ``(name, bytes)``, nothing is read
back, and ``close()`` returns the archive's size; the gzip stream is level 1 (invoices still
shrink several-fold, and the build stays fast).
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable
from typing import IO, cast

from ksef_client._zipstream import Writable


class _Counting:
    """Passes bytes on and counts them (tarfile's stream mode needs only ``write``)."""

    def __init__(self, out: Writable) -> None:
        self.out, self.size = out, 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.size += len(data)
        return len(data)


class TarGzStream:
    """``TarGzStream(out).write_all(members); size = stream.close()``."""

    def __init__(self, out: Writable) -> None:
        self._out = _Counting(out)
        # gzip by hand: tarfile's stream mode takes no compression level before Python 3.12.
        self._gzip = gzip.GzipFile(fileobj=cast(IO[bytes], self._out), mode="wb", compresslevel=1, mtime=0)
        self._archive = tarfile.open(fileobj=self._gzip, mode="w|")  # noqa: SIM115 - closed by close()

    def write_all(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """Add ``(name, bytes)`` members in order (regular files, mode 0644)."""
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            self._archive.addfile(info, io.BytesIO(data))

    def close(self) -> int:
        """End the archive; return its size in bytes."""
        self._archive.close()
        self._gzip.close()
        return self._out.size
