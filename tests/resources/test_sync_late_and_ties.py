"""Incremental downloads against the cases they exist for, which the emulator makes only when asked
(``late_storage``, ``storage_resolution``, ``seven_digit_dates``): no invoice lost, none twice.

pobieranie-faktur/hwm.md: "W przedziale (HWM, Teraz] [...] mogą się jeszcze pojawić nowe faktury,
tj. z datą PermanentStorage mieszczącą się w zakresie (HWM, Teraz]": an invoice KSeF stores after
an answer gave its HWM, dated below invoices that answer already showed. przyrostowe-pobieranie-
faktur.md: "Gdy IsTruncated = true, kolejne wywołanie należy rozpocząć od LastPermanentStorageDate"
and "kolejne okno rozpoczyna się w tym samym punkcie co zakończone (przyległość); ewentualne
duplikaty zostaną usunięte [...] na podstawie numerów KSeF": a package may end inside a group of
invoices sharing one date, and the next window starts at that date, taking those again. KSeF writes
its dates to 100 ns (seven digits), one more than Python's datetime keeps.

Each test drives the SDK over HTTP against the emulator on a clock the test moves, and counts what
it got by KSeF number: every invoice once.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.mock import KSeFBackend
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import issued_by

BUYER = "1111111111"
SEVEN = pytest.mark.parametrize("seven_digits", [False, True], ids=["6-digit", "7-digit"])


class Clock:
    """The emulator's clock, moved by the test: an hour behind the real one (the SDK checks that a
    start is not in the future by its own clock), whole seconds."""

    def __init__(self, backend: KSeFBackend) -> None:
        real = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.start = real - dt.timedelta(hours=1)
        self.now = self.start
        backend.clock = lambda: self.now  # reset() puts the backend's own back

    def at(self, seconds: float) -> None:
        self.now = self.start + dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(backend: KSeFBackend) -> Iterator[Clock]:
    yield Clock(backend)


def _store(backend: KSeFBackend, names: list[str]) -> list[str]:
    """Store invoices in the emulator as a session's (numbered now on its clock); their KSeF numbers."""
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    numbers = []
    for name in names:
        session = backend.sessions.open(access)
        invoice = backend.sessions.add_invoice(
            session, sample_invoice(name, buyer_nip=BUYER, issue_date=issued_by(backend))
        )
        backend.sessions.close(session)
        numbers.append(str(invoice.ksef_number))
    return numbers


def _once(got: list[str], expected: list[str]) -> None:
    twice = sorted(n for n, times in collections.Counter(got).items() if times > 1)
    missing = sorted(set(expected) - set(got))
    assert (missing, twice) == ([], []), f"missing {missing}, delivered twice {twice}"
    assert set(got) == set(expected)


# --- late arrivals ------------------------------------------------------------------------------


def _late_arrivals(backend: KSeFBackend, clock: Clock, seven_digits: bool) -> tuple[list[str], list[str]]:
    """Invoices before the first run (``first``) and after, some of them stored late: ``LATE/1``
    numbered before the HWM the first answer gives, ``LATE/2`` after it, both stored once that
    answer is given, dated below ``B/*``, which that answer already showed above its HWM."""
    backend.hwm_lag = dt.timedelta(seconds=10)
    backend.seven_digit_dates = seven_digits
    backend.transitions.storage_delay = 3600  # stored by an answer, not by the time passing
    clock.at(0)
    first = _store(backend, ["A/1", "A/2", "A/3"])
    clock.at(5)
    backend.late_storage = True
    late = _store(backend, ["LATE/1"])
    clock.at(15)
    late += _store(backend, ["LATE/2"])
    backend.late_storage = False
    clock.at(20)
    later = _store(backend, ["B/1", "B/2"])
    clock.at(21)  # the first run's HWM: 11 s, between LATE/1 and LATE/2
    return first, late + later


