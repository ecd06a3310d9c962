"""Endpoints: open, send to and close online and batch sessions; the part upload storage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.auth import Access
from ksef_client.mock.exceptions import NotFound
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.responses import BrokenResponse, api_endpoint, backend_of, iso, json_body, storage_fault

MAX_PART_UPLOAD = 100_000_016


@api_endpoint("online_session.open_online_session")
async def open_online_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    session = backend.open_online_session(access, await json_body(request))
    body = {"referenceNumber": session.reference_number, "validUntil": iso(session.valid_until)}
    return JSONResponse(body, status_code=201)


@api_endpoint("online_session.send_invoice")
async def send_invoice(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    invoice = backend.send_online_invoice(access, request.path_params["referenceNumber"], body)
    return JSONResponse({"referenceNumber": invoice.reference_number}, status_code=202)


@api_endpoint("online_session.close_online_session")
async def close_online_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    session = backend.get_session(access, request.path_params["referenceNumber"], read=False)
    if session.kind != "Online":
        raise NotFound(21173, "Brak sesji o wskazanym numerze referencyjnym.")
    backend.close_session(session)
    return Response(status_code=204)


def upload_url(request: Request, name: str) -> str:
    """Absolute part upload URL on the called host (no token needed, like KSeF's blob storage)."""
    return str(request.base_url).rstrip("/") + f"/_upload/{name}"


@api_endpoint("batch_session.open_batch_session")
async def open_batch_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    session = backend.open_batch_session(access, await json_body(request))
    assert session.batch is not None
    uploads = [
        {
            "ordinalNumber": part.ordinal_number,
            "method": "PUT",
            "url": upload_url(request, part.upload_name),
            "headers": {"x-ms-blob-type": "BlockBlob"},
        }
        for part in session.batch.parts
    ]
    return JSONResponse({"referenceNumber": session.reference_number, "partUploadRequests": uploads}, status_code=201)


@api_endpoint("batch_session.close_batch_session")
async def close_batch_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.close_batch_session(access, request.path_params["referenceNumber"])
    return Response(status_code=204)


UPLOAD_PART = "storage.upload_part"  # the fault rules' name for part uploads


async def upload_part(request: Request) -> Response:
    """PUT of one encrypted part: 201, or 403 once the window closed (Azure-like XML error body)."""
    if request.headers.get("authorization"):
        # KSeF's storage rejects requests that carry a bearer token it cannot use.
        return Response(b"<Error><Code>InvalidAuthenticationInfo</Code></Error>", 400, media_type="application/xml")
    fault, instead = storage_fault(request, UPLOAD_PART)
    if instead is not None:
        return instead
    data = await request.body()
    if len(data) > MAX_PART_UPLOAD or not backend_of(request).upload_part(request.path_params["name"], data):
        return Response(b"<Error><Code>AuthenticationFailed</Code></Error>", 403, media_type="application/xml")
    # DROP_AFTER: the part is stored, the client never hears of it.
    return BrokenResponse() if fault is not None else Response(status_code=201)
