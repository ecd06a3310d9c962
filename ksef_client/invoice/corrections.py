"""Corrections (``KOR``) that change no line of the corrected invoice: of the parties' data
(``party_correction``: ``Podmiot1K``, ``Podmiot2K``), of the corrected invoice's number
(``number_correction``: ``NrFaKorygowany``), and a discount granted on a period's supplies to one
buyer (``discount_correction``, art. 106j ust. 3 of the VAT Act: ``OkresFaKorygowanej``, with
``DiscountedItem`` naming what it is granted on when it is not everything).

::

    from ksef_client.invoice import CorrectedInvoice, party_correction, discount_correction

    kor = party_correction(number="KOR/1", issue_date=day, seller=seller, buyer=buyer,
                           corrected=CorrectedInvoice("FV/1", issued, ksef_number),
                           buyer_before=Party("CDE sp. j.", "ul. Sadowa 1 lok. 3", nip="1111111111"))
    rabat = discount_correction(number="KOR/2", issue_date=day, seller=seller, buyer=buyer,
                                corrected=[...], period="pierwsze półrocze 2026", discount={"23": "50000.00"})

They follow the Ministry's sample invoices ``FA_3_Przykład_5.xml`` (a buyer's name corrected),
``_6.xml`` and ``_7.xml`` (a 50 000 zł discount on the first half-year's invoices, on all goods
and on one kind of goods); the parties, dates, annotations and the corrected invoices' references
are checked and written as by every builder (``ksef_client.invoice._shared``). These names can be
imported from ``ksef_client.invoice`` and ``ksef_client.invoice.builders`` too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from decimal import Decimal

from ksef_client._invoice_models import fa3
from ksef_client.invoice._shared import (
    CorrectedInvoice,
    CorrectionEffect,
    _common,
    _corrected_model,
    _correction_notes,
    _invoice,
    _rate_annotations,
    _rate_exemption,
    known_rates,
)
from ksef_client.invoice.model import Invoice
from ksef_client.invoice.parties import Party, ThirdParty, ThirdPartyRole, _seller_nip, _seller_only, _third_parties
from ksef_client.invoice.totals import (
    GROSZ,
    RATES,
    Totals,
    checked_decimal,
    checked_text,
    checked_totals,
    collapsed,
    discount_totals,
    rate_of,
)

_MAX_CORRECTED = 50_000  # DaneFaKorygowanej maxOccurs="50000"
_MAX_ROWS = 10_000  # FaWiersz maxOccurs="10000"
# FA(3) XSD, Podmiot1K and Podmiot2K: a wrong NIP is not corrected by them, "wówczas wymagana jest
# korekta faktury do wartości zerowych".
_WRONG_NIP = (
    "a wrong identifier is not corrected by {element} (FA(3): {quote}, 'wymagana jest korekta faktury do wartości "
    "zerowych'): correct the invoice to zero (correction(..., after=[])) and issue a new one"
)


@dataclass(frozen=True)
class DiscountedItem:
    """A kind of goods or services a discount for a period is granted on, when it is not granted on
    all of the period's supplies: a row (``FaWiersz``) with no amounts. FA(3) XSD, ``FaWiersz``:
    for the corrections of art. 106j ust. 3, "gdy opust lub obniżka ceny odnosi się do części
    dostaw towarów lub usług dokonanych lub świadczonych w danym okresie w części FaWiersz należy
    podać nazwy (rodzaje) towarów lub usług objętych korektą".

    ``name`` (``P_7``, 1..512 characters), optionally ``quantity`` (``P_8B``, above 0, up to 6
    decimals) and ``unit`` (``P_8A``, 1..256 characters) of what was supplied in the period, and,
    keyword-only, ``cn``, its Combined Nomenclature code (``CN``, 1..50 characters), as the
    Ministry's ``FA_3_Przykład_7.xml`` shows them (``DiscountedItem("lodówka Zimnotech mk1", 1000,
    "szt.", cn="8418 21 91")``). Texts are ``xsd:token``s, kept with whitespace collapsed.
    """

    name: str
    quantity: Decimal | str | int | None = None
    unit: str | None = None
    _: KW_ONLY
    cn: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", checked_text(self.name, "item name", 512))
        if self.quantity is not None:
            object.__setattr__(self, "quantity", checked_decimal(self.quantity, "item quantity", 6, positive=True))
        if self.unit is not None:
            object.__setattr__(self, "unit", checked_text(self.unit, "item unit", 256))
        if self.cn is not None:
            object.__setattr__(self, "cn", checked_text(self.cn, "item cn", 50))

    def _row(self, number: int) -> fa3.Faktura.Fa.FaWiersz:
        quantity = self.quantity if isinstance(self.quantity, Decimal) else None  # a Decimal since __post_init__
        return fa3.Faktura.Fa.FaWiersz(nr_wiersza_fa=number, p_7=self.name, cn=self.cn, p_8_a=self.unit, p_8_b=quantity)


def party_correction(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: CorrectedInvoice,
    seller_before: Party | None = None,
    buyer_before: Party | None = None,
    additional_buyers_before: Sequence[Party] = (),
    reason: str | None = None,
    effect: CorrectionEffect | int | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    rates: Collection[str] | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A correction (``KOR``) of the seller's or a buyer's data on an invoice, its amounts
    unchanged: ``P_15`` 0, no rows, as the Ministry's ``FA_3_Przykład_5.xml`` ("błędna nazwa
    nabywcy").

    ``seller`` and ``buyer`` (and ``third_parties``) are the parties as they should be, written to
    ``Podmiot1``/``Podmiot2``/``Podmiot3``; ``corrected`` the invoice corrected (a
    ``CorrectedInvoice``: its lines, when known, give the annotations; see below). The parties as
    the corrected invoice shows them, at least one:

    - ``seller_before``: the seller (``Podmiot1K``: "pełne dane sprzedawcy występujące na fakturze
      korygowanej", its name, address and ``vat_prefix``; no more is written). Its NIP must be the
      seller's: ``Podmiot1K`` "nie dotyczy przypadku korekty błędnego NIP" (the invoice is then
      corrected to zero and issued again).
    - ``buyer_before``: the buyer (``Podmiot2K``, its identifier, name and address). Its
      identifier (NIP, EU VAT number, other tax identifier or none) must be the buyer's: FA(3)
      "Korekcie nie podlegają błędne numery NIP identyfikujące nabywcę", and the identifier shown
      "ma być tożsamy z numerem w części Podmiot2".
    - ``additional_buyers_before``: additional buyers (``Podmiot2K`` too, up to 100), each matched
      by its identifier to the one additional buyer of ``third_parties``
      (``ThirdPartyRole.ADDITIONAL_BUYER``, ``Podmiot3``) that has it.

    Each buyer corrected and its ``Podmiot2K`` get the same ``IDNabywcy`` ("unikalny klucz
    powiązania danych nabywcy na fakturach korygujących"): ``"0001"`` for the buyer, then one up for
    each additional buyer in the order of ``third_parties``. A party given as before that shows
    what it shows after (``Podmiot1K``/``Podmiot2K`` would equal ``Podmiot1``/``Podmiot2``, its
    names and addresses compared as the schema's ``xsd:token`` reads them, whitespace collapsed),
    a party matched twice, and a call with none of them are refused (``ValueError`` naming the
    argument): such a correction corrects nothing.

    The annotations (``Adnotacje``) are the corrected invoice's: FA(3) fills every field of a
    correction "wg stanu po korekcie", and correcting a party's data changes no supply. They are
    read as ``correction`` reads them from its lines: from ``corrected.lines`` when known
    (``CorrectedInvoice.of`` reads them; from an invoice whose rows are no ``Line``, a discount
    ``P_10`` or gross prices, it keeps their ``P_12`` rates, which serve alike), else from
    ``rates``, the corrected invoice's rates (``P_12`` values, e.g. ``["23", "oo"]``; refused when
    they are not those of
    ``corrected.lines``). ``P_18`` is "1" (reverse charge) with an ``"oo"`` or ``"np II"`` rate;
    with a ``"zw"`` rate ``P_19`` is "1" and ``exemption``, the provision the exemption rests on
    (``P_19A``), is required, as by ``vat_invoice``, and refused without one. With neither lines
    nor ``rates``, the invoice is taken to be taxed, with no exemption and no reverse charge
    (``P_19N``, ``P_18`` "2"). ``split_payment`` (``P_18A``, "mechanizm podzielonej płatności")
    is not told by the lines: give the corrected invoice's, as to ``correction``. Like every
    builder, the correction says no to the other annotations (cash accounting, self-billing, new
    means of transport, simplified triangulation, margin scheme).

    The correction is in the corrected invoice's currency (``corrected.currency``). Only a VAT
    invoice's (``KOR``): a ``corrected`` of ``kind="ROZ"`` is refused. ``reason``
    (``PrzyczynaKorekty``), ``effect`` (``TypKorekty``: the sample's is
    ``CorrectionEffect.ORIGINAL_INVOICE_DATE``), ``allow_future_issue_date`` and ``third_parties``
    as in ``correction``.
    """
    reference = _vat_reference(corrected, "corrected")
    _common(number, issue_date, seller, buyer, reference.currency, allow_future_issue_date)
    typ = _correction_notes(reason, effect)
    thirds = _third_parties(third_parties, split_payment)
    annotations = _zero_annotations(reference, rates, exemption, split_payment)
    seller_k = _seller_before(seller_before, seller) if seller_before is not None else None
    buyers_k: list[tuple[int | None, fa3.Faktura.Fa.Podmiot2K]] = []  # (index in thirds or None: Podmiot2, K)
    if buyer_before is not None:
        buyers_k.append((None, _buyer_before(buyer_before, buyer, "buyer_before", "buyer", "Podmiot2")))
    buyers_k += _additional_buyers_before(additional_buyers_before, thirds)
    if seller_k is None and not buyers_k:
        raise ValueError(
            "seller_before, buyer_before, additional_buyers_before: none given, and a party correction corrects the "
            "seller's or a buyer's data: give the party as the corrected invoice shows it"
        )
    model = _zero_correction(number, issue_date, seller, buyer, reference, reason, typ, created, annotations, thirds)
    model.fa.podmiot1_k = seller_k
    for key, (third, before) in enumerate(buyers_k, 1):
        before.idnabywcy = f"{key:04d}"
        (model.podmiot2 if third is None else model.podmiot3[third]).idnabywcy = before.idnabywcy
    model.fa.podmiot2_k = [before for _, before in buyers_k]
    return Invoice(model)


