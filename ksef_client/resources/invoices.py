"""``ksef.invoices``: download one invoice, query metadata (every record), export, incremental sync.

The metadata query pages with ``pageOffset``/``hasMore`` and stops at 10,000 records with
``isTruncated``; the pager then restarts the window at the last record's date, offset 0, and
drops the records it already yielded at that date, so callers see each invoice once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, Now, Sleep, StreamDownload, arun, response_of, run
from ksef_client._generated.api.invoices import (
    export_invoices,
    get_invoice,
    get_invoice_export_status,
    query_invoice_metadata,
)
from ksef_client._generated.models import (
    ExportInvoicesResponse,
    InvoiceExportRequest,
    InvoiceExportStatusResponse,
    InvoiceMetadata,
    InvoicePackage,
    InvoicePackagePart,
    InvoiceQueryFilters,
    QueryInvoicesMetadataResponse,
    SortOrder,
)
from ksef_client._generated.types import json_loads
from ksef_client.crypto import SymmetricKey, digest_b64, sha256_b64
from ksef_client.errors import (
    APIConnectionError,
    ExportError,
    PollTimeoutError,
    ResponseFormatError,
    UPOHashMismatchError,
)
from ksef_client.identifiers import validate_ksef_number
from ksef_client.pagination import METADATA_PAGE_SIZE, AsyncPager, Pager, check_page_size
from ksef_client.sending import encryption_for

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

SUBJECT_TYPES = ("Subject1", "Subject2", "Subject3", "SubjectAuthorized")
DATE_TYPES = ("Issue", "Invoicing", "PermanentStorage")
HASH_HEADER = "x-ms-meta-hash"


def build_filters(
    subject_type: str, date_from: dt.datetime, date_to: dt.datetime | None = None, *,
    date_type: str = "PermanentStorage", restrict_to_hwm: bool = False, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """``InvoiceQueryFilters`` as JSON; ``ValueError`` on what KSeF would refuse."""
    if subject_type not in SUBJECT_TYPES:
        raise ValueError(f"subject_type: {subject_type!r} is not one of {', '.join(SUBJECT_TYPES)}")
    if date_type not in DATE_TYPES:
        raise ValueError(f"date_type: {date_type!r} is not one of {', '.join(DATE_TYPES)}")
    start = _aware(date_from)
    end = _aware(date_to) if date_to is not None else None
    if end is not None and (end < start or end - start > dt.timedelta(days=92)):
        raise ValueError("date_to: must be after date_from and at most 3 months later")
    date_range: dict[str, Any] = {"dateType": date_type, "from": start.isoformat()}
    if end is not None:
        date_range["to"] = end.isoformat()
    if restrict_to_hwm:
        date_range["restrictToPermanentStorageHwmDate"] = True
    return {"subjectType": subject_type, "dateRange": date_range, **extra}


def _aware(value: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --- metadata pagination ----------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataCursor:
    """Where a metadata walk stands; save it and pass it back to resume.

    ``date_from`` is the window's start (moved forward when a window is truncated), ``skip`` the
    KSeF numbers already yielded at that instant, ``last``/``at_last`` the latest date seen so far
    and the numbers carrying it.
    """

    date_from: str
    page_offset: int = 0
    skip: tuple[str, ...] = ()
    last: str | None = None
    at_last: tuple[str, ...] = ()


def _record_date(item: InvoiceMetadata, date_type: str) -> str:
    if date_type == "Issue":
        return item.issue_date.isoformat()
    value = item.invoicing_date if date_type == "Invoicing" else item.permanent_storage_date
    return value.isoformat()


def next_metadata_page(
    cursor: MetadataCursor, page: QueryInvoicesMetadataResponse, date_type: str
) -> tuple[list[InvoiceMetadata], MetadataCursor | None]:
    """Pure step of the walk: the records to yield and the next cursor (``None``: done)."""
    items, last, at_last = [], cursor.last, list(cursor.at_last)
    for item in page.invoices:
        when = _record_date(item, date_type)
        if when != last:
            last, at_last = when, []
        at_last.append(item.ksef_number)
        if item.ksef_number not in cursor.skip:
            items.append(item)
    if page.has_more:
        return items, replace(cursor, page_offset=cursor.page_offset + 1, last=last, at_last=tuple(at_last))
    if page.is_truncated:
        if last is None or (last == cursor.date_from and set(at_last) <= set(cursor.skip)):
            raise ResponseFormatError("metadata window truncated without progress (10,000+ records at one instant)")
        return items, MetadataCursor(last, 0, tuple(at_last))
    return items, None


def metadata_page_flow(filters: dict[str, Any], cursor: MetadataCursor, page_size: int, order: str) -> Flow[
    QueryInvoicesMetadataResponse
]:  # fmt: skip
    """One ``POST /invoices/query/metadata`` at the cursor's window and offset."""
    body = dict(filters)
    body["dateRange"] = {**filters["dateRange"], "from": cursor.date_from}
    call = Call(
        query_invoice_metadata,
        {"body": InvoiceQueryFilters.from_dict(body), "page_offset": cursor.page_offset, "page_size": page_size,
         "sort_order": SortOrder(order)},
    )  # fmt: skip
    return parsed(response_of((yield call)), QueryInvoicesMetadataResponse)


