"""``POST /invoices/query/metadata`` refuses a page that starts at or past the 10,000-record window.

The spec: "Limit techniczny: ≤ 10 000 rekordów na zestaw filtrów, po jego osiągnięciu isTruncated =
true i należy ponownie ustawić dateRange [...] oraz wyzerować pageOffset." KSeF answers a later page
with 21405: CIRFMF/ksef-api#165 records it for ``pageSize=250&pageOffset=40``, and
marcinbojko/ksef-gui#36 shows it to a client that paged on ``hasMore`` alone: "21405: Błąd
walidacji danych wejściowych. - You cannot retrieve invoices starting from number 10 000 or
higher. Please narrow your filters." The emulator answered an empty 200 ("hasMore": false), so a
client that ignored ``isTruncated`` passed against it, having lost every record past the cap.
"""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from ksef_client.mock import KSeFBackend
from ksef_client.testing import sample_invoice
from tests.conftest import NIP


def _page(raw: httpx.Client, offset: int, size: int) -> httpx.Response:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}
    return raw.post("/invoices/query/metadata", json=body, params={"pageOffset": offset, "pageSize": size})


def _refusal(answer: httpx.Response) -> tuple[int, int, list[str]]:
    detail = answer.json()["exception"]["exceptionDetailList"][0]
    return answer.status_code, detail["exceptionCode"], detail["details"]


@pytest.mark.parametrize(("offset", "size"), [(40, 250), (1000, 10), (41, 250), (400, 25)])
def test_a_page_from_record_10000_on_is_refused(raw: httpx.Client, offset: int, size: int) -> None:
    message = "You cannot retrieve invoices starting from number 10 000 or higher. Please narrow your filters."
    assert _refusal(_page(raw, offset, size)) == (400, 21405, [message])


@pytest.mark.parametrize(("offset", "size"), [(39, 250), (999, 10)])
def test_the_last_page_below_record_10000_is_answered(raw: httpx.Client, offset: int, size: int) -> None:
    assert _page(raw, offset, size).status_code == 200


def test_a_client_paging_on_has_more_alone_hits_the_refusal(raw: httpx.Client, backend: KSeFBackend) -> None:
    # The cap scaled down (the emulator's knob): 15 records, a window of 10.
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access)
    for i in range(15):
        assert backend.sessions.add_invoice(session, sample_invoice(f"CAP/{i}")).accepted
    backend.sessions.close(session)
    backend.metadata_limit = 10
    first = _page(raw, 0, 10).json()
    assert (len(first["invoices"]), first["hasMore"], first["isTruncated"]) == (10, True, True)
    message = "You cannot retrieve invoices starting from number 10 or higher. Please narrow your filters."
    assert _refusal(_page(raw, 1, 10)) == (400, 21405, [message])
