"""Who may read and revoke which KSeF token, what a KSeF-token login may do, and when a login
can no longer yield tokens (review of tokens and permissions, findings 1, 2, 3, 10, 12)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ksef_client.crypto import encrypt_ksef_token
from ksef_client.mock import KSeFBackend
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.pytest_plugin import KSeFMock
from tests.conftest import NIP

PESEL = "30112206276"  # dane-testowe-scenariusze.md's example
OTHER_PESEL = "88102341294"  # uwierzytelnianie.md's example
JDG_NIP = "3238048566"  # the NIP of a person registered with PESEL by /testdata/person
READ_RIGHTS = ["CredentialsManage", "CredentialsRead"]  # GET /tokens/{ref} of a token not one's own
PERSON_DETAILS = {"subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "Anna", "lastName": "Nowak"}}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _minted(backend: KSeFBackend, nip: str, permissions: list[str], subject: tuple[str, str]) -> dict[str, str]:
    """A login (not by a KSeF token) of ``subject`` to ``nip`` with ``permissions``."""
    return _bearer(backend.mint_access_token(nip, permissions=permissions, subject=subject))


def _new_token(http: httpx.Client, login: dict[str, str], permissions: list[str], description: str) -> tuple[str, str]:
    """``POST /tokens``: the token's reference number and secret."""
    made = http.post("/tokens", json={"permissions": permissions, "description": description}, headers=login)
    assert made.status_code == 202, made.text
    return made.json()["referenceNumber"], made.json()["token"]


def _grant(http: httpx.Client, owner: dict[str, str], pesel: str, scopes: list[str]) -> None:
    body = {"subjectIdentifier": {"type": "Pesel", "value": pesel}, "permissions": scopes,
            "description": "pracownik", "subjectDetails": PERSON_DETAILS}  # fmt: skip
    assert http.post("/permissions/persons/grants", json=body, headers=owner).status_code == 202


def _revoke_grant(http: httpx.Client, owner: dict[str, str], scope: str) -> None:
    query = {"queryType": "PermissionsInCurrentContext"}
    listed = http.post("/permissions/query/persons/grants", json=query, headers=owner).json()["permissions"]
    (grant,) = [p for p in listed if p["permissionScope"] == scope]
    assert http.delete(f"/permissions/common/grants/{grant['id']}", headers=owner).status_code == 202


def _start_token_login(http: httpx.Client, secret: str, nip: str = NIP) -> tuple[str, dict[str, str]]:
    """``POST /auth/ksef-token``: the login's reference number and its authentication token."""
    challenge = http.post("/auth/challenge").json()
    key = emulator_keys().token_encryption.published()
    body = {"challenge": challenge["challenge"], "contextIdentifier": {"type": "Nip", "value": nip},
            "encryptedToken": encrypt_ksef_token(key, secret, challenge["timestampMs"])}  # fmt: skip
    started = http.post("/auth/ksef-token", json=body)
    assert started.status_code == 202, started.text
    return started.json()["referenceNumber"], _bearer(started.json()["authenticationToken"]["token"])


def _status(http: httpx.Client, reference: str, authentication: dict[str, str]) -> int:
    return int(http.get(f"/auth/{reference}", headers=authentication).json()["status"]["code"])


def _token_login(http: httpx.Client, secret: str, nip: str = NIP) -> tuple[dict[str, str], dict[str, str]]:
    """A whole KSeF-token login: its access and refresh bearer headers."""
    reference, authentication = _start_token_login(http, secret, nip)
    assert _status(http, reference, authentication) == 200
    tokens = http.post("/auth/token/redeem", headers=authentication).json()
    return _bearer(tokens["accessToken"]["token"]), _bearer(tokens["refreshToken"]["token"])


def _error(answer: httpx.Response) -> tuple[int, list[str]]:
    detail = answer.json()["exception"]["exceptionDetailList"][0]
    return int(detail["exceptionCode"]), list(detail.get("details") or [])


def _assert_missing_permissions(answer: httpx.Response, required: list[str]) -> None:
    assert answer.status_code == 403, answer.text
    problem: dict[str, Any] = answer.json()
    assert problem["reasonCode"] == "missing-permissions"
    assert problem["security"]["requiredAnyOfPermissions"] == required


@pytest.fixture
def http(ksef_mock: KSeFMock) -> Iterator[httpx.Client]:
    """A raw client of the emulator; tokens active at once."""
    ksef_mock.backend.transitions.token_reads = 0
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        yield client


