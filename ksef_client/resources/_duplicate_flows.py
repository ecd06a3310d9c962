"""``ksef.sessions.check_duplicates``: whether the file of a 440 duplicate is the invoice KSeF holds
under its number, written once for ``KSeF`` and ``AsyncKSeF``.

KSeF judges a duplicate by the seller's NIP, the invoice kind and its number (``P_2``), not by the
file (faktury/weryfikacja-faktury.md): a 440 names the invoice KSeF holds under them
(``originalKsefNumber`` in session ``originalSessionReferenceNumber``), which is this very file
sent before or another invoice that reused the number. Their SHA-256 tells: KSeF lists each
invoice's ``invoiceHash``, and a UPO confirms it (``SkrotDokumentu``).

A read that fails for its original alone (KSeF's 4xx about that invoice or session, a UPO that
does not check out, a reference that is no reference) leaves that original unknown, with the
error; one that says the client cannot read at all (the token, its permissions, the connection,
a timeout or the call's deadline, KSeF's limits, a 5xx the retries did not get past) ends the
call at once: every other read would fail the same way (``_of_one_original``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace

from ksef_client._flows import Flow, FreshDeadline
from ksef_client._threads import is_async_callable
from ksef_client.errors import (
    APIStatusError,
    AuthenticationError,
    KSeFError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ResponseTooLargeError,
    UntrustedURLError,
    UPOError,
    UPONotAvailableError,
    one_line,
)
from ksef_client.outcomes import InvoiceOutcome
from ksef_client.resources.upo import _invoice_upo_flow, _session_upo_flow

# From how many of a session's invoices (named by 440s) its whole UPO is read rather than each
# invoice's: one status read and its pages (presigned links) against one request each (sessionMisc:
# 120 a minute, 1,200 an hour; a batch of 10,000 sent again would wait hours).
SESSION_UPO_FROM = 10

DuplicatesProgress = Callable[[int, int], None]
"""``progress(done, total)``: how many of the ``total`` originals to read from KSeF are read."""

NO_NUMBER = "KSeF's answer names no original KSeF number (originalKsefNumber)"
NO_SESSION = "KSeF's answer names no original session (originalSessionReferenceNumber)"
NO_OWN_HASH = "KSeF lists this file with no invoiceHash"
NOT_READ = "not read"
# How the note on a stopped call goes on (``_read``); the CLI, whose users have no error.partial, puts its own.
PARTIAL_HINT = (
    "; error.partial holds the outcomes with those compared (the others not_compared 'not read'): calling it "
    "again with error.partial does not read those again, only the originals not read yet and any whose own read "
    "failed"
)

# What is known of an original: its SHA-256 (Base64), or ``None`` and why not.
_Original = tuple[str | None, str]


def checked_outcomes(outcomes: object) -> list[InvoiceOutcome]:
    """``outcomes`` as a list, each an ``InvoiceOutcome`` (``TypeError`` naming the argument)."""
    wanted = "a list of InvoiceOutcome (what ksef.sessions.outcomes(ref) or session.outcomes() returns)"
    if isinstance(outcomes, InvoiceOutcome):
        raise TypeError(f"outcomes: {wanted}, not one outcome: pass [outcome]")
    if isinstance(outcomes, str | bytes | bytearray | Mapping) or not isinstance(outcomes, Iterable):
        raise TypeError(f"outcomes: {wanted}, not {type(outcomes).__name__}")
    listed = list(outcomes)
    for index, outcome in enumerate(listed):
        if not isinstance(outcome, InvoiceOutcome):
            raise TypeError(f"outcomes[{index}]: an InvoiceOutcome, not {type(outcome).__name__}")
    return listed


def _check_progress(progress: object) -> None:
    if progress is None:
        return
    if not callable(progress):
        raise TypeError(f"progress: a function (done, total) -> None, or None; not {type(progress).__name__}")
    if is_async_callable(progress):
        raise TypeError(
            "progress: a plain function (done, total) -> None, not an async def one (it would never be "
            "awaited); AsyncKSeF calls it on the event loop's thread"
        )


@contextlib.contextmanager
def checking_duplicates(outcomes: object, progress: DuplicatesProgress | None) -> Iterator[Flow[list[InvoiceOutcome]]]:
    """The flow of one ``check_duplicates`` call of either client: ``outcomes`` (checked before any
    request) with each 440's ``original_hash`` (or ``not_compared``). A repeat's is its own file's;
    an original accepted among ``outcomes`` (the session's listing), or compared before (an outcome
    this returned), is known without a request; any other is read from KSeF once, by its UPO, or
    its session's whole UPO when that session holds ``SESSION_UPO_FROM`` or more of them. A read
    that fails for that original alone leaves it unknown, with the error; any other failure is
    raised (``_read``). Whatever ends the call early (that error, a ``KeyboardInterrupt``, a
    cancellation, what ``progress`` raises) leaves as it came, carrying as ``.partial`` the
    outcomes with the originals read so far compared (the others ``not_compared`` "not read"):
    given back, those are not read again. The flow is closed on the way out."""
    listed = checked_outcomes(outcomes)
    _check_progress(progress)
    known = _known(listed)
    read: dict[tuple[str, str], _Original] = {}
    flow = _check_flow(listed, known, read, progress)
    try:
        yield flow
    except BaseException as error:
        with contextlib.suppress(AttributeError):  # an exception class with __slots__
            error.partial = [_compared(outcome, known, read) for outcome in listed]  # type: ignore[attr-defined]
        raise
    finally:
        flow.close()


def _check_flow(
    listed: list[InvoiceOutcome],
    known: Mapping[str, str],
    read: dict[tuple[str, str], _Original],
    progress: DuplicatesProgress | None,
) -> Flow[list[InvoiceOutcome]]:
    """``listed`` compared, the originals not ``known`` read into ``read`` first."""
    yield from _read(_wanted(listed, known), progress, read)
    return [_compared(outcome, known, read) for outcome in listed]


def _known(outcomes: list[InvoiceOutcome]) -> dict[str, str]:
    """KSeF number to SHA-256 of the originals known without a request: the accepted invoices (as
    KSeF lists them), then the originals of 440s compared before. One listed without its hash is
    not known: it is read like any other."""
    known = {
        o.ksef_number: o.invoice_hash for o in outcomes if o.kind == "accepted" and o.ksef_number and o.invoice_hash
    }
    for outcome in outcomes:
        number = outcome.duplicate_of
        if outcome.kind == "duplicate" and number and outcome.original_hash and number not in known:
            known[number] = outcome.original_hash
    return known


def _wanted(outcomes: list[InvoiceOutcome], known: Mapping[str, str]) -> dict[str, set[str]]:
    """The originals to read from KSeF: session reference number to their KSeF numbers."""
    wanted: dict[str, set[str]] = {}
    for outcome in outcomes:
        if outcome.kind != "duplicate" or outcome.is_repeat:
            continue
        number, session = outcome.duplicate_of, outcome.duplicate_session
        if number and session and number not in known:
            wanted.setdefault(session, set()).add(number)
    return wanted


def _read(
    wanted: dict[str, set[str]], progress: DuplicatesProgress | None, read: dict[tuple[str, str], _Original]
) -> Flow[None]:
    """Each wanted original into ``read``, by ``(session, KSeF number)``; ``progress(done, total)``
    first with none done, then after each (not called when there is nothing to read). A failure
    that is not of one original (``_of_one_original``) is raised at once, with a note: how many
    were read, and how to go on from them."""
    total = sum(map(len, wanted.values()))
    if not total:
        return
    if progress is not None:
        progress(0, total)
    done = 0
    try:
        for session, numbers in wanted.items():
            if len(numbers) >= SESSION_UPO_FROM:
                read.update((yield from _from_session_upo(session, numbers)))
            for number in sorted(numbers):
                if (session, number) not in read:
                    read[session, number] = yield from _from_invoice_upo(session, number)
                done += 1
                if progress is not None:
                    progress(done, total)
    except KSeFError as error:
        error.add_note(
            f"check_duplicates stopped: {done} of the {total} originals it had to read from KSeF were read before "
            f"this error{PARTIAL_HINT}"
        )
        raise


def _of_one_original(error: Exception) -> bool:
    """Whether ``error``, raised by a read of an original (its UPO, or its session's), concerns that
    original or its session alone, so that the next original may still be read: KSeF's 4xx about
    it (400 with its codes, such as 21178, 404, 410; not 401, 403 or 429, nor 407 or 408, which
    are about the token, the connection or the limits, nor a refused token refresh:
    ``_answers_a_read``), a UPO that does not check out (its hash, its XML, another session's or
    invoice's), none yet (``UPONotAvailableError``), an answer about it that cannot be used (a
    format or size past the spec, a presigned link to an unknown host), and a reference number
    from KSeF's data that is no reference number (``ValueError``, before any request). Anything
    else says that no read would get through now (the token or its permissions, the connection,
    a timeout or the call's deadline, KSeF's limits or the client's own pacing giving up, a 5xx
    after the retries, a failed token refresh)."""
    if isinstance(error, AuthenticationError | PermissionDeniedError | RateLimitError):
        return False
    if isinstance(error, APIStatusError):
        return 400 <= error.status_code < 500 and error.status_code not in (407, 408) and _answers_a_read(error)
    return isinstance(
        error,
        UPOError | UPONotAvailableError | ResponseFormatError | ResponseTooLargeError | UntrustedURLError | ValueError,
    )


def _answers_a_read(error: APIStatusError) -> bool:
    """Whether ``error`` answers a read (a ``GET``, as every read of an original is), not the
    token refresh a 401 sets off (``POST /auth/token/refresh``: its 400, such as 21301 for a
    revoked session, is the login's failure, not the original's)."""
    request = error.response._request  # None: an answer made without its request (never the refresh's)
    return request is None or request.method == "GET"


def _from_invoice_upo(session: str, number: str) -> Flow[_Original]:
    """An original's SHA-256 from its UPO (``GET /sessions/{ref}/invoices/ksef/{ksefNumber}/upo``,
    hash-checked and checked to confirm that invoice of that session), held to a deadline of its
    own (as ``ksef.upo.get_invoice_upo``). A failure of that original alone is returned, any other
    raised (``_of_one_original``)."""
    yield FreshDeadline()
    try:
        upo = yield from _invoice_upo_flow(session, number, None)
    except (KSeFError, ValueError) as error:
        if not _of_one_original(error):
            raise
        return None, f"its UPO could not be read: {one_line(error)}"
    return upo.documents[0].invoice_hash, ""  # check_invoice_upo: one document, this number


def _from_session_upo(session: str, numbers: set[str]) -> Flow[dict[tuple[str, str], _Original]]:
    """The SHA-256 of ``numbers`` from their session's whole UPO; none when it cannot be read for
    that session alone (each is then read by itself; any other failure is raised)."""
    yield FreshDeadline()
    try:
        documents = (yield from _session_upo_flow(session)).documents
    except (KSeFError, ValueError) as error:
        if not _of_one_original(error):
            raise
        return {}
    found = {number: documents.by_ksef_number(number) for number in numbers}
    return {(session, number): (doc.invoice_hash, "") for number, doc in found.items() if doc is not None}


def _compared(
    outcome: InvoiceOutcome, known: Mapping[str, str], read: Mapping[tuple[str, str], _Original]
) -> InvoiceOutcome:
    """``outcome`` with what is known of its original (a 440's; any other outcome as it is)."""
    if outcome.kind != "duplicate":
        return outcome
    if outcome.is_repeat:  # the accepted attempt of this session: the same file
        return replace(outcome, original_hash=outcome.invoice_hash, not_compared=None)
    number, session = outcome.duplicate_of, outcome.duplicate_session
    original: _Original
    if not number:
        original = None, NO_NUMBER
    elif number in known:
        original = known[number], ""
    elif not session:
        original = None, NO_SESSION
    else:
        original = read.get((session, number), (None, NOT_READ))
    invoice_hash, why = original
    if outcome.invoice_hash is None:  # the spec requires invoiceHash in the listing
        why = NO_OWN_HASH
    comparable = invoice_hash is not None and outcome.invoice_hash is not None
    return replace(outcome, original_hash=invoice_hash, not_compared=None if comparable else why)
