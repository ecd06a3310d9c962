"""Invoice lines and the totals of an FA(3) invoice (``P_13_x``, ``P_14_x``, ``P_14_xW``, ``P_15``).

Pure arithmetic on ``Decimal``, no XML. The rules, and where they come from:

- **Rounding** (art. 106e ust. 11 of the VAT Act, applied to advance invoices by art. 106f ust. 2):
  amounts on an invoice are rounded to full grosze, a remainder under half a grosz dropped, half a
  grosz or more rounded up: ``ROUND_HALF_UP`` to 2 places (negative amounts symmetrically).
- **Line value** ``P_11`` = quantity ``P_8B`` x net unit price ``P_9A``, rounded as above.
- **Net per rate** ``P_13_x`` = sum of the rounded line values of that rate (FA(3) XSD: "Suma
  wartości sprzedaży netto objętej stawką ...").
- **Tax per rate** ``P_14_x`` = the tax "od sumy wartości sprzedaży netto" (FA(3) XSD): the rate
  applied once to the rate's net sum, then rounded, not the sum of per-line taxes. Where a field
  covers two rates (``P_13_1``: 23 % or 22 %; ``P_13_2``: 8 % or 7 %; ``P_13_4``: 4 % or 3 %), each
  rate's tax is computed and rounded, then added.
- **Gross** ``P_15`` = every ``P_13_x`` plus every ``P_14_x``, in the invoice's currency.
- **Foreign currency** ``P_14_xW``: the tax "przeliczona zgodnie z przepisami działu VI w związku
  z art. 106e ust. 11" (FA(3) XSD). Dział VI (art. 31a) converts the amounts a tax base is made of
  at the rate of each supply's tax point, so an invoice's rows can each carry their own rate
  (``KursWaluty``, "Kurs waluty stosowany do wyliczenia kwoty podatku", on ``FaWiersz``; a
  ``Line``'s ``exchange_rate``). For each field, over the taxed lines totalled in it:

  - *one exchange rate* for them all: ``P_14_x`` x the rate, rounded as above. The Act does not say
    whether the currency tax or the converted net is multiplied; converting the tax amount shown
    is this module's choice (the Ministry's ``Fa_3_Przykład_20.xml``, three rows at 4.5005, shows
    3 118.80 EUR x 4.5005 = 14 036.16, as either way gives it).
  - *several exchange rates*: each line's value converted at its own rate and taxed, the rate's
    percent x the sum of ``P_11`` x rate, rounded once (not line by line). That is the Ministry's
    ``FA_3_Przykład_21.xml``: rows of 4 060, 5 000 and 4 500 EUR at 23 % converted at 4.4080,
    4.5005 and 4.3250 give ``P_14_1W`` 23 % x 59 861.48 = 13 768.14 (rounded row by row it would
    be 13 768.15; no single rate gives it).

  The two agree whenever the currency tax needs no rounding (as in both samples); otherwise they
  differ by at most the rounding of ``P_14_x`` (half a hundredth of the currency) times the rate,
  and the final rounding: up to 3 grosze at a rate near 4.5.
- **Advance invoices** (art. 106f ust. 1 pkt 3): tax = received payment x rate / (100 + rate),
  rounded; net = payment - tax. A payment towards an order with several rates is split between
  the rates in proportion to the order's gross value at each rate, to the grosz by the largest
  remainder: each rate's exact share rounded down, and the grosze left over one each to the rates
  whose shares lost the most in that rounding (on a tie, the rate first in ``RATES``). The parts
  add up to the payment exactly, and each is its exact share rounded down or up, never below 0.
  The Act gives no rule for the split; the Ministry's sample invoices split a payment so
  (``FA_3_Przykład_11.xml``: 20 000 zł towards an order of 369 000 zł gross at 8 % and 6 150 zł
  at 23 % is 327.87 at 23 %, 19 672.13 at 8 %; ``_12.xml``: 30 000 zł is 491.80 and 29 508.20).
  An order with a rate whose lines add up to less than 0 gross takes no advance (``ValueError``):
  its share would be negative.
- **Corrections** (art. 106j ust. 2 pkt 5): each field is the difference between the totals after
  and before the correction, each state totalled by the rules above over all of the corrected
  invoice's lines in the fields the correction touches (``builders.correction``). In a foreign
  currency each line keeps its exchange rate in both states (the rows before the correction the
  rate the invoice converted them at; the rows after it their own, by default the rate of the row
  they replace), so ``P_14_xW`` is the tax in złoty after less the tax in złoty the invoice showed.
- **Settlement invoices** (``ROZ``, art. 106f ust. 3: "sumę wartości towarów lub usług pomniejsza
  się o wartość otrzymanych części zapłaty, a kwotę podatku pomniejsza się o sumę kwot podatku
  wykazanego w fakturach dokumentujących otrzymanie części zapłaty"): each ``P_13_x``/``P_14_x``
  is the order's (its lines totalled as above) less the sum of that field on the advance invoices
  settled, as they show it; ``P_15`` is the order's gross less the advances' payments (FA(3) XSD,
  ``P_15``: "kwota pozostała do zapłaty"). The rows show the whole order (XSD, ``FaWiersz``:
  "należy wykazać pełne wartości zamówienia lub umowy"). The Ministry's sample invoice
  ``Fa_3_Przykład_14.xml`` (a ROZ after a 30 000 zł advance on a 337 635 zł order at 8 % and 23 %)
  has exactly these amounts: 4 500.00 - 399.84 = 4 100.16 at 23 %, 307 500.00 - 27 322.41 =
  280 177.59 at 8 %, 337 635 - 30 000 = 307 635 due.
- **Tax in złoty on a settlement** (``P_14_xW`` of a ROZ): the remaining ``P_14_x`` x the
  settlement's exchange rate, rounded. Each advance's tax was converted at its own rate
  (``KursWalutyZ``) on its own invoice, and the ROZ shows what remains; no source says so in as
  many words, and no official foreign-currency ROZ was found: this is this module's reading.
- **Corrections of advance invoices** (``KOR_ZAL``): the advance totals after the correction (the
  rule above, over the order as corrected and the payment as corrected) less the advance invoice's
  as it showed them; ``P_15`` the change of the payment. The Ministry's ``FA_3_Przykład_11.xml``
  (a 20 000 zł advance, the flat's rate corrected from 23 % to 8 %) and ``FA_3_Przykład_12.xml``
  (the advance corrected to 30 000 zł) have exactly these amounts, the payment split between the
  rates in proportion to the order's gross value at each, as ``split_payment`` does.
- **Discounts for a period** (art. 106j ust. 3, ``corrections.discount_correction``): the discount
  granted at each rate is a gross amount (what the buyer pays less); its tax is gross x rate /
  (100 + rate), rounded, as an advance's, and its net the rest, so net and tax add up to the
  discount exactly; the correction shows each negated (``ROUND_HALF_UP`` is symmetric, so the
  rounding of a discount does not depend on its sign). The Ministry's ``FA_3_Przykład_6.xml`` and
  ``_7.xml`` (a 50 000 zł discount at 23 %) show ``P_13_1`` -40 650.41, ``P_14_1`` -9 349.59 and
  ``P_15`` -50 000: 50 000 x 23 / 123 = 9 349.593... -> 9 349.59, 50 000 - 9 349.59 = 40 650.41. A
  discount agreed as a net amount is passed as its gross (the net plus its tax at the rate,
  rounded): the split gives that net back, to the grosz, at every rate of ``RATES``.
- **Corrections of settlement invoices** (``KOR_ROZ``): the settlement totals after the correction
  less the settlement invoice's as it showed them (``Fa_3_Przykład_18.xml``: 4 100.16 - 3 998.40 =
  101.76 at 23 %, and so on, 7 635 due more).

Only the rates of ``P_12`` are handled: the OSS procedure (``P_13_5``/``P_14_5``) and the margin
scheme (``P_13_11``) are not computed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ksef_client.schemas import _DISCOURAGED

GROSZ = Decimal("0.01")
MAX_AMOUNT = Decimal("1E16")  # TKwotowy, TIlosci: at most 16 digits before the point
MAX_UNIT_PRICE = Decimal("1E14")  # TKwotowy2 (P_9A): "-?([1-9]\d{0,13}|0)(\.\d{1,8})?", 14 digits


def round_amount(value: Decimal) -> Decimal:
    """Round to full grosze, half a grosz up (art. 106e ust. 11): 0.005 -> 0.01, -0.005 -> -0.01."""
    return value.quantize(GROSZ, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class RateFields:
    """The ``Fa`` fields one ``P_12`` rate is totalled in; ``percent`` None: no tax is computed."""

    net: str
    tax: str | None = None
    tax_pln: str | None = None
    percent: Decimal | None = None


def _taxed(group: int, percent: int) -> RateFields:
    return RateFields(f"p_13_{group}", f"p_14_{group}", f"p_14_{group}_w", Decimal(percent))


RATES: Mapping[str, RateFields] = {
    "23": _taxed(1, 23),
    "22": _taxed(1, 22),
    "8": _taxed(2, 8),
    "7": _taxed(2, 7),
    "5": _taxed(3, 5),
    "4": _taxed(4, 4),
    "3": _taxed(4, 3),
    "0 KR": RateFields("p_13_6_1"),
    "0 WDT": RateFields("p_13_6_2"),
    "0 EX": RateFields("p_13_6_3"),
    "zw": RateFields("p_13_7"),
    "np I": RateFields("p_13_8"),
    "np II": RateFields("p_13_9"),
    "oo": RateFields("p_13_10"),
}
"""``P_12`` value -> the fields it is totalled in (the order of the keys is the schema's order)."""

FIELD_ORDER = tuple(
    dict.fromkeys(name for fields in RATES.values() for name in (fields.net, fields.tax, fields.tax_pln) if name)
)


def checked_decimal(
    value: object, name: str, places: int, *, positive: bool = False, limit: Decimal = MAX_AMOUNT
) -> Decimal:
    """``value`` as a Decimal with at most ``places`` decimals, under ``limit`` (``ValueError`` naming ``name``)."""
    if isinstance(value, float):
        raise ValueError(f"{name}: {value!r} is a float; pass a Decimal or a string (floats are inexact)")
    try:
        number = Decimal(str(value)) if isinstance(value, int | str) else value
    except InvalidOperation:
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not isinstance(number, Decimal) or not number.is_finite():
        raise ValueError(f"{name}: {value!r} is not a finite number")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise ValueError(f"{name}: {value} has more than {places} decimal places")
    if abs(number) >= limit:
        raise ValueError(f"{name}: {value} is too large for the schema (under 10^{limit.adjusted()})")
    if positive and number <= 0:
        raise ValueError(f"{name}: {value} must be greater than 0")
    return number


_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_XML_SPACES = re.compile("[ \t\r\n]+")  # XML's whitespace (#x20 #x9 #xD #xA), not Unicode's


def collapsed(value: str) -> str:
    """``value`` as an ``xsd:token`` holds it (XML Schema Part 2, 4.3.6, whiteSpace ``collapse``):
    each run of whitespace one space, none at either end. Most FA(3) texts are tokens (``P_7``,
    ``P_2``, ``Nazwa``...): two values that collapse alike are the same value, and the length facets
    count the collapsed one."""
    return _XML_SPACES.sub(" ", value).strip(" ")


def checked_text(value: object, name: str, limit: int, *, token: bool = True) -> str:
    """``value`` if it is 1..``limit`` characters that XML can carry (``ValueError`` otherwise).

    ``token`` (the schema's type is an ``xsd:token``, as most FA(3) texts are): the length is the
    collapsed value's, as the XSD counts it, and the collapsed value is returned.
    """
    if not isinstance(value, str):
        raise ValueError(f"{name}: 1..{limit} characters, got {value!r}")
    text = collapsed(value) if token else value
    if not 1 <= len(text) <= limit or not text.strip():
        raise ValueError(f"{name}: 1..{limit} characters, got {value!r}")
    bad = _NOT_IN_XML.search(value)
    if bad:
        raise ValueError(f"{name}: character {bad.group()!r} cannot appear in XML")
    discouraged = _DISCOURAGED.search(value)
    if discouraged:
        # faktury/weryfikacja-faktury.md: the invoice "nie może zawierać niezalecanych znaków
        # Unicode określonych w specyfikacji XML W3C" (U+007F-U+0084, U+0086-U+009F, ...).
        raise ValueError(
            f"{name}: character U+{ord(discouraged.group()):04X} is one KSeF refuses (XML 1.0 discourages it)"
        )
    return text


def rate_of(value: object) -> str:
    """A ``P_12`` rate (``"23"``, ``23``, ``"0 WDT"``, ``"zw"``... or the generated enum) as its string."""
    text = str(getattr(value, "value", value)).strip()
    if text not in RATES:
        raise ValueError(f"rate: {value!r} is not one of {', '.join(RATES)}")
    return text


@dataclass(frozen=True)
class Line:
    """One invoice line: ``P_7`` name, ``P_8B`` quantity, ``P_8A`` unit, ``P_9A`` net unit price, ``P_12`` rate.

    Amounts are ``Decimal`` (or strings/ints; floats are refused). ``net`` is ``P_11``. The name and
    the unit are kept as the schema's ``xsd:token`` holds them, whitespace collapsed
    (``"Konsultacje\n  IT"`` is ``"Konsultacje IT"``).

    ``exchange_rate`` (keyword-only; PLN per unit, up to 6 decimals): in a foreign-currency
    invoice whose rows are converted at different rates (art. 31a of the VAT Act: each supply at
    the rate of its own tax point), this line's ``KursWaluty``. Without it the line takes the
    invoice's (the builder's ``exchange_rate=``). It is written on a taxed line only (a line
    without tax has no tax to convert); ``vat_invoice`` and ``correction`` take it, the builders
    of advance and settlement invoices, which convert at one rate, refuse it.
    """

    name: str
    quantity: Decimal
    unit_price: Decimal
    rate: str = "23"
    unit: str = "szt."
    _: KW_ONLY
    exchange_rate: Decimal | None = None

    def __post_init__(self) -> None:
        # Both are xsd:token (TZnakowy512, TZnakowy): kept collapsed, so a line read from an
        # invoice whose names are wrapped over lines equals the line as written.
        object.__setattr__(self, "name", checked_text(self.name, "line name", 512))
        object.__setattr__(self, "unit", checked_text(self.unit, "line unit", 256))
        object.__setattr__(self, "quantity", checked_decimal(self.quantity, "line quantity", 6, positive=True))
        price = checked_decimal(self.unit_price, "line unit_price", 8, limit=MAX_UNIT_PRICE)
        object.__setattr__(self, "unit_price", price)
        object.__setattr__(self, "rate", rate_of(self.rate))
        if self.exchange_rate is not None:
            rate = checked_decimal(self.exchange_rate, "line exchange_rate", 6, positive=True)
            object.__setattr__(self, "exchange_rate", rate)
        if abs(self.net) >= MAX_AMOUNT:  # P_11, TKwotowy
            raise ValueError(
                f"line quantity x unit_price: {self.quantity} x {self.unit_price} is too large for the schema's "
                "P_11 (under 10^16)"
            )

    @property
    def net(self) -> Decimal:
        """``P_11``: quantity x unit price, rounded to grosze."""
        return round_amount(self.quantity * self.unit_price)

    @property
    def fields(self) -> RateFields:
        """The fields of ``Fa`` this line is totalled in."""
        return RATES[self.rate]


@dataclass(frozen=True)
class Totals:
    """``P_13_x``/``P_14_x``/``P_14_xW`` by field name (only the fields in use) and ``P_15``."""

    fields: dict[str, Decimal] = field(default_factory=dict)
    gross: Decimal = Decimal("0.00")

    def __sub__(self, other: Totals) -> Totals:
        names = [n for n in FIELD_ORDER if n in self.fields or n in other.fields]
        zero = Decimal("0.00")
        return Totals(
            {n: self.fields.get(n, zero) - other.fields.get(n, zero) for n in names}, self.gross - other.gross
        )


def field_label(name: str) -> str:
    """A field as the schema names it: ``p_14_1_w`` -> ``P_14_1W``, ``p_15`` -> ``P_15``."""
    return name.upper().replace("_W", "W")


def checked_totals(totals: Totals, name: str) -> Totals:
    """``totals`` if each fits the schema's ``TKwotowy`` (under 10^16), else ``ValueError`` naming
    ``name``, the argument the totals come from."""
    for field_name, value in [*totals.fields.items(), ("p_15", totals.gross)]:
        if abs(value) >= MAX_AMOUNT:
            raise ValueError(
                f"{name}: {field_label(field_name)} would be {value}, too large for the schema (under 10^16)"
            )
    return totals


def tax(net: Decimal, percent: Decimal) -> Decimal:
    """The tax on a net sum at ``percent``, rounded (art. 106e ust. 11)."""
    return round_amount(net * percent / 100)


def _per_rate(amounts: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for rate, amount in amounts:
        sums[rate] = sums.get(rate, Decimal("0.00")) + amount
    return {rate: sums[rate] for rate in RATES if rate in sums}


def checked_exchange_rate(
    exchange_rate: object, currency: str, *, taxed: bool = True, name: str = "exchange_rate"
) -> Decimal | None:
    """The exchange rate of an invoice in ``currency``: refused for PLN; required in a foreign
    currency when the invoice shows tax (``taxed``: its PLN value goes to ``P_14_xW``)."""
    if currency == "PLN":
        if exchange_rate is not None:
            raise ValueError(f"{name}: only for an invoice in a foreign currency")
        return None
    if exchange_rate is None:
        if taxed:
            raise ValueError(f"{name}: required for an invoice in {currency} with tax (shown in PLN too)")
        return None
    return checked_decimal(exchange_rate, name, 6, positive=True)


def _assemble(nets: dict[str, Decimal], taxes: dict[str, Decimal], exchange_rate: Decimal | None) -> Totals:
    values: dict[str, Decimal] = {}
    for rate, net in nets.items():
        fields = RATES[rate]
        values[fields.net] = values.get(fields.net, Decimal("0.00")) + net
        if fields.tax is not None:
            values[fields.tax] = values.get(fields.tax, Decimal("0.00")) + taxes[rate]
    if exchange_rate is not None:
        for rate in nets:
            fields = RATES[rate]
            if fields.tax is not None and fields.tax_pln is not None:
                values[fields.tax_pln] = round_amount(values[fields.tax] * exchange_rate)
    gross = sum((values[f.net] for f in _used(nets)), Decimal("0.00")) + sum(
        (values[f.tax] for f in _used(nets) if f.tax is not None), Decimal("0.00")
    )
    return Totals({n: values[n] for n in FIELD_ORDER if n in values}, gross)


def _used(nets: Mapping[str, Decimal]) -> list[RateFields]:
    return list({RATES[rate].net: RATES[rate] for rate in nets}.values())


def line_totals(lines: Sequence[Line], exchange_rate: Decimal | None = None) -> Totals:
    """Totals of a VAT invoice's lines (``exchange_rate``: PLN per unit of a foreign currency, for
    the lines without their own ``exchange_rate``). ``P_14_xW`` by the module's rule: ``P_14_x`` x
    the rate when the field's taxed lines have one, else the percent x the sum of each line's
    value x its rate; none for a field whose taxed lines have no rate (an invoice in PLN), and
    ``ValueError`` for one where only some have."""
    nets = _per_rate((line.rate, line.net) for line in lines)
    taxes = {}
    for rate, net in nets.items():
        percent = RATES[rate].percent
        if percent is not None:
            taxes[rate] = tax(net, percent)
    totals = _assemble(nets, taxes, None)
    values = dict(totals.fields)
    for fields in _used(nets):
        if fields.tax is not None and fields.tax_pln is not None:
            taxed = [line for line in lines if line.fields.tax_pln == fields.tax_pln]
            converted = _tax_in_pln(values[fields.tax], taxed, exchange_rate)
            if converted is not None:
                values[fields.tax_pln] = converted
    return Totals({name: values[name] for name in FIELD_ORDER if name in values}, totals.gross)


def _tax_in_pln(tax_shown: Decimal, lines: Sequence[Line], exchange_rate: Decimal | None) -> Decimal | None:
    """``P_14_xW`` of a field whose tax is ``tax_shown`` and whose lines are ``lines`` (each at its
    own exchange rate, or ``exchange_rate``): see the module's docstring. ``None`` when none has a
    rate (an invoice in PLN)."""
    rated: list[tuple[Line, Decimal]] = []
    for line in lines:
        rate = exchange_rate if line.exchange_rate is None else line.exchange_rate
        if rate is not None:
            rated.append((line, rate))
        elif any(other.exchange_rate is not None for other in lines):
            raise ValueError(f"{line}: no exchange rate, and other lines taxed in the same field have one")
    if not rated:
        return None
    rates = {rate for _, rate in rated}
    if len(rates) == 1:
        return round_amount(tax_shown * rates.pop())
    return round_amount(sum((line.net * rate * (line.fields.percent or 0) / 100 for line, rate in rated), Decimal(0)))


def split_payment(received: Decimal, order: Sequence[Line]) -> dict[str, Decimal]:
    """An advance payment (``received``, 0 or more) split between the order's rates in proportion
    to their gross values, to the grosz by the largest remainder (see the module's docstring):
    each part is its exact share rounded down or up, and the parts add up to ``received``. With
    one or two rates that is the share of the first rounded half up and the rest to the other.
    ``ValueError`` naming ``order`` for a rate whose lines add up to less than 0 gross (its share
    would be negative), or an order worth 0 or less."""
    if received < 0 or received != round_amount(received):
        raise ValueError(f"received: {received}; a payment to split is 0 or more, in full grosze")
    grosses = _grosses(order)
    whole = sum(grosses.values(), Decimal("0.00"))
    if whole <= 0:
        raise ValueError("order: its gross value must be greater than 0")
    # In grosze, as integers: the exact share of a rate is payment x gross / whole, whose
    # remainder decides which rates the grosze left over go to.
    payment, weights = int(received * 100), {rate: int(gross * 100) for rate, gross in grosses.items()}
    total = sum(weights.values())
    parts = {rate: payment * weight // total for rate, weight in weights.items()}
    by_loss = sorted(weights, key=lambda rate: -(payment * weights[rate] % total))  # stable: RATES order on ties
    for rate in by_loss[: payment - sum(parts.values())]:
        parts[rate] += 1
    return {rate: Decimal(part).scaleb(-2) for rate, part in parts.items()}


def _grosses(order: Sequence[Line]) -> dict[str, Decimal]:
    """The order's gross value at each of its rates, in ``RATES`` order; ``ValueError`` naming
    ``order`` for one below 0 (a discount line at a rate of its own)."""
    grosses = {}
    for rate in RATES:
        lines = [line for line in order if line.rate == rate]
        if lines:
            grosses[rate] = line_totals(lines).gross
            if grosses[rate] < 0:
                raise ValueError(
                    f"order: its lines at {rate!r} add up to {grosses[rate]} gross; an advance payment is split "
                    "between the order's rates in proportion to their gross values, so none may be below 0 (a "
                    "discount belongs with the lines it reduces, at their rate)"
                )
    return grosses


def tax_in_pln(fields: Mapping[str, Decimal], exchange_rate: Decimal | None) -> dict[str, Decimal]:
    """``fields`` with each ``P_14_x`` also in złoty (``P_14_xW`` = ``P_14_x`` x the rate, rounded),
    in the schema's order; ``exchange_rate`` None (an invoice in PLN): ``fields`` as they are."""
    values = {name: value for name, value in fields.items() if not name.endswith("_w")}
    if exchange_rate is not None:
        for rate_fields in RATES.values():
            if rate_fields.tax in values and rate_fields.tax_pln is not None:
                values[rate_fields.tax_pln] = round_amount(values[rate_fields.tax] * exchange_rate)
    return {name: values[name] for name in FIELD_ORDER if name in values}


def settlement_totals(
    lines: Sequence[Line], advances: Sequence[Totals], exchange_rate: Decimal | None = None
) -> Totals:
    """Totals of a settlement invoice (``ROZ``, art. 106f ust. 3): the order's totals (its
    ``lines``) less the advances' (``P_13_x``/``P_14_x`` field by field, ``P_15`` by ``P_15``),
    ``P_14_xW`` the remaining tax at ``exchange_rate``. The advances' own ``P_14_xW`` are not
    used (each was converted at its own rate on its own invoice)."""
    order = line_totals(lines)
    values = dict(order.fields)
    for paid in advances:
        for name, value in paid.fields.items():
            if not name.endswith("_w"):
                values[name] = values.get(name, Decimal("0.00")) - value
    gross = order.gross - sum((paid.gross for paid in advances), Decimal("0.00"))
    return Totals(tax_in_pln(values, exchange_rate), gross)


def discount_totals(discounts: Mapping[str, Decimal]) -> Totals:
    """Totals of a discount correction (art. 106j ust. 3): each rate's discount, a gross amount
    above 0 (``discounts``: ``P_12`` rate -> amount, in full grosze), split into tax (gross x rate /
    (100 + rate), rounded) and net (the rest), negated: what the correction shows."""
    taxes: dict[str, Decimal] = {}
    nets: dict[str, Decimal] = {}
    for rate, gross in discounts.items():
        percent = RATES[rate].percent
        taxes[rate] = -round_amount(gross * percent / (100 + percent)) if percent is not None else Decimal("0.00")
        nets[rate] = -gross - taxes[rate]
    totals = _assemble(nets, taxes, None)
    assert totals.gross == -sum(discounts.values(), Decimal("0.00"))  # net and tax make up each discount
    return totals


def advance_totals(received: Decimal, order: Sequence[Line], exchange_rate: Decimal | None = None) -> Totals:
    """Totals of an advance invoice: the payment's tax by art. 106f ust. 1 pkt 3, per rate."""
    parts = split_payment(received, order)
    taxes: dict[str, Decimal] = {}
    nets: dict[str, Decimal] = {}
    for rate, paid in parts.items():
        percent = RATES[rate].percent
        taxes[rate] = round_amount(paid * percent / (100 + percent)) if percent is not None else Decimal("0.00")
        nets[rate] = paid - taxes[rate]
    totals = _assemble(nets, taxes, exchange_rate)
    assert totals.gross == received  # the split and the formula keep the payment whole
    return totals
