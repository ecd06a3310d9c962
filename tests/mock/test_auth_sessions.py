"""The authentication sessions of a context (``auth_sessions``): listing pages, logging out."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from ksef_client import KSeF
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import SigningCredentials
from tests.conftest import NIP


def test_auth_sessions_are_listed_a_page_at_a_time_newest_first(raw: httpx.Client, ksef_mock: KSeFMock) -> None:
    # Spec GET /auth/sessions: pageSize (10-100, default 10), x-continuation-token,
    # "Sortowanie: startDate (Desc)", 400 "21418 Przekazany token kontynuacji ma nieprawidłowy
    # format"; auth/sesje.md pages through them with the continuation token.
    for _ in range(14):
        ksef_mock.token(NIP)  # 15 sessions with the raw client's own
    first = raw.get("/auth/sessions").json()
    assert len(first["items"]) == 10 and first["continuationToken"]
    second = raw.get("/auth/sessions", headers={"x-continuation-token": first["continuationToken"]}).json()
    assert len(second["items"]) == 5 and second["continuationToken"] is None
    listed = first["items"] + second["items"]
    assert len({s["referenceNumber"] for s in listed}) == 15
    starts = [s["startDate"] for s in listed]
    assert starts == sorted(starts, reverse=True)
    assert len(raw.get("/auth/sessions", params={"pageSize": 100}).json()["items"]) == 15
    garbage = raw.get("/auth/sessions", headers={"x-continuation-token": "garbage"})
    assert garbage.status_code == 400
    assert garbage.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21418


def test_logging_out_with_the_refresh_token(ksef_mock: KSeFMock) -> None:
    # Spec DELETE /auth/sessions/current: "Sposób uwierzytelnienia: `RefreshToken` lub
    # `AccessToken`" (a client whose access token has expired logs out with its refresh token).
    seal = self_signed_certificate(NIP, kind="seal")
    with KSeF(base_url=ksef_mock.base_url) as client:
        tokens = client.auth.login_with_certificate(SigningCredentials(seal.certificate, seal.private_key),
                                                    context_nip=NIP)  # fmt: skip
    with httpx.Client(base_url=ksef_mock.base_url) as http:
        refresh = {"Authorization": f"Bearer {tokens.refresh_token}"}
        assert http.delete("/auth/sessions/current", headers=refresh).status_code == 204
        assert http.post("/auth/token/refresh", headers=refresh).status_code == 400  # the session is revoked
        access = {"Authorization": f"Bearer {tokens.access_token}"}
        assert http.get("/auth/sessions", headers=access).json()["items"] == []  # no longer listed
        bogus = {"Authorization": f"Bearer {tokens.refresh_token[:-2]}xx"}
        assert http.delete("/auth/sessions/current", headers=bogus).status_code == 401


def test_only_active_sessions_are_listed(ksef_mock: KSeFMock, monkeypatch: pytest.MonkeyPatch) -> None:
    # Spec GET /auth/sessions: "Zwraca listę aktywnych sesji uwierzytelnienia." A login whose refresh
    # token has expired (refreshTokenValidUntil; REFRESH_TOKEN_TTL, 7 days), or whose KSeF token was
    # revoked (POST /auth/token/refresh: "21301 | Token KSeF został unieważniony."), is no longer active.
    backend = ksef_mock.backend
    start = backend.clock()  # now: the certificate below is valid from now on
    monkeypatch.setattr(backend, "clock", lambda: start)
    seal = self_signed_certificate(NIP, kind="seal")
    with KSeF(base_url=ksef_mock.base_url) as owner, KSeF(base_url=ksef_mock.base_url) as by_token:
        owner.auth.login_with_certificate(SigningCredentials(seal.certificate, seal.private_key), context_nip=NIP)
        created = owner.tokens.create(["InvoiceRead"], "sesje tokenem")
        owner.tokens.wait_active(created.reference_number)
        by_token.auth.login_with_token(created.token, context_nip=NIP)
        owner.tokens.revoke(created.reference_number)

    def listed() -> list[str]:
        with httpx.Client(base_url=ksef_mock.base_url) as http:
            answer = http.get("/auth/sessions", headers={"Authorization": f"Bearer {ksef_mock.token(NIP)}"})
        # The logins above, not the sessions minted to ask (they have no refresh token).
        return sorted(str(s["authenticationMethod"]) for s in answer.json()["items"] if s.get("refreshTokenValidUntil"))

    assert listed() == ["QualifiedSeal"]  # the KSeF token's session went with its token
    monkeypatch.setattr(backend, "clock", lambda: start + dt.timedelta(days=7, seconds=-1))
    assert listed() == ["QualifiedSeal"]
    monkeypatch.setattr(backend, "clock", lambda: start + dt.timedelta(days=7))
    assert listed() == []  # its refresh token has expired
