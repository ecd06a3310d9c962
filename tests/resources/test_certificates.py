"""``ksef.certificates``: KSeF certificates obtained, used, listed and revoked through the SDK.

certyfikaty-KSeF.md: "Proces aplikowania o certyfikat składa się z kilku etapów: 1. Sprawdzenie
dostępnych limitów, 2. Pobranie danych do wniosku certyfikacyjnego, 3. Wysłanie wniosku,
4. Pobranie wystawionego certyfikatu"; "Pobranie danych certyfikacyjnych jest możliwe wyłącznie po
uwierzytelnieniu z wykorzystaniem podpisu (XAdES)": the clients here log in with a self-signed
certificate (TEST accepts them), not a KSeF token.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ksef_client import AsyncKSeF, CertificateEnrollmentError, CertificatePendingError, KSeF, PollTimeoutError, qr
from ksef_client.certificates import build_csr, certificate_subject
from ksef_client.errors import (
    APIConnectionError,
    AuthenticationFailedError,
    BadRequestError,
    InternalServerError,
    ResponseFormatError,
)
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from ksef_client.resources.certificates import (
    MOST_RETRIEVED,
    NAME_LENGTH,
    NAME_PATTERN,
    SERIAL_PATTERN,
    KSeFCredentials,
    PendingCertificate,
)
from ksef_client.testing import sample_invoice, self_signed_certificate
from ksef_client.xades import SigningCredentials
from tests.conftest import NIP
from tests.helpers import FakeTime
from tests.hostile import Tamper, json_swap

OTHER_NIP = "7762811692"
REVOKE = "certificates.revoke_certificate"


@contextmanager
def signed_in(base_url: str, fake_time: FakeTime, nip: str = NIP, kind: str = "seal") -> Iterator[KSeF]:
    """A client logged in with XAdES (a self-signed seal or person certificate of ``nip``)."""
    with KSeF(base_url=base_url, rate_limit_scale=0, sleep=fake_time.sleep, clock=fake_time.clock) as client:
        client.auth.login_with_certificate(self_signed_certificate(nip, kind=kind), context_nip=nip)
        yield client


@pytest.fixture
def signed(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> Iterator[KSeF]:
    with signed_in(ksef_server.base_url, fake_time) as client:
        yield client


def login_refusal(base_url: str, credentials: SigningCredentials) -> str | None:
    """``None`` when ``credentials`` log in to NIP's context (and list the subject's certificates
    with the new login), else the detail of the login's 460."""
    with KSeF(base_url=base_url, rate_limit_scale=0) as client:
        try:
            client.auth.login_with_certificate(credentials, context_nip=NIP)
        except AuthenticationFailedError as error:
            assert error.code == 460
            return error.details[0]
        assert list(client.certificates.query())  # the login works: it lists the certificates
        return None


def test_the_checks_are_the_spec_s(pinned_spec: dict[str, Any]) -> None:
    schemas = pinned_spec["components"]["schemas"]
    name = schemas["EnrollCertificateRequest"]["properties"]["certificateName"]
    assert (name["minLength"], name["maxLength"], name["pattern"]) == (*NAME_LENGTH, NAME_PATTERN)
    serials = schemas["RetrieveCertificatesRequest"]["properties"]["certificateSerialNumbers"]
    assert (serials["maxItems"], serials["items"]["pattern"]) == (MOST_RETRIEVED, SERIAL_PATTERN)
    assert schemas["QueryCertificatesRequest"]["properties"]["certificateSerialNumber"]["pattern"] == SERIAL_PATTERN
    enroll = pinned_spec["paths"]["/certificates/enrollments"]["post"]["description"]
    assert "RSA (OID: 1.2.840.113549.1.1.1), długość klucza równa 2048 bitów" in enroll
    assert "krzywa NIST P-256 (secp256r1)" in enroll


