"""``ksef.invoices``: download one invoice, query metadata (every record), export, incremental sync.

The work is done by flows in ``invoice_query`` (the metadata walk), ``export`` (packages) and
``invoice_sync`` (the high-water-mark chain); this module downloads single invoices and holds the
two shells.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksef_client._flows import Call, Flow, Retry, arun, response_of, run
from ksef_client._generated.api.invoices import get_invoice
from ksef_client._generated.models import InvoicePackage
from ksef_client._retry import RetryBudget
from ksef_client.errors import BadRequestError, ExportStatusError
from ksef_client.export import EXPORT_FROM_PAST_HWM, ExportResult, export_flow, unpack_export, usable_folder
from ksef_client.identifiers import validate_ksef_number
from ksef_client.invoice_query import (
    AsyncMetadataPager,
    MetadataCursor,
    MetadataPager,
    WalkHwm,
    build_filters,
    date_bounds,
    metadata_pages,
    next_window_start,
    range_filters,
    reached_hwm,
    restricted_to_hwm,
    utc_now,
    window_end,
    with_window,
)
from ksef_client.invoice_sync import SyncResult, sync_run
from ksef_client.resources.upo import hash_checked

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

__all__ = [
    "AsyncInvoices",
    "AsyncMetadataPager",
    "ExportResult",
    "Invoices",
    "MetadataCursor",
    "MetadataPager",
    "SyncResult",
    "build_filters",
    "get_flow",
]


# GET /invoices/ksef/{ksefNumber}, 400 (the spec): "21165 | Faktura o podanym numerze KSeF nie jest
# jeszcze dostępna. | Faktura o numerze KSeF {ksefNumber} została przetworzona, ale nie jest jeszcze
# dostępna do pobrania. Spróbuj ponownie później." KSeF numbers an invoice before its permanent
# storage (``permanentStorageDate``: "uzupełniana asynchronicznie"), and stores it shortly after.
NOT_YET_AVAILABLE = 21165


def get_flow(ksef_number: str) -> Flow[bytes]:
    """``GET /invoices/ksef/{n}`` with the ``x-ms-meta-hash`` check. A 21165 (numbered, not stored
    yet) is asked again while the client's retry policy allows (its backoff between attempts, one
    budget with the request's own repeats); then its ``BadRequestError`` is raised, with a note
    saying to download the invoice again later."""
    validate_ksef_number(ksef_number)
    budget = RetryBudget()
    while True:
        try:
            call = Call(get_invoice, {"ksef_number": ksef_number}, budget=budget, body="invoice")
            response = response_of((yield call))
            break
        except BadRequestError as error:
            if NOT_YET_AVAILABLE not in error.codes:
                raise
            if not (yield Retry(budget, f"invoice {ksef_number}: not downloadable yet (21165)")):
                error.add_note(
                    f"KSeF has numbered invoice {ksef_number} but not stored it yet (21165), still after "
                    f"{budget.used} repeat(s) of the download, as many as the client's max_retries allows; it "
                    "stores an invoice shortly after numbering it: download it again later (a larger max_retries "
                    "waits longer)"
                )
                raise
    yield from hash_checked(response.content, response.headers, f"invoice {ksef_number}")
    return response.content


def export_to_flow(
    directory: str | Path,
    filters: dict[str, Any],
    client: KSeF | AsyncKSeF,
    only_metadata: bool,
    timeout: float,
    interval: float,
    compression: str = "Zip",
    saved: list[ExportResult] | None = None,
) -> Flow[ExportResult]:
    """``export_flow``, then the package unpacked into ``directory`` (a ``Blocking`` step: seconds
    for a large package, which ``AsyncKSeF`` spends in a worker thread, not on the event loop).

    A range longer than KSeF's 100 days is exported window by window, oldest first, into the same
    directory, until one comes back truncated (it says where to go on from) or the range is done;
    held to KSeF's HWM, until one reaches the HWM (``reached_hwm``): the next would start past it.
    A window whose HWM lies just below its ``to`` (``near_hwm``) is followed by one from that HWM
    (``next_window_start``: an invoice stored later may still be dated between them); a file
    both hold is the same invoice, replaced, and ``joined`` lists it once.
    Each window's result is appended to ``saved`` as soon as its files are in the folder (by the
    unpacking itself, so a call cancelled while a worker thread unpacks still has it): what a
    failed call carries as ``.partial`` (``exporting``). The folder is made and checked first,
    before any request (``usable_folder``)."""
    limits, folder = client.body_limits, Path(directory)
    saved = [] if saved is None else saved
    usable_folder(folder)

    def unpack(ref: str, package: InvoicePackage, archive: Path | None) -> ExportResult:
        result = unpack_export(ref, package, archive, folder, limits, only_metadata)
        saved.append(result)
        return result

    first, end = date_bounds(filters)
    start = first
    while True:
        last = window_end(start, end, utc_now())
        window = with_window(filters, start, last)
        try:
            result = yield from export_flow(
                window, client._public_keys, only_metadata, timeout, interval, unpack, limits, compression, folder
            )
        except ExportStatusError as error:
            if start == first or error.code != EXPORT_FROM_PAST_HWM or not restricted_to_hwm(filters):
                raise
            # The window before ended here, whole, without the HWM (optional in a package) to
            # tell that it reached it: refused as starting past the HWM, there is nothing more yet.
            return joined(saved)
        if result.is_truncated or last is None or last == end:
            return joined(saved)
        if reached_hwm(filters, result.permanent_storage_hwm_date, last):
            return joined(saved)  # the next window would start past KSeF's HWM (export status 420)
        start = next_window_start(filters, result.permanent_storage_hwm_date, last)


@contextlib.contextmanager
def exporting(flow: Flow[ExportResult], saved: list[ExportResult]) -> Iterator[Flow[ExportResult]]:
    """One ``export`` call of either client around ``flow`` (``export_to_flow`` filling
    ``saved``): whatever ends it early (an error, a ``KeyboardInterrupt``, a cancellation) leaves
    as it came, carrying as ``.partial`` the ``ExportResult`` of the files it saved in the folder
    (the windows done, and the files of a package whose moves failed part-way: the
    ``.partial`` ``unpack_export`` gave); nothing saved, nothing is set. The flow is closed on
    the way out, so its clean-up (the downloaded package) runs then."""
    try:
        yield flow
    except BaseException as error:
        inner = getattr(error, "partial", None)
        done = [*saved, inner] if isinstance(inner, ExportResult) else list(saved)
        if done:
            with contextlib.suppress(AttributeError):  # an exception class with __slots__
                error.partial = joined(done)  # type: ignore[attr-defined]
        raise
    finally:
        flow.close()


def joined(results: list[ExportResult]) -> ExportResult:
    """The exports of adjacent windows as one: every file and record once (a record dated at the
    bound of two windows is in both), truncation and dates of the last; ``reference_numbers`` all."""
    if len(results) == 1:
        return results[0]
    last = results[-1]
    records = {str(m["ksefNumber"]): m for result in results for m in result.metadata}
    files = list(dict.fromkeys(f for result in results for f in result.files))
    return ExportResult(
        last.reference_number, last.directory, files, list(records.values()), last.is_truncated,
        last.last_permanent_storage_date, last.permanent_storage_hwm_date, last.extra,
        [result.reference_number for result in results], last.last_invoicing_date, last.last_issue_date,
        last.goes_no_further,
    )  # fmt: skip


class Invoices:
    """Received and issued invoices of the context."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def get(self, ksef_number: str) -> bytes:
        """One invoice's XML by its KSeF number, checked against its ``x-ms-meta-hash``
        (``UPOHashMismatchError``; without the header, returned unchecked with a WARNING logged).

        An invoice KSeF has numbered but not yet stored (400 / 21165 "nie jest jeszcze dostępna")
        is asked for again within the retry policy (``max_retries``, with backoff); still not
        stored then, its ``BadRequestError`` (``21165 in error.codes``) is raised with a note:
        download it again later."""
        return run(get_flow(ksef_number), self._client)

    def query(
        self,
        subject_type: str = "Subject1",
        *,
        date_from: dt.date | dt.datetime,
        date_to: dt.date | dt.datetime | None = None,
        date_type: str = "PermanentStorage",
        page_size: int = 250,
        sort_order: str = "Asc",
        restrict_to_hwm: bool = False,
        cursor: MetadataCursor | None = None,
        **filters: Any,
    ) -> MetadataPager:
        """Every metadata record matching the filters, across pages and 10,000-record windows, each
        once in one walk (also when invoices arriving meanwhile shift the pages; newest first, an
        open range ends where the walk starts). ``QueryLimitError`` when more records share one
        date (by ``Issue`` a day) than one query returns.

        ``date_from``/``date_to``: aware datetimes, or dates (a day in Poland: from its start, to
        its end); a naive datetime is refused with a ``ValueError``. Only a walk with
        ``restrict_to_hwm=True`` (by ``PermanentStorage``) is final: it ends at KSeF's high-water
        mark, ``pager.permanent_storage_hwm_date``, where the next walk starts."""
        body = range_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )
        hwm = WalkHwm(body)
        pages = metadata_pages(body, date_type, page_size, sort_order, hwm)
        pages.check(cursor)
        return MetadataPager(lambda at: run(pages(at), self._client), cursor, hwm, pages.within)

    def export(
        self,
        directory: str | Path,
        subject_type: str = "Subject1",
        *,
        date_from: dt.date | dt.datetime,
        date_to: dt.date | dt.datetime | None = None,
        date_type: str = "PermanentStorage",
        restrict_to_hwm: bool = False,
        only_metadata: bool = False,
        timeout: float = 1800.0,
        interval: float = 5.0,
        compression: str = "Zip",
        **filters: Any,
    ) -> ExportResult:
        """Export matching invoices into ``directory``: ``{ksefNumber}.xml`` files plus metadata.

        ``compression`` is the package KSeF builds: ``"Zip"`` (default) or ``"TarGz"``. The folder
        is made and checked before any request (``OSError`` otherwise). What ends a call that saved
        files in the folder (a later window of a range over 100 days failed, a package's moves
        stopped part-way; a ``KeyboardInterrupt`` too) carries their ``ExportResult`` as
        ``.partial`` (docs/downloading.md, "When an export fails").
        """
        body = range_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )
        saved: list[ExportResult] = []
        flow = export_to_flow(directory, body, self._client, only_metadata, timeout, interval, compression, saved)
        with exporting(flow, saved):
            return run(flow, self._client)

    def sync(
        self,
        subject_type: str,
        state_file: str | Path,
        directory: str | Path,
        *,
        start: dt.date | dt.datetime | None = None,
        timeout: float = 1800.0,
        interval: float = 5.0,
    ) -> SyncResult:
        """Fetch every invoice stored since the last run into ``directory`` (at least once each:
        handle them by KSeF number).

        ``start`` sets where the first run begins; once ``state_file`` exists its mark wins (an
        earlier ``start`` is ignored, a later one or one in the future raises ``ValueError``
        before any request). A ``state_file`` holds one chain: a run for another ``subject_type`` (or, when the client
        logged in itself, another login context) than it was made for raises ``ValueError``
        before any request. One run at a time per ``state_file``: a run locks it (``<state_file>.lock`` beside it) and
        another run on the same file raises ``SyncLockedError`` at once, before any request.
        Every delivered invoice is reported at least once. A run that does not return (an error, a
        ``KeyboardInterrupt``, a cancellation) leaves what it delivered listed in the state file's
        journal (``<state_file>.unreported`` beside it), and the next run reports it first, with
        its own invoices (``SyncResult``). What ends such a run carries the same as ``.partial``
        (a ``SyncResult``; it still propagates), so a caller
        that handles ``.partial`` sees those invoices again from the next run: handle them by KSeF
        number, once each. Raised before the run holds the lock, nothing was delivered and there
        is no ``.partial``: ``SyncLockedError`` has ``None``; the ``ValueError`` for ``start=`` (naive, in
        the future, or missing for a new ``state_file``) and an ``OSError`` making the state folder
        or the lock file have none at all.

        The guarantee ends where this returns: the journal is removed as it returns, so if the
        caller fails while it handles the result (an exception, a killed process), no later run
        reports those invoices again (their files stay in ``directory``). ``syncing`` keeps the
        journal until the caller's block has handled them."""
        with sync_run(self._client, subject_type, state_file, directory, start, timeout, interval) as sync:
            return run(sync.flow, self._client)

    @contextlib.contextmanager
    def syncing(
        self,
        subject_type: str,
        state_file: str | Path,
        directory: str | Path,
        *,
        start: dt.date | dt.datetime | None = None,
        timeout: float = 1800.0,
        interval: float = 5.0,
    ) -> Iterator[SyncResult]:
        """``sync`` whose report the caller acknowledges: ``with ksef.invoices.syncing(...) as
        result: handle(result)``. The run is the same (arguments, state file, lock, errors and
        ``.partial``); the ``SyncResult`` it gives the block is what ``sync`` returns. The journal
        that lists those invoices is removed only when the block ends without an error: an
        exception inside it (or a process killed there) leaves the journal, and the next run
        reports them again, first (at least once: handle them by KSeF number). The state file stays
        locked until the block ends: another run on it raises ``SyncLockedError`` meanwhile."""
        with sync_run(
            self._client, subject_type, state_file, directory, start, timeout, interval, acknowledged_by_caller=True
        ) as sync:
            result = run(sync.flow, self._client)
            yield result
            sync.acknowledge()


