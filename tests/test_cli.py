"""The ``ksef`` command against the emulator: what a script or a person sees, and the exit codes."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import keyring
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from keyring.backend import KeyringBackend

from ksef_client.cli import main
from ksef_client.cli.output import CLIError
from ksef_client.cli.sending import checked_invoices
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.helpers import certificate_with


@pytest.fixture
def run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ksef_server: ThreadedServer,
    backend: KSeFBackend,
):  # type: ignore[no-untyped-def]
    """``run(*args) -> (exit code, stdout, stderr)`` with profile 'emu' pointing at the emulator."""
    monkeypatch.setenv("KSEF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("KSEF_CREDENTIAL_STORE", "file")
    for name in ("KSEF_TOKEN", "KSEF_ACCESS_TOKEN", "KSEF_PROFILE", "KSEF_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    assert invoke("profile", "set", "emu", "--base-url", ksef_server.base_url, "--nip", NIP)[0] == 0
    return invoke


@pytest.fixture
def logged_in(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    creds = self_signed_certificate(nip=NIP, kind="seal")
    (tmp_path / "cert.pem").write_bytes(creds.certificate_pem())
    (tmp_path / "key.pem").write_bytes(creds.private_key_pem(b"secret password"))
    monkeypatch.setenv("KSEF_KEY_PASSWORD", "secret password")
    code, out, err = run("-p", "emu", "--json", "auth", "login", "--cert", "cert.pem", "--key", "key.pem")
    assert code == 0, err
    return json.loads(out)


def test_a_certificate_naming_no_nip_logs_in_by_its_fingerprint(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # Review: the emulator now refuses such a certificate with certificateSubject (400 / 21406, as
    # KSeF does) and its error says to use certificateFingerprint, which the CLI could not ask for.
    credentials = certificate_with((NameOID.COMMON_NAME, "Serwer ERP"))
    certificate = credentials.certificate
    (tmp_path / "c.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(
        credentials.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex().upper()
    grant = {
        "subjectIdentifier": {"type": "Fingerprint", "value": fingerprint}, "permissions": ["InvoiceRead"],
        "description": "an ERP server's certificate", "subjectDetails": {
            "subjectDetailsType": "PersonByFingerprintWithIdentifier",
            "personByFpWithId": {"firstName": "Jan", "lastName": "Kowalski",
                                 "identifier": {"type": "Nip", "value": "1111111111"}},
        },
    }  # fmt: skip
    owner = {"Authorization": f"Bearer {backend.mint_access_token(NIP)}"}
    assert httpx.post(ksef_server.base_url + "/permissions/persons/grants", json=grant, headers=owner).is_success
    login = ("-p", "emu", "auth", "login", "--cert", "c.pem", "--key", "k.pem")
    code, _, err = run(*login)
    assert code != 0 and "21406" in err
    code, _, err = run(*login, "--by-fingerprint")
    assert code == 0, err
    code, _, err = run("-p", "emu", "auth", "login", "--by-fingerprint")
    assert code == 2 and "--by-fingerprint is for a certificate login" in err


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")  # no terminal: getpass says it cannot hide input
def test_a_secret_no_one_can_type_is_a_usage_error_saying_what_to_do(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review: in a script (no terminal, input at its end) the password prompt ended as "interrupted",
    # exit 130, documented as Ctrl-C, with no word of KSEF_KEY_PASSWORD.
    creds = self_signed_certificate(nip=NIP, kind="seal")
    (tmp_path / "cert.pem").write_bytes(creds.certificate_pem())
    (tmp_path / "key.pem").write_bytes(creds.private_key_pem(b"secret password"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run("-p", "emu", "auth", "login", "--cert", "cert.pem", "--key", "key.pem")
    assert code == 2 and "key password: none given" in err and "set KSEF_KEY_PASSWORD" in err
    code, _, err = run("-p", "emu", "auth", "save-token")
    assert code == 2 and "KSeF token: none given" in err


def _invoices(directory: Path, prefix: str, count: int) -> list[str]:
    names = []
    for i in range(count):
        path = directory / f"{prefix}{i}.xml"
        path.write_bytes(sample_invoice(f"{prefix}/{i}"))
        names.append(path.name)
    return names


def test_without_a_login_commands_exit_3_with_one_line(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("-p", "emu", "sessions", "list")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "ksef -p emu auth login" in err


def test_login_keeps_tokens_out_of_sight(run, logged_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stored = tmp_path / "config" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    tokens = json.loads(json.loads(stored.read_text())["emu/login"])
    assert "access_token" not in logged_in and tokens["access_token"] not in json.dumps(logged_in)
    code, out, _ = run("-p", "emu", "auth", "status")
    assert code == 0 and "login saved" in out and tokens["access_token"] not in out
    code, out, _ = run("-p", "emu", "auth", "status", "--check")
    assert code == 0 and "logged in" in out and tokens["access_token"] not in out


def test_send_then_follow_the_session(run, logged_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = _invoices(tmp_path, "CLI", 3)
    code, out, err = run("-p", "emu", "--json", "send", *files)
    assert code == 0, err
    sent = json.loads(out)
    numbers = [i["ksef_number"] for i in sent["invoices"]]
    assert len(set(numbers)) == 3 and all(numbers)
    ref = sent["reference_number"]

    code, out, _ = run("-p", "emu", "--json", "sessions", "list")
    assert code == 0 and [s["reference_number"] for s in json.loads(out)] == [ref]
    code, out, _ = run("-p", "emu", "--json", "sessions", "invoices", ref)
    assert sorted(i["ksef_number"] for i in json.loads(out)) == sorted(numbers)
    code, out, _ = run("-p", "emu", "sessions", "status", ref)
    assert code == 0 and "200" in out and "3 ok" in out

    code, out, _ = run("-p", "emu", "--json", "upo", "get", ref, "--out", "upo")
    summary = json.loads(out)
    assert code == 0 and sorted(d["ksef_number"] for d in summary["documents"]) == sorted(numbers)
    assert all(Path(f).is_file() for f in summary["files"])


@pytest.mark.parametrize("absent", ["rich", "keyring"])
def test_without_the_cli_extra_nothing_is_sent(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch, absent: str
) -> None:
    # `pip install ksef-sdk[mock]` brings click (through uvicorn) but not rich: `ksef send` sent the
    # invoices, then failed printing them ("No module named 'rich'", exit 1: "KSeF answered with an
    # error"), so a script would send again. The whole extra is looked for before any command runs.
    files = _invoices(tmp_path, "NOEXTRA", 1)
    before = len(backend.sessions.state.sessions)
    monkeypatch.setitem(sys.modules, absent, None)  # what find_spec reports for a package not installed
    code, out, err = run("-p", "emu", "send", *files)
    assert (code, out) == (2, "")
    assert "needs the cli extra: pip install 'ksef-sdk[cli]'" in err and absent in err
    assert len(backend.sessions.state.sessions) == before


@pytest.mark.parametrize("absent", ["uvicorn", "starlette"])
def test_the_emulator_without_the_mock_extra_says_what_to_install(absent: str) -> None:
    # `pip install ksef-sdk` installs `ksef-mock` and the ksef_mock fixture: without the mock extra
    # they ended in "No module named 'uvicorn'" (and `ksef mock` with exit 1, "KSeF answered").
    code = f"import sys; sys.modules[{absent!r}] = None; from ksef_client.cli import main; sys.exit(main(['mock']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert "the KSeF emulator needs the mock extra: pip install 'ksef-sdk[mock]'" in done.stderr
    assert absent in done.stderr


def test_a_rejected_invoice_exits_5_and_a_bad_file_sends_nothing(
    run,
    logged_in,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    backend: KSeFBackend,
) -> None:
    files = _invoices(tmp_path, "DUP", 1)
    code, out, _ = run("-p", "emu", "--json", "send", *files)
    original, session = json.loads(out)["invoices"][0]["ksef_number"], json.loads(out)["reference_number"]
    code, out, err = run("-p", "emu", "send", *files)  # the same invoice again: KSeF's duplicate (440)
    # Review s12 (1c): counted as rejected (exit 5), its KSeF number column empty; now, the same file
    # (its SHA-256 that of the original): in KSeF, exit 6 (review s12-final, 1: only the same file).
    assert code == 6 and "440" in out and "1 of 1 invoice(s) already in KSeF" in err
    assert f"already in KSeF as {original}" in out and "0 accepted, 1 already in KSeF, 0 rejected" in out
    code, out, err = run("-p", "emu", "--json", "send", *files)
    assert code == 6 and json.loads(out)["invoices"][0] == {
        "file": files[0], "ksef_number": original, "code": 440, "outcome": "already_in_ksef",
        "status": json.loads(out)["invoices"][0]["status"], "duplicate_of": original, "duplicate_session": session,
    }  # fmt: skip

    sessions_before = len(backend.sessions.state.sessions)
    (tmp_path / "bad.xml").write_bytes(b"<Faktura/>")
    code, _, err = run("-p", "emu", "send", files[0], "bad.xml")
    assert code == 2 and err.startswith("error: bad.xml: not a valid FA(3) invoice")
    assert len(backend.sessions.state.sessions) == sessions_before  # checked before any session was opened
    code, _, err = run("-p", "emu", "send", "--batch", files[0], "bad.xml")
    assert code == 2 and err.startswith("error: bad.xml: not a valid FA(3) invoice")
    assert len(backend.sessions.state.sessions) == sessions_before  # a batch too: checked while zipping, before opening


def test_a_batch_of_a_pef_form_is_a_usage_error_before_anything_is_sent(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # The spec lists FA (2), FA (3) and FA_RR (1) for batch sessions; KSeF refuses PEF (3) and
    # PEF_KOR (3) there with 21405. Was: the files were zipped and the session's opening sent.
    files = _invoices(tmp_path, "PEF", 1)
    code, _, err = run("-p", "emu", "send", "--batch", "--form", "PEF(3)", *files)
    assert code == 2 and err.startswith("error: form: PEF (3) cannot be sent in a batch session")
    assert "ksef send without --batch" in err
    assert backend.sessions.state.sessions == {}


def test_a_lost_answer_is_resent_and_counted_once(
    run,
    logged_in,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    backend: KSeFBackend,
) -> None:
    files = _invoices(tmp_path, "LOST", 3)
    backend.faults.add(DROP_AFTER, operation="online_session.send_invoice")  # stored, answer lost
    code, out, err = run("-p", "emu", "--json", "send", *files)
    assert code == 0, err
    numbers = [i["ksef_number"] for i in json.loads(out)["invoices"]]
    assert len(set(numbers)) == 3 and all(numbers)


def test_a_send_that_fails_names_the_session(
    run,
    logged_in,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    backend: KSeFBackend,
) -> None:
    files = _invoices(tmp_path, "HALF", 3)
    backend.faults.add(400, operation="online_session.send_invoice", times=1)
    code, _, err = run("-p", "emu", "send", *files)
    assert code == 1 and err.startswith(f"error: {files[0]}: HTTP 400")
    assert "0 invoice(s) before it were sent in session 2" in err


def test_batch_send_and_download(run, logged_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = _invoices(tmp_path, "B", 12)
    code, out, err = run("-p", "emu", "--json", "send", "--batch", *files)
    assert code == 0, err
    assert {i["file"] for i in json.loads(out)["invoices"] if i["ksef_number"]} == set(files)
    # Within KSeF's 100 days: a range from 2020 is exported in 26 windows, more exports than the
    # 20 an hour KSeF allows, so the client paces them over more than an hour.
    since = (dt.date.today() - dt.timedelta(days=7)).isoformat()
    code, out, err = run(
        "-p", "emu", "--json", "invoices", "download", "inbox", "--from", since, "--subject", "Subject1"
    )
    assert code == 0, err
    assert len(json.loads(out)["files"]) == 12 and len(list((tmp_path / "inbox").glob("*.xml"))) == 12


def _five_sent_in_packages_of_three(run, tmp_path: Path, backend: KSeFBackend, prefix: str) -> str:  # type: ignore[no-untyped-def]
    """Five invoices sent in one batch session, export packages cut at 3; a ``--from`` before them."""
    files = _invoices(tmp_path, prefix, 5)
    assert run("-p", "emu", "send", "--batch", *files)[0] == 0
    backend.metadata_limit = 3
    return (dt.date.today() - dt.timedelta(days=7)).isoformat()


def test_a_truncated_download_says_where_to_go_on_from(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # "run again from the last date" named no date: the package's lastPermanentStorageDate is it
    # (InvoicePackage: given "wyłącznie wtedy, gdy paczka została ucięta").
    since = _five_sent_in_packages_of_three(run, tmp_path, backend, "TR")
    code, out, err = run(
        "-p", "emu", "--json", "invoices", "download", "inbox", "--from", since, "--subject", "Subject1"
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["is_truncated"] and len(answer["files"]) == 3
    go_on_from = dt.datetime.fromisoformat(answer["go_on_from"])
    code, out, err = run(
        "-p", "emu", "--json", "invoices", "download", "inbox", "--from", go_on_from.isoformat(),
        "--subject", "Subject1",
    )  # fmt: skip
    assert code == 0, err
    assert len(list((tmp_path / "inbox").glob("*.xml"))) == 5  # the rest, from where the first stopped
    code, out, _ = run("-p", "emu", "invoices", "download", "inbox2", "--from", since, "--subject", "Subject1")
    assert f"run again with --from {go_on_from.isoformat()}" in out


def test_a_truncated_download_that_cannot_go_further_by_its_date_says_so(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # Was: "run again with --from X" where X was the --from given: every invoice of a batch session
    # has the session's one invoicing date, so going on from it fetched the same 3 again and again.
    since = _five_sent_in_packages_of_three(run, tmp_path, backend, "ST")
    download = ("-p", "emu", "--json", "invoices", "download", "inbox", "--subject", "Subject1", "--from", since)
    code, out, err = run(*download, "--date-type", "Invoicing")  # the first package tells already (review)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["is_truncated"] and answer["goes_no_further"] and answer["go_on_from"] is None
    code, out, _ = run(*download[:2], *download[3:], "--date-type", "Invoicing")
    assert "more invoices dated" in out and "than one export carries" in out
    assert "--date-type PermanentStorage" in out
    code, out, err = run(*download)  # PermanentStorage dates differ: it goes on
    assert code == 0, err
    assert json.loads(out)["go_on_from"] is not None and not json.loads(out)["goes_no_further"]


def test_a_batch_refused_while_it_is_built_is_a_usage_error(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # docs/cli.md: "2: usage error (bad option, argument or input file): nothing was sent". Two
    # files of one name in a package exited 1, as if KSeF had refused something.
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "inv.xml").write_bytes(sample_invoice(f"{folder.upper()}/1"))
    code, _, err = run("-p", "emu", "send", "--batch", "a/inv.xml", "b/inv.xml")
    assert code == 2 and "two invoices named 'inv.xml'" in err and "nothing was sent" in err
    assert backend.sessions.state.sessions == {}


def test_a_missing_ksef_token_names_the_profile_to_save_it_under(run) -> None:  # type: ignore[no-untyped-def]
    assert run("profile", "set", "emu2", "--base-url", "http://127.0.0.1:9/v2", "--nip", NIP)[0] == 0
    code, _, err = run("-p", "emu2", "auth", "login")
    assert code == 3 and "`ksef -p emu2 auth save-token`" in err


def test_ksef_errors_come_with_their_code(run, logged_in) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("-p", "emu", "sessions", "status", "20261125-SO-0000000000-0000000000-00")
    assert code == 1 and out == ""
    assert err.startswith("error: HTTP 4") and "[" in err and err.count("\n") == 1
    code, _, err = run("-p", "emu", "sessions", "status", "not-a-reference")
    assert code == 2 and "REFERENCE" in err  # refused before sending


def test_logout_revokes_and_forgets(run, logged_in) -> None:  # type: ignore[no-untyped-def]
    assert run("-p", "emu", "auth", "logout")[0] == 0
    assert run("-p", "emu", "sessions", "list")[0] == 3


@pytest.mark.parametrize("how", ["revoked elsewhere", "refresh token expired"])
def test_logout_of_a_login_ksef_no_longer_accepts_forgets_it(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # The session was revoked at KSeF (another device, the web app) or the refresh token ran out:
    # the revoke meets 21301 or 401, which means the login is already gone there.
    if how == "revoked elsewhere":
        for operation in backend.auth.state.operations.values():
            operation.revoked = True
    later = backend.clock() + (dt.timedelta(minutes=20) if how == "revoked elsewhere" else dt.timedelta(days=8))
    monkeypatch.setattr(backend, "clock", lambda: later)  # the saved access token has expired
    code, out, err = run("-p", "emu", "auth", "logout")
    assert code == 0, err
    assert "already" in out
    assert "emu/login" not in json.loads((tmp_path / "config" / "credentials.json").read_text())
    assert run("-p", "emu", "sessions", "list")[0] == 3  # not logged in any more


def test_logout_forgets_the_login_even_when_ksef_cannot_be_told(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    backend.faults.add(400, operation="auth_sessions.revoke_current_auth_session")
    code, _, err = run("-p", "emu", "auth", "logout")
    assert code == 1 and "HTTP 400" in err and "removed" in err
    assert "emu/login" not in json.loads((tmp_path / "config" / "credentials.json").read_text())


def test_unreachable_ksef_exits_4(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert run("profile", "set", "dead", "--base-url", "http://127.0.0.1:9/v2")[0] == 0
    monkeypatch.setenv("KSEF_ACCESS_TOKEN", "unused")
    code, _, err = run("-p", "dead", "sessions", "list")
    assert code == 4 and err.startswith("error: APIConnectionError")


def test_the_installed_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ksef"
    env = dict(os.environ, KSEF_CONFIG_DIR=str(tmp_path))
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and "Exit codes" in result.stdout
    result = subprocess.run([str(script), "mock", "--help"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and "--port" in result.stdout


class MemoryKeyring:
    """An in-memory keyring backend: the keyring path of the CLI without an OS keyring."""

    priority = 10

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.secrets[(service, username)]


def test_logins_go_to_the_os_keyring_when_there_is_one(
    run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = type("Memory", (MemoryKeyring, KeyringBackend), {})()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    monkeypatch.delenv("KSEF_CREDENTIAL_STORE")
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("not-a-real-token\n"))
        code, _, err = run("-p", "emu", "auth", "login", "--token-stdin")
        assert code == 3 and "450" in err, err  # KSeF refuses the unknown token: the login exit code
        creds = self_signed_certificate(nip=NIP, kind="seal")
        (tmp_path / "c.pem").write_bytes(creds.certificate_pem())
        (tmp_path / "k.pem").write_bytes(creds.private_key_pem())
        code, out, err = run("-p", "emu", "auth", "login", "--cert", "c.pem", "--key", "k.pem")
        assert code == 0, err
        assert "OS keyring" in out and ("ksef-sdk", "emu/login") in backend.secrets
        assert not (tmp_path / "config" / "credentials.json").exists()
        assert run("-p", "emu", "sessions", "list")[0] == 0
    finally:
        keyring.set_keyring(previous)


@pytest.mark.parametrize("args", [["--help"], ["sessions", "--help"], ["no-such-command"]])
def test_help_and_usage_errors_load_neither_the_sdk_nor_httpx(args: list[str]) -> None:
    # Start-up (issue 18): `ksef --help` loads click and the command tree, nothing that talks to KSeF
    # (`_lazy` is the package's own first-use loader, a few lines of the standard library).
    code = (
        "import sys; from ksef_client.cli import main; code = main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'lxml', 'attrs') "
        "or m.startswith('ksef_client.') and m.split('.')[1] not in ('cli', 'environments', 'identifiers', '_lazy')))"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_doctor_timeout_default_is_the_doctors() -> None:
    from ksef_client import doctor
    from ksef_client.cli.commands import DOCTOR_TIMEOUT

    assert DOCTOR_TIMEOUT == doctor.DEFAULT_TIMEOUT


def test_login_with_allowed_ips_binds_the_tokens_to_them(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: KSeFBackend
) -> None:
    creds = self_signed_certificate(nip=NIP, kind="seal")
    (tmp_path / "cert.pem").write_bytes(creds.certificate_pem())
    (tmp_path / "key.pem").write_bytes(creds.private_key_pem())
    login = ("-p", "emu", "--json", "auth", "login", "--cert", "cert.pem", "--key", "key.pem")
    code, out, err = run(*login, "--allow-ip", "client", "--allow-ip", "10.0.0.0/8", "--allow-ip", "192.0.2.1")
    assert code == 0, err
    policy = backend.auth.state.operations[json.loads(out)["reference_number"]].allowed_ips
    assert policy is not None and policy.addresses == ("192.0.2.1", "127.0.0.1") and policy.masks == ("10.0.0.0/8",)
    assert run("-p", "emu", "sessions", "list")[0] == 0  # from 127.0.0.1, which KSeF saw at the login

    assert json.loads(out)["allowed_ips"] == ["client", "10.0.0.0/8", "192.0.2.1"]

    code, out, _ = run(*(arg for arg in login if arg != "--json"), "--allow-ip", "192.0.2.1-192.0.2.9")
    assert code == 0 and "KSeF takes them only from 192.0.2.1-192.0.2.9" in out
    code, _, err = run("-p", "emu", "sessions", "list")
    assert code == 3 and "HTTP 403" in err and "Żądanie pochodzi z adresu IP innego" in err
    # Review s12 (3): KSeF's text only, exit 1; the CLI now says what the 403 means and what to do.
    assert "KSeF takes the saved login of profile 'emu' only from the addresses given to" in err
    assert "(KSeF saw this request come from 127.0.0.1)" in err and "`ksef -p emu auth login`" in err

    logins = len(backend.auth.state.operations)
    code, _, err = run(*login, "--allow-ip", "10.0.0.1/33")
    assert code == 2 and err.startswith("error: --allow-ip: masks: '10.0.0.1/33': the prefix must be")
    code, _, err = run(*login, "--allow-ip", "2001:db8::1")
    assert code == 2 and "IPv4" in err
    assert len(backend.auth.state.operations) == logins  # refused before any request


def test_send_checks_the_parties_nips_for_production_only(tmp_path: Path) -> None:
    # As the SDK's sessions: "Walidacja numeru NIP [...] Dotyczy tylko środowiska produkcyjnego"
    # (faktury/weryfikacja-faktury.md). The files are checked before the session is opened.
    good = sample_invoice("NIP/CLI/1", buyer_nip="1111111111")
    path = tmp_path / "bad-nip.xml"
    path.write_bytes(good.replace(b"<NIP>1111111111</NIP>", b"<NIP>1111111112</NIP>"))
    assert [p for p, _ in checked_invoices((path,), "FA(3)")] == [path]  # TEST, DEMO, the emulator take it
    with pytest.raises(CLIError, match=r"bad-nip.xml: Podmiot2/DaneIdentyfikacyjne/NIP '1111111112' has a wrong"):
        list(checked_invoices((path,), "FA(3)", production=True))
