"""KSeF certificates and collective identifiers in the emulator.

Mixed into ``KSeFBackend``. A certificate request (PKCS#10 CSR, RSA 2048 or EC P-256) is signed by
the emulator's certificate authority (the key that also signs its UPOs); the certificate can then
be retrieved, listed, revoked, and used for XAdES logins or KOD II links. Collective identifiers
group invoices of one seller.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ksef_client.identifiers import checksum
from ksef_client.mock.auth import Access, Context, Status
from ksef_client.mock.exceptions import MockAPIError, NotFound
from ksef_client.mock.keys import emulator_keys

_VALIDATION = "Błąd walidacji danych wejściowych."
CERTIFICATE_TYPES = ("Authentication", "Offline")
MAX_COLLECTIVE_QUERY = 10  # identifiers per POST /collective-identifiers/invoices


@dataclass
class KsefCertificate:
    """A certificate the emulator issued (DER kept, so the state pickles)."""

    serial: str
    name: str
    type: str
    context: Context
    subject: tuple[str, str]
    common_name: str
    der: bytes = field(repr=False)
    requested: dt.datetime
    valid_from: dt.datetime
    valid_to: dt.datetime
    status: str = "Active"


@dataclass
class Enrollment:
    """A certificate request and its outcome."""

    reference_number: str
    context: Context
    requested: dt.datetime
    status: Status
    serial: str | None = None


@dataclass
class CollectiveIdentifier:
    """A collective identifier and the invoices it groups."""

    number: str
    context: Context
    created: dt.datetime
    invoices: list[dict[str, object]]


def _csr(raw: str) -> x509.CertificateSigningRequest:
    try:
        data = raw.encode()
        csr = (
            x509.load_pem_x509_csr(data)
            if raw.lstrip().startswith("-----")
            else x509.load_der_x509_csr(base64.b64decode(raw, validate=True))
        )
    except ValueError as error:
        raise MockAPIError(21405, _VALIDATION, [f"csr: nieczytelny wniosek PKCS#10 ({error})."]) from None
    key = csr.public_key()
    allowed = (isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048) or (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    )
    if not allowed or not csr.is_signature_valid:
        raise MockAPIError(21405, _VALIDATION, ["csr: wymagany podpisany klucz RSA 2048 albo EC P-256."])
    return csr


class CertificateOperations:
    """Mixin of ``KSeFBackend``: KSeF certificates and collective identifiers."""

    clock: Callable[[], dt.datetime]
    lock: threading.RLock

    def new_reference_number(self, kind: str) -> str:  # pragma: no cover - KSeFBackend
        raise NotImplementedError

    def caller_subject(self, access: Access) -> tuple[str, str]:  # pragma: no cover - PermissionOperations
        raise NotImplementedError

    def is_party(self, nip: str | None, ksef_number: str) -> bool:  # pragma: no cover - InvoiceOperations
        raise NotImplementedError

    def context_limits(self, context: Context) -> dict[str, dict[str, int]]:  # pragma: no cover - KSeFBackend
        raise NotImplementedError

    def _reset_certificates(self) -> None:
        self.ksef_certificates: dict[str, KsefCertificate] = {}
        self.enrollments: dict[str, Enrollment] = {}
        self.collective_identifiers: dict[str, CollectiveIdentifier] = {}

    def enroll(self, access: Access, name: str, kind: str, csr_text: str, valid_from: dt.datetime | None) -> Enrollment:
        """Issue a certificate for a CSR at once (status 200 with its serial number)."""
        if kind not in CERTIFICATE_TYPES or not name:
            raise MockAPIError(21405, _VALIDATION, ["certificateName i certificateType (Authentication|Offline)."])
        csr = _csr(csr_text)
        now = self.clock()
        start = valid_from or now
        ca = emulator_keys().upo_signing
        serial = secrets.randbits(63) | (1 << 62)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=730))
            .sign(ca.private_key, hashes.SHA256())
        )
        cn = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        record = KsefCertificate(
            f"{serial:016X}", name, kind, access.context, self.caller_subject(access),
            str(cn[0].value) if cn else name, certificate.public_bytes(serialization.Encoding.DER),
            now, start, start + dt.timedelta(days=730),
        )  # fmt: skip
        enrollment = Enrollment(
            self.new_reference_number("CE"), access.context, now, Status(200, "Wniosek przetworzony"), record.serial
        )
        with self.lock:
            self.ksef_certificates[record.serial] = record
            self.enrollments[enrollment.reference_number] = enrollment
        return enrollment

    def enrollment(self, access: Access, reference_number: str) -> Enrollment:
        """A certificate request of the caller's context."""
        found = self.enrollments.get(reference_number)
        if found is None or found.context != access.context:
            raise NotFound(25001, "Wniosek certyfikacyjny nie istnieje.", [reference_number])
        return found

    def certificates_of(self, access: Access) -> list[KsefCertificate]:
        """Certificates issued in the caller's context, oldest first."""
        now = self.clock()
        found = [c for c in self.ksef_certificates.values() if c.context == access.context]
        for certificate in found:
            if certificate.status == "Active" and certificate.valid_to <= now:
                certificate.status = "Expired"
        return sorted(found, key=lambda c: (c.requested, c.serial))

    def certificate(self, access: Access, serial: str) -> KsefCertificate:
        """One certificate of the caller's context by serial number."""
        found = self.ksef_certificates.get(serial.upper())
        if found is None or found.context != access.context:
            raise NotFound(25002, "Certyfikat nie istnieje.", [serial])
        return found

    # --- collective identifiers ----------------------------------------------------------------

    def create_collective_identifier(self, access: Access, invoices: list[dict[str, object]]) -> CollectiveIdentifier:
        """Group invoices of one seller (2 to the context's limit, 500 by default) under a new identifier."""
        numbers = [str(i.get("ksefNumber", "")) for i in invoices]
        sellers = {n[:10] for n in numbers}
        most = self.context_limits(access.context)["collectiveIdentifier"]["maxInvoices"]
        if not 2 <= len(numbers) <= most or len(sellers) != 1:
            raise MockAPIError(21405, _VALIDATION, [f"invoices: 2-{most} faktur jednego sprzedawcy."])
        now = self.clock()
        prefix = f"{sellers.pop()}-IZ{now:%Y%m}-{secrets.token_hex(6).upper()}"
        identifier = CollectiveIdentifier(f"{prefix}-{checksum(prefix)}", access.context, now, list(invoices))
        with self.lock:
            self.collective_identifiers[identifier.number] = identifier
        return identifier

    def collective_identifier_invoices(self, access: Access, numbers: list[str]) -> list[dict[str, object]]:
        """The invoices of up to 10 identifiers, KSeF number descending (``POST /collective-identifiers/invoices``).

        Description and payment are shown to the context that created the identifier and to the
        parties of the invoice; anyone else gets ``detailsHidden: true`` where they were given.
        """
        if not numbers or len(numbers) > MAX_COLLECTIVE_QUERY:
            raise MockAPIError(21405, _VALIDATION, [f"collectiveIdentifierNumbers: 1-{MAX_COLLECTIVE_QUERY} numerów."])
        nip = access.context.nip
        items = []
        for number in dict.fromkeys(numbers):
            found = self.collective_identifiers.get(number)
            if found is None:
                continue
            for invoice in found.invoices:
                ksef_number = str(invoice["ksefNumber"])
                item: dict[str, object] = {"ksefNumber": ksef_number, "collectiveIdentifierNumber": number}
                details = {k: invoice[k] for k in ("description", "payment") if invoice.get(k) is not None}
                visible = found.context == access.context or self.is_party(nip, ksef_number)
                item["detailsHidden"] = bool(details) and not visible
                if visible:
                    item.update(details)
                items.append(item)
        items.sort(key=lambda i: (str(i["ksefNumber"]), str(i["collectiveIdentifierNumber"])), reverse=True)
        return items
