"""KSeF certificates and collective identifiers in the emulator, through the generated client."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
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
from ksef_client.identifiers import checksum
from ksef_client.mock import KSeFBackend
from ksef_client.mock.app import create_app  # noqa: F401 - importing the app registers every route
from ksef_client.mock.responses import REGISTRY
from ksef_client.mock.server import ThreadedServer
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


def _enroll(ksef: KSeF, key: ec.EllipticCurvePrivateKey, kind: str) -> tuple[str, x509.Certificate]:
    body = EnrollCertificateRequest.from_dict({"certificateName": f"{kind} key", "certificateType": kind,
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
