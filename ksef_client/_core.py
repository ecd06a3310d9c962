"""What the sync and async clients share: configuration, token holder, response checks."""

from __future__ import annotations

import datetime as dt
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ksef_client._flows import BEARER_OVERRIDE
from ksef_client._generated.types import Response
from ksef_client._retry import RetryPolicy, parse_retry_after
from ksef_client._throttle import Throttle
from ksef_client._transport import SendState
from ksef_client.environments import Environment
from ksef_client.errors import (
    APIConnectionError,
    APITimeoutError,
    ResponseFormatError,
    UntrustedURLError,
    make_status_error,
)

T = TypeVar("T")


class TokenHolder:
    """The current access and refresh tokens; never shown in reprs or logs."""

    # Refresh this long before the access token's expiry, so no request goes out with a dying token.
    REFRESH_MARGIN = dt.timedelta(seconds=60)

    def __init__(self, token: str | None, refresh_token: str | None = None) -> None:
        self.token = token
        self.refresh_token = refresh_token
        self.valid_until: dt.datetime | None = None
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"TokenHolder(token={'set' if self.token else None}, refresh_token={'set' if self.refresh_token else None})"
        )

    def set(self, token: str, valid_until: dt.datetime | None, refresh_token: str | None = None) -> None:
        """Store a new access token (and refresh token, when one came with it)."""
        self.token, self.valid_until = token, _aware(valid_until)
        if refresh_token is not None:
            self.refresh_token = refresh_token

    def expiring(self, now: dt.datetime) -> bool:
        """Whether the access token expires within the margin (unknown expiry: no)."""
        return self.valid_until is not None and self.valid_until - now <= self.REFRESH_MARGIN


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` with the holder's access token, refreshed when it is about to expire
    or when the API answers 401 (once per request). A flow step's override token wins."""

    requires_response_body = True

    def __init__(self, holder: TokenHolder, refresh_url: str) -> None:
        self._holder = holder
        self._refresh_url = refresh_url

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        override = BEARER_OVERRIDE.get()
        if override is not None:
            request.headers["Authorization"] = f"Bearer {override}"
            yield request
            return
        holder = self._holder
        if holder.refresh_token and holder.expiring(dt.datetime.now(dt.UTC)):
            yield from self._refresh()
        if holder.token:
            request.headers["Authorization"] = f"Bearer {holder.token}"
        request.extensions["ksef_may_refresh"] = bool(holder.refresh_token)
        response = yield request
        if response.status_code == 401 and holder.refresh_token:
            yield from self._refresh()
            request.headers["Authorization"] = f"Bearer {holder.token}"
            request.extensions["ksef_may_refresh"] = False
            yield request

    def _refresh(self) -> Generator[httpx.Request, httpx.Response, None]:
        refresh = httpx.Request(
            "POST", self._refresh_url, headers={"Authorization": f"Bearer {self._holder.refresh_token}"}
        )
        response = yield refresh  # an error answer raises in the response hook
        try:
            token = response.json()["accessToken"]
            self._holder.set(token["token"], dt.datetime.fromisoformat(token["validUntil"]))
        except (ValueError, KeyError, TypeError) as error:
            raise ResponseFormatError(f"POST /auth/token/refresh: unexpected body ({error})") from error


@dataclass(frozen=True)
class Settings:
    """Resolved client settings."""

    base_url: str
    timeout: float
    verify: bool
    storage_hosts: tuple[str, ...] = ()

    @property
    def api_path_prefix(self) -> str:
        """Path of the base URL (``/v2``): requests under it are API calls, others storage."""
        return urlsplit(self.base_url).path.rstrip("/")


# Where KSeF's presigned links may point when talking to an official environment: the Ministry's
# domain, and Azure Blob Storage (the links carry its x-ms-* headers). Narrow or extend with
# ``storage_hosts=`` on the client.
OFFICIAL_STORAGE_HOSTS = ("*.mf.gov.pl", "*.blob.core.windows.net")


def resolve_settings(
    environment: Environment | str, base_url: str | None, timeout: float, verify: bool,
    storage_hosts: tuple[str, ...] | list[str] | None = None,
) -> Settings:  # fmt: skip
    """Pick the base URL from ``base_url`` or the environment; validate it.

    Presigned links (batch uploads, UPO and export downloads) may only go to ``storage_hosts``:
    by default the official storage hosts for an environment, the API's own host for a custom
    ``base_url`` (the emulator serves its storage there). ``*.example.com`` matches subdomains.
    """
    env = Environment[environment.upper()] if isinstance(environment, str) else environment
    url = (base_url or env.base_url).rstrip("/")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"base_url: {url!r} is not an http(s) URL")
    if storage_hosts is None:
        storage_hosts = (urlsplit(url).hostname or "",) if base_url else OFFICIAL_STORAGE_HOSTS
    if isinstance(storage_hosts, str):
        raise TypeError("storage_hosts: a list of host names, not one string")
    if not verify:
        # Invoices and tokens travel over this connection: switching TLS checks off must be loud.
        warnings.warn(
            f"TLS certificate verification is OFF for {url}: anyone on the network path can read and "
            "alter invoices and tokens. Use verify=False only against a local emulator.",
            InsecureTransportWarning,
            stacklevel=3,
        )
    hosts = tuple(host.lower().rstrip(".") for host in storage_hosts)
    return Settings(base_url=url, timeout=timeout, verify=verify, storage_hosts=hosts)


def _host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in patterns)


def check_storage_url(url: httpx.URL, settings: Settings) -> None:
    """Refuse a presigned link to a host outside ``settings.storage_hosts`` (before anything is sent).

    Invoices go up and UPOs come down through these links, so a link to anywhere else, or a
    downgrade to plain http while the API itself is https, is an error, not a request.
    """
    if url.scheme != "https" and not (url.scheme == "http" and settings.base_url.startswith("http://")):
        raise UntrustedURLError(f"presigned link refused: {url.scheme}:// is not https")
    if not _host_allowed(url.host, settings.storage_hosts):
        raise UntrustedURLError(
            f"presigned link refused: host {url.host!r} is not one of {list(settings.storage_hosts)}; "
            "pass storage_hosts=[...] to the client if KSeF really uses it"
        )


def storage_guard(settings: Settings) -> Callable[[httpx.Request], None]:
    """An httpx request hook that checks every presigned link before it is sent."""

    def guard(request: httpx.Request) -> None:
        check_storage_url(request.url, settings)

    return guard


def async_storage_guard(settings: Settings) -> Callable[[httpx.Request], Any]:
    """``storage_guard`` for ``httpx.AsyncClient`` (its hooks must be coroutines)."""

    async def guard(request: httpx.Request) -> None:
        check_storage_url(request.url, settings)

    return guard


class InsecureTransportWarning(UserWarning):
    """Emitted when a client is created with ``verify=False``."""


def raise_for_status(response: httpx.Response) -> None:
    """Turn an error answer into our exception (called once the body has been read)."""
    if response.status_code >= 400:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        raise make_status_error(response, retry_after)


def connection_error(error: httpx.TransportError) -> APIConnectionError:
    """Our exception for an httpx transport failure."""
    where = f"{error.request.method} {error.request.url.path}" if _has_request(error) else "request"
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"{where}: timed out ({type(error).__name__})")
    return APIConnectionError(f"{where}: {type(error).__name__}: {error}")


def _has_request(error: httpx.TransportError) -> bool:
    try:
        error.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def parsed(response: Response[Any], expected: type[T]) -> T:
    """The typed body of a 2xx answer, or ``ResponseFormatError`` if it is not what the spec says."""
    if not isinstance(response.parsed, expected):
        raise ResponseFormatError(
            f"HTTP {int(response.status_code)}: expected {expected.__name__}, got {type(response.parsed).__name__}"
        )
    return response.parsed


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Around a generated call (sync or async): our exceptions for transport failures and for
    bodies that break the generated models."""
    try:
        yield
    except httpx.TransportError as error:
        raise connection_error(error) from error
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ResponseFormatError(f"response does not match the spec: {type(error).__name__}: {error}") from error


def build_send_state(
    settings: Settings, max_retries: int, max_retry_after: float, rate_limit_scale: float, clock: Callable[[], float]
) -> SendState:
    """Retry policy, throttle and counters shared by a client's API and storage transports."""
    return SendState(
        RetryPolicy(max_retries=max_retries, max_retry_after=max_retry_after),
        Throttle(scale=rate_limit_scale),
        settings.api_path_prefix,
        clock=clock,
    )


def link_usable(url: object, expires: object, now: dt.datetime) -> bool:
    """A presigned link is used when absolute and not expiring within the next 30 seconds."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return False  # relative links (seen in KSeF's docs) go through the API endpoint instead
    if isinstance(expires, dt.datetime):
        when = expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)
        return when - now > dt.timedelta(seconds=30)
    return True
