"""Payloads the benchmarks parse: realistic KSeF pages, written once to JSON files."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from ksef_client.identifiers import make_ksef_number, make_reference_number


def _hash(i: int) -> str:
    return base64.b64encode(hashlib.sha256(str(i).encode()).digest()).decode()


def session_invoices_page(count: int = 1000) -> dict[str, Any]:
    """A ``SessionInvoicesResponse`` page of accepted invoices with UPO links, as KSeF sends it."""
    invoices = [
        {
            "ordinalNumber": i + 1,
            "invoiceNumber": f"FV/{i}/2026",
            "ksefNumber": make_ksef_number("5265877635", "20261125", f"{i:012X}"),
            "referenceNumber": make_reference_number("20261125", "EE", f"{i:020X}"),
            "invoiceHash": _hash(i),
            "invoiceFileName": f"invoice-{i}.xml",
            "acquisitionDate": "2026-11-25T10:15:30.1234567+00:00",
            "invoicingDate": "2026-11-25T10:15:29.7654321+00:00",
            "permanentStorageDate": "2026-11-25T10:15:31.1111111+00:00",
            "upoDownloadUrl": f"https://ksef-upo.blob.core.windows.net/upo/{i}?sv=2024&sig=abc",
            "upoDownloadUrlExpirationDate": "2026-11-25T11:15:31+00:00",
            "invoicingMode": "Online",
            "status": {"code": 200, "description": "Sukces"},
        }
        for i in range(count)
    ]
    return {"continuationToken": "eyJvIjoxMDAwfQ", "invoices": invoices}


def metadata_page(count: int = 250) -> dict[str, Any]:
    """A ``QueryInvoicesMetadataResponse`` page."""
    invoices = [
        {
            "ksefNumber": make_ksef_number("5265877635", "20261125", f"{i:012X}"),
            "invoiceNumber": f"FV/{i}/2026",
            "issueDate": "2026-11-20",
            "invoicingDate": "2026-11-25T10:15:29.7654321+00:00",
            "acquisitionDate": "2026-11-25T10:15:30.1234567+00:00",
            "permanentStorageDate": "2026-11-25T10:15:31.1111111+00:00",
            "seller": {"nip": "5265877635", "name": "Sprzedawca sp. z o.o."},
            "buyer": {"identifier": {"type": "Nip", "value": "1111111111"}, "name": "Nabywca S.A."},
            "netAmount": 100.0,
            "grossAmount": 123.0,
            "vatAmount": 23.0,
            "currency": "PLN",
            "invoicingMode": "Online",
            "invoiceType": "Vat",
            "formCode": {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"},
            "isSelfInvoicing": False,
            "hasAttachment": False,
            "invoiceHash": _hash(i),
        }
        for i in range(count)
    ]
    return {
        "hasMore": True,
        "isTruncated": False,
        "permanentStorageHwmDate": "2026-11-25T10:15:31+00:00",
        "invoices": invoices,
    }


def write_payloads(directory: Path) -> dict[str, Path]:
    """Write both pages as JSON; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "session_invoices": directory / "session_invoices_1000.json",
        "metadata": directory / "metadata_250.json",
    }
    files["session_invoices"].write_text(json.dumps(session_invoices_page()), encoding="utf-8")
    files["metadata"].write_text(json.dumps(metadata_page()), encoding="utf-8")
    return files
