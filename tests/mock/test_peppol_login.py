"""A Peppol service provider's login to its ``PeppolId`` context (review s11, L5).

uwierzytelnianie.md lists among the certificates a XAdES login may be signed with "Certyfikat dostawcy
usług Peppol - zawierający identyfikator dostawcy"; api-changelog.md (2.x): "Wprowadzono nowy typ
kontekstu uwierzytelniania: PeppolId, umożliwiający pracę w kontekście dostawcy usług Peppol" and
"przy pierwszym uwierzytelnieniu dostawcy usług Peppol (z użyciem dedykowanego certyfikatu) następuje
jego automatyczna rejestracja w systemie". The emulator refused every such login (415: no owner, no
grant can open a PeppolId context) and registered no provider.
"""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from ksef_client import KSeF
from ksef_client.errors import AuthenticationFailedError
from ksef_client.mock import KSeFBackend, peppol_provider_certificate
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import self_signed_certificate
from tests.conftest import NIP
from tests.helpers import FakeTime, certificate_named, pef_invoice

PEPPOL_ID = "PPL123456"
PERSON_NAMED_AS_PROVIDER = x509.Name([
    x509.NameAttribute(NameOID.GIVEN_NAME, "Jan"), x509.NameAttribute(NameOID.SURNAME, "Kowalski"),
    x509.NameAttribute(NameOID.SERIAL_NUMBER, f"TINPL-{NIP}"), x509.NameAttribute(NameOID.COMMON_NAME, PEPPOL_ID),
])  # fmt: skip


def test_a_provider_logs_in_with_its_certificate_and_is_registered_once(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    provider = peppol_provider_certificate(PEPPOL_ID, "Dostawca Peppol sp. z o.o.")
    for _ in range(2):
        with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as client:
            tokens = client.auth.login_with_certificate(provider, context=("PeppolId", PEPPOL_ID))
            access = backend.authenticate(f"Bearer {client.access_token}")
            [listed] = [s for s in client.auth.sessions() if s.reference_number == tokens.reference_number]
            registered = list(client.peppol.providers())
        assert access.context.type == "PeppolId" and access.context.value == PEPPOL_ID
        assert access.subject == ("PeppolId", PEPPOL_ID)
        # The spec names PefInvoiceWrite among the permissions of the online session's operations.
        assert access.permissions == {"PefInvoiceWrite"}
        # AuthenticationMethod: "PeppolSignature | Podpis dostawcy usług Peppol."
        assert listed.authentication_method_info.display_name == "Podpis dostawcy usług Peppol"
        assert [(p.id, p.name) for p in registered] == [(PEPPOL_ID, "Dostawca Peppol sp. z o.o.")]
    # The provider's rights come from its certificate: a refresh keeps them (no grant to lose).
    refreshed = httpx.post(
        f"{ksef_server.base_url}/auth/token/refresh", headers={"Authorization": f"Bearer {tokens.refresh_token}"}
    )
    assert refreshed.status_code == 200, refreshed.text
    again = backend.authenticate(f"Bearer {refreshed.json()['accessToken']['token']}")
    assert again.permissions == {"PefInvoiceWrite"}


@pytest.mark.parametrize(
    "credentials",
    [
        self_signed_certificate(NIP, kind="seal"),  # a company's seal, not the provider's
        peppol_provider_certificate("PPL654321"),  # another provider's
        certificate_named(PERSON_NAMED_AS_PROVIDER),  # a person's certificate, whatever its commonName
    ],
    ids=["company-seal", "other-provider", "person"],
)
def test_only_the_providers_own_certificate_opens_its_context(
    ksef_server: ThreadedServer, backend: KSeFBackend, credentials: object
) -> None:
    with (
        KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as client,
        pytest.raises(AuthenticationFailedError) as refused,
    ):
        client.auth.login_with_certificate(credentials, context=("PeppolId", PEPPOL_ID))  # type: ignore[arg-type]
    assert refused.value.code == 415
    assert backend.testdata.peppol_providers() == []


def test_a_provider_sends_a_pef_invoice_for_a_seller_that_authorized_it(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    """The Ministry's flow (its clients' PEF tests): the provider registers by logging in, the seller
    grants it ``PefInvoicing`` (EntityAuthorizationPermissionsSubjectIdentifier "Nip | PeppolId"),
    and the provider sends the seller's PEF invoice in an online session of its own context."""
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as seller:
        seller.permissions.grant_authorization(
            subject_identifier=("PeppolId", PEPPOL_ID), permission="PefInvoicing",
            description="faktury PEF przez dostawcę", subject_details="Dostawca Peppol sp. z o.o.",
        )  # fmt: skip
    provider = peppol_provider_certificate(PEPPOL_ID, "Dostawca Peppol sp. z o.o.")
    options = {"sleep": fake_time.sleep, "clock": fake_time.clock, "rate_limit_scale": 0}
    with KSeF(base_url=ksef_server.base_url, **options) as client:  # type: ignore[arg-type]
        client.auth.login_with_certificate(provider, context=("PeppolId", PEPPOL_ID))
        with client.online_session("PEF(3)") as session:
            session.send(pef_invoice("PEF/1", NIP))
            session.send(pef_invoice("PEF/2", "1111111111"))  # not authorized
        client.sessions.wait(session.reference_number)
        outcomes = session.outcomes()
    assert [(o.kind, o.code) for o in outcomes] == [("accepted", 200), ("rejected", 410)]


def test_providers_are_listed_newest_first(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /peppol/query: "Sortowanie: dateCreated (Desc), id (Asc)"; ``dateCreated`` "Data
    rejestracji dostawcy usług Peppol w systemie", the first login's."""
    start = backend.clock()
    now = [start]
    monkeypatch.setattr(backend, "clock", lambda: now[0])
    for minutes, peppol_id in enumerate(("PPL000002", "PPL000001", "PDE000003")):
        now[0] = start + dt.timedelta(minutes=minutes // 2)  # the first two in the same minute
        with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as client:
            client.auth.login_with_certificate(peppol_provider_certificate(peppol_id), context=("PeppolId", peppol_id))
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as client:
        listed = list(client.peppol.providers())
    assert [p.id for p in listed] == ["PDE000003", "PPL000001", "PPL000002"]
    assert listed[0].date_created == start + dt.timedelta(minutes=1)
