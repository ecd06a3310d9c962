"""The ``ksef_mock`` fixture as a user's test run meets it: each test gets the emulator as created.

docs/testing-with-the-emulator.md: "one emulator per test run, reset before each test". These run
an inner pytest session (``pytester``) whose tests share the plugin's one emulator, so what one
test leaves behind is what the next one meets.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_a_clock_a_test_installed_is_gone_in_the_next_test(pytester: pytest.Pytester) -> None:
    # docs: the emulator's clock is "backend.clock, which a test may replace to move time"; the
    # fixture is "reset before each test", yet reset() kept the replaced clock: the next test's
    # invoice (P_1 today) was refused as issued after its receipt, a year earlier.
    pytester.makepyfile(
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
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
