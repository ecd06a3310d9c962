"""The emulator's HTTP plumbing shared by every route module: the ``api_endpoint`` wrapper, request
parsing and KSeF's response formats. No endpoint lives here (``mock/routes/<group>.py``).

``api_endpoint(operation_key)`` registers a handler in ``REGISTRY`` and wraps it with what the
spec gives the operation: injected faults, rate limits, the bearer token, permissions and request
validation; ``MockAPIError`` becomes KSeF's error body in either of its formats, so no endpoint
formats an error itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ksef_client._generated.operations import OPERATIONS, Operation
from ksef_client.crypto import sha256_b64
from ksef_client.mock.exceptions import Forbidden, MockAPIError, SchemaViolation, TooManyRequests, UnsupportedMediaType
from ksef_client.mock.faults import DROP, DROP_AFTER, Fault
from ksef_client.mock.models import Access, KSeFBackend, Status
from ksef_client.mock.state.core import VALIDATION
from ksef_client.mock.validation import check_request, documented_error

Handler = Callable[[Request, KSeFBackend, Access | None], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
PROBLEM = "application/problem+json"
SCHEMA_VIOLATION_HEADER = "x-ksef-mock-rejected-by"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    410: "Gone",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
}
# operation key -> endpoint, filled by ``api_endpoint`` as the route modules are imported.
REGISTRY: dict[str, Endpoint] = {}
log = logging.getLogger("ksef_client.mock")


def backend_of(request: Request) -> KSeFBackend:
    """The backend the app was created with."""
    backend: KSeFBackend = request.app.state.backend
    return backend


def api_endpoint(operation: str, *, bearer: str = "access") -> Callable[[Handler], Endpoint]:
    """Register ``handler`` as the emulator's ``operation`` with the auth, permissions, limits and
    faults the spec gives it.

    ``bearer`` is the token the operation takes: ``"access"`` (checked here, with the spec's
    permissions; the handler gets the ``Access``), or ``"authentication"``/``"refresh"``/
    ``"access|refresh"`` (either; checked here for kind and expiry before the request is
    validated, as KSeF answers 401 before 400; the handler reads the token itself).
    """
    spec = OPERATIONS[operation]

    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            backend = backend_of(request)
            try:
                fault = backend.faults.take(operation)
                if fault is not None:
                    await wait_out(fault)
                    if fault.status == DROP:
                        return BrokenResponse()
                    if fault.status >= 400:
                        request.scope["ksef_injected_fault"] = True  # outside the spec on purpose
                        return render_fault(request, fault, operation)
                await read_body(request, body_limit(operation))
                access = _caller(backend, request, spec, bearer)
                address = request.client.host if request.client else "-"
                refused = backend.check_rate(operation, address, access.context if access else None)
                if refused is not None:
                    raise TooManyRequests(*refused)
                await _validate(request, spec.method, spec.path)
                response = await handler(request, backend, access)
                # DROP_AFTER: KSeF did the work, the client never hears of it.
                return BrokenResponse() if fault is not None and fault.status == DROP_AFTER else response
            except MockAPIError as error:
                return render_error(request, error)
            except ClientDisconnect:
                return hung_up(request)

        endpoint.__name__ = operation.replace(".", "__")
        REGISTRY[operation] = endpoint
        return endpoint

    return wrap


async def wait_out(fault: Fault) -> None:
    """Wait ``fault.delay`` seconds before the request is handled, without holding up the server:
    other requests are answered meanwhile (a fault's ``delay`` slows its request only)."""
    if fault.delay:
        await anyio.sleep(fault.delay)


# The largest body each operation takes (KSeF's sizes): an online invoice is at most 3 MB with
# attachments, encrypted (+16) and Base64 (4/3) in JSON; a XAdES document is small; JSON
# requests otherwise are tiny. Anything larger is refused before it is read whole.
# An online invoice is sent in Base64 within JSON: room for the largest a context's limits allow
# (the spec's maxInvoiceWithAttachmentSizeInMB is at most 10).
BODY_LIMITS = {"online_session.send_invoice": 14_000_000, "auth.authenticate_xades_signature": 1_000_000}
DEFAULT_BODY_LIMIT = 1_000_000


def body_limit(operation: str) -> int:
    """How many bytes of body ``operation`` accepts."""
    return BODY_LIMITS.get(operation, DEFAULT_BODY_LIMIT)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read at most ``limit`` bytes far: a larger declared or sent body is
    refused (400/21405) without being held in memory. ``ClientDisconnect`` when the client hung up
    before it arrived whole (its callers answer ``hung_up``)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise MockAPIError(21405, VALIDATION, [f"Treść żądania ma {declared} B, dozwolone najwyżej {limit} B."])
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise MockAPIError(21405, VALIDATION, [f"Treść żądania przekracza {limit} B."])
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body
    return body


def hung_up(request: Request) -> Response:
    """The answer to a request whose client hung up before its body arrived (``ClientDisconnect``
    from ``read_body``): a client that gave up during a fault's ``delay`` (a timeout, a cancelled
    upload), which a test of the client's own cancellation causes on purpose. Nothing is done and
    nobody hears the answer (the server sends nothing on a closed connection); an INFO line says
    so, instead of the "Exception in ASGI application" traceback the server logs for a crash."""
    log.info("%s %s: the client hung up before its request was read; not handled", request.method, request.url.path)
    request.scope["ksef_framework_answer"] = True  # no answer of the spec: strict mode leaves it be
    return Response(status_code=499)  # nginx's "client closed request"; never sent


def client_ip(request: Request) -> str:
    """The address the request came from, as KSeF sees it: the connection's (the ASGI scope's
    ``client``; ``httpx.ASGITransport(client=(host, port))`` sets it in tests)."""
    return request.client.host if request.client else "127.0.0.1"


def _caller(backend: KSeFBackend, request: Request, spec: Operation, bearer: str) -> Access | None:
    """The caller's token checked: 401 for a missing, wrong or expired one; then 403 when its
    login's IP policy does not allow the address (``Auth.check_address``), before the
    permissions."""
    if not spec.requires_token:
        return None
    authorization = request.headers.get("authorization")
    if bearer != "access":
        claims = backend.auth.claims(authorization, *bearer.split("|"))
        if claims["typ"] != "authentication":  # the policy binds the access and refresh tokens
            backend.auth.check_address(claims["ref"], client_ip(request))
        return None
    access = backend.authenticate(authorization)
    backend.auth.check_address(access.auth_reference_number, client_ip(request))
    backend.require_any(access, spec.permissions)
    return access


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


# --- errors -------------------------------------------------------------------------------------


def render_fault(request: Request, fault: Fault, operation: str) -> Response:
    """An injected failure: KSeF's error body for the fault's exception code, a 429 in KSeF's
    format, or a gateway-style 5xx HTML page (with the fault's ``Retry-After``, when it has one:
    HTTP lets a 503 say when to come back, RFC 9110 10.2.3)."""
    if fault.code is not None:
        return render_error(request, injected_error(request, fault, operation))
    if fault.status == 429:
        spec = OPERATIONS.get(operation)
        group = spec.rate_limit_group if spec is not None and spec.rate_limit_group else operation
        return render_error(request, TooManyRequests(fault.retry_after or 1, group))
    page = f"<html><body><h1>{fault.status} {_phrase(fault.status)}</h1></body></html>"
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    return Response(page, status_code=fault.status, media_type="text/html", headers=headers)


def _phrase(status: int) -> str:
    """The reason phrase of an HTTP status (a fault's page said "Service Unavailable" for any)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def injected_error(request: Request, fault: Fault, operation: str) -> MockAPIError:
    """The ``MockAPIError`` a fault with an exception code stands for: its own texts, or the spec's
    for the code (``validation.documented_error``: the operation's 400 table first), ``{name}``
    placeholders filled from the request's path parameters."""
    assert fault.code is not None
    spec = OPERATIONS.get(operation)
    documented = documented_error(fault.code, spec.method, spec.path) if spec is not None else None
    documented = documented or documented_error(fault.code) or (f"Błąd {fault.code}.", "")
    description = fault.description if fault.description is not None else documented[0]
    if fault.details is not None:
        details = list(fault.details)
    else:
        detail = re.sub(r"\{(\w+)\}", lambda m: str(request.path_params.get(m[1], m[0])), documented[1])
        details = [detail] if detail not in ("", "-") else []
    error = MockAPIError(fault.code, description, details)
    error.status_code = fault.status
    return error


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
    if isinstance(error, UnsupportedMediaType):
        request.scope["ksef_framework_answer"] = True  # before any operation: no status of the spec
    wants_problem = request.headers.get("x-error-format", "").lower() == "problem-details"
    if status in (401, 403, 410, 415) or wants_problem:  # the spec declares 410 as problem+json only
        body: dict[str, Any] = {
            "title": TITLES.get(status, "Error"), "status": status, "detail": _problem_detail(error),
            "instance": request.url.path, "traceId": trace, "timestamp": now,
        }  # fmt: skip
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
            "exceptionDetailList": [detail], "referenceNumber": None, "serviceCode": trace,
            "serviceCtx": "srvKSeFMock", "serviceName": "ksef-mock", "timestamp": now,
        }
    }  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers)


