"""Verification links and QR codes printed on invoices (KOD I and KOD II).

- KOD I (every invoice shown outside KSeF): ``https://<qr host>/invoice/<seller NIP>/<P_1 as
  DD-MM-YYYY>/<SHA-256 of the invoice file, Base64URL>``; labelled with the KSeF number, or
  ``OFFLINE`` while the invoice has none.
- KOD II (offline invoices only): ``https://<qr host>/certificate/<context type>/<context value>/
  <seller NIP>/<KSeF certificate serial>/<invoice hash>/<signature>``, where the signature covers
  the link without ``https://`` and is made with the Offline-type KSeF certificate's key:
  RSASSA-PSS (SHA-256, salt 32) or ECDSA P-256 (SHA-256, ``r||s``; a link signed in ASN.1 DER, which
  the guide allows too, verifies as well). Labelled ``CERTYFIKAT``.

Codes are drawn by segno (ISO/IEC 18004) as PNG or as SVG with the label under the code.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import io
import re
from xml.sax.saxutils import escape

import segno
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ksef_client.environments import Environment, parse_environment
from ksef_client.identifiers import validate_internal_id, validate_nip
from ksef_client.spec_version import pinned_schemas
from ksef_client.xades import CONTEXT_TYPES, PrivateKey

OFFLINE_LABEL = "OFFLINE"
_SERIAL = re.compile(r"[0-9A-F]{1,40}")
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


def certificate_link(
    environment: Environment | str,
    context_type: str,
    context_value: str,
    seller_nip: str,
    certificate_serial: str,
    invoice: bytes,
    private_key: PrivateKey,
) -> str:
    """KOD II link of an offline ``invoice``, signed with the KSeF (Offline) certificate's key.

    ``context_value`` must match the spec's pattern of ``context_type`` and goes into the path as
    it is, as the Ministry's C# and Java clients write it (``+`` and ``*`` of a NipVatUe are legal
    in a URL path, RFC 3986 sub-delims, and are signed as they stand)."""
    _check_context(context_type, context_value)
    validate_nip(seller_nip, "seller_nip")
    serial = certificate_serial.upper()
    if not _SERIAL.fullmatch(serial):
        raise ValueError(f"certificate_serial: {certificate_serial!r} is not a hexadecimal serial number")
    host = parse_environment(environment).qr_host
    path = f"{host}/certificate/{context_type}/{context_value}/{seller_nip}/{serial}/{invoice_hash(invoice)}"
    return f"https://{path}/{b64url(_sign(private_key, path.encode()))}"


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
    """The QR code of ``link`` as PNG bytes."""
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
