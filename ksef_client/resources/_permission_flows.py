"""The flows of ``ksef.permissions`` (``resources/permissions.py``), written once for both clients:
grants, revokes, operation status and the query pages. Bodies and filters are checked by
``_permission_bodies`` before anything is sent."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, PageFlow, offset_pages, poll_in_progress, response_of, sent_once
from ksef_client._generated.api.permissions import (
    get_attachment_permission_status,
    get_operation_status,
    grant_authorization_permissions,
    grant_entity_permissions,
    grant_eu_entity_administration_permissions,
    grant_eu_entity_permissions,
    grant_indirect_permissions,
    grant_person_permissions,
    grant_subunit_permissions,
    query_authorization_permissions,
    query_entity_permissions,
    query_entity_roles,
    query_eu_entity_permissions,
    query_person_permissions,
    query_personal_permissions,
    query_subordinate_entity_roles,
    query_subunit_permissions,
    revoke_authorization_permission,
    revoke_common_permission,
)
from ksef_client._generated.models import (
    CheckAttachmentPermissionStatusResponse,
    EntityAuthorizationGrant,
    EntityAuthorizationPermissionsGrantRequest,
    EntityAuthorizationPermissionsQueryRequest,
    EntityPermissionItem,
    EntityPermissionsGrantRequest,
    EntityPermissionsQueryRequest,
    EntityRole,
    EuEntityAdministrationPermissionsGrantRequest,
    EuEntityPermission,
    EuEntityPermissionsGrantRequest,
    EuEntityPermissionsQueryRequest,
    IndirectPermissionsGrantRequest,
    PermissionsOperationResponse,
    PermissionsOperationStatusResponse,
    PersonalPermission,
    PersonalPermissionsQueryRequest,
    PersonPermission,
    PersonPermissionsGrantRequest,
    PersonPermissionsQueryRequest,
    SubordinateEntityRole,
    SubordinateEntityRolesQueryRequest,
    SubunitPermission,
    SubunitPermissionsGrantRequest,
    SubunitPermissionsQueryRequest,
)
from ksef_client._retry import RetryBudget
from ksef_client.errors import PermissionOperationFailedError
from ksef_client.identifiers import validate_reference_number
from ksef_client.resources._permission_bodies import (
    Identifier,
    body_of,
    check_permission_id,
    checked_body,
    checked_grant,
    entity_permissions,
    identifier,
    listed,
    plain,
    upper_fingerprint,
)

log = logging.getLogger("ksef_client")


@dataclass(frozen=True)
class _Endpoint:
    """A grant or query endpoint: its generated operation, request model and the spec's schema."""

    operation: ModuleType
    model: type
    name: str  # the method, for messages
    listing: str = ""  # a grant's: the query that lists what it grants, for the lost-answer note

    @property
    def schema(self) -> str:
        return self.model.__name__


GRANTED = 'persons(query_type="PermissionsGrantedInCurrentContext")'
PERSON = _Endpoint(grant_person_permissions, PersonPermissionsGrantRequest, "grant_person", GRANTED)
ENTITY = _Endpoint(grant_entity_permissions, EntityPermissionsGrantRequest, "grant_entity", "persons()")
AUTHORIZATION = _Endpoint(
    grant_authorization_permissions, EntityAuthorizationPermissionsGrantRequest, "grant_authorization",
    'authorizations(query_type="Granted")',
)  # fmt: skip
INDIRECT = _Endpoint(grant_indirect_permissions, IndirectPermissionsGrantRequest, "grant_indirect", GRANTED)
SUBUNIT = _Endpoint(grant_subunit_permissions, SubunitPermissionsGrantRequest, "grant_subunit", "subunits()")
EU_ADMINISTRATOR = _Endpoint(
    grant_eu_entity_administration_permissions, EuEntityAdministrationPermissionsGrantRequest,
    "grant_eu_entity_administrator", "eu_entities()",
)  # fmt: skip
EU_ENTITY = _Endpoint(grant_eu_entity_permissions, EuEntityPermissionsGrantRequest, "grant_eu_entity", "eu_entities()")

