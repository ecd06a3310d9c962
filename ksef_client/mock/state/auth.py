"""Who is calling: challenges, auth operations, KSeF tokens, JWTs.

The flow is KSeF's: challenge -> ``ksef-token`` (RSA-OAEP encrypted token) or ``xades-signature``
(signed ``AuthTokenRequest``) -> auth operation polled with the authentication token -> redeem
once -> access + refresh token. Access tokens carry the context, the permissions and the subject
that authenticated (``Access.subject``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree

from ksef_client.crypto import TOKEN_ENCRYPTION, rsa_decrypt, sha256_b64
from ksef_client.identifiers import is_peppol_id, validate_nip
from ksef_client.mock.exceptions import Forbidden, MockAPIError, NotFound, Unauthorized
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.state.auth_signature import AuthSignatureError, verify_auth_document
from ksef_client.mock.state.certificates import (
    Certificates,
    KsefCertificate,
    LoginName,
    login_problem,
    name_attributes,
)
from ksef_client.mock.state.core import VALIDATION, Access, Context, Core, Status
from ksef_client.mock.state.ip_policy import IP_NOT_ALLOWED, IpPolicy, ip_policy
from ksef_client.mock.state.permissions import Permissions
from ksef_client.mock.state.testdata import TestData
from ksef_client.schemas import auth_request_errors
from ksef_client.xades import (
    AUTH_NAMESPACES,
    CONTEXT_TYPES,
    AllowedIps,
    SignatureVerificationError,
)

ALL_PERMISSIONS = (
    "InvoiceRead", "InvoiceWrite", "Introspection", "CredentialsRead", "CredentialsManage",
    "SubunitManage", "EnforcementOperations", "CollectiveIdentifierManage",
)  # fmt: skip
TOKEN_PERMISSIONS = frozenset(ALL_PERMISSIONS)  # the spec's TokenPermissionType
# Who may see (GET /tokens, GET /tokens/{ref}) and revoke (DELETE /tokens/{ref}) any token of the
# context; others only their own (``Auth._own_token``).
READ_ANY_TOKEN = frozenset({"CredentialsRead", "CredentialsManage"})
REVOKE_ANY_TOKEN = frozenset({"CredentialsManage"})
CHALLENGE_TTL = dt.timedelta(minutes=10)
AUTH_TOKEN_TTL = dt.timedelta(minutes=15)
ACCESS_TOKEN_TTL = dt.timedelta(minutes=15)
REFRESH_TOKEN_TTL = dt.timedelta(days=7)
AUTH_TEXT = {
    100: "Uwierzytelnianie w toku",
    200: "Uwierzytelnianie zakończone sukcesem",
    415: "Uwierzytelnianie zakończone niepowodzeniem",
    425: "Uwierzytelnienie unieważnione",
    450: "Uwierzytelnianie zakończone niepowodzeniem z powodu błędnego tokenu",
    460: "Uwierzytelnianie zakończone niepowodzeniem z powodu błędu certyfikatu",
    470: "Uwierzytelnianie zakończone niepowodzeniem",  # the spec's text for 470, as for 415
    480: "Uwierzytelnianie zablokowane",
}
# The spec's status table: "470 | Uwierzytelnianie zakończone niepowodzeniem | Próba wykorzystania
# metod autoryzacyjnych osoby zmarłej".
DECEASED_DETAIL = "Próba wykorzystania metod autoryzacyjnych osoby zmarłej"
# POST /auth/token/redeem and /auth/token/refresh, 400: "21308 | Próba wykorzystania metod
# autoryzacyjnych osoby zmarłej. |" (no details).
DECEASED_CODE, DECEASED_TEXT = 21308, "Próba wykorzystania metod autoryzacyjnych osoby zmarłej."
# What a Peppol service provider's login may do in its PeppolId context: the spec lists
# PefInvoiceWrite among "Wymagane jedno z uprawnień" of the online session's operations (open, send,
# close), of GET /sessions/{referenceNumber} and of POST /permissions/query/authorizations/grants
# (the PefInvoicing authorizations the provider was given). It is no grant: the provider's
# certificate gives it (``peppol_id_of``).
PEPPOL_PERMISSIONS = frozenset({"PefInvoiceWrite"})
_PERSON_NIP = re.compile(r"(TINPL|NIP).*?(\d{10})")
_PERSON_PESEL = re.compile(r"(PNOPL|PESEL).*?(\d{11})")
_SEAL_NIP = re.compile(r"(VATPL).*?(\d{10})")


@dataclass
class KsefToken:
    """A KSeF token issued by ``POST /tokens``; only its hash is kept."""

    reference_number: str
    secret_hash: str
    context: Context
    permissions: frozenset[str]
    description: str
    created: dt.datetime
    author: tuple[str, str]
    status: str = "Active"
    last_use: dt.datetime | None = None
    # A new token is Pending until this many more status reads, or until ``activates_at``
    # (``Transitions.token_reads``, ``token_activation``).
    reads_left: int = 0
    activates_at: dt.datetime | None = None


@dataclass
class AuthOperation:
    """One authentication attempt and, once redeemed, its tokens."""

    reference_number: str
    context: Context
    method: str
    category: str
    started: dt.datetime
    status: Status
    permissions: frozenset[str] = frozenset()
    subject: tuple[str, str] = ("", "")
    ksef_token_reference: str | None = None
    document_hash: str | None = None
    redeemed: bool = False
    refresh_valid_until: dt.datetime | None = None
    last_refresh: dt.datetime | None = None
    revoked: bool = False
    # A success held back for ``reads_left`` status reads (``Transitions.auth_reads``).
    pending_permissions: frozenset[str] | None = None
    reads_left: int = 0
    # The subject names of the certificate a XAdES login signed with (certificate requests are
    # made with them); empty for a KSeF token.
    certificate_name: LoginName = ()
    # The login's AuthorizationPolicy: where its access and refresh tokens may be used from
    # (``Auth.check_address``); ``None``: from anywhere.
    allowed_ips: IpPolicy | None = None


@dataclass
class AuthState:
    """Open challenges (challenge -> timestamp ms, expiry), auth operations, KSeF tokens."""

    challenges: dict[str, tuple[int, dt.datetime]] = field(default_factory=dict)
    operations: dict[str, AuthOperation] = field(default_factory=dict)
    tokens: dict[str, KsefToken] = field(default_factory=dict)


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint (of its DER form), in upper-case hex, as grants to a
    ``Fingerprint`` subject name it."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest().upper()


def _is_person_certificate(certificate: x509.Certificate) -> bool:
    """A person's certificate names the person: auth/podpis-xades.md requires givenName and surname
    of "Certyfikaty podpisu kwalifikowanego (wydawane dla osób fizycznych)", and for seals lists
    them under "Niedopuszczalne atrybuty podmiotu: givenName, surname"."""
    subject = certificate.subject
    return bool(subject.get_attributes_for_oid(NameOID.GIVEN_NAME) or subject.get_attributes_for_oid(NameOID.SURNAME))


def is_seal_certificate(certificate: x509.Certificate) -> bool:
    """A company seal: an ``organizationIdentifier`` and no given name or surname
    (auth/podpis-xades.md, "Certyfikaty pieczęci kwalifikowanej (wydawane dla organizacji)")."""
    has_organization = bool(certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER))
    return has_organization and not _is_person_certificate(certificate)


def certificate_subject_identifier(certificate: x509.Certificate) -> tuple[str, str] | None:
    """``("Nip", nip)`` or ``("Pesel", pesel)`` the certificate's subject names, as KSeF reads it for
    ``certificateSubject``; ``None`` when it names neither.

    auth/podpis-xades.md: a seal's identifier is in ``organizationIdentifier``
    ("(VATPL).*?(?<identifier>\\d{10})"); a person's in ``serialNumber``
    ("(PNOPL|PESEL).*?(?<identifier>\\d{11})", "(TINPL|NIP).*?(?<identifier>\\d{10})"). A person's
    certificate (with given name and surname) that also carries the employer's
    ``organizationIdentifier`` is still the person's: the employer's NIP there is not read, so the
    person needs a grant in the employer's context (uwierzytelnianie.md: for a PESEL certificate
    "System KSeF sprawdzi, czy ta osoba posiada uprawnienia do działania w imieniu firmy").
    """
    subject = certificate.subject
    if not _is_person_certificate(certificate):
        for attribute in subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER):
            if match := _SEAL_NIP.search(str(attribute.value)):
                return "Nip", match[2]
    # A person's identifier; also read (leniently) on a certificate that names no person and no
    # organization, as the emulator always did.
    for attribute in subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
        value = str(attribute.value)
        if match := _PERSON_NIP.search(value):
            return "Nip", match[2]
        if match := _PERSON_PESEL.search(value):
            return "Pesel", match[2]
    return None


def certificate_identity(certificate: x509.Certificate) -> tuple[str, str]:
    """``(kind, value)`` named by a certificate: ``("Nip", nip)`` or ``("Pesel", pesel)`` from its
    subject, else ``("Fingerprint", sha256)``."""
    return certificate_subject_identifier(certificate) or ("Fingerprint", certificate_fingerprint(certificate))


def xades_login_subject(
    certificate: x509.Certificate, issued: KsefCertificate | None, subject_identifier_type: str
) -> tuple[str, str]:
    """Who a XAdES login authenticates, by the document's ``SubjectIdentifierType``.

    uwierzytelnianie.md: "certificateSubject (np. NIP/PESEL z certyfikatu) lub
    certificateFingerprint (odcisk palca certyfikatu)"; with the fingerprint, the signer acts by
    the grants to "certyfikatem o odcisku ... na który złożono uprawnienia do działania w imieniu
    firmy", whatever NIP or PESEL the certificate names. ``certificateSubject`` with a certificate
    that names no NIP or PESEL is the spec's 400 "21406 Konflikt podpisu i typu uwierzytelnienia"
    (auth/podpis-xades.md: such certificates log in "po uprzednim nadaniu uprawnień na skrót
    SHA-256", i.e. by fingerprint). A KSeF certificate's subject is the requester it was issued to.
    """
    if subject_identifier_type == "certificateFingerprint":
        return "Fingerprint", certificate_fingerprint(certificate)
    if issued is not None:
        return issued.subject
    found = certificate_subject_identifier(certificate)
    if found is None:
        raise MockAPIError(
            21406, "Konflikt podpisu i typu uwierzytelnienia.",
            ["Certyfikat nie zawiera identyfikatora NIP ani PESEL; użyj SubjectIdentifierType certificateFingerprint."],
        )  # fmt: skip
    return found


def peppol_id_of(certificate: x509.Certificate) -> str | None:
    """The PeppolId a Peppol service provider's certificate names, or ``None``.

    uwierzytelnianie.md lists among the certificates a login may be signed with "Certyfikat dostawcy
    usług Peppol - zawierający identyfikator dostawcy", and api-changelog.md (2.x) registers the
    provider "przy pierwszym uwierzytelnieniu dostawcy usług Peppol (z użyciem dedykowanego
    certyfikatu)". Neither says where the certificate holds the identifier. The emulator takes the
    certificate the official clients' tests log in with on TEST: a company seal (no given name or
    surname) whose ``commonName`` is the PeppolId (the C# client: "pierwsze uwierzytelnienie
    pieczęcią z O + CN=PeppolId"; the Java client's seal has it as commonName and
    organizationIdentifier), the spec's ``PeppolId`` "^P[A-Z]{2}[0-9]{6}$".
    """
    if _is_person_certificate(certificate):
        return None
    for name in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        if is_peppol_id(value := str(name.value).strip()):
            return value
    return None


def peppol_provider_name(certificate: x509.Certificate) -> str:
    """The name a provider is registered under: its certificate's ``organizationName`` (the
    official clients' seals carry it: "O + CN=PeppolId"), else its ``commonName``."""
    for oid in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        for attribute in certificate.subject.get_attributes_for_oid(oid):
            if str(attribute.value).strip():
                return str(attribute.value).strip()
    return ""


