"""``ksef.testdata``: the spec's ``/testdata/*`` operations, one method each, their bodies checked
against the spec's request schemas before sending, and refused outright by a client of KSeF's
production, which has none of them (the spec's PUT /testdata/certificates/{serialNumber}: "**Tylko
na środowiskach testowych.**"; srodowiska.md: the test environments are "wyłącznie do testowania
integracji"). The scenarios are dane-testowe-scenariusze.md's.
"""

from __future__ import annotations

import datetime as dt
import pkgutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._generated.models import PersonCreateRequest
from ksef_client.environments import Environment
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.core import Context
from tests.conftest import NIP
from tests.helpers import FakeTime
from tests.resources.test_certificates import signed_in

PESEL = "90010112343"
PERSON_NIP = "7680002466"
CONTEXT = {"contextIdentifier": {"type": "Nip", "value": NIP}}
SESSION_LIMITS = {
    "onlineSession": {"maxInvoices": 5, "maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 2},
    "batchSession": {"maxInvoices": 5, "maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 2},
    "collectiveIdentifier": {"maxInvoices": 3},
}
RATE_LIMITS = {  # the spec's ApiRateLimitsOverride: every group required
    group: {"perSecond": 5, "perMinute": 50, "perHour": 500}
    for group in ("onlineSession", "batchSession", "invoiceSend", "invoiceStatus", "sessionList", "sessionInvoiceList",
                  "sessionMisc", "invoiceMetadata", "invoiceExport", "invoiceExportStatus", "invoiceDownload", "other",
                  "collectiveIdentifier")
}  # fmt: skip
PERSON = {"nip": PERSON_NIP, "pesel": PESEL, "isBailiff": True, "description": "a bailiff for tests"}

# Every method, with arguments that would be sent were it not for production.
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("create_subject", ({"subjectNip": NIP, "subjectType": "VatGroup", "description": "a VAT group"},)),
    ("remove_subject", ({"subjectNip": NIP},)),
    ("create_person", (PERSON,)),
    ("remove_person", ({"nip": PERSON_NIP},)),
    ("grant_permissions", ({"contextIdentifier": {"type": "Nip", "value": NIP},
                            "authorizedIdentifier": {"type": "Pesel", "value": PESEL},
                            "permissions": [{"permissionType": "InvoiceRead", "description": "read invoices"}]},)),
    ("revoke_permissions", ({"contextIdentifier": {"type": "Nip", "value": NIP},
                             "authorizedIdentifier": {"type": "Pesel", "value": PESEL}},)),
    ("allow_attachments", ({"nip": NIP},)),
    ("revoke_attachments", ({"nip": NIP},)),
    ("block_context", (CONTEXT,)),
    ("unblock_context", (CONTEXT,)),
    ("set_session_limits", (SESSION_LIMITS,)),
    ("reset_session_limits", ()),
    ("set_certificate_limits", ({"certificate": {"maxCertificates": 2}},)),
    ("reset_certificate_limits", ()),
    ("set_rate_limits", ({"rateLimits": RATE_LIMITS},)),
    ("reset_rate_limits", ()),
    ("set_production_rate_limits", ()),
    ("update_certificate", ("0123456789ABCDEF", {"validTo": "2030-01-01T00:00:00+00:00"})),
]  # fmt: skip


@pytest.fixture
def production() -> Iterator[tuple[KSeF, list[httpx.Request]]]:
    """A client of Environment.PROD's URL whose transport records (and answers nothing to) what
    would be sent."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(599)

    with KSeF(base_url=Environment.PROD.base_url, access_token="t", transport=httpx.MockTransport(record)) as client:
        yield client, sent


def test_the_spec_operations_have_a_method_each() -> None:
    from ksef_client._generated.api import testdata as generated
    from ksef_client.resources import testdata

    endpoints = [e for e in vars(testdata).values() if isinstance(e, testdata.Endpoint)]
    covered = {e.operation.__name__.rsplit(".", 1)[-1] for e in endpoints}
    assert covered == {m.name for m in pkgutil.iter_modules(generated.__path__)}
    assert len(CALLS) == len(covered) == 18  # the spec's /testdata/* operations


@pytest.mark.parametrize(("method", "arguments"), CALLS, ids=[c[0] for c in CALLS])
def test_production_has_no_testdata_and_nothing_is_sent(
    production: tuple[KSeF, list[httpx.Request]], method: str, arguments: tuple[Any, ...]
) -> None:
    client, sent = production
    before = client.send_state.requests_sent
    with pytest.raises(ValueError, match="production"):
        getattr(client.testdata, method)(*arguments)
    assert sent == [] and client.send_state.requests_sent == before


@pytest.mark.parametrize(
    "url",
    ["https://API.KSEF.MF.GOV.PL/v2", "https://api.ksef.mf.gov.pl:443/v2", "https://api.ksef.mf.gov.pl./v2/"],
)
def test_production_is_known_however_its_url_is_spelt(url: str) -> None:
    # Review of the new wrappers, F4: only the exact string was production, so these sent
    # /testdata requests to production (and skipped its NIP checks).
    with KSeF(base_url=url, access_token="t", transport=httpx.MockTransport(lambda r: httpx.Response(599))) as client:
        assert client.settings.is_production
        with pytest.raises(ValueError, match="production"):
            client.testdata.allow_attachments({"nip": NIP})
    for other in (Environment.TEST.base_url, Environment.DEMO.base_url, "http://127.0.0.1:9/v2"):
        with KSeF(base_url=other, access_token="t") as client:
            assert not client.settings.is_production


def _naive_model() -> PersonCreateRequest:
    model = PersonCreateRequest.from_dict(PERSON)
    model.created_date = dt.datetime(2026, 1, 1)  # no time zone: KSeF would read it in its own
    return model


class TestBodiesCheckedBeforeSending:
    @pytest.mark.parametrize(
        ("method", "body", "named"),
        [
            ("create_person", {**PERSON, "isBailif": True}, "'isBailif' is not a key"),
            ("create_person", {"nip": PERSON_NIP, "pesel": PESEL, "description": "x" * 5}, "isBailiff is required"),
            ("create_person", {**PERSON, "pesel": "123"}, "body.pesel"),
            ("create_subject", {"subjectNip": NIP, "subjectType": "Bank", "description": "a bank"}, "subjectType"),
            ("set_session_limits", {**SESSION_LIMITS, "collectiveIdentifier": {"maxInvoices": 1}}, "2..5000"),
            ("set_session_limits", {**SESSION_LIMITS, "collectiveIdentifier": {"maxInvoices": "3"}}, "whole number"),
            ("create_person", {**PERSON, "createdDate": dt.datetime(2026, 1, 1)}, "time zone"),
            ("create_person", _naive_model(), "time zone"),  # a model's dates as a dict's (review, F5)
            ("revoke_attachments", {"nip": NIP, "expectedEndDate": "tomorrow"}, "expectedEndDate"),
            ("allow_attachments", "5265877635", "expected a dict"),
        ],
    )  # fmt: skip
    def test_a_body_the_spec_refuses_sends_nothing(self, ksef: KSeF, method: str, body: Any, named: str) -> None:
        sent = ksef.send_state.requests_sent
        with pytest.raises(ValueError, match=named):
            getattr(ksef.testdata, method)(body)
        assert ksef.send_state.requests_sent == sent

    def test_a_bad_serial_number_sends_nothing(self, ksef: KSeF) -> None:
        sent = ksef.send_state.requests_sent
        with pytest.raises(ValueError, match="serial_number"):
            ksef.testdata.update_certificate("not-a-serial", {"validTo": "2030-01-01T00:00:00+00:00"})
        assert ksef.send_state.requests_sent == sent


class TestAgainstTheEmulator:
    def test_a_bailiff_is_registered_and_removed(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # Scenario 1: "dodać taką osobę za pomocą endpointu /v2/testdata/person, ustawiając flagę
        # isBailiff na true"; a generated model is taken as well as a dict.
        moment = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
        ksef.testdata.create_person({**PERSON, "createdDate": moment})
        person = backend.testdata.person(PESEL)
        assert person is not None and person.is_bailiff
        ksef.testdata.remove_person({"nip": PERSON_NIP})
        assert backend.testdata.person(PESEL) is None
        ksef.testdata.create_person(PersonCreateRequest.from_dict(PERSON))
        assert backend.testdata.person(PESEL) is not None

    def test_a_vat_group_and_its_member(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # Scenario 3: the group's structure with /v2/testdata/subject, its subunits the members.
        member = "7680002466"
        ksef.testdata.create_subject({"subjectNip": NIP, "subjectType": "VatGroup", "description": "a VAT group",
                                      "subunits": [{"subjectNip": member, "description": "a member"}]})  # fmt: skip
        assert [r.nip for r in backend.testdata.subordinates_of(NIP)] == [member]
        ksef.testdata.remove_subject({"subjectNip": NIP})
        assert backend.testdata.subordinates_of(NIP) == []

    def test_permissions_given_and_taken(self, ksef: KSeF) -> None:
        grant, revoke = dict(CALLS)["grant_permissions"], dict(CALLS)["revoke_permissions"]
        sent = ksef.send_state.requests_sent
        ksef.testdata.grant_permissions(*grant)
        ksef.testdata.revoke_permissions(*revoke)
        assert ksef.send_state.requests_sent == sent + 2

    def test_attachments_allowed_and_revoked(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # Scenarios 4 and 5: /testdata/attachment, /testdata/attachment/revoke.
        ksef.testdata.allow_attachments({"nip": NIP})
        assert backend.testdata.attachments_allowed(NIP)
        ksef.testdata.revoke_attachments({"nip": NIP})
        assert not backend.testdata.attachments_allowed(NIP)

    def test_a_context_blocked_and_unblocked(self, ksef: KSeF, backend: KSeFBackend) -> None:
        ksef.testdata.block_context(CONTEXT)
        assert backend.testdata.is_blocked(Context("Nip", NIP))
        ksef.testdata.unblock_context(CONTEXT)
        assert not backend.testdata.is_blocked(Context("Nip", NIP))

    def test_session_limits_set_and_reset(self, ksef: KSeF) -> None:
        default = ksef.limits.context().online_session.max_invoices
        ksef.testdata.set_session_limits(SESSION_LIMITS)
        assert ksef.limits.context().online_session.max_invoices == 5
        ksef.testdata.reset_session_limits()
        assert ksef.limits.context().online_session.max_invoices == default

    def test_certificate_limits_set_and_reset(self, ksef: KSeF) -> None:
        default = ksef.limits.subject().to_dict()["certificate"]
        ksef.testdata.set_certificate_limits({"certificate": {"maxCertificates": 2}})
        assert ksef.limits.subject().to_dict()["certificate"] == {"maxCertificates": 2}
        ksef.testdata.reset_certificate_limits()
        assert ksef.limits.subject().to_dict()["certificate"] == default

    def test_rate_limits_set_and_reset(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # The emulator of these tests reports no rate limit (-1, throttling off): its record of
        # the context's overrides is what shows them.
        context = Context("Nip", NIP)
        ksef.testdata.set_production_rate_limits()
        assert backend.testdata.rate_limits_of(context)
        ksef.testdata.reset_rate_limits()
        assert backend.testdata.rate_limits_of(context) == {}
        ksef.testdata.set_rate_limits({"rateLimits": RATE_LIMITS})
        assert backend.testdata.rate_limits_of(context)


def test_a_ksef_certificate_ends_when_told(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # PUT /testdata/certificates/{serialNumber}: "Aktualizuje dane wskazanego certyfikatu KSeF
    # uwierzytelnionego podmiotu"; a certificate needs a login with a signature (XAdES).
    with signed_in(ksef_server.base_url, fake_time) as client:
        client.certificates.obtain("Logowanie API")
        (issued,) = client.certificates.query()
        ended = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        client.testdata.update_certificate(issued.certificate_serial_number.lower(), {"validTo": ended})
        (updated,) = client.certificates.query()
        assert updated.valid_to == ended


@pytest.mark.anyio
async def test_the_async_client_the_same_way(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        sent = client.send_state.requests_sent
        with pytest.raises(ValueError, match="'isBailif' is not a key"):
            await client.testdata.create_person({**PERSON, "isBailif": True})
        with pytest.raises(ValueError, match="serial_number"):
            await client.testdata.update_certificate("nope", {"validTo": "2030-01-01T00:00:00+00:00"})
        assert client.send_state.requests_sent == sent
        await client.testdata.create_person(PERSON)
        assert backend.testdata.person(PESEL) is not None
        await client.testdata.set_session_limits(SESSION_LIMITS)
        assert (await client.limits.context()).online_session.max_invoices == 5
        await client.testdata.reset_session_limits()
    async with AsyncKSeF(base_url=Environment.PROD.base_url, access_token="t") as prod:
        for method, arguments in CALLS:
            with pytest.raises(ValueError, match="production"):
                await getattr(prod.testdata, method)(*arguments)
        assert prod.send_state.requests_sent == 0
