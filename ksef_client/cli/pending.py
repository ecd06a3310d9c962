"""Where ``ksef cert obtain`` keeps a certificate request KSeF has not answered with a certificate
yet: ``<FILE>.pending`` beside the ``.p12`` it is to write.

The private key of a request exists nowhere else (KSeF certifies its public half only), so it is
written, encrypted with the password of the ``.p12`` and as strongly as the ``.p12`` (a PKCS#12
of the key alone), *before* the request is sent, and the file is
removed only once the ``.p12`` is written or KSeF refused the request (or never got it).
``ksef cert complete FILE`` reads it back and finishes the request. The key is never on the disk
unencrypted: it is serialised encrypted in memory, then written as a new file of mode 0600,
flushed: the first time (the claim, ``write_new``) linked into place, never replacing another
run's file, or created in place where the file system has no hard links; after that through
``write_durably`` (renamed into place).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, load_pem_private_key, pkcs12

from ksef_client._durable import write_durably, write_durably_new
from ksef_client.identifiers import validate_certificate_serial
from ksef_client.resources.certificates import NAME_LENGTH, NAME_PATTERN, PendingCertificate
from ksef_client.xades import PrivateKey

# /2: the key as a key-only PKCS#12 (base64), encrypted as the .p12 is; /1 (read only): PKCS#8 PEM,
# whose PBKDF2 ran 2048 rounds, a tenth of the .p12's.
FORMAT = "ksef-cli-pending-certificate/2"
FORMAT_1 = "ksef-cli-pending-certificate/1"
SUFFIX = ".pending"


class PendingFileError(ValueError):
    """A pending-request file that cannot be read (damaged, another format, a wrong password)."""


def pending_path(out: Path) -> Path:
    """The pending-request file of the ``.p12`` file ``out``: ``out`` with ``.pending`` added."""
    return out.with_name(out.name + SUFFIX)


def check_name(name: str) -> str:
    """A certificate name as ``EnrollCertificateRequest.certificateName`` takes it, or ``ValueError``
    (checked before a key is made or anything is sent)."""
    low, high = NAME_LENGTH
    if not low <= len(name) <= high or re.fullmatch(NAME_PATTERN, name) is None:
        raise ValueError(f"NAME {name!r}: {low} to {high} letters (Polish ones too), digits, spaces, '_' or '-'")
    return name


def check_serial(serial: str) -> str:
    """A serial number as the spec writes it (16 hex digits, upper-cased), or ``ValueError`` that
    names the argument and where serial numbers are listed."""
    try:
        return validate_certificate_serial(serial, "SERIAL")
    except ValueError as error:
        raise ValueError(f"{error} (ksef cert list)") from None


@dataclass(frozen=True)
class PendingFile:
    """A request as ``<FILE>.pending`` keeps it: what ``certificates.complete`` needs, and where it
    was made (``profile``, ``ksef``: a request of one KSeF cannot be completed at another)."""

    pending: PendingCertificate
    profile: str
    ksef: str
    requested_at: str

    def save(self, path: Path, password: str, *, new: bool = False) -> None:
        """Write it, the key encrypted with ``password`` as the .p12 is: a PKCS#12 of the key alone
        with ``BestAvailableEncryption`` (with cryptography 50: PBKDF2-HMAC-SHA256, 20000 rounds,
        AES-256-CBC), so the pending file is no easier to guess at than the .p12 it stands in for.
        ``new``: only if ``path`` does not exist yet (``FileExistsError`` else: ``write_new``), the
        claim of a ``.p12`` by one ``obtain``; after that, this run replaces its own file."""
        if not password:
            raise ValueError("password: required; the private key is never saved unencrypted")
        encryption = BestAvailableEncryption(password.encode())
        key = pkcs12.serialize_key_and_certificates(b"ksef pending request", self.pending.key, None, None, encryption)
        data = {
            "format": FORMAT,
            "profile": self.profile,
            "ksef": self.ksef,
            "name": self.pending.name,
            "kind": self.pending.kind,
            "reference_number": self.pending.reference_number,
            "requested_at": self.requested_at,
            "key": base64.b64encode(key).decode("ascii"),
        }
        (write_new if new else write_durably)(path, (json.dumps(data, indent=2) + "\n").encode())

    def with_reference(self, reference_number: str | None) -> PendingFile:
        """The same request, with the reference number KSeF gave it (if it gave one)."""
        if reference_number is None or reference_number == self.pending.reference_number:
            return self
        pending = self.pending
        updated = PendingCertificate(reference_number, pending.key, pending.name, pending.kind)
        return PendingFile(updated, self.profile, self.ksef, self.requested_at)


def new_pending(key: PrivateKey, name: str, kind: str, profile: str, ksef: str) -> PendingFile:
    """A request about to be sent: no reference number yet."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return PendingFile(PendingCertificate(None, key, name, kind), profile, ksef, now)


