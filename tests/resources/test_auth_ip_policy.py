"""Logins with ``allowed_ips=``: the policy is sent (token JSON, XAdES document) and KSeF (the
emulator) refuses the login's tokens from any other address.

KSeF's answer, from the spec: 403 ``ForbiddenProblemDetails``, reasonCode "ip-not-allowed |
Żądanie pochodzi z adresu IP innego niż wskazany podczas uwierzytelnienia", ``security``
"ip-not-allowed | clientIp: string". The threaded emulator sees this process from 127.0.0.1; the
in-process app (``httpx.ASGITransport(client=...)``) from any address a test gives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from ksef_client import AllowedIps, AsyncKSeF, KSeF
from ksef_client.errors import PermissionDeniedError
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.ip_policy import IpPolicy
from ksef_client.mock.validation import schema_errors
from ksef_client.resources.auth import AuthTokens
from ksef_client.schemas import auth_request_errors
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import AUTH_NAMESPACE_2_1, build_auth_token_request, sign_xades
from tests.conftest import NIP
from tests.helpers import FakeTime

HOME, ELSEWHERE = "203.0.113.7", "198.51.100.1"


@pytest.fixture
def anon(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> Iterator[KSeF]:
    """A client with no token yet (it connects from 127.0.0.1)."""
    with KSeF(base_url=ksef_server.base_url, sleep=fake_time.sleep, clock=fake_time.clock) as client:
        yield client


def _ksef_token(ksef: KSeF) -> str:
    created = ksef.tokens.create(["InvoiceRead", "InvoiceWrite"], "ip policy token")
    ksef.tokens.wait_active(created.reference_number)
    return created.token


def _policy(backend: KSeFBackend, tokens: AuthTokens) -> IpPolicy | None:
    """The policy the emulator keeps with the login."""
    return backend.auth.state.operations[tokens.reference_number].allowed_ips


def _assert_refused_here(error: PermissionDeniedError, address: str = "127.0.0.1") -> None:
    assert error.status_code == 403
    assert error.reason_code == "ip-not-allowed"
    assert error.client_ip == address


class TestTokenLogin:
    def test_the_tokens_work_from_an_allowed_address(self, ksef: KSeF, anon: KSeF, backend: KSeFBackend) -> None:
        tokens = anon.auth.login_with_token(
            _ksef_token(ksef), context_nip=NIP, allowed_ips=AllowedIps("127.0.0.1", masks=["10.0.0.0/8"])
        )
        assert _policy(backend, tokens) == IpPolicy(("127.0.0.1",), (), ("10.0.0.0/8",))
        assert list(anon.sessions.list("Online")) == []

    def test_the_tokens_are_refused_from_elsewhere(self, ksef: KSeF, anon: KSeF) -> None:
        anon.auth.login_with_token(
            _ksef_token(ksef), context_nip=NIP, allowed_ips=AllowedIps(ranges=["192.0.2.1-192.0.2.9"])
        )
        with pytest.raises(PermissionDeniedError) as caught:
            list(anon.sessions.list("Online"))
        _assert_refused_here(caught.value)

    def test_the_clients_own_address_is_the_challenges(self, ksef: KSeF, anon: KSeF, backend: KSeFBackend) -> None:
        tokens = anon.auth.login_with_token(_ksef_token(ksef), context_nip=NIP, allowed_ips=AllowedIps.client_ip())
        assert _policy(backend, tokens) == IpPolicy(("127.0.0.1",))
        assert list(anon.sessions.list("Online")) == []


class TestCertificateLogin:
    def test_the_policy_is_signed_into_the_request_and_kept(self, anon: KSeF, backend: KSeFBackend) -> None:
        seal = self_signed_certificate(NIP, kind="seal")
        tokens = anon.auth.login_with_certificate(
            seal, context_nip=NIP, allowed_ips=AllowedIps(["192.0.2.1"], include_client_ip=True)
        )
        assert _policy(backend, tokens) == IpPolicy(("192.0.2.1", "127.0.0.1"))
        assert list(anon.sessions.list("Online")) == []

    def test_the_tokens_are_refused_from_elsewhere(self, anon: KSeF) -> None:
        seal = self_signed_certificate(NIP, kind="seal")
        anon.auth.login_with_certificate(seal, context_nip=NIP, allowed_ips=AllowedIps(masks="10.0.0.0/8"))
        with pytest.raises(PermissionDeniedError) as caught:
            list(anon.sessions.list("Online"))
        _assert_refused_here(caught.value)

    def test_a_request_signed_elsewhere_carries_the_policy(self, anon: KSeF, backend: KSeFBackend) -> None:
        seal = self_signed_certificate(NIP, kind="seal")
        unsigned = anon.auth.unsigned_auth_token_request(context_nip=NIP, allowed_ips=AllowedIps.client_ip())
        root = etree.fromstring(unsigned)
        assert auth_request_errors(root) == []  # the shipped schemat_auth_v2-1.xsd
        ns = {"a": AUTH_NAMESPACE_2_1}
        assert root.xpath("a:AuthorizationPolicy/a:AllowedIps/a:Ip4Address/text()", namespaces=ns) == ["127.0.0.1"]
        tokens = anon.auth.login_with_signed_request(sign_xades(root, seal))
        assert _policy(backend, tokens) == IpPolicy(("127.0.0.1",))
        assert list(anon.sessions.list("Online")) == []


class TestBadInputSendsNothing:
    def test_a_policy_that_is_no_allowed_ips(self, anon: KSeF) -> None:
        seal = self_signed_certificate(NIP, kind="seal")
        for login in (
            lambda: anon.auth.login_with_token("token", context_nip=NIP, allowed_ips=["127.0.0.1"]),  # type: ignore[arg-type]
            lambda: anon.auth.login_with_certificate(seal, context_nip=NIP, allowed_ips="127.0.0.1"),  # type: ignore[arg-type]
            lambda: anon.auth.unsigned_auth_token_request(context_nip=NIP, allowed_ips=("127.0.0.1",)),  # type: ignore[arg-type]
        ):
            with pytest.raises(ValueError, match=r"allowed_ips: expected AllowedIps\(") as caught:
                login()
            assert "got" in str(caught.value)
        assert anon.send_state.requests_sent == 0

    def test_a_signed_request_whose_policy_the_schema_refuses(self, anon: KSeF) -> None:
        seal = self_signed_certificate(NIP, kind="seal")
        root = build_auth_token_request(
            "20261125-CR-0123456789-ABCDEF0123-4A", "Nip", NIP,
            allowed_ips=AllowedIps([f"10.0.0.{i}" for i in range(10)]),
        )  # fmt: skip
        allowed = root.find(f"{{{AUTH_NAMESPACE_2_1}}}AuthorizationPolicy/{{{AUTH_NAMESPACE_2_1}}}AllowedIps")
        assert allowed is not None
        allowed.append(etree.fromstring(f'<Ip4Address xmlns="{AUTH_NAMESPACE_2_1}">10.0.1.1</Ip4Address>'))
        with pytest.raises(ValueError, match="signed_xml: allowed_ips: at most 10 addresses"):
            anon.auth.login_with_signed_request(sign_xades(root, seal))
        assert anon.send_state.requests_sent == 0


class _Recording(httpx.AsyncBaseTransport):
    """The in-process emulator, with the requests sent to it kept."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.requests = inner, list[httpx.Request]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


