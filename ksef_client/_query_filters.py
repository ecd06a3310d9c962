"""The values of the optional metadata filters checked against the pinned spec, before sending.

KSeF accepts properties it does not know ("Usunięto `additionalProperties: false` [...] dopuszcza
możliwość pojawiania się dodatkowych właściwości w żądaniach", api-changelog 2.1.2) and ignores
them: a misspelt key inside ``amount`` or ``buyerIdentifier`` would widen the query to every
invoice, without an error. What the spec refuses (an enum value it does not list, a NIP that does
not match its pattern, a text over its ``maxLength``) costs a request that counts against the rate
limit, and a bare ``KeyError``/``TypeError`` from the generated models said nothing of the filter.
So each value is checked here against the schema of its property in ``InvoiceQueryFilters``, read
from the shipped spec (``_data/ksef-openapi.json``): the enums, patterns, lengths and types are the
spec's own, never copied by hand. Anything wrong is a ``ValueError`` naming the filter (``amount.from``).

A value may be given as the generated models hold it: an enum member (``CurrencyCode.EUR``), a
model (``InvoiceQueryAmount(type_=AmountType.BRUTTO, from_=1000)``), a ``Decimal`` amount. What is
returned is plain JSON: a ``Decimal`` becomes the float it is exactly (the spec's amounts are
``format: double``; one with more digits than a double holds is refused, not rounded).
"""

from __future__ import annotations

import enum
import functools
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ksef_client.spec_version import pinned_schemas

Schema = dict[str, Any]

_REF = "#/components/schemas/"


def _resolved(schema: Schema) -> Schema:
    """``schema`` with its ``$ref`` and ``allOf`` of refs merged in (the spec writes a property as
    ``{"allOf": [{"$ref": ...}], "nullable": true, ...}``); ``title``: the name of the schema it
    refers to, for messages."""
    merged: Schema = {}
    for part in schema.get("allOf", []):
        merged.update(_resolved(part))
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_REF)
        merged.update(_resolved(pinned_schemas()[name]))
        merged["title"] = name
    merged.update({key: value for key, value in schema.items() if key not in ("allOf", "$ref")})
    return merged


@functools.cache
def filter_schema(api_name: str) -> Schema:
    """The schema of the ``InvoiceQueryFilters`` property ``api_name`` (``amount``, ``sellerNip``, ...)."""
    return _resolved(pinned_schemas()["InvoiceQueryFilters"]["properties"][api_name])


def checked_filter(name: str, api_name: str, value: Any) -> Any:
    """``value`` of the filter ``api_name`` (given as ``name``) as JSON, checked against the spec:
    ``ValueError`` naming it (and, inside an object, the key) when the spec does not allow it."""
    return _checked(value, filter_schema(api_name), name)


def checked_against(value: Any, schema_name: str, path: str) -> Any:
    """``value`` (JSON, or a generated model) checked against the spec's component schema
    ``schema_name`` as the filters are (keys, required fields, enums, patterns, lengths, types);
    returns it as JSON. ``ValueError`` naming ``path`` and the key when the spec does not allow it."""
    return _checked(value, _resolved({"$ref": _REF + schema_name}), path)


def _checked(value: Any, schema: Schema, path: str) -> Any:
    if value is None:
        if schema.get("nullable"):
            return None
        raise ValueError(f"{path}: may not be None")
    kind = "enum" if "enum" in schema else schema.get("type")
    check = _BY_TYPE.get(str(kind))
    if check is None:  # a type a newer spec might bring: refused, not sent unchecked
        raise ValueError(f"{path}: the spec gives it a type this SDK does not check ({kind!r})")
    return check(value, schema, path)


def _enum_value(value: Any, schema: Schema, path: str) -> str:
    allowed = [str(v) for v in schema["enum"]]
    text = value.value if isinstance(value, enum.Enum) else value
    if isinstance(text, str) and text in allowed:
        return text
    listed = ", ".join(allowed) if len(allowed) <= 20 else f"one of its {len(allowed)} codes"
    raise ValueError(f"{path}: {_shown(value)} is not among the spec's {schema.get('title', 'values')} ({listed})")


