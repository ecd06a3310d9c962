"""Received invoices in the emulator: what KSeF reads from them, download, metadata query, exports.

Mixed into ``KSeFBackend``. The metadata query pages with ``pageOffset``/``hasMore`` and stops at
``metadata_limit`` records (KSeF: 10,000) with ``isTruncated``; exports package the invoices
(``{ksefNumber}.xml`` + ``_metadata.json``) in a zip encrypted with the caller's AES key, cut
into parts served from presigned links.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from lxml import etree

from ksef_client.crypto import SymmetricKey, sha256_b64
from ksef_client.mock.auth import Access, Status
from ksef_client.mock.exceptions import MockAPIError, NotFound

if TYPE_CHECKING:
    from ksef_client.mock.models import Invoice, Session

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_VALIDATION = "Błąd walidacji danych wejściowych."
SUBJECT_TYPES = ("Subject1", "Subject2", "Subject3", "SubjectAuthorized")
DATE_TYPES = ("Issue", "Invoicing", "PermanentStorage")
MAX_RANGE = dt.timedelta(days=92)


@dataclass(frozen=True)
class InvoiceFields:
    """What KSeF reads from an invoice: seller, buyer, kind, number, issue date, amounts."""

    seller: str
    kind: str
    number: str
    issue_date: str
    buyer: str | None = None
    seller_name: str | None = None
    buyer_name: str | None = None
    currency: str = "PLN"
    net: Decimal = Decimal(0)
    vat: Decimal = Decimal(0)
    gross: Decimal = Decimal(0)


def _sum(root: etree._Element, prefix: str) -> Decimal:
    total = Decimal(0)
    for element in root.iterfind("{*}Fa/*"):
        name = etree.QName(element).localname
        if name.startswith(prefix) and element.text:
            try:
                total += Decimal(element.text.strip())
            except InvalidOperation:
                continue
    return total


def read_invoice_fields(xml: bytes) -> InvoiceFields:
    """Parse an invoice safely and read its key fields; ``ValueError`` says what is wrong."""
    if xml.startswith(b"\xef\xbb\xbf"):
        raise ValueError("Plik faktury zawiera BOM.")
    try:
        root = etree.fromstring(xml, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as error:
        raise ValueError(f"Nieprawidłowy XML: {error}") from error

    def text(path: str) -> str:
        found = root.find(path)
        if found is None or not found.text:
            raise ValueError(f"Brak elementu {path.replace('{*}', '')}.")
        return found.text.strip()

    def optional(path: str) -> str | None:
        found = root.find(path)
        return found.text.strip() if found is not None and found.text else None

    return InvoiceFields(
        seller=text("{*}Podmiot1/{*}DaneIdentyfikacyjne/{*}NIP"),
        kind=text("{*}Fa/{*}RodzajFaktury"),
        number=text("{*}Fa/{*}P_2"),
        issue_date=text("{*}Fa/{*}P_1"),
        buyer=optional("{*}Podmiot2/{*}DaneIdentyfikacyjne/{*}NIP"),
        seller_name=optional("{*}Podmiot1/{*}DaneIdentyfikacyjne/{*}Nazwa"),
        buyer_name=optional("{*}Podmiot2/{*}DaneIdentyfikacyjne/{*}Nazwa"),
        currency=optional("{*}Fa/{*}KodWaluty") or "PLN",
        net=_sum(root, "P_13_"),
        vat=_sum(root, "P_14_"),
        gross=Decimal(optional("{*}Fa/{*}P_15") or 0),
    )


@dataclass(frozen=True)
class Query:
    """A validated ``InvoiceQueryFilters``."""

    subject_type: str
    date_type: str
    date_from: dt.datetime
    date_to: dt.datetime | None
    restrict_to_hwm: bool
    ksef_number: str | None = None
    invoice_number: str | None = None
    seller_nip: str | None = None


def _parse_date(raw: object, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        raise MockAPIError(21405, _VALIDATION, [f"{name}: nieprawidłowa data."]) from None
    # No offset means Warsaw time in KSeF; the emulator treats it as UTC+1 (winter time).
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone(dt.timedelta(hours=1)))


def parse_query(body: dict[str, Any]) -> Query:
    """Validate ``filters``; KSeF's 21405 for what it would refuse."""
    subject_type = body.get("subjectType")
    date_range = body.get("dateRange")
    if subject_type not in SUBJECT_TYPES or not isinstance(date_range, dict):
        raise MockAPIError(21405, _VALIDATION, ["subjectType i dateRange: wymagane."])
    date_type = date_range.get("dateType")
    if date_type not in DATE_TYPES or "from" not in date_range:
        raise MockAPIError(21405, _VALIDATION, ["dateRange.dateType i dateRange.from: wymagane."])
    start = _parse_date(date_range["from"], "dateRange.from")
    end = _parse_date(date_range["to"], "dateRange.to") if date_range.get("to") else None
    if end is not None and (end < start or end - start > MAX_RANGE):
        raise MockAPIError(21405, _VALIDATION, ["dateRange: zakres najwyżej 3 miesiące, to >= from."])
    return Query(
        str(subject_type), str(date_type), start, end, bool(date_range.get("restrictToPermanentStorageHwmDate")),
        body.get("ksefNumber"), body.get("invoiceNumber"), body.get("sellerNip"),
    )  # fmt: skip


