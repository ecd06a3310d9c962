"""Who may send an FA_RR(1) invoice (VAT RR): the farmer's own context, or a buyer the farmer
granted ``RRInvoicing`` (review s13, finding 3).

FA_RR's Podmiot1 is the flat-rate farmer ("Dane dostawcy"), Podmiot2 the buyer, who issues the
invoice. uprawnienia.md: ``RRInvoicing`` ("samofakturowanie RR"; the spec: "wystawianie faktur VAT
RR") is an authorization "do działania (wystawiania faktur) we własnym kontekście w imieniu podmiotu
uprawniającego"; faktury/weryfikacja-faktury.md: "Wysłanie faktury do KSeF wymaga posiadania
odpowiednich uprawnień do jej wystawienia w kontekście danego podmiotu". Both Ministry clients' FA_RR
tests (Java ``RrInvoiceIntegrationTest``, C# ``AuthorizationPermissionsRRInvoicingE2ETests``) have
the farmer grant ``RRInvoicing`` to the buyer, then the buyer sends "w imieniu grantor". The
emulator took Podmiot2 for the issuer, so the buyer never needed the grant. No source names the
refusal's code: 410, as for a self-billed FA(3) without ``SelfInvoicing``, is the emulator's reading.
"""

from __future__ import annotations

from ksef_client import KSeF
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import random_nip
from tests.conftest import NIP
from tests.helpers import rr_invoice

FARMER = NIP


def _sent(ksef_server: ThreadedServer, backend: KSeFBackend, context: str, xml: bytes) -> tuple[str, int, list[str]]:
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(context)) as client:
        with client.online_session("FA_RR(1)") as session:
            session.send(xml)
        client.sessions.wait(session.reference_number, interval=0)
        [outcome] = session.outcomes()
    return outcome.kind, outcome.code, list(outcome.details)


def test_the_buyer_sends_the_farmers_invoice_only_under_rr_invoicing(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    buyer = random_nip()
    refused = _sent(ksef_server, backend, buyer, rr_invoice("RR/1", FARMER, buyer))
    assert refused == ("rejected", 410, [f"Brak uprawnień do wystawienia faktury VAT RR dostawcy {FARMER}."])
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(FARMER)) as farmer:
        grant = farmer.permissions.grant_authorization(
            subject_identifier=("Nip", buyer), permission="RRInvoicing",
            description="faktury VAT RR skupu", subject_details="Skup sp. z o.o.",
        )  # fmt: skip
        farmer.permissions.wait(grant)
    assert _sent(ksef_server, backend, buyer, rr_invoice("RR/2", FARMER, buyer))[:2] == ("accepted", 200)
    # The grant is the farmer's to the buyer: it lets the buyer issue no other farmer's invoices.
    other_farmer = random_nip()
    assert _sent(ksef_server, backend, buyer, rr_invoice("RR/3", other_farmer, buyer))[:2] == ("rejected", 410)


def test_the_farmers_own_context_needs_no_grant(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    buyer = random_nip()
    assert _sent(ksef_server, backend, FARMER, rr_invoice("RR/4", FARMER, buyer))[:2] == ("accepted", 200)
