"""``ksef.tokens``: a new KSeF token is ``Pending`` until KSeF activates it (``POST /tokens``:
"Zaczyna być aktywny w momencie gdy jego status zmieni się na Active"); ``wait_active`` waits for
that; ``list`` walks ``GET /tokens`` page by page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from ksef_client import AsyncKSeF, KSeF, PollTimeoutError, TokenNotActiveError
from ksef_client.errors import AuthenticationFailedError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP
from tests.helpers import FakeTime


@pytest.fixture
def anon(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> Iterator[KSeF]:
    with KSeF(base_url=ksef_server.base_url, sleep=fake_time.sleep, clock=fake_time.clock) as client:
        yield client


class TestPending:
    def test_a_new_token_cannot_log_in_until_it_is_active(self, ksef: KSeF, anon: KSeF, fake_time: FakeTime) -> None:
        created = ksef.tokens.create(["InvoiceRead"], "pending token")
        with pytest.raises(AuthenticationFailedError) as caught:  # at once: KSeF's answer for Pending
            anon.auth.login_with_token(created.token, context_nip=NIP)
        assert caught.value.code == 450 and caught.value.details == ["Token nieaktywny"]
        assert [t.status for t in ksef.tokens.list()] == ["Pending"]
        status = ksef.tokens.wait_active(created.reference_number)
        assert status.status == "Active" and fake_time.sleeps == []  # active at the first read
        anon.auth.login_with_token(created.token, context_nip=NIP)
        assert [t.status for t in ksef.tokens.list()] == ["Active"]

    def test_wait_active_polls_while_pending(
        self, ksef: KSeF, backend: KSeFBackend, fake_time: FakeTime, anon: KSeF
    ) -> None:
        backend.transitions.token_reads = 3
        created = ksef.tokens.create(["InvoiceRead"], "slow token")
        assert ksef.tokens.wait_active(created.reference_number, interval=0.5).status == "Active"
        assert fake_time.sleeps == [0.5, 0.5]
        anon.auth.login_with_token(created.token, context_nip=NIP)

    def test_a_token_becomes_active_after_a_while_on_the_emulator_clock(
        self, ksef: KSeF, anon: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        backend.transitions.token_reads = 1000  # reads do not activate it: the time does
        created = ksef.tokens.create(["InvoiceRead"], "token left alone")
        later = backend.clock() + dt.timedelta(seconds=backend.transitions.token_activation)
        monkeypatch.setattr(backend, "clock", lambda: later)
        anon.auth.login_with_token(created.token, context_nip=NIP)  # no status read in between

    def test_token_reads_0_makes_tokens_active_at_once(self, ksef: KSeF, anon: KSeF, backend: KSeFBackend) -> None:
        backend.transitions.token_reads = 0
        created = ksef.tokens.create(["InvoiceRead"], "eager token")
        anon.auth.login_with_token(created.token, context_nip=NIP)

    def test_wait_active_times_out_or_raises_for_a_revoked_token(self, ksef: KSeF, backend: KSeFBackend) -> None:
        backend.transitions.token_reads = 1000
        created = ksef.tokens.create(["InvoiceRead"], "stuck token")
        with pytest.raises(PollTimeoutError, match="still Pending"):
            ksef.tokens.wait_active(created.reference_number, timeout=3, interval=1)
        ksef.tokens.revoke(created.reference_number)
        with pytest.raises(TokenNotActiveError, match="Revoked") as caught:
            ksef.tokens.wait_active(created.reference_number)
        assert caught.value.status.status == "Revoked"

    def test_a_revoked_token_fails_the_login_as_revoked(self, ksef: KSeF, anon: KSeF) -> None:
        created = ksef.tokens.create(["InvoiceRead"], "short-lived token")
        ksef.tokens.wait_active(created.reference_number)
        ksef.tokens.revoke(created.reference_number)
        with pytest.raises(AuthenticationFailedError) as caught:
            anon.auth.login_with_token(created.token, context_nip=NIP)
        assert caught.value.code == 450 and caught.value.details == ["Token unieważniony"]


class TestList:
    def test_every_token_newest_first_page_by_page(self, ksef: KSeF, backend: KSeFBackend) -> None:
        backend.transitions.token_reads = 0
        refs = [ksef.tokens.create(["InvoiceRead"], f"listed token {i:02}").reference_number for i in range(12)]
        pager = ksef.tokens.list(page_size=10)
        pages = list(pager.pages())
        assert [len(p.items) for p in pages] == [10, 2]
        assert [t.reference_number for p in pages for t in p.items] == refs[::-1]
        ksef.tokens.revoke(refs[0])
        assert [t.reference_number for t in ksef.tokens.list(statuses=["Revoked"])] == [refs[0]]
        assert [t.reference_number for t in ksef.tokens.list(description="TOKEN 03")] == [refs[3]]
        assert len(list(ksef.tokens.list(author_identifier=NIP[:5], author_identifier_type="Nip"))) == 12

    def test_bad_arguments_fail_before_any_request(self, ksef: KSeF) -> None:
        sent = ksef.send_state.requests_sent
        with pytest.raises(ValueError, match="page_size"):
            ksef.tokens.list(page_size=5)
        with pytest.raises(ValueError, match="description"):
            ksef.tokens.list(description="ab")
        with pytest.raises(ValueError, match="statuses"):
            ksef.tokens.list(statuses=["Sleeping"])
        with pytest.raises(ValueError, match="author_identifier_type"):
            ksef.tokens.list(author_identifier_type="Regon")
        with pytest.raises(ValueError, match=r"(?i)reference"):
            ksef.tokens.wait_active("not-a-reference")
        assert ksef.send_state.requests_sent == sent


@pytest.mark.anyio
async def test_async_wait_active_and_list(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    backend.transitions.token_reads = 2
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        created = await client.tokens.create(["InvoiceRead"], "async token")
        assert [t.status async for t in client.tokens.list()] == ["Pending"]
        assert (await client.tokens.wait_active(created.reference_number, interval=2)).status == "Active"
        assert fake_time.sleeps == [2]
        assert [t.status async for t in client.tokens.list(statuses=["Active"])] == ["Active"]
    async with AsyncKSeF(base_url=ksef_server.base_url, sleep=fake_time.asleep, clock=fake_time.clock) as client:
        await client.auth.login_with_token(created.token, context_nip=NIP)
