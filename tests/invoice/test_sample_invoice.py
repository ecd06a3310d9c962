"""ksef_client.testing.sample_invoice totals by the SDK's own rounding rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ksef_client.invoice import Invoice, Line
from ksef_client.invoice.totals import line_totals
from ksef_client.testing import sample_invoice


@pytest.mark.parametrize(("net", "lines"), [("1.50", 1), ("0.50", 3), ("2.15", 1), ("1.005", 1), ("100.00", 2)])
def test_sample_invoice_rounds_half_a_grosz_up_as_the_builders_do(net: str, lines: int) -> None:
    # art. 106e ust. 11 (totals.py): half a grosz or more is rounded up. sample_invoice(net="1.50")
    # had P_14_1 0.34 and P_15 1.84 (half to even); the builders' totals are 0.35 and 1.85.
    invoice = Invoice.from_xml(sample_invoice(net=net, lines=lines))
    rows = [Line(row.p_7 or "", row.p_8_b or 1, row.p_9_a or 0) for row in invoice.model.fa.fa_wiersz]
    expected = line_totals(rows)
    assert invoice.totals() == expected.fields and invoice.gross == expected.gross
    assert [row.p_11 for row in invoice.model.fa.fa_wiersz] == [line.net for line in rows]


def test_sample_invoice_1_50_is_taxed_0_35() -> None:
    assert Invoice.from_xml(sample_invoice(net="1.50")).totals() == {
        "p_13_1": Decimal("1.50"),
        "p_14_1": Decimal("0.35"),
    }