def number_correction(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: CorrectedInvoice,
    right_number: str,
    reason: str | None = None,
    effect: CorrectionEffect | int | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    rates: Collection[str] | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A correction (``KOR``) of an invoice's number, its amounts unchanged (``P_15`` 0, no rows).

    ``corrected`` names the invoice by the wrong number it carries (``NrFaKorygowanej``), and
    ``right_number`` is the number it should have had (``NrFaKorygowany``; FA(3) XSD: "Poprawny
    numer faktury korygowanej w przypadku, gdy przyczyną korekty jest błędny numer faktury
    korygowanej. W takim przypadku błędny numer faktury należy wskazać w polu
    NrFaKorygowanej"); 1..256 characters, compared as the schema's ``xsd:token`` (whitespace
    collapsed), and not ``corrected.number``. The Ministry publishes no sample of it.

    The parties are the invoice's; a correction of both the number and a party's data is
    ``party_correction`` with ``invoice.model.fa.nr_fa_korygowany`` set. Only a VAT invoice's
    (``KOR``: a ``corrected`` of ``kind="ROZ"`` is refused); in its currency. The annotations are
    the corrected invoice's, as in ``party_correction``: read from ``corrected.lines`` (or
    ``rates``), with ``exemption`` for a ``"zw"`` rate, and ``split_payment`` the corrected
    invoice's. ``reason``, ``effect``, ``allow_future_issue_date`` and ``third_parties`` as in
    ``correction``.
    """
    reference = _vat_reference(corrected, "corrected")
    _common(number, issue_date, seller, buyer, reference.currency, allow_future_issue_date)
    right = checked_text(right_number, "right_number", 256)
    if right == collapsed(reference.number):
        raise ValueError(
            f"right_number: {right_number!r} is the number the corrected invoice carries (corrected.number); give "
            "the wrong number in corrected, the right one here"
        )
    typ = _correction_notes(reason, effect)
    thirds = _third_parties(third_parties, split_payment)
    annotations = _zero_annotations(reference, rates, exemption, split_payment)
    model = _zero_correction(number, issue_date, seller, buyer, reference, reason, typ, created, annotations, thirds)
    model.fa.nr_fa_korygowany = right
    return Invoice(model)


def discount_correction(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: Sequence[CorrectedInvoice],
    period: str,
    discount: Mapping[str, Decimal | str | int],
    items: Sequence[DiscountedItem | str] = (),
    reason: str | None = None,
    effect: CorrectionEffect | int | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A correction (``KOR``) for a discount or price reduction granted on the supplies to one
    buyer in a period (art. 106j ust. 3 of the VAT Act), as the Ministry's ``FA_3_Przykład_6.xml``
    (50 000 zł on the first half-year's six invoices) and ``_7.xml`` (the same, on one kind of
    goods).

    ``corrected``: the period's invoices (``CorrectedInvoice``, 1..50 000, each once: no number and
    issue date twice, no KSeF number twice; their lines are not needed), listed in
    ``DaneFaKorygowanej``. Each takes some 220 bytes with its KSeF number: past about 4 000 the
    correction is over KSeF's default 1 MB an invoice, which ``to_xml()`` checks (``InvoiceSchemaError``);
    a context whose limit was raised sends it with ``session.send(invoice)``, which checks the
    context's own. ``period``: the period the discount is for (``OkresFaKorygowanej``,
    1..256 characters, e.g. ``"pierwsze półrocze 2026"``). ``discount``: the discount granted at
    each rate (``P_12`` rate -> amount: ``{"23": "50000.00"}``), a gross amount above 0 in full
    grosze, what the buyer pays less. Its tax is gross x rate / (100 + rate), rounded half up, and
    its net the rest (``totals.discount_totals``): the correction shows ``P_13_x``/``P_14_x`` and
    ``P_15`` negated (50 000 at 23 %: -40 650.41, -9 349.59, -50 000). A discount agreed as a net
    amount is given as its gross (net plus its tax, rounded); the split gives the net back.

    ``items``: when the discount is granted on some of the period's supplies only, the goods or
    services it is granted on (``DiscountedItem``, or a name alone), written as rows with no
    amounts (``FaWiersz``: "należy podać nazwy (rodzaje) towarów lub usług objętych korektą");
    none (the default) when it is granted on all of them.

    In złoty only: each corrected invoice must be in PLN (the tax of a discount on invoices in a
    foreign currency, shown in złoty, would need each invoice's rate). ``exemption``: with a
    ``"zw"`` discount, the provision the exemption rests on (``P_19A``, required); an ``"oo"`` or
    ``"np II"`` discount marks the correction ``P_18``. ``reason``, ``effect`` (the samples'
    is ``CorrectionEffect.CORRECTION_ISSUE_DATE``), ``allow_future_issue_date``, ``split_payment``
    and ``third_parties`` as in ``correction``.
    """
    _common(number, issue_date, seller, buyer, "PLN", allow_future_issue_date)
    references = _period_invoices(corrected)
    checked_text(period, "period", 256)
    amounts = _discounts(discount)
    rows = _items(items)
    typ = _correction_notes(reason, effect)
    basis = _rate_exemption(exemption, amounts)
    thirds = _third_parties(third_parties, split_payment)
    totals = checked_totals(discount_totals(amounts), "discount")
    model = _invoice(
        fa3.TrodzajFaktury.KOR, number=number, issue_date=issue_date, seller=seller, buyer=buyer, currency="PLN",
        totals=totals, created=created, annotations=_rate_annotations(amounts, basis, split_payment),
        third_parties=thirds,
    )  # fmt: skip
    model.fa.przyczyna_korekty, model.fa.typ_korekty = reason, typ
    model.fa.dane_fa_korygowanej = [_corrected_model(r.number, r.issue_date, r.ksef_number) for r in references]
    model.fa.okres_fa_korygowanej = period
    model.fa.fa_wiersz = [item._row(i) for i, item in enumerate(rows, 1)]
    return Invoice(model)


