"""What changed between two versions of the KSeF spec, and which changes break clients.

``python -m generator.spec_diff OLD NEW [--overlay generator/overlay.yaml]`` prints the report:
operations added and removed, parameters added, removed or made required, request-body fields
made required, enum values added and removed, response schemas changed; breaking changes are
marked ``[BREAKING]``. The overlay gap lists new operations without an English name.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.preprocess import load_overlay, operation_key

METHODS = ("get", "put", "post", "delete", "patch")


@dataclass
class Change:
    """One difference; ``breaking`` when a client written for the old spec may fail."""

    kind: str
    where: str
    detail: str = ""
    breaking: bool = False

    def __str__(self) -> str:
        mark = "[BREAKING] " if self.breaking else ""
        return f"{mark}{self.kind}: {self.where}" + (f" ({self.detail})" if self.detail else "")


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
        """The human-readable report."""
        lines = [
            f"KSeF spec {self.old_version} -> {self.new_version}: {len(self.changes)} changes, "
            f"{len(self.breaking)} breaking"
        ]
        lines += [f"  {change}" for change in sorted(self.changes, key=lambda c: (not c.breaking, c.kind, c.where))]
        if self.overlay_gaps:
            lines.append("Operations without an English name in generator/overlay.yaml:")
            lines += [f"  {gap}" for gap in self.overlay_gaps]
        return "\n".join(lines)


def _operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation_key(method, path): operation
        for path, item in spec.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    }


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _parameters(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, bool]:
    found = {}
    for raw in operation.get("parameters", []):
        parameter = _resolve(spec, raw)
        found[f"{parameter['in']}:{parameter['name']}"] = bool(parameter.get("required"))
    return found


def _required_fields(spec: dict[str, Any], schema: Any) -> set[str]:
    resolved = _resolve(spec, schema)
    if not isinstance(resolved, dict):
        return set()
    required = set(resolved.get("required", []))
    for part in resolved.get("allOf", []):
        required |= _required_fields(spec, part)
    return required


def _json_schema(spec: dict[str, Any], holder: dict[str, Any] | None) -> Any:
    content = (holder or {}).get("content", {})
    media = content.get("application/json") or next(iter(content.values()), None)
    return media.get("schema") if media else None


def _compare_operation(key: str, old: dict[str, Any], new: dict[str, Any], specs: tuple[Any, Any]) -> list[Change]:
    old_spec, new_spec = specs
    changes = []
    old_params, new_params = _parameters(old_spec, old), _parameters(new_spec, new)
    for name in sorted(new_params.keys() - old_params.keys()):
        changes.append(
            Change(
                "parameter added",
                f"{key} {name}",
                "required" if new_params[name] else "optional",
                breaking=new_params[name],
            )
        )
    for name in sorted(old_params.keys() - new_params.keys()):
        changes.append(Change("parameter removed", f"{key} {name}", breaking=True))
    for name in sorted(old_params.keys() & new_params.keys()):
        if new_params[name] and not old_params[name]:
            changes.append(Change("parameter now required", f"{key} {name}", breaking=True))
    old_body, new_body = _json_schema(old_spec, old.get("requestBody")), _json_schema(new_spec, new.get("requestBody"))
    for name in sorted(_required_fields(new_spec, new_body) - _required_fields(old_spec, old_body)):
        changes.append(Change("request field now required", f"{key} {name}", breaking=True))
    for status in sorted(set(old.get("responses", {})) | set(new.get("responses", {}))):
        before = _json_schema(old_spec, old.get("responses", {}).get(status))
        after = _json_schema(new_spec, new.get("responses", {}).get(status))
        if json.dumps(_resolve(old_spec, before), sort_keys=True) != json.dumps(
            _resolve(new_spec, after), sort_keys=True
        ):
            changes.append(Change("response schema changed", f"{key} {status}"))
    return changes


def _canonical(spec: dict[str, Any], schema: Any) -> str:
    return json.dumps(_resolve(spec, schema), sort_keys=True)


def _compare_enums(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> list[Change]:
    changes = []
    old_schemas = old_spec.get("components", {}).get("schemas", {})
    for name, schema in sorted(new_spec.get("components", {}).get("schemas", {}).items()):
        if "enum" not in schema or "enum" not in old_schemas.get(name, {}):
            continue
        before, after = set(map(str, old_schemas[name]["enum"])), set(map(str, schema["enum"]))
        for value in sorted(after - before):
            changes.append(Change("enum value added", f"{name}.{value}"))
        for value in sorted(before - after):
            changes.append(Change("enum value removed", f"{name}.{value}", breaking=True))
    return changes


def api_version(spec: dict[str, Any]) -> str:
    """The API version KSeF writes in the description ("Wersja API: 2.7.0"), else ``info.version``."""
    info = spec.get("info", {})
    match = re.search(r"Wersja API:\**\s*([0-9][0-9A-Za-z.\-]*)", str(info.get("description", "")))
    return match[1] if match else str(info.get("version"))


def diff_specs(old_spec: dict[str, Any], new_spec: dict[str, Any], overlay_path: Path | None = None) -> Report:
    """Compare two specs (paths with or without the legacy ``/api/v2`` prefix)."""
    report = Report(api_version(old_spec), api_version(new_spec))
    old_ops, new_ops = _operations(old_spec), _operations(new_spec)
    for key in sorted(new_ops.keys() - old_ops.keys()):
        report.changes.append(Change("operation added", key))
    for key in sorted(old_ops.keys() - new_ops.keys()):
        report.changes.append(Change("operation removed", key, breaking=True))
    for key in sorted(old_ops.keys() & new_ops.keys()):
        report.changes += _compare_operation(key, old_ops[key], new_ops[key], (old_spec, new_spec))
    report.changes += _compare_enums(old_spec, new_spec)
    if overlay_path is not None:
        named = load_overlay(overlay_path).operations
        report.overlay_gaps = sorted(key for key in new_ops if key not in named)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--overlay", type=Path, default=Path(__file__).with_name("overlay.yaml"))
    args = parser.parse_args(argv)
    old, new = (json.loads(path.read_text(encoding="utf-8")) for path in (args.old, args.new))
    report = diff_specs(old, new, args.overlay)
    print(report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