def issued_by_emulator(certificate: x509.Certificate) -> bool:
    """Whether the emulator's own CA (the KSeF certificates it enrolls) signed ``certificate``:
    the only chain it can verify, as TEST verifies chains to the trusted CAs."""
    ca = emulator_keys().upo_signing.certificate
    public_key = ca.public_key()
    if certificate.issuer != ca.subject or not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        assert certificate.signature_hash_algorithm is not None
        public_key.verify(
            certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(),
            certificate.signature_hash_algorithm,
        )  # fmt: skip
    except Exception:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _verified_claims(secret: bytes, token: str) -> dict[str, Any]:
    """The claims of a token whose signature ``secret`` verifies (read-only: shared by every request
    with the same token, which is almost every request, so each token is verified once). Times are
    checked by the caller against the backend's clock, which tests move."""
    claims: dict[str, Any] = jwt.decode(
        token, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False, "verify_nbf": False}
    )
    return claims


class Auth:
    """Challenges, logins, tokens."""

    def __init__(self, core: Core, permissions: Permissions, testdata: TestData, certificates: Certificates) -> None:
        self.core = core
        self.permissions = permissions
        self.testdata = testdata
        self.certificates = certificates  # the KSeF certificates it issued: whether one may log in
        self.state = AuthState()

    # --- JWTs ----------------------------------------------------------------------------------

    def _jwt(self, kind: str, ttl: dt.timedelta, **claims: Any) -> tuple[str, dt.datetime]:
        now = self.core.clock()
        expires = now + ttl
        body = {**claims, "typ": kind, "iat": int(now.timestamp()), "exp": int(expires.timestamp())}
        body["jti"] = secrets.token_hex(8)
        return jwt.encode(body, self.core.secret, algorithm="HS256"), expires

    def claims(self, authorization: str | None, *kinds: str) -> dict[str, Any]:
        """The claims of a ``Bearer`` token of one of ``kinds`` (access, authentication, refresh);
        401 otherwise."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("Brak tokenu.")
        try:
            claims = _verified_claims(self.core.secret, authorization[7:])
        except jwt.InvalidTokenError as error:
            raise Unauthorized("Nieprawidłowy token.") from error
        if claims.get("typ") not in kinds:
            raise Unauthorized(f"Oczekiwano tokenu typu {' lub '.join(kinds)}.")
        if claims["exp"] <= self.core.clock().timestamp():
            raise Unauthorized("Token wygasł.")
        return claims

    def mint_access_token(
        self, context_nip: str | None = None, *, context: Context | None = None,
        permissions: Iterable[str] = ALL_PERMISSIONS, ttl: dt.timedelta = ACCESS_TOKEN_TTL,
        subject: tuple[str, str] | None = None, allowed_ips: AllowedIps | None = None,
    ) -> str:  # fmt: skip
        """Issue an access token without the auth flow (the documented shortcut for tests).

        The token belongs to a redeemed auth session, like a real login: it is listed by
        ``GET /auth/sessions`` and ``DELETE /auth/sessions/current`` revokes it. ``allowed_ips``:
        the login's IP policy, as a login's ``allowed_ips=`` sets it (requests with the token from
        any other address are refused: 403 ``ip-not-allowed``); the addresses must be named, as
        there is no challenge whose ``clientIp`` ``include_client_ip=True`` could take.
        """
        if context is None:
            if context_nip is None:
                raise ValueError("mint_access_token needs context_nip or context")
            context = Context("Nip", validate_nip(context_nip, "context_nip"))
        who = subject or ("Nip", context.nip or context.value)
        policy = None if allowed_ips is None else _minted_policy(allowed_ips)
        operation = self._start(context, "Token", "Token")
        operation.subject, operation.redeemed, operation.allowed_ips = who, True, policy
        self._succeed(operation, frozenset(permissions))
        token, _ = self._access_for(operation, ttl)
        return token

    def authenticate(self, authorization: str | None) -> Access:
        """Verify a ``Bearer`` access token; ``Unauthorized`` otherwise."""
        claims = self.claims(authorization, "access")
        subject = claims.get("who") or ("", "")
        return Access(Context(*claims["ctx"]), frozenset(claims["per"]), claims["ref"], (subject[0], subject[1]))

    # --- challenge -----------------------------------------------------------------------------

    def create_challenge(self) -> tuple[str, dt.datetime, int]:
        """A challenge valid for 10 minutes: ``(challenge, timestamp, timestampMs)``."""
        now = self.core.clock()
        challenge = self.core.new_reference_number("CR")
        millis = int(now.timestamp() * 1000)
        with self.core.lock:
            self.state.challenges[challenge] = (millis, now + CHALLENGE_TTL)
        return challenge, now, millis

    def _use_challenge(self, challenge: str) -> int:
        with self.core.lock:
            found = self.state.challenges.pop(challenge, None)
        if found is None or found[1] <= self.core.clock():
            raise MockAPIError(
                21111, "Nieprawidłowe wyzwanie autoryzacyjne.",
                [f"Wyzwanie {challenge} jest nieznane, zużyte lub wygasło."],
            )  # fmt: skip
        return found[0]

    # --- KSeF tokens ---------------------------------------------------------------------------

    def create_ksef_token(self, access: Access, permissions: Iterable[str], description: str) -> tuple[str, str]:
        """Issue a KSeF token in the caller's context: ``(reference number, token)``; shown once.

        A token can do at most what its creator may do (it cannot widen the creator's rights).
        """
        wanted = frozenset(permissions)
        unknown = wanted - TOKEN_PERMISSIONS
        if not wanted or unknown:
            raise MockAPIError(21405, VALIDATION, [f"permissions: nieprawidłowe {sorted(unknown)}."])
        beyond = wanted - access.permissions
        if beyond:
            raise MockAPIError(
                26001, "Nie można nadać tokenowi uprawnień których nie posiadasz.", [f"Brakujące: {sorted(beyond)}."]
            )
        if access.context.type not in ("Nip", "InternalId"):
            raise MockAPIError(
                26002, "Nie można wygenerować tokena dla obecnego typu kontekstu.",
                [f"Kontekst {access.context.type}; dozwolone: Nip, InternalId."],
            )  # fmt: skip
        ref = self.core.new_reference_number("EC")
        secret = f"{ref}|{access.context.type.lower()}-{access.context.value}|{secrets.token_hex(32)}"
        now = self.core.clock()
        token = KsefToken(ref, _sha(secret), access.context, wanted, description, now, access.subject)
        transitions = self.core.transitions
        if transitions.token_reads > 0:  # "Zaczyna być aktywny w momencie gdy jego status zmieni się na Active"
            token.status, token.reads_left = "Pending", transitions.token_reads
            token.activates_at = now + dt.timedelta(seconds=transitions.token_activation)
        with self.core.lock:
            self.state.tokens[ref] = token
        return ref, secret

    def _activate(self, token: KsefToken, *, read: bool) -> KsefToken:
        """Move a Pending token on: one status read more (``read``), or its activation time passed."""
        with self.core.lock:
            if token.status == "Pending":
                if read:
                    token.reads_left -= 1
                due = token.activates_at is not None and token.activates_at <= self.core.clock()
                if token.reads_left <= 0 or due:
                    token.status, token.reads_left = "Active", 0
        return token

    def ksef_token(self, access: Access, reference_number: str) -> KsefToken:
        """A token of the caller's context (``GET /tokens/{ref}``: a status read): any of them with
        ``CredentialsRead`` or ``CredentialsManage``; without them, a token the caller's subject
        authored (``_authored``: a KSeF-token login's subject is its token's author; the NIP-PESEL
        link counts), else 403 ``missing-permissions`` (``_check_token_right``).

        The emulator's reading; the spec names no rule for this read. api-changelog.md 2.4.0: "GET
        /tokens oraz GET /tokens/{referenceNumber} zwracają informacje o tokenie użytym do
        uwierzytelnienia również wtedy, gdy nie posiada on uprawnień CredentialsManage /
        CredentialsRead", which implies that other tokens need those rights. The Ministry's E2E tests
        (run against TEST) fit it: ``KsefToken_GetSelf_WithoutCredentialsManage...`` (2.6.1) reads the
        token used to log in, and ``KsefTokenE2ETests.When_KsefTokensAreActive_ThenTryToRevokeOneWithAnother``
        reads, with a login by one token holding neither right, another token of the same author
        (expecting ``Revoked``). Wider than the listing (which shows a token login its own token
        alone) so that this test passes; narrower than "any token of the context", which showed
        anyone's tokens, their authors' PESELs too, to a login without rights."""
        token = self._token_of_context(access, reference_number)
        self._check_token_right(access, token, READ_ANY_TOKEN, own=self._authored(access, token))
        return self._activate(token, read=True)

    def _token_of_context(self, access: Access, reference_number: str) -> KsefToken:
        """A token of the caller's context; 400 / 21405 for any other reference number: the spec's
        400 tables of ``GET`` and ``DELETE /tokens/{referenceNumber}`` list that code alone (no
        code for an unknown token; a token of another context is unknown in this one)."""
        token = self.state.tokens.get(reference_number)
        if token is None or token.context != access.context:
            raise NotFound(21405, VALIDATION, [f"Token KSeF o numerze referencyjnym {reference_number} nie istnieje."])
        return token

    def _check_token_right(self, access: Access, token: KsefToken, rights: frozenset[str], *, own: bool) -> None:
        """403 ``missing-permissions`` unless the caller holds one of ``rights`` or the token is its
        own (``own``: ``_own_token`` for a revoke, ``_authored`` for a status read).

        Spec, DELETE /tokens/{referenceNumber}: "Jeżeli podmiot posiada uprawnienie
        CredentialsManage, może unieważnić dowolny aktywny token w danym kontekście [...] Jeżeli
        podmiot nie posiada powyższego uprawnienia, zakres unieważnienia jest ograniczony" (GET
        /tokens narrows its listing the same way with "CredentialsManage lub CredentialsRead":
        ``ksef_tokens``). The docs do not name the refusal: the spec's 403
        ``missing-permissions`` (its problem details) is the one whose text fits ("Brak
        wymaganych uprawnień do wykonania operacji w bieżącym kontekście").
        """
        if access.permissions & rights or own:
            return
        raise Forbidden(
            f"Token {token.reference_number} nie jest tokenem wywołującego; wymagane jedno z uprawnień: "
            f"{', '.join(sorted(rights))}.",
            security={"requiredAnyOfPermissions": sorted(rights), "presentPermissions": sorted(access.permissions)},
        )

    def _own_token(self, access: Access, token: KsefToken) -> bool:
        """Whether ``token`` is the caller's own, by the spec's two rules (GET and DELETE /tokens):
        "Dla podmiotu uwierzytelnionego tokenem [...] wyłącznie tokena użytego do uwierzytelnienia";
        "Dla pozostałych metod uwierzytelnienia [...] tokeny, których jest autorem - z
        uwzględnieniem powiązania NIP-PESEL" (a person registered by ``/testdata/person`` is one
        author under her NIP and her PESEL)."""
        operation = self.state.operations.get(access.auth_reference_number)
        used = operation.ksef_token_reference if operation is not None else None
        if used is not None:
            return token.reference_number == used
        return self._authored(access, token)

    def _authored(self, access: Access, token: KsefToken) -> bool:
        """Whether the caller's subject authored ``token`` (a person registered by ``/testdata/person``
        is one author under her NIP and her PESEL). A KSeF-token login's subject is its token's
        author, so such a login counts the tokens that author made."""
        return bool(self.testdata.identities(access.subject) & self.testdata.identities(token_author(token)))

    def ksef_tokens(
        self, access: Access, statuses: Iterable[str] = (), description: str | None = None,
        author: str | None = None, author_type: str | None = None,
    ) -> list[KsefToken]:  # fmt: skip
        """Tokens of the caller's context, newest first (``dateCreated`` descending, as KSeF sorts
        them); only those in ``statuses``, whose description contains ``description``, or whose
        author's identifier (of ``author_type``) contains ``author``, when given (case-insensitive).

        Without ``CredentialsRead`` or ``CredentialsManage`` only the caller's own tokens (spec, GET
        /tokens: "Jeżeli podmiot nie posiada żadnego z powyższych uprawnień, zakres wyników jest
        ograniczony"; ``_own_token``)."""
        wanted = set(statuses)
        every = bool(access.permissions & READ_ANY_TOKEN)
        found = []
        for token in list(self.state.tokens.values()):
            if token.context != access.context or not (every or self._own_token(access, token)):
                continue
            self._activate(token, read=False)
            kind, value = token_author(token)
            if (
                (not wanted or token.status in wanted)
                and (description is None or description.lower() in token.description.lower())
                and (author is None or author.lower() in value.lower())
                and (author_type is None or author_type == kind)
            ):
                found.append(token)
        return sorted(found, key=token_listing_key, reverse=True)

    def revoke_ksef_token(self, access: Access, reference_number: str) -> None:
        """Revoke a token: it can no longer authenticate (access tokens already issued live on).
        Another's token only with ``CredentialsManage`` (``_check_token_right``).

        A token already ``Revoked`` (or ``Failed``) is answered 204 again and stays as it is: the
        emulator's choice. The spec lets ``CredentialsManage`` revoke "dowolny aktywny token" but
        names no error for one that is not active, and neither tokeny-ksef.md nor the Ministry's
        clients say what KSeF answers then."""
        token = self._token_of_context(access, reference_number)
        self._check_token_right(access, token, REVOKE_ANY_TOKEN, own=self._own_token(access, token))
        token.status = "Revoked"

    # --- authentication ------------------------------------------------------------------------

    def _start(self, context: Context, method: str, category: str) -> AuthOperation:
        now = self.core.clock()
        operation = AuthOperation(
            self.core.new_reference_number("AU"), context, method, category, now, Status(100, AUTH_TEXT[100])
        )
        with self.core.lock:
            self.state.operations[operation.reference_number] = operation
        return operation

    @staticmethod
    def _fail(operation: AuthOperation, code: int, detail: str) -> None:
        operation.status = Status(code, AUTH_TEXT[code], [detail])

    @staticmethod
    def _succeed(operation: AuthOperation, permissions: frozenset[str]) -> None:
        operation.permissions = permissions
        operation.status = Status(200, AUTH_TEXT[200])

    def authenticate_with_ksef_token(
        self, challenge: str, context: Context, encrypted_token: str, public_key_id: str | None = None,
        allowed_ips: IpPolicy | None = None,
    ) -> tuple[AuthOperation, str, dt.datetime]:  # fmt: skip
        """``POST /auth/ksef-token``: the operation, its authentication token and expiry; the
        tokens it yields are bound to ``allowed_ips`` (``authorizationPolicy``) when given."""
        _check_context(context)
        millis = self._use_challenge(challenge)
        pair = emulator_keys().token_encryption
        if public_key_id is not None and emulator_keys().by_public_key_id(public_key_id, TOKEN_ENCRYPTION) is None:
            raise MockAPIError(
                21470, "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.",
                [f"Klucz o identyfikatorze {public_key_id} nie jest wspierany."],
            )  # fmt: skip
        operation = self._start(context, "Token", "Token")
        operation.allowed_ips = allowed_ips
        read = _read_token(pair.private_key, encrypted_token)
        if isinstance(read, str):
            self._fail(operation, 450, read)
            return (operation, *self._auth_token(operation))
        secret, stamp = read
        token = next((t for t in self.state.tokens.values() if t.secret_hash == _sha(secret)), None)
        if token is not None:
            self._activate(token, read=False)
        if self.testdata.is_blocked(context):
            self._fail(operation, 480, "Uwierzytelnianie w kontekście zablokowane.")
        elif stamp != str(millis):
            self._fail(operation, 450, "Nieprawidłowy czas tokena")
        elif token is None:
            self._fail(operation, 450, "Nieprawidłowy token")
        elif token.status in ("Revoking", "Revoked"):
            self._fail(operation, 450, "Token unieważniony")
        elif token.status != "Active":  # Pending (not yet usable) or Failed
            self._fail(operation, 450, "Token nieaktywny")
        elif token.context != context:
            self._fail(operation, 450, f"Token nie może być użyty w kontekście {context.value}")
        elif self._is_deceased(token.author):
            self._fail(operation, 470, DECEASED_DETAIL)
        elif (carried := self._token_permissions(token)) is None:
            self._fail(operation, 415, "Brak uprawnień w kontekście.")
        else:
            token.last_use = self.core.clock()
            operation.ksef_token_reference = token.reference_number
            operation.subject = token.author
            self._succeed(operation, carried)
        return (operation, *self._auth_token(operation))

    def _token_permissions(self, token: KsefToken) -> frozenset[str] | None:
        """What a login with ``token`` may do now: the token's permissions its author still holds in
        the token's context; ``None`` when none is left (the login fails with 415, as a XAdES login
        without permissions does).

        uwierzytelnianie.md, of the KSeF-token login: "Informacja o podmiocie uwierzytelniającym
        odczytywana jest na podstawie przesłanego tokena KSeF. Podmiot uwierzytelniający podlega
        weryfikacji - system sprawdzi, czy wskazany podmiot posiada co najmniej jedno aktywne
        uprawnienie do wybranego kontekstu. Brak takich uprawnień uniemożliwia uzyskanie tokena
        dostępowego"; and a refresh gives "aktualnym zestawem uprawnień i ról". A token is made
        with at most its creator's permissions (26001), so it carries what both still have.
        """
        current = self.permissions.login_permissions(token.context, token_author(token))
        return ((token.permissions & current) or None) if current is not None else None

    def _is_deceased(self, who: tuple[str, str]) -> bool:
        """Whether ``who`` is a person ``/testdata/person`` registered with ``isDeceased``."""
        person = self.testdata.person(who[1])
        return person is not None and person.is_deceased

    def authenticate_with_xades(
        self, document: bytes, *, verify_chain: bool = False
    ) -> tuple[AuthOperation, str, dt.datetime]:
        """``POST /auth/xades-signature``: verify the signature and the signer's right to act.

        ``verify_chain`` (``verifyCertificateChain=true``): the certificate must chain to a CA the
        emulator trusts (its own, which issues KSeF certificates), so a self-signed one fails (460)
        although TEST accepts self-signed certificates otherwise.
        """
        try:
            verified = verify_auth_document(document)  # enveloped or enveloping (auth/podpis-xades.md)
        except AuthSignatureError as error:  # 9102 no signature, 9103 more than one, 21115 a weak key
            raise MockAPIError(error.code, error.description, [str(error)]) from error
        except SignatureVerificationError as error:
            raise MockAPIError(9105, "Nieprawidłowy podpis.", [str(error)]) from error
        challenge, context, subject_type, allowed_ips = _read_auth_request(verified.root)
        certificate = verified.certificate
        issued = self.certificates.issued(certificate)  # a KSeF certificate: its subject is the requester
        peppol_id = peppol_id_of(certificate) if issued is None else None
        # A provider's seal is the provider in its PeppolId context, and wherever it names no NIP.
        as_provider = peppol_id is not None and (
            context.type == "PeppolId" or certificate_subject_identifier(certificate) is None
        )
        if as_provider and subject_type == "certificateSubject":
            kind, value = "PeppolId", str(peppol_id)
        else:
            kind, value = xades_login_subject(certificate, issued, subject_type)
        # The provider in its own context: its seal, or a KSeF certificate issued to it (its requester).
        own_context = context.type == "PeppolId" and (kind, value) == ("PeppolId", context.value)
        provider = context.value if own_context else None
        self._use_challenge(challenge)
        method = "PeppolSignature" if as_provider else _xades_method(certificate, issued)
        operation = self._start(context, method, "XadesSignature")
        operation.subject = (kind, value)
        operation.allowed_ips = allowed_ips
        operation.certificate_name = name_attributes(certificate.subject)
        operation.document_hash = sha256_b64(document)
        now = self.core.clock()
        person = self.testdata.person(value)
        # The owner's permissions (its NIP, or a PESEL /testdata/person links to it) or the grants';
        # in a PeppolId context the provider's, whose certificate names it (no grant opens one).
        if context.type == "PeppolId":
            granted = PEPPOL_PERMISSIONS if provider is not None else None
        else:
            granted = self.permissions.login_permissions(context, (kind, value))
        problem = _certificate_problem(certificate, issued, now, verify_chain)
        if problem is not None:
            self._fail(operation, 460, problem)
        elif self.testdata.is_blocked(context):
            self._fail(operation, 480, "Uwierzytelnianie w kontekście zablokowane.")
        elif person is not None and person.is_deceased:
            self._fail(operation, 470, DECEASED_DETAIL)
        elif granted is not None:
            self._succeed(operation, granted)
            if provider is not None:  # "automatyczna rejestracja" at its first login
                self.testdata.register_peppol_provider(provider, peppol_provider_name(certificate))
        else:
            self._fail(operation, 415, "Brak uprawnień w kontekście.")
        return (operation, *self._auth_token(operation))

    def _auth_token(self, operation: AuthOperation) -> tuple[str, dt.datetime]:
        reads = self.core.transitions.auth_reads
        if operation.status.code == 200 and reads > 0:
            operation.status = Status(100, AUTH_TEXT[100])
            operation.pending_permissions, operation.reads_left = operation.permissions, reads
        return self._jwt("authentication", AUTH_TOKEN_TTL, ref=operation.reference_number)

    def auth_operation_for(self, authorization: str | None, reference_number: str | None = None) -> AuthOperation:
        """The operation an authentication token belongs to (and, if given, must match)."""
        claims = self.claims(authorization, "authentication")
        operation = self.state.operations.get(claims["ref"])
        if operation is None or (reference_number is not None and reference_number != operation.reference_number):
            raise NotFound(
                21304, "Brak uwierzytelnienia.",
                [f"Operacja uwierzytelniania o numerze referencyjnym {reference_number} nie została znaleziona."],
            )  # fmt: skip
        if operation.status.code == 100 and operation.pending_permissions is not None:
            operation.reads_left -= 1
            if operation.reads_left <= 0:
                self._succeed(operation, operation.pending_permissions)
                operation.pending_permissions = None
        return operation

    def redeem(self, authorization: str | None) -> tuple[tuple[str, dt.datetime], tuple[str, dt.datetime]]:
        """Access and refresh tokens of a successful operation, once."""
        operation = self.auth_operation_for(authorization)
        with self.core.lock:
            if operation.redeemed:
                raise MockAPIError(
                    21301, "Brak autoryzacji.",
                    [f"Tokeny dla operacji uwierzytelniania {operation.reference_number} zostały już pobrane."],
                )  # fmt: skip
            if operation.status.code != 200:
                raise MockAPIError(
                    21301, "Brak autoryzacji.",
                    [f"Status uwierzytelniania ({operation.status.code}) nie pozwala na pobranie tokenów."],
                )  # fmt: skip
            self._check_still_usable(operation)
            operation.redeemed = True
        access = self._access_for(operation)
        refresh = self._jwt("refresh", REFRESH_TOKEN_TTL, ref=operation.reference_number)
        operation.refresh_valid_until = refresh[1]
        return access, refresh

    def _check_still_usable(self, operation: AuthOperation) -> KsefToken | None:
        """400 when the login may no longer yield tokens (redeem, refresh): the spec's 21301 "Token
        KSeF został unieważniony." when the KSeF token it used is no longer active, 21308 "Próba
        wykorzystania metod autoryzacyjnych osoby zmarłej." when its subject has died since (both
        listed for POST /auth/token/redeem and /auth/token/refresh). The KSeF token, if any."""
        token = self.state.tokens.get(operation.ksef_token_reference or "")
        if token is not None and token.status != "Active":
            raise MockAPIError(21301, "Brak autoryzacji.", ["Token KSeF został unieważniony."])
        if self._is_deceased(operation.subject):
            raise MockAPIError(DECEASED_CODE, DECEASED_TEXT)
        return token

    def _access_for(self, operation: AuthOperation, ttl: dt.timedelta = ACCESS_TOKEN_TTL) -> tuple[str, dt.datetime]:
        context = operation.context
        return self._jwt(
            "access", ttl, ctx=[context.type, context.value], per=sorted(operation.permissions),
            ref=operation.reference_number, who=list(operation.subject),
        )  # fmt: skip

    def refresh(self, authorization: str | None) -> tuple[str, dt.datetime]:
        """A new access token for a refresh token whose session was not revoked."""
        claims = self.claims(authorization, "refresh")
        operation = self.state.operations.get(claims["ref"])
        if operation is None:
            raise NotFound(21304, "Brak uwierzytelnienia.", [claims["ref"]])
        if operation.revoked:
            raise MockAPIError(21301, "Brak autoryzacji.", ["Sesja uwierzytelniania została unieważniona."])
        token = self._check_still_usable(operation)
        # uwierzytelnianie.md: the refreshed token carries "aktualnym zestawem uprawnień i ról", and
        # "Tokeny są automatycznie unieważniane w przypadku utraty uprawnień".
        current: frozenset[str] | None = operation.permissions
        if token is not None:
            current = self._token_permissions(token)
        elif operation.context.type == "PeppolId":  # the provider's, by its certificate: no grant to lose
            current = operation.permissions
        elif operation.category == "XadesSignature":
            current = self.permissions.login_permissions(operation.context, operation.subject)
        if current is None:
            raise MockAPIError(21301, "Brak autoryzacji.", ["Podmiot nie ma już uprawnień w kontekście."])
        operation.permissions = current
        operation.last_refresh = self.core.clock()
        return self._access_for(operation)

    def check_address(self, reference_number: str, host: str) -> None:
        """403 ``ip-not-allowed`` when the login ``reference_number`` (of an access or a refresh
        token) has an IP policy that does not allow ``host``, the address the request came from.

        The spec's 403 problem details: reasonCode "ip-not-allowed | Żądanie pochodzi z adresu IP
        innego niż wskazany podczas uwierzytelnienia", with ``security`` "ip-not-allowed |
        clientIp: string"; every operation that takes an access or a refresh token declares that 403
        (``POST /auth/token/refresh`` too). The Ministry speaks of the access token (the policy
        applies "podczas korzystania z wydanego tokena dostępu"); the refresh token is held to it
        as well, as the reason code speaks of any request after the login (a refresh from
        elsewhere would only give a token refused there). The authentication token (the status of
        the login and the redeem) is not: the policy binds what the login issues.
        """
        operation = self.state.operations.get(reference_number)
        policy = operation.allowed_ips if operation is not None else None
        if policy is not None and not policy.allows(host):
            raise Forbidden(IP_NOT_ALLOWED, "ip-not-allowed", {"clientIp": host})

    def login_certificate_name(self, access: Access) -> LoginName | None:
        """The subject names of the certificate the caller's login signed with; ``None`` when it
        logged in with a KSeF token (or was minted by ``mint_access_token``, recorded as one)."""
        operation = self.state.operations.get(access.auth_reference_number)
        if operation is None or operation.category != "XadesSignature":
            return None
        return operation.certificate_name

    def auth_sessions(self, access: Access) -> list[AuthOperation]:
        """The active sessions of the caller's context (``_is_active``), newest first (the spec's
        "Sortowanie: startDate (Desc)")."""
        found = [o for o in self.state.operations.values() if o.context == access.context and self._is_active(o)]
        return sorted(found, key=auth_session_listing_key, reverse=True)

    def _is_active(self, operation: AuthOperation) -> bool:
        """Whether a login is an active session: GET /auth/sessions "Zwraca listę aktywnych sesji
        uwierzytelnienia". A redeemed, unrevoked one whose refresh token could still be used:
        not expired (its ``refreshTokenValidUntil`` passed, ``POST /auth/token/refresh`` is refused),
        nor made with a KSeF token no longer active (the spec's "21301 | Token KSeF został
        unieważniony." for the refresh)."""
        if not operation.redeemed or operation.revoked:
            return False
        until = operation.refresh_valid_until
        if until is not None and self.core.clock() >= until:
            return False
        token = self.state.tokens.get(operation.ksef_token_reference or "")
        return token is None or token.status == "Active"

    def revoke_current_auth_session(self, authorization: str | None) -> None:
        """``DELETE /auth/sessions/current``: kill the refresh token of the session the bearer token
        (an access or a refresh token: "Sposób uwierzytelnienia: RefreshToken lub AccessToken")
        belongs to; access tokens already issued live on."""
        claims = self.claims(authorization, "access", "refresh")
        operation = self.state.operations.get(claims["ref"])
        if operation is None:
            raise NotFound(21304, "Brak uwierzytelnienia.", [f"Sesja {claims['ref']} nie została znaleziona."])
        _revoke(operation)

    def revoke_auth_session(self, access: Access, reference_number: str) -> None:
        """Kill the refresh token of a session of the caller's context; access tokens live on."""
        operation = self.state.operations.get(reference_number)
        if operation is None or operation.context != access.context:
            raise NotFound(21304, "Brak uwierzytelnienia.", [f"Sesja {reference_number} nie została znaleziona."])
        _revoke(operation)


