"""UPO (Urzędowe Poświadczenie Odbioru), KSeF's official receipt: parse, verify, validate, save.

``parse_upo(xml_bytes)`` turns a UPO v4-3 document into typed objects without any network.
Parsing is hardened: documents with a DTD or entity declarations are refused (XXE, billion
laughs), nothing is fetched, and the size is capped.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import operator
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple, TypeVar, cast, overload

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from lxml import etree

from ksef_client._body import BodyLimits
from ksef_client._durable import flush_folder
from ksef_client._paths import file_in
from ksef_client._xml import SCHEMA_LOCK, declares_entities, hardened_parser, parse, parse_for_reading, xsd_errors
from ksef_client.crypto import sha256_b64
from ksef_client.errors import (
    HashMissingError,
    UnsafeXMLError,
    UPOHashMismatchError,
    UPOMismatchError,
    UPOSignatureError,
    UPOValidationError,
)
from ksef_client.xades import SignatureVerificationError, verify_xades

UPO_NAMESPACE = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"
DSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
# The largest document parse_upo, validate_upo and verify_upo_signature read: the default cap on a
# downloaded UPO (``BodyLimits.upo``: a session UPO page of 10,000 documents stays far below it).
MAX_UPO_BYTES = BodyLimits().upo
RECEIVING_ENTITY = "Ministerstwo Finansów"
_NS = {"u": UPO_NAMESPACE}
_DOKUMENT = f"{{{UPO_NAMESPACE}}}Dokument"
# The children of a ``Dokument`` that UpoDocument reads, in schema order.
_DOCUMENT_FIELDS = (
    "NipSprzedawcy",
    "NumerKSeFDokumentu",
    "NumerFaktury",
    "DataWystawieniaFaktury",
    "DataPrzeslaniaDokumentu",
    "DataNadaniaNumeruKSeF",
    "SkrotDokumentu",
    "TrybWysylki",
)
_FIELD_INDEX = {f"{{{UPO_NAMESPACE}}}{name}": index for index, name in enumerate(_DOCUMENT_FIELDS)}
# Compiled once, evaluated in C: how many ``Dokument`` there are; the child nodes of every
# document's child elements, in document order (text nodes come back as plain ``str``, anything
# else as an lxml object); and whether those nodes' elements are every document's 8 fields in
# schema order and nothing else (``_columns``). The proof is one expression so that a helper thread
# evaluates it without once needing the GIL in between.
_COUNT_DOCUMENTS = etree.XPath("count(u:Dokument)", namespaces=_NS)
_FIELD_VALUES = etree.XPath("u:Dokument/*/node()", namespaces=_NS, smart_strings=False)
_FIELDS_IN_ORDER = etree.XPath(
    "count(u:Dokument["
    + "/following-sibling::".join(f"u:{name}" for name in _DOCUMENT_FIELDS)
    + "]) = count(u:Dokument)"
    + f" and count(u:Dokument/*) = {len(_DOCUMENT_FIELDS)} * count(u:Dokument)",
    namespaces=_NS,
)
# libxml2 evaluates an XPath without holding the GIL, so with many documents a helper thread
# evaluates the proof while the caller's thread takes the values and converts them.
_HELPER_FROM = 1000  # documents; below that, starting a thread costs more than it saves
_sched_getaffinity = getattr(os, "sched_getaffinity", None)
_CORES = len(_sched_getaffinity(0)) if _sched_getaffinity is not None else (os.cpu_count() or 1)
_T = TypeVar("_T")
_CONTEXT_TYPES = {
    "Nip": "Nip",
    "IdWewnetrzny": "InternalId",
    "IdZlozonyVatUE": "NipVatUe",
    "IdDostawcyUslugPeppol": "PeppolId",
}


@dataclass(frozen=True)
class UpoDocument:
    """One invoice confirmed by a UPO (``Dokument``)."""

    seller_nip: str
    ksef_number: str
    invoice_number: str
    issue_date: dt.date
    sent_at: dt.datetime
    numbered_at: dt.datetime
    invoice_hash: str
    mode: str


class _Columns(NamedTuple):
    """The documents of a UPO field by field, in document order (each the length of the others);
    the fields of ``UpoDocument``, in its order."""

    seller_nip: tuple[str, ...]
    ksef_number: tuple[str, ...]
    invoice_number: tuple[str, ...]
    issue_date: tuple[dt.date, ...]
    sent_at: tuple[dt.datetime, ...]
    numbered_at: tuple[dt.datetime, ...]
    invoice_hash: tuple[str, ...]
    mode: tuple[str, ...]


class UpoDocuments(Sequence[UpoDocument]):
    """The invoices a UPO confirms: an immutable sequence of :class:`UpoDocument`.

    It behaves like the tuple it replaces (``len``, indexing, slices, iteration, ``==`` with a
    tuple, list or another ``UpoDocuments`` of the same documents, hashable), but keeps the values
    field by field and builds each ``UpoDocument`` when it is read, so that parsing a session UPO of
    10,000 documents does not build 10,000 objects nobody may look at. Every value was read and
    converted when the UPO was parsed: reading a document cannot fail.

    ``UpoDocuments(documents)`` makes one from ``UpoDocument`` objects.
    """

    __slots__ = ("_by_number", "_columns")

    def __init__(self, documents: Iterable[UpoDocument] = ()) -> None:
        documents = tuple(documents)
        self._columns = _Columns._make(tuple(getattr(d, name) for d in documents) for name in _Columns._fields)
        self._by_number: dict[str, int] | None = None

    @classmethod
    def _of_columns(cls, columns: _Columns) -> UpoDocuments:
        """A sequence over ``columns`` as they are (no copy)."""
        view = cls.__new__(cls)
        view._columns, view._by_number = columns, None
        return view

    @classmethod
    def concatenate(cls, parts: Iterable[UpoDocuments]) -> UpoDocuments:
        """The documents of ``parts`` one after another (the pages of a session UPO), still lazy."""
        parts = tuple(parts)
        if len(parts) <= 1:
            return parts[0] if parts else cls()
        fields = zip(*(part._columns for part in parts), strict=True)  # each field: its column in every part
        return cls._of_columns(_Columns._make(tuple(itertools.chain.from_iterable(columns)) for columns in fields))

    def __len__(self) -> int:
        return len(self._columns.ksef_number)

    @overload
    def __getitem__(self, index: int) -> UpoDocument: ...
    @overload
    def __getitem__(self, index: slice) -> UpoDocuments: ...
    def __getitem__(self, index: int | slice) -> UpoDocument | UpoDocuments:
        columns = self._columns
        if isinstance(index, slice):
            return self._of_columns(_Columns._make(column[index] for column in columns))
        return UpoDocument(
            columns.seller_nip[index],
            columns.ksef_number[index],
            columns.invoice_number[index],
            columns.issue_date[index],
            columns.sent_at[index],
            columns.numbered_at[index],
            columns.invoice_hash[index],
            columns.mode[index],
        )

    def __iter__(self) -> Iterator[UpoDocument]:
        return map(UpoDocument, *self._columns)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UpoDocuments):
            return self._columns == other._columns
        if isinstance(other, tuple | list):
            return len(other) == len(self) and all(map(operator.eq, self, other))
        return NotImplemented

    def __hash__(self) -> int:  # equal to a tuple of the same documents, so equal to its hash
        return hash(tuple(self))

    def __repr__(self) -> str:  # thousands of documents would flood a console or a log
        return f"UpoDocuments(<{len(self)} documents>)"

    def by_ksef_number(self, ksef_number: str) -> UpoDocument | None:
        """The document with this KSeF number, or ``None`` (an index is built on the first call)."""
        if self._by_number is None:
            self._by_number = {}
            for place, number in enumerate(self._columns.ksef_number):
                self._by_number.setdefault(number, place)  # the first, should a number come twice
        found = self._by_number.get(ksef_number)
        return None if found is None else self[found]


@dataclass(frozen=True)
class UpoPageInfo:
    """``OpisPotwierdzenia``: which part of a session UPO this page is (session UPOs only)."""

    page: int
    page_count: int
    first_document: int
    last_document: int
    document_count: int


@dataclass(frozen=True)
class Upo:
    """One UPO document: the raw bytes and what they say."""

    xml: bytes
    receiving_entity: str
    session_reference_number: str
    context_type: str
    context_value: str
    ksef_token_reference_number: str | None
    auth_document_hash: str | None
    page_info: UpoPageInfo | None
    structure_name: str
    form_code: str
    documents: UpoDocuments
    signed: bool

    @property
    def sha256(self) -> str:
        """Base64 SHA-256 of ``xml``, comparable with ``x-ms-meta-hash``."""
        return sha256_b64(self.xml)

    def __repr__(self) -> str:  # the XML and every document would flood a console or a log
        page = f", page={self.page_info.page}/{self.page_info.page_count}" if self.page_info else ""
        return (
            f"Upo(session_reference_number={self.session_reference_number!r}{page}, "
            f"documents={len(self.documents)}, signed={self.signed}, xml=<{len(self.xml)} bytes>)"
        )

    def verify_signature(
        self, certificate: x509.Certificate | None = None, *, trusted: Iterable[x509.Certificate] = ()
    ) -> SignatureCheck:
        """Check the enveloped XAdES signature; the result says who signed and whether that signer
        is trusted (see :func:`verify_upo_signature`)."""
        return verify_upo_signature(self.xml, certificate, trusted=trusted)

    def validate(self, schema: Path | None = None) -> None:
        """Validate against ``upo-v4-3.xsd`` (see :func:`validate_upo`)."""
        validate_upo(self.xml, schema)


@dataclass(frozen=True)
class SessionUpo:
    """All pages of a session's UPO (KSeF pages them at 10,000 documents)."""

    pages: tuple[Upo, ...]

    @property
    def xml(self) -> tuple[bytes, ...]:
        """The raw XML of each page, in page order."""
        return tuple(p.xml for p in self.pages)

    @functools.cached_property
    def documents(self) -> UpoDocuments:
        """Every confirmed invoice, across pages, in page order (the pages' values joined, no
        ``UpoDocument`` built until read)."""
        return UpoDocuments.concatenate(p.documents for p in self.pages)

    @property
    def session_reference_number(self) -> str:
        """The session these pages confirm."""
        return self.pages[0].session_reference_number


