"""httpx transports that throttle and retry; only the send loop differs between sync and async.

The decisions are the pure functions of ``_retry`` and ``_throttle``; every request that goes
through a ``KSeF`` client, the generated ``ksef.raw`` calls included, passes through here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import httpx

from ksef_client._retry import RetryPolicy, retry_delay_for_error, retry_delay_for_response
from ksef_client._throttle import Throttle, match_operation

log = logging.getLogger("ksef_client")


@dataclass
class SendState:
    """What both transports share: policy, throttle, clocks and counters (for reports)."""

    policy: RetryPolicy
    throttle: Throttle
    api_path_prefix: str
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    retries: int = 0
    throttled_seconds: float = 0.0
    requests_sent: int = 0

    def throttle_delay(self, request: httpx.Request) -> float:
        """Wait needed before sending ``request`` under the spec's rate limits."""
        path = request.url.path
        if not path.startswith(self.api_path_prefix):
            return 0.0  # presigned storage URLs are not rate-limited
        matched = match_operation(request.method, path[len(self.api_path_prefix) :] or "/")
        if matched is None:
            return 0.0
        return self.throttle.delay(matched[0], matched[1], self.clock())

    def after_response(self, request: httpx.Request, response: httpx.Response, attempt: int) -> float | None:
        delay = retry_delay_for_response(self.policy, request, response, attempt, self.rng, self.wall_clock())
        if delay is not None:
            self.retries += 1
            log.info("%s %s -> %s, retry %d in %.2f s", request.method, request.url.path, response.status_code,
                     attempt + 1, delay)  # fmt: skip
        return delay

    def after_error(self, request: httpx.Request, error: httpx.TransportError, attempt: int) -> float | None:
        delay = retry_delay_for_error(self.policy, request, error, attempt, self.rng)
        if delay is not None:
            self.retries += 1
            log.info("%s %s -> %s, retry %d in %.2f s", request.method, request.url.path, type(error).__name__,
                     attempt + 1, delay)  # fmt: skip
        return delay


# A request extension: the caller reads the body as it streams (and restarts on a break itself);
# the transport retries up to the answer's headers only, so the body is never held whole.
STREAMED = "ksef_streamed"


class RetryingTransport(httpx.BaseTransport):
    """Wraps a sync transport with throttling and retries."""

    def __init__(self, inner: httpx.BaseTransport, state: SendState, sleep: Callable[[float], None] = time.sleep):
        self._inner = inner
        self._state = state
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        while (wait := self._state.throttle_delay(request)) > 0:
            self._state.throttled_seconds += wait
            self._sleep(wait)
        attempt = 0
        while True:
            self._state.requests_sent += 1
            try:
                response = self._inner.handle_request(request)
                if not request.extensions.get(STREAMED):
                    response.read()  # inside the retry loop: a connection dropped mid-body is retried too
            except httpx.TransportError as error:
                delay = self._state.after_error(request, error, attempt)
                if delay is None:
                    raise
            else:
                delay = self._state.after_response(request, response, attempt)
                if delay is None:
                    return response
                response.close()
            self._sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._inner.close()


class AsyncRetryingTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport with throttling and retries."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        state: SendState,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ):
        self._inner = inner
        self._state = state
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        while (wait := self._state.throttle_delay(request)) > 0:
            self._state.throttled_seconds += wait
            await self._sleep(wait)
        attempt = 0
        while True:
            self._state.requests_sent += 1
            try:
                response = await self._inner.handle_async_request(request)
                if not request.extensions.get(STREAMED):
                    await response.aread()  # a connection dropped mid-body is retried too
            except httpx.TransportError as error:
                delay = self._state.after_error(request, error, attempt)
                if delay is None:
                    raise
            else:
                delay = self._state.after_response(request, response, attempt)
                if delay is None:
                    return response
                await response.aclose()
            await self._sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._inner.aclose()
