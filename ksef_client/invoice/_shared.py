"""What every FA(3) builder shares (``ksef_client.invoice.builders``: VAT, KOR;
``ksef_client.invoice.advances``: ZAL, KOR_ZAL, ROZ, KOR_ROZ; ``ksef_client.invoice.corrections``:
the KORs that change no line): the checks of the arguments they all take (``_common``: number,
issue date, parties, currency, lines), the references to corrected invoices (``CorrectedInvoice``,
importable from ``builders`` and ``ksef_client.invoice``) and the totals they show, the
``Faktura`` every builder writes (``_invoice``: header, parties, ``Fa``, annotations, rows), and
the arguments every correction takes (``_correction``; ``CorrectionEffect``, its ``TypKorekty``).
Private: the builders are the API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from decimal import Decimal
from enum import IntEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from xsdata.models.datatype import XmlDate, XmlDateTime

from ksef_client._invoice_models import fa3
from ksef_client.identifiers import validate_ksef_number
from ksef_client.invoice.model import Invoice
from ksef_client.invoice.parties import (
    Party,
    ThirdParty,
    ThirdPartyRole,
    _check_buyer,
    _seller_nip,
    _third_parties,
)
from ksef_client.invoice.totals import (
    FIELD_ORDER,
    RATES,
    Line,
    Totals,
    checked_decimal,
    checked_exchange_rate,
    checked_text,
    checked_totals,
    rate_of,
    tax_in_pln,
)

FIRST_CREATION_DATE = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)  # FA(3): DataWytworzeniaFa from 2025-09-01
WARSAW_ZONE = "Europe/Warsaw"  # KSeF's days (of issue, of receipt) are Poland's
_CURRENCIES = {member.value for member in fa3.TkodWaluty}
_NO, _YES = fa3.Twybor12.VALUE_2, fa3.Twybor1.VALUE_1


class CorrectionEffect(IntEnum):
    """FA(3) ``TTypKorekty``, a correction's ``TypKorekty``: "Typ skutku korekty w ewidencji dla
    podatku od towarów i usług", the date on which the correction takes effect in the VAT records.
    Every correction builder takes it as ``effect=`` (this enum or its number, 1..3), and writes
    no ``TypKorekty`` without it (the schema makes it optional)."""

    ORIGINAL_INVOICE_DATE = 1  # "Korekta skutkująca w dacie ujęcia faktury pierwotnej"
    CORRECTION_ISSUE_DATE = 2  # "Korekta skutkująca w dacie wystawienia faktury korygującej"
    OTHER_DATE = 3  # "... w dacie innej, w tym gdy dla różnych pozycji faktury korygującej daty te są różne"


def _effect(value: object) -> fa3.TtypKorekty | None:
    """``effect`` checked: ``None``, a ``CorrectionEffect`` or its number 1..3 (not ``True``, not
    ``"1"``, not another enum's member that equals one), as ``TypKorekty``."""
    if value is None:
        return None
    if isinstance(value, CorrectionEffect) or (type(value) is int and value in set(CorrectionEffect)):
        return fa3.TtypKorekty(int(value))
    raise ValueError(
        f"effect: {value!r} is not a CorrectionEffect (TypKorekty 1..3: ORIGINAL_INVOICE_DATE, "
        "CORRECTION_ISSUE_DATE, OTHER_DATE)"
    )


def _checked_reference(reference: _Reference, prefix: str) -> Decimal | None:
    """The number, issue date, KSeF number and currency of ``reference`` checked (each
    ``ValueError`` naming ``<prefix> <field>``); its exchange rate as a ``Decimal`` (or ``None``)."""
    checked_text(reference.number, f"{prefix} number", 256)
    _date(reference.issue_date, f"{prefix} issue_date")
    if reference.ksef_number is not None:
        validate_ksef_number(reference.ksef_number, f"{prefix} ksef_number")
    if reference.currency not in _CURRENCIES:
        raise ValueError(f"{prefix} currency: {reference.currency!r} is not an ISO 4217 code of the schema")
    return checked_exchange_rate(
        reference.exchange_rate, reference.currency, taxed=False, name=f"{prefix} exchange_rate"
    )


@dataclass(frozen=True)
class CorrectedInvoice:
    """The invoice a correction corrects: its number, issue date, KSeF number (``None``: issued
    outside KSeF, ``NrKSeFN``) and ``lines``, every line it has (``correction`` computes the tax
    differences from them: ``None`` when not known, and ``correction`` then refuses to guess).

    ``currency`` is the corrected invoice's (``KodWaluty``), which the correction keeps: its
    amounts are differences of the corrected invoice's. ``exchange_rate``, in a foreign currency,
    the rate the corrected invoice's tax was converted at (``KursWaluty``), for each of its lines
    that has no ``exchange_rate`` of its own: an invoice whose rows were converted at different
    rates (art. 31a of the VAT Act: each supply at the rate of its tax point) has them on its
    lines (``Line(..., exchange_rate=...)``), and ``exchange_rate`` ``None``. The correction
    restates each line at its rate and, by default, converts the line that replaces it at it too.

    Keyword-only, for a settlement invoice: ``kind`` is ``"VAT"`` (an invoice ``correction``
    corrects, by ``KOR``; the default) or ``"ROZ"`` (a settlement invoice, corrected by
    ``settlement_correction``, ``KOR_ROZ``). A ROZ's ``lines`` are the whole order it settled, and
    its ``totals`` are needed too: its ``P_13_x``/``P_14_x`` (and, in a foreign currency,
    ``P_14_xW``) by field name as it shows them (``{"p_13_1": "500.00", "p_14_1": "115.00"}``,
    as ``Invoice.totals()`` gives them), what remained after the advances; their sum is its
    ``P_15``. A ``P_14_xW`` left out is computed from ``exchange_rate``.
    """

    number: str
    issue_date: dt.date
    ksef_number: str | None = None
    lines: Sequence[Line] | None = field(default=None, repr=False)
    currency: str = "PLN"
    exchange_rate: Decimal | str | None = None
    _: KW_ONLY
    kind: str = "VAT"
    totals: Mapping[str, Decimal | str] | None = field(default=None, repr=False, hash=False)
    # The rates (P_12) of the rows of an invoice read by ``of`` whose rows are not ``Line``s (gross
    # prices, a discount P_10): what its annotations rest on (``known_rates``).
    # Keyword-only, carried by ``dataclasses.replace`` (adding the KSeF number once known keeps it).
    _row_rates: frozenset[str] | None = field(default=None, repr=False, hash=False)

    def __post_init__(self) -> None:
        rate = _checked_reference(self, "corrected")
        if self.lines is not None:
            lines = _all_lines(self.lines, "corrected lines", "the corrected invoice's Line objects, all of them")
            if self.currency == "PLN":
                _no_line_rates(lines, "corrected lines")
            object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "exchange_rate", rate)
        if self.kind not in {"VAT", "ROZ"}:
            raise ValueError(
                f"corrected kind: {self.kind!r}; 'VAT' (corrected by correction(), KOR) or 'ROZ' (a settlement "
                "invoice, corrected by settlement_correction(), KOR_ROZ). An advance invoice (ZAL) is an AdvanceInvoice"
            )
        if self.kind == "ROZ":
            if self.totals is None:
                raise ValueError(
                    "corrected totals: a settlement invoice's P_13_x/P_14_x as it shows them are needed (its "
                    "correction's amounts are differences of them): CorrectedInvoice(..., kind='ROZ', "
                    "totals={'p_13_1': ..., 'p_14_1': ...}), or CorrectedInvoice.of(invoice, ksef_number)"
                )
            shown = _shown_totals(self.totals, self.currency, rate, "corrected totals")
            checked_totals(_as_totals(shown), "corrected totals")  # their sum, P_15 (P_15ZK of its correction)
            object.__setattr__(self, "totals", shown)
        elif self.totals is not None:
            raise ValueError(
                "corrected totals: only a settlement invoice's (kind='ROZ') are used; correction() computes a VAT "
                "invoice's from its lines"
            )

    @classmethod
    def of(cls, invoice: Invoice, ksef_number: str | None = None) -> CorrectedInvoice:
        """The reference to an ``Invoice`` (with the KSeF number it got, if sent), with its
        currency, its exchange rate (the ``KursWaluty`` of its rows, when they all have the same)
        and its lines when they can be read as ``Line`` objects (a VAT or ROZ invoice's
        ``FaWiersz`` rows with quantity, net unit price, rate and a value ``P_11`` that they give).
        A foreign-currency invoice whose rows have different ``KursWaluty`` (the Ministry's
        ``FA_3_Przykład_21.xml``) gets no ``exchange_rate``: each line keeps its row's, as its
        ``exchange_rate``.

        A settlement invoice (``ROZ``) gets ``kind="ROZ"`` and its ``totals``, for
        ``settlement_correction``. An advance invoice (``ZAL``) is refused: it is an
        ``AdvanceInvoice`` (``AdvanceInvoice.of``), corrected by ``advance_correction``. So are
        the corrections of advance and settlement invoices (``KOR_ZAL``, ``KOR_ROZ``): the invoice
        corrected again is the ZAL or the ROZ, as the corrections left it.
        """
        if not isinstance(invoice, Invoice):
            raise ValueError(f"invoice: expected an Invoice, got {type(invoice).__name__}")
        refused = _NOT_CORRECTED_INVOICES.get(invoice.kind)
        if refused is not None:
            raise ValueError(f"invoice: {invoice.number!r} is {refused}")
        reference = cls(
            invoice.number, invoice.issue_date, ksef_number, _lines_of(invoice), invoice.currency, _rate_of(invoice)
        )
        if invoice.kind != "ROZ":
            if reference.lines is None:
                rows = invoice.model.fa.fa_wiersz
                if rows and all(row.p_12 is not None for row in rows):  # a row without P_12: not known
                    object.__setattr__(reference, "_row_rates", frozenset(rate_of(row.p_12) for row in rows))
            return reference
        _check_gross(invoice, "invoice")
        return replace(reference, kind="ROZ", totals=invoice.totals())

    def _shown(self) -> Totals:
        """A settlement invoice's totals as it shows them (``kind="ROZ"`` only)."""
        assert self.totals is not None  # checked by __post_init__ for a ROZ
        return _as_totals(self.totals)  # type: ignore[arg-type]  # Decimal values since __post_init__


