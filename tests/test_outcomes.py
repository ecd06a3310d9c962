"""What became of each sent invoice (issue 20, point 6): ``session.outcomes()`` and
``ksef.sessions.outcomes()`` tell accepted, duplicate of N and rejected (with KSeF's code and
details) apart, and a resend after a lost answer is the first attempt's acceptance."""

from __future__ import annotations

import pytest

from ksef_client import AsyncKSeF, InvoiceOutcome, KSeF, UPONotAvailableError
from ksef_client._generated.models import SessionInvoiceStatusResponse
from ksef_client.crypto import sha256_b64
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from ksef_client.outcomes import SentInvoice, listing_outcomes, outcome_of, session_outcomes
from ksef_client.sending import invoice_number_of
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime

BROKEN = b'<?xml version="1.0" encoding="UTF-8"?><Faktura>not FA(3)</Faktura>'


class TestOutcomes:
    def test_accepted_rejected_and_duplicate_in_one_session(self, ksef: KSeF, backend: KSeFBackend) -> None:
        with ksef.online_session(validate=False) as session:
            session.send(sample_invoice("OUT/1"))
            session.send(BROKEN)
            session.send(sample_invoice("OUT/1"))  # the caller sends the same invoice twice
        ksef.sessions.wait(session.reference_number)
        accepted, rejected, duplicate = session.outcomes()
        assert accepted.kind == "accepted" and accepted.accepted and accepted.code == 200
        assert accepted.ksef_number is not None and accepted.ksef_number.startswith(NIP)
        assert accepted.invoice_number == "OUT/1"
        assert (rejected.kind, rejected.code, rejected.ksef_number) == ("rejected", 430, None)
        assert rejected.description and rejected.details
        assert (duplicate.kind, duplicate.code, duplicate.ksef_number) == ("duplicate", 440, None)
        assert duplicate.duplicate_of == accepted.ksef_number
        assert duplicate.duplicate_session == session.reference_number
        assert session.ksef_numbers() == [accepted.ksef_number, None, accepted.ksef_number]
        # The session's own listing, for batch sessions too: KSeF's ordinal order.
        assert [o.kind for o in ksef.sessions.outcomes(session.reference_number)] == [
            "accepted",
            "rejected",
            "duplicate",
        ]

    def test_an_invoice_already_in_ksef_is_a_duplicate_and_the_session_has_no_upo(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        with ksef.online_session() as first:
            first.send(sample_invoice("OUT/2"))
        ksef.sessions.wait(first.reference_number)
        (original,) = first.outcomes()
        invoice = sample_invoice("OUT/2")
        with ksef.online_session() as again:
            again.send(invoice)
        status = ksef.sessions.wait(again.reference_number)  # final, does not raise
        assert status.status.code == 445  # no valid invoices
        (outcome,) = again.outcomes()
        assert outcome == InvoiceOutcome(
            reference_number=outcome.reference_number,
            kind="duplicate",
            code=440,
            description=outcome.description,
            details=outcome.details,
            duplicate_of=original.ksef_number,
            duplicate_session=first.reference_number,
            invoice_number="OUT/2",
            ordinal_number=1,
            invoice_hash=sha256_b64(invoice),  # KSeF's invoiceHash of the XML
        )
        assert not outcome.accepted and outcome.number_in_ksef == original.ksef_number
        with pytest.raises(UPONotAvailableError, match="445"):  # documented in errors-and-retries.md
            ksef.upo.get_session_upo(again.reference_number)

    def test_a_repeat_of_an_invoice_whose_answer_was_lost_stays_a_duplicate(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        # The first answer is lost: KSeF holds r0 (accepted, never seen) and r1 (the SDK's resend,
        # 440 naming r0). The caller then sends the invoice again by mistake: r2, 440 naming r0
        # too. Only r1 stands for r0's acceptance; r2 is the caller's duplicate (was: accepted twice).
        invoice = sample_invoice("OUT/LOST")
        with ksef.online_session() as session:
            backend.faults.add(DROP_AFTER, operation="online_session.send_invoice")
            session.send(invoice)
            session.send(invoice)
        ksef.sessions.wait(session.reference_number)
        first, repeat = session.outcomes()
        assert backend.faults.injected == 1
        assert first.kind == "accepted" and first.ksef_number is not None
        assert (repeat.kind, repeat.duplicate_of) == ("duplicate", first.ksef_number)
        assert session.ksef_numbers() == [first.ksef_number, first.ksef_number]
        # the same file accepted in this session: a repeat of it, whoever sent it again
        assert repeat.is_repeat and repeat.repeat_of == first.reference_number

    def test_another_file_with_the_number_of_an_invoice_of_the_session_is_no_repeat(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        # KSeF finds duplicates by seller NIP, invoice kind and P_2 (faktury/weryfikacja-faktury.md),
        # not by file: a 440 whose file differs from the accepted one is a duplicate to look at.
        with ksef.online_session() as session:
            session.send(sample_invoice("OUT/3"))
            session.send(sample_invoice("OUT/3", net="200.00"))
        ksef.sessions.wait(str(session.reference_number))
        listed = ksef.sessions.outcomes(str(session.reference_number))
        (first, other), mine = listed, session.outcomes()
        assert first.accepted and (other.kind, other.duplicate_of) == ("duplicate", first.ksef_number)
        assert other.invoice_hash != first.invoice_hash and not other.is_repeat and other.repeat_of is None
        assert mine == listed


def _listed(reference: str, code: int, **fields: object) -> SessionInvoiceStatusResponse:
    return SessionInvoiceStatusResponse.from_dict(
        {
            "ordinalNumber": 1,
            "referenceNumber": reference,
            "invoiceHash": "A" * 43 + "=",
            "invoicingDate": "2026-11-25T10:00:00+00:00",
            "status": {"code": code, "description": "x"},
            **fields,
        }
    )


def test_codes_below_200_are_processing_and_unlisted_references_unknown() -> None:
    session = "20261125-SO-0000000000-0000000000-00"
    sent = [SentInvoice("A" * 43 + "=", "R1"), SentInvoice("B" * 43 + "=", "R2")]
    processing, unknown = session_outcomes([_listed("R1", 150)], sent, session)
    assert (processing.kind, processing.code, processing.number_in_ksef) == ("processing", 150, None)
    assert (unknown.kind, unknown.code) == ("unknown", None)
    assert outcome_of(_listed("R3", 450, ksefNumber=None)).kind == "rejected"


@pytest.mark.anyio
async def test_a_resend_after_a_lost_answer_is_the_first_attempts_acceptance(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        async with client.online_session() as session:
            backend.faults.add(DROP_AFTER, operation="online_session.send_invoice")
            returned = await session.send(sample_invoice("LOST/9"))
        await client.sessions.wait(session.reference_number)
        (outcome,) = await session.outcomes()
        listing = await client.sessions.outcomes(session.reference_number)
    assert backend.faults.injected == 1
    assert [o.kind for o in listing] == ["accepted", "duplicate"]  # both attempts reached KSeF
    assert outcome == listing[0] and outcome.reference_number != returned
    assert outcome.accepted and outcome.ksef_number == listing[1].duplicate_of
    # the repeat, read from KSeF's listing alone: a 440 of the same file accepted in this session
    assert listing[1].reference_number == returned and listing[1].repeat_of == outcome.reference_number
    (sent,) = session.sent
    assert sent.repeated and (sent.reference_number, sent.invoice_number) == (returned, "LOST/9")


def test_a_440_is_a_repeat_only_of_an_invoice_of_the_same_session_with_the_same_file() -> None:
    # The spec's 440 extensions name the original: 'originalSessionReferenceNumber', 'originalKsefNumber'.
    def duplicate(of: str, reference: str, hash_: str, ordinal: int) -> SessionInvoiceStatusResponse:
        extensions = {"originalKsefNumber": of, "originalSessionReferenceNumber": "S"}
        status = {"code": 440, "description": "Duplikat faktury", "extensions": extensions}
        return _listed(reference, 440, invoiceHash=hash_, ordinalNumber=ordinal, status=status)

    a, b = "A" * 43 + "=", "B" * 43 + "="
    listing = [
        duplicate("N1", "R4", a, 4),  # listed in any order: KSeF's ordinal decides
        _listed("R1", 200, ksefNumber="N1", invoiceHash=a, ordinalNumber=1),
        duplicate("N1", "R2", b, 2),  # another file with N1's number
        duplicate("N0", "R3", a, 3),  # the same file, accepted in another session (not listed here)
    ]
    outcomes = listing_outcomes(listing)
    assert [(o.reference_number, o.repeat_of) for o in outcomes] == [
        ("R1", None),
        ("R2", None),
        ("R3", None),
        ("R4", "R1"),
    ]
    assert [o.is_repeat for o in outcomes] == [False, False, False, True]


@pytest.mark.parametrize(
    ("number", "read"),
    [(b"FV/1/2026", "FV/1/2026"), (b"FV/1<!-- x -->/2026", "FV/1/2026"), (b" <?pi?>FV/1/2026 ", "FV/1/2026")],
    ids=["plain", "comment", "processing-instruction"],
)
def test_a_failed_send_names_the_invoice_by_its_whole_number(number: bytes, read: str) -> None:
    # As Invoice.from_xml and KSeF read P_2: all its text, a comment or instruction inside cut out.
    xml = sample_invoice("FV/1/2026").replace(b"<P_2>FV/1/2026</P_2>", b"<P_2>" + number + b"</P_2>")
    assert invoice_number_of(xml) == read
