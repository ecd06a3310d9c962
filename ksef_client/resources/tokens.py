"""``ksef.tokens``: KSeF tokens of the context: create, wait until active, status, list, revoke.

A new token is ``Pending`` at first and cannot log in until KSeF makes it ``Active`` ("Zaczyna być
aktywny w momencie gdy jego status zmieni się na Active", ``POST /tokens``): ``wait_active`` polls
its status until then.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ksef_client._core import parsed
from ksef_client._flows import (
    Call,
    Flow,
    PageFlow,
    apager,
    arun,
    pager,
    poll_flow,
    response_of,
    run,
    sent_once,
    token_pages,
)
from ksef_client._generated.api.tokens import create_token, get_token_status, list_tokens, revoke_token
from ksef_client._generated.models import (
    AuthenticationTokenStatus,
    GenerateTokenRequest,
    GenerateTokenResponse,
    QueryTokensResponse,
    QueryTokensResponseItem,
    TokenAuthorIdentifierType,
    TokenPermissionType,
    TokenStatusResponse,
)
from ksef_client._generated.types import UNSET
from ksef_client.errors import BadRequestError, KSeFError, TokenNotActiveError
from ksef_client.identifiers import validate_reference_number
from ksef_client.pagination import AsyncPager, Pager, check_page_size, next_token

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

log = logging.getLogger("ksef_client")


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


# POST /tokens is not repeated (a repeat would make a second token), and its answer is the only place
# the secret ever appears: "Jest zwracany tylko raz". When that answer is lost after the request went
# out, the token may exist and turn Active with a secret nobody has. GET /tokens's ``description``
# filter is "wyszukiwana w opisie tokena" in any case: it lists every token whose description contains
# the text, an older one in use too, so the note names the time and statuses that single out the new
# one. Without CredentialsRead/CredentialsManage a KSeF-token login lists and revokes only the token it
# used (GET and DELETE /tokens), so the new token is out of its reach. The SDK cannot tell how its
# access token was obtained (it may be given one), so the note names both cases.
CREATE_MAY_HAVE_GONE_THROUGH = (
    "tokens.create: the request may have reached KSeF although its answer was lost, so the token may exist "
    "(Pending, then Active) with a secret nobody has: KSeF shows it only in that answer ('Jest zwracany tylko "
    "raz'). Find it with ksef.tokens.list(description={description!r}, statuses=['Pending', 'Active']) and "
    "revoke with ksef.tokens.revoke(reference_number) only a token whose date_created is at or after "
    "{started} (this machine's clock when create was called: allow for a difference from KSeF's). The "
    "description filter matches every token whose description contains the text, in any case, so an older "
    "token in use may be listed too: do not revoke it. Then create a new token, with a description of its "
    "own (a date or a uuid in it). A login by a KSeF token without CredentialsRead or CredentialsManage "
    "cannot see or revoke the new token (it lists and revokes only the token it logged in with): the "
    "token's author lists and revokes it after a login by certificate (XAdES), or anyone holding "
    "CredentialsManage in the context does"
)


def _create_flow(permissions: Iterable[str], description: str) -> Flow[CreatedToken]:
    allowed = {m.value for m in TokenPermissionType}
    wanted = list(permissions)
    unknown = [p for p in wanted if p not in allowed]
    if not wanted or unknown:
        raise ValueError(f"permissions: need at least one of {sorted(allowed)}; unknown: {unknown}")
    if not 5 <= len(description) <= 256:
        raise ValueError("description: 5 to 256 characters")
    body = GenerateTokenRequest(permissions=[TokenPermissionType(p) for p in wanted], description=description)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)  # for the note: when a lost answer's token was made
    note = CREATE_MAY_HAVE_GONE_THROUGH.format(description=description, started=started.isoformat())
    return CreatedToken.of((yield from sent_once(Call(create_token, {"body": body}), GenerateTokenResponse, note)))


def _status_flow(reference_number: str) -> Flow[TokenStatusResponse]:
    validate_reference_number(reference_number)
    call = Call(get_token_status, {"reference_number": reference_number})
    return parsed(response_of((yield call)), TokenStatusResponse)


def _revoke_flow(reference_number: str) -> Flow[None]:
    """Revoke the token; a revoke the client had to repeat after an attempt KSeF may have carried
    out (its answer lost) and whose repeat KSeF refused is done all the same when the token's status
    says so (review of tokens and permissions, finding 5)."""
    validate_reference_number(reference_number)
    try:
        yield Call(revoke_token, {"reference_number": reference_number})
    except BadRequestError as error:
        # The spec lets a revoke reach only an active token ("może unieważnić dowolny aktywny
        # token", DELETE /tokens/{referenceNumber}) and names no code for one already revoked: the
        # token's status, not the refusal's code, says whether the lost attempt revoked it.
        if not error.uncertain_attempts or not (yield from _revoked(reference_number)):
            raise
        log.info("KSeF token %s: revoked by an earlier attempt whose answer was lost", reference_number)


# "Revoking: Token jest w trakcie unieważniania"; "Revoked: Token został unieważniony"
# (AuthenticationTokenStatus): a revoke was taken.
REVOKED = frozenset({AuthenticationTokenStatus.REVOKING, AuthenticationTokenStatus.REVOKED})


def _revoked(reference_number: str) -> Flow[bool]:
    """Whether the token's status is ``Revoking`` or ``Revoked`` (``False`` when it cannot be read)."""
    try:
        status = yield from _status_flow(reference_number)
    except KSeFError:
        return False
    return status.status in REVOKED