def _vat_reference(corrected: object, name: str) -> CorrectedInvoice:
    """``corrected`` checked: a ``CorrectedInvoice`` of a VAT invoice (``ValueError`` naming ``name``)."""
    if not isinstance(corrected, CorrectedInvoice):
        raise ValueError(
            f"{name}: expected a CorrectedInvoice (CorrectedInvoice(number, issue_date, ksef_number), or "
            f"CorrectedInvoice.of(invoice, ksef_number)), got {type(corrected).__name__}"
        )
    if corrected.kind == "ROZ":
        raise ValueError(
            f"{name}: {corrected.number!r} is a settlement invoice (ROZ), corrected by a KOR_ROZ; this builder "
            "writes a KOR, of a VAT invoice"
        )
    return corrected


def _zero_correction(
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: CorrectedInvoice,
    reason: str | None,
    effect: fa3.TtypKorekty | None,
    created: dt.datetime | None,
    annotations: fa3.Faktura.Fa.Adnotacje,
    third_parties: Sequence[ThirdParty],
) -> fa3.Faktura:
    """A ``KOR`` of ``corrected`` with no amounts (``P_15`` 0) and no rows, of checked arguments."""
    model = _invoice(
        fa3.TrodzajFaktury.KOR, number=number, issue_date=issue_date, seller=seller, buyer=buyer,
        currency=corrected.currency, totals=Totals(), created=created, annotations=annotations,
        third_parties=third_parties,
    )  # fmt: skip
    model.fa.przyczyna_korekty, model.fa.typ_korekty = reason, effect
    model.fa.dane_fa_korygowanej = [_corrected_model(corrected.number, corrected.issue_date, corrected.ksef_number)]
    return model


