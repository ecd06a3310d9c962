"""The same flows against KSeF's TEST environment. Skipped unless ``KSEF_LIVE=1``.

No credentials are needed: TEST accepts a self-signed certificate for a random valid NIP. These
tests use the network (api-test.ksef.mf.gov.pl) and TEST's real rate limits, so they are slow;
TEST is also down for maintenance some afternoons.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksef_client import Environment, KSeF
from ksef_client.testing import TestCertificate, reachable, sample_invoice, self_signed_certificate

LIVE = os.environ.get("KSEF_LIVE") == "1"
pytestmark = [
    pytest.mark.skipif(not LIVE, reason="live KSeF TEST run: set KSEF_LIVE=1"),
    pytest.mark.skipif(LIVE and not reachable(Environment.TEST.base_url), reason="KSEF_LIVE=1 but TEST is unreachable"),
]


@pytest.fixture(scope="module")
def seal() -> TestCertificate:
    return self_signed_certificate(kind="seal")


@pytest.fixture(scope="module")
def ksef(seal: TestCertificate) -> Iterator[KSeF]:
    with KSeF(environment=Environment.TEST, timeout=60) as client:
        client.auth.login_with_certificate(seal, context_nip=seal.nip)
        yield client


def test_certificate_logins_with_rsa_and_ec() -> None:
    for key_type in ("rsa", "ec"):
        person = self_signed_certificate(kind="person", key_type=key_type)
        with KSeF(environment=Environment.TEST) as client:
            tokens = client.auth.login_with_certificate(person, context_nip=person.nip)
            assert tokens.access_valid_until > dt.datetime.now(dt.UTC)


def test_online_session_upo_and_token_login(ksef: KSeF, seal: TestCertificate) -> None:
    with ksef.online_session() as session:
        ref = session.send(sample_invoice("LIVE/1", seller_nip=seal.nip))
    status = ksef.sessions.wait(session.reference_number, timeout=300)
    assert status.status.code == 200
    upo = ksef.upo.get_invoice_upo(session.reference_number, invoice_reference_number=ref)
    assert upo.documents[0].invoice_number == "LIVE/1"
    created = ksef.tokens.create(["InvoiceRead", "InvoiceWrite"], "ksef_client live test")
    ksef.tokens.wait_active(created.reference_number, timeout=300)  # Pending until KSeF activates it
    with KSeF(environment=Environment.TEST) as other:
        other.auth.login_with_token(created.token, context_nip=seal.nip, timeout=300)
    ksef.tokens.revoke(created.reference_number)


def test_batch_and_download(ksef: KSeF, seal: TestCertificate, tmp_path: Path) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    invoices = [sample_invoice(f"LIVE/B/{i}", seller_nip=seal.nip) for i in range(20)]
    result = ksef.send_batch(invoices, wait=True, timeout=600)
    assert result.status is not None and result.status.successful_invoice_count == 20
    records = list(ksef.invoices.query("Subject1", date_from=start))
    assert len(records) >= 20
    assert ksef.invoices.get(records[0].ksef_number).startswith(b"<?xml")
    export = ksef.invoices.export(tmp_path, "Subject1", date_from=start, timeout=900)
    assert len(export.files) >= 20
