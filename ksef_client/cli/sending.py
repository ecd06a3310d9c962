"""What ``ksef send`` does between reading the files and printing the outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ksef_client._client import KSeF
from ksef_client.cli.output import REJECTED, USAGE, CLIError, Output, error_line, exit_code
from ksef_client.errors import BatchError, KSeFError
from ksef_client.outcomes import SentInvoice, outcome_of, session_outcomes
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


def send_online(
    ksef: KSeF, out: Output, files: tuple[Path, ...], form: str, offline: bool
) -> tuple[str, list[SentInvoice]]:
    """Send in one online session; the session reference and each invoice sent, in order."""
    invoices = list(checked_invoices(files, form, ksef.settings.is_production))  # all, before the session opens
    session = ksef.online_session(form, validate=False)
    with out.progress("sending", len(invoices)) as advance, session:
        for path, data in invoices:
            try:
                session.send(data, offline=offline)
            except KSeFError as error:
                # The invoices before this one are in KSeF: say where, so nothing is sent twice blindly.
                maybe = "; KSeF may hold this one too (its answer was lost)" if error.maybe_sent else ""
                raise CLIError(
                    f"{path}: {error_line(error).removeprefix('error: ')}{maybe}; "
                    f"{len(session.invoice_reference_numbers)} invoice(s) before it were sent in "
                    f"session {session.reference_number}",
                    exit_code(error),
                ) from error
            advance()
    assert session.reference_number is not None  # set by open()
    return session.reference_number, session.sent


def send_batch(ksef: KSeF, out: Output, files: tuple[Path, ...], form: str, offline: bool) -> str:
    """Send in one batch session (progress per uploaded part); the session reference.

    Files are read once, checked as they go into the zip: the package is built before the session
    is opened, so a bad file still stops the command before anything is sent.
    """
    named = ((path.name, data) for path, data in checked_invoices(files, form, ksef.settings.is_production))
    with out.progress("batch", None) as advance:

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "upload":
                advance(1, total=total)

        # checked_invoices validated each file already
        try:
            sent = ksef.send_batch(named, form=form, offline=offline, progress=progress, validate=False)
        except BatchError as error:
            if error.session_reference_number is not None:
                raise  # the session was opened: not a usage error
            # The package broke one of KSeF's limits while it was built: nothing was sent.
            raise CLIError(f"{error}; nothing was sent (send the files online, or rename them)", USAGE) from error
        return sent.reference_number


def outcome_rows(
    files: tuple[Path, ...], listing: list[Any], sent: list[SentInvoice] | None, reference: str
) -> list[tuple[Any, ...]]:
    """``(file, KSeF number or None, code, status)`` per file: by invoice reference (online, where a
    resend after a lost answer resolves to the first attempt's acceptance) or by file name (batch);
    then any invoice KSeF lists in an online session that is none of the files."""
    names: list[str] = [str(path) for path in files]
    if sent is None:
        by_name = {i.invoice_file_name: i for i in listing}
        found = [by_name.get(path.name) for path in files]
        outcomes = [outcome_of(i) if i is not None else None for i in found]
    else:
        listed = session_outcomes(listing, sent, reference)
        names += [f"(listed by KSeF, no file: {o.invoice_number or o.reference_number})" for o in listed[len(files) :]]
        outcomes = list(listed)
    rows: list[tuple[Any, ...]] = []
    for path, outcome in zip(names, outcomes, strict=True):
        if outcome is None or outcome.kind == "unknown":
            rows.append((path, None, None, "not in the session's list"))
            continue
        reason = "; ".join([outcome.description, *outcome.details])
        if outcome.kind == "duplicate" and outcome.duplicate_of:  # an invoice sent earlier
            reason += f" (already in KSeF as {outcome.duplicate_of})"
        rows.append((path, outcome.ksef_number, outcome.code, reason))
    return rows


def report(out: Output, reference: str, status: Any, rows: list[tuple[Any, ...]]) -> None:
    """Print the outcome per file; exit code 5 (``CLIError``) when any invoice was rejected."""
    rejected = [row for row in rows if not row[1]]
    keys = ("file", "ksef_number", "code", "status")
    data = {
        "reference_number": reference,
        "status": status,
        "invoices": [dict(zip(keys, row, strict=True)) for row in rows],
    }
    out.result(
        data,
        message=f"session {reference}: {status.status.code} {status.status.description}; "
        f"{len(rows) - len(rejected)} accepted, {len(rejected)} rejected",
        table=("file", "KSeF number", "code", "status"),
        rows=rows,
    )
    if rejected:
        raise CLIError(f"{len(rejected)} of {len(rows)} invoice(s) rejected (see above)", REJECTED)
