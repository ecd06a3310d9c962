"""``ksef.upo``: download UPOs (presigned link first, API endpoint otherwise), verify and parse them."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ksef_client._core import parsed
from ksef_client._flows import Call, ClientSettings, Download, Flow, all_items, arun, blocking, response_of, run
from ksef_client._generated.api.sessions_status import (
    get_invoice_upo_by_ksef_number,
    get_invoice_upo_by_reference_number,
    get_session_invoice_status,
    get_session_status,
    get_session_upo,
)
from ksef_client._generated.models import SessionInvoiceStatusResponse, SessionStatusResponse, UpoPageResponse
from ksef_client._generated.types import Response
from ksef_client._paths import checked_files, checked_name
from ksef_client._storage import link_usable
from ksef_client.errors import UPONotAvailableError
from ksef_client.identifiers import validate_ksef_number, validate_reference_number
from ksef_client.resources.sessions import invoices_pages
from ksef_client.upo import (
    HASH_HEADER,
    SessionUpo,
    Upo,
    check_invoice_upo,
    parse_upo,
    read_upo_header,
    save_upo,
    session_page_order,
    verify_hash,
)

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF


# UPO bytes from which AsyncKSeF parses in a worker thread: about a millisecond of parsing here
# (parse_upo reads some 100 MB/s), against ~0.1 ms for the trip to a thread and back; a session
# of 10,000 invoices has a 5 MB UPO.
LARGE_UPO = 100_000


def hash_checked(content: bytes, headers: Mapping[str, str], what: str) -> Flow[None]:
    """``verify_hash`` of a download (``what`` names it) against its ``x-ms-meta-hash``, with the
    client's ``require_hash`` (a missing header: a WARNING, or ``HashMissingError``)."""
    settings = yield ClientSettings()
    verify_hash(content, headers.get(HASH_HEADER), what, required=settings.require_hash)


def _checked(content: bytes, headers: Mapping[str, str], reference_number: str, ksef_number: str | None) -> Flow[Upo]:
    """An invoice's UPO: hash-checked, parsed, and of that session and invoice (a storage host may
    answer with another genuine UPO and its own hash: ``UPOMismatchError``)."""
    invoice = f", invoice {ksef_number}" if ksef_number else ""
    yield from hash_checked(content, headers, f"UPO of session {reference_number}{invoice}")
    return check_invoice_upo(parse_upo(content), reference_number, ksef_number)


def _one_of(ksef_number: str | None, invoice_reference_number: str | None) -> None:
    if (ksef_number is None) == (invoice_reference_number is None):
        raise ValueError("give exactly one of ksef_number= or invoice_reference_number=")
    if ksef_number is not None:
        validate_ksef_number(ksef_number)
    if invoice_reference_number is not None:
        validate_reference_number(invoice_reference_number, "invoice_reference_number")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _upo_pages(status: SessionStatusResponse, reference_number: str) -> list[UpoPageResponse]:
    pages = status.upo.pages if status.upo else None
    if not pages:
        raise UPONotAvailableError(f"session {reference_number} has no UPO (status {status.status.code})")
    return pages


def _from_api(response: Response[object], reference_number: str, ksef_number: str | None) -> Flow[Upo]:
    return (yield from _checked(response.content, response.headers, reference_number, ksef_number))


def _invoice_upo_flow(
    reference_number: str, ksef_number: str | None, invoice_reference_number: str | None
) -> Flow[Upo]:
    """One invoice's UPO: by KSeF number from the API; by invoice reference, from the presigned link
    of its status while that link lives, else from the API."""
    validate_reference_number(reference_number)
    _one_of(ksef_number, invoice_reference_number)
    if invoice_reference_number is None:
        args = {"reference_number": reference_number, "ksef_number": str(ksef_number)}
        response = response_of((yield Call(get_invoice_upo_by_ksef_number, args, body="upo")))
        return (yield from _from_api(response, reference_number, ksef_number))
    args = {"reference_number": reference_number, "invoice_reference_number": invoice_reference_number}
    invoice = parsed(response_of((yield Call(get_session_invoice_status, args))), SessionInvoiceStatusResponse)
    number = invoice.ksef_number if isinstance(invoice.ksef_number, str) else None
    if link_usable(invoice.upo_download_url, invoice.upo_download_url_expiration_date, _now()):
        content, headers = yield Download(str(invoice.upo_download_url))
        return (yield from _checked(content, headers, reference_number, number))
    response = response_of((yield Call(get_invoice_upo_by_reference_number, args, body="upo")))
    return (yield from _from_api(response, reference_number, number))


