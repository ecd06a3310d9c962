"""Permissions, limits and Peppol in the emulator, driven through the generated client."""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.x509.oid import NameOID

from ksef_client import KSeF
from ksef_client._core import parsed
from ksef_client._generated.api.limits import get_context_limits, get_rate_limits
from ksef_client._generated.api.peppol import query_peppol_providers
from ksef_client._generated.api.permissions import (
    get_operation_status,
    grant_authorization_permissions,
    grant_person_permissions,
    query_authorization_permissions,
    query_person_permissions,
    query_personal_permissions,
    revoke_common_permission,
)
from ksef_client._generated.models import (
    EffectiveApiRateLimits,
    EffectiveContextLimits,
    EntityAuthorizationPermissionsGrantRequest,
    EntityAuthorizationPermissionsQueryRequest,
    OwnerPermissionScope,
    PermissionsOperationResponse,
    PermissionsOperationStatusResponse,
    PersonalPermissionsQueryRequest,
    PersonPermissionsGrantRequest,
    PersonPermissionsQueryRequest,
    QueryEntityAuthorizationPermissionsResponse,
    QueryPeppolProvidersResponse,
    QueryPersonalPermissionsResponse,
    QueryPersonPermissionsResponse,
)
from ksef_client.errors import AuthenticationFailedError, BadRequestError, PermissionDeniedError
from ksef_client.identifiers import internal_id_check_digit
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import SigningCredentials
from tests.conftest import NIP
from tests.helpers import certificate_with


def _grant_body(nip: str, permissions: list[str]) -> PersonPermissionsGrantRequest:
    return PersonPermissionsGrantRequest.from_dict(
        {"subjectIdentifier": {"type": "Nip", "value": nip}, "permissions": permissions,
         "description": "accountant", "subjectDetails": {"subjectDetailsType": "PersonByIdentifier",
                                                         "personById": {"firstName": "Jan", "lastName": "Nowak"}}}
    )  # fmt: skip


def _grant(ksef: KSeF, nip: str, permissions: list[str]) -> str:
    response = grant_person_permissions.sync_detailed(client=ksef.raw, body=_grant_body(nip, permissions))
    return parsed(response, PermissionsOperationResponse).reference_number


def test_person_grant_is_listed_opens_a_login_and_can_be_revoked(ksef: KSeF, backend: KSeFBackend,
                                                                 ksef_server: ThreadedServer) -> None:  # fmt: skip
    accountant = self_signed_certificate()
    ref = _grant(ksef, accountant.nip, ["InvoiceRead", "InvoiceWrite"])
    status = parsed(get_operation_status.sync_detailed(ref, client=ksef.raw), PermissionsOperationStatusResponse)
    assert status.status.code == 200
    query = PersonPermissionsQueryRequest.from_dict({"queryType": "PermissionsGrantedInCurrentContext"})
    page = parsed(query_person_permissions.sync_detailed(client=ksef.raw, body=query), QueryPersonPermissionsResponse)
    assert sorted(str(p.permission_scope) for p in page.permissions) == ["InvoiceRead", "InvoiceWrite"]
    assert {p.authorized_identifier.value for p in page.permissions} == {accountant.nip}

    with KSeF(base_url=ksef_server.base_url) as representative:
        representative.auth.login_with_certificate(accountant, context_nip=NIP)
        with representative.online_session():  # InvoiceWrite granted
            pass
        mine = parsed(
            query_personal_permissions.sync_detailed(client=representative.raw, body=PersonalPermissionsQueryRequest()),
            QueryPersonalPermissionsResponse,
        )
        assert len(mine.permissions) == 2
        assert not mine.owner_permissions  # a representative, not the owner of the context

    for permission in page.permissions:
        revoke_common_permission.sync_detailed(permission.id, client=ksef.raw)
    with KSeF(base_url=ksef_server.base_url) as representative, pytest.raises(Exception, match="415"):
        representative.auth.login_with_certificate(accountant, context_nip=NIP)


def test_authorization_grants_and_offset_pages(ksef: KSeF, backend: KSeFBackend) -> None:
    for index in range(12):  # twelve sellers' agents: the same grant twice would be one (a duplicate)
        body = EntityAuthorizationPermissionsGrantRequest.from_dict(
            {"subjectIdentifier": {"type": "Nip", "value": f"11111111{index:02}"}, "permission": "SelfInvoicing",
             "description": f"self-invoicing {index}",
             "subjectDetails": {"fullName": "Firma"}}
        )  # fmt: skip
        grant_authorization_permissions.sync_detailed(client=ksef.raw, body=body)
    query = EntityAuthorizationPermissionsQueryRequest.from_dict({"queryType": "Granted"})
    grants = list(ksef.paginate(query_authorization_permissions, "authorization_grants", page_size=10, body=query))
    assert len(grants) == 12 and {str(g.authorization_scope) for g in grants} == {"SelfInvoicing"}
    response = query_authorization_permissions.sync_detailed(client=ksef.raw, body=query, page_size=10)
    assert parsed(response, QueryEntityAuthorizationPermissionsResponse).has_more is True


