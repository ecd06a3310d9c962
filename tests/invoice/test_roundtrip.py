"""Hand-written FA(3) invoices (tests/invoice/data) read into objects and written back unchanged.

Each file is XSD-valid; ``from_xml(x).to_xml()`` equals ``x`` up to canonical form (C14N 2.0,
whitespace and prefixes normalised); and the builders, given the same lines, compute the same
totals as the file (hand-computed with the Ministry's rounding).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from xsdata.models.datatype import XmlDate, XmlDateTime

from ksef_client.invoice import CorrectedInvoice, Invoice, Line, Party, advance, correction, vat_invoice
from ksef_client.invoice._binding import canonical
from ksef_client.schemas import InvoiceSchemaError, validate_invoice

DATA = Path(__file__).with_name("data")
FILES = sorted(DATA.glob("*.xml"))
SELLER = Party("ACME Software sp. z o.o.", "ul. Prosta 1", nip="5265877635", address2="00-001 Warszawa")
BUYER = Party("Nabywca & Syn S.A.", "ul. Krzywa 2, 30-001 Kraków", nip="1111111111")


def test_every_kind_the_issue_names_has_a_file() -> None:
    assert {p.stem for p in FILES} == {"vat", "correction", "advance", "foreign-currency", "eu-supply", "export"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_round_trip_is_canonically_equal(path: Path) -> None:
    xml = path.read_bytes()
    validate_invoice(xml)
    invoice = Invoice.from_xml(xml)
    written = invoice.to_xml()
    assert canonical(written) == canonical(xml)
    assert written.startswith(b'<?xml version="1.0" encoding="UTF-8"?>') and not written.startswith(b"\xef\xbb\xbf")
    assert Invoice.from_xml(written) == invoice


def test_canonical_form_ignores_formatting_and_prefixes_not_content() -> None:
    xml = (DATA / "vat.xml").read_bytes()
    prefixed = etree.tostring(
        etree.fromstring(xml.replace(b'xmlns="http://crd', b'xmlns:fa="http://crd').replace(b"<", b"<fa:")
                         .replace(b"<fa:/", b"</fa:").replace(b"<fa:?xml", b"<?xml").replace(b"<fa:!--", b"<!--"))
    )  # fmt: skip
    assert canonical(prefixed) == canonical(xml)
    assert canonical(xml.replace(b"<P_15>2977.47", b"<P_15>2977.48")) != canonical(xml)


def test_fields_are_typed() -> None:
    invoice = Invoice.from_xml((DATA / "foreign-currency.xml").read_bytes())
    line = invoice.model.fa.fa_wiersz[0]
    assert (line.p_11, line.kurs_waluty, line.p_12 and line.p_12.value) == (Decimal("2469.12"), Decimal("4.2618"), "23")
    assert invoice.issue_date == dt.date(2026, 3, 2) and invoice.currency == "EUR" and invoice.kind == "VAT"
    assert invoice.totals() == {
        "p_13_1": Decimal("2469.12"),
        "p_14_1": Decimal("567.90"),
        "p_14_1_w": Decimal("2420.28"),
    }
    assert invoice.seller_nip == "5265877635" and invoice.gross == Decimal("3037.02")
    assert repr(invoice) == "<Invoice FA(3) VAT 'FV/2026/03/002' 2026-03-02 3037.02 EUR>"


def test_invalid_xml_is_refused_with_the_schema_errors() -> None:
    xml = (DATA / "vat.xml").read_bytes().replace(b"<P_2>FV/2026/03/001</P_2>", b"")
    with pytest.raises(InvoiceSchemaError, match="P_2"):
        Invoice.from_xml(xml)
    with pytest.raises(InvoiceSchemaError, match="BOM"):
        Invoice.from_xml(b"\xef\xbb\xbf" + (DATA / "vat.xml").read_bytes())
    with pytest.raises(ValueError, match="well-formed"):
        Invoice.from_xml(b"<Faktura>", validate=False)
    with pytest.raises(ValueError, match="Faktura"):
        Invoice.from_xml(b'<Faktura xmlns="urn:other"><X/></Faktura>', validate=False)


def test_an_entity_bomb_is_not_expanded() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><Faktura>&a;</Faktura>'
    with pytest.raises(InvoiceSchemaError):
        Invoice.from_xml(bomb)
    with pytest.raises(ValueError):
        Invoice.from_xml(bomb, validate=False)


@pytest.mark.parametrize(
    ("original", "written"),
    [
        (b"<P_15>2977.47</P_15>", b"<P_15>2<!-- gross -->977.47</P_15>"),
        (b"<P_15>2977.47</P_15>", b"<P_15><!-- gross, PLN -->2977.47</P_15>"),
        (b"<P_2>FV/2026/03/001</P_2>", b"<P_2>FV/2026<!-- series -->/03/001</P_2>"),
        (b"<P_2>FV/2026/03/001</P_2>", b"<P_2>FV/2026<?note x?>/03/001</P_2>"),
    ],
)
def test_a_comment_inside_a_value_is_no_part_of_it(original: bytes, written: bytes) -> None:
    # XML 1.0 (2.5): comments "are not part of the document's character data". The value is the
    # text on both sides of the comment; xsdata read only the text before it (P_15 2977.47 became
    # 2, and to_xml() wrote the changed amount).
    xml = (DATA / "vat.xml").read_bytes()
    invoice = Invoice.from_xml(xml.replace(original, written), validate=False)
    assert (invoice.number, invoice.gross) == ("FV/2026/03/001", Decimal("2977.47"))
    assert invoice == Invoice.from_xml(xml)
    assert original in invoice.to_xml()


def test_a_hand_edit_that_breaks_the_schema_is_caught_by_to_xml() -> None:
    invoice = Invoice.from_xml((DATA / "vat.xml").read_bytes())
    invoice.model.fa.p_2 = ""
    with pytest.raises(InvoiceSchemaError, match="P_2"):
        invoice.to_xml()
    assert b"<P_2></P_2>" in invoice.to_xml(validate=False) or b"<P_2/>" in invoice.to_xml(validate=False)


def test_a_python_date_put_in_the_model_is_named_by_to_xml() -> None:
    # docs/invoices-as-objects.md: "A hand edit that breaks the schema makes to_xml() raise
    # InvoiceSchemaError ... listing the problems". invoice.issue_date is a datetime.date, so
    # fa.p_1 = date(...) is the edit users try first: it raised xsdata's "ConverterError:
    # strftime() argument 1 must be str, not None", naming nothing.
    invoice = Invoice.from_xml((DATA / "vat.xml").read_bytes())
    invoice.model.fa.p_1 = dt.date(2026, 3, 1)  # type: ignore[assignment]
    invoice.model.fa.fa_wiersz[1].p_6_a = dt.date(2026, 3, 1)  # type: ignore[assignment]
    for validate in (True, False):
        with pytest.raises(InvoiceSchemaError) as raised:
            invoice.to_xml(validate=validate)
        assert raised.value.errors == [
            "fa.p_1: a datetime.date (2026-03-01); the model takes xsdata's XmlDate: XmlDate.from_date(value)",
            "fa.fa_wiersz[1].p_6_a: a datetime.date (2026-03-01); the model takes xsdata's XmlDate: "
            "XmlDate.from_date(value)",
        ]
    invoice.model.naglowek.data_wytworzenia_fa = CREATED  # type: ignore[assignment]
    with pytest.raises(InvoiceSchemaError, match=r"naglowek.data_wytworzenia_fa: a datetime.datetime .*XmlDateTime"):
        invoice.to_xml()
    invoice.model.naglowek.data_wytworzenia_fa = XmlDateTime.from_datetime(CREATED)
    invoice.model.fa.p_1 = invoice.model.fa.fa_wiersz[1].p_6_a = XmlDate(2026, 3, 1)
    assert b"<P_1>2026-03-01</P_1>" in invoice.to_xml()


CREATED = dt.datetime(2026, 3, 2, 9, 15, tzinfo=dt.UTC)
WORK = Line("Usługa programistyczna", Decimal("12.5"), Decimal("160.00"), "23", unit="h")
VAT_LINES = [WORK, Line("Catering na warsztaty", 1, "333.33", "8", unit="usł."),
             Line('Książka "Wzorce projektowe"', 3, "49.99", "5")]  # fmt: skip


def _file(name: str) -> Invoice:
    return Invoice.from_xml((DATA / f"{name}.xml").read_bytes())


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("vat", lambda: vat_invoice(
            number="FV/2026/03/001", issue_date=dt.date(2026, 3, 2), seller=SELLER, buyer=BUYER, created=CREATED,
            sale_date=dt.date(2026, 2, 27), lines=VAT_LINES)),
        ("correction", lambda: correction(
            number="KOR/2026/03/001", issue_date=dt.date(2026, 3, 10), seller=SELLER, buyer=BUYER, created=CREATED,
            corrected=CorrectedInvoice("FV/2026/03/001", dt.date(2026, 3, 2), "5265877635-20260302-0A1B2C3D4E5F-E9",
                                       lines=VAT_LINES),
            before=[WORK], after=[Line("Usługa programistyczna", 10, "160.00", "23", unit="h")],
            reason="Rabat za opóźnienie: 2,5 h mniej")),
        ("advance", lambda: advance(
            number="ZAL/2026/03/001", issue_date=dt.date(2026, 3, 5), seller=SELLER, buyer=BUYER, created=CREATED,
            order=[Line("Biurko regulowane", 10, "1200.00", "23")], received="5000.00",
            payment_date=dt.date(2026, 3, 4))),
        ("foreign-currency", lambda: vat_invoice(
            number="FV/2026/03/002", issue_date=dt.date(2026, 3, 2), seller=SELLER, buyer=BUYER, created=CREATED,
            lines=[Line("Licencja roczna", 2, "1234.56", "23")], currency="EUR", exchange_rate="4.2618")),
        ("eu-supply", lambda: vat_invoice(
            number="FV/2026/03/003", issue_date=dt.date(2026, 3, 3), seller=SELLER, created=CREATED,
            buyer=Party("Maschinenbau Beispiel GmbH", "Hauptstraße 5, 10115 Berlin", eu_vat="DE811569869",
                        country="DE"),
            lines=[Line("Obrabiarka CNC", 1, "85000.00", "0 WDT")], currency="EUR")),
        ("export", lambda: vat_invoice(
            number="FV/2026/03/004", issue_date=dt.date(2026, 3, 4), seller=SELLER, created=CREATED,
            buyer=Party("Example Imports Inc.", "100 Main Street, Springfield, IL 62701", tax_id="12-3456789",
                        country="US"),
            lines=[Line("Zestaw narzędzi", 5, "199.90", "0 EX", unit="kpl."),
                   Line("Transport do portu", 1, "50", "0 EX", unit="usł.")], currency="USD")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_builders_compute_the_hand_computed_totals(name: str, build: object) -> None:
    built: Invoice = build()  # type: ignore[operator]
    expected = _file(name)
    assert built.totals() == expected.totals()
    assert built.gross == expected.gross and built.kind == expected.kind and built.currency == expected.currency
    fa, want = built.model.fa, expected.model.fa
    assert [(r.nr_wiersza_fa, r.p_11, r.p_12, r.stan_przed, r.kurs_waluty) for r in fa.fa_wiersz] == [
        (r.nr_wiersza_fa, r.p_11, r.p_12, r.stan_przed, r.kurs_waluty) for r in want.fa_wiersz
    ]
    assert (fa.p_6, fa.dane_fa_korygowanej, fa.przyczyna_korekty) == (want.p_6, want.dane_fa_korygowanej,
                                                                       want.przyczyna_korekty)  # fmt: skip
    assert built.model.podmiot2.dane_identyfikacyjne == expected.model.podmiot2.dane_identyfikacyjne
    if want.zamowienie is not None:
        assert fa.zamowienie == want.zamowienie
    validate_invoice(built.to_xml())
