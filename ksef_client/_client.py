"""``KSeF`` and ``AsyncKSeF``: the high-level clients. They differ only in how they send."""

from __future__ import annotations

import datetime as dt
import importlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import anyio
import httpx

from ksef_client._core import (
    BearerAuth,
    Settings,
    TokenHolder,
    async_storage_guard,
    build_send_state,
    connection_error,
    mapped_errors,
    raise_for_status,
    resolve_settings,
    storage_guard,
)
from ksef_client._generated import AuthenticatedClient
from ksef_client._generated.types import Response
from ksef_client._transport import STREAMED, AsyncRetryingTransport, RetryingTransport, SendState
from ksef_client.environments import Environment
from ksef_client.errors import APIStatusError, ResponseFormatError
from ksef_client.pagination import AsyncPager, Pager, next_offset

# The resources, sending and their crypto/XML dependencies load on first use, so that creating a
# client (and a CLI start-up) does not pay for what it never calls.
if TYPE_CHECKING:
    from ksef_client.batch import InvoiceSource
    from ksef_client.resources.auth import AsyncAuth, Auth
    from ksef_client.resources.collective_identifiers import AsyncCollectiveIdentifiers, CollectiveIdentifiers
    from ksef_client.resources.invoices import AsyncInvoices, Invoices
    from ksef_client.resources.limits import AsyncLimits, Limits
    from ksef_client.resources.sessions import AsyncSessions, Sessions
    from ksef_client.resources.tokens import AsyncTokens, Tokens
    from ksef_client.resources.upo import AsyncUpos, Upos
    from ksef_client.schemas import FormCode
    from ksef_client.sending import AsyncOnlineSession, BatchResult, OnlineSession

REFRESH_PATH = "/auth/token/refresh"
R = TypeVar("R")


class Resource(Generic[R]):
    """A client attribute whose class is imported and instantiated on first access, then kept.

    The resources pull in crypto, XML and the generated operations; a client that never uses one
    (or a CLI start-up) does not pay for it.
    """

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name
        self._attribute = ""

    def __set_name__(self, owner: type, attribute: str) -> None:
        self._attribute = attribute

    @overload
    def __get__(self, client: None, owner: type) -> Resource[R]: ...
    @overload
    def __get__(self, client: object, owner: type) -> R: ...
    def __get__(self, client: object | None, owner: type) -> Resource[R] | R:
        if client is None:
            return self
        resource: R = getattr(importlib.import_module(self._module), self._name)(client)
        client.__dict__[self._attribute] = resource  # later reads find it without this descriptor
        return resource


def parsed_page(response: Response[Any], items: str) -> Any:
    """The body of an offset-paged answer: it must have ``has_more`` and the ``items`` list."""
    page = response.parsed
    if not isinstance(getattr(page, items, None), list) or not hasattr(page, "has_more"):
        raise ResponseFormatError(f"HTTP {int(response.status_code)}: no {items!r} list with has_more in the answer")
    return page


def _checked_options(options: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(options))
    if unknown:
        raise TypeError(f"with_options: unknown option(s) {unknown}; known: {sorted(options)}")
    return {**options, **changes}


def _must_raise(response: httpx.Response) -> bool:
    # A 401 that BearerAuth will answer by refreshing the token is not an error yet.
    retryable_401 = response.status_code == 401 and response.request.extensions.get("ksef_may_refresh")
    return response.status_code >= 400 and not retryable_401


def _raise_hook(response: httpx.Response) -> None:
    if _must_raise(response):
        response.read()
        raise_for_status(response)


async def _araise_hook(response: httpx.Response) -> None:
    if _must_raise(response):
        await response.aread()
        raise_for_status(response)


def _options(arguments: dict[str, Any]) -> dict[str, Any]:
    """A client's constructor arguments (its ``locals()`` on entry), kept for ``with_options``;
    the access token is not an option: a clone shares the login instead."""
    return {name: value for name, value in arguments.items() if name not in ("self", "access_token")}


DOWNLOAD_CHUNK = 1 << 20


