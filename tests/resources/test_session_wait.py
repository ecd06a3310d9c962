"""``sessions.wait`` for a session that is not closed: refused at once when this client holds it
open (an online session, a batch whose send_batch failed before its close), and a timeout that
names the last status and, at 100, the likely cause. Sync and async, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ksef_client import AsyncKSeF, KSeF, PollTimeoutError
from ksef_client.errors import BadRequestError, BatchError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime


@pytest.fixture
def other(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> Iterator[KSeF]:
    """Another client of the same context: it holds none of ``ksef``'s sessions."""
    token = backend.mint_access_token(NIP)
    with KSeF(base_url=ksef_server.base_url, access_token=token, sleep=fake_time.sleep, clock=fake_time.clock) as c:
        yield c


class TestAnOpenSessionIsRefusedAtOnce:
    def test_an_online_session_never_closed(self, ksef: KSeF, fake_time: FakeTime) -> None:
        # Was: 600 s of polling at 100, then "still at 100 after 600 s".
        session = ksef.online_session().open()
        session.send(sample_invoice("FV/OPEN/1"))
        sent = ksef.send_state.requests_sent
        with pytest.raises(RuntimeError, match="is still open") as caught:
            ksef.sessions.wait(session.reference_number)  # type: ignore[arg-type]
        assert f"session {session.reference_number} is still open" in str(caught.value)
        assert "leave the `with ksef.online_session() as session:` block" in str(caught.value)
        assert "session.close()" in str(caught.value)
        assert ksef.send_state.requests_sent == sent and fake_time.sleeps == []  # nothing polled
        # A copy made with with_options holds the same sessions.
        with pytest.raises(RuntimeError, match="is still open"):
            ksef.with_options(timeout=5).sessions.wait(session.reference_number)  # type: ignore[arg-type]
        session.close()
        status = ksef.sessions.wait(session.reference_number)  # type: ignore[arg-type]
        assert (status.status.code, status.successful_invoice_count) == (200, 1)

    def test_inside_the_with_block(self, ksef: KSeF) -> None:
        with ksef.online_session() as session:
            session.send(sample_invoice("FV/OPEN/2"))
            with pytest.raises(RuntimeError, match="is still open"):
                ksef.sessions.wait(session.reference_number)  # type: ignore[arg-type]
        assert ksef.sessions.wait(session.reference_number).status.code == 200  # type: ignore[arg-type]

    def test_a_bad_reference_is_still_a_value_error(self, ksef: KSeF) -> None:
        with pytest.raises(ValueError, match="reference_number"):
            ksef.sessions.wait("not-a-reference")

    def test_a_batch_whose_upload_failed(self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
        backend.faults.add(403, operation="storage.upload_part", times=1)  # refused, not repeated: no close
        with pytest.raises(BatchError) as caught:
            ksef.send_batch([sample_invoice("FV/B/1")])
        ref = caught.value.session_reference_number
        assert ref is not None and backend.sessions.state.sessions[ref].status.code == 100
        with pytest.raises(RuntimeError, match=f"batch session {ref} is still open.*send_batch"):
            ksef.sessions.wait(ref)
        assert fake_time.sleeps == []

    @pytest.mark.anyio
    async def test_async_online_and_batch(self, aksef: AsyncKSeF, backend: KSeFBackend, fake_time: FakeTime) -> None:
        session = await aksef.online_session().open()
        await session.send(sample_invoice("FV/AOPEN/1"))
        with pytest.raises(RuntimeError, match=r"is still open.*await session\.close\(\)"):
            await aksef.sessions.wait(session.reference_number)  # type: ignore[arg-type]
        async with aksef.online_session() as inside:
            await inside.send(sample_invoice("FV/AOPEN/2"))
            with pytest.raises(RuntimeError, match="is still open"):
                await aksef.sessions.wait(inside.reference_number)  # type: ignore[arg-type]
        await session.close()
        assert (await aksef.sessions.wait(session.reference_number)).status.code == 200  # type: ignore[arg-type]
        assert (await aksef.sessions.wait(inside.reference_number)).status.code == 200  # type: ignore[arg-type]
        backend.faults.add(403, operation="storage.upload_part", times=1)
        with pytest.raises(BatchError) as caught:
            await aksef.send_batch([sample_invoice("FV/AB/1")])
        with pytest.raises(RuntimeError, match=r"batch session .* is still open"):
            await aksef.sessions.wait(caught.value.session_reference_number)  # type: ignore[arg-type]
        assert fake_time.sleeps == []


class TestTimeoutNamesTheStatus:
    def test_a_session_this_client_does_not_hold_open_is_polled(
        self, ksef: KSeF, other: KSeF, fake_time: FakeTime
    ) -> None:
        # Opened by another client (or process): polled, and the timeout says what 100 means.
        session = other.online_session().open()
        with pytest.raises(PollTimeoutError) as caught:
            ksef.sessions.wait(session.reference_number, timeout=30, interval=5)  # type: ignore[arg-type]
        message = str(caught.value)
        assert message.startswith(
            f"session {session.reference_number} still at 100 Sesja interaktywna otwarta after 30 s: "
        )
        assert "may never have been closed" in message and "session.close()" in message
        assert caught.value.last.status.code == 100 and sum(fake_time.sleeps) <= 30

    def test_a_close_that_failed_leaves_the_session_to_polling(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # The close went out and failed: it may have gone through, so wait polls (no RuntimeError).
        session = ksef.online_session().open()
        backend.faults.add(400, operation="online_session.close_online_session", times=1)
        with pytest.raises(BadRequestError):
            session.close()
        with pytest.raises(PollTimeoutError, match=r"still at 100 .*may never have been closed"):
            ksef.sessions.wait(session.reference_number, timeout=10, interval=5)  # type: ignore[arg-type]

    def test_a_closed_session_in_processing_gets_no_hint(self, ksef: KSeF, backend: KSeFBackend) -> None:
        backend.transitions.session_reads = 1000
        with ksef.online_session() as session:
            session.send(sample_invoice("FV/SLOW/1"))
        with pytest.raises(PollTimeoutError) as caught:
            ksef.sessions.wait(session.reference_number, timeout=10, interval=5)  # type: ignore[arg-type]
        assert str(caught.value) == (
            f"session {session.reference_number} still at 170 Sesja interaktywna zamknięta after 10 s"
        )

    @pytest.mark.anyio
    async def test_async(self, aksef: AsyncKSeF, other: KSeF) -> None:
        session = other.online_session().open()
        with pytest.raises(PollTimeoutError, match=r"still at 100 Sesja interaktywna otwarta after 6 s: .*closed"):
            await aksef.sessions.wait(session.reference_number, timeout=6, interval=2)  # type: ignore[arg-type]


def test_sending_before_the_open_says_how_to_open(ksef: KSeF) -> None:
    session = ksef.online_session()
    with pytest.raises(RuntimeError, match=r"not open: open it first, with `with ksef.online_session\(\) as session:`"):
        session.send(sample_invoice("FV/EARLY/1"))
