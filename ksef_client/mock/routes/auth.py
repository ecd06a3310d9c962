"""Endpoints: challenge, KSeF-token and XAdES authentication, status, redeem, refresh (``auth``), and the
authentication sessions of a context (``auth_sessions``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import Access, Context, KSeFBackend
from ksef_client.mock.responses import (
    api_endpoint,
    client_ip,
    continuation_token,
    int_param,
    iso,
    json_body,
    render_status,
)
from ksef_client.mock.state.auth import AuthOperation, auth_session_listing_key
from ksef_client.mock.state.core import VALIDATION
from ksef_client.mock.state.ip_policy import IpPolicy, ip_policy

METHOD_NAMES = {
    "Token": "Token KSeF",
    "QualifiedSeal": "Pieczęć kwalifikowana",
    "QualifiedSignature": "Podpis kwalifikowany",
    "InternalCertificate": "Certyfikat KSeF",
    "PeppolSignature": "Podpis dostawcy usług Peppol",  # the spec's AuthenticationMethod table
}
# authenticationMethodInfo.code: a string the spec does not enumerate; its example is
# "xades.qualified-seal" (GET /auth/sessions), and ksef2 1.1.0 maps KSeF's codes as below (its
# _AUTHENTICATION_METHOD_BY_CODE). The deprecated enum name (authenticationMethod) was sent here,
# so a client reading the code saw every login as "other" (review of tokens and permissions, 11).
METHOD_CODES = {
    "Token": "token.ksef",
    "QualifiedSeal": "xades.qualified-seal",
    "QualifiedSignature": "xades.qualified-signature",
    "InternalCertificate": "xades.ksef-certificate",
}  # PeppolSignature: KSeF's code for it is not known; the method's name stands in (the fallback)


@api_endpoint("auth.create_challenge")
async def create_challenge(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    challenge, timestamp, millis = backend.auth.create_challenge()
    # api-changelog.md 2.2.0: "clientIp, zwracające adres IP klienta zarejestrowany przez KSeF";
    # the same address the IP policy of a login is checked against.
    return JSONResponse(
        {"challenge": challenge, "timestamp": iso(timestamp), "timestampMs": millis, "clientIp": client_ip(request)}
    )


def _init_response(operation: AuthOperation, token: str, valid_until: Any) -> Response:
    body = {
        "referenceNumber": operation.reference_number,
        "authenticationToken": {"token": token, "validUntil": iso(valid_until)},
    }
    return JSONResponse(body, status_code=202)


@api_endpoint("auth.authenticate_ksef_token")
async def authenticate_ksef_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    identifier = body.get("contextIdentifier")
    if not isinstance(identifier, dict) or not body.get("challenge") or not body.get("encryptedToken"):
        raise MockAPIError(21405, VALIDATION, ["Wymagane: challenge, contextIdentifier, encryptedToken."])
    context = Context(str(identifier.get("type")), str(identifier.get("value")))
    found = backend.auth.authenticate_with_ksef_token(
        str(body["challenge"]), context, str(body["encryptedToken"]), body.get("publicKeyId"), _policy(body)
    )
    return _init_response(*found)


def _policy(body: dict[str, Any]) -> IpPolicy | None:
    """``authorizationPolicy.allowedIps`` of the body (``None``: no policy; a null list is an empty
    one); the spec's validation has checked its form already, this checks it once more for the
    state (21405 as any invalid input)."""
    policy = body.get("authorizationPolicy")
    allowed = policy.get("allowedIps") if isinstance(policy, dict) else None
    if not isinstance(allowed, dict):
        return None
    try:
        return ip_policy(*(allowed.get(key) or [] for key in ("ip4Addresses", "ip4Ranges", "ip4Masks")))
    except (ValueError, TypeError) as error:
        raise MockAPIError(21405, VALIDATION, [f"authorizationPolicy.allowedIps: {error}"]) from None


@api_endpoint("auth.authenticate_xades_signature")
async def authenticate_xades_signature(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    document = await request.body()
    if not document.strip():
        raise MockAPIError(21001, "Nieczytelna treść.")
    verify_chain = request.query_params.get("verifyCertificateChain", "false").lower() == "true"
    return _init_response(*backend.auth.authenticate_with_xades(document, verify_chain=verify_chain))


def _operation_body(operation: AuthOperation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "startDate": iso(operation.started),
        "authenticationMethod": operation.method,
        "authenticationMethodInfo": {
            "category": operation.category,
            "code": METHOD_CODES.get(operation.method, operation.method),
            "displayName": METHOD_NAMES.get(operation.method, operation.method),
        },
        "status": render_status(operation.status),
        "isTokenRedeemed": operation.redeemed,
    }
    if operation.last_refresh is not None:
        body["lastTokenRefreshDate"] = iso(operation.last_refresh)
    if operation.refresh_valid_until is not None:
        body["refreshTokenValidUntil"] = iso(operation.refresh_valid_until)
    return body


@api_endpoint("auth.get_auth_status", bearer="authentication")
async def get_auth_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    reference_number = request.path_params["referenceNumber"]
    operation = backend.auth.auth_operation_for(request.headers.get("authorization"), reference_number)
    return JSONResponse(_operation_body(operation))


@api_endpoint("auth.redeem_token", bearer="authentication")
async def redeem_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    (access_token, access_until), (refresh, refresh_until) = backend.auth.redeem(request.headers.get("authorization"))
    return JSONResponse(
        {
            "accessToken": {"token": access_token, "validUntil": iso(access_until)},
            "refreshToken": {"token": refresh, "validUntil": iso(refresh_until)},
        }
    )


@api_endpoint("auth.refresh_token", bearer="refresh")
async def refresh_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    token, until = backend.auth.refresh(request.headers.get("authorization"))
    return JSONResponse({"accessToken": {"token": token, "validUntil": iso(until)}})


@api_endpoint("auth_sessions.list_auth_sessions")
async def list_auth_sessions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    """Newest first, ``pageSize`` (10) a page, the next page by ``x-continuation-token``."""
    assert access is not None
    size = int_param(request, "pageSize", default=10, low=10, high=100)
    page = backend.core.page(
        backend.auth.auth_sessions(access), size, continuation_token(request), auth_session_listing_key,
        descending=True,
    )  # fmt: skip
    items = [
        {
            **_operation_body(o),
            "referenceNumber": o.reference_number,
            "isCurrent": o.reference_number == access.auth_reference_number,
        }
        for o in page.items
    ]
    return JSONResponse({"continuationToken": page.continuation_token, "items": items})


@api_endpoint("auth_sessions.revoke_current_auth_session", bearer="access|refresh")
async def revoke_current_auth_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    backend.auth.revoke_current_auth_session(request.headers.get("authorization"))
    return Response(status_code=204)


@api_endpoint("auth_sessions.revoke_auth_session")
async def revoke_auth_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.auth.revoke_auth_session(access, request.path_params["referenceNumber"])
    return Response(status_code=204)
