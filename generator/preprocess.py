"""Rewrite the upstream spec into what openapi-python-client can generate well.

Pure functions over the spec dict; nothing here touches the disk except ``load_overlay``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# The two oldest published specs (API 2.0.0 RC) prefix every path with /api/v2 and have no servers.
LEGACY_PATH_PREFIX = "/api/v2"
XML = "application/xml"
FALLBACK_TAG = "other"


@dataclass(frozen=True)
class OperationName:
    """Where an operation lands in the generated package: ``api/<tag>/<operation_id>.py``."""

    tag: str
    operation_id: str

    def __str__(self) -> str:
        return f"{self.tag}.{self.operation_id}"


@dataclass(frozen=True)
class Overlay:
    """Our English names for the operations and the spec's tags, and the POSTs safe to repeat."""

    operations: dict[str, OperationName]
    tags: dict[str, str]
    repeat_safe: frozenset[str] = frozenset()


@dataclass
class PreprocessResult:
    """The rewritten spec plus what the overlay did not know."""

    spec: dict[str, Any]
    names: dict[str, OperationName] = field(default_factory=dict)
    unnamed: list[str] = field(default_factory=list)


def load_overlay(path: Path) -> Overlay:
    """Read ``overlay.yaml``; names must be ``tag.operation_id`` in snake_case."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    operations: dict[str, OperationName] = {}
    for key, dotted in raw["operations"].items():
        tag, _, operation_id = dotted.partition(".")
        for part in (tag, operation_id):
            if not re.fullmatch(r"[a-z][a-z0-9_]*", part):
                raise ValueError(f"overlay name {dotted!r} for {key!r} is not tag.snake_case_id")
        operations[operation_key(*key.split(" ", 1))] = OperationName(tag, operation_id)
    return Overlay(operations=operations, tags=dict(raw["tags"]), repeat_safe=frozenset(raw.get("repeat_safe") or ()))


def operation_key(method: str, path: str) -> str:
    """``"GET /sessions"``: the overlay's key, independent of the legacy /api/v2 prefix."""
    if path.startswith(LEGACY_PATH_PREFIX + "/"):
        path = path[len(LEGACY_PATH_PREFIX) :]
    return f"{method.upper()} {path}"


def derive_operation_id(method: str, path: str) -> str:
    """A deterministic snake_case name for an operation the overlay does not know."""
    key = operation_key(method, path)
    words = re.findall(r"[A-Za-z0-9]+", key.split(" ", 1)[1])
    snake = [re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", w).lower() for w in words]
    return "_".join([method.lower(), *snake])


def iter_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, operation) of the spec, in spec order."""
    return [
        (method, path, operation)
        for path, item in spec.get("paths", {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def preprocess(spec: dict[str, Any], overlay: Overlay) -> PreprocessResult:
    """Return a rewritten copy of ``spec``; the input is not modified."""
    result = PreprocessResult(spec=copy.deepcopy(spec))
    name_operations(result, overlay)
    xml_payloads_as_binary(result.spec)
    return result


def name_operations(result: PreprocessResult, overlay: Overlay) -> None:
    """Give every operation an English tag and operationId, deriving names the overlay lacks."""
    for method, path, operation in iter_operations(result.spec):
        key = operation_key(method, path)
        name = overlay.operations.get(key)
        if name is None:
            result.unnamed.append(key)
            spec_tags = operation.get("tags") or []
            tag = overlay.tags.get(spec_tags[0], FALLBACK_TAG) if spec_tags else FALLBACK_TAG
            name = OperationName(tag, derive_operation_id(method, path))
        operation["tags"] = [name.tag]
        operation["operationId"] = name.operation_id
        result.names[key] = name
    result.spec["tags"] = [{"name": tag} for tag in sorted({n.tag for n in result.names.values()})]


def xml_payloads_as_binary(spec: dict[str, Any]) -> None:
    """Make XML bodies binary, so the generator keeps those operations (it skips application/xml).

    Together with the config's ``content_type_overrides`` the XAdES call takes a ``File`` sent as
    ``application/xml`` and UPO/invoice downloads return the raw bytes.
    """
    for _, _, operation in iter_operations(spec):
        bodies = [operation.get("requestBody", {})]
        bodies += list(operation.get("responses", {}).values())
        for body in bodies:
            media = body.get("content", {}).get(XML)
            if media is not None:
                media["schema"] = {"type": "string", "format": "binary"}
                media.pop("example", None)
                media.pop("examples", None)
