"""KSeF's encryption: RSA-OAEP key wrapping, AES-256-CBC invoices, SHA-256 hashes, public keys.

Both sides use this module: the client encrypts, the emulator decrypts with the same primitives
(``cryptography`` does the math). Parameters per KSeF 2.0: RSA-OAEP with SHA-256 and MGF1-SHA-256
and no label; AES-256-CBC with PKCS#7 padding, a random 32-byte key and 16-byte IV, the IV sent
apart (not prefixed to the ciphertext); hashes SHA-256 in standard Base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ksef_client.errors import ResponseFormatError

TOKEN_ENCRYPTION = "KsefTokenEncryption"  # noqa: S105 - a usage name, not a secret
SYMMETRIC_KEY_ENCRYPTION = "SymmetricKeyEncryption"
AES_KEY_BYTES = 32
AES_BLOCK_BYTES = 16


def sha256_b64(data: bytes) -> str:
    """SHA-256 in standard Base64 (44 characters), as KSeF writes hashes."""
    return digest_b64(hashlib.sha256(data))


def digest_b64(digest: hashlib._Hash) -> str:
    """A hash computed piece by piece (``hashlib.sha256()`` fed with ``update``), as KSeF writes it."""
    return base64.b64encode(digest.digest()).decode()


def _oaep() -> OAEP:
    return OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def rsa_encrypt(public_key: rsa.RSAPublicKey, data: bytes) -> bytes:
    """RSA-OAEP (SHA-256, MGF1-SHA-256, no label)."""
    return public_key.encrypt(data, _oaep())


def rsa_decrypt(private_key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """Inverse of ``rsa_encrypt`` (the emulator's side)."""
    return private_key.decrypt(data, _oaep())


@dataclass(frozen=True)
class PublicKeyCertificate:
    """One entry of ``GET /security/public-key-certificates``."""

    certificate: x509.Certificate
    usage: frozenset[str]
    valid_from: dt.datetime
    valid_to: dt.datetime
    public_key_id: str | None = None

    @classmethod
    def from_der_b64(
        cls,
        der_b64: str,
        usage: Iterable[str],
        valid_from: dt.datetime,
        valid_to: dt.datetime,
        public_key_id: str | None = None,
    ) -> PublicKeyCertificate:
        """Build from the API's Base64 DER certificate."""
        certificate = x509.load_der_x509_certificate(base64.b64decode(der_b64))
        return cls(certificate, frozenset(usage), _aware(valid_from), _aware(valid_to), public_key_id)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The RSA key to wrap with (KSeF's keys are RSA)."""
        key = self.certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("KSeF public key certificate does not hold an RSA key")
        return key

    def valid_at(self, when: dt.datetime) -> bool:
        """Whether ``when`` lies in the certificate's validity window."""
        return self.valid_from <= when <= self.valid_to


def public_key_id(public_key: rsa.RSAPublicKey) -> str:
    """``publicKeyId``: Base64 SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return sha256_b64(der)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class NoUsableCertificateError(ResponseFormatError, ValueError):
    """KSeF's list of public key certificates holds none for the usage, valid now (the server's
    fault: a ``ResponseFormatError``; a ``ValueError`` as before)."""


def select_certificate(
    certificates: Iterable[PublicKeyCertificate], usage: str, now: dt.datetime | None = None
) -> PublicKeyCertificate:
    """The certificate for ``usage`` valid now with the latest ``valid_from`` (KSeF rotates keys)."""
    when = now or dt.datetime.now(dt.UTC)
    usable = [c for c in certificates if usage in c.usage and c.valid_at(when)]
    if not usable:
        raise NoUsableCertificateError(f"KSeF publishes no {usage} certificate valid at {when.isoformat()}")
    return max(usable, key=lambda c: c.valid_from)


def encrypt_ksef_token(certificate: PublicKeyCertificate, token: str, timestamp_ms: int) -> str:
    """``encryptedToken`` for ``POST /auth/ksef-token``: RSA-OAEP over ``{token}|{timestampMs}``."""
    return base64.b64encode(rsa_encrypt(certificate.public_key, f"{token}|{timestamp_ms}".encode())).decode()


@dataclass(frozen=True)
class SymmetricKey:
    """An AES-256 key and IV for one session or export; the key never appears in reprs."""

    key: bytes = field(repr=False)
    iv: bytes

    @classmethod
    def generate(cls) -> SymmetricKey:
        """A fresh random key and IV."""
        return cls(os.urandom(AES_KEY_BYTES), os.urandom(AES_BLOCK_BYTES))

    def __post_init__(self) -> None:
        if len(self.key) != AES_KEY_BYTES or len(self.iv) != AES_BLOCK_BYTES:
            raise ValueError("SymmetricKey: AES-256 needs a 32-byte key and a 16-byte IV")

    def encryption_info(self, certificate: PublicKeyCertificate) -> dict[str, str]:
        """The ``encryption`` object of session and export requests (key wrapped by RSA-OAEP)."""
        wrapped = rsa_encrypt(certificate.public_key, self.key)
        return {
            "encryptedSymmetricKey": base64.b64encode(wrapped).decode(),
            "initializationVector": base64.b64encode(self.iv).decode(),
        }

    def encrypt(self, data: bytes) -> bytes:
        """AES-256-CBC with PKCS#7 padding."""
        return b"".join(self.encrypt_stream([data]))

    def encrypt_stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Encrypt chunk by chunk (large batch parts never sit in memory whole)."""
        encryptor = self.encryptor()
        for chunk in chunks:
            yield encryptor.update(chunk)
        yield encryptor.finalize()

    def encryptor(self) -> PaddedEncryptor:
        """An AES-256-CBC/PKCS#7 encryptor fed by the caller, chunk by chunk."""
        return PaddedEncryptor(self)

    def decrypt(self, data: bytes, *, expected_sha256: str | None = None) -> bytes:
        """Inverse of ``encrypt``; ``ValueError`` on bad padding or length.

        Padding is not a key check: bytes decrypted with a wrong key end in a valid PKCS#7 pad
        about once in 250 tries. A wrong key (or damaged data) is detected for certain only by the
        plaintext's hash, which KSeF always gives (``invoiceHash``, an export part's ``partHash``):
        pass it as ``expected_sha256`` (Base64, as KSeF writes it) and a mismatch raises
        ``ValueError`` too.
        """
        plain = b"".join(self.decrypt_stream([data]))
        if expected_sha256 is not None and sha256_b64(plain) != expected_sha256:
            raise ValueError("decrypted data does not match its SHA-256: wrong key or damaged data")
        return plain

    def decrypt_stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Decrypt chunk by chunk; ``ValueError`` at the end if the padding is wrong (a wrong key
        can pass that check: compare the plaintext's hash, as the export download does)."""
        decryptor = self.decryptor()
        for chunk in chunks:
            yield decryptor.update(chunk)
        yield decryptor.finalize()

    def decryptor(self) -> PaddedDecryptor:
        """An AES-256-CBC/PKCS#7 decryptor fed by the caller, chunk by chunk."""
        return PaddedDecryptor(self)


def encryption_for(key: SymmetricKey, keys: Iterable[PublicKeyCertificate]) -> dict[str, str]:
    """The ``encryption`` object of session and export requests: ``key`` wrapped for the current
    SymmetricKeyEncryption certificate."""
    certificate = select_certificate(keys, SYMMETRIC_KEY_ENCRYPTION)
    info = key.encryption_info(certificate)
    if certificate.public_key_id:
        info["publicKeyId"] = certificate.public_key_id
    return info


class PaddedEncryptor:
    """AES-256-CBC with PKCS#7 padding over data that arrives in chunks of any size."""

    def __init__(self, key: SymmetricKey) -> None:
        self._padder = padding.PKCS7(128).padder()
        self._cipher = Cipher(algorithms.AES(key.key), modes.CBC(key.iv)).encryptor()

    def update(self, chunk: bytes) -> bytes:
        """The ciphertext of the whole blocks so far (the rest waits for more data)."""
        return self._cipher.update(self._padder.update(chunk))

    def finalize(self) -> bytes:
        """The last, padded block(s)."""
        return self._cipher.update(self._padder.finalize()) + self._cipher.finalize()


class PaddedDecryptor:
    """The inverse of ``PaddedEncryptor``; ``finalize`` raises ``ValueError`` on bad padding."""

    def __init__(self, key: SymmetricKey) -> None:
        self._unpadder = padding.PKCS7(128).unpadder()
        self._cipher = Cipher(algorithms.AES(key.key), modes.CBC(key.iv)).decryptor()

    def update(self, chunk: bytes) -> bytes:
        """The plain bytes known so far (the last block waits: it may be padding)."""
        return self._unpadder.update(self._cipher.update(chunk))

    def finalize(self) -> bytes:
        """The rest, padding removed."""
        return self._unpadder.update(self._cipher.finalize()) + self._unpadder.finalize()


def encrypted_size(plain_size: int) -> int:
    """Size of the AES-CBC/PKCS#7 ciphertext of ``plain_size`` bytes."""
    return (plain_size // AES_BLOCK_BYTES + 1) * AES_BLOCK_BYTES


@dataclass(frozen=True)
class EncryptedInvoice:
    """What ``POST /sessions/online/{ref}/invoices`` needs for one invoice."""

    invoice_hash: str
    invoice_size: int
    encrypted_hash: str
    encrypted_size: int
    encrypted_content: bytes = field(repr=False)

    @classmethod
    def build(cls, key: SymmetricKey, xml: bytes) -> EncryptedInvoice:
        """Encrypt ``xml`` and compute the hashes and sizes of both forms."""
        ciphertext = key.encrypt(xml)
        return cls(sha256_b64(xml), len(xml), sha256_b64(ciphertext), len(ciphertext), ciphertext)

    def request_body(self, *, offline: bool = False, hash_of_corrected_invoice: str | None = None) -> dict[str, object]:
        """The JSON body of the send-invoice request."""
        body: dict[str, object] = {
            "invoiceHash": self.invoice_hash,
            "invoiceSize": self.invoice_size,
            "encryptedInvoiceHash": self.encrypted_hash,
            "encryptedInvoiceSize": self.encrypted_size,
            "encryptedInvoiceContent": base64.b64encode(self.encrypted_content).decode(),
            "offlineMode": offline,
        }
        if hash_of_corrected_invoice is not None:
            body["hashOfCorrectedInvoice"] = hash_of_corrected_invoice
        return body
