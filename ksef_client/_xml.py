"""The one hardened XML parser for documents from outside: invoices, UPOs, signed XML, schemas.

No DTD is loaded, no entity resolved, nothing fetched from the network, and lxml's size limits
stay on (``huge_tree=False``). Each thread parses with its own parser (lxml serialises the users
of one parser).
"""

from __future__ import annotations

import re
import threading

from lxml import etree

_local = threading.local()
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
# lxml compiles a schema and keeps one error log per schema object: two threads compiling at once
# (an emulator's batch worker beside a request) break the compilation, and two validating at once
# mix their errors. Every XSD (invoice forms, UPO) is compiled and used under this lock.
SCHEMA_LOCK = threading.RLock()


def hardened_parser() -> etree.XMLParser:
    """A new parser with the hardened settings (for a parser that needs its own resolvers)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse(xml: bytes) -> etree._Element:
    """The root element of ``xml``; ``etree.XMLSyntaxError`` when it is not well-formed."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = hardened_parser()
    return etree.fromstring(xml, parser=parser)


def declares_entities(xml: bytes) -> bool:
    """Whether ``xml`` has a document type or entity declaration (KSeF's documents never do)."""
    # Every declaration starts with "<!". Most documents hold no "!" at all, which memchr rules out
    # in a tenth of the pattern's time (every "<" is a start the pattern has to try).
    return b"!" in xml and _DECLARATION.search(xml) is not None


def xsd_errors(schema: etree.XMLSchema, document: etree._Element) -> list[str]:
    """What ``schema`` finds wrong with ``document`` (``[]``: valid), as ``line N: message``;
    validated under ``SCHEMA_LOCK``, so safe from any thread."""
    with SCHEMA_LOCK:
        if schema.validate(document):
            return []
        return [f"line {e.line}: {e.message}" for e in schema.error_log]  # type: ignore[attr-defined]