# --- download and export ----------------------------------------------------------------------


def get_flow(ksef_number: str) -> Flow[bytes]:
    """``GET /invoices/ksef/{n}`` with the ``x-ms-meta-hash`` check."""
    validate_ksef_number(ksef_number)
    response = response_of((yield Call(get_invoice, {"ksef_number": ksef_number})))
    expected = response.headers.get(HASH_HEADER)
    if expected and sha256_b64(response.content) != expected:
        raise UPOHashMismatchError(f"invoice {ksef_number}: SHA-256 differs from {HASH_HEADER}")
    return response.content


@dataclass
class ExportResult:
    """What an export wrote: the invoice files, their metadata and where the next window starts."""

    reference_number: str
    directory: Path
    files: list[Path]
    metadata: list[dict[str, Any]]
    is_truncated: bool
    last_permanent_storage_date: dt.datetime | None
    permanent_storage_hwm_date: dt.datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ksef_numbers(self) -> list[str]:
        """KSeF numbers of the exported invoices."""
        return [str(m["ksefNumber"]) for m in self.metadata]


def export_flow(
    filters: dict[str, Any], keys: list[Any], only_metadata: bool, timeout: float, interval: float
) -> Flow[tuple[str, InvoicePackage, Path]]:
    """Start an export under a fresh AES key, poll it, download, check and decrypt every part into
    a temporary zip file; returns the reference number, the package description and the zip."""
    key = SymmetricKey.generate()
    body = InvoiceExportRequest.from_dict(
        {
            "encryption": encryption_for(key, keys),
            "filters": filters,
            "onlyMetadata": only_metadata,
            "compressionType": "Zip",
        }
    )
    ref = parsed(response_of((yield Call(export_invoices, {"body": body}))), ExportInvoicesResponse).reference_number
    deadline = (yield Now()) + timeout
    while True:
        status = parsed(
            response_of((yield Call(get_invoice_export_status, {"reference_number": ref}))), InvoiceExportStatusResponse
        )
        if status.status.code != 100:
            break
        if (yield Now()) + interval > deadline:
            raise PollTimeoutError(f"export {ref} still running after {timeout:g} s", status)
        yield Sleep(interval)
    if status.status.code != 200 or not isinstance(status.package, InvoicePackage):
        raise ExportError(f"export {ref} ended with {status.status.code} {status.status.description}")
    if str(status.package.compression_type) != "Zip":  # asked for Zip: anything else is not read as one
        raise ExportError(f"export {ref}: package compressed as {status.package.compression_type}, asked for Zip")
    handle, name = tempfile.mkstemp(suffix=".zip")
    try:
        with os.fdopen(handle, "wb") as out:
            for part in sorted(status.package.parts, key=lambda p: p.ordinal_number):
                yield from _download_part(ref, part, key, out)
    except BaseException:
        os.unlink(name)  # a failed export leaves nothing behind
        raise
    return ref, status.package, Path(name)


PART_ATTEMPTS = 3


def _download_part(ref: str, part: InvoicePackagePart, key: SymmetricKey, out: IO[bytes]) -> Flow[None]:
    """Stream one part into ``out``: decrypted and hashed as it arrives (never whole in memory),
    checked against the package's sizes and hashes. A connection lost in the middle of the body
    starts the part again from its first byte, up to ``PART_ATTEMPTS`` times."""
    start = out.tell()
    for attempt in range(1, PART_ATTEMPTS + 1):
        sink = _DecryptingSink(key, out)
        try:
            yield StreamDownload(part.url, sink.add)
        except APIConnectionError:
            out.seek(start)
            out.truncate()
            if attempt == PART_ATTEMPTS:
                raise
            yield Sleep(attempt)
            continue
        sink.finish()
        if sink.encrypted_size != part.encrypted_part_size or sink.encrypted_hash() != part.encrypted_part_hash:
            raise ExportError(f"export {ref}: part {part.ordinal_number} arrived damaged (size or hash)")
        if sink.plain_hash() != part.part_hash:
            raise ExportError(f"export {ref}: part {part.ordinal_number} decrypts to the wrong hash")
        return