def _revoke(operation: AuthOperation) -> None:
    """Revoke a login: its refresh token is refused, and its status (GET /auth/{referenceNumber})
    becomes the spec's "425 | Uwierzytelnienie unieważnione | Uwierzytelnienie i powiązane refresh
    tokeny zostały unieważnione przez użytkownika"."""
    operation.revoked = True
    operation.pending_permissions = None  # a success held back (auth_reads) is not given later
    operation.status = Status(
        425, AUTH_TEXT[425], ["Uwierzytelnienie i powiązane refresh tokeny zostały unieważnione przez użytkownika"]
    )


def auth_session_listing_key(operation: AuthOperation) -> str:
    """An auth session's place in ``GET /auth/sessions`` (by start, unique)."""
    return f"{operation.started.astimezone(dt.UTC).isoformat()}|{operation.reference_number}"


def token_author(token: KsefToken) -> tuple[str, str]:
    """The token's author (``authorIdentifier``); a token kept without one (a state file of an
    older emulator) is the context's owner's."""
    return token.author[0] or "Nip", token.author[1] or token.context.value


def token_listing_key(token: KsefToken) -> str:
    """A token's place in ``GET /tokens`` (by creation, unique): sorts as the listing does."""
    return f"{token.created.astimezone(dt.UTC).isoformat()}|{token.reference_number}"