def _check_late_dates(backend: KSeFBackend, late: list[str], given: dt.datetime) -> None:
    """The late ones were stored after ``given`` was given as the HWM, past it and below B/*."""
    assert backend.invoices.hwm() == given  # as the next request does: the late ones are stored now
    stored = {str(i.ksef_number): i.stored for i in backend.invoices.state.accepted}
    b_dates = [d for n, d in stored.items() if d is not None and n not in late and d > given]
    for number in late[:2]:
        when = stored[number]
        assert when is not None and given < when < min(b_dates)


class TestSyncWithLateArrivals:
    @SEVEN
    def test_an_invoice_stored_below_the_hwm_given_is_delivered_by_the_next_run(
        self, ksef: KSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path, seven_digits: bool
    ) -> None:
        first, rest = _late_arrivals(backend, clock, seven_digits)
        state, folder = tmp_path / "state.json", tmp_path / "in"
        got = ksef.invoices.sync("Subject1", state, folder, start=clock.start - dt.timedelta(minutes=1)).ksef_numbers
        assert sorted(got) == sorted(first)  # B/* are past the HWM: not final yet
        _check_late_dates(backend, rest[:2], clock.start + dt.timedelta(seconds=11))
        clock.at(40)
        got += ksef.invoices.sync("Subject1", state, folder).ksef_numbers
        clock.at(41)
        more = _store(backend, ["C/1"])
        clock.at(60)
        got += ksef.invoices.sync("Subject1", state, folder).ksef_numbers
        _once(got, first + rest + more)
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.xml" for n in first + rest + more)

    @pytest.mark.anyio
    @SEVEN
    async def test_async_the_same(
        self, aksef: AsyncKSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path, seven_digits: bool
    ) -> None:
        first, rest = _late_arrivals(backend, clock, seven_digits)
        state, folder = tmp_path / "state.json", tmp_path / "in"
        got = (await aksef.invoices.sync("Subject1", state, folder, start=clock.start)).ksef_numbers
        clock.at(40)
        got += (await aksef.invoices.sync("Subject1", state, folder)).ksef_numbers
        _once(got, first + rest)


class TestWalksFromTheHwmWithLateArrivals:
    """A restricted query or export chained from the HWM the last one reported (docs/downloading.md)."""

    @SEVEN
    def test_query_walks(self, ksef: KSeF, backend: KSeFBackend, clock: Clock, seven_digits: bool) -> None:
        first, rest = _late_arrivals(backend, clock, seven_digits)
        pager = ksef.invoices.query(date_from=clock.start, restrict_to_hwm=True, page_size=10)
        got = [r.ksef_number for r in pager]
        assert sorted(got) == sorted(first)
        hwm = pager.permanent_storage_hwm_date
        assert hwm is not None
        clock.at(40)
        pager = ksef.invoices.query(date_from=hwm, restrict_to_hwm=True, page_size=10)
        got += [r.ksef_number for r in pager]
        _once(got, first + rest)

    @pytest.mark.anyio
    async def test_async_query_walks(self, aksef: AsyncKSeF, backend: KSeFBackend, clock: Clock) -> None:
        first, rest = _late_arrivals(backend, clock, True)
        pager = aksef.invoices.query(date_from=clock.start, restrict_to_hwm=True, page_size=10)
        got = [r.ksef_number async for r in pager]
        hwm = pager.permanent_storage_hwm_date
        assert hwm is not None
        clock.at(40)
        pager = aksef.invoices.query(date_from=hwm, restrict_to_hwm=True, page_size=10)
        got += [r.ksef_number async for r in pager]
        _once(got, first + rest)

    @SEVEN
    def test_exports(self, ksef: KSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path, seven_digits: bool) -> None:
        first, rest = _late_arrivals(backend, clock, seven_digits)
        result = ksef.invoices.export(tmp_path / "1", date_from=clock.start, restrict_to_hwm=True)
        got = list(result.ksef_numbers)
        assert sorted(got) == sorted(first)
        assert result.permanent_storage_hwm_date is not None
        clock.at(40)
        result = ksef.invoices.export(tmp_path / "2", date_from=result.permanent_storage_hwm_date, restrict_to_hwm=True)
        got += result.ksef_numbers
        _once(got, first + rest)

    @pytest.mark.anyio
    async def test_async_exports(self, aksef: AsyncKSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path) -> None:
        first, rest = _late_arrivals(backend, clock, True)
        result = await aksef.invoices.export(tmp_path / "1", date_from=clock.start, restrict_to_hwm=True)
        got = list(result.ksef_numbers)
        assert result.permanent_storage_hwm_date is not None
        clock.at(40)
        second = await aksef.invoices.export(
            tmp_path / "2", date_from=result.permanent_storage_hwm_date, restrict_to_hwm=True
        )
        _once(got + list(second.ksef_numbers), first + rest)


