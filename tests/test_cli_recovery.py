"""Review s12 (the ``ksef`` CLI in a new user's first hour): what a failure leaves behind is said,
and the way on from it works - a send stopped half-way, a profile not saved yet, a login KSeF no
longer takes, a refreshed login that cannot be saved, a download stopped between windows, a
profile re-pointed by accident, and the small stumbles."""

from __future__ import annotations

import datetime as dt
import errno
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ksef_client import KSeF
from ksef_client._durable import hold_lock
from ksef_client.cli import config
from ksef_client.cli.commands import session_kind
from ksef_client.cli.output import CLIError, Output, notes_of
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests import test_cli
from tests.conftest import NIP

# The CLI fixtures of tests/test_cli.py: ``run`` (profile 'emu' at the emulator) and ``logged_in``.
run, logged_in = test_cli.run, test_cli.logged_in


def _files(directory: Path, prefix: str, count: int, **options: str) -> list[str]:
    names = []
    for i in range(count):
        (directory / f"{prefix}{i}.xml").write_bytes(sample_invoice(f"{prefix}/{i}", **options))
        names.append(f"{prefix}{i}.xml")
    return names


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The CLI's client never really sleeps (its retries' backoff, its polls); the seconds asked for."""
    asked: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is not threading.main_thread():
            real_sleep(seconds)  # the emulator's threads
            return
        asked.append(seconds)

    monkeypatch.setattr("time.sleep", sleep)
    return asked


def _interrupt_at_the_first_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C at the CLI's first sleep (a retry's backoff, a poll's interval)."""
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr("time.sleep", sleep)


def _session(backend: KSeFBackend) -> object:
    (session,) = backend.sessions.state.sessions.values()
    return session


# --- 1. `ksef send` never hides that invoices are in KSeF ------------------------------------


