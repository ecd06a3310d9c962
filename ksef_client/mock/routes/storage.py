"""The emulator's blob storage (outside ``/v2``, no token, not rate-limited, like KSeF's): presigned
downloads of UPOs and export parts, and uploads of batch parts."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ksef_client.crypto import sha256_b64
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.faults import DROP, DROP_AFTER, Fault
from ksef_client.mock.responses import BrokenResponse, backend_of, hung_up, read_body, wait_out, xml_response
from ksef_client.mock.state.storage import upload_header_error

STORAGE_DOWNLOAD = "storage.download"  # the fault rules' name for presigned downloads
UPLOAD_PART = "storage.upload_part"  # the fault rules' name for part uploads
MAX_PART_UPLOAD = 100_000_016


def _xml_error(code: str, status: int) -> Response:
    return Response(f"<Error><Code>{code}</Code></Error>".encode(), status, media_type="application/xml")


async def storage_fault(request: Request, operation: str) -> tuple[Fault | None, Response | None]:
    """A storage request's fault (explicit rules only: storage errors are not KSeF's), taken and
    its ``delay`` waited out (``wait_out``: the server answers other requests meanwhile), and the
    answer that replaces the work: a connection broken off before the request is handled (``DROP``)
    or an Azure-like error (status 400 and above). ``None`` instead: the work is done, as for a
    status below 400 (200 with a ``delay``: a slow but correct answer) and ``DROP_AFTER`` (after
    which the answer is lost)."""
    fault = backend_of(request).faults.take(operation, seeded=False)
    if fault is None:
        return None, None
    await wait_out(fault)
    if fault.status == DROP:
        return fault, BrokenResponse()
    if fault.status >= 400:
        return fault, _xml_error("ServerBusy", fault.status)
    return fault, None


def _carries_a_bearer_token(request: Request) -> bool:
    # KSeF's storage rejects requests that carry a bearer token it cannot use: a presigned link
    # carries its own authorization, and a client that sends its access token there leaks it.
    return bool(request.headers.get("authorization"))


async def download(request: Request) -> Response:
    """Presigned downloads: 403 once the link has expired, 400 with a bearer token."""
    if _carries_a_bearer_token(request):
        return _xml_error("InvalidAuthenticationInfo", 400)
    fault, instead = await storage_fault(request, STORAGE_DOWNLOAD)
    if instead is not None:
        return instead
    backend = backend_of(request)
    data = backend.storage.read(request.path_params["name"])
    if data is None:
        return Response(b"AuthenticationFailed", status_code=403, media_type="application/xml")
    if fault is not None and fault.status == DROP_AFTER:  # the body breaks off after its first bytes
        return BrokenResponse()
    response = xml_response(data)
    if backend.faults.corrupt_downloads:
        response.headers["x-ms-meta-hash"] = sha256_b64(data + b"!")
    return response


async def upload_part(request: Request) -> Response:
    """PUT of one encrypted part: 201, or 403 once the window closed, 400 without the headers
    ``partUploadRequests`` gave (Azure-like XML error bodies)."""
    if _carries_a_bearer_token(request):
        return _xml_error("InvalidAuthenticationInfo", 400)
    fault, instead = await storage_fault(request, UPLOAD_PART)
    if instead is not None:
        return instead
    if (error := upload_header_error(request.headers)) is not None:
        return _xml_error(error, 400)  # as Azure's Put Blob answers without x-ms-blob-type
    data = await _part(request)
    if isinstance(data, Response):
        return data
    if not backend_of(request).sessions.upload_part(request.path_params["name"], data):
        return _xml_error("AuthenticationFailed", 403)
    # DROP_AFTER: the part is stored, the client never hears of it.
    return BrokenResponse() if fault is not None and fault.status == DROP_AFTER else Response(status_code=201)


async def _part(request: Request) -> bytes | Response:
    """The part's bytes, or the answer instead: 413 for one too large, ``hung_up`` when the client
    gave up before it arrived whole (during a fault's delay: a cancelled upload; nothing stored)."""
    try:
        return await read_body(request, MAX_PART_UPLOAD)
    except MockAPIError:
        return _xml_error("RequestBodyTooLarge", 413)  # as Azure's blob storage answers
    except ClientDisconnect:
        return hung_up(request)


def upload_url(request: Request, name: str) -> str:
    """Absolute part upload URL on the called host (no token needed, like KSeF's blob storage)."""
    return str(request.base_url).rstrip("/") + f"/_upload/{name}"


ROUTES = [
    Route("/_storage/{name}", download, methods=["GET"]),
    Route("/_upload/{name}", upload_part, methods=["PUT"]),
]
