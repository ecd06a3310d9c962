"""The generated models are tolerant of what a newer KSeF sends, and parse its timestamps."""

from __future__ import annotations

import datetime
import subprocess
import sys
from io import BytesIO
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from ksef_client._generated import AuthenticatedClient
from ksef_client._generated.api.sessions_status import get_session_upo
from ksef_client._generated.models import (
    InvoiceStatusInfo,
    InvoicingMode,
    SessionInvoiceStatusResponse,
    SessionType,
)
from ksef_client._generated.types import File

INVOICE = {
    "ordinalNumber": 1,
    "referenceNumber": "20250625-EE-319D7EE000-B67F415CDC-2C",
    "invoiceHash": "mkht+3m5trnfxlTYhq3QFn74LkEO69MFNlsMAkCDSPA=",
    "invoicingDate": "2025-07-11T12:23:56.0154302+00:00",
    "status": {"code": 100, "description": "Faktura przyjęta do dalszego przetwarzania"},
}


def test_unknown_enum_value_is_kept() -> None:
    value = SessionType("Streaming")
    assert value == "Streaming"
    assert str(value) == "Streaming"
    assert SessionType("Streaming") is value
    assert SessionType("Online") is SessionType.ONLINE
    assert value not in list(SessionType)


def test_unknown_fields_survive_a_round_trip() -> None:
    # Six fractional digits: a Python datetime keeps microseconds, so KSeF's seventh digit is dropped.
    body = dict(INVOICE, newField={"nested": [1, 2]}, invoicingDate="2025-07-11T12:23:56.015430+00:00")
    body["status"] = dict(INVOICE["status"], extraInfo="x")  # type: ignore[arg-type]
    parsed = SessionInvoiceStatusResponse.from_dict(body)
    assert parsed.additional_properties["newField"] == {"nested": [1, 2]}
    assert isinstance(parsed.status, InvoiceStatusInfo)
    assert parsed.status.additional_properties == {"extraInfo": "x"}
    assert parsed.to_dict() == body


def test_unknown_fields_are_found_whichever_optional_fields_are_missing() -> None:
    # from_dict looks for unknown keys only when src_dict has more keys than fields it found: a
    # missing optional field must not hide an unknown one (same key count as a complete record).
    complete = dict(
        INVOICE, invoiceNumber="FV/1", ksefNumber=None, invoiceFileName="a.xml", acquisitionDate=None,
        permanentStorageDate=None, upoDownloadUrl=None, upoDownloadUrlExpirationDate=None, invoicingMode="Online",
    )  # fmt: skip
    assert SessionInvoiceStatusResponse.from_dict(complete).additional_properties == {}
    swapped = {k: v for k, v in complete.items() if k != "ksefNumber"} | {"futureField": None}
    assert len(swapped) == len(complete)
    parsed = SessionInvoiceStatusResponse.from_dict(swapped)
    assert parsed.additional_properties == {"futureField": None}
    assert parsed.to_dict()["futureField"] is None and "ksefNumber" not in parsed.to_dict()
    parsed.additional_properties["x"] = 1  # each record has its own dict, also when nothing was unknown
    assert SessionInvoiceStatusResponse.from_dict(complete).additional_properties == {}


def test_seven_fractional_digits_parse() -> None:
    parsed = SessionInvoiceStatusResponse.from_dict(INVOICE)
    assert parsed.invoicing_date == datetime.datetime(2025, 7, 11, 12, 23, 56, 15430, tzinfo=datetime.UTC)


def test_upo_download_returns_the_bytes() -> None:
    upo = b"<?xml version='1.0'?><Potwierdzenie/>"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/sessions/S/upo/U"
        assert request.headers["authorization"] == "Bearer t"
        return httpx.Response(200, content=upo, headers={"content-type": "application/xml"})

    transport = httpx.MockTransport(handler)
    client = AuthenticatedClient(base_url="http://ksef.test/v2", token="t", httpx_args={"transport": transport})
    result = get_session_upo.sync("S", "U", client=client)
    assert isinstance(result, File)
    assert isinstance(result.payload, BytesIO) and result.payload.getvalue() == upo


