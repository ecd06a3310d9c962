"""Settlement invoices (ROZ) and the corrections of advance and settlement invoices (KOR_ZAL,
KOR_ROZ): amounts worked out by hand, the Ministry's sample chain, and the arguments refused.

The rules (ksef_client.invoice.totals): an advance's tax is payment x rate / (100 + rate) (art.
106f ust. 1 pkt 3), split between rates in proportion to the order's gross value at each; a ROZ
shows the order less the advances, field by field (art. 106f ust. 3); a correction shows the
state after it less the corrected invoice's as it showed it (art. 106j ust. 2 pkt 5).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import ksef_client.invoice
from ksef_client.identifiers import make_ksef_number
from ksef_client.invoice import (
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
from ksef_client.schemas import validate_invoice

SELLER = Party("ACME", "ul. Prosta 1, Warszawa", nip="5265877635")
BUYER = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111")
GERMAN = Party("Kunde GmbH", "Berlin", eu_vat="DE811569869")
DAY = dt.date(2026, 3, 2)
ZAL_KSEF = make_ksef_number("5265877635", "20260302", "0A1B2C3D4E5F")
ROZ_KSEF = make_ksef_number("5265877635", "20260310", "1A2B3C4D5E6F")
ORDER = [Line("Meble biurowe", 1, "1000.00", "23")]  # 1000.00 net, 230.00 tax, 1230.00 gross
PARTIES: dict[str, Any] = {"issue_date": DAY, "seller": SELLER, "buyer": BUYER}
D = Decimal


def _zal(received: str = "615.00", order: list[Line] = ORDER, **options: Any) -> Invoice:
    return advance(number="ZAL/1", order=order, received=received, **PARTIES, **options)


def test_a_settlement_deducts_the_advance_worked_by_hand() -> None:
    # The order: 1000.00 net at 23 %, tax 230.00, gross 1230.00.
    # The advance of 615.00 gross: tax 615.00 x 23 / 123 = 115.00, net 615.00 - 115.00 = 500.00.
    # The settlement (art. 106f ust. 3): net 1000.00 - 500.00 = 500.00, tax 230.00 - 115.00 = 115.00,
    # due 1230.00 - 615.00 = 615.00; the rows show the order at full value.
    zal = _zal()
    assert zal.totals() == {"p_13_1": D("500.00"), "p_14_1": D("115.00")} and zal.gross == D("615.00")
    paid = AdvanceInvoice.of(zal, ZAL_KSEF)
    assert (paid.received, paid.order, paid.ksef_number) == (D("615.00"), tuple(ORDER), ZAL_KSEF)
    roz = settlement(number="ROZ/1", lines=ORDER, advances=[paid], sale_date=dt.date(2026, 2, 27), **PARTIES)
    assert roz.kind == "ROZ"
    assert roz.totals() == {"p_13_1": D("500.00"), "p_14_1": D("115.00")}
    assert roz.gross == D("615.00")
    row = roz.model.fa.fa_wiersz[0]
    assert (row.p_8_b, row.p_9_a, row.p_11, row.p_12.value) == (D(1), D("1000.00"), D("1000.00"), "23")
    xml = roz.to_xml()
    validate_invoice(xml)
    assert f"<FakturaZaliczkowa><NrKSeFFaZaliczkowej>{ZAL_KSEF}</NrKSeFFaZaliczkowej></FakturaZaliczkowa>" in (
        xml.decode())  # fmt: skip
    assert b"<P_6>2026-02-27</P_6>" in xml and b"<RodzajFaktury>ROZ</RodzajFaktury>" in xml
    assert Invoice.from_xml(xml) == roz


def test_two_advances_at_two_rates_one_issued_outside_ksef_worked_by_hand() -> None:
    # The order: A 1000.00 at 23 % (tax 230.00, gross 1230.00) and B 500.00 at 8 % (tax 40.00,
    # gross 540.00): 1770.00 gross.
    # Advance 1, 500.00: at 23 % 500.00 x 1230 / 1770 = 347.457... -> 347.46, at 8 % the rest,
    #   152.54; tax 347.46 x 23 / 123 = 64.972... -> 64.97 (net 282.49), 152.54 x 8 / 108 =
    #   11.299... -> 11.30 (net 141.24).
    # Advance 2, 300.00: at 23 % 300.00 x 1230 / 1770 = 208.474... -> 208.47, at 8 % 91.53; tax
    #   208.47 x 23 / 123 = 38.982... -> 38.98 (net 169.49), 91.53 x 8 / 108 = 6.7800 -> 6.78
    #   (net 84.75).
    # The settlement: P_13_1 1000.00 - 282.49 - 169.49 = 548.02, P_14_1 230.00 - 64.97 - 38.98 =
    # 126.05, P_13_2 500.00 - 141.24 - 84.75 = 274.01, P_14_2 40.00 - 11.30 - 6.78 = 21.92, P_15
    # 1770.00 - 500.00 - 300.00 = 970.00 (= 548.02 + 126.05 + 274.01 + 21.92).
    order = [Line("A", 1, "1000.00", "23"), Line("B", 1, "500.00", "8")]
    first = AdvanceInvoice.of(_zal("500.00", order), ZAL_KSEF)
    second_zal = advance(number="ZAL/2", order=order, received="300.00", **PARTIES)
    second = AdvanceInvoice.of(second_zal)  # issued outside KSeF: no KSeF number
    assert first.totals == {"p_13_1": D("282.49"), "p_14_1": D("64.97"), "p_13_2": D("141.24"), "p_14_2": D("11.30")}
    assert second.totals == {"p_13_1": D("169.49"), "p_14_1": D("38.98"), "p_13_2": D("84.75"), "p_14_2": D("6.78")}
    roz = settlement(number="ROZ/2", lines=order, advances=[first, second], **PARTIES)
    assert roz.totals() == {"p_13_1": D("548.02"), "p_14_1": D("126.05"), "p_13_2": D("274.01"), "p_14_2": D("21.92")}
    assert roz.gross == D("970.00")
    xml = roz.to_xml()
    validate_invoice(xml)
    assert (
        f"<FakturaZaliczkowa><NrKSeFFaZaliczkowej>{ZAL_KSEF}</NrKSeFFaZaliczkowej></FakturaZaliczkowa>"
        "<FakturaZaliczkowa><NrKSeFZN>1</NrKSeFZN><NrFaZaliczkowej>ZAL/2</NrFaZaliczkowej></FakturaZaliczkowa>"
    ).encode() in xml


def test_a_correction_of_an_advance_worked_by_hand() -> None:
    # The advance of 615.00 (net 500.00, tax 115.00) is corrected to 369.00, part of it returned:
    # tax 369.00 x 23 / 123 = 69.00, net 300.00. The correction: P_13_1 300.00 - 500.00 = -200.00,
    # P_14_1 69.00 - 115.00 = -46.00, P_15 369.00 - 615.00 = -246.00, P_15ZK 615.00 (the payment
    # before). Zamowienie shows the order before (StanPrzedZ) and after, value 1230.00.
    reference = AdvanceInvoice.of(_zal(), ZAL_KSEF)
    kor = advance_correction(number="KZ/1", corrected=reference, received="369.00", reason="zwrot części zaliczki",
                             **PARTIES)  # fmt: skip
    assert kor.kind == "KOR_ZAL"
    assert kor.totals() == {"p_13_1": D("-200.00"), "p_14_1": D("-46.00")} and kor.gross == D("-246.00")
    fa = kor.model.fa
    assert (fa.p_15_zk, fa.przyczyna_korekty, fa.kurs_waluty_z, fa.kurs_waluty_zk) == (D("615.00"),
                                                                                      "zwrot części zaliczki",
                                                                                      None, None)  # fmt: skip
    data = fa.dane_fa_korygowanej[0]
    assert (data.nr_fa_korygowanej, data.nr_kse_ffa_korygowanej) == ("ZAL/1", ZAL_KSEF)
    assert fa.zamowienie is not None and fa.zamowienie.wartosc_zamowienia == D("1230.00")
    rows = [(r.nr_wiersza_zam, r.p_11_netto_z, r.p_11_vat_z, r.stan_przed_z is not None)
            for r in fa.zamowienie.zamowienie_wiersz]  # fmt: skip
    assert rows == [(1, D("1000.00"), D("230.00"), True), (2, D("1000.00"), D("230.00"), False)]
    xml = kor.to_xml()
    validate_invoice(xml)
    assert b"<P_15ZK>615.00</P_15ZK>" in xml
    # The advance as corrected: 300.00 + 69.00 = 369.00, and its order read back from the rows.
    corrected = AdvanceInvoice.of(Invoice.from_xml(_zal().to_xml()), ZAL_KSEF, corrections=[Invoice.from_xml(xml)])
    assert corrected.totals == {"p_13_1": D("300.00"), "p_14_1": D("69.00")}
    assert (corrected.received, corrected.order) == (D("369.00"), tuple(ORDER))
    # Settled after the correction: 1000.00 - 300.00 = 700.00, 230.00 - 69.00 = 161.00, 861.00 due.
    roz = settlement(number="ROZ/1", lines=ORDER, advances=[corrected], **PARTIES)
    assert roz.totals() == {"p_13_1": D("700.00"), "p_14_1": D("161.00")} and roz.gross == D("861.00")


def test_a_correction_of_an_advance_s_order_changes_the_split_between_rates() -> None:
    # The advance of 615.00 towards 1000.00 at 23 % (above); the order becomes A 500.00 at 23 %
    # (gross 615.00) and B 500.00 at 8 % (gross 540.00), 1155.00 gross. The payment, unchanged,
    # splits 615.00 x 615 / 1155 = 327.467... -> 327.47 at 23 % and 287.53 at 8 %: tax 327.47 x
    # 23 / 123 = 61.234... -> 61.23 (net 266.24) and 287.53 x 8 / 108 = 21.298... -> 21.30 (net
    # 266.23). The correction: P_13_1 266.24 - 500.00 = -233.76, P_14_1 61.23 - 115.00 = -53.77,
    # P_13_2 266.23, P_14_2 21.30; P_15 0.00 (-233.76 - 53.77 + 266.23 + 21.30 = 0).
    new_order = [Line("A", 1, "500.00", "23"), Line("B", 1, "500.00", "8")]
    kor = advance_correction(number="KZ/2", corrected=AdvanceInvoice.of(_zal(), ZAL_KSEF), order=new_order,
                             **PARTIES)  # fmt: skip
    assert kor.totals() == {"p_13_1": D("-233.76"), "p_14_1": D("-53.77"), "p_13_2": D("266.23"),
                            "p_14_2": D("21.30")}  # fmt: skip
    assert kor.gross == D("0.00") and kor.model.fa.p_15_zk == D("615.00")
    zamowienie = kor.model.fa.zamowienie
    assert zamowienie is not None and zamowienie.wartosc_zamowienia == D("1155.00")
    assert [(r.nr_wiersza_zam, r.p_7_z, r.stan_przed_z is not None) for r in zamowienie.zamowienie_wiersz] == [
        (1, "Meble biurowe", True), (2, "A", False), (3, "B", False)]  # fmt: skip
    validate_invoice(kor.to_xml())
    corrected = AdvanceInvoice.of(_zal(), ZAL_KSEF, corrections=[kor])
    assert corrected.order == tuple(new_order) and corrected.received == D("615.00")


def test_an_advance_whose_order_left_a_rate_is_settled_without_it() -> None:
    # The order: A 1000.00 at 8 % (tax 80.00, gross 1080.00); the advance of 540.00: tax 540.00 x
    # 8 / 108 = 40.00, net 500.00. Corrected: A at 23 % (gross 1230.00), the same payment: tax
    # 540.00 x 23 / 123 = 100.975... -> 100.98, net 439.02; the advance keeps P_13_2 and P_14_2 at
    # 0.00. The settlement of A at 23 %: 1000.00 - 439.02 = 560.98, 230.00 - 100.98 = 129.02,
    # 1230.00 - 540.00 = 690.00 due, and nothing at 8 % (no line is there, nothing is deducted).
    zal = _zal("540.00", [Line("A", 1, "1000.00", "8")])
    assert zal.totals() == {"p_13_2": D("500.00"), "p_14_2": D("40.00")}
    kor = advance_correction(number="KZ/1", corrected=AdvanceInvoice.of(zal), order=[Line("A", 1, "1000.00", "23")],
                             **PARTIES)  # fmt: skip
    assert kor.totals() == {"p_13_1": D("439.02"), "p_14_1": D("100.98"), "p_13_2": D("-500.00"),
                            "p_14_2": D("-40.00")}  # fmt: skip
    paid = AdvanceInvoice.of(zal, corrections=[kor])
    assert paid.totals == {"p_13_1": D("439.02"), "p_14_1": D("100.98"), "p_13_2": D("0.00"), "p_14_2": D("0.00")}
    roz = settlement(number="ROZ/1", lines=[Line("A", 1, "1000.00", "23")], advances=[paid], **PARTIES)
    assert roz.totals() == {"p_13_1": D("560.98"), "p_14_1": D("129.02")} and roz.gross == D("690.00")
    validate_invoice(roz.to_xml())


def test_more_paid_at_a_rate_than_the_order_has_there_is_deducted_as_the_act_says() -> None:
    # art. 106f ust. 3 deducts the advances field by field. The order: A 1000.00 at 23 % (gross
    # 1230.00) and B 100.00 at 8 % (tax 8.00, gross 108.00); an advance showed 200.00 + 16.00 at
    # 8 % (towards an order since changed). The settlement: 1000.00 / 230.00 at 23 %, 100.00 -
    # 200.00 = -100.00 and 8.00 - 16.00 = -8.00 at 8 %; 1338.00 - 216.00 = 1122.00 due.
    paid = AdvanceInvoice("Z/8", DAY, totals={"p_13_2": "200.00", "p_14_2": "16.00"})
    roz = settlement(number="R/1", lines=[*ORDER, Line("B", 1, "100.00", "8")], advances=[paid], **PARTIES)
    assert roz.totals() == {"p_13_1": D("1000.00"), "p_14_1": D("230.00"), "p_13_2": D("-100.00"),
                            "p_14_2": D("-8.00")}  # fmt: skip
    assert roz.gross == D("1122.00")
    validate_invoice(roz.to_xml())


def test_a_correction_of_a_settlement_worked_by_hand() -> None:
    # The settlement of 1000.00 at 23 % after the 615.00 advance showed 500.00 / 115.00 / 615.00.
    # The order grows to 12 x 100.00 = 1200.00 (tax 276.00, gross 1476.00): after the correction
    # 1200.00 - 500.00 = 700.00, 276.00 - 115.00 = 161.00, 1476.00 - 615.00 = 861.00 due. The
    # correction: P_13_1 +200.00, P_14_1 +46.00, P_15 +246.00, P_15ZK 615.00 (due before).
    paid = AdvanceInvoice.of(_zal(), ZAL_KSEF)
    roz = settlement(number="ROZ/1", lines=ORDER, advances=[paid], **PARTIES)
    reference = CorrectedInvoice.of(roz, ROZ_KSEF)
    assert (reference.kind, reference.totals, reference.lines) == (
        "ROZ", {"p_13_1": D("500.00"), "p_14_1": D("115.00")}, tuple(ORDER))  # fmt: skip
    more = [Line("Meble biurowe", 12, "100.00", "23")]
    kor = settlement_correction(number="KR/1", corrected=reference, advances=[paid], lines=more,
                                reason="dostarczono więcej mebli", **PARTIES)  # fmt: skip
    assert kor.kind == "KOR_ROZ"
    assert kor.totals() == {"p_13_1": D("200.00"), "p_14_1": D("46.00")} and kor.gross == D("246.00")
    fa = kor.model.fa
    assert fa.p_15_zk == D("615.00") and fa.dane_fa_korygowanej[0].nr_kse_ffa_korygowanej == ROZ_KSEF
    assert [(r.nr_wiersza_fa, r.p_11, r.stan_przed is not None) for r in fa.fa_wiersz] == [
        (1, D("1000.00"), True), (2, D("1200.00"), False)]  # fmt: skip
    assert [z.nr_kse_ffa_zaliczkowej for z in fa.faktura_zaliczkowa] == [ZAL_KSEF]
    xml = kor.to_xml()
    validate_invoice(xml)
    assert b"<P_15ZK>615.00</P_15ZK>" in xml and b"<RodzajFaktury>KOR_ROZ</RodzajFaktury>" in xml
    # The order unchanged and an advance corrected since (to 369.00, net 300.00, tax 69.00): 700.00
    # / 161.00 / 861.00 after, so +200.00 / +46.00 / +246.00, every row shown before and after.
    kor_zal = advance_correction(number="KZ/1", corrected=paid, received="369.00", **PARTIES)
    now = AdvanceInvoice.of(_zal(), ZAL_KSEF, corrections=[kor_zal])
    again = settlement_correction(number="KR/2", corrected=reference, advances=[now], **PARTIES)
    assert again.totals() == {"p_13_1": D("200.00"), "p_14_1": D("46.00")} and again.gross == D("246.00")
    assert [(r.p_11, r.stan_przed is not None) for r in again.model.fa.fa_wiersz] == [
        (D("1000.00"), True), (D("1000.00"), False)]  # fmt: skip


# The Ministry's sample invoices for FA(3) (Fa_3_Przykład_10.xml ... _14.xml, _17.xml, _18.xml): a
# flat and extra services ordered, an advance ("zadatek") of 20 000 zł, its corrections (the flat's
# rate 23 % -> 8 %; the payment 20 000 -> 30 000 zł; the order 10 % less), the settlement, and the
# correction of a settlement that showed 300 000 zł due instead of 307 635 zł.
FLAT_23 = Line("mieszkanie 50m^2", 1, "300000", "23")
SERVICES = Line("usługi dodatkowe", 1, "5000", "23")
FLAT_8 = Line("mieszkanie 50m^2", 1, "341666.67", "8")
FLAT_8_LESS = Line("mieszkanie 50m^2", 1, "307500", "8")
SERVICES_LESS = Line("usługi dodatkowe", 1, "4500", "23")


def test_the_ministry_s_advance_chain_is_reproduced_to_the_grosz() -> None:
    # Przykład 10 (ZAL): 20 000 towards 375 150 gross, all at 23 %: tax 20 000 x 23 / 123 =
    # 3 739.837... -> 3 739.84, net 16 260.16.
    zal = advance(number="FZ2026/02/150", order=[FLAT_23, SERVICES], received="20000", **PARTIES)
    assert zal.totals() == {"p_13_1": D("16260.16"), "p_14_1": D("3739.84")}
    assert zal.model.fa.zamowienie is not None and zal.model.fa.zamowienie.wartosc_zamowienia == D("375150.00")
    # Przykład 11 (KOR_ZAL, "błędna stawka VAT"): the flat at 8 %, 341 666.67 net (369 000.00
    # gross). 20 000 splits 20 000 x 6 150 / 375 150 = 327.87 at 23 % (tax 61.31, net 266.56) and
    # 19 672.13 at 8 % (tax 19 672.13 x 8 / 108 = 1 457.19, net 18 214.94): P_13_1 266.56 -
    # 16 260.16 = -15 993.60, P_14_1 61.31 - 3 739.84 = -3 678.53, P_13_2 18 214.94, P_14_2
    # 1 457.19, P_15 0, P_15ZK 20 000.
    k11 = advance_correction(number="FK2026/03/5", corrected=AdvanceInvoice.of(zal, ZAL_KSEF),
                             order=[FLAT_8, SERVICES], reason="błędna stawka VAT", **PARTIES)  # fmt: skip
    assert k11.totals() == {"p_13_1": D("-15993.60"), "p_14_1": D("-3678.53"), "p_13_2": D("18214.94"),
                            "p_14_2": D("1457.19")}  # fmt: skip
    assert (k11.gross, k11.model.fa.p_15_zk) == (D("0.00"), D("20000.00"))
    # Przykład 12 (KOR_ZAL, 20 000 -> 30 000): 491.80 at 23 % (tax 91.96, net 399.84), 29 508.20
    # at 8 % (tax 2 185.79, net 27 322.41): +133.28, +30.65, +9 107.47, +728.60; P_15 10 000.
    k12 = advance_correction(number="FK2026/03/7", corrected=AdvanceInvoice.of(zal, ZAL_KSEF, corrections=[k11]),
                             received="30000", **PARTIES)  # fmt: skip
    assert k12.totals() == {"p_13_1": D("133.28"), "p_14_1": D("30.65"), "p_13_2": D("9107.47"),
                            "p_14_2": D("728.60")}  # fmt: skip
    assert (k12.gross, k12.model.fa.p_15_zk) == (D("10000.00"), D("20000.00"))
    # Przykład 13 (KOR_ZAL, the order 10 % less at both rates): the split is unchanged (30 000 x
    # 5 535 / 337 635 = 491.80), so the totals do not change; the order is worth 337 635.
    k13 = advance_correction(number="FK2026/03/8", corrected=AdvanceInvoice.of(zal, ZAL_KSEF, corrections=[k11, k12]),
                             order=[FLAT_8_LESS, SERVICES_LESS], **PARTIES)  # fmt: skip
    assert set(k13.totals().values()) == {D("0.00")} and k13.gross == D("0.00")
    assert k13.model.fa.p_15_zk == D("30000.00")
    assert k13.model.fa.zamowienie is not None and k13.model.fa.zamowienie.wartosc_zamowienia == D("337635.00")
    for kor in (k11, k12, k13):
        validate_invoice(kor.to_xml())
    # Przykład 14 (ROZ): 4 500.00 - 399.84 = 4 100.16, 1 035.00 - 91.96 = 943.04 at 23 %;
    # 307 500.00 - 27 322.41 = 280 177.59, 24 600.00 - 2 185.79 = 22 414.21 at 8 %; 307 635 due.
    paid = AdvanceInvoice.of(zal, ZAL_KSEF, corrections=[k11, k12, k13])
    assert paid.totals == {"p_13_1": D("399.84"), "p_14_1": D("91.96"), "p_13_2": D("27322.41"),
                           "p_14_2": D("2185.79")}  # fmt: skip
    assert paid.order == (FLAT_8_LESS, SERVICES_LESS) and paid.received == D("30000.00")
    roz = settlement(number="FV2026/08/12", lines=[FLAT_8_LESS, SERVICES_LESS], advances=[paid], **PARTIES)
    assert roz.totals() == {"p_13_1": D("4100.16"), "p_14_1": D("943.04"), "p_13_2": D("280177.59"),
                            "p_14_2": D("22414.21")}  # fmt: skip
    assert roz.gross == D("307635.00")
    validate_invoice(roz.to_xml())
    # Przykład 17 (a ROZ that showed 300 000 due: 3 998.40 / 919.63 / 273 224.05 / 21 857.92) and
    # 18 (KOR_ROZ): 4 100.16 - 3 998.40 = 101.76, 943.04 - 919.63 = 23.41, 280 177.59 -
    # 273 224.05 = 6 953.54, 22 414.21 - 21 857.92 = 556.29; 7 635 due more, P_15ZK 300 000.
    wrong = CorrectedInvoice("FV2026/08/12", DAY, ROZ_KSEF, lines=[FLAT_8_LESS, SERVICES_LESS], kind="ROZ",
                             totals={"p_13_1": "3998.40", "p_14_1": "919.63", "p_13_2": "273224.05",
                                     "p_14_2": "21857.92"})  # fmt: skip
    k18 = settlement_correction(number="FK2026/09/1", corrected=wrong, advances=[paid], **PARTIES,
                                reason="błędne zafakturowanie kwoty pozostałej do zapłaty")  # fmt: skip
    assert k18.totals() == {"p_13_1": D("101.76"), "p_14_1": D("23.41"), "p_13_2": D("6953.54"),
                            "p_14_2": D("556.29")}  # fmt: skip
    assert (k18.gross, k18.model.fa.p_15_zk) == (D("7635.00"), D("300000.00"))
    validate_invoice(k18.to_xml())


def test_in_a_foreign_currency_each_payment_keeps_its_rate_worked_by_hand() -> None:
    # The order: 10 x 100.00 EUR at 23 % (1000.00 net, 230.00 tax, 1230.00 gross).
    # ZAL, 615.00 EUR at 4.30: tax 115.00 EUR, in złoty 115.00 x 4.30 = 494.50.
    # KOR_ZAL to 369.00 EUR at 4.20 (KursWalutyZ; KursWalutyZK 4.30): tax 69.00, net 300.00; in
    #   złoty 69.00 x 4.20 = 289.80; P_14_1W 289.80 - 494.50 = -204.70.
    # ROZ at 4.25: 1000.00 - 300.00 = 700.00, 230.00 - 69.00 = 161.00, in złoty 161.00 x 4.25 =
    #   684.25 (the remaining tax at the settlement's rate); 861.00 EUR due.
    # KOR_ROZ, 12 x 100.00 EUR: 1200.00 - 300.00 = 900.00, 276.00 - 69.00 = 207.00 (in złoty
    #   207.00 x 4.25 = 879.75): +200.00, +46.00, P_14_1W 879.75 - 684.25 = +195.50, +246.00 due.
    work = Line("Beratung", 10, "100.00", "23")
    common: dict[str, Any] = {**PARTIES, "buyer": GERMAN}
    zal = advance(number="Z/E/1", order=[work], received="615.00", currency="EUR", exchange_rate="4.30", **common)
    assert zal.totals() == {"p_13_1": D("500.00"), "p_14_1": D("115.00"), "p_14_1_w": D("494.50")}
    kor_zal = advance_correction(number="KZ/E/1", corrected=AdvanceInvoice.of(zal), received="369.00",
                                 exchange_rate="4.20", **common)  # fmt: skip
    assert kor_zal.currency == "EUR"
    assert kor_zal.totals() == {"p_13_1": D("-200.00"), "p_14_1": D("-46.00"), "p_14_1_w": D("-204.70")}
    assert (kor_zal.model.fa.kurs_waluty_z, kor_zal.model.fa.kurs_waluty_zk) == (D("4.20"), D("4.30"))
    validate_invoice(kor_zal.to_xml())
    paid = AdvanceInvoice.of(zal, corrections=[kor_zal])
    assert paid.totals == {"p_13_1": D("300.00"), "p_14_1": D("69.00"), "p_14_1_w": D("289.80")}
    assert paid.exchange_rate == D("4.20")
    roz = settlement(number="R/E/1", lines=[work], advances=[paid], currency="EUR", exchange_rate="4.25", **common)
    assert roz.totals() == {"p_13_1": D("700.00"), "p_14_1": D("161.00"), "p_14_1_w": D("684.25")}
    assert roz.gross == D("861.00") and roz.model.fa.fa_wiersz[0].kurs_waluty == D("4.25")
    validate_invoice(roz.to_xml())
    reference = CorrectedInvoice.of(roz)
    assert (reference.currency, reference.exchange_rate) == ("EUR", D("4.25"))
    kor_roz = settlement_correction(number="KR/E/1", corrected=reference, advances=[paid],
                                    lines=[Line("Beratung", 12, "100.00", "23")], **common)  # fmt: skip
    assert kor_roz.totals() == {"p_13_1": D("200.00"), "p_14_1": D("46.00"), "p_14_1_w": D("195.50")}
    assert (kor_roz.gross, kor_roz.model.fa.p_15_zk) == (D("246.00"), D("861.00"))
    validate_invoice(kor_roz.to_xml())
    # A settlement in złoty of advances in euro is refused (its amounts would be in two currencies).
    with pytest.raises(ValueError, match=r"advances: 'Z/E/1' is in EUR, the settlement in PLN"):
        settlement(number="R/1", lines=[work], advances=[paid], **common)
    with pytest.raises(ValueError, match=r"currency: 'PLN', but the corrected invoice is in EUR .*AdvanceInvoice.of"):
        advance_correction(number="KZ/E/2", corrected=paid, currency="PLN", **common)


def _refused(build: Any) -> str:
    with pytest.raises(ValueError) as raised:
        build()
    assert type(raised.value) is ValueError
    return str(raised.value)


def _paid() -> AdvanceInvoice:
    return AdvanceInvoice.of(_zal(), ZAL_KSEF)


def _roz() -> CorrectedInvoice:
    return CorrectedInvoice.of(settlement(number="ROZ/1", lines=ORDER, advances=[_paid()], **PARTIES), ROZ_KSEF)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        # settlement(): the advances, as FakturaZaliczkowa and art. 106f ust. 3 take them.
        (lambda: settlement(number="R/1", lines=ORDER, advances=[], **PARTIES), r"advances: at least one advance"),
        (lambda: settlement(number="R/1", lines=ORDER, advances=_paid(), **PARTIES),
         r"advances: expected a sequence of AdvanceInvoice"),
        (lambda: settlement(number="R/1", lines=ORDER, advances=[_zal()], **PARTIES),
         r"advances: expected AdvanceInvoice objects"),
        (lambda: settlement(number="R/1", lines=ORDER, advances=[_paid(), _paid()], **PARTIES),
         r"advances: 'ZAL/1' is given twice"),
        (lambda: settlement(number="R/1", lines=ORDER, advances=[
            AdvanceInvoice(f"Z/{i}", DAY, totals={"p_13_1": "1.00"}) for i in range(101)], **PARTIES),
         r"advances: at most 100 \(FakturaZaliczkowa\), got 101"),
        (lambda: settlement(number="R/1", lines=[], advances=[_paid()], **PARTIES), r"lines: at least one line"),
        (lambda: settlement(number="R/1", lines=["A"], advances=[_paid()], **PARTIES), r"lines: expected Line objects"),
        # The whole order paid beforehand (1230.00 = 1230.00): no settlement, the last ZAL settles it.
        (lambda: settlement(number="R/1", lines=ORDER, advances=[AdvanceInvoice.of(_zal("1230.00"))], **PARTIES),
         r"advances: they add up to 1230.00, the whole order \(1230.00\); .*art. 106f ust. 4.*"
         r"advance\(\.\.\., advances=\[\.\.\.\]\)"),
        # More than the whole order paid beforehand: the advances are corrected first (a part returned).
        (lambda: settlement(number="R/1", lines=ORDER, advances=[AdvanceInvoice(
            "Z/9", DAY, totals={"p_13_1": "1100.00", "p_14_1": "253.00"})], **PARTIES),
         r"advances: they add up to 1353.00, more than the whole order \(1230.00\); correct them first"),
        # An advance at 8 %, and an order at 23 % only: its tax was at a rate nothing is supplied at.
        (lambda: settlement(number="R/1", lines=ORDER, advances=[AdvanceInvoice(
            "Z/8", DAY, totals={"p_13_2": "100.00", "p_14_2": "8.00"})], **PARTIES),
         r"advances: 'Z/8' has P_13_2 and no line is at that rate; .*correct it first \(advance_correction"),
        (lambda: settlement(number="R/1", lines=ORDER, advances=[_paid()], exemption="art. 43", **PARTIES),
         r'exemption: only an invoice with a "zw" line'),
        (lambda: settlement(number="R/1", lines=ORDER, advances=[_paid()], sale_date="2026-03-01", **PARTIES),
         r"sale_date: expected a datetime.date"),
        (lambda: settlement(number="R/1", lines=ORDER, advances=[_paid()], currency="EUR", **PARTIES),
         r"advances: 'ZAL/1' is in PLN, the settlement in EUR"),
        # advance_correction(): the advance invoice, its order and the payment after.
        (lambda: advance_correction(number="K/1", corrected=_zal(), **PARTIES),
         r"corrected: expected an AdvanceInvoice \(AdvanceInvoice.of\(zal, ksef_number\)\)"),
        (lambda: advance_correction(number="K/1", corrected=AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "1.00"}),
                                    **PARTIES), r"corrected: the advance invoice's order is needed"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), received="-1.00", **PARTIES),
         r"received: -1.00; the payment after the correction"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), received="1230.01", **PARTIES),
         r"received: 1230.01 is more than the order's gross value 1230.00"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), received=1.5, **PARTIES),  # type: ignore[arg-type]
         r"received: 1.5 is a float"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), order=[], **PARTIES),
         r"order: at least one ordered line"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), order=ORDER[0], **PARTIES),  # type: ignore[arg-type]
         r"order: expected a sequence of Line objects"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), reason="", **PARTIES), r"reason: 1\.\.256"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), exchange_rate="4.3", **PARTIES),
         r"exchange_rate: only for an invoice in a foreign currency"),
        (lambda: advance_correction(number="K/1", corrected=_paid(), currency="EUR", **PARTIES),
         r"currency: 'EUR', but the corrected invoice is in PLN"),
        # settlement_correction(): a ROZ, its lines and totals, and the advances after.
        (lambda: settlement_correction(number="K/1", corrected=CorrectedInvoice.of(vat_invoice(
            number="FV/1", lines=ORDER, **PARTIES)), advances=[_paid()], **PARTIES),
         r"corrected: 'FV/1' is not a settlement invoice \(kind 'VAT'\); correction\(\) corrects it"),
        (lambda: settlement_correction(number="K/1", corrected=_paid(), advances=[_paid()], **PARTIES),  # type: ignore[arg-type]
         r"corrected: expected a CorrectedInvoice of a settlement invoice"),
        (lambda: settlement_correction(number="K/1", corrected=CorrectedInvoice(
            "R/1", DAY, kind="ROZ", totals={"p_13_1": "1.00"}), advances=[_paid()], **PARTIES),
         r"corrected: every line of the settlement invoice is needed"),
        (lambda: settlement_correction(number="K/1", corrected=_roz(), advances=[], **PARTIES),
         r"advances: at least one advance"),
        (lambda: settlement_correction(number="K/1", corrected=_roz(), advances=[_paid()], lines=[], **PARTIES),
         r"lines: at least one line"),
        # The references themselves.
        (lambda: AdvanceInvoice("Z/1", DAY, totals={}), r"advance totals: the invoice's P_13_x/P_14_x by field name"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"P_13_1": "1.00"}), r"advance totals: 'P_13_1' is not a P_13_x"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_14_1": "1.00"}), r"advance totals: p_14_1 without p_13_1"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "1.001"}),
         r"advance totals p_13_1: 1.001 has more than 2 decimal places"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "-1.00"}), r"advance totals: they add up to -1.00"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "1", "p_14_1": "1", "p_14_1_w": "4"}),
         r"advance totals: p_14_1_w is the tax in złoty of a foreign-currency invoice; this one is in PLN"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "1", "p_14_1": "1"}, currency="EUR"),
         r"advance totals: p_14_1_w, the tax in złoty, is missing and there is no exchange_rate"),
        (lambda: AdvanceInvoice("Z/1", DAY, "not-a-ksef-number", totals={"p_13_1": "1"}), r"advance ksef_number"),
        (lambda: AdvanceInvoice("", DAY, totals={"p_13_1": "1"}), r"advance number: 1\.\.256"),
        (lambda: AdvanceInvoice("Z/1", "2026-03-02", totals={"p_13_1": "1"}), r"advance issue_date"),  # type: ignore[arg-type]
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "1"}, order=[]), r"advance order: the order's Line"),
        (lambda: AdvanceInvoice.of(vat_invoice(number="FV/1", lines=ORDER, **PARTIES)),
         r"invoice: 'FV/1' is a VAT invoice, not an advance one \(ZAL\)"),
        (lambda: AdvanceInvoice.of(_zal(), corrections=[_zal()]),
         r"corrections\[0\]: expected a KOR_ZAL Invoice .*got ZAL"),
        (lambda: AdvanceInvoice.of(_zal(), corrections=_zal()), r"corrections: expected a sequence of KOR_ZAL"),
        (lambda: AdvanceInvoice.of(advance(number="ZAL/2", order=ORDER, received="10.00", **PARTIES), corrections=[
            advance_correction(number="KZ/1", corrected=_paid(), received="10.00", **PARTIES)]),
         r"corrections\[0\]: 'KZ/1' does not correct 'ZAL/2' \(DaneFaKorygowanej\)"),
        (lambda: CorrectedInvoice("R/1", DAY, kind="ZAL"), r"corrected kind: 'ZAL'; 'VAT' .* or 'ROZ'"),
        (lambda: CorrectedInvoice("R/1", DAY, kind="ROZ"), r"corrected totals: a settlement invoice's P_13_x"),
        (lambda: CorrectedInvoice("F/1", DAY, totals={"p_13_1": "1"}),
         r"corrected totals: only a settlement invoice's \(kind='ROZ'\) are used"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name_before_anything_is_built(build: Any, message: str) -> None:
    assert re.search(message, _refused(build)), _refused(build)


def test_an_invoice_whose_p_15_is_not_its_totals_is_not_read_as_a_reference() -> None:
    # A ROZ's and a ZAL's P_15 is the sum of their P_13_x and P_14_x (the builders compute from those
    # fields); an invoice edited by hand to say otherwise is not taken at its word.
    zal = _zal()
    zal.model.fa.p_15 = D("600.00")
    with pytest.raises(ValueError, match=r"invoice: 'ZAL/1' shows P_15 600.00, and its P_13_x and P_14_x add up to"):
        AdvanceInvoice.of(zal)
    roz = settlement(number="ROZ/1", lines=ORDER, advances=[_paid()], **PARTIES)
    roz.model.fa.p_15 = D("1.00")
    with pytest.raises(ValueError, match=r"invoice: 'ROZ/1' shows P_15 1.00"):
        CorrectedInvoice.of(roz)


def test_a_correction_that_does_not_show_the_whole_order_leaves_it_unknown() -> None:
    # AdvanceInvoice.of takes a KOR_ZAL's rows after the correction as the new order only when its
    # rows before (StanPrzedZ) are the whole order as it stood, the way advance_correction writes
    # them; rows of differences, or of the changed line alone, do not say what the order became.
    kor = advance_correction(number="KZ/1", corrected=_paid(), order=[Line("Meble biurowe", 1, "900.00")], **PARTIES)
    assert AdvanceInvoice.of(_zal(), corrections=[kor]).order == (Line("Meble biurowe", 1, "900.00"),)
    zamowienie = kor.model.fa.zamowienie
    assert zamowienie is not None
    del zamowienie.zamowienie_wiersz[0]  # the row before the correction left out
    unknown = AdvanceInvoice.of(_zal(), corrections=[kor])
    assert unknown.order is None and unknown.received == D("615.00")
    with pytest.raises(ValueError, match=r"corrected: the advance invoice's order is needed"):
        advance_correction(number="KZ/2", corrected=unknown, **PARTIES)
    # A correction without Zamowienie leaves the order as it was.
    kor.model.fa.zamowienie = None
    assert AdvanceInvoice.of(_zal(), corrections=[kor]).order == tuple(ORDER)


def test_correction_still_refuses_what_is_not_a_kor() -> None:
    # correction() builds KOR of VAT invoices; a settlement reference goes to settlement_correction.
    with pytest.raises(ValueError, match=r"corrected: 'ROZ/1' is a settlement invoice \(ROZ\)"):
        correction(number="K/1", corrected=_roz(), before=ORDER, after=[], **PARTIES)


# Review s12-settle: the chain of an advance invoice's corrections, each advance once, a settlement
# corrected into a refund, the split of a payment, wrong-shaped arguments and the last advance
# invoice (art. 106f ust. 4).


def test_a_correction_left_out_repeated_or_out_of_order_is_refused_by_its_place() -> None:
    # The Ministry's chain: k11 moves the flat to 8 % (the order changes), k12 raises the payment
    # from 20 000 to 30 000. Each KOR_ZAL starts from the state the ones before it left: k12's
    # rows before the correction (StanPrzedZ) have the flat at 8 %, and its P_15ZK is 20 000. Was:
    # [k12] alone gave P_13_1 16 393.44 (k11's differences never added; a ROZ then showed
    # -11 393.44), and [k11, k11, k12] P_13_1 -15 593.76.
    zal = advance(number="FZ2026/02/150", order=[FLAT_23, SERVICES], received="20000", **PARTIES)
    k11 = advance_correction(number="FK2026/03/5", corrected=AdvanceInvoice.of(zal), order=[FLAT_8, SERVICES],
                             **PARTIES)  # fmt: skip
    k12 = advance_correction(number="FK2026/03/7", corrected=AdvanceInvoice.of(zal, corrections=[k11]),
                             received="30000", **PARTIES)  # fmt: skip
    assert AdvanceInvoice.of(zal, corrections=[k11, k12]).received == D("30000.00")
    not_in_order = (r"'FK2026/03/7' shows the order before the correction \(StanPrzedZ\) with a line "
                    r".*'mieszkanie 50m\^2'")  # fmt: skip
    with pytest.raises(ValueError, match=rf"corrections\[0\]: {not_in_order}.*once each, in the order they were"):
        AdvanceInvoice.of(zal, corrections=[k12])
    with pytest.raises(ValueError, match=rf"corrections\[0\]: {not_in_order}"):
        AdvanceInvoice.of(zal, corrections=[k12, k11])
    with pytest.raises(ValueError, match=r"corrections\[1\]: 'FK2026/03/5' is given twice \(corrections\[0\] too\)"):
        AdvanceInvoice.of(zal, corrections=[k11, k11, k12])
    # Built again (only DataWytworzeniaFa differs), it is still the same correction.
    again = advance_correction(number="FK2026/03/5", corrected=AdvanceInvoice.of(zal), order=[FLAT_8, SERVICES],
                               created=dt.datetime(2026, 3, 3, tzinfo=dt.UTC), **PARTIES)  # fmt: skip
    assert again != k11
    with pytest.raises(ValueError, match=r"corrections\[1\]: 'FK2026/03/5' is given twice"):
        AdvanceInvoice.of(zal, corrections=[k11, again])


def test_a_correction_must_start_from_the_payment_and_rate_the_ones_before_left() -> None:
    # ZAL 615.00; KZ/1 returns 246.00 (to 369.00, P_15ZK 615.00). KZ/2 was built from the ZAL as
    # issued (P_15ZK 615.00, to 500.00), not as KZ/1 left it (369.00): it does not follow KZ/1.
    # Was: accepted, the advance then documented 369.00 - 115.00 = 254.00.
    paid = _paid()
    kz1 = advance_correction(number="KZ/1", corrected=paid, received="369.00", **PARTIES)
    kz2 = advance_correction(number="KZ/2", corrected=paid, received="500.00", **PARTIES)
    with pytest.raises(
        ValueError,
        match=r"corrections\[1\]: 'KZ/2' corrects a payment of 615.00 \(P_15ZK\), and the "
        r"advance invoice, as the corrections before it left it, documents 369.00",
    ):
        AdvanceInvoice.of(_zal(), ZAL_KSEF, corrections=[kz1, kz2])
    kz2 = advance_correction(number="KZ/2", corrected=AdvanceInvoice.of(_zal(), ZAL_KSEF, corrections=[kz1]),
                             received="500.00", **PARTIES)  # fmt: skip
    assert AdvanceInvoice.of(_zal(), ZAL_KSEF, corrections=[kz1, kz2]).received == D("500.00")
    kz1.model.fa.p_15_zk = None
    with pytest.raises(ValueError, match=r"corrections\[0\]: 'KZ/1' has no P_15ZK, the payment before the correction"):
        AdvanceInvoice.of(_zal(), ZAL_KSEF, corrections=[kz1])
    # In euro: KE/1 converts at 4.20 instead of 4.30 (KursWalutyZK 4.30); KE/2, built from the ZAL
    # as issued, says the advance was at 4.30 (KursWalutyZK) when KE/1 had left it at 4.20.
    common: dict[str, Any] = {**PARTIES, "buyer": GERMAN}
    zal = advance(number="Z/E/1", order=ORDER, received="615.00", currency="EUR", exchange_rate="4.30", **common)
    ke1 = advance_correction(number="KE/1", corrected=AdvanceInvoice.of(zal), exchange_rate="4.20", **common)
    ke2 = advance_correction(number="KE/2", corrected=AdvanceInvoice.of(zal), exchange_rate="4.25", **common)
    with pytest.raises(
        ValueError,
        match=r"corrections\[1\]: 'KE/2' corrects an advance converted at 4.30 "
        r"\(KursWalutyZK\), and .* is at 4.20",
    ):
        AdvanceInvoice.of(zal, corrections=[ke1, ke2])
    assert AdvanceInvoice.of(zal, corrections=[ke1]).exchange_rate == D("4.20")


def test_two_corrections_that_share_a_number_are_read_as_two() -> None:
    # The Ministry's samples FA_3_Przykład_12.xml and _13.xml are both "FK2026/03/7" (issued the
    # same day); each follows the state the one before left, so both are added.
    zal = advance(number="FZ2026/02/150", order=[FLAT_23, SERVICES], received="20000", **PARTIES)
    k11 = advance_correction(number="FK2026/03/5", corrected=AdvanceInvoice.of(zal), order=[FLAT_8, SERVICES],
                             **PARTIES)  # fmt: skip
    k12 = advance_correction(number="FK2026/03/7", corrected=AdvanceInvoice.of(zal, corrections=[k11]),
                             received="30000", **PARTIES)  # fmt: skip
    k13 = advance_correction(number="FK2026/03/7", corrected=AdvanceInvoice.of(zal, corrections=[k11, k12]),
                             order=[FLAT_8_LESS, SERVICES_LESS], **PARTIES)  # fmt: skip
    paid = AdvanceInvoice.of(zal, corrections=[k11, k12, k13])
    assert paid.order == (FLAT_8_LESS, SERVICES_LESS) and paid.received == D("30000.00")


def test_the_same_advance_invoice_is_not_deducted_twice() -> None:
    # The 123.00 advance given once with its KSeF number and once as if issued outside KSeF was
    # deducted twice (800.00 / 184.00 / 984.00 due instead of 900.00 / 207.00 / 1107.00), and one
    # KSeF number under two invoice numbers too; both listed in FakturaZaliczkowa.
    zal = _zal("123.00")
    typo = AdvanceInvoice("ZAL-1", DAY, ZAL_KSEF, totals=zal.totals())
    for build in (
        lambda advances: settlement(number="R/1", lines=ORDER, advances=advances, **PARTIES),
        lambda advances: settlement_correction(number="K/1", corrected=_roz(), advances=advances, **PARTIES),
    ):
        with pytest.raises(ValueError, match=r"advances: 'ZAL/1' is given twice; each advance invoice counts once"):
            build([AdvanceInvoice.of(zal, ZAL_KSEF), AdvanceInvoice.of(zal)])
        with pytest.raises(
            ValueError,
            match=rf"advances: the KSeF number {ZAL_KSEF} is given twice \('ZAL/1' and "
            r"'ZAL-1'\); each advance invoice counts once",
        ):
            build([AdvanceInvoice.of(zal, ZAL_KSEF), typo])
    roz = settlement(number="R/1", lines=ORDER, advances=[AdvanceInvoice.of(zal, ZAL_KSEF)], **PARTIES)
    assert roz.totals() == {"p_13_1": D("900.00"), "p_14_1": D("207.00")} and roz.gross == D("1107.00")


def test_a_settlement_corrected_after_a_price_cut_shows_the_refund() -> None:
    # ZAL 615.00 (500.00 + 115.00) towards 1000.00 net at 23 %; ROZ 500.00 / 115.00 / 615.00 due.
    # The price is cut to 350.00 net (80.50 tax, 430.50 gross) after the supply. After the
    # correction: 350.00 - 500.00 = -150.00, 80.50 - 115.00 = -34.50, 430.50 - 615.00 = -184.50
    # (184.50 to give back). The KOR_ROZ: -150.00 - 500.00 = -650.00, -34.50 - 115.00 = -149.50,
    # P_15 -184.50 - 615.00 = -799.50, P_15ZK 615.00. Was refused ("advances: they add up to
    # 615.00, the whole order (430.50)", a ROZ's refusal, not a correction's).
    roz = _roz()
    cut = settlement_correction(number="KR/1", corrected=roz, advances=[_paid()], reason="obniżka ceny",
                                lines=[Line("Meble biurowe", 1, "350.00", "23")], **PARTIES)  # fmt: skip
    assert cut.totals() == {"p_13_1": D("-650.00"), "p_14_1": D("-149.50")}
    assert (cut.gross, cut.model.fa.p_15_zk) == (D("-799.50"), D("615.00"))
    validate_invoice(cut.to_xml())
    # Cut to exactly the advance (500.00 net, 615.00 gross): nothing remains, -500.00 / -115.00 / -615.00.
    to_advance = settlement_correction(number="KR/2", corrected=roz, advances=[_paid()],
                                       lines=[Line("Meble biurowe", 1, "500.00", "23")], **PARTIES)  # fmt: skip
    assert to_advance.totals() == {"p_13_1": D("-500.00"), "p_14_1": D("-115.00")}
    assert to_advance.gross == D("-615.00")
    # Paid in full before the correction, as an advance corrected since may show: nothing due after.
    whole = settlement_correction(number="KR/3", corrected=roz, advances=[AdvanceInvoice.of(_zal("1230.00"))],
                                  **PARTIES)  # fmt: skip
    assert whole.totals() == {"p_13_1": D("-500.00"), "p_14_1": D("-115.00")} and whole.gross == D("-615.00")


def test_a_settlement_corrected_to_drop_a_rate_deducts_its_advance_field_by_field() -> None:
    # The order: A 1000.00 at 23 % (gross 1230.00), B 500.00 at 8 % (gross 540.00), 1770.00. The
    # 500.00 advance: 500.00 x 1230 / 1770 = 347.457... -> 347.46 at 23 % (tax 64.97, net 282.49)
    # and 152.54 at 8 % (tax 152.54 x 8 / 108 = 11.299... -> 11.30, net 141.24). The ROZ: 717.51 /
    # 165.03 at 23 %, 358.76 / 28.70 at 8 %, 1270.00 due. B is not supplied: after the correction
    # 23 % is unchanged, and at 8 % the advance is deducted from nothing, 0 - 141.24 = -141.24 and
    # 0 - 11.30 = -11.30; 1230.00 - 500.00 = 730.00 due. The KOR_ROZ: 0.00 / 0.00, -500.00 /
    # -40.00, P_15 -540.00. Was refused ("correct it first (advance_correction, KOR_ZAL)"): the
    # advance invoice would have had to be corrected again for what the settlement had settled.
    order = [Line("A", 1, "1000.00", "23"), Line("B", 1, "500.00", "8")]
    paid = AdvanceInvoice.of(advance(number="Z/1", order=order, received="500.00", **PARTIES))
    roz = settlement(number="R/1", lines=order, advances=[paid], **PARTIES)
    assert roz.totals() == {"p_13_1": D("717.51"), "p_14_1": D("165.03"), "p_13_2": D("358.76"),
                            "p_14_2": D("28.70")}  # fmt: skip
    kor = settlement_correction(number="KR/1", corrected=CorrectedInvoice.of(roz), advances=[paid], lines=order[:1],
                                **PARTIES)  # fmt: skip
    assert kor.totals() == {"p_13_1": D("0.00"), "p_14_1": D("0.00"), "p_13_2": D("-500.00"), "p_14_2": D("-40.00")}
    assert (kor.gross, kor.model.fa.p_15_zk) == (D("-540.00"), D("1270.00"))
    validate_invoice(kor.to_xml())


def test_amounts_too_large_for_the_schema_are_refused_before_building() -> None:
    # Each amount was checked (under 10^16), not their sum (P_15, P_15ZK of a correction), nor the
    # differences a correction shows: to_xml() refused them (InvoiceSchemaError) after building.
    big = "9000000000000000.00"
    with pytest.raises(ValueError, match=r"advance totals: P_15 would be 18000000000000000.00, too large"):
        AdvanceInvoice("Z/1", DAY, totals={"p_13_1": big, "p_14_1": big})
    with pytest.raises(ValueError, match=r"corrected totals: P_15 would be 18000000000000000.00, too large"):
        CorrectedInvoice("R/1", DAY, lines=ORDER, kind="ROZ", totals={"p_13_1": big, "p_14_1": big})
    # A payment of 10^15 towards 10 x 99 999 999 999 999 at 23 % (tax 10^15 x 23 / 123 =
    # 186 991 869 918 699.19, net 813 008 130 081 300.81) after an advance that showed -9.5 x 10^15
    # at 23 % and as much at 8 %: P_13_1 813 008 130 081 300.81 + 9.5 x 10^15.
    order = [Line("A", 10, "99999999999999", "23")]
    odd = AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "-9500000000000000", "p_14_1": "0",
                                             "p_13_2": "9500000000000000", "p_14_2": "0"}, order=order)  # fmt: skip
    with pytest.raises(ValueError, match=r"corrected: P_13_1 would be 10313008130081300.81, too large"):
        advance_correction(number="K/1", corrected=odd, received="1000000000000000", **PARTIES)
    # A settlement that showed -9.5 x 10^15 net and as much tax, corrected to that order (net
    # 999 999 999 999 990.00): P_13_1 999 999 999 999 990.00 + 9.5 x 10^15.
    shown = CorrectedInvoice("R/1", DAY, lines=ORDER, kind="ROZ",
                             totals={"p_13_1": "-9500000000000000", "p_14_1": "9500000000000000"})  # fmt: skip
    with pytest.raises(ValueError, match=r"corrected: P_13_1 would be 10499999999999990.00, too large"):
        settlement_correction(number="K/1", corrected=shown, advances=[AdvanceInvoice("Z/2", DAY, totals={
            "p_13_1": "0.00"})], lines=order, **PARTIES)  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: settlement(number="R/1", lines=ORDER[0], advances=[_paid()], **PARTIES),  # type: ignore[arg-type]
         r"lines: expected a sequence of Line objects, got Line"),
        (lambda: settlement(number="R/1", lines=None, advances=[_paid()], **PARTIES),  # type: ignore[arg-type]
         r"lines: expected a sequence of Line objects, got NoneType"),
        (lambda: settlement(number="R/1", lines=iter(ORDER), advances=[_paid()], **PARTIES),  # type: ignore[arg-type]
         r"lines: expected a sequence of Line objects, got list_iterator"),
        (lambda: settlement_correction(number="K/1", corrected=_roz(), advances=[_paid()], lines=ORDER[0], **PARTIES),  # type: ignore[arg-type]
         r"lines: expected a sequence of Line objects, got Line"),
        (lambda: advance(number="Z/1", order=ORDER[0], received="1", **PARTIES),  # type: ignore[arg-type]
         r"order: expected a sequence of Line objects, got Line"),
        (lambda: advance(number="Z/1", order=None, received="1", **PARTIES),  # type: ignore[arg-type]
         r"order: expected a sequence of Line objects, got NoneType"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "1"}, order=ORDER[0]),  # type: ignore[arg-type]
         r"advance order: expected a sequence of Line objects, got Line"),
        (lambda: AdvanceInvoice("Z/1", DAY, totals={"p_13_1": "1"}, order=5),  # type: ignore[arg-type]
         r"advance order: expected a sequence of Line objects, got int"),
        (lambda: CorrectedInvoice("R/1", DAY, lines=ORDER[0], kind="ROZ", totals={"p_13_1": "1"}),  # type: ignore[arg-type]
         r"corrected lines: expected a sequence of Line objects, got Line"),
        (lambda: correction(number="K/1", corrected=CorrectedInvoice("F/1", DAY, lines=ORDER), before=ORDER[0],  # type: ignore[arg-type]
                            after=[], **PARTIES), r"before: expected a sequence of Line objects, got Line"),
        (lambda: vat_invoice(number="F/1", lines=ORDER[0], **PARTIES),  # type: ignore[arg-type]
         r"lines: expected a sequence of Line objects, got Line"),
    ],
)  # fmt: skip
def test_wrong_shaped_lines_are_refused_by_name(build: Any, message: str) -> None:
    # Each was a TypeError ("'Line' object is not iterable") from inside the builder.
    assert re.search(message, _refused(build)), _refused(build)


def test_an_order_with_a_rate_below_zero_takes_no_advance() -> None:
    # A discount at a rate of its own: 1000.00 at 23 % and -50.00 at 8 % (-54.00 gross). Its
    # share of a payment would be negative (was: P_13_2 -50.00 on a 561.00 advance invoice).
    order = [Line("A", 1, "1000.00", "23"), Line("Rabat", 1, "-50.00", "8")]
    refused = r"order: its lines at '8' add up to -54.00 gross; an advance payment is split"
    with pytest.raises(ValueError, match=refused):
        advance(number="Z/1", order=order, received="561.00", **PARTIES)
    with pytest.raises(ValueError, match=refused):
        advance_correction(number="K/1", corrected=_paid(), order=order, **PARTIES)
    # A free item at a rate of its own (0.00) takes 0.00 of it, as before.
    free = advance(number="Z/2", order=[*ORDER, Line("Katalog", 1, "0", "zw")], received="615.00",
                   exemption="art. 43 ust. 1 pkt 19", **PARTIES)  # fmt: skip
    assert free.totals() == {"p_13_1": D("500.00"), "p_14_1": D("115.00"), "p_13_7": D("0.00")}


def test_no_rate_of_an_advance_goes_below_zero() -> None:
    # 177.00 towards 1906.27 at 23 % (2344.71 gross), 80.95 at 5 % (85.00), 97.27 at 8 % (105.05)
    # and 0.05 exempt: 2534.81. Exact shares: 163.7257... at 23 %, 7.3354... at 8 %, 5.9353... at
    # 5 %, 0.0034... exempt; rounded down 163.72 + 7.33 + 5.93 + 0.00 = 176.98, and the 2 grosze
    # left go to the largest remainders, 23 % (0.57 of a grosz) and 8 % (0.54). Was: 5 % rounded
    # half up to 5.94 and the exempt rate took the rest, -0.01 (P_13_7 -0.01 on a positive payment).
    order = [Line("Usługa", 1, "1906.27", "23"), Line("Książka", 1, "80.95", "5"),
             Line("Żywność", 1, "97.27", "8"), Line("Opłata", 1, "0.05", "zw")]  # fmt: skip
    zal = advance(number="Z/1", order=order, received="177.00", exemption="art. 43 ust. 1 pkt 37", **PARTIES)
    # 163.73 x 23 / 123 = 30.616... -> 30.62; 7.34 x 8 / 108 = 0.543... -> 0.54; 5.93 x 5 / 105 = 0.282... -> 0.28.
    assert zal.totals() == {"p_13_1": D("133.11"), "p_14_1": D("30.62"), "p_13_2": D("6.80"), "p_14_2": D("0.54"),
                            "p_13_3": D("5.65"), "p_14_3": D("0.28"), "p_13_7": D("0.00")}  # fmt: skip
    assert zal.gross == D("177.00")


def test_the_last_advance_invoice_lists_the_earlier_ones() -> None:
    # art. 106f ust. 4: paid in full before the supply, the last advance invoice settles the order
    # and lists the earlier ones (FA(3) XSD, NrFaZaliczkowej: "Pole obowiązkowe dla ... ostatniej z
    # faktur, o której mowa w art. 106f ust. 4"). Its amounts are its own payment's: the 614.00
    # left of the 1230.00 order after advances of 615.00 and 1.00, tax 614.00 x 23 / 123 =
    # 114.813... -> 114.81, net 499.19.
    first = AdvanceInvoice.of(_zal(), ZAL_KSEF)
    outside = AdvanceInvoice("ZAL/0", DAY, totals={"p_13_1": "0.81", "p_14_1": "0.19"})
    last = advance(number="ZAL/2", order=ORDER, received="614.00", advances=[first, outside], **PARTIES)
    assert last.kind == "ZAL" and last.totals() == {"p_13_1": D("499.19"), "p_14_1": D("114.81")}
    xml = last.to_xml()
    validate_invoice(xml)
    assert (
        f"<FakturaZaliczkowa><NrKSeFFaZaliczkowej>{ZAL_KSEF}</NrKSeFFaZaliczkowej></FakturaZaliczkowa>"
        "<FakturaZaliczkowa><NrKSeFZN>1</NrKSeFZN><NrFaZaliczkowej>ZAL/0</NrFaZaliczkowej></FakturaZaliczkowa>"
    ).encode() in xml
    assert Invoice.from_xml(xml) == last
    assert advance(number="ZAL/3", order=ORDER, received="1.00", **PARTIES).model.fa.faktura_zaliczkowa == []
    with pytest.raises(ValueError, match=r"advances: 'ZAL/1' is given twice"):
        advance(number="ZAL/2", order=ORDER, received="1.00", advances=[first, AdvanceInvoice.of(_zal())], **PARTIES)
    with pytest.raises(ValueError, match=r"advances: 'ZAL/1' is this invoice's own number"):
        advance(number="ZAL/1", order=ORDER, received="1.00", advances=[first], **PARTIES)
    with pytest.raises(
        ValueError,
        match=r"advances: they add up to 615.00, and with this payment to more than the "
        r"order's gross value \(this payment leaves 614.99 of it\)",
    ):
        advance(number="ZAL/2", order=ORDER, received="615.01", advances=[first], **PARTIES)
    with pytest.raises(ValueError, match=r"advances: 'ZAL/1' is in PLN, this advance invoice in EUR; the advance "):
        advance(number="ZAL/2", order=ORDER, received="1.00", advances=[first], currency="EUR",
                exchange_rate="4.3", **PARTIES)  # fmt: skip
    with pytest.raises(ValueError, match=r"advances: expected a sequence of AdvanceInvoice"):
        advance(number="ZAL/2", order=ORDER, received="1.00", advances=first, **PARTIES)  # type: ignore[arg-type]


def test_the_advance_builders_moved_to_their_own_module_and_import_as_before() -> None:
    # ksef_client.invoice.advances holds them; builders (where advance() always was) and the
    # package give the same objects, and a fresh interpreter imports the module on its own.
    from ksef_client.invoice import advances, builders

    for name in ("AdvanceInvoice", "advance", "advance_correction", "settlement", "settlement_correction"):
        assert getattr(builders, name) is getattr(advances, name) is getattr(ksef_client.invoice, name)
        assert name in builders.__all__
    code = "import ksef_client.invoice.advances as a; from ksef_client.invoice.builders import advance; " \
           "assert advance is a.advance"  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
