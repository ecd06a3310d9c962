"""The ``permanentStorageHwmDate`` of metadata queries and export packages, and the last date of a
truncated package, as the spec gives them.

Spec 2.9.0, QueryInvoicesMetadataResponse.permanentStorageHwmDate (InvoicePackage's says the same,
but for the pages): "Dotyczy wyłącznie zapytań filtrowanych po typie daty PermanentStorage. Jeśli
zapytanie dotyczyło najnowszego okresu, wartość ta może być wartością nieznacznie skorygowaną
względem górnej granicy podanej w warunkach zapytania. Dla okresów starszych, będzie to zgodne z
warunkami zapytania. Wartość jest stała dla wszystkich stron tego samego zapytania i nie zależy od
paginacji ani sortowania. [...] Dla dateType = Issue lub Invoicing - null."

The emulator gave the HWM of the moment for every date type and every page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from ksef_client.crypto import SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import build_parser
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.mock.conftest import session_encryption


class _Clock:
    """The emulator's clock, moved by hand (whole seconds: no two moments read the same)."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float = 60) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(backend: KSeFBackend) -> _Clock:
    moved = _Clock()
    backend.clock = moved
    return moved


def _store(backend: KSeFBackend, *numbers: str) -> None:
    """Invoices of the seller NIP accepted now (through the state: no HTTP)."""
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access)
    for number in numbers:
        invoice = backend.sessions.add_invoice(session, sample_invoice(number))
        assert invoice.accepted, (number, invoice.status)
    backend.sessions.close(session)


def _filters(date_type: str, since: dt.datetime, to: dt.datetime | None = None, **date_range: Any) -> dict[str, Any]:
    bounds = {"from": since.isoformat(), **({"to": to.isoformat()} if to is not None else {})}
    return {"subjectType": "Subject1", "dateRange": {"dateType": date_type, **bounds, **date_range}}


