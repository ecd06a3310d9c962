"""The emulator's reading of a signed ``AuthTokenRequest``: every signature form, algorithm and key
the Ministry's guide accepts, each checked to sign the whole document.

auth/podpis-xades.md: "Dopuszczalne formaty podpisu: otaczany (enveloped), otaczający (enveloping)"
and, among the accepted transforms, "http://www.w3.org/TR/1999/REC-xpath-19991116 -
not(ancestor-or-self::ds:Signature)" and "http://www.w3.org/2002/06/xmldsig-filter2". Every form
is read here with the same guard against signature wrapping: what is signed must be the whole
``AuthTokenRequest``, and only the signed bytes are read.

The document's one signature is found first (the spec's 400 table for POST /auth/xades-signature:
"9102 | Brak podpisu.", "9103 | Przekroczona liczba dozwolonych podpisów."), then its signer's
certificate among those of its ``KeyInfo`` and the certificate's key (``check_signing_key``), then
the signature with the guide's algorithms (``AUTH_ALGORITHMS``). ``ksef_client.xades.verify_xades``
(the SDK's, shared with UPO checks) keeps its narrower SHA-2 list: only the login takes what the
guide accepts.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod, digest_algorithm_implementations
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.xades.xades import XAdESVerifier

from ksef_client._xml import declares_entities, parse
from ksef_client.xades import (
    _ACCEPTED,
    _DSIG,
    SignatureVerificationError,
    VerifiedDocument,
    _canonical,
    _unsigned_canonical,
)

XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
_NOT_IN_SIGNATURE = re.compile(r"not\(ancestor-or-self::(?:(?P<prefix>[\w.-]+):)?Signature\)")
_SIGNATURE = f"{{{_DSIG}}}Signature"
_X509_CERTIFICATES = f"{{{_DSIG}}}KeyInfo/{{{_DSIG}}}X509Data/{{{_DSIG}}}X509Certificate"

# auth/podpis-xades.md, "Algorytm podpisu SignedInfo (ds:SignatureMethod)": RSASSA-PKCS1-v1_5
# rsa-sha1, rsa-sha256, rsa-sha384, rsa-sha512; RSASSA-PSS sha1-rsa-MGF1, sha256-, sha384-,
# sha512-rsa-MGF1, sha3-256-, sha3-384-, sha3-512-rsa-MGF1; ECDSA ecdsa-sha1, ecdsa-sha256,
# ecdsa-sha384, ecdsa-sha512, ecdsa-sha3-256, ecdsa-sha3-384, ecdsa-sha3-512. "Algorytmy skrótu w
# referencjach (DigestMethod)": sha1, sha256, sha384, sha512, sha3-256, sha3-384, sha3-512. signxml
# leaves the SHA-1 ones out of its defaults ("disabled by default", its SHA1 deprecation note) and
# verifies them when the configuration lists them, as here: KSeF accepts them, so a login signed by
# older signing middleware passes on TEST and must pass here. SHA-224 and the SHA3-224 variants,
# which the guide does not list, stay refused (9105).
AUTH_ALGORITHMS = dataclasses.replace(
    _ACCEPTED,
    signature_methods=frozenset(
        {
            SignatureMethod.RSA_SHA1,
            SignatureMethod.RSA_SHA256,
            SignatureMethod.RSA_SHA384,
            SignatureMethod.RSA_SHA512,
            SignatureMethod.SHA1_RSA_MGF1,
            SignatureMethod.SHA256_RSA_MGF1,
            SignatureMethod.SHA384_RSA_MGF1,
            SignatureMethod.SHA512_RSA_MGF1,
            SignatureMethod.SHA3_256_RSA_MGF1,
            SignatureMethod.SHA3_384_RSA_MGF1,
            SignatureMethod.SHA3_512_RSA_MGF1,
            SignatureMethod.ECDSA_SHA1,
            SignatureMethod.ECDSA_SHA256,
            SignatureMethod.ECDSA_SHA384,
            SignatureMethod.ECDSA_SHA512,
            SignatureMethod.ECDSA_SHA3_256,
            SignatureMethod.ECDSA_SHA3_384,
            SignatureMethod.ECDSA_SHA3_512,
        }
    ),
    digest_algorithms=frozenset(
        {
            DigestAlgorithm.SHA1,
            DigestAlgorithm.SHA256,
            DigestAlgorithm.SHA384,
            DigestAlgorithm.SHA512,
            DigestAlgorithm.SHA3_256,
            DigestAlgorithm.SHA3_384,
            DigestAlgorithm.SHA3_512,
        }
    ),
)
# auth/podpis-xades.md: RSASSA-PKCS1-v1_5 and RSASSA-PSS "Minimalna długość klucza: 2048 bitów";
# ECDSA "Minimalny rozmiar krzywej: 256 bitów".
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


class AuthSignatureError(SignatureVerificationError):
    """A signed ``AuthTokenRequest`` refused with a code of its own (not the generic 9105)."""

    code = 9105
    description = "Nieprawidłowy podpis."


class NoSignature(AuthSignatureError):
    """The document carries no ``ds:Signature``: the spec's "9102 | Brak podpisu."."""

    code, description = 9102, "Brak podpisu."