def _zero_annotations(
    corrected: CorrectedInvoice, rates: object, exemption: object, split_payment: bool
) -> fa3.Faktura.Fa.Adnotacje:
    """``Adnotacje`` of a correction that changes no line: the corrected invoice's, over the rates
    of ``corrected.lines`` (or its rows', ``known_rates``) or else ``rates`` (neither: taxed, no
    exemption, no reverse charge),
    with ``exemption`` checked against them (``ValueError`` naming ``rates`` or ``exemption``)."""
    stated = None if rates is None else _rates(rates)
    known = known_rates(corrected)
    if known is not None:
        shown, read_from = set(known[0]), known[1]
        if stated is not None and stated != shown:
            raise ValueError(
                f"rates: {_listed(stated)}, but {read_from} are at {_listed(shown)}; its rates are read from them: "
                "leave rates out"
            )
        where: str | None = read_from
    elif stated is not None:
        shown, where = stated, "rates"
    else:
        shown, where = set(), None
    if "zw" not in shown:
        if exemption is None:
            return _rate_annotations(shown, None, split_payment)
        if where is None:
            raise ValueError(
                "exemption: the corrected invoice's rates are not known (corrected.lines is None), and it is taken "
                'to be taxed: give them, rates=["zw", ...], for an exempt one'
            )
        raise ValueError(f'exemption: no "zw" rate is in {where}; only an exempt invoice has an exemption')
    if exemption is None:
        raise ValueError(
            f'exemption: a "zw" rate is in {where}, and a correction shows the invoice as it stands after it (FA(3): '
            '"wg stanu po korekcie"), still exempt: give the provision the exemption rests on, e.g. '
            'exemption="art. 43 ust. 1 pkt 19 ustawy o VAT" (written to P_19A)'
        )
    return _rate_annotations(shown, checked_text(exemption, "exemption", 256), split_payment)


