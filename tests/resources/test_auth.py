"""Logins against the emulator: KSeF token and certificate (RSA, EC), polling, refresh, revoke."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import anyio
import pytest
from lxml import etree
from signxml import methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.xades.xades import XAdESSigner

from ksef_client import AsyncKSeF, KSeF
from ksef_client._generated.api.testdata import block_test_context, create_test_person, grant_test_permissions
from ksef_client._generated.models import BlockContextAuthenticationRequest, PersonCreateRequest
from ksef_client._generated.models import TestDataPermissionsGrantRequest as GrantRequest
from ksef_client.errors import AuthenticationError, AuthenticationFailedError, BadRequestError, PermissionDeniedError
from ksef_client.identifiers import make_internal_id
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import AUTH_NAMESPACE, C14N_1_0, DSIG_NAMESPACE, build_auth_token_request, sign_xades
from tests.conftest import NIP
from tests.helpers import FakeTime, create_context, fingerprint

CHALLENGE = "20261125-CR-0123456789-ABCDEF0123-4A"
DSIG = DSIG_NAMESPACE


@pytest.fixture
def anon(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> Iterator[KSeF]:
    """A client with no token yet."""
    with KSeF(base_url=ksef_server.base_url, sleep=fake_time.sleep, clock=fake_time.clock) as client:
        yield client


def _ksef_token(ksef: KSeF, permissions: tuple[str, ...] = ("InvoiceRead", "InvoiceWrite")) -> tuple[str, str]:
    created = ksef.tokens.create(list(permissions), "token for tests")
    ksef.tokens.wait_active(created.reference_number)  # Pending until then: no login yet
    return created.reference_number, created.token


class TestTokenLogin:
    def test_login_installs_tokens_that_work(self, ksef: KSeF, anon: KSeF) -> None:
        _, token = _ksef_token(ksef)
        result = anon.auth.login_with_token(token, context_nip=NIP)
        assert anon.access_token == result.access_token
        assert result.access_valid_until > dt.datetime.now(dt.UTC)
        assert anon.access_token_valid_until == result.access_valid_until
        assert list(anon.sessions.list("Online")) == []
        assert token not in repr(result) and result.access_token not in repr(anon)

    def test_polls_until_the_operation_finishes(
        self, ksef: KSeF, anon: KSeF, backend: KSeFBackend, fake_time: FakeTime
    ) -> None:
        _, token = _ksef_token(ksef)
        backend.transitions.auth_reads = 3
        anon.auth.login_with_token(token, context_nip=NIP, interval=0.5)
        assert fake_time.sleeps == [0.5, 0.5]

    def test_revoked_token_fails_with_450(self, ksef: KSeF, anon: KSeF) -> None:
        ref, token = _ksef_token(ksef)
        ksef.tokens.revoke(ref)
        with pytest.raises(AuthenticationFailedError) as caught:
            anon.auth.login_with_token(token, context_nip=NIP)
        assert caught.value.code == 450
        assert anon.access_token is None

    def test_token_of_another_context_fails(self, ksef: KSeF, anon: KSeF) -> None:
        _, token = _ksef_token(ksef)
        with pytest.raises(AuthenticationFailedError) as caught:
            anon.auth.login_with_token(token, context_nip="1111111111")
        assert caught.value.code == 450

    def test_token_permissions_bound_the_access_token(self, ksef: KSeF, anon: KSeF) -> None:
        _, token = _ksef_token(ksef, ("InvoiceRead",))
        anon.auth.login_with_token(token, context_nip=NIP)
        with pytest.raises(PermissionDeniedError) as caught:  # sending needs InvoiceWrite
            anon.online_session().open()
        assert caught.value.status_code == 403
        assert caught.value.reason_code == "missing-permissions"
        assert "InvoiceWrite" in caught.value.required_permissions  # the spec lists every permission that would do
        assert caught.value.present_permissions == ["InvoiceRead"]

    def test_bad_input_fails_before_any_request(self, anon: KSeF) -> None:
        with pytest.raises(ValueError, match="context_nip"):
            anon.auth.login_with_token("x", context_nip="1234567890")
        with pytest.raises(ValueError, match="exactly one"):
            anon.auth.login_with_token("x")
        with pytest.raises(ValueError, match="not one of"):
            anon.auth.login_with_token("x", context=("Regon", "123"))
        assert anon.send_state.requests_sent == 0


class TestCertificateLogin:
    @pytest.mark.parametrize(
        ("kind", "key_type"), [("person", "rsa"), ("seal", "rsa"), ("person", "ec"), ("seal", "ec")]
    )
    def test_owner_certificate_logs_in(self, anon: KSeF, kind: str, key_type: str) -> None:
        creds = self_signed_certificate(kind=kind, key_type=key_type)
        anon.auth.login_with_certificate(creds, context_nip=creds.nip)
        assert list(anon.sessions.list("Online")) == []

    def test_certificate_of_someone_else_has_no_permissions(self, anon: KSeF) -> None:
        creds = self_signed_certificate()
        with pytest.raises(AuthenticationFailedError) as caught:
            anon.auth.login_with_certificate(creds, context_nip=NIP)
        assert caught.value.code == 415

    def test_expired_certificate_fails_with_460(
        self, anon: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        creds = self_signed_certificate(valid_days=1)
        later = backend.clock() + dt.timedelta(days=2)
        monkeypatch.setattr(backend, "clock", lambda: later)
        with pytest.raises(AuthenticationFailedError) as caught:
            anon.auth.login_with_certificate(creds, context_nip=creds.nip)
        assert caught.value.code == 460


class TestTokens:
    def test_refresh_before_expiry_and_after_a_401(
        self, anon: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        creds = self_signed_certificate()
        anon.auth.login_with_certificate(creds, context_nip=creds.nip)
        first = anon.access_token
        # 1. The client knows the expiry and refreshes ahead of it.
        anon._tokens.valid_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        list(anon.sessions.list("Online"))
        second = anon.access_token
        assert second != first
        # 2. The server says 401 (its clock moved past the token's expiry): refresh once, retry.
        later = backend.clock() + dt.timedelta(minutes=20)
        monkeypatch.setattr(backend, "clock", lambda: later)
        anon._tokens.valid_until = None
        assert list(anon.sessions.list("Online")) == []
        assert anon.access_token not in (first, second)

    def test_a_refresh_that_meets_a_503_is_sent_again(
        self, ksef: KSeF, anon: KSeF, backend: KSeFBackend, fake_time: FakeTime
    ) -> None:
        # The guide: a refresh token may be used many times, so a refresh whose answer was a 5xx
        # or was lost is sent again like a GET, and the caller's request goes through.
        ref, token = _ksef_token(ksef)
        anon.auth.login_with_token(token, context_nip=NIP)
        before = anon.access_token
        anon._tokens.valid_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        backend.faults.add(503, operation="auth.refresh_token", times=1)
        backend.faults.add(DROP, operation="auth.refresh_token", times=1)
        assert anon.tokens.get(ref).reference_number == ref
        assert anon.access_token != before and len(fake_time.sleeps) == 2  # two backoffs, no real wait

    def test_setting_the_access_token_drops_the_previous_login(
        self, anon: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        creds = self_signed_certificate()
        anon.auth.login_with_certificate(creds, context_nip=creds.nip)  # context A, refreshable
        other = anon.access_token = backend.mint_access_token(NIP)  # the user switches to context B
        assert anon.access_token_valid_until is None and anon._tokens.refresh_token is None
        later = backend.clock() + dt.timedelta(minutes=20)
        monkeypatch.setattr(backend, "clock", lambda: later)  # B's token expires at KSeF
        with pytest.raises(AuthenticationError):  # not refreshed with A's token, not re-sent in A
            list(anon.sessions.list("Online"))
        assert anon.access_token == other

    def test_redeem_happens_once_and_revoke_kills_refresh(self, anon: KSeF) -> None:
        creds = self_signed_certificate()
        anon.auth.login_with_certificate(creds, context_nip=creds.nip)
        anon.auth.revoke_current_session()
        assert anon._tokens.refresh_token is None
        list(anon.sessions.list("Online"))  # the access token lives on until it expires

    def test_401_without_refresh_token_raises(self, ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
        with (
            KSeF(base_url=ksef_server.base_url, access_token="not-a-jwt") as client,
            pytest.raises(AuthenticationError) as caught,
        ):
            list(client.sessions.list("Online"))
        assert caught.value.status_code == 401

    def test_unknown_challenge_is_21111(self, anon: KSeF) -> None:
        from ksef_client._generated.api.auth import authenticate_ksef_token
        from ksef_client._generated.models import InitTokenAuthenticationRequest

        body = InitTokenAuthenticationRequest.from_dict(
            {
                "challenge": "20261125-CR-0123456789-0123456789-00",
                "contextIdentifier": {"type": "Nip", "value": NIP},
                "encryptedToken": "AAAA",
            }
        )
        with pytest.raises(BadRequestError) as caught:
            authenticate_ksef_token.sync_detailed(client=anon.raw, body=body)
        assert caught.value.codes == [21111]


@pytest.mark.anyio
async def test_async_logins(ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime) -> None:
    creds = self_signed_certificate(kind="seal", key_type="ec")
    async with AsyncKSeF(base_url=ksef_server.base_url, sleep=fake_time.asleep, clock=fake_time.clock) as client:
        await client.auth.login_with_certificate(creds, context_nip=creds.nip)
        created = await client.tokens.create(["InvoiceRead", "InvoiceWrite"], "async token")
        status = await client.tokens.get(created.reference_number)
        assert str(status.status) == "Active"
    async with AsyncKSeF(base_url=ksef_server.base_url, sleep=fake_time.asleep, clock=fake_time.clock) as client:
        await client.auth.login_with_token(created.token, context_nip=creds.nip)
        assert [s async for s in client.sessions.list("Online")] == []


class TestTestData:
    """The TEST environment's /testdata helpers shape what the emulator's logins allow."""

    def test_granted_permissions_let_a_representative_log_in(self, anon: KSeF) -> None:
        representative = self_signed_certificate()
        body = GrantRequest.from_dict(
            {
                "contextIdentifier": {"type": "Nip", "value": NIP},
                "authorizedIdentifier": {"type": "Nip", "value": representative.nip},
                "permissions": [{"permissionType": "InvoiceRead", "description": "reading invoices"}],
            }
        )
        grant_test_permissions.sync_detailed(client=anon.raw, body=body)
        anon.auth.login_with_certificate(representative, context_nip=NIP)
        with pytest.raises(PermissionDeniedError):  # InvoiceRead only: no sending
            anon.online_session().open()

    def test_blocked_context_and_deceased_person(self, anon: KSeF) -> None:
        creds = self_signed_certificate()
        block = BlockContextAuthenticationRequest.from_dict({"contextIdentifier": {"type": "Nip", "value": creds.nip}})
        block_test_context.sync_detailed(client=anon.raw, body=block)
        with pytest.raises(AuthenticationFailedError) as blocked:
            anon.auth.login_with_certificate(creds, context_nip=creds.nip)
        assert blocked.value.code == 480
        person = self_signed_certificate()
        body = PersonCreateRequest.from_dict(
            {
                "nip": person.nip,
                "pesel": "90010112345",
                "isBailiff": False,
                "isDeceased": True,
                "description": "deceased person",
            }
        )
        create_test_person.sync_detailed(client=anon.raw, body=body)
        with pytest.raises(AuthenticationFailedError) as deceased:
            anon.auth.login_with_certificate(person, context_nip=person.nip)
        assert deceased.value.code == 470


@pytest.mark.parametrize("suffix", ["InternalId", "NipVatUe"])
def test_certificate_login_in_composite_contexts(
    anon: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, suffix: str
) -> None:
    creds = self_signed_certificate(kind="seal")
    value = make_internal_id(creds.nip, 0) if suffix == "InternalId" else f"{creds.nip}-ATU12345678"
    # The context exists once a grant of its NIP created it; the administrator logs in there.
    administrator = ("Nip", creds.nip) if suffix == "InternalId" else ("Fingerprint", fingerprint(creds))
    create_context(ksef_server.base_url, backend, (suffix, value), administrator)
    subject_type = "certificateSubject" if suffix == "InternalId" else "certificateFingerprint"
    anon.auth.login_with_certificate(creds, context=(suffix, value), subject_identifier_type=subject_type)
    assert list(anon.sessions.list("Online")) == []  # the token works in that context
    with pytest.raises(ValueError, match="context"):
        anon.auth.login_with_certificate(creds, context=(suffix, "1234567890-00001"))


class TestConcurrentRefresh:
    """Callers sharing a client whose token is expiring make one refresh between them."""

    N = 20

    @staticmethod
    def _count_refreshes(backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        calls: list[int] = []
        original = backend.auth.refresh

        def counting(authorization: str | None) -> tuple[str, dt.datetime]:
            calls.append(1)
            return original(authorization)

        monkeypatch.setattr(backend.auth, "refresh", counting)
        return calls

    def _threads(self, work: Callable[[], object]) -> None:
        barrier = threading.Barrier(self.N)
        errors: list[BaseException] = []

        def run() -> None:
            barrier.wait()
            try:
                work()
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=run) for _ in range(self.N)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    def test_threads_near_expiry_refresh_once(
        self, ksef: KSeF, anon: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ref, token = _ksef_token(ksef)
        anon.auth.login_with_token(token, context_nip=NIP)
        calls = self._count_refreshes(backend, monkeypatch)
        anon._tokens.valid_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        self._threads(lambda: anon.tokens.get(ref))
        assert len(calls) == 1

    def test_threads_refused_with_401_refresh_once(
        self, ksef: KSeF, anon: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ref, token = _ksef_token(ksef)
        anon.auth.login_with_token(token, context_nip=NIP)
        calls = self._count_refreshes(backend, monkeypatch)
        anon._tokens.valid_until = None  # the client does not know; KSeF's clock says expired
        later = backend.clock() + dt.timedelta(minutes=20)
        monkeypatch.setattr(backend, "clock", lambda: later)
        self._threads(lambda: anon.tokens.get(ref))
        assert len(calls) == 1

    @pytest.mark.anyio
    async def test_tasks_near_expiry_or_refused_refresh_once(
        self,
        ksef: KSeF,
        ksef_server: ThreadedServer,
        backend: KSeFBackend,
        monkeypatch: pytest.MonkeyPatch,
        fake_time: FakeTime,
    ) -> None:
        ref, token = _ksef_token(ksef)
        calls = self._count_refreshes(backend, monkeypatch)
        async with AsyncKSeF(base_url=ksef_server.base_url, sleep=fake_time.asleep, clock=fake_time.clock) as client:
            await client.auth.login_with_token(token, context_nip=NIP)
            client._tokens.valid_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
            async with anyio.create_task_group() as group:
                for _ in range(self.N):
                    group.start_soon(client.tokens.get, ref)
            assert len(calls) == 1
            client._tokens.valid_until = None
            later = backend.clock() + dt.timedelta(minutes=20)
            monkeypatch.setattr(backend, "clock", lambda: later)
            async with anyio.create_task_group() as group:
                for _ in range(self.N):
                    group.start_soon(client.tokens.get, ref)
            assert len(calls) == 2

    def test_a_failed_refresh_leaves_the_lock_free(
        self, ksef: KSeF, anon: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ref, token = _ksef_token(ksef)
        anon.auth.login_with_token(token, context_nip=NIP)
        anon._tokens.valid_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        backend.faults.add(400, operation="auth.refresh_token")
        with pytest.raises(BadRequestError):
            anon.tokens.get(ref)
        assert not anon._tokens.lock.locked()
        calls = self._count_refreshes(backend, monkeypatch)
        self._threads(lambda: anon.tokens.get(ref))  # the next callers refresh (once) and go on
        assert len(calls) == 1


class TestSignedElsewhere:
    """A request signed outside the SDK (a signing application, Profil Zaufany, a key on a device):
    the review's finding 6. uwierzytelnianie.md lists those means; the official clients send any
    signed document (C# ``SubmitXadesAuthRequestAsync(signedXml, ...)``, Java
    ``submitAuthTokenRequest(signedXml, false)``)."""

    def test_the_handed_out_request_signed_elsewhere_logs_in(self, anon: KSeF) -> None:
        creds = self_signed_certificate(kind="seal")
        unsigned = anon.auth.unsigned_auth_token_request(context_nip=creds.nip)
        root = etree.fromstring(unsigned)
        assert root.tag == f"{{{AUTH_NAMESPACE}}}AuthTokenRequest" and root.find(f"{{{DSIG}}}Signature") is None
        signed = sign_xades(root, creds)  # as a signing application would: enveloped XAdES
        tokens = anon.auth.login_with_signed_request(signed)
        assert anon.access_token == tokens.access_token
        assert anon._tokens.context == ("Nip", creds.nip)
        assert list(anon.sessions.list("Online")) == []  # the token works in that context

    def test_a_composite_context_and_the_fingerprint_subject_are_carried(
        self, anon: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend
    ) -> None:
        creds = self_signed_certificate(kind="seal")
        context = ("InternalId", make_internal_id(creds.nip, 0))
        create_context(ksef_server.base_url, backend, context, ("Nip", creds.nip))  # its administrator: the seal
        unsigned = anon.auth.unsigned_auth_token_request(context=context, subject_identifier_type="certificateSubject")
        anon.auth.login_with_signed_request(sign_xades(etree.fromstring(unsigned), creds))
        assert anon._tokens.context == context
        other = anon.auth.unsigned_auth_token_request(context_nip=NIP, subject_identifier_type="certificateFingerprint")
        assert etree.fromstring(other).findtext(f"{{{AUTH_NAMESPACE}}}SubjectIdentifierType") == (
            "certificateFingerprint"
        )

    @pytest.mark.parametrize("method", [methods.enveloped, methods.enveloping])
    def test_a_valid_request_passes_the_schema_check_whatever_holds_its_signature(
        self, anon: KSeF, ksef_server: ThreadedServer, backend: KSeFBackend, method: methods
    ) -> None:
        # The schema has no place for ds:Signature: enveloped, it is a child of the request and
        # taken out before the check (as its transform takes it out of what is signed);
        # enveloping ("otaczający", auth/podpis-xades.md), the request is inside its ds:Object.
        creds = self_signed_certificate(kind="seal")
        composite = ("NipVatUe", f"{creds.nip}-ATU12345678")
        create_context(ksef_server.base_url, backend, composite, ("Fingerprint", fingerprint(creds)))
        unsigned = anon.auth.unsigned_auth_token_request(
            context=composite, subject_identifier_type="certificateFingerprint"
        )
        signer = XAdESSigner(
            method=method, signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256, c14n_algorithm=C14N_1_0,
        )  # fmt: skip
        signed = etree.tostring(
            signer.sign(etree.fromstring(unsigned), key=creds.private_key, cert=[creds.certificate])
        )
        assert etree.QName(etree.fromstring(signed)).localname == (
            "Signature" if method == methods.enveloping else "AuthTokenRequest"
        )
        anon.auth.login_with_signed_request(signed)
        assert anon._tokens.context == ("NipVatUe", f"{creds.nip}-ATU12345678")

    def test_a_signer_without_rights_is_refused_by_ksef(self, anon: KSeF) -> None:
        creds = self_signed_certificate()
        unsigned = anon.auth.unsigned_auth_token_request(context_nip=NIP)
        with pytest.raises(AuthenticationFailedError) as caught:
            anon.auth.login_with_signed_request(sign_xades(etree.fromstring(unsigned), creds))
        assert caught.value.code == 415
        assert anon.access_token is None

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("text", "expected the signed file's bytes"),
            (b"<AuthTokenRequest", "not well-formed"),
            (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DTD"),
            (b"<Other/>", "expected one AuthTokenRequest"),
            ("unsigned", "it is not signed"),
            ("bad-context", "ContextIdentifier: '5265877635-1' is not an InternalId"),
            # What the schema of its namespace refuses (KSeF: 400 / 21401), the first error named:
            (
                "extra-element",
                r"does not match schemat_auth_v2-0\.xsd .*'\{[^}]+\}Extra': This element is not expected",
            ),
            ("bad-challenge", r"does not match schemat_auth_v2-0\.xsd .*Challenge'.*length of '15'"),
            ("two-identifiers", "expected one identifier in ContextIdentifier"),
        ],
    )
    def test_what_is_surely_no_signed_request_fails_before_any_request(
        self, anon: KSeF, document: object, message: str
    ) -> None:
        creds = self_signed_certificate(kind="seal")
        if document == "unsigned":
            document = etree.tostring(build_auth_token_request(CHALLENGE, "Nip", creds.nip))
        elif document == "bad-context":
            document = sign_xades(build_auth_token_request(CHALLENGE, "InternalId", f"{NIP}-1"), creds)
        elif document in ("extra-element", "bad-challenge", "two-identifiers"):
            document = sign_xades(_edited(build_auth_token_request(CHALLENGE, "Nip", creds.nip), document), creds)
        with pytest.raises(ValueError, match=f"^signed_xml: .*{message}"):
            anon.auth.login_with_signed_request(document)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="subject_identifier_type"):
            anon.auth.unsigned_auth_token_request(context_nip=NIP, subject_identifier_type="pesel")
        with pytest.raises(ValueError, match="subject_identifier_type"):
            anon.auth.login_with_certificate(creds, context_nip=creds.nip, subject_identifier_type="pesel")
        with pytest.raises(ValueError, match="context"):
            anon.auth.unsigned_auth_token_request(context=("PeppolId", "P1"))
        assert anon.send_state.requests_sent == 0


def _edited(root: etree._Element, how: str) -> etree._Element:
    """``root`` made schema-invalid in one way (before it is signed)."""
    ns = f"{{{AUTH_NAMESPACE}}}"
    if how == "extra-element":
        etree.SubElement(root, ns + "Extra").text = "x"
    elif how == "bad-challenge":
        challenge = root.find(ns + "Challenge")
        assert challenge is not None
        challenge.text = "not-a-challenge"
    else:
        etree.SubElement(root.find(ns + "ContextIdentifier"), ns + "Nip").text = NIP  # type: ignore[arg-type]
    return root


@pytest.mark.anyio
async def test_async_login_with_a_request_signed_by_signxml(
    ksef_server: ThreadedServer, backend: KSeFBackend, fake_time: FakeTime
) -> None:
    creds = self_signed_certificate(kind="person", key_type="ec")
    async with AsyncKSeF(base_url=ksef_server.base_url, sleep=fake_time.asleep, clock=fake_time.clock) as client:
        unsigned = await client.auth.unsigned_auth_token_request(context_nip=creds.nip)
        # Signed with signxml directly, not the SDK's helper: the document is all that is shared.
        signer = XAdESSigner(
            signature_algorithm=SignatureMethod.ECDSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        )
        signed = etree.tostring(
            signer.sign(etree.fromstring(unsigned), key=creds.private_key, cert=[creds.certificate])
        )
        await client.auth.login_with_signed_request(signed)
        assert [s async for s in client.sessions.list("Online")] == []
