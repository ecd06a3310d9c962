"""Endpoints: permission grants, revokes, queries and operation status (``permissions``).

Request bodies are parsed with the generated models (``Model.from_dict``), so what the emulator
accepts is what the spec describes; anything else is KSeF's 21405.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client._generated import models
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, iso, json_body, offset_params, parsed_body
from ksef_client.mock.state.core import VALIDATION
from ksef_client.mock.state.permissions import Grant, page_of

DONE = {"code": 200, "description": "Operacja zakończona sukcesem"}


def _identifier(raw: Any) -> tuple[str, str]:
    as_dict = raw.to_dict()  # generated models name the field ``type_``
    return str(as_dict["type"]), str(as_dict.get("value", ""))


def _accepted(reference_number: str) -> Response:
    return JSONResponse({"referenceNumber": reference_number}, status_code=202)


# --- grants -------------------------------------------------------------------------------------


def _grant_each(backend: KSeFBackend, access: Access, kind: str, subject: tuple[str, str], scopes: list[str],
                description: str, details: dict[str, Any] | None = None) -> Response:  # fmt: skip
    # KSeF gives every granted permission its own id, so one record per scope.
    if not scopes:
        raise MockAPIError(21405, VALIDATION, ["permissions: wymagane co najmniej jedno uprawnienie."])
    refs = [backend.permissions.grant(access, kind, subject, [scope], description, details) for scope in scopes]
    return _accepted(refs[-1])


@api_endpoint("permissions.grant_person_permissions")
async def grant_person_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.PersonPermissionsGrantRequest)
    scopes = [str(p) for p in body.permissions]
    return _grant_each(backend, access, "person", _identifier(body.subject_identifier), scopes, body.description)


@api_endpoint("permissions.grant_entity_permissions")
async def grant_entity_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.EntityPermissionsGrantRequest)
    scopes = [str(p.to_dict()["type"]) for p in body.permissions]
    return _grant_each(backend, access, "entity", _identifier(body.subject_identifier), scopes, body.description)


@api_endpoint("permissions.grant_authorization_permissions")
async def grant_authorization_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.EntityAuthorizationPermissionsGrantRequest)
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "authorization", subject, [str(body.permission)], body.description)


@api_endpoint("permissions.grant_indirect_permissions")
async def grant_indirect_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.IndirectPermissionsGrantRequest)
    scopes = [str(p) for p in body.permissions]
    return _grant_each(backend, access, "indirect", _identifier(body.subject_identifier), scopes, body.description)


@api_endpoint("permissions.grant_subunit_permissions")
async def grant_subunit_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.SubunitPermissionsGrantRequest)
    details = {"subunit": _identifier(body.context_identifier), "subunitName": body.to_dict().get("subunitName")}
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "subunit", subject, ["CredentialsManage"], body.description, details)


@api_endpoint("permissions.grant_eu_entity_administration_permissions")
async def grant_eu_entity_administration_permissions(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    body = await parsed_body(request, models.EuEntityAdministrationPermissionsGrantRequest)
    details = {"vatUe": str(body.context_identifier.value), "euEntityName": body.eu_entity_name}
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "eu-administration", subject, ["VatUeManage"], body.description, details)


@api_endpoint("permissions.grant_eu_entity_permissions")
async def grant_eu_entity_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.EuEntityPermissionsGrantRequest)
    scopes = [str(p) for p in body.permissions]
    details = {"vatUe": access.context.value, "euEntityName": access.context.value}
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "eu-entity", subject, scopes, body.description, details)


@api_endpoint("permissions.revoke_common_permission")
async def revoke_common_permission(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return _accepted(backend.permissions.revoke(access, request.path_params["permissionId"]))


@api_endpoint("permissions.revoke_authorization_permission")
async def revoke_authorization_permission(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return _accepted(backend.permissions.revoke(access, request.path_params["permissionId"]))


@api_endpoint("permissions.get_operation_status")
async def get_operation_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    backend.permissions.operation(access, request.path_params["referenceNumber"])
    return JSONResponse({"status": DONE})


@api_endpoint("permissions.get_attachment_permission_status")
async def get_attachment_permission_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return JSONResponse({"isAttachmentAllowed": backend.testdata.attachments_allowed(access.context.nip)})


# --- queries ------------------------------------------------------------------------------------


def _ident(pair: tuple[str, str]) -> dict[str, str]:
    return {"type": pair[0], "value": pair[1]}


def _context(grant: Grant) -> dict[str, str]:
    kind = grant.context.type if grant.context.type in ("Nip", "InternalId") else "Nip"
    return {"type": kind, "value": grant.context.value}


def _person(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id, "authorizedIdentifier": _ident(grant.subject), "contextIdentifier": _context(grant),
        "authorIdentifier": _ident(grant.author), "permissionScope": grant.permissions[0],
        "description": grant.description, "permissionState": "Active", "startDate": iso(grant.created),
        "canDelegate": False,
    }  # fmt: skip


def _personal(grant: Grant) -> dict[str, Any]:
    item = _person(grant)
    del item["authorIdentifier"]
    return item


def _entity(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id, "contextIdentifier": _context(grant), "permissionScope": grant.permissions[0],
        "description": grant.description, "startDate": iso(grant.created), "canDelegate": False,
    }  # fmt: skip


def _authorization(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id, "authorIdentifier": _ident(grant.author), "authorizedEntityIdentifier": _ident(grant.subject),
        "authorizingEntityIdentifier": {"type": "Nip", "value": grant.context.nip or grant.context.value},
        "authorizationScope": grant.permissions[0], "description": grant.description,
        "startDate": iso(grant.created),
    }  # fmt: skip


def _subunit(grant: Grant) -> dict[str, Any]:
    item = {
        "id": grant.id, "authorizedIdentifier": _ident(grant.subject), "authorIdentifier": _ident(grant.author),
        "subunitIdentifier": _ident(grant.details["subunit"]), "permissionScope": "CredentialsManage",
        "description": grant.description, "startDate": iso(grant.created),
    }  # fmt: skip
    if grant.details.get("subunitName"):
        item["subunitName"] = grant.details["subunitName"]
    return item


def _eu(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id, "authorIdentifier": _ident(grant.author), "vatUeIdentifier": grant.details["vatUe"],
        "euEntityName": grant.details["euEntityName"], "authorizedFingerprintIdentifier": grant.subject[1],
        "permissionScope": grant.permissions[0], "description": grant.description, "startDate": iso(grant.created),
    }  # fmt: skip


Render = Callable[[Grant], dict[str, Any]]


def _query(operation: str, kinds: tuple[str, ...], render: Render, field: str = "permissions", *,
           personal: bool = False) -> Any:  # fmt: skip
    @api_endpoint(operation)
    async def endpoint(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
        assert access is not None
        if request.method == "POST":
            await json_body(request)  # a malformed body is still a 400
        offset, size = offset_params(request)
        items, has_more = page_of(backend.permissions.grants_of(access, kinds, personal=personal), offset, size)
        body: dict[str, Any] = {field: [render(g) for g in items], "hasMore": has_more}
        if personal:
            body["ownerPermissions"] = backend.permissions.owner_permissions(access)
        return JSONResponse(body)

    return endpoint


query_person_permissions = _query("permissions.query_person_permissions", ("person",), _person)
query_personal_permissions = _query(
    "permissions.query_personal_permissions", ("person", "indirect"), _personal, personal=True
)
query_entity_permissions = _query("permissions.query_entity_permissions", ("entity",), _entity)
query_subunit_permissions = _query("permissions.query_subunit_permissions", ("subunit",), _subunit)
query_authorization_permissions = _query(
    "permissions.query_authorization_permissions", ("authorization",), _authorization, "authorizationGrants"
)
query_eu_entity_permissions = _query("permissions.query_eu_entity_permissions", ("eu-administration", "eu-entity"), _eu)
query_entity_roles = _query("permissions.query_entity_roles", (), _entity, "roles")
query_subordinate_entity_roles = _query("permissions.query_subordinate_entity_roles", (), _entity, "roles")
