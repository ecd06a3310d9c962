"""The conformance emulator holds real data (``conformance/seed.py``): every listing answers with
items, and every item conforms to the spec under strict mode."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from conformance.seed import seed
from ksef_client.crypto import PublicKeyCertificate, SymmetricKey
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.sending import encryption_for

NIP = "5265877635"


@pytest.fixture(scope="module")
def seeded() -> Any:
    backend = KSeFBackend()
    seed(backend, NIP)
    token = backend.mint_access_token(NIP)
    with (
        ThreadedServer(backend, strict=True) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, server.app


def _since() -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()


def _metadata(subject_type: str, date_type: str) -> dict[str, Any]:
    return {"subjectType": subject_type, "dateRange": {"dateType": date_type, "from": _since()}}


def _created_recently() -> dict[str, str]:
    return {"dateCreatedFrom": _since(), "dateCreatedTo": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()}


LISTINGS = {
    "online sessions": ("GET", "/v2/sessions?sessionType=Online", None, "sessions"),
    "batch sessions": ("GET", "/v2/sessions?sessionType=Batch", None, "sessions"),
    "sold": ("POST", "/v2/invoices/query/metadata", _metadata("Subject1", "Invoicing"), "invoices"),
    "bought": ("POST", "/v2/invoices/query/metadata", _metadata("Subject2", "Issue"), "invoices"),
    "tokens": ("GET", "/v2/tokens", None, "tokens"),
    "person grants": (
        "POST", "/v2/permissions/query/persons/grants", {"queryType": "PermissionsGrantedInCurrentContext"},
        "permissions",
    ),
    "auth sessions": ("GET", "/v2/auth/sessions", None, "items"),
    "collective identifiers": (
        "POST", "/v2/collective-identifiers/query", _created_recently(), "collectiveIdentifiers",
    ),
}  # fmt: skip


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_every_listing_has_items_that_conform(seeded: Any, listing: str) -> None:
    client, app = seeded
    method, path, body, field = LISTINGS[listing]
    answer = client.request(method, path, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()[field], f"{listing}: no items"
    assert app.violations == []


def test_session_invoices_and_an_export_of_every_kind_conform(seeded: Any) -> None:
    client, app = seeded
    for session in client.get("/v2/sessions?sessionType=Online").json()["sessions"]:
        items = client.get(f"/v2/sessions/{session['referenceNumber']}/invoices").json()["invoices"]
        assert items
    key = SymmetricKey.generate()
    body = {"encryption": encryption_for(key, _public_keys(client)), "filters": _metadata("Subject1", "Invoicing")}
    reference = client.post("/v2/invoices/exports", json=body).json()["referenceNumber"]
    package = client.get(f"/v2/invoices/exports/{reference}").json()["package"]
    assert package["invoiceCount"] == 4  # VAT, EUR, advance, correction
    assert app.violations == []


def _public_keys(client: httpx.Client) -> list[PublicKeyCertificate]:
    return [
        PublicKeyCertificate.from_der_b64(
            item["certificate"], item["usage"], dt.datetime.fromisoformat(item["validFrom"]),
            dt.datetime.fromisoformat(item["validTo"]), item.get("publicKeyId"),
        )
        for item in client.get("/v2/security/public-key-certificates").json()
    ]  # fmt: skip
