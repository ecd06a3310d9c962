"""Differences between two versions of one JSON schema of the KSeF spec.

``$ref`` targets are compared by name only: what changed inside a referenced component is found
when that component itself is compared (``spec_diff`` then attributes it to every operation that
reaches the component). Each difference says whether it can break a client that sends the schema
(a request) or one that reads it (a response).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELD_ADDED = "field added"
FIELD_REMOVED = "field removed"
NOW_REQUIRED = "field now required"
NO_LONGER_REQUIRED = "field no longer required"
ENUM_ADDED = "enum value added"
ENUM_REMOVED = "enum value removed"
CONSTRAINT = "constraint changed"
REPLACED = "schema replaced"
DESCRIPTION = "description changed"

# Compared value by value; everything else a schema may hold is walked or ignored below.
CONSTRAINTS = (
    "type",
    "format",
    "nullable",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "multipleOf",
    "uniqueItems",
    "default",
    "readOnly",
    "deprecated",
    "x-removal-date",
)
WALKED = {"$ref", "allOf", "oneOf", "anyOf", "properties", "required", "items", "additionalProperties", "enum"}
IGNORED = {"description", "example", "examples", "title"}
# Boolean keywords whose ``false`` means the same as leaving them out.
FLAGS = ("nullable", "uniqueItems", "readOnly", "deprecated", "exclusiveMinimum", "exclusiveMaximum")
_LOWER_BOUNDS = {"minimum", "exclusiveMinimum", "minLength", "minItems"}
_UPPER_BOUNDS = {"maximum", "exclusiveMaximum", "maxLength", "maxItems"}

Schemas = Mapping[str, Any]


@dataclass(frozen=True)
class Delta:
    """One difference at ``subject`` (``"InvoicePackage"``, ``"GET /rate-limits 200"``, ``"X.parts[]"``)."""

    kind: str
    subject: str
    item: str = ""
    detail: str = ""
    breaks_request: bool = False
    breaks_response: bool = False


def ref_name(node: Any) -> str | None:
    """The component a node stands for: a ``$ref``, or ``allOf`` holding one ``$ref`` only."""
    if not isinstance(node, dict):
        return None
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    parts = node.get("allOf", [])
    if len(parts) == 1 and "properties" not in node:
        return ref_name(parts[0])
    return None


def required_of(node: Any) -> set[str]:
    """The ``required`` list of a schema node."""
    return set(node.get("required", [])) if isinstance(node, dict) else set()


def becomes_class(schema: Any) -> bool:
    """Whether the generator writes a model class for a component (objects and enums do).

    The others (``Nip``, ``ReferenceNumber``: a string with a pattern) are aliases of a type.
    """
    if not isinstance(schema, dict):
        return False
    return bool({"properties", "enum", "allOf", "oneOf", "anyOf"} & schema.keys()) or schema.get("type") == "object"


def _inline_alias(node: dict[str, Any], components: Schemas) -> dict[str, Any]:
    """A ref to a type alias as the alias's own schema, with the node's keys on top."""
    for _ in range(len(components)):  # an alias of an alias, never round a cycle
        name = ref_name(node)
        target = components.get(name) if name else None
        if not isinstance(target, dict) or becomes_class(target):
            break
        node = {**target, **{key: value for key, value in node.items() if key not in ("$ref", "allOf")}}
    return node


def diff_schema(old: Any, new: Any, subject: str, components: tuple[Schemas, Schemas]) -> list[Delta]:
    """Every difference between two versions of a schema node (refs compared by name)."""
    if old == new or not isinstance(old, dict) or not isinstance(new, dict):
        return []
    old_ref, new_ref = ref_name(old), ref_name(new)
    if old_ref != new_ref:  # a field now typed by an alias (string -> Nip) is compared as the alias
        old, new = _inline_alias(old, components[0]), _inline_alias(new, components[1])
        old_ref, new_ref = ref_name(old), ref_name(new)
    if old_ref != new_ref:
        detail = f"{old_ref or old.get('type', 'inline')} -> {new_ref or new.get('type', 'inline')}"
        return [Delta(REPLACED, subject, detail=detail, breaks_request=True, breaks_response=True)]
    deltas = _constraints(old, new, subject) + _enum(old, new, subject) + _properties(old, new, subject, components)
    deltas += _required(old, new, subject, components, new_ref)
    deltas += _children(old, new, subject, components, wrapper=new_ref is not None)
    if old.get("description") != new.get("description"):
        deltas.append(Delta(DESCRIPTION, subject))
    return deltas


def _show(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 24 else text[:20] + "…"


def _tightens(key: str, before: Any, after: Any) -> bool:
    """Whether a request valid under ``before`` may be rejected under ``after``."""
    try:
        if key in _LOWER_BOUNDS:
            return after is not None and (before is None or after > before)
        if key in _UPPER_BOUNDS:
            return after is not None and (before is None or after < before)
    except TypeError:
        return True
    tightened = {
        "type": after is not None,
        "format": after is not None,
        "multipleOf": after is not None,
        "pattern": after is not None,
        "nullable": bool(before) and not after,
        "additionalProperties": after is False,
        "uniqueItems": bool(after) and not before,
    }
    return tightened.get(key, False)


def _shown(key: str, before: Any, after: Any) -> str:
    if key in FLAGS:
        return f"now {key}" if after else f"no longer {key}"
    if key == "pattern":
        return "pattern " + ("added" if before is None else "removed" if after is None else "changed")
    return f"{key} {_show(before)} -> {_show(after)}"


def _constraint(key: str, before: Any, after: Any, subject: str) -> Delta:
    response = key in ("type", "format") or (key == "nullable" and bool(after) and not before)
    return Delta(
        CONSTRAINT,
        subject,
        key,
        _shown(key, before, after),
        breaks_request=_tightens(key, before, after),
        breaks_response=response,
    )


def _constraints(old: dict[str, Any], new: dict[str, Any], subject: str) -> list[Delta]:
    unknown = sorted((old.keys() | new.keys()) - WALKED - IGNORED - set(CONSTRAINTS))
    changed = []
    for key in (*CONSTRAINTS, *unknown):
        before, after = _value(old, key), _value(new, key)
        if before != after:
            changed.append(_constraint(key, before, after, subject))
    return changed


def _value(node: dict[str, Any], key: str) -> Any:
    """A constraint's value, ``None`` when absent or a flag at its default (``nullable: false``)."""
    value = node.get(key)
    return None if key in FLAGS and value is False else value


