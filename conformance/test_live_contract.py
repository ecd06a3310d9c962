"""Property 4: the contract against the real KSeF TEST environment. Skipped unless ``KSEF_LIVE=1``.

schemathesis runs the public, read-only operations (public key certificates, challenge) against
``KSEF_BASE_URL`` (default TEST) with the spec's rate limits respected; the session flow against
TEST lives in ``tests/live``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from conformance.conftest import pinned_spec
from ksef_client import Environment
from ksef_client._throttle import Throttle, match_operation
from ksef_client.testing import reachable

LIVE = os.environ.get("KSEF_LIVE") == "1"
BASE_URL = os.environ.get("KSEF_BASE_URL", Environment.TEST.base_url)
pytestmark = [
    pytest.mark.skipif(not LIVE, reason="live contract run against KSeF: set KSEF_LIVE=1"),
    pytest.mark.skipif(LIVE and not reachable(BASE_URL), reason=f"KSEF_LIVE=1 but {BASE_URL} is unreachable (offline)"),
]
SAFE = [("/security/public-key-certificates", "GET"), ("/auth/challenge", "POST")]
THROTTLE = Throttle()


@pytest.mark.parametrize(("path", "method"), SAFE)
def test_live_answers_match_the_spec(path: str, method: str) -> None:
    schema = schemathesis.openapi.from_dict(pinned_spec())
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate]
    )
    def run(case: Any) -> None:
        matched = match_operation(method, path)
        assert matched is not None
        while (wait := THROTTLE.delay(matched[0], matched[1], time.monotonic())) > 0:
            time.sleep(wait)  # the live run honours KSeF's limits; it never runs in CI
        case.call_and_validate(base_url=BASE_URL)

    run()
