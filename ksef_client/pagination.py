"""Auto-pagination: one pager for every paging style of the API, sync and async.

A page fetcher maps a cursor to ``(items, next_cursor)``; ``next_cursor is None`` ends the walk.
For ``x-continuation-token`` listings the cursor is the token, for ``pageOffset`` listings the
page number. ``pager.cursor`` can be saved after any page and passed back to resume there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

from ksef_client._operations import page_size_bounds

T = TypeVar("T")
C = TypeVar("C")


def check_page_size(page_size: int, operation: ModuleType, field: str = "page_size") -> int:
    """``ValueError`` before any request when ``page_size`` is outside the bounds the spec gives
    the ``pageSize`` of ``operation`` (a generated operation module)."""
    low, high = page_size_bounds(operation)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not low <= page_size <= high:
        raise ValueError(f"{field}: {page_size!r} is outside the API's range {low}..{high}")
    return page_size


def offset_page_size(operation: Any, page_size: int | None) -> int | None:
    """The ``pageSize`` to send to ``operation`` (a generated operation module): ``page_size``,
    checked against the spec's bounds; by default (``None``) the largest the spec allows, since
    these differ (``POST /certificates/query`` takes at most 50, most take 100). For an operation
    the spec table does not know, ``page_size`` as given (``None``: its own default applies)."""
    try:
        _, high = page_size_bounds(operation)
    except (AttributeError, KeyError, ValueError):
        return page_size
    return high if page_size is None else check_page_size(page_size, operation)


@dataclass(frozen=True)
class Page(Generic[T, C]):
    """One page: its items and the cursor of the next page (``None`` on the last one)."""

    items: list[T]
    next_cursor: C | None


class Pager(Generic[T, C]):
    """Lazy iteration over items (``for x in pager``) or pages (``pager.pages()``)."""

    def __init__(self, fetch: Callable[[C | None], tuple[list[T], C | None]], cursor: C | None = None) -> None:
        self._fetch = fetch
        self.cursor: C | None = cursor
        self.done = False

    def pages(self) -> Iterator[Page[T, C]]:
        """Fetch pages one at a time; ``self.cursor`` always points at the next one."""
        while not self.done:
            items, next_cursor = self._fetch(self.cursor)
            self.cursor, self.done = next_cursor, next_cursor is None
            yield Page(items, next_cursor)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items


class AsyncPager(Generic[T, C]):
    """``async for x in pager`` / ``async for page in pager.pages()``."""

    def __init__(
        self, fetch: Callable[[C | None], Awaitable[tuple[list[T], C | None]]], cursor: C | None = None
    ) -> None:
        self._fetch = fetch
        self.cursor: C | None = cursor
        self.done = False

    async def pages(self) -> AsyncIterator[Page[T, C]]:
        """Fetch pages one at a time; ``self.cursor`` always points at the next one."""
        while not self.done:
            items, next_cursor = await self._fetch(self.cursor)
            self.cursor, self.done = next_cursor, next_cursor is None
            yield Page(items, next_cursor)

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item


def next_offset(page_offset: int, has_more: object) -> int | None:
    """The next ``pageOffset`` of an offset-paged listing (``None`` after the last page)."""
    return page_offset + 1 if has_more is True else None


def next_token(token: object) -> str | None:
    """A continuation token from a response body: empty or missing means the last page."""
    return token if isinstance(token, str) and token else None
