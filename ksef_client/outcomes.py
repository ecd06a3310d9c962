"""What became of each sent invoice once KSeF has processed its session: ``InvoiceOutcome``.

KSeF reports every invoice of a session with a status code: 200 (accepted, with a KSeF number),
440 (a duplicate of an invoice already in KSeF, whose number the status names), another 4xx
(rejected, with KSeF's description and details), or below 200 (still being processed). An
invoice the client sent twice because the answer to the first attempt was lost is the one case
where a 440 is not the user's duplicate: the first attempt was accepted in the same session under
a reference number the client never saw, so its outcome is that acceptance.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    this invoice as ``duplicate_of``, from session ``duplicate_session``), ``"rejected"`` (``code``,
    ``description`` and ``details`` say why), ``"processing"`` (not final yet), ``"unknown"`` (KSeF
    does not list the reference number in the session).
    """

    reference_number: str
    kind: OutcomeKind
    code: int | None
    description: str = ""
    details: tuple[str, ...] = ()
    ksef_number: str | None = None
    duplicate_of: str | None = None
    duplicate_session: str | None = None
    invoice_number: str | None = None
    ordinal_number: int | None = None

    @property
    def accepted(self) -> bool:
        """Whether KSeF accepted this invoice (it has its own KSeF number and UPO)."""
        return self.kind == "accepted"

    @property
    def number_in_ksef(self) -> str | None:
        """The KSeF number under which KSeF holds this invoice: its own, or for a duplicate the
        original's; ``None`` when it is not in KSeF (rejected, processing, unknown)."""
        return self.ksef_number or self.duplicate_of


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _extension(item: SessionInvoiceStatusResponse, name: str) -> str | None:
    extensions = item.status.extensions
    return _text(getattr(extensions, "additional_properties", {}).get(name))


def outcome_of(item: SessionInvoiceStatusResponse) -> InvoiceOutcome:
    """The outcome KSeF reports for one invoice of a session."""
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
    return InvoiceOutcome(
        reference_number=item.reference_number,
        kind=kind,
        code=code,
        description=status.description,
        details=details,
        ksef_number=_text(item.ksef_number) if kind == "accepted" else None,
        duplicate_of=_extension(item, "originalKsefNumber") if kind == "duplicate" else None,
        duplicate_session=_extension(item, "originalSessionReferenceNumber") if kind == "duplicate" else None,
        invoice_number=_text(item.invoice_number),
        ordinal_number=item.ordinal_number,
    )


def session_outcomes(
    invoices: Iterable[SessionInvoiceStatusResponse], references: list[str], session_reference_number: str
) -> list[InvoiceOutcome]:
    """The outcome of each invoice in ``references`` (sending order), from the session's listing.

    A 440 naming an invoice accepted in this same session under a reference number the client
    never returned is the client's own resend after a lost answer: its outcome is the first
    attempt's acceptance, claimed by the first such 440 in sending order only. A 440 naming one of
    ``references`` (the same invoice sent twice by the caller), an acceptance already claimed (the
    caller's repeat of an invoice whose first answer was lost) or another session stays a
    duplicate: one acceptance per KSeF number.
    """
    listed = {item.reference_number: item for item in invoices}
    accepted_here = {
        number: item for item in listed.values() if item.status.code == ACCEPTED and (number := _text(item.ksef_number))
    }
    ours = set(references)
    claimed: set[str] = set()  # hidden first attempts already reported as one of ours
    outcomes = []
    for reference in references:
        item = listed.get(reference)
        if item is None:
            outcomes.append(InvoiceOutcome(reference, "unknown", None, "not listed in the session"))
            continue
        outcome = outcome_of(item)
        if outcome.kind == "duplicate" and outcome.duplicate_session == session_reference_number:
            first = accepted_here.get(outcome.duplicate_of or "")
            if first is not None and first.reference_number not in ours and first.reference_number not in claimed:
                claimed.add(first.reference_number)
                outcome = outcome_of(first)
        outcomes.append(outcome)
    return outcomes
