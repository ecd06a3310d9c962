"""Defects the independent SDKs found, reintroduced on purpose: strict mode reports each one the
moment a flow meets it, without a test written for that field (issue 16: "the suite must catch
this class of defect by itself")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.responses import Response

from ksef_client import KSeF
from ksef_client.crypto import sha256_b64
from ksef_client.errors import InternalServerError
from ksef_client.mock import KSeFBackend, exceptions
from ksef_client.mock.app import EmulatorApp
from ksef_client.mock.routes import invoices as invoices_routes
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state import invoices as invoices_state
from ksef_client.testing import sample_invoice

NIP = "5265877635"


@pytest.fixture
def strict() -> Iterator[tuple[KSeF, EmulatorApp]]:
    with ThreadedServer(KSeFBackend(), strict=True) as server:
        token = server.backend.mint_access_token(NIP)
        with KSeF(base_url=server.base_url, access_token=token, max_retries=0) as client:
            yield client, server.app


def _send_one(ksef: KSeF) -> None:
    with ksef.online_session() as session:
        session.send(sample_invoice("FV/1/2026"))
    assert session.reference_number is not None
    ksef.sessions.wait(session.reference_number)


def test_raw_rodzaj_faktury_in_metadata_is_caught(strict: tuple[KSeF, EmulatorApp], monkeypatch: Any) -> None:
    ksef, app = strict
    _send_one(ksef)
    monkeypatch.setattr(invoices_state.InvoiceFields, "invoice_type", property(lambda fields: fields.kind))
    with pytest.raises(InternalServerError):
        list(ksef.invoices.query("Subject1", date_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
    assert len(app.violations) == 1 and "invoiceType" in app.violations[0] and "VAT" in app.violations[0]


def test_an_export_package_without_compression_type_is_caught(
    strict: tuple[KSeF, EmulatorApp], monkeypatch: Any, tmp_path: Any
) -> None:
    ksef, app = strict
    _send_one(ksef)
    real = invoices_state.Invoices._build_export

    def without_compression(self: Any, export: Any) -> None:
        real(self, export)
        export.package.pop("compressionType")

    monkeypatch.setattr(invoices_state.Invoices, "_build_export", without_compression)
    with pytest.raises(InternalServerError):
        ksef.invoices.export(tmp_path, date_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1), interval=0)
    assert (
        len(app.violations) == 1 and "GET /invoices/exports/{referenceNumber} -> 200: body package" in app.violations[0]
    )


def test_a_403_without_its_reason_code_is_caught(strict: tuple[KSeF, EmulatorApp], monkeypatch: Any) -> None:
    ksef, app = strict
    real = exceptions.Forbidden.__init__

    def without_reason(self: exceptions.Forbidden, detail: str, *args: Any, **kwargs: Any) -> None:
        real(self, detail, *args, **kwargs)
        self.reason_code = None  # type: ignore[assignment]

    monkeypatch.setattr(exceptions.Forbidden, "__init__", without_reason)
    reader = ksef.with_options(max_retries=0)
    reader.access_token = app.state.backend.mint_access_token(NIP, permissions=["InvoiceWrite"])
    with pytest.raises(InternalServerError):  # the metadata query needs InvoiceRead: a 403
        list(reader.invoices.query("Subject1", date_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
    assert "reasonCode" in app.violations[0]


def test_a_document_whose_hash_header_is_not_its_sha256_is_caught(
    strict: tuple[KSeF, EmulatorApp], monkeypatch: Any
) -> None:
    # x-ms-meta-hash is a declared header of the API's UPO and invoice downloads: strict mode holds
    # it to its schema and to the body it comes with (the SDK's own hash check is not the judge).
    ksef, app = strict
    _send_one(ksef)
    ksef_number = app.state.backend.invoices.state.accepted[0].ksef_number

    def misdeclared(data: bytes) -> Response:
        return Response(data, media_type="application/xml", headers={"x-ms-meta-hash": sha256_b64(data + b"!")})

    monkeypatch.setattr(invoices_routes, "xml_response", misdeclared)
    with pytest.raises(InternalServerError):
        ksef.invoices.get(ksef_number)
    assert len(app.violations) == 1 and "x-ms-meta-hash is not the SHA-256 of the body" in app.violations[0]


def test_an_export_package_whose_metadata_breaks_the_spec_is_caught(
    strict: tuple[KSeF, EmulatorApp], monkeypatch: Any, tmp_path: Any
) -> None:
    # The spec (POST /invoices/exports): _metadata.json holds "obiekt z tablicą invoices, gdzie każdy
    # element jest obiektem typu InvoiceMetadata". The package comes encrypted from storage, where
    # strict mode never looked: these four faults all reached the SDK's ExportResult.metadata.
    ksef, app = strict
    _send_one(ksef)
    real = invoices_state.metadata_of

    def broken(invoice: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        record = dict(real(invoice, *args, **kwargs))
        record["invoiceType"] = "VAT"  # not in the InvoiceType enum
        record["issueDate"] = "20.11.2026"  # not format: date
        record["permanentStorageDate"] = record["permanentStorageDate"][:19]  # no offset: not date-time
        del record["invoiceHash"]  # required
        return record

    monkeypatch.setattr(invoices_state, "metadata_of", broken)
    with pytest.raises(InternalServerError):
        ksef.invoices.export(tmp_path, date_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1), interval=0)
    assert len(app.violations) == 1
    violation = app.violations[0]
    assert violation.startswith("GET /invoices/exports/{referenceNumber}: _metadata.json of an export package")
    for field in ("invoiceType", "issueDate", "permanentStorageDate", "invoiceHash"):
        assert field in violation, field


def test_export_metadata_is_checked_only_in_strict_mode() -> None:
    assert ThreadedServer(KSeFBackend()).backend.core.check_metadata_record is None