@dataclass
class Export:
    """An export job and, once built, its encrypted package parts (presigned names)."""

    reference_number: str
    context_nip: str | None
    status: Status
    created: dt.datetime
    reads_left: int
    query: Query
    key: SymmetricKey = field(repr=False)
    only_metadata: bool
    package: dict[str, Any] | None = None
    invoices: list[Invoice] = field(default_factory=list, repr=False)


class InvoiceOperations:
    """Mixin of ``KSeFBackend``: stored invoices, metadata query, exports."""

    clock: Callable[[], dt.datetime]
    lock: threading.RLock
    sessions: dict[str, Session]
    transitions: Any
    metadata_limit: int
    export_part_size: int

    def presign(self, data: bytes) -> tuple[str, dt.datetime]:  # pragma: no cover - KSeFBackend
        raise NotImplementedError

    def new_reference_number(self, kind: str) -> str:  # pragma: no cover - KSeFBackend
        raise NotImplementedError

    def _reset_invoices(self) -> None:
        self.exports: dict[str, Export] = {}

    def stored_invoices(self) -> Iterator[Invoice]:
        """Every accepted invoice of every context."""
        with self.lock:
            sessions = list(self.sessions.values())
        for session in sessions:
            yield from (i for i in session.invoices if i.accepted)

    def hwm(self) -> dt.datetime:
        """``permanentStorageHwmDate``: everything up to it is permanently stored (here: all)."""
        return max((i.acquired for i in self.stored_invoices() if i.acquired), default=self.clock())

    def download_invoice(self, access: Access, ksef_number: str) -> bytes:
        """``GET /invoices/ksef/{n}``: an invoice the caller's context sold or bought."""
        nip = access.context.nip
        for invoice in self.stored_invoices():
            if (
                invoice.ksef_number == ksef_number
                and invoice.fields
                and nip in (invoice.fields.seller, invoice.fields.buyer)
            ):
                return invoice.xml
        raise NotFound(21164, "Faktura o podanym identyfikatorze nie istnieje.", [ksef_number])

    def is_party(self, nip: str | None, ksef_number: str) -> bool:
        """Whether ``nip`` sold or bought the stored invoice ``ksef_number``."""
        return nip is not None and any(
            i.ksef_number == ksef_number and i.fields is not None and nip in (i.fields.seller, i.fields.buyer)
            for i in self.stored_invoices()
        )

    def _matching(self, access: Access, query: Query) -> list[Invoice]:
        nip = access.context.nip
        hwm = self.hwm()
        found = []
        for invoice in self.stored_invoices():
            fields = invoice.fields
            if fields is None or invoice.acquired is None:
                continue
            party = fields.seller if query.subject_type == "Subject1" else fields.buyer
            if query.subject_type not in ("Subject1", "Subject2") or party != nip:
                continue
            when = _date_of(invoice, query.date_type)
            if when < query.date_from or (query.date_to is not None and when > query.date_to):
                continue
            if query.restrict_to_hwm and invoice.acquired > hwm:
                continue
            if query.ksef_number and invoice.ksef_number != query.ksef_number:
                continue
            if query.invoice_number and fields.number != query.invoice_number:
                continue
            if query.seller_nip and fields.seller != query.seller_nip:
                continue
            found.append(invoice)
        found.sort(key=lambda i: (_date_of(i, query.date_type), i.ksef_number or ""))
        return found

    def query_metadata(
        self, access: Access, query: Query, *, page_offset: int, page_size: int, descending: bool = False
    ) -> tuple[list[Invoice], bool, bool]:
        """One page: ``(invoices, has_more, is_truncated)``; the result stops at ``metadata_limit``."""
        found = self._matching(access, query)
        if descending:
            found.reverse()
        capped = found[: self.metadata_limit]
        start = page_offset * page_size
        page = capped[start : start + page_size]
        end = start + len(page)
        has_more = end < len(capped)
        truncated = len(found) > len(capped) and not has_more
        return page, has_more, truncated

    # --- exports -------------------------------------------------------------------------------

    def start_export(self, access: Access, query: Query, key: SymmetricKey, only_metadata: bool) -> Export:
        """``POST /invoices/exports``: at most 10 running exports per context (21182)."""
        with self.lock:
            running = [e for e in self.exports.values() if e.context_nip == access.context.nip and e.status.code == 100]
            if len(running) >= 10:
                raise MockAPIError(21182, "Przekroczono limit równoczesnych eksportów.")
            export = Export(
                self.new_reference_number("EX"), access.context.nip, Status(100, "Eksport w toku"), self.clock(),
                self.transitions.session_reads, query, key, only_metadata,
            )  # fmt: skip
            export.invoices = self._matching(access, query)
            self.exports[export.reference_number] = export
        return export

    def export_status(self, access: Access, reference_number: str) -> Export:
        """Poll an export; it is built after the configured number of reads."""
        export = self.exports.get(reference_number)
        if export is None or export.context_nip != access.context.nip:
            raise NotFound(21175, "Eksport nie został znaleziony.", [reference_number])
        if export.status.code == 100:
            export.reads_left -= 1
            if export.reads_left <= 0:
                self._build_export(export)
        return export

    def _build_export(self, export: Export) -> None:
        invoices = export.invoices
        chosen = invoices[: self.metadata_limit]
        truncated = len(invoices) > len(chosen)
        package = _zip_package(chosen, export.only_metadata)
        parts = []
        size = self.export_part_size
        for index in range(max(1, -(-len(package) // size))):
            plain = package[index * size : (index + 1) * size]
            encrypted = export.key.encrypt(plain)
            name, expires = self.presign(encrypted)
            parts.append({
                "ordinalNumber": index + 1, "partName": f"{export.reference_number}-{index + 1:03d}.zip.aes",
                "method": "GET", "storage": name, "partSize": len(plain), "partHash": sha256_b64(plain),
                "encryptedPartSize": len(encrypted), "encryptedPartHash": sha256_b64(encrypted),
                "expirationDate": expires,
            })  # fmt: skip
        last = chosen[-1].acquired if chosen else None
        export.package = {
            "invoiceCount": len(chosen), "size": len(package), "parts": parts, "isTruncated": truncated,
            "compressionType": "Zip",
            "lastPermanentStorageDate": last, "permanentStorageHwmDate": self.hwm(),
        }  # fmt: skip
        export.status = Status(200, "Eksport zakończony sukcesem")


def _date_of(invoice: Invoice, date_type: str) -> dt.datetime:
    assert invoice.acquired is not None
    if date_type == "Issue" and invoice.fields is not None:
        return dt.datetime.fromisoformat(invoice.fields.issue_date).replace(tzinfo=dt.UTC)
    if date_type == "Invoicing":
        return invoice.received
    return invoice.acquired


def metadata_of(invoice: Invoice) -> dict[str, Any]:
    """An ``InvoiceMetadata`` record."""
    fields = invoice.fields
    assert fields is not None and invoice.acquired is not None
    return {
        "ksefNumber": invoice.ksef_number,
        "invoiceNumber": fields.number,
        "issueDate": fields.issue_date,
        "invoicingDate": invoice.received.isoformat(),
        "acquisitionDate": invoice.acquired.isoformat(),
        "permanentStorageDate": invoice.acquired.isoformat(),
        "seller": {"nip": fields.seller, "name": fields.seller_name},
        "buyer": {"identifier": {"type": "Nip", "value": fields.buyer}, "name": fields.buyer_name},
        "netAmount": float(fields.net),
        "grossAmount": float(fields.gross),
        "vatAmount": float(fields.vat),
        "currency": fields.currency,
        "invoicingMode": "Offline" if invoice.offline else "Online",
        "invoiceType": fields.kind,
        "formCode": {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"},
        "isSelfInvoicing": False,
        "hasAttachment": False,
        "invoiceHash": invoice.invoice_hash,
    }


def _zip_package(invoices: list[Invoice], only_metadata: bool) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if not only_metadata:
            for invoice in invoices:
                archive.writestr(f"{invoice.ksef_number}.xml", invoice.xml)
        archive.writestr("_metadata.json", json.dumps({"invoices": [metadata_of(i) for i in invoices]}))
    return buffer.getvalue()
