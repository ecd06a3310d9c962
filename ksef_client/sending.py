"""Sending invoices: online sessions (one encrypted invoice per request) and batch sessions.

::

    with ksef.online_session(form="FA(3)") as session:
        session.send(xml_bytes)
    ksef.sessions.wait(session.reference_number)

    result = ksef.send_batch(paths_or_bytes, form="FA(3)", wait=True)

The request-building steps are flows (``_flows``) shared by the sync and async clients.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import httpx

from ksef_client._core import connection_error, parsed
from ksef_client._flows import Call, Flow, Sleep, arun, response_of, run
from ksef_client._generated.api.batch_session import close_batch_session, open_batch_session
from ksef_client._generated.api.online_session import close_online_session, open_online_session, send_invoice
from ksef_client._generated.api.sessions_status import get_session_status
from ksef_client._generated.models import (
    OpenBatchSessionRequest,
    OpenBatchSessionResponse,
    OpenOnlineSessionRequest,
    OpenOnlineSessionResponse,
    SendInvoiceRequest,
    SendInvoiceResponse,
    SessionInvoiceStatusResponse,
    SessionStatusResponse,
)
from ksef_client._zipstream import Compression
from ksef_client.batch import (
    MAX_PART_BYTES,
    AsyncUploadBody,
    BatchPackage,
    EncryptedPart,
    InvoiceSource,
    Progress,
    UploadBody,
)
from ksef_client.crypto import SYMMETRIC_KEY_ENCRYPTION, EncryptedInvoice, SymmetricKey, select_certificate
from ksef_client.errors import APIConnectionError, BatchError, InternalServerError, InvoiceRejectedError
from ksef_client.schemas import FormCode, InvoiceSchemaError, form_code, validate_invoice

if TYPE_CHECKING:
    from ksef_client._client import AsyncKSeF, KSeF
    from ksef_client.crypto import PublicKeyCertificate

T = TypeVar("T")
OPEN = 100
DUPLICATE = 440


def encryption_for(key: SymmetricKey, keys: list[PublicKeyCertificate]) -> dict[str, str]:
    """The ``encryption`` object: ``key`` wrapped for the current SymmetricKeyEncryption certificate."""
    certificate = select_certificate(keys, SYMMETRIC_KEY_ENCRYPTION)
    info = key.encryption_info(certificate)
    if certificate.public_key_id:
        info["publicKeyId"] = certificate.public_key_id
    return info


def open_online_flow(form: FormCode, key: SymmetricKey, keys: list[PublicKeyCertificate]) -> Flow[str]:
    """``POST /sessions/online`` -> the session's reference number."""
    body = OpenOnlineSessionRequest.from_dict({"formCode": form.to_dict(), "encryption": encryption_for(key, keys)})
    opened = parsed(response_of((yield Call(open_online_session, {"body": body}))), OpenOnlineSessionResponse)
    return opened.reference_number


def send_flow(reference_number: str, invoice: EncryptedInvoice, offline: bool) -> Flow[str]:
    """``POST /sessions/online/{ref}/invoices`` -> the invoice's reference number."""
    body = SendInvoiceRequest.from_dict(invoice.request_body(offline=offline))
    call = Call(send_invoice, {"reference_number": reference_number, "body": body})
    return parsed(response_of((yield call)), SendInvoiceResponse).reference_number


def close_online_flow(reference_number: str) -> Flow[None]:
    """``POST /sessions/online/{ref}/close``."""
    yield Call(close_online_session, {"reference_number": reference_number})


# Failures after which KSeF may or may not have acted: the request is repeated deliberately.
RESENDABLE = (APIConnectionError, InternalServerError)
RESENDS = 8  # safe: a repeated invoice is recognised by KSeF as a 440 duplicate


def _pause(attempt: int) -> Sleep:
    return Sleep(min(8.0, 0.5 * 2**attempt))


def resend_flow(reference_number: str, invoice: EncryptedInvoice, offline: bool, resends: int = RESENDS) -> Flow[str]:
    """Send an invoice; after a dropped connection or a 5xx, send the same bytes again.

    Nothing is lost and nothing is numbered twice: either KSeF never got the first request (the
    resend is the invoice) or it did, and the resend becomes a 440 duplicate naming the original
    KSeF number, which ``OnlineSession.ksef_numbers()`` resolves.
    """
    return (yield from retried_flow(lambda: send_flow(reference_number, invoice, offline), resends))


