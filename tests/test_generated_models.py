"""The generated models are tolerant of what a newer KSeF sends, and parse its timestamps."""

from __future__ import annotations

import datetime
from io import BytesIO

import httpx

from ksef_client._generated import AuthenticatedClient
from ksef_client._generated.api.sessions_status import get_session_upo
from ksef_client._generated.models import (
    InvoiceStatusInfo,
    SessionInvoiceStatusResponse,
    SessionType,
)
from ksef_client._generated.types import File

INVOICE = {
    "ordinalNumber": 1,
    "referenceNumber": "20250625-EE-319D7EE000-B67F415CDC-2C",
    "invoiceHash": "mkht+3m5trnfxlTYhq3QFn74LkEO69MFNlsMAkCDSPA=",
    "invoicingDate": "2025-07-11T12:23:56.0154302+00:00",
    "status": {"code": 100, "description": "Faktura przyjęta do dalszego przetwarzania"},
}


def test_unknown_enum_value_is_kept() -> None:
    value = SessionType("Streaming")
    assert value == "Streaming"
    assert str(value) == "Streaming"
    assert SessionType("Streaming") is value
    assert SessionType("Online") is SessionType.ONLINE
    assert value not in list(SessionType)


def test_unknown_fields_survive_a_round_trip() -> None:
    # Six fractional digits: a Python datetime keeps microseconds, so KSeF's seventh digit is dropped.
    body = dict(INVOICE, newField={"nested": [1, 2]}, invoicingDate="2025-07-11T12:23:56.015430+00:00")
    body["status"] = dict(INVOICE["status"], extraInfo="x")  # type: ignore[arg-type]
    parsed = SessionInvoiceStatusResponse.from_dict(body)
    assert parsed.additional_properties["newField"] == {"nested": [1, 2]}
    assert isinstance(parsed.status, InvoiceStatusInfo)
    assert parsed.status.additional_properties == {"extraInfo": "x"}
    assert parsed.to_dict() == body


def test_seven_fractional_digits_parse() -> None:
    parsed = SessionInvoiceStatusResponse.from_dict(INVOICE)
    assert parsed.invoicing_date == datetime.datetime(2025, 7, 11, 12, 23, 56, 15430, tzinfo=datetime.UTC)


def test_upo_download_returns_the_bytes() -> None:
    upo = b"<?xml version='1.0'?><Potwierdzenie/>"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/sessions/S/upo/U"
        assert request.headers["authorization"] == "Bearer t"
        return httpx.Response(200, content=upo, headers={"content-type": "application/xml"})

    transport = httpx.MockTransport(handler)
    client = AuthenticatedClient(base_url="http://ksef.test/v2", token="t", httpx_args={"transport": transport})
    result = get_session_upo.sync("S", "U", client=client)
    assert isinstance(result, File)
    assert isinstance(result.payload, BytesIO) and result.payload.getvalue() == upo
