"""``ksef.auth``: log in with a KSeF token or a certificate (XAdES), refresh, revoke; the
context's login sessions (``GET /auth/sessions``) and revoking one of them.

Both logins are one flow (``_flows``): public key -> challenge -> token or signed document ->
poll the authentication status -> redeem the access and refresh tokens into the client. A login
is one unit: a transient failure at any step (no answer, 5xx, 429 after the transport's own
retries) starts it again from a new challenge, as often as the client's retry policy allows (one
budget for the login's restarts and its requests' repeats together), and only then raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast

from lxml import etree

from ksef_client._core import parsed
from ksef_client._flows import (
    Call,
    Flow,
    Now,
    PageFlow,
    Retry,
    apager,
    arun,
    pager,
    poll_flow,
    response_of,
    retry_after_of,
    run,
    token_pages,
    within_budget,
)
from ksef_client._generated.api.auth import (
    authenticate_ksef_token,
    authenticate_xades_signature,
    create_challenge,
    get_auth_status,
    redeem_token,
)
from ksef_client._generated.api.auth_sessions import (
    list_auth_sessions,
    revoke_auth_session,
    revoke_current_auth_session,
)
from ksef_client._generated.api.security import get_public_key_certificates
from ksef_client._generated.models import AllowedIps as AllowedIpsBody
from ksef_client._generated.models import (
    AuthenticationChallengeResponse,
    AuthenticationContextIdentifier,
    AuthenticationContextIdentifierType,
    AuthenticationInitResponse,
    AuthenticationListItem,
    AuthenticationListResponse,
    AuthenticationOperationStatusResponse,
    AuthenticationTokensResponse,
    AuthorizationPolicy,
    InitTokenAuthenticationRequest,
)
from ksef_client._generated.types import UNSET, File
from ksef_client._retry import RetryBudget
from ksef_client._tokens import KeyCache, TokenHolder
from ksef_client._xml import declares_entities, parse
from ksef_client.crypto import (
    TOKEN_ENCRYPTION,
    NoUsableCertificateError,
    PublicKeyCertificate,
    encrypt_ksef_token,
    select_certificate,
)
from ksef_client.errors import (
    APIConnectionError,
    AuthenticationFailedError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    ResponseFormatError,
)
from ksef_client.identifiers import (
    validate_internal_id,
    validate_nip,
    validate_nip_vat_ue,
    validate_peppol_id,
    validate_reference_number,
)
from ksef_client.pagination import AsyncPager, Pager, check_page_size, next_token
from ksef_client.schemas import AUTH_SCHEMAS, auth_request_errors
from ksef_client.xades import (
    AUTH_NAMESPACES,
    DSIG_NAMESPACE,
    SUBJECT_IDENTIFIER_TYPES,
    AllowedIps,
    SigningCredentials,
    build_auth_token_request,
    read_allowed_ips,
    signed_auth_token_request,
    unsigned_content,
)

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

AUTH_PENDING = 100
AUTH_OK = 200


@dataclass(frozen=True)
class AuthTokens:
    """The result of a login; the tokens are also installed in the client."""

    reference_number: str
    access_token: str = field(repr=False)
    access_valid_until: dt.datetime
    refresh_token: str = field(repr=False)
    refresh_valid_until: dt.datetime


def context_identifier(context_nip: str | None, context: tuple[str, str] | None) -> tuple[str, str]:
    """``(type, value)`` of the login context from ``context_nip=`` or ``context=(type, value)``."""
    if (context_nip is None) == (context is None):
        raise ValueError("give exactly one of context_nip= or context=(type, value)")
    if context_nip is not None:
        return "Nip", validate_nip(context_nip, "context_nip")
    assert context is not None
    kind, value = context
    allowed = [m.value for m in AuthenticationContextIdentifierType]
    if kind not in allowed:
        raise ValueError(f"context: type {kind!r} is not one of {allowed}")
    # Checked as KSeF's schema for AuthTokenRequest does (a refusal there is 400 / 21401 after a
    # challenge); the token login's JSON carries the same identifiers.
    _CONTEXT_CHECKS[kind](value, "context")
    return kind, value


_CONTEXT_CHECKS: dict[str, Callable[[str, str], str]] = {
    "Nip": validate_nip,
    "InternalId": validate_internal_id,
    "NipVatUe": validate_nip_vat_ue,
    "PeppolId": validate_peppol_id,
}


def allowed_ips_option(allowed_ips: object) -> AllowedIps | None:
    """``allowed_ips=`` of a login: an :class:`AllowedIps` (checked when it was made) or ``None``."""
    if allowed_ips is not None and not isinstance(allowed_ips, AllowedIps):
        raise ValueError(
            "allowed_ips: expected AllowedIps(addresses=..., ranges=..., masks=...) from ksef_client.xades"
            f" (or None), got {type(allowed_ips).__name__}"
        )
    return allowed_ips


def _for_challenge(allowed_ips: AllowedIps | None, challenge: AuthenticationChallengeResponse) -> AllowedIps | None:
    """The policy to send with ``challenge``: with the address KSeF saw the challenge asked from
    (``clientIp``) when it asks for the client's own."""
    return allowed_ips.resolved(challenge.client_ip) if allowed_ips is not None else None


