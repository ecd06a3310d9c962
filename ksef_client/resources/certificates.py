"""``ksef.certificates``: KSeF certificates of the authenticated subject: limits, requests, retrieval,
listing, revocation, and ``obtain``, which does the whole request for a new key.

A KSeF certificate of type ``Authentication`` logs in (``auth.login_with_certificate``) without a
qualified signature; one of type ``Offline`` signs KOD II links (``qr.certificate_link``); "każdy
certyfikat może mieć tylko jeden typ" (certyfikaty-KSeF.md). Certificates belong to the subject
that logged in, whatever the context, and may be requested only after a login with a signature:
"Pobranie danych certyfikacyjnych jest możliwe wyłącznie po uwierzytelnieniu z wykorzystaniem
podpisu (XAdES). Uwierzytelnienie przy użyciu tokena systemowego KSeF nie pozwala na złożenie
wniosku o certyfikat" (certyfikaty-KSeF.md §2; KSeF answers 25001/25002 otherwise).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ksef_client._core import not_taken, parsed
from ksef_client._flows import (
    Call,
    Flow,
    PageFlow,
    all_items,
    apager,
    arun,
    blocking,
    offset_pages,
    pager,
    poll_flow,
    poll_in_progress,
    response_of,
    run,
    sent_once,
)
from ksef_client._generated.api.certificates import (
    create_enrollment,
    get_certificate_limits,
    get_enrollment_data,
    get_enrollment_status,
    query_certificates,
    retrieve_certificates,
    revoke_certificate,
)
from ksef_client._generated.models import (
    CertificateEnrollmentDataResponse,
    CertificateEnrollmentStatusResponse,
    CertificateLimitsResponse,
    CertificateListItem,
    CertificateListItemStatus,
    CertificateRevocationReason,
    EnrollCertificateRequest,
    EnrollCertificateResponse,
    KsefCertificateType,
    QueryCertificatesRequest,
    RetrieveCertificatesRequest,
    RetrieveCertificatesResponse,
    RevokeCertificateRequest,
)
from ksef_client._generated.types import UNSET
from ksef_client._retry import RetryBudget
from ksef_client.certificates import (
    KEY_TYPES,
    build_csr,
    check_csr,
    check_private_key,
    csr_base64,
    generate_private_key,
    load_csr,
)
from ksef_client.errors import (
    APIConnectionError,
    BadRequestError,
    CertificateEnrollmentError,
    CertificatePendingError,
    InternalServerError,
    KSeFError,
    ResponseFormatError,
)
from ksef_client.identifiers import CERTIFICATE_SERIAL_PATTERN, validate_certificate_serial, validate_reference_number
from ksef_client.pagination import AsyncPager, Pager
from ksef_client.xades import PrivateKey, SigningCredentials

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

log = logging.getLogger("ksef_client")

# EnrollCertificateRequest.certificateName: "minLength": 5, "maxLength": 100, "pattern":
# "^[a-zA-Z0-9_\-\ ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]+$" (tests/resources/test_certificates.py compares them with the spec).
NAME_LENGTH = (5, 100)
NAME_PATTERN = r"^[a-zA-Z0-9_\-\ ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]+$"
SERIAL_PATTERN = CERTIFICATE_SERIAL_PATTERN  # the spec's certificateSerialNumber pattern
# RetrieveCertificatesRequest.certificateSerialNumbers: "minItems": 1, "maxItems": 10.
MOST_RETRIEVED = 10
# GET /certificates/enrollments/{referenceNumber} allows 30 reads a minute and 120 an hour
# ("x-rate-limits"): a read every 5 s lets a slow request be waited for without using the hour's
# reads up for the next one (every second, one two-minute wait took them all).
POLL_INTERVAL = 5.0
ISSUED = 200  # CertificateEnrollmentStatusResponse.status: 200 issued (100: accepted, still in progress)
# CertificateListItemStatus: "Blocked [...] Status przejściowy do czasu zakończenia procesu
# unieważniania"; "Revoked: Certyfikat został unieważniony": a revoke was taken.
REVOKED = frozenset({CertificateListItemStatus.REVOKED, CertificateListItemStatus.BLOCKED})


@dataclass(frozen=True)
class RetrievedCertificate:
    """A certificate of ``POST /certificates/retrieve``: ``certificate`` parsed from KSeF's DER,
    with its ``serial_number``, ``name`` and ``type`` (``Authentication`` or ``Offline``)."""

    serial_number: str
    name: str
    type: str
    certificate: x509.Certificate


@dataclass(frozen=True)
class KSeFCredentials(SigningCredentials):
    """``SigningCredentials`` of a KSeF certificate (what ``certificates.obtain`` returns), with its
    ``serial_number`` (what ``certificates.revoke`` takes; ``qr.certificate_link`` takes an
    ``Offline`` one's credentials whole), its ``certificate_type`` and ``name``. The private key is
    never shown; ``save(path, password)`` writes both to an encrypted PKCS#12 file,
    ``SigningCredentials.from_pkcs12`` reads it back."""

    serial_number: str = ""
    certificate_type: str = ""
    name: str = ""


def _check_name(name: str) -> str:
    low, high = NAME_LENGTH
    if not isinstance(name, str) or not low <= len(name) <= high or re.fullmatch(NAME_PATTERN, name) is None:
        raise ValueError(
            f"name: {name!r}: {low} to {high} letters (Polish ones too), digits, spaces, '_' or '-'"
            " (EnrollCertificateRequest.certificateName)"
        )
    return name


def _check_enum(value: str | None, enum: type[Any], field: str, *, required: bool = False) -> Any:
    if value is None and not required:
        return UNSET
    allowed = [m.value for m in enum]
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not one of {allowed}")
    return enum(value)


def _check_moment(value: dt.datetime | None, field: str) -> dt.datetime | None:
    # A date-time without an offset would be read in KSeF's zone, whatever the caller meant.
    if value is not None and (not isinstance(value, dt.datetime) or value.utcoffset() is None):
        raise ValueError(f"{field}: a datetime with a time zone (e.g. datetime.now(UTC)), not {value!r}")
    return value


def _limits_flow() -> Flow[CertificateLimitsResponse]:
    return parsed(response_of((yield Call(get_certificate_limits))), CertificateLimitsResponse)


def _enrollment_data_flow() -> Flow[CertificateEnrollmentDataResponse]:
    return parsed(response_of((yield Call(get_enrollment_data))), CertificateEnrollmentDataResponse)


def _enrollment_request(
    name: str, csr: x509.CertificateSigningRequest, kind: str, valid_from: dt.datetime | None
) -> EnrollCertificateRequest:
    """The body of ``POST /certificates/enrollments``, every part checked (``ValueError``)."""
    check_csr(csr)
    return EnrollCertificateRequest(
        certificate_name=_check_name(name),
        certificate_type=_check_enum(kind, KsefCertificateType, "kind", required=True),
        csr=csr_base64(csr),
        valid_from=_check_moment(valid_from, "valid_from") or UNSET,
    )


def _send_enrollment(
    body: EnrollCertificateRequest, budget: RetryBudget | None = None
) -> Flow[EnrollCertificateResponse]:
    call = Call(create_enrollment, {"body": body}, budget=budget)
    return parsed(response_of((yield call)), EnrollCertificateResponse)


# POST /certificates/enrollments is not repeated, and its answer alone names the request (its reference
# number): when it is lost after the request went out, KSeF may issue the certificate all the same.
ENROLL_MAY_HAVE_GONE_THROUGH = (
    "certificates.enroll: the request may have reached KSeF although its answer (and with it the request's "
    "reference number) was lost, so KSeF may issue the certificate. Do not send the CSR again blindly: "
    "ksef.certificates.complete(PendingCertificate(None, key, {name!r}, {kind!r})), key being the CSR's "
    "private key, finds the certificate among the subject's by that key once it is issued (PollTimeoutError "
    "if none comes: KSeF may never have received the request; then send it again)"
)


def _enroll_flow(body: EnrollCertificateRequest) -> Flow[EnrollCertificateResponse]:
    """``enroll``: the request sent once; an error that may have come after KSeF took it gets
    ``maybe_sent`` and a note (``ENROLL_MAY_HAVE_GONE_THROUGH``; ``sent_once``)."""
    note = ENROLL_MAY_HAVE_GONE_THROUGH.format(name=body.certificate_name, kind=str(body.certificate_type))
    return (yield from sent_once(Call(create_enrollment, {"body": body}), EnrollCertificateResponse, note))


def _status_flow(reference_number: str) -> Flow[CertificateEnrollmentStatusResponse]:
    validate_reference_number(reference_number)
    call = Call(get_enrollment_status, {"reference_number": reference_number})
    return parsed(response_of((yield call)), CertificateEnrollmentStatusResponse)


def wait_enrolled_flow(
    reference_number: str, timeout: float, interval: float
) -> Flow[CertificateEnrollmentStatusResponse]:
    """Poll a certificate request while it is 100 (accepted): its status once 200 (issued, with
    ``certificate_serial_number``), ``CertificateEnrollmentError`` for any other final code,
    ``PollTimeoutError`` after ``timeout``."""
    validate_reference_number(reference_number)
    what = f"certificate request {reference_number}"
    status = yield from poll_in_progress(lambda: _status_flow(reference_number), what, timeout, interval)
    if status.status.code == ISSUED and not isinstance(status.certificate_serial_number, str):
        # Issued, but the answer does not say which certificate: no refusal (the spec's 200 is
        # "Wniosek obsłużony (certyfikat wygenerowany)"), an answer that breaks the spec.
        raise ResponseFormatError(f"certificate request {reference_number}: status 200 without certificateSerialNumber")
    if status.status.code != ISSUED:
        details = status.status.details if isinstance(status.status.details, list) else []
        raise CertificateEnrollmentError(
            reference_number, status.status.code, status.status.description, [str(d) for d in details], status
        )
    return status


def _retrieve_flow(serial_numbers: Iterable[str]) -> Flow[list[RetrievedCertificate]]:
    serials = [
        validate_certificate_serial(s, "serial_numbers")
        for s in ([serial_numbers] if isinstance(serial_numbers, str) else serial_numbers)
    ]
    if not 1 <= len(serials) <= MOST_RETRIEVED:
        raise ValueError(f"serial_numbers: 1 to {MOST_RETRIEVED} at a time (RetrieveCertificatesRequest)")
    body = RetrieveCertificatesRequest(certificate_serial_numbers=serials)
    answer = parsed(response_of((yield Call(retrieve_certificates, {"body": body}))), RetrieveCertificatesResponse)
    return [_retrieved(item.certificate_serial_number, item.certificate_name, str(item.certificate_type),
                       item.certificate) for item in answer.certificates]  # fmt: skip


def _retrieved(serial: str, name: str, kind: str, der_base64: str) -> RetrievedCertificate:
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(der_base64, validate=True))
    except (ValueError, binascii.Error) as error:
        raise ResponseFormatError(f"certificate {serial}: not a DER certificate in Base64 ({error})") from None
    return RetrievedCertificate(serial, name, kind, certificate)


def certificates_pages(
    serial_number: str | None,
    name: str | None,
    certificate_type: str | None,
    status: str | None,
    expires_after: dt.datetime | None,
    page_size: int | None,
) -> PageFlow[int, CertificateListItem]:
    """The pages of ``POST /certificates/query`` (filters checked now, before any request)."""
    body = QueryCertificatesRequest(
        certificate_serial_number=validate_certificate_serial(serial_number) if serial_number is not None else UNSET,
        name=name if name is not None else UNSET,
        type_=_check_enum(certificate_type, KsefCertificateType, "certificate_type"),
        status=_check_enum(status, CertificateListItemStatus, "status"),
        expires_after=_check_moment(expires_after, "expires_after") or UNSET,
    )
    return offset_pages(query_certificates, "certificates", page_size, {"body": body})


def _revoke_flow(serial_number: str, reason: str | None) -> Flow[None]:
    """Revoke a certificate. ``POST .../revoke`` is not repeated by the transport (a POST), so a
    revoke whose answer was lost (a 5xx, a connection broken after sending) is settled by the
    certificate's status (``POST /certificates/query`` by serial number): ``Revoked`` or
    ``Blocked`` is success; otherwise the failure is raised. A refusal of a repeat the client made
    after such an attempt (``uncertain_attempts``) is settled the same way."""
    serial = validate_certificate_serial(serial_number)
    reason_value = _check_enum(reason, CertificateRevocationReason, "reason")
    body = RevokeCertificateRequest(revocation_reason=reason_value)
    try:
        yield Call(revoke_certificate, {"certificate_serial_number": serial, "body": body})
    except (BadRequestError, InternalServerError, APIConnectionError) as error:
        if isinstance(error, BadRequestError) and not error.uncertain_attempts:
            raise
        if not (yield from _revoked(serial)):
            raise
        log.info("KSeF certificate %s: revoked by an attempt whose answer was lost", serial)


def _revoked(serial: str) -> Flow[bool]:
    """Whether the certificate's status is ``Revoked`` or ``Blocked`` (``False`` when it cannot be read)."""
    try:
        found, _ = yield from certificates_pages(serial, None, None, None, None, None)(None)
    except KSeFError:
        return False
    return any(c.certificate_serial_number == serial and c.status in REVOKED for c in found)


@dataclass(frozen=True)
class PendingCertificate:
    """A certificate request sent by ``obtain`` (or ``enroll``) whose certificate this process has
    not received yet: its ``reference_number`` (``None`` when the answer to the request was lost:
    KSeF may hold it), the ``key`` its CSR was made from (never shown in ``repr``; it exists
    nowhere else), and the certificate's ``name`` and ``kind``. ``certificates.complete(pending)``
    returns the credentials once KSeF issued the certificate."""

    reference_number: str | None
    key: PrivateKey = field(repr=False)
    name: str = ""
    kind: str = ""


def _complete_flow(
    pending: PendingCertificate, timeout: float, interval: float, unfinished: list[PendingCertificate] | None = None
) -> Flow[KSeFCredentials]:
    """The request's certificate paired with its key (``ValueError`` when it is not of that key:
    ``SigningCredentials`` checks): by its reference number, or, when that was lost, found among
    the subject's certificates of its name by its public key. Done or refused, it leaves
    ``unfinished``."""
    if not isinstance(pending, PendingCertificate):
        raise TypeError(f"pending: a PendingCertificate, got {type(pending).__name__}")
    try:
        if pending.reference_number is None:
            credentials = yield from _find_issued_flow(pending, timeout, interval)
        else:
            status = yield from wait_enrolled_flow(pending.reference_number, timeout, interval)
            credentials = yield from _credentials_flow(str(status.certificate_serial_number), pending.key)
    except CertificateEnrollmentError:
        _forget(unfinished, pending)  # refused: no certificate will come, the key has no use
        raise
    _forget(unfinished, pending)
    return credentials


def _forget(unfinished: list[PendingCertificate] | None, pending: PendingCertificate) -> None:
    if unfinished is not None and pending in unfinished:
        unfinished.remove(pending)


def _swap(unfinished: list[PendingCertificate] | None, old: PendingCertificate, new: PendingCertificate) -> None:
    """``new`` in ``old``'s place (the request's answer came: its reference number is known)."""
    if unfinished is None:
        return
    if old in unfinished:
        unfinished[unfinished.index(old)] = new
    else:
        unfinished.append(new)


def _credentials_flow(serial: str, key: PrivateKey) -> Flow[KSeFCredentials]:
    found = yield from _retrieve_flow([serial])
    match = next((c for c in found if c.serial_number == serial), None)
    if match is None:
        raise ResponseFormatError(f"POST /certificates/retrieve did not return certificate {serial}")
    return KSeFCredentials(match.certificate, key, serial, match.type, match.name)


def _find_issued_flow(pending: PendingCertificate, timeout: float, interval: float) -> Flow[KSeFCredentials]:
    """A request whose answer was lost has no reference number to poll: its certificate is the one
    of its name and type whose public key is the pending key, once KSeF lists it (polled)."""
    found = yield from poll_flow(
        lambda: _certificate_of_key(pending),
        lambda credentials: credentials is not None,
        lambda _: (
            f"no certificate{f' named {pending.name!r}' if pending.name else ''} of this key is issued yet"
            " (KSeF may never have received the request)"
        ),
        timeout,
        interval,
    )
    assert found is not None  # poll_flow returns only once done() holds
    return found


def _certificate_of_key(pending: PendingCertificate) -> Flow[KSeFCredentials | None]:
    """The certificate of the pending key among the subject's (of its name and kind when known:
    a ``PendingCertificate(None, key)`` made by hand looks through all of them)."""
    name = pending.name or None
    listed = yield from all_items(certificates_pages(None, name, pending.kind or None, None, None, None))
    serials = [c.certificate_serial_number for c in listed if name is None or c.name == name]
    public = pending.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for start in range(0, len(serials), MOST_RETRIEVED):
        for found in (yield from _retrieve_flow(serials[start : start + MOST_RETRIEVED])):
            if found.certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == public:
                return KSeFCredentials(found.certificate, pending.key, found.serial_number, found.type, found.name)
    return None


def _obtain_flow(
    name: str, kind: str, key_type: str, valid_from: dt.datetime | None, timeout: float, interval: float,
    key: PrivateKey | None = None, unfinished: list[PendingCertificate] | None = None,
    on_sent: Callable[[PendingCertificate], None] | None = None,
) -> Flow[KSeFCredentials]:  # fmt: skip
    """New key (or ``key``), enrollment data, CSR, request, wait, retrieve: every argument checked
    first. From the moment the request may have reached KSeF, its ``PendingCertificate`` is in
    ``unfinished`` until the certificate is handed out or refused (a cancelled or interrupted
    call leaves it there), and a failure that leaves the outcome open (a lost answer, a timeout)
    is a ``CertificatePendingError`` holding it."""
    _check_name(name)
    _check_enum(kind, KsefCertificateType, "kind", required=True)
    _check_moment(valid_from, "valid_from")
    if key is None:
        if key_type not in KEY_TYPES:
            raise ValueError(f"key_type: {key_type!r} is not one of {list(KEY_TYPES)} (EC P-256 or RSA 2048)")
        key = yield from blocking(generate_private_key, key_type)  # RSA takes a while: off the loop
    else:
        check_private_key(key)
    data = yield from _enrollment_data_flow()
    body = _enrollment_request(name, build_csr(data.to_dict(), key), kind, valid_from)
    unsure = PendingCertificate(None, key, name, kind)
    if unfinished is not None:
        unfinished.append(unsure)  # before the request goes out: an interruption may come at any point
    budget = RetryBudget()
    try:
        accepted = yield from _send_enrollment(body, budget)
    except KSeFError as error:
        # Only attempts KSeF may have processed count (``budget.uncertain``): a repeat after a 429
        # or a connection never made leaves the refusal of the last attempt the whole story.
        if not budget.uncertain and not_taken(error):
            _forget(unfinished, unsure)
            raise
        raise CertificatePendingError(unsure, error) from error
    pending = PendingCertificate(accepted.reference_number, key, name, kind)
    _swap(unfinished, unsure, pending)
    if on_sent is not None:
        on_sent(pending)  # the caller keeps the reference number before the wait, which may not end
    try:
        return (yield from _complete_flow(pending, timeout, interval, unfinished))
    except CertificateEnrollmentError:
        raise
    except KSeFError as error:
        raise CertificatePendingError(pending, error) from error


class Certificates:
    """KSeF certificates of the authenticated subject: ``obtain`` one for a new key, or request,
    wait, retrieve, list and revoke them step by step."""

    def __init__(self, client: KSeF) -> None:
        self._client = client
        self._unfinished: list[PendingCertificate] = []

    @property
    def unfinished(self) -> tuple[PendingCertificate, ...]:
        """The requests ``obtain`` sent (or may have sent) whose certificate this client has not
        handed out yet: cancelled or interrupted calls (Ctrl-C, a task cancelled, a timeout around
        the call) and those that raised ``CertificatePendingError``. ``complete`` each; a
        completed or refused one leaves the list. Kept in this client's memory only."""
        return tuple(self._unfinished)

    def obtain(
        self,
        name: str,
        kind: str = "Authentication",
        *,
        key_type: str = "EC",
        valid_from: dt.datetime | None = None,
        timeout: float = 120.0,
        interval: float = POLL_INTERVAL,
        key: PrivateKey | None = None,
        on_sent: Callable[[PendingCertificate], None] | None = None,
    ) -> KSeFCredentials:
        """A new KSeF certificate of ``kind`` (``Authentication``: logs in; ``Offline``: signs KOD
        II links) named ``name``, and its private key, made here and never sent anywhere.

        Generates the key (``key_type`` ``"EC"`` P-256, the guide's recommendation, or ``"RSA"``
        2048; or takes ``key``, one of those), reads ``GET /certificates/enrollments/data``,
        builds the CSR of exactly those names, sends it, waits for the certificate
        (``wait_enrolled``) and retrieves it. ``valid_from`` (a datetime with a time zone): when
        it starts to be valid (by default when issued). Needs a login with a signature (XAdES),
        not a KSeF token. Arguments are checked before any request (``ValueError``). Keep the
        result with ``.save(path, password)``.

        Nothing is lost when the certificate does not come in time: once the request may have
        reached KSeF, a timeout or a lost answer (to the request itself too) raises
        ``CertificatePendingError``, whose ``pending`` (the request's reference number, or
        ``None`` when its answer was lost, and the key) ``complete`` finishes later; a call
        cancelled or interrupted leaves it in ``unfinished``. A request KSeF refuses raises
        ``CertificateEnrollmentError`` (no certificate will come). Status reads every
        ``interval`` seconds (5: KSeF allows 120 an hour). ``on_sent(pending)``, if given, is
        called once KSeF accepted the request, with its reference number, before the wait: to
        keep it somewhere lasting (a process killed while waiting raises nothing to catch).
        """
        return run(
            _obtain_flow(name, kind, key_type, valid_from, timeout, interval, key, self._unfinished, on_sent),
            self._client,
        )

    def complete(
        self, pending: PendingCertificate, *, timeout: float = 120.0, interval: float = POLL_INTERVAL
    ) -> KSeFCredentials:
        """The credentials of a request ``obtain`` left pending (``CertificatePendingError.pending``,
        one of ``unfinished``, or a ``PendingCertificate(reference_number, key)`` of a request sent
        with ``enroll``): waits until KSeF issues the certificate, retrieves it and pairs it with
        the key (``ValueError`` if the certificate is not of that key). Without a reference number
        (the request's answer was lost), the certificate is looked for among the subject's
        certificates of its name, by the key; ``PollTimeoutError`` if none is issued in time (KSeF
        may never have received the request)."""
        return run(_complete_flow(pending, timeout, interval, self._unfinished), self._client)

    def limits(self) -> CertificateLimitsResponse:
        """``can_request``, and the requests (``enrollment``) and active certificates
        (``certificate``) the subject may still have: each a ``limit`` and its ``remaining``."""
        return run(_limits_flow(), self._client)

    def enrollment_data(self) -> CertificateEnrollmentDataResponse:
        """The names a CSR must carry, read from the certificate of the login
        (``ksef_client.certificates.build_csr`` builds it)."""
        return run(_enrollment_data_flow(), self._client)

    def enroll(
        self,
        name: str,
        csr: x509.CertificateSigningRequest | bytes | str,
        kind: str = "Authentication",
        *,
        valid_from: dt.datetime | None = None,
    ) -> EnrollCertificateResponse:
        """Send a certificate request (``csr``: an object, DER bytes or PEM) for a certificate of
        ``kind`` named ``name``; its answer's ``reference_number`` is for ``wait_enrolled``.
        The CSR's key (RSA 2048 or EC P-256), signature hash and signature are checked first.

        The request is sent once. When its answer is lost after it went out (a 5xx, a connection
        broken after sending, a timeout waiting), the error has ``maybe_sent`` set and a note:
        KSeF may issue the certificate, and ``complete(PendingCertificate(None, key, name,
        kind))`` with the CSR's private key finds it. A refusal (4xx) or a request never sent
        leaves ``maybe_sent`` ``False``.
        """
        body = _enrollment_request(name, load_csr(csr), kind, valid_from)
        return run(_enroll_flow(body), self._client)

    def enrollment_status(self, reference_number: str) -> CertificateEnrollmentStatusResponse:
        """A certificate request's status (100 accepted, 200 issued with
        ``certificate_serial_number``, 400/500/550 not issued); "dostępny przez 30 dni"."""
        return run(_status_flow(reference_number), self._client)

    def wait_enrolled(
        self, reference_number: str, *, timeout: float = 120.0, interval: float = POLL_INTERVAL
    ) -> CertificateEnrollmentStatusResponse:
        """Poll a certificate request until it is handled: its status once issued (200);
        ``CertificateEnrollmentError`` (``code``, ``description``, ``details``) if refused,
        ``PollTimeoutError`` after ``timeout`` seconds."""
        return run(wait_enrolled_flow(reference_number, timeout, interval), self._client)

    def retrieve(self, serial_numbers: Iterable[str]) -> list[RetrievedCertificate]:
        """The certificates of these serial numbers (1 to 10), parsed (``x509.Certificate``)."""
        return run(_retrieve_flow(serial_numbers), self._client)

    def query(
        self,
        *,
        serial_number: str | None = None,
        name: str | None = None,
        certificate_type: str | None = None,
        status: str | None = None,
        expires_after: dt.datetime | None = None,
        page_size: int | None = None,
        cursor: int | None = None,
    ) -> Pager[CertificateListItem, int]:
        """The subject's certificates, newest request first, fetched page by page as you iterate.

        Filters: ``serial_number`` exactly; ``name`` contained in the certificate's name;
        ``certificate_type`` ``Authentication``/``Offline``; ``status`` ``Active``, ``Blocked``,
        ``Revoked`` or ``Expired``; ``expires_after`` (a datetime with a time zone): valid past it.
        ``page_size`` 10 to 50 (default 50, the most KSeF gives).
        """
        page = certificates_pages(serial_number, name, certificate_type, status, expires_after, page_size)
        return pager(page, self._client, cursor)

    def revoke(self, serial_number: str, *, reason: str | None = None) -> None:
        """Revoke a certificate: it can no longer log in or sign. ``reason``: ``Unspecified``,
        ``Superseded`` or ``KeyCompromise``. Not allowed after a KSeF token login (KSeF: 403).

        A revoke whose answer was lost (a 5xx, a broken connection) is settled by the
        certificate's status: ``Revoked`` or ``Blocked`` is success, otherwise the failure is raised.
        """
        run(_revoke_flow(serial_number, reason), self._client)


class AsyncCertificates:
    """KSeF certificates of the authenticated subject (async); see ``Certificates``."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client
        self._unfinished: list[PendingCertificate] = []

    @property
    def unfinished(self) -> tuple[PendingCertificate, ...]:
        """The requests ``obtain`` sent whose certificate was not handed out; see ``Certificates.unfinished``."""
        return tuple(self._unfinished)

    async def obtain(
        self,
        name: str,
        kind: str = "Authentication",
        *,
        key_type: str = "EC",
        valid_from: dt.datetime | None = None,
        timeout: float = 120.0,
        interval: float = POLL_INTERVAL,
        key: PrivateKey | None = None,
        on_sent: Callable[[PendingCertificate], None] | None = None,
    ) -> KSeFCredentials:
        """A new KSeF certificate and its private key; see ``Certificates.obtain`` (``on_sent``
        is called on the event loop: keep it short)."""
        return await arun(
            _obtain_flow(name, kind, key_type, valid_from, timeout, interval, key, self._unfinished, on_sent),
            self._client,
        )

    async def complete(
        self, pending: PendingCertificate, *, timeout: float = 120.0, interval: float = POLL_INTERVAL
    ) -> KSeFCredentials:
        """The credentials of a pending request; see ``Certificates.complete``."""
        return await arun(_complete_flow(pending, timeout, interval, self._unfinished), self._client)

    async def limits(self) -> CertificateLimitsResponse:
        """The subject's certificate limits; see ``Certificates.limits``."""
        return await arun(_limits_flow(), self._client)

    async def enrollment_data(self) -> CertificateEnrollmentDataResponse:
        """The names a CSR must carry; see ``Certificates.enrollment_data``."""
        return await arun(_enrollment_data_flow(), self._client)

    async def enroll(
        self,
        name: str,
        csr: x509.CertificateSigningRequest | bytes | str,
        kind: str = "Authentication",
        *,
        valid_from: dt.datetime | None = None,
    ) -> EnrollCertificateResponse:
        """Send a certificate request; see ``Certificates.enroll`` (a lost answer: ``maybe_sent``)."""
        body = _enrollment_request(name, load_csr(csr), kind, valid_from)
        return await arun(_enroll_flow(body), self._client)

    async def enrollment_status(self, reference_number: str) -> CertificateEnrollmentStatusResponse:
        """A certificate request's status."""
        return await arun(_status_flow(reference_number), self._client)

    async def wait_enrolled(
        self, reference_number: str, *, timeout: float = 120.0, interval: float = POLL_INTERVAL
    ) -> CertificateEnrollmentStatusResponse:
        """Poll a certificate request until it is handled; see ``Certificates.wait_enrolled``."""
        return await arun(wait_enrolled_flow(reference_number, timeout, interval), self._client)

    async def retrieve(self, serial_numbers: Iterable[str]) -> list[RetrievedCertificate]:
        """The certificates of these serial numbers (1 to 10), parsed."""
        return await arun(_retrieve_flow(serial_numbers), self._client)

    def query(
        self,
        *,
        serial_number: str | None = None,
        name: str | None = None,
        certificate_type: str | None = None,
        status: str | None = None,
        expires_after: dt.datetime | None = None,
        page_size: int | None = None,
        cursor: int | None = None,
    ) -> AsyncPager[CertificateListItem, int]:
        """The subject's certificates, newest first (``async for``); see ``Certificates.query``."""
        page = certificates_pages(serial_number, name, certificate_type, status, expires_after, page_size)
        return apager(page, self._client, cursor)

    async def revoke(self, serial_number: str, *, reason: str | None = None) -> None:
        """Revoke a certificate; see ``Certificates.revoke``."""
        await arun(_revoke_flow(serial_number, reason), self._client)
