"""Local invoice checks (``ksef_client.schemas``): KSeF's rules for the file, as the Ministry's
``faktury/weryfikacja-faktury.md`` states them, and each form's XSD."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from ksef_client import schemas
from ksef_client._xml import SchemaCopies, declares_entities
from ksef_client.mock.state.invoice_checks import check_file, prepare
from ksef_client.schemas import InvoiceSchemaError, validate_invoice
from ksef_client.spec_version import pinned_schemas
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


# --- whitespace around dates, as XML Schema collapses it ---------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"\n\t\t{v}\n\t", b" {v}", b"{v} ", b"\n<!-- UTC -->{v} "],
    ids=["indented", "leading", "trailing", "with-a-comment"],
)
def test_whitespace_around_a_datetime_is_valid(value: bytes) -> None:
    # XML Schema Part 2, 3.2.7 (dateTime): "whiteSpace = collapse (fixed)", and etd:TDataCzas says
    # <xsd:whiteSpace value="collapse"/>: Xerces and KSeF take the value; libxml2 did not ("is not a
    # valid value of the local atomic type") and the invoice was refused before sending.
    xml = sample_invoice()
    created = xml.split(b"<DataWytworzeniaFa>")[1].split(b"</DataWytworzeniaFa>")[0]
    spaced = xml.replace(created, value.replace(b"{v}", created), 1)
    assert spaced != xml
    validate_invoice(spaced)
    assert not check_file("FA (3)", spaced).rejection  # the emulator takes it, as KSeF does


def test_whitespace_is_only_collapsed_where_the_schema_collapses_it() -> None:
    # TNrNIP is an xsd:string with a pattern: its whitespace is preserved, so " 5265877635 " fails.
    xml = sample_invoice().replace(b"<NIP>5265877635</NIP>", b"<NIP> 5265877635 </NIP>", 1)
    with pytest.raises(InvoiceSchemaError, match="NIP"):
        validate_invoice(xml)
    # A date with something else than whitespace around it stays invalid.
    xml = sample_invoice().replace(b"<DataWytworzeniaFa>", b"<DataWytworzeniaFa>x", 1)
    with pytest.raises(InvoiceSchemaError, match="DataWytworzeniaFa"):
        validate_invoice(xml)


def test_a_date_libxml2_takes_with_its_whitespace_is_read_stripped_by_the_emulator() -> None:
    # libxml2 takes " 2026-..." for P_1 (etd:TData) as it stands, so the checks, which strip only
    # when the XSD finds fault (validate_invoice, the emulator's check_file), have nothing to strip;
    # the emulator's fields_of strips what it reads, and KSeF reads the collapsed value (XML Schema
    # Part 2, 3.2.9).
    xml = sample_invoice()
    issued = xml.split(b"<P_1>")[1].split(b"</P_1>")[0]
    spaced = xml.replace(b"<P_1>" + issued, b"<P_1>\n " + issued + b" ", 1)
    validate_invoice(spaced)
    fields = check_file("FA (3)", spaced).fields
    assert fields is not None and fields.issue_date == issued.decode()


@pytest.mark.parametrize(
    "edit",
    [
        lambda x: x.replace(b"?>", b"?><?xml-stylesheet href='a.xsl'?>", 1),
        lambda x: x[x.index(b"?>") + 2 :].lstrip().replace(b"<Faktura", b"<?pi first?><Faktura", 1),
        lambda x: x + b"<?pi last?>",
        lambda x: x.replace(b"<P_2>", b"<?pi x?><P_2>", 1),
        lambda x: b"<?xml-stylesheet href='a.xsl'?>" + x[x.index(b"?>") + 2 :].lstrip(),
    ],
    ids=["after-the-declaration", "first-without-a-declaration", "after-the-root", "inside", "stylesheet-first"],
)
def test_a_processing_instruction_is_refused_wherever_it_stands(edit: Callable[[bytes], bytes]) -> None:
    # "Dokument nie może zawierać instrukcji przetwarzania" (faktury/weryfikacja-faktury.md): told
    # from the bytes first (no "<?" but the XML declaration's: none), so every place one can stand.
    xml = edit(sample_invoice())
    with pytest.raises(InvoiceSchemaError) as refused:
        validate_invoice(xml)
    assert refused.value.rule == "processing-instruction"


@pytest.mark.parametrize(
    "text",
    [b"<!-- <?pi not one?> -->", b"<![CDATA[a <?pi not one?> b]]>"],
    ids=["comment", "cdata"],
)
def test_the_characters_of_a_processing_instruction_in_text_are_no_instruction(text: bytes) -> None:
    validate_invoice(sample_invoice().replace(b"<SystemInfo>", b"<SystemInfo>" + text, 1))


def test_the_date_elements_are_read_from_each_forms_xsd() -> None:
    fa3 = "{http://crd.gov.pl/wzor/2025/06/25/13775/}"
    ubl = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"
    found = {code: set(schemas._date_elements(code)) for code in schemas.FORM_SCHEMAS}
    assert {f"{fa3}{name}" for name in ("DataWytworzeniaFa", "DataGodzRozpTransportu", "P_1")} <= found["FA (3)"]
    assert f"{fa3}P_2" not in found["FA (3)"] and f"{fa3}P_15" not in found["FA (3)"]
    assert any(name.endswith("}DataWytworzeniaFa") for name in found["FA_RR (1)"])
    assert {f"{ubl}IssueDate", f"{ubl}DueDate", f"{ubl}IssueTime"} <= found["PEF (3)"] & found["PEF_KOR (3)"]


# --- forms the SDK has no XSD for ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (schemas.FormCode("FA (4)", "1-0E", "FA"), r"no XSD for the form 'FA \(4\)'"),
        (schemas.FormCode("FA_RR (1)", "1-0E", "RR"), r"FA_RR \(1\) schema version '1-0E'.*'1-1E'"),
        (schemas.FormCode("FA (3)", "1-1E", "FA"), r"FA \(3\) schema version '1-1E'"),
    ],
)
def test_a_form_without_its_xsd_is_named_not_checked_against_another(code: schemas.FormCode, message: str) -> None:
    # Was: a bare KeyError('FA (4)') from the schema cache, and a FormCode naming another version
    # of a known form validated against the one XSD kept for its system code.
    with pytest.raises(ValueError, match=message) as refused:
        validate_invoice(sample_invoice(), code)
    assert not isinstance(refused.value, InvoiceSchemaError)  # not the invoice's fault
    assert "validate=False" in str(refused.value)
    with pytest.raises(ValueError, match="no XSD for the form"):
        schemas.schema_errors("FA (4)", etree.fromstring(sample_invoice()))
    validate_invoice(sample_invoice(), schemas.FormCode("FA (3)", "1-0E", "FA"))  # FORMS["FA(3)"] itself


# --- XML 1.0 only --------------------------------------------------------------------------------


@pytest.mark.parametrize("declaration", [b'<?xml version="1.1" encoding="UTF-8"?>', b"<?xml version = '1.1'?>"])
def test_an_xml_1_1_invoice_is_refused(declaration: bytes) -> None:
    # "poprawny dokument XML, zgodny z regułami XML 1.0" (faktury/weryfikacja-faktury.md): XML 1.1
    # passed the local check (its own character rules differ: &#x1; is allowed there).
    xml = sample_invoice().replace(b'<?xml version="1.0" encoding="UTF-8"?>', declaration, 1)
    assert xml.startswith(declaration)
    for check in (schemas.check_encoding, validate_invoice):
        with pytest.raises(InvoiceSchemaError, match=r"XML version 1\.1") as refused:
            check(xml)
        assert refused.value.rule == "prolog"
    assert check_file("FA (3)", xml).rejection  # the emulator refuses it too (430)
    validate_invoice(sample_invoice().split(b"?>", 1)[1].lstrip())  # no declaration: XML 1.0


# --- compiling a form's XSD needs no resolver (one only makes its checks faster) -------------------


@pytest.mark.parametrize("code", ["FA (3)", "FA (2)", "FA_RR (1)"])
def test_a_forms_xsd_compiles_with_libxml2s_own_document_loader(code: str) -> None:
    # lxml sets libxml2's document loader (one for the process) to the parser's resolvers for each
    # parse or compile and puts the previous one back after it: another thread's parse ending while
    # a schema compiled left the compile with libxml2's own loader, the crd.gov.pl URL of the base
    # types named nothing (no network), and XMLSchema() failed ("TDataCzas ... does not resolve":
    # seen for a copy compiled on one thread while another parsed). A parser without resolvers
    # compiles through libxml2's own loader, as that compile did.
    data = schemas._data_dir()
    main = data / schemas.FORM_SCHEMAS[code]
    as_published = etree.parse(str(main), etree.XMLParser(no_network=True, resolve_entities=False))
    with pytest.raises(etree.XMLSchemaParseError, match="does not resolve"):
        etree.XMLSchema(as_published)
    document = schemas._schema_document(main, data / "fa3" / "bazowe")
    locations = [ref.get("schemaLocation") or "" for ref in document.iter(f"{{{schemas.XSD}}}import")]
    assert locations and all("://" not in location and (main.parent / location).is_file() for location in locations)
    # The same document on a parser without resolvers (the one that reorders enumerations is lost
    # with the loader): it compiles all the same, and judges the same.
    bare = etree.fromstring(
        etree.tostring(document), etree.XMLParser(no_network=True, resolve_entities=False), base_url=str(main)
    )
    for compiled in (etree.XMLSchema(document), etree.XMLSchema(bare)):
        assert compiled.validate(etree.fromstring(sample_invoice())) == (code == "FA (3)")


@pytest.mark.parametrize("code", ["FA (3)", "FA (2)", "FA_RR (1)", "PEF (3)"])
def test_a_forms_xsd_compiles_from_a_relative_directory(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found in review: the base types' imports were first pointed at file: URIs, which a relative
    # path cannot make (ValueError for form_schema(directory=Path("xsd"))). They are relative to the
    # form's own XSD now, as PEF's imports are, so any folder that holds the files compiles.
    (tmp_path / "xsd").symlink_to(schemas._data_dir(), target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    schema = schemas.form_schema(code, Path("xsd"))
    assert schema.validate(etree.fromstring(sample_invoice())) == (code == "FA (3)")


# --- compiled copies lent to threads -------------------------------------------------------------


def test_a_thread_past_the_copies_made_waits_for_one_and_a_failed_compile_hands_its_turn_on() -> None:
    # SchemaCopies compiles at most `most` copies; a thread past them waits for one to come back,
    # and when a compile fails the turn passes to a waiting thread (else it would wait forever).
    release, results = threading.Event(), []
    attempts = iter(["fails", "compiles"])

    def compile_schema() -> etree.XMLSchema:
        release.wait(timeout=30)
        if next(attempts) == "fails":
            raise OSError("schema not found")
        return schemas.form_schema()

    copies = SchemaCopies(compile_schema, most=1)

    def take() -> None:
        try:
            results.append(copies.take())
        except OSError as error:
            results.append(error)

    first = threading.Thread(target=take, daemon=True)
    first.start()
    second = threading.Thread(target=take, daemon=True)
    second.start()
    for _ in range(10_000_000):  # until the second waits (the first holds the one turn)
        if copies._waiting:
            break
    assert copies._waiting == 1
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert isinstance(results[0], OSError) and isinstance(results[1], etree.XMLSchema)
    copies.give(results[1])
    assert copies.take() is results[1]  # given back, lent again: no third compile


# --- enumerations: PL and PLN listed first in the compiled schemas -------------------------------


def _enumeration(path: Path, type_name: str) -> list[str]:
    document = etree.parse(str(path))
    found = document.find(f"{{{schemas.XSD}}}simpleType[@name='{type_name}']")
    assert found is not None, type_name
    return [value.get("value") or "" for value in found.iter(f"{{{schemas.XSD}}}enumeration")]


def test_every_country_and_currency_code_is_taken_and_no_other_with_the_usual_ones_listed_first() -> None:
    # An enumeration is a set (XML Schema Part 2, 4.3.5); the compiled copies list PL and PLN
    # first (libxml2 compares in list order). Every value of the Ministry's lists still passes,
    # and only those: the lists are read from the XSDs as published.
    fa3 = schemas._data_dir() / "fa3"
    countries = _enumeration(fa3 / "bazowe" / "KodyKrajow_v10-0E.xsd", "TKodKraju")
    currencies = _enumeration(fa3 / "schemat_FA(3)_v1-0E.xsd", "TKodWaluty")
    assert countries.index("PL") > 100 and currencies.index("PLN") > 100  # the order this is about
    xml = sample_invoice()
    for country in countries:
        validate_invoice(xml.replace(b"<KodKraju>PL</KodKraju>", f"<KodKraju>{country}</KodKraju>".encode()))
    for currency in currencies:
        validate_invoice(xml.replace(b"<KodWaluty>PLN</KodWaluty>", f"<KodWaluty>{currency}</KodWaluty>".encode()))
    for wrong in (b"<KodKraju>pl</KodKraju>", b"<KodKraju>XX</KodKraju>", b"<KodKraju>PLN</KodKraju>"):
        with pytest.raises(InvoiceSchemaError, match="KodKraju"):
            validate_invoice(xml.replace(b"<KodKraju>PL</KodKraju>", wrong, 1))
    for wrong in (b"<KodWaluty>PL</KodWaluty>", b"<KodWaluty>pln</KodWaluty>", b"<KodWaluty>XXY</KodWaluty>"):
        with pytest.raises(InvoiceSchemaError, match="KodWaluty"):
            validate_invoice(xml.replace(b"<KodWaluty>PLN</KodWaluty>", wrong, 1))


def test_the_base_types_are_served_reordered_and_nothing_else_is_touched(tmp_path: Path) -> None:
    bazowe = schemas._data_dir() / "fa3" / "bazowe"
    resolver = schemas._UsualValuesFirst(bazowe)
    served: list[bytes] = []
    resolver.resolve_string = lambda text, context, base_url: served.append(text) or "served"  # type: ignore[method-assign]
    assert resolver.resolve(str(bazowe / "KodyKrajow_v10-0E.xsd"), None, None) == "served"
    reordered = etree.fromstring(served[0])
    values = [value.get("value") for value in reordered.iter(f"{{{schemas.XSD}}}enumeration")]
    assert values[0] == "PL"
    assert sorted(values) == sorted(_enumeration(bazowe / "KodyKrajow_v10-0E.xsd", "TKodKraju"))  # no value lost
    outside = tmp_path / "KodyKrajow_v10-0E.xsd"
    outside.write_bytes((bazowe / "KodyKrajow_v10-0E.xsd").read_bytes())
    for url in (str(outside), "http://crd.gov.pl/x.xsd", str(bazowe / "missing.xsd"), None):
        assert resolver.resolve(url, None, None) is None  # libxml2 loads it as it is
    assert len(served) == 1


def test_warming_up_leaves_the_first_check_nothing_to_compile() -> None:
    # Found in review: the emulator's worker warm-up (prepare) compiled form_schema(), which the
    # checks never use (they validate with copies of their own), so each worker's first invoice
    # paid a compile and a read of the form's date elements.
    code = "FA (2)"
    schemas._copies.cache_clear()
    schemas._date_elements.cache_clear()
    prepare(code)
    copies = schemas._copies(code)
    made, dates = copies._left_to_make, schemas._date_elements.cache_info()
    assert len(copies._free) == 1 and dates.currsize == 1
    check_file(code, sample_invoice())
    assert copies._left_to_make == made  # the warmed copy was taken: none compiled for the check
    assert schemas._date_elements.cache_info().misses == dates.misses


# --- an invoice of another form says which form it is -----------------------------------------------


def _fa2_namespace(xml: bytes) -> bytes:
    """``xml`` (an FA(3) invoice) with its root in FA(2)'s namespace, as an FA(2) file has it."""
    return xml.replace(schemas.FA3_NAMESPACE.encode(), schemas.FORM_NAMESPACES["FA (2)"].encode())


