"""A ``dateRange`` date without an offset is Warsaw local time, summer time included.

api-changelog 2.1.2 (POST /invoices/exports, POST /invoices/query/metadata): "Naprawiono
interpretację parametrów `dateRange.from` / `dateRange.to` podawanych bez offsetu. Wartości bez
strefy czasowej są teraz jednoznacznie interpretowane zgodnie z dokumentacją (czas lokalny
Europe/Warsaw)." The spec of the guide (2.6.0) and every published spec up to 2.7.0 list the
variant: "bez offsetu (interpretowane jako czas lokalny strefy Europe/Warsaw)"; the pinned 2.9.0
no longer lists it, but still gives its example format without one ("np. `yyyy-MM-ddTHH:mm:ss`"),
and no changelog says such dates are now refused.

The emulator's schema check (RFC 3339 ``date-time``) refused them (21405), and the parser behind
it would have read them as +01:00 all year: an hour off from late March to late October.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest

from ksef_client.crypto import SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.state.invoice_query import parse_query
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.mock.conftest import session_encryption

SUMMER = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)  # 12:00 in Warsaw (CEST, +02:00)
WINTER = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)  # 11:00 in Warsaw (CET, +01:00)


@pytest.fixture
def sent_at(backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.datetime, str], None]:
    """Send an invoice numbered ``number`` with the emulator's clock at ``moment``."""

    def send(moment: dt.datetime, number: str) -> None:
        monkeypatch.setattr(backend, "clock", lambda: moment)
        session = backend.sessions.open(backend.authenticate("Bearer " + backend.mint_access_token(NIP)))
        assert backend.sessions.add_invoice(session, sample_invoice(number, issue_date=moment.date())).accepted
        backend.sessions.close(session)

    return send


def _found(raw: httpx.Client, start: str, end: str) -> list[str]:
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": start, "to": end}}
    answer = raw.post("/invoices/query/metadata", json=body)
    assert answer.status_code == 200, answer.text
    return [record["invoiceNumber"] for record in answer.json()["invoices"]]


@pytest.mark.parametrize(
    ("moment", "before", "after"),
    [
        # 12:00 Warsaw summer time: 11:30-11:59 local holds it, 12:01-12:30 does not; read as
        # +01:00, 11:30 would be 10:30 UTC, past the invoice.
        (SUMMER, ("2026-07-01T11:30:00", "2026-07-01T12:00:00"), ("2026-07-01T12:00:01", "2026-07-01T12:30:00")),
        # 11:00 Warsaw winter time.
        (WINTER, ("2026-01-15T10:30:00", "2026-01-15T11:00:00"), ("2026-01-15T11:00:01", "2026-01-15T11:30:00")),
    ],
    ids=["summer", "winter"],
)
def test_a_date_without_offset_is_warsaw_time(
    raw: httpx.Client,
    backend: KSeFBackend,
    sent_at: Callable[[dt.datetime, str], None],
    moment: dt.datetime,
    before: tuple[str, str],
    after: tuple[str, str],
) -> None:
    sent_at(moment, "FV/LOCAL/1")
    assert _found(raw, *before) == ["FV/LOCAL/1"]
    assert _found(raw, *after) == []
    with_offset = moment.isoformat()  # the same moment with its offset still finds it
    assert _found(raw, with_offset, with_offset) == ["FV/LOCAL/1"]


def test_an_export_reads_it_the_same(raw: httpx.Client, sent_at: Callable[[dt.datetime, str], None]) -> None:
    sent_at(SUMMER, "FV/LOCAL/2")
    date_range = {"dateType": "Invoicing", "from": "2026-07-01T11:30:00", "to": "2026-07-01T12:30:00"}
    body = {
        "encryption": session_encryption(SymmetricKey.generate()),
        "filters": {"subjectType": "Subject1", "dateRange": date_range},
    }
    started = raw.post("/invoices/exports", json=body)
    assert started.status_code == 201, started.text
    package = raw.get(f"/invoices/exports/{started.json()['referenceNumber']}").json()["package"]
    assert package["invoiceCount"] == 1


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-29T01:59:59", dt.datetime(2026, 3, 29, 0, 59, 59, tzinfo=dt.UTC)),  # CET, before the change
        ("2026-03-29T03:00:00", dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)),  # CEST, after it
        ("2026-10-25T01:00:00", dt.datetime(2026, 10, 24, 23, 0, tzinfo=dt.UTC)),  # CEST
        ("2026-10-25T04:00:00", dt.datetime(2026, 10, 25, 3, 0, tzinfo=dt.UTC)),  # CET again
        ("2026-07-01T12:00:00.5", dt.datetime(2026, 7, 1, 10, 0, 0, 500000, tzinfo=dt.UTC)),
        ("2026-07-01T12:00:00Z", dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)),  # an offset stays as given
    ],
)
def test_the_offset_follows_daylight_saving_time(text: str, utc: dt.datetime) -> None:
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Issue", "from": text}}
    assert parse_query(body, utc + dt.timedelta(days=1)).date_from == utc


@pytest.mark.parametrize(
    ("start", "end", "accepted"),
    [
        # "Maksymalny dozwolony okres wynosi 100 dni w strefie UTC" (the spec): 100 days of wall
        # clock from summer to winter time are 100 days and an hour in UTC, the other way round an
        # hour less.
        ("2026-09-01T00:00:00", "2026-12-10T00:00:00", False),
        ("2026-09-01T00:00:00", "2026-12-09T23:00:00", True),
        ("2026-03-01T00:00:00", "2026-06-09T01:00:00", True),
        ("2026-03-01T00:00:00", "2026-06-09T01:00:01", False),
    ],
)
def test_the_100_days_are_counted_in_utc(start: str, end: str, accepted: bool) -> None:
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Issue", "from": start, "to": end}}
    now = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    if accepted:
        parse_query(body, now)
    else:
        with pytest.raises(MockAPIError) as refused:
            parse_query(body, now)
        assert refused.value.code == 21405


@pytest.mark.parametrize("text", ["2026-07-01", "2026-07-01 12:00:00", "2026-07-01T12:00", "2026-13-01T12:00:00"])
def test_other_forms_are_still_refused(raw: httpx.Client, text: str) -> None:
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": text}}
    answer = raw.post("/invoices/query/metadata", json=body)
    assert answer.status_code == 400
    assert answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21405
