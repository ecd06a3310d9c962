"""Signature forms of a XAdES login the Ministry's guide accepts (review of certificate login,
finding 5): auth/podpis-xades.md, "Dopuszczalne formaty podpisu: otaczany (enveloped), otaczający
(enveloping)"; accepted transforms include "http://www.w3.org/TR/1999/REC-xpath-19991116 -
not(ancestor-or-self::ds:Signature)" and "http://www.w3.org/2002/06/xmldsig-filter2". Each form
must still sign the whole AuthTokenRequest (no signature wrapping)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.xades.xades import XAdESSigner

from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import C14N_1_0, DSIG_NAMESPACE, SigningCredentials, build_auth_token_request, sign_xades
from tests.conftest import NIP

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"


class _TransformSigner(XAdESSigner):
    """signxml's enveloped signer, writing ``transform`` in place of the enveloped-signature
    transform: the digest is the same, as both leave the signature out of the document."""

    def __init__(self, transform: str, expression: str, **options: Any) -> None:
        super().__init__(**options)
        self.transform, self.expression = transform, expression

    def _build_transforms_for_reference(self, *, transforms_node: Any, **options: Any) -> None:
        super()._build_transforms_for_reference(transforms_node=transforms_node, **options)
        for node in transforms_node.iterfind(f"{{{DSIG_NAMESPACE}}}Transform"):
            if node.get("Algorithm") != ENVELOPED:
                continue
            node.set("Algorithm", self.transform)
            if self.transform == XPATH:
                etree.SubElement(node, f"{{{DSIG_NAMESPACE}}}XPath").text = self.expression
            else:
                filter2 = etree.SubElement(
                    node, f"{{{FILTER2}}}XPath", Filter="subtract", nsmap={"dsig-xpath": FILTER2}
                )
                filter2.text = self.expression


def _sign(challenge: str, credentials: SigningCredentials, signer: XAdESSigner) -> bytes:
    document = build_auth_token_request(challenge, "Nip", NIP)
    signed = signer.sign(document, key=credentials.private_key, cert=[credentials.certificate])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def _options(method: methods = methods.enveloped) -> dict[str, Any]:
    return {"method": method, "signature_algorithm": SignatureMethod.RSA_SHA256,
            "digest_algorithm": DigestAlgorithm.SHA256, "c14n_algorithm": C14N_1_0}  # fmt: skip


def _login(ksef_mock: KSeFMock, make: Any) -> tuple[int, Any]:
    """POST ``make(challenge)`` to ``/auth/xades-signature``: (HTTP status, final auth status code or
    the error body)."""
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        challenge = client.post("/auth/challenge").json()["challenge"]
        answer = client.post(
            "/auth/xades-signature", content=make(challenge), headers={"Content-Type": "application/xml"}
        )
        if answer.status_code != 202:
            return answer.status_code, answer.json()
        started = answer.json()
        bearer = {"Authorization": f"Bearer {started['authenticationToken']['token']}"}
        status = client.get(f"/auth/{started['referenceNumber']}", headers=bearer).json()
        return 202, status["status"]["code"]


def _codes(body: Any) -> list[int]:
    return [int(d["exceptionCode"]) for d in body["exception"]["exceptionDetailList"]]


SEAL = self_signed_certificate(NIP, kind="seal")


def test_an_enveloping_signature_logs_in(ksef_mock: KSeFMock) -> None:
    # "otaczający (enveloping)": the AuthTokenRequest inside the signature's ds:Object.
    signer = XAdESSigner(**_options(methods.enveloping))
    assert _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer)) == (202, 200)


@pytest.mark.parametrize(
    ("transform", "expression"),
    [(XPATH, "not(ancestor-or-self::ds:Signature)"), (FILTER2, "/descendant::ds:Signature")],
)
def test_xpath_transforms_the_guide_lists_log_in(ksef_mock: KSeFMock, transform: str, expression: str) -> None:
    signer = _TransformSigner(transform, expression, **_options())
    document = _sign("20261125-CR-0123456789-ABCDEF0123-4A", SEAL, signer)
    assert f'Algorithm="{transform}"'.encode() in document and ENVELOPED.encode() not in document
    assert _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer)) == (202, 200)
    # The transform still covers the document: a changed context no longer verifies.
    tampered = _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer).replace(
        f"<Nip>{NIP}</Nip>".encode(), b"<Nip>1111111111</Nip>", 1))  # fmt: skip
    assert tampered[0] == 400 and _codes(tampered[1]) == [9105]


def test_another_xpath_expression_is_refused(ksef_mock: KSeFMock) -> None:
    # The guide accepts the XPath transform with "not(ancestor-or-self::ds:Signature)" only.
    signer = _TransformSigner(XPATH, "not(ancestor-or-self::ds:Signature) or self::node()", **_options())
    status, body = _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer))
    assert status == 400 and _codes(body) == [9105]


def test_an_enveloping_signature_wrapped_in_a_forged_request_is_refused(ksef_mock: KSeFMock) -> None:
    # Signature wrapping: a genuine enveloping signature (over a request for another context) put
    # inside a forged AuthTokenRequest for NIP: the forged document is not what was signed.
    signer = XAdESSigner(**_options(methods.enveloping))
    other = self_signed_certificate("1111111111", kind="seal")

    def forged(challenge: str) -> bytes:
        genuine = signer.sign(build_auth_token_request(challenge, "Nip", "1111111111"),
                              key=other.private_key, cert=[other.certificate])  # fmt: skip
        outer = build_auth_token_request(challenge, "Nip", NIP)
        outer.append(genuine)
        return bytes(etree.tostring(outer, xml_declaration=True, encoding="UTF-8"))

    status, body = _login(ksef_mock, forged)
    assert status == 400 and _codes(body) == [9105]


# --- review s11: keys, algorithms, certificates and signature counts the guide and the spec name ---


def _certificate(key: Any, nip: str = NIP) -> x509.Certificate:
    """A self-signed company seal of ``nip`` for ``key`` (any size: ``SigningCredentials`` refuses
    weak keys, so these documents are signed with signxml directly)."""
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Firma testowa"),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Firma testowa"), x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
    ])  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip


def _signed_with(key: Any, certificates: list[x509.Certificate], signer: XAdESSigner) -> Any:
    """``make(challenge)`` for ``_login``: the request for NIP signed with ``key``."""

    def make(challenge: str) -> bytes:
        signed = signer.sign(build_auth_token_request(challenge, "Nip", NIP), key=key, cert=certificates)
        return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))

    return make


@pytest.mark.parametrize(
    ("key", "method"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), SignatureMethod.RSA_SHA256),
        (rsa.generate_private_key(public_exponent=65537, key_size=2040), SignatureMethod.SHA256_RSA_MGF1),
        (ec.generate_private_key(ec.SECP192R1()), SignatureMethod.ECDSA_SHA256),
        (ec.generate_private_key(ec.SECP224R1()), SignatureMethod.ECDSA_SHA256),
    ],
    ids=["rsa-1024", "rsa-2040-pss", "ec-p192", "ec-p224"],
)
def test_a_key_weaker_than_the_guide_allows_is_refused(ksef_mock: KSeFMock, key: Any, method: SignatureMethod) -> None:
    """auth/podpis-xades.md: RSASSA-PKCS1-v1_5 and RSASSA-PSS "Minimalna długość klucza: 2048
    bitów"; ECDSA "Minimalny rozmiar krzywej: 256 bitów". The emulator logged such signers in (review
    s11, M2), so a request an external signing tool made with a weak key passed here and failed on
    KSeF. KSeF's code is undocumented: the spec's 400 table of POST /auth/xades-signature names one
    for the certificate, "21115 | Nieprawidłowy certyfikat."."""
    signer = XAdESSigner(**{**_options(), "signature_algorithm": method})
    status, body = _login(ksef_mock, _signed_with(key, [_certificate(key)], signer))
    assert status == 400 and _codes(body) == [21115], body


@pytest.mark.parametrize(
    ("key", "method"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), SignatureMethod.RSA_SHA256),
        (rsa.generate_private_key(public_exponent=65537, key_size=3072), SignatureMethod.SHA384_RSA_MGF1),
        (ec.generate_private_key(ec.SECP256R1()), SignatureMethod.ECDSA_SHA256),
        (ec.generate_private_key(ec.SECP384R1()), SignatureMethod.ECDSA_SHA384),
        (ec.generate_private_key(ec.SECP521R1()), SignatureMethod.ECDSA_SHA512),
    ],
    ids=["rsa-2048", "rsa-3072-pss", "ec-p256", "ec-p384", "ec-p521"],
)
def test_keys_the_guide_allows_log_in(ksef_mock: KSeFMock, key: Any, method: SignatureMethod) -> None:
    signer = XAdESSigner(**{**_options(), "signature_algorithm": method})
    assert _login(ksef_mock, _signed_with(key, [_certificate(key)], signer)) == (202, 200)


class _LegacySigner(XAdESSigner):
    """signxml's signer, allowed the SHA-1 algorithms it refuses by default ("SHA1-based algorithms
    are not supported in the default configuration"): as older signing middleware signs."""

    def check_deprecated_methods(self) -> None:
        pass


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("key", "method", "digest"),
    [
        (RSA_KEY, SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1),
        (RSA_KEY, SignatureMethod.SHA1_RSA_MGF1, DigestAlgorithm.SHA256),
        (EC_KEY, SignatureMethod.ECDSA_SHA1, DigestAlgorithm.SHA1),
        (RSA_KEY, SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA1),
        (RSA_KEY, SignatureMethod.SHA3_256_RSA_MGF1, DigestAlgorithm.SHA3_256),
        (RSA_KEY, SignatureMethod.SHA3_384_RSA_MGF1, DigestAlgorithm.SHA3_384),
        (RSA_KEY, SignatureMethod.SHA3_512_RSA_MGF1, DigestAlgorithm.SHA3_512),
        (EC_KEY, SignatureMethod.ECDSA_SHA3_256, DigestAlgorithm.SHA3_256),
        (EC_KEY, SignatureMethod.ECDSA_SHA3_384, DigestAlgorithm.SHA384),
        (EC_KEY, SignatureMethod.ECDSA_SHA3_512, DigestAlgorithm.SHA512),
    ],
    ids=lambda value: getattr(value, "name", "key"),
)
def test_every_algorithm_the_guide_lists_logs_in(
    ksef_mock: KSeFMock, key: Any, method: SignatureMethod, digest: DigestAlgorithm
) -> None:
    """auth/podpis-xades.md lists, for ``ds:SignatureMethod``, rsa-sha1, sha1-rsa-MGF1, ecdsa-sha1,
    sha3-256/384/512-rsa-MGF1 and ecdsa-sha3-256/384/512 beside the SHA-2 ones, and for
    ``DigestMethod`` sha1 and sha3-256/384/512 ("Te same algorytmy skrótu są wykorzystywane również
    do wyliczania skrótów właściwości kwalifikujących, w szczególności skrótu certyfikatu w
    SigningCertificate / CertDigest / DigestMethod"). The emulator answered each 9105 (review s11, L3)."""
    signer = _LegacySigner(**{**_options(), "signature_algorithm": method, "digest_algorithm": digest})
    assert _login(ksef_mock, _signed_with(key, [_certificate(key)], signer)) == (202, 200)


