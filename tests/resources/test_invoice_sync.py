"""``invoices.sync`` against the emulator: one run per state file, a durable state, what a cancelled
run hands over, a state kept to its subject type and context, marks that never move back, packages
without their optional dates.

The guide (pobieranie-faktur/przyrostowe-pobieranie-faktur.md): "Gdy `IsTruncated = true`, kolejne
wywołanie należy rozpocząć od `LastPermanentStorageDate`, gdy `IsTruncated = false`, kolejne
wywołanie należy rozpocząć od zwróconego `PermanentStorageHwmDate`"; "Faktury powinny być pobierane
oddzielnie dla każdego typu podmiotu".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.errors import ExportError, ExportStatusError, SyncLockedError
from ksef_client.invoice_sync import SyncResult, _Progress
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.helpers import FakeTime, fsync_spy, issued_by
from tests.hostile import Tamper, json_swap

BUYER = "1111111111"
EXPORTS = "/invoices/exports"


def _start() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def _send(ksef: KSeF, backend: KSeFBackend, count: int, prefix: str) -> set[str]:
    """Send ``count`` invoices; their KSeF numbers."""
    before = len(backend.invoices.state.accepted)
    issued = issued_by(backend)  # the emulator's clock may be set back past midnight
    ksef.send_batch(
        [sample_invoice(f"{prefix}/{i}", buyer_nip=BUYER, issue_date=issued) for i in range(count)], wait=True
    )
    return {str(invoice.ksef_number) for invoice in backend.invoices.state.accepted[before:]}


def _interrupt_the_second_window() -> Tamper:
    """A KeyboardInterrupt raised as the run's second export starts (its first window delivered)."""
    exports: list[httpx.Request] = []

    def interrupt(request: httpx.Request, response: httpx.Response) -> None:
        if _starts_export(request):
            exports.append(request)
            if len(exports) == 2:
                raise KeyboardInterrupt

    return Tamper(interrupt)


