"""``Invoice``: an FA(3) invoice as typed objects, read from and written to XML.

::

    invoice = Invoice.from_xml(xml_bytes)          # XSD-checked, then bound to the generated classes
    invoice.model.fa.p_2                           # "FV/1": every field of the schema, typed
    invoice.model.fa.fa_wiersz[0].p_11             # Decimal("100.00")
    session.send(invoice)                          # to_xml() is called for you

The classes under ``invoice.model`` are generated from the official XSD (``ksef_client._invoice_models.fa3``;
field names are the schema's in snake case: ``P_13_1`` -> ``p_13_1``, ``FaWiersz`` -> ``fa_wiersz``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import attrs

from ksef_client._invoice_models import fa3
from ksef_client.errors import InvoiceSchemaError
from ksef_client.invoice import _binding
from ksef_client.schemas import FA3_NAMESPACE, FormCode, form_code, validate_invoice

_TOTAL_FIELDS = tuple(f.name for f in attrs.fields(fa3.Faktura.Fa) if f.name.startswith(("p_13_", "p_14_")))


# Python's date and time types, and the xsdata type each field of the generated classes takes instead.
_XSDATA_TYPES = (
    (dt.datetime, "XmlDateTime", "XmlDateTime.from_datetime(value)"),
    (dt.date, "XmlDate", "XmlDate.from_date(value)"),
    (dt.time, "XmlTime", "XmlTime.from_time(value)"),
)


def _unwritable(model: object, error: Exception) -> list[str]:
    """Why ``model`` could not be written: the fields holding a Python date or time (xsdata's
    message names no field), else xsdata's own message."""
    found = list(_python_dates(model, ""))
    return found or [f"the model cannot be written as XML (a hand edit put a value of the wrong type?): {error}"]


def _python_dates(value: object, path: str) -> Iterator[str]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _python_dates(item, f"{path}[{index}]")
    elif attrs.has(cls := type(value)):  # narrows cls to an attrs class
        for attribute in attrs.fields(cls):
            yield from _python_dates(getattr(value, attribute.name), f"{path}.{attribute.name}".lstrip("."))
    else:
        for python_type, xsdata_type, conversion in _XSDATA_TYPES:
            if isinstance(value, python_type):
                name = f"{python_type.__module__}.{python_type.__qualname__}"
                yield f"{path}: a {name} ({value}); the model takes xsdata's {xsdata_type}: {conversion}"
                return


class Invoice:
    """An FA(3) invoice: the generated ``Faktura`` (``.model``) with XML in and out."""

    form: FormCode = form_code("FA(3)")

    def __init__(self, model: fa3.Faktura) -> None:
        if not isinstance(model, fa3.Faktura):
            raise TypeError(f"model: expected an FA(3) Faktura, got {type(model).__name__}")
        self.model = model

    @classmethod
    def from_xml(cls, xml: bytes, *, validate: bool = True) -> Invoice:
        """Read an FA(3) invoice; with ``validate`` (default) it must match the XSD
        (``ksef_client.schemas.InvoiceSchemaError`` otherwise, a ``ValueError``)."""
        if validate:
            validate_invoice(xml, "FA(3)")
        return cls(_binding.parse(xml, fa3.Faktura))

    def to_xml(self, *, validate: bool = True) -> bytes:
        """The invoice as KSeF takes it: UTF-8 without BOM, FA(3) namespace as the default one.

        With ``validate`` (default) the result is checked against the XSD and
        ``InvoiceSchemaError`` names what a hand edit of ``.model`` broke. A value the classes
        cannot write at all is an ``InvoiceSchemaError`` too, with or without ``validate``: a
        ``datetime.date`` put where the model takes xsdata's ``XmlDate`` (``fa.p_1 =
        XmlDate.from_date(day)``) is named with its field.
        """
        try:
            xml = _binding.serialize(self.model, FA3_NAMESPACE)
        except Exception as error:  # xsdata: ConverterError, TypeError... on a value it cannot write
            raise InvoiceSchemaError(_unwritable(self.model, error), "schema") from error
        if validate:
            validate_invoice(xml, "FA(3)")
        return xml

    # A few fields every caller looks at, read from the model.

    @property
    def number(self) -> str:
        """``P_2``: the seller's invoice number."""
        return self.model.fa.p_2

    @property
    def issue_date(self) -> dt.date:
        """``P_1``: the issue date."""
        return self.model.fa.p_1.to_date()

    @property
    def kind(self) -> str:
        """``RodzajFaktury``: VAT, KOR, ZAL, ROZ, UPR, KOR_ZAL or KOR_ROZ."""
        return self.model.fa.rodzaj_faktury.value

    @property
    def currency(self) -> str:
        """``KodWaluty``: ISO 4217 code."""
        return self.model.fa.kod_waluty.value

    @property
    def seller_nip(self) -> str:
        """``Podmiot1/DaneIdentyfikacyjne/NIP``."""
        return self.model.podmiot1.dane_identyfikacyjne.nip

    @property
    def gross(self) -> Decimal:
        """``P_15``: the amount due (for a correction, the change of it)."""
        return self.model.fa.p_15

    def totals(self) -> dict[str, Decimal]:
        """The ``P_13_x``/``P_14_x``/``P_14_xW`` fields present, by name (``p_13_1``...)."""
        values = {name: getattr(self.model.fa, name) for name in _TOTAL_FIELDS}
        return {name: value for name, value in values.items() if value is not None}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Invoice) and self.model == other.model

    __hash__ = None  # type: ignore[assignment]  # mutable, like the model

    def __repr__(self) -> str:
        return f"<Invoice FA(3) {self.kind} {self.number!r} {self.issue_date} {self.gross} {self.currency}>"
