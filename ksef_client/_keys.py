"""Private keys and self-signed certificates: the helpers that signing (``xades``), QR codes
(``qr``) and test credentials (``testing``, ``mock.peppol``) share."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(key_type: str) -> PrivateKey:
    """A new RSA 2048 (``"rsa"``) or EC P-256 (``"ec"``) key; ``ValueError`` for another type."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key_type: {key_type!r} is not 'rsa' or 'ec'")


def self_signed(name: x509.Name, key: PrivateKey, valid_days: int) -> x509.Certificate:
    """A certificate of ``name`` signed with its own ``key``, valid from an hour ago (a clock
    behind the verifier's) for ``valid_days``."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )


def check_key_matches(certificate: x509.Certificate, key: PrivateKey) -> None:
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
