"""Rate limits the emulator enforces, and the body of ``GET /rate-limits`` built from them.

A client that reads its limits and stays within them is never refused. They come from the spec's
operation table (each operation's ``x-rate-limits`` and limit group); the context limits of
``GET /limits/context`` live with the test data that may override them (``state/testdata.py``).
"""

from __future__ import annotations

from ksef_client._generated.operations import OPERATIONS, RateLimits
from ksef_client._throttle import Throttle

# Per client address over every operation. The spec gives this group only in the example of
# GET /rate-limits (75 per second, no minute or hour limit).
GLOBAL_RATE_LIMITS = RateLimits(75, None, None)
GLOBAL_GROUP = "global"


def rate_limit_groups() -> dict[str, RateLimits]:
    """Every limit group of the spec with its limits, and the global one."""
    groups: dict[str, RateLimits] = {}
    for operation in OPERATIONS.values():
        if operation.rate_limit_group and operation.rate_limits:
            groups.setdefault(operation.rate_limit_group, operation.rate_limits)
    groups[GLOBAL_GROUP] = GLOBAL_RATE_LIMITS
    return groups


def rate_limits_body(throttle: Throttle) -> dict[str, dict[str, int]]:
    """``EffectiveApiRateLimits``: what ``throttle`` lets through per window (``-1``: no limit)."""

    def effective(limit: int | None) -> int:
        return -1 if limit is None or throttle.scale <= 0 else throttle.allowed(limit)

    return {
        group: {"perSecond": effective(second), "perMinute": effective(minute), "perHour": effective(hour)}
        for group, (second, minute, hour) in rate_limit_groups().items()
    }
