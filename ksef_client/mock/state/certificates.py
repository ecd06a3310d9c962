"""KSeF certificates: enrollment, retrieval, listing, revocation.

A certificate request (PKCS#10 CSR, RSA 2048 or EC P-256) is signed by
the emulator's certificate authority (the key that also signs its UPOs); the certificate can then
be retrieved, listed, revoked, and used for XAdES logins or KOD II links.

Certificates belong to the authenticated subject, not to the login context (certyfikaty-KSeF.md:
a certificate "nie jest przypisany do żadnego kontekstu"; "dany podmiot uwierzytelniony ... ma
dostęp do tego samego zbioru certyfikatów niezależnie od kontekstu"), and are requested only
"we własnym imieniu": with the names of the certificate the caller logged in with.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ksef_client.mock.exceptions import Forbidden, MockAPIError, NotFound
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.state.core import VALIDATION, Access, Core, Status
from ksef_client.mock.state.testdata import TestData

CERTIFICATE_TYPES = ("Authentication", "Offline")


def _signing_key_usage(*, digital_signature: bool, content_commitment: bool) -> x509.KeyUsage:
    """A keyUsage of the two signing bits only (no encipherment, agreement or certificate signing)."""
    return x509.KeyUsage(
        digital_signature, content_commitment, key_encipherment=False, data_encipherment=False, key_agreement=False,
        key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip


# certyfikaty-KSeF.md: "Authentication [...] keyUsage: Digital Signature (80)", "Offline [...] keyUsage:
# Non-Repudiation (40)" (nonRepudiation is X.509's contentCommitment): how a KOD II signer is told from
# a login certificate (as users do, CIRFMF/ksef-api issue 378). The guide does not say whether the
# extension is critical; RFC 5280 4.2.1.3: "When present, conforming CAs SHOULD mark this extension
# as critical."
KEY_USAGE = {
    "Authentication": _signing_key_usage(digital_signature=True, content_commitment=False),
    "Offline": _signing_key_usage(digital_signature=False, content_commitment=True),
}


def _new_serial(issued: int) -> int:
    """A serial number for the certificate of the request ``issued`` requests after the first:
    KSeF's ``certificateSerialNumber`` is 16 hex digits (``^[0-9A-F]{16}$``) with its leading zeros
    (the Ministry's example in kody-qr.md: ``01F20A5D352AE590``). Every other serial (the first
    one's too) starts with a 0, so a serial written without them (``f"{n:X}"``, 15 digits) shows
    up in tests; the others start with 1-7 (63 bits: a positive DER integer of 8 bytes)."""
    if issued % 2 == 0:
        return secrets.randbits(60) | (1 << 56)  # 0 and then 1-F: 01... to 0F...
    return secrets.randbits(63) | (1 << 60)  # 1... to 7...


@dataclass
class KsefCertificate:
    """A certificate the emulator issued (DER kept, so the state pickles)."""

    serial: str
    name: str
    type: str
    subject: tuple[str, str]
    common_name: str
    der: bytes = field(repr=False)
    requested: dt.datetime
    valid_from: dt.datetime
    valid_to: dt.datetime
    status: str = "Active"


@dataclass
class Enrollment:
    """A certificate request (of ``subject``) and its outcome; while it is in progress (100)
    ``pending`` is the certificate it will issue and ``reads_left`` the status reads until then."""

    reference_number: str
    requested: dt.datetime
    status: Status
    serial: str | None = None
    subject: tuple[str, str] = ("", "")
    pending: KsefCertificate | None = None
    reads_left: int = 0


# CertificateEnrollmentStatusResponse.status: "100 | Wniosek przyjęty do realizacji", "200 | Wniosek
# obsłużony (certyfikat wygenerowany)", "400 | Wniosek odrzucony | Klucz publiczny został już
# certyfikowany przez inny podmiot.", "400 | Wniosek odrzucony | Osiągnięto dopuszczalny limit
# posiadanych certyfikatów."
ACCEPTED = Status(100, "Wniosek przyjęty do realizacji")
ISSUED = Status(200, "Wniosek obsłużony (certyfikat wygenerowany)")
KEY_OF_ANOTHER = Status(400, "Wniosek odrzucony", ["Klucz publiczny został już certyfikowany przez inny podmiot."])
LIMIT_REACHED = Status(400, "Wniosek odrzucony", ["Osiągnięto dopuszczalny limit posiadanych certyfikatów."])


# The names a login certificate's subject has, as (OID, value) pairs: what
# /certificates/enrollments/data is read from. ``None``: the caller did not log in with a
# signature (a KSeF token), which may not request certificates.
LoginName = tuple[tuple[str, str], ...]


# certyfikaty-KSeF.md: RSA 2048 or EC P-256 keys; RSA PKCS#1 v1.5, RSA-PSS or ECDSA signatures
# over SHA-1, SHA-256, SHA-384 or SHA-512. The codes are the spec's for POST /certificates/enrollments.
CSR_HASHES = frozenset({"sha1", "sha256", "sha384", "sha512"})
ENROLLMENT_NOT_FOUND = 25005
# certyfikaty-KSeF.md §2, the attributes of the enrollment data: a person's and a company seal's.
ENROLLMENT_FIELDS = {
    "2.5.4.3": "commonName", "2.5.4.4": "surname", "2.5.4.5": "serialNumber", "2.5.4.6": "countryName",
    "2.5.4.10": "organizationName", "2.5.4.42": "givenName", "2.5.4.45": "uniqueIdentifier",
    "2.5.4.97": "organizationIdentifier",
}  # fmt: skip
PERSON_FIELDS = frozenset({"commonName", "surname", "serialNumber", "countryName", "givenName", "uniqueIdentifier"})
SEAL_FIELDS = frozenset({"commonName", "countryName", "organizationName", "uniqueIdentifier", "organizationIdentifier"})
NO_SIGNATURE = "Uwierzytelnienie przy użyciu tokena systemowego KSeF nie pozwala na złożenie wniosku o certyfikat."
NOT_REVOCABLE = 25009
NOT_REVOCABLE_TEXT = "Nie można odwołać wskazanego certyfikatu, ponieważ jest już odwołany, zablokowany lub nieważny."


# The spec's 460 details (GET /auth/{referenceNumber}) for a KSeF certificate that may not log in.
LOGIN_REFUSALS = {
    "Revoked": "Certyfikat odwołany",
    "Blocked": "Certyfikat zawieszony",
    "Expired": "Nieważny certyfikat",
}


def login_problem(certificate: KsefCertificate) -> str | None:
    """Why a KSeF certificate may not log in, or ``None``: revoked or ended (certyfikaty-KSeF.md §8:
    "Po unieważnieniu certyfikat nie może być użyty do dalszego uwierzytelniania"; ``PUT
    /testdata/certificates`` moves its end), or ``Offline``, which "Nie umożliwia uwierzytelnienia"
    (KSeF's detail for that is undocumented: "Niepoprawny certyfikat" is the spec's nearest)."""
    if certificate.type != "Authentication":
        return "Niepoprawny certyfikat"
    return LOGIN_REFUSALS.get(certificate.status)


def _check_names(csr: x509.CertificateSigningRequest, expected: dict[str, str]) -> None:
    """25003 unless the CSR names exactly the enrollment data (certyfikaty-KSeF.md §3: "Zmodyfikowanie
    tych danych spowoduje odrzucenie wniosku")."""
    named = _fields(name_attributes(csr.subject))
    if named != expected:
        differ = sorted(k for k in named.keys() | expected.keys() if named.get(k) != expected.get(k))
        raise MockAPIError(
            25003, "Dane w CSR nie zgadzają się z danymi w użytym wektorze uwierzytelniającym.",
            [f"Różnice w atrybutach: {', '.join(differ)}."],
        )  # fmt: skip


def _csr(raw: str) -> x509.CertificateSigningRequest:
    try:
        data = raw.encode()
        csr = (
            x509.load_pem_x509_csr(data)
            if raw.lstrip().startswith("-----")
            else x509.load_der_x509_csr(base64.b64decode(raw, validate=True))
        )
        signature_valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as error:
        raise MockAPIError(25004, "Niepoprawny format CSR lub niepoprawny podpis CSR.", [str(error)[:300]]) from None
    key = csr.public_key()
    allowed = (isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048) or (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    )
    if not allowed:
        raise MockAPIError(25010, "Nieprawidłowy typ lub długość klucza.", ["Wymagany klucz RSA 2048 albo EC P-256."])
    if _signature_hash(csr) not in CSR_HASHES:
        raise MockAPIError(
            25011, "Nieprawidłowy algorytm podpisu CSR.", ["Dozwolone skróty: SHA-1, SHA-256, SHA-384, SHA-512."]
        )
    if not signature_valid:
        raise MockAPIError(25004, "Niepoprawny format CSR lub niepoprawny podpis CSR.", ["Podpis CSR się nie zgadza."])
    return csr


def name_attributes(name: x509.Name) -> LoginName:
    """``name``'s attributes as (OID, value) pairs, in order."""
    return tuple((a.oid.dotted_string, a.value.hex() if isinstance(a.value, bytes) else str(a.value)) for a in name)


def _fields(attributes: LoginName) -> dict[str, str]:
    """The attributes by their field names in the enrollment data (an attribute the table does not
    name keeps its OID; ``givenName`` may come more than once: the names joined by spaces)."""
    found: dict[str, str] = {}
    for oid, value in attributes:
        key = ENROLLMENT_FIELDS.get(oid, oid)
        found[key] = f"{found[key]} {value}" if key == "givenName" and key in found else value
    return found


def enrollment_data(login: LoginName) -> dict[str, str]:
    """``GET /certificates/enrollments/data`` for a login with a certificate of these names:
    certyfikaty-KSeF.md §2 "Dane te są odczytywane z certyfikatu użytego do uwierzytelnienia",
    a person's attributes or a company seal's.

    Its table gives a person ("Osoba fizyczna") commonName, surname, serialNumber ("np. PESEL,
    NIP"), countryName, givenName, uniqueIdentifier, and organizationName and
    organizationIdentifier ❌; a seal ("Pieczęć firmowa") the reverse. A seal is told as a XAdES
    login tells it (``auth.is_seal_certificate``; auth/podpis-xades.md lists givenName and surname
    among a seal's "Niedopuszczalne atrybuty podmiotu"): an ``organizationIdentifier`` and no given
    name or surname. A person's certificate that also names the employer (its organizationName and
    organizationIdentifier) is the person's, so the request keeps the person's name and NIP or
    PESEL, not the employer's identifier.
    """
    found = _fields(login)
    person = "givenName" in found or "surname" in found
    kept = SEAL_FIELDS if "organizationIdentifier" in found and not person else PERSON_FIELDS
    data = {k: v for k, v in found.items() if k in kept}
    # commonName and countryName are required by the spec's answer: a test certificate may lack them.
    data.setdefault("countryName", "PL")
    fallback = found.get("organizationName") or " ".join(filter(None, (found.get("givenName"), found.get("surname"))))
    data.setdefault("commonName", fallback or found.get("serialNumber") or "KSeF")
    return data


def _signature_hash(csr: x509.CertificateSigningRequest) -> str | None:
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


@dataclass
class CertificatesState:
    """Issued certificates by serial number, and certificate requests by reference number."""

    certificates: dict[str, KsefCertificate] = field(default_factory=dict)
    enrollments: dict[str, Enrollment] = field(default_factory=dict)


class Certificates:
    """The KSeF certificates of one emulator."""

    def __init__(self, core: Core, testdata: TestData) -> None:
        self.core = core
        self.testdata = testdata
        self.state = CertificatesState()

    def limits(self, access: Access) -> dict[str, Any]:
        """``GET /certificates/limits``: what the authenticated subject may still request and hold.

        Counted under the identifier the subject logged in with, as the limits are set
        (``/testdata/limits/subject/certificate`` names a ``subjectIdentifierType``): how KSeF
        counts a person's NIP and PESEL together, if it does, no source says."""
        limits = self.testdata.subject_limits(access.subject)
        most_requests, most_held = limits["enrollment"]["maxEnrollments"], limits["certificate"]["maxCertificates"]
        held = self._held(access.subject)
        requested = self.enrollments_of(access)
        return {
            "canRequest": held < most_held and requested < most_requests,
            "enrollment": {"limit": most_requests, "remaining": max(0, most_requests - requested)},
            "certificate": {"limit": most_held, "remaining": max(0, most_held - held)},
        }

    def _held(self, subject: tuple[str, str]) -> int:
        """How many Active certificates ``subject`` holds (an ended one counts no more)."""
        return sum(
            1
            for c in list(self.state.certificates.values())
            if c.subject == subject and self._aged(c).status == "Active"
        )

    def _owns(self, access: Access, owner: tuple[str, str]) -> bool:
        """Whether a certificate (or a request) of ``owner`` is the authenticated subject's: the
        same identifier, or the other one of a person's NIP and PESEL (``TestData.identities``).

        The spec names the NIP-PESEL link for revocation only (POST
        /certificates/{certificateSerialNumber}/revoke: "Podmiot może unieważnić wyłącznie
        certyfikat wygenerowany na jego identyfikator uwierzytelnienia lub na identyfikator
        powiązany w ramach powiązania NIP-PESEL") and says nothing of who lists (``query``),
        retrieves (``retrieve``) or reads a request's status. The emulator applies the link to all
        of them, its choice: the guide makes the certificates one set of the subject
        (certyfikaty-KSeF.md: "dany podmiot uwierzytelniony (np. osoba identyfikowana przez PESEL)
        ma dostęp do tego samego zbioru certyfikatów niezależnie od kontekstu"; the listing shows
        "certyfikatów wewnętrznych złożonych przez dany podmiot"), the spec treats a person's NIP
        and PESEL as one author of KSeF tokens for listing too (GET /tokens: "z uwzględnieniem
        powiązania NIP-PESEL"), and a certificate one may revoke but not find could not be
        revoked by a caller who has only its name, nor its revoke checked by its status."""
        return owner in self.testdata.identities(access.subject)

    def _check_limits(self, access: Access) -> None:
        limits = self.limits(access)
        if limits["enrollment"]["remaining"] <= 0:
            raise MockAPIError(25006, "Osiągnięto limit możliwych do złożenia wniosków certyfikacyjnych.")
        if limits["certificate"]["remaining"] <= 0:
            raise MockAPIError(25007, "Osiągnięto limit dopuszczalnej liczby posiadanych certyfikatów.")

    @staticmethod
    def enrollment_data(login: LoginName | None) -> dict[str, str]:
        """``GET /certificates/enrollments/data`` of a caller that logged in with a certificate of
        the names ``login`` (a KSeF token login, ``None``: 25001, the spec's code)."""
        if login is None:
            raise MockAPIError(
                25001, "Brak możliwości pobrania danych do CSR dla wykorzystanego sposobu uwierzytelnienia.",
                [NO_SIGNATURE],
            )  # fmt: skip
        return enrollment_data(login)

    def enroll(
        self, access: Access, login: LoginName | None, name: str, kind: str, csr_text: str,
        valid_from: dt.datetime | None,
    ) -> Enrollment:  # fmt: skip
        """Issue a certificate for a CSR at once (status 200 with its serial number) to the
        authenticated subject; the CSR must name exactly what the enrollment data of the login
        certificate ``login`` says (``None``, a KSeF token login: 25002)."""
        if login is None:
            raise MockAPIError(
                25002, "Brak możliwości złożenia wniosku certyfikacyjnego dla wykorzystanego sposobu uwierzytelnienia.",
                [NO_SIGNATURE],
            )  # fmt: skip
        if kind not in CERTIFICATE_TYPES or not name:
            raise MockAPIError(21405, VALIDATION, ["certificateName i certificateType (Authentication|Offline)."])
        csr = _csr(csr_text)
        _check_names(csr, enrollment_data(login))
        self._check_limits(access)
        now = self.core.clock()
        start = valid_from or now
        ca = emulator_keys().upo_signing
        serial = _new_serial(len(self.state.enrollments))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=730))
            .add_extension(KEY_USAGE[kind], critical=True)
            .sign(ca.private_key, hashes.SHA256())
        )
        cn = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        record = KsefCertificate(
            f"{serial:016X}", name, kind, access.subject,
            str(cn[0].value) if cn else name, certificate.public_bytes(serialization.Encoding.DER),
            now, start, start + dt.timedelta(days=730),
        )  # fmt: skip
        enrollment = Enrollment(
            self.core.new_reference_number("CE"), now, ACCEPTED, None, access.subject, record,
            self.core.transitions.enrollment_reads,
        )  # fmt: skip
        with self.core.lock:
            self.state.enrollments[enrollment.reference_number] = enrollment
            if not enrollment.reads_left:
                self._handle(enrollment)
        return enrollment

    def _handle(self, enrollment: Enrollment) -> None:
        """Finish a request: issue its certificate (200), or refuse it (400) when another subject
        holds a certificate of the same public key (the spec's "Klucz publiczny został już
        certyfikowany przez inny podmiot"), or when the subject already holds as many Active
        certificates as its limit allows ("Osiągnięto dopuszczalny limit posiadanych
        certyfikatów": requests in progress are checked against the limit when they are issued,
        so several of them cannot take the subject past it). Called with the lock held."""
        record, enrollment.pending = enrollment.pending, None
        assert record is not None
        key = x509.load_der_x509_certificate(record.der).public_key()
        same = self.testdata.identities(record.subject)
        if any(
            c.subject not in same and x509.load_der_x509_certificate(c.der).public_key() == key
            for c in self.state.certificates.values()
        ):
            enrollment.status = KEY_OF_ANOTHER
            return
        most_held = self.testdata.subject_limits(record.subject)["certificate"]["maxCertificates"]
        if self._held(record.subject) >= most_held:
            enrollment.status = LIMIT_REACHED
            return
        self.state.certificates[record.serial] = record
        enrollment.status, enrollment.serial = ISSUED, record.serial

    def enrollment(self, access: Access, reference_number: str) -> Enrollment:
        """A certificate request of the authenticated subject (NIP-PESEL link included: ``_owns``),
        handled at the read ``transitions.enrollment_reads`` after it was made."""
        found = self.state.enrollments.get(reference_number)
        if found is None or not self._owns(access, found.subject):
            raise NotFound(
                25005, "Wniosek certyfikacyjny o podanym numerze referencyjnym nie istnieje.", [reference_number]
            )
        with self.core.lock:
            if found.pending is not None:
                found.reads_left -= 1
                if found.reads_left <= 0:
                    self._handle(found)
        return found

    def enrollments_of(self, access: Access) -> int:
        """How many certificate requests the authenticated subject made."""
        return sum(1 for e in self.state.enrollments.values() if e.subject == access.subject)

    def certificates_of(
        self, access: Access, *, serial: str | None = None, name: str | None = None, kind: str | None = None,
        status: str | None = None, expires_after: dt.datetime | None = None,
    ) -> list[KsefCertificate]:  # fmt: skip
        """Certificates of the authenticated subject (NIP-PESEL link included: ``_owns``), newest
        request first (``POST /certificates/query``:
        "Sortowanie: requestDate (Desc)"), those matching every filter given: ``serial``, ``kind``,
        ``status`` exactly, ``name`` contained in the certificate's name ("Wyszukiwanie jest
        częściowe"), ``expires_after``: valid past that moment ("wygasają po podanej dacie")."""
        found = [self._aged(c) for c in list(self.state.certificates.values()) if self._owns(access, c.subject)]
        found = [
            c for c in found
            if serial in (None, c.serial) and kind in (None, c.type) and status in (None, c.status)
            and (name is None or name.lower() in c.name.lower())
            and (expires_after is None or c.valid_to > expires_after)
        ]  # fmt: skip
        return sorted(found, key=lambda c: (c.requested, c.serial), reverse=True)

    def certificate(self, access: Access, serial: str) -> KsefCertificate:
        """One certificate of the authenticated subject (NIP-PESEL link included: ``_owns``) by
        serial number (``POST /certificates/retrieve``, revoke); 25008 for any other."""
        found = self.state.certificates.get(serial.upper())
        if found is None or not self._owns(access, found.subject):
            raise NotFound(25008, "Certyfikat o podanym numerze seryjnym nie istnieje.", [serial])
        return self._aged(found)

    def issued(self, certificate: x509.Certificate) -> KsefCertificate | None:
        """The record of ``certificate`` when the emulator issued it (a KSeF certificate), with its
        status as of now; ``None`` for any other certificate."""
        found = self.state.certificates.get(f"{certificate.serial_number:016X}")
        if found is None or found.der != certificate.public_bytes(serialization.Encoding.DER):
            return None
        return self._aged(found)

    def _aged(self, certificate: KsefCertificate) -> KsefCertificate:
        """``certificate``, Expired from the end of its validity on (KSeF lists it so)."""
        if certificate.status == "Active" and certificate.valid_to <= self.core.clock():
            certificate.status = "Expired"
        return certificate

    def revoke(self, access: Access, login: LoginName | None, serial: str) -> None:
        """Revoke a certificate of the authenticated subject (one that is not Active any more: 25009).

        Spec: "Podmiot może unieważnić wyłącznie certyfikat wygenerowany na jego identyfikator
        uwierzytelnienia lub na identyfikator powiązany w ramach powiązania NIP-PESEL" (``_owns``);
        "Operacja nie jest dostępna dla podmiotu uwierzytelnionego tokenem KSeF"
        (no code given: the spec's 403 reason ``auth-method-not-allowed`` says just that).
        """
        if login is None:
            raise Forbidden(
                "Ta operacja nie jest dostępna dla użytej metody uwierzytelnienia.", "auth-method-not-allowed",
                {"authenticationMethodCategory": "Token"},
            )  # fmt: skip
        certificate = self.certificate(access, serial)
        if certificate.status != "Active":
            raise MockAPIError(NOT_REVOCABLE, NOT_REVOCABLE_TEXT, [f"Status certyfikatu: {certificate.status}."])
        certificate.status = "Revoked"

    def set_valid_to(self, access: Access, serial: str, valid_to: dt.datetime) -> None:
        """``PUT /testdata/certificates/{serial}``: move a certificate's expiry (TEST only)."""
        self.certificate(access, serial).valid_to = valid_to
