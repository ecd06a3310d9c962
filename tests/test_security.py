"""Secrets stay secret; TLS off is loud; every protected operation enforces token and permissions;
parsers and validators raise only our documented errors on any input (hypothesis)."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import logging
import os
import re
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksef_client import KSeF, schemas
from ksef_client._generated.operations import OPERATIONS
from ksef_client._retry import parse_retry_after
from ksef_client._settings import InsecureTransportWarning, resolve_settings
from ksef_client._storage import check_storage_url
from ksef_client.errors import APIConnectionError, APIStatusError, UntrustedURLError, UPOError, make_status_error
from ksef_client.identifiers import validate_ksef_number, validate_nip, validate_reference_number
from ksef_client.mock import KSeFBackend
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.sessions import SessionQuery
from ksef_client.schemas import InvoiceSchemaError, validate_invoice
from ksef_client.testing import random_nip, sample_invoice, self_signed_certificate
from ksef_client.upo import parse_upo
from ksef_client.xades import SignatureVerificationError, verify_xades
from tests.helpers import FakeTime

NIP = "5265877635"


class RecordingTransport(httpx.BaseTransport):
    """Passes requests on and notes their URLs."""

    def __init__(self, inner: httpx.BaseTransport, seen: list[str]) -> None:
        self.inner, self.seen = inner, seen

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(str(request.url))
        return self.inner.handle_request(request)


FUZZ = settings(max_examples=300, derandomize=True, deadline=None)


def test_tokens_and_keys_never_reach_logs_or_reprs(
    ksef_server: ThreadedServer, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = self_signed_certificate()
    with KSeF(base_url=ksef_server.base_url) as ksef:
        tokens = ksef.auth.login_with_certificate(creds, context_nip=creds.nip)
        created = ksef.tokens.create(["InvoiceRead", "InvoiceWrite"], "secret token")
        with ksef.online_session() as session:
            session.send(sample_invoice("SEC/1", seller_nip=creds.nip))
        secrets = [tokens.access_token, tokens.refresh_token, created.token.split("|")[-1]]
        text = caplog.text + repr(ksef) + repr(tokens) + repr(ksef._tokens) + repr(session._key) + repr(creds)
        text += repr(created) + str(created) + f"{created}" + repr([created])  # the new KSeF token's secret
        assert created.reference_number in repr(created)  # only the secret is left out
    assert caplog.records  # httpx and our transport did log at DEBUG
    for secret in secrets:
        assert secret not in text


def test_turning_tls_verification_off_warns(ksef_server: ThreadedServer) -> None:
    with pytest.warns(InsecureTransportWarning, match="TLS certificate verification is OFF"):
        KSeF(base_url=ksef_server.base_url, verify=False).close()


@pytest.mark.parametrize(
    ("base_url", "warns"),
    [
        ("http://ksef.example.com/v2", True),
        ("http://10.0.0.7:8000/v2", True),
        ("http://127.0.0.1:8000/v2", False),
        ("http://localhost:8000/v2", False),
        ("http://[::1]:8000/v2", False),
        ("https://ksef.example.com/v2", False),
    ],
)
def test_plain_http_to_another_machine_warns_as_loud_as_verify_false(base_url: str, warns: bool) -> None:
    # Review: verify=False warned, a mistyped scheme sending the bearer token in clear did not.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        KSeF(base_url=base_url, access_token="t").close()
    insecure = [w for w in caught if issubclass(w.category, InsecureTransportWarning)]
    assert bool(insecure) is warns
    if warns:
        assert "plain http" in str(insecure[0].message)


def test_plain_http_through_a_transport_of_the_caller_s_own_is_quiet() -> None:
    # An in-process emulator or a recording: nothing crosses a network.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        KSeF(
            base_url="http://ksef.local/v2",
            access_token="t",
            transport=httpx.MockTransport(lambda r: httpx.Response(200)),
        ).close()
    assert not [w for w in caught if issubclass(w.category, InsecureTransportWarning)]


def test_a_certificate_refused_is_named_at_once_and_not_tried_again(tmp_path: Path) -> None:
    # Review: a TLS failure on this machine read "Is the emulator running?", and the certificate,
    # refused the same way every time, was tried max_retries more times with backoff.
    fake = FakeTime()
    with (
        _self_signed_https_server(tmp_path) as port,
        KSeF(base_url=f"https://127.0.0.1:{port}/v2", access_token="t", sleep=fake.sleep, clock=fake.clock) as ksef,
    ):
        with pytest.raises(APIConnectionError, match=r"TLS with 127\.0\.0\.1") as raised:
            ksef.limits.context()
        assert "emulator running" not in str(raised.value)
        assert ksef.send_state.requests_sent == 1 and fake.sleeps == []


@contextlib.contextmanager
def _self_signed_https_server(folder: Path) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 with a certificate nobody trusts; its port."""
    credentials = self_signed_certificate()
    pem = folder / "server.pem"
    pem.write_bytes(credentials.certificate_pem() + credentials.private_key_pem())
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "20261125-SO-0000000000-0000000000-00", template)


