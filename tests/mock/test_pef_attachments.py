"""A PEF invoice's attachment: an embedded document is an attachment to KSeF (review s13, finding 1).

The Ministry's Java client sends its PEF template with an embedded document
(``cac:AdditionalDocumentReference/cac:Attachment/cbc:EmbeddedDocumentBinaryObject``) in an online
session, after the attachment consent of the seller, and asserts against KSeF TEST that a
``hasAttachment: true`` metadata query lists it with ``hasAttachment: true``
(``QueryInvoiceIntegrationTest.queryInvoiceWithAttachmentAndWithout``); both its clients enable the
consent before sending that template, and only for it (C# ``PeppolPefE2ETests``). "Możliwość wysyłki
faktur z załącznikami wymaga uprzedniego zgłoszenia" (faktury/weryfikacja-faktury.md), and a
"Maksymalny rozmiar faktury z załącznikami: 3 MB". The emulator took such an invoice without the
consent, listed it with ``hasAttachment: false``, and held it (as the SDK's pre-send check did) to
the 1 MB of an invoice without attachments.
"""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from ksef_client import KSeF
from ksef_client.errors import InvoiceRejectedError, InvoiceSchemaError
from ksef_client.mock import KSeFBackend, peppol_provider_certificate
from ksef_client.mock.server import ThreadedServer
from ksef_client.schemas import has_attachment, validate_invoice
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.helpers import FakeTime, pef_invoice

PEPPOL_ID = "PPL123456"
# A PEF invoice past 1 MB (the limit without attachments) and under 3 MB (with them).
LARGE = 1_600_000
ZALACZNIK = (
    b"<Zalacznik><BlokDanych><MetaDane><ZKlucz>umowa</ZKlucz><ZWartosc>1/2026</ZWartosc></MetaDane>"
    b"</BlokDanych></Zalacznik></Faktura>"
)


def _outcomes(ksef: KSeF, invoices: list[bytes], form: str = "PEF(3)") -> list[tuple[str, int, tuple[str, ...]]]:
    with ksef.online_session(form) as session:
        for xml in invoices:
            session.send(xml)
    ksef.sessions.wait(session.reference_number)
    return [(o.kind, o.code, tuple(o.details)) for o in session.outcomes()]


def _listed(ksef: KSeF, **filters: object) -> list[tuple[str, bool]]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    pager = ksef.invoices.query("Subject1", date_from=since, date_type="Invoicing", **filters)
    return sorted((record.invoice_number, record.has_attachment) for record in pager)


def test_an_embedded_document_needs_the_consent_and_is_listed_as_an_attachment(
    ksef: KSeF, backend: KSeFBackend
) -> None:
    without_consent = _outcomes(ksef, [pef_invoice("PEF/ATT/1", NIP, document=b"%PDF-1.4 zestawienie")])
    assert without_consent == [("rejected", 415, (f"Brak zgody na wysyłanie faktur z załącznikiem: {NIP}.",))]
    ksef.testdata.allow_attachments({"nip": NIP})  # POST /testdata/attachment, as the Ministry's tests do
    sent = [
        pef_invoice("PEF/ATT/2", NIP, document=b"%PDF-1.4 zestawienie"),
        pef_invoice("PEF/PLAIN", NIP),
        # A link alone (cac:ExternalReference) attaches nothing to the file: no attachment (the
        # SDK's reading; no source says KSeF counts it), taken without the consent too.
        pef_invoice("PEF/LINK", NIP, link="https://example.com/harmonogram.html"),
    ]
    # Online: the PEF forms have no batch session (OpenBatchSessionRequest.formCode), and KSeF TEST
    # takes the Ministry's PEF with attachment online.
    assert [(kind, code) for kind, code, _ in _outcomes(ksef, sent)] == [("accepted", 200)] * 3
    assert _listed(ksef, has_attachment=True) == [("PEF/ATT/2", True)]
    assert _listed(ksef, has_attachment=False) == [("PEF/LINK", False), ("PEF/PLAIN", False)]
    backend.testdata.allow_attachments(NIP, allowed=False)
    [(kind, code, _)] = _outcomes(ksef, [pef_invoice("PEF/LINK/2", NIP, link="https://example.com/a.html")])
    assert (kind, code) == ("accepted", 200)


def test_a_peppol_provider_sends_it_under_the_sellers_consent(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # The Java test's flow: the seller grants PefInvoicing to the provider and has the consent
    # (grantAttachmentCredential(contextNip)); the provider sends in its own PeppolId context.
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as seller:
        seller.permissions.grant_authorization(
            subject_identifier=("PeppolId", PEPPOL_ID), permission="PefInvoicing",
            description="faktury PEF przez dostawcę", subject_details="Dostawca Peppol sp. z o.o.",
        )  # fmt: skip
    options = {"sleep": fake_time.sleep, "clock": fake_time.clock, "rate_limit_scale": 0}
    with KSeF(base_url=ksef_server.base_url, **options) as provider:  # type: ignore[arg-type]
        certificate = peppol_provider_certificate(PEPPOL_ID)
        provider.auth.login_with_certificate(certificate, context=("PeppolId", PEPPOL_ID))
        assert _outcomes(provider, [pef_invoice("PEF/P/1", NIP, document=b"plik")])[0][1] == 415
        backend.testdata.allow_attachments(NIP)
        assert _outcomes(provider, [pef_invoice("PEF/P/2", NIP, document=b"plik")])[0][:2] == ("accepted", 200)


def test_an_embedded_document_raises_the_size_limit_to_3_mb(ksef: KSeF, backend: KSeFBackend) -> None:
    backend.testdata.allow_attachments(NIP)
    attached = pef_invoice("PEF/BIG/1", NIP, document=bytes(LARGE))
    plain = pef_invoice("PEF/BIG/2", NIP, note="x" * LARGE)
    assert 1_000_000 < len(plain) < len(attached) < 3_000_000
    validate_invoice(attached, "PEF(3)")  # the SDK's pre-send check: 3 MB with attachments
    with pytest.raises(InvoiceSchemaError, match="at most 1000000"):
        validate_invoice(plain, "PEF(3)")
    with ksef.online_session("PEF(3)", validate=False) as session:
        session.send(attached)
        session.send(plain)
    ksef.sessions.wait(session.reference_number)
    assert [(o.kind, o.code) for o in session.outcomes()] == [("accepted", 200), ("rejected", 430)]


def test_the_batch_only_rule_still_binds_an_fa_invoice_sent_online(ksef: KSeF) -> None:
    # "Wysyłka faktur z załącznikami jest dozwolona tylko w trybie wsadowym": the SDK refuses an
    # FA(3) with Zalacznik online before sending, and a PEF with an embedded document it sends.
    with ksef.online_session() as session, pytest.raises(InvoiceRejectedError, match="only in a batch session"):
        session.send(sample_invoice("FV/ZAL/1").replace(b"</Faktura>", ZALACZNIK))


def test_a_credit_note_with_an_embedded_document_has_an_attachment() -> None:
    # PEF_KOR(3) is a UBL CreditNote: the same common components carry its attachments.
    invoice = pef_invoice("PEF/KOR/1", NIP, document=b"plik")
    credit_note = invoice.replace(b"ubl:schema:xsd:Invoice-2", b"ubl:schema:xsd:CreditNote-2")
    assert has_attachment(etree.fromstring(credit_note))
    assert not has_attachment(etree.fromstring(pef_invoice("PEF/KOR/2", NIP, link="https://example.com/a")))
