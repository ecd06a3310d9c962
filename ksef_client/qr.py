"""Verification links and QR codes printed on invoices (KOD I and KOD II).

- KOD I (every invoice shown outside KSeF): ``https://<qr host>/invoice/<seller NIP>/<P_1 as
  DD-MM-YYYY>/<SHA-256 of the invoice file, Base64URL>``; labelled with the KSeF number, or
  ``OFFLINE`` while the invoice has none.
- KOD II (offline invoices only): ``https://<qr host>/certificate/<context type>/<context value>/
  <seller NIP>/<KSeF certificate serial>/<invoice hash>/<signature>``, where the signature covers
  the link without ``https://`` and is made with the Offline-type KSeF certificate's key:
  RSASSA-PSS (SHA-256, salt 32) or ECDSA P-256 (SHA-256, ``r||s``; a link signed in ASN.1 DER, which
  the guide allows too, verifies as well). Labelled ``CERTYFIKAT``. The serial is KSeF's
  ``certificateSerialNumber``: 16 hex digits, leading zeros kept (``01F20A5D352AE590``).

Codes are drawn by segno (ISO/IEC 18004): as SVG with the label under the code, or as a PNG of the
code alone (the caller draws the label).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import io
import re
from typing import overload
from xml.sax.saxutils import escape

import segno
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ksef_client._keys import check_key_matches
from ksef_client.environments import Environment, parse_environment
from ksef_client.identifiers import validate_certificate_serial, validate_internal_id, validate_nip
from ksef_client.spec_version import pinned_schemas
from ksef_client.xades import CONTEXT_TYPES, PrivateKey, SigningCredentials

OFFLINE_LABEL = "OFFLINE"
CERTIFICATE_LABEL = "CERTYFIKAT"
OFFLINE_CERTIFICATE = "Offline"  # the KSeF certificate type that signs KOD II (KsefCertificateType)
# certificateSerialNumber, everywhere in the spec: "^[0-9A-F]{16}$": 64 bits at most.
_SERIAL_LIMIT = 1 << 64
# A certificate KSeF has just issued is valid from the moment of issue by KSeF's clock: one a few
# minutes ahead of this machine's is not refused as "not valid yet" (its end is not stretched).
_CLOCK_SKEW = dt.timedelta(minutes=5)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# Context types whose value starts with the NIP of the context (its check digit is checked too,
# as resources/auth.py does for a login's context; an InternalId's own last digit as well).
_NIP_FIRST = ("Nip", "InternalId", "NipVatUe")


def b64url(data: bytes) -> str:
    """Base64URL without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def invoice_hash(invoice: bytes) -> str:
    """SHA-256 of the invoice file in Base64URL (what both links carry)."""
    return b64url(hashlib.sha256(invoice).digest())


@functools.cache
def _context_patterns() -> dict[str, re.Pattern[str]]:
    """Each context type's pattern as the pinned spec defines it (``components.schemas.Nip``,
    ``InternalId``, ``NipVatUe``, ``PeppolId``): KOD II takes every value the spec allows, e.g. a
    NipVatUe whose Irish or Dutch VAT number has ``+`` or ``*`` (``IE\\d[A-Z0-9+*]\\d{5}[A-Z]``,
    ``NL[A-Z0-9+*]{12}``). ``re.ASCII``: ``\\d`` is 0-9 only, as in the spec's .NET patterns."""
    schemas = pinned_schemas()
    return {kind: re.compile(schemas[kind]["pattern"], re.ASCII) for kind in CONTEXT_TYPES}


def _check_context(context_type: str, context_value: str) -> None:
    """``ValueError`` unless ``context_value`` is a ``context_type`` identifier by the spec's
    pattern (and, where it starts with a NIP, that NIP's check digit holds)."""
    if context_type not in CONTEXT_TYPES:
        raise ValueError(f"context_type: {context_type!r} is not one of {', '.join(CONTEXT_TYPES)}")
    if not isinstance(context_value, str) or not _context_patterns()[context_type].fullmatch(context_value):
        raise ValueError(
            f"context_value: {context_value!r} is not a {context_type} identifier "
            f"(spec: components.schemas.{context_type}.pattern)"
        )
    if context_type in _NIP_FIRST:
        validate_nip(context_value[:10], "context_value")
    if context_type == "InternalId":  # its own check digit: every InternalId KSeF makes has one
        validate_internal_id(context_value, "context_value")


