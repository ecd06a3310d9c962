"""The ``ksef_mock`` fixture as a user's test run meets it: each test gets the emulator as created.

docs/testing-with-the-emulator.md: "one emulator per test run, reset before each test". Some run
an inner pytest session (``pytester``, in a process of its own: run in this one, it imports anew
the modules this run imported first and the two sets of classes do not match) whose tests share
the plugin's one emulator, so what one test leaves behind is what the next one meets.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ksef_client
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime

pytest_plugins = ["pytester"]

ROOT = Path(ksef_client.__file__).parent.parent


def run_tests(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str) -> pytest.RunResult:
    """``source`` as a test file, run by pytest in another process with this ``ksef_client``."""
    pytester.makepyfile(source)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def test_a_clock_a_test_installed_is_gone_in_the_next_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs: the emulator's clock is "backend.clock, which a test may replace to move time"; the
    # fixture is "reset before each test", yet reset() kept the replaced clock: the next test's
    # invoice (P_1 today) was refused as issued after its receipt, a year earlier.
    result = run_tests(
        pytester,
        monkeypatch,
        """
        import datetime as dt
        from ksef_client.testing import sample_invoice

        def test_a_moves_time_back(ksef_mock):
            ksef_mock.backend.clock = lambda: dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)

        def test_b_meets_the_emulator_as_created(ksef_mock):
            assert abs(ksef_mock.backend.clock() - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
            with ksef_mock.client(nip="5265877635") as ksef:
                with ksef.online_session() as session:
                    session.send(sample_invoice("FV/1/2026"))
                assert ksef.sessions.wait(session.reference_number).status.code == 200
        """,
    )
    result.assert_outcomes(passed=2)


def test_fixture_clients_do_not_pace_an_emulator_that_enforces_no_limits(ksef_mock: KSeFMock) -> None:
    # docs/limits-and-collective-identifiers.md: with throttling off (the fixture's default) "every
    # limit reads -1". The fixture's clients paced at KSeF's production limits all the same
    # (invoiceSend 10/s, 30/min): 35 online sends slept a minute.
    time = FakeTime()
    with ksef_mock.client(nip=NIP, sleep=time.sleep, clock=time.clock) as ksef:
        assert ksef.limits.rate().online_session.per_second == -1
        with ksef.online_session() as session:
            for i in range(35):
                session.send(sample_invoice(f"FV/{i}/2026"))
        assert ksef.sessions.wait(str(session.reference_number)).status.code == 200
    assert time.sleeps == [] and ksef.send_state.throttled_seconds == 0


def test_fixture_clients_pace_as_the_emulator_enforces(ksef_mock: KSeFMock) -> None:
    # Turned on, the emulator enforces the spec's limits times its scale, and the fixture's clients
    # pace at that scale; a scale the test gives wins.
    with ksef_mock.client(NIP) as unpaced:
        assert unpaced.send_state.pacing.scale == 0
    ksef_mock.backend.rate_limits.scale = 1.0
    with ksef_mock.client(NIP) as paced, ksef_mock.client(NIP, rate_limit_scale=0.5) as chosen:
        assert (paced.send_state.pacing.scale, chosen.send_state.pacing.scale) == (1.0, 0.5)
    assert ksef_mock.async_client(NIP).send_state.pacing.scale == 1.0  # sends nothing: nothing to close


def test_a_tests_rate_limit_counts_do_not_follow_the_next_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each test meets an emulator whose own counts start from nothing (rate limits off, GET
    # /rate-limits -1), yet the client-side windows of the earlier tests' clients (kept alive
    # here, or not yet collected) were shared with this test's clients of the same context
    # (base URL and login: _throttle.shared_throttle): the third test's metadata queries (group
    # invoiceMetadata: 8/s, 16/min, 20/h) met a wait of most of an hour, ThrottleWaitTooLongError.
    result = run_tests(
        pytester,
        monkeypatch,
        """
        import datetime as dt
        import pytest
        from ksef_client import KSeF
        from ksef_client.testing import self_signed_certificate

        SEAL = self_signed_certificate(nip="5265877635", kind="seal")
        YESTERDAY = dt.date.today() - dt.timedelta(days=1)
        KEPT = []  # e.g. a module-level client, or one the garbage collector has not reached yet

        @pytest.mark.parametrize("label", ["first", "second", "third"])
        def test_seven_queries(ksef_mock, label):
            ksef = KSeF(base_url=ksef_mock.base_url, max_retry_after=1)  # production pacing
            KEPT.append(ksef)
            ksef.auth.login_with_certificate(SEAL, context_nip=SEAL.nip)
            for _ in range(7):
                list(ksef.invoices.query("Subject1", date_from=YESTERDAY))  # one request each
        """,
    )
    result.assert_outcomes(passed=3)
