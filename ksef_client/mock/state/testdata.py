"""``/testdata/*``: the TEST environment's own records (subjects, persons, attachment consent,
blocked contexts, limit overrides) and the Peppol providers the emulator knows."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from ksef_client._generated.operations import RateLimits
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.state.core import Context, Core

DEFAULT_CONTEXT_LIMITS: dict[str, dict[str, int]] = {
    "onlineSession": {"maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 3, "maxInvoices": 10_000},
    "batchSession": {"maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 3, "maxInvoices": 10_000},
    "collectiveIdentifier": {"maxInvoices": 500},
}
SESSION_KIND_LIMITS = {"Online": "onlineSession", "Batch": "batchSession"}
# The role a test subject's type gives it, and the one it gives its subunits (spec: GET
# /permissions/query/entities/roles, POST /permissions/query/subordinate-entities/roles).
SUBJECT_ROLES = {
    "EnforcementAuthority": "EnforcementAuthority",
    "VatGroup": "VatGroupUnit",
    "JST": "LocalGovernmentUnit",
}
SUBUNIT_ROLES = {"VatGroup": "VatGroupSubUnit", "JST": "LocalGovernmentSubUnit"}
ALREADY_EXISTS = "Podmiot lub uprawnienie już istnieje."
# KSeF TEST's certificate limits of a subject (GET /limits/subject), until /testdata overrides them.
DEFAULT_SUBJECT_LIMITS: dict[str, dict[str, int]] = {
    "enrollment": {"maxEnrollments": 300},
    "certificate": {"maxCertificates": 100},
}


@dataclass(frozen=True)
class TestSubject:
    """A subject registered by ``POST /testdata/subject``."""

    nip: str
    subject_type: str
    description: str
    subunits: tuple[str, ...] = ()
    subunit_descriptions: tuple[str, ...] = ()  # one per subunit, in order
    created: dt.datetime | None = None  # ``createdDate`` or when it was registered


@dataclass(frozen=True)
class TestPerson:
    """A person registered by ``POST /testdata/person``."""

    nip: str
    pesel: str
    description: str
    is_bailiff: bool = False
    is_deceased: bool = False
    created: dt.datetime | None = None  # ``createdDate`` or when it was registered


@dataclass(frozen=True)
class Role:
    """A role of a subject (``EntityRole``, ``SubordinateEntityRole``): ``parent`` names the
    superior subject of a subunit."""

    nip: str
    role: str
    description: str
    start: dt.datetime
    parent: str | None = None


@dataclass
class TestDataState:
    """Everything ``/testdata/*`` set up."""

    subjects: dict[str, TestSubject] = field(default_factory=dict)
    persons: dict[str, TestPerson] = field(default_factory=dict)
    attachments: set[str] = field(default_factory=set)
    blocked: set[Context] = field(default_factory=set)
    session_limits: dict[Context, dict[str, dict[str, int]]] = field(default_factory=dict)
    # Per authenticated subject, (type, value): certificates are the subject's, not a context's.
    certificate_limits: dict[tuple[str, str], dict[str, dict[str, int]]] = field(default_factory=dict)
    # Per context: limit group -> limits set by POST /testdata/rate-limits (or .../production).
    rate_limits: dict[Context, dict[str, RateLimits]] = field(default_factory=dict)
    peppol_providers: list[dict[str, str]] = field(default_factory=list)


class TestData:
    """The TEST environment's helpers."""

    __test__ = False  # not a pytest class

    def __init__(self, core: Core) -> None:
        self.core = core
        self.state = TestDataState()

    def add_subject(self, subject: TestSubject) -> None:
        """Register a subject (a company, VAT group, local government unit); 30001 when it exists.

        The spec's ``createdDate``: "W przypadku wielokrotnego tworzenia danych testowych z tym
        samym identyfikatorem nie można podawać daty wcześniejszej ani takiej samej jak
        poprzednia", so a later ``createdDate`` creates it anew, anything else is a duplicate.
        """
        with self.core.lock:
            _refuse_duplicate(self.state.subjects.get(subject.nip), subject.created)
            self.state.subjects[subject.nip] = _dated(subject, self.core.clock())

    def remove_subject(self, nip: str) -> None:
        """Forget a subject."""
        self.state.subjects.pop(nip, None)

    def add_person(self, person: TestPerson) -> None:
        """Register a person under both identifiers; 30001 when either is taken (see ``add_subject``)."""
        with self.core.lock:
            for known in (self.state.persons.get(person.nip), self.state.persons.get(person.pesel)):
                _refuse_duplicate(known, person.created)
            for known in (self.state.persons.get(person.nip), self.state.persons.get(person.pesel)):
                if known is not None:  # created anew: its other identifier goes too
                    self.remove_person(known.nip)
            dated = _dated(person, self.core.clock())
            self.state.persons[person.nip] = self.state.persons[person.pesel] = dated

    def remove_person(self, nip: str) -> None:
        """Forget a person (under both identifiers)."""
        person = self.state.persons.pop(nip, None)
        if person is not None:
            self.state.persons.pop(person.pesel, None)

    def person(self, identifier: str) -> TestPerson | None:
        """A registered person by NIP or PESEL."""
        return self.state.persons.get(identifier)

    def identities(self, who: tuple[str, str]) -> set[tuple[str, str]]:
        """``who`` (an identifier: its type and value), and the other identifier of a person
        registered under it: KSeF's NIP-PESEL link ("z uwzględnieniem powiązania NIP-PESEL"), which
        makes one subject of the person's NIP and PESEL."""
        person = self.person(who[1])
        linked = {("Nip", person.nip), ("Pesel", person.pesel)} if person is not None else set()
        return linked if who in linked else {who}

    def roles_of(self, nip: str | None) -> list[Role]:
        """The roles of the subject ``nip`` the test data gives it: its subject type's, a subunit's
        (with its superior), ``CourtBailiff`` for a person registered as a bailiff."""
        if nip is None:
            return []
        roles = []
        subject = self.state.subjects.get(nip)
        if subject is not None and subject.subject_type in SUBJECT_ROLES:
            roles.append(Role(nip, SUBJECT_ROLES[subject.subject_type], subject.description, self._start(subject)))
        for superior in list(self.state.subjects.values()):
            roles += [r for r in self.subordinates_of(superior.nip) if r.nip == nip]
        person = self.state.persons.get(nip)
        if person is not None and person.nip == nip and person.is_bailiff:
            roles.append(Role(nip, "CourtBailiff", person.description, self._start(person)))
        return roles

    def subordinates_of(self, nip: str | None) -> list[Role]:
        """The subunits of a VAT group or a local government unit ``nip``, with their roles."""
        subject = self.state.subjects.get(nip or "")
        if subject is None or subject.subject_type not in SUBUNIT_ROLES:
            return []
        descriptions = subject.subunit_descriptions + (subject.description,) * len(subject.subunits)
        return [
            Role(unit, SUBUNIT_ROLES[subject.subject_type], text, self._start(subject), parent=subject.nip)
            for unit, text in zip(subject.subunits, descriptions, strict=False)
        ]

    def _start(self, record: TestSubject | TestPerson) -> dt.datetime:
        # Records of an older state file have no date.
        return record.created or self.core.clock()

    def allow_attachments(self, nip: str, allowed: bool = True) -> None:
        """Attachment consent (e-Urząd Skarbowy's, emulated)."""
        (self.state.attachments.add if allowed else self.state.attachments.discard)(nip)

    def attachments_allowed(self, nip: str | None) -> bool:
        """Whether invoices of ``nip`` may carry attachments."""
        return nip is not None and nip in self.state.attachments

    def block(self, context: Context, blocked: bool = True) -> None:
        """Block (or unblock) logins to a context."""
        (self.state.blocked.add if blocked else self.state.blocked.discard)(context)

    def is_blocked(self, context: Context) -> bool:
        """Whether logins to ``context`` fail with 480."""
        return context in self.state.blocked

    def register_peppol_provider(self, peppol_id: str, name: str) -> None:
        """Register a Peppol service provider at its first login (``GET /peppol/query`` lists it);
        a known one is left as it is. api-changelog.md (2.x): "przy pierwszym uwierzytelnieniu
        dostawcy usług Peppol (z użyciem dedykowanego certyfikatu) następuje jego automatyczna
        rejestracja w systemie"; ``PeppolProvider``: ``id``, ``name`` (maxLength 256) and
        ``dateCreated``, "Data rejestracji dostawcy usług Peppol w systemie"."""
        with self.core.lock:
            if any(provider["id"] == peppol_id for provider in self.state.peppol_providers):
                return
            self.state.peppol_providers.append(
                {"id": peppol_id, "name": name[:256], "dateCreated": self.core.clock().isoformat()}
            )

    def peppol_providers(self) -> list[dict[str, str]]:
        """The registered Peppol providers in the spec's order for ``GET /peppol/query``:
        "Sortowanie: dateCreated (Desc), id (Asc)"."""
        by_id = sorted(self.state.peppol_providers, key=lambda provider: provider["id"])
        return sorted(by_id, key=lambda provider: dt.datetime.fromisoformat(provider["dateCreated"]), reverse=True)

    def set_session_limits(self, context: Context, limits: dict[str, Any] | None) -> None:
        """Override a context's limits (a ``SetSessionLimitsRequest``), or restore the defaults."""
        if limits is None:
            self.state.session_limits.pop(context, None)
            return
        merged = copy.deepcopy(DEFAULT_CONTEXT_LIMITS)
        for group, values in limits.items():
            if group in merged and isinstance(values, dict):
                merged[group].update({k: int(v) for k, v in values.items() if k in merged[group]})
        self.state.session_limits[context] = merged

    def set_subject_limits(self, subject: tuple[str, str], limits: dict[str, Any] | None) -> None:
        """Override the certificate limits of the authenticated ``subject``, ``(type, value)`` ("dla
        bieżącego podmiotu"; a ``SetSubjectLimitsRequest``: what it gives replaces the default, what
        it leaves out or sends as null keeps it), or, ``None``, restore the defaults."""
        if limits is None:
            self.state.certificate_limits.pop(subject, None)
            return
        merged = copy.deepcopy(self.subject_limits(subject))
        for group, key in (("enrollment", "maxEnrollments"), ("certificate", "maxCertificates")):
            value = (limits.get(group) or {}).get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                merged[group][key] = max(0, value)
        self.state.certificate_limits[subject] = merged

    def subject_limits(self, subject: tuple[str, str]) -> dict[str, dict[str, int]]:
        """``EffectiveSubjectLimits`` of the authenticated ``subject``: KSeF TEST's defaults or the override."""
        return copy.deepcopy(self.state.certificate_limits.get(subject, DEFAULT_SUBJECT_LIMITS))

    def set_rate_limits(self, context: Context, limits: dict[str, RateLimits] | None) -> None:
        """Override the API rate limits of ``context`` per limit group (an ``ApiRateLimitsOverride``
        already read into ``RateLimits``), or, ``None``, restore the defaults."""
        if limits is None:
            self.state.rate_limits.pop(context, None)
        else:
            self.state.rate_limits[context] = dict(limits)

    def rate_limits_of(self, context: Context | None) -> dict[str, RateLimits]:
        """The limit groups ``context`` has overridden (none: empty)."""
        return self.state.rate_limits.get(context, {}) if context is not None else {}

    def context_limits(self, context: Context) -> dict[str, dict[str, int]]:
        """``EffectiveContextLimits`` of ``context``: KSeF TEST's defaults or the override."""
        return copy.deepcopy(self.state.session_limits.get(context, DEFAULT_CONTEXT_LIMITS))


def _refuse_duplicate(known: TestSubject | TestPerson | None, created: dt.datetime | None) -> None:
    """30001 for an identifier already registered, unless ``created`` is later than its date."""
    if known is None:
        return
    if created is None or known.created is None or created <= known.created:
        raise MockAPIError(30001, ALREADY_EXISTS, [f"Dane testowe {known.nip} już istnieją."])


def _dated(record: Any, now: dt.datetime) -> Any:
    """``record`` with its creation date (``createdDate``, or now)."""
    return record if record.created is not None else replace(record, created=now)
