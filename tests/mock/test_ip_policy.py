"""The emulator keeps a login's IP policy and refuses its tokens elsewhere, as KSeF does.

Raw HTTP through the in-process app (strict: every answer is held to the spec), the client's
address set per connection (``httpx.ASGITransport(client=...)``). What KSeF answers, from the spec:
``ForbiddenProblemDetails``, reasonCode "ip-not-allowed | Żądanie pochodzi z adresu IP innego niż
wskazany podczas uwierzytelnienia", ``security`` "ip-not-allowed | clientIp: string".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from ksef_client.crypto import encrypt_ksef_token
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.app import EmulatorApp
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.responses import SCHEMA_VIOLATION_HEADER
from ksef_client.mock.state.ip_policy import ip_policy
from ksef_client.mock.validation import schema_errors
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import AUTH_NAMESPACE_2_1, DSIG_NAMESPACE, AllowedIps, build_auth_token_request, sign_xades
from tests.conftest import NIP

HOME, ELSEWHERE = "203.0.113.7", "198.51.100.1"


@pytest.fixture
def app() -> EmulatorApp:
    return create_app(KSeFBackend(), strict=True)


@asynccontextmanager
async def _from(app: EmulatorApp, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client of the emulator whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ksef.local/v2") as client:
        yield client


def _ksef_token(backend: KSeFBackend) -> str:
    access = backend.authenticate(f"Bearer {backend.mint_access_token(NIP)}")
    backend.transitions.token_reads = 0  # active at once
    _, token = backend.auth.create_ksef_token(access, ["InvoiceRead", "InvoiceWrite"], "ip policy tests")
    return token


async def _token_login(client: httpx.AsyncClient, token: str, policy: dict[str, Any] | None) -> httpx.Response:
    """``POST /auth/ksef-token`` with ``authorizationPolicy`` ``policy``, unchecked."""
    challenge = (await client.post("/auth/challenge")).json()
    body: dict[str, Any] = {
        "challenge": challenge["challenge"],
        "contextIdentifier": {"type": "Nip", "value": NIP},
        "encryptedToken": encrypt_ksef_token(
            emulator_keys().token_encryption.published(), token, challenge["timestampMs"]
        ),
    }
    if policy is not None:
        body["authorizationPolicy"] = policy
    return await client.post("/auth/ksef-token", json=body)


async def _redeem(client: httpx.AsyncClient, started: httpx.Response) -> tuple[str, str]:
    """The access and refresh tokens of a started login (polled once: the emulator decides at once)."""
    assert started.status_code == 202, started.text
    bearer = {"Authorization": f"Bearer {started.json()['authenticationToken']['token']}"}
    status = await client.get(f"/auth/{started.json()['referenceNumber']}", headers=bearer)
    assert status.json()["status"]["code"] == 200, status.text
    tokens = (await client.post("/auth/token/redeem", headers=bearer)).json()
    return tokens["accessToken"]["token"], tokens["refreshToken"]["token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_ip_not_allowed(answer: httpx.Response, address: str) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["reasonCode"] == "ip-not-allowed"
    assert problem["security"] == {"clientIp": address}
    assert problem["detail"] == "Żądanie pochodzi z adresu IP innego niż wskazany podczas uwierzytelnienia."


def test_a_token_login_binds_its_tokens_to_the_policy(app: EmulatorApp) -> None:
    token = _ksef_token(app.state.backend)

    async def scenario() -> None:
        async with _from(app, HOME) as home, _from(app, ELSEWHERE) as elsewhere:
            started = await _token_login(home, token, {"allowedIps": {"ip4Addresses": [HOME]}})
            access, refresh = await _redeem(home, started)
            assert (await home.get("/sessions", params={"sessionType": "Online"}, headers=_bearer(access))).is_success
            refused = await elsewhere.get("/sessions", params={"sessionType": "Online"}, headers=_bearer(access))
            _assert_ip_not_allowed(refused, ELSEWHERE)
            _assert_ip_not_allowed(await elsewhere.post("/auth/token/refresh", headers=_bearer(refresh)), ELSEWHERE)
            _assert_ip_not_allowed(
                await elsewhere.delete("/auth/sessions/current", headers=_bearer(refresh)), ELSEWHERE
            )
            refreshed = await home.post("/auth/token/refresh", headers=_bearer(refresh))
            new_access = refreshed.json()["accessToken"]["token"]
            assert (await home.get("/tokens", headers=_bearer(new_access))).is_success
            _assert_ip_not_allowed(await elsewhere.get("/tokens", headers=_bearer(new_access)), ELSEWHERE)

    anyio.run(scenario)
    assert app.violations == []


def test_a_login_without_a_policy_works_from_anywhere(app: EmulatorApp) -> None:
    token = _ksef_token(app.state.backend)

    async def scenario() -> None:
        async with _from(app, HOME) as home, _from(app, ELSEWHERE) as elsewhere:
            access, _ = await _redeem(home, await _token_login(home, token, None))
            assert (await elsewhere.get("/tokens", headers=_bearer(access))).is_success

    anyio.run(scenario)


def test_the_authentication_token_is_not_bound(app: EmulatorApp) -> None:
    # The policy restricts "wydanego tokena dostępu" (uwierzytelnianie.md): the login's own steps
    # (status, redeem) may come from elsewhere; what they yield is bound.
    token = _ksef_token(app.state.backend)

    async def scenario() -> None:
        async with _from(app, HOME) as home, _from(app, ELSEWHERE) as elsewhere:
            started = await _token_login(home, token, {"allowedIps": {"ip4Addresses": [HOME]}})
            access, _ = await _redeem(elsewhere, started)
            _assert_ip_not_allowed(await elsewhere.get("/tokens", headers=_bearer(access)), ELSEWHERE)

    anyio.run(scenario)


@pytest.mark.parametrize(
    ("policy", "allowed", "refused"),
    [
        ({"ip4Ranges": ["10.0.0.5-10.0.0.9"]}, ["10.0.0.5", "10.0.0.9"], ["10.0.0.4", "10.0.0.10"]),  # ends included
        ({"ip4Masks": ["10.1.0.0/16"]}, ["10.1.0.0", "10.1.255.255"], ["10.2.0.1", "11.1.0.1"]),
        ({"ip4Masks": ["10.1.2.3/16"]}, ["10.1.0.1"], ["10.2.0.1"]),  # host bits: the pattern allows them
        ({"ip4Addresses": ["10.0.0.5"], "ip4Ranges": None, "ip4Masks": ["10.9.0.0/16"]}, ["10.0.0.5", "10.9.3.4"],
         ["10.0.0.6"]),
    ],
)  # fmt: skip
def test_ranges_and_masks_allow_what_they_span(
    app: EmulatorApp, policy: dict[str, Any], allowed: list[str], refused: list[str]
) -> None:
    token = _ksef_token(app.state.backend)

    async def scenario() -> None:
        async with _from(app, allowed[0]) as client:
            access, _ = await _redeem(client, await _token_login(client, token, {"allowedIps": policy}))
        for address in allowed:
            async with _from(app, address) as client:
                assert (await client.get("/tokens", headers=_bearer(access))).is_success, address
        for address in refused:
            async with _from(app, address) as client:
                _assert_ip_not_allowed(await client.get("/tokens", headers=_bearer(access)), address)

    anyio.run(scenario)


@pytest.mark.parametrize(
    "policy",
    [
        {"allowedIps": {"ip4Addresses": [f"10.0.0.{i}" for i in range(11)]}},  # the spec's "maximum": 10
        {"allowedIps": {"ip4Ranges": [f"10.0.{i}.1-10.0.{i}.2" for i in range(11)]}},
        {"allowedIps": {"ip4Addresses": ["10.0.0.256"]}},
        {"allowedIps": {"ip4Addresses": ["2001:db8::1"]}},
        {"allowedIps": {"ip4Ranges": ["10.0.0.1\u201310.0.0.9"]}},  # the pattern's dash is "-"
        {"allowedIps": {"ip4Masks": ["10.0.0.0/33"]}},
    ],
)
def test_a_policy_the_spec_refuses_is_21405(app: EmulatorApp, policy: dict[str, Any]) -> None:
    token = _ksef_token(app.state.backend)

    async def scenario() -> httpx.Response:
        async with _from(app, HOME) as home:
            return await _token_login(home, token, policy)

    answer = anyio.run(scenario)
    assert answer.status_code == 400
    assert answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21405
    # Refused by the spec's own schema (the list bounds are minimum/maximum there, read as item counts).
    assert answer.headers[SCHEMA_VIOLATION_HEADER] == "schema"


def _signed(challenge: str, mutate: Callable[[Any], None] | None = None) -> bytes:
    owner = self_signed_certificate(NIP, kind="seal")
    root = build_auth_token_request(challenge, "Nip", NIP, allowed_ips=AllowedIps(HOME))
    if mutate is not None:
        mutate(root)
    return sign_xades(root, owner)


async def _xades_login(client: httpx.AsyncClient, mutate: Callable[[Any], None] | None = None) -> httpx.Response:
    challenge = (await client.post("/auth/challenge")).json()["challenge"]
    document = _signed(challenge, mutate)
    return await client.post("/auth/xades-signature", content=document, headers={"Content-Type": "application/xml"})


def test_a_xades_login_binds_its_tokens_to_the_documents_policy(app: EmulatorApp) -> None:
    async def scenario() -> None:
        async with _from(app, HOME) as home, _from(app, ELSEWHERE) as elsewhere:
            access, _ = await _redeem(home, await _xades_login(home))
            assert (await home.get("/tokens", headers=_bearer(access))).is_success
            _assert_ip_not_allowed(await elsewhere.get("/tokens", headers=_bearer(access)), ELSEWHERE)

    anyio.run(scenario)
    assert app.violations == []


def _element(root: Any, name: str) -> Any:
    return root.find(f".//{{{AUTH_NAMESPACE_2_1}}}{name}")


def _reversed(root: Any) -> None:
    allowed = _element(root, "AllowedIps")
    allowed.insert(0, allowed.makeelement(f"{{{AUTH_NAMESPACE_2_1}}}Ip4Mask"))
    allowed[0].text = "10.0.0.0/8"  # a mask before the addresses: not the xsd:sequence's order


def _too_many(root: Any) -> None:
    allowed = _element(root, "AllowedIps")
    for i in range(10):
        allowed.append(allowed.makeelement(f"{{{AUTH_NAMESPACE_2_1}}}Ip4Address"))
        allowed[-1].text = f"10.0.0.{i}"


def _bad_value(root: Any) -> None:
    _element(root, "Ip4Address").text = "10.0.0.256"


def _moved(root: Any) -> None:
    root.insert(0, _element(root, "AuthorizationPolicy"))  # before Challenge


@pytest.mark.parametrize("mutate", [_reversed, _too_many, _bad_value, _moved])
def test_a_policy_the_xsd_refuses_is_21401(app: EmulatorApp, mutate: Callable[[Any], None]) -> None:
    async def scenario() -> httpx.Response:
        async with _from(app, HOME) as home:
            return await _xades_login(home, mutate)

    answer = anyio.run(scenario)
    assert answer.status_code == 400, answer.text
    assert answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21401


def test_the_policy_survives_a_signature_it_is_not_part_of() -> None:
    # The enveloped signature is the document's last child: the policy is still the request's last element.
    document = _signed("20261125-CR-0123456789-ABCDEF0123-4A")
    assert document.rindex(b"AuthorizationPolicy") < document.index(f"{DSIG_NAMESPACE}".encode())


def test_which_addresses_a_policy_allows() -> None:
    policy = ip_policy(["192.0.2.1"], ["10.0.0.9-10.0.0.1"], ["172.16.0.0/12"])
    assert policy.allows("192.0.2.1")
    assert policy.allows("::ffff:192.0.2.1")  # an IPv4 client seen by a dual-stack server
    assert policy.allows("172.31.255.255") and not policy.allows("172.32.0.0")
    assert not policy.allows("10.0.0.5")  # a range that starts after it ends holds nothing
    assert not policy.allows("2001:db8::1") and not policy.allows("testclient") and not policy.allows("")
    assert not ip_policy().allows("192.0.2.1")  # an empty allow-list allows nothing


def test_the_specs_list_bounds_are_item_counts() -> None:
    # AllowedIps bounds its lists with "minimum": 0, "maximum": 10, which JSON Schema applies to
    # numbers only; api-changelog.md 2.4.0 says they limit the items and were always enforced.
    schema = {"$ref": "#/components/schemas/AllowedIps"}
    assert schema_errors(schema, {"ip4Addresses": [f"10.0.0.{i}" for i in range(10)], "ip4Masks": []}) == []
    assert schema_errors(schema, {"ip4Addresses": [f"10.0.0.{i}" for i in range(11)]})
    assert schema_errors(schema, {"ip4Masks": [f"10.{i}.0.0/16" for i in range(11)]})


# --- a minted token (the shortcut for tests) held to addresses, as a login's ---------------------


def test_a_minted_token_can_be_held_to_addresses(app: EmulatorApp) -> None:
    access = app.state.backend.mint_access_token(NIP, allowed_ips=AllowedIps(HOME, masks="10.0.0.0/8"))

    async def scenario() -> None:
        async with _from(app, HOME) as home, _from(app, "10.1.2.3") as inside, _from(app, ELSEWHERE) as elsewhere:
            assert (await home.get("/tokens", headers=_bearer(access))).is_success
            assert (await inside.get("/tokens", headers=_bearer(access))).is_success
            _assert_ip_not_allowed(await elsewhere.get("/tokens", headers=_bearer(access)), ELSEWHERE)

    anyio.run(scenario)
    assert app.violations == []


def test_a_minted_token_cannot_take_the_client_s_own_address() -> None:
    backend = KSeFBackend()
    with pytest.raises(ValueError, match="include_client_ip=True needs a login's challenge"):
        backend.mint_access_token(NIP, allowed_ips=AllowedIps.client_ip())
    assert backend.auth.state.operations == {}  # nothing minted


def test_the_control_endpoint_mints_a_token_held_to_addresses(app: EmulatorApp) -> None:
    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as control:
            minted = await control.post(
                "/_mock/tokens", json={"nip": NIP, "allowedIps": {"ip4Ranges": [f"{HOME}-{HOME}"]}}
            )
            refused = await control.post("/_mock/tokens", json={"nip": NIP, "allowedIps": {"ip4Addresses": "1.2.3.4"}})
            assert refused.status_code == 400 and "allowedIps" in refused.text
        access = minted.json()["accessToken"]
        async with _from(app, HOME) as home, _from(app, ELSEWHERE) as elsewhere:
            assert (await home.get("/tokens", headers=_bearer(access))).is_success
            _assert_ip_not_allowed(await elsewhere.get("/tokens", headers=_bearer(access)), ELSEWHERE)

    anyio.run(scenario)
