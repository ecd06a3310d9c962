"""KSeF's 100-day ``dateRange``: refused past it, on both sides, and walked in windows by the SDK.

Spec 2.9.0, ``InvoiceQueryFilters.dateRange``: "Maksymalny dozwolony okres wynosi 100 dni w strefie
UTC"; ``InvoiceQueryDateRange.to``: "Jeśli nie zostanie podana, przyjmowana jest bieżąca data i
czas w UTC" (a range without ``to`` reaches now). The SDK and the emulator once both allowed 92
days and checked only ranges with a ``to``, so ``sync()`` after a pause of more than 100 days asked
KSeF for a range it refuses, every run, and its mark never moved.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._generated.models import QueryInvoicesMetadataResponse
from ksef_client.errors import BadRequestError, ExportStatusError
from ksef_client.export import ExportResult
from ksef_client.invoice_query import MAX_RANGE, MetadataCursor, build_filters, next_metadata_page
from ksef_client.invoice_sync import SyncState, _advance
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import issued_by
from tests.hostile import Tamper, json_swap

BUYER = "1111111111"
DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def sent_at(
    ksef: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dt.datetime, str], None]]:
    """Send one invoice as if at ``when`` (the emulator's clock set back for it, then restored)."""
    real = backend.clock

    def send(when: dt.datetime, number: str) -> None:
        monkeypatch.setattr(backend, "clock", lambda: when)
        try:
            issued = (when - DAY).date()  # before the day it is received, wherever midnight falls
            ksef.send_batch([sample_invoice(number, buyer_nip=BUYER, issue_date=issued)], wait=True)
        finally:
            monkeypatch.setattr(backend, "clock", real)

    yield send


@pytest.fixture
def date_ranges(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """Every ``dateRange`` the client sends (metadata queries and exports)."""
    seen: list[dict[str, str]] = []
    send = httpx.Client.send

    def spy(self: httpx.Client, request: httpx.Request, **options: object) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(("/invoices/query/metadata", "/invoices/exports")):
            body = json.loads(request.content)
            seen.append((body.get("filters") or body)["dateRange"])
        return send(self, request, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "send", spy)
    return seen


def _span(date_range: dict[str, str], sent: dt.datetime) -> dt.timedelta:
    end = dt.datetime.fromisoformat(date_range["to"]) if "to" in date_range else sent
    return end - dt.datetime.fromisoformat(date_range["from"])


class TestTheLimit:
    def test_the_sdk_refuses_over_100_days_counting_an_open_range_to_now(self) -> None:
        start = _now() - dt.timedelta(days=150)
        with pytest.raises(ValueError, match="at most 100 days"):
            build_filters("Subject1", start)  # once sent as is: KSeF counts it to now, 150 days
        with pytest.raises(ValueError, match="at most 100 days"):
            build_filters("Subject1", start, start + MAX_RANGE + dt.timedelta(seconds=1))
        # 93 to 100 days: allowed by 2.9.0 (the SDK capped at 92, "3 months", the older rule).
        assert build_filters("Subject1", start, start + dt.timedelta(days=95))["dateRange"]["to"]
        assert build_filters("Subject1", start, start + MAX_RANGE)
        assert "to" not in build_filters("Subject1", _now() - dt.timedelta(days=99))["dateRange"]

    def test_collective_identifier_queries_are_held_to_100_days(self, ksef: KSeF) -> None:
        # CollectiveIdentifiersQueryRequest.dateCreatedFrom: "maksymalny przedział czasu to 100 dni".
        now = _now()
        with pytest.raises(ValueError, match="at most 100 days"):
            ksef.collective_identifiers.query(now - dt.timedelta(days=101), now)
        assert list(ksef.collective_identifiers.query(now - MAX_RANGE, now)) == []


class TestWindows:
    def test_a_query_from_290_days_ago_is_walked_in_windows_each_way(
        self, ksef: KSeF, sent_at: Callable[[dt.datetime, str], None], date_ranges: list[dict[str, str]]
    ) -> None:
        now = _now()
        for days in (250, 150, 30):
            sent_at(now - dt.timedelta(days=days), f"OLD/{days}")
        for order in ("Asc", "Desc"):
            date_ranges.clear()
            found = [
                r.invoice_number
                for r in ksef.invoices.query(
                    date_from=now - dt.timedelta(days=290), date_type="Invoicing", sort_order=order
                )
            ]
            expected = ["OLD/250", "OLD/150", "OLD/30"]
            assert found == (expected if order == "Asc" else expected[::-1])
            assert len(date_ranges) == 3 and all(_span(r, _now()) <= MAX_RANGE for r in date_ranges)

    def test_an_export_from_290_days_ago_takes_every_window(
        self, ksef: KSeF, sent_at: Callable[[dt.datetime, str], None], tmp_path: Path
    ) -> None:
        now = _now()
        for days in (250, 150, 30):
            sent_at(now - dt.timedelta(days=days), f"EX/{days}")
        result = ksef.invoices.export(tmp_path, date_from=now - dt.timedelta(days=290), interval=0)
        assert sorted(m["invoiceNumber"] for m in result.metadata) == ["EX/150", "EX/250", "EX/30"]
        assert len(result.files) == 3 and len(result.reference_numbers) == 3
        assert result.reference_number == result.reference_numbers[-1] and not result.is_truncated

    def test_a_sync_after_a_long_pause_catches_up_window_by_window(
        self,
        ksef: KSeF,
        sent_at: Callable[[dt.datetime, str], None],
        date_ranges: list[dict[str, str]],
        tmp_path: Path,
    ) -> None:
        # A state file left 200 days ago: each run once asked KSeF for 200 days and was refused.
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        now = _now()
        SyncState((now - dt.timedelta(days=200)).isoformat()).save(state)
        sent_at(now - dt.timedelta(days=120), "GAP/1")
        ksef.send_batch([sample_invoice("GAP/2", buyer_nip=BUYER)], wait=True)
        result = ksef.invoices.sync("Subject1", state, inbox, interval=0)
        assert len(result.ksef_numbers) == 2 and len(list(inbox.glob("*.xml"))) == 2
        assert len(date_ranges) >= 3 and all(_span(r, _now()) <= MAX_RANGE for r in date_ranges)
        assert ksef.invoices.sync("Subject1", state, inbox, interval=0).ksef_numbers == []

    def test_a_first_sync_from_a_year_back_takes_everything(
        self, ksef: KSeF, sent_at: Callable[[dt.datetime, str], None], tmp_path: Path
    ) -> None:
        now = _now()
        for days in (330, 200, 5):
            sent_at(now - dt.timedelta(days=days), f"Y/{days}")
        first = ksef.invoices.sync("Subject1", tmp_path / "s.json", tmp_path / "in",
                                   start=now - dt.timedelta(days=365), interval=0)  # fmt: skip
        assert len(first.ksef_numbers) == 3


# KSeF's HWM trails its present ("W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić nowe
# faktury", pobieranie-faktur/hwm.md); the emulator's trails it by this much in the tests below.
LAG = dt.timedelta(hours=1)
# The spec, 21183 (POST /invoices/query/metadata) and export status 420: "Parametr dateRange.from
# jest późniejszy niż PermanentStorageHwmDate przy włączonym restrictToPermanentStorageHwmDate".


def _after_hwm(date_ranges: list[dict[str, str]], hwm: dt.datetime) -> list[dict[str, str]]:
    return [r for r in date_ranges if dt.datetime.fromisoformat(r["from"]) > hwm]


class TestWindowsRestrictedToTheHwm:
    """A walk restricted to the HWM ends with the window that reaches it: the SDK cut an open range
    longer than 100 days (less an hour) at now, and asked for the next window from there, past
    KSeF's HWM, which KSeF refuses (21183 / export status 420). The emulator's HWM was its present,
    so nothing showed it."""

    @pytest.fixture
    def lagging(self, ksef: KSeF, backend: KSeFBackend, sent_at: Callable[[dt.datetime, str], None]) -> dt.datetime:
        """Invoices 60 and 10 days old and one stored now, past the HWM, which trails by ``LAG``."""
        now = _now()
        sent_at(now - dt.timedelta(days=60), "H/60")
        sent_at(now - dt.timedelta(days=10), "H/10")
        ksef.send_batch([sample_invoice("H/NOW", buyer_nip=BUYER)], wait=True)
        backend.hwm_lag = LAG
        return backend.invoices.hwm()

    @pytest.mark.parametrize(
        ("back", "ahead"),
        [(MAX_RANGE, None), (MAX_RANGE - dt.timedelta(minutes=30), None), (150 * DAY, 60 * DAY)],
        ids=["last-100-days", "100-days-less-half-an-hour", "to-in-the-future"],
    )
    def test_a_query_ends_at_the_window_that_reaches_the_hwm(
        self,
        ksef: KSeF,
        lagging: dt.datetime,
        date_ranges: list[dict[str, str]],
        back: dt.timedelta,
        ahead: dt.timedelta | None,
    ) -> None:
        now = _now()
        date_to = None if ahead is None else now + ahead
        found = [
            r.invoice_number
            for r in ksef.invoices.query(date_from=now - back, date_to=date_to, restrict_to_hwm=True, page_size=10)
        ]
        assert found == ["H/60", "H/10"]  # H/NOW is past the HWM: not final yet
        assert _after_hwm(date_ranges, lagging) == []

    def test_an_export_ends_at_the_window_that_reaches_the_hwm(
        self, ksef: KSeF, lagging: dt.datetime, date_ranges: list[dict[str, str]], tmp_path: Path
    ) -> None:
        for back, ahead in ((MAX_RANGE, None), (150 * DAY, 60 * DAY)):
            now = _now()
            date_to = None if ahead is None else now + ahead
            result = ksef.invoices.export(
                tmp_path / str(back.days), date_from=now - back, date_to=date_to, restrict_to_hwm=True, interval=0
            )
            assert sorted(m["invoiceNumber"] for m in result.metadata) == ["H/10", "H/60"]
            assert len(result.files) == 2
            hwm = result.permanent_storage_hwm_date
            assert hwm is not None and hwm >= lagging
        assert _after_hwm(date_ranges, lagging) == []

    def test_newest_first_a_to_far_in_the_future_is_not_asked_for(
        self, ksef: KSeF, lagging: dt.datetime, date_ranges: list[dict[str, str]]
    ) -> None:
        # Newest first the first window is the latest: 100 days before a date_to 150 days ahead
        # starts past the HWM. Restricted to it, nothing past the present can come.
        now = _now()
        pager = ksef.invoices.query(
            date_from=now - 150 * DAY, date_to=now + 150 * DAY, restrict_to_hwm=True, sort_order="Desc"
        )
        assert [r.invoice_number for r in pager] == ["H/10", "H/60"]
        assert _after_hwm(date_ranges, lagging) == []

    def test_without_the_hwm_a_refusal_of_a_later_window_ends_the_walk(
        self, ksef: KSeF, ksef_server: ThreadedServer, lagging: dt.datetime, tmp_path: Path
    ) -> None:
        # The spec has the HWM optional in both answers: without it the window's end cannot be
        # compared, so the next window is asked for. KSeF's refusal of it (21183, export status
        # 420) has one meaning, "dateRange.from jest późniejszy niż PermanentStorageHwmDate": the
        # window before, whole and ending there, reached the HWM. Nothing more yet; not an error.
        def no_hwm(body: dict[str, Any]) -> dict[str, Any]:
            body.pop("permanentStorageHwmDate", None)
            if isinstance(body.get("package"), dict):
                body["package"].pop("permanentStorageHwmDate", None)
            return body

        swaps = [json_swap("POST", "/invoices/query/metadata", no_hwm), json_swap("GET", "/invoices/exports/", no_hwm)]
        tamper = Tamper(lambda request, response: swaps[0](request, response) or swaps[1](request, response))
        with KSeF(base_url=ksef_server.base_url, access_token=ksef.access_token, transport=tamper) as client:
            start = _now() - MAX_RANGE
            found = [r.invoice_number for r in client.invoices.query(date_from=start, restrict_to_hwm=True)]
            assert found == ["H/60", "H/10"]
            result = client.invoices.export(tmp_path, date_from=start, restrict_to_hwm=True, interval=0)
            assert sorted(m["invoiceNumber"] for m in result.metadata) == ["H/10", "H/60"]
            assert len(result.reference_numbers) == 1
            # The first window refused so is an error: the range asked for starts past the HWM.
            with pytest.raises(BadRequestError) as caught:
                list(client.invoices.query(date_from=lagging + dt.timedelta(minutes=1), restrict_to_hwm=True))
            assert caught.value.codes == [21183]
            with pytest.raises(ExportStatusError) as refused:
                client.invoices.export(
                    tmp_path, date_from=lagging + dt.timedelta(minutes=1), restrict_to_hwm=True, interval=0
                )
            assert refused.value.code == 420

    def test_an_hwm_written_to_the_millisecond_does_not_end_the_walk_early(
        self, ksef: KSeF, ksef_server: ThreadedServer, lagging: dt.datetime, tmp_path: Path
    ) -> None:
        # Review: for a past window KSeF gives the window's own `to` as its HWM ("Dla okresów
        # starszych, będzie to zgodne z warunkami zapytania"); written to the millisecond, as the
        # spec's example of the field is, a `to` with microseconds read as an HWM just before it,
        # and the walk ended after its first window with the later ones unread.
        def to_milliseconds(body: dict[str, Any]) -> dict[str, Any]:
            package = body.get("package")
            for holder in (body, package if isinstance(package, dict) else {}):
                if holder.get("permanentStorageHwmDate"):
                    written = dt.datetime.fromisoformat(holder["permanentStorageHwmDate"])
                    holder["permanentStorageHwmDate"] = written.isoformat(timespec="milliseconds")
            return body

        swaps = [json_swap("POST", "/invoices/query/metadata", to_milliseconds)]
        swaps.append(json_swap("GET", "/invoices/exports/", to_milliseconds))
        tamper = Tamper(lambda request, response: swaps[0](request, response) or swaps[1](request, response))
        start = (_now() - 150 * DAY).replace(microsecond=123456)  # as a caller's now() - timedelta has them
        with KSeF(base_url=ksef_server.base_url, access_token=ksef.access_token, transport=tamper) as client:
            found = [r.invoice_number for r in client.invoices.query(date_from=start, restrict_to_hwm=True)]
            assert found == ["H/60", "H/10"]
            result = client.invoices.export(tmp_path, date_from=start, restrict_to_hwm=True, interval=0)
            assert sorted(m["invoiceNumber"] for m in result.metadata) == ["H/10", "H/60"]

    def test_a_sync_from_100_days_back_takes_what_lies_below_the_hwm(
        self, ksef: KSeF, lagging: dt.datetime, tmp_path: Path
    ) -> None:
        # sync() goes on from the package's HWM, never past it (it passed before; kept with the lag).
        start = _now() - MAX_RANGE
        first = ksef.invoices.sync("Subject1", tmp_path / "s.json", tmp_path / "in", start=start, interval=0)
        assert sorted(path.name for path in first.files) == sorted(f"{n}.xml" for n in first.ksef_numbers)
        assert len(first.ksef_numbers) == 2  # H/60 and H/10; H/NOW is past the HWM

    def test_the_pager_gives_the_hwm_where_the_next_walk_starts(
        self, ksef: KSeF, backend: KSeFBackend, lagging: dt.datetime
    ) -> None:
        # The spec's incremental walk: "System gwarantuje, że dane poniżej tej wartości są spójne i
        # kompletne"; the guide: "Nowa wartość HWM staje się początkiem kolejnego przedziału"
        # (pobieranie-faktur/hwm.md). query() kept the date to itself: no caller could go on from it.
        pager = ksef.invoices.query(date_from=_now() - 150 * DAY, restrict_to_hwm=True, page_size=10)
        assert pager.permanent_storage_hwm_date is None  # nothing asked yet
        assert [r.invoice_number for r in pager] == ["H/60", "H/10"]
        hwm = pager.permanent_storage_hwm_date
        assert hwm is not None and lagging <= hwm < _now()
        backend.hwm_lag = dt.timedelta(0)  # KSeF's mark moves on: H/NOW is final now
        after = ksef.invoices.query(date_from=hwm, restrict_to_hwm=True)
        assert [r.invoice_number for r in after] == ["H/NOW"]
        assert after.permanent_storage_hwm_date is not None and after.permanent_storage_hwm_date > hwm

    def test_newest_first_the_pager_gives_the_hwm_of_the_newest_window(self, ksef: KSeF, lagging: dt.datetime) -> None:
        # Older windows give their own to ("Dla okresów starszych, będzie to zgodne z warunkami
        # zapytania"): the walk's HWM is the newest window's, the highest.
        pager = ksef.invoices.query(date_from=_now() - 150 * DAY, restrict_to_hwm=True, sort_order="Desc")
        assert [r.invoice_number for r in pager] == ["H/10", "H/60"]
        hwm = pager.permanent_storage_hwm_date
        assert hwm is not None and lagging <= hwm < _now()

    def test_by_another_date_type_there_is_no_hwm(self, ksef: KSeF, lagging: dt.datetime) -> None:
        # "Dla dateType = Issue lub Invoicing - null."
        pager = ksef.invoices.query(date_from=_now() - 90 * DAY, date_type="Invoicing")
        assert len(list(pager)) == 3 and pager.permanent_storage_hwm_date is None

    def test_the_async_pager_gives_the_hwm_too(
        self, ksef: KSeF, ksef_server: ThreadedServer, lagging: dt.datetime
    ) -> None:
        async def walk() -> tuple[list[str], dt.datetime | None]:
            async with AsyncKSeF(base_url=ksef_server.base_url, access_token=ksef.access_token) as client:
                pager = client.invoices.query(date_from=_now() - MAX_RANGE, restrict_to_hwm=True)
                return [r.invoice_number async for r in pager], pager.permanent_storage_hwm_date

        found, hwm = anyio.run(walk)
        assert found == ["H/60", "H/10"] and hwm is not None and lagging <= hwm < _now()

    def test_without_the_restriction_the_walk_still_reaches_the_present(self, ksef: KSeF, lagging: dt.datetime) -> None:
        # Only a walk restricted to the HWM ends there: without it, what lies past it comes too.
        found = [r.invoice_number for r in ksef.invoices.query(date_from=_now() - MAX_RANGE)]
        assert found == ["H/60", "H/10", "H/NOW"]


class TestWindowSteps:
    def test_a_finished_window_short_of_the_range_goes_on_from_its_bound(self) -> None:
        at, number = "2026-01-01T10:00:00+00:00", f"{NIP}-20260101-010000000001-00"
        record = {
            "ksefNumber": number, "invoiceNumber": "F/1", "issueDate": "2026-01-01",
            "invoicingDate": at, "acquisitionDate": at, "permanentStorageDate": at, "seller": {"nip": NIP},
            "buyer": {"identifier": {"type": "None"}}, "netAmount": 1, "grossAmount": 1, "vatAmount": 0,
            "currency": "PLN", "invoicingMode": "Online", "invoiceType": "Vat",
            "formCode": {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}, "isSelfInvoicing": False,
            "hasAttachment": False, "invoiceHash": "A" * 43 + "=",
        }  # fmt: skip
        page = QueryInvoicesMetadataResponse.from_dict({"hasMore": False, "isTruncated": False, "invoices": [record]})
        cursor = MetadataCursor("2025-09-23T10:00:00+00:00")
        assert next_metadata_page(cursor, page, "PermanentStorage")[1] is None
        # The record sits on the bound, which the next window holds again: it is skipped there.
        _, after = next_metadata_page(cursor, page, "PermanentStorage", short_at=at)
        assert after == MetadataCursor(at, 0, (number,))
        _, after = next_metadata_page(cursor, page, "PermanentStorage", True, short_at=at)
        assert after == MetadataCursor(cursor.date_from, 0, (number,), date_to=at)

    def test_an_explicit_sync_window_ends_at_its_to_or_the_hwm_before_it(self, tmp_path: Path) -> None:
        # The guide (przyrostowe-pobieranie-faktur.md): the next window starts at "wartość
        # dateRange.to, gdy została podana, lub PermanentStorageHwmDate gdy dateRange.to pominięto".
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        to = start + MAX_RANGE

        def done(hwm: dt.datetime | None) -> ExportResult:
            return ExportResult("EX", tmp_path, [], [], False, None, hwm)

        state, asked = SyncState(start.isoformat()), to + 3 * DAY
        assert _advance(state, done(to + DAY), to, asked).date_from == to.isoformat()
        assert _advance(state, done(to - DAY), to, asked).date_from == (to - DAY).isoformat()
        assert _advance(state, done(to + DAY), None, asked).date_from == (to + DAY).isoformat()  # open: the HWM


class _FirstWindowHeld:
    """Around the first window of a walk (its first request with a ``to``, T): the emulator's
    clock held at ``T - lag`` while it answers (its HWM then lies just below T, as KSeF's may:
    "nieznacznie skorygowaną względem górnej granicy"), then back on the real clock, and
    ``arrive(T)`` run: an invoice KSeF stores meanwhile, dated in (HWM, T) ("W przedziale (HWM,
    Teraz] [...] mogą się jeszcze pojawić nowe faktury", pobieranie-faktur/hwm.md)."""

    def __init__(self, backend: KSeFBackend, lag: dt.timedelta, arrive: Callable[[dt.datetime], None]) -> None:
        self.lag, self.arrive = lag, arrive
        self.held: dt.datetime | None = None
        self.window_to: dt.datetime | None = None
        backend.clock = lambda: self.held or _now()

    def before(self, request: httpx.Request) -> bool:
        """Whether ``request`` asks for the first window (the clock is then held)."""
        if self.window_to is not None or request.method != "POST" or not request.content:
            return False
        body = json.loads(request.content)
        to = (body.get("filters") or body).get("dateRange", {}).get("to")
        if to is None:
            return False
        self.window_to = dt.datetime.fromisoformat(to)
        self.held = self.window_to - self.lag
        return True

    def after(self) -> None:
        assert self.window_to is not None
        self.held = None
        self.arrive(self.window_to)


class _Around(httpx.BaseTransport):
    def __init__(self, hook: _FirstWindowHeld) -> None:
        self.inner, self.hook = httpx.HTTPTransport(), hook

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        first = self.hook.before(request)
        response = self.inner.handle_request(request)
        if first:
            response.read()
            self.hook.after()
        return response

    def close(self) -> None:
        self.inner.close()


class _AsyncAround(httpx.AsyncBaseTransport):
    def __init__(self, hook: _FirstWindowHeld) -> None:
        self.inner, self.hook = httpx.AsyncHTTPTransport(), hook

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        first = self.hook.before(request)
        response = await self.inner.handle_async_request(request)
        if first:
            await response.aread()
            self.hook.after()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class TestALateArrivalJustBelowAWindowsTo:
    """Review r6: a restricted walk over more than 100 days - 1 h has a first window closed at T
    (about now for ``date_from`` 100 days back), whose HWM H1 KSeF gives a little below T. Was: the
    next window started at T, so an invoice KSeF stored after the first window was answered, dated
    in (H1, T), was in neither window; and the walk's HWM, past it, had the next walk start past
    it too: lost for good. Now the next window starts at H1 (as ``sync`` goes on from
    ``min(hwm, to)``); what both windows hold is dropped as yielded before."""

    LAG = dt.timedelta(milliseconds=200)

    def _stored(self, backend: KSeFBackend, start: dt.datetime) -> tuple[Any, Any]:
        """EARLY, dated inside the first window, and LATE, not stored yet (dated before the range)."""
        backend.clock = lambda: _now() - dt.timedelta(hours=1)  # nothing stored near T
        access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
        invoices = []
        for number in ("R6/EARLY", "R6/LATE"):
            session = backend.sessions.open(access)
            invoices.append(
                backend.sessions.add_invoice(
                    session, sample_invoice(number, buyer_nip=BUYER, issue_date=issued_by(backend))
                )
            )
            backend.sessions.close(session)
        early, late = invoices
        early.stored_at, late.stored_at = start + DAY, start - DAY
        return early, late

    def _hook(self, backend: KSeFBackend, late: Any) -> _FirstWindowHeld:
        def arrive(window_to: dt.datetime) -> None:
            late.stored_at = window_to - dt.timedelta(milliseconds=50)  # in (H1, T): after H1 was given

        return _FirstWindowHeld(backend, self.LAG, arrive)

    def test_a_query_walk_goes_on_from_the_hwm_below_the_window_s_to(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer
    ) -> None:
        start = _now() - MAX_RANGE + dt.timedelta(minutes=30)
        _, late = self._stored(backend, start)
        hook = self._hook(backend, late)
        with KSeF(base_url=ksef_server.base_url, access_token=ksef.access_token, transport=_Around(hook)) as client:
            pager = client.invoices.query(date_from=start, restrict_to_hwm=True, page_size=10)
            got = [r.invoice_number for r in pager]
        assert hook.window_to is not None and late.stored > hook.window_to - self.LAG  # a legal late arrival
        hwm = pager.permanent_storage_hwm_date
        assert hwm is not None and hwm > late.stored  # the walk says it holds everything below
        assert got == ["R6/EARLY", "R6/LATE"]  # was: ["R6/EARLY"], and the next walk from hwm had none

    def test_an_export_goes_on_from_the_hwm_below_the_window_s_to(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        start = _now() - MAX_RANGE + dt.timedelta(minutes=30)
        early, late = self._stored(backend, start)
        hook = self._hook(backend, late)
        with KSeF(base_url=ksef_server.base_url, access_token=ksef.access_token, transport=_Around(hook)) as client:
            result = client.invoices.export(tmp_path, date_from=start, restrict_to_hwm=True, interval=0)
        hwm = result.permanent_storage_hwm_date
        assert hwm is not None and hwm > late.stored
        assert sorted(m["invoiceNumber"] for m in result.metadata) == ["R6/EARLY", "R6/LATE"]
        assert sorted(p.name for p in result.files) == sorted(f"{i.ksef_number}.xml" for i in (early, late))
        assert len(result.reference_numbers) == 2

    @pytest.mark.anyio
    async def test_an_async_query_walk_goes_on_from_the_hwm_below_the_window_s_to(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer
    ) -> None:
        start = _now() - MAX_RANGE + dt.timedelta(minutes=30)
        _, late = self._stored(backend, start)
        hook = self._hook(backend, late)
        async with AsyncKSeF(
            base_url=ksef_server.base_url, access_token=ksef.access_token, transport=_AsyncAround(hook)
        ) as client:
            pager = client.invoices.query(date_from=start, restrict_to_hwm=True, page_size=10)
            got = [r.invoice_number async for r in pager]
        assert got == ["R6/EARLY", "R6/LATE"]

    def test_the_window_after_skips_what_the_first_yielded_at_its_last_two_dates(self) -> None:
        # The next window starts at the HWM, which may lie below the first window's last dates:
        # a walk resumed from its cursor (no memory of what it yielded) drops those records too.
        def record(number: str, when: str) -> dict[str, Any]:
            return {
                "ksefNumber": number, "invoiceNumber": number, "issueDate": "2026-01-02",
                "invoicingDate": when, "acquisitionDate": when, "permanentStorageDate": when,
                "seller": {"nip": NIP}, "buyer": {"identifier": {"type": "Nip", "value": BUYER}},
                "netAmount": 1, "grossAmount": 1, "vatAmount": 0, "currency": "PLN",
                "invoicingMode": "Online", "invoiceType": "Vat",
                "formCode": {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"},
                "isSelfInvoicing": False, "hasAttachment": False, "invoiceHash": "AAAA",
            }  # fmt: skip

        page = QueryInvoicesMetadataResponse.from_dict({
            "hasMore": False, "isTruncated": False,
            "invoices": [
                record("A", "2026-01-02T10:00:00.100000+00:00"),
                record("B", "2026-01-02T10:00:00.700000+00:00"),
                record("C", "2026-01-02T10:00:00.900000+00:00"),
            ],
        })  # fmt: skip
        cursor = MetadataCursor("2026-01-01T00:00:00+00:00")
        _, following = next_metadata_page(cursor, page, "PermanentStorage", short_at="2026-01-02T10:00:00.500000+00:00")
        assert following is not None and following.date_from == "2026-01-02T10:00:00.500000+00:00"
        assert set(following.skip) == {"B", "C"}
