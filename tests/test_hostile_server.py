"""Issue 17, the SDK half: each test is an attack by a hostile or broken server, proxy or
presigned link (``tests/hostile.py``), and shows what the SDK does instead of being fooled."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import logging
import re
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from lxml import etree

from ksef_client import (
    APITimeoutError,
    AsyncKSeF,
    BodyLimits,
    ExportError,
    InternalServerError,
    KSeF,
    ResponseFormatError,
    ResponseTooLargeError,
    UnsafePathError,
    UPOSignatureError,
    UPOValidationError,
    _storage,
)
from ksef_client._generated.models import InvoicePackage
from ksef_client.errors import InvoiceRejectedError
from ksef_client.export import ExportResult, unpack_export
from ksef_client.identifiers import make_ksef_number
from ksef_client.invoice_sync import SyncState, _keep_new
from ksef_client.mock import KSeFBackend
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.server import ThreadedServer
from ksef_client.schemas import InvoiceSchemaError, validate_invoice
from ksef_client.testing import sample_invoice, self_signed_certificate
from ksef_client.upo import parse_upo
from ksef_client.xades import sign_xades
from tests.helpers import FakeTime
from tests.hostile import EndlessBody, RawServer, Tamper, drip, json_swap, silent

NIP = "5265877635"
KSEF_NUMBER = make_ksef_number(NIP, "20250916", "010040741B3E")
EVIL = "../outside/x"


def _client(server: ThreadedServer, token: str | None, tamper: Tamper, **options: Any) -> KSeF:
    return KSeF(base_url=server.base_url, access_token=token, transport=tamper, sleep=lambda s: None, **options)


def _sent_batch(ksef: KSeF, count: int = 3) -> str:
    return ksef.send_batch([sample_invoice(f"H/{i}") for i in range(count)], wait=True).reference_number


def _signed_upo(ksef: KSeF, number: str = "FV/100/0/2026") -> bytes:
    with ksef.online_session() as session:
        ref = session.send(sample_invoice(number))
    ksef.sessions.wait(session.reference_number)
    return ksef.upo.get_invoice_upo(session.reference_number, invoice_reference_number=ref).xml


# --- 1. names from the server become paths only when they are what they claim --------------------


def test_a_ksef_number_with_dots_does_not_write_outside_the_folder(
    ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path
) -> None:
    ref = _sent_batch(ksef)

    def evil(body: dict[str, Any]) -> dict[str, Any]:
        body["invoices"][0]["ksefNumber"] = EVIL
        return body

    tamper = Tamper(json_swap("GET", f"/sessions/{ref}/invoices", evil))
    with _client(ksef_server, ksef.access_token, tamper) as hostile, pytest.raises(UnsafePathError, match="outside"):
        hostile.upo.save_invoice_upos(ref, tmp_path / "upo")
    assert not (tmp_path / "upo").exists() and not (tmp_path / "outside").exists()


def test_a_upo_page_reference_with_dots_does_not_write_outside_the_folder(
    ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path
) -> None:
    ref = _sent_batch(ksef, 1)

    def evil(body: dict[str, Any]) -> dict[str, Any]:
        body["upo"]["pages"][0]["referenceNumber"] = "../../x"
        return body

    tamper = Tamper(json_swap("GET", f"/sessions/{ref}", evil))
    with _client(ksef_server, ksef.access_token, tamper) as hostile, pytest.raises(UnsafePathError):
        hostile.upo.save_session_upo(ref, tmp_path / "a" / "b")
    assert list(tmp_path.rglob("*")) == []


def _zip(tmp_path: Path, entries: list[tuple[str, bytes]]) -> Path:
    path = tmp_path / "package.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return path


PACKAGE = InvoicePackage.from_dict(
    {"invoiceCount": 1, "size": 1, "parts": [], "isTruncated": False, "compressionType": "Zip"}
)


def _metadata(*numbers: str) -> bytes:
    return json.dumps({"invoices": [{"ksefNumber": n} for n in numbers]}).encode()


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("_metadata.json", _metadata("/etc/passwd"))], "KSeF number"),
        ([("_metadata.json", _metadata(KSEF_NUMBER)), ("../x.xml", b"<x/>")], "KSeF number"),
        ([(f"{KSEF_NUMBER}.xml", b"<a/>"), (f"{KSEF_NUMBER}.xml", b"<b/>")], "twice"),
        ([("_metadata.json", b"{not json")], "not JSON"),
        ([("_metadata.json", b'{"invoices": 5}')], "invoices"),
        ([("_metadata.json", b"[" * 100_000)], "not JSON"),
        ([("_metadata.json", _metadata(KSEF_NUMBER, KSEF_NUMBER))], "twice"),
    ],
    ids=["absolute-number", "dotted-entry", "duplicate-entry", "bad-json", "wrong-type", "deep-json", "twice-listed"],
)
def test_a_hostile_export_package_is_an_export_error(
    tmp_path: Path, entries: list[tuple[str, bytes]], message: str
) -> None:
    with pytest.raises(ExportError, match=message):
        unpack_export("REF", PACKAGE, _zip(tmp_path, entries), tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_sync_moves_nothing_named_by_an_absolute_number(tmp_path: Path) -> None:
    victim = tmp_path / "elsewhere" / "secret"
    victim.parent.mkdir()
    victim.with_suffix(".xml").write_text("mine")
    result = ExportResult("REF", tmp_path / "work", [], [{"ksefNumber": str(victim)}], False, None, None)
    with pytest.raises(UnsafePathError):
        _keep_new(result, SyncState("2026-01-01T00:00:00+00:00"), tmp_path / "sync")
    assert victim.with_suffix(".xml").read_text() == "mine"


# --- 2. a comment cannot shorten a signed UPO value ----------------------------------------------


def test_a_comment_inside_a_signed_value_does_not_truncate_it(ksef: KSeF) -> None:
    xml = _signed_upo(ksef)
    attacked = re.sub(rb">FV/100/0/2026<", b">FV/1<!---->00/0/2026<", xml, count=1)
    assert attacked != xml
    parse_upo(attacked).verify_signature()  # the attack: still a valid signature (comments are not signed)
    assert parse_upo(attacked).documents[0].invoice_number == "FV/100/0/2026"
    with pytest.raises(UPOValidationError, match="holds elements"):
        parse_upo(re.sub(rb">FV/100/0/2026<", b"><x>FV/1</x>00/0/2026<", xml, count=1))


# --- 3. every body is capped, and reading stops at the cap ---------------------------------------


def _endless_transport(body: EndlessBody, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, headers=headers, stream=body))


def test_a_3_gb_invoice_is_refused_at_the_cap_without_holding_it() -> None:
    body = EndlessBody()
    limits = BodyLimits(invoice=1_000_000)
    with KSeF(
        base_url="https://ksef.example/v2", access_token="t", transport=_endless_transport(body), body_limits=limits
    ) as ksef:
        tracemalloc.start()
        with pytest.raises(ResponseTooLargeError, match="invoice"):
            ksef.invoices.get(KSEF_NUMBER)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert body.sent <= 1_000_000 + 2 * 65536  # stopped reading at the cap
    assert peak < 3 * 1_000_000


def test_a_gzip_bomb_is_stopped_at_the_decompressed_cap() -> None:
    bomb = gzip.compress(b"0" * 50_000_000, 9)
    body = EndlessBody(bomb, len(bomb))  # a stream: httpx decodes it only as it is read
    transport = _endless_transport(body, {"Content-Encoding": "gzip"})
    client = KSeF(base_url="https://ksef.example/v2", access_token="t", transport=transport)
    with client as ksef, pytest.raises(ResponseTooLargeError, match="json"):
        ksef.sessions.get("20250625-SO-2C3E6C8000-B8C5A3D9A3-0F")


# The reviewer's finding 2: httpx inflated a whole network chunk in one call, and every layer of
# "Content-Encoding: gzip, gzip" in turn, before read_capped saw the size: 3.5 kB became 4 GB.
# docs/security.md: a gzip bomb "stops at the cap, not after". The SDK now decodes one coding
# itself, 64 KiB at a time, and refuses stacked ones unread.

BOMB = b"0" * 5_000_000  # 50 times the cap below
SMALL_JSON = BodyLimits(json=100_000, invoice=100_000)


def _encoded(data: bytes, coding: str) -> bytes:
    for layer in reversed([c.strip() for c in coding.split(",")]):
        data = zlib.compress(data, 9) if layer == "deflate" else gzip.compress(data, 9)
    return data


def _peak_of(call: Any, error: type[Exception]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(error):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("coding", "error"),
    [("gzip, gzip", ResponseFormatError), ("gzip", ResponseTooLargeError), ("deflate", ResponseTooLargeError),
     ("br", ResponseFormatError)],
)  # fmt: skip
def test_a_compressed_answer_inflates_no_further_than_its_cap(coding: str, error: type[Exception]) -> None:
    wire = _encoded(BOMB, coding) if coding != "br" else b"\x8b\x02\x80"
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"Content-Encoding": coding}, stream=EndlessBody(wire, len(wire)))
    )
    with KSeF(
        base_url="https://ksef.example/v2", access_token="t", transport=transport, body_limits=SMALL_JSON
    ) as ksef:
        with contextlib.suppress(error):  # once first: imports and caches are not the body's memory
            ksef.sessions.get("20250625-SO-2C3E6C8000-B8C5A3D9A3-0F")
        peak = _peak_of(lambda: ksef.sessions.get("20250625-SO-2C3E6C8000-B8C5A3D9A3-0F"), error)
    assert peak < 1_000_000


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


@pytest.mark.parametrize(("coding", "error"), [("gzip, gzip", ResponseFormatError), ("gzip", ResponseTooLargeError)])
def test_an_async_client_decodes_the_same_way(coding: str, error: type[Exception]) -> None:
    wire = _encoded(BOMB, coding)
    headers = {"Content-Encoding": coding}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers=headers, stream=_AsyncBody(wire)))

    async def call() -> None:
        async with AsyncKSeF(base_url="https://ksef.example/v2", access_token="t", transport=transport,
                             body_limits=SMALL_JSON) as ksef:  # fmt: skip
            await ksef.invoices.get(KSEF_NUMBER)

    with contextlib.suppress(error):  # once first: imports and caches are not the body's memory
        anyio.run(call)
    assert _peak_of(lambda: anyio.run(call), error) < 1_000_000


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "raw-deflate", "identity", ""])
def test_one_content_coding_is_decoded_and_only_the_ones_asked_for_are_offered(coding: str) -> None:
    invoice = b"<Faktura>" + b"x" * 200_000 + b"</Faktura>"
    if coding == "raw-deflate":  # sent as deflate by servers that leave out the zlib header
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        wire, coding = deflate.compress(invoice) + deflate.flush(), "deflate"
    else:
        wire = _encoded(invoice, coding) if coding not in ("identity", "") else invoice
    offered: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        offered.append(request.headers["Accept-Encoding"])
        return httpx.Response(200, headers={"Content-Encoding": coding}, stream=EndlessBody(wire, len(wire)))

    with KSeF(base_url="https://ksef.example/v2", access_token="t", transport=httpx.MockTransport(answer)) as ksef:
        assert ksef.invoices.get(KSEF_NUMBER) == invoice
    assert offered == ["gzip, deflate"]  # not br or zstd, whatever packages are installed


def test_a_huge_presigned_upo_is_refused_at_the_cap(ksef: KSeF, ksef_server: ThreadedServer) -> None:
    with ksef.online_session() as session:
        ref = session.send(sample_invoice("BIG/1"))
    ksef.sessions.wait(session.reference_number)
    body = EndlessBody()

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        return None if request.url.path.startswith("/v2/") else httpx.Response(200, stream=body, request=request)

    limits = BodyLimits(upo=2_000_000)
    hostile = _client(ksef_server, ksef.access_token, Tamper(swap), body_limits=limits)
    with hostile, pytest.raises(ResponseTooLargeError, match="upo"):
        hostile.upo.get_invoice_upo(session.reference_number, invoice_reference_number=ref)
    assert body.sent <= 2_000_000 + 2 * 65536


def test_a_presigned_upo_with_stacked_codings_is_refused_unread(ksef: KSeF, ksef_server: ThreadedServer) -> None:
    with ksef.online_session() as session:
        ref = session.send(sample_invoice("GZ/1"))
    reference = str(session.reference_number)
    ksef.sessions.wait(reference)
    wire = _encoded(BOMB, "gzip, gzip")

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path.startswith("/v2/"):
            return None
        headers = {"Content-Encoding": "gzip, gzip"}
        return httpx.Response(200, headers=headers, stream=EndlessBody(wire, len(wire)), request=request)

    hostile = _client(ksef_server, ksef.access_token, Tamper(swap), body_limits=BodyLimits(upo=2_000_000))
    with hostile, pytest.raises(ResponseFormatError, match="gzip, gzip"):
        hostile.upo.get_invoice_upo(reference, invoice_reference_number=ref)


def test_a_compressed_export_part_is_inflated_a_piece_at_a_time(
    ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path
) -> None:
    # A part is streamed to disk; httpx inflated each network chunk whole (here 30 MB from 30 kB)
    # before the part's declared size could stop it.
    _sent_batch(ksef, 1)
    wire = gzip.compress(bytes(30_000_000), 9)

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path.startswith("/v2/"):
            return None
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=EndlessBody(wire, len(wire)),
                              request=request)  # fmt: skip

    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with _client(ksef_server, ksef.access_token, Tamper(swap)) as hostile:
        peak = _peak_of(lambda: hostile.invoices.export(tmp_path, date_from=since), ExportError)
    assert peak < 10_000_000


def test_an_export_whose_metadata_inflates_is_stopped_at_the_cap(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("_metadata.json", b'{"invoices": [' + b" " * 60_000_000 + b"]}")])
    assert archive.stat().st_size < 1_000_000
    tracemalloc.start()
    with pytest.raises(ExportError, match="metadata cap"):
        unpack_export("REF", PACKAGE, archive, tmp_path / "out", BodyLimits(metadata=1_000_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000


def _export_parts(change: Any, body: EndlessBody) -> Tamper:
    """The export's status answer with its parts rewritten by ``change``; the storage answers
    every part download with ``body``."""

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if not request.url.path.startswith("/v2/"):
            return httpx.Response(200, stream=body, request=request)
        if request.method == "GET" and re.search(r"/invoices/exports/[^/]+$", request.url.path):
            status = json.loads(response.read())
            if status.get("package"):
                change(status["package"]["parts"])
            return httpx.Response(response.status_code, json=status, request=request)
        return None

    return Tamper(swap)


def _negative_twin(parts: list[dict[str, Any]]) -> None:
    parts.append({**parts[0], "ordinalNumber": 2, "encryptedPartSize": 200_000_000})
    parts[0]["encryptedPartSize"] = -200_000_000


def _text_size(parts: list[dict[str, Any]]) -> None:
    parts[0]["encryptedPartSize"] = str(parts[0]["encryptedPartSize"])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (_negative_twin, ExportError, "declares a size of -200000000"),
        # Not an integer: the spec's type, refused when the answer is read (before the export's checks).
        (_text_size, ResponseFormatError, "encryptedPartSize: expected integer"),
    ],
    ids=["negative", "text"],
)
def test_a_part_size_that_is_not_a_size_is_refused_before_any_download(
    ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path, change: Any, error: type[Exception], message: str
) -> None:
    # The reviewer's finding 8: the package cap (docs/security.md: export_package) was checked on
    # the sum of the declared sizes, so a part of -200 MB let one of 200 MB stream to disk with a
    # 1 MB cap. A part's encryptedPartSize is an int64 byte count (spec: InvoicePackagePart).
    _sent_batch(ksef, 1)
    body = EndlessBody(b"\0" * 65536, 200_000_000)
    limits = BodyLimits(export_package=1_000_000)
    hostile = _client(ksef_server, ksef.access_token, _export_parts(change, body), body_limits=limits)
    with hostile, pytest.raises(error, match=message):
        hostile.invoices.export(tmp_path, date_from=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert body.sent == 0


def test_one_part_over_the_package_cap_is_refused_before_any_download(
    ksef: KSeF, ksef_server: ThreadedServer, tmp_path: Path
) -> None:
    _sent_batch(ksef, 1)
    body = EndlessBody(b"\0" * 65536, 200_000_000)

    def big(parts: list[dict[str, Any]]) -> None:
        parts[0]["encryptedPartSize"] = 200_000_000

    hostile = _client(
        ksef_server, ksef.access_token, _export_parts(big, body), body_limits=BodyLimits(export_package=1_000_000)
    )
    with hostile, pytest.raises(ExportError, match="part 1 of 200000000 bytes, more than the cap"):
        hostile.invoices.export(tmp_path, date_from=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert body.sent == 0


# --- 4. one deadline per call: a slow drip or a silent server cannot hold it ---------------------


@pytest.mark.parametrize("answer", [drip(0.05), silent()], ids=["drip", "silent"])
def test_a_slow_server_cannot_hold_a_call_past_its_deadline(answer: Any) -> None:
    server = RawServer(answer)
    try:
        with KSeF(base_url=server.base_url, access_token="t", timeout=30, deadline=1.0) as ksef:
            started = time.monotonic()
            with pytest.raises(APITimeoutError, match="deadline"):
                ksef.invoices.get(KSEF_NUMBER)
            assert time.monotonic() - started < 2.0
            with pytest.raises(APITimeoutError):  # per call, through with_options
                ksef.with_options(deadline=0.3).invoices.get(KSEF_NUMBER)
            assert time.monotonic() - started < 3.0
    finally:
        server.close()


def test_an_async_call_has_the_same_deadline() -> None:
    server = RawServer(drip(0.05))

    async def call() -> None:
        async with AsyncKSeF(base_url=server.base_url, access_token="t", deadline=1.0) as ksef:
            await ksef.invoices.get(KSEF_NUMBER)

    try:
        started = time.monotonic()
        with pytest.raises(APITimeoutError, match="deadline"):
            anyio.run(call)
        assert time.monotonic() - started < 2.0
    finally:
        server.close()


def test_a_token_refresh_inside_a_call_keeps_to_the_call_s_deadline(ksef_server: ThreadedServer) -> None:
    # Review: the refresh a 401 set off had a deadline of its own, so a call could last twice its
    # ``deadline`` ("seconds one SDK call may take in all: every request, retry, wait and body").
    # Here the 401 comes after 3 s of a 4 s deadline and the refresh is answered 503 with
    # Retry-After 2: waiting would pass the call's deadline, so the call ends with that 503 at
    # once (it waited 2 s, refreshed again and only then ran out of time).
    fake = FakeTime()
    refreshes: list[float] = []
    armed = [False]

    def slow(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if armed[0] and request.url.path.endswith("/limits/context"):
            armed[0] = False
            fake.now += 3.0
            return httpx.Response(401, json={}, request=request)
        if armed[0] is False and request.url.path.endswith("/auth/token/refresh") and not refreshes:
            refreshes.append(fake.now)
            return httpx.Response(503, headers={"Retry-After": "2"}, request=request)
        if request.url.path.endswith("/auth/token/refresh"):
            refreshes.append(fake.now)
        return None

    credentials = self_signed_certificate()
    with KSeF(
        base_url=ksef_server.base_url, transport=Tamper(slow), clock=fake.clock, sleep=fake.sleep, rate_limit_scale=0
    ) as ksef:
        ksef.auth.login_with_certificate(credentials, context_nip=credentials.nip)
        armed[0], started = True, fake.now
        with pytest.raises(InternalServerError, match="refresh"):
            ksef.with_options(deadline=4).limits.context()
        assert len(refreshes) == 1 and fake.now - started == 3  # no wait past the deadline, no second refresh


def test_a_deeply_nested_refresh_answer_is_a_response_format_error(ksef_server: ThreadedServer) -> None:
    # Security review, session 10: the refresh answer was read with response.json() and only
    # ValueError, KeyError and TypeError caught, so nesting past the parser's depth escaped as a
    # bare RecursionError; docs/security.md promises ResponseFormatError.
    deep = b'{"accessToken": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    armed = [False]

    def nested(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if armed[0] and request.url.path.endswith("/limits/context"):
            armed[0] = False
            return httpx.Response(401, json={}, request=request)
        if request.url.path.endswith("/auth/token/refresh"):
            return httpx.Response(200, content=deep, headers={"Content-Type": "application/json"}, request=request)
        return None

    credentials = self_signed_certificate()
    with KSeF(base_url=ksef_server.base_url, transport=Tamper(nested), rate_limit_scale=0) as ksef:
        ksef.auth.login_with_certificate(credentials, context_nip=credentials.nip)
        armed[0] = True
        with pytest.raises(ResponseFormatError, match=r"/auth/token/refresh: unexpected body \(RecursionError"):
            ksef.limits.context()


# --- 5. a login is one unit: a transient failure at any step starts it again ---------------------


def _redeem_fails(times: int) -> Tamper:
    left = [times]

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path.endswith("/auth/token/redeem") and left[0] > 0:
            left[0] -= 1
            return httpx.Response(502, text="<html>Bad Gateway</html>", request=request)
        return None

    return Tamper(swap)


def test_a_502_on_redeem_restarts_the_login_from_a_new_challenge(ksef_server: ThreadedServer) -> None:
    creds = self_signed_certificate()
    tamper = _redeem_fails(1)
    with _client(ksef_server, None, tamper) as client:
        client.auth.login_with_certificate(creds, context_nip=creds.nip)
        assert client.access_token
    assert tamper.seen.count(("POST", "/v2/auth/challenge")) == 2


def test_a_login_that_keeps_failing_gives_up_within_the_retry_budget(ksef_server: ThreadedServer) -> None:
    creds = self_signed_certificate()
    tamper = _redeem_fails(100)
    with _client(ksef_server, None, tamper, max_retries=2) as client, pytest.raises(InternalServerError):
        client.auth.login_with_certificate(creds, context_nip=creds.nip)
    assert tamper.seen.count(("POST", "/v2/auth/challenge")) == 3


# --- 6. presigned links' credentials never reach the logs ----------------------------------------


def test_a_presigned_links_query_string_is_not_logged(
    ksef: KSeF, ksef_server: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    with ksef.online_session() as session:
        ref = session.send(sample_invoice("LOG/1"))
    ksef.sessions.wait(session.reference_number)

    def signed(body: dict[str, Any]) -> dict[str, Any]:
        body["upoDownloadUrl"] += "?sv=2024&sig=SECRET%2Bsignature"
        return body

    caplog.set_level(logging.DEBUG)
    tamper = Tamper(json_swap("GET", f"/invoices/{ref}", signed))
    with _client(ksef_server, ksef.access_token, tamper) as client:
        client.upo.get_invoice_upo(session.reference_number, invoice_reference_number=ref)
    assert "?[redacted]" in caplog.text
    assert "SECRET" not in caplog.text and "sig=" not in caplog.text
    assert "pageSize" in caplog.text or "/v2/" in caplog.text  # API URLs stay readable


# --- 7. only UTF-8 invoices, and no DTD under any encoding ---------------------------------------


def _utf16(xml: bytes, doctype: bool) -> bytes:
    text = xml.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    if doctype:
        end = text.index("?>") + 2
        text = text[:end] + '<!DOCTYPE Faktura [<!ENTITY e "x">]>' + text[end:]
    return text.encode("utf-16-le")


@pytest.mark.parametrize("doctype", [True, False], ids=["with-doctype", "plain"])
def test_a_utf16_invoice_is_refused_before_sending(ksef: KSeF, backend: KSeFBackend, doctype: bool) -> None:
    invoice = _utf16(sample_invoice("U16/1"), doctype)
    with pytest.raises(InvoiceSchemaError) as refused:
        validate_invoice(invoice)
    assert refused.value.rule in ("encoding", "dtd")
    with ksef.online_session() as session, pytest.raises(InvoiceRejectedError, match=r"UTF-8"):
        session.send(invoice)
    assert not list(ksef.sessions.invoices(session.reference_number))
    # validate=False sends the bytes as given (the SDK never parses them there): KSeF refuses them
    with ksef.online_session(validate=False) as session:
        ref = session.send(invoice)
    ksef.sessions.wait(session.reference_number)
    assert ksef.sessions.invoice(session.reference_number, ref).status.code == 430


# --- 8. a valid signature is not trust: the result says who signed -------------------------------


def test_a_upo_re_signed_by_anyone_is_reported_untrusted(ksef: KSeF) -> None:
    genuine = parse_upo(_signed_upo(ksef, "TRUST/1"))
    ksef_certificate = emulator_keys().upo_signing.certificate
    check = genuine.verify_signature(trusted=[ksef_certificate])
    assert check.trusted and check.certificate == ksef_certificate
    assert check.require_trusted() is check

    root = etree.fromstring(genuine.xml)
    for signature in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        root.remove(signature)
    attacker = self_signed_certificate()
    forged = parse_upo(sign_xades(root, attacker))
    check = forged.verify_signature(trusted=[ksef_certificate])  # integrity holds...
    assert not check.trusted  # ...but the signer is nobody we trust
    assert check.signer == attacker.certificate.subject.rfc4514_string()
    with pytest.raises(UPOSignatureError, match="not a trusted"):
        check.require_trusted()
    with pytest.raises(UPOSignatureError):
        forged.verify_signature(ksef_certificate)  # pinned: the forged one does not verify


def _directory_bomb(path: Path, records: int, zip64: bool) -> Path:
    """A zip of one member whose central directory holds ``records`` records (all of that member),
    its end records ZIP64 ones when ``zip64``: megabytes of directory for zipfile to read whole."""
    name, data = b"_metadata.json", b'{"invoices": []}'
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
    record = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0, 0, 0, 0, 0, 0
    )
    directory = (record + name) * records
    start = len(local) + len(name) + len(data)
    end = b""
    if zip64:
        end64_at = start + len(directory)
        end += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, records, records, len(directory), start)
        end += struct.pack("<4sLQL", b"PK\x06\x07", 0, end64_at, 1)
        end += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        end += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, records, records, len(directory), start, 0)
    path.write_bytes(local + name + data + directory + end)
    return path


@pytest.mark.parametrize("zip64", [False, True], ids=["zip32", "zip64"])
def test_a_package_with_a_huge_central_directory_is_refused_before_zipfile_reads_it(
    tmp_path: Path, zip64: bool
) -> None:
    # zipfile reads the whole central directory into ZipInfo objects when it opens a file (bounded by
    # the directory's declared size, not its record count): 60,000 records of 60 bytes were some
    # 40 MB and a second before the entry count was checked; a 1 GB package's directory could hold
    # 20 million. A package of KSeF's 10,000 invoices has a directory of about a megabyte.
    archive = _directory_bomb(tmp_path / "package.zip", 60_000, zip64)
    with zipfile.ZipFile(archive) as readable:  # a zip zipfile opens (the records are sound)
        assert len(readable.infolist()) == 60_000
    tracemalloc.start()
    try:
        with pytest.raises(ExportError, match="central directory declares"):
            unpack_export("REF", PACKAGE, archive, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak
    assert not archive.exists() and not list((tmp_path / "out").iterdir())


def test_a_package_within_the_directory_bound_is_read(tmp_path: Path) -> None:
    archive = _directory_bomb(tmp_path / "package.zip", 1, zip64=True)
    result = unpack_export("REF", InvoicePackage.from_dict({**PACKAGE.to_dict(), "invoiceCount": 0}), archive, tmp_path)
    assert result.files == [] and result.metadata == []


def test_a_signed_link_under_an_api_base_is_redacted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # A client given a bare host (no /v2) registers the whole host as the API's; where that host
    # serves the storage links too (the emulator), their signatures must still not reach a log.
    monkeypatch.setattr(_storage, "_API_BASES", {"http://127.0.0.1:8000/"})
    line = (
        "GET http://127.0.0.1:8000/storage/upo/1?sv=2024&SIG=SECRET "
        "GET http://127.0.0.1:8000/v2/sessions?pageSize=10 "
        "PUT http://127.0.0.1:8000/storage/part/1?X-Amz-Signature=SECRET&x=1"
    )
    assert _storage.redact_urls(line) == (
        "GET http://127.0.0.1:8000/storage/upo/1?[redacted] "
        "GET http://127.0.0.1:8000/v2/sessions?pageSize=10 "
        "PUT http://127.0.0.1:8000/storage/part/1?[redacted]"
    )
