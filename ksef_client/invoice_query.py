"""Invoice metadata queries: the filters KSeF takes and the walk over every matching record.

``POST /invoices/query/metadata`` pages with ``pageOffset``/``hasMore`` and stops at 10,000
records with ``isTruncated``; the walk then narrows the window from the last record's date (its
start oldest first, its end newest first, as the spec says), offset 0, and drops the records it
already yielded at that date, so callers see each invoice once, in either order and by any date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import attrs

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, PageFlow, response_of
from ksef_client._generated.api.invoices import query_invoice_metadata
from ksef_client._generated.models import (
    InvoiceMetadata,
    InvoiceQueryDateType,
    InvoiceQueryFilters,
    InvoiceQuerySubjectType,
    QueryInvoicesMetadataResponse,
    SortOrder,
)
from ksef_client.errors import ResponseFormatError
from ksef_client.pagination import check_page_size

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


def build_filters(
    subject_type: str,
    date_from: dt.date | dt.datetime,
    date_to: dt.date | dt.datetime | None = None,
    *,
    date_type: str = "PermanentStorage",
    restrict_to_hwm: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """``InvoiceQueryFilters`` as JSON; ``ValueError`` on what KSeF would refuse."""
    if subject_type not in SUBJECT_TYPES:
        raise ValueError(f"subject_type: {subject_type!r} is not one of {', '.join(SUBJECT_TYPES)}")
    if date_type not in DATE_TYPES:
        raise ValueError(f"date_type: {date_type!r} is not one of {', '.join(DATE_TYPES)}")
    start = moment(date_from, "date_from")
    end = moment(date_to, "date_to", end_of_day=True) if date_to is not None else None
    if end is not None and (end < start or end - start > dt.timedelta(days=92)):
        raise ValueError("date_to: must be after date_from and at most 3 months later")
    date_range: dict[str, Any] = {"dateType": date_type, "from": start.isoformat()}
    if end is not None:
        date_range["to"] = end.isoformat()
    if restrict_to_hwm:
        date_range["restrictToPermanentStorageHwmDate"] = True
    return {"subjectType": subject_type, "dateRange": date_range, **api_filters(extra)}


def api_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The optional filters under the API's names (``seller_nip=`` or ``sellerNip=`` ->
    ``sellerNip``); a ``None`` value is no filter. ``ValueError`` on a name KSeF does not know: it
    would ignore it and answer with every invoice."""
    found: dict[str, Any] = {}
    for name, value in filters.items():
        api = FILTER_NAMES.get(name)
        if api is None:
            raise ValueError(f"{name}: not a metadata filter; the filters are {', '.join(sorted(FILTERS))}")
        if api in found:
            raise ValueError(f"{name}: the {api} filter is given twice")
        if value is not None:
            found[api] = value
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

    ``date_from``/``date_to`` are the window's bounds (``date_to``: ``None`` for the query's own):
    a truncated window is narrowed from the last record's date, ``date_from`` moved up when the
    walk goes oldest first (``Asc``), ``date_to`` moved down when newest first (``Desc``).
    ``skip`` holds the KSeF numbers already yielded at that bound, ``last``/``at_last`` the latest
    date seen so far and the numbers carrying it, ``prev``/``at_prev`` the date before it.
    """

    date_from: str
    page_offset: int = 0
    skip: tuple[str, ...] = ()
    last: str | None = None
    at_last: tuple[str, ...] = ()
    date_to: str | None = None
    prev: str | None = None
    at_prev: tuple[str, ...] = ()


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
    cursor: MetadataCursor, page: QueryInvoicesMetadataResponse, date_type: str, descending: bool = False
) -> tuple[list[InvoiceMetadata], MetadataCursor | None]:
    """Pure step of the walk: the records to yield and the next cursor (``None``: done)."""
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
        following = replace(cursor, page_offset=cursor.page_offset + 1, last=last, at_last=tuple(at_last))
        return items, replace(following, prev=prev, at_prev=at_prev)
    return items, None


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
        raise ResponseFormatError("metadata window truncated without progress (10,000+ records at one instant)")
    if descending:
        return MetadataCursor(cursor.date_from, 0, tuple(skip), date_to=bound)
    return MetadataCursor(bound, 0, tuple(skip), date_to=cursor.date_to)


def metadata_pages(
    filters: dict[str, Any], date_type: str, page_size: int, order: str
) -> PageFlow[MetadataCursor, InvoiceMetadata]:
    """The walk's pages: one ``POST /invoices/query/metadata`` at a cursor's window and offset,
    and the records it yields (``filters`` from ``build_filters``; page size checked now)."""
    check_page_size(page_size, query_invoice_metadata)
    sort_order = SortOrder(order)

    def page(at: MetadataCursor | None) -> Flow[tuple[list[InvoiceMetadata], MetadataCursor | None]]:
        cursor = at or MetadataCursor(filters["dateRange"]["from"])
        window = {**filters["dateRange"], "from": cursor.date_from}
        if cursor.date_to is not None:
            window["to"] = cursor.date_to
        body = InvoiceQueryFilters.from_dict({**filters, "dateRange": window})
        args = {"body": body, "page_offset": cursor.page_offset, "page_size": page_size, "sort_order": sort_order}
        answer = parsed(response_of((yield Call(query_invoice_metadata, args))), QueryInvoicesMetadataResponse)
        return next_metadata_page(cursor, answer, date_type, sort_order == SortOrder.DESC)

    return page
