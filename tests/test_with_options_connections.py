"""``with_options`` copies send through the connections of the client they were made from (review
s14-async, 3).

The per-call idiom the docs give, ``ksef.with_options(deadline=10).invoices.get(...)``, made each
copy a connection pool of its own that nothing closed: a new TCP (TLS) connection a call, and a
``ResourceWarning`` for an unclosed socket (and asyncio transport) when the copy was collected.
A copy that sends the same way (the same ``base_url``, ``verify=``, ``transport=``) now borrows
the parent's connections (its close leaves them open, the parent's closes them); a copy with
another of those has its own, which its own close closes.

The emulator's access log tells the connections apart: it names each request's client port (the
requests of a test follow each other well within uvicorn's 5 s keep-alive).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator

import anyio
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.errors import APITimeoutError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP

# A socket (or asyncio transport) left open is collected with a ResourceWarning, raised inside
# its __del__: pytest reports that as an unraisable exception.
pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]


class _AccessLog(logging.Handler):
    """The emulator's access log (uvicorn's): the client address (host:port) of each request."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.clients: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.args, tuple) and record.args:
            self.clients.append(str(record.args[0]))

    def connections(self) -> int:
        """How many connections the requests logged came over."""
        return len(set(self.clients))


@pytest.fixture
def access_log(ksef_server: ThreadedServer) -> Iterator[_AccessLog]:
    """The client addresses of the requests the emulator answers during the test."""
    log = logging.getLogger("uvicorn.access")
    handler, level = _AccessLog(), log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def _client(server: ThreadedServer, backend: KSeFBackend) -> KSeF:
    return KSeF(base_url=server.base_url, access_token=backend.mint_access_token(NIP))


def _aclient(server: ThreadedServer, backend: KSeFBackend) -> AsyncKSeF:
    return AsyncKSeF(base_url=server.base_url, access_token=backend.mint_access_token(NIP))


def test_per_call_copies_reuse_the_clients_connection(
    ksef_server: ThreadedServer, backend: KSeFBackend, access_log: _AccessLog
) -> None:
    with _client(ksef_server, backend) as ksef:
        ksef.limits.context()
        for _ in range(3):
            ksef.with_options(deadline=10).limits.context()  # the docs' per-call idiom, never closed
        ksef.with_options(max_retries=0).with_options(timeout=60).limits.context()  # a copy's copy
        gc.collect()  # the copies are gone: nothing of theirs was left open
        closed = ksef.with_options(deadline=10)
        closed.limits.context()
        closed.close()  # leaves the connection open: the client's
        with pytest.raises(RuntimeError, match="closed"):
            closed.limits.context()
        ksef.limits.context()  # the client goes on over its connection
        assert len(access_log.clients) == 7
        assert access_log.connections() == 1
    after = ksef.with_options(deadline=10)  # made after the client was closed
    with pytest.raises(RuntimeError, match="with_options"):
        after.limits.context()  # it opens no connection that nobody would close
    assert len(access_log.clients) == 7
    gc.collect()


@pytest.mark.anyio
async def test_per_call_copies_reuse_the_clients_connection_async(
    ksef_server: ThreadedServer, backend: KSeFBackend, access_log: _AccessLog
) -> None:
    async with _aclient(ksef_server, backend) as ksef:
        await ksef.limits.context()
        for _ in range(3):
            await ksef.with_options(deadline=10).limits.context()
        await ksef.with_options(max_retries=0).with_options(timeout=60).limits.context()
        gc.collect()
        closed = ksef.with_options(deadline=10)
        await closed.limits.context()
        await closed.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await closed.limits.context()
        await ksef.limits.context()
        assert len(access_log.clients) == 7
        assert access_log.connections() == 1
    after = ksef.with_options(deadline=10)
    with pytest.raises(RuntimeError, match="with_options"):
        await after.limits.context()
    assert len(access_log.clients) == 7
    gc.collect()


@pytest.mark.filterwarnings("ignore::ksef_client._settings.InsecureTransportWarning")  # verify=False
def test_a_copy_with_its_own_connections_is_closed_by_its_own_close(
    ksef_server: ThreadedServer, backend: KSeFBackend, access_log: _AccessLog
) -> None:
    # verify= shapes httpx's transport (the TLS context): such a copy cannot borrow the client's.
    with _client(ksef_server, backend) as ksef:
        ksef.limits.context()
        other = ksef.with_options(verify=False)
        with other:
            other.limits.context()
            other.with_options(deadline=10).limits.context()  # its copies borrow its connections
        assert access_log.connections() == 2
        gc.collect()  # closed by its own close: nothing left open to warn about
        ksef.limits.context()  # the client's connection was not the copy's to close
        assert access_log.connections() == 2


