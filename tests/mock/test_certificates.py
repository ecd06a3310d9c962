"""KSeF certificates and collective identifiers in the emulator, through the generated client (and the SDK)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import pickle
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ksef_client import KSeF, qr
from ksef_client._core import parsed
from ksef_client._generated import models
from ksef_client._generated.api.certificates import (
    create_enrollment,
    get_enrollment_data,
    get_enrollment_status,
    query_certificates,
    retrieve_certificates,
    revoke_certificate,
)
from ksef_client._generated.api.collective_identifiers import (
    create_collective_identifier,
    list_collective_identifiers_by_ksef_number,
)
from ksef_client._generated.api.testdata import update_test_certificate
from ksef_client._generated.models import (
    CertificateEnrollmentDataResponse,
    CertificateEnrollmentStatusResponse,
    CollectiveIdentifiersByKsefNumberQueryResponse,
    EnrollCertificateRequest,
    EnrollCertificateResponse,
    GenerateCollectiveIdentifierRequest,
    GenerateCollectiveIdentifierResponse,
    QueryCertificatesRequest,
    QueryCertificatesResponse,
    RetrieveCertificatesRequest,
    RetrieveCertificatesResponse,
    RevokeCertificateRequest,
)
from ksef_client._generated.operations import OPERATIONS
from ksef_client._generated.types import UNSET
from ksef_client.certificates import build_csr
from ksef_client.errors import (
    AuthenticationFailedError,
    BadRequestError,
    CertificateEnrollmentError,
    PermissionDeniedError,
)
from ksef_client.identifiers import checksum
from ksef_client.mock import KSeFBackend
from ksef_client.mock.app import create_app  # noqa: F401 - importing the app registers every route
from ksef_client.mock.responses import REGISTRY
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice, self_signed_certificate
from ksef_client.xades import SigningCredentials
from tests.conftest import NIP
from tests.helpers import certificate_named


def test_every_operation_of_the_spec_has_an_endpoint() -> None:
    assert sorted(OPERATIONS) == sorted(REGISTRY)


@contextmanager
def signed_in(base_url: str, name: x509.Name | None = None, context_nip: str = NIP) -> Iterator[KSeF]:
    """A client logged in with XAdES, a self-signed certificate of ``name`` (a company seal of
    ``NIP`` by default): certificate requests need a login with a signature, not a KSeF token."""
    name = name or self_signed_certificate(NIP, kind="seal").certificate.subject
    with KSeF(base_url=base_url, rate_limit_scale=0) as client:
        client.auth.login_with_certificate(certificate_named(name), context_nip=context_nip)
        yield client


@pytest.fixture
def signed(ksef_server: ThreadedServer, backend: KSeFBackend) -> Iterator[KSeF]:
    """A client of the emulator logged in with a company seal of NIP 5265877635 (XAdES)."""
    with signed_in(ksef_server.base_url) as client:
        yield client


def person(pesel: str, given: str = "Anna", surname: str = "Testowa") -> x509.Name:
    """The subject of a person's qualified certificate identified by PESEL."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.GIVEN_NAME, given), x509.NameAttribute(NameOID.SURNAME, surname),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"PNOPL-{pesel}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{given} {surname}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        ]
    )  # fmt: skip


DATA_OIDS = {
    "commonName": NameOID.COMMON_NAME, "countryName": NameOID.COUNTRY_NAME, "surname": NameOID.SURNAME,
    "givenName": NameOID.GIVEN_NAME, "serialNumber": NameOID.SERIAL_NUMBER,
    "organizationName": NameOID.ORGANIZATION_NAME, "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
}  # fmt: skip


