"""What changed between two versions of the KSeF spec, grouped, breaking first, with the code it touches.

``python -m generator.spec_diff OLD NEW [--markdown]`` prints the report. Component schemas are
compared by name (schemas, fields, required flags, enum values, constraints, descriptions); a
change inside a component is reported once, with the operations that reach it ("in the 403
answer of 62 operations"). Operations are compared for what is not a shared component: added and
removed operations, parameters, inline request and response schemas, answers, rate limits.
Breaking changes (for a client written against OLD) come first; each change names the SDK,
emulator and docs files that use its operation or schema. The overlay gap lists new operations
without an English name in ``generator/overlay.yaml``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator import spec_report
from generator.code_usage import CodeIndex
from generator.preprocess import OperationName, load_overlay, operation_key
from generator.schema_diff import CONSTRAINT, DESCRIPTION, REPLACED, Delta, Schemas, becomes_class, diff_schema
from ksef_client.spec_version import api_version

METHODS = ("get", "put", "post", "delete", "patch")
ROOT = Path(__file__).resolve().parent.parent
OVERLAY = Path(__file__).with_name("overlay.yaml")
# A change in a component reaching more operations than this is tagged with the component's own
# users only (the users of 62 operations would say nothing).
MAX_OPERATIONS_TAGGED = 3
REQUEST_LOCATIONS = ("request", "parameters")

Location = tuple[str, str]
"""An operation key and where in it: ``"request"``, ``"parameters"``, ``"operation"`` or a status."""


@dataclass
class Change:
    """One difference; ``breaking`` when a client written for the old spec may fail.

    ``subject`` is the component (``"InvoicePackage"``, ``"InvoicePackage.parts[]"``) or operation
    (``"GET /rate-limits"``, ``"GET /rate-limits 200"``) it is about, ``item`` the field, enum
    value, parameter or constraint; ``reaches`` the operation locations it affects and
    ``affects`` the hand-written files using them.
    """

    kind: str
    where: str
    detail: str = ""
    breaking: bool = False
    subject: str = ""
    item: str = ""
    reaches: tuple[Location, ...] = ()
    affects: tuple[str, ...] = ()

    def __str__(self) -> str:
        mark = "[BREAKING] " if self.breaking else ""
        return f"{mark}{self.kind}: {self.where}" + (f" ({self.detail})" if self.detail else "")

    @property
    def operations(self) -> list[str]:
        """The operations this change reaches."""
        return sorted({operation for operation, _ in self.reaches})


@dataclass
class Report:
    """All changes, and the operations the overlay cannot name yet."""

    old_version: str
    new_version: str
    changes: list[Change] = field(default_factory=list)
    overlay_gaps: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        """The changes that may break clients."""
        return [c for c in self.changes if c.breaking]

    def of_kind(self, kind: str) -> list[Change]:
        """Changes of one kind, e.g. ``"operation added"``."""
        return [c for c in self.changes if c.kind == kind]

    def render(self) -> str:
        """The report for a terminal: grouped, breaking changes first."""
        return spec_report.render(self)

    def render_markdown(self) -> str:
        """The same report as Markdown, for CHANGELOG.md."""
        return spec_report.render(self, markdown=True)


def _operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation_key(method, path): operation
        for path, item in spec.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    }


def _schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(spec.get("components", {}).get("schemas", {}))


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _parameters(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for raw in operation.get("parameters", []):
        parameter = _resolve(spec, raw)
        found[f"{parameter['in']}:{parameter['name']}"] = parameter
    return found


def _json_schema(spec: dict[str, Any], holder: dict[str, Any] | None) -> Any:
    content = (_resolve(spec, holder) or {}).get("content", {})
    media = content.get("application/json") or next(iter(content.values()), None)
    return media.get("schema") if media else None


def _refs(node: Any) -> Iterator[str]:
    """Names of the component schemas a node refers to directly (examples skipped)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[-1]
        for key, value in node.items():
            if key not in ("example", "examples"):
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _closure(schemas: dict[str, Any]) -> dict[str, set[str]]:
    """For each component, the components it reaches through refs (itself included)."""
    direct = {name: set(_refs(schema)) for name, schema in schemas.items()}
    closure = {}
    for name in schemas:
        seen, stack = {name}, [name]
        while stack:
            for ref in direct.get(stack.pop(), ()):
                if ref not in seen:
                    seen.add(ref)
                    stack.append(ref)
        closure[name] = seen
    return closure


def _locations(spec: dict[str, Any]) -> Iterator[tuple[Location, Any]]:
    """Every place an operation holds schemas: parameters, request body, each answer's body."""
    for key, operation in _operations(spec).items():
        yield (key, "parameters"), [_resolve(spec, p).get("schema") for p in operation.get("parameters", [])]
        yield (key, "request"), (_resolve(spec, operation.get("requestBody")) or {}).get("content")
        for status, answer in operation.get("responses", {}).items():
            yield (key, str(status)), (_resolve(spec, answer) or {}).get("content")