class TestObtain:
    @pytest.mark.parametrize(("subject", "key_type"), [("seal", "EC"), ("seal", "RSA"), ("person", "EC")])
    def test_an_authentication_certificate_logs_in_without_a_qualified_signature(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime, tmp_path: Path,
        subject: str, key_type: str,
    ) -> None:  # fmt: skip
        with signed_in(ksef_server.base_url, fake_time, kind=subject) as signed:
            data = signed.certificates.enrollment_data().to_dict()
            creds = signed.certificates.obtain("Logowanie API", key_type=key_type)
        assert isinstance(creds, KSeFCredentials) and creds.certificate_type == "Authentication"
        assert re.fullmatch(SERIAL_PATTERN, creds.serial_number) and creds.name == "Logowanie API"
        # certyfikaty-KSeF.md §3: "Wszystkie dane identyfikacyjne (atrybuty X.509) powinny być
        # zgodne z wartościami zwróconymi przez system w poprzednim kroku"
        assert creds.certificate.subject == certificate_subject(data)
        key = creds.certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey if key_type == "RSA" else ec.EllipticCurvePublicKey)
        # The key never shows: not in repr, str, nor the dataclass's fields shown
        assert "private" not in repr(creds).lower() and "BEGIN" not in str(creds)
        saved = creds.save(tmp_path / "ksef.p12", "hasło do pliku")
        if os.name == "posix":
            assert saved.stat().st_mode & 0o777 == 0o600
        loaded = SigningCredentials.from_pkcs12(saved, "hasło do pliku")
        assert login_refusal(ksef_server.base_url, loaded) is None

    def test_an_offline_certificate_signs_kod_ii_links_and_does_not_log_in(
        self, signed: KSeF, ksef_server: ThreadedServer
    ) -> None:
        creds = signed.certificates.obtain("Faktury offline", "Offline")
        invoice = sample_invoice("OFF/1", seller_nip=NIP)
        link = qr.certificate_link("TEST", "Nip", NIP, NIP, creds.serial_number, invoice, creds.private_key)
        assert creds.serial_number in link
        public = creds.certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert qr.verify_certificate_link(link, public)
        # certyfikaty-KSeF.md: Offline "Nie umożliwia uwierzytelnienia"
        assert login_refusal(ksef_server.base_url, creds) is not None

    def test_kod_ii_takes_the_offline_credentials_and_refuses_an_authentication_certificate(
        self, signed: KSeF, tmp_path: Path
    ) -> None:
        # kody-qr.md: "Certyfikat typu Authentication nie może być używany do generowania KODU II";
        # certificate_link took a serial and a bare key only, so it signed with whatever it got.
        invoice = sample_invoice("OFF/2", seller_nip=NIP)
        offline = signed.certificates.obtain("Faktury offline", "Offline")
        login = signed.certificates.obtain("Logowanie ERP", "Authentication")
        # KSeF's serials keep their leading zeros (kody-qr.md's 01F20A5D352AE590); the emulator
        # starts every other one with 0, the first included, so the form without them is seen here.
        assert offline.serial_number[0] == "0" and login.serial_number[0] != "0"
        assert f"{offline.certificate.serial_number:016X}" == offline.serial_number
        link = qr.certificate_link("TEST", "Nip", NIP, NIP, offline, invoice)
        assert link.split("/")[7] == offline.serial_number
        assert qr.verify_certificate_link(link, offline.certificate.public_key())  # type: ignore[arg-type]
        # The same from the .p12 (which holds no KSeF serial: it is the certificate's), and from the
        # certificate with its key.
        reloaded = SigningCredentials.from_pkcs12(offline.save(tmp_path / "offline.p12", "hasło"), "hasło")
        assert qr.certificate_link("TEST", "Nip", NIP, NIP, reloaded, invoice).split("/")[7] == offline.serial_number
        by_certificate = qr.certificate_link("TEST", "Nip", NIP, NIP, offline.certificate, invoice, offline.private_key)
        assert by_certificate.split("/")[7] == offline.serial_number
        # ...the serial written without its zeros, as f"{n:X}" gives it, named a certificate KSeF never issued.
        with pytest.raises(ValueError, match=r"15 hex digits.*16, zero-padded"):
            qr.certificate_link(
                "TEST", "Nip", NIP, NIP, f"{offline.certificate.serial_number:X}", invoice, offline.private_key
            )
        with pytest.raises(ValueError, match="type 'Authentication'"):
            qr.certificate_link("TEST", "Nip", NIP, NIP, login, invoice)
        with pytest.raises(ValueError, match="an Authentication certificate"):  # by its keyUsage alone
            qr.certificate_link("TEST", "Nip", NIP, NIP, login.certificate, invoice, login.private_key)
        with pytest.raises(ValueError, match="not the key of this certificate"):
            qr.certificate_link("TEST", "Nip", NIP, NIP, offline.certificate, invoice, login.private_key)

    def test_kod_ii_refuses_an_offline_certificate_not_valid_yet(self, signed: KSeF) -> None:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
        offline = signed.certificates.obtain("Faktury offline", "Offline", valid_from=later)
        with pytest.raises(ValueError, match=r"valid from .*not yet"):
            qr.certificate_link("TEST", "Nip", NIP, NIP, offline, sample_invoice("OFF/3", seller_nip=NIP))

    def test_a_ksef_token_login_may_not_obtain_one(self, ksef: KSeF) -> None:
        # certyfikaty-KSeF.md §2: "Uwierzytelnienie przy użyciu tokena systemowego KSeF nie pozwala
        # na złożenie wniosku o certyfikat"; the spec's 25001 for GET /certificates/enrollments/data.
        with pytest.raises(BadRequestError) as refused:
            ksef.certificates.obtain("Logowanie API")
        assert refused.value.codes == [25001]

    def test_the_request_is_polled_while_in_progress(
        self, signed: KSeF, backend: KSeFBackend, fake_time: FakeTime
    ) -> None:
        # certyfikaty-KSeF.md §5: "Proces wystawiania certyfikatu ma charakter asynchroniczny";
        # status 100 "Wniosek przyjęty do realizacji" until 200.
        backend.transitions.enrollment_reads = 3
        creds = signed.certificates.obtain("Powolny wniosek", interval=0.5)
        assert fake_time.sleeps == [0.5, 0.5]
        assert [c.certificate_serial_number for c in signed.certificates.query()] == [creds.serial_number]

    def test_wait_enrolled_times_out_on_a_request_still_in_progress(self, signed: KSeF, backend: KSeFBackend) -> None:
        backend.transitions.enrollment_reads = 1000
        key = ec.generate_private_key(ec.SECP256R1())
        csr = build_csr(signed.certificates.enrollment_data().to_dict(), key)
        accepted = signed.certificates.enroll("Wniosek w toku", csr)
        with pytest.raises(PollTimeoutError, match="still 100") as caught:
            signed.certificates.wait_enrolled(accepted.reference_number, timeout=3, interval=1)
        assert caught.value.last.status.code == 100

    def test_a_request_left_in_progress_keeps_its_key_to_complete_later(
        self, signed: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime, tmp_path: Path
    ) -> None:
        # Nothing lost on failure: KSeF accepted the request and will issue a certificate for the
        # CSR's key, which exists only in this process; the error hands it over.
        backend.transitions.enrollment_reads = 10  # issued at its 10th status read
        with pytest.raises(CertificatePendingError, match="was accepted by KSeF") as caught:
            signed.certificates.obtain("Nie doczekał się", timeout=2, interval=1)
        pending = caught.value.pending
        assert isinstance(caught.value.__cause__, PollTimeoutError)
        assert "key" not in repr(pending) and pending.reference_number in str(caught.value)
        assert signed.certificates.enrollment_status(pending.reference_number).status.code == 100
        creds = signed.certificates.complete(pending)  # later: the certificate is of that key
        creds.save(tmp_path / "late.p12", "hasło")
        saved = SigningCredentials.from_pkcs12(tmp_path / "late.p12", "hasło")
        with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as fresh:
            fresh.auth.login_with_certificate(saved, context_nip=NIP)  # refused unless the pair is whole
            assert list(fresh.sessions.list("Online")) == []

    def test_a_key_of_one_s_own_is_certified(self, signed: KSeF) -> None:
        key = ec.generate_private_key(ec.SECP256R1())  # made (and kept) by the caller before asking
        creds = signed.certificates.obtain("Własny klucz", key=key)
        assert creds.certificate.public_key() == key.public_key()

    def test_complete_refuses_a_certificate_of_another_key(self, signed: KSeF) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        accepted = signed.certificates.enroll(
            "Cudzy klucz", build_csr(signed.certificates.enrollment_data().to_dict(), key)
        )
        other = ec.generate_private_key(ec.SECP256R1())
        with pytest.raises(ValueError, match="not the key of this certificate"):
            signed.certificates.complete(PendingCertificate(accepted.reference_number, other))

    def test_a_lost_answer_to_the_request_keeps_its_key(self, signed: KSeF, backend: KSeFBackend) -> None:
        # The POST is taken, its answer lost (not repeated: a POST): no reference number, but KSeF
        # issues the certificate all the same (review of certificates, 1).
        backend.faults.add(DROP_AFTER, operation="certificates.create_enrollment")
        with pytest.raises(CertificatePendingError) as caught:
            signed.certificates.obtain("Odpowiedź utracona")
        pending = caught.value.pending
        assert pending.reference_number is None and pending.name == "Odpowiedź utracona"
        assert caught.value.maybe_sent is True
        assert signed.certificates.unfinished == (pending,)
        creds = signed.certificates.complete(pending)  # found among the subject's certificates by its key
        assert creds.certificate.public_key() == pending.key.public_key() and creds.name == "Odpowiedź utracona"
        assert signed.certificates.unfinished == ()

    def test_an_interrupted_obtain_leaves_its_request_to_complete(
        self, ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
    ) -> None:
        # Ctrl-C (or a cancelled task) while waiting: no CertificatePendingError can carry the key,
        # so the client keeps it (review of certificates, 2).
        interrupted = []

        def sleep(seconds: float) -> None:
            if not interrupted:
                interrupted.append(seconds)
                raise KeyboardInterrupt
            fake_time.sleep(seconds)

        backend.transitions.enrollment_reads = 2
        with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0, sleep=sleep, clock=fake_time.clock) as client:
            client.auth.login_with_certificate(self_signed_certificate(NIP, kind="seal"), context_nip=NIP)
            with pytest.raises(KeyboardInterrupt):
                client.certificates.obtain("Przerwany")
            (pending,) = client.certificates.unfinished
            assert pending.reference_number is not None
            creds = client.certificates.complete(pending)
            assert creds.name == "Przerwany" and client.certificates.unfinished == ()

    def test_on_sent_hands_over_the_reference_before_the_wait(self, signed: KSeF, backend: KSeFBackend) -> None:
        # `ksef cert obtain` writes the reference number to disk from here (review of the cert CLI,
        # 4): a process killed while waiting raises nothing a caller could catch.
        seen: list[tuple[PendingCertificate, tuple[PendingCertificate, ...]]] = []
        backend.transitions.enrollment_reads = 2
        creds = signed.certificates.obtain(
            "Z numerem", interval=0.01, on_sent=lambda sent: seen.append((sent, signed.certificates.unfinished))
        )
        [(sent, unfinished)] = seen
        assert sent.reference_number is not None and sent.name == "Z numerem" and unfinished == (sent,)
        assert sent.key is creds.private_key and signed.certificates.unfinished == ()

    def test_a_refusal_after_a_429_is_a_refusal_not_a_pending_request(self, signed: KSeF, backend: KSeFBackend) -> None:
        # A 429 is refused unprocessed ("Too Many Requests"); the repeat's 400/25006 is the only
        # answer KSeF processed: nothing can be pending (review of today's merges, 1).
        subject = next(iter(backend.auth.state.operations.values())).subject
        backend.testdata.set_subject_limits(subject, {"enrollment": {"maxEnrollments": 0}})
        backend.faults.add(429, operation="certificates.create_enrollment", retry_after=0)
        with pytest.raises(BadRequestError, match="25006"):
            signed.certificates.obtain("Po limicie")
        assert signed.certificates.unfinished == ()

    def test_a_request_of_a_saved_key_is_found_without_its_name(self, signed: KSeF, backend: KSeFBackend) -> None:
        # docs/certificates.md: a key made and saved beforehand finishes a request "from any
        # process": with the answer lost, only the key is known (review of today's merges, 2).
        key = ec.generate_private_key(ec.SECP256R1())
        backend.faults.add(DROP_AFTER, operation="certificates.create_enrollment")
        with pytest.raises(CertificatePendingError, match="may have reached KSeF"):
            signed.certificates.obtain("Klucz z pliku", key=key)
        creds = signed.certificates.complete(PendingCertificate(None, key))
        assert creds.name == "Klucz z pliku" and creds.certificate.public_key() == key.public_key()

    @pytest.mark.parametrize(
        ("path", "change"),
        [
            ("/certificates/retrieve", lambda body: {**body, "certificates": []}),  # review of certificates, 3
            (
                "/certificates/enrollments/2",
                lambda body: {k: v for k, v in body.items() if k != "certificateSerialNumber"},
            ),
        ],
        ids=["retrieve-gives-nothing", "issued-without-serial"],
    )
    def test_an_answer_that_breaks_the_spec_after_the_request_keeps_its_key(
        self, signed: KSeF, ksef_server: ThreadedServer, fake_time: FakeTime, path: str, change: Any
    ) -> None:
        method = "POST" if "retrieve" in path else "GET"
        transport = Tamper(json_swap(method, path, change))
        with KSeF(base_url=ksef_server.base_url, rate_limit_scale=0, transport=transport, sleep=fake_time.sleep,
                  clock=fake_time.clock) as client:  # fmt: skip
            client.auth.login_with_certificate(self_signed_certificate(NIP, kind="seal"), context_nip=NIP)
            with pytest.raises(CertificatePendingError) as caught:
                client.certificates.obtain("Zła odpowiedź")
        assert isinstance(caught.value.__cause__, ResponseFormatError)  # not a refusal: the certificate exists
        creds = signed.certificates.complete(caught.value.pending)  # another client of the same subject
        assert creds.name == "Zła odpowiedź"

    def test_a_refused_request_raises_its_status(
        self, signed: KSeF, ksef_server: ThreadedServer, fake_time: FakeTime
    ) -> None:
        # Spec, CertificateEnrollmentStatusResponse.status: "400 | Wniosek odrzucony | Klucz
        # publiczny został już certyfikowany przez inny podmiot."
        key = ec.generate_private_key(ec.SECP256R1())
        mine = build_csr(signed.certificates.enrollment_data().to_dict(), key)
        signed.certificates.wait_enrolled(signed.certificates.enroll("Mój klucz", mine).reference_number)
        with signed_in(ksef_server.base_url, fake_time, nip=OTHER_NIP) as other:
            theirs = build_csr(other.certificates.enrollment_data().to_dict(), key)
            accepted = other.certificates.enroll("Cudzy klucz", theirs.public_bytes(serialization.Encoding.PEM))
            with pytest.raises(CertificateEnrollmentError) as refused:
                other.certificates.wait_enrolled(accepted.reference_number)
            assert list(other.certificates.query()) == []
        error = refused.value
        assert (error.code, error.description) == (400, "Wniosek odrzucony")
        assert error.details == ["Klucz publiczny został już certyfikowany przez inny podmiot."]
        assert error.reference_number == accepted.reference_number and error.status.status.code == 400

    def test_requests_in_progress_cannot_take_the_subject_past_its_certificate_limit(
        self, signed: KSeF, backend: KSeFBackend, ksef_server: ThreadedServer, fake_time: FakeTime
    ) -> None:
        # Spec, CertificateEnrollmentStatusResponse.status: "400 | Wniosek odrzucony | Osiągnięto
        # dopuszczalny limit posiadanych certyfikatów." The limit was checked only when a request was
        # POSTed: requests in progress together under a limit of 1 were all issued (review s12, 4).
        backend.transitions.enrollment_reads = 1
        signed.testdata.set_certificate_limits(
            {"subjectIdentifierType": "Nip", "certificate": {"maxCertificates": 1}}
        )  # the seal's subject: its NIP
        first = signed.certificates.enroll("Pierwszy w kolejce", build_csr(
            signed.certificates.enrollment_data().to_dict(), ec.generate_private_key(ec.SECP256R1())))  # fmt: skip

        def first_is_issued(_: PendingCertificate) -> None:  # the second request is in, not issued yet
            with signed_in(ksef_server.base_url, fake_time) as same_subject:
                same_subject.certificates.wait_enrolled(first.reference_number)

        with pytest.raises(CertificateEnrollmentError) as refused:
            signed.certificates.obtain("Ponad limit", on_sent=first_is_issued)
        error = refused.value
        assert (error.code, error.description) == (400, "Wniosek odrzucony")
        assert error.details == ["Osiągnięto dopuszczalny limit posiadanych certyfikatów."]
        assert signed.certificates.unfinished == ()  # refused: no certificate will come
        with pytest.raises(BadRequestError, match="25007"):  # at the limit: the next is refused at once
            signed.certificates.obtain("Kolejny")
        (held,) = signed.certificates.query(status="Active")
        assert held.name == "Pierwszy w kolejce" and signed.certificates.limits().certificate.remaining == 0
        signed.certificates.revoke(held.certificate_serial_number)  # the limit counts Active certificates
        assert signed.certificates.obtain("Po odwołaniu").name == "Po odwołaniu"

    def test_a_step_by_step_request_whose_answer_was_lost_says_how_to_find_it(
        self, signed: KSeF, backend: KSeFBackend
    ) -> None:
        # The POST is taken, its answer (the reference number) lost: the bare error said nothing of a
        # certificate KSeF issues all the same (review s12, 7).
        key = ec.generate_private_key(ec.SECP256R1())
        csr = build_csr(signed.certificates.enrollment_data().to_dict(), key)
        backend.faults.add(DROP_AFTER, operation="certificates.create_enrollment")
        with pytest.raises(APIConnectionError) as caught:
            signed.certificates.enroll("Klucz z karty", csr, "Offline")
        assert caught.value.maybe_sent is True
        (note,) = caught.value.__notes__
        assert "certificates.enroll: the request may have reached KSeF" in note
        assert "ksef.certificates.complete(PendingCertificate(None, key, 'Klucz z karty', 'Offline'))" in note
        creds = signed.certificates.complete(PendingCertificate(None, key, "Klucz z karty", "Offline"))  # as it says
        assert creds.certificate_type == "Offline" and creds.certificate.public_key() == key.public_key()

    @pytest.mark.parametrize("status", [500, 503])
    def test_a_step_by_step_request_answered_5xx_may_have_been_taken(
        self, signed: KSeF, backend: KSeFBackend, status: int
    ) -> None:
        csr = build_csr(signed.certificates.enrollment_data().to_dict(), ec.generate_private_key(ec.SECP256R1()))
        backend.faults.add(status, operation="certificates.create_enrollment")
        with pytest.raises(InternalServerError) as failed:
            signed.certificates.enroll("Po błędzie", csr)
        assert failed.value.maybe_sent is True and "may have reached KSeF" in failed.value.__notes__[0]

    def test_a_refused_step_by_step_request_was_not_taken(self, signed: KSeF, backend: KSeFBackend) -> None:
        csr = build_csr(signed.certificates.enrollment_data().to_dict(), ec.generate_private_key(ec.SECP256R1()))
        backend.faults.add(400, operation="certificates.create_enrollment")
        with pytest.raises(BadRequestError) as refused:
            signed.certificates.enroll("Odrzucony", csr)
        assert refused.value.maybe_sent is False and not getattr(refused.value, "__notes__", [])


