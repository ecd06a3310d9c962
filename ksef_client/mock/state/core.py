"""What every component shares: the clock, the lock, reference numbers, settings, and the records
that cross components (who is calling, statuses, pages).

Errors are ``mock.exceptions.MockAPIError`` subclasses carrying KSeF's codes; the HTTP layer
renders them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ksef_client.identifiers import make_reference_number
from ksef_client.mock.exceptions import MockAPIError

VALIDATION = "Błąd walidacji danych wejściowych."


def utc_now() -> dt.datetime:
    """The wall clock, in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Context:
    """Who acts: the context identifier (``Nip``, ``InternalId``, ``NipVatUe``, ``PeppolId``)."""

    type: str
    value: str

    @property
    def nip(self) -> str | None:
        """The NIP the context belongs to (``None`` for Peppol providers)."""
        return self.value[:10] if self.type in ("Nip", "InternalId", "NipVatUe") else None


@dataclass(frozen=True)
class Access:
    """A verified access token: the context, the permissions, and who authenticated."""

    context: Context
    permissions: frozenset[str]
    auth_reference_number: str
    subject: tuple[str, str] = ("", "")

    @property
    def sees_whole_context(self) -> bool:
        """``Introspection``/``EnforcementOperations`` see every session of the context; a caller
        with ``InvoiceWrite`` alone sees only what it created (spec of ``GET /sessions``)."""
        return bool(self.permissions & {"Introspection", "EnforcementOperations"})


@dataclass
class Status:
    """A numeric KSeF status with its texts."""

    code: int
    description: str
    details: list[str] = field(default_factory=list)
    extensions: dict[str, str] | None = None


@dataclass
class Transitions:
    """How fast statuses advance (moto's managed state): after this many status reads.

    ``session_reads``: reads that find a closed session (and an export) still in progress;
    ``invoice_reads``: reads that find a sent invoice still being processed (100, then 150, without
    a KSeF number), until its session is processed; ``auth_reads``: the read at which an
    authentication succeeds.
    A new KSeF token is ``Pending`` ("Nie może być jeszcze wykorzystywany do uwierzytelniania")
    until its status (``GET /tokens/{ref}``) has been read ``token_reads`` times (that read sees
    ``Active``) or ``token_activation`` seconds have passed on the emulator's clock, whichever
    comes first; ``token_reads = 0``: active at once.
    ``permission_reads``: reads of a permission grant's or revoke's operation (``GET
    /permissions/operations/{ref}``) that find it in progress (100) before it takes effect
    (uprawnienia.md: "Wykonanie operacji nadania uprawnienia nie skutkuje natychmiastowym
    dostępem"); ``0``: in effect by its 202.
    ``enrollment_reads``: reads of a certificate request's status (``GET
    /certificates/enrollments/{ref}``) that find it accepted but not yet handled (100 "Wniosek
    przyjęty do realizacji": certyfikaty-KSeF.md §5, "Proces wystawiania certyfikatu ma charakter
    asynchroniczny"); ``0``: handled by its 202.
    ``storage_reads``: reads of a numbered invoice (a status read showing its KSeF number, a
    download) that find it not yet in permanent storage: no ``permanentStorageDate`` ("Podczas
    sprawdzania statusu może być jeszcze niedostępna", the spec), ``GET /invoices/ksef/{n}`` 400 /
    21165 "Faktura o podanym numerze KSeF nie jest jeszcze dostępna.", in no metadata query or
    export; the next read stores it, as do ``storage_delay`` seconds on the emulator's clock after
    its numbering, whichever comes first; ``0``: stored as numbered (``Invoices.register``).
    """

    session_reads: int = 0
    auth_reads: int = 0
    invoice_reads: int = 0
    token_reads: int = 1
    token_activation: float = 5.0
    permission_reads: int = 0
    enrollment_reads: int = 0
    storage_reads: int = 0
    storage_delay: float = 5.0


