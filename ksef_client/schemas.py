"""Invoice schemas: validate an invoice against its form's XSD, offline.

The FA(3) schema imports its base types from crd.gov.pl by URL; a resolver maps that URL to the
copies ``make spec`` puts in ``ksef_client/_data/fa3/bazowe`` so nothing is fetched. Parsing is
hardened (no DTD, no entities, no network).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lxml import etree

from ksef_client._xml import declares_entities, hardened_parser, parse

FA3_NAMESPACE = "http://crd.gov.pl/wzor/2025/06/25/13775/"
BASE_TYPES_URL = "http://crd.gov.pl/xml/schematy/dziedzinowe/mf/2022/01/05/eD/DefinicjeTypy/"
MAX_INVOICE_BYTES = 1_000_000


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


def _data_dir() -> Path:
    return Path(str(resources.files("ksef_client"))) / "_data"


class _LocalCopies(etree.Resolver):
    """Serve crd.gov.pl base-type schemas from the local copies."""

    def __init__(self, base_dir: Path) -> None:
        super().__init__()
        self.base_dir = base_dir

    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]
        if system_url.startswith(BASE_TYPES_URL):
            local = self.base_dir / system_url.removeprefix(BASE_TYPES_URL)
            return self.resolve_filename(str(local), context)  # type: ignore[attr-defined]
        return None


@functools.cache
def fa3_schema(directory: Path | None = None) -> etree.XMLSchema:
    """The compiled FA(3) schema (from ``_data/fa3`` unless ``directory`` is given)."""
    base = directory or _data_dir() / "fa3"
    main = base / "schemat_FA(3)_v1-0E.xsd"
    if not main.is_file():
        raise FileNotFoundError(f"FA(3) schema not found at {main}: run 'make spec' (or pip install the wheel)")
    parser = hardened_parser()
    parser.resolvers.add(_LocalCopies(base / "bazowe"))
    return etree.XMLSchema(etree.parse(str(main), parser))


class InvoiceSchemaError(ValueError):
    """The invoice does not match its form's schema; ``errors`` lists each problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
        self.errors = errors


def validate_invoice(xml: bytes, form: str | FormCode = "FA(3)") -> None:
    """Raise ``InvoiceSchemaError`` unless ``xml`` is a well-formed, valid invoice of ``form``.

    FA(3) is checked against its XSD; other forms only for well-formedness (their schemas are not
    bundled). KSeF's own rules apply to all: UTF-8 without BOM, at most 1 MB.
    """
    code = form_code(form)
    if xml.startswith(b"\xef\xbb\xbf"):
        raise InvoiceSchemaError(["the file starts with a UTF-8 BOM, which KSeF rejects"])
    if len(xml) > MAX_INVOICE_BYTES:
        raise InvoiceSchemaError([f"the invoice has {len(xml)} bytes; KSeF accepts at most {MAX_INVOICE_BYTES}"])
    if declares_entities(xml):
        raise InvoiceSchemaError(["invoices with a DTD or entity declarations are refused"])
    try:
        document = parse(xml)
    except etree.XMLSyntaxError as error:
        raise InvoiceSchemaError([f"not well-formed XML: {error}"]) from error
    if code.system_code != "FA (3)":
        return
    schema = fa3_schema()
    if not schema.validate(document):
        raise InvoiceSchemaError([f"line {e.line}: {e.message}" for e in schema.error_log])  # type: ignore[attr-defined]
