"""The httpx clients the SDK sends through: ``httpx.Client`` and ``httpx.AsyncClient`` with two
costs of every request taken out, behaviour unchanged.

- **Cookies.** httpx looks for cookies in every answer by wrapping the request and the answer for
  urllib's cookie jar, which parses the URL again: some 30 µs per answer, 4-5 % of an online
  send's CPU (py-spy, 3,000 sends to the emulator). KSeF's API and its storage set no cookie, so
  the jar is asked only when an answer has a ``Set-Cookie`` header; a cookie that is set is kept
  and sent back as before.
- **URLs.** httpx parses a request's path and then the path joined to ``base_url`` (some 25 µs),
  and the SDK sends the same few paths again and again (one session's sends, a poll, the pages of
  a listing). The joined URL of a relative path is kept (a bounded number of them; httpx's URLs
  are immutable), and forgotten when ``base_url`` changes.

Both lean on two names inside httpx (``BaseClient._cookies`` and ``_merge_url``; httpx is pinned
below 1.0): ``tests/test_httpx_clients.py`` fails if either stops being used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

# Distinct relative paths kept per client: a session's paths (its sends, status, pages) are a
# handful, so this holds the paths of dozens of sessions at once.
KEPT_URLS = 256


class AnswerCookies(httpx.Cookies):
    """httpx's cookie store, which reads an answer's cookies only when it sets some."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep the cookies ``response`` sets (none without a ``Set-Cookie`` header)."""
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class _JoinedUrls:
    """The joined URL of each relative path (``/...``) a client sent to, for its ``base_url``."""

    __slots__ = ("_base", "_urls")

    def __init__(self) -> None:
        self._base: httpx.URL | None = None
        self._urls: dict[str, httpx.URL] = {}

    def get(self, base: httpx.URL, path: str) -> httpx.URL | None:
        if base is not self._base:  # base_url was set anew: every joined URL is stale
            self._base, self._urls = base, {}
        return self._urls.get(path)

    def keep(self, path: str, url: httpx.URL) -> httpx.URL:
        if len(self._urls) >= KEPT_URLS:
            self._urls.clear()
        self._urls[path] = url
        return url


def _lean(client: httpx.Client | httpx.AsyncClient) -> _JoinedUrls:
    client._cookies = AnswerCookies(client._cookies.jar)  # the same jar: nothing copied or lost
    return _JoinedUrls()


def _joined_url(
    joined: _JoinedUrls, base: httpx.URL, url: httpx.URL | str, merge: Callable[[httpx.URL | str], httpx.URL]
) -> httpx.URL:
    """httpx's ``_merge_url`` (``merge``) of ``url``, once per relative path."""
    if not isinstance(url, str) or not url.startswith("/"):
        return merge(url)
    return joined.get(base, url) or joined.keep(url, merge(url))


class Client(httpx.Client):
    """``httpx.Client`` that asks for an answer's cookies only when it sets some and joins each
    relative path to ``base_url`` once."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._joined = _lean(self)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        return _joined_url(self._joined, self.base_url, url, super()._merge_url)


class AsyncClient(httpx.AsyncClient):
    """``Client`` for asyncio and trio."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._joined = _lean(self)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        return _joined_url(self._joined, self.base_url, url, super()._merge_url)
