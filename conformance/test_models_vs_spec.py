"""Property 2: the generated models against the spec's schemas.

For every object schema of the pinned spec, hypothesis draws valid instances (schemathesis's
generator, via one synthetic operation per schema) and the generated model must parse them and
survive a round trip; unknown fields and enum values must be kept; the request bodies the client
builds must validate against the spec. A model with a renamed field must be caught.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import inspect
import sys
from enum import Enum
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conformance.conftest import EXAMPLES, pinned_spec
from ksef_client._generated import models
from ksef_client.crypto import EncryptedInvoice, SymmetricKey, encryption_for
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.validation import schema_errors
from ksef_client.resources.invoices import build_filters
from ksef_client.schemas import form_code

SPEC = pinned_spec()
COMPONENTS = SPEC["components"]["schemas"]
OBJECT_SCHEMAS = sorted(n for n, s in COMPONENTS.items() if s.get("type") == "object" or "properties" in s)
ENUM_SCHEMAS = sorted(n for n, s in COMPONENTS.items() if "enum" in s and s.get("type") == "string")


def _strip_read_only(node: Any) -> Any:
    # The instances stand for response bodies, where readOnly fields are present.
    if isinstance(node, dict):
        return {k: _strip_read_only(v) for k, v in node.items() if k not in ("readOnly", "writeOnly")}
    if isinstance(node, list):
        return [_strip_read_only(item) for item in node]
    return node


# KSeF's hashes are Base64 SHA-256 values; the generic "byte" strategy rarely meets their 44-char pattern.
schemathesis.openapi.format("byte", st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()))
BODIES = schemathesis.openapi.from_dict(
    {
        "openapi": "3.0.3",
        "info": {"title": "KSeF schemas as bodies", "version": "1"},
        "paths": {
            f"/{name}": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
            for name in OBJECT_SCHEMAS
        },
        "components": _strip_read_only(SPEC["components"]),
    }
)
QUICK = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def _round_trip(model: Any, name: str) -> None:
    @given(case=BODIES[f"/{name}"]["POST"].as_strategy())
    @QUICK
    def check(case: Any) -> None:
        body = case.body
        parsed = model.from_dict({**body, "zzFutureField": [1, "x"]})
        assert model.from_dict(parsed.to_dict()) == parsed
        assert parsed.to_dict()["zzFutureField"] == [1, "x"]  # unknown fields survive
        # The body as drawn (no unknown key added: from_dict takes its other path for additional_properties)
        known = model.from_dict(body)
        assert model.from_dict(known.to_dict()) == known
        assert known.to_dict() == {k: v for k, v in parsed.to_dict().items() if k != "zzFutureField"}
        assert known.additional_properties == {
            k: v for k, v in parsed.additional_properties.items() if k != "zzFutureField"
        }

    check()


@pytest.mark.parametrize("name", OBJECT_SCHEMAS)
def test_model_parses_and_round_trips_every_valid_instance(name: str) -> None:
    _round_trip(getattr(models, name), name)


def test_every_schema_has_a_model() -> None:
    assert [n for n in OBJECT_SCHEMAS + ENUM_SCHEMAS if not hasattr(models, n)] == []
    assert len(OBJECT_SCHEMAS) > 150


@pytest.mark.parametrize("name", ENUM_SCHEMAS)
def test_unknown_enum_values_are_kept(name: str) -> None:
    enum: type[Enum] = getattr(models, name)
    assert {member.value for member in enum} == set(COMPONENTS[name]["enum"])
    value = enum("AddedInAFutureRelease")
    assert str(value) == "AddedInAFutureRelease"


def _errors(schema_name: str, value: Any) -> list[str]:
    return schema_errors({"$ref": f"#/components/schemas/{schema_name}"}, value)


def test_request_bodies_built_by_the_client_match_the_spec() -> None:
    keys = [pair.published() for pair in emulator_keys().published]
    key = SymmetricKey.generate()
    open_body = {"formCode": form_code("FA(3)").to_dict(), "encryption": encryption_for(key, keys)}
    assert _errors("OpenOnlineSessionRequest", open_body) == []
    invoice = EncryptedInvoice.build(key, b"<Faktura/>").request_body(offline=True)
    assert _errors("SendInvoiceRequest", invoice) == []
    filters = build_filters("Subject2", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.date(2026, 3, 31), date_type="Issue")
    assert _errors("InvoiceQueryFilters", filters) == []
    export = {"encryption": encryption_for(key, keys), "filters": filters, "onlyMetadata": False}
    assert _errors("InvoiceExportRequest", export) == []


def test_a_renamed_model_field_is_caught() -> None:
    source = inspect.getsource(models.SessionStatusResponse)
    module = sys.modules[models.SessionStatusResponse.__module__]
    broken_source = inspect.getsource(module).replace('"dateCreated"', '"dateCreatedRenamed"')
    spec = importlib.util.spec_from_loader("broken_session_status", loader=None)
    assert spec is not None and "dateCreated" in source
    broken = importlib.util.module_from_spec(spec)
    broken.__package__ = module.__package__  # its relative imports resolve in the generated package
    exec(compile(broken_source, "broken_session_status", "exec"), broken.__dict__)  # noqa: S102 - test of a test
    with pytest.raises(KeyError, match="dateCreatedRenamed"):
        _round_trip(broken.SessionStatusResponse, "SessionStatusResponse")


# One value of each JSON type (a boolean apart from the numbers: JSON's true is no integer).
OTHER_TYPES: list[Any] = [None, True, 7, 1.5, "x", [1], {"a": 1}]
JSON_TYPES = {"NoneType": "null", "bool": "boolean", "int": "integer", "float": "number", "str": "string"}


def _json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value).__name__) or ("array" if isinstance(value, list) else "object")


def _allowed_types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a property's schema allows (through ``$ref`` and a one-item ``allOf``), or
    ``None`` when it names none (anything goes)."""
    nullable = bool(schema.get("nullable"))
    while "type" not in schema and ("$ref" in schema or len(schema.get("allOf", ())) == 1):
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema["allOf"][0]
        nullable = nullable or bool(schema.get("nullable"))
    if "type" not in schema:
        return None
    allowed = {schema["type"]} | ({"integer"} if schema["type"] == "number" else set())
    return allowed | ({"null"} if nullable else set())


