"""The emulator answers only requests addressed to its own names (review s10-sec, finding 2): a web
page whose name was rebound to 127.0.0.1 sends that name in ``Host``. Only ``/_mock/*`` checked it,
so such a page could run a XAdES login with a self-signed certificate against ``/v2`` and read every
invoice."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.errors import PermissionDeniedError
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.hosts import HostPolicy, host_name
from ksef_client.mock.server import ThreadedServer, build_parser
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.mock.conftest import open_batch, zipped

FOREIGN = {"Host": "attacker.example:8000"}


def _refused(answer: httpx.Response, *names: str) -> bool:
    body = answer.json()
    return (
        answer.status_code == 403
        and answer.headers["content-type"] == "application/problem+json"
        and "attacker.example" in body["detail"]
        and "--allow-host" in body["detail"]
        and set(names) <= set(body["allowedHosts"])
    )


@pytest.fixture
def root(ksef_mock_server: ThreadedServer, backend: KSeFBackend) -> Iterator[httpx.Client]:
    """A client of the pytest plugin's emulator (on 127.0.0.1), outside ``/v2``."""
    with httpx.Client(base_url=f"http://127.0.0.1:{ksef_mock_server.port}") as client:
        yield client


def test_an_emulator_on_loopback_refuses_a_foreign_host_on_every_route(root: httpx.Client, raw: httpx.Client) -> None:
    assert _refused(root.post("/v2/auth/challenge", headers=FOREIGN), "127.0.0.1", "localhost", "::1")
    assert _refused(root.get("/v2/security/public-key-certificates", headers=FOREIGN))
    assert _refused(root.get("/docs/v2/openapi.json", headers=FOREIGN))
    assert _refused(root.post("/_mock/tokens", json={"nip": NIP}, headers=FOREIGN))
    _, [(request, data)] = open_batch(raw, zipped({"a.xml": sample_invoice("H/1")}))
    upload = httpx.put(request["url"], content=data, headers={**request["headers"], **FOREIGN})
    assert _refused(upload)  # storage too
    assert httpx.put(request["url"], content=data, headers=request["headers"]).status_code == 201
    # Its own names, with or without a port, in any case:
    names = (
        "127.0.0.1",
        f"localhost:{root.base_url.port}",
        "LOCALHOST",
        "[::1]:8000",
        "localhost.",
    )
    for host in names:
        assert root.post("/v2/auth/challenge", headers={"Host": host}).status_code == 200, host
    assert root.post("/_mock/tokens", json={"nip": NIP}, headers={"Host": "localhost"}).status_code == 200


