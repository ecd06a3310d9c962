"""A strict, streaming reader of the tar inside a ``TarGz`` export package.

``tarfile`` lists an archive whole before the caller sees its first entry, and reads any GNU
long-name or pax header whole, whatever size it declares: a package of a megabyte could make it
allocate gigabytes or inflate gigabytes just to skip them. This reader takes one 512-byte header
at a time from the (gzip) stream and hands each plain file to the caller before it reads on, so
the caller's caps (entry count, size of each file) apply as the package is read.

What it reads: ustar/GNU/v7 headers of plain files, pax extended headers (``path`` and ``size``
are honoured) and GNU long names, each at most ``MAX_EXTENSION`` bytes. Anything else (links,
directories, devices, sparse files) is ``NotPlainFile``; a damaged header is ``TarFormatError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

BLOCK = 512
# The largest pax or GNU long-name header read: KSeF's entry names are about 40 characters, and
# a pax header holding a few times and a path fits in a few hundred bytes.
MAX_EXTENSION = 1024
# Extension headers (pax, pax global, GNU long name) allowed before one entry.
MAX_EXTENSIONS_PER_ENTRY = 3
PLAIN_FILE_TYPES = (b"0", b"\0", b"7")
PAX, PAX_GLOBAL, GNU_LONG_NAME = b"x", b"g", b"L"
ZERO_BLOCK = bytes(BLOCK)
# What may follow the end-of-archive block: zeros padding the archive to its record size (tar
# writes 10 KiB records). Reading to the end of the stream lets gzip check its CRC.
MAX_TRAILER = 64 * 1024
SHOWN = 80


class Stream(Protocol):
    """The decompressed tar: ``read`` gives at most ``size`` bytes, fewer only at its end."""

    def read(self, size: int, /) -> bytes: ...


class TarFormatError(ValueError):
    """Not a tar archive this reader takes: a damaged or truncated header, an oversized extension."""


class NotPlainFile(TarFormatError):
    """An entry that is not a plain file (a link, a directory, a device, a sparse file)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{shown(name)} is not a plain file")
        self.name = name


def shown(name: str) -> str:
    """``name`` for a message: quoted, and cut short when long (a name comes from the server)."""
    return repr(name) if len(name) <= SHOWN else repr(name[:SHOWN]) + f"... ({len(name)} characters)"


class TarMember:
    """One plain file of the archive: ``name``, ``size`` and ``read`` of its bytes (valid until
    the reader moves on to the next entry)."""

    def __init__(self, name: str, size: int, stream: Stream) -> None:
        self.name, self.size = name, size
        self._stream = stream
        self._left = size
        self._what = f"entry {shown(name)}"

    def read(self, size: int = -1, /) -> bytes:
        wanted = self._left if size < 0 else min(size, self._left)
        data = _read_exact(self._stream, wanted, self._what)
        self._left -= len(data)
        return data

    def skip_rest(self) -> None:
        """Read past what the caller left unread and the padding to the next header."""
        while self._left:
            self.read(1 << 20)
        _read_exact(self._stream, -self.size % BLOCK, self._what)

    def __enter__(self) -> TarMember:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def tar_members(stream: Stream) -> Iterator[TarMember]:
    """Each plain file of the tar in ``stream``, in archive order; ends at the end-of-archive block
    (or at the end of the stream on a block boundary)."""
    overrides: dict[str, str] = {}
    extensions = 0
    while True:
        block = _read_exact(stream, BLOCK, "a header", allow_end=True)
        if not block or block == ZERO_BLOCK:
            return
        name, size, kind = _header(block)
        if kind in (PAX, PAX_GLOBAL, GNU_LONG_NAME):
            extensions += 1
            if extensions > MAX_EXTENSIONS_PER_ENTRY:
                raise TarFormatError(f"more than {MAX_EXTENSIONS_PER_ENTRY} extension headers before one entry")
            overrides.update(_extension(stream, kind, size))
            continue
        name = overrides.get("path", name)
        size = _number(overrides["size"].encode(), 10, "pax size") if "size" in overrides else size
        overrides, extensions = {}, 0
        if kind not in PLAIN_FILE_TYPES:
            raise NotPlainFile(name)
        member = TarMember(name, size, stream)
        yield member
        member.skip_rest()


