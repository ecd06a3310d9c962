"""Invoices KSeF has accepted: what it reads from them, download, metadata query, exports.

Sessions hand every accepted invoice to ``Invoices.register``; the duplicate key (seller NIP,
``RodzajFaktury``, number) is checked here. The metadata query pages with ``pageOffset``/
``hasMore`` and stops at ``metadata_limit`` records (KSeF: 10,000) with ``isTruncated``; exports
stop there too, or at ``export_package_limit`` compressed bytes of invoices (KSeF: 1 GB), and
package the invoices (``{ksefNumber}.xml`` + ``_metadata.json``) as a zip or tar.gz encrypted with
the caller's AES key, cut into parts served from presigned links, fresh ones on every status poll
(``linked_package``); an export that matches nothing has no part. A package expires 7 days after
its export completed (status 210), the export's status 7 days after that (410 Gone).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from ksef_client.crypto import SymmetricKey, sha256_b64
from ksef_client.mock.exceptions import Gone, MockAPIError, NotFound, StrictModeViolation
from ksef_client.mock.faults import Faults
from ksef_client.mock.state.core import VALIDATION, Access, Context, Core, Status
from ksef_client.mock.state.invoice_query import Query, invoicing_mode, is_subject, plays_a_role
from ksef_client.mock.state.storage import Storage
from ksef_client.schemas import has_attachment

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
MAX_RUNNING_EXPORTS = 10
# 21182's details (the spec, POST /invoices/exports).
RUNNING_EXPORTS_DETAIL = (
    f"Dla uwierzytelnionego podmiotu w bieżącym kontekście osiągnięto maksymalny limit {MAX_RUNNING_EXPORTS} "
    "równoczesnych eksportów faktur. Spróbuj ponownie później."
)
# The export statuses the emulator gives, as InvoiceExportStatusResponse.status lists them.
EXPORT_TEXT = {
    100: "Eksport faktur w toku", 200: "Eksport faktur zakończony sukcesem",
    210: "Eksport faktur wygasł i nie jest już dostępny do pobrania",
}  # fmt: skip
# packageExpirationDate: "Po upływie tej daty paczka nie będzie już dostępna do pobrania" (the
# spec); KSeF gives it 7 days after completedDate (CIRFMF/ksef-api#821: CompletedDate
# "2026-06-03T06:21:22.4471109+00:00", PackageExpirationDate "2026-06-10T06:21:22.4471109+00:00").
PACKAGE_LIFETIME = dt.timedelta(days=7)
# "Status eksportu paczki faktur jest dostępny przez 7 dni" (the spec); api-changelog 2.4.0: "Eksport
# faktur - GET /invoices/exports/{referenceNumber}: 7 dni [...] Po upływie okresu retencji
# odpytywanie statusu zwraca 410 Gone". Neither says when the 7 days start; the emulator counts
# them from the export's last status (210 for a package, else its end), so that 210, which the
# spec lists, can be seen at all: counted from the completion it would be gone with the package.
STATUS_RETENTION = dt.timedelta(days=7)
# Queries whose HWM is remembered for their later pages (``Invoices.query_metadata``); the oldest
# is forgotten first (its later pages then get a fresh HWM).
REMEMBERED_QUERIES = 1_000
# permanentStorageDate: "Wartość uzupełniana asynchronicznie w momencie trwałego zapisu; zawsze
# późniejsza niż acquisitionDate" (the spec). The emulator stores an invoice when it numbers it and
# dates the storage this much later (unless ``Transitions.storage_reads`` holds it back).
PERMANENT_STORAGE_DELAY = dt.timedelta(milliseconds=1)
# GET /invoices/ksef/{ksefNumber}, 400 (the spec): an invoice numbered but not yet stored.
NOT_YET_AVAILABLE = "Faktura o podanym numerze KSeF nie jest jeszcze dostępna."
NOT_YET_AVAILABLE_DETAIL = (
    "Faktura o numerze KSeF {} została przetworzona, ale nie jest jeszcze dostępna do pobrania. "
    "Spróbuj ponownie później."
)
# The least step between the acquisition dates of two invoices (``Invoices.acquisition_time``).
ACQUISITION_STEP = dt.timedelta(microseconds=1)
# RodzajFaktury of each form -> the spec's InvoiceType (metadata, exports).
INVOICE_TYPES = {
    "VAT": "Vat", "ZAL": "Zal", "KOR": "Kor", "ROZ": "Roz", "UPR": "Upr", "KOR_ZAL": "KorZal",
    "KOR_ROZ": "KorRoz", "VAT_RR": "VatRr", "KOR_VAT_RR": "KorVatRr",
}  # fmt: skip
UBL = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}


# TKodyKrajowUE of the FA forms: the prefixes of EU VAT numbers (Greece's EL, Northern Ireland's XI).
EU_PREFIXES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "EL", "HR", "HU", "IE", "IT", "LV", "LT", "LU",
    "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "XI",
})  # fmt: skip


@dataclass(frozen=True)
class ThirdSubject:
    """A ``Podmiot3``, as ``InvoiceMetadataThirdSubject`` gives it: the identifier's type (``Nip``,
    ``InternalId``, ``VatUe``, ``Other``, ``None``) and value, the name, the role (``Rola``; 0,
    "Inna rola", for ``RolaInna``)."""

    type: str
    value: str | None
    name: str | None
    role: int


@dataclass(frozen=True)
class AuthorizedSubject:
    """The ``PodmiotUpowazniony`` (``InvoiceMetadataAuthorizedSubject``): NIP, name, ``RolaPU``."""

    nip: str
    name: str | None
    role: int


@dataclass(frozen=True)
class InvoiceFields:
    """What KSeF reads from an invoice: issuer's seller, buyer, kind, number, issue date, amounts,
    the other parties."""

    seller: str
    kind: str
    number: str
    issue_date: str
    # The buyer's NIP (``None`` when it has none); ``buyer_id`` its identifier of any kind, as the
    # spec's BuyerIdentifierType and value: ("Nip", NIP), ("VatUe", KodUE + NrVatUE), ("Other",
    # NrID), ("None", None) for BrakID.
    buyer: str | None = None
    buyer_id: tuple[str, str | None] = ("None", None)
    seller_name: str | None = None
    buyer_name: str | None = None
    currency: str = "PLN"
    # netAmount and grossAmount, "Łączna kwota netto/brutto", in the invoice's currency;
    # vatAmount, "Łączna kwota VAT wyrażona w PLN".
    net: Decimal = Decimal(0)
    vat_pln: Decimal = Decimal(0)
    gross: Decimal = Decimal(0)
    has_attachment: bool = False
    self_invoicing: bool = False
    third_subjects: tuple[ThirdSubject, ...] = ()
    authorized_subject: AuthorizedSubject | None = None

    @property
    def invoice_type(self) -> str:
        """The spec's ``InvoiceType`` (``Vat``, ``Kor``, ``VatRr``, ``VatPef``...)."""
        return INVOICE_TYPES.get(self.kind, self.kind)

    @property
    def other_nips(self) -> tuple[str, ...]:
        """NIPs of Podmiot3 (and the NIP inside a Podmiot3 InternalId) and PodmiotUpowazniony."""
        nips = [t.value[:10] for t in self.third_subjects if t.type in ("Nip", "InternalId") and t.value]
        if self.authorized_subject is not None:
            nips.append(self.authorized_subject.nip)
        return tuple(nips)