def test_a_failed_close_says_the_invoices_are_in_ksef_and_how_to_close_the_session(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    # Was: `error: HTTP 503 - POST .../close ...`, exit 1, nothing else: the SDK's note (the
    # session, "do not send its invoices again") dropped, and no command to close the session.
    files = _files(tmp_path, "CF", 2)
    backend.faults.add(503, operation="online_session.close_online_session", times=50)
    code, out, err = run("-p", "emu", "send", *files)
    backend.faults.clear()
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("error: HTTP 503") and all(line.startswith("note: ") for line in lines[1:])
    ref = next(iter(backend.sessions.state.sessions))
    assert f"online session {ref}: its close failed" in err  # the SDK's note
    assert f"session {ref}: 2 file(s) (CF0.xml, CF1.xml) sent; do not send them again" in err
    assert f"`ksef -p emu sessions close {ref}` closes it" in err and f"`ksef -p emu sessions wait {ref}`" in err

    code, out, err = run("-p", "emu", "sessions", "status", ref)
    assert code == 0 and "100" in out and f"`ksef -p emu sessions close {ref}` closes it now" in err
    code, out, err = run("-p", "emu", "--json", "sessions", "close", ref)
    assert code == 0 and json.loads(out)["was_open"] is True, err
    code, out, _ = run("-p", "emu", "sessions", "close", ref)  # again: not open any more, nothing to do
    assert code == 0 and "is not open" in out
    code, out, err = run("-p", "emu", "--json", "sessions", "wait", ref)
    assert code == 0, err
    outcome = json.loads(out)
    assert [i["invoice"] for i in outcome["invoices"]] == ["CF/0", "CF/1"]
    assert all(i["ksef_number"] and i["outcome"] == "accepted" for i in outcome["invoices"])

    # The re-run the reviewer tried: 445, "0 accepted, 2 rejected", exit 5.
    code, out, err = run("-p", "emu", "send", *files)
    assert code == 6 and "0 accepted, 2 already in KSeF, 0 rejected" in out
    for number in (i["ksef_number"] for i in outcome["invoices"]):
        assert f"already in KSeF as {number}, sent in session {ref}" in out


def test_ctrl_c_between_invoices_names_the_session_and_the_files_in_it(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: `interrupted`, exit 130, and no word of the session holding the first invoice.
    files = _files(tmp_path, "C", 3)
    backend.faults.add(200, operation="online_session.send_invoice", times=1)  # the first goes through
    backend.faults.add(503, operation="online_session.send_invoice", times=1)  # the second: a retry's wait
    _interrupt_at_the_first_wait(monkeypatch)
    code, out, err = run("-p", "emu", "send", *files)
    assert code == 130 and out == ""
    ref = next(iter(backend.sessions.state.sessions))
    assert err.lstrip("\n").splitlines()[0] == "interrupted"  # after the line click ends a ^C with
    assert f"note: session {ref}: 1 file(s) (C0.xml) sent; do not send them again" in err
    assert "note: C1.xml may have reached KSeF too" in err and "note: not sent: C2.xml" in err
    assert f"the session is closed: KSeF processes what it holds; `ksef -p emu sessions wait {ref}`" in err
    assert len(_session(backend).invoices) == 1  # type: ignore[attr-defined]


def test_ctrl_c_while_ksef_processes_says_every_file_was_sent(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(tmp_path, "W", 2)
    backend.transitions.session_reads = 1000
    _interrupt_at_the_first_wait(monkeypatch)
    code, _, err = run("-p", "emu", "send", *files)
    ref = next(iter(backend.sessions.state.sessions))
    assert code == 130 and err.lstrip("\n").startswith("interrupted\n")
    assert f"session {ref}: all 2 file(s) were sent and the session closed" in err
    assert f"`ksef -p emu sessions wait {ref}` waits for their outcome" in err


def test_the_wait_for_processing_can_be_shortened_and_resumed(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    # Was: a fixed 3600 s wait, and no command to wait again.
    files = _files(tmp_path, "T", 2)
    backend.transitions.session_reads = 3  # the session is found in progress by its first 3 reads
    code, out, err = run("-p", "emu", "send", "--timeout", "0.05", *files)
    ref = next(iter(backend.sessions.state.sessions))
    assert code == 4 and out == "" and err.startswith("error: PollTimeoutError")
    assert "all 2 file(s) were sent and the session closed" in err and f"sessions wait {ref}" in err
    code, _, err = run("-p", "emu", "sessions", "wait", ref, "--timeout", "0.05")
    assert code == 4 and f"KSeF is still processing session {ref}" in err
    code, out, err = run("-p", "emu", "sessions", "wait", ref)
    assert code == 0 and "2 accepted, 0 rejected" in out and "T/0" in out, err


def test_a_batch_that_fails_after_its_session_opened_names_it(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    # Was: `error: BatchError: upload of part 1 failed: HTTP 503`: no session, though the SDK named it.
    files = _files(tmp_path, "BP", 2)
    backend.faults.add(503, operation="storage.upload_part", times=50)
    code, _, err = run("-p", "emu", "send", "--batch", *files)
    backend.faults.clear()
    (ref,) = backend.sessions.state.sessions
    assert code == 1 and f"note: batch session {ref} was opened" in err  # the SDK's note
    assert f"`ksef -p emu sessions status {ref}`" in err and f"`ksef -p emu sessions close {ref} --batch`" in err
    assert "a part not uploaded: KSeF refuses the close" in err
    code, _, err = run("-p", "emu", "sessions", "close", ref, "--batch")
    assert code == 1 and "21205" in err  # a part missing: KSeF will not close it (nothing of it is in KSeF)

    # Every part uploaded, the close lost: closing it is what gets the invoices processed.
    backend.faults.add(503, operation="batch_session.close_batch_session", times=50)
    code, _, err = run("-p", "emu", "send", "--batch", *files)
    backend.faults.clear()
    (ref,) = set(backend.sessions.state.sessions) - {ref}
    assert code == 1 and f"`ksef -p emu sessions close {ref} --batch`" in err
    code, out, err = run("-p", "emu", "--json", "sessions", "close", ref, "--batch")
    assert code == 0 and json.loads(out)["was_open"] is True, err
    code, out, err = run("-p", "emu", "sessions", "wait", ref)
    assert code == 0 and "2 accepted, 0 rejected" in out, err


def test_an_errors_notes_follow_its_line() -> None:
    cause = ValueError("inner")
    cause.add_note("the SDK's advice")
    error = CLIError("outer")
    error.__cause__ = cause
    error.add_note("the CLI's advice")
    assert notes_of(error) == ["the SDK's advice", "the CLI's advice"]
    quiet = CLIError("said in the CLI's words", cause_notes=False)
    quiet.__cause__ = cause
    assert notes_of(quiet) == []


def test_notes_are_printed_as_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    error = RuntimeError("failed")
    error.add_note("a\x1b[31m note\nover lines")
    Output(False).error(error)
    assert capsys.readouterr().err == "error: failed\nnote: a[31m note over lines\n"


# --- 2. a profile not saved yet stops only the commands that use it ---------------------------


def test_a_missing_profile_does_not_block_the_command_that_creates_it(  # type: ignore[no-untyped-def]
    run, ksef_server: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: every command, `profile set test` (the one the error named) included, exited 2.
    monkeypatch.setenv("KSEF_PROFILE", "later")
    code, _, err = run("sessions", "list")
    assert code == 2 and "no profile 'later': create it with `ksef profile set later --env TEST`" in err
    assert run("profile", "list")[0] == 0
    assert run("doctor")[0] == 0
    code, out, err = run("profile", "set", "later", "--base-url", ksef_server.base_url, "--nip", NIP)
    assert code == 0 and "'later' ->" in out, err
    assert run("-p", "other", "profile", "set", "other", "--env", "DEMO")[0] == 0
    assert run("sessions", "list")[0] == 3  # the profile exists now: not logged in


# --- 3. a login KSeF no longer accepts --------------------------------------------------------


def test_a_login_ksef_no_longer_accepts_says_to_log_in_again(  # type: ignore[no-untyped-def]
    run, logged_in, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: `error: HTTP 401 - Unauthorized ...` (the SDK's "log in again" note dropped) while `auth
    # status` said "logged in", exit 0.
    for operation in backend.auth.state.operations.values():
        operation.revoked = True
    later = backend.clock() + dt.timedelta(minutes=20)  # the access token has expired: refreshed, refused
    monkeypatch.setattr(backend, "clock", lambda: later)
    code, out, err = run("-p", "emu", "sessions", "list")
    assert code == 3 and out == "" and err.count("\n") == 1
    assert "KSeF no longer accepts the saved login of profile 'emu'" in err and "`ksef -p emu auth login`" in err
    code, out, err = run("-p", "emu", "auth", "status")
    assert code == 0 and "logged in" not in out and "not checked with KSeF" in out
    code, out, err = run("-p", "emu", "--json", "auth", "status", "--check")
    assert code == 3 and "`ksef -p emu auth login`" in err
    answer = json.loads(out)
    assert answer["checked_with_ksef"] is True and answer["accepted_by_ksef"] is False and not answer["usable"]


def test_a_revoked_access_token_in_the_environment_is_named(  # type: ignore[no-untyped-def]
    run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KSEF_ACCESS_TOKEN", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA")
    code, _, err = run("-p", "emu", "sessions", "list")
    assert code == 3 and "KSeF no longer accepts KSEF_ACCESS_TOKEN" in err


# --- 4. a refreshed login that cannot be saved ------------------------------------------------


@contextmanager
def _credentials_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """credentials.json held by "another ksef process" (its lock), and no waiting for it."""
    monkeypatch.setattr(config, "LOCK_WAIT", 0.0)
    lock = tmp_path / "config" / "credentials.json.lock"
    with hold_lock(lock, lambda: RuntimeError("held")):
        yield


def test_a_refreshed_login_that_cannot_be_saved_does_not_hide_the_result(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: the invoice accepted, the table never printed, exit 2 ("usage error: nothing was sent").
    files = _files(tmp_path, "RS", 1)
    later = backend.clock() + dt.timedelta(hours=2)  # the access token has expired, the refresh token not
    monkeypatch.setattr(backend, "clock", lambda: later)
    saved = json.loads((tmp_path / "config" / "credentials.json").read_text())
    with _credentials_locked(tmp_path, monkeypatch):
        code, out, err = run("-p", "emu", "send", *files)
    assert code == 0 and "1 accepted, 0 rejected" in out and "RS0.xml" in out
    assert err.startswith("warning: the command succeeded (see above), but the login KSeF refreshed")
    assert "is locked by another ksef process" in err and err.count("\n") == 1
    assert json.loads((tmp_path / "config" / "credentials.json").read_text()) == saved
    assert run("-p", "emu", "sessions", "list")[0] == 0  # the saved login still works: refreshed again

    monkeypatch.setattr(backend, "clock", lambda: later + dt.timedelta(hours=2))
    with _credentials_locked(tmp_path, monkeypatch):
        code, _, err = run("-p", "emu", "sessions", "status", "20261125-SO-0000000000-0000000000-00")
    assert code == 1 and err.startswith("error: HTTP 4")  # the command's own error and code stand
    assert "note: the login KSeF refreshed during it could not be saved" in err


# --- 5. a download that stops between windows ---------------------------------------------------


def test_a_download_that_stops_says_what_it_saved_and_where_to_go_on_from(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    # Was: only `error: HTTP 503 - POST /v2/invoices/exports ...`: not that window 1's files were in
    # the folder, nor where to go on from; a re-run exported everything again.
    since = dt.date.today() - dt.timedelta(days=150)
    issued = (since + dt.timedelta(days=30)).isoformat()
    assert run("-p", "emu", "send", *_files(tmp_path, "OLD", 2, issue_date=issued))[0] == 0
    download = ("-p", "emu", "invoices", "download", "inbox", "--subject", "Subject1", "--date-type", "Issue")
    backend.faults.add(200, operation="invoices.export_invoices", times=1)  # window 1 goes through
    backend.faults.add(503, operation="invoices.export_invoices", times=50)
    code, out, err = run(*download, "--from", since.isoformat())
    backend.faults.clear()
    assert code == 1 and out == "" and err.startswith("error: HTTP 503")
    assert "note: 2 invoice file(s) were saved in inbox before it stopped (" in err
    resume = err.split("`--from ")[1].split("`")[0]
    start = dt.datetime.fromisoformat(dt.datetime.combine(since, dt.time(), tzinfo=_warsaw()).isoformat())
    assert dt.datetime.fromisoformat(resume) == start + dt.timedelta(days=100)
    assert f"in place of --from {since.isoformat()}" in err
    code, out, err = run(*download, "--from", resume, "--json")
    assert code == 0 and json.loads(out)["files"] == [], err  # the rest: nothing exported twice
    assert len(list((tmp_path / "inbox").glob("*.xml"))) == 2

    backend.faults.add(503, operation="invoices.export_invoices", times=50)
    code, _, err = run(*download, "--from", since.isoformat(), "--to", issued)
    assert code == 1 and "note: no invoice was saved in inbox before it stopped: run the same command again" in err


def test_a_download_whose_files_could_not_all_be_moved_in_goes_on_from_that_window(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second window's package is moved in part-way (a disk error on its second file): the
    # files of the first window are whole, the second window's are not; going on from the end of
    # the range would skip the invoice not moved in.
    since = dt.date.today() - dt.timedelta(days=150)
    old = (since + dt.timedelta(days=30)).isoformat()
    recent = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    assert run("-p", "emu", "send", *_files(tmp_path, "A", 1, issue_date=old))[0] == 0
    assert run("-p", "emu", "send", *_files(tmp_path, "B", 2, issue_date=recent))[0] == 0
    real_replace, moved = os.replace, []

    def replace(source: str, target: str) -> None:
        if Path(target).parent.name == "inbox":
            moved.append(target)
            if len(moved) == 3:  # the first file of window 1, then the second of window 2
                raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    code, _, err = run(
        "-p", "emu", "invoices", "download", "inbox", "--subject", "Subject1", "--date-type", "Issue",
        "--from", since.isoformat(), "--to", dt.date.today().isoformat(),
    )  # fmt: skip
    assert code == 1 and "could not be moved into" in err
    start = dt.datetime.fromisoformat(dt.datetime.combine(since, dt.time(), tzinfo=_warsaw()).isoformat())
    assert "note: 2 invoice file(s) were saved in inbox" in err
    assert f"`--from {(start + dt.timedelta(days=100)).isoformat()}`" in err  # window 2 again, not the range's end


def _warsaw() -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Warsaw")


# --- 6. `profile set` keeps what it is not given, and refuses base URLs no command takes ----------


def test_profile_set_changes_only_what_it_is_given(run, ksef_server: ThreadedServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Was: `profile set emu --nip X` re-pointed the emulator's profile at the Ministry's KSeF TEST.
    code, _, err = run("profile", "set", "emu", "--nip", "1111111111")
    assert code == 0 and err == ""
    code, out, _ = run("--json", "profile", "list")
    saved = {p["name"]: (p["base_url"], p["nip"]) for p in json.loads(out)}
    assert saved["emu"] == (ksef_server.base_url, "1111111111")
    code, _, err = run("profile", "set", "emu", "--env", "DEMO")
    assert code == 0 and f"note: profile 'emu' pointed at {ksef_server.base_url}; it points at DEMO now" in err
    code, out, _ = run("--json", "profile", "list")
    assert {p["name"]: (p["base_url"], p["environment"], p["nip"]) for p in json.loads(out)}["emu"] == (
        None, "DEMO", "1111111111",
    )  # fmt: skip
    assert run("profile", "set", "emu", "--nip", "")[0] == 0
    assert config.load_profile("emu").nip is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://x", "not an http(s) URL"),
        ("127.0.0.1:18765/v2", "http://127.0.0.1:18765/v2?"),
        ("http:///v2", "no host"),
        ("https://x:99999/v2", "out of range"),
        ("http://ksef.example.com/v2", "--insecure-http allows it"),
    ],
)
def test_profile_set_refuses_a_base_url_no_command_could_use(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, url: str, said: str
) -> None:
    before = (tmp_path / "config" / "config.ini").read_text()
    code, _, err = run("profile", "set", "bad", "--base-url", url)
    assert code == 2 and said in err
    assert (tmp_path / "config" / "config.ini").read_text() == before


def test_plain_http_to_another_machine_takes_an_option(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("profile", "set", "box", "--base-url", "http://ksef-mock:8000/v2", "--insecure-http")
    assert code == 0 and "http://ksef-mock:8000/v2" in out, err
    assert run("profile", "set", "local", "--base-url", "http://localhost:8000/v2")[0] == 0


# --- 7. the small stumbles --------------------------------------------------------------------


def test_ksef_token_from_the_environment_is_stripped(  # type: ignore[no-untyped-def]
    run, ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: a token exported with a CR (a Windows file) or a space ended in 450 "błędnego tokenu".
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as owner:
        created = owner.tokens.create(["InvoiceRead"], "a token from the environment")
        owner.tokens.wait_active(created.reference_number, interval=0.01)
    monkeypatch.setenv("KSEF_TOKEN", f" {created.token}\r\n")
    code, _, err = run("-p", "emu", "auth", "login")
    assert code == 0, err


def test_invoices_list_says_it_stopped_at_the_limit_only_when_it_did(  # type: ignore[no-untyped-def]
    run, logged_in, ksef: KSeF
) -> None:
    # Was: `0 invoice(s) (the first 0: raise --limit)` for --limit 0, and "raise --limit" with
    # exactly --limit matches; nothing for --json.
    today = dt.date.today().isoformat()
    listing = ("-p", "emu", "invoices", "list", "--from", today, "--subject", "Subject1")
    code, out, _ = run(*listing, "--limit", "0")
    assert code == 0 and out.startswith("0 invoice(s)\n")
    ksef.send_batch([sample_invoice(f"LIM/{i}") for i in range(3)], wait=True)
    code, out, _ = run(*listing, "--limit", "3")
    assert code == 0 and out.startswith("3 invoice(s)\n")
    code, out, _ = run(*listing, "--limit", "2")
    assert "2 invoice(s) (stopped at --limit 2: there are more" in out
    code, out, err = run(*listing, "--limit", "2", "--json")
    assert len(json.loads(out)) == 2 and err.startswith("note: 2 invoice(s) listed, stopped at --limit 2")


@pytest.mark.filterwarnings("error::getpass.GetPassWarning")
def test_a_piped_secret_is_read_without_the_echo_warning(  # type: ignore[no-untyped-def]
    run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: getpass.py's "GetPassWarning: Can not control echo ... Password input may be echoed".
    monkeypatch.setattr("sys.stdin", io.StringIO("20251010-EC-0000000000-0000000000-00|nip-5265877635|ab\n"))
    code, out, err = run("-p", "emu", "auth", "save-token")
    assert code == 0 and "saved" in out and "echoed" not in err, err


def test_json_goes_after_the_command_too_and_profile_before_it(run, logged_in) -> None:  # type: ignore[no-untyped-def]
    # Was: `No such option '--json'` for both.
    code, out, err = run("-p", "emu", "sessions", "list", "--json")
    assert code == 0 and json.loads(out) == [], err
    code, _, err = run("sessions", "list", "-p", "emu")
    assert code == 2 and "hint: -p is an option of ksef itself: it goes before the command" in err
    assert "`ksef -p NAME sessions list ...`" in err


@pytest.mark.parametrize(
    "options",
    [
        ["--pkcs12", "seal.p12", "--key", "key.pem"],
        ["--pkcs12", "seal.p12", "--cert", "cert.pem"],
        ["--token-stdin", "--cert", "cert.pem", "--key", "key.pem"],
        ["--token-stdin", "--pkcs12", "seal.p12"],
        ["--key", "key.pem"],
    ],
)
def test_login_options_of_two_ways_at_once_are_a_usage_error(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, backend: KSeFBackend, options: list[str]
) -> None:
    # Was: --pkcs12 with --key ignored --key; --token-stdin with --cert ignored the token.
    seal = self_signed_certificate(nip=NIP, kind="seal")
    seal.save(tmp_path / "seal.p12", "a password")
    (tmp_path / "cert.pem").write_bytes(seal.certificate_pem())
    (tmp_path / "key.pem").write_bytes(seal.private_key_pem())
    code, _, err = run("-p", "emu", "auth", "login", *options)
    assert code == 2 and err.startswith("error: --") and backend.auth.state.operations == {}


# --- 8. config.ini is written as credentials.json is ----------------------------------------------


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KSEF_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("KSEF_PROFILE", raising=False)
    return tmp_path


def test_config_ini_is_changed_under_its_lock(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Was: read, changed and written in place without a lock: of two `profile set` at once, one
    # lost the other's profile.
    config.set_profile("first", "TEST")
    monkeypatch.setattr(config, "LOCK_WAIT", 0.0)
    held = hold_lock(config_dir / "config.ini.lock", lambda: RuntimeError("held"))
    with held, pytest.raises(config.ConfigFileError, match=r"config.ini is locked by another ksef process"):
        config.set_profile("second", "TEST")
    config.set_profile("second", "PROD")
    assert [p.name for p in config.list_profiles()] == ["first", "second"]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_config_write_that_fails_half_way_leaves_the_old_file_whole(config_dir: Path) -> None:
    # Was: `path.open("w")`: a full disk (here a file size limit) during `profile set` truncated
    # config.ini, every profile lost.
    for i in range(40):
        config.set_profile(f"profile-{i}", "TEST", nip="5265877635")
    before = (config_dir / "config.ini").read_bytes()
    assert len(before) > 1000
    code = (
        "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); "
        "from ksef_client.cli import main; raise SystemExit(main(['profile', 'set', 'new', '--env', 'DEMO']))"
    )
    env = dict(os.environ, KSEF_CONFIG_DIR=str(config_dir))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert done.returncode != 0 and "File too large" in done.stderr
    assert (config_dir / "config.ini").read_bytes() == before
    assert sorted(p.name for p in config_dir.iterdir()) == ["config.ini", "config.ini.lock"]


# --- review s12-final ---------------------------------------------------------------------------
# 1. A 440 is "already in KSeF" (exit 6, the original's number as the file's) only for the same file.

UPO_BY_NUMBER = "sessions_status.get_invoice_upo_by_ksef_number"


def _upo_reads(backend: KSeFBackend) -> int:
    """Count the per-invoice UPO reads from now on (a rule that fails none: ``faults.injected``)."""
    backend.faults.clear()
    backend.faults.add(200, operation=UPO_BY_NUMBER, times=10_000)
    return backend.faults.injected


def _sent(run, *args: str) -> tuple[int, dict, str]:  # type: ignore[no-untyped-def, type-arg]
    code, out, err = run("-p", "emu", "--json", "send", *args)
    return code, json.loads(out), err


@pytest.mark.parametrize("batch", [[], ["--batch"]], ids=["online", "batch"])
def test_a_440_is_already_in_ksef_only_for_the_same_file(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float], batch: list[str]
) -> None:
    # Was: every 440 (KSeF's duplicate of seller, type and number: weryfikacja-faktury.md) read
    # "already in KSeF as <the original's number>", that number in the file's ksef_number, exit 6,
    # for an edited invoice reusing a number too: a script recorded it as sent, and it was not.
    (tmp_path / "a.xml").write_bytes(sample_invoice("FV/DUP/1", net="100.00"))
    (tmp_path / "b.xml").write_bytes(sample_invoice("FV/DUP/1", net="999.00"))  # the same number, edited
    code, first, err = _sent(run, "a.xml")
    assert code == 0, err
    number, session = first["invoices"][0]["ksef_number"], first["reference_number"]

    start = _upo_reads(backend)
    code, again, err = _sent(run, *batch, "a.xml")  # the same file again: in KSeF, nothing to do
    assert code == 6 and "already in KSeF (440 duplicates of the same files" in err
    assert again["invoices"][0] | {"status": ""} == {
        "file": "a.xml", "ksef_number": number, "code": 440, "status": "", "outcome": "already_in_ksef",
        "duplicate_of": number, "duplicate_session": session,
    }  # fmt: skip
    assert backend.faults.injected - start == 1  # one read of the original (its UPO's SkrotDokumentu)

    start = backend.faults.injected
    code, edited, err = _sent(run, *batch, "b.xml")
    assert code == 5 and "1 of 1 invoice(s) rejected" in err and "a number KSeF holds for another invoice" in err
    row = edited["invoices"][0]
    assert row | {"status": ""} == {
        "file": "b.xml", "ksef_number": None, "code": 440, "status": "", "outcome": "duplicate_number",
        "duplicate_of": number, "duplicate_session": session,
    }  # fmt: skip
    assert row["status"].startswith(f"not in KSeF: KSeF holds another invoice with this number as {number}")
    assert "give this invoice a new number" in row["status"]
    assert backend.faults.injected - start == 1

    code, out, err = run("-p", "emu", "send", *batch, "b.xml")  # for people: the row and the counts say it
    assert code == 5 and "0 accepted, 1 rejected" in out and "not in KSeF" in out and "already in KSeF" not in out

    # `sessions wait` of that session tells the same.
    code, out, err = run("-p", "emu", "--json", "sessions", "wait", edited["reference_number"])
    assert code == 5 and json.loads(out)["invoices"][0]["outcome"] == "duplicate_number", err
    code, out, err = run("-p", "emu", "--json", "sessions", "wait", again["reference_number"])
    assert code == 6 and json.loads(out)["invoices"][0]["outcome"] == "already_in_ksef", err


@pytest.mark.parametrize("batch", [[], ["--batch"]], ids=["online", "batch"])
def test_two_files_of_one_number_in_one_send(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float], batch: list[str]
) -> None:
    # Was: the second file, another invoice, was "already in KSeF" as the first one's number (exit 6).
    (tmp_path / "a.xml").write_bytes(sample_invoice("FV/TWO/1", net="100.00"))
    (tmp_path / "b.xml").write_bytes(sample_invoice("FV/TWO/1", net="999.00"))
    start = _upo_reads(backend)
    code, sent, err = _sent(run, *batch, "a.xml", "b.xml")
    a, b = sent["invoices"]
    assert code == 5 and a["outcome"] == "accepted" and b["outcome"] == "duplicate_number", err
    assert b["ksef_number"] is None and b["duplicate_of"] == a["ksef_number"]
    assert b["duplicate_session"] == sent["reference_number"]
    assert backend.faults.injected == start  # the original is in the session's own listing: no request

    # The same file twice (`ksef send same.xml same-copy.xml`): a repeat, not a failure.
    code, sent, err = _sent(run, *batch, *_copies(tmp_path, "FV/TWO/2"))
    first, second = sent["invoices"]
    assert code == 0 and first["outcome"] == "accepted" and second["outcome"] == "repeat", err
    assert second["ksef_number"] == first["ksef_number"] == second["duplicate_of"]


def _copies(directory: Path, number: str) -> list[str]:
    """Two files of one invoice, byte for byte."""
    data = sample_invoice(number)
    for name in ("same.xml", "same-copy.xml"):
        (directory / name).write_bytes(data)
    return ["same.xml", "same-copy.xml"]


def test_a_rejection_outranks_an_invoice_already_in_ksef(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    (tmp_path / "a.xml").write_bytes(sample_invoice("FV/RANK/1"))
    (tmp_path / "other.xml").write_bytes(sample_invoice("FV/RANK/2", seller_nip="1111111111", buyer_nip=NIP))
    assert _sent(run, "a.xml")[0] == 0
    code, sent, err = _sent(run, "a.xml", "other.xml")  # in KSeF already, and one KSeF refuses (410)
    assert [row["outcome"] for row in sent["invoices"]] == ["already_in_ksef", "rejected"]
    assert code == 5 and err.startswith("error: 1 of 2 invoice(s) rejected"), err


def test_a_440_whose_original_cannot_be_read_is_not_taken_for_the_file(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    (tmp_path / "a.xml").write_bytes(sample_invoice("FV/UNREAD/1"))
    code, first, _ = _sent(run, "a.xml")
    number, session = first["invoices"][0]["ksef_number"], first["reference_number"]
    backend.faults.add(400, operation=UPO_BY_NUMBER, code=21178, times=50)
    code, sent, err = _sent(run, "a.xml")
    backend.faults.clear()
    row = sent["invoices"][0]
    assert code == 5 and row["outcome"] == "duplicate_number" and row["ksef_number"] is None, err
    assert row["duplicate_of"] == number and "could not be compared with this file" in row["status"]
    assert "[21178]" in row["status"] and f"`ksef -p emu upo get {session} --invoice {number}`" in row["status"]


def test_a_440_whose_original_cannot_be_read_for_the_token_ends_as_that_error(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    # Review s13 (A1): a 401 (403, a connection down, ...) reading the original was each row's
    # "could not be compared" (exit 5): now the error, as the CLI prints errors, with its notes.
    (tmp_path / "a.xml").write_bytes(sample_invoice("FV/UNREAD/401"))
    assert _sent(run, "a.xml")[0] == 0
    backend.faults.add(401, operation=UPO_BY_NUMBER, times=1000)
    code, out, err = run("-p", "emu", "send", "a.xml")
    assert code == 3 and out == "" and err.startswith("error: HTTP 401"), err
    assert "KSeF no longer accepts the saved login of profile 'emu'" in err  # the CLI's word for a 401
    found = re.search(r"note: session (\S+): all 1 file\(s\) were sent", err)
    assert found is not None, err  # `ksef send`'s own note: where the file is, what to run
    reference = found[1]
    code, out, err = run("-p", "emu", "sessions", "wait", reference)
    assert code == 3 and err.startswith("error: HTTP 401") and "KSeF no longer accepts the saved login" in err


def test_a_440_whose_original_cannot_be_read_for_a_lost_connection_ends_as_that_error(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    (tmp_path / "a.xml").write_bytes(sample_invoice("FV/UNREAD/DROP"))
    assert _sent(run, "a.xml")[0] == 0
    backend.faults.add(DROP, operation=UPO_BY_NUMBER, times=1000)
    code, out, err = run("-p", "emu", "send", "a.xml")
    assert code == 4 and out == "" and err.startswith("error: APIConnectionError: GET "), err
    stopped = "note: check_duplicates stopped: 0 of the 1 originals it had to read from KSeF were read"
    assert stopped in err
    # review s13-last, 5: the SDK's note named error.partial, which a CLI user has not
    assert "error.partial" not in err and "`ksef -p emu sessions wait` on the session reads them all again" in err
    found = re.search(r"note: session (\S+): all 1 file\(s\) were sent", err)
    assert found is not None, err
    reference = found[1]
    code, out, err = run("-p", "emu", "sessions", "wait", reference)
    assert code == 4 and stopped in err and "error.partial" not in err
    assert f"note: the outcome of session {reference} was not read: `ksef -p emu sessions wait {reference}`" in err
    backend.faults.clear()
    code, out, err = run("-p", "emu", "--json", "sessions", "wait", reference)
    assert code == 6 and json.loads(out)["invoices"][0]["outcome"] == "already_in_ksef", err


def test_many_originals_of_one_session_are_read_from_its_upo(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch sent again whole: one read of the session's UPO, not one request per invoice.
    monkeypatch.setattr("ksef_client.resources._duplicate_flows.SESSION_UPO_FROM", 3)
    files = _files(tmp_path, "MANY", 3)
    assert _sent(run, "--batch", *files)[0] == 0
    start = _upo_reads(backend)
    code, sent, err = _sent(run, "--batch", *files)
    assert code == 6 and {row["outcome"] for row in sent["invoices"]} == {"already_in_ksef"}, err
    assert backend.faults.injected == start  # no per-invoice read


# 3. An open session's note and `sessions close` go by its kind, read from its reference number.


def test_an_open_batch_session_is_said_to_be_cancelled_unless_closed_and_closes_without_batch(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, no_waits: list[float]
) -> None:
    # Was: "KSeF processes its invoices ... once it is closed (by itself at its validUntil)" and
    # `ksef sessions close REF`, which KSeF answered with 21173 "Brak sesji" (an online close).
    files = _files(tmp_path, "OB", 2)
    backend.faults.add(503, operation="batch_session.close_batch_session", times=50)
    assert run("-p", "emu", "send", "--batch", *files)[0] == 1
    backend.faults.clear()
    (ref,) = backend.sessions.state.sessions
    code, out, err = run("-p", "emu", "sessions", "status", ref)
    assert code == 0 and f"{ref}: 100" in out
    assert f"note: batch session {ref} is open: KSeF processes none of it until it is closed" in err
    assert "unless closed, it is cancelled at its validUntil" in err and "none of its invoices reach KSeF" in err
    assert f"`ksef -p emu sessions close {ref} --batch` closes it" in err and "by itself at" not in err
    code, out, err = run("-p", "emu", "sessions", "close", ref)  # no --batch: the reference says it
    assert code == 0 and f"batch session {ref} closed: KSeF processes it" in out, err
    code, out, err = run("-p", "emu", "sessions", "wait", ref)
    assert code == 0 and "2 accepted, 0 rejected" in out, err


def test_an_online_session_closed_with_batch_is_a_usage_error(  # type: ignore[no-untyped-def]
    run, logged_in, ksef: KSeF, backend: KSeFBackend
) -> None:
    # Was: KSeF's 21180 "Status sesji 100 uniemożliwia jej zamknięcie", exit 1: no hint.
    session = ksef.online_session().open()
    session.send(sample_invoice("FV/KIND/1"))
    ref = session.reference_number
    assert ref is not None
    code, out, err = run("-p", "emu", "sessions", "status", ref)
    assert f"note: online session {ref} is open: KSeF processes its invoices" in err and "(by itself at" in err
    code, _, err = run("-p", "emu", "sessions", "close", ref, "--batch")
    assert code == 2 and err.startswith(f"error: {ref} is an online session (-SO- in its reference number)")
    assert f"`ksef -p emu sessions close {ref}` closes it (without --batch)" in err
    assert backend.sessions.state.sessions[ref].status.code == 100  # nothing was sent
    code, out, err = run("-p", "emu", "sessions", "close", ref)
    assert code == 0 and f"online session {ref} closed" in out, err


def test_the_kind_of_a_session_is_read_from_its_reference_number() -> None:
    assert session_kind("20250625-SO-2C3E6C8000-B675CF5D68-07") == "online"
    assert session_kind("20250626-SB-213D593000-4DE10D80A5-E9") == "batch"
    assert session_kind("20250901-EU-47FDBE3000-5961A5D232-BF") is None


# 6. `sessions wait` on a session still open says to close it, and does not wait.


def test_waiting_for_an_open_session_says_to_close_it_first(  # type: ignore[no-untyped-def]
    run, logged_in, ksef: KSeF, no_waits: list[float]
) -> None:
    # Was: polled for --timeout (an hour by default), then "KSeF is still processing ... its invoices
    # are in KSeF's hands; ... waits again", which never helps: KSeF processes nothing of it until closed.
    session = ksef.online_session().open()
    session.send(sample_invoice("FV/OPEN/1"))
    ref = session.reference_number
    code, out, err = run("-p", "emu", "sessions", "wait", str(ref), "--timeout", "60")
    assert code == 2 and out == ""
    assert err.startswith(f"error: session {ref} is open (100 ") and "close it first, then wait" in err
    assert f"`ksef -p emu sessions close {ref}` closes it now" in err and "still processing" not in err
    assert f"note: then `ksef -p emu sessions wait {ref}` shows its outcome" in err
    assert no_waits == [1.0, 2.0]  # two more reads (a close just made may read 100 a moment), no poll
    assert run("-p", "emu", "sessions", "close", str(ref))[0] == 0
    code, out, err = run("-p", "emu", "sessions", "wait", str(ref))
    assert code == 0 and "1 accepted, 0 rejected" in out, err


# 8. A piped secret: the label is still shown (Git Bash, IDE consoles: no terminal to Python).


def test_a_secret_read_from_a_pipe_is_asked_for_on_stderr(  # type: ignore[no-untyped-def]
    run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: nothing printed, and the command seemed to hang where a person was to type.
    monkeypatch.setattr("sys.stdin", io.StringIO("20251010-EC-0000000000-0000000000-00|nip-5265877635|ab\n"))
    code, out, err = run("-p", "emu", "--json", "auth", "save-token")
    assert code == 0 and err == "KSeF token: \n" and json.loads(out), err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run("-p", "emu", "auth", "save-token")
    assert code == 2 and err.startswith("KSeF token: \nerror: KSeF token: none given"), err


# 7. A symlinked config.ini stays a link; one that cannot be renamed over is written in place.


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need a privilege on Windows")
def test_a_symlinked_config_ini_is_written_at_its_target(
    config_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Was: os.replace put a regular file in the link's place: the linked copy (dotfiles) went stale.
    dotfiles = tmp_path_factory.mktemp("dotfiles")
    (dotfiles / "config.ini").write_text("[test]\nenvironment = TEST\n")
    (config_dir / "config.ini").symlink_to(dotfiles / "config.ini")
    config.set_profile("emu", base_url="http://127.0.0.1:8000/v2")
    assert (config_dir / "config.ini").is_symlink()
    assert [p.name for p in config.list_profiles()] == ["test", "emu"]
    assert "[emu]" in (dotfiles / "config.ini").read_text()
    assert sorted(p.name for p in dotfiles.iterdir()) == ["config.ini"]  # no temporary file left
    assert sorted(p.name for p in config_dir.iterdir()) == ["config.ini", "config.ini.lock"]


def test_a_config_ini_that_cannot_be_renamed_over_is_written_in_place(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A config.ini bind-mounted into a container: rename(2) onto a mount point is EBUSY.
    config.set_profile("first", "TEST")
    inode = (config_dir / "config.ini").stat().st_ino

    def busy(source: object, target: object) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(os, "replace", busy)
    config.set_profile("second", "DEMO")
    assert [p.name for p in config.list_profiles()] == ["first", "second"]
    assert (config_dir / "config.ini").stat().st_ino == inode  # the same file, changed in place
    assert sorted(p.name for p in config_dir.iterdir()) == ["config.ini", "config.ini.lock"]
