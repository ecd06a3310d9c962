"""The generated models are tolerant of what a newer KSeF sends, and parse its timestamps."""

from __future__ import annotations

import datetime
import subprocess
import sys
from io import BytesIO
from typing import Any

import httpx
import pytest
from attrs import NOTHING
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.payloads import metadata_page
from ksef_client._generated import AuthenticatedClient
from ksef_client._generated.api.sessions_status import get_session_upo
from ksef_client._generated.models import (
    InvoiceStatusInfo,
    InvoicingMode,
    SessionInvoiceStatusResponse,
    SessionType,
)
from ksef_client._generated.types import UNSET as UNSET_VALUE
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


def test_an_unknown_enum_value_reads_as_one_the_spec_does_not_know() -> None:
    # Its repr was that of a member (<SessionType.Streaming: 'Streaming'>): in a log or a model's
    # repr nothing told a value KSeF added after the spec from one the SDK knows.
    assert repr(SessionType("Streaming")) == "<SessionType: 'Streaming', not in the spec>"
    assert repr(SessionType("ONLINE")) == "<SessionType: 'ONLINE', not in the spec>"  # a member's name, not value
    assert repr(SessionType.ONLINE) == "<SessionType.ONLINE: 'Online'>"
    assert "not in the spec" in repr(SessionInvoiceStatusResponse.from_dict(dict(INVOICE, invoicingMode="Hybrid")))


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


def test_a_wrong_type_in_a_nullable_field_raises() -> None:
    # A value of another type was kept as sent (openapi-python-client's union semantics) and failed
    # later, as a TypeError or AttributeError where the SDK read it (review of hostile servers,
    # finding 7). It is a TypeError naming the field now, which the SDK reports as ResponseFormatError.
    body = dict(INVOICE, acquisitionDate=12345, invoicingMode="Online")
    with pytest.raises(TypeError, match="acquisitionDate: expected string or null, got integer"):
        SessionInvoiceStatusResponse.from_dict(body)


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


# What the from_dict fast paths of the templates must keep (tests that fail if one breaks semantics):
# enum lookups, nullable fields parsed only when they parse, list comprehensions, unknown keys found
# by a count, additional_properties made on first access.

METADATA = metadata_page(1)["invoices"][0]  # one record of the benchmark's page, as KSeF sends it


def test_unknown_enum_values_are_kept_in_required_nullable_and_list_fields() -> None:
    from ksef_client._generated.models import GenerateTokenRequest, InvoiceMetadata, InvoiceType, TokenPermissionType

    metadata = InvoiceMetadata.from_dict(dict(METADATA, invoiceType="AddedLater", invoicingMode="Streaming"))
    assert metadata.invoice_type == "AddedLater" and isinstance(metadata.invoice_type, InvoiceType)
    assert metadata.invoice_type is InvoiceType("AddedLater")  # one member per value, whoever made it first
    assert InvoiceMetadata.from_dict(dict(METADATA, invoiceType="AddedLater")).invoice_type is metadata.invoice_type
    assert metadata.invoicing_mode is InvoicingMode("Streaming")
    assert InvoiceMetadata.from_dict(METADATA).invoice_type is InvoiceType.VAT
    session = SessionInvoiceStatusResponse.from_dict(dict(INVOICE, invoicingMode="Streaming"))
    assert session.invoicing_mode is InvoicingMode("Streaming")
    token = GenerateTokenRequest.from_dict({"permissions": ["InvoiceRead", "NewRight"], "description": "d"})
    assert token.permissions == [TokenPermissionType.INVOICEREAD, TokenPermissionType("NewRight")]
    assert all(isinstance(p, TokenPermissionType) for p in token.permissions)
    # a value of another type in a required enum field is an error, as Enum(value) makes it
    import pytest

    with pytest.raises(ValueError):
        InvoiceMetadata.from_dict(dict(METADATA, invoiceType=5))