def _policy_body(allowed_ips: AllowedIps) -> AuthorizationPolicy:
    """``authorizationPolicy`` of ``POST /auth/ksef-token``; a kind without values is left out."""
    body = AllowedIpsBody()
    if allowed_ips.ip4_addresses:
        body.ip_4_addresses = allowed_ips.ip4_addresses
    if allowed_ips.ip4_ranges:
        body.ip_4_ranges = allowed_ips.ip4_ranges
    if allowed_ips.ip4_masks:
        body.ip_4_masks = allowed_ips.ip4_masks
    return AuthorizationPolicy(allowed_ips=body)


def public_keys_flow() -> Flow[list[PublicKeyCertificate]]:
    """Fetch the Ministry's public key certificates."""
    response = response_of((yield Call(get_public_key_certificates)))
    items = response.parsed
    if not isinstance(items, list):
        raise ResponseFormatError("GET /security/public-key-certificates: expected a list")
    try:
        return [
            PublicKeyCertificate.from_der_b64(
                i.certificate, [str(u) for u in i.usage], i.valid_from, i.valid_to, i.public_key_id
            )
            for i in items
        ]
    except (ValueError, TypeError, AttributeError) as error:  # not base64, not DER, not a list of models
        raise ResponseFormatError(f"GET /security/public-key-certificates: unusable certificate ({error})") from None


def cached_keys_flow(cache: KeyCache, refresh: bool = False) -> Flow[list[PublicKeyCertificate]]:
    """The public key certificates kept in ``cache``, fetched when it is empty, older than its
    ``max_age``, or on ``refresh``."""
    keys, _ = yield from _keys_flow(cache, refresh)
    return keys


def _keys_flow(cache: KeyCache, refresh: bool) -> Flow[tuple[list[PublicKeyCertificate], bool]]:
    """``cached_keys_flow``, and whether the keys were fetched just now."""
    now = yield Now()
    if cache.keys is not None and not refresh and cache.fresh(now):
        return cache.keys, False
    keys = yield from public_keys_flow()
    cache.keys, cache.fetched_at = keys, now
    return keys, True


# KSeF's "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.": the
# publicKeyId sent names a key it no longer accepts (rotated); fetch the keys again and repeat.
UNKNOWN_KEY = 21470
T = TypeVar("T")


def with_keys(cache: KeyCache, use: Callable[[list[PublicKeyCertificate]], Flow[T]]) -> Flow[T]:
    """Run ``use(keys)`` (encrypt for the current certificate and send) with the cached keys. When
    KSeF refuses the key (400 21470) or the cached certificates hold none valid now
    (``NoUsableCertificateError``), the keys are fetched again and ``use`` runs once more with
    them (the guide's handling of 21470); keys fetched just now are not fetched twice. ``use``
    must end with the request that carries the key: a refusal means nothing was done."""
    keys, fetched = yield from _keys_flow(cache, False)
    try:
        return (yield from use(keys))
    except (NoUsableCertificateError, BadRequestError) as error:
        stale = isinstance(error, NoUsableCertificateError) or UNKNOWN_KEY in error.codes
        if fetched or not stale:
            raise
    keys, _ = yield from _keys_flow(cache, True)
    return (yield from use(keys))


