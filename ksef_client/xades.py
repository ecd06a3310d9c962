"""XAdES authentication documents: build and sign ``AuthTokenRequest``, verify it (emulator side).

signxml does the XML-DSig work. The signature is enveloped XAdES-BES with SHA-256 and inclusive
C14N 1.0: KSeF's verifier is .NET, which knows C14N 1.0 but not C14N 1.1 (signxml's default), and
signxml's exclusive C14N breaks the digest of its own SignedProperties.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from ksef_client._xml import declares_entities, parse

AUTH_NAMESPACE = "http://ksef.mf.gov.pl/auth/token/2.0"
AUTH_NAMESPACES = (AUTH_NAMESPACE, "http://ksef.mf.gov.pl/auth/token/2.1")
DSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
C14N_1_0 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
CONTEXT_TYPES = ("Nip", "InternalId", "NipVatUe", "PeppolId")
SUBJECT_IDENTIFIER_TYPES = ("certificateSubject", "certificateFingerprint")
# Public-key methods only: an HMAC "signature" proves nothing about the certificate.
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
_ACCEPTED = XAdESSignatureConfiguration(
    expect_references=True,
    signature_methods=frozenset(
        {
            SignatureMethod.RSA_SHA256,
            SignatureMethod.RSA_SHA384,
            SignatureMethod.RSA_SHA512,
            SignatureMethod.SHA256_RSA_MGF1,
            SignatureMethod.SHA384_RSA_MGF1,
            SignatureMethod.SHA512_RSA_MGF1,
            SignatureMethod.ECDSA_SHA256,
            SignatureMethod.ECDSA_SHA384,
            SignatureMethod.ECDSA_SHA512,
        }
    ),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}),
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningCredentials:
    """A certificate and its private key (RSA >= 2048 or EC P-256); the key is never shown."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
            raise ValueError("signing key: KSeF needs RSA keys of at least 2048 bits")
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size < 256:
            raise ValueError("signing key: KSeF needs EC keys of at least 256 bits")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("signing key: only RSA and EC keys are supported")
        _check_key_matches(self.certificate, key)

    @classmethod
    def from_pem(
        cls, certificate: bytes | str | Path, private_key: bytes | str | Path, password: bytes | str | None = None
    ) -> SigningCredentials:
        """From PEM data or PEM files (the key may be password-protected)."""
        cert = x509.load_pem_x509_certificate(_read(certificate))
        key = load_pem_private_key(_read(private_key), _bytes(password))
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("private_key: only RSA and EC keys are supported")
        return cls(cert, key)

    @classmethod
    def from_pkcs12(cls, data: bytes | str | Path, password: bytes | str | None = None) -> SigningCredentials:
        """From a PKCS#12 (.p12/.pfx) file or its bytes."""
        key, cert, _ = pkcs12.load_key_and_certificates(_read(data), _bytes(password))
        if cert is None or key is None:
            raise ValueError("PKCS#12: the file holds no certificate with its private key")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("PKCS#12: only RSA and EC keys are supported")
        return cls(cert, key)


def _check_key_matches(certificate: x509.Certificate, key: PrivateKey) -> None:
    """Refuse a key that is not the certificate's: KSeF would answer such a signature only with
    its generic 9105 "Nieprawidłowy podpis", after a challenge round-trip.

    Only the public half is compared (public numbers: the type, the curve, the values), which a
    key held on a device (a smart card, an HSM: an ``RSAPrivateKey``/``EllipticCurvePrivateKey``
    subclass whose private half cannot be read) also gives."""
    expected = certificate.public_key()
    try:
        public = key.public_key()
    except NotImplementedError:  # a device key that cannot even show its public half: signing may still work
        return
    if isinstance(expected, rsa.RSAPublicKey) and isinstance(public, rsa.RSAPublicKey):
        same = public.public_numbers() == expected.public_numbers()
    elif isinstance(expected, ec.EllipticCurvePublicKey) and isinstance(public, ec.EllipticCurvePublicKey):
        same = public.public_numbers() == expected.public_numbers()  # the curve is part of them
    else:
        raise ValueError(f"private_key: an {_kind(public)} key, but the certificate's key is {_kind(expected)}")
    if not same:
        raise ValueError(
            "private_key: it is not the key of this certificate (its public key differs from the"
            " certificate's; another certificate's key?)"
        )


def _kind(public_key: object) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC"
    return type(public_key).__name__


def _read(value: bytes | str | Path) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    return Path(value).read_bytes()


def _bytes(password: bytes | str | None) -> bytes | None:
    return password.encode() if isinstance(password, str) else password


