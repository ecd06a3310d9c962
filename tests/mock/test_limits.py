"""The emulator's limits: what ``/rate-limits`` and ``/limits/context`` say is what it enforces,
and the values are KSeF's (the spec's example answer and per-operation ``x-rate-limits``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ksef_client import KSeF
from ksef_client._throttle import Throttle
from ksef_client.errors import RateLimitError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP


@pytest.fixture
def throttled(ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[KSeF]:
    """KSeF's own limits in the emulator, its clock stopped; the client neither throttles nor retries."""
    monkeypatch.setattr(backend, "rate_limits", Throttle(scale=1.0))
    now = backend.clock()
    monkeypatch.setattr(backend, "clock", lambda: now)
    token = backend.mint_access_token(NIP)
    with KSeF(base_url=ksef_server.base_url, access_token=token, rate_limit_scale=0, max_retries=0) as client:
        yield client


def test_rate_limits_are_the_spec_example_of_ksef_answer(throttled: KSeF, pinned_spec: dict[str, Any]) -> None:
    example = pinned_spec["paths"]["/rate-limits"]["get"]["responses"]["200"]["content"]["application/json"]
    assert throttled.limits.rate().to_dict() == example["example"]


def test_a_group_is_refused_past_its_per_second_limit(throttled: KSeF) -> None:
    per_second = throttled.limits.rate().session_list.per_second
    for _ in range(per_second):
        list(throttled.sessions.list("Online"))
    with pytest.raises(RateLimitError) as refused:
        list(throttled.sessions.list("Online"))
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1


def test_operations_of_one_group_share_its_budget(throttled: KSeF) -> None:
    # GET /limits/context, /limits/subject and /rate-limits are all in the group "other".
    per_second = throttled.limits.rate().other.per_second
    reads = [throttled.limits.context, throttled.limits.subject]
    for index in range(per_second - 1):  # the rate() call above counted once already
        reads[index % 2]()
    with pytest.raises(RateLimitError):
        throttled.limits.subject()


def test_nothing_is_refused_when_throttling_is_off(ksef: KSeF) -> None:
    rates = ksef.limits.rate()
    assert rates.session_list.per_second == rates.global_.per_second == -1
    for _ in range(20):
        list(ksef.sessions.list("Online"))


def test_context_limits_come_with_the_collective_identifier_limit(ksef: KSeF) -> None:
    limits = ksef.limits.context().to_dict()
    assert limits["collectiveIdentifier"] == {"maxInvoices": 500}
    assert limits["onlineSession"] == {"maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 3,
                                       "maxInvoices": 10_000}  # fmt: skip