def _auth_status_flow(ref: str, token: str) -> Flow[AuthenticationOperationStatusResponse]:
    call = Call(get_auth_status, {"reference_number": ref}, bearer=token)
    return parsed(response_of((yield call)), AuthenticationOperationStatusResponse)


def _finish_flow(
    init: AuthenticationInitResponse, holder: TokenHolder, context: tuple[str, str], timeout: float, interval: float
) -> Flow[AuthTokens]:
    """Poll the operation with the authentication token until final, then redeem the tokens and
    install them in ``holder`` as a login into ``context``."""
    token, ref = init.authentication_token.token, init.reference_number
    status = yield from poll_flow(
        lambda: _auth_status_flow(ref, token),
        lambda s: s.status.code != AUTH_PENDING,
        lambda s: f"authentication {ref} still pending",
        timeout,
        interval,
    )
    if status.status.code != AUTH_OK:
        raise AuthenticationFailedError(
            ref, status.status.code, status.status.description, list(status.status.details or [])
        )
    tokens = parsed(response_of((yield Call(redeem_token, bearer=token))), AuthenticationTokensResponse)
    access, refresh = tokens.access_token, tokens.refresh_token
    login = AuthTokens(ref, access.token, access.valid_until, refresh.token, refresh.valid_until)
    return install(holder, login, context)


# Failures after which a login starts again from a new challenge: nothing was decided.
TRANSIENT = (APIConnectionError, InternalServerError, RateLimitError)


def restarting(login: Callable[[], Flow[AuthTokens]]) -> Flow[AuthTokens]:
    """Run ``login`` from its first step again after a transient failure at any step, while the
    retry policy allows; then the failure is raised.

    One budget for the whole login: the restarts and every repeat of the login's requests count
    in it, so ``max_retries`` bounds them together (a budget per request and another for the
    restarts made (1 + 3) x (1 + 3) = 16 challenges out of ``max_retries=3``). A restart after a
    429 or a 5xx waits its ``Retry-After`` (or gives up when that is past ``max_retry_after``,
    raising the failure): a login sent into KSeF's block would lengthen it.
    """
    budget = RetryBudget()
    while True:
        try:
            return (yield from within_budget(budget, login()))
        except TRANSIENT as error:
            wait = retry_after_of(error)  # a 429's or a 5xx's Retry-After
            if not (yield Retry(budget, f"login ({type(error).__name__})", at_least=wait)):
                raise


def token_login_flow(
    context: tuple[str, str],
    ksef_token: str,
    client: KSeF | AsyncKSeF,
    timeout: float,
    interval: float,
    allowed_ips: AllowedIps | None = None,
) -> Flow[AuthTokens]:
    """Login with a KSeF token (RSA-OAEP encrypted with the challenge's timestamp), the tokens
    restricted to ``allowed_ips`` when given."""
    if not ksef_token:
        raise ValueError("ksef_token: empty")
    return (
        yield from restarting(lambda: _token_login_once(context, ksef_token, client, timeout, interval, allowed_ips))
    )


def _token_login_once(
    context: tuple[str, str],
    ksef_token: str,
    client: KSeF | AsyncKSeF,
    timeout: float,
    interval: float,
    allowed_ips: AllowedIps | None,
) -> Flow[AuthTokens]:
    init = yield from with_keys(
        client._public_keys, lambda keys: _token_init_flow(context, ksef_token, keys, allowed_ips)
    )
    return (yield from _finish_flow(init, client._tokens, context, timeout, interval))