class _DecryptingSink:
    """Takes a part's encrypted bytes chunk by chunk: hashes them, decrypts, writes and hashes the
    plain bytes."""

    def __init__(self, key: SymmetricKey, out: IO[bytes]) -> None:
        self.encrypted_size = 0
        self._out = out
        self._decryptor = key.decryptor()
        self._encrypted, self._plain = hashlib.sha256(), hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.encrypted_size += len(chunk)
        self._encrypted.update(chunk)
        self._write(self._decryptor.update(chunk))

    def finish(self) -> None:
        with contextlib.suppress(ValueError):  # bad padding: the size and hash checks name the part
            self._write(self._decryptor.finalize())

    def encrypted_hash(self) -> str:
        return digest_b64(self._encrypted)

    def plain_hash(self) -> str:
        return digest_b64(self._plain)

    def _write(self, data: bytes) -> None:
        self._plain.update(data)
        self._out.write(data)


def unpack_export(ref: str, package: InvoicePackage, archive: Path, directory: Path) -> ExportResult:
    """Unzip an export package into ``directory`` (names checked: nothing lands outside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    files, metadata = [], []
    try:
        with zipfile.ZipFile(archive) as package_zip:
            for name in package_zip.namelist():
                if name == "_metadata.json":
                    metadata = list(json_loads(package_zip.read(name)).get("invoices", []))
                    continue
                target = directory / Path(name).name
                if Path(name).name != name or not name.endswith(".xml"):
                    raise ExportError(f"export {ref}: unexpected entry {name!r} in the package")
                with package_zip.open(name) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                files.append(target)
    except zipfile.BadZipFile as error:
        raise ExportError(f"export {ref}: the package is not a zip ({error})") from error
    finally:
        archive.unlink(missing_ok=True)
    return ExportResult(
        ref, directory, files, metadata, bool(package.is_truncated),
        _optional_date(package.last_permanent_storage_date), _optional_date(package.permanent_storage_hwm_date),
    )  # fmt: skip


def _optional_date(value: object) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


# --- incremental sync -------------------------------------------------------------------------


@dataclass
class SyncState:
    """The high-water mark of one ``subject_type`` chain and the numbers already taken at it."""

    date_from: str
    seen_at_from: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, start: dt.datetime | None) -> SyncState:
        """Read the state file, or start at ``start`` on the first run."""
        if path.is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(raw["date_from"]), list(raw.get("seen_at_from", [])))
        if start is None:
            raise ValueError(f"state_file {path} does not exist yet: pass start= for the first run")
        return cls(_aware(start).isoformat())

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old state, never a half-written file)."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({"date_from": self.date_from, "seen_at_from": self.seen_at_from}), encoding="utf-8")
        os.replace(tmp, path)


@dataclass
class SyncResult:
    """New invoices written by one ``sync`` run."""

    ksef_numbers: list[str]
    files: list[Path]


def _advance(state: SyncState, result: ExportResult) -> SyncState:
    boundary = result.last_permanent_storage_date if result.is_truncated else result.permanent_storage_hwm_date
    if boundary is None:
        return state
    stamp = boundary.isoformat()
    at = [str(m["ksefNumber"]) for m in result.metadata if _same_instant(m.get("permanentStorageDate"), boundary)]
    if stamp == state.date_from:
        at = sorted(set(at) | set(state.seen_at_from))
    return SyncState(stamp, at)


def _same_instant(raw: object, when: dt.datetime) -> bool:
    try:
        return _aware(dt.datetime.fromisoformat(str(raw))) == _aware(when)
    except ValueError:
        return False


def _keep_new(result: ExportResult, state: SyncState, directory: Path) -> tuple[list[str], list[Path]]:
    seen = set(state.seen_at_from)
    numbers, files = [], []
    for number in result.ksef_numbers:
        source = result.directory / f"{number}.xml"
        if number in seen or not source.is_file():
            continue
        target = directory / source.name
        os.replace(source, target)
        numbers.append(number)
        files.append(target)
    return numbers, files


class Invoices:
    """Received and issued invoices of the context."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def get(self, ksef_number: str) -> bytes:
        """One invoice's XML by its KSeF number."""
        return run(get_flow(ksef_number), self._client)

    def query(
        self, subject_type: str = "Subject1", *, date_from: dt.datetime, date_to: dt.datetime | None = None,
        date_type: str = "PermanentStorage", page_size: int = 250, sort_order: str = "Asc",
        restrict_to_hwm: bool = False, cursor: MetadataCursor | None = None, **filters: Any,
    ) -> Pager[InvoiceMetadata, MetadataCursor]:  # fmt: skip
        """Every metadata record matching the filters, across pages and 10,000-record windows."""
        check_page_size(page_size, METADATA_PAGE_SIZE)
        body = build_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )

        def fetch(at: MetadataCursor | None) -> tuple[list[InvoiceMetadata], MetadataCursor | None]:
            position = at or MetadataCursor(body["dateRange"]["from"])
            page = run(metadata_page_flow(body, position, page_size, sort_order), self._client)
            return next_metadata_page(position, page, date_type)

        return Pager(fetch, cursor)

    def export(
        self, directory: str | Path, subject_type: str = "Subject1", *, date_from: dt.datetime,
        date_to: dt.datetime | None = None, date_type: str = "PermanentStorage", restrict_to_hwm: bool = False,
        only_metadata: bool = False, timeout: float = 1800.0, interval: float = 5.0, **filters: Any,
    ) -> ExportResult:  # fmt: skip
        """Export matching invoices into ``directory``: ``{ksefNumber}.xml`` files plus metadata."""
        body = build_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )
        keys = self._client.auth.public_key_certificates()
        ref, package, archive = run(export_flow(body, keys, only_metadata, timeout, interval), self._client)
        return unpack_export(ref, package, archive, Path(directory))

    def sync(
        self, subject_type: str, state_file: str | Path, directory: str | Path, *, start: dt.datetime | None = None,
        timeout: float = 1800.0, interval: float = 5.0,
    ) -> SyncResult:  # fmt: skip
        """Fetch every invoice stored since the last run into ``directory``, each exactly once."""
        state_path, target = Path(state_file), Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        state = SyncState.load(state_path, start)
        numbers: list[str] = []
        files: list[Path] = []
        while True:
            with tempfile.TemporaryDirectory(dir=target) as work:
                result = self.export(
                    work, subject_type, date_from=dt.datetime.fromisoformat(state.date_from),
                    restrict_to_hwm=True, timeout=timeout, interval=interval,
                )  # fmt: skip
                new_numbers, new_files = _keep_new(result, state, target)
            numbers += new_numbers
            files += new_files
            state = _advance(state, result)
            state.save(state_path)
            if not result.is_truncated:
                return SyncResult(numbers, files)


