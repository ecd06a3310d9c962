"""The texts of the invoice download and export answers are the spec's (2.9.0).

The emulator wrote its own: "Eksport w toku" / "Eksport zakończony sukcesem" for the export
statuses, the bare KSeF number as the details of 21164, "Eksport nie został znaleziony." for 21175
and "Przekroczono limit równoczesnych eksportów." for 21182.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from ksef_client.crypto import SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from tests.conftest import NIP
from tests.mock.conftest import session_encryption

UNKNOWN = "5265877635-20260101-0100800D2B5E-E4"  # a well-formed KSeF number nobody has


def _export_body() -> dict[str, Any]:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    filters = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}
    return {"encryption": session_encryption(SymmetricKey.generate()), "filters": filters}


def _error(answer: httpx.Response) -> tuple[int, int, str, list[str]]:
    detail = answer.json()["exception"]["exceptionDetailList"][0]
    return answer.status_code, detail["exceptionCode"], detail["exceptionDescription"], detail["details"]


def test_an_unknown_invoice(raw: httpx.Client) -> None:
    # GET /invoices/ksef/{ksefNumber}: "21164 | Faktura o podanym identyfikatorze nie istnieje. |
    # Faktura o numerze KSeF {ksefNumber} nie została znaleziona."
    assert _error(raw.get(f"/invoices/ksef/{UNKNOWN}")) == (
        400, 21164, "Faktura o podanym identyfikatorze nie istnieje.",
        [f"Faktura o numerze KSeF {UNKNOWN} nie została znaleziona."],
    )  # fmt: skip


def test_the_export_statuses(raw: httpx.Client, backend: KSeFBackend) -> None:
    # InvoiceExportStatusResponse.status: "100 | Eksport faktur w toku", "200 | Eksport faktur
    # zakończony sukcesem".
    backend.transitions.session_reads = 1
    reference_number = raw.post("/invoices/exports", json=_export_body()).json()["referenceNumber"]
    statuses = [raw.get(f"/invoices/exports/{reference_number}").json()["status"] for _ in range(2)]
    assert statuses == [
        {"code": 100, "description": "Eksport faktur w toku"},
        {"code": 200, "description": "Eksport faktur zakończony sukcesem"},
    ]


def test_an_unknown_export(raw: httpx.Client) -> None:
    # GET /invoices/exports/{referenceNumber}: "21175 | Wynik zapytania o podanym identyfikatorze
    # nie istnieje. |" (no details).
    answer = raw.get("/invoices/exports/20260101-EH-0000000000-0000000000-00")
    assert _error(answer) == (400, 21175, "Wynik zapytania o podanym identyfikatorze nie istnieje.", [])


def test_too_many_running_exports(raw: httpx.Client, backend: KSeFBackend) -> None:
    # POST /invoices/exports: "21182 | Osiągnięto limit trwających eksportów. | Dla
    # uwierzytelnionego podmiotu w bieżącym kontekście osiągnięto maksymalny limit {count}
    # równoczesnych eksportów faktur. Spróbuj ponownie później." ("Maksymalnie można uruchomić 10
    # równoczesnych eksportów w zalogowanym kontekście.")
    backend.transitions.session_reads = 100  # they stay in progress
    for _ in range(10):
        assert raw.post("/invoices/exports", json=_export_body()).status_code == 201
    assert _error(raw.post("/invoices/exports", json=_export_body())) == (
        400, 21182, "Osiągnięto limit trwających eksportów.",
        ["Dla uwierzytelnionego podmiotu w bieżącym kontekście osiągnięto maksymalny limit 10 równoczesnych "
         "eksportów faktur. Spróbuj ponownie później."],
    )  # fmt: skip


def test_the_running_exports_are_counted_per_person_in_the_context(backend: KSeFBackend, ksef_mock: KSeFMock) -> None:
    # 21182's detail: "Dla uwierzytelnionego podmiotu w bieżącym kontekście osiągnięto maksymalny
    # limit": the authenticated subject's 10 in the context. The operation's own text, "w
    # zalogowanym kontekście", reads either way; the error names the subject. Another person
    # logged in to the same NIP was refused while a colleague held 10 (review).
    backend.transitions.session_reads = 100  # they stay in progress
    alice, bob = ("Pesel", "85010112345"), ("Pesel", "90020212345")

    def start(subject: tuple[str, str]) -> int:
        token = backend.mint_access_token(NIP, subject=subject)
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.post(f"{ksef_mock.base_url}/invoices/exports", json=_export_body(), headers=headers).status_code

    assert [start(alice) for _ in range(10)] == [201] * 10
    assert (start(alice), start(bob)) == (400, 201)
