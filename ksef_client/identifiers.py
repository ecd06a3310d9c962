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
# A collective identifier (GenerateCollectiveIdentifierResponse, API 2.9.0): "9999999999-IZRRRRMM-
# FFFFFFFFFFFF-FF", the seller's NIP, "IZ", year and month, 12 upper-case hex digits and the CRC-8
# of what comes before (polynomial 0x07, initial value 0x00: the KSeF number's).
_COLLECTIVE_IDENTIFIER = re.compile(r"\d{10}-IZ\d{4}(0[1-9]|1[0-2])-[0-9A-F]{12}-(?P<crc>[0-9A-F]{2})", re.ASCII)
_REFERENCE_NUMBER = re.compile(
    r"(?P<date>\d{8})-(?P<kind>[0-9A-Z]{2})-[0-9A-F]{10}-[0-9A-F]{10}-(?P<crc>[0-9A-F]{2})", re.ASCII
)

# The login context identifiers other than a NIP, as the AuthTokenRequest schema
# (auth/schemy/schemat_auth_v2-0.xsd, types TIID, TNipVatUE, TPeppolId; v2-1 has the same) and the
# spec (components InternalId, NipVatUe, PeppolId) give them: KSeF refuses any other value with
# 400 / 21401 "Dokument nie jest zgodny ze schemą (xsd)". The XSD's ``^``/``$`` are dropped:
# ``fullmatch`` anchors. NipVatUe: "based on: https://ec.europa.eu/taxation_customs/vies/#/faq Q11".
# An InternalId's form: the NIP, "-" and 5 digits (the spec's pattern, FA(3)'s TNIPIdWew).
INTERNAL_ID_PATTERN = re.compile(r"[1-9]((\d[1-9])|([1-9]\d))\d{7}-\d{5}", re.ASCII)
_NIP_VAT_UE = re.compile(
    r"([1-9]((\d[1-9])|([1-9]\d))\d{7}-((AT)(U\d{8})|(BE)([01]{1}\d{9})|(BG)(\d{9,10})|(CY)(\d{8}[A-Z])"
    r"|(CZ)(\d{8,10})|(DE)(\d{9})|(DK)(\d{8})|(EE)(\d{9})|(EL)(\d{9})|(ES)([A-Z]\d{8}|\d{8}[A-Z]|[A-Z]\d{7}[A-Z])"
    r"|(FI)(\d{8})|(FR)[A-Z0-9]{2}\d{9}|(HR)(\d{11})|(HU)(\d{8})|(IE)(\d{7}[A-Z]{2}|\d[A-Z0-9+*]\d{5}[A-Z])"
    r"|(IT)(\d{11})|(LT)(\d{9}|\d{12})|(LU)(\d{8})|(LV)(\d{11})|(MT)(\d{8})|(NL)([A-Z0-9+*]{12})|(PT)(\d{9})"
    r"|(RO)(\d{2,10})|(SE)(\d{12})|(SI)(\d{8})|(SK)(\d{10})|(XI)((\d{9}|(\d{12}))|(GD|HA)(\d{3}))))",
    re.ASCII,
)
_PEPPOL_ID = re.compile(r"P[A-Z]{2}[0-9]{6}", re.ASCII)


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


def validate_nip(nip: str, field: str = "nip", *, check_digit: bool = True) -> str:
    """Return ``nip`` or raise ``ValueError`` (format, and its check digit unless ``check_digit``
    is false: where KSeF is not documented to check it)."""
    if not isinstance(nip, str) or not _NIP.fullmatch(nip):
        raise ValueError(f"{field}: {nip!r} is not a NIP (10 digits)")
    if check_digit and not is_valid_nip(nip):
        raise ValueError(f"{field}: {nip!r} has a wrong NIP check digit")
    return nip


# KSeF creates every InternalId when it makes a subunit's administrator (POST
# /permissions/subunits/grants, spec 2.9.0): "tworzony jest identyfikator wewnętrzny składający się z
# numeru NIP podmiotu kontekstu logowania oraz 5 cyfr unikalnie identyfikujących jednostkę
# wewnętrzną. Ostatnia cyfra musi być poprawną sumą kontrolną [...] Algorytm używa naprzemiennych
# wag (1x, 3x, 1x, 3x, ...), sumuje wyniki i zwraca resztę z dzielenia przez 10." (the spec's
# multiplication sign written x; its example: "6824515772-1234" -> 3). api-changelog.md 2.0.0:
# "Wprowadzono walidację sumy kontrolnej dla identyfikatora `InternalId` w POST
# `/permissions/subunits/grants`". No InternalId without a right check digit exists.
INTERNAL_ID_WEIGHTS = (1, 3)


