"""The metadata filters' values, checked against the pinned spec before anything is sent.

KSeF ignores a property it does not know ("Usunięto `additionalProperties: false` [...] dopuszcza
możliwość pojawiania się dodatkowych właściwości w żądaniach", api-changelog 2.1.2): a misspelt key
inside ``amount`` or ``buyerIdentifier`` went out as it was, and the query answered with every
invoice (an export downloaded them all). Values the spec refuses (its enums, patterns, lengths,
types) cost a request (21405), or broke in the generated models as a bare ``KeyError`` or
``TypeError``; docs/errors-and-retries.md promises ``ValueError`` with nothing sent. ``Decimal``
amounts, the SDK's own money type, and the generated filter models were refused.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksef_client import KSeF
from ksef_client._generated.models import (
    AmountType,
    BuyerIdentifierType,
    CurrencyCode,
    InvoiceQueryAmount,
    InvoiceQueryBuyerIdentifier,
    InvoiceType,
)
from ksef_client.invoice_query import FILTER_NAMES, build_filters
from ksef_client.testing import sample_invoice
from tests.conftest import NIP

BUYER = "1111111111"


def sample(number: str, net: str, buyer: str = BUYER) -> bytes:
    """An invoice of ``net`` a line (gross: ``net`` plus 23% VAT) to ``buyer``."""
    return sample_invoice(number, buyer_nip=buyer, net=net)


def _start() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def _object_filters(pinned_spec: dict[str, Any]) -> dict[str, list[str]]:
    """Every object filter of InvoiceQueryFilters in the pinned spec, with its keys."""
    schemas = pinned_spec["components"]["schemas"]
    found = {}
    for name, prop in schemas["InvoiceQueryFilters"]["properties"].items():
        target = prop["allOf"][0]["$ref"].rsplit("/", 1)[1] if "allOf" in prop else None
        if target is not None and schemas[target].get("type") == "object" and name != "dateRange":
            found[name] = list(schemas[target]["properties"])
    return found


@pytest.fixture
def bodies(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The JSON of every metadata query and export the client sends (their ``filters``)."""
    seen: list[dict[str, Any]] = []
    send = httpx.Client.send

    def spy(self: httpx.Client, request: httpx.Request, **options: object) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(("/invoices/query/metadata", "/invoices/exports")):
            body = json.loads(request.content)
            seen.append(body.get("filters") or body)
        return send(self, request, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "send", spy)
    return seen


class TestUnknownKeysInsideObjectFilters:
    @pytest.mark.parametrize(
        ("name", "value", "key"),
        [
            ("amount", {"type": "Brutto", "min": 1000}, "'min'"),
            ("amount", {"type": "Brutto", "from_": 1000}, "'from_'"),  # the generated model's name
            ("buyer_identifier", {"type": "Nip", "nip": BUYER}, "'nip'"),
            ("buyerIdentifier", {"type": "Nip", "Value": BUYER}, "'Value'"),
        ],
    )
    def test_a_misspelt_key_is_refused_before_sending(
        self, ksef: KSeF, tmp_path: Path, name: str, value: dict[str, Any], key: str
    ) -> None:
        with pytest.raises(ValueError, match=f"{name}: {key} is not a key of InvoiceQuery") as caught:
            list(ksef.invoices.query(date_from=_start(), **{name: value}))
        assert "the keys are type, " in str(caught.value)
        with pytest.raises(ValueError, match=f"{name}: {key}"):
            ksef.invoices.export(tmp_path, date_from=_start(), **{name: value})
        with pytest.raises(ValueError, match=f"{name}: {key}"):
            build_filters("Subject1", _start(), **{name: value})
        assert ksef.send_state.requests_sent == 0

    def test_every_object_filter_of_the_spec_is_checked(self, pinned_spec: dict[str, Any]) -> None:
        objects = _object_filters(pinned_spec)
        assert set(objects) >= {"amount", "buyerIdentifier"}
        for name, keys in objects.items():
            assert FILTER_NAMES[name] == name
            with pytest.raises(ValueError, match=f"{name}: 'misspelt' is not a key") as caught:
                build_filters("Subject1", _start(), **{name: {"type": "X", "misspelt": 1}})
            assert f"the keys are {', '.join(keys)}" in str(caught.value)

    def test_the_right_keys_still_narrow_the_query(self, ksef: KSeF) -> None:
        ksef.send_batch(
            [sample(f"K/{net}", net) for net in ("100.00", "1000.00")] + [sample("K/OTHER", "1.00", buyer=NIP)],
            wait=True,
        )
        large = ksef.invoices.query(date_from=_start(), amount={"type": "Brutto", "from": 1000})
        assert [r.invoice_number for r in large] == ["K/1000.00"]
        to_buyer = ksef.invoices.query(date_from=_start(), buyer_identifier={"type": "Nip", "value": BUYER})
        assert sorted(r.invoice_number for r in to_buyer) == ["K/100.00", "K/1000.00"]