PENDING, ACTIVE = AuthenticationTokenStatus.PENDING, AuthenticationTokenStatus.ACTIVE


def wait_active_flow(reference_number: str, timeout: float, interval: float) -> Flow[TokenStatusResponse]:
    """Poll a new token's status while it is ``Pending``: its status once ``Active``,
    ``TokenNotActiveError`` for any other final status, ``PollTimeoutError`` after ``timeout``."""
    validate_reference_number(reference_number)
    status = yield from poll_flow(
        lambda: _status_flow(reference_number),
        lambda s: s.status != PENDING,
        lambda s: f"KSeF token {reference_number} still {s.status}",
        timeout,
        interval,
    )
    if status.status != ACTIVE:
        raise TokenNotActiveError(reference_number, status)
    return status


def tokens_pages(
    statuses: Iterable[str] | None,
    description: str | None,
    author_identifier: str | None,
    author_identifier_type: str | None,
    page_size: int,
) -> PageFlow[str, QueryTokensResponseItem]:
    """The pages of ``GET /tokens`` (arguments checked now, before any request)."""
    check_page_size(page_size, list_tokens)
    for name, text in (("description", description), ("author_identifier", author_identifier)):
        if text is not None and len(text) < 3:
            raise ValueError(f"{name}: at least 3 characters")
    known = [m.value for m in AuthenticationTokenStatus]
    unknown = [s for s in statuses or () if s not in known]
    if unknown:
        raise ValueError(f"statuses: {unknown} not among {known}")
    kinds = [m.value for m in TokenAuthorIdentifierType]
    if author_identifier_type is not None and author_identifier_type not in kinds:
        raise ValueError(f"author_identifier_type: {author_identifier_type!r} is not one of {kinds}")
    args: dict[str, Any] = {
        "status": [AuthenticationTokenStatus(s) for s in statuses] if statuses else UNSET,
        "description": description if description is not None else UNSET,
        "author_identifier": author_identifier if author_identifier is not None else UNSET,
        "author_identifier_type": (
            TokenAuthorIdentifierType(author_identifier_type) if author_identifier_type is not None else UNSET
        ),
        "page_size": page_size,
    }

    def page(token: str | None) -> Flow[tuple[list[QueryTokensResponseItem], str | None]]:
        call = Call(list_tokens, {**args, "x_continuation_token": token or UNSET})
        body = parsed(response_of((yield call)), QueryTokensResponse)
        return body.tokens, next_token(body.continuation_token)

    return token_pages(page)


