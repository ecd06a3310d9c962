"""Downloading through the emulator: one invoice, metadata across truncated windows, export, sync."""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksef_client import AsyncKSeF, BodyLimits, KSeF
from ksef_client._generated.api.invoices import query_invoice_metadata
from ksef_client._generated.models import InvoiceQueryFilters, QueryInvoicesMetadataResponse
from ksef_client._paths import file_in
from ksef_client.crypto import sha256_b64
from ksef_client.errors import (
    APIConnectionError,
    BadRequestError,
    ExportError,
    QueryLimitError,
    ResponseFormatError,
    ResponseTooLargeError,
)
from ksef_client.export import ExportResult
from ksef_client.identifiers import make_ksef_number
from ksef_client.invoice_query import FILTER_NAMES, next_metadata_page
from ksef_client.invoice_sync import SyncState, _keep_new
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP
from ksef_client.mock.server import ThreadedServer
from ksef_client.resources.invoices import MetadataCursor, build_filters
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime, SharedTime
from tests.hostile import Tamper, json_swap

BUYER = "1111111111"


def _start() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def _send(ksef: KSeF, count: int, prefix: str) -> dict[str, bytes]:
    invoices = {f"{prefix}/{i}": sample_invoice(f"{prefix}/{i}", buyer_nip=BUYER) for i in range(count)}
    ksef.send_batch(list(invoices.values()), wait=True)
    return invoices


def _number(n: int) -> str:
    return f"{NIP}-20260101-0100000000{n:02d}-00"


def _record(n: int, time: str) -> dict[str, Any]:
    """A metadata record stored (and invoiced) on 2026-01-01 at ``time`` UTC."""
    at = f"2026-01-01T{time}+00:00"
    return {
        "ksefNumber": _number(n), "invoiceNumber": f"F/{n}", "issueDate": "2026-01-01", "invoicingDate": at,
        "acquisitionDate": at, "permanentStorageDate": at, "seller": {"nip": NIP},
        "buyer": {"identifier": {"type": "None"}}, "netAmount": 1, "grossAmount": 1, "vatAmount": 0,
        "currency": "PLN", "invoicingMode": "Online", "invoiceType": "Vat",
        "formCode": {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}, "isSelfInvoicing": False,
        "hasAttachment": False, "invoiceHash": "A" * 43 + "=",
    }  # fmt: skip


def replace_last(page: QueryInvoicesMetadataResponse) -> QueryInvoicesMetadataResponse:
    """``page`` without its last record."""
    return QueryInvoicesMetadataResponse(
        has_more=page.has_more, is_truncated=page.is_truncated, invoices=page.invoices[:-1]
    )


class TestDownload:
    def test_get_returns_the_sent_bytes(self, ksef: KSeF, backend: KSeFBackend) -> None:
        sent = _send(ksef, 3, "G")
        records = list(ksef.invoices.query(date_from=_start()))
        assert {r.invoice_number for r in records} == set(sent)
        for record in records:
            assert ksef.invoices.get(record.ksef_number) == sent[record.invoice_number]

    def test_buyer_sees_the_invoice_and_strangers_do_not(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer
    ) -> None:
        _send(ksef, 1, "B")
        number = next(iter(ksef.invoices.query(date_from=_start()))).ksef_number
        with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(BUYER)) as buyer:
            assert [r.ksef_number for r in buyer.invoices.query("Subject2", date_from=_start())] == [number]
            assert buyer.invoices.get(number).startswith(b"<?xml")
        with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token("7680002466")) as stranger:
            with pytest.raises(BadRequestError) as caught:
                stranger.invoices.get(number)
            assert caught.value.codes == [21164]
            assert list(stranger.invoices.query("Subject2", date_from=_start())) == []

    def test_bad_filters_fail_before_sending(self, ksef: KSeF) -> None:
        with pytest.raises(ValueError, match="subject_type"):
            ksef.invoices.query("Seller", date_from=_start())
        with pytest.raises(ValueError, match="must be after date_from"):
            ksef.invoices.query(date_from=_start(), date_to=_start() - dt.timedelta(days=1))
        with pytest.raises(ValueError, match="page_size"):
            ksef.invoices.query(date_from=_start(), page_size=500)
        with pytest.raises(ValueError, match="ksef_number"):
            ksef.invoices.get("not-a-number")
        assert ksef.send_state.requests_sent == 0


