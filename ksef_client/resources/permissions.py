"""``ksef.permissions``: grant and revoke KSeF permissions, wait for their operations, query them.

"Każde nadanie lub odebranie uprawnienia jest realizowane jako asynchroniczna operacja" and
"Wykonanie operacji nadania uprawnienia nie skutkuje natychmiastowym dostępem - operacja jest
asynchroniczna musi zostać poprawnie przetworzona przez system (należy sprawdzić status operacji)"
(uprawnienia.md): every ``grant_*`` and ``revoke*`` returns the operation's reference number, and
``wait(reference)`` polls ``GET /permissions/operations/{ref}`` until the operation is final: its
status on success (200), ``PermissionOperationFailedError`` otherwise::

    ref = ksef.permissions.grant_person(
        subject_identifier=("Pesel", "90010112343"), permissions=["InvoiceRead"],
        description="accountant", subject_details={"subjectDetailsType": "PersonByIdentifier",
        "personById": {"firstName": "Anna", "lastName": "Kowalska"}},
    )
    ksef.permissions.wait(ref)          # now the grant is in effect

Each ``grant_*`` takes either the generated request model (``PersonPermissionsGrantRequest``, ...)
or keyword arguments: identifiers as ``(type, value)`` (``("Nip", "5265877635")``,
``("AllPartners", None)``), dicts as the API names them or generated models. Every body and filter
is checked before anything is sent: a ``ValueError`` names what is wrong (the spec's schema, its
"each value only once" and "required when subjectDetailsType = ..." rules, identifiers in their
forms, an InternalId's check digit). The queries page by ``pageOffset``/``hasMore`` (a ``Pager``,
whose cursor is the number of items before the next page: resume with any ``page_size``), in
pages of the largest size the spec allows unless ``page_size`` says otherwise. Collect what a query
finds before revoking it: a listing that shrinks under the walk shifts its later pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ksef_client._flows import PageFlow, apager, arun, pager, run
from ksef_client.pagination import offset_cursor
from ksef_client.resources import _permission_flows as flows

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF
    from ksef_client._generated.models import (
        CheckAttachmentPermissionStatusResponse,
        EntityAuthorizationGrant,
        EntityAuthorizationPermissionsGrantRequest,
        EntityPermissionItem,
        EntityPermissionsGrantRequest,
        EntityRole,
        EuEntityAdministrationPermissionsGrantRequest,
        EuEntityPermission,
        EuEntityPermissionsGrantRequest,
        IndirectPermissionsGrantRequest,
        PermissionsOperationStatusResponse,
        PersonalPermission,
        PersonPermission,
        PersonPermissionsGrantRequest,
        SubordinateEntityRole,
        SubunitPermission,
        SubunitPermissionsGrantRequest,
    )
    from ksef_client.pagination import AsyncPager, Pager
    from ksef_client.resources._permission_bodies import Identifier


T = TypeVar("T")


def _pager(page: PageFlow[int, T], client: KSeF, cursor: int | None) -> Pager[T, int]:
    """``pager`` with the cursor checked now (``offset_cursor``: an int >= 0 or ``None``)."""
    offset_cursor(cursor)
    return pager(page, client, cursor)


def _apager(page: PageFlow[int, T], client: AsyncKSeF, cursor: int | None) -> AsyncPager[T, int]:
    """``apager`` with the cursor checked now."""
    offset_cursor(cursor)
    return apager(page, client, cursor)


class Permissions:
    """Grants, revokes, their operations and the permission queries of the context (see the module).

    Grants and revokes are asynchronous in KSeF: each returns the operation's reference number;
    ``wait(ref)`` until it is in effect before relying on it (logging the grantee in, say).
    """

    def __init__(self, client: KSeF) -> None:
        self._client = client

    # --- grants ---------------------------------------------------------------------------------

    def grant_person(
        self, request: PersonPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[str] | None = None, description: str | None = None, subject_details: Any = None,
    ) -> str:  # fmt: skip
        """``POST /permissions/persons/grants``: ``permissions`` (``InvoiceRead``, ``InvoiceWrite``,
        ``CredentialsManage``, ...) for a person (``subject_identifier``: ``Nip``, ``Pesel`` or
        ``Fingerprint``) in the current context. ``subject_details``: ``{"subjectDetailsType":
        "PersonByIdentifier", "personById": {"firstName": ..., "lastName": ...}}`` for a NIP or
        PESEL, a ``PersonByFingerprint...`` type for a fingerprint. Returns the operation's
        reference number: ``wait`` for it."""
        flow = flows.person_grant(request, subject_identifier, permissions, description, subject_details)
        return run(flow, self._client)

    def grant_entity(
        self, request: EntityPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[Any] | None = None, description: str | None = None, subject_details: Any = None,
        can_delegate: Iterable[str] = (),
    ) -> str:  # fmt: skip
        """``POST /permissions/entities/grants``: invoice permissions (``InvoiceRead``,
        ``InvoiceWrite``, ``CollectiveIdentifierManage``) for another entity (``("Nip", ...)``),
        e.g. an accounting office; those named in ``can_delegate`` it may pass on to its people
        (indirect grants). ``subject_details``: the entity's full name (or ``{"fullName": ...}``)."""
        flow = flows.entity_grant(request, subject_identifier, permissions, description, subject_details, can_delegate)
        return run(flow, self._client)

    def grant_authorization(
        self, request: EntityAuthorizationPermissionsGrantRequest | None = None, *,
        subject_identifier: Identifier | None = None, permission: str | None = None, description: str | None = None,
        subject_details: Any = None,
    ) -> str:  # fmt: skip
        """``POST /permissions/authorizations/grants``: one of ``SelfInvoicing``, ``RRInvoicing``,
        ``TaxRepresentative``, ``PefInvoicing`` for an entity (``Nip`` or ``PeppolId``);
        ``subject_details``: its full name. Revoked with ``revoke_authorization``."""
        flow = flows.authorization_grant(request, subject_identifier, permission, description, subject_details)
        return run(flow, self._client)

    def grant_indirect(
        self, request: IndirectPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[str] | None = None, description: str | None = None, subject_details: Any = None,
        target_identifier: Identifier | None = None,
    ) -> str:  # fmt: skip
        """``POST /permissions/indirect/grants``: an intermediary (an accounting office) passes
        ``InvoiceRead``/``InvoiceWrite`` on to its person for a client (``target_identifier``:
        ``("Nip", client)``, ``("InternalId", ...)``; ``("AllPartners", None)`` or none: every
        client)."""
        flow = flows.indirect_grant(
            request, subject_identifier, permissions, description, subject_details, target_identifier
        )
        return run(flow, self._client)

    def grant_subunit(
        self, request: SubunitPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        context_identifier: Identifier | None = None, description: str | None = None, subject_details: Any = None,
        subunit_name: str | None = None,
    ) -> str:  # fmt: skip
        """``POST /permissions/subunits/grants``: make a person the administrator of a subunit
        (``context_identifier``: ``("InternalId", make_internal_id(nip, n))`` with its
        ``subunit_name``, required then; or a subordinate's ``("Nip", ...)``)."""
        flow = flows.subunit_grant(
            request, subject_identifier, context_identifier, description, subject_details, subunit_name
        )
        return run(flow, self._client)

    def grant_eu_entity_administrator(
        self, request: EuEntityAdministrationPermissionsGrantRequest | None = None, *,
        subject_identifier: Identifier | None = None, context_identifier: Identifier | None = None,
        description: str | None = None, eu_entity_name: str | None = None, subject_details: Any = None,
        eu_entity_details: Any = None,
    ) -> str:  # fmt: skip
        """``POST /permissions/eu-entities/administration/grants``: the administrator (a certificate
        ``("Fingerprint", sha256_hex)``) of an EU entity in the composite context
        ``("NipVatUe", "<context NIP>-<EU VAT number>")``."""
        flow = flows.eu_administrator_grant(
            request, subject_identifier, context_identifier, description, eu_entity_name, subject_details,
            eu_entity_details,
        )  # fmt: skip
        return run(flow, self._client)

    def grant_eu_entity(
        self, request: EuEntityPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[str] | None = None, description: str | None = None, subject_details: Any = None,
    ) -> str:  # fmt: skip
        """``POST /permissions/eu-entities/grants``: ``InvoiceRead``/``InvoiceWrite`` for an EU
        entity's representative (``("Fingerprint", sha256_hex)``), in an EU composite context."""
        flow = flows.eu_entity_grant(request, subject_identifier, permissions, description, subject_details)
        return run(flow, self._client)

    # --- operations and revokes -----------------------------------------------------------------

    def operation(self, reference_number: str) -> PermissionsOperationStatusResponse:
        """A grant's or revoke's operation status (``.status.code``: 100 in progress, 200 done, other
        codes failed; kept 30 days, then ``GoneError``)."""
        return run(flows.operation_flow(reference_number), self._client)

    def wait(
        self, reference_number: str, *, timeout: float = 120.0, interval: float = 1.0
    ) -> PermissionsOperationStatusResponse:
        """Poll a grant's or revoke's operation until it is final: its status when it succeeded (200),
        ``PermissionOperationFailedError`` (``.code``, ``.description``, ``.details``) when it
        failed, ``PollTimeoutError`` after ``timeout`` seconds."""
        return run(flows.wait_flow(reference_number, timeout, interval), self._client)

    def revoke(self, permission_id: str) -> str:
        """``DELETE /permissions/common/grants/{permissionId}``: revoke a permission (its ``id`` from a
        query) other than an authorization grant; the operation's reference number (``wait`` for it).

        The client repeats the ``DELETE`` after an attempt whose answer was lost (a 5xx, a
        connection broken after sending); that attempt may have revoked the permission, and how
        KSeF answers the repeat then is not documented. If KSeF refuses the repeat, the refusal is
        raised with ``uncertain_attempts`` and a note. If it takes it, the reference returned is a
        ``RevokeReference`` with ``uncertain_attempts`` (a warning is logged too), and ``wait`` on
        it adds them and a note to a ``PermissionOperationFailedError``. Either error may mean only
        that the lost attempt revoked it: query whether the permission is still listed before
        acting on it (not listed: it was revoked). The SDK does not settle it itself: the lost
        operation's reference cannot be read back, and no one query lists every permission this
        endpoint revokes.
        """
        return run(flows.revoke_flow(permission_id), self._client)

    def revoke_authorization(self, permission_id: str) -> str:
        """``DELETE /permissions/authorizations/grants/{permissionId}``: revoke an authorization grant
        (``SelfInvoicing``, ...); as ``revoke`` otherwise."""
        return run(flows.revoke_flow(permission_id, authorization=True), self._client)

    def attachment_status(self) -> CheckAttachmentPermissionStatusResponse:
        """``GET /permissions/attachments/status``: whether the context may add attachments to
        invoices now (``is_attachment_allowed``) and until when (``revoked_date``)."""
        return run(flows.attachment_status_flow(), self._client)

    # --- queries --------------------------------------------------------------------------------

    def personal(
        self, *, context_identifier: Identifier | None = None, target_identifier: Identifier | None = None,
        permission_types: Iterable[str] | None = None, permission_state: str | None = None,
        page_size: int | None = None, cursor: int | None = None,
    ) -> Pager[PersonalPermission, int]:  # fmt: skip
        """``POST /permissions/query/personal/grants``: the logged-in subject's own permissions in the
        context (``permission_state``: ``Active`` or ``Inactive``)."""
        page = flows.personal_pages(
            context_identifier, target_identifier, permission_types, permission_state, page_size
        )
        return _pager(page, self._client, cursor)

    def persons(
        self, *, query_type: str = "PermissionsInCurrentContext", author_identifier: Identifier | None = None,
        authorized_identifier: Identifier | None = None, context_identifier: Identifier | None = None,
        target_identifier: Identifier | None = None, permission_types: Iterable[str] | None = None,
        permission_state: str | None = None, page_size: int | None = None, cursor: int | None = None,
    ) -> Pager[PersonPermission, int]:  # fmt: skip
        """``POST /permissions/query/persons/grants``: permissions of persons and entities in the
        context (``query_type`` ``PermissionsInCurrentContext``) or granted in it by the caller
        (``PermissionsGrantedInCurrentContext``)."""
        page = flows.persons_pages(
            query_type, author_identifier, authorized_identifier, context_identifier, target_identifier,
            permission_types, permission_state, page_size,
        )  # fmt: skip
        return _pager(page, self._client, cursor)

    def subunits(
        self, *, subunit_identifier: Identifier | None = None, page_size: int | None = None, cursor: int | None = None
    ) -> Pager[SubunitPermission, int]:
        """``POST /permissions/query/subunits/grants``: the administrators of the context's subunits."""
        return _pager(flows.subunits_pages(subunit_identifier, page_size), self._client, cursor)

    def entities(
        self, *, context_identifier: Identifier | None = None, page_size: int | None = None, cursor: int | None = None
    ) -> Pager[EntityPermissionItem, int]:
        """``POST /permissions/query/entities/grants``: invoice permissions other entities gave this one."""
        return _pager(flows.entities_pages(context_identifier, page_size), self._client, cursor)

    def entity_roles(self, *, page_size: int | None = None, cursor: int | None = None) -> Pager[EntityRole, int]:
        """``GET /permissions/query/entities/roles``: the roles of the context's entity."""
        return _pager(flows.entity_roles_pages(page_size), self._client, cursor)

    def subordinate_entity_roles(
        self, *, subordinate_entity_identifier: Identifier | None = None, page_size: int | None = None,
        cursor: int | None = None,
    ) -> Pager[SubordinateEntityRole, int]:  # fmt: skip
        """``POST /permissions/query/subordinate-entities/roles``: the roles of subordinate entities."""
        page = flows.subordinate_roles_pages(subordinate_entity_identifier, page_size)
        return _pager(page, self._client, cursor)

    def authorizations(
        self, *, query_type: str = "Granted", authorizing_identifier: Identifier | None = None,
        authorized_identifier: Identifier | None = None, permission_types: Iterable[str] | None = None,
        page_size: int | None = None, cursor: int | None = None,
    ) -> Pager[EntityAuthorizationGrant, int]:  # fmt: skip
        """``POST /permissions/query/authorizations/grants``: authorization grants ``Granted`` to
        others or ``Received`` from them (``query_type``)."""
        page = flows.authorizations_pages(
            query_type, authorizing_identifier, authorized_identifier, permission_types, page_size
        )
        return _pager(page, self._client, cursor)

    def eu_entities(
        self, *, vat_ue_identifier: str | None = None, authorized_fingerprint_identifier: str | None = None,
        permission_types: Iterable[str] | None = None, page_size: int | None = None, cursor: int | None = None,
    ) -> Pager[EuEntityPermission, int]:  # fmt: skip
        """``POST /permissions/query/eu-entities/grants``: EU entities' administrators and representatives."""
        page = flows.eu_entities_pages(
            vat_ue_identifier, authorized_fingerprint_identifier, permission_types, page_size
        )
        return _pager(page, self._client, cursor)


