"""Endpoints: KSeF tokens of a context (``tokens``): create, list, status, revoke."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, continuation_token, int_param, iso, json_body
from ksef_client.mock.state.auth import KsefToken, token_author, token_listing_key
from ksef_client.mock.state.core import VALIDATION


@api_endpoint("tokens.create_token")
async def create_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    permissions = body.get("permissions")
    description = body.get("description")
    if not isinstance(permissions, list) or not isinstance(description, str) or not 5 <= len(description) <= 256:
        raise MockAPIError(21405, VALIDATION, ["permissions (lista) i description (5-256 znaków) wymagane."])
    reference_number, token = backend.auth.create_ksef_token(access, [str(p) for p in permissions], description)
    return JSONResponse({"referenceNumber": reference_number, "token": token}, status_code=202)


def _token_body(token: KsefToken) -> dict[str, Any]:
    body: dict[str, Any] = {
        "referenceNumber": token.reference_number,
        "authorIdentifier": dict(zip(("type", "value"), token_author(token), strict=True)),
        "contextIdentifier": {"type": token.context.type, "value": token.context.value},
        "description": token.description,
        "requestedPermissions": sorted(token.permissions),
        "dateCreated": iso(token.created),
        "status": token.status,
    }
    if token.last_use is not None:
        body["lastUseDate"] = iso(token.last_use)
    return body


@api_endpoint("tokens.get_token_status")
async def get_token_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return JSONResponse(_token_body(backend.auth.ksef_token(access, request.path_params["referenceNumber"])))


@api_endpoint("tokens.revoke_token")
async def revoke_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.auth.revoke_ksef_token(access, request.path_params["referenceNumber"])
    return Response(status_code=204)


@api_endpoint("tokens.list_tokens")
async def list_tokens(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    """Newest first, ``pageSize`` (10) a page, the next page by ``x-continuation-token``."""
    assert access is not None
    query = request.query_params
    tokens = backend.auth.ksef_tokens(
        access, query.getlist("status"), query.get("description"), query.get("authorIdentifier"),
        query.get("authorIdentifierType"),
    )  # fmt: skip
    size = int_param(request, "pageSize", default=10, low=10, high=100)
    page = backend.core.page(tokens, size, continuation_token(request), token_listing_key, descending=True)
    return JSONResponse({"continuationToken": page.continuation_token, "tokens": [_token_body(t) for t in page.items]})