def _xades_method(certificate: x509.Certificate, issued: KsefCertificate | None) -> str:
    """``authenticationMethod`` of a XAdES login: a KSeF certificate's (``InternalCertificate``,
    "Certyfikat KSeF"), a company seal's, or a person's signature."""
    if issued is not None:
        return "InternalCertificate"
    return "QualifiedSeal" if is_seal_certificate(certificate) else "QualifiedSignature"


def _certificate_problem(
    certificate: x509.Certificate, issued: KsefCertificate | None, now: dt.datetime, verify_chain: bool
) -> str | None:
    """Why a XAdES login's certificate fails it (460, with the spec's detail texts), or ``None``;
    a KSeF certificate also by its type and status (``login_problem``)."""
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return "Nieważny certyfikat"
    if issued is not None and (problem := login_problem(issued)) is not None:
        return problem
    if verify_chain and not issued_by_emulator(certificate):
        return "Niezaufany łańcuch certyfikatów"
    return None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_context(context: Context) -> None:
    if context.type not in CONTEXT_TYPES:
        raise MockAPIError(21405, VALIDATION, [f"contextIdentifier.type: {context.type!r}."])
    if context.type == "Nip" and not re.fullmatch(r"\d{10}", context.value):
        raise MockAPIError(21405, VALIDATION, ["contextIdentifier.value: NIP ma 10 cyfr."])


