"""Builders: arguments checked before building, and what each kind writes."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ksef_client.invoice import (
    Address,
    AdvanceInvoice,
    Contact,
    CorrectedInvoice,
    Invoice,
    Line,
    Party,
    TaxpayerStatus,
    ThirdParty,
    ThirdPartyRole,
    _shared,
    advance,
    advance_correction,
    correction,
    discount_correction,
    number_correction,
    party_correction,
    settlement,
    settlement_correction,
    vat_invoice,
)
from ksef_client.schemas import validate_invoice

SELLER = Party("ACME", "ul. Prosta 1, Warszawa", nip="5265877635")
BUYER = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111")
LINE = Line("Usługa", 1, "100", "23")


def _vat(**changes: Any) -> Invoice:
    arguments: dict[str, Any] = {"number": "FV/1", "issue_date": dt.date(2026, 3, 2), "seller": SELLER,
                                 "buyer": BUYER, "lines": [LINE], **changes}  # fmt: skip
    return vat_invoice(**arguments)


def _advance() -> AdvanceInvoice:
    """An advance invoice of 10.00 towards LINE (123.00 gross), as a settlement deducts it."""
    zal = advance(number="ZAL/1", issue_date=dt.date(2026, 3, 2), seller=SELLER, buyer=BUYER, order=[LINE],
                  received="10.00")  # fmt: skip
    return AdvanceInvoice.of(zal)


def _settled() -> CorrectedInvoice:
    """The settlement of LINE after _advance(), as a correction corrects it."""
    roz = settlement(number="ROZ/1", issue_date=dt.date(2026, 3, 2), seller=SELLER, buyer=BUYER, lines=[LINE],
                     advances=[_advance()])  # fmt: skip
    return CorrectedInvoice.of(roz)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": ""}, "number"),
        ({"issue_date": dt.datetime(2026, 3, 2, tzinfo=dt.UTC)}, "issue_date: expected a datetime.date"),
        ({"issue_date": dt.date(2005, 12, 31)}, r"issue_date: 2005-12-31 is outside the schema's range 2006-01-01"),
        ({"seller": Party("X", "Y")}, "seller: a NIP is required"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": "EUR"}, "exchange_rate: required"),
        ({"exchange_rate": "4.3"}, "exchange_rate: only"),
        ({"lines": []}, "lines: at least one"),
        ({"lines": ["not a line"]}, "Line objects"),
        ({"created": dt.datetime(2026, 3, 2)}, "naive"),
        ({"created": dt.datetime(2025, 8, 31, tzinfo=dt.UTC)}, "before 2025-09-01"),
        ({"sale_date": "2026-03-01"}, "sale_date"),
    ],
)
def test_vat_invoice_refuses_bad_arguments(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _vat(**changes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nip": "1234567890"}, "check digit"),
        ({"nip": "123"}, "not a NIP"),
        ({"nip": "5265877635", "eu_vat": "DE1"}, "at most one"),
        ({"eu_vat": "US123"}, "eu_vat"),
        ({"eu_vat": "DE"}, "eu_vat"),
        # TNrVatUE is "(\d|[A-Z]|\+|\*){1,12}" (FA(3) XSD): these passed isalnum() and failed in to_xml.
        ({"eu_vat": "DE81156986a"}, "eu_vat"),
        ({"eu_vat": "DE811569869\u00b2"}, "eu_vat"),
        ({"eu_vat": "DE1234567890123"}, "eu_vat"),
        ({"country": "XX"}, "country"),
        ({"name": " "}, "name"),
        ({"tax_id": ""}, "tax_id"),
    ],
)
def test_party_refuses_bad_identifiers(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"name": "A", "address": "B", **kwargs}
    with pytest.raises(ValueError, match=message):
        Party(**arguments)


def test_a_buyer_without_identifier_gets_brak_id() -> None:
    invoice = _vat(buyer=Party("Jan Kowalski", "ul. Polna 3, Łódź"))
    assert invoice.model.podmiot2.dane_identyfikacyjne.brak_id is not None
    validate_invoice(invoice.to_xml())


def test_vat_invoice_writes_lines_and_header() -> None:
    created = dt.datetime(2026, 3, 2, 10, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    invoice = _vat(created=created, lines=[LINE, Line("Towar", "2.5", "9.99", "8", unit="kg")])
    xml = invoice.to_xml()
    assert b"<DataWytworzeniaFa>2026-03-02T09:30:15Z</DataWytworzeniaFa>" in xml
    assert b'<KodFormularza kodSystemowy="FA (3)" wersjaSchemy="1-0E">FA</KodFormularza>' in xml
    rows = invoice.model.fa.fa_wiersz
    assert [(r.nr_wiersza_fa, r.p_8_b, r.p_11) for r in rows] == [(1, Decimal(1), Decimal("100.00")),
                                                                    (2, Decimal("2.5"), Decimal("24.98"))]  # fmt: skip
    assert invoice.model.fa.p_6 is None  # no sale date given
    assert _vat(sale_date=dt.date(2026, 3, 2)).model.fa.p_6 is None  # same as the issue date


def test_correction_of_an_invoice_sent_outside_ksef_and_a_cancellation() -> None:
    original = _vat()
    kor = correction(number="KOR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                     corrected=CorrectedInvoice.of(original), before=[LINE], after=[])  # fmt: skip
    data = kor.model.fa.dane_fa_korygowanej[0]
    assert (data.nr_fa_korygowanej, data.nr_kse_fn is not None, data.nr_kse_f) == ("FV/1", True, None)
    assert kor.gross == Decimal("-123.00") and kor.kind == "KOR"
    validate_invoice(kor.to_xml())
    with pytest.raises(ValueError, match="ksef_number"):
        CorrectedInvoice("FV/1", dt.date(2026, 3, 2), "not-a-ksef-number")
    with pytest.raises(ValueError, match="at least one line"):
        correction(number="KOR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                   corrected=CorrectedInvoice.of(original), before=[], after=[])  # fmt: skip
    with pytest.raises(ValueError, match="corrected"):
        correction(number="KOR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                   corrected="FV/1", before=[LINE], after=[])  # type: ignore[arg-type]  # fmt: skip


def test_a_correction_of_some_lines_taxes_each_rate_s_whole_sum() -> None:
    # FA(3) XSD, P_14_1 of a correction: "kwota różnicy, o której mowa w art. 106j ust. 2 pkt 5
    # ustawy", and the invoice taxed the rate's sum ("Kwota podatku od sumy wartości sprzedaży
    # netto"): 2 x 10.02 at 23% is taxed 4.61; without one line, 2.30. The correction showing the
    # one removed line was -2.30 (its own tax), so original + correction was 2.31, not 2.30.
    a, b = Line("A", 1, "10.02"), Line("B", 1, "10.02")
    original = _vat(lines=[a, b])
    kor = correction(number="KOR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                     corrected=CorrectedInvoice.of(original), before=[b], after=[])  # fmt: skip
    as_corrected = _vat(lines=[a])
    assert original.totals()["p_14_1"] == Decimal("4.61") and as_corrected.totals()["p_14_1"] == Decimal("2.30")
    assert kor.totals() == {"p_13_1": Decimal("-10.02"), "p_14_1": Decimal("-2.31")}
    assert original.gross + kor.gross == as_corrected.gross
    assert [row.p_7 for row in kor.model.fa.fa_wiersz] == ["B"]  # only the corrected line is shown


def test_a_correction_needs_the_corrected_invoice_s_lines() -> None:
    common: dict[str, Any] = {"number": "KOR/1", "issue_date": dt.date(2026, 3, 3), "seller": SELLER,
                              "buyer": BUYER, "before": [LINE], "after": []}  # fmt: skip
    with pytest.raises(ValueError, match="corrected: every line of the corrected invoice is needed"):
        correction(**common, corrected=CorrectedInvoice("FV/1", dt.date(2026, 3, 2)))
    with pytest.raises(ValueError, match=r"before: .* is not a line of the corrected invoice"):
        correction(**common, corrected=CorrectedInvoice("FV/1", dt.date(2026, 3, 2), lines=[Line("Inna", 1, "100")]))
    with pytest.raises(ValueError, match="corrected lines"):
        CorrectedInvoice("FV/1", dt.date(2026, 3, 2), lines=["not a line"])  # type: ignore[list-item]
    # CorrectedInvoice.of reads a VAT invoice's lines; a correction's rows are differences, not lines.
    assert CorrectedInvoice.of(_vat(lines=[LINE, Line("Towar", "2.5", "9.99", "8", unit="kg")])).lines == (
        LINE, Line("Towar", "2.5", "9.99", "8", unit="kg"))  # fmt: skip
    kor = correction(**common, corrected=CorrectedInvoice.of(_vat()))
    assert CorrectedInvoice.of(kor).lines is None


def test_advance_refuses_more_than_the_order_and_writes_the_rate_in_foreign_currency() -> None:
    order = [Line("Meble", 1, "1000", "23")]
    common: dict[str, Any] = {"number": "ZAL/1", "issue_date": dt.date(2026, 3, 2), "seller": SELLER,
                              "buyer": BUYER, "order": order}  # fmt: skip
    with pytest.raises(ValueError, match="more than the order"):
        advance(**common, received="1230.01")
    with pytest.raises(ValueError, match="received"):
        advance(**common, received="0")
    with pytest.raises(ValueError, match="order: at least one"):
        advance(**{**common, "order": []}, received="1")
    with pytest.raises(ValueError, match=r"more than the order's gross value 0\.00"):
        advance(**{**common, "order": [Line("Gratis", 1, "0", "23")]}, received="1")
    invoice = advance(**common, received="1230.00", currency="EUR", exchange_rate="4.3")
    fa = invoice.model.fa
    assert (fa.kurs_waluty_z, fa.p_14_1, fa.p_14_1_w, fa.p_15) == (
        Decimal("4.3"), Decimal("230.00"), Decimal("989.00"), Decimal("1230.00"))  # fmt: skip
    assert fa.zamowienie is not None and fa.zamowienie.wartosc_zamowienia == Decimal("1230.00")
    validate_invoice(invoice.to_xml())


def test_an_exempt_line_needs_its_legal_basis_and_reverse_charge_is_marked() -> None:
    # FA(3): "Jeśli pole P_19 równa się 1 - należy wskazać przepis ustawy..." and P_18 "1" when the
    # buyer accounts for the tax. The builder wrote P_19N (no exempt supply) and P_18 "2" whatever
    # the lines were.
    exempt, reverse = Line("Szkolenie", 1, 100, "zw"), Line("Złom", 1, 10, "oo")
    common: dict[str, Any] = {"number": "FV/Z/1", "issue_date": dt.date(2026, 5, 1), "seller": SELLER, "buyer": BUYER}
    with pytest.raises(ValueError, match='exemption: a "zw" line needs'):
        vat_invoice(**common, lines=[exempt])
    with pytest.raises(ValueError, match='exemption: only an invoice with a "zw" line'):
        vat_invoice(**common, lines=[reverse], exemption="art. 43 ust. 1 pkt 29")
    xml = vat_invoice(**common, lines=[exempt, reverse], exemption="art. 43 ust. 1 pkt 29").to_xml()
    validate_invoice(xml)
    assert b"<P_18>1</P_18>" in xml and b"<P_19>1</P_19><P_19A>art. 43 ust. 1 pkt 29</P_19A>" in xml
    plain = vat_invoice(**common, lines=[Line("Usługa", 1, 100)]).to_xml()
    assert b"<P_18>2</P_18>" in plain and b"<P_19N>1</P_19N>" in plain


FV_1 = CorrectedInvoice("FV/1", dt.date(2026, 3, 2))  # a reference to an invoice; its lines are not needed

# Each builder for one day: (issue_date, **options) -> Invoice.
BUILT_ON: dict[str, Any] = {
    "vat": lambda day, **o: vat_invoice(number="X/1", issue_date=day, seller=SELLER, buyer=BUYER, lines=[LINE], **o),
    "correction": lambda day, **o: correction(number="X/1", issue_date=day, seller=SELLER, buyer=BUYER,
                                              corrected=CorrectedInvoice.of(_vat()), before=[LINE], after=[], **o),
    "advance": lambda day, **o: advance(number="X/1", issue_date=day, seller=SELLER, buyer=BUYER, order=[LINE],
                                        received="10.00", **o),
    "settlement": lambda day, **o: settlement(number="X/1", issue_date=day, seller=SELLER, buyer=BUYER,
                                              lines=[LINE], advances=[_advance()], **o),
    "advance_correction": lambda day, **o: advance_correction(number="X/1", issue_date=day, seller=SELLER,
                                                              buyer=BUYER, corrected=_advance(), received="5.00", **o),
    "settlement_correction": lambda day, **o: settlement_correction(
        number="X/1", issue_date=day, seller=SELLER, buyer=BUYER, corrected=_settled(), advances=[_advance()],
        lines=[Line("Usługa", 2, "100", "23")], **o),
    "party_correction": lambda day, **o: party_correction(
        number="X/1", issue_date=day, seller=SELLER, buyer=BUYER, corrected=FV_1,
        seller_before=dataclasses.replace(SELLER, name="ACME (dawna nazwa)"), **o),
    "number_correction": lambda day, **o: number_correction(
        number="X/1", issue_date=day, seller=SELLER, buyer=BUYER, corrected=FV_1, right_number="FV/1A", **o),
    "discount_correction": lambda day, **o: discount_correction(
        number="X/1", issue_date=day, seller=SELLER, buyer=BUYER, corrected=[FV_1], period="marzec 2026",
        discount={"23": "12.30"}, **o),
}  # fmt: skip


@pytest.mark.parametrize("kind", BUILT_ON)
def test_an_issue_date_after_today_in_poland_is_refused_unless_built_ahead(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # faktury/weryfikacja-faktury.md, "Walidacja dat": "Data wystawienia faktury (P_1) nie może być
    # późniejsza niż data przyjęcia dokumentu do systemu KSeF" -- the builders built such an
    # invoice, and KSeF answered it with 450. Days are Poland's: at 23:30 UTC on 2 December it is
    # already 3 December in Warsaw (and at 22:30 UTC on 30 June, 1 July).
    build = BUILT_ON[kind]
    for utc, warsaw in [
        (dt.datetime(2026, 12, 2, 23, 30, tzinfo=dt.UTC), dt.date(2026, 12, 3)),
        (dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC), dt.date(2026, 7, 1)),
    ]:
        monkeypatch.setattr(_shared, "_utc_now", lambda utc=utc: utc)
        tomorrow = warsaw + dt.timedelta(days=1)
        assert build(warsaw).model.fa.p_1.to_date() == warsaw
        with pytest.raises(ValueError, match=rf"issue_date: {tomorrow} is after today in Poland \({warsaw}\)"):
            build(tomorrow)
        ahead = build(tomorrow, allow_future_issue_date=True)  # tomorrow's invoice, built tonight
        assert ahead.model.fa.p_1.to_date() == tomorrow
        validate_invoice(ahead.to_xml())


def test_an_issue_date_after_today_is_refused_before_anything_is_built() -> None:
    tomorrow = dt.datetime.now(ZoneInfo(_shared.WARSAW_ZONE)).date() + dt.timedelta(days=1)
    with pytest.raises(ValueError, match=r"issue_date: .* is after today in Poland .*allow_future_issue_date=True"):
        _vat(issue_date=tomorrow, lines=["not a line"])  # issue_date is the first thing found wrong


@pytest.mark.parametrize("number", ["IE1+23456X", "IE1*23456X", "DE811569869", "ATU12345678"])
def test_eu_vat_numbers_the_schema_allows_are_taken(number: str) -> None:
    # TNrVatUE "(\d|[A-Z]|\+|\*){1,12}": "+" and "*" are allowed (old Irish numbers have them);
    # they were refused by an isalnum() check.
    buyer = Party("Buyer", "Street 1", eu_vat=number)
    invoice = _vat(buyer=buyer, lines=[Line("Towar", 1, 100, "0 WDT")])
    assert invoice.model.podmiot2.dane_identyfikacyjne.nr_vat_ue == number[2:]
    validate_invoice(invoice.to_xml())


def test_an_eu_vat_buyer_s_address_is_in_the_vat_number_s_country() -> None:
    # docs/invoices-as-objects.md writes Party(..., eu_vat="DE811569869"): its address was in PL.
    assert Party("Käufer GmbH", "Berlin", eu_vat="DE811569869").country == "DE"
    assert Party("Αγοραστής", "Athens", eu_vat="EL123456789").country == "GR"
    assert Party("Nabywca", "Wrocław", eu_vat="DE811569869", country="AT").country == "AT"
    xml = vat_invoice(
        number="FV/EU/1", issue_date=dt.date(2026, 5, 1), seller=SELLER,
        buyer=Party("Käufer GmbH", "Berlin", eu_vat="DE811569869"), lines=[Line("Towar", 1, 100, "0 WDT")],
    ).to_xml()  # fmt: skip
    validate_invoice(xml)
    assert b"<KodKraju>DE</KodKraju>" in xml


def test_a_correction_keeps_the_corrected_invoice_s_currency_and_rate() -> None:
    # FA(3) XSD, Fa: "Pola dotyczące wartości sprzedaży i podatku wypełnia się w walucie, w której
    # wystawiono fakturę ... W przypadku wystawienia faktury korygującej ... wypełnia się poprzez
    # różnicę". correction() defaulted to PLN and wrote the EUR differences as PLN, without P_14_1W.
    german = Party("Kunde GmbH", "Berlin", eu_vat="DE811569869")
    work = Line("Beratung", 10, "100.00")
    eur = _vat(buyer=german, lines=[work], currency="EUR", exchange_rate="4.30")
    reference = CorrectedInvoice.of(eur)
    assert (reference.currency, reference.exchange_rate) == ("EUR", Decimal("4.30"))
    common: dict[str, Any] = {"number": "KOR/E/1", "issue_date": dt.date(2026, 3, 3), "seller": SELLER,
                              "buyer": german, "corrected": reference, "before": [work]}  # fmt: skip
    kor = correction(**common, after=[Line("Beratung", 8, "100.00")])
    assert kor.currency == "EUR"
    assert kor.totals() == {"p_13_1": Decimal("-200.00"), "p_14_1": Decimal("-46.00"), "p_14_1_w": Decimal("-197.80")}
    assert {row.kurs_waluty for row in kor.model.fa.fa_wiersz} == {Decimal("4.30")}
    validate_invoice(kor.to_xml())
    # Cancelled: the original's P_14_1W plus the correction's is 0, at the corrected invoice's rate.
    cancelled = correction(**common, after=[])
    assert eur.totals()["p_14_1_w"] + cancelled.totals()["p_14_1_w"] == 0
    with pytest.raises(ValueError, match=r"currency: 'PLN', but the corrected invoice is in EUR"):
        correction(**common, after=[], currency="PLN")
    with pytest.raises(ValueError, match=r"currency: 'EUR', but the corrected invoice is in PLN"):
        correction(**{**common, "corrected": CorrectedInvoice.of(_vat())}, after=[], currency="EUR")
    # An invoice given by hand says the rate its rows were converted at (the rows before the
    # correction are restated at it; exchange_rate= is the rate of the rows after it).
    paper = CorrectedInvoice("FV/E/1", dt.date(2026, 3, 2), lines=[work], currency="EUR")
    for rate in (None, "4.30"):
        with pytest.raises(ValueError, match=r"corrected: Line\(name='Beratung'.* has no exchange rate"):
            correction(**{**common, "corrected": paper}, after=[], exchange_rate=rate)
    paper = CorrectedInvoice("FV/E/1", dt.date(2026, 3, 2), lines=[work], currency="EUR", exchange_rate="4.30")
    assert correction(**{**common, "corrected": paper}, after=[]).totals() == cancelled.totals()
    with pytest.raises(ValueError, match="corrected exchange_rate: only for an invoice in a foreign currency"):
        CorrectedInvoice("FV/1", dt.date(2026, 3, 2), exchange_rate="4.3")
    with pytest.raises(ValueError, match="corrected currency"):
        CorrectedInvoice("FV/1", dt.date(2026, 3, 2), currency="eur")


def test_dates_from_the_schema_s_first_day_are_taken() -> None:
    # FA(3) XSD, TDataT (P_1, P_6, DataWystFaKorygowanej): minInclusive 2006-01-01. The builders
    # refused everything before 2016-07-01 (TData's minimum), e.g. a 2015 invoice to be corrected.
    old = CorrectedInvoice("FV/2015/1", dt.date(2015, 12, 30), lines=[LINE])
    kor = correction(number="KOR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                     corrected=old, before=[LINE], after=[])  # fmt: skip
    assert kor.model.fa.dane_fa_korygowanej[0].data_wyst_fa_korygowanej.to_date() == dt.date(2015, 12, 30)
    validate_invoice(kor.to_xml())
    first = _vat(issue_date=dt.date(2006, 1, 1), sale_date=dt.date(2006, 1, 1))
    validate_invoice(first.to_xml())
    with pytest.raises(ValueError, match="corrected issue_date: 2005-12-31 is outside"):
        CorrectedInvoice("FV/2005/1", dt.date(2005, 12, 31))


def test_names_are_compared_and_counted_as_the_schema_s_tokens() -> None:
    # FA(3) XSD: P_7 is TZnakowy512, an xsd:token (whiteSpace collapse; XML Schema Part 2, 4.3.6:
    # the length facets count the collapsed value). An invoice whose names a pretty-printing ERP
    # wrapped over lines is valid; CorrectedInvoice.of refused a wrapped name of 520 raw characters
    # (512 collapsed), and correction() did not find a wrapped name among the invoice's lines.
    long_name = "Y" * 250 + " " + "Y" * 249
    issued = _vat(lines=[Line("Konsultacje IT", 1, "100.00"), Line(long_name, 1, "10.00")]).to_xml()
    wrapped = issued.replace(b"<P_7>Konsultacje IT</P_7>", b"<P_7>Konsultacje\n            IT</P_7>")
    wrapped = wrapped.replace(long_name.encode(), long_name.replace(" ", "\n" + " " * 20 + "\t").encode())
    assert wrapped.count(b"\n") == 3  # after the declaration, in each name
    read = Invoice.from_xml(wrapped)  # XSD-valid
    reference = CorrectedInvoice.of(read)
    assert reference.lines == (Line("Konsultacje IT", 1, "100.00"), Line(long_name, 1, "10.00"))
    kor = correction(number="KOR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                     corrected=reference, before=[Line("Konsultacje IT", 1, "100.00")],
                     after=[Line("Konsultacje IT", 1, "90.00")])  # fmt: skip
    assert kor.totals() == {"p_13_1": Decimal("-10.00"), "p_14_1": Decimal("-2.30")}
    assert Line(" a \r\n b\t", 1, 1, unit="  kg ") == Line("a b", 1, 1, unit="kg")
    assert len(Line("x" + " \n" * 600 + "y", 1, 1).name) == 3
    with pytest.raises(ValueError, match=r"line name: 1\.\.512"):
        Line(" \n ", 1, 1)
    # The refusal names what CorrectedInvoice.of can read, not only "CorrectedInvoice.of reads them".
    with pytest.raises(ValueError, match=r"corrected.lines is None. CorrectedInvoice.of\(invoice\) reads them only"):
        correction(number="KOR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                   corrected=CorrectedInvoice("FV/1", dt.date(2026, 3, 2)), before=[LINE], after=[])  # fmt: skip


def test_an_advance_invoice_is_not_taken_for_a_kor() -> None:
    # FA(3) TRodzajFaktury: an advance invoice is corrected by KOR_ZAL ("Faktura korygująca fakturę
    # dokumentującą otrzymanie zapłaty ..."), not KOR. CorrectedInvoice.of(zal) gave no lines and
    # correction() then said "CorrectedInvoice.of(invoice) reads them"; given lines, it wrote KOR.
    # It now names the builder that corrects a ZAL (advance_correction, KOR_ZAL), and so for the
    # corrections of advance and settlement invoices; a ROZ is read (kind "ROZ") and correction()
    # sends it to settlement_correction (KOR_ROZ).
    zal = advance(number="ZAL/1", issue_date=dt.date(2026, 3, 2), seller=SELLER, buyer=BUYER, order=[LINE],
                  received="10.00")  # fmt: skip
    refused = r"'ZAL/1' is an advance invoice \(ZAL\); it is corrected by advance_correction\(\) \(KOR_ZAL\)"
    with pytest.raises(ValueError, match=refused + r", which takes AdvanceInvoice.of"):
        CorrectedInvoice.of(zal)
    kor_zal = advance_correction(number="KZ/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                                 corrected=AdvanceInvoice.of(zal), received="5.00")  # fmt: skip
    with pytest.raises(ValueError, match=r"'KZ/1' is a correction of an advance invoice \(KOR_ZAL\); .*"
                                         r"AdvanceInvoice.of\(zal, ksef_number, corrections=\[...\]\)"):  # fmt: skip
        CorrectedInvoice.of(kor_zal)
    roz = _settled()
    assert (roz.kind, roz.lines, roz.totals) == ("ROZ", (LINE,), {"p_13_1": Decimal("91.87"),
                                                                   "p_14_1": Decimal("21.13")})  # fmt: skip
    with pytest.raises(ValueError, match=r"corrected: 'ROZ/1' is a settlement invoice \(ROZ\); it is corrected by "
                                         r"settlement_correction\(\) \(KOR_ROZ\)"):  # fmt: skip
        correction(number="K/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER, corrected=roz,
                   before=[LINE], after=[])  # fmt: skip
    kor_roz = settlement_correction(number="KR/1", issue_date=dt.date(2026, 3, 3), seller=SELLER, buyer=BUYER,
                                    corrected=roz, advances=[_advance()], lines=[Line("Usługa", 2, "100")])  # fmt: skip
    by_hand = r"CorrectedInvoice\(number, issue_date, ksef_number, lines=\[...\], kind='ROZ'"
    with pytest.raises(ValueError, match=r"'KR/1' is a correction of a settlement invoice \(KOR_ROZ\); .*" + by_hand):
        CorrectedInvoice.of(kor_roz)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        # faktury/weryfikacja-faktury.md: "nie może zawierać niezalecanych znaków Unicode ...":
        # were found only by to_xml(), "discouraged character U+007F at offset 1186".
        (lambda: Line("ab\x7fc", 1, 1), "line name: character U[+]007F is one KSeF refuses"),
        (lambda: Party("A\x9f", "B"), "party name: character U[+]009F"),
        (lambda: _vat(number="FV/\x80"), "number: character U[+]0080"),
        # P_9A is TKwotowy2, "-?([1-9]\d{0,13}|0)(\.\d{1,8})?": 14 digits before the point, not 16.
        (lambda: Line("x", 1, "123456789012345"), r"line unit_price: 123456789012345 is too large .*10\^14"),
        # P_11 (TKwotowy, 16 digits) of quantity x price; P_13_1 and P_15 of the lines' sum.
        (lambda: Line("x", 1000, "99999999999999"), r"line quantity x unit_price: .* P_11 \(under 10\^16\)"),
        (lambda: _vat(lines=[Line("x", 100, "99999999999990")] * 2), r"lines: P_13_1 would be 1999999999999800\d.00"),
        (lambda: _vat(lines=[Line("x", 1, "99999999999990")] * 90, currency="EUR", exchange_rate="5"),
         r"lines: P_14_1W would be"),
        (lambda: advance(number="ZAL/1", issue_date=dt.date(2026, 3, 2), seller=SELLER, buyer=BUYER,
                         order=[Line("x", 100, "99999999999990")] * 2, received="1"), r"order: P_13_1 would be"),
    ],
)  # fmt: skip
def test_arguments_the_schema_would_refuse_are_refused_by_name(build: Any, message: str) -> None:
    # docs/invoices-as-objects.md: "Every argument is checked before anything is built and a bad
    # one raises ValueError naming it"; these were InvoiceSchemaErrors from to_xml().
    with pytest.raises(ValueError, match=message) as raised:
        build()
    assert type(raised.value) is ValueError
    assert _vat(lines=[Line("x", 1, "99999999999999.99999999")]).to_xml()  # the largest P_9A is taken


def test_split_payment_and_third_parties_are_builder_options() -> None:
    # FA(3) XSD, P_18A: "mechanizm podzielonej płatności ... należy podać wartość "1""; Podmiot2/JST:
    # "Wartość "1" oznacza, że faktura dotyczy jednostki podrzędnej JST. W takim przypadku ...
    # należy wypełnić sekcję Podmiot3, w szczególności podać NIP lub ID-Wew i określić rolę jako 8"
    # (GV: rolę jako 10). The builders wrote P_18A, JST and GV "2" always and had no Podmiot3.
    school = ThirdParty(Party("Szkoła Podstawowa nr 1", "ul. Szkolna 1, Kraków", nip="5265877635"),
                        ThirdPartyRole.JST_RECIPIENT)  # fmt: skip
    payer = ThirdParty(Party("Płatnik", "Gdańsk", eu_vat="DE811569869"), 6)
    other = ThirdParty(Party("Agent", "Łódź"), "Agent rozliczeniowy")
    second_buyer = ThirdParty(Party("Współnabywca", "Poznań", nip="1111111111"), 4, share="25.50")
    invoice = _vat(lines=[Line("Pręty stalowe", 10, "2000.00")], split_payment=True,
                   third_parties=[school, payer, other, second_buyer])  # fmt: skip
    xml = invoice.to_xml()
    validate_invoice(xml)
    assert b"<P_18A>1</P_18A>" in xml and b"<JST>1</JST><GV>2</GV>" in xml
    thirds = invoice.model.podmiot3
    assert [(t.rola and t.rola.value, t.opis_roli, t.udzial) for t in thirds] == [
        (8, None, None), (6, None, None), (None, "Agent rozliczeniowy", None), (4, None, Decimal("25.50"))]  # fmt: skip
    assert thirds[0].dane_identyfikacyjne.nip == "5265877635" and thirds[1].dane_identyfikacyjne.kod_ue.value == "DE"
    assert thirds[2].dane_identyfikacyjne.brak_id is not None and thirds[2].rola_inna is not None
    member = ThirdParty(Party("Członek grupy", "Kraków", nip="1111111111"), ThirdPartyRole.VAT_GROUP_RECIPIENT)
    for build in BUILT_ON.values():  # every builder takes both
        flagged = build(dt.date(2026, 3, 2), split_payment=True, third_parties=[member]).to_xml()
        validate_invoice(flagged)
        assert b"<P_18A>1</P_18A>" in flagged and b"<JST>2</JST><GV>1</GV>" in flagged and b"<Rola>10</Rola>" in flagged
    plain = _vat().to_xml()
    assert b"<P_18A>2</P_18A>" in plain and b"<JST>2</JST><GV>2</GV>" in plain and b"Podmiot3" not in plain


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ThirdParty(Party("Szkoła", "Kraków"), ThirdPartyRole.JST_RECIPIENT), "JST recipient .* by its NIP"),
        (lambda: ThirdParty(Party("A", "B"), 12), "third party role: 12"),
        (lambda: ThirdParty(Party("A", "B"), True), "third party role: True"),
        (lambda: ThirdParty(Party("A", "B"), " "), "third party role"),
        (lambda: ThirdParty("A", 1), "third party: expected a Party"),  # type: ignore[arg-type]
        (lambda: ThirdParty(Party("A", "B"), 1, share="10"), "only an ADDITIONAL_BUYER"),
        (lambda: ThirdParty(Party("A", "B"), 4, share="100.01"), "not a percentage"),
        (lambda: _vat(split_payment="yes"), "split_payment: expected True or False"),
        (lambda: _vat(third_parties=[Party("A", "B")]), "third_parties: expected ThirdParty"),
        (lambda: _vat(third_parties=[ThirdParty(Party("A", "B"), 1)] * 101), "at most 100"),
    ],
)
def test_third_parties_and_split_payment_are_checked(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# A company's branch, by its internal identifier (FA(3) TNIPIdWew: the NIP, "-" and 5 digits).
BRANCH_ID = "5265877635-00004"  # make_internal_id("5265877635", 0)


def _built_with(kind: str, seller: Party, buyer: Party, third_parties: list[ThirdParty]) -> Invoice:
    parties: dict[str, Any] = {"number": "X/1", "issue_date": dt.date(2026, 3, 2), "seller": seller, "buyer": buyer,
                               "third_parties": third_parties}  # fmt: skip
    if kind == "vat":
        return vat_invoice(lines=[LINE], **parties)
    if kind == "correction":
        return correction(corrected=CorrectedInvoice.of(_vat()), before=[LINE], after=[], **parties)
    if kind == "settlement":
        return settlement(lines=[LINE], advances=[_advance()], **parties)
    if kind == "advance_correction":
        return advance_correction(corrected=_advance(), received="5.00", **parties)
    if kind == "settlement_correction":
        return settlement_correction(corrected=_settled(), advances=[_advance()], **parties)
    if kind == "party_correction":  # the seller's name corrected: Podmiot2 as every builder writes it
        return party_correction(corrected=CorrectedInvoice.of(_vat()), **parties,
                                seller_before=dataclasses.replace(seller, name="ACME (dawna nazwa)"))  # fmt: skip
    if kind == "number_correction":
        return number_correction(corrected=FV_1, right_number="FV/1A", **parties)
    if kind == "discount_correction":
        return discount_correction(corrected=[CorrectedInvoice.of(_vat())], period="marzec 2026",
                                   discount={"23": "12.30"}, **parties)  # fmt: skip
    return advance(order=[LINE], received="10.00", **parties)


@pytest.mark.parametrize("kind", BUILT_ON)
def test_contacts_customer_numbers_and_an_internal_id_are_written_where_fa3_has_them(kind: str) -> None:
    # FA(3) XSD: DaneKontaktowe (Email, Telefon; maxOccurs 3) in Podmiot1, Podmiot2 and Podmiot3;
    # NrKlienta in Podmiot2 and Podmiot3; IDWew ("Identyfikator wewnętrzny z NIP") in Podmiot3's
    # DaneIdentyfikacyjne. The builders had no way to write any of them (Invoice.model only).
    seller = Party("ACME", "ul. Prosta 1, Warszawa", nip="5265877635",
                   contacts=[Contact(email="faktury@acme.pl", phone="+48 22 123 45 67")])  # fmt: skip
    buyer = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111", customer_number="KL/0042",
                  contacts=[Contact(email="ksiegowosc@nabywca.pl"), Contact(phone="+48 12 000 00 00"),
                            Contact(email="zarzad@nabywca.pl", phone="600100200")])  # fmt: skip
    branch = Party("ACME Oddział Kraków", "ul. Długa 3, Kraków", internal_id=BRANCH_ID, customer_number="ODD-7",
                   contacts=[Contact(email="krakow@acme.pl")])  # fmt: skip
    invoice = _built_with(kind, seller, buyer, [ThirdParty(branch, ThirdPartyRole.RECIPIENT)])
    xml = invoice.to_xml()
    validate_invoice(xml)
    assert (
        b"</Adres><DaneKontaktowe><Email>faktury@acme.pl</Email><Telefon>+48 22 123 45 67</Telefon></DaneKontaktowe>"
        b"</Podmiot1>"
    ) in xml
    assert (
        b"<DaneKontaktowe><Email>ksiegowosc@nabywca.pl</Email></DaneKontaktowe><DaneKontaktowe><Telefon>+48 12 000 00 "
        b"00</Telefon></DaneKontaktowe><DaneKontaktowe><Email>zarzad@nabywca.pl</Email><Telefon>600100200</Telefon>"
        b"</DaneKontaktowe><NrKlienta>KL/0042</NrKlienta><JST>2</JST>"
    ) in xml
    assert (
        f"<Podmiot3><DaneIdentyfikacyjne><IDWew>{BRANCH_ID}</IDWew><Nazwa>ACME Oddział Kraków</Nazwa>"
        "</DaneIdentyfikacyjne><Adres><KodKraju>PL</KodKraju><AdresL1>ul. Długa 3, Kraków</AdresL1></Adres>"
        "<DaneKontaktowe><Email>krakow@acme.pl</Email></DaneKontaktowe><Rola>2</Rola><NrKlienta>ODD-7</NrKlienta>"
        "</Podmiot3>"
    ).encode() in xml
    read = Invoice.from_xml(xml)  # the parser keeps every value
    assert read == invoice
    model = read.model
    assert [(c.email, c.telefon) for c in model.podmiot1.dane_kontaktowe] == [("faktury@acme.pl", "+48 22 123 45 67")]
    assert [(c.email, c.telefon) for c in model.podmiot2.dane_kontaktowe] == [
        ("ksiegowosc@nabywca.pl", None), (None, "+48 12 000 00 00"), ("zarzad@nabywca.pl", "600100200")]  # fmt: skip
    assert model.podmiot2.nr_klienta == "KL/0042"
    third = model.podmiot3[0]
    assert (third.dane_identyfikacyjne.idwew, third.dane_identyfikacyjne.nip, third.nr_klienta) == (
        BRANCH_ID, None, "ODD-7")  # fmt: skip
    assert [(c.email, c.telefon) for c in third.dane_kontaktowe] == [("krakow@acme.pl", None)]


def test_a_jst_or_vat_group_recipient_may_be_named_by_its_internal_id() -> None:
    # FA(3) XSD, Podmiot2/JST and GV: "należy wypełnić sekcję Podmiot3, w szczególności podać NIP
    # lub ID-Wew i określić rolę jako 8" (10): a recipient without a NIP was refused, "set on
    # Invoice.model".
    school = Party("Szkoła Podstawowa nr 1", "ul. Szkolna 1, Kraków", internal_id=" 5265877635-00017 ")
    assert school.internal_id == "5265877635-00017"  # an xsd:token: collapsed, as the schema reads it
    for role, flags in ((ThirdPartyRole.JST_RECIPIENT, b"<JST>1</JST><GV>2</GV>"),
                        (ThirdPartyRole.VAT_GROUP_RECIPIENT, b"<JST>2</JST><GV>1</GV>")):  # fmt: skip
        xml = _vat(third_parties=[ThirdParty(school, role)]).to_xml()
        validate_invoice(xml)
        assert flags in xml and b"<IDWew>5265877635-00017</IDWew>" in xml
    with pytest.raises(ValueError, match=r"the GV recipient \(role 10\) is named by its NIP or its internal_id"):
        ThirdParty(Party("Członek", "Kraków", eu_vat="DE811569869"), ThirdPartyRole.VAT_GROUP_RECIPIENT)


def test_contact_values_are_counted_and_kept_as_the_schema_s_tokens() -> None:
    # TNumerTelefonu: TZnakowy (xsd:token) of at most 16 characters, counted collapsed.
    assert Contact(phone="  +48\t22  123 45 67\n") == Contact(phone="+48 22 123 45 67")
    assert Contact(email=" a@b ").email == "a@b" and Contact(email="a" * 250 + "@b.pl").email
    assert Contact(phone="+48 22 123 45 67").phone == "+48 22 123 45 67"  # 16, the most
    assert Party("A", "B", customer_number="  K  1 ").customer_number == "K 1"
    assert Party("A", "B", contacts=[Contact(phone="1")] * 3).contacts == (Contact(phone="1"),) * 3
    assert hash(Party("A", "B", contacts=[Contact(email="a@b")]))  # frozen: the list is kept as a tuple


@pytest.mark.parametrize(
    ("build", "message"),
    [
        # TAdresEmail: an xsd:token of 3..255 characters, pattern "(.)+@(.)+".
        (lambda: Contact(email="ab"), r"contact email: 'ab' is not an e-mail address"),
        (lambda: Contact(email="a@"), r"contact email: 'a@' is not an e-mail address"),
        (lambda: Contact(email="@pl"), r"contact email: '@pl' is not an e-mail address"),
        (lambda: Contact(email="a" * 251 + "@b.pl"), r"contact email: 1\.\.255 characters"),
        (lambda: Contact(email=" "), r"contact email: 1\.\.255 characters"),
        (lambda: Contact(email="a\x7f@b.pl"), r"contact email: character U\+007F"),
        (lambda: Contact(email=7), r"contact email"),  # type: ignore[arg-type]
        # Both are optional in the schema, but a contact with neither says nothing.
        (Contact, r"contact: give an email, a phone or both"),
        # TNumerTelefonu: 1..16 characters.
        (lambda: Contact(phone="+48 22 123 45 678"), r"contact phone: 1\.\.16 characters"),
        (lambda: Contact(phone=""), r"contact phone: 1\.\.16 characters"),
        # DaneKontaktowe: maxOccurs 3.
        (lambda: Party("A", "B", contacts=[Contact(phone="1")] * 4), r"party contacts: at most 3 \(DaneKontaktowe\)"),
        (lambda: Party("A", "B", contacts=Contact(phone="1")), r"party contacts: expected a sequence of Contact"),  # type: ignore[arg-type]
        (lambda: Party("A", "B", contacts=["a@b.pl"]), r"party contacts: expected a sequence of Contact"),  # type: ignore[list-item]
        (lambda: Party("A", "B", contacts="a@b.pl"), r"party contacts: expected a sequence of Contact"),  # type: ignore[arg-type]
        # NrKlienta: TZnakowy, 1..256.
        (lambda: Party("A", "B", customer_number=" "), r"party customer_number: 1\.\.256"),
        (lambda: Party("A", "B", customer_number="K" * 257), r"party customer_number: 1\.\.256"),
        # TNIPIdWew: "[1-9]((\d[1-9])|([1-9]\d))\d{7}-\d{5}"; the NIP's check digit as Party.nip's.
        (lambda: Party("A", "B", internal_id="5265877635-0001"), r"party internal_id: '5265877635-0001' is not an"),
        (lambda: Party("A", "B", internal_id="5265877635/00001"), r"party internal_id: .* is not an internal"),
        (lambda: Party("A", "B", internal_id="0265877635-00001"), r"party internal_id: .* is not an internal"),
        (lambda: Party("A", "B", internal_id="5265877635-0000\u0661"), r"party internal_id: .* is not an internal"),
        (lambda: Party("A", "B", internal_id=5265877635), r"party internal_id: 5265877635 is not an"),  # type: ignore[arg-type]
        (lambda: Party("A", "B", internal_id="5265877636-00001"),
         r"party internal_id: '5265877636-00001' holds a NIP \(5265877636\) with a wrong check digit"),
        # KSeF makes every InternalId with its own check digit: one without it names no unit.
        (lambda: Party("A", "B", internal_id="5265877635-00001"),
         r"party internal_id: '5265877635-00001' has a wrong InternalId check digit \(expected 5265877635-00004"),
        (lambda: Party("A", "B", nip="5265877635", internal_id=BRANCH_ID), "at most one of nip, .*, internal_id"),
        # IDWew is in Podmiot3 alone; NrKlienta is not in Podmiot1.
        (lambda: _vat(seller=Party("A", "B", internal_id=BRANCH_ID)), r"seller: internal_id \(IDWew\) names only"),
        (lambda: _vat(buyer=Party("A", "B", internal_id=BRANCH_ID)), r"buyer: internal_id \(IDWew\) names only"),
        (lambda: _vat(seller=Party("A", "B", nip="5265877635", customer_number="K1")),
         r"seller: customer_number \(NrKlienta\) is the buyer's or a third party's"),
    ],
)  # fmt: skip
def test_contacts_customer_numbers_and_internal_ids_are_checked_by_name(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        build()
    assert type(raised.value) is ValueError


@pytest.mark.parametrize("kind", BUILT_ON)
def test_correspondence_addresses_eori_numbers_and_the_seller_s_status_are_written_where_fa3_has_them(
    kind: str,
) -> None:
    # FA(3) XSD: Podmiot1 is PrefiksPodatnika, NrEORI, DaneIdentyfikacyjne, Adres, AdresKoresp,
    # DaneKontaktowe, StatusInfoPodatnika; Podmiot2 and Podmiot3 have NrEORI before
    # DaneIdentyfikacyjne and AdresKoresp after Adres (TAdres: KodKraju, AdresL1, AdresL2).
    # The builders had no way to write any of them (Invoice.model only).
    seller = Party("ACME", "ul. Prosta 1, Warszawa", nip="5265877635", vat_prefix="PL", eori="PL526587763500000",
                   correspondence_address=Address("Skrytka pocztowa 12", "00-950 Warszawa"),
                   contacts=[Contact(email="faktury@acme.pl")], taxpayer_status=TaxpayerStatus.LIQUIDATION)  # fmt: skip
    buyer = Party("Käufer GmbH", "Hauptstraße 1, Berlin", eu_vat="DE811569869", eori="DE123456789012345",
                  correspondence_address=Address("Postfach 10 20 30, Wien", country="AT"))  # fmt: skip
    payer = Party("Płatnik", "ul. Długa 3, Kraków", nip="1111111111", eori="PL111111111100000",
                  correspondence_address=Address("ul. Krótka 4, Kraków"), customer_number="P-1")  # fmt: skip
    invoice = _built_with(kind, seller, buyer, [ThirdParty(payer, ThirdPartyRole.PAYER)])
    xml = invoice.to_xml()
    validate_invoice(xml)
    assert (
        b"<Podmiot1><PrefiksPodatnika>PL</PrefiksPodatnika><NrEORI>PL526587763500000</NrEORI><DaneIdentyfikacyjne>"
        b"<NIP>5265877635</NIP><Nazwa>ACME</Nazwa></DaneIdentyfikacyjne><Adres><KodKraju>PL</KodKraju><AdresL1>"
        b"ul. Prosta 1, Warszawa</AdresL1></Adres><AdresKoresp><KodKraju>PL</KodKraju><AdresL1>Skrytka pocztowa 12"
        b"</AdresL1><AdresL2>00-950 Warszawa</AdresL2></AdresKoresp><DaneKontaktowe><Email>faktury@acme.pl</Email>"
        b"</DaneKontaktowe><StatusInfoPodatnika>1</StatusInfoPodatnika></Podmiot1>"
    ) in xml
    assert (
        "<Podmiot2><NrEORI>DE123456789012345</NrEORI><DaneIdentyfikacyjne><KodUE>DE</KodUE><NrVatUE>811569869"
        "</NrVatUE><Nazwa>Käufer GmbH</Nazwa></DaneIdentyfikacyjne><Adres><KodKraju>DE</KodKraju><AdresL1>"
        "Hauptstraße 1, Berlin</AdresL1></Adres><AdresKoresp><KodKraju>AT</KodKraju><AdresL1>Postfach 10 20 30, Wien"
        "</AdresL1></AdresKoresp><JST>2</JST>"
    ).encode() in xml
    assert (
        "<Podmiot3><NrEORI>PL111111111100000</NrEORI><DaneIdentyfikacyjne><NIP>1111111111</NIP><Nazwa>Płatnik</Nazwa>"
        "</DaneIdentyfikacyjne><Adres><KodKraju>PL</KodKraju><AdresL1>ul. Długa 3, Kraków</AdresL1></Adres>"
        "<AdresKoresp><KodKraju>PL</KodKraju><AdresL1>ul. Krótka 4, Kraków</AdresL1></AdresKoresp><Rola>6</Rola>"
        "<NrKlienta>P-1</NrKlienta></Podmiot3>"
    ).encode() in xml
    read = Invoice.from_xml(xml)  # the parser keeps every value
    assert read == invoice
    first, second, third = read.model.podmiot1, read.model.podmiot2, read.model.podmiot3[0]
    assert (first.prefiks_podatnika.value, first.nr_eori, first.status_info_podatnika.value) == (  # type: ignore[union-attr]
        "PL", "PL526587763500000", 1)  # fmt: skip
    assert first.adres_koresp is not None and (first.adres_koresp.adres_l1, first.adres_koresp.adres_l2) == (
        "Skrytka pocztowa 12", "00-950 Warszawa")  # fmt: skip
    assert second.adres_koresp is not None and second.adres_koresp.kod_kraju.value == "AT"
    assert (second.nr_eori, third.nr_eori) == ("DE123456789012345", "PL111111111100000")
    assert third.adres_koresp is not None and third.adres_koresp.adres_l1 == "ul. Krótka 4, Kraków"


def test_a_correspondence_address_without_a_country_is_in_the_party_s_country() -> None:
    # A German buyer's correspondence address written without a country was marked PL (Address's
    # default) while its own address said DE (found by an independent review); the invoice still
    # passed the XSD, so nothing told the user.
    german = Party("Käufer GmbH", "Hauptstraße 1, Berlin", eu_vat="DE811569869",
                   correspondence_address=Address("Postfach 10 20 30, 10115 Berlin"))  # fmt: skip
    polish_elsewhere = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111",
                             correspondence_address=Address("Postfach 1, Wien", country="AT"))  # fmt: skip
    assert Address("Postfach 1").country is None
    for buyer, country in ((german, "DE"), (polish_elsewhere, "AT")):
        xml = _vat(buyer=buyer).to_xml()
        validate_invoice(xml)
        assert f"<AdresKoresp><KodKraju>{country}</KodKraju>".encode() in xml


def test_a_global_location_number_is_written_in_its_address() -> None:
    # TAdres ends with an optional GLN (TGLN: an xsd:token of 1..13 characters), in Adres and in
    # AdresKoresp alike; the builders could write neither (Invoice.model only).
    buyer = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111", gln=" 5901234123457 ",
                  correspondence_address=Address("ul. Pocztowa 5", "30-001 Kraków", gln="5900000000001"))  # fmt: skip
    assert buyer.gln == "5901234123457"
    invoice = _vat(buyer=buyer)
    xml = invoice.to_xml()
    validate_invoice(xml)
    assert b"<AdresL1>ul. Krzywa 2, Krak\xc3\xb3w</AdresL1><GLN>5901234123457</GLN></Adres>" in xml
    assert b"<AdresL2>30-001 Krak\xc3\xb3w</AdresL2><GLN>5900000000001</GLN></AdresKoresp>" in xml
    assert Invoice.from_xml(xml) == invoice
    for bad in ("", " ", "1" * 14, 5901234123457):
        with pytest.raises(ValueError, match=r"party gln: 1\.\.13 characters"):
            Party("A", "B", gln=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"address gln: 1\.\.13 characters"):
            Address("A", gln=bad)  # type: ignore[arg-type]


def test_without_the_new_details_nothing_new_is_written() -> None:
    xml = _vat().to_xml()
    new_tags = (b"AdresKoresp", b"NrEORI", b"StatusInfoPodatnika", b"PrefiksPodatnika", b"GLN")
    assert not any(tag in xml for tag in new_tags)


@pytest.mark.parametrize("status", list(TaxpayerStatus))
def test_each_taxpayer_status_is_its_schema_value(status: TaxpayerStatus) -> None:
    # TStatusInfoPodatnika: 1 "w stanie likwidacji", 2 "w trakcie postępowania restrukturyzacyjnego",
    # 3 "w stanie upadłości", 4 "Przedsiębiorstwo w spadku"; given as the enum or its number.
    for given in (status, int(status)):
        seller = Party("ACME", "ul. Prosta 1, Warszawa", nip="5265877635", taxpayer_status=given)
        assert seller.taxpayer_status is status
        xml = _vat(seller=seller).to_xml()
        validate_invoice(xml)
        assert f"<StatusInfoPodatnika>{int(status)}</StatusInfoPodatnika></Podmiot1>".encode() in xml


def test_new_details_are_counted_and_kept_as_the_schema_s_tokens() -> None:
    # NrEORI: TZnakowy (an xsd:token of 1..256 characters), counted collapsed.
    assert Party("A", "B", eori="  PL 1234\t5 ").eori == "PL 1234 5"
    assert Party("A", "B", eori=" " + "E" * 256 + " ").eori == "E" * 256
    # TAdres's lines are TZnakowy512, as Party's own address.
    assert Address("a" * 512, "b" * 512, country="DE") == Address("a" * 512, "b" * 512, "DE")
    assert hash(Party("A", "B", correspondence_address=Address("C"), taxpayer_status=4, vat_prefix="PL"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        # TAdres: AdresL1 and AdresL2 TZnakowy512 (1..512), KodKraju TKodKraju; as Party's address.
        (lambda: Address(""), r"address line1: 1\.\.512 characters"),
        (lambda: Address(" "), r"address line1: 1\.\.512 characters"),
        (lambda: Address("a" * 513), r"address line1: 1\.\.512 characters"),
        (lambda: Address(7), r"address line1: 1\.\.512 characters"),  # type: ignore[arg-type]
        (lambda: Address("a\x00"), r"address line1: character '\\x00' cannot appear in XML"),
        (lambda: Address("a", ""), r"address line2: 1\.\.512 characters"),
        (lambda: Address("a", "b" * 513), r"address line2: 1\.\.512 characters"),
        (lambda: Address("a", country="XX"), r"address country: 'XX' is not an ISO 3166 code of the schema"),
        (lambda: Address("a", country="pl"), r"address country: 'pl' is not an ISO 3166 code"),
        (lambda: Party("A", "B", correspondence_address="ul. Krótka 4"),  # type: ignore[arg-type]
         r"party correspondence_address: expected an Address \(AdresKoresp\), got 'ul. Krótka 4'"),
        # NrEORI: TZnakowy, 1..256.
        (lambda: Party("A", "B", eori=""), r"party eori: 1\.\.256 characters"),
        (lambda: Party("A", "B", eori=" \t"), r"party eori: 1\.\.256 characters"),
        (lambda: Party("A", "B", eori="E" * 257), r"party eori: 1\.\.256 characters"),
        (lambda: Party("A", "B", eori=12345), r"party eori: 1\.\.256 characters"),  # type: ignore[arg-type]
        (lambda: Party("A", "B", eori="PL\x7f1"), r"party eori: character U\+007F"),
        # TStatusInfoPodatnika: 1..4.
        (lambda: Party("A", "B", taxpayer_status=0), r"party taxpayer_status: 0 is not a TaxpayerStatus"),
        (lambda: Party("A", "B", taxpayer_status=5), r"party taxpayer_status: 5 is not a TaxpayerStatus"),
        (lambda: Party("A", "B", taxpayer_status=True), r"party taxpayer_status: True is not a TaxpayerStatus"),
        (lambda: Party("A", "B", taxpayer_status="1"), r"party taxpayer_status: '1' is not a TaxpayerStatus"),  # type: ignore[arg-type]
        (lambda: Party("A", "B", taxpayer_status=ThirdPartyRole.FACTOR),
         r"party taxpayer_status: <ThirdPartyRole.FACTOR: 1> is not a TaxpayerStatus"),
        # PrefiksPodatnika: TKodyKrajowUE fixed="PL".
        (lambda: Party("A", "B", vat_prefix="DE"),
         r"party vat_prefix: 'DE', but FA\(3\) fixes PrefiksPodatnika to 'PL'"),
        (lambda: Party("A", "B", vat_prefix="pl"), r"party vat_prefix: 'pl', but FA\(3\) fixes"),
        (lambda: Party("A", "B", vat_prefix=" PL"), r"party vat_prefix: ' PL', but FA\(3\) fixes"),
        # StatusInfoPodatnika and PrefiksPodatnika are in Podmiot1 alone.
        (lambda: _vat(buyer=Party("A", "B", nip="1111111111", taxpayer_status=TaxpayerStatus.BANKRUPTCY)),
         r"buyer: taxpayer_status \(StatusInfoPodatnika\) is the seller's; FA\(3\) has it in Podmiot1 alone"),
        (lambda: _vat(buyer=Party("A", "B", nip="1111111111", vat_prefix="PL")),
         r"buyer: vat_prefix \(PrefiksPodatnika\) is the seller's; FA\(3\) has it in Podmiot1 alone"),
        (lambda: ThirdParty(Party("A", "B", nip="1111111111", taxpayer_status=2), ThirdPartyRole.PAYER),
         r"third party: taxpayer_status \(StatusInfoPodatnika\) is the seller's"),
        (lambda: ThirdParty(Party("A", "B", nip="1111111111", vat_prefix="PL"), "Spedytor"),
         r"third party: vat_prefix \(PrefiksPodatnika\) is the seller's"),
    ],
)  # fmt: skip
def test_correspondence_addresses_eori_numbers_and_the_seller_s_details_are_checked_by_name(
    build: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        build()
    assert type(raised.value) is ValueError


@pytest.mark.parametrize("kind", BUILT_ON)
def test_a_buyer_with_the_seller_s_details_is_refused_before_anything_is_built(kind: str) -> None:
    # Found with the other arguments' checks, before the lines are looked at (which are wrong too).
    buyer = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111", taxpayer_status=TaxpayerStatus.RESTRUCTURING)
    common: dict[str, Any] = {"number": "X/1", "issue_date": dt.date(2026, 3, 2), "seller": SELLER, "buyer": buyer}
    with pytest.raises(ValueError, match=r"buyer: taxpayer_status \(StatusInfoPodatnika\) is the seller's"):
        if kind == "vat":
            vat_invoice(lines=["not a line"], **common)
        elif kind == "correction":
            correction(corrected=CorrectedInvoice.of(_vat()), before=["not a line"], after=[], **common)
        elif kind == "settlement":
            settlement(lines=["not a line"], advances=["not an advance"], **common)
        elif kind == "advance_correction":
            advance_correction(corrected=_advance(), order=["not a line"], received="-1", **common)
        elif kind == "settlement_correction":
            settlement_correction(corrected=_settled(), advances=["not an advance"], lines=["not a line"], **common)
        elif kind == "party_correction":
            party_correction(corrected=CorrectedInvoice.of(_vat()), seller_before="not a party", **common)
        elif kind == "number_correction":
            number_correction(corrected=CorrectedInvoice.of(_vat()), right_number="", **common)
        elif kind == "discount_correction":
            discount_correction(corrected=["not a reference"], period="", discount={}, **common)
        else:
            advance(order=["not a line"], received="10.00", **common)


def test_the_builder_modules_import_one_way_and_the_names_import_as_before() -> None:
    # builders and advances imported each other (advances took builders' helpers, builders
    # re-exported advances' names at its end). Now parties <- _shared <- advances <- builders, and
    # _shared <- corrections <- builders.
    import ksef_client.invoice
    from ksef_client.invoice import advances, builders, parties

    for name in ("Address", "Contact", "Party", "TaxpayerStatus", "ThirdParty", "ThirdPartyRole"):
        assert getattr(builders, name) is getattr(parties, name) is getattr(ksef_client.invoice, name)
    assert builders.CorrectedInvoice is _shared.CorrectedInvoice is CorrectedInvoice
    package = Path(ksef_client.invoice.__file__).parent
    forbidden = {"parties": {"_shared", "advances", "builders"}, "_shared": {"advances", "builders"}}
    forbidden["advances"] = {"builders", "corrections"}
    forbidden["corrections"] = {"builders", "advances"}
    for module, others in forbidden.items():
        tree = ast.parse((package / f"{module}.py").read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {f"ksef_client.invoice.{other}" for other in others} & imported, module
    assert advances.advance is builders.advance
