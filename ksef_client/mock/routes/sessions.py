"""Endpoints: session status, session listings, invoice status, UPO downloads (``sessions_status``)."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import Access, Invoice, KSeFBackend, Session
from ksef_client.mock.responses import (
    api_endpoint,
    continuation_token,
    date_param,
    int_param,
    iso,
    render_status,
    storage_url,
    xml_response,
)
from ksef_client.mock.state.core import VALIDATION, Status
from ksef_client.mock.state.invoices import date_text
from ksef_client.mock.state.sessions import SessionQuery


def _counts(session: Session) -> dict[str, int]:
    return {"successfulInvoiceCount": session.succeeded, "failedInvoiceCount": len(session.failed)}


def render_session_item(session: Session) -> dict[str, Any]:
    """One entry of ``GET /sessions``."""
    return {
        "referenceNumber": session.reference_number, "status": render_status(session.status),
        "dateCreated": iso(session.created), "dateUpdated": iso(session.updated),
        "validUntil": iso(session.valid_until), "totalInvoiceCount": len(session.invoices), **_counts(session),
    }  # fmt: skip


def render_session_status(request: Request, backend: KSeFBackend, session: Session) -> dict[str, Any]:
    """``GET /sessions/{ref}``: with fresh presigned UPO links once processed."""
    body: dict[str, Any] = {
        "status": render_status(session.status), "dateCreated": iso(session.created),
        "dateUpdated": iso(session.updated), "validUntil": iso(session.valid_until),
        "invoiceCount": len(session.invoices), **_counts(session),
    }  # fmt: skip
    if session.upo_pages:
        pages = [
            {
                "referenceNumber": ref,
                "downloadUrl": storage_url(request, name),
                "downloadUrlExpirationDate": iso(expires),
            }
            for ref, name, expires in backend.sessions.session_upo_links(session)
        ]
        body["upo"] = {"pages": pages}
    return body


def render_invoice(
    request: Request, backend: KSeFBackend, session: Session, invoice: Invoice, pending: Status | None = None
) -> dict[str, Any]:
    """One invoice of a session; accepted ones carry a fresh presigned UPO link (the UPO itself is
    built when the link is first used). ``pending``: the status of an invoice still being processed
    (``Sessions.read_status``), shown without anything KSeF does not know yet."""
    seven = backend.core.settings.seven_digit_dates  # the invoice's dates as its metadata gives them
    body: dict[str, Any] = {
        "ordinalNumber": invoice.ordinal_number, "referenceNumber": invoice.reference_number,
        "invoiceHash": invoice.invoice_hash, "invoicingDate": date_text(invoice.received, seven),
        "status": render_status(invoice.status), "invoicingMode": "Offline" if invoice.offline else "Online",
    }  # fmt: skip
    if invoice.file_name is not None:
        body["invoiceFileName"] = invoice.file_name
    if pending is not None:
        body["status"] = render_status(pending)
        return body
    if invoice.invoice_number is not None:
        body["invoiceNumber"] = invoice.invoice_number
    if invoice.accepted:
        name, expires = backend.sessions.invoice_upo_link(session, invoice)
        assert invoice.acquired is not None
        body.update(ksefNumber=invoice.ksef_number, acquisitionDate=date_text(invoice.acquired, seven))
        if invoice.stored is not None:  # "Podczas sprawdzania statusu może być jeszcze niedostępna"
            body["permanentStorageDate"] = date_text(invoice.stored, seven)
        body.update(upoDownloadUrl=storage_url(request, name), upoDownloadUrlExpirationDate=iso(expires))
    return body


async def _settled(backend: KSeFBackend, reference_number: str) -> None:
    """Wait, in a worker thread, for a batch session still being processed after its close: the
    event loop keeps serving every other client meanwhile."""
    if backend.sessions.is_processing(reference_number):
        await anyio.to_thread.run_sync(backend.sessions.wait_processed, reference_number)


def _page_size(request: Request) -> int:
    return int_param(request, "pageSize", default=10, low=10, high=1000)


def _session_query(request: Request) -> SessionQuery:
    session_type = request.query_params.get("sessionType")
    if session_type not in ("Online", "Batch"):
        raise MockAPIError(21405, VALIDATION, ["sessionType: wymagane Online lub Batch."])
    return SessionQuery(
        session_type, tuple(sorted(request.query_params.getlist("statuses"))),
        request.query_params.get("referenceNumber"),
        date_param(request, "dateCreatedFrom"), date_param(request, "dateCreatedTo"),
        date_param(request, "dateClosedFrom"), date_param(request, "dateClosedTo"),
        date_param(request, "dateModifiedFrom"), date_param(request, "dateModifiedTo"),
    )  # fmt: skip


@api_endpoint("sessions_status.list_sessions")
async def list_sessions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    page = backend.sessions.listing(access, _session_query(request), _page_size(request), continuation_token(request))
    items = [render_session_item(s) for s in page.items]
    return JSONResponse({"continuationToken": page.continuation_token, "sessions": items})


@api_endpoint("sessions_status.get_session_status")
async def get_session_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    await _settled(backend, request.path_params["referenceNumber"])
    session = backend.sessions.get(access, request.path_params["referenceNumber"])
    return JSONResponse(render_session_status(request, backend, session))


async def _invoices(request: Request, backend: KSeFBackend, access: Access, failed: bool) -> Response:
    reference_number = request.path_params["referenceNumber"]
    await _settled(backend, reference_number)
    page = backend.sessions.session_invoices(
        access, reference_number, failed=failed, page_size=_page_size(request), token=continuation_token(request)
    )
    session = backend.sessions.get(access, reference_number, read=False)
    items = [render_invoice(request, backend, session, i, backend.sessions.read_status(i)) for i in page.items]
    return JSONResponse({"continuationToken": page.continuation_token, "invoices": items})


@api_endpoint("sessions_status.list_session_invoices")
async def list_session_invoices(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return await _invoices(request, backend, access, failed=False)


@api_endpoint("sessions_status.list_session_failed_invoices")
async def list_session_failed_invoices(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return await _invoices(request, backend, access, failed=True)


@api_endpoint("sessions_status.get_session_invoice_status")
async def get_session_invoice_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    ref = request.path_params["referenceNumber"]
    await _settled(backend, ref)
    invoice = backend.sessions.invoice(access, ref, request.path_params["invoiceReferenceNumber"])
    session = backend.sessions.get(access, ref, read=False)
    pending = backend.sessions.read_status(invoice)
    return JSONResponse(render_invoice(request, backend, session, invoice, pending))


@api_endpoint("sessions_status.get_invoice_upo_by_reference_number")
async def get_invoice_upo_by_reference_number(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    ref, inv = request.path_params["referenceNumber"], request.path_params["invoiceReferenceNumber"]
    await _settled(backend, ref)
    return xml_response(backend.sessions.invoice_upo(access, ref, invoice_reference_number=inv))


@api_endpoint("sessions_status.get_invoice_upo_by_ksef_number")
async def get_invoice_upo_by_ksef_number(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    ref, number = request.path_params["referenceNumber"], request.path_params["ksefNumber"]
    await _settled(backend, ref)
    return xml_response(backend.sessions.invoice_upo(access, ref, ksef_number=number))


@api_endpoint("sessions_status.get_session_upo")
async def get_session_upo(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    ref, upo_ref = request.path_params["referenceNumber"], request.path_params["upoReferenceNumber"]
    await _settled(backend, ref)
    return xml_response(backend.sessions.session_upo(access, ref, upo_ref))
