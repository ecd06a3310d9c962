"""XAdES: the client's signed AuthTokenRequest verifies; any change to it does not."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.xades.xades import XAdESSigner

from ksef_client.mock.state.auth import certificate_identity
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import (
    AUTH_NAMESPACE,
    SignatureVerificationError,
    SigningCredentials,
    signed_auth_token_request,
    verify_xades,
)

CHALLENGE = "20261125-CR-0123456789-ABCDEF0123-4A"
# Signed by xmlsec1 with throwaway test keys, in the shape .NET's SignedXml gives (review).
DATA = Path(__file__).with_name("data") / "xades"


@pytest.mark.parametrize(("kind", "key_type"), [("person", "rsa"), ("seal", "ec")])
def test_signed_request_verifies_and_names_the_signer(kind: str, key_type: str) -> None:
    creds = self_signed_certificate(kind=kind, key_type=key_type)
    document = signed_auth_token_request(CHALLENGE, "Nip", creds.nip, creds)
    verified = verify_xades(document)
    ns = {"a": AUTH_NAMESPACE}
    assert verified.root.findtext("a:Challenge", namespaces=ns) == CHALLENGE
    assert verified.root.findtext("a:ContextIdentifier/a:Nip", namespaces=ns) == creds.nip
    assert certificate_identity(verified.certificate) == ("Nip", creds.nip)


@pytest.mark.parametrize("key", ["rsa", "ec"])
def test_a_signature_in_the_default_namespace_verifies_as_xmlsec1_finds_it(key: str) -> None:
    # Review: a document signed the way .NET's SignedXml writes it (the official C# client, the
    # Ministry's test app: <Signature xmlns="...xmldsig#">, no ds: prefix), signed here by xmlsec1
    # 1.2.37 (an independent implementation) and verified by it, read as invalid: the emulator
    # answered such logins 9105, and UPO signatures of that shape would have failed the same way.
    document = (DATA / f"unprefixed-{key}.xml").read_bytes()
    assert b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"' in document
    verified = verify_xades(document)
    assert verified.root.findtext(f"{{{AUTH_NAMESPACE}}}Challenge")
    with pytest.raises(SignatureVerificationError):
        verify_xades(document.replace(b"<Nip>5265877635</Nip>", b"<Nip>1111111111</Nip>", 1))


def test_tampered_document_is_refused() -> None:
    creds = self_signed_certificate()
    document = signed_auth_token_request(CHALLENGE, "Nip", creds.nip, creds)
    tampered = document.replace(creds.nip.encode(), b"1111111111", 1)
    with pytest.raises(SignatureVerificationError):
        verify_xades(tampered)


def test_unsigned_document_and_dtd_are_refused() -> None:
    with pytest.raises(SignatureVerificationError):
        verify_xades(f'<AuthTokenRequest xmlns="{AUTH_NAMESPACE}"/>'.encode())
    with pytest.raises(SignatureVerificationError, match="DTD"):
        verify_xades(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')


def test_signature_by_another_certificate_is_refused() -> None:
    creds, other = self_signed_certificate(), self_signed_certificate()
    document = signed_auth_token_request(CHALLENGE, "Nip", creds.nip, creds)
    with pytest.raises(SignatureVerificationError):
        verify_xades(document, other.certificate)


def test_credentials_load_from_encrypted_pem_and_pkcs12() -> None:
    creds = self_signed_certificate(key_type="ec")
    from_pem = SigningCredentials.from_pem(creds.certificate_pem(), creds.private_key_pem(b"pw"), "pw")
    from_p12 = SigningCredentials.from_pkcs12(creds.pkcs12(b"pw"), b"pw")
    for loaded in (from_pem, from_p12):
        document = signed_auth_token_request(CHALLENGE, "Nip", creds.nip, loaded)
        assert verify_xades(document).certificate == creds.certificate
    assert "private_key" not in repr(from_pem)
    with pytest.raises(ValueError):
        SigningCredentials.from_pem(creds.certificate_pem(), creds.private_key_pem(b"pw"), "wrong")


def test_a_secret_given_as_text_is_never_repeated_in_the_error(tmp_path: Path) -> None:
    # Security review, session 10: a str that did not start with -----BEGIN was opened as a path, so
    # a .p12 in base64 (a CI secret) or a PEM key that lost its first line came back whole in the
    # FileNotFoundError's message (and its repr, a traceback, a log).
    creds = self_signed_certificate()
    p12 = base64.b64encode(creds.pkcs12()).decode()
    key_body = creds.private_key_pem().decode().split("\n", 1)[1]
    attempts: list[tuple[Callable[[], object], str, str]] = [
        (lambda: SigningCredentials.from_pkcs12(p12), p12, "data: a str of"),
        (lambda: SigningCredentials.from_pem(creds.certificate_pem(), key_body), key_body, "private_key: a str of"),
        (lambda: SigningCredentials.from_pem(creds.certificate_pem(), "x" * 5000), "x" * 5000, "private_key"),
        (lambda: SigningCredentials.from_pem(creds.certificate_pem(), "no\0such"), "no\0such", "private_key"),
        (lambda: SigningCredentials.from_pem("no-such-cert.pem", key_body), "no-such-cert.pem", "certificate"),
    ]
    for attempt, secret, field in attempts:
        with pytest.raises(ValueError, match="neither PEM text nor the path of an existing file") as caught:
            attempt()
        shown = f"{caught.value} {caught.value!r} {caught.value.args}"
        assert str(caught.value).startswith(field) and "expected a path of an existing" in shown
        assert secret[:40] not in shown and secret[-40:] not in shown
    with pytest.raises(TypeError, match="data: expected a path"):
        SigningCredentials.from_pkcs12(12)  # type: ignore[arg-type]
    # Paths (str or Path), PEM text after openssl's "Bag Attributes" and bytes still load.
    (tmp_path / "c.pem").write_bytes(creds.certificate_pem())
    (tmp_path / "k.pem").write_bytes(creds.private_key_pem())
    (tmp_path / "c.p12").write_bytes(creds.pkcs12())
    attributed = "Bag Attributes\n    localKeyID: 01\n" + creds.private_key_pem().decode()
    for loaded in (
        SigningCredentials.from_pem(str(tmp_path / "c.pem"), tmp_path / "k.pem"),
        SigningCredentials.from_pem(creds.certificate_pem().decode(), attributed),
        SigningCredentials.from_pkcs12(str(tmp_path / "c.p12")),
        SigningCredentials.from_pkcs12(bytearray(creds.pkcs12())),
    ):
        assert loaded.certificate == creds.certificate


class DeviceKey(rsa.RSAPrivateKey):
    """An RSA key on a device (smart card, HSM): it signs and shows its public half, nothing more."""

    def __init__(self, inner: rsa.RSAPrivateKey) -> None:
        self._inner = inner

    def sign(self, data: bytes, padding: object, algorithm: object) -> bytes:
        return self._inner.sign(data, padding, algorithm)  # type: ignore[arg-type]

    def public_key(self) -> rsa.RSAPublicKey:
        return self._inner.public_key()

    @property
    def key_size(self) -> int:
        return self._inner.key_size

    def decrypt(self, ciphertext: bytes, padding: object) -> bytes:
        raise NotImplementedError("on the device")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise NotImplementedError("on the device")

    def private_bytes(self, *args: object) -> bytes:
        raise NotImplementedError("on the device")

    def __copy__(self) -> DeviceKey:
        return self

    def __deepcopy__(self, memo: object) -> DeviceKey:
        return self


@pytest.mark.parametrize(
    ("cert_type", "key", "message"),
    [
        ("rsa", lambda: rsa.generate_private_key(65537, 2048), "it is not the key of this certificate"),
        ("ec", lambda: ec.generate_private_key(ec.SECP256R1()), "it is not the key of this certificate"),
        ("ec", lambda: ec.generate_private_key(ec.SECP384R1()), "it is not the key of this certificate"),
        ("rsa", lambda: ec.generate_private_key(ec.SECP256R1()), "an EC key, but the certificate.s key is RSA"),
        ("ec", lambda: rsa.generate_private_key(65537, 2048), "an RSA key, but the certificate.s key is EC"),
        ("rsa", lambda: DeviceKey(rsa.generate_private_key(65537, 2048)), "it is not the key of this certificate"),
    ],
)
def test_credentials_refuse_a_key_that_is_not_the_certificates(
    cert_type: str, key: Callable[[], ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey], message: str
) -> None:
    # Review finding 7: built directly, such credentials signed, and the mistake came back only as
    # KSeF's generic 9105 "Nieprawidłowy podpis" after a challenge round-trip.
    creds = self_signed_certificate(key_type=cert_type)
    with pytest.raises(ValueError, match=f"private_key: {message}"):
        SigningCredentials(creds.certificate, key())


def test_credentials_with_a_key_on_a_device_sign() -> None:
    # A key that never leaves its device: only its public half is compared with the certificate.
    creds = self_signed_certificate(kind="seal")
    assert isinstance(creds.private_key, rsa.RSAPrivateKey)
    on_device = SigningCredentials(creds.certificate, DeviceKey(creds.private_key))
    document = signed_auth_token_request(CHALLENGE, "Nip", creds.nip, on_device)
    assert verify_xades(document).certificate == creds.certificate


def test_bad_context_type_is_refused_before_signing() -> None:
    with pytest.raises(ValueError, match="context_type"):
        signed_auth_token_request(CHALLENGE, "Regon", "123", self_signed_certificate())


def _signed_by_id(creds: SigningCredentials) -> etree._Element:
    """A request whose signature references its root by ``Id`` (a form some signers use)."""
    root = etree.fromstring(signed_auth_token_request(CHALLENGE, "Nip", creds.nip, creds))
    for signature in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        root.remove(signature)
    root.set("Id", "request")
    key = creds.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    signer = XAdESSigner(signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256)
    signed: etree._Element = signer.sign(
        root, key=key, cert=creds.certificate.public_bytes(Encoding.PEM), reference_uri="#request"
    )
    return signed


def test_a_signature_by_id_over_the_whole_document_verifies() -> None:
    creds = self_signed_certificate(key_type="rsa")
    verified = verify_xades(etree.tostring(_signed_by_id(creds)))
    assert verified.root.findtext(f"{{{AUTH_NAMESPACE}}}Challenge") == CHALLENGE


def test_a_signed_element_wrapped_in_a_forged_document_is_refused() -> None:
    # Signature wrapping: the genuinely signed element is kept inside a forged document of the same
    # root tag, so the reference still verifies while a reader of the document meets the forgery.
    creds = self_signed_certificate(key_type="rsa")
    genuine = _signed_by_id(creds)
    signature = genuine.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    assert signature is not None
    genuine.remove(signature)
    forged = etree.fromstring(
        signed_auth_token_request("20261125-CR-9999999999-ABCDEF0123-4A", "Nip", creds.nip, creds)
    )
    for old in forged.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        forged.remove(old)
    forged.append(signature)
    forged.append(genuine)
    with pytest.raises(SignatureVerificationError, match="whole document"):
        verify_xades(etree.tostring(forged))


def test_doctype_text_in_a_comment_is_not_a_dtd() -> None:
    # Only the prolog can hold a document type declaration (_xml.declares_entities); comments are
    # not signed, so this one leaves the signature whole.
    creds = self_signed_certificate()
    document = signed_auth_token_request(CHALLENGE, "Nip", creds.nip, creds)
    start = document.index(b">", document.index(b"<AuthTokenRequest")) + 1
    commented = document[:start] + b"<!-- <!DOCTYPE x> <!ENTITY a 'b'> -->" + document[start:]
    assert verify_xades(commented).root.findtext(f"{{{AUTH_NAMESPACE}}}Challenge") == CHALLENGE


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_key_from_a_pipe_given_as_a_str_path_loads(tmp_path: Path) -> None:
    # What a shell's <(vault read ...) gives: /dev/fd/N, a pipe, not a regular file (final review of
    # session 10, L1: the check of the path took only regular files, and said the pipe did not exist).
    creds = self_signed_certificate()
    pipe = tmp_path / "key.pem"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=(creds.private_key_pem(),), daemon=True)
    writer.start()
    loaded = SigningCredentials.from_pem(creds.certificate_pem(), str(pipe))
    writer.join()
    assert loaded.certificate == creds.certificate
