"""Permission grants of the emulator: grant, revoke, query; person grants also open logins.

Mixed into ``KSeFBackend``. Every grant becomes a ``Grant`` record in the granting context; a
grant to a person or entity identified by NIP, PESEL or certificate fingerprint also lets that
subject log in to the context with those permissions (``grants``, read by XAdES logins).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ksef_client._generated.models import OwnerPermissionScope
from ksef_client.mock.auth import Access, AuthOperation, Context
from ksef_client.mock.exceptions import MockAPIError, NotFound

GRANT_KINDS = ("person", "entity", "authorization", "indirect", "subunit", "eu-administration", "eu-entity")


@dataclass
class Grant:
    """One granted permission set."""

    id: str
    kind: str
    context: Context
    subject: tuple[str, str]
    permissions: tuple[str, ...]
    description: str
    created: dt.datetime
    author: tuple[str, str]
    details: dict[str, Any] = field(default_factory=dict)


class PermissionOperations:
    """Mixin of ``KSeFBackend``: permission grants and their queries."""

    clock: Callable[[], dt.datetime]
    lock: threading.RLock
    grants: dict[tuple[Context, str], frozenset[str]]
    auth_operations: dict[str, AuthOperation]

    def new_reference_number(self, kind: str) -> str:  # pragma: no cover - KSeFBackend
        raise NotImplementedError

    def _reset_permissions(self) -> None:
        self.permission_grants: dict[str, Grant] = {}
        self.permission_operations: dict[str, Context] = {}

    def caller_subject(self, access: Access) -> tuple[str, str]:
        """Who the access token was issued to (``("Nip", ...)``, ``("Fingerprint", ...)``, ...)."""
        operation = self.auth_operations.get(access.auth_reference_number)
        if operation is not None and ":" in operation.subject:
            kind, value = operation.subject.split(":", 1)
            return kind, value
        return "Nip", access.context.nip or access.context.value

    def owner_permissions(self, access: Access) -> list[str] | None:
        """``ownerPermissions`` of the personal query: every owner scope when the caller owns the context."""
        if access.context.type == "Nip" and self.caller_subject(access) == ("Nip", access.context.nip):
            return [scope.value for scope in OwnerPermissionScope]
        return None

    def grant(self, access: Access, kind: str, subject: tuple[str, str], permissions: list[str], description: str,
              details: dict[str, Any] | None = None) -> str:  # fmt: skip
        """Record a grant in the caller's context; returns the operation's reference number."""
        record = Grant(
            str(uuid.uuid4()), kind, access.context, subject, tuple(permissions), description, self.clock(),
            self.caller_subject(access), details or {},
        )  # fmt: skip
        with self.lock:
            self.permission_grants[record.id] = record
            if kind in ("person", "entity") and subject[0] in ("Nip", "Pesel", "Fingerprint"):
                key = (access.context, f"{subject[0]}:{subject[1]}")
                self.grants[key] = self.grants.get(key, frozenset()) | frozenset(permissions)
        return self._operation(access)

    def revoke_grant(self, access: Access, permission_id: str) -> str:
        """Remove a grant of the caller's context (and the login it opened)."""
        with self.lock:
            record = self.permission_grants.get(permission_id)
            if record is None or record.context != access.context:
                raise NotFound(
                    21405, "Błąd walidacji danych wejściowych.", [f"Uprawnienie {permission_id} nie istnieje."]
                )
            del self.permission_grants[permission_id]
            self.grants.pop((record.context, f"{record.subject[0]}:{record.subject[1]}"), None)
        return self._operation(access)

    def _operation(self, access: Access) -> str:
        ref = self.new_reference_number("OP")
        with self.lock:
            self.permission_operations[ref] = access.context
        return ref

    def permission_operation(self, access: Access, reference_number: str) -> None:
        """``GET /permissions/operations/{ref}``: 400 unless the operation is the caller's."""
        if self.permission_operations.get(reference_number) != access.context:
            raise NotFound(21405, "Błąd walidacji danych wejściowych.", [f"Operacja {reference_number} nie istnieje."])

    def grants_of(self, access: Access, kinds: tuple[str, ...], *, personal: bool = False) -> list[Grant]:
        """Grants of these kinds made in the caller's context, or (``personal``) made to the caller."""
        me = self.caller_subject(access)
        with self.lock:
            records = list(self.permission_grants.values())
        found = [
            g for g in records
            if g.kind in kinds and (g.subject == me if personal else g.context == access.context)
        ]  # fmt: skip
        return sorted(found, key=lambda g: (g.created, g.id))


def page_of(items: list[Any], page_offset: int, page_size: int) -> tuple[list[Any], bool]:
    """One ``pageOffset`` page and ``hasMore``."""
    start = page_offset * page_size
    return items[start : start + page_size], start + page_size < len(items)


def check_kind(kind: str) -> None:
    """Guard against typos in the route table."""
    if kind not in GRANT_KINDS:
        raise MockAPIError(21405, "Błąd walidacji danych wejściowych.", [kind])
