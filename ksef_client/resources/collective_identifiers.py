"""``ksef.collective_identifiers``: group a seller's invoices under one number (one payment for many
invoices), and list the invoices of identifiers.

Arguments are checked before any request, against what the spec lets the request itself show:
each invoice against ``CollectiveIdentifierInvoice`` (keys, a payment's amount and currency code, a
description of at most 512 characters) and its KSeF number's checksum; no KSeF number twice (KSeF's
71005), invoices of one seller (71004: a KSeF number starts with its seller's NIP), at least 2 and at
most the context's limit (500 by default: more are checked against ``GET /limits/context``, read
then, before the identifier is asked for); 1 to 10 well-formed collective identifiers per invoices
query, page sizes within the spec's bounds. What only KSeF knows (71001: an invoice it does not
hold; 71002: one already in 132 identifiers of the context) comes back as a ``BadRequestError``
whose ``codes`` and message carry KSeF's code, description and details (the KSeF number).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, PageFlow, apager, arun, pager, response_of, run, token_pages
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
from ksef_client._query_filters import checked_against
from ksef_client.identifiers import validate_collective_identifier, validate_ksef_number
from ksef_client.pagination import AsyncPager, Pager, check_page_size, next_token
from ksef_client.resources.limits import context_limits_flow

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

MAX_INVOICES = 500  # KSeF's default per identifier (GenerateCollectiveIdentifierRequest.invoices)
MAX_IDENTIFIERS_PER_QUERY = 10


def _invoice_entry(invoice: str | dict[str, Any], index: int) -> dict[str, Any]:
    """``invoices[index]`` as the API's ``CollectiveIdentifierInvoice`` JSON (a ``Decimal`` amount
    as the double it is exactly), checked against the spec's schema and the KSeF number's checksum."""
    path = f"invoices[{index}]"
    entry: dict[str, Any] = checked_against(
        {"ksefNumber": invoice} if isinstance(invoice, str) else invoice, "CollectiveIdentifierInvoice", path
    )
    validate_ksef_number(entry["ksefNumber"], f"{path}.ksefNumber")
    return entry


def _checked_invoices(invoices: Iterable[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """The invoices of one identifier, each checked (``_invoice_entry``), none given twice, all of
    one seller; ``ValueError`` naming the first that breaks a rule (KSeF's 71005, 71004)."""
    if isinstance(invoices, str | bytes | dict):
        raise ValueError("invoices: a list of KSeF numbers or dicts, not one of them")
    entries = [_invoice_entry(invoice, index) for index, invoice in enumerate(invoices)]
    first: dict[str, int] = {}
    for index, entry in enumerate(entries):
        number = entry["ksefNumber"]
        if number in first:
            raise ValueError(
                f"invoices[{index}].ksefNumber: {number} is invoices[{first[number]}] again; KSeF refuses a "
                "KSeF number given twice (71005 Powtórzony numer KSeF w żądaniu)"
            )
        first[number] = index
        if number[:10] != entries[0]["ksefNumber"][:10]:
            raise ValueError(
                f"invoices[{index}].ksefNumber: {number} is an invoice of seller {number[:10]}, invoices[0] one of "
                f"{entries[0]['ksefNumber'][:10]}; an identifier groups invoices of one seller (KSeF refuses "
                "others with 71004 Faktury mają różnych sprzedawców)"
            )
    return entries


def _create_flow(invoices: Iterable[str | dict[str, Any]]) -> Flow[str]:
    entries = _checked_invoices(invoices)
    most, where = MAX_INVOICES, " (KSeF's default limit)"
    if len(entries) > MAX_INVOICES:  # a context's limit may be raised (to at most 5000): read it
        most = (yield from context_limits_flow()).collective_identifier.max_invoices
        where = " (the context's limit, GET /limits/context)"
    if not 2 <= len(entries) <= most:
        raise ValueError(f"invoices: 2 to {most} invoices of one seller{where}, got {len(entries)}")
    body = GenerateCollectiveIdentifierRequest.from_dict({"invoices": entries})
    call = Call(create_collective_identifier, {"body": body})
    return parsed(response_of((yield call)), GenerateCollectiveIdentifierResponse).collective_identifier_number


def _numbers(numbers: Iterable[str]) -> list[str]:
    if isinstance(numbers, str):
        raise ValueError("numbers: a list of collective identifier numbers, not one of them")
    wanted = list(dict.fromkeys(numbers))
    if not 1 <= len(wanted) <= MAX_IDENTIFIERS_PER_QUERY:
        raise ValueError(f"numbers: 1 to {MAX_IDENTIFIERS_PER_QUERY} collective identifier numbers")
    return [validate_collective_identifier(n, f"numbers[{i}]") for i, n in enumerate(wanted)]


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

    return token_pages(page)


class QueryFilters(NamedTuple):
    """The optional filters of ``POST /collective-identifiers/query`` besides the dates."""

    number: str | None = None
    invoice_count_from: int | None = None
    invoice_count_to: int | None = None
    created_in_current_context: bool | None = None


def query_pages(
    date_from: dt.datetime, date_to: dt.datetime, filters: QueryFilters, page_size: int
) -> PageFlow[str, CollectiveIdentifiersQueryResponseItem]:
    """The pages of ``POST /collective-identifiers/query`` (arguments checked now)."""
    body = _query_body(date_from, date_to, filters)
    check_page_size(page_size, query_collective_identifiers)

    def page(token: str | None) -> Flow[tuple[list[CollectiveIdentifiersQueryResponseItem], str | None]]:
        args = {"body": body, "page_size": page_size, "x_continuation_token": token or UNSET}
        answer = parsed(
            response_of((yield Call(query_collective_identifiers, args))), CollectiveIdentifiersQueryResponse
        )
        return answer.collective_identifiers, next_token(answer.continuation_token)

    return token_pages(page)


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

    return token_pages(page)


def _query_body(
    date_from: dt.datetime, date_to: dt.datetime, filters: QueryFilters
) -> CollectiveIdentifiersQueryRequest:
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"{name}: a timezone-aware datetime")
    if not dt.timedelta(0) <= date_to - date_from <= dt.timedelta(days=100):
        raise ValueError("date_from..date_to: at most 100 days, date_from first")
    raw: dict[str, Any] = {"dateCreatedFrom": date_from.isoformat(), "dateCreatedTo": date_to.isoformat()}
    if filters.number is not None:
        raw["collectiveIdentifierNumber"] = validate_collective_identifier(filters.number, "number")
    optional = {
        "invoiceCountFrom": filters.invoice_count_from,
        "invoiceCountTo": filters.invoice_count_to,
        "createdInCurrentContext": filters.created_in_current_context,
    }
    raw.update({key: value for key, value in optional.items() if value is not None})
    checked = checked_against(raw, "CollectiveIdentifiersQueryRequest", "query")  # types, int32
    # What the spec's schema does not say: a count is not negative, and a range runs upwards.
    low, high = filters.invoice_count_from, filters.invoice_count_to
    if min(low or 0, high or 0) < 0:
        raise ValueError(f"invoice_count_from/to: numbers of invoices, from 0; got {low!r}, {high!r}")
    if low is not None and high is not None and low > high:
        raise ValueError(f"invoice_count_from ({low}) is more than invoice_count_to ({high}): nothing would match")
    return CollectiveIdentifiersQueryRequest.from_dict(checked)