def _object(value: Any, schema: Schema, path: str) -> dict[str, Any]:
    title = schema.get("title", "object")
    if hasattr(value, "to_dict") and hasattr(value, "additional_properties"):  # a generated model
        if type(value).__name__ != title:
            raise ValueError(f"{path}: expected a dict or {title}, got {type(value).__name__}")
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise ValueError(f"{path}: expected a dict or {title}, got {_shown(value)}")
    properties: dict[str, Schema] = schema.get("properties", {})
    for key in value:
        if key not in properties:
            # ``from_``, ``type_``: the generated model's names, for the API's ``from``, ``type``.
            python_name = isinstance(key, str) and key.endswith("_") and key[:-1] in properties
            hint = f" ({str(key)[:-1]!r}; {key!r} is the generated model's name)" if python_name else ""
            raise ValueError(
                f"{path}: {key!r} is not a key of {title} (KSeF would ignore it: a filter would not narrow "
                f"the query, a field would not be set); the keys are {', '.join(properties)}, as the API names "
                f"them{hint}"
            )
    missing = [key for key in schema.get("required", []) if value.get(key) is None]
    if missing:
        raise ValueError(f"{path}: {', '.join(missing)} is required (the spec's {title})")
    return {key: _checked(item, _resolved(properties[key]), f"{path}.{key}") for key, item in value.items()}


def _array(value: Any, schema: Schema, path: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"{path}: expected a list, got {_shown(value)}")
    items = _resolved(schema.get("items", {}))
    return [_checked(item, items, f"{path}[{index}]") for index, item in enumerate(value)]


def _string(value: Any, schema: Schema, path: str) -> str:
    if not isinstance(value, str) or isinstance(value, enum.Enum):
        raise ValueError(f"{path}: expected text, got {_shown(value)}")
    pattern = schema.get("pattern")
    # ``re.ASCII``: ``\d`` is 0-9 only, as in the spec's .NET patterns. The whole text: the
    # patterns are anchored (^...$), and a ``$`` alone would let a final newline through.
    if pattern is not None and not re.fullmatch(pattern, value, re.ASCII):
        what = f"a {schema['title']}" if "title" in schema else "in the spec's form"
        raise ValueError(f"{path}: {value!r} is not {what} (the spec's pattern {pattern})")
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if len(value) < low or (high is not None and len(value) > high):
        most = "" if high is None else f" and at most {high}"
        raise ValueError(f"{path}: {len(value)} characters; the spec allows at least {low}{most}")
    return value


def _boolean(value: Any, schema: Schema, path: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{path}: expected True or False, got {_shown(value)}")
    return value


def _number(value: Any, schema: Schema, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{path}: expected a number, got {_shown(value)}")
    if isinstance(value, int):
        return value
    if not (value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)):
        raise ValueError(f"{path}: {value} is no number JSON can carry")
    number = float(value)
    if isinstance(value, Decimal) and not _exactly(value, number):
        raise ValueError(
            f"{path}: {value} has more digits than the spec's number (format: double) holds; KSeF would read "
            f"{number!r}: round it"
        )
    return number


def _integer(value: Any, schema: Schema, path: str) -> int:
    """A whole number within the schema's ``minimum``/``maximum`` (and an ``int32``'s range)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: expected a whole number, got {_shown(value)}")
    low, high = schema.get("minimum"), schema.get("maximum")
    if schema.get("format") == "int32":
        low = -(2**31) if low is None else low
        high = 2**31 - 1 if high is None else high
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{path}: {value} is outside the spec's range {low}..{high}")
    return value


_BY_TYPE: dict[str, Callable[[Any, Schema, str], Any]] = {
    "enum": _enum_value, "object": _object, "array": _array, "string": _string, "number": _number, "boolean": _boolean,
    "integer": _integer,
}  # fmt: skip


def _exactly(value: Decimal, number: float) -> bool:
    """Whether the shortest text of ``number`` (what JSON carries) is ``value``'s number."""
    return Decimal(repr(number)) == value


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
