"""Which elements of a form hold a date, a time or a duration, read from its XSD files.

XML Schema fixes the whiteSpace facet of these types to ``collapse`` (Part 2, 3.2.6-3.2.14): a
value with spaces or line breaks around it is valid, as Xerces and KSeF take it. libxml2 does not
collapse them unless the type has a pattern facet, and refuses ``<DataWytworzeniaFa>
2026-02-01T00:00:00Z </DataWytworzeniaFa>`` ("not a valid value of the local atomic type"), so
``validate_invoice`` strips the whitespace around these elements' values in its parsed copy
when the XSD finds fault, and validates again (``schema_errors`` strips before validating); the
bytes sent are not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from lxml import etree

from ksef_client._xml import hardened_parser

XSD = "http://www.w3.org/2001/XMLSchema"
# The primitive types whose values libxml2 reads without collapsing their whitespace.
DATE_TYPES = frozenset(
    f"{{{XSD}}}{name}"
    for name in ("date", "dateTime", "time", "duration", "gYear", "gYearMonth", "gMonth", "gMonthDay", "gDay")
)
_DEFINITIONS = (f"{{{XSD}}}simpleType", f"{{{XSD}}}complexType")
_REFERENCES = (f"{{{XSD}}}include", f"{{{XSD}}}import", f"{{{XSD}}}redefine")
_BASES = (
    f"{{{XSD}}}restriction",
    f"{{{XSD}}}extension",
    f"{{{XSD}}}simpleContent/{{{XSD}}}restriction",
    f"{{{XSD}}}simpleContent/{{{XSD}}}extension",
)
_CHILD_TYPES = (f"{{{XSD}}}simpleType", f"{{{XSD}}}complexType")

# A schema document: its root and the target namespace its declarations belong to.
Document = tuple[etree._Element, str]


def date_valued_elements(main: Path, locate: Callable[[str, Path], Path | None]) -> frozenset[str]:
    """The Clark names (``{namespace}local``) of the elements declared in ``main`` and the schema
    documents it includes or imports whose type is, or derives from, a date, time or duration
    type. ``locate(schemaLocation, referring_file)`` says which file a reference means (``None``:
    skip it). A name also declared with another type is left out: it cannot be told apart."""
    documents = list(_documents(main, locate))
    types = {
        _clark(namespace, definition.get("name", "")): definition
        for root, namespace in documents
        for definition in root
        if definition.tag in _DEFINITIONS and definition.get("name")
    }
    dates: set[str] = set()
    others: set[str] = set()
    for root, namespace in documents:
        for element, name in _declarations(root, namespace):
            (dates if _is_date(_type_of(element), types, set()) else others).add(name)
    return frozenset(dates - others)


def _documents(main: Path, locate: Callable[[str, Path], Path | None]) -> Iterator[Document]:
    """``main`` and every schema document it reaches, once each."""
    pending: list[tuple[Path, str | None]] = [(main, None)]
    seen: set[Path] = set()
    while pending:
        path, including_namespace = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        root = etree.parse(str(path), hardened_parser()).getroot()
        # An included document without a target namespace takes its includer's ("chameleon").
        namespace = root.get("targetNamespace", including_namespace or "")
        yield root, namespace
        for reference in root:
            if reference.tag in _REFERENCES and (location := reference.get("schemaLocation")):
                found = locate(location, path)
                if found is not None:
                    included = reference.tag != f"{{{XSD}}}import"
                    pending.append((found.resolve(), namespace if included else None))


def _declarations(root: etree._Element, namespace: str) -> Iterator[tuple[etree._Element, str]]:
    """Every element declaration with a name, and the Clark name of the elements it declares."""
    qualified = root.get("elementFormDefault") == "qualified"
    for element in root.iter(f"{{{XSD}}}element"):
        name = element.get("name")
        if name is None:
            continue  # a reference to a global declaration, which is counted itself
        is_global = element.getparent() is root
        if is_global or element.get("form", "qualified" if qualified else "unqualified") == "qualified":
            yield element, _clark(namespace, name)
        else:
            yield element, name


def _type_of(element: etree._Element) -> etree._Element | str | None:
    """The element's type: a named one's Clark name, an anonymous definition, or none."""
    named = element.get("type")
    if named is not None:
        return _resolve(element, named)
    return next((child for child in element if child.tag in _CHILD_TYPES), None)


def _is_date(kind: etree._Element | str | None, types: dict[str, etree._Element], seen: set[str]) -> bool:
    if isinstance(kind, str):
        if kind in DATE_TYPES:
            return True
        if kind in seen or kind not in types:
            return False
        seen.add(kind)
        kind = types[kind]
    if kind is None:
        return False
    for path in _BASES:
        derived = kind.find(path)
        if derived is not None:
            base = derived.get("base")
            inner = derived.find(f"{{{XSD}}}simpleType")
            return _is_date(_resolve(derived, base) if base else inner, types, seen)
    return False  # a list, a union, or a complex type with element content


def _resolve(node: etree._Element, qname: str) -> str:
    prefix, _, local = qname.rpartition(":")
    return _clark(node.nsmap.get(prefix or None, "") or "", local)


def _clark(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}" if namespace else local