PERSONAL_QUERY = _Endpoint(query_personal_permissions, PersonalPermissionsQueryRequest, "personal")
PERSONS_QUERY = _Endpoint(query_person_permissions, PersonPermissionsQueryRequest, "persons")
SUBUNITS_QUERY = _Endpoint(query_subunit_permissions, SubunitPermissionsQueryRequest, "subunits")
ENTITIES_QUERY = _Endpoint(query_entity_permissions, EntityPermissionsQueryRequest, "entities")
SUBORDINATES_QUERY = _Endpoint(
    query_subordinate_entity_roles, SubordinateEntityRolesQueryRequest, "subordinate_entity_roles"
)
AUTHORIZATIONS_QUERY = _Endpoint(
    query_authorization_permissions, EntityAuthorizationPermissionsQueryRequest, "authorizations"
)
EU_QUERY = _Endpoint(query_eu_entity_permissions, EuEntityPermissionsQueryRequest, "eu_entities")


def _details(value: Any) -> Any:
    """``subject_details`` of an entity (``EntityDetails``): a name alone is its ``fullName``."""
    return {"fullName": value} if isinstance(value, str) else plain(value)


def _permissions(values: Iterable[Any] | None) -> list[Any] | None:
    """``permissions=`` as any iterable of names (``listed``): a generator or ``dict.keys()`` is
    sent as the list it yields, as ``grant_entity`` always did."""
    return None if values is None else listed(values, "permissions")


def _optional(value: Identifier | None, field: str) -> Any:
    return None if value is None else identifier(value, field)


# A grant is a POST that is not repeated (not ``repeat_safe``): an answer lost after the request went
# out (a 5xx, a connection broken after sending, a timeout waiting, an answer that cannot be read)
# leaves it unknown whether KSeF took it: "Każde nadanie lub odebranie uprawnienia jest realizowane
# jako asynchroniczna operacja", and its reference number is lost with the answer. Sending it again
# is no answer either: "Nie można nadać tego samego uprawnienia dwukrotnie - API może zwrócić błąd
# lub zignorować duplikat" (uprawnienia.md).
GRANT_MAY_HAVE_GONE_THROUGH = (
    "{method}: the request may have reached KSeF although its answer was lost, so the permission may be "
    "granted (or its operation still running; its reference number is lost with the answer). Do not grant it "
    "again blindly (uprawnienia.md: 'Nie można nadać tego samego uprawnienia dwukrotnie - API może zwrócić błąd "
    "lub zignorować duplikat'): list the grants with ksef.permissions.{listing} and grant it only if it is not "
    "there (an operation in progress shows once it is done: look again a little later before granting)"
)


def _grant_flow(endpoint: _Endpoint, request: Any, fields: Mapping[str, Any]) -> Flow[str]:
    """Check the body (a ``ValueError`` before any request), send it; the operation's reference
    number. An error that may have come after KSeF took the grant gets ``maybe_sent`` and a note
    (``GRANT_MAY_HAVE_GONE_THROUGH``; ``sent_once``)."""
    body = checked_grant(endpoint.schema, body_of(request, endpoint.model, fields), endpoint.name)
    sent = endpoint.model.from_dict(body)  # type: ignore[attr-defined]
    note = GRANT_MAY_HAVE_GONE_THROUGH.format(method=endpoint.name, listing=endpoint.listing)
    answer = yield from sent_once(Call(endpoint.operation, {"body": sent}), PermissionsOperationResponse, note)
    return answer.reference_number


def person_grant(
    request: Any, subject_identifier: Any, permissions: Any, description: Any, subject_details: Any
) -> Flow[str]:
    """``POST /permissions/persons/grants``."""
    fields = {
        "subjectIdentifier": _optional(subject_identifier, "subject_identifier"),
        "permissions": _permissions(permissions),
        "description": description,
        "subjectDetails": plain(subject_details),
    }
    return _grant_flow(PERSON, request, fields)