SCHEMA_MISMATCH = "Dokument nie jest zgodny ze schemą (xsd)."  # the spec's 400 table: 21401


def _read_auth_request(root: Any) -> tuple[str, Context, str, IpPolicy | None]:
    """The challenge, context, subject identifier type and IP policy of a signed ``AuthTokenRequest``
    (``root``: the signed content, without its enveloped ``ds:Signature``), after it is checked
    against the schema of its namespace (``auth_request_errors``; the spec's POST
    /auth/xades-signature: "Obsługiwane schematy: auth v2.0, auth v2.1"). A document matching
    neither is 400 / 21401 "Dokument nie jest zgodny ze schemą (xsd)." with "{treść błędu
    walidacji}": the validator's first error (a .NET validator stops at it). The values are then
    read as the schema has them: ``xsd:token`` (Challenge, SubjectIdentifierType, the addresses)
    without the white space around them."""
    namespace = etree.QName(root).namespace or ""
    if namespace not in AUTH_NAMESPACES:
        raise MockAPIError(21401, SCHEMA_MISMATCH, [f"Oczekiwano AuthTokenRequest ({', '.join(AUTH_NAMESPACES)})."])
    errors = auth_request_errors(root)
    if errors:
        raise MockAPIError(21401, SCHEMA_MISMATCH, errors[:1])
    ns = {"a": namespace}
    identifier = root.find("a:ContextIdentifier/*", namespaces=ns)
    # The schema's types: TNIP, TIID... are xsd:string (a value with spaces around it is refused).
    context = Context(etree.QName(identifier).localname, identifier.text)
    subject_type = root.findtext("a:SubjectIdentifierType", namespaces=ns).strip()
    return root.findtext("a:Challenge", namespaces=ns).strip(), context, subject_type, _read_policy(root, ns)


