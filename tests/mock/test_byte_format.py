"""``format: byte`` (Base64) is checked in requests and answers.

OpenAPI's ``byte`` is "base64 encoded characters"; the spec uses it for every hash
(``Sha256HashBase64``: invoiceHash, fileHash, x-ms-meta-hash), the encrypted key and IV, the
encrypted invoice, CSRs, certificates, ``publicKeyId``, ``certificateId``. The validator runs JSON
Schema Draft 4, which has no such format, so it let anything through: a URL-safe hash (what KSeF's
.NET byte[] binding refuses) passed requests and strict mode alike.
"""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from ksef_client.mock.validation import is_base64, schema_errors
from tests.mock.conftest import open_online


def _errors(schema: str, value: object) -> list[str]:
    return schema_errors({"$ref": f"#/components/schemas/{schema}"}, value)


def _url_safe_hash() -> str:
    """A SHA-256 whose URL-safe Base64 differs from the standard one."""
    n = 0
    while True:
        digest = hashlib.sha256(str(n).encode()).digest()
        if set(base64.b64encode(digest).decode()) & set("+/"):
            return base64.urlsafe_b64encode(digest).decode()
        n += 1


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("", True),
        ("QQ==", True),
        ("QUI=", True),
        ("QUJD", True),
        ("ab+/" * 11, True),
        ("QQ", False),  # unpadded
        ("QQ=", False),
        ("ab-_", False),  # URL-safe alphabet
        ("QU JD", False),
        ("Q===", False),
        ("%%%", False),
    ],
)
def test_base64_is_the_standard_alphabet_padded(value: str, valid: bool) -> None:
    assert is_base64(value) is valid


def test_the_validator_checks_format_byte() -> None:
    assert _errors("Sha256HashBase64", _url_safe_hash())
    assert _errors("Sha256HashBase64", "not base64 at all, but 44 characters long!!!")
    assert _errors("EncryptionInfo", {"encryptedSymmetricKey": "%%%", "initializationVector": "***"})
    assert _errors("Sha256HashBase64", base64.b64encode(hashlib.sha256(b"x").digest()).decode()) == []


def test_a_request_with_a_url_safe_hash_is_refused_with_21405(raw: httpx.Client) -> None:
    reference, _ = open_online(raw)
    body = {"invoiceHash": _url_safe_hash(), "invoiceSize": 10, "encryptedInvoiceHash": _url_safe_hash(),
            "encryptedInvoiceSize": 16, "encryptedInvoiceContent": base64.b64encode(b"0" * 16).decode()}  # fmt: skip
    answer = raw.post(f"/sessions/online/{reference}/invoices", json=body)
    assert answer.status_code == 400
    assert "21405" in answer.text and "invoiceHash" in answer.text


def test_the_emulators_own_base64_answers_conform(raw: httpx.Client) -> None:
    # certificateId was the certificate's serial number in hex: not Base64 (the guide,
    # bezpieczenstwo/klucze-publiczne-do-szyfrowania.md: "skrót SHA-256 z DER certyfikatu
    # zakodowany w formacie Base64"); the strict fixture fails the test on any violation.
    keys = raw.get("/security/public-key-certificates").json()
    der = [base64.b64decode(k["certificate"]) for k in keys]
    assert [k["certificateId"] for k in keys] == [base64.b64encode(hashlib.sha256(d).digest()).decode() for d in der]
