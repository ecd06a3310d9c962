"""The one hardened XML parser for documents from outside: invoices, UPOs, signed XML, schemas.

No DTD is loaded, no entity resolved, nothing fetched from the network, and lxml's size limits
stay on (``huge_tree=False``). Each thread parses with its own parser (lxml serialises the users
of one parser).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from lxml import etree

_local = threading.local()
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
# What may stand in a prolog before the root element or a DOCTYPE (XML 1.0, 2.8 and 2.6, 2.5):
# the XML declaration or a processing instruction, a comment, with spaces before them.
_PROLOG_ITEM = re.compile(rb"[ \t\r\n]*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)
# Where the prolog ends: a DOCTYPE, or the root element's start tag ("<" and the first byte of a
# name: a letter, "_", ":" or a UTF-8 lead byte).
_PROLOG_END = re.compile(rb"[ \t\r\n]*(?:(<!DOCTYPE)|<[A-Za-z_:\x80-\xff])")
# lxml compiles a schema and keeps one error log per schema object: two threads compiling at once
# (an emulator's batch worker beside a request) break the compilation, and two validating at once
# mix their errors. Every XSD (invoice forms, UPO) is compiled and used under this lock.
SCHEMA_LOCK = threading.RLock()


def hardened_parser(*, remove_blank_text: bool = False, collect_ids: bool = True) -> etree.XMLParser:
    """A new parser with the hardened settings (for a parser that needs its own resolvers);
    ``remove_blank_text``: whitespace between elements left out; ``collect_ids=False``: no table of
    the document's ID attributes (both for ``parse_for_reading``)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=remove_blank_text,
        collect_ids=collect_ids,
    )