@dataclass
class Invoice:
    """One invoice sent in a session (accepted or not)."""

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
    form_code: dict[str, str] = field(default_factory=dict)
    fields: InvoiceFields | None = None
    xml: bytes = field(default=b"", repr=False)
    upo: bytes | None = field(default=None, repr=False)
    # A technical correction: the hash of the rejected offline invoice it corrects.
    hash_of_corrected_invoice: str | None = None
    # Status reads that find it still being processed (``Transitions.invoice_reads``), reads so far.
    pending_reads: int = 0
    status_reads: int = 0
    # Permanent storage held back (``Transitions.storage_reads``): reads of the numbered invoice left
    # before it is stored, the moment it is stored by anyway (``None``: stored as numbered), and the
    # moment it was stored then.
    storage_reads_left: int = 0
    storage_due: dt.datetime | None = None
    stored_at: dt.datetime | None = None
    # Numbered while ``Settings.late_storage`` was on: stored just past the HWM an answer gave
    # meanwhile (``late``), once one has (until then ``awaits_answer``).
    late: bool = False
    awaits_answer: bool = False

    @property
    def accepted(self) -> bool:
        """Accepted invoices have a KSeF number and appear in UPOs."""
        return self.status.code == 200

    @property
    def settled(self) -> bool:
        """Whether a status read shows the invoice's outcome (not "still being processed")."""
        return self.status_reads >= self.pending_reads

    @property
    def stored(self) -> dt.datetime | None:
        """``permanentStorageDate`` of an accepted invoice (always after ``acquisitionDate``);
        ``None`` before it is numbered, and while it waits for the storage (``storage_pending``)."""
        if self.acquired is None or self.storage_pending:
            return None
        return self.stored_at if self.stored_at is not None else self.acquired + PERMANENT_STORAGE_DELAY

    @property
    def storage_pending(self) -> bool:
        """Whether the invoice is numbered but not yet in permanent storage (``Transitions.storage_reads``)."""
        return self.storage_due is not None and self.stored_at is None


def _decimal(text: str | None) -> Decimal:
    try:
        return Decimal(text.strip()) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _sum(parent: etree._Element | None, prefix: str) -> Decimal:
    total = Decimal(0)
    for element in parent.iterchildren(etree.Element) if parent is not None else ():
        if _local_name(element).startswith(prefix):
            total += _decimal(_value(element))
    return total


def _local_name(element: etree._Element) -> str:
    return str(element.tag).rpartition("}")[2]


def _tax_in_pln(fa: etree._Element | None) -> Decimal:
    """The sum of the tax amounts ``P_14_x`` in PLN: each ``P_14_xW`` ("W przypadku gdy faktura
    jest wystawiona w walucie obcej - kwota podatku [...] przeliczona", FA XSD) where the invoice
    has it, else its ``P_14_x`` (an invoice in PLN has no ``W``; ``P_14_5`` never has one)."""
    amounts: dict[str, Decimal] = {}
    for element in fa.iterchildren(etree.Element) if fa is not None else ():
        name = _local_name(element)
        if name.startswith("P_14_") and (name.endswith("W") or name not in amounts):
            amounts[name.removesuffix("W")] = _decimal(_value(element))
    return sum(amounts.values(), Decimal(0))


def _value(element: etree._Element) -> str:
    """The element's value: all its text, whatever comments or processing instructions split it
    (they are no part of the value, XML 1.0 sections 2.5 and 2.6); ``.text`` is only the text
    before the first of them, so "FV/7<!---->/A" and "FV/7<!---->/B" would both read "FV/7"."""
    if not len(element):  # nothing inside but text (the usual leaf): its text is all of it
        return element.text or ""
    return "".join(str(text) for text in element.itertext())


def _find(element: etree._Element, path: str) -> etree._Element | None:
    """``element.find(path)`` for a path of ``{*}Name`` steps, walked with lxml's own child
    iteration: ElementPath costs several times more, and an invoice is read in some ten finds."""
    step, _, rest = path.partition("/")
    for child in element.iterchildren(step):
        found = _find(child, rest) if rest else child
        if found is not None:
            return found
    return None


def _text(root: etree._Element, path: str, namespaces: dict[str, str] | None = None) -> str | None:
    found = root.find(path, namespaces) if namespaces else _find(root, path)
    value = _value(found).strip() if found is not None else ""
    return value or None


def _required(root: etree._Element, path: str, namespaces: dict[str, str] | None = None) -> str:
    value = _text(root, path, namespaces)
    if value is None:
        raise ValueError(f"Brak elementu {path.replace('{*}', '')}.")
    return value


