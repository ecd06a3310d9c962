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


@dataclass
class CollectiveIdentifier:
    """A collective identifier and the invoices it groups (``ksefNumber``, ``description``, ``payment``)."""

    number: str
    context: Context
    created: dt.datetime
    invoices: list[dict[str, object]]


@dataclass
class CollectiveState:
    """Every identifier by number."""

    identifiers: dict[str, CollectiveIdentifier] = field(default_factory=dict)


class CollectiveIdentifiers:
    """The collective identifiers of one emulator."""

    def __init__(self, core: Core, invoices: Invoices, testdata: TestData) -> None:
        self.core = core
        self.invoices = invoices
        self.testdata = testdata
        self.state = CollectiveState()

    def create(self, access: Access, invoices: list[dict[str, object]]) -> CollectiveIdentifier:
        """Group invoices of one seller (2 to the context's limit, 500 by default) under a new identifier."""
        numbers = [str(i.get("ksefNumber", "")) for i in invoices]
        sellers = {n[:10] for n in numbers}
        most = self.testdata.context_limits(access.context)["collectiveIdentifier"]["maxInvoices"]
        if not 2 <= len(numbers) <= most or len(sellers) != 1:
            raise MockAPIError(21405, VALIDATION, [f"invoices: 2-{most} faktur jednego sprzedawcy."])
        now = self.core.clock()
        prefix = f"{sellers.pop()}-IZ{now:%Y%m}-{secrets.token_hex(6).upper()}"
        identifier = CollectiveIdentifier(f"{prefix}-{checksum(prefix)}", access.context, now, list(invoices))
        with self.core.lock:
            self.state.identifiers[identifier.number] = identifier
        return identifier

    def query(self, start: dt.datetime, end: dt.datetime, number: str | None = None) -> list[CollectiveIdentifier]:
        """Identifiers created between ``start`` and ``end`` (and with ``number``, when given);
        21405 for a range over 100 days or one that ends before it starts."""
        if not dt.timedelta(0) <= end - start <= MAX_QUERY_RANGE:
            raise MockAPIError(21405, VALIDATION, ["dateCreatedFrom..dateCreatedTo: najwyżej 100 dni, from <= to."])
        return [
            i for i in self.state.identifiers.values()
            if start <= i.created <= end and number in (None, i.number)
        ]  # fmt: skip

    def of_invoice(self, ksef_number: str) -> list[CollectiveIdentifier]:
        """The identifiers an invoice belongs to."""
        return [
            i
            for i in self.state.identifiers.values()
            if any(inv.get("ksefNumber") == ksef_number for inv in i.invoices)
        ]

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