def _rates(rates: object) -> set[str]:
    """``rates`` checked: a collection of ``P_12`` rates, at least one."""
    if isinstance(rates, str | bytes) or not isinstance(rates, Collection) or not rates:
        raise ValueError(f'rates: the corrected invoice\'s rates (P_12), e.g. ["23", "zw"], got {rates!r}')
    checked = set()
    for rate in rates:
        try:
            checked.add(rate_of(rate))
        except ValueError:
            raise ValueError(f"rates: {rate!r} is not a rate ({', '.join(RATES)})") from None
    return checked


def _listed(rates: Collection[str]) -> str:
    """``rates`` in ``RATES`` order, as a message shows them."""
    return ", ".join(repr(rate) for rate in RATES if rate in rates)


def _identifier(party: Party) -> tuple[str, ...]:
    """The identifier a party is written with (``IDWew`` only in ``Podmiot3``)."""
    if party.nip is not None:
        return ("NIP", party.nip)
    if party.internal_id is not None:
        return ("IDWew", party.internal_id)
    if party.eu_vat is not None:
        return ("EU VAT", party.eu_vat)
    if party.tax_id is not None:
        return ("NrID", f"{party.country} {party.tax_id}")
    return ("BrakID",)


def _described(identifier: tuple[str, ...]) -> str:
    return "no identifier (BrakID)" if identifier == ("BrakID",) else " ".join(identifier)


