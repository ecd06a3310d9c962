"""An export package expires, and then its status goes too.

- InvoiceExportStatusResponse.packageExpirationDate (the spec): "Data wygaśnięcia paczki faktur
  przygotowanej do pobrania. Po upływie tej daty paczka nie będzie już dostępna do pobrania."
  KSeF gives it 7 days after completedDate (CIRFMF/ksef-api#821: ``CompletedDate:
  "2026-06-03T06:21:22.4471109+00:00", PackageExpirationDate: "2026-06-10T06:21:22.4471109+00:00"``).
- Its status: "210 | Eksport faktur wygasł i nie jest już dostępny do pobrania".
- GET /invoices/exports/{referenceNumber}: "Status eksportu paczki faktur jest dostępny przez 7
  dni"; api-changelog 2.4.0: "Eksport faktur - GET `/invoices/exports/{referenceNumber}`: 7 dni
  [...] Po upływie okresu retencji odpytywanie statusu zwraca `410 Gone`", answered as the spec's
  ``GoneProblemDetails`` (``application/problem+json``).

The emulator gave no packageExpirationDate and served the package, with fresh links, for as long
as it ran. (``ksef_mock`` runs in strict mode: every answer here is also checked against the spec.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest

from ksef_client.crypto import SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.mock.conftest import session_encryption

WEEK = dt.timedelta(days=7)
NOW = dt.datetime(2026, 6, 3, 6, 21, 22, tzinfo=dt.UTC)


@pytest.fixture
def at(backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.timedelta], None]:
    """Set the emulator's clock to ``NOW`` plus the given time."""

    def move(offset: dt.timedelta) -> None:
        monkeypatch.setattr(backend, "clock", lambda: NOW + offset)

    move(dt.timedelta(0))
    return move


def _poll(ksef_mock: KSeFMock, reference_number: str) -> httpx.Response:
    # A token minted on the emulator's clock as it is now (an access token lives minutes, not days).
    headers = {"Authorization": f"Bearer {ksef_mock.token(NIP)}"}
    return httpx.get(f"{ksef_mock.base_url}/invoices/exports/{reference_number}", headers=headers)


def _start(ksef_mock: KSeFMock, **date_range: object) -> str:
    since = (NOW - dt.timedelta(days=1)).isoformat()
    filters = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since, **date_range}}
    body = {"encryption": session_encryption(SymmetricKey.generate()), "filters": filters}
    headers = {"Authorization": f"Bearer {ksef_mock.token(NIP)}"}
    started = httpx.post(f"{ksef_mock.base_url}/invoices/exports", json=body, headers=headers)
    assert started.status_code == 201, started.text
    return str(started.json()["referenceNumber"])


@pytest.fixture
def exported(ksef_mock: KSeFMock, backend: KSeFBackend, at: Callable[[dt.timedelta], None]) -> str:
    """An export of one invoice, completed at ``NOW`` (its first poll)."""
    session = backend.sessions.open(backend.authenticate("Bearer " + backend.mint_access_token(NIP)))
    assert backend.sessions.add_invoice(session, sample_invoice("FV/EXP/1", issue_date=NOW.date())).accepted
    backend.sessions.close(session)
    return _start(ksef_mock)


def test_a_built_package_says_when_it_expires(ksef_mock: KSeFMock, exported: str) -> None:
    body = _poll(ksef_mock, exported).json()
    assert body["status"] == {"code": 200, "description": "Eksport faktur zakończony sukcesem"}
    assert dt.datetime.fromisoformat(body["completedDate"]) == NOW
    assert dt.datetime.fromisoformat(body["packageExpirationDate"]) == NOW + WEEK
    assert len(body["package"]["parts"]) == 1


def test_no_link_outlives_the_package(ksef_mock: KSeFMock, exported: str, at: Callable[[dt.timedelta], None]) -> None:
    _poll(ksef_mock, exported)  # built
    at(WEEK - dt.timedelta(minutes=20))  # a link lives an hour: here, 20 minutes are left of the package
    (part,) = _poll(ksef_mock, exported).json()["package"]["parts"]
    assert dt.datetime.fromisoformat(part["expirationDate"]) == NOW + WEEK


