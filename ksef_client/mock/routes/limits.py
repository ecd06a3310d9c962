"""Endpoints: the limits in force (``limits``), answered from the values the emulator enforces."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint
from ksef_client.mock.state.limits import rate_limits_body


@api_endpoint("limits.get_context_limits")
async def get_context_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return JSONResponse(backend.testdata.context_limits(access.context))


@api_endpoint("limits.get_subject_limits")
async def get_subject_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return JSONResponse(backend.testdata.subject_limits(access.subject))


@api_endpoint("limits.get_rate_limits")
async def get_rate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    overrides = backend.testdata.rate_limits_of(access.context if access is not None else None)
    return JSONResponse(rate_limits_body(backend.rate_limits, overrides))