@dataclass
class Settings:
    """Sizes a test may change; ``reset()`` puts back the ones the backend was created with."""

    upo_page_size: int = 10_000
    metadata_limit: int = 10_000
    export_part_size: int = 50_000_000
    # An export package's compressed invoices, in bytes: "Limit rozmiaru danych(skompresowanych):
    # 1GB" (the spec, POST /invoices/exports); GB = 10^9 B, as the guide counts batch packages
    # ("5 GB (5 000 000 000 bajtów)", faktury/weryfikacja-faktury.md).
    export_package_limit: int = 1_000_000_000
    # "PROD" adds the checks KSeF makes only in production (NIP checksums of the parties).
    profile: str = "TEST"
    # How far the PermanentStorage HWM trails the emulator's present (``Invoices.hwm``). KSeF's
    # does ("W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić nowe faktury",
    # pobieranie-faktur/hwm.md); the emulator stores each invoice as it numbers it, so by default
    # its HWM is its present moment.
    hwm_lag: dt.timedelta = dt.timedelta(0)
    # The cases pobieranie-faktur/hwm.md and przyrostowe-pobieranie-faktur.md write incremental
    # downloads for, which the emulator's own storage (each invoice as it is numbered, dates
    # strictly increasing, to the microsecond) never makes; all off by default.
    # ``late_storage``: an invoice numbered while it is on stays out of permanent storage until an
    # answer has given an HWM, then is stored just past that HWM: "W przedziale (HWM, Teraz] [...]
    # mogą się jeszcze pojawić nowe faktury" (with ``hwm_lag``, below invoices already visible).
    late_storage: bool = False
    # ``storage_resolution``: permanentStorageDates fall on multiples of it (counted from the Unix
    # epoch): the invoices numbered within one such period are stored together at its end, sharing
    # one date (zero: none, each its own date).
    storage_resolution: dt.timedelta = dt.timedelta(0)
    # ``seven_digit_dates``: the dates of invoices (metadata records, _metadata.json, invoice
    # statuses) and the HWM and last dates of the download answers written as KSeF's .NET service
    # writes them: to 100 ns, seven fractional digits, trailing zeros dropped, "+00:00".
    seven_digit_dates: bool = False


@dataclass
class Page:
    """One page of a listing and the token of the next one (``None`` at the end)."""

    items: list[Any]
    continuation_token: str | None


class Core:
    """Clock, lock, secret, settings and transitions shared by the components of one backend."""

    def __init__(self, clock: Callable[[], dt.datetime], settings: Settings) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.secret = secrets.token_bytes(32)
        self.settings = settings
        self.transitions = Transitions()
        # Strict mode's check of a record the emulator writes outside any answer (an export's
        # _metadata.json): what breaks InvoiceMetadata; None when strict mode is off.
        self.check_metadata_record: Callable[[dict[str, Any]], list[str]] | None = None

    def new_reference_number(self, kind: str) -> str:
        """A reference number in the official format (date, kind, 20 hex, CRC-8)."""
        return make_reference_number(self.clock().strftime("%Y%m%d"), kind, secrets.token_hex(10))

    # --- continuation tokens ---------------------------------------------------------------------

    def page(
        self, items: Sequence[Any], size: int, token: str | None, key: Callable[[Any], str], *, descending: bool
    ) -> Page:
        """One page of ``items`` (sorted by ``key``, unique per item; ``descending`` for a newest
        first listing) after the item a token names.

        The token names the last item handed out (with its position as a hint), not an offset,
        so items added or removed between two pages never make an item appear twice or go missing
        (KSeF's tokens are keyset positions too).
        """
        start = 0
        if token:
            last, hint = self._decode_token(token)
            found = 0 < hint <= len(items) and key(items[hint - 1]) == last
            start = hint if found else _position_after(items, key, last, descending)
        chunk = list(items[start : start + size])
        end = start + len(chunk)
        more = end < len(items)
        return Page(chunk, self._encode_token(key(chunk[-1]), end) if more and chunk else None)

    def _encode_token(self, last: str, position: int) -> str:
        payload = json.dumps({"after": last, "at": position}).encode()
        mac = hmac.new(self.secret, payload, hashlib.sha256).digest()[:8]
        return base64.urlsafe_b64encode(payload + mac).decode()

    def _decode_token(self, token: str) -> tuple[str, int]:
        try:
            raw = base64.urlsafe_b64decode(token.encode())
            payload, mac = raw[:-8], raw[-8:]
            if not hmac.compare_digest(mac, hmac.new(self.secret, payload, hashlib.sha256).digest()[:8]):
                raise ValueError("bad mac")
            decoded = json.loads(payload)
            return str(decoded["after"]), int(decoded["at"])
        except (ValueError, KeyError, TypeError) as error:
            raise MockAPIError(21418, "Przekazany token kontynuacji ma nieprawidłowy format.") from error


def _position_after(items: Sequence[Any], key: Callable[[Any], str], last: str, descending: bool) -> int:
    # Items were added before the named one: find it again, or (gone) the first item past it in
    # the listing's own order. The order is the caller's to say: guessed from the first and last
    # keys it was wrong for a listing filtered down to one item.
    keys = [key(item) for item in items]
    if last in keys:
        return keys.index(last) + 1
    for index, value in enumerate(keys):
        if (value < last) if descending else (value > last):
            return index
    return len(keys)
