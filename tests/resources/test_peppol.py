"""``ksef.peppol.providers``: GET /peppol/query, "Zwraca listę dostawców usług Peppol zarejestrowanych
w systemie", paged by ``pageOffset`` (minimum 0) and ``pageSize`` (10..100) with ``hasMore``."""

from __future__ import annotations

import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP
from tests.helpers import FakeTime


def _register(backend: KSeFBackend, count: int) -> list[str]:
    ids = [f"PPL{n:06d}" for n in range(count)]
    for n, provider in enumerate(ids):
        backend.testdata.state.peppol_providers.append(
            {"id": provider, "name": f"Provider {n}", "dateCreated": "2026-01-01T00:00:00Z"}
        )
    return ids


def test_every_provider_page_by_page(ksef: KSeF, backend: KSeFBackend) -> None:
    ids = _register(backend, 25)
    sent = ksef.send_state.requests_sent
    found = list(ksef.peppol.providers(page_size=10))
    assert [p.id for p in found] == ids
    assert ksef.send_state.requests_sent == sent + 3
    assert found[0].name == "Provider 0" and found[0].date_created.year == 2026


def test_a_walk_resumes_at_its_cursor_with_another_page_size(ksef: KSeF, backend: KSeFBackend) -> None:
    ids = _register(backend, 25)
    walk = ksef.peppol.providers(page_size=10)
    first = next(walk.pages())
    assert walk.cursor == 10
    rest = list(ksef.peppol.providers(page_size=20, cursor=walk.cursor))
    assert [p.id for p in first.items + rest] == ids


@pytest.mark.parametrize(
    ("options", "named"),
    [({"page_size": 9}, "page_size"), ({"page_size": 101}, "page_size"), ({"cursor": -1}, "cursor"),
     ({"cursor": "10"}, "cursor")],
)  # fmt: skip
def test_bad_arguments_send_nothing(ksef: KSeF, options: dict[str, object], named: str) -> None:
    sent = ksef.send_state.requests_sent
    with pytest.raises(ValueError, match=named):
        ksef.peppol.providers(**options)  # type: ignore[arg-type]
    assert ksef.send_state.requests_sent == sent


@pytest.mark.anyio
async def test_the_async_client_walks_them_the_same_way(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    ids = _register(backend, 12)
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        sent = client.send_state.requests_sent
        with pytest.raises(ValueError, match="page_size"):
            client.peppol.providers(page_size=1000)
        assert client.send_state.requests_sent == sent
        assert [p.id async for p in client.peppol.providers(page_size=10)] == ids
        assert client.send_state.requests_sent == sent + 2
