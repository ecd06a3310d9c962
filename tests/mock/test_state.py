"""The emulator's state without HTTP: composition, reset, persistence, continuation tokens."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from lxml import etree

from ksef_client.mock import KSeFBackend
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import COMPONENTS
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.core import Core, Settings, utc_now
from ksef_client.mock.state.sessions import SessionQuery
from ksef_client.mock.upo import UpoHeader, build_upo
from ksef_client.testing import sample_invoice

NIP = "5265877635"


def _filled() -> KSeFBackend:
    backend = KSeFBackend(upo_page_size=7)
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access)
    backend.sessions.add_invoice(session, sample_invoice("ST/1"))
    backend.sessions.close(session)
    backend.auth.create_ksef_token(access, ["InvoiceRead"], "persisted token")
    backend.testdata.allow_attachments(NIP)
    return backend


def test_every_component_owns_its_state_and_reset_replaces_it() -> None:
    backend = _filled()
    before = {name: getattr(backend, name).state for name in COMPONENTS}
    backend.upo_page_size, backend.transitions.session_reads = 3, 5
    backend.reset()
    assert all(getattr(backend, name).state is not before[name] for name in COMPONENTS)
    assert backend.sessions.state.sessions == {} and backend.invoices.state.accepted == []
    assert (backend.upo_page_size, backend.transitions.session_reads) == (7, 0)  # as created


def test_a_snapshot_carries_every_component_without_a_hand_list(tmp_path: Path) -> None:
    backend = _filled()
    store = SQLiteStore(tmp_path / "state.sqlite")
    store.save(backend)
    restored = KSeFBackend()
    assert store.load(restored)
    assert set(restored.snapshot()) >= set(COMPONENTS)
    assert restored.sessions.state.sessions.keys() == backend.sessions.state.sessions.keys()
    assert [i.ksef_number for i in restored.invoices.state.accepted] == [
        i.ksef_number for i in backend.invoices.state.accepted
    ]
    assert restored.auth.state.tokens.keys() == backend.auth.state.tokens.keys()
    assert restored.testdata.attachments_allowed(NIP)
    # the signing secret came along: a token of the first emulator is valid in the restored one
    assert restored.authenticate("Bearer " + backend.mint_access_token(NIP)).context.nip == NIP


def test_a_component_depends_only_on_what_it_was_given() -> None:
    backend = KSeFBackend()
    assert backend.sessions.invoices is backend.invoices and backend.collective.invoices is backend.invoices
    assert backend.auth.permissions is backend.permissions and backend.auth.testdata is backend.testdata
    assert backend.auth.certificates is backend.certificates  # whether a KSeF certificate may log in


def test_keyset_pages_resume_after_the_named_item_whatever_was_added() -> None:
    core = Core(utc_now, Settings())
    items = [f"{n:03d}" for n in range(30, 0, -1)]  # newest first
    first = core.page(items, 10, None, key=str, descending=True)
    assert first.items == items[:10] and first.continuation_token
    grown = ["031", "032", *items]  # two newer items arrived in front
    second = core.page(grown, 10, first.continuation_token, key=str, descending=True)
    assert second.items == items[10:20]
    shrunk = [i for i in items if i != items[9]]  # the named item itself is gone
    assert core.page(shrunk, 10, first.continuation_token, key=str, descending=True).items == items[10:20]


@pytest.mark.parametrize("descending", [True, False])
def test_a_listing_shrunk_to_one_unseen_item_still_hands_it_out(descending: bool) -> None:
    # core.py: "items added between two pages never make an item appear twice or go missing
    # (KSeF's tokens are keyset positions too)". The direction was guessed from the first and
    # last keys, which for one item says "ascending": a newest-first page 2 came back empty.
    core = Core(utc_now, Settings())
    items = sorted((f"{n:03d}" for n in range(11)), reverse=descending)
    first = core.page(items, 10, None, key=str, descending=descending)
    unseen = items[10:]  # everything handed out on page 1 left the (filtered) listing meanwhile
    assert core.page(unseen, 10, first.continuation_token, key=str, descending=descending).items == unseen


def test_a_foreign_continuation_token_is_21418() -> None:
    with pytest.raises(MockAPIError) as refused:
        Core(utc_now, Settings()).page(["a"], 10, "bm90LW91cnM=", key=str, descending=False)
    assert refused.value.code == 21418


def test_reset_keeps_the_transitions_and_faults_the_backend_was_created_with() -> None:
    backend = KSeFBackend(session_reads=2, random_faults=(0.5, 7))
    backend.transitions.session_reads = 0
    backend.faults.clear()
    backend.reset()
    assert backend.transitions.session_reads == 2
    assert any(backend.faults.take("sessions_status.get_session_status") for _ in range(20))


def test_reset_gives_back_the_clock_the_backend_was_created_with() -> None:
    # docs/testing-with-the-emulator.md: "backend.clock, which a test may replace to move time";
    # the fixture's reset() must not hand that clock on to the next test.
    created = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    backend = KSeFBackend(clock=lambda: created)
    backend.clock = lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    backend.reset()
    assert backend.clock() == created


def test_a_listing_sees_a_session_modified_by_a_sent_invoice(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = KSeFBackend()
    start = utc_now()
    monkeypatch.setattr(backend, "clock", lambda: start)
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access)
    later = start + dt.timedelta(minutes=5)
    query = SessionQuery("Online", modified_from=later - dt.timedelta(minutes=1))
    assert backend.sessions.listing(access, query).items == []
    monkeypatch.setattr(backend, "clock", lambda: later)
    backend.sessions.add_invoice(session, sample_invoice("ST/2"))
    assert backend.sessions.listing(access, query).items == [session]  # not the cached empty answer


@pytest.mark.parametrize(
    ("kind", "issue_date", "mode"),
    [("Online", "2026-12-02", "Online"), ("Online", "2026-12-01", "Offline"), ("Batch", "2026-12-01", "Online")],
)
def test_days_are_polish_calendar_days(monkeypatch: pytest.MonkeyPatch, kind: str, issue_date: str, mode: str) -> None:
    # 23:30 UTC on 1 December is 00:30 on 2 December in Warsaw.
    backend = KSeFBackend()
    opened = dt.datetime(2026, 12, 1, 22, 30, tzinfo=dt.UTC)  # a batch opened before Polish midnight
    monkeypatch.setattr(backend, "clock", lambda: opened)
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access, kind)
    monkeypatch.setattr(backend, "clock", lambda: dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC))
    invoice = backend.sessions.add_invoice(session, sample_invoice("PL/1", issue_date=issue_date))
    assert invoice.status.code == 200  # 2 December is today in Warsaw: not "issued after receipt"
    assert ("Offline" if invoice.offline else "Online") == mode


@pytest.mark.parametrize(
    ("system_code", "name"),
    [
        ("FA (3)", "Schemat_FA(3)_v1-0E.xsd"),
        ("FA (2)", "Schemat_FA(2)_v1-0E.xsd"),
        ("FA_RR (1)", "Schemat_FA_RR(1)_v1-1E.xsd"),
        ("PEF (3)", "Schemat_PEF(3)_v2-1.xsd"),
        ("PEF_KOR (3)", "Schemat_PEF_KOR(3)_v2-1.xsd"),
    ],
)
def test_a_upo_names_the_schema_of_the_session_s_form(system_code: str, name: str) -> None:
    # api-changelog.md (UPO v4-3): "Zmieniono wartość NazwaStrukturyLogicznej na format:
    # Schemat_{systemCode}_v{schemaVersion}.xsd (np. Schemat_FA(3)_v1-0E.xsd)". FA_RR(1), PEF(3) and
    # PEF_KOR(3) sessions got the FA(3) name.
    header = UpoHeader("20260302-SO-0000000000-0000000000-00", "Nip", NIP, "A" * 43 + "=", system_code)
    upo = etree.fromstring(build_upo(header, [], signed=False))
    assert upo.findtext("{*}NazwaStrukturyLogicznej") == name
    assert upo.findtext("{*}KodFormularza") == system_code


def test_invoices_of_an_older_state_file_have_their_vat_and_buyer_read_again(tmp_path: Path) -> None:
    # A state file written before InvoiceFields had vat_pln and buyer_id (commit d66a5bb: it had
    # ``vat``, in the invoice's currency, and ``other_nips``) unpickled them as the class defaults:
    # vatAmount 0 and a buyer without identifier ("None"), and the Vat amount and buyerIdentifier
    # filters missed the invoice. The spec's InvoiceMetadata: vatAmount "Łączna kwota VAT wyrażona
    # w PLN", buyer.identifier the buyer's (here its NIP).
    backend = _filled()
    for invoice in backend.invoices.state.accepted:
        assert invoice.fields is not None
        written = vars(invoice.fields)  # as the older emulator pickled it
        for name in ("vat_pln", "buyer_id", "self_invoicing", "third_subjects", "authorized_subject"):
            del written[name]
        written["vat"], written["other_nips"] = invoice.fields.vat_pln, ()
    store = SQLiteStore(tmp_path / "old.sqlite")
    store.save(backend)
    restored = KSeFBackend()
    assert store.load(restored)
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    filters = {
        "subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since},
        "buyerIdentifier": {"type": "Nip", "value": "1111111111"}, "amount": {"type": "Vat", "from": 23, "to": 23},
    }  # fmt: skip
    with ThreadedServer(restored, strict=True) as server:
        headers = {"Authorization": f"Bearer {restored.mint_access_token(NIP)}"}
        answer = httpx.post(f"{server.base_url}/invoices/query/metadata", json=filters, headers=headers)
        assert server.app.violations == []
    records = answer.json()["invoices"]
    assert [(r["invoiceNumber"], r["vatAmount"], r["buyer"]["identifier"]) for r in records] == [
        ("ST/1", 23.0, {"type": "Nip", "value": "1111111111"})
    ]
