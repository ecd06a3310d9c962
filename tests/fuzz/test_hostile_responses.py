"""``make fuzz`` (SDK half): hostile answers to every SDK resource call. Each request gets an
answer drawn by hypothesis (bad JSON, wrong types, deep nesting, huge numbers, lone surrogates,
hostile names, any status and headers); every call must end in a ``KSeFError`` or a result, never
another exception. Endless bodies must stop at their cap with the memory within it.

``KSEF_FUZZ=full`` (``make fuzz``) runs many examples per call; the quick profile runs in ``make test``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksef_client import BodyLimits, KSeF, KSeFError
from ksef_client.identifiers import make_ksef_number
from tests.helpers import FakeTime
from tests.hostile import EndlessBody

FULL = os.environ.get("KSEF_FUZZ") == "full"
EXAMPLES = 300 if FULL else 12
NIP = "5265877635"
REF = "20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"
REF2 = "20250625-EE-2C3E6C8000-B8C5A3D9A3-0F"
NUMBER = make_ksef_number(NIP, "20250916", "010040741B3E")
NUMBER2 = make_ksef_number(NIP, "20250916", "010040741B3F")
SINCE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

Call = Callable[[KSeF, Path], Any]


def _first(items: Any) -> list[Any]:
    return list(itertools.islice(items, 3))


CALLS: dict[str, Call] = {
    "invoices.get": lambda k, d: k.invoices.get(NUMBER),
    "invoices.query": lambda k, d: _first(k.invoices.query(date_from=SINCE)),
    "invoices.export": lambda k, d: k.invoices.export(d, date_from=SINCE, timeout=3, interval=1),
    "invoices.sync": lambda k, d: k.invoices.sync("Subject1", d / "state.json", d, start=SINCE, timeout=3, interval=1),
    "sessions.get": lambda k, d: k.sessions.get(REF),
    "sessions.list": lambda k, d: _first(k.sessions.list()),
    "sessions.invoices": lambda k, d: _first(k.sessions.invoices(REF)),
    "sessions.invoice": lambda k, d: k.sessions.invoice(REF, REF2),
    "sessions.wait": lambda k, d: k.sessions.wait(REF, timeout=3, interval=1),
    "upo.get_invoice_upo": lambda k, d: k.upo.get_invoice_upo(REF, ksef_number=NUMBER),
    "upo.get_invoice_upo(ref)": lambda k, d: k.upo.get_invoice_upo(REF, invoice_reference_number=REF2),
    "upo.get_session_upo": lambda k, d: k.upo.get_session_upo(REF),
    "upo.save_session_upo": lambda k, d: k.upo.save_session_upo(REF, d / "upo"),
    "upo.save_invoice_upos": lambda k, d: k.upo.save_invoice_upos(REF, d / "upo", concurrency=2),
    "tokens.create": lambda k, d: k.tokens.create(["InvoiceRead"], "fuzz token"),
    "tokens.get": lambda k, d: k.tokens.get(REF),
    "tokens.revoke": lambda k, d: k.tokens.revoke(REF),
    "limits.context": lambda k, d: k.limits.context(),
    "limits.subject": lambda k, d: k.limits.subject(),
    "limits.rate": lambda k, d: k.limits.rate(),
    "collective_identifiers.create": lambda k, d: k.collective_identifiers.create([NUMBER, NUMBER2]),
    "collective_identifiers.query": lambda k, d: _first(k.collective_identifiers.query(SINCE, SINCE)),
    "collective_identifiers.of_invoice": lambda k, d: _first(k.collective_identifiers.of_invoice(NUMBER)),
    "auth.public_key_certificates": lambda k, d: k.auth.public_key_certificates(refresh=True),
    "auth.login_with_token": lambda k, d: k.auth.login_with_token("tok", context_nip=NIP, timeout=3, interval=1),
    "online_session": lambda k, d: k.online_session().__enter__(),
}

# Names a hostile server would put where a KSeF number or reference number belongs.
NAMES = st.sampled_from(
    ["../outside/x", "/etc/passwd", "..", "a/b", "C:\\x", "x\x00y", "\udc00", NUMBER, REF, "", " " * 3, "%2e%2e%2f"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    NAMES,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "status",
                    "code",
                    "invoices",
                    "ksefNumber",
                    "referenceNumber",
                    "upo",
                    "pages",
                    "items",
                    "hasMore",
                    "continuationToken",
                    "sessions",
                    "package",
                    "parts",
                    "url",
                    "token",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)
RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"[" * 5000,
            b'{"a":' * 3000,
            b"1e999999",
            b"9" * 5000,
            b'"\\ud800"',
            b'{"status": {"code": "\\udc00"}}',
            b"<html><body>502 Bad Gateway</body></html>",
            b"\xff\xfe<\x00",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>',
        ]
    ),
)


@st.composite
def answers(draw: st.DrawFn) -> tuple[int, dict[str, str], bytes]:
    status = draw(st.sampled_from([200, 200, 200, 201, 202, 204, 400, 401, 403, 404, 410, 429, 500, 502]))
    if draw(st.booleans()):
        body = json.dumps(draw(JSON_VALUES), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    else:
        body = draw(RAW_BODIES)
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "application/problem+json", "text/html",
                                                     "application/xml", "application/octet-stream"]))}  # fmt: skip
    if draw(st.booleans()):
        headers["Retry-After"] = draw(
            st.sampled_from(["0", "-1", "1e309", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", "x"])
        )
    if draw(st.booleans()):
        headers["x-ms-meta-hash"] = draw(
            st.sampled_from(["", "AAAA", "not base64 !", "\udc00".encode("utf-8", "surrogatepass").decode("latin-1")])
        )
    return status, headers, body


def _client(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> KSeF:
    fake = FakeTime()
    return KSeF(
        base_url="https://ksef.example/v2",
        access_token="t",
        storage_hosts=["ksef.example"],
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.clock,
        max_retries=1,
        **options,
    )


@pytest.mark.parametrize("name", list(CALLS))
@settings(
    max_examples=EXAMPLES,
    derandomize=not FULL,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_answers_end_in_ksef_errors(name: str, data: st.DataObject, tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status, headers, body = data.draw(answers())
        raw = [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]  # any bytes, as on the wire
        return httpx.Response(status, headers=raw, content=body)

    directory = tmp_path / f"run-{id(data)}"
    directory.mkdir(exist_ok=True)
    with _client(handler) as ksef, contextlib.suppress(KSeFError):  # anything else fails the test
        CALLS[name](ksef, directory)
    assert not list(tmp_path.rglob("outside*")) and not list(tmp_path.rglob("passwd*"))  # nothing written outside


CAP = 256 * 1024


@pytest.mark.parametrize("name", list(CALLS))
def test_endless_bodies_stop_at_their_cap(name: str, tmp_path: Path) -> None:
    bodies: list[EndlessBody] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(EndlessBody(b"{" * 65536))
        return httpx.Response(200, headers={"Content-Type": "application/json"}, stream=bodies[-1])

    limits = BodyLimits(json=CAP, invoice=CAP, upo=CAP, metadata=CAP)
    with _client(handler, body_limits=limits) as ksef:
        with contextlib.suppress(KSeFError):  # once first: imports and caches are not the body's memory
            CALLS[name](ksef, tmp_path)
        bodies.clear()
        tracemalloc.start()
        try:
            with pytest.raises(KSeFError):
                CALLS[name](ksef, tmp_path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert bodies, "the call sent nothing"
    assert max(b.sent for b in bodies) <= CAP + 65536
    assert peak < 8 * CAP, f"{name}: peak {peak} bytes"
    print(f"{name}: {len(bodies)} request(s), peak {peak / 1024:.0f} KiB")