def _client(backend: KSeFBackend, address: str, fake_time: FakeTime) -> tuple[AsyncKSeF, _Recording]:
    """A client of the in-process emulator (strict) whose requests come from ``address``."""
    app = create_app(backend, strict=True)
    transport = _Recording(httpx.ASGITransport(app=app, client=(address, 50000)))
    client = AsyncKSeF(
        base_url="http://ksef.local/v2", transport=transport, sleep=fake_time.asleep, clock=fake_time.clock
    )
    return client, transport


@pytest.mark.anyio
async def test_the_token_login_body_matches_the_spec(ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
    token = _ksef_token(ksef)
    client, sent = _client(backend, HOME, fake_time)
    async with client:
        policy = AllowedIps(["192.0.2.1"], ["192.0.2.10-192.0.2.20"], ["10.0.0.0/8"], include_client_ip=True)
        await client.auth.login_with_token(token, context_nip=NIP, allowed_ips=policy)
    (login,) = [r for r in sent.requests if r.url.path == "/v2/auth/ksef-token"]
    body = json.loads(login.content)
    assert body["authorizationPolicy"] == {
        "allowedIps": {
            "ip4Addresses": ["192.0.2.1", HOME],
            "ip4Ranges": ["192.0.2.10-192.0.2.20"],
            "ip4Masks": ["10.0.0.0/8"],
        }
    }
    assert schema_errors({"$ref": "#/components/schemas/InitTokenAuthenticationRequest"}, body) == []


@pytest.mark.anyio
async def test_async_logins_bind_the_tokens_to_the_address_they_came_from(
    ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    token = _ksef_token(ksef)
    seal = self_signed_certificate(NIP, kind="seal", key_type="ec")
    home, _ = _client(backend, HOME, fake_time)
    elsewhere, _ = _client(backend, ELSEWHERE, fake_time)
    async with home, elsewhere:
        by_token = await home.auth.login_with_token(token, context_nip=NIP, allowed_ips=AllowedIps.client_ip())
        unsigned = await home.auth.unsigned_auth_token_request(context_nip=NIP, allowed_ips=AllowedIps.client_ip())
        by_request = await home.auth.login_with_signed_request(sign_xades(etree.fromstring(unsigned), seal))
        by_certificate = await home.auth.login_with_certificate(
            seal, context_nip=NIP, allowed_ips=AllowedIps.client_ip()
        )
        for tokens in (by_token, by_request, by_certificate):
            assert _policy(backend, tokens) == IpPolicy((HOME,))
            home.auth.resume(tokens)
            assert [s async for s in home.sessions.list("Online")] == []
            elsewhere.auth.resume(tokens)
            with pytest.raises(PermissionDeniedError) as caught:
                [s async for s in elsewhere.sessions.list("Online")]
            _assert_refused_here(caught.value, ELSEWHERE)


@pytest.mark.anyio
async def test_a_refresh_from_elsewhere_is_refused(backend: KSeFBackend, fake_time: FakeTime) -> None:
    seal = self_signed_certificate(NIP, kind="seal")
    home, _ = _client(backend, HOME, fake_time)
    elsewhere, sent = _client(backend, ELSEWHERE, fake_time)
    async with home, elsewhere:
        tokens = await home.auth.login_with_certificate(seal, context_nip=NIP, allowed_ips=AllowedIps(HOME))
        expired = dataclasses.replace(tokens, access_valid_until=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        elsewhere.auth.resume(expired)  # the client refreshes the access token first
        with pytest.raises(PermissionDeniedError) as caught:
            [s async for s in elsewhere.sessions.list("Online")]
        _assert_refused_here(caught.value, ELSEWHERE)
        assert [r.url.path for r in sent.requests] == ["/v2/auth/token/refresh"]


@pytest.mark.anyio
async def test_the_clients_own_address_must_be_ipv4(ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
    token = _ksef_token(ksef)
    client, sent = _client(backend, "2001:db8::1", fake_time)
    async with client:
        with pytest.raises(ValueError, match="2001:db8::1, an IPv6 address"):
            await client.auth.login_with_token(token, context_nip=NIP, allowed_ips=AllowedIps.client_ip())
    assert "/v2/auth/ksef-token" not in [r.url.path for r in sent.requests]  # only the challenge (and the keys)
