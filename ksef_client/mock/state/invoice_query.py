"""The filters of metadata queries and exports (the spec's ``InvoiceQueryFilters``) and who may
see an invoice.

``parse_query`` validates a body into a ``Query`` (KSeF's 21405 for what it refuses);
``Query.accepts`` says whether an accepted invoice passes every filter, each as the spec describes
it; ``is_subject`` whether a context plays a role (``InvoiceQuerySubjectType``) on an invoice.
Text values compare exactly, case and all, never a part of one (the spec's "(exact match)"). Where
the spec is silent: an empty value (``""``, ``[]``) is no filter, as a missing one (no invoice has
an empty number, and a list of no currencies would find nothing); the amount's bounds count in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.state.core import VALIDATION, Context

if TYPE_CHECKING:
    from ksef_client.mock.state.invoices import Invoice, InvoiceFields, ThirdSubject

SUBJECT_TYPES = ("Subject1", "Subject2", "Subject3", "SubjectAuthorized")
DATE_TYPES = ("Issue", "Invoicing", "PermanentStorage")
AMOUNT_TYPES = ("Brutto", "Netto", "Vat")
FORM_TYPES = ("FA", "PEF", "FA_RR")
INVOICING_MODES = ("Online", "Offline")
BUYER_IDENTIFIER_TYPES = ("Nip", "VatUe", "Other", "None")
# InvoiceQueryFilters.dateRange (spec 2.9.0): "Maksymalny dozwolony okres wynosi 100 dni w strefie
# UTC"; InvoiceQueryDateRange.to: "Jeśli nie zostanie podana, przyjmowana jest bieżąca data i czas
# w UTC", so a range without ``to`` is counted to now.
MAX_RANGE = dt.timedelta(days=100)
WARSAW = ZoneInfo("Europe/Warsaw")


@dataclass(frozen=True)
class AmountRange:
    """``InvoiceQueryFilters.amount``: "Filtr kwotowy - brutto, netto lub VAT (z wartością)" (the spec)."""

    type: str
    low: Decimal | None = None
    high: Decimal | None = None

    def holds(self, value: Decimal) -> bool:
        """``from <= value <= to``; the spec does not say whether the bounds are in the range, the
        emulator counts them in, as it does a ``dateRange``'s."""
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def value_of(self, fields: InvoiceFields) -> Decimal:
        """The invoice's figure of this type, the one its metadata record gives: ``grossAmount``,
        ``netAmount`` ("Łączna kwota netto/brutto", in the invoice's currency) or ``vatAmount``
        ("Łączna kwota VAT wyrażona w PLN")."""
        return {"Brutto": fields.gross, "Netto": fields.net, "Vat": fields.vat_pln}[self.type]


@dataclass(frozen=True)
class Query:
    """A validated ``InvoiceQueryFilters``; ``None`` (or an empty list) where a filter is not given."""

    subject_type: str
    date_type: str
    date_from: dt.datetime
    date_to: dt.datetime | None
    restrict_to_hwm: bool
    ksef_number: str | None = None
    invoice_number: str | None = None
    seller_nip: str | None = None
    amount: AmountRange | None = None
    currency_codes: frozenset[str] | None = None
    invoicing_mode: str | None = None
    is_self_invoicing: bool | None = None
    form_type: str | None = None
    invoice_types: frozenset[str] | None = None
    has_attachment: bool | None = None
    # buyerIdentifier: its type, and its value ("exact match") when given.
    buyer_type: str | None = None
    buyer_value: str | None = None

    def accepts(self, invoice: Invoice) -> bool:
        """Whether ``invoice`` passes every filter but the subject and the dates (``Invoices.matching``)."""
        fields = invoice.fields
        assert fields is not None
        return all((
            # ksefNumber, invoiceNumber, sellerNip: "(exact match)".
            self.ksef_number is None or invoice.ksef_number == self.ksef_number,
            self.invoice_number is None or fields.number == self.invoice_number,
            self.seller_nip is None or fields.seller == self.seller_nip,
            self.amount is None or self.amount.holds(self.amount.value_of(fields)),
            self.currency_codes is None or fields.currency in self.currency_codes,
            self.invoicing_mode is None or invoicing_mode(invoice) == self.invoicing_mode,
            self.is_self_invoicing is None or fields.self_invoicing == self.is_self_invoicing,
            # formType: FA, PEF, FA_RR, the ``value`` of the form code the invoice was sent under.
            self.form_type is None or invoice.form_code.get("value") == self.form_type,
            self.invoice_types is None or fields.invoice_type in self.invoice_types,
            self.has_attachment is None or fields.has_attachment == self.has_attachment,
            self.buyer_type is None or fields.buyer_id[0] == self.buyer_type,
            # InvoiceQueryBuyerIdentifier.value: "Wartość identyfikatora nabywcy (exact match)"; the
            # value compared is the one the metadata record gives (``buyer_identifier``).
            self.buyer_value is None or fields.buyer_id[1] == self.buyer_value,
        ))  # fmt: skip


