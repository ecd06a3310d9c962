"""The emulator's opt-in storage settings: late arrivals below the HWM, dates shared by several
invoices, KSeF's seven-digit dates (review s11, F3: by default none of them happens, so a client's
handling of them went untested).

pobieranie-faktur/hwm.md: "W przedziale (HWM, Teraz) [...] mogą się jeszcze pojawić nowe faktury,
tj. z datą PermanentStorage mieszczącą się w zakresie (HWM, Teraz]". The spec's examples write dates
as .NET does: "2025-09-18T12:24:01.0154302+00:00", "2025-08-28T09:23:55.388+00:00".
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from typing import Any

import httpx
import pytest

from ksef_client.crypto import SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import build_parser
from ksef_client.mock.state.invoices import date_text
from tests.mock.conftest import session_encryption
from tests.mock.test_query_hwm import _at, _Clock, _filters, _page, _store

# KSeF's (.NET) date: seven fractional digits at most, trailing zeros dropped, "+00:00".
KSEF_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,6}[1-9])?\+00:00")


@pytest.fixture
def clock(backend: KSeFBackend) -> _Clock:
    moved = _Clock()
    backend.clock = moved
    return moved


def _numbers(backend: KSeFBackend) -> dict[str, str]:
    return {str(i.invoice_number): str(i.ksef_number) for i in backend.invoices.state.accepted}


def test_the_settings_are_off_by_default_checked_and_reset(backend: KSeFBackend) -> None:
    assert (backend.late_storage, backend.storage_resolution, backend.seven_digit_dates) == (
        False, dt.timedelta(0), False,
    )  # fmt: skip
    backend.late_storage, backend.seven_digit_dates = True, True
    backend.storage_resolution = dt.timedelta(seconds=1)
    backend.reset()
    assert (backend.late_storage, backend.storage_resolution, backend.seven_digit_dates) == (
        False, dt.timedelta(0), False,
    )  # fmt: skip
    with pytest.raises(TypeError, match="late_storage"):
        backend.late_storage = 1  # type: ignore[assignment]
    with pytest.raises(TypeError, match="seven_digit_dates"):
        backend.seven_digit_dates = "yes"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="storage_resolution"):
        backend.storage_resolution = dt.timedelta(seconds=-1)
    made = KSeFBackend(late_storage=True, storage_resolution=dt.timedelta(milliseconds=10), seven_digit_dates=True)
    assert (made.late_storage, made.storage_resolution, made.seven_digit_dates) == (
        True, dt.timedelta(milliseconds=10), True,
    )  # fmt: skip


def test_ksef_mock_takes_them_as_options() -> None:
    args = build_parser().parse_args(["--late-storage", "--storage-resolution", "0.5", "--seven-digit-dates"])
    assert (args.late_storage, args.storage_resolution, args.seven_digit_dates) == (
        True, dt.timedelta(seconds=0.5), True,
    )  # fmt: skip
    args = build_parser().parse_args([])
    assert (args.late_storage, args.storage_resolution, args.seven_digit_dates) == (False, dt.timedelta(0), False)


def test_a_late_invoice_is_stored_past_the_hwm_an_answer_gave_below_invoices_it_showed(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock
) -> None:
    backend.hwm_lag = dt.timedelta(seconds=30)
    backend.transitions.storage_delay = 3600
    since = clock.now - dt.timedelta(hours=1)
    _store(backend, "FV/EARLY")
    clock.advance(5)
    backend.late_storage = True
    _store(backend, "FV/LATE")
    backend.late_storage = False
    clock.advance(15)
    _store(backend, "FV/SEEN")
    clock.advance(20)
    late = _numbers(backend)["FV/LATE"]
    # Numbered, not stored yet: not downloadable, in no answer.
    assert raw.get(f"/invoices/ksef/{late}").json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21165
    first = _page(raw, _filters("PermanentStorage", since))
    assert [r["invoiceNumber"] for r in first["invoices"]] == ["FV/EARLY", "FV/SEEN"]
    hwm = _at(first["permanentStorageHwmDate"])
    assert hwm == clock.now - dt.timedelta(seconds=30)
    # The next request stores it, past that HWM and before FV/SEEN, which the answer showed.
    second = _page(raw, _filters("PermanentStorage", since))
    records = {r["invoiceNumber"]: _at(r["permanentStorageDate"]) for r in second["invoices"]}
    assert list(records) == ["FV/EARLY", "FV/LATE", "FV/SEEN"]
    assert hwm is not None and hwm < records["FV/LATE"] < records["FV/SEEN"] < clock.now  # type: ignore[operator]
    assert raw.get(f"/invoices/ksef/{late}").status_code == 200


def test_a_late_invoice_numbered_before_the_hwm_given_is_dated_just_past_it(
    backend: KSeFBackend, clock: _Clock
) -> None:
    backend.hwm_lag = dt.timedelta(seconds=30)
    backend.transitions.storage_delay = 3600
    backend.late_storage = True
    _store(backend, "FV/L1", "FV/L2")
    clock.advance(60)
    given = backend.invoices.hwm()  # as an answer gives it (an export's start, a query)
    backend.invoices._answered()
    backend.invoices.hwm()
    dates = [i.stored for i in backend.invoices.state.accepted]
    # Both were numbered 30 s before that HWM; stored after it was given, past it, apart.
    assert dates == [given + dt.timedelta(microseconds=1), given + dt.timedelta(microseconds=2)]


def test_invoices_numbered_within_one_period_of_the_storage_resolution_share_its_end(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock
) -> None:
    backend.storage_resolution = dt.timedelta(seconds=1)
    since = clock.now - dt.timedelta(hours=1)
    clock.advance(0.25)
    _store(backend, "FV/1", "FV/2")
    clock.advance(0.5)
    _store(backend, "FV/3")
    clock.advance(0.1)
    # Their period has not ended: not stored yet, and the HWM stays below their date.
    early = _page(raw, _filters("PermanentStorage", since))
    assert early["invoices"] == [] and _at(early["permanentStorageHwmDate"]) == clock.now
    clock.advance(0.5)
    records = _page(raw, _filters("PermanentStorage", since))["invoices"]
    assert sorted(r["invoiceNumber"] for r in records) == ["FV/1", "FV/2", "FV/3"]  # by KSeF number within
    assert {_at(r["permanentStorageDate"]) for r in records} == {clock.now.replace(microsecond=0)}


def test_seven_digit_dates_in_answers_and_in_the_package(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock
) -> None:
    backend.seven_digit_dates = True
    backend.metadata_limit = 1  # a truncated package: its last date too
    since = clock.now - dt.timedelta(hours=1)
    clock.advance(0.123456)
    _store(backend, "FV/1", "FV/2")
    page = _page(raw, _filters("PermanentStorage", since))
    dates = [page["permanentStorageHwmDate"]] + [
        r[name] for r in page["invoices"] for name in ("permanentStorageDate", "acquisitionDate", "invoicingDate")
    ]
    assert all(KSEF_DATE.fullmatch(d) for d in dates), dates
    assert len(page["invoices"][0]["permanentStorageDate"].split(".")[1]) == len("1244561+00:00")
    stored = backend.invoices.state.accepted[0].stored
    assert stored is not None and _at(page["invoices"][0]["permanentStorageDate"]) == stored  # cut to the µs

    key = SymmetricKey.generate()
    body = {"encryption": session_encryption(key), "filters": _filters("PermanentStorage", since)}
    started = raw.post("/invoices/exports", json=body)
    package = raw.get(f"/invoices/exports/{started.json()['referenceNumber']}").json()["package"]
    assert package["isTruncated"] is True
    assert KSEF_DATE.fullmatch(package["permanentStorageHwmDate"])
    assert package["lastPermanentStorageDate"] == date_text(stored, True)
    plain = key.decrypt(httpx.get(package["parts"][0]["url"]).content)
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:
        records: list[dict[str, Any]] = json.loads(archive.read("_metadata.json"))["invoices"]
    assert records[0]["permanentStorageDate"] == date_text(stored, True)
    assert all(KSEF_DATE.fullmatch(records[0][name]) for name in ("acquisitionDate", "invoicingDate"))


def test_date_text_writes_dates_as_the_spec_shows_them() -> None:
    at = dt.datetime(2025, 9, 18, 12, 24, 1, 15430, tzinfo=dt.UTC)
    assert date_text(at) == "2025-09-18T12:24:01.015430+00:00"  # the default: Python's isoformat
    assert date_text(at, True) == "2025-09-18T12:24:01.0154305+00:00"  # a made-up 7th digit, 1-9
    whole = dt.datetime(2025, 8, 28, 9, 23, 55, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert date_text(whole, True) == "2025-08-28T07:23:55.0000001+00:00"
