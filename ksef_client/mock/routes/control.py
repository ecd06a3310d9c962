"""``/_mock/*``: the emulator's control endpoints (outside ``/v2``, never part of KSeF's API).

For tests that talk to a running ``ksef-mock`` over HTTP rather than through ``KSeFBackend``:

- ``POST /_mock/reset``: forget everything.
- ``POST /_mock/tokens`` ``{"nip": "...", "permissions": [...], "ttlSeconds": 900}``: an access
  token without the auth flow.
- ``POST /_mock/faults`` ``{"status": 503, "operation": "sessions_status.get_session_status",
  "times": 2, "retryAfter": 1, "delay": 0}`` or ``{"random": {"rate": 0.1, "seed": 7}}``;
  ``DELETE /_mock/faults``.
- ``POST /_mock/transitions`` ``{"sessionReads": 2, "authReads": 1}``: statuses advance after N reads.
- ``POST /_mock/rate-limits`` ``{"scale": 1.0}``: KSeF's limits times ``scale`` (0: off).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ksef_client._throttle import Throttle
from ksef_client.mock.models import ALL_PERMISSIONS, Context
from ksef_client.mock.responses import backend_of


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


async def reset(request: Request) -> Response:
    backend_of(request).reset()
    return JSONResponse({"reset": True})


async def mint_token(request: Request) -> Response:
    body = await _body(request)
    backend = backend_of(request)
    context = body.get("context")
    try:
        token = backend.mint_access_token(
            body.get("nip"),
            context=Context(str(context["type"]), str(context["value"])) if isinstance(context, dict) else None,
            permissions=body.get("permissions") or ALL_PERMISSIONS,
            ttl=dt.timedelta(seconds=int(body.get("ttlSeconds", 900))),
        )
    except (ValueError, KeyError, TypeError) as error:
        return _bad(str(error))
    return JSONResponse({"accessToken": token})


async def add_faults(request: Request) -> Response:
    body = await _body(request)
    faults = backend_of(request).faults
    try:
        if isinstance(body.get("random"), dict):
            rate, seed = float(body["random"]["rate"]), int(body["random"].get("seed", 0))
            faults.set_random(rate, seed=seed)
        else:
            faults.add(
                int(body["status"]), operation=body.get("operation"), times=int(body.get("times", 1)),
                retry_after=body.get("retryAfter"), delay=float(body.get("delay", 0.0)),
            )  # fmt: skip
    except (ValueError, KeyError, TypeError) as error:
        return _bad(f"fault: {error}")
    return JSONResponse({"ok": True})


async def clear_faults(request: Request) -> Response:
    backend_of(request).faults.clear()
    return Response(status_code=204)


async def set_transitions(request: Request) -> Response:
    body = await _body(request)
    transitions = backend_of(request).transitions
    transitions.session_reads = int(body.get("sessionReads", transitions.session_reads))
    transitions.auth_reads = int(body.get("authReads", transitions.auth_reads))
    return JSONResponse({"sessionReads": transitions.session_reads, "authReads": transitions.auth_reads})


async def set_rate_limits(request: Request) -> Response:
    body = await _body(request)
    backend = backend_of(request)
    try:
        backend.rate_limits = Throttle(scale=float(body["scale"]))
    except (ValueError, KeyError, TypeError) as error:
        return _bad(f"scale: {error}")
    return JSONResponse({"scale": backend.rate_limits.scale})


ROUTES = [
    Route("/_mock/reset", reset, methods=["POST"]),
    Route("/_mock/tokens", mint_token, methods=["POST"]),
    Route("/_mock/faults", add_faults, methods=["POST"]),
    Route("/_mock/faults", clear_faults, methods=["DELETE"]),
    Route("/_mock/transitions", set_transitions, methods=["POST"]),
    Route("/_mock/rate-limits", set_rate_limits, methods=["POST"]),
]
