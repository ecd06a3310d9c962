"""``ksef-mock --state FILE``: keep the emulator's state in SQLite across restarts.

The state (each component's state object, the transitions and the JWT secret: ``KSeFBackend.snapshot``)
is pickled into one row after every request that changes it, and the emulator's private keys are stored as
PEM so tokens and public keys stay valid after a restart. The file is trusted input: only load
state files you wrote yourself.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
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
