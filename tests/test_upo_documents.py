"""The documents of a UPO: the lazy sequence, the bulk reading against the one-at-a-time one, and
the UPO schema compiled once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from ksef_client import SessionUpo
from ksef_client import upo as upo_module
from ksef_client._xml import _processing_instruction_after_start, parse_for_reading
from ksef_client.errors import UPOValidationError
from ksef_client.mock.upo import PageInfo, UpoDocument, UpoHeader, build_upo
from ksef_client.upo import (
    _DOKUMENT,
    UpoDocuments,
    _Columns,
    _columns,
    _document,
    _upo_schema,
    parse_upo,
    safe_parse,
    validate_upo,
)
from ksef_client.upo import UpoDocument as ParsedDocument

NIP = "5265877635"
HEADER = UpoHeader("20261120-SB-0000000000-0000000000-00", "Nip", NIP, "h" * 43 + "=", "FA (3)")
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True)


def _document_of(index: int, number: str | None = None) -> UpoDocument:
    return UpoDocument(
        NIP,
        f"{NIP}-20261120-{index:012X}-00",
        number or f"FV/{index}",
        "2026-11-20",
        "2026-11-20T10:00:00.123+00:00",
        f"2026-11-20T10:00:{index % 60:02d}.456+01:00",
        "q" * 43 + "=",
        "Online",
    )


def _upo(documents: list[UpoDocument], page: PageInfo | None = None) -> bytes:
    return build_upo(HEADER, documents, page or PageInfo(1, 1, 1, len(documents), len(documents)), signed=False)


def _one_at_a_time(xml: bytes) -> tuple[ParsedDocument, ...]:
    """What the slow path reads: each ``Dokument`` on its own (``_document``)."""
    return tuple(_document(element) for element in safe_parse(xml).findall(_DOKUMENT))


def _read_in_bulk(xml: bytes) -> bool:
    return _columns(safe_parse(xml)) is not None


# The lazy sequence behaves like the tuple it replaced.


def test_the_documents_behave_like_a_tuple() -> None:
    documents = parse_upo(_upo([_document_of(i) for i in range(5)])).documents
    as_tuple = tuple(documents)
    assert isinstance(documents, UpoDocuments)
    assert len(documents) == 5 and len(as_tuple) == 5
    assert documents[0].invoice_number == "FV/0" and documents[-1].invoice_number == "FV/4"
    assert documents[-1] == as_tuple[4] and documents[1] == as_tuple[1]
    assert documents[0].issue_date == dt.date(2026, 11, 20)
    assert documents[0].numbered_at == dt.datetime(2026, 11, 20, 10, 0, 0, 456000, dt.timezone(dt.timedelta(hours=1)))
    with pytest.raises(IndexError):
        documents[5]
    with pytest.raises(IndexError):
        documents[-6]
    assert list(documents) == list(as_tuple) and list(reversed(documents)) == list(reversed(as_tuple))
    assert documents == as_tuple and as_tuple == documents and documents == list(as_tuple)
    assert documents != as_tuple[:4] and documents != () and documents != "FV/0" and documents != tuple("abcde")
    assert documents[1] in documents and documents.index(documents[3]) == 3 and documents.count(documents[2]) == 1


@pytest.mark.parametrize("cut", [slice(1, 3), slice(None, None, -1), slice(-2, None), slice(0, 5, 2), slice(4, 1)])
def test_slices_are_views_equal_to_the_tuple_slices(cut: slice) -> None:
    documents = parse_upo(_upo([_document_of(i) for i in range(5)])).documents
    part = documents[cut]
    assert isinstance(part, UpoDocuments)
    assert part == tuple(documents)[cut] and list(part) == list(tuple(documents)[cut])


def test_equal_documents_hash_alike_and_the_upo_stays_hashable() -> None:
    xml = _upo([_document_of(i) for i in range(3)])
    first, second = parse_upo(xml), parse_upo(xml)
    assert first.documents == second.documents and first.documents is not second.documents
    assert hash(first.documents) == hash(second.documents) == hash(tuple(first.documents))
    assert hash(first) == hash(second) and first == second
    assert parse_upo(_upo([_document_of(i) for i in range(4)])).documents != first.documents


def test_the_documents_cannot_be_changed() -> None:
    documents = parse_upo(_upo([_document_of(0)])).documents
    with pytest.raises(TypeError):
        documents[0] = documents[0]  # type: ignore[index]
    with pytest.raises(AttributeError):
        documents.extra = 1  # type: ignore[attr-defined]


def test_the_repr_is_short() -> None:
    documents = parse_upo(_upo([_document_of(i) for i in range(200)])).documents
    assert repr(documents) == "UpoDocuments(<200 documents>)"


def test_a_document_is_found_by_its_ksef_number() -> None:
    documents = parse_upo(_upo([_document_of(i) for i in range(5)])).documents
    assert documents.by_ksef_number(documents[3].ksef_number) == documents[3]
    assert documents.by_ksef_number("nope") is None
    assert documents[2:].by_ksef_number(documents[1].ksef_number) is None


def test_documents_built_from_objects_equal_the_parsed_ones() -> None:
    documents = parse_upo(_upo([_document_of(i) for i in range(3)])).documents
    assert UpoDocuments(list(documents)) == documents and UpoDocuments() == ()
    assert UpoDocuments.concatenate([]) == () and UpoDocuments.concatenate([documents, documents]) == 2 * tuple(
        documents
    )
    # The columns are UpoDocument's fields, in its order (a document is built from them by position).
    assert _Columns._fields == tuple(field.name for field in dataclasses.fields(ParsedDocument))


def test_a_session_upo_joins_its_pages_without_building_documents() -> None:
    pages = (
        parse_upo(_upo([_document_of(i) for i in range(3)], PageInfo(1, 2, 1, 3, 5))),
        parse_upo(_upo([_document_of(i) for i in range(3, 5)], PageInfo(2, 2, 4, 5, 5))),
    )
    session = SessionUpo(pages)
    documents = session.documents
    assert isinstance(documents, UpoDocuments) and documents is session.documents
    assert documents == tuple(pages[0].documents) + tuple(pages[1].documents)
    assert [d.invoice_number for d in documents] == [f"FV/{i}" for i in range(5)]
    assert documents.by_ksef_number(pages[1].documents[1].ksef_number) == pages[1].documents[1]
    assert SessionUpo(pages[:1]).documents == pages[0].documents


# The bulk reading gives what one document at a time gives, or leaves the UPO to it.

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(" \t\n&<>]]>"), max_size=12)
_OFFSETS = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=2)), None])


@st.composite
def _documents(draw: st.DrawFn) -> list[UpoDocument]:
    count = draw(st.integers(0, 6))
    moments = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=_OFFSETS)
    padded = st.sampled_from(["", "", " ", "\n\t"])  # whitespace around a date goes one at a time
    return [
        UpoDocument(
            draw(_TEXT),
            draw(_TEXT),
            draw(_TEXT),
            draw(st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1))).isoformat(),
            draw(padded) + draw(moments).isoformat() + draw(padded),
            draw(moments).isoformat(),
            draw(_TEXT),
            draw(_TEXT),
        )
        for _ in range(count)
    ]


@PROPERTY
@given(_documents())
def test_bulk_and_one_at_a_time_read_the_same_documents(documents: list[UpoDocument]) -> None:
    xml = _upo(documents)
    parsed = parse_upo(xml).documents
    assert parsed == _one_at_a_time(xml)
    assert [d.invoice_number for d in parsed] == [d.invoice_number.strip() for d in documents]
    # Empty values (no text node) go one at a time; the rest in bulk, whitespace around a date too.
    assert _read_in_bulk(xml) == all(all(vars(d).values()) for d in documents)


@st.composite
def _laid_out(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A UPO as the emulator writes it, and the same UPO laid out with other whitespace between its
    elements (KSeF indents with tabs; any run of blanks is allowed)."""
    xml = _upo(draw(_documents()))
    root = safe_parse(xml)
    blanks = st.text(st.sampled_from(" \t\r\n"), min_size=1, max_size=4)
    for element in root.iter():
        if len(element):  # between elements only: a value's own text is left as it is
            element.text = draw(blanks)
            for child in element:
                child.tail = draw(blanks)
    return xml, b'<?xml version="1.0" encoding="utf-8"?>\n' + etree.tostring(root)