def test_nullable_fields_are_parsed_or_refused() -> None:
    from ksef_client._generated.models import InvoiceMetadata, InvoiceMetadataAuthorizedSubject

    class Text(str):
        pass

    parsed_cases: list[tuple[Any, Any]] = [
        (None, None),
        (Text("2026-11-25T10:15:31+00:00"), datetime.datetime(2026, 11, 25, 10, 15, 31, tzinfo=datetime.UTC)),
    ]
    for sent, expected in parsed_cases:
        parsed = SessionInvoiceStatusResponse.from_dict(dict(INVOICE, acquisitionDate=sent))
        assert parsed.acquisition_date == expected and type(parsed.acquisition_date) is type(expected)
        assert parsed.additional_properties == {}
    assert SessionInvoiceStatusResponse.from_dict(INVOICE).acquisition_date is UNSET_VALUE
    assert SessionInvoiceStatusResponse.from_dict(dict(INVOICE, invoicingMode=None)).invoicing_mode is None
    # what does not parse is an error, never kept as sent (a later TypeError or AttributeError)
    refused: list[tuple[str, Any, type[Exception]]] = [
        ("acquisitionDate", "not a date", ValueError),
        ("acquisitionDate", 12345, TypeError),
        ("acquisitionDate", ["2026-01-01"], TypeError),
        ("invoicingMode", 7, TypeError),
        ("ksefNumber", 5, TypeError),
        ("ordinalNumber", "1", TypeError),
        ("ordinalNumber", True, TypeError),  # a JSON boolean is no integer
    ]
    for field, sent, error in refused:
        with pytest.raises(error):
            SessionInvoiceStatusResponse.from_dict(dict(INVOICE, **{field: sent}))
    # a nested model: a dict that parses; one that does not (required key missing) or a non-dict raises
    subject = {"nip": "5265877635", "role": 1}
    assert InvoiceMetadata.from_dict(dict(METADATA, authorizedSubject=subject)).authorized_subject == (
        InvoiceMetadataAuthorizedSubject(nip="5265877635", role=1)
    )
    for bad_subject in ({"nip": "1"}, "x", {"nip": 1, "role": 1}):
        with pytest.raises((KeyError, TypeError)):
            InvoiceMetadata.from_dict(dict(METADATA, authorizedSubject=bad_subject))
    # a nullable list of models: one bad item, or a string in place of the list, raises
    third = [{"identifier": {"type": "Nip", "value": "1"}, "role": 1}, "bad"]
    for bad_third in (third, "x"):
        with pytest.raises(TypeError):
            InvoiceMetadata.from_dict(dict(METADATA, thirdSubjects=bad_third))
    parsed_third = InvoiceMetadata.from_dict(dict(METADATA, thirdSubjects=third[:1])).third_subjects
    assert isinstance(parsed_third, list) and parsed_third[0].to_dict() == third[0]
    # a nullable list of plain values: the list and each item are checked
    assert InvoiceStatusInfo.from_dict({"code": 1, "description": "d", "details": ["a"]}).details == ["a"]
    for bad_details in ("x", [1]):
        with pytest.raises(TypeError, match=r"details(\[\])?: expected"):
            InvoiceStatusInfo.from_dict({"code": 1, "description": "d", "details": bad_details})
    # a number may come as a JSON integer (12.0 is written 12), never as a string or a boolean
    assert InvoiceMetadata.from_dict(dict(METADATA, netAmount=12)).net_amount == 12
    for bad_amount in ("12", True):
        with pytest.raises(TypeError, match="netAmount: expected number"):
            InvoiceMetadata.from_dict(dict(METADATA, netAmount=bad_amount))


