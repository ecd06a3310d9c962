"""The scripts in examples/ run against the emulator, as a user would run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import batch_and_export, send_invoices, sync_received


@pytest.fixture(autouse=True)
def _local_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KSEF_BASE_URL", raising=False)


def test_send_invoices(tmp_path: Path) -> None:
    numbers = send_invoices.main(tmp_path)
    assert len(numbers) == 3 and len(list(tmp_path.glob("*.xml"))) == 1


def test_batch_and_export(tmp_path: Path) -> None:
    assert batch_and_export.main(tmp_path, count=20) == 20


def test_sync_received(tmp_path: Path) -> None:
    assert sync_received.main(tmp_path) == (5, 5)
