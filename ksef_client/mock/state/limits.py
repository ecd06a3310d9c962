"""Rate limits the emulator enforces, and the body of ``GET /rate-limits`` built from them.

A client that reads its limits and stays within them is never refused. They come from the spec's
operation table (each operation's ``x-rate-limits`` and limit group); the context limits of
``GET /limits/context`` live with the test data that may override them (``state/testdata.py``).
"""

from __future__ import annotations

import functools
from typing import Any

from ksef_client._generated.operations import OPERATIONS, RateLimits
from ksef_client._throttle import GLOBAL_GROUP, GLOBAL_RATE_LIMITS, Throttle
from ksef_client.mock.validation import component_schema


def rate_limit_groups() -> dict[str, RateLimits]:
    """Every limit group of the spec with its limits, and the global one (per client address over
    every operation; the SDK's pacer keeps under the same values)."""
    groups: dict[str, RateLimits] = {}
    for operation in OPERATIONS.values():
        if operation.rate_limit_group and operation.rate_limits:
            groups.setdefault(operation.rate_limit_group, operation.rate_limits)
    groups[GLOBAL_GROUP] = GLOBAL_RATE_LIMITS
    return groups


def rate_limits_body(throttle: Throttle, overrides: dict[str, RateLimits]) -> dict[str, dict[str, int]]:
    """``EffectiveApiRateLimits``: what ``throttle`` lets through per window (``-1``: no limit),
    the groups in ``overrides`` (a context's own, ``/testdata/rate-limits``) as they were set."""

    def effective(limit: int | None, exact: bool) -> int:
        return -1 if limit is None or throttle.scale <= 0 else throttle.allowed(limit, exact=exact)

    groups = {**rate_limit_groups(), **overrides}
    return {
        group: {
            "perSecond": effective(second, group in overrides),
            "perMinute": effective(minute, group in overrides),
            "perHour": effective(hour, group in overrides),
        }
        for group, (second, minute, hour) in groups.items()
    }


def rate_limits_override(body: dict[str, Any]) -> dict[str, RateLimits]:
    """An ``ApiRateLimitsOverride`` (already checked against the spec, which lets other keys
    through: those are left out) as limits per group; a negative value is no limit, as ``-1``
    is in ``GET /rate-limits``."""

    def limit(value: int) -> int | None:
        return value if value >= 0 else None

    return {
        group: RateLimits(limit(values["perSecond"]), limit(values["perMinute"]), limit(values["perHour"]))
        for group, values in body.items()
        if group in overridable_groups()
    }


def production_rate_limits() -> dict[str, RateLimits]:
    """The limits of KSeF's production, for ``POST /testdata/rate-limits/production``: the spec's
    (its tables are production's; ``limity/limity-api.md`` puts TEST's defaults at ten times those)."""
    return {group: limits for group, limits in rate_limit_groups().items() if group in overridable_groups()}


@functools.cache
def overridable_groups() -> frozenset[str]:
    """The groups a context may override (``ApiRateLimitsOverride`` in the spec; the rest, such as
    anonymous, global and the session closes, are KSeF's own)."""
    return frozenset(component_schema("ApiRateLimitsOverride")["required"])