def build_auth_token_request(
    challenge: str, context_type: str, context_value: str, subject_identifier_type: str = "certificateSubject"
) -> etree._Element:
    """The unsigned ``AuthTokenRequest`` document."""
    if context_type not in CONTEXT_TYPES:
        raise ValueError(f"context_type: {context_type!r} is not one of {', '.join(CONTEXT_TYPES)}")
    if subject_identifier_type not in SUBJECT_IDENTIFIER_TYPES:
        raise ValueError(
            f"subject_identifier_type: {subject_identifier_type!r} is not one of {SUBJECT_IDENTIFIER_TYPES}"
        )
    ns = "{%s}" % AUTH_NAMESPACE  # noqa: UP031 - lxml's Clark notation
    root = etree.Element(ns + "AuthTokenRequest", nsmap={None: AUTH_NAMESPACE})  # type: ignore[dict-item]
    etree.SubElement(root, ns + "Challenge").text = challenge
    context = etree.SubElement(root, ns + "ContextIdentifier")
    etree.SubElement(context, ns + context_type).text = context_value
    etree.SubElement(root, ns + "SubjectIdentifierType").text = subject_identifier_type
    return root


def sign_xades(document: etree._Element, credentials: SigningCredentials) -> bytes:
    """Enveloped XAdES-BES signature (SHA-256) with the signer's certificate embedded."""
    method = (
        SignatureMethod.RSA_SHA256
        if isinstance(credentials.private_key, rsa.RSAPrivateKey)
        else SignatureMethod.ECDSA_SHA256
    )
    signer = XAdESSigner(signature_algorithm=method, digest_algorithm=DigestAlgorithm.SHA256, c14n_algorithm=C14N_1_0)
    signed = signer.sign(document, key=credentials.private_key, cert=[credentials.certificate])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def signed_auth_token_request(
    challenge: str,
    context_type: str,
    context_value: str,
    credentials: SigningCredentials,
    subject_identifier_type: str = "certificateSubject",
) -> bytes:
    """The signed document for ``POST /auth/xades-signature``."""
    document = build_auth_token_request(challenge, context_type, context_value, subject_identifier_type)
    return sign_xades(document, credentials)


class SignatureVerificationError(ValueError):
    """The XAdES signature is missing, malformed or does not verify."""


@dataclass(frozen=True)
class VerifiedDocument:
    """A verified signed document: its signed content and the signer's certificate."""

    root: etree._Element
    certificate: x509.Certificate


def embedded_certificate(xml: bytes) -> x509.Certificate:
    """The signer's certificate from ``ds:KeyInfo``."""
    root = parse(xml)
    found = root.find(f".//{{{DSIG_NAMESPACE}}}X509Certificate")
    if found is None or not found.text:
        raise SignatureVerificationError("no X509Certificate in the signature's KeyInfo")
    return x509.load_der_x509_certificate(base64.b64decode("".join(found.text.split())))


def verify_xades(xml: bytes, certificate: x509.Certificate | None = None) -> VerifiedDocument:
    """Verify an enveloped XAdES signature against ``certificate`` (default: the embedded one).

    Trusting the embedded certificate accepts self-signed certificates, as KSeF's TEST does;
    the caller decides whether that certificate identifies someone allowed to act.
    """
    if declares_entities(xml):
        raise SignatureVerificationError("documents with a DTD are refused")
    try:
        cert = certificate or embedded_certificate(xml)
        results = _verifier().verify(xml, x509_cert=cert, expect_config=_ACCEPTED)
    except (InvalidInput, InvalidSignature, etree.XMLSyntaxError, ValueError) as error:
        if isinstance(error, SignatureVerificationError):
            raise
        raise SignatureVerificationError(f"{type(error).__name__}: {error}") from error
    document = _unsigned_canonical(parse(xml))
    for result in results:
        if result.signed_xml is not None and _canonical(result.signed_xml) == document:
            return VerifiedDocument(result.signed_xml, cert)
    raise SignatureVerificationError("the signature does not cover the whole document (enveloped reference missing)")


def _verifier() -> XAdESVerifier:
    """A verifier that also reads signatures in the default namespace (``<Signature xmlns=...>``,
    as .NET's ``SignedXml`` writes them: the official C# client, the Ministry's test app): lxml's
    canonical form of SignedInfo then carries a stray ``xmlns=""`` on inner elements, and every
    such signature read as invalid (signxml issues 193 and 275); xmlsec1 verifies them."""
    verifier = XAdESVerifier()
    verifier.excise_empty_xmlns_declarations = True
    return verifier


def _unsigned_canonical(root: etree._Element) -> bytes:
    """The document as an enveloped signature over it signs it: canonical, its own ``Signature``
    taken out. A verified reference must sign exactly this: a reference to some other element
    (by ``Id``, moved into the signature or elsewhere) would let a forged document around it pass
    as signed (signature wrapping)."""
    for signature in root.findall(f"{{{_DSIG}}}Signature"):
        tail = signature.tail
        previous = signature.getprevious()
        root.remove(signature)  # lxml drops the tail with the element; the transform keeps it
        if tail:
            if previous is not None:
                previous.tail = (previous.tail or "") + tail
            else:
                root.text = (root.text or "") + tail
    return _canonical(root)


def _canonical(element: etree._Element) -> bytes:
    # Exclusive and without comments: what is signed, whichever canonical form the reference used.
    return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))