def retried_flow(flow: Callable[[], Flow[T]], resends: int = RESENDS) -> Flow[T]:
    """Run ``flow`` again after a dropped connection or a 5xx. Used where repeating is safe: sending
    an invoice (see ``resend_flow``) and opening a session (one opened by a lost attempt stays
    unused and carries no invoices)."""
    for attempt in range(resends + 1):
        try:
            return (yield from flow())
        except RESENDABLE:
            if attempt == resends:
                raise
            yield _pause(attempt)
    raise AssertionError("unreachable")


def close_tolerant_flow(
    reference_number: str, close: Callable[[str], Flow[None]], resends: int = RESENDS
) -> Flow[None]:
    """Close a session; when the answer is lost, the session's status tells whether it closed."""
    for attempt in range(resends + 1):
        try:
            yield from close(reference_number)
            return
        except RESENDABLE:
            call = Call(get_session_status, {"reference_number": reference_number})
            status = parsed(response_of((yield call)), SessionStatusResponse)
            if status.status.code != OPEN:
                return  # the close went through; only its answer was lost
            if attempt == resends:
                raise
            yield _pause(attempt)


def resolve_ksef_numbers(invoices: Iterable[SessionInvoiceStatusResponse], references: list[str]) -> list[str | None]:
    """The KSeF number of each sent invoice (by its reference number): its own, or for a 440
    duplicate the original's; ``None`` for an invoice KSeF rejected."""
    found: dict[str, str | None] = {}
    for invoice in invoices:
        number = invoice.ksef_number if isinstance(invoice.ksef_number, str) else None
        if number is None and invoice.status.code == DUPLICATE:
            extensions = invoice.status.extensions
            original = getattr(extensions, "additional_properties", {}).get("originalKsefNumber")
            number = original if isinstance(original, str) and original else None
        found[invoice.reference_number] = number
    return [found.get(reference) for reference in references]


class SupportsToXml(Protocol):
    """An invoice object (``ksef_client.invoice.Invoice``): sent as the bytes of its ``to_xml()``."""

    def to_xml(self) -> bytes: ...


def prepare_invoice(xml: bytes | SupportsToXml, form: FormCode, key: SymmetricKey, validate: bool) -> EncryptedInvoice:
    """Check (optionally against the XSD) and encrypt one invoice; ``InvoiceRejectedError`` before sending."""
    if not isinstance(xml, bytes | bytearray) and callable(getattr(xml, "to_xml", None)):
        xml = xml.to_xml()
    if not isinstance(xml, bytes | bytearray):
        raise TypeError(f"invoice: expected bytes, got {type(xml).__name__}")
    if validate:
        try:
            validate_invoice(bytes(xml), form)
        except InvoiceSchemaError as error:
            raise InvoiceRejectedError(f"invoice does not match {form.system_code}: {error}") from error
    return EncryptedInvoice.build(key, bytes(xml))


