"""The emulator's own key pairs: token encryption, symmetric-key encryption and UPO signing.

Like KSeF, the emulator publishes one RSA certificate per usage at
``GET /security/public-key-certificates`` and decrypts with the private halves. Keys are made
once per process (RSA generation costs ~50 ms) and shared by every backend.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ksef_client.crypto import (
    SYMMETRIC_KEY_ENCRYPTION,
    TOKEN_ENCRYPTION,
    PublicKeyCertificate,
    public_key_id,
    sha256_b64,
)


@dataclass(frozen=True)
class KeyPair:
    """A private key and its self-signed certificate."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey = field(repr=False)
    usage: str

    @property
    def der_b64(self) -> str:
        """The certificate as the API publishes it."""
        return base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()

    @property
    def certificate_id(self) -> str:
        """``certificateId`` (bezpieczenstwo/klucze-publiczne-do-szyfrowania.md): "skrót SHA-256 z
        DER certyfikatu zakodowany w formacie Base64"."""
        return sha256_b64(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def public_key_id(self) -> str:
        """Base64 SHA-256 of the SubjectPublicKeyInfo."""
        return public_key_id(self.private_key.public_key())

    def published(self) -> PublicKeyCertificate:
        """The client-side view of this certificate."""
        cert = self.certificate
        return PublicKeyCertificate(
            cert, frozenset({self.usage}), cert.not_valid_before_utc, cert.not_valid_after_utc, self.public_key_id
        )


def _key_pair(common_name: str, usage: str) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "KSeF emulator (ksef_client.mock)"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        ]
    )
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key, usage)


@dataclass(frozen=True)
class EmulatorKeys:
    """Every key the emulator uses."""

    token_encryption: KeyPair
    symmetric_key_encryption: KeyPair
    upo_signing: KeyPair

    @property
    def published(self) -> tuple[KeyPair, ...]:
        """The certificates ``GET /security/public-key-certificates`` lists."""
        return (self.token_encryption, self.symmetric_key_encryption)

    def by_public_key_id(self, key_id: str, usage: str) -> KeyPair | None:
        """The key pair of ``usage`` with this ``publicKeyId`` (``None``: unknown id)."""
        pair = self.token_encryption if usage == TOKEN_ENCRYPTION else self.symmetric_key_encryption
        return pair if pair.public_key_id == key_id else None


_installed: list[EmulatorKeys] = []
_lock = threading.Lock()


def emulator_keys() -> EmulatorKeys:
    """The process-wide keys (made on first use, or restored from a state file)."""
    with _lock:
        if not _installed:
            _installed.append(
                EmulatorKeys(
                    _key_pair("KSeF emulator token encryption", TOKEN_ENCRYPTION),
                    _key_pair("KSeF emulator symmetric key encryption", SYMMETRIC_KEY_ENCRYPTION),
                    _key_pair("KSeF emulator UPO signature", "UpoSigning"),
                )
            )
        return _installed[0]


def install_keys(keys: EmulatorKeys) -> None:
    """Use ``keys`` from now on (``ksef-mock --state`` restores the keys of an earlier run)."""
    with _lock:
        _installed[:] = [keys]
