"""``ksef invoices list`` (a metadata query, table or JSON, page by page), JSON keys in one style
(snake_case), and ``--json auth status`` logged out (issue 20, point 8)."""

from __future__ import annotations

import datetime as dt
import json
import re

from ksef_client import KSeF
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.test_cli import logged_in, run  # noqa: F401 - the CLI fixtures (profile 'emu')

CAMEL = re.compile(r"[a-z][A-Z]")


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_invoices_list_pages_through_the_metadata(run, logged_in, ksef: KSeF) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    ksef.send_batch([sample_invoice(f"LIST/{i}") for i in range(25)], wait=True)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    code, out, err = run("-p", "emu", "--json", "invoices", "list", "--from", today, "--subject", "Subject1")
    assert code == 0, err
    records = json.loads(out)
    assert len(records) == 25 and {r["invoice_number"] for r in records} == {f"LIST/{i}" for i in range(25)}
    assert records[0]["seller"]["nip"] == NIP
    # Pages of 10, a limit of 12: the walk stops in the second page.
    code, out, _ = run(
        "-p", "emu", "--json", "invoices", "list", "--from", today, "--subject", "Subject1", "--page-size", "10",
        "--limit", "12",
    )  # fmt: skip
    assert code == 0 and len(json.loads(out)) == 12
    code, out, _ = run("-p", "emu", "invoices", "list", "--from", today, "--subject", "Subject1", "--limit", "5")
    assert code == 0 and "5 invoice(s) (stopped at --limit 5: there are more" in out and "KSeF number" in out


def test_every_json_key_is_snake_case(run, logged_in, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    (tmp_path / "a.xml").write_bytes(sample_invoice("SNAKE/1"))
    code, out, err = run("-p", "emu", "--json", "send", "a.xml")
    assert code == 0, err
    sent = json.loads(out)
    ref = sent["reference_number"]
    outputs = [sent]
    for args in (("sessions", "list"), ("sessions", "status", ref), ("sessions", "invoices", ref), ("auth", "status")):
        code, out, err = run("-p", "emu", "--json", *args)
        assert code == 0, err
        outputs.append(json.loads(out))
    camel = {k for o in outputs for k in _keys(o) if CAMEL.search(k)}
    assert not camel, camel


def test_json_auth_status_logged_out_is_json(run) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    code, out, err = run("-p", "emu", "--json", "auth", "status")
    assert code == 3
    assert json.loads(out) == {"profile": "emu", "ksef": json.loads(out)["ksef"], "logged_in": False, "usable": False}
    assert "ksef -p emu auth login" in err