class OnlineSession:
    """An open online session (``with ksef.online_session() as s``); closes on exit."""

    def __init__(self, client: KSeF, form: str | FormCode = "FA(3)", *, validate: bool = True) -> None:
        self._client = client
        self.form = form_code(form)
        self.validate = validate
        self.reference_number: str | None = None
        self.invoice_reference_numbers: list[str] = []
        self._key = SymmetricKey.generate()

    def open(self) -> OnlineSession:
        """Open the session (``with`` does it for you)."""
        keys = self._client.auth.public_key_certificates()
        flow = retried_flow(lambda: open_online_flow(self.form, self._key, keys))
        self.reference_number = run(flow, self._client)
        return self

    def send(self, xml: bytes | SupportsToXml, *, offline: bool = False) -> str:
        """Encrypt and send one invoice (XML bytes or an ``Invoice``); returns its reference number
        (status comes later)."""
        if self.reference_number is None:
            raise RuntimeError("the session is not open")
        invoice = prepare_invoice(xml, self.form, self._key, self.validate)
        ref = run(resend_flow(self.reference_number, invoice, offline), self._client)
        self.invoice_reference_numbers.append(ref)
        return ref

    def close(self) -> None:
        """Close the session; KSeF then processes it and issues the UPO."""
        if self.reference_number is not None:
            run(close_tolerant_flow(self.reference_number, close_online_flow), self._client)

    def ksef_numbers(self) -> list[str | None]:
        """After processing: the KSeF number of each sent invoice, in sending order (``None``:
        rejected; a resent duplicate resolves to the original's number)."""
        if self.reference_number is None:
            raise RuntimeError("the session was never opened")
        invoices = self._client.sessions.invoices(self.reference_number, page_size=1000)
        return resolve_ksef_numbers(invoices, self.invoice_reference_numbers)

    def __enter__(self) -> OnlineSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOnlineSession:
    """An open online session (``async with ksef.online_session() as s``)."""

    def __init__(self, client: AsyncKSeF, form: str | FormCode = "FA(3)", *, validate: bool = True) -> None:
        self._client = client
        self.form = form_code(form)
        self.validate = validate
        self.reference_number: str | None = None
        self.invoice_reference_numbers: list[str] = []
        self._key = SymmetricKey.generate()

    async def open(self) -> AsyncOnlineSession:
        """Open the session (``async with`` does it for you)."""
        keys = await self._client.auth.public_key_certificates()
        flow = retried_flow(lambda: open_online_flow(self.form, self._key, keys))
        self.reference_number = await arun(flow, self._client)
        return self

    async def send(self, xml: bytes | SupportsToXml, *, offline: bool = False) -> str:
        """Encrypt and send one invoice (XML bytes or an ``Invoice``); returns its reference number."""
        if self.reference_number is None:
            raise RuntimeError("the session is not open")
        invoice = prepare_invoice(xml, self.form, self._key, self.validate)
        ref = await arun(resend_flow(self.reference_number, invoice, offline), self._client)
        self.invoice_reference_numbers.append(ref)
        return ref

    async def close(self) -> None:
        """Close the session."""
        if self.reference_number is not None:
            await arun(close_tolerant_flow(self.reference_number, close_online_flow), self._client)

    async def ksef_numbers(self) -> list[str | None]:
        """After processing: the KSeF number of each sent invoice (see ``OnlineSession.ksef_numbers``)."""
        if self.reference_number is None:
            raise RuntimeError("the session was never opened")
        invoices = [i async for i in self._client.sessions.invoices(self.reference_number, page_size=1000)]
        return resolve_ksef_numbers(invoices, self.invoice_reference_numbers)

    async def __aenter__(self) -> AsyncOnlineSession:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --- batch ------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """A sent batch: its session reference number and, when waited for, the final status."""

    reference_number: str
    invoice_count: int
    part_count: int
    status: SessionStatusResponse | None = None


def open_batch_flow(
    form: FormCode, package: BatchPackage, key: SymmetricKey, keys: list[PublicKeyCertificate], offline: bool
) -> Flow[OpenBatchSessionResponse]:
    """``POST /sessions/batch`` with the package's declaration."""
    body = OpenBatchSessionRequest.from_dict(
        {
            "formCode": form.to_dict(),
            "batchFile": package.batch_file_info(),
            "encryption": encryption_for(key, keys),
            "offlineMode": offline,
        }
    )
    return parsed(response_of((yield Call(open_batch_session, {"body": body}))), OpenBatchSessionResponse)


def close_batch_flow(reference_number: str) -> Flow[None]:
    """``POST /sessions/batch/{ref}/close``."""
    yield Call(close_batch_session, {"reference_number": reference_number})


def _upload_args(opened: OpenBatchSessionResponse, package: BatchPackage) -> list[tuple[Any, Any]]:
    by_number = {p.ordinal_number: p for p in package.parts}
    pairs = []
    for request in opened.part_upload_requests:
        part = by_number.get(request.ordinal_number)
        if part is None:
            raise BatchError(f"KSeF asked for part {request.ordinal_number}, which the package does not have")
        pairs.append((request, part))
    return pairs


