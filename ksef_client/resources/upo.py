"""``ksef.upo``: download UPOs (presigned link first, API endpoint otherwise), verify and parse them."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx

from ksef_client._core import link_usable
from ksef_client._generated.api.sessions_status import (
    get_invoice_upo_by_ksef_number,
    get_invoice_upo_by_reference_number,
    get_session_upo,
)
from ksef_client._generated.models import SessionInvoiceStatusResponse, SessionStatusResponse, UpoPageResponse
from ksef_client._generated.types import Response
from ksef_client.errors import UPONotAvailableError
from ksef_client.identifiers import validate_ksef_number, validate_reference_number
from ksef_client.upo import SessionUpo, Upo, parse_upo, save_upo, verify_hash

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF

HASH_HEADER = "x-ms-meta-hash"


def _checked(content: bytes, headers: httpx.Headers | dict[str, str]) -> Upo:
    verify_hash(content, headers.get(HASH_HEADER))
    return parse_upo(content)


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


def _from_api(response: Response[object]) -> Upo:
    return _checked(response.content, dict(response.headers))


class Upos:
    """UPO downloads. Every UPO is hash-checked against ``x-ms-meta-hash`` and parsed."""

    def __init__(self, client: KSeF) -> None:
        self._client = client

    def get_invoice_upo(
        self, reference_number: str, *, ksef_number: str | None = None, invoice_reference_number: str | None = None
    ) -> Upo:
        """The UPO of one invoice of a session, by its KSeF number or its reference number."""
        validate_reference_number(reference_number)
        _one_of(ksef_number, invoice_reference_number)
        raw = self._client.raw
        if invoice_reference_number is not None:
            invoice = self._client.sessions.invoice(reference_number, invoice_reference_number)
            if link_usable(invoice.upo_download_url, invoice.upo_download_url_expiration_date, _now()):
                return _checked(*self._client._download(str(invoice.upo_download_url)))
            call = lambda: get_invoice_upo_by_reference_number.sync_detailed(  # noqa: E731
                reference_number, invoice_reference_number, client=raw
            )
        else:
            number = str(ksef_number)
            call = lambda: get_invoice_upo_by_ksef_number.sync_detailed(reference_number, number, client=raw)  # noqa: E731
        return _from_api(self._client._send(call))

    def get_session_upo(self, reference_number: str) -> SessionUpo:
        """Every page of a processed session's UPO, in page order."""
        return SessionUpo(tuple(upo for _, upo in self._session_pages(reference_number)))

    def save_session_upo(self, reference_number: str, directory: Path) -> list[Path]:
        """Download every page of a session's UPO into ``directory`` (``<upo page ref>.xml``)."""
        return [save_upo(upo.xml, Path(directory), ref) for ref, upo in self._session_pages(reference_number)]

    def save_invoice_upos(self, reference_number: str, directory: Path, *, concurrency: int = 8) -> list[Path]:
        """Save the UPO of every accepted invoice of a session as ``<KSeF number>.xml``,
        downloading at most ``concurrency`` at a time; returns the paths in sending order."""
        validate_reference_number(reference_number)
        _check_concurrency(concurrency)
        accepted = [i for i in self._client.sessions.invoices(reference_number) if isinstance(i.ksef_number, str)]

        def save(invoice: SessionInvoiceStatusResponse) -> Path:
            number = str(invoice.ksef_number)
            if link_usable(invoice.upo_download_url, invoice.upo_download_url_expiration_date, _now()):
                upo = _checked(*self._client._download(str(invoice.upo_download_url)))
            else:
                upo = self.get_invoice_upo(reference_number, ksef_number=number)
            return save_upo(upo.xml, Path(directory), number)

        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(save, accepted))

    def _session_pages(self, reference_number: str) -> list[tuple[str, Upo]]:
        pages = _upo_pages(self._client.sessions.get(reference_number), reference_number)
        found = []
        for page in pages:
            if link_usable(page.download_url, page.download_url_expiration_date, _now()):
                upo = _checked(*self._client._download(page.download_url))
            else:
                ref = page.reference_number
                call = lambda r=ref: get_session_upo.sync_detailed(reference_number, r, client=self._client.raw)  # noqa: E731
                upo = _from_api(self._client._send(call))
            found.append((page.reference_number, upo))
        return found


