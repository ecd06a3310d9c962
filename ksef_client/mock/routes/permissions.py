"""Endpoints: permission grants, revokes, queries and operation status (``permissions``).

Request bodies are parsed with the generated models (``Model.from_dict``), so what the emulator
accepts is what the spec describes; anything else is KSeF's 21405. Which grants apply where, and
what a query lists, is ``state/permissions.py``'s; here they are read from requests and rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client._generated import models
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, iso, json_body, offset_params, parsed_body, render_status
from ksef_client.mock.state.core import VALIDATION
from ksef_client.mock.state.permissions import (
    ALL_PARTNERS,
    AUTHORIZATION_KINDS,
    COMMON_KINDS,
    EU_ADMINISTRATOR_SCOPES,
    Grant,
    GrantQuery,
    Pair,
    Permissions,
    check_grant_body,
    check_identifier_values,
    check_subunit_grant,
    context_of,
    page_of,
    target_of,
)
from ksef_client.mock.state.testdata import Role


def _identifier(raw: Any) -> tuple[str, str]:
    as_dict = raw.to_dict()  # generated models name the field ``type_``
    return str(as_dict["type"]), str(as_dict.get("value", ""))


async def _grant_body(request: Request, model: Any) -> Any:
    """The grant body as ``model``, refused (21405) when it breaks a rule of the spec's descriptions."""
    body = await parsed_body(request, model)
    check_grant_body(body.to_dict())
    return body


def _kept(body: Any, **details: Any) -> dict[str, Any]:
    """What a grant keeps of its body besides its subject and scopes: ``details`` and the body's
    ``subjectDetails`` (and ``euEntityDetails``), which the listings give back (``_subject_details``)."""
    as_dict = body.to_dict()
    kept = {"subjectDetails": as_dict.get("subjectDetails"), **details}
    if "euEntityDetails" in as_dict:
        kept["euEntityDetails"] = as_dict["euEntityDetails"]
    return kept


def _accepted(reference_number: str) -> Response:
    return JSONResponse({"referenceNumber": reference_number}, status_code=202)


# --- grants -------------------------------------------------------------------------------------


def _grant_each(backend: KSeFBackend, access: Access, kind: str, subject: tuple[str, str], scopes: list[str],
                description: str, details: dict[str, Any] | None = None, delegable: tuple[str, ...] = (),
                ) -> Response:  # fmt: skip
    # KSeF gives every granted permission its own id (one record per scope), the request one operation.
    if not scopes:
        raise MockAPIError(21405, VALIDATION, ["permissions: wymagane co najmniej jedno uprawnienie."])
    ref = backend.permissions.grant(access, kind, subject, scopes, description, details, delegable=delegable)
    return _accepted(ref)


@api_endpoint("permissions.grant_person_permissions")
async def grant_person_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await _grant_body(request, models.PersonPermissionsGrantRequest)
    scopes = [str(p) for p in body.permissions]
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "person", subject, scopes, body.description, _kept(body))


@api_endpoint("permissions.grant_entity_permissions")
async def grant_entity_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await _grant_body(request, models.EntityPermissionsGrantRequest)
    permissions = [p.to_dict() for p in body.permissions]
    scopes = [str(p["type"]) for p in permissions]
    delegable = tuple(str(p["type"]) for p in permissions if p.get("canDelegate"))
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "entity", subject, scopes, body.description, _kept(body), delegable)


@api_endpoint("permissions.grant_authorization_permissions")
async def grant_authorization_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.EntityAuthorizationPermissionsGrantRequest)
    subject = _identifier(body.subject_identifier)
    scopes = [str(body.permission)]
    return _grant_each(backend, access, "authorization", subject, scopes, body.description, _kept(body))


@api_endpoint("permissions.grant_indirect_permissions")
async def grant_indirect_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await _grant_body(request, models.IndirectPermissionsGrantRequest)
    scopes = [str(p) for p in body.permissions]
    # "Nie przekazanie identyfikatora oznacza, że uprawnienie nadane w sposób pośredni jest typu generalnego."
    target = body.to_dict().get("targetIdentifier") or {}
    details = _kept(body, target=(str(target["type"]), str(target.get("value") or "")) if target else ALL_PARTNERS)
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "indirect", subject, scopes, body.description, details)


@api_endpoint("permissions.grant_subunit_permissions")
async def grant_subunit_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await _grant_body(request, models.SubunitPermissionsGrantRequest)
    details = _kept(body, subunit=_identifier(body.context_identifier), subunitName=body.to_dict().get("subunitName"))
    check_subunit_grant(details["subunit"], details["subunitName"])
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "subunit", subject, ["CredentialsManage"], body.description, details)


