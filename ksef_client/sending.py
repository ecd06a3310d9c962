"""Sending invoices: online sessions (one encrypted invoice per request) and batch sessions.

::

    with ksef.online_session(form="FA(3)") as session:
        session.send(xml_bytes)
    ksef.sessions.wait(session.reference_number)

    result = ksef.send_batch(paths_or_bytes, form="FA(3)", wait=True)

Every step is a flow (``_flows``) shared by the sync and async clients. Sending an invoice and
opening a session are safe to repeat (a repeated invoice becomes a 440 duplicate naming the
original; a session opened by a lost attempt stays empty), so the retry policy repeats them like a
GET; a close whose answer is lost is settled by the session's status. A send that fails when the
invoice may have reached KSeF says so on its error (``maybe_sent``), and the session remembers the
invoice's hash, by which ``outcomes()`` finds it in KSeF's listing.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
from lxml import etree

from ksef_client._core import not_taken, parsed
from ksef_client._flows import Call, Flow, Retry, Upload, all_items, arun, response_of, retry_after_of, run
from ksef_client._generated.api.batch_session import close_batch_session, open_batch_session
from ksef_client._generated.api.online_session import close_online_session, open_online_session, send_invoice
from ksef_client._generated.api.sessions_status import get_session_status
from ksef_client._generated.models import (
    EffectiveContextLimits,
    OpenBatchSessionRequest,
    OpenBatchSessionResponse,
    OpenOnlineSessionRequest,
    OpenOnlineSessionResponse,
    SendInvoiceRequest,
    SendInvoiceResponse,
    SessionStatusResponse,
)
from ksef_client._open_sessions import OpenSessions
from ksef_client._retry import RetryBudget
from ksef_client._threads import in_thread, on_loop
from ksef_client._xml import parse
from ksef_client.batch import (
    MAX_PART_BYTES,
    BatchPackage,
    InvoiceCheck,
    InvoiceSource,
    PackageCompression,
    Progress,
    SupportsToXml,
    check_progress,
    invoice_bytes,
    part_uploads,
)
from ksef_client.crypto import EncryptedInvoice, PublicKeyCertificate, SymmetricKey, encryption_for, sha256_b64
from ksef_client.errors import (
    APIConnectionError,
    BadRequestError,
    BatchError,
    InternalServerError,
    InvoiceRejectedError,
    KSeFError,
)
from ksef_client.identifiers import is_valid_nip
from ksef_client.outcomes import InvoiceOutcome, SentInvoice, session_outcomes
from ksef_client.resources.auth import with_keys
from ksef_client.resources.limits import context_limits_flow
from ksef_client.resources.sessions import invoices_pages
from ksef_client.schemas import (
    BATCH_FORMS,
    FormCode,
    InvoiceSchemaError,
    LimitsInForce,
    SessionLimits,
    batch_form,
    checked_invoice,
    form_code,
    has_attachment,
    may_have_attachment,
)

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF
    from ksef_client._tokens import KeyCache

log = logging.getLogger("ksef_client")

T = TypeVar("T")
OPEN = 100
# A context's limits as a caller gives them: ``SessionLimits`` or ``ksef.limits.context()``.
ContextLimits = SessionLimits | EffectiveContextLimits
# Failures after which KSeF may or may not have closed the session: its status tells.
UNSETTLED = (APIConnectionError, InternalServerError)


def open_online_flow(form: FormCode, key: SymmetricKey, keys: KeyCache) -> Flow[str]:
    """``POST /sessions/online`` -> the session's reference number (the key wrapped for KSeF's
    current certificate: fetched again and sent once more if KSeF refuses the cached one)."""

    def attempt(certificates: list[PublicKeyCertificate]) -> Flow[str]:
        body = OpenOnlineSessionRequest.from_dict(
            {"formCode": form.to_dict(), "encryption": encryption_for(key, certificates)}
        )
        opened = parsed(response_of((yield Call(open_online_session, {"body": body}))), OpenOnlineSessionResponse)
        return opened.reference_number

    return (yield from with_keys(keys, attempt))


def send_flow(
    reference_number: str,
    invoice: EncryptedInvoice,
    offline: bool,
    budget: RetryBudget | None = None,
    hash_of_corrected_invoice: str | None = None,
) -> Flow[str]:
    """``POST /sessions/online/{ref}/invoices`` -> the invoice's reference number (``budget``: the
    request's retry budget, which tells the caller whether it was sent more than once;
    ``hash_of_corrected_invoice``: a technical correction of a rejected offline invoice).

    Nothing is numbered twice when the retry policy sends it again after a dropped connection or a
    5xx: either KSeF never got the first request (the repeat is the invoice) or it did, and the
    repeat becomes a 440 duplicate naming the original KSeF number, which
    ``OnlineSession.outcomes()`` resolves. A technical correction's repeat is refused with 400
    21166 instead (KSeF takes one correction of an invoice): the send raises, ``maybe_sent``, and
    ``outcomes()`` finds the correction by its hash.
    """
    body = SendInvoiceRequest.from_dict(
        invoice.request_body(offline=offline, hash_of_corrected_invoice=hash_of_corrected_invoice)
    )
    call = Call(send_invoice, {"reference_number": reference_number, "body": body}, budget=budget)
    return parsed(response_of((yield call)), SendInvoiceResponse).reference_number


def may_have_reached_ksef(error: KSeFError, budget: RetryBudget) -> bool:
    """Whether an invoice whose send raised ``error`` may be in KSeF all the same: ``True`` unless
    the send is known not to have reached it (``not_taken``).

    Only the last attempt's error reaches the flow: if the request was repeated after an attempt
    KSeF may have processed (``budget.uncertain``: a 5xx, a connection broken once made), that
    attempt may have reached KSeF and lost its answer, whatever the last one says. Repeats after
    answers KSeF gives unprocessed (a 429, a 401 then refreshed) do not count. A token refresh that
    failed (``budget.refreshing``: before the send went out, or after KSeF refused it with a 401)
    is its own error: the send was not taken, unless an earlier attempt was uncertain.
    """
    if budget.uncertain:
        return True
    return not budget.refreshing and not not_taken(error)


UBL_BASIC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"


def invoice_number_of(xml: bytes) -> str | None:
    """The invoice's number as KSeF reads it (FA's ``P_2``, FA_RR's ``P_4C``, PEF's ``cbc:ID``),
    for messages; ``None`` when it cannot be read."""
    try:
        root = parse(xml)
    except etree.XMLSyntaxError:
        return None
    return invoice_number_in(root)


def invoice_number_in(root: etree._Element) -> str | None:
    """``invoice_number_of`` an invoice already parsed (``root``: its root element)."""
    for path in ("{*}Fa/{*}P_2", "{*}FakturaRR/{*}P_4C", f"{{{UBL_BASIC}}}ID"):
        found = root.find(path)
        number = "".join(found.itertext()).strip() if found is not None else ""  # type: ignore[arg-type]
        if number:  # its whole text: a comment inside does not cut it short
            return number
    return None


MAYBE_SENT = (
    "invoice {number}(SHA-256 {hash}) may have reached KSeF in session {session} although this call "
    "failed (a request went out and no usable answer came back, or the request was repeated and an "
    "earlier attempt's fate is unknown). Do not give it a new number. After the session is "
    "closed and processed (ksef.sessions.wait), session.outcomes() reports it, found by its hash: "
    "accepted with its KSeF number, rejected, or 'unknown' with no reference number (KSeF did not "
    "receive it: send it again). Or send the same invoice again now (in this session while it is "
    "open, else in a new one): if KSeF holds it, the resend "
    "ends as a 440 duplicate naming its KSeF number (KSeF finds duplicates by seller NIP, invoice "
    "kind and number), otherwise it is accepted."
)
# A technical correction is not settled by a resend as an invoice is: once KSeF took a correction of
# the rejected invoice, another is refused before the duplicate check, with the spec's "21166 Korekta
# techniczna niedostępna. Faktura posiada już przetworzoną prawidłowo korektę techniczną." (400).
MAYBE_SENT_CORRECTION = (
    "technical correction {number}(SHA-256 {hash}) of the rejected offline invoice {corrected} may have "
    "reached KSeF in session {session} although this call failed (a request went out and no usable answer "
    "came back, or the request was repeated and an earlier attempt's fate is unknown; a 21166 after a "
    "repeat most likely means an earlier attempt was taken). After the session is closed and processed "
    "(ksef.sessions.wait), session.outcomes() reports it, found by its hash: accepted with its KSeF "
    "number, rejected, or 'unknown' with no reference number (KSeF did not receive it: send the "
    "correction again). A resend before that is refused with 400 21166 if KSeF took the correction "
    "(no KSeF number in the answer: outcomes() has it), and is taken otherwise."
)
# A send repeated after an attempt KSeF may have taken (logged, WARNING): what send() returned may end
# as a 440 although the invoice is accepted (faktury/weryfikacja-faktury.md: "W przypadku duplikatu
# zwracany jest kod błędu 440"; the spec's 440 names the original in originalKsefNumber).
REPEATED = (
    "invoice %s(SHA-256 %s) was sent to session %s %d times: an earlier attempt failed after it went out "
    "(its answer lost, or a 5xx), so KSeF may hold it under a reference number this client never saw and "
    "list the one send() returned, %s, as a 440 duplicate of it (the invoice is neither lost nor numbered "
    "twice). Its verdict: session.outcomes() once ksef.sessions.wait(%r) ends (found by its hash); do not "
    "give it a new number"
)
NOT_SENT = (
    "invoice {number}(SHA-256 {hash}) was not taken by KSeF in session {session}: send it again "
    "(in a new session if this one is closed)"
)
CORRECTION_UNAVAILABLE = 21166
CORRECTED_ALREADY = (
    "technical correction {number}(SHA-256 {hash}) was not taken by KSeF in session {session}: the "
    "rejected offline invoice {corrected} already has an accepted technical correction (21166), and "
    "KSeF takes only one: do not send it again (the accepted one's KSeF number is in the outcomes() of "
    "the session that sent it)"
)


def failure_note(error: KSeFError, corrected: str | None) -> str:
    """The advice a failed send's note gives (``corrected``: the send was a technical correction
    of the invoice with that hash), before its fields are filled in."""
    if error.maybe_sent:
        return MAYBE_SENT if corrected is None else MAYBE_SENT_CORRECTION
    if corrected is not None and CORRECTION_UNAVAILABLE in getattr(error, "codes", ()):
        return CORRECTED_ALREADY
    return NOT_SENT


# The spec's close answers 400 "21180 | Status sesji nie pozwala na wykonanie operacji. | Status
# sesji {code} uniemożliwia jej zamknięcie." for a session that is not open: after a close of it
# was sent already, that is most likely the earlier close having gone through.
NOT_CLOSABLE = 21180


def close_flow(reference_number: str, operation: Any, sent_before: bool = False) -> Flow[None]:
    """Close a session (``operation``: the online or batch close); when the answer is lost (or is a
    5xx), the session's status tells whether it closed, and the close is sent again only if it did
    not, after the 5xx's ``Retry-After`` (one retry budget for every attempt of the close). A
    21180 to a close sent again (by this loop, or ``sent_before``: an earlier close of the session
    failed) is settled by the status too: a session no longer open (100) is closed, nothing more
    to do. When the status cannot be read, the close's error is raised, with a note saying so."""
    budget = RetryBudget()
    again = sent_before
    while True:
        try:
            yield Call(operation, {"reference_number": reference_number}, budget=budget)
            return
        except BadRequestError as error:
            if not again or NOT_CLOSABLE not in error.codes or (yield from still_open(reference_number, error)):
                raise
            return  # closed by the earlier close, whose answer was lost
        except UNSETTLED as error:
            if not (yield from still_open(reference_number, error)):
                return  # the close went through; only its answer was lost
            again = True
            # after what a 5xx asked for (its Retry-After); past max_retry_after: not restarted
            if not (yield Retry(budget, f"close of session {reference_number}", retry_after_of(error))):
                raise error


