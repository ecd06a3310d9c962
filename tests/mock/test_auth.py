"""The emulator's authentication against the spec (issue 16: points 4, 8, 9)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ksef_client import AsyncKSeF, KSeF
from ksef_client.crypto import encrypt_ksef_token, rsa_encrypt
from ksef_client.errors import AuthenticationFailedError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.models import Context
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import SigningCredentials, signed_auth_token_request
from tests.conftest import NIP
from tests.mock.test_certificates import _enroll, signed_in


def _xades_login_status(base_url: str, credentials: SigningCredentials, *, verify_chain: bool) -> int:
    """The final status code of a XAdES login, driven over raw HTTP."""
    with httpx.Client(base_url=base_url) as client:
        challenge = client.post("/auth/challenge").json()["challenge"]
        document = signed_auth_token_request(challenge, "Nip", NIP, credentials)
        answer = client.post(
            "/auth/xades-signature", content=document, headers={"Content-Type": "application/xml"},
            params={"verifyCertificateChain": "true" if verify_chain else "false"},
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        started = answer.json()
        bearer = {"Authorization": f"Bearer {started['authenticationToken']['token']}"}
        status = client.get(f"/auth/{started['referenceNumber']}", headers=bearer).json()
        return int(status["status"]["code"])


def test_verify_certificate_chain_fails_a_self_signed_certificate(ksef_mock: KSeFMock) -> None:
    owner = self_signed_certificate(NIP, kind="seal")
    credentials = SigningCredentials(owner.certificate, owner.private_key)
    assert _xades_login_status(ksef_mock.base_url, credentials, verify_chain=False) == 200  # TEST accepts it
    assert _xades_login_status(ksef_mock.base_url, credentials, verify_chain=True) == 460


def test_verify_certificate_chain_accepts_a_ksef_certificate(ksef_mock: KSeFMock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with signed_in(ksef_mock.base_url) as signed:  # certificates are requested after a XAdES login
        _, certificate = _enroll(signed, key, "Authentication")
    assert _xades_login_status(ksef_mock.base_url, SigningCredentials(certificate, key), verify_chain=True) == 200


def _create_token(client: httpx.Client, permissions: list[str]) -> httpx.Response:
    return client.post("/tokens", json={"permissions": permissions, "description": "integration"})


def _exception_code(answer: httpx.Response) -> int:
    return int(answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"])


def test_a_token_cannot_carry_more_than_its_creator_may_do(ksef_mock: KSeFMock) -> None:
    # Spec POST /tokens, 400: "26001 | Nie można nadać tokenowi uprawnień których nie posiadasz. |
    # Informacja o brakujących uprawnieniach."
    token = ksef_mock.token(NIP, permissions=["InvoiceRead", "CredentialsManage"])
    with httpx.Client(base_url=ksef_mock.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        refused = _create_token(client, ["InvoiceRead", "InvoiceWrite"])
        assert refused.status_code == 400 and _exception_code(refused) == 26001 and "InvoiceWrite" in refused.text
        assert _create_token(client, ["InvoiceRead"]).status_code == 202


def test_a_token_is_made_only_in_a_nip_or_internal_id_context(ksef_mock: KSeFMock) -> None:
    # Spec POST /tokens: "Token może być generowany tylko w kontekście NIP lub identyfikatora
    # wewnętrznego"; 400 "26002 | Nie można wygenerować tokena dla obecnego typu kontekstu."
    composite = Context("NipVatUe", f"{NIP}-DE123456789")
    token = ksef_mock.backend.mint_access_token(context=composite)
    with httpx.Client(base_url=ksef_mock.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        refused = _create_token(client, ["InvoiceRead"])
    assert refused.status_code == 400 and _exception_code(refused) == 26002


def test_introspection_is_a_token_permission(raw: httpx.Client) -> None:
    assert _create_token(raw, ["Introspection"]).status_code == 202


def test_a_minted_token_is_an_auth_session_that_can_be_revoked(raw: httpx.Client, backend: KSeFBackend) -> None:
    sessions = raw.get("/auth/sessions").json()["items"]
    assert [s["isCurrent"] for s in sessions] == [True]
    assert raw.delete("/auth/sessions/current").status_code == 204
    assert raw.get("/auth/sessions").json()["items"] == []


@pytest.mark.parametrize("reference", ["not-a-reference", "20261201-AU-0000000000-0000000000-00"])
def test_auth_status_checks_the_token_before_the_input(ksef_mock: KSeFMock, reference: str) -> None:
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        assert client.get(f"/auth/{reference}").status_code == 401


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_the_sdk_asks_for_chain_verification(ksef_mock: KSeFMock, client_kind: str) -> None:
    owner = self_signed_certificate(NIP, kind="seal")
    credentials = SigningCredentials(owner.certificate, owner.private_key)
    if client_kind == "sync":
        with KSeF(base_url=ksef_mock.base_url) as client, pytest.raises(AuthenticationFailedError) as failed:
            client.auth.login_with_certificate(credentials, context_nip=NIP, verify_certificate_chain=True)
    else:

        async def login() -> None:
            async with AsyncKSeF(base_url=ksef_mock.base_url) as client:
                await client.auth.login_with_certificate(credentials, context_nip=NIP, verify_certificate_chain=True)

        with pytest.raises(AuthenticationFailedError) as failed:
            anyio.run(login)
    assert failed.value.code == 460


def _token_login_status(base_url: str, context_nip: str, encrypted: Callable[[int], str]) -> dict[str, object]:
    """The status of a KSeF-token login into ``context_nip`` whose ``encryptedToken`` is
    ``encrypted(challenge's timestampMs)``, over raw HTTP."""
    with httpx.Client(base_url=base_url) as client:
        challenge = client.post("/auth/challenge").json()
        body = {
            "challenge": challenge["challenge"], "contextIdentifier": {"type": "Nip", "value": context_nip},
            "encryptedToken": encrypted(int(challenge["timestampMs"])),
        }  # fmt: skip
        started = client.post("/auth/ksef-token", json=body)
        assert started.status_code == 202, started.text
        bearer = {"Authorization": f"Bearer {started.json()['authenticationToken']['token']}"}
        return dict(client.get(f"/auth/{started.json()['referenceNumber']}", headers=bearer).json()["status"])


def test_failed_token_logins_give_the_specs_450_details(ksef_mock: KSeFMock, backend: KSeFBackend) -> None:
    # AuthenticationOperationStatusResponse.status (the spec): 450 "Uwierzytelnianie zakończone
    # niepowodzeniem z powodu błędnego tokenu" with "Nieprawidłowe szyfrowanie tokena", "Nieprawidłowe
    # kodowanie tokena", "Nieprawidłowy czas tokena", "Token nie może być użyty w kontekście
    # {contextIdentifier}" (the emulator had its own sentences).
    backend.transitions.token_reads = 0  # active at once
    access = backend.authenticate(f"Bearer {backend.mint_access_token(NIP)}")
    _, token = backend.auth.create_ksef_token(access, ["InvoiceRead"], "450 details")
    public = emulator_keys().token_encryption.published()

    def not_utf8(stamp: int) -> str:
        return base64.b64encode(rsa_encrypt(public.public_key, b"\xff\xfe|" + str(stamp).encode())).decode()

    cases: dict[str, tuple[str, Callable[[int], str]]] = {
        "Nieprawidłowe szyfrowanie tokena": (NIP, lambda _: base64.b64encode(b"\x01" * 256).decode()),
        "Nieprawidłowe kodowanie tokena": (NIP, not_utf8),
        "Nieprawidłowy czas tokena": (NIP, lambda stamp: encrypt_ksef_token(public, token, stamp - 1)),
        "Token nie może być użyty w kontekście 1111111111": (
            "1111111111", lambda stamp: encrypt_ksef_token(public, token, stamp)
        ),
    }  # fmt: skip
    for detail, (context_nip, encrypted) in cases.items():
        status = _token_login_status(ksef_mock.base_url, context_nip, encrypted)
        assert status == {
            "code": 450, "description": "Uwierzytelnianie zakończone niepowodzeniem z powodu błędnego tokenu",
            "details": [detail],
        }, detail  # fmt: skip
    assert (
        _token_login_status(ksef_mock.base_url, NIP, lambda stamp: encrypt_ksef_token(public, token, stamp))["code"]
        == 200
    )
