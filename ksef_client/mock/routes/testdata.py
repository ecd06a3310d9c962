"""Endpoints: ``/testdata/*``, the TEST environment's helpers (subjects, persons, permissions,
attachment consent, context blocks, limit overrides, certificate expiry), kept in
``backend.testdata`` as typed records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ksef_client._generated import models
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import Access, Context, KSeFBackend
from ksef_client.mock.responses import api_endpoint, json_body, parsed_body
from ksef_client.mock.state.core import VALIDATION
from ksef_client.mock.state.limits import production_rate_limits, rate_limits_override
from ksef_client.mock.state.testdata import TestPerson, TestSubject


def _ok() -> Response:
    return Response(status_code=200)


def _pair(raw: Any) -> tuple[str, str]:
    as_dict = raw.to_dict()  # generated models name the field ``type_``
    return str(as_dict["type"]), str(as_dict.get("value", ""))


def _created(body: dict[str, Any]) -> dt.datetime | None:
    raw = body.get("createdDate")
    if not raw:
        return None
    created = dt.datetime.fromisoformat(str(raw))
    return created if created.tzinfo else created.replace(tzinfo=dt.UTC)


@api_endpoint("testdata.create_test_subject")
async def create_test_subject(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = (await parsed_body(request, models.SubjectCreateRequest)).to_dict()
    units = [u for u in body.get("subunits") or () if isinstance(u, dict)]
    backend.testdata.add_subject(TestSubject(
        str(body["subjectNip"]), str(body["subjectType"]), str(body["description"]),
        tuple(str(u["subjectNip"]) for u in units), tuple(str(u["description"]) for u in units), _created(body),
    ))  # fmt: skip
    return _ok()


@api_endpoint("testdata.remove_test_subject")
async def remove_test_subject(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await parsed_body(request, models.SubjectRemoveRequest)
    backend.testdata.remove_subject(str(body.subject_nip))
    return _ok()


@api_endpoint("testdata.create_test_person")
async def create_test_person(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = (await parsed_body(request, models.PersonCreateRequest)).to_dict()
    backend.testdata.add_person(TestPerson(
        str(body["nip"]), str(body["pesel"]), str(body["description"]), bool(body.get("isBailiff")),
        bool(body.get("isDeceased")), _created(body),
    ))  # fmt: skip
    return _ok()


@api_endpoint("testdata.remove_test_person")
async def remove_test_person(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await parsed_body(request, models.PersonRemoveRequest)
    person = backend.testdata.person(str(body.nip))
    backend.testdata.remove_person(str(body.nip))
    if person is not None:  # "System automatycznie odbierze jej wszystkie uprawnienia."
        backend.permissions.forget_subject([("Nip", person.nip), ("Pesel", person.pesel)])
    return _ok()


@api_endpoint("testdata.grant_test_permissions")
async def grant_test_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await parsed_body(request, models.TestDataPermissionsGrantRequest)
    scopes = {str(p.to_dict()["permissionType"]): str(p.description) for p in body.permissions}
    if not scopes:
        raise MockAPIError(21405, VALIDATION, ["permissions: wymagane co najmniej jedno uprawnienie."])
    context = Context(*_pair(body.context_identifier))
    backend.permissions.grant_for_tests(context, _pair(body.authorized_identifier), scopes)
    return _ok()


@api_endpoint("testdata.revoke_test_permissions")
async def revoke_test_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await parsed_body(request, models.TestDataPermissionsRevokeRequest)
    context = Context(*_pair(body.context_identifier))
    backend.permissions.revoke_for_tests(context, _pair(body.authorized_identifier))
    return _ok()


@api_endpoint("testdata.enable_test_attachments")
async def enable_test_attachments(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await parsed_body(request, models.AttachmentPermissionGrantRequest)
    backend.testdata.allow_attachments(str(body.nip))
    return _ok()


@api_endpoint("testdata.revoke_test_attachments")
async def revoke_test_attachments(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    body = await parsed_body(request, models.AttachmentPermissionRevokeRequest)
    backend.testdata.allow_attachments(str(body.nip), allowed=False)
    return _ok()


async def _context_of(request: Request) -> Context:
    body = await json_body(request)
    raw = body.get("contextIdentifier")
    if not isinstance(raw, dict) or not raw.get("type") or not raw.get("value"):
        raise MockAPIError(21405, VALIDATION, ["contextIdentifier: wymagane type i value."])
    return Context(str(raw["type"]), str(raw["value"]))


@api_endpoint("testdata.block_test_context")
async def block_test_context(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    backend.testdata.block(await _context_of(request))
    return _ok()


@api_endpoint("testdata.unblock_test_context")
async def unblock_test_context(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    backend.testdata.block(await _context_of(request), blocked=False)
    return _ok()


@api_endpoint("testdata.set_test_session_limits")
async def set_test_session_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.testdata.set_session_limits(access.context, await json_body(request))
    return _ok()


@api_endpoint("testdata.reset_test_session_limits")
async def reset_test_session_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.testdata.set_session_limits(access.context, None)
    return _ok()


@api_endpoint("testdata.update_test_certificate")
async def update_test_certificate(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.TestDataUpdateCertificateRequest)
    valid_to = dt.datetime.fromisoformat(body.to_dict()["validTo"])
    backend.certificates.set_valid_to(access, request.path_params["serialNumber"], valid_to)
    return _ok()


@api_endpoint("testdata.set_test_rate_limits")
async def set_test_rate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)  # checked against SetRateLimitsRequest before the route
    backend.testdata.set_rate_limits(access.context, rate_limits_override(body["rateLimits"]))
    return _ok()


@api_endpoint("testdata.set_test_rate_limits_production")
async def set_test_rate_limits_production(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.testdata.set_rate_limits(access.context, production_rate_limits())
    return _ok()


@api_endpoint("testdata.reset_test_rate_limits")
async def reset_test_rate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.testdata.set_rate_limits(access.context, None)
    return _ok()


@api_endpoint("testdata.set_test_certificate_limits")
async def set_test_certificate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.testdata.set_subject_limits(access.subject, await json_body(request))  # checked against the spec
    return _ok()


@api_endpoint("testdata.reset_test_certificate_limits")
async def reset_test_certificate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.testdata.set_subject_limits(access.subject, None)
    return _ok()
