"""``ksef.sessions.check_duplicates``: a 440 names the invoice KSeF holds under the seller, kind
and number (faktury/weryfikacja-faktury.md), which is this very file sent before (in KSeF: nothing
to do) or another invoice that reused the number (this file is not in KSeF). The SHA-256 of the
original, from the session's listing or its UPO, tells them apart; a read that fails never counts
as the same file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from ksef_client import AsyncKSeF, InvoiceOutcome, KSeF
from ksef_client.crypto import sha256_b64
from ksef_client.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    KSeFError,
    PermissionDeniedError,
    RateLimitError,
    ThrottleWaitTooLongError,
)
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.helpers import FakeTime

UPO_BY_NUMBER = "sessions_status.get_invoice_upo_by_ksef_number"
SESSION_UPO_FROM = 10  # the documented count of one session's originals read from its whole UPO


def _sent(ksef: KSeF, *invoices: bytes) -> list[InvoiceOutcome]:
    """The outcomes of ``invoices`` sent in one online session, once KSeF processed it."""
    with ksef.online_session() as session:
        for invoice in invoices:
            session.send(invoice)
    ksef.sessions.wait(str(session.reference_number))
    return session.outcomes()


@pytest.fixture
def requests(ksef: KSeF) -> Iterator[list[str]]:
    """The method and path of every API request ``ksef`` makes (an httpx event hook)."""
    seen: list[str] = []
    http = ksef.raw.get_httpx_client()

    def note(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    http.event_hooks["request"].append(note)
    yield seen
    http.event_hooks["request"].remove(note)


def _upo_reads(seen: list[str]) -> list[str]:
    return [request for request in seen if "/invoices/ksef/" in request and request.endswith("/upo")]


def test_the_same_file_sent_again_in_a_later_session_is_the_same_file(ksef: KSeF, requests: list[str]) -> None:
    invoice = sample_invoice("DUP/SAME/1")
    (original,) = _sent(ksef, invoice)
    (duplicate,) = _sent(ksef, invoice)
    assert duplicate.kind == "duplicate" and duplicate.duplicate_of == original.ksef_number
    assert duplicate.same_file is None and duplicate.original_hash is None  # as listed: not compared
    requests.clear()
    (checked,) = ksef.sessions.check_duplicates([duplicate])
    assert checked.same_file is True and checked.not_compared is None
    assert checked.original_hash == original.invoice_hash == sha256_b64(invoice)
    assert checked.number_in_ksef == original.ksef_number  # this very file: in KSeF under that number
    assert checked == InvoiceOutcome(**{**vars(duplicate), "original_hash": sha256_b64(invoice)})
    assert len(_upo_reads(requests)) == len(requests) == 1  # the original's UPO, its SkrotDokumentu


def test_an_edited_invoice_reusing_the_number_is_not_the_same_file(ksef: KSeF, requests: list[str]) -> None:
    (original,) = _sent(ksef, sample_invoice("DUP/EDIT/1"))
    edited = sample_invoice("DUP/EDIT/1", net="999.00")  # same seller, kind and number: a 440
    (duplicate,) = _sent(ksef, edited)
    assert duplicate.duplicate_of == original.ksef_number and not duplicate.is_repeat
    (checked,) = ksef.sessions.check_duplicates([duplicate])
    assert checked.same_file is False and checked.not_compared is None
    assert checked.original_hash == original.invoice_hash != checked.invoice_hash == sha256_b64(edited)
    # as listed it may be this invoice; once compared, its number is not this file's
    assert duplicate.number_in_ksef == original.ksef_number and checked.number_in_ksef is None


def test_an_original_whose_upo_cannot_be_read_is_never_the_same_file(
    ksef: KSeF, backend: KSeFBackend, requests: list[str]
) -> None:
    invoice = sample_invoice("DUP/UNREAD/1")
    (original,) = _sent(ksef, invoice)
    (duplicate,) = _sent(ksef, invoice)  # the very same file: only the read fails
    backend.faults.add(400, operation=UPO_BY_NUMBER, code=21178, times=50)
    (checked,) = ksef.sessions.check_duplicates([duplicate])  # not raised
    assert checked.same_file is None and checked.original_hash is None
    assert checked.not_compared is not None and checked.not_compared.startswith("its UPO could not be read: HTTP 400")
    assert "[21178]" in checked.not_compared
    backend.faults.clear()
    # Checked again: what was read before stays (no request), what failed is read now.
    requests.clear()
    (again,) = ksef.sessions.check_duplicates([checked])
    assert again.same_file is True and again.original_hash == original.invoice_hash and again.not_compared is None
    assert len(_upo_reads(requests)) == 1
    requests.clear()
    assert ksef.sessions.check_duplicates([again]) == [again] and requests == []


def test_originals_in_the_outcomes_and_repeats_cost_no_request(ksef: KSeF, requests: list[str]) -> None:
    same = sample_invoice("DUP/HERE/1")
    first, other, repeat, rejected = _sent(
        ksef,
        same,
        sample_invoice("DUP/HERE/1", net="5.00"),
        same,
        sample_invoice("DUP/HERE/2", seller_nip="1111111111"),
    )
    assert first.accepted and rejected.kind == "rejected"
    requests.clear()
    outcomes = [first, other, repeat, rejected]
    checked = ksef.sessions.check_duplicates(iter(outcomes))  # any iterable
    assert requests == []  # the original is accepted among the outcomes (the session's listing)
    assert checked[0] is first and checked[3] is rejected  # no 440: as they were
    assert first.same_file is None and rejected.same_file is None
    assert (checked[1].same_file, checked[1].original_hash) == (False, first.invoice_hash)
    assert repeat.is_repeat and repeat.same_file is True  # a repeat is the same file, checked or not
    assert (checked[2].same_file, checked[2].original_hash) == (True, first.invoice_hash)


def test_a_440_naming_no_original_is_not_compared(ksef: KSeF, requests: list[str]) -> None:
    hash_ = sha256_b64(b"x")
    no_number = InvoiceOutcome("R1", "duplicate", 440, invoice_hash=hash_)
    no_session = InvoiceOutcome(
        "R2", "duplicate", 440, duplicate_of="5265877635-20260101-0100000000AB-01", invoice_hash=hash_
    )
    no_hash = InvoiceOutcome("R3", "duplicate", 440, duplicate_of="N", duplicate_session="S")
    checked = ksef.sessions.check_duplicates(
        [no_number, no_session, no_hash, InvoiceOutcome("R4", "accepted", 200, ksef_number="N")]
    )
    assert [o.same_file for o in checked] == [None, None, None, None] and requests == []
    assert checked[0].not_compared == "KSeF's answer names no original KSeF number (originalKsefNumber)"
    assert checked[1].not_compared == "KSeF's answer names no original session (originalSessionReferenceNumber)"
    assert checked[2].not_compared == "KSeF lists this file with no invoiceHash"


def test_many_originals_of_one_session_are_read_from_its_whole_upo(ksef: KSeF, requests: list[str]) -> None:
    # A whole session sent again: one status read and its UPO pages, not a request per invoice.
    invoices = [sample_invoice(f"DUP/MANY/{i}") for i in range(SESSION_UPO_FROM)]
    originals = _sent(ksef, *invoices)
    duplicates = _sent(ksef, *invoices, sample_invoice("DUP/MANY/0", net="7.00"))
    session = duplicates[0].duplicate_session
    requests.clear()
    seen: list[tuple[int, int]] = []
    checked = ksef.sessions.check_duplicates(duplicates, progress=lambda done, total: seen.append((done, total)))
    assert [o.same_file for o in checked] == [True] * SESSION_UPO_FROM + [False]
    assert [o.original_hash for o in checked[:-1]] == [o.invoice_hash for o in originals]
    assert _upo_reads(requests) == [] and requests == [f"GET /v2/sessions/{session}"]
    assert seen == [(done, SESSION_UPO_FROM) for done in range(SESSION_UPO_FROM + 1)]  # one per original


def test_fewer_originals_of_a_session_are_read_one_by_one(ksef: KSeF, requests: list[str]) -> None:
    invoices = [sample_invoice(f"DUP/FEW/{i}") for i in range(SESSION_UPO_FROM - 1)]
    _sent(ksef, *invoices)
    duplicates = _sent(ksef, *invoices)
    requests.clear()
    assert {o.same_file for o in ksef.sessions.check_duplicates(duplicates)} == {True}
    assert len(_upo_reads(requests)) == len(requests) == SESSION_UPO_FROM - 1


def test_a_session_upo_that_cannot_be_read_leaves_each_original_to_its_own_upo(
    ksef: KSeF, backend: KSeFBackend, requests: list[str]
) -> None:
    invoices = [sample_invoice(f"DUP/FALLBACK/{i}") for i in range(SESSION_UPO_FROM)]
    _sent(ksef, *invoices)
    duplicates = _sent(ksef, *invoices)
    backend.faults.add(400, operation="sessions_status.get_session_status", code=21173, times=1)
    requests.clear()
    assert {o.same_file for o in ksef.sessions.check_duplicates(duplicates)} == {True}
    assert len(_upo_reads(requests)) == SESSION_UPO_FROM


def test_each_original_is_read_within_a_deadline_of_its_own(
    ksef_server: object, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # The reads are independent: a long list of 440s is not held to one call's deadline (each
    # answer here takes 6 s of the client's clock, against a deadline of 10 s).
    token = backend.mint_access_token("5265877635")
    base_url = ksef_server.base_url  # type: ignore[attr-defined]
    with KSeF(base_url=base_url, access_token=token, sleep=fake_time.sleep, clock=fake_time.clock) as ksef:
        invoices = [sample_invoice(f"DUP/SLOW/{i}") for i in range(3)]
        for invoice in invoices:  # each original in a session of its own: a read each
            _sent(ksef, invoice)
        duplicates = _sent(ksef, *invoices)

        def slow(response: httpx.Response) -> None:
            fake_time.now += 6

        hurried = ksef.with_options(deadline=10)
        hurried.raw.get_httpx_client().event_hooks["response"].append(slow)
        checked = hurried.sessions.check_duplicates(duplicates)
    assert [o.same_file for o in checked] == [True] * 3, [o.not_compared for o in checked]


@pytest.mark.parametrize(
    ("outcomes", "progress", "message"),
    [
        (InvoiceOutcome("R", "duplicate", 440), None, r"outcomes: a list of InvoiceOutcome .* not one outcome"),
        ("R", None, r"outcomes: a list of InvoiceOutcome .*, not str"),
        (None, None, r"outcomes: a list of InvoiceOutcome .*, not NoneType"),
        ({"R": 1}, None, r"outcomes: a list of InvoiceOutcome .*, not dict"),
        ([InvoiceOutcome("R", "accepted", 200), "R"], None, r"outcomes\[1\]: an InvoiceOutcome, not str"),
        ([], 5, r"progress: a function \(done, total\) -> None, or None; not int"),
    ],
    ids=["one-outcome", "str", "none", "dict", "not-an-outcome", "progress"],
)
def test_wrong_arguments_are_refused_before_any_request(
    ksef: KSeF, requests: list[str], outcomes: object, progress: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        ksef.sessions.check_duplicates(outcomes, progress=progress)  # type: ignore[arg-type]
    assert requests == []


@pytest.mark.anyio
async def test_async_tells_the_same_file_from_another_and_refuses_an_async_progress(
    aksef: AsyncKSeF, backend: KSeFBackend
) -> None:
    same, edited = sample_invoice("DUP/ASYNC/1"), sample_invoice("DUP/ASYNC/2")
    async with aksef.online_session() as first:
        await first.send(same)
        await first.send(edited)
    await aksef.sessions.wait(str(first.reference_number))
    originals = await first.outcomes()
    async with aksef.online_session() as again:
        await again.send(same)
        await again.send(sample_invoice("DUP/ASYNC/2", net="3.00"))
    await aksef.sessions.wait(str(again.reference_number))
    duplicates = await aksef.sessions.outcomes(str(again.reference_number))

    async def late(done: int, total: int) -> None: ...

    with pytest.raises(TypeError, match="progress: a plain function"):
        await aksef.sessions.check_duplicates(duplicates, progress=late)  # type: ignore[arg-type]
    seen: list[tuple[int, int]] = []
    checked = await aksef.sessions.check_duplicates(duplicates, progress=lambda *done: seen.append(done))
    assert [o.same_file for o in checked] == [True, False] and seen == [(0, 2), (1, 2), (2, 2)]
    assert [o.original_hash for o in checked] == [o.invoice_hash for o in originals]
    backend.faults.add(400, operation=UPO_BY_NUMBER, code=21178, times=50)
    unread = await aksef.sessions.check_duplicates(duplicates)
    assert [o.same_file for o in unread] == [None, None] and all("[21178]" in str(o.not_compared) for o in unread)
    backend.faults.clear()
    backend.faults.add(401, operation=UPO_BY_NUMBER, times=50)  # the token no longer holds: raised
    with pytest.raises(AuthenticationError) as caught:
        await aksef.sessions.check_duplicates(duplicates)
    assert caught.value.__notes__[0].startswith("check_duplicates stopped: 0 of the 2 originals")


# --- review s13, A1: a failure every read would meet is raised, not written into each outcome ---


def _each_in_a_session_of_its_own(ksef: KSeF, prefix: str, count: int) -> list[InvoiceOutcome]:
    """The 440s of ``count`` invoices sent again, each original sent in a session of its own (a
    read each)."""
    invoices = [sample_invoice(f"{prefix}/{i}") for i in range(count)]
    for invoice in invoices:
        _sent(ksef, invoice)
    return _sent(ksef, *invoices)


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (DROP, APIConnectionError),
        (429, RateLimitError),
        (503, InternalServerError),
    ],
    ids=["401", "403", "connection", "429", "503"],
)
def test_a_failure_every_read_would_meet_is_raised_at_once(
    ksef: KSeF, backend: KSeFBackend, requests: list[str], status: int, raised: type[KSeFError]
) -> None:
    # Was: every original got its own request (and retries), each failure became its outcome's
    # not_compared text ("its UPO could not be read: HTTP 401 ..."), and nothing was raised.
    duplicates = _each_in_a_session_of_its_own(ksef, f"DUP/DOWN/{status}", 4)
    backend.faults.add(status, operation=UPO_BY_NUMBER, times=1000, **({"retry_after": 1} if status == 429 else {}))
    requests.clear()
    with pytest.raises(raised) as caught:
        ksef.sessions.check_duplicates(duplicates)
    assert len(set(_upo_reads(requests))) == 1  # the first original only (with its retries)
    (note,) = caught.value.__notes__
    assert note.startswith("check_duplicates stopped: 0 of the 4 originals it had to read from KSeF were read")
    assert "error.partial" in note
    # Nothing is lost: once KSeF answers, the same outcomes are checked again.
    backend.faults.clear()
    assert {o.same_file for o in ksef.sessions.check_duplicates(duplicates)} == {True}


def test_the_note_counts_the_originals_read_before_the_failure(
    ksef: KSeF, backend: KSeFBackend, requests: list[str]
) -> None:
    duplicates = _each_in_a_session_of_its_own(ksef, "DUP/LATER", 5)

    def progress(done: int, total: int) -> None:
        if done == 2:  # the token expires after two reads
            backend.faults.add(401, operation=UPO_BY_NUMBER, times=1000)

    requests.clear()
    with pytest.raises(AuthenticationError) as caught:
        ksef.sessions.check_duplicates(duplicates, progress=progress)
    assert caught.value.__notes__[0].startswith("check_duplicates stopped: 2 of the 5 originals")
    assert len(_upo_reads(requests)) == 3
    # What was read is kept: given back, only the three not read are read, once KSeF answers.
    partial = caught.value.partial
    assert isinstance(partial, list) and [o.same_file for o in partial] == [True, True, None, None, None]
    assert [o.not_compared for o in partial[2:]] == ["not read"] * 3
    backend.faults.clear()
    requests.clear()
    assert [o.same_file for o in ksef.sessions.check_duplicates(partial)] == [True] * 5
    assert len(_upo_reads(requests)) == 3


def test_a_call_whose_connection_is_down_ends_within_its_deadline(
    ksef_server: object, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # Was: deadline=5, 30 originals, the connection down: each original had a deadline of its own
    # for its retries, the call ran some 47 s of the client's clock and returned 30 x None.
    token = backend.mint_access_token("5265877635")
    base_url = ksef_server.base_url  # type: ignore[attr-defined]
    with KSeF(base_url=base_url, access_token=token, sleep=fake_time.sleep, clock=fake_time.clock) as ksef:
        duplicates = _each_in_a_session_of_its_own(ksef, "DUP/DROP", 12)
        backend.faults.add(DROP, operation=UPO_BY_NUMBER, times=10_000)
        started = fake_time.now
        with pytest.raises(APIConnectionError):
            ksef.with_options(deadline=5).sessions.check_duplicates(duplicates)
        assert fake_time.now - started <= 5


def test_the_clients_own_pacing_giving_up_is_raised(ksef: KSeF, backend: KSeFBackend) -> None:
    # Was: once the group's limits left no room within max_retry_after, every original left was
    # "not compared" with ThrottleWaitTooLongError, one after another.
    duplicates = _each_in_a_session_of_its_own(ksef, "DUP/PACE", 3)
    token = backend.mint_access_token("5265877635")
    base_url = ksef.settings.base_url
    paced = KSeF(base_url=base_url, access_token=token, rate_limit_scale=0.01, max_retry_after=1)
    with paced, pytest.raises(ThrottleWaitTooLongError) as caught:
        paced.sessions.check_duplicates(duplicates)  # one read, the next held back ~10 s
    assert caught.value.__notes__[0].startswith("check_duplicates stopped: 1 of the 3 originals")


def test_a_session_upo_read_refused_for_the_token_is_raised(
    ksef: KSeF, backend: KSeFBackend, requests: list[str]
) -> None:
    # Was: the session's UPO read failing with 401 fell back to a read per original, each a 401.
    invoices = [sample_invoice(f"DUP/SESSION401/{i}") for i in range(SESSION_UPO_FROM)]
    _sent(ksef, *invoices)
    duplicates = _sent(ksef, *invoices)
    backend.faults.add(401, operation="sessions_status.get_session_status", times=1000)
    requests.clear()
    with pytest.raises(AuthenticationError):
        ksef.sessions.check_duplicates(duplicates)
    assert _upo_reads(requests) == [] and len(requests) == 1


@pytest.mark.parametrize(
    "fault", [{"status": 400, "code": 21178}, {"status": 404}, {"status": 410}], ids=["400-21178", "404", "410"]
)
def test_ksefs_answer_about_one_original_stays_with_it(
    ksef: KSeF, backend: KSeFBackend, requests: list[str], fault: dict[str, int]
) -> None:
    status, code = fault["status"], fault.get("code")
    duplicates = _each_in_a_session_of_its_own(ksef, f"DUP/ONE/{status}", 3)
    backend.faults.add(status, operation=UPO_BY_NUMBER, times=1, code=code)  # the first original's read
    requests.clear()
    checked = ksef.sessions.check_duplicates(duplicates)  # not raised: the others are read
    same = [o.same_file for o in checked]
    assert same.count(True) == 2 and same.count(None) == 1 and len(_upo_reads(requests)) == 3
    (unread,) = [o for o in checked if o.same_file is None]
    assert str(unread.not_compared).startswith(f"its UPO could not be read: HTTP {status}")


# --- review s13, A2: an original accepted without its hash is read like any other ---


def test_an_original_listed_without_its_hash_is_read_from_its_upo(ksef: KSeF, requests: list[str]) -> None:
    # Was: known with the hash None: never read, "KSeF lists it with no hash", also on a new call.
    invoice = sample_invoice("DUP/NOHASH/1")
    (original,) = _sent(ksef, invoice)
    (duplicate,) = _sent(ksef, invoice)
    hashless = replace(original, invoice_hash=None)  # a listing that breaks the spec (invoiceHash required)
    requests.clear()
    listed, checked = ksef.sessions.check_duplicates([hashless, duplicate])
    assert listed is hashless and checked.same_file is True and checked.original_hash == original.invoice_hash
    assert len(_upo_reads(requests)) == 1
    requests.clear()  # compared once: known from the result, even beside the hashless listing
    assert ksef.sessions.check_duplicates([hashless, checked])[1] == checked and requests == []


def test_a_refused_token_refresh_is_raised(ksef_server: object, backend: KSeFBackend, fake_time: FakeTime) -> None:
    # A 401 on a read sets off the login's refresh; KSeF refusing it (400 21301: the session was
    # revoked) is the login's failure, a 400 though it is: raised, not the original's not_compared.
    base_url = ksef_server.base_url  # type: ignore[attr-defined]
    creds = self_signed_certificate(kind="person")
    with KSeF(base_url=base_url, sleep=fake_time.sleep, clock=fake_time.clock) as ksef:
        ksef.auth.login_with_certificate(creds, context_nip=creds.nip)
        invoices = [sample_invoice(f"DUP/REFRESH/{i}", seller_nip=creds.nip) for i in range(2)]
        for invoice in invoices:
            _sent(ksef, invoice)
        duplicates = _sent(ksef, *invoices)
        backend.faults.add(401, operation=UPO_BY_NUMBER, times=1000)
        backend.faults.add(400, operation="auth.refresh_token", code=21301, times=1000)
        with pytest.raises(BadRequestError) as caught:
            ksef.sessions.check_duplicates(duplicates)
    assert caught.value.codes == [21301] and caught.value.response.request.url.path.endswith("/auth/token/refresh")
    assert any(note.startswith("check_duplicates stopped: 0 of the 2") for note in caught.value.__notes__)


# --- review s13-last, 4: whatever ends the call keeps what was read, not only a KSeFError ---


@pytest.mark.parametrize("stop", [KeyboardInterrupt, ValueError], ids=["ctrl-c", "progress-raises"])
def test_whatever_ends_the_call_early_carries_what_was_read(
    ksef: KSeF, requests: list[str], stop: type[BaseException]
) -> None:
    # Was: only a KSeFError carried .partial; a Ctrl-C or the progress callback's own exception
    # lost every read made, and the call given the outcomes again read them all again.
    duplicates = _each_in_a_session_of_its_own(ksef, f"DUP/STOP/{stop.__name__}", 3)

    def progress(done: int, total: int) -> None:
        if done == 1:
            raise stop("stopped by the caller")

    requests.clear()
    with pytest.raises(stop) as caught:
        ksef.sessions.check_duplicates(duplicates, progress=progress)
    assert len(_upo_reads(requests)) == 1
    partial = getattr(caught.value, "partial", None)
    assert isinstance(partial, list) and [o.same_file for o in partial] == [True, None, None]
    assert [o.not_compared for o in partial[1:]] == ["not read"] * 2
    assert not getattr(caught.value, "__notes__", [])  # the note is for KSeF's errors
    requests.clear()
    assert [o.same_file for o in ksef.sessions.check_duplicates(partial)] == [True] * 3
    assert len(_upo_reads(requests)) == 2  # the one read before is not read again


@pytest.mark.anyio
async def test_async_a_cancelled_call_or_a_raising_progress_carries_what_was_read(aksef: AsyncKSeF) -> None:
    invoices = [sample_invoice(f"DUP/ASTOP/{i}") for i in range(3)]
    for invoice in invoices:  # each original in a session of its own: a read each
        async with aksef.online_session() as session:
            await session.send(invoice)
        await aksef.sessions.wait(str(session.reference_number))
    async with aksef.online_session() as again:
        for invoice in invoices:
            await again.send(invoice)
    await aksef.sessions.wait(str(again.reference_number))
    duplicates = await again.outcomes()
    seen: list[str] = []

    async def note(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    aksef.raw.get_async_httpx_client().event_hooks["request"].append(note)

    def failing(done: int, total: int) -> None:
        if done == 1:
            raise ValueError("stopped by the caller")

    with pytest.raises(ValueError, match="stopped by the caller") as caught:
        await aksef.sessions.check_duplicates(duplicates, progress=failing)
    partial = getattr(caught.value, "partial", None)
    assert isinstance(partial, list) and [o.same_file for o in partial] == [True, None, None]
    assert len(_upo_reads(seen)) == 1
    # A cancellation reaches the call at its next request, outside the flow: it carries them too.
    stopped: list[BaseException] = []

    def cancel(done: int, total: int) -> None:
        if done == 1:
            task.cancel()

    async def checking() -> None:
        try:
            await aksef.sessions.check_duplicates(partial, progress=cancel)
        except asyncio.CancelledError as error:
            stopped.append(error)
            raise

    task = asyncio.create_task(checking())
    with pytest.raises(asyncio.CancelledError):
        await task
    (cancelled,) = stopped
    partial = getattr(cancelled, "partial", None)
    assert isinstance(partial, list) and [o.same_file for o in partial] == [True, True, None]
    seen.clear()
    assert [o.same_file for o in await aksef.sessions.check_duplicates(partial)] == [True] * 3
    assert len(_upo_reads(seen)) == 1  # the third only