class CollectiveIdentifiers:
    """Collective identifiers of the context."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def create(self, invoices: Iterable[str | dict[str, Any]]) -> str:
        """Group invoices of one seller; returns the identifier's number.

        Each invoice is a KSeF number, or a dict with ``ksefNumber`` and optionally ``description``
        (at most 512 characters) and ``payment`` (``{"amount": Decimal("100.00"), "currency": "PLN"}``).
        ``ValueError`` naming the invoice (``invoices[3].ksefNumber``), nothing sent: a KSeF number
        malformed or given twice (KSeF's 71005), another seller's invoice than the first's (71004),
        a key, currency or description the spec does not allow; fewer than 2 invoices or more than
        the context's limit (500 by default; more are checked against ``ksef.limits.context()``,
        read first). ``BadRequestError`` with KSeF's code in ``codes`` for what only KSeF knows:
        71001 an invoice it does not hold, 71002 one already in 132 identifiers of the context.
        """
        return run(_create_flow(invoices), self._client)

    def invoices(
        self, numbers: Iterable[str], *, page_size: int = 100, cursor: str | None = None
    ) -> Pager[CollectiveIdentifierInvoicesQueryResponseItem, str]:
        """Every invoice of up to 10 identifiers (KSeF number descending), fetched page by page;
        ``ValueError`` for a number that is not a collective identifier's (format, checksum)."""
        return pager(invoices_pages(numbers, page_size), self._client, cursor)

    def query(
        self,
        date_from: dt.datetime,
        date_to: dt.datetime,
        *,
        number: str | None = None,
        invoice_count_from: int | None = None,
        invoice_count_to: int | None = None,
        created_in_current_context: bool | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> Pager[CollectiveIdentifiersQueryResponseItem, str]:
        """Identifiers the context sees (created in it, or, in a NIP context, of its invoices as
        the seller) created between ``date_from`` and ``date_to`` (at most 100 days), newest first.
        ``number``: only that one (``ValueError`` when it is not a collective identifier's number);
        ``invoice_count_from``/``invoice_count_to``: only those grouping that many invoices;
        ``created_in_current_context``: only those created (``True``) or not created (``False``) in
        this context. Bad values are a ``ValueError`` before any request."""
        filters = QueryFilters(number, invoice_count_from, invoice_count_to, created_in_current_context)
        return pager(query_pages(date_from, date_to, filters, page_size), self._client, cursor)

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
        """Group invoices of one seller; returns the identifier's number. The invoices are checked
        as ``CollectiveIdentifiers.create`` says, and KSeF's refusals raised the same way."""
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
        invoice_count_from: int | None = None,
        invoice_count_to: int | None = None,
        created_in_current_context: bool | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> AsyncPager[CollectiveIdentifiersQueryResponseItem, str]:
        """Identifiers created between ``date_from`` and ``date_to`` (see ``CollectiveIdentifiers.query``)."""
        filters = QueryFilters(number, invoice_count_from, invoice_count_to, created_in_current_context)
        return apager(query_pages(date_from, date_to, filters, page_size), self._client, cursor)

    def of_invoice(
        self, ksef_number: str, *, page_size: int = 100, cursor: str | None = None
    ) -> AsyncPager[CollectiveIdentifiersByKsefNumberQueryResponseItem, str]:
        """The identifiers an invoice belongs to."""
        return apager(of_invoice_pages(ksef_number, page_size), self._client, cursor)