# (filter, value, what the message says): each refused by the spec (2.9.0, InvoiceQueryFilters).
REFUSED: list[tuple[str, Any, str]] = [
    ("amount", {"from": 1000}, "amount: type is required"),  # InvoiceQueryAmount.required: [type]
    ("amount", {"type": "Gross"}, r"amount.type: str 'Gross' is not among the spec's AmountType \(Brutto, Netto, "),
    ("amount", {"type": "Brutto", "from": "1000"}, "amount.from: expected a number, got str"),
    ("amount", {"type": "Brutto", "to": True}, "amount.to: expected a number, got bool"),
    ("amount", {"type": "Brutto", "from": float("nan")}, "amount.from: nan is no number JSON can carry"),
    ("amount", {"type": "Brutto", "from": Decimal("Infinity")}, "amount.from: Infinity is no number"),
    ("amount", {"type": "Brutto", "from": Decimal("1234567890.123456789")}, "more digits than the spec's number"),
    ("amount", "1000", "amount: expected a dict or InvoiceQueryAmount, got str"),
    ("amount", InvoiceQueryBuyerIdentifier(type_=BuyerIdentifierType.NIP), "amount: expected a dict or Invoice"),
    ("currency_codes", "EUR", "currency_codes: expected a list, got str 'EUR'"),
    ("currency_codes", ["EUR", "XYZ"], r"currency_codes\[1\]: str 'XYZ' is not among the spec's CurrencyCode"),
    ("currency_codes", ["eur"], "is not among the spec's CurrencyCode"),
    ("invoice_types", ["VAT"], r"invoice_types\[0\]: str 'VAT' is not among the spec's InvoiceType \(Vat, "),
    ("invoiceTypes", "Vat", "invoiceTypes: expected a list"),
    ("form_type", "RR", "form_type: str 'RR' is not among the spec's InvoiceQueryFormType"),  # gone in 2.5.0
    ("invoicing_mode", "online", "invoicing_mode: str 'online' is not among the spec's InvoicingMode"),
    ("seller_nip", "123", r"seller_nip: '123' is not a Nip \(the spec's pattern"),
    ("seller_nip", "0265877635", "is not a Nip"),  # the spec's pattern: no leading 0
    ("seller_nip", NIP + "\n", "is not a Nip"),
    ("seller_nip", 5265877635, "seller_nip: expected text, got int"),
    ("ksef_number", "5265877635-20260101", "ksef_number: '5265877635-20260101' is not a KsefNumber"),
    ("invoice_number", "F" * 257, "invoice_number: 257 characters; the spec allows at least 0 and at most 256"),
    ("buyer_identifier", {"type": "Pesel", "value": "1"}, "buyer_identifier.type: str 'Pesel' is not among"),
    ("buyer_identifier", {"type": "Other", "value": "X" * 51}, "buyer_identifier.value: 51 characters"),
    ("buyer_identifier", {"value": BUYER}, "buyer_identifier: type is required"),
    ("is_self_invoicing", "yes", "is_self_invoicing: expected True or False, got str"),
    ("has_attachment", 1, "has_attachment: expected True or False, got int"),
]


