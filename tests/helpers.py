"""Test helpers: a fake clock, invoice XML, and a transport that records when requests were sent."""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Any

import anyio.lowlevel
import httpx
import pytest

from ksef_client.testing import sample_invoice


class FakeTime:
    """``clock`` and ``sleep`` for clients: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        # A real sleep lets the other tasks run: requests on their way get their answers.
        await anyio.lowlevel.checkpoint()


class SharedTime(FakeTime):
    """``FakeTime`` whose sleeps move the emulator's clock too (``backend.clock``, restored by
    ``monkeypatch``): the emulator's rate limits count on the same fake time as the client's
    throttle. Threads may share it."""

    def __init__(self, backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.server_now: dt.datetime = backend.clock()
        monkeypatch.setattr(backend, "clock", lambda: self.server_now)

    def sleep(self, seconds: float) -> None:
        # Both clocks move by the same whole microseconds (the emulator's clock has no finer
        # grain), rounded up: a wait to a window's exact edge then ends on it at both ends.
        step = dt.timedelta(microseconds=math.ceil(seconds * 1_000_000))
        with self._lock:
            self.sleeps.append(seconds)
            self.now += step.total_seconds()
            self.server_now += step


def invoice_xml(number: str, seller: str = "5265877635", issued: str = "2026-11-20") -> bytes:
    """A valid FA(3) invoice (the emulator checks the XSD) with the given key fields."""
    return sample_invoice(number, seller_nip=seller, issue_date=issued)


class RecordingTransport(httpx.BaseTransport):
    """Passes requests on and records (fake time, method, path) of each one sent."""

    def __init__(self, inner: httpx.BaseTransport, time: FakeTime) -> None:
        self.inner = inner
        self.time = time
        self.sent: list[tuple[float, str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.time.now, request.method, request.url.path))
        return self.inner.handle_request(request)


def certificate_with(*attributes: tuple[Any, str]) -> Any:
    """``SigningCredentials`` of a self-signed certificate (EC P-256, valid for 30 days) whose
    subject has exactly these ``(NameOID, value)`` attributes: certificates that
    ``ksef_client.testing.self_signed_certificate`` does not make (no NIP, a person with an
    employer's VATPL-...)."""
    from cryptography import x509

    return certificate_named(x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes]))


def certificate_named(name: Any) -> Any:
    """``SigningCredentials`` of a self-signed certificate (EC P-256, valid for 30 days) of the
    subject ``name`` (an ``x509.Name``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from ksef_client.xades import SigningCredentials

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return SigningCredentials(certificate, key)


def fsync_spy(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The paths ``os.fsync`` flushes from now on, in order (read from ``/proc/self/fd``; the
    flushes still happen)."""
    import os
    from pathlib import Path

    flushed: list[Any] = []
    real_fsync = os.fsync

    def fsync(handle: int) -> None:
        flushed.append(Path(os.readlink(f"/proc/self/fd/{handle}")))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    return flushed


def fingerprint(credentials: Any) -> str:
    """The SHA-256 fingerprint (upper-case hex) of a certificate's DER: what a ``Fingerprint``
    grant names and a ``certificateFingerprint`` login authenticates."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(credentials.certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


def create_context(base_url: str, backend: Any, context: tuple[str, str], administrator: tuple[str, str]) -> None:
    """Create the ``InternalId`` or ``NipVatUe`` context ``context`` as KSeF does: its NIP's owner
    appoints ``administrator`` there (``POST /permissions/subunits/grants`` "tworzony jest
    identifikator wewnętrzny"; ``POST /permissions/eu-entities/administration/grants`` "tworzony jest
    kontekst złożony", ``administrator`` then a ``Fingerprint``). The emulator lets nobody log in to
    such a context before (its NIP's owner neither)."""
    from ksef_client import KSeF

    token = backend.mint_access_token(context[1][:10])
    with KSeF(base_url=base_url, access_token=token, sleep=lambda _: None) as owner:
        if context[0] == "InternalId":
            person = {
                "subjectDetailsType": "PersonByIdentifier",
                "personById": {"firstName": "Jan", "lastName": "Nowak"},
            }
            ref = owner.permissions.grant_subunit(
                subject_identifier=administrator, context_identifier=context, description="administrator jednostki",
                subject_details=person, subunit_name="Oddział testowy",
            )  # fmt: skip
        else:
            entity = {"fullName": "Firma GmbH", "address": "Berlin"}
            ref = owner.permissions.grant_eu_entity_administrator(
                subject_identifier=administrator, context_identifier=context, description="administrator UE",
                eu_entity_name="Firma GmbH, Berlin", eu_entity_details=entity,
                subject_details={"subjectDetailsType": "EntityByFingerprint", "entityByFp": entity},
            )  # fmt: skip
        owner.permissions.wait(ref)