def still_open(reference_number: str, error: KSeFError) -> Flow[bool]:
    """Whether the session is still open (status 100), read after its close failed with ``error``;
    when the status cannot be read either, ``error`` is raised (the close is what the caller
    asked for), its note naming the status check's failure."""
    call = Call(get_session_status, {"reference_number": reference_number})
    try:
        status = parsed(response_of((yield call)), SessionStatusResponse)
    except KSeFError as unread:
        error.add_note(
            f"whether the close of session {reference_number} went through is not known: reading the "
            f"session's status to tell failed too ({type(unread).__name__}: {unread})"
        )
        raise error from error.__cause__
    return status.status.code == OPEN


def prepare_invoice(
    xml: bytes | SupportsToXml, form: FormCode, key: SymmetricKey, validate: bool, limits: SessionLimits | None = None,
    *, production: bool = False,
) -> tuple[EncryptedInvoice, str | None]:  # fmt: skip
    """Check (optionally against the XSD and ``limits``, and in ``production`` the parties' NIPs)
    and encrypt one invoice; ``InvoiceRejectedError`` before sending. With its number
    (``invoice_number_of``), read from the checked document (not parsed again), or from the bytes
    when not checked."""
    data = invoice_bytes(xml, checked_after=validate)
    if validate:
        number = invoice_number_in(check_invoice(data, form, limits=limits, production=production))
    else:
        number = invoice_number_of(data)
    return EncryptedInvoice.build(key, data), number


