"""The SDK's httpx clients (``ksef_client._httpx_clients``): cookies and URLs as httpx has them,
without httpx's per-request costs that KSeF never needs."""

from __future__ import annotations

import http.cookiejar

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ksef_client import AsyncKSeF, KSeF
from ksef_client._httpx_clients import KEPT_URLS, AsyncClient, Client, _joined_url

BASE = "https://ksef-test.mf.gov.pl/api/v2"


class CountingJar(http.cookiejar.CookieJar):
    """A cookie jar that counts how often httpx asks it to read an answer."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def extract_cookies(self, response: object, request: object) -> None:  # type: ignore[override]
        self.reads += 1
        super().extract_cookies(response, request)  # type: ignore[arg-type]


def answer(request: httpx.Request) -> httpx.Response:
    """``/login`` sets a cookie; every path echoes the Cookie header it was sent."""
    headers = {"Set-Cookie": "affinity=abc; Path=/"} if request.url.path.endswith("/login") else {}
    return httpx.Response(200, headers=headers, text=request.headers.get("Cookie", ""))


def test_a_cookie_an_answer_sets_is_kept_and_sent_back_and_other_answers_are_not_read() -> None:
    jar = CountingJar()
    with Client(base_url=BASE, cookies=jar, transport=httpx.MockTransport(answer)) as client:
        assert client.get("/status").text == ""
        assert jar.reads == 0  # plain httpx wraps every answer for the jar: 30 µs each
        client.get("/login")
        assert jar.reads == 1
        assert client.get("/status").text == "affinity=abc"
        assert [cookie.name for cookie in jar] == ["affinity"]  # the jar given, not a copy


@pytest.mark.anyio
async def test_the_async_client_keeps_cookies_the_same_way() -> None:
    jar = CountingJar()
    async with AsyncClient(base_url=BASE, cookies=jar, transport=httpx.MockTransport(answer)) as client:
        await client.get("/status")
        await client.get("/login")
        assert (await client.get("/status")).text == "affinity=abc"
        assert jar.reads == 1


PATHS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40).map(lambda s: "/" + s)


def joined(client: httpx.Client, path: str) -> str:
    """The URL a request to ``path`` goes to, or the error that refuses it."""
    try:
        return str(client.build_request("GET", path).url)
    except httpx.InvalidURL as error:
        return f"InvalidURL: {error}"


# Made once (an httpx client loads its TLS context): the paths of every example are kept by ours.
OURS, THEIRS = Client(base_url=BASE), httpx.Client(base_url=BASE)


@given(paths=st.lists(PATHS, min_size=1, max_size=5))
def test_a_path_is_joined_to_base_url_as_httpx_joins_it_however_often_it_is_sent(paths: list[str]) -> None:
    for path in paths + paths:
        assert joined(OURS, path) == joined(THEIRS, path)


def test_a_path_is_joined_once_and_again_after_base_url_changes() -> None:
    client = Client(base_url=BASE)
    first = client._merge_url("/sessions/online")
    assert client._merge_url("/sessions/online") is first  # kept, not parsed again
    client.base_url = httpx.URL("http://127.0.0.1:8000/v2")
    assert str(client.build_request("POST", "/sessions/online").url) == "http://127.0.0.1:8000/v2/sessions/online"


@pytest.mark.parametrize("kind", [Client, AsyncClient])
def test_httpx_asks_the_client_to_join_a_path_and_it_joins_it_once(
    kind: type[Client | AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    joins: list[str] = []
    plain = httpx._client.BaseClient._merge_url

    def counted(client: httpx.Client, url: httpx.URL | str) -> httpx.URL:
        joins.append(str(url))
        return plain(client, url)

    monkeypatch.setattr(httpx._client.BaseClient, "_merge_url", counted)
    client = kind(base_url=BASE)
    for _ in range(3):
        assert str(client.build_request("GET", "/sessions/online").url) == f"{BASE}/sessions/online"
    assert joins == ["/sessions/online"]


def test_a_path_joined_while_another_thread_sets_base_url_is_not_kept_for_the_new_base() -> None:
    old, new = "https://old.example/v2", "https://new.example/v2"
    client = Client(base_url=old)

    def join_meanwhile(url: httpx.URL | str) -> httpx.URL:  # this thread joins, another moves base_url
        joined = httpx.Client._merge_url(client, url)
        client.base_url = httpx.URL(new)
        client.build_request("GET", "/other")
        return joined

    assert _joined_url(client, client._joined, "/p", join_meanwhile).host == "old.example"  # the request in flight
    assert client.build_request("GET", "/p").url.host == "new.example"  # the next one


def test_absolute_urls_are_not_kept_and_the_paths_kept_are_bounded() -> None:
    client = Client(base_url=BASE)
    link = "https://storage.example/upo/1?sig=abc"
    assert client._merge_url(link) is not client._merge_url(link)
    for number in range(KEPT_URLS + 5):
        assert str(client.build_request("GET", f"/p/{number}").url) == f"{BASE}/p/{number}"
    assert 0 < len(client._joined.of(client.base_url)) <= KEPT_URLS


def test_the_clients_send_through_these_clients() -> None:
    ksef, aksef = KSeF(access_token="t"), AsyncKSeF(access_token="t")
    assert isinstance(ksef._http, Client) and isinstance(ksef._storage, Client)
    assert isinstance(aksef._http, AsyncClient) and isinstance(aksef._storage, AsyncClient)
    ksef.close()