def _check_download(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise_for_status(response)
        raise APIStatusError(f"GET presigned link -> HTTP {response.status_code}", response=response)


class _ClientCore:
    """What ``KSeF`` and ``AsyncKSeF`` share: options, settings, the login's tokens, the send state."""

    settings: Settings
    send_state: SendState
    _options: dict[str, Any]
    _tokens: TokenHolder
    _clock: Callable[[], float]

    def _setup(self, options: dict[str, Any], access_token: str | None) -> None:
        self._options = options
        self.settings = resolve_settings(options["environment"], options["base_url"], options["timeout"],
                                         options["verify"], options["storage_hosts"])  # fmt: skip
        self._tokens = TokenHolder(access_token)
        self._clock = options["clock"]
        self.send_state = build_send_state(self.settings, options["max_retries"], options["max_retry_after"],
                                           options["rate_limit_scale"], self._clock)  # fmt: skip

    @property
    def access_token(self) -> str | None:
        """The current access token."""
        return self._tokens.token

    @access_token.setter
    def access_token(self, token: str | None) -> None:
        self._tokens.token = token

    @property
    def access_token_valid_until(self) -> dt.datetime | None:
        """When the current access token expires, when known (after a login, resume or refresh)."""
        return self._tokens.valid_until

    def __repr__(self) -> str:
        token = "set" if self._tokens.token else None
        return f"{type(self).__name__}(base_url={self.settings.base_url!r}, access_token={token})"


class KSeF(_ClientCore):
    """Synchronous KSeF client.

    Args:
        environment: ``Environment.TEST`` (default), ``DEMO`` or ``PROD``.
        base_url: overrides the environment, e.g. ``http://127.0.0.1:8000/v2`` for the emulator.
        access_token: bearer token for protected operations.
        timeout: seconds per request.
        max_retries: retries of 429s (honouring Retry-After), 5xx and connection errors
            (idempotent requests only, except 429 and never-sent requests).
        rate_limit_scale: multiplies the spec's per-operation rate limits; 0 turns client-side
            throttling off.
        verify: TLS certificate verification (on by default).
        storage_hosts: hosts presigned links may point to (``*.`` matches subdomains); default:
            the official storage hosts, or the API's host for a custom ``base_url``.
        transport: an httpx transport to send through (tests, proxies).
        sleep, clock: injectable for tests; default ``time.sleep`` and ``time.monotonic``.
    """

    def __init__(
        self,
        *,
        environment: Environment | str = Environment.TEST,
        base_url: str | None = None,
        access_token: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_after: float = 120.0,
        rate_limit_scale: float = 1.0,
        verify: bool = True,
        storage_hosts: list[str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._setup(_options(locals()), access_token)
        self._sleep = sleep
        inner = transport or httpx.HTTPTransport(verify=verify)
        wrapped = RetryingTransport(inner, self.send_state, sleep)
        self._http = httpx.Client(
            base_url=self.settings.base_url, transport=wrapped, timeout=timeout,
            auth=BearerAuth(self._tokens, self.settings.base_url + REFRESH_PATH),
            event_hooks={"response": [_raise_hook]},
        )  # fmt: skip
        # Presigned storage links: no Authorization header, no redirects to other hosts.
        self._storage = httpx.Client(
            transport=wrapped, timeout=timeout, follow_redirects=False,
            event_hooks={"request": [storage_guard(self.settings)]},
        )  # fmt: skip
        self.raw = AuthenticatedClient(base_url=self.settings.base_url, token="").set_httpx_client(self._http)

    auth: Resource[Auth] = Resource("ksef_client.resources.auth", "Auth")
    """Log in (KSeF token or XAdES certificate), refresh, revoke."""

    tokens: Resource[Tokens] = Resource("ksef_client.resources.tokens", "Tokens")
    """KSeF tokens: generate, list, revoke."""

    invoices: Resource[Invoices] = Resource("ksef_client.resources.invoices", "Invoices")
    """Download, query, export and sync invoices."""

    sessions: Resource[Sessions] = Resource("ksef_client.resources.sessions", "Sessions")
    """Session status, invoice lists, waiting for processing."""

    upo: Resource[Upos] = Resource("ksef_client.resources.upo", "Upos")
    """UPO documents of sessions and invoices."""

    limits: Resource[Limits] = Resource("ksef_client.resources.limits", "Limits")
    """Limits of the context and subject, and the API's rate limits."""

    collective_identifiers: Resource[CollectiveIdentifiers] = Resource(
        "ksef_client.resources.collective_identifiers", "CollectiveIdentifiers"
    )
    """Collective identifiers: group a seller's invoices, list their invoices."""

    def paginate(
        self, operation: Any, items: str, *, page_size: int = 100, cursor: int | None = None, **arguments: Any
    ) -> Pager[Any, int]:
        """Every item of any ``pageOffset``/``hasMore`` operation of the generated client, e.g.
        ``ksef.paginate(query_personal_grants, "permissions", body=...)``; ``items`` names the list
        field of the page. The cursor is the page offset."""

        def fetch(offset: int | None) -> tuple[list[Any], int | None]:
            at = offset or 0
            call = lambda: operation.sync_detailed(client=self.raw, page_offset=at, page_size=page_size, **arguments)  # noqa: E731
            page = parsed_page(self._send(call), items)
            return getattr(page, items), next_offset(at, page.has_more)

        return Pager(fetch, cursor)

    def with_options(self, **changes: Any) -> KSeF:
        """A client with some options changed (``timeout=``, ``max_retries=``...) sharing this one's
        login: tokens refreshed by either are seen by both."""
        clone = KSeF(**{**_checked_options(self._options, changes), "access_token": None})
        clone._share_login(self)
        return clone

    def _share_login(self, other: KSeF) -> None:
        self._tokens = other._tokens
        self._http.auth = BearerAuth(self._tokens, self.settings.base_url + REFRESH_PATH)
        self.auth._keys = other.auth._keys

    def online_session(self, form: str | FormCode = "FA(3)", *, validate: bool = True) -> OnlineSession:
        """An online session to use in ``with``: opened on entry, closed on exit.

        ``validate`` checks each invoice against its form's XSD before it is encrypted and sent.
        """
        from ksef_client.sending import OnlineSession  # noqa: PLC0415

        return OnlineSession(self, form, validate=validate)

    def send_batch(self, invoices: Iterable[InvoiceSource], **options: Any) -> BatchResult:
        """Send invoices (bytes, paths, or ``(name, bytes)``) in a batch session; see ``sending.send_batch``."""
        from ksef_client.sending import send_batch  # noqa: PLC0415

        return send_batch(self, invoices, **options)

    def _send(self, call: Callable[[], Response[Any]]) -> Response[Any]:
        with mapped_errors():
            return call()

    def _download(self, url: str) -> tuple[bytes, httpx.Headers]:
        try:
            response = self._storage.get(url)
        except httpx.TransportError as error:
            raise connection_error(error) from error
        _check_download(response)
        return response.content, response.headers

    def _download_to(self, url: str, receive: Callable[[bytes], None]) -> httpx.Headers:
        try:
            with self._storage.stream("GET", url, extensions={STREAMED: True}) as response:
                if response.status_code != 200:
                    response.read()
                    _check_download(response)
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    receive(chunk)
                return response.headers
        except httpx.TransportError as error:
            raise connection_error(error) from error

    def close(self) -> None:
        """Close the connections."""
        self._http.close()
        self._storage.close()

    def __enter__(self) -> KSeF:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncKSeF(_ClientCore):
    """Asynchronous KSeF client; the same arguments and resources as ``KSeF``, with ``await``."""

    def __init__(
        self,
        *,
        environment: Environment | str = Environment.TEST,
        base_url: str | None = None,
        access_token: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_after: float = 120.0,
        rate_limit_scale: float = 1.0,
        verify: bool = True,
        storage_hosts: list[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._setup(_options(locals()), access_token)
        self._sleep = sleep
        inner = transport or httpx.AsyncHTTPTransport(verify=verify)
        wrapped = AsyncRetryingTransport(inner, self.send_state, sleep)
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url, transport=wrapped, timeout=timeout,
            auth=BearerAuth(self._tokens, self.settings.base_url + REFRESH_PATH),
            event_hooks={"response": [_araise_hook]},
        )  # fmt: skip
        self._storage = httpx.AsyncClient(
            transport=wrapped, timeout=timeout, follow_redirects=False,
            event_hooks={"request": [async_storage_guard(self.settings)]},
        )  # fmt: skip
        self.raw = AuthenticatedClient(base_url=self.settings.base_url, token="").set_async_httpx_client(self._http)

    auth: Resource[AsyncAuth] = Resource("ksef_client.resources.auth", "AsyncAuth")
    """Log in (KSeF token or XAdES certificate), refresh, revoke."""

    tokens: Resource[AsyncTokens] = Resource("ksef_client.resources.tokens", "AsyncTokens")
    """KSeF tokens: generate, list, revoke."""

    invoices: Resource[AsyncInvoices] = Resource("ksef_client.resources.invoices", "AsyncInvoices")
    """Download, query, export and sync invoices."""

    sessions: Resource[AsyncSessions] = Resource("ksef_client.resources.sessions", "AsyncSessions")
    """Session status, invoice lists, waiting for processing."""

    upo: Resource[AsyncUpos] = Resource("ksef_client.resources.upo", "AsyncUpos")
    """UPO documents of sessions and invoices."""

    limits: Resource[AsyncLimits] = Resource("ksef_client.resources.limits", "AsyncLimits")
    """Limits of the context and subject, and the API's rate limits."""

    collective_identifiers: Resource[AsyncCollectiveIdentifiers] = Resource(
        "ksef_client.resources.collective_identifiers", "AsyncCollectiveIdentifiers"
    )
    """Collective identifiers: group a seller's invoices, list their invoices."""

    def paginate(
        self, operation: Any, items: str, *, page_size: int = 100, cursor: int | None = None, **arguments: Any
    ) -> AsyncPager[Any, int]:
        """Every item of any ``pageOffset``/``hasMore`` operation (``async for``); see ``KSeF.paginate``."""

        async def fetch(offset: int | None) -> tuple[list[Any], int | None]:
            at = offset or 0
            call = lambda: operation.asyncio_detailed(client=self.raw, page_offset=at, page_size=page_size, **arguments)  # noqa: E731
            page = parsed_page(await self._send(call), items)
            return getattr(page, items), next_offset(at, page.has_more)

        return AsyncPager(fetch, cursor)

    def with_options(self, **changes: Any) -> AsyncKSeF:
        """A client with some options changed, sharing this one's login."""
        clone = AsyncKSeF(**{**_checked_options(self._options, changes), "access_token": None})
        clone._share_login(self)
        return clone

    def _share_login(self, other: AsyncKSeF) -> None:
        self._tokens = other._tokens
        self._http.auth = BearerAuth(self._tokens, self.settings.base_url + REFRESH_PATH)
        self.auth._keys = other.auth._keys

    def online_session(self, form: str | FormCode = "FA(3)", *, validate: bool = True) -> AsyncOnlineSession:
        """An online session to use in ``async with``: opened on entry, closed on exit."""
        from ksef_client.sending import AsyncOnlineSession  # noqa: PLC0415

        return AsyncOnlineSession(self, form, validate=validate)

    async def send_batch(self, invoices: Iterable[InvoiceSource], **options: Any) -> BatchResult:
        """Send invoices in a batch session; see ``sending.asend_batch``."""
        from ksef_client.sending import asend_batch  # noqa: PLC0415

        return await asend_batch(self, invoices, **options)

    async def _send(self, call: Callable[[], Awaitable[Response[Any]]]) -> Response[Any]:
        with mapped_errors():
            return await call()

    async def _download(self, url: str) -> tuple[bytes, httpx.Headers]:
        try:
            response = await self._storage.get(url)
        except httpx.TransportError as error:
            raise connection_error(error) from error
        _check_download(response)
        return response.content, response.headers

    async def _download_to(self, url: str, receive: Callable[[bytes], None]) -> httpx.Headers:
        try:
            async with self._storage.stream("GET", url, extensions={STREAMED: True}) as response:
                if response.status_code != 200:
                    await response.aread()
                    _check_download(response)
                async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                    receive(chunk)
                return response.headers
        except httpx.TransportError as error:
            raise connection_error(error) from error

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()
        await self._storage.aclose()

    async def __aenter__(self) -> AsyncKSeF:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
