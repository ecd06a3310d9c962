"""``ksef.peppol``: the Peppol service providers registered in KSeF (``GET /peppol/query``).

The spec: "Zwraca listę dostawców usług Peppol zarejestrowanych w systemie", sorted "dateCreated
(Desc), id (Asc)", paged by ``pageOffset``/``pageSize`` (10..100) with ``hasMore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksef_client._flows import PageFlow, apager, offset_pages, pager
from ksef_client._generated.api.peppol import query_peppol_providers
from ksef_client._generated.models import PeppolProvider
from ksef_client.pagination import AsyncPager, Pager, offset_cursor

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF


def providers_pages(page_size: int | None, cursor: int | None) -> PageFlow[int, PeppolProvider]:
    """The pages of ``GET /peppol/query``; ``page_size`` (10..100, by default 100) and ``cursor``
    (the items before the next page) checked now, before any request."""
    offset_cursor(cursor)
    return offset_pages(query_peppol_providers, "peppol_providers", page_size, {})


class Peppol:
    """Peppol service providers known to KSeF."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def providers(self, *, page_size: int | None = None, cursor: int | None = None) -> Pager[PeppolProvider, int]:
        """The Peppol service providers registered in KSeF (``id``, ``name``, ``date_created``),
        newest first, fetched page by page as you iterate. ``page_size``: 10 to 100 (the spec's
        range; by default 100); ``cursor``: ``pager.cursor`` of an earlier walk, to resume it."""
        return pager(providers_pages(page_size, cursor), self._client, cursor)


class AsyncPeppol:
    """Peppol service providers known to KSeF (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    def providers(self, *, page_size: int | None = None, cursor: int | None = None) -> AsyncPager[PeppolProvider, int]:
        """The Peppol service providers registered in KSeF (``async for``); see :meth:`Peppol.providers`."""
        return apager(providers_pages(page_size, cursor), self._client, cursor)
