"""The stateless half of taking an invoice: KSeF's file rules, the form's XSD, the fields it reads.

Nothing here looks at the emulator's state, so a large batch package can be checked in worker
processes (``mock/workers.py``) with the same results as in the session's own thread; what needs
the state (issue date against the day of receipt, the right to issue, attachments, duplicates,
numbering) stays in ``Sessions``. Worker processes import this module: it keeps to the invoice
modules (no web framework).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ksef_client.mock.state.invoices import InvoiceFields, fields_of
from ksef_client.schemas import (
    MAX_INVOICE_BYTES,
    MAX_INVOICE_WITH_ATTACHMENT_BYTES,
    InvoiceSchemaError,
    check_document,
    has_attachment,
    schema_errors_stripping_on_fault,
    warm_up,
)

# KSeF lists at most this many problems of one file.
MAX_DETAILS = 10
# The limits' MB: "1 MB (1 000 000 bajtów)" (faktury/weryfikacja-faktury.md).
MB = 1_000_000


@dataclass(frozen=True)
class SizeLimits:
    """The invoice sizes a context may send in one kind of session, in bytes (KSeF's defaults:
    1 MB, 3 MB with attachments; ``POST /testdata/limits/context/session`` changes them)."""

    plain: int = MAX_INVOICE_BYTES
    with_attachment: int = MAX_INVOICE_WITH_ATTACHMENT_BYTES

    @classmethod
    def of(cls, limits: Mapping[str, int]) -> SizeLimits:
        """From a session kind's ``EffectiveContextLimits`` entry (``maxInvoiceSizeInMB``...)."""
        return cls(limits["maxInvoiceSizeInMB"] * MB, limits["maxInvoiceWithAttachmentSizeInMB"] * MB)


KSEF_SIZE_LIMITS = SizeLimits()


@dataclass(frozen=True)
class FileCheck:
    """What the file of one invoice says: its fields, or why it is rejected (status 430)."""

    fields: InvoiceFields | None
    with_attachment: bool = False
    rejection: tuple[str, ...] = ()


def check_file(form_code: str, xml: bytes, limits: SizeLimits = KSEF_SIZE_LIMITS) -> FileCheck:
    """Apply the file rules in the order KSeF does: the document, the form's XSD, the size (the
    context's ``limits``, without and with attachments), then read the fields."""
    try:
        document = check_document(xml, with_attachments=True, limit=max(limits.plain, limits.with_attachment))
        # fields_of strips every value it reads, so the dates are stripped only for a second look.
        errors = schema_errors_stripping_on_fault(form_code, document)
        if errors:
            raise InvoiceSchemaError(errors, "schema")
        attached = has_attachment(document)
        if len(xml) > limits.plain and not attached:
            raise InvoiceSchemaError([f"{len(xml)} B bez załączników > {limits.plain} B."], "size")
        if len(xml) > limits.with_attachment and attached:
            raise InvoiceSchemaError([f"{len(xml)} B z załącznikami > {limits.with_attachment} B."], "size")
        fields = fields_of(document)
    except InvoiceSchemaError as error:
        return FileCheck(None, rejection=tuple(f"[{error.rule}] {e}" for e in error.errors[:MAX_DETAILS]))
    except ValueError as error:
        return FileCheck(None, rejection=(str(error),))
    return FileCheck(fields, attached)


def check_files(form_code: str, xmls: list[bytes], limits: SizeLimits = KSEF_SIZE_LIMITS) -> list[FileCheck]:
    """``check_file`` of each invoice of a chunk, in order (a worker process's task)."""
    return [check_file(form_code, xml, limits) for xml in xmls]


def prepare(form_code: str) -> None:
    """Compile the copy of the form's XSD the checks use, and read its date elements (a new
    worker process's first task, before any chunk waits on it)."""
    warm_up(form_code)