def _headers(request: Any) -> dict[str, str]:
    raw = request.headers.to_dict() if hasattr(request.headers, "to_dict") else dict(request.headers or {})
    # Presigned URLs carry their own authorization: never send ours.
    return {str(k): str(v) for k, v in raw.items() if str(k).lower() != "authorization"}


def _upload_headers(request: Any, part: EncryptedPart) -> dict[str, str]:
    # The body streams from the part's file: its length is declared, so no chunked encoding (which
    # blob storage refuses for a single PUT).
    return {**_headers(request), "Content-Length": str(part.size)}


def _check_upload(response: httpx.Response, ordinal: int) -> None:
    if response.status_code not in (200, 201):
        raise BatchError(f"upload of part {ordinal} failed: HTTP {response.status_code} {response.text[:200]}")


def send_batch(
    client: KSeF, invoices: Iterable[InvoiceSource], *, form: str | FormCode = "FA(3)", offline: bool = False,
    wait: bool = False, timeout: float = 3600.0, part_size: int = MAX_PART_BYTES, workers: int = 4,
    progress: Progress | None = None, compression: Compression = "deflate",
) -> BatchResult:  # fmt: skip
    """Zip, encrypt and upload ``invoices`` in a batch session; close it; optionally wait.

    ``compression="stored"`` skips deflate: the build is faster (most for small invoices), the upload
    2-5x larger.
    """
    code = form_code(form)
    key = SymmetricKey.generate()
    with BatchPackage.build(invoices, key, part_size=part_size, progress=progress, compression=compression) as package:
        keys = client.auth.public_key_certificates()
        opened = run(retried_flow(lambda: open_batch_flow(code, package, key, keys, offline)), client)
        pairs = _upload_args(opened, package)
        done = 0

        def upload(pair: tuple[Any, Any]) -> None:
            request, part = pair
            try:
                response = client._storage.request(
                    request.method, request.url, content=UploadBody(part), headers=_upload_headers(request, part)
                )
            except httpx.TransportError as error:
                raise connection_error(error) from error
            _check_upload(response, part.ordinal_number)

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for _ in pool.map(upload, pairs):
                done += 1
                if progress:
                    progress("upload", done, len(pairs))
        run(close_tolerant_flow(opened.reference_number, close_batch_flow), client)
        result = BatchResult(opened.reference_number, package.invoice_count, len(package.parts))
    if wait:
        result.status = client.sessions.wait(opened.reference_number, timeout=timeout)
    return result


async def asend_batch(
    client: AsyncKSeF, invoices: Iterable[InvoiceSource], *, form: str | FormCode = "FA(3)", offline: bool = False,
    wait: bool = False, timeout: float = 3600.0, part_size: int = MAX_PART_BYTES, workers: int = 4,
    progress: Progress | None = None, compression: Compression = "deflate",
) -> BatchResult:  # fmt: skip
    """Async ``send_batch``: the package is built in a worker thread, parts upload concurrently."""
    code = form_code(form)
    key = SymmetricKey.generate()
    package = await anyio.to_thread.run_sync(
        lambda: BatchPackage.build(invoices, key, part_size=part_size, progress=progress, compression=compression)
    )
    with package:
        keys = await client.auth.public_key_certificates()
        opened = await arun(retried_flow(lambda: open_batch_flow(code, package, key, keys, offline)), client)
        pairs = _upload_args(opened, package)
        limiter = anyio.Semaphore(max(1, workers))
        done = 0

        async def upload(request: Any, part: Any) -> None:
            nonlocal done
            async with limiter:
                try:
                    response = await client._storage.request(
                        request.method,
                        request.url,
                        content=AsyncUploadBody(part),
                        headers=_upload_headers(request, part),
                    )
                except httpx.TransportError as error:
                    raise connection_error(error) from error
                _check_upload(response, part.ordinal_number)
                done += 1
                if progress:
                    progress("upload", done, len(pairs))

        async with anyio.create_task_group() as group:
            for request, part in pairs:
                group.start_soon(upload, request, part)
        await arun(close_tolerant_flow(opened.reference_number, close_batch_flow), client)
        result = BatchResult(opened.reference_number, package.invoice_count, len(package.parts))
    if wait:
        result.status = await client.sessions.wait(opened.reference_number, timeout=timeout)
    return result
