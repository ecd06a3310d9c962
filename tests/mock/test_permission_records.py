"""What the emulator's permission records say, as the Ministry's E2E tests (run against KSeF TEST)
expect KSeF to say it: the EU administrator's four records, the subject details of every grant, the
``targetIdentifier`` filter, the contexts a grant creates, and which right revokes which grant.
Driven through the SDK against the strict emulator (every answer checked against the spec)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from cryptography.x509.oid import NameOID

from ksef_client import KSeF
from ksef_client.errors import AuthenticationFailedError, PermissionOperationFailedError
from ksef_client.identifiers import make_internal_id
from ksef_client.mock.models import Context
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import SigningCredentials
from tests.conftest import NIP
from tests.helpers import certificate_with, fingerprint

OFFICE, CLIENT, OTHER_CLIENT = "7762811692", "4972530874", "5261040828"
PESEL, OTHER_PESEL = "15062788702", "22271569167"
COMPOSITE = ("NipVatUe", f"{NIP}-DE123456789")
BRANCH = ("InternalId", make_internal_id(NIP, 1))
EU_SCOPES = {"VatUeManage", "InvoiceWrite", "InvoiceRead", "Introspection"}
PERSON = {"subjectDetailsType": "PersonByIdentifier", "personById": {"firstName": "Jan", "lastName": "Testowy"}}
EU_ENTITY = {"fullName": "Podmiot Testowy 2", "address": "ul. Testowa 2, 00-000 Miasto"}
ADMIN_ENTITY = {"subjectDetailsType": "EntityByFingerprint",
                "entityByFp": {"fullName": "EU Admin Full Name", "address": "EU Admin Address"}}  # fmt: skip
DOCUMENT = {"type": "Passport", "number": "AA1234567", "country": "PL"}
REPRESENTATIVE = {"subjectDetailsType": "PersonByFingerprintWithoutIdentifier",
                  "personByFpNoId": {"firstName": "Reprezentant", "lastName": "Reprezentant",
                                     "birthDate": "1990-01-01", "idDocument": DOCUMENT}}  # fmt: skip


def _owner(ksef_mock: KSeFMock, nip: str, **options: Any) -> KSeF:
    token = ksef_mock.backend.mint_access_token(nip, **options)
    return KSeF(base_url=ksef_mock.base_url, access_token=token, sleep=lambda _: None)


def _login(ksef_mock: KSeFMock, credentials: SigningCredentials, context: tuple[str, str],
           subject_type: str = "certificateSubject") -> set[str] | int:  # fmt: skip
    """The permissions a XAdES login to ``context`` gets, or its failure status code."""
    with KSeF(base_url=ksef_mock.base_url) as client:
        try:
            tokens = client.auth.login_with_certificate(
                credentials, context=context, subject_identifier_type=subject_type
            )
        except AuthenticationFailedError as failed:
            return int(failed.code or 0)
    return set(ksef_mock.backend.authenticate(f"Bearer {tokens.access_token}").permissions)


def _grant_eu_administrator(ksef: KSeF, administrator: str, details: dict[str, Any] = ADMIN_ENTITY) -> None:
    ksef.permissions.wait(ksef.permissions.grant_eu_entity_administrator(
        subject_identifier=("Fingerprint", administrator), context_identifier=COMPOSITE,
        description="E2E EU Entity Permission Test", eu_entity_name="Sample Subject Name",
        subject_details=details, eu_entity_details=EU_ENTITY,
    ))  # fmt: skip


def _pesel_certificate(pesel: str) -> SigningCredentials:
    credentials: SigningCredentials = certificate_with(
        (NameOID.GIVEN_NAME, "A"), (NameOID.SURNAME, "R"), (NameOID.SERIAL_NUMBER, f"PNOPL-{pesel}"),
        (NameOID.COMMON_NAME, "Indirect Person"),
    )  # fmt: skip
    return credentials


# --- the EU administrator's grant: four records ----------------------------------------------------


def test_an_eu_administrator_grant_is_four_records_listed_filtered_and_revoked_one_by_one(
    ksef: KSeF, ksef_mock: KSeFMock
) -> None:
    # POST /permissions/eu-entities/administration/grants: "Metoda automatycznie nadaje wszystkie powyższe
    # uprawnienia" (VatEuManage, InvoiceWrite, InvoiceRead, Introspection). The Ministry's
    # E2E/Permissions/EuEntityPermission/EuEntityPermissionE2ETests.cs finds the four scopes in
    # eu-entities/grants after this one grant, revokes every listed id (each revoke ends 200, as many
    # revokes as records), then finds none; EuEntityPermissionAdminAuthenticationE2ETests.cs: the
    # administrator's login carries exactly the four. The emulator kept one VatUeManage record.
    admin = self_signed_certificate(kind="person")
    _grant_eu_administrator(ksef, fingerprint(admin))
    listed = list(ksef.permissions.eu_entities())
    assert {str(p.permission_scope) for p in listed} == EU_SCOPES
    assert len({p.id for p in listed}) == 4
    for scope in EU_SCOPES:
        assert [str(p.permission_scope) for p in ksef.permissions.eu_entities(permission_types=[scope])] == [scope]
    assert _login(ksef_mock, admin, COMPOSITE, "certificateFingerprint") == EU_SCOPES

    manage = next(p.id for p in listed if str(p.permission_scope) == "VatUeManage")
    assert ksef.permissions.wait(ksef.permissions.revoke(manage)).status.code == 200
    # The records left still open the login, with what they give.
    assert _login(ksef_mock, admin, COMPOSITE, "certificateFingerprint") == EU_SCOPES - {"VatUeManage"}
    for permission in list(ksef.permissions.eu_entities()):
        assert ksef.permissions.wait(ksef.permissions.revoke(permission.id)).status.code == 200
    assert list(ksef.permissions.eu_entities()) == []
    assert _login(ksef_mock, admin, COMPOSITE, "certificateFingerprint") == 415


def test_an_older_state_file_gets_the_eu_administrator_records_it_lacked(ksef: KSeF, ksef_mock: KSeFMock) -> None:
    # A --state file written when the grant was its VatUeManage record alone: restored, the grant has its
    # four records and its administrator's login its four permissions, as a grant made now.
    backend, admin = ksef_mock.backend, self_signed_certificate(kind="person")
    _grant_eu_administrator(ksef, fingerprint(admin))
    state = backend.permissions.state
    for permission_id, grant in list(state.grants.items()):
        if grant.permissions != ("VatUeManage",):
            del state.grants[permission_id]
    del state.__dict__["version"]  # as an older emulator pickled it
    backend.restore(pickle.loads(pickle.dumps(backend.snapshot())))
    assert sorted(str(p.permission_scope) for p in ksef.permissions.eu_entities()) == sorted(EU_SCOPES)
    assert _login(ksef_mock, admin, COMPOSITE, "certificateFingerprint") == EU_SCOPES
    backend.restore(pickle.loads(pickle.dumps(backend.snapshot())))  # restored again: nothing added
    assert len(list(ksef.permissions.eu_entities())) == 4


# --- subject details -----------------------------------------------------------------------------


def test_every_listing_gives_back_the_subject_details_of_the_grant(ksef: KSeF, ksef_mock: KSeFMock) -> None:
    # The spec's PersonPermission, PersonalPermission, SubunitPermission, EntityAuthorizationGrant and
    # EuEntityPermission carry subjectPersonDetails / subjectEntityDetails (and euEntityDetails); the
    # Ministry's tests read them back: EntityPermission/EntityPermissionsE2ETestsScenarios.cs
    # (SubjectEntityDetails.FullName == subjectDetails.FullName),
    # AuthorizationPermission/AuthorizationPermissions_ReceivedOwnerNip_Direct_E2ETests.cs (Received,
    # SubjectEntityDetails.FullName), EuEntityPermission/EuEntityAdminsListAsOwnerE2ETests.cs
    # (SubjectPersonDetails.FirstName/LastName), EuEntityPermissionAdminAuthenticationE2ETests.cs
    # (every record has EuEntityDetails, no SubjectPersonDetails, SubjectEntityDetails' address and name).
    # The emulator dropped them all.
    api = ksef.permissions
    with_id = {"subjectDetailsType": "PersonByFingerprintWithIdentifier",
               "personByFpWithId": {"firstName": "Anna", "lastName": "Testowa",
                                    "identifier": {"type": "Nip", "value": CLIENT}}}  # fmt: skip
    api.wait(api.grant_person(subject_identifier=("Pesel", PESEL), permissions=["InvoiceRead"],
                              description="księgowa", subject_details=PERSON))  # fmt: skip
    api.wait(api.grant_person(subject_identifier=("Fingerprint", "A" * 64), permissions=["InvoiceWrite"],
                              description="fakturzystka", subject_details=with_id))  # fmt: skip
    api.wait(api.grant_entity(subject_identifier=("Nip", OFFICE), permissions=["InvoiceRead"],
                              description="biuro rachunkowe", subject_details="Biuro Rachunkowe XYZ"))  # fmt: skip
    api.wait(api.grant_subunit(subject_identifier=("Pesel", PESEL), context_identifier=BRANCH,
                               subunit_name="Oddział Kraków", description="admin", subject_details=PERSON))  # fmt: skip
    with _owner(ksef_mock, CLIENT) as grantor:
        grantor.permissions.wait(grantor.permissions.grant_authorization(
            subject_identifier=("Nip", NIP), permission="SelfInvoicing", description="samofakturowanie",
            subject_details=f"Właściciel {NIP}",
        ))  # fmt: skip

    persons = {str(p.authorized_identifier.value): p for p in api.persons()}
    assert persons[PESEL].subject_person_details.to_dict() == {
        **PERSON["personById"],
        "subjectDetailsType": "PersonByIdentifier",
    }
    assert persons["A" * 64].subject_person_details.to_dict() == {
        "subjectDetailsType": "PersonByFingerprintWithIdentifier", "firstName": "Anna", "lastName": "Testowa",
        "personIdentifier": {"type": "Nip", "value": CLIENT},
    }  # fmt: skip
    office = persons[OFFICE].subject_entity_details
    assert (str(office.subject_details_type), office.full_name) == ("EntityByIdentifier", "Biuro Rachunkowe XYZ")
    (subunit,) = api.subunits()
    assert subunit.subject_person_details.last_name == "Testowy"
    (received,) = api.authorizations(query_type="Received", authorized_identifier=("Nip", NIP))
    assert received.subject_entity_details.full_name == f"Właściciel {NIP}"

    admin = self_signed_certificate(kind="person")
    _grant_eu_administrator(ksef, fingerprint(admin))
    for record in api.eu_entities():
        assert record.eu_entity_details.to_dict() == EU_ENTITY
        assert record.subject_entity_details.to_dict() == {
            **ADMIN_ENTITY["entityByFp"],
            "subjectDetailsType": "EntityByFingerprint",
        }
        assert not record.subject_person_details
    # EuRepresentativePermissionE2ETests.cs: the administrator's representatives, listed with their names.
    with KSeF(base_url=ksef_mock.base_url) as composite:
        composite.auth.login_with_certificate(
            admin, context=COMPOSITE, subject_identifier_type="certificateFingerprint"
        )
        representative = "B" * 64
        composite.permissions.wait(composite.permissions.grant_eu_entity(
            subject_identifier=("Fingerprint", representative), permissions=["InvoiceWrite", "InvoiceRead"],
            description="Representative for EU Entity", subject_details=REPRESENTATIVE,
        ))  # fmt: skip
        theirs = list(composite.permissions.eu_entities(authorized_fingerprint_identifier=representative))
        own = list(composite.permissions.personal())  # the administrator's own four, with its details
    assert {str(p.permission_scope) for p in own} == EU_SCOPES
    assert {p.subject_entity_details.full_name for p in own} == {"EU Admin Full Name"}
    assert len(theirs) == 2
    for record in theirs:
        assert (record.subject_person_details.first_name, record.subject_person_details.last_name) == (
            "Reprezentant", "Reprezentant",
        )  # fmt: skip
        assert str(record.subject_person_details.birth_date) == "1990-01-01"
        assert record.eu_entity_details.to_dict() == EU_ENTITY  # the entity its administrator's grant named
    assert ksef_mock.server.app.violations == []


# --- the targetIdentifier filter -------------------------------------------------------------------


def test_a_target_filter_naming_the_context_keeps_its_direct_grants(ksef_mock: KSeFMock) -> None:
    # The Ministry's PersonPermission/PersonalPermissions_IndirectSelective_IncompleteChain_E2ETests.cs: the
    # office grants a PESEL InvoiceWrite, then queries persons (PermissionsGrantedInCurrentContext) with
    # contextIdentifier = targetIdentifier = its own NIP, authorizedIdentifier, Active: "twardy assert -
    # grant MUSI być widoczny dla nadawcy". The person, logged in to the office, lists nothing of the
    # owner's (context = target = owner: no InvoiceRead/InvoiceWrite). ..._CompleteChain_E2ETests.cs: the
    # person's personal query with context = target = the office lists the InvoiceRead granted.
    # The emulator's filter dropped every direct grant (a direct grant has no target).
    with _owner(ksef_mock, NIP) as owner:
        owner.permissions.wait(owner.permissions.grant_authorization(
            subject_identifier=("Nip", OFFICE), permission="TaxRepresentative", description="E2E-Indirect-Owner",
            subject_details="Podmiot Testowy 1",
        ))  # fmt: skip
    with _owner(ksef_mock, OFFICE) as office:
        for scope in ("InvoiceWrite", "InvoiceRead"):
            office.permissions.wait(office.permissions.grant_person(
                subject_identifier=("Pesel", PESEL), permissions=[scope], description="E2E-Indirect-IntermToPerson",
                subject_details=PERSON,
            ))  # fmt: skip
        granted = office.permissions.persons(
            query_type="PermissionsGrantedInCurrentContext", context_identifier=("Nip", OFFICE),
            target_identifier=("Nip", OFFICE), authorized_identifier=("Pesel", PESEL), permission_state="Active",
        )  # fmt: skip
        assert sorted(str(p.permission_scope) for p in granted) == ["InvoiceRead", "InvoiceWrite"]
    # An indirect grant is still narrowed to its client: listed for CLIENT's target, not for another's.
    with _owner(ksef_mock, CLIENT) as client:
        client.permissions.wait(client.permissions.grant_entity(
            subject_identifier=("Nip", OFFICE), permissions=["InvoiceRead"], can_delegate=["InvoiceRead"],
            description="biuro rachunkowe", subject_details="Biuro Rachunkowe XYZ",
        ))  # fmt: skip
    with _owner(ksef_mock, OFFICE) as office:
        office.permissions.wait(office.permissions.grant_indirect(
            subject_identifier=("Pesel", OTHER_PESEL), permissions=["InvoiceRead"], target_identifier=("Nip", CLIENT),
            description="obsługa klienta", subject_details=PERSON,
        ))  # fmt: skip
        for target, listed in ((CLIENT, True), (OTHER_CLIENT, False)):
            found = office.permissions.persons(
                authorized_identifier=("Pesel", OTHER_PESEL), target_identifier=("Nip", target)
            )
            assert [str(p.target_identifier.value) for p in found] == ([CLIENT] if listed else [])
    with KSeF(base_url=ksef_mock.base_url) as person:
        person.auth.login_with_certificate(_pesel_certificate(PESEL), context_nip=OFFICE)
        theirs = person.permissions.personal(
            context_identifier=("Nip", OFFICE), target_identifier=("Nip", OFFICE), permission_state="Active"
        )
        assert sorted(str(p.permission_scope) for p in theirs) == ["InvoiceRead", "InvoiceWrite"]
        owners = person.permissions.personal(
            context_identifier=("Nip", NIP), target_identifier=("Nip", NIP), permission_state="Active"
        )
        assert [str(p.permission_scope) for p in owners] == []


def test_a_target_filter_naming_another_client_or_all_partners_leaves_the_direct_grants_out(
    ksef_mock: KSeFMock,
) -> None:
    # targetIdentifier: "identyfikator podmiotu docelowego dla uprawnień nadanych pośrednio"; AllPartners:
    # "wyszukiwanie dotyczy uprawnień generalnych nadanych w sposób pośredni". A direct grant's target is
    # its own context (the office's here): it is listed for target = the office (the test above), not
    # for a client's target nor for AllPartners. The emulator let every direct grant through any target
    # (review s12-final, 4).
    with _owner(ksef_mock, CLIENT) as client:
        client.permissions.wait(client.permissions.grant_entity(
            subject_identifier=("Nip", OFFICE), permissions=["InvoiceRead"], can_delegate=["InvoiceRead"],
            description="biuro rachunkowe", subject_details="Biuro Rachunkowe XYZ",
        ))  # fmt: skip
    with _owner(ksef_mock, OFFICE) as office:
        office.permissions.wait(office.permissions.grant_person(
            subject_identifier=("Pesel", PESEL), permissions=["InvoiceWrite"], description="fakturzystka biura",
            subject_details=PERSON,
        ))  # fmt: skip
        office.permissions.wait(office.permissions.grant_indirect(
            subject_identifier=("Pesel", OTHER_PESEL), permissions=["InvoiceRead"], target_identifier=("Nip", CLIENT),
            description="obsługa klienta", subject_details=PERSON,
        ))  # fmt: skip

        def listed(target: tuple[str, str | None]) -> list[tuple[str, str]]:
            found = office.permissions.persons(target_identifier=target)
            return [(str(p.authorized_identifier.value), str(p.permission_scope)) for p in found]

        assert listed(("Nip", CLIENT)) == [(OTHER_PESEL, "InvoiceRead")]  # the indirect grant alone
        assert listed(("AllPartners", None)) == []  # no general indirect grant was made
        assert listed(("Nip", OFFICE)) == [(PESEL, "InvoiceWrite")]  # the direct grant, at its own context
        office.permissions.wait(office.permissions.grant_indirect(
            subject_identifier=("Pesel", OTHER_PESEL), permissions=["InvoiceRead"], description="wszyscy klienci",
            subject_details=PERSON,
        ))  # fmt: skip
        (general,) = office.permissions.persons(target_identifier=("AllPartners", None))
        assert str(general.description) == "wszyscy klienci"
    with KSeF(base_url=ksef_mock.base_url) as person:  # her own listing narrows the same way
        person.auth.login_with_certificate(_pesel_certificate(PESEL), context_nip=OFFICE)
        assert list(person.permissions.personal(target_identifier=("Nip", CLIENT))) == []
        assert list(person.permissions.personal(target_identifier=("AllPartners", None))) == []
        (mine,) = person.permissions.personal(target_identifier=("Nip", OFFICE))
        assert str(mine.permission_scope) == "InvoiceWrite"
    assert ksef_mock.server.app.violations == []


# --- contexts a grant creates ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["NipVatUe", "InternalId"])
def test_a_composite_or_internal_context_opens_only_once_a_grant_created_it(ksef_mock: KSeFMock, kind: str) -> None:
    # POST /permissions/eu-entities/administration/grants: "Wraz z utworzeniem administratora podmiotu
    # unijnego tworzony jest kontekst złożony"; POST /permissions/subunits/grants: "Wraz z utworzeniem
    # administratora jednostki podrzędnej tworzony jest identyfikator wewnętrzny". The emulator gave the
    # NIP's owner owner rights in any such context starting with its NIP, never created.
    seal = self_signed_certificate(nip=NIP, kind="seal")
    context = COMPOSITE if kind == "NipVatUe" else ("InternalId", make_internal_id(NIP, 9999))
    assert _login(ksef_mock, seal, context) == 415
    administrator = self_signed_certificate(kind="person")
    with _owner(ksef_mock, NIP) as owner:
        if kind == "NipVatUe":
            _grant_eu_administrator(owner, fingerprint(administrator))
            assert _login(ksef_mock, administrator, context, "certificateFingerprint") == EU_SCOPES
        else:
            owner.permissions.wait(owner.permissions.grant_subunit(
                subject_identifier=("Nip", administrator.nip), context_identifier=context,
                subunit_name="Oddział testowy", description="admin jednostki", subject_details=PERSON,
            ))  # fmt: skip
            assert _login(ksef_mock, administrator, context) == {"CredentialsManage"}
    granted = _login(ksef_mock, seal, context)
    if kind == "NipVatUe":
        # The composite context is the EU administrator's, not the NIP owner's: uprawnienia.md's owner works
        # "w kontekście podmiotu mającego taki sam identyfikator NIP", which a NipVatUe is not; the guide's
        # EU administrator "uzyskuje możliwość logowania się w kontekście złożonym". The emulator gave the
        # owner owner rights there once created (review s12-final, judgement calls).
        assert granted == 415
    else:  # a created InternalId lets its NIP's owner in (the emulator's choice: no source says either way)
        assert isinstance(granted, set) and "CredentialsManage" in granted and "VatUeManage" not in granted


def test_an_internal_context_stays_open_to_its_owner_while_a_grant_made_in_it_is_held(ksef_mock: KSeFMock) -> None:
    # An InternalId exists once a subunit grant created it; a grant made in it (by the subunit's
    # administrator) keeps it in existence after the administrator's own grant is revoked, so its NIP's
    # owner still logs in there. With neither, the owner is refused again.
    seal = self_signed_certificate(nip=NIP, kind="seal")
    administrator = self_signed_certificate(kind="seal")
    with _owner(ksef_mock, NIP) as owner:
        owner.permissions.wait(owner.permissions.grant_subunit(
            subject_identifier=("Nip", administrator.nip), context_identifier=BRANCH, subunit_name="Oddział testowy",
            description="admin jednostki", subject_details=PERSON,
        ))  # fmt: skip
        (appointed,) = owner.permissions.subunits()
    with KSeF(base_url=ksef_mock.base_url) as unit:
        unit.auth.login_with_certificate(administrator, context=BRANCH)
        unit.permissions.wait(unit.permissions.grant_person(
            subject_identifier=("Pesel", PESEL), permissions=["InvoiceWrite"], description="fakturzystka oddziału",
            subject_details=PERSON,
        ))  # fmt: skip
        (made_here,) = unit.permissions.persons(query_type="PermissionsGrantedInCurrentContext")
    with _owner(ksef_mock, NIP) as owner:
        owner.permissions.wait(owner.permissions.revoke(appointed.id))
    granted = _login(ksef_mock, seal, BRANCH)  # the grant made in the context is still held
    assert isinstance(granted, set) and "CredentialsManage" in granted
    with _owner(ksef_mock, NIP, context=Context(*BRANCH)) as branch:
        branch.permissions.wait(branch.permissions.revoke(made_here.id))
    assert _login(ksef_mock, seal, BRANCH) == 415
    assert ksef_mock.server.app.violations == []


# --- which right revokes which grant ---------------------------------------------------------------


def test_a_revoke_needs_the_right_that_makes_that_kind_of_grant(ksef: KSeF, ksef_mock: KSeFMock) -> None:
    # DELETE /permissions/common/grants/{id} takes any of CredentialsManage, VatUeManage, SubunitManage;
    # uprawnienia.md: "Operacja wymaga znajomości permissionId oraz posiadania odpowiedniego
    # uprawnienia". The emulator's reading: the right the grant's endpoint requires (persons/grants
    # CredentialsManage, subunits/grants SubunitManage). Without it the operation ends 420 "Użyte
    # poświadczenia nie mają uprawnień do wykonania tej operacji" (PermissionsOperationStatusResponse);
    # the emulator let any of the three revoke anything.
    api = ksef.permissions
    api.wait(api.grant_person(subject_identifier=("Pesel", PESEL), permissions=["InvoiceWrite"],
                              description="Fakturzystka", subject_details=PERSON))  # fmt: skip
    api.wait(api.grant_subunit(subject_identifier=("Pesel", PESEL), context_identifier=BRANCH,
                               subunit_name="Oddział Kraków", description="admin", subject_details=PERSON))  # fmt: skip
    person = next(p.id for p in api.persons() if str(p.permission_scope) == "InvoiceWrite")
    (subunit,) = api.subunits()
    with (
        _owner(ksef_mock, NIP, permissions=["SubunitManage"]) as units,
        _owner(ksef_mock, NIP, permissions=["CredentialsManage"]) as credentials,
    ):
        with pytest.raises(PermissionOperationFailedError) as refused:
            units.permissions.wait(units.permissions.revoke(person))
        assert refused.value.code == 420
        with pytest.raises(PermissionOperationFailedError) as refused:
            credentials.permissions.wait(credentials.permissions.revoke(subunit.id))
        assert refused.value.code == 420
        assert {p.id for p in api.persons()} >= {person}  # both still held
        assert units.permissions.wait(units.permissions.revoke(subunit.id)).status.code == 200
        assert credentials.permissions.wait(credentials.permissions.revoke(person)).status.code == 200
    assert list(api.subunits()) == []
    assert all(p.id != person for p in api.persons())