# --- ties at a package's cut ----------------------------------------------------------------------


def _ties(backend: KSeFBackend, clock: Clock, seven_digits: bool) -> list[str]:
    """Three groups of invoices, each sharing one ``permanentStorageDate`` (3, 3, 2), and a limit of
    5 records a package: the first package ends inside the second group (after two of its three),
    and the next window, starting at their date, holds those two again."""
    backend.storage_resolution = dt.timedelta(seconds=1)
    backend.seven_digit_dates = seven_digits
    backend.metadata_limit = 5
    numbers = []
    for second, names in ((0, ["G1/1", "G1/2", "G1/3"]), (2, ["G2/1", "G2/2", "G2/3"]), (4, ["G3/1", "G3/2"])):
        clock.at(second + 0.25)
        numbers += _store(backend, names)
    clock.at(10)
    backend.invoices.hwm()  # stores them: the clock is past their dates
    dates = collections.Counter(i.stored for i in backend.invoices.state.accepted)
    assert sorted(dates.values()) == [2, 3, 3]
    return numbers


def _group_at_the_hwm(backend: KSeFBackend, clock: Clock, seven_digits: bool) -> tuple[list[str], list[str]]:
    """Groups stored at 1 s and 3 s, the clock at 3 s (the HWM then: the second group's date), and
    one more group numbered after that."""
    backend.storage_resolution = dt.timedelta(seconds=1)
    backend.seven_digit_dates = seven_digits
    clock.at(0.25)
    first = _store(backend, ["G1/1", "G1/2"])
    clock.at(2.25)
    first += _store(backend, ["G2/1", "G2/2", "G2/3"])
    clock.at(3)
    assert backend.invoices.hwm() == clock.now
    assert {i.stored for i in backend.invoices.state.accepted[2:]} == {clock.now}
    clock.at(4.25)
    second = _store(backend, ["G3/1"])
    clock.at(3)
    return first, second


