"""What an ``InternalId`` (branch) context sees of its company's invoices.

KSeF shows a branch only the invoices that name its ``IDWew`` in ``Podmiot3``, queried as
``Subject3``:

- CIRFMF/ksef-client-csharp#139: "Pracując w kontekście tego oddziału (Identyfikatora
  wewnętrznego) gdy odbieram faktury ustawiam filtr InvoiceQueryFilters.SubjectType =
  InvoiceSubjectType.Subject3 i oddział widzi tylko "swoje" faktury."
- CIRFMF/ksef-api#683: "Jeśli zaloguję się w kontekście IdWew to w zasadzie filtrowanie faktur po
  Podmiot1 czy Podmiot2 nigdy nie da mi odpowiedzi".
- CIRFMF/ksef-api#676: an invoice sent from a branch session with the company's NIP in
  ``Podmiot1`` and no ``IDWew`` of the branch is "widoczna tylko po zalogowaniu na główną firmę".

The emulator compared the parent NIP (``Context.nip``) for every subject type, so a branch got
every sale and purchase of the head office and could download each one.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.crypto import SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.mock.state.core import Context
from ksef_client.testing import random_nip, sample_invoice
from tests.conftest import NIP
from tests.mock.conftest import session_encryption

BUYER = "1111111111"
STRANGER = random_nip()
BRANCH = f"{NIP}-00001"
OTHER_BRANCH = f"{NIP}-00002"
NAMES_BRANCH = (
    f"</Podmiot2><Podmiot3><DaneIdentyfikacyjne><IDWew>{BRANCH}</IDWew></DaneIdentyfikacyjne><Rola>2</Rola></Podmiot3>"
).encode()
# PodmiotUpowazniony naming the company's NIP (a branch is not its NIP).
AUTHORIZED = (
    f"</Podmiot2><PodmiotUpowazniony><DaneIdentyfikacyjne><NIP>{NIP}</NIP><Nazwa>Biuro</Nazwa>"
    "</DaneIdentyfikacyjne><Adres><KodKraju>PL</KodKraju><AdresL1>ul. Prosta 1</AdresL1></Adres>"
    "<RolaPU>2</RolaPU></PodmiotUpowazniony>"
).encode()


@pytest.fixture
def numbers(backend: KSeFBackend) -> Iterator[dict[str, str]]:
    """The head office's own sale (HQ/1), a sale naming the branch in Podmiot3 (BR/1), a
    purchase of the company (BUY/1), one it is the authorized subject of (AUT/1): KSeF numbers."""
    head_office = backend.sessions.open(backend.authenticate("Bearer " + backend.mint_access_token(NIP)))
    sent = [
        backend.sessions.add_invoice(head_office, sample_invoice("HQ/1")),
        backend.sessions.add_invoice(head_office, sample_invoice("BR/1").replace(b"</Podmiot2>", NAMES_BRANCH)),
    ]
    backend.sessions.close(head_office)
    supplier = backend.sessions.open(backend.authenticate("Bearer " + backend.mint_access_token(BUYER)))
    sent += [
        backend.sessions.add_invoice(supplier, sample_invoice("BUY/1", seller_nip=BUYER, buyer_nip=NIP)),
        backend.sessions.add_invoice(
            supplier, sample_invoice("AUT/1", seller_nip=BUYER, buyer_nip=STRANGER).replace(b"</Podmiot2>", AUTHORIZED)
        ),
    ]
    backend.sessions.close(supplier)
    assert all(invoice.accepted for invoice in sent), [invoice.status for invoice in sent]
    yield {str(invoice.invoice_number): str(invoice.ksef_number) for invoice in sent}


def _client(ksef_mock: KSeFMock, context: Context) -> httpx.Client:
    token = ksef_mock.backend.mint_access_token(context=context)
    return httpx.Client(base_url=ksef_mock.base_url, headers={"Authorization": f"Bearer {token}"})


def _found(client: httpx.Client, subject: str) -> list[str]:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    body = {"subjectType": subject, "dateRange": {"dateType": "Invoicing", "from": since}}
    answer = client.post("/invoices/query/metadata", json=body)
    assert answer.status_code == 200, answer.text
    return sorted(record["invoiceNumber"] for record in answer.json()["invoices"])


@pytest.mark.parametrize(
    ("subject", "head_office", "branch"),
    [
        ("Subject1", ["BR/1", "HQ/1"], []),
        ("Subject2", ["BUY/1"], []),
        ("Subject3", [], ["BR/1"]),
        ("SubjectAuthorized", ["AUT/1"], []),
    ],
)
def test_a_branch_sees_only_the_invoices_naming_its_idwew_as_subject3(
    ksef_mock: KSeFMock, numbers: dict[str, str], subject: str, head_office: list[str], branch: list[str]
) -> None:
    with _client(ksef_mock, Context("Nip", NIP)) as client:
        assert _found(client, subject) == head_office
    with _client(ksef_mock, Context("InternalId", BRANCH)) as client:
        assert _found(client, subject) == branch
    with _client(ksef_mock, Context("InternalId", OTHER_BRANCH)) as client:  # another branch: nothing
        assert _found(client, subject) == []


def test_a_branch_downloads_only_the_invoices_naming_it(ksef_mock: KSeFMock, numbers: dict[str, str]) -> None:
    # GET /invoices/ksef/{n}: "21164 | Faktura o podanym identyfikatorze nie istnieje." (the spec),
    # as for any invoice the context has no role on.
    with _client(ksef_mock, Context("InternalId", BRANCH)) as branch:
        assert branch.get(f"/invoices/ksef/{numbers['BR/1']}").status_code == 200
        for number in ("HQ/1", "BUY/1", "AUT/1"):
            answer = branch.get(f"/invoices/ksef/{numbers[number]}")
            assert answer.status_code == 400, number
            assert answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21164


def test_a_branch_exports_only_the_invoices_naming_it(ksef_mock: KSeFMock, numbers: dict[str, str]) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    token = ksef_mock.backend.mint_access_token(context=Context("InternalId", BRANCH))
    with KSeF(base_url=ksef_mock.base_url, access_token=token, sleep=lambda _: None) as ksef:
        for subject, expected in (("Subject1", []), ("Subject2", []), ("Subject3", ["BR/1"])):
            with tempfile.TemporaryDirectory() as folder:
                result = ksef.invoices.export(folder, subject, date_from=since, date_type="Invoicing")
            assert sorted(record["invoiceNumber"] for record in result.metadata) == expected, subject


def test_sending_from_a_branch_session_keeps_working(backend: KSeFBackend) -> None:
    # A branch issues invoices under its company's NIP (CIRFMF/ksef-api#676: "Podmiot1
    # (Sprzedawca) zawiera główny NIP firmy"): only what it sees changed, not what it may send.
    branch = backend.sessions.open(
        backend.authenticate("Bearer " + backend.mint_access_token(context=Context("InternalId", BRANCH)))
    )
    invoice = backend.sessions.add_invoice(branch, sample_invoice("BR/2").replace(b"</Podmiot2>", NAMES_BRANCH))
    backend.sessions.close(branch)
    assert invoice.accepted, invoice.status


def test_an_export_is_seen_only_from_the_context_that_started_it(ksef_mock: KSeFMock, numbers: dict[str, str]) -> None:
    # The spec, POST /invoices/exports: "Maksymalnie można uruchomić 10 równoczesnych eksportów w
    # zalogowanym kontekście"; an export is the logged-in context's, not its NIP's: the emulator
    # let a branch poll its head office's export (and download the company's invoices from it).
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    filters = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}
    key = SymmetricKey.generate()
    body = {"encryption": session_encryption(key), "filters": filters}
    with (
        _client(ksef_mock, Context("Nip", NIP)) as head_office,
        _client(ksef_mock, Context("InternalId", BRANCH)) as branch,
    ):
        for owner, other in ((head_office, branch), (branch, head_office)):
            started = owner.post("/invoices/exports", json=body)
            assert started.status_code == 201, started.text
            path = f"/invoices/exports/{started.json()['referenceNumber']}"
            assert owner.get(path).status_code == 200
            refused = other.get(path)
            assert refused.status_code == 400
            assert refused.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21175
