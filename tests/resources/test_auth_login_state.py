"""What the client holds as its login, against the emulator (review s11 of authentication):

- H1: a login whose refresh token died (its session revoked, its subject deceased, its 7 days
  passed) does not block the next login on the same client: the operations the spec marks
  without security go out with no token and no refresh, a login ends the earlier one at its
  start, and a refresh refused for good drops the refresh token;
- M1: a refresh under way does not overwrite a login set meanwhile (the setter, ``resume``, a
  login): the refresh's answer is held back by a transport in front of the emulator until the
  test has set the newer login, so nothing depends on timing;
- L6: a ``with_options`` copy pointed at another KSeF starts without the first one's login and
  public keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator

import anyio
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._generated.api.testdata import create_test_person
from ksef_client._generated.models import PersonCreateRequest
from ksef_client.errors import APIStatusError, AuthenticationError, AuthenticationFailedError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.resources.auth import AuthTokens
from ksef_client.testing import TestCertificate, self_signed_certificate
from tests.conftest import NIP
from tests.helpers import FakeTime

REFRESH = "/v2/auth/token/refresh"
# The operations of a login the spec marks without security: nothing of an earlier login goes with them.
ANONYMOUS = {
    ("GET", "/v2/security/public-key-certificates"),
    ("POST", "/v2/auth/challenge"),
    ("POST", "/v2/auth/ksef-token"),
    ("POST", "/v2/auth/xades-signature"),
    ("POST", "/v2/testdata/person"),
}

Seen = tuple[str, str, str | None]


class Watch(httpx.BaseTransport):
    """In front of the emulator: records each request (method, path, ``Authorization``) and, once
    ``hold`` is set, holds the emulator's answer to the next refresh until ``release`` is set."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[Seen] = []
        self.hold = False
        self.arrived, self.release = threading.Event(), threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path, request.headers.get("authorization")))
        response = self.inner.handle_request(request)
        if self.hold and request.url.path == REFRESH:
            self.hold = False
            self.arrived.set()
            assert self.release.wait(30), "the test never released the refresh"
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncWatch(httpx.AsyncBaseTransport):
    """``Watch`` for ``AsyncKSeF`` (make it inside the test's event loop)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[Seen] = []
        self.hold = False
        self.arrived, self.release = anyio.Event(), anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path, request.headers.get("authorization")))
        response = await self.inner.handle_async_request(request)
        if self.hold and request.url.path == REFRESH:
            self.hold = False
            self.arrived.set()
            with anyio.fail_after(30):
                await self.release.wait()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _refreshes(seen: list[Seen]) -> int:
    return sum(path == REFRESH for _, path, _ in seen)


def _notes(error: BaseException) -> str:
    return " ".join(getattr(error, "__notes__", []))


@pytest.fixture
def watch() -> Iterator[Watch]:
    transport = Watch()
    yield transport
    transport.release.set()  # a failed test leaves no thread waiting


def _deceased(nip: str) -> PersonCreateRequest:
    return PersonCreateRequest.from_dict(
        {"nip": nip, "pesel": "90010112345", "isBailiff": False, "isDeceased": True, "description": "deceased"}
    )


def _expiring(tokens: AuthTokens) -> AuthTokens:
    """``tokens`` as the client would hold them when the access token is about to expire."""
    return dataclasses.replace(tokens, access_valid_until=dt.datetime.now(dt.UTC))


DEATHS = ["revoked", "deceased", "expired"]


class TestADeadLoginDoesNotBlockTheNext:
    """H1. Was: every request, the login's anonymous ones too, first refreshed the expiring token;
    with the refresh token dead, ``login_with_*`` on the same client failed at its first step with
    the refresh's error (``POST /auth/token/refresh -> 400 21301`` or ``401``)."""

    def _kill(
        self, how: str, client: KSeF, creds: TestCertificate, tokens: AuthTokens, backend: KSeFBackend, server: str
    ) -> Callable[[], dt.datetime] | None:
        """End the login ``tokens`` at KSeF as ``how`` says; the emulator's later clock, if moved."""
        if how == "revoked":  # another program (or the web app) ends the session
            with KSeF(base_url=server) as admin:
                admin.auth.login_with_certificate(creds, context_nip=creds.nip)
                admin.auth.revoke_session(tokens.reference_number)
        elif how == "deceased":  # 21308 "Próba wykorzystania metod autoryzacyjnych osoby zmarłej."
            create_test_person.sync_detailed(client=client.raw, body=_deceased(creds.nip))
        else:  # the refresh token's 7 days ("do 7 dni") have passed
            later = backend.clock() + dt.timedelta(days=7, minutes=1)
            return lambda: later
        return None

    @pytest.mark.parametrize("how", DEATHS)
    def test_sync(
        self,
        how: str,
        ksef_server: ThreadedServer,
        backend: KSeFBackend,
        fake_time: FakeTime,
        watch: Watch,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        creds, fresh = self_signed_certificate(kind="person"), self_signed_certificate(kind="seal")
        with KSeF(
            base_url=ksef_server.base_url, transport=watch, sleep=fake_time.sleep, clock=fake_time.clock
        ) as client:
            tokens = client.auth.login_with_certificate(creds, context_nip=creds.nip)
            later = self._kill(how, client, creds, tokens, backend, ksef_server.base_url)
            if later is not None:
                monkeypatch.setattr(backend, "clock", later)
            client.auth.resume(_expiring(tokens))
            with pytest.raises(APIStatusError) as refused:  # the refresh the request needs is refused
                list(client.auth.sessions())
            assert refused.value.status_code == 401 or refused.value.codes == [21301 if how == "revoked" else 21308]
            assert "log in again" in _notes(refused.value)
            assert client._tokens.refresh_token is None  # never sent again
            refreshes = _refreshes(watch.seen)
            if how == "expired":  # the access token has expired too: KSeF's 401 says to log in again
                with pytest.raises(AuthenticationError) as caught:
                    list(client.auth.sessions())
                assert "can no longer be refreshed" in _notes(caught.value)
                assert "log in again" in _notes(caught.value)
            else:  # an access token outlives its session's revoke (auth/sesje.md)
                list(client.auth.sessions())
            assert _refreshes(watch.seen) == refreshes
            # The obvious recovery works: log in again, on the same client.
            start = len(watch.seen)
            login = client.auth.login_with_certificate(fresh, context_nip=fresh.nip)
            assert _refreshes(watch.seen) == refreshes
            anonymous = [bearer for method, path, bearer in watch.seen[start:] if (method, path) in ANONYMOUS]
            assert anonymous == [None, None]  # the challenge and the signed request: no token of the dead login
            assert client.access_token == login.access_token
            assert [s.is_current for s in client.auth.sessions()] == [True]

    @pytest.mark.anyio
    @pytest.mark.parametrize("how", DEATHS)
    async def test_async(
        self,
        how: str,
        ksef_server: ThreadedServer,
        backend: KSeFBackend,
        fake_time: FakeTime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        creds, fresh = self_signed_certificate(kind="person"), self_signed_certificate(kind="seal")
        watch = AsyncWatch()
        async with AsyncKSeF(
            base_url=ksef_server.base_url, transport=watch, sleep=fake_time.asleep, clock=fake_time.clock
        ) as client:
            tokens = await client.auth.login_with_certificate(creds, context_nip=creds.nip)
            if how == "deceased":
                await create_test_person.asyncio_detailed(client=client.raw, body=_deceased(creds.nip))
            else:
                with KSeF(base_url=ksef_server.base_url) as helper:
                    later = self._kill(how, helper, creds, tokens, backend, ksef_server.base_url)
                if later is not None:
                    monkeypatch.setattr(backend, "clock", later)
            client.auth.resume(_expiring(tokens))
            with pytest.raises(APIStatusError) as refused:
                [s async for s in client.auth.sessions()]
            assert "log in again" in _notes(refused.value)
            assert client._tokens.refresh_token is None
            refreshes = _refreshes(watch.seen)
            if how == "expired":
                with pytest.raises(AuthenticationError) as caught:
                    [s async for s in client.auth.sessions()]
                assert "can no longer be refreshed" in _notes(caught.value)
            else:
                [s async for s in client.auth.sessions()]
            login = await client.auth.login_with_certificate(fresh, context_nip=fresh.nip)
            assert _refreshes(watch.seen) == refreshes
            assert client.access_token == login.access_token
            assert [s.is_current async for s in client.auth.sessions()] == [True]


class TestAfterRevokingTheCurrentSession:
    """``revoke_current_session`` drops the refresh token; once the access token expires, the 401
    says why and to log in again (was: a bare 401)."""

    def test_sync(self, ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        creds = self_signed_certificate(kind="seal")
        with KSeF(base_url=ksef_server.base_url) as client:
            client.auth.login_with_certificate(creds, context_nip=creds.nip)
            client.auth.revoke_current_session()
            later = backend.clock() + dt.timedelta(minutes=20)
            monkeypatch.setattr(backend, "clock", lambda: later)
            with pytest.raises(AuthenticationError) as caught:
                list(client.auth.sessions())
            assert "revoke_current_session" in _notes(caught.value) and "log in again" in _notes(caught.value)

    @pytest.mark.anyio
    async def test_async(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        creds = self_signed_certificate(kind="seal")
        async with AsyncKSeF(base_url=ksef_server.base_url) as client:
            await client.auth.login_with_certificate(creds, context_nip=creds.nip)
            await client.auth.revoke_current_session()
            later = backend.clock() + dt.timedelta(minutes=20)
            monkeypatch.setattr(backend, "clock", lambda: later)
            with pytest.raises(AuthenticationError) as caught:
                [s async for s in client.auth.sessions()]
            assert "revoke_current_session" in _notes(caught.value)


class TestOperationsWithoutSecurity:
    """H1. The spec's operations without security get neither the token nor a refresh."""

    def test_sync(self, ksef_server: ThreadedServer, fake_time: FakeTime, watch: Watch) -> None:
        creds = self_signed_certificate(kind="seal")
        with KSeF(
            base_url=ksef_server.base_url, transport=watch, sleep=fake_time.sleep, clock=fake_time.clock
        ) as client:
            tokens = client.auth.login_with_certificate(creds, context_nip=creds.nip)
            client.auth.resume(_expiring(tokens))
            start = len(watch.seen)
            client.auth.public_key_certificates(refresh=True)
            client.auth.unsigned_auth_token_request(context_nip=creds.nip)  # a challenge
            assert watch.seen[start:] == [
                ("GET", "/v2/security/public-key-certificates", None),
                ("POST", "/v2/auth/challenge", None),
            ]
            list(client.auth.sessions())  # takes the token: refreshed first, then sent
            _, path, bearer = watch.seen[-1]
            assert _refreshes(watch.seen) == 1 and path == "/v2/auth/sessions"
            assert bearer == f"Bearer {client.access_token}" != f"Bearer {tokens.access_token}"

    @pytest.mark.anyio
    async def test_async(self, ksef_server: ThreadedServer, fake_time: FakeTime) -> None:
        creds, watch = self_signed_certificate(kind="seal"), AsyncWatch()
        async with AsyncKSeF(
            base_url=ksef_server.base_url, transport=watch, sleep=fake_time.asleep, clock=fake_time.clock
        ) as client:
            tokens = await client.auth.login_with_certificate(creds, context_nip=creds.nip)
            client.auth.resume(_expiring(tokens))
            start = len(watch.seen)
            await client.auth.public_key_certificates(refresh=True)
            await client.auth.unsigned_auth_token_request(context_nip=creds.nip)
            assert watch.seen[start:] == [
                ("GET", "/v2/security/public-key-certificates", None),
                ("POST", "/v2/auth/challenge", None),
            ]
            [s async for s in client.auth.sessions()]
            assert _refreshes(watch.seen) == 1
            assert watch.seen[-1][2] == f"Bearer {client.access_token}" != f"Bearer {tokens.access_token}"


class TestAFailedLoginKeepsTheEarlierOne:
    """H1. A login replaces the client's login when it succeeds: one that fails leaves the earlier
    login as it was (its tokens and refresh token), and its own steps never carried it."""

    def test_sync(self, ksef_server: ThreadedServer, fake_time: FakeTime) -> None:
        creds, stranger = self_signed_certificate(kind="seal"), self_signed_certificate()
        with KSeF(base_url=ksef_server.base_url, sleep=fake_time.sleep, clock=fake_time.clock) as client:
            tokens = client.auth.login_with_certificate(creds, context_nip=creds.nip)
            with pytest.raises(AuthenticationFailedError):  # no rights in that context: 415
                client.auth.login_with_certificate(stranger, context_nip=NIP)
            assert client.access_token == tokens.access_token
            assert client._tokens.refresh_token == tokens.refresh_token
            with pytest.raises(ValueError, match="context_nip"):  # bad input: nothing changes
                client.auth.login_with_certificate(creds, context_nip="1234567890")
            assert client.access_token == tokens.access_token
            list(client.sessions.list())  # the earlier login still works

    @pytest.mark.anyio
    async def test_async(self, ksef_server: ThreadedServer, fake_time: FakeTime) -> None:
        creds, stranger = self_signed_certificate(kind="seal"), self_signed_certificate()
        async with AsyncKSeF(base_url=ksef_server.base_url, sleep=fake_time.asleep, clock=fake_time.clock) as client:
            tokens = await client.auth.login_with_certificate(creds, context_nip=creds.nip)
            with pytest.raises(AuthenticationFailedError):
                await client.auth.login_with_certificate(stranger, context_nip=NIP)
            assert client.access_token == tokens.access_token
            assert client._tokens.refresh_token == tokens.refresh_token


CHANGES = ["setter", "resume", "login"]


class TestARefreshUnderWayKeepsANewerLogin:
    """M1. Was: the refresh's answer replaced whatever login had been set while it was out, and
    the client went on in the old login's context (after a new login, with the old context's
    access token beside the new login's refresh token)."""

    @staticmethod
    def _meet_401(client: KSeF | AsyncKSeF, tokens: AuthTokens, backend: KSeFBackend, mp: pytest.MonkeyPatch) -> None:
        """KSeF's clock passes the access token's expiry while the client believes it valid: its
        next request meets a 401 and refreshes then (a login's steps do not wait for that)."""
        client.auth.resume(
            dataclasses.replace(tokens, access_valid_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        )
        later = backend.clock() + dt.timedelta(minutes=20)
        mp.setattr(backend, "clock", lambda: later)

    @pytest.mark.parametrize("change", CHANGES)
    def test_sync(
        self,
        change: str,
        ksef_server: ThreadedServer,
        backend: KSeFBackend,
        fake_time: FakeTime,
        watch: Watch,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        first, second = self_signed_certificate(kind="seal"), self_signed_certificate(kind="seal")
        errors: list[BaseException] = []
        with (
            KSeF(
                base_url=ksef_server.base_url, transport=watch, sleep=fake_time.sleep, clock=fake_time.clock
            ) as client,
            KSeF(base_url=ksef_server.base_url) as elsewhere,
        ):
            self._meet_401(
                client, client.auth.login_with_certificate(first, context_nip=first.nip), backend, monkeypatch
            )

            def work() -> None:
                try:
                    list(client.auth.sessions())
                except BaseException as error:  # reported below
                    errors.append(error)

            watch.hold = True
            worker = threading.Thread(target=work)
            worker.start()
            assert watch.arrived.wait(30)  # the refresh is answered; the answer is held here
            newer: AuthTokens | None = None
            if change == "setter":
                client.access_token = token = backend.mint_access_token(second.nip)
            elif change == "resume":
                newer = elsewhere.auth.login_with_certificate(second, context_nip=second.nip)
                client.auth.resume(newer)
            else:
                newer = client.auth.login_with_certificate(second, context_nip=second.nip)
            token = newer.access_token if newer else token
            watch.release.set()
            worker.join()
            assert errors == []
            assert client.access_token == token
            assert client._tokens.refresh_token == (newer.refresh_token if newer else None)
            # the request the refresh was for went out again with the newer login's token
            assert watch.seen[-1] == ("GET", "/v2/auth/sessions", f"Bearer {token}")
            if newer is not None:  # the client goes on in the newer login's context
                assert [s.reference_number for s in client.auth.sessions() if s.is_current] == [newer.reference_number]

    @pytest.mark.anyio
    @pytest.mark.parametrize("change", CHANGES)
    async def test_async(
        self,
        change: str,
        ksef_server: ThreadedServer,
        backend: KSeFBackend,
        fake_time: FakeTime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        first, second = self_signed_certificate(kind="seal"), self_signed_certificate(kind="seal")
        watch = AsyncWatch()
        async with AsyncKSeF(
            base_url=ksef_server.base_url, transport=watch, sleep=fake_time.asleep, clock=fake_time.clock
        ) as client:
            tokens = await client.auth.login_with_certificate(first, context_nip=first.nip)
            self._meet_401(client, tokens, backend, monkeypatch)
            newer: AuthTokens | None = None
            token = ""

            async def work() -> None:
                [s async for s in client.auth.sessions()]

            async with anyio.create_task_group() as group:
                watch.hold = True
                group.start_soon(work)
                with anyio.fail_after(30):
                    await watch.arrived.wait()
                if change == "setter":
                    client.access_token = token = backend.mint_access_token(second.nip)
                elif change == "resume":
                    with KSeF(base_url=ksef_server.base_url) as elsewhere:
                        newer = elsewhere.auth.login_with_certificate(second, context_nip=second.nip)
                    client.auth.resume(newer)
                else:
                    newer = await client.auth.login_with_certificate(second, context_nip=second.nip)
                token = newer.access_token if newer else token
                watch.release.set()
            assert client.access_token == token
            assert client._tokens.refresh_token == (newer.refresh_token if newer else None)
            assert watch.seen[-1] == ("GET", "/v2/auth/sessions", f"Bearer {token}")


class TestACopyForAnotherKSeF:
    """L6. Was: ``with_options(base_url=...)`` (or ``environment=``) kept the first KSeF's tokens
    and public keys, and sent that login's tokens to the other KSeF."""

    @pytest.fixture
    def other_ksef(self) -> Iterator[ThreadedServer]:
        with ThreadedServer() as server:
            yield server

    def test_sync(
        self, ksef_server: ThreadedServer, other_ksef: ThreadedServer, fake_time: FakeTime, watch: Watch
    ) -> None:
        creds = self_signed_certificate(kind="seal")
        with KSeF(
            base_url=ksef_server.base_url, transport=watch, sleep=fake_time.sleep, clock=fake_time.clock
        ) as client:
            client.auth.login_with_certificate(creds, context_nip=creds.nip)
            keys = client.auth.public_key_certificates()
            same = client.with_options(timeout=60.0)  # the same KSeF: shares the login and keys
            assert same.access_token == client.access_token
            assert same.auth.public_key_certificates() is keys
            other = client.with_options(base_url=other_ksef.base_url)
            assert other.access_token is None and other.access_token_valid_until is None
            start = len(watch.seen)
            other.auth.public_key_certificates()  # that KSeF's own keys: fetched from it
            with pytest.raises(AuthenticationError):  # no login there yet
                list(other.auth.sessions())
            assert [(path, bearer) for _, path, bearer in watch.seen[start:]] == [
                ("/v2/security/public-key-certificates", None),
                ("/v2/auth/sessions", None),
            ]
            other.auth.login_with_certificate(creds, context_nip=creds.nip)  # its own login
            assert other.access_token != client.access_token
            assert [s.is_current for s in client.auth.sessions()] == [True]  # the first login is untouched
            other.close()
            same.close()

    def test_environment(self) -> None:
        with KSeF(environment="TEST", access_token="a-test-login") as client:
            assert client.with_options(environment="DEMO").access_token is None
            assert client.with_options(environment="TEST").access_token == "a-test-login"

    @pytest.mark.anyio
    async def test_async(self, ksef_server: ThreadedServer, other_ksef: ThreadedServer, fake_time: FakeTime) -> None:
        creds, watch = self_signed_certificate(kind="seal"), AsyncWatch()
        async with AsyncKSeF(
            base_url=ksef_server.base_url, transport=watch, sleep=fake_time.asleep, clock=fake_time.clock
        ) as client:
            await client.auth.login_with_certificate(creds, context_nip=creds.nip)
            await client.auth.public_key_certificates()
            other = client.with_options(base_url=other_ksef.base_url)
            assert other.access_token is None
            start = len(watch.seen)
            await other.auth.public_key_certificates()
            with pytest.raises(AuthenticationError):
                [s async for s in other.auth.sessions()]
            assert [bearer for _, _, bearer in watch.seen[start:]] == [None, None]
            await other.aclose()
