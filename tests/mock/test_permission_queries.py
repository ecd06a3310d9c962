"""The emulator's permission queries read their request body: the list asked for (``queryType``,
granted or received), the filters, the current context, and the spec's order ("Sortowanie:
startDate (Desc), id (Asc)")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ksef_client.mock import KSeFBackend
from ksef_client.mock.models import Context
from ksef_client.mock.pytest_plugin import KSeFMock
from tests.conftest import NIP

CLIENT, PARTNER = "7762811692", "4972530874"
PESEL, OTHER_PESEL = "15062788702", "22271569167"
PERSON_DETAILS = {"subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "Jan", "lastName": "Nowak"}}


def _bearer(backend: KSeFBackend, nip: str, **options: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.mint_access_token(nip, **options)}"}


@pytest.fixture
def http(ksef_mock: KSeFMock) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        yield client


def _post(http: httpx.Client, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = http.post(path, json=body, headers=headers)
    assert answer.status_code in (200, 202), answer.text
    return dict(answer.json())


def _grant_person(http: httpx.Client, headers: dict[str, str], pesel: str, scopes: list[str]) -> None:
    body = {"subjectIdentifier": {"type": "Pesel", "value": pesel}, "permissions": scopes,
            "description": "pracownik", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    _post(http, headers, "/permissions/persons/grants", body)


def _grant_entity(http: httpx.Client, headers: dict[str, str], nip: str, scope: str, *, delegate: bool) -> None:
    body = {"subjectIdentifier": {"type": "Nip", "value": nip}, "description": "biuro rachunkowe",
            "permissions": [{"type": scope, "canDelegate": delegate}],
            "subjectDetails": {"fullName": "Biuro"}}  # fmt: skip
    _post(http, headers, "/permissions/entities/grants", body)


def _grant_authorization(http: httpx.Client, headers: dict[str, str], nip: str, scope: str) -> None:
    body = {"subjectIdentifier": {"type": "Nip", "value": nip}, "permission": scope,
            "description": "samofakturowanie", "subjectDetails": {"fullName": "Firma B"}}  # fmt: skip
    _post(http, headers, "/permissions/authorizations/grants", body)


def _listed(http: httpx.Client, headers: dict[str, str], path: str, body: dict[str, Any],
            field: str = "permissions") -> list[dict[str, Any]]:  # fmt: skip
    return list(_post(http, headers, path, body)[field])


PERSONS = "/permissions/query/persons/grants"


def test_person_queries_filter_order_and_tell_granted_from_in_effect(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # POST /permissions/query/persons/grants: filters "authorIdentifier", "authorizedIdentifier",
    # "permissionTypes", "permissionState", "queryType - typ zapytania określający, która z dwóch list ma
    # zostać zwrócona"; PermissionsGrantedInCurrentContext is the list "nadanych w bieżącym kontekście przez
    # uwierzytelnionego klienta API". "Sortowanie: startDate (Desc), id (Asc)".
    backend = ksef_mock.backend
    owner = _bearer(backend, NIP)
    administrator = _bearer(backend, NIP, subject=("Pesel", OTHER_PESEL))
    _grant_person(http, owner, PESEL, ["InvoiceRead"])
    _grant_person(http, owner, OTHER_PESEL, ["InvoiceWrite", "CredentialsManage"])
    _grant_person(http, administrator, PESEL, ["Introspection"])

    in_effect = _listed(http, owner, PERSONS, {"queryType": "PermissionsInCurrentContext"})
    dates = [p["startDate"] for p in in_effect]
    assert len(in_effect) == 4 and dates == sorted(dates, reverse=True)
    assert in_effect[0]["permissionScope"] == "Introspection"  # the newest
    mine = _listed(http, owner, PERSONS, {"queryType": "PermissionsGrantedInCurrentContext"})
    assert sorted(p["permissionScope"] for p in mine) == ["CredentialsManage", "InvoiceRead", "InvoiceWrite"]
    by_administrator = _listed(http, administrator, PERSONS, {"queryType": "PermissionsGrantedInCurrentContext"})
    assert [p["permissionScope"] for p in by_administrator] == ["Introspection"]

    narrow = {"queryType": "PermissionsInCurrentContext", "permissionTypes": ["InvoiceWrite", "Introspection"],
              "authorizedIdentifier": {"type": "Pesel", "value": OTHER_PESEL}}  # fmt: skip
    assert [p["permissionScope"] for p in _listed(http, owner, PERSONS, narrow)] == ["InvoiceWrite"]
    author = {"queryType": "PermissionsInCurrentContext", "authorIdentifier": {"type": "Pesel", "value": OTHER_PESEL}}
    assert [p["permissionScope"] for p in _listed(http, owner, PERSONS, author)] == ["Introspection"]
    inactive = {"queryType": "PermissionsInCurrentContext", "permissionState": "Inactive"}
    assert _listed(http, owner, PERSONS, inactive) == []
    # Another context sees none of them.
    assert _listed(http, _bearer(backend, CLIENT), PERSONS, {"queryType": "PermissionsInCurrentContext"}) == []


def test_entity_grants_are_listed_as_received_by_the_entity(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # POST /permissions/query/entities/grants: "odczytanie otrzymanych uprawnień do obsługi faktur w bieżącym
    # kontekście logowania ... nadane podmiotowi do obsługi faktur przez inny podmiot"; filter
    # "contextIdentifier - identyfikator podmiotu, który nadał uprawnienie do obsługi faktur".
    backend = ksef_mock.backend
    _grant_entity(http, _bearer(backend, NIP), PARTNER, "InvoiceRead", delegate=True)
    _grant_entity(http, _bearer(backend, CLIENT), PARTNER, "InvoiceWrite", delegate=False)
    path = "/permissions/query/entities/grants"
    received = _listed(http, _bearer(backend, PARTNER), path, {})
    assert {(p["contextIdentifier"]["value"], p["permissionScope"], p["canDelegate"]) for p in received} == {
        (NIP, "InvoiceRead", True), (CLIENT, "InvoiceWrite", False),
    }  # fmt: skip
    only = {"contextIdentifier": {"type": "Nip", "value": CLIENT}}
    assert [p["permissionScope"] for p in _listed(http, _bearer(backend, PARTNER), path, only)] == ["InvoiceWrite"]
    assert _listed(http, _bearer(backend, NIP), path, {}) == []  # the granting side received nothing
    # The granting side finds them (and their ids, to revoke them) among the permissions in its context.
    granted = _listed(http, _bearer(backend, NIP), PERSONS, {"queryType": "PermissionsGrantedInCurrentContext"})
    assert [(p["authorizedIdentifier"]["value"], p["canDelegate"]) for p in granted] == [(PARTNER, True)]


def test_authorization_queries_tell_granted_from_received(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # POST /permissions/query/authorizations/grants: "otrzymanych przez podmiot bieżącego kontekstu / nadanych
    # przez podmiot bieżącego kontekstu. Wybór listy nadanych lub otrzymanych uprawnień odbywa się przy
    # użyciu parametru queryType"; filters authorizingIdentifier, authorizedIdentifier, permissionTypes.
    backend = ksef_mock.backend
    _grant_authorization(http, _bearer(backend, NIP), PARTNER, "SelfInvoicing")
    _grant_authorization(http, _bearer(backend, NIP), CLIENT, "RRInvoicing")
    _grant_authorization(http, _bearer(backend, CLIENT), PARTNER, "TaxRepresentative")
    path, field = "/permissions/query/authorizations/grants", "authorizationGrants"

    def scopes(nip: str, body: dict[str, Any]) -> list[str]:
        return sorted(g["authorizationScope"] for g in _listed(http, _bearer(backend, nip), path, body, field))

    assert scopes(NIP, {"queryType": "Granted"}) == ["RRInvoicing", "SelfInvoicing"]
    assert scopes(NIP, {"queryType": "Received"}) == []
    assert scopes(PARTNER, {"queryType": "Received"}) == ["SelfInvoicing", "TaxRepresentative"]
    assert scopes(PARTNER, {"queryType": "Granted"}) == []
    assert scopes(NIP, {"queryType": "Granted", "permissionTypes": ["RRInvoicing"]}) == ["RRInvoicing"]
    to_partner = {"queryType": "Granted", "authorizedIdentifier": {"type": "Nip", "value": PARTNER}}
    assert scopes(NIP, to_partner) == ["SelfInvoicing"]
    from_client = {"queryType": "Received", "authorizingIdentifier": {"type": "Nip", "value": CLIENT}}
    assert scopes(PARTNER, from_client) == ["TaxRepresentative"]


def test_personal_permissions_are_those_of_the_current_context(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # POST /permissions/query/personal/grants: "własnych uprawnień uwierzytelnionego klienta API w bieżącym
    # kontekście logowania", including those "nadane podmiotowi do obsługi faktur przez inny podmiot, jeśli
    # podmiot uwierzytelniony ma w bieżącym kontekście uprawnienia właścicielskie"; filter permissionTypes.
    backend = ksef_mock.backend
    _grant_person(http, _bearer(backend, NIP), PESEL, ["InvoiceRead", "Introspection"])
    _grant_person(http, _bearer(backend, CLIENT), PESEL, ["InvoiceWrite"])
    path = "/permissions/query/personal/grants"
    person = _bearer(backend, NIP, permissions=["InvoiceRead"], subject=("Pesel", PESEL))
    mine = _listed(http, person, path, {})
    assert sorted((p["contextIdentifier"]["value"], p["permissionScope"]) for p in mine) == [
        (NIP, "Introspection"), (NIP, "InvoiceRead"),
    ]  # fmt: skip
    assert all("authorizedIdentifier" not in p for p in mine)  # "jeżeli jest inny niż ... klienta API"
    assert [p["permissionScope"] for p in _listed(http, person, path, {"permissionTypes": ["InvoiceRead"]})] == [
        "InvoiceRead"
    ]

    _grant_entity(http, _bearer(backend, CLIENT), NIP, "InvoiceRead", delegate=False)
    (received,) = _listed(http, _bearer(backend, NIP), path, {})
    assert received["contextIdentifier"]["value"] == CLIENT and "authorizedIdentifier" not in received
    # The owner by a PESEL linked to the NIP (uprawnienia.md: "powiązanie NIP-PESEL") is told whose it is.
    linked = {"nip": NIP, "pesel": OTHER_PESEL, "description": "JDG Jan Nowak", "isBailiff": False}
    assert http.post("/testdata/person", json=linked).status_code == 200
    (received,) = _listed(http, _bearer(backend, NIP, subject=("Pesel", OTHER_PESEL)), path, {})
    assert received["authorizedIdentifier"] == {"type": "Nip", "value": NIP}


def test_indirect_grants_name_their_client_and_follow_the_delegation(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # uprawnienia.md: a selective indirect grant lets its holder work "tylko w kontekście wskazanego podmiotu";
    # PermissionState "Inactive | Uprawnienia nieaktywne, nadane w sposób pośredni"; filter targetIdentifier.
    backend = ksef_mock.backend
    office, client = _bearer(backend, NIP), _bearer(backend, CLIENT)
    _grant_entity(http, client, NIP, "InvoiceRead", delegate=True)
    body = {"subjectIdentifier": {"type": "Pesel", "value": PESEL},
            "targetIdentifier": {"type": "Nip", "value": CLIENT}, "permissions": ["InvoiceRead"],
            "description": "obsługa klienta", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    _post(http, office, "/permissions/indirect/grants", body)
    (indirect,) = _listed(http, office, PERSONS, {"queryType": "PermissionsGrantedInCurrentContext"})
    assert indirect["targetIdentifier"] == {"type": "Nip", "value": CLIENT} and indirect["permissionState"] == "Active"
    assert backend.permissions.login_permissions(Context("Nip", CLIENT), ("Pesel", PESEL)) == frozenset({"InvoiceRead"})
    target = {"queryType": "PermissionsInCurrentContext", "targetIdentifier": {"type": "Nip", "value": PARTNER}}
    assert _listed(http, office, PERSONS, target) == []

    delegation = _listed(http, client, PERSONS, {"queryType": "PermissionsGrantedInCurrentContext"})[0]
    assert http.delete(f"/permissions/common/grants/{delegation['id']}", headers=client).status_code == 202
    (indirect,) = _listed(http, office, PERSONS, {"queryType": "PermissionsInCurrentContext"})
    assert indirect["permissionState"] == "Inactive"
    assert backend.permissions.login_permissions(Context("Nip", CLIENT), ("Pesel", PESEL)) is None


def test_subunit_and_eu_queries_apply_their_filters(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # POST /permissions/query/subunits/grants: filter "subunitIdentifier"; POST
    # /permissions/query/eu-entities/grants: filters "vatUeIdentifier", "authorizedFingerprintIdentifier".
    backend = ksef_mock.backend
    owner = _bearer(backend, NIP)
    for unit in ("00004", "00017"):  # the check digit is right (internal_id_check_digit)
        body = {"subjectIdentifier": {"type": "Pesel", "value": PESEL},
                "contextIdentifier": {"type": "InternalId", "value": f"{NIP}-{unit}"},
                "description": "admin jednostki", "subunitName": f"Oddział {unit}",
                "subjectDetails": PERSON_DETAILS}  # fmt: skip
        _post(http, owner, "/permissions/subunits/grants", body)
    path = "/permissions/query/subunits/grants"
    assert len(_listed(http, owner, path, {})) == 2
    one = {"subunitIdentifier": {"type": "InternalId", "value": f"{NIP}-00017"}}
    assert [p["subunitName"] for p in _listed(http, owner, path, one)] == ["Oddział 00017"]

    document = {"type": "Passport", "number": "C01X00T47", "country": "DE"}
    person = {"firstName": "Hans", "lastName": "Meier", "birthDate": "1980-01-01", "idDocument": document}
    details = {"subjectDetailsType": "PersonByFingerprintWithoutIdentifier", "personByFpNoId": person}
    for vat_ue in ("DE123456789", "ATU12345678"):
        body = {"subjectIdentifier": {"type": "Fingerprint", "value": "A" * 64},
                "contextIdentifier": {"type": "NipVatUe", "value": f"{NIP}-{vat_ue}"},
                "description": "administrator", "euEntityName": "Firma GmbH", "subjectDetails": details,
                "euEntityDetails": {"fullName": "Firma GmbH", "address": "Berlin"}}  # fmt: skip
        _post(http, owner, "/permissions/eu-entities/administration/grants", body)
    path = "/permissions/query/eu-entities/grants"
    # Each administrator's grant is four records (VatUeManage, InvoiceWrite, InvoiceRead, Introspection).
    assert [p["vatUeIdentifier"] for p in _listed(http, owner, path, {"vatUeIdentifier": "ATU12345678"})] == [
        "ATU12345678"
    ] * 4
    assert len(_listed(http, owner, path, {"authorizedFingerprintIdentifier": "AAAA"})) == 8
    assert _listed(http, owner, path, {"authorizedFingerprintIdentifier": "BBBB"}) == []
