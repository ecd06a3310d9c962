"""Answers into results: typed bodies, and our exceptions for error answers, transport failures
and bodies that break the spec (``errors`` has the tree).

Only the parsing of an answer is guarded (``parse_answer``): a ``TypeError`` from building a
request is a bug in the caller and stays a ``TypeError``.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, TypeVar

import httpx

from ksef_client._generated.client import AuthenticatedClient
from ksef_client._generated.types import Response
from ksef_client._retry import parse_retry_after
from ksef_client.errors import APIConnectionError, APITimeoutError, ResponseFormatError, make_status_error

T = TypeVar("T")


def raise_for_status(response: httpx.Response) -> None:
    """Turn an error answer into our exception (called once the body has been read)."""
    if response.status_code >= 400:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        raise make_status_error(response, retry_after)


def connection_error(error: httpx.TransportError) -> APIConnectionError:
    """Our exception for an httpx transport failure."""
    where = f"{error.request.method} {error.request.url.path}" if _has_request(error) else "request"
    if isinstance(error, httpx.TimeoutException):
        if type(error).__name__ == "DeadlineExceeded":
            return APITimeoutError(f"{where}: {error}")
        return APITimeoutError(f"{where}: timed out ({type(error).__name__})")
    return APIConnectionError(f"{where}: {type(error).__name__}: {error}")


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