def check_invoice(
    xml: bytes, form: FormCode, which: str = "invoice", after: str = "", limits: SessionLimits | None = None,
    *, production: bool = False,
) -> etree._Element:  # fmt: skip
    """``validate_invoice``, its ``InvoiceSchemaError`` raised as ``InvoiceRejectedError`` naming
    ``which`` invoice (``after``: what the message adds); the check both kinds of session make.
    In ``production`` (a client of ``Environment.PROD``), then the NIP check digits of the
    invoice's parties (``nip_errors``), which only KSeF's production environment checks. The
    checked document's root element (``checked_invoice``)."""
    try:
        root = checked_invoice(xml, form, limits=limits)
    except InvoiceSchemaError as error:
        raise InvoiceRejectedError(f"{which} does not match {form.system_code}: {error}{after}") from error
    if production and (errors := nip_errors(root)):
        raise InvoiceRejectedError(
            f"{which}: {'; '.join(errors)}. KSeF's production environment refuses such an invoice (status 450; "
            f'faktury/weryfikacja-faktury.md, "Walidacja numeru NIP"): correct the NIP{after}'
        )
    return root


# faktury/weryfikacja-faktury.md, "Walidacja numeru NIP": "Sprawdzenie sumy kontrolnej NIP dla:
# Podmiot1, Podmiot2, Podmiot3 oraz PodmiotUpowazniony (jeśli występuje)", and "Walidacja numeru NIP
# w identyfikatorze wewnętrznym": "Sprawdzenie sumy kontrolnej NIP w identyfikatorze wewnętrznym
# (InternalId) dla Podmiot3"; both "Dotyczy tylko środowiska produkcyjnego".
_NIP_PARTIES = ("Podmiot1", "Podmiot2", "Podmiot3", "PodmiotUpowazniony")


def nip_errors(root: etree._Element) -> list[str]:
    """The NIPs of an FA invoice's parties (``root``: a checked document) whose check digit is
    wrong, each named by its element: KSeF's production environment refuses the invoice (450)."""
    errors = []
    for party in _NIP_PARTIES:
        for index, element in enumerate(root.findall(f"{{*}}{party}"), 1):
            where = f"{party}[{index}]" if party == "Podmiot3" else party
            for name, nip_of in (("NIP", _whole), ("IDWew", lambda element: _whole(element)[:10])):
                found = element.find(f"{{*}}DaneIdentyfikacyjne/{{*}}{name}")
                if found is not None and not is_valid_nip(nip_of(found)):
                    what = "has a wrong NIP check digit" if name == "NIP" else "holds a NIP with a wrong check digit"
                    errors.append(f"{where}/DaneIdentyfikacyjne/{name} {_whole(found)!r} {what}")
    return errors


def _whole(element: etree._Element) -> str:
    return "".join(element.itertext()).strip()  # type: ignore[arg-type]  # its whole text, comments aside


