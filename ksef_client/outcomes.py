"""What became of each sent invoice once KSeF has processed its session: ``InvoiceOutcome``.

KSeF reports every invoice of a session with a status code: 200 (accepted, with a KSeF number),
440 (a duplicate of an invoice already in KSeF, whose number the status names), another 4xx
(rejected, with KSeF's description and details), or below 200 (still being processed).

An attempt whose answer was lost is listed by KSeF under a reference number the client never saw.
The client knows the hash of every invoice it tried to send (``SentInvoice``), and KSeF lists each
invoice with its ``invoiceHash``, so such attempts are found by that hash: a send that raised with
``maybe_sent`` gets the outcome of its attempt, and a resend by the retry policy (a 440 naming the
first attempt's number) gets the first attempt's acceptance.

Read from KSeF's listing alone (``ksef.sessions.outcomes``), such a resend is a 440 like any other.
The spec's ``SessionInvoiceStatusResponse`` table gives a 440 the extensions
``originalSessionReferenceNumber`` and ``originalKsefNumber``: when they name an invoice accepted
in the same session whose ``invoiceHash`` is the 440's own, the 440 is a repeat of that very file
(``InvoiceOutcome.repeat_of``: the accepted attempt's reference number), and the invoice is in KSeF
from this session; it is no failure to count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ksef_client._generated.models import SessionInvoiceStatusResponse

ACCEPTED = 200
DUPLICATE = 440
FINAL = 200

OutcomeKind = Literal["accepted", "duplicate", "rejected", "processing", "unknown"]


@dataclass(frozen=True)
class InvoiceOutcome:
    """One sent invoice after processing.

    ``kind``: ``"accepted"`` (``ksef_number`` is its number), ``"duplicate"`` (KSeF already holds
    an invoice of this seller, kind and number, ``P_2``, as ``duplicate_of``, from session
    ``duplicate_session``: this same document sent before, or another one that reused the number;
    faktury/weryfikacja-faktury.md judges a duplicate by those fields, not by the file:
    ``ksef.sessions.check_duplicates`` tells which, see ``same_file``), ``"rejected"`` (``code``,
    ``description`` and ``details`` say why), ``"processing"`` (not final yet), ``"unknown"`` (KSeF
    does not list it in the session). ``reference_number`` is ``None`` only for an ``"unknown"``
    invoice whose send raised before KSeF answered (``maybe_sent``): KSeF does not hold it.
    ``invoice_hash``: its SHA-256 (Base64), as KSeF lists it.

    ``repeat_of``: for a ``"duplicate"`` only, the reference number of the invoice accepted in
    this same session with this same file (``invoice_hash``) that this 440 repeats: a resend after
    a lost answer (the client's retry, or the caller's own resend of the same bytes); ``is_repeat``
    then says it is not a failure: the invoice is in KSeF as ``duplicate_of``, from this session,
    with its UPO under ``repeat_of``. ``None`` for any other duplicate (an invoice sent in another
    session, or another file with the same number).

    ``original_hash`` and ``not_compared``: for a ``"duplicate"`` returned by
    ``ksef.sessions.check_duplicates`` only (``None`` on the outcomes as listed): the SHA-256
    (Base64) of the invoice KSeF holds as ``duplicate_of``, read from the session's listing or that
    invoice's UPO (``SkrotDokumentu``), and when ``same_file`` is ``None``, why this 440 could not
    be compared with it (its UPO could not be read: KSeF's error about that invoice or a UPO that
    does not check out, in one line; KSeF's answer names no original; ...). A failure that is not
    of one original (401, 403, the connection, a timeout, the limits) is raised by
    ``check_duplicates`` instead, never recorded here.
    """

    reference_number: str | None
    kind: OutcomeKind
    code: int | None
    description: str = ""
    details: tuple[str, ...] = ()
    ksef_number: str | None = None
    duplicate_of: str | None = None
    duplicate_session: str | None = None
    invoice_number: str | None = None
    ordinal_number: int | None = None
    invoice_hash: str | None = None
    repeat_of: str | None = None
    original_hash: str | None = None
    not_compared: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether KSeF accepted this invoice (it has its own KSeF number and UPO)."""
        return self.kind == "accepted"

    @property
    def is_repeat(self) -> bool:
        """Whether this is a 440 repeating a file accepted in the same session (``repeat_of``):
        listed by KSeF as a duplicate, not a failure (the accepted attempt is the invoice)."""
        return self.repeat_of is not None

    @property
    def same_file(self) -> bool | None:
        """For a ``"duplicate"``: whether this file is the invoice KSeF holds as ``duplicate_of``
        (``True``: the invoice is in KSeF under that number, nothing to do; ``False``: KSeF holds
        another invoice of this seller, kind and number, and this file is *not* in KSeF: it needs a
        new number). ``True`` for a repeat (``is_repeat``); otherwise known only on an outcome
        ``ksef.sessions.check_duplicates`` returned, by comparing ``invoice_hash`` with
        ``original_hash``. ``None``: not known (not checked, or not comparable: ``not_compared``
        says why; never to be taken for the same file), and for any other ``kind``."""
        if self.kind != "duplicate":
            return None
        if self.is_repeat:
            return True
        if self.original_hash is None or self.invoice_hash is None:
            return None
        return self.original_hash == self.invoice_hash

    @property
    def number_in_ksef(self) -> str | None:
        """The KSeF number under which KSeF holds this invoice: its own, or for a duplicate the
        original's (the invoice KSeF holds under this seller, kind and number: this document only
        if ``same_file``, see ``kind``); ``None`` when it is not in KSeF (rejected, processing,
        unknown, and a duplicate that ``ksef.sessions.check_duplicates`` found to be another file:
        ``same_file`` ``False``)."""
        if self.same_file is False:  # KSeF holds another invoice under that number, not this one
            return None
        return self.ksef_number or self.duplicate_of


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _extension(item: SessionInvoiceStatusResponse, name: str) -> str | None:
    extensions = item.status.extensions
    return _text(getattr(extensions, "additional_properties", {}).get(name))


def accepted_by_number(invoices: Iterable[SessionInvoiceStatusResponse]) -> dict[str, SessionInvoiceStatusResponse]:
    """The accepted invoices of a session's listing by their KSeF number (what ``outcome_of``
    looks a 440's original up in)."""
    return {number: item for item in invoices if item.status.code == ACCEPTED and (number := _text(item.ksef_number))}


def outcome_of(
    item: SessionInvoiceStatusResponse, accepted: Mapping[str, SessionInvoiceStatusResponse] | None = None
) -> InvoiceOutcome:
    """The outcome KSeF reports for one invoice of a session; ``accepted``: the session's accepted
    invoices by KSeF number (``accepted_by_number`` of its listing), by which a 440 repeating one
    of them, the same file, gets ``repeat_of``."""
    status, code = item.status, item.status.code
    kind: OutcomeKind
    if code < FINAL:
        kind = "processing"
    elif code == ACCEPTED:
        kind = "accepted"
    elif code == DUPLICATE:
        kind = "duplicate"
    else:
        kind = "rejected"
    details = tuple(status.details) if isinstance(status.details, list) else ()
    original = _extension(item, "originalKsefNumber") if kind == "duplicate" else None
    return InvoiceOutcome(
        reference_number=item.reference_number,
        kind=kind,
        code=code,
        description=status.description,
        details=details,
        ksef_number=_text(item.ksef_number) if kind == "accepted" else None,
        duplicate_of=original,
        duplicate_session=_extension(item, "originalSessionReferenceNumber") if kind == "duplicate" else None,
        invoice_number=_text(item.invoice_number),
        ordinal_number=item.ordinal_number,
        invoice_hash=_text(item.invoice_hash),
        repeat_of=_repeated(item, original, accepted or {}),
    )


def _repeated(
    item: SessionInvoiceStatusResponse, original: str | None, accepted: Mapping[str, SessionInvoiceStatusResponse]
) -> str | None:
    """The reference number of the accepted invoice of the same session that the 440 ``item``
    (naming ``original``) repeats with the same file, or ``None``."""
    first = accepted.get(original) if original else None
    if first is None or first.invoice_hash != item.invoice_hash or first.reference_number == item.reference_number:
        return None
    return first.reference_number


def listing_outcomes(invoices: Iterable[SessionInvoiceStatusResponse]) -> list[InvoiceOutcome]:
    """Every invoice of one session's listing with its outcome, in KSeF's ordinal order (a 440
    repeating a file accepted in the session with ``repeat_of``)."""
    items = sorted(invoices, key=lambda item: item.ordinal_number)
    accepted = accepted_by_number(items)
    return [outcome_of(item, accepted) for item in items]


@dataclass(frozen=True)
class SentInvoice:
    """One invoice an online session sent, or tried to: ``invoice_hash`` (SHA-256 of its XML in
    Base64, KSeF's ``invoiceHash``), ``reference_number`` (``None``: the send raised before KSeF's
    answer came, or was cut short, and KSeF may hold it all the same), ``invoice_number`` (its
    ``P_2``, as KSeF reads it; ``None`` when it cannot be read) and ``repeated``: the request was
    sent again after an attempt that KSeF may have taken (its answer lost, or a 5xx). Then
    ``reference_number`` is the last attempt's, which KSeF lists as a 440 duplicate if it took an
    earlier one (accepted under a reference number the client never saw); ``outcomes()`` gives
    the invoice's verdict."""

    invoice_hash: str
    reference_number: str | None = None
    invoice_number: str | None = None
    repeated: bool = False


NOT_RECEIVED = "not listed in the session: KSeF did not receive it (its send raised); send it again"


def session_outcomes(
    invoices: Iterable[SessionInvoiceStatusResponse], sent: Sequence[SentInvoice], session_reference_number: str
) -> list[InvoiceOutcome]:
    """The outcome of each of ``sent`` (sending order), from the session's listing; then any
    invoice KSeF lists that is none of them (nothing listed is left out).

    The listed invoices whose reference number the client never saw ("hidden": their answer was
    lost) are matched by hash. A send that raised takes the hidden attempt of its hash (its
    acceptance first); none: KSeF did not receive it. A 440 naming an invoice accepted in this same
    session under a hidden reference, with the same hash, is the retry policy's resend after a lost
    answer: its outcome is that acceptance. Each hidden attempt stands for one send only (one
    acceptance per KSeF number: the caller's own repeat of an invoice stays a duplicate); hidden
    attempts left over with the hash of a send are further resends of it, already reported.
    """
    listing = _Listing(invoices, sent)
    outcomes = [listing.outcome(invoice, session_reference_number) for invoice in sent]
    return outcomes + listing.unmatched({invoice.invoice_hash for invoice in sent})


class _Listing:
    """A session's listing, its hidden attempts claimed one by one by the sends they belong to."""

    def __init__(self, invoices: Iterable[SessionInvoiceStatusResponse], sent: Sequence[SentInvoice]) -> None:
        self.listed = {item.reference_number: item for item in invoices}
        self.accepted = accepted_by_number(self.listed.values())
        ours = {invoice.reference_number for invoice in sent}
        self.hidden = sorted(
            (item for reference, item in self.listed.items() if reference not in ours),
            key=lambda item: item.ordinal_number,
        )
        self.claimed: set[str] = set()

    def outcome(self, invoice: SentInvoice, session_reference_number: str) -> InvoiceOutcome:
        """What became of one send."""
        if invoice.reference_number is None:
            return self.claim(invoice) or _not_received(invoice)
        item = self.listed.get(invoice.reference_number)
        if item is None:
            return InvoiceOutcome(
                invoice.reference_number,
                "unknown",
                None,
                "not listed in the session",
                invoice_number=invoice.invoice_number,
                invoice_hash=invoice.invoice_hash,
            )
        outcome = outcome_of(item, self.accepted)
        if outcome.kind == "duplicate" and outcome.duplicate_session == session_reference_number:
            return self.claim(invoice, accepted_as=outcome.duplicate_of) or outcome
        return outcome

    def claim(self, invoice: SentInvoice, accepted_as: str | None = None) -> InvoiceOutcome | None:
        """The outcome of the unclaimed hidden attempt of ``invoice`` that tells its fate (an
        acceptance, then one still processing, then the first listed), or only its acceptance as
        ``accepted_as``; ``None`` when there is none."""
        candidates = [
            item
            for item in self.hidden
            if item.invoice_hash == invoice.invoice_hash
            and item.reference_number not in self.claimed
            and (accepted_as is None or (item.status.code == ACCEPTED and _text(item.ksef_number) == accepted_as))
        ]
        if not candidates:
            return None
        best = min(candidates, key=_claim_rank)
        self.claimed.add(best.reference_number)
        return outcome_of(best, self.accepted)

    def unmatched(self, hashes: set[str]) -> list[InvoiceOutcome]:
        """The hidden attempts of invoices none of the sends has (KSeF's order)."""
        return [outcome_of(item, self.accepted) for item in self.hidden if item.invoice_hash not in hashes]


def _claim_rank(item: SessionInvoiceStatusResponse) -> tuple[int, int]:
    code = item.status.code
    return (0 if code == ACCEPTED else 1 if code < FINAL else 2, item.ordinal_number)


def _not_received(invoice: SentInvoice) -> InvoiceOutcome:
    return InvoiceOutcome(
        None,
        "unknown",
        None,
        NOT_RECEIVED,
        invoice_number=invoice.invoice_number,
        invoice_hash=invoice.invoice_hash,
    )
