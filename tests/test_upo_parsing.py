"""parse_upo and validate_upo on the official examples; hostile XML is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ksef_client import BodyLimits
from ksef_client.errors import UnsafeXMLError, UPOValidationError
from ksef_client.identifiers import validate_ksef_number
from ksef_client.upo import MAX_UPO_BYTES, parse_upo, validate_upo


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


def _session_upo(documents: list[list[tuple[str, str]]]) -> bytes:
    body = "".join("<Dokument>" + "".join(f"<{n}>{v}</{n}>" for n, v in fields) + "</Dokument>" for fields in documents)
    return (
        '<Potwierdzenie xmlns="http://upo.schematy.mf.gov.pl/KSeF/v4-3"><NazwaPodmiotuPrzyjmujacego>MF'
        "</NazwaPodmiotuPrzyjmujacego><NumerReferencyjnySesji>S</NumerReferencyjnySesji><Uwierzytelnienie>"
        "<IdKontekstu><Nip>5265877635</Nip></IdKontekstu></Uwierzytelnienie><NazwaStrukturyLogicznej>x"
        f"</NazwaStrukturyLogicznej><KodFormularza>FA (3)</KodFormularza>{body}</Potwierdzenie>"
    ).encode()


_FIELDS = [
    ("NipSprzedawcy", "5265877635"),
    ("NumerKSeFDokumentu", "N"),
    ("NumerFaktury", "FV/1"),
    ("DataWystawieniaFaktury", "2026-11-20"),
    ("DataPrzeslaniaDokumentu", "2026-11-20T10:00:00+00:00"),
    ("DataNadaniaNumeruKSeF", "2026-11-20T10:00:01+00:00"),
    ("SkrotDokumentu", "h"),
    ("TrybWysylki", "Online"),
]


def test_documents_read_in_bulk_and_one_at_a_time_agree() -> None:
    # The bulk path takes documents that are exactly the 8 fields in order; the same values in
    # another order, or with a comment between fields, go one at a time and read the same.
    second = [(n, v.replace("FV/1", "FV/2")) for n, v in _FIELDS]
    ordered = parse_upo(_session_upo([_FIELDS, second])).documents
    assert [d.invoice_number for d in ordered] == ["FV/1", "FV/2"]
    assert parse_upo(_session_upo([_FIELDS, second[::-1]])).documents == ordered
    commented = _session_upo([_FIELDS, second]).replace(b"<TrybWysylki>", b"<!-- c --><TrybWysylki>", 1)
    assert parse_upo(commented).documents == ordered


def test_a_field_moved_into_the_next_document_is_refused() -> None:
    # 16 fields in the right order overall, but 9 in the first document and 7 in the second: the
    # second lacks its seller NIP, and no value may be taken from the neighbour.
    first, second = [*_FIELDS, _FIELDS[0]], _FIELDS[1:]
    with pytest.raises(UPOValidationError, match="lacks NipSprzedawcy"):
        parse_upo(_session_upo([first, second]))
    with pytest.raises(UPOValidationError, match="not a date"):
        parse_upo(_session_upo([[(n, "2026-13-99" if n == "DataWystawieniaFaktury" else v) for n, v in _FIELDS]]))


def test_the_emulator_lays_out_a_upo_as_the_ministrys_sample(ksef_data: Path) -> None:
    # KSeF indents its UPOs with tabs; the emulator's UPO has the same whitespace between the same
    # elements, so a reader tested against the emulator meets what KSeF sends.
    from ksef_client.mock.upo import PageInfo, UpoDocument, UpoHeader, build_upo

    sample = (ksef_data / "upo-examples" / "kontekst-nip__upo-sesja-kontekst-id-nip.xml").read_bytes()
    read = parse_upo(sample)
    assert read.page_info is not None and read.auth_document_hash is not None
    header = UpoHeader(
        read.session_reference_number, "Nip", read.context_value, read.auth_document_hash, read.form_code
    )
    documents = [
        UpoDocument(
            d.seller_nip,
            d.ksef_number,
            d.invoice_number,
            d.issue_date.isoformat(),
            d.sent_at.isoformat(timespec="milliseconds"),
            d.numbered_at.isoformat(timespec="milliseconds"),
            d.invoice_hash,
            d.mode,
        )
        for d in read.documents
    ]
    page = read.page_info
    ours = build_upo(
        header,
        documents,
        PageInfo(page.page, page.page_count, page.first_document, page.last_document, page.document_count),
        signed=False,
    )
    between_tags = re.compile(rb">(\s*)<")
    assert between_tags.findall(ours) == between_tags.findall(sample)
    assert ours.endswith(b"</Potwierdzenie>") and sample.rstrip().endswith(b"</Potwierdzenie>")


def test_the_parse_cap_is_the_default_download_cap() -> None:
    # The reviewer noted parse_upo's fixed 64 MiB and BodyLimits.upo as two numbers that could
    # drift apart; one is now the other, and a document past it is refused before parsing.
    assert BodyLimits().upo == MAX_UPO_BYTES
    with pytest.raises(UnsafeXMLError, match="byte cap"):
        parse_upo(b" " * (MAX_UPO_BYTES + 1))