def _enum(old: dict[str, Any], new: dict[str, Any], subject: str) -> list[Delta]:
    if "enum" not in old or "enum" not in new:
        return []
    before, after = set(map(str, old["enum"])), set(map(str, new["enum"]))
    added = [Delta(ENUM_ADDED, subject, value) for value in sorted(after - before)]
    return added + [Delta(ENUM_REMOVED, subject, value, breaks_request=True) for value in sorted(before - after)]


def _properties(
    old: dict[str, Any], new: dict[str, Any], subject: str, components: tuple[Schemas, Schemas]
) -> list[Delta]:
    before, after = old.get("properties", {}), new.get("properties", {})
    deltas = []
    for name in sorted(after.keys() - before.keys()):
        required = name in required_of(new)
        deltas.append(
            Delta(FIELD_ADDED, subject, name, "required" if required else "optional", breaks_request=required)
        )
    for name in sorted(before.keys() - after.keys()):
        deltas.append(Delta(FIELD_REMOVED, subject, name, breaks_response=True))
    for name in sorted(before.keys() & after.keys()):
        deltas += diff_schema(before[name], after[name], f"{subject}.{name}", components)
    return deltas


def _required(
    old: dict[str, Any], new: dict[str, Any], subject: str, components: tuple[Schemas, Schemas], ref: str | None
) -> list[Delta]:
    """Required flags of fields present on both sides.

    A node that only wraps a component (``allOf: [$ref]``) often repeats the component's required
    list; changes the component itself explains are reported there, not again here.
    """
    fields = old.get("properties", {}).keys() & new.get("properties", {}).keys()
    added, removed = required_of(new) - required_of(old), required_of(old) - required_of(new)
    if ref is not None:
        fields = {
            *fields,
            *components[0].get(ref, {}).get("properties", {}),
            *components[1].get(ref, {}).get("properties", {}),
        }
        target_old, target_new = required_of(components[0].get(ref)), required_of(components[1].get(ref))
        added -= target_new
        removed -= target_old | target_new
    deltas = [Delta(NOW_REQUIRED, subject, name, breaks_request=True) for name in sorted(added & fields)]
    return deltas + [
        Delta(NO_LONGER_REQUIRED, subject, name, breaks_response=True) for name in sorted(removed & fields)
    ]


def _children(
    old: dict[str, Any], new: dict[str, Any], subject: str, components: tuple[Schemas, Schemas], wrapper: bool
) -> list[Delta]:
    deltas = diff_schema(old.get("items"), new.get("items"), f"{subject}[]", components)
    extra_old, extra_new = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(extra_old, dict) and isinstance(extra_new, dict):
        deltas += diff_schema(extra_old, extra_new, f"{subject}{{}}", components)
    elif extra_old != extra_new:
        deltas.append(_constraint("additionalProperties", extra_old, extra_new, subject))
    for key in () if wrapper else ("allOf", "oneOf", "anyOf"):
        before, after = old.get(key, []), new.get(key, [])
        if len(before) != len(after):
            deltas.append(_constraint(key, len(before), len(after), subject))
            continue
        for part_old, part_new in zip(before, after, strict=True):
            deltas += diff_schema(part_old, part_new, subject, components)
    return deltas