@PROPERTY
@given(_laid_out())
def test_whitespace_between_elements_changes_nothing_read(pair: tuple[bytes, bytes]) -> None:
    written, laid_out = pair
    assert parse_upo(laid_out).documents == _one_at_a_time(laid_out) == parse_upo(written).documents
    assert dataclasses.replace(parse_upo(laid_out), xml=written) == parse_upo(written)


def test_a_laid_out_upo_is_read_from_a_tree_without_the_whitespace_between_elements() -> None:
    xml = _upo([_document_of(0)])  # laid out with tabs, as KSeF's
    tree = parse_for_reading(xml)
    assert tree.xpath("//text()[normalize-space() = '']") == []
    assert tree.xpath("//text()") == safe_parse(xml).xpath("//text()[normalize-space()]")  # the values only


@pytest.mark.parametrize(
    "xml",
    [
        b"<a>\n <b>x</b> <!--c--> <b>y</b>\n</a>",
        b"<a>\n <b>x</b> <?c?> <b>y</b>\n</a>",
        b"<a>\n <b><![CDATA[x]]></b>\n</a>",
        b'<?xml version="1.0"?>\n<?c?><a>\n <b>x</b>\n</a>',
        "<a>\n <b>x</b>\n</a>".encode("utf-16"),
        b"\xef\xbb\xbf<a>\n <b>x</b>\n</a>",
        b"<a>\n <b>" + b"?" * 50 + b"</b> <?c?> <b>y</b>\n</a>",
    ],
    ids=[
        "comment",
        "processing-instruction",
        "cdata",
        "processing-instruction-first",
        "utf-16",
        "byte-order-mark",
        "processing-instruction-after-many-question-marks",
    ],
)
def test_a_document_with_other_nodes_or_another_encoding_is_read_from_the_whole_tree(xml: bytes) -> None:
    # Told from bytes, the whitespace is left out only when nothing but elements and text can be there.
    assert parse_for_reading(xml).xpath("//node()") != [] and [
        str(node) if isinstance(node, str) else node.tag for node in parse_for_reading(xml).xpath("//node()")
    ] == [str(node) if isinstance(node, str) else node.tag for node in safe_parse(xml).xpath("//node()")]