def test_every_model_module_imports_first_in_a_clean_interpreter() -> None:
    # Models import the models they nest at the end of their module (the template does it so
    # from_dict needs no import per call). Any one of them must import first without a cycle error.
    code = (
        "import importlib, pkgutil, sys\n"
        "import ksef_client._generated.models as m\n"
        "for info in pkgutil.iter_modules(m.__path__):\n"
        "    for key in [k for k in sys.modules if k.startswith('ksef_client._generated.models.')]:\n"
        "        del sys.modules[key]\n"
        "    importlib.import_module('ksef_client._generated.models.' + info.name)\n"
        "print(len(list(pkgutil.iter_modules(m.__path__))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 200


def test_a_wrong_type_in_a_nullable_field_is_kept_not_raised() -> None:
    # The inline union parsing keeps openapi-python-client's semantics: a value that is not the
    # expected type is kept as sent (the contract suite reports it), other fields still parse.
    body = dict(INVOICE, acquisitionDate=12345, invoicingMode="Online")
    parsed = SessionInvoiceStatusResponse.from_dict(body)
    assert parsed.acquisition_date == 12345
    assert parsed.invoicing_mode is InvoicingMode.ONLINE
    assert parsed.invoicing_date == datetime.datetime(2025, 7, 11, 12, 23, 56, 15430, tzinfo=datetime.UTC)


def test_from_dict_builds_what_the_constructor_builds() -> None:
    # from_dict sets every field itself (no __init__): the object must equal a constructed one,
    # defaults included, and behave the same (repr, evolve-free mutation, to_dict).
    parsed = SessionInvoiceStatusResponse.from_dict(INVOICE)
    built = SessionInvoiceStatusResponse(
        ordinal_number=1, reference_number=INVOICE["referenceNumber"], invoice_hash=INVOICE["invoiceHash"],  # type: ignore[arg-type]
        invoicing_date=datetime.datetime.fromisoformat(INVOICE["invoicingDate"]),  # type: ignore[arg-type]
        status=InvoiceStatusInfo(code=100, description="Faktura przyjęta do dalszego przetwarzania"),
    )  # fmt: skip
    assert parsed == built and repr(parsed) == repr(built)
    assert parsed.to_dict() == built.to_dict() == dict(INVOICE, invoicingDate="2025-07-11T12:23:56.015430+00:00")
    parsed.additional_properties["x"] = 1
    assert built.additional_properties == {}  # each object has its own dict


def test_from_dict_calls_other_classes_through_aliases_bound_at_import() -> None:
    # Looking up `Model.from_dict`, `Enum.from_value` or `datetime.datetime.fromisoformat` per
    # record costs ~60 ns each (CPython does not specialise classmethod lookups): the template
    # binds them once per module. Every alias from_dict uses must exist, no lookup may be left.
    import ast
    import builtins
    import importlib
    import inspect
    import pkgutil
    import textwrap

    import ksef_client._generated.models as models

    looked_up = {"from_dict", "from_value", "fromisoformat", "__new__"}
    checked = 0
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        for cls in [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__]:
            if "from_dict" not in vars(cls):
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(vars(cls)["from_dict"].__func__)))
            assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in looked_up:
                    raise AssertionError(f"{module.__name__}: {ast.unparse(node)} is looked up per call")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in assigned:
                    name = node.func.id
                    assert name in vars(module) or name in vars(builtins), f"{module.__name__}: {name} undefined"
            checked += 1
    assert checked > 200


def test_responses_decode_like_the_standard_library() -> None:
    # The generated endpoints decode bodies with types.json_loads (orjson): the same values as
    # json.loads, including what only the standard library takes, and the same error type.
    import json

    import pytest

    from ksef_client._generated import types
    from ksef_client._generated.types import json_loads

    assert types._fast_loads.__module__ == "orjson"  # a dependency on CPython: the fast path runs
    bodies = [
        b'{"a": [1, 2.5, 1e-7, "\\u0142\xc3\xb3d\xc5\xba", null, true, {}], "a": 2}',
        b"[9223372036854775807, -9223372036854775808, 18446744073709551615]",
        b"[NaN, Infinity, -Infinity]",
    ]
    for body in bodies:
        assert repr(json_loads(body)) == repr(json.loads(body))
    with pytest.raises(ValueError):
        json_loads(b"{not json")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**64 - 1), max_size=20),
       st.lists(st.decimals(min_value=-10**12, max_value=10**12, places=2, allow_nan=False), max_size=20))  # fmt: skip
def test_numbers_decode_exactly_as_the_standard_library(numbers: list[float | int], amounts: list[Any]) -> None:
    # Amounts are money: orjson must give the very same floats and integers json.loads gives, for
    # any double (round-tripped) and for amounts written with two decimals, as KSeF writes them.
    import json

    from ksef_client._generated.types import json_loads

    body = ("[" + ",".join([json.dumps(n) for n in numbers] + [str(a) for a in amounts]) + "]").encode()
    decoded, expected = json_loads(body), json.loads(body)
    assert decoded == expected and [type(x) for x in decoded] == [type(x) for x in expected]