def batch_check(form: FormCode, limits: LimitsInForce | None = None, *, production: bool = False) -> InvoiceCheck:
    """The check of each invoice of a batch while its package is built, before the session is
    opened: the same as an online session's (``validate_invoice``, sizes as ``limits`` say, the
    parties' NIPs in ``production``); ``InvoiceRejectedError`` naming the invoice by position and
    file name."""
    in_force = limits or LimitsInForce()

    def check(index: int, name: str, xml: bytes) -> None:
        allowed = in_force.covering(size=len(xml))
        check_invoice(xml, form, f"invoice {index} ({name})", "; nothing was sent", allowed, production=production)

    return check


def check_no_attachments(xml: bytes, form: FormCode) -> None:
    """``InvoiceRejectedError`` for an FA invoice with attachments (``Zalacznik``) sent online:
    "Wysyłka faktur z załącznikami jest dozwolona tylko w trybie wsadowym", save a technical
    correction of an offline invoice (``faktury/weryfikacja-faktury.md``). For a checked invoice
    (well-formed): the few that name the element are parsed again.

    The rule binds the forms a batch session takes (``BATCH_FORMS``). A PEF invoice goes through
    online sessions only, its attachments too: the Ministry's Java client sends its PEF template
    with an embedded document online, after the attachment consent, and KSeF TEST takes it."""
    if form.system_code not in BATCH_FORMS:
        return
    if may_have_attachment(xml) and has_attachment(parse(xml)):
        raise InvoiceRejectedError(
            f"invoice does not fit an online session: an {form.system_code} invoice with attachments (Zalacznik) "
            "is taken only in a batch session (send_batch), or online as a technical correction of an offline "
            "invoice (hash_of_corrected_invoice=)"
        )


def check_sha256_b64(value: str, name: str) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is a SHA-256 in Base64 (44 characters)."""
    try:
        valid = len(value) == 44 and len(base64.b64decode(value, validate=True)) == 32
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{name}: {value!r} is not a SHA-256 in Base64 (44 characters; crypto.sha256_b64)")


def check_not_its_own_hash(corrected: str, xml: bytes) -> None:
    """``ValueError`` when a technical correction names its own file: ``hashOfCorrectedInvoice`` is
    "skrót SHA-256 pierwotnej, odrzuconej faktury offline" (offline/korekta-techniczna.md), and
    the corrected file, being fixed, differs from it ("skrót SHA-256 pliku faktury jest inny")."""
    if corrected == sha256_b64(xml):
        raise ValueError(
            "hash_of_corrected_invoice: the hash of the file being sent (sha256_b64(fixed)); a technical "
            "correction names the rejected original's: sha256_b64(rejected)"
        )


def limits_given(limits: ContextLimits | None, kind: Literal["online", "batch"]) -> LimitsInForce:
    """What a session checks its invoices against: ``limits`` when given (``SessionLimits``, or
    the answer of ``ksef.limits.context()``), else KSeF's defaults until an invoice passes them
    and from then the context's own (``LimitsInForce``)."""
    if limits is None or isinstance(limits, SessionLimits):
        return LimitsInForce(limits)
    return LimitsInForce(SessionLimits.of(limits, kind))


CLOSE_FAILED = (
    "online session {ref}: its close failed, and may have gone through all the same (if the request went "
    "out): ksef.sessions.get({ref!r}) tells. 100: still open, session.close() sends the close again (KSeF "
    "processes nothing from an open session until it closes it at validUntil); any other: closed, and "
    "KSeF processes it (ksef.sessions.wait({ref!r}); do not send its invoices again: that makes 440 "
    "duplicates). A second session.close() settles this by that status too"
)


@contextmanager
def naming_closed_session(reference_number: str) -> Iterator[None]:
    """An error of an online session's close names the session (``session_reference_number`` of
    a ``KSeFError``, and ``CLOSE_FAILED`` as a note): whether it is closed is not known."""
    try:
        yield
    except Exception as error:
        if isinstance(error, KSeFError) and error.session_reference_number is None:
            error.session_reference_number = reference_number
        error.add_note(CLOSE_FAILED.format(ref=reference_number))
        raise


def not_closed(reference_number: str | None, why: str) -> str:
    """The note on the error a ``with online_session()`` block raised when the close on leaving it
    failed too: the block's error is the one raised, this says what became of the session."""
    return (
        f"online session {reference_number} may still be open: its close on leaving the block failed "
        f"({why}); ksef.sessions.get({reference_number!r}) tells (100: open; KSeF then closes it at its "
        "validUntil and only then issues the UPO)"
    )


