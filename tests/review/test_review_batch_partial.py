"""Review: a worker that dies on a later chunk of a batch package must not leave the session's
earlier invoices numbered while the session itself ends 500."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ksef_client.mock import KSeFBackend
from ksef_client.mock import workers as workers_module
from ksef_client.mock.state import invoice_checks
from tests.mock.test_batch_workers import _batch, _package


def _crash_on_the_second_chunk(form_code: str, xmls: list[bytes]) -> list[Any]:
    if any(b"FV/W/9<" in xml or b"FV/W/EARLIER" in xml for xml in xmls):
        os._exit(70)
    return invoice_checks.check_files(form_code, xmls)


def test_a_worker_dying_on_a_later_chunk_leaves_no_invoice_numbered_in_a_failed_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers_module, "CHUNK_INVOICES", 3)
    backend = KSeFBackend(workers=2)
    backend.batch_workers.threshold = 2
    try:
        with monkeypatch.context() as crashing:
            crashing.setattr(invoice_checks, "check_files", _crash_on_the_second_chunk)
            session = _batch(backend, _package(), monkeypatch)
        assert session.status.code == 500
        numbered = [i.ksef_number for i in session.invoices if i.ksef_number]
        assert numbered == [], f"session 500, yet {len(numbered)} of its invoices numbered"
    finally:
        backend.close()
