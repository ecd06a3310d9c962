"""Incremental sync: every invoice stored since the last run, delivered at least once (a crash
may deliver a window again: deduplicate by KSeF number), by chained exports whose high-water mark
is kept in a state file.

A window runs from the saved mark to now (no ``to``), as the Ministry's guide recommends for
continuous sync; a mark older than KSeF's 100-day ``dateRange`` limit is caught up in windows of
100 days, each ending at its ``to`` (the guide: "moment zakończenia" is "wartość dateRange.to, gdy
została podana, lub PermanentStorageHwmDate gdy dateRange.to pominięto"; with the HWM restriction
on, never past ``PermanentStorageHwmDate``).

The mark only moves forward: an explicit ``start`` later than the saved mark is refused (the
invoices between would be skipped), an earlier one ignored; a window KSeF refuses as starting past
its HWM (export status 420) ends the run with nothing new while the mark is not ahead of the
present (KSeF's HWM lags it: a first ``start`` close to now), and is an error otherwise.

One run at a time per state file: a run holds an exclusive OS lock on ``<state_file>.lock`` (beside
it) and a second run on the same state file fails at once with ``SyncLockedError`` (two runs from
the same mark would deliver the same invoices twice). A state file is the file a path names, with
its symbolic links followed: the lock and the writes go to that file, whatever name reached it.
The state is written to a fresh temporary file, flushed to disk and renamed over the old one: a
crash leaves the old state or the new one, never a torn file.

Every delivered invoice is reported, at least once, whatever stops a run. Beside the state file,
its journal ``<state_file>.unreported`` lists the files delivered by a run that has not returned
yet: each window's are appended to it and flushed to disk before the state write that moves the
mark past them (a crash between the two reports them twice at worst: at least once allows that),
and a run removes it just before it returns them (``syncing``: once the caller has handled them).
A run that does not return (an error, an interrupt, a cancellation, a timeout around an
``AsyncKSeF`` call that swallows the cancellation or replaces it with a ``TimeoutError``) leaves
it, and the next run returns those files first, with its own. An interrupted run also hands them
over as ``.partial`` on what ended it, when that reaches the caller: the next run names them again.

The journal is appended to, never rewritten: a catch-up run of many windows writes each path
once, and each state write is as small as the first (a list inside the state file, rewritten with
every window, made a run's writes grow with the square of its windows). A state file written while
the list was kept in it (``unreported`` in its JSON) is honoured: the next run moves the list into
the journal and drops it from the file.

``sync`` removes the journal as it returns, so its guarantee ends at the return: a caller that
fails while it handles the result (an error, a kill) is not told those invoices again.
``syncing`` (a context manager) gives the block the result with the journal kept and the lock
held, and removes the journal only when the block ends without an error: the caller acknowledges
the report, and an error (or a kill) inside the block leaves it to the next run."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksef_client._body import BodyLimits
from ksef_client._durable import flush_folder, hold_lock, make_folders, write_durably
from ksef_client._flows import Flow
from ksef_client._moving import check_targets, move_in
from ksef_client._paths import checked_name, file_in
from ksef_client.errors import ExportError, ExportStatusError, SyncLockedError
from ksef_client.export import (
    EXPORT_FROM_PAST_HWM,
    UNPACKING_PREFIX,
    ExportResult,
    export_flow,
    unpack_export,
    usable_folder,
)
from ksef_client.invoice_query import aware, build_filters, moment, utc_now, window_end

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF
    from ksef_client._generated.models import InvoicePackage
    from ksef_client._tokens import KeyCache

_log = logging.getLogger("ksef_client")


@dataclass
class SyncState:
    """The high-water mark of one ``subject_type`` chain and the numbers already taken at it.

    The file names the chain's ``subject_type`` and, when the client knows it (it logged in
    itself: ``auth.login_with_*``), its login ``context`` ``(type, value)``: a mark is a place in
    one chain only (the guide has invoices fetched "oddzielnie dla każdego typu podmiotu"), and
    another chain continued from it would skip its invoices before that place. A file of an
    earlier version has neither: it is taken as the chain of the first run that uses it, which
    writes them in. A client given a bare access token does not know its context: its runs are
    not checked against the file's context (nor write one).

    ``unreported``: the list of files left unreported that a state file written before the
    journal (``Journal``) holds; never written: the run that reads it moves it into the journal."""

    date_from: str
    seen_at_from: list[str] = field(default_factory=list)
    subject_type: str | None = None
    context: tuple[str, str] | None = None
    unreported: list[str] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        path: Path,
        start: dt.date | dt.datetime | None,
        subject_type: str | None = None,
        context: tuple[str, str] | None = None,
    ) -> SyncState:
        """Read the state file, or start at ``start`` on the first run. ``ValueError`` when the
        file belongs to another ``subject_type`` or login context (see the class), or when
        ``start`` is later than its mark (the invoices between them would be skipped; an earlier
        ``start`` is ignored: the mark never moves back, which would fetch invoices again)."""
        if not path.is_file():
            if start is None:
                raise ValueError(f"state_file {path} does not exist yet: pass start= for the first run")
            return cls(moment(start, "start").isoformat(), [], subject_type, context)
        state = cls.read(path)
        state.check_chain(path, subject_type, context)
        if start is not None and moment(start, "start") > state.mark():
            raise ValueError(
                f"start={moment(start, 'start').isoformat()} is later than the mark {state.date_from} of state_file "
                f"{path}: the invoices stored between them would never be fetched. start= only sets where a "
                "first run begins (an earlier one is ignored, the file's mark wins); to begin later, use a new "
                "state file"
            )
        return replace(state, subject_type=subject_type or state.subject_type, context=state.context or context)

    def mark(self) -> dt.datetime:
        """``date_from`` as an aware moment (where the next window starts)."""
        return aware(dt.datetime.fromisoformat(self.date_from))

    @classmethod
    def read(cls, path: Path) -> SyncState:
        """The state the file holds; ``ValueError`` naming the file when it holds none."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            date_from = raw["date_from"]
            aware(dt.datetime.fromisoformat(date_from))
            seen = raw.get("seen_at_from", [])
            subject_type, context = raw.get("subject_type"), raw.get("context")
            unreported = raw.get("unreported", [])
            if not isinstance(seen, list) or not all(isinstance(n, str) for n in seen):
                raise ValueError("seen_at_from is not a list of KSeF numbers")
            if not isinstance(unreported, list) or not all(_is_invoice_file(f) for f in unreported):
                raise ValueError("unreported is not a list of invoice files")
            if subject_type is not None and not isinstance(subject_type, str):
                raise ValueError("subject_type is not a string")
            pair = None if context is None else (str(context["type"]), str(context["value"]))
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"state_file {path} is not a sync state file ({type(error).__name__}: {error})") from None
        return cls(date_from, seen, subject_type, pair, unreported)

    def check_chain(self, path: Path, subject_type: str | None, context: tuple[str, str] | None) -> None:
        """``ValueError`` (before any request) when the file's chain is another one."""
        if self.subject_type is not None and subject_type is not None and self.subject_type != subject_type:
            raise ValueError(
                f"state_file {path} holds the mark of subject_type {self.subject_type!r}, not {subject_type!r}: "
                "each subject type needs a state file of its own (continued from another's mark, a run would "
                "skip invoices)"
            )
        if self.context is not None and context is not None and self.context != context:
            raise ValueError(
                f"state_file {path} holds the mark of context {'='.join(self.context)}, not {'='.join(context)} "
                "(the client's login): each context needs a state file of its own (continued from another's "
                "mark, a run would skip invoices)"
            )

    def as_json(self) -> dict[str, Any]:
        """The state as the file holds it (without ``unreported``: the journal holds that)."""
        data: dict[str, Any] = {"date_from": self.date_from, "seen_at_from": self.seen_at_from}
        if self.subject_type is not None:
            data["subject_type"] = self.subject_type
        if self.context is not None:
            data["context"] = {"type": self.context[0], "value": self.context[1]}
        return data

    def save(self, path: Path) -> None:
        """Write atomically and durably (``write_durably``): the old state or the new one."""
        write_durably(path, json.dumps(self.as_json()).encode("utf-8"))