class _OnlineSessionFlows:
    """An online session's state and its steps as flows; ``OnlineSession`` and
    ``AsyncOnlineSession`` run them."""

    def __init__(
        self,
        keys: KeyCache,
        form: str | FormCode,
        validate: bool,
        limits: ContextLimits | None,
        production: bool,
        open_sessions: OpenSessions,
    ) -> None:
        self._keys = keys
        # The client's record of the sessions it holds open (``sessions.wait`` refuses those).
        self._open_sessions = open_sessions
        self.form = form_code(form)
        self.validate = validate
        self._production = production  # the parties' NIP check digits too (KSeF PROD only checks them)
        self.limits = limits_given(limits, "online")
        self.reference_number: str | None = None
        # What each send that returned returned (a repeated send's: its last attempt's, see send()).
        self.invoice_reference_numbers: list[str] = []
        # Every send that reached KSeF or may have (sending order): what outcomes() reports on.
        self.sent: list[SentInvoice] = []
        self.closed = False  # closed by this object: a second close() sends nothing
        self._close_sent = False  # a close was sent (it may have failed): a 21180 then means closed
        self._key = SymmetricKey.generate()

    def _open_flow(self) -> Flow[None]:
        self.reference_number = yield from open_online_flow(self.form, self._key, self._keys)
        self._open_sessions.opened(self.reference_number, "online")

    def _send_flow(self, xml: bytes | SupportsToXml, offline: bool, corrected: str | None = None) -> Flow[str]:
        if corrected is not None:
            check_sha256_b64(corrected, "hash_of_corrected_invoice")
            offline = True  # a technical correction is of an offline invoice: "offlineMode: true"
        if self.reference_number is None:
            raise RuntimeError(
                "the session is not open: open it first, with `with ksef.online_session() as session:` "
                "(`async with` on AsyncKSeF), or session.open()"
            )
        if self.closed:
            raise RuntimeError(f"session {self.reference_number} is closed: open a new one to send more")
        data = invoice_bytes(xml, checked_after=self.validate)
        if corrected is not None:
            check_not_its_own_hash(corrected, data)
        if self.validate and self.limits.unknown_for(size=len(data)):
            # Larger than KSeF's default: the context's own limits (raised on request) decide.
            self.limits.known = SessionLimits.of((yield from context_limits_flow()), "online")
        allowed = self.limits.covering(size=len(data))
        invoice, number = prepare_invoice(
            data, self.form, self._key, self.validate, allowed, production=self._production
        )
        if self.validate and corrected is None:
            check_no_attachments(data, self.form)
        # Recorded before the request, named by its hash and number: a send cut short by anything
        # (a cancelled task too) may have reached KSeF, and outcomes() then looks for it by its hash.
        attempt = SentInvoice(invoice.invoice_hash, None, number)
        self.sent.append(attempt)
        budget = RetryBudget()
        try:
            ref = yield from send_flow(self.reference_number, invoice, offline, budget, corrected)
        except KSeFError as error:
            self._settle(attempt, self._failed(error, budget, attempt, corrected))
            raise
        repeated = bool(budget.uncertain)
        if repeated:
            self._warn_repeated(attempt, ref, budget)
        self._settle(attempt, SentInvoice(attempt.invoice_hash, ref, attempt.invoice_number, repeated))
        self.invoice_reference_numbers.append(ref)
        return ref

    def _warn_repeated(self, attempt: SentInvoice, ref: str, budget: RetryBudget) -> None:
        """Log (WARNING) that the send of ``attempt`` was repeated after an attempt KSeF may have
        taken, so ``ref`` may end as a 440 although the invoice is accepted: where its verdict is."""
        number = f"{attempt.invoice_number!r} " if attempt.invoice_number else ""
        log.warning(
            REPEATED, number, attempt.invoice_hash, self.reference_number, 1 + budget.used, ref, self.reference_number
        )

    def _failed(
        self, error: KSeFError, budget: RetryBudget, attempt: SentInvoice, corrected: str | None
    ) -> SentInvoice | None:
        """Name the invoice and the session on ``error`` and say whether KSeF may hold the invoice
        (``maybe_sent`` and a note, for a technical correction (``corrected``) its own); the
        attempt as the session keeps it, or ``None``: not sent."""
        number = attempt.invoice_number
        error.maybe_sent = may_have_reached_ksef(error, budget)
        error.invoice_hash, error.invoice_number = attempt.invoice_hash, number
        error.session_reference_number = error.session_reference_number or self.reference_number
        named = f"{number!r} " if number else ""
        text = failure_note(error, corrected)
        error.add_note(
            text.format(number=named, hash=attempt.invoice_hash, session=self.reference_number, corrected=corrected)
        )
        return SentInvoice(attempt.invoice_hash, None, number, bool(budget.uncertain)) if error.maybe_sent else None

    def _settle(self, attempt: SentInvoice, settled: SentInvoice | None) -> None:
        """Replace the record of a send in progress (found by identity: sends may overlap in
        async code) with what became of it, or drop it (``None``: never sent)."""
        # From the end: the attempt is the last record, or near it when sends overlap (a search
        # from the start made a session of n sends cost n^2/2 comparisons).
        at = next(i for i in range(len(self.sent) - 1, -1, -1) if self.sent[i] is attempt)
        if settled is None:
            del self.sent[at]
        else:
            self.sent[at] = settled

    def _close_flow(self) -> Flow[None]:
        if self.reference_number is not None and not self.closed:
            sent_before, self._close_sent = self._close_sent, True
            self._open_sessions.closing(self.reference_number)
            with naming_closed_session(self.reference_number):
                yield from close_flow(self.reference_number, close_online_session, sent_before)
            self.closed = True

    def _outcomes_flow(self) -> Flow[list[InvoiceOutcome]]:
        if self.reference_number is None:
            raise RuntimeError("the session was never opened")
        invoices = yield from all_items(invoices_pages(self.reference_number, False, 1000))
        return session_outcomes(invoices, self.sent, self.reference_number)

    def _ksef_numbers_flow(self) -> Flow[list[str | None]]:
        return [outcome.number_in_ksef for outcome in (yield from self._outcomes_flow())]