class TestTiesAtTheCut:
    @SEVEN
    def test_sync_takes_each_invoice_of_a_group_cut_by_the_package_once(
        self, ksef: KSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path, seven_digits: bool
    ) -> None:
        numbers = _ties(backend, clock, seven_digits)
        folder = tmp_path / "in"
        got = ksef.invoices.sync("Subject1", tmp_path / "state.json", folder, start=clock.start).ksef_numbers
        _once(got, numbers)
        assert len(list(folder.iterdir())) == len(numbers)
        clock.at(30)  # and the next run, from the HWM, takes none of them again
        assert ksef.invoices.sync("Subject1", tmp_path / "state.json", folder).ksef_numbers == []

    @pytest.mark.anyio
    @SEVEN
    async def test_async_sync(
        self, aksef: AsyncKSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path, seven_digits: bool
    ) -> None:
        numbers = _ties(backend, clock, seven_digits)
        result = await aksef.invoices.sync("Subject1", tmp_path / "state.json", tmp_path / "in", start=clock.start)
        _once(result.ksef_numbers, numbers)

    @SEVEN
    def test_a_group_at_the_hwm_a_run_ends_at_is_not_taken_again_by_the_next_run(
        self, ksef: KSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path, seven_digits: bool
    ) -> None:
        # The first run ends at an HWM that is the date of a group (all of it delivered); the next
        # starts at that date, KSeF gives the group again, and none of it is new.
        first, second = _group_at_the_hwm(backend, clock, seven_digits)
        state, folder = tmp_path / "state.json", tmp_path / "in"
        got = ksef.invoices.sync("Subject1", state, folder, start=clock.start).ksef_numbers
        assert sorted(got) == sorted(first)
        clock.at(10)
        got += ksef.invoices.sync("Subject1", state, folder).ksef_numbers
        _once(got, first + second)

    @pytest.mark.anyio
    async def test_async_a_group_at_the_hwm(
        self, aksef: AsyncKSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path
    ) -> None:
        first, second = _group_at_the_hwm(backend, clock, True)
        state, folder = tmp_path / "state.json", tmp_path / "in"
        got = (await aksef.invoices.sync("Subject1", state, folder, start=clock.start)).ksef_numbers
        clock.at(10)
        got += (await aksef.invoices.sync("Subject1", state, folder)).ksef_numbers
        _once(got, first + second)

    @pytest.mark.parametrize("order", ["Asc", "Desc"])
    @SEVEN
    def test_query_walks(self, ksef: KSeF, backend: KSeFBackend, clock: Clock, order: str, seven_digits: bool) -> None:
        numbers = _ties(backend, clock, seven_digits)
        pager = ksef.invoices.query(date_from=clock.start, restrict_to_hwm=True, page_size=10, sort_order=order)
        _once([r.ksef_number for r in pager], numbers)

    @pytest.mark.anyio
    async def test_async_query_walks(self, aksef: AsyncKSeF, backend: KSeFBackend, clock: Clock) -> None:
        numbers = _ties(backend, clock, True)
        pager = aksef.invoices.query(date_from=clock.start, page_size=10)
        _once([r.ksef_number async for r in pager], numbers)

    @SEVEN
    def test_exports_chained_from_the_last_date(
        self, ksef: KSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path, seven_digits: bool
    ) -> None:
        # A truncated export ends its call; the next starts at lastPermanentStorageDate, so takes the
        # invoices of the cut date again ("ewentualne duplikaty zostaną usunięte"): all arrive, and
        # only those come twice.
        numbers = _ties(backend, clock, seven_digits)
        got, start, calls = [], clock.start, 0
        while True:
            calls += 1
            result = ksef.invoices.export(tmp_path / str(calls), date_from=start, restrict_to_hwm=True)
            got += result.ksef_numbers
            if not result.is_truncated:
                break
            assert result.last_permanent_storage_date is not None
            start = result.last_permanent_storage_date
        _chained(got, numbers, backend, calls)

    @pytest.mark.anyio
    async def test_async_exports(self, aksef: AsyncKSeF, backend: KSeFBackend, clock: Clock, tmp_path: Path) -> None:
        numbers = _ties(backend, clock, True)
        got, start, calls = [], clock.start, 0
        while True:
            calls += 1
            result = await aksef.invoices.export(tmp_path / str(calls), date_from=start, restrict_to_hwm=True)
            got += result.ksef_numbers
            if not result.is_truncated:
                break
            assert result.last_permanent_storage_date is not None
            start = result.last_permanent_storage_date
        _chained(got, numbers, backend, calls)


def _chained(got: list[str], numbers: list[str], backend: KSeFBackend, calls: int) -> None:
    """All of ``numbers`` in ``got``; twice only the two of the second group the first package held."""
    assert calls == 2 and set(got) == set(numbers)
    twice = {n for n, times in collections.Counter(got).items() if times > 1}
    by_number = {str(i.ksef_number): i.invoice_number for i in backend.invoices.state.accepted}
    assert len(twice) == 2 and {by_number[n][:3] for n in twice} == {"G2/"}
