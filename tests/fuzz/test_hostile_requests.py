"""The emulator under hostile input behaves like a service, not a debugger (issue 17, points 9-12):
KSeF's 400/21405 with a problem body for bad input, never a 500; bodies capped before they are
read whole; the control endpoints closed to web pages; secret files readable by their owner only.

``make fuzz`` (``KSEF_FUZZ=full``) draws 100 hostile bodies per operation instead of 3.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksef_client._generated.operations import OPERATIONS
from ksef_client.mock import KSeFBackend
from ksef_client.mock.hosts import is_loopback
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.server import ThreadedServer, exposure_warning

NIP = "5265877635"
EXAMPLES = 100 if os.environ.get("KSEF_FUZZ") == "full" else 3
BODY_OPERATIONS = sorted(key for key, op in OPERATIONS.items() if op.method in ("POST", "PUT"))


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """A client of the emulator served by uvicorn on loopback, as users run it (strict: an error
    answer that breaks the spec would be a 500 too)."""
    with ThreadedServer(strict=True) as server, httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
        http.headers["Authorization"] = f"Bearer {server.backend.mint_access_token(NIP)}"
        yield http


def _path(operation: str) -> str:
    path = OPERATIONS[operation].path
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "20261201-SO-0000000000-0000000000-00" + path[end + 1 :]
    return "/v2" + path


def _nested(depth: int) -> str:
    return '{"a":' + "[" * depth + "]" * depth + "}"


HOSTILE_BODIES = st.one_of(
    st.integers(min_value=200, max_value=3000).map(_nested),
    st.sampled_from(['{"description": "\\udc00\\ud800x"}', '"\\udfff"', '{"k": "\\ud83d"}']),
    st.sampled_from(['{"pageSize": 1e400}', '{"x": ' + "9" * 5000 + "}", '{"x": -1e309}', "NaN", "[Infinity]"]),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ).map(json.dumps),
    st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
)


@pytest.mark.parametrize("operation", BODY_OPERATIONS)
def test_hostile_bodies_are_400_never_500(client: httpx.Client, operation: str) -> None:
    method = OPERATIONS[operation].method

    @given(body=HOSTILE_BODIES)
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    def send(body: str) -> None:
        answer = client.request(method, _path(operation), content=body.encode("utf-8", "surrogatepass"),
                                headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code < 500, f"{operation}: {answer.status_code} {answer.text[:300]}"

    send()


@pytest.mark.parametrize("depth", [256, 300, 5000, 100_000])
def test_deep_nesting_is_a_21405(client: httpx.Client, depth: int) -> None:
    answer = client.post("/v2/tokens", content=_nested(depth), headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "21405" in answer.text


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0660", "1e3", "-0", "9" * 40, " 10"])
@pytest.mark.parametrize("path", ["/v2/sessions?sessionType=Online&pageSize=", "/v2/tokens?pageSize=",
                                  "/v2/peppol/query?pageOffset="])  # fmt: skip
def test_odd_numbers_in_query_parameters_are_400(client: httpx.Client, path: str, value: str) -> None:
    answer = client.get(path + value)
    assert answer.status_code in (200, 400), answer.text[:200]  # never a 500 (a Unicode digit used to be)


def test_a_lone_surrogate_is_a_21405(client: httpx.Client) -> None:
    body = '{"subjectType": "Subject1", "dateRange": {"dateType": "Issue", "from": "\\udc00"}}'
    answer = client.post("/v2/invoices/query/metadata", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "21405" in answer.text


def test_an_oversized_body_is_refused_from_its_declared_length(client: httpx.Client) -> None:
    answer = client.post("/v2/auth/xades-signature", content=b"<a/>" * 300_000,
                         headers={"Content-Type": "application/xml"})  # fmt: skip
    assert answer.status_code == 400 and "1000000" in answer.text


def test_an_oversized_body_without_a_length_is_cut_off_while_read(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65_536  # 2.6 MB, streamed with no Content-Length

    answer = client.post("/v2/tokens", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "21405" in answer.text


# --- /_mock/* ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [("/_mock/tokens", {"nip": NIP, "ttlSeconds": 1e300}), ("/_mock/faults", {"status": 1e300}),
     ("/_mock/faults", {"random": {"rate": "x"}}), ("/_mock/transitions", {"sessionReads": "x"}),
     ("/_mock/transitions", {"sessionReads": 10**30}), ("/_mock/rate-limits", {"scale": [1]}),
     ("/_mock/tokens", {"permissions": "InvoiceRead", "nip": NIP}), ("/_mock/tokens", [1, 2])],
)  # fmt: skip
def test_control_endpoints_refuse_bad_values_with_400(client: httpx.Client, path: str, body: Any) -> None:
    assert client.post(path, json=body).status_code == 400


def test_control_endpoints_refuse_what_a_web_page_can_send(client: httpx.Client) -> None:
    plain = client.post("/_mock/reset", content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415  # a cross-origin "simple" request
    rebound = client.post("/_mock/tokens", json={"nip": NIP}, headers={"Host": "attacker.example:8000"})
    assert rebound.status_code == 403  # DNS rebinding: the page's own name in Host
    assert client.post("/_mock/tokens", json={"nip": NIP}, headers={"Host": "localhost:8000"}).status_code == 200


def test_an_emulator_bound_beyond_loopback_says_so() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert exposure_warning("127.0.0.1") is None
    warning = exposure_warning("0.0.0.0")
    assert warning is not None and "WARNING" in warning and "0.0.0.0" in warning


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_the_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    fresh = tmp_path / "state.sqlite"
    SQLiteStore(fresh).save(KSeFBackend())
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    widened = tmp_path / "old.sqlite"
    widened.touch(mode=0o644)
    widened.chmod(0o644)
    SQLiteStore(widened)
    assert stat.S_IMODE(widened.stat().st_mode) == 0o600