def finish(stream: Stream) -> None:
    """Read what follows the end of the archive to the end of the stream (where gzip checks its
    CRC, so a package damaged anywhere is refused): zeros only, at most ``MAX_TRAILER`` bytes."""
    trailer = _read_exact(stream, MAX_TRAILER + 1, "", allow_short=True)
    if len(trailer) > MAX_TRAILER or trailer.strip(b"\0"):
        raise TarFormatError("data after the end of the archive")


def _header(block: bytes) -> tuple[str, int, bytes]:
    """``(name, size, type)`` of a header block whose checksum is right."""
    stored = _number(block[148:156], 8, "checksum")
    counted = block[:148] + block[156:]  # the checksum field itself counts as 8 spaces (256)
    unsigned = 256 + sum(counted)
    if stored != unsigned and stored != unsigned - 256 * sum(b > 127 for b in counted):  # old tars: signed bytes
        raise TarFormatError("a header with a wrong checksum (not a tar, or damaged)")
    name = _c_string(block[0:100])
    if block[257:263] == b"ustar\0":  # POSIX ustar: a long name is split into a prefix and a name
        prefix = _c_string(block[345:500])
        name = f"{prefix}/{name}" if prefix else name
    return name, _number(block[124:136], 8, "size"), block[156:157]


def _extension(stream: Stream, kind: bytes, size: int) -> dict[str, str]:
    """What a pax header or GNU long name says about the next entry (a pax global header: nothing)."""
    if size > MAX_EXTENSION:
        raise TarFormatError(f"an extension header ({kind!r}) of {size} bytes; at most {MAX_EXTENSION} are read")
    data = _read_exact(stream, size + -size % BLOCK, "an extension header")[:size]
    if kind == GNU_LONG_NAME:
        return {"path": _c_string(data)}
    records = _pax_records(data)
    return records if kind == PAX else {}


def _pax_records(data: bytes) -> dict[str, str]:
    """The ``"<length> <key>=<value>\\n"`` records of a pax header; a sparse file is refused."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position] != 0:
        space = data.find(b" ", position)
        length = _number(data[position:space], 10, "pax record length") if space > position else 0
        record = data[position : position + length]
        if length <= space - position + 1 or len(record) != length or not record.endswith(b"\n"):
            raise TarFormatError("a damaged pax header")
        key, equals, value = record[space - position + 1 : -1].partition(b"=")
        if not equals:
            raise TarFormatError("a damaged pax header")
        if key.startswith(b"GNU.sparse"):
            raise NotPlainFile(records.get("path", "(a sparse file)"))
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        position += length
    return records


def _number(field: bytes, base: int, what: str) -> int:
    """A header's octal (or a pax record's decimal) number; base-256 sizes (8 GiB and more) and
    anything else are refused."""
    digits = field.split(b"\0", 1)[0].strip(b" ")
    allowed = b"01234567" if base == 8 else b"0123456789"
    if not digits:
        return 0
    if len(digits) > 20 or digits.strip(allowed):
        raise TarFormatError(f"a header whose {what} is not a number")
    return int(digits, base)


def _c_string(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


def _read_exact(stream: Stream, size: int, what: str, allow_end: bool = False, allow_short: bool = False) -> bytes:
    """``size`` bytes; ``TarFormatError`` when the stream ends sooner (``b""`` at its very end
    when ``allow_end``; what there is with ``allow_short``)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            if allow_short or (allow_end and got == 0):
                return b"".join(parts)
            raise TarFormatError(f"the archive ends inside {what}")
        parts.append(data)
        got += len(data)
    return b"".join(parts)
