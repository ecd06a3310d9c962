"""``ksef.permissions`` (sync and async) against the emulator: grant, wait, query, revoke.

uprawnienia.md: "Każde nadanie lub odebranie uprawnienia jest realizowane jako asynchroniczna
operacja" and "Wykonanie operacji nadania uprawnienia nie skutkuje natychmiastowym dostępem [...]
(należy sprawdzić status operacji)". The emulator keeps each operation in progress (100) for
``transitions.permission_reads`` reads of its status, so a grant is not in effect until ``wait``
has seen it through.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import ksef_client
from ksef_client import AsyncKSeF, KSeF
from ksef_client._countries import ISO_3166_ALPHA2
from ksef_client._generated.api.permissions import query_authorization_permissions
from ksef_client._generated.models import EntityAuthorizationPermissionsQueryRequest, PersonPermissionsGrantRequest
from ksef_client.errors import (
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    GoneError,
    PermissionOperationFailedError,
    PollTimeoutError,
)
from ksef_client.identifiers import internal_id_check_digit, make_internal_id
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.models import Context
from ksef_client.mock.server import ThreadedServer
from ksef_client.resources._permission_bodies import check_identifier
from ksef_client.resources._permission_flows import RevokeReference
from tests.conftest import NIP
from tests.helpers import FakeTime

CLIENT, PARTNER = "7762811692", "4972530874"
PESEL = "15062788702"
FINGERPRINT = "A" * 64
VAT_UE = "DE123456789"
COMPOSITE = f"{NIP}-{VAT_UE}"
PERSON = {"subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "Jan", "lastName": "Nowak"}}
DOCUMENT = {"type": "Passport", "number": "C01X00T47", "country": "DE"}
FOREIGNER: dict[str, Any] = {
    "subjectDetailsType": "PersonByFingerprintWithoutIdentifier",
    "personByFpNoId": {"firstName": "Hans", "lastName": "Meier", "birthDate": "1980-01-01", "idDocument": DOCUMENT},
}
BORN = {**FOREIGNER, "personByFpNoId": {**FOREIGNER["personByFpNoId"], "birthDate": dt.date(1980, 1, 1)}}
OWN_CONTEXT = Context("Nip", NIP)
READS = 2  # every operation is in progress (100) for its first two status reads


@dataclass(frozen=True)
class Kind:
    """One kind of grant: how to make it, where it is listed, how to revoke it."""

    name: str
    grant: str
    arguments: dict[str, Any]
    query: str
    listed: Callable[[Any], bool]
    query_arguments: dict[str, Any] = field(default_factory=dict)
    revoke: str = "revoke"
    context: Context = OWN_CONTEXT
    delegation: bool = False  # the client CLIENT first gives NIP InvoiceRead to pass on


def _subject(item: Any) -> str:
    return str(item.authorized_identifier.value)


KINDS = [
    Kind(
        "person", "grant_person",
        {"subject_identifier": ("Pesel", PESEL), "permissions": ["InvoiceRead", "InvoiceWrite"],
         "description": "księgowa", "subject_details": PERSON},
        "persons", lambda p: _subject(p) == PESEL, {"query_type": "PermissionsGrantedInCurrentContext"},
    ),
    Kind(
        "entity", "grant_entity",
        {"subject_identifier": ("Nip", PARTNER), "permissions": ["InvoiceRead"], "can_delegate": ["InvoiceRead"],
         "description": "biuro rachunkowe", "subject_details": "Biuro Rachunkowe"},
        "persons", lambda p: _subject(p) == PARTNER and p.can_delegate is True,
    ),
    Kind(
        "authorization", "grant_authorization",
        {"subject_identifier": ("Nip", PARTNER), "permission": "SelfInvoicing", "description": "samofakturowanie",
         "subject_details": {"fullName": "Firma B sp. z o.o."}},
        "authorizations", lambda g: str(g.authorized_entity_identifier.value) == PARTNER,
        revoke="revoke_authorization",
    ),
    Kind(
        "indirect", "grant_indirect",
        {"subject_identifier": ("Pesel", PESEL), "permissions": ["InvoiceRead"], "description": "obsługa klienta",
         "subject_details": PERSON, "target_identifier": ("Nip", CLIENT)},
        "persons", lambda p: _subject(p) == PESEL, {"query_type": "PermissionsGrantedInCurrentContext"},
        delegation=True,
    ),
    Kind(
        "indirect-general", "grant_indirect",
        {"subject_identifier": ("Pesel", PESEL), "permissions": ["InvoiceWrite"], "description": "wszyscy klienci",
         "subject_details": PERSON, "target_identifier": ("AllPartners", None)},
        "persons", lambda p: _subject(p) == PESEL, {"query_type": "PermissionsGrantedInCurrentContext"},
    ),
    Kind(
        "subunit", "grant_subunit",
        {"subject_identifier": ("Pesel", PESEL), "context_identifier": ("InternalId", make_internal_id(NIP, 1)),
         "subunit_name": "Oddział Kraków", "description": "admin jednostki", "subject_details": PERSON},
        "subunits", lambda p: p.subunit_name == "Oddział Kraków",
    ),
    Kind(
        "eu-administration", "grant_eu_entity_administrator",
        {"subject_identifier": ("Fingerprint", FINGERPRINT), "context_identifier": ("NipVatUe", COMPOSITE),
         "description": "administrator", "eu_entity_name": "Firma GmbH, Berlin", "subject_details": FOREIGNER,
         "eu_entity_details": {"fullName": "Firma GmbH", "address": "Berlin"}},
        "eu_entities", lambda p: p.vat_ue_identifier == VAT_UE,
    ),
    Kind(
        "eu-entity", "grant_eu_entity",
        {"subject_identifier": ("Fingerprint", FINGERPRINT), "permissions": ["InvoiceWrite"],
         "description": "przedstawiciel", "subject_details": BORN},
        "eu_entities", lambda p: str(p.permission_scope) == "InvoiceWrite",
        context=Context("NipVatUe", COMPOSITE),
    ),
]  # fmt: skip


def _token(backend: KSeFBackend, context: Context) -> str:
    if context.type == "NipVatUe":  # the EU entity's administrator (POST /permissions/eu-entities/grants: VatUeManage)
        return backend.mint_access_token(context=context, permissions=["VatUeManage", "InvoiceWrite", "InvoiceRead"])
    return backend.mint_access_token(context=context)


def _client(server: ThreadedServer, backend: KSeFBackend, time: FakeTime, context: Context) -> KSeF:
    token = _token(backend, context)
    return KSeF(base_url=server.base_url, access_token=token, sleep=time.sleep, clock=time.clock)


def _delegate(server: ThreadedServer, backend: KSeFBackend, time: FakeTime) -> None:
    # POST /permissions/indirect/grants: "Uprawnienie selektywne może być nadane wyłącznie wtedy, gdy klient
    # nadał wcześniej podmiotowi bieżącego kontekstu dowolne uprawnienie z prawem do jego dalszego przekazywania".
    with _client(server, backend, time, Context("Nip", CLIENT)) as client:
        ref = client.permissions.grant_entity(
            subject_identifier=("Nip", NIP), permissions=["InvoiceRead"], can_delegate=["InvoiceRead"],
            description="biuro rachunkowe", subject_details="Biuro Rachunkowe NIP",
        )  # fmt: skip
        client.permissions.wait(ref)


@pytest.fixture
def slow_operations(backend: KSeFBackend) -> None:
    backend.transitions.permission_reads = READS


@pytest.mark.usefixtures("slow_operations")
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_grant_wait_query_revoke(
    kind: Kind, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    if kind.delegation:
        _delegate(ksef_server, backend, fake_time)
    with _client(ksef_server, backend, fake_time, kind.context) as ksef:
        api = ksef.permissions

        def found() -> list[Any]:
            return [item for item in getattr(api, kind.query)(**kind.query_arguments) if kind.listed(item)]

        ref = getattr(api, kind.grant)(**kind.arguments)
        assert found() == []  # not in effect until its operation is done
        assert api.operation(ref).status.code == 100
        assert api.wait(ref).status.code == 200
        assert len(fake_time.sleeps) >= 1  # the poll waited for the operation
        granted = found()
        assert granted
        for item in granted:
            assert api.wait(getattr(api, kind.revoke)(item.id)).status.code == 200
        assert found() == []


@pytest.mark.anyio
@pytest.mark.usefixtures("slow_operations")
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
async def test_async_grant_wait_query_revoke(
    kind: Kind, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    if kind.delegation:
        _delegate(ksef_server, backend, fake_time)
    token = _token(backend, kind.context)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as ksef:
        api = ksef.permissions

        async def found() -> list[Any]:
            return [item async for item in getattr(api, kind.query)(**kind.query_arguments) if kind.listed(item)]

        ref = await getattr(api, kind.grant)(**kind.arguments)
        assert await found() == []
        assert (await api.wait(ref)).status.code == 200
        granted = await found()
        assert granted
        for item in granted:
            assert (await api.wait(await getattr(api, kind.revoke)(item.id))).status.code == 200
        assert await found() == []


# --- the generated request model instead of keywords -----------------------------------------------


def test_a_generated_request_model_is_checked_and_sent(ksef: KSeF) -> None:
    body = PersonPermissionsGrantRequest.from_dict({
        "subjectIdentifier": {"type": "Pesel", "value": PESEL}, "permissions": ["InvoiceRead"],
        "description": "księgowa", "subjectDetails": PERSON,
    })  # fmt: skip
    ksef.permissions.wait(ksef.permissions.grant_person(body))
    assert [p.authorized_identifier.value for p in ksef.permissions.persons()] == [PESEL]
    body.description = "ab"
    with pytest.raises(ValueError, match="description: 2 characters"):
        ksef.permissions.grant_person(body)
    with pytest.raises(ValueError, match="not both"):
        ksef.permissions.grant_person(body, description="księgowa")


# --- failures --------------------------------------------------------------------------------------


def test_a_failed_operation_raises_its_status(ksef: KSeF) -> None:
    # POST /permissions/persons/grants: "Uprawnienie EnforcementOperations może być nadane wyłącznie wtedy,
    # gdy podmiot kontekstu ma rolę EnforcementAuthority (organ egzekucyjny) lub CourtBailiff".
    ref = ksef.permissions.grant_person(
        subject_identifier=("Pesel", PESEL), permissions=["EnforcementOperations"], description="egzekucja",
        subject_details=PERSON,
    )  # fmt: skip
    with pytest.raises(PermissionOperationFailedError) as caught:
        ksef.permissions.wait(ref)
    error = caught.value
    assert error.code == 430 and error.reference_number == ref and error.details
    assert "Kontekst identyfikatora" in error.description
    assert list(ksef.permissions.persons()) == []


@pytest.mark.anyio
async def test_async_a_failed_operation_raises_its_status(aksef: AsyncKSeF) -> None:
    ref = await aksef.permissions.grant_person(
        subject_identifier=("Pesel", PESEL), permissions=["EnforcementOperations"], description="egzekucja",
        subject_details=PERSON,
    )  # fmt: skip
    with pytest.raises(PermissionOperationFailedError) as caught:
        await aksef.permissions.wait(ref)
    assert caught.value.code == 430


def test_wait_gives_up_after_its_timeout(ksef: KSeF, backend: KSeFBackend) -> None:
    backend.transitions.permission_reads = 1000
    ref = ksef.permissions.grant_person(
        subject_identifier=("Pesel", PESEL), permissions=["InvoiceRead"], description="księgowa",
        subject_details=PERSON,
    )  # fmt: skip
    with pytest.raises(PollTimeoutError, match="still 100"):
        ksef.permissions.wait(ref, timeout=5, interval=1)


def test_a_revoke_refused_after_a_lost_answer_is_raised_with_its_note(ksef: KSeF, backend: KSeFBackend) -> None:
    # The lost attempt revoked it; the spec and the guide give no way to read its operation back, nor to
    # tell "revoked by the lost attempt" from "never was": the refusal is raised, with the note.
    ksef.permissions.wait(
        ksef.permissions.grant_person(
            subject_identifier=("Pesel", PESEL), permissions=["InvoiceRead"], description="księgowa",
            subject_details=PERSON,
        )
    )  # fmt: skip
    (granted,) = ksef.permissions.persons()
    backend.faults.add(DROP_AFTER, operation="permissions.revoke_common_permission")
    with pytest.raises(BadRequestError) as caught:
        ksef.permissions.revoke(granted.id)
    assert caught.value.uncertain_attempts == 1
    assert "may mean only that the earlier attempt already did it" in " ".join(caught.value.__notes__)
    assert list(ksef.permissions.persons()) == []


# --- the other endpoints ---------------------------------------------------------------------------


def test_attachment_status_and_roles(ksef: KSeF) -> None:
    assert ksef.permissions.attachment_status().is_attachment_allowed is False
    http = ksef.raw.get_httpx_client()
    assert http.post("/testdata/attachment", json={"nip": NIP}).status_code == 200
    assert ksef.permissions.attachment_status().is_attachment_allowed is True
    group = {"subjectNip": NIP, "subjectType": "VatGroup", "description": "Grupa VAT",
             "subunits": [{"subjectNip": PARTNER, "description": "członek grupy VAT"}]}  # fmt: skip
    assert http.post("/testdata/subject", json=group).status_code == 200
    assert [str(r.role) for r in ksef.permissions.entity_roles()] == ["VatGroupUnit"]
    subordinates = list(ksef.permissions.subordinate_entity_roles(subordinate_entity_identifier=("Nip", PARTNER)))
    assert [r.subordinate_entity_identifier.value for r in subordinates] == [PARTNER]


def test_queries_page_by_offset(ksef: KSeF) -> None:
    for index in range(12):
        ksef.permissions.wait(
            ksef.permissions.grant_authorization(
                subject_identifier=("PeppolId", f"PPL{index:06d}"), permission="PefInvoicing",
                description=f"Peppol {index}", subject_details="Dostawca Peppol",
            )
        )  # fmt: skip
    pages = ksef.permissions.authorizations(page_size=10).pages()
    assert [len(page.items) for page in pages] == [10, 2]
    resumed = ksef.permissions.authorizations(page_size=10, cursor=10)  # the cursor counts items read
    assert len(list(resumed)) == 2 and resumed.cursor is None


@pytest.mark.anyio
async def test_async_queries_and_status(aksef: AsyncKSeF) -> None:
    assert (await aksef.permissions.attachment_status()).is_attachment_allowed is False
    assert [r async for r in aksef.permissions.entity_roles()] == []
    assert [p async for p in aksef.permissions.personal()] == []
    assert [p async for p in aksef.permissions.entities()] == []
    assert [p async for p in aksef.permissions.subunits()] == []
    assert [p async for p in aksef.permissions.subordinate_entity_roles()] == []


# --- checked before sending ------------------------------------------------------------------------

BASE = {kind.grant: kind.arguments for kind in KINDS}
NO_NAME = {"subjectDetailsType": "PersonByIdentifier"}
SHORT_NAME = {"subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "J", "lastName": "Nowak"}}
MISSPELT = {**PERSON, "personByID": PERSON["personById"]}
LOWER_COUNTRY = {**FOREIGNER, "personByFpNoId": {**FOREIGNER["personByFpNoId"], "idDocument": {**DOCUMENT,
                 "country": "de"}}}  # fmt: skip
GUID = "0c9a72e8-f344-457f-9c16-7c640eb60242"  # the spec's example of a permission id


def _with(grant: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    return grant, {**BASE[grant], **changes}


# (method, keyword arguments, what the ValueError says); each cites the rule it checks.
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # "description": minLength 5, maxLength 256 (every grant request)
    (*_with("grant_person", description="ab"), r"description: 2 characters; the spec allows at least 5"),
    (*_with("grant_person", description="x" * 257), r"257 characters; .* at most 256"),
    (*_with("grant_person", description=None), r"description is required"),
    # the permission enums (PersonPermissionType, EntityPermissionType, ...)
    (*_with("grant_person", permissions=["InvoiceDelete"]), r"not among the spec's PersonPermissionType"),
    (*_with("grant_person", permissions="InvoiceRead"), r"permissions: expected a list"),
    (
        *_with("grant_entity", permissions=["CredentialsManage"], can_delegate=()),
        r"not among the spec's EntityPermissionType",
    ),
    (*_with("grant_authorization", permission="InvoiceRead"), r"EntityAuthorizationPermissionType"),
    (*_with("grant_eu_entity", permissions=["Introspection"]), r"EuEntityPermissionType"),
    # "Lista nadawanych uprawnień. Każda wartość może wystąpić tylko raz."
    (*_with("grant_person", permissions=["InvoiceRead", "InvoiceRead"]), r"InvoiceRead given more than once"),
    (*_with("grant_entity", permissions=["InvoiceRead", "InvoiceRead"]), r"given more than once"),
    (*_with("grant_entity", can_delegate=["InvoiceWrite"]), r"can_delegate: \['InvoiceWrite'\] not among"),
    (*_with("grant_entity", permissions=None), r"can_delegate: name permissions given in permissions="),
    (  # a dict is sent as it is: can_delegate would be dropped for it (review of today's merges, 3)
        *_with("grant_entity", permissions=[{"type": "InvoiceRead", "canDelegate": False}]),
        r"can_delegate: give the permissions as names with it",
    ),
    # identifiers by their type
    (*_with("grant_person", subject_identifier=("Pesel", "15132788702")), r"is not a PESEL"),
    (*_with("grant_person", subject_identifier=("Email", "jan@nowak.pl")), r"PersonPermissionsSubjectIdentifierType"),
    (*_with("grant_person", subject_identifier=("Pesel",)), r"give \(type, value\)"),
    (*_with("grant_eu_entity", subject_identifier=("Fingerprint", "G" * 64)), r"not a certificate fingerprint"),
    (*_with("grant_eu_entity", subject_identifier=("Fingerprint", "A" * 63)), r"63 characters"),
    (*_with("grant_authorization", subject_identifier=("PeppolId", "XPL123456")), r"is not a PeppolId"),
    (*_with("grant_indirect", target_identifier=("AllPartners", NIP)), r"AllPartners identifier has no value"),
    (*_with("grant_indirect", target_identifier=("Nip", None)), r"Nip identifier needs its value"),
    (*_with("grant_indirect", target_identifier=("InternalId", f"{NIP}-00005")), r"wrong InternalId check digit"),
    (*_with("grant_subunit", context_identifier=("InternalId", f"{NIP}-12347")), r"wrong InternalId check digit"),
    (*_with("grant_eu_entity_administrator", context_identifier=("NipVatUe", f"{NIP}-DE12345")), r"not a NipVatUe"),
    # subjectDetails: "Wymagane, gdy subjectDetailsType = ..."
    (*_with("grant_person", subject_details=NO_NAME), r"subjectDetails.personById: required"),
    (*_with("grant_person", subject_details=SHORT_NAME), r"firstName: 1 characters"),
    (*_with("grant_person", subject_details=MISSPELT), r"'personByID' is not a key of PersonPermissionSubjectDetails"),
    (*_with("grant_entity", subject_details="Bi"), r"fullName: 2 characters"),
    (*_with("grant_eu_entity_administrator", subject_details=LOWER_COUNTRY), r"country: 'de' is not an ISO 3166-1"),
    # SubunitPermissionsGrantRequest.subunitName: "W przypadku jednostki podrzędnej z identyfikatorem
    # wewnętrznym pole jest wymagane."
    (*_with("grant_subunit", subunit_name=None), r"subunitName: required"),
    # revokes, operations
    ("revoke", {"permission_id": "not-a-permission"}, r"is not a permission id"),
    ("revoke_authorization", {"permission_id": GUID[:-1]}, r"is not a permission id"),
    ("operation", {"reference_number": "20250101-XX"}, r"not a KSeF reference number"),
    ("wait", {"reference_number": GUID}, r"not a KSeF reference number"),
    # query filters (the request schemas) and page sizes (pageSize 10..100)
    ("persons", {"query_type": "Everything"}, r"PersonPermissionsQueryType"),
    ("persons", {"permission_types": ["VatUeManage"]}, r"PersonPermissionType"),
    ("persons", {"author_identifier": ("System", NIP)}, r"System identifier has no value"),
    ("personal", {"permission_state": "Revoked"}, r"PermissionState"),
    ("authorizations", {"query_type": "Given"}, r"QueryType"),
    ("authorizations", {"authorized_identifier": ("PeppolId", "PPL12345X")}, r"not a PeppolId"),
    ("eu_entities", {"vat_ue_identifier": "DE12345"}, r"the spec's pattern"),
    ("subunits", {"subunit_identifier": ("InternalId", f"{NIP}-12347")}, r"wrong InternalId check digit"),
    ("subordinate_entity_roles", {"subordinate_entity_identifier": ("Pesel", PESEL)}, r"Subordinate"),
    ("entities", {"context_identifier": ("Pesel", PESEL)}, r"EntityPermissionsContextIdentifierType"),
    ("persons", {"page_size": 5}, r"page_size: 5 is outside the API's range 10..100"),
    ("entity_roles", {"page_size": 101}, r"outside the API's range 10..100"),
]


def _ids(cases: list[tuple[str, dict[str, Any], str]]) -> list[str]:
    return [f"{method}-{index}" for index, (method, _, _) in enumerate(cases)]


@pytest.mark.parametrize(("method", "arguments", "message"), REFUSED, ids=_ids(REFUSED))
def test_bad_input_is_refused_before_any_request(ksef: KSeF, method: str, arguments: dict[str, Any],
                                                 message: str) -> None:  # fmt: skip
    sent = ksef.send_state.requests_sent
    with pytest.raises(ValueError, match=message):
        result = getattr(ksef.permissions, method)(**arguments)
        list(result)  # a pager: its filters were checked when it was made
    assert ksef.send_state.requests_sent == sent


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "arguments", "message"), REFUSED, ids=_ids(REFUSED))
async def test_async_bad_input_is_refused_before_any_request(aksef: AsyncKSeF, method: str, arguments: dict[str, Any],
                                                             message: str) -> None:  # fmt: skip
    sent = aksef.send_state.requests_sent
    with pytest.raises(ValueError, match=message):
        result = getattr(aksef.permissions, method)(**arguments)
        await result  # a coroutine: a pager raised when it was made
    assert aksef.send_state.requests_sent == sent


# Filters the SDK lets through are ones KSeF's schema takes: each is sent and answered (the emulator
# parses the body with the spec's models and refuses anything else with 21405).
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("personal", {"context_identifier": ("Nip", NIP), "target_identifier": ("AllPartners", None),
                  "permission_types": ["InvoiceRead", "VatUeManage"], "permission_state": "Active"}),
    # a NIP's check digit is not checked in permissions (srodowiska.md: "Do testów należy używać losowych
    # identyfikatorów NIP"; review F5)
    ("personal", {"context_identifier": ("Nip", "1234567890")}),
    ("persons", {"authorized_identifier": ("Nip", "5265877636")}),
    ("personal", {"context_identifier": ("InternalId", make_internal_id(NIP, 1)),
                  "target_identifier": ("Nip", CLIENT), "page_size": 10}),
    ("persons", {"query_type": "PermissionsGrantedInCurrentContext", "author_identifier": ("System", None),
                 "authorized_identifier": ("Fingerprint", FINGERPRINT), "context_identifier": ("Nip", NIP),
                 "target_identifier": ("InternalId", make_internal_id(CLIENT, 7)),
                 "permission_types": ["CredentialsManage"], "permission_state": "Inactive"}),
    ("persons", {"author_identifier": ("Pesel", PESEL), "authorized_identifier": ("Nip", PARTNER)}),
    ("subunits", {"subunit_identifier": ("Nip", PARTNER)}),
    ("entities", {"context_identifier": ("InternalId", make_internal_id(NIP, 2))}),
    ("entity_roles", {"page_size": 100, "cursor": 0}),
    ("subordinate_entity_roles", {"subordinate_entity_identifier": ("Nip", PARTNER)}),
    ("authorizations", {"query_type": "Received", "authorizing_identifier": ("Nip", CLIENT),
                        "authorized_identifier": ("PeppolId", "PPL123456"), "permission_types": ["PefInvoicing"]}),
    ("eu_entities", {"vat_ue_identifier": VAT_UE, "authorized_fingerprint_identifier": "AAAA",
                     "permission_types": ["VatUeManage", "Introspection"]}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "arguments"), ACCEPTED, ids=[f"{m}-{i}" for i, (m, _) in enumerate(ACCEPTED)])
def test_accepted_filters_are_sent_and_answered(ksef: KSeF, method: str, arguments: dict[str, Any]) -> None:
    sent = ksef.send_state.requests_sent
    assert list(getattr(ksef.permissions, method)(**arguments)) == []
    assert ksef.send_state.requests_sent == sent + 1


def test_an_operation_status_is_gone_after_30_days(
    ksef: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GET /permissions/operations/{referenceNumber}: "Status operacji jest dostępny przez 30 dni." (its 410
    # is a GoneProblemDetails); api-changelog.md 2.4.0: "Po upływie okresu retencji odpytywanie statusu
    # zwraca `410 Gone`".
    start = backend.clock()
    monkeypatch.setattr(backend, "clock", lambda: start)
    ref = ksef.permissions.grant_person(
        subject_identifier=("Pesel", PESEL), permissions=["InvoiceRead"], description="księgowa",
        subject_details=PERSON,
    )  # fmt: skip
    assert ksef.permissions.wait(ref).status.code == 200
    monkeypatch.setattr(backend, "clock", lambda: start + dt.timedelta(days=30))
    ksef.access_token = backend.mint_access_token(NIP)  # the first one expired long ago
    with pytest.raises(GoneError):
        ksef.permissions.wait(ref)


def test_a_revoke_through_the_wrong_endpoint_fails_its_operation(ksef: KSeF) -> None:
    # uprawnienia.md: SelfInvoicing, RRInvoicing, TaxRepresentative have "osobna metoda odbierania - z użyciem
    # endpointu dedykowanego do operacji autoryzacyjnych" (revoke_authorization); the emulator fails the
    # operation of the other one (450, KSeF's code for it is not documented).
    ksef.permissions.wait(
        ksef.permissions.grant_authorization(
            subject_identifier=("Nip", PARTNER), permission="SelfInvoicing", description="samofakturowanie",
            subject_details="Firma B sp. z o.o.",
        )
    )  # fmt: skip
    (grant,) = ksef.permissions.authorizations()
    with pytest.raises(PermissionOperationFailedError) as caught:
        ksef.permissions.wait(ksef.permissions.revoke(grant.id))
    assert caught.value.code == 450
    assert [g.id for g in ksef.permissions.authorizations()] == [grant.id]  # still there
    ksef.permissions.wait(ksef.permissions.revoke_authorization(grant.id))
    assert list(ksef.permissions.authorizations()) == []


# --- review of ksef.permissions, second round ------------------------------------------------------


def _generator(*names: str) -> Any:
    return (name for name in names)


@pytest.mark.parametrize("grant", ["grant_person", "grant_entity", "grant_indirect"])
@pytest.mark.parametrize("kind", ["generator", "dict_keys", "set"])
def test_permissions_take_any_iterable(ksef: KSeF, grant: str, kind: str) -> None:
    # F9: permissions= is annotated Iterable[str]; a generator or dict.keys() raised "expected a list"
    # for grant_person and grant_indirect while grant_entity sent it.
    values = {"generator": _generator("InvoiceRead"), "dict_keys": {"InvoiceRead": 1}.keys(), "set": {"InvoiceRead"}}
    arguments = {**BASE[grant], "permissions": values[kind]}
    if grant == "grant_indirect":
        arguments["target_identifier"] = ("AllPartners", None)
    assert ksef.permissions.wait(getattr(ksef.permissions, grant)(**arguments)).status.code == 200
    query = {"query_type": "PermissionsGrantedInCurrentContext", "permission_types": _generator("InvoiceRead")}
    assert [str(p.permission_scope) for p in ksef.permissions.persons(**query)] == ["InvoiceRead"]


def test_eu_entity_permissions_take_any_iterable(ksef_server: ThreadedServer, backend: KSeFBackend,
                                                 fake_time: FakeTime) -> None:  # fmt: skip
    with _client(ksef_server, backend, fake_time, Context("NipVatUe", COMPOSITE)) as ksef:
        arguments = {**BASE["grant_eu_entity"], "permissions": _generator("InvoiceWrite")}
        assert ksef.permissions.wait(ksef.permissions.grant_eu_entity(**arguments)).status.code == 200


@pytest.mark.parametrize(
    ("method", "arguments", "message"),
    [
        (*_with("grant_entity", permissions="InvoiceRead", can_delegate=()), r"permissions: expected a list, got str"),
        (*_with("grant_entity", can_delegate="InvoiceRead"), r"can_delegate: expected a list, got str"),
        (*_with("grant_eu_entity", permissions={"InvoiceWrite": True}), r"permissions: expected a list, got dict"),
        ("persons", {"permission_types": "InvoiceRead"}, r"permission_types: expected a list, got str"),
    ],
)
def test_a_string_is_not_a_list_of_permissions(ksef: KSeF, method: str, arguments: dict[str, Any],
                                               message: str) -> None:  # fmt: skip
    # A str is iterable too: its letters are not permissions.
    sent = ksef.send_state.requests_sent
    with pytest.raises(ValueError, match=message):
        getattr(ksef.permissions, method)(**arguments)
    assert ksef.send_state.requests_sent == sent


EMPTY: dict[str, dict[str, Any]] = {
    "grant_person": {"permissions": []},
    "grant_entity": {"permissions": [], "can_delegate": ()},
    "grant_indirect": {"permissions": iter(())},
    "grant_eu_entity": {"permissions": ()},
}


@pytest.mark.parametrize("grant", list(EMPTY))
def test_an_empty_permissions_list_is_refused_before_sending(ksef: KSeF, grant: str) -> None:
    # F6: sent, and refused by the emulator (21405) after sending. The Ministry's C# client refuses it
    # before sending ("Należy podać co najmniej jedno uprawnienie."); so does a request model.
    sent = ksef.send_state.requests_sent
    with pytest.raises(ValueError, match=r"permissions: give at least one permission"):
        getattr(ksef.permissions, grant)(**{**BASE[grant], **EMPTY[grant]})
    body = PersonPermissionsGrantRequest.from_dict({
        "subjectIdentifier": {"type": "Pesel", "value": PESEL}, "permissions": [],
        "description": "księgowa", "subjectDetails": PERSON,
    })  # fmt: skip
    with pytest.raises(ValueError, match=r"grant_person.permissions: give at least one"):
        ksef.permissions.grant_person(body)
    assert ksef.send_state.requests_sent == sent


def test_a_fingerprint_is_sent_in_upper_case(ksef: KSeF, monkeypatch: pytest.MonkeyPatch) -> None:
    # F4: hashlib's hexdigest() is lower case; the Ministry's clients send upper case (C#
    # CertificateUtils.GetSha256Fingerprint: ToUpperInvariant(), its validator ^[0-9A-F]{64}$; Java
    # DefaultCertificateService.getSha256Fingerprint: %02X) and so do the spec's examples. The emulator
    # upper-cases what it stores, so the test reads the bodies as sent.
    bodies: list[Any] = []
    http = ksef.raw.get_httpx_client()
    original = http.send

    def send(request: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            bodies.append(json.loads(request.content))
        return original(request, **kwargs)

    monkeypatch.setattr(http, "send", send)
    lower = hashlib.sha256(b"certificate").hexdigest()
    assert lower != lower.upper()
    person = {"firstName": "Jan", "lastName": "Nowak", "identifier": {"type": "Pesel", "value": PESEL}}
    details = {"subjectDetailsType": "PersonByFingerprintWithIdentifier", "personByFpWithId": person}
    ksef.permissions.grant_person(
        subject_identifier=("Fingerprint", lower), permissions=["InvoiceRead"], description="księgowa",
        subject_details=details,
    )  # fmt: skip
    list(ksef.permissions.persons(authorized_identifier={"type": "Fingerprint", "value": lower}))
    list(ksef.permissions.eu_entities(authorized_fingerprint_identifier=lower))
    grant, query, eu_query = bodies
    assert grant["subjectIdentifier"] == {"type": "Fingerprint", "value": lower.upper()}
    assert query["authorizedIdentifier"]["value"] == lower.upper()
    assert eu_query["authorizedFingerprintIdentifier"] == lower.upper()


def test_a_nip_check_digit_is_not_required_in_permissions(ksef: KSeF) -> None:
    # F5: the spec's Nip is a pattern alone; the guide names NIP check digits only for invoices on
    # production (api-changelog.md) and tells testers to use random NIPs (srodowiska.md). Only the form is
    # checked: 5265877636 (its check digit would be 5) is granted, 526587763 (9 digits) is refused.
    wrong_digit, internal = "5265877636", "5265877636-0001"
    internal += internal_id_check_digit(internal)  # the InternalId's own digit stays KSeF's rule
    ref = ksef.permissions.grant_person(**{**BASE["grant_person"], "subject_identifier": ("Nip", wrong_digit)})
    assert ksef.permissions.wait(ref).status.code == 200
    assert {p.authorized_identifier.value for p in ksef.permissions.persons()} == {wrong_digit}
    assert list(ksef.permissions.subunits(subunit_identifier=("InternalId", internal))) == []
    check_identifier("NipVatUe", f"{wrong_digit}-{VAT_UE}", "context")  # no ValueError
    with pytest.raises(ValueError, match=r"subjectIdentifier.value: 9 characters"):
        ksef.permissions.grant_person(**{**BASE["grant_person"], "subject_identifier": ("Nip", "526587763")})


@pytest.mark.parametrize("country", ["EL", "UK", "XX", "XK"])
def test_an_id_document_country_is_an_iso_code(ksef: KSeF, country: str) -> None:
    # F7: IdDocument.country: "Musi być zgodny z ISO 3166-1 alpha-2 (np. PL, DE, US) oraz zawierać dokładnie 2
    # wielkie litery." Two capital letters were enough: EL (Greece's EU VAT prefix; ISO: GR), UK (GB) were sent.
    document = {**DOCUMENT, "country": country}
    details = {**FOREIGNER, "personByFpNoId": {**FOREIGNER["personByFpNoId"], "idDocument": document}}
    sent = ksef.send_state.requests_sent
    with pytest.raises(ValueError, match=rf"idDocument.country: '{country}' is not an ISO 3166-1 alpha-2"):
        ksef.permissions.grant_eu_entity_administrator(**{**BASE["grant_eu_entity_administrator"],
                                                          "subject_details": details})  # fmt: skip
    assert ksef.send_state.requests_sent == sent


def test_the_iso_country_codes_are_the_ministrys_dictionary_without_its_non_iso_codes() -> None:
    # _countries: TKodKraju (FA(3), KodyKrajow_v10-0E.xsd) less AN (withdrawn from ISO 3166-1), XC, XI, XK, XL.
    xsd = (Path(ksef_client.__file__).parent / "_data/fa3/bazowe/KodyKrajow_v10-0E.xsd").read_text(encoding="utf-8")
    dictionary = set(re.findall(r'enumeration value="([A-Z]{2})"', xsd))
    assert dictionary - {"AN", "XC", "XI", "XK", "XL"} == ISO_3166_ALPHA2
    assert len(ISO_3166_ALPHA2) == 249 and {"PL", "DE", "US", "GR", "GB"} <= ISO_3166_ALPHA2


UNUSUAL_PAIRS = [
    _with("grant_person", subject_identifier=("Fingerprint", FINGERPRINT)),  # PersonByIdentifier
    _with("grant_indirect", subject_details=FOREIGNER, target_identifier=("AllPartners", None)),  # Pesel
    _with("grant_person", subject_identifier=("Nip", PARTNER), subject_details={
        "subjectDetailsType": "PersonByFingerprintWithIdentifier",
        "personByFpWithId": {"firstName": "Jan", "lastName": "Nowak", "identifier": {"type": "Pesel", "value": PESEL}},
    }),
]  # fmt: skip


@pytest.mark.parametrize(("grant", "arguments"), UNUSUAL_PAIRS)
def test_a_details_type_that_does_not_fit_the_subject_is_sent_with_a_warning(
    ksef: KSeF, caplog: pytest.LogCaptureFixture, grant: str, arguments: dict[str, Any]
) -> None:
    # F8: the pairing rule is read from the types' descriptions ("certyfikatem zawierającym identyfikator NIP
    # lub PESEL" / "niezawierającym"); neither the spec nor the guide says KSeF refuses another pairing and
    # the Ministry's clients do not check it: a warning, not a ValueError that only ksef.raw could get past.
    with caplog.at_level("WARNING", logger="ksef_client"):
        ref = getattr(ksef.permissions, grant)(**arguments)
    assert ksef.permissions.wait(ref).status.code == 200
    assert any("is unusual for a subject named by" in r.getMessage() for r in caplog.records)


def _peppol_grants(ksef: KSeF, count: int) -> list[str]:
    for index in range(count):
        ksef.permissions.wait(
            ksef.permissions.grant_authorization(
                subject_identifier=("PeppolId", f"PPL{index:06d}"), permission="PefInvoicing",
                description=f"Peppol {index}", subject_details="Dostawca Peppol",
            )
        )  # fmt: skip
    return [g.id for g in ksef.permissions.authorizations()]


@pytest.mark.parametrize("resume_size", [None, 10, 20, 50])
def test_a_saved_cursor_resumes_at_the_same_item_with_any_page_size(ksef: KSeF, resume_size: int | None) -> None:
    # F3: the cursor was the page number: saved after a page of 10 (cursor 1) and resumed with the default
    # page size (100), it read page 1 of 100, i.e. nothing, and lost 15 permissions without an error. The
    # spec's pageOffset is "Numer strony wyników": only meaningful with its pageSize. The cursor now counts
    # the items read, whatever page size either walk uses.
    everything = _peppol_grants(ksef, 25)
    first = ksef.permissions.authorizations(page_size=10)
    page = next(first.pages())
    assert first.cursor == 10
    rest = [g.id for g in ksef.permissions.authorizations(page_size=resume_size, cursor=first.cursor)]
    assert [g.id for g in page.items] + rest == everything


@pytest.mark.anyio
async def test_async_a_saved_cursor_resumes_with_another_page_size(aksef: AsyncKSeF, ksef: KSeF) -> None:
    everything = _peppol_grants(ksef, 12)
    rest = [g.id async for g in aksef.permissions.authorizations(cursor=10)]
    assert rest == everything[10:]


@pytest.mark.parametrize("cursor", ["1", -1, 1.0, True])
def test_a_cursor_is_checked_before_any_request(ksef: KSeF, cursor: Any) -> None:
    # F10: -1 was sent (KSeF refuses it: pageOffset "minimum": 0); "1" (a cursor read back from text)
    # fetched a page, then died on a bare TypeError; 1.0 was sent as pageOffset=1.0 (an int32).
    sent = ksef.send_state.requests_sent
    for listing in (
        lambda: ksef.permissions.persons(cursor=cursor),
        lambda: ksef.permissions.entity_roles(cursor=cursor),
        lambda: ksef.paginate(query_authorization_permissions, "authorization_grants", cursor=cursor,
                              body=EntityAuthorizationPermissionsQueryRequest.from_dict({"queryType": "Granted"})),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=r"cursor: .* is not a cursor of this listing"):
            listing()
    assert ksef.send_state.requests_sent == sent


@pytest.mark.anyio
async def test_async_a_cursor_is_checked_before_any_request(aksef: AsyncKSeF) -> None:
    with pytest.raises(ValueError, match=r"cursor: '1' is not a cursor"):
        aksef.permissions.authorizations(cursor="1")  # type: ignore[arg-type]
    assert aksef.send_state.requests_sent == 0


GRANT_OPERATIONS = {
    "grant_person": "grant_person_permissions", "grant_entity": "grant_entity_permissions",
    "grant_authorization": "grant_authorization_permissions", "grant_indirect": "grant_indirect_permissions",
    "grant_subunit": "grant_subunit_permissions",
    "grant_eu_entity_administrator": "grant_eu_entity_administration_permissions",
    "grant_eu_entity": "grant_eu_entity_permissions",
}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_a_grant_whose_answer_was_lost_says_it_may_be_in_effect(
    kind: Kind, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # F1: KSeF took the grant, the connection broke before its answer: a bare APIConnectionError said nothing
    # of a permission that was in fact granted (uprawnienia.md: "Nie można nadać tego samego uprawnienia
    # dwukrotnie - API może zwrócić błąd lub zignorować duplikat": a blind retry is no answer).
    if kind.delegation:
        _delegate(ksef_server, backend, fake_time)
    with _client(ksef_server, backend, fake_time, kind.context) as ksef:
        backend.faults.add(DROP_AFTER, operation=f"permissions.{GRANT_OPERATIONS[kind.grant]}")
        with pytest.raises(APIConnectionError) as caught:
            getattr(ksef.permissions, kind.grant)(**kind.arguments)
        assert caught.value.maybe_sent is True
        (note,) = caught.value.__notes__
        assert f"{kind.grant}: the request may have reached KSeF" in note and "Do not grant it again blindly" in note
        assert f"ksef.permissions.{kind.query}(" in note
        # the listing the note names shows the grant
        assert [item for item in getattr(ksef.permissions, kind.query)(**kind.query_arguments) if kind.listed(item)]


def test_a_grant_refused_or_never_sent_has_no_note(ksef: KSeF, backend: KSeFBackend) -> None:
    # A 4xx is a refusal, and a connection never made sent nothing: KSeF cannot hold the grant.
    backend.faults.add(400, operation="permissions.grant_person_permissions")
    with pytest.raises(BadRequestError) as refused:
        ksef.permissions.grant_person(**BASE["grant_person"])
    assert refused.value.maybe_sent is False and not getattr(refused.value, "__notes__", [])
    backend.faults.add(503, operation="permissions.grant_person_permissions")
    with pytest.raises(APIStatusError) as failed:
        ksef.permissions.grant_person(**BASE["grant_person"])
    assert failed.value.maybe_sent is True  # a 5xx may come after KSeF took it
    assert list(ksef.permissions.persons()) == []  # (the emulator's fault answered instead of handling it)


@pytest.mark.anyio
async def test_async_a_grant_whose_answer_was_lost_says_so(aksef: AsyncKSeF, backend: KSeFBackend) -> None:
    backend.faults.add(DROP_AFTER, operation="permissions.grant_person_permissions")
    with pytest.raises(APIConnectionError) as caught:
        await aksef.permissions.grant_person(**BASE["grant_person"])
    assert caught.value.maybe_sent is True and "may have reached KSeF" in caught.value.__notes__[0]


def test_a_revoke_repeated_and_taken_returns_a_reference_that_remembers_it(
    ksef: KSeF, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    # F2: the first DELETE is carried out, its answer lost, its operation still running; the repeat finds the
    # permission still there and is taken (202). revoke() returned the second reference with no sign of it.
    ksef.permissions.wait(ksef.permissions.grant_person(**{**BASE["grant_person"], "permissions": ["InvoiceRead"]}))
    (granted,) = ksef.permissions.persons()
    backend.transitions.permission_reads = READS
    backend.faults.add(DROP_AFTER, operation="permissions.revoke_common_permission")
    with caplog.at_level("WARNING", logger="ksef_client"):
        ref = ksef.permissions.revoke(granted.id)
    assert isinstance(ref, RevokeReference) and isinstance(ref, str)
    assert (ref.uncertain_attempts, ref.permission_id) == (1, granted.id)
    assert any("repeated after 1 attempt(s) whose answer was lost" in r.getMessage() for r in caplog.records)
    assert ksef.permissions.wait(ref).status.code == 200  # the emulator's choice: the repeat's operation succeeds
    assert list(ksef.permissions.persons()) == []


REF1, REF2 = "20250101-OP-1111111111-1111111111-11", "20250101-OP-2222222222-2222222222-22"


def _repeat_taken_then_failed(deletes: list[str]) -> httpx.MockTransport:
    # KSeF's answer to a repeated revoke is not documented, and the emulator ends the repeat's operation as a
    # success: a scripted KSeF plays the other likely outcome. Attempt 1 is carried out, its answer lost; the
    # repeat is taken (202, REF2); REF2's operation fails, the permission being gone already.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            deletes.append(request.url.path)
            if len(deletes) == 1:
                raise httpx.RemoteProtocolError("peer closed connection", request=request)
            return httpx.Response(202, json={"referenceNumber": REF2})
        assert request.url.path.endswith(REF2)
        status = {"code": 400, "description": "Operacja zakończona niepowodzeniem",
                  "details": [f"Uprawnienie {GUID} nie istnieje."]}  # fmt: skip
        return httpx.Response(200, json={"status": status})

    return httpx.MockTransport(handler)


def test_a_failed_operation_of_a_repeated_revoke_says_the_first_attempt_may_have_done_it() -> None:
    deletes: list[str] = []
    transport = _repeat_taken_then_failed(deletes)
    with KSeF(base_url="https://ksef.example/v2", access_token="t", transport=transport, sleep=lambda s: None) as ksef:
        ref = ksef.permissions.revoke(GUID)
        assert ref == REF2 and len(deletes) == 2 and getattr(ref, "uncertain_attempts", 0) == 1
        with pytest.raises(PermissionOperationFailedError) as caught:
            ksef.permissions.wait(ref)
    assert caught.value.uncertain_attempts == 1
    (note,) = caught.value.__notes__
    assert f"belongs to a revoke of {GUID} that the client repeated" in note and "is still listed" in note


@pytest.mark.anyio
async def test_async_a_failed_operation_of_a_repeated_revoke_says_so() -> None:
    transport = _repeat_taken_then_failed([])
    async with AsyncKSeF(base_url="https://ksef.example/v2", access_token="t", transport=transport,
                         sleep=_no_sleep) as ksef:  # fmt: skip
        with pytest.raises(PermissionOperationFailedError) as caught:
            await ksef.permissions.wait(await ksef.permissions.revoke(GUID))
    assert caught.value.uncertain_attempts == 1 and "may have revoked the permission" in caught.value.__notes__[0]


async def _no_sleep(seconds: float) -> None:
    return None


def test_a_failed_operation_of_a_plain_reference_has_no_note(ksef: KSeF) -> None:
    ref = ksef.permissions.grant_person(**{**BASE["grant_person"], "permissions": ["EnforcementOperations"]})
    with pytest.raises(PermissionOperationFailedError) as caught:
        ksef.permissions.wait(ref)
    assert caught.value.uncertain_attempts == 0 and not getattr(caught.value, "__notes__", [])
