"""Answers into results: typed bodies, and our exceptions for error answers, transport failures
and bodies that break the spec (``errors`` has the tree).

Only the parsing of an answer is guarded (``parse_answer``): a ``TypeError`` from building a
request is a bug in the caller and stays a ``TypeError``.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ksef_client._retry import BUDGET, MAX_RETRY_AFTER, RetryBudget, never_sent, parse_retry_after
from ksef_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    KSeFError,
    ResponseFormatError,
    ThrottleWaitTooLongError,
    make_status_error,
)

if TYPE_CHECKING:
    from ksef_client._generated.client import AuthenticatedClient
    from ksef_client._generated.types import Response

T = TypeVar("T")

# A request extension: a callable given the error ``raise_for_status`` makes of the request's
# answer, before it is raised (``_auth``: a refused refresh ends the login's refreshing, and a 401
# after that says to log in again).
ON_ERROR = "ksef_on_error"


def raise_for_status(response: httpx.Response, not_found_hint: str = "") -> None:
    """Turn an error answer into our exception (called once the body has been read);
    ``not_found_hint`` ends the message of a 404 (``not_found_hint_of``)."""
    if response.status_code >= 400:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        hint = not_found_hint if response.status_code == 404 else ""
        error = make_status_error(response, retry_after, response.extensions.get(MAX_RETRY_AFTER), hint=hint)
        _note_uncertain_attempts(error, response)
        on_error = response._request.extensions.get(ON_ERROR) if response._request is not None else None
        if on_error is not None:
            on_error(error)
        raise error


API_PATH = "/v2"


def not_found_hint_of(base_url: str) -> str:
    """What a 404 of the API adds when ``base_url``'s path does not end in ``/v2``, where KSeF's API
    lives (a base URL of the host alone answers every path with 404): ``""`` when it does. Such a
    URL is not refused: a proxy may serve the API under another path."""
    path = httpx.URL(base_url).path.rstrip("/")
    if path.endswith(API_PATH):
        return ""
    ends = f"path {path!r}" if path else "no path"
    return (
        f": is the base URL right? It has {ends}, and KSeF's API lives under {API_PATH} "
        f"(e.g. https://api-test.ksef.mf.gov.pl{API_PATH}, or http://127.0.0.1:8000{API_PATH} for the emulator)"
    )


# A revoke's repeat after an attempt KSeF may have carried out (review of tokens and permissions,
# finding 5; review of ksef.permissions, F2). How KSeF answers a revoke repeated after its first
# attempt was carried out is not documented: the spec's 400 for DELETE /permissions/common/grants/{id}
# lists only "21405 | Błąd walidacji danych wejściowych", and DELETE /tokens/{referenceNumber} reaches
# "dowolny aktywny token". An error answering the repeat may therefore be the only trace of a revoke
# that happened (the 202 of the attempt that did it, and the operation's reference number, lost).
UNCERTAIN_DELETE = (
    "{method} {path} was sent {attempts}: an earlier attempt may have been carried out although its answer was "
    "lost. This error answers the repeat, and how KSeF answers a repeated revoke is not documented: the error may "
    "mean only that the earlier attempt already did it (its answer, and any operation reference number it "
    "carried, are lost). Check whether the thing still exists (e.g. the permission or token listing) before "
    "acting on this error: if it no longer does, it was revoked."
)


def _note_uncertain_attempts(error: APIStatusError, response: httpx.Response) -> None:
    """Set ``error.uncertain_attempts`` from the request's retry budget; on a DELETE that has any,
    add a note that an earlier attempt may have done what the error says cannot be done."""
    request = response.request if response._request is not None else None
    budget = request.extensions.get(BUDGET) if request is not None else None
    if request is None or not isinstance(budget, RetryBudget) or not budget.uncertain:
        return
    error.uncertain_attempts = budget.uncertain
    if request.method == "DELETE":
        attempts = f"{budget.used + 1} times"
        error.add_note(UNCERTAIN_DELETE.format(method=request.method, path=request.url.path, attempts=attempts))


def connection_error(error: httpx.TransportError) -> APIConnectionError:
    """Our exception for an httpx transport failure: the method and full URL (its query left out:
    presigned links carry signatures there), what failed, and the likely cause."""
    if not _has_request(error):
        where, url = "request", None
    else:
        url = str(error.request.url.copy_with(query=None, fragment=None))
        where = f"{error.request.method} {url}"
    hint = _likely_cause(error, url)
    if isinstance(error, httpx.TimeoutException):
        if type(error).__name__ == "DeadlineExceeded":
            return APITimeoutError(f"{where}: {error}", url=url)
        return APITimeoutError(f"{where}: timed out ({type(error).__name__}){hint}", url=url)
    return APIConnectionError(f"{where}: {type(error).__name__}: {error}{hint}", url=url)


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _likely_cause(error: httpx.TransportError, url: str | None) -> str:
    if url is None:
        return ""
    target = httpx.URL(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    address, text = f"{target.host}:{port}", str(error).lower()
    if isinstance(error, httpx.TimeoutException):
        hint = f"no answer in time from {address}: raise the client's timeout, or check that it is up"
    elif "ssl" in text or "certificate" in text:  # before loopback: a local TLS proxy answered
        hint = f"TLS with {address} failed: check the base URL's scheme and the certificates (verify=)"
    elif isinstance(error, httpx.ConnectError) and target.host in _LOOPBACK:
        hint = f"is the emulator running on {address}? Start it with: ksef-mock --port {port}"
    elif any(s in text for s in ("name or service not known", "nodename nor servname", "getaddrinfo")):
        hint = f"the host name {target.host} does not resolve: check the base URL and the DNS"
    elif isinstance(error, httpx.ConnectError):
        hint = f"nothing answers on {address}: check the base URL, the network and any proxy"
    else:
        return ""
    return ". " + hint[0].upper() + hint[1:]


def _has_request(error: httpx.TransportError) -> bool:
    try:
        error.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def parse_answer(operation: ModuleType, client: AuthenticatedClient, response: httpx.Response) -> Response[Any]:
    """The generated ``parse_response`` of ``operation``; a body the models cannot read (missing
    key, wrong type, bad JSON) is ``ResponseFormatError``: the server broke the spec."""
    try:
        parsed_response: Response[Any] = operation.parse_response(client=client, response=response)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
        # RecursionError: JSON nested deeper than the parsers follow
        where = f"{response.request.method} {response.request.url.path}"
        raise ResponseFormatError(
            f"{where}: response does not match the spec: {type(error).__name__}: {error}"
        ) from error
    return parsed_response


def parsed(response: Response[Any], expected: type[T]) -> T:
    """The typed body of a 2xx answer, or ``ResponseFormatError`` if it is not what the spec says."""
    if not isinstance(response.parsed, expected):
        raise ResponseFormatError(
            f"HTTP {int(response.status_code)}: expected {expected.__name__}, got {type(response.parsed).__name__}"
        )
    return response.parsed


def not_taken(error: KSeFError) -> bool:
    """Whether KSeF cannot hold a request that failed with ``error`` at its only attempt: it
    answered 4xx (a 429 included: refused unprocessed), the request never went out (no connection
    made, or the call's deadline passed before it: ``_retry.never_sent``, the test the retry policy
    uses too), or the client's own pacing held it back (``ThrottleWaitTooLongError``). Anything
    else (a 5xx, a broken connection, a timeout waiting for the answer, a 2xx answer that cannot be
    read or is too large) may come after KSeF stored it."""
    if isinstance(error, APIStatusError):
        return 400 <= error.status_code < 500  # HTTP's client errors
    if isinstance(error, APIConnectionError):
        return never_sent(error.__cause__)
    return isinstance(error, ThrottleWaitTooLongError)