def _int(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def read_invoice_fields(xml: bytes) -> InvoiceFields:
    """Parse an invoice of any form safely and read its key fields; ``ValueError`` says what is wrong."""
    try:
        root = etree.fromstring(xml, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as error:
        raise ValueError(f"Nieprawidłowy XML: {error}") from error
    return fields_of(root)


def reread_fields(invoice: Invoice) -> None:
    """Give an invoice unpickled from an older ``--state`` file what KSeF reads from it again.

    Unpickling restores only the attributes the file has: an ``InvoiceFields`` written before
    ``vat_pln``, ``buyer_id`` (and the other parties, self-billing) existed reads the class
    defaults for them, so its record said ``vatAmount`` 0 and a buyer without identifier, and
    the filters on them missed it. Its XML is kept, so they are read from it again (one that no
    longer parses keeps what it has)."""
    stored = invoice.fields
    if stored is None or all(spec.name in vars(stored) for spec in dataclass_fields(stored)):
        return
    try:
        invoice.fields = read_invoice_fields(invoice.xml)
    except ValueError:
        return


def fields_of(root: etree._Element) -> InvoiceFields:
    """``read_invoice_fields`` of a document already parsed (safely); ``ValueError`` says what is wrong."""
    name = etree.QName(root).localname
    if name in ("Invoice", "CreditNote"):
        return _ubl_fields(root, name)
    if _find(root, "{*}FakturaRR") is not None:
        return _rr_fields(root)
    return _fa_fields(root)


def _identifier(ids: etree._Element | None) -> tuple[str, str | None]:
    """The identifier of a party's ``DaneIdentyfikacyjne`` (``TPodmiot2``/``TPodmiot3`` choice) as
    the spec's identifier type and value. The spec does not say how an EU VAT number is written:
    the emulator gives it with its prefix, ``KodUE`` ("Kod (prefiks) nabywcy VAT UE") followed by
    ``NrVatUE``, as the number is written; ``KodKraju`` is the country that issued an ``NrID``,
    not part of it."""
    if ids is None:
        return "None", None
    for element, kind in (("NIP", "Nip"), ("IDWew", "InternalId"), ("NrID", "Other")):
        value = _text(ids, f"{{*}}{element}")
        if value is not None:
            return kind, value
    number = _text(ids, "{*}NrVatUE")
    if number is not None:
        return "VatUe", (_text(ids, "{*}KodUE") or "") + number
    return "None", None  # BrakID


def _parties(root: etree._Element) -> dict[str, Any]:
    """Seller (``Podmiot1``) and buyer (``Podmiot2``) of an FA-family invoice."""
    buyer_id = _identifier(_find(root, "{*}Podmiot2/{*}DaneIdentyfikacyjne"))
    return {
        "seller": _required(root, "{*}Podmiot1/{*}DaneIdentyfikacyjne/{*}NIP"),
        "buyer": buyer_id[1] if buyer_id[0] == "Nip" else None,
        "buyer_id": buyer_id,
        "seller_name": _text(root, "{*}Podmiot1/{*}DaneIdentyfikacyjne/{*}Nazwa"),
        "buyer_name": _text(root, "{*}Podmiot2/{*}DaneIdentyfikacyjne/{*}Nazwa"),
        "third_subjects": tuple(_third_subject(element) for element in root.iterchildren("{*}Podmiot3")),
        "authorized_subject": _authorized_subject(_find(root, "{*}PodmiotUpowazniony")),
    }


def _third_subject(element: etree._Element) -> ThirdSubject:
    ids = _find(element, "{*}DaneIdentyfikacyjne")
    kind, value = _identifier(ids)
    name = _text(ids, "{*}Nazwa") if ids is not None else None
    # Rola, or RolaInna: "Znacznik innego podmiotu" -> the spec's role 0, "Inna rola".
    return ThirdSubject(kind, value, name, _int(_text(element, "{*}Rola")))


def _authorized_subject(element: etree._Element | None) -> AuthorizedSubject | None:
    if element is None:
        return None
    return AuthorizedSubject(
        _required(element, "{*}DaneIdentyfikacyjne/{*}NIP"),
        _text(element, "{*}DaneIdentyfikacyjne/{*}Nazwa"),
        _int(_text(element, "{*}RolaPU")),
    )


def _fa_fields(root: etree._Element) -> InvoiceFields:
    fa = _find(root, "{*}Fa")
    return InvoiceFields(
        **_parties(root),
        kind=_required(root, "{*}Fa/{*}RodzajFaktury"),
        number=_required(root, "{*}Fa/{*}P_2"),
        issue_date=_required(root, "{*}Fa/{*}P_1"),
        currency=_text(root, "{*}Fa/{*}KodWaluty") or "PLN",
        net=_sum(fa, "P_13_"),
        vat_pln=_tax_in_pln(fa),
        gross=_decimal(_text(root, "{*}Fa/{*}P_15")),
        has_attachment=has_attachment(root),
        # Adnotacje/P_17: "W przypadku faktur, o których mowa w art. 106d ust. 1 ustawy - wyraz
        # "samofakturowanie"; należy podać wartość "1"" (FA XSD).
        self_invoicing=_text(root, "{*}Fa/{*}Adnotacje/{*}P_17") == "1",
    )


def _rr_fields(root: etree._Element) -> InvoiceFields:
    # FA_RR: the buyer (Podmiot2) issues the invoice for a flat-rate farmer (Podmiot1). That is no
    # self-billing of art. 106d (P_17 of the FA forms; FA_RR has no such mark).
    rr = "{*}FakturaRR/"
    return InvoiceFields(
        **_parties(root),
        kind=_required(root, rr + "{*}RodzajFaktury"),
        number=_required(root, rr + "{*}P_4C"),
        issue_date=_required(root, rr + "{*}P_4B"),
        currency=_text(root, rr + "{*}KodWaluty") or "PLN",
        net=_decimal(_text(root, rr + "{*}P_11_1")),
        # P_11_2W: "W przypadku gdy faktura jest wystawiona w walucie obcej - kwota zryczałtowanego
        # zwrotu podatku, przeliczona" (FA_RR XSD).
        vat_pln=_decimal(_text(root, rr + "{*}P_11_2W") or _text(root, rr + "{*}P_11_2")),
        gross=_decimal(_text(root, rr + "{*}P_12_1")),
    )


def _ubl_identifier(root: etree._Element, party: str) -> tuple[str, str | None]:
    """A UBL party's VAT identifier (``PartyTaxScheme/CompanyID``) as the spec's identifier: a
    Polish one (``PL`` and ten digits, or ten digits) a ``Nip``, one with another EU prefix a
    ``VatUe``, any other an ``Other``, none ``None``."""
    raw = _text(root, f"cac:{party}/cac:Party/cac:PartyTaxScheme/cbc:CompanyID", UBL)
    if raw is None:
        return "None", None
    nip = raw.removeprefix("PL")
    if len(nip) == 10 and nip.isdigit():
        return "Nip", nip
    return ("VatUe" if raw[:2] in EU_PREFIXES else "Other"), raw


def _ubl_tax_in_pln(root: etree._Element) -> Decimal:
    """``TaxTotal/TaxAmount`` in PLN: an invoice in another currency gives its tax in the tax
    currency too (a second ``TaxTotal``, ``TaxCurrencyCode``); without one in PLN the document's."""
    amounts = root.findall("cac:TaxTotal/cbc:TaxAmount", UBL)
    in_pln = [a for a in amounts if a.get("currencyID") == "PLN"]
    chosen = in_pln or amounts
    return _decimal(_value(chosen[0])) if chosen else Decimal(0)


def _ubl_fields(root: etree._Element, name: str) -> InvoiceFields:
    _, seller = _ubl_identifier(root, "AccountingSupplierParty")
    if seller is None:
        raise ValueError("Brak elementu AccountingSupplierParty/Party/PartyTaxScheme/CompanyID.")
    buyer_id = _ubl_identifier(root, "AccountingCustomerParty")
    type_code = _text(root, "cbc:InvoiceTypeCode" if name == "Invoice" else "cbc:CreditNoteTypeCode", UBL)
    return InvoiceFields(
        seller=seller,
        kind="KorPef" if name == "CreditNote" else "VatPef",
        number=_required(root, "cbc:ID", UBL),
        issue_date=_required(root, "cbc:IssueDate", UBL),
        buyer=buyer_id[1] if buyer_id[0] == "Nip" else None,
        buyer_id=buyer_id,
        seller_name=_text(root, "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName", UBL),
        buyer_name=_text(root, "cac:AccountingCustomerParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName", UBL),
        currency=_text(root, "cbc:DocumentCurrencyCode", UBL) or "PLN",
        net=_decimal(_text(root, "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount", UBL)),
        vat_pln=_ubl_tax_in_pln(root),
        gross=_decimal(_text(root, "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", UBL)),
        # UNTDID 1001: 389 "Self-billed invoice", 261 "Self billed credit note".
        self_invoicing=type_code in ("389", "261"),
        # An embedded document (cac:Attachment/cbc:EmbeddedDocumentBinaryObject): KSeF lists the
        # Ministry's PEF template with one as hasAttachment: true (its Java client's integration
        # test of the filter, QueryInvoiceIntegrationTest).
        has_attachment=has_attachment(root),
    )


@dataclass
class Export:
    """An export job and, once built, its package: the description without links (``package``)
    and each part's encrypted bytes (``part_data``), linked afresh on every poll."""

    reference_number: str
    context_nip: str | None
    status: Status
    created: dt.datetime
    reads_left: int
    query: Query
    key: SymmetricKey = field(repr=False)
    only_metadata: bool
    compression: str = "Zip"
    package: dict[str, Any] | None = None
    part_data: list[bytes] = field(default_factory=list, repr=False)
    # When the package was built: completedDate, "Data zakończenia przetwarzania żądania eksportu".
    completed: dt.datetime | None = None
    invoices: list[Invoice] = field(default_factory=list, repr=False)
    # The HWM when the invoices were chosen: the one the package may promise ("dane poniżej tej
    # wartości są spójne i kompletne"), not a later one past invoices stored meanwhile.
    hwm: dt.datetime | None = None
    # The status the export ends with instead of a package (420: its range starts past the HWM).
    refusal: Status | None = None
    # The context that started it ("w zalogowanym kontekście", the spec): its NIP alone would let a
    # branch (InternalId) and its head office see each other's exports. None: an export of an
    # earlier version (a --state file), known by its NIP only.
    context: Context | None = None
    # Who started it (``Access.subject``): the 10 running exports are each person's in a context
    # (21182: "Dla uwierzytelnionego podmiotu w bieżącym kontekście osiągnięto maksymalny limit").
    # None: an export of an earlier version, counted for everyone.
    started_by: tuple[str, str] | None = None

    def belongs_to(self, context: Context) -> bool:
        """Whether ``context`` started this export (may poll it and counts it as running)."""
        return self.context == context if self.context is not None else self.context_nip == context.nip

    @property
    def package_expiration(self) -> dt.datetime | None:
        """``packageExpirationDate``: ``PACKAGE_LIFETIME`` after completion, for a built package."""
        if self.package is None or self.completed is None:
            return None
        return self.completed + PACKAGE_LIFETIME

    def kept_until(self) -> dt.datetime:
        """When its status goes (410): ``STATUS_RETENTION`` after its last status."""
        last = self.package_expiration or self.completed or self.created
        return last + STATUS_RETENTION


@dataclass(frozen=True)
class MetadataPage:
    """One page of ``POST /invoices/query/metadata``: the records, ``hasMore``, ``isTruncated``
    and the ``permanentStorageHwmDate`` to report (``None`` for Issue and Invoicing dates)."""

    invoices: list[Invoice]
    has_more: bool
    is_truncated: bool
    hwm: dt.datetime | None


@dataclass
class InvoicesState:
    """Accepted invoices (in acquisition order), their duplicate keys, exports, and the HWM each
    recent metadata query was answered with (by context and filters)."""

    accepted: list[Invoice] = field(default_factory=list)
    keys: dict[tuple[str, str, str], Invoice] = field(default_factory=dict)
    exports: dict[str, Export] = field(default_factory=dict)
    query_hwms: dict[tuple[Context, Query], dt.datetime] = field(default_factory=dict)
    # Accepted invoices not yet in permanent storage (``Transitions.storage_reads``), and the latest
    # ``permanentStorageDate`` given (``None``: none yet, or a state saved before it was kept).
    unstored: list[Invoice] = field(default_factory=list)
    latest_stored: dt.datetime | None = None
    # The latest HWM the emulator has computed for an answer: no invoice is stored at or before it
    # afterwards (``None``: none yet, or a state saved before it was kept).
    given_hwm: dt.datetime | None = None


class Invoices:
    """The invoice repository of one emulator."""

    def __init__(self, core: Core, storage: Storage, faults: Faults | None = None) -> None:
        self.core = core
        self.storage = storage
        self.faults = faults
        self.state = InvoicesState()

    def duplicate_of(self, fields: InvoiceFields) -> Invoice | None:
        """The accepted invoice with the same seller, kind and number (KSeF's duplicate key)."""
        return self.state.keys.get((fields.seller, fields.kind, fields.number))

    def register(self, invoice: Invoice) -> None:
        """Keep an accepted invoice: downloadable, in metadata and exports, a duplicate key.

        With ``Transitions.storage_reads`` = N (0 by default) it is not stored yet: "Wartość
        uzupełniana asynchronicznie w momencie trwałego zapisu [...] Podczas sprawdzania statusu
        może być jeszcze niedostępna" (the spec, ``permanentStorageDate``), and "od tego momentu
        faktura jest dostępna do pobrania" (api-changelog). The first N reads of it (a status read
        showing its KSeF number, a download) find it not stored (no ``permanentStorageDate``, the
        download 400 / 21165); the next read stores it, as does ``storage_delay`` seconds on the
        emulator's clock, whichever comes first. Until then no metadata query or export finds it.

        With ``Settings.late_storage`` on, it waits for an answer (a metadata query, an export)
        to give an HWM after its numbering, and is then stored just past that HWM (or after
        ``storage_delay`` seconds, whichever comes first); with ``Settings.storage_resolution``, at
        the end of the period of that length it falls in, once the emulator's clock gets there.
        """
        assert invoice.fields is not None and invoice.acquired is not None
        transitions, settings = self.core.transitions, self.core.settings
        with self.core.lock:
            self.state.accepted.append(invoice)
            self.state.keys[(invoice.fields.seller, invoice.fields.kind, invoice.fields.number)] = invoice
            resolution = settings.storage_resolution
            if transitions.storage_reads > 0 or settings.late_storage:
                invoice.storage_reads_left = transitions.storage_reads
                invoice.storage_due = invoice.acquired + dt.timedelta(seconds=transitions.storage_delay)
                invoice.late = invoice.awaits_answer = settings.late_storage
                self.state.unstored.append(invoice)
            elif resolution:
                invoice.storage_due = on_grid(invoice.acquired + PERMANENT_STORAGE_DELAY, resolution)
                self.state.unstored.append(invoice)
            else:
                self._stored(invoice)

    def _stored(self, invoice: Invoice) -> None:
        """Count ``invoice``, stored now (under the lock), in ``latest_stored``."""
        stored = invoice.stored
        assert stored is not None
        latest = self.state.latest_stored
        self.state.latest_stored = stored if latest is None else max(latest, stored)

    def _store(self, invoice: Invoice, at: dt.datetime, after: dt.datetime | None = None) -> dt.datetime | None:
        """Store a held-back ``invoice`` (under the lock), dated ``at`` at the earliest, and 1 ms
        after its acquisition; its date (``None``: not stored yet, see below).

        Never at or before a date an invoice stored earlier was given (the emulator's default),
        so an HWM reported before it was stored stays below it. A ``late`` one, or any with
        ``storage_resolution``, is dated past the latest HWM given instead, which may put it
        below invoices already visible (and ``after`` a late one stored with it, to keep their
        dates apart). With ``storage_resolution`` the date is the first multiple of it from
        there; one the emulator's clock has not reached yet is where it is stored then."""
        assert invoice.acquired is not None
        resolution, state = self.core.settings.storage_resolution, self.state
        if invoice.late or resolution:
            promised = state.given_hwm
            floor = promised + ACQUISITION_STEP if promised is not None else at
            if after is not None and not resolution:
                floor = max(floor, after + ACQUISITION_STEP)
        else:
            floor = state.latest_stored + ACQUISITION_STEP if state.latest_stored is not None else at
        when = max(at, invoice.acquired + PERMANENT_STORAGE_DELAY, floor)
        if resolution:
            when = on_grid(when, resolution)
            if when > self.core.clock():
                invoice.storage_due, invoice.awaits_answer, invoice.storage_reads_left = when, False, 0
                return None
        invoice.stored_at = when
        state.unstored.remove(invoice)
        self._stored(invoice)
        return when

    def _store_due(self) -> None:
        """Store every held-back invoice whose ``storage_due`` has come, and every late one an
        answer has released since it was numbered (under the lock)."""
        if not self.state.unstored:
            return
        now = self.core.clock()
        after = None
        for invoice in list(self.state.unstored):
            if invoice.storage_due is not None and invoice.storage_due <= now:
                self._store(invoice, invoice.storage_due)
            elif invoice.late and not invoice.awaits_answer and invoice.storage_reads_left == 0:
                assert invoice.acquired is not None
                after = self._store(invoice, invoice.acquired, after) or after

    def _answered(self) -> None:
        """An answer has given an HWM (``given_hwm``): the late invoices waiting for one are stored
        past it from the next request on (under the lock, after the answer's invoices are chosen)."""
        for invoice in self.state.unstored:
            invoice.awaits_answer = False

    def read_stored(self, invoice: Invoice) -> bool:
        """Count one read of a numbered invoice (its status showing the KSeF number, or its
        download): whether this read finds it in permanent storage (``register``)."""
        with self.core.lock:
            self._store_due()
            if not invoice.storage_pending:
                return True
            if invoice.storage_reads_left > 0:
                invoice.storage_reads_left -= 1
                return False
            if invoice.awaits_answer:
                return False
            return self._store(invoice, self.core.clock()) is not None

    def acquisition_time(self) -> dt.datetime:
        """The ``acquisitionDate`` of the invoice numbered now (called under the lock, with its
        ``register``): the clock's time, or 1 µs after the invoice numbered last where the clock has
        not passed it (a frozen test clock, or two invoices within the clock's resolution). KSeF
        stores invoices one after another; were many to share one date, an export cut at that date
        would be asked for again from it, and a client would never get past them (a package holds
        at most ``metadata_limit``: "kolejne wywołanie należy rozpocząć od LastPermanentStorageDate",
        przyrostowe-pobieranie-faktur.md)."""
        now = self.core.clock()
        accepted = self.state.accepted
        last = accepted[-1].acquired if accepted else None
        return max(now, last + ACQUISITION_STEP) if last is not None else now

    def hwm(self) -> dt.datetime:
        """``permanentStorageHwmDate`` now: "System gwarantuje, że dane poniżej tej wartości są
        spójne i kompletne" (the spec), a "kroczący znacznik czasu" that moves with time, not only
        with new invoices (pobieranie-faktur/hwm.md: "W każdej chwili system zna moment w czasie
        (HWM), do którego ma już pewność, że wszystkie faktury zostały zapisane").

        The emulator stores an invoice as it numbers it, under the lock, 1 ms after its clock's
        time: nothing can still be stored at or before now. So the HWM is now, or the last stored
        invoice's date where that passes now (a frozen clock); less ``hwm_lag`` (a setting, none by
        default), for a test of a client against an HWM that trails the present as KSeF's does
        ("W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić nowe faktury"). Kept as
        ``given_hwm``: an invoice stored late is dated past it."""
        with self.core.lock:
            self._store_due()
            now = self.core.clock()
            last = self.state.latest_stored
            if last is None and self.state.accepted:  # a state saved before ``latest_stored``
                last = self.state.accepted[-1].stored
            present = max(now, last) if last is not None else now
            hwm = present - self.core.settings.hwm_lag
            given = self.state.given_hwm
            self.state.given_hwm = hwm if given is None else max(given, hwm)
            return hwm

    def is_party(self, context: Context, ksef_number: str) -> bool:
        """Whether ``context`` plays a role (seller, buyer, Podmiot3, PodmiotUpowazniony) on the
        stored invoice ``ksef_number``."""
        return any(
            i.ksef_number == ksef_number and i.fields is not None and plays_a_role(i.fields, context)
            for i in self.state.accepted
        )

    def download(self, access: Access, ksef_number: str) -> bytes:
        """``GET /invoices/ksef/{n}``: an invoice on which the caller's context plays a role.

        Not only the seller and the buyer: the guide has invoices downloaded "oddzielnie dla
        każdego typu podmiotu (`Podmiot 1`, `Podmiot 2`, `Podmiot 3`, `Podmiot upoważniony`)
        występującego w dokumencie" (pobieranie-faktur/przyrostowe-pobieranie-faktur.md), and
        the FA(3) XSD fills ``Podmiot3`` "aby udostępnić fakturę jednostce podrzędnej JST"."""
        for invoice in self.state.accepted:
            if invoice.ksef_number == ksef_number and invoice.fields and plays_a_role(invoice.fields, access.context):
                if not self.read_stored(invoice):
                    raise MockAPIError(21165, NOT_YET_AVAILABLE, [NOT_YET_AVAILABLE_DETAIL.format(ksef_number)])
                return invoice.xml
        raise NotFound(21164, "Faktura o podanym identyfikatorze nie istnieje.",
                       [f"Faktura o numerze KSeF {ksef_number} nie została znaleziona."])  # fmt: skip

    def matching(self, access: Access, query: Query, hwm: dt.datetime | None = None) -> list[Invoice]:
        """Invoices of the caller's context that match ``query``, by the query's date, then number;
        ``hwm``: the HWM the query is answered with (default: the current one)."""
        end = query.date_to
        if query.restrict_to_hwm and query.date_type == "PermanentStorage":
            # restrictToPermanentStorageHwmDate: "Dotyczy wyłącznie zapytań z dateType =
            # PermanentStorage [...] wartość dateRange.to nie przekraczała wartości
            # PermanentStorageHwmDate".
            # Open-ended: up to the HWM itself ("PermanentStorageHwmDate gdy dateRange.to
            # pominięto"), never cut below an invoice at it (the HWM may pass a frozen clock).
            hwm = self.hwm() if hwm is None else hwm
            end = hwm if end is None else min(end, hwm)
        found = []
        with self.core.lock:
            self._store_due()
        for invoice in self.state.accepted:
            fields = invoice.fields
            if fields is None or invoice.acquired is None or invoice.storage_pending:
                continue  # an InvoiceMetadata record has a permanentStorageDate: none before the storage
            if not is_subject(fields, query.subject_type, access.context):
                continue
            when = _date_of(invoice, query.date_type)
            if when < query.date_from or (end is not None and when > end):
                continue
            if query.accepts(invoice):
                found.append(invoice)
        found.sort(key=lambda i: (_date_of(i, query.date_type), i.ksef_number or ""))
        return found

    def query_metadata(
        self, access: Access, query: Query, *, page_offset: int, page_size: int, descending: bool = False
    ) -> MetadataPage:
        """One page; the result stops at ``metadata_limit``.

        The page that reaches the limit while more records match says both ``hasMore`` and
        ``isTruncated`` (the spec's walk: "hasMore = true i isTruncated = true" -> narrow the
        dateRange from the last record's date, pageOffset 0).

        The HWM is the query's, not each page's: QueryInvoicesMetadataResponse.permanentStorageHwmDate
        "jest stała dla wszystkich stron tego samego zapytania i nie zależy od paginacji ani
        sortowania". The same query is the same filters from the same context; its first page
        (``pageOffset`` 0) starts it again with the current HWM, a later page keeps the HWM the
        query was started with (and a window restricted to the HWM keeps its end with it).

        A page starting at or past the limit is refused (21405), as KSeF does: "You cannot retrieve
        invoices starting from number 10 000 or higher. Please narrow your filters."
        (CIRFMF/ksef-api#165, marcinbojko/ksef-gui#36); past the cap the spec's walk narrows the
        dateRange and starts again from pageOffset 0, it never pages on."""
        limit = self.core.settings.metadata_limit
        if page_offset * page_size >= limit:
            first = f"{limit:,}".replace(",", " ")  # KSeF writes "10 000"
            detail = f"You cannot retrieve invoices starting from number {first} or higher. Please narrow your filters."
            raise MockAPIError(21405, VALIDATION, [detail])
        with self.core.lock:
            hwm = self._query_hwm(access.context, query, again=page_offset == 0)
            if beyond_hwm(query, hwm):
                raise MockAPIError(21183, OUT_OF_RANGE + ".", [OUT_OF_RANGE_DETAIL])
            found = self.matching(access, query, hwm)
            self._answered()
        if descending:
            found.reverse()
        capped = found[:limit]
        start = page_offset * page_size
        page = capped[start : start + page_size]
        end = start + len(page)
        truncated = len(found) > len(capped) and end >= len(capped) and start < len(capped)
        return MetadataPage(page, end < len(capped) or truncated, truncated, reported_hwm(query, hwm))

    def _query_hwm(self, context: Context, query: Query, *, again: bool) -> dt.datetime:
        """The HWM of ``query`` from ``context``: remembered from its first page, or now."""
        remembered = self.state.query_hwms
        key = (context, query)
        if again or key not in remembered:
            remembered.pop(key, None)  # re-inserted last: the newest is forgotten last
            remembered[key] = self.hwm()
            while len(remembered) > REMEMBERED_QUERIES:
                del remembered[next(iter(remembered))]
        return remembered[key]

    # --- exports -------------------------------------------------------------------------------

    def start_export(
        self, access: Access, query: Query, key: SymmetricKey, only_metadata: bool, compression: str = "Zip"
    ) -> Export:
        """``POST /invoices/exports``: at most 10 running exports per context (21182).

        A range restricted to an HWM it starts after is accepted and fails: the spec lists no such
        code for this operation, but its status, InvoiceExportStatusResponse, has "420 | Zakres
        filtrowania wykracza poza dostępny zakres danych | Parametr dateRange.from jest późniejszy
        niż PermanentStorageHwmDate przy włączonym restrictToPermanentStorageHwmDate"."""
        with self.core.lock:
            running = [e for e in self.state.exports.values() if self._running_for(e, access)]
            if len(running) >= MAX_RUNNING_EXPORTS:
                raise MockAPIError(21182, "Osiągnięto limit trwających eksportów.", [RUNNING_EXPORTS_DETAIL])
            export = Export(
                self.core.new_reference_number("EX"), access.context.nip, Status(100, EXPORT_TEXT[100]),
                self.core.clock(), self.core.transitions.session_reads, query, key, only_metadata, compression,
                context=access.context, started_by=access.subject,
            )  # fmt: skip
            export.hwm = self.hwm()
            if beyond_hwm(query, export.hwm):
                export.refusal = Status(420, OUT_OF_RANGE, [OUT_OF_RANGE_DETAIL])
            else:
                export.invoices = self.matching(access, query, export.hwm)
            self._answered()
            self.state.exports[export.reference_number] = export
        return export

    @staticmethod
    def _running_for(export: Export, access: Access) -> bool:
        """Whether ``export`` is one of the running exports ``access``'s subject has in its context."""
        mine = export.started_by is None or export.started_by == access.subject
        return export.belongs_to(access.context) and mine and export.status.code == 100

    def export_status(self, access: Access, reference_number: str) -> Export:
        """Poll an export; the first ``session_reads`` polls find it in progress (100), the next one
        built (200) or refused; a package past its ``packageExpirationDate`` is expired (210), a
        status past ``Export.kept_until`` gone (``Gone``, 410)."""
        export = self.state.exports.get(reference_number)
        if export is None or not export.belongs_to(access.context):
            raise NotFound(21175, "Wynik zapytania o podanym identyfikatorze nie istnieje.")
        now = self.core.clock()
        # An export still in progress is settled first: KSeF builds it whether or not its status
        # is read, so one never read is not "in progress" for ever (it would hold one of the 10
        # running exports, 21182, once its retention passed); its retention runs from then.
        if export.status.code == 100:
            if export.reads_left <= 0 and export.refusal is not None:
                export.status, export.completed = export.refusal, now
            elif export.reads_left <= 0:
                self._build_export(export)
            else:
                export.reads_left -= 1
        if export.status.code != 100 and now >= export.kept_until():
            raise Gone()
        expiration = export.package_expiration
        if export.status.code == 200 and expiration is not None and now >= expiration:
            export.status = Status(210, EXPORT_TEXT[210])
            export.part_data = []  # nothing is linked to it any more
        return export

    def _build_export(self, export: Export) -> None:
        settings = self.core.settings
        chosen = fill_package(
            export.invoices, settings.metadata_limit, settings.export_package_limit, export.only_metadata
        )
        truncated = len(export.invoices) > len(chosen)
        damage = self.faults.export_metadata if self.faults is not None else None
        check = self.core.check_metadata_record
        seven = settings.seven_digit_dates
        if not chosen:
            # KSeF's answer to an export that matches nothing (CIRFMF/ksef-api#466): "Przy
            # eksporcie, jeżeli nie ma żadnych faktur to w `package` będzie: "invoiceCount": 0,
            # "size": 0, "parts": []" (the spec: InvoicePackage.size minimum 0, partSize minimum 1).
            package = b""
        elif damage is None:
            package = pack_export(chosen, export.only_metadata, export.compression, check=check, seven_digits=seven)
        else:
            package = pack_export(
                chosen, export.only_metadata, export.compression, damage=damage, check=check, seven_digits=seven
            )
        suffix = "tar.gz" if export.compression == "TarGz" else "zip"
        parts, export.part_data = [], []
        size = self.core.settings.export_part_size
        for index in range(-(-len(package) // size)):
            plain = package[index * size : (index + 1) * size]
            encrypted = export.key.encrypt(plain)
            export.part_data.append(encrypted)
            parts.append({
                "ordinalNumber": index + 1, "partName": f"{export.reference_number}-{index + 1:03d}.{suffix}.aes",
                "method": "GET", "partSize": len(plain), "partHash": sha256_b64(plain),
                "encryptedPartSize": len(encrypted), "encryptedPartHash": sha256_b64(encrypted),
            })  # fmt: skip
        export.package = {
            "invoiceCount": len(chosen), "size": len(package), "parts": parts, "isTruncated": truncated,
            "compressionType": export.compression,
            "permanentStorageHwmDate": reported_hwm(export.query, export.hwm or self.hwm()),
        }  # fmt: skip
        if truncated and chosen:
            date_type = export.query.date_type
            export.package[LAST_DATES[date_type]] = _last_date(chosen[-1], date_type)
        if seven:  # written now, as the records of its _metadata.json are
            dated = {k: date_text(v, True) for k, v in export.package.items() if isinstance(v, dt.datetime)}
            export.package.update(dated)
        export.status = Status(200, EXPORT_TEXT[200])
        export.completed = self.core.clock()

    def linked_package(self, export: Export) -> dict[str, Any] | None:
        """The package of a built export with a fresh presigned link for each part (its storage
        name, ``storage``) and that link's ``expirationDate``, on the emulator's clock. The spec,
        InvoicePackagePart.url: "Link jest generowany dynamicznie w momencie odpytania o status
        operacji eksportu"; expirationDate: "Po upływie tego momentu link przestaje być aktywny".
        Links handed out before keep working until they expire, as presigned links do."""
        if export.package is None or export.status.code != 200:  # 210: "nie jest już dostępny"
            return None
        data_of_parts = getattr(export, "part_data", None)
        if data_of_parts is None:  # built by an earlier version (a --state file): its links, made once
            return export.package
        parts = []
        for part, data in zip(export.package["parts"], data_of_parts, strict=True):
            name, expires = self.storage.presign(data, until=export.package_expiration)
            parts.append({**part, "storage": name, "expirationDate": expires})
        return {**export.package, "parts": parts}


def fill_package(invoices: list[Invoice], count_limit: int, size_limit: int, only_metadata: bool) -> list[Invoice]:
    """The first of ``invoices`` (in the export's date order) one package holds.

    The spec (POST /invoices/exports): KSeF "dodaje faktury(nazwa pliku: {ksefNumber}.xml) do
    paczki aż do osiągnięcia jednego z poniższych limitów: * Limit liczby faktur: 10 000 sztuk *
    Limit rozmiaru danych(skompresowanych): 1GB"; "Plik z metadanymi(_metadata.json) nie jest
    wliczany do limitów algorytmu budowania paczki". So only the ``{ksefNumber}.xml`` files count,
    each as ``compressed_size`` of its XML; a package stops before the invoice that would take the
    sum past ``size_limit``. An ``onlyMetadata`` package holds no invoice files: only the count cuts
    it. The first invoice always goes in, however large: a package that could not hold it would be
    empty, its window never move past it, and an incremental download would ask for it forever.
    """
    chosen = invoices[:count_limit]
    if only_metadata or sum(_most_compressed(len(invoice.xml)) for invoice in chosen) <= size_limit:
        return chosen  # cannot reach the limit: no invoice compressed to measure it (a 10,000-invoice export)
    total = 0
    for taken, invoice in enumerate(chosen):
        total += compressed_size(invoice.xml)
        if taken and total > size_limit:
            return chosen[:taken]
    return chosen


def _most_compressed(size: int) -> int:
    """The most ``size`` bytes take compressed by deflate (zlib's ``compressBound``, which also
    counts a zlib header and checksum a raw stream has not)."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


def compressed_size(xml: bytes) -> int:
    """The bytes ``xml`` takes compressed in an export package, for its size limit.

    Raw DEFLATE at zlib's default level, alone: exactly the ``compress_size`` of its member in the
    Zip package ``pack_export`` writes (``zipfile`` compresses each member with these parameters),
    headers left out ("rozmiar danych"). A TarGz package has no size per member (one gzip stream):
    the same measure, so a package holds the same invoices in either compression."""
    packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return len(packer.compress(xml)) + len(packer.flush())


# InvoicePackage: the date of the last invoice of a truncated package, one field per dateType;
# each "występuje wyłącznie wtedy, gdy paczka została ucięta i eksport był filtrowany po typie
# daty" of its name (the spec): never for a whole package, never the other two.
LAST_DATES = {
    "Issue": "lastIssueDate", "Invoicing": "lastInvoicingDate", "PermanentStorage": "lastPermanentStorageDate",
}  # fmt: skip


def _last_date(invoice: Invoice, date_type: str) -> str | dt.datetime:
    """``lastIssueDate`` (format ``date``: the invoice's P_1), ``lastInvoicingDate`` or
    ``lastPermanentStorageDate`` (``date-time``) of ``invoice``, the last of a truncated package."""
    if date_type == "Issue" and invoice.fields is not None:
        return invoice.fields.issue_date
    return _date_of(invoice, date_type)


# A range restricted to the HWM that starts after it: 400 / 21183 of POST /invoices/query/metadata,
# status 420 of an export (the spec's texts).
OUT_OF_RANGE = "Zakres filtrowania wykracza poza dostępny zakres danych"  # 21183's ends with a full stop
OUT_OF_RANGE_DETAIL = (
    "Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate przy włączonym "
    "restrictToPermanentStorageHwmDate."
)


def beyond_hwm(query: Query, hwm: dt.datetime) -> bool:
    """Whether ``query`` is restricted to ``hwm`` and starts after it (21183, export 420). The
    restriction applies to PermanentStorage dates only ("Dotyczy wyłącznie zapytań z dateType =
    PermanentStorage"); a range starting at the HWM itself is not "późniejszy" (the next window
    starts where the last one ended, przyrostowe-pobieranie-faktur.md)."""
    return query.restrict_to_hwm and query.date_type == "PermanentStorage" and query.date_from > hwm


def reported_hwm(query: Query, hwm: dt.datetime) -> dt.datetime | None:
    """The ``permanentStorageHwmDate`` a query or export answered at ``hwm`` reports.

    The spec (QueryInvoicesMetadataResponse and InvoicePackage): "Dotyczy wyłącznie zapytań
    filtrowanych po typie daty PermanentStorage [...] Dla dateType = Issue lub Invoicing - null";
    "Jeśli zapytanie dotyczyło najnowszego okresu, wartość ta może być wartością nieznacznie
    skorygowaną względem górnej granicy podanej w warunkach zapytania. Dla okresów starszych, będzie
    to zgodne z warunkami zapytania": the query's ``to`` when the HWM is past it, else the HWM. An
    open query reports the HWM itself (its window ends there: "PermanentStorageHwmDate gdy
    dateRange.to pominięto", przyrostowe-pobieranie-faktur.md)."""
    if query.date_type != "PermanentStorage":
        return None
    return hwm if query.date_to is None else min(query.date_to, hwm)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def on_grid(when: dt.datetime, resolution: dt.timedelta) -> dt.datetime:
    """The first multiple of ``resolution`` (counted from the Unix epoch) at or after ``when``
    (``Settings.storage_resolution``)."""
    return _EPOCH + -(-(when - _EPOCH) // resolution) * resolution


def seventh_digit(when: dt.datetime) -> int:
    """The 100-ns digit the emulator gives a moment in seven-digit mode: 1 to 9, a function of its
    microsecond, so that dates keep their order and read back (cut to the microsecond, as Python's
    ``fromisoformat`` cuts them) as the moment the emulator compares."""
    return when.microsecond % 9 + 1


def date_text(when: dt.datetime, seven_digits: bool = False) -> str:
    """A date as an answer writes it: ISO 8601 (``isoformat``), or with ``seven_digits``
    (``Settings.seven_digit_dates``) as KSeF's .NET service writes one, to 100 ns with trailing
    zeros dropped and the offset as "+00:00": the spec's "2025-09-18T12:24:01.0154302+00:00",
    "2025-08-28T09:23:55.388+00:00"."""
    if not seven_digits:
        return when.isoformat()
    whole = when.astimezone(dt.UTC).replace(microsecond=0).isoformat()
    fraction = f"{when.microsecond:06d}{seventh_digit(when)}".rstrip("0")
    return f"{whole[:19]}.{fraction}{whole[19:]}"


def _date_of(invoice: Invoice, date_type: str) -> dt.datetime:
    assert invoice.acquired is not None
    if date_type == "Issue" and invoice.fields is not None:
        return dt.datetime.fromisoformat(invoice.fields.issue_date).replace(tzinfo=dt.UTC)
    if date_type == "Invoicing":
        return invoice.received
    stored = invoice.stored  # PermanentStorage
    assert stored is not None
    return stored


def _check_records(records: list[dict[str, Any]], check: Callable[[dict[str, Any]], list[str]]) -> None:
    problems = [f"invoices[{n}] {problem}" for n, record in enumerate(records) for problem in check(record)]
    if problems:
        raise StrictModeViolation(f"_metadata.json of an export package: {'; '.join(problems[:5])}")


def _identifier_record(identifier: tuple[str, str | None]) -> dict[str, Any]:
    return {"type": identifier[0], "value": identifier[1]}


def _other_parties(fields: InvoiceFields) -> dict[str, Any]:
    """``thirdSubjects`` and ``authorizedSubject`` of a record, when the invoice names them."""
    record: dict[str, Any] = {}
    if fields.third_subjects:
        record["thirdSubjects"] = [
            {"identifier": _identifier_record((t.type, t.value)), "name": t.name, "role": t.role}
            for t in fields.third_subjects
        ]
    if fields.authorized_subject is not None:
        subject = fields.authorized_subject
        record["authorizedSubject"] = {"nip": subject.nip, "name": subject.name, "role": subject.role}
    return record


def iso_stored(invoice: Invoice, seven_digits: bool = False) -> str:
    """``permanentStorageDate`` of a stored invoice, ISO 8601 (``date_text``)."""
    stored = invoice.stored
    assert stored is not None
    return date_text(stored, seven_digits)


def metadata_of(invoice: Invoice, seven_digits: bool = False) -> dict[str, Any]:
    """An ``InvoiceMetadata`` record; ``seven_digits``: its dates as ``date_text`` writes them."""
    fields = invoice.fields
    assert fields is not None and invoice.acquired is not None
    return {
        "ksefNumber": invoice.ksef_number,
        "invoiceNumber": fields.number,
        "issueDate": fields.issue_date,
        "invoicingDate": date_text(invoice.received, seven_digits),
        "acquisitionDate": date_text(invoice.acquired, seven_digits),
        "permanentStorageDate": iso_stored(invoice, seven_digits),
        "seller": {"nip": fields.seller, "name": fields.seller_name},
        "buyer": {"identifier": _identifier_record(fields.buyer_id), "name": fields.buyer_name},
        **_other_parties(fields),
        "netAmount": float(fields.net),
        "grossAmount": float(fields.gross),
        "vatAmount": float(fields.vat_pln),
        "currency": fields.currency,
        "invoicingMode": invoicing_mode(invoice),
        "invoiceType": fields.invoice_type,
        "formCode": invoice.form_code,
        "isSelfInvoicing": fields.self_invoicing,
        "hasAttachment": fields.has_attachment,
        "invoiceHash": invoice.invoice_hash,
        **({"hashOfCorrectedInvoice": invoice.hash_of_corrected_invoice} if invoice.hash_of_corrected_invoice else {}),
    }


def pack_export(
    invoices: list[Invoice],
    only_metadata: bool,
    compression: str = "Zip",
    damage: str | None = None,
    check: Callable[[dict[str, Any]], list[str]] | None = None,
    seven_digits: bool = False,
) -> bytes:
    """The export package: ``{ksefNumber}.xml`` files and ``_metadata.json``, zipped or tar.gz.
    ``damage`` (``Faults.export_metadata``): ``"missing"`` leaves ``_metadata.json`` out,
    ``"short"`` leaves its last record out. ``check`` (strict mode): what is wrong with a record;
    ``StrictModeViolation`` when any is (the spec: each record is an ``InvoiceMetadata``).
    ``seven_digits``: the records' dates as ``date_text`` writes them."""
    files = [] if only_metadata else [(f"{i.ksef_number}.xml", i.xml) for i in invoices]
    listed = invoices[:-1] if damage == "short" else invoices
    records = [metadata_of(i, seven_digits) for i in listed]
    if check is not None:
        _check_records(records, check)
    if damage != "missing":
        files.append(("_metadata.json", json.dumps({"invoices": records}).encode()))
    buffer = io.BytesIO()
    if compression == "TarGz":
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    else:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in files:
                archive.writestr(name, data)
    return buffer.getvalue()