def _csr(ksef: KSeF, key: ec.EllipticCurvePrivateKey) -> str:
    """A CSR of exactly the names ``GET /certificates/enrollments/data`` gives."""
    data = parsed(get_enrollment_data.sync_detailed(client=ksef.raw), CertificateEnrollmentDataResponse).to_dict()
    name = x509.Name([x509.NameAttribute(DATA_OIDS[k], str(v)) for k, v in data.items()])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def _enroll(
    ksef: KSeF, key: ec.EllipticCurvePrivateKey, kind: str, name: str | None = None
) -> tuple[str, x509.Certificate]:
    body = EnrollCertificateRequest.from_dict({"certificateName": name or f"{kind} key", "certificateType": kind,
                                               "csr": _csr(ksef, key)})  # fmt: skip
    ref = parsed(create_enrollment.sync_detailed(client=ksef.raw, body=body), EnrollCertificateResponse)
    status = parsed(
        get_enrollment_status.sync_detailed(ref.reference_number, client=ksef.raw), CertificateEnrollmentStatusResponse
    )
    serial = str(status.certificate_serial_number)
    request = RetrieveCertificatesRequest(certificate_serial_numbers=[serial])
    found = parsed(retrieve_certificates.sync_detailed(client=ksef.raw, body=request), RetrieveCertificatesResponse)
    return serial, x509.load_der_x509_certificate(base64.b64decode(found.certificates[0].certificate))


def test_enrolled_certificates_log_in_and_sign_kod_ii(signed: KSeF, backend: KSeFBackend,
                                                      ksef_server: ThreadedServer) -> None:  # fmt: skip
    ksef = signed
    auth_key, offline_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _, auth_cert = _enroll(ksef, auth_key, "Authentication")
    offline_serial, offline_cert = _enroll(ksef, offline_key, "Offline")
    with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as seal:  # the KSeF certificate is a seal of the NIP
        seal.auth.login_with_certificate(SigningCredentials(auth_cert, auth_key), context_nip=NIP)
    invoice = sample_invoice("OFF/1")
    link = qr.certificate_link("TEST", "Nip", NIP, NIP, offline_serial, invoice, offline_key)
    assert qr.verify_certificate_link(link, offline_cert.public_key())  # type: ignore[arg-type]

    listed = parsed(query_certificates.sync_detailed(client=ksef.raw, body=QueryCertificatesRequest()),
                    QueryCertificatesResponse)  # fmt: skip
    assert {str(c.type_) for c in listed.certificates} == {"Authentication", "Offline"}
    revoke_certificate.sync_detailed(offline_serial, client=ksef.raw, body=RevokeCertificateRequest())
    revoked = parsed(
        query_certificates.sync_detailed(
            client=ksef.raw, body=QueryCertificatesRequest.from_dict({"status": "Revoked"})
        ),
        QueryCertificatesResponse,
    )
    assert [c.certificate_serial_number for c in revoked.certificates] == [offline_serial]


def test_each_type_of_ksef_certificate_has_its_key_usage(signed: KSeF) -> None:
    # certyfikaty-KSeF.md: "Authentication | [...] keyUsage: Digital Signature (80)", "Offline | [...]
    # Używany do potwierdzania autentyczności wystawcy [...] poprzez kod QR II [...] keyUsage:
    # Non-Repudiation (40)"; kody-qr.md: "Certyfikat typu Authentication nie może być używany do
    # generowania KODU II". The emulator's certificates had no extensions at all. Critical, as RFC
    # 5280 4.2.1.3 says CAs SHOULD mark it (the guide is silent).
    key = ec.generate_private_key(ec.SECP256R1())
    for kind, signs_logins, commits in (("Authentication", True, False), ("Offline", False, True)):
        _, certificate = _enroll(signed, key, kind)
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical, kind
        assert (usage.value.digital_signature, usage.value.content_commitment) == (signs_logins, commits), kind
        assert not (usage.value.key_encipherment or usage.value.key_agreement or usage.value.key_cert_sign), kind


def _query(ksef: KSeF, **filters: str) -> list[str]:
    body = QueryCertificatesRequest.from_dict(filters)
    found = parsed(query_certificates.sync_detailed(client=ksef.raw, body=body), QueryCertificatesResponse)
    return [c.certificate_serial_number for c in found.certificates]


