"""KSeF certificates and collective identifiers in the emulator, through the generated client."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ksef_client import KSeF, qr
from ksef_client._core import parsed
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
from ksef_client.errors import BadRequestError
from ksef_client.identifiers import checksum
from ksef_client.mock import KSeFBackend
from ksef_client.mock.app import create_app  # noqa: F401 - importing the app registers every route
from ksef_client.mock.responses import REGISTRY
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.core import Context
from ksef_client.testing import sample_invoice
from ksef_client.xades import SigningCredentials
from tests.conftest import NIP


def test_every_operation_of_the_spec_has_an_endpoint() -> None:
    assert sorted(OPERATIONS) == sorted(REGISTRY)


def _csr(ksef: KSeF, key: ec.EllipticCurvePrivateKey) -> str:
    data = parsed(get_enrollment_data.sync_detailed(client=ksef.raw), CertificateEnrollmentDataResponse)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, data.common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(data.organization_name)),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, str(data.organization_identifier)),
            x509.NameAttribute(NameOID.COUNTRY_NAME, data.country_name),
        ]
    )
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


def test_enrolled_certificates_log_in_and_sign_kod_ii(ksef: KSeF, backend: KSeFBackend,
                                                      ksef_server: ThreadedServer) -> None:  # fmt: skip
    auth_key, offline_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _, auth_cert = _enroll(ksef, auth_key, "Authentication")
    offline_serial, offline_cert = _enroll(ksef, offline_key, "Offline")
    with KSeF(base_url=ksef_server.base_url) as seal:  # the KSeF certificate is a seal of the NIP
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


def _query(ksef: KSeF, **filters: str) -> list[str]:
    body = QueryCertificatesRequest.from_dict(filters)
    found = parsed(query_certificates.sync_detailed(client=ksef.raw, body=body), QueryCertificatesResponse)
    return [c.certificate_serial_number for c in found.certificates]


def test_the_certificate_query_lists_newest_first_and_filters_by_expiry_and_name(
    ksef: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def test_certificate_requests_are_refused_with_the_spec_s_codes(ksef: KSeF) -> None:
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


def test_unknown_requests_and_certificates_and_a_second_revocation_have_their_codes(ksef: KSeF) -> None:
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
    ksef: KSeF, backend: KSeFBackend
) -> None:
    context = Context("Nip", NIP)
    backend.testdata.set_subject_limits(context, {"certificate": {"maxCertificates": 1}, "enrollment": None})
    assert ksef.limits.subject().to_dict() == {
        "enrollment": {"maxEnrollments": 300},
        "certificate": {"maxCertificates": 1},
    }
    _enroll(ksef, ec.generate_private_key(ec.SECP256R1()), "Authentication")
    key = ec.generate_private_key(ec.SECP256R1())
    assert _refused_with(ksef, _csr(ksef, key)) == [25007]
    backend.testdata.set_subject_limits(context, {"enrollment": {"maxEnrollments": 1}})
    assert _refused_with(ksef, _csr(ksef, key)) == [25006]
    backend.testdata.set_subject_limits(context, None)
    assert ksef.limits.subject().to_dict() == {
        "enrollment": {"maxEnrollments": 300},
        "certificate": {"maxCertificates": 100},
    }
    _enroll(ksef, key, "Offline")
