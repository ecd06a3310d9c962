"""``KSeF`` and ``AsyncKSeF``: the high-level clients. They differ only in how they send."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import functools
import importlib
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import anyio
import httpx

from ksef_client._auth import MAY_REFRESH, BearerAuth
from ksef_client._body import ACCEPT_ENCODING, BODY_KIND, BodyLimits, adecoded, aread_capped, decoded, read_capped
from ksef_client._core import connection_error, not_found_hint_of, raise_for_status
from ksef_client._httpx_clients import AsyncClient, Client
from ksef_client._open_sessions import OpenSessions
from ksef_client._retry import BUDGET, RetryBudget, RetryPolicy
from ksef_client._settings import Settings, resolve_settings
from ksef_client._storage import async_storage_guard, redact_storage_links_in_logs, storage_guard
from ksef_client._throttle import Pacing
from ksef_client._tokens import KeyCache, TokenHolder
from ksef_client._transport import (
    CALLED_OFF,
    DEADLINE,
    NO_DEADLINE,
    STREAMED,
    AsyncDeferredTransport,
    AsyncRetryingTransport,
    CallOff,
    Deadline,
    DeferredTransport,
    RetryingTransport,
    SendState,
)
from ksef_client.environments import Environment
from ksef_client.errors import APIStatusError, KSeFError
from ksef_client.pagination import AsyncPager, Pager

# The resources, sending and their crypto/XML dependencies load on first use, so that creating a
# client (and a CLI start-up) does not pay for what it never calls.
if TYPE_CHECKING:
    from typing import Self

    from ksef_client._generated import AuthenticatedClient
    from ksef_client.batch import InvoiceSource, PartUpload, Progress
    from ksef_client.resources.auth import AsyncAuth, Auth
    from ksef_client.resources.certificates import AsyncCertificates, Certificates
    from ksef_client.resources.collective_identifiers import AsyncCollectiveIdentifiers, CollectiveIdentifiers
    from ksef_client.resources.invoices import AsyncInvoices, Invoices
    from ksef_client.resources.limits import AsyncLimits, Limits
    from ksef_client.resources.peppol import AsyncPeppol, Peppol
    from ksef_client.resources.permissions import AsyncPermissions, Permissions
    from ksef_client.resources.sessions import AsyncSessions, Sessions
    from ksef_client.resources.testdata import AsyncTestData, TestData
    from ksef_client.resources.tokens import AsyncTokens, Tokens
    from ksef_client.resources.upo import AsyncUpos, Upos
    from ksef_client.schemas import FormCode
    from ksef_client.sending import AsyncOnlineSession, BatchResult, ContextLimits, OnlineSession

REFRESH_PATH = "/auth/token/refresh"
R = TypeVar("R")
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)
SleepT = TypeVar("SleepT", Callable[[float], None], Callable[[float], Awaitable[None]])


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


def _must_raise(response: httpx.Response) -> bool:
    # A 401 that BearerAuth will answer by refreshing the token is not an error yet.
    retryable_401 = response.status_code == 401 and response.request.extensions.get(MAY_REFRESH)
    return response.status_code >= 400 and not retryable_401


def _raise_hook(not_found_hint: str) -> Callable[[httpx.Response], None]:
    """The API client's response hook: an error answer raised (``not_found_hint`` ending a 404's
    message: ``not_found_hint_of`` the base URL)."""

    def hook(response: httpx.Response) -> None:
        if _must_raise(response):
            read_capped(response, "json", BodyLimits().json)  # read already, unless streamed
            raise_for_status(response, not_found_hint)

    return hook


def _araise_hook(not_found_hint: str) -> Callable[[httpx.Response], Awaitable[None]]:
    """``_raise_hook`` for the asynchronous client."""

    async def hook(response: httpx.Response) -> None:
        if _must_raise(response):
            await aread_capped(response, "json", BodyLimits().json)
            raise_for_status(response, not_found_hint)

    return hook


# The content codings the SDK decodes itself (``_body.decoded``), not whatever httpx can.
_ENCODINGS = {"headers": {"Accept-Encoding": ACCEPT_ENCODING}}


def _check_download(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise_for_status(response)
        raise APIStatusError(f"GET presigned link -> HTTP {response.status_code}", response=response)


def _stream_extensions(budget: RetryBudget | None, deadline: Deadline | None) -> dict[str, Any]:
    extensions: dict[str, Any] = {STREAMED: True}
    if budget is not None:
        extensions[BUDGET] = budget
    if deadline is not None:
        extensions[DEADLINE] = deadline
    return extensions


def _upo_extensions(deadline: Deadline | None) -> dict[str, Any]:
    return {BODY_KIND: "upo"} if deadline is None else {BODY_KIND: "upo", DEADLINE: deadline}


def _part_extensions() -> dict[str, Any]:
    """A part's PUT has no call deadline: each connect, read and write is bounded by ``timeout=``,
    its repeats by ``max_retries`` (a 100 MB part on a slow uplink may outlast any deadline)."""
    return {DEADLINE: NO_DEADLINE}


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf
        for error in group.exceptions
        for leaf in (_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    ]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What concurrent uploads raise, as the sync client does: the first ``KSeFError`` (else the
    first error); any others become its ``__context__`` (a group) and a note."""
    leaves = _leaves(group)
    first = next((e for e in leaves if isinstance(e, KSeFError)), leaves[0])
    others = [e for e in leaves if e is not first]
    if others:
        first.add_note(f"{len(others)} other upload(s) failed too: " + "; ".join(repr(e) for e in others)[:500])
        first.__context__ = BaseExceptionGroup("the other uploads that failed", others)
    return first


