"""``pager.cursor`` read between two items of ``for x in pager`` resumes after the first: every item
once, whichever item the walk stopped at (review s11, A2: it pointed at the next page as soon as a
page's items started, so a walk stopped after 3 items of a page of 10 lost the other 7 on resume).
Continuation-token listings (sessions), offset listings (Peppol providers) and the metadata walk
(``invoices.query``, across its truncated windows), sync and async, against the emulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.invoice_query import MetadataCursor
from ksef_client.mock import KSeFBackend
from ksef_client.pagination import INSIDE_PAGE, AsyncPager, Pager, read_token_cursor, token_cursor
from ksef_client.testing import sample_invoice
from tests.conftest import NIP

BUYER = "1111111111"


def _in_stops(listing: Callable[[Any], Pager[Any, Any]], every: int) -> tuple[list[Any], list[Any]]:
    """The items of a walk stopped after each ``every`` items, each stop resumed by a new pager from
    the cursor the last one left; and those cursors."""
    items: list[Any] = []
    cursors: list[Any] = []
    cursor = None
    while True:
        pager = listing(cursor)
        for taken, item in enumerate(pager, 1):
            items.append(item)
            if taken == every:
                break
        cursor = pager.cursor
        cursors.append(cursor)
        if pager.done:
            return items, cursors


async def _in_stops_async(listing: Callable[[Any], AsyncPager[Any, Any]], every: int) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        pager = listing(cursor)
        taken = 0
        async for item in pager:
            items.append(item)
            taken += 1
            if taken == every:
                break
        cursor = pager.cursor
        if pager.done:
            return items


def _sessions(backend: KSeFBackend, count: int) -> set[str]:
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    return {backend.sessions.open(access).reference_number for _ in range(count)}


def _providers(backend: KSeFBackend, count: int) -> list[str]:
    ids = [f"PPL{n:06d}" for n in range(count)]
    for n, provider in enumerate(ids):
        backend.testdata.state.peppol_providers.append(
            {"id": provider, "name": f"Provider {n}", "dateCreated": "2026-01-01T00:00:00Z"}
        )
    return ids


def _invoices(ksef: KSeF, count: int, prefix: str) -> set[str]:
    invoices = [sample_invoice(f"{prefix}/{i}", buyer_nip=BUYER) for i in range(count)]
    ksef.send_batch(invoices, wait=True)
    return {f"{prefix}/{i}" for i in range(count)}


def _since() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


class TestContinuationTokens:
    def test_the_review_s_walk_stopped_after_three_sessions(self, ksef: KSeF, backend: KSeFBackend) -> None:
        held = _sessions(backend, 25)
        pager = ksef.sessions.list("Online", page_size=10)
        seen = []
        for session in pager:
            seen.append(session.reference_number)
            if len(seen) == 3:
                break
        assert pager.cursor == f"{INSIDE_PAGE}3:" and not pager.done  # the first page, 3 handed out
        rest = [s.reference_number for s in ksef.sessions.list("Online", page_size=10, cursor=pager.cursor)]
        assert len(seen + rest) == 25 and set(seen + rest) == held  # was 18: 7 lost

    @pytest.mark.parametrize("every", [1, 3, 7, 10, 11])
    def test_every_session_once_wherever_the_walk_stops(self, ksef: KSeF, backend: KSeFBackend, every: int) -> None:
        held = _sessions(backend, 25)
        items, cursors = _in_stops(lambda at: ksef.sessions.list("Online", page_size=10, cursor=at), every)
        numbers = [s.reference_number for s in items]
        assert len(numbers) == 25 and set(numbers) == held
        assert all(isinstance(c, str) for c in cursors[:-1]) and cursors[-1] is None

    def test_the_same_pager_goes_on_after_a_break(self, ksef: KSeF, backend: KSeFBackend) -> None:
        held = _sessions(backend, 25)
        pager = ksef.sessions.list("Online", page_size=10)
        first = [s.reference_number for _, s in zip(range(4), pager, strict=False)]
        rest = [s.reference_number for s in pager]
        assert len(first + rest) == 25 and set(first + rest) == held and pager.done and pager.cursor is None

    def test_page_cursors_are_ksef_s_tokens_as_before(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # A cursor saved between pages (and by earlier versions) is the token itself, still read so.
        _sessions(backend, 25)
        pager = ksef.sessions.list("Online", page_size=10)
        next(pager.pages())
        assert isinstance(pager.cursor, str) and not pager.cursor.startswith(INSIDE_PAGE)
        assert read_token_cursor(pager.cursor) == (pager.cursor, 0)
        assert len(list(ksef.sessions.list("Online", page_size=10, cursor=pager.cursor))) == 15

    def test_the_cursor_format(self) -> None:
        assert token_cursor(None) is None and token_cursor("abc") == "abc"
        assert token_cursor("abc", 4) == f"{INSIDE_PAGE}4:abc" and token_cursor(None, 2) == f"{INSIDE_PAGE}2:"
        assert read_token_cursor(f"{INSIDE_PAGE}4:a:b") == ("a:b", 4)
        assert read_token_cursor(f"{INSIDE_PAGE}2:") == (None, 2)
        # a token of KSeF's that happened to start so is given with a count of 0: read back whole
        odd = f"{INSIDE_PAGE}1:x"
        assert read_token_cursor(token_cursor(odd)) == (odd, 0)

    @pytest.mark.parametrize("cursor", [f"{INSIDE_PAGE}x:abc", f"{INSIDE_PAGE}-1:abc", f"{INSIDE_PAGE}3", 10])
    def test_a_broken_cursor_is_a_value_error_before_any_request(self, ksef: KSeF, cursor: Any) -> None:
        sent = ksef.send_state.requests_sent
        with pytest.raises(ValueError, match=r"cursor: .* is not a cursor of this listing"):
            ksef.sessions.list("Online", cursor=cursor)
        assert ksef.send_state.requests_sent == sent

    @pytest.mark.anyio
    async def test_async(self, aksef: AsyncKSeF, backend: KSeFBackend) -> None:
        held = _sessions(backend, 25)
        items = await _in_stops_async(lambda at: aksef.sessions.list("Online", page_size=10, cursor=at), 3)
        assert len(items) == 25 and {s.reference_number for s in items} == held


class TestOffsets:
    def test_every_provider_once_wherever_the_walk_stops(self, ksef: KSeF, backend: KSeFBackend) -> None:
        ids = _providers(backend, 25)
        items, cursors = _in_stops(lambda at: ksef.peppol.providers(page_size=10, cursor=at), 3)
        assert [p.id for p in items] == ids
        assert cursors == [3, 6, 9, 12, 15, 18, 21, 24, None]  # the items handed out so far

    @pytest.mark.anyio
    async def test_async(self, aksef: AsyncKSeF, backend: KSeFBackend) -> None:
        ids = _providers(backend, 25)
        items = await _in_stops_async(lambda at: aksef.peppol.providers(page_size=10, cursor=at), 7)
        assert [p.id for p in items] == ids


class TestMetadataWalk:
    @pytest.mark.parametrize("every", [3, 10, 13])
    def test_every_invoice_once_wherever_the_walk_stops(self, ksef: KSeF, backend: KSeFBackend, every: int) -> None:
        ksef = ksef.with_options(max_retry_after=math.inf)  # 20 queries an hour: each stop asks again
        sent = _invoices(ksef, 60, f"M{every}")
        backend.metadata_limit = 25  # KSeF's 10,000, scaled down: windows truncated and narrowed too
        items, cursors = _in_stops(lambda at: ksef.invoices.query(date_from=_since(), page_size=10, cursor=at), every)
        numbers = [r.invoice_number for r in items]
        assert len(numbers) == 60 and set(numbers) == sent  # was 18 of 60 (every 3)
        assert all(isinstance(c, MetadataCursor) for c in cursors[:-1]) and cursors[-1] is None

    def test_newest_first(self, ksef: KSeF, backend: KSeFBackend) -> None:
        sent = _invoices(ksef, 60, "MD")
        backend.metadata_limit = 25
        ksef = ksef.with_options(max_retry_after=math.inf)

        def walk(at: Any) -> Pager[Any, Any]:
            return ksef.invoices.query(date_from=_since(), page_size=10, sort_order="Desc", cursor=at)

        items, _ = _in_stops(walk, 4)
        assert len(items) == 60 and {r.invoice_number for r in items} == sent

    def test_the_cursor_inside_a_page_names_what_it_handed_out(self, ksef: KSeF, backend: KSeFBackend) -> None:
        _invoices(ksef, 15, "MH")
        pager = ksef.invoices.query(date_from=_since(), page_size=10)
        first = [r.ksef_number for _, r in zip(range(2), pager, strict=False)]
        assert isinstance(pager.cursor, MetadataCursor)
        assert pager.cursor.handed == tuple(first) and pager.cursor.page_offset == 0
        next(iter(pager))  # the same pager goes on from there
        assert len(pager.cursor.handed) == 3
        page = next(pager.pages())  # the rest of the page, then the cursor at the next one
        assert len(page.items) == 7 and not {r.ksef_number for r in page.items} & set(first)
        assert isinstance(pager.cursor, MetadataCursor)
        assert (pager.cursor.page_offset, pager.cursor.handed) == (1, ())

    def test_a_cursor_saved_as_json_resumes(self, ksef: KSeF) -> None:
        # dataclasses.asdict and JSON give lists for its tuples; the walk added to them as tuples
        # (review s11-final2, M2: TypeError once the resumed walk had sent its first query).
        sent = _invoices(ksef, 15, "MJ")
        pager = ksef.invoices.query(date_from=_since(), page_size=10)
        first = [r.invoice_number for _, r in zip(range(3), pager, strict=False)]
        saved = json.loads(json.dumps(dataclasses.asdict(pager.cursor)))
        assert isinstance(saved["handed"], list)
        rest = [
            r.invoice_number
            for r in ksef.invoices.query(date_from=_since(), page_size=10, cursor=MetadataCursor(**saved))
        ]
        assert len(first + rest) == 15 and set(first + rest) == sent
        with pytest.raises(ValueError, match=r"MetadataCursor\.skip: a list"):
            MetadataCursor("2026-01-01T00:00:00+00:00", skip="5265877635-20260101-0123456789AB-CD")  # type: ignore[arg-type]

    def test_a_cursor_of_another_listing_is_a_value_error(self, ksef: KSeF) -> None:
        with pytest.raises(ValueError, match="cursor: 'abc' is not a MetadataCursor"):
            ksef.invoices.query(date_from=_since(), cursor="abc")  # type: ignore[arg-type]

    @pytest.mark.anyio
    async def test_async(self, ksef: KSeF, aksef: AsyncKSeF, backend: KSeFBackend) -> None:
        sent = _invoices(ksef, 60, "MA")
        backend.metadata_limit = 25
        aksef = aksef.with_options(max_retry_after=math.inf)
        items = await _in_stops_async(lambda at: aksef.invoices.query(date_from=_since(), page_size=10, cursor=at), 3)
        assert len(items) == 60 and {r.invoice_number for r in items} == sent


def test_the_cursor_inside_a_page_is_worked_out_only_when_read() -> None:
    # Working it out at every item copied the page's first items each time: quadratic in the page
    # size (5 ms more per 5,000 items in pages of 1,000, a tenth of the listing's own time).
    asked: list[int] = []
    pages = {None: (list(range(1000)), "p2"), "p2": (list(range(1000, 1500)), None)}

    def within(start: str | None, handed: list[int]) -> str:
        asked.append(len(handed))
        return token_cursor(start, len(handed)) or ""

    pager = Pager(lambda at: pages[at], None, within)
    seen = []
    for item in pager:
        seen.append(item)
        if item == 2:
            assert pager.cursor == "ksef-client:skip=3:"
    assert seen == list(range(1500)) and asked == [3] and pager.cursor is None and pager.done


@pytest.mark.parametrize("size", [10, 20, 25])
def test_a_token_cursor_resumes_with_another_page_size(ksef: KSeF, backend: KSeFBackend, size: int) -> None:
    # Saved 15 items into a page of 20, resumed with pages of 10: the 5 handed out past the first
    # page of 10 came again (review s11-final2, L1: 35 items, 30 of them unique).
    held = _sessions(backend, 30)
    pager = ksef.sessions.list("Online", page_size=20)
    seen = [s.reference_number for _, s in zip(range(15), pager, strict=False)]
    rest = [s.reference_number for s in ksef.sessions.list("Online", page_size=size, cursor=pager.cursor)]
    assert len(seen + rest) == 30 and set(seen + rest) == held