def _seller_before(before: object, seller: Party) -> fa3.Faktura.Fa.Podmiot1K:
    """``Podmiot1K`` of ``seller_before`` checked against the ``seller`` (its NIP, and a change)."""
    if not isinstance(before, Party):
        raise ValueError(
            "seller_before: expected a Party (the seller as the corrected invoice shows it), got "
            f"{type(before).__name__}"
        )
    if before.nip != seller.nip:
        quote = "'Pole nie dotyczy przypadku korekty błędnego NIP występującego na fakturze pierwotnej'"
        raise ValueError(
            f"seller_before: {_described(_identifier(before))}, and the seller has NIP {seller.nip}; "
            + _WRONG_NIP.format(element="Podmiot1K", quote=quote)
        )
    nip = _seller_nip(seller)  # checked by _common
    if _podmiot1k(_as_read(before), nip) == _podmiot1k(_as_read(seller), nip):
        raise ValueError(
            "seller_before: the same name, address and vat_prefix as seller (all Podmiot1K shows); nothing of the "
            "seller to correct"
        )
    return _podmiot1k(before, nip)


def _podmiot1k(party: Party, nip: str) -> fa3.Faktura.Fa.Podmiot1K:
    """``Podmiot1K`` of a seller, whose NIP is ``nip``."""
    return fa3.Faktura.Fa.Podmiot1K(
        prefiks_podatnika=fa3.TkodyKrajowUe(party.vat_prefix) if party.vat_prefix is not None else None,
        dane_identyfikacyjne=fa3.Tpodmiot1(nip=nip, nazwa=party.name),
        adres=party._address(),
    )