def _date(issue_date: dt.date | str) -> str:
    value = dt.date.fromisoformat(issue_date) if isinstance(issue_date, str) else issue_date
    return value.strftime("%d-%m-%Y")


def invoice_link(environment: Environment | str, seller_nip: str, issue_date: dt.date | str, invoice: bytes) -> str:
    """KOD I link of ``invoice`` (the exact bytes sent to KSeF); ``issue_date`` is ``P_1``."""
    validate_nip(seller_nip, "seller_nip")
    host = parse_environment(environment).qr_host
    return f"https://{host}/invoice/{seller_nip}/{_date(issue_date)}/{invoice_hash(invoice)}"


def _sign(private_key: PrivateKey, data: bytes) -> bytes:
    """The Ministry's rules (kody-qr.md): RSA-PSS with SHA-256 and a key of 2048 bits or more, or
    ECDSA on P-256 with SHA-256 as r||s of 32 bytes each; other keys are refused."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < 2048:
            raise ValueError(f"private_key: an RSA key of {private_key.key_size} bits; KSeF requires 2048 or more")
        return private_key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"private_key: an EC key on {private_key.curve.name}; KSeF requires P-256 (secp256r1)")
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (private_key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    raise ValueError("private_key: RSA or EC keys only")


@overload
def certificate_link(
    environment: Environment | str,
    context_type: str,
    context_value: str,
    seller_nip: str,
    certificate_serial: SigningCredentials,
    invoice: bytes,
    private_key: None = None,
) -> str: ...


@overload
def certificate_link(
    environment: Environment | str,
    context_type: str,
    context_value: str,
    seller_nip: str,
    certificate_serial: x509.Certificate | str | int,
    invoice: bytes,
    private_key: PrivateKey,
) -> str: ...


def certificate_link(
    environment: Environment | str,
    context_type: str,
    context_value: str,
    seller_nip: str,
    certificate_serial: SigningCredentials | x509.Certificate | str | int,
    invoice: bytes,
    private_key: PrivateKey | None = None,
) -> str:
    """KOD II link of an offline ``invoice``, signed with the key of the issuer's KSeF certificate
    of type ``Offline`` (kody-qr.md: "Certyfikat typu ``Authentication`` nie może być używany do
    generowania KODU II").

    ``certificate_serial`` names that certificate, in one of these forms:

    - its credentials, without ``private_key``: the ``KSeFCredentials`` that
      ``ksef.certificates.obtain(name, "Offline")`` returns, or ``SigningCredentials`` read back from
      its ``.p12`` (``SigningCredentials.from_pkcs12``). The serial is the certificate's, and
      before anything is signed a ``ValueError`` refuses a certificate that is not of the
      ``Offline`` type (its ``certificate_type``, or a keyUsage without Non-Repudiation, which
      certyfikaty-KSeF.md gives the ``Offline`` type alone: an ``Authentication`` certificate has
      Digital Signature), one outside its validity (not valid yet, with 5 minutes of leeway for
      KSeF's clock, or expired), and a key that is not the certificate's;
    - the ``x509.Certificate`` with its ``private_key``: checked the same way (but for the
      ``certificate_type``, which only ``KSeFCredentials`` know);
    - when only those are at hand, the serial with the ``private_key``: KSeF's
      ``certificateSerialNumber`` (16 hex digits, leading zeros kept: ``01F20A5D352AE590``; lower
      case is upper-cased) or the certificate's ``serial_number`` as an ``int`` (written
      ``f"{n:016X}"``). Nothing can then check the certificate's type or validity, nor that the
      key belongs to it: a wrong one gives a well-formed link that KSeF's verification page
      refuses.

    ``context_value`` must match the spec's pattern of ``context_type`` and goes into the path as
    it is, as the Ministry's C# and Java clients write it (``+`` and ``*`` of a NipVatUe are legal
    in a URL path, RFC 3986 sub-delims, and are signed as they stand)."""
    _check_context(context_type, context_value)
    validate_nip(seller_nip, "seller_nip")
    serial, key = _offline_signer(certificate_serial, private_key)
    host = parse_environment(environment).qr_host
    path = f"{host}/certificate/{context_type}/{context_value}/{seller_nip}/{serial}/{invoice_hash(invoice)}"
    return f"https://{path}/{b64url(_sign(key, path.encode()))}"


def _offline_signer(
    certificate: SigningCredentials | x509.Certificate | str | int, private_key: PrivateKey | None
) -> tuple[str, PrivateKey]:
    """The serial to write into a KOD II link and the key to sign it with, every check that the
    form of ``certificate`` allows made (``ValueError``; ``TypeError`` for a missing or extra key)."""
    if isinstance(certificate, SigningCredentials):
        if private_key is not None:
            raise TypeError("private_key: not with credentials, which carry their own key (leave it out)")
        kind = getattr(certificate, "certificate_type", "")  # KSeFCredentials know the type KSeF gave
        if kind and kind != OFFLINE_CERTIFICATE:
            raise ValueError(
                f"certificate_serial: a KSeF certificate of type {kind!r}; KOD II is signed with one of type"
                f' {OFFLINE_CERTIFICATE!r} (kody-qr.md), e.g. ksef.certificates.obtain(name, "Offline")'
            )
        serial = _checked_certificate(certificate.certificate, certificate.private_key)
        known = getattr(certificate, "serial_number", "")
        if known and known.upper() != serial:
            raise ValueError(
                f"certificate_serial: the credentials' serial_number {known!r} is not their certificate's ({serial})"
            )
        return serial, certificate.private_key
    if private_key is None:
        raise TypeError(
            "private_key: required with a certificate or a serial number (or pass the certificate's"
            ' credentials, e.g. what ksef.certificates.obtain(name, "Offline") returns, without it)'
        )
    if isinstance(certificate, x509.Certificate):
        return _checked_certificate(certificate, private_key), private_key
    return _serial(certificate), private_key


def _serial(value: str | int) -> str:
    """KSeF's ``certificateSerialNumber`` (``^[0-9A-F]{16}$``) of a serial given as text or int."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value < _SERIAL_LIMIT:
            raise ValueError(
                f"certificate_serial: {value} is not a KSeF certificate serial number (16 hex digits: above 0,"
                " below 2**64)"
            )
        return f"{value:016X}"
    if not isinstance(value, str):
        raise TypeError(
            "certificate_serial: the certificate's credentials, its x509.Certificate, or its serial number"
            f" (16 hex digits, or an int), not {type(value).__name__}"
        )
    if re.fullmatch(r"[0-9A-Fa-f]{1,15}", value):
        raise ValueError(
            f"certificate_serial: {value!r} has {len(value)} hex digits; a KSeF certificate serial number has"
            f' 16, zero-padded ({value.upper().zfill(16)!r}?): write an int serial as f"{{n:016X}}", or pass the'
            " certificate or its credentials"
        )
    return validate_certificate_serial(value, "certificate_serial")