@PROPERTY
@given(st.binary(max_size=40) | st.lists(st.sampled_from([b"<", b"?", b"a", b">", b"<?"]), max_size=40).map(b"".join))
def test_a_processing_instruction_is_found_wherever_the_question_marks_stand(xml: bytes) -> None:
    # The search steps over "?" one by one, then hands the rest to bytes.find: whatever stands
    # where, it finds what searching for "<?" after the first byte finds.
    assert _processing_instruction_after_start(xml) == (xml.find(b"<?", 1) >= 0)


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (b"<!--a-->FV<!--b-->  <!--c-->/1", "FV  /1"),  # blanks between comments are part of the value
        (b"<?a?>FV<?b?> \t <?c?>/1", "FV \t /1"),
        (b"FV<!--b--> <![CDATA[/1]]>", "FV /1"),
    ],
    ids=["comments", "processing-instructions", "cdata"],
)
def test_blanks_beside_other_nodes_in_a_value_are_kept(value: bytes, read: str) -> None:
    xml = _in_second(_session(), b"<NumerFaktury>FV/1<", b"<NumerFaktury>" + value + b"<")
    assert parse_upo(xml).documents[1].invoice_number == read == _one_at_a_time(xml)[1].invoice_number


def _session(count: int = 3) -> bytes:
    return _upo([_document_of(i) for i in range(count)])


