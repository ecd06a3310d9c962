"""Invoice exports: start an export under a fresh key, wait for the package, download every part
(streamed, decrypted and hash-checked as it arrives) and unpack it."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import gzip
import hashlib
import io
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

from ksef_client._body import BodyLimits
from ksef_client._core import parsed
from ksef_client._durable import make_folders
from ksef_client._flows import Call, Flow, Retry, StreamDownload, blocking, poll_flow, response_of
from ksef_client._generated.api.invoices import export_invoices, get_invoice_export_status
from ksef_client._generated.models import (
    ExportInvoicesResponse,
    InvoiceExportRequest,
    InvoiceExportStatusResponse,
    InvoicePackage,
    InvoicePackagePart,
)
from ksef_client._generated.types import json_loads
from ksef_client._moving import check_targets, move_in
from ksef_client._paths import checked_name, file_in
from ksef_client._retry import RetryBudget
from ksef_client._storage import link_usable
from ksef_client._tar import NotPlainFile, TarFormatError, TarMember, finish, shown, tar_members
from ksef_client._zipdirectory import central_directory_size
from ksef_client.crypto import PublicKeyCertificate, SymmetricKey, digest_b64, encryption_for
from ksef_client.errors import (
    APIConnectionError,
    ExportError,
    ExportStatusError,
    PermissionDeniedError,
    ResponseTooLargeError,
    UnsafePathError,
)
from ksef_client.invoice_query import utc_now
from ksef_client.resources.auth import with_keys

if TYPE_CHECKING:
    from ksef_client._tokens import KeyCache

T = TypeVar("T")

EXPORT_RUNNING = 100
EXPORT_DONE = 200
# InvoiceExportStatusResponse.status (spec 2.9.0): "420 | Zakres filtrowania wykracza poza
# dostępny zakres danych | Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate
# przy włączonym restrictToPermanentStorageHwmDate".
EXPORT_FROM_PAST_HWM = 420


def _failed(ref: str, code: int, description: str) -> ExportStatusError:
    if code == EXPORT_FROM_PAST_HWM:
        message = (
            f"export {ref} ended with 420 {description}: its dateRange.from is later than KSeF's "
            "PermanentStorageHwmDate, where restrict_to_hwm stops it (nothing from then on is complete yet); "
            "ask again later, or without restrict_to_hwm"
        )
    else:
        message = f"export {ref} ended with {code} {description}"
    return ExportStatusError(message, code, description)


@dataclass
class ExportResult:
    """What an export wrote: the invoice files, their metadata and where the next window starts.

    A truncated export (``is_truncated``) goes on from the date of the last invoice it holds, the
    one of the export's ``date_type``: ``last_permanent_storage_date`` (``PermanentStorage``),
    ``last_invoicing_date`` (``Invoicing``) or ``last_issue_date`` (``Issue``, a day); KSeF gives
    each "wyłącznie wtedy, gdy paczka została ucięta" and the export filtered by that date type,
    ``None`` otherwise. ``permanent_storage_hwm_date``: below it KSeF's set is complete
    (``PermanentStorage`` only). ``goes_no_further``: truncated, and every invoice of the package
    has that last date, so going on from it would fetch the same invoices again (more invoices
    share the date than a package holds: a day of ``Issue`` dates, a batch session's one
    ``Invoicing`` date); another date type (``PermanentStorage``) gets past them.

    A range over KSeF's 100 days is exported in windows: ``reference_numbers`` are their exports,
    oldest first; ``reference_number`` and the truncation and dates are the last one's."""

    reference_number: str
    directory: Path
    files: list[Path]
    metadata: list[dict[str, Any]]
    is_truncated: bool
    last_permanent_storage_date: dt.datetime | None
    permanent_storage_hwm_date: dt.datetime | None
    extra: dict[str, Any] = field(default_factory=dict)
    reference_numbers: list[str] = field(default_factory=list)
    last_invoicing_date: dt.datetime | None = None
    last_issue_date: dt.date | None = None
    goes_no_further: bool = False

    def __post_init__(self) -> None:
        if not self.reference_numbers:
            self.reference_numbers = [self.reference_number]

    @property
    def ksef_numbers(self) -> list[str]:
        """KSeF numbers of the exported invoices."""
        return [str(m["ksefNumber"]) for m in self.metadata]


def _status_flow(ref: str) -> Flow[InvoiceExportStatusResponse]:
    call = Call(get_invoice_export_status, {"reference_number": ref})
    return parsed(response_of((yield call)), InvoiceExportStatusResponse)


