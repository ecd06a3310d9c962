"""``ksef.testdata``: the test environment's own data (``/testdata/*``): subjects and persons,
permissions, attachment consent, blocked contexts, limits, rate limits, certificate validity.

The guide's scenarios (dane-testowe-scenariusze.md) set up a bailiff or a sole trader with
``/v2/testdata/person``, a VAT group with ``/v2/testdata/subject`` and ``/v2/testdata/permissions``,
invoices with attachments with ``/testdata/attachment``. KSeF's production has none of this
(srodowiska.md: the test environments "służy wyłącznie do testowania integracji"; the spec's
``PUT /testdata/certificates/{serialNumber}``: "**Tylko na środowiskach testowych.**"), so a client
of ``Environment.PROD`` refuses every method with ``ValueError`` before any request.

Each body is given as JSON in the API's names (``{"subjectNip": ..., "subjectType": "VatGroup",
...}``) or as the generated model of the spec's request schema (``SubjectCreateRequest``), and is
checked against that schema of the pinned spec (keys, required fields, enums, patterns, lengths,
ranges: ``_query_filters.checked_against``) before it is sent: KSeF ignores unknown keys, so a
misspelt one would otherwise change nothing without an error. A ``datetime`` (with a time zone)
may stand for a ``date-time`` field, a ``date`` for a ``date`` one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ksef_client._flows import Call, Flow, arun, run
from ksef_client._generated import models
from ksef_client._generated.api.testdata import (
    block_test_context,
    create_test_person,
    create_test_subject,
    enable_test_attachments,
    grant_test_permissions,
    remove_test_person,
    remove_test_subject,
    reset_test_certificate_limits,
    reset_test_rate_limits,
    reset_test_session_limits,
    revoke_test_attachments,
    revoke_test_permissions,
    set_test_certificate_limits,
    set_test_rate_limits,
    set_test_rate_limits_production,
    set_test_session_limits,
    unblock_test_context,
    update_test_certificate,
)
from ksef_client._query_filters import checked_against
from ksef_client.identifiers import validate_certificate_serial
from ksef_client.spec_version import pinned_schemas

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF


@dataclass(frozen=True)
class Endpoint:
    """A ``/testdata/*`` operation and the spec's schema of its request body (``None``: no body)."""

    operation: ModuleType
    schema: str | None = None


CREATE_SUBJECT = Endpoint(create_test_subject, "SubjectCreateRequest")
REMOVE_SUBJECT = Endpoint(remove_test_subject, "SubjectRemoveRequest")
CREATE_PERSON = Endpoint(create_test_person, "PersonCreateRequest")
REMOVE_PERSON = Endpoint(remove_test_person, "PersonRemoveRequest")
GRANT_PERMISSIONS = Endpoint(grant_test_permissions, "TestDataPermissionsGrantRequest")
REVOKE_PERMISSIONS = Endpoint(revoke_test_permissions, "TestDataPermissionsRevokeRequest")
ALLOW_ATTACHMENTS = Endpoint(enable_test_attachments, "AttachmentPermissionGrantRequest")
REVOKE_ATTACHMENTS = Endpoint(revoke_test_attachments, "AttachmentPermissionRevokeRequest")
BLOCK_CONTEXT = Endpoint(block_test_context, "BlockContextAuthenticationRequest")
UNBLOCK_CONTEXT = Endpoint(unblock_test_context, "UnblockContextAuthenticationRequest")
SET_SESSION_LIMITS = Endpoint(set_test_session_limits, "SetSessionLimitsRequest")
RESET_SESSION_LIMITS = Endpoint(reset_test_session_limits)
SET_CERTIFICATE_LIMITS = Endpoint(set_test_certificate_limits, "SetSubjectLimitsRequest")
RESET_CERTIFICATE_LIMITS = Endpoint(reset_test_certificate_limits)
SET_RATE_LIMITS = Endpoint(set_test_rate_limits, "SetRateLimitsRequest")
RESET_RATE_LIMITS = Endpoint(reset_test_rate_limits)
PRODUCTION_RATE_LIMITS = Endpoint(set_test_rate_limits_production)
UPDATE_CERTIFICATE = Endpoint(update_test_certificate, "TestDataUpdateCertificateRequest")


def not_in_production(production: bool) -> None:
    """``ValueError`` for a client of KSeF's production: it has no ``/testdata`` operations."""
    if production:
        raise ValueError(
            "ksef.testdata: KSeF production (Environment.PROD) has no /testdata operations; they exist only in the "
            "test environments (use Environment.TEST, or the emulator)"
        )


def checked_body(schema: str, body: Any) -> Any:
    """``body`` (JSON in the API's names, or the generated model ``schema``) checked against the
    spec's ``schema`` and returned as that model; ``ValueError`` naming the key otherwise."""
    checked = checked_against(_dates_as_text(schema, body), schema, "body")
    return getattr(models, schema).from_dict(checked)


def _dates_as_text(schema: str, body: Any) -> Any:
    """``body`` with its top-level ``date-time`` and ``date`` fields as ISO text: a ``datetime`` or
    a ``date`` converted, a text parsed; a date-time without a time zone is a ``ValueError`` (KSeF
    would read it in its own). A generated model is read as its JSON first, so its dates are
    checked the same way (review of the new wrappers, F5)."""
    to_dict = getattr(body, "to_dict", None)
    if callable(to_dict) and not isinstance(body, dict):
        body = to_dict()
    if not isinstance(body, dict):
        return body
    properties = pinned_schemas()[schema].get("properties", {})
    converted = dict(body)
    for key, field in properties.items():
        if key in converted and field.get("format") in ("date-time", "date") and converted[key] is not None:
            converted[key] = _iso(converted[key], field["format"], f"body.{key}")
    return converted


def _iso(value: Any, form: str, path: str) -> str:
    """``value`` (a ``datetime``/``date`` or its ISO text) as the spec's ``form`` of text."""
    try:
        if form == "date":
            day = value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else None
            return (day or dt.date.fromisoformat(value)).isoformat()
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{path}: {value!r} is not a {form} (ISO 8601{' with a time zone' * (form != 'date')})"
        ) from None
    if moment.utcoffset() is None:
        raise ValueError(f"{path}: {value!r} has no time zone (e.g. datetime.now(UTC))")
    return moment.isoformat()


def testdata_flow(endpoint: Endpoint, production: bool, body: Any = None, **path: str) -> Flow[None]:
    """Send one ``/testdata/*`` request; refused before it is sent in production, or when ``body``
    does not match the spec's schema."""
    not_in_production(production)
    arguments: dict[str, Any] = dict(path)
    if endpoint.schema is not None:
        arguments["body"] = checked_body(endpoint.schema, body)
    yield Call(endpoint.operation, arguments)


class TestData:
    """The test environment's own data (``/testdata/*``; KSeF TEST, the emulator): each method
    sends one operation, its body checked against the spec before; ``ValueError`` on a client of
    ``Environment.PROD``."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def _send(self, endpoint: Endpoint, body: Any = None, **path: str) -> None:
        run(testdata_flow(endpoint, self._client.settings.is_production, body, **path), self._client)

    def create_subject(self, body: Any) -> None:
        """``POST /testdata/subject``: a subject (``subjectType``: ``EnforcementAuthority``,
        ``VatGroup``, ``JST``) with its ``subunits`` (a VAT group's members; scenario 3 of
        dane-testowe-scenariusze.md)."""
        self._send(CREATE_SUBJECT, body)

    def remove_subject(self, body: Any) -> None:
        """``POST /testdata/subject/remove``: a subject made by :meth:`create_subject` (``subjectNip``)."""
        self._send(REMOVE_SUBJECT, body)

    def create_person(self, body: Any) -> None:
        """``POST /testdata/person``: a person (``nip``, ``pesel``, ``isBailiff``: a bailiff or a
        sole trader, scenarios 1 and 2 of dane-testowe-scenariusze.md)."""
        self._send(CREATE_PERSON, body)

    def remove_person(self, body: Any) -> None:
        """``POST /testdata/person/remove``: a person made by :meth:`create_person` (``nip``)."""
        self._send(REMOVE_PERSON, body)

    def grant_permissions(self, body: Any) -> None:
        """``POST /testdata/permissions``: permissions for ``authorizedIdentifier`` in the context
        ``contextIdentifier`` (a VAT group's administrator, scenario 3)."""
        self._send(GRANT_PERMISSIONS, body)

    def revoke_permissions(self, body: Any) -> None:
        """``POST /testdata/permissions/revoke``: the permissions :meth:`grant_permissions` gave."""
        self._send(REVOKE_PERMISSIONS, body)

    def allow_attachments(self, body: Any) -> None:
        """``POST /testdata/attachment``: the subject ``nip`` may send invoices with attachments
        (scenario 4)."""
        self._send(ALLOW_ATTACHMENTS, body)

    def revoke_attachments(self, body: Any) -> None:
        """``POST /testdata/attachment/revoke``: the subject ``nip`` no longer may (scenario 5;
        ``expectedEndDate``, optional, when)."""
        self._send(REVOKE_ATTACHMENTS, body)

    def block_context(self, body: Any) -> None:
        """``POST /testdata/context/block``: logins into ``contextIdentifier`` are refused."""
        self._send(BLOCK_CONTEXT, body)

    def unblock_context(self, body: Any) -> None:
        """``POST /testdata/context/unblock``: the context's logins work again."""
        self._send(UNBLOCK_CONTEXT, body)

    def set_session_limits(self, body: Any) -> None:
        """``POST /testdata/limits/context/session``: the logged-in context's session limits
        (``onlineSession``, ``batchSession``, ``collectiveIdentifier``: ``GET /limits/context``)."""
        self._send(SET_SESSION_LIMITS, body)

    def reset_session_limits(self) -> None:
        """``DELETE /testdata/limits/context/session``: KSeF's default session limits again."""
        self._send(RESET_SESSION_LIMITS)

    def set_certificate_limits(self, body: Any) -> None:
        """``POST /testdata/limits/subject/certificate``: the logged-in subject's certificate and
        enrollment limits (``GET /limits/subject``)."""
        self._send(SET_CERTIFICATE_LIMITS, body)

    def reset_certificate_limits(self) -> None:
        """``DELETE /testdata/limits/subject/certificate``: the default certificate limits again."""
        self._send(RESET_CERTIFICATE_LIMITS)

    def set_rate_limits(self, body: Any) -> None:
        """``POST /testdata/rate-limits``: the logged-in context's API rate limits (``rateLimits``,
        every group: ``GET /rate-limits``)."""
        self._send(SET_RATE_LIMITS, body)

    def reset_rate_limits(self) -> None:
        """``DELETE /testdata/rate-limits``: the default rate limits again."""
        self._send(RESET_RATE_LIMITS)

    def set_production_rate_limits(self) -> None:
        """``POST /testdata/rate-limits/production``: the context's rate limits set to production's."""
        self._send(PRODUCTION_RATE_LIMITS)

    def update_certificate(self, serial_number: str, body: Any) -> None:
        """``PUT /testdata/certificates/{serialNumber}``: change a KSeF certificate of the logged-in
        subject (``validTo``: its end of validity; "Tylko na środowiskach testowych")."""
        self._send(UPDATE_CERTIFICATE, body, serial_number=validate_certificate_serial(serial_number))


class AsyncTestData:
    """The test environment's own data (async); see :class:`TestData`."""

    __test__ = False

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def _send(self, endpoint: Endpoint, body: Any = None, **path: str) -> None:
        await arun(testdata_flow(endpoint, self._client.settings.is_production, body, **path), self._client)

    async def create_subject(self, body: Any) -> None:
        """``POST /testdata/subject``; see :meth:`TestData.create_subject`."""
        await self._send(CREATE_SUBJECT, body)

    async def remove_subject(self, body: Any) -> None:
        """``POST /testdata/subject/remove``; see :meth:`TestData.remove_subject`."""
        await self._send(REMOVE_SUBJECT, body)

    async def create_person(self, body: Any) -> None:
        """``POST /testdata/person``; see :meth:`TestData.create_person`."""
        await self._send(CREATE_PERSON, body)

    async def remove_person(self, body: Any) -> None:
        """``POST /testdata/person/remove``; see :meth:`TestData.remove_person`."""
        await self._send(REMOVE_PERSON, body)

    async def grant_permissions(self, body: Any) -> None:
        """``POST /testdata/permissions``; see :meth:`TestData.grant_permissions`."""
        await self._send(GRANT_PERMISSIONS, body)

    async def revoke_permissions(self, body: Any) -> None:
        """``POST /testdata/permissions/revoke``; see :meth:`TestData.revoke_permissions`."""
        await self._send(REVOKE_PERMISSIONS, body)

    async def allow_attachments(self, body: Any) -> None:
        """``POST /testdata/attachment``; see :meth:`TestData.allow_attachments`."""
        await self._send(ALLOW_ATTACHMENTS, body)

    async def revoke_attachments(self, body: Any) -> None:
        """``POST /testdata/attachment/revoke``; see :meth:`TestData.revoke_attachments`."""
        await self._send(REVOKE_ATTACHMENTS, body)

    async def block_context(self, body: Any) -> None:
        """``POST /testdata/context/block``; see :meth:`TestData.block_context`."""
        await self._send(BLOCK_CONTEXT, body)

    async def unblock_context(self, body: Any) -> None:
        """``POST /testdata/context/unblock``; see :meth:`TestData.unblock_context`."""
        await self._send(UNBLOCK_CONTEXT, body)

    async def set_session_limits(self, body: Any) -> None:
        """``POST /testdata/limits/context/session``; see :meth:`TestData.set_session_limits`."""
        await self._send(SET_SESSION_LIMITS, body)

    async def reset_session_limits(self) -> None:
        """``DELETE /testdata/limits/context/session``: the default session limits again."""
        await self._send(RESET_SESSION_LIMITS)

    async def set_certificate_limits(self, body: Any) -> None:
        """``POST /testdata/limits/subject/certificate``; see :meth:`TestData.set_certificate_limits`."""
        await self._send(SET_CERTIFICATE_LIMITS, body)

    async def reset_certificate_limits(self) -> None:
        """``DELETE /testdata/limits/subject/certificate``: the default certificate limits again."""
        await self._send(RESET_CERTIFICATE_LIMITS)

    async def set_rate_limits(self, body: Any) -> None:
        """``POST /testdata/rate-limits``; see :meth:`TestData.set_rate_limits`."""
        await self._send(SET_RATE_LIMITS, body)

    async def reset_rate_limits(self) -> None:
        """``DELETE /testdata/rate-limits``: the default rate limits again."""
        await self._send(RESET_RATE_LIMITS)

    async def set_production_rate_limits(self) -> None:
        """``POST /testdata/rate-limits/production``: the context's rate limits set to production's."""
        await self._send(PRODUCTION_RATE_LIMITS)

    async def update_certificate(self, serial_number: str, body: Any) -> None:
        """``PUT /testdata/certificates/{serialNumber}``; see :meth:`TestData.update_certificate`."""
        await self._send(UPDATE_CERTIFICATE, body, serial_number=validate_certificate_serial(serial_number))
