"""The fault soak in its quick profile (CI): 240 invoices through 20 % injected faults."""

from __future__ import annotations

import logging

import pytest

from bench.soak import soak


def test_nothing_is_lost_or_numbered_twice_under_faults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="uvicorn.error")
    figures = soak(120, 120, seed=11, quick=True)
    assert figures["faults_injected"] > 10 and figures["client_retries"] > 0
    assert figures["lost"] == 0
    assert figures["duplicates"] == 0
    assert figures["distinct_ksef_numbers"] == 240
    assert figures["upo_missing"] == 0 and figures["listed_back_missing"] == 0