def test_without_credentials_rights_only_ones_own_token_is_read_listed_or_revoked(
    ksef_mock: KSeFMock, http: httpx.Client
) -> None:
    # Spec DELETE /tokens/{referenceNumber}: "Jeżeli podmiot posiada uprawnienie CredentialsManage, może
    # unieważnić dowolny aktywny token w danym kontekście [...] Jeżeli podmiot nie posiada powyższego
    # uprawnienia, zakres unieważnienia jest ograniczony: - Dla podmiotu uwierzytelnionego tokenem możliwe
    # jest unieważnienie wyłącznie tokena użytego do uwierzytelnienia. - Dla pozostałych metod
    # uwierzytelnienia podmiot może unieważnić tokeny, których jest autorem". GET /tokens: the same with
    # "CredentialsManage lub CredentialsRead". GET /tokens/{referenceNumber}, the emulator's reading (the spec
    # names no rule; api-changelog 2.4.0 lets a token login read the token it used without those rights):
    # without them, the tokens the caller's subject authored, a token login's subject being its token's
    # author (the Ministry's KsefTokenE2ETests.When_KsefTokensAreActive_ThenTryToRevokeOneWithAnother reads,
    # with one token's login, another token of the same author). The emulator let any login read any token
    # of the context (review s12-final). The refusal is not documented: the spec's 403 missing-permissions.
    backend = ksef_mock.backend
    owner = _bearer(backend.mint_access_token(NIP))
    _grant(http, owner, PESEL, ["InvoiceWrite", "CredentialsRead"])
    anna = _minted(backend, NIP, ["InvoiceWrite"], ("Pesel", PESEL))  # e.g. her XAdES login
    admin, _ = _new_token(http, owner, ["InvoiceRead", "CredentialsManage"], "ERP admin token")
    hers, secret = _new_token(http, anna, ["InvoiceWrite"], "Anna's invoicing token")
    spare, _ = _new_token(http, anna, ["InvoiceWrite"], "Anna's spare token")

    # Another login method: the tokens she authored.
    assert {t["referenceNumber"] for t in http.get("/tokens", headers=anna).json()["tokens"]} == {hers, spare}
    _assert_missing_permissions(http.get(f"/tokens/{admin}", headers=anna), READ_RIGHTS)
    _assert_missing_permissions(http.delete(f"/tokens/{admin}", headers=anna), ["CredentialsManage"])
    assert http.get(f"/tokens/{spare}", headers=anna).status_code == 200

    # A login with her token: only that token, though she authored the spare one too.
    by_token, _ = _token_login(http, secret)
    assert [t["referenceNumber"] for t in http.get("/tokens", headers=by_token).json()["tokens"]] == [hers]
    assert http.get(f"/tokens/{spare}", headers=by_token).status_code == 200  # read: her token too
    _assert_missing_permissions(http.get(f"/tokens/{admin}", headers=by_token), READ_RIGHTS)
    _assert_missing_permissions(http.delete(f"/tokens/{admin}", headers=by_token), ["CredentialsManage"])
    assert http.get(f"/tokens/{admin}", headers=owner).json()["status"] == "Active"
    assert http.delete(f"/tokens/{hers}", headers=by_token).status_code == 204  # its own token

    # CredentialsRead reads every token, but revokes only with CredentialsManage.
    reader = _minted(backend, NIP, ["CredentialsRead"], ("Pesel", PESEL))
    assert len(http.get("/tokens", headers=reader).json()["tokens"]) == 3
    assert http.get(f"/tokens/{admin}", headers=reader).status_code == 200
    assert http.delete(f"/tokens/{admin}", headers=reader).status_code == 403
    assert http.delete(f"/tokens/{spare}", headers=owner).status_code == 204


