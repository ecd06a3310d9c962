"""Caps on what the server may send: every body is read in chunks and refused as soon as it passes
the cap of its kind, so a hostile or broken server, proxy or presigned link cannot fill the memory.

The caps come from KSeF's own limits (``BodyLimits``); a client takes ``body_limits=`` to change
them. A request names the kind of body it expects in its ``BODY_KIND`` extension (``json`` when
it does not).

A compressed body is decoded here, not by httpx: httpx inflates a whole network chunk in one
call, and every layer of a stacked ``Content-Encoding: gzip, gzip`` in turn, so a few kilobytes
could become gigabytes before any cap is looked at. ``decoded`` takes one coding (gzip or
deflate, what ``ACCEPT_ENCODING`` asks for) and inflates at most ``PIECE`` bytes per call; a body
with stacked or other codings is refused (``ResponseFormatError``).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx

from ksef_client.errors import ResponseFormatError, ResponseTooLargeError

# A request extension: which ``BodyLimits`` field caps the answer's body.
BODY_KIND = "ksef_body_kind"


@dataclass(frozen=True)
class BodyLimits:
    """The largest body of each kind the SDK reads, in bytes (decompressed: a gzip or zip bomb is
    stopped at the cap, not after; a body with stacked content codings is refused unread).

    Attributes:
        json: any API answer that is not one of the below (JSON, error bodies): 16 MiB, far above
            KSeF's largest page.
        invoice: one invoice (``invoices.get``; each file of an export): 16 MiB. KSeF's 1 MB / 3 MB
            (with attachments) are only a context's defaults, raised on request (limity/limity.md);
            the spec lets a context's limit go up to 10 MB (``maxInvoiceWithAttachmentSizeInMB``
            of ``SetSessionLimitsRequest``), and 16 MiB stays above it even read as 10 MiB. A
            cap below a received invoice stops its export (``ExportError`` naming the invoice) until
            it is raised.
        upo: one UPO document or session UPO page (10,000 documents): 64 MiB. Parsing
            (``parse_upo``, ``validate_upo``, signature checks) reads at most 64 MiB whatever
            this says (``upo.MAX_UPO_BYTES``, the XML hardening bound): a larger cap only lets
            ``get_session_upo_xml`` download pages it could not parse.
        metadata: the ``_metadata.json`` of an export package (10,000 records): 64 MiB.
        export_entries: files in one export package: KSeF packs at most 10,000 invoices (a
            package is held to fewer, its own ``invoiceCount``, as well).
        export_package: the encrypted parts of one package together: KSeF stops at 1 GB
            compressed; 2 GiB leaves room for encryption and the metadata file.
        export_unpacked: the invoice files of one export package together, as they inflate (on
            disk): 32 GiB. KSeF stops a package at 1 GB of compressed invoices, and invoice XML
            deflates far less than 32:1; a package of many small entries that each inflate to
            the ``invoice`` cap (zeros: some 1000:1) is stopped here, before it writes past it,
            not at ``export_entries`` x ``invoice`` (160 GiB). Lower it to what the target disk
            holds.
    """

    json: int = 16 * 1024 * 1024
    invoice: int = 16 * 1024 * 1024
    upo: int = 64 * 1024 * 1024
    metadata: int = 64 * 1024 * 1024
    export_entries: int = 10_000
    export_package: int = 2 * 1024 * 1024 * 1024
    export_unpacked: int = 32 * 1024 * 1024 * 1024

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
    response._content = _joined(decoded(response), response, kind, limit, check)
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
    try:
        async for chunk in adecoded(response):
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


# What the clients send as Accept-Encoding: the codings ``decoded`` takes. (httpx would also offer
# br and zstd when their packages are installed.)
ACCEPT_ENCODING = "gzip, deflate"
# The most one call of a body's decoder inflates.
PIECE = 64 * 1024


def decoded(response: httpx.Response) -> Iterator[bytes]:
    """``response``'s body as it arrives, its content coding undone, in pieces of at most
    ``PIECE`` bytes when it is compressed (the raw chunks when it is not)."""
    if hasattr(response, "_content"):  # read already (a body given whole, as in tests)
        yield response.content
        return
    decoder = _Decoder(response)
    for chunk in response.iter_raw():
        yield from decoder.pieces(chunk)


async def adecoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """``decoded`` for an async response."""
    if hasattr(response, "_content"):
        yield response.content
        return
    decoder = _Decoder(response)
    async for chunk in response.aiter_raw():
        for piece in decoder.pieces(chunk):
            yield piece


_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class _Decoder:
    """A body's content coding (none, gzip or deflate) undone a bounded piece at a time. More
    than one coding is refused: each layer multiplies what a small body inflates to, and KSeF
    and its storage send one at most."""

    def __init__(self, response: httpx.Response) -> None:
        codings = [c.strip().lower() for c in response.headers.get_list("Content-Encoding", split_commas=True)]
        codings = [c for c in codings if c not in ("", "identity")]
        where = _where(response)
        self._where = f"{where}: " if where else ""
        if len(codings) > 1:
            raise ResponseFormatError(
                f"{self._where}a body encoded {', '.join(codings)!r}; refused unread: the SDK decodes one "
                "content coding at most (stacked codings turn a few kilobytes into gigabytes)"
            )
        self._coding = codings[0] if codings else None
        if self._coding is not None and self._coding not in _WBITS:
            raise ResponseFormatError(
                f"{self._where}a body encoded {self._coding!r}, which the SDK does not take "
                f"(it asks for {ACCEPT_ENCODING})"
            )
        self._inflater = zlib.decompressobj(_WBITS[self._coding]) if self._coding else None
        self._started = False

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """What ``data`` inflates to, at most ``PIECE`` bytes at a time."""
        if self._inflater is None:
            if data:
                yield data
            return
        while not self._inflater.eof:
            piece = self._inflate(data)
            if piece:
                yield piece
            data = self._inflater.unconsumed_tail
            if not data and len(piece) < PIECE:  # all taken in, and nothing held back
                return

    def _inflate(self, data: bytes) -> bytes:
        assert self._inflater is not None
        first, self._started = not self._started, True
        try:
            return self._inflater.decompress(data, PIECE)
        except zlib.error as error:
            if first and self._coding == "deflate":  # raw deflate, without the zlib header (as httpx takes it)
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._inflate(data)
            raise ResponseFormatError(f"{self._where}the {self._coding} body does not decode ({error})") from None