def internal_id_check_digit(digits: str) -> str:
    """The check digit that ends an InternalId whose first 14 digits (the NIP and 4 more, the
    ``'-'`` left out or not) are ``digits``: weights 1, 3, 1, 3, ... summed, modulo 10."""
    plain = digits.replace("-", "")
    if not plain.isascii() or not plain.isdigit() or len(plain) != 14:
        raise ValueError(f"internal_id: {digits!r} is not a NIP and 4 digits")
    weights = INTERNAL_ID_WEIGHTS * 7
    return str(sum(int(d) * w for d, w in zip(plain, weights, strict=True)) % 10)


def make_internal_id(nip: str, number: int | str) -> str:
    """Compose an InternalId with its check digit: ``make_internal_id("5265877635", 1234)`` is
    ``"5265877635-12346"`` (``number``: the 4 digits, 0 to 9999, that name the unit)."""
    validate_nip(nip)
    text = f"{number:04d}" if isinstance(number, int) and not isinstance(number, bool) else str(number)
    if not (text.isascii() and text.isdigit() and len(text) == 4):
        raise ValueError(f"number: {number!r} is not 4 digits (0 to 9999)")
    return f"{nip}-{text}{internal_id_check_digit(nip + text)}"


def validate_internal_id(value: str, field: str = "internal_id", *, nip_check_digit: bool = True) -> str:
    """Return an internal identifier (``NIP-5 digits``, e.g. ``5265877635-00004``) or raise
    ``ValueError``: the schema's form, the check digit of its NIP (unless ``nip_check_digit`` is
    false) and its own last digit (KSeF makes every InternalId with one: ``make_internal_id``)."""
    if not isinstance(value, str) or not INTERNAL_ID_PATTERN.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not an InternalId (a NIP, '-' and 5 digits: 5265877635-00004)")
    validate_nip(value[:10], field, check_digit=nip_check_digit)
    expected = internal_id_check_digit(value[:15])
    if value[15] != expected:
        raise ValueError(
            f"{field}: {value!r} has a wrong InternalId check digit (expected {value[:15]}{expected}; "
            "weights 1, 3, 1, 3, ... modulo 10, spec: POST /permissions/subunits/grants)"
        )
    return value


def validate_nip_vat_ue(value: str, field: str = "nip_vat_ue", *, nip_check_digit: bool = True) -> str:
    """Return a NipVatUe identifier (``NIP-EU VAT number``, e.g. ``5265877635-DE123456789``) or
    raise ``ValueError``: the schema's form (the VAT number as VIES formats it for its country),
    and the check digit of its NIP (unless ``nip_check_digit`` is false)."""
    if not isinstance(value, str) or not _NIP_VAT_UE.fullmatch(value):
        raise ValueError(
            f"{field}: {value!r} is not a NipVatUe (a NIP, '-' and an EU VAT number with its country"
            " prefix in VIES's form: 5265877635-DE123456789)"
        )
    validate_nip(value[:10], field, check_digit=nip_check_digit)
    return value


def is_peppol_id(value: object) -> bool:
    """Whether ``value`` is a Peppol service provider identifier (the spec's ``PeppolId``)."""
    return isinstance(value, str) and _PEPPOL_ID.fullmatch(value) is not None


def validate_peppol_id(value: str, field: str = "peppol_id") -> str:
    """Return a Peppol service provider identifier (``P``, two letters, six digits: ``PPL123456``)
    or raise ``ValueError``."""
    if not is_peppol_id(value):
        raise ValueError(f"{field}: {value!r} is not a PeppolId ('P', 2 capital letters and 6 digits: PPL123456)")
    return value


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


def validate_collective_identifier(value: str, field: str = "collective_identifier") -> str:
    """Return a collective identifier's number or raise ``ValueError`` on its format
    (``NIP-IZYYYYMM-12HEX-CC``, the spec's ``collectiveIdentifierNumber``) and CRC-8."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a string, got {type(value).__name__}")
    match = _COLLECTIVE_IDENTIFIER.fullmatch(value)
    if match is None:
        raise ValueError(f"{field}: {value!r} is not a collective identifier (NIP-IZYYYYMM-XXXXXXXXXXXX-CC)")
    if checksum(value[:32]) != match["crc"]:
        raise ValueError(f"{field}: {value!r} has a wrong checksum (expected {checksum(value[:32])})")
    return value


# certificateSerialNumber, wherever the spec names one: "pattern": "^[0-9A-F]{16}$".
CERTIFICATE_SERIAL_PATTERN = r"^[0-9A-F]{16}$"


def validate_certificate_serial(value: str, field: str = "serial_number") -> str:
    """A KSeF certificate's serial number as the spec writes it (16 hex digits, lower-case letters
    upper-cased), or ``ValueError`` naming ``field``."""
    text = value.upper() if isinstance(value, str) else value
    if not isinstance(text, str) or re.fullmatch(CERTIFICATE_SERIAL_PATTERN, text) is None:
        raise ValueError(f"{field}: {value!r} is not a KSeF certificate serial number (16 hex digits)")
    return text


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
