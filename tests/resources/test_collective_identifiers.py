"""``ksef.collective_identifiers`` against the emulator (API 2.9.0: the invoices of up to 10
identifiers in one paged query)."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import httpx
import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._generated.api.permissions import grant_entity_permissions
from ksef_client._generated.api.testdata import set_test_session_limits
from ksef_client._generated.models import EntityPermissionsGrantRequest, SetSessionLimitsRequest
from ksef_client.errors import BadRequestError, PermissionDeniedError
from ksef_client.identifiers import make_ksef_number
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.helpers import FakeTime

OTHER_NIP = "1111111111"


def _numbers(count: int, nip: str = NIP) -> list[str]:
    """KSeF numbers of invoices no one sent (for checks made before any request)."""
    return [make_ksef_number(nip, "20261120", secrets.token_hex(6)) for _ in range(count)]


def _issued(backend: KSeFBackend, count: int, nip: str = NIP, buyer: str = "1111111111") -> list[str]:
    """KSeF numbers of ``count`` invoices ``nip`` issued (to ``buyer``): a collective identifier
    groups only invoices KSeF holds (71001)."""
    access = backend.authenticate("Bearer " + backend.mint_access_token(nip))
    session = backend.sessions.open(access)
    tag = secrets.token_hex(3)
    invoices = [
        backend.sessions.add_invoice(session, sample_invoice(f"CI/{tag}/{n}", seller_nip=nip, buyer_nip=buyer))
        for n in range(count)
    ]
    backend.sessions.close(session)
    return [str(i.ksef_number) for i in invoices]


class TestCollectiveIdentifiers:
    def test_invoices_of_several_identifiers_come_page_by_page_newest_number_first(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        first, second = _issued(backend, 12), _issued(backend, 3)
        one, two = ksef.collective_identifiers.create(first), ksef.collective_identifiers.create(second)
        pager = ksef.collective_identifiers.invoices([one, two], page_size=10)
        pages = list(pager.pages())
        items = [item for page in pages for item in page.items]
        assert len(pages) == 2 and len(items) == 15
        assert [i.ksef_number for i in items] == sorted(first + second, reverse=True)
        assert {i.collective_identifier_number for i in items if i.ksef_number in first} == {one}

    def test_details_are_shown_to_the_creator_and_hidden_from_other_contexts(self, ksef_mock: KSeFMock) -> None:
        numbers = _issued(ksef_mock.backend, 2, buyer="9999999999")
        with ksef_mock.client(NIP) as creator, ksef_mock.client(OTHER_NIP) as stranger:
            described = [
                {"ksefNumber": n, "description": "rata 1", "payment": {"amount": Decimal("100.50"), "currency": "PLN"}}
                for n in numbers
            ]
            with_details = creator.collective_identifiers.create(described)
            plain = creator.collective_identifiers.create(_issued(ksef_mock.backend, 2, buyer="9999999999"))
            own = list(creator.collective_identifiers.invoices([with_details]))
            seen = list(stranger.collective_identifiers.invoices([with_details, plain]))
        assert {(i.description, i.payment.amount, i.details_hidden) for i in own} == {("rata 1", 100.5, False)}
        hidden = {i.ksef_number: i for i in seen}
        assert all(hidden[n].details_hidden and not hidden[n].description for n in numbers)
        # no details were given for `plain`: nothing to hide (the spec's description of the operation)
        assert [i.details_hidden for i in seen if i.collective_identifier_number == plain] == [False, False]

    def test_identifiers_of_an_invoice_and_by_creation_date(self, ksef: KSeF, backend: KSeFBackend) -> None:
        numbers = _issued(backend, 2)
        created = ksef.collective_identifiers.create(numbers)
        assert [i.collective_identifier_number for i in ksef.collective_identifiers.of_invoice(numbers[0])] == [created]
        now = dt.datetime.now(dt.UTC)
        found = list(ksef.collective_identifiers.query(now - dt.timedelta(days=1), now + dt.timedelta(days=1)))
        assert [(i.collective_identifier_number, i.invoice_count) for i in found] == [(created, 2)]

    def test_the_query_narrows_by_invoice_count_and_where_created(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # The spec's CollectiveIdentifiersQueryRequest: invoiceCountFrom/To, createdInCurrentContext.
        two, three = (ksef.collective_identifiers.create(_issued(backend, n)) for n in (2, 3))
        now = dt.datetime.now(dt.UTC)
        window = (now - dt.timedelta(days=1), now + dt.timedelta(days=1))

        def found(**filters: object) -> list[str]:
            return [i.collective_identifier_number for i in ksef.collective_identifiers.query(*window, **filters)]

        assert found() == [three, two]  # newest first
        assert found(invoice_count_from=3) == [three] and found(invoice_count_to=2) == [two]
        assert found(invoice_count_from=2, invoice_count_to=2) == [two]
        assert found(created_in_current_context=True) == [three, two] and found(created_in_current_context=False) == []
        sent = ksef.send_state.requests_sent
        for bad, match in (
            ({"invoice_count_from": 3, "invoice_count_to": 2}, "nothing would match"),
            ({"invoice_count_from": -1}, "from 0"),
            ({"invoice_count_to": True}, "expected a whole number"),
            ({"created_in_current_context": "yes"}, "expected True or False"),
        ):
            with pytest.raises(ValueError, match=match):
                ksef.collective_identifiers.query(*window, **bad)  # type: ignore[arg-type]
        assert ksef.send_state.requests_sent == sent

    def test_bad_arguments_are_refused_before_any_request(self, ksef: KSeF) -> None:
        with pytest.raises(ValueError, match="1 to 10"):
            ksef.collective_identifiers.invoices([f"X{i}" for i in range(11)])
        with pytest.raises(ValueError, match="one seller"):
            ksef.collective_identifiers.create(_numbers(1) + _numbers(1, OTHER_NIP))
        with pytest.raises(ValueError, match="2 to 500"):
            ksef.collective_identifiers.create(_numbers(1))
        with pytest.raises(ValueError, match="ksefNumber"):
            ksef.collective_identifiers.create(["not-a-number", "x"])
        with pytest.raises(ValueError, match="100 days"):
            now = dt.datetime.now(dt.UTC)
            ksef.collective_identifiers.query(now - dt.timedelta(days=101), now)

    def test_what_the_request_shows_is_refused_before_it_naming_the_invoice(self, ksef: KSeF) -> None:
        # The spec's 400 table of POST /collective-identifiers: 71005 "Powtórzony numer KSeF w
        # żądaniu." and 71004 "Faktury mają różnych sprzedawców." need nothing but the request (a
        # KSeF number starts with its seller's NIP); CollectiveIdentifierInvoice: description
        # maxLength 512, payment {amount, currency: CurrencyCode}. Was: a repeat was sent (71005),
        # a second seller refused without naming the invoice, the rest sent unchecked.
        first, second, third = _numbers(3)
        (stranger,) = _numbers(1, OTHER_NIP)
        paid = {"ksefNumber": first, "payment": {"amount": Decimal("10.00"), "currency": "PLN"}}
        wrong = second[:-2] + ("00" if not second.endswith("00") else "01")
        at = r"^invoices\[1\]"
        refusals = [
            ([first, second, first], r"^invoices\[2\]\.ksefNumber: .* is invoices\[0\] again; .*71005"),
            ([paid, {"ksefNumber": second}, first], r"^invoices\[2\]\.ksefNumber: .*71005"),
            ([first, second, stranger], rf"^invoices\[2\]\.ksefNumber: {stranger} is an invoice of seller {OTHER_NIP}"),
            ([first, {"ksefNumber": second, "description": "x" * 513}], at + r"\.description: 513 characters"),
            ([first, {"ksefNumber": second, "payment": {"amount": 1, "currency": "ZL"}}], at + r"\.payment\.currency"),
            ([first, {"ksefNumber": second, "payment": {"amount": 1}}], at + r"\.payment: currency is required"),
            ([first, {"ksefNumber": second, "amount": 1}], at + r": 'amount' is not a key"),
            ([first, wrong], at + r"\.ksefNumber: .*checksum"),
            (first, "not one of them"),
        ]  # fmt: skip
        for invoices, message in refusals:
            with pytest.raises(ValueError, match=message):
                ksef.collective_identifiers.create(invoices)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"numbers\[1\]: .* is not a collective identifier"):
            ksef.collective_identifiers.invoices(["5265877635-IZ202611-0123456789AB-6A", third])
        with pytest.raises(ValueError, match=r"numbers\[0\]: .* has a wrong checksum \(expected 6A\)"):
            ksef.collective_identifiers.invoices(["5265877635-IZ202611-0123456789AB-00"])
        with pytest.raises(ValueError, match="numbers: a list"):
            ksef.collective_identifiers.invoices("5265877635-IZ202611-0123456789AB-00")
        now = dt.datetime.now(dt.UTC)
        with pytest.raises(ValueError, match=r"^number: .* is not a collective identifier"):
            ksef.collective_identifiers.query(now - dt.timedelta(days=1), now, number=third)
        assert ksef.send_state.requests_sent == 0

    def test_refusals_only_ksef_can_make_carry_its_code_text_and_the_invoice(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        # 71001 "Faktura o podanym identyfikatorze nie istnieje." and 71002 "Faktura jest już
        # przypisana do maksymalnej liczby Identyfikatorów Zbiorczych." depend on what KSeF holds:
        # a BadRequestError whose codes and message say which invoice.
        held = _issued(backend, 2)
        (unknown,) = _numbers(1)
        with pytest.raises(BadRequestError) as missing:
            ksef.collective_identifiers.create([held[0], unknown])
        assert missing.value.codes == [71001]
        assert f"71001: Faktura o podanym identyfikatorze nie istnieje. (Faktura o numerze KSeF {unknown} " in str(
            missing.value
        )
        seller = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
        for _ in range(132):  # "maksymalnie 132 identyfikatorów zbiorczych w ramach jednego kontekstu"
            backend.collective.create(seller, [{"ksefNumber": n} for n in held])
        with pytest.raises(BadRequestError) as full:
            ksef.collective_identifiers.create(held)
        assert full.value.codes == [71002] and f"Faktura o numerze KSeF {held[0]} jest już" in str(full.value)

    def test_more_than_500_invoices_are_checked_against_the_contexts_own_limit(self, ksef: KSeF) -> None:
        # GenerateCollectiveIdentifierRequest.invoices: "Domyślny limit faktur wynosi 500"; a context's
        # may be raised (CollectiveIdentifierContextLimitsOverride.maxInvoices: up to 5000). Was: more
        # than 500 were refused locally whatever the context's limit.
        numbers = _numbers(501)
        with pytest.raises(ValueError, match=r"2 to 500 invoices of one seller \(the context's limit"):
            ksef.collective_identifiers.create(numbers)
        assert ksef.send_state.requests_sent == 1  # GET /limits/context, no identifier asked for
        override = {**ksef.limits.context().to_dict(), "collectiveIdentifier": {"maxInvoices": 600}}
        answer = set_test_session_limits.sync_detailed(
            client=ksef.raw, body=SetSessionLimitsRequest.from_dict(override)
        )
        assert answer.status_code == 200
        with pytest.raises(BadRequestError) as sent:  # taken as to its count: KSeF holds none of them
            ksef.collective_identifiers.create(numbers)
        assert sent.value.codes == [71001]

    def test_the_context_limit_set_through_test_data_is_enforced(self, ksef: KSeF) -> None:
        limits = ksef.limits.context()
        assert limits.collective_identifier.max_invoices == 500  # KSeF TEST's default
        override = {**limits.to_dict(), "collectiveIdentifier": {"maxInvoices": 2}}
        answer = set_test_session_limits.sync_detailed(
            client=ksef.raw, body=SetSessionLimitsRequest.from_dict(override)
        )
        assert answer.status_code == 200
        assert ksef.limits.context().collective_identifier.max_invoices == 2
        with pytest.raises(BadRequestError, match="2-2"):
            ksef.collective_identifiers.create(_numbers(3))


class TestAsyncCollectiveIdentifiers:
    @pytest.mark.anyio
    async def test_create_and_list_invoices(self, backend: KSeFBackend) -> None:
        time = FakeTime()
        async with AsyncKSeF(
            base_url="http://ksef.local/v2",
            access_token=backend.mint_access_token(NIP),
            transport=httpx.ASGITransport(app=create_app(backend, strict=True)),
            sleep=time.asleep,
            clock=time.clock,
        ) as ksef:
            numbers = _issued(backend, 11)
            created = await ksef.collective_identifiers.create(numbers)
            listed = [i.ksef_number async for i in ksef.collective_identifiers.invoices([created], page_size=10)]
            rates = await ksef.limits.rate()
        assert sorted(listed) == sorted(numbers)
        assert rates.collective_identifier.per_second == -1  # the fixture's emulator does not throttle

    @pytest.mark.anyio
    async def test_a_repeated_number_is_refused_before_any_request(self, backend: KSeFBackend) -> None:
        async with AsyncKSeF(
            base_url="http://ksef.local/v2",
            access_token=backend.mint_access_token(NIP),
            transport=httpx.ASGITransport(app=create_app(backend, strict=True)),
        ) as ksef:
            first, second = _numbers(2)
            with pytest.raises(ValueError, match=r"invoices\[2\]\.ksefNumber: .*71005"):
                await ksef.collective_identifiers.create([first, second, second])
            assert ksef.send_state.requests_sent == 0


def test_an_entity_granted_collective_identifier_manage_may_do_that_and_nothing_else(
    ksef: KSeF, ksef_server: ThreadedServer
) -> None:
    company = self_signed_certificate(OTHER_NIP, kind="seal")
    grant = EntityPermissionsGrantRequest.from_dict(
        {
            "subjectIdentifier": {"type": "Nip", "value": OTHER_NIP},
            "description": "payments",
            "permissions": [{"type": "CollectiveIdentifierManage"}],
            "subjectDetails": {"fullName": "Firma Sp. z o.o."},
        }
    )
    assert grant_entity_permissions.sync_detailed(client=ksef.raw, body=grant).status_code == 202
    with KSeF(base_url=ksef_server.base_url) as agent:
        agent.auth.login_with_certificate(company, context_nip=NIP)
        created = agent.collective_identifiers.create(_issued(ksef_server.backend, 2))
        assert len(list(agent.collective_identifiers.invoices([created]))) == 2
        with pytest.raises(PermissionDeniedError) as refused:  # metadata needs InvoiceRead
            list(agent.invoices.query("Subject1", date_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    assert refused.value.present_permissions == ["CollectiveIdentifierManage"]
