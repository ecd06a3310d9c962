"""``ksef.limits``: the limits in force for the context and subject, and the API's rate limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, arun, response_of, run
from ksef_client._generated.api.limits import get_context_limits, get_rate_limits, get_subject_limits
from ksef_client._generated.models import EffectiveApiRateLimits, EffectiveContextLimits, EffectiveSubjectLimits

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF


T = TypeVar("T")


def _read_flow(operation: Any, expected: type[T]) -> Flow[T]:
    return parsed(response_of((yield Call(operation))), expected)


def context_limits_flow() -> Flow[EffectiveContextLimits]:
    """``GET /limits/context``: the limits in force for the context (sessions read them with it)."""
    return (yield from _read_flow(get_context_limits, EffectiveContextLimits))


class Limits:
    """Limits KSeF applies to the authenticated context (session sizes, collective identifiers,
    certificates) and the rate limits of each group of operations."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def context(self) -> EffectiveContextLimits:
        """Online and batch session limits and the collective-identifier limit of the context."""
        return run(context_limits_flow(), self._client)

    def subject(self) -> EffectiveSubjectLimits:
        """Certificate and enrollment limits of the authenticated subject."""
        return run(_read_flow(get_subject_limits, EffectiveSubjectLimits), self._client)

    def rate(self) -> EffectiveApiRateLimits:
        """Requests per second, minute and hour of each limit group (``-1``: no limit)."""
        return run(_read_flow(get_rate_limits, EffectiveApiRateLimits), self._client)


class AsyncLimits:
    """Limits of the context and subject, and the API's rate limits (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def context(self) -> EffectiveContextLimits:
        """Online and batch session limits and the collective-identifier limit of the context."""
        return await arun(context_limits_flow(), self._client)

    async def subject(self) -> EffectiveSubjectLimits:
        """Certificate and enrollment limits of the authenticated subject."""
        return await arun(_read_flow(get_subject_limits, EffectiveSubjectLimits), self._client)

    async def rate(self) -> EffectiveApiRateLimits:
        """Requests per second, minute and hour of each limit group (``-1``: no limit)."""
        return await arun(_read_flow(get_rate_limits, EffectiveApiRateLimits), self._client)