def test_each_forms_namespace_is_its_xsds_target_namespace() -> None:
    assert set(schemas.FORM_NAMESPACES) == set(schemas.FORM_SCHEMAS)
    for code, namespace in schemas.FORM_NAMESPACES.items():
        xsd = etree.parse(str(schemas._data_dir() / schemas.FORM_SCHEMAS[code])).getroot()
        assert xsd.get("targetNamespace") == namespace, code


def test_an_invoice_of_another_form_is_named_with_the_way_to_send_it() -> None:
    # Was libxml2's "Element '{http://crd.gov.pl/wzor/2023/06/29/12648/}Faktura': No matching global
    # declaration available for the validation root.", which names neither form.
    with pytest.raises(InvoiceSchemaError) as refused:
        validate_invoice(_fa2_namespace(sample_invoice()), "FA(3)")
    assert refused.value.rule == "schema"
    assert str(refused.value) == (
        "the document's form is FA (2) (its root element Faktura is in FA (2)'s namespace "
        "http://crd.gov.pl/wzor/2023/06/29/12648/), not FA (3), the form it is checked against (the session's): "
        'send it as FA(2): form="FA(2)" in Python (online_session, send_batch), --form "FA(2)" with ksef send'
    )
    with pytest.raises(InvoiceSchemaError, match=r"form is FA \(3\) .*, not FA \(2\).*form=\"FA\(3\)\""):
        validate_invoice(sample_invoice(), "FA(2)")


