"""What ``ksef send`` does between reading the files and printing the outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ksef_client._client import KSeF
from ksef_client.cli.output import ALREADY_IN_KSEF, REJECTED, USAGE, CLIError, Output, error_line, exit_code
from ksef_client.errors import BatchError, KSeFError
from ksef_client.outcomes import InvoiceOutcome, SentInvoice, accepted_by_number, outcome_of, session_outcomes
from ksef_client.resources._duplicate_flows import PARTIAL_HINT
from ksef_client.schemas import InvoiceSchemaError, checked_invoice
from ksef_client.sending import nip_errors


def checked_invoices(files: tuple[Path, ...], form: str, production: bool = False) -> Iterator[tuple[Path, bytes]]:
    """Each file with its bytes, read once and valid against ``form``'s XSD (and, for
    ``production``, with parties' NIPs of right check digits, as the SDK's sessions check them);
    ``CLIError`` naming the first bad file. Callers check every file before KSeF gets the first one."""
    for path in files:
        data = path.read_bytes()
        try:
            root = checked_invoice(data, form)
        except InvoiceSchemaError as error:
            raise CLIError(f"{path}: not a valid {form} invoice: {error}") from error
        if production and (errors := nip_errors(root)):
            raise CLIError(f"{path}: {'; '.join(errors)}: KSeF's production environment refuses it (450)")
        yield path, data


@dataclass
class Progress:
    """How far a ``ksef send`` got, for the notes on whatever stops it (an error, Ctrl-C): the
    session, which files KSeF has, whether the session was closed, what to run next."""

    files: tuple[Path, ...]
    batch: bool
    command: str = "ksef"  # how the commands it names start (with the profile: ``ksef -p NAME``)
    reference: str | None = None  # the session, once opened
    sent: list[Path] = field(default_factory=list)  # online: the files KSeF answered for
    current: Path | None = None  # online: the file being sent when it stopped
    maybe_sent: bool = False  # ``current`` may have reached KSeF (its answer was lost)
    closed: bool = False  # the session's close went through: KSeF processes what it holds
    waiting: bool = False  # every file sent, the session closed: the wait for KSeF had begun

    def notes(self) -> list[str]:
        """What the user is told after the error line: nothing before a session was opened
        (nothing reached KSeF); else the session, the files in it and not, and the commands that
        close it, wait for it and show its outcome."""
        ref, ksef = self.reference, self.command
        if ref is None:
            return []
        wait = f"`{ksef} sessions wait {ref}` waits for their outcome (each file's KSeF number or rejection)"
        again = "do not send them again (that makes 440 duplicates: 'already in KSeF')"
        if self.waiting:
            return [
                f"session {ref}: all {len(self.files)} file(s) were sent and the session closed, KSeF processes "
                f"them: {again}; {wait}"
            ]
        if self.batch:
            return [
                f"batch session {ref} was opened for all {len(self.files)} file(s); `{ksef} sessions status {ref}` "
                f"tells how far it got: 100, still open: every part uploaded, its close failed: `{ksef} sessions "
                f"close {ref} --batch` closes it, KSeF then processes it; a part not uploaded: KSeF refuses the "
                f"close (21205) and cancels the session at its validUntil, nothing of it in KSeF: send the files "
                f"again; any other status: closed, KSeF processes it: {wait}; do not send the files again then "
                f"(that makes 440 duplicates)"
            ]
        notes = [f"session {ref}: {_files(self.sent, 'none of the files')} sent" + (f"; {again}" if self.sent else "")]
        rest = [path for path in self.files if path not in self.sent and path != self.current]
        if self.current is not None and self.maybe_sent:
            notes.append(
                f"{self.current} may have reached KSeF too (it was being sent when this stopped, or the answer to "
                "it was lost): its outcome tells; sending it again is safe (KSeF answers 'already in KSeF', 440, "
                "if it has it)"
            )
        elif self.current is not None:
            rest.insert(0, self.current)
        if rest:
            notes.append(f"not sent: {_files(rest, '')}: send them with a new `{ksef} send`")
        if self.closed:
            notes.append(f"the session is closed: KSeF processes what it holds; {wait}")
        else:
            notes.append(
                f"the session may still be open (its close failed, or was not reached): `{ksef} sessions status "
                f"{ref}` tells (100: open; KSeF processes nothing of it and issues no UPO until it is closed, by "
                f"itself only at its validUntil); `{ksef} sessions close {ref}` closes it; then {wait}"
            )
        return notes


def _files(paths: Sequence[Path], none: str) -> str:
    """``paths`` for a note: how many, and the first names."""
    if not paths:
        return none
    shown = ", ".join(str(path) for path in paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
    return f"{len(paths)} file(s) ({shown})" if none else shown


def send_online(
    ksef: KSeF, out: Output, files: tuple[Path, ...], form: str, offline: bool, progress: Progress
) -> tuple[str, list[SentInvoice]]:
    """Send in one online session; the session reference and each invoice sent, in order.
    ``progress`` follows it (the session, the files sent, the close), for the notes on a failure."""
    invoices = list(checked_invoices(files, form, ksef.settings.is_production))  # all, before the session opens
    session = ksef.online_session(form, validate=False)
    try:
        with out.progress("sending", len(invoices)) as advance, session:
            progress.reference = session.reference_number
            for path, data in invoices:
                progress.current = path
                try:
                    session.send(data, offline=offline)
                except KSeFError as error:
                    # The invoices before this one are in KSeF: say where, so nothing is sent twice blindly.
                    progress.maybe_sent = error.maybe_sent
                    maybe = "; KSeF may hold this one too (its answer was lost)" if error.maybe_sent else ""
                    raise CLIError(
                        f"{path}: {error_line(error).removeprefix('error: ')}{maybe}; "
                        f"{len(session.invoice_reference_numbers)} invoice(s) before it were sent in "
                        f"session {session.reference_number}",
                        exit_code(error),
                    ) from error
                except BaseException:
                    progress.maybe_sent = True  # stopped while its request may have been out
                    raise
                progress.sent.append(path)
                progress.current = None
                advance()
    finally:
        progress.closed = session.closed
    assert session.reference_number is not None  # set by open()
    return session.reference_number, session.sent


def send_batch(ksef: KSeF, out: Output, files: tuple[Path, ...], form: str, offline: bool, progress: Progress) -> str:
    """Send in one batch session (progress per uploaded part); the session reference.

    Files are read once, checked as they go into the zip: the package is built before the session
    is opened, so a bad file still stops the command before anything is sent. ``progress`` gets
    the session of a failure after it was opened (the SDK names it on whatever stops it).
    """
    named = ((path.name, data) for path, data in checked_invoices(files, form, ksef.settings.is_production))
    with out.progress("batch", None) as advance:

        def uploaded(stage: str, done: int, total: int) -> None:
            if stage == "upload":
                advance(1, total=total)

        # checked_invoices validated each file already
        try:
            sent = ksef.send_batch(named, form=form, offline=offline, progress=uploaded, validate=False)
        except BaseException as error:
            progress.reference = getattr(error, "session_reference_number", None)
            if progress.reference is not None or not isinstance(error, BatchError):
                raise  # the session was opened (not a usage error), or another failure
            # The package broke one of KSeF's limits while it was built: nothing was sent.
            raise CLIError(f"{error}; nothing was sent (send the files online, or rename them)", USAGE) from error
        progress.reference, progress.closed = sent.reference_number, True
        return sent.reference_number


class Row(NamedTuple):
    """One invoice of a session's outcome: ``name`` (the file, or the invoice's number), the KSeF
    number it is in KSeF under (its own; for a 440 of this very file, the original's: never another
    invoice's), KSeF's status ``code`` and ``status`` text, ``outcome`` (see ``OUTCOMES``), and for
    a 440 the invoice KSeF named as holding the number: ``duplicate_of`` (its KSeF number) and
    ``duplicate_session`` (the session it was sent in)."""

    name: str
    ksef_number: str | None
    code: int | None
    status: str
    outcome: str
    duplicate_of: str | None = None
    duplicate_session: str | None = None


# The ``outcome`` of a row. A 440 duplicate is one of three: ``repeat`` (the same file sent again
# in the same session, accepted there), ``already_in_ksef`` (the same file, by its SHA-256, as the
# invoice KSeF holds under that number: in KSeF, nothing to do) or ``duplicate_number`` (KSeF holds
# *another* invoice of this seller, type and number, or one this file could not be compared with:
# this file is not in KSeF, counted as rejected).
OUTCOMES = ("accepted", "already_in_ksef", "repeat", "duplicate_number", "rejected", "processing", "unknown")
DUPLICATE_NUMBER = "duplicate_number"


def row_of(name: str, outcome: InvoiceOutcome | None, command: str = "ksef") -> Row:
    """The ``Row`` of one invoice's ``outcome`` (``None``: KSeF does not list it); a 440 (not a
    repeat) as ``ksef.sessions.check_duplicates`` compared it with its original (``same_file``)."""
    if outcome is None or outcome.kind == "unknown":
        text = outcome.description if outcome is not None and outcome.reference_number is None else ""
        return Row(name, None, None, text or "not in the session's list", "unknown")
    reason = "; ".join([outcome.description, *outcome.details])
    if outcome.kind != "duplicate":
        return Row(name, outcome.ksef_number, outcome.code, reason, outcome.kind)
    # KSeF's 440: it holds an invoice of this seller, type and number (weryfikacja-faktury.md), with
    # the original's KSeF number and session in the answer (originalKsefNumber, originalSessionReferenceNumber).
    # The file is in KSeF only if it is that invoice, byte for byte: branches reusing numbers get 440s too.
    number, session = outcome.duplicate_of, outcome.duplicate_session
    where = f" as {number}" if number else ""
    sent_in = f", sent in session {session}" if session else ""
    duplicate = (number, session)
    if outcome.is_repeat:
        text = f"already in KSeF{where}{sent_in}: this file, accepted in this session ({reason})"
        return Row(name, number, outcome.code, text, "repeat", *duplicate)
    if outcome.same_file:
        text = f"already in KSeF{where}{sent_in}: the same file (SHA-256) ({reason})"
        return Row(name, number, outcome.code, text, "already_in_ksef", *duplicate)
    if outcome.same_file is False:
        text = (
            f"not in KSeF: KSeF holds another invoice with this number{where}{sent_in}, not this file (its "
            f"SHA-256 differs): give this invoice a new number ({reason})"
        )
    else:
        look = f"; `{command} upo get {session} --invoice {number}` shows it" if number and session else ""
        text = (
            f"maybe not in KSeF: KSeF holds an invoice with this number{where}{sent_in}, which could not be "
            f"compared with this file ({outcome.not_compared or 'not read'}){look} ({reason})"
        )
    return Row(name, None, outcome.code, text, DUPLICATE_NUMBER, *duplicate)


def outcome_rows(
    ksef: KSeF,
    out: Output,
    files: tuple[Path, ...],
    listing: list[Any],
    sent: list[SentInvoice] | None,
    reference: str,
    command: str = "ksef",
) -> list[Row]:
    """A ``Row`` per file: by invoice reference (online, where a resend after a lost answer
    resolves to the first attempt's acceptance) or by file name (batch); then any invoice KSeF
    lists in an online session that is none of the files. A 440's original is compared with the
    file (``checked_rows``: the listing's accepted invoices, else one read from KSeF)."""
    names: list[str] = [str(path) for path in files]
    accepted = accepted_by_number(listing)
    if sent is None:
        by_name = {i.invoice_file_name: i for i in listing}
        found = [by_name.get(path.name) for path in files]
        outcomes: list[InvoiceOutcome | None] = [outcome_of(i, accepted) if i is not None else None for i in found]
    else:
        listed = session_outcomes(listing, sent, reference)
        names += [f"(listed by KSeF, no file: {o.invoice_number or o.reference_number})" for o in listed[len(files) :]]
        outcomes = list(listed)
    return checked_rows(ksef, out, list(zip(names, outcomes, strict=True)), command)


def checked_rows(
    ksef: KSeF, out: Output, named: Sequence[tuple[str, InvoiceOutcome | None]], command: str = "ksef"
) -> list[Row]:
    """The ``Row`` of each ``(name, outcome)``, each 440's original compared with the file by
    ``ksef.sessions.check_duplicates`` (the originals among the outcomes, the session's accepted
    invoices, without a request; the others read from KSeF under a progress bar)."""
    listed = [outcome for _, outcome in named if outcome is not None]
    with ExitStack() as bar:
        advances: list[Callable[..., None]] = []

        def progress(done: int, total: int) -> None:
            if not advances:  # the bar shows only while originals are read from KSeF
                advances.append(bar.enter_context(out.progress("checking duplicates", total)))
            if done:
                advances[0]()

        try:
            checked = iter(ksef.sessions.check_duplicates(listed, progress=progress))
        except KSeFError as error:
            _for_the_cli(error, command)
            raise
    return [row_of(name, next(checked) if outcome is not None else None, command) for name, outcome in named]


def _for_the_cli(error: KSeFError, command: str) -> None:
    """The note of a ``check_duplicates`` that stopped, told for a CLI user: who has no
    ``error.partial``, but ``sessions wait``, which reads every original again."""
    hint = f"; `{command} sessions wait` on the session reads them all again"
    notes = getattr(error, "__notes__", [])
    notes[:] = [note.removesuffix(PARTIAL_HINT) + hint if note.endswith(PARTIAL_HINT) else note for note in notes]


def report(out: Output, reference: str, status: Any, rows: list[Row], name: str = "file") -> None:
    """Print the outcome per invoice; ``CLIError`` with exit code 5 when any invoice was
    rejected (or is not final, or is a ``duplicate_number``), else 6 when any was in KSeF already
    (a 440 duplicate of the very same file, sent in another session)."""
    already = [row for row in rows if row.outcome == "already_in_ksef"]
    failed = [row for row in rows if row.outcome not in ("accepted", "already_in_ksef", "repeat")]
    accepted = len(rows) - len(already) - len(failed)
    keys = (name, *Row._fields[1:])
    data = {
        "reference_number": reference,
        "status": status,
        "invoices": [dict(zip(keys, row, strict=True)) for row in rows],
    }
    counts = f"{accepted} accepted, " + (f"{len(already)} already in KSeF, " if already else "")
    out.result(
        data,
        message=f"session {reference}: {status.status.code} {status.status.description}; "
        f"{counts}{len(failed)} rejected",
        table=(name, "KSeF number", "code", "status"),
        rows=[row[:4] for row in rows],
    )
    if failed:
        numbers = sum(row.outcome == DUPLICATE_NUMBER for row in failed)
        taken = (
            f"; {numbers} of them with a number KSeF holds for another invoice (440, not this file: give it a "
            "new number) or one that could not be compared with it"
            if numbers
            else ""
        )
        raise CLIError(f"{len(failed)} of {len(rows)} invoice(s) rejected (see above){taken}", REJECTED)
    if already:
        raise CLIError(
            f"{len(already)} of {len(rows)} invoice(s) already in KSeF (440 duplicates of the same files, sent "
            "before, see above): nothing to do, their KSeF numbers are shown",
            ALREADY_IN_KSEF,
        )