class OnlineSession(_OnlineSessionFlows):
    """An open online session (``with ksef.online_session() as s``); closes on exit."""

    def __init__(
        self,
        client: KSeF,
        form: str | FormCode = "FA(3)",
        *,
        validate: bool = True,
        limits: ContextLimits | None = None,
    ) -> None:
        super().__init__(
            client._public_keys, form, validate, limits, client.settings.is_production, client._open_sessions
        )
        self._client = client

    def open(self) -> OnlineSession:
        """Open the session (``with`` does it for you)."""
        run(self._open_flow(), self._client)
        return self

    def send(
        self, xml: bytes | SupportsToXml, *, offline: bool = False, hash_of_corrected_invoice: str | None = None
    ) -> str:
        """Encrypt and send one invoice (XML bytes or an ``Invoice``); returns its reference number
        (status comes later). ``offline``: issued in offline mode. ``hash_of_corrected_invoice``
        (``crypto.sha256_b64`` of the rejected file) sends a technical correction of an offline
        invoice KSeF rejected (``offline/korekta-techniczna.md``: ``offlineMode: true``, which it
        implies, and ``hashOfCorrectedInvoice``); only such a correction may carry attachments in
        an online session. A ``KSeFError`` from KSeF or the connection names the invoice and the
        session (``invoice_hash``, ``invoice_number``, ``session_reference_number``) and says
        whether KSeF may hold it all the same (``maybe_sent``, and a note on what to do).

        After the retry policy sent the invoice again (an attempt's answer lost, or a 5xx: the
        send's record in ``sent`` has ``repeated``, and a WARNING names the invoice), the reference
        returned is the last attempt's. If KSeF took an earlier attempt, it lists this one as a 440
        duplicate whose ``originalKsefNumber`` is the invoice's number, accepted under a reference
        number the client never saw: ``outcomes()`` gives the invoice's verdict, and
        ``ksef.sessions.outcomes(ref)`` marks such a 440 ``is_repeat``."""
        return run(self._send_flow(xml, offline, hash_of_corrected_invoice), self._client)

    def close(self) -> None:
        """Close the session; KSeF then processes it and issues the UPO. Closing again (``close()``
        inside ``with``, then the end of the block) does nothing; ``send`` after it raises
        ``RuntimeError``. An error names the session (``session_reference_number`` and a note):
        the close may have gone through all the same, ``ksef.sessions.get(ref)`` tells; ``close()``
        again then settles it (a close KSeF refuses with 21180 after one of this session's was
        sent is settled by the session's status: no longer open, it is closed)."""
        run(self._close_flow(), self._client)

    def outcomes(self) -> list[InvoiceOutcome]:
        """After processing (``ksef.sessions.wait``): what became of each sent invoice, in sending
        order: accepted with its KSeF number, a duplicate of an invoice already in KSeF (its
        number), rejected with KSeF's code and details, or still processing. A send that raised
        with ``maybe_sent`` is here too, found in KSeF's listing by its hash (``"unknown"`` with
        no reference number when KSeF does not have it); then any invoice KSeF lists in the
        session that none of the sends accounts for."""
        return run(self._outcomes_flow(), self._client)

    def ksef_numbers(self) -> list[str | None]:
        """After processing: the KSeF number under which KSeF holds each sent invoice, in sending
        order: its own when accepted; for a duplicate (440) the number of the invoice KSeF already
        holds under the same seller, kind and number, which is another document if the number was
        reused; ``None`` when rejected, not processed yet or not received. ``outcomes()`` tells
        these apart (``InvoiceOutcome.kind``)."""
        return run(self._ksef_numbers_flow(), self._client)

    def __enter__(self) -> OnlineSession:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            self.close()
            return
        try:
            self.close()
        except Exception as failure:  # the block's error is the one raised; the close's is its note
            error.add_note(not_closed(self.reference_number, f"{type(failure).__name__}: {failure}"))


class AsyncOnlineSession(_OnlineSessionFlows):
    """An open online session (``async with ksef.online_session() as s``)."""

    def __init__(
        self,
        client: AsyncKSeF,
        form: str | FormCode = "FA(3)",
        *,
        validate: bool = True,
        limits: ContextLimits | None = None,
    ) -> None:
        super().__init__(
            client._public_keys, form, validate, limits, client.settings.is_production, client._open_sessions
        )
        self._client = client

    async def open(self) -> AsyncOnlineSession:
        """Open the session (``async with`` does it for you)."""
        await arun(self._open_flow(), self._client)
        return self

    async def send(
        self, xml: bytes | SupportsToXml, *, offline: bool = False, hash_of_corrected_invoice: str | None = None
    ) -> str:
        """Encrypt and send one invoice (XML bytes or an ``Invoice``); returns its reference number
        (``offline``, ``hash_of_corrected_invoice``, errors, and what a repeated send returns: see
        ``OnlineSession.send``)."""
        return await arun(self._send_flow(xml, offline, hash_of_corrected_invoice), self._client)

    async def close(self) -> None:
        """Close the session (again: nothing; errors: see ``OnlineSession.close``)."""
        await arun(self._close_flow(), self._client)

    async def outcomes(self) -> list[InvoiceOutcome]:
        """After processing: what became of each sent invoice (see ``OnlineSession.outcomes``)."""
        return await arun(self._outcomes_flow(), self._client)

    async def ksef_numbers(self) -> list[str | None]:
        """After processing: the KSeF number of each sent invoice (see ``OnlineSession.ksef_numbers``)."""
        return await arun(self._ksef_numbers_flow(), self._client)

    async def __aenter__(self) -> AsyncOnlineSession:
        return await self.open()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            try:
                await self.close()
                return
            except anyio.get_cancelled_exc_class() as cancelled:  # during the close: did it get there?
                await self._close_after(cancelled, self._settle_flow())
                raise
        raised = await self._close_after(error, self._close_flow())
        if raised is not error:  # asyncio cancelled the close: the cancellation goes on
            raise raised

    async def _close_after(self, error: BaseException, close: Flow[None]) -> BaseException:
        """Close the session after the block raised ``error`` or was cancelled: shielded from
        cancellation (an AnyIO cancel scope would cancel the close at once, and the session would
        stay open until KSeF closes it at ``validUntil``) and bounded by the client's ``timeout=``
        (a cancelled caller waits that long at most, not the whole ``deadline=``).

        asyncio's own cancellation (``task.cancel()``, ``asyncio.timeout``, ``wait_for``) passes
        an AnyIO shield: it does not end the close here either. What it struck half-way is settled
        by the session's status (the close sent again only while the session is open), within the
        rest of ``timeout=``, and the cancellation then goes on.

        Returns what the caller is to get: ``error``; or, when ``error`` is an ``Exception`` (the
        block's own) and asyncio cancelled the close, that cancellation, with ``error`` as its
        ``__context__`` (a cancellation stays a cancellation; the block's error is not lost). A
        close that fails or does not end in time is a note on what is returned."""
        limit = self._client.settings.timeout
        cancelled: BaseException | None = None  # asyncio's first, struck during the close
        done, failure = False, f"it did not end within timeout={limit:g} s"
        try:
            with anyio.move_on_after(limit, shield=True) as scope:
                while not done:
                    try:
                        await arun(close, self._client)
                        done = True
                    except anyio.get_cancelled_exc_class() as strike:
                        if scope.cancel_called:  # the scope's deadline (it takes its own cancellation)
                            raise
                        cancelled, close = cancelled or strike, self._settle_flow()
        except anyio.get_cancelled_exc_class() as strike:  # asyncio's, on the deadline itself
            cancelled = cancelled or strike
        except Exception as error_of_close:
            failure = f"{type(error_of_close).__name__}: {error_of_close}"
        raised = error
        if cancelled is not None and isinstance(error, Exception):
            cancelled.__context__ = error
            raised = cancelled
        if not done:
            raised.add_note(not_closed(self.reference_number, failure))
        return raised

    def _settle_flow(self) -> Flow[None]:
        """After a close cancelled half-way, which KSeF may have taken: the session's status tells,
        and the close is sent again only while the session is open."""
        assert self.reference_number is not None
        call = Call(get_session_status, {"reference_number": self.reference_number})
        if parsed(response_of((yield call)), SessionStatusResponse).status.code != OPEN:
            self.closed = True
            return
        yield from self._close_flow()