def test_every_protected_operation_needs_a_token_and_its_permissions(
    ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    powerless = backend.mint_access_token(NIP, permissions=[])
    protected = {k: op for k, op in OPERATIONS.items() if op.requires_token}
    assert len(protected) > 60
    with httpx.Client(base_url=ksef_server.base_url) as http:
        for key, operation in protected.items():
            anonymous = http.request(operation.method, _path(operation.path), json={})
            assert anonymous.status_code == 401, key
            if operation.permissions and key.split(".")[0] not in ("testdata",):
                forbidden = http.request(
                    operation.method, _path(operation.path), json={}, headers={"Authorization": f"Bearer {powerless}"}
                )
                assert forbidden.status_code == 403, key
                assert forbidden.headers["content-type"].startswith("application/problem+json")


@given(st.text(max_size=40))
@FUZZ
def test_identifier_validators_raise_only_value_error(value: str) -> None:
    for validate in (validate_nip, validate_ksef_number, validate_reference_number):
        with contextlib.suppress(ValueError):
            assert validate(value) == value


@given(st.binary(max_size=2000))
@FUZZ
def test_upo_parser_raises_only_upo_errors(data: bytes) -> None:
    with contextlib.suppress(UPOError):
        parse_upo(data)


@given(
    st.integers(min_value=400, max_value=599),
    st.binary(max_size=500),
    st.sampled_from(["application/json", "application/problem+json", "text/html", ""]),
)
@FUZZ
def test_error_bodies_always_become_status_errors(status: int, body: bytes, content_type: str) -> None:
    response = httpx.Response(
        status,
        content=body,
        headers={"content-type": content_type},
        request=httpx.Request("GET", "https://x/v2/sessions"),
    )
    assert isinstance(make_status_error(response), APIStatusError)


@given(st.one_of(st.none(), st.text(max_size=40)))
@FUZZ
def test_retry_after_never_raises(value: str | None) -> None:
    parsed = parse_retry_after(value, 1_700_000_000.0)
    assert parsed is None or parsed >= 0


@given(st.text(max_size=80))
@FUZZ
def test_foreign_continuation_tokens_are_21418(token: str) -> None:
    backend = KSeFBackend()
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    try:
        backend.sessions.listing(access, SessionQuery("Online"), 10, token or None)
    except MockAPIError as error:
        assert error.code == 21418


def test_an_expired_token_is_refused_everywhere(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    expired = backend.mint_access_token(NIP, ttl=dt.timedelta(seconds=-1))
    protected = {k: op for k, op in OPERATIONS.items() if op.requires_token}
    with httpx.Client(base_url=ksef_server.base_url, headers={"Authorization": f"Bearer {expired}"}) as http:
        for key, operation in protected.items():
            assert http.request(operation.method, _path(operation.path), json={}).status_code == 401, key


def test_another_context_sees_nothing_of_this_one(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    # Context A sends an invoice; context B (every permission, neither seller nor buyer) asks for
    # A's session, invoice, UPO and token by their real identifiers and must get none of them.
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as owner:
        with owner.online_session() as session:
            invoice_ref = session.send(sample_invoice("CTX/1"))
        status = owner.sessions.wait(session.reference_number)
        ksef_number = owner.sessions.invoice(session.reference_number, invoice_ref).ksef_number
        upo_ref = status.upo.pages[0].reference_number  # type: ignore[union-attr]
        token_ref = owner.tokens.create(["InvoiceRead"], "context A").reference_number
    ref = session.reference_number
    paths = [
        f"/sessions/{ref}",
        f"/sessions/{ref}/invoices",
        f"/sessions/{ref}/invoices/failed",
        f"/sessions/{ref}/invoices/{invoice_ref}",
        f"/sessions/{ref}/invoices/{invoice_ref}/upo",
        f"/sessions/{ref}/invoices/ksef/{ksef_number}/upo",
        f"/sessions/{ref}/upo/{upo_ref}",
        f"/invoices/ksef/{ksef_number}",
        f"/tokens/{token_ref}",
    ]
    stranger = backend.mint_access_token(random_nip())
    with httpx.Client(base_url=ksef_server.base_url, headers={"Authorization": f"Bearer {stranger}"}) as http:
        for path in paths:
            answer = http.get(path)
            assert answer.status_code in (400, 403, 404), (path, answer.status_code)
            # (Error details may echo the identifier that was asked for; the content must not leak.)
            assert "CTX/1" not in answer.text and "<Faktura" not in answer.text, path


def test_presigned_links_only_go_to_the_environment_storage(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    token = backend.mint_access_token(NIP)
    with KSeF(base_url=ksef_server.base_url, access_token=token) as ksef:
        with ksef.online_session() as session:
            invoice_ref = session.send(sample_invoice("URL/1"))
        ksef.sessions.wait(session.reference_number)
        # The emulator serves its links on its own host, which a custom base_url trusts by default.
        assert ksef.upo.get_invoice_upo(session.reference_number, invoice_reference_number=invoice_ref)
        seen: list[str] = []
        recording = RecordingTransport(httpx.HTTPTransport(), seen)
        strict = ksef.with_options(storage_hosts=["*.blob.core.windows.net"], transport=recording)
        with strict, pytest.raises(UntrustedURLError, match=r"host '127\.0\.0\.1' is not one of"):
            strict.upo.get_invoice_upo(session.reference_number, invoice_reference_number=invoice_ref)
        assert seen and not [url for url in seen if "/_storage/" in url]  # refused before it was sent


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ksefstorage.blob.core.windows.net/upo/1?sig=x", True),
        ("https://upo.api-test.ksef.mf.gov.pl/x", True),
        ("http://ksefstorage.blob.core.windows.net/upo/1", False),  # downgrade to plain http
        ("https://mf.gov.pl.attacker.example/x", False),
        ("https://attacker.example/blob.core.windows.net", False),
        ("https://evil-mf.gov.pl/x", False),
    ],
)
def test_official_environments_trust_only_their_storage_hosts(url: str, allowed: bool) -> None:
    settings_ = resolve_settings("TEST", None, 30.0, True)
    if allowed:
        check_storage_url(httpx.URL(url), settings_)
    else:
        with pytest.raises(UntrustedURLError):
            check_storage_url(httpx.URL(url), settings_)


XXE = b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><Faktura>&x;</Faktura>'
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9))
    + b"]><Faktura>&j;</Faktura>"
)
DEEP = b"<Faktura>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Faktura>"  # 700 kB, 100,000 levels


