"""Public documents: the public-key certificates (``security``) and the OpenAPI spec, which KSeF
publishes at ``/docs/v2/openapi.json`` (``ksef doctor`` reads the API version from it)."""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ksef_client.mock.keys import emulator_keys
from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, iso
from ksef_client.spec_version import SPEC_PATH, pinned_spec_path


@api_endpoint("security.get_public_key_certificates")
async def get_public_key_certificates(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    items = [
        {
            "certificate": pair.der_b64, "certificateId": pair.certificate_id,
            "publicKeyId": pair.public_key_id, "validFrom": iso(pair.certificate.not_valid_before_utc),
            "validTo": iso(pair.certificate.not_valid_after_utc), "usage": [pair.usage],
        }
        for pair in emulator_keys().published
    ]  # fmt: skip
    return JSONResponse(items)


@functools.cache
def published_spec() -> bytes:
    """What the emulator publishes as its spec: the pinned one, byte for byte."""
    return pinned_spec_path().read_bytes()


async def spec_document(request: Request) -> Response:
    """``GET /docs/v2/openapi.json``: public (no token, no rate limit)."""
    return Response(published_spec(), media_type="application/json")


ROUTES = [Route(SPEC_PATH, spec_document, methods=["GET"])]
