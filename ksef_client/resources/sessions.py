"""``ksef.sessions``: list, status, wait, invoices of sessions ("Status wysyłki i UPO")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ksef_client._core import parsed
from ksef_client._flows import (
    Call,
    Flow,
    PageFlow,
    all_items,
    apager,
    arun,
    pager,
    poll_flow,
    response_of,
    run,
    token_pages,
)
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
from ksef_client._generated.types import UNSET
from ksef_client.identifiers import validate_reference_number
from ksef_client.outcomes import InvoiceOutcome, listing_outcomes
from ksef_client.pagination import AsyncPager, Pager, check_page_size, next_token

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF
    from ksef_client._open_sessions import OpenSessions

# Session codes below 200 are not final: 100 open, 150 processing, 170 closed and processing.
FINAL_SESSION_CODE = 200
OPEN = 100


def is_final(status: SessionStatusResponse) -> bool:
    """Whether a session status will not change any more (200 or an error code)."""
    return status.status.code >= FINAL_SESSION_CODE


def date_filters(*bounds: dt.datetime | None) -> dict[str, dt.datetime | None]:
    """The six date filters of ``GET /sessions`` by their parameter names (created, closed,
    modified; from, to)."""
    names = [f"date_{what}_{end}" for what in ("created", "closed", "modified") for end in ("from", "to")]
    return dict(zip(names, bounds, strict=True))


def sessions_pages(
    session_type: str,
    statuses: Iterable[str] | None,
    page_size: int,
    reference_number: str | None,
    dates: dict[str, dt.datetime | None],
) -> PageFlow[str, SessionsQueryResponseItem]:
    """The pages of ``GET /sessions`` (arguments checked now, before any request); ``dates`` are
    the ``date_{created,closed,modified}_{from,to}`` filters, timezone-aware."""
    check_page_size(page_size, list_sessions)
    if reference_number is not None:
        validate_reference_number(reference_number)
    for name, value in dates.items():
        if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
            raise ValueError(f"{name}: a timezone-aware datetime")
    args: dict[str, Any] = {
        "session_type": SessionType(session_type),
        "statuses": [CommonSessionStatus(s) for s in statuses] if statuses else UNSET,
        "page_size": page_size,
        "reference_number": reference_number if reference_number is not None else UNSET,
        **{name: value if value is not None else UNSET for name, value in dates.items()},
    }

    def page(token: str | None) -> Flow[tuple[list[SessionsQueryResponseItem], str | None]]:
        call = Call(list_sessions, {**args, "x_continuation_token": token or UNSET})
        body = parsed(response_of((yield call)), SessionsQueryResponse)
        return body.sessions, next_token(body.continuation_token)

    return token_pages(page)


def status_flow(reference_number: str) -> Flow[SessionStatusResponse]:
    """``GET /sessions/{ref}``."""
    validate_reference_number(reference_number)
    call = Call(get_session_status, {"reference_number": reference_number})
    return parsed(response_of((yield call)), SessionStatusResponse)


# Status 100 when a wait for the session timed out: KSeF processes a session only after its close,
# and one never closed stays at 100 until KSeF closes it at its validUntil (an online session 12 hours
# after its open). Right after a close KSeF may still read 100 for a moment: only a whole wait at 100
# points to a session nobody closed.
NEVER_CLOSED = (
    ": KSeF processes a session only after its close, and 100 is an open session: it may never have been "
    "closed (leave the `with ksef.online_session() as session:` block or call session.close(); a batch "
    "session stays open when its send_batch failed before the close)"
)


def wait_flow(
    reference_number: str, timeout: float, interval: float, open_sessions: OpenSessions
) -> Flow[SessionStatusResponse]:
    """Poll the session's status until it is final; ``PollTimeoutError`` after ``timeout``, naming
    the last status (code and description; at 100 the hint that the session may not be closed).
    A session in ``open_sessions`` (the client's: opened by it, no close sent) is a
    ``RuntimeError`` saying how to close it, before any request."""
    validate_reference_number(reference_number)
    open_sessions.check_not_open(reference_number)
    return (
        yield from poll_flow(
            lambda: status_flow(reference_number),
            is_final,
            lambda s: f"session {reference_number} still at {s.status.code} {s.status.description}",
            timeout,
            interval,
            lambda s: NEVER_CLOSED if s.status.code == OPEN else "",
        )
    )


def invoices_pages(reference_number: str, failed: bool, page_size: int) -> PageFlow[str, SessionInvoiceStatusResponse]:
    """The pages of a session's invoices (``failed``: only the rejected ones)."""
    validate_reference_number(reference_number)
    operation = list_session_failed_invoices if failed else list_session_invoices
    check_page_size(page_size, operation)

    def page(token: str | None) -> Flow[tuple[list[SessionInvoiceStatusResponse], str | None]]:
        args = {"reference_number": reference_number, "page_size": page_size, "x_continuation_token": token or UNSET}
        body = parsed(response_of((yield Call(operation, args))), SessionInvoicesResponse)
        return body.invoices, next_token(body.continuation_token)

    return token_pages(page)


def invoice_flow(reference_number: str, invoice_reference_number: str) -> Flow[SessionInvoiceStatusResponse]:
    """``GET /sessions/{ref}/invoices/{invoiceRef}``."""
    validate_reference_number(reference_number)
    validate_reference_number(invoice_reference_number, "invoice_reference_number")
    args = {"reference_number": reference_number, "invoice_reference_number": invoice_reference_number}
    return parsed(response_of((yield Call(get_session_invoice_status, args))), SessionInvoiceStatusResponse)


Outcomes = list[InvoiceOutcome]  # (``list`` is a method name in the classes below)


def outcomes_flow(reference_number: str) -> Flow[Outcomes]:
    """Every invoice of a session with its outcome, in KSeF's ordinal order (``listing_outcomes``:
    a 440 repeating a file accepted in the session is marked ``repeat_of``)."""
    invoices = yield from all_items(invoices_pages(reference_number, False, 1000))
    return listing_outcomes(invoices)


class Sessions:
    """Sessions of the authenticated context."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def list(
        self,
        session_type: str = "Online",
        *,
        statuses: Iterable[str] | None = None,
        page_size: int = 100,
        reference_number: str | None = None,
        date_created_from: dt.datetime | None = None,
        date_created_to: dt.datetime | None = None,
        date_closed_from: dt.datetime | None = None,
        date_closed_to: dt.datetime | None = None,
        date_modified_from: dt.datetime | None = None,
        date_modified_to: dt.datetime | None = None,
        cursor: str | None = None,
    ) -> Pager[SessionsQueryResponseItem, str]:
        """Every session matching the filters, newest first, fetched page by page as you iterate.

        The ``date_*`` filters take timezone-aware datetimes: when the session was opened, closed
        (an open session has no closing) or last changed.
        """
        dates = date_filters(
            date_created_from, date_created_to, date_closed_from, date_closed_to, date_modified_from, date_modified_to
        )
        page = sessions_pages(session_type, statuses, page_size, reference_number, dates)
        return pager(page, self._client, cursor)

    def get(self, reference_number: str) -> SessionStatusResponse:
        """The status of one session (with UPO pages once processed)."""
        return run(status_flow(reference_number), self._client)

    def wait(self, reference_number: str, *, timeout: float = 600.0, interval: float = 2.0) -> SessionStatusResponse:
        """Poll until the session reaches a final status code; ``PollTimeoutError`` after ``timeout``
        (naming the last status). Reads every ``interval`` seconds at first, less often as the wait
        gets long (a tenth of the time waited, at most every 30 s: the status reads of a context
        are limited per hour); a read the rate limits hold back is waited for within ``timeout``,
        never past it.
        A session this client opened and has not closed (an ``online_session`` still inside its
        ``with`` block, or never closed; a batch whose ``send_batch`` failed before its close) is a
        ``RuntimeError`` at once, saying how to close it: KSeF processes a session only after its
        close."""
        return run(wait_flow(reference_number, timeout, interval, self._client._open_sessions), self._client)

    def invoices(
        self, reference_number: str, *, failed: bool = False, page_size: int = 100, cursor: str | None = None
    ) -> Pager[SessionInvoiceStatusResponse, str]:
        """Every invoice of the session (``failed=True``: only rejected ones), page by page."""
        return pager(invoices_pages(reference_number, failed, page_size), self._client, cursor)

    def invoice(self, reference_number: str, invoice_reference_number: str) -> SessionInvoiceStatusResponse:
        """The status of one invoice of a session."""
        return run(invoice_flow(reference_number, invoice_reference_number), self._client)

    def outcomes(self, reference_number: str) -> Outcomes:
        """Every invoice of the session (online or batch) with its ``InvoiceOutcome``, in KSeF's
        ordinal order; for an online session you hold, ``session.outcomes()`` keeps sending order.

        Every attempt KSeF lists is here, a send the client repeated after a lost answer too: its
        first attempt accepted, the repeat a 440 naming it. Such a 440, the same file accepted in
        this session, has ``is_repeat`` (``repeat_of``: the accepted attempt's reference number):
        not a failure, whereas ``session.outcomes()`` reports that invoice once, as accepted."""
        return run(outcomes_flow(reference_number), self._client)

    def check_duplicates(
        self, outcomes: Iterable[InvoiceOutcome], *, progress: Callable[[int, int], None] | None = None
    ) -> Outcomes:
        """``outcomes`` (what ``outcomes(ref)`` or ``session.outcomes()`` return, of one session or
        several) again, in their order, each 440 duplicate telling whether its file is the invoice
        KSeF holds under its number: ``same_file`` (``True``: in KSeF as ``duplicate_of``, nothing
        to do; ``False``: KSeF holds another invoice of this seller, kind and number, this file is
        not in KSeF and needs a new number; ``None``: could not tell, ``not_compared`` says why).
        KSeF judges a duplicate by those fields, not by the file, so ``duplicate_of`` alone does not
        mean "already sent".

        Each 440 gets the SHA-256 of its original (``original_hash``) to compare with its own
        ``invoice_hash``: a repeat's (``is_repeat``) is its own; one accepted in ``outcomes`` (the
        same session's listing) or compared before (an outcome this returned) costs no request; any
        other is read once from its UPO (``SkrotDokumentu``, ``GET /sessions/{ref}/invoices/ksef/
        {ksefNumber}/upo``: one request each, of the 120 a minute and 1,200 an hour of its group),
        or from its session's whole UPO (a status read and its pages) when that session holds 10 or
        more of the originals; an original accepted in ``outcomes`` but listed without its hash is
        read too. Each read is held to the client's ``deadline`` on its own (a call of N reads may
        take N times ``deadline``, besides the client's own pacing; a read past it raises
        ``APITimeoutError``).

        A read that fails for that original alone (KSeF's 4xx about it, such as 400 with 21178 or
        404; a UPO that does not check out, ``UPOError``; a reference number in KSeF's answer that
        is none) is not raised: ``same_file`` is ``None`` and ``not_compared`` names the error;
        calling this again with the result reads only those. A failure that any read would meet is
        raised at once, with a note saying how many originals were read: ``AuthenticationError``
        (401), ``PermissionDeniedError`` (403), ``APIConnectionError`` and ``APITimeoutError`` (the
        connection, a timeout, the deadline), ``RateLimitError`` (429) and
        ``ThrottleWaitTooLongError`` (the limits), ``InternalServerError`` (a 5xx after the
        retries), a failed token refresh. Nothing is lost then, nor when something else ends the
        call (``KeyboardInterrupt``, a cancellation, an exception of ``progress``): the exception's
        ``partial`` holds the outcomes with the originals read before it compared (the others
        ``not_compared`` "not read"); calling this again with ``error.partial`` does not read those
        again (the originals not read, and any whose own read failed, are). Other outcomes come
        back as they are.

        ``progress(done, total)``, a plain function, is called with ``(0, total)`` before the first
        read and after each original read (not at all when none needs a request). ``TypeError``
        before any request for ``outcomes`` that are not ``InvoiceOutcome`` objects or a
        ``progress`` that is not a plain function."""
        from ksef_client.resources._duplicate_flows import checking_duplicates  # noqa: PLC0415 - upo imports sessions

        with checking_duplicates(outcomes, progress) as flow:
            return run(flow, self._client)


class AsyncSessions:
    """Sessions of the authenticated context (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    def list(
        self,
        session_type: str = "Online",
        *,
        statuses: Iterable[str] | None = None,
        page_size: int = 100,
        reference_number: str | None = None,
        date_created_from: dt.datetime | None = None,
        date_created_to: dt.datetime | None = None,
        date_closed_from: dt.datetime | None = None,
        date_closed_to: dt.datetime | None = None,
        date_modified_from: dt.datetime | None = None,
        date_modified_to: dt.datetime | None = None,
        cursor: str | None = None,
    ) -> AsyncPager[SessionsQueryResponseItem, str]:
        """Every session matching the filters, newest first (``async for``).

        The ``date_*`` filters take timezone-aware datetimes: when the session was opened, closed
        (an open session has no closing) or last changed.
        """
        dates = date_filters(
            date_created_from, date_created_to, date_closed_from, date_closed_to, date_modified_from, date_modified_to
        )
        page = sessions_pages(session_type, statuses, page_size, reference_number, dates)
        return apager(page, self._client, cursor)

    async def get(self, reference_number: str) -> SessionStatusResponse:
        """The status of one session."""
        return await arun(status_flow(reference_number), self._client)

    async def wait(
        self, reference_number: str, *, timeout: float = 600.0, interval: float = 2.0
    ) -> SessionStatusResponse:
        """Poll until the session reaches a final status code (errors: see ``Sessions.wait``)."""
        return await arun(wait_flow(reference_number, timeout, interval, self._client._open_sessions), self._client)

    def invoices(
        self, reference_number: str, *, failed: bool = False, page_size: int = 100, cursor: str | None = None
    ) -> AsyncPager[SessionInvoiceStatusResponse, str]:
        """Every invoice of the session (``failed=True``: only rejected ones), page by page."""
        return apager(invoices_pages(reference_number, failed, page_size), self._client, cursor)

    async def invoice(self, reference_number: str, invoice_reference_number: str) -> SessionInvoiceStatusResponse:
        """The status of one invoice of a session."""
        return await arun(invoice_flow(reference_number, invoice_reference_number), self._client)

    async def outcomes(self, reference_number: str) -> Outcomes:
        """Every invoice of the session with its ``InvoiceOutcome`` (see ``Sessions.outcomes``)."""
        return await arun(outcomes_flow(reference_number), self._client)

    async def check_duplicates(
        self, outcomes: Iterable[InvoiceOutcome], *, progress: Callable[[int, int], None] | None = None
    ) -> Outcomes:
        """``outcomes`` again, each 440 duplicate telling whether its file is the invoice KSeF holds
        under its number (``same_file``, ``original_hash``, ``not_compared``: see
        ``Sessions.check_duplicates``); ``progress`` is a plain function, called on the event loop's
        thread."""
        from ksef_client.resources._duplicate_flows import checking_duplicates  # noqa: PLC0415 - upo imports sessions

        with checking_duplicates(outcomes, progress) as flow:
            return await arun(flow, self._client)
