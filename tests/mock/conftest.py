"""Helpers for the emulator's own tests: raw HTTP answers (the spec's view, not the SDK's)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.crypto import EncryptedInvoice, SymmetricKey, sha256_b64
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.pytest_plugin import KSeFMock
from tests.conftest import NIP

FA3 = {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}


@pytest.fixture
def raw(ksef_mock: KSeFMock) -> Iterator[httpx.Client]:
    """An httpx client of the emulator's API, with an access token for NIP 5265877635."""
    headers = {"Authorization": f"Bearer {ksef_mock.token(NIP)}"}
    with httpx.Client(base_url=ksef_mock.base_url, headers=headers) as client:
        yield client


def sent_statuses(ksef: KSeF, invoices: list[bytes]) -> list[tuple[int, list[str]]]:
    """Send ``invoices`` unchecked in one online session; each invoice's status code and details."""
    with ksef.online_session(validate=False) as session:
        for xml in invoices:
            session.send(xml)
    assert session.reference_number is not None
    found = []
    for ref in session.invoice_reference_numbers:
        status = ksef.sessions.invoice(session.reference_number, ref).status
        found.append((status.code, [str(d) for d in status.details or []]))
    return found


def session_encryption(key: SymmetricKey) -> dict[str, str]:
    """The ``encryption`` object of a session request: ``key`` wrapped for the emulator."""
    return key.encryption_info(emulator_keys().symmetric_key_encryption.published())


def open_online(raw: httpx.Client, headers: dict[str, str] | None = None) -> tuple[str, SymmetricKey]:
    """``POST /sessions/online`` (FA(3)): the session's reference number and key."""
    key = SymmetricKey.generate()
    opened = raw.post("/sessions/online", json={"formCode": FA3, "encryption": session_encryption(key)},
                      headers=headers or {})  # fmt: skip
    assert opened.status_code == 201, opened.text
    return opened.json()["referenceNumber"], key


def send_online(
    raw: httpx.Client, reference_number: str, key: SymmetricKey, xml: bytes, **options: object
) -> httpx.Response:
    """``POST /sessions/online/{ref}/invoices`` of ``xml`` (``options``: ``offline``,
    ``hash_of_corrected_invoice``), unchecked."""
    body = EncryptedInvoice.build(key, xml).request_body(**options)  # type: ignore[arg-type]
    return raw.post(f"/sessions/online/{reference_number}/invoices", json=body)


def invoice_status(raw: httpx.Client, reference_number: str, invoice_reference_number: str) -> dict[str, Any]:
    """``GET /sessions/{ref}/invoices/{invoiceRef}`` as JSON."""
    answer = raw.get(f"/sessions/{reference_number}/invoices/{invoice_reference_number}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def zipped(files: dict[str, bytes]) -> bytes:
    """A batch package: ``files`` in a zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def open_batch(
    raw: httpx.Client, package: bytes, parts: int = 1, headers: dict[str, str] | None = None
) -> tuple[str, list[tuple[dict[str, Any], bytes]]]:
    """``POST /sessions/batch`` (FA(3)) of ``package`` cut into ``parts``: the session's reference
    number and each part's upload request with its encrypted bytes."""
    key = SymmetricKey.generate()
    size = -(-len(package) // parts)
    encrypted = [key.encrypt(package[i : i + size]) for i in range(0, len(package), size)]
    declared = [
        {"ordinalNumber": n, "fileSize": len(part), "fileHash": sha256_b64(part)} for n, part in enumerate(encrypted, 1)
    ]
    batch_file = {"fileSize": len(package), "fileHash": sha256_b64(package), "fileParts": declared}
    body = {"formCode": FA3, "batchFile": batch_file, "encryption": session_encryption(key)}
    opened = raw.post("/sessions/batch", json=body, headers=headers or {})
    assert opened.status_code == 201, opened.text
    return opened.json()["referenceNumber"], list(zip(opened.json()["partUploadRequests"], encrypted, strict=True))


def upload(parts: list[tuple[dict[str, Any], bytes]]) -> list[int]:
    """PUT each part to its upload URL: the HTTP statuses."""
    return [httpx.put(request["url"], content=data, headers=request["headers"]).status_code for request, data in parts]