@pytest.mark.parametrize(
    "xml", [XXE, LAUGHS, DEEP, b"<Faktura>" + b"x" * 1_000_001], ids=["xxe", "laughs", "deep", "huge"]
)
def test_hostile_xml_gets_our_error_at_every_entry(xml: bytes) -> None:
    # Nothing is expanded or fetched: each entry point refuses with its documented error.
    with pytest.raises(InvoiceSchemaError):
        validate_invoice(xml)
    with pytest.raises(UPOError):
        parse_upo(xml)
    with pytest.raises(SignatureVerificationError):
        verify_xades(xml)


@pytest.mark.parametrize("xml", [XXE, LAUGHS, DEEP], ids=["xxe", "laughs", "deep"])
def test_the_emulator_rejects_hostile_invoices_without_failing(
    xml: bytes, ksef_server: ThreadedServer, backend: KSeFBackend
) -> None:
    with KSeF(base_url=ksef_server.base_url, access_token=backend.mint_access_token(NIP)) as ksef:
        with ksef.online_session(validate=False) as session:
            ref = session.send(xml)
        ksef.sessions.wait(session.reference_number)
        status = ksef.sessions.invoice(session.reference_number, ref).status
    assert status.code == 430, status  # "Błąd weryfikacji pliku faktury", with the reason in details


@FUZZ
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8))
def test_discouraged_characters_are_found_in_the_bytes_as_in_the_text(text: str) -> None:
    # check_document scans the UTF-8 bytes; the rule is stated on characters (XML 1.0, 2.2).
    edges = "\x7f\x80\x84\x85\x86\x9f\xa0\ufdcf\ufdd0\ufdef\ufdf0\ufffe\uffff\U0001fffe\U0001ffff\U00020000\U0010ffff"
    for sample in (text, *(text + edge for edge in edges)):
        assert schemas._has_discouraged(sample.encode()) == (schemas._DISCOURAGED.search(sample) is not None)


def test_invoices_validated_from_many_threads_each_get_their_own_errors() -> None:
    # Each thread validates with a compiled copy of the XSD of its own (lxml keeps one error log
    # per schema object): the errors of one invoice never show up for another, and at most one copy
    # per core is made.
    from concurrent.futures import ThreadPoolExecutor

    good = sample_invoice("T/1", lines=5)
    bad = {n: good.replace(b"<P_2>T/1</P_2>", b"<P_2>T/1</P_2><Nope" + str(n).encode() + b"/>", 1) for n in range(6)}

    def outcome(n: int) -> str:
        try:
            schemas.validate_invoice(bad[n % 6] if n % 2 else good)
        except InvoiceSchemaError as error:
            return f"{n % 6}: {'Nope' + str(n % 6) in str(error)}"
        return "valid"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(outcome, range(600)))
    assert outcomes == [f"{n % 6}: True" if n % 2 else "valid" for n in range(600)]
    copies = schemas._copies("FA (3)")
    assert 0 <= copies._left_to_make < (os.cpu_count() or 1)
