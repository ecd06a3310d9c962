"""The totals rules of ``ksef_client.invoice.totals``, one by one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ksef_client.invoice.totals import (
    RATES,
    Line,
    Totals,
    advance_totals,
    checked_exchange_rate,
    line_totals,
    round_amount,
    split_payment,
)

D = Decimal


@pytest.mark.parametrize(
    ("value", "rounded"),
    [("0.005", "0.01"), ("0.0049999", "0.00"), ("2.675", "2.68"), ("-0.005", "-0.01"), ("-2.674", "-2.67"),
     ("1.5", "1.50"), ("10", "10.00")],
)  # fmt: skip
def test_half_a_grosz_rounds_up_away_from_zero(value: str, rounded: str) -> None:
    assert round_amount(D(value)) == D(rounded)


def test_line_value_is_quantity_times_price_rounded() -> None:
    assert Line("a", D("3"), D("0.335")).net == D("1.01")  # 1.005
    assert Line("a", D("0.333333"), D("3.00000001")).net == D("1.00")


def test_tax_is_computed_on_each_rate_net_sum_not_per_line() -> None:
    lines = [Line("a", 1, "0.02", "23")] * 3  # per line 0.0046 -> 0.00 each; on the sum 0.06 -> 0.0138 -> 0.01
    totals = line_totals(lines)
    assert totals.fields == {"p_13_1": D("0.06"), "p_14_1": D("0.01")}
    assert totals.gross == D("0.07")


def test_two_rates_of_one_field_are_taxed_apart_then_added() -> None:
    totals = line_totals([Line("a", 1, "10.05", "23"), Line("b", 1, "10.05", "22")])
    assert totals.fields == {"p_13_1": D("20.10"), "p_14_1": D("2.31") + D("2.21")}


def test_fields_follow_the_schema_order_and_untaxed_rates_have_no_tax() -> None:
    lines = [Line(r, 1, "100", r) for r in reversed(list(RATES))]
    totals = line_totals(lines)
    assert list(totals.fields) == [
        "p_13_1", "p_14_1", "p_13_2", "p_14_2", "p_13_3", "p_14_3", "p_13_4", "p_14_4",
        "p_13_6_1", "p_13_6_2", "p_13_6_3", "p_13_7", "p_13_8", "p_13_9", "p_13_10",
    ]  # fmt: skip
    assert totals.fields["p_13_1"] == D("200.00") and totals.fields["p_14_1"] == D("45.00")
    assert totals.gross == sum(totals.fields.values())


def test_foreign_currency_tax_in_pln_is_the_tax_converted_and_rounded() -> None:
    totals = line_totals([Line("a", 1, "1000.01", "8"), Line("b", 1, "99.99", "0 WDT")], D("4.312345"))
    assert totals.fields["p_14_2"] == D("80.00")
    assert totals.fields["p_14_2_w"] == D("344.99")  # 80.00 x 4.312345 = 344.9876
    assert "p_13_6_2" in totals.fields and totals.gross == D("1180.00")


def test_advance_tax_is_the_payment_times_rate_over_100_plus_rate() -> None:
    order = [Line("a", 1, "1000.00", "23")]
    totals = advance_totals(D("500.00"), order)
    assert totals.fields == {"p_13_1": D("406.50"), "p_14_1": D("93.50")}  # 500 x 23 / 123 = 93.4959...
    assert totals.gross == D("500.00")


def test_advance_on_several_rates_is_split_by_gross_and_adds_up() -> None:
    order = [Line("a", 1, "100.00", "23"), Line("b", 1, "100.00", "8"), Line("c", 1, "33.33", "zw")]
    parts = split_payment(D("100.00"), order)
    assert list(parts) == ["23", "8", "zw"] and sum(parts.values()) == D("100.00")
    assert parts["23"] == round_amount(D("100") * D("123") / D("264.33"))
    totals = advance_totals(D("100.00"), order)
    assert totals.gross == D("100.00") and "p_14_3" not in totals.fields and "p_13_7" in totals.fields


def test_a_payment_s_grosze_left_over_go_to_the_largest_remainders() -> None:
    # The Ministry's FA_3_Przykład_11.xml and _12.xml: 20 000 and 30 000 towards 6 150.00 gross at
    # 23 % and 369 000.00 at 8 % (375 150.00): 327.868... and 19 672.131... rounded down are
    # 327.86 + 19 672.13, and the grosz left goes to 23 % (0.88 of a grosz lost against 0.11);
    # 491.803... and 29 508.196... are 491.80 + 29 508.19, and it goes to 8 % (0.67 against 0.33).
    order = [Line("mieszkanie", 1, "341666.67", "8"), Line("usługi", 1, "5000", "23")]
    assert split_payment(D("20000"), order) == {"23": D("327.87"), "8": D("19672.13")}
    assert split_payment(D("30000"), order) == {"23": D("491.80"), "8": D("29508.20")}
    # 1.00 over three rates of equal gross: 0.333... each, 0.33 rounded down, and the grosz left
    # to the first in RATES order (was: to the last, which took the rest).
    equal = [Line("a", 1, "100", "0 KR"), Line("b", 1, "100", "zw"), Line("c", 1, "100", "np I")]
    assert split_payment(D("1.00"), equal) == {"0 KR": D("0.34"), "zw": D("0.33"), "np I": D("0.33")}
    # 0.01 towards 1.00 at 0 %, 1.00 exempt and a free item: 0.005, 0.005 and 0, rounded down all
    # 0.00, the grosz to the first of the two tied (was 0.01, 0.01 and the rest, -0.01, to the last).
    free = [Line("a", 1, "1.00", "0 KR"), Line("b", 1, "1.00", "zw"), Line("c", 1, "0", "np I")]
    assert split_payment(D("0.01"), free) == {"0 KR": D("0.01"), "zw": D("0.00"), "np I": D("0.00")}
    # A rate below 0 gross would take a negative share; one at 0 takes nothing.
    with pytest.raises(ValueError, match=r"order: its lines at '8' add up to -10.80 gross"):
        split_payment(D("1.00"), [Line("a", 1, "100", "23"), Line("b", 1, "-10", "8")])
    assert split_payment(D("1.00"), [Line("a", 1, "100", "23"), Line("b", 1, "0", "8")]) == {
        "23": D("1.00"), "8": D("0.00")}  # fmt: skip
    with pytest.raises(ValueError, match=r"received: -1.00; a payment to split is 0 or more, in full grosze"):
        split_payment(D("-1.00"), order)


def test_correction_totals_are_after_minus_before() -> None:
    before = line_totals([Line("a", 2, "100", "23")])
    after = line_totals([Line("a", 1, "100", "23"), Line("b", 1, "10", "zw")])
    diff = after - before
    assert diff.fields == {"p_13_1": D("-100.00"), "p_14_1": D("-23.00"), "p_13_7": D("10.00")}
    assert diff.gross == D("-113.00") and isinstance(diff, Totals)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity": 1.5}, "float"),
        ({"quantity": "0"}, "greater than 0"),
        ({"quantity": "1.0000001"}, "6 decimal places"),
        ({"unit_price": "1.000000001"}, "8 decimal places"),
        ({"unit_price": "abc"}, "not a number"),
        ({"unit_price": "NaN"}, "finite"),
        ({"unit_price": "1E17"}, "too large"),
        ({"rate": "24"}, "rate"),
        ({"name": ""}, "name"),
        ({"name": "a\x01b"}, "cannot appear in XML"),
        ({"name": "\uffff"}, "cannot appear in XML"),
        ({"unit": "x" * 257}, "unit"),
    ],
)
def test_bad_lines_are_refused_with_the_argument_named(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "a", "quantity": "1", "unit_price": "1", **kwargs}
    with pytest.raises(ValueError, match=message):
        Line(**arguments)  # type: ignore[arg-type]


def test_rates_are_accepted_as_ints_and_enums() -> None:
    from ksef_client._invoice_models.fa3 import TstawkaPodatku

    assert Line("a", 1, 1, 23).rate == "23"
    assert Line("a", 1, 1, TstawkaPodatku.VALUE_0_WDT).rate == "0 WDT"  # type: ignore[arg-type]


def test_exchange_rate_rules() -> None:
    with pytest.raises(ValueError, match="only for an invoice in a foreign currency"):
        checked_exchange_rate("4.3", "PLN")
    with pytest.raises(ValueError, match="required"):
        checked_exchange_rate(None, "EUR")
    assert checked_exchange_rate(None, "EUR", taxed=False) is None
    assert checked_exchange_rate("4.123456", "EUR") == D("4.123456")
    with pytest.raises(ValueError, match="greater than 0"):
        checked_exchange_rate("0", "EUR")