def _is_invoice_file(name: object) -> bool:
    return isinstance(name, str) and name.endswith(".xml") and os.path.isabs(name)


@dataclass
class Journal:
    """``<state_file>.unreported``: the files (absolute paths) delivered since a run last returned,
    oldest first, each once (see the module). One JSON string a line: a folder's name may hold a
    line break, or (POSIX) bytes that are no UTF-8, which JSON writes as escapes.

    Appended to, window by window, and removed as a run returns what it lists; read whole once a
    run, as it starts, then kept in memory (``files``, and ``known`` to deduplicate): no write
    grows with the windows before it. Appends are flushed to disk before the state moves past
    their files, so the lines a crash can tear (a last line cut short, or one a file system left
    as zeros: its new length kept, not its data) are of a window whose state was never saved,
    which the next run delivers again: dropped as the journal is read, which then rewrites it."""

    path: Path
    files: list[str]
    known: set[str]

    @classmethod
    def open(cls, state_file: Path, earlier: list[str]) -> Journal:
        """The journal beside ``state_file``, with ``earlier`` (the list a state file of the earlier
        format holds) after what it lists; rewritten (atomically, durably) unless it already reads
        as written: duplicates, torn lines and ``earlier`` then reach the file before the state
        file drops its list. ``ValueError`` naming the file for a line that is not a file's path."""
        path = state_file.with_name(state_file.name + ".unreported")
        raw = path.read_bytes() if path.is_file() else b""
        files = list(dict.fromkeys([*_journal_lines(path, raw), *earlier]))
        if _as_lines(files) != raw:
            if files:
                write_durably(path, _as_lines(files))
            else:
                _remove(path)
        return cls(path, files, set(files))

    def append(self, files: list[Path]) -> None:
        """Add the files not listed yet, flushed to disk (and, when this creates the journal, its
        folder entry too) before it returns: the state saved next is past them."""
        new = [name for name in dict.fromkeys(map(os.path.abspath, files)) if name not in self.known]
        if not new:
            return
        created = not self.path.exists()
        with open(self.path, "ab") as out:
            out.write(_as_lines(new))
            out.flush()
            os.fsync(out.fileno())
        if created:
            flush_folder(self.path.parent)
        self.files.extend(new)
        self.known.update(new)

    def remove(self) -> None:
        """Delete the file (the run returns what it lists), the deletion flushed to disk."""
        _remove(self.path)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    flush_folder(path.parent)


