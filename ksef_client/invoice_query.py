"""Invoice metadata queries: the filters KSeF takes and the walk over every matching record.

``POST /invoices/query/metadata`` pages with ``pageOffset``/``hasMore`` and stops at 10,000
records with ``isTruncated``; the walk then narrows the window from the last record's date (its
start oldest first, its end newest first, as the spec says), offset 0, and drops the records it
already yielded at that date, so callers see each invoice once, in either order and by any date.

Offset pages shift when an invoice that sorts before the walk's place arrives during the walk:
the next page then starts with records already yielded. Newest first, every new invoice would sort
first in a range without ``to`` (KSeF counts it to its present moment), so the walk fixes the end
of an open range when it starts; and by any date, it drops a record it yielded before should it
come again (``Yielded``: the last 10,000 numbers). An invoice that arrives during the walk and
sorts before its place does not come (the walk has passed it); one that sorts after, does. By
``PermanentStorage`` too: KSeF's high-water mark (HWM) trails its present, and past it invoices may
still appear with earlier dates ("W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić nowe
faktury", pobieranie-faktur/hwm.md). So only a walk held to the HWM
(``restrictToPermanentStorageHwmDate``) is final; it ends with the window that reaches the HWM
(``WalkHwm``), which its pager gives (``MetadataPager.permanent_storage_hwm_date``).

KSeF takes a ``dateRange`` of at most 100 days, a range without ``to`` counted to its present
moment; a longer range is walked in windows of at most 100 days (``window_end``/``window_start``),
oldest first or newest first as the records go.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import attrs

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, Listing, response_of
from ksef_client._generated.api.invoices import query_invoice_metadata
from ksef_client._generated.models import (
    InvoiceMetadata,
    InvoiceQueryDateType,
    InvoiceQueryFilters,
    InvoiceQuerySubjectType,
    QueryInvoicesMetadataResponse,
    SortOrder,
)
from ksef_client._query_filters import checked_filter
from ksef_client.errors import BadRequestError, QueryLimitError, ResponseFormatError
from ksef_client.pagination import AsyncPager, Pager, Within, check_page_size

SUBJECT_TYPES = tuple(m.value for m in InvoiceQuerySubjectType)
DATE_TYPES = tuple(m.value for m in InvoiceQueryDateType)


def _api_name(python_name: str) -> str:
    """``seller_nip`` -> ``sellerNip``: the generator's snake case undone."""
    first, *rest = python_name.split("_")
    return first + "".join(part.capitalize() for part in rest)


# The optional filters of ``InvoiceQueryFilters`` (all but the subject and the dates, which have
# parameters of their own), by their Python name and by the API's name -> the API's name.
_FIXED = ("subject_type", "date_range", "additional_properties")
FILTERS = tuple(field.name for field in attrs.fields(InvoiceQueryFilters) if field.name not in _FIXED)
FILTER_NAMES = {name: _api_name(python) for python in FILTERS for name in (python, _api_name(python))}

# InvoiceQueryFilters.dateRange (spec 2.9.0): "Maksymalny dozwolony okres wynosi 100 dni w strefie
# UTC"; InvoiceQueryDateRange.to: "Jeśli nie zostanie podana, przyjmowana jest bieżąca data i czas
# w UTC": a range without ``to`` is counted to KSeF's present moment.
MAX_RANGE = dt.timedelta(days=100)
# A range sent without ``to`` must still fit when KSeF reads it, on a clock that may run ahead of
# ours: one that starts closer than this to 100 days ago gets an explicit end instead.
OPEN_RANGE_MARGIN = dt.timedelta(hours=1)


def utc_now() -> dt.datetime:
    """The present moment in UTC (where an open range ends)."""
    return dt.datetime.now(dt.UTC)


