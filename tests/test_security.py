"""Secrets stay secret; TLS off is loud; every protected operation enforces token and permissions;
parsers and validators raise only our documented errors on any input (hypothesis)."""

from __future__ import annotations

import contextlib
import logging
import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksef_client import KSeF
from ksef_client._core import InsecureTransportWarning
from ksef_client._generated.operations import OPERATIONS
from ksef_client._retry import parse_retry_after
from ksef_client.errors import APIStatusError, UPOError, make_status_error
from ksef_client.identifiers import validate_ksef_number, validate_nip, validate_reference_number
from ksef_client.mock import KSeFBackend
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice, self_signed_certificate
from ksef_client.upo import parse_upo

NIP = "5265877635"
FUZZ = settings(max_examples=300, derandomize=True, deadline=None)


def test_tokens_and_keys_never_reach_logs_or_reprs(ksef_server: ThreadedServer, backend: KSeFBackend,
                                                   caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    creds = self_signed_certificate()
    with KSeF(base_url=ksef_server.base_url) as ksef:
        tokens = ksef.auth.login_with_certificate(creds, context_nip=creds.nip)
        created = ksef.tokens.create(["InvoiceRead", "InvoiceWrite"], "secret token")
        with ksef.online_session() as session:
            session.send(sample_invoice("SEC/1", seller_nip=creds.nip))
        secrets = [tokens.access_token, tokens.refresh_token, created.token.split("|")[-1]]
        text = caplog.text + repr(ksef) + repr(tokens) + repr(ksef._tokens) + repr(session._key) + repr(creds)
    assert caplog.records  # httpx and our transport did log at DEBUG
    for secret in secrets:
        assert secret not in text


def test_turning_tls_verification_off_warns(ksef_server: ThreadedServer) -> None:
    with pytest.warns(InsecureTransportWarning, match="TLS certificate verification is OFF"):
        KSeF(base_url=ksef_server.base_url, verify=False).close()


def _path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "20261125-SO-0000000000-0000000000-00", template)


def test_every_protected_operation_needs_a_token_and_its_permissions(ksef_server: ThreadedServer,
                                                                     backend: KSeFBackend) -> None:  # fmt: skip
    powerless = backend.mint_access_token(NIP, permissions=[])
    protected = {k: op for k, op in OPERATIONS.items() if op.requires_token}
    assert len(protected) > 60
    with httpx.Client(base_url=ksef_server.base_url) as http:
        for key, operation in protected.items():
            anonymous = http.request(operation.method, _path(operation.path), json={})
            assert anonymous.status_code == 401, key
            if operation.permissions and key.split(".")[0] not in ("testdata",):
                forbidden = http.request(operation.method, _path(operation.path), json={},
                                         headers={"Authorization": f"Bearer {powerless}"})  # fmt: skip
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


@given(st.integers(min_value=400, max_value=599), st.binary(max_size=500),
       st.sampled_from(["application/json", "application/problem+json", "text/html", ""]))  # fmt: skip
@FUZZ
def test_error_bodies_always_become_status_errors(status: int, body: bytes, content_type: str) -> None:
    response = httpx.Response(status, content=body, headers={"content-type": content_type},
                              request=httpx.Request("GET", "https://x/v2/sessions"))  # fmt: skip
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
        backend.list_sessions(access, "Online", continuation_token=token or None)
    except MockAPIError as error:
        assert error.code == 21418