def _problem_detail(error: MockAPIError) -> str:
    """A problem+json ``detail``: the error's description; for a 429 the reason and when to come
    back (``TooManyRequestsProblemDetails.detail``: "Informacja o przyczynie przekroczenia limitu
    żądań oraz wskazówki dotyczące ponowienia żądania"), as the legacy body's ``details`` say."""
    if isinstance(error, TooManyRequests) and error.details:
        return " ".join(error.details)
    return error.description


# --- request parsing ----------------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; malformed bodies are KSeF's 21405, never a 500."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        raise MockAPIError(21405, VALIDATION, ["Treść żądania nie jest poprawnym JSON."]) from None
    if not isinstance(body, dict):
        raise MockAPIError(21405, VALIDATION, ["Oczekiwano obiektu JSON."])
    return body


async def parsed_body(request: Request, model: Any) -> Any:
    """The body as a generated model; 21405 naming the problem when it does not fit the schema."""
    body = await json_body(request)
    try:
        return model.from_dict(body)
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise MockAPIError(21405, VALIDATION, [f"{model.__name__}: {type(error).__name__} {error}"]) from None


def int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low``-``high`` (KSeF's 400/21405 otherwise)."""
    raw = request.query_params.get(name, str(default))
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise MockAPIError(21405, VALIDATION, [f"{name}: dozwolone wartości {low}-{high}."])
    return int(raw)


def date_param(request: Request, name: str) -> dt.datetime | None:
    """An ISO date-time query parameter (UTC when it names no offset)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise MockAPIError(21405, VALIDATION, [f"{name}: nieprawidłowa data."]) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def continuation_token(request: Request) -> str | None:
    """The ``x-continuation-token`` header (``None`` when absent or empty)."""
    return request.headers.get("x-continuation-token") or None


def offset_params(request: Request, high: int = 100) -> tuple[int, int]:
    """``pageOffset`` and ``pageSize`` (10 to ``high``) of offset-paged listings."""
    return int_param(request, "pageOffset", default=0, low=0, high=1_000_000), int_param(
        request, "pageSize", default=10, low=10, high=high
    )


# --- rendering ----------------------------------------------------------------------------------


def iso(value: dt.datetime | None) -> str | None:
    """A datetime as KSeF writes it (ISO 8601 with offset)."""
    return value.isoformat() if value is not None else None


def render_status(status: Status) -> dict[str, Any]:
    """A ``StatusInfo`` object."""
    body: dict[str, Any] = {"code": status.code, "description": status.description}
    if status.details:
        body["details"] = status.details
    if status.extensions is not None:
        body["extensions"] = status.extensions
    return body


def storage_url(request: Request, name: str) -> str:
    """Absolute presigned URL on the called host, outside /v2 like KSeF's blob storage."""
    return str(request.base_url).rstrip("/") + f"/_storage/{name}"


def xml_response(data: bytes) -> Response:
    """An XML document with its SHA-256 in ``x-ms-meta-hash``, as KSeF and its storage send it."""
    return Response(data, media_type="application/xml", headers={"x-ms-meta-hash": sha256_b64(data)})
