"""HTTP layer of the emulator: parse the request, call the backend, render KSeF's JSON or XML.

Each endpoint is wrapped by ``api_endpoint(operation_key)``, which takes auth, permissions and
injected faults from the spec's operation table and renders ``MockAPIError`` in both of KSeF's
error formats, so no endpoint formats an error itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client._generated.operations import OPERATIONS
from ksef_client.crypto import sha256_b64
from ksef_client.mock.exceptions import Forbidden, MockAPIError, SchemaViolation, TooManyRequests
from ksef_client.mock.faults import DROP, DROP_AFTER, Fault
from ksef_client.mock.models import Access, Invoice, KSeFBackend, Session, Status
from ksef_client.mock.validation import check_request
from ksef_client.spec_version import pinned_spec_path

Handler = Callable[[Request, KSeFBackend, Access | None], Awaitable[Response]]
PROBLEM = "application/problem+json"
SCHEMA_VIOLATION_HEADER = "x-ksef-mock-rejected-by"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}


def int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low``-``high`` (KSeF's 400/21405 otherwise)."""
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise MockAPIError(21405, "Błąd walidacji danych wejściowych.", [f"{name}: dozwolone wartości {low}-{high}."])
    return int(raw)


def backend_of(request: Request) -> KSeFBackend:
    """The backend the app was created with."""
    backend: KSeFBackend = request.app.state.backend
    return backend