def export_flow(
    filters: dict[str, Any],
    keys: KeyCache,
    only_metadata: bool,
    timeout: float,
    interval: float,
    take: Callable[[str, InvoicePackage, Path | None], T],
    limits: BodyLimits | None = None,
    compression: str = "Zip",
    folder: Path | None = None,
) -> Flow[T]:
    """Start an export under a fresh AES key, poll it, download, check and decrypt every part into
    a temporary file, and hand it to ``take(reference number, package description, package)``, a
    ``Blocking`` step (unpacking: seconds, in a worker thread for ``AsyncKSeF``); returns what
    ``take`` returns (``compression``: KSeF's ``Zip`` or ``TarGz``). An export that matched no
    invoice has no part (``_check_no_parts``): ``take`` gets ``None`` for the package, nothing is
    downloaded.

    The package (decrypted: invoices in clear, up to KSeF's 1 GB) is written in ``folder`` (the
    target folder, checked by ``usable_folder`` before the export starts: not the system's
    temporary folder, which nothing checked and which may be memory), as ``.ksef-export-*.zip``
    or ``.tar.gz``; ``None``: the system's temporary folder. A write that fails there raises an
    ``OSError`` naming the file (``_not_written``). It is deleted on every way out: a failed
    download, ``take`` done or failed, and the flow closed while it waits for ``take`` (a call
    cancelled before a worker thread took the work never runs it)."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression: one of {sorted(COMPRESSIONS)}, not {compression!r}")
    key = SymmetricKey.generate()

    def start(certificates: list[PublicKeyCertificate]) -> Flow[str]:
        request = {"filters": filters, "onlyMetadata": only_metadata, "compressionType": compression}
        body = InvoiceExportRequest.from_dict({"encryption": encryption_for(key, certificates), **request})
        answer = parsed(response_of((yield Call(export_invoices, {"body": body}))), ExportInvoicesResponse)
        return answer.reference_number

    ref = yield from with_keys(keys, start)  # a refused (rotated) key: fetched again, started once more
    status = yield from poll_flow(
        lambda: _status_flow(ref),
        lambda s: s.status.code != EXPORT_RUNNING,
        lambda s: f"export {ref} still running",
        timeout,
        interval,
    )
    if status.status.code != EXPORT_DONE or not isinstance(status.package, InvoicePackage):
        raise _failed(ref, status.status.code, status.status.description)
    if str(status.package.compression_type) != compression:  # read only as what was asked for
        raise ExportError(
            f"export {ref}: package compressed as {status.package.compression_type}, asked for {compression}"
        )
    if not status.package.parts:  # an export that matched nothing: no package to download
        _check_no_parts(ref, status.package)
        return (yield from blocking(take, ref, status.package, None))
    _check_part_sizes(ref, status.package.parts, (limits or BodyLimits()).export_package)
    handle, name = tempfile.mkstemp(suffix=COMPRESSIONS[compression], prefix=UNPACKING_PREFIX, dir=folder)
    package = Path(name)
    try:
        with _writing(ref, package, DOWNLOADED, handle) as out:
            links = _PartLinks(ref, status.package.parts)
            for ordinal in sorted(links.parts):
                yield from _download_part(ref, ordinal, links, key, out)
        return (yield from blocking(take, ref, status.package, package))
    finally:
        package.unlink(missing_ok=True)


def _check_no_parts(ref: str, package: InvoicePackage) -> None:
    """A package without parts holds no invoice. KSeF answers an export that matches nothing
    with ``"invoiceCount": 0, "size": 0, "parts": []`` (CIRFMF/ksef-api#466: "Przy eksporcie, jeżeli
    nie ma żadnych faktur to w `package` będzie: [...]"); the spec allows it (``InvoicePackage.size``
    has ``minimum: 0``, each ``InvoicePackagePart.partSize`` ``minimum: 1``). One that lists
    invoices and gives no part to download them from is damaged."""
    if package.invoice_count != 0:
        raise ExportError(
            f"export {ref}: the package lists {package.invoice_count!r} invoice(s) but no part to download them from"
        )


def _check_part_sizes(ref: str, parts: list[InvoicePackagePart], cap: int) -> None:
    """Each part declares a size in whole bytes, none negative (a negative one would cancel
    another's in the sum), and together (so each one) at most ``cap``: all before any download."""
    for part in parts:
        size = part.encrypted_part_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ExportError(f"export {ref}: part {part.ordinal_number!r} declares a size of {size!r} bytes")
        if size > cap:
            raise ExportError(f"export {ref}: part {part.ordinal_number} of {size} bytes, {_over_cap(cap)}")
    declared = sum(part.encrypted_part_size for part in parts)
    if declared > cap:
        raise ExportError(f"export {ref}: package of {declared} bytes, {_over_cap(cap)}")


def _over_cap(cap: int) -> str:
    return f"more than the cap of {cap} (BodyLimits.export_package)"


def _download_part(ref: str, ordinal: int, links: _PartLinks, key: SymmetricKey, out: _Written) -> Flow[None]:
    """Stream part ``ordinal`` into ``out``: decrypted and hashed as it arrives (never whole in
    memory), checked against the package's sizes and hashes. A connection lost in the middle of
    the body starts the part again from its first byte, as often as the retry policy allows (the
    part's one budget counts these restarts and the transport's repeats of its GET alike).

    Its link comes from ``links``, renewed by a fresh status read (``_PartLinks.refresh``) when it
    expires within 30 seconds (``link_usable``) before the part is fetched, and when the storage
    refuses it (403, as Azure answers an expired signature). A link of a fresh read is used
    whatever its date says (this computer's clock may be ahead of KSeF's); refused too, it is an
    ``ExportError``: no loop of status reads."""
    start = out.tell()
    budget = RetryBudget()
    if not links.usable(ordinal):
        yield from links.refresh(ordinal)
    while True:
        part = links.parts[ordinal]
        sink = _DecryptingSink(key, out, part.encrypted_part_size, f"export {ref} part {ordinal}")
        try:
            yield StreamDownload(part.url, sink.add, budget)
            break
        except PermissionDeniedError as error:
            out.seek(start)
            out.truncate()
            if ordinal in links.fresh:
                raise ExportError(
                    f"export {ref}: the storage refused part {ordinal} (HTTP 403) with a link the export's status "
                    f"gave just before (expiring {_shown_date(part.expiration_date)}); the package may have expired "
                    "(packageExpirationDate): export again"
                ) from error
            yield from links.refresh(ordinal)
        except APIConnectionError as error:
            out.seek(start)
            out.truncate()
            links.fresh.discard(ordinal)  # time passes: a 403 after this may be an expiry again
            if not (yield Retry(budget, f"export {ref} part {ordinal}")):
                raise error
    sink.finish()
    if sink.encrypted_size != part.encrypted_part_size or sink.encrypted_hash() != part.encrypted_part_hash:
        raise ExportError(f"export {ref}: part {ordinal} arrived damaged (size or hash)")
    if sink.plain_hash() != part.part_hash:
        raise ExportError(f"export {ref}: part {ordinal} decrypts to the wrong hash")


# How long the links of a status read are used whatever their dates say (``_PartLinks.usable``).
LINKS_READ_RECENTLY = dt.timedelta(minutes=5)


class _PartLinks:
    """The links of an export's parts, by ordinal number; ``fresh``: the part a status read was
    made for (its link, refused too, ends the export: no loop of reads), ``read_at`` when.

    A part's link expires (InvoicePackagePart.expirationDate: "Po upływie tego momentu link
    przestaje być aktywny") and every status read gives new ones (url: "Link jest generowany
    dynamicznie w momencie odpytania o status operacji eksportu"): one read renews the links of
    every part, which the parts after it use while their dates (or the read's recency) allow."""

    def __init__(self, ref: str, parts: list[InvoicePackagePart]) -> None:
        self.ref = ref
        self.parts = {part.ordinal_number: part for part in parts}
        if len(self.parts) != len(parts):
            raise ExportError(f"export {ref}: parts that share an ordinal number in the package")
        self.fresh: set[int] = set()
        self.read_at: dt.datetime | None = None

    def usable(self, ordinal: int) -> bool:
        """Whether the part's link is used as it is: read for this part, read by a status read of
        the last ``LINKS_READ_RECENTLY`` (a clock ahead of KSeF's makes fresh links look expired:
        one read then serves every part, not one read per part), expiring later than in 30
        seconds, or relative (no status read makes it absolute). A link used so and refused (403)
        is read again for its part: its download may come long after the read that gave it."""
        part = self.parts[ordinal]
        absolute = isinstance(part.url, str) and part.url.startswith(("https://", "http://"))
        now = utc_now()
        recent = self.read_at is not None and now - self.read_at < LINKS_READ_RECENTLY
        return ordinal in self.fresh or recent or not absolute or link_usable(part.url, part.expiration_date, now)

    def refresh(self, ordinal: int) -> Flow[None]:
        """Read the export's status again for part ``ordinal`` and take its links (that part's
        fresh). It must still be done (210: the package expired) and hold the same parts, each of
        the same sizes and hashes: a package that changed between two reads is refused."""
        status = yield from _status_flow(self.ref)
        if status.status.code != EXPORT_DONE or not isinstance(status.package, InvoicePackage):
            raise _failed(self.ref, status.status.code, status.status.description)
        parts = {part.ordinal_number: part for part in status.package.parts}
        if len(parts) != len(status.package.parts) or {n: _identity(p) for n, p in parts.items()} != {
            n: _identity(p) for n, p in self.parts.items()
        }:
            raise ExportError(
                f"export {self.ref}: its parts are not the same on a second read of its status (asked for fresh "
                "links): a part's size or hash changed, or parts came or went"
            )
        self.parts, self.fresh, self.read_at = parts, {ordinal}, utc_now()


def _identity(part: InvoicePackagePart) -> tuple[object, ...]:
    return (part.part_size, part.part_hash, part.encrypted_part_size, part.encrypted_part_hash)


def _shown_date(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else repr(value)


class _Written:
    """A file being written, ``path``, whose failed writes raise ``_write_failure``'s error (``what``
    names the file in it): a full disk or a permission, never taken for a damaged package. Seeks
    and truncates go to the file as they are."""

    def __init__(self, ref: str, out: IO[bytes], path: Path, what: str) -> None:
        self.ref, self.out, self.path, self.what = ref, out, path, what

    def write(self, data: bytes) -> None:
        try:
            self.out.write(data)
        except OSError as error:
            raise _write_failure(self.ref, error, self.path, self.what) from error

    def tell(self) -> int:
        return self.out.tell()

    def seek(self, offset: int) -> None:
        self.out.seek(offset)

    def truncate(self) -> None:
        self.out.truncate()


@contextmanager
def _writing(ref: str, path: Path, what: str, handle: int | None = None) -> Iterator[_Written]:
    """``path`` open for writing (``handle``: its descriptor, the file made already), as
    ``_Written``: a failure to make, write or close it (a full disk, a permission) raises
    ``_not_written``'s ``OSError``, carried as ``_WriteFailed`` for an invoice file being unpacked
    (``what`` is ``UNPACKED``). When the body raises, the file is closed with its close's failure
    ignored (a full disk fails the flush of what is left in the buffer again): what ended the
    writing is what is raised. A file whose writing failed is left to whoever removes it (the
    unpacking folder, the downloaded package: nothing of it reaches the target folder)."""
    try:
        out = open(path, "wb") if handle is None else os.fdopen(handle, "wb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise _write_failure(ref, error, path, what) from error
    try:
        yield _Written(ref, out, path, what)
    except BaseException:
        with contextlib.suppress(OSError):
            out.close()
        raise
    try:
        out.close()  # the buffer's last bytes: a full disk may show only here
    except OSError as error:
        raise _write_failure(ref, error, path, what) from error


# What ``_not_written`` names: the file of the package downloaded, or one of its invoice files.
DOWNLOADED = "the package being downloaded (KSeF and the download are not at fault)"
UNPACKED = "an invoice file of the package (KSeF's package is not at fault: its parts' hashes were checked)"


def _write_failure(ref: str, error: OSError, path: Path, what: str) -> Exception:
    """``_not_written``'s ``OSError`` for ``error``; for an invoice file being unpacked (``what``
    is ``UNPACKED``), a ``_WriteFailed`` that carries it past the unpacking's ``DAMAGED``."""
    named = _not_written(ref, error, path, what)
    return _WriteFailed(named, error) if what == UNPACKED else named


def _not_written(ref: str, error: OSError, path: Path, what: str) -> OSError:
    """The ``OSError`` of a write of ``path`` that failed with ``error``: of its kind (the same
    ``errno``: ``PermissionError`` for ``EACCES``...), naming the file (``filename``), saying this
    computer could not write ``what``, and that nothing of the package was kept."""
    reason = error.strerror or str(error) or type(error).__name__
    text = (
        f"{reason}; export {ref}: this computer could not write {what}; nothing of the package was kept: make "
        "room or fix the folder, and try again"
    )
    if error.errno is None:
        return OSError(f"{text}: {str(path)!r}")
    return OSError(error.errno, text, str(path))


class _DecryptingSink:
    """Takes a part's encrypted bytes chunk by chunk: hashes them, decrypts, writes and hashes the
    plain bytes."""

    def __init__(self, key: SymmetricKey, out: _Written, declared: int, what: str) -> None:
        self.encrypted_size = 0
        self._declared, self._what = declared, what
        self._out = out
        self._decryptor = key.decryptor()
        self._encrypted, self._plain = hashlib.sha256(), hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.encrypted_size += len(chunk)
        if self.encrypted_size > self._declared:  # no need to read on: it is damaged already
            raise ExportError(f"{self._what}: more than the {self._declared} bytes the package declares")
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


def unpack_export(
    ref: str,
    package: InvoicePackage,
    archive: Path | None,
    directory: Path,
    limits: BodyLimits | None = None,
    only_metadata: bool = False,
) -> ExportResult:
    """Unpack an export package (zip or tar.gz, as the package says) into ``directory``. Nothing
    from the package is trusted: each entry must be a regular file named ``<KSeF number>.xml``
    (once) or ``_metadata.json``, there are at most as many invoice files as the package's
    ``invoiceCount`` (none with ``only_metadata``; never more than ``limits.export_entries``),
    every size is capped (``limits``) while it is inflated, the invoice files together too
    (``limits.export_unpacked``), and the metadata must be KSeF's
    ``{"invoices": [...]}`` with a valid KSeF number in each record.

    The package must also be whole: ``_metadata.json`` present (KSeF always includes it), listing
    as many invoices as the package's ``invoiceCount``, and exactly the invoices whose files are in
    the package (no file at all with ``only_metadata``), each file's SHA-256 its record's
    ``invoiceHash`` (hashed as it is written). Anything else is ``ExportError``.

    The package is unpacked into a temporary folder inside ``directory`` and its files are moved
    in only once it is checked whole, and every file's name in ``directory`` is checked free
    (``check_targets``: no folder, link or file this user may not replace there): a refused
    package leaves ``directory`` as it was (the files of an earlier export of the same dates
    included). A file of the package replaces a file of the same name, which holds the same
    invoice (a KSeF number names one invoice). A move that still fails (a folder put in the way
    meanwhile, a disk error) raises ``ExportError`` naming the files moved in and those not;
    what ends the moves (that error, a ``KeyboardInterrupt``) carries as ``.partial`` the
    ``ExportResult`` of the files moved in.

    ``archive`` ``None``: KSeF sent no part, the package of an export that matched no invoice
    (``export_flow``): the result is empty and ``directory`` is not touched."""
    if archive is None:
        return _result(ref, directory, package, [], [])
    limits = limits or BodyLimits()
    make_folders(directory)
    try:
        with tempfile.TemporaryDirectory(prefix=UNPACKING_PREFIX, dir=directory) as work:
            metadata, moves = _unpack_into(ref, package, archive, Path(work), directory, limits, only_metadata)
            check_targets(ref, directory, [target for _, target in moves])
            files: list[Path] = []
            try:
                move_in(ref, moves, files)
            except BaseException as error:
                with contextlib.suppress(AttributeError):  # an exception class with __slots__
                    error.partial = _moved_part(ref, directory, files, metadata)  # type: ignore[attr-defined]
                raise
    finally:
        archive.unlink(missing_ok=True)
    return _result(ref, directory, package, files, metadata)


def _moved_part(ref: str, directory: Path, files: list[Path], metadata: list[dict[str, Any]]) -> ExportResult:
    """What a package whose moves stopped part-way saved: ``files`` and their records. It says
    nowhere to go on from (not truncated, no dates): the package's invoices after them are not
    in the folder."""
    names = {file.name for file in files}
    records = [record for record in metadata if f"{record['ksefNumber']}.xml" in names]
    return ExportResult(ref, directory, files, records, False, None, None)


def _result(
    ref: str, directory: Path, package: InvoicePackage, files: list[Path], metadata: list[dict[str, Any]]
) -> ExportResult:
    """The ``ExportResult`` of a package whose ``files`` are in ``directory``."""
    result = ExportResult(
        ref,
        directory,
        files,
        metadata,
        bool(package.is_truncated),
        _optional_date(package.last_permanent_storage_date),
        _optional_date(package.permanent_storage_hwm_date),
        last_invoicing_date=_optional_date(package.last_invoicing_date),
        last_issue_date=_optional_day(package.last_issue_date),
    )
    result.goes_no_further = result.is_truncated and _all_dated_last(result)
    return result


# The metadata record's field of each last date a truncated package gives (one, of its date type).
_DATE_FIELDS = (
    ("last_permanent_storage_date", "permanentStorageDate"),
    ("last_invoicing_date", "invoicingDate"),
    ("last_issue_date", "issueDate"),
)


def _all_dated_last(result: ExportResult) -> bool:
    """Whether every invoice of the package has the last date it gives (``goes_no_further``)."""
    for attribute, name in _DATE_FIELDS:
        last = getattr(result, attribute)
        if last is not None:
            kind = dt.datetime if isinstance(last, dt.datetime) else dt.date
            return bool(result.metadata) and all(_read_date(m.get(name), kind) == last for m in result.metadata)
    return False


def _read_date(value: object, kind: type[dt.date]) -> dt.date | None:
    try:
        return kind.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# The temporary folder a package is unpacked into, inside the target folder (so that moving a
# file in is a rename on the same file system). A KSeF number never starts with a dot.
UNPACKING_PREFIX = ".ksef-export-"


def usable_folder(directory: Path) -> None:
    """Make ``directory`` (and its parents) and check that a package can be unpacked in it (a
    temporary folder made and removed there), before an export is started: an unusable folder
    must not cost one of KSeF's 20 exports an hour and a download of up to 1 GB. ``OSError``
    otherwise (``NotADirectoryError`` for a file of that name), nothing asked of KSeF. The folders
    it makes are flushed into their parents (``make_folders``): ``sync`` saves its state past the
    files it moves in here."""
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the export's target folder is a file", str(directory))
    make_folders(directory)
    with tempfile.TemporaryDirectory(prefix=UNPACKING_PREFIX, dir=directory):
        pass


def _unpack_into(
    ref: str,
    package: InvoicePackage,
    archive: Path,
    work: Path,
    directory: Path,
    limits: BodyLimits,
    only_metadata: bool,
) -> tuple[list[dict[str, Any]], list[tuple[Path, Path]]]:
    """Write the package's invoice files into the empty folder ``work`` in one pass, each entry
    checked as it comes (name, count, size); then check the package is whole. Returns the
    metadata records and, in archive order, each file written with the file in ``directory`` it
    is to be moved to (all checked before the first is moved)."""
    metadata: list[dict[str, Any]] | None = None
    hashes: dict[str, str] = {}  # each invoice file's SHA-256 (Base64, as KSeF writes it), in archive order
    seen: set[str] = set()
    caps = _Caps.of(ref, package, limits, only_metadata)
    try:
        with _entries(ref, archive, str(package.compression_type), limits.export_entries) as entries:
            for name, declared, open_entry in entries:
                _check_entry(ref, name, seen, caps)
                if name == METADATA_FILE:
                    raw = _inflate(ref, open_entry, name, declared, "metadata", limits.metadata)
                    metadata = _metadata(ref, raw)
                    continue
                number = name.removesuffix(".xml")
                with open_entry() as source, _writing(ref, file_in(work, number), UNPACKED) as out:
                    hashes[number] = _copy_capped(
                        ref, source, out, name, declared, limits.invoice, number=number, caps=caps
                    )
        if metadata is None:
            raise ExportError(
                f"export {ref}: the package has no {METADATA_FILE} (KSeF always includes it), so its "
                f"{package.invoice_count} invoice(s) cannot be checked; nothing was kept"
            )
        _check_whole(ref, package, metadata, hashes, only_metadata)
        moves = [(file_in(work, number), file_in(directory, number)) for number in hashes]
    except NotPlainFile as error:
        raise ExportError(f"export {ref}: entries that are not plain files: {shown(error.name)}") from None
    except _WriteFailed as failed:  # before DAMAGED: a full disk is no damaged package
        raise failed.error from failed.cause
    except DAMAGED as error:
        raise ExportError(f"export {ref}: the package cannot be read ({type(error).__name__}: {error})") from error
    except (UnsafePathError, ResponseTooLargeError) as error:
        raise ExportError(f"export {ref}: {error}") from error
    return metadata, moves


# What reading a damaged package raises: zipfile (a bad zip, a local header asking for what it
# cannot do), gzip and zlib (a damaged stream), the tar reader, a file that ends too soon. Its
# ``OSError`` is reading's only (``BadGzipFile``, a zip's seek out of the file): a failed write of
# an invoice file is ``_WriteFailed`` (``_writing``), raised as the ``OSError`` it is.
DAMAGED = (zipfile.BadZipFile, TarFormatError, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


class _WriteFailed(Exception):
    """A write of an invoice file failed with ``cause``: ``error`` is ``_not_written``'s
    ``OSError`` for it, carried past ``DAMAGED`` (which takes every other ``OSError`` raised while
    the package is read) and raised as it is."""

    def __init__(self, error: OSError, cause: OSError) -> None:
        super().__init__(str(error))
        self.error, self.cause = error, cause


def _check_whole(
    ref: str, package: InvoicePackage, metadata: list[dict[str, Any]], hashes: dict[str, str], only_metadata: bool
) -> None:
    """``_metadata.json`` lists ``invoiceCount`` invoices, and the package holds a file for each of
    them and for no other (no file at all in a metadata-only export), whose SHA-256 (``hashes``)
    is its record's ``invoiceHash``.

    InvoiceMetadata.invoiceHash (spec 2.9.0, required): "Skrót SHA256 faktury, zakodowany w
    formacie Base64". The parts' hashes are the server's own, taken over what it packed: a file
    that holds another invoice than its name says (a packing bug) would pass them, and go into the
    books under the wrong KSeF number."""
    present = set(hashes)
    expected = set() if only_metadata else {str(record["ksefNumber"]) for record in metadata}
    missing, extra = sorted(expected - present), sorted(present - expected)
    wrong = sorted(
        str(record["ksefNumber"])
        for record in metadata
        if str(record["ksefNumber"]) in present and record.get("invoiceHash") != hashes[str(record["ksefNumber"])]
    )
    problems = []
    if len(metadata) != package.invoice_count:
        problems.append(f"it lists {len(metadata)} invoice(s), the package's invoiceCount is {package.invoice_count}")
    if missing:
        problems.append(f"no file for {len(missing)} listed invoice(s): {_some(missing)}")
    if extra:
        where = "in a metadata-only package" if only_metadata else "not listed in it"
        problems.append(f"{len(extra)} invoice file(s) {where}: {_some(extra)}")
    if wrong:
        problems.append(
            f"the file of {len(wrong)} invoice(s) is not what its record's invoiceHash (SHA-256) says: {_some(wrong)}"
        )
    if problems:
        raise ExportError(
            f"export {ref}: the package does not match its {METADATA_FILE}: {'; '.join(problems)}; nothing was kept"
        )


def _some(numbers: list[str], count: int = 10) -> str:
    more = f" and {len(numbers) - count} more" if len(numbers) > count else ""
    return ", ".join(numbers[:count]) + more


# KSeF's package formats and the suffix of the temporary file each is downloaded into.
COMPRESSIONS = {"Zip": ".zip", "TarGz": ".tar.gz"}


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


# An entry of a package: its name, the size it declares, and how to open it for reading.
Opener = Callable[[], AbstractContextManager[_Readable]]
Entry = tuple[str, int, Opener]
# Compression methods of a zip entry that are read: KSeF's packages are deflated.
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


# A central directory record of a package: 46 bytes, the name ("<KSeF number>.xml", some 40) and
# extra fields (ZIP64 sizes, timestamps): about 130 bytes; twice that is the bound per entry.
DIRECTORY_BYTES_PER_ENTRY = 256


@dataclass
class _Caps:
    """What one package may hold as it is unpacked: ``most`` invoice files (``why``: whose limit
    that is) and, together, ``left`` more bytes of them (of ``BodyLimits.export_unpacked``).

    Both bound a package of many small entries that each inflate to the per-file cap (a zip bomb
    of 10,000 entries of 16 MiB of zeros: 165 MB that would write 160 GiB). The count is known
    before anything is read: the package's ``invoiceCount`` (none with ``only_metadata``: KSeF's
    package is then "_metadata.json bez faktur")."""

    ref: str
    most: int
    why: str
    limit: int
    left: int

    @classmethod
    def of(cls, ref: str, package: InvoicePackage, limits: BodyLimits, only_metadata: bool) -> _Caps:
        """The caps of ``package``: the fewer of its ``invoiceCount`` and ``export_entries``."""
        count = package.invoice_count
        if only_metadata:
            most, why = 0, "none in a metadata-only package"
        elif isinstance(count, int) and 0 <= count < limits.export_entries:
            most, why = count, f"the package's invoiceCount is {count}"
        else:
            most, why = limits.export_entries, "BodyLimits.export_entries; KSeF packs at most 10,000"
        return cls(ref, most, why, limits.export_unpacked, limits.export_unpacked)

    def inflating(self, size: int) -> None:
        """Count ``size`` more bytes of invoice files, before they are written: ``ExportError``
        once they pass ``export_unpacked``."""
        if size > self.left:
            raise ExportError(
                f"export {self.ref}: the package's invoice files inflate to more than {self.limit} bytes together, "
                "the client's cap (BodyLimits.export_unpacked); nothing was kept. KSeF packs at most 1 GB of "
                "compressed invoices: should a real package need more, raise the cap with "
                "body_limits=BodyLimits(export_unpacked=...)"
            )
        self.left -= size


@contextmanager
def _entries(ref: str, archive: Path, compression: str, most_entries: int) -> Iterator[Iterator[Entry]]:
    """The entries of a zip or tar.gz package, one at a time (a tar.gz is read as a stream: an
    entry must be read before the next is taken). A zip whose central directory is larger than
    ``most_entries`` records need is refused before ``zipfile`` reads it (``_zipdirectory``): a
    bound on the memory that reading takes (the entries themselves are counted as they come,
    against the package's own ``invoiceCount``: ``_Caps``)."""
    if compression == "TarGz":
        with gzip.open(archive, "rb") as stream:
            yield ((m.name, m.size, functools.partial(_same, m)) for m in tar_members(stream))
            finish(stream)
        return
    with open(archive, "rb") as raw:
        size, most = central_directory_size(raw), (most_entries + 1) * DIRECTORY_BYTES_PER_ENTRY
        if size is not None and size > most:
            raise ExportError(
                f"export {ref}: the package's central directory declares {size} bytes, more than {most} for "
                f"{most_entries} invoices and the metadata file (BodyLimits.export_entries); nothing was read"
            )
        with zipfile.ZipFile(raw) as package_zip:
            yield (_zip_entry(ref, package_zip, info) for info in package_zip.infolist())


def _same(member: TarMember) -> TarMember:
    return member


def _zip_entry(ref: str, package_zip: zipfile.ZipFile, info: zipfile.ZipInfo) -> Entry:
    """An entry of a zip package; an encrypted one, or one compressed other than by deflate, is
    refused before zipfile would raise its own errors on it."""
    if info.flag_bits & 0x1:
        raise ExportError(f"export {ref}: entry {shown(info.filename)} is encrypted")
    if info.compress_type not in ZIP_METHODS:
        raise ExportError(
            f"export {ref}: entry {shown(info.filename)} is compressed with method {info.compress_type}, "
            "not deflate as KSeF packs"
        )
    return info.filename, info.file_size, functools.partial(package_zip.open, info)


METADATA_FILE = "_metadata.json"


def _check_entry(ref: str, name: str, seen: set[str], caps: _Caps) -> None:
    """Every entry once, each ``<KSeF number>.xml`` or the metadata file, at most ``caps.most``
    invoice files (and the metadata file)."""
    if name != METADATA_FILE:
        if not name.endswith(".xml"):
            raise ExportError(f"export {ref}: unexpected entry {shown(name)} in the package")
        try:
            checked_name(name.removesuffix(".xml"), "KSeF number")
        except UnsafePathError:
            raise ExportError(f"export {ref}: entry {shown(name)} is not named <KSeF number>.xml") from None
    if name in seen:
        raise ExportError(f"export {ref}: entries that appear twice in the package: {shown(name)}")
    if name != METADATA_FILE and len(seen) - (METADATA_FILE in seen) >= caps.most:
        raise ExportError(
            f"export {ref}: more than {caps.most} invoice file(s) in the package ({caps.why}); nothing was kept"
        )
    seen.add(name)


def _inflate(ref: str, open_entry: Opener, name: str, declared: int, what: str, limit: int) -> bytes:
    out = io.BytesIO()
    with open_entry() as source:
        _copy_capped(ref, source, out, name, declared, limit, what)
    return out.getvalue()


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


def _copy_capped(
    ref: str,
    source: _Readable,
    out: _Writable,
    name: str,
    declared: int,
    limit: int,
    what: str = "invoice",
    number: str | None = None,
    caps: _Caps | None = None,
) -> str:
    """Inflate ``source`` into ``out``, stopping as soon as more than ``limit`` bytes came out (or,
    with ``caps``, more than the package's files may take together); an entry that declares more
    is refused before any of it is inflated (a size declared lower is not believed: a zip's may be
    lower than what inflates). Returns the SHA-256 of what was written, in Base64 (``digest_b64``)."""
    if declared > limit:
        raise _too_large(ref, name, limit, what, number)
    if caps is not None and declared > caps.left:
        caps.inflating(declared)
    written, digest = 0, hashlib.sha256()
    while chunk := source.read(UNPACK_CHUNK):
        written += len(chunk)
        if written > limit:
            raise _too_large(ref, name, limit, what, number)
        if caps is not None:
            caps.inflating(len(chunk))
        digest.update(chunk)
        out.write(chunk)
    return digest_b64(digest)


def _too_large(ref: str, name: str, limit: int, what: str, number: str | None) -> ExportError:
    if number is not None:
        return ExportError(
            f"export {ref}: invoice {number} is larger than the client's invoice cap of {limit} bytes; "
            f"nothing was kept. KSeF raises a context's invoice size limit on request: to take such "
            f"invoices, raise the cap with body_limits=BodyLimits(invoice=...) on KSeF/AsyncKSeF"
        )
    return ExportError(
        f"export {ref}: {shown(name)} inflates past the {what} cap of {limit} bytes "
        f"(raise it with body_limits=BodyLimits({what}=...))"
    )


UNPACK_CHUNK = 1 << 20


def _metadata(ref: str, raw: bytes) -> list[dict[str, Any]]:
    """The ``invoices`` records of ``_metadata.json``, each with a valid ``ksefNumber``."""
    try:
        document = json_loads(raw)
    except (ValueError, RecursionError) as error:
        raise ExportError(f"export {ref}: {METADATA_FILE} is not JSON ({type(error).__name__})") from None
    invoices = document.get("invoices") if isinstance(document, dict) else None
    if not isinstance(invoices, list) or not all(isinstance(i, dict) for i in invoices):
        raise ExportError(f'export {ref}: {METADATA_FILE} is not {{"invoices": [{{...}}, ...]}}')
    numbers = [i.get("ksefNumber") for i in invoices]
    for number in numbers:
        try:
            checked_name(number, "KSeF number")
        except UnsafePathError as error:
            raise ExportError(f"export {ref}: {METADATA_FILE}: {error}") from None
    if len(set(numbers)) != len(numbers):
        raise ExportError(f"export {ref}: {METADATA_FILE} lists an invoice twice")
    return invoices


def _optional_date(value: object) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


def _optional_day(value: object) -> dt.date | None:
    return value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else None
