"""Test helpers: a fake clock, invoice XML, and a transport that records when requests were sent."""

from __future__ import annotations

import base64
import datetime as dt
import math
import threading
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import anyio.lowlevel
import httpx
import pytest

from ksef_client.testing import sample_invoice

WARSAW = ZoneInfo("Europe/Warsaw")  # where KSeF counts days (an issue date after today is refused)


class FakeTime:
    """``clock`` and ``sleep`` for clients: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        # A real sleep lets the other tasks run: requests on their way get their answers.
        await anyio.lowlevel.checkpoint()


class SharedTime(FakeTime):
    """``FakeTime`` whose sleeps move the emulator's clock too (``backend.clock``, restored by
    ``monkeypatch``): the emulator's rate limits count on the same fake time as the client's
    throttle. Threads may share it."""

    def __init__(self, backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.server_now: dt.datetime = backend.clock()
        monkeypatch.setattr(backend, "clock", lambda: self.server_now)

    def sleep(self, seconds: float) -> None:
        # Both clocks move by the same whole microseconds (the emulator's clock has no finer
        # grain), rounded up: a wait to a window's exact edge then ends on it at both ends.
        step = dt.timedelta(microseconds=math.ceil(seconds * 1_000_000))
        with self._lock:
            self.sleeps.append(seconds)
            self.now += step.total_seconds()
            self.server_now += step


def issued_by(backend: Any) -> dt.date:
    """The issue date of an invoice the emulator ``backend`` stores now by its clock, which a test
    set back: that clock's day in Warsaw. ``sample_invoice`` dates by the real clock, and for the
    first minutes (or hour) after midnight in Warsaw that day is later than the one the emulator
    receives the invoice on, which it refuses (450, an issue date after the day it was received)."""
    day: dt.date = backend.clock().astimezone(WARSAW).date()
    return day


def invoice_xml(number: str, seller: str = "5265877635", issued: str = "2026-11-20") -> bytes:
    """A valid FA(3) invoice (the emulator checks the XSD) with the given key fields."""
    return sample_invoice(number, seller_nip=seller, issue_date=issued)


def pef_invoice(
    number: str, seller: str = "5265877635", *, document: bytes | None = None, link: str | None = None,
    note: str | None = None,
) -> bytes:  # fmt: skip
    """A PEF(3) invoice (UBL 2.1, valid against the form's XSD) of ``seller`` to 1111111111, issued
    today; ``document``: a file it carries embedded (``cac:AdditionalDocumentReference/cac:Attachment/
    cbc:EmbeddedDocumentBinaryObject``), ``link``: one it names by URI only (``cac:ExternalReference``),
    ``note``: a ``cbc:Note``."""
    references = ""
    if document is not None:
        embedded = base64.b64encode(document).decode()
        references += (
            "<cac:AdditionalDocumentReference><cbc:ID>ZAL-1</cbc:ID><cac:Attachment>"
            '<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="zestawienie.pdf">'
            f"{embedded}</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>"
        )
    if link is not None:
        references += (
            "<cac:AdditionalDocumentReference><cbc:ID>ZAL-2</cbc:ID><cac:Attachment><cac:ExternalReference>"
            f"<cbc:URI>{escape(link)}</cbc:URI></cac:ExternalReference></cac:Attachment></cac:AdditionalDocumentReference>"
        )
    return _UBL.format(
        number=escape(number), issued=dt.datetime.now(WARSAW).date(), seller=seller,
        note=f"<cbc:Note>{escape(note)}</cbc:Note>" if note is not None else "", references=references,
    ).encode()  # fmt: skip


_UBL = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"'
    ' xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"'
    ' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
    "<cbc:ID>{number}</cbc:ID><cbc:IssueDate>{issued}</cbc:IssueDate><cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>"
    "{note}<cbc:DocumentCurrencyCode>PLN</cbc:DocumentCurrencyCode>{references}"
    "<cac:AccountingSupplierParty><cac:Party><cac:PartyTaxScheme><cbc:CompanyID>PL{seller}</cbc:CompanyID>"
    "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme></cac:Party></cac:AccountingSupplierParty>"
    "<cac:AccountingCustomerParty><cac:Party><cac:PartyTaxScheme><cbc:CompanyID>PL1111111111</cbc:CompanyID>"
    "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme></cac:Party></cac:AccountingCustomerParty>"
    '<cac:TaxTotal><cbc:TaxAmount currencyID="PLN">23.00</cbc:TaxAmount></cac:TaxTotal>'
    '<cac:LegalMonetaryTotal><cbc:PayableAmount currencyID="PLN">123.00</cbc:PayableAmount></cac:LegalMonetaryTotal>'
    '<cac:InvoiceLine><cbc:ID>1</cbc:ID><cbc:LineExtensionAmount currencyID="PLN">100.00</cbc:LineExtensionAmount>'
    "<cac:Item><cbc:Name>Usługa</cbc:Name></cac:Item></cac:InvoiceLine></Invoice>"
)


def rr_invoice(number: str, farmer: str, buyer: str) -> bytes:
    """An FA_RR(1) invoice (VAT RR, valid against the form's XSD) issued today: the flat-rate
    farmer ``farmer`` (Podmiot1, "Dane dostawcy") sells to ``buyer`` (Podmiot2), who issues it."""
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    issued = dt.datetime.now(WARSAW).date()
    return _RR.format(created=created, farmer=farmer, buyer=buyer, issued=issued, number=escape(number)).encode()


_RR = """<?xml version="1.0" encoding="UTF-8"?>
<Faktura xmlns="http://crd.gov.pl/wzor/2026/03/06/14189/">
<Naglowek><KodFormularza kodSystemowy="FA_RR (1)" wersjaSchemy="1-1E">FA_RR</KodFormularza>
<WariantFormularza>1</WariantFormularza><DataWytworzeniaFa>{created}</DataWytworzeniaFa></Naglowek>
<Podmiot1><DaneIdentyfikacyjne><NIP>{farmer}</NIP><Nazwa>Gospodarstwo rolne {farmer}</Nazwa></DaneIdentyfikacyjne>
<Adres><KodKraju>PL</KodKraju><AdresL1>Wola 1, 00-100 Wola</AdresL1></Adres></Podmiot1>
<Podmiot2><DaneIdentyfikacyjne><NIP>{buyer}</NIP><Nazwa>Skup {buyer}</Nazwa></DaneIdentyfikacyjne>
<Adres><KodKraju>PL</KodKraju><AdresL1>ul. Skupowa 2, 00-200 Miasto</AdresL1></Adres></Podmiot2>
<FakturaRR><KodWaluty>PLN</KodWaluty><P_4B>{issued}</P_4B><P_4C>{number}</P_4C>
<P_11_1>100.00</P_11_1><P_11_2>7.00</P_11_2><P_12_1>107.00</P_12_1><P_12_2>sto siedem złotych 00/100</P_12_2>
<RodzajFaktury>VAT_RR</RodzajFaktury>
<FakturaRRWiersz><NrWierszaFa>1</NrWierszaFa><P_5>Pszenica konsumpcyjna</P_5><P_6A>kg</P_6A><P_6B>100</P_6B>
<P_6C>klasa I</P_6C><P_7>1.00</P_7><P_8>100.00</P_8><P_9>7</P_9><P_10>7.00</P_10><P_11>107.00</P_11></FakturaRRWiersz>
</FakturaRR>
</Faktura>"""


class RecordingTransport(httpx.BaseTransport):
    """Passes requests on and records (fake time, method, path) of each one sent."""

    def __init__(self, inner: httpx.BaseTransport, time: FakeTime) -> None:
        self.inner = inner
        self.time = time
        self.sent: list[tuple[float, str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.time.now, request.method, request.url.path))
        return self.inner.handle_request(request)


def certificate_with(*attributes: tuple[Any, str]) -> Any:
    """``SigningCredentials`` of a self-signed certificate (EC P-256, valid for 30 days) whose
    subject has exactly these ``(NameOID, value)`` attributes: certificates that
    ``ksef_client.testing.self_signed_certificate`` does not make (no NIP, a person with an
    employer's VATPL-...)."""
    from cryptography import x509

    return certificate_named(x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes]))


def certificate_named(name: Any) -> Any:
    """``SigningCredentials`` of a self-signed certificate (EC P-256, valid for 30 days) of the
    subject ``name`` (an ``x509.Name``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from ksef_client.xades import SigningCredentials

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return SigningCredentials(certificate, key)


def fsync_spy(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The paths ``os.fsync`` flushes from now on, in order (read from ``/proc/self/fd``; the
    flushes still happen)."""
    import os
    from pathlib import Path

    flushed: list[Any] = []
    real_fsync = os.fsync

    def fsync(handle: int) -> None:
        flushed.append(Path(os.readlink(f"/proc/self/fd/{handle}")))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    return flushed


def fingerprint(credentials: Any) -> str:
    """The SHA-256 fingerprint (upper-case hex) of a certificate's DER: what a ``Fingerprint``
    grant names and a ``certificateFingerprint`` login authenticates."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(credentials.certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


def create_context(base_url: str, backend: Any, context: tuple[str, str], administrator: tuple[str, str]) -> None:
    """Create the ``InternalId`` or ``NipVatUe`` context ``context`` as KSeF does: its NIP's owner
    appoints ``administrator`` there (``POST /permissions/subunits/grants`` "tworzony jest
    identifikator wewnętrzny"; ``POST /permissions/eu-entities/administration/grants`` "tworzony jest
    kontekst złożony", ``administrator`` then a ``Fingerprint``). The emulator lets nobody log in to
    such a context before (its NIP's owner neither)."""
    from ksef_client import KSeF

    token = backend.mint_access_token(context[1][:10])
    with KSeF(base_url=base_url, access_token=token, sleep=lambda _: None) as owner:
        if context[0] == "InternalId":
            person = {
                "subjectDetailsType": "PersonByIdentifier",
                "personById": {"firstName": "Jan", "lastName": "Nowak"},
            }
            ref = owner.permissions.grant_subunit(
                subject_identifier=administrator, context_identifier=context, description="administrator jednostki",
                subject_details=person, subunit_name="Oddział testowy",
            )  # fmt: skip
        else:
            entity = {"fullName": "Firma GmbH", "address": "Berlin"}
            ref = owner.permissions.grant_eu_entity_administrator(
                subject_identifier=administrator, context_identifier=context, description="administrator UE",
                eu_entity_name="Firma GmbH, Berlin", eu_entity_details=entity,
                subject_details={"subjectDetailsType": "EntityByFingerprint", "entityByFp": entity},
            )  # fmt: skip
        owner.permissions.wait(ref)