class TestManage:
    def test_query_filters_limits_and_retrieve(self, signed: KSeF) -> None:
        before = signed.certificates.limits()
        assert before.can_request
        auth = signed.certificates.obtain("Logowanie 1")
        offline = signed.certificates.obtain("Offline 1", "Offline", key_type="RSA")
        after = signed.certificates.limits()
        assert after.certificate.remaining == before.certificate.remaining - 2
        assert after.enrollment.remaining == before.enrollment.remaining - 2
        # Spec POST /certificates/query: "Sortowanie: requestDate (Desc)"
        assert [c.certificate_serial_number for c in signed.certificates.query(page_size=10)] == [
            offline.serial_number, auth.serial_number,
        ]  # fmt: skip
        assert [c.name for c in signed.certificates.query(certificate_type="Offline")] == ["Offline 1"]
        assert [c.name for c in signed.certificates.query(name="logowanie")] == ["Logowanie 1"]
        assert [c.name for c in signed.certificates.query(serial_number=auth.serial_number.lower())] == ["Logowanie 1"]
        # EnrollCertificateRequest.validFrom: "Data rozpoczęcia ważności certyfikatu"
        start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0)
        future = signed.certificates.obtain("Od jutra", valid_from=start)
        assert future.certificate.not_valid_before_utc == start
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
        assert list(signed.certificates.query(expires_after=later)) == []
        found = signed.certificates.retrieve([auth.serial_number, offline.serial_number])
        assert [(c.serial_number, c.type, c.name) for c in found] == [
            (auth.serial_number, "Authentication", "Logowanie 1"), (offline.serial_number, "Offline", "Offline 1"),
        ]  # fmt: skip
        assert found[0].certificate == auth.certificate and found[1].certificate == offline.certificate

    def test_a_revoked_certificate_is_listed_revoked_and_does_not_log_in(
        self, signed: KSeF, ksef_server: ThreadedServer
    ) -> None:
        creds = signed.certificates.obtain("Do odwołania")
        assert login_refusal(ksef_server.base_url, creds) is None
        signed.certificates.revoke(creds.serial_number, reason="KeyCompromise")
        assert [c.status for c in signed.certificates.query(serial_number=creds.serial_number)] == ["Revoked"]
        assert [c.name for c in signed.certificates.query(status="Revoked")] == ["Do odwołania"]
        # Spec GET /auth/{referenceNumber}: 460 "Certyfikat odwołany"
        assert login_refusal(ksef_server.base_url, creds) == "Certyfikat odwołany"
        with pytest.raises(BadRequestError) as again:  # 25009: "jest już odwołany"
            signed.certificates.revoke(creds.serial_number)
        assert again.value.codes == [25009]

    def test_a_revoke_whose_answer_was_lost_is_settled_by_the_certificate_s_status(
        self, signed: KSeF, backend: KSeFBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        creds = signed.certificates.obtain("Odpowiedź zgubiona")
        backend.faults.add(DROP_AFTER, operation=REVOKE)  # revoked, the 204 lost (a POST: not repeated)
        sent = signed.send_state.requests_sent
        with caplog.at_level("INFO", logger="ksef_client"):
            signed.certificates.revoke(creds.serial_number)
        assert "revoked by an attempt whose answer was lost" in caplog.text
        assert signed.send_state.requests_sent == sent + 2  # the revoke, then the query of its status
        assert [c.status for c in signed.certificates.query()] == ["Revoked"]

    def test_a_failed_revoke_that_did_not_revoke_is_raised(self, signed: KSeF, backend: KSeFBackend) -> None:
        creds = signed.certificates.obtain("Nadal aktywny")
        backend.faults.add(502, operation=REVOKE)  # a gateway's 502: maybe taken; here not
        with pytest.raises(InternalServerError):
            signed.certificates.revoke(creds.serial_number)
        assert [c.status for c in signed.certificates.query()] == ["Active"]


def _csr(key: Any, algorithm: Any = None) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm or hashes.SHA256())


