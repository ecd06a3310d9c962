"""``ksef-mock --state FILE``: keep the emulator's state in SQLite across restarts.

The state (each component's state object, the transitions and the JWT secret: ``KSeFBackend.snapshot``)
is pickled into one row after every request that changes it, and the emulator's private keys are stored as
PEM so tokens and public keys stay valid after a restart. The file is trusted input: only load
state files you wrote yourself.

Saving is done by a writer thread, not by the request: pickling the whole state takes time that
grows with it, and a save waits for a batch still being processed; on the event loop either
would stall every other client. Requests that change the state while a save runs are folded
into one more save after it. ``flush()`` (called when the server stops) waits for the last one;
a process killed outright loses at most the changes of that last save.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ksef_client.mock import keys as keys_module
from ksef_client.mock.keys import EmulatorKeys, KeyPair, emulator_keys
from ksef_client.mock.models import KSeFBackend


class SQLiteStore:
    """One SQLite file with the pickled state and the emulator's keys."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._changes = threading.Condition()
        self._backend: KSeFBackend | None = None  # set by save_later: the state the writer saves
        self._dirty = self._saving = False
        self._writer: threading.Thread | None = None
        # The file holds the JWT secret and private keys: readable by its owner only, from the
        # first byte (created 0600), and put right when an existing file is wider.
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        if os.name == "posix" and self.path.stat().st_mode & 0o077:
            self.path.chmod(0o600)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB)")
            db.execute("CREATE TABLE IF NOT EXISTS keys (usage TEXT PRIMARY KEY, key_pem BLOB, cert_pem BLOB)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def load(self, backend: KSeFBackend) -> bool:
        """Restore keys and state into ``backend``; ``False`` when the file is new."""
        with self._lock, self._connect() as db:
            key_rows = db.execute("SELECT usage, key_pem, cert_pem FROM keys").fetchall()
            row = db.execute("SELECT data FROM state WHERE id = 1").fetchone()
        if key_rows:
            _install_keys(key_rows)
        else:
            self._save_keys()
        if row is None:
            return False
        state: dict[str, Any] = pickle.loads(row[0])  # noqa: S301 - the user's own state file
        backend.restore(state)
        return True

    def save(self, backend: KSeFBackend) -> None:
        """Write the current state (atomically: one SQLite transaction)."""
        # A batch still processed after its close would be saved half done, and nothing resumes
        # it after a restart: wait for the processing, then pickle under the lock.
        backend.sessions.wait_processed()
        with backend.lock:
            data = pickle.dumps(backend.snapshot())
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO state (id, data) VALUES (1, ?)", (data,))

    def save_later(self, backend: KSeFBackend) -> None:
        """Note that ``backend`` changed; the writer thread saves it soon (never the caller)."""
        with self._changes:
            self._backend, self._dirty = backend, True
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_changes, name="ksef-mock-state", daemon=True)
                self._writer.start()
            self._changes.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every change noted by ``save_later`` is written; ``False`` on timeout."""
        with self._changes:
            return self._changes.wait_for(lambda: not (self._dirty or self._saving), timeout)

    def _write_changes(self) -> None:
        while True:
            with self._changes:
                self._changes.wait_for(lambda: self._dirty)
                self._dirty, self._saving, backend = False, True, self._backend
            try:
                assert backend is not None
                self.save(backend)
            except Exception as error:  # keep serving; the next change tries again
                print(f"ksef-mock: could not save the state to {self.path}: {error!r}", file=sys.stderr)
            finally:
                with self._changes:
                    self._saving = False
                    self._changes.notify_all()

    def _save_keys(self) -> None:
        keys = emulator_keys()
        rows = [
            (pair.usage, _key_pem(pair.private_key), pair.certificate.public_bytes(serialization.Encoding.PEM))
            for pair in (keys.token_encryption, keys.symmetric_key_encryption, keys.upo_signing)
        ]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO keys (usage, key_pem, cert_pem) VALUES (?, ?, ?)", rows)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _install_keys(rows: list[tuple[str, bytes, bytes]]) -> None:
    pairs = {}
    for usage, key_pem, cert_pem in rows:
        key = serialization.load_pem_private_key(key_pem, None)
        assert isinstance(key, rsa.RSAPrivateKey)
        pairs[usage] = KeyPair(x509.load_pem_x509_certificate(cert_pem), key, usage)
    restored = EmulatorKeys(pairs["KsefTokenEncryption"], pairs["SymmetricKeyEncryption"], pairs["UpoSigning"])
    keys_module.install_keys(restored)