def _session_page_bytes_flow(reference_number: str) -> Flow[list[tuple[str, bytes]]]:
    """``(UPO page reference, XML)`` of every page of a processed session, in page order, each
    checked against its ``x-ms-meta-hash`` (not parsed)."""
    validate_reference_number(reference_number)
    status = parsed(
        response_of((yield Call(get_session_status, {"reference_number": reference_number}))), SessionStatusResponse
    )
    found = []
    for page in _upo_pages(status, reference_number):
        if link_usable(page.download_url, page.download_url_expiration_date, _now()):
            content, headers = yield Download(page.download_url)
        else:
            args = {"reference_number": reference_number, "upo_reference_number": page.reference_number}
            response = response_of((yield Call(get_session_upo, args, body="upo")))
            content, headers = response.content, dict(response.headers)
        what = f"UPO page {page.reference_number} of session {reference_number}"
        yield from hash_checked(content, headers, what)
        found.append((page.reference_number, content))
    return found


def _parse_pages(pages: list[tuple[str, bytes]]) -> list[tuple[str, Upo]]:
    return [(ref, parse_upo(content)) for ref, content in pages]


def _session_xml_flow(reference_number: str) -> Flow[tuple[bytes, ...]]:
    """The XML of every page, in page order, each checked to be a page of that session, once, their
    document ranges following each other (each header read: ``read_upo_header``), not parsed: how
    many documents a page holds is checked when it is (``parse_upo``)."""
    pages = yield from _session_page_bytes_flow(reference_number)
    order = session_page_order(reference_number, [read_upo_header(content) for _, content in pages])
    return tuple(pages[place][1] for place in order)


def _session_pages_flow(reference_number: str) -> Flow[list[tuple[str, Upo]]]:
    """``(UPO page reference, UPO)`` of every page of a processed session, in page order (a page of
    another session, one twice, or ranges that do not cover the session's documents once each are
    ``UPOMismatchError``; a page with another number of documents than its range names,
    ``UPOValidationError``). Large pages are parsed in a
    ``Blocking`` step (a 10,000-invoice page takes some 50-200 ms, which ``AsyncKSeF`` spends in
    a worker thread, not on the event loop)."""
    content = yield from _session_page_bytes_flow(reference_number)
    if sum(len(xml) for _, xml in content) < LARGE_UPO:
        pages = _parse_pages(content)
    else:
        pages = yield from blocking(_parse_pages, content)
    headers = [(upo.session_reference_number, upo.page_info) for _, upo in pages]
    order = session_page_order(reference_number, headers, [len(upo.documents) for _, upo in pages])
    return [pages[place] for place in order]


def _session_upo_flow(reference_number: str) -> Flow[SessionUpo]:
    return SessionUpo(tuple(upo for _, upo in (yield from _session_pages_flow(reference_number))))


def _save_session_upo_flow(reference_number: str, directory: Path) -> Flow[list[Path]]:
    """Every page saved as ``<page reference number>.xml``; the names come from the server, so
    all are checked (format, inside ``directory``) before the first file is written."""
    pages = yield from _session_pages_flow(reference_number)
    checked_files(Path(directory), [ref for ref, _ in pages], "reference number")
    return [save_upo(upo.xml, Path(directory), ref) for ref, upo in pages]


def _accepted_flow(reference_number: str, concurrency: int) -> Flow[list[SessionInvoiceStatusResponse]]:
    """The session's invoices that got a KSeF number (``concurrency``: checked for the caller)."""
    _check_concurrency(concurrency)
    invoices = yield from all_items(invoices_pages(reference_number, False, 100))
    # Each once: a listing may name an invoice twice (a broken server, offset pages that shifted).
    accepted = list({i.ksef_number: i for i in invoices if isinstance(i.ksef_number, str)}.values())
    for invoice in accepted:  # each becomes a file name: all checked before anything is written
        checked_name(invoice.ksef_number, "KSeF number")
    return accepted


def _save_invoice_upo_flow(reference_number: str, invoice: SessionInvoiceStatusResponse, directory: Path) -> Flow[Path]:
    """Save one accepted invoice's UPO as ``<KSeF number>.xml`` (its presigned link while it lives)."""
    number = str(invoice.ksef_number)
    if link_usable(invoice.upo_download_url, invoice.upo_download_url_expiration_date, _now()):
        content, headers = yield Download(str(invoice.upo_download_url))
        upo = yield from _checked(content, headers, reference_number, number)
    else:
        upo = yield from _invoice_upo_flow(reference_number, number, None)
    return save_upo(upo.xml, Path(directory), number)


