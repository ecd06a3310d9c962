"""``ksef.collective_identifiers``: group a seller's invoices under one number (one payment for many
invoices), and list the invoices of identifiers.

Arguments are checked before any request: a KSeF number's format and checksum, 2 to 500 invoices
of one seller (KSeF's default limit; ``ksef.limits.context()`` says the context's own), 1 to 10
identifiers per invoices query, page sizes within the spec's bounds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, PageFlow, apager, arun, pager, response_of, run
from ksef_client._generated.api.collective_identifiers import (
    create_collective_identifier,
    list_collective_identifiers_by_ksef_number,
    query_collective_identifier_invoices,
    query_collective_identifiers,
)
from ksef_client._generated.models import (
    CollectiveIdentifierInvoicesQueryRequest,
    CollectiveIdentifierInvoicesQueryResponse,
    CollectiveIdentifierInvoicesQueryResponseItem,
    CollectiveIdentifiersByKsefNumberQueryResponse,
    CollectiveIdentifiersByKsefNumberQueryResponseItem,
    CollectiveIdentifiersQueryRequest,
    CollectiveIdentifiersQueryResponse,
    CollectiveIdentifiersQueryResponseItem,
    GenerateCollectiveIdentifierRequest,
    GenerateCollectiveIdentifierResponse,
)
from ksef_client._generated.types import UNSET
from ksef_client.identifiers import validate_ksef_number
from ksef_client.pagination import AsyncPager, Pager, check_page_size, next_token

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

MAX_INVOICES = 500  # KSeF's default per identifier
MAX_IDENTIFIERS_PER_QUERY = 10


def _invoice_entry(invoice: str | dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"ksefNumber": invoice} if isinstance(invoice, str) else dict(invoice)
    validate_ksef_number(str(entry.get("ksefNumber", "")), "invoices[].ksefNumber")
    payment = entry.get("payment")
    if isinstance(payment, dict) and isinstance(payment.get("amount"), Decimal):
        entry["payment"] = {**payment, "amount": float(payment["amount"])}
    return entry


def _create_flow(invoices: Iterable[str | dict[str, Any]]) -> Flow[str]:
    entries = [_invoice_entry(i) for i in invoices]
    sellers = {e["ksefNumber"][:10] for e in entries}
    if not 2 <= len(entries) <= MAX_INVOICES or len(sellers) != 1:
        raise ValueError(f"invoices: 2 to {MAX_INVOICES} invoices of one seller, got {len(entries)} of {len(sellers)}")
    body = GenerateCollectiveIdentifierRequest.from_dict({"invoices": entries})
    call = Call(create_collective_identifier, {"body": body})
    return parsed(response_of((yield call)), GenerateCollectiveIdentifierResponse).collective_identifier_number


def _numbers(numbers: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(numbers))
    if not 1 <= len(wanted) <= MAX_IDENTIFIERS_PER_QUERY or not all(isinstance(n, str) and n for n in wanted):
        raise ValueError(f"numbers: 1 to {MAX_IDENTIFIERS_PER_QUERY} collective identifier numbers")
    return wanted


def invoices_pages(
    numbers: Iterable[str], page_size: int
) -> PageFlow[str, CollectiveIdentifierInvoicesQueryResponseItem]:
    """The pages of ``POST /collective-identifiers/invoices`` (arguments checked now)."""
    body = CollectiveIdentifierInvoicesQueryRequest(collective_identifier_numbers=_numbers(numbers))
    check_page_size(page_size, query_collective_identifier_invoices)

    def page(token: str | None) -> Flow[tuple[list[CollectiveIdentifierInvoicesQueryResponseItem], str | None]]:
        args = {"body": body, "page_size": page_size, "x_continuation_token": token or UNSET}
        answer = parsed(
            response_of((yield Call(query_collective_identifier_invoices, args))),
            CollectiveIdentifierInvoicesQueryResponse,
        )
        return answer.invoices, next_token(answer.continuation_token)

    return page


def query_pages(
    date_from: dt.datetime, date_to: dt.datetime, number: str | None, page_size: int
) -> PageFlow[str, CollectiveIdentifiersQueryResponseItem]:
    """The pages of ``POST /collective-identifiers/query`` (arguments checked now)."""
    body = _query_body(date_from, date_to, number)
    check_page_size(page_size, query_collective_identifiers)

    def page(token: str | None) -> Flow[tuple[list[CollectiveIdentifiersQueryResponseItem], str | None]]:
        args = {"body": body, "page_size": page_size, "x_continuation_token": token or UNSET}
        answer = parsed(
            response_of((yield Call(query_collective_identifiers, args))), CollectiveIdentifiersQueryResponse
        )
        return answer.collective_identifiers, next_token(answer.continuation_token)

    return page


def of_invoice_pages(
    ksef_number: str, page_size: int
) -> PageFlow[str, CollectiveIdentifiersByKsefNumberQueryResponseItem]:
    """The pages of ``GET /collective-identifiers/ksef/{n}`` (arguments checked now)."""
    number = validate_ksef_number(ksef_number)
    check_page_size(page_size, list_collective_identifiers_by_ksef_number)

    def page(token: str | None) -> Flow[tuple[list[CollectiveIdentifiersByKsefNumberQueryResponseItem], str | None]]:
        args = {"ksef_number": number, "page_size": page_size, "x_continuation_token": token or UNSET}
        answer = parsed(
            response_of((yield Call(list_collective_identifiers_by_ksef_number, args))),
            CollectiveIdentifiersByKsefNumberQueryResponse,
        )
        return answer.collective_identifiers, next_token(answer.continuation_token)

    return page


def _query_body(date_from: dt.datetime, date_to: dt.datetime, number: str | None) -> CollectiveIdentifiersQueryRequest:
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"{name}: a timezone-aware datetime")
    if not dt.timedelta(0) <= date_to - date_from <= dt.timedelta(days=100):
        raise ValueError("date_from..date_to: at most 100 days, date_from first")
    raw: dict[str, Any] = {"dateCreatedFrom": date_from.isoformat(), "dateCreatedTo": date_to.isoformat()}
    if number is not None:
        raw["collectiveIdentifierNumber"] = number
    return CollectiveIdentifiersQueryRequest.from_dict(raw)


class CollectiveIdentifiers:
    """Collective identifiers of the context."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def create(self, invoices: Iterable[str | dict[str, Any]]) -> str:
        """Group invoices of one seller; returns the identifier's number.

        Each invoice is a KSeF number, or a dict with ``ksefNumber`` and optionally ``description``
        and ``payment`` (``{"amount": Decimal("100.00"), "currency": "PLN"}``).
        """
        return run(_create_flow(invoices), self._client)

    def invoices(
        self, numbers: Iterable[str], *, page_size: int = 100, cursor: str | None = None
    ) -> Pager[CollectiveIdentifierInvoicesQueryResponseItem, str]:
        """Every invoice of up to 10 identifiers (KSeF number descending), fetched page by page."""
        return pager(invoices_pages(numbers, page_size), self._client, cursor)

    def query(
        self,
        date_from: dt.datetime,
        date_to: dt.datetime,
        *,
        number: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> Pager[CollectiveIdentifiersQueryResponseItem, str]:
        """Identifiers created between ``date_from`` and ``date_to`` (at most 100 days)."""
        return pager(query_pages(date_from, date_to, number, page_size), self._client, cursor)

    def of_invoice(
        self, ksef_number: str, *, page_size: int = 100, cursor: str | None = None
    ) -> Pager[CollectiveIdentifiersByKsefNumberQueryResponseItem, str]:
        """The identifiers an invoice belongs to."""
        return pager(of_invoice_pages(ksef_number, page_size), self._client, cursor)


class AsyncCollectiveIdentifiers:
    """Collective identifiers of the context (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def create(self, invoices: Iterable[str | dict[str, Any]]) -> str:
        """Group invoices of one seller; returns the identifier's number."""
        return await arun(_create_flow(invoices), self._client)

    def invoices(
        self, numbers: Iterable[str], *, page_size: int = 100, cursor: str | None = None
    ) -> AsyncPager[CollectiveIdentifierInvoicesQueryResponseItem, str]:
        """Every invoice of up to 10 identifiers, fetched page by page (``async for``)."""
        return apager(invoices_pages(numbers, page_size), self._client, cursor)

    def query(
        self,
        date_from: dt.datetime,
        date_to: dt.datetime,
        *,
        number: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> AsyncPager[CollectiveIdentifiersQueryResponseItem, str]:
        """Identifiers created between ``date_from`` and ``date_to`` (at most 100 days)."""
        return apager(query_pages(date_from, date_to, number, page_size), self._client, cursor)

    def of_invoice(
        self, ksef_number: str, *, page_size: int = 100, cursor: str | None = None
    ) -> AsyncPager[CollectiveIdentifiersByKsefNumberQueryResponseItem, str]:
        """The identifiers an invoice belongs to."""
        return apager(of_invoice_pages(ksef_number, page_size), self._client, cursor)
