"""Endpoints: public keys, challenge, token and XAdES authentication, redeem, refresh, KSeF tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.auth import Access, AuthOperation, Context, KsefToken
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.responses import api_endpoint, iso, json_body, render_status

MAX_XADES_BYTES = 1_000_000
METHOD_NAMES = {
    "Token": "Token KSeF",
    "QualifiedSeal": "Pieczęć kwalifikowana",
    "QualifiedSignature": "Podpis kwalifikowany",
}


@api_endpoint("security.get_public_key_certificates")
async def get_public_key_certificates(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    items = [
        {
            "certificate": pair.der_b64,
            "certificateId": format(pair.certificate.serial_number, "X"),
            "publicKeyId": pair.public_key_id,
            "validFrom": iso(pair.certificate.not_valid_before_utc),
            "validTo": iso(pair.certificate.not_valid_after_utc),
            "usage": [pair.usage],
        }
        for pair in emulator_keys().published
    ]
    return JSONResponse(items)


@api_endpoint("auth.create_challenge")
async def create_challenge(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    challenge, timestamp, millis = backend.create_challenge()
    client_ip = request.client.host if request.client else "127.0.0.1"
    return JSONResponse(
        {"challenge": challenge, "timestamp": iso(timestamp), "timestampMs": millis, "clientIp": client_ip}
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
        raise MockAPIError(
            21405, "Błąd walidacji danych wejściowych.", ["Wymagane: challenge, contextIdentifier, encryptedToken."]
        )
    context = Context(str(identifier.get("type")), str(identifier.get("value")))
    found = backend.authenticate_with_ksef_token(
        str(body["challenge"]), context, str(body["encryptedToken"]), body.get("publicKeyId")
    )
    return _init_response(*found)


@api_endpoint("auth.authenticate_xades_signature")
async def authenticate_xades_signature(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    document = await request.body()
    if not document.strip():
        raise MockAPIError(21001, "Nieczytelna treść.")
    if len(document) > MAX_XADES_BYTES:
        raise MockAPIError(21405, "Błąd walidacji danych wejściowych.", ["Dokument jest za duży."])
    return _init_response(*backend.authenticate_with_xades(document))


def _operation_body(operation: AuthOperation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "startDate": iso(operation.started),
        "authenticationMethod": operation.method,
        "authenticationMethodInfo": {
            "category": operation.category,
            "code": operation.method,
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


@api_endpoint("auth.get_auth_status", bearer="own")
async def get_auth_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    reference_number = request.path_params["referenceNumber"]
    operation = backend.auth_operation_for(request.headers.get("authorization"), reference_number)
    return JSONResponse(_operation_body(operation))


@api_endpoint("auth.redeem_token", bearer="own")
async def redeem_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    (access_token, access_until), (refresh, refresh_until) = backend.redeem(request.headers.get("authorization"))
    return JSONResponse(
        {
            "accessToken": {"token": access_token, "validUntil": iso(access_until)},
            "refreshToken": {"token": refresh, "validUntil": iso(refresh_until)},
        }
    )


@api_endpoint("auth.refresh_token", bearer="own")
async def refresh_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    token, until = backend.refresh(request.headers.get("authorization"))
    return JSONResponse({"accessToken": {"token": token, "validUntil": iso(until)}})


@api_endpoint("auth_sessions.list_auth_sessions")
async def list_auth_sessions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    items = [
        {
            **_operation_body(o),
            "referenceNumber": o.reference_number,
            "isCurrent": o.reference_number == access.auth_reference_number,
        }
        for o in backend.auth_sessions(access)
    ]
    return JSONResponse({"items": items})


@api_endpoint("auth_sessions.revoke_current_auth_session")
async def revoke_current_auth_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.revoke_auth_session(access)
    return Response(status_code=204)


@api_endpoint("auth_sessions.revoke_auth_session")
async def revoke_auth_session(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.revoke_auth_session(access, request.path_params["referenceNumber"])
    return Response(status_code=204)


# --- KSeF tokens ------------------------------------------------------------------------------


@api_endpoint("tokens.create_token")
async def create_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    permissions = body.get("permissions")
    description = body.get("description")
    if not isinstance(permissions, list) or not isinstance(description, str) or not 5 <= len(description) <= 256:
        raise MockAPIError(
            21405, "Błąd walidacji danych wejściowych.", ["permissions (lista) i description (5-256 znaków) wymagane."]
        )
    reference_number, token = backend.create_ksef_token(access, [str(p) for p in permissions], description)
    return JSONResponse({"referenceNumber": reference_number, "token": token}, status_code=202)


def _token_body(token: KsefToken) -> dict[str, Any]:
    body: dict[str, Any] = {
        "referenceNumber": token.reference_number,
        "authorIdentifier": {"type": "Nip", "value": token.context.nip or token.context.value},
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
    return JSONResponse(_token_body(backend.get_ksef_token(access, request.path_params["referenceNumber"])))


@api_endpoint("tokens.revoke_token")
async def revoke_token(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.revoke_ksef_token(access, request.path_params["referenceNumber"])
    return Response(status_code=204)


@api_endpoint("tokens.list_tokens")
async def list_tokens(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    tokens = [t for t in backend.ksef_tokens.values() if t.context == access.context]
    statuses = set(request.query_params.getlist("status"))
    if statuses:
        tokens = [t for t in tokens if t.status in statuses]
    return JSONResponse({"tokens": [_token_body(t) for t in tokens]})