def test_past_its_expiration_the_export_is_210_without_a_package(
    ksef_mock: KSeFMock, exported: str, at: Callable[[dt.timedelta], None]
) -> None:
    _poll(ksef_mock, exported)  # built
    at(WEEK - dt.timedelta(minutes=20))
    (part,) = _poll(ksef_mock, exported).json()["package"]["parts"]
    at(WEEK)
    answer = _poll(ksef_mock, exported)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == {"code": 210, "description": "Eksport faktur wygasł i nie jest już dostępny do pobrania"}
    assert "package" not in body
    assert dt.datetime.fromisoformat(body["completedDate"]) == NOW
    assert dt.datetime.fromisoformat(body["packageExpirationDate"]) == NOW + WEEK
    assert httpx.get(part["url"]).status_code == 403  # a link handed out 20 minutes before is dead too


def test_after_the_retention_the_status_is_410_gone(
    ksef_mock: KSeFMock, exported: str, at: Callable[[dt.timedelta], None]
) -> None:
    _poll(ksef_mock, exported)
    at(2 * WEEK - dt.timedelta(seconds=1))  # 210 is kept its 7 days
    assert _poll(ksef_mock, exported).json()["status"]["code"] == 210
    at(2 * WEEK)
    answer = _poll(ksef_mock, exported)
    assert (answer.status_code, answer.headers["content-type"]) == (410, "application/problem+json")
    body = answer.json()
    assert {k: body[k] for k in ("title", "status", "detail")} == {
        "title": "Gone", "status": 410, "detail": "Operacja wygasła i nie jest już dostępna.",
    }  # fmt: skip
    assert body["instance"] == f"/v2/invoices/exports/{exported}" and body["traceId"] and body["timestamp"]


def test_a_failed_export_is_gone_7_days_after_it_ended(
    ksef_mock: KSeFMock, backend: KSeFBackend, at: Callable[[dt.timedelta], None]
) -> None:
    # 420: "Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate przy włączonym
    # restrictToPermanentStorageHwmDate"; it has no package, so no packageExpirationDate.
    reference_number = _start(
        ksef_mock, dateType="PermanentStorage", **{"from": (NOW + dt.timedelta(hours=1)).isoformat()},
        restrictToPermanentStorageHwmDate=True,
    )  # fmt: skip
    body = _poll(ksef_mock, reference_number).json()
    assert body["status"]["code"] == 420 and "packageExpirationDate" not in body and "package" not in body
    assert dt.datetime.fromisoformat(body["completedDate"]) == NOW
    at(WEEK - dt.timedelta(seconds=1))
    assert _poll(ksef_mock, reference_number).json()["status"]["code"] == 420
    at(WEEK)
    assert _poll(ksef_mock, reference_number).status_code == 410


def test_exports_no_one_polled_do_not_hold_the_running_limit_for_ever(
    ksef_mock: KSeFMock, exported: str, at: Callable[[dt.timedelta], None]
) -> None:
    # Review: the emulator builds an export when its status is read; ten never read stayed "in
    # progress", and once their retention passed every read was 410 before the build, so the
    # context could never export again (21182, "Osiągnięto limit trwających eksportów"). KSeF builds
    # an export whether or not anyone reads its status.
    unread = [exported, *(_start(ksef_mock) for _ in range(9))]
    headers = {"Authorization": f"Bearer {ksef_mock.token(NIP)}"}
    filters = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": NOW.isoformat()}}
    body = {"encryption": session_encryption(SymmetricKey.generate()), "filters": filters}
    assert httpx.post(f"{ksef_mock.base_url}/invoices/exports", json=body, headers=headers).status_code == 400
    at(WEEK + dt.timedelta(days=1))  # the client comes back after the retention
    assert [_poll(ksef_mock, reference_number).status_code for reference_number in unread] == [200] * 10
    assert _start(ksef_mock)