def _reach(spec: dict[str, Any]) -> dict[str, set[Location]]:
    """For each component, the operation locations that reach it."""
    reach: dict[str, set[Location]] = {}
    closure = _closure(_schemas(spec))
    for location, node in _locations(spec):
        for ref in set(_refs(node)):
            for name in closure.get(ref, {ref}):
                reach.setdefault(name, set()).add(location)
    return reach


def _breaks(delta: Delta, locations: set[Location] | tuple[Location, ...]) -> bool:
    request = any(label in REQUEST_LOCATIONS for _, label in locations)
    response = any(label not in REQUEST_LOCATIONS for _, label in locations)
    return (delta.breaks_request and request) or (delta.breaks_response and response)


def _from_delta(delta: Delta, locations: set[Location] | tuple[Location, ...]) -> Change:
    named = delta.kind not in (CONSTRAINT, REPLACED, DESCRIPTION)
    where = f"{delta.subject}.{delta.item}" if delta.item and named else delta.subject
    return Change(
        delta.kind, where, delta.detail, _breaks(delta, locations), delta.subject, delta.item, tuple(sorted(locations))
    )


def _op_change(kind: str, key: str, item: str = "", detail: str = "", breaking: bool = False) -> Change:
    where = f"{key} {item}" if item else key
    return Change(kind, where, detail, breaking, key, item, ((key, "operation"),))


def _compare_parameters(key: str, old: dict[str, Any], new: dict[str, Any], specs: tuple[Any, Any]) -> list[Change]:
    old_params, new_params = _parameters(specs[0], old), _parameters(specs[1], new)
    changes = []
    for name in sorted(new_params.keys() - old_params.keys()):
        required = bool(new_params[name].get("required"))
        changes.append(_op_change("parameter added", key, name, "required" if required else "optional", required))
    for name in sorted(old_params.keys() - new_params.keys()):
        changes.append(_op_change("parameter removed", key, name, breaking=True))
    location = ((key, "parameters"),)
    for name in sorted(old_params.keys() & new_params.keys()):
        if new_params[name].get("required") and not old_params[name].get("required"):
            changes.append(_op_change("parameter now required", key, name, breaking=True))
        deltas = diff_schema(
            old_params[name].get("schema"), new_params[name].get("schema"), f"{key} {name}", _components(specs)
        )
        changes += [_from_delta(delta, location) for delta in deltas]
        if old_params[name].get("description") != new_params[name].get("description"):
            changes.append(Change(DESCRIPTION, f"{key} {name}", subject=f"{key} {name}", reaches=location))
    return changes


def _components(specs: tuple[Any, Any]) -> tuple[Schemas, Schemas]:
    return _schemas(specs[0]), _schemas(specs[1])


def _compare_bodies(key: str, old: dict[str, Any], new: dict[str, Any], specs: tuple[Any, Any]) -> list[Change]:
    """Inline parts of the request and answer schemas (components are compared on their own)."""
    holders = [("request", old.get("requestBody"), new.get("requestBody"))]
    old_answers, new_answers = old.get("responses", {}), new.get("responses", {})
    holders += [
        (str(status), old_answers.get(status), new_answers.get(status))
        for status in sorted(old_answers.keys() | new_answers.keys())
    ]
    changes = []
    for label, before, after in holders:
        subject = f"{key} {label}"
        if before is None or after is None:
            changes += _presence(key, label, before, after, specs[1])
            continue
        deltas = diff_schema(_json_schema(specs[0], before), _json_schema(specs[1], after), subject, _components(specs))
        changes += [_from_delta(delta, ((key, label),)) for delta in deltas]
        if _resolve(specs[0], before).get("description") != _resolve(specs[1], after).get("description"):
            changes.append(Change(DESCRIPTION, subject, subject=subject, reaches=((key, label),)))
    return changes


def _presence(key: str, label: str, before: Any, after: Any, new_spec: dict[str, Any]) -> list[Change]:
    """A request body or an answer found in one spec only."""
    if before is None and after is None:
        return []
    if label != "request":
        return [_op_change("response added" if before is None else "response removed", key, label)]
    if after is None:
        return [_op_change("request body removed", key)]
    required = bool(_resolve(new_spec, after).get("required"))
    return [_op_change("request body added", key, detail="required" if required else "optional", breaking=required)]


def _limits(value: Any) -> str:
    if not isinstance(value, dict):
        return "none"
    return "/".join(str(value.get(window, "-")) for window in ("perSecond", "perMinute", "perHour"))