def _as_lines(files: list[str]) -> bytes:
    """The journal's lines for ``files``: JSON strings (ASCII: other characters are escaped)."""
    return "".join(json.dumps(name) + "\n" for name in files).encode("ascii")


def _journal_lines(path: Path, raw: bytes) -> list[str]:
    """The files ``raw`` lists; a torn line dropped (see ``Journal``): the part after the last line
    break, and a line with a zero byte (no path holds one)."""
    files = []
    for number, line in enumerate(raw.split(b"\n")[:-1], 1):
        if b"\0" in line:
            continue
        try:
            name = json.loads(line)
        except ValueError as error:  # UnicodeDecodeError too
            raise ValueError(f"{path} is not a sync journal (line {number}: {error})") from None
        if not _is_invoice_file(name):
            raise ValueError(f"{path} is not a sync journal (line {number} names no invoice file: {name!r})")
        files.append(name)
    return files


@contextmanager
def state_lock(state_file: Path) -> Iterator[None]:
    """Hold ``<state_file>.lock`` exclusively while the block runs, or raise ``SyncLockedError``
    at once (no waiting: a second run started by a scheduler while one still runs stops with a
    clear error rather than piling up). An OS lock (``flock``; ``msvcrt.locking`` on Windows), not
    the file's existence: it ends with its process, so a run that crashed leaves no stale lock.
    The lock file stays (removing it would let a third run lock a file of the same name while a
    second holds the removed one)."""
    lock_file = state_file.with_name(state_file.name + ".lock")

    def busy() -> SyncLockedError:
        return SyncLockedError(
            f"state_file {state_file} is in use by another sync run (it holds {lock_file}); "
            "run one sync per state file at a time"
        )

    with hold_lock(lock_file, busy):
        yield