# --- batch ------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """A sent batch: its session reference number and, when waited for, the final status."""

    reference_number: str
    invoice_count: int
    part_count: int
    status: SessionStatusResponse | None = None


def open_batch_flow(
    form: FormCode, package: BatchPackage, key: SymmetricKey, keys: KeyCache, offline: bool
) -> Flow[OpenBatchSessionResponse]:
    """``POST /sessions/batch`` with the package's declaration (the key wrapped for KSeF's current
    certificate, as in ``open_online_flow``)."""

    def attempt(certificates: list[PublicKeyCertificate]) -> Flow[OpenBatchSessionResponse]:
        body = OpenBatchSessionRequest.from_dict(
            {
                "formCode": form.to_dict(),
                "batchFile": package.batch_file_info(),
                "encryption": encryption_for(key, certificates),
                "offlineMode": offline,
            }
        )
        return parsed(response_of((yield Call(open_batch_session, {"body": body}))), OpenBatchSessionResponse)

    return (yield from with_keys(keys, attempt))


def upload_and_close_flow(
    opened: OpenBatchSessionResponse,
    package: BatchPackage,
    workers: int,
    progress: Progress | None,
    open_sessions: OpenSessions,
) -> Flow[None]:
    """Upload the package's parts to the links of the opened session, then close it (forgotten in
    ``open_sessions``, the client's record of the sessions it holds open, as the close goes out).
    The upload's time does not count against the call's deadline (``Upload``): a slow uplink still
    gets its close."""
    yield Upload(part_uploads(opened.part_upload_requests, package.parts), workers, progress)
    open_sessions.closing(opened.reference_number)
    yield from close_flow(opened.reference_number, close_batch_session)


OPENED = "was opened before this error and may not be closed: ksef.sessions.get({ref!r}) tells (100: still open)"
CLOSED = (
    "was closed before this error and KSeF processes it: ksef.sessions.wait({ref!r}) waits for it "
    "(sending the batch again makes duplicates)"
)


@contextmanager
def naming_session(reference_number: str, state: str) -> Iterator[None]:
    """An error raised inside names the batch session (``session_reference_number``, and a note,
    ``state`` saying how far it got), so the caller can find it instead of sending the batch
    again blindly: any error, a ``KeyboardInterrupt``, a cancellation and a ``progress``
    callback's exception included (as ``.partial`` of an export or a sync)."""
    try:
        yield
    except BaseException as error:
        if getattr(error, "session_reference_number", None) is None:
            with contextlib.suppress(AttributeError):  # a class that refuses it: the note names the session
                error.session_reference_number = reference_number  # type: ignore[attr-defined]
        error.add_note(f"batch session {reference_number} " + state.format(ref=reference_number))
        raise


