"""The limits the emulator enforces, and the bodies of ``GET /limits/context`` and ``GET /rate-limits``.

Both answers are built from the values the emulator checks, so a client that reads its limits
and stays within them is never refused. Rate limits come from the spec's operation table (each
operation's ``x-rate-limits`` and limit group); context limits are KSeF TEST's defaults, replaced
per context by ``POST /testdata/limits/context/session``.
"""

from __future__ import annotations

import copy
from typing import Any

from ksef_client._generated.operations import OPERATIONS, RateLimits
from ksef_client._throttle import Throttle

# Per client address over every operation. The spec gives this group only in the example of
# GET /rate-limits (75 per second, no minute or hour limit).
GLOBAL_RATE_LIMITS = RateLimits(75, None, None)
GLOBAL_GROUP = "global"

DEFAULT_CONTEXT_LIMITS: dict[str, dict[str, int]] = {
    "onlineSession": {"maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 3, "maxInvoices": 10_000},
    "batchSession": {"maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 3, "maxInvoices": 10_000},
    "collectiveIdentifier": {"maxInvoices": 500},
}
SESSION_KIND_LIMITS = {"Online": "onlineSession", "Batch": "batchSession"}


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


def context_limits(override: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """``EffectiveContextLimits``: the defaults, or a test-data override (a ``SetSessionLimitsRequest``)."""
    limits = copy.deepcopy(DEFAULT_CONTEXT_LIMITS)
    for group, values in (override or {}).items():
        if group in limits and isinstance(values, dict):
            limits[group].update({k: int(v) for k, v in values.items() if k in limits[group]})
    return limits
