"""Certificate requests (PKCS#10 CSRs) for KSeF certificates: the key, the subject, the checks.

What certyfikaty-KSeF.md §3 ("Przygotowanie CSR") and the spec's ``POST /certificates/enrollments``
allow: keys "RSA (OID: 1.2.840.113549.1.1.1), długość klucza: 2048 bitów" or "EC [...] krzywa NIST
P-256 (secp256r1)" ("Zalecane jest stosowanie kluczy EC"); signatures RSA PKCS#1 v1.5, RSA-PSS or
ECDSA over "SHA1, SHA256, SHA384, SHA512". The subject must carry exactly the attributes
``GET /certificates/enrollments/data`` returned: "Zmodyfikowanie tych danych spowoduje odrzucenie
wniosku" (25003). ``ksef.certificates.obtain`` does all of it; these are its parts, for a key
made elsewhere (a device, an HSM).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ksef_client.xades import PrivateKey

KEY_TYPES = ("EC", "RSA")  # EC first: the guide's recommendation
# The guide's table of the enrollment data's attributes (certyfikaty-KSeF.md §2), in the order the
# Ministry's own example CSR (the spec's example of POST /certificates/enrollments) names them.
SUBJECT_ATTRIBUTES = {
    "commonName": NameOID.COMMON_NAME,
    "surname": NameOID.SURNAME,
    "givenName": NameOID.GIVEN_NAME,
    "organizationName": NameOID.ORGANIZATION_NAME,
    "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
    "countryName": NameOID.COUNTRY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "uniqueIdentifier": NameOID.X500_UNIQUE_IDENTIFIER,
}
CSR_HASHES = frozenset({"sha1", "sha256", "sha384", "sha512"})


def generate_private_key(key_type: str = "EC") -> PrivateKey:
    """A new private key KSeF certifies: ``"EC"`` (P-256, the guide's recommendation) or ``"RSA"``
    (2048 bits, the only RSA size the guide allows). It stays in this process."""
    if key_type == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type: {key_type!r} is not one of {list(KEY_TYPES)} (RSA 2048 or EC P-256)")


def check_key(public_key: object) -> None:
    """``ValueError`` unless ``public_key`` is one KSeF certifies: RSA of exactly 2048 bits or EC
    P-256 (KSeF refuses others with 25010, "Nieprawidłowy typ lub długość klucza")."""
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048:
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return
    raise ValueError(
        "csr: KSeF certifies RSA keys of exactly 2048 bits or EC keys on P-256 (secp256r1) only"
        f" (certyfikaty-KSeF.md §3), not {_describe(public_key)}"
    )


def check_private_key(key: object) -> None:
    """``ValueError`` unless ``key`` is a private key KSeF certifies (as ``check_key``), named
    ``key`` (``certificates.obtain(key=...)``)."""
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"key: an RSA 2048 or EC P-256 private key (cryptography), not {type(key).__name__}")
    try:
        check_key(key.public_key())
    except ValueError as error:
        raise ValueError(str(error).replace("csr: ", "key: ", 1)) from None


def _describe(public_key: object) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    return type(public_key).__name__


def certificate_subject(enrollment_data: Mapping[str, object]) -> x509.Name:
    """The CSR's subject: exactly the attributes of ``enrollment_data`` (the JSON names of
    ``GET /certificates/enrollments/data``'s answer, as its ``to_dict()`` gives them), none added.

    The string types are those of the Ministry's example CSR (PrintableString for ``countryName``
    and ``serialNumber``, UTF8String for the rest); a list of values (``givenName``) gives one
    attribute each, in its order. An attribute the guide's table does not name
    cannot be placed: ``ValueError`` (KSeF would refuse a CSR without it, 25003)."""
    unknown = sorted(k for k, v in enrollment_data.items() if v is not None and k not in SUBJECT_ATTRIBUTES)
    if unknown:
        raise ValueError(f"enrollment data: attributes this SDK cannot put in a CSR: {unknown}")
    return x509.Name(
        [
            x509.NameAttribute(oid, str(value))
            for key, oid in SUBJECT_ATTRIBUTES.items()
            for value in _values(enrollment_data.get(key))
        ]
    )


def _values(value: object) -> list[object]:
    """An attribute's values: "Atrybut givenName może pojawić się wielokrotnie i zwracany jest w
    postaci listy wartości" (certyfikaty-KSeF.md §2; the spec types it a string): one attribute each."""
    values = value if isinstance(value, list) else [value]
    return [v for v in values if v not in (None, "")]


def build_csr(enrollment_data: Mapping[str, object], private_key: PrivateKey) -> x509.CertificateSigningRequest:
    """A CSR of ``private_key`` (checked by ``check_key``) whose subject is ``enrollment_data``'s
    attributes (``certificate_subject``), signed with SHA-256 (PKCS#1 v1.5 or ECDSA)."""
    check_key(private_key.public_key())
    builder = x509.CertificateSigningRequestBuilder().subject_name(certificate_subject(enrollment_data))
    return builder.sign(private_key, hashes.SHA256())


def check_csr(csr: x509.CertificateSigningRequest) -> None:
    """``ValueError`` for a CSR KSeF refuses on its form: a key ``check_key`` refuses (25010), a
    signature hash outside SHA-1/256/384/512 (25011), a signature its key did not make (25004)."""
    check_key(csr.public_key())
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if algorithm is None or algorithm.name not in CSR_HASHES:
        raise ValueError(
            f"csr: signed with {getattr(algorithm, 'name', 'an unknown hash')}; KSeF takes SHA-1/256/384/512"
        )
    if not csr.is_signature_valid:
        raise ValueError("csr: its signature was not made by its key")


def load_csr(csr: x509.CertificateSigningRequest | bytes | str) -> x509.CertificateSigningRequest:
    """A CSR object from itself, DER bytes, or PEM text/bytes (``ValueError`` if it is none)."""
    if isinstance(csr, x509.CertificateSigningRequest):
        return csr
    data = csr.encode() if isinstance(csr, str) else csr
    try:
        return x509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_csr(data)
    except ValueError as error:
        raise ValueError(f"csr: not a PKCS#10 request in DER or PEM ({error})") from None


def csr_base64(csr: x509.CertificateSigningRequest) -> str:
    """The CSR as POST /certificates/enrollments takes it: "PKCS#10 (CSR) w formacie DER,
    zakodowany w formacie Base64"."""
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode("ascii")