def send_batch(
    client: KSeF,
    invoices: Iterable[InvoiceSource],
    *,
    form: str | FormCode = "FA(3)",
    offline: bool = False,
    wait: bool = False,
    timeout: float = 3600.0,
    part_size: int = MAX_PART_BYTES,
    workers: int = 4,
    progress: Progress | None = None,
    compression: PackageCompression = "deflate",
    validate: bool = True,
    limits: ContextLimits | None = None,
) -> BatchResult:
    """Zip, encrypt and upload ``invoices`` in a batch session; close it; optionally wait.

    ``invoices``: bytes, ``Invoice`` objects (sent as their ``to_xml()``, as ``session.send`` does),
    paths, or ``(file name, bytes or Invoice)`` pairs; bytes and objects are named
    ``invoice-00001.xml``... by their position in the package.
    ``form``: ``FA(3)``, ``FA(2)`` or ``FA_RR(1)``, the forms the spec lists for batch sessions
    (``schemas.BATCH_FORMS``); another (``PEF(3)``, ``PEF_KOR(3)``: online sessions only) is a
    ``ValueError`` before anything is read or sent.
    ``compression="stored"`` skips deflate: the build is faster (most for small invoices), the upload
    2-5x larger. ``compression="targz"`` sends a tar.gz package (KSeF's ``TarGz``) instead of a zip.
    ``validate`` checks each invoice as ``online_session`` does (the form's XSD, well-formed, size)
    while the package is built: ``InvoiceRejectedError`` naming the invoice, before any request.
    The number and sizes of the invoices are checked against ``limits`` (``SessionLimits`` or
    ``ksef.limits.context()``); when not given, against KSeF's defaults until the batch passes
    them, and then against the context's own, read once (``GET /limits/context``).

    The client's ``deadline`` bounds the API calls (open, close), not the upload: each part's PUT is
    bounded by ``timeout=`` per read and write. An error after the session was opened names it
    (``error.session_reference_number`` and a note saying whether it was closed).
    """
    code, key = batch_form(form), SymmetricKey.generate()
    in_force = limits_given(limits, "batch")
    in_force.read = lambda: SessionLimits.of(client.limits.context(), "batch")
    check = batch_check(code, in_force, production=client.settings.is_production) if validate else None
    with BatchPackage.build(
        invoices, key, part_size=part_size, progress=progress, compression=compression, check=check, limits=in_force
    ) as package:
        opened = run(open_batch_flow(code, package, key, client._public_keys, offline), client)
        ref = opened.reference_number
        client._open_sessions.opened(ref, "batch")
        with naming_session(ref, OPENED):
            run(upload_and_close_flow(opened, package, workers, progress, client._open_sessions), client)
    result = BatchResult(ref, package.invoice_count, len(package.parts))
    if wait:
        with naming_session(ref, CLOSED):
            result.status = client.sessions.wait(ref, timeout=timeout)
    return result


class _BuildStop(threading.Event):
    """``stop`` of an async batch's build (in a worker thread, ``in_thread``) that also cancels
    what the build awaits on the event loop (``awaited``: the context's limits, read through the
    loop): once set, no further invoice is read and such a read in flight is cancelled at once, so
    a cancelled caller does not wait out a whole API call (up to ``deadline=``, with retries).
    Set on the loop's thread (``in_thread`` does when the caller is cancelled)."""

    def __init__(self) -> None:
        super().__init__()
        self._awaiting: set[anyio.CancelScope] = set()

    def set(self) -> None:
        """Stop the build, and cancel what it awaits on the loop (to be called on the loop's thread)."""
        super().set()
        for scope in list(self._awaiting):
            scope.cancel()

    async def awaited(self, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()`` (run on the loop by ``anyio.from_thread.run`` from the build's thread),
        cancelled once this is set: then ``BatchError``, which ends the build."""
        with anyio.CancelScope() as scope:
            self._awaiting.add(scope)
            try:
                if self.is_set():
                    scope.cancel()
                return await call()
            finally:
                self._awaiting.discard(scope)
        raise BatchError("the build was stopped while it read the context's limits (stop is set); nothing was kept")


async def asend_batch(
    client: AsyncKSeF,
    invoices: Iterable[InvoiceSource],
    *,
    form: str | FormCode = "FA(3)",
    offline: bool = False,
    wait: bool = False,
    timeout: float = 3600.0,
    part_size: int = MAX_PART_BYTES,
    workers: int = 4,
    progress: Progress | None = None,
    compression: PackageCompression = "deflate",
    validate: bool = True,
    limits: ContextLimits | None = None,
) -> BatchResult:
    """Async ``send_batch`` (the same ``invoices``): the package is built in a worker thread, parts
    upload concurrently.

    ``progress`` is called on the event loop's thread, the build's stages too (a plain function:
    an ``async def`` one is refused with ``TypeError``). Cancelled while the package is built, the
    build stops at the next invoice and its files are deleted before the cancellation goes on."""
    check_progress(progress)
    code, key = batch_form(form), SymmetricKey.generate()
    in_force = limits_given(limits, "batch")
    # The build runs in a worker thread: the limits are read through the event loop, and that read
    # is cancelled with the caller (it runs as a task of its own, outside the caller's cancel scope).
    stop = _BuildStop()
    in_force.read = lambda: SessionLimits.of(anyio.from_thread.run(stop.awaited, client.limits.context), "batch")
    check = batch_check(code, in_force, production=client.settings.is_production) if validate else None
    package = await in_thread(
        lambda: BatchPackage.build(
            invoices,
            key,
            part_size=part_size,
            progress=None if progress is None else on_loop(progress, stop),
            compression=compression,
            check=check,
            limits=in_force,
            stop=stop,
        ),
        stop,
        BatchPackage.close,
    )
    with package:
        opened = await arun(open_batch_flow(code, package, key, client._public_keys, offline), client)
        ref = opened.reference_number
        client._open_sessions.opened(ref, "batch")
        with naming_session(ref, OPENED):
            await arun(upload_and_close_flow(opened, package, workers, progress, client._open_sessions), client)
    result = BatchResult(ref, package.invoice_count, len(package.parts))
    if wait:
        with naming_session(ref, CLOSED):
            result.status = await client.sessions.wait(ref, timeout=timeout)
    return result
