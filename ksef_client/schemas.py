"""Invoice checks before sending, offline: KSeF's document rules and each form's XSD.

KSeF verifies every invoice (the Ministry's ``faktury/weryfikacja-faktury.md``): XML 1.0 in UTF-8
without a BOM, a prolog naming no other encoding, no processing instructions, none of the
discouraged Unicode ranges, at most 1 MB (3 MB with attachments), valid against the form declared
when the session opened. ``validate_invoice`` applies the same rules, so an invoice it passes is
not rejected for its file.

FA(2), FA(3) and FA_RR(1) import their base types from crd.gov.pl by URL; the imports are pointed
at the copies ``make spec`` puts in ``ksef_client/_data/fa3/bazowe`` before compiling, so nothing
is fetched. PEF(3) and PEF_KOR(3) import UBL 2.1 by relative paths. Parsing is hardened (no DTD,
no entities, no network).

The XAdES login document (``AuthTokenRequest``) has schemas of its own, by namespace:
``auth_schema`` and ``auth_request_errors`` (KSeF refuses a document that does not match with
400 / 21401), their .NET-only patterns read as KSeF reads them.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lxml import etree

from ksef_client._date_values import date_valued_elements
from ksef_client._xml import (
    COMMON_DECLARATIONS,
    SCHEMA_LOCK,
    SchemaCopies,
    declares_entities,
    hardened_parser,
    may_hold_instruction,
    own_xsd_errors,
    parse,
    xsd_errors,
)
from ksef_client.errors import InvoiceSchemaError

if TYPE_CHECKING:
    from ksef_client._generated.models import EffectiveContextLimits

__all__ = [
    "AUTH_SCHEMAS",
    "BATCH_FORMS",
    "FORMS",
    "FormCode",
    "InvoiceSchemaError",
    "SessionLimits",
    "auth_request_errors",
    "auth_schema",
    "batch_form",
    "check_document",
    "check_encoding",
    "form_code",
    "form_schema",
    "schema_errors",
    "validate_invoice",
]

FA3_NAMESPACE = "http://crd.gov.pl/wzor/2025/06/25/13775/"
BASE_TYPES_URL = "http://crd.gov.pl/xml/schematy/dziedzinowe/mf/2022/01/05/eD/DefinicjeTypy/"
XSD = "http://www.w3.org/2001/XMLSchema"
MAX_INVOICE_BYTES = 1_000_000
MAX_INVOICE_WITH_ATTACHMENT_BYTES = 3_000_000
MB = 1_000_000  # "1 MB (1 000 000 bajtów)" (faktury/weryfikacja-faktury.md)
# The XSD of each form (by system code), under ``_data``.
FORM_SCHEMAS = {
    "FA (3)": "fa3/schemat_FA(3)_v1-0E.xsd",
    "FA (2)": "fa2/schemat_FA(2)_v1-0E.xsd",
    "FA_RR (1)": "fa_rr/schemat_FA_RR(1)_v1-1E.xsd",
    "PEF (3)": "pef/Schemat_PEF(3)_v2-1.xsd",
    "PEF_KOR (3)": "pef/Schemat_PEF_KOR(3)_v2-1.xsd",
}
# The namespace of each form's root element (its XSD's targetNamespace), by system code: an invoice
# of another form fails the XSD at its root, and the check then says which form it is.
FORM_NAMESPACES = {
    "FA (3)": FA3_NAMESPACE,
    "FA (2)": "http://crd.gov.pl/wzor/2023/06/29/12648/",
    "FA_RR (1)": "http://crd.gov.pl/wzor/2026/03/06/14189/",
    "PEF (3)": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "PEF_KOR (3)": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}
# Characters XML 1.0 discourages (section 2.2), which KSeF refuses.
_DISCOURAGED = re.compile(
    "[\x7f-\x84\x86-\x9f\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}-{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(1, 17))
    + "]"
)
# The same characters as UTF-8 bytes (U+007F, C2 80-9F but not C2 85, EF B7 90-AF, and the last
# two code points of planes 1-16): three times faster than the text pattern, and on valid UTF-8
# each match starts at a character, so both find the same characters.
_DISCOURAGED_UTF8 = re.compile(
    rb"\x7f|\xc2[\x80-\x84\x86-\x9f]|\xef\xb7[\x90-\xaf]|[\xf0-\xf4][\x8f\x9f\xaf\xbf]\xbf[\xbe\xbf]"
)
_DISCOURAGED_LEADS = (b"\x7f", b"\xc2", b"\xef", b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")
_PROLOG = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']+)[\"']")
_XML_SPACES = " \t\r\n"  # XML 1.0, 2.3: S
# XML 1.0, 2.8: "VersionInfo ::= S 'version' Eq ("'" VersionNum "'" | '"' VersionNum '"')".
_VERSION = re.compile(rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])(.*?)\1")


@dataclass(frozen=True)
class SessionLimits:
    """What KSeF takes from a context in one session: each invoice's size in bytes, without and
    with attachments, and the number of invoices. The defaults are KSeF's, which the Ministry marks
    as raised for a context on request (``faktury/weryfikacja-faktury.md``: "1 MB* ... 3 MB* ...
    10 000*"); ``GET /limits/context`` (``ksef.limits.context()``) says a context's own, and
    ``SessionLimits.of`` reads them from its answer."""

    max_invoice_bytes: int = MAX_INVOICE_BYTES
    max_invoice_with_attachment_bytes: int = MAX_INVOICE_WITH_ATTACHMENT_BYTES
    max_invoices: int = 10_000

    @classmethod
    def of(cls, limits: EffectiveContextLimits, kind: Literal["online", "batch"]) -> SessionLimits:
        """The limits of one kind of session from ``ksef.limits.context()`` (MB: 10^6 bytes)."""
        session = limits.online_session if kind == "online" else limits.batch_session
        return cls(
            session.max_invoice_size_in_mb * MB,
            session.max_invoice_with_attachment_size_in_mb * MB,
            session.max_invoices,
        )

    def exceeded_by(self, size: int = 0, count: int = 0) -> bool:
        """Whether an invoice of ``size`` bytes (without attachments: the smaller limit) or the
        ``count``-th invoice of a session passes these limits."""
        return size > min(self.max_invoice_bytes, self.max_invoice_with_attachment_bytes) or count > self.max_invoices


KSEF_LIMITS = SessionLimits()


class LimitsInForce:
    """The limits a session's invoices are checked against: ``given`` ones; or else KSeF's
    defaults until an invoice (or the number of them) passes those, and from then on the context's
    own, read once by ``read`` (``GET /limits/context``). A context whose limits were raised is
    so not refused what KSeF takes from it, and the limits, an operation with a rate limit of its
    own, are read only when they matter."""

    def __init__(self, given: SessionLimits | None = None, read: Callable[[], SessionLimits] | None = None) -> None:
        self.known = given
        self.read = read

    def unknown_for(self, size: int = 0, count: int = 0) -> bool:
        """Whether the context's own limits must be read before an invoice of ``size`` bytes or the
        ``count``-th invoice is checked."""
        return self.known is None and KSEF_LIMITS.exceeded_by(size, count)

    def covering(self, size: int = 0, count: int = 0) -> SessionLimits:
        """The limits to check an invoice of ``size`` bytes or the ``count``-th invoice against
        (reading the context's with ``read`` when it is needed and can be)."""
        if self.read is not None and self.unknown_for(size, count):
            self.known = self.read()
        return self.known or KSEF_LIMITS


@dataclass(frozen=True)
class FormCode:
    """``formCode`` of session requests: system code, schema version, form value."""

    system_code: str
    schema_version: str
    value: str

    def to_dict(self) -> dict[str, str]:
        """The JSON object of the API."""
        return {"systemCode": self.system_code, "schemaVersion": self.schema_version, "value": self.value}


FORMS = {
    "FA(3)": FormCode("FA (3)", "1-0E", "FA"),
    "FA(2)": FormCode("FA (2)", "1-0E", "FA"),
    "PEF(3)": FormCode("PEF (3)", "2-1", "PEF"),
    "PEF_KOR(3)": FormCode("PEF_KOR (3)", "2-1", "PEF"),
    "FA_RR(1)": FormCode("FA_RR (1)", "1-1E", "FA_RR"),
}


def form_code(form: str | FormCode) -> FormCode:
    """``"FA(3)"`` (spaces ignored) or a ``FormCode`` -> ``FormCode``; ``ValueError`` if unknown."""
    if isinstance(form, FormCode):
        return form
    found = FORMS.get(form.replace(" ", "").upper())
    if found is None:
        raise ValueError(f"form: {form!r} is not one of {', '.join(FORMS)}")
    return found


# The forms a batch session takes: the spec's ``OpenBatchSessionRequest.formCode``, "Obsługiwane
# schematy" (API 2.9.0), lists FA (2), FA (3) and FA_RR (1). The PEF forms are listed for online
# sessions only (``OpenOnlineSessionRequest.formCode``), and KSeF refuses them for a batch with
# 400 / 21405. By system code: a ``FormCode`` of another schema version is KSeF's to judge.
BATCH_FORMS = ("FA (3)", "FA (2)", "FA_RR (1)")


def batch_form(form: str | FormCode) -> FormCode:
    """``form_code(form)`` for a batch session: ``ValueError`` (before any request) for a form the
    spec does not list for batch sessions (``BATCH_FORMS``), such as ``PEF(3)`` and
    ``PEF_KOR(3)``, which go through an online session."""
    code = form_code(form)
    if code.system_code in BATCH_FORMS:
        return code
    which = "PEF invoices go" if code.value == "PEF" else "send these invoices"
    raise ValueError(
        f"form: {code.system_code} cannot be sent in a batch session: KSeF's batch sessions take "
        f"{', '.join(BATCH_FORMS)} only and refuse others with 21405; {which} through an online session "
        f'(online_session(form="{_short_name(code)}") in Python, ksef send without --batch)'
    )


def _short_name(code: FormCode) -> str:
    """The name ``form_code`` takes for ``code`` (``"PEF(3)"``), or its system code."""
    return next((name for name, known in FORMS.items() if known == code), code.system_code)


def checkable(code: FormCode) -> FormCode:
    """``code`` if the SDK has its XSD (one of ``FORMS``); ``ValueError`` naming what it lacks: a
    form it has no XSD for, or another schema version (or value) of one it has, which its XSD
    would check wrongly."""
    if code in FORMS.values():
        return code
    kept = next((known for known in FORMS.values() if known.system_code == code.system_code), None)
    if kept is None:
        names = ", ".join(f"{known.system_code} {known.schema_version}" for known in FORMS.values())
        problem = f"no XSD for the form {code.system_code!r} (the SDK checks {names})"
    else:
        problem = (
            f"{code.system_code} schema version {code.schema_version!r}, value {code.value!r}: the SDK checks "
            f"against {kept.schema_version!r} ({kept.value!r}) only"
        )
    raise ValueError(f"form: {problem}; validate=False sends without the local check")


def _data_dir() -> Path:
    return Path(str(resources.files("ksef_client"))) / "_data"


def form_schema(system_code: str = "FA (3)", directory: Path | None = None) -> etree.XMLSchema:
    """The compiled XSD of a form (``"FA (3)"``, ``"PEF (3)"``...), from ``_data`` unless ``directory``
    is given; compiled once per process."""
    with SCHEMA_LOCK:  # compiled one at a time (see SCHEMA_LOCK)
        return _compiled(system_code, directory)


def schema_errors(system_code: str, document: etree._Element) -> list[str]:
    """What the form's XSD finds wrong with ``document`` (``[]``: valid); safe from any thread, and
    threads validate at once (each with a compiled copy of its own, ``_copies``).

    The whitespace around the values of date, time and duration elements is stripped from
    ``document`` first: XML Schema collapses it (the whiteSpace facet of these types is fixed to
    ``collapse``), libxml2 does not (``_date_values``)."""
    _strip_date_values(document, _date_elements(system_code))
    return _xsd_errors(system_code, document)


def warm_up(system_code: str) -> None:
    """Compile a copy of the form's XSD for ``schema_errors`` and read its date elements, so that
    the first invoice checked does not wait for them (an emulator worker process's first task)."""
    copies = _copies(system_code)
    copies.give(copies.take())
    _date_elements(system_code)


def _xsd_errors(system_code: str, document: etree._Element) -> list[str]:
    """What a copy of the form's XSD finds wrong with ``document`` as it stands."""
    copies = _copies(system_code)
    schema = copies.take()
    try:
        return own_xsd_errors(schema, document)
    finally:
        copies.give(schema)


@functools.cache
def _date_elements(system_code: str) -> tuple[str, ...]:
    """The Clark names of the form's date, time and duration elements (read from its XSD once)."""
    data = _data_dir()
    return tuple(sorted(date_valued_elements(data / _schema_file(system_code), functools.partial(_locate, data))))


def _schema_file(system_code: str) -> str:
    """The XSD of a form under ``_data``; ``ValueError`` for a form the SDK has none for."""
    found = FORM_SCHEMAS.get(system_code)
    if found is None:
        raise ValueError(f"form: no XSD for the form {system_code!r} (the SDK has {', '.join(FORM_SCHEMAS)})")
    return found


def _locate(data: Path, location: str, referring: Path) -> Path | None:
    """The local copy of a schema document a form's XSD refers to (as ``_schema_document`` points to)."""
    if location.startswith(BASE_TYPES_URL):
        return data / "fa3" / "bazowe" / location.removeprefix(BASE_TYPES_URL)
    return None if "://" in location else referring.parent / location


def _strip_date_values(document: etree._Element, names: tuple[str, ...]) -> bool:
    """Strip the whitespace around the values of the elements ``names`` (and join a value a
    comment splits); whether anything changed."""
    if not names:
        return False  # iter() with no tag walks every element
    changed = False
    for element in document.iter(*names):
        text = element.text
        if not len(element):  # the usual case: the value is the text
            if text and (text[0] in _XML_SPACES or text[-1] in _XML_SPACES):
                element.text = text.strip(_XML_SPACES)
                changed = True
        elif not any(isinstance(child.tag, str) for child in element):  # elements inside: the XSD says
            value = "".join(str(part) for part in element.itertext()).strip(_XML_SPACES)
            for comment in list(element):  # no part of the value; the value is their text joined
                element.remove(comment)
            element.text = value
            changed = True
    return changed


@functools.cache
def _copies(system_code: str) -> SchemaCopies:
    """Copies of the form's XSD for ``schema_errors``, at most one per core (a copy compiles in a
    few milliseconds): none is ``form_schema``'s, which its callers use under ``SCHEMA_LOCK``."""
    return SchemaCopies(functools.partial(_compiled.__wrapped__, system_code, None), os.cpu_count() or 1)


@functools.cache
def _compiled(system_code: str, directory: Path | None) -> etree.XMLSchema:
    data = directory or _data_dir()
    main = data / _schema_file(system_code)
    if not main.is_file():
        raise FileNotFoundError(f"{system_code} schema not found at {main}: run 'make spec' (or pip install the wheel)")
    return etree.XMLSchema(_schema_document(main, data / "fa3" / "bazowe"))


def _schema_document(main: Path, base_types: Path) -> etree._ElementTree:
    """A form's XSD, its imports of the base types (by crd.gov.pl URL) pointed at their copies in
    ``base_types``, so compiling it needs no resolver; its enumerations, and those of the XSDs
    it loads from ``base_types``, list PL and PLN first (``_usual_values_first``).

    lxml hands libxml2's document loader (one for the process) to the parser's resolvers only while
    a parse or compile runs, and puts the one before back when it ends: another thread's parse
    ending while a schema compiles can leave the compile with libxml2's own loader, for which the
    URL names nothing (no network), and the compile fails (``XMLSchemaParseError``, a base type
    that "does not resolve"). A path relative to the form's XSD loads the same with either loader;
    the resolver that reorders the base types' enumerations is so only a speed-up: when libxml2
    loads a file itself, the schema is the same, its checks a little slower."""
    parser = hardened_parser()
    parser.resolvers.add(_UsualValuesFirst(base_types))
    document = etree.parse(str(main), parser)
    for reference in document.iter(f"{{{XSD}}}import", f"{{{XSD}}}include"):
        location = reference.get("schemaLocation") or ""
        if location.startswith(BASE_TYPES_URL):
            # Relative to the form's own XSD, as PEF's imports are: no file: URI to build from an
            # install path (a relative `directory=`, a Windows UNC share).
            local = base_types / location.removeprefix(BASE_TYPES_URL)
            reference.set("schemaLocation", Path(os.path.relpath(local, main.parent)).as_posix())
    _usual_values_first(document)
    return document


# libxml2 checks a value against an enumeration by comparing it with each listed value in turn:
# a Polish address's PL is about the 180th country code, PLN the 120th currency, so an invoice's
# enumerations cost about 480 comparisons, a seventh of its whole check. An enumeration is a set
# of values (XML Schema Part 2, 4.3.5: order is no part of it), so the compiled schemas list the
# values nearly every invoice in KSeF holds first; any other value is found as before.
_USUAL_VALUES = frozenset({"PL", "PLN"})


def _usual_values_first(document: etree._ElementTree) -> None:
    """Move the enumeration values in ``_USUAL_VALUES`` to the front of their lists."""
    for restriction in document.iter(f"{{{XSD}}}restriction"):
        listed = list(restriction.iterchildren(f"{{{XSD}}}enumeration"))
        usual = [value for value in listed[1:] if value.get("value") in _USUAL_VALUES]
        for value in reversed(usual):
            listed[0].addprevious(value)
            listed[0] = value


class _UsualValuesFirst(etree.Resolver):
    """Serves the XSDs under ``base_types`` with their usual values first (``_usual_values_first``);
    anything else, or a file it cannot read, is left to libxml2 (the same schema, unordered)."""

    def __init__(self, base_types: Path) -> None:
        super().__init__()
        self._base_types = base_types.resolve()

    # lxml calls resolve(url, public id, context); lxml-stubs leave the context out.
    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> object:  # type: ignore[override]
        """The reordered XSD when ``system_url`` is a file under ``base_types``; else ``None``."""
        if not system_url or "://" in system_url:
            return None
        path = Path(system_url).resolve()
        if not path.is_relative_to(self._base_types) or path.suffix != ".xsd":
            return None
        try:
            document = etree.parse(str(path), hardened_parser())
        except (OSError, etree.XMLSyntaxError):
            return None
        _usual_values_first(document)
        return self.resolve_string(etree.tostring(document), context, base_url=system_url)


def fa3_schema(directory: Path | None = None) -> etree.XMLSchema:
    """The compiled FA(3) schema (``directory``: a folder holding ``fa3/`` instead of ``_data``)."""
    return form_schema("FA (3)", directory.parent if directory is not None else None)


# --- AuthTokenRequest -----------------------------------------------------------------------------

# The schemas of the XAdES login document by namespace, under ``_data``: the spec's POST
# /auth/xades-signature, "Obsługiwane schematy: auth v2.0 (auth/schemy/schemat_auth_v2-0.xsd),
# auth v2.1 (auth/schemy/schemat_auth_v2-1.xsd)"; a document matching neither is refused with 400 /
# 21401 "Dokument nie jest zgodny ze schemą (xsd)." (ksef_client.xades.AUTH_NAMESPACES: the same).
AUTH_SCHEMAS = {
    "http://ksef.mf.gov.pl/auth/token/2.0": "auth/schemat_auth_v2-0.xsd",
    "http://ksef.mf.gov.pl/auth/token/2.1": "auth/schemat_auth_v2-1.xsd",
}

# KSeF is .NET, whose XSD validator reads a pattern as a .NET regular expression: "^" and "$" are
# anchors there, "\b" a word boundary, "\/" a "/". XML Schema's own regular expressions (Part 2,
# appendix F) have no anchors ("^" and "$" are characters a value must hold, the pattern matching
# the whole value anyway) and neither escape. The auth schemas are written for .NET: libxml2 will
# not compile v2-0's IP patterns, and reads TNipVatUE "(...)$" and TPeppolId "^P[A-Z]{2}[0-9]{6}$"
# of both versions as asking for a "$" in the value, refusing the Ministry's own example
# (auth/context-identifier-nip-vat-ue.md: "<NipVatUe>5265877635-ATU12345678</NipVatUe>").
# ``_xsd_pattern`` makes the fewest changes that give the XML Schema pattern of the values .NET
# accepts, and only where the two read a pattern differently (tests/test_auth_schemas.py holds the
# result to the published patterns read as .NET reads them).
#
# v2-0's four octets "((octet)\.?\b){4}": "\b" holds between a digit and a non-word character or
# the end, never between two digits or after a "." followed by "-", "/" or the end; so every
# octet but the last is followed by exactly one ".", and the last by none. In XML Schema: three
# "(octet)\." and the octet (what v2-1 writes: api-changelog.md 2.5.0 "W schemie 2.1 zaktualizowano
# wyrażenia regularne dla adresów IP (Ip4Address, Ip4Range, Ip4Mask), aby były zgodne z typowymi
# parserami"; "\d" is kept, which .NET and XML Schema both read as any decimal digit).
_OCTET = r"(25[0-5]|(2[0-4]|1\d|[1-9]|)\d)"
_NET_OCTETS = rf"({_OCTET}\.?\b){{4}}"
_XSD_OCTETS = rf"({_OCTET}\.){{3}}{_OCTET}"
_ESCAPE = re.compile(r"\\.")


def _xsd_pattern(net: str) -> str:
    """The XML Schema pattern of the values the .NET pattern ``net`` of an auth schema accepts:
    an opening "^" and a closing "$" (anchors) dropped, "\\/" written "/", v2-0's octets spelled
    out (``_NET_OCTETS``). Any other .NET-only syntax is left for libxml2 to refuse loudly."""
    pattern = net.removeprefix("^")
    if pattern.endswith("$") and _ESCAPE.sub("", pattern).endswith("$"):  # not an escaped "\$"
        pattern = pattern[:-1]
    pattern = pattern.replace(_NET_OCTETS, _XSD_OCTETS)
    return _ESCAPE.sub(lambda escape: "/" if escape[0] == "\\/" else escape[0], pattern)


def auth_schema(namespace: str) -> etree.XMLSchema:
    """The compiled ``AuthTokenRequest`` XSD of ``namespace`` (``AUTH_SCHEMAS``), from ``_data``,
    with its patterns read as KSeF reads them; compiled once per process. ``ValueError`` for a
    namespace KSeF has no schema for. Use it under ``SCHEMA_LOCK`` (or ``auth_request_errors``)."""
    with SCHEMA_LOCK:
        return _compiled_auth(namespace)


def auth_request_errors(request: etree._Element) -> list[str]:
    """What the schema of its namespace finds wrong with an ``AuthTokenRequest`` element, as
    ``line N: message`` (``[]``: valid); safe from any thread. ``request`` is the signed content:
    a ``ds:Signature`` has no place in the schema (an enveloped one is taken out by the
    signature's own transform before anything is signed or read). ``ValueError`` when its
    namespace is none of ``AUTH_SCHEMAS``."""
    return xsd_errors(auth_schema(etree.QName(request).namespace or ""), request)


@functools.cache
def _compiled_auth(namespace: str) -> etree.XMLSchema:
    return etree.XMLSchema(_auth_schema_document(namespace))


def _auth_schema_document(namespace: str, directory: Path | None = None) -> etree._ElementTree:
    """The auth XSD of ``namespace`` (from ``directory`` instead of ``_data`` when given), its
    patterns rewritten by ``_xsd_pattern``."""
    name = AUTH_SCHEMAS.get(namespace)
    if name is None:
        raise ValueError(
            f"no AuthTokenRequest schema for the namespace {namespace!r} (KSeF's: {', '.join(AUTH_SCHEMAS)})"
        )
    path = (directory or _data_dir()) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"AuthTokenRequest schema not found at {path}: run 'make spec' (or pip install the wheel)"
        )
    document = etree.parse(str(path), hardened_parser())
    for pattern in document.iter(f"{{{XSD}}}pattern"):
        pattern.set("value", _xsd_pattern(pattern.get("value") or ""))
    return document


# "poprawny dokument XML, zgodny z regułami XML 1.0" (faktury/weryfikacja-faktury.md).
_NOT_XML_1_0 = "the prolog declares XML version {}; KSeF takes XML 1.0 documents only"


def check_encoding(xml: bytes) -> str:
    """The cheap half of ``check_document`` (no parsing): UTF-8 without a BOM, no NUL byte (UTF-16
    without a BOM is valid UTF-8 full of NULs, and XML forbids U+0000 anyway), no prolog naming
    another encoding or an XML version but 1.0, no DTD or entity declaration. Returns the decoded
    text; ``InvoiceSchemaError`` otherwise."""
    if xml.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise InvoiceSchemaError(["the file starts with a byte order mark (BOM), which KSeF rejects"], "encoding")
    if b"\x00" in xml:
        raise InvoiceSchemaError(["NUL bytes: not UTF-8 text (UTF-16?); KSeF accepts UTF-8 only"], "encoding")
    try:
        text = xml.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvoiceSchemaError([f"not UTF-8 (KSeF accepts UTF-8 only): {error}"], "encoding") from None
    if not xml.startswith(COMMON_DECLARATIONS):  # those declare UTF-8 and XML 1.0, as most invoices do
        _check_declaration(xml)
    if declares_entities(xml):
        raise InvoiceSchemaError(["invoices with a DTD or entity declarations are refused"], "dtd")
    return text


def _check_declaration(xml: bytes) -> None:
    """``InvoiceSchemaError`` for an XML declaration naming another encoding than UTF-8 or another
    XML version than 1.0."""
    declared = _PROLOG.match(xml)
    if declared is not None and declared[1].decode("ascii", "replace").lower().replace("_", "-") != "utf-8":
        raise InvoiceSchemaError([f"the prolog declares encoding {declared[1].decode('ascii', 'replace')!r}"], "prolog")
    version = _VERSION.match(xml)
    if version is not None and version[2] != b"1.0":
        raise InvoiceSchemaError([_NOT_XML_1_0.format(version[2].decode("ascii", "replace"))], "prolog")


def check_document(xml: bytes, *, with_attachments: bool = False, limit: int | None = None) -> etree._Element:
    """Apply KSeF's rules for the file itself and return the parsed document.

    ``InvoiceSchemaError`` (with its ``rule``) for: a BOM or any encoding but UTF-8, a prolog naming
    another encoding or an XML version but 1.0, a DTD or entity declaration, a processing
    instruction, a discouraged character, more than 1 MB (3 MB ``with_attachments``; ``limit``
    bytes when given: a context's own limits), or XML that is not well-formed. The encoding, the
    version and the DTD are checked on the bytes (``check_encoding``) and again on the parsed
    document, so no encoding trick gets a DTD past both.
    """
    if limit is None:
        limit = MAX_INVOICE_WITH_ATTACHMENT_BYTES if with_attachments else MAX_INVOICE_BYTES
    if len(xml) > limit:
        raise InvoiceSchemaError([f"the invoice has {len(xml)} bytes; KSeF accepts at most {limit}"], "size")
    text = check_encoding(xml)
    if _has_discouraged(xml) and (found := _DISCOURAGED.search(text)):
        position = found.start()
        raise InvoiceSchemaError([f"discouraged character U+{ord(found[0]):04X} at offset {position}"], "characters")
    try:
        document = parse(xml)
    except etree.XMLSyntaxError as error:
        raise InvoiceSchemaError([f"not well-formed XML: {error}"], "xml") from error
    info = document.getroottree().docinfo  # a new object at each read of docinfo: read once
    if (info.encoding or "UTF-8").upper() != "UTF-8":
        raise InvoiceSchemaError([f"parsed as {info.encoding}; KSeF accepts UTF-8 only"], "encoding")
    if info.xml_version != "1.0":
        raise InvoiceSchemaError([_NOT_XML_1_0.format(info.xml_version)], "prolog")
    if info.internalDTD is not None or info.doctype:
        raise InvoiceSchemaError(["invoices with a DTD or entity declarations are refused"], "dtd")
    if may_hold_instruction(xml) and (
        document.xpath("//processing-instruction()") or _siblings_are_instructions(document)
    ):
        raise InvoiceSchemaError(["processing instructions are not allowed"], "processing-instruction")
    return document


def _has_discouraged(xml: bytes) -> bool:
    """Whether UTF-8 ``xml`` holds a discouraged character (the emulator checks 10,000 invoices of a
    batch: most are ASCII, which a C scan settles)."""
    if xml.isascii():
        return b"\x7f" in xml
    # Every discouraged character starts with one of these bytes; Polish letters (0xC3-0xC5 ...)
    # with none, and memchr rules them out far faster than the pattern scans the text.
    if not any(lead in xml for lead in _DISCOURAGED_LEADS):
        return False
    return _DISCOURAGED_UTF8.search(xml) is not None


def _siblings_are_instructions(document: etree._Element) -> bool:
    node = document.getprevious()
    while node is not None:
        if isinstance(node, etree._ProcessingInstruction):
            return True
        node = node.getprevious()
    node = document.getnext()
    while node is not None:
        if isinstance(node, etree._ProcessingInstruction):
            return True
        node = node.getnext()
    return False


# UBL 2.1's common components (PEF(3), PEF_KOR(3)): an attachment's content is a
# cac:Attachment/cbc:EmbeddedDocumentBinaryObject.
UBL_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
UBL_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
_UBL_ROOTS = frozenset({FORM_NAMESPACES["PEF (3)"], FORM_NAMESPACES["PEF_KOR (3)"]})
_EMBEDDED_DOCUMENT = f".//{{{UBL_CAC}}}Attachment/{{{UBL_CBC}}}EmbeddedDocumentBinaryObject"
# Bytes every invoice with an attachment holds (the element's name), so most files are ruled out
# without walking their tree.
_ATTACHMENT_MARKERS = (b"Zalacznik", b"EmbeddedDocumentBinaryObject")


def may_have_attachment(xml: bytes) -> bool:
    """Whether ``xml`` may carry an attachment (``has_attachment``): ``False`` rules it out
    without parsing; ``True`` says only that the name of the element occurs."""
    return any(marker in xml for marker in _ATTACHMENT_MARKERS)


def has_attachment(document: etree._Element) -> bool:
    """Whether an invoice carries attachments, which need the seller's consent (KSeF's status 415
    without it) and raise its size limit (1 MB to 3 MB). An FA invoice: its ``Zalacznik``. A PEF
    invoice (UBL): an embedded document, ``cac:Attachment/cbc:EmbeddedDocumentBinaryObject``
    (``cac:AdditionalDocumentReference``'s in Peppol BIS); KSeF lists the Ministry's PEF template
    with one as ``hasAttachment: true`` (its Java client's integration test of the
    ``hasAttachment`` filter). A mere link (``cac:ExternalReference``) is no attachment: the
    file holds nothing attached, and no source says KSeF counts it (the SDK's reading)."""
    if etree.QName(document).namespace in _UBL_ROOTS:
        return document.find(_EMBEDDED_DOCUMENT) is not None
    return document.find("{*}Zalacznik") is not None


def validate_invoice(xml: bytes, form: str | FormCode = "FA(3)", *, limits: SessionLimits | None = None) -> None:
    """Raise ``InvoiceSchemaError`` unless ``xml`` passes KSeF's file rules (``check_document``)
    and is valid against the XSD of ``form`` (FA(3), FA(2), FA_RR(1), PEF(3), PEF_KOR(3): a
    ``FormCode`` of another form or schema version is a ``ValueError``, ``checkable``). Its size
    is checked against ``limits`` (a context's own, ``SessionLimits.of``), KSeF's defaults when
    not given."""
    checked_invoice(xml, form, limits=limits)


def checked_invoice(
    xml: bytes, form: str | FormCode = "FA(3)", *, limits: SessionLimits | None = None
) -> etree._Element:
    """``validate_invoice``, returning the checked document's root element, from which a caller
    reads values without parsing ``xml`` again (its date values may keep the whitespace around
    them: ``schema_errors_stripping_on_fault``)."""
    code = checkable(form_code(form))
    limits = limits or KSEF_LIMITS
    largest = max(limits.max_invoice_bytes, limits.max_invoice_with_attachment_bytes)
    # Only past the smaller limit does it matter whether the invoice has attachments (the bytes
    # looked through for one cost a tenth of the rest of the file's checks but the XSD's).
    smaller = limits.max_invoice_bytes
    document = check_document(xml, limit=largest if len(xml) > smaller and may_have_attachment(xml) else smaller)
    if limits.exceeded_by(size=len(xml)):  # past the smaller limit: which one applies?
        attached = has_attachment(document)
        most = limits.max_invoice_with_attachment_bytes if attached else limits.max_invoice_bytes
        if len(xml) > most:
            kind = "with" if attached else "without"
            raise InvoiceSchemaError([f"the invoice has {len(xml)} bytes; at most {most} {kind} attachments"], "size")
    errors = schema_errors_stripping_on_fault(code.system_code, document)
    if errors:
        raise InvoiceSchemaError([not_of_the_form(code.system_code, document) or errors[0], *errors[1:]], "schema")
    return document


def not_of_the_form(system_code: str, document: etree._Element) -> str | None:
    """Why ``document`` is no invoice of the form ``system_code`` when its root element is in
    another namespace than the form's (``FORM_NAMESPACES``): the form it is when the namespace
    is another form's, and how to send it as that form; otherwise the namespace expected. ``None``
    when the root is in the form's namespace (libxml2's own message, "No matching global
    declaration available for the validation root", names neither)."""
    expected = FORM_NAMESPACES.get(system_code)
    root = etree.QName(document)
    if expected is None or root.namespace == expected:
        return None
    other = next((code for code, namespace in FORM_NAMESPACES.items() if namespace == root.namespace), None)
    if other is not None:
        name = next(name for name, known in FORMS.items() if known.system_code == other)
        return (
            f"the document's form is {other} (its root element {root.localname} is in {other}'s namespace "
            f"{root.namespace}), not {system_code}, the form it is checked against (the session's): send it as "
            f'{name}: form="{name}" in Python (online_session, send_batch), --form "{name}" with ksef send'
        )
    where = f"the namespace {root.namespace}" if root.namespace else "no namespace"
    return (
        f"the root element {root.localname} is in {where}, not in {system_code}'s namespace {expected}: "
        f"no {system_code} invoice (the forms the SDK knows: {', '.join(FORMS)})"
    )


def schema_errors_stripping_on_fault(system_code: str, document: etree._Element) -> list[str]:
    """``schema_errors``, with the date values' whitespace stripped only when the XSD finds fault:
    stripping never makes a valid document invalid, and walking for the dates costs a tenth of the
    check. A valid ``document`` may so keep whitespace around its date values: for callers that
    read no values after, or strip what they read."""
    errors = _xsd_errors(system_code, document)
    if errors and _strip_date_values(document, _date_elements(system_code)):
        errors = _xsd_errors(system_code, document)
    return errors