def _page(raw: httpx.Client, filters: dict[str, Any], offset: int = 0, order: str = "Asc") -> dict[str, Any]:
    params: dict[str, Any] = {"pageSize": 10, "pageOffset": offset, "sortOrder": order}
    answer = raw.post("/invoices/query/metadata", json=filters, params=params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def _package(raw: httpx.Client, filters: dict[str, Any]) -> dict[str, Any]:
    """``POST /invoices/exports``, then its status: the package."""
    body = {"encryption": session_encryption(SymmetricKey.generate()), "filters": filters}
    started = raw.post("/invoices/exports", json=body)
    assert started.status_code == 201, started.text
    status = raw.get(f"/invoices/exports/{started.json()['referenceNumber']}").json()
    assert status["status"]["code"] == 200, status
    package: dict[str, Any] = status["package"]
    return package


def _at(raw: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(raw) if raw is not None else None


@pytest.mark.parametrize("date_type", ["Issue", "Invoicing"])
def test_the_hwm_is_null_for_issue_and_invoicing_dates(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock, date_type: str
) -> None:
    # "Dla dateType = Issue lub Invoicing - null" (metadata response and export package alike).
    _store(backend, "FV/HWM/1")
    filters = _filters(date_type, clock.now - dt.timedelta(days=1))
    page = _page(raw, filters)
    assert len(page["invoices"]) == 1
    assert "permanentStorageHwmDate" in page and page["permanentStorageHwmDate"] is None
    assert _package(raw, filters)["permanentStorageHwmDate"] is None


def test_the_hwm_of_a_permanent_storage_query_is_given(raw: httpx.Client, backend: KSeFBackend, clock: _Clock) -> None:
    _store(backend, "FV/HWM/1")
    stored = backend.invoices.state.accepted[-1].stored
    assert stored is not None
    filters = _filters("PermanentStorage", clock.now - dt.timedelta(days=1))
    hwm = _at(_page(raw, filters)["permanentStorageHwmDate"])
    assert hwm is not None and hwm >= stored  # "dane poniżej tej wartości są spójne i kompletne"
    package_hwm = _at(_package(raw, filters)["permanentStorageHwmDate"])
    assert package_hwm is not None and package_hwm >= stored


def test_an_older_period_reports_its_own_upper_bound(raw: httpx.Client, backend: KSeFBackend, clock: _Clock) -> None:
    # "Dla okresów starszych, będzie to zgodne z warunkami zapytania": a range that ends before the
    # HWM reports its ``to``, not the HWM of the moment.
    since = clock.now - dt.timedelta(days=2)
    to = clock.now - dt.timedelta(days=1)
    _store(backend, "FV/HWM/1")
    clock.advance()
    filters = _filters("PermanentStorage", since, to)
    assert _at(_page(raw, filters)["permanentStorageHwmDate"]) == to
    assert _at(_package(raw, filters)["permanentStorageHwmDate"]) == to


def test_every_page_of_one_query_reports_the_same_hwm(raw: httpx.Client, backend: KSeFBackend, clock: _Clock) -> None:
    # "Wartość jest stała dla wszystkich stron tego samego zapytania i nie zależy od paginacji ani
    # sortowania": invoices stored between two pages moved the emulator's HWM (and, with the
    # restriction to it, the window) from one page to the next.
    since = clock.now - dt.timedelta(hours=1)
    _store(backend, *(f"FV/PAGE/{n}" for n in range(12)))
    filters = _filters("PermanentStorage", since, restrictToPermanentStorageHwmDate=True)
    first = _page(raw, filters)
    assert (len(first["invoices"]), first["hasMore"]) == (10, True)
    clock.advance()
    _store(backend, *(f"FV/LATE/{n}" for n in range(5)))
    second = _page(raw, filters, offset=1)
    assert second["permanentStorageHwmDate"] == first["permanentStorageHwmDate"]
    # The window restricted to that HWM is the same too: the invoices stored since are not in it.
    both = {r["invoiceNumber"] for r in first["invoices"] + second["invoices"]}
    assert both == {f"FV/PAGE/{n}" for n in range(12)} and second["hasMore"] is False
    assert _page(raw, filters, offset=1, order="Desc")["permanentStorageHwmDate"] == first["permanentStorageHwmDate"]
    # A first page starts the query again, with the HWM of now.
    again = _page(raw, filters)
    again_hwm, first_hwm = _at(again["permanentStorageHwmDate"]), _at(first["permanentStorageHwmDate"])
    assert again_hwm is not None and first_hwm is not None and again_hwm > first_hwm
    assert len(_page(raw, filters, offset=1)["invoices"]) == 7


LAST_DATES = ("lastIssueDate", "lastInvoicingDate", "lastPermanentStorageDate")


@pytest.mark.parametrize(
    ("date_type", "field"),
    [("Issue", "lastIssueDate"), ("Invoicing", "lastInvoicingDate"), ("PermanentStorage", "lastPermanentStorageDate")],
)
def test_a_truncated_package_gives_the_last_date_of_its_date_type_only(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock, date_type: str, field: str
) -> None:
    # InvoicePackage.lastIssueDate / lastInvoicingDate / lastPermanentStorageDate: "Pole występuje
    # wyłącznie wtedy, gdy paczka została ucięta i eksport był filtrowany po typie daty `Issue`"
    # (`Invoicing`, `PermanentStorage`). The emulator gave lastPermanentStorageDate for every
    # package (null when empty) and never the other two.
    since = clock.now - dt.timedelta(days=1)
    for number in range(3):
        _store(backend, f"FV/CUT/{number}")
        clock.advance()
    filters = _filters(date_type, since)
    whole = _package(raw, filters)
    assert whole["isTruncated"] is False and not set(LAST_DATES) & set(whole)
    backend.metadata_limit = 2
    cut = _package(raw, filters)
    assert (cut["isTruncated"], cut["invoiceCount"]) == (True, 2)
    assert set(LAST_DATES) & set(cut) == {field}
    second = backend.invoices.state.accepted[1]  # the package's last (all three issued today)
    assert second.fields is not None and second.stored is not None
    expected = {
        "Issue": second.fields.issue_date,  # format: date
        "Invoicing": second.received,
        "PermanentStorage": second.stored,
    }[date_type]
    assert (cut[field] if date_type == "Issue" else _at(cut[field])) == expected


def test_the_hwm_moves_with_time_not_only_with_invoices(raw: httpx.Client, backend: KSeFBackend, clock: _Clock) -> None:
    # The HWM is "kroczący znacznik czasu" (the spec): "W każdej chwili system zna moment w czasie
    # (HWM), do którego ma już pewność, że wszystkie faktury zostały zapisane" (hwm.md). The
    # emulator's stayed at its last invoice, however long ago: a window starting after that
    # invoice was past the HWM.
    since = clock.now - dt.timedelta(hours=1)
    _store(backend, "FV/HWM/1")
    clock.advance(600)  # (within the access token's 15 minutes)
    filters = _filters("PermanentStorage", since, restrictToPermanentStorageHwmDate=True)
    assert _at(_page(raw, filters)["permanentStorageHwmDate"]) == clock.now
    later = _filters("PermanentStorage", clock.now - dt.timedelta(minutes=5), restrictToPermanentStorageHwmDate=True)
    assert _page(raw, later)["invoices"] == []


def _refusal(answer: httpx.Response) -> tuple[int, int, list[str]]:
    detail = answer.json()["exception"]["exceptionDetailList"][0]
    return answer.status_code, detail["exceptionCode"], detail["details"]


DETAIL = (
    "Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate przy włączonym "
    "restrictToPermanentStorageHwmDate."
)


def test_a_query_restricted_to_the_hwm_may_not_start_after_it(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock
) -> None:
    # POST /invoices/query/metadata, 400: "21183 | Zakres filtrowania wykracza poza dostępny zakres
    # danych. | Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate przy włączonym
    # restrictToPermanentStorageHwmDate." The emulator answered such a range with no invoices.
    _store(backend, "FV/HWM/1")
    hwm = backend.invoices.hwm()
    after = hwm + dt.timedelta(minutes=1)
    restricted = _filters("PermanentStorage", after, restrictToPermanentStorageHwmDate=True)
    answer = raw.post("/invoices/query/metadata", json=restricted)
    assert _refusal(answer) == (400, 21183, [DETAIL])
    # Not when it starts at the HWM (the next window starts where the last ended), nor without
    # the restriction, nor for another date type ("Dotyczy wyłącznie zapytań z dateType =
    # PermanentStorage").
    assert _page(raw, _filters("PermanentStorage", hwm, restrictToPermanentStorageHwmDate=True))["hasMore"] is False
    assert _page(raw, _filters("PermanentStorage", after))["invoices"] == []
    assert _page(raw, _filters("Invoicing", after, restrictToPermanentStorageHwmDate=True))["invoices"] == []


def test_an_export_restricted_to_the_hwm_that_starts_after_it_ends_with_420(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock
) -> None:
    # POST /invoices/exports lists no 21183; its status does: "420 | Zakres filtrowania wykracza
    # poza dostępny zakres danych | Parametr dateRange.from jest późniejszy niż
    # PermanentStorageHwmDate przy włączonym restrictToPermanentStorageHwmDate."
    # (InvoiceExportStatusResponse.status). The emulator exported nothing, successfully.
    backend.transitions.session_reads = 1
    after = backend.invoices.hwm() + dt.timedelta(minutes=1)
    filters = _filters("PermanentStorage", after, restrictToPermanentStorageHwmDate=True)
    body = {"encryption": session_encryption(SymmetricKey.generate()), "filters": filters}
    started = raw.post("/invoices/exports", json=body)
    assert started.status_code == 201, started.text
    reads = [raw.get(f"/invoices/exports/{started.json()['referenceNumber']}").json() for _ in range(2)]
    assert [read["status"]["code"] for read in reads] == [100, 420]
    assert reads[1]["status"] == {
        "code": 420, "description": "Zakres filtrowania wykracza poza dostępny zakres danych", "details": [DETAIL],
    }  # fmt: skip
    assert "package" not in reads[1]


def test_hwm_lag_makes_the_hwm_trail_the_present_as_ksefs_does(
    raw: httpx.Client, backend: KSeFBackend, clock: _Clock
) -> None:
    # KSeF's HWM trails its present: "W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić
    # nowe faktury, tj. z datą PermanentStorage mieszczącą się w zakresie (HWM, Teraz]"
    # (pobieranie-faktur/hwm.md). The emulator's is its present moment, so no client test could
    # see a walk ask for a window past it (21183). ``hwm_lag`` sets the distance; none by default.
    assert backend.hwm_lag == dt.timedelta(0) and backend.invoices.hwm() == clock.now
    since = clock.now - dt.timedelta(hours=1)
    _store(backend, "FV/OLD")
    clock.advance(60)
    _store(backend, "FV/NEW")
    clock.advance(1)  # past FV/NEW (stored 1 ms after the frozen clock's time)
    backend.hwm_lag = dt.timedelta(seconds=30)
    lagging = backend.invoices.hwm()
    assert lagging == clock.now - dt.timedelta(seconds=30)
    restricted = _filters("PermanentStorage", since, restrictToPermanentStorageHwmDate=True)
    page = _page(raw, restricted)
    # Only what lies at or before the trailing HWM; the invoice stored since is past it.
    assert [r["invoiceNumber"] for r in page["invoices"]] == ["FV/OLD"]
    assert _at(page["permanentStorageHwmDate"]) == lagging
    assert [r["invoiceNumber"] for r in _page(raw, _filters("PermanentStorage", since))["invoices"]] == [
        "FV/OLD",
        "FV/NEW",
    ]
    # A range restricted to it that starts between the HWM and now is refused, as KSeF does.
    answer = raw.post(
        "/invoices/query/metadata",
        json=_filters("PermanentStorage", clock.now - dt.timedelta(seconds=10), restrictToPermanentStorageHwmDate=True),
    )
    assert _refusal(answer) == (400, 21183, [DETAIL])
    with pytest.raises(ValueError, match="hwm_lag"):
        backend.hwm_lag = dt.timedelta(seconds=-1)
    backend.reset()
    assert backend.hwm_lag == dt.timedelta(0)
    assert KSeFBackend(hwm_lag=dt.timedelta(seconds=5), workers=1).hwm_lag == dt.timedelta(seconds=5)


def test_ksef_mock_takes_the_hwm_lag_in_seconds() -> None:
    assert build_parser().parse_args(["--hwm-lag", "2.5"]).hwm_lag == dt.timedelta(seconds=2.5)
    assert build_parser().parse_args([]).hwm_lag == dt.timedelta(0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--hwm-lag", "-1"])
