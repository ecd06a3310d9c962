"""``Authorization: Bearer`` on every API request, with the token refreshed when it expires."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator

import httpx

from ksef_client._core import raise_for_status
from ksef_client._tokens import TokenHolder
from ksef_client._transport import SendState
from ksef_client.errors import ResponseFormatError

# Request extensions: a token to send instead of the access token (a flow step's, e.g. the
# authentication token while logging in), and whether a 401 will be answered by a refresh.
BEARER = "ksef_bearer"
MAY_REFRESH = "ksef_may_refresh"


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` with the holder's access token, refreshed when it is about to expire
    or when the API answers 401; the refused request is then sent again if the retry policy allows
    (``SendState.after_refresh``). A request's ``BEARER`` extension wins."""

    requires_response_body = True

    def __init__(self, holder: TokenHolder, refresh_url: str, state: SendState) -> None:
        self._holder = holder
        self._refresh_url = refresh_url
        self._state = state

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        override = request.extensions.get(BEARER)
        if override is not None:
            request.headers["Authorization"] = f"Bearer {override}"
            yield request
            return
        holder = self._holder
        if holder.refresh_token and holder.expiring(dt.datetime.now(dt.UTC)):
            yield from self._refresh()
        if holder.token:
            request.headers["Authorization"] = f"Bearer {holder.token}"
        request.extensions[MAY_REFRESH] = bool(holder.refresh_token)
        response = yield request
        if response.status_code == 401 and holder.refresh_token:
            yield from self._refresh()
            if not self._state.after_refresh(request):
                raise_for_status(response)  # the next request goes out with the new token
            request.headers["Authorization"] = f"Bearer {holder.token}"
            request.extensions[MAY_REFRESH] = False
            yield request

    def _refresh(self) -> Generator[httpx.Request, httpx.Response, None]:
        refresh = httpx.Request(
            "POST", self._refresh_url, headers={"Authorization": f"Bearer {self._holder.refresh_token}"}
        )
        response = yield refresh  # an error answer raises in the response hook
        try:
            token = response.json()["accessToken"]
            self._holder.set(token["token"], dt.datetime.fromisoformat(token["validUntil"]))
        except (ValueError, KeyError, TypeError) as error:
            raise ResponseFormatError(f"POST /auth/token/refresh: unexpected body ({error})") from error