def _in_second(xml: bytes, old: bytes, new: bytes) -> bytes:
    """``old`` replaced by ``new`` in the second document only."""
    start = xml.index(b"<Dokument>", xml.index(b"<Dokument>") + 1)
    end = xml.index(b"</Dokument>", start)
    return xml[:start] + xml[start:end].replace(old, new, 1) + xml[end:]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<NumerFaktury>FV/1<", b"<NumerFaktury>FV<!-- c -->/1<"),  # a comment inside a value
        (b"<NumerFaktury>FV/1<", b"<NumerFaktury>FV<?pi x?>/1<"),  # a processing instruction
        (b"<NumerFaktury>FV/1<", b"<NumerFaktury>FV<![CDATA[/1]]><"),  # CDATA joins the text
        (b"<NumerFaktury>FV/1<", b"<NumerFaktury> FV/1 <"),  # whitespace around a value
        (b"<TrybWysylki>Online</TrybWysylki>", b"<TrybWysylki>Online</TrybWysylki><Extra/>"),  # after the 8
        (b"<TrybWysylki>Online</TrybWysylki>", b"<TrybWysylki>Online</TrybWysylki><NipSprzedawcy>1</NipSprzedawcy>"),
        (b"<NipSprzedawcy>", b"<!-- between --><NipSprzedawcy>"),  # a comment between fields
        (
            b"<NumerFaktury>FV/1</NumerFaktury>",
            b"<x:NumerFaktury xmlns:x='urn:other'>X</x:NumerFaktury><NumerFaktury>FV/1</NumerFaktury>",
        ),  # a field of another namespace in its place: skipped one at a time
    ],
    ids=["comment", "pi", "cdata", "whitespace", "extra-element", "repeated-field", "comment-between", "foreign"],
)
def test_unusual_documents_read_as_one_at_a_time(old: bytes, new: bytes) -> None:
    xml = _in_second(_session(), old, new)
    assert xml != _session()
    assert parse_upo(xml).documents == _one_at_a_time(xml) == parse_upo(_session()).documents


def _moved_to_the_end(xml: bytes, field: bytes, replacement: bytes = b"") -> bytes:
    """The second document's ``field`` moved after its last field, ``replacement`` in its place."""
    start = xml.index(b"<" + field + b">", xml.index(b"<Dokument>", xml.index(b"<Dokument>") + 1))
    end = xml.index(b"</" + field + b">", start) + len(field) + 3
    close = xml.index(b"</Dokument>", end)
    return xml[:start] + replacement + xml[end:close] + xml[start:end] + xml[close:]


@pytest.mark.parametrize(
    ("field", "replacement"),
    [
        (b"NipSprzedawcy", b""),  # the KSeF number then stands first: a string where a string belongs
        (b"SkrotDokumentu", b""),
        (b"NumerFaktury", b"<x:NumerFaktury xmlns:x='urn:other'>X</x:NumerFaktury>"),  # another namespace
        (b"NumerFaktury", b"<NumerFakturyX>X</NumerFakturyX>"),  # another name
    ],
    ids=["first-moved", "hash-moved", "foreign-in-place", "stranger-in-place"],
)
def test_fields_out_of_place_are_read_by_name(field: bytes, replacement: bytes) -> None:
    xml = _moved_to_the_end(_session(), field, replacement)
    assert not _read_in_bulk(xml)
    assert parse_upo(xml).documents == _one_at_a_time(xml) == parse_upo(_session()).documents


@pytest.mark.parametrize("split", [b"<![CDATA[/0]]>", b"<!-- c -->/0", b"<?pi x?>/0"], ids=["cdata", "comment", "pi"])
def test_an_empty_field_does_not_borrow_its_neighbours_value(split: bytes) -> None:
    # The first document's number is split in two (text nodes on either side of a comment), the
    # second's is empty: the counts alone would match, one document giving two nodes, one none.
    xml = _in_second(_session(2), b"<NumerFaktury>FV/1</NumerFaktury>", b"<NumerFaktury/>")
    xml = xml.replace(b"<NumerFaktury>FV/0<", b"<NumerFaktury>FV" + split + b"<", 1)
    documents = parse_upo(xml).documents
    assert [d.invoice_number for d in documents] == ["FV/0", ""]
    assert documents == _one_at_a_time(xml)