def _token_init_flow(
    context: tuple[str, str], ksef_token: str, keys: list[PublicKeyCertificate], allowed_ips: AllowedIps | None
) -> Flow[AuthenticationInitResponse]:
    """A new challenge, the token encrypted for the current certificate, ``POST /auth/ksef-token``."""
    certificate = select_certificate(keys, TOKEN_ENCRYPTION)
    challenge = parsed(response_of((yield Call(create_challenge))), AuthenticationChallengeResponse)
    policy = _for_challenge(allowed_ips, challenge)
    body = InitTokenAuthenticationRequest(
        challenge=challenge.challenge,
        context_identifier=AuthenticationContextIdentifier(AuthenticationContextIdentifierType(context[0]), context[1]),
        encrypted_token=encrypt_ksef_token(certificate, ksef_token, challenge.timestamp_ms),
    )
    if certificate.public_key_id:
        body.public_key_id = certificate.public_key_id
    if policy is not None:
        body.authorization_policy = _policy_body(policy)
    return parsed(response_of((yield Call(authenticate_ksef_token, {"body": body}))), AuthenticationInitResponse)


def certificate_login_flow(
    context: tuple[str, str],
    credentials: SigningCredentials,
    subject_identifier_type: str,
    client: KSeF | AsyncKSeF,
    timeout: float,
    interval: float,
    verify_chain: bool = False,
    allowed_ips: AllowedIps | None = None,
) -> Flow[AuthTokens]:
    """Login with a certificate: sign ``AuthTokenRequest`` (XAdES) for the challenge, with
    ``allowed_ips``' ``AuthorizationPolicy`` when given."""
    subject_type(subject_identifier_type)
    return (
        yield from restarting(
            lambda: _certificate_login_once(
                context, credentials, subject_identifier_type, client, timeout, interval, verify_chain, allowed_ips
            )
        )
    )


def _certificate_login_once(
    context: tuple[str, str],
    credentials: SigningCredentials,
    subject_identifier_type: str,
    client: KSeF | AsyncKSeF,
    timeout: float,
    interval: float,
    verify_chain: bool,
    allowed_ips: AllowedIps | None,
) -> Flow[AuthTokens]:
    challenge = parsed(response_of((yield Call(create_challenge))), AuthenticationChallengeResponse)
    document = signed_auth_token_request(
        challenge.challenge,
        context[0],
        context[1],
        credentials,
        subject_identifier_type,
        _for_challenge(allowed_ips, challenge),
    )
    return (yield from _signed_login_flow(document, context, client, timeout, interval, verify_chain))


def _signed_login_flow(
    document: bytes,
    context: tuple[str, str],
    client: KSeF | AsyncKSeF,
    timeout: float,
    interval: float,
    verify_chain: bool,
) -> Flow[AuthTokens]:
    """``POST /auth/xades-signature`` with the signed document, then poll and redeem."""
    # Bytes, not BytesIO: the generated code passes the payload to httpx as ``content``, and only
    # bytes work for both the sync and the async client (a file object is a sync-only stream).
    upload = File(payload=cast(BinaryIO, document), file_name="auth.xml", mime_type="application/xml")
    call = Call(authenticate_xades_signature, {"body": upload, "verify_certificate_chain": verify_chain})
    init = parsed(response_of((yield call)), AuthenticationInitResponse)
    return (yield from _finish_flow(init, client._tokens, context, timeout, interval))


def unsigned_request_flow(
    context: tuple[str, str], subject_identifier_type: str, allowed_ips: AllowedIps | None = None
) -> Flow[bytes]:
    """A new challenge and the ``AuthTokenRequest`` for it, unsigned (to be signed elsewhere)."""
    challenge = parsed(response_of((yield Call(create_challenge))), AuthenticationChallengeResponse)
    policy = _for_challenge(allowed_ips, challenge)
    document = build_auth_token_request(challenge.challenge, context[0], context[1], subject_identifier_type, policy)
    return bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8"))


def signed_request_login_flow(
    signed_xml: bytes, client: KSeF | AsyncKSeF, timeout: float, interval: float, verify_chain: bool
) -> Flow[AuthTokens]:
    """Login with an ``AuthTokenRequest`` signed elsewhere. Not restarted after a transient
    failure, unlike the other logins: a new challenge would need a new signature, which only the
    caller can make."""
    context = signed_request_context(signed_xml)
    return (yield from _signed_login_flow(signed_xml, context, client, timeout, interval, verify_chain))


def subject_type(value: str) -> str:
    """``value`` when it is a ``SubjectIdentifierType`` of the schema, else ``ValueError``."""
    if value not in SUBJECT_IDENTIFIER_TYPES:
        raise ValueError(f"subject_identifier_type: {value!r} is not one of {list(SUBJECT_IDENTIFIER_TYPES)}")
    return value