@pytest.mark.parametrize(
    ("root", "where"),
    [(b'<Faktura xmlns="urn:example:invoice"/>', "the namespace urn:example:invoice"), (b"<Faktura/>", "no namespace")],
)
def test_an_unknown_namespace_names_the_one_expected(root: bytes, where: str) -> None:
    with pytest.raises(InvoiceSchemaError) as refused:
        validate_invoice(root, "FA(3)")
    assert str(refused.value).startswith(
        f"the root element Faktura is in {where}, not in FA (3)'s namespace {schemas.FA3_NAMESPACE}: no FA (3) invoice"
    )


def test_an_invoice_in_the_forms_namespace_keeps_the_xsds_errors() -> None:
    with pytest.raises(InvoiceSchemaError, match="P_2") as refused:
        validate_invoice(sample_invoice().replace(b"<P_2>", b"<P_2X>").replace(b"</P_2>", b"</P_2X>"))
    assert "namespace" not in str(refused.value)


def _listed_forms(request_schema: str) -> set[str]:
    """The system codes of the "Obsługiwane schematy" table in the shipped spec's ``formCode`` of
    ``request_schema`` (rows ``| [FA (2)](...) | 1-0E | FA |``)."""
    text = pinned_schemas()[request_schema]["properties"]["formCode"]["description"]
    return set(re.findall(r"^\| \[([^\]]+)\]", text, re.MULTILINE))


