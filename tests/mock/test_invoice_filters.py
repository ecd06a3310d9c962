"""Metadata queries and exports filter as the spec's ``InvoiceQueryFilters`` says, and the records
say what the invoices say (buyer identifier, VAT in PLN, other parties).

The emulator kept only ``ksefNumber``, ``invoiceNumber`` and ``sellerNip`` of the filters (every
other one was ignored: every invoice of the range came back), answered nothing to ``Subject3`` and
``SubjectAuthorized``, gave ``vatAmount`` in the invoice's currency and every buyer as a ``Nip``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.invoice import Line, Party, advance, vat_invoice
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.mock.state.core import Context, Status
from ksef_client.mock.state.invoice_query import Query, parse_query
from ksef_client.mock.state.invoices import Invoice, read_invoice_fields
from ksef_client.testing import random_nip, sample_invoice
from tests.conftest import NIP

TODAY = dt.datetime.now(ZoneInfo("Europe/Warsaw")).date()  # the builders refuse a later day
SELLER = Party("ACME sp. z o.o.", "ul. Prosta 1, 00-001 Warszawa", nip=NIP)
THIRD, AUTHORIZED = random_nip(), random_nip()
BRANCH = f"{THIRD}-00001"  # a Podmiot3 named by its internal identifier (IDWew)
ATTACHMENT = (
    b"<Zalacznik><BlokDanych><MetaDane><ZKlucz>umowa</ZKlucz><ZWartosc>1/2026</ZWartosc></MetaDane>"
    b"</BlokDanych></Zalacznik></Faktura>"
)
OTHER_PARTIES = f"""</Podmiot2>
<Podmiot3><DaneIdentyfikacyjne><NIP>{THIRD}</NIP><Nazwa>Drugi nabywca</Nazwa></DaneIdentyfikacyjne>
<Rola>4</Rola></Podmiot3>
<Podmiot3><DaneIdentyfikacyjne><IDWew>{BRANCH}</IDWew></DaneIdentyfikacyjne><Rola>2</Rola></Podmiot3>
<Podmiot3><DaneIdentyfikacyjne><BrakID>1</BrakID><Nazwa>Gwarant</Nazwa></DaneIdentyfikacyjne>
<RolaInna>1</RolaInna><OpisRoli>Gwarant</OpisRoli></Podmiot3>
<PodmiotUpowazniony><DaneIdentyfikacyjne><NIP>{AUTHORIZED}</NIP><Nazwa>Komornik</Nazwa></DaneIdentyfikacyjne>
<Adres><KodKraju>PL</KodKraju><AdresL1>ul. Sądowa 1, 00-950 Warszawa</AdresL1></Adres><RolaPU>2</RolaPU>
</PodmiotUpowazniony>""".encode()


def _eur() -> bytes:
    # EUR, 23%: P_14_1 230.00 EUR, P_14_1W 977.50 PLN; the buyer by its EU VAT number.
    buyer = Party("Firma GmbH", "Hauptstr. 1, Berlin", eu_vat="DE811569869")
    lines = [Line("Konsultacje", Decimal(10), Decimal("100.00"), rate="23")]
    invoice = vat_invoice(number="FV/EUR", issue_date=TODAY, seller=SELLER, buyer=buyer, lines=lines,
                          currency="EUR", exchange_rate="4.25")  # fmt: skip
    return invoice.to_xml()


def _foreign(number: str, buyer: Party, rate: str = "np I") -> bytes:
    return vat_invoice(number=number, issue_date=TODAY, seller=SELLER, buyer=buyer,
                       lines=[Line("Usługa", Decimal(1), Decimal("10.00"), rate=rate)]).to_xml()  # fmt: skip


def _zal() -> bytes:
    buyer = Party("Nabywca S.A.", "ul. Krzywa 2, 30-001 Kraków", nip="1111111111")
    return advance(number="ZAL/1", issue_date=TODAY, seller=SELLER, buyer=buyer,
                   order=[Line("Maszyna", Decimal(1), Decimal("1000.00"))], received="246.00").to_xml()  # fmt: skip


def _send(backend: KSeFBackend) -> None:
    """One of each kind of invoice the filters tell apart, through the state (no HTTP)."""
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    backend.testdata.allow_attachments(NIP)
    session = backend.sessions.open(access)
    sent: dict[str, tuple[bytes, dict[str, Any]]] = {
        "FV/PLN": (sample_invoice("FV/PLN"), {}),  # 100 + 23 = 123 PLN, buyer NIP 1111111111
        "FV/EUR": (_eur(), {}),
        "FV/US": (_foreign("FV/US", Party("Corp Inc.", "1 Main St, NY", tax_id="12-3456789", country="US")), {}),
        "FV/CONSUMER": (_foreign("FV/CONSUMER", Party("Jan Kowalski", "ul. Domowa 3, Kraków"), "23"), {}),
        "FV/SELF": (sample_invoice("FV/SELF").replace(b"<P_17>2</P_17>", b"<P_17>1</P_17>"), {}),
        "FV/OFFLINE": (sample_invoice("FV/OFFLINE"), {"offline": True}),
        "FV/ATT": (sample_invoice("FV/ATT").replace(b"</Faktura>", ATTACHMENT), {"attachments_allowed": True}),
        "FV/P3": (sample_invoice("FV/P3").replace(b"</Podmiot2>", OTHER_PARTIES), {}),
        "ZAL/1": (_zal(), {}),
    }
    for number, (xml, options) in sent.items():
        invoice = backend.sessions.add_invoice(session, xml, **options)
        assert invoice.accepted, (number, invoice.status)
    backend.sessions.close(session)


@pytest.fixture
def sent(backend: KSeFBackend) -> Iterator[None]:
    _send(backend)
    yield


def _query(ksef_mock: KSeFMock, filters: dict[str, Any], nip: str = NIP, subject: str = "Subject1") -> list[str]:
    """``POST /invoices/query/metadata`` as ``nip``: the invoice numbers found."""
    return sorted(record["invoiceNumber"] for record in _records(ksef_mock, filters, nip, subject))


def _records(ksef_mock: KSeFMock, filters: dict[str, Any], nip: str = NIP, subject: str = "Subject1",
             token: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {"subjectType": subject, "dateRange": {"dateType": "Invoicing", "from": since}, **filters}
    headers = {"Authorization": f"Bearer {token or ksef_mock.token(nip)}"}
    answer = httpx.post(f"{ksef_mock.base_url}/invoices/query/metadata", json=body, headers=headers,
                        params={"pageSize": 100})  # fmt: skip
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["invoices"]
    return records


ALL = ["FV/ATT", "FV/CONSUMER", "FV/EUR", "FV/OFFLINE", "FV/P3", "FV/PLN", "FV/SELF", "FV/US", "ZAL/1"]
SAMPLES = ["FV/ATT", "FV/OFFLINE", "FV/P3", "FV/PLN", "FV/SELF"]  # sample_invoice: 100 + 23 PLN


# Each filter of InvoiceQueryFilters (spec 2.9.0) and what it keeps of ALL.
@pytest.mark.parametrize(("filters", "expected"), [
    ({}, ALL),
    # currencyCodes: "Kody walut."
    ({"currencyCodes": ["EUR"]}, ["FV/EUR"]),
    ({"currencyCodes": ["EUR", "PLN"]}, ALL),
    ({"currencyCodes": []}, ALL),  # the spec is silent on an empty list: no filter, as a missing one
    # amount: "Filtr kwotowy - brutto, netto lub VAT (z wartością)"; bounds count in.
    ({"amount": {"type": "Brutto", "from": 1000}}, ["FV/EUR"]),
    ({"amount": {"type": "Brutto", "from": 123, "to": 123}}, SAMPLES),
    ({"amount": {"type": "Netto", "to": 10}}, ["FV/CONSUMER", "FV/US"]),
    ({"amount": {"type": "Netto", "from": 999.99, "to": 1000.01}}, ["FV/EUR"]),
    # vatAmount, "Łączna kwota VAT wyrażona w PLN": the EUR invoice's is 977.50, not 230.
    ({"amount": {"type": "Vat", "from": 900}}, ["FV/EUR"]),
    ({"amount": {"type": "Vat", "from": 200, "to": 300}}, []),
    # invoiceTypes: "Rodzaje faktur."
    ({"invoiceTypes": ["Zal"]}, ["ZAL/1"]),
    ({"invoiceTypes": ["Kor"]}, []),
    # formType: "FA | Faktura VAT", "PEF | Faktura PEF", "FA_RR | Faktura RR"
    ({"formType": "FA"}, ALL),
    ({"formType": "PEF"}, []),
    # invoicingMode: "Tryb wystawienia faktury: online lub offline."
    ({"invoicingMode": "Offline"}, ["FV/OFFLINE"]),
    ({"invoicingMode": "Online"}, [n for n in ALL if n != "FV/OFFLINE"]),
    # isSelfInvoicing: "Czy faktura została wystawiona w trybie samofakturowania." (P_17 = 1)
    ({"isSelfInvoicing": True}, ["FV/SELF"]),
    ({"isSelfInvoicing": False}, [n for n in ALL if n != "FV/SELF"]),
    # hasAttachment: "Czy faktura ma załącznik."
    ({"hasAttachment": True}, ["FV/ATT"]),
    ({"hasAttachment": False}, [n for n in ALL if n != "FV/ATT"]),
    # buyerIdentifier: "Nip | 10 cyfrowy numer NIP", "VatUe | Identyfikator VAT UE podmiotu unijnego",
    # "Other | Inny identyfikator", "None | Brak identyfikatora nabywcy"; value "(exact match)".
    ({"buyerIdentifier": {"type": "VatUe", "value": "DE811569869"}}, ["FV/EUR"]),
    ({"buyerIdentifier": {"type": "VatUe"}}, ["FV/EUR"]),
    ({"buyerIdentifier": {"type": "VatUe", "value": "de811569869"}}, []),  # exact: case counts
    ({"buyerIdentifier": {"type": "VatUe", "value": "811569869"}}, []),  # exact: not a part of it
    ({"buyerIdentifier": {"type": "Other", "value": "12-3456789"}}, ["FV/US"]),
    ({"buyerIdentifier": {"type": "None"}}, ["FV/CONSUMER"]),
    ({"buyerIdentifier": {"type": "Nip", "value": "1111111111"}}, [*SAMPLES, "ZAL/1"]),
    # invoiceNumber, sellerNip: "(exact match)".
    ({"invoiceNumber": "FV/PLN"}, ["FV/PLN"]),
    ({"invoiceNumber": "fv/pln"}, []),
    ({"invoiceNumber": "FV/P"}, []),
    ({"sellerNip": NIP}, ALL),
    ({"sellerNip": "1111111111"}, []),
    # several filters: all of them
    ({"currencyCodes": ["PLN"], "amount": {"type": "Brutto", "to": 123}, "isSelfInvoicing": False,
      "hasAttachment": False, "invoicingMode": "Online"}, ["FV/CONSUMER", "FV/P3", "FV/PLN", "FV/US"]),
])  # fmt: skip
def test_each_filter_keeps_what_the_spec_says(
    ksef_mock: KSeFMock, sent: None, filters: dict[str, Any], expected: list[str]
) -> None:
    assert _query(ksef_mock, filters) == expected


def test_an_export_filters_as_the_metadata_query(ksef: KSeF, sent: None, tmp_path: Path) -> None:
    # POST /invoices/exports takes the same InvoiceQueryFilters; the emulator packed every invoice.
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    result = ksef.invoices.export(tmp_path, "Subject1", date_from=since, date_type="Invoicing",
                                  currency_codes=["EUR"], buyer_identifier={"type": "VatUe"})  # fmt: skip
    assert [record["invoiceNumber"] for record in result.metadata] == ["FV/EUR"]
    result = ksef.invoices.export(tmp_path, "Subject1", date_from=since, date_type="Invoicing",
                                  has_attachment=True, only_metadata=True)  # fmt: skip
    assert [record["invoiceNumber"] for record in result.metadata] == ["FV/ATT"]


def test_form_type_is_the_form_code_the_invoice_came_under() -> None:
    # InvoiceQueryFilters.formType: FA, PEF, FA_RR, the FormCode.value of the session's form.
    now = dt.datetime.now(dt.UTC)
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": now.isoformat()}}
    fields = read_invoice_fields(sample_invoice("FV/1"))
    for value in ("FA", "PEF", "FA_RR"):
        invoice = Invoice(1, "ref", "hash", 1, now, Status(200, "OK"), fields=fields,
                          form_code={"systemCode": "x", "schemaVersion": "1", "value": value})  # fmt: skip
        kept = [form for form in ("FA", "PEF", "FA_RR") if _with(body, formType=form).accepts(invoice)]
        assert kept == [value]


def _with(body: dict[str, Any], **filters: Any) -> Query:
    return parse_query({**body, **filters}, dt.datetime.now(dt.UTC))


def test_vat_amount_is_the_tax_in_pln(ksef_mock: KSeFMock, sent: None) -> None:
    # InvoiceMetadata.vatAmount: "Łączna kwota VAT wyrażona w PLN" (P_14_xW of an invoice in a
    # foreign currency); netAmount and grossAmount, "Łączna kwota netto/brutto", stay in its currency.
    [record] = _records(ksef_mock, {"invoiceNumber": "FV/EUR"})
    assert (record["currency"], record["netAmount"], record["grossAmount"]) == ("EUR", 1000.0, 1230.0)
    assert record["vatAmount"] == 977.5  # 230.00 EUR at 4.25; the emulator said 230.0
    [record] = _records(ksef_mock, {"invoiceNumber": "FV/PLN"})
    assert record["vatAmount"] == 23.0  # in PLN, P_14_1 itself


def test_vat_amount_in_pln_of_fa_rr_and_pef() -> None:
    # FA_RR: P_11_2W, "kwota zryczałtowanego zwrotu podatku, przeliczona" (FA_RR XSD), else P_11_2.
    rr = (b'<Faktura xmlns="urn:rr"><Podmiot1><DaneIdentyfikacyjne><NIP>1111111111</NIP></DaneIdentyfikacyjne>'
          b'</Podmiot1><Podmiot2><DaneIdentyfikacyjne><NIP>5265877635</NIP></DaneIdentyfikacyjne></Podmiot2>'
          b'<FakturaRR><KodWaluty>EUR</KodWaluty><P_4B>2026-01-02</P_4B><P_4C>RR/1</P_4C><P_11_1>100</P_11_1>'
          b'<P_11_2>7</P_11_2><P_11_2W>29.75</P_11_2W><P_12_1>107</P_12_1><RodzajFaktury>VAT_RR</RodzajFaktury>'
          b'</FakturaRR></Faktura>')  # fmt: skip
    assert read_invoice_fields(rr).vat_pln == Decimal("29.75")
    assert read_invoice_fields(rr.replace(b"<P_11_2W>29.75</P_11_2W>", b"")).vat_pln == Decimal(7)
    # PEF (UBL): the TaxTotal in PLN where the invoice gives one besides its currency's.
    ubl = (b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
           b'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
           b'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
           b'<cbc:ID>PEF/1</cbc:ID><cbc:IssueDate>2026-01-02</cbc:IssueDate><cbc:InvoiceTypeCode>389</cbc:InvoiceTypeCode>'
           b'<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>'
           b'<cac:AccountingSupplierParty><cac:Party><cac:PartyTaxScheme><cbc:CompanyID>PL5265877635</cbc:CompanyID>'
           b'</cac:PartyTaxScheme></cac:Party></cac:AccountingSupplierParty>'
           b'<cac:AccountingCustomerParty><cac:Party><cac:PartyTaxScheme><cbc:CompanyID>DE811569869</cbc:CompanyID>'
           b'</cac:PartyTaxScheme></cac:Party></cac:AccountingCustomerParty>'
           b'<cac:TaxTotal><cbc:TaxAmount currencyID="EUR">23.00</cbc:TaxAmount></cac:TaxTotal>'
           b'<cac:TaxTotal><cbc:TaxAmount currencyID="PLN">97.75</cbc:TaxAmount></cac:TaxTotal></Invoice>')  # fmt: skip
    fields = read_invoice_fields(ubl)
    assert fields.vat_pln == Decimal("97.75")
    # The buyer by its EU VAT number (no NIP), self-billing by UNTDID 1001 code 389 "Self-billed invoice".
    assert (fields.buyer, fields.buyer_id, fields.self_invoicing) == (None, ("VatUe", "DE811569869"), True)


def test_the_buyer_identifier_says_what_identifies_the_buyer(ksef_mock: KSeFMock, sent: None) -> None:
    # InvoiceMetadataBuyerIdentifier.type: Nip | VatUe | Other | None (BuyerIdentifierType); the
    # emulator said "Nip" for each, with a null value for all but a NIP.
    found = {r["invoiceNumber"]: r["buyer"]["identifier"] for r in _records(ksef_mock, {})}
    assert found["FV/PLN"] == {"type": "Nip", "value": "1111111111"}
    assert found["FV/EUR"] == {"type": "VatUe", "value": "DE811569869"}  # KodUE + NrVatUE
    assert found["FV/US"] == {"type": "Other", "value": "12-3456789"}  # NrID (KodKraju US apart)
    assert found["FV/CONSUMER"] == {"type": "None", "value": None}  # BrakID


def test_records_name_the_other_parties_and_self_billing(ksef_mock: KSeFMock, sent: None) -> None:
    # InvoiceMetadata.thirdSubjects ("Lista podmiotów trzecich"), authorizedSubject ("Podmiot
    # upoważniony"), isSelfInvoicing ("Czy faktura została wystawiona w trybie samofakturowania",
    # P_17 = 1 of the FA forms): the emulator left the first two out and said false for the last.
    records = {r["invoiceNumber"]: r for r in _records(ksef_mock, {})}
    assert records["FV/P3"]["thirdSubjects"] == [
        {"identifier": {"type": "Nip", "value": THIRD}, "name": "Drugi nabywca", "role": 4},
        {"identifier": {"type": "InternalId", "value": BRANCH}, "name": None, "role": 2},
        {"identifier": {"type": "None", "value": None}, "name": "Gwarant", "role": 0},  # RolaInna: "Inna rola"
    ]
    assert records["FV/P3"]["authorizedSubject"] == {"nip": AUTHORIZED, "name": "Komornik", "role": 2}
    assert "thirdSubjects" not in records["FV/PLN"] and "authorizedSubject" not in records["FV/PLN"]
    assert [n for n, r in records.items() if r["isSelfInvoicing"]] == ["FV/SELF"]


def test_third_parties_and_the_authorized_subject_find_and_download_the_invoice(
    ksef_mock: KSeFMock, sent: None, backend: KSeFBackend
) -> None:
    # InvoiceQuerySubjectType: "Subject3 | Podmiot 3", "SubjectAuthorized | Podmiot upoważniony".
    # The guide (pobieranie-faktur/przyrostowe-pobieranie-faktur.md): invoices "powinny być
    # pobierane oddzielnie dla każdego typu podmiotu (`Podmiot 1`, `Podmiot 2`, `Podmiot 3`,
    # `Podmiot upoważniony`) występującego w dokumencie". The emulator found nothing for either.
    assert _query(ksef_mock, {}, THIRD, "Subject3") == ["FV/P3"]
    assert _query(ksef_mock, {}, AUTHORIZED, "SubjectAuthorized") == ["FV/P3"]
    assert _query(ksef_mock, {}, THIRD, "SubjectAuthorized") == []
    assert _query(ksef_mock, {}, AUTHORIZED, "Subject3") == []
    assert _query(ksef_mock, {}, THIRD, "Subject2") == _query(ksef_mock, {}, THIRD, "Subject1") == []
    assert _query(ksef_mock, {}, NIP, "Subject3") == []
    # A Podmiot3 named by IDWew ("Identyfikator wewnętrzny z NIP"): the InternalId context of it.
    branch = backend.mint_access_token(context=Context("InternalId", BRANCH))
    assert [r["invoiceNumber"] for r in _records(ksef_mock, {}, subject="Subject3", token=branch)] == ["FV/P3"]
    [record] = _records(ksef_mock, {}, THIRD, "Subject3")
    ksef_number = record["ksefNumber"]
    for nip in (THIRD, AUTHORIZED):
        answer = httpx.get(f"{ksef_mock.base_url}/invoices/ksef/{ksef_number}",
                           headers={"Authorization": f"Bearer {ksef_mock.token(nip)}"})  # fmt: skip
        assert answer.status_code == 200 and b"<P_2>FV/P3</P_2>" in answer.content
    stranger = httpx.get(f"{ksef_mock.base_url}/invoices/ksef/{ksef_number}",
                         headers={"Authorization": f"Bearer {ksef_mock.token(random_nip())}"})  # fmt: skip
    assert stranger.status_code == 400
    assert stranger.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21164


def test_restricting_to_the_hwm_applies_to_permanent_storage_dates_only(
    ksef_mock: KSeFMock, sent: None, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # InvoiceQueryDateRange.restrictToPermanentStorageHwmDate: "Dotyczy wyłącznie zapytań z
    # dateType = PermanentStorage"; the emulator applied it to every date type.
    monkeypatch.setattr(backend.invoices, "hwm", lambda: dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    for date_type, count in (("Invoicing", len(ALL)), ("PermanentStorage", 0)):
        date_range = {"dateType": date_type, "from": since, "restrictToPermanentStorageHwmDate": True}
        query = parse_query({"subjectType": "Subject1", "dateRange": date_range}, dt.datetime.now(dt.UTC))
        assert len(backend.invoices.matching(access, query)) == count


def test_a_third_party_sees_the_details_of_a_collective_identifier(ksef_mock: KSeFMock, sent: None) -> None:
    # POST /collective-identifiers/invoices: details are returned "podmiotowi, który utworzył
    # identyfikator zbiorczy, lub podmiotowi występującemu w roli na danej fakturze"; a Podmiot3 plays
    # a role, and the emulator hid the details from it.
    backend = ksef_mock.backend
    numbers = {r["invoiceNumber"]: r["ksefNumber"] for r in _records(ksef_mock, {})}
    creator = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    identifier = backend.collective.create(creator, [
        {"ksefNumber": numbers["FV/P3"], "description": "rata 1"},
        {"ksefNumber": numbers["FV/PLN"], "description": "rata 2"},
    ])  # fmt: skip
    third = backend.authenticate("Bearer " + backend.mint_access_token(THIRD))
    seen = {item["ksefNumber"]: item for item in backend.collective.invoices_of(third, [identifier.number])}
    assert (seen[numbers["FV/P3"]]["detailsHidden"], seen[numbers["FV/P3"]].get("description")) == (False, "rata 1")
    assert (seen[numbers["FV/PLN"]]["detailsHidden"], seen[numbers["FV/PLN"]].get("description")) == (True, None)


def test_an_open_query_restricted_to_the_hwm_finds_the_invoice_at_it_under_a_frozen_clock() -> None:
    # Found in review: the window of an open-ended query ended at min(now, HWM), and the HWM (the
    # last stored invoice, + 1 ms) may pass a frozen test clock, so the invoice at the HWM was
    # left out and sync() never delivered it. The guide: the window ends at
    # "PermanentStorageHwmDate gdy dateRange.to pominięto" (przyrostowe-pobieranie-faktur.md).
    from ksef_client.mock.server import ThreadedServer
    from ksef_client.testing import random_nip, sample_invoice

    nip = random_nip()
    fixed = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with ThreadedServer(strict=True) as server:
        server.backend.clock = lambda: fixed
        token = server.backend.mint_access_token(nip)
        with KSeF(base_url=server.base_url, access_token=token, rate_limit_scale=0) as ksef:
            with ksef.online_session() as session:
                session.send(sample_invoice("FV/HWM/1", seller_nip=nip))
            ksef.sessions.wait(session.reference_number)
        body = {
            "subjectType": "Subject1",
            "dateRange": {
                "dateType": "PermanentStorage",
                "from": (fixed - dt.timedelta(days=1)).isoformat(),
                "restrictToPermanentStorageHwmDate": True,
            },
        }
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as raw:
            answer = raw.post("/invoices/query/metadata", json=body).json()
        assert len(answer["invoices"]) == 1
        assert server.app.violations == []