def api_endpoint(
    operation: str, *, bearer: str = "access"
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler with the auth, permissions and faults the spec gives ``operation``.

    ``bearer="access"`` checks the access token here; the auth endpoints that take the
    authentication or refresh token instead (``bearer="own"``) check it themselves.
    """
    spec = OPERATIONS[operation]

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            backend = backend_of(request)
            try:
                fault = backend.faults.take(operation)
                if fault is not None:
                    if fault.delay:
                        await anyio.sleep(fault.delay)
                    if fault.status == DROP:
                        return BrokenResponse()
                    if fault.status >= 400:
                        return render_fault(request, fault, operation)
                retry_after = backend.check_rate(operation, request.client.host if request.client else "-")
                if retry_after is not None:
                    raise TooManyRequests(retry_after, operation)
                access = _access(backend, request, spec, bearer)
                await _validate(request, spec.method, spec.path)
                response = await handler(request, backend, access)
                # DROP_AFTER: KSeF did the work, the client never hears of it.
                return BrokenResponse() if fault is not None and fault.status == DROP_AFTER else response
            except MockAPIError as error:
                return render_error(request, error)

        endpoint.__name__ = operation.replace(".", "__")
        return endpoint

    return wrap


class BrokenResponse(Response):
    """Promises a body and sends half of it: the client sees the connection break."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=200)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"broken": ', "more_body": False})


async def _validate(request: Request, method: str, path: str) -> None:
    body = await request.body() if method in ("POST", "PUT", "PATCH") else None
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    check_request(method, path, dict(request.path_params), query, dict(request.headers), body)


def _access(backend: KSeFBackend, request: Request, spec: Any, bearer: str) -> Access | None:
    if not (spec.requires_token and bearer == "access"):
        return None
    access = backend.authenticate(request.headers.get("authorization"))
    backend.require_any(access, spec.permissions)
    return access


def render_fault(request: Request, fault: Fault, operation: str) -> Response:
    """An injected failure: a 429 in KSeF's format or a gateway-style 5xx HTML page."""
    if fault.status == 429:
        return render_error(request, TooManyRequests(fault.retry_after or 1, operation))
    page = f"<html><body><h1>{fault.status} Service Unavailable</h1></body></html>"
    return Response(page, status_code=fault.status, media_type="text/html")


def render_error(request: Request, error: MockAPIError) -> Response:
    """KSeF's error bodies: legacy JSON or problem+json (401/403 always problem+json)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    trace = secrets.token_hex(8)
    status = error.status_code
    headers: dict[str, str] = {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, SchemaViolation):
        headers[SCHEMA_VIOLATION_HEADER] = "schema"
    wants_problem = request.headers.get("x-error-format", "").lower() == "problem-details"
    if status in (401, 403) or wants_problem:
        body: dict[str, Any] = {
            "title": TITLES.get(status, "Error"),
            "status": status,
            "detail": error.description,
            "instance": request.url.path,
            "traceId": trace,
            "timestamp": now,
        }
        if isinstance(error, Forbidden):
            body["reasonCode"] = error.reason_code
            if error.security is not None:
                body["security"] = error.security
        if status in (400, 429):
            body["errors"] = [{"code": error.code, "description": error.description, "details": error.details}]
        return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)
    if status == 429:
        body = {"status": {"code": 429, "description": error.description, "details": error.details}}
        return JSONResponse(body, status_code=429, headers=headers)
    detail = {"exceptionCode": error.code, "exceptionDescription": error.description, "details": error.details}
    body = {
        "exception": {
            "exceptionDetailList": [detail],
            "referenceNumber": None,
            "serviceCode": trace,
            "serviceCtx": "srvKSeFMock",
            "serviceName": "ksef-mock",
            "timestamp": now,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; malformed bodies are KSeF's 21405, never a 500."""
    try:
        body = await request.json()
    except ValueError:
        raise MockAPIError(
            21405, "Błąd walidacji danych wejściowych.", ["Treść żądania nie jest poprawnym JSON."]
        ) from None
    if not isinstance(body, dict):
        raise MockAPIError(21405, "Błąd walidacji danych wejściowych.", ["Oczekiwano obiektu JSON."])
    return body


# --- rendering ------------------------------------------------------------------------------


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def render_status(status: Status) -> dict[str, Any]:
    body: dict[str, Any] = {"code": status.code, "description": status.description}
    if status.details:
        body["details"] = status.details
    if status.extensions is not None:
        body["extensions"] = status.extensions
    return body


def _counts(session: Session) -> dict[str, int]:
    failed = len(session.failed)
    ok = sum(1 for i in session.invoices if i.accepted)
    return {"successfulInvoiceCount": ok, "failedInvoiceCount": failed}


def storage_url(request: Request, name: str) -> str:
    """Absolute presigned URL on the called host, outside /v2 like KSeF's blob storage."""
    return str(request.base_url).rstrip("/") + f"/_storage/{name}"


def render_session_item(session: Session) -> dict[str, Any]:
    """One entry of ``GET /sessions``."""
    return {
        "referenceNumber": session.reference_number,
        "status": render_status(session.status),
        "dateCreated": iso(session.created),
        "dateUpdated": iso(session.updated),
        "validUntil": iso(session.valid_until),
        "totalInvoiceCount": len(session.invoices),
        **_counts(session),
    }


def render_session_status(request: Request, backend: KSeFBackend, session: Session) -> dict[str, Any]:
    """``GET /sessions/{ref}``: with fresh presigned UPO links once processed."""
    body: dict[str, Any] = {
        "status": render_status(session.status),
        "dateCreated": iso(session.created),
        "dateUpdated": iso(session.updated),
        "validUntil": iso(session.valid_until),
        "invoiceCount": len(session.invoices),
        **_counts(session),
    }
    if session.upo_pages:
        pages = []
        for ref, xml in session.upo_pages:
            name, expires = backend.presign(xml)
            pages.append(
                {
                    "referenceNumber": ref,
                    "downloadUrl": storage_url(request, name),
                    "downloadUrlExpirationDate": iso(expires),
                }
            )
        body["upo"] = {"pages": pages}
    return body


def render_invoice(request: Request, backend: KSeFBackend, session: Session, invoice: Invoice) -> dict[str, Any]:
    """One invoice of a session; accepted ones carry a fresh presigned UPO link."""
    body: dict[str, Any] = {
        "ordinalNumber": invoice.ordinal_number,
        "referenceNumber": invoice.reference_number,
        "invoiceHash": invoice.invoice_hash,
        "invoicingDate": iso(invoice.received),
        "status": render_status(invoice.status),
        "invoicingMode": "Offline" if invoice.offline else "Online",
    }
    if invoice.invoice_number is not None:
        body["invoiceNumber"] = invoice.invoice_number
    if invoice.file_name is not None:
        body["invoiceFileName"] = invoice.file_name
    if invoice.accepted:
        upo = backend.invoice_upo_for(session, invoice)
        name, expires = backend.presign(upo)
        body.update(
            ksefNumber=invoice.ksef_number,
            acquisitionDate=iso(invoice.acquired),
            permanentStorageDate=iso(invoice.acquired),
            upoDownloadUrl=storage_url(request, name),
            upoDownloadUrlExpirationDate=iso(expires),
        )
    return body


def xml_response(data: bytes) -> Response:
    """An XML document with its SHA-256 in ``x-ms-meta-hash``, as KSeF and its storage send it."""
    return Response(data, media_type="application/xml", headers={"x-ms-meta-hash": sha256_b64(data)})


# --- endpoints: status and UPO ----------------------------------------------------------------


def _page_size(request: Request) -> int:
    raw = request.query_params.get("pageSize", "10")
    try:
        size = int(raw)
    except ValueError:
        raise MockAPIError(
            21405, "Błąd walidacji danych wejściowych.", [f"pageSize: {raw!r} nie jest liczbą."]
        ) from None
    if not 10 <= size <= 1000:
        raise MockAPIError(21405, "Błąd walidacji danych wejściowych.", ["pageSize: dozwolone wartości 10-1000."])
    return size


def _date(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise MockAPIError(21405, "Błąd walidacji danych wejściowych.", [f"{name}: nieprawidłowa data."]) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@api_endpoint("sessions_status.list_sessions")
async def list_sessions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    session_type = request.query_params.get("sessionType")
    if session_type not in ("Online", "Batch"):
        raise MockAPIError(21405, "Błąd walidacji danych wejściowych.", ["sessionType: wymagane Online lub Batch."])
    page = backend.list_sessions(
        access,
        session_type,
        statuses=request.query_params.getlist("statuses"),
        reference_number=request.query_params.get("referenceNumber"),
        created_from=_date(request, "dateCreatedFrom"),
        created_to=_date(request, "dateCreatedTo"),
        page_size=_page_size(request),
        continuation_token=request.headers.get("x-continuation-token") or None,
    )
    items = [render_session_item(s) for s in page.items if isinstance(s, Session)]
    return JSONResponse({"continuationToken": page.continuation_token, "sessions": items})


@api_endpoint("sessions_status.get_session_status")
async def get_session_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    session = backend.get_session(access, request.path_params["referenceNumber"])
    return JSONResponse(render_session_status(request, backend, session))


async def _invoices(request: Request, backend: KSeFBackend, access: Access, failed: bool) -> Response:
    reference_number = request.path_params["referenceNumber"]
    page = backend.session_invoices(
        access, reference_number, failed=failed, page_size=_page_size(request),
        continuation_token=request.headers.get("x-continuation-token") or None,
    )  # fmt: skip
    session = backend.get_session(access, reference_number, read=False)
    items = [render_invoice(request, backend, session, i) for i in page.items if isinstance(i, Invoice)]
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
    invoice = backend.get_invoice(access, ref, request.path_params["invoiceReferenceNumber"])
    session = backend.get_session(access, ref, read=False)
    return JSONResponse(render_invoice(request, backend, session, invoice))


@api_endpoint("sessions_status.get_invoice_upo_by_reference_number")
async def get_invoice_upo_by_reference_number(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    ref, inv = request.path_params["referenceNumber"], request.path_params["invoiceReferenceNumber"]
    return xml_response(backend.invoice_upo(access, ref, invoice_reference_number=inv))


@api_endpoint("sessions_status.get_invoice_upo_by_ksef_number")
async def get_invoice_upo_by_ksef_number(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    ref, number = request.path_params["referenceNumber"], request.path_params["ksefNumber"]
    return xml_response(backend.invoice_upo(access, ref, ksef_number=number))


@api_endpoint("sessions_status.get_session_upo")
async def get_session_upo(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    ref, upo_ref = request.path_params["referenceNumber"], request.path_params["upoReferenceNumber"]
    return xml_response(backend.session_upo(access, ref, upo_ref))


@functools.cache
def published_spec() -> bytes:
    """What the emulator publishes as its spec: the pinned one, byte for byte."""
    return pinned_spec_path().read_bytes()


async def spec_document(request: Request) -> Response:
    """``GET /docs/v2/openapi.json``: the OpenAPI spec, public (no token, no rate limit), where KSeF
    publishes its own (``ksef doctor`` reads the API version from it)."""
    return Response(published_spec(), media_type="application/json")


STORAGE_DOWNLOAD = "storage.download"  # the fault rules' name for presigned downloads


def storage_fault(request: Request, operation: str) -> tuple[Fault | None, Response | None]:
    """A storage request's fault (explicit rules only: storage errors are not KSeF's) and, unless the
    work is to be done first (``DROP_AFTER``), the answer that replaces it: a connection broken off
    mid-body or an Azure-like error."""
    fault = backend_of(request).faults.take(operation, seeded=False)
    if fault is None or fault.status == DROP_AFTER:
        return fault, None
    if fault.status == DROP:
        return fault, BrokenResponse()
    return fault, Response(b"<Error><Code>ServerBusy</Code></Error>", fault.status, media_type="application/xml")


async def storage_get(request: Request) -> Response:
    """Presigned downloads: no token, not rate-limited; 403 once the link has expired."""
    fault, instead = storage_fault(request, STORAGE_DOWNLOAD)
    if instead is not None:
        return instead
    data = backend_of(request).read_presigned(request.path_params["name"])
    if data is None:
        return Response(b"AuthenticationFailed", status_code=403, media_type="application/xml")
    if fault is not None:  # DROP_AFTER: the body breaks off after its first bytes
        return BrokenResponse()
    response = xml_response(data)
    if backend_of(request).faults.corrupt_downloads:
        response.headers["x-ms-meta-hash"] = sha256_b64(data + b"!")
    return response