def test_the_batch_forms_are_the_ones_the_spec_lists_for_batch_sessions() -> None:
    assert set(schemas.BATCH_FORMS) == _listed_forms("OpenBatchSessionRequest") == {"FA (2)", "FA (3)", "FA_RR (1)"}
    online = _listed_forms("OpenOnlineSessionRequest")
    assert online == {code.system_code for code in schemas.FORMS.values()}
    assert online - set(schemas.BATCH_FORMS) == {"PEF (3)", "PEF_KOR (3)"}


@pytest.mark.parametrize("form", ["FA(3)", "FA (2)", "FA_RR(1)", schemas.FormCode("FA (3)", "1-1E", "FA")])
def test_a_batch_form_is_one_of_the_specs_batch_forms(form: str | schemas.FormCode) -> None:
    assert schemas.batch_form(form) == schemas.form_code(form)


def test_a_pef_form_is_no_batch_form_and_the_error_says_where_to_send_it() -> None:
    with pytest.raises(ValueError) as refused:
        schemas.batch_form("PEF_KOR(3)")
    assert str(refused.value) == (
        "form: PEF_KOR (3) cannot be sent in a batch session: KSeF's batch sessions take FA (3), FA (2), FA_RR (1) "
        "only and refuse others with 21405; PEF invoices go through an online session "
        '(online_session(form="PEF_KOR(3)") in Python, ksef send without --batch)'
    )
    with pytest.raises(ValueError, match="is not one of"):
        schemas.batch_form("PEF(4)")


