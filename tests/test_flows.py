"""Flows fed canned answers: no client, no HTTP; each step is answered by the test."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._flows import (
    Call,
    Extend,
    Flow,
    FreshDeadline,
    Now,
    PaceWithin,
    Retry,
    Sleep,
    Step,
    all_items,
    arun,
    blocking,
    offset_pages,
    poll_flow,
    run,
)
from ksef_client._generated.api.certificates import query_certificates
from ksef_client._generated.api.online_session import close_online_session
from ksef_client._generated.api.permissions import query_person_permissions
from ksef_client._generated.api.sessions_status import get_session_status
from ksef_client._generated.types import Response
from ksef_client.errors import (
    APIConnectionError,
    KSeFError,
    NotFoundError,
    PollTimeoutError,
    ResponseFormatError,
    ThrottleWaitTooLongError,
)
from ksef_client.sending import close_flow
from tests.helpers import FakeTime

REF = "20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"


def drive(flow: Flow[Any], answer: Callable[[Step], Any]) -> tuple[Any, list[Step]]:
    """Run ``flow``, answering each step with ``answer(step)`` (an exception it returns is thrown
    into the flow); returns the flow's value and the steps it took."""
    steps: list[Step] = []
    result: Any = None
    try:
        step = flow.send(None)
        while True:
            steps.append(step)
            result = answer(step)
            step = flow.throw(result) if isinstance(result, KSeFError) else flow.send(result)
    except StopIteration as stop:
        return stop.value, steps


def _response(parsed: Any) -> Response[Any]:
    return Response(status_code=HTTPStatus.OK, content=b"", headers=httpx.Headers(), parsed=parsed)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def answer(self, statuses: list[Any]) -> Callable[[Step], Any]:
        def respond(step: Step) -> Any:
            if isinstance(step, Now):
                return self.now
            if isinstance(step, Extend | PaceWithin):
                return None
            if isinstance(step, Sleep):
                self.now += step.seconds
                return True
            return statuses.pop(0)

        return respond


def _read(value: Any) -> Flow[Any]:
    return (yield Call(get_session_status, {"reference_number": REF}))


class TestPoll:
    def test_stops_at_the_first_final_status(self) -> None:
        clock = Clock()
        value, steps = drive(
            poll_flow(lambda: _read(None), lambda s: s == "done", str, 10, 2), clock.answer(["a", "b", "done"])
        )
        assert value == "done"
        assert [s.seconds for s in steps if isinstance(s, Sleep)] == [2, 2]
        # each read's pacing may not pass the poll's end (10 s from 0), and nothing after it
        kinds = [(type(s).__name__, getattr(s, "until", None)) for s in steps if isinstance(s, Call | PaceWithin)]
        assert kinds == [("PaceWithin", 10), ("Call", None), ("PaceWithin", None)] * 3

    def test_times_out_with_the_last_status(self) -> None:
        clock = Clock()
        flow = poll_flow(lambda: _read(None), lambda s: False, lambda s: f"still {s}", 5, 2)
        with pytest.raises(PollTimeoutError, match="still c after 5 s") as caught:
            drive(flow, clock.answer(["a", "b", "c"]))
        assert caught.value.args and clock.now == 4


class _Page:
    def __init__(self, items: list[int], has_more: bool) -> None:
        self.items, self.has_more = items, has_more