def _tampered() -> bytes:
    der = bytearray(_csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature: still a CSR, no longer signed by its key
    return bytes(der)


BAD_CALLS = [
    # EnrollCertificateRequest.certificateName: 5 to 100 of [a-zA-Z0-9_- ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]
    ("name", lambda c: c.obtain("abcd")),
    ("name", lambda c: c.obtain("x" * 101)),
    ("name", lambda c: c.obtain("klucz/api")),
    ("name", lambda c: c.obtain("klucz\n")),
    ("kind", lambda c: c.obtain("Logowanie API", "Both")),  # KsefCertificateType
    ("kind", lambda c: c.obtain("Logowanie API", None)),
    ("kind", lambda c: c.enroll("Logowanie API", _csr(ec.generate_private_key(ec.SECP256R1())), None)),
    ("key_type", lambda c: c.obtain("Logowanie API", key_type="DSA")),  # the guide: RSA 2048 or EC P-256
    ("key", lambda c: c.obtain("Logowanie API", key=ec.generate_private_key(ec.SECP384R1()))),
    ("key", lambda c: c.obtain("Logowanie API", key=b"-----BEGIN PRIVATE KEY-----")),
    ("valid_from", lambda c: c.obtain("Logowanie API", valid_from=dt.datetime(2030, 1, 1))),
    # POST /certificates/enrollments: "RSA [...] 2048 bitów", "EC [...] P-256", "SHA1, SHA256, SHA384, SHA512"
    ("csr", lambda c: c.enroll("Klucz 1024", _csr(rsa.generate_private_key(public_exponent=65537, key_size=1024)))),
    ("csr", lambda c: c.enroll("Klucz 4096", _csr(rsa.generate_private_key(public_exponent=65537, key_size=4096)))),
    ("csr", lambda c: c.enroll("Klucz P-384", _csr(ec.generate_private_key(ec.SECP384R1())))),
    ("csr", lambda c: c.enroll("Skrót SHA-224", _csr(ec.generate_private_key(ec.SECP256R1()), hashes.SHA224()))),
    ("csr", lambda c: c.enroll("Zły podpis", _tampered())),
    ("csr", lambda c: c.enroll("Nie CSR", b"not a CSR")),
    ("reference_number", lambda c: c.enrollment_status("not-a-reference")),
    ("reference_number", lambda c: c.wait_enrolled("not-a-reference")),
    # RetrieveCertificatesRequest: 1 to 10 serial numbers of ^[0-9A-F]{16}$
    ("serial_numbers", lambda c: c.retrieve([])),
    ("serial_numbers", lambda c: c.retrieve(["00000000000000AA"] * 11)),
    ("serial_numbers", lambda c: c.retrieve(["XYZ"])),
    # QueryCertificatesRequest: enums, the serial's pattern; pageSize 10 to 50
    ("serial_number", lambda c: c.query(serial_number="12345")),
    ("certificate_type", lambda c: c.query(certificate_type="Signing")),
    ("status", lambda c: c.query(status="Suspended")),
    ("expires_after", lambda c: c.query(expires_after=dt.datetime(2030, 1, 1))),
    ("page_size", lambda c: c.query(page_size=60)),
    # CertificateRevocationReason; the path's ^[0-9A-F]{16}$
    ("reason", lambda c: c.revoke("00000000000000AA", reason="Lost")),
    ("serial_number", lambda c: c.revoke("00AA")),
]


@pytest.mark.parametrize(("field", "call"), BAD_CALLS)
def test_bad_arguments_fail_before_any_request(signed: KSeF, field: str, call: Any) -> None:
    sent = signed.send_state.requests_sent
    with pytest.raises(ValueError, match=field):
        call(signed.certificates)
    assert signed.send_state.requests_sent == sent


def test_credentials_are_saved_only_encrypted(signed: KSeF, tmp_path: Path) -> None:
    creds = self_signed_certificate(NIP, kind="seal")
    for empty in ("", b""):
        with pytest.raises(ValueError, match="password"):
            creds.save(tmp_path / "plain.p12", empty)
    assert not (tmp_path / "plain.p12").exists()
    data = creds.to_pkcs12(b"secret")
    with pytest.raises(ValueError):
        SigningCredentials.from_pkcs12(data, b"wrong")
    assert SigningCredentials.from_pkcs12(data, "secret").certificate == creds.certificate


def test_a_save_replaces_the_file_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review of certificates, 5: the file was truncated first (a failed save lost the key store
    # there) and a planted symbolic link was written through.
    first, second = self_signed_certificate(NIP, kind="seal"), self_signed_certificate(NIP, kind="seal")
    target = tmp_path / "erp.p12"
    first.save(target, "hasło")
    kept = target.read_bytes()

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", disk_full)
        with pytest.raises(OSError, match="No space"):
            second.save(target, "hasło")
    assert target.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["erp.p12"]
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not a key store")
    link = tmp_path / "link.p12"
    link.symlink_to(elsewhere)
    second.save(link, "hasło")
    assert elsewhere.read_text() == "not a key store" and not link.is_symlink()
    assert SigningCredentials.from_pkcs12(link, "hasło").certificate == second.certificate
    assert stat.S_IMODE(link.stat().st_mode) == 0o600


def test_a_csr_is_of_exactly_the_enrollment_data() -> None:
    # The attributes' string types of the spec's own example CSR (POST /certificates/enrollments):
    # PrintableString for countryName and serialNumber, UTF8String for the rest.
    data = {"commonName": "Jan Kowalski", "givenName": "Jan Maria", "surname": "Kowalski",
            "serialNumber": "PNOPL-15062788702", "countryName": "PL", "uniqueIdentifier": "d9d2-2724"}  # fmt: skip
    csr = build_csr(data, ec.generate_private_key(ec.SECP256R1()))
    named = [(a.oid.dotted_string, a.value, a._type.name) for a in csr.subject]
    assert named == [  # the guide's OIDs (certyfikaty-KSeF.md §2), in the order of the spec's example
        ("2.5.4.3", "Jan Kowalski", "UTF8String"), ("2.5.4.4", "Kowalski", "UTF8String"),
        ("2.5.4.42", "Jan Maria", "UTF8String"), ("2.5.4.6", "PL", "PrintableString"),
        ("2.5.4.5", "PNOPL-15062788702", "PrintableString"), ("2.5.4.45", "d9d2-2724", "UTF8String"),
    ]  # fmt: skip
    # certyfikaty-KSeF.md §2: "Atrybut givenName może pojawić się wielokrotnie i zwracany jest w
    # postaci listy wartości" (the spec types it a string: both are taken)
    names = certificate_subject({"commonName": "Jan Kowalski", "givenName": ["Jan", "Maria"], "countryName": "PL"})
    assert [a.value for a in names.get_attributes_for_oid(x509.NameOID.GIVEN_NAME)] == ["Jan", "Maria"]
    with pytest.raises(ValueError, match="cannot put in a CSR"):
        build_csr({**data, "title": "Pan"}, ec.generate_private_key(ec.SECP256R1()))
    assert base64.b64encode(csr.public_bytes(serialization.Encoding.DER))


@pytest.mark.anyio
async def test_async_obtain_log_in_query_and_revoke(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    backend.transitions.enrollment_reads = 2
    async with AsyncKSeF(
        base_url=ksef_server.base_url, rate_limit_scale=0, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        await client.auth.login_with_certificate(self_signed_certificate(NIP, kind="seal"), context_nip=NIP)
        assert (await client.certificates.limits()).can_request
        creds = await client.certificates.obtain("Async klucz", key_type="RSA", interval=2)
        assert fake_time.sleeps == [2]
        async with AsyncKSeF(base_url=ksef_server.base_url, rate_limit_scale=0) as fresh:
            await fresh.auth.login_with_certificate(creds, context_nip=NIP)
            assert [c.name async for c in fresh.certificates.query()] == ["Async klucz"]
        (found,) = await client.certificates.retrieve([creds.serial_number])
        assert found.certificate == creds.certificate
        await client.certificates.revoke(creds.serial_number, reason="Superseded")
        assert [c.status async for c in client.certificates.query(status="Revoked")] == ["Revoked"]
        with pytest.raises(ValueError, match="name"):
            await client.certificates.obtain("abc")


@pytest.mark.anyio
async def test_a_cancelled_async_obtain_leaves_its_request_to_complete(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    # A task cancelled while obtain waits (asyncio.timeout, task.cancel()): the cancellation goes
    # on as it must, and the client keeps the request with its key (review of certificates, 2).
    cancelled: list[float] = []

    async def sleep(seconds: float) -> None:
        if not cancelled:
            cancelled.append(seconds)
            raise anyio.get_cancelled_exc_class()
        await fake_time.asleep(seconds)

    backend.transitions.enrollment_reads = 2
    async with AsyncKSeF(
        base_url=ksef_server.base_url, rate_limit_scale=0, sleep=sleep, clock=fake_time.clock
    ) as client:
        await client.auth.login_with_certificate(self_signed_certificate(NIP, kind="seal"), context_nip=NIP)
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await client.certificates.obtain("Anulowany")
        (pending,) = client.certificates.unfinished
        creds = await client.certificates.complete(pending)
        assert creds.name == "Anulowany" and client.certificates.unfinished == ()


@pytest.mark.anyio
async def test_async_a_step_by_step_request_whose_answer_was_lost_says_so(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    async with AsyncKSeF(
        base_url=ksef_server.base_url, rate_limit_scale=0, sleep=fake_time.asleep, clock=fake_time.clock
    ) as client:
        await client.auth.login_with_certificate(self_signed_certificate(NIP, kind="seal"), context_nip=NIP)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = build_csr((await client.certificates.enrollment_data()).to_dict(), key)
        backend.faults.add(DROP_AFTER, operation="certificates.create_enrollment")
        with pytest.raises(APIConnectionError) as caught:
            await client.certificates.enroll("Async zgubiony", csr)
        assert caught.value.maybe_sent is True and "PendingCertificate(None, key," in caught.value.__notes__[0]
        creds = await client.certificates.complete(PendingCertificate(None, key, "Async zgubiony", "Authentication"))
        assert creds.certificate.public_key() == key.public_key()
        other = build_csr(
            (await client.certificates.enrollment_data()).to_dict(), ec.generate_private_key(ec.SECP256R1())
        )
        backend.faults.add(502, operation="certificates.create_enrollment")
        with pytest.raises(InternalServerError) as failed:
            await client.certificates.enroll("Async po 502", other)
        assert failed.value.maybe_sent is True
