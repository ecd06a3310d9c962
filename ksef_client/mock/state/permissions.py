"""Permission grants: grant, revoke, query; what a subject may do in a context it does not own.

Every grant is a ``Grant`` record in the granting context. A grant to a person or entity (by NIP,
PESEL or certificate fingerprint) also lets that subject log in to the context with those
permissions; ``/testdata/permissions`` grants logins directly. Authorization grants
(``SelfInvoicing``, ``RRInvoicing``, ``TaxRepresentative``, ``PefInvoicing``) let another
context issue invoices in the granting seller's name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from ksef_client._generated.models import OwnerPermissionScope
from ksef_client.mock.exceptions import NotFound
from ksef_client.mock.state.core import VALIDATION, Access, Context, Core

GRANT_KINDS = ("person", "entity", "authorization", "indirect", "subunit", "eu-administration", "eu-entity")
LOGIN_KINDS = ("person", "entity")
LOGIN_SUBJECTS = ("Nip", "Pesel", "Fingerprint")


@dataclass
class Grant:
    """One granted permission."""

    id: str
    kind: str
    context: Context
    subject: tuple[str, str]
    permissions: tuple[str, ...]
    description: str
    created: dt.datetime
    author: tuple[str, str]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PermissionsState:
    """Grant records, the logins they open, and permission operations (reference -> context)."""

    grants: dict[str, Grant] = field(default_factory=dict)
    logins: dict[tuple[Context, str], frozenset[str]] = field(default_factory=dict)
    operations: dict[str, Context] = field(default_factory=dict)


def subject_key(kind: str, value: str) -> str:
    """How a login subject is named: ``"Nip:5265877635"``, ``"Fingerprint:AB12..."``."""
    return f"{kind}:{value.upper() if kind == 'Fingerprint' else value}"


class Permissions:
    """Grants of every context."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.state = PermissionsState()

    def grant(
        self, access: Access, kind: str, subject: tuple[str, str], permissions: list[str], description: str,
        details: dict[str, Any] | None = None,
    ) -> str:  # fmt: skip
        """Record a grant in the caller's context; returns the operation's reference number."""
        record = Grant(
            str(uuid.uuid4()), kind, access.context, subject, tuple(permissions), description, self.core.clock(),
            access.subject, details or {},
        )  # fmt: skip
        with self.core.lock:
            self.state.grants[record.id] = record
            if kind in LOGIN_KINDS and subject[0] in LOGIN_SUBJECTS:
                self.grant_login(access.context, subject_key(*subject), frozenset(permissions))
        return self._operation(access)

    def grant_login(self, context: Context, subject: str, permissions: frozenset[str]) -> None:
        """Let ``subject`` (a ``subject_key``) log in to ``context`` with ``permissions`` (more)."""
        with self.core.lock:
            key = (context, subject)
            self.state.logins[key] = self.state.logins.get(key, frozenset()) | permissions

    def revoke_login(self, context: Context, subject: str) -> None:
        """Close the login a grant opened."""
        with self.core.lock:
            self.state.logins.pop((context, subject), None)

    def login_permissions(self, context: Context, subject: str) -> frozenset[str] | None:
        """What ``subject`` may do when it logs in to ``context`` (``None``: it may not)."""
        return self.state.logins.get((context, subject))

    def revoke(self, access: Access, permission_id: str) -> str:
        """Remove a grant of the caller's context (and the login it opened)."""
        with self.core.lock:
            record = self.state.grants.get(permission_id)
            if record is None or record.context != access.context:
                raise NotFound(21405, VALIDATION, [f"Uprawnienie {permission_id} nie istnieje."])
            del self.state.grants[permission_id]
            self.revoke_login(record.context, subject_key(*record.subject))
        return self._operation(access)

    def _operation(self, access: Access) -> str:
        ref = self.core.new_reference_number("OP")
        with self.core.lock:
            self.state.operations[ref] = access.context
        return ref

    def operation(self, access: Access, reference_number: str) -> None:
        """``GET /permissions/operations/{ref}``: 400 unless the operation is the caller's."""
        if self.state.operations.get(reference_number) != access.context:
            raise NotFound(21405, VALIDATION, [f"Operacja {reference_number} nie istnieje."])

    def grants_of(self, access: Access, kinds: tuple[str, ...], *, personal: bool = False) -> list[Grant]:
        """Grants of these kinds made in the caller's context, or (``personal``) made to the caller."""
        with self.core.lock:
            records = list(self.state.grants.values())
        found = [
            g for g in records
            if g.kind in kinds and (g.subject == access.subject if personal else g.context == access.context)
        ]  # fmt: skip
        return sorted(found, key=lambda g: (g.created, g.id))

    def owner_permissions(self, access: Access) -> list[str] | None:
        """``ownerPermissions`` of the personal query: every owner scope when the caller owns the context."""
        if access.context.type == "Nip" and access.subject == ("Nip", access.context.nip):
            return [scope.value for scope in OwnerPermissionScope]
        return None

    def may_issue_for(self, context: Context, seller_nip: str, scopes: tuple[str, ...]) -> bool:
        """Whether ``context`` may send invoices whose seller is ``seller_nip``: its own, or under an
        authorization grant of the seller (self-invoicing, tax representative, RR invoicing)."""
        if context.nip == seller_nip:
            return True
        with self.core.lock:
            records = list(self.state.grants.values())
        return any(
            g.kind == "authorization" and g.context.nip == seller_nip and g.subject == ("Nip", context.nip)
            and g.permissions[0] in scopes
            for g in records
        )  # fmt: skip


def page_of(items: list[Any], page_offset: int, page_size: int) -> tuple[list[Any], bool]:
    """``pageOffset``/``pageSize`` paging: one page and whether more follow."""
    start = page_offset * page_size
    return items[start : start + page_size], start + page_size < len(items)
