"""The benchmark harness in its quick profile (CI): every figure is produced. No timing asserts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run


def test_quick_profile_produces_every_figure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(run, "QUICK", True)
    results = run.collect()
    for figure in (
        "parsing",
        "import",
        "import_client",
        "crypto_floor",
        "batch_build",
        "list_sessions",
        "upo_download",
        "emulator",
        "emulator_sessions",
        "upo_parsing",
        "cli_help",
        "side_by_side",
    ):
        assert results[figure], figure
    assert results["upo_download"]["invoices"] == 100
    table = run.markdown(results)
    assert "| parse 1000-item SessionInvoicesResponse" in table and results["machine"]["cores"]
    # ksef2 runs when its venv exists (make peers / make bench make it); the quick profile never installs it
    assert "## Beside ksef2" in table and results["side_by_side"]["sdks"]["ksef-client"]
    assert "ksef2" in results["side_by_side"]["sdks"] or "ksef2" in results["side_by_side"]["skipped"]
    # A child that stopped reporting a figure would only drop its row from the table.
    sdks = results["side_by_side"]["sdks"]
    ours = {"batch_s", "batch_unchecked_s", "list_s", "upo_s", "upo_xml_s", "online_s", "online_unchecked_s"}
    assert ours <= sdks["ksef-client"].keys()
    if "ksef2" in sdks:
        assert {"batch_s", "batch_checked_s", "list_s", "upo_s", "online_s", "online_checked_s"} <= sdks["ksef2"].keys()
    assert "| online session of 20 invoices" in table and "| session UPO of 200 invoices" in table