def test_unknown_keys_are_found_in_every_shape_of_model() -> None:
    from ksef_client._generated.models import FormCode, InvoiceStatusInfoExtensionsType0

    # no optional field: a fourth key is unknown
    form_code = FormCode.from_dict({"systemCode": "a", "schemaVersion": "b", "value": "c", "x": 1})
    assert form_code.additional_properties == {"x": 1}
    # only additional properties, typed
    extensions = InvoiceStatusInfoExtensionsType0.from_dict({"a": "1", "b": None})
    assert extensions.additional_properties == {"a": "1", "b": None} and extensions.to_dict() == {"a": "1", "b": None}
    assert InvoiceStatusInfoExtensionsType0.from_dict({}).additional_properties == {}
    # the required fields only; as many keys as fields, but two of them unknown
    assert InvoiceStatusInfo.from_dict({"code": 1, "description": "d"}).additional_properties == {}
    unknown_two = InvoiceStatusInfo.from_dict({"code": 1, "description": "d", "x": 1, "y": None})
    assert unknown_two.additional_properties == {"x": 1, "y": None} and unknown_two.details is UNSET_VALUE
    # every optional field present, one of them replaced by an unknown key (same count), or one more
    for missing in ["invoiceNumber", "invoicingMode", None]:
        full = dict(
            INVOICE, invoiceNumber="FV/1", ksefNumber="k", invoiceFileName="a.xml", acquisitionDate=None,
            permanentStorageDate=None, upoDownloadUrl=None, upoDownloadUrlExpirationDate=None, invoicingMode="Online",
        )  # fmt: skip
        body = {k: v for k, v in full.items() if k != missing} | {"zz": 1}
        assert SessionInvoiceStatusResponse.from_dict(body).additional_properties == {"zz": 1}
        assert SessionInvoiceStatusResponse.from_dict(body).to_dict()["zz"] == 1


def test_additional_properties_of_a_record_with_known_keys_only_behave_as_a_dict_of_its_own() -> None:
    import copy
    import pickle

    import attrs

    first, second = SessionInvoiceStatusResponse.from_dict(INVOICE), SessionInvoiceStatusResponse.from_dict(INVOICE)
    assert first == second and first.additional_properties == {} and "x" not in first
    assert first.additional_properties is not second.additional_properties
    first["x"] = 1
    assert first.additional_properties == {"x": 1} and first.to_dict()["x"] == 1 and first != second
    assert second.additional_properties == {} and "x" not in second.to_dict()
    assert "additional_properties={'x': 1}" in repr(first) and "additional_properties" not in repr(second)
    # (copies are compared by to_dict: a deep copy or a pickle of UNSET is another Unset object)
    fresh = SessionInvoiceStatusResponse.from_dict(INVOICE)
    for original, twin in [
        (fresh, copy.copy(SessionInvoiceStatusResponse.from_dict(INVOICE))),
        (fresh, pickle.loads(pickle.dumps(SessionInvoiceStatusResponse.from_dict(INVOICE)))),
        (first, copy.deepcopy(first)),
        (first, pickle.loads(pickle.dumps(first))),
    ]:
        assert twin.to_dict() == original.to_dict() and twin.additional_properties == original.additional_properties
    assert attrs.evolve(first, ordinal_number=2).additional_properties == {}
    first.additional_properties = {"y": 2}
    assert first["y"] == 2
    del first.additional_properties
    assert first.additional_properties == {}
    assert attrs.asdict(second)["additional_properties"] == {}


def test_enum_from_value_is_the_enum_itself_as_a_dict_lookup() -> None:
    from ksef_client._generated.types import enum_from_value

    lookup = enum_from_value(SessionType)
    assert lookup("Online") is SessionType.ONLINE
    assert lookup("LaterValue") is SessionType("LaterValue") is lookup("LaterValue")
    import pytest

    with pytest.raises(ValueError):
        lookup(1)
    with pytest.raises(TypeError):
        lookup(["Online"])


def test_unknown_enum_values_are_kept_within_a_bound() -> None:
    # A hostile server sending a new value in every answer must not grow memory without end: past
    # ENUM_VALUES_KEPT each unknown value still comes back as a member, made anew, not remembered.
    from ksef_client._generated.models import InvoicingMode
    from ksef_client._generated.types import ENUM_VALUES_KEPT, enum_from_value

    lookup = enum_from_value(InvoicingMode)
    for index in range(3 * ENUM_VALUES_KEPT):
        assert lookup(f"Lookup{index}") == f"Lookup{index}"
        assert InvoicingMode.from_value(f"FromValue{index}").value == f"FromValue{index}"
    most = len(InvoicingMode.__members__) + ENUM_VALUES_KEPT
    assert len(InvoicingMode._value2member_map_) <= most
    assert len(lookup.__self__) <= most  # type: ignore[attr-defined]
    assert lookup("Online") is InvoicingMode.ONLINE