@dataclass
class SyncResult:
    """The invoices a ``sync`` run reports: those it delivered into the folder, after those an
    earlier run delivered but did not report (it did not return: see ``sync``). ``files`` are
    absolute paths, ``{ksef_number}.xml``, in the order of ``ksef_numbers``."""

    ksef_numbers: list[str]
    files: list[Path]


def _advance(state: SyncState, result: ExportResult, window_to: dt.datetime | None, asked: dt.datetime) -> SyncState:
    """The mark after a window (``_window_end``; ``asked``: when it was asked for), and the numbers
    taken at it; never before the mark it started at."""
    boundary = _window_end(result, window_to, asked)
    if boundary is None or aware(boundary) < state.mark():
        # Never back: a date before the window's start (KSeF answers 420, not a package, for a
        # start past its HWM) would only fetch delivered invoices again.
        return state
    at = [str(m["ksefNumber"]) for m in result.metadata if _same_instant(m.get("permanentStorageDate"), boundary)]
    if aware(boundary) == state.mark():
        return replace(state, seen_at_from=sorted(set(at) | set(state.seen_at_from)))
    return replace(state, date_from=boundary.isoformat(), seen_at_from=at)


def _window_end(result: ExportResult, window_to: dt.datetime | None, asked: dt.datetime) -> dt.datetime | None:
    """Where a window's delivery ends: ``lastPermanentStorageDate`` when truncated; else
    ``permanentStorageHwmDate`` for an open window, ``window_to`` (at most the HWM) otherwise (the
    guide). The package's two dates are optional in the spec.

    Without the HWM, a window whose ``to`` was ``SETTLED_AFTER`` or more before it was asked for
    (``asked``) ends at its ``to``: the spec's ``permanentStorageHwmDate`` is, "Dla okresów
    starszych, [...] zgodne z warunkami zapytania" (the query's ``to``). So a chain with no invoice
    for more than 100 days goes on (its empty window would move the mark nowhere else). Otherwise,
    without the date it needs, the latest ``permanentStorageDate`` of the package's invoices
    (required in ``InvoiceMetadata``): with ``restrictToPermanentStorageHwmDate`` every invoice of
    the package is at most the HWM, and below the HWM the set is complete ("System gwarantuje, że
    dane poniżej tej wartości są spójne i kompletne"), so all up to that one is here; nothing past
    it is known complete. ``None``: an empty package without its dates, the mark stays."""
    if result.is_truncated:
        return result.last_permanent_storage_date or _last_stored(result)
    hwm = result.permanent_storage_hwm_date
    if hwm is None:
        settled = window_to is not None and window_to <= asked - SETTLED_AFTER
        return window_to if settled else _last_stored(result)
    return hwm if window_to is None or aware(hwm) < window_to else window_to


# How long ago a window's ``to`` must be to be taken as complete without the package's
# ``permanentStorageHwmDate``. For "najnowszy okres" the spec has the HWM "nieznacznie
# skorygowaną względem górnej granicy" (a little before ``to``): a ``to`` closer to now may be
# past KSeF's HWM, and invoices stored later with an earlier date would be skipped. A day is far
# more than "nieznacznie"; a chain whose mark is between 100 and 101 days old waits a day at most.
SETTLED_AFTER = dt.timedelta(days=1)


def _last_stored(result: ExportResult) -> dt.datetime | None:
    """The latest ``permanentStorageDate`` of the package's invoices (``None``: none has one)."""
    dates = []
    for record in result.metadata:
        with contextlib.suppress(ValueError, TypeError):
            dates.append(aware(dt.datetime.fromisoformat(str(record.get("permanentStorageDate")))))
    return max(dates, default=None)


def _same_instant(raw: object, when: dt.datetime) -> bool:
    try:
        return aware(dt.datetime.fromisoformat(str(raw))) == aware(when)
    except ValueError:
        return False