# The header KSeF and its storage send a downloaded document's SHA-256 in.
HASH_HEADER = "x-ms-meta-hash"
_log = logging.getLogger("ksef_client")


def verify_hash(content: bytes, expected: str | None, what: str = "UPO", *, required: bool = False) -> None:
    """Raise ``UPOHashMismatchError`` when ``expected`` (``x-ms-meta-hash``) is given and differs
    from the SHA-256 of ``content``. Every downloaded UPO and invoice is checked here.

    Without the header (``None`` or blank) there is nothing to check against: the spec declares it
    on the 200 answers of ``GET /invoices/ksef/{ksefNumber}`` and of the three UPO downloads, and
    says the presigned UPO links answer with it ("Odpowiedź HTTP zawiera dodatkowe nagłówki:
    x-ms-meta-hash"), but marks it nowhere required. The download is accepted unchecked and a
    WARNING on the ``ksef_client`` logger says so (``what`` names the document; no link, no token),
    unless ``required`` (the client's ``require_hash=True``): then ``HashMissingError``."""
    if expected is None or not expected.strip():
        if required:
            raise HashMissingError(f"{what} came without {HASH_HEADER}: its SHA-256 cannot be checked (require_hash)")
        _log.warning("%s came without %s: its SHA-256 was not checked", what, HASH_HEADER)
        return
    if sha256_b64(content) != expected.strip():
        raise UPOHashMismatchError(
            f"{what} SHA-256 is {sha256_b64(content)}, but {HASH_HEADER} says {expected.strip()}"
        )