class AsyncInvoices:
    """Received and issued invoices of the context (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def get(self, ksef_number: str) -> bytes:
        """One invoice's XML by its KSeF number."""
        return await arun(get_flow(ksef_number), self._client)

    def query(
        self, subject_type: str = "Subject1", *, date_from: dt.datetime, date_to: dt.datetime | None = None,
        date_type: str = "PermanentStorage", page_size: int = 250, sort_order: str = "Asc",
        restrict_to_hwm: bool = False, cursor: MetadataCursor | None = None, **filters: Any,
    ) -> AsyncPager[InvoiceMetadata, MetadataCursor]:  # fmt: skip
        """Every metadata record matching the filters (``async for``)."""
        check_page_size(page_size, METADATA_PAGE_SIZE)
        body = build_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )

        async def fetch(at: MetadataCursor | None) -> tuple[list[InvoiceMetadata], MetadataCursor | None]:
            position = at or MetadataCursor(body["dateRange"]["from"])
            page = await arun(metadata_page_flow(body, position, page_size, sort_order), self._client)
            return next_metadata_page(position, page, date_type)

        return AsyncPager(fetch, cursor)

    async def export(
        self, directory: str | Path, subject_type: str = "Subject1", *, date_from: dt.datetime,
        date_to: dt.datetime | None = None, date_type: str = "PermanentStorage", restrict_to_hwm: bool = False,
        only_metadata: bool = False, timeout: float = 1800.0, interval: float = 5.0, **filters: Any,
    ) -> ExportResult:  # fmt: skip
        """Export matching invoices into ``directory``."""
        body = build_filters(
            subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **filters
        )
        keys = await self._client.auth.public_key_certificates()
        ref, package, archive = await arun(export_flow(body, keys, only_metadata, timeout, interval), self._client)
        return unpack_export(ref, package, archive, Path(directory))
