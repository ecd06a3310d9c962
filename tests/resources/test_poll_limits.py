"""A long wait keeps to its group's limits per hour: the poll backs off, and a read the client's
own pacing holds back is part of the wait (``PollTimeoutError`` when it would come past the
timeout), never ``ThrottleWaitTooLongError``. Against the emulator enforcing the spec's limits on
the client's fake time (``SharedTime``); ``max_retries=0``: a 429 would be a ``RateLimitError``.

Review s11 (A1): ``GET /sessions/{ref}`` is in ``sessionMisc``, 1200 an hour; a wait read every
2 s, so a one-hour wait (``send_batch(wait=True)``'s default) used the hour up after 40 minutes,
and the client's own pacing then raised ``ThrottleWaitTooLongError`` (a wait of 19 minutes, past
``max_retry_after``) instead of going on or ending with ``PollTimeoutError``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ksef_client import AsyncKSeF, KSeF, PollTimeoutError
from ksef_client._flows import POLL_MAX_INTERVAL, poll_wait
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.resources.certificates import PendingCertificate
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.helpers import SharedTime


@pytest.fixture
def time(backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> SharedTime:
    backend.rate_limits.scale = 1.0  # the emulator enforces the spec's limits
    return SharedTime(backend, monkeypatch)


def _options(server: ThreadedServer, backend: KSeFBackend, time: SharedTime, **options: Any) -> dict[str, Any]:
    return {
        "base_url": server.base_url,
        "access_token": backend.mint_access_token(NIP, ttl=dt.timedelta(hours=3)),  # outlives the waits
        "clock": time.clock,
        "max_retries": 0,
        **options,
    }


def test_the_poll_backs_off_to_at_most_every_30_seconds() -> None:
    assert [poll_wait(2.0, waited) for waited in (0, 10, 20, 60, 200, 300, 3000)] == [2, 2, 2, 6, 20, 30, 30]
    assert poll_wait(60.0, 3000) == 60 and POLL_MAX_INTERVAL == 30  # a longer interval as given


class TestAnHourLongWait:
    def test_ends_with_the_poll_timeout_within_the_hourly_limit(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, time: SharedTime
    ) -> None:
        backend.transitions.session_reads = 100_000  # processing (170) for the whole hour
        with KSeF(**_options(ksef_server, backend, time, sleep=time.sleep)) as ksef:
            with ksef.online_session() as session:
                session.send(sample_invoice("FV/LONG/1"))
            sent, started = ksef.send_state.requests_sent, time.now
            with pytest.raises(PollTimeoutError) as caught:
                ksef.sessions.wait(session.reference_number, timeout=3600)  # type: ignore[arg-type]
            reads = ksef.send_state.requests_sent - sent
        assert str(caught.value).startswith(f"session {session.reference_number} still at 170 ")
        assert str(caught.value).endswith(" after 3600 s") and caught.value.last.status.code == 170
        assert 3590 <= time.now - started <= 3601
        assert reads <= 200  # was 1200, then ThrottleWaitTooLongError 2460 s in
        assert ksef.send_state.throttled_seconds == 0  # never near the group's limits

    @pytest.mark.anyio
    async def test_send_batch_wait_async(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, time: SharedTime
    ) -> None:
        backend.transitions.session_reads = 100_000
        async with AsyncKSeF(**_options(ksef_server, backend, time, sleep=time.asleep)) as aksef:
            with pytest.raises(PollTimeoutError) as caught:
                await aksef.send_batch([sample_invoice("FV/LONG/2")], wait=True)  # timeout 3600 s
        assert " still at 150 " in str(caught.value) and str(caught.value).endswith(" after 3600 s")
        assert caught.value.last.status.code == 150


class TestAGroupUsedUp:
    """The hour's reads of ``sessionMisc`` used up before the wait (other waits, UPO downloads of
    the context): the wait waits for room when it fits in its timeout, else ends at once."""

    @staticmethod
    def _used_up(ksef: KSeF, reference_number: str) -> None:
        for _ in range(60):  # the client's limits at scale 0.05: 60 an hour (6 a minute)
            ksef.sessions.get(reference_number)

    def test_waits_for_room_or_ends_with_the_poll_timeout(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, time: SharedTime
    ) -> None:
        with KSeF(**_options(ksef_server, backend, time, sleep=time.sleep, rate_limit_scale=0.05)) as ksef:
            with ksef.online_session() as session:
                session.send(sample_invoice("FV/FULL/1"))
            ref = session.reference_number
            assert ref is not None
            self._used_up(ksef, ref)
            sent, started = ksef.send_state.requests_sent, time.now
            with pytest.raises(PollTimeoutError) as caught:
                ksef.sessions.wait(ref, timeout=600)
            assert str(caught.value).startswith(
                "no status read after 0 s: the rate limits of group 'sessionMisc' allow the next read in "
            )
            assert str(caught.value).endswith("past the timeout (600 s)") and caught.value.last is None
            assert ksef.send_state.requests_sent == sent and time.now == started  # nothing sent, no wait
            status = ksef.sessions.wait(ref, timeout=3600)  # room comes within the hour: waited for
            assert status.status.code == 200 and time.now - started > 600

    @pytest.mark.anyio
    async def test_async(self, ksef_server: ThreadedServer, backend: KSeFBackend, time: SharedTime) -> None:
        backend.transitions.session_reads = 100_000
        async with AsyncKSeF(**_options(ksef_server, backend, time, sleep=time.asleep, rate_limit_scale=0.05)) as aksef:
            async with aksef.online_session() as session:
                await session.send(sample_invoice("FV/FULL/2"))
            ref = session.reference_number
            assert ref is not None
            for _ in range(55):
                await aksef.sessions.get(ref)
            # five reads left in the hour: the wait reads them, then the next is past its timeout
            with pytest.raises(PollTimeoutError) as caught:
                await aksef.sessions.wait(ref, timeout=600)
        message = str(caught.value)
        assert message.startswith(f"session {ref} still at 170 ") and caught.value.last.status.code == 170
        assert "(the rate limits of group 'sessionMisc' allow the next read in " in message


def test_a_read_held_back_past_the_timeout_ends_the_poll_at_once(
    ksef_server: ThreadedServer, backend: KSeFBackend, time: SharedTime
) -> None:
    # A hold shorter than max_retry_after was waited inside the read, past the poll's timeout:
    # wait(timeout=30) raised after 55 s, saying "after 30 s" (review s11-final2, M1). The reads
    # of a poll carry its timeout (PaceWithin): such a hold ends it at once, naming the group.
    backend.transitions.session_reads = 100_000  # stays at 170
    with KSeF(**_options(ksef_server, backend, time, sleep=time.sleep, rate_limit_scale=0.05)) as ksef:
        with ksef.online_session() as session:
            session.send(sample_invoice("FV/OVR/1"))
        ref = session.reference_number
        for _ in range(6):  # the minute's reads used up (6 a minute at scale 0.05)
            ksef.sessions.get(ref)  # type: ignore[arg-type]
        started = time.now
        with pytest.raises(PollTimeoutError) as caught:
            ksef.sessions.wait(ref, timeout=30)  # type: ignore[arg-type]
        assert time.now - started <= 30
        assert "'sessionMisc' allow the next read in" in str(caught.value)
        assert "past the timeout (30 s)" in str(caught.value)
        ksef.sessions.get(ref)  # type: ignore[arg-type]  # the call after it: paced as usual again


def test_a_certificate_never_issued_ends_saying_how_many_reads_found_nothing(
    ksef_server: ThreadedServer, backend: KSeFBackend, time: SharedTime
) -> None:
    # A request whose answer was lost is looked for among the subject's certificates; each read
    # finds nothing (no status to show). Held back by the rate limits after some reads, the poll
    # said "no status read" although it had read (review s11-final2, L2): it names the reads.
    options = _options(ksef_server, backend, time, sleep=time.sleep, rate_limit_scale=0.1)
    del options["access_token"]  # certificates need a XAdES login
    with KSeF(**options) as ksef:
        ksef.auth.login_with_certificate(self_signed_certificate(NIP, kind="seal"), context_nip=NIP)
        sent, started = ksef.send_state.requests_sent, time.now
        with pytest.raises(PollTimeoutError) as caught:
            ksef.certificates.complete(PendingCertificate(None, ec.generate_private_key(ec.SECP256R1())), timeout=30)
        reads = ksef.send_state.requests_sent - sent
    message = str(caught.value)
    assert re.fullmatch(
        r"nothing final in (\d+) read\(s\) after \d+ s: the rate limits of group 'other \(POST /certificates/query\)' "
        r"allow the next read in \d+ s, past the timeout \(30 s\)",
        message,
    ), message
    assert caught.value.last is None and time.now - started < 30
    assert int(re.findall(r"\d+", message)[0]) == reads >= 1  # one listing request a read: nothing listed