def invoicing_mode(invoice: Invoice) -> str:
    """``InvoiceMetadata.invoicingMode``."""
    return "Offline" if invoice.offline else "Online"


def is_subject(fields: InvoiceFields, subject_type: str, context: Context) -> bool:
    """Whether ``context`` is the invoice's ``subject_type``: "Podmiot 1 - sprzedawca", "Podmiot 2
    - nabywca", "Podmiot 3", "Podmiot upoważniony" (InvoiceQuerySubjectType).

    A party is named by its NIP (the buyer only by ``Podmiot2``'s NIP, not by an EU VAT number
    that holds it); a ``Podmiot3`` also by an internal identifier (``IDWew``, "Identyfikator
    wewnętrzny z NIP"), which names the ``InternalId`` context of that value and no other.

    An ``InternalId`` (branch) context is only that ``Podmiot3``: not its company's NIP, which
    ``Context.nip`` gives it for sending under that NIP. KSeF shows a branch "tylko "swoje"
    faktury" under ``Subject3`` (CIRFMF/ksef-client-csharp#139), and "filtrowanie faktur po
    Podmiot1 czy Podmiot2 nigdy nie da mi odpowiedzi" (CIRFMF/ksef-api#683). No source says which
    pairs ``POST /invoices/exports`` refuses with 21181 ("Nie można wyeksportować paczki faktur dla
    wybranego podmiotu ({subjecttype}) i zalogowanego identyfikatora kontekstu ({type})"), so the
    other subject types find nothing, in a query and in an export alike.

    A ``NipVatUe`` context still plays the roles of its Polish NIP (``value[:10]``): no source says
    what KSeF shows it."""
    if context.type == "InternalId":
        return subject_type == "Subject3" and any(_names(third, context) for third in fields.third_subjects)
    nip = context.nip
    if nip is None:
        return False
    if subject_type == "Subject3":
        return any(_names(third, context) for third in fields.third_subjects)
    authorized = fields.authorized_subject.nip if fields.authorized_subject is not None else None
    named = {"Subject1": fields.seller, "Subject2": fields.buyer, "SubjectAuthorized": authorized}
    return named.get(subject_type) == nip


def _names(third: ThirdSubject, context: Context) -> bool:
    if third.type == "InternalId":
        return context.type == "InternalId" and third.value == context.value
    return third.type == "Nip" and third.value == context.nip


def plays_a_role(fields: InvoiceFields, context: Context) -> bool:
    """Whether ``context`` is any of the invoice's subjects (``SUBJECT_TYPES``)."""
    return any(is_subject(fields, subject_type, context) for subject_type in SUBJECT_TYPES)


# --- validation --------------------------------------------------------------------------------


def _refuse(detail: str) -> MockAPIError:
    return MockAPIError(21405, VALIDATION, [detail])


