"""Sessions: open, send, close (online and batch, with KSeF's encryption), status, listing, UPO.

The AES key of a session arrives wrapped with the emulator's ``SymmetricKeyEncryption`` key;
invoices and batch parts are decrypted and checked where KSeF checks them (sizes, hashes, the
document rules and the form's XSD, the issue date, the right to issue for the seller,
attachments, duplicates), and end up as ``Invoice`` records with KSeF numbers or a rejection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import io
import secrets
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, NamedTuple
from zoneinfo import ZoneInfo

from ksef_client.crypto import SYMMETRIC_KEY_ENCRYPTION, SymmetricKey, rsa_decrypt, sha256_b64
from ksef_client.identifiers import is_valid_nip, make_ksef_number
from ksef_client.mock.exceptions import MockAPIError, NotFound
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.state.core import VALIDATION, Access, Context, Core, Page, Status
from ksef_client.mock.state.invoice_checks import FileCheck, SizeLimits, check_file
from ksef_client.mock.state.invoices import Invoice, InvoiceFields, Invoices
from ksef_client.mock.state.permissions import Permissions
from ksef_client.mock.state.storage import LazyBlob, Storage
from ksef_client.mock.state.testdata import SESSION_KIND_LIMITS, TestData
from ksef_client.mock.upo import PageInfo, UpoDocument, UpoHeader, build_upo
from ksef_client.mock.workers import BatchWorkers
from ksef_client.schemas import FORMS

# SessionStatusResponse.status (the spec): the texts of each code, per session kind.
SESSION_TEXT: dict[str, dict[int, str]] = {
    "Online": {
        100: "Sesja interaktywna otwarta",
        170: "Sesja interaktywna zamknięta",
        200: "Sesja interaktywna przetworzona pomyślnie",
        415: "Błąd odszyfrowania dostarczonego klucza",
        440: "Sesja anulowana",
        445: "Błąd weryfikacji, brak poprawnych faktur",
    },
    "Batch": {
        100: "Sesja wsadowa rozpoczęta",
        150: "Trwa przetwarzanie",
        200: "Sesja wsadowa przetworzona pomyślnie",
        405: "Błąd weryfikacji poprawności dostarczonych elementów paczki",
        415: "Błąd odszyfrowania dostarczonego klucza",
        420: "Przekroczony limit faktur w sesji",
        430: "Błąd dekompresji pierwotnego archiwum",
        435: "Błąd odszyfrowania zaszyfrowanych części archiwum",
        440: "Sesja anulowana",
        445: "Błąd weryfikacji, brak poprawnych faktur",
        500: "Nieznany błąd (500)",  # the spec's "Nieznany błąd ({statusCode})"
    },
}
NO_INVOICES_SENT = "Nie przesłano faktur"
INVOICE_TEXT = {
    100: "Faktura przyjęta do dalszego przetwarzania",
    150: "Trwa przetwarzanie",
    200: "Sukces",
    410: "Nieprawidłowy zakres uprawnień",
    415: "Brak możliwości wysyłania faktury z załącznikiem",
    430: "Błąd weryfikacji pliku faktury",
    435: "Błąd odszyfrowania pliku",
    440: "Duplikat faktury",
    450: "Błąd weryfikacji semantyki dokumentu faktury",
}
# GET /sessions?statuses=...: the API's coarse states over the numeric codes.
STATUS_GROUPS = {"InProgress": {100, 150, 170}, "Succeeded": {200}, "Cancelled": {440}}
# Authorization scopes that let another context send an invoice in a seller's name.
ISSUE_SCOPES = {"FA_RR": ("RRInvoicing",), "PEF": ("PefInvoicing",)}
DEFAULT_ISSUE_SCOPES = ("SelfInvoicing", "TaxRepresentative")
MAX_PARTS = 50
MAX_PART_BYTES = 100_000_000
MAX_PACKAGE_BYTES = 5_000_000_000
# SessionInvoiceStatusResponse.invoiceFileName: maxLength 128 (the spec).
MAX_FILE_NAME = 128
# "Łączny czas na wysyłkę każdego parta = liczba partów x 20 minut" (sesja-wsadowa.md): the time
# each part's upload URL takes a PUT ("403 - brak uprawnień do zapisu (np. upłynął czas na zapis)").
PART_WINDOW = dt.timedelta(minutes=20)
# "Czas życia sesji interaktywnej wynosi 12 godzin od momentu jej utworzenia" (sesja-interaktywna.md);
# a batch session left open is cancelled after the same 12 hours, whether its parts were sent or not
# ("Timeout 12h (brak wysłanych części paczki)", "Timeout 12h (wszystkie zadeklarowane części paczki
# wysłane)" -> 440, the Ministry's faktury/sesje/sesja-wsadowa-diagram-stanow.png).
SESSION_TTL = dt.timedelta(hours=12)
SENDING_TIME_EXCEEDED = "Przekroczono czas wysyłki"
# "X-KSeF-Feature: subject-identifier-validation - Włącza walidację numerów NIP oraz identyfikatorów
# wewnętrznych podmiotów wskazanych na fakturze" (the spec, POST /sessions/online and /sessions/batch).
IDENTIFIER_VALIDATION = "subject-identifier-validation"
_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)
_INVOICE_UPO, _SESSION_UPO = "invoice-upo", "session-upo"  # the storage's lazy documents


@dataclass(frozen=True)
class Encryption:
    """``EncryptionInfo`` of a session: the wrapped AES key and IV."""

    encrypted_symmetric_key: str
    initialization_vector: str
    public_key_id: str | None = None


@dataclass(frozen=True)
class SentInvoice:
    """The body of ``POST /sessions/online/{ref}/invoices``."""

    invoice_hash: str
    invoice_size: int
    encrypted_invoice_hash: str
    encrypted_invoice_size: int
    encrypted_invoice_content: str
    offline_mode: bool = False
    hash_of_corrected_invoice: str | None = None


@dataclass(frozen=True)
class DeclaredPart:
    """One part of a batch package as ``POST /sessions/batch`` declares it."""

    ordinal_number: int
    size: int
    hash: str


@dataclass(frozen=True)
class BatchDeclaration:
    """``batchFile`` of ``POST /sessions/batch``."""

    file_size: int
    file_hash: str
    parts: tuple[DeclaredPart, ...]
    compression: str = "Zip"


@dataclass(frozen=True)
class SessionQuery:
    """The filters of ``GET /sessions``."""

    session_type: str
    statuses: tuple[str, ...] = ()
    reference_number: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    closed_from: dt.datetime | None = None
    closed_to: dt.datetime | None = None
    modified_from: dt.datetime | None = None
    modified_to: dt.datetime | None = None


@dataclass
class BatchPart:
    """A declared part of a batch package and, once uploaded, its bytes."""

    ordinal_number: int
    size: int
    hash: str
    upload_name: str
    data: bytes | None = field(default=None, repr=False)


@dataclass
class BatchPackage:
    """What ``POST /sessions/batch`` declared."""

    file_size: int
    file_hash: str
    parts: list[BatchPart]
    upload_deadline: dt.datetime
    compression: str = "Zip"


def _rejected_offline(invoice: Invoice) -> bool:
    """Whether ``invoice`` was sent as offline and KSeF rejected it (processed, not numbered)."""
    return invoice.offline and invoice.status.code not in (100, 200)


@dataclass
class Session:
    """An online or batch session of one context."""

    reference_number: str
    kind: str
    context: Context
    subject: tuple[str, str]
    auth_reference_number: str
    form_code: str
    created: dt.datetime
    valid_until: dt.datetime
    updated: dt.datetime
    status: Status
    invoices: list[Invoice] = field(default_factory=list)
    reads_until_processed: int = 0
    # The session UPO's pages: reference number and, once someone downloaded it, the document.
    upo_pages: list[tuple[str, bytes | None]] = field(default_factory=list)
    upo_page_size: int = 10_000
    key: SymmetricKey | None = field(default=None, repr=False)
    batch: BatchPackage | None = None
    offline: bool = False
    closed: dt.datetime | None = None
    # X-KSeF-Feature: subject-identifier-validation at the opening: NIP checks on any profile.
    validate_identifiers: bool = False

    @property
    def failed(self) -> list[Invoice]:
        """Invoices that were rejected (as far as status reads show: processed ones)."""
        return [i for i in self.invoices if i.settled and i.status.code >= 400]

    @property
    def succeeded(self) -> int:
        """How many invoices were accepted (as far as status reads show)."""
        return sum(1 for i in self.invoices if i.settled and i.accepted)

    @property
    def listing_key(self) -> str:
        """Position in ``GET /sessions`` (newest first), for continuation tokens."""
        return f"{self.created.isoformat()}|{self.reference_number}"


@dataclass
class SessionsState:
    """Every session by reference number; ``version`` changes with any session or status change."""

    sessions: dict[str, Session] = field(default_factory=dict)
    version: int = 0


class KeyUnwrapError(Exception):
    """The session key could not be unwrapped (session status 415)."""


def check_public_key_id(encryption: Encryption) -> None:
    """``MockAPIError`` 21470 for a ``publicKeyId`` naming no key of the emulator's."""
    key_id = encryption.public_key_id
    if key_id and emulator_keys().by_public_key_id(key_id, SYMMETRIC_KEY_ENCRYPTION) is None:
        raise MockAPIError(
            21470, "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.",
            [f"Klucz o identyfikatorze {key_id} nie jest wspierany."],
        )  # fmt: skip


