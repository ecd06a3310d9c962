"""Client-side throttling from each operation's ``x-rate-limits`` in the spec.

KSeF counts requests per context and IP in sliding windows of a second, a minute and an hour,
per limit group (the operations of a group, e.g. ``other``, share one budget); a client that waits
before exceeding them never sees a 429. The limits and groups come from the generated operation
table, not from hand-typed numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ksef_client._generated.operations import RateLimits
from ksef_client._operations import find_operation

_WINDOWS = (1.0, 60.0, 3600.0)


def match_operation(method: str, path: str) -> tuple[str, RateLimits | None] | None:
    """The limit group (``tag.operation_id`` where the spec names none) and limits of a request.

    ``path`` is the request's path after ``/v2``.
    """
    found = find_operation(method, path)
    if found is None:
        return None
    key, operation = found
    return operation.rate_limit_group or key, operation.rate_limits


@dataclass
class Throttle:
    """Sliding-window limiter; ``scale`` multiplies every limit (``0`` switches throttling off)."""

    scale: float = 1.0
    _calls: dict[str, deque[float]] = field(default_factory=dict)

    def allowed(self, limit: int, *, exact: bool = False) -> int:
        """Calls allowed in a window whose spec limit is ``limit``, at this throttle's scale (or,
        ``exact``, as given: a limit set for a context rather than the spec's)."""
        return max(1, limit if exact else int(limit * self.scale))

    def delay(self, key: str, limits: RateLimits | None, now: float, *, exact: bool = False) -> float:
        """Seconds to wait before a call of ``key`` at ``now``; 0 records the call as made.
        ``exact`` takes ``limits`` as they are, not times ``scale`` (still none at scale 0)."""
        if limits is None or self.scale <= 0:
            return 0.0
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - _WINDOWS[-1]:
            calls.popleft()
        wait = 0.0
        for window, limit in zip(_WINDOWS, limits, strict=True):
            if limit is None:
                continue
            allowed = self.allowed(limit, exact=exact)
            in_window = [t for t in calls if t > now - window] if window < _WINDOWS[-1] else calls
            if len(in_window) >= allowed:
                oldest = list(in_window)[-allowed]
                wait = max(wait, oldest + window - now)
        if wait <= 0:
            calls.append(now)
        return max(0.0, wait)
