"""Request validation from the spec: what KSeF refuses with 21405, the emulator refuses too.

Each operation's parameters (path, query, header) and JSON body are checked against the pinned
spec's schemas (``_data/ksef-openapi.json``) with jsonschema-rs. Query values arrive as text and
are coerced to the declared type first; OpenAPI 3.0's ``nullable`` is turned into JSON Schema.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from ksef_client.mock.exceptions import SchemaViolation, UnreadableBody, UnsupportedMediaType
from ksef_client.spec_version import pinned_spec_path

_VALIDATION = "Błąd walidacji danych wejściowych."
_MAX_DETAILS = 5
_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _openapi_to_json_schema(node: Any) -> Any:
    """``nullable: true`` -> a ``null`` alternative; ``readOnly`` fields are not sent by clients."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _openapi_to_json_schema(value) for key, value in node.items() if key != "nullable"}
    bounds = _INT_BOUNDS.get(str(node.get("format"))) if node.get("type") == "integer" else None
    if bounds is not None:  # int32/int64 are ranges too (KSeF's .NET parser refuses overflows)
        converted.setdefault("minimum", bounds[0])
        converted.setdefault("maximum", bounds[1])
    if node.get("type") == "array":
        # The spec bounds AllowedIps' lists with minimum/maximum, which JSON Schema applies to
        # numbers only; they are item counts (api-changelog.md 2.4.0: "dodano atrybuty minimum i
        # maximum (limit elementów list dla ip4Addresses, ip4Ranges, ip4Masks) ... ich
        # przekroczenie skutkowało błędem walidacji").
        for number, items in (("minimum", "minItems"), ("maximum", "maxItems")):
            if number in converted:
                converted.setdefault(items, converted.pop(number))
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(pinned_spec_path().read_text(encoding="utf-8"))
    return spec


@functools.cache
def _components() -> dict[str, Any]:
    converted: dict[str, Any] = _openapi_to_json_schema(_spec().get("components", {}))
    for name in LOCAL_DATE_TIME_SCHEMAS:
        converted["schemas"][name] = _reformatted(converted["schemas"][name], "date-time", LOCAL_DATE_TIME)
    return converted


def _reformatted(node: Any, old: str, new: str) -> Any:
    """``node`` with every ``format: old`` made ``format: new``."""
    if isinstance(node, list):
        return [_reformatted(item, old, new) for item in node]
    if not isinstance(node, dict):
        return node
    return {k: new if k == "format" and v == old else _reformatted(v, old, new) for k, v in node.items()}


# InvoiceQueryDateRange.from/to also take a date-time without offset, read as Warsaw local time
# (``invoice_query.parse_date``): api-changelog 2.1.2, "Wartości bez strefy czasowej są teraz
# jednoznacznie interpretowane zgodnie z dokumentacją (czas lokalny Europe/Warsaw)"; every published
# spec from 2026-02 up to 2.7.0 lists the variant, "bez offsetu (interpretowane jako czas lokalny
# strefy Europe/Warsaw)". The pinned 2.9.0 no longer lists it, yet gives its format as
# "np. `yyyy-MM-ddTHH:mm:ss`", and no changelog says KSeF refuses them now.
LOCAL_DATE_TIME = "date-time-or-local"
LOCAL_DATE_TIME_SCHEMAS = ("InvoiceQueryDateRange",)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")


def is_date_time_or_local(value: str) -> bool:
    """Whether ``value`` is an RFC 3339 date-time, or one without its offset (``LOCAL_DATE_TIME``)."""
    text = value.upper()  # RFC 3339 allows "t" and "z"
    if _DATE_TIME.fullmatch(text) is None:
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:  # a day or an hour out of range
        return False
    return True


# OpenAPI's ``format: byte`` is "base64 encoded characters" (RFC 4648), which KSeF's .NET binding
# of byte[] reads in the standard alphabet with padding; Draft 4, which jsonschema-rs validates,
# has no such format and would let anything through (hashes, keys, the encrypted invoice).
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def is_base64(value: str) -> bool:
    """Whether ``value`` is Base64 in the standard alphabet, padded (OpenAPI's ``format: byte``)."""
    return _BASE64.fullmatch(value) is not None


@functools.cache
def _validator_for(schema_json: str) -> Any:
    schema = {**json.loads(schema_json), "components": _components()}
    formats = {"byte": is_base64, LOCAL_DATE_TIME: is_date_time_or_local}
    return jsonschema_rs.Draft4Validator(schema, validate_formats=True, formats=formats)


def compile_schema(schema: dict[str, Any]) -> Any:
    """A validator for an OpenAPI schema of the pinned spec (compiled once per distinct schema)."""
    return _validator_for(json.dumps(_openapi_to_json_schema(schema), sort_keys=True))


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """What is wrong with ``value`` under an OpenAPI schema of the pinned spec (``[]``: valid)."""
    return _messages(compile_schema(schema), value)