class TestValuesTheSpecRefuses:
    @pytest.mark.parametrize(("name", "value", "message"), REFUSED, ids=[f"{r[0]}={r[1]!r}"[:60] for r in REFUSED])
    def test_a_value_the_spec_refuses_is_a_value_error_before_sending(
        self, ksef: KSeF, tmp_path: Path, name: str, value: Any, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            list(ksef.invoices.query(date_from=_start(), **{name: value}))
        with pytest.raises(ValueError, match=message):
            ksef.invoices.export(tmp_path, date_from=_start(), **{name: value})
        assert ksef.send_state.requests_sent == 0

    def test_the_enums_and_patterns_are_the_pinned_specs(self, pinned_spec: dict[str, Any]) -> None:
        # Read from the spec, not copied: every code it lists passes, in every enum filter.
        schemas = pinned_spec["components"]["schemas"]
        for code in schemas["CurrencyCode"]["enum"]:
            assert build_filters("Subject1", _start(), currency_codes=[code])["currencyCodes"] == [code]
        every_type = schemas["InvoiceType"]["enum"]
        assert build_filters("Subject1", _start(), invoice_types=every_type)["invoiceTypes"] == every_type
        for form in schemas["InvoiceQueryFormType"]["enum"]:
            assert build_filters("Subject1", _start(), form_type=form)["formType"] == form
        number = f"{NIP}-20260101-0100000000AB-CD"
        assert build_filters("Subject1", _start(), ksef_number=number)["ksefNumber"] == number


class TestValuesAsTheModelsHoldThem:
    def test_decimal_amounts_go_out_as_the_json_numbers_they_are(
        self, ksef: KSeF, bodies: list[dict[str, Any]]
    ) -> None:
        # The SDK's invoice builders count money in Decimal; the spec's amounts are numbers
        # (format double). 1230.00 gross is the larger invoice's (1000.00 net + 23% VAT).
        ksef.send_batch([sample("D/SMALL", "100.00"), sample("D/LARGE", "1000.00")], wait=True)
        found = ksef.invoices.query(
            date_from=_start(), amount={"type": "Brutto", "from": Decimal("1230.00"), "to": Decimal("1230.10")}
        )
        assert [r.invoice_number for r in found] == ["D/LARGE"]
        assert bodies[-1]["amount"] == {"type": "Brutto", "from": 1230.0, "to": 1230.1}
        below = ksef.invoices.query(date_from=_start(), amount={"type": "Brutto", "to": Decimal("1229.99")})
        assert [r.invoice_number for r in below] == ["D/SMALL"]

    def test_the_generated_models_and_enums_are_taken(self, ksef: KSeF, tmp_path: Path) -> None:
        ksef.send_batch([sample("M/SMALL", "100.00"), sample("M/LARGE", "1000.00")], wait=True)
        amount = InvoiceQueryAmount(type_=AmountType.BRUTTO, from_=1000.0)
        buyer = InvoiceQueryBuyerIdentifier(type_=BuyerIdentifierType.NIP, value=BUYER)
        found = ksef.invoices.query(
            date_from=_start(),
            amount=amount,
            buyer_identifier=buyer,
            currency_codes=[CurrencyCode.PLN],
            invoice_types=[InvoiceType.VAT],
        )
        assert [r.invoice_number for r in found] == ["M/LARGE"]
        exported = ksef.invoices.export(tmp_path, date_from=_start(), amount=amount, interval=0)
        assert [m["invoiceNumber"] for m in exported.metadata] == ["M/LARGE"]
        # A model carrying a key of its own (additional_properties) is refused as a dict would be.
        amount["min"] = 5
        with pytest.raises(ValueError, match="amount: 'min' is not a key of InvoiceQueryAmount"):
            build_filters("Subject1", _start(), amount=amount)
