"""When to retry and how long to wait: pure functions, shared by the sync and async clients."""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass

import httpx

from ksef_client.errors import RetryAfterTooLongError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# POSTs that only read (queries) or only mint a value (challenge): safe to repeat like a GET.
_SAFE_POST_SUFFIXES = ("/query", "/auth/challenge", "/certificates/retrieve")


def is_idempotent(request: httpx.Request) -> bool:
    """Whether repeating ``request`` cannot change anything twice."""
    if request.method in IDEMPOTENT_METHODS:
        return True
    path = request.url.path
    return request.method == "POST" and ("/query/" in path or path.endswith(_SAFE_POST_SUFFIXES))


RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        backoff: first backoff delay in seconds, doubled each attempt, with full jitter.
        max_backoff: cap of one backoff delay.
        max_retry_after: longest ``Retry-After`` a 429 may ask for; longer raises
            ``RetryAfterTooLongError`` instead of blocking the caller.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 120.0

    def backoff_delay(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for retry number ``attempt`` (0-based)."""
        return rng.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or HTTP date); ``None`` if unusable.

    ``now`` is a POSIX timestamp, needed only for the HTTP-date form.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or now is None:
            return None
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_delay_for_response(
    policy: RetryPolicy, request: httpx.Request, response: httpx.Response, attempt: int, rng: random.Random, now: float
) -> float | None:
    """Seconds to wait before retrying after ``response``, or ``None`` to return it as it is.

    A 429 is always safe to retry (KSeF did not process the request) and honours Retry-After;
    5xx answers are retried only for idempotent methods.
    """
    if attempt >= policy.max_retries:
        return None
    if response.status_code == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        if retry_after is None:
            return policy.backoff_delay(attempt, rng)
        if retry_after > policy.max_retry_after:
            raise RetryAfterTooLongError(retry_after, policy.max_retry_after)
        return retry_after
    if response.status_code in RETRY_STATUSES and is_idempotent(request):
        return policy.backoff_delay(attempt, rng)
    return None


def retry_delay_for_error(
    policy: RetryPolicy, request: httpx.Request, error: httpx.TransportError, attempt: int, rng: random.Random
) -> float | None:
    """Seconds to wait before retrying after a transport error, or ``None`` to raise it.

    A connection that was never made cannot have reached KSeF, so any method may retry it;
    other failures (reset, read timeout) are retried only for idempotent methods.
    """
    if attempt >= policy.max_retries:
        return None
    never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if never_sent or is_idempotent(request):
        return policy.backoff_delay(attempt, rng)
    return None
