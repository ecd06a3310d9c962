"""Random invoices: every one the builders make is XSD-valid, reads back equal, and its totals add up.

The totals are checked against an independent reading of the rules (``ksef_client.invoice.totals``
docstring): per rate, the net is the sum of the rounded line values and the tax is the rate applied
once to that sum, rounded half up; the gross is every net plus every tax. ``make test`` runs a few
dozen examples (``INVOICE_PROPERTY_EXAMPLES`` for more).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from hypothesis import HealthCheck, assume, given, settings
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
    vat_invoice,
)
from ksef_client.invoice.totals import split_payment
from ksef_client.schemas import validate_invoice

EXAMPLES = int(os.environ.get("INVOICE_PROPERTY_EXAMPLES", "40"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
SELLER = Party("Sprzedawca", "ul. Prosta 1, Warszawa", nip="5265877635")
BUYERS = st.sampled_from([
    Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111"),
    Party("Kunde GmbH", "Berlin", eu_vat="DE811569869", country="DE"),
    Party("Client Inc.", "New York", tax_id="12-3456789", country="US"),
    Party("Jan Kowalski", "ul. Polna 3, Łódź"),
])  # fmt: skip
PERCENT = {"23": 23, "22": 22, "8": 8, "7": 7, "5": 5, "4": 4, "3": 3}


def decimals(places: int, low: str, high: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(Decimal(low), Decimal(high), places=places, allow_nan=False, allow_infinity=False)


def _a_line_name(text: str) -> bool:
    """Whether ``Line`` takes ``text`` as a name (not the characters KSeF refuses, U+FDD0...)."""
    try:
        Line(text, 1, 1)
    except ValueError:
        return False
    return True


lines = st.builds(
    Line,
    name=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
        lambda s: s.strip() == s and s != "" and _a_line_name(s)
    ),
    quantity=decimals(6, "0.000001", "100000"),
    unit_price=decimals(8, "-1000", "1000000"),
    rate=st.sampled_from(list(RATES)),
    unit=st.sampled_from(["szt.", "h", "kg", "usł."]),
)
currencies = st.one_of(st.just(("PLN", None)), st.tuples(st.sampled_from(["EUR", "USD", "CHF"]),
                                                         decimals(6, "0.000001", "10")))  # fmt: skip


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def expected_totals(items: list[Line]) -> dict[str, Decimal]:
    """The rules, written again without the module's helpers."""
    out: dict[str, Decimal] = {}
    for rate, fields in RATES.items():
        mine = [cents(line.quantity * line.unit_price) for line in items if line.rate == rate]
        if not mine:
            continue
        out[fields.net] = out.get(fields.net, Decimal(0)) + sum(mine, Decimal(0))
        if rate in PERCENT:
            tax = cents(sum(mine, Decimal(0)) * PERCENT[rate] / 100)
            out[fields.tax or ""] = out.get(fields.tax or "", Decimal(0)) + tax
    return out


def check(invoice: Invoice) -> bytes:
    xml = invoice.to_xml(validate=False)
    validate_invoice(xml)
    assert not xml.startswith(b"\xef\xbb\xbf") and xml.decode("utf-8")
    assert Invoice.from_xml(xml) == invoice
    fields = invoice.totals()
    nets_and_taxes = {k: v for k, v in fields.items() if not k.endswith("_w")}
    assert invoice.gross == sum(nets_and_taxes.values(), Decimal(0))
    return xml


BASIS = "art. 43 ust. 1 pkt 19 ustawy o VAT"


def basis(lines: list[Line]) -> str | None:
    """The exemption's legal basis, which an invoice with a "zw" line needs."""
    return BASIS if any(line.rate == "zw" for line in lines) else None


@PROPERTY
@given(items=st.lists(lines, min_size=1, max_size=8), buyer=BUYERS, money=currencies,
       day=st.dates(dt.date(2025, 9, 1), dt.date(2049, 12, 31)))  # fmt: skip