def _check_progress(before: SyncState, after: SyncState, result: ExportResult) -> None:
    """A truncated window must move the mark forward: asked again from the same mark, KSeF would
    build the same package (its first invoices from there), and the sync would loop."""
    if result.is_truncated and after.mark() <= before.mark():
        raise ExportError(
            f"export {result.reference_number} was truncated (isTruncated) but moves the sync no further than "
            f"{before.date_from} (lastPermanentStorageDate {_shown(result.last_permanent_storage_date)}, its "
            f"invoices' latest permanentStorageDate {_shown(_last_stored(result))}): the next window would be the "
            "same; stopped instead of asking for it again. The state stays at that mark"
        )


def _shown(when: dt.datetime | None) -> str:
    return "absent" if when is None else when.isoformat()


def _keep_new(result: ExportResult, state: SyncState, directory: Path) -> tuple[list[str], list[Path]]:
    """Move the invoices not taken before into ``directory``. Every one of them must have its file,
    and its name in ``directory`` must be free for it (``check_targets``: no folder, link or file
    this user may not replace there): ``ExportError`` before anything is moved, the state then
    moves past all of them. Each file is flushed to disk before it is moved, and the moves after:
    the state saved next never outlives, after a crash, invoices it is past. A move that still
    fails is an ``ExportError`` naming the files moved in and those not; the state stays before
    the window, whose invoices the next run delivers (again)."""
    seen = set(state.seen_at_from)
    sources = {}
    for number in result.ksef_numbers:  # checked by unpack_export, and again here: they name files
        if number not in seen:
            sources[number] = file_in(result.directory, checked_name(number, "KSeF number"))
    missing = sorted(number for number, source in sources.items() if not source.is_file())
    if missing:
        raise ExportError(
            f"export {result.reference_number}: no file for {len(missing)} invoice(s) its metadata lists: "
            f"{', '.join(missing[:10])}; the sync state stays before them"
        )
    moves = [(source, file_in(directory, number)) for number, source in sources.items()]
    check_targets(result.reference_number, directory, [target for _, target in moves])
    files: list[Path] = []
    move_in(result.reference_number, moves, files, before=_flush_file)
    if files:
        flush_folder(directory)
    return list(sources), files


def _flush_file(path: Path) -> None:
    with open(path, "rb+") as written:  # "+": Windows flushes only a file open for writing
        os.fsync(written.fileno())


def _take_window(
    ref: str,
    package: InvoicePackage,
    archive: Path | None,
    state: SyncState,
    directory: Path,
    limits: BodyLimits | None,
    journal: Journal,
) -> ExportResult:
    """Unpack one window's package into a temporary folder inside ``directory``, move the new
    invoices out of it (``_keep_new``), remove it, and list the new invoices in the journal: disk
    work of seconds for a large window, one ``Blocking`` step (a worker thread for ``AsyncKSeF``),
    so that the folder is gone when it ends. Returns the package's result."""
    with tempfile.TemporaryDirectory(prefix=UNPACKING_PREFIX, dir=directory) as work:
        result = unpack_export(ref, package, archive, Path(work), limits)
        _, new_files = _keep_new(result, state, directory)
    journal.append(new_files)
    return result


def _check_not_ahead(state: SyncState, state_file: Path, error: ExportStatusError) -> None:
    """After a 420 (the window's start is past KSeF's HWM): a mark not ahead of this computer's
    clock is one KSeF's HWM has not reached yet (a first ``start=`` close to now: the HWM lags
    the present), so nothing is complete after it yet and the run ends with nothing; a mark ahead
    of the clock is an error (a state file edited, or written on a clock running ahead)."""
    if state.mark() > utc_now():
        raise ExportStatusError(
            f"{error}. The sync's mark {state.date_from} (state_file {state_file}) is in the future, by this "
            "computer's clock too: the state file was edited or written on a clock running ahead; fix its "
            "date_from, or start a new state file",
            error.code,
            error.description,
        ) from error
    _log.info(
        "sync: nothing new after %s (state_file %s) yet: KSeF's HWM has not reached it (export status 420); "
        "the next run asks again",
        state.date_from,
        state_file,
    )


def checked_start(start: dt.date | dt.datetime | None) -> dt.datetime | None:
    """``start`` as an aware moment; ``ValueError`` for one in the future (KSeF answers 420 for a
    range that starts past its ``PermanentStorageHwmDate``, which is never ahead of the present)."""
    if start is None:
        return None
    when = moment(start, "start")
    if when > utc_now():
        raise ValueError(f"start={when.isoformat()} is in the future: a sync fetches what is already stored")
    return when