def _read_policy(root: Any, ns: dict[str, str]) -> IpPolicy | None:
    """The optional ``AuthorizationPolicy`` of a schema-valid ``AuthTokenRequest`` (its order and
    its at most 10 values of each kind are the schema's). ``ip_policy`` takes the values again
    against v2-1's patterns, which a v2-0 document's can fail only by its digits: v2-0's ``\\d``
    is any decimal digit (in .NET and XML Schema alike), v2-1's ``[0-9]`` and an IPv4 address take
    ASCII ones; 21401 then, as before the schemas were checked (what KSeF does is not documented)."""
    allowed = root.find("a:AuthorizationPolicy/a:AllowedIps", namespaces=ns)
    if allowed is None:
        return None
    values = {
        kind: [(e.text or "").strip() for e in allowed.findall(f"a:{kind}", namespaces=ns)] for kind in _POLICY_ORDER
    }
    try:
        return ip_policy(*(values[kind] for kind in _POLICY_ORDER))
    except ValueError as error:
        raise MockAPIError(21401, SCHEMA_MISMATCH, [str(error)]) from None


_POLICY_ORDER = ("Ip4Address", "Ip4Range", "Ip4Mask")


def _minted_policy(allowed_ips: AllowedIps) -> IpPolicy:
    """A minted token's IP policy: the addresses ``allowed_ips`` names (``ValueError`` when it asks
    for the client's own, which only a login's challenge knows)."""
    if not isinstance(allowed_ips, AllowedIps):
        raise TypeError(f"allowed_ips: an AllowedIps, got {type(allowed_ips).__name__}")
    if allowed_ips.include_client_ip:
        raise ValueError(
            "allowed_ips: include_client_ip=True needs a login's challenge (its clientIp); a minted token has"
            " none: name the address instead, e.g. AllowedIps('127.0.0.1')"
        )
    return ip_policy(allowed_ips.ip4_addresses, allowed_ips.ip4_ranges, allowed_ips.ip4_masks)


def _read_token(private_key: rsa.RSAPrivateKey, encrypted_token: str) -> tuple[str, str] | str:
    """``(token, timestampMs)`` of a login's ``encryptedToken``, or the spec's 450 detail of why it
    cannot be read (AuthenticationOperationStatusResponse.status): "Nieprawidłowe szyfrowanie
    tokena" when it does not decrypt, "Nieprawidłowe kodowanie tokena" when it decrypts to no UTF-8."""
    try:
        decrypted = rsa_decrypt(private_key, base64.b64decode(encrypted_token, validate=True))
    except ValueError:
        return "Nieprawidłowe szyfrowanie tokena"
    try:
        secret, _, stamp = decrypted.decode().rpartition("|")
    except UnicodeDecodeError:
        return "Nieprawidłowe kodowanie tokena"
    return secret, stamp