def signed_request_context(signed_xml: bytes) -> tuple[str, str]:
    """The login context named in a signed ``AuthTokenRequest``, checked as KSeF's schema checks
    it; ``ValueError`` for anything that is surely no signed request, or one the schema of its
    namespace refuses (nothing is sent then)."""
    if not isinstance(signed_xml, bytes):
        raise ValueError(f"signed_xml: expected the signed file's bytes, unchanged, got {type(signed_xml).__name__}")
    if declares_entities(signed_xml):
        raise ValueError("signed_xml: documents with a DTD are refused")
    try:
        root = parse(signed_xml)
    except etree.XMLSyntaxError as error:
        raise ValueError(f"signed_xml: not well-formed XML ({error})") from None
    # The request is the root (enveloped signature) or inside ds:Object (enveloping): both allowed
    # by podpis-xades.md ("otaczany (enveloped), otaczający (enveloping)").
    requests = [e for ns in AUTH_NAMESPACES for e in root.iter(f"{{{ns}}}AuthTokenRequest")]
    if len(requests) != 1:
        raise ValueError("signed_xml: expected one AuthTokenRequest (namespace http://ksef.mf.gov.pl/auth/token/2.x)")
    if next(root.iter(f"{{{DSIG_NAMESPACE}}}Signature"), None) is None:
        raise ValueError("signed_xml: no ds:Signature in the document: it is not signed")
    ns = etree.QName(requests[0]).namespace
    identifiers = requests[0].findall(f"{{{ns}}}ContextIdentifier/*")
    if len(identifiers) != 1:
        raise ValueError("signed_xml: expected one identifier in ContextIdentifier")
    kind, value = etree.QName(identifiers[0]).localname, identifiers[0].text or ""
    if kind not in _CONTEXT_CHECKS:
        raise ValueError(f"signed_xml: ContextIdentifier {kind!r} is not one of {list(_CONTEXT_CHECKS)}")
    _CONTEXT_CHECKS[kind](value, "signed_xml: ContextIdentifier")
    try:  # KSeF's schema would refuse it (400 / 21401)
        read_allowed_ips(requests[0])
    except ValueError as error:
        raise ValueError(f"signed_xml: {error}") from None
    _check_schema(requests[0], ns)
    return kind, value


def _check_schema(request: etree._Element, namespace: str) -> None:
    """``ValueError`` naming the first error of a signed ``AuthTokenRequest`` (without its enveloped
    signature, which the schema has no place for) against the schema of its ``namespace``: KSeF
    refuses such a document with 400 / 21401 "Dokument nie jest zgodny ze schemą (xsd)." (the
    spec's POST /auth/xades-signature), after its challenge was spent."""
    errors = auth_request_errors(unsigned_content(request))
    if errors:
        schema = AUTH_SCHEMAS[namespace].rsplit("/", 1)[-1]
        raise ValueError(f"signed_xml: the AuthTokenRequest does not match {schema} (KSeF: 400 / 21401): {errors[0]}")


def install(holder: TokenHolder, tokens: AuthTokens, context: tuple[str, str] | None = None) -> AuthTokens:
    """Make ``tokens`` the client's login (into ``context``, when known: the clients of one
    context share their rate-limit pacing); a refresh of an earlier login still under way is
    then not applied."""
    holder.replace(tokens.access_token, tokens.access_valid_until, tokens.refresh_token, context)
    return tokens


def revoke_flow(holder: TokenHolder) -> Flow[None]:
    """Revoke the login's refresh token."""
    generation = holder.generation
    yield Call(revoke_current_auth_session)
    holder.end_refreshing(generation, "its session was revoked (auth.revoke_current_session)")