def _numbered(backend: KSeFBackend, number: str) -> tuple[str, bytes]:
    """An invoice numbered by the emulator now (no status read of it: ``storage_reads`` counts the
    downloads alone): its KSeF number and bytes."""
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access)
    xml = sample_invoice(number, buyer_nip=BUYER)
    invoice = backend.sessions.add_invoice(session, xml)
    backend.sessions.close(session)
    return str(invoice.ksef_number), xml


class TestNotYetStored:
    """GET /invoices/ksef/{n}, 400: "21165 | Faktura o podanym numerze KSeF nie jest jeszcze dostępna.
    | ... została przetworzona, ale nie jest jeszcze dostępna do pobrania. Spróbuj ponownie później."
    (the spec). Was: the first 21165 raised, though KSeF stores a numbered invoice shortly after."""

    def test_a_download_is_asked_again_with_backoff_until_the_invoice_is_stored(
        self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime
    ) -> None:
        backend.transitions.storage_reads = 2  # two downloads find it not stored, the third gets it
        number, xml = _numbered(backend, "NS/1")
        assert ksef.invoices.get(number) == xml
        assert ksef.send_state.requests_sent == 3 and len(fake_time.sleeps) == 2
        assert fake_time.sleeps[0] <= 0.5 and fake_time.sleeps[1] <= 1.0  # the policy's backoff, doubling

    def test_still_not_stored_after_the_retries_raises_21165_with_a_note(
        self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime
    ) -> None:
        backend.transitions.storage_reads = 4
        number, xml = _numbered(backend, "NS/2")
        with pytest.raises(BadRequestError) as caught:
            ksef.invoices.get(number)  # 1 + max_retries (3) attempts
        assert caught.value.codes == [21165] and ksef.send_state.requests_sent == 4
        assert len(fake_time.sleeps) == 3
        (note,) = caught.value.__notes__
        assert f"numbered invoice {number} but not stored it yet (21165)" in note and "again later" in note
        assert ksef.invoices.get(number) == xml  # the fifth read: stored

    def test_max_retries_0_raises_the_first_21165(self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
        backend.transitions.storage_reads = 1
        number, _ = _numbered(backend, "NS/3")
        with pytest.raises(BadRequestError) as caught, ksef.with_options(max_retries=0) as strict:
            strict.invoices.get(number)
        assert caught.value.codes == [21165] and fake_time.sleeps == []

    def test_another_400_is_not_asked_again(self, ksef: KSeF, fake_time: FakeTime) -> None:
        with pytest.raises(BadRequestError) as caught:
            ksef.invoices.get(make_ksef_number(NIP, "20261120", "0123456789AB"))
        assert caught.value.codes == [21164] and fake_time.sleeps == [] and ksef.send_state.requests_sent == 1

    def test_the_backoff_outlasts_storage_delay_on_the_emulators_clock(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Time instead of reads: the client's waits move the emulator's clock (SharedTime), and
        # the invoice is stored storage_delay after its numbering, however often it is read.
        time = SharedTime(backend, monkeypatch)
        backend.transitions.storage_reads, backend.transitions.storage_delay = 1_000, 0.2
        number, xml = _numbered(backend, "NS/4")
        token = backend.mint_access_token(NIP)
        with KSeF(
            base_url=ksef_server.base_url, access_token=token, sleep=time.sleep, clock=time.clock, max_retries=10
        ) as client:
            assert client.invoices.get(number) == xml
            assert client.send_state.requests_sent >= 2 and sum(time.sleeps) >= 0.2

    @pytest.mark.anyio
    async def test_the_async_client_asks_again_too(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
    ) -> None:
        backend.transitions.storage_reads = 3
        number, xml = _numbered(backend, "NS/5")
        token = backend.mint_access_token(NIP)
        async with AsyncKSeF(
            base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
        ) as client:
            assert await client.invoices.get(number) == xml
            assert len(fake_time.sleeps) == 3
            backend.transitions.storage_reads = 4
            later, _ = _numbered(backend, "NS/6")
            with pytest.raises(BadRequestError) as caught:
                await client.invoices.get(later)
            assert caught.value.codes == [21165] and "again later" in caught.value.__notes__[0]


class TestFilters:
    def test_filters_by_their_python_or_api_names_narrow_queries_and_exports(
        self, ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # As docs/downloading.md writes them (seller_nip=...): they once went out under the Python
        # name, which KSeF ignores, and every invoice came back.
        _send(ksef, 3, "F")
        with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token("7680002466")) as other:
            other.send_batch([sample_invoice("O/1", seller_nip="7680002466", buyer_nip=BUYER)], wait=True)
        with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(BUYER)) as buyer:
            received = [r.invoice_number for r in buyer.invoices.query("Subject2", date_from=_start())]
            assert sorted(received) == ["F/0", "F/1", "F/2", "O/1"]
            spellings: list[dict[str, Any]] = [{"seller_nip": "7680002466"}, {"sellerNip": "7680002466"}]
            for by_name in spellings:
                found = buyer.invoices.query("Subject2", date_from=_start(), **by_name)
                assert [r.invoice_number for r in found] == ["O/1"]
            only = buyer.invoices.export(
                tmp_path, "Subject2", date_from=_start(), invoice_number="F/1", seller_nip=None
            )
            assert [m["invoiceNumber"] for m in only.metadata] == ["F/1"] and len(only.files) == 1

    def test_an_unknown_or_repeated_filter_is_refused_before_sending(self, ksef: KSeF, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="sellernip: not a metadata filter; the filters are amount, "):
            ksef.invoices.query(date_from=_start(), sellernip="5265877635")
        with pytest.raises(ValueError, match="given twice"):
            ksef.invoices.export(tmp_path, date_from=_start(), seller_nip="5265877635", sellerNip="5265877635")
        assert ksef.send_state.requests_sent == 0

    def test_the_filter_names_are_the_specs(self, pinned_spec: dict[str, Any]) -> None:
        schemas = pinned_spec["components"]["schemas"]
        properties = set(schemas["InvoiceQueryFilters"]["properties"]) - {"subjectType", "dateRange"}
        assert set(FILTER_NAMES.values()) == properties
        assert all(FILTER_NAMES[api] == api for api in properties)


class TestMetadataWindows:
    def test_truncated_windows_yield_every_record_once(self, ksef: KSeF, backend: KSeFBackend) -> None:
        sent = _send(ksef, 230, "T")
        backend.metadata_limit = 50  # KSeF's 10,000, scaled down
        pager = ksef.invoices.query(date_from=_start(), page_size=20)
        numbers = [r.invoice_number for r in pager]
        assert len(numbers) == len(set(numbers)) == 230
        assert set(numbers) == set(sent)

    def test_cursor_resumes_where_the_walk_stopped(self, ksef: KSeF, backend: KSeFBackend) -> None:
        _send(ksef, 60, "R")
        backend.metadata_limit = 25
        pager = ksef.invoices.query(date_from=_start(), page_size=10)
        pages = pager.pages()
        first = [r.ksef_number for r in next(pages).items + next(pages).items]
        saved = pager.cursor
        assert isinstance(saved, MetadataCursor)
        rest = [r.ksef_number for r in ksef.invoices.query(date_from=_start(), page_size=10, cursor=saved)]
        assert len(first + rest) == len(set(first + rest)) == 60

    def test_newest_first_walks_narrow_the_upper_bound(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # The spec: a truncated window is narrowed "from/to - depending on the sort order"; moving
        # ``from`` on a Desc walk yielded records twice and missed others.
        sent = _send(ksef, 60, "D")
        backend.metadata_limit = 25
        records = list(ksef.invoices.query(date_from=_start(), page_size=10, sort_order="Desc"))
        numbers = [r.invoice_number for r in records]
        assert len(numbers) == len(set(numbers)) == 60 and set(numbers) == set(sent)
        dates = [r.permanent_storage_date for r in records]
        assert dates == sorted(dates, reverse=True)

    def test_issue_date_walks_restart_from_a_day_with_its_offset(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # An issue date is a day; the restart sent it back as a naive date-time, which KSeF refuses.
        today = dt.date.today()
        days = (1, 2, 3)
        invoices = [
            sample_invoice(f"I/{d}/{i}", buyer_nip=BUYER, issue_date=today - dt.timedelta(days=d))
            for d in days
            for i in range(8)
        ]
        ksef.send_batch(invoices, wait=True)
        backend.metadata_limit = 10
        for order in ("Asc", "Desc"):
            found = ksef.invoices.query(
                date_from=today - dt.timedelta(days=5), date_type="Issue", page_size=10, sort_order=order
            )
            assert len({r.ksef_number for r in found}) == 24

    def test_a_truncated_page_narrows_the_window_even_when_more_pages_are_announced(self) -> None:
        # The spec: "hasMore = true i isTruncated = true" -> narrow dateRange, pageOffset 0 (the walk
        # asked for the next offset, past KSeF's 10,000-record cap).
        page = QueryInvoicesMetadataResponse.from_dict(
            {"hasMore": True, "isTruncated": True, "invoices": [_record(1, "10:00:00"), _record(2, "11:00:00")]}
        )
        items, after = next_metadata_page(MetadataCursor("2026-01-01T00:00:00+00:00", page_offset=39), page, "Issue")
        assert len(items) == 2 and after is not None and after.page_offset == 0
        assert after.date_from == "2026-01-01T00:00:00+01:00" and after.skip == (_number(1), _number(2))
        _, after = next_metadata_page(MetadataCursor("2026-01-01T00:00:00+00:00"), page, "PermanentStorage")
        assert after is not None and (after.date_from, after.skip) == ("2026-01-01T11:00:00+00:00", (_number(2),))

    def test_newest_first_skips_the_date_one_microsecond_above_the_bound(self) -> None:
        # KSeF's dates may carry digits past the microsecond: newest first, the window is narrowed
        # to one microsecond past the last date, which may reach the records yielded just before.
        page = QueryInvoicesMetadataResponse.from_dict(
            {
                "hasMore": True,
                "isTruncated": True,
                "invoices": [_record(1, "11:00:00.000002"), _record(2, "11:00:00.000001"), _record(3, "10:00:00")],
            }
        )
        _, after = next_metadata_page(MetadataCursor("2026-01-01T00:00:00+00:00"), page, "PermanentStorage", True)
        assert after is not None and after.date_to == "2026-01-01T10:00:00.000001+00:00"
        assert after.skip == (_number(3),)
        _, after = next_metadata_page(
            MetadataCursor("2026-01-01T00:00:00+00:00"), replace_last(page), "Invoicing", True
        )
        assert after is not None and after.date_to == "2026-01-01T11:00:00.000002+00:00"
        assert set(after.skip) == {_number(1), _number(2)}

    def test_a_window_filled_by_one_instant_is_reported_not_looped(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # The walk restarts a truncated window at its last record's instant: when that instant alone
        # fills the window (KSeF: 10,000 records), no query can get further, and the pager says so
        # instead of asking the same window again forever: KSeF's limit, not a broken answer.
        _send(ksef, 3, "W")
        backend.metadata_limit = 1
        with pytest.raises(QueryLimitError, match="cannot get past it") as raised:
            list(ksef.invoices.query(date_from=_start(), page_size=10))
        assert not isinstance(raised.value, ResponseFormatError)


class TestExportAndSync:
    def test_export_of_500_invoices_is_identical_to_what_was_sent(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        sent = _send(ksef, 500, "E")
        backend.export_part_size = 40_000  # several encrypted parts
        result = ksef.invoices.export(tmp_path, date_from=_start())
        assert len(result.files) == 500 and not result.is_truncated
        by_number = {m["ksefNumber"]: m["invoiceNumber"] for m in result.metadata}
        for path in result.files:
            assert path.read_bytes() == sent[by_number[path.stem]]

    @pytest.mark.parametrize(
        ("date_type", "name", "value", "expected"),
        [
            ("Invoicing", "lastInvoicingDate", "2026-01-01T10:00:00+00:00", dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)),
            ("Issue", "lastIssueDate", "2026-01-01", dt.date(2026, 1, 1)),
        ],
    )
    def test_a_truncated_export_by_another_date_type_says_where_to_go_on(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        date_type: str, name: str, value: str, expected: dt.date,
    ) -> None:  # fmt: skip
        # InvoicePackage (spec 2.9.0): lastInvoicingDate / lastIssueDate, "Data przyjęcia /
        # wystawienia ostatniej faktury ujętej w paczce [...] wyłącznie wtedy, gdy paczka została
        # ucięta i eksport był filtrowany po typie daty `Invoicing` / `Issue`". Was: dropped, so
        # a truncated export by those dates did not say where to go on from.
        _send(ksef, 5, "LD")
        backend.metadata_limit = 3

        def add_the_date(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("package"):
                body["package"][name] = value
            return body

        tamper = Tamper(json_swap("GET", "/invoices/exports/", add_the_date))
        with KSeF(base_url=ksef_server.base_url, access_token=ksef.access_token, transport=tamper) as client:
            since = dt.date.today() - dt.timedelta(days=2)
            result = client.invoices.export(tmp_path / "out", date_from=since, date_type=date_type)
        assert result.is_truncated and len(result.files) == 3
        attribute = "last_invoicing_date" if date_type == "Invoicing" else "last_issue_date"
        assert getattr(result, attribute) == expected

    @pytest.mark.parametrize(("date_type", "stuck"), [("Issue", True), ("PermanentStorage", False)])
    def test_a_truncated_export_whose_invoices_all_have_its_last_date_says_it_goes_no_further(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, date_type: str, stuck: bool
    ) -> None:
        # Five invoices issued today, packages of three: going on from the last Issue date (today)
        # would fetch the same three again; their PermanentStorage dates differ, so that goes on.
        _send(ksef, 5, "GN")
        backend.metadata_limit = 3
        since = dt.date.today() - dt.timedelta(days=2)
        result = ksef.invoices.export(tmp_path / "out", date_from=since, date_type=date_type)
        assert result.is_truncated and len(result.files) == 3
        assert result.goes_no_further is stuck

    def test_a_part_broken_off_mid_body_is_downloaded_again(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # Parts stream to disk, decrypted and hashed as they arrive; when the connection breaks in
        # the middle of a body, the part starts again from its first byte (what was written of it
        # is dropped), and the export comes out whole.
        sent = _send(ksef, 200, "M")
        backend.export_part_size = 30_000
        backend.faults.add(DROP, operation="storage.download", times=2)
        result = ksef.invoices.export(tmp_path / "out", date_from=_start())
        assert backend.faults.injected == 2 and len(result.files) == 200
        by_number = {m["ksefNumber"]: m["invoiceNumber"] for m in result.metadata}
        assert all(path.read_bytes() == sent[by_number[path.stem]] for path in result.files)

    def test_an_export_that_cannot_be_downloaded_leaves_nothing(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        _send(ksef, 20, "N")
        attempts = 1 + ksef.send_state.policy.max_retries  # every attempt the retry policy allows the part
        backend.faults.add(DROP, operation="storage.download", times=attempts)
        before = set(Path(tempfile.gettempdir()).glob("*.zip"))
        with pytest.raises(APIConnectionError):
            ksef.invoices.export(tmp_path / "out", date_from=_start())
        assert set(Path(tempfile.gettempdir()).glob("*.zip")) == before
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    def test_two_sync_runs_take_each_invoice_once(self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path) -> None:
        state, target = tmp_path / "state.json", tmp_path / "inbox"
        _send(ksef, 40, "S1")
        first = ksef.invoices.sync("Subject1", state, target, start=_start())
        assert len(first.ksef_numbers) == 40
        _send(ksef, 15, "S2")
        second = ksef.invoices.sync("Subject1", state, target)
        assert len(second.ksef_numbers) == 15
        assert not set(first.ksef_numbers) & set(second.ksef_numbers)
        assert ksef.invoices.sync("Subject1", state, target).ksef_numbers == []
        assert len(list(target.glob("*.xml"))) == 55

    def test_sync_through_truncated_exports(self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path) -> None:
        _send(ksef, 70, "W")
        backend.metadata_limit = 30
        result = ksef.invoices.sync("Subject1", tmp_path / "s.json", tmp_path / "in", start=_start())
        assert len(result.ksef_numbers) == len(set(result.ksef_numbers)) == 70

    def test_first_sync_needs_a_start(self, ksef: KSeF, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="start="):
            ksef.invoices.sync("Subject1", tmp_path / "none.json", tmp_path)


class TestIncompleteOrLargePackages:
    @pytest.mark.parametrize("damage", ["missing", "short"])
    def test_a_package_without_its_whole_metadata_is_refused_and_sync_stays_before_it(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, damage: str
    ) -> None:
        # The invoices of a package are checked against its _metadata.json; once, a package
        # without it (or with a record missing) was taken as empty and the sync state jumped past
        # its invoices: they were never fetched.
        _send(ksef, 5, "P")
        numbers = sorted(r.ksef_number for r in ksef.invoices.query(date_from=_start()))
        backend.faults.export_metadata = damage
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with pytest.raises(ExportError, match=r"_metadata\.json") as caught:
            ksef.invoices.sync("Subject1", state, inbox, start=_start())
        if damage == "short":  # the record left out is named (the last one packed)
            assert "lists 4 invoice(s), the package's invoiceCount is 5" in str(caught.value)
            assert sum(number in str(caught.value) for number in numbers) == 1
        assert not state.exists() and not list(inbox.glob("*.xml"))
        with pytest.raises(ExportError, match=r"_metadata\.json"):
            ksef.invoices.export(tmp_path / "out", date_from=_start())
        assert not list((tmp_path / "out").iterdir())  # the files written before the check are gone
        backend.faults.clear()
        result = ksef.invoices.sync("Subject1", state, inbox, start=_start())
        assert sorted(result.ksef_numbers) == numbers
        assert sorted(p.name for p in inbox.glob("*.xml")) == [f"{n}.xml" for n in numbers]

    def test_sync_moves_no_invoice_whose_file_is_missing(self, tmp_path: Path) -> None:
        listed = [{"ksefNumber": make_ksef_number(NIP, "20261201", f"0123456789A{i}")} for i in range(2)]
        work = tmp_path / "work"
        work.mkdir()
        file_in(work, listed[0]["ksefNumber"]).write_bytes(b"<Faktura/>")
        result = ExportResult("REF", work, [], listed, False, None, None)
        (tmp_path / "inbox").mkdir()
        with pytest.raises(ExportError, match=listed[1]["ksefNumber"]):
            _keep_new(result, SyncState("2026-01-01T00:00:00+00:00"), tmp_path / "inbox")
        assert file_in(work, listed[0]["ksefNumber"]).exists()  # nothing moved

    def test_a_failed_window_hands_over_what_the_earlier_ones_delivered(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        first, big = _windows_with_a_large_invoice(ksef, backend)
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with _small_cap_client(ksef, ksef_server) as small, pytest.raises(ExportError) as caught:
            small.invoices.sync("Subject1", state, inbox, start=_start())
        partial = caught.value.partial
        assert partial is not None and len(partial.ksef_numbers) == 30  # window 1, delivered and recorded
        assert sorted(p.name for p in partial.files) == sorted(p.name for p in inbox.glob("*.xml"))
        assert set(partial.ksef_numbers) < first
        rest = ksef.invoices.sync("Subject1", state, inbox)  # the default cap takes it
        assert big in rest.ksef_numbers and rest.ksef_numbers[:30] == partial.ksef_numbers  # reported again
        assert len(set(rest.ksef_numbers)) == len(rest.ksef_numbers) == len(list(inbox.glob("*.xml"))) == 70

    def test_a_window_whose_download_keeps_breaking_hands_over_the_earlier_ones(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # The reviewer's case: the second export's parts cannot be downloaded (APIConnectionError,
        # thrown into the flow); the invoices of the first window were lost to the caller.
        _send(ksef, 70, "D")
        backend.metadata_limit = 30
        exports = []

        def break_second_download(request: httpx.Request, response: httpx.Response) -> None:
            if request.method == "POST" and request.url.path.endswith("/invoices/exports"):
                exports.append(request)
                if len(exports) == 2:
                    backend.faults.add(DROP, operation="storage.download", times=50)

        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        tamper, token = Tamper(break_second_download), ksef.access_token
        client = KSeF(base_url=ksef_server.base_url, access_token=token, transport=tamper, sleep=lambda s: None)
        with client, pytest.raises(APIConnectionError) as caught:
            client.invoices.sync("Subject1", state, inbox, start=_start())
        partial = caught.value.partial
        assert partial is not None and len(partial.ksef_numbers) == 30
        backend.faults.clear()
        rest = ksef.invoices.sync("Subject1", state, inbox).ksef_numbers
        assert rest[:30] == partial.ksef_numbers and len(set(rest)) == len(rest) == 70  # those 30 reported again

    def test_an_invoice_above_3_mb_is_received_with_the_default_cap(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # KSeF's 3 MB is a context's default, raised on request (limity/limity.md): a 3.5 MB
        # invoice once failed its export window on every run, and sync never got past it.
        _send(ksef, 3, "L")
        big = backend.invoices.state.accepted[1]  # stands in for one of a context with a raised limit
        big.xml = big.xml.replace(b"</Faktura>", b"<!--" + b"x" * 3_500_000 + b"--></Faktura>")
        big.invoice_hash = sha256_b64(big.xml)  # its record's invoiceHash, as KSeF's would be
        result = ksef.invoices.sync("Subject1", tmp_path / "state.json", tmp_path / "inbox", start=_start())
        assert len(result.ksef_numbers) == 3
        assert (tmp_path / "inbox" / f"{big.ksef_number}.xml").read_bytes() == big.xml
        assert ksef.invoices.get(str(big.ksef_number)) == big.xml

    def test_an_invoice_over_the_callers_cap_names_its_number_and_the_setting(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        _send(ksef, 2, "C")
        big_xml = sample_invoice("C/big", buyer_nip=BUYER, lines=40)
        ksef.send_batch([big_xml], wait=True)
        big = next(i.ksef_number for i in backend.invoices.state.accepted if i.xml == big_xml)
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with _small_cap_client(ksef, ksef_server) as small:
            with pytest.raises(ExportError, match=rf"invoice {big} is larger .*body_limits=BodyLimits\(invoice="):
                small.invoices.sync("Subject1", state, inbox, start=_start())
            with pytest.raises(ResponseTooLargeError, match=r"body_limits=BodyLimits\(invoice="):
                small.invoices.get(str(big))
        assert not state.exists() and not list(inbox.iterdir())
        assert len(ksef.invoices.sync("Subject1", state, inbox, start=_start()).ksef_numbers) == 3

    def test_a_refused_export_of_the_same_dates_keeps_the_invoices_an_earlier_one_saved(
        self, ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # The reviewer's finding 1: `ksef invoices download` says "truncated: run again from the
        # last date"; a second export into the same folder that was refused (here: a new invoice
        # above the client's cap) deleted the files of the first. docs/security.md: a refused
        # export keeps nothing of itself, and the folder stays as it was.
        _send(ksef, 3, "K")
        out = tmp_path / "out"
        with _small_cap_client(ksef, ksef_server) as small:
            first = {p.name: p.read_bytes() for p in small.invoices.export(out, date_from=_start()).files}
            ksef.send_batch([sample_invoice("K/big", buyer_nip=BUYER, lines=40)], wait=True)
            with pytest.raises(ExportError, match="is larger than the client's invoice cap"):
                small.invoices.export(out, date_from=_start())
        assert len(first) == 3 and {p.name: p.read_bytes() for p in out.iterdir()} == first


SMALL_CAP = 5_000  # above a one-line sample invoice (~1.4 kB), below one of 40 lines (~8.4 kB)


def _small_cap_client(ksef: KSeF, server: ThreadedServer) -> KSeF:
    return KSeF(
        base_url=server.base_url, access_token=ksef.access_token, sleep=lambda s: None,
        body_limits=BodyLimits(invoice=SMALL_CAP),
    )  # fmt: skip


def _windows_with_a_large_invoice(ksef: KSeF, backend: KSeFBackend) -> tuple[set[str], str]:
    """70 invoices in windows of 30 (KSeF's 10,000 scaled down); the 36th, in the second window, is
    larger than ``SMALL_CAP``. Returns the numbers of the first 35 and the large one's."""
    _send(ksef, 35, "W1")
    ksef.send_batch([sample_invoice("W2/big", buyer_nip=BUYER, lines=40)], wait=True)
    _send(ksef, 34, "W2")
    backend.metadata_limit = 30
    accepted = backend.invoices.state.accepted
    return {str(i.ksef_number) for i in accepted[:35]}, str(accepted[35].ksef_number)


@pytest.mark.anyio
async def test_async_sync_hands_over_what_the_earlier_windows_delivered(
    ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime, tmp_path: Path
) -> None:
    first, big = _windows_with_a_large_invoice(ksef, backend)
    state, inbox = tmp_path / "state.json", tmp_path / "inbox"
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=ksef.access_token, sleep=fake_time.asleep,
        body_limits=BodyLimits(invoice=SMALL_CAP),
    ) as small:  # fmt: skip
        with pytest.raises(ExportError, match=big) as caught:
            await small.invoices.sync("Subject1", state, inbox, start=_start())
    partial = caught.value.partial
    assert partial is not None and len(partial.ksef_numbers) == 30 and set(partial.ksef_numbers) < first
    rest = ksef.invoices.sync("Subject1", state, inbox)
    assert rest.ksef_numbers[:30] == partial.ksef_numbers and len(set(rest.ksef_numbers)) == 70


@pytest.mark.anyio
async def test_async_query_and_export(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime, tmp_path: Path
) -> None:
    token = backend.mint_access_token(NIP)
    with KSeF(base_url=ksef_server.base_url, access_token=token, sleep=fake_time.sleep, clock=fake_time.clock) as sync:
        sent = _send(sync, 12, "A")
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        records = [r async for r in client.invoices.query(date_from=_start(), page_size=10)]
        assert {r.invoice_number for r in records} == set(sent)
        assert await client.invoices.get(records[0].ksef_number) == sent[records[0].invoice_number]
        result = await client.invoices.export(tmp_path, date_from=_start())
        assert len(result.files) == 12


def test_generic_offset_pagination_over_a_generated_operation(ksef: KSeF, backend: KSeFBackend) -> None:
    sent = _send(ksef, 35, "O")
    filters = InvoiceQueryFilters.from_dict(build_filters("Subject1", _start()))
    pager = ksef.paginate(query_invoice_metadata, "invoices", page_size=10, body=filters)
    pages = list(pager.pages())
    assert len(pages) == 4 and pager.cursor is None
    assert sorted(r.invoice_number for p in pages for r in p.items) == sorted(sent)


def test_empty_export(ksef: KSeF, backend: KSeFBackend, tmp_path: Path) -> None:
    result = ksef.invoices.export(tmp_path, date_from=_start())
    assert result.files == [] and result.metadata == [] and not result.is_truncated


@pytest.mark.anyio
async def test_async_unpacking_and_large_upo_parses_leave_the_event_loop_free(
    ksef: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: unpack_export (plus _keep_new and the temporary folder's removal in sync) and parse_upo
    # ran on the event loop's thread: seconds without any other task running for an export of
    # 10,000 invoices. Now they are Blocking steps, which AsyncKSeF runs in a worker thread.
    import ksef_client.invoice_sync
    import ksef_client.resources.invoices
    import ksef_client.resources.upo

    loop_thread = threading.get_ident()
    ran_in: dict[str, set[int]] = {}

    def recorded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            ran_in.setdefault(name, set()).add(threading.get_ident())
            return function(*args, **kwargs)

        return call

    for module, name in (
        (ksef_client.resources.invoices, "unpack_export"),
        (ksef_client.invoice_sync, "_keep_new"),
        (ksef_client.resources.upo, "parse_upo"),
    ):
        monkeypatch.setattr(module, name, recorded(name, getattr(module, name)))
    # this small session's UPO counts as large (raising=False: the name is new)
    monkeypatch.setattr(ksef_client.resources.upo, "LARGE_UPO", 1, raising=False)
    result = ksef.send_batch([sample_invoice(f"L/{i}", buyer_nip=BUYER) for i in range(5)], wait=True)
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(base_url=ksef_server.base_url, access_token=token) as client:
        exported = await client.invoices.export(tmp_path / "export", date_from=_start(), interval=0)
        synced = await client.invoices.sync("Subject1", tmp_path / "state.json", tmp_path / "inbox", start=_start())
        upo = await client.upo.get_session_upo(result.reference_number)
    assert len(exported.files) == len(synced.files) == len(upo.documents) == 5
    assert set(ran_in) == {"unpack_export", "_keep_new", "parse_upo"}
    assert loop_thread not in set().union(*ran_in.values())
    assert not [p for p in (tmp_path / "inbox").iterdir() if p.is_dir()]  # the window's folder is gone
