"""The emulator's limits: what ``/rate-limits`` and ``/limits/context`` say is what it enforces,
and the values are KSeF's (the spec's example answer and per-operation ``x-rate-limits``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksef_client import KSeF
from ksef_client._throttle import Throttle
from ksef_client.errors import RateLimitError
from ksef_client.identifiers import is_valid_nip
from ksef_client.mock import KSeFBackend
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.core import Context
from ksef_client.mock.state.limits import overridable_groups, rate_limit_groups
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.mock.conftest import invoice_status, open_online, send_online


def _stop_and_enforce(backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """KSeF's own limits in the emulator, its clock stopped (every request in the same instant)."""
    monkeypatch.setattr(backend, "rate_limits", Throttle(scale=1.0))
    now = backend.clock()
    monkeypatch.setattr(backend, "clock", lambda: now)


@pytest.fixture
def throttled(ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[KSeF]:
    """KSeF's own limits in the emulator, its clock stopped; the client neither throttles nor retries."""
    _stop_and_enforce(backend, monkeypatch)
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


def test_each_endpoint_of_other_has_its_own_counter(throttled: KSeF) -> None:
    # limity/limity-api.md, "Pozostałe" (``other``, "POST/GET /*", 10 req/s): "Każdy taki endpoint
    # posiada własny licznik limitów, a jego żądania nie wpływają na inne zasoby." Was: GET
    # /limits/context, /limits/subject and /rate-limits shared one budget, and the 11th read of
    # any of them in a second was refused.
    per_second = throttled.limits.rate().other.per_second
    for _ in range(per_second):
        throttled.limits.context()
        throttled.limits.subject()
    for _ in range(per_second - 1):  # the rate() call above counted once on its own counter
        throttled.limits.rate()
    for read in (throttled.limits.context, throttled.limits.subject, throttled.limits.rate):
        with pytest.raises(RateLimitError):  # each endpoint past its own 10
            read()


def test_the_operations_of_a_named_group_share_its_counter(
    raw: httpx.Client, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sessionMisc is one row of the guide's sessions table, "Pozostałe | GET /sessions/* | 10 | 120
    # | 1200" (the changelog: "grupy sessionMisc (zasoby GET /sessions/*)", four operations); the
    # per-endpoint counter is said only of the default limits, "zasoby [...], które nie mają
    # określonych wartości szczegółowych". Five reads of the session and five of a UPO are its 10.
    _stop_and_enforce(backend, monkeypatch)
    ref = "20261120-SO-0000000000-000000000000-00"
    paths = [f"/sessions/{ref}", f"/sessions/{ref}/upo/{ref}"]
    statuses = [raw.get(paths[i % 2]).status_code for i in range(10)]
    assert 429 not in statuses
    assert raw.get(paths[0]).status_code == raw.get(paths[1]).status_code == 429


def _nips(count: int) -> list[str]:
    """``count`` valid NIPs, always the same ones."""
    return [nip for nip in (f"52600000{i:02d}" for i in range(100)) if is_valid_nip(nip)][:count]


def test_global_counts_every_request_of_an_address_whatever_its_context(
    ksef_mock: KSeFMock, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EffectiveApiRateLimits.global: "Limity globalne dla wszystkich operacji API (per adres IP)"
    # (75 per second in the spec's example of GET /rate-limits). 60 challenges (anonymous), then
    # reads of "other" by eight contexts, each well within its own 10 a second: the 76th request
    # of the address is refused, by ``global``.
    _stop_and_enforce(backend, monkeypatch)
    with httpx.Client(base_url=ksef_mock.base_url) as http:
        assert all(http.post("/auth/challenge").status_code == 200 for _ in range(60))
        statuses = []
        for nip in _nips(8):
            headers = {"Authorization": f"Bearer {ksef_mock.token(nip)}"}
            statuses += [http.get("/limits/subject", headers=headers) for _ in range(2)]
    assert [answer.status_code for answer in statuses[:15]] == [200] * 15
    assert statuses[15].status_code == 429 and "global" in statuses[15].text
    assert int(statuses[15].headers["Retry-After"]) == 1


def test_anonymous_operations_are_counted_per_address(
    ksef_mock: KSeFMock, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # limity/limity-api.md: public resources such as /auth/challenge "nie wymagają uwierzytelnienia
    # [...] - limit wynosi 60 żądań na sekundę dla jednego adresu IP"; GET /rate-limits names one
    # group for them, ``anonymous``, counted here over all of them (the guide gives no context to
    # count them by, nor says each has its own counter).
    _stop_and_enforce(backend, monkeypatch)
    with httpx.Client(base_url=ksef_mock.base_url) as http:
        for _ in range(30):
            assert http.post("/auth/challenge").status_code == 200
            assert http.get("/security/public-key-certificates").status_code == 200
        refused = http.post("/auth/challenge")
    assert refused.status_code == 429 and "anonymous" in refused.text


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


def _testdata(
    server: ThreadedServer, backend: KSeFBackend, method: str, path: str, nip: str = NIP, **body: Any
) -> None:
    headers = {"Authorization": f"Bearer {backend.mint_access_token(nip)}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as http:
        answer = http.request(method, path, json=body or None)
    assert answer.status_code == 200, answer.text


def _override(**groups: tuple[int, int, int]) -> dict[str, dict[str, int]]:
    """A SetRateLimitsRequest's ``rateLimits``: the spec's limits, ``groups`` changed."""
    limits = {g: {"perSecond": s, "perMinute": m or -1, "perHour": h or -1}
              for g, (s, m, h) in rate_limit_groups().items() if g in overridable_groups()}  # fmt: skip
    limits.update({g: {"perSecond": s, "perMinute": m, "perHour": h} for g, (s, m, h) in groups.items()})
    return limits


def test_a_context_s_own_rate_limits_are_reported_and_enforced_until_reset(
    throttled: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    _testdata(ksef_server, backend, "POST", "/testdata/rate-limits", rateLimits=_override(sessionList=(2, 10, 60)))
    assert throttled.limits.rate().session_list.per_second == 2
    list(throttled.sessions.list("Online"))
    list(throttled.sessions.list("Online"))
    with pytest.raises(RateLimitError):
        list(throttled.sessions.list("Online"))
    _testdata(ksef_server, backend, "DELETE", "/testdata/rate-limits")
    assert throttled.limits.rate().session_list.per_second == 5  # the spec's again
    list(throttled.sessions.list("Online"))  # 3 of 5 used in this second


def test_rate_limit_overrides_belong_to_one_context(
    throttled: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    _testdata(ksef_server, backend, "POST", "/testdata/rate-limits", nip="5260250274",
              rateLimits=_override(sessionList=(1, 1, 1)))  # fmt: skip
    assert throttled.limits.rate().session_list.per_second == 5


def test_production_rate_limits_are_the_spec_s_whatever_the_emulator_s_scale(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KSeF TEST's defaults are ten times production's (limity/limity-api.md): here, --rate-limits 10
    monkeypatch.setattr(backend, "rate_limits", Throttle(scale=10.0))
    token = backend.mint_access_token(NIP)
    with KSeF(base_url=ksef_server.base_url, access_token=token, rate_limit_scale=0, max_retries=0) as client:
        assert client.limits.rate().session_list.per_second == 50
        _testdata(ksef_server, backend, "POST", "/testdata/rate-limits/production")
        rates = client.limits.rate()
    assert (rates.session_list.per_second, rates.session_list.per_hour) == (5, 60)
    assert rates.global_.per_second == 750  # not a context's limit: still the emulator's


def test_a_state_saved_before_rate_limit_overrides_existed_still_loads(tmp_path: Path) -> None:
    backend = KSeFBackend()
    del backend.testdata.state.rate_limits  # what an older emulator's state file unpickles to
    store = SQLiteStore(tmp_path / "old.sqlite")
    store.save(backend)
    restored = KSeFBackend()
    assert store.load(restored)
    assert restored.testdata.rate_limits_of(Context("Nip", NIP)) == {}


def test_a_negative_override_is_no_limit_and_unknown_groups_are_left_out(
    throttled: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    limits = {**_override(sessionList=(-1, -1, -1)), "noSuchGroup": {}}
    _testdata(ksef_server, backend, "POST", "/testdata/rate-limits", rateLimits=limits)
    assert throttled.limits.rate().session_list.per_second == -1
    for _ in range(8):  # past the spec's 5 per second
        list(throttled.sessions.list("Online"))


# --- invoice sizes -----------------------------------------------------------------------------------


def test_the_context_s_invoice_size_limits_are_the_ones_enforced(raw: httpx.Client) -> None:
    # invoiceSize: "Maksymalny rozmiar zależy od limitów ustawionych dla uwierzytelnionego kontekstu"
    # (the spec); the limits are GET /limits/context's, set on TEST by /testdata/limits/context/session.
    big = sample_invoice("FV/S/1", lines=7000)
    assert 1_000_000 < len(big) < 2_000_000
    ref, key = open_online(raw)
    refused = invoice_status(raw, ref, send_online(raw, ref, key, big).json()["referenceNumber"])["status"]
    assert refused["code"] == 430 and refused["details"][0].startswith("[size]")  # KSeF's default: 1 MB
    limits = raw.get("/limits/context").json()
    limits["onlineSession"]["maxInvoiceSizeInMB"] = 2
    assert raw.post("/testdata/limits/context/session", json=limits).status_code == 200
    assert raw.get("/limits/context").json()["onlineSession"]["maxInvoiceSizeInMB"] == 2
    sent = send_online(raw, ref, key, big.replace(b"FV/S/1", b"FV/S/2"))
    assert invoice_status(raw, ref, sent.json()["referenceNumber"])["status"]["code"] == 200