def _messages(validator: Any, value: Any) -> list[str]:
    try:
        return [f"{'/'.join(map(str, e.instance_path)) or '$'}: {e.message}" for e in validator.iter_errors(value)]
    except (ValueError, UnicodeError, RecursionError) as error:
        # jsonschema-rs gives up on JSON nested ~256 levels deep and on lone surrogates: KSeF's
        # validator refuses such input too, so it is a 21405 like any other invalid value.
        return [f"$: nieczytelna treść ({type(error).__name__})"]


@dataclass(frozen=True)
class Parameter:
    """A declared parameter of an operation."""

    name: str
    location: str
    required: bool
    schema: dict[str, Any]
    validator: Any = field(compare=False, repr=False)


@dataclass(frozen=True)
class OperationRules:
    """What a request of one operation must look like."""

    parameters: tuple[Parameter, ...]
    body_schema: dict[str, Any] | None
    body_required: bool
    body_validator: Any = field(compare=False, repr=False)
    # The request body's media types the operation declares (``()``: it takes no body).
    media_types: tuple[str, ...] = ()
    # Whether the operation's 400 table lists 21001 ("Nieczytelna treść."): an unparsable body is
    # that code there, elsewhere a 21405 like any other invalid input.
    lists_unreadable: bool = False


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = _spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def component_schema(name: str) -> dict[str, Any]:
    """A schema of the pinned spec's ``components/schemas`` by name, references followed."""
    return _resolve({"$ref": f"#/components/schemas/{name}"})


@functools.cache
def rules(method: str, path: str) -> OperationRules:
    """The rules of ``METHOD path`` (path as in the spec, without ``/v2``)."""
    operation = _spec()["paths"][path][method.lower()]
    parameters = tuple(
        Parameter(p["name"], p["in"], bool(p.get("required")), p.get("schema", {}), compile_schema(p.get("schema", {})))
        for p in (_resolve(raw) for raw in operation.get("parameters", []))
    )
    body = operation.get("requestBody")
    content = body.get("content", {}) if body else {}
    json_body = content.get("application/json")
    schema = json_body.get("schema") if json_body else None
    required = bool(body and body.get("required")) and schema is not None
    validator = compile_schema(schema) if schema is not None else None
    unreadable = 21001 in _documented_errors().get((method.upper(), path), {})
    return OperationRules(parameters, schema, required, validator, tuple(content), unreadable)


def _coerce(raw: list[str], schema: dict[str, Any]) -> Any:
    resolved = _resolve(schema) if "$ref" in schema else schema
    kind = resolved.get("type") or next(
        (_resolve(s).get("type") for s in resolved.get("allOf", []) if _resolve(s).get("type")), "string"
    )
    if kind == "array":
        item_schema = resolved.get("items", {})
        return [_coerce([value], item_schema) for value in raw]
    value = raw[-1]
    if kind == "integer":
        digits = value.removeprefix("-")
        return int(value) if digits.isascii() and digits.isdigit() else value
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def check_request(
    method: str, path: str, path_params: dict[str, str], query: dict[str, list[str]], headers: dict[str, str],
    body: bytes | None,
) -> None:  # fmt: skip
    """``MockAPIError`` 21405 listing what does not match the spec; 415 first for a body in a media
    type the operation does not declare, then 21001 for a body that is no JSON where the spec lists
    that code (it cannot be read, so nothing else of the request is checked)."""
    operation = rules(method, path)
    check_media_type(operation, headers, body)
    value = _json_of(operation, body)
    problems: list[str] = []
    for parameter in operation.parameters:
        if parameter.location == "path":
            raw = [path_params[parameter.name]] if parameter.name in path_params else []
        elif parameter.location == "query":
            raw = query.get(parameter.name, [])
        elif parameter.location == "header":
            raw = [headers[parameter.name.lower()]] if parameter.name.lower() in headers else []
        else:
            continue
        if not raw:
            if parameter.required:
                problems.append(f"{parameter.name}: wymagany parametr")
            continue
        problems += [f"{parameter.name}: {e}" for e in _messages(parameter.validator, _coerce(raw, parameter.schema))]
    if operation.body_schema is not None:
        problems += _body_problems(operation, body, value)
    if problems:
        raise SchemaViolation(problems[:_MAX_DETAILS])


def check_media_type(operation: OperationRules, headers: dict[str, str], body: bytes | None) -> None:
    """A body sent must come in a media type the operation declares (the spec gives each exactly
    one: ``application/json``, or ``application/xml`` for the XAdES document), else 415 as KSeF's
    ASP.NET Core answers; parameters such as ``charset`` do not matter."""
    if not body:
        return
    media = headers.get("content-type", "").split(";", maxsplit=1)[0].strip().lower()
    if media not in operation.media_types:
        raise UnsupportedMediaType(media, operation.media_types or ("no body",))


_NOT_JSON = object()  # the value of a body that is no JSON


