"""The verdicts of ``make peers`` (run before the peers themselves): what fails the job and what not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from peers._harness import FLOWS
from peers.run import EXPECTED_FILE, judge

PIN = {"id": "E1", "status": "failed", "who": "emulator defect (issue 16)", "reason": "r", "match": "invoiceType"}


def outcomes(**flows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base = {flow: {"status": "ok"} for flow in FLOWS}
    return {**base, **{name.replace("__", "."): value for name, value in flows.items()}}


def verdict(results: dict[str, dict[str, Any]], pins: dict[str, Any], flow: str) -> tuple[bool, str]:
    found = next(v for v in judge("sdk", results, {"sdk": pins}) if v.flow == flow)
    return found.good, found.note


def test_all_ok_unpinned_is_good() -> None:
    assert all(v.good for v in judge("sdk", outcomes(), {}))


def test_an_unpinned_failure_fails_the_job() -> None:
    results = outcomes(invoices__metadata={"status": "failed", "error": "X", "detail": "boom"})
    assert verdict(results, {}, "invoices.metadata") == (False, "expected ok")


def test_a_pinned_failure_with_the_pinned_reason_is_good() -> None:
    results = outcomes(invoices__metadata={"status": "failed", "error": "Check", "detail": "invoiceType ['VAT']"})
    assert verdict(results, {"invoices.metadata": PIN}, "invoices.metadata") == (True, "as pinned")


def test_a_pinned_failure_that_passes_now_fails_the_job_until_the_pin_is_flipped() -> None:
    good, note = verdict(outcomes(), {"invoices.metadata": PIN}, "invoices.metadata")
    assert not good
    assert "remove or flip the pin" in note


def test_a_pinned_flow_failing_for_another_reason_fails_the_job() -> None:
    results = outcomes(invoices__metadata={"status": "failed", "error": "Timeout", "detail": "no answer"})
    good, note = verdict(results, {"invoices.metadata": PIN}, "invoices.metadata")
    assert not good
    assert "otherwise than pinned" in note


@pytest.mark.parametrize(("pinned", "good"), [(True, True), (False, False)])
def test_blocked_is_excused_only_behind_a_pinned_failure(pinned: bool, good: bool) -> None:
    results = outcomes(
        online__send={"status": "failed", "error": "Check", "detail": "invoiceType"},
        online__status={"status": "blocked", "detail": "needs online.send"},
    )
    pins = {"online.send": PIN} if pinned else {}
    assert verdict(results, pins, "online.status")[0] is good


def test_the_committed_pins_are_complete_and_name_who_is_wrong() -> None:
    expected = json.loads(EXPECTED_FILE.read_text(encoding="utf-8"))
    for sdk, pins in expected.items():
        if sdk.startswith("_"):
            continue
        for flow, pin in pins.items():
            assert flow in FLOWS, (sdk, flow)
            assert {"id", "status", "who", "reason"} <= set(pin), (sdk, flow)
            assert pin["status"] in {"failed", "n/a", "blocked"}, (sdk, flow)
            assert pin["who"].startswith(("peer", "spec", "emulator defect (issue 16)")), (sdk, flow)


def test_the_plan_runs_every_flow_once() -> None:
    from peers._harness import PLAN  # noqa: PLC0415

    assert [name for name, _ in PLAN] == list(FLOWS)
