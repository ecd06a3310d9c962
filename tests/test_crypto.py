"""KSeF's encryption primitives: what the client encrypts, the emulator's private keys decrypt."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt

import pytest

from ksef_client.crypto import (
    SYMMETRIC_KEY_ENCRYPTION,
    TOKEN_ENCRYPTION,
    EncryptedInvoice,
    SymmetricKey,
    encrypt_ksef_token,
    encrypted_size,
    rsa_decrypt,
    select_certificate,
    sha256_b64,
)
from ksef_client.mock.keys import emulator_keys


def test_aes_round_trip_and_sizes() -> None:
    key = SymmetricKey.generate()
    for size in (0, 1, 15, 16, 17, 100_000):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        ciphertext = key.encrypt(data)
        assert len(ciphertext) == encrypted_size(size)
        assert key.decrypt(ciphertext) == data
        assert b"".join(key.encrypt_stream([data[:7], data[7:]])) == ciphertext


def test_a_wrong_key_is_detected_by_the_hash_every_time() -> None:
    # Padding alone lets a wrong key through ~0.4 % of the time (82 in 20,000 in issue 20): the
    # plaintext's SHA-256, which KSeF always sends, is what detects it deterministically.
    plain = b"<Faktura/>" * 10
    ciphertext = SymmetricKey.generate().encrypt(plain)
    for _ in range(2000):
        with pytest.raises(ValueError):
            SymmetricKey.generate().decrypt(ciphertext, expected_sha256=sha256_b64(plain))


def test_a_wrong_key_never_gives_back_the_plaintext() -> None:
    # Without the hash the only claim is this one: an error, or bytes that are not the invoice.
    plain = b"<Faktura/>" * 10
    ciphertext = SymmetricKey.generate().encrypt(plain)
    for _ in range(2000):
        with contextlib.suppress(ValueError):
            assert SymmetricKey.generate().decrypt(ciphertext) != plain


def test_the_right_key_passes_the_hash_check() -> None:
    key, plain = SymmetricKey.generate(), b"<Faktura/>" * 10
    assert key.decrypt(key.encrypt(plain), expected_sha256=sha256_b64(plain)) == plain


def test_key_is_not_in_repr_and_is_checked() -> None:
    key = SymmetricKey.generate()
    assert key.key.hex() not in repr(key)
    with pytest.raises(ValueError, match="32-byte key"):
        SymmetricKey(b"short", bytes(16))


def test_wrapped_key_and_token_decrypt_with_the_private_keys() -> None:
    keys = emulator_keys()
    certificates = [pair.published() for pair in keys.published]
    key = SymmetricKey.generate()
    info = key.encryption_info(select_certificate(certificates, SYMMETRIC_KEY_ENCRYPTION))
    unwrapped = rsa_decrypt(keys.symmetric_key_encryption.private_key, base64.b64decode(info["encryptedSymmetricKey"]))
    assert unwrapped == key.key
    assert base64.b64decode(info["initializationVector"]) == key.iv
    token = encrypt_ksef_token(select_certificate(certificates, TOKEN_ENCRYPTION), "secret-token", 1700000000123)
    plain = rsa_decrypt(keys.token_encryption.private_key, base64.b64decode(token))
    assert plain == b"secret-token|1700000000123"


def test_select_certificate_takes_the_newest_valid_one() -> None:
    pair = emulator_keys().symmetric_key_encryption.published()
    newer = type(pair)(pair.certificate, pair.usage, pair.valid_from + dt.timedelta(days=1), pair.valid_to, "newer")
    expired = type(pair)(pair.certificate, pair.usage, pair.valid_from, pair.valid_from + dt.timedelta(days=1), "old")
    now = pair.valid_from + dt.timedelta(days=30)
    assert select_certificate([pair, newer, expired], SYMMETRIC_KEY_ENCRYPTION, now).public_key_id == "newer"
    with pytest.raises(ValueError, match="no KsefTokenEncryption certificate"):
        select_certificate([pair], TOKEN_ENCRYPTION, now)


def test_encrypted_invoice_describes_both_forms() -> None:
    key = SymmetricKey.generate()
    xml = b"<Faktura>1</Faktura>"
    invoice = EncryptedInvoice.build(key, xml)
    body = invoice.request_body()
    assert body["invoiceHash"] == sha256_b64(xml) and body["invoiceSize"] == len(xml)
    content = base64.b64decode(str(body["encryptedInvoiceContent"]))
    assert body["encryptedInvoiceHash"] == sha256_b64(content) and body["encryptedInvoiceSize"] == len(content)
    assert key.decrypt(content) == xml
    assert "encryptedInvoiceContent" not in repr(invoice) and "encrypted_content" not in repr(invoice)
