"""Sending state of the emulator: online and batch sessions with KSeF's encryption.

Mixed into ``KSeFBackend``. The AES key of a session arrives wrapped with the emulator's
``SymmetricKeyEncryption`` key; invoices and batch parts are decrypted and checked (sizes, hashes,
schema) exactly where KSeF checks them, and end up as ``Invoice`` records with KSeF numbers.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import secrets
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ksef_client.crypto import SYMMETRIC_KEY_ENCRYPTION, SymmetricKey, rsa_decrypt, sha256_b64
from ksef_client.mock.auth import Access, Context, Status
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.limits import SESSION_KIND_LIMITS
from ksef_client.schemas import FORMS, FormCode

if TYPE_CHECKING:
    from ksef_client.mock.models import Invoice, Session

MAX_PARTS = 50
MAX_BATCH_INVOICE_BYTES = 3_000_000
MAX_PART_BYTES = 100_000_000
MAX_PACKAGE_BYTES = 5_000_000_000
PART_WINDOW = dt.timedelta(minutes=20)
_VALIDATION = "Błąd walidacji danych wejściowych."


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


def unwrap_key(encryption: dict[str, Any]) -> SymmetricKey:
    """Unwrap the session key; ``MockAPIError`` 21470 for an unknown public key id."""
    key_id = encryption.get("publicKeyId")
    if key_id and emulator_keys().by_public_key_id(key_id, SYMMETRIC_KEY_ENCRYPTION) is None:
        raise MockAPIError(
            21470, "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.",
            [f"Klucz o identyfikatorze {key_id} nie jest wspierany."],
        )  # fmt: skip
    try:
        wrapped = base64.b64decode(encryption["encryptedSymmetricKey"], validate=True)
        iv = base64.b64decode(encryption["initializationVector"], validate=True)
        key = rsa_decrypt(emulator_keys().symmetric_key_encryption.private_key, wrapped)
        return SymmetricKey(key, iv)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise KeyUnwrapError(str(error)) from error


class KeyUnwrapError(Exception):
    """The session key could not be unwrapped (session status 415)."""


def form_code_of(body: dict[str, Any]) -> str:
    """``formCode`` of a request -> its system code; 21405 when KSeF does not know the form."""
    raw = body.get("formCode")
    if not isinstance(raw, dict):
        raise MockAPIError(21405, _VALIDATION, ["formCode: wymagane."])
    code = FormCode(str(raw.get("systemCode")), str(raw.get("schemaVersion")), str(raw.get("value")))
    if code not in FORMS.values():
        raise MockAPIError(21405, _VALIDATION, [f"formCode: nieobsługiwany formularz {code}."])
    return code.system_code


def _b64(value: object, name: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as error:
        raise MockAPIError(21405, _VALIDATION, [f"{name}: niepoprawne Base64."]) from error


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MockAPIError(21405, _VALIDATION, [f"{name}: wymagana nieujemna liczba całkowita."])
    return value


_PACKAGE_ERROR = "Błąd weryfikacji poprawności dostarczonych elementów paczki"


def _decrypted_package(batch: BatchPackage, key: SymmetricKey | None) -> bytes | Status:
    """The plain package, or the session status that explains why there is none."""
    if key is None:
        return Status(415, "Błąd odszyfrowania dostarczonego klucza")
    for part in batch.parts:
        if sha256_b64(part.data or b"") != part.hash:
            return Status(405, _PACKAGE_ERROR, [f"Skrót części {part.ordinal_number} nie zgadza się."])
    try:
        package = b"".join(key.decrypt(p.data or b"") for p in batch.parts)
    except ValueError:
        return Status(435, "Błąd odszyfrowania pliku")
    if len(package) != batch.file_size or sha256_b64(package) != batch.file_hash:
        return Status(405, _PACKAGE_ERROR, ["Skrót lub rozmiar paczki nie zgadza się."])
    return package


class SendingOperations:
    """Mixin of ``KSeFBackend``: open, send to and close online and batch sessions."""

    clock: Callable[[], dt.datetime]
    lock: threading.RLock
    sessions: dict[str, Session]
    upload_slots: dict[str, tuple[str, int]]

    def open_session(
        self, access: Access, kind: str = "Online", form_code: str = "FA (3)"
    ) -> Session:  # pragma: no cover
        raise NotImplementedError

    def add_invoice(
        self, session: Session, xml: bytes, *, offline: bool = False, file_name: str | None = None
    ) -> Invoice:  # pragma: no cover
        raise NotImplementedError

    def get_session(self, access: Access, reference_number: str, *, read: bool = True) -> Session:  # pragma: no cover
        raise NotImplementedError

    def close_session(self, session: Session, interim: int = 170) -> None:  # pragma: no cover
        raise NotImplementedError

    def context_limits(self, context: Context) -> dict[str, dict[str, int]]:  # pragma: no cover - KSeFBackend
        raise NotImplementedError

    def session_invoice_limit(self, session: Session) -> int:
        """How many invoices the session's context may send in one session of its kind."""
        return self.context_limits(session.context)[SESSION_KIND_LIMITS[session.kind]]["maxInvoices"]

    def new_reference_number(self, kind: str) -> str:  # pragma: no cover
        raise NotImplementedError

    # --- online --------------------------------------------------------------------------------

    def open_online_session(self, access: Access, body: dict[str, Any]) -> Session:
        """``POST /sessions/online``: a session with its unwrapped AES key (415 if it will not unwrap)."""
        form = form_code_of(body)
        encryption = body.get("encryption")
        if not isinstance(encryption, dict):
            raise MockAPIError(21405, _VALIDATION, ["encryption: wymagane."])
        session = self.open_session(access, "Online", form)
        try:
            session.key = unwrap_key(encryption)
        except KeyUnwrapError as error:
            session.status = Status(415, "Błąd odszyfrowania dostarczonego klucza", [str(error)])
        return session

    def send_online_invoice(self, access: Access, reference_number: str, body: dict[str, Any]) -> Invoice:
        """``POST /sessions/online/{ref}/invoices``: check the ciphertext, decrypt, then accept or reject."""
        session = self.get_session(access, reference_number, read=False)
        if session.kind != "Online" or session.status.code != 100 or session.key is None:
            raise MockAPIError(
                21180,
                "Status sesji nie pozwala na wykonanie operacji.",
                [f"Status sesji {session.status.code} uniemożliwia wysyłkę faktur."],
            )
        max_invoices = self.session_invoice_limit(session)
        if len(session.invoices) >= max_invoices:
            raise MockAPIError(
                21155,
                "Przekroczono dozwoloną liczbę faktur w sesji.",
                [
                    f"Sesja o numerze referencyjnym {reference_number} osiągnęła dozwolony limit "
                    f"liczby faktur {max_invoices}."
                ],
            )
        content = _b64(body.get("encryptedInvoiceContent"), "encryptedInvoiceContent")
        if len(content) != _int(body, "encryptedInvoiceSize"):
            raise MockAPIError(
                21402, "Nieprawidłowy rozmiar pliku.", ["Długość treści nie zgadza się z rozmiarem pliku."]
            )
        if sha256_b64(content) != body.get("encryptedInvoiceHash"):
            raise MockAPIError(21403, "Nieprawidłowy skrót pliku.", ["Skrót treści nie zgadza się ze skrótem pliku."])
        declared_size, declared_hash = _int(body, "invoiceSize"), body.get("invoiceHash")
        offline = bool(body.get("offlineMode", False))
        try:
            xml = session.key.decrypt(content)
        except ValueError:
            return self._rejected(session, content, 435, "Błąd odszyfrowania pliku", offline)
        if len(xml) != declared_size or sha256_b64(xml) != declared_hash:
            return self._rejected(
                session,
                xml,
                430,
                "Błąd weryfikacji pliku faktury",
                offline,
                "Skrót lub rozmiar faktury nie zgadza się z odszyfrowaną treścią.",
            )
        return self.add_invoice(session, xml, offline=offline)

    def _rejected(
        self, session: Session, data: bytes, code: int, text: str, offline: bool, detail: str | None = None
    ) -> Invoice:
        invoice = self.add_invoice(session, b"", offline=offline)
        invoice.invoice_hash, invoice.invoice_size = sha256_b64(data), len(data)
        invoice.status = Status(code, text, [detail] if detail else [])
        return invoice

    # --- batch ---------------------------------------------------------------------------------

    def open_batch_session(self, access: Access, body: dict[str, Any]) -> Session:
        """``POST /sessions/batch``: check the declared package, hand out one upload slot per part."""
        form = form_code_of(body)
        batch_file, encryption = body.get("batchFile"), body.get("encryption")
        if not isinstance(batch_file, dict) or not isinstance(encryption, dict):
            raise MockAPIError(21405, _VALIDATION, ["batchFile i encryption: wymagane."])
        declared = batch_file.get("fileParts")
        if not isinstance(declared, list) or not declared:
            raise MockAPIError(21405, _VALIDATION, ["batchFile.fileParts: wymagana co najmniej jedna część."])
        if len(declared) > MAX_PARTS:
            raise MockAPIError(
                21161, "Przekroczono dozwoloną liczbę części pakietu.", [f"Dozwolone najwyżej {MAX_PARTS} części."]
            )
        package_size = _int(batch_file, "fileSize")
        if package_size > MAX_PACKAGE_BYTES:
            raise MockAPIError(21157, "Nieprawidłowy rozmiar części pakietu.", ["Pakiet większy niż 5 GB."])
        parts = [self._declared_part(p) for p in declared]
        if sorted(p.ordinal_number for p in parts) != list(range(1, len(parts) + 1)):
            raise MockAPIError(21405, _VALIDATION, ["fileParts.ordinalNumber: wymagane kolejne numery od 1."])
        session = self.open_session(access, "Batch", form)
        session.offline = bool(body.get("offlineMode", False))
        session.batch = BatchPackage(
            package_size, str(batch_file.get("fileHash")), sorted(parts, key=lambda p: p.ordinal_number),
            self.clock() + PART_WINDOW * len(parts), str(batch_file.get("compressionType") or "Zip"),
        )  # fmt: skip
        try:
            session.key = unwrap_key(encryption)
        except KeyUnwrapError as error:
            session.status = Status(415, "Błąd odszyfrowania dostarczonego klucza", [str(error)])
        with self.lock:
            for part in parts:
                self.upload_slots[part.upload_name] = (session.reference_number, part.ordinal_number)
        return session

    @staticmethod
    def _declared_part(raw: object) -> BatchPart:
        if not isinstance(raw, dict):
            raise MockAPIError(21405, _VALIDATION, ["fileParts: oczekiwano obiektów."])
        size = _int(raw, "fileSize")
        if not 0 < size <= MAX_PART_BYTES + 16:
            raise MockAPIError(
                21157, "Nieprawidłowy rozmiar części pakietu.", [f"Część {raw.get('ordinalNumber')}: {size} B."]
            )
        return BatchPart(_int(raw, "ordinalNumber"), size, str(raw.get("fileHash")), secrets.token_urlsafe(24))

    def upload_part(self, name: str, data: bytes) -> bool:
        """A PUT to a part's upload URL (no token); ``False`` when unknown or the window is over."""
        with self.lock:
            slot = self.upload_slots.get(name)
            session = self.sessions.get(slot[0]) if slot else None
        if slot is None or session is None or session.batch is None:
            return False
        if self.clock() > session.batch.upload_deadline or session.status.code != 100:
            return False
        session.batch.parts[slot[1] - 1].data = data
        return True

    def close_batch_session(self, access: Access, reference_number: str) -> None:
        """``POST /sessions/batch/{ref}/close``: check the parts, decrypt, unzip, process each invoice."""
        session = self.get_session(access, reference_number, read=False)
        if session.kind != "Batch" or session.status.code != 100 or session.batch is None:
            raise MockAPIError(
                21180,
                "Status sesji nie pozwala na wykonanie operacji.",
                [f"Status sesji {session.status.code} uniemożliwia jej zamknięcie."],
            )
        for part in session.batch.parts:
            if part.data is None:
                raise MockAPIError(
                    21205,
                    "Pakiet nie może być pusty.",
                    [f"Nie przesłano zadeklarowanej '{part.ordinal_number}' części pliku."],
                )
            if len(part.data) != part.size:
                raise MockAPIError(
                    21157,
                    "Nieprawidłowy rozmiar części pakietu.",
                    [f"Zadeklarowany rozmiar części '{part.ordinal_number}' nie zgadza się z rzeczywistym."],
                )
        failure = self._unpack_batch(session)
        if failure is not None:
            session.status = failure
            session.updated = self.clock()
            return
        self.close_session(session, interim=150)

    def _unpack_batch(self, session: Session) -> Status | None:
        batch = session.batch
        assert batch is not None
        package = _decrypted_package(batch, session.key)
        if isinstance(package, Status):
            return package
        try:
            with zipfile.ZipFile(io.BytesIO(package)) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                max_invoices = self.session_invoice_limit(session)
                if len(names) > max_invoices:
                    return Status(420, "Przekroczony limit faktur w sesji", [f"{len(names)} > {max_invoices}"])
                for name in names:
                    self._add_packed_invoice(session, archive, name)
        except zipfile.BadZipFile as error:
            return Status(430, "Błąd dekompresji pierwotnego archiwum", [str(error)])
        for part in batch.parts:
            part.data = None  # the invoices are kept; the encrypted parts are not needed any more
        return None

    def _add_packed_invoice(self, session: Session, archive: zipfile.ZipFile, name: str) -> None:
        # Read the declared size first: a zip bomb must not be inflated into memory.
        if archive.getinfo(name).file_size > MAX_BATCH_INVOICE_BYTES:
            invoice = self.add_invoice(session, b"", offline=session.offline, file_name=name)
            invoice.status = Status(430, "Błąd weryfikacji pliku faktury", [f"Plik {name} jest większy niż 3 MB."])
            return
        self.add_invoice(session, archive.read(name), offline=session.offline, file_name=name)
