"""The emulator's blob storage holds clients to what KSeF's (Azure Blob) takes: part uploads carry
the headers ``partUploadRequests`` gave, and neither uploads nor presigned downloads take a bearer
token."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from ksef_client import KSeF, sending
from ksef_client._generated.models import UpoResponse
from ksef_client.batch import EncryptedPart, PartUpload, part_uploads
from ksef_client.errors import BatchError
from ksef_client.mock import KSeFBackend
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice
from tests.mock.conftest import open_batch, upload, zipped


# The guide (sesja-wsadowa.md): send each part with "komplet nagłówków, które należy przesłać razem
# z daną częścią ... stosując dokładnie te wartości". Azure's Put Blob answers 400
# MissingRequiredHeader without x-ms-blob-type. The emulator handed the header out and never
# looked for it, so an SDK that dropped it passed every test.
@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "MissingRequiredHeader"), ({"x-ms-blob-type": "AppendBlob"}, "InvalidHeaderValue")],
)
def test_a_part_upload_without_the_given_headers_is_refused(
    raw: httpx.Client, headers: dict[str, str], code: str
) -> None:
    _, parts = open_batch(raw, zipped({"a.xml": sample_invoice("U/1")}))
    (request, data) = parts[0]
    assert request["headers"] == {"x-ms-blob-type": "BlockBlob"}
    answer = httpx.put(request["url"], content=data, headers=headers)
    assert answer.status_code == 400
    assert f"<Code>{code}</Code>" in answer.text
    assert upload(parts) == [201]  # with the headers as given, exactly: taken
    header_case = httpx.put(request["url"], content=data, headers={"X-MS-Blob-Type": "BlockBlob"})
    assert header_case.status_code == 201  # HTTP header names are case-insensitive


def test_an_sdk_that_drops_the_upload_headers_fails_its_batch(ksef: KSeF, monkeypatch: pytest.MonkeyPatch) -> None:
    def without_headers(requests: Iterable[Any], parts: Iterable[EncryptedPart]) -> list[PartUpload]:
        uploads = part_uploads(requests, parts)
        return [replace(u, headers={"Content-Length": u.headers["Content-Length"]}) for u in uploads]

    monkeypatch.setattr(sending, "part_uploads", without_headers)
    with pytest.raises(BatchError, match=r"MissingRequiredHeader|400"):
        ksef.send_batch([sample_invoice("U/2")], wait=True)


# Uploads refused a bearer token, presigned downloads took it: an SDK that fetched UPOs or export
# parts through its authenticated client (the access token sent to the blob host, which Azure
# refuses) passed every emulator test.
def test_a_presigned_download_refuses_a_bearer_token(ksef: KSeF, tmp_path: Path) -> None:
    with ksef.online_session() as session:
        session.send(sample_invoice("D/1"))
    status = ksef.sessions.wait(str(session.reference_number))
    assert isinstance(status.upo, UpoResponse)
    url = str(status.upo.pages[0].download_url)
    refused = httpx.get(url, headers={"Authorization": "Bearer anything"})
    assert refused.status_code == 400 and "<Code>InvalidAuthenticationInfo</Code>" in refused.text
    assert httpx.get(url).status_code == 200
    # The SDK's own downloads (a session UPO, an export's parts) carry no token.
    assert ksef.upo.get_session_upo(str(session.reference_number)).documents
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert len(ksef.invoices.export(tmp_path, date_from=since, interval=0).files) == 1


# --- faults on storage (review s10, F3) -------------------------------------------------------------


class _Waits:
    """``anyio.sleep`` as the emulator's fault delays call it, recorded and never waited: the
    request goes on at once (after a checkpoint, so other tasks run as they would meanwhile)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seconds: list[float] = []
        self._checkpoint = anyio.lowlevel.checkpoint
        monkeypatch.setattr(anyio, "sleep", self.sleep)

    async def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)
        await self._checkpoint()