def safe_parse(xml: bytes, *, for_reading: bool = False) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, bounded size. ``for_reading``: the
    tree is only read for its values, so whitespace between elements may be left out of it
    (``_xml.parse_for_reading``)."""
    if not isinstance(xml, bytes | bytearray):
        raise TypeError(f"expected bytes, got {type(xml).__name__}")
    if len(xml) > MAX_UPO_BYTES:
        raise UnsafeXMLError(f"document of {len(xml)} bytes exceeds the {MAX_UPO_BYTES} byte cap")
    if declares_entities(xml):
        raise UnsafeXMLError("document type declarations and entities are not allowed in KSeF XML")
    try:
        root = (parse_for_reading if for_reading else parse)(bytes(xml))
    except etree.XMLSyntaxError as error:
        raise UPOValidationError(f"not well-formed XML: {error}") from error
    if root.getroottree().docinfo.doctype:  # type: ignore[attr-defined]
        raise UnsafeXMLError("document type declarations are not allowed in KSeF XML")
    return root


def parse_upo(xml: bytes) -> Upo:
    """Parse a UPO v4-3 document; ``UPOValidationError`` names the first missing element."""
    root = safe_parse(xml, for_reading=True)
    if root.tag != f"{{{UPO_NAMESPACE}}}Potwierdzenie":
        raise UPOValidationError(f"not a UPO v4-3 document (root element {root.tag!r})")
    context = _required(root, "u:Uwierzytelnienie/u:IdKontekstu/*")
    context_type = _CONTEXT_TYPES.get(etree.QName(context).localname, etree.QName(context).localname)
    page = root.find("u:OpisPotwierdzenia", _NS)
    page_info = _page_info(page) if page is not None else None
    documents = _documents(root)
    if page_info is not None:
        check_page_documents(page_info, len(documents))
    return Upo(
        xml=bytes(xml),
        receiving_entity=_text(root, "u:NazwaPodmiotuPrzyjmujacego"),
        session_reference_number=_text(root, "u:NumerReferencyjnySesji"),
        context_type=context_type,
        context_value=_whole(context),
        ksef_token_reference_number=_optional(root, "u:Uwierzytelnienie/u:NumerReferencyjnyTokenaKSeF"),
        auth_document_hash=_optional(root, "u:Uwierzytelnienie/u:SkrotDokumentuUwierzytelniajacego"),
        page_info=page_info,
        structure_name=_text(root, "u:NazwaStrukturyLogicznej"),
        form_code=_text(root, "u:KodFormularza"),
        documents=documents,
        signed=root.find(f"{{{DSIG_NAMESPACE}}}Signature") is not None,
    )


def _required(root: etree._Element, path: str) -> etree._Element:
    found = root.find(path, _NS)
    if found is None:
        raise UPOValidationError(f"UPO lacks {path.replace('u:', '')}")
    return found


def _whole(element: etree._Element) -> str:
    """The element's whole value, as the signature covers it: its text nodes joined, so a comment
    or processing instruction inside (outside the canonical form, so invisible to the signature)
    cannot cut the value short (``FV/1<!---->00`` is ``FV/100``); a child element is refused."""
    if any(isinstance(child.tag, str) for child in element):
        raise UPOValidationError(f"UPO {etree.QName(element).localname} holds elements where a value belongs")
    return "".join(element.itertext()).strip()  # type: ignore[arg-type]  # str for a parsed document


def _text(root: etree._Element, path: str) -> str:
    return _whole(_required(root, path))


def _optional(root: etree._Element, path: str) -> str | None:
    found = root.find(path, _NS)
    return _whole(found) if found is not None else None


def _int(root: etree._Element, path: str) -> int:
    value = _text(root, path)
    try:
        return int(value)
    except ValueError:
        raise UPOValidationError(f"UPO {path.replace('u:', '')} is not a number: {value!r}") from None


def _page_info(page: etree._Element) -> UpoPageInfo:
    return UpoPageInfo(
        page=_int(page, "u:Strona"),
        page_count=_int(page, "u:LiczbaStron"),
        first_document=_int(page, "u:ZakresDokumentowOd"),
        last_document=_int(page, "u:ZakresDokumentowDo"),
        document_count=_int(page, "u:CalkowitaLiczbaDokumentow"),
    )


# --- is it the UPO that was asked for? -----------------------------------------------------------
# A UPO from a presigned link comes from the storage host with its own x-ms-meta-hash: a genuine,
# KSeF-signed UPO of another session or invoice passes both the hash and the signature. What a UPO
# confirms is compared with what was asked for.

_ROOT = f"{{{UPO_NAMESPACE}}}Potwierdzenie"
_SESSION = f"{{{UPO_NAMESPACE}}}NumerReferencyjnySesji"
_PAGE = f"{{{UPO_NAMESPACE}}}OpisPotwierdzenia"
# The schema's elements after the header (upo-v4-3.xsd: the session number and OpisPotwierdzenia
# come before them): the header has been read once one of them starts.
_AFTER_HEADER = frozenset(
    f"{{{UPO_NAMESPACE}}}{name}" for name in ("NazwaStrukturyLogicznej", "KodFormularza", "Dokument")
)
# KSeF's header ends some 900 bytes in (the Ministry's sample UPOs): the parser is fed that much at a
# time, as every byte fed becomes events to walk (16 KiB at a time cost 0.4 ms a page, 2 KiB 0.13 ms).
_HEADER_CHUNK = 2 * 1024


def check_invoice_upo(upo: Upo, session_reference_number: str, ksef_number: str | None = None) -> Upo:
    """``upo`` when it is a UPO of session ``session_reference_number`` confirming one invoice,
    ``ksef_number`` when given (its ``NumerKSeFDokumentu``); ``UPOMismatchError`` otherwise."""
    _check_session(upo.session_reference_number, session_reference_number)
    if len(upo.documents) != 1:
        raise UPOMismatchError(f"an invoice's UPO confirms one invoice; this one confirms {len(upo.documents)}")
    found = upo.documents[0].ksef_number
    if ksef_number is not None and found != ksef_number:
        raise UPOMismatchError(f"the UPO confirms invoice {_quoted(found)}, not {ksef_number} that was asked for")
    return upo


def session_page_order(
    session_reference_number: str,
    pages: Sequence[tuple[str, UpoPageInfo | None]],
    documents: Sequence[int] | None = None,
) -> list[int]:
    """The places of ``pages`` (each page's ``NumerReferencyjnySesji`` and ``OpisPotwierdzenia``,
    in the order the session's status listed them) in page order, when they are every page of
    session ``session_reference_number`` once: each of that session, numbered (``Strona``) 1 to n
    once each, with n (``LiczbaStron``) the number of pages listed, their document ranges
    (``ZakresDokumentowOd``/``Do``) following each other from 1 to ``CalkowitaLiczbaDokumentow``,
    the same on every page. A lone page without ``OpisPotwierdzenia`` is page 1 of 1.
    ``UPOMismatchError`` otherwise. ``documents``: the number of ``Dokument`` elements of each page
    (in the order of ``pages``), when they were parsed: each must be its range's
    (``UPOValidationError`` otherwise)."""
    for reference, _ in pages:
        _check_session(reference, session_reference_number)
    count = len(pages)
    if count == 1 and pages[0][1] is None:
        return [0]
    numbers, infos = [], []
    for place, (_, info) in enumerate(pages, start=1):
        if info is None:
            raise UPOMismatchError(f"page {place} of the {count} of the session's UPO has no OpisPotwierdzenia")
        if info.page_count != count:
            raise UPOMismatchError(f"a page of the session's UPO says it has {info.page_count} page(s); {count} listed")
        numbers.append(info.page)
        infos.append(info)
    if sorted(numbers) != list(range(1, count + 1)):
        raise UPOMismatchError(f"the pages of the session's UPO are not numbered 1 to {count} once each")
    order = sorted(range(count), key=numbers.__getitem__)
    extra = _range_reading([infos[place] for place in order])
    if documents is not None:
        for place in order:
            _check_count(infos[place], documents[place], (extra,))
    return order


# ZakresDokumentowOd/Do, the documents of a session UPO's page: upo-v4-3.xsd calls Od "Początek
# zakresu dokumentów na stronie UPO (inclusive)" and Do "Koniec zakresu [...] (exclusive)", but the
# Ministry's example session UPOs (ksef-docs faktury/upo/przyklady/v4-3/*/upo-sesja-*.xml, from its
# test environment) hold 2 documents under Od 1, Do 2, CalkowitaLiczbaDokumentow 2: Do inclusive.
# Either reading is taken, one for all the pages of a UPO: a page holds Do - Od + 1 documents
# (inclusive) or Do - Od (exclusive), and the next page starts at Do + 1 or Do.
_READINGS = (1, 0)  # what Do - Od is short of a page's count: inclusive (the examples), exclusive (the XSD)


def check_page_documents(info: UpoPageInfo, found: int) -> None:
    """``UPOValidationError`` when a session UPO page holds ``found`` documents where its own
    ``OpisPotwierdzenia`` names another number (under either reading of ``ZakresDokumentowDo``)."""
    _check_count(info, found, _READINGS)


def _check_count(info: UpoPageInfo, found: int, readings: Sequence[int]) -> None:
    if not any(found == info.last_document - info.first_document + extra for extra in readings):
        raise UPOValidationError(
            f"page {info.page} of the session's UPO holds {found} document(s), but its OpisPotwierdzenia names "
            f"documents {info.first_document} to {info.last_document} (ZakresDokumentowOd/Do)"
        )


def _range_reading(infos: Sequence[UpoPageInfo]) -> int:
    """The reading of ``ZakresDokumentowDo`` under which the pages' ranges (in page order) follow
    each other from document 1 to the total all pages give (``CalkowitaLiczbaDokumentow``), each
    page holding one at least: 1 (inclusive) or 0 (exclusive); ``UPOMismatchError`` when none."""
    totals = {info.document_count for info in infos}
    if len(totals) != 1:
        raise UPOMismatchError(
            f"the pages of the session's UPO give different totals (CalkowitaLiczbaDokumentow): {sorted(totals)}"
        )
    total = totals.pop()
    for extra in _READINGS:
        start = 1
        for info in infos:
            if info.first_document != start or info.last_document - info.first_document + extra < 1:
                break
            start = info.last_document + extra
        else:
            if start == total + 1:
                return extra
    ranges = ", ".join(f"{info.first_document}-{info.last_document}" for info in infos)
    raise UPOMismatchError(
        f"the pages of the session's UPO do not cover its {total} documents once each "
        f"(ZakresDokumentowOd-Do in page order: {ranges})"
    )


def read_upo_header(xml: bytes) -> tuple[str, UpoPageInfo | None]:
    """A UPO's ``NumerReferencyjnySesji`` and ``OpisPotwierdzenia`` (``None`` in an invoice's UPO),
    read from its first elements only (the schema puts them before any document): which session and
    page a UPO is, for the same cost with 1 or 10,000 documents. What ``parse_upo`` refuses as
    hostile is refused here too; the rest of the document is not read."""
    if not isinstance(xml, bytes | bytearray):
        raise TypeError(f"expected bytes, got {type(xml).__name__}")
    if declares_entities(xml):
        raise UnsafeXMLError("document type declarations and entities are not allowed in KSeF XML")
    parser = etree.XMLPullParser(
        events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    found: dict[str, etree._Element] = {}
    try:
        for start in range(0, len(xml), _HEADER_CHUNK):
            parser.feed(bytes(xml[start : start + _HEADER_CHUNK]))
            if _header_read(parser, found):
                return _header(found)
        parser.close()
    except etree.XMLSyntaxError as error:
        raise UPOValidationError(f"not well-formed XML: {error}") from error
    return _header(found)


def _header_read(parser: etree.XMLPullParser, found: dict[str, etree._Element]) -> bool:
    """Take the header's elements among the parser's new events into ``found``; whether the header
    is over (an element after it started)."""
    for event, item in parser.read_events():
        element = cast("etree._Element", item)  # only start and end events were asked for: elements
        parent = element.getparent()
        if parent is None:  # the root
            if event == "start" and element.tag != _ROOT:
                raise UPOValidationError(f"not a UPO v4-3 document (root element {element.tag!r})")
            if element.getroottree().docinfo.doctype:  # type: ignore[attr-defined]
                raise UnsafeXMLError("document type declarations are not allowed in KSeF XML")
        elif parent.getparent() is None:  # a child of the root: the first of each name counts
            if event == "start" and element.tag in _AFTER_HEADER:
                return True
            if event == "end" and element.tag in (_SESSION, _PAGE):
                found.setdefault(element.tag, element)
    return False


def _header(found: dict[str, etree._Element]) -> tuple[str, UpoPageInfo | None]:
    if _SESSION not in found:
        raise UPOValidationError("UPO lacks NumerReferencyjnySesji")
    page = found.get(_PAGE)
    return _whole(found[_SESSION]), _page_info(page) if page is not None else None


def _check_session(found: str, asked: str) -> None:
    if found != asked:
        raise UPOMismatchError(f"the UPO is of session {_quoted(found)}, not {asked} that was asked for")


def _quoted(value: str) -> str:
    """A value from the document, fit for a message: its repr, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _content(element: etree._Element) -> str:
    """The whole text content (comments and processing instructions left out), stripped."""
    if len(element):  # a comment or element inside: the slow, checked path
        return _whole(element)
    text = element.text
    return text.strip() if text else ""