def entity_grant(
    request: Any, subject_identifier: Any, permissions: Any, description: Any, subject_details: Any,
    can_delegate: Iterable[str],
) -> Flow[str]:  # fmt: skip
    """``POST /permissions/entities/grants``."""
    delegable = listed(can_delegate, "can_delegate")
    if delegable and permissions is None:  # with a request model, its permissions say canDelegate
        raise ValueError("can_delegate: name permissions given in permissions= (a request model carries canDelegate)")
    fields = {
        "subjectIdentifier": _optional(subject_identifier, "subject_identifier"),
        "permissions": entity_permissions(permissions, delegable) if permissions is not None else None,
        "description": description,
        "subjectDetails": _details(subject_details),
    }
    return _grant_flow(ENTITY, request, fields)


def authorization_grant(
    request: Any, subject_identifier: Any, permission: Any, description: Any, subject_details: Any
) -> Flow[str]:
    """``POST /permissions/authorizations/grants``."""
    fields = {
        "subjectIdentifier": _optional(subject_identifier, "subject_identifier"),
        "permission": plain(permission),
        "description": description,
        "subjectDetails": _details(subject_details),
    }
    return _grant_flow(AUTHORIZATION, request, fields)


def indirect_grant(
    request: Any, subject_identifier: Any, permissions: Any, description: Any, subject_details: Any,
    target_identifier: Any,
) -> Flow[str]:  # fmt: skip
    """``POST /permissions/indirect/grants``."""
    fields = {
        "subjectIdentifier": _optional(subject_identifier, "subject_identifier"),
        "targetIdentifier": _optional(target_identifier, "target_identifier"),
        "permissions": _permissions(permissions),
        "description": description,
        "subjectDetails": plain(subject_details),
    }
    return _grant_flow(INDIRECT, request, fields)


def subunit_grant(
    request: Any, subject_identifier: Any, context_identifier: Any, description: Any, subject_details: Any,
    subunit_name: Any,
) -> Flow[str]:  # fmt: skip
    """``POST /permissions/subunits/grants``."""
    fields = {
        "subjectIdentifier": _optional(subject_identifier, "subject_identifier"),
        "contextIdentifier": _optional(context_identifier, "context_identifier"),
        "description": description,
        "subunitName": subunit_name,
        "subjectDetails": plain(subject_details),
    }
    return _grant_flow(SUBUNIT, request, fields)


def eu_administrator_grant(
    request: Any, subject_identifier: Any, context_identifier: Any, description: Any, eu_entity_name: Any,
    subject_details: Any, eu_entity_details: Any,
) -> Flow[str]:  # fmt: skip
    """``POST /permissions/eu-entities/administration/grants``."""
    fields = {
        "subjectIdentifier": _optional(subject_identifier, "subject_identifier"),
        "contextIdentifier": _optional(context_identifier, "context_identifier"),
        "description": description,
        "euEntityName": eu_entity_name,
        "subjectDetails": plain(subject_details),
        "euEntityDetails": plain(eu_entity_details),
    }
    return _grant_flow(EU_ADMINISTRATOR, request, fields)


def eu_entity_grant(
    request: Any, subject_identifier: Any, permissions: Any, description: Any, subject_details: Any
) -> Flow[str]:
    """``POST /permissions/eu-entities/grants``."""
    fields = {
        "subjectIdentifier": _optional(subject_identifier, "subject_identifier"),
        "permissions": _permissions(permissions),
        "description": description,
        "subjectDetails": plain(subject_details),
    }
    return _grant_flow(EU_ENTITY, request, fields)


# --- operations, revokes --------------------------------------------------------------------------

# PermissionsOperationStatusResponse: "100 | Operacja przyjęta do realizacji", "200 | Operacja
# zakończona sukcesem"; every other code of its table is a failure (400, 410, 420, ...).
SUCCEEDED = 200


def operation_flow(reference_number: str) -> Flow[PermissionsOperationStatusResponse]:
    """``GET /permissions/operations/{referenceNumber}``."""
    validate_reference_number(reference_number)
    call = Call(get_operation_status, {"reference_number": reference_number})
    return parsed(response_of((yield call)), PermissionsOperationStatusResponse)


