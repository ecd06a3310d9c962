"""XAdES: the client's signed AuthTokenRequest verifies; any change to it does not."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(("kind", "key_type"), [("person", "rsa"), ("seal", "ec")])
def test_signed_request_verifies_and_names_the_signer(kind: str, key_type: str) -> None:
    creds = self_signed_certificate(kind=kind, key_type=key_type)
    document = signed_auth_token_request(CHALLENGE, "Nip", creds.nip, creds)
    verified = verify_xades(document)
    ns = {"a": AUTH_NAMESPACE}
    assert verified.root.findtext("a:Challenge", namespaces=ns) == CHALLENGE
    assert verified.root.findtext("a:ContextIdentifier/a:Nip", namespaces=ns) == creds.nip
    assert certificate_identity(verified.certificate) == ("Nip", creds.nip)


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


def test_bad_context_type_is_refused_before_signing() -> None:
    with pytest.raises(ValueError, match="context_type"):
        signed_auth_token_request(CHALLENGE, "Regon", "123", self_signed_certificate())