# What CorrectedInvoice.of says of the kinds it refuses (FA(3) TRodzajFaktury: KOR_ZAL "Faktura
# korygująca fakturę dokumentującą otrzymanie zapłaty lub jej części przed dokonaniem czynności",
# KOR_ROZ "Faktura korygująca fakturę wystawioną w związku z art. 106f ust. 3 ustawy").
_NOT_CORRECTED_INVOICES = {
    "ZAL": (
        "an advance invoice (ZAL); it is corrected by advance_correction() (KOR_ZAL), which takes "
        "AdvanceInvoice.of(invoice, ksef_number)"
    ),
    "KOR_ZAL": (
        "a correction of an advance invoice (KOR_ZAL); to correct the advance invoice again, read it with its "
        "corrections: advance_correction(corrected=AdvanceInvoice.of(zal, ksef_number, corrections=[...]))"
    ),
    "KOR_ROZ": (
        "a correction of a settlement invoice (KOR_ROZ); to correct the settlement invoice again, give it as the "
        "correction left it: CorrectedInvoice(number, issue_date, ksef_number, lines=[...], kind='ROZ', "
        "totals={...})"
    ),
}


def _corrected_model(number: str, issued: dt.date, ksef_number: str | None) -> fa3.Faktura.Fa.DaneFaKorygowanej:
    """``DaneFaKorygowanej``: the corrected invoice's date, number and KSeF number (or ``NrKSeFN``)."""
    data = fa3.Faktura.Fa.DaneFaKorygowanej(
        data_wyst_fa_korygowanej=XmlDate.from_date(issued), nr_fa_korygowanej=number
    )
    if ksef_number is not None:
        data.nr_kse_f, data.nr_kse_ffa_korygowanej = _YES, ksef_number
    else:
        data.nr_kse_fn = _YES
    return data


