"""Endpoints: open, send to and close online and batch sessions (``online_session``, ``batch_session``).

Bodies are valid against the spec by the time a handler runs (``api_endpoint`` validates them);
the handlers turn them into the typed arguments of ``state/sessions.py``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, iso, json_body
from ksef_client.mock.routes.storage import upload_url
from ksef_client.mock.state.sessions import BatchDeclaration, DeclaredPart, Encryption, SentInvoice, system_code_of
from ksef_client.mock.state.storage import UPLOAD_HEADERS


def _form(body: dict[str, Any]) -> str:
    form = body["formCode"]
    return system_code_of(str(form["systemCode"]), str(form["schemaVersion"]), str(form["value"]))


def _features(request: Request) -> frozenset[str]:
    """The ``X-KSeF-Feature`` values of a request (the header repeated or comma-separated)."""
    values = request.headers.getlist("x-ksef-feature")
    return frozenset(name.strip().lower() for value in values for name in value.split(",") if name.strip())


def _encryption(body: dict[str, Any]) -> Encryption:
    raw = body["encryption"]
    return Encryption(str(raw["encryptedSymmetricKey"]), str(raw["initializationVector"]), raw.get("publicKeyId"))


@api_endpoint("online_session.open_online_session")
async def open_online_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    session = backend.sessions.open_online(access, _form(body), _encryption(body), _features(request))
    return JSONResponse(
        {"referenceNumber": session.reference_number, "validUntil": iso(session.valid_until)}, status_code=201
    )


@api_endpoint("online_session.send_invoice")
async def send_invoice(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    sent = SentInvoice(
        str(body["invoiceHash"]), int(body["invoiceSize"]), str(body["encryptedInvoiceHash"]),
        int(body["encryptedInvoiceSize"]), str(body["encryptedInvoiceContent"]), bool(body.get("offlineMode", False)),
        body.get("hashOfCorrectedInvoice"),
    )  # fmt: skip
    invoice = backend.sessions.send_online(access, request.path_params["referenceNumber"], sent)
    return JSONResponse({"referenceNumber": invoice.reference_number}, status_code=202)


@api_endpoint("online_session.close_online_session")
async def close_online_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.sessions.close_online(access, request.path_params["referenceNumber"])
    return Response(status_code=204)


@api_endpoint("batch_session.open_batch_session")
async def open_batch_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    batch = body["batchFile"]
    parts = tuple(
        DeclaredPart(int(p["ordinalNumber"]), int(p["fileSize"]), str(p["fileHash"])) for p in batch["fileParts"]
    )
    compression = str(batch.get("compressionType") or "Zip")
    declaration = BatchDeclaration(int(batch["fileSize"]), str(batch["fileHash"]), parts, compression)
    offline = bool(body.get("offlineMode", False))
    session = backend.sessions.open_batch(
        access, _form(body), declaration, _encryption(body), offline, _features(request)
    )
    assert session.batch is not None
    uploads = [
        {"ordinalNumber": part.ordinal_number, "method": "PUT", "url": upload_url(request, part.upload_name),
         "headers": dict(UPLOAD_HEADERS)}
        for part in session.batch.parts
    ]  # fmt: skip
    return JSONResponse({"referenceNumber": session.reference_number, "partUploadRequests": uploads}, status_code=201)


@api_endpoint("batch_session.close_batch_session")
async def close_batch_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.sessions.close_batch(access, request.path_params["referenceNumber"])
    return Response(status_code=204)
