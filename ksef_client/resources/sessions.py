"""``ksef.sessions``: list, status, wait, invoices of sessions ("Status wysyłki i UPO")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ksef_client._core import parsed
from ksef_client._generated.api.sessions_status import (
    get_session_invoice_status,
    get_session_status,
    list_session_failed_invoices,
    list_session_invoices,
    list_sessions,
)
from ksef_client._generated.models import (
    CommonSessionStatus,
    SessionInvoicesResponse,
    SessionInvoiceStatusResponse,
    SessionsQueryResponse,
    SessionsQueryResponseItem,
    SessionStatusResponse,
    SessionType,
)
from ksef_client._generated.types import UNSET, Unset
from ksef_client.errors import PollTimeoutError
from ksef_client.identifiers import validate_reference_number
from ksef_client.pagination import CONTINUATION_PAGE_SIZE, AsyncPager, Pager, check_page_size, next_token

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

# Session codes below 200 are not final: 100 open, 150 processing, 170 closed and processing.
FINAL_SESSION_CODE = 200


def is_final(status: SessionStatusResponse) -> bool:
    """Whether a session status will not change any more (200 or an error code)."""
    return status.status.code >= FINAL_SESSION_CODE


def _list_args(
    session_type: str, statuses: Iterable[str] | None, page_size: int, reference_number: str | None,
    date_created_from: dt.datetime | None, date_created_to: dt.datetime | None,
) -> dict[str, object]:  # fmt: skip
    check_page_size(page_size, CONTINUATION_PAGE_SIZE)
    if reference_number is not None:
        validate_reference_number(reference_number)
    return {
        "session_type": SessionType(session_type),
        "statuses": [CommonSessionStatus(s) for s in statuses] if statuses else UNSET,
        "page_size": page_size,
        "reference_number": reference_number if reference_number is not None else UNSET,
        "date_created_from": date_created_from if date_created_from is not None else UNSET,
        "date_created_to": date_created_to if date_created_to is not None else UNSET,
    }


def _token(cursor: str | None) -> str | Unset:
    return cursor if cursor else UNSET


class Sessions:
    """Sessions of the authenticated context."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def list(
        self, session_type: str = "Online", *, statuses: Iterable[str] | None = None, page_size: int = 100,
        reference_number: str | None = None, date_created_from: dt.datetime | None = None,
        date_created_to: dt.datetime | None = None, cursor: str | None = None,
    ) -> Pager[SessionsQueryResponseItem, str]:  # fmt: skip
        """Every session matching the filters, newest first, fetched page by page as you iterate."""
        args = _list_args(session_type, statuses, page_size, reference_number, date_created_from, date_created_to)
        raw = self._client.raw

        def fetch(token: str | None) -> tuple[list[SessionsQueryResponseItem], str | None]:
            call = lambda: list_sessions.sync_detailed(client=raw, x_continuation_token=_token(token), **args)  # type: ignore[arg-type] # noqa: E731
            page = parsed(self._client._send(call), SessionsQueryResponse)
            return page.sessions, next_token(page.continuation_token)

        return Pager(fetch, cursor)

    def get(self, reference_number: str) -> SessionStatusResponse:
        """The status of one session (with UPO pages once processed)."""
        validate_reference_number(reference_number)
        call = lambda: get_session_status.sync_detailed(reference_number, client=self._client.raw)  # noqa: E731
        return parsed(self._client._send(call), SessionStatusResponse)

    def wait(self, reference_number: str, *, timeout: float = 600.0, interval: float = 2.0) -> SessionStatusResponse:
        """Poll until the session reaches a final status code; ``PollTimeoutError`` after ``timeout``."""
        deadline = self._client._clock() + timeout
        while True:
            status = self.get(reference_number)
            if is_final(status):
                return status
            if self._client._clock() + interval > deadline:
                raise PollTimeoutError(
                    f"session {reference_number} still at {status.status.code} after {timeout:g} s", status
                )
            self._client._sleep(interval)

    def invoices(
        self, reference_number: str, *, failed: bool = False, page_size: int = 100, cursor: str | None = None
    ) -> Pager[SessionInvoiceStatusResponse, str]:
        """Every invoice of the session (``failed=True``: only rejected ones), page by page."""
        validate_reference_number(reference_number)
        check_page_size(page_size, CONTINUATION_PAGE_SIZE)
        operation = list_session_failed_invoices if failed else list_session_invoices
        raw = self._client.raw

        def fetch(token: str | None) -> tuple[list[SessionInvoiceStatusResponse], str | None]:
            call = lambda: operation.sync_detailed(  # noqa: E731
                reference_number, client=raw, page_size=page_size, x_continuation_token=_token(token)
            )
            page = parsed(self._client._send(call), SessionInvoicesResponse)
            return page.invoices, next_token(page.continuation_token)

        return Pager(fetch, cursor)

    def invoice(self, reference_number: str, invoice_reference_number: str) -> SessionInvoiceStatusResponse:
        """The status of one invoice of a session."""
        validate_reference_number(reference_number)
        validate_reference_number(invoice_reference_number, "invoice_reference_number")
        call = lambda: get_session_invoice_status.sync_detailed(  # noqa: E731
            reference_number, invoice_reference_number, client=self._client.raw
        )
        return parsed(self._client._send(call), SessionInvoiceStatusResponse)


