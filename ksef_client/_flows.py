"""Multi-step work written once, run by a sync and an async driver (httpx's ``auth_flow`` idea).

A flow is a generator that yields steps and receives their results:

- ``Call(operation, kwargs, bearer=None)``: a generated operation (module with ``sync_detailed``
  and ``asyncio_detailed``); the result is its ``Response``. ``bearer`` sends another token than
  the client's access token (the authentication token while logging in).
- ``Sleep(seconds)``: wait (the client's injectable sleep); result ``None``.
- ``Now()``: the client's monotonic clock; result a float.
- ``Download(url)``: GET a presigned link without the token; result ``(bytes, headers)``.
- ``StreamDownload(url, receive)``: the same, its body handed to ``receive`` chunk by chunk as it
  arrives (never whole in memory); result the headers.

``run(flow, client)`` and ``await arun(flow, client)`` drive it; the flow's return value is theirs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ksef_client._generated.types import Response
from ksef_client.errors import KSeFError

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

T = TypeVar("T")

# A bearer token for the requests of the current step only (context-local, so concurrent
# threads and tasks of one client do not see each other's override).
BEARER_OVERRIDE: contextvars.ContextVar[str | None] = contextvars.ContextVar("ksef_bearer_override", default=None)


@dataclass(frozen=True)
class Call:
    """Run one generated operation."""

    operation: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    bearer: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Sleep:
    """Wait before the next step."""

    seconds: float


@dataclass(frozen=True)
class Now:
    """Read the client's clock."""


@dataclass(frozen=True)
class Download:
    """Fetch a presigned storage link (no Authorization header)."""

    url: str


@dataclass(frozen=True)
class StreamDownload:
    """Fetch a presigned storage link, passing the body on in chunks."""

    url: str
    receive: Callable[[bytes], None]


Step = Call | Sleep | Now | Download | StreamDownload
Flow = Generator[Step, Any, T]


@contextmanager
def bearer(token: str | None) -> Iterator[None]:
    """Use ``token`` instead of the access token for requests made inside the block."""
    reset = BEARER_OVERRIDE.set(token)
    try:
        yield
    finally:
        BEARER_OVERRIDE.reset(reset)


def _sync_call(step: Call, client: KSeF) -> Callable[[], Response[Any]]:
    return lambda: step.operation.sync_detailed(client=client.raw, **step.kwargs)


def _async_call(step: Call, client: AsyncKSeF) -> Callable[[], Awaitable[Response[Any]]]:
    return lambda: step.operation.asyncio_detailed(client=client.raw, **step.kwargs)


def run(flow: Flow[T], client: KSeF) -> T:
    """Drive ``flow`` with the synchronous client; a step's ``KSeFError`` is thrown into the flow,
    which may handle it (resend, check a status) or let it propagate."""
    try:
        step = flow.send(None)
        while True:
            try:
                result = _run_step(step, client)
            except KSeFError as error:
                step = flow.throw(error)
                continue
            step = flow.send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value


def _run_step(step: Step, client: KSeF) -> Any:
    if isinstance(step, Call):
        with bearer(step.bearer):
            return client._send(_sync_call(step, client))
    if isinstance(step, Sleep):
        client._sleep(step.seconds)
        return None
    if isinstance(step, Download):
        return client._download(step.url)
    if isinstance(step, StreamDownload):
        return client._download_to(step.url, step.receive)
    return client._clock()


async def _arun_step(step: Step, client: AsyncKSeF) -> Any:
    if isinstance(step, Call):
        with bearer(step.bearer):
            return await client._send(_async_call(step, client))
    if isinstance(step, Sleep):
        await client._sleep(step.seconds)
        return None
    if isinstance(step, Download):
        return await client._download(step.url)
    if isinstance(step, StreamDownload):
        return await client._download_to(step.url, step.receive)
    return client._clock()


async def arun(flow: Flow[T], client: AsyncKSeF) -> T:
    """Drive ``flow`` with the asynchronous client (errors thrown into the flow, as in ``run``)."""
    try:
        step = flow.send(None)
        while True:
            try:
                result = await _arun_step(step, client)
            except KSeFError as error:
                step = flow.throw(error)
                continue
            step = flow.send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value


def response_of(result: object) -> Response[Any]:
    """Type helper: the result of a ``Call`` step."""
    assert isinstance(result, Response)
    return result
