"""Saved secrets stay with the KSeF they were made for (security review, session 10, finding 1).

A login (access and refresh token) or a KSeF token is saved with the KSeF it belongs to. When the
profile is pointed elsewhere (``ksef profile set NAME --base-url URL``), the next command refuses
to use it, before anything is sent, and says to log in again: the other server, a listener on
127.0.0.1 here, never hears of it. A secret saved by an earlier version, which did not record its
KSeF, is sent nowhere but to the Ministry's own environments."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ksef_client import KSeF
from ksef_client.cli import main
from ksef_client.cli.config import CredentialStore, ksef_of, made_for
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import self_signed_certificate
from tests.conftest import NIP
from tests.hostile import RawServer, silent

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ksef_server: ThreadedServer,
    backend: KSeFBackend,
) -> Run:
    """``run(*args) -> (exit code, stdout, stderr)``; profile 'emu' points at the emulator."""
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
def elsewhere() -> Iterator[RawServer]:
    """Another server on 127.0.0.1 that counts the connections made to it."""
    server = RawServer(silent(0))
    yield server
    server.close()


def _log_in(run: Run, tmp_path: Path) -> None:
    creds = self_signed_certificate(nip=NIP, kind="seal")
    (tmp_path / "cert.pem").write_bytes(creds.certificate_pem())
    (tmp_path / "key.pem").write_bytes(creds.private_key_pem())
    code, _, err = run("-p", "emu", "auth", "login", "--cert", "cert.pem", "--key", "key.pem")
    assert code == 0, err


def _stored(tmp_path: Path) -> dict[str, str]:
    stored: dict[str, str] = json.loads((tmp_path / "config" / "credentials.json").read_text())
    return stored


def test_a_login_is_not_sent_to_where_the_profile_points_now(
    run: Run, tmp_path: Path, ksef_server: ThreadedServer, elsewhere: RawServer
) -> None:
    _log_in(run, tmp_path)
    assert json.loads(_stored(tmp_path)["emu/login"])["ksef"] == ksef_of(ksef_server.base_url)
    code, _, err = run("profile", "set", "emu", "--base-url", elsewhere.base_url, "--nip", NIP)
    assert code == 0 and f"the saved login of profile 'emu' is for {ksef_of(ksef_server.base_url)}" in err
    code, out, err = run("-p", "emu", "sessions", "list")
    assert code == 3 and out == "" and err.count("\n") == 1
    assert f"is for {ksef_of(ksef_server.base_url)}, but the profile points at {elsewhere.base_url}" in err
    assert "log in again: `ksef -p emu auth login`" in err
    code, out, _ = run("-p", "emu", "--json", "auth", "status")
    assert code == 3 and json.loads(out)["usable"] is False
    assert json.loads(out)["login_ksef"] == ksef_of(ksef_server.base_url)
    assert elsewhere.connections == 0  # neither the access nor the refresh token went there
    # Pointed back (written another way: a trailing slash), the login works again.
    assert run("profile", "set", "emu", "--base-url", ksef_server.base_url + "/", "--nip", NIP)[0] == 0
    assert run("-p", "emu", "sessions", "list")[0] == 0


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")  # no terminal: getpass reads stdin
def test_a_saved_ksef_token_is_never_encrypted_for_another_server(
    run: Run,
    tmp_path: Path,
    ksef_server: ThreadedServer,
    backend: KSeFBackend,
    elsewhere: RawServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as owner:
        created = owner.tokens.create(["InvoiceRead"], "a saved token")
        owner.tokens.wait_active(created.reference_number, interval=0.01)
    monkeypatch.setattr("sys.stdin", io.StringIO(created.token + "\n"))
    code, out, err = run("-p", "emu", "auth", "save-token")
    assert code == 0 and f"KSeF token for {ksef_of(ksef_server.base_url)} saved" in out, err
    assert created.token not in out + err
    assert run("profile", "set", "emu", "--base-url", elsewhere.base_url, "--nip", NIP)[0] == 0
    code, _, err = run("-p", "emu", "auth", "login")
    assert code == 3 and "the saved KSeF token of profile 'emu' is for" in err
    assert "`ksef -p emu auth save-token`" in err and created.token not in err
    assert elsewhere.connections == 0  # not even its public key was asked for
    assert run("profile", "set", "emu", "--base-url", ksef_server.base_url, "--nip", NIP)[0] == 0
    assert run("-p", "emu", "auth", "login")[0] == 0  # its own KSeF: the token logs in


def test_logout_revokes_a_login_where_it_was_made(
    run: Run, tmp_path: Path, backend: KSeFBackend, elsewhere: RawServer
) -> None:
    _log_in(run, tmp_path)
    assert run("profile", "set", "emu", "--base-url", elsewhere.base_url)[0] == 0
    code, out, err = run("-p", "emu", "auth", "logout")
    assert code == 0 and "where the login was made" in out, err
    assert [operation.revoked for operation in backend.auth.state.operations.values()] == [True]
    assert elsewhere.connections == 0 and "emu/login" not in _stored(tmp_path)


def _saved_by_an_earlier_version(run: Run, tmp_path: Path, profile: str) -> None:
    """A login (made at the emulator) and a KSeF token saved for ``profile`` as an earlier version
    saved them: the login's fields alone, the KSeF token's text alone (no KSeF recorded)."""
    _log_in(run, tmp_path)
    login = json.loads(_stored(tmp_path)["emu/login"])
    del login["ksef"]
    store = CredentialStore()
    store.set(profile, "login", json.dumps(login))
    store.set(profile, "ksef-token", "20251010-EC-0000000000-0000000000-00|nip-5265877635|" + "ab" * 32)


def test_secrets_saved_without_their_ksef_are_sent_nowhere(run: Run, tmp_path: Path, backend: KSeFBackend) -> None:
    # What an earlier version saved: the login's fields alone, the KSeF token's text alone. The
    # profile may have been re-pointed since: which KSeF they are for cannot be known.
    _saved_by_an_earlier_version(run, tmp_path, "emu")
    code, _, err = run("-p", "emu", "sessions", "list")
    assert code == 3 and "saved by an earlier version of ksef" in err and "ksef -p emu auth login" in err
    code, out, _ = run("-p", "emu", "--json", "auth", "status")
    assert code == 3 and json.loads(out)["login_ksef"] is None
    code, _, err = run("-p", "emu", "auth", "login")
    assert code == 3 and "saved KSeF token" in err and "earlier version" in err
    code, out, _ = run("-p", "emu", "auth", "logout")
    assert code == 0 and "not revoked at KSeF" in out
    assert [operation.revoked for operation in backend.auth.state.operations.values()] == [False]
    assert "emu/login" not in _stored(tmp_path)
    _log_in(run, tmp_path)
    assert run("-p", "emu", "sessions", "list")[0] == 0


def test_secrets_saved_without_their_ksef_stay_usable_at_the_ministrys_environments(
    run: Run, tmp_path: Path, ksef_server: ThreadedServer
) -> None:
    # Upgrading must not strand a saved login or KSeF token of a profile aimed at TEST or PROD: at
    # worst it belongs to another of the Ministry's environments, never to a server outside them.
    _saved_by_an_earlier_version(run, tmp_path, "prod")
    assert run("profile", "set", "prod", "--env", "PROD", "--nip", NIP)[2] == ""  # no "not used here" note
    code, out, err = run("-p", "prod", "--json", "auth", "status")
    assert code == 0 and json.loads(out)["login_ksef"] == "PROD" and json.loads(out)["usable"], err
    code, _, err = run("profile", "set", "prod", "--base-url", ksef_server.base_url)
    assert code == 0 and "earlier version did not record" in err  # at a custom URL: noted, and unused
    assert run("-p", "prod", "auth", "status")[0] == 3


def test_a_secret_without_its_ksef_is_for_a_ministry_environment_only() -> None:
    assert made_for(None, "TEST") == "TEST" and made_for(None, "PROD") == "PROD"
    assert made_for(None, "http://127.0.0.1:8000/v2") is None
    assert made_for("PROD", "TEST") == "PROD" and made_for("http://a/v2", "PROD") == "http://a/v2"


def test_an_environment_is_one_ksef_however_it_is_written() -> None:
    assert ksef_of(None, "test") == "TEST" == ksef_of("https://API-TEST.ksef.mf.gov.pl/v2/")
    assert ksef_of("HTTP://127.0.0.1:8000/v2/") == "http://127.0.0.1:8000/v2"
    assert ksef_of("http://127.0.0.1:8001/v2") != ksef_of("http://127.0.0.1:8000/v2")
    assert ksef_of("https://api.ksef.mf.gov.pl/v2") == "PROD" != ksef_of(None, "DEMO")


def test_a_refreshed_login_keeps_its_ksef(
    run: Run, tmp_path: Path, ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log_in(run, tmp_path)
    before = json.loads(_stored(tmp_path)["emu/login"])
    later = backend.clock() + dt.timedelta(hours=2)  # the access token has expired, the refresh token not
    monkeypatch.setattr(backend, "clock", lambda: later)
    assert run("-p", "emu", "sessions", "list")[0] == 0
    after = json.loads(_stored(tmp_path)["emu/login"])
    assert after["access_token"] != before["access_token"] and after["ksef"] == ksef_of(ksef_server.base_url)
