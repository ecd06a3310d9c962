"""The client's cache of KSeF's public key certificates follows a key rotation: it has a lifetime,
and a key KSeF refuses (21470) or a cached certificate past its ``validTo`` fetches the keys again
and retries once (bezpieczenstwo/klucze-publiczne-do-szyfrowania.md, 4.4)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.errors import BadRequestError
from ksef_client.mock import KSeFBackend
from ksef_client.mock import keys as emulator
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP
from tests.helpers import FakeTime, RecordingTransport

KEYS_PATH = "/v2/security/public-key-certificates"
LOGIN_PATH = "/v2/auth/ksef-token"


@pytest.fixture(scope="module")
def rotated_keys() -> emulator.EmulatorKeys:
    """New token and symmetric keys (made once: RSA generation is slow), the UPO key unchanged."""
    old = emulator.emulator_keys()
    return emulator.EmulatorKeys(
        emulator._key_pair("rotated token key", emulator.TOKEN_ENCRYPTION),
        emulator._key_pair("rotated symmetric key", emulator.SYMMETRIC_KEY_ENCRYPTION),
        old.upo_signing,
    )


@pytest.fixture
def rotate(rotated_keys: emulator.EmulatorKeys) -> Iterator[object]:
    """``rotate()`` makes the emulator publish and accept only the rotated keys (an emergency
    rotation); the keys in use before come back after the test."""
    before = emulator.emulator_keys()
    yield lambda: emulator.install_keys(rotated_keys)
    emulator.install_keys(before)


@pytest.fixture
def client(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> Iterator[KSeF]:
    transport = RecordingTransport(httpx.HTTPTransport(), fake_time)
    with KSeF(base_url=ksef_server.base_url, transport=transport, sleep=fake_time.sleep, clock=fake_time.clock) as ksef:
        yield ksef


def _sent(ksef: KSeF) -> list[str]:
    transport = ksef._http._transport._inner  # RetryingTransport -> RecordingTransport
    assert isinstance(transport, RecordingTransport)
    return [path for _, _, path in transport.sent]


def _ksef_token(ksef: KSeF) -> str:
    created = ksef.tokens.create(["InvoiceRead", "InvoiceWrite"], "key rotation")
    ksef.tokens.wait_active(created.reference_number)
    return created.token


def test_a_login_after_a_key_rotation_fetches_the_keys_again(ksef: KSeF, client: KSeF, rotate) -> None:  # type: ignore[no-untyped-def]
    token = _ksef_token(ksef)
    client.auth.login_with_token(token, context_nip=NIP)  # the keys are cached now
    rotate()
    client.auth.login_with_token(token, context_nip=NIP)  # 21470 -> keys fetched again -> retried
    sent = _sent(client)
    assert sent.count(KEYS_PATH) == 2 and sent.count(LOGIN_PATH) == 3
    published = {pair.public_key_id for pair in emulator.emulator_keys().published}
    assert {c.public_key_id for c in client.auth.public_key_certificates()} == published


def test_an_online_session_after_a_key_rotation_opens(ksef: KSeF, rotate) -> None:  # type: ignore[no-untyped-def]
    ksef.online_session().open().close()  # the keys are cached now
    rotate()
    session = ksef.online_session().open()  # 21470 -> keys fetched again -> opened
    session.close()


def test_a_second_refusal_is_raised(ksef: KSeF, client: KSeF, rotate, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    token = _ksef_token(ksef)
    client.auth.login_with_token(token, context_nip=NIP)
    rotate()
    stale = client._public_keys.keys
    monkeypatch.setattr("ksef_client.resources.auth.public_keys_flow", lambda: _stale(stale))
    with pytest.raises(BadRequestError) as caught:  # KSeF keeps refusing: no loop
        client.auth.login_with_token(token, context_nip=NIP)
    assert caught.value.codes == [21470]
    assert _sent(client).count(LOGIN_PATH) == 3


def _stale(keys: object):  # type: ignore[no-untyped-def]
    return keys
    yield  # a flow without steps: KSeF publishes the old keys still


def test_a_cached_certificate_past_its_valid_to_fetches_the_keys_again(ksef: KSeF, client: KSeF) -> None:
    token = _ksef_token(ksef)
    client.auth.login_with_token(token, context_nip=NIP)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cached = client._public_keys.keys
    assert cached is not None
    client._public_keys.keys = [dataclasses.replace(c, valid_to=past) for c in cached]
    client.auth.login_with_token(token, context_nip=NIP)  # NoUsableCertificateError -> fetched again
    assert _sent(client).count(KEYS_PATH) == 2


def test_the_cache_has_a_lifetime(ksef: KSeF, client: KSeF, fake_time: FakeTime, rotate) -> None:  # type: ignore[no-untyped-def]
    token = _ksef_token(ksef)
    client.auth.login_with_token(token, context_nip=NIP)
    client.auth.login_with_token(token, context_nip=NIP)
    assert _sent(client).count(KEYS_PATH) == 1  # within the lifetime: cached
    rotate()
    fake_time.now += client._public_keys.max_age
    client.auth.login_with_token(token, context_nip=NIP)  # expired: fetched before the login, no 21470
    sent = _sent(client)
    assert sent.count(KEYS_PATH) == 2 and sent.count(LOGIN_PATH) == 3