def test_a_rebound_page_cannot_log_in_with_a_self_signed_certificate(ksef_mock_server: ThreadedServer) -> None:
    class Rebound(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.headers["Host"] = FOREIGN["Host"]  # as a browser sends it for the page's name
            return super().handle_request(request)

    certificate = self_signed_certificate(NIP, kind="seal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plain http with a transport of its own
        ksef = KSeF(base_url=ksef_mock_server.base_url, transport=Rebound(), max_retries=0)
    with ksef, pytest.raises(PermissionDeniedError, match="allow-host"):
        ksef.auth.login_with_certificate(certificate, context_nip=NIP)


def test_allowed_hosts_add_names_to_address_the_emulator_by() -> None:
    with (
        ThreadedServer(allowed_hosts=["KSeF-Mock"]) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http,
    ):
        for host in ("ksef-mock:8000", "ksef-mock", "127.0.0.1"):
            assert http.post("/v2/auth/challenge", headers={"Host": host}).status_code == 200, host
            assert http.post("/_mock/tokens", json={"nip": NIP}, headers={"Host": host}).status_code == 200, host
        assert _refused(http.post("/v2/auth/challenge", headers=FOREIGN), "ksef-mock")


async def _status(app: object, method: str, path: str, host: str) -> int:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://ksef.local") as client:
        body = {"nip": NIP} if path.startswith("/_mock") else None
        answer = await client.request(method, path, json=body, headers={"Host": host})
        return answer.status_code


@pytest.mark.anyio
async def test_an_emulator_on_a_wildcard_address_answers_any_name_on_the_api_only() -> None:
    # Listening on 0.0.0.0 it is reachable from the network, by any name that leads there (a
    # container's service name): /v2 and storage answer any Host; /_mock/* loopback names and the
    # bound address only, as they always did.
    app = create_app(KSeFBackend(), host="0.0.0.0")
    assert await _status(app, "POST", "/v2/auth/challenge", "ksef-mock:8000") == 200
    assert await _status(app, "POST", "/_mock/tokens", "ksef-mock:8000") == 403
    assert await _status(app, "POST", "/_mock/tokens", "localhost:8000") == 200
    assert await _status(app, "POST", "/_mock/tokens", "0.0.0.0:8000") == 200
    # With allowed names the whole API answers those only, the control endpoints included.
    named = create_app(KSeFBackend(), host="0.0.0.0", allowed_hosts=["ksef-mock"])
    assert await _status(named, "POST", "/v2/auth/challenge", "ksef-mock:8000") == 200
    assert await _status(named, "POST", "/_mock/tokens", "ksef-mock:8000") == 200
    assert await _status(named, "POST", "/v2/auth/challenge", "other.example") == 403


@pytest.mark.anyio
async def test_an_in_process_app_checks_the_api_only_when_given_names() -> None:
    # No listening address, no rebinding: httpx.ASGITransport with any base URL reaches /v2.
    assert await _status(create_app(KSeFBackend()), "POST", "/v2/auth/challenge", "ksef.local") == 200
    assert await _status(create_app(KSeFBackend()), "POST", "/_mock/tokens", "ksef.local") == 403  # as before
    named = create_app(KSeFBackend(), allowed_hosts=["ksef.local"])
    assert await _status(named, "POST", "/v2/auth/challenge", "ksef.local") == 200
    assert await _status(named, "POST", "/_mock/tokens", "ksef.local") == 200
    assert await _status(named, "POST", "/v2/auth/challenge", "other.example") == 403


@pytest.mark.parametrize("name", ["ksef-mock:8000", "", "a/b", "a b", "user@host", "[::1"])
def test_an_allowed_name_must_be_a_bare_host_name(name: str) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        create_app(KSeFBackend(), allowed_hosts=[name])
    with pytest.raises(ValueError, match="allowed host"):
        ThreadedServer(allowed_hosts=[name])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--allow-host", name])


def test_allowed_names_are_a_list() -> None:
    with pytest.raises(TypeError, match="not one str"):
        create_app(KSeFBackend(), allowed_hosts="ksef-mock")
    assert build_parser().parse_args(["--allow-host", "Ksef-Mock", "--allow-host", "[fd00::1]"]).allow_hosts == [
        "ksef-mock", "fd00::1"
    ]  # fmt: skip
    assert build_parser().parse_args([]).allow_hosts == []


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8000", "localhost"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("Example.COM", "example.com"),
        ("", ""),
    ],
)
def test_host_names_lose_their_port_and_brackets(header: str, name: str) -> None:
    assert host_name(header) == name


def test_the_policy_of_each_listening_address() -> None:
    assert HostPolicy.of("127.0.0.1").everywhere and HostPolicy.of("localhost").everywhere
    assert not HostPolicy.of("0.0.0.0").everywhere and not HostPolicy.of("::").everywhere
    assert not HostPolicy.of(None).everywhere and HostPolicy.of(None, ["x"]).everywhere
    assert HostPolicy.of("[::1]").allows("[::1]:80") and HostPolicy.of("10.0.0.5").allows("10.0.0.5:8000")
    assert not HostPolicy.of("10.0.0.5").everywhere  # a network address: reachable by other names anyway


@pytest.mark.parametrize("header", ["localhost.", "LOCALHOST.:8000", "[::1]"])
def test_localhost_with_the_root_s_dot_is_a_loopback_name(header: str) -> None:
    assert HostPolicy.of("127.0.0.1").allows(header)


@pytest.mark.parametrize(
    "header", ["ksef.localhost", "a.b.localhost.", "localhost.example", "notlocalhost", "localhost.."]
)
def test_names_under_localhost_need_allowing(header: str) -> None:
    # RFC 6761 only says resolvers should answer *.localhost themselves; a system resolver may
    # forward one to a DNS server that can rebind it (review s11-final, L3): allowed by name only.
    assert not HostPolicy.of("127.0.0.1").allows(header)
    assert HostPolicy.of("127.0.0.1", [header.rstrip(".")]).allows(header.rstrip("."))