@pytest.mark.parametrize("name", OBJECT_SCHEMAS)
def test_a_field_of_another_json_type_is_refused_exactly_when_the_spec_refuses_it(name: str) -> None:
    # Review of hostile servers, finding 7: a wrong-typed value was kept as sent (or not checked at
    # all) and failed later as a TypeError or AttributeError in the SDK. Now from_dict raises when
    # the spec refuses the value's JSON type (the SDK reports ResponseFormatError), and only then:
    # null where the spec allows it, an integer where it wants a number, still parse.
    model = getattr(models, name)
    properties = COMPONENTS[name].get("properties", {})

    @given(case=BODIES[f"/{name}"]["POST"].as_strategy(), data=st.data())
    @QUICK
    def check(case: Any, data: st.DataObject) -> None:
        body = case.body
        fields = sorted(set(body) & set(properties)) if isinstance(body, dict) else []
        if not fields:
            return
        field = data.draw(st.sampled_from(fields))
        value = data.draw(st.sampled_from([v for v in OTHER_TYPES if _json_type(v) != _json_type(body[field])]))
        allowed = _allowed_types(properties[field])
        changed = {**body, field: value}
        if allowed is not None and _json_type(value) not in allowed:
            with pytest.raises((TypeError, ValueError, KeyError, AttributeError)):
                model.from_dict(changed)
        elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            model.from_dict(changed)  # null where allowed, a number of either kind: parsed

    check()