def test_a_large_body_is_parsed_with_the_cycle_collector_paused_and_switched_back_on() -> None:
    # Decoding and building a large page allocates thousands of containers, none in a cycle: the
    # collector is off while it runs (types.CollectorPaused), back on after, also when parsing fails.
    import gc
    import json

    import pytest

    from ksef_client._generated import Client
    from ksef_client._generated.api.sessions_status import list_session_invoices
    from ksef_client._generated.models import SessionInvoicesResponse
    from ksef_client._generated.types import LARGE_BODY, CollectorPaused

    client = Client(base_url="http://ksef.test")
    record = dict(INVOICE, invoicingDate="2025-07-11T12:23:56.015430+00:00")
    page = {"invoices": [dict(record, ordinalNumber=i) for i in range(400)], "continuationToken": "t"}
    large = json.dumps(page).encode()
    small = json.dumps({"invoices": [INVOICE]}).encode()
    assert len(small) < LARGE_BODY <= len(large)
    seen: list[bool] = []
    original = SessionInvoicesResponse.from_dict.__func__  # type: ignore[attr-defined]

    def recording(cls: type[SessionInvoicesResponse], src_dict: Any) -> SessionInvoicesResponse:
        seen.append(gc.isenabled())
        return original(cls, src_dict)  # type: ignore[no-any-return]

    assert gc.isenabled()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SessionInvoicesResponse, "from_dict", classmethod(recording))
        for body in (large, small):
            parsed = list_session_invoices._parse_response(client=client, response=httpx.Response(200, content=body))
            assert isinstance(parsed, SessionInvoicesResponse) and gc.isenabled()
        assert seen == [False, True]
        parsed = list_session_invoices._parse_response(client=client, response=httpx.Response(200, content=large))
        assert isinstance(parsed, SessionInvoicesResponse) and parsed.to_dict() == json.loads(large)
        broken = large.replace(b'"referenceNumber"', b'"referenceNumberRenamed"')
        with pytest.raises(KeyError):
            list_session_invoices._parse_response(client=client, response=httpx.Response(200, content=broken))
        assert gc.isenabled()
        with pytest.raises(ValueError):
            list_session_invoices._parse_response(client=client, response=httpx.Response(200, content=large[:-1]))
        assert gc.isenabled()
    gc.disable()  # switched off by the application: left off
    try:
        with CollectorPaused(large):
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