class Upos:
    """UPO downloads. Every UPO is hash-checked against ``x-ms-meta-hash`` and parsed (but for
    ``get_session_upo_xml``, which hands out the checked bytes)."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def get_invoice_upo(
        self, reference_number: str, *, ksef_number: str | None = None, invoice_reference_number: str | None = None
    ) -> Upo:
        """The UPO of one invoice of a session, by its KSeF number or its reference number."""
        return run(_invoice_upo_flow(reference_number, ksef_number, invoice_reference_number), self._client)

    def get_session_upo(self, reference_number: str) -> SessionUpo:
        """Every page of a processed session's UPO, in page order."""
        return run(_session_upo_flow(reference_number), self._client)

    def get_session_upo_xml(self, reference_number: str) -> tuple[bytes, ...]:
        """The XML of every page of a processed session's UPO, in page order, hash-checked but not
        parsed (to archive as received; ``parse_upo`` reads a page later)."""
        return run(_session_xml_flow(reference_number), self._client)

    def save_session_upo(self, reference_number: str, directory: Path) -> list[Path]:
        """Download every page of a session's UPO into ``directory`` (``<upo page ref>.xml``)."""
        return run(_save_session_upo_flow(reference_number, directory), self._client)

    def save_invoice_upos(self, reference_number: str, directory: Path, *, concurrency: int = 8) -> list[Path]:
        """Save the UPO of every accepted invoice of a session as ``<KSeF number>.xml``,
        downloading at most ``concurrency`` at a time; returns the paths in sending order. After a
        failed download no other starts (those under way finish); the first failure in sending
        order is raised."""
        accepted = run(_accepted_flow(reference_number, concurrency), self._client)
        saves, failed = _Saves(len(accepted)), threading.Event()

        def save(index: int, invoice: SessionInvoiceStatusResponse) -> None:
            # Was: pool.map, which stops only when it reaches a failure in sending order: while it
            # waited for a slow download, the other threads went on starting every download left.
            if failed.is_set():
                return
            try:
                saves.paths[index] = run(_save_invoice_upo_flow(reference_number, invoice, directory), self._client)
            except Exception as error:  # raised below, once the others ended
                saves.failures[index] = error
                failed.set()

        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            try:
                for future in [pool.submit(save, index, invoice) for index, invoice in enumerate(accepted)]:
                    future.result()
            except BaseException:  # KeyboardInterrupt while waiting: start nothing more either
                failed.set()
                raise
        return saves.result()


class AsyncUpos:
    """UPO downloads (async). Every UPO is hash-checked against ``x-ms-meta-hash`` and parsed."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def get_invoice_upo(
        self, reference_number: str, *, ksef_number: str | None = None, invoice_reference_number: str | None = None
    ) -> Upo:
        """The UPO of one invoice of a session, by its KSeF number or its reference number."""
        return await arun(_invoice_upo_flow(reference_number, ksef_number, invoice_reference_number), self._client)

    async def get_session_upo(self, reference_number: str) -> SessionUpo:
        """Every page of a processed session's UPO, in page order."""
        return await arun(_session_upo_flow(reference_number), self._client)

    async def get_session_upo_xml(self, reference_number: str) -> tuple[bytes, ...]:
        """The XML of every page of a processed session's UPO, hash-checked but not parsed."""
        return await arun(_session_xml_flow(reference_number), self._client)

    async def save_session_upo(self, reference_number: str, directory: Path) -> list[Path]:
        """Download every page of a session's UPO into ``directory`` (``<upo page ref>.xml``)."""
        return await arun(_save_session_upo_flow(reference_number, directory), self._client)

    async def save_invoice_upos(self, reference_number: str, directory: Path, *, concurrency: int = 8) -> list[Path]:
        """Save the UPO of every accepted invoice as ``<KSeF number>.xml``, ``concurrency`` at a time
        (a failure: as ``Upos.save_invoice_upos``, the error itself)."""
        accepted = await arun(_accepted_flow(reference_number, concurrency), self._client)
        saves = _Saves(len(accepted))
        limiter, failed = anyio.Semaphore(concurrency), anyio.Event()

        async def save(index: int, invoice: SessionInvoiceStatusResponse) -> None:
            # As the sync client's pool: after a failure no further download starts, those under
            # way finish (and write their files), and the failure raised is the first in sending
            # order, the error itself (was: the task group's ExceptionGroup, which `except
            # KSeFError` does not catch, and the downloads under way cancelled).
            async with limiter:
                if failed.is_set():
                    return
                try:
                    flow = _save_invoice_upo_flow(reference_number, invoice, directory)
                    saves.paths[index] = await arun(flow, self._client)
                except Exception as error:  # raised below, once the others ended
                    saves.failures[index] = error
                    failed.set()

        async with anyio.create_task_group() as group:
            for index, invoice in enumerate(accepted):
                group.start_soon(save, index, invoice)
        return saves.result()


class _Saves:
    """What each download of ``save_invoice_upos`` came to, in sending order: its file or its
    failure (neither: not started, after another failed)."""

    def __init__(self, count: int) -> None:
        self.paths: list[Path | None] = [None] * count
        self.failures: list[Exception | None] = [None] * count

    def result(self) -> list[Path]:
        """The files, or the first failure in sending order raised (the error itself)."""
        first = next((error for error in self.failures if error is not None), None)
        if first is not None:
            raise first
        return [path for path in self.paths if path is not None]


def _check_concurrency(concurrency: int) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
        raise ValueError(f"concurrency: {concurrency!r} is not 1..64")