def _json_of(operation: OperationRules, body: bytes | None) -> Any:
    """The JSON value of a body the operation reads as JSON (``None`` when it has none);
    ``UnreadableBody`` (21001) when it is no JSON and the spec lists that code, else ``_NOT_JSON``
    (a 21405 of the validator)."""
    if not body or operation.body_schema is None:
        return None
    try:
        return json.loads(body)
    except ValueError as error:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        if operation.lists_unreadable:
            raise UnreadableBody(f"Treść żądania nie jest poprawnym JSON: {error}") from None
        return _NOT_JSON
    except RecursionError:
        # JSON nested deeper than Python's parser goes is still JSON: a 21405 as at a depth the
        # parser reads and the validator gives up on (``_messages``).
        return _NOT_JSON


def _body_problems(operation: OperationRules, body: bytes | None, value: Any) -> list[str]:
    if not body:
        return ["body: wymagana treść żądania"] if operation.body_required else []
    if value is _NOT_JSON:
        return ["body: treść nie jest poprawnym JSON"]
    return [f"body {e}" for e in _messages(operation.body_validator, value)]


# --- responses (strict mode) ----------------------------------------------------------------------


def invoice_metadata_problems(record: dict[str, Any]) -> list[str]:
    """What is wrong with a record of an export's ``_metadata.json``: the spec (POST
    /invoices/exports) says each is an ``InvoiceMetadata``, as POST /invoices/query/metadata gives."""
    return schema_errors({"$ref": "#/components/schemas/InvoiceMetadata"}, record)


JSON_TYPES = ("application/json", "application/problem+json")


_TABLE_ROW = re.compile(r"^\|\s*(\d+)\s*\|([^|]*)\|([^|]*)\|", re.MULTILINE)


@functools.cache
def _documented_errors() -> dict[tuple[str, str], dict[int, tuple[str, str]]]:
    """Every operation's 400 table (``ExceptionCode | ExceptionDescription | Details``), by
    ``(METHOD, path)`` and code."""
    tables: dict[tuple[str, str], dict[int, tuple[str, str]]] = {}
    for path, item in _spec()["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            answer = _resolve(operation.get("responses", {}).get("400") or {})
            rows = _TABLE_ROW.findall(str(answer.get("description") or ""))
            tables[(method.upper(), path)] = {int(c): (d.strip(), x.strip()) for c, d, x in rows}
    return tables


def documented_error(code: int, method: str | None = None, path: str | None = None) -> tuple[str, str] | None:
    """``(ExceptionDescription, Details)`` of ``code`` in the spec's 400 table of ``METHOD path``,
    or of the first operation listing it when that one does not (or none is named); ``None``:
    no table of the spec lists it."""
    tables = _documented_errors()
    own = tables.get((method.upper(), path)) if method is not None and path is not None else None
    if own is not None and code in own:
        return own[code]
    return next((table[code] for table in tables.values() if code in table), None)


@functools.cache
def _response_rules(method: str, path: str) -> dict[str, dict[str, Any]]:
    responses: dict[str, dict[str, Any]] = _spec()["paths"][path][method.lower()].get("responses", {})
    return {status: _resolve(answer) for status, answer in responses.items()}


def response_problems(
    method: str, path: str, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None
) -> list[str]:
    """What is wrong with an answer of ``METHOD path`` under the spec (``[]``: it conforms).

    Checked strictly: the status must be declared, the media type must be one the status declares,
    a JSON body must match its schema (enums, formats, required fields, int32/int64 ranges), and
    each header the status declares, when sent, must match its schema (``headers``).
    """
    declared = _response_rules(method, path)
    answer = declared.get(str(status)) or declared.get("default")
    if answer is None:
        return [f"status {status} is not declared (declared: {', '.join(sorted(declared))})"]
    problems = header_problems(answer, headers or {}, body)
    return problems + _answer_body_problems(answer, status, content_type, body)


def header_problems(answer: dict[str, Any], headers: Mapping[str, str], body: bytes) -> list[str]:
    """The declared headers of ``answer`` that were sent and break their schema; ``x-ms-meta-hash``
    must also be the body's SHA-256."""
    problems = []
    sent = {name.lower(): value for name, value in headers.items()}
    for name, declared in (answer.get("headers") or {}).items():
        value = sent.get(name.lower())
        if value is None:
            continue
        schema = _resolve(_resolve(declared).get("schema") or {})
        typed: Any = value
        if schema.get("type") == "integer":
            typed = int(value) if value.isascii() and value.isdigit() else value
        problems += [f"header {name} {e}" for e in schema_errors(schema, typed)]
        if name.lower() == "x-ms-meta-hash" and value != base64.b64encode(hashlib.sha256(body).digest()).decode():
            problems.append(f"header {name} is not the SHA-256 of the body")
    return problems


def _answer_body_problems(answer: dict[str, Any], status: int, content_type: str, body: bytes) -> list[str]:
    content = answer.get("content") or {}
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    if not content:
        return [f"status {status} declares no body, got {len(body)} bytes"] if body else []
    if media not in content:
        return [f"media type {media or '(none)'} is not declared for {status} (declared: {', '.join(content)})"]
    schema = content[media].get("schema")
    if media not in JSON_TYPES or schema is None:
        return []
    try:
        value = json.loads(body)
    except ValueError:
        return [f"the {media} body is not JSON"]
    return [f"body {e}" for e in _messages(compile_schema(schema), value)][:_MAX_DETAILS]
