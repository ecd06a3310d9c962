"""``Authorization: Bearer`` on every API request, with the token refreshed when it expires."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Generator

import httpx

from ksef_client._core import raise_for_status
from ksef_client._retry import budget_of
from ksef_client._tokens import TokenHolder
from ksef_client._transport import DEADLINE, SendState
from ksef_client.errors import ResponseFormatError

# Request extensions: a token to send instead of the access token (a flow step's, e.g. the
# authentication token while logging in), and whether a 401 will be answered by a refresh.
BEARER = "ksef_bearer"
MAY_REFRESH = "ksef_may_refresh"


class _Hold:
    """A step of ``BearerAuth._steps``: take the holder's refresh lock (the driver's kind)."""


class _Release:
    """A step of ``BearerAuth._steps``: give the refresh lock back."""


HOLD, RELEASE = _Hold(), _Release()
Step = httpx.Request | _Hold | _Release


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` with the holder's access token, refreshed when it is about to expire
    or when the API answers 401; the refused request is then sent again if the retry policy allows
    (``SendState.after_refresh``). A request's ``BEARER`` extension wins.

    Refreshes are serialised by the holder's lock (a ``threading.Lock`` for the sync client, an
    anyio lock for the async one), shared by every ``with_options`` copy: callers that find the
    token expiring, or meet a 401, at once make one refresh between them. Inside the lock a caller
    refreshes only if the token is still the one it found expiring (or sent and saw refused);
    otherwise another caller has refreshed already, or the user has set another token, and it
    uses the token the holder has now.

    The steps are written once (``_steps``, which yields requests and lock steps) and driven by
    ``sync_auth_flow`` and ``async_auth_flow``; a driver releases a lock its flow still holds when
    the flow ends in an error.
    """

    requires_response_body = True

    def __init__(self, holder: TokenHolder, refresh_url: str, state: SendState) -> None:
        self._holder = holder
        self._refresh_url = refresh_url
        self._state = state

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        lock = self._holder.lock
        held = False
        steps = self._steps(request)
        try:
            step = next(steps)
            while True:
                if isinstance(step, _Hold):
                    lock.acquire()
                    held = True
                    step = next(steps)
                elif isinstance(step, _Release):
                    lock.release()
                    held = False
                    step = next(steps)
                else:
                    response = yield step
                    response.read()
                    step = steps.send(response)
        except StopIteration:
            return
        finally:
            if held:
                lock.release()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        lock = self._holder.async_lock
        held = False
        steps = self._steps(request)
        try:
            step = next(steps)
            while True:
                if isinstance(step, _Hold):
                    await lock.acquire()
                    held = True
                    step = next(steps)
                elif isinstance(step, _Release):
                    lock.release()
                    held = False
                    step = next(steps)
                else:
                    response = yield step
                    await response.aread()
                    step = steps.send(response)
        except StopIteration:
            return
        finally:
            if held:
                lock.release()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise NotImplementedError("BearerAuth is driven by sync_auth_flow and async_auth_flow")

    def _steps(self, request: httpx.Request) -> Generator[Step, httpx.Response, None]:
        override = request.extensions.get(BEARER)
        if override is not None:
            request.headers["Authorization"] = f"Bearer {override}"
            yield request
            return
        holder = self._holder
        found = holder.token
        if holder.refresh_token and holder.expiring(dt.datetime.now(dt.UTC)):
            yield from self._refresh_unless_done(found, request)
        sent = holder.token
        if sent:
            request.headers["Authorization"] = f"Bearer {sent}"
        request.extensions[MAY_REFRESH] = bool(holder.refresh_token)
        response = yield request
        if response.status_code == 401 and holder.refresh_token:
            yield from self._refresh_unless_done(sent, request)
            if not self._state.after_refresh(request):
                raise_for_status(response)  # the next request goes out with the new token
            request.headers["Authorization"] = f"Bearer {holder.token}"
            request.extensions[MAY_REFRESH] = False
            yield request

    def _refresh_unless_done(self, token: str | None, request: httpx.Request) -> Generator[Step, httpx.Response, None]:
        """Refresh under the lock, unless the holder's token is no longer ``token`` by then (another
        caller refreshed it, or it was replaced) or there is nothing to refresh with any more."""
        yield HOLD
        if self._holder.token == token and self._holder.refresh_token:
            yield from self._refresh(request)
        yield RELEASE

    def _refresh(self, request: httpx.Request) -> Generator[Step, httpx.Response, None]:
        """``POST /auth/token/refresh`` for ``request``, within its call's deadline: a refresh is
        part of the call that needed it (it had a fresh deadline of its own, so a call could last
        twice its ``deadline``)."""
        extensions = {DEADLINE: request.extensions[DEADLINE]} if DEADLINE in request.extensions else {}
        refresh = httpx.Request(
            "POST",
            self._refresh_url,
            headers={"Authorization": f"Bearer {self._holder.refresh_token}"},
            extensions=extensions,
        )
        # Until the refresh succeeds, a failure of the call is the refresh's (its error, a lost
        # connection, an unreadable answer): the request itself did not go out (session.send's
        # maybe_sent reads it).
        budget = budget_of(request)
        budget.refreshing = True
        response = yield refresh  # an error answer raises in the response hook; its body is capped
        from ksef_client._generated.types import json_loads  # noqa: PLC0415 - attrs: not loaded with the client

        try:
            token = json_loads(response.content)["accessToken"]
            self._holder.set(token["token"], dt.datetime.fromisoformat(token["validUntil"]))
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            # RecursionError: JSON nested deeper than the parsers follow (as _core.parse_answer)
            reason = f"{type(error).__name__}: {error}"[:200]
            raise ResponseFormatError(f"POST /auth/token/refresh: unexpected body ({reason})") from error
        budget.refreshing = False