class TestPages:
    def test_offset_pages_walk_until_has_more_is_false(self) -> None:
        pages = [_response(_Page([1, 2], True)), _response(_Page([3], False))]
        sent: list[dict[str, Any]] = []

        def answer(step: Step) -> Any:
            assert isinstance(step, Call)
            sent.append(step.kwargs)
            return pages.pop(0)

        items, _ = drive(all_items(offset_pages("operation", "items", 10, {"body": "b"})), answer)
        assert items == [1, 2, 3]
        assert [s["page_offset"] for s in sent] == [0, 1] and sent[0]["body"] == "b"

    def test_the_page_size_is_by_default_the_largest_the_operation_allows(self) -> None:
        # ksef.paginate sent pageSize=100 to any operation: POST /certificates/query refused it
        # (spec: its pageSize "maximum": 50), so paginate(query_certificates, ...) never listed.
        sent: list[dict[str, Any]] = []

        def answer(step: Step) -> Any:
            assert isinstance(step, Call)
            sent.append(step.kwargs)
            return _response(_Page([], False))

        for operation in (query_certificates, query_person_permissions, "not a generated operation"):
            drive(all_items(offset_pages(operation, "items", None, {})), answer)
        assert [s.get("page_size") for s in sent] == [50, 100, None]  # None: the operation's own default
        with pytest.raises(ValueError, match=r"10\.\.50"):
            offset_pages(query_certificates, "items", 100, {})

    def test_the_cursor_counts_items_so_any_page_size_resumes_at_the_same_item(self) -> None:
        # review of ksef.permissions, F3: a bare page number resumed with another page size skipped items.
        # 25 items read in pages of 10: cursor 25 with pages of 10 is page 2 less its first 5 items, and
        # so on for every operation of the spec table (permissions, certificates, ksef.paginate).
        sent: list[dict[str, Any]] = []

        def answer(step: Step) -> Any:
            assert isinstance(step, Call)
            sent.append(step.kwargs)
            return _response(_Page(list(range(10)), True))

        (items, following), _ = drive(offset_pages(query_person_permissions, "items", 10, {})(25), answer)
        assert (sent[0]["page_offset"], sent[0]["page_size"], items, following) == (2, 10, list(range(5, 10)), 30)
        (items, following), _ = drive(offset_pages(query_certificates, "items", None, {})(10), answer)
        assert (sent[1]["page_offset"], sent[1]["page_size"], len(items), following) == (0, 50, 0, 50)
        with pytest.raises(ValueError, match="not a cursor of this listing"):
            drive(offset_pages(query_certificates, "items", None, {})(-1), answer)
        assert len(sent) == 2

    def test_a_page_without_the_list_is_a_format_error(self) -> None:
        with pytest.raises(ResponseFormatError, match="no 'items' list"):
            drive(all_items(offset_pages("operation", "items", 10, {})), lambda step: _response(object()))


class _Status:
    def __init__(self, code: int) -> None:
        self.status = type("S", (), {"code": code})()


