"""Real data in the conformance suite's emulator before anything is fuzzed.

schemathesis cannot send a valid encrypted invoice, and the spec has no links from a sent invoice
to the listings, so without this every listing, metadata query and export would be fuzzed empty
and a wrong field in an item could never be seen. The seed builds, through the emulator's own
state (no HTTP), what a real context has: sessions of both kinds with accepted invoices of
several kinds (VAT, correction, advance; EUR), a rejected invoice, a duplicate, invoices bought
from another seller, a KSeF token, grants and a collective identifier.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ksef_client.invoice import CorrectedInvoice, Line, Party, advance, correction, vat_invoice
from ksef_client.mock import KSeFBackend
from ksef_client.testing import WARSAW, sample_invoice

OTHER = "1111111111"


def seed(backend: KSeFBackend, nip: str) -> None:
    """Fill ``backend`` for the context ``nip`` (and a seller that sells to it)."""
    today = dt.datetime.now(WARSAW).date()  # the builders refuse an issue date after Poland's today
    me = Party("Seller sp. z o.o.", "ul. Prosta 1, 00-001 Warszawa", nip=nip)
    buyer = Party("Buyer S.A.", "ul. Krzywa 2, 30-001 Kraków", nip=OTHER)
    lines = [Line("Consulting", Decimal("10"), Decimal("150.00"), rate="23"), Line("Book", 2, "40.00", rate="5")]
    plain = vat_invoice(number="SEED/1", issue_date=today, seller=me, buyer=buyer, lines=lines)
    in_euro = vat_invoice(number="SEED/2", issue_date=today, seller=me, buyer=buyer, lines=lines, currency="EUR",
                          exchange_rate="4.2500")  # fmt: skip
    prepaid = advance(number="SEED/3", issue_date=today, seller=me, buyer=buyer, order=lines, received="500.00")
    access = backend.authenticate("Bearer " + backend.mint_access_token(nip))
    online = backend.sessions.open(access)
    for invoice in (plain, in_euro, prepaid):
        backend.sessions.add_invoice(online, invoice.to_xml())
    backend.sessions.add_invoice(online, plain.to_xml())  # a duplicate: 440
    backend.sessions.add_invoice(online, b"<Faktura/>")  # rejected: 430
    backend.sessions.close(online)
    accepted = [i for i in online.invoices if i.accepted]
    fixed = correction(
        number="SEED/4", issue_date=today, seller=me, buyer=buyer, reason="price",
        corrected=CorrectedInvoice.of(plain, accepted[0].ksef_number),
        before=lines[:1], after=[Line("Consulting", Decimal("10"), Decimal("140.00"), rate="23")],
    )  # fmt: skip
    batch = backend.sessions.open(access, "Batch")
    backend.sessions.add_invoice(batch, fixed.to_xml(), file_name="seed-4.xml")
    backend.sessions.close(batch, interim=150)
    seller = backend.authenticate("Bearer " + backend.mint_access_token(OTHER))
    bought = backend.sessions.open(seller)
    backend.sessions.add_invoice(bought, sample_invoice("BOUGHT/1", seller_nip=OTHER, buyer_nip=nip))
    backend.sessions.close(bought)
    backend.auth.create_ksef_token(access, ["InvoiceRead", "InvoiceWrite"], "seeded token")
    backend.permissions.grant(access, "person", ("Nip", OTHER), ["InvoiceRead"], "seeded grant")
    numbers = [{"ksefNumber": i.ksef_number} for i in accepted[:2]]
    backend.collective.create(access, numbers)