def wait_flow(reference_number: str, timeout: float, interval: float) -> Flow[PermissionsOperationStatusResponse]:
    """Poll the operation while it is in progress (100): its status once 200,
    ``PermissionOperationFailedError`` for any other final code (with ``uncertain_attempts`` and
    a note for a ``RevokeReference`` that has them), ``PollTimeoutError`` after ``timeout``."""
    validate_reference_number(reference_number)
    what = f"permission operation {reference_number}"
    status = yield from poll_in_progress(lambda: operation_flow(reference_number), what, timeout, interval)
    if status.status.code != SUCCEEDED:
        error = PermissionOperationFailedError(reference_number, status)
        if isinstance(reference_number, RevokeReference) and reference_number.uncertain_attempts:
            error.uncertain_attempts = reference_number.uncertain_attempts
            error.add_note(REPEATED_REVOKE_FAILED.format(ref=reference_number, id=reference_number.permission_id))
        raise error
    return status


class RevokeReference(str):
    """The reference number of a revoke's operation (a ``str``, usable as one) that also says how
    many earlier attempts of the revoke may have been carried out although their answers were lost
    (``uncertain_attempts``) before the client repeated it, and which permission it revokes."""

    uncertain_attempts: int
    permission_id: str

    def __new__(cls, value: str, uncertain_attempts: int, permission_id: str) -> RevokeReference:
        reference = super().__new__(cls, value)
        reference.uncertain_attempts, reference.permission_id = uncertain_attempts, permission_id
        return reference


# A repeat KSeF accepted (202) after an attempt whose answer was lost: if that attempt was carried
# out, the repeat's operation may fail because the permission is gone already. Whether KSeF checks
# that when it takes the repeat or only inside its operation is not documented (the spec's 400 for
# the DELETE lists only 21405), so both outcomes are left to the caller to check, with this note.
REPEATED_REVOKE_FAILED = (
    "permission operation {ref} belongs to a revoke of {id} that the client repeated after an attempt whose "
    "answer was lost: that attempt may have revoked the permission already, and this failure may mean only "
    "that (how KSeF handles a repeated revoke is not documented). Check whether permission {id} is still listed "
    "(ksef.permissions.persons(), authorizations(), subunits(), eu_entities()) before acting on this error: if "
    "it is not, it was revoked."
)


def revoke_flow(permission_id: str, *, authorization: bool = False) -> Flow[str]:
    """``DELETE /permissions/common/grants/{id}`` (or ``/permissions/authorizations/grants/{id}``
    for an authorization grant: uprawnienia.md gives those "osobna metoda odbierania"); the
    operation's reference number, a ``RevokeReference`` when the client repeated the request
    after attempts whose answers were lost."""
    check_permission_id(permission_id)
    operation = revoke_authorization_permission if authorization else revoke_common_permission
    # A repeat after a lost answer that KSeF refuses is raised as it is (``uncertain_attempts`` and
    # a note, ``_core.UNCERTAIN_DELETE``, say the lost attempt may have revoked it). It is not
    # settled here as ``tokens.revoke`` settles its own: a revoke returns its operation's reference
    # number, and the lost attempt's cannot be read back; nor does any one query list every
    # permission DELETE /permissions/common/grants/{id} revokes (see ``Permissions.revoke``).
    budget = RetryBudget()
    response = yield Call(operation, {"permission_id": permission_id}, budget=budget)
    reference = parsed(response_of(response), PermissionsOperationResponse).reference_number
    if not budget.uncertain:
        return reference
    log.warning(REPEATED_REVOKE, permission_id, budget.uncertain, reference)
    return RevokeReference(reference, budget.uncertain, permission_id)


REPEATED_REVOKE = (
    "revoke of permission %s: repeated after %d attempt(s) whose answer was lost, and taken (operation %s). An "
    "earlier attempt may have revoked it already: should the operation fail, check whether the permission is "
    "still listed before acting on it"
)


def attachment_status_flow() -> Flow[CheckAttachmentPermissionStatusResponse]:
    """``GET /permissions/attachments/status``."""
    return parsed(response_of((yield Call(get_attachment_permission_status))), CheckAttachmentPermissionStatusResponse)


# --- queries --------------------------------------------------------------------------------------


