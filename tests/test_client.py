"""The client's answer to responses that violate the spec: our documented error, sync and async."""

from __future__ import annotations

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.errors import ResponseFormatError

REF = "20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"


def _broken(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"status": "not-an-object", "dateCreated": 5})


def test_spec_violating_body_is_a_response_format_error() -> None:
    transport = httpx.MockTransport(_broken)
    with (
        KSeF(base_url="http://ksef.local/v2", access_token="t", transport=transport) as ksef,
        pytest.raises(ResponseFormatError, match="does not match the spec"),
    ):
        ksef.sessions.get(REF)


@pytest.mark.anyio
async def test_spec_violating_body_is_a_response_format_error_async() -> None:
    transport = httpx.MockTransport(_broken)
    async with AsyncKSeF(base_url="http://ksef.local/v2", access_token="t", transport=transport) as ksef:
        with pytest.raises(ResponseFormatError, match="does not match the spec"):
            await ksef.sessions.get(REF)


def test_repr_never_shows_the_token() -> None:
    ksef = KSeF(base_url="http://ksef.local/v2", access_token="secret-token-value")
    assert "secret-token-value" not in repr(ksef)
    ksef.close()