@dataclass
class SyncRun:
    """One run of ``sync_run``: its ``flow`` (run it with ``run`` or ``arun``) and, for a run whose
    caller acknowledges what it returned (``acknowledged_by_caller``), ``acknowledge``."""

    flow: Flow[SyncResult]
    progress: _Progress

    def acknowledge(self) -> None:
        """Remove the journal, flushed to disk: the caller has handled what the run returned, and
        no later run reports it again. Called under the run's lock, once its flow has returned."""
        if self.progress.journal is not None:
            self.progress.journal.remove()


@contextmanager
def sync_run(
    client: KSeF | AsyncKSeF,
    subject_type: str,
    state_file: str | Path,
    directory: str | Path,
    start: dt.date | dt.datetime | None,
    timeout: float,
    interval: float,
    *,
    acknowledged_by_caller: bool = False,
) -> Iterator[SyncRun]:
    """One ``sync`` (or ``syncing``) call of either client: the flow to run (``run`` or ``arun``),
    with the state file locked while the block runs (``state_lock``).

    ``acknowledged_by_caller``: the flow returns its ``SyncResult`` with the journal still there
    (``sync`` removes it as it returns), and the block calls ``acknowledge`` once the caller has
    handled the result; a block that ends otherwise leaves the journal, and the next run reports
    those invoices again. The lock is held until the block ends: no other run reads or appends
    to the journal in between.

    Whatever ends the run early once it holds the lock, ``KeyboardInterrupt`` and a cancelled
    task (``BaseException``) included, leaves as it came, carrying as ``.partial`` the
    ``SyncResult`` the run would have returned so far (the windows whose state was saved, after
    the files earlier runs left unreported; empty when none). The state file's journal keeps them
    (``Journal``): the next run reports them again, so none is lost when ``.partial`` never
    reaches the caller (a timeout around the call). What is raised before the lock is held
    carries no ``.partial`` (nothing was delivered): the ``ValueError`` for ``start``, an
    ``OSError`` making the state folder or the lock file, and ``SyncLockedError``, whose
    ``.partial`` stays ``None``. Nor does what the block raises once the flow has returned (the
    caller's own handling of the result, in ``syncing``).
    The flow is closed on the way out, so its own clean-up (an export's temporary file) runs then,
    not when the garbage collector gets to it."""
    # The file itself, symbolic links followed: its lock is then one whatever name reaches it, and
    # a save renames the new state over the file, not over a link to it (which would leave the
    # file behind, and a run through it would deliver the same invoices again).
    state_path, start = Path(os.path.realpath(state_file)), checked_start(start)
    folder = Path(os.path.abspath(directory))  # the state file names its files: wherever the next run runs
    if start is None and not state_path.is_file():  # before the lock file is made beside it
        raise ValueError(f"state_file {state_path} does not exist yet: pass start= for the first run")
    make_folders(state_path.parent)  # flushed into their parents: the state file is saved durably there
    with state_lock(state_path):
        progress = _Progress(held=acknowledged_by_caller)
        keys, limits, chain = client._public_keys, client.body_limits, (subject_type, client._tokens.context)
        flow = sync_flow(chain, state_path, folder, start, keys, timeout, interval, limits, progress)
        try:
            usable_folder(folder)  # before any request; not before the lock: a refused run makes nothing
            yield SyncRun(flow, progress)
        except BaseException as error:
            if not progress.returned:  # else the caller's own error, raised after the run returned
                with contextlib.suppress(AttributeError):  # an exception class with __slots__
                    error.partial = progress.settled(state_path)  # type: ignore[attr-defined]
            raise
        finally:
            flow.close()


