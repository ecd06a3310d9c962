"""The emulator enforces every window of a group's limits, not only the per-second one.

Raw HTTP against the emulator (no SDK, so none of its pacing), the emulator's clock moved in steps
of a quarter second (exact in floating point) from a whole second. The expected limits are written
out here from the guide, not read from the code's table (limity/limity-api.md; the spec's
``x-rate-limits`` of each operation gives the same numbers):

    Pobranie listy metadanych faktur | POST /invoices/query/metadata | 8 | 16 | 20
    Pobranie listy sesji             | GET /sessions                 | 5 | 10 | 60
    Pozostałe                        | GET /sessions/*               | 10 | 120 | 1200
    Pozostałe                        | POST/GET /*                   | 10 | 30 | 120

"Limity są egzekwowane w modelu przesuwającego się okna czasowego [...] dla progu req/h - w
ostatnich 60 minutach, dla progu req/min - w ostatnich 60 sekundach, dla progu req/s - w ostatniej
sekundzie", and "Dokładny czas blokady jest zwracany w nagłówku odpowiedzi Retry-After (w
sekundach)": a whole number of seconds after which the request is accepted, so the wait rounded
up, never 0.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ksef_client._throttle import Throttle
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from tests.conftest import NIP

SESSION = "20261120-SO-0000000000-000000000000-00"


@dataclass(frozen=True)
class Group:
    """One row of the guide's tables: a request of the group and its limits."""

    name: str
    method: str
    path: str
    per_second: int
    per_minute: int
    per_hour: int


METADATA = Group("invoiceMetadata", "POST", "/invoices/query/metadata", 8, 16, 20)
SESSION_LIST = Group("sessionList", "GET", "/sessions?sessionType=Online&pageSize=10", 5, 10, 60)
SESSION_MISC = Group("sessionMisc", "GET", f"/sessions/{SESSION}", 10, 120, 1200)
OTHER = Group("other", "GET", "/limits/context", 10, 30, 120)


class Emulator:
    """The emulator enforcing KSeF's limits on a clock the test moves, and a client of it."""

    def __init__(self, http: httpx.Client, start: dt.datetime) -> None:
        self.http, self.start, self.at = http, start, 0.0

    def send(self, group: Group, at: float, *, problem: bool = False) -> httpx.Response:
        """``group``'s request at ``at`` seconds after the start (the clock never goes back)."""
        assert at >= self.at
        self.at = at
        body: dict[str, Any] | None = None
        if group.method == "POST":  # a query of the day before the start: valid whatever the clock
            since = (self.start - dt.timedelta(days=1)).isoformat()
            body = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}
        headers = {"X-Error-Format": "problem-details"} if problem else {}
        return self.http.request(group.method, group.path, json=body, headers=headers)

    def burst(self, group: Group, at: float, count: int) -> None:
        """``count`` requests of ``group`` at ``at``, each accepted."""
        statuses = [self.send(group, at).status_code for _ in range(count)]
        assert 429 not in statuses, (group.name, at, statuses)