def parse_date(raw: object, name: str) -> dt.datetime:
    """A ``dateRange`` date; one without offset is Warsaw local time, with its summer time
    (api-changelog 2.1.2: "Wartości bez strefy czasowej są teraz jednoznacznie interpretowane
    zgodnie z dokumentacją (czas lokalny Europe/Warsaw)"). A time the autumn change repeats is
    read as the first (summer time, ``fold`` 0), one the spring change skips with the offset
    before it: no source says what KSeF does with either."""
    try:
        value = dt.datetime.fromisoformat(str(raw).upper())  # RFC 3339 allows "t" and "z"
    except ValueError:
        raise _refuse(f"{name}: nieprawidłowa data.") from None
    # In UTC: two dates in one zone subtract as wall-clock times, an hour off across a change, and
    # the range is "100 dni w strefie UTC".
    return value if value.tzinfo else value.replace(tzinfo=WARSAW).astimezone(dt.UTC)


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _refuse(f"{name}: oczekiwano tekstu.")
    return value


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise _refuse(f"{name}: oczekiwano wartości logicznej.")
    return value


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = _text(body, name)
    if value is not None and value not in allowed:
        raise _refuse(f"{name}: jedna z {', '.join(allowed)}.")
    return value


def _choices(body: dict[str, Any], name: str, allowed: tuple[str, ...] | None = None) -> frozenset[str] | None:
    values = body.get(name)
    if values is None or values == []:
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _refuse(f"{name}: oczekiwano listy.")
    if allowed is not None and not set(values) <= set(allowed):
        raise _refuse(f"{name}: wartości spoza {', '.join(allowed)}.")
    return frozenset(values)


def _bound(raw: object, name: str) -> Decimal | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _refuse(f"{name}: oczekiwano liczby.")
    return Decimal(str(raw))


def _amount(body: dict[str, Any]) -> AmountRange | None:
    raw = body.get("amount")
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in AMOUNT_TYPES:
        raise _refuse(f"amount.type: jedna z {', '.join(AMOUNT_TYPES)}.")
    return AmountRange(str(raw["type"]), _bound(raw.get("from"), "amount.from"), _bound(raw.get("to"), "amount.to"))


def _buyer(body: dict[str, Any]) -> tuple[str | None, str | None]:
    raw = body.get("buyerIdentifier")
    if raw is None:
        return None, None
    if not isinstance(raw, dict) or raw.get("type") not in BUYER_IDENTIFIER_TYPES:
        raise _refuse(f"buyerIdentifier.type: jedna z {', '.join(BUYER_IDENTIFIER_TYPES)}.")
    return str(raw["type"]), _text(raw, "value")


def parse_query(body: dict[str, Any], now: dt.datetime) -> Query:
    """Validate ``filters``; KSeF's 21405 for what it would refuse (a range over 100 days, one
    without ``to`` counted to ``now``)."""
    subject_type = body.get("subjectType")
    date_range = body.get("dateRange")
    if subject_type not in SUBJECT_TYPES or not isinstance(date_range, dict):
        raise _refuse("subjectType i dateRange: wymagane.")
    date_type = date_range.get("dateType")
    if date_type not in DATE_TYPES or "from" not in date_range:
        raise _refuse("dateRange.dateType i dateRange.from: wymagane.")
    start = parse_date(date_range["from"], "dateRange.from")
    end = parse_date(date_range["to"], "dateRange.to") if date_range.get("to") else None
    if (end is not None and end < start) or (end or now) - start > MAX_RANGE:
        raise _refuse("dateRange: zakres najwyżej 100 dni (bez 'to': do teraz), to >= from.")
    buyer_type, buyer_value = _buyer(body)
    return Query(
        str(subject_type), str(date_type), start, end, bool(_flag(date_range, "restrictToPermanentStorageHwmDate")),
        ksef_number=_text(body, "ksefNumber"),
        invoice_number=_text(body, "invoiceNumber"),
        seller_nip=_text(body, "sellerNip"),
        amount=_amount(body),
        currency_codes=_choices(body, "currencyCodes"),
        invoicing_mode=_choice(body, "invoicingMode", INVOICING_MODES),
        is_self_invoicing=_flag(body, "isSelfInvoicing"),
        form_type=_choice(body, "formType", FORM_TYPES),
        invoice_types=_choices(body, "invoiceTypes"),
        has_attachment=_flag(body, "hasAttachment"),
        buyer_type=buyer_type,
        buyer_value=buyer_value,
    )  # fmt: skip