# Unknown keys are found by counting (from_dict): the keys of src_dict against the required fields
# and the optional ones found, each optional field's missing key counted where its value is checked
# anyway; a record of the required keys only returns before any optional key is looked up. One model
# of each shape of optional field the templates write, complete (values that round-trip by to_dict):
COMPLETE: dict[str, dict[str, Any]] = {
    # plain nullable strings; nullable datetimes and a nullable enum (parsed after a class test)
    "SessionInvoiceStatusResponse": dict(
        INVOICE,
        invoicingDate="2025-07-11T12:23:56.015430+00:00",
        invoiceNumber="FV/1",
        ksefNumber="k",
        invoiceFileName="a.xml",
        acquisitionDate="2025-07-11T12:24:00+00:00",
        permanentStorageDate="2025-07-11T12:25:00.500000+00:00",
        upoDownloadUrl="https://u",
        upoDownloadUrlExpirationDate="2025-07-11T13:25:00+00:00",
        invoicingMode="Online",
    ),
    # a nullable list of strings, a nullable model
    "InvoiceStatusInfo": {"code": 1, "description": "d", "details": ["a"], "extensions": {"k": "v"}},
    # a nullable boolean, an optional (not nullable) boolean
    "AuthenticationListItem": {
        "startDate": "2025-07-11T12:00:00+00:00",
        "authenticationMethod": "Token",
        "authenticationMethodInfo": {"category": "Token", "code": "t", "displayName": "Token"},
        "status": {"code": 200, "description": "ok"},
        "referenceNumber": "r",
        "isTokenRedeemed": True,
        "lastTokenRefreshDate": "2025-07-11T12:01:00+00:00",
        "refreshTokenValidUntil": "2025-07-12T12:00:00+00:00",
        "isCurrent": False,
    },
    # an optional integer (not nullable)
    "CertificateEffectiveSubjectLimits": {"maxCertificates": 3},
    # an optional enum (not nullable), nullable models
    "SetSubjectLimitsRequest": {
        "subjectIdentifierType": "Nip",
        "enrollment": {"maxEnrollments": 2},
        "certificate": {"maxCertificates": None},
    },
    # a nullable list of models, an optional datetime (not nullable)
    "ExceptionInfo": {
        "exceptionDetailList": [{"exceptionCode": 21405, "exceptionDescription": "x", "details": None}],
        "referenceNumber": "r",
        "serviceCode": "c",
        "serviceCtx": "s",
        "serviceName": "n",
        "timestamp": "2025-07-11T12:00:00.250000+00:00",
    },
    # nullable numbers
    "InvoiceQueryAmount": {"type": "Brutto", "from": 1.5, "to": 2},
}
EXTRAS: list[dict[str, Any]] = [{}, {"zzNew": 1}, {"aaNew": None, "status2": {"code": 1}}]


@pytest.mark.parametrize("name", list(COMPLETE))
def test_unknown_keys_are_found_whichever_optional_keys_are_missing_in_every_shape_of_field(name: str) -> None:
    import itertools

    from ksef_client._generated import models

    cls = getattr(models, name)
    complete = COMPLETE[name]
    assert cls.from_dict(complete).to_dict() == complete and cls.from_dict(complete).additional_properties == {}
    optional = []
    for key in complete:
        try:
            cls.from_dict({k: v for k, v in complete.items() if k != key})
        except KeyError:
            continue  # a required key
        optional.append(key)
    assert optional
    for count in range(len(optional) + 1):
        for missing in itertools.combinations(optional, count):
            for extras in EXTRAS:
                body = {k: v for k, v in complete.items() if k not in missing} | extras
                parsed = cls.from_dict(body)
                assert parsed.additional_properties == extras, (missing, extras)
                assert parsed.to_dict() == body  # the missing fields are UNSET, the others as sent


def test_a_wrong_type_in_a_parsed_nullable_field_names_the_field() -> None:
    # Nullable datetimes, enums and models are parsed right after one test of the exact class (what
    # JSON decoding gives); any other value is None, a missing key, a subclass (parsed) or refused,
    # naming the field, as it was before the test of the exact class came first.
    from ksef_client._generated.models import InvoiceStatusInfo

    class Text(str):
        pass

    wrong: list[tuple[Any, str]] = [
        (7, "integer"), (1.5, "number"), (True, "boolean"), ([1], "array"), ({"a": 1}, "object"), ("x", "string"),
    ]  # fmt: skip
    fields = [
        (SessionInvoiceStatusResponse, INVOICE, "acquisitionDate", "string"),
        (SessionInvoiceStatusResponse, INVOICE, "permanentStorageDate", "string"),
        (SessionInvoiceStatusResponse, INVOICE, "upoDownloadUrlExpirationDate", "string"),
        (SessionInvoiceStatusResponse, INVOICE, "invoicingMode", "string"),
        (InvoiceStatusInfo, INVOICE["status"], "extensions", "object"),
    ]
    for cls, body, field, expected in fields:
        for value, json_type in wrong:
            if json_type == expected:
                continue
            with pytest.raises(TypeError, match=rf"^{field}: expected {expected} or null, got {json_type}$"):
                cls.from_dict(dict(body, **{field: value}))  # type: ignore[arg-type]
        assert cls.from_dict(dict(body, **{field: None})).to_dict()[field] is None  # type: ignore[arg-type]
    parsed = SessionInvoiceStatusResponse.from_dict(
        dict(INVOICE, permanentStorageDate=Text("2026-11-25T10:15:31+00:00"))
    )
    assert parsed.permanent_storage_date == datetime.datetime(2026, 11, 25, 10, 15, 31, tzinfo=datetime.UTC)
    assert SessionInvoiceStatusResponse.from_dict(dict(INVOICE, invoicingMode=Text("Offline"))).invoicing_mode is (
        InvoicingMode.OFFLINE
    )
    with pytest.raises(ValueError):
        SessionInvoiceStatusResponse.from_dict(dict(INVOICE, acquisitionDate="2026-13-45"))


