"""Collective identifiers (new in API 2.9.0) in the emulator, as raw answers: who sees which
identifier, the listings' order, and the refusals of ``POST /collective-identifiers`` (its 400 table)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import httpx
import pytest

from ksef_client.identifiers import make_ksef_number
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import sample_invoice
from tests.conftest import NIP

BUYER, STRANGER = "1111111111", "7740001454"
MAX_IDENTIFIERS_PER_INVOICE = 132  # "maksymalnie 132 identyfikatorów zbiorczych w ramach jednego kontekstu"


def _issued(backend: KSeFBackend, count: int, nip: str = NIP) -> list[str]:
    """KSeF numbers of ``count`` invoices ``nip`` issued to ``BUYER``."""
    access = backend.authenticate("Bearer " + backend.mint_access_token(nip))
    session = backend.sessions.open(access)
    tag = secrets.token_hex(3)
    invoices = [
        backend.sessions.add_invoice(session, sample_invoice(f"CI/{tag}/{n}", seller_nip=nip, buyer_nip=BUYER))
        for n in range(count)
    ]
    backend.sessions.close(session)
    return [str(i.ksef_number) for i in invoices]


def _client(ksef_mock: KSeFMock, nip: str) -> httpx.Client:
    return httpx.Client(base_url=ksef_mock.base_url, headers={"Authorization": f"Bearer {ksef_mock.token(nip)}"})


def _create(client: httpx.Client, numbers: list[str]) -> httpx.Response:
    return client.post("/collective-identifiers", json={"invoices": [{"ksefNumber": n} for n in numbers]})


def _created(client: httpx.Client, numbers: list[str]) -> str:
    answer = _create(client, numbers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["collectiveIdentifierNumber"])


def _query(client: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    body = {"dateCreatedFrom": (now - dt.timedelta(days=2)).isoformat(),
            "dateCreatedTo": (now + dt.timedelta(days=2)).isoformat(), **filters}  # fmt: skip
    answer = client.post("/collective-identifiers/query", json=body)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["collectiveIdentifiers"])


def _of_invoice(client: httpx.Client, ksef_number: str) -> list[dict[str, Any]]:
    answer = client.get(f"/collective-identifiers/ksef/{ksef_number}")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["collectiveIdentifiers"])


def _refusal(answer: httpx.Response) -> tuple[int, str, list[str]]:
    assert answer.status_code == 400, answer.text
    [error] = answer.json()["exception"]["exceptionDetailList"]
    return error["exceptionCode"], error["exceptionDescription"], error["details"]


def test_a_context_sees_the_identifiers_made_in_it_and_as_a_nip_those_of_its_own_invoices(
    ksef_mock: KSeFMock,
) -> None:
    # POST /collective-identifiers/query: "Zwraca listę identyfikatorów zbiorczych wygenerowanych w
    # kontekście. Dla kontekstu typu NIP zwracane są również identyfikatory zbiorcze, dla których
    # podmiot występuje w roli Podmiotu 1 na fakturze." Every context saw every identifier.
    numbers = _issued(ksef_mock.backend, 2)
    with _client(ksef_mock, NIP) as seller, _client(ksef_mock, BUYER) as buyer, _client(ksef_mock, STRANGER) as other:
        made_by_buyer = _created(buyer, numbers)
        made_by_seller = _created(seller, numbers)
        assert {(i["collectiveIdentifierNumber"], i["createdInCurrentContext"]) for i in _query(seller)} == {
            (made_by_buyer, False), (made_by_seller, True)
        }  # fmt: skip
        assert [(i["collectiveIdentifierNumber"], i["createdInCurrentContext"]) for i in _query(buyer)] == [
            (made_by_buyer, True)
        ]  # the buyer is Podmiot 2: it does not see the seller's
        assert _query(other) == []
        assert {i["collectiveIdentifierNumber"] for i in _of_invoice(seller, numbers[0])} == {
            made_by_buyer, made_by_seller
        }  # fmt: skip
        assert [i["collectiveIdentifierNumber"] for i in _of_invoice(buyer, numbers[0])] == [made_by_buyer]
        assert _of_invoice(other, numbers[0]) == []


def test_the_query_filters_on_invoice_count_and_the_creating_context(ksef_mock: KSeFMock) -> None:
    # CollectiveIdentifiersQueryRequest: invoiceCountFrom, invoiceCountTo, createdInCurrentContext
    # (the emulator read only the dates and the number).
    numbers = _issued(ksef_mock.backend, 3)
    with _client(ksef_mock, NIP) as seller, _client(ksef_mock, BUYER) as buyer:
        two, three = _created(seller, numbers[:2]), _created(seller, numbers)
        by_buyer = _created(buyer, numbers[1:])
        assert [i["collectiveIdentifierNumber"] for i in _query(seller, invoiceCountFrom=3)] == [three]
        assert {i["collectiveIdentifierNumber"] for i in _query(seller, invoiceCountTo=2)} == {two, by_buyer}
        assert [i["collectiveIdentifierNumber"] for i in _query(seller, createdInCurrentContext=False)] == [by_buyer]
        assert {i["collectiveIdentifierNumber"] for i in _query(seller, createdInCurrentContext=True)} == {two, three}


def test_listings_come_newest_first(ksef_mock: KSeFMock, monkeypatch: pytest.MonkeyPatch) -> None:
    # "Sortowanie: dateCreated (Desc), collectiveIdentifierNumber (Desc)" (the spec, the query and
    # GET /collective-identifiers/ksef/{ksefNumber}); the emulator sorted by number, ascending.
    backend = ksef_mock.backend
    numbers = _issued(backend, 2)
    start = backend.clock()
    made = []
    with _client(ksef_mock, NIP) as seller:
        for minutes in range(12):
            monkeypatch.setattr(backend, "clock", lambda minutes=minutes: start + dt.timedelta(minutes=minutes))
            made.append(_created(seller, numbers))
        newest_first = made[::-1]
        assert [i["collectiveIdentifierNumber"] for i in _query(seller)] == newest_first[:10]
        first = seller.get(f"/collective-identifiers/ksef/{numbers[0]}").json()
        assert [i["collectiveIdentifierNumber"] for i in first["collectiveIdentifiers"]] == newest_first[:10]
        rest = seller.get(f"/collective-identifiers/ksef/{numbers[0]}",
                          headers={"x-continuation-token": first["continuationToken"]}).json()  # fmt: skip
        assert [i["collectiveIdentifierNumber"] for i in rest["collectiveIdentifiers"]] == newest_first[10:]


def test_the_refusals_of_the_specs_400_table(ksef_mock: KSeFMock) -> None:
    # POST /collective-identifiers, 400: 71001, 71004, 71005 with their texts (the emulator numbered
    # identifiers of invoices that did not exist, or named twice, and gave 21405 for two sellers).
    numbers = _issued(ksef_mock.backend, 2)
    unknown = make_ksef_number(NIP, "20260101", "0123456789AB")
    foreign = _issued(ksef_mock.backend, 1, nip=BUYER)[0]
    with _client(ksef_mock, NIP) as seller:
        assert _refusal(_create(seller, [numbers[0], unknown])) == (
            71001, "Faktura o podanym identyfikatorze nie istnieje.",
            [f"Faktura o numerze KSeF {unknown} nie została znaleziona."],
        )  # fmt: skip
        assert _refusal(_create(seller, [numbers[0], numbers[1], numbers[0]])) == (
            71005, "Powtórzony numer KSeF w żądaniu.", [f"Powtórzony numer KSeF {numbers[0]}."]
        )  # fmt: skip
        assert _refusal(_create(seller, [numbers[0], foreign])) == (
            71004, "Faktury mają różnych sprzedawców.", [f"Faktura o numerze KSeF {foreign} ma innego sprzedawcę."]
        )  # fmt: skip
        body = {"invoices": [{"ksefNumber": n} for n in (*numbers, unknown)]}
        problem = seller.post("/collective-identifiers", json=body, headers={"X-Error-Format": "problem-details"})
        assert problem.status_code == 400 and problem.json()["errors"][0]["code"] == 71001


def test_an_invoice_is_in_at_most_132_identifiers_of_one_context(ksef_mock: KSeFMock) -> None:
    # CollectiveIdentifierInvoice.ksefNumber: "Jedna faktura może zostać przypisana do maksymalnie 132
    # identyfikatorów zbiorczych w ramach jednego kontekstu"; 400 / 71002.
    backend = ksef_mock.backend
    numbers = _issued(backend, 3)
    seller = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    for _ in range(MAX_IDENTIFIERS_PER_INVOICE - 1):
        backend.collective.create(seller, [{"ksefNumber": n} for n in numbers[:2]])
    with _client(ksef_mock, NIP) as client, _client(ksef_mock, BUYER) as buyer:
        _created(client, [numbers[0], numbers[2]])  # the 132nd of numbers[0]
        full = "jest już przypisana do maksymalnej liczby Identyfikatorów Zbiorczych."
        assert _refusal(_create(client, [numbers[2], numbers[0]])) == (
            71002, f"Faktura {full}", [f"Faktura o numerze KSeF {numbers[0]} {full}"]
        )  # fmt: skip
        _created(buyer, numbers[:2])  # another context has 132 of its own
