"""Builders for a sale paid partly in advance: the advance invoice (``ZAL``, ``advance``), its
correction (``KOR_ZAL``, ``advance_correction``), the settlement invoice (``ROZ``, ``settlement``)
and its correction (``KOR_ROZ``, ``settlement_correction``), and ``AdvanceInvoice``, an advance
invoice as the invoices after it name, deduct and correct it.

::

    from ksef_client.invoice import AdvanceInvoice, advance, settlement

    zal = advance(number="ZAL/1", issue_date=day, seller=seller, buyer=buyer, order=order, received="615.00")
    roz = settlement(number="ROZ/1", issue_date=later, seller=seller, buyer=buyer, lines=order,
                     advances=[AdvanceInvoice.of(zal, ksef_number)])

The amounts follow ``ksef_client.invoice.totals`` (art. 106f of the VAT Act: an advance's tax is
payment x rate / (100 + rate), a settlement the order less the advances field by field, a
correction the state after it less the corrected invoice's as it shows it); the parties
(``ksef_client.invoice.parties``), dates and annotations are checked and written as for every kind
(``ksef_client.invoice._shared``), and these names can be imported from
``ksef_client.invoice.builders`` too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from decimal import Decimal

from ksef_client._invoice_models import fa3
from ksef_client.invoice._shared import (
    _BASE_OF,
    _YES,
    CorrectedInvoice,
    CorrectionEffect,
    _all_lines,
    _annotations,
    _as_totals,
    _check_gross,
    _checked_reference,
    _common,
    _correction,
    _date,
    _exemption,
    _invoice,
    _line_of,
    _no_line_rates,
    _rates_text,
    _row,
    _shown_totals,
    _taxed,
)
from ksef_client.invoice.model import Invoice
from ksef_client.invoice.parties import Party, ThirdParty, _third_parties
from ksef_client.invoice.totals import (
    FIELD_ORDER,
    Line,
    Totals,
    advance_totals,
    checked_decimal,
    checked_exchange_rate,
    checked_totals,
    collapsed,
    field_label,
    line_totals,
    settlement_totals,
    tax,
)

# What the builders say of a KOR_ZAL that does not follow the state the ones before it left.
_IN_ORDER = "give every KOR_ZAL of the advance invoice, once each, in the order they were issued"

# What they say of an order line with an exchange rate of its own (Line.exchange_rate, KursWaluty).
_ORDER_ONE_RATE = (
    "an order's rows (ZamowienieWiersz) have no exchange rate; an advance invoice converts its tax at one "
    "rate, KursWalutyZ (exchange_rate=)"
)
_SETTLEMENT_ONE_RATE = (
    "a settlement invoice's tax in złoty is what remains after the advances, converted at one rate "
    "(exchange_rate=, KursWaluty on every taxed row); rows at rates of their own are not supported"
)


@dataclass(frozen=True)
class AdvanceInvoice:
    """An advance invoice (``ZAL``), as a settlement invoice deducts it (``settlement``, ``ROZ``),
    a correction corrects it (``advance_correction``, ``KOR_ZAL``) and the last advance invoice
    lists it (``advance(..., advances=[...])``, art. 106f ust. 4).

    ``number``, ``issue_date`` and ``ksef_number`` (``None``: issued outside KSeF) name it: a
    settlement lists it in ``FakturaZaliczkowa`` (``NrKSeFFaZaliczkowej``, or ``NrKSeFZN`` with
    ``NrFaZaliczkowej``), a correction in ``DaneFaKorygowanej``. Keyword-only:

    - ``totals`` (required): its ``P_13_x``/``P_14_x`` (and, in a foreign currency, ``P_14_xW``)
      by field name, as it shows them (``{"p_13_1": "500.00", "p_14_1": "115.00"}``, as
      ``Invoice.totals()`` gives them), corrections included: a settlement deducts exactly these
      (art. 106f ust. 3: the tax "pomniejsza się o sumę kwot podatku wykazanego w fakturach
      dokumentujących otrzymanie części zapłaty"). Their sum is the payment, ``received``
      (``P_15``). A ``P_14_xW`` left out is computed from ``exchange_rate``.
    - ``order``: the order's lines (``Zamowienie``), needed by ``advance_correction``.
    - ``currency`` (``KodWaluty``) and ``exchange_rate`` (``KursWalutyZ``, PLN per unit).

    ``AdvanceInvoice.of(invoice, ksef_number, corrections=[...])`` reads all of it from a ZAL
    ``Invoice`` and the ``KOR_ZAL`` invoices that corrected it.
    """

    number: str
    issue_date: dt.date
    ksef_number: str | None = None
    _: KW_ONLY
    totals: Mapping[str, Decimal | str] = field(hash=False)
    order: Sequence[Line] | None = field(default=None, repr=False)
    currency: str = "PLN"
    exchange_rate: Decimal | str | None = None

    def __post_init__(self) -> None:
        rate = _checked_reference(self, "advance")
        object.__setattr__(self, "exchange_rate", rate)
        totals = _shown_totals(self.totals, self.currency, rate, "advance totals")
        object.__setattr__(self, "totals", totals)
        received = checked_totals(_as_totals(totals), "advance totals").gross  # P_15, and P_15ZK of a KOR_ZAL
        if received < 0:
            raise ValueError(f"advance totals: they add up to {received}, and a payment is not negative")
        if self.order is not None:
            order = _all_lines(self.order, "advance order", "the order's Line objects (Zamowienie), all of them")
            _no_line_rates(order, "advance order", _ORDER_ONE_RATE)
            object.__setattr__(self, "order", order)

    @property
    def received(self) -> Decimal:
        """``P_15``: the payment the advance invoice documents (its ``P_13_x`` plus ``P_14_x``)."""
        return self._totals().gross

    def _totals(self) -> Totals:
        return _as_totals(self.totals)  # type: ignore[arg-type]  # Decimal values since __post_init__

    @classmethod
    def of(
        cls, invoice: Invoice, ksef_number: str | None = None, *, corrections: Sequence[Invoice] = ()
    ) -> AdvanceInvoice:
        """The reference to a ZAL ``Invoice`` (with the KSeF number it got, if sent): its totals,
        its order (the ``Zamowienie`` rows, when each has quantity, net unit price, rate and a
        ``P_11NettoZ`` that they give), currency and ``KursWalutyZ``.

        ``corrections``: every ``KOR_ZAL`` invoice that corrected it, once each, in the order
        issued; each one's differences are added to the totals, its ``KursWalutyZ`` replaces the
        rate, and its order rows after the correction become the order when its rows before the
        correction (``StanPrzedZ``) are the order as it stood (only some of them: the order is
        unknown after it, ``None``). Each must name this invoice in ``DaneFaKorygowanej`` and
        start from the state the ones before it left: its ``P_15ZK`` the payment, its
        ``KursWalutyZK`` (when it has one) the exchange rate and, while the order is known, its
        rows before the correction rows of it. ``ValueError`` naming ``corrections[i]`` otherwise,
        and for a KOR_ZAL given twice: one left out, repeated or out of order would make the
        totals, and the settlement that deducts them, wrong.
        """
        if not isinstance(invoice, Invoice):
            raise ValueError(f"invoice: expected an Invoice, got {type(invoice).__name__}")
        if invoice.kind != "ZAL":
            hint = (
                "; read the ZAL it corrects, with the corrections: AdvanceInvoice.of(zal, ksef_number, "
                "corrections=[...])"
                if invoice.kind == "KOR_ZAL"
                else ""
            )
            raise ValueError(f"invoice: {invoice.number!r} is a {invoice.kind} invoice, not an advance one (ZAL){hint}")
        _check_gross(invoice, "invoice")
        zamowienie = invoice.model.fa.zamowienie
        reference = cls(
            invoice.number, invoice.issue_date, ksef_number, totals=invoice.totals(),
            order=_order_lines(zamowienie.zamowienie_wiersz) if zamowienie is not None else None,
            currency=invoice.currency, exchange_rate=invoice.model.fa.kurs_waluty_z,
        )  # fmt: skip
        if isinstance(corrections, Invoice) or not isinstance(corrections, Iterable):
            raise ValueError("corrections: expected a sequence of KOR_ZAL Invoice objects")
        seen: list[Invoice] = []
        for index, kor in enumerate(corrections):
            name = f"corrections[{index}]"
            if not isinstance(kor, Invoice) or kor.kind != "KOR_ZAL":
                kind = kor.kind if isinstance(kor, Invoice) else type(kor).__name__
                raise ValueError(f"{name}: expected a KOR_ZAL Invoice (a correction of an advance invoice), got {kind}")
            _check_once(kor, seen, name)
            reference = reference._corrected_by(kor, name)
            seen.append(kor)
        return reference

    def _corrected_by(self, kor: Invoice, name: str) -> AdvanceInvoice:
        """This advance invoice as the KOR_ZAL ``kor`` left it."""
        self._check_corrects(kor, name)
        changes = kor.totals()
        names = [key for key in FIELD_ORDER if key in self.totals or key in changes]
        zero = Decimal("0.00")
        totals = {key: Decimal(self.totals.get(key, zero)) + changes.get(key, zero) for key in names}
        zamowienie = kor.model.fa.zamowienie
        order = self.order
        if zamowienie is not None:
            order = _order_after(self.order, zamowienie.zamowienie_wiersz, f"{name}: {kor.number!r}")
        rate = kor.model.fa.kurs_waluty_z if kor.model.fa.kurs_waluty_z is not None else self.exchange_rate
        return replace(self, totals=totals, order=order, exchange_rate=rate)

    def _check_corrects(self, kor: Invoice, name: str) -> None:
        """``ValueError`` naming ``name`` unless the KOR_ZAL ``kor`` corrects this advance invoice as
        it stands: names it, in its currency, with the payment (``P_15ZK``) and exchange rate
        (``KursWalutyZK``) before the correction that it has."""
        if not any(
            data.nr_fa_korygowanej == self.number
            and (self.ksef_number is None or data.nr_kse_ffa_korygowanej in {None, self.ksef_number})
            for data in kor.model.fa.dane_fa_korygowanej
        ):
            raise ValueError(f"{name}: {kor.number!r} does not correct {self.number!r} (DaneFaKorygowanej)")
        if kor.currency != self.currency:
            raise ValueError(f"{name}: {kor.number!r} is in {kor.currency}, the advance invoice in {self.currency}")
        _check_gross(kor, name)
        before = kor.model.fa.p_15_zk
        if before is None:
            raise ValueError(
                f"{name}: {kor.number!r} has no P_15ZK, the payment before the correction, which a KOR_ZAL shows; "
                "give the advance invoice as it stands by hand: AdvanceInvoice(number, issue_date, ksef_number, "
                "totals={...}, order=[...])"
            )
        if before != self.received:
            raise ValueError(
                f"{name}: {kor.number!r} corrects a payment of {before} (P_15ZK), and the advance invoice, as the "
                f"corrections before it left it, documents {self.received}: {_IN_ORDER}"
            )
        rate = kor.model.fa.kurs_waluty_zk
        if rate is not None and rate != self.exchange_rate:
            raise ValueError(
                f"{name}: {kor.number!r} corrects an advance converted at {rate} (KursWalutyZK), and the advance "
                f"invoice, as the corrections before it left it, is at {self.exchange_rate}: {_IN_ORDER}"
            )

    def _reference(self) -> fa3.Faktura.Fa.FakturaZaliczkowa:
        """``FakturaZaliczkowa``: the KSeF number, or the number of one issued outside KSeF."""
        if self.ksef_number is not None:
            return fa3.Faktura.Fa.FakturaZaliczkowa(nr_kse_ffa_zaliczkowej=self.ksef_number)
        return fa3.Faktura.Fa.FakturaZaliczkowa(nr_kse_fzn=_YES, nr_fa_zaliczkowej=self.number)


def _check_once(kor: Invoice, earlier: Sequence[Invoice], name: str) -> None:
    """``ValueError`` naming ``name`` when the KOR_ZAL ``kor`` is one of ``earlier``: the same
    number and the same ``Fa`` (its amounts, dates, order rows; built again, only its creation
    time in the header differs). Two that share a number but not their contents are taken as two
    corrections, each checked against the state the one before left (the Ministry's sample
    corrections ``FA_3_Przykład_12.xml`` and ``_13.xml`` are both "FK2026/03/7")."""
    for index, other in enumerate(earlier):
        if other.number == kor.number and other.model.fa == kor.model.fa:
            raise ValueError(
                f"{name}: {kor.number!r} is given twice (corrections[{index}] too); each KOR_ZAL corrects the "
                f"advance invoice once: {_IN_ORDER}"
            )


_OrderRow = fa3.Faktura.Fa.Zamowienie.ZamowienieWiersz


def _order_lines(rows: Sequence[_OrderRow]) -> tuple[Line, ...] | None:
    """Order rows (``ZamowienieWiersz``) as ``Line`` objects; ``None`` if one cannot be read back
    exactly (``_shared._line_of``), or there are none."""
    lines = [_line_of(row.p_7_z, row.p_8_az, row.p_8_bz, row.p_9_az, row.p_12_z, row.p_11_netto_z) for row in rows]
    return None if None in lines or not lines else tuple(line for line in lines if line is not None)


def _order_after(order: Sequence[Line] | None, rows: Sequence[_OrderRow], name: str) -> tuple[Line, ...] | None:
    """The order after a KOR_ZAL whose ``Zamowienie`` rows are ``rows``: its rows after the
    correction, when its rows before (``StanPrzedZ``) are the whole ``order`` as it stood (the
    way ``advance_correction`` writes them); ``None`` when they are only some of it, or cannot
    be read as lines (rows of differences, or of the corrected lines only, do not say what the
    whole order became), or the order was unknown. ``ValueError`` naming ``name`` (the KOR_ZAL)
    for a row before the correction that the order does not have: it corrected another state."""
    before = _order_lines([row for row in rows if row.stan_przed_z is not None])
    if order is None or before is None:
        return None
    missing = Counter(before) - Counter(order)
    if missing:
        line = next(iter(missing))
        raise ValueError(
            f"{name} shows the order before the correction (StanPrzedZ) with a line the advance invoice's order, "
            f"as the corrections before it left it, does not have ({line.name!r}, {line.quantity} x "
            f"{line.unit_price} at {line.rate}): {_IN_ORDER}"
        )
    if Counter(before) != Counter(order):
        return None
    return _order_lines([row for row in rows if row.stan_przed_z is None])


def advance(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    order: Sequence[Line],
    received: Decimal | str,
    advances: Sequence[AdvanceInvoice] = (),
    payment_date: dt.date | None = None,
    currency: str = "PLN",
    exchange_rate: Decimal | str | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """An advance invoice (``ZAL``) for a payment ``received`` towards ``order``.

    The order's lines go to ``Zamowienie`` (with each line's tax and the order's gross value);
    the payment's net and tax per rate to ``P_13_x``/``P_14_x`` and the payment to ``P_15``. A
    payment towards several rates is split between them in proportion to the order's gross value
    at each (``totals.split_payment``); an order with a rate whose lines add up to less than 0
    gross is refused (``order``). ``payment_date`` (``P_6``) when it differs from the issue date.
    In a foreign currency, ``exchange_rate`` goes to ``KursWalutyZ`` and gives ``P_14_xW`` (one
    rate: an order line with an ``exchange_rate`` of its own is refused, as by ``AdvanceInvoice``
    and ``advance_correction``). ``exemption``, the reverse charge and ``allow_future_issue_date``
    as in ``vat_invoice``, over the order's lines; ``split_payment`` and ``third_parties`` as in
    ``vat_invoice``.

    ``advances``: on the last advance invoice, when the payments before the supply cover the whole
    order (art. 106f ust. 4), the earlier advance invoices (``AdvanceInvoice``, up to 100), listed
    in ``FakturaZaliczkowa`` by KSeF number or, issued outside KSeF, by number (FA(3) XSD,
    ``NrFaZaliczkowej``: "Pole obowiązkowe dla ... ostatniej z faktur, o której mowa w art. 106f
    ust. 4 ustawy"). No settlement invoice follows such an order (``settlement`` refuses it). The
    amounts are this payment's alone (the XSD: "kwota podatku wyliczona według wzoru, o którym
    mowa w art. 106f ust. 1 pkt 3"). Refused: one listed twice, one in another currency, one with
    this invoice's number, and advances that with this payment come to more than the order.
    """
    (order,) = _common(number, issue_date, seller, buyer, currency, allow_future_issue_date, order=order)
    if not order:
        raise ValueError("order: at least one ordered line")
    _no_line_rates(order, "order", _ORDER_ONE_RATE)
    basis = _exemption(exemption, order)
    thirds = _third_parties(third_parties, split_payment)
    paid = checked_decimal(received, "received", 2, positive=True)
    order_gross = checked_totals(line_totals(order), "order").gross  # WartoscZamowienia, TKwotowy
    if paid > order_gross:
        raise ValueError(f"received: {paid} is more than the order's gross value {order_gross}")
    earlier = _earlier_advances(advances, currency, number, order_gross - paid)
    rate = checked_exchange_rate(exchange_rate, currency, taxed=_taxed(order))
    if payment_date is not None:
        _date(payment_date, "payment_date")
    model = _invoice(
        fa3.TrodzajFaktury.ZAL, number=number, issue_date=issue_date, seller=seller, buyer=buyer,
        currency=currency, totals=checked_totals(advance_totals(paid, order, rate), "received"), created=created,
        date=payment_date,
        annotations=_annotations(order, basis, split_payment), third_parties=thirds,
    )  # fmt: skip
    model.fa.kurs_waluty_z = rate
    model.fa.zamowienie = _order_model(order_gross, order)
    model.fa.faktura_zaliczkowa = [advance._reference() for advance in earlier]
    return Invoice(model)


def _earlier_advances(advances: object, currency: str, number: str, left: Decimal) -> list[AdvanceInvoice]:
    """The advance invoices a last advance invoice lists (``advance(..., advances=...)``), checked
    as a settlement's are (none required), none with its ``number``, and together no more than
    what its payment ``left`` of the order."""
    earlier = _advances(advances, currency, required=False)
    for paid in earlier:
        if collapsed(paid.number) == collapsed(number):
            raise ValueError(f"advances: {paid.number!r} is this invoice's own number; list the earlier ones")
    total = sum((paid.received for paid in earlier), Decimal("0.00"))
    if total > left:
        raise ValueError(
            f"advances: they add up to {total}, and with this payment to more than the order's gross value (this "
            f"payment leaves {left} of it)"
        )
    return earlier


def _order_model(value: Decimal, order: Sequence[Line], before: Sequence[Line] = ()) -> fa3.Faktura.Fa.Zamowienie:
    """``Zamowienie``: the order's gross value (``WartoscZamowienia``, "z uwzględnieniem kwoty
    podatku") and its rows, each with its tax (``P_11VatZ``); ``before``: rows as the order stood
    before a correction, marked ``StanPrzedZ`` and numbered first."""
    rows = [_order_row(i, line, before=True) for i, line in enumerate(before, 1)]
    rows += [_order_row(i, line) for i, line in enumerate(order, len(before) + 1)]
    return fa3.Faktura.Fa.Zamowienie(wartosc_zamowienia=value, zamowienie_wiersz=rows)


def _order_row(number: int, line: Line, *, before: bool = False) -> _OrderRow:
    percent = line.fields.percent
    return _OrderRow(
        nr_wiersza_zam=number,
        p_7_z=line.name,
        p_8_az=line.unit,
        p_8_bz=line.quantity,
        p_9_az=line.unit_price,
        p_11_netto_z=line.net,
        p_11_vat_z=tax(line.net, percent) if percent is not None else None,
        p_12_z=fa3.TstawkaPodatku(line.rate),
        stan_przed_z=_YES if before else None,
    )


_MAX_ADVANCES = 100  # FakturaZaliczkowa maxOccurs="100"


def _advances(advances: object, currency: str, *, required: bool = True) -> list[AdvanceInvoice]:
    """``advances`` checked: up to 100 ``AdvanceInvoice`` objects (at least one if ``required``:
    a settlement's), in ``currency``, each once: no number twice, and no KSeF number twice (the same advance
    invoice given once with its KSeF number and once as if issued outside KSeF has its number
    twice; one KSeF number under two numbers is one invoice with a typo in a number)."""
    if isinstance(advances, AdvanceInvoice) or not isinstance(advances, Iterable):
        raise ValueError("advances: expected a sequence of AdvanceInvoice objects (AdvanceInvoice.of(zal, ...))")
    settled = list(advances)
    if not all(isinstance(advance, AdvanceInvoice) for advance in settled):
        raise ValueError("advances: expected AdvanceInvoice objects (AdvanceInvoice.of(zal, ksef_number))")
    if not settled and required:
        raise ValueError(
            "advances: at least one advance invoice; a settlement invoice (ROZ, art. 106f ust. 3) deducts the "
            "advances and lists them (FakturaZaliczkowa): without advances, issue a VAT invoice (vat_invoice)"
        )
    if len(settled) > _MAX_ADVANCES:
        raise ValueError(f"advances: at most {_MAX_ADVANCES} (FakturaZaliczkowa), got {len(settled)}")
    numbers: set[str] = set()
    ksef_numbers: dict[str, str] = {}
    for advance in settled:
        if collapsed(advance.number) in numbers:
            raise ValueError(f"advances: {advance.number!r} is given twice; each advance invoice counts once")
        numbers.add(collapsed(advance.number))
        if advance.ksef_number is not None:
            if advance.ksef_number in ksef_numbers:
                first = ksef_numbers[advance.ksef_number]
                raise ValueError(
                    f"advances: the KSeF number {advance.ksef_number} is given twice ({first!r} and "
                    f"{advance.number!r}); each advance invoice counts once"
                )
            ksef_numbers[advance.ksef_number] = advance.number
        if advance.currency != currency:
            whose = (
                "the settlement in {}; it deducts the advances' amounts, so they are in its currency"
                if required
                else "this advance invoice in {}; the advance invoices of one order are in one currency"
            )
            raise ValueError(f"advances: {advance.number!r} is in {advance.currency}, {whose.format(currency)}")
    return settled


def _remaining(lines: Sequence[Line], advances: Sequence[AdvanceInvoice], rate: Decimal | None) -> Totals:
    """What a settlement shows after ``advances`` (``totals.settlement_totals``): the order less
    each advance's ``P_13_x``/``P_14_x`` as it shows them, field by field (a field may end below
    0: the advances' parts at a rate, each rounded, can add up to a grosz more than the order has
    there, and an order changed since the advances can have less at a rate than they paid towards
    it, or nothing). A rate whose fields are all 0.00 on an advance and that the order does not
    have (an advance whose order a correction moved off it) deducts nothing and is left out."""
    order = line_totals(lines).fields
    deducted = []
    for advance in advances:
        groups: dict[str, dict[str, Decimal]] = {}
        for name, value in advance.totals.items():
            if not name.endswith("_w"):  # each advance's tax in złoty was converted at its own rate
                groups.setdefault(_BASE_OF.get(name, name), {})[name] = Decimal(value)
        fields = {
            name: value
            for base, amounts in groups.items()
            if base in order or any(amounts.values())
            for name, value in amounts.items()
        }
        deducted.append(Totals(fields, advance.received))
    return settlement_totals(lines, deducted, rate)


def _check_rates(lines: Sequence[Line], advances: Sequence[AdvanceInvoice]) -> None:
    """``ValueError`` naming ``advances`` for an advance with an amount at a rate no line of the
    order is at, when a settlement is issued: its tax was at a rate nothing is supplied at, which
    a correction of the advance invoice puts right first (the Ministry's ``FA_3_Przykład_11.xml``
    corrects an advance's rate before the settlement)."""
    order = line_totals(lines).fields
    for advance in advances:
        for name, value in advance.totals.items():
            if value and not name.endswith("_w") and _BASE_OF.get(name, name) not in order:
                raise ValueError(
                    f"advances: {advance.number!r} has {field_label(name)} and no line is at that rate; the "
                    "advance invoice's tax is at a rate nothing is supplied at: correct it first (advance_correction, "
                    "KOR_ZAL)"
                )


def _check_not_paid(totals: Totals, advances: Sequence[AdvanceInvoice]) -> None:
    """``ValueError`` naming ``advances`` when they cover the whole order (``totals``: what would
    remain): then no settlement invoice is issued (art. 106f ust. 3: the one issued when the
    advance invoices do not cover the whole payment)."""
    paid = sum((advance.received for advance in advances), Decimal("0.00"))
    whole = totals.gross + paid
    if totals.gross < 0:
        raise ValueError(
            f"advances: they add up to {paid}, more than the whole order ({whole}); correct them first "
            "(advance_correction, KOR_ZAL: a part returned), or the order"
        )
    if totals.gross == 0:
        raise ValueError(
            f"advances: they add up to {paid}, the whole order ({whole}); a settlement invoice is issued when the "
            "advance invoices do not cover the whole payment (art. 106f ust. 3: 'nie obejmuje całej zapłaty'). "
            "Paid in full beforehand, the last advance invoice settles the order, and lists the earlier ones (art. "
            "106f ust. 4, FA(3) XSD: FakturaZaliczkowa of 'ostatniej z faktur'): advance(..., advances=[...])"
        )


def settlement(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    lines: Sequence[Line],
    advances: Sequence[AdvanceInvoice],
    currency: str = "PLN",
    exchange_rate: Decimal | str | None = None,
    sale_date: dt.date | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A settlement invoice (``ROZ``, art. 106f ust. 3 of the VAT Act): issued after the goods or
    service, when advance invoices (``ZAL``) were issued before, for what remains to be paid.

    ``lines`` are the whole order or contract, at full value (FA(3) XSD, ``FaWiersz``: "W
    przypadku faktur, o których mowa w art. 106f ust. 3 ustawy, należy wykazać pełne wartości
    zamówienia lub umowy"). ``advances`` are the advance invoices it settles (``AdvanceInvoice``,
    1..100, each once: no number and no KSeF number twice), listed in ``FakturaZaliczkowa`` by
    KSeF number, or by number when issued outside KSeF (the Act: the invoice "powinna również
    zawierać numery faktur wystawionych przed wydaniem towaru").

    Totals (art. 106f ust. 3: "sumę wartości towarów lub usług pomniejsza się o wartość otrzymanych
    części zapłaty, a kwotę podatku pomniejsza się o sumę kwot podatku wykazanego w fakturach
    dokumentujących otrzymanie części zapłaty"): each ``P_13_x``/``P_14_x`` is the lines' total
    less the advances' (as they show them), and ``P_15`` what remains to be paid (XSD: "kwota
    pozostała do zapłaty"), as in the Ministry's sample invoice ``Fa_3_Przykład_14.xml``. A field
    may come out below 0 where the advances paid more at a rate than the order has there (the Act
    deducts field by field; rounding of the advances' split can do it by a grosz). Refused: an
    advance with an amount at a rate no line is at (its tax was at a rate nothing is supplied at:
    correct the advance invoice first, ``advance_correction``), and advances that cover the whole
    order (then no settlement is issued: the last advance invoice settles it and lists the earlier
    ones, art. 106f ust. 4, ``advance(..., advances=[...])``) or more (correct them first).

    In a foreign ``currency``, the advances are in it too; ``exchange_rate`` (required with tax)
    is written on the taxed rows (``KursWaluty``) and converts the remaining tax (``P_14_xW``:
    the advances' tax was converted at their own rates, on their invoices; no source says so in
    as many words, see ``totals``); a line with an ``exchange_rate`` of its own is refused, as the
    remaining tax is converted at one rate. ``sale_date`` (``P_6``, the day of the supply) when it
    differs from the issue date; ``exemption``, the reverse charge, ``allow_future_issue_date``,
    ``split_payment`` and ``third_parties`` as in ``vat_invoice``. A settlement that also
    documents a further payment received before the supply (``ZaliczkaCzesciowa``) is left to
    ``invoice.model``.
    """
    (lines,) = _common(number, issue_date, seller, buyer, currency, allow_future_issue_date, lines=lines)
    if not lines:
        raise ValueError("lines: at least one line (the whole order or contract, at full value)")
    _no_line_rates(lines, "lines", _SETTLEMENT_ONE_RATE)
    settled = _advances(advances, currency)
    basis = _exemption(exemption, lines)
    thirds = _third_parties(third_parties, split_payment)
    rate = checked_exchange_rate(exchange_rate, currency, taxed=_taxed(lines))
    if sale_date is not None:
        _date(sale_date, "sale_date")
    _check_rates(lines, settled)
    totals = checked_totals(_remaining(lines, settled, rate), "lines")
    _check_not_paid(totals, settled)
    model = _invoice(
        fa3.TrodzajFaktury.ROZ, number=number, issue_date=issue_date, seller=seller, buyer=buyer,
        currency=currency, totals=totals, created=created, date=sale_date,
        annotations=_annotations(lines, basis, split_payment), third_parties=thirds,
    )  # fmt: skip
    model.fa.faktura_zaliczkowa = [advance._reference() for advance in settled]
    model.fa.fa_wiersz = [_row(i, line, rate) for i, line in enumerate(lines, 1)]
    return Invoice(model)


def advance_correction(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: AdvanceInvoice,
    received: Decimal | str | None = None,
    order: Sequence[Line] | None = None,
    reason: str | None = None,
    effect: CorrectionEffect | int | None = None,
    currency: str | None = None,
    exchange_rate: Decimal | str | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A correction of an advance invoice (``KOR_ZAL``): of the payment it documents, of the order
    it was paid towards, or both.

    ``corrected`` is the advance invoice as it stands (``AdvanceInvoice.of(zal, ksef_number,
    corrections=[...])``), with its order. ``received`` is the payment after the correction
    (default: unchanged; 0 when it was all returned), ``order`` the whole order after it (default:
    unchanged; a rate whose lines add up to less than 0 gross is refused, as by ``advance``). The
    totals are the advance totals after the correction (computed as ``advance`` computes them,
    over the order as corrected) less the advance invoice's as it shows them (XSD,
    ``P_13_x``/``P_14_x`` of a correction: "kwota różnicy"); ``P_15`` is the change of the payment
    ("korekta kwoty wynikającej z faktury korygowanej") and ``P_15ZK`` the payment before ("kwota
    zapłaty przed korektą"), as in the Ministry's ``FA_3_Przykład_11.xml`` and ``_12.xml``.

    ``Zamowienie`` shows the whole order before the correction (``StanPrzedZ``) and after it, as
    separate numbered rows, and its value after (``WartoscZamowienia``): the XSD asks for the rows
    before and after when the order changed, and for both "w celu potwierdzenia braku zmiany
    wartości danej pozycji" when only the payment's tax changed; the Ministry's samples show every
    row both ways.

    The correction is in the advance invoice's currency (``currency`` another is refused). In a
    foreign currency ``exchange_rate`` (default: the advance invoice's) goes to ``KursWalutyZ``,
    the advance invoice's to ``KursWalutyZK`` ("przed korektą"), and ``P_14_xW`` is the tax after,
    converted at ``exchange_rate``, less the tax in złoty the advance invoice showed. ``reason``
    (``PrzyczynaKorekty``), ``effect`` (``TypKorekty``, a ``CorrectionEffect``), ``exemption``, the
    reverse charge (over the order before and after), ``allow_future_issue_date``,
    ``split_payment`` and ``third_parties`` as in ``correction``.
    """
    if not isinstance(corrected, AdvanceInvoice):
        raise ValueError("corrected: expected an AdvanceInvoice (AdvanceInvoice.of(zal, ksef_number))")
    if corrected.order is None:
        raise ValueError(
            "corrected: the advance invoice's order is needed (shown before and after the correction, and the "
            "payment's tax is split over it), and corrected.order is None: AdvanceInvoice(..., order=[...])"
        )
    checked = _correction(
        fa3.TrodzajFaktury.KOR_ZAL, corrected, {"corrected.order": corrected.order,
        "order": corrected.order if order is None else order}, one_rate=True, number=number,
        issue_date=issue_date, seller=seller, buyer=buyer, currency=currency, reason=reason, effect=effect,
        exchange_rate=exchange_rate, created=created, exemption=exemption,
        allow_future_issue_date=allow_future_issue_date, split_payment=split_payment, third_parties=third_parties,
    )  # fmt: skip
    if not checked.after:
        raise ValueError("order: at least one ordered line (the whole order after the correction)")
    _no_line_rates(checked.after, "order", _ORDER_ONE_RATE)
    paid = corrected.received if received is None else checked_decimal(received, "received", 2)
    if paid < 0:
        raise ValueError(f"received: {paid}; the payment after the correction (0 when it was all returned)")
    order_gross = checked_totals(line_totals(checked.after), "order").gross
    if paid > order_gross:
        raise ValueError(f"received: {paid} is more than the order's gross value {order_gross}")
    state = checked_totals(advance_totals(paid, checked.after, checked.exchange_rate), "received")
    model = checked.model(checked_totals(state - corrected._totals(), "corrected"))
    model.fa.p_15_zk = corrected.received
    model.fa.kurs_waluty_zk = corrected.exchange_rate  # type: ignore[assignment]  # a Decimal since __post_init__
    model.fa.kurs_waluty_z = checked.exchange_rate
    model.fa.zamowienie = _order_model(order_gross, checked.after, checked.before)
    return Invoice(model)


def settlement_correction(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: CorrectedInvoice,
    advances: Sequence[AdvanceInvoice],
    lines: Sequence[Line] | None = None,
    reason: str | None = None,
    effect: CorrectionEffect | int | None = None,
    currency: str | None = None,
    exchange_rate: Decimal | str | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A correction of a settlement invoice (``KOR_ROZ``): of the order's lines, of the advances
    deducted, or of amounts the settlement got wrong.

    ``corrected`` is the settlement invoice (``CorrectedInvoice.of(roz, ksef_number)``, ``kind``
    ``"ROZ"``, with its lines and its totals as it shows them). ``advances`` are the advance
    invoices it deducts after the correction (``AdvanceInvoice``, as the advance corrections left
    them, each once), listed in ``FakturaZaliczkowa``; ``lines`` the whole order after it (default:
    unchanged). The totals are the settlement after the correction (as ``settlement`` computes
    it) less the settlement invoice's as it shows them; ``P_15`` is the change of the amount due and
    ``P_15ZK`` the amount due before ("kwota pozostała do zapłaty przed korektą"), as in the
    Ministry's ``Fa_3_Przykład_18.xml``.

    After the supply the order may come to less than the advances paid (a price cut, goods
    returned): the state after the correction is then a refund (``P_15`` after it 0 or below),
    and an advance at a rate the corrected order no longer has is still deducted, field by field
    (its fields come out below 0), as the settlement deducted it: the advance invoices are not
    corrected again for what the settlement already settled.

    The rows show every line before the correction (``StanPrzed``) and after it, as separate
    numbered rows (XSD, ``FaWiersz``: "dane pozycji korygowanych wg stanu przed korektą i po
    korekcie jako osobne wiersze", and when the order's value does not change, "zapis wg stanu
    przed korektą i zapis wg stanu po korekcie w celu potwierdzenia braku zmiany wartości danej
    pozycji faktury").

    In the settlement invoice's currency (``currency`` another is refused); ``exchange_rate``
    (default: the settlement invoice's) is written on the taxed rows after the correction, the
    settlement invoice's on those before, and ``P_14_xW`` is the remaining tax after, converted at
    ``exchange_rate``, less the one the settlement invoice showed. A settlement invoice whose
    lines have exchange rates of their own (read by ``CorrectedInvoice.of`` from rows with
    different ``KursWaluty``), and ``lines`` with one, are refused (``ValueError`` naming the
    rates): what remains after the advances has no rows to convert by. ``reason``, ``effect``
    (``TypKorekty``, a ``CorrectionEffect``), ``exemption``, the reverse charge (over the lines
    before and after), ``allow_future_issue_date``, ``split_payment`` and ``third_parties`` as in
    ``correction``.
    """
    if not isinstance(corrected, CorrectedInvoice):
        raise ValueError("corrected: expected a CorrectedInvoice of a settlement invoice (CorrectedInvoice.of(roz))")
    if corrected.kind != "ROZ":
        raise ValueError(
            f"corrected: {corrected.number!r} is not a settlement invoice (kind {corrected.kind!r}); correction() "
            "corrects it (KOR). A ROZ read with CorrectedInvoice.of(invoice, ksef_number) has kind 'ROZ'"
        )
    if corrected.lines is None:
        raise ValueError(
            "corrected: every line of the settlement invoice is needed (shown before and after the correction), "
            "and corrected.lines is None: CorrectedInvoice(..., lines=[...], kind='ROZ', totals={...})"
        )
    if any(line.exchange_rate is not None for line in corrected.lines):
        raise ValueError(
            "corrected: the settlement invoice's lines have exchange rates of their own "
            f"({_rates_text(corrected.lines)}; CorrectedInvoice.of reads them so from rows whose KursWaluty "
            f"differ); {_SETTLEMENT_ONE_RATE}: correct it with invoice.model"
        )
    checked = _correction(
        fa3.TrodzajFaktury.KOR_ROZ, corrected, {"corrected.lines": corrected.lines,
        "lines": corrected.lines if lines is None else lines}, one_rate=True, number=number,
        issue_date=issue_date, seller=seller, buyer=buyer, currency=currency, reason=reason, effect=effect,
        exchange_rate=exchange_rate, created=created, exemption=exemption,
        allow_future_issue_date=allow_future_issue_date, split_payment=split_payment, third_parties=third_parties,
    )  # fmt: skip
    if not checked.after:
        raise ValueError("lines: at least one line (the whole order after the correction, at full value)")
    _no_line_rates(checked.after, "lines", _SETTLEMENT_ONE_RATE)
    settled = _advances(advances, checked.currency)
    shown = corrected._shown()
    state = checked_totals(_remaining(checked.after, settled, checked.exchange_rate), "lines")
    model = checked.model(checked_totals(state - shown, "corrected"))
    model.fa.p_15_zk = shown.gross
    model.fa.faktura_zaliczkowa = [advance._reference() for advance in settled]
    previous = corrected.exchange_rate if isinstance(corrected.exchange_rate, Decimal) else None
    model.fa.fa_wiersz = checked.rows(previous)
    return Invoice(model)