@pytest.mark.parametrize(
    ("method", "digest"),
    [(SignatureMethod.RSA_SHA224, DigestAlgorithm.SHA256), (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA224)],
    ids=["rsa-sha224", "digest-sha224"],
)
def test_an_algorithm_the_guide_does_not_list_is_refused(
    ksef_mock: KSeFMock, method: SignatureMethod, digest: DigestAlgorithm
) -> None:
    signer = XAdESSigner(**{**_options(), "signature_algorithm": method, "digest_algorithm": digest})
    status, body = _login(ksef_mock, _signed_with(RSA_KEY, [_certificate(RSA_KEY)], signer))
    assert status == 400 and _codes(body) == [9105], body


class _CaFirstSigner(XAdESSigner):
    """Writes the chain into ``KeyInfo`` with the CA first (before the signature is made, so a signed
    ``KeyInfo`` still verifies); ``SigningCertificateV2`` names the signer first, as XAdES requires."""

    def _add_key_info(self, sig_root: Any, signing_settings: Any) -> None:
        super()._add_key_info(sig_root, signing_settings)
        data = sig_root.find(f"{{{DSIG_NAMESPACE}}}KeyInfo/{{{DSIG_NAMESPACE}}}X509Data")
        data[:] = list(reversed(data))


def test_a_chain_listed_ca_first_logs_in_with_the_signers_certificate(ksef_mock: KSeFMock) -> None:
    """``KeyInfo`` may carry the chain in any order; a XAdES verifier takes the certificate the
    signed ``SigningCertificateV2`` names first (EN 319 132-1), as signxml's own ``_find_signing_cert``
    looks for it. The emulator verified with the first ``X509Certificate`` of the document, the CA's:
    9105 (review s11, L2)."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = _certificate(RSA_KEY)
    leaf = (
        x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(ca_name).public_key(RSA_KEY.public_key())
        .serial_number(2).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    make = _signed_with(RSA_KEY, [leaf, ca], _CaFirstSigner(**_options()))
    document = make("20261125-CR-0123456789-ABCDEF0123-4A")
    listed = etree.fromstring(document).findall(f".//{{{DSIG_NAMESPACE}}}X509Certificate")
    assert [x509.load_der_x509_certificate(base64.b64decode(c.text)) for c in listed] == [ca, leaf]
    assert _login(ksef_mock, make) == (202, 200)


def test_an_unsigned_or_twice_signed_request_has_the_spec_s_codes(ksef_mock: KSeFMock) -> None:
    """The spec's 400 table for POST /auth/xades-signature: "9102 | Brak podpisu.", "9103 |
    Przekroczona liczba dozwolonych podpisów.". The emulator answered both with 9105 (review s11, L4)."""

    def unsigned(challenge: str) -> bytes:
        return bytes(etree.tostring(build_auth_token_request(challenge, "Nip", NIP), xml_declaration=True))

    def twice(challenge: str) -> bytes:
        once = sign_xades(build_auth_token_request(challenge, "Nip", NIP), SEAL)
        return sign_xades(etree.fromstring(once), self_signed_certificate(NIP, kind="person"))

    status, body = _login(ksef_mock, unsigned)
    assert status == 400 and _codes(body) == [9102], body
    status, body = _login(ksef_mock, twice)
    assert status == 400 and _codes(body) == [9103], body
