"""Collective identifiers: a seller's invoices grouped under one number (one payment for many)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from ksef_client.identifiers import checksum
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.state.core import VALIDATION, Access, Context, Core
from ksef_client.mock.state.invoices import Invoices
from ksef_client.mock.state.testdata import TestData

MAX_QUERY_NUMBERS = 10  # identifiers per POST /collective-identifiers/invoices
# CollectiveIdentifiersQueryRequest.dateCreatedFrom (spec 2.9.0): "maksymalny przedział czasu to 100 dni".
MAX_QUERY_RANGE = dt.timedelta(days=100)
# CollectiveIdentifierInvoice.ksefNumber (spec 2.9.0): "Jedna faktura może zostać przypisana do
# maksymalnie 132 identyfikatorów zbiorczych w ramach jednego kontekstu."
MAX_IDENTIFIERS_PER_INVOICE = 132


@dataclass
class CollectiveIdentifier:
    """A collective identifier and the invoices it groups (``ksefNumber``, ``description``, ``payment``)."""

    number: str
    context: Context
    created: dt.datetime
    invoices: list[dict[str, object]]

    @property
    def seller(self) -> str:
        """The NIP of the seller of its invoices (the identifier's first 10 digits)."""
        return self.number[:10]

    @property
    def listing_key(self) -> str:
        """Position in a listing sorted "dateCreated (Desc), collectiveIdentifierNumber (Desc)"."""
        return f"{self.created.astimezone(dt.UTC):%Y%m%d%H%M%S%f}|{self.number}"

    def groups(self, ksef_number: str) -> bool:
        """Whether the invoice ``ksef_number`` is one of its invoices."""
        return any(invoice.get("ksefNumber") == ksef_number for invoice in self.invoices)


@dataclass(frozen=True)
class IdentifierQuery:
    """The filters of ``POST /collective-identifiers/query`` (``CollectiveIdentifiersQueryRequest``)."""

    start: dt.datetime
    end: dt.datetime
    number: str | None = None
    invoice_count_from: int | None = None
    invoice_count_to: int | None = None
    created_in_current_context: bool | None = None


@dataclass
class CollectiveState:
    """Every identifier by number."""

    identifiers: dict[str, CollectiveIdentifier] = field(default_factory=dict)


def _refusal(code: int, description: str, detail: str, numbers: list[str]) -> MockAPIError:
    return MockAPIError(code, description, [detail.format(n) for n in dict.fromkeys(numbers)])


class CollectiveIdentifiers:
    """The collective identifiers of one emulator."""

    def __init__(self, core: Core, invoices: Invoices, testdata: TestData) -> None:
        self.core = core
        self.invoices = invoices
        self.testdata = testdata
        self.state = CollectiveState()

    @staticmethod
    def visible(identifier: CollectiveIdentifier, context: Context) -> bool:
        """Whether ``context`` sees ``identifier`` in its listings: "identyfikatorów zbiorczych
        wygenerowanych w kontekście. Dla kontekstu typu NIP zwracane są również identyfikatory
        zbiorcze, dla których podmiot występuje w roli Podmiotu 1 na fakturze" (the spec,
        ``POST /collective-identifiers/query``): created there, or, in a ``Nip`` context, naming
        that NIP's invoices as the seller's."""
        return identifier.context == context or (context.type == "Nip" and identifier.seller == context.value)

    def create(self, access: Access, invoices: list[dict[str, object]]) -> CollectiveIdentifier:
        """Group invoices of one seller (2 to the context's limit, 500 by default) under a new identifier.

        The refusals are the spec's 400 table: 71005 a KSeF number given twice, 71004 invoices of
        different sellers (naming those whose seller is not the first invoice's), 71001 an invoice
        KSeF does not hold, 71002 an invoice already in 132 identifiers of the context. The spec
        does not say in which order KSeF checks them; the emulator checks what the request shows
        by itself (a repeat, the sellers: a KSeF number starts with its seller's NIP) first.
        """
        numbers = [str(i.get("ksefNumber", "")) for i in invoices]
        most = self.testdata.context_limits(access.context)["collectiveIdentifier"]["maxInvoices"]
        if not 2 <= len(numbers) <= most:
            raise MockAPIError(21405, VALIDATION, [f"invoices: 2-{most} faktur jednego sprzedawcy."])
        if repeated := [n for i, n in enumerate(numbers) if n in numbers[:i]]:
            raise _refusal(71005, "Powtórzony numer KSeF w żądaniu.", "Powtórzony numer KSeF {}.", repeated)
        seller = numbers[0][:10]
        if others := [n for n in numbers if n[:10] != seller]:
            raise _refusal(71004, "Faktury mają różnych sprzedawców.",
                           "Faktura o numerze KSeF {} ma innego sprzedawcę.", others)  # fmt: skip
        with self.core.lock:
            held = {i.ksef_number for i in self.invoices.state.accepted}
            if missing := [n for n in numbers if n not in held]:
                raise _refusal(71001, "Faktura o podanym identyfikatorze nie istnieje.",
                               "Faktura o numerze KSeF {} nie została znaleziona.", missing)  # fmt: skip
            own = [i for i in self.state.identifiers.values() if i.context == access.context]
            if full := [n for n in numbers if sum(1 for i in own if i.groups(n)) >= MAX_IDENTIFIERS_PER_INVOICE]:
                raise _refusal(
                    71002, "Faktura jest już przypisana do maksymalnej liczby Identyfikatorów Zbiorczych.",
                    "Faktura o numerze KSeF {} jest już przypisana do maksymalnej liczby Identyfikatorów Zbiorczych.",
                    full,
                )  # fmt: skip
            now = self.core.clock()
            prefix = f"{seller}-IZ{now:%Y%m}-{secrets.token_hex(6).upper()}"
            identifier = CollectiveIdentifier(f"{prefix}-{checksum(prefix)}", access.context, now, list(invoices))
            self.state.identifiers[identifier.number] = identifier
        return identifier

    def query(self, access: Access, query: IdentifierQuery) -> list[CollectiveIdentifier]:
        """The identifiers ``access`` sees (``visible``) that match ``query``, "dateCreated (Desc),
        collectiveIdentifierNumber (Desc)" (the spec); 21405 for a range over 100 days or one that
        ends before it starts."""
        if not dt.timedelta(0) <= query.end - query.start <= MAX_QUERY_RANGE:
            raise MockAPIError(21405, VALIDATION, ["dateCreatedFrom..dateCreatedTo: najwyżej 100 dni, from <= to."])
        low = query.invoice_count_from if query.invoice_count_from is not None else 0
        high = query.invoice_count_to
        own = query.created_in_current_context
        with self.core.lock:
            found = [
                i for i in self.state.identifiers.values()
                if self.visible(i, access.context) and query.start <= i.created <= query.end
                and query.number in (None, i.number) and own in (None, i.context == access.context)
                and low <= len(i.invoices) and (high is None or len(i.invoices) <= high)
            ]  # fmt: skip
        return sorted(found, key=lambda i: i.listing_key, reverse=True)

    def of_invoice(self, access: Access, ksef_number: str) -> list[CollectiveIdentifier]:
        """The identifiers ``access`` sees (``visible``) that an invoice belongs to, newest first
        (the spec's "dateCreated (Desc), collectiveIdentifierNumber (Desc)")."""
        with self.core.lock:
            found = [
                i for i in self.state.identifiers.values() if self.visible(i, access.context) and i.groups(ksef_number)
            ]
        return sorted(found, key=lambda i: i.listing_key, reverse=True)

    def invoices_of(self, access: Access, numbers: list[str]) -> list[dict[str, object]]:
        """The invoices of up to 10 identifiers, KSeF number descending (``POST /collective-identifiers/invoices``).

        Description and payment are shown to the context that created the identifier and to each
        party of the invoice, "podmiotowi występującemu w roli na danej fakturze" (the spec):
        seller, buyer, Podmiot3, PodmiotUpowazniony; anyone else gets ``detailsHidden: true``
        where they were given.
        """
        if not numbers or len(numbers) > MAX_QUERY_NUMBERS:
            raise MockAPIError(21405, VALIDATION, [f"collectiveIdentifierNumbers: 1-{MAX_QUERY_NUMBERS} numerów."])
        items = []
        for number in dict.fromkeys(numbers):
            found = self.state.identifiers.get(number)
            if found is None:
                continue
            for invoice in found.invoices:
                ksef_number = str(invoice["ksefNumber"])
                item: dict[str, object] = {"ksefNumber": ksef_number, "collectiveIdentifierNumber": number}
                details = {k: invoice[k] for k in ("description", "payment") if invoice.get(k) is not None}
                visible = found.context == access.context or self.invoices.is_party(access.context, ksef_number)
                item["detailsHidden"] = bool(details) and not visible
                if visible:
                    item.update(details)
                items.append(item)
        items.sort(key=lambda i: (str(i["ksefNumber"]), str(i["collectiveIdentifierNumber"])), reverse=True)
        return items
