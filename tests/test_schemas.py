"""Local invoice checks (``ksef_client.schemas``): KSeF's rules for the file, as the Ministry's
``faktury/weryfikacja-faktury.md`` states them, and each form's XSD."""

from __future__ import annotations

import pytest

from ksef_client._xml import declares_entities
from ksef_client.schemas import InvoiceSchemaError, validate_invoice
from ksef_client.testing import sample_invoice

FOOTER = b"<RodzajFaktury>VAT</RodzajFaktury>"


def _with(xml: bytes, after: bytes, added: bytes) -> bytes:
    edited = xml.replace(after, after + added, 1)
    assert edited != xml
    return edited


# --- a DTD is only refused where one can stand --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        b"<!-- no <!ENTITY here, nor a <!DOCTYPE -->",
        b"<SystemInfo><![CDATA[Regulamin: <!DOCTYPE html> ...]]></SystemInfo>",
    ],
    ids=["comment", "cdata"],
)
def test_the_words_doctype_and_entity_in_text_are_no_declaration(text: bytes) -> None:
    # XML 1.0, 2.8: "prolog ::= XMLDecl? Misc* (doctypedecl Misc*)?": a DOCTYPE (and the entities
    # it declares) stands only before the root element; inside it "<!DOCTYPE" is a comment's or a
    # CDATA section's text. Such an invoice is well-formed, has no DTD and is valid: it was refused
    # [dtd] for the bytes "<!DOCTYPE" anywhere.
    if text.startswith(b"<SystemInfo>"):
        xml = sample_invoice().replace(b"<SystemInfo>ksef_client</SystemInfo>", text, 1)
    else:
        xml = _with(sample_invoice(), FOOTER, text)
    assert b"<!DOCTYPE" in xml or b"<!ENTITY" in xml
    validate_invoice(xml)


@pytest.mark.parametrize(
    "prolog",
    [
        b'<!DOCTYPE Faktura [<!ENTITY a "x">]>',
        b'<!-- <Faktura> --><!DOCTYPE Faktura [<!ENTITY a "x">]>',
        b'<?note <Faktura> ?>\n<!DOCTYPE Faktura [<!ENTITY a "x">]>\n<!-- after -->',
        b"\n<!DOCTYPE Faktura>",
    ],
)
def test_a_doctype_in_the_prolog_is_refused_before_parsing(prolog: bytes) -> None:
    # The guard reads the bytes before any parser sees them (no entity may ever be expanded):
    # a comment or processing instruction before the DOCTYPE that holds "<Faktura>" does not end
    # the prolog early.
    xml = _with(sample_invoice(), b'<?xml version="1.0" encoding="UTF-8"?>\n', prolog)
    assert declares_entities(xml)
    with pytest.raises(InvoiceSchemaError) as refused:
        validate_invoice(xml)
    assert refused.value.rule == "dtd"


def test_a_prolog_the_guard_cannot_walk_is_searched_whole() -> None:
    # Text before the root element is not well-formed; the guard does not know where the prolog
    # ends, so any "<!DOCTYPE" or "<!ENTITY" counts.
    assert declares_entities(b'x <Faktura><!-- <!ENTITY a "x"> --></Faktura>')
    assert declares_entities(b'<!-- unclosed <Faktura> <!DOCTYPE Faktura [<!ENTITY a "x">]>')
    assert not declares_entities(b"<Faktura><!-- <!ENTITY --></Faktura>")
