"""Endpoints: Peppol service providers known to KSeF (``peppol``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, offset_params
from ksef_client.mock.state.permissions import page_of


@api_endpoint("peppol.query_peppol_providers")
async def query_peppol_providers(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    offset, size = offset_params(request)
    items, has_more = page_of(backend.testdata.peppol_providers(), offset, size)
    return JSONResponse({"peppolProviders": items, "hasMore": has_more})
