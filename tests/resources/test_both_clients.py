"""Every resource through both clients: the same calls, once on ``KSeF`` and once on ``AsyncKSeF``
(driven from a blocking portal), against the same emulator, with the same results."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import AsyncIterator, Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from cryptography.hazmat.primitives.asymmetric import ec

from ksef_client import AsyncKSeF, KSeF, parse_upo
from ksef_client.certificates import build_csr
from ksef_client.mock import KSeFBackend
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.pagination import AsyncPager, Pager
from ksef_client.testing import sample_invoice, self_signed_certificate
from tests.conftest import NIP
from tests.helpers import FakeTime


async def _awaited(value: Any) -> Any:
    return await value


async def _collected(pager: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in pager]


class Driver:
    """Calls ``client.<path>(...)`` and returns plain results, whichever client it drives."""

    def __init__(self, client: KSeF | AsyncKSeF, portal: BlockingPortal | None) -> None:
        self.client, self.portal = client, portal

    def __call__(self, path: str, *args: Any, **kwargs: Any) -> Any:
        result = attrgetter(path)(self.client)(*args, **kwargs)
        if self.portal is None:
            return list(result) if isinstance(result, Pager) else result
        if isinstance(result, AsyncPager):
            return self.portal.call(_collected, result)
        return self.portal.call(_awaited, result) if inspect.isawaitable(result) else result


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest, ksef_mock: KSeFMock) -> Iterator[Driver]:
    time = FakeTime()
    token = ksef_mock.token(NIP)
    if request.param == "sync":
        with KSeF(base_url=ksef_mock.base_url, access_token=token, sleep=time.sleep, clock=time.clock) as client:
            yield Driver(client, None)
        return
    with start_blocking_portal() as portal:

        async def opened() -> AsyncKSeF:
            return AsyncKSeF(base_url=ksef_mock.base_url, access_token=token, sleep=time.asleep, clock=time.clock)

        client = portal.call(opened)
        try:
            yield Driver(client, portal)
        finally:
            portal.call(client.aclose)


def _processed_session(backend: KSeFBackend, count: int) -> str:
    access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
    session = backend.sessions.open(access)
    for index in range(count):
        backend.sessions.add_invoice(session, sample_invoice(f"BOTH/{index}"))
    backend.sessions.close(session)
    return session.reference_number


def test_sessions_status_listings_and_upo(drive: Driver, backend: KSeFBackend) -> None:
    reference = _processed_session(backend, 12)
    assert [s.reference_number for s in drive("sessions.list", "Online", page_size=10)] == [reference]
    assert drive("sessions.wait", reference, interval=1).status.code == 200
    invoices = drive("sessions.invoices", reference, page_size=10)
    assert len(invoices) == 12 and all(i.status.code == 200 for i in invoices)
    first = drive("sessions.invoice", reference, invoices[0].reference_number)
    assert first.ksef_number == invoices[0].ksef_number
    upo = drive("upo.get_invoice_upo", reference, ksef_number=first.ksef_number)
    assert upo.documents[0].ksef_number == first.ksef_number
    assert len(drive("upo.get_session_upo", reference).documents) == 12
    assert [parse_upo(xml).session_reference_number for xml in drive("upo.get_session_upo_xml", reference)] == [
        reference
    ]


def test_invoices_download_query_and_export(drive: Driver, backend: KSeFBackend, tmp_path: Path) -> None:
    _processed_session(backend, 3)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    records = drive("invoices.query", "Subject1", date_from=since, date_type="Invoicing", page_size=10)
    assert len(records) == 3 and {str(r.invoice_type) for r in records} == {"Vat"}
    assert drive("invoices.get", records[0].ksef_number).startswith(b"<?xml")
    for compression in ("Zip", "TarGz"):
        target = tmp_path / compression
        exported = drive("invoices.export", target, date_from=since, date_type="Invoicing", interval=0,
                         compression=compression)  # fmt: skip
        assert sorted(p.name for p in exported.files) == sorted(f"{r.ksef_number}.xml" for r in records)
        assert [m["ksefNumber"] for m in exported.metadata] and not list(tmp_path.glob("*.tar.gz"))


def test_tokens_limits_and_collective_identifiers(drive: Driver, backend: KSeFBackend) -> None:
    created = drive("tokens.create", ["InvoiceRead"], "both clients")
    drive("tokens.revoke", created.reference_number)
    assert str(drive("tokens.get", created.reference_number).status) == "Revoked"
    assert drive("limits.context").collective_identifier.max_invoices == 500
    assert drive("limits.rate").session_list.per_second == -1
    reference = _processed_session(backend, 2)
    numbers = [i.ksef_number for i in drive("sessions.invoices", reference)]
    identifier = drive("collective_identifiers.create", numbers)
    assert sorted(i.ksef_number for i in drive("collective_identifiers.invoices", [identifier])) == sorted(numbers)


def test_batch_send(drive: Driver) -> None:
    result = drive("send_batch", [sample_invoice(f"BB/{i}") for i in range(5)], wait=True)
    assert result.status is not None and result.status.successful_invoice_count == 5


def test_sessions_by_closing_and_modification_dates(drive: Driver, backend: KSeFBackend) -> None:
    reference = _processed_session(backend, 1)
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    assert [s.reference_number for s in drive("sessions.list", "Online", date_closed_from=now - hour)] == [reference]
    assert drive("sessions.list", "Online", date_closed_from=now + hour) == []
    assert drive("sessions.list", "Online", date_modified_to=now - hour) == []
    with pytest.raises(ValueError, match="date_closed_to"):
        drive("sessions.list", "Online", date_closed_to=dt.datetime(2026, 1, 1))  # naive


def test_certificates(drive: Driver) -> None:
    # certyfikaty-KSeF.md §2: certificates are requested only after a login with a signature
    drive("auth.login_with_certificate", self_signed_certificate(NIP, kind="seal"), context_nip=NIP)
    assert drive("certificates.limits").can_request
    key = ec.generate_private_key(ec.SECP256R1())
    accepted = drive(
        "certificates.enroll", "Oba klienty", build_csr(drive("certificates.enrollment_data").to_dict(), key)
    )
    assert drive("certificates.enrollment_status", accepted.reference_number).status.code == 200
    serial = drive("certificates.wait_enrolled", accepted.reference_number).certificate_serial_number
    (found,) = drive("certificates.retrieve", [serial])
    assert found.certificate.public_key() == key.public_key()
    offline = drive("certificates.obtain", "Offline obu", "Offline")
    assert [c.name for c in drive("certificates.query", page_size=10)] == ["Offline obu", "Oba klienty"]
    drive("certificates.revoke", offline.serial_number, reason="Unspecified")
    assert [c.certificate_serial_number for c in drive("certificates.query", status="Revoked")] == [
        offline.serial_number
    ]
