"""Caps on what the server may send: every body is read in chunks and refused as soon as it passes
the cap of its kind, so a hostile or broken server, proxy or presigned link cannot fill the memory.

The caps come from KSeF's own limits (``BodyLimits``); a client takes ``body_limits=`` to change
them. A request names the kind of body it expects in its ``BODY_KIND`` extension (``json`` when
it does not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx

from ksef_client.errors import ResponseTooLargeError

# A request extension: which ``BodyLimits`` field caps the answer's body.
BODY_KIND = "ksef_body_kind"


@dataclass(frozen=True)
class BodyLimits:
    """The largest body of each kind the SDK reads, in bytes (decompressed: a gzip or zip bomb is
    stopped at the cap, not after).

    Attributes:
        json: any API answer that is not one of the below (JSON, error bodies): 16 MiB, far above
            KSeF's largest page.
        invoice: one invoice (``invoices.get``; each file of an export): 16 MiB. KSeF's 1 MB / 3 MB
            (with attachments) are only a context's defaults, raised on request (limity/limity.md);
            the spec lets a context's limit go up to 10 MB (``maxInvoiceWithAttachmentSizeInMB``
            of ``SetSessionLimitsRequest``), and 16 MiB stays above it even read as 10 MiB. A
            cap below a received invoice stops its export (``ExportError`` naming the invoice) until
            it is raised.
        upo: one UPO document or session UPO page (10,000 documents): 64 MiB.
        metadata: the ``_metadata.json`` of an export package (10,000 records): 64 MiB.
        export_entries: files in one export package: KSeF packs at most 10,000 invoices.
        export_package: the encrypted parts of one package together: KSeF stops at 1 GB
            compressed; 2 GiB leaves room for encryption and the metadata file.
    """

    json: int = 16 * 1024 * 1024
    invoice: int = 16 * 1024 * 1024
    upo: int = 64 * 1024 * 1024
    metadata: int = 64 * 1024 * 1024
    export_entries: int = 10_000
    export_package: int = 2 * 1024 * 1024 * 1024

    def of(self, kind: object) -> int:
        """The cap of a body kind (``json`` for an unknown one)."""
        value = getattr(self, kind, None) if isinstance(kind, str) and not kind.startswith("_") else None
        return value if isinstance(value, int) else self.json


def _where(response: httpx.Response) -> str:
    request = response._request
    return f"{request.method} {request.url.path}" if request is not None else ""


def _declared_too_large(response: httpx.Response, limit: int) -> bool:
    declared = response.headers.get("Content-Length", "")
    return (
        declared.isascii()
        and declared.isdigit()
        and int(declared) > limit
        and "Content-Encoding" not in response.headers
    )


def read_capped(response: httpx.Response, kind: str, limit: int, check: Callable[[], None] | None = None) -> bytes:
    """Read ``response``'s body (decoded), at most ``limit`` bytes; ``check`` is called after each
    chunk (the call's deadline). ``ResponseTooLargeError`` as soon as the body passes the cap."""
    if hasattr(response, "_content"):
        return response.content
    if _declared_too_large(response, limit):
        response.close()
        raise ResponseTooLargeError(kind, limit, _where(response))
    response._content = _joined(response.iter_bytes(), response, kind, limit, check)
    return response._content


async def aread_capped(
    response: httpx.Response, kind: str, limit: int, check: Callable[[], None] | None = None
) -> bytes:
    """``read_capped`` for an async response."""
    if hasattr(response, "_content"):
        return response.content
    if _declared_too_large(response, limit):
        await response.aclose()
        raise ResponseTooLargeError(kind, limit, _where(response))
    chunks: list[bytes] = []
    size = 0
    iterator: AsyncIterator[bytes] = response.aiter_bytes()
    try:
        async for chunk in iterator:
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(kind, limit, _where(response))
            chunks.append(chunk)
            if check is not None:
                check()
    except BaseException:
        await response.aclose()
        raise
    response._content = b"".join(chunks)
    return response._content


def _joined(
    chunks: Iterator[bytes], response: httpx.Response, kind: str, limit: int, check: Callable[[], None] | None
) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(kind, limit, _where(response))
            parts.append(chunk)
            if check is not None:
                check()
    except BaseException:
        response.close()
        raise
    return b"".join(parts)
