"""The size of a zip's central directory, read from its end records before ``zipfile`` opens it.

``zipfile.ZipFile`` reads the whole central directory into one ``ZipInfo`` per record as it opens
a file, and stops only where the directory's declared size ends (the record count of the end
record is not what bounds it). A directory of 46-byte records in a 1 GB package would be some
20 million objects, gigabytes of memory, before the first entry could be refused; a package of
KSeF's at most 10,000 invoices has a directory of about a megabyte. So the end records (APPNOTE
6.3.10, 4.3.14-16: the end of central directory record, and the ZIP64 locator and end record
beside it) are read first and a directory past the caller's bound is refused unread.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

_END = struct.Struct("<4s4H2LH")  # signature, disks (2), entries (2), size, offset, comment length
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # signature, disk, offset of the ZIP64 end record, disks
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")  # signature, size, versions (2), disks (2), entries (2), size, offset
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_MOST_COMMENT = 0xFFFF


def central_directory_size(file: BinaryIO) -> int | None:
    """The size in bytes the zip in ``file`` declares for its central directory (its ZIP64 end
    record's when it has one); ``None`` when no end record is found (``zipfile`` then refuses the
    file as not a zip)."""
    length = file.seek(0, os.SEEK_END)
    tail_start = max(0, length - _END.size - _MOST_COMMENT)
    file.seek(tail_start)
    tail = file.read()
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or at + _END.size > len(tail):
        return None
    zip64 = _zip64_sizes(file, tail_start + at, length)
    return max(zip64) if zip64 else int(_END.unpack_from(tail, at)[5])


def _zip64_sizes(file: BinaryIO, end_at: int, length: int) -> list[int]:
    """The directory sizes of the ZIP64 end records the locator before the end record at
    ``end_at`` leads to: the one right before the locator (where Python's zipfile reads it) and
    the one at the offset the locator names (where APPNOTE puts it), each when it is one."""
    locator_at = end_at - _ZIP64_LOCATOR.size
    if locator_at < 0:
        return []
    file.seek(locator_at)
    locator = file.read(_ZIP64_LOCATOR.size)
    if not locator.startswith(_ZIP64_LOCATOR_SIGNATURE):
        return []
    sizes = []
    for record_at in {locator_at - _ZIP64_END.size, _ZIP64_LOCATOR.unpack(locator)[2]}:
        if 0 <= record_at <= length - _ZIP64_END.size:
            file.seek(record_at)
            record = file.read(_ZIP64_END.size)
            if record.startswith(_ZIP64_END_SIGNATURE):
                sizes.append(int(_ZIP64_END.unpack(record)[8]))
    return sizes
