"""The emulator's state: contexts, tokens, sessions, invoices and UPOs, in plain Python.

No HTTP here (moto's split): ``responses.py`` parses requests, calls ``KSeFBackend`` and renders
what it returns; errors are ``exceptions.MockAPIError`` subclasses carrying KSeF codes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ksef_client._generated.operations import OPERATIONS
from ksef_client._throttle import Throttle
from ksef_client.crypto import SymmetricKey, sha256_b64
from ksef_client.identifiers import make_ksef_number, make_reference_number
from ksef_client.mock.auth import ALL_PERMISSIONS, Access, AuthOperations, Context, Status
from ksef_client.mock.certificates import CertificateOperations
from ksef_client.mock.exceptions import Forbidden, MockAPIError, NotFound
from ksef_client.mock.faults import Faults
from ksef_client.mock.invoices import InvoiceFields, InvoiceOperations, read_invoice_fields
from ksef_client.mock.limits import GLOBAL_GROUP, GLOBAL_RATE_LIMITS, context_limits
from ksef_client.mock.permissions import PermissionOperations
from ksef_client.mock.sending import BatchPackage, SendingOperations
from ksef_client.mock.upo import PageInfo, UpoDocument, UpoHeader, build_upo
from ksef_client.schemas import InvoiceSchemaError, validate_invoice

__all__ = ["ALL_PERMISSIONS", "Access", "Context", "Invoice", "KSeFBackend", "Session", "Status"]

UTC = dt.UTC
SESSION_TEXT = {
    100: "Sesja interaktywna otwarta",
    150: "Trwa przetwarzanie",
    170: "Sesja zamknięta",
    200: "Sesja przetworzona pomyślnie",
    440: "Sesja anulowana",
    445: "Błąd weryfikacji, brak poprawnych faktur",
}
INVOICE_TEXT = {
    100: "Faktura przyjęta do dalszego przetwarzania",
    150: "Trwa przetwarzanie",
    200: "Sukces",
    430: "Błąd weryfikacji pliku faktury",
    440: "Duplikat faktury",
}
# GET /sessions?statuses=...: the API's coarse states over the numeric codes.
STATUS_GROUPS = {"InProgress": {100, 150, 170}, "Succeeded": {200}, "Cancelled": {440}}
UPO_LINK_TTL = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass
class Invoice:
    """One invoice sent in a session."""

    ordinal_number: int
    reference_number: str
    invoice_hash: str
    invoice_size: int
    received: dt.datetime
    status: Status
    invoice_number: str | None = None
    issue_date: str | None = None
    seller_nip: str | None = None
    ksef_number: str | None = None
    acquired: dt.datetime | None = None
    offline: bool = False
    file_name: str | None = None
    session_reference_number: str = ""
    fields: InvoiceFields | None = None
    xml: bytes = field(default=b"", repr=False)
    upo: bytes | None = field(default=None, repr=False)

    @property
    def accepted(self) -> bool:
        """Accepted invoices have a KSeF number and appear in UPOs."""
        return self.status.code == 200


@dataclass
class Session:
    """An online or batch session of one context."""

    reference_number: str
    kind: str
    context: Context
    auth_reference_number: str
    form_code: str
    created: dt.datetime
    valid_until: dt.datetime
    updated: dt.datetime
    status: Status
    invoices: list[Invoice] = field(default_factory=list)
    reads_until_processed: int = 0
    upo_pages: list[tuple[str, bytes]] = field(default_factory=list)
    key: SymmetricKey | None = field(default=None, repr=False)
    batch: BatchPackage | None = None
    offline: bool = False

    @property
    def failed(self) -> list[Invoice]:
        """Invoices that were rejected."""
        return [i for i in self.invoices if i.status.code >= 400]

    def __setattr__(self, name: str, value: object) -> None:
        if name == "status":  # listings are cached until some session's status changes
            _STATUS_CHANGES[0] += 1
        object.__setattr__(self, name, value)


# Bumped on every session status change; part of the listing cache key.
_STATUS_CHANGES = [0]


@dataclass
class Transitions:
    """How fast statuses advance (moto's managed state): after this many status reads."""

    session_reads: int = 0
    auth_reads: int = 0


@dataclass
class Page:
    """One page of a listing and the token of the next one (``None`` at the end)."""

    items: list[object]
    continuation_token: str | None


class KSeFBackend(AuthOperations, SendingOperations, InvoiceOperations, PermissionOperations, CertificateOperations):
    """All state of one emulated KSeF. Thread-safe; ``reset()`` empties it.

    Auth (``auth.py``), sending (``sending.py``), received invoices (``invoices.py``), permissions
    (``permissions.py``) and certificates (``certificates.py``) are mixed in;
    status, listing and UPO are here.
    """

    def __init__(
        self, *, upo_page_size: int = 10_000, metadata_limit: int = 10_000, export_part_size: int = 50_000_000,
        rate_limit_scale: float = 0.0, clock: Callable[[], dt.datetime] = _now,
    ) -> None:  # fmt: skip
        self.upo_page_size = upo_page_size
        self.metadata_limit = metadata_limit
        self.export_part_size = export_part_size
        # KSeF's per-operation limits times this scale; 0 (the default in tests) switches them off.
        self.rate_limits = Throttle(scale=rate_limit_scale)
        self.clock = clock
        self.transitions = Transitions()
        self.faults = Faults()
        self.lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self.reset()

    def reset(self) -> None:
        """Forget every session, invoice, token and UPO."""
        with self.lock:
            self.sessions: dict[str, Session] = {}
            self.blobs: dict[str, tuple[bytes, dt.datetime]] = {}
            self.invoice_keys: dict[tuple[str, str, str], Invoice] = {}
            self.upload_slots: dict[str, tuple[str, int]] = {}
            self._listings: dict[tuple[object, ...], tuple[tuple[int, int], list[Session]]] = {}
            self.rate_limits = Throttle(scale=self.rate_limits.scale)
            self.transitions = Transitions()
            self.faults.clear()
            self._reset_auth()
            self._reset_invoices()
            self._reset_permissions()
            self._reset_certificates()
            self.peppol_providers: list[dict[str, str]] = []

    def check_rate(self, operation: str, caller: str) -> int | None:
        """Seconds to wait (``Retry-After``) when ``caller`` is over its limits, else ``None``.

        Counted as KSeF counts: per limit group of the operation (``other`` is one budget for 46
        operations), and per caller over every operation (``global``).
        """
        spec = OPERATIONS[operation]
        group = spec.rate_limit_group or operation
        now = self.clock().timestamp()
        with self.lock:
            wait = self.rate_limits.delay(f"{caller}|{GLOBAL_GROUP}", GLOBAL_RATE_LIMITS, now)
            if wait <= 0:
                wait = self.rate_limits.delay(f"{caller}|{group}", spec.rate_limits, now)
        return math.ceil(wait) if wait > 0 else None

    def context_limits(self, context: Context) -> dict[str, dict[str, int]]:
        """The limits in force for ``context``: KSeF TEST's defaults or the test-data override."""
        return context_limits(self.testdata["overrides"].get((context, "session-limits")))

    # --- identifiers -------------------------------------------------------------------------

    def new_reference_number(self, kind: str) -> str:
        """A reference number in the official format (date, kind, 20 hex, CRC-8)."""
        return make_reference_number(self.clock().strftime("%Y%m%d"), kind, secrets.token_hex(10))

    @staticmethod
    def require_any(access: Access, permissions: Iterable[str]) -> None:
        """403 unless the token has one of ``permissions`` (none listed: anything goes)."""
        wanted = set(permissions)
        if wanted and not wanted & access.permissions:
            raise Forbidden(
                f"Wymagane jedno z uprawnień: {', '.join(sorted(wanted))}.",
                security={"requiredAnyOfPermissions": sorted(wanted), "presentPermissions": sorted(access.permissions)},
            )

    # --- sessions ----------------------------------------------------------------------------

    def open_session(self, access: Access, kind: str = "Online", form_code: str = "FA (3)") -> Session:
        """Open an online or batch session (status 100)."""
        now = self.clock()
        session = Session(
            reference_number=self.new_reference_number("SO" if kind == "Online" else "SB"),
            kind=kind,
            context=access.context,
            auth_reference_number=access.auth_reference_number,
            form_code=form_code,
            created=now,
            valid_until=now + dt.timedelta(hours=12),
            updated=now,
            status=Status(100, SESSION_TEXT[100]),
        )
        with self.lock:
            self.sessions[session.reference_number] = session
        return session

    def add_invoice(
        self, session: Session, xml: bytes, *, offline: bool = False, file_name: str | None = None
    ) -> Invoice:
        """Accept one plain invoice into ``session``: verify, number it, or reject it with a status."""
        now = self.clock()
        with self.lock:
            if session.status.code != 100:
                raise MockAPIError(21180, "Status sesji nie pozwala na wykonanie operacji.")
            invoice = Invoice(
                ordinal_number=len(session.invoices) + 1,
                reference_number=self.new_reference_number("EE"),
                invoice_hash=sha256_b64(xml),
                invoice_size=len(xml),
                received=now,
                status=Status(100, INVOICE_TEXT[100]),
                offline=offline,
                file_name=file_name,
                session_reference_number=session.reference_number,
            )
            session.invoices.append(invoice)
            session.updated = now
            self._process_invoice(session, invoice, xml)
        return invoice

    def _process_invoice(self, session: Session, invoice: Invoice, xml: bytes) -> None:
        try:
            validate_invoice(xml, session.form_code)
            fields = read_invoice_fields(xml)
        except InvoiceSchemaError as error:
            invoice.status = Status(430, INVOICE_TEXT[430], error.errors[:10])
            return
        except ValueError as error:
            invoice.status = Status(430, INVOICE_TEXT[430], [str(error)])
            return
        invoice.invoice_number, invoice.issue_date, invoice.seller_nip = fields.number, fields.issue_date, fields.seller
        invoice.fields, invoice.xml = fields, xml
        # KSeF marks an invoice Offline when it was issued on an earlier day than it was received.
        invoice.offline = invoice.offline or fields.issue_date < invoice.received.date().isoformat()
        key = (fields.seller, fields.kind, fields.number)
        original = self.invoice_keys.get(key)
        if original is not None:
            extensions = {
                "originalKsefNumber": original.ksef_number or "",
                "originalSessionReferenceNumber": original.session_reference_number,
            }
            invoice.status = Status(
                440, INVOICE_TEXT[440], ["Faktura o podanym numerze została już przesłana."], extensions
            )
            return
        invoice.acquired = self.clock()
        invoice.ksef_number = make_ksef_number(fields.seller, invoice.acquired.strftime("%Y%m%d"), secrets.token_hex(6))
        invoice.status = Status(200, INVOICE_TEXT[200])
        self.invoice_keys[key] = invoice

    def close_session(self, session: Session, interim: int = 170) -> None:
        """Close a session: ``interim`` (170 online, 150 batch) now, processed (200/440/445 and UPO)
        after the configured status reads."""
        with self.lock:
            if session.status.code != 100:
                raise MockAPIError(
                    21180,
                    "Status sesji nie pozwala na wykonanie operacji.",
                    [f"Status sesji {session.status.code} uniemożliwia jej zamknięcie."],
                )
            session.status = Status(interim, SESSION_TEXT[interim])
            session.updated = self.clock()
            session.reads_until_processed = self.transitions.session_reads
            if session.reads_until_processed <= 0:
                self._finish(session)

    def _finish(self, session: Session) -> None:
        if not session.invoices:
            session.status = Status(440, SESSION_TEXT[440], ["Nie przesłano faktur."])
        elif not any(i.accepted for i in session.invoices):
            session.status = Status(445, SESSION_TEXT[445])
        else:
            session.status = Status(200, SESSION_TEXT[200])
            session.upo_pages = self._session_upo_pages(session)
        session.updated = self.clock()

    def get_session(self, access: Access, reference_number: str, *, read: bool = True) -> Session:
        """A session of the caller's context (another context's is "not found", as in KSeF)."""
        with self.lock:
            session = self.sessions.get(reference_number)
            if session is None or session.context != access.context:
                raise NotFound(21173, f"Sesja o numerze referencyjnym {reference_number} nie została znaleziona.")
            if read and session.status.code in (150, 170):
                session.reads_until_processed -= 1
                if session.reads_until_processed <= 0:
                    self._finish(session)
            return session

    def list_sessions(
        self,
        access: Access,
        session_type: str,
        *,
        statuses: Iterable[str] = (),
        reference_number: str | None = None,
        created_from: dt.datetime | None = None,
        created_to: dt.datetime | None = None,
        page_size: int = 10,
        continuation_token: str | None = None,
    ) -> Page:
        """Sessions of the caller's context, newest first, one page at a time."""
        statuses = tuple(sorted(statuses))
        key = (access.context, session_type, statuses, reference_number, created_from, created_to)
        stamp = (len(self.sessions), _STATUS_CHANGES[0])
        cached = self._listings.get(key)
        if cached is not None and cached[0] == stamp:
            return self.page(cached[1], page_size, continuation_token)
        codes = set().union(*(STATUS_GROUPS.get(s, set()) for s in statuses)) if statuses else None
        failed_wanted = "Failed" in set(statuses)
        with self.lock:
            found = [
                s
                for s in self.sessions.values()
                if s.context == access.context
                and s.kind == session_type
                and (codes is None or s.status.code in codes or (failed_wanted and _is_failed(s.status.code)))
                and (reference_number is None or s.reference_number == reference_number)
                and (created_from is None or s.created >= created_from)
                and (created_to is None or s.created <= created_to)
            ]
        found.sort(key=lambda s: (s.created, s.reference_number), reverse=True)
        # Paging 100,000 sessions re-filters nothing: the sorted result is kept per query until
        # a session is added or changes status.
        self._listings = {key: (stamp, found)}
        return self.page(found, page_size, continuation_token)

    def session_invoices(
        self, access: Access, reference_number: str, *, failed: bool = False, page_size: int = 10,
        continuation_token: str | None = None,
    ) -> Page:  # fmt: skip
        """Invoices of a session (or only the failed ones), in sending order."""
        session = self.get_session(access, reference_number, read=False)
        invoices = session.failed if failed else list(session.invoices)
        return self.page(invoices, page_size, continuation_token)

    def page(self, items: Sequence[object], size: int, token: str | None) -> Page:
        """One page of ``items`` from the position a continuation token names."""
        offset = self._decode_token(token) if token else 0
        end = offset + size
        next_token = self._encode_token(end) if end < len(items) else None
        return Page(list(items[offset:end]), next_token)

    def _encode_token(self, offset: int) -> str:
        payload = json.dumps({"o": offset}).encode()
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:8]
        return base64.urlsafe_b64encode(payload + mac).decode()

    def _decode_token(self, token: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(token.encode())
            payload, mac = raw[:-8], raw[-8:]
            if not hmac.compare_digest(mac, hmac.new(self._secret, payload, hashlib.sha256).digest()[:8]):
                raise ValueError("bad mac")
            return int(json.loads(payload)["o"])
        except (ValueError, KeyError, TypeError) as error:
            raise MockAPIError(21418, "Przekazany token kontynuacji ma nieprawidłowy format.") from error

    def get_invoice(self, access: Access, reference_number: str, invoice_reference_number: str) -> Invoice:
        """One invoice of a session by its reference number."""
        session = self.get_session(access, reference_number, read=False)
        for invoice in session.invoices:
            if invoice.reference_number == invoice_reference_number:
                return invoice
        raise NotFound(21164, f"Faktura o numerze referencyjnym {invoice_reference_number} nie została znaleziona.")

    # --- UPO ---------------------------------------------------------------------------------

    def _header(self, session: Session) -> UpoHeader:
        auth_hash = sha256_b64(session.auth_reference_number.encode())
        return UpoHeader(
            session.reference_number, session.context.type, session.context.value, auth_hash, session.form_code
        )

    @staticmethod
    def _document(invoice: Invoice, kind: str) -> UpoDocument:
        assert invoice.ksef_number and invoice.acquired and invoice.seller_nip
        return UpoDocument(
            seller_nip=invoice.seller_nip,
            ksef_number=invoice.ksef_number,
            invoice_number=invoice.invoice_number or "",
            issue_date=invoice.issue_date or "",
            received=invoice.received.isoformat(timespec="milliseconds"),
            numbered=invoice.acquired.isoformat(timespec="milliseconds"),
            invoice_hash=invoice.invoice_hash,
            mode="Offline" if invoice.offline else "Online",
        )

    def _session_upo_pages(self, session: Session) -> list[tuple[str, bytes]]:
        accepted = [i for i in session.invoices if i.accepted]
        size = self.upo_page_size
        count = (len(accepted) + size - 1) // size
        pages = []
        for index in range(count):
            chunk = accepted[index * size : (index + 1) * size]
            info = PageInfo(index + 1, count, index * size + 1, index * size + len(chunk), len(accepted))
            xml = build_upo(self._header(session), [self._document(i, session.kind) for i in chunk], info)
            pages.append((self.new_reference_number("EU"), xml))
        return pages

    def invoice_upo_for(self, session: Session, invoice: Invoice) -> bytes:
        """The UPO document of one accepted invoice (signed once, then cached)."""
        if invoice.upo is None:
            invoice.upo = build_upo(self._header(session), [self._document(invoice, session.kind)])
        return invoice.upo

    def invoice_upo(
        self, access: Access, reference_number: str, *, invoice_reference_number: str | None = None,
        ksef_number: str | None = None,
    ) -> bytes:  # fmt: skip
        """The UPO of one accepted invoice, by its reference number or KSeF number."""
        session = self.get_session(access, reference_number, read=False)
        for invoice in session.invoices:
            if invoice.reference_number == invoice_reference_number or (
                ksef_number is not None and invoice.ksef_number == ksef_number
            ):
                if not invoice.accepted:
                    break
                return self.invoice_upo_for(session, invoice)
        raise NotFound(21178, "UPO nie zostało znalezione.")

    def session_upo(self, access: Access, reference_number: str, upo_reference_number: str) -> bytes:
        """One page of a session's UPO."""
        session = self.get_session(access, reference_number, read=False)
        for ref, xml in session.upo_pages:
            if ref == upo_reference_number:
                return xml
        raise NotFound(21178, "UPO nie zostało znalezione.")

    # --- presigned storage -------------------------------------------------------------------

    def presign(self, data: bytes) -> tuple[str, dt.datetime]:
        """Store ``data`` under a fresh unguessable name valid for an hour; return it and its expiry."""
        name = secrets.token_urlsafe(24)
        now = self.clock()
        expires = now + UPO_LINK_TTL
        with self.lock:
            # Like KSeF, every poll hands out fresh links; expired ones are dropped now and then
            # so a long test run (or a soak) does not keep every link it ever saw.
            if len(self.blobs) % 1024 == 0:
                self.blobs = {k: v for k, v in self.blobs.items() if v[1] > now}
            self.blobs[name] = (data, expires)
        return name, expires

    def read_presigned(self, name: str) -> bytes | None:
        """The stored bytes, or ``None`` when unknown or expired (storage answers 403 then)."""
        with self.lock:
            found = self.blobs.get(name)
        if found is None or found[1] <= self.clock():
            return None
        return found[0]


def _is_failed(code: int) -> bool:
    return code >= 400 and code != 440