def test_the_parser_joins_the_text_of_an_element_into_one_node() -> None:
    # What the bulk reading's proof rests on: no two text nodes side by side in a parsed element.
    root = safe_parse(b"<a><b>x<![CDATA[y]]>&amp;&#65;<![CDATA[]]>z</b></a>")
    assert root[0].xpath("node()", smart_strings=False) == ["xy&Az"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"<NumerFaktury>FV/1<", b"<NumerFaktury>FV<x>/1</x><", "holds elements where a value belongs"),
        (b"<TrybWysylki>Online</TrybWysylki>", b"", "lacks TrybWysylki"),
        (b"<NipSprzedawcy>5265877635</NipSprzedawcy>", b"<NipSprzedawcy/>", None),  # empty: read as ""
        (b">2026-11-20<", b">2026-02-30<", "DataWystawieniaFaktury is not a date"),
        (b">2026-11-20T10:00:01.456+01:00<", b">yesterday<", "DataNadaniaNumeruKSeF is not a date-time"),
        (b">2026-11-20T10:00:00.123+00:00<", b"><!-- c --><", "DataPrzeslaniaDokumentu is not a date-time"),
    ],
    ids=["element-inside", "missing", "empty", "bad-date", "bad-date-time", "comment-for-a-date"],
)
def test_hostile_documents_are_refused_or_read_whole(old: bytes, new: bytes, message: str | None) -> None:
    xml = _in_second(_session(), old, new)
    assert xml != _session()
    if message is None:
        assert parse_upo(xml).documents[1].seller_nip == ""
        return
    with pytest.raises(UPOValidationError, match=message):
        parse_upo(xml)


# The bulk reading's proof, held to the one-at-a-time reading on documents whose fields are
# reordered, repeated, left out or joined by strangers.

_FIELD_ELEMENTS = ["NipSprzedawcy", "NumerKSeFDokumentu", "NumerFaktury", "DataWystawieniaFaktury",
                   "DataPrzeslaniaDokumentu", "DataNadaniaNumeruKSeF", "SkrotDokumentu", "TrybWysylki"]  # fmt: skip
_STRANGERS = [
    "<Extra>1</Extra>",
    "<Extra/>",
    "<NipSprzedawcy/>",  # an empty field: no value of its own to give
    "<TrybWysylki/>",
    "<!-- c -->",
    "<?pi x?>",
    "<x:NipSprzedawcy xmlns:x='urn:other'>1</x:NipSprzedawcy>",
]


@st.composite
def _rearranged(draw: st.DrawFn) -> list[list[str]]:
    """For each of 3 documents, its children as XML: the 8 fields (each with its own value) in an
    order drawn, some repeated, left out, emptied or replaced in place by a stranger holding the
    field's value, strangers among them; often left as KSeF writes it."""
    documents = []
    for index in range(3):
        fields = _as_written(index)
        if draw(st.booleans()):
            fields = draw(st.permutations(fields)) if draw(st.booleans()) else fields
            for place in draw(st.sets(st.integers(0, 7), max_size=2)):
                fields[place] = draw(st.sampled_from(_IN_PLACE))(fields[place])
            repeated = draw(st.lists(st.sampled_from(fields), max_size=2))
            left_out = draw(st.sets(st.integers(0, 7), max_size=2))
            fields = [field for place, field in enumerate(fields) if place not in left_out] + repeated
            for stranger in draw(st.lists(st.sampled_from(_STRANGERS), max_size=2)):
                fields.insert(draw(st.integers(0, len(fields))), stranger)
        documents.append(fields)
    return documents


def _emptied(field: str) -> str:
    """``<Name>value</Name>`` as ``<Name/>``."""
    return field[: field.index(">")] + "/>"


def _foreign(field: str) -> str:
    """The same field, value and local name in another namespace."""
    name = field[1 : field.index(">")]
    return f"<x:{name} xmlns:x='urn:other'>{_value(field)}</x:{name}>"


def _renamed(field: str) -> str:
    """The field's value under another name."""
    return f"<Extra>{_value(field)}</Extra>"


def _value(field: str) -> str:
    return field[field.index(">") + 1 : field.rindex("<")]


_IN_PLACE = [_emptied, _foreign, _renamed]


def _values_of(index: int) -> list[str]:
    """The 8 values of the document at ``index``: each a date, which every field's type reads (a
    string, a date, a date-time), so that a value read from the wrong field converts all the same
    and only the comparison with the one-at-a-time reading tells."""
    return [f"20{10 + field}-{index + 1:02d}-{10 + field}" for field in range(len(_FIELD_ELEMENTS))]