_ATTACHMENT = (
    b"<Zalacznik><BlokDanych><MetaDane><ZKlucz>umowa</ZKlucz><ZWartosc>1/2026</ZWartosc></MetaDane>"
    b"</BlokDanych></Zalacznik></Faktura>"
)


def _padded(xml: bytes, size: int) -> bytes:
    """``xml`` grown to ``size`` bytes by a comment before its end (comments are allowed)."""
    filler = size - len(xml) - len(b"<!---->")
    return xml.replace(b"</Faktura>", b"<!--" + b"x" * filler + b"--></Faktura>")


@pytest.mark.parametrize("attached", [False, True], ids=["without", "with"])
@pytest.mark.parametrize(
    "size", [1_000_000, 1_000_001, 3_000_000, 3_000_001], ids=["1-MB", "past-1-MB", "3-MB", "past-3-MB"]
)
def test_an_invoice_is_held_to_1_mb_and_with_attachments_to_3_mb(size: int, attached: bool) -> None:
    # faktury/weryfikacja-faktury.md: 1 MB, 3 MB with attachments (MB = 10^6 B). The bytes are
    # searched for an attachment only past the smaller limit, where that decides the limit.
    xml = sample_invoice()
    xml = _padded(xml.replace(b"</Faktura>", _ATTACHMENT) if attached else xml, size)
    assert len(xml) == size
    if size <= (3_000_000 if attached else 1_000_000):
        validate_invoice(xml)
        return
    with pytest.raises(InvoiceSchemaError) as refused:
        validate_invoice(xml)
    assert refused.value.rule == "size"
    assert f"the invoice has {size} bytes" in str(refused.value)