class AsyncUpos:
    """UPO downloads (async). Every UPO is hash-checked against ``x-ms-meta-hash`` and parsed."""

    def __init__(self, client: AsyncKSeF) -> None:
        self._client = client

    async def get_invoice_upo(
        self, reference_number: str, *, ksef_number: str | None = None, invoice_reference_number: str | None = None
    ) -> Upo:
        """The UPO of one invoice of a session, by its KSeF number or its reference number."""
        validate_reference_number(reference_number)
        _one_of(ksef_number, invoice_reference_number)
        raw = self._client.raw
        if invoice_reference_number is not None:
            invoice = await self._client.sessions.invoice(reference_number, invoice_reference_number)
            if link_usable(invoice.upo_download_url, invoice.upo_download_url_expiration_date, _now()):
                return _checked(*await self._client._download(str(invoice.upo_download_url)))
            call = lambda: get_invoice_upo_by_reference_number.asyncio_detailed(  # noqa: E731
                reference_number, invoice_reference_number, client=raw
            )
        else:
            number = str(ksef_number)
            call = lambda: get_invoice_upo_by_ksef_number.asyncio_detailed(reference_number, number, client=raw)  # noqa: E731
        return _from_api(await self._client._send(call))

    async def get_session_upo(self, reference_number: str) -> SessionUpo:
        """Every page of a processed session's UPO, in page order."""
        return SessionUpo(tuple(upo for _, upo in await self._session_pages(reference_number)))

    async def save_session_upo(self, reference_number: str, directory: Path) -> list[Path]:
        """Download every page of a session's UPO into ``directory`` (``<upo page ref>.xml``)."""
        pages = await self._session_pages(reference_number)
        return [save_upo(upo.xml, Path(directory), ref) for ref, upo in pages]

    async def _session_pages(self, reference_number: str) -> list[tuple[str, Upo]]:
        pages = _upo_pages(await self._client.sessions.get(reference_number), reference_number)
        found = []
        for page in pages:
            if link_usable(page.download_url, page.download_url_expiration_date, _now()):
                upo = _checked(*await self._client._download(page.download_url))
            else:
                ref = page.reference_number
                call = lambda r=ref: get_session_upo.asyncio_detailed(reference_number, r, client=self._client.raw)  # noqa: E731
                upo = _from_api(await self._client._send(call))
            found.append((page.reference_number, upo))
        return found

    async def save_invoice_upos(self, reference_number: str, directory: Path, *, concurrency: int = 8) -> list[Path]:
        """Save the UPO of every accepted invoice as ``<KSeF number>.xml``, ``concurrency`` at a time."""
        validate_reference_number(reference_number)
        _check_concurrency(concurrency)
        accepted = [i async for i in self._client.sessions.invoices(reference_number) if isinstance(i.ksef_number, str)]
        paths: list[Path | None] = [None] * len(accepted)
        limiter = anyio.Semaphore(concurrency)

        async def save(index: int, invoice: SessionInvoiceStatusResponse) -> None:
            async with limiter:
                number = str(invoice.ksef_number)
                if link_usable(invoice.upo_download_url, invoice.upo_download_url_expiration_date, _now()):
                    upo = _checked(*await self._client._download(str(invoice.upo_download_url)))
                else:
                    upo = await self.get_invoice_upo(reference_number, ksef_number=number)
                paths[index] = save_upo(upo.xml, Path(directory), number)

        async with anyio.create_task_group() as group:
            for index, invoice in enumerate(accepted):
                group.start_soon(save, index, invoice)
        return [p for p in paths if p is not None]


def _check_concurrency(concurrency: int) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
        raise ValueError(f"concurrency: {concurrency!r} is not 1..64")