def _buyer_before(before: object, after: Party, name: str, role: str, element: str) -> fa3.Faktura.Fa.Podmiot2K:
    """``Podmiot2K`` of ``before`` (the argument ``name``), the buyer ``after`` (``role``, written to
    ``element``) as the corrected invoice shows it: the same identifier, other data."""
    if not isinstance(before, Party):
        raise ValueError(
            f"{name}: expected a Party (the {role} as the corrected invoice shows it), got {type(before).__name__}"
        )
    if before.internal_id is not None:
        raise ValueError(
            f"{name}: internal_id (IDWew) cannot be shown in Podmiot2K, which identifies a buyer as Podmiot2 does "
            "(NIP, EU VAT number, another tax identifier or none)"
        )
    _seller_only(before, name)
    if _identifier(before) != _identifier(after):
        quote = "'Korekcie nie podlegają błędne numery NIP identyfikujące nabywcę'"
        raise ValueError(
            f"{name}: {_described(_identifier(before))}, and the {role} has {_described(_identifier(after))}; the "
            f"identifier in Podmiot2K 'ma być tożsamy z numerem w części {element}', and "
            + _WRONG_NIP.format(element="Podmiot2K", quote=quote)
        )
    if _podmiot2k(_as_read(before)) == _podmiot2k(_as_read(after)):
        raise ValueError(
            f"{name}: the same identifier, name and address as the {role} (all Podmiot2K shows); nothing of the "
            f"{role} to correct"
        )
    return _podmiot2k(before)


def _as_read(party: Party) -> Party:
    """``party`` with its name and address as the schema reads them: ``Nazwa``, ``AdresL1`` and
    ``AdresL2`` are ``xsd:token`` (``TZnakowy512``), whitespace collapsed. Two parties whose
    ``Podmiot1K``/``Podmiot2K`` differ in whitespace alone show the same."""
    line2 = collapsed(party.address2) if party.address2 is not None else None
    return replace(party, name=collapsed(party.name), address=collapsed(party.address), address2=line2)


def _podmiot2k(party: Party) -> fa3.Faktura.Fa.Podmiot2K:
    return fa3.Faktura.Fa.Podmiot2K(
        dane_identyfikacyjne=party._ids(fa3.Tpodmiot2(nazwa=party.name)), adres=party._address()
    )


def _additional_buyers_before(
    befores: object, thirds: Sequence[ThirdParty]
) -> list[tuple[int | None, fa3.Faktura.Fa.Podmiot2K]]:
    """The ``Podmiot2K`` of each of ``additional_buyers_before``, with the index in ``thirds`` of the
    additional buyer it is matched to (by identifier), in the order of ``thirds``."""
    if isinstance(befores, Party | str) or not isinstance(befores, Sequence):
        raise ValueError(
            "additional_buyers_before: expected a sequence of Party objects (the additional buyers as the "
            f"corrected invoice shows them), got {type(befores).__name__}"
        )
    buyers = {index: third for index, third in enumerate(thirds) if third.role == ThirdPartyRole.ADDITIONAL_BUYER}
    matched: dict[int, tuple[int, fa3.Faktura.Fa.Podmiot2K]] = {}
    for position, before in enumerate(befores):
        name = f"additional_buyers_before[{position}]"
        if not isinstance(before, Party):
            raise ValueError(f"{name}: expected a Party, got {type(before).__name__}")
        found = [index for index, third in buyers.items() if _identifier(third.party) == _identifier(before)]
        if not found:
            raise ValueError(
                f"{name}: no additional buyer in third_parties (ThirdPartyRole.ADDITIONAL_BUYER) has its identifier, "
                f"{_described(_identifier(before))}: give the additional buyer as it should be in third_parties "
                "(Podmiot2K's identifier 'ma być tożsamy z numerem w części ... Podmiot3 faktury korygującej')"
            )
        if len(found) > 1:
            raise ValueError(
                f"{name}: {len(found)} additional buyers in third_parties have its identifier, "
                f"{_described(_identifier(before))}; which one it shows cannot be told"
            )
        (index,) = found
        if index in matched:
            raise ValueError(
                f"{name}: third_parties[{index}] is shown before the correction by "
                f"additional_buyers_before[{matched[index][0]}] too"
            )
        shown = _buyer_before(before, buyers[index].party, name, f"additional buyer third_parties[{index}]", "Podmiot3")
        matched[index] = (position, shown)
    return [(index, matched[index][1]) for index in sorted(matched)]