@dataclass
class _Progress:
    """Where a run stands: the journal, whose first ``reported`` files are what the run reports
    (what earlier runs left, then each window's once its state is in the file: else the next run
    delivers them again), and the state being saved (``pending``, with the count it reports once
    saved). ``held``: the run returns with its journal kept, for the caller to acknowledge
    (``SyncRun.acknowledge``); ``returned``: the run has returned its result.

    Each step is one assignment of a value built before it: a ``KeyboardInterrupt`` (it lands
    between any two lines) or a second ``saved()`` for the same state counts nothing twice."""

    journal: Journal | None = None
    reported: int = 0
    pending: tuple[SyncState, int] | None = None
    held: bool = False
    returned: bool = False

    def started(self, journal: Journal) -> None:
        self.journal, self.reported = journal, len(journal.files)

    def saving(self, state: SyncState) -> None:
        self.pending = (state, len(self.journal.files) if self.journal else 0)

    def saved(self) -> None:
        if self.pending is not None:
            self.reported = self.pending[1]
        self.pending = None

    def report(self) -> SyncResult:
        """The invoices to report so far: earlier runs' unreported ones, then this run's (a file is
        named by its KSeF number)."""
        files = [Path(name) for name in (self.journal.files[: self.reported] if self.journal else [])]
        return SyncResult([file.name.removesuffix(".xml") for file in files], files)

    def settled(self, state_file: Path) -> SyncResult:
        """``report()``, with the window being saved when the run stopped if its state reached the
        file (a ``KeyboardInterrupt`` lands between any two steps, the rename and ``saved`` too)."""
        if self.pending is not None:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(state_file.read_text(encoding="utf-8")) == self.pending[0].as_json():
                    self.saved()
        return self.report()


def sync_flow(
    chain: tuple[str, tuple[str, str] | None],
    state_file: Path,
    directory: Path,
    start: dt.date | dt.datetime | None,
    keys: KeyCache,
    timeout: float,
    interval: float,
    limits: BodyLimits | None,
    progress: _Progress,
) -> Flow[SyncResult]:
    """Export from the saved high-water mark, keep the invoices not taken before, save the new
    mark; again while KSeF says the window was truncated, or while a mark more than 100 days old
    is caught up window by window (until a window ends where it started: KSeF's HWM not past it).
    Each window's invoices are appended to the journal before its state is saved, and go into
    ``progress`` once it is; the run removes the journal as it returns, unless ``progress.held``
    (the caller acknowledges: ``SyncRun.acknowledge``). ``chain``: the
    ``subject_type`` and the login context (``None``: not known), checked against the state file's
    before any request (``SyncState``)."""
    subject_type, context = chain
    state = SyncState.load(state_file, start, subject_type, context)
    journal = Journal.open(state_file, state.unreported)
    progress.started(journal)  # what earlier runs left unreported
    if state.unreported:  # a state file of the earlier format: its list is in the journal now
        state = replace(state, unreported=[])
        state.save(state_file)
    while True:
        date_from, asked = state.mark(), utc_now()
        window_to = window_end(date_from, None, asked)
        filters = build_filters(subject_type, date_from, window_to, restrict_to_hwm=True)
        take = functools.partial(_take_window, state=state, directory=directory, limits=limits, journal=journal)
        try:
            result = yield from export_flow(filters, keys, False, timeout, interval, take, limits, folder=directory)
        except ExportStatusError as error:
            if error.code != EXPORT_FROM_PAST_HWM:
                raise
            _check_not_ahead(state, state_file, error)
            return _returned(state, state_file, progress, journal, save=True)  # a first run's start is kept
        before, state = state, _advance(state, result, window_to, asked)
        progress.saving(state)
        state.save(state_file)
        progress.saved()
        _check_progress(before, state, result)
        caught_up = window_to is None or state.date_from == before.date_from
        if not result.is_truncated and caught_up:
            return _returned(state, state_file, progress, journal)


def _returned(
    state: SyncState, state_file: Path, progress: _Progress, journal: Journal, *, save: bool = False
) -> SyncResult:
    """What the run returns, ``progress.report()``, once the journal that lists it is removed (kept
    when ``progress.held``: the caller removes it once it has handled the result): the last step
    of the flow, with no wait after it (a cancellation cannot land between the removal and the
    return). A run that stops before it leaves the journal for the next."""
    result = progress.report()
    if save:
        state.save(state_file)
    if not progress.held:
        journal.remove()
    progress.returned = True
    return result