class AsyncSessions:
    """Sessions of the authenticated context (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    def list(
        self, session_type: str = "Online", *, statuses: Iterable[str] | None = None, page_size: int = 100,
        reference_number: str | None = None, date_created_from: dt.datetime | None = None,
        date_created_to: dt.datetime | None = None, cursor: str | None = None,
    ) -> AsyncPager[SessionsQueryResponseItem, str]:  # fmt: skip
        """Every session matching the filters, newest first (``async for``)."""
        args = _list_args(session_type, statuses, page_size, reference_number, date_created_from, date_created_to)
        raw = self._client.raw

        async def fetch(token: str | None) -> tuple[list[SessionsQueryResponseItem], str | None]:
            call = lambda: list_sessions.asyncio_detailed(client=raw, x_continuation_token=_token(token), **args)  # type: ignore[arg-type] # noqa: E731
            page = parsed(await self._client._send(call), SessionsQueryResponse)
            return page.sessions, next_token(page.continuation_token)

        return AsyncPager(fetch, cursor)

    async def get(self, reference_number: str) -> SessionStatusResponse:
        """The status of one session."""
        validate_reference_number(reference_number)
        call = lambda: get_session_status.asyncio_detailed(reference_number, client=self._client.raw)  # noqa: E731
        return parsed(await self._client._send(call), SessionStatusResponse)

    async def wait(
        self, reference_number: str, *, timeout: float = 600.0, interval: float = 2.0
    ) -> SessionStatusResponse:
        """Poll until the session reaches a final status code; ``PollTimeoutError`` after ``timeout``."""
        deadline = self._client._clock() + timeout
        while True:
            status = await self.get(reference_number)
            if is_final(status):
                return status
            if self._client._clock() + interval > deadline:
                raise PollTimeoutError(
                    f"session {reference_number} still at {status.status.code} after {timeout:g} s", status
                )
            await self._client._sleep(interval)

    def invoices(
        self, reference_number: str, *, failed: bool = False, page_size: int = 100, cursor: str | None = None
    ) -> AsyncPager[SessionInvoiceStatusResponse, str]:
        """Every invoice of the session (``failed=True``: only rejected ones), page by page."""
        validate_reference_number(reference_number)
        check_page_size(page_size, CONTINUATION_PAGE_SIZE)
        operation = list_session_failed_invoices if failed else list_session_invoices
        raw = self._client.raw

        async def fetch(token: str | None) -> tuple[list[SessionInvoiceStatusResponse], str | None]:
            call = lambda: operation.asyncio_detailed(  # noqa: E731
                reference_number, client=raw, page_size=page_size, x_continuation_token=_token(token)
            )
            page = parsed(await self._client._send(call), SessionInvoicesResponse)
            return page.invoices, next_token(page.continuation_token)

        return AsyncPager(fetch, cursor)

    async def invoice(self, reference_number: str, invoice_reference_number: str) -> SessionInvoiceStatusResponse:
        """The status of one invoice of a session."""
        validate_reference_number(reference_number)
        validate_reference_number(invoice_reference_number, "invoice_reference_number")
        call = lambda: get_session_invoice_status.asyncio_detailed(  # noqa: E731
            reference_number, invoice_reference_number, client=self._client.raw
        )
        return parsed(await self._client._send(call), SessionInvoiceStatusResponse)
