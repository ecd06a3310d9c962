"""Presigned storage: downloads (UPOs, export parts) and upload slots (batch parts).

Like KSeF's blob storage, a link needs no token and expires; the names are unguessable. A link may
name a document that is made only when someone downloads it (``LazyBlob``: a per-invoice UPO is
built and signed on its first download, not when a listing hands out its link).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ksef_client.mock.state.core import Core

LINK_TTL = dt.timedelta(hours=1)
# The headers a part upload must carry (``partUploadRequests[].headers``), as KSeF's storage, Azure
# Blob, needs for Put Blob. The guide (sesja-wsadowa.md): send "komplet nagłówków, które należy
# przesłać razem z daną częścią ... stosując dokładnie te wartości".
UPLOAD_HEADERS = {"x-ms-blob-type": "BlockBlob"}


def upload_header_error(headers: Mapping[str, str]) -> str | None:
    """Azure's error code for an upload that lacks a header of ``UPLOAD_HEADERS``
    (``MissingRequiredHeader``) or gives it another value (``InvalidHeaderValue``); ``None``: fine."""
    sent = {name.lower(): value for name, value in headers.items()}
    for name, value in UPLOAD_HEADERS.items():
        if name.lower() not in sent:
            return "MissingRequiredHeader"
        if sent[name.lower()] != value:
            return "InvalidHeaderValue"
    return None


@dataclass(frozen=True)
class LazyBlob:
    """A download made on first read: the resolver registered for ``kind`` is called with ``args``
    (plain values, so the state stays picklable)."""

    kind: str
    args: tuple[str, ...]


@dataclass
class StorageState:
    """Stored downloads (name -> bytes or what makes them, expiry) and upload slots (name ->
    session, part number)."""

    blobs: dict[str, tuple[bytes | LazyBlob, dt.datetime]] = field(default_factory=dict)
    upload_slots: dict[str, tuple[str, int]] = field(default_factory=dict)


class Storage:
    """The presigned links of one emulator."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.state = StorageState()
        self._resolvers: dict[str, Callable[..., bytes | None]] = {}

    def register(self, kind: str, resolve: Callable[..., bytes | None]) -> None:
        """How the ``LazyBlob`` links of ``kind`` are made into bytes (``None``: gone, 403)."""
        self._resolvers[kind] = resolve

    def presign(self, data: bytes | LazyBlob, until: dt.datetime | None = None) -> tuple[str, dt.datetime]:
        """Store ``data`` under a fresh unguessable name valid for an hour, or ``until`` where that
        comes first (what it links to goes then); return it and its expiry."""
        name = secrets.token_urlsafe(24)
        now = self.core.clock()
        expires = now + LINK_TTL if until is None else min(now + LINK_TTL, until)
        with self.core.lock:
            # Like KSeF, every poll hands out fresh links; expired ones are dropped now and then
            # so a long test run (or a soak) does not keep every link it ever saw.
            if len(self.state.blobs) % 1024 == 0:
                self.state.blobs = {k: v for k, v in self.state.blobs.items() if v[1] > now}
            self.state.blobs[name] = (data, expires)
        return name, expires

    def read(self, name: str) -> bytes | None:
        """The stored bytes, or ``None`` when unknown or expired (storage answers 403 then)."""
        with self.core.lock:
            found = self.state.blobs.get(name)
        if found is None or found[1] <= self.core.clock():
            return None
        data = found[0]
        return self._resolvers[data.kind](*data.args) if isinstance(data, LazyBlob) else data

    def new_upload_slot(self, session_reference_number: str, ordinal_number: int) -> str:
        """A fresh upload name for one part of a batch session."""
        name = secrets.token_urlsafe(24)
        with self.core.lock:
            self.state.upload_slots[name] = (session_reference_number, ordinal_number)
        return name

    def upload_slot(self, name: str) -> tuple[str, int] | None:
        """The session and part an upload name belongs to."""
        with self.core.lock:
            return self.state.upload_slots.get(name)
