"""Presigned storage links (batch uploads, UPO and export downloads): which are used, and where
they may point."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx

from ksef_client._settings import Settings
from ksef_client.errors import UntrustedURLError


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


def link_usable(url: object, expires: object, now: dt.datetime) -> bool:
    """A presigned link is used when absolute and not expiring within the next 30 seconds."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return False  # relative links (seen in KSeF's docs) go through the API endpoint instead
    if isinstance(expires, dt.datetime):
        when = expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)
        return when - now > dt.timedelta(seconds=30)
    return True


# --- Logs ------------------------------------------------------------------------------------
# httpx writes every request's URL to its INFO log, and a presigned link's query string is its
# credential (``sig=``...). Each client registers its API base URL; the query string of any other
# URL (the storage links) is replaced by ``?[redacted]`` in every record of the loggers the SDK's
# requests write to.

_API_BASES: set[str] = set()
_URL = re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s#\"'<>]*")
# A query that signs its link (Azure's ``sig=``, S3's ``X-Amz-Signature=``, GCS's, a generic
# ``signature=``) is redacted under an API base too: a base URL given without its path (a bare
# host) covers the storage links of a server that serves both, as the emulator does.
_SIGNED = re.compile(r"[?&](?:sig|signature|x-amz-signature|x-goog-signature)=", re.IGNORECASE)
REDACTED = "?[redacted]"
LOGGERS = ("httpx", "httpcore", "ksef_client")


def redact_urls(text: str) -> str:
    """``text`` with the query string of every non-API URL, and of every signed one, replaced by
    ``?[redacted]``."""

    def replace(match: re.Match[str]) -> str:
        readable = match[1].startswith(tuple(_API_BASES)) and not _SIGNED.search(match[0])
        return match[0] if readable else match[1] + REDACTED

    return _URL.sub(replace, text) if "?" in text else text


class RedactingFilter(logging.Filter):
    """Rewrites a log record so that no presigned link's query string reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_urls(record.msg)
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL | str) for a in record.args):
            record.args = tuple(redact_urls(str(a)) if isinstance(a, httpx.URL | str) else a for a in record.args)
        return True


_FILTER = RedactingFilter()


def redact_storage_links_in_logs(api_base_url: str) -> None:
    """Register an API base URL (its queries stay readable) and make sure the filter is installed."""
    _API_BASES.add(api_base_url.rstrip("/") + "/")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