def test_a_storage_fault_below_400_with_a_delay_is_a_slow_but_correct_upload(
    ksef: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faults.add: "200 with delay a slow but correct answer". On storage every rule but DROP_AFTER
    # answered at once with <Error><Code>ServerBusy</Code></Error> and that status, so a 200 left
    # the part unstored: the client took the 200 for an upload, and the close got 21205 ("Nie
    # przesłano zadeklarowanej '1' części") at once instead of after a slow upload.
    waits = _Waits(monkeypatch)
    backend.faults.add(200, operation="storage.upload_part", delay=3)
    result = ksef.send_batch([sample_invoice("SF/1"), sample_invoice("SF/2")], wait=True)
    assert result.status is not None and result.status.successful_invoice_count == 2
    assert waits.seconds == [3]


def test_storage_faults_wait_their_delay_before_answering(
    ksef: KSeF, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ksef.online_session() as session:
        session.send(sample_invoice("SF/3"))
    status = ksef.sessions.wait(str(session.reference_number))
    assert isinstance(status.upo, UpoResponse)
    url = str(status.upo.pages[0].download_url)
    waits = _Waits(monkeypatch)
    backend.faults.add(200, operation="storage.download", delay=2)  # slow, and the UPO itself
    slow = httpx.get(url)
    assert slow.status_code == 200 and b"<Error>" not in slow.content and slow.content == httpx.get(url).content
    backend.faults.add(503, operation="storage.download", delay=1.5)  # slow, then the error
    busy = httpx.get(url)
    assert busy.status_code == 503 and "<Code>ServerBusy</Code>" in busy.text
    backend.faults.add(DROP_AFTER, operation="storage.download", delay=0.5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url)
    assert waits.seconds == [2, 1.5, 0.5]


class _ServerLog(logging.Handler):
    """The records of uvicorn's error logger and the emulator's (INFO up); ``settled`` is set by
    the first that tells how a request ended: an ERROR, or the emulator's "hung up" line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.settled = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.levelno >= logging.ERROR or "hung up" in record.getMessage():
            self.settled.set()


# Review s14-async, 4. A client that gave up during a fault's delay (a cancelled upload: the "slow
# upload" docs/testing-with-the-emulator.md suggests for testing cancellation) made the emulator
# log "ERROR: Exception in ASGI application" with a 40-line ClientDisconnect traceback, the
# emulator seemingly crashing where the test did just what it meant to.
@pytest.mark.parametrize(
    ("operation", "head"),
    [
        ("storage.upload_part", b"PUT /_upload/any-part HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\n"),
        ("online_session.send_invoice", b"POST /v2/sessions/online/any/invoices HTTP/1.1\r\n"
                                        b"content-type: application/json\r\n"),
    ],
)  # fmt: skip
def test_a_client_that_hangs_up_during_a_delay_is_no_server_error(
    ksef_server: ThreadedServer, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch, operation: str, head: bytes
) -> None:
    waiting, hung_up = threading.Event(), threading.Event()

    async def delay(seconds: float) -> None:  # the fault's delay lasts until the client is gone
        waiting.set()
        await anyio.to_thread.run_sync(hung_up.wait, 10)

    monkeypatch.setattr(anyio, "sleep", delay)
    backend.faults.add(200, operation=operation, delay=5)
    server_log = _ServerLog()
    loggers = [logging.getLogger("uvicorn.error"), logging.getLogger("ksef_client.mock")]
    level = loggers[1].level
    loggers[1].setLevel(logging.INFO)
    for logger in loggers:
        logger.addHandler(server_log)
    try:
        host = f"{ksef_server.host}:{ksef_server.port}".encode()
        with socket.create_connection((ksef_server.host, ksef_server.port)) as connection:
            connection.sendall(head + b"host: " + host + b"\r\ncontent-length: 1000\r\n\r\n" + b"x" * 10)
            assert waiting.wait(10)  # the request is in its delay, its body not all sent
        hung_up.set()
        assert server_log.settled.wait(10)
    finally:
        for logger in loggers:
            logger.removeHandler(server_log)
        loggers[1].setLevel(level)
    assert [r.getMessage() for r in server_log.records if r.levelno >= logging.WARNING] == []
    assert [r.getMessage() for r in server_log.records if "hung up" in r.getMessage()]
