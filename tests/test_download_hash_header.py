"""A download without ``x-ms-meta-hash`` is accepted unchecked, and says so (review of getting data
out, finding 9).

The spec declares ``x-ms-meta-hash`` ("Skrót SHA-256 faktury" / "dokumentu UPO, zakodowany w
formacie Base64") on the 200 answers of ``GET /invoices/ksef/{ksefNumber}`` and of the three UPO
downloads, and ``UpoPageResponse.downloadUrl``: "Odpowiedź HTTP zawiera dodatkowe nagłówki:
x-ms-meta-hash"; it marks the header required nowhere, so an answer without it is taken. It used
to be taken in silence while the docs said "hash-checked": now a WARNING on the ``ksef_client``
logger names the document (never a link or a token).
"""

from __future__ import annotations

import logging

import httpx
import pytest

from ksef_client import KSeF, UPOError, UPOHashMismatchError
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


def _client(server: ThreadedServer, backend: KSeFBackend, transport: Tamper) -> KSeF:
    return KSeF(base_url=server.base_url, access_token=backend.mint_access_token(NIP), transport=transport)


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
