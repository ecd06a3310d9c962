"""Auto-pagination: one pager for every paging style of the API, sync and async.

A page fetcher maps a cursor to ``(items, next_cursor)``; ``next_cursor is None`` ends the walk.
For ``x-continuation-token`` listings the cursor is the token (``token_cursor``: with the number of
the page's items handed out already, when it stands inside a page), for ``pageOffset`` listings
the number of items before the next one (``offset_cursor``). ``pager.cursor`` can be saved
between any two items (``for x in pager``) or pages (``pager.pages()``) and passed back to resume
there: it always stands after everything handed out so far.

A walk never asks for the same cursor twice: a server that hands back a token already used (the
same page again, or a cycle of pages) would keep it going forever, so that is
``ResponseFormatError`` (``RepeatedCursor``), raised before the page would be fetched again. An
empty page with a new token is not an error in itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

from ksef_client._operations import page_size_bounds
from ksef_client.errors import ResponseFormatError

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


class RepeatedCursor:
    """The cursors one walk has asked for; ``visit`` raises ``ResponseFormatError`` on one asked
    for before: the pages depend on nothing but the cursor, so the walk would never end."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[object] = set()

    def visit(self, cursor: object) -> None:
        """Note that the page at ``cursor`` is about to be fetched (``None``, the first page, is
        fetched once anyway; a cursor that cannot be hashed is not tracked)."""
        if cursor is None:
            return
        try:
            repeated = cursor in self._seen
        except TypeError:  # unhashable: a cursor of the caller's own Pager
            return
        if repeated:
            raise ResponseFormatError(
                f"the server led the listing back to a page already read (cursor {_shown(cursor)}): it would never end"
            )
        self._seen.add(cursor)


def _shown(cursor: object) -> str:
    text = repr(cursor)
    return text if len(text) <= 60 else f"{text[:57]}..."


# Where the cursor of a listing stands once ``items`` (the first ones, in order) of the page fetched
# at ``start`` are handed out; ``None``: the listing's cursor points at whole pages only.
Within = Callable[[C | None, list[T]], C | None]


class _Position(Generic[T, C]):
    """Where a pager stands (``cursor``, ``done``), written once for both pagers. Inside a page
    the cursor is worked out only when it is read (``within`` of the items handed out so far):
    working it out at every item cost a copy of the page's first items each time, quadratic in
    the page's size (5 ms per 5,000 items in pages of 1,000)."""

    def __init__(self, cursor: C | None, within: Within[C, T] | None) -> None:
        self._within = within
        self._cursor = cursor
        self._inside: tuple[C | None, list[T]] | None = None  # the page's start and items, while inside it
        self._handed = 0  # how many of them are handed out
        self.done = False

    @property
    def cursor(self) -> C | None:
        """Where the walk goes on: after everything handed out so far (save it, pass it back)."""
        if self._inside is not None and self._within is not None:
            start, items = self._inside
            return self._within(start, items[: self._handed])
        return self._cursor

    @cursor.setter
    def cursor(self, value: C | None) -> None:
        self._cursor, self._inside = value, None

    def _page_done(self, next_cursor: C | None) -> None:
        self.cursor, self.done = next_cursor, next_cursor is None

    def _handing_out(self, start: C | None, items: list[T], next_cursor: C | None) -> Iterator[T]:
        """The items of a page fetched at ``start``, the position moved past each as it is handed
        out: inside the page (``within``) until its last item, which leaves it at the next page."""
        if self._within is None or len(items) < 2:  # the cursor points at whole pages only
            self._page_done(next_cursor)
            yield from items
            return
        self._inside = (start, items)
        for count, item in enumerate(items[:-1], 1):
            self._handed = count
            yield item
        self._page_done(next_cursor)
        yield items[-1]


class Pager(_Position[T, C]):
    """Lazy iteration over items (``for x in pager``) or pages (``pager.pages()``).

    ``pager.cursor`` stands after everything handed out so far: after a page of ``pages()`` at
    the next page; between the items of ``for x in pager`` after the last item handed out (with
    ``within``; without it, at the next page as soon as a page's items start). ``done``: nothing
    more to hand out."""

    def __init__(
        self,
        fetch: Callable[[C | None], tuple[list[T], C | None]],
        cursor: C | None = None,
        within: Within[C, T] | None = None,
    ) -> None:
        super().__init__(cursor, within)
        self._fetch = fetch

    def _walk(self) -> Iterator[tuple[C | None, list[T], C | None]]:
        walk = RepeatedCursor()
        while not self.done:
            start = self.cursor
            walk.visit(start)
            items, next_cursor = self._fetch(start)
            yield start, items, next_cursor

    def pages(self) -> Iterator[Page[T, C]]:
        """Fetch pages one at a time; ``self.cursor`` points at the next one once a page is handed out."""
        for _, items, next_cursor in self._walk():
            self._page_done(next_cursor)
            yield Page(items, next_cursor)

    def __iter__(self) -> Iterator[T]:
        for start, items, next_cursor in self._walk():
            yield from self._handing_out(start, items, next_cursor)