class AsyncInvoices:
    """Received and issued invoices of the context (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def get(self, ksef_number: str) -> bytes:
        """One invoice's XML by its KSeF number, as ``Invoices.get`` (the hash check, 21165 retried)."""
        return await arun(get_flow(ksef_number), self._client)

    def query(
        self,
        subject_type: str = "Subject1",
        *,
        date_from: dt.date | dt.datetime,
        date_to: dt.date | dt.datetime | None = None,
        date_type: str = "PermanentStorage",
        page_size: int = 250,
        sort_order: str = "Asc",
        restrict_to_hwm: bool = False,
        cursor: MetadataCursor | None = None,
        **filters: Any,
    ) -> AsyncMetadataPager:
        """Every metadata record matching the filters (``async for``), as ``Invoices.query``."""
        body = range_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )
        hwm = WalkHwm(body)
        pages = metadata_pages(body, date_type, page_size, sort_order, hwm)
        pages.check(cursor)
        return AsyncMetadataPager(lambda at: arun(pages(at), self._client), cursor, hwm, pages.within)

    async def export(
        self,
        directory: str | Path,
        subject_type: str = "Subject1",
        *,
        date_from: dt.date | dt.datetime,
        date_to: dt.date | dt.datetime | None = None,
        date_type: str = "PermanentStorage",
        restrict_to_hwm: bool = False,
        only_metadata: bool = False,
        timeout: float = 1800.0,
        interval: float = 5.0,
        compression: str = "Zip",
        **filters: Any,
    ) -> ExportResult:
        """Export matching invoices into ``directory`` (``compression``: ``"Zip"`` or ``"TarGz"``),
        as ``Invoices.export``; a cancellation carries ``.partial`` as its errors do."""
        body = range_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )
        saved: list[ExportResult] = []
        flow = export_to_flow(directory, body, self._client, only_metadata, timeout, interval, compression, saved)
        with exporting(flow, saved):
            return await arun(flow, self._client)

    async def sync(
        self,
        subject_type: str,
        state_file: str | Path,
        directory: str | Path,
        *,
        start: dt.date | dt.datetime | None = None,
        timeout: float = 1800.0,
        interval: float = 5.0,
    ) -> SyncResult:
        """Async ``Invoices.sync``: the same runs, state file, journal, lock and reporting. A
        timeout around the call (``asyncio.timeout``, ``anyio.move_on_after``) that swallows the
        cancellation or replaces it with a ``TimeoutError`` loses no report: the next run reports
        what this one delivered. As with ``Invoices.sync``, the guarantee ends where this returns:
        ``syncing`` keeps the journal until the caller has handled the result."""
        with sync_run(self._client, subject_type, state_file, directory, start, timeout, interval) as sync:
            return await arun(sync.flow, self._client)

    @contextlib.asynccontextmanager
    async def syncing(
        self,
        subject_type: str,
        state_file: str | Path,
        directory: str | Path,
        *,
        start: dt.date | dt.datetime | None = None,
        timeout: float = 1800.0,
        interval: float = 5.0,
    ) -> AsyncIterator[SyncResult]:
        """Async ``Invoices.syncing``: ``async with ksef.invoices.syncing(...) as result:
        handle(result)``. The journal is removed only when the block ends without an error; an
        exception inside it, a cancellation included, leaves it for the next run to report again."""
        with sync_run(
            self._client, subject_type, state_file, directory, start, timeout, interval, acknowledged_by_caller=True
        ) as sync:
            result = await arun(sync.flow, self._client)
            yield result
            sync.acknowledge()