class AsyncPermissions:
    """``Permissions`` for the asynchronous client: the same methods, awaited (queries: ``async for``)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def grant_person(
        self, request: PersonPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[str] | None = None, description: str | None = None, subject_details: Any = None,
    ) -> str:  # fmt: skip
        """See ``Permissions.grant_person``."""
        flow = flows.person_grant(request, subject_identifier, permissions, description, subject_details)
        return await arun(flow, self._client)

    async def grant_entity(
        self, request: EntityPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[Any] | None = None, description: str | None = None, subject_details: Any = None,
        can_delegate: Iterable[str] = (),
    ) -> str:  # fmt: skip
        """See ``Permissions.grant_entity``."""
        flow = flows.entity_grant(request, subject_identifier, permissions, description, subject_details, can_delegate)
        return await arun(flow, self._client)

    async def grant_authorization(
        self, request: EntityAuthorizationPermissionsGrantRequest | None = None, *,
        subject_identifier: Identifier | None = None, permission: str | None = None, description: str | None = None,
        subject_details: Any = None,
    ) -> str:  # fmt: skip
        """See ``Permissions.grant_authorization``."""
        flow = flows.authorization_grant(request, subject_identifier, permission, description, subject_details)
        return await arun(flow, self._client)

    async def grant_indirect(
        self, request: IndirectPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[str] | None = None, description: str | None = None, subject_details: Any = None,
        target_identifier: Identifier | None = None,
    ) -> str:  # fmt: skip
        """See ``Permissions.grant_indirect``."""
        flow = flows.indirect_grant(
            request, subject_identifier, permissions, description, subject_details, target_identifier
        )
        return await arun(flow, self._client)

    async def grant_subunit(
        self, request: SubunitPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        context_identifier: Identifier | None = None, description: str | None = None, subject_details: Any = None,
        subunit_name: str | None = None,
    ) -> str:  # fmt: skip
        """See ``Permissions.grant_subunit``."""
        flow = flows.subunit_grant(
            request, subject_identifier, context_identifier, description, subject_details, subunit_name
        )
        return await arun(flow, self._client)

    async def grant_eu_entity_administrator(
        self, request: EuEntityAdministrationPermissionsGrantRequest | None = None, *,
        subject_identifier: Identifier | None = None, context_identifier: Identifier | None = None,
        description: str | None = None, eu_entity_name: str | None = None, subject_details: Any = None,
        eu_entity_details: Any = None,
    ) -> str:  # fmt: skip
        """See ``Permissions.grant_eu_entity_administrator``."""
        flow = flows.eu_administrator_grant(
            request, subject_identifier, context_identifier, description, eu_entity_name, subject_details,
            eu_entity_details,
        )  # fmt: skip
        return await arun(flow, self._client)

    async def grant_eu_entity(
        self, request: EuEntityPermissionsGrantRequest | None = None, *, subject_identifier: Identifier | None = None,
        permissions: Iterable[str] | None = None, description: str | None = None, subject_details: Any = None,
    ) -> str:  # fmt: skip
        """See ``Permissions.grant_eu_entity``."""
        flow = flows.eu_entity_grant(request, subject_identifier, permissions, description, subject_details)
        return await arun(flow, self._client)

    async def operation(self, reference_number: str) -> PermissionsOperationStatusResponse:
        """See ``Permissions.operation``."""
        return await arun(flows.operation_flow(reference_number), self._client)

    async def wait(
        self, reference_number: str, *, timeout: float = 120.0, interval: float = 1.0
    ) -> PermissionsOperationStatusResponse:
        """See ``Permissions.wait``."""
        return await arun(flows.wait_flow(reference_number, timeout, interval), self._client)

    async def revoke(self, permission_id: str) -> str:
        """See ``Permissions.revoke``."""
        return await arun(flows.revoke_flow(permission_id), self._client)

    async def revoke_authorization(self, permission_id: str) -> str:
        """See ``Permissions.revoke_authorization``."""
        return await arun(flows.revoke_flow(permission_id, authorization=True), self._client)

    async def attachment_status(self) -> CheckAttachmentPermissionStatusResponse:
        """See ``Permissions.attachment_status``."""
        return await arun(flows.attachment_status_flow(), self._client)

    def personal(
        self, *, context_identifier: Identifier | None = None, target_identifier: Identifier | None = None,
        permission_types: Iterable[str] | None = None, permission_state: str | None = None,
        page_size: int | None = None, cursor: int | None = None,
    ) -> AsyncPager[PersonalPermission, int]:  # fmt: skip
        """See ``Permissions.personal``."""
        page = flows.personal_pages(
            context_identifier, target_identifier, permission_types, permission_state, page_size
        )
        return _apager(page, self._client, cursor)

    def persons(
        self, *, query_type: str = "PermissionsInCurrentContext", author_identifier: Identifier | None = None,
        authorized_identifier: Identifier | None = None, context_identifier: Identifier | None = None,
        target_identifier: Identifier | None = None, permission_types: Iterable[str] | None = None,
        permission_state: str | None = None, page_size: int | None = None, cursor: int | None = None,
    ) -> AsyncPager[PersonPermission, int]:  # fmt: skip
        """See ``Permissions.persons``."""
        page = flows.persons_pages(
            query_type, author_identifier, authorized_identifier, context_identifier, target_identifier,
            permission_types, permission_state, page_size,
        )  # fmt: skip
        return _apager(page, self._client, cursor)

    def subunits(
        self, *, subunit_identifier: Identifier | None = None, page_size: int | None = None, cursor: int | None = None
    ) -> AsyncPager[SubunitPermission, int]:
        """See ``Permissions.subunits``."""
        return _apager(flows.subunits_pages(subunit_identifier, page_size), self._client, cursor)

    def entities(
        self, *, context_identifier: Identifier | None = None, page_size: int | None = None, cursor: int | None = None
    ) -> AsyncPager[EntityPermissionItem, int]:
        """See ``Permissions.entities``."""
        return _apager(flows.entities_pages(context_identifier, page_size), self._client, cursor)

    def entity_roles(self, *, page_size: int | None = None, cursor: int | None = None) -> AsyncPager[EntityRole, int]:
        """See ``Permissions.entity_roles``."""
        return _apager(flows.entity_roles_pages(page_size), self._client, cursor)

    def subordinate_entity_roles(
        self, *, subordinate_entity_identifier: Identifier | None = None, page_size: int | None = None,
        cursor: int | None = None,
    ) -> AsyncPager[SubordinateEntityRole, int]:  # fmt: skip
        """See ``Permissions.subordinate_entity_roles``."""
        page = flows.subordinate_roles_pages(subordinate_entity_identifier, page_size)
        return _apager(page, self._client, cursor)

    def authorizations(
        self, *, query_type: str = "Granted", authorizing_identifier: Identifier | None = None,
        authorized_identifier: Identifier | None = None, permission_types: Iterable[str] | None = None,
        page_size: int | None = None, cursor: int | None = None,
    ) -> AsyncPager[EntityAuthorizationGrant, int]:  # fmt: skip
        """See ``Permissions.authorizations``."""
        page = flows.authorizations_pages(
            query_type, authorizing_identifier, authorized_identifier, permission_types, page_size
        )
        return _apager(page, self._client, cursor)

    def eu_entities(
        self, *, vat_ue_identifier: str | None = None, authorized_fingerprint_identifier: str | None = None,
        permission_types: Iterable[str] | None = None, page_size: int | None = None, cursor: int | None = None,
    ) -> AsyncPager[EuEntityPermission, int]:  # fmt: skip
        """See ``Permissions.eu_entities``."""
        page = flows.eu_entities_pages(
            vat_ue_identifier, authorized_fingerprint_identifier, permission_types, page_size
        )
        return _apager(page, self._client, cursor)