def test_an_author_is_one_under_her_nip_and_her_pesel(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # Spec DELETE /tokens/{referenceNumber}: "tokeny, których jest autorem - z uwzględnieniem powiązania
    # NIP-PESEL".
    person = {"nip": JDG_NIP, "pesel": PESEL, "description": "JDG Anna Nowak", "isBailiff": False}
    assert http.post("/testdata/person", json=person).status_code == 200
    backend = ksef_mock.backend
    by_nip = _minted(backend, JDG_NIP, ["InvoiceWrite"], ("Nip", JDG_NIP))
    by_pesel = _minted(backend, JDG_NIP, ["InvoiceWrite"], ("Pesel", PESEL))
    stranger = _minted(backend, JDG_NIP, ["InvoiceWrite"], ("Pesel", OTHER_PESEL))
    made, _ = _new_token(http, by_nip, ["InvoiceWrite"], "JDG ERP token")
    assert http.get(f"/tokens/{made}", headers=by_pesel).status_code == 200  # a status read: the same author
    assert http.get(f"/tokens/{made}", headers=stranger).status_code == 403
    assert http.delete(f"/tokens/{made}", headers=stranger).status_code == 403
    assert http.delete(f"/tokens/{made}", headers=by_pesel).status_code == 204


def test_a_token_login_gets_what_its_author_still_holds(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # uwierzytelnianie.md, of the KSeF-token login: "Informacja o podmiocie uwierzytelniającym odczytywana jest
    # na podstawie przesłanego tokena KSeF. Podmiot uwierzytelniający podlega weryfikacji - system sprawdzi,
    # czy wskazany podmiot posiada co najmniej jedno aktywne uprawnienie do wybranego kontekstu. Brak takich
    # uprawnień uniemożliwia uzyskanie tokena dostępowego"; a refresh gives "nowy accessToken (JWT) z
    # aktualnym zestawem uprawnień i ról". Spec status "415 | Uwierzytelnianie zakończone niepowodzeniem |
    # Brak przypisanych uprawnień", as a XAdES login without permissions gets.
    backend = ksef_mock.backend
    owner = _bearer(backend.mint_access_token(NIP))
    _grant(http, owner, PESEL, ["InvoiceRead", "InvoiceWrite"])
    anna = _minted(backend, NIP, ["InvoiceRead", "InvoiceWrite"], ("Pesel", PESEL))
    _, secret = _new_token(http, anna, ["InvoiceRead", "InvoiceWrite"], "Anna's ERP token")
    access, refresh = _token_login(http, secret)
    assert backend.authenticate(access["Authorization"]).permissions == {"InvoiceRead", "InvoiceWrite"}

    _revoke_grant(http, owner, "InvoiceWrite")
    fresh, _ = _token_login(http, secret)
    assert backend.authenticate(fresh["Authorization"]).permissions == {"InvoiceRead"}
    refreshed = http.post("/auth/token/refresh", headers=refresh).json()["accessToken"]["token"]
    assert backend.authenticate(f"Bearer {refreshed}").permissions == {"InvoiceRead"}

    _revoke_grant(http, owner, "InvoiceRead")
    reference, authentication = _start_token_login(http, secret)
    assert _status(http, reference, authentication) == 415
    assert http.post("/auth/token/redeem", headers=authentication).status_code == 400
    refused = http.post("/auth/token/refresh", headers=refresh)
    assert refused.status_code == 400 and _error(refused)[0] == 21301


def test_redeem_after_the_token_was_revoked_is_21301(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # Spec POST /auth/token/redeem, 400: "21301 | Brak autoryzacji. | Token KSeF został unieważniony."
    owner = _bearer(ksef_mock.backend.mint_access_token(NIP))
    made, secret = _new_token(http, owner, ["InvoiceRead"], "leaked token")
    reference, authentication = _start_token_login(http, secret)
    assert _status(http, reference, authentication) == 200
    assert http.delete(f"/tokens/{made}", headers=owner).status_code == 204
    refused = http.post("/auth/token/redeem", headers=authentication)
    assert refused.status_code == 400 and _error(refused) == (21301, ["Token KSeF został unieważniony."])


def test_a_revoked_login_reads_425(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # Spec, the status of GET /auth/{referenceNumber}: "425 | Uwierzytelnienie unieważnione |
    # Uwierzytelnienie i powiązane refresh tokeny zostały unieważnione przez użytkownika".
    owner = _bearer(ksef_mock.backend.mint_access_token(NIP))
    _, secret = _new_token(http, owner, ["InvoiceRead"], "integration")
    reference, authentication = _start_token_login(http, secret)
    access = _bearer(http.post("/auth/token/redeem", headers=authentication).json()["accessToken"]["token"])
    assert http.delete("/auth/sessions/current", headers=access).status_code == 204
    assert _status(http, reference, authentication) == 425


def test_a_deceased_persons_token_and_sessions_are_refused(ksef_mock: KSeFMock, http: httpx.Client) -> None:
    # Spec: auth status "470 | Uwierzytelnianie zakończone niepowodzeniem | Próba wykorzystania metod
    # autoryzacyjnych osoby zmarłej"; POST /auth/token/redeem and /auth/token/refresh, 400: "21308 | Próba
    # wykorzystania metod autoryzacyjnych osoby zmarłej. |". POST /testdata/person: isDeceased "do
    # scenariuszy weryfikujących kod statusu 470" (api-changelog.md).
    person = {"nip": JDG_NIP, "pesel": PESEL, "description": "JDG Anna Nowak", "isBailiff": False}
    assert http.post("/testdata/person", json=person).status_code == 200
    anna = _minted(ksef_mock.backend, JDG_NIP, ["InvoiceRead"], ("Pesel", PESEL))
    _, secret = _new_token(http, anna, ["InvoiceRead"], "JDG ERP token")
    _, refresh = _token_login(http, secret, JDG_NIP)
    reference, authentication = _start_token_login(http, secret, JDG_NIP)  # started before her death
    assert _status(http, reference, authentication) == 200

    dead = {**person, "isDeceased": True, "createdDate": "2099-01-01T00:00:00Z"}
    assert http.post("/testdata/person", json=dead).status_code == 200
    for refused in (http.post("/auth/token/redeem", headers=authentication),
                    http.post("/auth/token/refresh", headers=refresh)):  # fmt: skip
        assert refused.status_code == 400 and _error(refused)[0] == 21308
    late, late_authentication = _start_token_login(http, secret, JDG_NIP)
    status = http.get(f"/auth/{late}", headers=late_authentication).json()["status"]
    assert status == {"code": 470, "description": "Uwierzytelnianie zakończone niepowodzeniem",
                      "details": ["Próba wykorzystania metod autoryzacyjnych osoby zmarłej"]}  # fmt: skip
