"""Identifiers are ASCII: digits other than 0-9 are refused (review of getting data out, finding 13).

Python's ``\\d`` matches every Unicode decimal digit (Arabic-Indic U+0660-0669, Devanagari, full-width
U+FF10-FF19...) unless the pattern is compiled with ``re.ASCII``, and ``int()`` reads them too. KSeF's own
patterns are ASCII: the spec's ``Nip`` is ``[1-9]((\\d[1-9])|([1-9]\\d))\\d{7}`` in .NET, whose ``\\d``
the spec's examples and KSeF numbers only ever fill with 0-9; a KSeF number or a reference number
becomes a file name and a path segment. Such a value was accepted (the KSeF 1.0 number form, a NIP,
a reference number) or failed with a ``UnicodeEncodeError`` inside the checksum (the 2.0 form).
"""

from __future__ import annotations

import pytest

from ksef_client.identifiers import (
    is_valid_nip,
    make_ksef_number,
    make_reference_number,
    reference_number_checksum_ok,
    validate_collective_identifier,
    validate_ksef_number,
    validate_nip,
    validate_reference_number,
)

NIP = "5265877635"
ARABIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
KSEF_NUMBER = make_ksef_number(NIP, "20250916", "0100C002FF3E")
KSEF_NUMBER_V1 = "5265877635-20250916-0100C0-02FF3E-D5"
REFERENCE = make_reference_number("20250625", "SO", "2C3E6C8000B8C5A3D9A3")


@pytest.mark.parametrize("digits", [ARABIC, FULL_WIDTH], ids=["arabic-indic", "full-width"])
def test_non_ascii_digits_are_refused_in_every_identifier(digits: dict[int, str]) -> None:
    assert validate_nip(NIP) == NIP and validate_ksef_number(KSEF_NUMBER) == KSEF_NUMBER
    assert validate_ksef_number(KSEF_NUMBER_V1) == KSEF_NUMBER_V1 and validate_reference_number(REFERENCE)
    for nip in (NIP.translate(digits), NIP[:3] + NIP[3:].translate(digits)):  # its pattern starts [1-9]
        assert not is_valid_nip(nip)  # was True with ASCII digits first: int() reads the others
        with pytest.raises(ValueError, match="is not a NIP"):
            validate_nip(nip)
    nip = NIP.translate(digits)  # only the NIP part: the rest still reads as a KSeF number
    for number in (nip + KSEF_NUMBER[10:], nip + KSEF_NUMBER_V1[10:]):
        with pytest.raises(ValueError, match="is not a KSeF number"):  # was: accepted, or a UnicodeEncodeError
            validate_ksef_number(number)
    reference = REFERENCE[:8].translate(digits) + REFERENCE[8:]
    with pytest.raises(ValueError, match="is not a KSeF reference number"):
        validate_reference_number(reference)
    assert not reference_number_checksum_ok(reference)  # was: UnicodeEncodeError


def test_a_collective_identifier_is_checked_by_its_format_and_crc8() -> None:
    # GenerateCollectiveIdentifierResponse (API 2.9.0): "9999999999-IZRRRRMM-FFFFFFFFFFFF-FF", the CRC-8
    # (polynomial 0x07, initial 0x00) of what comes before; the spec's own example.
    example = "1111111111-IZ202607-65ED02180000-E7"
    assert validate_collective_identifier(example) == example
    for wrong in (example[:-2] + "E8", example.replace("IZ", "IX"), example.replace("202607", "202613"),
                  example.lower(), example.translate(ARABIC), example + " "):  # fmt: skip
        with pytest.raises(ValueError, match=r"^number: "):
            validate_collective_identifier(wrong, "number")
