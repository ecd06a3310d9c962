"""``make fuzz`` (SDK half): the emulator's real answers with one value of the wrong JSON type
(review of hostile servers, finding 7). Each example replaces one value, anywhere in one of the
first answers of a call (a field, an item, a whole object or list), by a value of another JSON
type; the call must end in a ``KSeFError`` or a result, never a ``TypeError``, ``AttributeError``
or another exception from deeper in the SDK. docs/security.md: answers' "shapes are checked
(``ResponseFormatError`` for anything the spec does not allow, never an ``AttributeError``,
``KeyError`` ...)".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksef_client import KSeF, KSeFError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime
from tests.hostile import Tamper

FULL = os.environ.get("KSEF_FUZZ") == "full"
EXAMPLES = 200 if FULL else 10
# One value of each JSON type (bool apart from the numbers: a JSON boolean is no integer).
WRONG: list[Any] = [None, True, 7, 1.5, "x", [1], {"a": 1}]
SINCE = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
RUNS = itertools.count()

Call = Callable[[KSeF, str, Path], Any]


def _json_type(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else type(value).__name__


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every value's place in a JSON document (the root left out), in document order."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from _paths(child, (*path, key))


def _replaced(body: Any, which: int, pick: int) -> Any:
    """``body`` with its ``which``-th value (modulo their number) replaced by the first of ``WRONG``,
    from ``pick`` on, of another JSON type."""
    paths = list(_paths(body))
    if not paths:
        return body
    *parents, last = paths[which % len(paths)]
    node = body
    for key in parents:
        node = node[key]
    old = node[last]
    others = (v for v in itertools.islice(itertools.cycle(WRONG), pick, None) if _json_type(v) != _json_type(old))
    node[last] = next(others)
    return body


class OneWrongValue:
    """A ``Tamper`` swap: the ``answer``-th JSON answer of the API (2xx) gets one value replaced."""

    def __init__(self, answer: int, which: int, pick: int) -> None:
        self.answer, self.which, self.pick = answer, which, pick
        self.seen = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if not request.url.path.startswith("/v2/") or not 200 <= response.status_code < 300:
            return None
        if "json" not in response.headers.get("content-type", ""):
            return None
        with self.lock:
            self.seen += 1
            if self.seen - 1 != self.answer:
                return None
        body = _replaced(json.loads(response.read()), self.which, self.pick)
        return httpx.Response(response.status_code, json=body, request=request)


def _export(ksef: KSeF, reference: str, directory: Path) -> Any:
    return ksef.invoices.export(directory / "export", date_from=SINCE, timeout=30, interval=1)


def _send_online(ksef: KSeF, reference: str, directory: Path) -> Any:
    with ksef.online_session() as session:
        session.send(sample_invoice("WT/ONLINE"))
    return session.outcomes()


CALLS: dict[str, Call] = {
    "sessions.get": lambda k, r, d: k.sessions.get(r),
    "sessions.wait": lambda k, r, d: k.sessions.wait(r, timeout=30, interval=1),
    "sessions.list": lambda k, r, d: list(itertools.islice(k.sessions.list("Batch"), 5)),
    "sessions.invoices": lambda k, r, d: list(k.sessions.invoices(r)),
    "sessions.outcomes": lambda k, r, d: k.sessions.outcomes(r),
    "upo.get_session_upo": lambda k, r, d: k.upo.get_session_upo(r),
    "upo.get_session_upo_xml": lambda k, r, d: k.upo.get_session_upo_xml(r),
    "upo.save_session_upo": lambda k, r, d: k.upo.save_session_upo(r, d / "upo"),
    "upo.save_invoice_upos": lambda k, r, d: k.upo.save_invoice_upos(r, d / "invoice-upos", concurrency=1),
    "invoices.query": lambda k, r, d: list(itertools.islice(k.invoices.query("Subject1", date_from=SINCE), 5)),
    "invoices.export": _export,
    "send_batch": lambda k, r, d: k.send_batch([sample_invoice("WT/BATCH")], wait=True, timeout=30),
    "online_session": _send_online,
    "limits.context": lambda k, r, d: k.limits.context(),
    "tokens.create": lambda k, r, d: k.tokens.create(["InvoiceRead"], "wrong types fuzz"),
}


@pytest.mark.parametrize("name", list(CALLS))
@settings(
    max_examples=EXAMPLES,
    derandomize=not FULL,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answer=st.integers(0, 3), which=st.integers(0, 10_000), pick=st.integers(0, len(WRONG) - 1))
def test_a_value_of_the_wrong_type_ends_in_a_ksef_error(
    name: str,
    answer: int,
    which: int,
    pick: int,
    ksef: KSeF,
    ksef_server: ThreadedServer,
    backend: KSeFBackend,
    tmp_path: Path,
) -> None:
    reference = _sent(ksef)
    directory = tmp_path / f"run-{next(RUNS)}"
    directory.mkdir()
    fake = FakeTime()
    with (
        KSeF(
            base_url=ksef_server.base_url,
            access_token=backend.mint_access_token(NIP),
            transport=Tamper(OneWrongValue(answer, which, pick)),
            sleep=fake.sleep,
            clock=fake.clock,
            max_retries=0,
        ) as hostile,
        contextlib.suppress(KSeFError),  # anything else fails the test
    ):
        CALLS[name](hostile, reference, directory)


_SENT: dict[int, str] = {}


def _sent(ksef: KSeF) -> str:
    """One processed batch session of two invoices per test (the backend is reset between tests)."""
    key = id(ksef)
    if key not in _SENT:
        _SENT.clear()
        _SENT[key] = ksef.send_batch([sample_invoice(f"WT/{i}") for i in range(2)], wait=True).reference_number
    return _SENT[key]