def _compare_operation(key: str, old: dict[str, Any], new: dict[str, Any], specs: tuple[Any, Any]) -> list[Change]:
    changes = _compare_parameters(key, old, new, specs) + _compare_bodies(key, old, new, specs)
    if old.get("x-rate-limits") != new.get("x-rate-limits"):
        detail = f"{_limits(old.get('x-rate-limits'))} -> {_limits(new.get('x-rate-limits'))}"
        changes.append(_op_change("rate limits changed", key, detail=detail))
    for spec_key, kind in (("x-required-permissions", "permissions changed"), ("security", "security changed")):
        if old.get(spec_key) != new.get(spec_key):
            detail = f"{json.dumps(old.get(spec_key))} -> {json.dumps(new.get(spec_key))}"
            changes.append(_op_change(kind, key, detail=detail))
    if (old.get("summary"), old.get("description")) != (new.get("summary"), new.get("description")):
        changes.append(Change(DESCRIPTION, key, subject=key, reaches=((key, "operation"),)))
    return changes


def _compare_components(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> list[Change]:
    """Component schemas by name; a change reaches the operations of the new spec using the component."""
    old_schemas, new_schemas = _schemas(old_spec), _schemas(new_spec)
    reach, old_reach = _reach(new_spec), _reach(old_spec)
    changes = []
    for name in sorted(new_schemas.keys() - old_schemas.keys()):
        changes.append(Change("schema added", name, subject=name, reaches=tuple(sorted(reach.get(name, ())))))
    for name in sorted(old_schemas.keys() - new_schemas.keys()):
        changes.append(Change("schema removed", name, subject=name, reaches=tuple(sorted(old_reach.get(name, ())))))
    for name in sorted(old_schemas.keys() & new_schemas.keys()):
        deltas = diff_schema(old_schemas[name], new_schemas[name], name, (old_schemas, new_schemas))
        changes += [_from_delta(delta, reach.get(name, set())) for delta in deltas]
    return changes


def component_of(subject: str, schemas: dict[str, Any]) -> str | None:
    """The component a change's subject lies in (``"InvoicePackage.parts[]"`` -> ``"InvoicePackage"``)."""
    first = re.split(r"[.\[{ ]", subject, maxsplit=1)[0]
    return first if first in schemas else None


def _affects(
    change: Change, index: CodeIndex, names: dict[str, OperationName], schemas: dict[str, Any]
) -> tuple[str, ...]:
    component = component_of(change.subject, schemas)
    found: set[str] = set()
    if component is not None:
        found.update(index.schema_users(component, becomes_class(schemas[component])))
    if component is None or len(change.operations) <= MAX_OPERATIONS_TAGGED:
        for operation in change.operations:
            found.update(index.operation_users(operation, names.get(operation)))
    return tuple(sorted(found))


def tag_changes(report: Report, specs: tuple[Any, Any], root: Path, overlay_path: Path | None) -> None:
    """Set ``affects`` on every change but text-only ones: the files under ``root`` using it."""
    index = CodeIndex.scan(root)
    names = load_overlay(overlay_path or root / "generator" / "overlay.yaml").operations
    schemas = {**_schemas(specs[0]), **_schemas(specs[1])}
    for change in report.changes:
        if change.kind != DESCRIPTION:
            change.affects = _affects(change, index, names, schemas)


def diff_specs(
    old_spec: dict[str, Any], new_spec: dict[str, Any], overlay_path: Path | None = None, code_root: Path | None = None
) -> Report:
    """Compare two specs (paths with or without the legacy ``/api/v2`` prefix).

    With ``code_root`` (a checkout of this repository) each change names the files that use it.
    """
    report = Report(api_version(old_spec), api_version(new_spec))
    old_ops, new_ops = _operations(old_spec), _operations(new_spec)
    for key in sorted(new_ops.keys() - old_ops.keys()):
        report.changes.append(_op_change("operation added", key))
    for key in sorted(old_ops.keys() - new_ops.keys()):
        report.changes.append(_op_change("operation removed", key, breaking=True))
    for key in sorted(old_ops.keys() & new_ops.keys()):
        report.changes += _compare_operation(key, old_ops[key], new_ops[key], (old_spec, new_spec))
    report.changes += _compare_components(old_spec, new_spec)
    if overlay_path is not None:
        named = load_overlay(overlay_path).operations
        report.overlay_gaps = sorted(key for key in new_ops if key not in named)
    if code_root is not None:
        tag_changes(report, (old_spec, new_spec), code_root, overlay_path)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--overlay", type=Path, default=OVERLAY)
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout searched for the code each change affects")
    parser.add_argument("--markdown", action="store_true", help="Markdown for CHANGELOG.md")
    args = parser.parse_args(argv)
    old, new = (json.loads(path.read_text(encoding="utf-8")) for path in (args.old, args.new))
    report = diff_specs(old, new, args.overlay, args.root)
    print(report.render_markdown() if args.markdown else report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