def test_a_required_date_enum_or_model_that_does_not_parse_names_its_field() -> None:
    # Required dates, enums and nested models are parsed by one call; what it raises was the bare
    # message ("fromisoformat: argument must be str"), which left a user of a broken answer to
    # guess the field. A nested model's error reads as a path.
    from ksef_client._generated.models import InvoiceMetadata

    cases: list[tuple[Any, str, Any, type[Exception], str]] = [
        (SessionInvoiceStatusResponse, INVOICE, ("invoicingDate", 7), TypeError, r"^invoicingDate: fromisoformat"),
        (SessionInvoiceStatusResponse, INVOICE, ("invoicingDate", "2026-13-45"), ValueError, r"^invoicingDate: "),
        (SessionInvoiceStatusResponse, INVOICE, ("status", [1]), TypeError, r"^status: "),
        (
            SessionInvoiceStatusResponse,
            INVOICE,
            ("status", {"code": "200", "description": "Sukces"}),
            TypeError,
            r"^status: code: expected integer, got string$",
        ),
    ]
    record = metadata_page(1)["invoices"][0]
    cases += [
        (InvoiceMetadata, record, ("invoiceType", 7), ValueError, r"^invoiceType: 7 is not a valid InvoiceType$"),
        (InvoiceMetadata, record, ("issueDate", "20.11.2026"), ValueError, r"^issueDate: "),
        (InvoiceMetadata, record, ("seller", "Sprzedawca"), TypeError, r"^seller: "),
    ]
    for cls, body, (field, value), error, message in cases:
        with pytest.raises(error, match=message):
            cls.from_dict(dict(body, **{field: value}))
        cls.from_dict(body)  # the record itself parses


def test_a_model_without_required_fields_refuses_what_is_no_json_object() -> None:
    # Found in review: the shortcut for a record holding only its required keys took "" and [] (no
    # keys either) for an empty record of a model with no required field, so `GET /limits/subject`
    # answering [] gave an empty EffectiveSubjectLimits where the spec says object. The spec's
    # `type: object` bodies of every such model are refused as before.
    import inspect

    from ksef_client._generated import models

    without_required = [
        cls
        for _, cls in inspect.getmembers(models, inspect.isclass)
        if hasattr(cls, "from_dict") and hasattr(cls, "__attrs_attrs__")
        and all(attribute.default is not NOTHING for attribute in cls.__attrs_attrs__)
    ]  # fmt: skip
    assert len(without_required) > 10  # EffectiveSubjectLimits, ExceptionDetails, ...
    for cls in without_required:
        for value in ("", [], "ab", [1, 2]):
            with pytest.raises((AttributeError, TypeError)):
                cls.from_dict(value)
        assert cls.from_dict({}).to_dict() == {}
    # A free-form object (no fixed fields) inside a record: its headers "" were read as none at all.
    from ksef_client._generated.models import PartUploadRequest

    part = {
        "ordinalNumber": 1,
        "method": "PUT",
        "url": "https://x.invalid/p",
        "headers": {"x-ms-blob-type": "BlockBlob"},
    }
    assert PartUploadRequest.from_dict(part).headers.additional_properties == {"x-ms-blob-type": "BlockBlob"}
    for value, json_type in (("", "string"), ([], "array")):
        with pytest.raises(TypeError, match=rf"^headers: expected object, got {json_type}$"):
            PartUploadRequest.from_dict(dict(part, headers=value))