class TooManySignatures(AuthSignatureError):
    """More than one signature (countersignatures inside a signature not counted): the spec's
    "9103 | Przekroczona liczba dozwolonych podpisów."."""

    code, description = 9103, "Przekroczona liczba dozwolonych podpisów."


class WeakSigningKey(AuthSignatureError):
    """The signer's key is weaker than the guide allows (``check_signing_key``).

    KSeF's code for it is not documented. The spec's 400 table for POST /auth/xades-signature has
    one code for the certificate itself, "21115 | Nieprawidłowy certyfikat.", and the guide states
    the minimum as a property of the key (the certificate's), not of the signature value (9105).
    """

    code, description = 21115, "Nieprawidłowy certyfikat."


def verify_auth_document(xml: bytes) -> VerifiedDocument:
    """Verify a signed ``AuthTokenRequest`` in any form the guide accepts; the verified document is
    the signed ``AuthTokenRequest`` (read from the signed bytes) and the signer's certificate.

    ``NoSignature`` (9102), ``TooManySignatures`` (9103) and ``WeakSigningKey`` (21115) for what the
    spec or the guide names; ``SignatureVerificationError`` when it does not verify, or the signature
    does not cover the whole ``AuthTokenRequest`` (signature wrapping).
    """
    if declares_entities(xml):
        raise SignatureVerificationError("documents with a DTD are refused")
    try:
        root = parse(xml)
    except (etree.XMLSyntaxError, ValueError) as error:
        raise SignatureVerificationError(f"{type(error).__name__}: {error}") from error
    signature = the_signature(root)
    certificate = signing_certificate(signature)
    check_signing_key(certificate)
    return _verify(xml, root, certificate)


def the_signature(root: etree._Element) -> etree._Element:
    """The document's one signature: ``NoSignature`` without one, ``TooManySignatures`` with more.

    Signatures inside a signature (XAdES countersignatures, in its unsigned properties) are part
    of it and are not counted.
    """
    found = [
        element
        for element in root.iter(_SIGNATURE)
        if not any(ancestor.tag == _SIGNATURE for ancestor in element.iterancestors())
    ]
    if not found:
        raise NoSignature("the document carries no ds:Signature")
    if len(found) > 1:
        raise TooManySignatures(f"the document carries {len(found)} signatures; one is allowed")
    return found[0]


def signing_certificate(signature: etree._Element) -> x509.Certificate:
    """The signer's certificate among those of the signature's ``KeyInfo/X509Data``, found as a
    XAdES verifier finds it: the one whose digest the signed ``SigningCertificate`` (or
    ``SigningCertificateV2``) names first (EN 319 132-1: its first ``Cert`` is the signing
    certificate's); without such a match, the chain's end entity (the one that issued none of the
    others). ``KeyInfo`` is not signed, so a chain may list its CA first."""
    certificates = []
    for element in signature.iterfind(_X509_CERTIFICATES):
        try:
            certificates.append(x509.load_der_x509_certificate(base64.b64decode("".join((element.text or "").split()))))
        except ValueError as error:
            raise SignatureVerificationError(f"X509Certificate: not a DER certificate ({error})") from error
    if not certificates:
        raise SignatureVerificationError("no X509Certificate in the signature's KeyInfo")
    if (named := _named_signer(signature, certificates)) is not None:
        return named
    leaves = [c for c in certificates if not any(o is not c and o.issuer == c.subject for o in certificates)]
    return (leaves or certificates)[0]


