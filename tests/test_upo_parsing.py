"""parse_upo and validate_upo on the official examples; hostile XML is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksef_client.errors import UnsafeXMLError, UPOValidationError
from ksef_client.identifiers import validate_ksef_number
from ksef_client.upo import parse_upo, validate_upo


def _examples(ksef_data: Path) -> list[Path]:
    return sorted((ksef_data / "upo-examples").glob("*.xml"))


def test_parses_all_six_official_examples(ksef_data: Path) -> None:
    examples = _examples(ksef_data)
    assert len(examples) == 6
    kinds = set()
    for path in examples:
        upo = parse_upo(path.read_bytes())
        kinds.add(upo.context_type)
        assert upo.form_code == "FA (3)"
        assert upo.documents and all(validate_ksef_number(d.ksef_number) for d in upo.documents)
        assert (upo.page_info is not None) == ("upo-sesja" in path.name)
        validate_upo(path.read_bytes(), ksef_data / "xsd" / "upo" / "upo-v4-3.xsd")
    assert kinds == {"Nip", "InternalId", "NipVatUe"}


XXE = b"""<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Potwierdzenie xmlns="http://upo.schematy.mf.gov.pl/KSeF/v4-3">&x;</Potwierdzenie>"""
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9))
    + b"]><l>&j;</l>"
)


@pytest.mark.parametrize("xml", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_hostile_xml_is_refused(xml: bytes) -> None:
    with pytest.raises(UnsafeXMLError):
        parse_upo(xml)


def test_not_a_upo(ksef_data: Path) -> None:
    with pytest.raises(UPOValidationError, match="not a UPO"):
        parse_upo(b"<Faktura/>")
    with pytest.raises(UPOValidationError, match="well-formed"):
        parse_upo(b"<Potwierdzenie")


def test_a_tampered_upo_fails_the_schema(ksef_data: Path) -> None:
    xml = _examples(ksef_data)[0].read_bytes().replace(b"<TrybWysylki>Online", b"<TrybWysylki>Pigeon")
    with pytest.raises(UPOValidationError, match=r"upo-v4-3\.xsd"):
        validate_upo(xml, ksef_data / "xsd" / "upo" / "upo-v4-3.xsd")


def test_each_field_is_its_whole_text_content(ksef_data: Path) -> None:
    # A comment inside a signed text node must not cut the value short (the signature covers all of it).
    path = next(p for p in _examples(ksef_data) if "upo-sesja" in p.name)
    xml = path.read_bytes()
    original = parse_upo(xml).documents[0]
    number = original.invoice_number.encode()
    split = xml.replace(
        b"<NumerFaktury>" + number, b"<NumerFaktury>" + number[:2] + b"<!-- c --><?pi x?>" + number[2:], 1
    )
    assert split != xml
    assert parse_upo(split).documents[0] == original


def test_a_document_missing_a_field_is_named(ksef_data: Path) -> None:
    path = next(p for p in _examples(ksef_data) if "upo-sesja" in p.name)
    xml = path.read_bytes()
    start = xml.index(b"<TrybWysylki>")
    broken = xml[:start] + xml[xml.index(b"</TrybWysylki>", start) + len(b"</TrybWysylki>") :]
    with pytest.raises(UPOValidationError, match="lacks TrybWysylki"):
        parse_upo(broken)