def _with_children(documents: list[list[str]]) -> bytes:
    """A UPO of ``len(documents)`` documents, each with the children given."""
    xml = _session(len(documents))
    for index, children in reversed(list(enumerate(documents))):
        start = -1
        for _ in range(index + 1):
            start = xml.index(b"<Dokument>", start + 1)
        end = xml.index(b"</Dokument>", start)
        xml = xml[:start] + b"<Dokument>" + "".join(children).encode() + xml[end:]
    return xml


def _as_written(index: int) -> list[str]:
    return [f"<{name}>{value}</{name}>" for name, value in zip(_FIELD_ELEMENTS, _values_of(index), strict=True)]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_rearranged())
# Each of these leaves the 8 values in order and the fields in order among the document's
# elements; one more element, empty, names a field, whose first element the one-at-a-time reading
# reads: only the count of the documents' elements tells them from a document as written.
@example([["<NipSprzedawcy/>", *_as_written(0)], _as_written(1), _as_written(2)])
@example([_as_written(0), [*_as_written(1)[:5], "<SkrotDokumentu/>", *_as_written(1)[5:]], _as_written(2)])
# A field replaced in place by one of another namespace, or by an element of another name, whose
# value converts where the field's would (an independent review found proofs blind to these).
@example([_as_written(0), [*_as_written(1)[:2], _foreign(_as_written(1)[2]), *_as_written(1)[3:]], _as_written(2)])
@example([_as_written(0), [*_as_written(1)[:3], _renamed(_as_written(1)[3]), *_as_written(1)[4:]], _as_written(2)])
@example(
    [
        _as_written(0),
        [*_as_written(1)[:2], "<x:E xmlns:x='urn:other'>2012-02-12</x:E>", "<NumerFaktury/>", *_as_written(1)[3:]],
        _as_written(2),
    ]
)
def test_the_bulk_reading_reads_what_one_at_a_time_reads_however_the_fields_stand(
    documents: list[list[str]],
) -> None:
    xml = _with_children(documents)
    try:
        expected = _one_at_a_time(xml)
    except UPOValidationError as error:  # a field left out: both refuse it, naming the same field
        with pytest.raises(UPOValidationError, match=str(error)):
            parse_upo(xml)
        return
    assert parse_upo(xml).documents == expected
    # In bulk only when every document is its 8 fields in schema order, and nothing else among
    # them but comments and processing instructions.
    as_written = all(
        [child for child in children if not child.startswith(("<!--", "<?"))] == _as_written(index)
        for index, children in enumerate(documents)
    )
    assert _read_in_bulk(xml) == as_written


# A large UPO is read on two threads (the caller's takes the values, a helper proves the fields
# stand in order): the same documents.

_LARGE = 1200  # documents: past the size from which a helper thread evaluates the proof


def _in_document(xml: bytes, place: int, old: bytes, new: bytes) -> bytes:
    """``old`` replaced by ``new`` in the document at ``place`` only."""
    start = -1
    for _ in range(place + 1):
        start = xml.index(b"<Dokument>", start + 1)
    end = xml.index(b"</Dokument>", start)
    return xml[:start] + xml[start:end].replace(old, new, 1) + xml[end:]


@pytest.mark.parametrize(
    ("old", "new", "in_bulk"),
    [
        (b"", b"", True),
        (b"<NumerFaktury>FV/", b"<NumerFaktury><!-- c -->FV/", False),  # a comment: read one at a time
        (b"<NipSprzedawcy>", b"<Extra/><NipSprzedawcy>", False),  # a stranger among the fields
        (b">2026-11-20<", b"> 2026-11-20 <", True),  # whitespace around a date: stripped, as one at a time
        (b">2026-11-20<", b">20261120x\n<", False),  # Python 3.11 reads it stripped of nothing as a date
        (b"<TrybWysylki>Online</TrybWysylki>", b"", False),  # the last field missing: refused
    ],
    ids=["plain", "comment", "stranger", "padded-date", "basic-date-and-more", "missing"],
)
@pytest.mark.parametrize("cores", [1, 2])
def test_a_large_upo_reads_alike_on_one_thread_and_two(
    monkeypatch: pytest.MonkeyPatch, cores: int, old: bytes, new: bytes, in_bulk: bool
) -> None:
    monkeypatch.setattr(upo_module, "_CORES", cores)
    helpers = _helpers_started(monkeypatch)
    xml = _in_document(_upo([_document_of(i) for i in range(_LARGE)]), _LARGE - 7, old, new)
    if old == b"<TrybWysylki>Online</TrybWysylki>":
        with pytest.raises(UPOValidationError, match="lacks TrybWysylki"):
            parse_upo(xml)
        return
    if new == b">20261120x\n<":
        with pytest.raises(UPOValidationError, match="DataWystawieniaFaktury is not a date"):
            parse_upo(xml)
        return
    documents = parse_upo(xml).documents
    assert len(documents) == _LARGE and documents == _one_at_a_time(xml)
    assert _read_in_bulk(xml) == in_bulk
    assert helpers == (["ksef-upo-fields"] * 2 if cores == 2 else [])  # parse_upo's and _read_in_bulk's


