"""``ksef.tokens``: KSeF tokens of the context (create, status, revoke)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ksef_client._core import parsed
from ksef_client._flows import Call, Flow, arun, response_of, run
from ksef_client._generated.api.tokens import create_token, get_token_status, revoke_token
from ksef_client._generated.models import (
    GenerateTokenRequest,
    GenerateTokenResponse,
    TokenPermissionType,
    TokenStatusResponse,
)
from ksef_client.identifiers import validate_reference_number

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF


class CreatedToken(GenerateTokenResponse):
    """``POST /tokens``'s answer: ``reference_number`` and ``token``, the KSeF token's secret
    (shown this once by KSeF). The secret is left out of ``repr()`` and ``str()``, so a log line
    or a traceback that prints the object does not leak it; read it as ``.token``. It is a
    ``GenerateTokenResponse`` (``to_dict()`` includes the secret, as the API sent it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reference_number={self.reference_number!r}, token=<hidden>)"

    __str__ = __repr__

    @classmethod
    def of(cls, answer: GenerateTokenResponse) -> CreatedToken:
        """The same answer as a ``CreatedToken``."""
        created = cls(reference_number=answer.reference_number, token=answer.token)
        if answer.additional_properties:
            created.additional_properties = dict(answer.additional_properties)
        return created


def _create_flow(permissions: Iterable[str], description: str) -> Flow[CreatedToken]:
    allowed = {m.value for m in TokenPermissionType}
    wanted = list(permissions)
    unknown = [p for p in wanted if p not in allowed]
    if not wanted or unknown:
        raise ValueError(f"permissions: need at least one of {sorted(allowed)}; unknown: {unknown}")
    if not 5 <= len(description) <= 256:
        raise ValueError("description: 5 to 256 characters")
    body = GenerateTokenRequest(permissions=[TokenPermissionType(p) for p in wanted], description=description)
    return CreatedToken.of(parsed(response_of((yield Call(create_token, {"body": body}))), GenerateTokenResponse))


def _status_flow(reference_number: str) -> Flow[TokenStatusResponse]:
    validate_reference_number(reference_number)
    call = Call(get_token_status, {"reference_number": reference_number})
    return parsed(response_of((yield call)), TokenStatusResponse)


def _revoke_flow(reference_number: str) -> Flow[None]:
    validate_reference_number(reference_number)
    yield Call(revoke_token, {"reference_number": reference_number})


class Tokens:
    """KSeF tokens (the secret is shown once, in ``create``'s answer)."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def create(self, permissions: Iterable[str], description: str) -> CreatedToken:
        """Issue a token with ``permissions`` (e.g. ``["InvoiceRead", "InvoiceWrite"]``); the secret is
        ``.token`` of the answer (never in its repr)."""
        return run(_create_flow(permissions, description), self._client)

    def get(self, reference_number: str) -> TokenStatusResponse:
        """A token's status."""
        return run(_status_flow(reference_number), self._client)

    def revoke(self, reference_number: str) -> None:
        """Revoke a token: it can no longer log in."""
        run(_revoke_flow(reference_number), self._client)


class AsyncTokens:
    """KSeF tokens (async)."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def create(self, permissions: Iterable[str], description: str) -> CreatedToken:
        """Issue a token with ``permissions``."""
        return await arun(_create_flow(permissions, description), self._client)

    async def get(self, reference_number: str) -> TokenStatusResponse:
        """A token's status."""
        return await arun(_status_flow(reference_number), self._client)

    async def revoke(self, reference_number: str) -> None:
        """Revoke a token."""
        await arun(_revoke_flow(reference_number), self._client)