# P_14_x -> its P_13_x, and P_14_xW -> its P_14_x (a tax needs its base, a tax in złoty its tax).
_BASE_OF = {f.tax: f.net for f in RATES.values() if f.tax is not None}
_TAX_OF = {f.tax_pln: f.tax for f in RATES.values() if f.tax is not None and f.tax_pln is not None}


def _shown_totals(values: object, currency: str, exchange_rate: Decimal | None, name: str) -> dict[str, Decimal]:
    """An invoice's ``P_13_x``/``P_14_x``/``P_14_xW`` as given by field name (``Invoice.totals()``'s
    keys), checked: known fields, amounts of 2 decimals, a tax with its base, ``P_14_xW`` only in a
    foreign currency and, left out there, computed from ``exchange_rate`` (``ValueError`` naming
    ``name`` when there is none)."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError(
            f"{name}: the invoice's P_13_x/P_14_x by field name, e.g. {{'p_13_1': '500.00', 'p_14_1': '115.00'}} "
            f"(as Invoice.totals() gives them), got {values!r}"
        )
    amounts: dict[str, Decimal] = {}
    for key, value in values.items():
        if key not in FIELD_ORDER:
            raise ValueError(f"{name}: {key!r} is not a P_13_x/P_14_x/P_14_xW field ({', '.join(FIELD_ORDER)})")
        amounts[key] = checked_decimal(value, f"{name} {key}", 2)
    for key in amounts:
        needed = _BASE_OF.get(key) or _TAX_OF.get(key)
        if needed is not None and needed not in amounts:
            raise ValueError(f"{name}: {key} without {needed}")
        if key in _TAX_OF and currency == "PLN":
            raise ValueError(f"{name}: {key} is the tax in złoty of a foreign-currency invoice; this one is in PLN")
    if currency != "PLN":
        missing = [tax for pln, tax in _TAX_OF.items() if tax in amounts and pln not in amounts]
        if missing and exchange_rate is None:
            raise ValueError(
                f"{name}: {missing[0]}_w, the tax in złoty, is missing and there is no exchange_rate to compute it"
            )
        computed = tax_in_pln(amounts, exchange_rate)
        amounts = {**computed, **amounts}
    return {key: amounts[key] for key in FIELD_ORDER if key in amounts}


def _as_totals(values: Mapping[str, Decimal]) -> Totals:
    """``Totals`` of fields by name: ``P_15`` is every ``P_13_x`` plus every ``P_14_x``."""
    gross = sum((value for key, value in values.items() if not key.endswith("_w")), Decimal("0.00"))
    return Totals(dict(values), gross)


def _check_gross(invoice: Invoice, name: str) -> None:
    """``ValueError`` unless ``P_15`` is the sum of the invoice's ``P_13_x`` and ``P_14_x`` (as the
    builders write it; a settlement or correction is computed from those fields)."""
    total = _as_totals(invoice.totals()).gross
    if total != invoice.gross:
        raise ValueError(
            f"{name}: {invoice.number!r} shows P_15 {invoice.gross}, and its P_13_x and P_14_x add up to {total}; "
            "give the reference by hand with the amounts that apply"
        )


def known_rates(corrected: CorrectedInvoice) -> tuple[frozenset[str], str] | None:
    """The rates (``P_12``) of the corrected invoice's lines, and where they were read: its
    ``lines``, or, read by ``CorrectedInvoice.of`` from rows that are no ``Line``, their ``P_12``;
    ``None`` when not known."""
    if corrected.lines is not None:
        return frozenset(line.rate for line in corrected.lines), "the corrected invoice's lines (corrected.lines)"
    if corrected._row_rates is not None:
        return corrected._row_rates, "the corrected invoice's rows (their P_12, read by CorrectedInvoice.of)"
    return None


def _lines_of(invoice: Invoice) -> tuple[Line, ...] | None:
    """An invoice's rows as ``Line`` objects; ``None`` if one cannot be read back exactly (or the
    invoice is itself a correction, whose rows are differences)."""
    rows = invoice.model.fa.fa_wiersz
    if not rows or invoice.kind not in {"VAT", "ROZ"}:  # a ROZ's rows: "pełne wartości zamówienia"
        return None
    if any(row.stan_przed is not None for row in rows):
        return None
    per_row = invoice.currency != "PLN" and _rate_of(invoice) is None  # each row keeps its KursWaluty
    lines = [
        _line_of(row.p_7, row.p_8_a, row.p_8_b, row.p_9_a, row.p_12, row.p_11, row.kurs_waluty if per_row else None)
        for row in rows
    ]
    return None if None in lines else tuple(line for line in lines if line is not None)


def _line_of(
    name: str | None,
    unit: str | None,
    quantity: Decimal | None,
    price: Decimal | None,
    rate: object,
    value: object,
    exchange_rate: Decimal | None = None,
) -> Line | None:
    """A row (``FaWiersz``, ``ZamowienieWiersz``) as a ``Line``: its name, unit, quantity, net unit
    price, rate (and ``exchange_rate``, a ``FaWiersz``'s ``KursWaluty`` when it is the line's
    own); ``None`` if it has no quantity, price or rate, or they do not give its value (``P_11``,
    ``P_11NettoZ``), as a row of gross prices or of differences does not."""
    if quantity is None or price is None or rate is None:
        return None
    try:
        line = Line(name or "", quantity, price, rate_of(rate), unit=unit or "szt.", exchange_rate=exchange_rate)
    except ValueError:
        return None
    return line if line.net == value else None


def _rate_of(invoice: Invoice) -> Decimal | None:
    """The exchange rate of a foreign-currency invoice's rows (``KursWaluty``), if one for all."""
    if invoice.currency == "PLN":
        return None
    rates = {row.kurs_waluty for row in invoice.model.fa.fa_wiersz if row.kurs_waluty is not None}
    return rates.pop() if len(rates) == 1 else None


