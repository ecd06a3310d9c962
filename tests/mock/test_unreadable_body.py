"""An unreadable JSON body is KSeF's 21001 ("Nieczytelna treść.") where the spec lists that code.

The spec 2.9.0 gives 21001 its own row in the 400 table of 37 operations, apart from 21405:
"21001 | Nieczytelna treść. | {szczegółowy opis błędu}" and "21405 | Błąd walidacji danych
wejściowych. | {treść błędu z walidatora}" (POST /invoices/query/metadata, POST /invoices/exports,
...). The emulator answered every unparsable body with 21405; the operations whose table has no
21001 (the test-data ones) keep it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.mock.state.auth import ALL_PERMISSIONS
from ksef_client.spec_version import pinned_spec_path
from tests.conftest import NIP

UNREADABLE = b'{"subjectType": "Subject1", '


def _json_operations() -> list[tuple[str, str, bool]]:
    """(method, path, whether its 400 table lists 21001) of each operation taking a JSON body."""
    spec: dict[str, Any] = json.loads(pinned_spec_path().read_text(encoding="utf-8"))
    found = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            body = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" in body:
                table = operation["responses"].get("400", {}).get("description", "")
                found.append((method.upper(), path, "21001" in table))
    return found


OPERATIONS = _json_operations()


def _concrete(path: str) -> str:
    # Any value reaches the operation: the body is read before the parameters are checked.
    return re.sub(r"\{[^}]+\}", "20260101-SO-0000000000-0000000000-00", path)


@pytest.fixture
def client(ksef_mock: KSeFMock) -> Iterator[httpx.Client]:
    """A client with every permission, ``VatUeManage`` too (POST /permissions/eu-entities/grants)."""
    token = ksef_mock.token(NIP, permissions=[*ALL_PERMISSIONS, "VatUeManage"])
    with httpx.Client(base_url=ksef_mock.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _send(client: httpx.Client, method: str, path: str, body: bytes) -> httpx.Response:
    return client.request(method, _concrete(path), content=body, headers={"content-type": "application/json"})


def _error(answer: httpx.Response) -> tuple[int, int, str, list[str]]:
    detail = answer.json()["exception"]["exceptionDetailList"][0]
    return answer.status_code, detail["exceptionCode"], detail["exceptionDescription"], detail["details"]


def test_the_spec_lists_21001_on_the_json_operations_of_invoice_queries() -> None:
    listed = {(method, path) for method, path, has in OPERATIONS if has}
    assert {("POST", "/invoices/query/metadata"), ("POST", "/invoices/exports")} <= listed
    assert len(listed) == 28  # 37 operations list it; 9 take no JSON body (8 GETs, the XAdES document)


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, has in OPERATIONS if has])
def test_an_unreadable_body_is_21001_where_the_spec_lists_it(client: httpx.Client, method: str, path: str) -> None:
    status, code, description, details = _error(_send(client, method, path, UNREADABLE))
    assert (status, code, description) == (400, 21001, "Nieczytelna treść.")
    assert len(details) == 1 and details[0].startswith("Treść żądania nie jest poprawnym JSON")


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, has in OPERATIONS if not has])
def test_an_unreadable_body_stays_21405_where_the_spec_has_no_21001(
    client: httpx.Client, method: str, path: str
) -> None:
    assert _error(_send(client, method, path, UNREADABLE))[:2] == (400, 21405)


def test_a_body_that_is_no_utf8_is_unreadable_too(client: httpx.Client) -> None:
    answer = _send(client, "POST", "/invoices/query/metadata", b'{"subjectType": "\xff"}')
    assert _error(answer)[:2] == (400, 21001)
