"""Corrections that change no line (party_correction, number_correction, discount_correction) and
TypKorekty (``effect=``) on every correction builder: the Ministry's sample invoices rebuilt, and
the arguments refused before anything is built.

The Ministry's samples (FA(3), "Przykład" 5, 6 and 7; their figures and structure are restated
here, the files are not in this repository): 5 corrects the buyer's name ("CDE sp. j." on
FV2026/02/150, "CeDeE s.c." now) with P_15 0, no rows, TypKorekty 1 and Podmiot2K; 6 is a discount
of 50 000 zł gross at 23 % on the six invoices of the first half of 2026 (P_13_1 -40 650.41, P_14_1
-9 349.59, P_15 -50 000, TypKorekty 2, OkresFaKorygowanej "pierwsze półrocze 2026", no rows); 7 is
the same on one kind of goods, named in a row with no amounts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from ksef_client.errors import InvoiceSchemaError
from ksef_client.identifiers import make_ksef_number
from ksef_client.invoice import (
    AdvanceInvoice,
    Contact,
    CorrectedInvoice,
    CorrectionEffect,
    DiscountedItem,
    Invoice,
    Line,
    Party,
    TaxpayerStatus,
    ThirdParty,
    ThirdPartyRole,
    advance,
    advance_correction,
    correction,
    corrections,
    discount_correction,
    number_correction,
    party_correction,
    settlement,
    settlement_correction,
    vat_invoice,
)
from ksef_client.invoice.totals import RATES, discount_totals, line_totals
from ksef_client.schemas import SessionLimits, validate_invoice

D = Decimal
# The samples' parties: "ABC AGD sp. z o. o." sells to "CeDeE s.c." (customer number fdfd778343).
SELLER = Party("ABC AGD sp. z o. o.", "ul. Kwiatowa 1 m. 2", nip="9999999999", address2="00-001 Warszawa",
               contacts=[Contact(email="abc@abc.pl", phone="667444555")])  # fmt: skip
BUYER = Party("CeDeE s.c.", "ul. Sadowa 1 lok. 3", nip="1111111111", address2="00-002 Kraków",
              contacts=[Contact(email="cde@cde.pl", phone="555777999")], customer_number="fdfd778343")  # fmt: skip
BUYER_BEFORE = Party("CDE sp. j.", "ul. Sadowa 1 lok. 3", nip="1111111111", address2="00-002 Kraków")
# The samples' KSeF numbers have checksums that do not check; these are made with the same parts.
FIRST_HALF = [
    CorrectedInvoice(number, issued, make_ksef_number("9999999999", "20230908", part))
    for number, issued, part in [
        ("FV2026/01/134", dt.date(2026, 1, 15), "8BEF280C8D35"),
        ("FV2026/02/150", dt.date(2026, 2, 15), "76B2B580D4DC"),
        ("FV2026/03/143", dt.date(2026, 3, 15), "4191312C0E57"),
        ("FV2026/04/23", dt.date(2026, 4, 15), "2B9266CEF3C4"),
        ("FV2026/05/54", dt.date(2026, 5, 15), "16B99491C78B"),
        ("FV2026/06/15", dt.date(2026, 6, 15), "D08FB95950BE"),
    ]
]
DAY = dt.date(2026, 3, 2)
COMMON: dict[str, Any] = {"number": "K/1", "issue_date": DAY, "seller": SELLER, "buyer": BUYER}
REFERENCE = CorrectedInvoice("FV/1", dt.date(2026, 3, 1))
DISCOUNT: dict[str, Any] = {"corrected": [REFERENCE], "period": "marzec 2026", "discount": {"23": "123.00"}}


def _fa_tags(invoice: Invoice) -> list[str]:
    """The names of ``Fa``'s children in the invoice's XML, in order."""
    fa = etree.fromstring(invoice.to_xml()).find("{*}Fa")
    assert fa is not None
    return [etree.QName(child).localname for child in fa]


def test_the_ministry_s_correction_of_a_buyer_s_name_is_rebuilt() -> None:
    # Przykład 5: FK2026/04/23 of 2026-04-01 corrects FV2026/02/150 of 2026-02-15, "błędna nazwa
    # nabywcy", TypKorekty 1; Podmiot2 "CeDeE s.c." and Podmiot2K "CDE sp. j." (NIP 1111111111, the
    # same address), both IDNabywcy 0001; P_15 0, no P_13_x/P_14_x and no FaWiersz.
    ksef_number = make_ksef_number("9999999999", "20230908", "8BEF280C8D35")
    kor = party_correction(
        number="FK2026/04/23", issue_date=dt.date(2026, 4, 1), seller=SELLER, buyer=BUYER,
        corrected=CorrectedInvoice("FV2026/02/150", dt.date(2026, 2, 15), ksef_number), buyer_before=BUYER_BEFORE,
        reason="błędna nazwa nabywcy", effect=CorrectionEffect.ORIGINAL_INVOICE_DATE,
    )  # fmt: skip
    validate_invoice(kor.to_xml())
    fa = kor.model.fa
    assert (kor.kind, fa.przyczyna_korekty, fa.typ_korekty and fa.typ_korekty.value) == (
        "KOR", "błędna nazwa nabywcy", 1)  # fmt: skip
    assert kor.gross == 0 and kor.totals() == {} and fa.fa_wiersz == []
    (data,) = fa.dane_fa_korygowanej
    assert (data.data_wyst_fa_korygowanej.to_date(), data.nr_fa_korygowanej, data.nr_kse_ffa_korygowanej) == (
        dt.date(2026, 2, 15), "FV2026/02/150", ksef_number)  # fmt: skip
    # The sample's Fa, less P_1M (the place of issue, which no builder writes).
    assert _fa_tags(kor) == ["KodWaluty", "P_1", "P_2", "P_15", "Adnotacje", "RodzajFaktury", "PrzyczynaKorekty",
                             "TypKorekty", "DaneFaKorygowanej", "Podmiot2K"]  # fmt: skip
    (before,) = fa.podmiot2_k
    assert (before.dane_identyfikacyjne.nip, before.dane_identyfikacyjne.nazwa, before.idnabywcy) == (
        "1111111111", "CDE sp. j.", "0001")  # fmt: skip
    assert before.adres is not None and (before.adres.adres_l1, before.adres.adres_l2) == (
        "ul. Sadowa 1 lok. 3", "00-002 Kraków")  # fmt: skip
    assert (kor.model.podmiot2.dane_identyfikacyjne.nazwa, kor.model.podmiot2.idnabywcy) == ("CeDeE s.c.", "0001")
    assert fa.podmiot1_k is None and fa.okres_fa_korygowanej is None and fa.nr_fa_korygowany is None
    assert Invoice.from_xml(kor.to_xml()) == kor


def test_the_ministry_s_discount_for_a_half_year_is_rebuilt_to_the_grosz() -> None:
    # Przykład 6: FK2026/07/243 of 2026-07-15, a discount of 50 000 zł on the six invoices of the
    # first half of 2026, TypKorekty 2: 50 000 x 23 / 123 = 9 349.593... -> 9 349.59 tax, 50 000 -
    # 9 349.59 = 40 650.41 net. Przykład 7: the same on one kind of goods, one row with no amounts
    # (NrWierszaFa 1, P_7 "lodówka Zimnotech mk1", CN "8418 21 91", P_8A "szt.", P_8B 1000).
    fridges = DiscountedItem("lodówka Zimnotech mk1", 1000, "szt.", cn="8418 21 91")
    reason = "rabat 50000 z uwagi na poziom zakupów pierwszym półroczu 2026"
    header = ["KodWaluty", "P_1", "P_2", "P_13_1", "P_14_1", "P_15", "Adnotacje", "RodzajFaktury", "PrzyczynaKorekty",
              "TypKorekty", *["DaneFaKorygowanej"] * 6, "OkresFaKorygowanej"]  # fmt: skip
    for items, rows in (([], []), ([fridges], ["FaWiersz"])):
        kor = discount_correction(
            number="FK2026/07/243", issue_date=dt.date(2026, 7, 15), seller=SELLER, buyer=BUYER, corrected=FIRST_HALF,
            period="pierwsze półrocze 2026", discount={"23": D("50000")}, items=items, reason=reason,
            effect=CorrectionEffect.CORRECTION_ISSUE_DATE, allow_future_issue_date=True,
        )  # fmt: skip
        xml = kor.to_xml()
        validate_invoice(xml)
        assert kor.totals() == {"p_13_1": D("-40650.41"), "p_14_1": D("-9349.59")}
        assert kor.gross == D("-50000")
        fa = kor.model.fa
        assert (kor.kind, fa.przyczyna_korekty, fa.typ_korekty and fa.typ_korekty.value) == ("KOR", reason, 2)
        assert fa.okres_fa_korygowanej == "pierwsze półrocze 2026"
        listed = [(d.nr_fa_korygowanej, d.data_wyst_fa_korygowanej.to_date(), d.nr_kse_ffa_korygowanej)
                  for d in fa.dane_fa_korygowanej]  # fmt: skip
        assert listed == [(r.number, r.issue_date, r.ksef_number) for r in FIRST_HALF]
        assert _fa_tags(kor) == header + rows  # the sample's Fa, less P_1M
        assert b"<P_19N>1</P_19N>" in xml and b"<P_18>2</P_18>" in xml  # the samples' annotations
        assert Invoice.from_xml(xml) == kor
    row = fa.fa_wiersz[0]
    assert (row.nr_wiersza_fa, row.p_7, row.cn, row.p_8_a, row.p_8_b) == (1, "lodówka Zimnotech mk1", "8418 21 91",
                                                                        "szt.", D(1000))  # fmt: skip
    assert (row.p_9_a, row.p_11, row.p_12) == (None, None, None)
    fa_row = etree.fromstring(xml).find("{*}Fa/{*}FaWiersz")
    assert [etree.QName(child).localname for child in fa_row] == ["NrWierszaFa", "P_7", "CN", "P_8A", "P_8B"]


def test_a_discount_is_split_into_tax_and_net_at_each_rate_and_a_net_discount_comes_back() -> None:
    # Each rate's gross discount: tax gross x rate / (100 + rate) rounded half up, net the rest;
    # rates without tax are net alone. 100.00 at 23 %: 18.699... -> 18.70, 81.30; 50.00 at 22 %
    # (P_13_1 too): 9.016... -> 9.02, 40.98; 1.00 at 8 %: 0.074 -> 0.07, 0.93; 10.00 "zw".
    totals = discount_totals({"23": D("100.00"), "22": D("50.00"), "8": D("1.00"), "zw": D("10.00")})
    assert totals.fields == {"p_13_1": D("-122.28"), "p_14_1": D("-27.72"), "p_13_2": D("-0.93"),
                             "p_14_2": D("-0.07"), "p_13_7": D("-10.00")}  # fmt: skip
    assert totals.gross == D("-161.00")
    # A discount agreed net: its gross (net + tax) splits back into that net, at every taxed rate.
    for rate, fields in RATES.items():
        if fields.tax is None:
            continue
        for grosze in [*range(1, 3001), 99_999_999, 123_456_789_01, 4_065_041]:
            net = D(grosze).scaleb(-2)
            gross = line_totals([Line("x", 1, net, rate)]).gross
            assert discount_totals({rate: gross}).fields[fields.net] == -net, (rate, net)
    kor = discount_correction(**COMMON, corrected=[REFERENCE], period="marzec 2026", exemption="art. 43 ust. 1 pkt 37",
                              discount={23: "100.00", "zw": "10", "oo": "5.5"})  # fmt: skip
    xml = kor.to_xml()
    validate_invoice(xml)
    assert kor.totals() == {"p_13_1": D("-81.30"), "p_14_1": D("-18.70"), "p_13_7": D("-10.00"),
                            "p_13_10": D("-5.50")}  # fmt: skip
    assert kor.gross == D("-115.50")
    assert b"<P_18>1</P_18>" in xml and b"<P_19>1</P_19><P_19A>art. 43 ust. 1 pkt 37</P_19A>" in xml


def test_a_number_correction_names_the_wrong_number_and_the_right_one() -> None:
    # FA(3) XSD, NrFaKorygowany: "Poprawny numer faktury korygowanej w przypadku, gdy przyczyną korekty
    # jest błędny numer faktury korygowanej. W takim przypadku błędny numer faktury należy wskazać w
    # polu NrFaKorygowanej".
    ksef_number = make_ksef_number("9999999999", "20260301", "0A1B2C3D4E5F")
    kor = number_correction(**COMMON, corrected=CorrectedInvoice("FV/2026/03/0O1", dt.date(2026, 3, 1), ksef_number),
                            right_number="FV/2026/03/001", reason="błędny numer faktury", effect=1)  # fmt: skip
    validate_invoice(kor.to_xml())
    fa = kor.model.fa
    assert (fa.dane_fa_korygowanej[0].nr_fa_korygowanej, fa.nr_fa_korygowany) == ("FV/2026/03/0O1", "FV/2026/03/001")
    assert kor.gross == 0 and kor.totals() == {} and fa.fa_wiersz == [] and fa.podmiot2_k == []
    assert _fa_tags(kor) == ["KodWaluty", "P_1", "P_2", "P_15", "Adnotacje", "RodzajFaktury", "PrzyczynaKorekty",
                             "TypKorekty", "DaneFaKorygowanej", "NrFaKorygowany"]  # fmt: skip
    with pytest.raises(ValueError, match=r"right_number: 'FV/2026/03/0O1 ' is the number the corrected invoice"):
        number_correction(**COMMON, corrected=CorrectedInvoice("FV/2026/03/0O1", DAY), right_number="FV/2026/03/0O1 ")
    with pytest.raises(ValueError, match=r"right_number: 1\.\.256 characters"):
        number_correction(**COMMON, corrected=REFERENCE, right_number=" ")


def test_the_seller_and_additional_buyers_are_corrected_each_linked_by_its_key() -> None:
    # Podmiot1K: the seller as the corrected invoice shows it (prefix, NIP and name, address).
    # Podmiot2K (up to 101): the buyer and the additional buyers (Podmiot3, role 4) corrected, each
    # with the IDNabywcy of the party it shows: 0001 the buyer, then the additional buyers in order.
    first = ThirdParty(Party("Współnabywca A", "Poznań", nip="5265877635"), ThirdPartyRole.ADDITIONAL_BUYER, "50")
    payer = ThirdParty(Party("Płatnik", "Gdańsk", nip="1111111111"), ThirdPartyRole.PAYER)
    second = ThirdParty(Party("Jan Kowalski", "Łódź"), ThirdPartyRole.ADDITIONAL_BUYER, "25")  # no identifier
    seller_before = Party("ABC AGD sp. z o.o.", "ul. Kwiatowa 1", nip="9999999999", vat_prefix="PL")
    kor = party_correction(
        **COMMON, corrected=REFERENCE, third_parties=[first, payer, second], seller_before=seller_before,
        buyer_before=BUYER_BEFORE,
        additional_buyers_before=[Party("Jan Kowalsky", "Łódź"), Party("Współnabywca", "Poznań", nip="5265877635")],
    )  # fmt: skip
    validate_invoice(kor.to_xml())
    k1 = kor.model.fa.podmiot1_k
    assert k1 is not None and k1.prefiks_podatnika is not None and k1.prefiks_podatnika.value == "PL"
    assert (k1.dane_identyfikacyjne.nip, k1.dane_identyfikacyjne.nazwa, k1.adres.adres_l1) == (
        "9999999999", "ABC AGD sp. z o.o.", "ul. Kwiatowa 1")  # fmt: skip
    shown = [(k.dane_identyfikacyjne.nazwa, k.dane_identyfikacyjne.brak_id is not None, k.idnabywcy)
             for k in kor.model.fa.podmiot2_k]  # fmt: skip
    assert shown == [("CDE sp. j.", False, "0001"), ("Współnabywca", False, "0002"), ("Jan Kowalsky", True, "0003")]
    assert [t.idnabywcy for t in kor.model.podmiot3] == ["0002", None, "0003"]
    assert kor.model.podmiot2.idnabywcy == "0001"
    assert "<Podmiot3><IDNabywcy>0002</IDNabywcy><DaneIdentyfikacyjne><NIP>5265877635" in kor.to_xml().decode()
    # The seller alone: no IDNabywcy anywhere.
    alone = party_correction(**COMMON, corrected=REFERENCE, seller_before=seller_before)
    assert b"IDNabywcy" not in alone.to_xml() and alone.model.fa.podmiot2_k == []


# Each correction builder, with every other argument valid: (effect) -> Invoice.
def _zal() -> AdvanceInvoice:
    return AdvanceInvoice.of(advance(number="ZAL/1", order=[Line("Usługa", 1, "100")], received="10.00", **{
        k: v for k, v in COMMON.items() if k != "number"}))  # fmt: skip


def _roz() -> CorrectedInvoice:
    roz = settlement(number="ROZ/1", issue_date=DAY, seller=SELLER, buyer=BUYER, lines=[Line("Usługa", 1, "100")],
                     advances=[_zal()])  # fmt: skip
    return CorrectedInvoice.of(roz)


def _vat() -> Invoice:
    return vat_invoice(number="FV/1", issue_date=DAY, seller=SELLER, buyer=BUYER, lines=[Line("Usługa", 1, "100")])


CORRECTIONS: dict[str, Any] = {
    "correction": lambda **o: correction(**COMMON, corrected=CorrectedInvoice.of(_vat()), before=[],
                                         after=[Line("Usługa", 1, "5")], **o),
    "advance_correction": lambda **o: advance_correction(**COMMON, corrected=_zal(), received="5.00", **o),
    "settlement_correction": lambda **o: settlement_correction(**COMMON, corrected=_roz(), advances=[_zal()], **o),
    "party_correction": lambda **o: party_correction(**COMMON, corrected=REFERENCE, buyer_before=BUYER_BEFORE, **o),
    "number_correction": lambda **o: number_correction(**COMMON, corrected=REFERENCE, right_number="FV/2", **o),
    "discount_correction": lambda **o: discount_correction(**COMMON, **DISCOUNT, **o),
}  # fmt: skip


@pytest.mark.parametrize("kind", CORRECTIONS)
def test_every_correction_writes_its_effect_as_typ_korekty(kind: str) -> None:
    # FA(3) TTypKorekty, "Typ skutku korekty w ewidencji dla podatku od towarów i usług": 1 "w dacie
    # ujęcia faktury pierwotnej", 2 "w dacie wystawienia faktury korygującej", 3 "w dacie innej".
    # The builders wrote none, and took no argument for it.
    build = CORRECTIONS[kind]
    for effect in [*CorrectionEffect, 1, 2, 3]:
        xml = build(effect=effect).to_xml()
        validate_invoice(xml)
        assert f"<TypKorekty>{int(effect)}</TypKorekty><DaneFaKorygowanej>".encode() in xml
    assert b"TypKorekty" not in build().to_xml()


@pytest.mark.parametrize("kind", CORRECTIONS)
@pytest.mark.parametrize("effect", [0, 4, "1", True, 1.0, ThirdPartyRole.FACTOR, TaxpayerStatus.LIQUIDATION])
def test_an_effect_that_is_not_one_of_typ_korekty_is_refused_by_name(kind: str, effect: object) -> None:
    with pytest.raises(ValueError, match=r"effect: .* is not a CorrectionEffect \(TypKorekty 1\.\.3"):
        CORRECTIONS[kind](effect=effect)


@pytest.fixture
def nothing_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new builders' ``Faktura`` may not be made: a refusal comes before anything is built."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("built before the arguments were checked")

    monkeypatch.setattr(corrections, "_invoice", refused)


OLD_SELLER = dataclasses.replace(SELLER, name="ABC AGD (dawniej)")
CO_BUYER = ThirdParty(Party("Współnabywca", "Poznań", nip="5265877635"), ThirdPartyRole.ADDITIONAL_BUYER)
TWIN = ThirdParty(Party("Bliźniak", "Poznań", nip="5265877635"), ThirdPartyRole.ADDITIONAL_BUYER)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, r"seller_before, buyer_before, additional_buyers_before: none given, and a party correction corrects"),
        ({"corrected": "FV/1"}, r"corrected: expected a CorrectedInvoice .*got str"),
        ({"corrected": _roz()}, r"corrected: 'ROZ/1' is a settlement invoice \(ROZ\), corrected by a KOR_ROZ"),
        ({"seller_before": "ACME"}, r"seller_before: expected a Party"),
        ({"seller_before": Party("ABC", "Warszawa", nip="5265877635")},
         r"seller_before: NIP 5265877635, and the seller has NIP 9999999999; a wrong identifier is not corrected by "
         r"Podmiot1K .*'Pole nie dotyczy przypadku korekty błędnego NIP.*correction\(\.\.\., after=\[\]\)"),
        ({"seller_before": Party("ABC", "Warszawa")}, r"seller_before: no identifier \(BrakID\), and the seller has"),
        ({"seller_before": dataclasses.replace(SELLER, contacts=())},
         r"seller_before: the same name, address and vat_prefix as seller .*nothing of the seller to correct"),
        ({"buyer_before": Party("CDE", "Kraków", nip="5265877635")},
         r"buyer_before: NIP 5265877635, and the buyer has NIP 1111111111; the identifier in Podmiot2K 'ma być "
         r"tożsamy z numerem w części Podmiot2', and a wrong identifier is not corrected by Podmiot2K"),
        ({"buyer_before": Party("CDE", "Kraków")}, r"buyer_before: no identifier \(BrakID\), and the buyer has NIP"),
        ({"buyer_before": Party("CDE", "Kraków", eu_vat="DE811569869")}, r"buyer_before: EU VAT DE811569869, and"),
        ({"buyer_before": dataclasses.replace(BUYER, contacts=(), customer_number=None)},
         r"buyer_before: the same identifier, name and address as the buyer .*nothing of the buyer to correct"),
        # Nazwa, AdresL1 and AdresL2 are xsd:token (TZnakowy512): whitespace alone changes nothing.
        ({"buyer_before": Party(" CeDeE  s.c.", "ul. Sadowa\n1 lok. 3 ", nip="1111111111", address2="00-002\tKraków")},
         r"buyer_before: the same identifier, name and address as the buyer .*nothing of the buyer to correct"),
        ({"seller_before": Party("ABC AGD  sp. z o. o. ", " ul. Kwiatowa 1 m. 2", nip="9999999999",
                                 address2="00-001\r\nWarszawa")},
         r"seller_before: the same name, address and vat_prefix as seller .*nothing of the seller to correct"),
        ({"buyer_before": Party("CDE", "Kraków", internal_id="1111111111-00000")},
         r"buyer_before: internal_id \(IDWew\) cannot be shown in Podmiot2K"),
        ({"buyer_before": Party("CDE", "Kraków", nip="1111111111", vat_prefix="PL")},
         r"buyer_before: vat_prefix \(PrefiksPodatnika\) is the seller's"),
        ({"buyer_before": BUYER_BEFORE, "reason": ""}, r"reason: 1\.\.256 characters"),
        ({"additional_buyers_before": Party("A", "B")}, r"additional_buyers_before: expected a sequence of Party"),
        ({"additional_buyers_before": ["A"]}, r"additional_buyers_before\[0\]: expected a Party, got str"),
        ({"additional_buyers_before": [Party("Współ", "Poznań", nip="5265877635")]},
         r"additional_buyers_before\[0\]: no additional buyer in third_parties \(ThirdPartyRole.ADDITIONAL_BUYER\) "
         r"has its identifier, NIP 5265877635"),
        ({"additional_buyers_before": [Party("Współ", "Poznań", nip="5265877635")], "third_parties": [
            ThirdParty(CO_BUYER.party, ThirdPartyRole.PAYER)]}, r"additional_buyers_before\[0\]: no additional buyer"),
        ({"additional_buyers_before": [Party("Współ", "Poznań", nip="5265877635")],
          "third_parties": [CO_BUYER, TWIN]},
         r"additional_buyers_before\[0\]: 2 additional buyers in third_parties have its identifier, NIP 5265877635"),
        ({"additional_buyers_before": [Party("Współ", "Poznań", nip="5265877635")] * 2, "third_parties": [CO_BUYER]},
         r"additional_buyers_before\[1\]: third_parties\[0\] is shown before the correction by "
         r"additional_buyers_before\[0\] too"),
        ({"additional_buyers_before": [Party("Współnabywca", "Poznań", nip="5265877635")],
          "third_parties": [CO_BUYER]},
         r"additional_buyers_before\[0\]: the same identifier, name and address as the additional buyer "
         r"third_parties\[0\]"),
        ({"additional_buyers_before": [Party("Współnabywca ", "\tPoznań", nip="5265877635")],
          "third_parties": [CO_BUYER]},
         r"additional_buyers_before\[0\]: the same identifier, name and address as the additional buyer"),
    ],
)  # fmt: skip
def test_a_party_correction_that_corrects_nothing_or_what_it_may_not_is_refused(
    arguments: dict[str, Any], message: str, nothing_built: None
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        party_correction(**{**COMMON, "corrected": REFERENCE, **arguments})
    assert type(raised.value) is ValueError


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"corrected": REFERENCE}, r"corrected: expected a sequence of CorrectedInvoice \(the period's invoices\)"),
        ({"corrected": "FV/1"}, r"corrected: expected a sequence of CorrectedInvoice"),
        ({"corrected": []}, r"corrected: 1\.\.50000 invoices \(DaneFaKorygowanej\), got 0"),
        ({"corrected": [REFERENCE] * 50_001}, r"corrected: 1\.\.50000 invoices \(DaneFaKorygowanej\), got 50001"),
        ({"corrected": [REFERENCE, "FV/2"]}, r"corrected\[1\]: expected a CorrectedInvoice"),
        ({"corrected": [REFERENCE, _roz()]}, r"corrected\[1\]: 'ROZ/1' is a settlement invoice"),
        ({"corrected": [REFERENCE, CorrectedInvoice("FV/2", DAY, currency="EUR")]},
         r"corrected\[1\]: 'FV/2' is in EUR; a discount correction is built in PLN only"),
        ({"corrected": [REFERENCE, CorrectedInvoice(" FV/1", dt.date(2026, 3, 1))]},
         r"corrected\[1\]: ' FV/1' is corrected\[0\] too \(the same number and issue date, or the same KSeF number\)"),
        ({"corrected": [FIRST_HALF[0], dataclasses.replace(FIRST_HALF[0], number="FV/9")]},
         r"corrected\[1\]: 'FV/9' is corrected\[0\] too"),
        ({"period": ""}, r"period: 1\.\.256 characters"),
        ({"period": None}, r"period: 1\.\.256 characters"),
        ({"discount": {}}, r"discount: the gross discount at each rate, e.g. \{'23': '50000.00'\}, got \{\}"),
        ({"discount": [("23", "1")]}, r"discount: the gross discount at each rate"),
        ({"discount": {"24": "1"}}, r"discount: '24' is not a rate \(23, 22, 8"),
        ({"discount": {"23": "-1.00"}}, r"discount '23': -1.00 must be greater than 0"),
        ({"discount": {"23": "0"}}, r"discount '23': 0 must be greater than 0"),
        ({"discount": {"23": "1.005"}}, r"discount '23': 1.005 has more than 2 decimal places"),
        ({"discount": {"23": 1.5}}, r"discount '23': 1.5 is a float"),
        ({"discount": {"23": "1", 23: "2"}}, r"discount: the rate '23' is given twice"),
        ({"discount": {"23": "1" + "0" * 16}}, r"discount '23': 10+ is too large for the schema"),
        ({"discount": {"23": "9" * 16, "8": "9" * 16}}, r"discount: P_15 would be -19999999999999998.00, too large"),
        ({"discount": {"zw": "1"}}, r"exemption: a \"zw\" line needs the provision"),
        ({"exemption": "art. 43"}, r"exemption: only an invoice with a \"zw\" line \(or amount\) is exempt"),
        ({"items": "lodówka"}, r"items: expected a sequence of DiscountedItem objects or names, got str"),
        ({"items": DiscountedItem("lodówka")}, r"items: expected a sequence .*got DiscountedItem"),
        ({"items": [Line("x", 1, 1)]}, r"items\[0\]: expected a DiscountedItem or a name, got Line"),
        ({"items": ["ok", " "]}, r"items\[1\]: item name: 1\.\.512 characters"),
        ({"items": [DiscountedItem("x")] * 10_001}, r"items: at most 10000 \(FaWiersz\)"),
        ({"reason": "x" * 257}, r"reason: 1\.\.256 characters"),
        ({"seller": Party("ACME", "Warszawa")}, r"seller: a NIP is required"),
        ({"issue_date": dt.date(2051, 1, 1)}, r"issue_date: 2051-01-01 is outside the schema's range"),
    ],
)  # fmt: skip
def test_a_discount_correction_refuses_bad_arguments_by_name(
    arguments: dict[str, Any], message: str, nothing_built: None
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        discount_correction(**{**COMMON, **DISCOUNT, **arguments})
    assert type(raised.value) is ValueError


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DiscountedItem(""), r"item name: 1\.\.512 characters"),
        (lambda: DiscountedItem("x" * 513), r"item name: 1\.\.512 characters"),
        (lambda: DiscountedItem("x", 0), r"item quantity: 0 must be greater than 0"),
        (lambda: DiscountedItem("x", "1.0000001"), r"item quantity: 1.0000001 has more than 6 decimal places"),
        (lambda: DiscountedItem("x", 1.5), r"item quantity: 1.5 is a float"),
        (lambda: DiscountedItem("x", 1, ""), r"item unit: 1\.\.256 characters"),
        (lambda: DiscountedItem("x", cn="1" * 51), r"item cn: 1\.\.50 characters"),
        (lambda: DiscountedItem("x\x7f"), r"item name: character U\+007F is one KSeF refuses"),
    ],
)
def test_a_discounted_item_is_checked_when_made(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_discounted_item_keeps_its_texts_as_the_schema_s_tokens() -> None:
    item = DiscountedItem("lodówka\n   Zimnotech", "1000", " szt. ", cn=" 8418  21 91")
    assert (item.name, item.quantity, item.unit, item.cn) == ("lodówka Zimnotech", D(1000), "szt.", "8418 21 91")
    kor = discount_correction(**COMMON, **DISCOUNT, items=["usługi serwisowe", item])
    assert [(r.nr_wiersza_fa, r.p_7, r.p_8_b) for r in kor.model.fa.fa_wiersz] == [
        (1, "usługi serwisowe", None), (2, "lodówka Zimnotech", D(1000))]  # fmt: skip
    validate_invoice(kor.to_xml())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"corrected": [REFERENCE]}, r"corrected: expected a CorrectedInvoice .*got list"),
        ({"corrected": _roz()}, r"corrected: 'ROZ/1' is a settlement invoice"),
        ({"right_number": None}, r"right_number: 1\.\.256 characters"),
        ({"right_number": "FV/1"}, r"right_number: 'FV/1' is the number the corrected invoice carries"),
        ({"effect": 5}, r"effect: 5 is not a CorrectionEffect"),
        ({"third_parties": [CO_BUYER] * 101}, r"third_parties: at most 100"),
    ],
)
def test_a_number_correction_refuses_bad_arguments_by_name(
    arguments: dict[str, Any], message: str, nothing_built: None
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        number_correction(**{**COMMON, "corrected": REFERENCE, "right_number": "FV/2", **arguments})
    assert type(raised.value) is ValueError


# The corrections that change no line: (corrected, options) -> Invoice.
ZERO_CORRECTIONS: dict[str, Any] = {
    "party_correction": lambda corrected, **o: party_correction(**COMMON, corrected=corrected,
                                                                buyer_before=BUYER_BEFORE, **o),
    "number_correction": lambda corrected, **o: number_correction(**COMMON, corrected=corrected,
                                                                  right_number="FV/2", **o),
}  # fmt: skip
BASIS = "art. 43 ust. 1 pkt 37"


def _sold(*rates: str, **options: Any) -> Invoice:
    """A VAT invoice FV/1 with a line at each of ``rates``."""
    lines = [Line(f"Usługa {rate}", 1, "100.00", rate) for rate in rates]
    return vat_invoice(number="FV/1", issue_date=DAY, seller=SELLER, buyer=BUYER, lines=lines, **options)


@pytest.mark.parametrize("kind", ZERO_CORRECTIONS)
@pytest.mark.parametrize(
    ("rates", "options"),
    [
        (["zw"], {"exemption": BASIS}),
        (["oo"], {}),
        (["np II"], {}),
        (["np I"], {}),
        (["23", "zw", "oo"], {"exemption": BASIS}),
        (["23"], {"split_payment": True}),
        (["zw"], {"exemption": BASIS, "split_payment": True}),
    ],
)
def test_a_correction_that_changes_no_line_keeps_the_corrected_invoice_s_annotations(
    kind: str, rates: list[str], options: dict[str, Any]
) -> None:
    # FA(3) XSD, Fa: "W przypadku wystawienia faktury korygującej wypełnia się wszystkie pola wg
    # stanu po korekcie": a party's name or the invoice's number corrected, the supply stays exempt
    # (P_19, P_19A) or reverse-charged (P_18), as correction() keeps it over its lines. Both builders
    # wrote P_18 2 and P_19N 1 whatever the invoice was.
    invoice = _sold(*rates, **options)
    kor = ZERO_CORRECTIONS[kind](CorrectedInvoice.of(invoice), **options)
    validate_invoice(kor.to_xml())
    assert kor.model.fa.adnotacje == invoice.model.fa.adnotacje
    # Without its lines, the invoice's rates say the same; given with the lines, they must agree.
    stated = ZERO_CORRECTIONS[kind](REFERENCE, rates=rates, **options)
    assert stated.model.fa.adnotacje == invoice.model.fa.adnotacje
    both = ZERO_CORRECTIONS[kind](CorrectedInvoice.of(invoice), rates=tuple(reversed(rates)), **options)
    assert both.model.fa.adnotacje == invoice.model.fa.adnotacje


@pytest.mark.parametrize("kind", ZERO_CORRECTIONS)
def test_a_correction_that_changes_no_line_of_an_unknown_invoice_takes_it_as_taxed(kind: str) -> None:
    # CorrectedInvoice with no lines and no rates= stated: no exemption, no reverse charge, as
    # the Ministry's sample 5 (P_18 2, P_18A 2, P_19N 1); its split payment as given.
    assert ZERO_CORRECTIONS[kind](REFERENCE).model.fa.adnotacje == _sold("23").model.fa.adnotacje
    xml = ZERO_CORRECTIONS[kind](REFERENCE, split_payment=True).to_xml()
    assert b"<P_18>2</P_18><P_18A>1</P_18A><Zwolnienie><P_19N>1</P_19N></Zwolnienie>" in xml


EXEMPT, REVERSED, TAXED = (CorrectedInvoice.of(_sold(rate, **o)) for rate, o in [
    ("zw", {"exemption": BASIS}), ("oo", {}), ("23", {})])  # fmt: skip


@pytest.mark.parametrize("kind", ZERO_CORRECTIONS)
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"corrected": EXEMPT},
         r'exemption: a "zw" rate is in the corrected invoice\'s lines \(corrected.lines\), and a correction shows '
         r'the invoice as it stands after it \(FA\(3\): "wg stanu po korekcie"\), still exempt: give the provision'),
        ({"corrected": EXEMPT, "exemption": " "}, r"exemption: 1\.\.256 characters"),
        ({"corrected": REFERENCE, "rates": ["23", "zw"]}, r'exemption: a "zw" rate is in rates, and a correction'),
        ({"corrected": TAXED, "exemption": BASIS},
         r'exemption: no "zw" rate is in the corrected invoice\'s lines \(corrected.lines\); only an exempt invoice'),
        ({"corrected": REFERENCE, "rates": ["oo"], "exemption": BASIS}, r'exemption: no "zw" rate is in rates'),
        ({"corrected": REFERENCE, "exemption": BASIS},
         r"exemption: the corrected invoice's rates are not known \(corrected.lines is None\), and it is taken to be "
         r'taxed: give them, rates=\["zw", \.\.\.\]'),
        ({"corrected": REVERSED, "rates": ["23"]},
         r"rates: '23', but the corrected invoice's lines \(corrected.lines\) are at 'oo'; its rates are read from "
         r"them: leave rates out"),
        ({"corrected": EXEMPT, "rates": ["zw", "23"], "exemption": BASIS}, r"rates: '23', 'zw', but .* are at 'zw'"),
        ({"corrected": REFERENCE, "rates": "zw"}, r"rates: the corrected invoice's rates \(P_12\), .*got 'zw'"),
        ({"corrected": REFERENCE, "rates": []}, r"rates: the corrected invoice's rates \(P_12\), .*got \[\]"),
        ({"corrected": REFERENCE, "rates": 23}, r"rates: the corrected invoice's rates \(P_12\), .*got 23"),
        ({"corrected": REFERENCE, "rates": ["23", "24"]}, r"rates: '24' is not a rate \(23, 22, 8"),
        ({"corrected": REFERENCE, "rates": [None]}, r"rates: None is not a rate"),
    ],
)  # fmt: skip
def test_a_correction_that_changes_no_line_refuses_annotations_it_cannot_state(
    kind: str, arguments: dict[str, Any], message: str, nothing_built: None
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        ZERO_CORRECTIONS[kind](**arguments)
    assert type(raised.value) is ValueError


def test_a_party_before_is_compared_as_the_schema_reads_its_texts() -> None:
    # Whitespace alone is refused (the table above); whitespace and another value is a correction,
    # written as given, and a no-break space is not XML whitespace (Nazwa is another value).
    for name in ("CDE  sp.\nj. ", "CeDeE\u00a0s.c."):
        kor = party_correction(**COMMON, corrected=REFERENCE, buyer_before=dataclasses.replace(BUYER_BEFORE, name=name))
        validate_invoice(kor.to_xml())
        assert kor.model.fa.podmiot2_k[0].dane_identyfikacyjne.nazwa == name


def test_a_discount_on_fifty_thousand_invoices_passes_the_schema_and_not_the_default_size() -> None:
    # DaneFaKorygowanej maxOccurs="50000": the most a discount correction may list. With KSeF
    # numbers that is some 11 MB, over KSeF's default 1 MB an invoice (raised for a context on
    # request): to_xml() checks the default, a session the context's own limits.
    period = [CorrectedInvoice(f"FV/{i}", dt.date(2026, 1, 1), make_ksef_number("9999999999", "20260101",
              f"{i:012X}")) for i in range(50_000)]  # fmt: skip
    kor = discount_correction(**COMMON, corrected=period, period="2026", discount={"23": "1.23"})
    xml = kor.to_xml(validate=False)
    validate_invoice(xml, limits=SessionLimits(max_invoice_bytes=20_000_000))
    assert len(kor.model.fa.dane_fa_korygowanej) == 50_000 and len(xml) > 10_000_000
    with pytest.raises(InvoiceSchemaError, match=r"the invoice has \d+ bytes; KSeF accepts at most 1000000"):
        validate_invoice(xml)  # what to_xml() checks, without writing the 11 MB again


def test_the_new_corrections_import_from_every_builder_module() -> None:
    from ksef_client.invoice import builders

    for name in ("CorrectionEffect", "DiscountedItem", "discount_correction", "number_correction", "party_correction"):
        assert name in builders.__all__
        assert getattr(builders, name) is getattr(__import__("ksef_client.invoice", fromlist=[name]), name)
    for name in ("DiscountedItem", "discount_correction", "number_correction", "party_correction"):
        assert getattr(corrections, name) is getattr(builders, name)


@pytest.mark.parametrize("kind", ZERO_CORRECTIONS)
def test_an_invoice_whose_rows_are_no_lines_keeps_its_annotations_from_their_rates(kind: str) -> None:
    # An exempt invoice whose row has a discount (P_10, as the Ministry's sample 4, row 2) cannot
    # be read as Line objects (corrected.lines None). Was (review s13-final, 2): taken as taxed
    # (P_19N) without a word, and exemption= refused; its rows' P_12 now say it is exempt.
    invoice = _sold("zw", exemption=BASIS)
    row = invoice.model.fa.fa_wiersz[0]
    row.p_10, row.p_11 = Decimal("1.00"), row.p_11 - Decimal("1.00")
    invoice.model.fa.p_13_7 = invoice.model.fa.p_15 = row.p_11
    invoice = Invoice.from_xml(invoice.to_xml())
    reference = CorrectedInvoice.of(invoice)
    assert reference.lines is None
    with pytest.raises(ValueError, match=r'exemption: a "zw" rate is in the corrected invoice\'s rows \(their P_12'):
        ZERO_CORRECTIONS[kind](reference)
    kor = ZERO_CORRECTIONS[kind](reference, exemption=BASIS)
    assert kor.model.fa.adnotacje == invoice.model.fa.adnotacje
    with pytest.raises(ValueError, match=r"rates: '23', but the corrected invoice's rows .* are at 'zw'"):
        ZERO_CORRECTIONS[kind](reference, rates=["23"])


def test_rows_read_without_a_rate_leave_the_rates_to_the_caller_and_replace_keeps_them() -> None:
    # review s13-last, 1 and 2: a row without P_12 made its neighbours' rates pass for the whole
    # set (rates= then refused); dataclasses.replace dropped the rates CorrectedInvoice.of read.
    invoice = _sold("23", "oo")
    invoice.model.fa.fa_wiersz[0].p_10 = Decimal("1.00")  # no longer a Line: lines None
    invoice.model.fa.fa_wiersz[1].p_12 = None
    reference = CorrectedInvoice.of(invoice)
    assert reference.lines is None
    kor = party_correction(number="K/1", issue_date=DAY, seller=SELLER, buyer=BUYER, corrected=reference,
                           buyer_before=BUYER_BEFORE, rates=["23", "oo"])  # fmt: skip
    assert kor.model.fa.adnotacje.p_18 == _sold("23", "oo").model.fa.adnotacje.p_18
    exempt = _sold("zw", exemption=BASIS)
    row = exempt.model.fa.fa_wiersz[0]
    row.p_10, row.p_11 = Decimal("1.00"), row.p_11 - Decimal("1.00")  # no longer a Line
    numbered = dataclasses.replace(CorrectedInvoice.of(exempt), ksef_number=None)
    with pytest.raises(ValueError, match=r'exemption: a "zw" rate is in the corrected invoice\'s rows'):
        party_correction(number="K/1", issue_date=DAY, seller=SELLER, buyer=BUYER, corrected=numbered,
                         buyer_before=BUYER_BEFORE)  # fmt: skip
