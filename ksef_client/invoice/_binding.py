"""XML <-> generated models: one configured xsdata parser and serializer, and the canonical form.

Documents are parsed by lxml with the SDK's hardened settings (no DTD, no entities, no network,
no recovery) before xsdata walks the tree: xsdata's own lxml reader parses in recovery mode.
Comments and processing instructions are left out of that tree: they are no part of an element's
value (XML 1.0, sections 2.5 and 2.6), and xsdata reads only the text before an element's first
child node, so ``<P_15>2<!-- x -->051</P_15>`` would become 2 (lxml joins the text around a node
it leaves out: 2051).
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from lxml import etree
from xsdata.formats.dataclass.parsers.config import ParserConfig
from xsdata.formats.dataclass.serializers.config import SerializerConfig
from xsdata_attrs.bindings import XmlContext, XmlParser, XmlSerializer

T = TypeVar("T")

_HARDENED = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_VALUES_ONLY = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True
)


@functools.cache
def _context() -> XmlContext:
    return XmlContext()


@functools.cache
def _parser() -> XmlParser:
    config = ParserConfig(fail_on_unknown_properties=True, fail_on_unknown_attributes=True)
    return XmlParser(config=config, context=_context())


@functools.cache
def _serializer() -> XmlSerializer:
    config = SerializerConfig(encoding="UTF-8", xml_declaration=True, indent=None)
    return XmlSerializer(config=config, context=_context())


def parse(xml: bytes, model: type[T]) -> T:
    """``xml`` as an instance of the generated ``model`` (``ValueError`` if it is not one)."""
    if not isinstance(xml, bytes | bytearray):
        raise TypeError(f"xml: expected bytes, got {type(xml).__name__}")
    try:
        tree = etree.fromstring(bytes(xml), parser=_VALUES_ONLY)
    except etree.XMLSyntaxError as error:
        raise ValueError(f"not well-formed XML: {error}") from error
    try:
        return _parser().parse(tree, model)
    except Exception as error:  # xsdata raises ParserError, ConverterError, TypeError...
        raise ValueError(f"the XML does not fit {model.__qualname__}: {error}") from error


def serialize(obj: Any, namespace: str) -> bytes:
    """``obj`` as UTF-8 XML (declaration, no BOM, no indentation), ``namespace`` as the default one."""
    text: str = _serializer().render(obj, ns_map={None: namespace})
    return text.encode("utf-8")


def canonical(xml: bytes) -> bytes:
    """C14N 2.0 of ``xml`` with whitespace-only text dropped and prefixes normalised: two documents
    with the same content and different formatting or prefixes have the same canonical form."""
    tree = etree.fromstring(bytes(xml), parser=_HARDENED)
    text: str = etree.canonicalize(tree, strip_text=True, rewrite_prefixes=True)
    return text.encode("utf-8")