def test_random_vat_invoices_are_valid_and_add_up(
    items: list[Line], buyer: Party, money: tuple[str, Decimal | None], day: dt.date
) -> None:
    currency, rate = money
    invoice = vat_invoice(number="FV/P/1", issue_date=day, seller=SELLER, buyer=buyer, lines=items,
                          currency=currency, exchange_rate=rate, exemption=basis(items),
                          allow_future_issue_date=True)  # any day of the schema's range  # fmt: skip
    check(invoice)
    # FA(3)'s annotations follow the lines: P_18 "1" ("odwrotne obciążenie") with a line at which the
    # buyer accounts for the tax, P_19 "1" with its legal basis with an exempt line, else P_19N.
    xml = invoice.to_xml()
    assert (b"<P_18>1</P_18>" in xml) == any(line.rate in ("oo", "np II") for line in items)
    assert (b"<P_19>1</P_19><P_19A>" + BASIS.encode() in xml) == any(line.rate == "zw" for line in items)
    totals = invoice.totals()
    assert {k: v for k, v in totals.items() if not k.endswith("_w")} == expected_totals(items)
    for name, value in totals.items():
        if name.endswith("_w"):
            assert rate is not None and value == cents(totals[name.removesuffix("_w")] * rate)
    assert sum(r.p_11 or 0 for r in invoice.model.fa.fa_wiersz) == sum(
        v for k, v in totals.items() if k.startswith("p_13_"))  # fmt: skip


@PROPERTY
@given(kept=st.lists(lines, max_size=4), before=st.lists(lines, max_size=4), after=st.lists(lines, max_size=4))
def test_random_corrections_are_the_difference(kept: list[Line], before: list[Line], after: list[Line]) -> None:
    # FA(3) XSD, P_13_x/P_14_x of a correction: "kwota różnicy, o której mowa w art. 106j ust. 2
    # pkt 5 ustawy": the invoice as corrected minus the invoice as issued, each rate taxed on its
    # whole sum. So the original's totals plus the correction's are the corrected invoice's, even
    # when the correction shows only some of the lines (was: the lines shown were totalled alone,
    # a grosz off at times).
    if not before and not after:
        after = [Line("x", 1, 1)]
    assume(kept or before)
    original = [*kept, *before]
    corrected = CorrectedInvoice("FV/P/1", dt.date(2026, 4, 1), lines=original)
    invoice = correction(number="KOR/P/1", issue_date=dt.date(2026, 5, 1), seller=SELLER,
                         buyer=Party("Nabywca", "Kraków", nip="1111111111"),
                         corrected=corrected, before=before, after=after,
                         exemption=basis([*before, *after]))  # fmt: skip
    check(invoice)
    issued, now = expected_totals(original), expected_totals([*kept, *after])
    summed = {n: issued.get(n, Decimal(0)) + invoice.totals().get(n, Decimal(0)) for n in {*issued, *invoice.totals()}}
    assert {n: v for n, v in summed.items() if v or n in now} == now
    touched = {RATES[line.rate].net for line in [*before, *after]}
    assert {n for n in invoice.totals() if n.startswith("p_13_")} == touched  # only the rates it touches
    flags = [row.stan_przed is not None for row in invoice.model.fa.fa_wiersz]
    assert flags == [True] * len(before) + [False] * len(after)


@PROPERTY
@given(order=st.lists(lines.filter(lambda line: line.unit_price > 0), min_size=1, max_size=5),
       share=st.fractions(0, 1).filter(lambda f: f > 0))  # fmt: skip
def test_random_advances_split_the_payment_exactly(order: list[Line], share: object) -> None:
    whole = sum(expected_totals(order).values(), Decimal(0))
    assume(whole > 0)
    received = cents(whole * Decimal(share.numerator) / Decimal(share.denominator))  # type: ignore[attr-defined]
    if received <= 0:
        received = Decimal("0.01")
    invoice = advance(number="ZAL/P/1", issue_date=dt.date(2026, 5, 1), seller=SELLER,
                      buyer=Party("Nabywca", "Kraków", nip="1111111111"), order=order, received=received,
                      exemption=basis(order))  # fmt: skip
    check(invoice)
    assert invoice.gross == received
    for rate, fields in RATES.items():
        if (
            rate in PERCENT
            and fields.tax in invoice.totals()
            and not any(line.rate != rate and RATES[line.rate].net == fields.net for line in order)
        ):
            paid = invoice.totals()[fields.net] + invoice.totals()[fields.tax]
            assert invoice.totals()[fields.tax] == cents(paid * PERCENT[rate] / (100 + PERCENT[rate]))


# Lines worth at least a grosz each (an order whose value rounds to 0 takes no advance).
POSITIVE_LINES = st.lists(lines.map(lambda line: Line(line.name, line.quantity + 1, abs(line.unit_price) + Decimal(
    "0.01"), line.rate, line.unit)), min_size=1, max_size=5)  # fmt: skip
BUYER = Party("Nabywca", "Kraków", nip="1111111111")


