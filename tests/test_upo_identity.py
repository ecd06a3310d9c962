"""A UPO is the one asked for: of the session asked for, confirming the invoice asked for, and a
session's pages each once (review of hostile servers, finding 4).

A presigned link is answered by the storage host, with its own ``x-ms-meta-hash``: a genuine,
KSeF-signed UPO of another session or invoice passes the hash and the signature. What it says is
compared with what was asked for. upo-v4-3.xsd: ``NumerReferencyjnySesji`` "Wartość numeru
referencyjnego sesji"; ``NumerKSeFDokumentu`` "Numer identyfikujący dokument nadany przez KSeF";
``OpisPotwierdzenia``: ``Strona`` "Numer strony dokumentu UPO", ``LiczbaStron`` "Całkowita liczba
stron dokumentu UPO".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF, UnsafeXMLError, UPOMismatchError, UPOValidationError
from ksef_client.crypto import sha256_b64
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from ksef_client.upo import UpoPageInfo, check_invoice_upo, parse_upo, read_upo_header, session_page_order
from tests.conftest import KSEF_DATA, NIP
from tests.hostile import Swap, Tamper

EXAMPLES = sorted((KSEF_DATA / "upo-examples").glob("*.xml"))
SESSION_A = "20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"


def _batch(ksef: KSeF, prefix: str, count: int = 1) -> str:
    return ksef.send_batch([sample_invoice(f"{prefix}/{i}") for i in range(count)], wait=True).reference_number


def _storage_answers(content: Callable[[httpx.Request], bytes | None]) -> Swap:
    """The storage host (every path outside the API) answers with ``content(request)`` and its
    matching hash header; the API stays honest."""

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path.startswith("/v2/"):
            return None
        fake = content(request)
        if fake is None:
            return None
        return httpx.Response(200, content=fake, headers={"x-ms-meta-hash": sha256_b64(fake)}, request=request)

    return swap


def _hostile(server: ThreadedServer, backend: KSeFBackend, swap: Swap) -> KSeF:
    return KSeF(base_url=server.base_url, access_token=backend.mint_access_token(NIP), transport=Tamper(swap))


def test_a_session_upo_of_another_session_is_refused(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, tmp_path: Path
) -> None:
    # Was: get_session_upo(A) returned B's UPO without a word (repro j_upo_of_another_session.py).
    a, b = _batch(ksef, "A"), _batch(ksef, "B")
    other = ksef.upo.get_session_upo_xml(b)[0]
    with _hostile(ksef_server, backend, _storage_answers(lambda request: other)) as hostile:
        for call in (hostile.upo.get_session_upo, hostile.upo.get_session_upo_xml):
            with pytest.raises(UPOMismatchError, match=f"of session '{b}', not {a}"):
                call(a)
        with pytest.raises(UPOMismatchError):
            hostile.upo.save_session_upo(a, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_invoice_upo_of_another_session_or_invoice_is_refused(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, tmp_path: Path
) -> None:
    # Was: save_invoice_upos(A) wrote B's invoice UPO under A's invoice's KSeF number.
    a, b = _batch(ksef, "A", 2), _batch(ksef, "B")
    a_invoices = list(ksef.sessions.invoices(a))
    b_number = str(next(iter(ksef.sessions.invoices(b))).ksef_number)
    of_b = ksef.upo.get_invoice_upo(b, ksef_number=b_number).xml
    of_a0 = ksef.upo.get_invoice_upo(a, ksef_number=str(a_invoices[0].ksef_number)).xml
    for fake, message in ((of_b, f"of session '{b}'"), (of_a0, "confirms invoice")):
        folder = tmp_path / message.split()[0]
        with _hostile(ksef_server, backend, _storage_answers(lambda request, fake=fake: fake)) as hostile:  # type: ignore[misc]
            with pytest.raises(UPOMismatchError, match=message):
                hostile.upo.save_invoice_upos(a, folder, concurrency=1)
            with pytest.raises(UPOMismatchError, match=message):
                hostile.upo.get_invoice_upo(a, invoice_reference_number=a_invoices[1].reference_number)
        assert not (folder / f"{a_invoices[1].ksef_number}.xml").exists()  # nothing under a number it does not confirm


def test_the_api_answering_another_invoices_upo_is_refused(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    a = _batch(ksef, "A", 2)
    first, second = (str(i.ksef_number) for i in ksef.sessions.invoices(a))
    of_first = ksef.upo.get_invoice_upo(a, ksef_number=first).xml

    def api_swaps(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if not request.url.path.endswith(f"/ksef/{second}/upo"):
            return None
        return httpx.Response(200, content=of_first, headers={"x-ms-meta-hash": sha256_b64(of_first)}, request=request)

    with _hostile(ksef_server, backend, api_swaps) as hostile, pytest.raises(UPOMismatchError, match=first):
        hostile.upo.get_invoice_upo(a, ksef_number=second)


def test_session_pages_must_each_come_once(ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    backend.upo_page_size = 1
    a = _batch(ksef, "P", 3)
    pages = ksef.upo.get_session_upo_xml(a)
    first = pages[0]
    # the storage host answers every page with page 1 (each genuine, each with its hash)
    with _hostile(ksef_server, backend, _storage_answers(lambda request: first)) as hostile:
        for call in (hostile.upo.get_session_upo, hostile.upo.get_session_upo_xml):
            with pytest.raises(UPOMismatchError, match="not numbered 1 to 3 once each"):
                call(a)


def test_pages_listed_out_of_order_come_back_in_page_order(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    backend.upo_page_size = 1
    a = _batch(ksef, "O", 3)
    in_order = ksef.upo.get_session_upo(a)

    def reversed_listing(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path != f"/v2/sessions/{a}":
            return None
        body = json.loads(response.read())
        body["upo"]["pages"].reverse()
        return httpx.Response(200, json=body, request=request)

    with _hostile(ksef_server, backend, reversed_listing) as hostile:
        assert hostile.upo.get_session_upo(a).xml == in_order.xml
        assert hostile.upo.get_session_upo_xml(a) == in_order.xml


def test_the_async_client_checks_the_same(ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    a, b = _batch(ksef, "A"), _batch(ksef, "B")
    other = ksef.upo.get_session_upo_xml(b)[0]
    swap = _storage_answers(lambda request: other)

    class AsyncTamper(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return swap(request, response) or response

    async def main() -> None:
        token = backend.mint_access_token(NIP)
        async with AsyncKSeF(base_url=ksef_server.base_url, access_token=token, transport=AsyncTamper()) as hostile:
            with pytest.raises(UPOMismatchError):
                await hostile.upo.get_session_upo(a)
            with pytest.raises(UPOMismatchError):
                await hostile.upo.get_session_upo_xml(a)

    anyio.run(main)


# --- the checks on their own ---------------------------------------------------------------------


def _info(page: int, count: int) -> UpoPageInfo:
    return UpoPageInfo(page, count, page, page, count)


def test_session_page_order() -> None:
    assert session_page_order(SESSION_A, [(SESSION_A, None)]) == [0]  # one page, no OpisPotwierdzenia
    assert session_page_order(SESSION_A, [(SESSION_A, _info(2, 2)), (SESSION_A, _info(1, 2))]) == [1, 0]
    refused: list[list[tuple[str, UpoPageInfo | None]]] = [
        [(SESSION_A, _info(1, 2)), (SESSION_A, _info(1, 2))],  # the same page twice
        [(SESSION_A, _info(1, 3)), (SESSION_A, _info(2, 3))],  # pages say 3, 2 listed
        [(SESSION_A, _info(1, 2)), (SESSION_A, None)],  # a page that does not say which
        [(SESSION_A, _info(1, 1)), ("20250625-SO-2C3E6C8000-B8C5A3D9A3-1F", _info(1, 1))],
    ]
    for pages in refused:
        with pytest.raises(UPOMismatchError):
            session_page_order(SESSION_A, pages)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_header_read_from_the_start_is_what_parse_upo_reads(path: Path) -> None:
    xml = path.read_bytes()
    upo = parse_upo(xml)
    assert read_upo_header(xml) == (upo.session_reference_number, upo.page_info)
    # only the start is read: a document cut after its header still tells its session and page
    cut = xml[: xml.index(b"<NazwaStrukturyLogicznej>")] + b"<NazwaStrukturyLogicznej>\x00 not XML"
    assert read_upo_header(cut) == (upo.session_reference_number, upo.page_info)
    if upo.page_info is None:
        assert check_invoice_upo(upo, upo.session_reference_number, upo.documents[0].ksef_number) is upo
        with pytest.raises(UPOMismatchError, match="not 5265877635-20250916-010040741B3E-47"):
            check_invoice_upo(upo, upo.session_reference_number, "5265877635-20250916-010040741B3E-47")
    else:
        with pytest.raises(UPOMismatchError, match="confirms one invoice; this one confirms 2"):
            check_invoice_upo(upo, upo.session_reference_number)


@pytest.mark.parametrize("padding", [1, 2047, 2048, 2049, 10_000])
def test_a_header_longer_than_what_is_read_at_a_time_is_read_whole(padding: int) -> None:
    # The header is read a few KiB at a time: one that a comment makes longer than that, with
    # OpisPotwierdzenia cut at any place between two reads, is still read whole.
    xml = next(path for path in EXAMPLES if b"OpisPotwierdzenia" in path.read_bytes()).read_bytes()
    upo = parse_upo(xml)
    at = xml.index(b"<OpisPotwierdzenia>")
    longer = xml[:at] + b"<!--" + b"x" * padding + b"-->" + xml[at:]
    assert upo.page_info is not None
    assert read_upo_header(longer) == (upo.session_reference_number, upo.page_info)


def test_the_header_reader_refuses_what_parse_upo_refuses() -> None:
    xml = EXAMPLES[0].read_bytes()
    start = xml.index(b"<Potwierdzenie")
    with pytest.raises(UnsafeXMLError):
        read_upo_header(xml[:start] + b'<!DOCTYPE x [<!ENTITY e "e">]>' + xml[start:])
    with pytest.raises(UPOValidationError, match="not a UPO"):
        read_upo_header(b"<Other/>")
    with pytest.raises(UPOValidationError, match="lacks NumerReferencyjnySesji"):
        read_upo_header(xml.replace(b"NumerReferencyjnySesji", b"Numer"))
    with pytest.raises(UPOValidationError, match="well-formed"):
        read_upo_header(b"<Potwierdzenie")
    # a decoy in a comment is no element; a comment inside the value does not cut it short
    session = parse_upo(xml).session_reference_number
    decoy = (
        xml[:start] + f"<!-- <NumerReferencyjnySesji>{SESSION_A}</NumerReferencyjnySesji> -->".encode() + xml[start:]
    )
    assert read_upo_header(decoy)[0] == session
    split = xml.replace(session.encode(), session[:5].encode() + b"<!---->" + session[5:].encode())
    assert read_upo_header(split)[0] == session
