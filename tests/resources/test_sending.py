"""Sending through the emulator: online sessions (valid, invalid, duplicate) and batch sessions."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksef_client import AsyncKSeF, KSeF
from ksef_client._flows import run
from ksef_client._generated.api.batch_session import close_batch_session
from ksef_client._generated.api.online_session import close_online_session
from ksef_client._generated.models import OpenBatchSessionResponse
from ksef_client.batch import BatchPackage
from ksef_client.crypto import SymmetricKey
from ksef_client.errors import BadRequestError, BatchError, InvoiceRejectedError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP, DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from ksef_client.schemas import FA3_NAMESPACE, FORM_NAMESPACES, SessionLimits, form_code
from ksef_client.sending import close_flow, open_batch_flow
from ksef_client.testing import sample_invoice
from ksef_client.upo import sha256_b64
from tests.conftest import NIP
from tests.helpers import FakeTime


def _open_batch(ksef: KSeF, package: BatchPackage, key: SymmetricKey) -> OpenBatchSessionResponse:
    return run(open_batch_flow(form_code("FA(3)"), package, key, ksef._public_keys, False), ksef)


def _upload_first_part(ksef: KSeF, response: OpenBatchSessionResponse, package: BatchPackage) -> None:
    """PUT the first part with the headers KSeF gave for it (storage refuses it without them)."""
    request = response.part_upload_requests[0]
    answer = ksef._storage.put(request.url, content=package.parts[0].read(), headers=request.headers.to_dict())
    assert answer.status_code == 201, answer.text


class TestOnlineSession:
    def test_twenty_invoices_one_invalid_one_duplicate(self, ksef: KSeF, backend: KSeFBackend) -> None:
        invoices = [sample_invoice(f"FV/{i}/2026") for i in range(18)]
        invoices.append(b'<?xml version="1.0" encoding="UTF-8"?><Faktura>not FA(3)</Faktura>')
        invoices.append(sample_invoice("FV/3/2026"))  # same seller, kind and number as the 4th
        with ksef.online_session(validate=False) as session:
            refs = [session.send(xml) for xml in invoices]
        assert len(set(refs)) == 20
        status = ksef.sessions.wait(session.reference_number)
        assert (status.status.code, status.successful_invoice_count, status.failed_invoice_count) == (200, 18, 2)
        failed = {i.reference_number: i for i in ksef.sessions.invoices(session.reference_number, failed=True)}
        assert set(failed) == {refs[18], refs[19]}
        assert failed[refs[18]].status.code == 430
        duplicate = failed[refs[19]].status
        assert duplicate.code == 440
        original = ksef.sessions.invoice(session.reference_number, refs[3])
        assert duplicate.extensions.additional_properties["originalKsefNumber"] == original.ksef_number  # type: ignore[union-attr]
        # What arrived is what was sent: the emulator decrypted the same bytes.
        assert original.invoice_hash == sha256_b64(invoices[3])
        upo = ksef.upo.get_invoice_upo(session.reference_number, invoice_reference_number=refs[0])
        assert upo.documents[0].invoice_number == "FV/0/2026"
        assert len(ksef.upo.get_session_upo(session.reference_number).documents) == 18

    def test_invalid_invoice_is_refused_before_sending(self, ksef: KSeF, backend: KSeFBackend) -> None:
        with ksef.online_session() as session:
            sent = ksef.send_state.requests_sent
            with pytest.raises(InvoiceRejectedError, match="FA \\(3\\)"):
                session.send(b"<Faktura/>")
            assert ksef.send_state.requests_sent == sent
        assert backend.sessions.state.sessions[session.reference_number].invoices == []

    def test_an_invoice_of_another_form_is_named_before_sending(self, ksef: KSeF) -> None:
        # Was: "invoice does not match FA (3): line 2: Element '{...12648/}Faktura': No matching
        # global declaration available for the validation root."
        fa2 = sample_invoice("FV/FA2/1").replace(FA3_NAMESPACE.encode(), FORM_NAMESPACES["FA (2)"].encode())
        with ksef.online_session() as session:
            sent = ksef.send_state.requests_sent
            with pytest.raises(InvoiceRejectedError) as refused:
                session.send(fa2)
            assert ksef.send_state.requests_sent == sent
        assert str(refused.value).startswith("invoice does not match FA (3): the document's form is FA (2) (")
        assert 'form="FA(2)" in Python (online_session, send_batch)' in str(refused.value)
        with pytest.raises(InvoiceRejectedError, match=r"invoice 1 \(invoice-00001.xml\) does not match FA \(3\): the"):
            ksef.send_batch([fa2])

    def test_sending_to_a_session_closed_elsewhere_is_21180(self, ksef: KSeF, backend: KSeFBackend) -> None:
        session = ksef.online_session().open()
        assert session.reference_number is not None
        run(close_flow(session.reference_number, close_online_session), ksef)  # e.g. by another process
        with pytest.raises(BadRequestError) as caught:
            session.send(sample_invoice("FV/late"))
        assert caught.value.codes == [21180]

    def test_a_second_close_does_nothing_and_a_send_after_close_is_refused_locally(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        # close() inside `with` (to wait for the UPO in the block): the end of the block closed
        # again and raised 21180 although every invoice had been sent (was).
        with ksef.online_session() as session:
            session.send(sample_invoice("FV/twice"))
            session.close()
            sent = ksef.send_state.requests_sent
            assert session.closed
            with pytest.raises(RuntimeError, match="is closed"):
                session.send(sample_invoice("FV/late"))
        session.close()
        assert ksef.send_state.requests_sent == sent
        assert ksef.sessions.wait(session.reference_number).successful_invoice_count == 1

    def test_nothing_sent_ends_as_440(self, ksef: KSeF, backend: KSeFBackend) -> None:
        with ksef.online_session() as session:
            pass
        assert ksef.sessions.wait(session.reference_number).status.code == 440

    def test_offline_mode_is_reported(self, ksef: KSeF, backend: KSeFBackend) -> None:
        with ksef.online_session() as session:
            ref = session.send(sample_invoice("FV/off"), offline=True)
        ksef.sessions.wait(session.reference_number)
        assert str(ksef.sessions.invoice(session.reference_number, ref).invoicing_mode) == "Offline"

    def test_a_technical_correction_of_a_rejected_offline_invoice(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # "Korekta przesyłana jest zgodnie z zasadami opisanymi w dokumencie sesja interaktywna, z
        # dodatkowym ustawieniem: offlineMode: true, hashOfCorrectedInvoice - skrót faktury
        # pierwotnej" (offline/korekta-techniczna.md); send() had no way to give the hash.
        rejected = sample_invoice("FV/TK/1").replace(b"<P_2>", b"<P_2x>").replace(b"</P_2>", b"</P_2x>")
        with ksef.online_session(validate=False) as first:
            first.send(rejected, offline=True)
        ksef.sessions.wait(first.reference_number)
        assert [outcome.code for outcome in first.outcomes()] == [430]
        with ksef.online_session() as session:
            with pytest.raises(ValueError, match="hash_of_corrected_invoice"):
                session.send(sample_invoice("FV/TK/1"), hash_of_corrected_invoice="not a hash")
            session.send(sample_invoice("FV/TK/1"), hash_of_corrected_invoice=sha256_b64(rejected))
        ksef.sessions.wait(session.reference_number)
        assert [outcome.code for outcome in session.outcomes()] == [200]
        [sent] = backend.sessions.state.sessions[session.reference_number].invoices
        assert (sent.offline, sent.hash_of_corrected_invoice) == (True, sha256_b64(rejected))

    def test_a_technical_correction_naming_its_own_file_is_refused_before_any_request(self, ksef: KSeF) -> None:
        # "hashOfCorrectedInvoice - skrót SHA-256 pierwotnej, odrzuconej faktury offline", and the
        # fixed file's "skrót SHA-256 pliku faktury jest inny" (offline/korekta-techniczna.md):
        # sha256_b64(fixed) for sha256_b64(rejected) is an easy slip, which went out to KSeF.
        fixed = sample_invoice("FV/TK/2")
        with ksef.online_session() as session:
            sent = ksef.send_state.requests_sent
            with pytest.raises(ValueError, match=r"hash_of_corrected_invoice: the hash of the file being sent"):
                session.send(fixed, hash_of_corrected_invoice=sha256_b64(fixed))
            assert ksef.send_state.requests_sent == sent
        assert session.sent == []

    def test_attachments_are_refused_online_save_in_a_technical_correction(
        self, ksef: KSeF, backend: KSeFBackend
    ) -> None:
        # "Wysyłka faktur z załącznikami jest dozwolona tylko w trybie wsadowym. Wyjątek: W przypadku
        # przesyłania korekty technicznej faktury offline dopuszczalne jest użycie sesji
        # interaktywnej" (faktury/weryfikacja-faktury.md). The local check passed such an invoice
        # and KSeF refused it afterwards (415).
        backend.testdata.allow_attachments(NIP)
        attachment = b"<Zalacznik><BlokDanych><MetaDane><ZKlucz>k</ZKlucz><ZWartosc>v</ZWartosc></MetaDane>"
        attachment += b"</BlokDanych></Zalacznik></Faktura>"
        with_attachment = sample_invoice("FV/ZA/1").replace(b"</Faktura>", attachment)
        rejected = with_attachment.replace(b"<P_15>", b"<P_15>x")  # not XSD-valid
        with ksef.online_session(validate=False) as first:
            first.send(rejected, offline=True)
        with ksef.online_session() as session:
            sent = ksef.send_state.requests_sent
            with pytest.raises(InvoiceRejectedError, match="only in a batch session"):
                session.send(with_attachment)
            assert ksef.send_state.requests_sent == sent
            session.send(with_attachment, hash_of_corrected_invoice=sha256_b64(rejected))
        ksef.sessions.wait(session.reference_number)
        assert [outcome.code for outcome in session.outcomes()] == [200]


class TestBatch:
    @pytest.mark.parametrize("compression", ["deflate", "targz"])
    def test_a_batch_invoice_rejected_for_its_size_is_corrected_by_its_own_hash(
        self, ksef: KSeF, backend: KSeFBackend, compression: str
    ) -> None:
        # offline/korekta-techniczna.md names "przekroczenie dopuszczalnego rozmiaru pliku" among a
        # correction's reasons, and a correction names "skrót SHA-256 pierwotnej, odrzuconej faktury
        # offline". The emulator listed every member too large (or unreadable) with SHA-256 of an empty
        # file: a correction naming the file's hash was 21405, and once one correction was taken the
        # next member's (naming the same listed hash) was 21166.
        pad = b"<!--" + b"x" * 3_100_000 + b"-->"  # over the 3 MB KSeF takes with attachments
        big = [sample_invoice(f"OFF/BIG/{i}").replace(b"</Faktura>", pad + b"</Faktura>") for i in (1, 2)]
        result = ksef.send_batch(
            [("big1.xml", big[0]), ("big2.xml", big[1])], offline=True, validate=False, wait=True,
            limits=SessionLimits(4_000_000, 4_000_000), compression=compression,  # type: ignore[arg-type]
        )  # fmt: skip
        listed = {i.invoice_file_name: i for i in ksef.sessions.invoices(result.reference_number)}
        for name, xml in zip(("big1.xml", "big2.xml"), big, strict=True):
            assert listed[name].status.code == 430 and listed[name].status.details[0].startswith("[size]")
            assert listed[name].invoice_hash == sha256_b64(xml) != sha256_b64(b"")
        with ksef.online_session() as session:
            for i, xml in enumerate(big, start=1):
                session.send(sample_invoice(f"OFF/BIG/{i}"), hash_of_corrected_invoice=sha256_b64(xml))
        ksef.sessions.wait(session.reference_number)
        assert [outcome.code for outcome in session.outcomes()] == [200, 200]

    def test_two_thousand_invoices_in_several_parts(self, ksef: KSeF, backend: KSeFBackend) -> None:
        invoices = [sample_invoice(f"B/{i}/2026") for i in range(2000)]
        stages: list[tuple[str, int, int]] = []
        result = ksef.send_batch(invoices, part_size=200_000, wait=True, progress=lambda *a: stages.append(a))
        assert result.part_count >= 3 and result.invoice_count == 2000
        assert result.status is not None and result.status.status.code == 200
        assert result.status.successful_invoice_count == 2000
        assert ("upload", result.part_count, result.part_count) in stages
        upo = ksef.upo.get_session_upo(result.reference_number)
        assert sorted(d.invoice_number for d in upo.documents) == sorted(f"B/{i}/2026" for i in range(2000))

    def test_files_and_named_bytes(self, ksef: KSeF, backend: KSeFBackend, tmp_path: Path) -> None:
        path = tmp_path / "a.xml"
        path.write_bytes(sample_invoice("P/1"))
        result = ksef.send_batch([path, ("b.xml", sample_invoice("P/2"))], wait=True)
        names = {i.invoice_file_name for i in ksef.sessions.invoices(result.reference_number)}
        assert names == {"a.xml", "b.xml"}

    def test_stored_package_is_accepted(self, ksef: KSeF, backend: KSeFBackend) -> None:
        result = ksef.send_batch([sample_invoice(f"S/{i}") for i in range(30)], compression="stored", wait=True)
        assert result.status is not None and result.status.successful_invoice_count == 30

    def test_a_tar_gz_package_is_declared_and_accepted(self, ksef: KSeF, backend: KSeFBackend) -> None:
        invoices = [(f"tg-{i}.xml", sample_invoice(f"TG/{i}")) for i in range(30)]
        result = ksef.send_batch(invoices, compression="targz", part_size=512, wait=True)
        session = backend.sessions.state.sessions[result.reference_number]
        assert session.batch is not None and session.batch.compression == "TarGz"
        assert len(session.batch.parts) > 1  # cut into several parts like a zip
        assert [i.status.code for i in ksef.sessions.invoices(result.reference_number)] == [200] * 30

    def test_limits_are_checked_before_anything_is_sent(self, ksef: KSeF, backend: KSeFBackend) -> None:
        invoices = [sample_invoice(f"L/{i}") for i in range(600)]
        with pytest.raises(BatchError, match="at most 50"):
            ksef.send_batch(invoices, part_size=2_000)
        with pytest.raises(BatchError, match="no invoices"):
            ksef.send_batch([])
        assert ksef.send_state.requests_sent == 0

    def test_part_with_a_wrong_hash_fails_the_session(self, ksef: KSeF, backend: KSeFBackend) -> None:
        result = ksef.send_batch([sample_invoice("H/1")], wait=True)  # processed after the close
        part = backend.sessions.state.sessions[result.reference_number].batch.parts[0]  # type: ignore[union-attr]
        assert part.data is None  # processed: the encrypted parts were dropped
        key = SymmetricKey.generate()
        with BatchPackage.build([sample_invoice("H/2")], key) as package:
            package.parts[0].hash = sha256_b64(b"something else")  # declared hash != uploaded bytes
            response = _open_batch(ksef, package, key)
            _upload_first_part(ksef, response, package)
            run(close_flow(response.reference_number, close_batch_session), ksef)
        assert ksef.sessions.wait(response.reference_number).status.code == 405

    def test_close_answers_at_once_and_the_first_status_read_is_final(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # The package is processed after the close (150), as in KSeF; with the default transitions
        # the first status read waits for that processing and sees the session processed.
        key = SymmetricKey.generate()
        with BatchPackage.build([sample_invoice(f"C/{i}") for i in range(30)], key) as package:
            response = _open_batch(ksef, package, key)
            _upload_first_part(ksef, response, package)
            run(close_flow(response.reference_number, close_batch_session), ksef)
        assert backend.sessions.state.sessions[response.reference_number].status.code in (150, 200)
        status = ksef.sessions.get(response.reference_number)
        assert status.status.code == 200 and status.successful_invoice_count == 30

    def test_failed_uploads_are_sent_again_whole(self, ksef: KSeF, backend: KSeFBackend) -> None:
        # Parts stream from their files (never a whole part in memory per upload); a PUT that meets
        # a 503, a dropped connection or a lost answer is sent again from the first byte: the
        # emulator checks every part's hash when the session closes.
        for fault in (503, DROP, DROP_AFTER):
            backend.faults.add(fault, operation="storage.upload_part")
        invoices = [sample_invoice(f"RU/{i}") for i in range(300)]
        result = ksef.send_batch(invoices, part_size=20_000, wait=True)
        assert result.part_count > 3 and backend.faults.injected == 3
        assert result.status is not None and result.status.successful_invoice_count == 300

    def test_upload_url_refuses_a_bearer_token(self, ksef: KSeF, backend: KSeFBackend) -> None:
        key = SymmetricKey.generate()
        with BatchPackage.build([sample_invoice("T/1")], key) as package:
            response = _open_batch(ksef, package, key)
            url = response.part_upload_requests[0].url
            answer = ksef._storage.put(url, content=package.parts[0].read(), headers={"Authorization": "Bearer x"})
        assert answer.status_code == 400


def test_a_tar_gz_package_holds_every_invoice_whole() -> None:
    key = SymmetricKey.generate()
    invoices = [(f"f-{i}.xml", sample_invoice(f"F/{i}", lines=i + 1)) for i in range(5)]
    with BatchPackage.build(invoices, key, part_size=1000, compression="targz") as package:
        plain = b"".join(key.decrypt(_read(part)) for part in package.parts)
        assert package.batch_file_info()["compressionType"] == "TarGz"
        assert len(plain) == package.file_size and sha256_b64(plain) == package.file_hash
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as archive:
        unpacked = [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()]  # type: ignore[union-attr]
    assert unpacked == invoices


def _read(part: object) -> bytes:
    file = part.file  # type: ignore[attr-defined]
    file.seek(0)
    data: bytes = file.read()
    return data


def test_zip_is_streamed_from_the_sources(tmp_path: Path) -> None:
    key = SymmetricKey.generate()
    with BatchPackage.build((sample_invoice(f"Z/{i}") for i in range(50)), key, part_size=4_000) as package:
        assert len(package.parts) > 1
        plain = b"".join(key.decrypt(p.read()) for p in package.parts)
    assert len(plain) == package.file_size and sha256_b64(plain) == package.file_hash
    assert len(zipfile.ZipFile(io.BytesIO(plain)).namelist()) == 50


def _open_in(directory: Path) -> list[str]:
    """The files under ``directory`` this process holds open (``/proc/self/fd``; a descriptor
    closed while listing, by another thread, is passed over)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{directory}{os.sep}"):
            found.append(target)
    return found


