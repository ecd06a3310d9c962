"""``ksef doctor`` and ``python -m ksef_client.doctor`` against the emulator on 127.0.0.1, and the
spec-version facts they rest on. Nothing leaves the loopback interface."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ksef_client import __version__
from ksef_client.cli import main as ksef_cli
from ksef_client.doctor import MAX_SPEC_BYTES, check_server, diagnose
from ksef_client.environments import Environment
from ksef_client.mock.routes import public
from ksef_client.mock.server import ThreadedServer
from ksef_client.spec_version import (
    SpecVersion,
    api_version,
    compare_versions,
    declared_version,
    pinned_spec_path,
    pinned_version,
    spec_url,
    version_key,
)
from tests.conftest import ROOT

Run = Callable[..., tuple[int, str, str]]
PIN = pinned_version()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there any more


def _other_version(step: int) -> str:
    """The pin's minor version moved by ``step`` (2.9.0 -> 2.10.0 or 2.8.0)."""
    major, minor = [*version_key(PIN.api_version), 0][:2]
    return f"{major}.{minor + step}.0"


def _publish(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """The emulator publishes its spec with ``version`` written where KSeF writes it."""
    spec = json.loads(pinned_spec_path().read_bytes())
    spec["info"]["description"] = spec["info"]["description"].replace(PIN.api_version, version)
    patched = json.dumps(spec).encode()
    monkeypatch.setattr(public, "published_spec", lambda: patched)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*args) -> (exit code, stdout, stderr)`` of ``ksef`` with an empty config directory."""
    monkeypatch.setenv("KSEF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("KSEF_CREDENTIAL_STORE", "file")
    for name in ("KSEF_TOKEN", "KSEF_ACCESS_TOKEN", "KSEF_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = ksef_cli(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


# --- the version facts ------------------------------------------------------------------------


def test_the_version_is_read_from_the_description_not_info_version() -> None:
    spec = {"info": {"version": "v2", "description": "**Wersja API:** 2.9.0 (build 2.9.0-te-1+abc)<br>\n..."}}
    assert declared_version(spec) == SpecVersion("2.9.0", "2.9.0-te-1+abc")
    assert api_version(spec) == "2.9.0"
    assert declared_version({"info": {"version": "v2"}}) is None
    assert api_version({"info": {"version": "v2"}}) == "v2"  # the generator's fallback
    assert declared_version({"info": {"description": "**Wersja API:** 2.0.0"}}) == SpecVersion("2.0.0", None)


def test_versions_compare_as_numbers() -> None:
    assert compare_versions("2.10.0", "2.9.0") == 1
    assert compare_versions("2.9.0", "2.10.0") == -1
    assert compare_versions("2.9", "2.9.0") == 0
    assert compare_versions("2.9.1", "2.9.0") == 1
    assert compare_versions("3.0.0-rc1", "2.99.99") == 1
    with pytest.raises(ValueError, match="not a version"):
        version_key("v2")


def test_spec_urls_of_the_environments() -> None:
    assert spec_url(Environment.TEST.base_url) == "https://api-test.ksef.mf.gov.pl/docs/v2/openapi.json"
    assert spec_url(Environment.DEMO.base_url) == "https://api-demo.ksef.mf.gov.pl/docs/v2/openapi.json"
    assert spec_url(Environment.PROD.base_url + "/") == "https://api.ksef.mf.gov.pl/docs/v2/openapi.json"
    assert spec_url("http://127.0.0.1:8000/v2") == "http://127.0.0.1:8000/docs/v2/openapi.json"


def test_the_shipped_spec_carries_the_pin_of_the_lock() -> None:
    lock = json.loads((ROOT / "openapi" / "lock.json").read_text(encoding="utf-8"))
    assert (PIN.api_version, PIN.build) == (lock["api_version"], lock["build"])


def test_the_emulator_publishes_the_pinned_spec_where_ksef_does(ksef_server: ThreadedServer) -> None:
    response = httpx.get(spec_url(ksef_server.base_url))  # no token: the spec is public
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.content == pinned_spec_path().read_bytes()


def test_no_authorization_header_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSEF_ACCESS_TOKEN", "secret")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=pinned_spec_path().read_bytes())

    check = check_server("https://ksef.example/v2", transport=httpx.MockTransport(answer))
    assert check.version == PIN and seen[0].url == "https://ksef.example/docs/v2/openapi.json"
    assert "authorization" not in seen[0].headers and "secret" not in str(seen[0].headers)


# --- against the emulator ---------------------------------------------------------------------


def test_the_emulator_publishes_the_pinned_version(ksef_server: ThreadedServer) -> None:
    report = diagnose(ksef_server.base_url)
    assert report.status == "ok" and report.exit_code == 0
    assert report.server is not None and report.server.version == PIN
    assert report.sdk_version == __version__ and report.pinned == PIN


def test_ksef_doctor_prints_the_versions(run: Run, ksef_server: ThreadedServer) -> None:
    code, out, err = run("doctor", "--base-url", ksef_server.base_url)
    assert code == 0 and err == ""
    lines = dict(line.split(maxsplit=1) for line in out.splitlines() if not line.startswith(("KSeF", "server")))
    assert lines["ksef-sdk"] == __version__ and lines["httpx"] == httpx.__version__
    assert f"KSeF API (pin)  {PIN}" in out and f"server API      {PIN}" in out
    assert sys.version.split()[0] in lines["Python"] and lines["platform"]
    assert out.splitlines()[-1] == f"ok: the server publishes API {PIN.api_version}, the version this SDK is pinned to"


def test_json_output(run: Run, ksef_server: ThreadedServer) -> None:
    code, out, _ = run("--json", "doctor", "--base-url", ksef_server.base_url)
    data = json.loads(out)
    assert code == 0 and data["status"] == "ok"
    assert set(data) == {"sdk_version", "pinned_api_version", "pinned_build", "python_version", "python_implementation",
                         "httpx_version", "platform", "server", "status", "message"}  # fmt: skip
    assert data["pinned_api_version"] == PIN.api_version and data["pinned_build"] == PIN.build
    assert data["server"] == {"base_url": ksef_server.base_url, "spec_url": spec_url(ksef_server.base_url),
                              "reachable": True, "api_version": PIN.api_version, "build": PIN.build,
                              "error": None}  # fmt: skip


def test_a_newer_server_warns_and_exits_1(run: Run, ksef_server: ThreadedServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    newer = _other_version(+1)
    _publish(monkeypatch, newer)
    code, out, err = run("doctor", "--base-url", ksef_server.base_url)
    assert code == 1 and f"server API      {newer}" in out
    assert err.startswith(f"warning: the server publishes API {newer}, newer than the {PIN.api_version}")
    assert "may not know its new fields or operations" in err and "pip install --upgrade ksef-sdk" in err
    assert err.count("\n") == 1
    code, out, err = run("--json", "doctor", "--base-url", ksef_server.base_url)
    data = json.loads(out)
    assert code == 1 and data["status"] == "server_newer" and data["server"]["api_version"] == newer
    assert err.startswith("warning: ")


def test_an_older_server_is_noted(run: Run, ksef_server: ThreadedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    older = _other_version(-1)
    _publish(monkeypatch, older)
    code, out, err = run("doctor", "--base-url", ksef_server.base_url)
    assert code == 0 and err == ""
    assert out.splitlines()[-1].startswith(f"note: the server publishes API {older}, older than")


def test_an_unreachable_server_is_named_with_the_error(run: Run) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}/v2"
    code, out, err = run("doctor", "--base-url", base_url)
    assert code == 4 and "server API      unreachable" in out and f"ksef-sdk        {__version__}" in out
    assert err.startswith(f"error: could not reach {spec_url(base_url)}: ConnectError") and err.count("\n") == 1
    code, out, _ = run("--json", "doctor", "--base-url", base_url)
    data = json.loads(out)
    assert code == 4 and data["status"] == "unreachable" and data["server"]["reachable"] is False
    assert data["server"]["error"].startswith("ConnectError")


def test_a_server_that_never_answers_times_out(run: Run) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base_url = f"http://127.0.0.1:{silent.getsockname()[1]}/v2"
        code, _, err = run("doctor", "--base-url", base_url, "--timeout", "0.1")
    assert code == 4 and "ReadTimeout" in err


def test_an_answer_that_is_not_a_spec_exits_1(run: Run, ksef_server: ThreadedServer) -> None:
    code, out, err = run("doctor", "--base-url", ksef_server.base_url.removesuffix("/v2") + "/elsewhere/v2")
    assert code == 1 and "server API      unknown" in out
    assert err.startswith("error: ") and "HTTP 404" in err


def test_the_profile_is_checked_when_one_is_saved(run: Run, ksef_server: ThreadedServer) -> None:
    code, out, _ = run("doctor")  # no profile saved: nothing to check, no network
    assert code == 0 and "note: no server checked" in out and "\nserver " not in out
    assert run("profile", "set", "default", "--base-url", ksef_server.base_url)[0] == 0
    code, out, _ = run("--json", "doctor")
    assert code == 0 and json.loads(out)["server"]["base_url"] == ksef_server.base_url


def test_usage_errors_exit_2(run: Run) -> None:
    code, _, err = run("doctor", "--env", "TEST", "--base-url", "http://127.0.0.1:1/v2")
    assert code == 2 and "not both" in err
    code, _, err = run("doctor", "--base-url", "ftp://127.0.0.1/v2")
    assert code == 2 and "not an http(s) URL" in err


def test_python_m_prints_what_ksef_doctor_prints(run: Run, ksef_server: ThreadedServer) -> None:
    _, cli_out, _ = run("doctor", "--base-url", ksef_server.base_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSEF_")}
    result = subprocess.run([sys.executable, "-m", "ksef_client.doctor", "--base-url", ksef_server.base_url],
                            capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert result.returncode == 0 and result.stdout == cli_out and result.stderr == ""
    result = subprocess.run([sys.executable, "-m", "ksef_client.doctor", "--json", "--env", "TEST", "--base-url", "x"],
                            capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert result.returncode == 2 and "not allowed with" in result.stderr  # refused before any network
    # Without the cli extra (click and rich impossible to import) it works all the same.
    code = "import sys; sys.modules['click'] = sys.modules['rich'] = None; import ksef_client.doctor as d; d.main([])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and f"KSeF API (pin)  {PIN}" in result.stdout, result.stderr


@pytest.mark.parametrize(("body", "error"), [
    (b"<html>maintenance</html>", "the answer is not JSON"),
    (b'{"info": {"version": "v2"}}', 'no "Wersja API" in info.description'),
    (b"[]", 'no "Wersja API" in info.description'),
])  # fmt: skip
def test_answers_that_name_no_version(body: bytes, error: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    report = diagnose("https://ksef.example/v2", transport=transport)
    assert report.status == "bad_answer" and report.exit_code == 1 and report.level == "error"
    assert report.server is not None and report.server.error == error and error in report.message


def test_a_checkout_without_the_pinned_spec_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> SpecVersion:
        raise FileNotFoundError("ksef_client/_data/ksef-openapi.json")

    monkeypatch.setattr("ksef_client.doctor.pinned_version", missing)
    assert diagnose().status == "not_checked" and "make spec" in diagnose().render()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=pinned_spec_path().read_bytes()))
    report = diagnose("https://ksef.example/v2", transport=transport)
    assert report.status == "pin_unknown" and report.exit_code == 1 and "pin is unknown" in report.message


# --- a hostile server (security review, session 10, finding 5) -----------------------------------


class _Body(httpx.SyncByteStream):
    """A body sent in pieces, as from a socket (httpx reads a ``content=`` body at once)."""

    def __init__(self, data: bytes, piece: int = 65536) -> None:
        self.data, self.piece, self.sent = data, piece, 0

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), self.piece):
            self.sent += self.piece
            yield self.data[start : start + self.piece]


def test_a_deeply_nested_answer_is_a_bad_answer_not_a_crash() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=_Body(deep)))
    report = diagnose("https://ksef.example/v2", transport=transport)  # raised RecursionError
    assert report.status == "bad_answer" and report.server is not None
    assert report.server.error == "the answer is not JSON"


def test_a_decompression_bomb_stops_at_the_cap() -> None:
    seen: list[httpx.Request] = []
    bomb = gzip.compress(bytes(MAX_SPEC_BYTES + 1024 * 1024), compresslevel=9)  # 33 MiB of zeros in 33 kB

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=_Body(bomb, 1024))

    report = diagnose("https://ksef.example/v2", transport=httpx.MockTransport(answer))
    assert report.status == "bad_answer" and report.server is not None
    assert report.server.error == f"the answer is larger than {MAX_SPEC_BYTES} bytes (decoded); not read further"
    assert seen[0].headers["Accept-Encoding"] == "gzip, deflate"  # no br or zstd for httpx to inflate whole
    stacked = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"Content-Encoding": "gzip, gzip"}, stream=_Body(b"x"))
    )
    report = diagnose("https://ksef.example/v2", transport=stacked)
    assert report.status == "bad_answer" and report.server is not None and "stacked" in (report.server.error or "")


def test_redirects_are_followed_within_the_origin_only() -> None:
    seen: list[str] = []
    spec = pinned_spec_path().read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/docs/v2/openapi.json":
            return httpx.Response(301, headers={"Location": "/docs/v2/openapi.json/"})
        if request.url.host == "ksef.example":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example/spec.json"})
        return httpx.Response(200, content=spec)

    report = diagnose("https://ksef.example/v2", transport=httpx.MockTransport(answer))
    assert report.status == "bad_answer" and report.server is not None
    assert report.server.error == "HTTP 302: a redirect to another server (https://elsewhere.example), not followed"
    assert seen == ["https://ksef.example/docs/v2/openapi.json", "https://ksef.example/docs/v2/openapi.json/"]

    def same_origin(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/docs/v2/openapi.json":
            return httpx.Response(308, headers={"Location": "/docs/v2/openapi.json/"})
        return httpx.Response(200, stream=_Body(spec))

    assert diagnose("https://ksef.example/v2", transport=httpx.MockTransport(same_origin)).status == "ok"
    loop = httpx.MockTransport(lambda request: httpx.Response(302, headers={"Location": str(request.url)}))
    report = diagnose("https://ksef.example/v2", transport=loop)
    assert report.server is not None and report.server.error == "more than 5 redirects"