def _helpers_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads started from now on (the test's own list)."""
    started: list[str] = []
    start = threading.Thread.start

    def recorded(self: threading.Thread) -> None:
        started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", recorded)
    return started


def test_a_large_upo_is_read_whole_when_the_helper_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    xml = _upo([_document_of(i) for i in range(_LARGE)])
    expected = parse_upo(xml).documents

    counting = upo_module._FIELDS_IN_ORDER
    counted_on: list[str] = []

    def broken_on_the_helper(root: object) -> object:
        counted_on.append(threading.current_thread().name)
        if threading.current_thread().name == "ksef-upo-fields":
            raise MemoryError
        return counting(root)

    monkeypatch.setattr(upo_module, "_CORES", 2)
    monkeypatch.setattr(upo_module, "_FIELDS_IN_ORDER", broken_on_the_helper)
    helpers = _helpers_started(monkeypatch)
    assert parse_upo(xml).documents == expected and helpers == ["ksef-upo-fields"]
    assert counted_on == ["ksef-upo-fields", threading.current_thread().name]  # counted again by the caller


def test_a_large_upo_is_read_on_the_callers_thread_when_no_thread_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    # At interpreter shutdown no thread can start: the fields are all read on the caller's thread.
    xml = _upo([_document_of(i) for i in range(_LARGE)])
    expected = parse_upo(xml).documents

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(upo_module, "_CORES", 2)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert parse_upo(xml).documents == expected


def test_upos_parse_alike_from_many_threads() -> None:
    # The compiled XPath expressions are shared module state; each thread parses with its own parser.
    upos = [_upo([_document_of(i, f"T{t}/{i}") for i in range(50)]) for t in range(8)]
    expected = [parse_upo(xml).documents for xml in upos]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(lambda xml: parse_upo(xml).documents, upos)) == expected


def test_large_upos_parse_alike_from_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every parse past the threshold starts a helper; the helpers share the one compiled proof, and
    # the UPO with a stranger near its end goes one at a time while the others are read in bulk.
    monkeypatch.setattr(upo_module, "_CORES", 2)
    plain = [_upo([_document_of(i, f"T{t}/{i}") for i in range(_LARGE)]) for t in range(3)]
    upos = [*plain, _in_document(plain[0], _LARGE - 3, b"<NipSprzedawcy>", b"<Extra/><NipSprzedawcy>")]
    expected = [_one_at_a_time(xml) for xml in upos]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(lambda xml: parse_upo(xml).documents, upos)) == expected
    assert [_read_in_bulk(xml) for xml in upos] == [True, True, True, False]


def test_validate_upo_compiles_the_schema_once_and_still_refuses_invalid_upos(ksef_data: Path) -> None:
    schema = ksef_data / "xsd" / "upo" / "upo-v4-3.xsd"
    good = next((ksef_data / "upo-examples").glob("*upo-sesja*.xml")).read_bytes()
    bad = good.replace(b"<TrybWysylki>Online", b"<TrybWysylki>Pigeon", 1)
    validate_upo(good, schema)
    compiled = _upo_schema.cache_info().misses
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda xml: _outcome(xml, schema), [good, bad] * 8))
    assert outcomes == ["valid", "invalid"] * 8
    assert _upo_schema.cache_info().misses == compiled


def _outcome(xml: bytes, schema: Path) -> str:
    try:
        validate_upo(xml, schema)
    except UPOValidationError as error:
        assert "Pigeon" in str(error)
        return "invalid"
    return "valid"