def test_a_failed_build_leaves_no_part_files_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parts are encrypted while the zip is written: a build that fails late (here a duplicate name
    # after several parts) must close every temporary file it opened, and report the invoice.
    # Only the build's own files are counted (its temporary files made in tmp_path): the emulator's
    # thread in this process opens and closes sockets at any moment (review s11, B5: a flake).
    def invoices() -> Iterator[tuple[str, bytes]]:
        yield from ((f"{i}.xml", sample_invoice(f"F/{i}")) for i in range(1000))
        yield "7.xml", sample_invoice("F/again")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    opened: list[list[str]] = []

    def progress(*stage: Any) -> None:
        stages.append(stage)
        opened.append(_open_in(tmp_path))

    stages: list[tuple[str, int, int]] = []
    with pytest.raises(BatchError, match=r"two invoices named '7\.xml'") as failure:
        BatchPackage.build(invoices(), SymmetricKey.generate(), part_size=20_000, progress=progress)
    assert any(stage == "encrypt" for stage, _, _ in stages)  # parts had been written
    assert any(opened)  # the count sees the build's files while it runs
    # Closed by the build itself, not by garbage collection: the kept traceback still holds its frames.
    assert failure.tb is not None and _open_in(tmp_path) == []


@pytest.mark.anyio
async def test_async_online_and_batch(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> None:
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        async with client.online_session() as session:
            await session.send(sample_invoice("A/1"))
            await session.close()  # and again on leaving the block: nothing sent, no 21180
            with pytest.raises(RuntimeError, match="is closed"):
                await session.send(sample_invoice("A/2"))
        await session.close()
        status = await client.sessions.wait(session.reference_number)
        assert status.successful_invoice_count == 1
        backend.faults.add(DROP, operation="storage.upload_part")  # the streamed part is sent again whole
        result = await client.send_batch([sample_invoice(f"AB/{i}") for i in range(30)], part_size=5_000, wait=True)
        assert result.part_count > 1 and backend.faults.injected == 1
        assert result.status is not None and result.status.successful_invoice_count == 30


@pytest.mark.anyio
async def test_async_resend_after_a_lost_answer_keeps_one_invoice(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # KSeF stores the invoice, then the connection breaks before the answer arrives: the client
    # sends again, KSeF reports the duplicate (440) and the SDK resolves it to the first number.
    token = backend.mint_access_token(NIP)
    async with AsyncKSeF(
        base_url=ksef_server.base_url, access_token=token, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        async with client.online_session() as session:
            backend.faults.add(DROP_AFTER, operation="online_session.send_invoice")
            await session.send(sample_invoice("LOST/1"))
            await session.send(sample_invoice("LOST/2"))
        await client.sessions.wait(session.reference_number)
        numbers = await session.ksef_numbers()
    stored = [i for i in backend.sessions.state.sessions[session.reference_number].invoices if i.ksef_number]
    assert backend.faults.injected == 1
    assert len(numbers) == 2 and None not in numbers and len(set(numbers)) == 2
    assert sorted(i.ksef_number for i in stored) == sorted(numbers)  # type: ignore[type-var]


@pytest.mark.parametrize(("count", "reported"), [(250, [100, 200, 250]), (99, [99]), (200, [100, 200])])
def test_zip_progress_reports_the_final_count_once(count: int, reported: list[int]) -> None:
    # Was: only multiples of 100, so 250 invoices ended at 200 and 99 reported nothing.
    stages: list[tuple[str, int, int]] = []
    invoices = [sample_invoice(f"ZP/{i}") for i in range(count)]
    with BatchPackage.build(invoices, SymmetricKey.generate(), progress=lambda *a: stages.append(a)) as package:
        assert package.invoice_count == count
    assert [done for stage, done, _ in stages if stage == "zip"] == reported