def auth_sessions_pages(page_size: int) -> PageFlow[str, AuthenticationListItem]:
    """The pages of ``GET /auth/sessions`` ("Zwraca listę aktywnych sesji uwierzytelnienia", newest
    first: "Sortowanie: startDate (Desc)"), continuation-token paged as the guide walks it
    (auth/sesje.md: ``while (!string.IsNullOrWhiteSpace(continuationToken))``); ``page_size``
    checked now against the spec's 10..100."""
    check_page_size(page_size, list_auth_sessions)

    def page(token: str | None) -> Flow[tuple[list[AuthenticationListItem], str | None]]:
        call = Call(list_auth_sessions, {"page_size": page_size, "x_continuation_token": token or UNSET})
        body = parsed(response_of((yield call)), AuthenticationListResponse)
        return body.items, next_token(body.continuation_token)

    return token_pages(page)


def revoke_session_flow(reference_number: str) -> Flow[None]:
    """``DELETE /auth/sessions/{referenceNumber}``: the session's refresh token stops working, its
    access tokens live until they expire (auth/sesje.md, "Unieważnienie wybranej sesji").

    A revoke the client had to repeat after an attempt KSeF may have carried out (its answer lost)
    and whose repeat KSeF refused is raised as it is, with ``uncertain_attempts`` and a note: the
    spec documents one 400 / 21405 for a session already revoked, one of another context and an
    unknown reference number alike, and a session missing from ``GET /auth/sessions`` may be any of
    those, so neither tells whether the lost attempt revoked it (review of the new wrappers, F1)."""
    validate_reference_number(reference_number)
    yield Call(revoke_auth_session, {"reference_number": reference_number})


