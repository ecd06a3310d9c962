"""A session UPO's pages hold the documents their headers name, and together each of the session's
documents once (review of getting data out, finding 8).

upo-v4-3.xsd, ``OpisPotwierdzenia``: ``ZakresDokumentowOd`` "Początek zakresu dokumentów na stronie
UPO (inclusive)", ``ZakresDokumentowDo`` "Koniec zakresu dokumentów na stronie UPO (exclusive)",
``CalkowitaLiczbaDokumentow`` "Całkowita liczba dokumentów na wszystkich stronach dokumentu UPO".
The Ministry's example session UPOs (``upo-sesja-*.xml``) hold 2 documents under Od 1, Do 2,
Calkowita 2: ``Do`` read inclusive. Either reading is taken, one for all the pages of a UPO.

A page served with 7 of the 10 documents its own header names (and a matching hash) was accepted:
``documents.by_ksef_number`` then says the missing invoices are not confirmed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ksef_client import KSeF, UPOMismatchError, UPOValidationError
from ksef_client.crypto import sha256_b64
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from ksef_client.upo import UpoPageInfo, parse_upo, read_upo_header, session_page_order
from tests.conftest import KSEF_DATA, NIP
from tests.hostile import Tamper

SESSION = "20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"
_DOKUMENT = re.compile(rb"<Dokument>.*?</Dokument>", re.S)


def _session(ksef: KSeF, backend: KSeFBackend) -> str:
    """A session of 25 invoices whose UPO has 3 pages (1-10, 11-20, 21-25)."""
    backend.upo_page_size = 10
    return ksef.send_batch([sample_invoice(f"U/{i}") for i in range(25)], wait=True).reference_number


def _page_2_changed(change: Callable[[bytes], bytes]) -> Tamper:
    """The storage host answers page 2 changed by ``change``, with the hash of what it sends."""

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path.startswith("/v2/"):
            return None
        xml = response.read()
        info = read_upo_header(xml)[1]
        if info is None or info.page != 2:
            return None
        changed = change(xml)
        return httpx.Response(200, content=changed, headers={"x-ms-meta-hash": sha256_b64(changed)}, request=request)

    return Tamper(swap)


def _without_last(count: int) -> Callable[[bytes], bytes]:
    def change(xml: bytes) -> bytes:
        for found in reversed(list(_DOKUMENT.finditer(xml))[-count:]):
            xml = xml[: found.start()] + xml[found.end() :]
        return xml

    return change


def _hostile(server: ThreadedServer, backend: KSeFBackend, transport: Tamper) -> KSeF:
    return KSeF(base_url=server.base_url, access_token=backend.mint_access_token(NIP), transport=transport)


def test_a_page_with_fewer_documents_than_its_header_names_is_refused(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, tmp_path: Path
) -> None:
    session = _session(ksef, backend)
    assert len(ksef.upo.get_session_upo(session).documents) == 25
    with _hostile(ksef_server, backend, _page_2_changed(_without_last(3))) as hostile:
        # was: accepted, 22 documents
        with pytest.raises(UPOValidationError, match=r"page 2 of the session's UPO holds 7 document.* 11 to 20"):
            hostile.upo.get_session_upo(session)
        with pytest.raises(UPOValidationError):
            hostile.upo.save_session_upo(session, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_page_one_document_short_is_refused_by_the_reading_of_the_other_pages(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # 9 documents under 11-20 would be a whole page were Do exclusive (the XSD's reading); the other
    # pages (1-10 with 10, Do 25 on the last of 25) read it inclusive, so one is missing.
    session = _session(ksef, backend)
    hostile = _hostile(ksef_server, backend, _page_2_changed(_without_last(1)))
    with hostile, pytest.raises(UPOValidationError, match="page 2 of the session's UPO holds 9 document"):
        hostile.upo.get_session_upo(session)


def test_pages_whose_ranges_leave_a_document_out_are_refused_even_unparsed(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # Page 2 says 11-19 and holds 9: consistent in itself, but document 20 is on no page.
    session = _session(ksef, backend)

    def renumbered(xml: bytes) -> bytes:
        xml = _without_last(1)(xml)
        return xml.replace(
            b"<ZakresDokumentowDo>20</ZakresDokumentowDo>", b"<ZakresDokumentowDo>19</ZakresDokumentowDo>"
        )

    with _hostile(ksef_server, backend, _page_2_changed(renumbered)) as hostile:
        for call in (hostile.upo.get_session_upo, hostile.upo.get_session_upo_xml):
            with pytest.raises(UPOMismatchError, match=r"do not cover its 25 documents once each .*11-19, 21-25"):
                call(session)


def _page(page: int, pages: int, first: int, last: int, total: int) -> tuple[str, UpoPageInfo]:
    return SESSION, UpoPageInfo(page, pages, first, last, total)


def test_the_ranges_must_tile_the_documents_under_one_reading() -> None:
    inclusive = [_page(2, 2, 11, 15, 15), _page(1, 2, 1, 10, 15)]
    exclusive = [_page(2, 2, 11, 16, 15), _page(1, 2, 1, 11, 15)]
    assert session_page_order(SESSION, inclusive, [5, 10]) == [1, 0]
    assert session_page_order(SESSION, exclusive, [5, 10]) == [1, 0]
    assert session_page_order(SESSION, [_page(1, 1, 1, 2, 2)], [2]) == [0]  # as the Ministry's examples
    refused = [
        [_page(1, 2, 1, 10, 15), _page(2, 2, 12, 15, 15)],  # document 11 on no page
        [_page(1, 2, 1, 10, 15), _page(2, 2, 10, 15, 15)],  # inclusive, 10 twice
        [_page(1, 2, 1, 10, 15), _page(2, 2, 11, 16, 15)],  # inclusive then exclusive
        [_page(1, 2, 2, 10, 15), _page(2, 2, 11, 15, 15)],  # not from 1
        [_page(1, 2, 1, 10, 15), _page(2, 2, 11, 14, 15)],  # short of the total
        [_page(1, 2, 1, 10, 15), _page(2, 2, 11, 15, 16)],  # two totals
        [_page(1, 1, 3, 2, 0)],  # an empty page
    ]
    for pages in refused:
        with pytest.raises(UPOMismatchError):
            session_page_order(SESSION, pages)
    with pytest.raises(UPOValidationError, match=r"page 1 .* holds 9 document"):
        session_page_order(SESSION, inclusive, [5, 9])


def test_the_ministrys_session_upos_pass_and_a_document_less_does_not() -> None:
    for path in sorted((KSEF_DATA / "upo-examples").glob("*upo-sesja-*.xml")):
        xml = path.read_bytes()
        upo = parse_upo(xml)
        assert upo.page_info is not None and len(upo.documents) == 2
        assert session_page_order(upo.session_reference_number, [(upo.session_reference_number, upo.page_info)], [2])
        with pytest.raises(UPOValidationError, match="holds 0 document"):
            parse_upo(_without_last(2)(xml))