def _checked_certificate(certificate: x509.Certificate, private_key: PrivateKey) -> str:
    """The serial of an Offline KSeF certificate valid now whose key ``private_key`` is, or
    ``ValueError`` saying which of those it is not. KSeF's ``certificateSerialNumber`` is the
    X.509 serial number: the Ministry's C# client writes the certificate's own
    (``X509Certificate2.SerialNumber``) into the KOD II its E2E test has KSeF verify."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.content_commitment:
        what = (
            "keyUsage Digital Signature without Non-Repudiation: an Authentication certificate"
            if usage is not None and usage.digital_signature
            else "no keyUsage Non-Repudiation: not a KSeF certificate of type Offline"
        )
        raise ValueError(
            f"certificate_serial: {what}; KOD II is signed with a KSeF certificate of type Offline"
            " (certyfikaty-KSeF.md: keyUsage Non-Repudiation; kody-qr.md: an Authentication certificate"
            ' "nie może być używany do generowania KODU II"), e.g. ksef.certificates.obtain(name, "Offline")'
        )
    now = dt.datetime.now(dt.UTC)
    if now + _CLOCK_SKEW < certificate.not_valid_before_utc:
        raise ValueError(
            f"certificate_serial: the certificate is valid from {certificate.not_valid_before_utc}, not yet"
        )
    if now > certificate.not_valid_after_utc:
        raise ValueError(f"certificate_serial: the certificate expired at {certificate.not_valid_after_utc}")
    check_key_matches(certificate, private_key)
    return _serial(certificate.serial_number)


def verify_certificate_link(link: str, public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bool:
    """Whether a KOD II link's signature was made by the key of ``public_key``; ``False`` (never an
    exception) for a link that is damaged or not a KOD II link. An ECDSA signature may be IEEE
    P1363 (``r||s``, what ``certificate_link`` makes) or ASN.1 DER: kody-qr.md allows both ("Może
    być zakodowana w jednym z dwóch formatów"), and the Ministry's Java client makes DER."""
    signed, _, signature_b64 = link.removeprefix("https://").rpartition("/")
    if not _BASE64URL.fullmatch(signature_b64):
        return False
    try:
        signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
        data = signed.encode()
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
            return True
        return any(_ecdsa_verifies(public_key, der, data) for der in _ecdsa_as_der(signature, public_key))
    except (InvalidSignature, ValueError):  # binascii.Error (bad Base64) is a ValueError
        return False


def _ecdsa_as_der(signature: bytes, public_key: ec.EllipticCurvePublicKey) -> list[bytes]:
    """The DER forms ``signature`` may stand for: itself, and, when it is ``r||s`` long, the DER
    of that pair (a DER signature of P-256 is 8 to 72 bytes, so 64 bytes may be either)."""
    size = (public_key.curve.key_size + 7) // 8
    candidates = [signature]
    if len(signature) == 2 * size:
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        candidates.insert(0, encode_dss_signature(r, s))
    return candidates


def _ecdsa_verifies(public_key: ec.EllipticCurvePublicKey, der: bytes, data: bytes) -> bool:
    try:
        public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def qr_png(link: str, *, scale: int = 5, border: int = 4) -> bytes:
    """The QR code of ``link`` as PNG bytes, the code alone: no label is drawn (segno writes no
    text). kody-qr.md requires one under the code (the KSeF number, ``OFFLINE``, ``CERTYFIKAT``):
    draw it where the image is placed (the PDF or page of the invoice), or use ``qr_svg``, which
    has it."""
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def qr_svg(link: str, label: str | None = None, *, scale: int = 5, border: int = 4) -> bytes:
    """The QR code of ``link`` as SVG, with ``label`` (KSeF number, OFFLINE, CERTYFIKAT) under it."""
    code = segno.make(link, error="m")
    out = io.BytesIO()
    code.save(out, kind="svg", scale=scale, border=border, xmldecl=False, svgns=True)
    svg = out.getvalue().decode()
    if label is None:
        return svg.encode()
    width, height = code.symbol_size(scale=scale, border=border)
    extra = 4 * scale
    svg = re.sub(r'height="\d+"', f'height="{height + extra}"', svg, count=1)
    svg = re.sub(r'viewBox="0 0 (\d+) (\d+)"', lambda m: f'viewBox="0 0 {m[1]} {int(m[2]) + extra}"', svg, count=1)
    text = (
        f'<text x="{width / 2}" y="{height + extra / 2}" text-anchor="middle" font-family="sans-serif" '
        f'font-size="{2 * scale}">{escape(label)}</text>'
    )
    return svg.replace("</svg>", text + "</svg>").encode()
