"""Endpoints: invoice download, metadata query, exports (``invoices``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, int_param, iso, json_body, render_status, storage_url, xml_response
from ksef_client.mock.state.core import VALIDATION
from ksef_client.mock.state.invoice_query import parse_query
from ksef_client.mock.state.invoices import date_text, metadata_of
from ksef_client.mock.state.sessions import Encryption, KeyUnwrapError, unwrap_key


@api_endpoint("invoices.get_invoice")
async def get_invoice(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return xml_response(backend.invoices.download(access, request.path_params["ksefNumber"]))


@api_endpoint("invoices.query_invoice_metadata")
async def query_invoice_metadata(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    query = parse_query(await json_body(request), backend.clock())
    offset = int_param(request, "pageOffset", default=0, low=0, high=1_000_000)
    size = int_param(request, "pageSize", default=10, low=10, high=250)
    order = request.query_params.get("sortOrder", "Asc")
    if order not in ("Asc", "Desc"):
        raise MockAPIError(21405, VALIDATION, ["sortOrder: Asc lub Desc."])
    page = backend.invoices.query_metadata(
        access, query, page_offset=offset, page_size=size, descending=order == "Desc"
    )
    seven = backend.core.settings.seven_digit_dates
    body = {
        "hasMore": page.has_more,
        "isTruncated": page.is_truncated,
        # "Dla dateType = Issue lub Invoicing - null" (the spec): given as null, not left out.
        "permanentStorageHwmDate": None if page.hwm is None else date_text(page.hwm, seven),
        "invoices": [metadata_of(i, seven) for i in page.invoices],
    }
    return JSONResponse(body)


@api_endpoint("invoices.export_invoices")
async def export_invoices(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    encryption, filters = body.get("encryption"), body.get("filters")
    if not isinstance(encryption, dict) or not isinstance(filters, dict):
        raise MockAPIError(21405, VALIDATION, ["encryption i filters: wymagane."])
    wrapped = Encryption(
        str(encryption.get("encryptedSymmetricKey")), str(encryption.get("initializationVector")),
        encryption.get("publicKeyId"),
    )  # fmt: skip
    try:
        key = unwrap_key(wrapped)
    except KeyUnwrapError as error:
        raise MockAPIError(21405, VALIDATION, [f"encryption: {error}"]) from error
    only_metadata = bool(body.get("onlyMetadata", False))
    compression = str(body.get("compressionType") or "Zip")
    export = backend.invoices.start_export(
        access, parse_query(filters, backend.clock()), key, only_metadata, compression
    )
    return JSONResponse({"referenceNumber": export.reference_number}, status_code=201)


def _package(request: Request, package: dict[str, Any]) -> dict[str, Any]:
    parts = [
        {**{k: v for k, v in part.items() if k != "storage"}, "url": storage_url(request, part["storage"]),
         "expirationDate": iso(part["expirationDate"])}
        for part in package["parts"]
    ]  # fmt: skip
    # The dates (permanentStorageHwmDate, lastInvoicingDate, lastPermanentStorageDate) in ISO 8601;
    # lastIssueDate is already a date (YYYY-MM-DD).
    dated = {name: iso(value) if isinstance(value, dt.datetime) else value for name, value in package.items()}
    return {**dated, "parts": parts}


@api_endpoint("invoices.get_invoice_export_status")
async def get_invoice_export_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    export = backend.invoices.export_status(access, request.path_params["referenceNumber"])
    body: dict[str, Any] = {"status": render_status(export.status)}
    package = backend.invoices.linked_package(export)  # fresh links on every poll, as KSeF's
    completed = getattr(export, "completed", None) or (backend.clock() if package is not None else None)
    if completed is not None:  # "Data zakończenia przetwarzania żądania eksportu faktur"
        body["completedDate"] = iso(completed)
    if export.package_expiration is not None:  # 200 and 210 (the spec: after it, no package)
        body["packageExpirationDate"] = iso(export.package_expiration)
    if package is not None:
        body["package"] = _package(request, package)
    return JSONResponse(body)