def _failures(futures: list[concurrent.futures.Future[bool]], first: Exception) -> list[Exception]:
    """``first`` and the other uploads' failures, for ``_first_error`` (the futures all ended)."""
    others = (future.exception() for future in futures if not future.cancelled())
    return [first, *(error for error in others if isinstance(error, Exception) and error is not first)]


class _ClientCore(Generic[TransportT, SleepT]):
    """What ``KSeF`` and ``AsyncKSeF`` share: options, settings, the login, the send state (the
    arguments are documented on ``KSeF``)."""

    _http: Any  # httpx.Client or httpx.AsyncClient
    _retrying: Any  # RetryingTransport or AsyncRetryingTransport: the API's and storage's, one
    _sleep: SleepT

    def __init__(
        self,
        *,
        environment: Environment | str = Environment.TEST,
        base_url: str | None = None,
        access_token: str | None = None,
        timeout: float = 30.0,
        deadline: float | None = 300.0,
        max_retries: int = 3,
        max_retry_after: float = 120.0,
        rate_limit_scale: float = 1.0,
        verify: bool = True,
        storage_hosts: list[str] | None = None,
        body_limits: BodyLimits | None = None,
        require_hash: bool = False,
        transport: TransportT | None = None,
        sleep: SleepT | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Kept for with_options; the access token is not an option: a copy shares the login.
        self._options = {k: v for k, v in locals().items() if k not in ("self", "access_token", "__class__")}
        settings = resolve_settings(
            environment, base_url, timeout, verify, storage_hosts, custom_transport=transport is not None
        )
        self.settings: Settings = dataclasses.replace(settings, require_hash=bool(require_hash))
        self._tokens = TokenHolder(access_token)
        self._public_keys = KeyCache()
        # The sessions opened through this client and not closed yet (``sessions.wait`` refuses them).
        self._open_sessions = OpenSessions()
        redact_storage_links_in_logs(self.settings.base_url)
        self._clock = clock
        self.send_state = SendState(
            RetryPolicy(max_retries=max_retries, max_retry_after=max_retry_after),
            Pacing(rate_limit_scale, self.settings.base_url, clock, self._login),
            self.settings.api_path_prefix,
            clock=clock,
            limits=body_limits or BodyLimits(),
            deadline=deadline,
        )
        self._connect(transport, sleep)

    def _connect(self, transport: TransportT | None, sleep: SleepT | None) -> None:
        raise NotImplementedError

    def _login(self) -> Hashable:
        """Whose requests KSeF counts together with this client's (``_throttle.Pacing``): the
        login's context when known, else the login itself (shared by ``with_options`` copies)."""
        return self._tokens.context or self._tokens

    @functools.cached_property
    def raw(self) -> AuthenticatedClient:
        """The generated client, sending through this one's connection, throttle and retries (made
        on first use: the generated package loads attrs, which a client that sends nothing skips)."""
        from ksef_client._generated import AuthenticatedClient  # noqa: PLC0415

        return self._attach(AuthenticatedClient(base_url=self.settings.base_url, token=""))

    def _attach(self, raw: AuthenticatedClient) -> AuthenticatedClient:
        raise NotImplementedError

    def _api_options(self) -> dict[str, Any]:
        """The API client's httpx options other than the transport and hooks."""
        auth = BearerAuth(self._tokens, self.settings.base_url + REFRESH_PATH, self.send_state)
        return {"base_url": self.settings.base_url, "timeout": self.settings.timeout, "auth": auth, **_ENCODINGS}

    def _storage_options(self) -> dict[str, Any]:
        """Presigned storage links: no Authorization header, no redirects to other hosts."""
        return {"timeout": self.settings.timeout, "follow_redirects": False, **_ENCODINGS}

    @property
    def body_limits(self) -> BodyLimits:
        """The caps on bodies read from the server (``body_limits=``)."""
        return self.send_state.limits

    @property
    def access_token(self) -> str | None:
        """The current access token.

        Setting it replaces the login: the refresh token and expiry of an earlier login (or
        ``auth.resume``) are dropped, so the client never refreshes back into that login's context;
        the new token is sent as it is until KSeF refuses it (401: ``AuthenticationError``).
        ``auth.resume(tokens)`` installs a login that keeps being refreshed.
        """
        return self._tokens.token

    @access_token.setter
    def access_token(self, token: str | None) -> None:
        # Replaces the whole login (see the getter): a refresh token kept from an earlier login
        # would switch the client back into that login's context at its next refresh.
        self._tokens.set_unrefreshable(token)

    @property
    def access_token_valid_until(self) -> dt.datetime | None:
        """When the current access token expires, when known (after a login, resume or refresh)."""
        return self._tokens.valid_until

    def with_options(self, **changes: Any) -> Self:
        """A client with some options changed (``timeout=``, ``max_retries=``...) sharing this one's
        login: tokens refreshed by either are seen by both, and so are the public keys, the rate
        limits' counts (unless ``clock`` changes) and the sessions either holds open
        (``sessions.wait``).

        A copy pointed at another KSeF (``base_url=`` or ``environment=`` giving another base URL
        than this client's) shares none of that: it starts with no login (log in on it, or
        ``auth.resume`` tokens issued by that KSeF), fetches that KSeF's public keys and counts
        its own rate limits. One KSeF's tokens are never sent to another.

        Connections: a copy with the same ``base_url``, ``verify=`` and ``transport=`` sends
        through this client's connections (its pool, the API's and presigned storage's), so
        ``ksef.with_options(deadline=10).invoices.get(...)`` per call opens no connection of its
        own and needs no closing; closing the copy leaves them open, and closing this client
        closes them (the copy then refuses to send: ``RuntimeError``). An ``AsyncKSeF`` copy
        shares them only in the event loop this client sends from (an async connection pool is
        bound to one loop): in another loop, or before this client sent anything, it makes its own,
        which its ``aclose`` closes (``async with``). A copy with another
        ``transport=`` (or, of a client made without one, another ``base_url`` or ``verify=``)
        has connections of its own, which only its own close closes: use it in ``with``
        (``async with``), or close it (``close``/``aclose``) when done.
        """
        unknown = sorted(set(changes) - set(self._options))
        if unknown:
            raise TypeError(f"with_options: unknown option(s) {unknown}; known: {sorted(self._options)}")
        clone = type(self)(**{**self._options, **changes})
        if self._same_connections(clone):
            clone._retrying.borrow(self._retrying)  # before the copy's first request
        clone.send_state.pacing.share_with(self.send_state.pacing)
        if clone.settings.base_url != self.settings.base_url:
            return clone  # another KSeF: its own (empty) login, keys and open sessions
        clone._tokens, clone._public_keys = self._tokens, self._public_keys
        clone._open_sessions = self._open_sessions
        clone._http.auth = BearerAuth(clone._tokens, clone.settings.base_url + REFRESH_PATH, clone.send_state)
        return clone

    def _same_connections(self, clone: _ClientCore[TransportT, SleepT]) -> bool:
        """Whether ``clone`` (a ``with_options`` copy) may send through this client's connections:
        the same ``transport=`` object (whatever the rest: it is one transport, and this client
        closes it), or, both without one, httpx transports made alike (``verify``) for the same
        KSeF (``base_url``)."""
        transport = clone._options["transport"]
        if transport is not None or self._options["transport"] is not None:
            return transport is self._options["transport"]
        same_verify = clone._options["verify"] == self._options["verify"]  # a bool, or what httpx takes
        return same_verify and clone.settings.base_url == self.settings.base_url

    def __repr__(self) -> str:
        token = "set" if self._tokens.token else None
        return f"{type(self).__name__}(base_url={self.settings.base_url!r}, access_token={token})"


class KSeF(_ClientCore[httpx.BaseTransport, Callable[[float], None]]):
    """Synchronous KSeF client.

    Args:
        environment: ``Environment.TEST`` (default), ``DEMO`` or ``PROD``.
        base_url: overrides the environment, e.g. ``http://127.0.0.1:8000/v2`` for the emulator.
        access_token: bearer token for protected operations.
        timeout: seconds per request.
        deadline: seconds one SDK call may take in all: every request, retry, wait and body of
            it (a call that polls gets its own ``timeout=`` on top; a batch's part uploads are
            bounded by ``timeout=`` instead); ``APITimeoutError`` when it passes. ``None``: no
            overall limit. Per call: ``ksef.with_options(deadline=10)`` (the copy sends through
            this client's connections: nothing to close; for ``AsyncKSeF`` in the loop this client
            sent from; see ``with_options``).
        max_retries: how often one request may be repeated, by anything that repeats (see
            ``_retry``): a 429 (honouring Retry-After), a 5xx or a broken connection (for requests
            safe to repeat; any request whose connection was never made), a 401 once the token is
            refreshed, a download broken off mid-body. 0: never.
        max_retry_after: the longest wait: a ``Retry-After`` longer is not waited for (a 429
            raises ``RetryAfterTooLongError``, also for the other requests of the group KSeF
            blocks after it, nothing sent), nor is a wait of the client-side throttle
            (``ThrottleWaitTooLongError``, nothing sent).
        rate_limit_scale: multiplies the spec's per-operation rate limits (and the global one,
            per IP address); 0 turns client-side throttling off. Every attempt is counted, when
            its answer comes, in windows shared with this client's ``with_options`` copies and
            with the clients of the same ``base_url`` and login context (and clock) in the
            process, while one of them lives; the global and anonymous limits, which KSeF counts
            per IP address, with every client of the same ``base_url`` (and clock) in the process.
        verify: TLS certificate verification (on by default).
        storage_hosts: hosts presigned links may point to (``*.`` matches subdomains); default:
            the official storage hosts, or the API's host for a custom ``base_url``.
        body_limits: the largest body of each kind read from the server (``BodyLimits``: JSON,
            invoice, UPO, export metadata and entries); larger raises ``ResponseTooLargeError``.
        require_hash: a downloaded UPO or invoice that comes without its ``x-ms-meta-hash``
            header raises ``HashMissingError`` instead of being accepted unchecked (with a
            WARNING on the ``ksef_client`` logger, the default): KSeF sends the header, but the
            spec marks it nowhere required.
        transport: an httpx transport to send through (tests, proxies); the client's close
            closes it (a ``with_options`` copy's does not).
        sleep, clock: injectable for tests; default ``time.sleep`` (``anyio.sleep`` for
            ``AsyncKSeF``) and ``time.monotonic``.
    """

    _http: httpx.Client

    def _connect(self, transport: httpx.BaseTransport | None, sleep: Callable[[float], None] | None) -> None:
        self._sleep = sleep or time.sleep
        inner = transport or DeferredTransport(self.settings.verify)
        wrapped = self._retrying = RetryingTransport(inner, self.send_state, self._sleep)
        hooks = {"response": [_raise_hook(not_found_hint_of(self.settings.base_url))]}
        self._http = Client(**self._api_options(), transport=wrapped, event_hooks=hooks)
        guard = {"request": [storage_guard(self.settings)]}
        self._storage = Client(**self._storage_options(), transport=wrapped, event_hooks=guard)

    def _attach(self, raw: AuthenticatedClient) -> AuthenticatedClient:
        return raw.set_httpx_client(self._http)

    auth: Resource[Auth] = Resource("ksef_client.resources.auth", "Auth")
    """Log in (KSeF token or XAdES certificate), refresh, revoke."""

    tokens: Resource[Tokens] = Resource("ksef_client.resources.tokens", "Tokens")
    """KSeF tokens: create, wait until active, status, list, revoke."""

    permissions: Resource[Permissions] = Resource("ksef_client.resources.permissions", "Permissions")
    """Permissions: grant, revoke, wait for the operation, query."""

    invoices: Resource[Invoices] = Resource("ksef_client.resources.invoices", "Invoices")
    """Download, query, export and sync invoices."""

    sessions: Resource[Sessions] = Resource("ksef_client.resources.sessions", "Sessions")
    """Session status, invoice lists, waiting for processing."""

    upo: Resource[Upos] = Resource("ksef_client.resources.upo", "Upos")
    """UPO documents of sessions and invoices."""

    certificates: Resource[Certificates] = Resource("ksef_client.resources.certificates", "Certificates")
    """KSeF certificates: obtain one (new key, CSR, request, retrieve), list, revoke."""

    limits: Resource[Limits] = Resource("ksef_client.resources.limits", "Limits")
    """Limits of the context and subject, and the API's rate limits."""

    collective_identifiers: Resource[CollectiveIdentifiers] = Resource(
        "ksef_client.resources.collective_identifiers", "CollectiveIdentifiers"
    )
    """Collective identifiers: group a seller's invoices, list their invoices."""

    peppol: Resource[Peppol] = Resource("ksef_client.resources.peppol", "Peppol")
    """Peppol service providers registered in KSeF."""

    testdata: Resource[TestData] = Resource("ksef_client.resources.testdata", "TestData")
    """The test environment's own data (``/testdata/*``; not in production)."""

    def paginate(
        self, operation: Any, items: str, *, page_size: int | None = None, cursor: int | None = None, **arguments: Any
    ) -> Pager[Any, int]:
        """Every item of any ``pageOffset``/``hasMore`` operation of the generated client, e.g.
        ``ksef.paginate(query_personal_grants, "permissions", body=...)``; ``items`` names the list
        field of the page. The cursor is the number of items before the next page (resume with
        any ``page_size``); one that is not an int >= 0 is a ``ValueError``. ``page_size`` is by
        default the largest the spec allows that operation (50 for ``query_certificates``, 100 for
        most); one outside its range is a ``ValueError`` before any request."""
        from ksef_client._flows import offset_pages, pager  # noqa: PLC0415
        from ksef_client.pagination import offset_cursor  # noqa: PLC0415

        offset_cursor(cursor)  # a ValueError now, not at the first page
        return pager(offset_pages(operation, items, page_size, arguments), self, cursor)

    def online_session(
        self, form: str | FormCode = "FA(3)", *, validate: bool = True, limits: ContextLimits | None = None
    ) -> OnlineSession:
        """An online session to use in ``with``: opened on entry, closed on exit.

        ``validate`` checks each invoice against its form's XSD before it is encrypted and sent,
        and its size against ``limits`` (``SessionLimits`` or ``ksef.limits.context()``); when not
        given, against KSeF's defaults, and an invoice larger than those against the context's own
        limits, read then (``GET /limits/context``, once a session).
        """
        from ksef_client.sending import OnlineSession  # noqa: PLC0415

        return OnlineSession(self, form, validate=validate, limits=limits)

    def send_batch(self, invoices: Iterable[InvoiceSource], **options: Any) -> BatchResult:
        """Send invoices (bytes, ``Invoice`` objects, paths, or ``(name, bytes or Invoice)``) in a
        batch session, each checked against the form's XSD first unless ``validate=False``; see
        ``sending.send_batch``."""
        from ksef_client.sending import send_batch  # noqa: PLC0415

        return send_batch(self, invoices, **options)

    def _request(self, request: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.request(**request)
        except httpx.TransportError as error:
            raise connection_error(error) from error

    def _download(self, url: str, deadline: Deadline | None = None) -> tuple[bytes, httpx.Headers]:
        try:
            response = self._storage.get(url, extensions=_upo_extensions(deadline))
        except httpx.TransportError as error:
            raise connection_error(error) from error
        _check_download(response)
        return response.content, response.headers

    def _download_to(
        self, url: str, receive: Callable[[bytes], None], budget: RetryBudget | None, deadline: Deadline | None = None
    ) -> httpx.Headers:
        state = self.send_state
        try:
            with self._storage.stream("GET", url, extensions=_stream_extensions(budget, deadline)) as response:
                if response.status_code != 200:
                    read_capped(response, "json", state.limits.json)
                    _check_download(response)
                for chunk in decoded(response):  # a compressed body: a bounded piece at a time
                    receive(chunk)
                    state.check_deadline(response.request, deadline)
                return response.headers
        except httpx.TransportError as error:
            raise connection_error(error) from error

    def _upload(self, uploads: list[PartUpload], workers: int, progress: Progress | None) -> None:
        from ksef_client.batch import UploadBody, check_upload  # noqa: PLC0415

        # As AsyncKSeF's task group: after a failure no part starts, those under way finish the
        # attempt they are in with no repeat (CALLED_OFF), and the call raises once they did.
        # Was: pool.map, which raises a failure only when it reaches it in part order: while an
        # earlier part was slow, the threads went on uploading every part left, into a session
        # that is then never closed.
        failed = threading.Event()

        def put(upload: PartUpload) -> bool:
            if failed.is_set():  # another part failed: this one is not started
                return False
            off = CallOff(failed)
            try:
                try:
                    response = self._storage.request(
                        upload.method,
                        upload.url,
                        content=UploadBody(upload.part),
                        headers=upload.headers,
                        # once another part failed, this one's repeats are called off too
                        extensions={**_part_extensions(), CALLED_OFF: off},
                    )
                except httpx.TransportError as error:
                    raise connection_error(error) from error
                check_upload(response, upload.part.ordinal_number)
            except BaseException as failure:
                if off.cut:  # a repeat was due, and left out
                    number = upload.part.ordinal_number
                    failure.add_note(f"another part had failed first: repeats of part {number} were called off")
                failed.set()  # before this thread takes the next part
                raise
            return True

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(put, upload) for upload in uploads]
            try:
                done = 0
                for future in concurrent.futures.as_completed(futures):
                    if future.result() and progress:
                        done += 1
                        progress("upload", done, len(uploads))
                return
            except BaseException as first:
                failed.set()  # a KeyboardInterrupt or progress's error too: nothing more starts
                for future in futures:
                    future.cancel()
                if not isinstance(first, Exception):
                    raise  # the pool's exit still waits for the uploads under way
                concurrent.futures.wait(futures)
                error = _first_error(BaseExceptionGroup("the uploads that failed", _failures(futures, first)))
        raise error  # outside the handler: its context stays the other failures only

    def close(self) -> None:
        """Close the connections this client owns (a ``with_options`` copy's close leaves those it
        shares with the client it was made from open; see ``with_options``)."""
        self._http.close()
        self._storage.close()

    def __enter__(self) -> KSeF:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncKSeF(_ClientCore[httpx.AsyncBaseTransport, Callable[[float], Awaitable[None]]]):
    """Asynchronous KSeF client; the same arguments and resources as ``KSeF``, with ``await``."""

    _http: httpx.AsyncClient

    def _connect(
        self, transport: httpx.AsyncBaseTransport | None, sleep: Callable[[float], Awaitable[None]] | None
    ) -> None:
        self._sleep = sleep or anyio.sleep
        inner = transport or AsyncDeferredTransport(self.settings.verify)
        wrapped = self._retrying = AsyncRetryingTransport(inner, self.send_state, self._sleep)
        hooks = {"response": [_araise_hook(not_found_hint_of(self.settings.base_url))]}
        self._http = AsyncClient(**self._api_options(), transport=wrapped, event_hooks=hooks)
        guard = {"request": [async_storage_guard(self.settings)]}
        self._storage = AsyncClient(**self._storage_options(), transport=wrapped, event_hooks=guard)

    def _attach(self, raw: AuthenticatedClient) -> AuthenticatedClient:
        return raw.set_async_httpx_client(self._http)

    auth: Resource[AsyncAuth] = Resource("ksef_client.resources.auth", "AsyncAuth")
    """Log in (KSeF token or XAdES certificate), refresh, revoke."""

    tokens: Resource[AsyncTokens] = Resource("ksef_client.resources.tokens", "AsyncTokens")
    """KSeF tokens: create, wait until active, status, list, revoke."""

    permissions: Resource[AsyncPermissions] = Resource("ksef_client.resources.permissions", "AsyncPermissions")
    """Permissions: grant, revoke, wait for the operation, query."""

    invoices: Resource[AsyncInvoices] = Resource("ksef_client.resources.invoices", "AsyncInvoices")
    """Download, query, export and sync invoices."""

    sessions: Resource[AsyncSessions] = Resource("ksef_client.resources.sessions", "AsyncSessions")
    """Session status, invoice lists, waiting for processing."""

    upo: Resource[AsyncUpos] = Resource("ksef_client.resources.upo", "AsyncUpos")
    """UPO documents of sessions and invoices."""

    certificates: Resource[AsyncCertificates] = Resource("ksef_client.resources.certificates", "AsyncCertificates")
    """KSeF certificates: obtain one (new key, CSR, request, retrieve), list, revoke."""

    limits: Resource[AsyncLimits] = Resource("ksef_client.resources.limits", "AsyncLimits")
    """Limits of the context and subject, and the API's rate limits."""

    collective_identifiers: Resource[AsyncCollectiveIdentifiers] = Resource(
        "ksef_client.resources.collective_identifiers", "AsyncCollectiveIdentifiers"
    )
    """Collective identifiers: group a seller's invoices, list their invoices."""

    peppol: Resource[AsyncPeppol] = Resource("ksef_client.resources.peppol", "AsyncPeppol")
    """Peppol service providers registered in KSeF."""

    testdata: Resource[AsyncTestData] = Resource("ksef_client.resources.testdata", "AsyncTestData")
    """The test environment's own data (``/testdata/*``; not in production)."""

    def paginate(
        self, operation: Any, items: str, *, page_size: int | None = None, cursor: int | None = None, **arguments: Any
    ) -> AsyncPager[Any, int]:
        """Every item of any ``pageOffset``/``hasMore`` operation (``async for``); see ``KSeF.paginate``."""
        from ksef_client._flows import apager, offset_pages  # noqa: PLC0415
        from ksef_client.pagination import offset_cursor  # noqa: PLC0415

        offset_cursor(cursor)  # a ValueError now, not at the first page
        return apager(offset_pages(operation, items, page_size, arguments), self, cursor)

    def online_session(
        self, form: str | FormCode = "FA(3)", *, validate: bool = True, limits: ContextLimits | None = None
    ) -> AsyncOnlineSession:
        """An online session to use in ``async with``: opened on entry, closed on exit (see
        ``KSeF.online_session``)."""
        from ksef_client.sending import AsyncOnlineSession  # noqa: PLC0415

        return AsyncOnlineSession(self, form, validate=validate, limits=limits)

    async def send_batch(self, invoices: Iterable[InvoiceSource], **options: Any) -> BatchResult:
        """Send invoices (bytes, ``Invoice`` objects, paths, or ``(name, bytes or Invoice)``) in a
        batch session; see ``sending.asend_batch``."""
        from ksef_client.sending import asend_batch  # noqa: PLC0415

        return await asend_batch(self, invoices, **options)

    async def _request(self, request: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.request(**request)
        except httpx.TransportError as error:
            raise connection_error(error) from error

    async def _download(self, url: str, deadline: Deadline | None = None) -> tuple[bytes, httpx.Headers]:
        try:
            response = await self._storage.get(url, extensions=_upo_extensions(deadline))
        except httpx.TransportError as error:
            raise connection_error(error) from error
        _check_download(response)
        return response.content, response.headers

    async def _download_to(
        self, url: str, receive: Callable[[bytes], None], budget: RetryBudget | None, deadline: Deadline | None = None
    ) -> httpx.Headers:
        state = self.send_state
        try:
            async with self._storage.stream("GET", url, extensions=_stream_extensions(budget, deadline)) as response:
                if response.status_code != 200:
                    await aread_capped(response, "json", state.limits.json)
                    _check_download(response)
                async for chunk in adecoded(response):  # a compressed body: a bounded piece at a time
                    receive(chunk)
                    state.check_deadline(response.request, deadline)
                return response.headers
        except httpx.TransportError as error:
            raise connection_error(error) from error

    async def _upload(self, uploads: list[PartUpload], workers: int, progress: Progress | None) -> None:
        from ksef_client.batch import AsyncUploadBody, check_upload  # noqa: PLC0415

        limiter = anyio.Semaphore(max(1, workers))
        done = 0

        async def put(upload: PartUpload) -> None:
            nonlocal done
            async with limiter:
                try:
                    response = await self._storage.request(
                        upload.method,
                        upload.url,
                        content=AsyncUploadBody(upload.part),
                        headers=upload.headers,
                        extensions=_part_extensions(),
                    )
                except httpx.TransportError as error:
                    raise connection_error(error) from error
                check_upload(response, upload.part.ordinal_number)
                done += 1
                if progress:
                    progress("upload", done, len(uploads))

        try:
            async with anyio.create_task_group() as group:
                for upload in uploads:
                    group.start_soon(put, upload)
        except BaseExceptionGroup as failed:  # the task group wraps even one error
            error = _first_error(failed)
        else:
            return
        raise error  # outside the handler: its context stays the other failures only

    async def aclose(self) -> None:
        """Close the connections this client owns (see ``KSeF.close``)."""
        await self._http.aclose()
        await self._storage.aclose()

    async def __aenter__(self) -> AsyncKSeF:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
