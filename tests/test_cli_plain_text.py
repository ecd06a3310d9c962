"""The CLI prints what KSeF and the sellers wrote as plain text: never as rich markup, never with a
control character that a terminal would act on; ``--json`` keeps every value as it is (review of
hostile servers, finding 5).

An invoice number is the seller's text: FA(3) P_2 is TZnakowy (any characters, 1 to 256), so
``FV/[/x]/2026`` is a valid number that KSeF stores and lists as it is.
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.cli.output import Output, printable
from ksef_client.doctor import diagnose, print_report
from ksef_client.errors import make_status_error
from ksef_client.testing import sample_invoice
from tests.test_cli import logged_in, run  # noqa: F401 - the CLI fixtures (profile 'emu')

ESCAPES = "\x1b[2J\x1b]0;title\x07\x9b31m\u202e"  # clear screen, window title, C1 CSI, right-to-left override
MARKUP_NUMBERS = ["FV/[/x]/2026", "[on red]FV/2[/]", "FV/:smile:/3"]


def test_invoice_numbers_that_look_like_markup_are_printed_as_they_are(run, logged_in, ksef: KSeF) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    # Was: "[/x]" ended `ksef invoices list` with exit 1 ("closing tag '[/x]' ..."), "[on red]FV/2[/]"
    # showed as FV/2, a number KSeF does not hold.
    ksef.send_batch([sample_invoice(number) for number in MARKUP_NUMBERS], wait=True)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    code, out, err = run("-p", "emu", "invoices", "list", "--from", today, "--subject", "Subject1")
    assert code == 0, err
    for number in MARKUP_NUMBERS:
        assert number in out
    code, out, err = run("-p", "emu", "--json", "invoices", "list", "--from", today, "--subject", "Subject1")
    assert code == 0, err
    assert sorted(record["invoice_number"] for record in json.loads(out)) == sorted(MARKUP_NUMBERS)


def test_control_characters_never_reach_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    Output(as_json=False).result(
        {"description": ESCAPES}, table=("KSeF number", "status"), rows=[(f"FV/1{ESCAPES}", "line\nbreak")],
        message=f"session X: 200 {ESCAPES}[bold]ok[/bold]",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\x9b\u202e")
    assert "FV/1[2J]0;title31m" in out and "line break" in out and "[bold]ok[/bold]" in out
    Output(as_json=True).result({"description": ESCAPES})
    assert json.loads(capsys.readouterr().out) == {"description": ESCAPES}  # --json: the value as KSeF sent it


def test_an_error_line_quoting_ksef_is_printable(capsys: pytest.CaptureFixture[str]) -> None:
    body = {"exception": {"exceptionDetailList": [{"exceptionCode": 21405, "exceptionDescription": ESCAPES}]}}
    request = httpx.Request("GET", "https://ksef.example/v2/sessions")
    error = make_status_error(httpx.Response(400, json=body, request=request))
    for as_json in (False, True):
        Output(as_json).error(error)
        err = capsys.readouterr().err
        assert err.startswith("error: HTTP 400 [21405]") and not any(c in err for c in "\x1b\x07\x9b\u202e")


def test_doctor_prints_the_servers_version_text_without_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"info": {"description": "**Wersja API:** 2.99.0 (build 2.99\x1b]0;x\x07\x1b[8m)"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=spec))
    report = diagnose("https://ksef.example/v2", transport=transport)
    assert report.server is not None and report.server.version is not None
    assert "\x1b" in str(report.server.version)  # read as sent ...
    print_report(report, as_json=False)
    printed = capsys.readouterr()
    assert "2.99.0 (build 2.99]0;x[8m)" in printed.out and "\x1b" not in printed.out + printed.err  # ... shown inert
    print_report(report, as_json=True)
    assert "\x1b" in json.loads(capsys.readouterr().out)["server"]["build"]


def test_printable_leaves_ordinary_text_alone() -> None:
    text = "Faktura FV/2026/01 - zażółć gęślą jaźń, 100 zł [x] €"
    assert printable(text) == text