def test_bad_grant_bodies_are_21405(ksef: KSeF, backend: KSeFBackend) -> None:
    with pytest.raises(BadRequestError) as caught:
        ksef._http.post("/permissions/persons/grants", json={"permissions": ["InvoiceRead"]})
    assert caught.value.codes == [21405]


def test_grants_need_credentials_manage(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    token = backend.mint_access_token(NIP, permissions=["InvoiceRead"])
    with KSeF(base_url=ksef_server.base_url, access_token=token) as ksef, pytest.raises(PermissionDeniedError):
        _grant(ksef, "1111111111", ["InvoiceRead"])


def test_limits_and_peppol(ksef: KSeF, backend: KSeFBackend) -> None:
    limits = parsed(get_context_limits.sync_detailed(client=ksef.raw), EffectiveContextLimits)
    assert limits.online_session.max_invoices == 10_000
    rates = parsed(get_rate_limits.sync_detailed(client=ksef.raw), EffectiveApiRateLimits)
    assert (rates.invoice_metadata.per_second, rates.invoice_metadata.per_hour) == (-1, -1)  # throttling off
    backend.testdata.state.peppol_providers.append(
        {"id": "PPL000001", "name": "Provider", "dateCreated": "2026-01-01T00:00:00Z"}
    )
    providers: Any = parsed(query_peppol_providers.sync_detailed(client=ksef.raw), QueryPeppolProvidersResponse)
    assert [p.id for p in providers.peppol_providers] == ["PPL000001"]


def test_the_owner_of_the_context_is_told_its_owner_permissions(ksef: KSeF) -> None:
    body = PersonalPermissionsQueryRequest()
    mine = parsed(
        query_personal_permissions.sync_detailed(client=ksef.raw, body=body), QueryPersonalPermissionsResponse
    )
    owner = {str(scope) for scope in mine.owner_permissions or []}
    assert {"InvoiceWrite", "InvoiceRead", "CredentialsManage", "CollectiveIdentifierManage"} <= owner


# --- grants, revokes and the logins they open (raw HTTP: the spec's view) ------------------------

PERSON_DETAILS = {"subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "Jan", "lastName": "Nowak"}}
CLIENT, PARTNER = "7762811692", "4972530874"
PESEL = "30112206276"  # dane-testowe-scenariusze.md's example


def _bearer(backend: KSeFBackend, nip: str, **options: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.mint_access_token(nip, **options)}"}


def _grant_person_raw(client: httpx.Client, headers: dict[str, str], subject: tuple[str, str],
                      scopes: list[str]) -> str:  # fmt: skip
    body = {"subjectIdentifier": {"type": subject[0], "value": subject[1]}, "permissions": scopes,
            "description": "pracownik", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    answer = client.post("/permissions/persons/grants", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["referenceNumber"])


def _operation(client: httpx.Client, headers: dict[str, str], reference: str) -> int:
    answer = client.get(f"/permissions/operations/{reference}", headers=headers)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["status"]["code"])


def _persons(client: httpx.Client, headers: dict[str, str], **filters: Any) -> list[dict[str, Any]]:
    body = {"queryType": "PermissionsInCurrentContext", **filters}
    answer = client.post("/permissions/query/persons/grants", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["permissions"])


def _login(ksef_mock: KSeFMock, credentials: SigningCredentials, nip: str) -> set[str] | int:
    """The permissions a XAdES login to ``nip`` gets, or its failure status code."""
    with KSeF(base_url=ksef_mock.base_url) as client:
        try:
            tokens = client.auth.login_with_certificate(credentials, context_nip=nip)
        except AuthenticationFailedError as failed:
            return int(failed.code or 0)
    return set(ksef_mock.backend.authenticate(f"Bearer {tokens.access_token}").permissions)


def _pesel_certificate(pesel: str) -> SigningCredentials:
    """A self-signed certificate of a person named by PESEL (``serialNumber PNOPL-<pesel>``)."""
    credentials: SigningCredentials = certificate_with(
        (NameOID.COMMON_NAME, "Jan Kowalski"), (NameOID.GIVEN_NAME, "Jan"), (NameOID.SURNAME, "Kowalski"),
        (NameOID.SERIAL_NUMBER, f"PNOPL-{pesel}"), (NameOID.COUNTRY_NAME, "PL"),
    )  # fmt: skip
    return credentials


@pytest.fixture
def http(ksef_mock: KSeFMock) -> Iterator[httpx.Client]:
    """An httpx client of the emulator without a token (each call brings its own)."""
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        yield client


def test_revoking_one_permission_leaves_the_others(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # uprawnienia.md: "permissionId | Techniczny identyfikator nadanego uprawnienia - wymagany m.in. przy
    # operacjach odbierania"; DELETE /permissions/common/grants/{permissionId}: "odebranie uprawnienia o
    # wskazanym identyfikatorze". uwierzytelnianie.md: a refresh gives "nowy accessToken (JWT) z aktualnym
    # zestawem uprawnień i ról"; "Tokeny są automatycznie unieważniane w przypadku utraty uprawnień".
    backend, owner = ksef_mock.backend, _bearer(ksef_mock.backend, NIP)
    accountant = self_signed_certificate(kind="person", key_type="ec")
    _grant_person_raw(http, owner, ("Nip", accountant.nip), ["InvoiceRead", "InvoiceWrite"])
    with KSeF(base_url=ksef_mock.base_url) as person:
        tokens = person.auth.login_with_certificate(accountant, context_nip=NIP)
    refresh = {"Authorization": f"Bearer {tokens.refresh_token}"}

    read = next(p for p in _persons(http, owner) if p["permissionScope"] == "InvoiceRead")
    assert http.delete(f"/permissions/common/grants/{read['id']}", headers=owner).status_code == 202
    assert _login(ksef_mock, accountant, NIP) == {"InvoiceWrite"}
    refreshed = http.post("/auth/token/refresh", headers=refresh).json()["accessToken"]["token"]
    assert backend.authenticate(f"Bearer {refreshed}").permissions == frozenset({"InvoiceWrite"})

    (write,) = _persons(http, owner)
    assert http.delete(f"/permissions/common/grants/{write['id']}", headers=owner).status_code == 202
    assert _login(ksef_mock, accountant, NIP) == 415
    refused = http.post("/auth/token/refresh", headers=refresh)
    assert refused.status_code == 400 and "21301" in refused.text


def test_granting_a_permission_twice_keeps_one(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # uprawnienia.md: "Nie można nadać tego samego uprawnienia dwukrotnie - API może zwrócić błąd lub
    # zignorować duplikat" (the emulator ignores it).
    owner = _bearer(ksef_mock.backend, NIP)
    first = _grant_person_raw(http, owner, ("Pesel", PESEL), ["InvoiceRead"])
    second = _grant_person_raw(http, owner, ("Pesel", PESEL), ["InvoiceRead", "InvoiceWrite"])
    assert (_operation(http, owner, first), _operation(http, owner, second)) == (200, 200)
    assert sorted(p["permissionScope"] for p in _persons(http, owner)) == ["InvoiceRead", "InvoiceWrite"]


def _indirect(target: str | None) -> dict[str, Any]:
    body = {"subjectIdentifier": {"type": "Pesel", "value": PESEL}, "permissions": ["InvoiceRead"],
            "description": "obsługa klienta", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    if target is not None:
        body["targetIdentifier"] = {"type": "Nip", "value": target}
    return body


def _subunit(kind: str, value: str) -> dict[str, Any]:
    return {"subjectIdentifier": {"type": "Pesel", "value": PESEL}, "contextIdentifier": {"type": kind, "value": value},
            "description": "admin jednostki", "subunitName": "Oddział", "subjectDetails": PERSON_DETAILS}  # fmt: skip


def _outcome(http: httpx.Client, headers: dict[str, str], path: str, body: dict[str, Any]) -> int:
    answer = http.post(path, json=body, headers=headers)
    assert answer.status_code == 202, answer.text  # KSeF processes grants asynchronously
    return _operation(http, headers, answer.json()["referenceNumber"])


def test_grants_the_spec_forbids_end_with_a_failed_operation(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    backend, company = ksef_mock.backend, _bearer(ksef_mock.backend, NIP)
    enforcement = {"subjectIdentifier": {"type": "Pesel", "value": PESEL}, "permissions": ["EnforcementOperations"],
                   "description": "egzekucja", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    # POST /permissions/persons/grants: "Uprawnienie EnforcementOperations może być nadane wyłącznie wtedy,
    # gdy podmiot kontekstu ma rolę EnforcementAuthority (organ egzekucyjny) lub CourtBailiff".
    assert _outcome(http, company, "/permissions/persons/grants", enforcement) == 430
    assert _persons(http, company) == []  # a failed grant grants nothing
    http.post("/testdata/subject", json={"subjectNip": CLIENT, "subjectType": "EnforcementAuthority",
                                          "description": "Urząd skarbowy"})  # fmt: skip
    assert _outcome(http, _bearer(backend, CLIENT), "/permissions/persons/grants", enforcement) == 200

    # POST /permissions/indirect/grants: "Uprawnienie selektywne może być nadane wyłącznie wtedy, gdy klient
    # nadał wcześniej podmiotowi bieżącego kontekstu dowolne uprawnienie z prawem do jego dalszego przekazywania".
    assert _outcome(http, company, "/permissions/indirect/grants", _indirect(PARTNER)) == 440
    assert _outcome(http, company, "/permissions/indirect/grants", _indirect(None)) == 200  # general: any client
    delegated = {
        "subjectIdentifier": {"type": "Nip", "value": NIP},
        "description": "biuro rachunkowe",
        "permissions": [{"type": "InvoiceRead", "canDelegate": True}],
        "subjectDetails": {"fullName": "Biuro"},
    }
    assert _outcome(http, _bearer(backend, PARTNER), "/permissions/entities/grants", delegated) == 200
    assert _outcome(http, company, "/permissions/indirect/grants", _indirect(PARTNER)) == 200

    # POST /permissions/subunits/grants: a subunit's NIP "wyłącznie jeżeli podmiot bieżącego kontekstu
    # logowania ma rolę podmiotu nadrzędnego: LocalGovernmentUnit, VatGroupUnit"; an internal identifier
    # is "numeru NIP podmiotu kontekstu logowania oraz 5 cyfr".
    assert _outcome(http, company, "/permissions/subunits/grants", _subunit("Nip", PARTNER)) == 430
    # (The last digit of each is its check digit, see test_a_subunit_internal_id_needs_its_check_digit_and_name.)
    assert _outcome(http, company, "/permissions/subunits/grants", _subunit("InternalId", f"{CLIENT}-00005")) == 410
    assert _outcome(http, company, "/permissions/subunits/grants", _subunit("InternalId", f"{NIP}-00004")) == 200
    group = {"subjectNip": "3755747347", "subjectType": "VatGroup", "description": "Grupa VAT",
             "subunits": [{"subjectNip": PARTNER, "description": "członek grupy VAT"}]}  # fmt: skip
    assert http.post("/testdata/subject", json=group).status_code == 200
    vat_group = _bearer(backend, "3755747347")
    assert _outcome(http, vat_group, "/permissions/subunits/grants", _subunit("Nip", PARTNER)) == 200
    assert _outcome(http, vat_group, "/permissions/subunits/grants", _subunit("Nip", CLIENT)) == 410


def test_each_revoke_endpoint_takes_its_own_kind_of_grant(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # uprawnienia.md: for SelfInvoicing, RRInvoicing, TaxRepresentative "obowiązuje osobna metoda odbierania -
    # z użyciem endpointu dedykowanego do operacji autoryzacyjnych"; DELETE /permissions/common/grants takes
    # those "nadanych osobom fizycznym do pracy w KSeF, nadanych podmiotom do obsługi faktur, ...". The
    # wrong one's answer is not documented: its operation fails with 450 ("Operacja niedozwolona dla
    # wskazanego identyfikatora lub jego typu").
    owner = _bearer(ksef_mock.backend, NIP)
    authorization = {"subjectIdentifier": {"type": "Nip", "value": CLIENT}, "permission": "SelfInvoicing",
                     "description": "samofakturowanie", "subjectDetails": {"fullName": "Firma B"}}  # fmt: skip
    assert http.post("/permissions/authorizations/grants", json=authorization, headers=owner).status_code == 202
    _grant_person_raw(http, owner, ("Pesel", PESEL), ["InvoiceRead"])
    query = {"queryType": "Granted"}
    (self_invoicing,) = http.post("/permissions/query/authorizations/grants", json=query, headers=owner).json()[
        "authorizationGrants"
    ]
    (reader,) = _persons(http, owner)

    wrong = [
        http.delete(f"/permissions/common/grants/{self_invoicing['id']}", headers=owner),
        http.delete(f"/permissions/authorizations/grants/{reader['id']}", headers=owner),
    ]
    assert [_operation(http, owner, a.json()["referenceNumber"]) for a in wrong] == [450, 450]
    assert len(_persons(http, owner)) == 1
    right = [
        http.delete(f"/permissions/authorizations/grants/{self_invoicing['id']}", headers=owner),
        http.delete(f"/permissions/common/grants/{reader['id']}", headers=owner),
    ]
    assert [_operation(http, owner, a.json()["referenceNumber"]) for a in right] == [200, 200]
    assert _persons(http, owner) == []
    assert (
        http.post("/permissions/query/authorizations/grants", json=query, headers=owner).json()["authorizationGrants"]
        == []
    )


# --- /testdata ----------------------------------------------------------------------------------


def _owner_scopes(*, enforcement: bool) -> set[str]:
    scopes = {str(scope) for scope in OwnerPermissionScope}
    return scopes if enforcement else scopes - {"EnforcementOperations"}


@pytest.mark.parametrize("bailiff", [False, True], ids=["JDG", "bailiff"])
def test_a_test_person_logs_in_as_owner_with_pesel_or_nip(ksef_mock: KSeFMock, http: httpx.Client,
                                                          bailiff: bool) -> None:  # fmt: skip
    # dane-testowe-scenariusze.md, Scenariusz nr 1 (Komornik): "osoba logująca się w kontekście podanego
    # NIP-u, za pomocą numeru PESEL lub NIP-u, otrzyma uprawnienia właścicielskie (Owner) oraz egzekucyjne
    # (EnforcementOperations)"; nr 2 (JDG): "otrzyma uprawnienie właścicielskie (Owner)".
    person = self_signed_certificate(kind="person", key_type="ec")
    body = {
        "nip": person.nip,
        "pesel": PESEL,
        "description": "Komornik" if bailiff else "JDG Jan Nowak",
        "isBailiff": bailiff,
    }
    assert http.post("/testdata/person", json=body).status_code == 200
    by_pesel = _pesel_certificate(PESEL)
    assert _login(ksef_mock, by_pesel, person.nip) == _owner_scopes(enforcement=bailiff)
    assert _login(ksef_mock, person, person.nip) == _owner_scopes(enforcement=bailiff)
    assert _login(ksef_mock, by_pesel, NIP) == 415  # the owner of the person's own NIP only

    with KSeF(base_url=ksef_mock.base_url) as client:
        client.auth.login_with_certificate(by_pesel, context_nip=person.nip)
        mine = parsed(
            query_personal_permissions.sync_detailed(client=client.raw, body=PersonalPermissionsQueryRequest()),
            QueryPersonalPermissionsResponse,
        )
    assert {str(scope) for scope in mine.owner_permissions or []} == _owner_scopes(enforcement=bailiff)

    # POST /testdata/person/remove: "System automatycznie odbierze jej wszystkie uprawnienia."
    _grant_person_raw(http, _bearer(ksef_mock.backend, NIP), ("Pesel", PESEL), ["InvoiceRead"])
    assert http.post("/testdata/person/remove", json={"nip": person.nip}).status_code == 200
    assert _login(ksef_mock, by_pesel, person.nip) == 415
    assert _login(ksef_mock, by_pesel, NIP) == 415


def test_an_ordinary_owner_has_no_enforcement_operations(ksef_mock: KSeFMock) -> None:
    # The spec gives EnforcementOperations to a context "gdy podmiot kontekstu ma rolę EnforcementAuthority
    # (organ egzekucyjny) lub CourtBailiff (komornik sądowy)", and a JDG gets "Owner" alone.
    assert _login(ksef_mock, self_signed_certificate(NIP, kind="seal", key_type="ec"), NIP) == _owner_scopes(
        enforcement=False
    )


def test_test_subjects_have_roles_and_are_registered_once(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    backend = ksef_mock.backend
    group = {"subjectNip": "3755747347", "subjectType": "VatGroup", "description": "Grupa VAT",
             "subunits": [{"subjectNip": PARTNER, "description": "członek grupy VAT"},
                          {"subjectNip": "8225900795", "description": "drugi członek grupy VAT"}]}  # fmt: skip
    assert http.post("/testdata/subject", json=group).status_code == 200
    # POST /testdata/subject, 400: "30001 | Podmiot lub uprawnienie już istnieje."
    again = http.post("/testdata/subject", json=group)
    assert again.status_code == 400 and "30001" in again.text
    # SubjectCreateRequest.createdDate: "W przypadku wielokrotnego tworzenia danych testowych z tym samym
    # identyfikatorem nie można podawać daty wcześniejszej ani takiej samej jak poprzednia".
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert http.post("/testdata/subject", json={**group, "createdDate": later}).status_code == 200
    assert http.post("/testdata/subject", json={**group, "createdDate": later}).status_code == 400
    person = {"nip": CLIENT, "pesel": PESEL, "description": "JDG Jan Nowak", "isBailiff": False}
    assert http.post("/testdata/person", json=person).status_code == 200
    assert http.post("/testdata/person", json=person).status_code == 400

    # GET /permissions/query/entities/roles: "odczytanie listy ról podmiotu bieżącego kontekstu logowania"
    # (VatGroupUnit - grupa VAT, VatGroupSubUnit - członek grupy VAT).
    roles = http.get("/permissions/query/entities/roles", headers=_bearer(backend, "3755747347")).json()["roles"]
    assert [r["role"] for r in roles] == ["VatGroupUnit"]
    (member,) = http.get("/permissions/query/entities/roles", headers=_bearer(backend, PARTNER)).json()["roles"]
    assert (member["role"], member["parentEntityIdentifier"]["value"]) == ("VatGroupSubUnit", "3755747347")
    assert http.get("/permissions/query/entities/roles", headers=_bearer(backend, NIP)).json()["roles"] == []
    # POST /permissions/query/subordinate-entities/roles: "odczytywane są podmioty będące członkami grupy VAT";
    # filtered by subordinateEntityIdentifier.
    path, headers = "/permissions/query/subordinate-entities/roles", _bearer(backend, "3755747347")
    members = http.post(path, json={}, headers=headers).json()["roles"]
    assert sorted((m["subordinateEntityIdentifier"]["value"], m["role"]) for m in members) == [
        ("4972530874", "VatGroupSubUnit"), ("8225900795", "VatGroupSubUnit"),
    ]  # fmt: skip
    only = {"subordinateEntityIdentifier": {"type": "Nip", "value": PARTNER}}
    assert [m["description"] for m in http.post(path, json=only, headers=headers).json()["roles"]] == [
        "członek grupy VAT"
    ]


def test_test_data_permissions_are_grants_by_the_system(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # dane-testowe-scenariusze.md, Scenariusz nr 3: /testdata/permissions gives a person permissions in a
    # context, like any other grant ("w standardowy sposób"); PersonPermissionsAuthorIdentifier: "System |
    # Identyfikator systemowy KSeF".
    representative = self_signed_certificate(kind="person", key_type="ec")
    body = {"contextIdentifier": {"type": "Nip", "value": NIP},
            "authorizedIdentifier": {"type": "Nip", "value": representative.nip},
            "permissions": [{"permissionType": "InvoiceRead", "description": "praca w kontekście"},
                            {"permissionType": "CredentialsManage", "description": "praca w kontekście"}]}  # fmt: skip
    assert http.post("/testdata/permissions", json=body).status_code == 200
    owner = _bearer(ksef_mock.backend, NIP)
    listed = _persons(http, owner)
    assert {(p["permissionScope"], p["authorIdentifier"]["type"]) for p in listed} == {
        ("InvoiceRead", "System"), ("CredentialsManage", "System"),
    }  # fmt: skip
    assert _login(ksef_mock, representative, NIP) == {"InvoiceRead", "CredentialsManage"}
    read = next(p for p in listed if p["permissionScope"] == "InvoiceRead")
    assert http.delete(f"/permissions/common/grants/{read['id']}", headers=owner).status_code == 202
    assert _login(ksef_mock, representative, NIP) == {"CredentialsManage"}
    revoke = {"contextIdentifier": body["contextIdentifier"], "authorizedIdentifier": body["authorizedIdentifier"]}
    assert http.post("/testdata/permissions/revoke", json=revoke).status_code == 200
    assert _login(ksef_mock, representative, NIP) == 415


def test_an_indirect_grant_carries_only_what_the_client_delegated(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # uprawnienia.md: "Podmiot pośredniczący | Podmiot, który otrzymał uprawnienie z flagą canDelegate = true
    # i może przekazać to uprawnienie dalej"; "Biuro rachunkowe XYZ otrzymało od firmy ABC uprawnienie
    # InvoiceRead z flagą canDelegate = true. Teraz może przekazać to uprawnienie swojemu pracownikowi".
    # PermissionState: "Inactive | Uprawnienia nieaktywne, nadane w sposób pośredni".
    backend, office = ksef_mock.backend, _bearer(ksef_mock.backend, NIP)
    employee = _pesel_certificate(PESEL)
    for client, scope in ((PARTNER, "InvoiceRead"), (CLIENT, "CollectiveIdentifierManage")):
        delegated = {
            "subjectIdentifier": {"type": "Nip", "value": NIP},
            "description": "biuro rachunkowe",
            "permissions": [{"type": scope, "canDelegate": True}],
            "subjectDetails": {"fullName": "Biuro"},
        }
        assert _outcome(http, _bearer(backend, client), "/permissions/entities/grants", delegated) == 200
    both = {**_indirect(PARTNER), "permissions": ["InvoiceRead", "InvoiceWrite"]}
    assert _outcome(http, office, "/permissions/indirect/grants", both) == 200  # "dowolne uprawnienie" delegated
    assert _login(ksef_mock, employee, PARTNER) == {"InvoiceRead"}
    states = {p["permissionScope"]: p["permissionState"] for p in _persons(http, office)}
    assert states == {"InvoiceRead": "Active", "InvoiceWrite": "Inactive"}
    # A general grant ("dla wszystkich klientów") works for each client with what that client delegated.
    general = {**_indirect(None), "permissions": ["InvoiceRead", "InvoiceWrite"]}
    assert _outcome(http, office, "/permissions/indirect/grants", general) == 200
    assert _login(ksef_mock, employee, CLIENT) == 415  # CollectiveIdentifierManage only: nothing to read or issue


def test_a_subunit_internal_id_needs_its_check_digit_and_name(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # POST /permissions/subunits/grants: "Ostatnia cyfra musi być poprawną sumą kontrolną [...] Algorytm używa
    # naprzemiennych wag (1x, 3x, 1x, 3x, ...), sumuje wyniki i zwraca resztę z dzielenia przez 10", e.g.
    # "6824515772-1234" -> 3; api-changelog.md: "Wprowadzono walidację sumy kontrolnej dla identyfikatora
    # InternalId w POST /permissions/subunits/grants". subunitName: "W przypadku jednostki podrzędnej z
    # identyfikatorem wewnętrznym pole jest wymagane." Refused as the spec's 400 / 21405 (validation).
    assert internal_id_check_digit("68245157721234") == "3"
    company = _bearer(ksef_mock.backend, NIP)
    path = "/permissions/subunits/grants"
    wrong_digit = http.post(path, json=_subunit("InternalId", f"{NIP}-12347"), headers=company)
    assert wrong_digit.status_code == 400 and "21405" in wrong_digit.text and "cyfrę kontrolną" in wrong_digit.text
    nameless = {k: v for k, v in _subunit("InternalId", f"{NIP}-12346").items() if k != "subunitName"}
    unnamed = http.post(path, json=nameless, headers=company)
    assert unnamed.status_code == 400 and "subunitName" in unnamed.text
    listed = http.post("/permissions/query/subunits/grants", json={}, headers=company).json()["permissions"]
    assert listed == []  # nothing granted
    assert _outcome(http, company, path, _subunit("InternalId", f"{NIP}-12346")) == 200
    assert _outcome(http, company, path, {**nameless, "contextIdentifier": {"type": "Nip", "value": PARTNER}}) == 430


def test_an_operation_status_is_gone_30_days_after_it_ended(
    ksef_mock: KSeFMock, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GET /permissions/operations/{referenceNumber}: "Status operacji jest dostępny przez 30 dni.", its 410
    # a GoneProblemDetails (example detail "Operacja wygasła i nie jest już dostępna."); api-changelog.md
    # 2.4.0: "Po upływie okresu retencji odpytywanie statusu zwraca `410 Gone`".
    backend, start = ksef_mock.backend, dt.datetime(2026, 6, 3, 6, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(backend, "clock", lambda: start)
    reference = _grant_person_raw(http, _bearer(backend, NIP), ("Pesel", PESEL), ["InvoiceRead"])
    monkeypatch.setattr(backend, "clock", lambda: start + dt.timedelta(days=30, seconds=-1))
    assert _operation(http, _bearer(backend, NIP), reference) == 200
    monkeypatch.setattr(backend, "clock", lambda: start + dt.timedelta(days=30))
    answer = http.get(f"/permissions/operations/{reference}", headers=_bearer(backend, NIP))
    assert (answer.status_code, answer.headers["content-type"]) == (410, "application/problem+json")
    body = answer.json()
    assert {k: body[k] for k in ("title", "status", "detail")} == {
        "title": "Gone", "status": 410, "detail": "Operacja wygasła i nie jest już dostępna.",
    }  # fmt: skip
    assert _persons(http, _bearer(backend, NIP)) != []  # the grant itself stays


def test_grant_bodies_follow_the_rules_of_the_spec_descriptions(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # The spec's JSON Schema lets these through; its descriptions do not. Every grant's permissions: "Lista
    # nadawanych uprawnień. Każda wartość może wystąpić tylko raz."; PersonPermissionSubjectDetails.personById:
    # "Wymagane, gdy subjectDetailsType = PersonByIdentifier." Refused as the spec's 400 / 21405 ("Błąd
    # walidacji danych wejściowych. | {treść błędu z walidatora}").
    owner = _bearer(ksef_mock.backend, NIP)
    person = {"subjectIdentifier": {"type": "Pesel", "value": PESEL}, "permissions": ["InvoiceRead", "InvoiceRead"],
              "description": "pracownik", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    twice = http.post("/permissions/persons/grants", json=person, headers=owner)
    assert twice.status_code == 400 and "21405" in twice.text and "tylko raz" in twice.text, twice.text
    entity = {"subjectIdentifier": {"type": "Nip", "value": CLIENT}, "description": "biuro rachunkowe",
              "permissions": [{"type": "InvoiceRead", "canDelegate": True}, {"type": "InvoiceRead"}],
              "subjectDetails": {"fullName": "Biuro"}}  # fmt: skip
    assert http.post("/permissions/entities/grants", json=entity, headers=owner).status_code == 400
    no_data = {"subjectDetailsType": "PersonByIdentifier"}
    nameless = {**person, "permissions": ["InvoiceRead"], "subjectDetails": no_data}
    unnamed = http.post("/permissions/persons/grants", json=nameless, headers=owner)
    assert unnamed.status_code == 400 and "21405" in unnamed.text and "personById" in unnamed.text, unnamed.text
    assert _persons(http, owner) == []  # nothing granted
    assert _outcome(http, owner, "/permissions/persons/grants", {**person, "permissions": ["InvoiceRead"]}) == 200


def test_permission_reads_keep_grants_and_revokes_in_progress(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # uprawnienia.md: "Wykonanie operacji nadania uprawnienia nie skutkuje natychmiastowym dostępem
    # – operacja jest asynchroniczna musi zostać poprawnie przetworzona przez system (należy  # noqa: RUF003
    # sprawdzić status operacji)";
    # PermissionsOperationStatusResponse: "| 100 | Operacja przyjęta do realizacji |".
    owner = _bearer(ksef_mock.backend, NIP)
    accountant = self_signed_certificate(kind="person", key_type="ec")
    control = ksef_mock.base_url.removesuffix("/v2") + "/_mock/transitions"
    assert httpx.post(control, json={"permissionReads": 2}).json()["permissionReads"] == 2
    granted = _grant_person_raw(http, owner, ("Nip", accountant.nip), ["InvoiceRead"])
    assert _login(ksef_mock, accountant, NIP) == 415  # not yet in effect
    assert _persons(http, owner) == []
    pickle.dumps(ksef_mock.backend.snapshot())  # an operation in progress is saved by --state too
    assert [_operation(http, owner, granted) for _ in range(2)] == [100, 100]
    assert _operation(http, owner, granted) == 200
    assert _login(ksef_mock, accountant, NIP) == {"InvoiceRead"}

    (grant,) = _persons(http, owner)
    revoke = http.delete(f"/permissions/common/grants/{grant['id']}", headers=owner)
    assert revoke.status_code == 202
    ref = revoke.json()["referenceNumber"]
    assert _login(ksef_mock, accountant, NIP) == {"InvoiceRead"}  # the revoke is still in progress
    assert [_operation(http, owner, ref) for _ in range(3)] == [100, 100, 200]
    assert _login(ksef_mock, accountant, NIP) == 415
    # A grant the spec forbids fails only when it is processed.
    enforcement = {"subjectIdentifier": {"type": "Pesel", "value": PESEL}, "permissions": ["EnforcementOperations"],
                   "description": "egzekucja", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    refused = http.post("/permissions/persons/grants", json=enforcement, headers=owner).json()["referenceNumber"]
    assert [_operation(http, owner, refused) for _ in range(3)] == [100, 100, 430]


def test_a_state_file_of_an_older_emulator_keeps_its_permission_operations(
    ksef_mock: KSeFMock, http: httpx.Client
) -> None:
    # Before operations had a status of their own (and a retention), the state kept an operation's context
    # alone and the failed ones' status apart; a --state file written then still answers its operations.
    backend, owner = ksef_mock.backend, _bearer(ksef_mock.backend, NIP)
    done = _grant_person_raw(http, owner, ("Pesel", PESEL), ["InvoiceRead"])
    failed = _grant_person_raw(http, owner, ("Pesel", PESEL), ["EnforcementOperations"])
    old = backend.permissions.state
    old.__dict__["failures"] = {failed: old.operations[failed].status}
    old.operations = {ref: operation.context for ref, operation in old.operations.items()}  # type: ignore[misc]
    backend.restore(pickle.loads(pickle.dumps(backend.snapshot())))
    assert (_operation(http, owner, done), _operation(http, owner, failed)) == (200, 430)


def test_identifier_values_and_document_countries_follow_the_descriptions(
    ksef_mock: KSeFMock, http: httpx.Client
) -> None:
    # IndirectPermissionsTargetIdentifier.value (and the query's PersonPermissionsTargetIdentifier,
    # PersonalPermissionsTargetIdentifier): "W przypadku typu AllPartners należy pozostawić puste. W
    # pozostałych przypadkach pole jest wymagane."; PersonPermissionsAuthorIdentifier.value: "W przypadku typu
    # System należy pozostawić puste. W pozostałych przypadkach pole jest wymagane."; IdDocument.country: "Musi
    # być zgodny z ISO 3166-1 alpha-2 (np. PL, DE, US) oraz zawierać dokładnie 2 wielkie litery." Validation
    # of the body: "21405 | Błąd walidacji danych wejściowych." (the spec's 400), not a grant made or failed.
    owner = _bearer(ksef_mock.backend, NIP)
    for target in ({"type": "Nip"}, {"type": "InternalId", "value": ""}, {"type": "AllPartners", "value": NIP}):
        body = {**_indirect(None), "targetIdentifier": target}
        answer = http.post("/permissions/indirect/grants", json=body, headers=owner)
        assert (answer.status_code, answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"]) == (
            400, 21405,
        ), target  # fmt: skip
    assert _outcome(http, owner, "/permissions/indirect/grants", {**_indirect(None), "targetIdentifier": {
        "type": "AllPartners"}}) == 200  # fmt: skip
    queries = [
        ("/permissions/query/persons/grants",
         {"queryType": "PermissionsInCurrentContext", "authorIdentifier": {"type": "Nip"}}),
        ("/permissions/query/persons/grants",
         {"queryType": "PermissionsInCurrentContext", "authorIdentifier": {"type": "System", "value": NIP}}),
        ("/permissions/query/personal/grants", {"targetIdentifier": {"type": "AllPartners", "value": NIP}}),
    ]  # fmt: skip
    for path, query in queries:
        assert http.post(path, json=query, headers=owner).status_code == 400, query
    system = {"queryType": "PermissionsInCurrentContext", "authorIdentifier": {"type": "System"}}
    assert http.post("/permissions/query/persons/grants", json=system, headers=owner).status_code == 200
    person: dict[str, Any] = {"firstName": "Hans", "lastName": "Meier", "birthDate": "1980-01-01",
              "idDocument": {"type": "Passport", "number": "C01X00T47", "country": "de"}}  # fmt: skip
    details = {"subjectDetailsType": "PersonByFingerprintWithoutIdentifier", "personByFpNoId": person}
    foreigner = {"subjectIdentifier": {"type": "Fingerprint", "value": "A" * 64}, "permissions": ["InvoiceRead"],
                 "description": "przedstawiciel", "subjectDetails": details}  # fmt: skip
    assert http.post("/permissions/persons/grants", json=foreigner, headers=owner).status_code == 400
    for not_iso in ("EL", "UK", "XX"):  # 2 capital letters, not ISO 3166-1 codes (Greece is GR, the UK GB)
        person["idDocument"]["country"] = not_iso
        assert http.post("/permissions/persons/grants", json=foreigner, headers=owner).status_code == 400, not_iso
    person["idDocument"]["country"] = "DE"
    assert _outcome(http, owner, "/permissions/persons/grants", foreigner) == 200