def load_pending(path: Path, password: str) -> PendingFile:
    """Read ``path`` back (``PendingFileError`` naming it and what is wrong)."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as error:  # UnicodeDecodeError too
        raise _cut_short(path, raw, error) from None
    try:
        if not isinstance(data, dict) or data.get("format") not in (FORMAT, FORMAT_1):
            raise PendingFileError(f"{path}: not a pending certificate request of the ksef command")
        reference = data["reference_number"]
        fields = [str(data[k]) for k in ("name", "kind", "profile", "ksef", "requested_at", "key")]
    except (ValueError, KeyError, TypeError) as error:
        if isinstance(error, PendingFileError):
            raise
        raise PendingFileError(f"{path} is damaged ({type(error).__name__}: {error})") from None
    name, kind, profile, ksef, requested_at, key_text = fields
    key: object
    try:
        if data["format"] == FORMAT_1:
            key = load_pem_private_key(key_text.encode("ascii"), password.encode())
        else:
            key = pkcs12.load_key_and_certificates(base64.b64decode(key_text, validate=True), password.encode())[0]
    except (ValueError, TypeError, binascii.Error):
        raise PendingFileError(f"{path}: wrong password (or a damaged key)") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PendingFileError(f"{path}: holds a key of another kind than RSA or EC")
    pending = PendingCertificate(None if reference is None else str(reference), key, name, kind)
    return PendingFile(pending, profile, ksef, requested_at)


# The reference number as ``PendingFile.save`` writes it (before the key): what a file cut short
# after the request was sent may still show.
_SENT_REFERENCE = re.compile(rb'"reference_number":\s*"([^"\\]{1,64})"')


def _cut_short(path: Path, raw: bytes, error: ValueError) -> PendingFileError:
    """A pending file that is no whole JSON document. ``cert obtain`` leaves one only on a file
    system without hard links (``write_new`` then creates it in place), only when stopped while
    writing it, and it writes it before the request is sent (every later write replaces it whole,
    by a rename): such a file shows no reference number, and its request never reached KSeF. One
    that shows a reference number was damaged after the request was sent (a copy, a sync tool, a
    disk): that request is KSeF's, and the file is not to be removed on this message's word."""
    reason = "empty" if not raw.strip(b"\0") else f"{type(error).__name__}: {error}"
    sent = _SENT_REFERENCE.search(raw)
    if sent is not None:
        reference = sent[1].decode("utf-8", "replace")
        return PendingFileError(
            f"{path} is damaged ({reason}), after its request was sent: KSeF numbered it {reference}; the key "
            f"it held cannot be read back, so that certificate cannot be completed from this file. See its "
            f"state with `ksef cert list`, revoke it if it was issued, and keep {path} until you have decided"
        )
    return PendingFileError(
        f"{path} is not a whole pending file ({reason}): `cert obtain` leaves one so only when stopped while "
        "writing it (on a file system without hard links), which it does before sending the request - that "
        f"request never reached KSeF; remove {path} (unless a `cert obtain` is writing it right now) and run "
        "`cert obtain` again"
    )


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` only if no file is there (``FileExistsError`` otherwise): of two
    runs writing the same name at once, one wins and the other is told, none overwrites
    (``_durable.write_durably_new``)."""
    write_durably_new(path, data)


def forget(path: Path) -> None:
    """Remove a pending-request file that has done its work (gone already: fine)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
