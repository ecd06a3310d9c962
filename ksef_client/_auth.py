"""``Authorization: Bearer`` on every API request, with the token refreshed when it expires."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from ksef_client._core import ON_ERROR, raise_for_status
from ksef_client._operations import find_operation
from ksef_client._retry import budget_of
from ksef_client._tokens import TokenHolder
from ksef_client._transport import DEADLINE, SendState
from ksef_client.errors import APIStatusError, ResponseFormatError

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

# Refusals of a refresh after which its refresh token can never work again: 401 (expired: "do 7
# dni", or unknown), and the spec's 400s of POST /auth/token/refresh: 21301 "Brak autoryzacji."
# (the session was revoked, or its status allows no refresh), 21304 (its authentication operation
# is not found), 21308 (a deceased person's means of authorisation).
_DEAD_REFRESH_CODES = frozenset({21301, 21304, 21308})
LOG_IN_AGAIN = "log in again (auth.login_with_token, auth.login_with_certificate) or auth.resume a newer login"


def refresh_is_dead(error: APIStatusError) -> bool:
    """Whether KSeF's refusal of a refresh means its refresh token will never work again."""
    return error.status_code == 401 or (error.status_code == 400 and not _DEAD_REFRESH_CODES.isdisjoint(error.codes))


def _note_ended(reason: str, error: APIStatusError) -> None:
    """``ON_ERROR`` of a request sent after the login's refreshing ended: a 401 says why."""
    if error.status_code == 401:
        error.add_note(f"the client's login can no longer be refreshed: {reason}; {LOG_IN_AGAIN}")


def _authorize(request: httpx.Request, token: str | None) -> None:
    if token:
        request.headers["Authorization"] = f"Bearer {token}"
    else:
        request.headers.pop("Authorization", None)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` with the holder's access token, refreshed when it is about to expire
    or when the API answers 401; the refused request is then sent again if the retry policy allows
    (``SendState.after_refresh``). A request's ``BEARER`` extension wins.

    Refreshes are serialised by the holder's lock (a ``threading.Lock`` for the sync client, an
    anyio lock for the async one), shared by every ``with_options`` copy: callers that find the
    token expiring, or meet a 401, at once make one refresh between them. Inside the lock a caller
    refreshes only if the token is still the one it found expiring (or sent and saw refused);
    otherwise another caller has refreshed already, or the user has set another token, and it
    uses the token the holder has now. A refresh's answer is stored only while the login it
    refreshed is still the holder's (``TokenHolder.generation``); a refusal for good
    (``refresh_is_dead``) drops the refresh token.

    An operation the spec marks without security (``requires_token`` false in the operation
    table: the public keys, the challenge, ``/auth/ksef-token``, ``/auth/xades-signature``, most
    of ``/testdata``) goes out with no token and never waits for a refresh: a dead login does not
    stand in the way of the next one.

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
        if not self._needs_token(request):
            # An operation the spec marks without security (the public keys, a login's anonymous
            # steps, /testdata): no token, and no refresh. Was: refreshed and sent with the token,
            # so a login whose refresh token had died failed every later login at its first step.
            request.headers.pop("Authorization", None)
            request.extensions[MAY_REFRESH] = False
            yield request
            return
        holder = self._holder
        found = holder.token
        if holder.refresh_token and holder.expiring(dt.datetime.now(dt.UTC)):
            yield from self._refresh_unless_done(found, request)
        sent = holder.token
        _authorize(request, sent)
        may_refresh = request.extensions[MAY_REFRESH] = bool(holder.refresh_token)
        ended = holder.ended
        if ended and not may_refresh:
            request.extensions[ON_ERROR] = functools.partial(_note_ended, ended)
        response = yield request
        if response.status_code != 401 or not may_refresh:
            return  # an error answer other than this 401 was raised by the response hook
        yield from self._refresh_unless_done(sent, request)
        token = holder.token
        if token == sent or not self._state.after_refresh(request):
            # nothing new to send it with (the login's refreshing ended meanwhile), or no repeat
            # left: the next request goes out with the new token
            ended = holder.ended
            if ended and not holder.refresh_token:
                request.extensions[ON_ERROR] = functools.partial(_note_ended, ended)
            raise_for_status(response)
        _authorize(request, token)
        request.extensions[MAY_REFRESH] = False
        yield request

    def _needs_token(self, request: httpx.Request) -> bool:
        """Whether the spec's operation for ``request`` takes an access token (a request the table
        does not know, e.g. the emulator's own shortcuts, is sent with it)."""
        prefix, path = self._state.api_path_prefix, request.url.path
        if not path.startswith(prefix):
            return True
        found = find_operation(request.method, path[len(prefix) :] or "/")
        return found is None or found[1].requires_token

    def _refresh_unless_done(self, token: str | None, request: httpx.Request) -> Generator[Step, httpx.Response, None]:
        """Refresh under the lock, unless the holder's token is no longer ``token`` by then (another
        caller refreshed it, or it was replaced) or there is nothing to refresh with any more."""
        yield HOLD
        generation, refresh_token = self._holder.for_refresh()
        if self._holder.token == token and refresh_token:
            yield from self._refresh(request, generation, refresh_token)
        yield RELEASE

    def _refresh(
        self, request: httpx.Request, generation: int, refresh_token: str
    ) -> Generator[Step, httpx.Response, None]:
        """``POST /auth/token/refresh`` of the login ``generation`` for ``request``, within its
        call's deadline: a refresh is part of the call that needed it (it had a fresh deadline of
        its own, so a call could last twice its ``deadline``).

        The new access token is stored only while that login is still the holder's: one installed
        meanwhile (a login, ``auth.resume``, the ``access_token`` setter) stays, and the request
        goes out with it. A refusal that leaves the refresh token dead for good (``refresh_is_dead``)
        drops it: later requests do not send it again, and their 401 says to log in again."""
        extensions: dict[str, Any] = {ON_ERROR: functools.partial(self._refused, generation)}
        if DEADLINE in request.extensions:
            extensions[DEADLINE] = request.extensions[DEADLINE]
        refresh = httpx.Request(
            "POST", self._refresh_url, headers={"Authorization": f"Bearer {refresh_token}"}, extensions=extensions
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
            value, valid_until = token["token"], dt.datetime.fromisoformat(token["validUntil"])
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            # RecursionError: JSON nested deeper than the parsers follow (as _core.parse_answer)
            reason = f"{type(error).__name__}: {error}"[:200]
            raise ResponseFormatError(f"POST /auth/token/refresh: unexpected body ({reason})") from error
        self._holder.refreshed(generation, value, valid_until)
        budget.refreshing = False

    def _refused(self, generation: int, error: APIStatusError) -> None:
        """``ON_ERROR`` of a refresh: a refusal for good ends the login's refreshing."""
        if refresh_is_dead(error):
            self._holder.end_refreshing(generation, f"KSeF refused its refresh token ({error})")
            why = "its 7 days passed, or its session ended"
            note = f"KSeF refused the login's refresh token for good ({why}): it is not sent again; {LOG_IN_AGAIN}"
            error.add_note(note)
