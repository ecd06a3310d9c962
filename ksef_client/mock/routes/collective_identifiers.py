"""Endpoints: collective identifiers (``collective_identifiers``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client._generated import models
from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, continuation_token, int_param, iso, parsed_body
from ksef_client.mock.state.collective import CollectiveIdentifier, IdentifierQuery
from ksef_client.mock.state.invoice_query import parse_date


def _item(identifier: CollectiveIdentifier, access: Access) -> dict[str, object]:
    return {
        "collectiveIdentifierNumber": identifier.number, "dateCreated": iso(identifier.created),
        "invoiceCount": len(identifier.invoices), "createdInCurrentContext": identifier.context == access.context,
    }  # fmt: skip


def _page_size(request: Request) -> int:
    return int_param(request, "pageSize", default=10, low=10, high=200)


@api_endpoint("collective_identifiers.create_collective_identifier")
async def create_collective_identifier(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.GenerateCollectiveIdentifierRequest)
    identifier = backend.collective.create(access, [i.to_dict() for i in body.invoices])
    return JSONResponse({"collectiveIdentifierNumber": identifier.number}, status_code=201)


@api_endpoint("collective_identifiers.query_collective_identifiers")
async def query_collective_identifiers(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = (await parsed_body(request, models.CollectiveIdentifiersQueryRequest)).to_dict()
    query = IdentifierQuery(
        parse_date(body["dateCreatedFrom"], "dateCreatedFrom"), parse_date(body["dateCreatedTo"], "dateCreatedTo"),
        body.get("collectiveIdentifierNumber"), body.get("invoiceCountFrom"), body.get("invoiceCountTo"),
        body.get("createdInCurrentContext"),
    )  # fmt: skip
    found = backend.collective.query(access, query)
    page = backend.core.page(found, _page_size(request), continuation_token(request),
                             key=lambda i: i.listing_key, descending=True)  # fmt: skip
    return JSONResponse({"continuationToken": page.continuation_token,
                         "collectiveIdentifiers": [_item(i, access) for i in page.items]})  # fmt: skip


@api_endpoint("collective_identifiers.query_collective_identifier_invoices")
async def query_collective_identifier_invoices(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    body = await parsed_body(request, models.CollectiveIdentifierInvoicesQueryRequest)
    size = int_param(request, "pageSize", default=10, low=10, high=500)
    items = backend.collective.invoices_of(access, list(body.collective_identifier_numbers))
    page = backend.core.page(items, size, continuation_token(request), descending=True,
                             key=lambda i: f"{i['ksefNumber']}|{i['collectiveIdentifierNumber']}")  # fmt: skip
    return JSONResponse({"continuationToken": page.continuation_token, "invoices": page.items})


@api_endpoint("collective_identifiers.list_collective_identifiers_by_ksef_number")
async def list_collective_identifiers_by_ksef_number(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    found = backend.collective.of_invoice(access, request.path_params["ksefNumber"])
    page = backend.core.page(found, _page_size(request), continuation_token(request),
                             key=lambda i: i.listing_key, descending=True)  # fmt: skip
    items = [
        {"collectiveIdentifierNumber": i.number, "createdInCurrentContext": i.context == access.context,
         "dateCreated": iso(i.created)}
        for i in page.items
    ]  # fmt: skip
    return JSONResponse({"continuationToken": page.continuation_token, "collectiveIdentifiers": items})