def _starts_export(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith(EXPORTS)


def _client(ksef: KSeF, server: ThreadedServer, tamper: Tamper) -> KSeF:
    return KSeF(base_url=server.base_url, access_token=ksef.access_token, transport=tamper, sleep=lambda s: None)


class TestOneRunPerStateFile:
    def test_a_second_run_on_the_same_state_file_fails_at_once_and_sends_nothing(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: two runs at once both started from the saved mark and both delivered the same
        # invoices (each "exactly once" per run, twice in all).
        sent = _send(ksef, backend, 5, "LK")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        second: list[object] = []

        def start_another_run(request: httpx.Request, response: httpx.Response) -> None:
            if _starts_export(request) and not second:  # the first run is under way
                before = ksef.send_state.requests_sent
                try:
                    second.append(ksef.invoices.sync("Subject1", state, tmp_path / "other", start=_start()))
                except SyncLockedError as error:
                    second.append(error)
                assert ksef.send_state.requests_sent == before

        with _client(ksef, ksef_server, Tamper(start_another_run)) as first:
            result = first.invoices.sync("Subject1", state, inbox, start=_start())
        (refused,) = second
        assert isinstance(refused, SyncLockedError), refused
        assert str(state) in str(refused) and "another sync run" in str(refused)
        assert set(result.ksef_numbers) == sent and not (tmp_path / "other").exists()
        # the lock ends with the run: the next one goes on from its mark
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []

    @pytest.mark.skipif(os.name != "posix", reason="symbolic links (Windows needs a privilege for them)")
    def test_a_state_file_reached_through_a_symlink_is_locked_and_written_as_itself(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the lock was named after the path as given (link.json.lock, not state.json.lock):
        # a run through the link and one through the file went on together; and the save renamed
        # a new file over the link, leaving the real file behind: a run through it (or through
        # another link to it) delivered the same invoices again.
        real, link, inbox = tmp_path / "real" / "state.json", tmp_path / "link.json", tmp_path / "inbox"
        ksef.invoices.sync("Subject1", real, inbox, start=_start())
        link.symlink_to(real)
        sent = _send(ksef, backend, 2, "SL")
        second: list[object] = []

        def start_a_run_through_the_file(request: httpx.Request, response: httpx.Response) -> None:
            if _starts_export(request) and not second:  # the run through the link is under way
                try:
                    second.append(ksef.invoices.sync("Subject1", real, tmp_path / "other"))
                except SyncLockedError as error:
                    second.append(error)

        with _client(ksef, ksef_server, Tamper(start_a_run_through_the_file)) as client:
            assert set(client.invoices.sync("Subject1", link, inbox).ksef_numbers) == sent
        (refused,) = second
        assert isinstance(refused, SyncLockedError), refused
        assert link.is_symlink() and link.resolve() == real.resolve()  # the file it names was written
        assert ksef.invoices.sync("Subject1", real, inbox).ksef_numbers == []  # nothing delivered again
        assert not (tmp_path / "link.json.lock").exists()

    def test_what_carries_partial_is_what_the_docs_say(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # docs/errors-and-retries.md: what ends a run once it holds the lock carries .partial (a
        # SyncResult, empty when nothing); what is raised before carries none. Was documented as
        # "each error"; and an OSError making the target folder, under the lock, had none.
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with pytest.raises(ValueError, match="in the future") as future:
            ksef.invoices.sync("Subject1", state, inbox, start=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        with pytest.raises(ValueError, match="pass start=") as missing:
            ksef.invoices.sync("Subject1", state, inbox)
        assert not hasattr(future.value, "partial") and not hasattr(missing.value, "partial")
        ksef.invoices.sync("Subject1", state, inbox, start=_start())
        with pytest.raises(ValueError, match="not 'Subject2'") as other_chain:
            ksef.invoices.sync("Subject2", state, inbox)
        assert getattr(other_chain.value, "partial", None) == SyncResult([], [])
        (tmp_path / "a file").write_text("in the way", encoding="utf-8")
        with pytest.raises(OSError) as blocked:
            ksef.invoices.sync("Subject1", state, tmp_path / "a file" / "inbox")
        assert getattr(blocked.value, "partial", None) == SyncResult([], [])
        locked: list[SyncLockedError] = []

        def start_another_run(request: httpx.Request, response: httpx.Response) -> None:
            if _starts_export(request) and not locked:
                with pytest.raises(SyncLockedError) as caught:
                    ksef.invoices.sync("Subject1", state, inbox)
                locked.append(caught.value)

        with _client(ksef, ksef_server, Tamper(start_another_run)) as client:
            client.invoices.sync("Subject1", state, inbox)
        assert len(locked) == 1 and locked[0].partial is None

    def test_the_state_is_written_through_a_temporary_file_of_its_own(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # Was: always `<state>.tmp`, which two writers shared (one's half-written file renamed
        # over the state by the other).
        _send(ksef, backend, 2, "TMP")
        state = tmp_path / "state.json"
        foreign = tmp_path / "state.json.tmp"
        foreign.write_text("another writer's", encoding="utf-8")
        ksef.invoices.sync("Subject1", state, tmp_path / "inbox", start=_start())
        assert foreign.read_text(encoding="utf-8") == "another writer's"
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == ["inbox", "state.json", "state.json.lock", "state.json.tmp"]  # no temporary file of ours

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names open files through /proc/self/fd")
    def test_invoices_then_the_state_reach_the_disk_before_the_state_is_past_them(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Was: nothing was flushed: after a power cut the state could be past invoices whose
        # files (renamed into the folder) were lost, or be an empty file itself. The journal that
        # lists them (created: its folder entry too) reaches the disk before the state past them.
        sent = _send(ksef, backend, 3, "FS")
        flushed = fsync_spy(monkeypatch)
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        ksef.invoices.sync("Subject1", state, inbox, start=_start())
        assert flushed.pop(0) == tmp_path  # the inbox the run made, into its parent, first
        invoices = [n for n, p in enumerate(flushed) if p.name in {f"{number}.xml" for number in sent}]
        state_file = [n for n, p in enumerate(flushed) if p.parent == tmp_path and p.name.startswith(".state.json.")]
        journal, folder = flushed.index(tmp_path / "state.json.unreported"), tmp_path
        assert len(invoices) == 3 and len(state_file) == 1  # one window, one state write
        assert max(invoices) < flushed.index(inbox) < journal < flushed.index(folder) < state_file[0]
        assert flushed[state_file[0] + 1 :] == [folder, folder]  # the state's rename, the journal's removal
        assert not (tmp_path / "state.json.unreported").exists()

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names open files through /proc/self/fd")
    def test_the_folders_a_run_makes_reach_the_disk_in_their_parents(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Review F6: was mkdir(parents=True) only: the state, saved durably, could outlive after a
        # power cut the entry of the new folder (or of its new parents) holding its invoices.
        sent = _send(ksef, backend, 2, "MK")
        flushed = fsync_spy(monkeypatch)
        state, inbox = tmp_path / "chain" / "state.json", tmp_path / "srv" / "2026" / "in"
        ksef.invoices.sync("Subject1", state, inbox, start=_start())
        made = [tmp_path, tmp_path / "srv", tmp_path / "srv" / "2026"]  # the parents of what the run made
        before_any_state = flushed[: next(n for n, p in enumerate(flushed) if p.name.startswith(".state.json."))]
        assert all(parent in before_any_state for parent in made)
        assert flushed.count(tmp_path / "srv") == flushed.count(tmp_path / "srv" / "2026") == 1  # once each
        assert {p.name for p in inbox.glob("*.xml")} == {f"{n}.xml" for n in sent}
        flushed.clear()
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []
        assert tmp_path / "srv" not in flushed and tmp_path / "srv" / "2026" not in flushed  # made once
        flushed.clear()
        ksef.invoices.export(tmp_path / "export" / "here", date_from=_start(), interval=0)
        assert flushed[:2] == [tmp_path, tmp_path / "export"]  # plain exports too


class TestARunStoppedHalfWay:
    """Was: ``.partial`` was set on ``Exception`` only, inside the flow; a ``KeyboardInterrupt`` or
    a cancelled task (``BaseException``, raised by the driver, not in the flow) after some windows
    left their invoices in the folder and the state past them, and the caller never learnt which."""

    def test_a_keyboard_interrupt_hands_over_the_windows_delivered_before_it(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        sent = _send(ksef, backend, 70, "KI")
        backend.metadata_limit = 30  # windows of 30 (KSeF's 10,000 scaled down)
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        tamper = _interrupt_the_second_window()
        with _client(ksef, ksef_server, tamper) as client, pytest.raises(KeyboardInterrupt) as caught:
            client.invoices.sync("Subject1", state, inbox, start=_start())
        partial = getattr(caught.value, "partial", None)
        assert isinstance(partial, SyncResult) and len(partial.ksef_numbers) == 30
        assert sorted(partial.files) == sorted(inbox.glob("*.xml"))
        rest = ksef.invoices.sync("Subject1", state, inbox)  # the lock went with the interrupted run
        _reports_them_again_then_the_rest(rest, partial, sent)
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []

    @pytest.mark.anyio
    async def test_a_cancelled_async_run_hands_over_the_windows_delivered_before_it(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        sent = _send(ksef, backend, 70, "AC")
        backend.metadata_limit = 30
        transport = _CancelAtExport(backend, 2)
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        handed: list[object] = []
        time = FakeTime()
        async with AsyncKSeF(
            base_url="http://ksef.local/v2", access_token=ksef.access_token, transport=transport,
            sleep=time.asleep, clock=time.clock,
        ) as client:  # fmt: skip
            with anyio.CancelScope() as scope:
                transport.cancel = scope.cancel
                try:
                    await client.invoices.sync("Subject1", state, inbox, start=_start())
                except anyio.get_cancelled_exc_class() as error:
                    handed.append(getattr(error, "partial", None))
                    raise
            assert scope.cancelled_caught
        (partial,) = handed
        assert isinstance(partial, SyncResult) and len(partial.ksef_numbers) == 30
        assert sorted(partial.files) == sorted(inbox.glob("*.xml"))
        _reports_them_again_then_the_rest(ksef.invoices.sync("Subject1", state, inbox), partial, sent)

    def test_an_interrupt_anywhere_in_the_run_s_bookkeeping_hands_over_each_invoice_once(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # Was: an interrupt inside _Progress.saved(), after it added the window's numbers and
        # before it cleared the pending window, made the handler find that window's state in the
        # file and add its numbers again: .partial listed them twice. Ctrl-C lands between any two
        # lines of the main thread; here it is raised at each line of saved() in turn.
        sent = _send(ksef, backend, 3, "BK")
        lines = len(_interrupt_in(_Progress.saved, None, functools.partial(self._run, ksef, tmp_path / "probe")))
        assert lines >= 2
        for nth in range(lines):
            with pytest.raises(KeyboardInterrupt) as caught:
                _interrupt_in(_Progress.saved, nth, functools.partial(self._run, ksef, tmp_path / str(nth)))
            partial = getattr(caught.value, "partial", None)
            assert isinstance(partial, SyncResult), nth
            assert sorted(partial.ksef_numbers) == sorted(sent) and len(partial.files) == 3, nth

    @staticmethod
    def _run(ksef: KSeF, folder: Path) -> None:
        ksef.invoices.sync("Subject1", folder / "state.json", folder / "inbox", start=_start())

    @pytest.mark.skipif(os.name != "posix", reason="a folder is flushed on POSIX only")
    def test_an_interrupt_after_the_state_was_renamed_hands_over_that_window_too(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The state file is past the window once it is renamed; an interrupt while the rename is
        # flushed (or anywhere before the run notes the window as done) must still report it.
        sent = _send(ksef, backend, 3, "RN")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        state_folder = tmp_path.stat().st_ino
        real_fsync = os.fsync

        def fsync(handle: int) -> None:
            if os.fstat(handle).st_ino == state_folder and state.exists():  # not the journal's creation
                raise KeyboardInterrupt
            real_fsync(handle)

        monkeypatch.setattr(os, "fsync", fsync)
        with pytest.raises(KeyboardInterrupt) as caught:
            ksef.invoices.sync("Subject1", state, inbox, start=_start())
        monkeypatch.undo()
        partial = getattr(caught.value, "partial", None)
        assert isinstance(partial, SyncResult) and set(partial.ksef_numbers) == sent
        again = ksef.invoices.sync("Subject1", state, inbox)  # at least once: the next run names them too
        assert again == partial and ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []


class TestEveryDeliveredInvoiceIsReported:
    """At least once, whatever stops a run: the state file's journal (``<state>.unreported``) lists
    what a run delivered until the run returns it, and the next run reports what an earlier one
    left there."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("bound", ["anyio.move_on_after", "asyncio.timeout"])
    async def test_a_timeout_around_an_async_run_loses_no_report(
        self, bound: str, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # Was: the windows delivered before the timeout were in the folder and the state past
        # them, but only the CancelledError carried them (.partial), and the timeout swallows it
        # (move_on_after) or replaces it with a TimeoutError of its own (asyncio.timeout,
        # wait_for, fail_after): no run ever reported them.
        sent = _send(ksef, backend, 70, "TO")
        backend.metadata_limit = 30
        transport = _CancelAtExport(backend, 2)  # the second export's start "hangs": the timeout fires
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        time = FakeTime()
        async with AsyncKSeF(
            base_url="http://ksef.local/v2", access_token=ksef.access_token, transport=transport,
            sleep=time.asleep, clock=time.clock,
        ) as client:  # fmt: skip
            sync = client.invoices.sync("Subject1", state, inbox, start=_start())
            if bound == "anyio.move_on_after":
                with anyio.move_on_after(3600) as scope:
                    transport.cancel = lambda: setattr(scope, "deadline", -math.inf)  # it expires now
                    await sync
                assert scope.cancelled_caught
            else:
                with pytest.raises(TimeoutError) as caught:
                    async with asyncio.timeout(3600) as timeout:
                        transport.cancel = lambda: timeout.reschedule(asyncio.get_running_loop().time())
                        await sync
                assert getattr(caught.value, "partial", None) is None  # the caller gets nothing
        delivered = {p.name.removesuffix(".xml") for p in inbox.glob("*.xml")}
        assert len(delivered) == 30 and state.is_file()  # the first window, in the folder, the state past it
        rest = ksef.invoices.sync("Subject1", state, inbox)
        assert set(rest.ksef_numbers[:30]) == delivered  # reported first by the next run
        assert len(rest.ksef_numbers) == len(set(rest.ksef_numbers)) == 70 and set(rest.ksef_numbers) == sent
        assert sorted(rest.files) == sorted(inbox.glob("*.xml"))
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []  # once returned, cleared

    def test_an_interrupted_run_s_files_are_named_wherever_the_next_run_runs(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # The state file names them: by absolute paths, valid from another working folder.
        sent = _send(ksef, backend, 70, "RL")
        backend.metadata_limit = 30
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path)
        tamper = _interrupt_the_second_window()
        with _client(ksef, ksef_server, tamper) as client, pytest.raises(KeyboardInterrupt):
            client.invoices.sync("Subject1", "state.json", "inbox", start=_start())
        monkeypatch.chdir(tmp_path / "elsewhere")
        rest = ksef.invoices.sync("Subject1", tmp_path / "state.json", tmp_path / "inbox")
        assert set(rest.ksef_numbers) == sent and len(rest.files) == 70
        assert all(file.is_absolute() and file.is_file() for file in rest.files)

    def test_what_a_window_writes_does_not_grow_with_the_windows_before_it(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the state file held the run's whole list of unreported files, rewritten (and
        # deduplicated) with every window: a catch-up of 100 windows of 10,000 invoices wrote
        # gigabytes. Now each window appends its own paths to the journal, and the state stays small.
        sent = _send(ksef, backend, 60, "GR")
        backend.metadata_limit = 10  # truncated windows: 10 new invoices, then 9 (+ the last one again) each
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        journal = tmp_path / "state.json.unreported"
        seen: list[tuple[int, int, int]] = []  # at each export's start: the journal's inode and size, the state's size

        def measure(request: httpx.Request, response: httpx.Response) -> None:
            if _starts_export(request) and state.exists():  # the windows before it saved
                listed = journal.stat() if journal.exists() else None
                seen.append((listed.st_ino if listed else 0, listed.st_size if listed else 0, state.stat().st_size))

        with _client(ksef, ksef_server, Tamper(measure)) as client:
            result = client.invoices.sync("Subject1", state, inbox, start=_start())
        assert set(result.ksef_numbers) == sent and len(result.files) == 60
        assert len(seen) == 6  # seven windows: 10 + 5 * 9 + 5
        inodes, journal_sizes, state_sizes = zip(*seen, strict=True)
        line = len(json.dumps(str(result.files[0]))) + 1  # every path is as long: one folder, KSeF numbers
        assert max(state_sizes) - min(state_sizes) < line  # the state holds no list of files
        assert journal_sizes == tuple(line * (10 + 9 * window) for window in range(6))  # a window's own paths
        assert len(set(inodes)) == 1  # appended to, never rewritten
        assert not journal.exists()  # the run returned them

    def test_the_list_a_state_file_of_the_earlier_format_holds_is_reported_first(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # A state file written while the list was kept in it ("unreported" in its JSON), by a run
        # that did not return: the next run moves the list into the journal (a run interrupted
        # then still reports it) and drops it from the state file.
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        earlier = ksef.invoices.sync("Subject1", state, inbox, start=_start())
        assert earlier.ksef_numbers == []
        older = _send(ksef, backend, 2, "OF")
        delivered = ksef.invoices.sync("Subject1", state, inbox)
        assert set(delivered.ksef_numbers) == older
        saved = json.loads(state.read_text(encoding="utf-8"))
        state.write_text(json.dumps({**saved, "unreported": [str(f) for f in delivered.files]}), encoding="utf-8")
        sent = _send(ksef, backend, 40, "OF2")
        backend.metadata_limit = 30
        tamper = _interrupt_the_second_window()
        with _client(ksef, ksef_server, tamper) as client, pytest.raises(KeyboardInterrupt) as caught:
            client.invoices.sync("Subject1", state, inbox)
        partial = getattr(caught.value, "partial", None)
        assert isinstance(partial, SyncResult) and partial.ksef_numbers[:2] == delivered.ksef_numbers
        assert len(partial.ksef_numbers) == 32
        assert "unreported" not in json.loads(state.read_text(encoding="utf-8"))  # in the journal now
        rest = ksef.invoices.sync("Subject1", state, inbox)
        _reports_them_again_then_the_rest(rest, partial, older | sent)
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []
        assert not (tmp_path / "state.json.unreported").exists()

    def test_a_journal_a_crash_tore_is_read_up_to_the_tear(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # Appends reach the disk before the state that is past them: a torn line (cut short, or
        # zeros where a file system kept the new length only) is a window whose state was never
        # saved, delivered again by the next run. A line that names no file is no journal's.
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        sent = _send(ksef, backend, 2, "TR")
        first = ksef.invoices.sync("Subject1", state, inbox, start=_start())
        a, b = (json.dumps(str(file)).encode() for file in first.files)
        journal = tmp_path / "state.json.unreported"
        journal.write_bytes(a + b"\n" + a + b"\n" + b"\0" * 20 + b"\n" + b + b"\n" + b[:9])
        assert ksef.invoices.sync("Subject1", state, inbox) == first  # each once, in order
        assert set(first.ksef_numbers) == sent and not journal.exists()
        journal.write_bytes(a + b"\n" + b'"inbox/relative.xml"\n')
        saved = state.read_bytes()
        with pytest.raises(ValueError, match=r"state.json.unreported is not a sync journal \(line 2 "):
            ksef.invoices.sync("Subject1", state, inbox)
        assert state.read_bytes() == saved


class TestTheCallerAcknowledgesTheReport:
    """``syncing``: the journal stays until the caller's block has handled the report. Was (``sync``
    only): the run removed the journal as it returned, so a caller that failed while it handled the
    result (its database down, the process killed) was never told those invoices again, though the
    docs promised them "reported at least once, however its run ended"."""

    def test_a_block_that_fails_part_way_has_the_invoices_reported_again(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        sent = _send(ksef, backend, 5, "AK")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        handled: list[str] = []

        def handle(numbers: list[str], fail_at: int | None = None) -> None:
            for n, number in enumerate(numbers):
                if n == fail_at:
                    raise ConnectionError("the accounting database went away")
                handled.append(number)

        with (
            pytest.raises(ConnectionError) as failed,
            ksef.invoices.syncing("Subject1", state, inbox, start=_start()) as result,
        ):
            assert set(result.ksef_numbers) == sent and (tmp_path / "state.json.unreported").exists()
            with pytest.raises(SyncLockedError):  # the run holds its lock until the block ends
                ksef.invoices.sync("Subject1", state, inbox)
            handle(result.ksef_numbers, fail_at=2)
        assert not hasattr(failed.value, "partial")  # the caller's own error: not the run's
        assert len(handled) == 2 and (tmp_path / "state.json.unreported").exists()
        with ksef.invoices.syncing("Subject1", state, inbox) as again:
            assert again.ksef_numbers == result.ksef_numbers and again.files == result.files  # reported again
            handle(again.ksef_numbers)
        assert set(handled) == sent and not (tmp_path / "state.json.unreported").exists()
        with ksef.invoices.syncing("Subject1", state, inbox) as after:  # acknowledged: not again
            assert after.ksef_numbers == []
        later = _send(ksef, backend, 2, "AK2")
        with ksef.invoices.syncing("Subject1", state, inbox) as new:
            assert set(new.ksef_numbers) == later

    def test_sync_s_guarantee_ends_where_it_returns(self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path) -> None:
        # As documented: sync() removes the journal as it returns; what the caller then loses is
        # not reported again (the files stay in the folder).
        sent = _send(ksef, backend, 3, "RT")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        assert set(ksef.invoices.sync("Subject1", state, inbox, start=_start()).ksef_numbers) == sent
        assert not (tmp_path / "state.json.unreported").exists()
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []
        assert {p.name.removesuffix(".xml") for p in inbox.glob("*.xml")} == sent

    def test_a_process_killed_inside_the_block_has_the_invoices_reported_again(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # os._exit: no clean-up, no finally, as SIGKILL or a power cut after the run returned.
        sent = _send(ksef, backend, 4, "KL")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        since = _start().isoformat()
        program = (
            "import datetime as dt, os, sys\n"
            "from ksef_client import KSeF\n"
            f"with KSeF(base_url={ksef_server.base_url!r}, access_token={ksef.access_token!r}) as k:\n"
            f"    with k.invoices.syncing('Subject1', {str(state)!r}, {str(inbox)!r},\n"
            f"                            start=dt.datetime.fromisoformat({since!r})) as result:\n"
            "        print(len(result.ksef_numbers), flush=True)\n"
            "        os._exit(9)\n"
        )
        root = Path(__file__).resolve().parents[2]
        killed = subprocess.run(
            [sys.executable, "-c", program], cwd=root, capture_output=True, text=True, timeout=120, check=False
        )
        assert killed.returncode == 9 and killed.stdout.strip() == "4", killed.stderr
        with ksef.invoices.syncing("Subject1", state, inbox) as again:
            assert set(again.ksef_numbers) == sent
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []

    @pytest.mark.anyio
    async def test_an_async_block_that_fails_or_is_cancelled_has_them_reported_again(
        self, aksef: AsyncKSeF, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        sent = _send(ksef, backend, 3, "AA")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with pytest.raises(ConnectionError):
            async with aksef.invoices.syncing("Subject1", state, inbox, start=_start()) as result:
                assert set(result.ksef_numbers) == sent
                raise ConnectionError("the accounting database went away")
        with anyio.CancelScope() as scope:
            async with aksef.invoices.syncing("Subject1", state, inbox) as again:
                assert set(again.ksef_numbers) == sent
                scope.cancel()
                await anyio.lowlevel.checkpoint()  # cancelled here, inside the block
        assert scope.cancelled_caught and (tmp_path / "state.json.unreported").exists()
        async with aksef.invoices.syncing("Subject1", state, inbox) as third:
            assert third.ksef_numbers == again.ksef_numbers
        async with aksef.invoices.syncing("Subject1", state, inbox) as after:
            assert after.ksef_numbers == []
        assert not (tmp_path / "state.json.unreported").exists()


def _interrupt_in(function: Callable[..., object], nth: int | None, run: Callable[[], None]) -> list[int]:
    """``run()``, a ``KeyboardInterrupt`` raised at the ``nth`` line ``function`` executes (as a
    signal would land there; ``None``: none). Returns the lines it executed, in order."""
    code, executed = function.__code__, []
    outer = sys.gettrace()

    def in_function(frame: Any, event: str, arg: object) -> Any:
        if event == "line":
            executed.append(frame.f_lineno)
            if len(executed) - 1 == nth:
                raise KeyboardInterrupt
        return in_function

    def tracer(frame: Any, event: str, arg: object) -> Any:
        return in_function if frame.f_code is code else None

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(outer)
    return executed


def _reports_them_again_then_the_rest(rest: SyncResult, partial: SyncResult, sent: set[str]) -> None:
    """The run after an interrupted one reports first what that one handed over as ``.partial``
    (its state file lists them: at least once, as the caller may never have seen ``.partial``),
    then what it delivered itself: every invoice sent, once each."""
    handed = len(partial.ksef_numbers)
    assert rest.ksef_numbers[:handed] == partial.ksef_numbers and rest.files[:handed] == partial.files
    assert len(rest.ksef_numbers) == len(set(rest.ksef_numbers)) == len(sent) and set(rest.ksef_numbers) == sent


class TestThePackageIsDeletedOnEveryPath:
    """The downloaded package is decrypted: invoices in clear, up to KSeF's 1 GB."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("call", ["sync", "export"])
    async def test_a_call_cancelled_before_its_package_is_unpacked_leaves_no_package_behind(
        self, call: str, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # Was: cancelled while it waited for a worker thread to unpack (AnyIO's pool, shared with
        # the whole app, busy), the call never ran the unpacking, which alone deleted the package,
        # and the flow had no clean-up around that wait: the package stayed in the temp folder.
        _send(ksef, backend, 3, "PK")
        temp = tmp_path / "temp"
        temp.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(temp))
        threads = anyio.to_thread.current_default_thread_limiter()
        monkeypatch.setattr(threads, "total_tokens", 1)  # the pool, busy with the app's other work
        release = threading.Event()
        async with (
            AsyncKSeF(base_url=ksef_server.base_url, access_token=ksef.access_token, sleep=FakeTime().asleep) as client,
            anyio.create_task_group() as others,
        ):
            others.start_soon(functools.partial(anyio.to_thread.run_sync, release.wait, abandon_on_cancel=True))
            try:
                while threads.borrowed_tokens == 0:  # the other work has the thread
                    await anyio.lowlevel.checkpoint()
                with anyio.CancelScope() as scope:
                    others.start_soon(_cancel_once_waiting_for_a_thread, threads, scope)
                    if call == "sync":
                        await client.invoices.sync("Subject1", tmp_path / "state.json", tmp_path / "in", start=_start())
                    else:
                        await client.invoices.export(tmp_path / "out", date_from=_start(), interval=0)
            finally:
                release.set()
                others.cancel_scope.cancel()
        assert scope.cancelled_caught
        assert list(temp.iterdir()) == []  # the package is gone
        assert not (tmp_path / "state.json").exists() and not list((tmp_path / "in").glob("*.xml"))


async def _cancel_once_waiting_for_a_thread(threads: anyio.CapacityLimiter, scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` once a task waits for a worker thread: the package is downloaded, its
    unpacking (the call's only work in a thread) not begun."""
    while threads.statistics().tasks_waiting == 0:
        await anyio.lowlevel.checkpoint()
    scope.cancel()


class _CancelAtExport(httpx.AsyncBaseTransport):
    """The emulator in-process; the ``nth`` export's start calls ``cancel()`` (as a cancel scope
    or ``task.cancel()``) and hangs, as an answer that never comes, until cancelled."""

    def __init__(self, backend: KSeFBackend, nth: int) -> None:
        self.inner = httpx.ASGITransport(app=create_app(backend, strict=True))
        self.nth, self.exports = nth, 0
        self.cancel: Callable[[], object] = lambda: None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await anyio.lowlevel.checkpoint()
        if _starts_export(request):
            self.exports += 1
            if self.exports == self.nth:
                self.cancel()
                await anyio.sleep_forever()
        return await self.inner.handle_async_request(request)


class TestOneChainPerStateFile:
    """Was: the state file held the mark only; a run for another subject type or context went on
    from the first one's mark and silently skipped that chain's invoices before it. The guide:
    invoices "powinny być pobierane oddzielnie dla każdego typu podmiotu"."""

    def test_a_state_file_of_another_subject_type_is_refused_before_any_request(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        ksef.invoices.sync("Subject1", state, inbox, start=_start())
        _send(ksef, backend, 2, "ST")  # ours as the seller (Subject1) only
        saved, before = state.read_bytes(), ksef.send_state.requests_sent
        with pytest.raises(ValueError, match=r"state.json holds the mark of subject_type 'Subject1', not 'Subject2'"):
            ksef.invoices.sync("Subject2", state, inbox)
        assert ksef.send_state.requests_sent == before and state.read_bytes() == saved
        assert len(ksef.invoices.sync("Subject1", state, inbox).ksef_numbers) == 2

    def test_a_state_file_of_an_earlier_version_is_taken_by_its_first_run(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # The field is new: a file without it is the chain of the first run that uses it.
        sent = _send(ksef, backend, 2, "OLD")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        state.write_text(json.dumps({"date_from": _start().isoformat(), "seen_at_from": []}), encoding="utf-8")
        assert set(ksef.invoices.sync("Subject1", state, inbox).ksef_numbers) == sent
        assert json.loads(state.read_text(encoding="utf-8"))["subject_type"] == "Subject1"
        with pytest.raises(ValueError, match="subject_type 'Subject1', not 'Subject3'"):
            ksef.invoices.sync("Subject3", state, inbox)

    def test_a_state_file_of_another_login_context_is_refused_before_any_request(
        self, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        first, other = self_signed_certificate(kind="seal"), self_signed_certificate(kind="seal")
        with KSeF(base_url=ksef_server.base_url, sleep=lambda s: None) as client:
            client.auth.login_with_certificate(first, context_nip=first.nip)
            client.invoices.sync("Subject1", state, inbox, start=_start())
            assert json.loads(state.read_text(encoding="utf-8"))["context"] == {"type": "Nip", "value": first.nip}
            client.auth.login_with_certificate(other, context_nip=other.nip)
            before = client.send_state.requests_sent
            with pytest.raises(ValueError, match=rf"context Nip={first.nip}, not Nip={other.nip}"):
                client.invoices.sync("Subject1", state, inbox)
            assert client.send_state.requests_sent == before

    def test_a_state_file_that_holds_no_state_is_named(self, ksef: KSeF, tmp_path: Path) -> None:
        state = tmp_path / "state.json"
        state.write_text('{"date_from": "yesterday"}', encoding="utf-8")
        with pytest.raises(ValueError, match=r"state.json is not a sync state file"):
            ksef.invoices.sync("Subject1", state, tmp_path / "inbox")


REFUSED_420 = {
    "code": 420,
    "description": "Zakres filtrowania wykracza poza dostępny zakres danych",
    "details": [
        "Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate przy włączonym "
        "restrictToPermanentStorageHwmDate."
    ],
}  # InvoiceExportStatusResponse.status, spec 2.9.0


def _refuse_as_past_the_hwm(body: dict[str, object]) -> dict[str, object]:
    return {"status": REFUSED_420}


class TestWhereAWindowStarts:
    """The mark only moves forward. Spec 2.9.0, export status 420: "Parametr dateRange.from jest
    późniejszy niż PermanentStorageHwmDate przy włączonym restrictToPermanentStorageHwmDate"."""

    def test_more_invoices_stored_under_a_frozen_clock_than_fit_a_package_are_all_delivered(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the emulator dated every invoice a frozen clock stored alike, so a truncated package
        # ended at that date, the next window started at it ("kolejne wywołanie należy rozpocząć od
        # LastPermanentStorageDate") and found the same 30 invoices: the run stopped with no progress.
        fixed = _start()
        real, backend.clock = backend.clock, lambda: fixed
        try:
            sent = _send(ksef, backend, 70, "FC")
        finally:
            backend.clock = real
        backend.metadata_limit = 30
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        result = ksef.invoices.sync("Subject1", state, inbox, start=fixed - dt.timedelta(minutes=1))
        assert set(result.ksef_numbers) == sent and len(result.ksef_numbers) == 70
        stored = [invoice.stored for invoice in backend.invoices.state.accepted]
        assert stored == sorted(stored) and len(set(stored)) == 70  # one date each, in the order stored

    def test_a_start_later_than_the_saved_mark_is_refused_and_an_earlier_one_ignored(
        self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path
    ) -> None:
        # Was: start= was silently ignored once the state existed, whatever it said.
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        ksef.invoices.sync("Subject1", state, inbox, start=_start())
        sent = _send(ksef, backend, 2, "ST")
        saved, before = state.read_bytes(), ksef.send_state.requests_sent
        with pytest.raises(ValueError, match=r"start=.* is later than the mark .* of state_file .*state.json"):
            ksef.invoices.sync("Subject1", state, inbox, start=dt.datetime.now(dt.UTC))
        assert ksef.send_state.requests_sent == before and state.read_bytes() == saved
        earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)  # the mark wins: nothing fetched again
        assert set(ksef.invoices.sync("Subject1", state, inbox, start=earlier).ksef_numbers) == sent
        assert ksef.invoices.sync("Subject1", state, inbox, start=earlier).ksef_numbers == []

    def test_a_start_in_the_future_is_refused_before_any_request(self, ksef: KSeF, tmp_path: Path) -> None:
        # Was: exported; the emulator's package said an HWM before it, and the mark moved back there.
        with pytest.raises(ValueError, match=r"start=.* is in the future"):
            ksef.invoices.sync(
                "Subject1", tmp_path / "state.json", tmp_path / "in", start=dt.date.today() + dt.timedelta(days=2)
            )
        assert ksef.send_state.requests_sent == 0 and list(tmp_path.iterdir()) == []

    def test_a_package_dated_before_the_window_does_not_move_the_mark_back(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the mark became the package's permanentStorageHwmDate, earlier than the window's
        # start: the next run fetched delivered invoices again.
        start = _start()
        sent = _send(ksef, backend, 2, "BK")
        earlier = (start - dt.timedelta(days=1)).isoformat()

        def hwm_before_the_window(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("package"):
                body["package"]["permanentStorageHwmDate"] = earlier
            return body

        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with _client(ksef, ksef_server, Tamper(json_swap("GET", f"{EXPORTS}/", hwm_before_the_window))) as client:
            assert set(client.invoices.sync("Subject1", state, inbox, start=start).ksef_numbers) == sent
        assert dt.datetime.fromisoformat(json.loads(state.read_text(encoding="utf-8"))["date_from"]) >= start

    def test_a_first_start_ksef_s_hwm_has_not_reached_is_kept_for_the_next_run(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        # KSeF's HWM lags the present: a first start= close to now may be past it (420). Was: an
        # ExportError, and no state file: a scheduled `start=now` never got going.
        start = _start()
        sent = _send(ksef, backend, 2, "HW")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with (
            _client(ksef, ksef_server, Tamper(json_swap("GET", f"{EXPORTS}/", _refuse_as_past_the_hwm))) as client,
            caplog.at_level(logging.INFO, logger="ksef_client"),
        ):
            assert client.invoices.sync("Subject1", state, inbox, start=start).ksef_numbers == []
        assert json.loads(state.read_text(encoding="utf-8"))["date_from"] == start.isoformat()
        assert any("HWM has not reached it" in record.getMessage() for record in caplog.records)  # not silent
        assert set(ksef.invoices.sync("Subject1", state, inbox).ksef_numbers) == sent

    def test_a_mark_in_the_future_refused_by_ksef_is_a_clear_error(
        self, ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        state = tmp_path / "state.json"
        ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        state.write_text(json.dumps({"date_from": ahead, "seen_at_from": []}), encoding="utf-8")
        refusing = Tamper(json_swap("GET", f"{EXPORTS}/", _refuse_as_past_the_hwm))
        ahead_of_us = r"mark .* \(state_file .*state.json\) is in the future"
        with (
            _client(ksef, ksef_server, refusing) as client,
            pytest.raises(ExportStatusError, match=ahead_of_us) as caught,
        ):
            client.invoices.sync("Subject1", state, tmp_path / "inbox")
        assert caught.value.code == 420 and json.loads(state.read_text(encoding="utf-8"))["date_from"] == ahead

    def test_an_export_refused_as_past_the_hwm_says_so(
        self, ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        refusing = Tamper(json_swap("GET", f"{EXPORTS}/", _refuse_as_past_the_hwm))
        past_the_hwm = "later than KSeF's PermanentStorageHwmDate"
        with (
            _client(ksef, ksef_server, refusing) as client,
            pytest.raises(ExportStatusError, match=past_the_hwm) as caught,
        ):
            client.invoices.export(tmp_path / "out", date_from=_start(), restrict_to_hwm=True)
        assert (caught.value.code, caught.value.description) == (420, REFUSED_420["description"])


def _package_without(*names: str, exports_at_most: int = 10) -> Tamper:
    """The emulator with ``names`` left out of each export's package (the spec has them optional);
    more than ``exports_at_most`` exports in one test is a loop (an AssertionError out of sync)."""
    exports: list[httpx.Request] = []

    def strip(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if _starts_export(request):
            exports.append(request)
            assert len(exports) <= exports_at_most, "sync keeps asking for windows"
        if request.method != "GET" or f"{EXPORTS}/" not in request.url.path:
            return None
        body = json.loads(response.read())
        for name in names:
            (body.get("package") or {}).pop(name, None)
        return httpx.Response(200, json=body, request=request)

    return Tamper(strip)


class TestPackagesWithoutTheirDates:
    """InvoicePackage (spec 2.9.0): lastPermanentStorageDate and permanentStorageHwmDate are
    optional; the guide's next window starts at the one or the other."""

    def test_without_the_hwm_the_next_window_starts_at_the_last_invoice_delivered(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the mark stayed where it was, and each run delivered the same invoices again.
        first = _send(ksef, backend, 3, "NH")
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        with _client(ksef, ksef_server, _package_without("permanentStorageHwmDate")) as client:
            assert set(client.invoices.sync("Subject1", state, inbox, start=_start()).ksef_numbers) == first
            assert client.invoices.sync("Subject1", state, inbox).ksef_numbers == []
            later = _send(ksef, backend, 2, "NH2")
            assert set(client.invoices.sync("Subject1", state, inbox).ksef_numbers) == later
        assert ksef.invoices.sync("Subject1", state, inbox).ksef_numbers == []

    def test_without_the_hwm_a_chain_quiet_for_over_100_days_goes_on_from_its_window_s_to(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the empty 100-day window of a mark 150 days old moved the mark nowhere (no HWM, no
        # invoice), so each run asked for that window again and returned [] forever. The spec's
        # permanentStorageHwmDate: "Dla okresów starszych, będzie to zgodne z warunkami zapytania".
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=150)
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        state.write_text(json.dumps({"date_from": old.isoformat(), "subject_type": "Subject1"}), encoding="utf-8")
        with _client(ksef, ksef_server, _package_without("permanentStorageHwmDate")) as client:
            assert client.invoices.sync("Subject1", state, inbox).ksef_numbers == []
            mark = dt.datetime.fromisoformat(json.loads(state.read_text(encoding="utf-8"))["date_from"])
            assert mark == old + dt.timedelta(days=100)  # the closed window's to; the open one was empty
            sent = _send(ksef, backend, 3, "QT")
            assert set(client.invoices.sync("Subject1", state, inbox).ksef_numbers) == sent
            assert client.invoices.sync("Subject1", state, inbox).ksef_numbers == []

    def test_without_the_hwm_a_window_s_to_close_to_now_is_not_taken_as_complete(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # For "najnowszy okres" the spec's HWM may be "nieznacznie skorygowaną względem górnej
        # granicy": below a to of 2 hours ago, invoices may still come. The mark goes no further
        # than the window's last invoice; a day later its to counts (the test above).
        (inside,) = _send(ksef, backend, 1, "NW")
        stored = backend.invoices.state.accepted[-1]
        assert stored.acquired is not None
        stored.acquired -= dt.timedelta(hours=3)  # stored 3 hours ago, inside the window
        when = stored.stored
        mark = dt.datetime.now(dt.UTC) - dt.timedelta(days=100, hours=2)  # the window's to: 2 hours ago
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        state.write_text(json.dumps({"date_from": mark.isoformat(), "subject_type": "Subject1"}), encoding="utf-8")
        with _client(ksef, ksef_server, _package_without("permanentStorageHwmDate")) as client:
            assert client.invoices.sync("Subject1", state, inbox).ksef_numbers == [inside]
        assert when is not None and json.loads(state.read_text(encoding="utf-8"))["date_from"] == when.isoformat()

    def test_a_truncated_package_without_its_last_date_goes_on_from_its_last_invoice(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the mark did not move and the same truncated window was asked for forever.
        sent = _send(ksef, backend, 70, "NL")
        backend.metadata_limit = 30
        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        stripping = _package_without("lastPermanentStorageDate", "permanentStorageHwmDate")
        with _client(ksef, ksef_server, stripping) as client:
            result = client.invoices.sync("Subject1", state, inbox, start=_start())
        assert len(result.ksef_numbers) == 70 and set(result.ksef_numbers) == sent
        assert sum(1 for method, path in stripping.seen if method == "POST" and path.endswith(EXPORTS)) == 3

    def test_a_truncated_package_that_does_not_move_the_mark_stops_the_run(
        self, ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, tmp_path: Path
    ) -> None:
        # Was: the same window again and again, forever.
        _send(ksef, backend, 70, "NP")
        backend.metadata_limit = 30
        start = _start()

        def stuck(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("package"):
                body["package"]["lastPermanentStorageDate"] = start.isoformat()
            return body

        state, inbox = tmp_path / "state.json", tmp_path / "inbox"
        exports: list[str] = []
        swap = json_swap("GET", f"{EXPORTS}/", stuck)

        def count_and_swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
            if _starts_export(request):
                exports.append(request.url.path)
                assert len(exports) <= 10, "sync keeps asking for the same window"
            return swap(request, response)

        no_further = r"truncated .* moves the sync no further than"
        with (
            _client(ksef, ksef_server, Tamper(count_and_swap)) as client,
            pytest.raises(ExportError, match=no_further) as caught,
        ):
            client.invoices.sync("Subject1", state, inbox, start=start)
        assert len(exports) == 1 and json.loads(state.read_text(encoding="utf-8"))["date_from"] == start.isoformat()
        partial = caught.value.partial
        assert partial is not None and sorted(partial.files) == sorted(inbox.glob("*.xml"))
