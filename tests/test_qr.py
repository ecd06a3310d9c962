"""KOD I and KOD II: link formats, signatures (RSA-PSS, ECDSA), QR images."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ksef_client import qr
from ksef_client.environments import Environment
from ksef_client.testing import sample_invoice, self_signed_certificate

INVOICE = sample_invoice("QR/1")


def test_invoice_link_carries_nip_date_and_base64url_hash() -> None:
    link = qr.invoice_link(Environment.PROD, "5265877635", "2026-02-01", INVOICE)
    prefix = "https://qr.ksef.mf.gov.pl/invoice/5265877635/01-02-2026/"
    assert link.startswith(prefix)
    digest = link.removeprefix(prefix)
    assert len(digest) == 43 and "=" not in digest and "+" not in digest and "/" not in digest
    assert base64.urlsafe_b64decode(digest + "=") == hashlib.sha256(INVOICE).digest()
    assert qr.invoice_link("test", "5265877635", "2026-02-01", INVOICE).startswith("https://qr-test.ksef.mf.gov.pl/")


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_certificate_link_signature_verifies_and_binds_the_path(key_type: str) -> None:
    creds = self_signed_certificate(key_type=key_type)
    link = qr.certificate_link("DEMO", "Nip", creds.nip, creds.nip, "01f20a5d352ae590", INVOICE, creds.private_key)
    parts = link.removeprefix("https://").split("/")
    assert parts[:7] == [
        "qr-demo.ksef.mf.gov.pl",
        "certificate",
        "Nip",
        creds.nip,
        creds.nip,
        "01F20A5D352AE590",
        qr.invoice_hash(INVOICE),
    ]
    public_key = creds.certificate.public_key()
    assert qr.verify_certificate_link(link, public_key)  # type: ignore[arg-type]
    tampered = link.replace(qr.invoice_hash(INVOICE), qr.invoice_hash(INVOICE + b" "))
    assert not qr.verify_certificate_link(tampered, public_key)  # type: ignore[arg-type]
    other = self_signed_certificate(key_type=key_type).certificate.public_key()
    assert not qr.verify_certificate_link(link, other)  # type: ignore[arg-type]


def test_bad_input_is_refused() -> None:
    creds = self_signed_certificate()
    with pytest.raises(ValueError, match="seller_nip"):
        qr.invoice_link("TEST", "1234567890", "2026-02-01", INVOICE)
    with pytest.raises(ValueError, match="context_type"):
        qr.certificate_link("TEST", "Regon", "1", creds.nip, "01", INVOICE, creds.private_key)
    with pytest.raises(ValueError, match="certificate_serial"):
        qr.certificate_link("TEST", "Nip", creds.nip, creds.nip, "XYZ", INVOICE, creds.private_key)


def test_keys_and_context_values_the_ministry_does_not_allow_are_refused() -> None:
    # kody-qr.md: "ECDSA (P-256/SHA-256)" with r and s "po 32 bajty", and RSA "Minimum 2048 bity".
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    nip = self_signed_certificate().nip
    link = ("TEST", "Nip", nip, nip, "01", INVOICE)
    with pytest.raises(ValueError, match="P-256"):
        qr.certificate_link(*link, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="2048 or more"):
        qr.certificate_link(*link, rsa.generate_private_key(65537, 1024))
    signature = qr.certificate_link(*link, ec.generate_private_key(ec.SECP256R1())).rpartition("/")[2]
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64
    # The context identifier goes into the path: a NIP's check digit, and nothing that cuts a path.
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="context_value"):
        qr.certificate_link("TEST", "Nip", "1234567890", nip, "01", INVOICE, key)
    with pytest.raises(ValueError, match="context_value"):
        qr.certificate_link("TEST", "InternalId", "12/34 ?x", nip, "01", INVOICE, key)
    assert "/InternalId/5265877635-12345/" in qr.certificate_link(
        "TEST", "InternalId", "5265877635-12345", nip, "01", INVOICE, key
    )


def test_images() -> None:
    link = qr.invoice_link("TEST", "5265877635", "2026-02-01", INVOICE)
    assert qr.qr_png(link).startswith(b"\x89PNG\r\n\x1a\n")
    svg = qr.qr_svg(link, qr.OFFLINE_LABEL)
    assert svg.startswith(b"<svg") and b">OFFLINE</text>" in svg
    assert b"<text" not in qr.qr_svg(link)


# --- environments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["TE", "PRD", "production", ""])
def test_an_unknown_environment_name_is_a_value_error_naming_the_accepted_ones(name: str) -> None:
    # README: identifiers "fail with `ValueError` [...] before any request"; kody-qr.md abbreviates the
    # environments TE, DEMO, PRD, which are not this SDK's names: a bare KeyError('TE') said neither.
    creds = self_signed_certificate()
    with pytest.raises(ValueError, match=r"environment: .* one of TEST, DEMO, PROD"):
        qr.invoice_link(name, "5265877635", "2026-02-01", INVOICE)
    with pytest.raises(ValueError, match=r"environment: .* one of TEST, DEMO, PROD"):
        qr.certificate_link(name, "Nip", creds.nip, creds.nip, "01", INVOICE, creds.private_key)
    assert qr.invoice_link("demo", "5265877635", "2026-02-01", INVOICE).startswith("https://qr-demo.")
