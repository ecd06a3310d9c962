"""The stateless half of taking an invoice: KSeF's file rules, the form's XSD, the fields it reads.

Nothing here looks at the emulator's state, so a large batch package can be checked in worker
processes (``mock/workers.py``) with the same results as in the session's own thread; what needs
the state (issue date against the day of receipt, the right to issue, attachments, duplicates,
numbering) stays in ``Sessions``. Worker processes import this module: it keeps to the invoice
modules (no web framework).
"""

from __future__ import annotations

from dataclasses import dataclass

from ksef_client.mock.state.invoices import InvoiceFields, fields_of
from ksef_client.schemas import (
    MAX_INVOICE_BYTES,
    InvoiceSchemaError,
    check_document,
    form_schema,
    has_attachment,
    schema_errors,
)

# KSeF lists at most this many problems of one file.
MAX_DETAILS = 10


@dataclass(frozen=True)
class FileCheck:
    """What the file of one invoice says: its fields, or why it is rejected (status 430)."""

    fields: InvoiceFields | None
    with_attachment: bool = False
    rejection: tuple[str, ...] = ()


def check_file(form_code: str, xml: bytes) -> FileCheck:
    """Apply the file rules in the order KSeF does: the document, the form's XSD, the size without
    attachments, then read the fields."""
    try:
        document = check_document(xml, with_attachments=True)
        errors = schema_errors(form_code, document)
        if errors:
            raise InvoiceSchemaError(errors, "schema")
        if len(xml) > MAX_INVOICE_BYTES and not has_attachment(document):
            raise InvoiceSchemaError([f"{len(xml)} B bez załączników > {MAX_INVOICE_BYTES} B."], "size")
        fields = fields_of(document)
    except InvoiceSchemaError as error:
        return FileCheck(None, rejection=tuple(f"[{error.rule}] {e}" for e in error.errors[:MAX_DETAILS]))
    except ValueError as error:
        return FileCheck(None, rejection=(str(error),))
    return FileCheck(fields, has_attachment(document))


def check_files(form_code: str, xmls: list[bytes]) -> list[FileCheck]:
    """``check_file`` of each invoice of a chunk, in order (a worker process's task)."""
    return [check_file(form_code, xml) for xml in xmls]


def prepare(form_code: str) -> None:
    """Compile the form's XSD (a new worker process's first task, before any chunk waits on it)."""
    form_schema(form_code)
