"""Permissions, limits and Peppol in the emulator, driven through the generated client."""

from __future__ import annotations

from typing import Any

import pytest

from ksef_client import KSeF
from ksef_client._core import parsed
from ksef_client._generated.api.limits import get_context_limits, get_rate_limits
from ksef_client._generated.api.peppol import query_peppol_providers
from ksef_client._generated.api.permissions import (
    get_operation_status,
    grant_authorization_permissions,
    grant_person_permissions,
    query_authorization_permissions,
    query_person_permissions,
    query_personal_permissions,
    revoke_common_permission,
)
from ksef_client._generated.models import (
    EffectiveApiRateLimits,
    EffectiveContextLimits,
    EntityAuthorizationPermissionsGrantRequest,
    EntityAuthorizationPermissionsQueryRequest,
    PermissionsOperationResponse,
    PermissionsOperationStatusResponse,
    PersonalPermissionsQueryRequest,
    PersonPermissionsGrantRequest,
    PersonPermissionsQueryRequest,
    QueryEntityAuthorizationPermissionsResponse,
    QueryPeppolProvidersResponse,
    QueryPersonalPermissionsResponse,
    QueryPersonPermissionsResponse,
)
from ksef_client.errors import BadRequestError, PermissionDeniedError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import self_signed_certificate
from tests.conftest import NIP


def _grant_body(nip: str, permissions: list[str]) -> PersonPermissionsGrantRequest:
    return PersonPermissionsGrantRequest.from_dict(
        {"subjectIdentifier": {"type": "Nip", "value": nip}, "permissions": permissions,
         "description": "accountant", "subjectDetails": {"subjectDetailsType": "PersonByIdentifier",
                                                         "personById": {"firstName": "Jan", "lastName": "Nowak"}}}
    )  # fmt: skip


def _grant(ksef: KSeF, nip: str, permissions: list[str]) -> str:
    response = grant_person_permissions.sync_detailed(client=ksef.raw, body=_grant_body(nip, permissions))
    return parsed(response, PermissionsOperationResponse).reference_number


def test_person_grant_is_listed_opens_a_login_and_can_be_revoked(ksef: KSeF, backend: KSeFBackend,
                                                                 ksef_server: ThreadedServer) -> None:  # fmt: skip
    accountant = self_signed_certificate()
    ref = _grant(ksef, accountant.nip, ["InvoiceRead", "InvoiceWrite"])
    status = parsed(get_operation_status.sync_detailed(ref, client=ksef.raw), PermissionsOperationStatusResponse)
    assert status.status.code == 200
    query = PersonPermissionsQueryRequest.from_dict({"queryType": "PermissionsGrantedInCurrentContext"})
    page = parsed(query_person_permissions.sync_detailed(client=ksef.raw, body=query), QueryPersonPermissionsResponse)
    assert sorted(str(p.permission_scope) for p in page.permissions) == ["InvoiceRead", "InvoiceWrite"]
    assert {p.authorized_identifier.value for p in page.permissions} == {accountant.nip}

    with KSeF(base_url=ksef_server.base_url) as representative:
        representative.auth.login_with_certificate(accountant, context_nip=NIP)
        with representative.online_session():  # InvoiceWrite granted
            pass
        mine = parsed(
            query_personal_permissions.sync_detailed(client=representative.raw, body=PersonalPermissionsQueryRequest()),
            QueryPersonalPermissionsResponse,
        )
        assert len(mine.permissions) == 2
        assert not mine.owner_permissions  # a representative, not the owner of the context

    for permission in page.permissions:
        revoke_common_permission.sync_detailed(permission.id, client=ksef.raw)
    with KSeF(base_url=ksef_server.base_url) as representative, pytest.raises(Exception, match="415"):
        representative.auth.login_with_certificate(accountant, context_nip=NIP)


def test_authorization_grants_and_offset_pages(ksef: KSeF, backend: KSeFBackend) -> None:
    for index in range(12):
        body = EntityAuthorizationPermissionsGrantRequest.from_dict(
            {"subjectIdentifier": {"type": "Nip", "value": "1111111111"}, "permission": "SelfInvoicing",
             "description": f"self-invoicing {index}",
             "subjectDetails": {"fullName": "Firma"}}
        )  # fmt: skip
        grant_authorization_permissions.sync_detailed(client=ksef.raw, body=body)
    query = EntityAuthorizationPermissionsQueryRequest.from_dict({"queryType": "Granted"})
    grants = list(ksef.paginate(query_authorization_permissions, "authorization_grants", page_size=10, body=query))
    assert len(grants) == 12 and {str(g.authorization_scope) for g in grants} == {"SelfInvoicing"}
    response = query_authorization_permissions.sync_detailed(client=ksef.raw, body=query, page_size=10)
    assert parsed(response, QueryEntityAuthorizationPermissionsResponse).has_more is True


def test_bad_grant_bodies_are_21405(ksef: KSeF, backend: KSeFBackend) -> None:
    with pytest.raises(BadRequestError) as caught:
        ksef._http.post("/permissions/persons/grants", json={"permissions": ["InvoiceRead"]})
    assert caught.value.codes == [21405]


def test_grants_need_credentials_manage(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    token = backend.mint_access_token(NIP, permissions=["InvoiceRead"])
    with KSeF(base_url=ksef_server.base_url, access_token=token) as ksef, pytest.raises(PermissionDeniedError):
        _grant(ksef, "1111111111", ["InvoiceRead"])


def test_limits_and_peppol(ksef: KSeF, backend: KSeFBackend) -> None:
    limits = parsed(get_context_limits.sync_detailed(client=ksef.raw), EffectiveContextLimits)
    assert limits.online_session.max_invoices == 10_000
    rates = parsed(get_rate_limits.sync_detailed(client=ksef.raw), EffectiveApiRateLimits)
    assert (rates.invoice_metadata.per_second, rates.invoice_metadata.per_hour) == (-1, -1)  # throttling off
    backend.testdata.state.peppol_providers.append(
        {"id": "PPL000001", "name": "Provider", "dateCreated": "2026-01-01T00:00:00Z"}
    )
    providers: Any = parsed(query_peppol_providers.sync_detailed(client=ksef.raw), QueryPeppolProvidersResponse)
    assert [p.id for p in providers.peppol_providers] == ["PPL000001"]


def test_the_owner_of_the_context_is_told_its_owner_permissions(ksef: KSeF) -> None:
    body = PersonalPermissionsQueryRequest()
    mine = parsed(
        query_personal_permissions.sync_detailed(client=ksef.raw, body=body), QueryPersonalPermissionsResponse
    )
    owner = {str(scope) for scope in mine.owner_permissions or []}
    assert {"InvoiceWrite", "InvoiceRead", "CredentialsManage", "CollectiveIdentifierManage"} <= owner
