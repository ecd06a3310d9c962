"""The spec's facts about each operation (the generated table), found by request or by module.

Rate limits, page-size bounds and which POSTs are safe to repeat come from here, so a new spec
cannot leave a hand-typed copy of them stale.
"""

from __future__ import annotations

import re
from functools import lru_cache
from types import ModuleType

from ksef_client._generated.operations import OPERATIONS, Operation

_GENERATED_API = "ksef_client._generated.api."


@lru_cache(maxsize=1)
def _routes() -> dict[tuple[str, int], tuple[tuple[re.Pattern[str], str, Operation], ...]]:
    """The operations by method and number of path segments (each request is matched against the
    few of its shape, not all 83), literal paths before templated ones within each, so
    /sessions/online never matches /sessions/{ref}."""
    rows = sorted(OPERATIONS.items(), key=lambda row: row[1].path.count("{"))
    routes: dict[tuple[str, int], list[tuple[re.Pattern[str], str, Operation]]] = {}
    for key, op in rows:
        pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(op.path)) + "$")
        routes.setdefault((op.method, op.path.count("/")), []).append((pattern, key, op))
    return {shape: tuple(candidates) for shape, candidates in routes.items()}


# Every request asks more than once (its rate-limit group, whether it takes a token, whether a
# repeat is safe), and a session's requests share their paths: a cache answers the repeats.
@lru_cache(maxsize=1024)
def find_operation(method: str, path: str) -> tuple[str, Operation] | None:
    """``(tag.operation_id, operation)`` of a request; ``path`` is the part after ``/v2``."""
    for pattern, key, operation in _routes().get((method, path.count("/")), ()):
        if pattern.match(path):
            return key, operation
    return None


def operation_of(module: ModuleType) -> Operation:
    """The table's row of a generated operation module (``..._generated.api.<tag>.<operation_id>``)."""
    return OPERATIONS[module.__name__.removeprefix(_GENERATED_API)]


def page_size_bounds(module: ModuleType) -> tuple[int, int]:
    """``(minimum, maximum)`` of a paged operation's ``pageSize`` in the spec."""
    bounds = operation_of(module).page_size
    if bounds is None:
        raise ValueError(f"{module.__name__} has no pageSize parameter")
    return bounds
