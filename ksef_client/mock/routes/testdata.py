"""Endpoints: ``/testdata/*``, the TEST environment's helpers (subjects, persons, permissions,
attachments, context blocks, limit overrides). State lives in ``backend.testdata``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ksef_client.mock.auth import Access, Context
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.responses import api_endpoint, json_body

_VALIDATION = "Błąd walidacji danych wejściowych."
PERMISSIONS = frozenset(
    {"InvoiceRead", "InvoiceWrite", "Introspection", "CredentialsRead", "CredentialsManage",
     "EnforcementOperations", "SubunitManage", "CollectiveIdentifierManage"}
)  # fmt: skip


def _ok() -> Response:
    return Response(status_code=200)


def _required(body: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if body.get(n) in (None, "")]
    if missing:
        raise MockAPIError(21405, _VALIDATION, [f"{', '.join(missing)}: wymagane."])


def _identifier(raw: object, name: str) -> tuple[str, str]:
    if not isinstance(raw, dict) or not raw.get("type") or not raw.get("value"):
        raise MockAPIError(21405, _VALIDATION, [f"{name}: wymagane type i value."])
    return str(raw["type"]), str(raw["value"])


@api_endpoint("testdata.create_test_subject")
async def create_test_subject(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    _required(body, "subjectNip", "subjectType", "description")
    backend.testdata["subjects"][str(body["subjectNip"])] = body
    return _ok()


@api_endpoint("testdata.remove_test_subject")
async def remove_test_subject(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    backend.testdata["subjects"].pop(str(body.get("subjectNip")), None)
    return _ok()


@api_endpoint("testdata.create_test_person")
async def create_test_person(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    _required(body, "nip", "pesel", "description")
    backend.testdata["persons"][str(body["nip"])] = body
    backend.testdata["persons"][str(body["pesel"])] = body
    return _ok()


@api_endpoint("testdata.remove_test_person")
async def remove_test_person(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    backend.testdata["persons"].pop(str(body.get("nip")), None)
    return _ok()


def _grant_args(body: dict[str, Any]) -> tuple[Context, str, frozenset[str]]:
    context = Context(*_identifier(body.get("contextIdentifier"), "contextIdentifier"))
    kind, value = _identifier(body.get("authorizedIdentifier"), "authorizedIdentifier")
    raw = body.get("permissions")
    names = {str(p.get("permissionType")) for p in raw if isinstance(p, dict)} if isinstance(raw, list) else set()
    if not names or not names <= PERMISSIONS:
        raise MockAPIError(21405, _VALIDATION, [f"permissions: nieprawidłowe {sorted(names - PERMISSIONS)}."])
    return context, f"{kind}:{value.upper() if kind == 'Fingerprint' else value}", frozenset(names)


@api_endpoint("testdata.grant_test_permissions")
async def grant_test_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    context, subject, permissions = _grant_args(await json_body(request))
    with backend.lock:
        backend.grants[(context, subject)] = backend.grants.get((context, subject), frozenset()) | permissions
    return _ok()


@api_endpoint("testdata.revoke_test_permissions")
async def revoke_test_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    context = Context(*_identifier(body.get("contextIdentifier"), "contextIdentifier"))
    kind, value = _identifier(body.get("authorizedIdentifier"), "authorizedIdentifier")
    backend.grants.pop((context, f"{kind}:{value}"), None)
    return _ok()


@api_endpoint("testdata.enable_test_attachments")
async def enable_test_attachments(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    _required(body, "nip")
    backend.testdata["attachments"].add(str(body["nip"]))
    return _ok()


@api_endpoint("testdata.revoke_test_attachments")
async def revoke_test_attachments(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    backend.testdata["attachments"].discard(str(body.get("nip")))
    return _ok()


@api_endpoint("testdata.block_test_context")
async def block_test_context(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    backend.testdata["blocked"].add(Context(*_identifier(body.get("contextIdentifier"), "contextIdentifier")))
    return _ok()


@api_endpoint("testdata.unblock_test_context")
async def unblock_test_context(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await json_body(request)
    backend.testdata["blocked"].discard(Context(*_identifier(body.get("contextIdentifier"), "contextIdentifier")))
    return _ok()


async def _store_override(request: Request, backend: KSeFBackend, access: Access | None, name: str) -> Response:
    assert access is not None
    body = await json_body(request) if request.method == "POST" else None
    backend.testdata["overrides"][(access.context, name)] = body
    return _ok()


@api_endpoint("testdata.set_test_session_limits")
async def set_test_session_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    return await _store_override(request, backend, access, "session-limits")


@api_endpoint("testdata.reset_test_session_limits")
async def reset_test_session_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    return await _store_override(request, backend, access, "session-limits")


@api_endpoint("testdata.set_test_rate_limits")
async def set_test_rate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    return await _store_override(request, backend, access, "rate-limits")


@api_endpoint("testdata.reset_test_rate_limits")
async def reset_test_rate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    return await _store_override(request, backend, access, "rate-limits")


HANDLERS = {
    f"testdata.{name}": handler
    for name, handler in {
        "create_test_subject": create_test_subject, "remove_test_subject": remove_test_subject,
        "create_test_person": create_test_person, "remove_test_person": remove_test_person,
        "grant_test_permissions": grant_test_permissions, "revoke_test_permissions": revoke_test_permissions,
        "enable_test_attachments": enable_test_attachments, "revoke_test_attachments": revoke_test_attachments,
        "block_test_context": block_test_context, "unblock_test_context": unblock_test_context,
        "set_test_session_limits": set_test_session_limits, "reset_test_session_limits": reset_test_session_limits,
        "set_test_rate_limits": set_test_rate_limits, "reset_test_rate_limits": reset_test_rate_limits,
    }.items()
}  # fmt: skip
