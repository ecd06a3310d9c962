"""The client's answer to responses that violate the spec: our documented error, sync and async."""

from __future__ import annotations

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.errors import ResponseFormatError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import self_signed_certificate

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
    ksef = KSeF(base_url="https://ksef.local/v2", access_token="secret-token-value")
    assert "secret-token-value" not in repr(ksef)
    ksef.close()


def test_with_options_shares_the_login(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    creds = self_signed_certificate()
    with KSeF(base_url=ksef_server.base_url) as ksef:
        ksef.auth.login_with_certificate(creds, context_nip=creds.nip)
        patient = ksef.with_options(timeout=120.0, max_retries=0)
        assert patient.settings.timeout == 120.0 and patient.access_token == ksef.access_token
        assert list(patient.sessions.list("Online")) == []
        patient.close()
        with pytest.raises(TypeError, match="unknown option"):
            ksef.with_options(timeuot=5)


@pytest.mark.parametrize("client_class", [KSeF, AsyncKSeF])
def test_an_unknown_environment_name_is_a_value_error(client_class: type[KSeF] | type[AsyncKSeF]) -> None:
    # The same name check as ksef_client.qr's: kody-qr.md's abbreviations (TE, PRD) are no names of
    # Environment, and a bare KeyError('TE') named neither the argument nor what is accepted.
    with pytest.raises(ValueError, match=r"environment: 'TE' is not an environment; one of TEST, DEMO, PROD"):
        client_class(environment="TE", access_token="t")


def test_a_base_url_wins_over_an_environment_of_none() -> None:
    # Found in review: checking the environment's name made environment=None beside a base_url (a
    # value from os.environ.get) a ValueError, where base_url had always won.
    assert KSeF(environment=None, base_url="http://127.0.0.1:1/v2", access_token="t").settings.base_url.startswith(  # type: ignore[arg-type]
        "http://127.0.0.1:1"
    )
