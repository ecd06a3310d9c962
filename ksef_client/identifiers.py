"""KSeF identifiers: NIP, KSeF numbers, reference numbers; validation and checksums.

Every ``validate_*`` function returns the value unchanged when it is valid and raises
``ValueError`` naming the field and the broken rule otherwise, so bad input fails before any
request is sent.
"""

from __future__ import annotations

import re

NIP_WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)
# re.ASCII on every pattern: without it Python's \d is any Unicode decimal digit (Arabic-Indic,
# full-width, ...), which int() reads as well. The spec's patterns are .NET's, and KSeF's numbers,
# which become file names and path segments, are ASCII.
_NIP = re.compile(r"[1-9]((\d[1-9])|([1-9]\d))\d{7}", re.ASCII)
_KSEF_NUMBER = re.compile(r"(?P<nip>\d{10})-(?P<date>\d{8})-(?P<body>[0-9A-F]{12})-(?P<crc>[0-9A-F]{2})", re.ASCII)
# KSeF 1.0 numbers (36 characters, a dash inside the random part) are still accepted by the API.
_KSEF_NUMBER_V1 = re.compile(r"\d{10}-\d{8}-[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{2}", re.ASCII)
_REFERENCE_NUMBER = re.compile(
    r"(?P<date>\d{8})-(?P<kind>[0-9A-Z]{2})-[0-9A-F]{10}-[0-9A-F]{10}-(?P<crc>[0-9A-F]{2})", re.ASCII
)


def _crc8_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC8 = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07 and initial value 0 (the KSeF number checksum), a table lookup
    per byte (the emulator numbers 10,000 invoices of a batch at once)."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def checksum(prefix: str) -> str:
    """The two upper-case hex digits that end an identifier starting with ``prefix``."""
    return f"{crc8(prefix.encode('ascii')):02X}"


def is_valid_nip(nip: str) -> bool:
    """Ten digits whose weighted sum modulo 11 equals the last digit."""
    if not _NIP.fullmatch(nip):
        return False
    remainder = sum(int(d) * w for d, w in zip(nip, NIP_WEIGHTS, strict=False)) % 11
    return remainder == int(nip[9])


def validate_nip(nip: str, field: str = "nip") -> str:
    """Return ``nip`` or raise ``ValueError`` (format or check digit)."""
    if not isinstance(nip, str) or not _NIP.fullmatch(nip):
        raise ValueError(f"{field}: {nip!r} is not a NIP (10 digits)")
    if not is_valid_nip(nip):
        raise ValueError(f"{field}: {nip!r} has a wrong NIP check digit")
    return nip


def validate_ksef_number(value: str, field: str = "ksef_number") -> str:
    """Return a KSeF number or raise ``ValueError``: format ``NIP-YYYYMMDD-12HEX-CC`` and CRC-8."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a string, got {type(value).__name__}")
    if _KSEF_NUMBER_V1.fullmatch(value):
        return value
    match = _KSEF_NUMBER.fullmatch(value)
    if match is None:
        raise ValueError(f"{field}: {value!r} is not a KSeF number (NIP-YYYYMMDD-XXXXXXXXXXXX-CC)")
    if checksum(value[:32]) != match["crc"]:
        raise ValueError(f"{field}: {value!r} has a wrong checksum (expected {checksum(value[:32])})")
    return value


def validate_reference_number(value: str, field: str = "reference_number") -> str:
    """Return a reference number or raise ``ValueError`` on its format (``YYYYMMDD-TT-10HEX-10HEX-CC``).

    The checksum of reference numbers is undocumented (one official example breaks it), so only
    the format is enforced; see :func:`reference_number_checksum_ok`.
    """
    if not isinstance(value, str) or _REFERENCE_NUMBER.fullmatch(value) is None:
        raise ValueError(f"{field}: {value!r} is not a KSeF reference number (YYYYMMDD-XX-10HEX-10HEX-CC)")
    return value


def reference_number_checksum_ok(value: str) -> bool:
    """Whether the last two characters are the CRC-8 of the first 33 (true of most real numbers;
    ``False`` for a value that is not ASCII, which no reference number is)."""
    return value.isascii() and checksum(value[:33]) == value[34:]


def make_ksef_number(nip: str, date: str, body: str) -> str:
    """Compose a KSeF number with its checksum: ``make_ksef_number("5265877635", "20250916", 12 hex)``."""
    prefix = f"{nip}-{date}-{body.upper()}"
    return f"{prefix}-{checksum(prefix)}"


def make_reference_number(date: str, kind: str, body: str) -> str:
    """Compose a reference number (``kind`` e.g. SO, SB, EE, EU) with the CRC-8 KSeF uses."""
    prefix = f"{date}-{kind}-{body[:10].upper()}-{body[10:20].upper()}"
    return f"{prefix}-{checksum(prefix)}"
