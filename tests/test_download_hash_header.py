"""A download without ``x-ms-meta-hash`` is accepted unchecked, and says so (review of getting data
out, finding 9).

The spec declares ``x-ms-meta-hash`` ("Skrót SHA-256 faktury" / "dokumentu UPO, zakodowany w
formacie Base64") on the 200 answers of ``GET /invoices/ksef/{ksefNumber}`` and of the three UPO
downloads, and ``UpoPageResponse.downloadUrl``: "Odpowiedź HTTP zawiera dodatkowe nagłówki:
x-ms-meta-hash"; it marks the header required nowhere, so an answer without it is taken. It used
to be taken in silence while the docs said "hash-checked": now a WARNING on the ``ksef_client``
logger names the document (never a link or a token). A client made with ``require_hash=True``
refuses such a download instead (``HashMissingError``, a ``UPOHashMismatchError``), sync and async.
"""

from __future__ import annotations

import logging

import anyio
import httpx
import pytest

from ksef_client import AsyncKSeF, HashMissingError, KSeF, UPOError, UPOHashMismatchError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.hostile import Tamper

_DROPPED = {"x-ms-meta-hash", "content-length", "content-encoding", "transfer-encoding"}


def _header_changed(where: str, value: str | None) -> Tamper:
    """Answers whose path contains ``where`` come with ``x-ms-meta-hash`` set to ``value``
    (``None``: without it)."""

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if where not in request.url.path or response.status_code != 200:
            return None
        content = response.read()
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED}
        if value is not None:
            headers["x-ms-meta-hash"] = value
        return httpx.Response(200, content=content, headers=headers, request=request)

    return Tamper(swap)


def _client(server: ThreadedServer, backend: KSeFBackend, transport: Tamper, *, require_hash: bool = False) -> KSeF:
    token = backend.mint_access_token(NIP)
    return KSeF(base_url=server.base_url, access_token=token, transport=transport, require_hash=require_hash)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ksef_client" and r.levelno == logging.WARNING]


def test_an_invoice_without_the_header_is_returned_with_a_warning(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    sent = sample_invoice("H/1")
    session = ksef.send_batch([sent], wait=True).reference_number
    number = str(next(iter(ksef.sessions.invoices(session))).ksef_number)
    caplog.set_level(logging.WARNING, logger="ksef_client")
    assert ksef.invoices.get(number) == sent and _warnings(caplog) == []  # the header came and matched
    with _client(ksef_server, backend, _header_changed("/invoices/ksef/", None)) as bare:
        assert bare.invoices.get(number) == sent
    assert _warnings(caplog) == [f"invoice {number} came without x-ms-meta-hash: its SHA-256 was not checked"]
    # a wrong one is refused, with an error named for UPOs (the docs list it for invoices.get)
    wrong = _client(ksef_server, backend, _header_changed("/invoices/ksef/", "A" * 43 + "="))
    with wrong, pytest.raises(UPOHashMismatchError, match=f"invoice {number} SHA-256 is") as raised:
        wrong.invoices.get(number)
    assert isinstance(raised.value, UPOError)


def test_upo_pages_without_the_header_are_returned_with_a_warning_each(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.upo_page_size = 2
    session = ksef.send_batch([sample_invoice(f"H/{i}") for i in range(3)], wait=True).reference_number
    caplog.set_level(logging.WARNING, logger="ksef_client")
    expected = ksef.upo.get_session_upo_xml(session)
    assert _warnings(caplog) == []
    # the presigned links (outside the API's /v2/) answer without the header
    with _client(ksef_server, backend, _header_changed("/", None)) as bare:
        assert bare.upo.get_session_upo(session).xml == expected
    found = _warnings(caplog)
    assert len(found) == 2 and all(f"of session {session} came without x-ms-meta-hash" in m for m in found)
    assert not any("http" in m or "?" in m for m in found)  # no link (its query signs it)


def test_require_hash_refuses_every_download_without_the_header(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    sent = sample_invoice("H/R")
    session = ksef.send_batch([sent], wait=True).reference_number
    number = str(next(iter(ksef.sessions.invoices(session))).ksef_number)
    caplog.set_level(logging.WARNING, logger="ksef_client")
    with _client(ksef_server, backend, _header_changed("/", None), require_hash=True) as strict:
        with pytest.raises(HashMissingError, match=f"invoice {number} came without x-ms-meta-hash"):
            strict.invoices.get(number)
        with pytest.raises(HashMissingError, match=f"UPO page .* of session {session} came without"):
            strict.upo.get_session_upo_xml(session)
        with pytest.raises(HashMissingError, match=f"UPO of session {session}, invoice {number} came without"):
            strict.upo.get_invoice_upo(session, ksef_number=number)
        assert strict.with_options(deadline=30).settings.require_hash  # copies keep it
    assert _warnings(caplog) == []  # refused, not accepted with a warning
    # with the header, a strict client takes what it checked
    with _client(ksef_server, backend, Tamper(lambda request, response: None), require_hash=True) as checked:
        assert checked.invoices.get(number) == sent
        assert len(checked.upo.get_invoice_upo(session, ksef_number=number).documents) == 1


def test_require_hash_refuses_in_the_async_client_too(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    session = ksef.send_batch([sample_invoice("H/A")], wait=True).reference_number
    number = str(next(iter(ksef.sessions.invoices(session))).ksef_number)

    async def fetch() -> None:
        token = backend.mint_access_token(NIP)
        async with httpx.AsyncHTTPTransport() as transport:

            async def without_hash(request: httpx.Request) -> httpx.Response:  # real HTTP, the header dropped
                response = await transport.handle_async_request(request)
                content = await response.aread()
                headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED}
                return httpx.Response(response.status_code, content=content, headers=headers, request=request)

            async with AsyncKSeF(
                base_url=ksef_server.base_url, access_token=token, transport=httpx.MockTransport(without_hash),
                require_hash=True,
            ) as strict:  # fmt: skip
                with pytest.raises(HashMissingError, match=f"invoice {number} came without"):
                    await strict.invoices.get(number)

    anyio.run(fetch)