def _rates_text(lines: Sequence[Line]) -> str:
    """The exchange rates of ``lines`` (their own), each once, in order: ``"4.4080, 4.5005"``."""
    return ", ".join(dict.fromkeys(str(line.exchange_rate) for line in lines if line.exchange_rate is not None))


def _no_line_rates(lines: Sequence[Line], name: str, why: str = "") -> None:
    """``ValueError`` naming ``name[i]`` for a line with an ``exchange_rate`` of its own: in an
    invoice in PLN (``why`` empty), or where the builder converts at one rate (``why`` says so)."""
    for index, line in enumerate(lines):
        if line.exchange_rate is not None:
            reason = why or "only for an invoice in a foreign currency (this one is in PLN)"
            raise ValueError(f"{name}[{index}]: exchange_rate {line.exchange_rate}: {reason}")


# TDataT, the type of every date the builders write (P_1, P_6, DataWystFaKorygowanej): "Data
# zdarzenia w okresie od 2006-01-01 do 2050-01-01" (FA(3) XSD, minInclusive/maxInclusive).
FIRST_DATE, LAST_DATE = dt.date(2006, 1, 1), dt.date(2050, 1, 1)


def _date(value: object, name: str) -> dt.date:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ValueError(f"{name}: expected a datetime.date, got {value!r}")
    if not FIRST_DATE <= value <= LAST_DATE:
        raise ValueError(f"{name}: {value} is outside the schema's range {FIRST_DATE}..{LAST_DATE}")
    return value


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _issue_date(value: object, allow_future: bool) -> None:
    """``issue_date`` checked: a date in the schema's range, and (unless ``allow_future``) not after
    today in Poland, the earliest day KSeF could receive the invoice: it refuses one whose ``P_1``
    is later than the day of receipt (faktury/weryfikacja-faktury.md, "Walidacja dat", 450)."""
    issued = _date(value, "issue_date")
    # Looked up here, not at import: a machine without a time-zone database (a minimal container)
    # still imports the builders, and only this check needs the zone.
    today = _utc_now().astimezone(ZoneInfo(WARSAW_ZONE)).date()
    if issued > today and not allow_future:
        raise ValueError(
            f"issue_date: {issued} is after today in Poland ({today}); KSeF refuses an invoice issued after "
            "the day it receives it (450). Building it ahead, to send on or after that day? "
            "Pass allow_future_issue_date=True"
        )