def unwrap_key(encryption: Encryption) -> SymmetricKey:
    """Unwrap the session key; ``MockAPIError`` 21470 for an unknown public key id."""
    check_public_key_id(encryption)
    try:
        wrapped = base64.b64decode(encryption.encrypted_symmetric_key, validate=True)
        iv = base64.b64decode(encryption.initialization_vector, validate=True)
        key = rsa_decrypt(emulator_keys().symmetric_key_encryption.private_key, wrapped)
        return SymmetricKey(key, iv)
    except (TypeError, ValueError, binascii.Error) as error:
        raise KeyUnwrapError(str(error)) from error


# OpenBatchSessionRequest.formCode, "Obsługiwane schematy" (the spec): FA (2), FA (3) and FA_RR (1);
# the PEF forms are listed for online sessions only.
BATCH_FORMS = frozenset({"FA (2)", "FA (3)", "FA_RR (1)"})


def system_code_of(system_code: str, schema_version: str, value: str) -> str:
    """A session's ``formCode`` -> its system code; 21405 when KSeF does not know the form."""
    for code in FORMS.values():
        if (code.system_code, code.schema_version, code.value) == (system_code, schema_version, value):
            return code.system_code
    raise MockAPIError(21405, VALIDATION, [f"formCode: nieobsługiwany formularz {system_code} {schema_version}."])


# The spec's 21173 and 21178: the description is the code's, the sentence naming what is missing
# goes into details.
UPO_NOT_FOUND = "Nie znaleziono UPO dla podanych kryteriów."


def session_not_found(reference_number: str, missing: str = "znaleziona") -> NotFound:
    """21173 "Brak sesji o wskazanym numerze referencyjnym." with the spec's detail."""
    detail = f"Sesja o numerze referencyjnym {reference_number} nie została {missing}."
    return NotFound(21173, "Brak sesji o wskazanym numerze referencyjnym.", [detail])


def session_status(kind: str, code: int, details: list[str] | None = None) -> Status:
    """A session status with the spec's description for its kind (``Online``/``Batch``) and code."""
    return Status(code, SESSION_TEXT[kind][code], details or [])


def _b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MockAPIError(21405, VALIDATION, [f"{name}: niepoprawne Base64."]) from error


