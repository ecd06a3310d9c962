"""The metadata walk while invoices arrive, and past more records at one date than KSeF returns
(review of getting data out, findings 6 and 12).

``POST /invoices/query/metadata`` pages by ``pageOffset``: an invoice that arrives during a walk
and sorts before the page the walk is at pushes every later record one place down, and the next
page starts with a record already yielded. ``InvoiceQueryDateRange.to``: "Jeśli nie zostanie
podana, przyjmowana jest bieżąca data i czas w UTC": newest first, every invoice that arrives
during a walk without ``to`` sorts first. The walk fixes ``to`` at its start newest first, and
drops a record it has yielded should it come again (by any date: an issue date is the issuer's,
so an invoice issued earlier may arrive at any time).

The spec's limit: "≤ 10 000 rekordów na zestaw filtrów, po jego osiągnięciu isTruncated = true i
należy ponownie ustawić dateRange, używając ostatniej daty z wyników". When more than that share
one date (by ``Issue``, a day), the range restarted from it returns the same records: KSeF
answered correctly, so that is ``QueryLimitError``, not ``ResponseFormatError`` (a spec breach).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ksef_client import KSeF, QueryLimitError, ResponseFormatError
from ksef_client._generated.models import InvoiceMetadata
from ksef_client.invoice_query import REMEMBERED, Yielded
from ksef_client.mock import KSeFBackend
from ksef_client.mock.models import Invoice
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.hostile import Tamper
from tests.resources.test_invoices import _record

BUYER = "1111111111"


def _start() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def _send(ksef: KSeF, prefix: str, count: int, issued: dt.date | None = None) -> set[str]:
    """Send ``count`` invoices (issued on ``issued``, default today); their invoice numbers."""
    numbers = [f"{prefix}/{i}" for i in range(count)]
    ksef.send_batch([sample_invoice(n, buyer_nip=BUYER, issue_date=issued) for n in numbers], wait=True)
    return set(numbers)


def _walk(
    server: ThreadedServer, backend: KSeFBackend, arrive: Callable[[], object], **query: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """The invoice numbers a walk yields, ``arrive()`` run once KSeF has answered its first page
    (before the next is asked for), and the ``dateRange`` of each of its requests."""
    ranges: list[dict[str, Any]] = []

    def between_pages(request: httpx.Request, response: httpx.Response) -> None:
        if request.url.path.endswith("/invoices/query/metadata"):
            ranges.append(json.loads(request.content)["dateRange"])
            if len(ranges) == 1:
                arrive()

    token = backend.mint_access_token(NIP)
    with KSeF(base_url=server.base_url, access_token=token, transport=Tamper(between_pages)) as walker:
        return [r.invoice_number for r in walker.invoices.query(page_size=10, **query)], ranges


def _twice(numbers: list[str]) -> list[str]:
    return [n for n, times in collections.Counter(numbers).items() if times > 1]


class TestInvoicesArrivingDuringTheWalk:
    def test_newest_first_the_open_end_is_fixed_when_the_walk_starts(
        self, ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
    ) -> None:
        # Was: 30 records, 5 of them twice (repro_5_desc_paging_shift.py): the 5 new ones came
        # first in the order and pushed the pages down.
        sent = _send(ksef, "A", 25)
        found, ranges = _walk(ksef_server, backend, lambda: _send(ksef, "B", 5), date_from=_start(), sort_order="Desc")
        assert _twice(found) == [] and set(found) == sent  # the new ones arrived after the walk's end
        assert len(ranges) == 3 and len({r.get("to") for r in ranges}) == 1 and ranges[0].get("to")

    @pytest.mark.parametrize(
        ("sort_order", "arriving_days_ago"),
        [
            # By issue date the fixed end does not help: invoices issued the day after the others,
            # sent during the walk, sort first (before its end) and push the pages down.
            ("Desc", 2),
            # Oldest first, invoices issued the day before sort before the walk's place (was: 28
            # records, 3 of them twice).
            ("Asc", 3),
        ],
    )
    def test_an_invoice_arriving_during_a_walk_by_issue_date_comes_once(
        self, ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, sort_order: str, arriving_days_ago: int
    ) -> None:
        today = dt.date.today()
        sent = _send(ksef, "A", 25, today - dt.timedelta(days=2 if sort_order == "Asc" else 3))
        found, _ = _walk(
            ksef_server,
            backend,
            lambda: _send(ksef, "B", 3, today - dt.timedelta(days=arriving_days_ago)),
            date_from=today - dt.timedelta(days=6),
            date_type="Issue",
            sort_order=sort_order,
        )
        assert _twice(found) == [] and set(found) == sent  # the ones arriving sort before the walk's place

    def test_oldest_first_by_storage_date_an_open_range_still_takes_what_arrives(
        self, ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
    ) -> None:
        # The default walk (PermanentStorage, Asc) is left as it was: no ``to`` (KSeF counts to its
        # present moment, the restriction to its HWM, when asked for, applies as the guide says:
        # "PermanentStorageHwmDate gdy dateRange.to pominięto"); what arrives during the walk
        # sorts last and comes at its end, once.
        sent = _send(ksef, "A", 25)
        late: set[str] = set()
        found, ranges = _walk(ksef_server, backend, lambda: late.update(_send(ksef, "B", 5)), date_from=_start())
        assert _twice(found) == [] and set(found) == sent | late
        assert all("to" not in r for r in ranges)

    def test_a_chain_of_walks_held_to_the_hwm_takes_an_invoice_stored_late_with_an_earlier_date(
        self, ksef_server: ThreadedServer, backend: KSeFBackend
    ) -> None:
        # KSeF's HWM trails the present, and past it invoices may still appear with earlier
        # dates: "W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić nowe faktury, tj. z
        # datą PermanentStorage mieszczącą się w zakresie (HWM, Teraz]" (pobieranie-faktur/hwm.md).
        # An unrestricted oldest-first walk that has passed such a date misses the invoice (the
        # docs said it "comes at its end"); a walk held to the HWM stops at it, and the next walk,
        # from the pager's permanent_storage_hwm_date, takes it. The emulator stores each invoice
        # as it numbers it, so the late one's date is set back by hand, as KSeF's concurrent
        # storage would date it.
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        clock = [now - dt.timedelta(minutes=1)]
        backend.clock = lambda: clock[0]
        access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))

        def store(number: str) -> Invoice:
            session = backend.sessions.open(access)
            invoice = backend.sessions.add_invoice(session, sample_invoice(number, buyer_nip=BUYER))
            backend.sessions.close(session)
            clock[0] += dt.timedelta(seconds=1)
            return invoice

        sent = [store(f"A/{i:02}") for i in range(25)]
        stored = [invoice.stored for invoice in sent]
        assert None not in stored
        backend.hwm_lag = clock[0] - stored[12]  # only A/00..A/12 are final yet

        def late_arrival() -> None:
            late = store("LATE")
            late.acquired = sent[15].acquired + dt.timedelta(milliseconds=500)  # between A/15 and A/16

        token = backend.mint_access_token(NIP)
        arrived: list[bool] = []

        def between_pages(request: httpx.Request, response: httpx.Response) -> None:
            if request.url.path.endswith("/invoices/query/metadata") and not arrived:
                arrived.append(True)  # once KSeF has answered the walk's first page
                late_arrival()

        since = now - dt.timedelta(minutes=2)
        with KSeF(base_url=ksef_server.base_url, access_token=token, transport=Tamper(between_pages)) as walker:
            first = walker.invoices.query(date_from=since, restrict_to_hwm=True, page_size=10)
            taken = [r.invoice_number for r in first]
            assert taken == [f"A/{i:02}" for i in range(13)]
            assert first.permanent_storage_hwm_date == stored[12]
            backend.hwm_lag = dt.timedelta(0)  # KSeF's HWM catches up
            following = walker.invoices.query(date_from=first.permanent_storage_hwm_date, restrict_to_hwm=True)
            more = [r.invoice_number for r in following]
        # A/12 sits at the bound, in both walks (handled by KSeF number); LATE comes, in its place.
        assert more == [f"A/{i:02}" for i in range(12, 16)] + ["LATE"] + [f"A/{i:02}" for i in range(16, 25)]
        assert set(taken) | set(more) == {f"A/{i:02}" for i in range(25)} | {"LATE"}


class TestMoreRecordsAtOneDateThanOneQueryReturns:
    def test_an_issue_day_fuller_than_the_limit_is_a_query_limit_error(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # Was: ResponseFormatError "metadata window truncated without progress (10,000+ records at
        # one instant)" (repro_6_truncation.py): the answer broke no rule, and a day is no instant.
        day = dt.date.today() - dt.timedelta(days=1)
        sent = _send(ksef, "D", 25, day)
        backend.metadata_limit = 10  # KSeF's 10,000, scaled down
        pager = ksef.invoices.query(date_from=day - dt.timedelta(days=2), date_type="Issue", page_size=10)
        found: list[str] = []
        with pytest.raises(QueryLimitError) as raised:
            found.extend(r.invoice_number for r in pager)
        error = raised.value
        assert not isinstance(error, ResponseFormatError)
        assert (error.date_type, error.date) == ("Issue", day.isoformat())
        text = str(error)
        assert f"issue date {day.isoformat()}" in text and "a day" in text
        assert "date_type='PermanentStorage'" in text and "narrow the filters" in text
        assert _twice(found) == [] and set(found) <= sent  # what came before the error stands
        # as the error says: by storage date each invoice has its own moment
        by_storage = [r.invoice_number for r in ksef.invoices.query(date_from=_start(), page_size=10)]
        assert len(by_storage) == 25 and set(by_storage) == sent

    def test_an_instant_fuller_than_the_limit_is_a_query_limit_error(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # The emulator takes a batch's invoices at its one upload instant (invoicingDate).
        _send(ksef, "I", 25)
        backend.metadata_limit = 10
        for order in ("Asc", "Desc"):
            with pytest.raises(QueryLimitError, match="one instant") as raised:
                list(ksef.invoices.query(date_from=_start(), date_type="Invoicing", sort_order=order, page_size=10))
            assert raised.value.date_type == "Invoicing" and "date_type='PermanentStorage'" in str(raised.value)


def test_the_walk_remembers_what_one_query_returns_at_most() -> None:
    # One run of offset pages returns at most 10,000 records (the spec's "≤ 10 000 rekordów na
    # zestaw filtrów"): the walk's memory holds that many numbers, the oldest forgotten first.
    assert REMEMBERED == 10_000
    records = [InvoiceMetadata.from_dict(_record(n, f"10:00:{n:02d}")) for n in range(4)]
    yielded = Yielded(size=2)
    assert yielded.fresh(records[:3]) == records[:3]
    assert yielded.fresh([records[2], records[1], records[3]]) == [records[3]]  # the last 2 were remembered
    assert yielded.fresh([records[0], records[0]]) == [records[0]]  # forgotten: it comes again, once