class Auth:
    """Logins and token management of the synchronous client."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def public_key_certificates(self, *, refresh: bool = False) -> list[PublicKeyCertificate]:
        """The Ministry's public key certificates (kept for ``KeyCache.max_age`` seconds, an hour;
        ``refresh=True`` fetches them again)."""
        return run(cached_keys_flow(self._client._public_keys, refresh), self._client)

    def login_with_token(
        self,
        ksef_token: str,
        *,
        context_nip: str | None = None,
        context: tuple[str, str] | None = None,
        timeout: float = 120.0,
        interval: float = 1.0,
        allowed_ips: AllowedIps | None = None,
    ) -> AuthTokens:
        """Authenticate with a KSeF token; the client then uses (and refreshes) the access token.

        The client's earlier login stays until this one succeeds (a login that fails leaves it as
        it was). The login's own requests take no token, so an earlier login whose refresh token
        died does not stand in their way.

        ``allowed_ips`` (:class:`~ksef_client.xades.AllowedIps`) restricts where the login's tokens
        work: KSeF refuses them from other addresses (403 ``ip-not-allowed``).
        """
        ctx = context_identifier(context_nip, context)
        flow = token_login_flow(ctx, ksef_token, self._client, timeout, interval, allowed_ips_option(allowed_ips))
        return run(flow, self._client)

    def login_with_certificate(
        self,
        credentials: SigningCredentials,
        *,
        context_nip: str | None = None,
        context: tuple[str, str] | None = None,
        subject_identifier_type: str = "certificateSubject",
        timeout: float = 120.0,
        interval: float = 1.0,
        verify_certificate_chain: bool = False,
        allowed_ips: AllowedIps | None = None,
    ) -> AuthTokens:
        """Authenticate with a certificate and its key (XAdES-signed ``AuthTokenRequest``). The
        client's earlier login stays until this one succeeds, as in :meth:`login_with_token`.

        ``verify_certificate_chain=True`` asks KSeF to check the certificate's chain and its
        revocation (OCSP/CRL) even where self-signed certificates are accepted (TEST): a
        self-signed certificate then fails the login (status 460).

        ``allowed_ips`` (:class:`~ksef_client.xades.AllowedIps`) puts its ``AuthorizationPolicy``
        in the signed document (schema 2.1): KSeF refuses the login's tokens from other addresses
        (403 ``ip-not-allowed``).
        """
        ctx = context_identifier(context_nip, context)
        flow = certificate_login_flow(
            ctx,
            credentials,
            subject_identifier_type,
            self._client,
            timeout,
            interval,
            verify_certificate_chain,
            allowed_ips_option(allowed_ips),
        )
        return run(flow, self._client)

    def unsigned_auth_token_request(
        self,
        *,
        context_nip: str | None = None,
        context: tuple[str, str] | None = None,
        subject_identifier_type: str = "certificateSubject",
        allowed_ips: AllowedIps | None = None,
    ) -> bytes:
        """A new challenge and the ``AuthTokenRequest`` for it, to be signed elsewhere (a
        signing application, Profil Zaufany, a key on a card or an HSM) with an enveloped XAdES
        signature, then given to :meth:`login_with_signed_request`. The challenge lives 10
        minutes (uwierzytelnianie.md: "Czas życia challenge'a wynosi 10 minut").

        ``allowed_ips`` (:class:`~ksef_client.xades.AllowedIps`) is written into the document as
        its ``AuthorizationPolicy`` (schema 2.1; ``include_client_ip`` as the challenge's
        ``clientIp``), so the signature covers it."""
        ctx = context_identifier(context_nip, context)
        flow = unsigned_request_flow(ctx, subject_type(subject_identifier_type), allowed_ips_option(allowed_ips))
        return run(flow, self._client)

    def login_with_signed_request(
        self,
        signed_xml: bytes,
        *,
        timeout: float = 120.0,
        interval: float = 1.0,
        verify_certificate_chain: bool = False,
    ) -> AuthTokens:
        """Authenticate with an ``AuthTokenRequest`` signed elsewhere (the bytes of the signed
        file, unchanged): sent as :meth:`login_with_certificate` sends its own, the login then
        polled and redeemed the same way. The document is checked (well-formed, one
        ``AuthTokenRequest`` with a valid context identifier and, when it has one, a valid
        ``AuthorizationPolicy``, a ``ds:Signature``, and, its enveloped signature aside, valid
        against the schema of its namespace, ``schemat_auth_v2-0.xsd`` or ``v2-1.xsd``: a
        ``ValueError`` names the first error) before it is sent; KSeF verifies the signature.
        The policy the document carries (``unsigned_auth_token_request(allowed_ips=...)``)
        restricts the login's tokens. A failure is not retried from a new challenge, as the
        other logins are: that would need a new signature. A challenge is used once: after a
        refusal sign a new :meth:`unsigned_auth_token_request`. The client's earlier login stays
        until this one succeeds, as in :meth:`login_with_token`.
        """
        flow = signed_request_login_flow(signed_xml, self._client, timeout, interval, verify_certificate_chain)
        return run(flow, self._client)

    def resume(self, tokens: AuthTokens) -> None:
        """Use the tokens of an earlier login (saved by your program): refreshed as usual. They
        replace the client's login; a refresh of the one before still under way is not applied."""
        install(self._client._tokens, tokens)

    def revoke_current_session(self) -> None:
        """Invalidate the refresh token of this login (the access token lives until it expires)."""
        run(revoke_flow(self._client._tokens), self._client)

    def sessions(self, *, page_size: int = 10, cursor: str | None = None) -> Pager[AuthenticationListItem, str]:
        """The active login sessions of the context (``GET /auth/sessions``), newest first, fetched
        page by page as you iterate; ``is_current`` marks this client's own. ``page_size``: 10 to
        100 (the spec's range), checked before any request; ``pager.cursor`` resumes a walk."""
        return pager(auth_sessions_pages(page_size), self._client, cursor)

    def revoke_session(self, reference_number: str) -> None:
        """Revoke a login session of the context (``DELETE /auth/sessions/{referenceNumber}``): its
        refresh token stops working; access tokens already issued live until they expire.

        When the client had to repeat the request after an attempt KSeF may have carried out (its
        answer lost) and KSeF refuses the repeat, the refusal is raised as it is, with
        ``uncertain_attempts`` and a note saying an attempt was lost: KSeF refuses a session
        already revoked, one of another context and an unknown reference number alike (400 /
        21405), and none of them is listed by :meth:`sessions`, so only you can tell whether the
        lost attempt revoked it.
        """
        run(revoke_session_flow(reference_number), self._client)