def _period_invoices(corrected: object) -> list[CorrectedInvoice]:
    """``corrected`` of a discount correction checked: 1..50 000 ``CorrectedInvoice`` of VAT
    invoices in PLN, none twice."""
    if isinstance(corrected, CorrectedInvoice | str) or not isinstance(corrected, Sequence):
        raise ValueError(
            "corrected: expected a sequence of CorrectedInvoice (the period's invoices), got "
            f"{type(corrected).__name__}"
        )
    if not 1 <= len(corrected) <= _MAX_CORRECTED:
        raise ValueError(f"corrected: 1..{_MAX_CORRECTED} invoices (DaneFaKorygowanej), got {len(corrected)}")
    seen: dict[object, int] = {}
    for index, reference in enumerate(corrected):
        name = f"corrected[{index}]"
        _vat_reference(reference, name)
        if reference.currency != "PLN":
            raise ValueError(
                f"{name}: {reference.number!r} is in {reference.currency}; a discount correction is built in PLN only "
                "(its tax in złoty would need each invoice's exchange rate): fill invoice.model yourself"
            )
        keys = [(collapsed(reference.number), reference.issue_date)]
        if reference.ksef_number is not None:
            keys.append(reference.ksef_number)
        for key in keys:
            if key in seen:
                raise ValueError(
                    f"{name}: {reference.number!r} is corrected[{seen[key]}] too (the same number and issue date, or "
                    "the same KSeF number); give each invoice once"
                )
            seen[key] = index
    return list(corrected)


def _discounts(discount: object) -> dict[str, Decimal]:
    """``discount`` checked: ``P_12`` rate -> a gross amount above 0 in full grosze, at least one,
    each rate once; in ``RATES`` order."""
    if not isinstance(discount, Mapping) or not discount:
        raise ValueError(f"discount: the gross discount at each rate, e.g. {{'23': '50000.00'}}, got {discount!r}")
    amounts: dict[str, Decimal] = {}
    for key, value in discount.items():
        try:
            rate = rate_of(key)
        except ValueError:
            raise ValueError(f"discount: {key!r} is not a rate ({', '.join(RATES)})") from None
        if rate in amounts:
            raise ValueError(f"discount: the rate {rate!r} is given twice")
        amount = checked_decimal(value, f"discount {rate!r}", 2, positive=True)
        amounts[rate] = amount.quantize(GROSZ)
    return {rate: amounts[rate] for rate in RATES if rate in amounts}


def _items(items: object) -> list[DiscountedItem]:
    """``items`` checked: ``DiscountedItem`` objects or names, at most 10 000 (``FaWiersz``)."""
    if isinstance(items, DiscountedItem | str) or not isinstance(items, Sequence):
        raise ValueError(f"items: expected a sequence of DiscountedItem objects or names, got {type(items).__name__}")
    if len(items) > _MAX_ROWS:
        raise ValueError(f"items: at most {_MAX_ROWS} (FaWiersz)")
    checked = []
    for index, item in enumerate(items):
        if isinstance(item, DiscountedItem):
            checked.append(item)
        elif isinstance(item, str):
            try:
                checked.append(DiscountedItem(item))
            except ValueError as error:
                raise ValueError(f"items[{index}]: {error}") from None
        else:
            raise ValueError(f"items[{index}]: expected a DiscountedItem or a name, got {type(item).__name__}")
    return checked


__all__ = ["DiscountedItem", "discount_correction", "number_correction", "party_correction"]