def test_the_certificate_query_lists_newest_first_and_filters_by_expiry_and_name(
    signed: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ksef = signed
    # Spec POST /certificates/query: "Sortowanie: requestDate (Desc)"; QueryCertificatesRequest:
    # expiresAfter "Filtruje certyfikaty, które wygasają po podanej dacie", name "Wyszukiwanie jest
    # częściowe ... (contains)"; certyfikaty-KSeF.md §7: "expiresAfter - data końca ważności certyfikatu".
    start = backend.clock()
    now = [start]
    monkeypatch.setattr(backend, "clock", lambda: now[0])
    key = ec.generate_private_key(ec.SECP256R1())
    serials = []
    for minutes in range(3):
        now[0] = start + dt.timedelta(minutes=minutes)
        serials.append(_enroll(ksef, key, "Authentication", name=f"klucz {minutes}")[0])
    assert _query(ksef) == serials[::-1]
    valid_to = start + dt.timedelta(days=730)  # what the emulator gives the first one
    assert _query(ksef, expiresAfter=(valid_to + dt.timedelta(seconds=30)).isoformat()) == serials[:0:-1]
    assert _query(ksef, expiresAfter="2099-01-01T00:00:00+00:00") == []
    assert _query(ksef, name="ucz 1") == [serials[1]]
    # ksef.paginate's default pageSize was 100, over this operation's maximum (50): 400 / 21405
    listed = ksef.paginate(query_certificates, "certificates", body=QueryCertificatesRequest())
    assert [c.certificate_serial_number for c in listed] == serials[::-1]


# --- certificates belong to the authenticated subject (certyfikaty-KSeF.md, Wstęp) ---------------

OTHER_NIP, PESEL = "7762811692", "15062788702"
STRANGER_PESEL = "88102341294"  # uwierzytelnianie.md's example


def _let_read_invoices(base_url: str, backend: KSeFBackend, nip: str, pesel: str) -> None:
    """The owner of ``nip`` grants the person ``pesel`` InvoiceRead (and so a login there)."""
    grant = {
        "subjectIdentifier": {"type": "Pesel", "value": pesel}, "permissions": ["InvoiceRead"],
        "description": "księgowa", "subjectDetails": {
            "subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "Anna", "lastName": "Testowa"}},
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {backend.mint_access_token(nip)}"}
    assert httpx.post(base_url + "/permissions/persons/grants", json=grant, headers=headers).status_code == 202


def test_certificates_are_the_authenticated_subject_s_whatever_the_context(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # certyfikaty-KSeF.md: a certificate "nie jest przypisany do żadnego kontekstu"; "dany podmiot
    # uwierzytelniony (np. osoba identyfikowana przez PESEL) ma dostęp do tego samego zbioru
    # certyfikatów niezależnie od kontekstu"; §2 the request's data "są odczytywane z certyfikatu
    # użytego do uwierzytelnienia" (a person: serialNumber, givenName, surname, no organization).
    # It was filed under the login context, with a company seal's data of the context's NIP: a
    # person allowed only InvoiceRead got a certificate that logged in as the company's owner.
    base = ksef_server.base_url
    for nip in (NIP, OTHER_NIP):
        _let_read_invoices(base, backend, nip, PESEL)
    key = ec.generate_private_key(ec.SECP256R1())
    with signed_in(base, person(PESEL), NIP) as in_first:
        data = parsed(get_enrollment_data.sync_detailed(client=in_first.raw), CertificateEnrollmentDataResponse)
        assert data.to_dict() == {"commonName": "Anna Testowa", "countryName": "PL", "givenName": "Anna",
                                  "surname": "Testowa", "serialNumber": f"PNOPL-{PESEL}"}  # fmt: skip
        serial, certificate = _enroll(in_first, key, "Authentication")
    assert not certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    with signed_in(base, person(PESEL), OTHER_NIP) as in_second:
        assert _query(in_second) == [serial]  # the same person, another context
    with signed_in(base) as owner:  # the company's owner, in the context the request was made in
        assert _query(owner) == []
        with pytest.raises(BadRequestError) as foreign:
            revoke_certificate.sync_detailed(serial, client=owner.raw, body=RevokeCertificateRequest())
        assert foreign.value.codes == [25008]
    # The KSeF certificate is the person's, with their rights.
    with KSeF(base_url=base, rate_limit_scale=0) as ksef_certificate:
        ksef_certificate.auth.login_with_certificate(SigningCredentials(certificate, key), context_nip=NIP)
        access = backend.authenticate(f"Bearer {ksef_certificate.access_token}")
    assert access.subject == ("Pesel", PESEL) and access.permissions == {"InvoiceRead"}


def test_a_persons_nip_and_pesel_share_their_certificates(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    # Spec POST /certificates/{certificateSerialNumber}/revoke: "Podmiot może unieważnić wyłącznie certyfikat
    # wygenerowany na jego identyfikator uwierzytelnienia lub na identyfikator powiązany w ramach powiązania
    # NIP-PESEL." The emulator refused the revoke (25008) and listed nothing to the linked PESEL login
    # (review s12, 5). Listing, retrieving and a request's status follow the same link: the emulator's
    # choice (certyfikaty-KSeF.md: "tego samego zbioru certyfikatów"; Certificates._owns).
    base = ksef_server.base_url
    with KSeF(base_url=base) as anyone:
        anyone.testdata.create_person(
            {"nip": OTHER_NIP, "pesel": PESEL, "description": "JDG Jan Testowy", "isBailiff": False}
        )
    _let_read_invoices(base, backend, OTHER_NIP, STRANGER_PESEL)
    backend.transitions.enrollment_reads = 1
    key = ec.generate_private_key(ec.SECP256R1())
    by_nip = self_signed_certificate(OTHER_NIP, kind="person").certificate.subject  # TINPL-, Jan Testowy
    with signed_in(base, by_nip, OTHER_NIP) as jan:
        accepted = jan.certificates.enroll(
            "Certyfikat Jana", build_csr(jan.certificates.enrollment_data().to_dict(), key)
        )
    with signed_in(base, person(PESEL, "Jan", "Testowy"), OTHER_NIP) as by_pesel:  # the owner through the link
        serial = str(by_pesel.certificates.wait_enrolled(accepted.reference_number).certificate_serial_number)
        assert [c.certificate_serial_number for c in by_pesel.certificates.query()] == [serial]
        (found,) = by_pesel.certificates.retrieve([serial])
        assert found.certificate.public_key() == key.public_key()
        assert by_pesel.certificates.limits().certificate.remaining == 100  # counted under the NIP it was made by
        by_pesel.certificates.revoke(serial, reason="KeyCompromise")
    with signed_in(base, by_nip, OTHER_NIP) as jan:
        assert [c.status for c in jan.certificates.query()] == ["Revoked"]
    with signed_in(base, person(STRANGER_PESEL), OTHER_NIP) as stranger:  # another person, no link
        assert list(stranger.certificates.query()) == []
        with pytest.raises(BadRequestError) as unknown:
            stranger.certificates.revoke(serial)
        assert unknown.value.codes == [25008]  # not 25009 ("już odwołany"): not the stranger's to see


def test_a_persons_certificate_naming_the_employer_gives_the_persons_enrollment_data(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    """certyfikaty-KSeF.md §2: for "Osoba fizyczna" the data are commonName, surname,
    serialNumber ("np. PESEL, NIP"), countryName, givenName; organizationName and
    organizationIdentifier are ❌. A person's certificate that also names the employer
    (organizationIdentifier VATPL-<employer>) logs in as the person, but the emulator gave it a
    seal's data: the employer's identifier, without the person's name and NIP (review s11, L1), so
    the KSeF certificate issued on it named the employer."""
    employee = x509.Name([
        x509.NameAttribute(NameOID.GIVEN_NAME, "Jan"), x509.NameAttribute(NameOID.SURNAME, "Kowalski"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, f"TINPL-{NIP}"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Jan Kowalski"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pracodawca sp. z o.o."),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{OTHER_NIP}"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
    ])  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    with signed_in(ksef_server.base_url, employee, NIP) as ksef:  # the person's own NIP: the owner
        data = parsed(get_enrollment_data.sync_detailed(client=ksef.raw), CertificateEnrollmentDataResponse)
        assert data.to_dict() == {"commonName": "Jan Kowalski", "countryName": "PL", "givenName": "Jan",
                                  "surname": "Kowalski", "serialNumber": f"TINPL-{NIP}"}  # fmt: skip
        _, certificate = _enroll(ksef, key, "Authentication")
    assert not certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    assert certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == f"TINPL-{NIP}"
    with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as by_certificate:
        by_certificate.auth.login_with_certificate(SigningCredentials(certificate, key), context_nip=NIP)
        assert backend.authenticate(f"Bearer {by_certificate.access_token}").subject == ("Nip", NIP)


def test_a_ksef_token_login_may_not_request_or_revoke_certificates(signed: KSeF, ksef_server: ThreadedServer) -> None:
    # certyfikaty-KSeF.md §2: "Uwierzytelnienie przy użyciu tokena systemowego KSeF nie pozwala na
    # złożenie wniosku o certyfikat"; spec: 25001 (enrollments/data), 25002 (enrollments); revoke:
    # "Operacja nie jest dostępna dla podmiotu uwierzytelnionego tokenem KSeF" (no code: 403
    # auth-method-not-allowed, the spec's reason for exactly that).
    key = ec.generate_private_key(ec.SECP256R1())
    serial, _ = _enroll(signed, key, "Authentication")
    csr = _csr(signed, key)
    created = signed.tokens.create(["InvoiceRead", "CredentialsManage"], "certificates by token")
    signed.tokens.wait_active(created.reference_number)
    with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as by_token:
        by_token.auth.login_with_token(created.token, context_nip=NIP)
        with pytest.raises(BadRequestError) as data:
            parsed(get_enrollment_data.sync_detailed(client=by_token.raw), CertificateEnrollmentDataResponse)
        assert data.value.codes == [25001]
        with pytest.raises(BadRequestError) as request:
            _enroll_csr(by_token, csr)
        assert request.value.codes == [25002]
        with pytest.raises(PermissionDeniedError) as revoke:
            revoke_certificate.sync_detailed(serial, client=by_token.raw, body=RevokeCertificateRequest())
        assert revoke.value.reason_code == "auth-method-not-allowed"


def test_a_csr_naming_anyone_else_is_refused_with_25003(signed: KSeF, ksef_server: ThreadedServer) -> None:
    # certyfikaty-KSeF.md §3: "Zmodyfikowanie tych danych spowoduje odrzucenie wniosku"; spec 25003
    # "Dane w CSR nie zgadzają się z danymi w użytym wektorze uwierzytelniającym".
    key = ec.generate_private_key(ec.SECP256R1())
    other = self_signed_certificate(OTHER_NIP, kind="seal").certificate.subject
    csr = x509.CertificateSigningRequestBuilder().subject_name(other).sign(key, hashes.SHA256())
    assert _refused_with(signed, _der(csr)) == [25003]
    with signed_in(ksef_server.base_url, self_signed_certificate(NIP, kind="person").certificate.subject) as person_:
        seal = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(self_signed_certificate(NIP, kind="seal").certificate.subject)
            .sign(key, hashes.SHA256())
        )  # a person of the NIP asking for the company's seal
        assert _refused_with(person_, _der(seal)) == [25003]


# --- which KSeF certificates log in (GET /auth/{referenceNumber}: 460) ----------------------------


def _login_refusal(base_url: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> str | None:
    """``None`` when the certificate logs in (with verifyCertificateChain=true, which a KSeF
    certificate passes), else the 460's detail."""
    with KSeF(base_url=base_url, rate_limit_scale=0) as client:
        try:
            client.auth.login_with_certificate(
                SigningCredentials(certificate, key), context_nip=NIP, verify_certificate_chain=True
            )
        except AuthenticationFailedError as error:
            assert error.code == 460
            return error.details[0]
        sessions = client._http.get("/auth/sessions").json()["items"]
        current = [s["authenticationMethod"] for s in sessions if s["isCurrent"]]
        assert current == ["InternalCertificate"]  # "Certyfikat KSeF"
        return None


def test_a_revoked_ended_or_offline_ksef_certificate_does_not_log_in(signed: KSeF, ksef_server: ThreadedServer) -> None:
    # Spec GET /auth/{referenceNumber}: "460 ... Certyfikat odwołany", "460 ... Nieważny
    # certyfikat"; certyfikaty-KSeF.md §8: "Po unieważnieniu certyfikat nie może być użyty do
    # dalszego uwierzytelniania"; the Offline type "Nie umożliwia uwierzytelnienia" (its detail is
    # undocumented: the spec's "Niepoprawny certyfikat"). Each of them logged in.
    base = ksef_server.base_url
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    (revoked, revoked_cert), (ended, ended_cert) = (_enroll(signed, key, "Authentication") for key in keys[:2])
    _, offline_cert = _enroll(signed, keys[2], "Offline")
    assert _login_refusal(base, revoked_cert, keys[0]) is None
    revoke_certificate.sync_detailed(revoked, client=signed.raw, body=RevokeCertificateRequest())
    assert _login_refusal(base, revoked_cert, keys[0]) == "Certyfikat odwołany"
    past = models.TestDataUpdateCertificateRequest.from_dict({"validTo": "2020-01-01T00:00:00+00:00"})
    assert update_test_certificate.sync_detailed(ended, client=signed.raw, body=past).status_code == 200
    assert _login_refusal(base, ended_cert, keys[1]) == "Nieważny certyfikat"
    assert _login_refusal(base, offline_cert, keys[2]) == "Niepoprawny certyfikat"


def test_a_ksef_certificate_of_a_certificate_without_nip_or_pesel_logs_in_as_its_requester(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # certyfikaty-KSeF.md: the subject is identified "w niektórych przypadkach przez fingerprint
    # certyfikatu, który był wykorzystany do uwierzytelnienia w momencie wnioskowania o certyfikat
    # KSeF": the KSeF certificate (another key, so another fingerprint) stands for that subject.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Jean Dupont"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")])  # fmt: skip
    credentials = certificate_named(name)
    own, own_key = credentials.certificate, credentials.private_key
    fingerprint = hashlib.sha256(own.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    grant = {
        "contextIdentifier": {"type": "Nip", "value": NIP},
        "authorizedIdentifier": {"type": "Fingerprint", "value": fingerprint},
        "permissions": [{"permissionType": "InvoiceRead", "description": "odczyt faktur"}],
    }
    assert httpx.post(ksef_server.base_url + "/testdata/permissions", json=grant).status_code == 200
    key = ec.generate_private_key(ec.SECP256R1())
    with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as foreigner:
        # No NIP or PESEL in it: it logs in by its fingerprint (certificateSubject would be 21406).
        foreigner.auth.login_with_certificate(
            SigningCredentials(own, own_key), context_nip=NIP, subject_identifier_type="certificateFingerprint"
        )
        _, certificate = _enroll(foreigner, key, "Authentication")
    with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as ksef_certificate:
        ksef_certificate.auth.login_with_certificate(SigningCredentials(certificate, key), context_nip=NIP)
        access = backend.authenticate(f"Bearer {ksef_certificate.access_token}")
    assert access.subject == ("Fingerprint", fingerprint) and access.permissions == {"InvoiceRead"}


def test_collective_identifier_groups_invoices_of_one_seller(ksef: KSeF, backend: KSeFBackend) -> None:
    result = ksef.send_batch([sample_invoice(f"CI/{i}") for i in range(3)], wait=True)
    numbers = [i.ksef_number for i in ksef.sessions.invoices(result.reference_number)]
    body = GenerateCollectiveIdentifierRequest.from_dict({"invoices": [{"ksefNumber": n} for n in numbers]})
    created = parsed(create_collective_identifier.sync_detailed(client=ksef.raw, body=body),
                     GenerateCollectiveIdentifierResponse)  # fmt: skip
    identifier = created.collective_identifier_number
    assert identifier.startswith(f"{NIP}-IZ") and identifier[-2:] == checksum(identifier[:-3])
    by_number = parsed(
        list_collective_identifiers_by_ksef_number.sync_detailed(str(numbers[0]), client=ksef.raw),
        CollectiveIdentifiersByKsefNumberQueryResponse,
    )
    assert [i.collective_identifier_number for i in by_number.collective_identifiers] == [identifier]


# --- the spec's codes for certificate requests (POST /certificates/enrollments' 400 table) ----


def _enroll_csr(ksef: KSeF, csr: str) -> EnrollCertificateResponse:
    body = EnrollCertificateRequest.from_dict(
        {"certificateName": "test key", "certificateType": "Authentication", "csr": csr}
    )
    return parsed(create_enrollment.sync_detailed(client=ksef.raw, body=body), EnrollCertificateResponse)


def _der(csr: x509.CertificateSigningRequest) -> str:
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def _refused_with(ksef: KSeF, csr: str) -> list[int]:
    with pytest.raises(BadRequestError) as refused:
        _enroll_csr(ksef, csr)
    return refused.value.codes


def test_certificate_requests_are_refused_with_the_spec_s_codes(signed: KSeF) -> None:
    ksef = signed
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    assert _refused_with(ksef, base64.b64encode(b"not a CSR").decode()) == [25004]
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert _refused_with(
        ksef, _der(x509.CertificateSigningRequestBuilder().subject_name(name).sign(small, hashes.SHA256()))
    ) == [25010]
    key = ec.generate_private_key(ec.SECP256R1())
    sha224 = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA224())
    assert _refused_with(ksef, _der(sha224)) == [25011]
    good = bytearray(
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    good[-3] ^= 0xFF  # inside the signature: still a CSR, no longer signed by its key
    assert _refused_with(ksef, base64.b64encode(bytes(good)).decode()) == [25004]


def test_unknown_requests_and_certificates_and_a_second_revocation_have_their_codes(signed: KSeF) -> None:
    ksef = signed
    with pytest.raises(BadRequestError) as unknown:
        parsed(get_enrollment_status.sync_detailed("20261202-CE-0000000000-0000000000-00", client=ksef.raw),
               CertificateEnrollmentStatusResponse)  # fmt: skip
    assert unknown.value.codes == [25005]
    serial, _ = _enroll(ksef, ec.generate_private_key(ec.SECP256R1()), "Authentication")
    revoke = RevokeCertificateRequest.from_dict({})
    assert revoke_certificate.sync_detailed(serial, client=ksef.raw, body=revoke).status_code == 204
    for target, code in ((serial, 25009), ("00000000000000AA", 25008)):
        with pytest.raises(BadRequestError) as refused:
            revoke_certificate.sync_detailed(target, client=ksef.raw, body=revoke)
        assert refused.value.codes == [code]


def test_certificate_limits_of_test_data_are_reported_and_enforced_until_reset(
    signed: KSeF, backend: KSeFBackend
) -> None:
    ksef, subject = signed, ("Nip", NIP)  # the seal's subject: limits are the subject's
    backend.testdata.set_subject_limits(subject, {"certificate": {"maxCertificates": 1}, "enrollment": None})
    assert ksef.limits.subject().to_dict() == {
        "enrollment": {"maxEnrollments": 300},
        "certificate": {"maxCertificates": 1},
    }
    _enroll(ksef, ec.generate_private_key(ec.SECP256R1()), "Authentication")
    key = ec.generate_private_key(ec.SECP256R1())
    assert _refused_with(ksef, _csr(ksef, key)) == [25007]
    backend.testdata.set_subject_limits(subject, {"enrollment": {"maxEnrollments": 1}})
    assert _refused_with(ksef, _csr(ksef, key)) == [25006]
    backend.testdata.set_subject_limits(subject, None)
    assert ksef.limits.subject().to_dict() == {
        "enrollment": {"maxEnrollments": 300},
        "certificate": {"maxCertificates": 100},
    }
    _enroll(ksef, key, "Offline")


def test_enrollment_reads_keep_a_request_in_progress(
    signed: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer
) -> None:
    # certyfikaty-KSeF.md §5: "Proces wystawiania certyfikatu ma charakter asynchroniczny";
    # CertificateEnrollmentStatusResponse: "100 | Wniosek przyjęty do realizacji", "200 | Wniosek
    # obsłużony (certyfikat wygenerowany)". The emulator issued every certificate by the 202.
    control = ksef_server.base_url.removesuffix("/v2") + "/_mock/transitions"
    assert httpx.post(control, json={"enrollmentReads": 2}).json()["enrollmentReads"] == 2
    assert httpx.post(control, json={"enrollmentReads": -1}).status_code == 400
    assert backend.transitions.enrollment_reads == 2
    key = ec.generate_private_key(ec.SECP256R1())
    body = EnrollCertificateRequest.from_dict(
        {"certificateName": "wniosek w toku", "certificateType": "Authentication", "csr": _csr(signed, key)}
    )
    ref = parsed(create_enrollment.sync_detailed(client=signed.raw, body=body), EnrollCertificateResponse)
    pickle.dumps(backend.snapshot())  # a request in progress is saved by --state too

    def read() -> CertificateEnrollmentStatusResponse:
        answer = get_enrollment_status.sync_detailed(ref.reference_number, client=signed.raw)
        return parsed(answer, CertificateEnrollmentStatusResponse)

    first = read()
    assert (first.status.code, first.certificate_serial_number) == (100, UNSET)
    assert _query(signed) == []  # not issued yet
    done = read()
    assert done.status.code == 200 and _query(signed) == [done.certificate_serial_number]
    assert read().certificate_serial_number == done.certificate_serial_number


def test_a_request_for_a_key_another_subject_holds_is_refused_by_its_status(
    signed: KSeF, ksef_server: ThreadedServer
) -> None:
    # CertificateEnrollmentStatusResponse: "400 | Wniosek odrzucony | Klucz publiczny został już
    # certyfikowany przez inny podmiot."
    key = ec.generate_private_key(ec.SECP256R1())
    _enroll(signed, key, "Authentication")
    _enroll(signed, key, "Offline")  # the same subject may certify its key again
    with signed_in(ksef_server.base_url, self_signed_certificate(OTHER_NIP, kind="seal").certificate.subject,
                   OTHER_NIP) as other:  # fmt: skip
        body = EnrollCertificateRequest.from_dict(
            {"certificateName": "cudzy klucz", "certificateType": "Authentication", "csr": _csr(other, key)}
        )
        ref = parsed(create_enrollment.sync_detailed(client=other.raw, body=body), EnrollCertificateResponse)
        answer = get_enrollment_status.sync_detailed(ref.reference_number, client=other.raw)
        status = parsed(answer, CertificateEnrollmentStatusResponse)
        assert status.status.to_dict() == {
            "code": 400, "description": "Wniosek odrzucony",
            "details": ["Klucz publiczny został już certyfikowany przez inny podmiot."],
        }  # fmt: skip
        assert status.certificate_serial_number is UNSET and _query(other) == []


def test_a_key_certified_under_a_persons_nip_is_hers_under_her_pesel_too(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # "Klucz publiczny został już certyfikowany przez inny podmiot": a person registered with /testdata/person
    # is one subject under her NIP and her PESEL (the spec's "powiązania NIP-PESEL"), so the key she
    # certified under one is not "another subject's" under the other; a stranger's request for it is.
    base = ksef_server.base_url
    with KSeF(base_url=base) as anyone:
        anyone.testdata.create_person(
            {"nip": OTHER_NIP, "pesel": PESEL, "description": "JDG Jan Testowy", "isBailiff": False}
        )
    _let_read_invoices(base, backend, OTHER_NIP, STRANGER_PESEL)
    key = ec.generate_private_key(ec.SECP256R1())
    by_nip = self_signed_certificate(OTHER_NIP, kind="person").certificate.subject  # TINPL-, Jan Testowy
    with signed_in(base, by_nip, OTHER_NIP) as jan:
        made = jan.certificates.enroll("Jan pod NIP", build_csr(jan.certificates.enrollment_data().to_dict(), key))
        assert jan.certificates.wait_enrolled(made.reference_number).status.code == 200
    with signed_in(base, person(PESEL, "Jan", "Testowy"), OTHER_NIP) as by_pesel:
        again = by_pesel.certificates.enroll(
            "Jan pod PESEL", build_csr(by_pesel.certificates.enrollment_data().to_dict(), key)
        )
        assert by_pesel.certificates.wait_enrolled(again.reference_number).status.code == 200
    with signed_in(base, person(STRANGER_PESEL), OTHER_NIP) as stranger:
        refused = stranger.certificates.enroll(
            "cudzy klucz", build_csr(stranger.certificates.enrollment_data().to_dict(), key)
        )
        with pytest.raises(CertificateEnrollmentError) as caught:
            stranger.certificates.wait_enrolled(refused.reference_number)
        assert (caught.value.code, caught.value.details) == (
            400,
            ["Klucz publiczny został już certyfikowany przez inny podmiot."],
        )
