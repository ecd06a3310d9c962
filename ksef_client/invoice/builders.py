"""Builders for the FA(3) invoice kinds: VAT and correction (KOR). The parties every builder
takes (``Party``, ``Contact``, ``Address``, ``TaxpayerStatus``, ``ThirdParty``, ``ThirdPartyRole``;
defined in ``ksef_client.invoice.parties``) and ``CorrectedInvoice``, the reference to a corrected
invoice, and ``CorrectionEffect`` (``TypKorekty``) can be imported from here. The invoices of a
sale with advance payments (ZAL, KOR_ZAL, ROZ, KOR_ROZ and ``AdvanceInvoice``) are built in
``ksef_client.invoice.advances``, the corrections that change no line (of the parties' data, of
the invoice's number, a discount for a period: ``party_correction``, ``number_correction``,
``discount_correction`` and ``DiscountedItem``) in ``ksef_client.invoice.corrections``; they can be
imported from here too.

::

    from ksef_client.invoice import Line, Party, vat_invoice

    invoice = vat_invoice(
        number="FV/2026/001", issue_date=date(2026, 3, 2),
        seller=Party("ACME sp. z o.o.", "ul. Prosta 1, 00-001 Warszawa", nip="5265877635"),
        buyer=Party("Nabywca SA", "ul. Krzywa 2, 30-001 Kraków", nip="1111111111"),
        lines=[Line("Konsultacje", Decimal("2"), Decimal("150.00"), rate="23")],
    )
    invoice.to_xml()

Totals (``P_13_x``, ``P_14_x``, ``P_14_xW``, ``P_15``) are computed from the lines by
``ksef_client.invoice.totals``, whose docstring gives each rule and its source. Arguments are
checked before anything is built (``ValueError`` naming the argument); the result is an
``Invoice`` whose XML matches the XSD.

``issue_date`` (``P_1``) may not be later than today in Poland: KSeF refuses an invoice issued
after the day it receives it (faktury/weryfikacja-faktury.md: "Data wystawienia faktury (P_1) nie
może być późniejsza niż data przyjęcia dokumentu do systemu KSeF", invoice status 450). An invoice
built ahead, to be sent on or after its issue date, passes ``allow_future_issue_date=True``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import fields, replace
from decimal import Decimal

from ksef_client._invoice_models import fa3
from ksef_client.invoice import _shared
from ksef_client.invoice._shared import (
    CorrectedInvoice,
    CorrectionEffect,
    _annotations,
    _common,
    _Correction,
    _correction,
    _date,
    _exemption,
    _invoice,
    _rates_text,
    _row,
    _taxed,
)
from ksef_client.invoice.advances import (
    AdvanceInvoice,
    advance,
    advance_correction,
    settlement,
    settlement_correction,
)
from ksef_client.invoice.corrections import (
    DiscountedItem,
    discount_correction,
    number_correction,
    party_correction,
)
from ksef_client.invoice.model import Invoice
from ksef_client.invoice.parties import (
    Address,
    Contact,
    Party,
    TaxpayerStatus,
    ThirdParty,
    ThirdPartyRole,
    _third_parties,
)
from ksef_client.invoice.totals import Line, checked_exchange_rate, checked_totals, line_totals

# The schema's date bounds and KSeF's time zone, read here before the helpers moved to _shared.
FIRST_CREATION_DATE, WARSAW_ZONE = _shared.FIRST_CREATION_DATE, _shared.WARSAW_ZONE
FIRST_DATE, LAST_DATE = _shared.FIRST_DATE, _shared.LAST_DATE


def vat_invoice(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    lines: Sequence[Line],
    currency: str = "PLN",
    exchange_rate: Decimal | str | None = None,
    sale_date: dt.date | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A VAT invoice (``RodzajFaktury`` VAT) with totals computed from ``lines``.

    In a foreign ``currency``, ``exchange_rate`` (PLN per unit, up to 6 decimals; required when a
    taxed line has no rate of its own) is written on each taxed line (``KursWaluty``) and gives
    ``P_14_xW``. A line converted at another rate (art. 31a of the VAT Act: each supply at the rate
    of its tax point) carries it, ``Line(..., exchange_rate=...)``; when the taxed lines of a field
    have different rates, ``P_14_xW`` is the percent x the sum of each line's value x its rate,
    rounded once, as in the Ministry's ``FA_3_Przykład_21.xml`` (see ``totals``).
    ``sale_date`` (``P_6``) when it differs from the issue date; ``created`` (``DataWytworzeniaFa``) defaults to now.
    ``exemption``: with a ``"zw"`` line, the provision the exemption rests on (``P_19A``; required).
    An ``"oo"`` or ``"np II"`` line marks the invoice "odwrotne obciążenie" (``P_18``).
    ``issue_date`` (``P_1``) after today in Poland is refused, as KSeF refuses it on receipt,
    unless ``allow_future_issue_date`` (an invoice built ahead, sent on or after that day).

    ``split_payment`` marks the invoice "mechanizm podzielonej płatności" (``P_18A`` "1"). FA(3)
    requires it on an invoice whose amount due exceeds 15 000 zł (or its equivalent), for goods or
    services of annex 15 to the VAT Act supplied to a taxpayer; the builder cannot tell which goods
    are in annex 15, so it is yours to set, and it is not checked. ``third_parties``: the
    ``Podmiot3`` entries (``ThirdParty``, at most 100); a ``JST_RECIPIENT`` or
    ``VAT_GROUP_RECIPIENT`` among them marks the buyer ``JST`` / ``GV`` "1".
    """
    (lines,) = _common(number, issue_date, seller, buyer, currency, allow_future_issue_date, lines=lines)
    if not lines:
        raise ValueError("lines: at least one line")
    basis = _exemption(exemption, lines)
    thirds = _third_parties(third_parties, split_payment)
    rate = checked_exchange_rate(
        exchange_rate, currency, taxed=_taxed([line for line in lines if line.exchange_rate is None])
    )
    _check_rate_used(rate, lines)
    if sale_date is not None:
        _date(sale_date, "sale_date")
    model = _invoice(
        fa3.TrodzajFaktury.VAT, number=number, issue_date=issue_date, seller=seller, buyer=buyer,
        currency=currency, totals=checked_totals(line_totals(lines, rate), "lines"), created=created, date=sale_date,
        annotations=_annotations(lines, basis, split_payment), third_parties=thirds,
    )  # fmt: skip
    model.fa.fa_wiersz = [_row(i, line, rate) for i, line in enumerate(lines, 1)]
    return Invoice(model)