def _named_signer(signature: etree._Element, certificates: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate whose digest the first ``Cert`` of ``SigningCertificate(V2)`` gives, if any."""
    for element in signature.iter():
        if not isinstance(element.tag, str) or etree.QName(element).localname not in (
            "SigningCertificate",
            "SigningCertificateV2",
        ):
            continue
        method = element.find(f"*/*/{{{_DSIG}}}DigestMethod")  # Cert/CertDigest/DigestMethod
        value = element.find(f"*/*/{{{_DSIG}}}DigestValue")
        if method is None or value is None:
            return None
        try:
            algorithm = digest_algorithm_implementations[DigestAlgorithm(method.get("Algorithm"))]()
            digest = base64.b64decode("".join((value.text or "").split()))
        except (InvalidInput, ValueError, KeyError):
            return None
        return next((c for c in certificates if c.fingerprint(algorithm) == digest), None)
    return None


def check_signing_key(certificate: x509.Certificate) -> None:
    """``WeakSigningKey`` unless the certificate's key is one the guide accepts.

    auth/podpis-xades.md: RSASSA-PKCS1-v1_5 and RSASSA-PSS with "Minimalna długość klucza: 2048
    bitów", ECDSA with "Minimalny rozmiar krzywej: 256 bitów"; no other kind of key has a signature
    method there.
    """
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise WeakSigningKey(f"klucz RSA {key.key_size} bitów; wymagane co najmniej {MIN_RSA_BITS} bitów")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise WeakSigningKey(
                f"krzywa {key.curve.name} ({key.curve.key_size} bitów); wymagane co najmniej {MIN_EC_BITS} bitów"
            )
    else:
        raise WeakSigningKey(f"klucz {type(key).__name__}: dozwolone klucze RSA i EC (ECDSA)")


def _verify(xml: bytes, root: etree._Element, certificate: x509.Certificate) -> VerifiedDocument:
    """The signature checked with ``certificate`` and the guide's algorithms; the signed document."""
    try:
        results = _FormsVerifier().verify(xml, x509_cert=certificate, expect_config=AUTH_ALGORITHMS)
    except (
        InvalidInput, InvalidSignature, NotImplementedError, etree.XMLSyntaxError, etree.XPathError, ValueError
    ) as error:  # fmt: skip
        if isinstance(error, SignatureVerificationError):
            raise
        raise SignatureVerificationError(f"{type(error).__name__}: {error}") from error
    signed = [result.signed_xml for result in results if result.signed_xml is not None]
    if root.tag == _SIGNATURE:  # enveloping: the request is the whole content of a signed ds:Object
        for element in signed:
            if (content := _object_content(element)) is not None:
                return VerifiedDocument(content, certificate)
        raise SignatureVerificationError(
            "the enveloping signature signs no ds:Object whose whole content is the AuthTokenRequest"
        )
    document = _unsigned_canonical(root)
    for element in signed:
        if _canonical(element) == document:
            return VerifiedDocument(element, certificate)
    raise SignatureVerificationError("the signature does not cover the whole document (enveloped reference missing)")


def _object_content(element: etree._Element) -> etree._Element | None:
    """The one element a signed ``ds:Object`` holds, when it holds nothing else (no other element,
    no text): in an enveloping signature that element is the signed document."""
    if element.tag != f"{{{_DSIG}}}Object":
        return None
    children = list(element)
    if len(children) != 1 or not isinstance(children[0].tag, str):
        return None
    if (element.text or "").strip() or (children[0].tail or "").strip():
        return None
    return children[0]


class _FormsVerifier(XAdESVerifier):
    """signxml's verifier (as ``verify_xades`` configures it), plus the XPath transforms the guide
    lists. signxml skips transforms it does not know, so without this an XPath-filtered reference
    fails its digest with the signature still in it."""

    excise_empty_xmlns_declarations = True

    def _apply_transforms(self, payload: Any, *, transforms_node: Any, signature: Any) -> Any:
        if transforms_node is not None and isinstance(payload, etree._Element):
            for transform in transforms_node.iterfind(f"{{{_DSIG}}}Transform"):
                if transform.get("Algorithm") == XPATH:
                    _xpath_not_in_signature(payload, transform)
                elif transform.get("Algorithm") == XPATH_FILTER2:
                    _xpath_filter2(payload, transform)
        return super()._apply_transforms(payload, transforms_node=transforms_node, signature=signature)

    def _check_key_value_matches_cert_public_key(
        self, key_value: Any, public_key: Any, signature_alg: SignatureMethod
    ) -> bool:
        """signxml compares a ``KeyValue`` with the certificate's key for RSASSA-PKCS1-v1_5, ECDSA
        and DSA, and raises ``NotImplementedError`` for RSASSA-PSS (``*-rsa-MGF1``, which the guide
        lists): a PSS signature with a ``KeyValue`` (signxml's own signer writes one) ended in a
        server error. The PSS key is an RSA key: compared as such."""
        if signature_alg.name.endswith("_RSA_MGF1") and isinstance(public_key, rsa.RSAPublicKey):
            numbers = public_key.public_numbers()
            found = key_value.find(f"{{{_DSIG}}}RSAKeyValue")
            if found is None:
                raise InvalidInput("KeyValue: an RSA signature method needs an RSAKeyValue")
            return (_number(found, "Modulus"), _number(found, "Exponent")) == (numbers.n, numbers.e)
        return bool(super()._check_key_value_matches_cert_public_key(key_value, public_key, signature_alg))


def _number(parent: etree._Element, name: str) -> int:
    """An XML-DSig ``CryptoBinary`` child of ``parent`` (base64 of a big-endian unsigned integer)."""
    text = parent.findtext(f"{{{_DSIG}}}{name}")
    if not text:
        raise InvalidInput(f"RSAKeyValue: no {name}")
    return int.from_bytes(base64.b64decode("".join(text.split())), "big")


def _xpath_not_in_signature(payload: etree._Element, transform: etree._Element) -> None:
    """XPath transform: only the guide's ``not(ancestor-or-self::ds:Signature)`` (every node outside
    a ``ds:Signature``: the enveloped-signature transform's effect); any other expression is refused."""
    expression = "".join((transform.findtext(f"{{{_DSIG}}}XPath") or "").split())
    match = _NOT_IN_SIGNATURE.fullmatch(expression)
    xpath = transform.find(f"{{{_DSIG}}}XPath")
    if match is None or xpath is None or xpath.nsmap.get(match["prefix"]) != _DSIG:
        raise InvalidInput(f"XPath transform: only not(ancestor-or-self::ds:Signature) is accepted, not {expression!r}")
    _remove(payload, list(payload.iter(_SIGNATURE)))


def _xpath_filter2(payload: etree._Element, transform: etree._Element) -> None:
    """XPath Filter 2.0: ``subtract`` removes the selected subtrees; ``intersect`` / ``union`` of the
    whole document (``/``) leave it as it is; other filters are refused (the emulator does not
    compute arbitrary node-sets)."""
    for xpath in transform.iterfind(f"{{{XPATH_FILTER2}}}XPath"):
        expression = (xpath.text or "").strip()
        kind = xpath.get("Filter")
        if kind in ("intersect", "union") and expression == "/":
            continue
        if kind != "subtract":
            raise InvalidInput(f"XPath Filter 2.0: {kind} {expression!r} is not supported by the emulator")
        namespaces = {prefix: uri for prefix, uri in xpath.nsmap.items() if prefix}
        selected = payload.getroottree().xpath(expression, namespaces=namespaces)
        if not isinstance(selected, list):
            raise InvalidInput(f"XPath Filter 2.0: {expression!r} selects no nodes")
        _remove(payload, [node for node in selected if isinstance(node, etree._Element)])


def _remove(payload: etree._Element, elements: list[etree._Element]) -> None:
    """Take ``elements`` (and what they hold) out of ``payload``, keeping the text after each."""
    for element in elements:
        if element is payload:
            raise InvalidInput("the transform removes the whole signed content")
        parent = element.getparent()
        if parent is None or not any(ancestor is payload for ancestor in element.iterancestors()):
            continue
        tail, previous = element.tail, element.getprevious()
        parent.remove(element)
        if tail:
            if previous is not None:
                previous.tail = (previous.tail or "") + tail
            else:
                parent.text = (parent.text or "") + tail