@pytest.mark.filterwarnings("ignore::ksef_client._settings.InsecureTransportWarning")  # verify=False
@pytest.mark.anyio
async def test_a_copy_with_its_own_connections_is_closed_by_its_own_close_async(
    ksef_server: ThreadedServer, backend: KSeFBackend, access_log: _AccessLog
) -> None:
    async with _aclient(ksef_server, backend) as ksef:
        await ksef.limits.context()
        other = ksef.with_options(verify=False)
        async with other:
            await other.limits.context()
            await other.with_options(deadline=10).limits.context()
        assert access_log.connections() == 2
        gc.collect()
        await ksef.limits.context()
        assert access_log.connections() == 2


class _ClosesCounted(httpx.HTTPTransport):
    """httpx's transport, counting its closes."""

    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


def test_a_copys_close_leaves_the_transport_it_was_given_open(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    # Was: a copy wrapped the client's transport= as its own, and closing the copy closed it
    # under the client.
    transport = _ClosesCounted()
    token = backend.mint_access_token(NIP)
    with KSeF(base_url=ksef_server.base_url, access_token=token, transport=transport) as ksef:
        with ksef.with_options(deadline=10) as copy:
            copy.limits.context()
        assert transport.closes == 0
        ksef.limits.context()
    assert transport.closes > 0
    given = _ClosesCounted()
    with KSeF(base_url=ksef_server.base_url, access_token=token, transport=transport) as ksef:
        with ksef.with_options(transport=given) as own:  # another transport: the copy's own
            own.limits.context()
        assert given.closes > 0


def test_a_copys_timeout_holds_over_the_borrowed_connection(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The timeout is on the copy's httpx client, which passes it with each request: the shared
    # connection pool applies the copy's, not the client's.
    gave_up = threading.Event()

    async def delay(seconds: float) -> None:  # the fault's delay lasts until the client gave up
        await anyio.to_thread.run_sync(gave_up.wait, 10)

    monkeypatch.setattr(anyio, "sleep", delay)
    with _client(ksef_server, backend) as ksef:
        ksef.limits.context()
        backend.faults.add(200, operation="limits.get_context_limits", delay=5, times=1)
        hasty = ksef.with_options(timeout=0.2, max_retries=0)
        try:
            with pytest.raises(APITimeoutError):
                hasty.limits.context()
        finally:
            gave_up.set()
        ksef.limits.context()


def test_a_copy_whose_client_closes_while_it_waits_to_retry_sends_nothing_more(
    ksef_server: ThreadedServer, backend: KSeFBackend, access_log: _AccessLog
) -> None:
    # Review s14-final, 2: the check ran once a call, so a repeat after the client closed went out
    # through the closed pool (a new connection nobody closed) and the call succeeded.
    ksef = _client(ksef_server, backend)
    ksef.limits.context()
    backend.faults.add(429, operation="limits.get_context_limits", retry_after=1)
    copy = ksef.with_options(sleep=lambda _: ksef.close())  # the client closes during the wait
    with pytest.raises(RuntimeError, match="with_options"):
        copy.limits.context()
    assert len(access_log.clients) == 2  # the first call and the 429: no repeat went out
    gc.collect()


def test_async_copies_used_in_other_event_loops_than_their_clients_have_connections_of_their_own(
    ksef_server: ThreadedServer, backend: KSeFBackend, access_log: _AccessLog
) -> None:
    # Review s14-final, 1: an async pool is bound to the loop it first sent in. asyncio.run per
    # job (or a loop per thread) with a client's copies: the second loop's copy found the first
    # loop's connection ("Event loop is closed") and left its socket open.
    ksef = AsyncKSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP))

    async def job() -> None:
        async with ksef.with_options(deadline=10) as copy:
            await copy.limits.context()

    for _ in range(3):
        anyio.run(job)
    assert len(access_log.clients) == 3 and access_log.connections() == 3  # one each, each closed
    anyio.run(ksef.aclose)
    gc.collect()