def _created(created: dt.datetime | None) -> XmlDateTime:
    moment = created or _utc_now()
    if moment.tzinfo is None:
        raise ValueError("created: a naive datetime; give one with a time zone")
    moment = moment.astimezone(dt.UTC).replace(microsecond=0)
    if moment < FIRST_CREATION_DATE:
        raise ValueError(f"created: {moment} is before 2025-09-01, when FA(3) started")
    return XmlDateTime.from_datetime(moment)


_MAX_ROWS = 10_000  # FaWiersz and ZamowienieWiersz maxOccurs="10000"


def _common(
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    currency: str,
    allow_future_issue_date: bool,
    **lines: object,
) -> tuple[tuple[Line, ...], ...]:
    """The arguments every builder takes checked, the parties before the lines; ``lines``: each
    lines argument by its name (``lines=lines``, ``before=..., after=...``), returned checked
    (``_line_sequence``) in that order, at most 10 000 rows together."""
    checked_text(number, "number", 256)
    _issue_date(issue_date, allow_future_issue_date)
    if not isinstance(seller, Party) or not isinstance(buyer, Party):
        raise ValueError("seller, buyer: expected Party objects")
    _seller_nip(seller)
    _check_buyer(buyer)
    if currency not in _CURRENCIES:
        raise ValueError(f"currency: {currency!r} is not an ISO 4217 code of the schema")
    checked = tuple(_line_sequence(value, name) for name, value in lines.items())
    if currency == "PLN":
        for name, sequence in zip(lines, checked, strict=True):
            _no_line_rates(sequence, name)
    if sum(map(len, checked)) > _MAX_ROWS:
        raise ValueError(f"{'/'.join(lines)}: at most {_MAX_ROWS} lines")
    return checked


