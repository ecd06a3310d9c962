"""The httpx clients the SDK sends through: ``httpx.Client`` and ``httpx.AsyncClient`` with two
costs of every request taken out, behaviour unchanged.

- **Cookies.** httpx looks for cookies in every answer by wrapping the request and the answer for
  urllib's cookie jar, which parses the URL again: some 30 µs per answer in a warm loop, 4.5 % of
  an online send's CPU (py-spy, 3,000 sends to the emulator). KSeF's API and its storage set no cookie, so
  the jar is asked only when an answer has a ``Set-Cookie`` header; a cookie that is set is kept
  and sent back as before.
- **URLs.** httpx parses a request's path and then the path joined to ``base_url`` (some 25 µs),
  and the SDK sends the same few paths again and again (one session's sends, a poll, the pages of
  a listing). The joined URL of a relative path is kept (a bounded number of them; httpx's URLs
  are immutable), and forgotten when ``base_url`` changes.

Both lean on two names inside httpx (``BaseClient._cookies`` and ``_merge_url``; httpx is pinned
below 1.0): ``tests/test_httpx_clients.py`` fails if httpx stops asking either.
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

    __slots__ = ("_kept",)

    def __init__(self) -> None:
        # One attribute, replaced whole: no thread sees a new base with the old base's URLs.
        self._kept: tuple[httpx.URL | None, dict[str, httpx.URL]] = (None, {})

    def of(self, base: httpx.URL) -> dict[str, httpx.URL]:
        """The URLs joined to ``base`` (none after ``base_url`` was set anew)."""
        kept = self._kept
        if kept[0] is not base:
            kept = self._kept = (base, {})
        return kept[1]


def _lean(client: httpx.Client | httpx.AsyncClient) -> _JoinedUrls:
    client._cookies = AnswerCookies(client._cookies.jar)  # the same jar: nothing copied or lost
    return _JoinedUrls()


def _joined_url(
    client: httpx.Client | httpx.AsyncClient,
    joined: _JoinedUrls,
    url: httpx.URL | str,
    merge: Callable[[httpx.URL | str], httpx.URL],
) -> httpx.URL:
    """httpx's ``_merge_url`` (``merge``) of ``url``, once per relative path and ``base_url``."""
    if not isinstance(url, str) or not url.startswith("/"):
        return merge(url)
    base = client.base_url
    urls = joined.of(base)
    found = urls.get(url)
    if found is None:
        found = merge(url)
        # Kept only if joined to that base: another thread may have set base_url meanwhile.
        if client.base_url is base:
            if len(urls) >= KEPT_URLS:
                urls.clear()
            urls[url] = found
    return found


class Client(httpx.Client):
    """``httpx.Client`` that asks for an answer's cookies only when it sets some and joins each
    relative path to ``base_url`` once."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._joined = _lean(self)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        return _joined_url(self, self._joined, url, super()._merge_url)


class AsyncClient(httpx.AsyncClient):
    """``Client`` for asyncio and trio."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._joined = _lean(self)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        return _joined_url(self, self._joined, url, super()._merge_url)