def query_pages(
    endpoint: _Endpoint, items: str, fields: Mapping[str, Any], page_size: int | None
) -> PageFlow[int, Any]:
    """The pages of a permission query (filters and page size checked now, before any request)."""
    given = {key: value for key, value in fields.items() if value is not None}
    body = checked_body(endpoint.schema, given, endpoint.name)
    sent = endpoint.model.from_dict(body)  # type: ignore[attr-defined]
    return offset_pages(endpoint.operation, items, page_size, {"body": sent})


def _types(values: Iterable[Any] | None) -> Any:
    return None if values is None else listed(values, "permission_types")


def personal_pages(
    context_identifier: Identifier | None, target_identifier: Identifier | None,
    permission_types: Iterable[str] | None, permission_state: str | None, page_size: int | None,
) -> PageFlow[int, PersonalPermission]:  # fmt: skip
    fields = {
        "contextIdentifier": _optional(context_identifier, "context_identifier"),
        "targetIdentifier": _optional(target_identifier, "target_identifier"),
        "permissionTypes": _types(permission_types),
        "permissionState": plain(permission_state),
    }
    return query_pages(PERSONAL_QUERY, "permissions", fields, page_size)


def persons_pages(
    query_type: str, author_identifier: Identifier | None, authorized_identifier: Identifier | None,
    context_identifier: Identifier | None, target_identifier: Identifier | None,
    permission_types: Iterable[str] | None, permission_state: str | None, page_size: int | None,
) -> PageFlow[int, PersonPermission]:  # fmt: skip
    fields = {
        "queryType": plain(query_type),
        "authorIdentifier": _optional(author_identifier, "author_identifier"),
        "authorizedIdentifier": _optional(authorized_identifier, "authorized_identifier"),
        "contextIdentifier": _optional(context_identifier, "context_identifier"),
        "targetIdentifier": _optional(target_identifier, "target_identifier"),
        "permissionTypes": _types(permission_types),
        "permissionState": plain(permission_state),
    }
    return query_pages(PERSONS_QUERY, "permissions", fields, page_size)


def subunits_pages(subunit_identifier: Identifier | None, page_size: int | None) -> PageFlow[int, SubunitPermission]:
    fields = {"subunitIdentifier": _optional(subunit_identifier, "subunit_identifier")}
    return query_pages(SUBUNITS_QUERY, "permissions", fields, page_size)


def entities_pages(context_identifier: Identifier | None, page_size: int | None) -> PageFlow[int, EntityPermissionItem]:
    fields = {"contextIdentifier": _optional(context_identifier, "context_identifier")}
    return query_pages(ENTITIES_QUERY, "permissions", fields, page_size)


def entity_roles_pages(page_size: int | None) -> PageFlow[int, EntityRole]:
    return offset_pages(query_entity_roles, "roles", page_size, {})


def subordinate_roles_pages(
    subordinate_entity_identifier: Identifier | None, page_size: int | None
) -> PageFlow[int, SubordinateEntityRole]:
    fields = {"subordinateEntityIdentifier": _optional(subordinate_entity_identifier, "subordinate_entity_identifier")}
    return query_pages(SUBORDINATES_QUERY, "roles", fields, page_size)


def authorizations_pages(
    query_type: str, authorizing_identifier: Identifier | None, authorized_identifier: Identifier | None,
    permission_types: Iterable[str] | None, page_size: int | None,
) -> PageFlow[int, EntityAuthorizationGrant]:  # fmt: skip
    fields = {
        "queryType": plain(query_type),
        "authorizingIdentifier": _optional(authorizing_identifier, "authorizing_identifier"),
        "authorizedIdentifier": _optional(authorized_identifier, "authorized_identifier"),
        "permissionTypes": _types(permission_types),
    }
    return query_pages(AUTHORIZATIONS_QUERY, "authorization_grants", fields, page_size)


def eu_entities_pages(
    vat_ue_identifier: str | None, authorized_fingerprint_identifier: str | None,
    permission_types: Iterable[str] | None, page_size: int | None,
) -> PageFlow[int, EuEntityPermission]:  # fmt: skip
    fields = {
        "vatUeIdentifier": vat_ue_identifier,
        "authorizedFingerprintIdentifier": upper_fingerprint(authorized_fingerprint_identifier),
        "permissionTypes": _types(permission_types),
    }
    return query_pages(EU_QUERY, "permissions", fields, page_size)
