"""A revoke (``DELETE``) whose answer was lost is repeated by the client; the repeat finds nothing
left to revoke (review of tokens and permissions, finding 5).

Every revoke the SDK sends is a ``DELETE`` the transport repeats after a 5xx or a connection broken
after sending. KSeF's revoke is not repeatable in its answer: "Każde nadanie lub odebranie
uprawnienia jest realizowane jako asynchroniczna operacja" (uprawnienia.md), so the first
``DELETE /permissions/common/grants/{id}`` revokes and the repeat finds no such permission; and
``DELETE /tokens/{referenceNumber}`` reaches "dowolny **aktywny** token" (the spec), its answer for
a revoked one undocumented. The emulator's ``DROP_AFTER`` fault is such an attempt: handled, its
answer lost.
"""

from __future__ import annotations

from typing import Any

import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._generated.api.permissions import revoke_common_permission
from ksef_client.errors import BadRequestError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from tests.conftest import NIP
from tests.helpers import FakeTime

REVOKE_TOKEN = "tokens.revoke_token"
PESEL = "90010112343"


class TestTokenRevoke:
    def test_a_revoke_done_by_an_attempt_whose_answer_was_lost_is_success(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        backend.transitions.token_reads = 0
        created = ksef.tokens.create(["InvoiceRead"], "token to revoke")
        backend.faults.add(DROP_AFTER, operation=REVOKE_TOKEN)  # revoked, the 204 lost
        # The repeat refused: KSeF revokes only "aktywny" tokens and names no code for the rest
        # (an injected 400 stands for whatever it answers).
        backend.faults.add(400, operation=REVOKE_TOKEN)
        ksef.tokens.revoke(created.reference_number)
        assert ksef.tokens.get(created.reference_number).status == "Revoked"

    def test_a_refused_repeat_is_raised_when_the_token_was_not_revoked(self, ksef: KSeF, backend: KSeFBackend) -> None:
        backend.transitions.token_reads = 0
        created = ksef.tokens.create(["InvoiceRead"], "token left active")
        backend.faults.add(502, operation=REVOKE_TOKEN)  # a gateway's 502: maybe taken; here not
        backend.faults.add(400, operation=REVOKE_TOKEN)
        with pytest.raises(BadRequestError) as caught:
            ksef.tokens.revoke(created.reference_number)
        assert caught.value.uncertain_attempts == 1
        assert "an earlier attempt may have been carried out" in " ".join(caught.value.__notes__)
        assert ksef.tokens.get(created.reference_number).status == "Active"

    def test_a_refusal_of_the_only_attempt_is_raised_without_a_status_read(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        backend.transitions.token_reads = 0
        created = ksef.tokens.create(["InvoiceRead"], "token refused")
        backend.faults.add(400, operation=REVOKE_TOKEN)
        sent = ksef.send_state.requests_sent
        with pytest.raises(BadRequestError) as caught:
            ksef.tokens.revoke(created.reference_number)
        assert caught.value.uncertain_attempts == 0 and not getattr(caught.value, "__notes__", [])
        assert ksef.send_state.requests_sent == sent + 1


def _grant_and_find(ksef: KSeF) -> str:
    http = ksef.raw.get_httpx_client()
    http.post("/permissions/persons/grants", json={
        "subjectIdentifier": {"type": "Pesel", "value": PESEL},
        "permissions": ["InvoiceRead"], "description": "grant to revoke",
        "subjectDetails": {"subjectDetailsType": "PersonByIdentifier",
                           "personById": {"firstName": "Anna", "lastName": "Kowalska"}},
    })  # fmt: skip
    return str(_grants(ksef)[0]["id"])


def _grants(ksef: KSeF) -> list[dict[str, Any]]:
    http = ksef.raw.get_httpx_client()
    answer = http.post("/permissions/query/persons/grants", json={"queryType": "PermissionsInCurrentContext"})
    grants: list[dict[str, Any]] = answer.json()["permissions"]
    return grants


def test_a_permission_revoke_refused_after_a_lost_answer_says_the_lost_attempt_may_have_done_it(
    ksef: KSeF, backend: KSeFBackend
) -> None:
    permission_id = _grant_and_find(ksef)
    backend.faults.add(DROP_AFTER, operation="permissions.revoke_common_permission")
    with pytest.raises(BadRequestError) as caught:
        revoke_common_permission.sync(permission_id, client=ksef.raw)
    error = caught.value
    assert error.codes == [21405] and error.uncertain_attempts == 1  # the emulator: "... nie istnieje"
    note = " ".join(error.__notes__)
    assert f"DELETE /v2/permissions/common/grants/{permission_id} was sent 2 times" in note
    assert "may mean only that the earlier attempt already did it" in note
    assert _grants(ksef) == []  # it did


@pytest.mark.anyio
async def test_the_async_revoke_settles_the_same_way(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    backend.transitions.token_reads = 0
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        created = await client.tokens.create(["InvoiceRead"], "async token to revoke")
        backend.faults.add(DROP_AFTER, operation=REVOKE_TOKEN)
        backend.faults.add(400, operation=REVOKE_TOKEN)
        await client.tokens.revoke(created.reference_number)
        assert (await client.tokens.get(created.reference_number)).status == "Revoked"