def _datetime(value: str, name: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise UPOValidationError(f"UPO {name} is not a date-time: {value!r}") from None


def _documents(root: etree._Element) -> UpoDocuments:
    """Every ``Dokument``: read in bulk (``_columns``) when that reads what ``_document`` would,
    else, and on any value that does not convert, one document at a time (``_document``: fields in
    any order, comments skipped, elements refused, the errors named)."""
    columns = _columns(root)
    if columns is not None:
        return UpoDocuments._of_columns(columns)
    return UpoDocuments([_document(d) for d in root.findall(_DOKUMENT)])


def _columns(root: etree._Element) -> _Columns | None:
    """Every document's values field by field, or ``None`` when this cannot be sure of them.

    The values are the child nodes of the documents' child elements, in document order
    (``_FIELD_VALUES``, one XPath in C), taken 8 at a time when it is proved that each document's
    child elements are exactly the 8 fields in schema order (what KSeF sends) and each field holds
    one text node. Each field is then the only one of its name in its document, the element
    ``_document`` reads, and its text is its whole value.

    The proof:
    - every document holds the 8 fields in schema order, not necessarily side by side, and the
      documents' child elements number 8 per document (``_FIELDS_IN_ORDER``): each has at least
      its 8 fields, so each has exactly those 8, in order, and no other element;
    - there are 8 values per document, all of them text (``str.strip`` refuses the lxml object of
      a comment, processing instruction or element). A parsed element never holds two text nodes
      side by side (the parser joins character data, references and CDATA into one), so with every
      node text each field gave at most one, and 8 per document means each gave exactly one: a
      missing, misplaced or empty field cannot borrow a neighbour's value.
    """
    count = cast("float", _COUNT_DOCUMENTS(root))
    in_order = _fields_in_order(root, count)
    columns = _values(root, count)
    # Not proven when the values already failed: a helper still counting ends on its own.
    return columns if columns is not None and in_order() else None


def _values(root: etree._Element, count: float) -> _Columns | None:
    """The field values taken 8 at a time and converted, or ``None`` when there are not 8 per
    document or one is not text or does not convert (the slow path names what is wrong)."""
    values = cast("list[object]", _FIELD_VALUES(root))
    if len(values) != len(_DOCUMENT_FIELDS) * count:
        return None
    try:
        return _Columns(
            _texts(values[0::8]),
            _texts(values[1::8]),
            _texts(values[2::8]),
            _converted(values[3::8], dt.date.fromisoformat),
            _converted(values[4::8], dt.datetime.fromisoformat),
            _converted(values[5::8], dt.datetime.fromisoformat),
            _texts(values[6::8]),
            _texts(values[7::8]),
        )
    except (TypeError, ValueError):  # not text, or a value that does not convert: the slow path names it
        return None


def _fields_in_order(root: etree._Element, count: float) -> Callable[[], bool]:
    """What tells ``_FIELDS_IN_ORDER``: evaluated on a helper thread, started now, when there are
    many documents and a second core (the caller's thread meanwhile takes and converts the values),
    else on the caller's thread when asked."""
    # While the interpreter shuts down no thread can start (Python 3.11's start() then waits
    # forever instead of raising): evaluate it here.
    if count < _HELPER_FROM or _CORES < 2 or sys.is_finalizing():
        return functools.partial(_proved, root)
    told: list[bool] = []
    helper = threading.Thread(target=_tell_into, args=(told, root), name="ksef-upo-fields", daemon=True)
    try:
        helper.start()
    except RuntimeError:  # no new threads: evaluate it here
        return functools.partial(_proved, root)

    def joined() -> bool:
        helper.join()
        return told[0] if told else _proved(root)  # the helper failed: evaluate it here

    return joined


def _proved(root: etree._Element) -> bool:
    """``_FIELDS_IN_ORDER`` of ``root``: whether every document is its 8 fields in order."""
    return bool(_FIELDS_IN_ORDER(root))


def _tell_into(told: list[bool], root: etree._Element) -> None:
    """The helper thread: ``_proved`` into ``told``. Whatever goes wrong stops it quietly (the
    caller evaluates it again and meets the error itself, if there is one)."""
    try:
        told.append(_proved(root))
    except Exception:  # the caller evaluates it again and meets the error itself
        told.clear()


def _texts(nodes: list[object]) -> tuple[str, ...]:
    """Each node's text, stripped; ``TypeError`` when one is not text (``str.strip`` refuses an
    lxml object)."""
    return tuple(map(str.strip, cast("list[str]", nodes)))


def _converted(nodes: list[object], convert: Callable[[str], _T]) -> tuple[_T, ...]:
    """Each node's text, stripped, converted by ``fromisoformat``: what the slow path converts
    (``_content`` strips), so both accept and refuse the same values. Stripping first matters:
    Python 3.11's ``date.fromisoformat`` reads any 10-character value in the basic format by its
    first 8 characters (``"20261120x\n"`` is a date, ``"20261120x"`` is not). ``TypeError`` when
    a node is not text (``str.strip`` refuses an lxml object)."""
    return tuple(map(convert, map(str.strip, cast("list[str]", nodes))))


def _document(element: etree._Element) -> UpoDocument:
    # One pass over the children (a session UPO has up to 10,000 documents of 8 fields each).
    values: list[str | None] = [None] * len(_DOCUMENT_FIELDS)
    index_of = _FIELD_INDEX.get
    for child in element:
        index = index_of(child.tag)  # comments and processing instructions: no field
        if index is not None and values[index] is None:
            values[index] = _content(child)
    if None in values:
        raise UPOValidationError(f"UPO lacks {_DOCUMENT_FIELDS[values.index(None)]}")
    nip, number, invoice_number, issue, sent, numbered, digest, mode = cast("list[str]", values)
    try:
        issue_date = dt.date.fromisoformat(issue)
    except ValueError:
        raise UPOValidationError(f"UPO DataWystawieniaFaktury is not a date: {issue!r}") from None
    return UpoDocument(
        seller_nip=nip,
        ksef_number=number,
        invoice_number=invoice_number,
        issue_date=issue_date,
        sent_at=_datetime(sent, "DataPrzeslaniaDokumentu"),
        numbered_at=_datetime(numbered, "DataNadaniaNumeruKSeF"),
        invoice_hash=digest,
        mode=mode,
    )


def _default_schema() -> Path:
    path = Path(str(resources.files("ksef_client") / "_data" / "upo-v4-3.xsd"))
    if not path.is_file():
        raise FileNotFoundError(f"UPO schema not found at {path}; pass schema= (upo-v4-3.xsd from KSeF's docs)")
    return path


def validate_upo(xml: bytes, schema: Path | None = None) -> None:
    """Validate against ``upo-v4-3.xsd``, tolerant of what real UPOs do that the XSD forbids.

    Tolerated: the TEST/DEMO receiving-entity name ("Ministerstwo Finansów - środowisko ...")
    and the enveloped ``ds:Signature``. Anything else invalid raises ``UPOValidationError``.
    The schema is compiled once per path (a changed file at the same path is not read again).
    """
    root = safe_parse(xml)  # a tree of its own: changed below without a copy
    for signature in root.findall(f"{{{DSIG_NAMESPACE}}}Signature"):
        root.remove(signature)
    entity = root.find("u:NazwaPodmiotuPrzyjmujacego", _NS)
    if entity is not None and (entity.text or "").startswith(RECEIVING_ENTITY):
        entity.text = RECEIVING_ENTITY
    with SCHEMA_LOCK:  # compiled one at a time (see SCHEMA_LOCK)
        xsd = _upo_schema(schema or _default_schema())
    errors = xsd_errors(xsd, root)
    if errors:
        raise UPOValidationError(f"UPO is not valid against upo-v4-3.xsd: {'; '.join(errors[:5])}")


@functools.lru_cache(maxsize=8)
def _upo_schema(path: Path) -> etree.XMLSchema:
    # The hardened parser: an XSD is a document from outside too (no DTD, entities or network).
    return etree.XMLSchema(etree.parse(str(path), hardened_parser()))


@dataclass(frozen=True)
class SignatureCheck:
    """A UPO whose signature verified: who signed it, and whether that signer is trusted.

    A valid signature only proves the document was not changed after signing; anyone can sign a
    UPO with a self-signed key. ``trusted`` is true only when the signer is a certificate the
    caller trusts: KSeF's published UPO certificate or another one pinned with ``trusted=`` (or
    ``certificate=``), or one issued by such a certificate.
    """

    certificate: x509.Certificate
    signer: str
    issuer: str
    trusted: bool
    trusted_because: str | None = None

    def require_trusted(self) -> SignatureCheck:
        """This check, or ``UPOSignatureError`` when the signer is not trusted."""
        if not self.trusted:
            raise UPOSignatureError(f"UPO signed by {self.signer!r}, which is not a trusted certificate")
        return self


def verify_upo_signature(
    xml: bytes, certificate: x509.Certificate | None = None, *, trusted: Iterable[x509.Certificate] = ()
) -> SignatureCheck:
    """Check a UPO's enveloped XAdES signature and say who signed it.

    ``certificate`` verifies against that certificate only (pinned: trusted when it verifies).
    Without it the embedded certificate is used, and the signer is trusted only when it is one of
    ``trusted`` or directly issued by one of them. ``UPOSignatureError`` when the signature is
    missing or broken; an untrusted signer is not an error here: check ``.trusted`` (or call
    ``.require_trusted()``).
    """
    safe_parse(xml)  # refuse hostile XML before the signature library sees it
    try:
        signer = verify_xades(xml, certificate).certificate
    except SignatureVerificationError as error:
        raise UPOSignatureError(f"UPO signature does not verify: {error}") from error
    reason = "pinned with certificate=" if certificate is not None else _trusted_because(signer, list(trusted))
    return SignatureCheck(
        signer, signer.subject.rfc4514_string(), signer.issuer.rfc4514_string(), reason is not None, reason
    )


def _trusted_because(signer: x509.Certificate, anchors: list[x509.Certificate]) -> str | None:
    fingerprint = signer.fingerprint(hashes.SHA256())
    for anchor in anchors:
        if anchor.fingerprint(hashes.SHA256()) == fingerprint:
            return "a trusted certificate"
    for anchor in anchors:
        try:
            signer.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return f"issued by the trusted {anchor.subject.rfc4514_string()}"
    return None


def save_upo(xml: bytes, directory: Path, name: str) -> Path:
    """Write ``xml`` to ``directory/name.xml`` atomically and durably: a crash, of the process or
    of the machine, leaves no partial file (the file is flushed to disk before it is renamed into
    place, and the rename after); ``UnsafePathError`` when ``name`` is not one plain file name
    inside ``directory``. A UPO is the legal receipt: a file renamed but never flushed can come
    back empty after a power cut.

    The temporary file has a name of its own (two saves of one name at once, as from a listing
    that names an invoice twice, each replace the target with a whole file)."""
    target = file_in(directory, name)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{target.name}.{secrets.token_hex(8)}.part"
    try:
        with open(temporary, "xb") as out:  # created new, with the mode a plain write gives
            out.write(xml)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    flush_folder(directory)
    return target