def parse(xml: bytes) -> etree._Element:
    """The root element of ``xml``; ``etree.XMLSyntaxError`` when it is not well-formed."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = hardened_parser()
    return etree.fromstring(xml, parser=parser)


def parse_for_reading(xml: bytes) -> etree._Element:
    """As :func:`parse`, for a tree that is only read for its values: when ``xml`` holds nothing
    but elements and text (no comment, CDATA section, declaration or processing instruction after
    the XML declaration), the whitespace between elements is left out of the tree.

    KSeF indents its documents, so half their nodes are that whitespace: leaving it out makes the
    parse no slower and every walk over the tree about twice as fast. libxml2 leaves out a
    whitespace-only text node only beside elements, never inside a value (``<a> </a>`` keeps its
    space, nor a run that follows text in its element), so with no other kind of node in the
    document every element's text reads the same either way. A comment or processing instruction
    could make a run of whitespace between two of them look like one between elements, so such a
    document is parsed whole (``parse``).
    """
    if not _elements_and_text_only(xml):
        return parse(xml)
    parser = getattr(_local, "reading_parser", None)
    if parser is None:
        # Nothing looks an element up by its ID in a tree read for values (a signed document's
        # references are resolved on a tree of ``parse``): without the table of IDs a 2.6 MB
        # session UPO parses 7-9 % faster (11.4 against 12.5 ms, best of 60 in alternation).
        parser = _local.reading_parser = hardened_parser(remove_blank_text=True, collect_ids=False)
    return etree.fromstring(xml, parser=parser)


def _elements_and_text_only(xml: bytes) -> bool:
    """Whether ``xml`` surely holds no comment, CDATA, declaration or processing instruction after
    its XML declaration. Told from bytes, so only for a document in an encoding where ``<``, ``!``
    and ``?`` are their ASCII bytes and no NUL appears (UTF-8 and the like: it starts with ``<``);
    any other is not sure."""
    return xml[:1] == b"<" and b"\0" not in xml and b"!" not in xml and not _processing_instruction_after_start(xml)


# "?"s looked at one by one before ``bytes.find`` searches the rest for "<?" (see below).
_QUESTION_MARKS_LOOKED_AT = 8


def _processing_instruction_after_start(xml: bytes, at: int = 2) -> bool:
    """Whether ``<?`` stands anywhere after the first byte (its "?" at ``at`` or after: from byte 2
    on). Searched as "?" (memchr, one pass over a document that holds none but its
    declaration's), not as "<?": ``bytes.find`` of two bytes stops at every "<", some 100,000 in a
    UPO of 5,000 documents (2 ms, where this takes 0.1). A few "?" not after a "<" (the
    declaration's own "?>", one in a value) are stepped over; past that, ``bytes.find`` searches
    the rest (a document full of "?")."""
    for _ in range(_QUESTION_MARKS_LOOKED_AT):
        at = xml.find(b"?", at)
        if at < 0:
            return False
        if xml[at - 1] == 0x3C:  # "<"
            return True
        at += 1
    return xml.find(b"<?", at) >= 0


# The XML declaration: "<?xml" and a space (XML 1.0, 2.8); "<?xml-stylesheet" is an instruction.
_XML_DECLARATION = re.compile(rb"<\?xml[ \t\r\n]")
# The XML declaration nearly every invoice starts with (the Ministry's samples, KSeF's own documents,
# the SDK's): UTF-8 and XML 1.0 declared, so the checks of a prolog have nothing to look at in it
# and start after it (``may_hold_instruction``, ``schemas.check_encoding``). Both are 38 bytes.
COMMON_DECLARATIONS = (b'<?xml version="1.0" encoding="UTF-8"?>', b'<?xml version="1.0" encoding="utf-8"?>')
_COMMON_DECLARATION_BYTES = len(COMMON_DECLARATIONS[0])


def may_hold_instruction(xml: bytes) -> bool:
    """Whether a processing instruction may stand in ``xml`` (UTF-8, or an encoding where ``<``
    and ``?`` are their ASCII bytes): ``<?`` anywhere but in the XML declaration at its start.
    ``False`` is sure; ``True`` is for the parsed tree to tell (``<?`` in a comment or a CDATA
    section is text)."""
    if xml.startswith(COMMON_DECLARATIONS):  # no instruction in it: "<?" from its end on
        return _processing_instruction_after_start(xml, _COMMON_DECLARATION_BYTES + 1)
    if xml.startswith(b"<?") and _XML_DECLARATION.match(xml) is None:
        return True
    return _processing_instruction_after_start(xml)


def declares_entities(xml: bytes) -> bool:
    """Whether ``xml`` has a document type declaration, the one place entities are declared
    (KSeF's documents never have one), told from the bytes before any parser sees them.

    Only the prolog can hold it (XML 1.0, 2.8: ``prolog ::= XMLDecl? Misc* (doctypedecl Misc*)?``,
    before the root element), so the prolog is walked (its declaration, processing instructions,
    comments and spaces) up to the root element's start tag: ``<!DOCTYPE`` in a comment or CDATA
    section is text (a DOCTYPE after the start tag is not well-formed, and the parser stops
    there). A prolog the walk cannot read (another encoding, text where none may stand) is
    searched whole for ``<!DOCTYPE`` or ``<!ENTITY``.
    """
    # Every declaration starts with "<!". Most documents hold no "!" at all, which memchr rules out
    # in a tenth of the pattern's time (every "<" is a start the pattern has to try).
    if b"!" not in xml:
        return False
    found = _doctype_in_prolog(xml)
    return found if found is not None else _DECLARATION.search(xml) is not None


def _doctype_in_prolog(xml: bytes) -> bool | None:
    """Whether the prolog of ``xml`` holds a ``<!DOCTYPE``; ``None`` when the walk does not reach
    the root element's start tag (a ``<`` and a name's first byte in an ASCII-compatible encoding)."""
    at = 3 if xml.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte order mark
    while (item := _PROLOG_ITEM.match(xml, at)) is not None:
        at = item.end()
    end = _PROLOG_END.match(xml, at)
    return None if end is None else end[1] is not None


def xsd_errors(schema: etree.XMLSchema, document: etree._Element) -> list[str]:
    """What ``schema`` finds wrong with ``document`` (``[]``: valid), as ``line N: message``;
    validated under ``SCHEMA_LOCK``, so safe from any thread."""
    with SCHEMA_LOCK:
        return own_xsd_errors(schema, document)


def own_xsd_errors(schema: etree.XMLSchema, document: etree._Element) -> list[str]:
    """``xsd_errors`` without the lock, for a schema object no other thread uses meanwhile (lxml
    validates without the GIL, so threads with a copy each validate at once)."""
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]  # type: ignore[attr-defined]


class SchemaCopies:
    """Compiled copies of one XSD, each lent to one thread at a time (``take``, then ``give``), so
    that threads validate at once: one shared object would have to be locked, as it keeps one error
    log. A copy is compiled (under ``SCHEMA_LOCK``, by ``compile_schema``) only when every one made
    is lent out, up to ``most``; past that a thread waits for a copy to come back.

    ``take`` and ``give`` rather than a context manager: an invoice is checked in some 80 µs, and
    a generator-based ``with`` and a ``Condition.notify`` nobody waits for cost a tenth of that."""

    def __init__(self, compile_schema: Callable[[], etree.XMLSchema], most: int) -> None:
        self._compile = compile_schema
        self._free: list[etree.XMLSchema] = []
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._left_to_make = max(1, most)
        self._waiting = 0

    def take(self) -> etree.XMLSchema:
        """A copy for this thread alone until ``give`` hands it back (in a ``finally``)."""
        with self._lock:
            while not self._free and not self._left_to_make:
                self._waiting += 1
                try:
                    self._returned.wait()
                finally:
                    self._waiting -= 1
            if self._free:
                return self._free.pop()
            self._left_to_make -= 1
        try:
            with SCHEMA_LOCK:
                return self._compile()
        except BaseException:
            with self._lock:
                self._left_to_make += 1
                self._wake_one()
            raise

    def give(self, schema: etree.XMLSchema) -> None:
        """Hand back a copy ``take`` lent."""
        with self._lock:
            self._free.append(schema)
            self._wake_one()

    def _wake_one(self) -> None:  # under self._lock
        if self._waiting:
            self._returned.notify()
