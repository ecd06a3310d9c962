"""Foreign-currency invoices whose rows are converted at different exchange rates (``KursWaluty``
on each ``FaWiersz``), and their corrections.

FA(3) XSD: ``KursWaluty`` on a row is the "Kurs waluty stosowany do wyliczenia kwoty podatku w
przypadkach, o których mowa w dziale VI ustawy" (art. 31a: each supply at the rate of its own tax
point), and ``P_14_1W`` the tax "przeliczona zgodnie z przepisami działu VI". The Ministry's
sample ``FA_3_Przykład_21.xml`` (an EUR invoice FV2026/02/150 of 2026-02-15, three rows at 23 %,
each with its own ``P_6A`` and rate) is rebuilt here with its figures: 10 x 406, 20 x 250 and 15 x
300 EUR at 4.4080, 4.5005 and 4.3250; ``P_13_1`` 13 560, ``P_14_1`` 3 118.80, ``P_15`` 16 678.80,
``P_14_1W`` 13 768.14 = 23 % x (4 060 x 4.4080 + 5 000 x 4.5005 + 4 500 x 4.3250) = 23 % x
59 861.48 = 13 768.1404, rounded once (row by row: 4 116.19 + 5 175.58 + 4 476.38 = 13 768.15).

``correction()`` read the invoice as having no rate, then needed one and converted every row at
it: with 4.4080, a 10 % price cut on the first and third rows came to ``P_14_1W`` -867.85, and the
third row was restated at 4.4080 instead of 4.3250 (review s13-samples, 2).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ksef_client.invoice import (
    RATES,
    AdvanceInvoice,
    CorrectedInvoice,
    Invoice,
    Line,
    Party,
    advance,
    advance_correction,
    correction,
    settlement,
    settlement_correction,
    vat_invoice,
)
from ksef_client.invoice.totals import line_totals
from ksef_client.schemas import validate_invoice

D = Decimal
SELLER = Party("ABC AGD sp. z o. o.", "ul. Kwiatowa 1 m. 2, 00-001 Warszawa", nip="5265877635")
BUYER = Party("CDE sp. j.", "ul. Sadowa 1 lok. 3, 00-002 Kraków", nip="1111111111")
FRIDGE = Line("lodówka Zimnotech mk1", 10, "406", exchange_rate=D("4.4080"))
FREEZER = Line("zamrażarka Zimnotech mk2", 20, "250", exchange_rate=D("4.5005"))
DISHWASHER = Line("zmywarka Bryza 100", 15, "300", exchange_rate=D("4.3250"))
P21 = [FRIDGE, FREEZER, DISHWASHER]
KOR: dict[str, Any] = {"number": "FK/2026/03/1", "issue_date": dt.date(2026, 3, 1), "seller": SELLER, "buyer": BUYER}


def _p21(lines: list[Line] = P21, **options: Any) -> Invoice:
    return vat_invoice(
        number="FV2026/02/150", issue_date=dt.date(2026, 2, 15), seller=SELLER, buyer=BUYER, lines=lines,
        **{"currency": "EUR", **options},
    )  # fmt: skip


def _cut(line: Line) -> Line:
    """``line`` 10 % cheaper, as a user writes it (no rate: it takes the rate of the row it replaces)."""
    return Line(line.name, line.quantity, line.unit_price * D("0.9"), line.rate, line.unit)


def _rates(invoice: Invoice) -> list[tuple[str, bool, Decimal | None]]:
    return [(row.p_7, row.stan_przed is not None, row.kurs_waluty) for row in invoice.model.fa.fa_wiersz]


def test_the_ministry_s_przyklad_21_is_built_with_each_row_at_its_own_rate() -> None:
    invoice = _p21()
    assert invoice.totals() == {"p_13_1": D("13560.00"), "p_14_1": D("3118.80"), "p_14_1_w": D("13768.14")}
    assert invoice.gross == D("16678.80")
    assert [row.kurs_waluty for row in invoice.model.fa.fa_wiersz] == [D("4.4080"), D("4.5005"), D("4.3250")]
    validate_invoice(invoice.to_xml())
    # Read back as a user reads an invoice to correct: no one rate, each line keeps its own.
    reference = CorrectedInvoice.of(Invoice.from_xml(invoice.to_xml()))
    assert reference.exchange_rate is None
    assert reference.lines == tuple(P21)


def test_several_rates_of_a_field_tax_the_converted_values_rounded_once() -> None:
    assert line_totals(P21).fields["p_14_1_w"] == D("13768.14")  # not 13768.15, row by row
    # One rate for all: P_14_x x the rate, rounded (the rule before; 10.01 x 23 % = 2.3023 -> 2.30).
    assert line_totals([Line("a", 1, "10.01")], D("4.5")).fields["p_14_1_w"] == D("10.35")  # 2.30 x 4.5
    assert line_totals([Line("a", 1, "10.01", exchange_rate=D("4.5"))]).fields["p_14_1_w"] == D("10.35")
    # Two rates: 23 % x (10.01 x 4.5 + 10.01 x 4.4) = 20.49047 (P_14_1 4.60 x either rate would not do).
    two = line_totals([Line("a", 1, "10.01", exchange_rate=D("4.5")), Line("b", 1, "10.01", exchange_rate=D("4.4"))])
    assert two.fields == {"p_13_1": D("20.02"), "p_14_1": D("4.60"), "p_14_1_w": D("20.49")}
    # A line without a rate among lines with their own, and no rate for it: refused, not left out.
    with pytest.raises(ValueError, match=r"Line\(name='b'.*: no exchange rate, and other lines taxed"):
        line_totals([Line("a", 1, "10.01", exchange_rate=D("4.5")), Line("b", 1, "10.01")])
    # The invoice's rate for the lines without one; an untaxed line's rate converts nothing.
    mixed = line_totals([Line("a", 1, "10.01", exchange_rate=D("4.5")), Line("b", 1, "10.01")], D("4.4"))
    assert mixed.fields["p_14_1_w"] == D("20.49")
    assert "p_14_1_w" not in line_totals([Line("z", 1, "10", "0 WDT", exchange_rate=D("4.5"))]).fields


def test_a_correction_of_przyklad_21_converts_each_row_at_its_own_rate() -> None:
    reference = CorrectedInvoice.of(_p21())
    before = [reference.lines[0], reference.lines[2]]
    kor = correction(**KOR, corrected=reference, before=before, after=[_cut(line) for line in before])
    # Net: -406.00 - 450.00; tax: 2 921.92 - 3 118.80 (23 % of 12 704 and of 13 560).
    # In złoty, before: 13 768.14 (as the invoice shows); after: 23 % x (3 654 x 4.4080 + 5 000 x
    # 4.5005 + 4 050 x 4.3250) = 23 % x 56 125.582 = 12 908.88; the change -859.26 (not -867.85).
    assert kor.totals() == {"p_13_1": D("-856.00"), "p_14_1": D("-196.88"), "p_14_1_w": D("-859.26")}
    assert kor.gross == D("-1052.88")
    assert _rates(kor) == [
        ("lodówka Zimnotech mk1", True, D("4.4080")), ("zmywarka Bryza 100", True, D("4.3250")),
        ("lodówka Zimnotech mk1", False, D("4.4080")), ("zmywarka Bryza 100", False, D("4.3250")),
    ]  # fmt: skip
    validate_invoice(kor.to_xml())
    # The invoice plus its correction is the invoice as corrected, in złoty too.
    corrected = _p21([Line(FRIDGE.name, 10, "365.40", exchange_rate=D("4.4080")), FREEZER,
                      Line(DISHWASHER.name, 15, "270.00", exchange_rate=D("4.3250"))])  # fmt: skip
    assert corrected.totals()["p_14_1_w"] == D("12908.88") == D("13768.14") + kor.totals()["p_14_1_w"]
    # The lines before written by hand, without their rates, are the invoice's (each at one rate).
    by_hand = [Line("lodówka Zimnotech mk1", 10, "406"), Line("zmywarka Bryza 100", 15, "300")]
    again = correction(**KOR, corrected=reference, before=by_hand, after=[_cut(line) for line in by_hand])
    assert again.totals() == kor.totals() and _rates(again) == _rates(kor)


def test_the_rows_after_a_correction_take_the_rate_given_or_of_the_row_they_replace() -> None:
    reference = CorrectedInvoice.of(_p21())
    fridge, _, dishwasher = reference.lines or ()
    # A row after at another rate than the row it replaces: given on it; the rows before keep theirs.
    at_430 = replace(_cut(fridge), exchange_rate=D("4.30"))
    kor = correction(**KOR, corrected=reference, before=[fridge], after=[at_430])
    assert _rates(kor) == [("lodówka Zimnotech mk1", True, D("4.4080")), ("lodówka Zimnotech mk1", False, D("4.30"))]
    # After: 23 % x (3 654 x 4.30 + 5 000 x 4.5005 + 4 500 x 4.3250) = 13 265.756 -> 13 265.76.
    assert kor.totals()["p_14_1_w"] == D("13265.76") - D("13768.14")
    # exchange_rate= once converted both states: one other than the rows before's is refused, not
    # given a new meaning without a word (review s13-rates, 1); nor one that converts nothing.
    with pytest.raises(ValueError, match=r"exchange_rate=4\.30: the rows before the correction keep the rate the "
                       r"invoice converted them at \(4\.4080\)"):  # fmt: skip
        correction(**KOR, corrected=reference, before=[fridge], after=[_cut(fridge)], exchange_rate="4.30")
    with pytest.raises(ValueError, match=r"exchange_rate=4\.35 converts nothing"):
        correction(**KOR, corrected=reference, before=[], after=[at_430], exchange_rate="4.35")
    assert _rates(correction(**KOR, corrected=reference, before=[fridge], after=[_cut(fridge)],
                             exchange_rate="4.4080"))[1][2] == D("4.4080")  # fmt: skip
    # A line's own rate comes first.
    own = Line("lodówka Zimnotech mk1", 10, "365.40", exchange_rate=D("4.41"))
    kor = correction(**KOR, corrected=reference, before=[fridge], after=[own])
    assert _rates(kor)[1][2] == D("4.41")
    # Lines after listed in another order keep their own line's rate, not the one in their place
    # (review s13-rates, 2: the dishwasher went to 4.4080 and P_14_1W to -851.70).
    kor = correction(**KOR, corrected=reference, before=[fridge, dishwasher], after=[_cut(dishwasher), _cut(fridge)])
    assert [rate for _, _, rate in _rates(kor)] == [D("4.4080"), D("4.3250"), D("4.3250"), D("4.4080")]
    assert kor.totals()["p_14_1_w"] == D("-859.26")
    # A line renamed takes the rate of the line in its place.
    renamed = replace(_cut(fridge), name="lodówka Zimnotech mk2")
    kor = correction(**KOR, corrected=reference, before=[fridge, dishwasher], after=[renamed, _cut(dishwasher)])
    assert [rate for _, _, rate in _rates(kor)][2:] == [D("4.4080"), D("4.3250")]
    # A line added beside one the before lines share a rate with: that rate.
    added = Line("montaż", 1, "100")
    kor = correction(**KOR, corrected=reference, before=[dishwasher], after=[_cut(dishwasher), added])
    assert [rate for _, _, rate in _rates(kor)] == [D("4.3250")] * 3
    # A renamed line, before and after not one to one, the before lines at two rates: not guessed.
    with pytest.raises(ValueError, match=r"after\[0\]: .* needs an exchange rate: the corrected invoice's lines are at "
                       r"4\.4080, 4\.5005, 4\.3250"):  # fmt: skip
        correction(**KOR, corrected=reference, before=[fridge, dishwasher], after=[renamed])
    # ... but a line of a before line's name and unit is that line changed (the other one removed).
    kor = correction(**KOR, corrected=reference, before=[fridge, dishwasher], after=[_cut(fridge)])
    assert [rate for _, _, rate in _rates(kor)] == [D("4.4080"), D("4.3250"), D("4.4080")]
    with pytest.raises(ValueError, match=r"after\[0\]: Line\(name='montaż'.* 4\.4080, 4\.5005, 4\.3250"):
        correction(**KOR, corrected=reference, before=[], after=[added])
    assert _rates(correction(**KOR, corrected=reference, before=[], after=[added], exchange_rate="4.35")) == [
        ("montaż", False, D("4.35"))
    ]


def test_an_untaxed_line_added_with_exchange_rate_is_not_refused_as_converting_nothing() -> None:
    # review s13-last, 3: exchange_rate= with only a zw line after (none before) was refused, "every
    # taxed line after the correction has an exchange_rate of its own", with no taxed line at all;
    # vat_invoice takes exchange_rate= on such lines, and so did correction() with a line before.
    eur = _p21([Line("A", 1, "100"), Line("Z", 1, "100", "zw")], exchange_rate="4.30", exemption="art. 43")
    reference = CorrectedInvoice.of(Invoice.from_xml(eur.to_xml()))
    kor = correction(**KOR, corrected=reference, before=[], after=[Line("Z2", 1, "50", "zw")], exchange_rate="4.30",
                     exemption="art. 43")  # fmt: skip
    assert kor.totals() == {"p_13_7": D("50.00")}
    validate_invoice(kor.to_xml())
    # Taxed lines after, each at a rate of its own: still refused.
    own = Line("B", 1, "50", exchange_rate=D("4.40"))
    with pytest.raises(ValueError, match=r"exchange_rate=4\.30 converts nothing: every taxed line after"):
        correction(**KOR, corrected=reference, before=[], after=[own, Line("Z2", 1, "50", "zw")], exchange_rate="4.30",
                   exemption="art. 43")  # fmt: skip


def test_a_before_line_is_matched_to_the_invoice_s_at_its_rate() -> None:
    twice = [Line("a", 1, "100", exchange_rate=D("4.40")), Line("a", 1, "100", exchange_rate=D("4.50"))]
    reference = CorrectedInvoice.of(_p21(twice))
    assert reference.lines == tuple(twice)
    with pytest.raises(ValueError, match=r"before: .* at several exchange rates \(4\.40, 4\.50\): give it as"):
        correction(**KOR, corrected=reference, before=[Line("a", 1, "100")], after=[])
    kor = correction(**KOR, corrected=reference, before=[twice[1]], after=[])
    assert _rates(kor) == [("a", True, D("4.50"))]
    assert kor.totals()["p_14_1_w"] == D("-103.50")  # 23.00 x 4.50
    with pytest.raises(ValueError, match=r"before: .* is not a line of the corrected invoice .*; the corrected "
                       r"invoice has it at 4\.4080"):  # fmt: skip
        correction(**KOR, corrected=CorrectedInvoice.of(_p21()), before=[Line(FRIDGE.name, 10, "406",
                   exchange_rate=D("4.3250"))], after=[])  # fmt: skip


def test_one_rate_for_the_invoice_restates_the_rows_before_at_it_and_converts_the_rows_after_at_the_new() -> None:
    # The corrected invoice at 4.30; the correction's rows after at 4.50. The rows before were
    # written at 4.50 too, and P_14_1W was (184.00 - 230.00) x 4.50 = -207.00, not the change of
    # the 989.00 the invoice showed.
    work = Line("Beratung", 10, "100.00")
    eur = _p21([work], exchange_rate="4.30")
    assert eur.totals()["p_14_1_w"] == D("989.00")
    reference = CorrectedInvoice.of(eur)
    assert (reference.exchange_rate, reference.lines) == (D("4.30"), (work,))
    kor = correction(**KOR, corrected=reference, before=[work],
                     after=[Line("Beratung", 8, "100.00", exchange_rate=D("4.50"))])  # fmt: skip
    assert _rates(kor) == [("Beratung", True, D("4.30")), ("Beratung", False, D("4.50"))]
    assert kor.totals()["p_14_1_w"] == D("828.00") - D("989.00")  # 184.00 x 4.50 - 230.00 x 4.30


def test_a_correction_of_a_23_percent_line_converts_the_whole_field_with_its_22_percent_lines() -> None:
    # P_14_1 holds 23 % and 22 %, and P_14_1W converts it whole: 0.46 + 0.22 = 0.68 x 4.3 = 2.92 as
    # issued, 0.23 + 0.22 = 0.45 x 4.3 = 1.94 after, so -0.98. The 23 % lines were converted alone,
    # 0.23 x 4.3 - 0.46 x 4.3 = 0.99 - 1.98 = -0.99, and the invoice plus its correction came to 1.93.
    old, other = Line("x", 2, "1.00", "23"), Line("y", 1, "1.00", "22")
    invoice = _p21([old, other], exchange_rate="4.3")
    kor = correction(**KOR, corrected=CorrectedInvoice.of(invoice), before=[old], after=[Line("x", 1, "1.00", "23")])
    assert kor.totals() == {"p_13_1": D("-1.00"), "p_14_1": D("-0.23"), "p_14_1_w": D("-0.98")}
    assert invoice.totals()["p_14_1_w"] + kor.totals()["p_14_1_w"] == D("1.94")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _p21([Line("a", 1, "1", exchange_rate=D("4.4"))], currency="PLN"),
         r"lines\[0\]: exchange_rate 4\.4: only for an invoice in a foreign currency"),
        (lambda: CorrectedInvoice("F/1", dt.date(2026, 3, 2), lines=[FRIDGE]),
         r"corrected lines\[0\]: exchange_rate 4\.4080: only for an invoice in a foreign currency"),
        (lambda: Line("a", 1, "1", exchange_rate=D("0")), "line exchange_rate: 0 must be greater than 0"),
        (lambda: Line("a", 1, "1", exchange_rate=D("4.1234567")), "line exchange_rate: .* more than 6 decimal"),
        (lambda: _p21([Line("a", 1, "1"), FRIDGE]), "exchange_rate: required for an invoice in EUR"),
        # review s13-rates, 3: a rate no line takes was left out without a word
        (lambda: _p21([FRIDGE], exchange_rate="9.99"), r"exchange_rate=9\.99 converts nothing: every taxed line has "
         r"an exchange_rate of its own \(4\.4080\)"),
    ],
)  # fmt: skip
def test_line_exchange_rates_are_checked(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


ORDER = [Line("Meble", 1, "1000.00", exchange_rate=D("4.30"))]
PARTIES: dict[str, Any] = {"issue_date": dt.date(2026, 3, 2), "seller": SELLER, "buyer": BUYER}


def _advance() -> AdvanceInvoice:
    zal = advance(number="Z/1", order=[Line("Meble", 1, "1000.00")], received="615.00", currency="EUR",
                  exchange_rate="4.30", **PARTIES)  # fmt: skip
    return AdvanceInvoice.of(zal)


def _roz_at_two_rates() -> Invoice:
    """A settlement invoice in EUR whose rows another program wrote at two rates."""
    lines = [Line("Meble", 1, "1000.00"), Line("Montaż", 1, "100.00")]
    roz = settlement(number="R/1", lines=lines, advances=[_advance()], currency="EUR", exchange_rate="4.30",
                     **PARTIES)  # fmt: skip
    roz.model.fa.fa_wiersz[1].kurs_waluty = D("4.35")
    return Invoice.from_xml(roz.to_xml())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: advance(number="Z/1", order=ORDER, received="615.00", currency="EUR", exchange_rate="4.3",
                         **PARTIES),
         r"order\[0\]: exchange_rate 4\.30: an order's rows \(ZamowienieWiersz\) have no exchange rate"),
        (lambda: AdvanceInvoice("Z/1", dt.date(2026, 3, 2), totals={"p_13_1": "500", "p_14_1": "115"},
                                order=ORDER, currency="EUR", exchange_rate="4.3"),
         r"advance order\[0\]: exchange_rate 4\.30: an order's rows"),
        (lambda: advance_correction(number="K/1", corrected=_advance(), order=ORDER, **PARTIES),
         r"order\[0\]: exchange_rate 4\.30: an order's rows"),
        (lambda: settlement(number="R/1", lines=ORDER, advances=[_advance()], currency="EUR", **PARTIES),
         r"lines\[0\]: exchange_rate 4\.30: a settlement invoice's tax in złoty is what remains"),
        (lambda: settlement_correction(number="K/1", corrected=CorrectedInvoice.of(_roz_at_two_rates()),
                                       advances=[_advance()], **PARTIES),
         r"corrected: the settlement invoice's lines have exchange rates of their own \(4\.30, 4\.35;"),
    ],
)  # fmt: skip
def test_the_builders_that_convert_at_one_rate_refuse_lines_at_their_own(build: Any, message: str) -> None:
    # A ZAL has one KursWalutyZ and no rate on its order rows; a ROZ and its correction convert
    # the tax left after the advances, which has no rows to convert by, at one rate.
    with pytest.raises(ValueError, match=message):
        build()


def _expected_in_pln(lines: list[Line]) -> dict[str, Decimal]:
    """``P_14_xW`` of ``lines`` (each with its rate), the rule written again: per field, one rate:
    the field's tax (each VAT rate's, rounded, added) x it; several: the percent x the sum of each
    value x its rate; rounded once."""
    out: dict[str, Decimal] = {}
    for fields in {RATES[line.rate].tax_pln: RATES[line.rate] for line in lines}.values():
        mine = [(line, line.exchange_rate or Decimal(0), RATES[line.rate].percent or Decimal(0))
                for line in lines if line.fields.tax_pln == fields.tax_pln]  # fmt: skip
        if fields.tax_pln is None:
            continue
        if len({rate for _, rate, _ in mine}) == 1:
            tax = Decimal(0)
            for percent in {percent for _, _, percent in mine}:
                tax += _cents(sum((line.net for line, _, p in mine if p == percent), Decimal(0)) * percent / 100)
            out[fields.tax_pln] = _cents(tax * mine[0][1])
        else:
            out[fields.tax_pln] = _cents(sum((line.net * rate * percent / 100 for line, rate, percent in mine), D(0)))
    return out


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


_RATED = st.builds(
    Line,
    name=st.sampled_from(["a", "b", "c"]),
    quantity=st.decimals(Decimal("0.001"), Decimal("1000"), places=3),
    unit_price=st.decimals(Decimal("-100"), Decimal("10000"), places=2),
    rate=st.sampled_from(["23", "22", "8", "5", "0 WDT", "zw"]),
    exchange_rate=st.sampled_from([D("4.4080"), D("4.5005"), D("4.3250"), D("3.999999")]),
)


@settings(max_examples=int(os.environ.get("INVOICE_PROPERTY_EXAMPLES", "40")), deadline=None, derandomize=True)
@given(kept=st.lists(_RATED, max_size=4), before=st.lists(_RATED, max_size=3), after=st.lists(_RATED, max_size=3))
def test_random_corrections_at_per_row_rates_add_up_in_zloty(
    kept: list[Line], before: list[Line], after: list[Line]
) -> None:
    # Each state of the invoice totalled with each line at its own rate: the invoice's P_14_xW plus
    # the correction's is that of the invoice as corrected, and each is the rule's.
    assume((kept or before) and (before or after))
    original = [*kept, *before]
    reference = CorrectedInvoice("FV/1", dt.date(2026, 2, 15), lines=original, currency="EUR")
    kor = correction(**KOR, corrected=reference, before=before, after=after,
                     exemption="art. 43 ust. 1 pkt 19 ustawy o VAT" if any(
                         line.rate == "zw" for line in [*before, *after]) else None)  # fmt: skip
    validate_invoice(kor.to_xml())
    touched = {RATES[line.rate].tax_pln for line in [*before, *after]} - {None}
    issued, now = _expected_in_pln(original), _expected_in_pln([*kept, *after])
    zero = Decimal("0.00")
    for field in touched:
        assert issued.get(str(field), zero) + kor.totals().get(str(field), zero) == now.get(str(field), zero)
    rows = [(row.stan_przed is not None, row.kurs_waluty) for row in kor.model.fa.fa_wiersz]
    expected = [*before, *after]
    assert rows == [(index < len(before), line.exchange_rate if line.fields.tax else None)
                    for index, line in enumerate(expected)]  # fmt: skip


def test_the_same_goods_at_two_rates_are_paired_in_order() -> None:
    # One product supplied at two tax points, so on two rows at 4.40 and 4.50: each row after
    # takes the rate of the row of its name it replaces, in order. Was (review s13-final, 1):
    # refused with a message saying no before line had its name, and exchange_rate= refused too.
    first, second = (Line("cement", n, "100", exchange_rate=D(r)) for n, r in [(10, "4.40"), (20, "4.50")])
    reference = CorrectedInvoice.of(_p21([first, second]))
    cut = [Line("cement", n, "90") for n in (10, 20)]
    kor = correction(**KOR, corrected=reference, before=[first, second], after=cut)
    assert [rate for _, _, rate in _rates(kor)] == [D("4.40"), D("4.50"), D("4.40"), D("4.50")]
    # 23 % x (-100 x 4.40 - 200 x 4.50) = -308.20
    assert kor.totals() == {"p_13_1": D("-300.00"), "p_14_1": D("-69.00"), "p_14_1_w": D("-308.20")}
    uneven = r"the before lines of its name and unit are at 4\.40, 4\.50, 2 of them, and the lines after with that"
    with pytest.raises(ValueError, match=rf"after\[0\]: .* needs an exchange rate: {uneven} name and unit are 1"):
        correction(**KOR, corrected=reference, before=[first, second], after=cut[:1])
    # A renamed line does not take the rate of a line another line after replaces.
    fridge, _, dishwasher = CorrectedInvoice.of(_p21()).lines or ()
    renamed = replace(_cut(fridge), name="lodówka Zimnotech mk2")
    with pytest.raises(ValueError, match=r"after\[1\]: Line\(name='lodówka Zimnotech mk2'.* needs an exchange rate"):
        correction(**KOR, corrected=CorrectedInvoice.of(_p21()), before=[fridge, dishwasher],
                   after=[_cut(dishwasher), renamed])  # fmt: skip
