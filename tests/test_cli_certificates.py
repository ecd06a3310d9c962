"""``ksef cert``: KSeF certificates from the command line, against the emulator.

certyfikaty-KSeF.md §2: "Pobranie danych certyfikacyjnych jest możliwe wyłącznie po uwierzytelnieniu z
wykorzystaniem podpisu (XAdES). Uwierzytelnienie przy użyciu tokena systemowego KSeF nie pozwala na
złożenie wniosku o certyfikat"; §5: "Proces wystawiania certyfikatu ma charakter asynchroniczny".
"""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ksef_client import KSeF
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from ksef_client.xades import SigningCredentials
from tests import test_cli
from tests.conftest import NIP

# The CLI fixtures of tests/test_cli.py: ``run`` (profile 'emu' at the emulator) and ``logged_in``
# (logged in with a self-signed seal through --cert/--key, KSEF_KEY_PASSWORD set).
run, logged_in = test_cli.run, test_cli.logged_in

PASSWORD = "secret password"  # logged_in sets KSEF_KEY_PASSWORD (the seal key's) to it


@pytest.fixture(autouse=True)
def new_key_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new .p12's password (``cert obtain``, ``cert complete``): the same text as the seal's
    here, so the new .p12 also logs in with KSEF_KEY_PASSWORD; a test of keeping the two apart
    changes it."""
    monkeypatch.setenv("KSEF_NEW_KEY_PASSWORD", PASSWORD)


def test_obtain_writes_a_p12_that_logs_in(run, logged_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("-p", "emu", "--json", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 0, err
    issued = json.loads(out)
    assert set(issued) == {"serial_number", "name", "kind", "valid_from", "valid_to", "file"}
    assert issued["name"] == "Serwer ERP" and issued["kind"] == "Authentication" and len(issued["serial_number"]) == 16
    p12 = tmp_path / "erp.p12"
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600 and not (tmp_path / "erp.p12.pending").exists()
    creds = SigningCredentials.from_pkcs12(p12, PASSWORD)
    assert f"{creds.certificate.serial_number:016X}" == issued["serial_number"]
    # The .p12 is a login of its own: certyfikaty-KSeF.md, Authentication "służy do uwierzytelnienia".
    code, _, err = run("-p", "emu", "auth", "login", "--pkcs12", "erp.p12")
    assert code == 0, err
    code, out, _ = run("-p", "emu", "--json", "cert", "list", "--kind", "Authentication")
    assert code == 0 and [c["certificate_serial_number"] for c in json.loads(out)] == [issued["serial_number"]]


def test_obtain_prints_the_serial_and_an_rsa_offline_one(run, logged_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("-p", "emu", "cert", "obtain", "Faktury offline", "--kind", "Offline",
                         "--key-type", "RSA", "--out", "offline.p12")  # fmt: skip
    assert code == 0, err
    creds = SigningCredentials.from_pkcs12(tmp_path / "offline.p12", PASSWORD)
    serial = f"{creds.certificate.serial_number:016X}"
    assert serial in out and "Offline" in out
    assert creds.certificate.public_key().key_size == 2048  # type: ignore[union-attr]


def test_a_request_left_in_progress_is_completed_later(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # The certificate does not come within --timeout: the key, which exists nowhere else, is kept
    # (encrypted) with the request's reference number, and `cert complete` finishes it.
    backend.transitions.enrollment_reads = 2  # issued at its second status read
    code, out, err = run("-p", "emu", "cert", "obtain", "Wniosek powolny", "--out", "slow.p12", "--timeout", "0.1")
    assert code == 4 and out == "", err
    pending = tmp_path / "slow.p12.pending"
    assert "ksef -p emu cert complete slow.p12" in err and "in slow.p12.pending" in err
    assert not (tmp_path / "slow.p12").exists()
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    saved = json.loads(pending.read_text())
    assert saved["reference_number"] in err and saved["name"] == "Wniosek powolny"
    assert b"PRIVATE KEY" not in pending.read_bytes()  # a PKCS#12 of the key, encrypted (see _pbkdf2_rounds)
    # Another obtain for the same file would lose that key: refused, --force or not.
    code, _, err = run("-p", "emu", "cert", "obtain", "Inny wniosek", "--out", "slow.p12", "--force")
    assert code == 2 and "cert complete slow.p12" in err
    code, out, err = run("-p", "emu", "--json", "cert", "complete", "slow.p12")
    assert code == 0, err
    assert json.loads(out)["name"] == "Wniosek powolny" and not pending.exists()
    creds = SigningCredentials.from_pkcs12(tmp_path / "slow.p12", PASSWORD)
    assert f"{creds.certificate.serial_number:016X}" == json.loads(out)["serial_number"]
    # A rerun (a script that completes until it succeeds) is done, not a usage error.
    code, out, err = run("-p", "emu", "--json", "cert", "complete", "slow.p12")
    assert code == 0 and json.loads(out) == {"file": "slow.p12", "pending": False}, err
    code, _, err = run("-p", "emu", "cert", "complete", "never.p12")  # nothing pending, no file
    assert code == 2 and "no certificate request pending" in err


def test_a_lost_answer_to_the_request_keeps_the_key_saved_before_it_was_sent(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # KSeF took the request, its answer was lost: no reference number, but the key was on disk
    # (encrypted) before the request went out; complete finds the certificate by that key.
    backend.faults.add(DROP_AFTER, operation="certificates.create_enrollment")
    code, _, err = run("-p", "emu", "cert", "obtain", "Odpowiedz utracona", "--out", "lost.p12")
    assert code == 4 and "its answer was lost" in err
    assert json.loads((tmp_path / "lost.p12.pending").read_text())["reference_number"] is None
    code, _, err = run("-p", "emu", "cert", "complete", "lost.p12")
    assert code == 0, err
    assert SigningCredentials.from_pkcs12(tmp_path / "lost.p12", PASSWORD)


def test_an_interrupted_obtain_keeps_the_request_with_its_reference(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C while waiting for the certificate: no CertificatePendingError carries the request, yet
    # the key was saved before it was sent and the reference number (certificates.unfinished) is
    # added; exit 130 as for any interruption.
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread() and seconds == 5.0:  # the status poll
            raise KeyboardInterrupt
        real_sleep(seconds)

    backend.transitions.enrollment_reads = 2  # in progress at the first read, issued at the second
    monkeypatch.setattr("time.sleep", sleep)
    code, _, err = run("-p", "emu", "cert", "obtain", "Przerwany", "--out", "cut.p12")
    assert code == 130 and "ksef -p emu cert complete cut.p12" in err and err.endswith("interrupted\n")
    reference = json.loads((tmp_path / "cut.p12.pending").read_text())["reference_number"]
    assert reference is not None
    monkeypatch.setattr("time.sleep", real_sleep)
    code, out, err = run("-p", "emu", "cert", "complete", "cut.p12")
    assert code == 0 and "Przerwany" in out, err


def test_complete_with_a_wrong_password_keeps_the_request(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.transitions.enrollment_reads = 2
    assert run("-p", "emu", "cert", "obtain", "Wniosek powolny", "--out", "slow.p12", "--timeout", "0.1")[0] == 4
    monkeypatch.setenv("KSEF_NEW_KEY_PASSWORD", "not the password")
    code, _, err = run("-p", "emu", "cert", "complete", "slow.p12")
    assert code == 2 and "wrong password" in err and (tmp_path / "slow.p12.pending").exists()


def test_an_existing_file_is_replaced_only_with_force(run, logged_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "erp.p12").write_bytes(b"someone's certificate")
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 2 and "exists" in err and "--force" in err
    assert (tmp_path / "erp.p12").read_bytes() == b"someone's certificate"
    assert not (tmp_path / "erp.p12.pending").exists()
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12", "--force")
    assert code == 0, err
    assert SigningCredentials.from_pkcs12(tmp_path / "erp.p12", PASSWORD)


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")  # no terminal: getpass says it cannot hide input
def test_the_password_is_never_an_argument_and_never_empty(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12", "--password", "x")
    assert code == 2 and "No such option" in err
    monkeypatch.setenv("KSEF_NEW_KEY_PASSWORD", "")
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 2 and "empty password" in err and not list(tmp_path.glob("erp.p12*"))
    # Asked for (twice) when not in the environment; the .p12 opens with what was typed.
    monkeypatch.delenv("KSEF_NEW_KEY_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO("hasło serwera\nhasło serwera\n"))
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 0, err
    assert SigningCredentials.from_pkcs12(tmp_path / "erp.p12", "hasło serwera")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "other.p12")
    assert code == 2 and "KSEF_NEW_KEY_PASSWORD" in err


def test_bad_input_is_refused_before_anything_is_sent(run, logged_in, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("-p", "emu", "cert", "obtain", "ab", "--out", "erp.p12")
    assert code == 2 and "NAME 'ab'" in err and not list(tmp_path.glob("erp.p12*"))
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "no/such/folder/erp.p12")
    assert code == 2 and "no folder" in err
    code, _, err = run("-p", "emu", "cert", "revoke", "not-a-serial", "--yes")
    assert code == 2 and "16 hex digits" in err


def test_a_ksef_token_login_is_told_to_log_in_with_a_certificate(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run("-p", "emu", "--json", "cert", "obtain", "Do odwolania", "--out", "revoke.p12")
    serial = json.loads(out)["serial_number"]
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as owner:
        created = owner.tokens.create(["InvoiceRead", "CredentialsManage"], "a token login")
        owner.tokens.wait_active(created.reference_number, interval=0.01)
    monkeypatch.setenv("KSEF_TOKEN", created.token)
    assert run("-p", "emu", "auth", "login")[0] == 0
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 3 and "25001" in err and "auth login --cert" in err and "--pkcs12" in err
    assert not list(tmp_path.glob("erp.p12*"))  # nothing sent, no key kept
    code, _, err = run("-p", "emu", "cert", "revoke", serial, "--yes")
    assert code == 3 and "403" in err and "auth login --cert" in err


def test_list_revoke_and_limits(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run("-p", "emu", "--json", "cert", "limits")
    before = json.loads(out)
    assert code == 0 and before["can_request"] is True
    remaining = before["enrollment"]["remaining"]
    code, out, _ = run("-p", "emu", "--json", "cert", "obtain", "Do odwolania", "--out", "revoke.p12")
    serial = json.loads(out)["serial_number"]
    code, out, _ = run("-p", "emu", "cert", "limits")
    assert code == 0 and "requests" in out and str(remaining - 1) in out
    code, out, _ = run("-p", "emu", "cert", "list")
    assert code == 0 and serial in out and "Do odwolania" in out and "Active" in out
    # Revoking asks first; with no terminal to ask on, --yes is the way.
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, _, err = run("-p", "emu", "cert", "revoke", serial)
    assert code == 2 and "not revoked" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run("-p", "emu", "cert", "revoke", serial)
    assert code == 2 and "--yes" in err
    code, out, err = run("-p", "emu", "--json", "cert", "revoke", serial.lower(), "--reason", "Superseded", "--yes")
    assert code == 0 and json.loads(out) == {"serial_number": serial, "revoked": True, "reason": "Superseded"}, err
    code, out, _ = run("-p", "emu", "--json", "cert", "list", "--status", "Revoked")
    assert code == 0 and [c["certificate_serial_number"] for c in json.loads(out)] == [serial]
    code, out, _ = run("-p", "emu", "--json", "cert", "list", "--status", "Active")
    assert code == 0 and json.loads(out) == []
    # A revoked certificate no longer logs in (460 "Certyfikat odwołany").
    code, _, err = run("-p", "emu", "auth", "login", "--pkcs12", "revoke.p12")
    assert code == 3, err


def test_without_a_login_nothing_is_made(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KSEF_NEW_KEY_PASSWORD", PASSWORD)
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 3 and "ksef -p emu auth login" in err and not list(tmp_path.glob("erp.p12*"))


@pytest.mark.parametrize("args", [["cert", "--help"], ["cert", "obtain", "--help"], ["cert", "obtain", "Serwer ERP"]])
def test_help_and_usage_errors_of_cert_load_neither_the_sdk_nor_httpx(args: list[str]) -> None:
    # As tests/test_cli.py checks for the other commands (issue 18): the cert group's helpers
    # (ksef_client.cli.pending, the key generator) load with the first command that runs.
    # (cryptography is not looked for: the keyring loads it, for every command.)
    code = (
        "import sys; from ksef_client.cli import main; code = main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'lxml', 'attrs') "
        "or m == 'ksef_client.cli.pending' "
        "or m.startswith('ksef_client.') and m.split('.')[1] not in ('cli', 'environments', 'identifiers', '_lazy')))"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_two_obtains_of_one_file_never_replace_each_others_request(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 1): two `obtain --out erp.p12` at once both passed the "no erp.p12.pending"
    # check, and the second's save replaced the first's pending key, which exists nowhere else. The
    # other run's claim is made here at the worst moment: after this run's check, before its own.
    from ksef_client.certificates import generate_private_key

    others = b"another run's request"

    def key_after_another_claim(key_type: str):  # type: ignore[no-untyped-def]
        (tmp_path / "erp.p12.pending").write_bytes(others)
        return generate_private_key(key_type)

    monkeypatch.setattr("ksef_client.cli.commands.generate_private_key", key_after_another_claim)
    code, out, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 2 and out == "" and "another `cert obtain --out erp.p12`" in err and "nothing sent" in err
    assert (tmp_path / "erp.p12.pending").read_bytes() == others and not (tmp_path / "erp.p12").exists()
    assert run("-p", "emu", "--json", "cert", "list")[1].strip() == "[]"  # no request reached KSeF


def test_a_p12_written_by_another_run_while_waiting_is_not_replaced(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 1): the .p12 was written with a rename, so a file that appeared during the
    # wait (another run's certificate) was silently replaced without --force.
    real_sleep = time.sleep
    others = b"another run's certificate"

    def sleep(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread() and seconds == 5.0:  # the status poll
            (tmp_path / "erp.p12").write_bytes(others)
            return
        real_sleep(seconds)

    backend.transitions.enrollment_reads = 2
    monkeypatch.setattr("time.sleep", sleep)
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 2 and "appeared while the certificate was issued" in err and "not replaced" in err, err
    assert (tmp_path / "erp.p12").read_bytes() == others and (tmp_path / "erp.p12.pending").exists()
    (tmp_path / "erp.p12").rename(tmp_path / "other.p12")
    code, out, err = run("-p", "emu", "cert", "complete", "erp.p12")
    assert code == 0 and "Serwer ERP" in out, err
    assert SigningCredentials.from_pkcs12(tmp_path / "erp.p12", PASSWORD)


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")  # no terminal: getpass says it cannot hide input
def test_the_documented_flow_logs_in_with_the_new_p12_asking_for_its_password(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 2): docs/cli.md's `auth login --pkcs12 erp.p12` after `cert obtain` failed
    # with "Invalid password or PKCS12 data" unless KSEF_KEY_PASSWORD was set: --pkcs12 never asked,
    # although docs/cli.md says a key password comes "from KSEF_KEY_PASSWORD or a prompt without echo".
    assert run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")[0] == 0
    monkeypatch.delenv("KSEF_KEY_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, _, err = run("-p", "emu", "auth", "login", "--pkcs12", "erp.p12")
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO("not the password\n"))
    code, _, err = run("-p", "emu", "auth", "login", "--pkcs12", "erp.p12")
    assert code == 2 and "--pkcs12 erp.p12" in err and "the password typed" in err
    monkeypatch.setenv("KSEF_KEY_PASSWORD", "not the password")
    code, _, err = run("-p", "emu", "auth", "login", "--pkcs12", "erp.p12")
    assert code == 2 and "KSEF_KEY_PASSWORD" in err


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")  # no terminal: getpass says it cannot hide input
def test_the_login_keys_password_never_becomes_the_new_p12s(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 3): with KSEF_KEY_PASSWORD exported for the seal's login, `cert obtain`
    # encrypted the ERP server's erp.p12 with the seal's password, with no prompt. It has a
    # variable of its own now, KSEF_NEW_KEY_PASSWORD, or asks.
    monkeypatch.delenv("KSEF_NEW_KEY_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO("hasło serwera\nhasło serwera\n"))
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 0, err
    assert SigningCredentials.from_pkcs12(tmp_path / "erp.p12", "hasło serwera")
    with pytest.raises(ValueError):
        SigningCredentials.from_pkcs12(tmp_path / "erp.p12", PASSWORD)


def test_the_reference_number_is_on_disk_while_obtain_waits(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 4): the reference number was written only when obtain raised, so a SIGTERM
    # or SIGHUP (no exception) during the wait left a pending file without it, and a refusal could
    # never be learned. What the file holds at the first status poll is what a kill there leaves.
    real_sleep = time.sleep
    seen: list[str | None] = []

    def sleep(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread() and seconds == 5.0:  # the status poll
            seen.append(json.loads((tmp_path / "erp.p12.pending").read_text())["reference_number"])
            return
        real_sleep(seconds)

    backend.transitions.enrollment_reads = 2
    monkeypatch.setattr("time.sleep", sleep)
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 0, err
    assert seen and seen[0] is not None and "-CE-" in seen[0]  # a certificate request's reference number


def test_complete_after_a_refused_login_says_to_log_in_again(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 5): complete wrapped every failure as "KSeF unreachable" (exit 4) and hinted
    # `cert complete` again, which meets the same 401 forever. docs/cli.md's exit codes: 3 "not
    # logged in, or the login failed or was refused".
    backend.transitions.enrollment_reads = 2
    assert run("-p", "emu", "cert", "obtain", "Wniosek powolny", "--out", "slow.p12", "--timeout", "0.1")[0] == 4
    monkeypatch.setenv("KSEF_ACCESS_TOKEN", "not-a-valid-token")
    code, _, err = run("-p", "emu", "cert", "complete", "slow.p12")
    assert code == 3 and "HTTP 401" in err and "log in again (`ksef -p emu auth login" in err, err
    assert (tmp_path / "slow.p12.pending").exists()
    monkeypatch.delenv("KSEF_ACCESS_TOKEN")
    code, _, err = run("-p", "emu", "cert", "complete", "slow.p12")
    assert code == 0, err


def test_an_obtain_interrupted_before_sending_keeps_nothing(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 6): Ctrl-C before the request went out kept the pending file and said to run
    # `cert complete`, which then polled for a certificate that can never come, and blocked
    # `obtain --out` for that file. Interrupted here between the enrollment data and the request.
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ksef_client.resources.certificates.build_csr", interrupted)
    code, _, err = run("-p", "emu", "cert", "obtain", "Wniosek B", "--out", "b.p12")
    assert code == 130 and "nothing reached KSeF" in err and "cert complete" not in err, err
    assert not list(tmp_path.glob("b.p12*"))


def test_complete_after_a_crash_between_the_p12_and_removing_pending_finishes(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review (cert CLI, 7): obtain said "run cert complete", complete said "d.p12 exists: choose
    # another file", a circle. complete now sees d.p12 holds the request's certificate and key.
    from ksef_client.cli import pending as pending_module

    forget = pending_module.forget

    def crash(path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pending_module, "forget", crash)
    code, _, _ = run("-p", "emu", "--json", "cert", "obtain", "Wniosek D", "--out", "d.p12")
    assert code == 130 and (tmp_path / "d.p12").exists() and (tmp_path / "d.p12.pending").exists()
    monkeypatch.setattr(pending_module, "forget", forget)
    serial = f"{SigningCredentials.from_pkcs12(tmp_path / 'd.p12', PASSWORD).certificate.serial_number:016X}"
    code, out, err = run("-p", "emu", "cert", "complete", "d.p12")
    assert code == 0 and serial in out and "already" in out, err
    assert not (tmp_path / "d.p12.pending").exists()
    # Another file there, not this request's: move it away or --force (not "choose another file").
    backend.transitions.enrollment_reads = 2
    assert run("-p", "emu", "cert", "obtain", "Wniosek E", "--out", "e.p12", "--timeout", "0.1")[0] == 4
    (tmp_path / "e.p12").write_bytes((tmp_path / "d.p12").read_bytes())
    code, _, err = run("-p", "emu", "cert", "complete", "e.p12")
    assert code == 2 and "does not hold this request's certificate" in err and "move e.p12 away" in err, err
    code, out, err = run("-p", "emu", "cert", "complete", "e.p12", "--force")
    assert code == 0 and "Wniosek E" in out, err


PBKDF2_OID = bytes.fromhex("06092A864886F70D01050C")  # 1.2.840.113549.1.5.12, id-PBKDF2 (RFC 8018)


def _pbkdf2_rounds(der: bytes) -> list[int]:
    """The iteration counts of every PBKDF2 in a PKCS#12 (RFC 8018 PBKDF2-params: SEQUENCE {
    salt OCTET STRING, iterationCount INTEGER, ...}, right after the OID; short DER lengths)."""
    rounds = []
    at = der.find(PBKDF2_OID)
    while at >= 0:
        params = at + len(PBKDF2_OID)
        assert der[params] == 0x30 and der[params + 2] == 0x04  # SEQUENCE { OCTET STRING salt ...
        integer = params + 4 + der[params + 3]
        assert der[integer] == 0x02
        rounds.append(int.from_bytes(der[integer + 2 : integer + 2 + der[integer + 1]], "big"))
        at = der.find(PBKDF2_OID, params)
    return rounds


def test_the_pending_key_is_encrypted_as_strongly_as_the_p12(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # Review (cert CLI, 8): the pending key was PKCS#8 PEM, PBKDF2 with 2048 rounds, the .p12 it
    # stands in for 20000. It is a PKCS#12 of the key alone now, encrypted as the .p12 is.
    from cryptography.hazmat.primitives.serialization import pkcs12

    backend.transitions.enrollment_reads = 2
    assert run("-p", "emu", "cert", "obtain", "Wniosek powolny", "--out", "slow.p12", "--timeout", "0.1")[0] == 4
    key = base64.b64decode(json.loads((tmp_path / "slow.p12.pending").read_text())["key"])
    assert pkcs12.load_key_and_certificates(key, PASSWORD.encode())[0] is not None
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(key, b"not the password")
    assert run("-p", "emu", "cert", "complete", "slow.p12")[0] == 0
    p12_rounds = _pbkdf2_rounds((tmp_path / "slow.p12").read_bytes())
    assert p12_rounds and min(_pbkdf2_rounds(key)) >= min(p12_rounds) >= 10_000


def _no_hard_links(calls: list[str]):  # type: ignore[no-untyped-def]
    """``os.link`` as a file system without hard links (FAT, exFAT, some SMB/FUSE mounts) answers
    it on Linux: EPERM, "does not support the creation of hard links"."""

    def link(source: str, target: str) -> None:
        calls.append(os.path.basename(target))
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), source, None, target)

    return link


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX link error; Windows gives winerror codes")
def test_obtain_on_a_file_system_without_hard_links_writes_the_p12(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim of erp.p12.pending (and the .p12) was put in place with a hard link only: where
    # the file system has none, obtain stopped before sending anything, with no way around it.
    calls: list[str] = []
    monkeypatch.setattr(os, "link", _no_hard_links(calls))
    code, out, err = run("-p", "emu", "--json", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 0, err
    assert calls == ["erp.p12.pending", "erp.p12"]  # both were tried as links first
    p12 = tmp_path / "erp.p12"
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600 and not (tmp_path / "erp.p12.pending").exists()
    creds = SigningCredentials.from_pkcs12(p12, PASSWORD)
    assert f"{creds.certificate.serial_number:016X}" == json.loads(out)["serial_number"]
    assert sorted(p.name for p in tmp_path.glob("*.p12*")) == ["erp.p12"]  # no temporary file left
    # The claim still never replaces another run's pending file, made here after this run's check
    # (as in test_two_obtains_of_one_file_never_replace_each_others_request).
    from ksef_client.certificates import generate_private_key

    def key_after_another_claim(key_type: str):  # type: ignore[no-untyped-def]
        (tmp_path / "other.p12.pending").write_bytes(b"another run's request")
        return generate_private_key(key_type)

    monkeypatch.setattr("ksef_client.cli.commands.generate_private_key", key_after_another_claim)
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "other.p12")
    assert code == 2 and "appeared meanwhile" in err and "nothing sent" in err, err
    assert (tmp_path / "other.p12.pending").read_bytes() == b"another run's request"
    assert not (tmp_path / "other.p12").exists()


@pytest.mark.parametrize(
    "left", [b"", b"\0" * 512, b'{\n  "format": "ksef-cli-pending-certificate/2",\n  "profile": "em']
)
def test_complete_of_a_pending_file_cut_short_says_nothing_was_sent(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, left: bytes
) -> None:
    # Without hard links the claim is written in place: a crash in the middle leaves it cut short
    # (empty, or part of its JSON). It is written before the request is sent, so nothing was.
    pending = tmp_path / "erp.p12.pending"
    pending.write_bytes(left)
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 2 and "cert complete erp.p12" in err, err
    code, _, err = run("-p", "emu", "cert", "complete", "erp.p12")
    assert code == 2 and "erp.p12.pending is not a whole pending file" in err, err
    assert "never reached KSeF" in err and "remove erp.p12.pending" in err and "cert obtain" in err, err
    assert pending.read_bytes() == left  # kept: removing it is the user's to do
    pending.unlink()
    code, _, err = run("-p", "emu", "cert", "obtain", "Serwer ERP", "--out", "erp.p12")
    assert code == 0, err


def test_complete_of_a_pending_file_damaged_after_sending_names_the_request_and_keeps_it(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # A pending file that holds a reference number was cut short after the request was sent (a
    # copy, a sync tool): that request is KSeF's, and the message must not call it unsent.
    backend.transitions.enrollment_reads = 2
    assert run("-p", "emu", "cert", "obtain", "Wniosek G", "--out", "g.p12", "--timeout", "0.1")[0] == 4
    pending = tmp_path / "g.p12.pending"
    whole = pending.read_bytes()
    reference = json.loads(whole)["reference_number"]
    assert reference
    pending.write_bytes(whole[: whole.index(b'"key"') + 40])
    code, _, err = run("-p", "emu", "cert", "complete", "g.p12")
    assert code == 2 and f"after its request was sent: KSeF numbered it {reference}" in err, err
    assert "never reached" not in err and "remove" not in err and "ksef cert list" in err, err
    assert pending.read_bytes() == whole[: whole.index(b'"key"') + 40]


def test_complete_with_a_p12_cut_short_refuses_it_until_force(  # type: ignore[no-untyped-def]
    run, logged_in, tmp_path: Path, backend: KSeFBackend
) -> None:
    # Without hard links the .p12 is written in place too: a crash in the middle leaves it cut
    # short beside its pending file. complete neither takes it for done nor replaces it unasked.
    backend.transitions.enrollment_reads = 2
    assert run("-p", "emu", "cert", "obtain", "Wniosek F", "--out", "f.p12", "--timeout", "0.1")[0] == 4
    (tmp_path / "f.p12").write_bytes(b"\x30\x82\x0a")
    code, _, err = run("-p", "emu", "cert", "complete", "f.p12")
    assert code == 2 and "does not hold this request's certificate" in err and "--force" in err, err
    assert (tmp_path / "f.p12.pending").exists()
    code, out, err = run("-p", "emu", "cert", "complete", "f.p12", "--force")
    assert code == 0 and "Wniosek F" in out, err
    assert SigningCredentials.from_pkcs12(tmp_path / "f.p12", PASSWORD) and not (tmp_path / "f.p12.pending").exists()
