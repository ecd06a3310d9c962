"""X-System-Warning (API 2.9.0): KSeF TEST echoes X-Test-System-Warning as a warning of the answer,
ASCII-folded; the SDK logs each warning and keeps the latest on ``send_state.system_warnings``."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.errors import BadRequestError
from ksef_client.mock import KSeFBackend
from ksef_client.system_warnings import HEADER, MAX_HEADER, TEST_HEADER, SystemWarning, parse_system_warnings


def test_warnings_of_an_answer_are_logged_and_kept(
    ksef: KSeF, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    http = ksef.raw.get_httpx_client()
    with caplog.at_level(logging.WARNING, logger="ksef_client"):
        warning = "[W-1]: Zażółć gęślą jaźń | [W-2]: stare pole".encode()  # UTF-8 bytes: httpx sends them as they are
        answer = http.get("/limits/context", headers={TEST_HEADER.encode(): warning})
    assert answer.status_code == 200
    assert answer.headers["X-System-Warning"] == "[W-1]: Zazolc gesla jazn | [W-2]: stare pole"  # ASCII-folded
    assert list(ksef.send_state.system_warnings) == [
        SystemWarning("W-1", "Zazolc gesla jazn", "GET", "/v2/limits/context"),
        SystemWarning("W-2", "stare pole", "GET", "/v2/limits/context"),
    ]
    assert "[W-1] Zazolc gesla jazn" in caplog.text


def test_no_warning_without_the_test_header_nor_on_production_nor_on_an_error(ksef: KSeF, backend: KSeFBackend) -> None:
    http = ksef.raw.get_httpx_client()
    assert "X-System-Warning" not in http.get("/limits/context").headers
    with pytest.raises(BadRequestError):  # an error answer carries no warning
        http.get("/sessions/x", headers={TEST_HEADER: "[W]: w"})
    backend.profile = "PROD"
    assert "X-System-Warning" not in http.get("/limits/context", headers={TEST_HEADER: "[W]: w"}).headers
    assert not ksef.send_state.system_warnings


def test_a_header_the_spec_s_format_does_not_fit_is_kept_whole() -> None:
    assert parse_system_warnings(" something odd ", "GET", "/v2/x") == [
        SystemWarning(None, "something odd", "GET", "/v2/x")
    ]


def test_control_characters_never_reach_the_echoed_header(ksef: KSeF) -> None:
    answer = ksef.raw.get_httpx_client().get("/limits/context", headers={TEST_HEADER: "[W]: a\tb"})
    assert answer.headers["X-System-Warning"] == "[W]: ab"


def test_a_hostile_header_is_read_in_its_first_2_kb_in_linear_time() -> None:
    # Spec, components/schemas/SystemWarning: "Regex pojedynczego ostrzeżenia:
    # \[(?<code>[^\]]+)\]: (?<message>[^|]+)". Applied as written it is quadratic in a run of '[':
    # a 16 KB header (h11's limit) cost ~0.7 s of CPU per answer, then was logged whole.
    started = time.process_time()
    for _ in range(10):
        [warning] = parse_system_warnings("[" * 16000, "GET", "/v2/x")
    assert time.process_time() - started < 1.0  # was ~7 s
    assert warning.code is None and len(warning.message) == MAX_HEADER + 1 and warning.message.endswith("…")
    assert parse_system_warnings("[W-1]: " + "x" * 20000, "GET", "/v2/x") == [
        SystemWarning("W-1", "x" * (MAX_HEADER - len("[W-1]: ")) + "…", "GET", "/v2/x")
    ]
    # a code is at most 100 characters and holds no '[': the last '[' before ']' opens it
    assert parse_system_warnings("[[W-1]: a | [" + "c" * 101 + "]: b", "GET", "/v2/x") == [
        SystemWarning("W-1", "a", "GET", "/v2/x")
    ]


def test_a_client_keeps_and_logs_only_the_first_2_kb(caplog: pytest.LogCaptureFixture) -> None:
    header = "[W-1]: " + "x" * 15000
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}, headers={HEADER: header}))
    with KSeF(base_url="https://ksef.example/v2", access_token="t", transport=transport) as client:
        with caplog.at_level(logging.WARNING, logger="ksef_client"):
            client.raw.get_httpx_client().get("/limits/context")
        [warning] = client.send_state.system_warnings
    assert len(warning.message) <= MAX_HEADER and len(caplog.text) < MAX_HEADER + 500


def test_control_characters_of_a_header_never_reach_the_log() -> None:
    # Header bytes 0x80-0xFF pass h11 (obs-text); as UTF-8 they can be C1 controls (U+009B: CSI).
    assert parse_system_warnings("[W\x9b2J]: a\x9b31mb\x7f", "GET", "/v2/x") == [
        SystemWarning("W2J", "a31mb", "GET", "/v2/x")
    ]