class AsyncAuth:
    """Logins and token management of the asynchronous client."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def public_key_certificates(self, *, refresh: bool = False) -> list[PublicKeyCertificate]:
        """The Ministry's public key certificates (kept for ``KeyCache.max_age`` seconds, an hour;
        ``refresh=True`` fetches them again)."""
        return await arun(cached_keys_flow(self._client._public_keys, refresh), self._client)

    async def login_with_token(
        self,
        ksef_token: str,
        *,
        context_nip: str | None = None,
        context: tuple[str, str] | None = None,
        timeout: float = 120.0,
        interval: float = 1.0,
        allowed_ips: AllowedIps | None = None,
    ) -> AuthTokens:
        """Authenticate with a KSeF token; the client then uses (and refreshes) the access token.

        ``allowed_ips`` (:class:`~ksef_client.xades.AllowedIps`) restricts where the login's tokens
        work: KSeF refuses them from other addresses (403 ``ip-not-allowed``).
        """
        ctx = context_identifier(context_nip, context)
        flow = token_login_flow(ctx, ksef_token, self._client, timeout, interval, allowed_ips_option(allowed_ips))
        return await arun(flow, self._client)

    async def login_with_certificate(
        self,
        credentials: SigningCredentials,
        *,
        context_nip: str | None = None,
        context: tuple[str, str] | None = None,
        subject_identifier_type: str = "certificateSubject",
        timeout: float = 120.0,
        interval: float = 1.0,
        verify_certificate_chain: bool = False,
        allowed_ips: AllowedIps | None = None,
    ) -> AuthTokens:
        """Authenticate with a certificate and its key (XAdES-signed ``AuthTokenRequest``).

        ``verify_certificate_chain=True`` asks KSeF to check the certificate's chain and its
        revocation (OCSP/CRL) even where self-signed certificates are accepted (TEST): a
        self-signed certificate then fails the login (status 460).

        ``allowed_ips`` (:class:`~ksef_client.xades.AllowedIps`) puts its ``AuthorizationPolicy``
        in the signed document (schema 2.1): KSeF refuses the login's tokens from other addresses
        (403 ``ip-not-allowed``).
        """
        ctx = context_identifier(context_nip, context)
        flow = certificate_login_flow(
            ctx,
            credentials,
            subject_identifier_type,
            self._client,
            timeout,
            interval,
            verify_certificate_chain,
            allowed_ips_option(allowed_ips),
        )
        return await arun(flow, self._client)

    async def unsigned_auth_token_request(
        self,
        *,
        context_nip: str | None = None,
        context: tuple[str, str] | None = None,
        subject_identifier_type: str = "certificateSubject",
        allowed_ips: AllowedIps | None = None,
    ) -> bytes:
        """A new challenge and the ``AuthTokenRequest`` for it, to be signed elsewhere; see
        :meth:`Auth.unsigned_auth_token_request`."""
        ctx = context_identifier(context_nip, context)
        flow = unsigned_request_flow(ctx, subject_type(subject_identifier_type), allowed_ips_option(allowed_ips))
        return await arun(flow, self._client)

    async def login_with_signed_request(
        self,
        signed_xml: bytes,
        *,
        timeout: float = 120.0,
        interval: float = 1.0,
        verify_certificate_chain: bool = False,
    ) -> AuthTokens:
        """Authenticate with an ``AuthTokenRequest`` signed elsewhere; see
        :meth:`Auth.login_with_signed_request`."""
        flow = signed_request_login_flow(signed_xml, self._client, timeout, interval, verify_certificate_chain)
        return await arun(flow, self._client)

    def resume(self, tokens: AuthTokens) -> None:
        """Use the tokens of an earlier login (saved by your program): refreshed as usual. They
        replace the client's login; a refresh of the one before still under way is not applied."""
        install(self._client._tokens, tokens)

    async def revoke_current_session(self) -> None:
        """Invalidate the refresh token of this login (the access token lives until it expires)."""
        await arun(revoke_flow(self._client._tokens), self._client)

    def sessions(self, *, page_size: int = 10, cursor: str | None = None) -> AsyncPager[AuthenticationListItem, str]:
        """The active login sessions of the context (``async for``); see :meth:`Auth.sessions`."""
        return apager(auth_sessions_pages(page_size), self._client, cursor)

    async def revoke_session(self, reference_number: str) -> None:
        """Revoke a login session of the context; see :meth:`Auth.revoke_session`."""
        await arun(revoke_session_flow(reference_number), self._client)
