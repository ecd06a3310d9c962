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
    assert "/InternalId/5265877635-12346/" in qr.certificate_link(
        "TEST", "InternalId", "5265877635-12346", nip, "01", INVOICE, key
    )


def test_images() -> None:
    link = qr.invoice_link("TEST", "5265877635", "2026-02-01", INVOICE)
    assert qr.qr_png(link).startswith(b"\x89PNG\r\n\x1a\n")
    svg = qr.qr_svg(link, qr.OFFLINE_LABEL)
    assert svg.startswith(b"<svg") and b">OFFLINE</text>" in svg
    assert b"<text" not in qr.qr_svg(link)


# --- context identifiers: every value the spec allows (components.schemas.<type>.pattern) ----------


@pytest.mark.parametrize(
    ("context_type", "value"),
    [
        ("Nip", "5265877635"),
        ("InternalId", "5265877635-12346"),
        ("NipVatUe", "5265877635-DE123456789"),
        # NipVatUe.pattern (spec 2.9.0): "IE(\d{7}[A-Z]{2}|\d[A-Z0-9+*]\d{5}[A-Z])" and
        # "NL[A-Z0-9+*]{12}"; kody-qr.md names "NipVatUe" among KOD II's context types. The old
        # check ("letters, digits, '.', '_', '-'") refused these.
        ("NipVatUe", "5265877635-IE1+23456X"),
        ("NipVatUe", "5265877635-IE1*23456X"),
        ("NipVatUe", "5265877635-NL12345678+*AB"),
        ("PeppolId", "PAB123456"),
    ],
)
def test_kod_ii_takes_every_context_value_the_spec_allows_as_it_stands(context_type: str, value: str) -> None:
    # The Ministry's C# and Java clients (VerificationLinkService) put the value into the path as
    # it is; '+' and '*' are sub-delims, legal in a URL path (RFC 3986), and signed as they stand.
    creds = self_signed_certificate(key_type="ec")
    link = qr.certificate_link("TEST", context_type, value, creds.nip, "01", INVOICE, creds.private_key)
    assert f"/certificate/{context_type}/{value}/{creds.nip}/01/" in link
    assert qr.verify_certificate_link(link, creds.certificate.public_key())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("context_type", "value"),
    [
        ("InternalId", "5265877635-1234"),  # "NIP i 5 cyfr"
        ("InternalId", "5265877636-12345"),  # the NIP's check digit
        ("InternalId", "5265877635-12345"),  # its own check digit (KSeF makes none without: 12346)
        ("NipVatUe", "5265877635-XX123"),  # no such country prefix
        ("NipVatUe", "5265877635-IE1+2345"),  # the Irish form is 9 characters
        ("PeppolId", "pab123456"),  # "^P[A-Z]{2}[0-9]{6}$"
        ("PeppolId", "PAB12345"),
        ("Nip", "5265877635\n"),
        ("InternalId", "5265877635-١٢٣٤٥"),  # Arabic-Indic digits: \d is 0-9 in the spec's patterns
    ],
)
def test_kod_ii_refuses_context_values_the_spec_does_not_allow(context_type: str, value: str) -> None:
    creds = self_signed_certificate(key_type="ec")
    with pytest.raises(ValueError, match=f"context_value: .* {context_type}|context_value: .*check digit"):
        qr.certificate_link("TEST", context_type, value, creds.nip, "01", INVOICE, creds.private_key)


# --- verify_certificate_link: both ECDSA encodings, a bool for any link -----------------------------


def test_a_kod_ii_signed_in_asn1_der_verifies() -> None:
    # kody-qr.md: the ECDSA value "Może być zakodowana w jednym z dwóch formatów: IEEE P1363 [...]
    # ASN.1 DER SEQUENCE (RFC 3279)"; the Ministry's Java client (SHA256withECDSA) signs in DER.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    creds = self_signed_certificate(key_type="ec")
    key = creds.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    p1363 = qr.certificate_link("TEST", "Nip", creds.nip, creds.nip, "01", INVOICE, key)
    signed = p1363.removeprefix("https://").rpartition("/")[0]
    der = key.sign(signed.encode(), ec.ECDSA(hashes.SHA256()))
    public_key = key.public_key()
    assert qr.verify_certificate_link(f"https://{signed}/{qr.b64url(der)}", public_key)
    assert qr.verify_certificate_link(p1363, public_key)
    tampered = signed.replace("/Nip/", "/InternalId/")
    assert not qr.verify_certificate_link(f"https://{tampered}/{qr.b64url(der)}", public_key)


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_a_damaged_kod_ii_link_is_false_not_an_error(key_type: str) -> None:
    # The docstring: "Whether a KOD II link's signature was made by the key": a bool, also for a
    # link cut short (a badly printed or hand-typed code), which raised binascii.Error.
    creds = self_signed_certificate(key_type=key_type)
    link = qr.certificate_link("TEST", "Nip", creds.nip, creds.nip, "01", INVOICE, creds.private_key)
    public_key = creds.certificate.public_key()
    for damaged in (link[:-1], link[:-2], link + "é", link + "=", link.rpartition("/")[0] + "/", "", "not a link"):
        assert qr.verify_certificate_link(damaged, public_key) is False, damaged  # type: ignore[arg-type]


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