@pytest.fixture
def emulator(ksef_mock: KSeFMock, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with httpx.Client(base_url=ksef_mock.base_url) as http:
        emulator = Emulator(http, start)
        monkeypatch.setattr(backend, "rate_limits", Throttle(scale=1.0))  # KSeF's production limits
        monkeypatch.setattr(backend, "clock", lambda: start + dt.timedelta(seconds=emulator.at))
        token = backend.mint_access_token(NIP, ttl=dt.timedelta(hours=3))  # outlives the hour moved
        http.headers["Authorization"] = f"Bearer {token}"
        yield emulator


def _refused(answer: httpx.Response, group: Group, per: str | None = None) -> int:
    """The Retry-After of a 429 of ``group`` (``per``: the window its detail names)."""
    assert answer.status_code == 429, answer.text
    detail = answer.json()["status"]["details"][0]
    assert f"(grupa {group.name})" in detail, detail
    if per is not None:
        assert per in detail, detail
    retry_after = answer.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    return int(retry_after)


def _fill_minute(emulator: Emulator, group: Group) -> float:
    """``group``'s per-minute limit used up in bursts a second apart from 0, none over the
    per-second limit: the time of the last burst."""
    at, left = 0.0, group.per_minute
    while left:
        emulator.burst(group, at, min(left, group.per_second))
        left -= min(left, group.per_second)
        at += 1
    return at - 1


@pytest.mark.parametrize("group", [METADATA, SESSION_LIST, SESSION_MISC, OTHER], ids=lambda g: g.name)
def test_the_per_minute_limit_refuses_until_its_oldest_request_leaves_the_minute(
    emulator: Emulator, group: Group
) -> None:
    last = _fill_minute(emulator, group)
    assert last + 1 < 60  # the bursts fit in the minute, each within the per-second limit
    now = last + 1.5  # a second with room: only the minute is full
    retry_after = _refused(emulator.send(group, now), group, "na minutę")
    # The first burst, at 0, leaves the window at 60: the wait is 60 - now, with a half second,
    # rounded up (rounded down, a client back on time would be refused again).
    assert retry_after == math.ceil(60 - now) == 60 - now + 0.5
    assert _refused(emulator.send(group, 59.75), group, "na minutę") == 1  # 0.25 s left: 1, never 0
    assert emulator.send(group, now + retry_after).status_code != 429  # as Retry-After promised


@pytest.mark.parametrize("group", [METADATA, SESSION_LIST, OTHER], ids=lambda g: g.name)
def test_the_per_hour_limit_refuses_until_its_oldest_request_leaves_the_hour(emulator: Emulator, group: Group) -> None:
    # Minutes filled one after another, each starting once the last has left the minute's window,
    # until the hour's limit is used up.
    minute_long = math.ceil(group.per_minute / group.per_second) + 60
    sent, minute = 0, 0
    while sent < group.per_hour:
        count = min(group.per_minute, group.per_hour - sent)
        at = minute * minute_long
        while count:
            emulator.burst(group, at, min(count, group.per_second))
            sent, count, at = sent + min(count, group.per_second), count - min(count, group.per_second), at + 1
        minute += 1
    now = minute * minute_long + 0.5  # the second and the minute have room: only the hour is full
    assert now < 3600
    retry_after = _refused(emulator.send(group, now), group, "na godzinę")
    assert retry_after == math.ceil(3600 - now) == 3600 - now + 0.5  # until the first burst, at 0, leaves
    assert _refused(emulator.send(group, 3599.75), group, "na godzinę") == 1
    assert emulator.send(group, now + retry_after).status_code != 429
    # The first burst freed its places only: the hour holds the rest still.
    freed = min(group.per_second, group.per_minute, group.per_hour)
    emulator.burst(group, now + retry_after, freed - 1)
    assert _refused(emulator.send(group, now + retry_after + 0.25), group) == 1


@pytest.mark.parametrize("offset", [0.25, 0.5, 0.75])
def test_a_per_second_refusal_is_the_wait_rounded_up_never_0(emulator: Emulator, offset: float) -> None:
    emulator.burst(SESSION_LIST, 0.0, SESSION_LIST.per_second)
    assert _refused(emulator.send(SESSION_LIST, offset), SESSION_LIST, "na sekundę") == 1
    assert emulator.send(SESSION_LIST, 1.0).status_code != 429  # the burst at 0 left at 1


@pytest.mark.parametrize("problem", [False, True], ids=["legacy", "problem-details"])
def test_a_429_has_the_form_the_spec_gives_for_its_media_type(emulator: Emulator, problem: bool) -> None:
    # The 429 of GET /sessions is application/json (TooManyRequestsResponse) or, asked for with
    # X-Error-Format: problem-details, application/problem+json (TooManyRequestsProblemDetails:
    # detail, instance, status, timestamp, title and traceId required). The session's emulator is
    # strict: an answer breaking its schema fails the test too.
    emulator.burst(SESSION_LIST, 0.0, SESSION_LIST.per_second)
    answer = emulator.send(SESSION_LIST, 0.5, problem=problem)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    body = answer.json()
    if not problem:
        assert answer.headers["content-type"].startswith("application/json")
        assert body["status"]["code"] == 429 and body["status"]["description"] == "Too Many Requests"
        assert body["status"]["details"] == [
            "Przekroczono limit 5 żądań na sekundę (grupa sessionList). Spróbuj ponownie po 1 sekundzie."
        ]
        return
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert {"detail", "instance", "status", "timestamp", "title", "traceId"} <= body.keys()
    assert (body["title"], body["status"], body["instance"]) == ("Too Many Requests", 429, "/v2/sessions")
    assert body["detail"].startswith("Przekroczono limit 5 żądań na sekundę (grupa sessionList).")
    assert body["traceId"] and dt.datetime.fromisoformat(body["timestamp"])


def test_an_injected_429_names_the_rate_limit_group(ksef_mock: KSeFMock, backend: KSeFBackend) -> None:
    # Was: "Przekroczono limit dla grupy sessions_status.list_sessions" (the emulator's operation
    # key); KSeF's groups are the keys of GET /rate-limits.
    backend.faults.add(429, operation="sessions_status.list_sessions", retry_after=7)
    headers = {"Authorization": f"Bearer {ksef_mock.token(NIP)}"}
    answer = httpx.get(f"{ksef_mock.base_url}/sessions", params={"sessionType": "Online"}, headers=headers)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert answer.json()["status"]["details"] == [
        "Przekroczono limit żądań (grupa sessionList). Spróbuj ponownie po 7 sekundach."
    ]