class Sessions:
    """The sessions of one emulator."""

    def __init__(
        self, core: Core, storage: Storage, invoices: Invoices, permissions: Permissions, testdata: TestData,
        workers: BatchWorkers | None = None,
    ) -> None:  # fmt: skip
        self.core = core
        self.storage = storage
        self.invoices = invoices
        self.permissions = permissions
        self.testdata = testdata
        # Where the invoices of a batch package are checked (not state: processes are not saved).
        self.workers = workers or BatchWorkers(1)
        self.state = SessionsState()
        self._listing: tuple[tuple[object, ...], list[Session]] | None = None
        # Batch sessions being processed after their close (not state: a thread is not saved).
        self._processing: dict[str, threading.Thread] = {}
        # Held by a technical correction from its check to its numbering (not state).
        self._corrections = threading.Lock()
        # The state and the earliest moment one of its open sessions runs out of time (not state:
        # a restored or reset state is scanned again).
        self._next_expiry: tuple[SessionsState, dt.datetime] | None = None
        storage.register(_INVOICE_UPO, self._resolve_invoice_upo)
        storage.register(_SESSION_UPO, self._resolve_session_upo)

    # --- opening -------------------------------------------------------------------------------

    def open(self, access: Access, kind: str = "Online", form_code: str = "FA (3)") -> Session:
        """Open an online or batch session (status 100), remembering who opened it."""
        now = self.core.clock()
        session = Session(
            reference_number=self.core.new_reference_number("SO" if kind == "Online" else "SB"), kind=kind,
            context=access.context, subject=access.subject, auth_reference_number=access.auth_reference_number,
            form_code=form_code, created=now, valid_until=now + SESSION_TTL, updated=now,
            status=session_status(kind, 100),
        )  # fmt: skip
        with self.core.lock:
            self.state.sessions[session.reference_number] = session
            self.state.version += 1
            self._expires_at(session.valid_until)
        return session

    def set_status(self, session: Session, status: Status, at: dt.datetime | None = None) -> None:
        """Change a session's status (listings see the change), now or ``at`` a past moment."""
        with self.core.lock:
            session.status = status
            session.updated = at or self.core.clock()
            self.state.version += 1

    # --- running out of time -------------------------------------------------------------------

    @staticmethod
    def deadline(session: Session) -> dt.datetime | None:
        """When an open session runs out of time: at ``validUntil`` ("Po jego upływie sesja zostanie
        automatycznie zamknięta", the spec), 12 hours after its opening; a batch one too, not when
        the upload window of parts x 20 minutes ends (that window holds the part uploads only: the
        batch state diagram cancels an open session at its 12 h timeout); ``None``: it does not
        (any more)."""
        if session.status.code != 100:
            return None
        return session.valid_until

    def _expire(self, session: Session, now: dt.datetime) -> dt.datetime | None:
        """Close (online) or cancel (batch, 440 "Przekroczono czas wysyłki") a session whose time is
        over at ``now`` (the lock held); the deadline still ahead otherwise."""
        deadline = self.deadline(session)
        if deadline is None or now <= deadline:
            return deadline
        if session.kind == "Online":
            self.close(session, at=deadline)
        else:
            self.set_status(session, session_status("Batch", 440, [SENDING_TIME_EXCEEDED]), at=deadline)
        return None

    def _expire_due(self) -> None:
        """Expire every open session whose time is over (before a listing filters on statuses)."""
        now = self.core.clock()
        with self.core.lock:
            known = self._next_expiry
            if known is not None and known[0] is self.state and now <= known[1]:
                return
            ahead = [self._expire(session, now) for session in list(self.state.sessions.values())]
            self._next_expiry = (self.state, min((d for d in ahead if d is not None), default=_NEVER))

    def _expires_at(self, deadline: dt.datetime) -> None:
        with self.core.lock:
            known = self._next_expiry
            if known is not None and known[0] is self.state and deadline < known[1]:
                self._next_expiry = (self.state, deadline)

    def open_online(
        self, access: Access, form_code: str, encryption: Encryption, features: frozenset[str] = frozenset()
    ) -> Session:
        """``POST /sessions/online``: a session whose key could not be unwrapped ends at 415;
        ``features``: the ``X-KSeF-Feature`` values sent. An unknown ``publicKeyId`` is refused
        (21470) before the session is opened: a refused opening leaves no session behind."""
        check_public_key_id(encryption)
        session = self.open(access, "Online", form_code)
        session.validate_identifiers = IDENTIFIER_VALIDATION in features
        try:
            session.key = unwrap_key(encryption)
        except KeyUnwrapError as error:
            self.set_status(session, session_status(session.kind, 415, [str(error)]))
        return session

    def open_batch(
        self, access: Access, form_code: str, declaration: BatchDeclaration, encryption: Encryption, offline: bool,
        features: frozenset[str] = frozenset(),
    ) -> Session:  # fmt: skip
        """``POST /sessions/batch``: check the declared package, hand out one upload slot per part
        (``features``: the ``X-KSeF-Feature`` values sent). A form the spec does not list for batch
        sessions (``BATCH_FORMS``: no PEF) is 21405, as any input the validator refuses."""
        if form_code not in BATCH_FORMS:
            detail = f"formCode: formularz {form_code} nie jest obsługiwany w sesji wsadowej."
            raise MockAPIError(21405, VALIDATION, [detail])
        if len(declaration.parts) > MAX_PARTS:
            raise MockAPIError(
                21161, "Przekroczono dozwoloną liczbę części pakietu.", [f"Dozwolone najwyżej {MAX_PARTS} części."]
            )
        if declaration.file_size > MAX_PACKAGE_BYTES:
            raise MockAPIError(21157, "Nieprawidłowy rozmiar części pakietu.", ["Pakiet większy niż 5 GB."])
        for part in declaration.parts:
            if not 0 < part.size <= MAX_PART_BYTES + 16:
                raise MockAPIError(
                    21157, "Nieprawidłowy rozmiar części pakietu.", [f"Część {part.ordinal_number}: {part.size} B."]
                )
        numbers = sorted(p.ordinal_number for p in declaration.parts)
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            raise MockAPIError(21405, VALIDATION, ["fileParts.ordinalNumber: wymagane kolejne numery od 1."])
        check_public_key_id(encryption)  # before the opening: a refused one leaves no session behind
        session = self.open(access, "Batch", form_code)
        session.offline = offline
        session.validate_identifiers = IDENTIFIER_VALIDATION in features
        self.workers.declared(form_code, declaration.file_size)
        parts = [
            BatchPart(p.ordinal_number, p.size, p.hash, self.storage.new_upload_slot(session.reference_number,
                                                                                     p.ordinal_number))
            for p in sorted(declaration.parts, key=lambda p: p.ordinal_number)
        ]  # fmt: skip
        session.batch = BatchPackage(
            declaration.file_size, declaration.file_hash, parts, self.core.clock() + PART_WINDOW * len(parts),
            declaration.compression,
        )  # fmt: skip
        # A key that cannot be unwrapped leaves the session open (100, no key): the batch state
        # diagram reaches 415 from 150, "Odszyfrowanie klucza AES nie powiodło się" while the closed
        # package is processed (``_decrypted_package``), not at the opening as an online session does.
        with contextlib.suppress(KeyUnwrapError):
            session.key = unwrap_key(encryption)
        return session

    # --- sending -------------------------------------------------------------------------------

    def invoice_limit(self, session: Session) -> int:
        """How many invoices the session's context may send in one session of its kind."""
        return self.testdata.context_limits(session.context)[SESSION_KIND_LIMITS[session.kind]]["maxInvoices"]

    def size_limits(self, session: Session) -> SizeLimits:
        """The invoice sizes the session's context may send in a session of its kind
        (``GET /limits/context``: KSeF's defaults or the ``/testdata/limits/context/session`` override)."""
        return SizeLimits.of(self.testdata.context_limits(session.context)[SESSION_KIND_LIMITS[session.kind]])

    def send_online(self, access: Access, reference_number: str, sent: SentInvoice) -> Invoice:
        """``POST /sessions/online/{ref}/invoices``: check the ciphertext, decrypt, then accept or reject."""
        session = self.get(access, reference_number, read=False, missing="odnaleziona")
        if sent.hash_of_corrected_invoice is not None and not sent.offline_mode:
            # "Korekta przesyłana jest [...] z dodatkowym ustawieniem: offlineMode: true,
            # hashOfCorrectedInvoice" (offline/korekta-techniczna.md): only offline invoices are corrected.
            detail = "hashOfCorrectedInvoice: korekta techniczna wymaga offlineMode: true."
            raise MockAPIError(21405, VALIDATION, [detail])
        if session.kind != "Online" or session.status.code != 100 or session.key is None:
            raise MockAPIError(
                21180, "Status sesji nie pozwala na wykonanie operacji.",
                [f"Status sesji {session.status.code} uniemożliwia wysyłkę faktur."],
            )  # fmt: skip
        most = self.invoice_limit(session)
        if len(session.invoices) >= most:
            raise MockAPIError(
                21155, "Przekroczono dozwoloną liczbę faktur w sesji.",
                [f"Sesja o numerze referencyjnym {reference_number} osiągnęła dozwolony limit liczby faktur {most}."],
            )  # fmt: skip
        content = _b64(sent.encrypted_invoice_content, "encryptedInvoiceContent")
        if len(content) != sent.encrypted_invoice_size:
            raise MockAPIError(
                21402, "Nieprawidłowy rozmiar pliku.", ["Długość treści nie zgadza się z rozmiarem pliku."]
            )
        if sha256_b64(content) != sent.encrypted_invoice_hash:
            raise MockAPIError(21403, "Nieprawidłowy skrót pliku.", ["Skrót treści nie zgadza się ze skrótem pliku."])
        try:
            xml = session.key.decrypt(content)
        except ValueError:
            return self._rejected(session, content, 435, [], sent.offline_mode)
        if len(xml) != sent.invoice_size or sha256_b64(xml) != sent.invoice_hash:
            detail = "Skrót lub rozmiar faktury nie zgadza się z odszyfrowaną treścią."
            return self._rejected(session, xml, 430, [detail], sent.offline_mode)
        corrected = sent.hash_of_corrected_invoice
        if corrected is None:
            return self.add_invoice(session, xml, offline=sent.offline_mode)
        # A technical correction is checked and numbered under one lock: of two corrections of the
        # same invoice sent at once, the second sees the first accepted (21166).
        with self._corrections:
            self._check_correction(session.context, corrected, sent.invoice_hash)
            return self.add_invoice(session, xml, offline=True, corrects=corrected)

    def _check_correction(self, context: Context, corrected_hash: str, own_hash: str) -> None:
        """KSeF's refusals of a technical correction (``offline/korekta-techniczna.md``). It names
        "skrót SHA-256 pierwotnej, odrzuconej faktury offline": an offline invoice KSeF *rejected*,
        which the seller sends again ("Sprzedawca wysyła poprawioną fakturę jako korektę
        techniczną"), so one sent in the correction's own context: another context's rejected
        invoice is not its to correct (nor to block: 21166 counts the context's own corrections).
        And only once: "Niedozwolone jest korygowanie technicznie faktury offline, dla której
        została już przyjęta inna prawidłowa korekta"."""
        if corrected_hash == own_hash:  # the easy slip: sha256_b64(fixed) for sha256_b64(rejected)
            detail = "hashOfCorrectedInvoice: skrót przesyłanej faktury, a nie pierwotnej, odrzuconej faktury offline."
            raise MockAPIError(21405, VALIDATION, [detail])
        with self.core.lock:
            sent = list(self._sent_in(context))
        named = [i for i in sent if i.invoice_hash == corrected_hash]
        if any(i.accepted for i in named):
            raise MockAPIError(
                21167, "Status faktury nie pozwala na korektę techniczną.",
                ["Nie można wysłać korekty technicznej do prawidłowo przetworzonej faktury."],
            )  # fmt: skip
        if any(i.accepted and i.hash_of_corrected_invoice == corrected_hash for i in sent):
            raise MockAPIError(
                21166, "Korekta techniczna niedostępna.",
                ["Faktura posiada już przetworzoną prawidłowo korektę techniczną."],
            )  # fmt: skip
        # KSeF's answer to a hash that names no rejected offline invoice of the context is not
        # documented (the spec's table has no such row). Best fits, by the spec's texts: a hash
        # naming nothing the context sent (unknown, or another context's invoice) is an invalid
        # input value, 21405 "{treść błędu z walidatora}"; an invoice the context sent whose state
        # rules a correction out (still processing, or rejected when sent in online mode) is 21167,
        # "Status faktury nie pozwala na korektę techniczną".
        if not named:
            detail = f"hashOfCorrectedInvoice: brak odrzuconej faktury offline o skrócie {corrected_hash} w kontekście."
            raise MockAPIError(21405, VALIDATION, [detail])
        if not any(_rejected_offline(i) for i in named):
            detail = f"Faktura o skrócie {corrected_hash} nie jest odrzuconą fakturą offline."
            raise MockAPIError(21167, "Status faktury nie pozwala na korektę techniczną.", [detail])

    def _sent_in(self, context: Context) -> Iterator[Invoice]:
        """Every invoice sent in a session of ``context``, accepted or not (under the core lock)."""
        return (invoice for s in self.state.sessions.values() if s.context == context for invoice in s.invoices)

    def _rejected(self, session: Session, data: bytes, code: int, details: list[str], offline: bool) -> Invoice:
        invoice = self._new_invoice(session, data, offline=offline, file_name=None)
        invoice.status = Status(code, INVOICE_TEXT[code], details)
        return invoice

    def _new_invoice(self, session: Session, data: bytes, *, offline: bool, file_name: str | None) -> Invoice:
        now = self.core.clock()
        # invoicingDate: the moment of sending in an online session, the session's opening in a batch
        # (the Ministry's "automatyczne określanie trybu offline").
        received = session.created if session.kind == "Batch" else now
        invoice = Invoice(
            ordinal_number=len(session.invoices) + 1, reference_number=self.core.new_reference_number("EE"),
            invoice_hash=sha256_b64(data), invoice_size=len(data), received=received,
            status=Status(100, INVOICE_TEXT[100]), offline=offline, file_name=file_name,
            session_reference_number=session.reference_number, form_code=_form_dict(session.form_code),
            pending_reads=self.core.transitions.invoice_reads,
        )  # fmt: skip
        with self.core.lock:
            session.invoices.append(invoice)
            session.updated = now
            self.state.version += 1  # listings filter on ``updated``
        return invoice

    def add_invoice(
        self, session: Session, xml: bytes, *, offline: bool = False, file_name: str | None = None,
        attachments_allowed: bool | None = None, corrects: str | None = None,
    ) -> Invoice:  # fmt: skip
        """Take one plain invoice into ``session``: verify it, number it, or reject it with a status.

        ``attachments_allowed`` defaults to KSeF's rule: batch sessions (or a technical correction,
        ``corrects``: the hash of the invoice it corrects), for sellers with the attachment consent
        (``/testdata/attachment``).
        """
        if session.status.code != 100:
            raise MockAPIError(21180, "Status sesji nie pozwala na wykonanie operacji.")
        return self._take_invoice(session, xml, offline, file_name, attachments_allowed, corrects=corrects)

    def _take_invoice(
        self, session: Session, xml: bytes, offline: bool, file_name: str | None, attachments_allowed: bool | None,
        checked: FileCheck | None = None, corrects: str | None = None,
    ) -> Invoice:  # fmt: skip
        """Number ``xml`` or reject it; ``checked``: its file checked already (by a batch worker)."""
        invoice = self._new_invoice(session, xml, offline=offline, file_name=file_name)
        invoice.hash_of_corrected_invoice = corrects
        if checked is None:
            checked = check_file(session.form_code, xml, self.size_limits(session))
        status = self._verify(session, invoice, xml, checked, attachments_allowed)
        with self.core.lock:  # the duplicate check and the numbering are one step (batch workers, sends)
            if status is None and invoice.fields is not None:
                status = self._duplicate(invoice.fields)
            if status is None:
                self._accept(invoice)
            else:
                invoice.status = status
        return invoice

    def _verify(
        self, session: Session, invoice: Invoice, xml: bytes, checked: FileCheck, attachments_allowed: bool | None
    ) -> Status | None:
        """The rejection of an invoice, in the order KSeF checks (``None``: accepted): the file
        (``checked``), then what it says."""
        fields = checked.fields
        if fields is None:
            return Status(430, INVOICE_TEXT[430], list(checked.rejection))
        invoice.invoice_number, invoice.issue_date, invoice.seller_nip = fields.number, fields.issue_date, fields.seller
        invoice.fields, invoice.xml = fields, xml
        # KSeF marks an invoice Offline when it was issued on an earlier (Polish calendar) day than
        # it was received.
        invoice.offline = invoice.offline or fields.issue_date < polish_day(invoice.received)
        return self._content_rejection(session, invoice, fields, checked.with_attachment, attachments_allowed)

    def _content_rejection(
        self, session: Session, invoice: Invoice, fields: InvoiceFields, with_attachment: bool, allowed: bool | None
    ) -> Status | None:
        received = polish_day(invoice.received)
        # NIP checksums: "Dotyczy tylko środowiska produkcyjnego" (faktury/weryfikacja-faktury.md), or
        # wherever the session was opened with X-KSeF-Feature: subject-identifier-validation (the spec).
        checked = self.core.settings.profile == "PROD" or session.validate_identifiers
        if checked and (bad := _bad_nips(fields)):
            return Status(450, INVOICE_TEXT[450], [f"Nieprawidłowa suma kontrolna NIP: {', '.join(bad)}."])
        if fields.issue_date > received:
            detail = f"Data wystawienia (P_1) {fields.issue_date} jest późniejsza niż data przyjęcia {received}."
            return Status(450, INVOICE_TEXT[450], [detail])
        if not self._may_issue(session, fields):
            whose = "faktury VAT RR dostawcy" if session.form_code.startswith("FA_RR") else "faktury sprzedawcy"
            return Status(410, INVOICE_TEXT[410], [f"Brak uprawnień do wystawienia {whose} {fields.seller}."])
        if with_attachment and (refusal := self._attachment_refusal(session, invoice, fields, allowed)):
            return Status(415, INVOICE_TEXT[415], [refusal])
        return None  # duplicates are checked when the invoice is numbered, under the lock

    def _duplicate(self, fields: InvoiceFields) -> Status | None:
        original = self.invoices.duplicate_of(fields)
        if original is None:
            return None
        extensions = {
            "originalKsefNumber": original.ksef_number or "",
            "originalSessionReferenceNumber": original.session_reference_number,
        }
        return Status(440, INVOICE_TEXT[440], ["Faktura o podanym numerze została już przesłana."], extensions)

    def _may_issue(self, session: Session, fields: InvoiceFields) -> bool:
        # Podmiot1's own context, or a context Podmiot1 authorized: "Wysłanie faktury do KSeF wymaga
        # posiadania odpowiednich uprawnień do jej wystawienia w kontekście danego podmiotu"
        # (faktury/weryfikacja-faktury.md). FA_RR too: its buyer (Podmiot2) issues the invoice of a
        # flat-rate farmer (Podmiot1, "Dane dostawcy") in its own context, which takes the farmer's
        # RRInvoicing, an authorization "do działania (wystawiania faktur) we własnym kontekście w
        # imieniu podmiotu uprawniającego" ("wystawianie faktur VAT RR", uprawnienia.md, the spec).
        # Both Ministry clients' FA_RR tests (RrInvoiceIntegrationTest,
        # AuthorizationPermissionsRRInvoicingE2ETests) have the farmer grant it to the buyer before
        # the buyer sends. No source says in words that the buyer is refused without it, nor with
        # which code: 410, as for a self-billed invoice without SelfInvoicing, is the emulator's
        # reading. (It took Podmiot2 for the issuer, so the grant was never needed.)
        scopes = ISSUE_SCOPES.get(session.form_code.split(" ")[0].split("_KOR")[0], DEFAULT_ISSUE_SCOPES)
        return self.permissions.may_issue_for(session.context, fields.seller, scopes)

    def _attachment_refusal(
        self, session: Session, invoice: Invoice, fields: InvoiceFields, allowed: bool | None
    ) -> str | None:
        """Why an invoice with attachments is refused (415), ``None`` when it is taken."""
        if allowed is not None:
            return None if allowed else "Faktury z załącznikami nie są przyjmowane w tej sesji."
        # "Wysyłka faktur z załącznikami jest dozwolona tylko w trybie wsadowym. Wyjątek: [...] korekty
        # technicznej faktury offline [...] sesji interaktywnej" and, either way, "wymaga uprzedniego
        # zgłoszenia" (faktury/weryfikacja-faktury.md): a correction lifts the batch-only rule, not the
        # consent. The rule binds the forms a batch session takes: the PEF forms go through online
        # sessions only (BATCH_FORMS), and the Ministry's Java client sends its PEF template with an
        # embedded document online after the consent, which KSeF TEST takes (PeppolInvoiceIntegrationTest,
        # QueryInvoiceIntegrationTest).
        batch_only = session.form_code in BATCH_FORMS and session.kind != "Batch"
        if batch_only and invoice.hash_of_corrected_invoice is None:
            return "Faktury z załącznikami tylko w sesji wsadowej (lub jako korekta techniczna faktury offline)."
        if not self.testdata.attachments_allowed(fields.seller):
            return f"Brak zgody na wysyłanie faktur z załącznikiem: {fields.seller}."
        return None

    def _accept(self, invoice: Invoice) -> None:
        assert invoice.fields is not None
        invoice.acquired = self.invoices.acquisition_time()  # under the lock, with register below
        # "RRRRMMDD - data przyjęcia faktury (rok, miesiąc, dzień) do dalszego przetwarzania"
        # (faktury/numer-ksef.md): the Polish calendar day of invoicingDate, not the UTC day of numbering.
        date = invoice.received.astimezone(WARSAW).strftime("%Y%m%d")
        invoice.ksef_number = make_ksef_number(invoice.fields.seller, date, secrets.token_hex(6))
        invoice.status = Status(200, INVOICE_TEXT[200])
        self.invoices.register(invoice)

    # --- batch ---------------------------------------------------------------------------------

    def upload_part(self, name: str, data: bytes) -> bool:
        """A PUT to a part's upload URL (no token); ``False`` when unknown, the session is no longer
        open, or the upload window (parts x 20 minutes from the opening) is over."""
        slot = self.storage.upload_slot(name)
        session = self.state.sessions.get(slot[0]) if slot else None
        if slot is None or session is None or session.batch is None:
            return False
        with self.core.lock:
            now = self.core.clock()
            self._expire(session, now)
        if session.status.code != 100 or now > session.batch.upload_deadline:
            return False
        session.batch.parts[slot[1] - 1].data = data
        return True

    def close_batch(self, access: Access, reference_number: str) -> None:
        """``POST /sessions/batch/{ref}/close``: check the parts, decrypt, unpack, process each invoice."""
        session = self.get(access, reference_number, read=False)
        if session.batch is not None and session.closed is None and self.core.clock() > session.valid_until:
            # The close is the "finish" request of the spec's 21208: it came after the session's
            # time (12 h), which cancelled it. A close after the upload window alone is answered
            # as any other: the parts all sent, it is processed; one missing, 21205.
            raise MockAPIError(
                21208, "Czas oczekiwania na requesty upload lub finish został przekroczony.",
                ["Sesja anulowana, przekroczony czas wysyłki."],
            )  # fmt: skip
        if session.kind != "Batch" or session.status.code != 100 or session.batch is None:
            raise MockAPIError(
                21180, "Status sesji nie pozwala na wykonanie operacji.",
                [f"Status sesji {session.status.code} uniemożliwia jej zamknięcie."],
            )  # fmt: skip
        for part in session.batch.parts:
            if part.data is None:
                raise MockAPIError(
                    21205, "Pakiet nie może być pusty.",
                    [f"Nie przesłano zadeklarowanej '{part.ordinal_number}' części pliku."],
                )  # fmt: skip
            if len(part.data) != part.size:
                raise MockAPIError(
                    21157, "Nieprawidłowy rozmiar części pakietu.",
                    [f"Zadeklarowany rozmiar części '{part.ordinal_number}' nie zgadza się z rzeczywistym."],
                )  # fmt: skip
        # As in KSeF, the close is answered at once (150) and the package is processed after it;
        # the session's first status read that would see it processed waits for the processing.
        with self.core.lock:
            self.close(session, interim=150, finish=False)
            worker = threading.Thread(target=self._process_batch, args=(session,), daemon=True)
            self._processing[session.reference_number] = worker
        worker.start()

    def _process_batch(self, session: Session) -> None:
        try:
            failure = self._unpack_batch(session)
        except Exception as error:
            failure = session_status("Batch", 500, [f"{type(error).__name__}: {error}"[:500]])
        if failure is not None:
            self.set_status(session, failure)

    def _settle(self, session: Session) -> None:
        """Wait until the batch session's processing after its close is over (no lock held)."""
        self.wait_processed(session.reference_number)

    def is_processing(self, reference_number: str) -> bool:
        """Whether a batch session's package is still being processed after its close."""
        return reference_number in self._processing

    def wait_processed(self, reference_number: str | None = None) -> None:
        """Wait for the processing of one batch session (or, ``None``, of every one). The HTTP
        layer calls it from a worker thread, never from the event loop."""
        workers = (
            [(reference_number, self._processing.get(reference_number))]
            if reference_number is not None else list(self._processing.items())
        )  # fmt: skip
        for ref, worker in workers:
            if worker is not None:
                worker.join()
                self._processing.pop(ref, None)

    def _unpack_batch(self, session: Session) -> Status | None:
        batch = session.batch
        assert batch is not None
        package = _decrypted_package(batch, session.key)
        if isinstance(package, Status):
            return package
        try:
            members = list(_package_members(package, batch.compression))
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
            return session_status("Batch", 430, [str(error)])
        most = self.invoice_limit(session)
        if len(members) > most:
            return session_status("Batch", 420, [f"{len(members)} > {most}"])
        # The files are checked while the package is unpacked (in worker processes when it is
        # large); the invoices are then numbered here, in archive order.
        limits = self.size_limits(session)
        checks = self.workers.checking(session.form_code, len(members), limits)
        unpacked: list[tuple[str, bytes | MemberRejection]] = []
        budget = HashBudget()
        for name, size, open_member in members:
            content = _member_content(name, size, open_member, max(limits.plain, limits.with_attachment), budget)
            unpacked.append((name, content))
            if isinstance(content, bytes):
                checks.add(content)
        # Every check is in before the first invoice is numbered: a worker process that dies on a
        # later chunk ends the session 500 with none of its invoices numbered (not some of them).
        results = iter(list(checks.results()))
        for name, content in unpacked:
            if isinstance(content, bytes):
                self._take_invoice(session, content, session.offline, name, None, next(results))
            else:
                self._rejected_member(session, name, content)
        for part in batch.parts:
            part.data = None  # the invoices are kept; the encrypted parts are not needed any more
        return None

    def _rejected_member(self, session: Session, name: str, rejection: MemberRejection) -> None:
        """List a package member that was not taken (430) under its file's own SHA-256, so that a
        technical correction names it as it would any other rejected offline invoice
        (offline/korekta-techniczna.md names "przekroczenie dopuszczalnego rozmiaru pliku" among
        the reasons). A member that cannot be read to its end has no such hash: it is listed under
        a marker of its own (so is one larger than ``HASHED_AT_MOST`` past the limit: no CPU is
        spent inflating a zip bomb to its end), the SHA-256 of a text naming its place in the
        package, its name and what could be read of it (no file's hash, and never one shared with another member: each
        correction would block the others, 21166)."""
        shown = name if len(name) <= MAX_FILE_NAME else name[: MAX_FILE_NAME - 1] + "…"  # the detail has it whole
        invoice = self._new_invoice(session, b"", offline=session.offline, file_name=shown)
        digest = base64.b64encode(rejection.sha256).decode("ascii")
        if not rejection.whole:
            marker = f"nieczytelny plik {invoice.ordinal_number} {name}: {rejection.size} B, {digest}"
            digest = sha256_b64(marker.encode())
        invoice.invoice_hash, invoice.invoice_size = digest, rejection.size
        invoice.status = Status(430, INVOICE_TEXT[430], [f"[{rejection.rule}] {rejection.detail}"])

    # --- closing and status --------------------------------------------------------------------

    def close(
        self, session: Session, interim: int = 170, *, finish: bool = True, at: dt.datetime | None = None
    ) -> None:
        """Close a session: ``interim`` (170 online, 150 batch) now (or ``at`` the moment its time
        ran out), processed (200/440/445 and UPO) after the configured status reads (with none, now;
        or at the first read when ``finish`` is false: the batch is still being processed)."""
        with self.core.lock:
            if session.status.code != 100:
                raise MockAPIError(
                    21180, "Status sesji nie pozwala na wykonanie operacji.",
                    [f"Status sesji {session.status.code} uniemożliwia jej zamknięcie."],
                )  # fmt: skip
            session.closed = at or self.core.clock()
            self.set_status(session, session_status(session.kind, interim), at=at)
            session.reads_until_processed = self.core.transitions.session_reads
            if session.reads_until_processed <= 0 and finish:
                self._finish(session)

    def close_online(self, access: Access, reference_number: str) -> None:
        """``POST /sessions/online/{ref}/close``."""
        session = self.get(access, reference_number, read=False, missing="odnaleziona")
        if session.kind != "Online":
            raise session_not_found(reference_number, "odnaleziona")
        self.close(session)

    def _finish(self, session: Session) -> None:
        for invoice in session.invoices:  # a processed session's invoices are processed
            invoice.status_reads = max(invoice.status_reads, invoice.pending_reads)
        if not session.invoices:
            self.set_status(session, session_status(session.kind, 440, [NO_INVOICES_SENT]))
        elif not any(i.accepted for i in session.invoices):
            self.set_status(session, session_status(session.kind, 445))
        else:
            # The pages are numbered now and built (one signature each) when first downloaded.
            session.upo_page_size = self.core.settings.upo_page_size
            count = -(-sum(1 for i in session.invoices if i.accepted) // session.upo_page_size)
            session.upo_pages = [(self.core.new_reference_number("EU"), None) for _ in range(count)]
            self.set_status(session, session_status(session.kind, 200))

    def get(self, access: Access, reference_number: str, *, read: bool = True, missing: str = "znaleziona") -> Session:
        """A session of the caller's context (another context's is "not found", as in KSeF);
        ``missing``: the word of the operation's 21173 detail (the spec says "odnaleziona" for the
        online send and close)."""
        with self.core.lock:
            session = self.state.sessions.get(reference_number)
            if session is None or session.context != access.context:
                raise session_not_found(reference_number, missing)
            self._expire(session, self.core.clock())
            # What the session holds is looked at (invoices, UPO), or its status is about to be final.
            settle = not read or session.reads_until_processed <= 0
        if settle and session.reference_number in self._processing:
            self._settle(session)
        with self.core.lock:
            # ``session_reads`` = N: the first N status reads after the close show it in progress.
            if read and session.status.code in (150, 170):
                if session.reads_until_processed <= 0:
                    self._finish(session)
                else:
                    session.reads_until_processed -= 1
            return session

    def listing(self, access: Access, query: SessionQuery, page_size: int = 10, token: str | None = None) -> Page:
        """Sessions matching ``query``, newest first, one page at a time (keyset continuation).

        A caller without ``Introspection``/``EnforcementOperations`` sees only the sessions its
        authenticating subject opened.
        """
        found = self._matching(access, query)
        return self.core.page(found, page_size, token, key=lambda s: s.listing_key, descending=True)

    def _matching(self, access: Access, query: SessionQuery) -> list[Session]:
        self._expire_due()
        # Paging 100,000 sessions re-filters nothing: the sorted result is kept per query until
        # a session is added or changes status.
        cache_key = (access.context, access.subject if not access.sees_whole_context else None, query,
                     self.state.version)  # fmt: skip
        if self._listing is not None and self._listing[0] == cache_key:
            return self._listing[1]
        with self.core.lock:
            sessions = list(self.state.sessions.values())
        found = [s for s in sessions if s.context == access.context and _matches(s, query)]
        if not access.sees_whole_context:
            found = [s for s in found if s.subject == access.subject]
        found.sort(key=lambda s: s.listing_key, reverse=True)
        self._listing = (cache_key, found)
        return found

    def session_invoices(
        self, access: Access, reference_number: str, *, failed: bool = False, page_size: int = 10,
        token: str | None = None,
    ) -> Page:  # fmt: skip
        """Invoices of a session (or only the failed ones), in sending order."""
        session = self.get(access, reference_number, read=False)
        invoices = session.failed if failed else session.invoices
        return self.core.page(invoices, page_size, token, key=lambda i: f"{i.ordinal_number:09d}", descending=False)

    def read_status(self, invoice: Invoice) -> Status | None:
        """Count one status read of ``invoice``: the status it shows while KSeF is still processing
        it (the first ``invoice_reads`` reads: 100 "Faktura przyjęta do dalszego przetwarzania", then
        150 "Trwa przetwarzanie"), or ``None`` once its own status (and KSeF number) shows; a read
        that shows the KSeF number counts towards its permanent storage too (``storage_reads``:
        ``Invoice.stored`` says whether this read found it stored)."""
        with self.core.lock:
            if invoice.settled:
                if invoice.accepted:
                    self.invoices.read_stored(invoice)
                return None
            code = 100 if invoice.status_reads == 0 else 150
            invoice.status_reads += 1
            return Status(code, INVOICE_TEXT[code])

    def invoice(self, access: Access, reference_number: str, invoice_reference_number: str) -> Invoice:
        """One invoice of a session by its reference number."""
        session = self.get(access, reference_number, read=False)
        for invoice in session.invoices:
            if invoice.reference_number == invoice_reference_number:
                return invoice
        raise NotFound(21164, f"Faktura o numerze referencyjnym {invoice_reference_number} nie została znaleziona.")

    # --- UPO -------------------------------------------------------------------------------------

    def _header(self, session: Session) -> UpoHeader:
        auth_hash = sha256_b64(session.auth_reference_number.encode())
        return UpoHeader(
            session.reference_number, session.context.type, session.context.value, auth_hash, session.form_code
        )

    @staticmethod
    def _document(invoice: Invoice) -> UpoDocument:
        assert invoice.ksef_number and invoice.acquired and invoice.seller_nip
        return UpoDocument(
            seller_nip=invoice.seller_nip, ksef_number=invoice.ksef_number, invoice_number=invoice.invoice_number or "",
            issue_date=invoice.issue_date or "", received=invoice.received.isoformat(timespec="milliseconds"),
            numbered=invoice.acquired.isoformat(timespec="milliseconds"), invoice_hash=invoice.invoice_hash,
            mode="Offline" if invoice.offline else "Online",
        )  # fmt: skip

    def _session_upo_page(self, session: Session, index: int) -> bytes:
        """Page ``index`` (from 0) of the session UPO, built and signed on first use, then kept."""
        with self.core.lock:  # two first downloads get the same document, signed once
            ref, xml = session.upo_pages[index]
            if xml is None:
                accepted = [i for i in session.invoices if i.accepted]
                size, count = session.upo_page_size, len(session.upo_pages)
                chunk = accepted[index * size : (index + 1) * size]
                info = PageInfo(index + 1, count, index * size + 1, index * size + len(chunk), len(accepted))
                xml = build_upo(self._header(session), [self._document(i) for i in chunk], info)
                session.upo_pages[index] = (ref, xml)
            return xml

    def session_upo_links(self, session: Session) -> list[tuple[str, str, dt.datetime]]:
        """``(UPO page reference, storage name, expiry)`` of every page: fresh links, no page built."""
        links = []
        for ref, xml in session.upo_pages:
            name, expires = self.storage.presign(
                xml if xml is not None else LazyBlob(_SESSION_UPO, (session.reference_number, ref))
            )
            links.append((ref, name, expires))
        return links

    def invoice_upo_for(self, session: Session, invoice: Invoice) -> bytes:
        """The UPO document of one accepted invoice (signed once, then cached)."""
        with self.core.lock:
            if invoice.upo is None:
                invoice.upo = build_upo(self._header(session), [self._document(invoice)])
            return invoice.upo

    def invoice_upo_link(self, session: Session, invoice: Invoice) -> tuple[str, dt.datetime]:
        """A fresh presigned link to an accepted invoice's UPO; the UPO is made when downloaded."""
        lazy = LazyBlob(_INVOICE_UPO, (session.reference_number, str(invoice.ordinal_number)))
        return self.storage.presign(invoice.upo if invoice.upo is not None else lazy)

    def _resolve_invoice_upo(self, reference_number: str, ordinal_number: str) -> bytes | None:
        session = self.state.sessions.get(reference_number)
        if session is None or not 0 < int(ordinal_number) <= len(session.invoices):
            return None
        invoice = session.invoices[int(ordinal_number) - 1]
        return self.invoice_upo_for(session, invoice) if invoice.accepted else None

    def _resolve_session_upo(self, reference_number: str, upo_reference_number: str) -> bytes | None:
        session = self.state.sessions.get(reference_number)
        pages = [ref for ref, _ in session.upo_pages] if session is not None else []
        if session is None or upo_reference_number not in pages:
            return None
        return self._session_upo_page(session, pages.index(upo_reference_number))

    def invoice_upo(
        self, access: Access, reference_number: str, *, invoice_reference_number: str | None = None,
        ksef_number: str | None = None,
    ) -> bytes:  # fmt: skip
        """The UPO of one accepted invoice, by its reference number or KSeF number."""
        session = self.get(access, reference_number, read=False)
        for invoice in session.invoices:
            if invoice.reference_number == invoice_reference_number or (
                ksef_number is not None and invoice.ksef_number == ksef_number
            ):
                if not invoice.accepted or not invoice.settled:
                    break
                return self.invoice_upo_for(session, invoice)
        if ksef_number is not None:
            detail = f"UPO o numerze KSeF {ksef_number} i numerze referencyjnym sesji {reference_number}"
        else:
            detail = f"UPO o numerze referencyjnym {invoice_reference_number} dla sesji {reference_number}"
        raise NotFound(21178, UPO_NOT_FOUND, [f"{detail} nie zostało znalezione."])

    def session_upo(self, access: Access, reference_number: str, upo_reference_number: str) -> bytes:
        """One page of a session's UPO."""
        session = self.get(access, reference_number, read=False)
        found = self._resolve_session_upo(session.reference_number, upo_reference_number)
        if found is None:
            detail = f"UPO o numerze referencyjnym {upo_reference_number} dla sesji {reference_number}"
            raise NotFound(21178, UPO_NOT_FOUND, [f"{detail} nie zostało znalezione."])
        return found


WARSAW = ZoneInfo("Europe/Warsaw")


def polish_day(moment: dt.datetime) -> str:
    """The calendar day in Poland of a moment (KSeF compares issue dates with it), ISO format."""
    return moment.astimezone(WARSAW).date().isoformat()


def _bad_nips(fields: InvoiceFields) -> list[str]:
    nips = [fields.seller, *([fields.buyer] if fields.buyer else []), *fields.other_nips]
    return [nip for nip in nips if not is_valid_nip(nip)]


def _matches(session: Session, query: SessionQuery) -> bool:
    if session.kind != query.session_type:
        return False
    if query.statuses and not _in_statuses(session.status.code, query.statuses):
        return False
    if query.reference_number is not None and session.reference_number != query.reference_number:
        return False
    return (
        _within(session.created, query.created_from, query.created_to)
        and _within(session.updated, query.modified_from, query.modified_to)
        and (
            (query.closed_from is None and query.closed_to is None)
            or (session.closed is not None and _within(session.closed, query.closed_from, query.closed_to))
        )
    )


def _in_statuses(code: int, statuses: Iterable[str]) -> bool:
    for status in statuses:
        if code in STATUS_GROUPS.get(status, set()) or (status == "Failed" and code >= 400 and code != 440):
            return True
    return False


def _within(value: dt.datetime, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    return (start is None or value >= start) and (end is None or value <= end)


def _form_dict(system_code: str) -> dict[str, str]:
    for code in FORMS.values():
        if code.system_code == system_code:
            return code.to_dict()
    return {"systemCode": system_code, "schemaVersion": "", "value": ""}


def _decrypted_package(batch: BatchPackage, key: SymmetricKey | None) -> bytes | Status:
    """The plain package, or the session status that explains why there is none."""
    if key is None:
        return session_status("Batch", 415)
    for part in batch.parts:
        if sha256_b64(part.data or b"") != part.hash:
            return session_status("Batch", 405, [f"Skrót części {part.ordinal_number} nie zgadza się."])
    try:
        package = b"".join(key.decrypt(p.data or b"") for p in batch.parts)
    except ValueError:
        return session_status("Batch", 435)
    if len(package) != batch.file_size or sha256_b64(package) != batch.file_hash:
        return session_status("Batch", 405, ["Skrót lub rozmiar paczki nie zgadza się."])
    return package


def _package_members(package: bytes, compression: str) -> Iterator[tuple[str, int, MemberOpener]]:
    """``(name, size, open)`` of each file in a batch package (zip, or tar.gz for ``TarGz``):
    ``open()`` gives a new stream of the file's bytes."""
    if compression == "TarGz":
        archive = tarfile.open(fileobj=io.BytesIO(package), mode="r:gz")  # noqa: SIM115 - read lazily below
        for member in archive.getmembers():
            if member.isfile():
                yield member.name, member.size, _tar_opener(archive, member)
        return
    zipped = zipfile.ZipFile(io.BytesIO(package))
    for info in zipped.infolist():
        if not info.is_dir():
            yield info.filename, info.file_size, _zip_opener(zipped, info)


MemberOpener = Callable[[], IO[bytes]]
# A member that cannot be unpacked (CRC, compression method, encryption, a cut archive).
_UNREADABLE = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)
_CHUNK = 1 << 20
# The most of a rejected member that is inflated to take its hash (past the invoice limit): a
# member declaring more (a zip bomb compresses ~1000:1) costs no CPU beyond it, and is listed under
# a marker, as one that cannot be read to its end (``_rejected_member``).
HASHED_AT_MOST = 64 << 20
# And the most one package inflates for the hashes of all its rejected members together: 10,000
# members of 64 MiB each would keep the processing thread busy for half an hour.
HASHED_PER_PACKAGE = 256 << 20


class HashBudget:
    """How many bytes of rejected members a package may still inflate for their hashes."""

    def __init__(self, left: int = HASHED_PER_PACKAGE) -> None:
        self.left = left


class MemberRejection(NamedTuple):
    """Why a file of a package could not be taken out of it (the invoice's status 430), with the
    SHA-256 and size of its bytes (``whole``: read to the end; else of those read before the
    failure)."""

    rule: str
    detail: str
    sha256: bytes
    size: int
    whole: bool


def _member_content(
    name: str, size: int, open_member: MemberOpener, limit: int, budget: HashBudget | None = None
) -> bytes | MemberRejection:
    """A package member's bytes, or why there are none (``limit``: the largest invoice the context
    may send, with attachments; ``budget``: what the package's rejected members may still
    inflate for their hashes)."""
    budget = budget or HashBudget()
    at_most = min(limit + HASHED_AT_MOST, budget.left)
    if len(name) > MAX_FILE_NAME:
        # KSeF reports a batch invoice by its file name, of at most 128 characters (invoiceFileName's
        # maxLength): a file it could not name is not taken, so never numbered.
        detail = f"Nazwa pliku {name} ma {len(name)} znaków, dozwolone najwyżej {MAX_FILE_NAME}."
        return MemberRejection("name", detail, *_digest(open_member, at_most, budget))
    # Sizes are read from the archive first: a zip bomb is never inflated into memory, nor past
    # HASHED_AT_MOST for its hash (taken chunk by chunk; zipfile stops at the size declared).
    if size > limit:
        rejection = f"Plik {name} ma {size} B > {limit} B."
        if size > at_most:  # not read at all: listed under a marker, with the size it declares
            return MemberRejection("size", rejection, hashlib.sha256().digest(), size, False)
        return MemberRejection("size", rejection, *_digest(open_member, at_most, budget))
    try:
        with open_member() as stream:
            return stream.read()
    except _UNREADABLE as error:
        detail = f"Plik {name} nie daje się rozpakować: {error}"
        return MemberRejection("xml", detail, *_digest(open_member, min(limit, at_most), budget))


def _digest(open_member: MemberOpener, at_most: int, budget: HashBudget) -> tuple[bytes, int, bool]:
    """SHA-256 and size of a member's bytes, read a chunk at a time (the member may be too large
    to hold), and whether it was read to its end (else: of the bytes read before it failed, or
    before ``at_most`` of them, where the reading stops); what was read is taken off ``budget``."""
    digest, size = hashlib.sha256(), 0
    try:
        with open_member() as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if size > at_most:
                    return digest.digest(), size, False
    except _UNREADABLE:
        return digest.digest(), size, False
    finally:
        budget.left = max(0, budget.left - size)
    return digest.digest(), size, True


def _tar_opener(archive: tarfile.TarFile, member: tarfile.TarInfo) -> MemberOpener:
    def open_member() -> IO[bytes]:
        extracted = archive.extractfile(member)
        return extracted if extracted is not None else io.BytesIO()

    return open_member


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> MemberOpener:
    # By its entry, never by name: of two entries with one name, zipfile reads the last for either,
    # so a small first one would let a large second one be inflated past the size cap.
    return lambda: archive.open(info)
