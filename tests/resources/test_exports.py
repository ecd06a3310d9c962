"""Exports (and ``sync``, which unpacks the same packages) against the emulator: what a review of
the export path found (its findings 1, 2, 3, 4, 5, 7 and 11, one section each).

Anchors: the spec (API 2.9.0) ``InvoicePackage``, ``InvoicePackagePart``, ``InvoiceMetadata``,
and KSeF's own answer to an export that matches nothing (CIRFMF/ksef-api#466)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import io
import json
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import ksef_client.mock.state.invoices as mock_invoices
from ksef_client import AsyncKSeF, BodyLimits, KSeF
from ksef_client.errors import ExportError, PermissionDeniedError
from ksef_client.export import ExportResult
from ksef_client.identifiers import make_ksef_number
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime
from tests.hostile import Tamper, json_swap

BUYER = "1111111111"
EXPORTS = "/invoices/exports"


def _start() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def _send(ksef: KSeF, backend: KSeFBackend, count: int, prefix: str) -> dict[str, bytes]:
    """Send ``count`` invoices in a batch: their XML by KSeF number."""
    before = len(backend.invoices.state.accepted)
    ksef.send_batch([sample_invoice(f"{prefix}/{i}", buyer_nip=BUYER) for i in range(count)], wait=True)
    return {str(i.ksef_number): i.xml for i in backend.invoices.state.accepted[before:]}


def _client(ksef: KSeF, server: ThreadedServer, tamper: Tamper, token: str | None = None) -> KSeF:
    token = token or ksef.access_token
    return KSeF(base_url=server.base_url, access_token=token, transport=tamper, sleep=lambda s: None)


def _lasting_token(backend: KSeFBackend) -> str:
    """An access token that outlives the hours a test moves the emulator's clock on."""
    return backend.mint_access_token(NIP, ttl=dt.timedelta(days=1))


def _is_status(request: httpx.Request) -> bool:
    return request.method == "GET" and f"{EXPORTS}/" in request.url.path


def _is_storage(request: httpx.Request) -> bool:
    return not request.url.path.startswith("/v2/")