@PROPERTY
@given(order=POSITIVE_LINES, share=st.fractions(0, 1))
def test_random_splits_give_each_rate_its_share_rounded_down_or_up(order: list[Line], share: Fraction) -> None:
    # The payment's part at each rate is its exact share (payment x the rate's gross / the order's
    # gross) rounded down or up to the grosz, never below 0, and the parts add up to the payment.
    # With one or two rates that is the first's share rounded half up and the rest to the other,
    # the split advance() always gave (was, with three rates or more: every rate but the last
    # rounded half up, the last the rest, which could fall outside, below 0 even).
    grosses: dict[str, Decimal] = {}
    for line in order:
        fields = expected_totals([line_ for line_ in order if line_.rate == line.rate])
        grosses[line.rate] = sum(fields.values(), Decimal(0))
    whole = sum(grosses.values(), Decimal(0))
    received = cents(whole * share.numerator / share.denominator)
    parts = split_payment(received, order)
    assert sum(parts.values(), Decimal(0)) == received and min(parts.values()) >= 0
    for rate, part in parts.items():
        exact = Fraction(received) * Fraction(grosses[rate]) / Fraction(whole)
        assert math.floor(exact * 100) <= part * 100 <= math.ceil(exact * 100)
    if len(parts) <= 2:
        first = next(iter(parts))
        assert parts[first] == cents(received * grosses[first] / whole)


def _added(*invoices: Invoice) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for invoice in invoices:
        for name, value in invoice.totals().items():
            out[name] = out.get(name, Decimal(0)) + value
    return out


@PROPERTY
@given(order=POSITIVE_LINES, shares=st.lists(st.integers(1, 30), min_size=1, max_size=3))
def test_random_settlements_and_their_advances_add_up_to_the_order(order: list[Line], shares: list[int]) -> None:
    # art. 106f ust. 3: the settlement (ROZ) shows the order less the advances, field by field, and
    # P_15 what remains; so the advance invoices and the settlement together are the order, each
    # P_13_x and P_14_x as the order's lines total it, and P_15 its gross value.
    whole = sum(expected_totals(order).values(), Decimal(0))
    received = [cents(whole * share / 100) for share in shares]  # 90 % of the order at most
    # (a grosz each of a tiny order can pay it all: then no settlement is issued, art. 106f ust. 4)
    assume(all(paid > 0 for paid in received) and sum(received) < whole)
    zals = [advance(number=f"ZAL/P/{i}", issue_date=dt.date(2026, 5, 1), seller=SELLER, buyer=BUYER, order=order,
                    received=paid, exemption=basis(order)) for i, paid in enumerate(received)]  # fmt: skip
    roz = settlement(number="ROZ/P/1", issue_date=dt.date(2026, 6, 1), seller=SELLER, buyer=BUYER, lines=order,
                     advances=[AdvanceInvoice.of(zal) for zal in zals], exemption=basis(order))  # fmt: skip
    check(roz)
    assert _added(*zals, roz) == expected_totals(order)
    assert sum((zal.gross for zal in zals), roz.gross) == whole
    assert len(roz.model.fa.faktura_zaliczkowa) == len(zals) and len(roz.model.fa.fa_wiersz) == len(order)


@PROPERTY
@given(order=POSITIVE_LINES, changed=POSITIVE_LINES, share=st.integers(1, 100), new_share=st.integers(1, 100))
def test_random_advance_corrections_are_the_difference(
    order: list[Line], changed: list[Line], share: int, new_share: int
) -> None:
    # FA(3) XSD, P_13_x/P_14_x of a correction: "kwota różnicy". The advance invoice plus its
    # correction (KOR_ZAL) are the advance invoice as it would have been issued for the corrected
    # payment towards the corrected order.
    whole, new_whole = (sum(expected_totals(lines_).values(), Decimal(0)) for lines_ in (order, changed))
    paid, new_paid = cents(whole * share / 100), cents(new_whole * new_share / 100)
    assume(paid > 0 and new_paid > 0)
    common = {"issue_date": dt.date(2026, 5, 1), "seller": SELLER, "buyer": BUYER}
    zal = advance(number="ZAL/P/1", order=order, received=paid, exemption=basis(order), **common)
    kor = advance_correction(number="KZ/P/1", corrected=AdvanceInvoice.of(zal), order=changed, received=new_paid,
                             exemption=basis([*order, *changed]), **common)  # fmt: skip
    check(kor)
    as_corrected = advance(number="ZAL/P/1", order=changed, received=new_paid, exemption=basis(changed), **common)
    summed = _added(zal, kor)
    assert {name: value for name, value in summed.items() if value or name in as_corrected.totals()} == (
        as_corrected.totals())  # fmt: skip
    assert (kor.gross, kor.model.fa.p_15_zk) == (new_paid - paid, paid)
    assert AdvanceInvoice.of(zal, corrections=[kor]).order == tuple(changed)