def window_end(start: dt.datetime, end: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """The end of the window of at most 100 days that starts a range at ``start``: ``end`` when the
    range fits (``None``, open, when it has no end and fits with the margin); else ``start`` + 100
    days, for an open range at most ``now`` (never an end in the future)."""
    if end is None:
        return None if now - start <= MAX_RANGE - OPEN_RANGE_MARGIN else min(start + MAX_RANGE, now)
    return end if end - start <= MAX_RANGE else start + MAX_RANGE


def window_start(start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """The start of the window of at most 100 days that ends a range at ``end``."""
    return max(start, end - MAX_RANGE)


# 400 to POST /invoices/query/metadata (spec 2.9.0): "21183 | Zakres filtrowania wykracza poza
# dostępny zakres danych. | Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate
# przy włączonym restrictToPermanentStorageHwmDate." (Exports end with status 420 instead.)
QUERY_FROM_PAST_HWM = 21183


def restricted_to_hwm(filters: dict[str, Any]) -> bool:
    """Whether ``filters`` (``range_filters``'s) hold a walk to KSeF's HWM: ``restrictToPermanentStorageHwmDate``
    by ``PermanentStorage`` dates (the spec: "Dotyczy wyłącznie zapytań z dateType = PermanentStorage")."""
    date_range = filters["dateRange"]
    return bool(date_range.get("restrictToPermanentStorageHwmDate")) and date_range["dateType"] == "PermanentStorage"


def reached_hwm(filters: dict[str, Any], hwm: object, window_to: dt.datetime) -> bool:
    """Whether a window of a walk held to KSeF's HWM (``restricted_to_hwm``) that ends at
    ``window_to``, short of the walk's range, stopped at the HWM, so that the walk ends there.

    ``hwm`` is the ``permanentStorageHwmDate`` KSeF gave the window: "Dla okresów starszych, będzie
    to zgodne z warunkami zapytania" (its ``to``), for the newest period the HWM, before it (the
    spec). Before ``window_to``, the restriction ended the window at the HWM: a window after it
    would start past the HWM, which KSeF refuses (21183, export status 420), and nothing past the
    HWM is final yet ("W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić nowe faktury",
    pobieranie-faktur/hwm.md). Before by more than ``HWM_PRECISION``: for a past window KSeF gives
    the window's own ``to``, which it may write to fewer digits than it was sent with (the spec's
    example of the field has milliseconds), and a ``to`` with microseconds would then read as an
    HWM just before it and end the walk with the records of the later windows unread (review). An
    HWM that close (``near_hwm``) leaves the next window to be asked for, from that HWM
    (``next_window_start``). No ``hwm`` (optional in the spec): not known, ``False``."""
    if not restricted_to_hwm(filters) or not isinstance(hwm, dt.datetime):
        return False
    return aware(hwm) < window_to - HWM_PRECISION


# How far below a window's ``to`` an HWM may lie and still be that ``to`` written to fewer digits.
HWM_PRECISION = dt.timedelta(seconds=1)


def near_hwm(filters: dict[str, Any], hwm: object, window_to: dt.datetime) -> bool:
    """Whether the HWM KSeF gave a window ending at ``window_to`` lies just below it, within
    ``HWM_PRECISION``: the window's own ``to`` written to fewer digits, or the HWM itself; which
    one is told by the next window's answer (``reached_hwm``)."""
    if not restricted_to_hwm(filters) or not isinstance(hwm, dt.datetime):
        return False
    return window_to - HWM_PRECISION <= aware(hwm) < window_to


def next_window_start(filters: dict[str, Any], hwm: object, window_to: dt.datetime) -> dt.datetime:
    """Where the window after one that ended at ``window_to`` (short of the walk's range, not at the
    HWM: ``reached_hwm`` is false) starts: its ``to``, or the HWM KSeF gave it when that lies just
    below (``near_hwm``). Such an HWM may be the HWM itself, and an invoice KSeF stores after the
    window was answered may still get a date between it and ``to`` ("W przedziale (HWM, Teraz]
    [...] mogą się jeszcze pojawić nowe faktury", pobieranie-faktur/hwm.md): a window from ``to``
    would pass it by, though the walk's HWM, past it once the next window is answered, says the
    walk holds everything below. From the HWM, the next window holds it; what both windows hold
    (at most ``HWM_PRECISION`` of dates) is dropped as yielded before (exports: the same files)."""
    if isinstance(hwm, dt.datetime) and near_hwm(filters, hwm, window_to):
        return aware(hwm)
    return window_to


def build_filters(
    subject_type: str,
    date_from: dt.date | dt.datetime,
    date_to: dt.date | dt.datetime | None = None,
    *,
    date_type: str = "PermanentStorage",
    restrict_to_hwm: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """``InvoiceQueryFilters`` of one request as JSON; ``ValueError`` on what KSeF would refuse
    (the filters' values checked against the spec: ``api_filters``), a range over 100 days
    included (without ``date_to``: from ``date_from`` to now).
    ``ksef.invoices.query``/``export``/``sync`` walk longer ranges in windows."""
    filters = range_filters(
        subject_type, date_from, date_to, date_type=date_type, restrict_to_hwm=restrict_to_hwm, **extra
    )
    start, end = date_bounds(filters)
    if window_end(start, end, utc_now()) != end:
        raise ValueError(
            "date_from..date_to: at most 100 days per query (KSeF's dateRange limit), counted to now when "
            "date_to is not given; ksef.invoices.query/export/sync walk longer ranges in windows"
        )
    return filters


def date_bounds(filters: dict[str, Any]) -> tuple[dt.datetime, dt.datetime | None]:
    """``dateRange.from`` and ``dateRange.to`` (``None``: open) of filters made here."""
    date_range = filters["dateRange"]
    end = date_range.get("to")
    return dt.datetime.fromisoformat(date_range["from"]), dt.datetime.fromisoformat(end) if end else None


def with_window(filters: dict[str, Any], start: dt.datetime, end: dt.datetime | None) -> dict[str, Any]:
    """``filters`` narrowed to ``start``..``end`` (``None``: no ``to``)."""
    window = {key: value for key, value in filters["dateRange"].items() if key != "to"}
    window["from"] = start.isoformat()
    if end is not None:
        window["to"] = end.isoformat()
    return {**filters, "dateRange": window}


def range_filters(
    subject_type: str,
    date_from: dt.date | dt.datetime,
    date_to: dt.date | dt.datetime | None = None,
    *,
    date_type: str = "PermanentStorage",
    restrict_to_hwm: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """``build_filters`` for a range of any length (walked in windows); ``ValueError`` on the rest."""
    if subject_type not in SUBJECT_TYPES:
        raise ValueError(f"subject_type: {subject_type!r} is not one of {', '.join(SUBJECT_TYPES)}")
    if date_type not in DATE_TYPES:
        raise ValueError(f"date_type: {date_type!r} is not one of {', '.join(DATE_TYPES)}")
    start = moment(date_from, "date_from")
    end = moment(date_to, "date_to", end_of_day=True) if date_to is not None else None
    if end is not None and end < start:
        raise ValueError("date_to: must be after date_from")
    date_range: dict[str, Any] = {"dateType": date_type, "from": start.isoformat()}
    if end is not None:
        date_range["to"] = end.isoformat()
    if restrict_to_hwm:
        date_range["restrictToPermanentStorageHwmDate"] = True
    return {"subjectType": subject_type, "dateRange": date_range, **api_filters(extra)}


def api_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The optional filters under the API's names (``seller_nip=`` or ``sellerNip=`` ->
    ``sellerNip``) as JSON; a ``None`` value is no filter. ``ValueError`` on a name KSeF does not
    know, a key it does not know inside an object filter (``amount``, ``buyer_identifier``: KSeF
    would ignore either and answer with every invoice), and a value the spec does not allow
    (``checked_filter``: its enums, patterns, lengths and types)."""
    found: dict[str, Any] = {}
    for name, value in filters.items():
        api = FILTER_NAMES.get(name)
        if api is None:
            raise ValueError(f"{name}: not a metadata filter; the filters are {', '.join(sorted(FILTERS))}")
        if api in found:
            raise ValueError(f"{name}: the {api} filter is given twice")
        if value is not None:
            found[api] = checked_filter(name, api, value)
    return found


def moment(value: dt.date | dt.datetime, name: str, *, end_of_day: bool = False) -> dt.datetime:
    """A user's date or date-time as an aware date-time: a ``date`` is the start of that day in
    Poland (Europe/Warsaw; ``end_of_day``: its last microsecond), a naive ``datetime`` is refused
    (``ValueError`` naming the parameter: UTC or Polish time, the two differ by 1-2 hours)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{name}: {value.isoformat()} has no timezone; pass an aware datetime "
                "(tzinfo=datetime.UTC or ZoneInfo('Europe/Warsaw')) or a date (a day in Poland)"
            )
        return value
    if isinstance(value, dt.date):
        from zoneinfo import ZoneInfo  # noqa: PLC0415 - only for dates

        time = dt.time.max if end_of_day else dt.time.min
        return dt.datetime.combine(value, time, tzinfo=ZoneInfo("Europe/Warsaw"))
    raise ValueError(f"{name}: expected a date or a datetime, got {type(value).__name__}")


def aware(value: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class MetadataCursor:
    """Where a metadata walk stands; save it and pass it back to resume.

    ``date_from``/``date_to`` bound what is left of the walk (``date_to``: ``None`` for the query's
    own; newest first, an open range's end, fixed when the walk starts); each request takes at most
    100 days of it (KSeF's limit), from its start oldest first
    (``Asc``), from its end newest first (``Desc``). ``date_from`` moves up (``Asc``) or
    ``date_to`` down (``Desc``) when a window is done, or truncated (then to the last record's date).
    ``skip`` holds the KSeF numbers already yielded at that bound, ``last``/``at_last`` the latest
    date seen so far and the numbers carrying it, ``prev``/``at_prev`` the date before it.
    ``handed``: the KSeF numbers of the page at this cursor handed out already (``pager.cursor``
    read between two records of a page), left out when the page is read again.
    """

    date_from: str
    page_offset: int = 0
    skip: tuple[str, ...] = ()
    last: str | None = None
    at_last: tuple[str, ...] = ()
    date_to: str | None = None
    prev: str | None = None
    at_prev: tuple[str, ...] = ()
    handed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A cursor saved as JSON (dataclasses.asdict) comes back with lists: the walk adds to them
        # as tuples (was a TypeError once the resumed walk had sent its first query).
        for name in ("skip", "at_last", "at_prev", "handed"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                if not isinstance(value, list):
                    raise ValueError(f"MetadataCursor.{name}: a list of KSeF numbers, not {type(value).__name__}")
                object.__setattr__(self, name, tuple(value))


def _record_date(item: InvoiceMetadata, date_type: str) -> str:
    if date_type == "Issue":
        return item.issue_date.isoformat()
    value = item.invoicing_date if date_type == "Invoicing" else item.permanent_storage_date
    return value.isoformat()


def _bound(when: str, date_type: str, descending: bool) -> str:
    """The date a truncated window restarts from (``Asc``) or up to (``Desc``), so that it holds
    every record at ``when`` again (the walk skips the ones it yielded). An issue date is a day:
    its start (or end) in Poland, as KSeF takes dates with an offset only. A date-time as KSeF sent
    it may carry digits past the microsecond, which the parsed value has dropped: oldest first, the
    truncated value is at or before it; newest first, one microsecond more is at or after it."""
    if date_type == "Issue":
        return moment(dt.date.fromisoformat(when), "date", end_of_day=descending).isoformat()
    if descending:
        return (dt.datetime.fromisoformat(when) + dt.timedelta(microseconds=1)).isoformat()
    return when


def next_metadata_page(
    cursor: MetadataCursor,
    page: QueryInvoicesMetadataResponse,
    date_type: str,
    descending: bool = False,
    short_at: str | None = None,
) -> tuple[list[InvoiceMetadata], MetadataCursor | None]:
    """Pure step of the walk: the records to yield and the next cursor (``None``: done).

    ``short_at``: where the window after the request's starts (oldest first: its ``to``, or the
    HWM just below it, ``next_window_start``; newest first: where it ends, the request's ``from``),
    when the request's window stopped short of the rest of the walk's range (``None``: it reached
    the end). The next window starts there once this one is done, skipping what was yielded at the
    last date, and at the date before it when that is not before ``short_at`` (both windows hold
    them)."""
    items, last, at_last, prev, at_prev = [], cursor.last, list(cursor.at_last), cursor.prev, cursor.at_prev
    for item in page.invoices:
        when = _record_date(item, date_type)
        if when != last:
            prev, at_prev, last, at_last = last, tuple(at_last), when, []
        at_last.append(item.ksef_number)
        if item.ksef_number not in cursor.skip:
            items.append(item)
    # The spec: when isTruncated, narrow dateRange from the last record's date and start again at
    # offset 0, whether or not hasMore is set with it (KSeF sets both).
    if page.is_truncated:
        return items, _narrowed(cursor, date_type, descending, (last, tuple(at_last)), (prev, at_prev))
    if page.has_more:
        following = replace(cursor, page_offset=cursor.page_offset + 1, last=last, at_last=tuple(at_last), handed=())
        return items, replace(following, prev=prev, at_prev=at_prev)
    if short_at is None:
        return items, None
    if descending:
        return items, MetadataCursor(cursor.date_from, 0, tuple(at_last), date_to=short_at)
    skip = at_last
    below = prev is not None and date_type != "Issue" and _instant(prev) >= _instant(short_at)
    if below:  # the next window starts at an HWM below the last two dates
        skip = [*at_prev, *at_last]
    return items, MetadataCursor(short_at, 0, tuple(skip), date_to=cursor.date_to)


def _narrowed(
    cursor: MetadataCursor,
    date_type: str,
    descending: bool,
    last: tuple[str | None, tuple[str, ...]],
    prev: tuple[str | None, tuple[str, ...]],
) -> MetadataCursor:
    """The window after a truncated one: from (or, newest first, up to) the last record's date,
    skipping what was yielded at it; ``ResponseFormatError`` when that is where it already stood."""
    (when, at_when), (before, at_before) = last, prev
    if when is None:
        raise ResponseFormatError("metadata window truncated without a record")
    bound = _bound(when, date_type, descending)
    skip = dict.fromkeys(at_when)  # a set in the order the numbers came
    # Newest first, one microsecond past the last date may reach the date yielded just before it.
    reaches_before = before is not None and date_type != "Issue"
    if descending and reaches_before and dt.datetime.fromisoformat(str(before)) <= dt.datetime.fromisoformat(bound):
        skip.update(dict.fromkeys(at_before))
    if bound == (cursor.date_to if descending else cursor.date_from) and skip.keys() <= set(cursor.skip):
        raise _limit_error(when, date_type)
    if descending:
        return MetadataCursor(cursor.date_from, 0, tuple(skip), date_to=bound)
    return MetadataCursor(bound, 0, tuple(skip), date_to=cursor.date_to)


def _instant(when: str) -> dt.datetime:
    return aware(dt.datetime.fromisoformat(when))


def _limit_error(when: str, date_type: str) -> QueryLimitError:
    """The walk cannot get past ``when``: more records carry it than one query returns."""
    if date_type == "Issue":
        where = f"the issue date {when} (by date_type='Issue' the smallest range KSeF takes is a day)"
    else:
        where = f"the {date_type} date {when} (one instant)"
    instead = "" if date_type == "PermanentStorage" else "query by date_type='PermanentStorage' or "
    return QueryLimitError(
        f"more invoices have {where} than one query returns (KSeF: 10,000, then isTruncated), and a range "
        f"restarted from it returns the same ones: the walk cannot get past it; {instead}narrow the filters "
        "(seller_nip, buyer_identifier, invoice_types, amount, ...) so that fewer share it",
        date_type=date_type,
        date=when,
    )


# How many KSeF numbers a walk remembers having yielded. The spec: "Limit techniczny: ≤ 10 000
# rekordów na zestaw filtrów", then isTruncated and a new window: one run of offset pages
# returns at most 10,000 records, so their numbers all fit; a record of an earlier window can come
# again only at the date the next one restarts from, which the cursor's ``skip`` holds. Some
# 10,000 x 100 bytes: about 1 MB at most, whatever the walk's length.
REMEMBERED = 10_000


class Yielded:
    """The KSeF numbers a walk yielded last (at most ``size``, the oldest forgotten first), to
    drop a record that comes again because the offset pages shifted under the walk: records that
    come again after k invoices arrived before the walk's place are among the last k it yielded."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._order: deque[str] = deque()
        self._numbers: set[str] = set()
        self._size = size

    def fresh(self, items: list[InvoiceMetadata]) -> list[InvoiceMetadata]:
        """``items`` less those yielded before; the rest remembered as yielded."""
        found = self.unseen(items)
        self.remember(item.ksef_number for item in found)
        return found

    def unseen(self, items: list[InvoiceMetadata]) -> list[InvoiceMetadata]:
        """``items`` less those yielded before (and each once)."""
        found: dict[str, InvoiceMetadata] = {}
        for item in items:
            if item.ksef_number not in self._numbers:
                found.setdefault(item.ksef_number, item)
        return list(found.values())

    def remember(self, numbers: Iterable[str]) -> None:
        """Note ``numbers`` as yielded."""
        for number in numbers:
            if number in self._numbers:
                continue
            self._numbers.add(number)
            self._order.append(number)
            if len(self._order) > self._size:
                self._numbers.discard(self._order.popleft())


def metadata_pages(
    filters: dict[str, Any], date_type: str, page_size: int, order: str, hwm: WalkHwm | None = None
) -> Listing[MetadataCursor, InvoiceMetadata]:
    """The walk's pages: one ``POST /invoices/query/metadata`` at a cursor's window and offset,
    and the records it yields (``filters`` from ``range_filters``, of any length: each request takes
    a window of at most 100 days; page size checked now). The pages of one walk share what it
    yielded (``Yielded``); a walk resumed from a cursor starts without it, so a record that moved
    across the place it was saved at may come once more. ``hwm``: what the walk learns of KSeF's
    HWM (``WalkHwm(filters)``, for a ``MetadataPager`` to show; a new one when not given).

    Inside a page the cursor is the page's with the numbers of its records handed out
    (``MetadataCursor.handed``): the page read again at it leaves them out. The walk's own state
    (``skip``, what ends a window, a walk that cannot get past a date) does not depend on it."""
    check_page_size(page_size, query_invoice_metadata)
    sort_order = SortOrder(order)
    descending = sort_order == SortOrder.DESC
    own_to = filters["dateRange"].get("to")
    yielded, hwm = Yielded(), hwm or WalkHwm(filters)
    reading: list[MetadataCursor] = []  # the cursor of the page read last, as the request used it
    # The numbers of the records that page gave: yielded once the walk reads past it; when it reads
    # the same page again (a pager iterated again after a break), only those it handed out.
    given: list[str] = []

    def page(at: MetadataCursor | None) -> Flow[tuple[list[InvoiceMetadata], MetadataCursor | None]]:
        cursor = at or MetadataCursor(filters["dateRange"]["from"])
        now = utc_now()
        if descending:
            cursor = _end_fixed(cursor, own_to, now, hwm.restricted)
        again = bool(reading) and replace(cursor, handed=()) == replace(reading[0], handed=())
        yielded.remember(number for number in given if not again or number in cursor.handed)
        reading[:], given[:] = [cursor], []
        start, end, short_at = _request_window(cursor, own_to, descending, now)
        body = InvoiceQueryFilters.from_dict(with_window(filters, start, end))
        args = {"body": body, "page_offset": cursor.page_offset, "page_size": page_size, "sort_order": sort_order}
        try:
            response = response_of((yield Call(query_invoice_metadata, args)))
        except BadRequestError as error:
            if not hwm.refused_past_it(cursor, error):
                raise
            return [], None
        answer = parsed(response, QueryInvoicesMetadataResponse)
        hwm.note(answer)
        if not descending:  # newest first, each window ends where the one before started
            short_at = hwm.window_done(answer, short_at)
        items, following = next_metadata_page(cursor, answer, date_type, descending, short_at)
        fresh = [item for item in yielded.unseen(items) if item.ksef_number not in cursor.handed]
        given[:] = [item.ksef_number for item in fresh]
        return fresh, following

    def within(start: MetadataCursor | None, items: list[InvoiceMetadata]) -> MetadataCursor:
        """The cursor of the page read last (the pager asks before it reads the next) with ``items``
        handed out, besides those handed out before it was read."""
        cursor = reading[0]
        return replace(cursor, handed=cursor.handed + tuple(item.ksef_number for item in items))

    return Listing(page, within, _metadata_cursor)


def _metadata_cursor(cursor: object) -> object:
    """``ValueError`` for a cursor that is not a ``MetadataCursor`` (or ``None``), before any request."""
    if cursor is not None and not isinstance(cursor, MetadataCursor):
        raise ValueError(f"cursor: {cursor!r} is not a MetadataCursor (as pager.cursor of invoices.query gives it)")
    return cursor


class WalkHwm:
    """What one metadata walk knows of KSeF's HWM: the highest ``permanentStorageHwmDate`` its
    queries gave (``date``), and what ends a walk held to it (``restricted``) with the window that
    reaches it (``reached_hwm``), oldest first: a window after it would start past the HWM, which
    KSeF refuses (21183)."""

    def __init__(self, filters: dict[str, Any]) -> None:
        self._filters = filters
        self.restricted = restricted_to_hwm(filters)
        self.date: dt.datetime | None = None
        # Where the last window ended short of the range with no HWM to compare (optional in the spec).
        self._unsure_at: str | None = None

    def note(self, answer: QueryInvoicesMetadataResponse) -> None:
        """Keep the HWM of a page if it is the highest yet: each query gives its own (for an older
        period its ``to``: "Dla okresów starszych, będzie to zgodne z warunkami zapytania"), the
        same on all its pages ("stała dla wszystkich stron tego samego zapytania")."""
        hwm = answer.permanent_storage_hwm_date
        if isinstance(hwm, dt.datetime) and (self.date is None or aware(hwm) > self.date):
            self.date = aware(hwm)

    def window_done(self, answer: QueryInvoicesMetadataResponse, short_at: str | None) -> str | None:
        """Where the walk goes on after the window ``answer`` is a page of (``short_at``: where
        the window stops short of the walk's range, oldest first): ``None`` once it reached the HWM;
        from an HWM just below ``short_at`` (``next_window_start``), else from ``short_at``."""
        hwm = answer.permanent_storage_hwm_date
        if short_at is None:
            return None
        window_to = dt.datetime.fromisoformat(short_at)
        if reached_hwm(self._filters, hwm, window_to):
            return None  # the walk ends with this window
        start = next_window_start(self._filters, hwm, window_to)
        if start != window_to:
            short_at = start.isoformat()
        last_page = not answer.is_truncated and not answer.has_more
        # Without the HWM, the next window may start past it; from an HWM just below ``to`` it
        # should not (KSeF's HWM never moves back), but a 21183 there would mean the same.
        unknown = self.restricted and last_page and (start != window_to or not isinstance(hwm, dt.datetime))
        self._unsure_at = short_at if unknown else None
        return short_at

    def refused_past_it(self, cursor: MetadataCursor, error: BadRequestError) -> bool:
        """Whether ``error`` (the answer to the request at ``cursor``) ends the walk: 21183 to the
        first request of a window that starts where the window before ended, whole, without an HWM
        to tell whether it reached it. 21183 has one meaning ("dateRange.from jest późniejszy niż
        PermanentStorageHwmDate"): it did, and nothing after it is final yet."""
        unsure, self._unsure_at = self._unsure_at, None
        starts_there = unsure is not None and cursor.date_from == unsure and cursor.page_offset == 0
        return starts_there and QUERY_FROM_PAST_HWM in error.codes


class _WalkHwmDate:
    """``permanent_storage_hwm_date`` of a metadata walk's pager (sync and async alike)."""

    _hwm: WalkHwm

    @property
    def permanent_storage_hwm_date(self) -> dt.datetime | None:
        """The highest ``permanentStorageHwmDate`` KSeF gave the walk's queries so far (``None``
        before the first page, and by ``Issue`` or ``Invoicing`` dates: the spec gives it for
        ``PermanentStorage`` only). Below it KSeF holds every invoice ("System gwarantuje, że dane
        poniżej tej wartości są spójne i kompletne"). A walk with ``restrict_to_hwm=True`` yields
        nothing past it, and once ``done`` it has yielded every record of its range up to it: the
        next walk of new invoices starts there. Without the restriction the walk is not final: an
        invoice KSeF stores during it with a date before the walk's place, even one below this
        date, is not in it (pobieranie-faktur/hwm.md: new invoices may still appear in (HWM, Teraz])."""
        return self._hwm.date


class MetadataPager(_WalkHwmDate, Pager[InvoiceMetadata, MetadataCursor]):
    """The records of a metadata walk (``for record in pager``, ``pager.pages()``, ``pager.cursor``
    as every ``Pager``), and KSeF's high-water mark as the walk's queries gave it."""

    def __init__(
        self,
        fetch: Callable[[MetadataCursor | None], tuple[list[InvoiceMetadata], MetadataCursor | None]],
        cursor: MetadataCursor | None,
        hwm: WalkHwm,
        within: Within[MetadataCursor, InvoiceMetadata] | None = None,
    ) -> None:
        super().__init__(fetch, cursor, within)
        self._hwm = hwm


class AsyncMetadataPager(_WalkHwmDate, AsyncPager[InvoiceMetadata, MetadataCursor]):
    """``MetadataPager`` for ``AsyncKSeF`` (``async for record in pager``)."""

    def __init__(
        self,
        fetch: Callable[[MetadataCursor | None], Awaitable[tuple[list[InvoiceMetadata], MetadataCursor | None]]],
        cursor: MetadataCursor | None,
        hwm: WalkHwm,
        within: Within[MetadataCursor, InvoiceMetadata] | None = None,
    ) -> None:
        super().__init__(fetch, cursor, within)
        self._hwm = hwm


def _end_fixed(cursor: MetadataCursor, own_to: str | None, now: dt.datetime, restricted: bool) -> MetadataCursor:
    """Newest first, where the walk's range ends, fixed when it starts for all its pages and
    windows (and in its cursor, for a walk resumed from it).

    An open range ends at ``now``: KSeF counts a range without ``to`` to its present moment, so
    every invoice arriving during the walk would sort first and push each offset page down. Oldest
    first it sorts last: the range is left open (``PermanentStorage`` by ``Asc`` is the spec's
    incremental walk, and ``restrictToPermanentStorageHwmDate`` then ends it at KSeF's HWM).
    ``restricted`` (held to the HWM, which is never ahead of KSeF's present), a ``to`` more than
    ``OPEN_RANGE_MARGIN`` ahead ends there: the first window, the latest, would start past the HWM
    for a ``to`` more than 100 days ahead (21183), and nothing past it can come. A range starting
    after that end is left as it is (``to`` before ``from``)."""
    if cursor.date_to is not None:
        return cursor
    if own_to is None:
        end = now
    elif restricted and dt.datetime.fromisoformat(own_to) > now + OPEN_RANGE_MARGIN:
        end = now + OPEN_RANGE_MARGIN
    else:
        return cursor
    if dt.datetime.fromisoformat(cursor.date_from) > end:
        return cursor
    return replace(cursor, date_to=end.isoformat())


def _request_window(
    cursor: MetadataCursor, own_to: str | None, descending: bool, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime | None, str | None]:
    """The ``from`` and ``to`` of the request at ``cursor`` (at most 100 days of the rest of the
    walk's range: its start oldest first, its end newest first) and where it stops short of that
    rest (``None``: it reaches it all)."""
    start = dt.datetime.fromisoformat(cursor.date_from)
    raw_end = cursor.date_to or own_to
    end = dt.datetime.fromisoformat(raw_end) if raw_end else None
    if descending and end is not None:
        first = window_start(start, end)
        return first, end, None if first == start else first.isoformat()
    last = window_end(start, end, now)
    if last is None or last == end:
        return start, last, None
    return start, last, last.isoformat()
