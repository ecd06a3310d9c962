"""Who a XAdES login authenticates: ``SubjectIdentifierType`` and the certificate's subject, as the
Ministry's guide reads them (review of certificate login, findings 2 and 3)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree

from ksef_client import KSeF
from ksef_client.errors import AuthenticationFailedError
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import SigningCredentials, build_auth_token_request, sign_xades, signed_auth_token_request
from tests.conftest import NIP
from tests.helpers import certificate_with

PESEL = "88102341294"  # uwierzytelnianie.md's example PESEL
OUTSIDER = "1111111111"


def _certificate(*attributes: tuple[x509.ObjectIdentifier, str]) -> SigningCredentials:
    """A self-signed certificate (EC P-256) with exactly these subject attributes."""
    credentials: SigningCredentials = certificate_with(*attributes)
    return credentials


def _fingerprint(credentials: SigningCredentials) -> str:
    return hashlib.sha256(credentials.certificate.public_bytes(Encoding.DER)).hexdigest().upper()


def _grant(ksef_mock: KSeFMock, subject: tuple[str, str], permissions: list[str]) -> None:
    """The owner of ``NIP`` grants ``permissions`` to ``subject`` (``POST /permissions/persons/grants``)."""
    details = (
        {"subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "Jan", "lastName": "Kowalski"}}
        if subject[0] != "Fingerprint"
        else {
            "subjectDetailsType": "PersonByFingerprintWithIdentifier",
            "personByFpWithId": {"firstName": "Jan", "lastName": "Kowalski",
                                 "identifier": {"type": "Nip", "value": OUTSIDER}},
        }
    )  # fmt: skip
    body = {"subjectIdentifier": {"type": subject[0], "value": subject[1]}, "permissions": permissions,
            "description": "grant for a certificate login", "subjectDetails": details}  # fmt: skip
    headers = {"Authorization": f"Bearer {ksef_mock.token(NIP)}"}
    answer = httpx.post(ksef_mock.base_url + "/permissions/persons/grants", json=body, headers=headers)
    assert answer.status_code == 202, answer.text


def _login(
    ksef_mock: KSeFMock, credentials: SigningCredentials, subject_type: str = "certificateSubject"
) -> tuple[tuple[str, str], str, set[str]] | int:
    """A XAdES login to ``NIP`` through the SDK: (subject, authenticationMethod, permissions), or
    the failed status code."""
    with KSeF(base_url=ksef_mock.base_url) as client:
        try:
            tokens = client.auth.login_with_certificate(
                credentials, context_nip=NIP, subject_identifier_type=subject_type
            )
        except AuthenticationFailedError as failed:
            return int(failed.code or 0)
    access = ksef_mock.backend.authenticate(f"Bearer {tokens.access_token}")
    method = ksef_mock.backend.auth.state.operations[access.auth_reference_number].method
    return access.subject, method, set(access.permissions)


def _post_signed(ksef_mock: KSeFMock, credentials: SigningCredentials, subject_type: str) -> httpx.Response:
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        challenge = client.post("/auth/challenge").json()["challenge"]
        document = signed_auth_token_request(challenge, "Nip", NIP, credentials, subject_type)
        return client.post("/auth/xades-signature", content=document, headers={"Content-Type": "application/xml"})


# --- finding 2: SubjectIdentifierType ---------------------------------------------------------


def test_certificate_fingerprint_logs_in_by_the_grant_to_the_fingerprint(ksef_mock: KSeFMock) -> None:
    # uwierzytelnianie.md, certificateFingerprint: "Podpis zostanie złożony certyfikatem o odcisku ...
    # na który złożono uprawnienia do działania w imieniu firmy": the fingerprint is the subject,
    # whatever NIP the certificate names (here one with no rights in the context).
    signer = self_signed_certificate(OUTSIDER, kind="person")
    _grant(ksef_mock, ("Fingerprint", _fingerprint(signer)), ["InvoiceRead"])
    assert _login(ksef_mock, signer, "certificateSubject") == 415  # the NIP in it holds nothing here
    assert _login(ksef_mock, signer, "certificateFingerprint") == (
        ("Fingerprint", _fingerprint(signer)), "QualifiedSignature", {"InvoiceRead"},
    )  # fmt: skip


def test_certificate_fingerprint_does_not_log_in_as_the_nip_in_the_certificate(ksef_mock: KSeFMock) -> None:
    # The owner's own certificate, but the document asks for the fingerprint, which holds no grant:
    # "system sprawdzi, czy wskazany podmiot posiada co najmniej jedno aktywne uprawnienie".
    owner = self_signed_certificate(NIP, kind="seal")
    assert _login(ksef_mock, owner, "certificateFingerprint") == 415
    assert _login(ksef_mock, owner, "certificateSubject") != 415


def test_certificate_subject_without_nip_or_pesel_is_21406(ksef_mock: KSeFMock) -> None:
    # The spec's 400 list of POST /auth/xades-signature: "21406 Konflikt podpisu i typu
    # uwierzytelnienia"; podpis-xades.md: a certificate without the identifiers logs in only "po
    # uprzednim nadaniu uprawnień na skrót SHA-256" (certificateFingerprint).
    foreigner = _certificate(
        (NameOID.GIVEN_NAME, "John"), (NameOID.SURNAME, "Foreigner"), (NameOID.COMMON_NAME, "John Foreigner"),
        (NameOID.SERIAL_NUMBER, "PASDE-C01X00T47"), (NameOID.COUNTRY_NAME, "DE"),
    )  # fmt: skip
    _grant(ksef_mock, ("Fingerprint", _fingerprint(foreigner)), ["InvoiceRead"])
    answer = _post_signed(ksef_mock, foreigner, "certificateSubject")
    assert answer.status_code == 400, answer.text
    assert answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21406
    assert _post_signed(ksef_mock, foreigner, "certificateFingerprint").status_code == 202


# --- finding 3: a person's certificate that names the employer ------------------------------


def _employee(pesel_or_nip: str) -> SigningCredentials:
    """A person's qualified certificate (podpis-xades.md: givenName, surname, serialNumber) that
    also carries the employer's name and ``organizationIdentifier VATPL-<NIP>``."""
    return _certificate(
        (NameOID.GIVEN_NAME, "Jan"), (NameOID.SURNAME, "Kowalski"), (NameOID.SERIAL_NUMBER, pesel_or_nip),
        (NameOID.COMMON_NAME, "Jan Kowalski"), (NameOID.ORGANIZATION_NAME, "Firma Sp. z o.o."),
        (NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{NIP}"), (NameOID.COUNTRY_NAME, "PL"),
    )  # fmt: skip


def test_a_persons_certificate_naming_the_employer_is_the_person_not_a_seal(ksef_mock: KSeFMock) -> None:
    # podpis-xades.md: seals have "Niedopuszczalne atrybuty podmiotu: givenName, surname"; a person's
    # identifier is in serialNumber "(PNOPL|PESEL).*?(?<identifier>\\d{11})". uwierzytelnianie.md, a
    # PESEL certificate: "System KSeF sprawdzi, czy ta osoba posiada uprawnienia do działania w
    # imieniu firmy": without a grant it is refused, not the owner.
    employee = _employee(f"PNOPL-{PESEL}")
    assert _login(ksef_mock, employee) == 415
    _grant(ksef_mock, ("Pesel", PESEL), ["InvoiceWrite"])
    assert _login(ksef_mock, employee) == (("Pesel", PESEL), "QualifiedSignature", {"InvoiceWrite"})


def test_a_persons_certificate_with_the_owners_nip_logs_in_as_the_owner(ksef_mock: KSeFMock) -> None:
    # podpis-xades.md: "(TINPL|NIP).*?(?<identifier>\\d{10})" in a person's serialNumber is the NIP
    # (a sole trader's own): the owner of that NIP's context, signing as a person.
    subject, method, permissions = _login(ksef_mock, _employee(f"TINPL-{NIP}"))  # type: ignore[misc]
    assert (subject, method) == (("Nip", NIP), "QualifiedSignature")
    assert "CredentialsManage" in permissions


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_a_seal_still_logs_in_as_its_organization(ksef_mock: KSeFMock, key_type: str) -> None:
    seal = self_signed_certificate(NIP, kind="seal", key_type=key_type)
    subject, method, permissions = _login(ksef_mock, seal)  # type: ignore[misc]
    assert (subject, method) == (("Nip", NIP), "QualifiedSeal")
    assert "CredentialsManage" in permissions


def test_a_document_without_subject_identifier_type_is_21401(ksef_mock: KSeFMock) -> None:
    # schemat_auth_v2-0.xsd: SubjectIdentifierType is required (certificateSubject | certificateFingerprint).
    seal = self_signed_certificate(NIP, kind="seal")
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        challenge = client.post("/auth/challenge").json()["challenge"]
        root = build_auth_token_request(challenge, "Nip", NIP)
        root.remove(root[-1])  # signed without it
        assert etree.QName(root[-1]).localname == "ContextIdentifier"
        answer = client.post(
            "/auth/xades-signature", content=sign_xades(root, seal), headers={"Content-Type": "application/xml"}
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21401


def test_the_login_listing_gives_ksefs_method_codes(ksef_mock: KSeFMock) -> None:
    # authenticationMethodInfo.code is no enum in the spec; its example is "xades.qualified-seal"
    # (GET /auth/sessions), and ksef2 maps KSeF's codes so ("token.ksef", "xades.qualified-seal",
    # ...). The emulator sent the deprecated enum name ("QualifiedSeal"): such a client saw every
    # login as "other" (review of tokens and permissions, 11).
    seal = self_signed_certificate(NIP, kind="seal")
    with KSeF(base_url=ksef_mock.base_url) as client:
        client.auth.login_with_certificate(seal, context_nip=NIP)
        headers = {"Authorization": f"Bearer {client.access_token}"}
        listed = httpx.get(f"{ksef_mock.base_url}/auth/sessions", headers=headers).json()["items"]
    info = listed[0]["authenticationMethodInfo"]
    assert (info["category"], info["code"], info["displayName"]) == (
        "XadesSignature",
        "xades.qualified-seal",
        "Pieczęć kwalifikowana",
    )
