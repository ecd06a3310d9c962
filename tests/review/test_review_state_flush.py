"""Review: an app made by ``create_app(store=...)`` and served by any ASGI server (``uvicorn
module:app``, not only ``ksef-mock``) writes the last changes before its shutdown is over; the
writer thread is a daemon, so a process that exits right after the shutdown would lose them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.persistence import SQLiteStore

WAIT = 60  # seconds; never reached when all is well


def test_the_app_s_shutdown_waits_for_the_last_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    app = create_app(KSeFBackend(workers=1), store=store)
    saving, release, flushed = threading.Event(), threading.Event(), threading.Event()
    save, flush = store.save, store.flush

    def held_save(backend: KSeFBackend) -> None:  # the writer is busy until someone waits for it
        saving.set()
        release.wait(WAIT)
        save(backend)

    def waited_for(timeout: float | None = None) -> bool:
        flushed.set()
        release.set()
        return flush(timeout)

    monkeypatch.setattr(store, "save", held_save)
    monkeypatch.setattr(store, "flush", waited_for)
    with TestClient(app) as client:
        client.post("/_mock/anything")  # any request but a GET notes a change
        assert saving.wait(WAIT)
    shutdown_waited = flushed.is_set()
    release.set()
    flush(WAIT)
    assert shutdown_waited, "the lifespan shutdown ended with the last save still pending"