def _packages_seen(packages: list[dict[str, Any]]) -> Tamper:
    """Records the ``package`` of every export status answer (unchanged)."""

    def record(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if not _is_status(request) or response.status_code != 200:
            return None
        body = json.loads(response.read())
        if body.get("package"):
            packages.append(body["package"])
        return httpx.Response(200, json=body, request=request)

    return Tamper(record)


# --- 1. an export that matches no invoice --------------------------------------------------------
# CIRFMF/ksef-api#466 (KSeF's team): "Przy eksporcie, jeżeli nie ma żadnych faktur to w `package`
# będzie: "invoiceCount": 0, "size": 0, "parts": []". The spec allows it: InvoicePackage.size has
# minimum 0, each InvoicePackagePart.partSize minimum 1, so a package of size 0 has no part. Was:
# the SDK unpacked an empty file (BadZipFile; TarGz "no _metadata.json"), and sync() failed on every
# run that found nothing new.


class TestAnExportThatMatchesNothing:
    @pytest.mark.parametrize(
        ("compression", "only_metadata"),
        [("Zip", False), ("TarGz", False), ("Zip", True)],
        ids=["zip", "targz", "meta"],
    )
    def test_is_an_empty_result_and_downloads_nothing(
        self, ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path, compression: str, only_metadata: bool
    ) -> None:
        packages: list[dict[str, Any]] = []
        tamper = _packages_seen(packages)
        with _client(ksef, ksef_server, tamper) as client:
            result = client.invoices.export(
                tmp_path / "out", date_from=_start(), compression=compression, only_metadata=only_metadata
            )
        assert [(p["invoiceCount"], p["size"], p["parts"]) for p in packages] == [(0, 0, [])]  # KSeF's shape
        assert result.files == [] and result.metadata == [] and not result.is_truncated
        assert result.permanent_storage_hwm_date is not None
        assert not [path for _, path in tamper.seen if not path.startswith("/v2/")]  # nothing downloaded
        assert not list((tmp_path / "out").glob("*"))

    @pytest.mark.anyio
    async def test_is_an_empty_result_for_the_async_client_too(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime, tmp_path: Path
    ) -> None:
        async with AsyncKSeF(
            base_url=ksef_server.base_url, access_token=ksef.access_token, sleep=fake_time.asleep
        ) as client:
            result = await client.invoices.export(tmp_path / "out", date_from=_start())
            assert result.files == [] and result.metadata == []
            synced = await client.invoices.sync("Subject1", tmp_path / "state.json", tmp_path / "in", start=_start())
        assert synced.ksef_numbers == [] and synced.files == []
        assert not backend.storage.state.blobs  # no part was ever linked: KSeF's shape

    def test_a_sync_run_that_finds_nothing_moves_its_mark_to_the_hwm(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # The guide: "gdy IsTruncated = false, kolejne wywołanie należy rozpocząć od zwróconego
        # PermanentStorageHwmDate" - an empty window is a complete one like any other.
        state, inbox, start = tmp_path / "state.json", tmp_path / "inbox", _start()
        packages: list[dict[str, Any]] = []
        with _client(ksef, ksef_server, _packages_seen(packages)) as client:
            assert client.invoices.sync("Subject1", state, inbox, start=start).ksef_numbers == []
            mark = json.loads(state.read_text(encoding="utf-8"))["date_from"]
            assert [p["parts"] for p in packages] == [[]]
            assert dt.datetime.fromisoformat(mark) == dt.datetime.fromisoformat(packages[0]["permanentStorageHwmDate"])
            assert dt.datetime.fromisoformat(mark) > start
            sent = _send(ksef, backend, 2, "EM")
            assert set(client.invoices.sync("Subject1", state, inbox).ksef_numbers) == set(sent)
            assert client.invoices.sync("Subject1", state, inbox).ksef_numbers == []  # quiet again: no error

    def test_a_package_that_lists_invoices_but_has_no_part_is_refused(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        _send(ksef, backend, 2, "NP")

        def no_parts(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("package"):
                body["package"]["parts"] = []
            return body

        with (
            _client(ksef, ksef_server, Tamper(json_swap("GET", f"{EXPORTS}/", no_parts))) as client,
            pytest.raises(ExportError, match=r"lists 2 invoice.* but no part"),
        ):
            client.invoices.export(tmp_path / "out", date_from=_start())


# --- 2. each invoice file is checked against its record's invoiceHash -----------------------------
# InvoiceMetadata.invoiceHash (spec 2.9.0, required): "Skrót SHA256 faktury, zakodowany w formacie
# Base64". Was: never compared; a package whose <A>.xml held invoice B (a packing bug on the
# server: the parts' hashes are taken over what it packed, so they pass) was saved as it came.


def _swap_two_invoices(backend: KSeFBackend) -> tuple[str, str]:
    """The emulator packs invoice A's XML under B's number and B's under A's (their records, with
    their invoiceHash, stay right): the KSeF numbers of the two."""
    first, second = backend.invoices.state.accepted[:2]
    first.xml, second.xml = second.xml, first.xml
    return str(first.ksef_number), str(second.ksef_number)


class TestTheInvoiceHashOfEachFile:
    @pytest.mark.parametrize("compression", ["Zip", "TarGz"])
    def test_a_file_that_is_not_its_invoice_refuses_the_package_and_names_it(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, compression: str
    ) -> None:
        _send(ksef, backend, 4, "IH")
        out = tmp_path / "out"
        out.mkdir()
        (out / "mine.txt").write_text("kept")
        a, b = _swap_two_invoices(backend)
        with pytest.raises(ExportError, match="invoiceHash") as caught:
            ksef.invoices.export(out, date_from=_start(), compression=compression)
        assert a in str(caught.value) and b in str(caught.value) and "nothing was kept" in str(caught.value)
        assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # none of the package moved in

    def test_sync_moves_nothing_of_such_a_window_and_its_state_stays_before_it(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        sent = _send(ksef, backend, 4, "IS")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        a, b = _swap_two_invoices(backend)
        with pytest.raises(ExportError, match=f"invoiceHash.*{min(a, b)}") as caught:
            ksef.invoices.sync("Subject1", state, inbox, start=_start())
        assert caught.value.partial is not None and caught.value.partial.ksef_numbers == []
        assert not state.exists() and not list(inbox.glob("*.xml"))
        _swap_two_invoices(backend)  # packed right again: the next run takes the window
        result = ksef.invoices.sync("Subject1", state, inbox, start=_start())
        assert {n: (inbox / f"{n}.xml").read_bytes() for n in result.ksef_numbers} == sent


# --- 3. moving a checked package's files into the folder ----------------------------------------
# docs/downloading.md: "its files are moved in only once it is checked whole, so a refused package
# leaves the folder as it was". Was: a folder at the 4th invoice's name stopped the moves with a
# bare IsADirectoryError naming the temporary folder, three invoices moved in and the rest not,
# nothing saying which.


def _numbers_in_order(ksef: KSeF, backend: KSeFBackend, count: int, prefix: str) -> list[str]:
    """Send ``count`` invoices: their KSeF numbers in the order the emulator stored (and packs) them."""
    sent = _send(ksef, backend, count, prefix)
    return [str(i.ksef_number) for i in backend.invoices.state.accepted if str(i.ksef_number) in sent]


class TestMovingAPackageIn:
    @pytest.mark.parametrize("obstacle", ["folder", "symlink", "fifo"])
    def test_a_name_taken_by_what_a_file_cannot_replace_refuses_the_package_before_any_move(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, obstacle: str
    ) -> None:
        numbers = _numbers_in_order(ksef, backend, 5, "MV")
        out = tmp_path / "out"
        out.mkdir()
        taken = out / f"{numbers[3]}.xml"
        if obstacle == "folder":
            taken.mkdir()
            (taken / "keep.txt").write_text("mine")
        elif obstacle == "symlink":
            (out / "notes.txt").write_text("mine")
            taken.symlink_to(out / "notes.txt")
        elif hasattr(os, "mkfifo"):
            os.mkfifo(taken)
        else:
            pytest.skip("no named pipes here")
        before = sorted(p.name for p in out.rglob("*"))
        with pytest.raises(ExportError, match=rf"{numbers[3]}\.xml \(.*\); nothing was moved in") as caught:
            ksef.invoices.export(out, date_from=_start())
        assert ".ksef-export-" not in str(caught.value)  # no temporary path
        assert sorted(p.name for p in out.rglob("*")) == before  # the folder as it was

    def test_sync_checks_the_names_too_and_its_state_stays_before_the_window(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        numbers = _numbers_in_order(ksef, backend, 3, "MS")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        inbox.mkdir()
        (inbox / f"{numbers[1]}.xml").mkdir()
        with pytest.raises(ExportError, match=rf"{numbers[1]}\.xml \(a folder\); nothing was moved in"):
            ksef.invoices.sync("Subject1", state, inbox, start=_start())
        assert not state.exists() and not list(inbox.glob("*.xml/*")) and len(list(inbox.iterdir())) == 1
        (inbox / f"{numbers[1]}.xml").rmdir()
        assert sorted(ksef.invoices.sync("Subject1", state, inbox, start=_start()).ksef_numbers) == sorted(numbers)

    def test_a_move_that_still_fails_says_what_was_moved_in_and_what_not(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # After the checks: a folder put in the way meanwhile (another program), made as the first
        # file is moved in. The rename that meets it fails as the OS makes it fail.
        numbers = _numbers_in_order(ksef, backend, 5, "MR")
        out = tmp_path / "out"
        real_replace = os.replace

        def meanwhile(source: Any, target: Any) -> None:
            late = out / f"{numbers[3]}.xml"
            if Path(target).parent == out and not late.exists():
                late.mkdir()
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", meanwhile)
        with pytest.raises(ExportError, match=rf"{numbers[3]}\.xml could not be moved into") as caught:
            ksef.invoices.export(out, date_from=_start())
        message = str(caught.value)
        assert "3 of 5 invoice file(s) were moved in before it" in message and ".ksef-export-" not in message
        assert all(n in message for n in numbers)  # each named: moved in, or not
        partial = caught.value.partial
        assert isinstance(partial, ExportResult)
        in_folder = sorted(p.name for p in out.glob("*.xml") if p.is_file())  # not the folder in the way
        assert sorted(p.name for p in partial.files) == sorted(f"{n}.xml" for n in numbers[:3]) == in_folder
        assert sorted(partial.ksef_numbers) == sorted(numbers[:3])


# --- 4. a range over 100 days that fails in a later window -----------------------------------------
# Was: the earlier windows' files were in the folder, and the error said nothing of them (no
# result, no .partial); the error of the failing window said "nothing was kept" of its own package.


def _dated(backend: KSeFBackend, ksef: KSeF, days_ago: int, prefix: str) -> str:
    """One invoice stored ``days_ago`` days ago (the emulator's clock held there while it is sent)."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    real, backend.clock = backend.clock, lambda: when
    try:  # issued the day before (KSeF refuses an invoice issued after it is received)
        ksef.send_batch([sample_invoice(f"{prefix}/1", issue_date=(when - dt.timedelta(days=1)).date())], wait=True)
    finally:
        backend.clock = real
    return str(backend.invoices.state.accepted[-1].ksef_number)


def _two_windows(ksef: KSeF, backend: KSeFBackend) -> tuple[str, str, dt.datetime]:
    """An invoice in each window of a 190-day range (windows of KSeF's 100 days): the two KSeF
    numbers, and where the range starts."""
    return _dated(backend, ksef, 150, "W1"), _dated(backend, ksef, 30, "W2"), _start() - dt.timedelta(days=190)


def _damaging_export(nth: int) -> Tamper:
    """The emulator, every part of its ``nth`` export arriving with one byte flipped."""
    starts: list[httpx.Request] = []

    def damage(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.endswith(EXPORTS):
            starts.append(request)
        if len(starts) == nth and _is_storage(request):
            body = bytearray(response.read())
            body[0] ^= 1
            return httpx.Response(200, content=bytes(body), headers=response.headers, request=request)
        return None

    return Tamper(damage)


class TestARangeThatFailsInALaterWindow:
    def test_the_error_carries_what_the_earlier_windows_saved(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        first, second, since = _two_windows(ksef, backend)
        out = tmp_path / "out"
        with (
            _client(ksef, ksef_server, _damaging_export(2)) as client,
            pytest.raises(ExportError, match="arrived damaged") as caught,
        ):
            client.invoices.export(out, date_from=since)
        partial = caught.value.partial
        assert isinstance(partial, ExportResult) and partial.ksef_numbers == [first]
        assert partial.files == [out / f"{first}.xml"] == sorted(out.glob("*.xml"))
        assert len(partial.reference_numbers) == 1  # the window that was saved
        assert second not in str(caught.value)

    def test_an_interrupt_in_a_later_window_carries_it_too(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        first, _, since = _two_windows(ksef, backend)
        starts: list[httpx.Request] = []

        def interrupt_the_second(request: httpx.Request, response: httpx.Response) -> None:
            if request.method == "POST" and request.url.path.endswith(EXPORTS):
                starts.append(request)
                if len(starts) == 2:
                    raise KeyboardInterrupt

        with (
            _client(ksef, ksef_server, Tamper(interrupt_the_second)) as client,
            pytest.raises(KeyboardInterrupt) as caught,
        ):
            client.invoices.export(tmp_path / "out", date_from=since)
        partial = getattr(caught.value, "partial", None)
        assert isinstance(partial, ExportResult) and partial.ksef_numbers == [first]

    def test_a_failed_first_window_saved_nothing_and_carries_nothing(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        _, _, since = _two_windows(ksef, backend)
        with (
            _client(ksef, ksef_server, _damaging_export(1)) as client,
            pytest.raises(ExportError, match="arrived damaged") as caught,
        ):
            client.invoices.export(tmp_path / "out", date_from=since)
        assert caught.value.partial is None and not list((tmp_path / "out").glob("*"))

    @pytest.mark.anyio
    async def test_an_async_call_cancelled_in_a_later_window_carries_it(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime, tmp_path: Path
    ) -> None:
        first, _, since = _two_windows(ksef, backend)
        cancel = _CancelAtTheSecondExport(ksef_server)
        handed: list[object] = []
        async with AsyncKSeF(
            base_url=ksef_server.base_url, access_token=ksef.access_token, transport=cancel, sleep=fake_time.asleep
        ) as client:
            with anyio.CancelScope() as scope:
                cancel.scope = scope
                try:
                    await client.invoices.export(tmp_path / "out", date_from=since)
                except anyio.get_cancelled_exc_class() as error:
                    handed.append(getattr(error, "partial", None))
                    raise
        assert scope.cancelled_caught
        (partial,) = handed
        assert isinstance(partial, ExportResult) and partial.ksef_numbers == [first]

    @pytest.mark.anyio
    async def test_an_async_call_cancelled_while_its_package_is_moved_in_carries_it(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # The review's repro 14: the cancellation waits for the worker thread, which moves every
        # file in; then the call ends cancelled, and the caller had no word of those files.
        sent = _send(ksef, backend, 4, "CU")
        moving, cancelled = threading.Event(), threading.Event()
        real_replace = os.replace

        def held(source: Any, target: Any) -> None:  # the first move waits until the call is cancelled
            if not moving.is_set():
                moving.set()
                cancelled.wait(10)
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", held)
        handed: list[object] = []
        out = tmp_path / "out"
        async with AsyncKSeF(
            base_url=ksef_server.base_url, access_token=ksef.access_token, sleep=fake_time.asleep
        ) as client:
            with anyio.CancelScope() as scope:

                async def cancel_while_moving() -> None:
                    while not moving.is_set():
                        await anyio.sleep(0.001)
                    scope.cancel()
                    cancelled.set()

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(cancel_while_moving)
                    try:
                        await client.invoices.export(out, date_from=_start())
                    except anyio.get_cancelled_exc_class() as error:
                        handed.append(getattr(error, "partial", None))
                        raise
        assert scope.cancelled_caught
        (partial,) = handed
        assert isinstance(partial, ExportResult) and sorted(partial.ksef_numbers) == sorted(sent)
        assert sorted(partial.files) == sorted(out.glob("*.xml"))


class _CancelAtTheSecondExport(httpx.AsyncBaseTransport):
    """Real HTTP to the emulator; the second export's start cancels ``scope`` and never answers."""

    def __init__(self, server: ThreadedServer) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.starts = 0
        self.scope: anyio.CancelScope | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(EXPORTS):
            self.starts += 1
            if self.starts == 2 and self.scope is not None:
                self.scope.cancel()
                await anyio.sleep_forever()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- 5. expired part links -------------------------------------------------------------------------
# The spec, InvoicePackagePart.url: "Link jest generowany dynamicznie w momencie odpytania o status
# operacji eksportu"; expirationDate: "Po upływie tego momentu link przestaje być aktywny". Was: the
# status was read once and every part fetched from the links of that read, however long the earlier
# parts took: a part whose link had expired failed the whole export (PermissionDeniedError, as if
# KSeF's permissions were missing), and a new export (of KSeF's 20 an hour) was needed. The emulator
# now hands out fresh links on every status read, expiring on its own clock.


class _Clock:
    """The emulator's clock, off real time by ``offset`` (changed while a test runs)."""

    def __init__(self, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = dt.timedelta(0)
        self.real = backend.clock
        monkeypatch.setattr(backend, "clock", lambda: self.real() + self.offset)


class TestPartLinksThatExpire:
    def test_a_link_the_storage_refuses_as_expired_is_fetched_afresh(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        sent = _send(ksef, backend, 6, "XL")
        backend.export_part_size = 2_000  # several parts
        clock = _Clock(backend, monkeypatch)
        packages: list[dict[str, Any]] = []
        record = _packages_seen(packages).swap

        def two_hours_pass_after_the_first_part(request: httpx.Request, response: httpx.Response) -> Any:
            if _is_storage(request) and response.status_code == 200:
                clock.offset = dt.timedelta(hours=2)  # the other parts' links (1 hour) expired meanwhile
            return record(request, response)

        tamper = Tamper(two_hours_pass_after_the_first_part)
        with _client(ksef, ksef_server, tamper, _lasting_token(backend)) as client:
            result = client.invoices.export(tmp_path / "out", date_from=_start())
        assert {p.stem: p.read_bytes() for p in result.files} == sent
        assert len(packages[0]["parts"]) > 2 and len(packages) == 2  # one fresh read: every part's link
        assert packages[0]["parts"][1]["url"] != packages[1]["parts"][1]["url"]
        refused = [r for r in tamper.seen if r[0] == "GET" and not r[1].startswith("/v2/")]
        assert len(refused) == len(packages[0]["parts"]) + 1  # the one refused, then each part once

    def test_links_that_expire_again_while_later_parts_download_are_fetched_afresh_again(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # Review: after one fresh status read every part's link counted as fresh until tried, so
        # a later part's link, expired meanwhile, was used unchecked and its 403 was an ExportError
        # ("a link the export's status gave just before"), one of KSeF's 20 exports an hour lost.
        # Here each part takes 90 minutes to download, past a link's hour.
        sent = _send(ksef, backend, 6, "XR")
        backend.export_part_size = 2_000
        clock = _Clock(backend, monkeypatch)
        packages: list[dict[str, Any]] = []
        record = _packages_seen(packages).swap

        def each_part_takes_90_minutes(request: httpx.Request, response: httpx.Response) -> Any:
            if _is_storage(request) and response.status_code == 200:
                clock.offset += dt.timedelta(minutes=90)
            return record(request, response)

        with _client(ksef, ksef_server, Tamper(each_part_takes_90_minutes), _lasting_token(backend)) as client:
            result = client.invoices.export(tmp_path / "out", date_from=_start())
        assert {p.stem: p.read_bytes() for p in result.files} == sent
        assert len(packages) == len(packages[0]["parts"])  # the first read, then one for each later part

    def test_a_link_whose_date_has_passed_is_fetched_afresh_before_it_is_used(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # The package is built, and its links made, while the emulator's clock is 61 minutes
        # behind: they expired a minute ago when the client reads them (and on the emulator's
        # clock too once it is back). Used as they came, the storage refuses them.
        sent = _send(ksef, backend, 3, "XD")
        clock = _Clock(backend, monkeypatch)
        packages: list[dict[str, Any]] = []
        record = _packages_seen(packages).swap

        def links_made_an_hour_ago(request: httpx.Request, response: httpx.Response) -> Any:
            if request.method == "POST" and request.url.path.endswith(EXPORTS):
                clock.offset = -dt.timedelta(minutes=61)
            replaced = record(request, response)
            if packages:
                clock.offset = dt.timedelta(0)
            return replaced

        tamper = Tamper(links_made_an_hour_ago)
        with _client(ksef, ksef_server, tamper) as client:
            result = client.invoices.export(tmp_path / "out", date_from=_start())
        assert {p.stem: p.read_bytes() for p in result.files} == sent
        expired = dt.datetime.fromisoformat(packages[0]["parts"][0]["expirationDate"])
        assert expired < dt.datetime.now(dt.UTC) and len(packages) == 2
        assert dt.datetime.fromisoformat(packages[1]["parts"][0]["expirationDate"]) > dt.datetime.now(dt.UTC)

    def test_links_that_look_expired_on_a_clock_ahead_of_ksefs_cost_one_fresh_read(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # This computer's clock 59m50s ahead of KSeF's: every link KSeF gives seems to expire in
        # 10 seconds. One fresh read, whose links are then used as they are: not one read per part.
        sent = _send(ksef, backend, 6, "XS")
        backend.export_part_size = 2_000
        _Clock(backend, monkeypatch).offset = -dt.timedelta(minutes=59, seconds=50)
        packages: list[dict[str, Any]] = []
        with _client(ksef, ksef_server, _packages_seen(packages)) as client:
            result = client.invoices.export(tmp_path / "out", date_from=_start())
        assert {p.stem: p.read_bytes() for p in result.files} == sent
        assert len(packages[0]["parts"]) > 2 and len(packages) == 2

    def test_a_fresh_link_refused_too_is_an_export_error_not_a_loop(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        _send(ksef, backend, 2, "XR")

        def refuse(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
            if _is_storage(request):
                return httpx.Response(403, text="<Error><Code>AuthenticationFailed</Code></Error>", request=request)
            return None

        tamper, refused = Tamper(refuse), r"refused part 1 \(HTTP 403\) with a link the export's status gave"
        with _client(ksef, ksef_server, tamper) as client, pytest.raises(ExportError, match=refused) as caught:
            client.invoices.export(tmp_path / "out", date_from=_start())
        assert isinstance(caught.value.__cause__, PermissionDeniedError)
        assert sum(1 for r in tamper.seen if not r[1].startswith("/v2/")) == 2  # the link, then one fresh one

    def test_a_part_that_changed_on_the_fresh_read_is_refused(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        _send(ksef, backend, 2, "XC")
        reads: list[int] = []

        def changed(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
            if _is_storage(request):  # the first link refused: a fresh one is asked for
                return httpx.Response(403, request=request)
            if not _is_status(request):
                return None
            body = json.loads(response.read())
            if body.get("package"):
                reads.append(1)
                if len(reads) == 2:
                    body["package"]["parts"][0]["partHash"] = "A" * 43 + "="
            return httpx.Response(200, json=body, request=request)

        with (
            _client(ksef, ksef_server, Tamper(changed)) as client,
            pytest.raises(ExportError, match="its parts are not the same on a second read"),
        ):
            client.invoices.export(tmp_path / "out", date_from=_start())

    @pytest.mark.anyio
    async def test_an_async_export_fetches_a_refused_link_afresh_too(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        sent = _send(ksef, backend, 4, "XA")
        backend.export_part_size = 2_000
        clock = _Clock(backend, monkeypatch)
        transport = _ExpiringAfterTheFirstPart(clock)
        async with AsyncKSeF(
            base_url=ksef_server.base_url, access_token=_lasting_token(backend), transport=transport,
            sleep=fake_time.asleep,
        ) as client:  # fmt: skip
            result = await client.invoices.export(tmp_path / "out", date_from=_start())
        assert {p.stem: p.read_bytes() for p in result.files} == sent
        assert transport.refused == 1


class _ExpiringAfterTheFirstPart(httpx.AsyncBaseTransport):
    """Real HTTP to the emulator; two hours pass on its clock once the first part is downloaded."""

    def __init__(self, clock: _Clock) -> None:
        self.inner, self.clock, self.refused = httpx.AsyncHTTPTransport(), clock, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if _is_storage(request):
            self.refused += response.status_code == 403
            if response.status_code == 200:
                self.clock.offset = dt.timedelta(hours=2)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- 7. a package of many small entries that each inflate to the per-file cap ----------------------
# Was: each entry was held to BodyLimits.invoice (16 MiB) and the package to 10,000 entries, but
# not their sum, and the metadata was checked only once everything was written: 24 entries of 16
# MiB of zeros (0.4 MB) wrote 380 MiB before the refusal; 10,000 of them (165 MB, under the 2 GiB
# package cap) would write 160 GiB. The count is now the package's own invoiceCount (known before
# anything is read), and the files together are held to BodyLimits.export_unpacked.

MIB = 1024 * 1024


def _zeros_packer(extra: int) -> Callable[..., bytes]:
    """An emulator packer whose invoice files are 1 MiB of zeros each (the invoices' own names),
    with ``extra`` more such files, and the metadata file last."""

    def pack(invoices: list[Any], only_metadata: bool, compression: str = "Zip", **_: Any) -> bytes:
        names = [f"{i.ksef_number}.xml" for i in invoices]
        names += [f"{make_ksef_number(NIP, '20261202', f'{n:012X}')}.xml" for n in range(extra)]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                archive.writestr(name, bytes(MIB))
            archive.writestr("_metadata.json", json.dumps({"invoices": []}))
        return buffer.getvalue()

    return pack


class TestAZipBombOfSmallEntries:
    def test_more_invoice_files_than_the_package_counts_are_refused_at_the_first_extra_one(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _send(ksef, backend, 1, "ZB")
        monkeypatch.setattr(mock_invoices, "pack_export", _zeros_packer(extra=23))
        with pytest.raises(ExportError, match=r"more than 1 invoice file\(s\) .*invoiceCount is 1"):
            ksef.invoices.export(tmp_path / "out", date_from=_start())
        assert not list((tmp_path / "out").iterdir())

    def test_invoice_files_that_inflate_past_the_cap_together_are_refused(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        _send(ksef, backend, 6, "ZT")  # six files of 1 MiB: as many as the package counts
        monkeypatch.setattr(mock_invoices, "pack_export", _zeros_packer(extra=0))
        limits = BodyLimits(export_unpacked=3 * MIB)
        with (
            KSeF(base_url=ksef_server.base_url, access_token=ksef.access_token, body_limits=limits) as client,
            pytest.raises(ExportError, match=rf"more than {3 * MIB} bytes together.*BodyLimits\.export_unpacked"),
        ):
            client.invoices.export(tmp_path / "out", date_from=_start())
        assert not list((tmp_path / "out").iterdir())

    def test_the_cap_on_the_files_together_is_far_above_what_ksef_packs(self) -> None:
        # KSeF: "Limit rozmiaru danych(skompresowanych): 1GB" (POST /invoices/exports).
        assert BodyLimits().export_unpacked >= 32 * 1_000_000_000


# --- 11. the target folder is made and checked before the export is started -----------------------
# Was: first touched once the package was downloaded: an unusable folder cost one of KSeF's 20
# exports an hour ("POST /invoices/exports": RateLimits 8/16/20) and a download of up to 1 GB.


class TestTheTargetFolder:
    @pytest.mark.parametrize("where", ["a file", "inside a file"])
    def test_an_unusable_folder_fails_before_any_request(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, where: str
    ) -> None:
        _send(ksef, backend, 1, "TF")
        before = ksef.send_state.requests_sent
        (tmp_path / "inbox").write_text("a file, not a folder")
        target = tmp_path / "inbox" if where == "a file" else tmp_path / "inbox" / "out"
        with pytest.raises(NotADirectoryError):
            ksef.invoices.export(target, date_from=_start())
        assert ksef.send_state.requests_sent == before  # no export started, nothing downloaded
        with pytest.raises(NotADirectoryError):
            ksef.invoices.sync("Subject1", tmp_path / "state.json", target, start=_start())
        assert ksef.send_state.requests_sent == before and not (tmp_path / "state.json").exists()

    @pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
    def test_a_folder_this_user_cannot_write_in_fails_before_any_request(self, ksef: KSeF, tmp_path: Path) -> None:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(PermissionError):
                ksef.invoices.export(locked, date_from=_start())
        finally:
            locked.chmod(0o700)
        assert ksef.send_state.requests_sent == 0

    @pytest.mark.anyio
    async def test_an_async_export_checks_it_first_too(
        self, ksef: KSeF, fake_time: FakeTime, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        (tmp_path / "inbox").write_text("a file")
        async with AsyncKSeF(
            base_url=ksef_server.base_url, access_token=ksef.access_token, sleep=fake_time.asleep
        ) as client:
            with pytest.raises(NotADirectoryError):
                await client.invoices.export(tmp_path / "inbox", date_from=_start())
            assert client.send_state.requests_sent == 0

    def test_the_folder_is_made_before_the_export_and_left_clean(self, ksef: KSeF, tmp_path: Path) -> None:
        target = tmp_path / "new" / "inbox"
        assert ksef.invoices.export(target, date_from=_start()).files == []  # nothing to export
        assert target.is_dir() and list(target.iterdir()) == []  # no probe left behind


# --- a write that fails on this computer: a full disk, a file size limit ---------------------------
# Was: a write of an invoice file that failed while the package was unpacked (ENOSPC, EDQUOT, EIO)
# was "ExportError: the package cannot be read (OSError: ...)": KSeF's package blamed, the
# `except OSError` of a caller never reached, and exporting again spent another of KSeF's exports
# an hour to fail the same way. And the package was downloaded into the system's temporary folder,
# which nothing checked (a tmpfs: memory), its failure an OSError naming no file.
# The OS itself refuses the writes here: RLIMIT_FSIZE (EFBIG past a size; Python ignores the
# SIGXFSZ that comes with it), lowered for the call only.

EXPORT_PREFIX = ".ksef-export-"


@contextlib.contextmanager
def _files_at_most(size: int) -> Iterator[None]:
    """This process may write no file past ``size`` bytes (``EFBIG``) while the block runs."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _large_invoices(ksef: KSeF, backend: KSeFBackend, count: int) -> list[str]:
    """``count`` invoices of 1,000 lines (183 kB each, some 12 kB deflated): KSeF numbers."""
    ksef.send_batch([sample_invoice(f"BIG/{i}", buyer_nip=BUYER, lines=1000) for i in range(count)], wait=True)
    return [str(invoice.ksef_number) for invoice in backend.invoices.state.accepted]


class TestAWriteThatFails:
    def test_an_invoice_file_not_written_is_an_os_error_naming_it_not_a_damaged_package(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        (number,) = _large_invoices(ksef, backend, 1)
        out = tmp_path / "out"
        with _files_at_most(64 * 1024), pytest.raises(OSError) as caught:  # the package fits, its file not
            ksef.invoices.export(out, date_from=_start())
        error = caught.value
        assert not isinstance(error, ExportError) and error.errno == errno.EFBIG
        written = Path(error.filename)
        assert written.name == f"{number}.xml" and written.parent.parent == out
        assert written.parent.name.startswith(EXPORT_PREFIX)  # the unpacking folder, not the target's name
        assert "could not write an invoice file" in str(error) and "not at fault" in str(error)
        assert list(out.iterdir()) == []  # nothing half-written left, no package, no unpacking folder
        assert getattr(error, "partial", None) is None  # nothing saved
        assert [p.name for p in ksef.invoices.export(out, date_from=_start()).files] == [f"{number}.xml"]

    def test_sync_raises_it_too_and_its_state_stays_before_the_window(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        (number,) = _large_invoices(ksef, backend, 1)
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with _files_at_most(64 * 1024), pytest.raises(OSError) as caught:
            ksef.invoices.sync("Subject1", state, inbox, start=_start())
        error = caught.value
        assert not isinstance(error, ExportError) and error.errno == errno.EFBIG
        assert Path(error.filename).name == f"{number}.xml" and inbox in Path(error.filename).parents
        assert error.partial is not None and error.partial.ksef_numbers == []  # type: ignore[attr-defined]
        assert list(inbox.iterdir()) == [] and not state.exists()  # the next run starts where this one did
        assert ksef.invoices.sync("Subject1", state, inbox, start=_start()).ksef_numbers == [number]

    def test_the_package_is_downloaded_into_the_target_folder_and_a_failed_write_names_it(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # Was: tempfile.mkstemp() in the system's temporary folder; its ENOSPC an OSError with no
        # file name, while the target folder, checked before the export, had room.
        _large_invoices(ksef, backend, 3)  # a package of some 36 kB
        out = tmp_path / "out"
        with _files_at_most(16 * 1024), pytest.raises(OSError) as caught:
            ksef.invoices.export(out, date_from=_start())
        error = caught.value
        assert not isinstance(error, ExportError) and error.errno == errno.EFBIG
        package = Path(error.filename)
        assert package.parent == out and package.name.startswith(EXPORT_PREFIX) and package.name.endswith(".zip")
        assert "could not write the package being downloaded" in str(error)
        assert list(out.iterdir()) == []  # the package removed
