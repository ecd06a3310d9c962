"""Exceptions raised by ksef_client.

::

    KSeFError
    ├── APIConnectionError            the request did not get an HTTP answer
    │   └── APITimeoutError           a timeout, or the call's overall deadline passed
    ├── APIStatusError                an HTTP error answer (status, KSeF codes, response)
    │   ├── BadRequestError           400 (KSeF "not found" is a 400 with a code, see .codes)
    │   ├── AuthenticationError       401
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404
    │   ├── GoneError                 410
    │   ├── RateLimitError            429 (.retry_after in seconds)
    │   │   └── RetryAfterTooLongError    a 429 asking to wait longer than max_retry_after (or KSeF's
    │   │                                 block of the group, for a request not sent into it)
    │   └── InternalServerError       5xx
    ├── ThrottleWaitTooLongError      the client's own pacing would wait longer than max_retry_after
    ├── PollTimeoutError              a poller gave up before a final status
    ├── AuthenticationFailedError     a login ended with an error status (.code: 415, 450, 460...)
    ├── TokenNotActiveError           a new KSeF token ended Failed or Revoked, not Active (.status)
    ├── PermissionOperationFailedError  a permission grant or revoke ended with another status than 200 (.code)
    ├── CertificateEnrollmentError    a KSeF certificate request ended refused, not issued (.code)
    ├── CertificatePendingError       a certificate request accepted, its certificate not received (.pending)
    ├── InvoiceRejectedError          an invoice refused before sending (schema, size)
    ├── InvoiceSchemaError            an invoice that breaks a KSeF file rule or its XSD (.rule)
    ├── BatchError                    a batch package that cannot be sent (limits, parts)
    │   └── BatchFileNameError        an invoice's file name KSeF would not take, or one taken twice
    ├── ExportError                   an export that failed or arrived damaged
    │   └── ExportStatusError         it ended with another status than 200 (.code; 420: from past the HWM)
    ├── SyncLockedError               another invoices.sync run holds the state file (nothing sent)
    ├── QueryLimitError               a metadata walk held at one date by KSeF's 10,000-record limit
    ├── ResponseFormatError           a 2xx answer that does not match the spec
    ├── ResponseTooLargeError         a body past its cap (``BodyLimits``); read no further
    ├── UnsafePathError               a name from the server that would leave the target folder
    ├── UntrustedURLError             a presigned link outside the allowed storage hosts
    ├── UPOError                      a UPO that cannot be used
    │   ├── UPOHashMismatchError      its SHA-256 differs from x-ms-meta-hash
    │   │   └── HashMissingError      no x-ms-meta-hash to check against (require_hash=True)
    │   ├── UnsafeXMLError            DTDs, entities or other hostile XML
    │   ├── UPOSignatureError         its XAdES signature is missing or broken
    │   ├── UPOValidationError        not a valid UPO v4-3 document (or a page short of its documents)
    │   └── UPOMismatchError          a UPO of another session, invoice or page than asked for
    └── UPONotAvailableError          the session or invoice has no UPO (yet)

Messages never contain tokens or keys: only status, KSeF codes, descriptions and the request's
method and path (for connection errors the URL without its query, and the likely cause).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from ksef_client.export import ExportResult
    from ksef_client.invoice_sync import SyncResult
    from ksef_client.outcomes import InvoiceOutcome
    from ksef_client.resources.certificates import PendingCertificate


class KSeFError(Exception):
    """Base class of every exception ksef_client raises on purpose.

    Attributes:
        partial: on an error raised by ``invoices.sync``, the ``SyncResult`` that run would have returned so
            far: the invoices it delivered before it failed (in the folder, the state file past them), after
            those earlier runs left unreported. The journal beside the state file (``<state_file>.unreported``)
            keeps them: the next run reports them again (at least once, even when this error never reaches the
            caller). ``None`` elsewhere. ``sync`` sets it on whatever ends a run once it holds the state file's
            lock, ``ValueError`` (the state file's), ``OSError``, ``KeyboardInterrupt`` and a cancellation
            included; not on what it raises before (``SyncLockedError``: ``None``; the ``ValueError`` for
            ``start=`` and an ``OSError`` making the state folder or lock file have no ``partial`` at all).
            On what ends ``invoices.export`` after it saved files in the folder, the ``ExportResult`` of those
            files: the windows of a range over 100 days exported before the one that failed, and the files of
            a package whose moves into the folder failed part-way (those have no truncation or dates: nothing
            to go on from). ``export`` sets it on whatever ends the call, ``KeyboardInterrupt`` and a
            cancellation included, when it saved anything; ``None`` (no attribute on a non-``KSeFError``)
            when it saved nothing. Either result has ``.ksef_numbers`` and ``.files``. On what ends
            ``ksef.sessions.check_duplicates`` (an error no read would get past, ``KeyboardInterrupt``, a
            cancellation and an exception of its ``progress`` included), the outcomes with the originals read
            before it compared (the others ``not_compared`` "not read"): given back to ``check_duplicates``,
            those are not read again (the originals not read, and any whose own read failed, are).
        session_reference_number: set when ``send_batch`` fails after it opened its batch session:
            the session to look up (``ksef.sessions.get``/``wait``); the error's note says whether
            it was closed. On an error of ``session.send``: the online session. ``None`` otherwise.
        maybe_sent: ``True`` on an error of ``session.send`` unless KSeF is known not to hold the
            invoice (the answer was lost or could not be read, the connection broke after the
            request went out, a 5xx, the deadline passed with a request out): KSeF may hold it,
            and ``session.outcomes()`` reports it either way (the error's note says what to do).
            ``False``: it was not sent (KSeF refused it with a 4xx, also after repeats that only
            429s or a refreshed 401 preceded, the connection was never made, the deadline passed
            or the client's pacing held it back before it went out, the token refresh it needed
            failed), and on
            the errors of anything but ``session.send``, the permission grants, ``tokens.create``,
            ``certificates.enroll`` and ``CertificatePendingError``. On an error of a
            ``ksef.permissions.grant_*`` the same test says whether KSeF may have taken the grant
            (its note names the listing to check before granting again); on one of
            ``tokens.create`` whether the token may exist with a secret nobody has (its note: find
            it with ``tokens.list(description=...)`` and revoke it); on one of
            ``certificates.enroll`` whether KSeF may issue the certificate (its note: ``complete``
            with the CSR's key finds it). A ``CertificatePendingError`` always has it.
        invoice_hash, invoice_number: on an error of ``session.send``, the invoice's SHA-256
            (Base64, KSeF's ``invoiceHash``) and its number (``P_2``) when it could be read.
    """

    partial: SyncResult | ExportResult | list[InvoiceOutcome] | None = None
    session_reference_number: str | None = None
    maybe_sent: bool = False
    invoice_hash: str | None = None
    invoice_number: str | None = None


class APIConnectionError(KSeFError):
    """No HTTP answer: connection refused or reset, DNS, TLS. The message names the method, the
    full URL (without its query) and the likely cause; ``url`` holds the URL."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class APITimeoutError(APIConnectionError):
    """The request timed out."""


@dataclass(frozen=True)
class ErrorDetail:
    """One KSeF exception: its numeric code, description and details."""

    code: int | None
    description: str
    details: tuple[str, ...] = ()


class APIStatusError(KSeFError):
    """KSeF answered with an HTTP error status.

    Attributes:
        status_code: the HTTP status.
        errors: the KSeF exceptions of the body (both the JSON and the problem+json format).
        codes: their numeric codes, e.g. ``[21405]``.
        reference_number: KSeF's reference of the failed request, when it gave one.
        trace_id: problem+json ``traceId``, when present.
        response: the ``httpx.Response``.
        uncertain_attempts: how many earlier attempts of this request KSeF may have carried out
            although their answers were lost (a 5xx, a connection broken after the request went
            out) before the client repeated it; this error answers the repeat. 0: no such attempt.
            For a change that is not repeatable in its answer (a revoke, ``DELETE``) an error
            saying the thing does not exist may mean an earlier attempt did it: the error's note
            says so.
    """

    uncertain_attempts: int = 0

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        errors: list[ErrorDetail] | None = None,
        reference_number: str | None = None,
        trace_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.errors = errors or []
        self.codes = [e.code for e in self.errors if e.code is not None]
        self.reference_number = reference_number
        self.trace_id = trace_id
        self.body = body


class BadRequestError(APIStatusError):
    """400: validation errors and, in KSeF, "not found" (codes 21164, 21173, 21178, ...)."""


class AuthenticationError(APIStatusError):
    """401: missing, invalid or expired access token."""


class PermissionDeniedError(APIStatusError):
    """403: the token lacks a permission (``reason_code`` says which rule)."""

    @property
    def reason_code(self) -> str | None:
        """The problem+json ``reasonCode``."""
        return self.body.get("reasonCode") if isinstance(self.body, dict) else None

    @property
    def required_permissions(self) -> list[str]:
        """For ``missing-permissions``: any one of these would have been enough (API 2.9.0 ``security``)."""
        return self._security_list("requiredAnyOfPermissions")

    @property
    def present_permissions(self) -> list[str]:
        """For ``missing-permissions``: the permissions the token has."""
        return self._security_list("presentPermissions")

    @property
    def client_ip(self) -> str | None:
        """For ``ip-not-allowed`` (a login's ``allowed_ips`` do not include the address the
        request came from) and ``security-service-blocked``: the address KSeF saw."""
        security = self.body.get("security") if isinstance(self.body, dict) else None
        value = security.get("clientIp") if isinstance(security, dict) else None
        return str(value) if value is not None else None

    def _security_list(self, key: str) -> list[str]:
        security = self.body.get("security") if isinstance(self.body, dict) else None
        values = security.get(key) if isinstance(security, dict) else None
        return [str(v) for v in values] if isinstance(values, list) else []


class NotFoundError(APIStatusError):
    """404 (rare in KSeF, which reports missing things as 400 with a code)."""


class GoneError(APIStatusError):
    """410: e.g. an authentication operation older than 7 days."""


class RateLimitError(APIStatusError):
    """429 after the client's retries; ``retry_after`` is the server's wait in seconds. Also
    raised, nothing sent, for a request of a limit group KSeF blocks after an earlier 429 (another
    call's) when the rest of the block would pass the call's deadline: ``response`` is that 429
    (its request's method and URL, no headers), ``retry_after`` the seconds the block still lasts."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """5xx after the client's retries; ``retry_after``: the server's ``Retry-After`` in seconds,
    when it sent one (a step the SDK restarts after it, a session close or a login, waits that
    long first, or gives up when it is past ``max_retry_after``)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RetryAfterTooLongError(RateLimitError):
    """A 429 whose ``Retry-After`` is longer than the client's ``max_retry_after``: waiting silently
    would hang the caller. A ``RateLimitError`` like any other 429 (``response``, ``codes``,
    ``retry_after``), whatever retry budget was left; ``cap`` is the client's limit. Also raised,
    nothing sent, for a request of a group KSeF blocks after an earlier 429 when the rest of that
    block is longer than ``max_retry_after`` (as ``RateLimitError`` says)."""

    def __init__(self, message: str, *, cap: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.cap = cap


class ThrottleWaitTooLongError(KSeFError):
    """The client's own pacing (the spec's rate limits for the request's group, counted over the
    last second, minute and hour) would hold a request longer than ``max_retry_after``: nothing
    was sent (KSeF's own block of the group after a 429 is a ``RateLimitError`` instead).
    ``retry_after``: seconds until the group has room; ``cap``: the client's limit; ``group``,
    ``method``, ``path``: the request."""

    def __init__(self, retry_after: float, cap: float, group: str, method: str, path: str) -> None:
        super().__init__(
            f"{method} {path}: the rate limits of group {group!r} allow the next request in "
            f"{retry_after:.0f} s, more than max_retry_after ({cap:g} s); nothing was sent (raise "
            "max_retry_after on the client or with_options() to wait)"
        )
        self.retry_after = retry_after
        self.cap = cap
        self.group = group
        self.method = method
        self.path = path


class PollTimeoutError(KSeFError):
    """A poller reached its timeout before a final status; ``last`` is the last status seen."""

    def __init__(self, message: str, last: Any = None) -> None:
        super().__init__(message)
        self.last = last


class AuthenticationFailedError(KSeFError):
    """A login ended with an error status (415 no permissions, 450 bad token, 460 certificate...)."""

    def __init__(self, reference_number: str, code: int, description: str, details: list[str]) -> None:
        text = f"authentication {reference_number} failed: {code} {description}"
        super().__init__(text + (f" ({'; '.join(details)})" if details else ""))
        self.reference_number = reference_number
        self.code = code
        self.description = description
        self.details = details


class TokenNotActiveError(KSeFError):
    """A new KSeF token left ``Pending`` for another status than ``Active`` (``Failed``: KSeF could
    not activate it, make a new one; ``Revoking``/``Revoked``); ``status`` is its last status
    (``TokenStatusResponse``). It cannot be used to log in."""

    def __init__(self, reference_number: str, status: Any) -> None:
        details = "; ".join(str(d) for d in (getattr(status, "status_details", None) or []) if d)
        text = f"KSeF token {reference_number} is {getattr(status, 'status', status)}, not Active"
        super().__init__(text + (f" ({details})" if details else ""))
        self.reference_number = reference_number
        self.status = status


class PermissionOperationFailedError(KSeFError):
    """A permission grant's or revoke's operation (``GET /permissions/operations/{ref}``) ended with
    another status than 200 "Operacja zakończona sukcesem": this operation granted or revoked
    nothing. ``code``, ``description`` and ``details`` are the operation's status (the spec's table: 400 failed, 410
    identifiers that do not fit together, 420 credentials without the right, 430 a context without
    the required role, 440 a relation of identifiers that does not allow it, 450 the identifier or
    its type does not allow it, ...); ``status`` is the whole ``PermissionsOperationStatusResponse``.

    ``uncertain_attempts``: for the operation of a revoke the client had to repeat after attempts
    whose answers were lost (``revoke`` returned a reference with ``uncertain_attempts``), how many;
    an earlier attempt may have revoked the permission, and this failure may mean only that (the
    error's note says what to check). 0 otherwise."""

    uncertain_attempts: int = 0

    def __init__(self, reference_number: str, status: Any) -> None:
        info = getattr(status, "status", status)
        self.code: int = int(getattr(info, "code", 0))
        self.description: str = str(getattr(info, "description", ""))
        self.details: list[str] = [str(d) for d in (getattr(info, "details", None) or []) if d]
        text = f"permission operation {reference_number} failed: {self.code} {self.description}"
        super().__init__(text + (f" ({'; '.join(self.details)})" if self.details else ""))
        self.reference_number = reference_number
        self.status = status


class CertificateEnrollmentError(KSeFError):
    """A KSeF certificate request ended with another status than 200 (certificate issued):
    ``code``, ``description`` and ``details`` are KSeF's (``GET /certificates/enrollments/{ref}``:
    400 "Wniosek odrzucony", e.g. "Klucz publiczny został już certyfikowany przez inny podmiot" or
    the limit of certificates reached; 500 "Nieznany błąd"; 550 "Operacja została anulowana przez
    system": "Spróbuj ponownie"), ``status`` the whole answer. No certificate was issued."""

    def __init__(self, reference_number: str, code: int, description: str, details: list[str], status: Any) -> None:
        text = f"certificate request {reference_number} ended {code} {description}"
        super().__init__(text + (f" ({'; '.join(details)})" if details else ""))
        self.reference_number = reference_number
        self.code = code
        self.description = description
        self.details = details
        self.status = status


class CertificatePendingError(KSeFError):
    """``certificates.obtain`` sent a request KSeF accepted, then could not receive its certificate
    (``__cause__``: a timeout, a lost connection, ...). ``pending`` holds the request's reference
    number and the private key its CSR was made from, which exists nowhere else:
    ``certificates.complete(error.pending)`` finishes it, now or later in this process."""

    def __init__(self, pending: PendingCertificate, cause: KSeFError) -> None:
        taken = (
            f"certificate request {pending.reference_number} was accepted by KSeF"
            if pending.reference_number is not None
            else "a certificate request may have reached KSeF (its answer was lost)"
        )
        super().__init__(
            f"{taken}, but its certificate was not received ({cause}); finish it with"
            " certificates.complete(error.pending), which holds its private key"
        )
        self.maybe_sent = True  # the request went out: KSeF holds it or may
        self.pending = pending
        self.reference_number = pending.reference_number


class InvoiceRejectedError(KSeFError):
    """The emulator or KSeF refused an invoice before it was sent (bad schema, size)."""


class InvoiceSchemaError(KSeFError, ValueError):
    """An invoice breaks one of KSeF's rules (checked before sending: nothing was sent).

    ``rule`` names it (``encoding``, ``prolog``, ``processing-instruction``, ``characters``, ``dtd``,
    ``size``, ``xml``, ``schema``) and ``errors`` lists each problem.
    """

    def __init__(self, errors: list[str], rule: str = "schema") -> None:
        super().__init__("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
        self.errors = errors
        self.rule = rule


class ExportError(KSeFError):
    """An export failed, or its package arrived damaged."""


class ExportStatusError(ExportError):
    """An export that ended with another status than 200 (done): ``code`` and ``description`` are
    KSeF's. 420: its ``dateRange.from`` is later than KSeF's ``PermanentStorageHwmDate`` and it
    asked to stop there (``restrict_to_hwm``): nothing from that moment on is complete yet."""

    def __init__(self, message: str, code: int, description: str) -> None:
        super().__init__(message)
        self.code, self.description = code, description


class SyncLockedError(KSeFError):
    """Another ``invoices.sync`` run holds the state file (the lock file beside it): one run at a
    time per state file. Nothing was sent and nothing changed (``partial`` is ``None``); run again
    once the other ended."""


class BatchError(KSeFError):
    """A batch package breaks KSeF's limits or a part could not be uploaded."""


class BatchFileNameError(BatchError, ValueError):
    """An invoice's file name in a batch package that KSeF would not take or that could be read as
    a path (too long, empty, with a ``/`` or ``\\``, ``.`` or ``..``, a control character), or one
    taken twice; raised while the package is built, before any request. A ``ValueError`` too."""


class UntrustedURLError(KSeFError):
    """A presigned link points outside the environment's storage hosts (nothing was sent)."""


class QueryLimitError(KSeFError):
    """A metadata walk (``invoices.query``) that KSeF's limit holds at one date: more records share
    it than one query returns (10,000, then ``isTruncated``), and the spec's way on, a range
    restarted from the last record's date, returns the same ones again. KSeF answered as the spec
    says; the records yielded so far stand.

    ``date_type`` and ``date`` say where: by ``Issue`` a day (the issue date has no time), by
    ``Invoicing`` or ``PermanentStorage`` one instant. Walk by ``date_type="PermanentStorage"``
    (KSeF stores invoices one after another) or narrow the filters (``seller_nip``,
    ``invoice_types``, ``amount``, ...) so fewer records share that date."""

    def __init__(self, message: str, *, date_type: str, date: str) -> None:
        super().__init__(message)
        self.date_type = date_type
        self.date = date


class ResponseFormatError(KSeFError):
    """A successful answer whose body does not match the spec (wrong types, missing fields, HTML)."""


class ResponseTooLargeError(KSeFError):
    """A body grew past its cap (``ksef_client.BodyLimits``): reading stopped there.

    ``what`` names the kind of body (``json``, ``invoice``, ``upo``, ``metadata``, ``export entry``)
    and ``limit`` its cap in bytes.
    """

    def __init__(self, what: str, limit: int, where: str = "") -> None:
        text = f"{where}: " if where else ""
        super().__init__(
            f"{text}{what} body larger than its cap of {limit} bytes; refused (BodyLimits.{what}: raise it "
            f"with body_limits=BodyLimits({what}=...) on the client)"
        )
        self.what = what
        self.limit = limit


class UnsafePathError(KSeFError):
    """A name given by the server (KSeF number, reference number) is not one that may become a
    file name in the target folder; nothing was written."""


class UPOError(KSeFError):
    """A UPO document that cannot be used."""


class UPOHashMismatchError(UPOError):
    """The UPO's SHA-256 differs from the ``x-ms-meta-hash`` header that came with it; also raised
    by ``invoices.get`` for an invoice's bytes (the same check). Without the header nothing is
    checked: a WARNING on the ``ksef_client`` logger says so."""


class HashMissingError(UPOHashMismatchError):
    """A downloaded UPO or invoice came without its ``x-ms-meta-hash`` header, and the client was
    made with ``require_hash=True`` (by default it is accepted unchecked, with a WARNING). A
    ``UPOHashMismatchError``: code that refuses an unverified download catches both."""


class UnsafeXMLError(UPOError):
    """XML with a DTD, entity declarations or other constructs we refuse to process."""


class UPOSignatureError(UPOError):
    """The UPO's XAdES signature is missing or does not verify."""


class UPOValidationError(UPOError):
    """Not a UPO v4-3 document, or not valid against its schema, or a session UPO page holding
    another number of documents (``Dokument``) than its ``OpisPotwierdzenia`` names."""


class UPOMismatchError(UPOError):
    """A UPO that is not the one asked for: of another session (``NumerReferencyjnySesji``), of
    another invoice (``NumerKSeFDokumentu``), or session pages that are not each page once
    (``Strona``/``LiczbaStron``) or whose document ranges (``ZakresDokumentowOd``/``Do``) do not
    cover the session's documents (``CalkowitaLiczbaDokumentow``) once each. Its hash and signature
    may be fine: a genuine UPO of something else."""


class UPONotAvailableError(KSeFError):
    """The session or invoice has no UPO to download (yet)."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    410: GoneError,
    429: RateLimitError,
}


def one_line(error: BaseException) -> str:
    """``error`` in one readable line: for KSeF's error answers the HTTP status, KSeF's exception
    codes, descriptions and details first, and its reference number; for a ``KSeFError`` its class
    name and message; for another exception its message (the ``ksef`` CLI prints it after
    ``error:``)."""
    if isinstance(error, APIStatusError):
        codes = ",".join(str(c) for c in error.codes)
        parts = [f"HTTP {error.status_code}" + (f" [{codes}]" if codes else "")]
        parts += [f"{e.description}" + (f" ({'; '.join(e.details)})" if e.details else "") for e in error.errors]
        if not error.errors:
            parts.append(str(error))
        if error.reference_number:
            parts.append(f"reference {error.reference_number}")
        return " - ".join(parts)
    name = type(error).__name__ if isinstance(error, KSeFError) else ""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{name + ': ' if name else ''}{text}"


@dataclass
class _Parsed:
    errors: list[ErrorDetail] = field(default_factory=list)
    summary: str = ""
    reference_number: str | None = None
    trace_id: str | None = None
    body: Any = None


def make_status_error(
    response: httpx.Response, retry_after: float | None = None, max_retry_after: float | None = None, *, hint: str = ""
) -> APIStatusError:
    """Turn an HTTP error answer into the matching ``APIStatusError`` subclass.

    Understands KSeF's ``ExceptionResponse`` JSON, ``application/problem+json``, the 429
    ``{status: {...}}`` body, and anything else (gateway HTML, empty or truncated bodies). A 429
    whose ``retry_after`` is past ``max_retry_after`` is a ``RetryAfterTooLongError``. ``hint``
    ends the message (the likely cause, when the caller knows one).
    """
    parsed = _parse_error_body(response)
    status = response.status_code
    cls = _STATUS_CLASSES.get(status, InternalServerError if status >= 500 else APIStatusError)
    codes = ", ".join(_describe(e) for e in parsed.errors)
    request = response.request if response._request is not None else None
    where = f"{request.method} {request.url.path}" if request is not None else "request"
    message = f"{where} -> HTTP {status}" + (f" [{codes}]" if codes else f" {parsed.summary}".rstrip()) + hint
    kwargs: dict[str, Any] = {
        "response": response,
        "errors": parsed.errors,
        "reference_number": parsed.reference_number,
        "trace_id": parsed.trace_id,
        "body": parsed.body,
    }
    if (
        cls is RateLimitError
        and retry_after is not None
        and max_retry_after is not None
        and retry_after > max_retry_after
    ):
        message += f": KSeF asked to retry after {retry_after:g} s, more than max_retry_after ({max_retry_after:g} s)"
        return RetryAfterTooLongError(message, retry_after=retry_after, cap=max_retry_after, **kwargs)
    if cls is RateLimitError or cls is InternalServerError:
        return cls(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)


def _describe(error: ErrorDetail) -> str:
    text = f"{error.code}: {error.description}" if error.code is not None else error.description
    if error.details:  # KSeF's details say which field broke which rule: worth showing
        text += " (" + "; ".join(error.details[:3]) + (" ..." if len(error.details) > 3 else "") + ")"
    return text


def _parse_error_body(response: httpx.Response) -> _Parsed:
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = response.content[:200].decode("utf-8", "replace")
        kind = "HTML" if "<html" in text.lower() else "non-JSON"
        return _Parsed(summary=f"({kind} body: {' '.join(text.split())[:120]!r})")
    if not isinstance(body, dict):
        return _Parsed(summary="(unexpected error body)", body=body)
    if isinstance(body.get("exception"), dict):
        return _parse_exception_response(body)
    if isinstance(body.get("status"), dict):
        status = body["status"]
        return _Parsed(
            errors=[_detail(status.get("code"), status.get("description"), status.get("details"))], body=body
        )
    return _parse_problem(body)


def _parse_exception_response(body: dict[str, Any]) -> _Parsed:
    exc = body["exception"]
    items = exc.get("exceptionDetailList") if isinstance(exc.get("exceptionDetailList"), list) else []
    errors = [
        _detail(i.get("exceptionCode"), i.get("exceptionDescription"), i.get("details"))
        for i in items
        if isinstance(i, dict)
    ]
    ref = exc.get("referenceNumber")
    return _Parsed(errors=errors, reference_number=ref if isinstance(ref, str) else None, body=body)


def _parse_problem(body: dict[str, Any]) -> _Parsed:
    raw_items = body.get("errors")
    items: list[Any] = raw_items if isinstance(raw_items, list) else []
    errors = [_detail(i.get("code"), i.get("description"), i.get("details")) for i in items if isinstance(i, dict)]
    summary = " ".join(str(body[k]) for k in ("title", "detail") if isinstance(body.get(k), str))
    if not errors and summary:
        errors = [ErrorDetail(code=None, description=summary)]
    trace = body.get("traceId")
    return _Parsed(errors=errors, summary=summary, trace_id=trace if isinstance(trace, str) else None, body=body)


def _detail(code: Any, description: Any, details: Any) -> ErrorDetail:
    number = code if isinstance(code, int) and not isinstance(code, bool) else None
    if number is None and isinstance(code, str) and code.isascii() and code.isdigit():
        number = int(code)
    extra = tuple(str(d) for d in details) if isinstance(details, list) else ()
    return ErrorDetail(code=number, description=str(description) if description is not None else "", details=extra)