class AsyncPager(_Position[T, C]):
    """``async for x in pager`` / ``async for page in pager.pages()``; ``cursor`` as ``Pager``'s."""

    def __init__(
        self,
        fetch: Callable[[C | None], Awaitable[tuple[list[T], C | None]]],
        cursor: C | None = None,
        within: Within[C, T] | None = None,
    ) -> None:
        super().__init__(cursor, within)
        self._fetch = fetch

    async def _walk(self) -> AsyncIterator[tuple[C | None, list[T], C | None]]:
        walk = RepeatedCursor()
        while not self.done:
            start = self.cursor
            walk.visit(start)
            items, next_cursor = await self._fetch(start)
            yield start, items, next_cursor

    async def pages(self) -> AsyncIterator[Page[T, C]]:
        """Fetch pages one at a time; ``self.cursor`` points at the next one once a page is handed out."""
        async for _, items, next_cursor in self._walk():
            self._page_done(next_cursor)
            yield Page(items, next_cursor)

    async def __aiter__(self) -> AsyncIterator[T]:
        async for start, items, next_cursor in self._walk():
            for item in self._handing_out(start, items, next_cursor):
                yield item


def offset_cursor(cursor: object) -> int:
    """The cursor of a ``pageOffset`` listing, checked before any request: ``None`` (the start) or
    an ``int`` >= 0, the number of items before the page to read. ``ValueError`` otherwise (a
    cursor read back from text as ``"20"``, a negative one: the spec's ``pageOffset`` has
    "minimum": 0).

    The cursor counts items, not pages: a page number means nothing without its page size, and a
    walk resumed with another ``page_size`` (the default, say) would skip or repeat items. With
    the item count, ``divmod(cursor, page_size)`` gives the page to read and how many of its items
    were read already, whatever page size either walk used."""
    if cursor is None:
        return 0
    if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0:
        raise ValueError(
            f"cursor: {cursor!r} is not a cursor of this listing (an int >= 0: the items before the next "
            "page, as pager.cursor gives it; None for the start)"
        )
    return cursor


def next_offset(page_offset: int, has_more: object) -> int | None:
    """The next ``pageOffset`` of an offset-paged listing (``None`` after the last page)."""
    return page_offset + 1 if has_more is True else None


def next_token(token: object) -> str | None:
    """A continuation token from a response body: missing, empty or blank means the last page (as
    the Ministry's own clients read it). It goes back in the ``x-continuation-token`` header of the
    next request, so anything but printable ASCII (no control character, no space at either end)
    is ``ResponseFormatError``: httpx would fail on it with a ``UnicodeEncodeError``, or send a
    header broken by CR/LF."""
    if not isinstance(token, str) or not token.strip():
        return None
    if not (token.isascii() and token.isprintable() and token == token.strip()):
        raise ResponseFormatError(f"continuation token from the server is not printable ASCII: {_shown(token)}")
    return token


# A continuation-token cursor that stands inside a page: this prefix, the number of the page's
# items handed out, ``:``, and the page's token (empty for the first page). A token from KSeF
# never starts with the prefix in practice; one that did would be given as such a cursor with 0
# (``token_cursor``), so every cursor with the prefix reads one way. A cursor without it is a
# token as KSeF gave it (as every cursor of these listings was before).
INSIDE_PAGE = "ksef-client:skip="


def token_cursor(token: str | None, handed: int = 0) -> str | None:
    """The cursor of a continuation-token listing at the page of ``token`` (``None``: the first)
    with its first ``handed`` items handed out: the token itself when none were."""
    if handed == 0 and (token is None or not token.startswith(INSIDE_PAGE)):
        return token
    return f"{INSIDE_PAGE}{handed}:{token or ''}"


def read_token_cursor(cursor: object) -> tuple[str | None, int]:
    """The token (``None``: the first page) and the number of its page's items handed out of a
    cursor of a continuation-token listing (``token_cursor``'s, or a token as KSeF gave it);
    ``ValueError`` for what is neither (checked before any request)."""
    if cursor is None:
        return None, 0
    if not isinstance(cursor, str):
        raise ValueError(f"cursor: {_shown(cursor)} is not a cursor of this listing (a str, as pager.cursor gives it)")
    if not cursor.startswith(INSIDE_PAGE):
        return cursor, 0
    count, colon, token = cursor[len(INSIDE_PAGE) :].partition(":")
    if not (colon and count.isascii() and count.isdigit()):
        raise ValueError(f"cursor: {_shown(cursor)} is not a cursor of this listing (as pager.cursor gives it)")
    return token or None, int(count)
