"""``session.send(invoice)``: an ``Invoice`` goes out as the bytes of its ``to_xml()``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client.errors import InvoiceRejectedError, InvoiceSchemaError
from ksef_client.identifiers import make_internal_id
from ksef_client.invoice import (
    Address,
    AdvanceInvoice,
    Contact,
    CorrectedInvoice,
    CorrectionEffect,
    DiscountedItem,
    Invoice,
    Line,
    Party,
    TaxpayerStatus,
    ThirdParty,
    ThirdPartyRole,
    advance,
    advance_correction,
    discount_correction,
    number_correction,
    party_correction,
    settlement,
    settlement_correction,
    vat_invoice,
)
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.core import Context
from ksef_client.testing import WARSAW, sample_invoice
from ksef_client.upo import sha256_b64
from tests.conftest import NIP
from tests.helpers import FakeTime

SELLER = Party("ACME", "ul. Prosta 1, Warszawa", nip=NIP)
BUYER = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111")


def _invoice(number: str) -> Invoice:
    return vat_invoice(number=number, issue_date=dt.datetime.now(WARSAW).date(), seller=SELLER, buyer=BUYER,
                       lines=[Line("Usługa", 3, "33.33", "23"), Line("Towar", 1, "10", "8")])  # fmt: skip


def test_send_an_invoice_object(ksef: KSeF, backend: KSeFBackend) -> None:
    invoice = _invoice("OBJ/1")
    with ksef.online_session() as session:
        reference = session.send(invoice)
        session.send(Invoice.from_xml((Path(__file__).with_name("data") / "vat.xml").read_bytes()))
    assert ksef.sessions.wait(session.reference_number).successful_invoice_count == 2
    assert all(session.ksef_numbers())
    sent = ksef.sessions.invoice(session.reference_number, reference)
    assert sent.invoice_hash == sha256_b64(invoice.to_xml())


@pytest.mark.anyio
async def test_async_send_an_invoice_object(ksef_server: ThreadedServer, backend: KSeFBackend,
                                            fake_time: FakeTime) -> None:  # fmt: skip
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep,
                         clock=fake_time.clock) as client:  # fmt: skip
        async with client.online_session() as session:
            await session.send(_invoice("OBJ/A/1"))
        assert (await client.sessions.wait(session.reference_number)).successful_invoice_count == 1


def _accepted(ksef: KSeF, invoice: Invoice) -> str:
    """Send ``invoice`` alone in an online session; its KSeF number once KSeF accepted it."""
    with ksef.online_session() as session:
        session.send(invoice)
    assert ksef.sessions.wait(session.reference_number).successful_invoice_count == 1
    (ksef_number,) = session.ksef_numbers()
    assert ksef_number is not None
    return ksef_number


def test_an_invoice_naming_a_branch_by_its_internal_id_reaches_the_branch(
    ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime
) -> None:
    # A third party named by its IDWew (Party(internal_id=...)), with contact details and a
    # customer number: sent from the company's context, the branch (its InternalId context) finds
    # it as Subject3 and downloads it with every value kept.
    branch_id = make_internal_id(NIP, 0)
    branch = Party("ACME Oddział Kraków", "ul. Długa 3, Kraków", internal_id=branch_id, customer_number="ODD-7",
                   contacts=[Contact(email="krakow@acme.pl", phone="+48 12 345 67 89")])  # fmt: skip
    buyer = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111", customer_number="KL/0042",
                  contacts=[Contact(email="ksiegowosc@nabywca.pl")])  # fmt: skip
    invoice = vat_invoice(number="BR/OBJ/1", issue_date=dt.datetime.now(WARSAW).date(), seller=SELLER, buyer=buyer,
                          lines=[Line("Usługa", 1, "100", "23")],
                          third_parties=[ThirdParty(branch, ThirdPartyRole.RECIPIENT)])  # fmt: skip
    ksef_number = _accepted(ksef, invoice)
    token = backend.mint_access_token(context=Context("InternalId", branch_id))
    with KSeF(base_url=ksef_server.base_url, access_token=token, sleep=fake_time.sleep,
              clock=fake_time.clock) as of_branch:  # fmt: skip
        found = of_branch.invoices.query("Subject3", date_from=dt.datetime.now(WARSAW).date())
        assert [record.ksef_number for record in found] == [ksef_number]
        received = Invoice.from_xml(of_branch.invoices.get(ksef_number))
    assert received == invoice
    third = received.model.podmiot3[0]
    assert (third.dane_identyfikacyjne.idwew, third.nr_klienta, third.dane_kontaktowe[0].telefon) == (
        branch_id, "ODD-7", "+48 12 345 67 89")  # fmt: skip
    assert (received.model.podmiot2.nr_klienta, received.model.podmiot2.dane_kontaktowe[0].email) == (
        "KL/0042", "ksiegowosc@nabywca.pl")  # fmt: skip


def test_an_invoice_with_correspondence_addresses_eori_numbers_and_a_taxpayer_status_is_accepted(
    ksef: KSeF, backend: KSeFBackend
) -> None:
    # Party(correspondence_address=, eori=, taxpayer_status=, vat_prefix=): AdresKoresp, NrEORI,
    # StatusInfoPodatnika and PrefiksPodatnika, sent in an online session, accepted, and read back
    # from KSeF with every value kept.
    seller = Party("ACME w likwidacji", "ul. Prosta 1, Warszawa", nip=NIP, vat_prefix="PL", eori="PL526587763500000",
                   correspondence_address=Address("Skrytka pocztowa 12", "00-950 Warszawa"),
                   taxpayer_status=TaxpayerStatus.LIQUIDATION)  # fmt: skip
    buyer = Party("Nabywca", "ul. Krzywa 2, Kraków", nip="1111111111", eori="PL111111111100000",
                  correspondence_address=Address("ul. Pocztowa 5, Kraków"))  # fmt: skip
    payer = Party("Płatnik", "Hauptstraße 1, Berlin", eu_vat="DE811569869", eori="DE123456789012345",
                  correspondence_address=Address("Postfach 10 20 30", country="DE"))  # fmt: skip
    invoice = vat_invoice(number="EORI/OBJ/1", issue_date=dt.datetime.now(WARSAW).date(), seller=seller, buyer=buyer,
                          lines=[Line("Usługa", 1, "100", "23")],
                          third_parties=[ThirdParty(payer, ThirdPartyRole.PAYER)])  # fmt: skip
    received = Invoice.from_xml(ksef.invoices.get(_accepted(ksef, invoice)))
    assert received == invoice
    first, second, third = received.model.podmiot1, received.model.podmiot2, received.model.podmiot3[0]
    assert first.status_info_podatnika is not None and first.status_info_podatnika.value == 1
    assert first.prefiks_podatnika is not None and first.prefiks_podatnika.value == "PL"
    assert (first.nr_eori, second.nr_eori, third.nr_eori) == ("PL526587763500000", "PL111111111100000",
                                                              "DE123456789012345")  # fmt: skip
    assert first.adres_koresp is not None and first.adres_koresp.adres_l2 == "00-950 Warszawa"
    assert second.adres_koresp is not None and second.adres_koresp.adres_l1 == "ul. Pocztowa 5, Kraków"
    assert third.adres_koresp is not None and third.adres_koresp.kod_kraju.value == "DE"


def test_an_advance_its_correction_the_settlement_and_its_correction_are_accepted(
    ksef: KSeF, backend: KSeFBackend
) -> None:
    # ZAL -> KOR_ZAL -> ROZ -> KOR_ROZ, each sent alone in an online session and accepted; each
    # refers to the one before by the KSeF number it got, read back from KSeF. The metadata's
    # invoiceType is the spec's InvoiceType (Zal, KorZal, Roz, KorRoz), not the RodzajFaktury.
    today = dt.datetime.now(WARSAW).date()
    common = {"issue_date": today, "seller": SELLER, "buyer": BUYER}
    order = [Line("Meble biurowe", 1, "1000.00", "23")]  # 1230.00 gross
    zal = advance(number="RT/ZAL/1", order=order, received="615.00", **common)  # 500.00 + 115.00
    zal_number = _accepted(ksef, zal)
    kor_zal = advance_correction(number="RT/KZ/1", corrected=AdvanceInvoice.of(zal, zal_number), received="369.00",
                                 reason="zwrot części zaliczki", **common)  # fmt: skip
    kor_zal_number = _accepted(ksef, kor_zal)
    sent_zal, sent_kor_zal = (Invoice.from_xml(ksef.invoices.get(n)) for n in (zal_number, kor_zal_number))
    assert (sent_zal, sent_kor_zal) == (zal, kor_zal)
    paid = AdvanceInvoice.of(sent_zal, zal_number, corrections=[sent_kor_zal])  # 300.00 + 69.00
    roz = settlement(number="RT/ROZ/1", lines=order, advances=[paid], **common)  # 700.00 + 161.00
    roz_number = _accepted(ksef, roz)
    sent_roz = Invoice.from_xml(ksef.invoices.get(roz_number))
    assert sent_roz == roz and sent_roz.gross == Decimal("861.00")
    kor_roz = settlement_correction(number="RT/KR/1", corrected=CorrectedInvoice.of(sent_roz, roz_number),
                                    advances=[paid], lines=[Line("Meble biurowe", 12, "100.00", "23")],
                                    **common)  # fmt: skip
    kor_roz_number = _accepted(ksef, kor_roz)
    assert Invoice.from_xml(ksef.invoices.get(kor_roz_number)) == kor_roz
    records = {record.ksef_number: record for record in ksef.invoices.query("Subject1", date_from=today)}
    assert {number: str(records[number].invoice_type) for number in records} == {
        zal_number: "Zal", kor_zal_number: "KorZal", roz_number: "Roz", kor_roz_number: "KorRoz"}  # fmt: skip
    assert [records[n].gross_amount for n in (zal_number, kor_zal_number, roz_number, kor_roz_number)] == [
        615.0, -246.0, 861.0, 246.0]  # fmt: skip
    assert kor_roz.model.fa.faktura_zaliczkowa[0].nr_kse_ffa_zaliczkowej == zal_number


def test_a_last_advance_invoice_and_a_settlement_corrected_into_a_refund_are_accepted(
    ksef: KSeF, backend: KSeFBackend
) -> None:
    # The last advance invoice lists the earlier one (FakturaZaliczkowa, art. 106f ust. 4); a
    # settlement corrected after a price cut to below the advance shows the refund (P_15 -799.50:
    # 615.00 due before, -184.50 after).
    today = dt.datetime.now(WARSAW).date()
    common = {"issue_date": today, "seller": SELLER, "buyer": BUYER}
    order = [Line("Meble biurowe", 1, "1000.00", "23")]
    zal = advance(number="RT/ZAL/2", order=order, received="615.00", **common)
    paid = AdvanceInvoice.of(zal, _accepted(ksef, zal))
    last = advance(number="RT/ZAL/3", order=order, received="615.00", advances=[paid], **common)
    assert Invoice.from_xml(ksef.invoices.get(_accepted(ksef, last))) == last
    roz = settlement(number="RT/ROZ/2", lines=order, advances=[paid], **common)
    cheaper = [Line("Meble biurowe", 1, "350.00", "23")]
    cut = settlement_correction(number="RT/KR/2", corrected=CorrectedInvoice.of(roz, _accepted(ksef, roz)),
                                advances=[paid], lines=cheaper, **common)  # fmt: skip
    assert cut.gross == Decimal("-799.50")
    assert Invoice.from_xml(ksef.invoices.get(_accepted(ksef, cut))) == cut


def test_a_party_a_number_and_a_discount_correction_are_accepted(ksef: KSeF, backend: KSeFBackend) -> None:
    # The corrections that change no line, each sent alone in an online session after the invoices
    # they correct, accepted and read back from KSeF as built: the buyer's name (P_15 0, Podmiot2K),
    # the number (NrFaKorygowany), and a discount on both invoices (OkresFaKorygowanej, gross
    # 12.30 at 23 %: -10.00 net, -2.30 tax; 1.08 at 8 %: -1.00, -0.08), with TypKorekty.
    today = dt.datetime.now(WARSAW).date()
    common = {"issue_date": today, "seller": SELLER, "buyer": BUYER}
    first, second = _invoice("RT/KD/1"), _invoice("RT/KD/2")
    first_number, second_number = _accepted(ksef, first), _accepted(ksef, second)
    period = [CorrectedInvoice.of(first, first_number), CorrectedInvoice.of(second, second_number)]
    party = party_correction(number="RT/KP/1", corrected=period[0], reason="błędna nazwa nabywcy",
                             buyer_before=Party("Nabywka", "ul. Krzywa 2, Kraków", nip="1111111111"),
                             effect=CorrectionEffect.ORIGINAL_INVOICE_DATE, **common)  # fmt: skip
    renumbered = number_correction(number="RT/KN/1", corrected=period[1], right_number="RT/KD/2A", effect=1, **common)
    discount = discount_correction(number="RT/KR/1", corrected=period, period="bieżący miesiąc",
                                   discount={"23": "12.30", "8": "1.08"}, items=[DiscountedItem("Usługa", 3, "szt.")],
                                   effect=CorrectionEffect.CORRECTION_ISSUE_DATE, **common)  # fmt: skip
    assert discount.totals() == {"p_13_1": Decimal("-10.00"), "p_14_1": Decimal("-2.30"), "p_13_2": Decimal("-1.00"),
                                 "p_14_2": Decimal("-0.08")}  # fmt: skip
    numbers = [_accepted(ksef, kor) for kor in (party, renumbered, discount)]
    for ksef_number, kor in zip(numbers, (party, renumbered, discount), strict=True):
        assert Invoice.from_xml(ksef.invoices.get(ksef_number)) == kor
    records = {record.ksef_number: record for record in ksef.invoices.query("Subject1", date_from=today)}
    assert [(str(records[n].invoice_type), records[n].gross_amount) for n in numbers] == [
        ("Kor", 0.0), ("Kor", 0.0), ("Kor", -13.38)]  # fmt: skip


def test_anything_else_is_still_refused(ksef: KSeF, backend: KSeFBackend) -> None:
    with ksef.online_session() as session, pytest.raises(TypeError, match="expected bytes"):
        session.send("<Faktura/>")  # type: ignore[arg-type]


def _package_names(backend: KSeFBackend, reference_number: str) -> list[str | None]:
    return [i.file_name for i in backend.sessions.state.sessions[reference_number].invoices]


def test_send_batch_takes_invoice_objects(ksef: KSeF, backend: KSeFBackend) -> None:
    # docs/invoices-as-objects.md: "session.send(invoice) takes an Invoice as well as bytes";
    # send_batch did not: TypeError "expected str, bytes or os.PathLike object, not Invoice", which
    # read as a problem with a path. Objects are named by position, as bytes are.
    first, second = _invoice("OBJ/B/1"), _invoice("OBJ/B/2")
    third = bytearray(sample_invoice("OBJ/B/3"))  # as session.send takes it, alone or named (review)
    fourth = ("fourth.xml", bytearray(sample_invoice("OBJ/B/4")))
    result = ksef.send_batch([first, ("named.xml", second), third, fourth], wait=True)
    assert result.status is not None and result.status.successful_invoice_count == 4
    names = _package_names(backend, result.reference_number)
    assert names == ["invoice-00001.xml", "named.xml", "invoice-00003.xml", "fourth.xml"]
    outcomes = ksef.sessions.outcomes(result.reference_number)
    assert {o.invoice_hash for o in outcomes} >= {sha256_b64(first.to_xml()), sha256_b64(second.to_xml())}


@pytest.mark.anyio
async def test_async_send_batch_takes_invoice_objects(ksef_server: ThreadedServer, backend: KSeFBackend,
                                                      fake_time: FakeTime) -> None:  # fmt: skip
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep,
                         clock=fake_time.clock) as client:  # fmt: skip
        result = await client.send_batch([_invoice("OBJ/BA/1"), _invoice("OBJ/BA/2")], wait=True)
    assert result.status is not None and result.status.successful_invoice_count == 2


def test_send_batch_names_what_it_cannot_send(ksef: KSeF) -> None:
    with pytest.raises(TypeError, match=r"invoice 2: expected bytes, an Invoice .*got int"):
        ksef.send_batch([sample_invoice("OBJ/B/9"), 7])  # type: ignore[list-item]


def test_an_invoice_object_a_hand_edit_broke_is_refused_as_bytes_are(ksef: KSeF, backend: KSeFBackend) -> None:
    # docs/errors-and-retries.md: session.send raises InvoiceRejectedError for bad XML (nothing
    # sent); an Invoice was written by to_xml(), whose InvoiceSchemaError reached the caller instead.
    # validate=False sends as given, but an Invoice is still written by to_xml(), which checks it.
    broken = _invoice("OBJ/X/1")
    broken.model.fa.p_2 = ""  # P_2: at least one character
    with ksef.online_session() as session:
        with pytest.raises(InvoiceRejectedError, match="P_2") as raised:
            session.send(broken)
        assert isinstance(raised.value.__cause__, InvoiceSchemaError)
    with pytest.raises(InvoiceRejectedError, match=r"invoice 2 \(invoice-00002.xml\).*P_2"):
        ksef.send_batch([_invoice("OBJ/X/2"), broken])
    with ksef.online_session(validate=False) as session, pytest.raises(InvoiceSchemaError, match="P_2"):
        session.send(broken)
    assert not backend.invoices.state.accepted


class _ToEmulator(httpx.HTTPTransport):
    """Sends what a client of ``Environment.PROD`` asks for to the emulator (its host and port)."""

    def __init__(self, server: ThreadedServer) -> None:
        super().__init__()
        self.host, self.port = server.host, server.port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host=self.host, port=self.port)
        request.headers["Host"] = f"{self.host}:{self.port}"  # the emulator answers its own names only
        return super().handle_request(request)


def test_a_nip_with_a_wrong_check_digit_is_refused_before_sending_to_production(
    ksef: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer
) -> None:
    # faktury/weryfikacja-faktury.md, "Walidacja numeru NIP": "Sprawdzenie sumy kontrolnej NIP dla:
    # Podmiot1, Podmiot2, Podmiot3 oraz PodmiotUpowazniony ... Dotyczy tylko środowiska
    # produkcyjnego" (and the NIP in a Podmiot3's IDWew). The XSD takes any 10 digits, so such an
    # invoice passed the check before sending, and PROD refused it with 450.
    good = _invoice("NIP/1").to_xml()
    bad_buyer = good.replace(b"<NIP>1111111111</NIP>", b"<NIP>1111111112</NIP>")
    third = (
        b"<Podmiot3><DaneIdentyfikacyjne><IDWew>5265877636-00001</IDWew></DaneIdentyfikacyjne><Rola>2</Rola></Podmiot3>"
    )
    bad_third = good.replace(b"</Podmiot2>", b"</Podmiot2>" + third)
    production = KSeF(
        environment="PROD", access_token=backend.mint_access_token(NIP), transport=_ToEmulator(ksef_server),
        storage_hosts=[ksef_server.host], rate_limit_scale=0,
    )  # fmt: skip
    assert production.settings.is_production and not ksef.settings.is_production
    message = (r"invoice: Podmiot2/DaneIdentyfikacyjne/NIP '1111111112' has a wrong NIP check digit\. KSeF's "
               r"production environment refuses such an invoice \(status 450")  # fmt: skip
    named = r"invoice 2 \(invoice-00002.xml\): Podmiot3\[1\]/DaneIdentyfikacyjne/IDWew '5265877636-00001' holds a NIP"
    with production:
        with production.online_session() as session, pytest.raises(InvoiceRejectedError, match=message):
            session.send(bad_buyer)
        with pytest.raises(InvoiceRejectedError, match=named):
            production.send_batch([good, bad_third])
    assert not backend.invoices.state.accepted  # nothing was sent
    # The test environment takes it ("Dotyczy tylko środowiska produkcyjnego"), and so does the
    # emulator's TEST profile: a client of any other URL sends it.
    with ksef.online_session() as session:
        session.send(bad_buyer)
    assert ksef.sessions.wait(session.reference_number).successful_invoice_count == 1
    # what KSeF PROD answers, as the emulator's PROD profile has it: 450, after sending
    backend.profile = "PROD"
    with ksef.online_session(validate=False) as session:
        session.send(bad_third)
    assert ksef.sessions.wait(session.reference_number).failed_invoice_count == 1