def correction(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: CorrectedInvoice,
    before: Sequence[Line],
    after: Sequence[Line],
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
    """A correction (``KOR``) of a VAT invoice, showing the corrected lines before and after, as
    separate numbered rows (``StanPrzed`` on the "before" rows). An advance invoice (``ZAL``) is
    corrected by ``advance_correction`` (``KOR_ZAL``), a settlement invoice (``ROZ``) by
    ``settlement_correction`` (``KOR_ROZ``): a ``corrected`` of ``kind="ROZ"`` is refused.

    Totals are the differences (art. 106j ust. 2 pkt 5: ``P_13_x``/``P_14_x`` of a correction are
    "kwota różnicy"): each field the correction touches (``P_13_1`` of a 23 % line: its 22 %
    lines too) is totalled over all of the corrected invoice's lines in it (``corrected.lines``),
    as the invoice taxed each rate's sum, once as invoiced and once with ``before`` replaced by
    ``after``. The tax of a rate's sum is not the
    sum of its lines' taxes, so the lines shown alone could be a grosz off: without
    ``corrected.lines`` (``CorrectedInvoice.of(invoice)`` reads them) the correction is refused,
    and each ``before`` line must be one of them.

    ``after`` may be empty (lines removed, or the whole invoice cancelled); ``before`` may be empty
    (lines added). ``exemption``, the reverse charge and ``allow_future_issue_date`` as in
    ``vat_invoice``, over the lines before and after; ``split_payment`` and ``third_parties`` as in
    ``vat_invoice`` (FA(3): a correction's fields are filled "wg stanu po korekcie"). ``reason``
    goes to ``PrzyczynaKorekty``; ``effect``, a ``CorrectionEffect`` or its number 1..3, to
    ``TypKorekty`` (when the correction takes effect in the VAT records: on the date the corrected
    invoice was recorded, on the correction's issue date, or another date; none written without it).

    The correction is in the corrected invoice's currency (``corrected.currency``): FA(3) fills the
    amounts "w walucie, w której wystawiono fakturę" and a correction's amounts "poprzez różnicę",
    so a ``currency`` that differs is refused. In a foreign currency the tax differences are shown
    in złoty too (``P_14_xW``, ``KursWaluty`` on the taxed rows), each line at its own rate:

    - a line of the corrected invoice, and each ``before`` row, at the rate the invoice converted
      it at: its ``exchange_rate`` in ``corrected.lines`` (an invoice whose rows have different
      ``KursWaluty``, read with ``CorrectedInvoice.of``), else ``corrected.exchange_rate``. A
      ``before`` line given without a rate is the corrected line it equals otherwise, at its rate
      (``ValueError`` when such lines of the invoice are at different rates: give it as
      ``corrected.lines`` has it), and a rate that is not known is refused, not guessed;
    - an ``after`` line at its own ``exchange_rate``, else ``exchange_rate`` (given; refused when it
      differs from the rate of a ``before`` line, as it once converted both states: put another
      rate on the lines after, ``Line(..., exchange_rate=...)``; refused too when it converts
      nothing), else the rate of the ``before`` line it replaces: the ``before`` line of its name
      and unit (those lines at one rate), else, for a line whose name and unit no ``before`` line
      has, ``before[i]`` for ``after[i]`` when both have as many lines; otherwise the rate the
      ``before`` lines share, otherwise the corrected invoice's one rate; ``ValueError`` naming
      the rates found when none applies to a taxed line.

    Both states are totalled with those rates (``totals``: ``P_14_x`` x the rate where a field's
    lines have one, else the percent x the sum of each line's value x its rate, rounded once), so
    ``P_14_xW`` is the tax in złoty after the correction less the tax in złoty the invoice showed
    (when it was computed so, as by ``vat_invoice``). The Ministry's ``FA_3_Przykład_21.xml``
    (rows at 4.4080, 4.5005 and 4.3250) with the first and third rows' prices cut by 10 % gives
    ``P_14_1W`` 12 908.88 - 13 768.14 = -859.26.
    """
    if not isinstance(corrected, CorrectedInvoice):
        raise ValueError("corrected: expected a CorrectedInvoice (CorrectedInvoice.of(invoice, ksef_number))")
    if corrected.kind == "ROZ":
        raise ValueError(
            f"corrected: {corrected.number!r} is a settlement invoice (ROZ); it is corrected by "
            "settlement_correction() (KOR_ROZ), whose amounts take the advances into account"
        )
    checked = _correction(
        fa3.TrodzajFaktury.KOR, corrected, {"before": before, "after": after}, one_rate=False, number=number,
        issue_date=issue_date, seller=seller, buyer=buyer, currency=currency, reason=reason, effect=effect,
        exchange_rate=exchange_rate, created=created, exemption=exemption,
        allow_future_issue_date=allow_future_issue_date, split_payment=split_payment, third_parties=third_parties,
    )  # fmt: skip
    if not checked.before and not checked.after:
        raise ValueError("before, after: a correction needs at least one line")
    default = corrected.exchange_rate if isinstance(corrected.exchange_rate, Decimal) else None
    invoice = [_at(line, default) for line in _corrected_lines(corrected)]
    left, before = _without(invoice, checked.before)
    if checked.exchange_rate is not None:
        _check_given_rate(checked.exchange_rate, before, checked.after)
    after = [_at(line, _after_rate(index, line, before, checked, invoice)) for index, line in enumerate(checked.after)]
    # The fields the correction touches, each with all of the invoice's lines totalled in it (23 %
    # and 22 % share P_13_1/P_14_1, and P_14_1W converts the field's tax as a whole).
    touched = {line.fields.net for line in [*before, *after]}
    invoiced = [line for line in invoice if line.fields.net in touched]
    corrected_state = [line for line in left if line.fields.net in touched] + after
    if checked.currency != "PLN":
        _check_rated(invoiced, before, after, invoice)
    totals = checked_totals(line_totals(corrected_state) - line_totals(invoiced), "before/after")
    model = checked.model(totals)
    model.fa.fa_wiersz = replace(checked, before=tuple(before), after=tuple(after)).rows(None)
    return Invoice(model)


def _at(line: Line, rate: Decimal | None) -> Line:
    """``line`` with ``rate`` as its exchange rate, unless it has one of its own."""
    return line if line.exchange_rate is not None or rate is None else replace(line, exchange_rate=rate)


def _after_rate(
    index: int, line: Line, before: Sequence[Line], checked: _Correction, invoice: Sequence[Line]
) -> Decimal | None:
    """The exchange rate of ``after[index]`` (see ``correction``): its own, the one given, that of
    the ``before`` line it replaces, the one the ``before`` lines share, the corrected invoice's
    one rate; ``None`` when none applies (``_check_rated`` refuses it if it is taxed)."""
    if line.exchange_rate is not None:
        return line.exchange_rate
    if checked.exchange_rate is not None:
        return checked.exchange_rate
    replaced = _replaced_rate(index, line, before, checked.after)
    if replaced is not None or any(_replaces(line, other) and other.exchange_rate is not None for other in before):
        return replaced
    for lines in (before, invoice):
        rates = {other.exchange_rate for other in lines if other.exchange_rate is not None}
        if len(rates) == 1:
            return rates.pop()
    return None


def _replaced_rate(index: int, line: Line, before: Sequence[Line], after: Sequence[Line]) -> Decimal | None:
    """The rate of the ``before`` line that ``after[index]`` (``line``) replaces: the line(s) of its
    name and unit when at one rate; the same goods at several rates (supplied at two tax points)
    paired in order when as many of them are after as before; else, for a renamed line, the line in
    its place when both lists are as long and no line after has that one's name. ``None``: none
    (ambiguous when a line of its name and unit is among ``before``)."""
    named = [other for other in before if _replaces(line, other)]
    rates = {other.exchange_rate for other in named if other.exchange_rate is not None}
    if len(rates) == 1:
        return rates.pop()
    if named:
        alike = [place for place, other in enumerate(after) if _replaces(other, line)]
        return named[alike.index(index)].exchange_rate if len(alike) == len(named) else None
    if len(before) != len(after) or any(_replaces(other, before[index]) for other in after):
        return None  # not one to one, or the line in its place is another after line's
    return before[index].exchange_rate


def _check_rate_used(rate: Decimal | None, lines: Sequence[Line]) -> None:
    """``ValueError`` for an invoice's ``exchange_rate`` that no taxed line takes (each has its
    own) and is none of theirs: the invoice would not show it anywhere."""
    taxed = [line for line in lines if line.fields.tax is not None]
    if rate is None or not taxed or any(line.exchange_rate in (None, rate) for line in taxed):
        return
    raise ValueError(
        f"exchange_rate={rate} converts nothing: every taxed line has an exchange_rate of its own "
        f"({', '.join(sorted({str(line.exchange_rate) for line in taxed}))}); leave it out"
    )


def _replaces(after: Line, before: Line) -> bool:
    """Whether ``after`` may be ``before`` changed: its name and unit kept (lines after listed in
    another order than those before must not swap rates)."""
    return after.name == before.name and after.unit == before.unit


def _check_given_rate(given: Decimal, before: Sequence[Line], after: Sequence[Line]) -> None:
    """``ValueError`` for an ``exchange_rate=`` of ``correction`` whose meaning changed or that
    converts nothing. It is the rate of the lines after the correction that have none of their
    own; the rows before stay at the invoice's rates. It once converted both states, so a rate
    other than the ``before`` lines' would now give another ``P_14_xW`` without a word: refused,
    the caller puts it on the lines meant (``Line(..., exchange_rate=...)``). Lines after that are
    all untaxed (zw, np) are not refused, as ``_check_rate_used`` lets an invoice of them be."""
    other = sorted({str(line.exchange_rate) for line in before if line.exchange_rate not in (None, given)})
    if other:
        raise ValueError(
            f"exchange_rate={given}: the rows before the correction keep the rate the invoice converted them at "
            f"({', '.join(other)}), and exchange_rate= converts only the lines after it that have no rate of their "
            "own (it once converted both states). Leave it out to convert each line after at the rate of the line it "
            "replaces; to convert lines after at another rate, give it on them: Line(..., exchange_rate=...)"
        )
    taxed = [line for line in after if line.fields.tax is not None]
    if taxed and not before and all(line.exchange_rate is not None for line in taxed):
        raise ValueError(
            f"exchange_rate={given} converts nothing: every taxed line after the correction has an exchange_rate "
            "of its own; leave it out"
        )


def _check_rated(
    invoiced: Sequence[Line], before: Sequence[Line], after: Sequence[Line], invoice: Sequence[Line]
) -> None:
    """``ValueError`` for a taxed line with no exchange rate in a foreign-currency correction, whose
    tax in złoty could then not be computed: one of the corrected invoice's (``invoiced``), or
    of ``after`` (the message names the rates of the corrected invoice's lines, ``invoice``)."""
    for line in invoiced:
        if line.exchange_rate is None and line.fields.tax is not None:
            raise ValueError(
                f"corrected: {line} has no exchange rate, and the correction restates its tax in złoty at the "
                "rate the corrected invoice converted it at: give it, CorrectedInvoice(..., exchange_rate=...) "
                "or, for lines at rates of their own, Line(..., exchange_rate=...) (exchange_rate= is the rate "
                "of the lines after the correction)"
            )
    for index, line in enumerate(after):
        if line.exchange_rate is None and line.fields.tax is not None:
            raise ValueError(
                f"after[{index}]: {line} needs an exchange rate: {_why_unrated(line, before, after, invoice)}; "
                "give it: Line(..., exchange_rate=...)"
            )


def _why_unrated(line: Line, before: Sequence[Line], after: Sequence[Line], invoice: Sequence[Line]) -> str:
    """Why ``_after_rate`` found no rate for ``line``, for ``_check_rated``'s message."""
    named = [other for other in before if _replaces(line, other)]
    if named:
        alike = sum(1 for other in after if _replaces(other, line))
        return (
            f"the before lines of its name and unit are at {_rates_text(named)}, {len(named)} of them, and the lines "
            f"after with that name and unit are {alike}: which rate each takes is not clear"
        )
    return (
        f"the corrected invoice's lines are at {_rates_text(invoice) or 'no known rate'}, no before line has its name "
        "and unit (nor does before[i] stand in its place, both lists as long), nor do the before lines share one rate"
    )


def _corrected_lines(corrected: CorrectedInvoice) -> Sequence[Line]:
    if corrected.lines is None:
        raise ValueError(
            "corrected: every line of the corrected invoice is needed (each rate's tax is computed on the sum of "
            "all its lines), and corrected.lines is None. CorrectedInvoice.of(invoice) reads them only from a VAT "
            "invoice whose every row has P_7, P_8B, a net unit price P_9A and P_12, and a P_11 of P_8B x P_9A "
            "rounded; for any other, give them: CorrectedInvoice(..., lines=[...])"
        )
    return corrected.lines


def _same_but_rate(line: Line, other: Line) -> bool:
    """Whether the two lines are equal but for their exchange rates."""
    return all(getattr(line, name) == getattr(other, name) for name in _LINE_FIELDS)


_LINE_FIELDS = tuple(field.name for field in fields(Line) if field.name != "exchange_rate")


def _without(lines: Sequence[Line], removed: Sequence[Line]) -> tuple[list[Line], list[Line]]:
    """``lines`` less each of ``removed`` (once each), and the lines taken: each ``removed`` line
    itself, or one without an exchange rate the line equal to it but for its rate (when all such
    lines are at one rate). ``ValueError`` for one that is not there."""
    left, taken = list(lines), []
    for line in removed:
        if line in left:
            match = line
        else:
            others = [other for other in left if _same_but_rate(line, other)]
            rates = _rates_text(others)
            if not others or line.exchange_rate is not None:
                at = f"; the corrected invoice has it at {rates}" if others else ""
                raise ValueError(
                    f"before: {line} is not a line of the corrected invoice (corrected.lines; names and units are "
                    f"compared with their whitespace collapsed, as the schema's xsd:token compares them){at}"
                )
            if len({other.exchange_rate for other in others}) > 1:
                raise ValueError(
                    f"before: {line} is a line of the corrected invoice at several exchange rates ({rates}): give "
                    "it as corrected.lines has it, with its exchange_rate"
                )
            match = others[0]
        left.remove(match)
        taken.append(match)
    return left, taken


__all__ = [
    "Address",
    "AdvanceInvoice",
    "Contact",
    "CorrectedInvoice",
    "CorrectionEffect",
    "DiscountedItem",
    "Party",
    "TaxpayerStatus",
    "ThirdParty",
    "ThirdPartyRole",
    "advance",
    "advance_correction",
    "correction",
    "discount_correction",
    "number_correction",
    "party_correction",
    "settlement",
    "settlement_correction",
    "vat_invoice",
]