class TestClose:
    def _answers(self, closes: list[Any], status_code: int, restarts: int) -> Callable[[Step], Any]:
        granted = {"n": restarts}

        def answer(step: Step) -> Any:
            if isinstance(step, Retry):
                granted["n"] -= 1
                return granted["n"] >= 0
            assert isinstance(step, Call)
            if step.operation is close_online_session:
                return closes.pop(0)
            return _response(_Status(status_code))

        return answer

    def test_a_lost_answer_of_a_close_that_happened_is_not_repeated(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("ksef_client.sending.parsed", lambda response, expected: response.parsed)
        _, steps = drive(close_flow(REF, close_online_session), self._answers([APIConnectionError("lost")], 170, 5))
        assert [type(s).__name__ for s in steps] == ["Call", "Call"]  # the close, then its status

    def test_a_close_that_did_not_happen_is_repeated_as_the_policy_allows(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("ksef_client.sending.parsed", lambda response, expected: response.parsed)
        lost: list[Any] = [APIConnectionError("lost")] * 5
        with pytest.raises(APIConnectionError):
            drive(close_flow(REF, close_online_session), self._answers(lost, 100, 2))
        assert len(lost) == 5 - 3  # the first close and the two restarts the policy granted

    def test_every_attempt_of_a_close_shares_one_budget(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("ksef_client.sending.parsed", lambda response, expected: response.parsed)
        lost = [APIConnectionError("lost"), APIConnectionError("lost"), _response(None)]
        _, steps = drive(close_flow(REF, close_online_session), self._answers(lost, 100, 2))
        calls = [s for s in steps if isinstance(s, Call) and s.operation is close_online_session]
        assert len(calls) == 3 and len({id(s.budget) for s in calls}) == 1


def test_a_misspelled_argument_is_a_type_error_not_a_format_error() -> None:
    from ksef_client import KSeF

    def misspelled() -> Flow[Any]:
        yield Call(get_session_status, {"referance_number": REF})

    with KSeF(base_url="http://ksef.local/v2", transport=httpx.MockTransport(lambda r: httpx.Response(500))) as ksef:
        with pytest.raises(TypeError, match="referance_number"):
            run(misspelled(), ksef)
        assert ksef.send_state.requests_sent == 0


class TestBlocking:
    """``Blocking``: local work that takes long; ``run`` calls it inline, ``arun`` in a worker
    thread, and the flow gets its value or its error either way."""

    @staticmethod
    def _flow(work: Callable[[], Any]) -> Flow[Any]:
        try:
            return (yield from blocking(work))
        except ValueError as error:
            return f"caught {error}"

    @staticmethod
    def _clients(time: FakeTime) -> tuple[KSeF, AsyncKSeF]:
        """Clients whose every request would fail, with a 1 s deadline on ``time``'s clock."""
        options: dict[str, Any] = {"base_url": "http://ksef.local/v2", "deadline": 1, "clock": time.clock}
        answer = httpx.MockTransport(lambda r: httpx.Response(500))
        return KSeF(**options, transport=answer), AsyncKSeF(**options, transport=answer)

    def test_run_calls_it_inline_arun_in_a_worker_thread_neither_against_the_deadline(self) -> None:
        time = FakeTime()
        sync, async_ = self._clients(time)
        threads: list[int] = []

        def work() -> int:
            threads.append(threading.get_ident())
            time.now += 100  # past the call's deadline: local work is not held to it
            return 7

        async def in_async() -> tuple[Any, int]:
            async with async_:
                return await arun(self._flow(work), async_), threading.get_ident()

        with sync:
            assert run(self._flow(work), sync) == 7
        value, loop_thread = anyio.run(in_async)
        assert value == 7
        assert threads[0] == threading.get_ident() and threads[1] != loop_thread

    def test_what_it_raises_is_raised_in_the_flow(self) -> None:
        sync, async_ = self._clients(FakeTime())

        def work() -> None:
            raise ValueError("boom")

        with sync:
            assert run(self._flow(work), sync) == "caught boom"
        assert anyio.run(arun, self._flow(work), async_) == "caught boom"

    @pytest.mark.anyio
    async def test_a_cancelled_arun_waits_for_its_thread(self) -> None:
        # asyncio's task.cancel() passes AnyIO's shield: to_thread.run_sync alone would end the call
        # at once and leave the thread working (for an export: writing into folders the flow's
        # cleanup then races with).
        _, client = self._clients(FakeTime())
        started, release, ended = threading.Event(), threading.Event(), threading.Event()

        def work() -> None:
            started.set()
            release.wait(30)
            ended.set()

        async with client:
            task = asyncio.create_task(arun(self._flow(work), client))
            await anyio.to_thread.run_sync(started.wait)
            task.cancel()
            for _ in range(5):
                await asyncio.sleep(0)  # the cancellation is delivered...
            assert not task.done()  # ...and the call still waits for its thread
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert ended.is_set()


class TestFreshDeadline:
    """``FreshDeadline`` starts the call's deadline again and keeps a ``PaceWithin`` bound (review
    s13: it made a new deadline without it, so the run's next requests were paced past the bound)."""

    @staticmethod
    def _flow() -> Flow[str]:
        now = yield Now()
        yield PaceWithin(now)  # the client's pacing may hold nothing back
        yield FreshDeadline()
        for _ in range(2):  # the second read of the group must wait about 1 s (its limits scaled by 0.1)
            with contextlib.suppress(NotFoundError):
                yield Call(get_session_status, {"reference_number": REF})
        return "both sent"

    @staticmethod
    def _options(time: FakeTime) -> dict[str, Any]:
        answer = httpx.MockTransport(lambda r: httpx.Response(404))
        return {
            "base_url": "http://ksef.local/v2",
            "transport": answer,
            "clock": time.clock,
            "max_retries": 0,
            "rate_limit_scale": 0.1,
        }

    def test_run_keeps_the_pace_bound(self) -> None:
        time = FakeTime()
        with KSeF(**self._options(time), sleep=time.sleep) as ksef:
            with pytest.raises(ThrottleWaitTooLongError):
                run(self._flow(), ksef)
            assert ksef.send_state.requests_sent == 1 and time.sleeps == []

    @pytest.mark.anyio
    async def test_arun_keeps_the_pace_bound(self) -> None:
        time = FakeTime()
        async with AsyncKSeF(**self._options(time), sleep=time.asleep) as ksef:
            with pytest.raises(ThrottleWaitTooLongError):
                await arun(self._flow(), ksef)
            assert ksef.send_state.requests_sent == 1 and time.sleeps == []