@api_endpoint("permissions.grant_eu_entity_administration_permissions")
async def grant_eu_entity_administration_permissions(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    body = await _grant_body(request, models.EuEntityAdministrationPermissionsGrantRequest)
    composite = str(body.context_identifier.value)  # {nip}-{vat_ue}
    details = _kept(body, composite=composite, vatUe=composite.partition("-")[2], euEntityName=body.eu_entity_name)
    subject = _identifier(body.subject_identifier)
    # "Metoda automatycznie nadaje wszystkie powyższe uprawnienia": a record (an id) each.
    scopes = list(EU_ADMINISTRATOR_SCOPES)
    return _grant_each(backend, access, "eu-administration", subject, scopes, body.description, details)


@api_endpoint("permissions.grant_eu_entity_permissions")
async def grant_eu_entity_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await _grant_body(request, models.EuEntityPermissionsGrantRequest)
    scopes = [str(p) for p in body.permissions]
    # The EU entity's name and details are those its administrator's grant gave the composite context.
    entity = backend.permissions.eu_entity_of(access.context)
    details = _kept(body, vatUe=access.context.value.partition("-")[2],
                    euEntityName=entity.get("euEntityName") or access.context.value)  # fmt: skip
    if entity.get("euEntityDetails"):
        details["euEntityDetails"] = entity["euEntityDetails"]
    subject = _identifier(body.subject_identifier)
    return _grant_each(backend, access, "eu-entity", subject, scopes, body.description, details)


@api_endpoint("permissions.revoke_common_permission")
async def revoke_common_permission(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return _accepted(backend.permissions.revoke(access, request.path_params["permissionId"], COMMON_KINDS))


@api_endpoint("permissions.revoke_authorization_permission")
async def revoke_authorization_permission(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return _accepted(backend.permissions.revoke(access, request.path_params["permissionId"], AUTHORIZATION_KINDS))


@api_endpoint("permissions.get_operation_status")
async def get_operation_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    status = backend.permissions.operation_status(access, request.path_params["referenceNumber"])
    return JSONResponse({"status": render_status(status)})


@api_endpoint("permissions.get_attachment_permission_status")
async def get_attachment_permission_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return JSONResponse({"isAttachmentAllowed": backend.testdata.attachments_allowed(access.context.nip)})


# --- queries ---------------------------------------------------------------------------------------


def _ident(pair: Pair) -> dict[str, str]:
    # A type without a value (``System``, ``AllPartners``) is written without one.
    return {"type": pair[0], "value": pair[1]} if pair[1] else {"type": pair[0]}


def _granting(grant: Grant) -> dict[str, str]:
    """The granting context as a ``Nip``/``InternalId`` identifier (a composite context by its NIP)."""
    if grant.context.type in ("Nip", "InternalId"):
        return _ident((grant.context.type, grant.context.value))
    return {"type": "Nip", "value": grant.context.nip or grant.context.value}


# PersonPermissionSubjectDetails / EuEntityPermissionSubjectDetails as a grant gives them: the type, and
# the object holding the data of that type.
_PERSON_DETAILS = {
    "PersonByIdentifier": "personById",
    "PersonByFingerprintWithIdentifier": "personByFpWithId",
    "PersonByFingerprintWithoutIdentifier": "personByFpNoId",
}


def _subject_details(grant: Grant, *, person: bool = True, entity: bool = True) -> dict[str, Any]:
    """The grant's ``subjectDetails`` as the listings give them: ``subjectPersonDetails``
    (``PermissionsSubjectPersonDetails``: the type, the names and, by type, ``personIdentifier`` or
    ``birthDate`` and ``idDocument``) or ``subjectEntityDetails`` (``PermissionsSubjectEntityDetails``:
    ``EntityByIdentifier`` with the ``fullName`` of an entity or authorization grant's
    ``EntityDetails``, ``EntityByFingerprint`` with ``fullName`` and ``address``); only the fields of
    the listing's schema (``person``, ``entity``); none for a grant without them (``/testdata``'s)."""
    raw = grant.details.get("subjectDetails")
    if not isinstance(raw, dict):
        return {}
    kind = raw.get("subjectDetailsType")
    if kind is None:  # EntityDetails: an entity named by its NIP
        found = {"subjectDetailsType": "EntityByIdentifier", "fullName": raw["fullName"]}
        return {"subjectEntityDetails": found} if entity else {}
    if kind == "EntityByFingerprint":
        data = raw["entityByFp"]
        found = {"subjectDetailsType": kind, "fullName": data["fullName"], "address": data["address"]}
        return {"subjectEntityDetails": found} if entity else {}
    data = raw[_PERSON_DETAILS[str(kind)]]
    found = {"subjectDetailsType": kind, "firstName": data["firstName"], "lastName": data["lastName"]}
    if "identifier" in data:
        found["personIdentifier"] = data["identifier"]
    for key in ("birthDate", "idDocument"):
        if key in data:
            found[key] = data[key]
    return {"subjectPersonDetails": found} if person else {}


def _person(grant: Grant, permissions: Permissions, access: Access) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": grant.id, "authorizedIdentifier": _ident(grant.subject), "authorIdentifier": _ident(grant.author),
        "permissionScope": grant.permissions[0], "description": grant.description,
        "permissionState": permissions.state_of(grant), "startDate": iso(grant.created),
        "canDelegate": bool(grant.details.get("canDelegate")),
    }  # fmt: skip
    context, target = context_of(grant), target_of(grant)
    if context is not None and context[0] in ("Nip", "InternalId"):  # the types PersonPermission allows
        item["contextIdentifier"] = _ident(context)
    if target is not None:
        item["targetIdentifier"] = _ident(target)
    item.update(_subject_details(grant))
    return item


def _personal(grant: Grant, permissions: Permissions, access: Access) -> dict[str, Any]:
    item = _person(grant, permissions, access)
    del item["authorIdentifier"]
    item["contextIdentifier"] = _granting(grant)  # "podmiotu, który nadał uprawnienia"
    # "Identyfikator podmiotu uprawnionego, jeżeli jest inny niż identyfikator uwierzytelnionego klienta API".
    if grant.subject == access.subject:
        del item["authorizedIdentifier"]
    return item


def _entity(grant: Grant, permissions: Permissions, access: Access) -> dict[str, Any]:
    return {
        "id": grant.id, "contextIdentifier": _granting(grant), "permissionScope": grant.permissions[0],
        "description": grant.description, "startDate": iso(grant.created),
        "canDelegate": bool(grant.details.get("canDelegate")),
    }  # fmt: skip


def _authorization(grant: Grant, permissions: Permissions, access: Access) -> dict[str, Any]:
    return {
        "id": grant.id, "authorIdentifier": _ident(grant.author), "authorizedEntityIdentifier": _ident(grant.subject),
        "authorizingEntityIdentifier": {"type": "Nip", "value": grant.context.nip or grant.context.value},
        "authorizationScope": grant.permissions[0], "description": grant.description,
        "startDate": iso(grant.created), **_subject_details(grant, person=False),
    }  # fmt: skip


def _subunit(grant: Grant, permissions: Permissions, access: Access) -> dict[str, Any]:
    item = {
        "id": grant.id, "authorizedIdentifier": _ident(grant.subject), "authorIdentifier": _ident(grant.author),
        "subunitIdentifier": _ident(grant.details["subunit"]), "permissionScope": "CredentialsManage",
        "description": grant.description, "startDate": iso(grant.created),
    }  # fmt: skip
    if grant.details.get("subunitName"):
        item["subunitName"] = grant.details["subunitName"]
    item.update(_subject_details(grant, entity=False))
    return item


def _eu(grant: Grant, permissions: Permissions, access: Access) -> dict[str, Any]:
    item = {
        "id": grant.id, "authorIdentifier": _ident(grant.author), "vatUeIdentifier": grant.details["vatUe"],
        "euEntityName": grant.details["euEntityName"], "authorizedFingerprintIdentifier": grant.subject[1],
        "permissionScope": grant.permissions[0], "description": grant.description, "startDate": iso(grant.created),
        **_subject_details(grant),
    }  # fmt: skip
    if grant.details.get("euEntityDetails"):  # "Dane podmiotu unijnego, w kontekście którego nadane jest uprawnienie"
        item["euEntityDetails"] = grant.details["euEntityDetails"]
    return item


def _pair_of(raw: Any) -> Pair | None:
    """An identifier of a query's body as ``(type, value)`` (``value`` empty for ``System``, ``AllPartners``)."""
    return (str(raw["type"]), str(raw.get("value") or "")) if isinstance(raw, dict) else None


def _scopes(body: dict[str, Any]) -> frozenset[str] | None:
    return frozenset(map(str, body["permissionTypes"])) if body.get("permissionTypes") else None


Render = Callable[[Grant, Permissions, Access], dict[str, Any]]


async def _page(request: Request, backend: KSeFBackend, access: Access, grants: list[Grant], render: Render,
                field: str = "permissions") -> dict[str, Any]:  # fmt: skip
    offset, size = offset_params(request)
    items, has_more = page_of(grants, offset, size)
    return {field: [render(g, backend.permissions, access) for g in items], "hasMore": has_more}


@api_endpoint("permissions.query_person_permissions")
async def query_person_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    check_identifier_values(body)
    query = GrantQuery(
        scopes=_scopes(body), author=_pair_of(body.get("authorIdentifier")),
        authorized=_pair_of(body.get("authorizedIdentifier")), context=_pair_of(body.get("contextIdentifier")),
        target=_pair_of(body.get("targetIdentifier")), state=body.get("permissionState"),
    )  # fmt: skip
    by_caller = body.get("queryType") == "PermissionsGrantedInCurrentContext"
    grants = backend.permissions.person_grants(access, query, by_caller=by_caller)
    return JSONResponse(await _page(request, backend, access, grants, _person))


@api_endpoint("permissions.query_personal_permissions")
async def query_personal_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    check_identifier_values(body)
    query = GrantQuery(
        scopes=_scopes(body), granted_in=_pair_of(body.get("contextIdentifier")),
        target=_pair_of(body.get("targetIdentifier")), state=body.get("permissionState"),
    )  # fmt: skip
    grants = backend.permissions.personal_grants(access, query)
    page = await _page(request, backend, access, grants, _personal)
    owner = backend.permissions.owner_permissions(access.context, access.subject)
    page["ownerPermissions"] = sorted(owner) if owner is not None else None
    return JSONResponse(page)


@api_endpoint("permissions.query_entity_permissions")
async def query_entity_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    grants = backend.permissions.received_entity_grants(
        access, GrantQuery(granted_in=_pair_of(body.get("contextIdentifier")))
    )
    return JSONResponse(await _page(request, backend, access, grants, _entity))


@api_endpoint("permissions.query_subunit_permissions")
async def query_subunit_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    grants = backend.permissions.subunit_grants(access, GrantQuery(context=_pair_of(body.get("subunitIdentifier"))))
    return JSONResponse(await _page(request, backend, access, grants, _subunit))


@api_endpoint("permissions.query_authorization_permissions")
async def query_authorization_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    query = GrantQuery(
        scopes=_scopes(body), granted_in=_pair_of(body.get("authorizingIdentifier")),
        authorized=_pair_of(body.get("authorizedIdentifier")),
    )  # fmt: skip
    received = body.get("queryType") == "Received"
    grants = backend.permissions.authorization_grants(access, query, received=received)
    return JSONResponse(await _page(request, backend, access, grants, _authorization, "authorizationGrants"))


@api_endpoint("permissions.query_eu_entity_permissions")
async def query_eu_entity_permissions(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await json_body(request)
    fingerprint = body.get("authorizedFingerprintIdentifier")
    query = GrantQuery(scopes=_scopes(body), vat_ue=body.get("vatUeIdentifier"), fingerprint=fingerprint)
    grants = backend.permissions.eu_grants(access, query)
    return JSONResponse(await _page(request, backend, access, grants, _eu))


def _role(role: Role) -> dict[str, Any]:
    item: dict[str, Any] = {"role": role.role, "description": role.description, "startDate": iso(role.start)}
    if role.parent is not None:
        item["parentEntityIdentifier"] = {"type": "Nip", "value": role.parent}
    return item


def _subordinate(role: Role) -> dict[str, Any]:
    return {
        "subordinateEntityIdentifier": {"type": "Nip", "value": role.nip}, "role": role.role,
        "description": role.description, "startDate": iso(role.start),
    }  # fmt: skip


@api_endpoint("permissions.query_entity_roles")
async def query_entity_roles(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    offset, size = offset_params(request)
    items, has_more = page_of(backend.permissions.roles(access), offset, size)
    return JSONResponse({"roles": [_role(r) for r in items], "hasMore": has_more})


@api_endpoint("permissions.query_subordinate_entity_roles")
async def query_subordinate_entity_roles(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    wanted = _pair_of((await json_body(request)).get("subordinateEntityIdentifier"))
    offset, size = offset_params(request)
    roles = backend.permissions.subordinate_roles(access, wanted[1] if wanted else None)
    items, has_more = page_of(roles, offset, size)
    return JSONResponse({"roles": [_subordinate(r) for r in items], "hasMore": has_more})
