"""Errors that say what to do (issue 20, point 7): connection errors name the full URL and the
likely cause; the CLI's hints name the profile and the file."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from ksef_client import APIConnectionError, AsyncKSeF, KSeF, _storage
from ksef_client._core import connection_error
from ksef_client.errors import NotFoundError
from ksef_client.schemas import FA3_NAMESPACE, FORM_NAMESPACES
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.test_cli import run  # noqa: F401 - the CLI fixture (profile 'emu' on the emulator)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_loopback_connection_asks_whether_the_emulator_runs() -> None:
    port = _closed_port()
    ksef = KSeF(base_url=f"http://127.0.0.1:{port}/v2", access_token="t", max_retries=0)
    with ksef, pytest.raises(APIConnectionError) as raised:
        ksef.sessions.get("20261125-SO-0000000000-0000000000-00")
    url = f"http://127.0.0.1:{port}/v2/sessions/20261125-SO-0000000000-0000000000-00"
    assert raised.value.url == url
    message = str(raised.value)
    assert message.startswith(f"GET {url}: ConnectError")
    assert f"Is the emulator running on 127.0.0.1:{port}? Start it with: ksef-mock --port {port}" in message


def test_the_url_in_a_connection_error_leaves_the_query_out() -> None:
    request = httpx.Request("GET", "https://storage.example/part?sig=SECRET&se=1")
    error = connection_error(httpx.ConnectError("refused", request=request))
    assert error.url == "https://storage.example/part" and "SECRET" not in str(error)
    assert "Nothing answers on storage.example:443" in str(error)
    timeout = connection_error(httpx.ReadTimeout("slow", request=request))
    assert "No answer in time from storage.example:443" in str(timeout)


def test_not_logged_in_names_the_profile(run) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    code, _, err = run("-p", "emu", "sessions", "list")
    assert code == 3 and "profile 'emu'" in err and "`ksef -p emu auth login`" in err


def test_a_login_without_a_nip_says_so(run, ksef_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert run("profile", "set", "nonip", "--base-url", ksef_server.base_url)[0] == 0
    code, _, err = run("-p", "nonip", "auth", "login", "--token-stdin")
    assert code == 2
    assert "no NIP to log in to: profile 'nonip' has none" in err
    assert "ksef -p nonip auth login --nip NIP" in err
    assert f"ksef profile set nonip --env TEST --base-url {ksef_server.base_url} --nip NIP" in err


def test_swapped_certificate_and_key_are_named(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    creds = self_signed_certificate(nip=NIP, kind="seal")
    (tmp_path / "cert.pem").write_bytes(creds.certificate_pem())
    (tmp_path / "key.pem").write_bytes(creds.private_key_pem())
    code, _, err = run("-p", "emu", "auth", "login", "--cert", "key.pem", "--key", "cert.pem")
    assert code == 2
    assert "--cert key.pem holds a private key and --key cert.pem a certificate: swapped?" in err
    assert "ksef -p emu auth login --cert cert.pem --key key.pem" in err
    code, _, err = run("-p", "emu", "auth", "login", "--cert", "cert.pem", "--key", "cert.pem")
    assert code == 2 and "--key cert.pem: expected a PEM private key" in err and "found a certificate" in err
    other = self_signed_certificate(nip=NIP, kind="seal")
    (tmp_path / "other.pem").write_bytes(other.private_key_pem())
    code, _, err = run("-p", "emu", "auth", "login", "--cert", "cert.pem", "--key", "other.pem")
    assert code == 2 and "--cert cert.pem / --key other.pem" in err and "not the key of this certificate" in err
    code, out, _ = run("-p", "emu", "--json", "auth", "login", "--cert", "cert.pem", "--key", "key.pem")
    assert code == 0 and json.loads(out)["nip"] == NIP


V2_HINT = (
    ": is the base URL right? It has {ends}, and KSeF's API lives under /v2 (e.g. "
    "https://api-test.ksef.mf.gov.pl/v2, or http://127.0.0.1:8000/v2 for the emulator)"
)
SESSION = "20261125-SO-0000000000-0000000000-00"


@pytest.fixture
def own_api_bases(monkeypatch: pytest.MonkeyPatch) -> None:
    """The base URLs registered as the API's (their queries left in logs) restored after the test:
    a client of the emulator's host without /v2 would register the whole host, its storage links
    too, for the rest of the run."""
    monkeypatch.setattr(_storage, "_API_BASES", set(_storage._API_BASES))


@pytest.mark.usefixtures("own_api_bases")
@pytest.mark.parametrize(("path", "ends"), [("", "no path"), ("/", "no path"), ("/api", "path '/api'")])
def test_a_404_under_a_base_url_without_v2_asks_for_it(ksef_server, path: str, ends: str) -> None:  # type: ignore[no-untyped-def]
    # Was a bare "GET /sessions/... -> HTTP 404 (non-JSON body: 'Not Found')".
    root = ksef_server.base_url.removesuffix("/v2")
    with KSeF(base_url=root + path, access_token="t") as ksef, pytest.raises(NotFoundError) as raised:
        ksef.sessions.get(SESSION)
    assert str(raised.value).endswith("(non-JSON body: 'Not Found')" + V2_HINT.format(ends=ends))


def test_a_404_under_v2_has_no_such_hint(ksef_server, backend) -> None:  # type: ignore[no-untyped-def]
    token = backend.mint_access_token(NIP)
    with KSeF(base_url=ksef_server.base_url + "/", access_token=token) as ksef, pytest.raises(NotFoundError) as raised:
        ksef._http.get("/no-such-operation")
    assert "base URL" not in str(raised.value)


@pytest.mark.anyio
@pytest.mark.usefixtures("own_api_bases")
async def test_the_async_client_asks_for_v2_too(ksef_server) -> None:  # type: ignore[no-untyped-def]
    root = ksef_server.base_url.removesuffix("/v2")
    async with AsyncKSeF(base_url=root, access_token="t") as ksef:
        with pytest.raises(NotFoundError, match="is the base URL right"):
            await ksef.sessions.get(SESSION)


@pytest.mark.usefixtures("own_api_bases")
def test_a_profile_without_v2_gets_the_hint_at_login(run, ksef_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    root = ksef_server.base_url.removesuffix("/v2")
    assert run("profile", "set", "nov2", "--base-url", root, "--nip", NIP)[0] == 0  # taken: a proxy may differ
    creds = self_signed_certificate(nip=NIP, kind="seal")
    (tmp_path / "cert.pem").write_bytes(creds.certificate_pem())
    (tmp_path / "key.pem").write_bytes(creds.private_key_pem())
    code, _, err = run("-p", "nov2", "auth", "login", "--cert", "cert.pem", "--key", "key.pem")
    assert code == 1 and "POST /auth/challenge -> HTTP 404" in err
    assert V2_HINT.format(ends="no path") in err


def test_send_names_an_invoice_of_another_form(run, backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    monkeypatch.setenv("KSEF_ACCESS_TOKEN", backend.mint_access_token(NIP))
    fa2 = sample_invoice("FA2/1").replace(FA3_NAMESPACE.encode(), FORM_NAMESPACES["FA (2)"].encode())
    (tmp_path / "fa2.xml").write_bytes(fa2)
    code, _, err = run("-p", "emu", "send", "fa2.xml")
    assert code == 2
    assert err.startswith("error: fa2.xml: not a valid FA(3) invoice: the document's form is FA (2) (")
    assert '--form "FA(2)" with ksef send' in err