class Tokens:
    """KSeF tokens of the context: create, wait until active, status, list, revoke (the secret is
    shown once, in ``create``'s answer)."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def create(self, permissions: Iterable[str], description: str) -> CreatedToken:
        """Issue a token with ``permissions`` (e.g. ``["InvoiceRead", "InvoiceWrite"]``); the secret is
        ``.token`` of the answer (never in its repr).

        The request is sent once. When its answer is lost after it went out (a 5xx, a connection
        broken after sending, a timeout waiting), the error has ``maybe_sent`` set and a note: the
        token may exist, and KSeF shows its secret in no other answer. Find it with
        ``list(description=..., statuses=["Pending", "Active"])`` and revoke only a token whose
        ``date_created`` is at or after the moment ``create`` was called: the ``description`` filter
        matches every token whose description contains the text (any case), an older token in use
        too, so give each token a description of its own (a date or a uuid in it). A KSeF-token
        login without ``CredentialsRead``/``CredentialsManage`` cannot see or revoke the new token:
        its author does so after a login by certificate. A refusal (4xx) or a request never sent
        leaves ``maybe_sent`` ``False``: no token was made.
        """
        return run(_create_flow(permissions, description), self._client)

    def wait_active(
        self, reference_number: str, *, timeout: float = 120.0, interval: float = 1.0
    ) -> TokenStatusResponse:
        """Poll a new token's status until KSeF makes it ``Active`` (a ``Pending`` token cannot log
        in yet); ``TokenNotActiveError`` if it ends ``Failed`` or revoked instead,
        ``PollTimeoutError`` after ``timeout`` seconds."""
        return run(wait_active_flow(reference_number, timeout, interval), self._client)

    def get(self, reference_number: str) -> TokenStatusResponse:
        """A token's status: any token of the context with ``CredentialsRead``/``CredentialsManage``;
        without them, the token a KSeF-token login used (others may be refused with a 403,
        ``PermissionDeniedError``)."""
        return run(_status_flow(reference_number), self._client)

    def list(
        self,
        *,
        statuses: Iterable[str] | None = None,
        description: str | None = None,
        author_identifier: str | None = None,
        author_identifier_type: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> Pager[QueryTokensResponseItem, str]:
        """The tokens of the context, newest first, fetched page by page as you iterate.

        ``statuses``: only these (``Pending``, ``Active``, ``Revoking``, ``Revoked``, ``Failed``);
        ``description``, ``author_identifier``: only those containing the text (3 characters at
        least; any case); ``author_identifier_type``: ``Nip``, ``Pesel`` or ``Fingerprint``. Which
        tokens KSeF lists depends on the login: with ``CredentialsRead``/``CredentialsManage`` all
        of the context's.
        """
        page = tokens_pages(statuses, description, author_identifier, author_identifier_type, page_size)
        return pager(page, self._client, cursor)

    def revoke(self, reference_number: str) -> None:
        """Revoke a token: it can no longer log in.

        When the client had to repeat the request after an attempt KSeF may have carried out (a
        5xx, a connection broken after sending) and KSeF refuses the repeat, the token's status
        decides: ``Revoking`` or ``Revoked`` is success (the lost attempt revoked it), otherwise
        the refusal is raised (``uncertain_attempts`` and a note on it say an attempt was lost).
        """
        run(_revoke_flow(reference_number), self._client)


class AsyncTokens:
    """KSeF tokens of the context (async): create, wait until active, status, list, revoke."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def create(self, permissions: Iterable[str], description: str) -> CreatedToken:
        """Issue a token with ``permissions``; see ``Tokens.create`` (a lost answer: ``maybe_sent``)."""
        return await arun(_create_flow(permissions, description), self._client)

    async def wait_active(
        self, reference_number: str, *, timeout: float = 120.0, interval: float = 1.0
    ) -> TokenStatusResponse:
        """Poll a new token's status until it is ``Active``; see ``Tokens.wait_active``."""
        return await arun(wait_active_flow(reference_number, timeout, interval), self._client)

    async def get(self, reference_number: str) -> TokenStatusResponse:
        """A token's status."""
        return await arun(_status_flow(reference_number), self._client)

    def list(
        self,
        *,
        statuses: Iterable[str] | None = None,
        description: str | None = None,
        author_identifier: str | None = None,
        author_identifier_type: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> AsyncPager[QueryTokensResponseItem, str]:
        """The tokens of the context, newest first (``async for``); see ``Tokens.list``."""
        page = tokens_pages(statuses, description, author_identifier, author_identifier_type, page_size)
        return apager(page, self._client, cursor)

    async def revoke(self, reference_number: str) -> None:
        """Revoke a token."""
        await arun(_revoke_flow(reference_number), self._client)
