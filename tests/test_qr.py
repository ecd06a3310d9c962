"""KOD I and KOD II: link formats, signatures (RSA-PSS, ECDSA), QR images."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ksef_client import qr
from ksef_client.environments import Environment
from ksef_client.resources.certificates import KSeFCredentials
from ksef_client.testing import sample_invoice, self_signed_certificate
from ksef_client.xades import PrivateKey, SigningCredentials

INVOICE = sample_invoice("QR/1")
SERIAL = "01F20A5D352AE590"  # kody-qr.md's example: KSeF's certificateSerialNumber is ^[0-9A-F]{16}$


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
        qr.certificate_link("TEST", "Regon", "1", creds.nip, SERIAL, INVOICE, creds.private_key)
    with pytest.raises(ValueError, match="certificate_serial"):
        qr.certificate_link("TEST", "Nip", creds.nip, creds.nip, "XYZ", INVOICE, creds.private_key)


def test_keys_and_context_values_the_ministry_does_not_allow_are_refused() -> None:
    # kody-qr.md: "ECDSA (P-256/SHA-256)" with r and s "po 32 bajty", and RSA "Minimum 2048 bity".
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    nip = self_signed_certificate().nip
    link = ("TEST", "Nip", nip, nip, SERIAL, INVOICE)
    with pytest.raises(ValueError, match="P-256"):
        qr.certificate_link(*link, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="2048 or more"):
        qr.certificate_link(*link, rsa.generate_private_key(65537, 1024))
    signature = qr.certificate_link(*link, ec.generate_private_key(ec.SECP256R1())).rpartition("/")[2]
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64
    # The context identifier goes into the path: a NIP's check digit, and nothing that cuts a path.
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="context_value"):
        qr.certificate_link("TEST", "Nip", "1234567890", nip, SERIAL, INVOICE, key)
    with pytest.raises(ValueError, match="context_value"):
        qr.certificate_link("TEST", "InternalId", "12/34 ?x", nip, SERIAL, INVOICE, key)
    assert "/InternalId/5265877635-12346/" in qr.certificate_link(
        "TEST", "InternalId", "5265877635-12346", nip, SERIAL, INVOICE, key
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
    link = qr.certificate_link("TEST", context_type, value, creds.nip, SERIAL, INVOICE, creds.private_key)
    assert f"/certificate/{context_type}/{value}/{creds.nip}/{SERIAL}/" in link
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
        qr.certificate_link("TEST", context_type, value, creds.nip, SERIAL, INVOICE, creds.private_key)


# --- verify_certificate_link: both ECDSA encodings, a bool for any link -----------------------------


def test_a_kod_ii_signed_in_asn1_der_verifies() -> None:
    # kody-qr.md: the ECDSA value "Może być zakodowana w jednym z dwóch formatów: IEEE P1363 [...]
    # ASN.1 DER SEQUENCE (RFC 3279)"; the Ministry's Java client (SHA256withECDSA) signs in DER.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    creds = self_signed_certificate(key_type="ec")
    key = creds.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    p1363 = qr.certificate_link("TEST", "Nip", creds.nip, creds.nip, SERIAL, INVOICE, key)
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
    link = qr.certificate_link("TEST", "Nip", creds.nip, creds.nip, SERIAL, INVOICE, creds.private_key)
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
        qr.certificate_link(name, "Nip", creds.nip, creds.nip, SERIAL, INVOICE, creds.private_key)
    assert qr.invoice_link("demo", "5265877635", "2026-02-01", INVOICE).startswith("https://qr-demo.")


# --- fixed vectors: kody-qr.md, and the Ministry's C# and Java clients' unit tests ------------------

DOC_HASH = "UtQp9Gpc51y-u3xApZjIjgkpZ01js-J8KflSPW8WzIE"  # kody-qr.md's invoice hash (the file is not given)
DOC_KOD_I = "https://qr-test.ksef.mf.gov.pl/invoice/1111111111/01-02-2026/UtQp9Gpc51y-u3xApZjIjgkpZ01js-J8KflSPW8WzIE"
DOC_SIGNED = (  # kody-qr.md, "Format podpisu": what KOD II's signature covers
    "qr-test.ksef.mf.gov.pl/certificate/Nip/1111111111/1111111111/01F20A5D352AE590/"
    "UtQp9Gpc51y-u3xApZjIjgkpZ01js-J8KflSPW8WzIE"
)
DOC_KOD_II = (  # kody-qr.md's example link (its RSA signature cannot be checked: the key is not given)
    "https://qr-test.ksef.mf.gov.pl/certificate/Nip/1111111111/1111111111/01F20A5D352AE590/"
    "UtQp9Gpc51y-u3xApZjIjgkpZ01js-J8KflSPW8WzIE/mSkm_XmM9fq7PgAJwiL32L9ujhyguOEV48cDB0ncemD2r9TMGa3lr0iRoFk"
    "588agCi8QPsOuscUY1rZ7ff76STbGquO-gZtQys5_fHdf2HUfDqPqVTnUS6HknBu0zLkyf9ygoW7WbH06Ty_8BgQTlOmJFzNWSt9WZa"
    "7tAGuAE9JOooNps-KG2PYkkIP4q4jPMp3FKypAygHVnXtS0RDGgOxhhM7LWtFP7D-dWINbh5yXD8Lr-JVbeOpyQjHa6WmMYavCDQJ3"
    "X_Z-iS01LZu2s1B3xuOykl1h0sLObCdADrbxOONsXrvQa61Xt_rxyprVraj2Uf9pANQgR4-12HEcMw"
)


@pytest.mark.parametrize(
    ("xml", "link"),
    [
        (
            b"<root>test</root>",
            "https://qr-test.ksef.mf.gov.pl/invoice/1111111111/05-01-2026/qrs2gCLXnTUy6--AHwHuDxFuCj0BYUGRGtBuGnJwN-c",
        ),
        (
            b"<data>special & chars /?</data>",
            "https://qr-test.ksef.mf.gov.pl/invoice/1111111111/05-01-2026/2bEg3cUOcJxR38JekXJxuJphnkn-NUdSP-uyOc0hB6I",
        ),
    ],
)
def test_kod_i_gives_the_official_clients_links(xml: bytes, link: str) -> None:
    # The inputs of VerificationLinkServiceTests (C#: BuildInvoiceVerificationUrlEncodesHashCorrectly;
    # Java: buildInvoiceVerificationUrl_encodesHashCorrectly_*): these files, issued 2026-01-05, the
    # SHA-256 in Base64URL without padding. Their NIP, 1234567890, has a wrong check digit, which
    # invoice_link refuses: kody-qr.md's 1111111111 stands in for it.
    assert qr.invoice_link("TEST", "1111111111", dt.date(2026, 1, 5), xml) == link


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_kod_i_and_kod_ii_follow_kody_qr_md_s_examples(monkeypatch: pytest.MonkeyPatch, key_type: str) -> None:
    monkeypatch.setattr(qr, "invoice_hash", lambda _invoice: DOC_HASH)  # the guide gives the hash, not the file
    assert qr.invoice_link("TEST", "1111111111", "2026-02-01", INVOICE) == DOC_KOD_I
    key = _key(key_type)
    for serial in ("01F20A5D352AE590", "01f20a5d352ae590", 0x01F20A5D352AE590):
        link = qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", serial, INVOICE, key)
        signed, _, signature = link.removeprefix("https://").rpartition("/")
        assert signed == DOC_SIGNED
        assert link == f"https://{DOC_SIGNED}/{signature}"
        assert signed == DOC_KOD_II.removeprefix("https://").rpartition("/")[0]
        _verify_as_the_guide_says(link, key.public_key())


def _key(key_type: str) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(65537, 2048)
    return ec.generate_private_key(ec.SECP256R1())


def _verify_as_the_guide_says(link: str, public_key: object) -> None:
    """Check a KOD II signature with kody-qr.md's parameters, written out here rather than taken
    from ``qr`` (whose own verify shares its signing's parameters, so a change to both would pass):
    RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a salt of exactly 32 bytes; or ECDSA P-256 with
    SHA-256, ``r||s`` of 32 bytes each (IEEE P1363), re-encoded to DER for the verifier."""
    signed, _, encoded = link.removeprefix("https://").rpartition("/")
    assert "=" not in encoded
    signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    if isinstance(public_key, rsa.RSAPublicKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public_key.verify(signature, signed.encode("utf-8"), pss, hashes.SHA256())
        return
    assert isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1"
    assert len(signature) == 64
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    public_key.verify(encode_dss_signature(r, s), signed.encode("utf-8"), ec.ECDSA(hashes.SHA256()))


# --- the certificate serial: KSeF's certificateSerialNumber, ^[0-9A-F]{16}$ ---------------------------


@pytest.mark.parametrize(
    ("serial", "message"),
    [
        # The Offline certificate reloaded from its .p12 and written f"{n:X}": its leading 0 lost, a
        # well-formed, well-signed link to a certificate KSeF never issued.
        ("1F20A5D352AE590", r"15 hex digits.*'01F20A5D352AE590'.*016X"),
        ("01", r"2 hex digits.*16, zero-padded"),
        ("001F20A5D352AE590", r"not a KSeF certificate serial number \(16 hex digits\)"),
        ("01F20A5D352AE59G", r"not a KSeF certificate serial number \(16 hex digits\)"),
        (0, r"above 0"),
        (-1, r"above 0"),
        (1 << 64, r"below 2\*\*64"),
    ],
)
def test_a_serial_of_other_than_16_hex_digits_is_refused(serial: str | int, message: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match=f"certificate_serial: .*{message}"):
        qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", serial, INVOICE, key)


def test_an_int_serial_is_written_with_16_digits() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    link = qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", 0x1F20A5D352AE590, INVOICE, key)
    assert "/1111111111/01F20A5D352AE590/" in link
    link = qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", 1, INVOICE, key)
    assert "/1111111111/0000000000000001/" in link
    with pytest.raises(TypeError, match="certificate_serial"):
        qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", True, INVOICE, key)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="private_key: required"):
        qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", SERIAL, INVOICE)  # type: ignore[call-overload]


# --- the certificate itself: KSeF's Offline type, valid, with its own key ----------------------------

USAGES = {  # certyfikaty-KSeF.md: "Authentication [...] keyUsage: Digital Signature", "Offline [...] Non-Repudiation"
    "Authentication": {"digital_signature": True, "content_commitment": False},
    "Offline": {"digital_signature": False, "content_commitment": True},
}


def _certificate(
    key: PrivateKey,
    kind: str | None = "Offline",
    *,
    valid: tuple[float, float] = (-1, 30),
    serial: int = 0x1F20A5D352AE590,
) -> x509.Certificate:
    """A certificate as KSeF issues them: the keyUsage of ``kind`` (``None``: no keyUsage), valid
    from ``valid[0]`` to ``valid[1]`` days from now."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "KSeF test")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now + dt.timedelta(days=valid[0]))
        .not_valid_after(now + dt.timedelta(days=valid[1]))
    )
    if kind is not None:
        usage = x509.KeyUsage(
            **USAGES[kind], key_encipherment=False, data_encipherment=False, key_agreement=False,
            key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_kod_ii_takes_the_offline_certificate_or_its_credentials(key_type: str) -> None:
    key = _key(key_type)
    certificate = _certificate(key)  # serial 0x1F20A5D352AE590: written 01F20A5D352AE590
    links = [
        qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", certificate, INVOICE, key),
        qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", SigningCredentials(certificate, key), INVOICE),
        qr.certificate_link(
            "TEST",
            "Nip",
            "1111111111",
            "1111111111",
            KSeFCredentials(certificate, key, serial_number=SERIAL, certificate_type="Offline", name="Offline 1"),
            INVOICE,
        ),
    ]
    for link in links:
        assert link.split("/")[7] == SERIAL
        _verify_as_the_guide_says(link, key.public_key())
    # Valid from a minute on: KSeF's clock a little ahead of this machine's, not a refusal.
    just_issued = _certificate(key, valid=(1 / 1440, 30))
    assert qr.certificate_link("TEST", "Nip", "1111111111", "1111111111", just_issued, INVOICE, key)


def test_kod_ii_refuses_a_certificate_that_may_not_sign_it() -> None:
    # kody-qr.md: "Certyfikat typu Authentication nie może być używany do generowania KODU II";
    # KSeF's check of a KOD II: the certificate "istnieje w rejestrze [...] i jest ważny", "nie
    # utracił ważności (validTo)", and the signature is right (so the key must be the certificate's).
    key = ec.generate_private_key(ec.SECP256R1())
    link = ("TEST", "Nip", "1111111111", "1111111111")
    refusals: list[tuple[SigningCredentials | x509.Certificate, str]] = [
        (_certificate(key, "Authentication"), "Digital Signature without Non-Repudiation: an Authentication"),
        (_certificate(key, None), "no keyUsage Non-Repudiation: not a KSeF certificate of type Offline"),
        (_certificate(key, valid=(-30, -1)), "the certificate expired at"),
        (_certificate(key, valid=(1, 30)), "the certificate is valid from .*not yet"),
        (_certificate(ec.generate_private_key(ec.SECP256R1())), "not the key of this certificate"),
        (
            KSeFCredentials(_certificate(key), key, serial_number=SERIAL, certificate_type="Authentication"),
            "a KSeF certificate of type 'Authentication'",
        ),
        (
            KSeFCredentials(_certificate(key), key, serial_number="0000000000000001", certificate_type="Offline"),
            "serial_number '0000000000000001' is not their certificate's \\(01F20A5D352AE590\\)",
        ),
        (self_signed_certificate(key_type="ec"), "no keyUsage Non-Repudiation"),  # a login certificate, not KSeF's
    ]
    for certificate, message in refusals:
        with pytest.raises(ValueError, match=f"(certificate_serial|private_key): .*{message}"):
            if isinstance(certificate, SigningCredentials):
                qr.certificate_link(*link, certificate, INVOICE)
            else:
                qr.certificate_link(*link, certificate, INVOICE, key)
    with pytest.raises(TypeError, match="private_key: not with credentials"):
        qr.certificate_link(*link, SigningCredentials(_certificate(key), key), INVOICE, key)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="private_key: required"):
        qr.certificate_link(*link, _certificate(key), INVOICE)  # type: ignore[call-overload]
