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
from decimal import Decimal

from ksef_client._invoice_models import fa3
from ksef_client.invoice import _shared
from ksef_client.invoice._shared import (
    CorrectedInvoice,
    CorrectionEffect,
    _annotations,
    _common,
    _correction,
    _date,
    _exemption,
    _invoice,
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
    line is taxed) is written on each taxed line (``KursWaluty``) and gives ``P_14_xW``.
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
    rate = checked_exchange_rate(exchange_rate, currency, taxed=_taxed(lines))
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
    "kwota różnicy"): each rate the correction touches is totalled over all of the corrected
    invoice's lines at it (``corrected.lines``), as the invoice taxed the rate's sum, once as
    invoiced and once with ``before`` replaced by ``after``. The tax of a rate's sum is not the
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
    in złoty too (``P_14_xW``, ``KursWaluty`` on the taxed rows), at ``exchange_rate``, by default
    the corrected invoice's (``corrected.exchange_rate``): both states are converted at the same
    rate, so ``P_14_xW`` is the change of the tax the invoice showed in złoty.
    """
    if not isinstance(corrected, CorrectedInvoice):
        raise ValueError("corrected: expected a CorrectedInvoice (CorrectedInvoice.of(invoice, ksef_number))")
    if corrected.kind == "ROZ":
        raise ValueError(
            f"corrected: {corrected.number!r} is a settlement invoice (ROZ); it is corrected by "
            "settlement_correction() (KOR_ROZ), whose amounts take the advances into account"
        )
    checked = _correction(
        fa3.TrodzajFaktury.KOR, corrected, {"before": before, "after": after}, rate_before=True, number=number,
        issue_date=issue_date, seller=seller, buyer=buyer, currency=currency, reason=reason, effect=effect,
        exchange_rate=exchange_rate, created=created, exemption=exemption,
        allow_future_issue_date=allow_future_issue_date, split_payment=split_payment, third_parties=third_parties,
    )  # fmt: skip
    before, after, rate = checked.before, checked.after, checked.exchange_rate
    if not before and not after:
        raise ValueError("before, after: a correction needs at least one line")
    touched = {line.rate for line in [*before, *after]}
    invoiced = [line for line in _corrected_lines(corrected, before) if line.rate in touched]
    corrected_state = _without(invoiced, before) + list(after)
    totals = checked_totals(line_totals(corrected_state, rate) - line_totals(invoiced, rate), "before/after")
    model = checked.model(totals)
    model.fa.fa_wiersz = checked.rows(rate)
    return Invoice(model)


def _corrected_lines(corrected: CorrectedInvoice, before: Sequence[Line]) -> Sequence[Line]:
    if corrected.lines is None:
        raise ValueError(
            "corrected: every line of the corrected invoice is needed (each rate's tax is computed on the sum of "
            "all its lines), and corrected.lines is None. CorrectedInvoice.of(invoice) reads them only from a VAT "
            "invoice whose every row has P_7, P_8B, a net unit price P_9A and P_12, and a P_11 of P_8B x P_9A "
            "rounded; for any other, give them: CorrectedInvoice(..., lines=[...])"
        )
    _without(corrected.lines, before)  # each "before" line is one of them
    return corrected.lines


def _without(lines: Sequence[Line], removed: Sequence[Line]) -> list[Line]:
    """``lines`` less each of ``removed`` (once each); ``ValueError`` for one that is not there."""
    left = list(lines)
    for line in removed:
        if line not in left:
            raise ValueError(
                f"before: {line} is not a line of the corrected invoice (corrected.lines; names and units are "
                "compared with their whitespace collapsed, as the schema's xsd:token compares them)"
            )
        left.remove(line)
    return left


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
