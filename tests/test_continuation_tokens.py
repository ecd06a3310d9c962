"""Continuation tokens are the server's: one goes back in the next request's
``x-continuation-token`` header only when it is printable ASCII, and a walk that is led back to a
page it has read ends with ``ResponseFormatError`` instead of going round forever (review of
hostile servers, finding 9).

The spec (SessionInvoicesResponse.continuationToken, and every listing's): "Token służący do
pobrania kolejnej strony wyników. Jeśli jest pusty, to nie ma kolejnych stron."; api-changelog.md:
"kolejne strony pobiera się przez przekazanie wartości tokenu zwróconej przez API".
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import anyio
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF, ResponseFormatError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.pagination import Pager, next_token
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.hostile import Tamper

REF = "20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"
INVOICE = {
    "ordinalNumber": 1,
    "referenceNumber": "20250625-EE-319D7EE000-B67F415CDC-2C",
    "invoiceHash": "mkht+3m5trnfxlTYhq3QFn74LkEO69MFNlsMAkCDSPA=",
    "invoicingDate": "2025-07-11T12:23:56.0154302+00:00",
    "status": {"code": 100, "description": "Faktura przyjęta do dalszego przetwarzania"},
}


class Listing:
    """A server whose session-invoices listing answers page ``n`` with ``tokens[n]`` as the next
    token (the same invoice on every page); ``asked`` holds the tokens it was asked for."""

    def __init__(self, *tokens: str | None) -> None:
        self.tokens = tokens
        self.asked: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.headers.get("x-continuation-token"))
        token = self.tokens[min(len(self.asked), len(self.tokens)) - 1]
        return httpx.Response(200, json={"invoices": [INVOICE], "continuationToken": token})


def _client(listing: Listing) -> KSeF:
    return KSeF(base_url="https://ksef.example/v2", access_token="t", transport=httpx.MockTransport(listing))


@pytest.mark.parametrize("token", ["żółw", "a\r\nX-Injected: 1", "\x00", "tab\there", " lead", "trail "])
def test_a_token_that_is_not_printable_ascii_is_a_response_format_error(token: str) -> None:
    # Was: UnicodeEncodeError from httpx (non-ASCII), a "connection" error (CR/LF, NUL).
    listing = Listing(token)
    with _client(listing) as ksef, pytest.raises(ResponseFormatError, match="not printable ASCII"):
        list(ksef.sessions.invoices(REF))
    assert listing.asked == [None]  # never sent back


@pytest.mark.parametrize("token", [None, "", "   "])
def test_a_missing_empty_or_blank_token_ends_the_listing(token: str | None) -> None:
    # "Jeśli jest pusty, to nie ma kolejnych stron"; the guide's clients test IsNullOrWhiteSpace.
    listing = Listing(token)
    with _client(listing) as ksef:
        assert len(list(ksef.sessions.invoices(REF))) == 1
    spec_example = "W3siY29tcG9zaXRlVG9rZW4iOnsidG9rZW4iOm51bGx9fV0="
    assert next_token(spec_example) == spec_example


def test_a_token_handed_back_again_ends_the_walk_instead_of_looping() -> None:
    # Was: the same page and token forever (save_invoice_upos fetched 2,533 pages in 10 s).
    listing = Listing("T1")
    with _client(listing) as ksef:
        with pytest.raises(ResponseFormatError, match="page already read"):
            list(itertools.islice(ksef.sessions.invoices(REF), 100))
        assert listing.asked == [None, "T1"]
        listing.asked.clear()
        with pytest.raises(ResponseFormatError, match="page already read"):
            ksef.sessions.outcomes(REF)  # every page read in one flow (all_items)
        assert listing.asked == [None, "T1"]


def test_a_cycle_of_tokens_ends_the_walk_and_new_tokens_on_empty_pages_do_not() -> None:
    listing = Listing("A", "B", "A")
    with _client(listing) as ksef, pytest.raises(ResponseFormatError, match="page already read"):
        list(ksef.sessions.invoices(REF))
    assert listing.asked == [None, "A", "B"]
    pages = iter([([], 1), ([], 2), (["x"], None)])
    assert list(Pager(lambda cursor: next(pages))) == ["x"]  # no items on a page is no error in itself


def test_save_invoice_upos_ends_on_a_repeated_token(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, tmp_path: Path
) -> None:
    reference = ksef.send_batch([sample_invoice(f"TOK/{i}") for i in range(2)], wait=True).reference_number
    listing = f"/v2/sessions/{reference}/invoices"

    first: list[dict[str, object]] = []

    def first_page_forever(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path != listing:
            return None
        first[:] = first or [dict(json.loads(response.read()), continuationToken="T1")]
        return httpx.Response(200, json=first[0], request=request)

    tamper = Tamper(first_page_forever)
    token = backend.mint_access_token(NIP)
    with (
        KSeF(base_url=ksef_server.base_url, access_token=token, transport=tamper) as hostile,
        pytest.raises(ResponseFormatError, match="page already read"),
    ):
        hostile.upo.save_invoice_upos(reference, tmp_path)
    assert tamper.seen.count(("GET", listing)) == 2
    assert list(tmp_path.iterdir()) == []


def test_the_async_pager_ends_on_a_repeated_token() -> None:
    listing = Listing("T1")

    async def walk() -> None:
        transport = httpx.MockTransport(listing)
        async with AsyncKSeF(base_url="https://ksef.example/v2", access_token="t", transport=transport) as ksef:
            async for _ in ksef.sessions.invoices(REF):
                pass

    with pytest.raises(ResponseFormatError, match="page already read"):
        anyio.run(walk)
    assert listing.asked == [None, "T1"]