def _line_sequence(value: object, name: str) -> tuple[Line, ...]:
    """A lines argument checked: a sequence of ``Line`` objects (``ValueError`` naming ``name`` for
    a single ``Line``, ``None``, a string or anything else that is not a sequence, and for an item
    that is not a ``Line``)."""
    if isinstance(value, Line | str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{name}: expected a sequence of Line objects, got {type(value).__name__}")
    if not all(isinstance(line, Line) for line in value):
        raise ValueError(f"{name}: expected Line objects")
    return tuple(value)


def _all_lines(value: object, name: str, expected: str) -> tuple[Line, ...]:
    """A reference's lines (a corrected invoice's, an advance invoice's order) checked: at least
    one (``ValueError`` naming ``name``, saying what is ``expected``)."""
    lines = _line_sequence(value, name)
    if not lines:
        raise ValueError(f"{name}: {expected}")
    return lines


def _taxed(lines: Sequence[Line]) -> bool:
    return any(line.fields.tax is not None for line in lines)


def _row(number: int, line: Line, exchange_rate: Decimal | None, *, before: bool = False) -> fa3.Faktura.Fa.FaWiersz:
    """``FaWiersz`` of ``line``; ``KursWaluty`` on a taxed line, its own exchange rate or else
    ``exchange_rate`` (the invoice's)."""
    if line.exchange_rate is not None:
        exchange_rate = line.exchange_rate
    return fa3.Faktura.Fa.FaWiersz(
        nr_wiersza_fa=number,
        p_7=line.name,
        p_8_a=line.unit,
        p_8_b=line.quantity,
        p_9_a=line.unit_price,
        p_11=line.net,
        p_12=fa3.TstawkaPodatku(line.rate),
        kurs_waluty=exchange_rate if exchange_rate is not None and line.fields.tax is not None else None,
        stan_przed=_YES if before else None,
    )


# Rates at which the buyer accounts for the tax: FA(3)'s P_18 ("odwrotne obciążenie") is then "1".
_REVERSE_CHARGE = frozenset({"oo", "np II"})


def _annotations(lines: Sequence[Line], exemption: str | None, split_payment: bool = False) -> fa3.Faktura.Fa.Adnotacje:
    """``Adnotacje`` as the lines require: P_18 "1" (reverse charge) with an ``oo`` or ``np II``
    line; with a ``zw`` line P_19 "1" and ``exemption`` (the provision the exemption rests on) in
    P_19A, else P_19N; P_18A "1" with ``split_payment`` ("mechanizm podzielonej płatności");
    no cash accounting, self-billing, new means of transport, simplified triangulation or
    margin scheme."""
    return _rate_annotations({line.rate for line in lines}, exemption, split_payment)


def _rate_annotations(
    rates: Collection[str], exemption: str | None, split_payment: bool = False
) -> fa3.Faktura.Fa.Adnotacje:
    """``Adnotacje`` as ``_annotations`` writes them, for an invoice with amounts at ``rates``
    (``P_12`` values; a discount correction has amounts and no lines)."""
    annotations = fa3.Faktura.Fa.Adnotacje
    rates = set(rates)
    if "zw" in rates:
        zwolnienie = annotations.Zwolnienie(p_19=_YES, p_19_a=exemption)
    else:
        zwolnienie = annotations.Zwolnienie(p_19_n=_YES)
    return annotations(
        p_16=_NO,
        p_17=_NO,
        p_18=fa3.Twybor12.VALUE_1 if rates & _REVERSE_CHARGE else _NO,
        p_18_a=fa3.Twybor12.VALUE_1 if split_payment else _NO,
        zwolnienie=zwolnienie,
        nowe_srodki_transportu=annotations.NoweSrodkiTransportu(p_22_n=_YES),
        p_23=_NO,
        pmarzy=annotations.Pmarzy(p_pmarzy_n=_YES),
    )


def _exemption(exemption: str | None, lines: Sequence[Line]) -> str | None:
    """``exemption`` checked: required with a ``zw`` line (FA(3): "Jeśli pole P_19 równa się 1 -
    należy wskazać przepis ustawy..."), refused without one (it would be written nowhere)."""
    return _rate_exemption(exemption, {line.rate for line in lines})


def _rate_exemption(exemption: str | None, rates: Collection[str]) -> str | None:
    """``exemption`` checked as ``_exemption`` checks it, for amounts at ``rates``."""
    exempt = "zw" in rates
    if exemption is None:
        if exempt:
            raise ValueError(
                'exemption: a "zw" line needs the provision the exemption rests on, e.g. '
                'exemption="art. 43 ust. 1 pkt 19 ustawy o VAT" (written to P_19A)'
            )
        return None
    if not exempt:
        raise ValueError('exemption: only an invoice with a "zw" line (or amount) is exempt')
    return checked_text(exemption, "exemption", 256)


def _invoice(
    kind: fa3.TrodzajFaktury,
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    currency: str,
    totals: Totals,
    created: dt.datetime | None,
    date: dt.date | None = None,
    annotations: fa3.Faktura.Fa.Adnotacje,
    third_parties: Sequence[ThirdParty] = (),
) -> fa3.Faktura:
    header = fa3.Tnaglowek(
        kod_formularza=fa3.Tnaglowek.KodFormularza(value=fa3.TkodFormularza.FA),
        wariant_formularza=fa3.TnaglowekWariantFormularza.VALUE_3,
        data_wytworzenia_fa=_created(created),
        system_info="ksef_client",
    )
    body = fa3.Faktura.Fa(
        kod_waluty=fa3.TkodWaluty(currency),
        p_1=XmlDate.from_date(issue_date),
        p_2=number,
        p_6=XmlDate.from_date(date) if date is not None and date != issue_date else None,
        p_15=totals.gross,
        adnotacje=annotations,
        rodzaj_faktury=kind,
        **totals.fields,  # type: ignore[arg-type]  # P_13_x / P_14_x / P_14_xW by name
    )
    roles = {third.role for third in third_parties}
    buyer_model = buyer._as_buyer(
        jst=ThirdPartyRole.JST_RECIPIENT in roles, gv=ThirdPartyRole.VAT_GROUP_RECIPIENT in roles
    )
    return fa3.Faktura(
        naglowek=header,
        podmiot1=seller._as_seller(),
        podmiot2=buyer_model,
        podmiot3=[third._model() for third in third_parties],
        fa=body,
    )


class _Reference(Protocol):
    """What a correction takes of the invoice it corrects (a ``CorrectedInvoice``, an ``AdvanceInvoice``)."""

    @property
    def number(self) -> str: ...
    @property
    def issue_date(self) -> dt.date: ...
    @property
    def ksef_number(self) -> str | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def exchange_rate(self) -> Decimal | str | None: ...


@dataclass(frozen=True)
class _Correction:
    """A correction (``KOR``, ``KOR_ZAL``, ``KOR_ROZ``) as the arguments every correction builder
    takes leave it, checked by ``_correction``: its lines before and after, its exchange rate
    (of a ``KOR``: the one given, if any; its lines' are resolved by ``correction``), and what
    ``model`` writes besides the amounts."""

    kind: fa3.TrodzajFaktury
    corrected: _Reference
    before: tuple[Line, ...]
    after: tuple[Line, ...]
    exchange_rate: Decimal | None
    number: str
    issue_date: dt.date
    seller: Party
    buyer: Party
    currency: str
    reason: str | None
    effect: fa3.TtypKorekty | None
    created: dt.datetime | None
    exemption: str | None
    split_payment: bool
    third_parties: list[ThirdParty]

    def model(self, totals: Totals) -> fa3.Faktura:
        """The correction with the differences ``totals``, ``PrzyczynaKorekty``, ``TypKorekty`` and
        ``DaneFaKorygowanej``; the annotations are over the lines before and after (FA(3): a
        correction's are filled "wg stanu po korekcie", and a line removed still counts)."""
        model = _invoice(
            self.kind, number=self.number, issue_date=self.issue_date, seller=self.seller, buyer=self.buyer,
            currency=self.currency, totals=totals, created=self.created, third_parties=self.third_parties,
            annotations=_annotations([*self.before, *self.after], self.exemption, self.split_payment),
        )  # fmt: skip
        corrected = self.corrected
        model.fa.przyczyna_korekty, model.fa.typ_korekty = self.reason, self.effect
        model.fa.dane_fa_korygowanej = [_corrected_model(corrected.number, corrected.issue_date, corrected.ksef_number)]
        return model

    def rows(self, rate_before: Decimal | None) -> list[fa3.Faktura.Fa.FaWiersz]:
        """``FaWiersz``: the lines before the correction (``StanPrzed``, at ``rate_before``), then
        after it (at the correction's rate), as separate numbered rows."""
        rows = [_row(i, line, rate_before, before=True) for i, line in enumerate(self.before, 1)]
        return rows + [_row(i, line, self.exchange_rate) for i, line in enumerate(self.after, len(rows) + 1)]


def _correction(
    kind: fa3.TrodzajFaktury,
    corrected: _Reference,
    lines: Mapping[str, object],
    *,
    one_rate: bool,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    currency: str | None,
    reason: str | None,
    effect: CorrectionEffect | int | None,
    exchange_rate: Decimal | str | None,
    created: dt.datetime | None,
    exemption: str | None,
    allow_future_issue_date: bool,
    split_payment: bool,
    third_parties: Sequence[ThirdParty],
) -> _Correction:
    """The arguments every correction builder takes, checked (``ValueError`` naming each):
    ``lines``, the lines before the correction and those after, each by its argument's name; the
    currency (the corrected invoice's, ``_correction_currency``); the exchange rate: with
    ``one_rate`` (``KOR_ZAL``, ``KOR_ROZ``, which convert the state after the correction at one
    rate) the one given or else the corrected invoice's, required when the lines after it are
    taxed; without (``KOR``, whose lines each keep their rate) only the one given, checked; the
    reason; and what every builder checks (``_common``, ``_exemption`` over the lines before and
    after, ``_third_parties``)."""
    currency = _correction_currency(currency, corrected.currency, type(corrected).__name__)
    before, after = _common(number, issue_date, seller, buyer, currency, allow_future_issue_date, **lines)
    basis = _exemption(exemption, [*before, *after])
    thirds = _third_parties(third_parties, split_payment)
    typ = _correction_notes(reason, effect)
    if one_rate:
        rate = corrected.exchange_rate if exchange_rate is None else exchange_rate
        rate = checked_exchange_rate(rate, currency, taxed=_taxed(after))
    else:
        rate = checked_exchange_rate(exchange_rate, currency, taxed=False)
    return _Correction(
        kind=kind, corrected=corrected, before=before, after=after, exchange_rate=rate, number=number,
        issue_date=issue_date, seller=seller, buyer=buyer, currency=currency, reason=reason, effect=typ,
        created=created, exemption=basis, split_payment=split_payment, third_parties=thirds,
    )  # fmt: skip


def _correction_notes(reason: object, effect: object) -> fa3.TtypKorekty | None:
    """What every correction may say of itself, checked: ``reason`` (``PrzyczynaKorekty``, 1..256
    characters) and ``effect`` (``TypKorekty``, ``_effect``), returned as ``TypKorekty``."""
    if reason is not None:
        checked_text(reason, "reason", 256)
    return _effect(effect)


def _correction_currency(currency: str | None, corrected: str, reference: str) -> str:
    """The correction's currency: the corrected invoice's, ``corrected`` (FA(3), ``Fa``: "Pola
    dotyczące wartości sprzedaży i podatku wypełnia się w walucie, w której wystawiono fakturę ... W
    przypadku wystawienia faktury korygującej ... pola dotyczące podstaw opodatkowania, podatku oraz
    należności ogółem wypełnia się poprzez różnicę"): a difference of EUR amounts is in EUR."""
    if currency is None or currency == corrected:
        return corrected
    raise ValueError(
        f"currency: {currency!r}, but the corrected invoice is in {corrected} (corrected.currency); a "
        "correction's amounts are differences of the corrected invoice's, in its currency. A foreign-currency "
        f"invoice read with {reference}.of keeps its currency; else {reference}(..., currency={currency!r})"
    )
