"""``/_mock/*``: the emulator's control endpoints (outside ``/v2``, never part of KSeF's API).

For tests that talk to a running ``ksef-mock`` over HTTP rather than through ``KSeFBackend``:

- ``POST /_mock/reset``: forget everything.
- ``POST /_mock/tokens`` ``{"nip": "...", "permissions": [...], "ttlSeconds": 900}``: an access
  token without the auth flow; ``"allowedIps": {"ip4Addresses": [...], "ip4Ranges": [...],
  "ip4Masks": [...]}`` (the shape of ``POST /auth/ksef-token``'s ``authorizationPolicy``) holds it
  to those addresses.
- ``POST /_mock/faults`` ``{"status": 503, "operation": "sessions_status.get_session_status",
  "times": 2, "retryAfter": 1, "delay": 0}`` or ``{"random": {"rate": 0.1, "seed": 7}}``;
  ``{"status": 400, "code": 21184, "operation": "online_session.send_invoice"}`` answers with KSeF's
  error body for that code (``"description"``, ``"details"``: the spec's texts unless given);
  ``DELETE /_mock/faults``.
- ``POST /_mock/transitions`` ``{"sessionReads": 2, "authReads": 1, "invoiceReads": 2, "tokenReads": 1,
  "tokenActivation": 5, "permissionReads": 0, "enrollmentReads": 0, "storageReads": 0, "storageDelay": 5}``:
  statuses advance after N reads (a new KSeF token: or after ``tokenActivation`` seconds; a numbered
  invoice is stored after ``storageReads`` reads or ``storageDelay`` seconds).
- ``POST /_mock/rate-limits`` ``{"scale": 1.0}``: KSeF's limits times ``scale`` (0: off).
- ``GET /_mock/violations``: ``{"strict": true, "violations": [...]}``, the answers strict mode
  refused so far (``ksef-mock --strict``), for a harness that drives the emulator over HTTP.

They answer only requests addressed to a loopback name, the address the emulator was bound to or a
name it was told to allow (``mock/hosts.py``), and only JSON (``Content-Type: application/json``):
a web page in the user's browser can reach neither.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ksef_client._throttle import Throttle
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.hosts import HostPolicy
from ksef_client.mock.models import ALL_PERMISSIONS, Context
from ksef_client.mock.responses import backend_of, read_body
from ksef_client.xades import AllowedIps

MAX_CONTROL_BODY = 65_536
Handler = Callable[[Request], Awaitable[Response]]


def control_endpoint(handler: Callable[[Request, dict[str, Any]], Awaitable[Response]]) -> Handler:
    """Guard a control endpoint: it mints tokens and resets state, so a web page must not reach it.

    The ``Host`` must be a loopback name, the address the emulator was bound to or an allowed name
    (a DNS-rebinding page sends its own name), wherever the emulator listens; the body must be a
    JSON object sent as ``application/json`` (a cross-origin form or ``text/plain`` POST cannot
    be); bad values are a 400, never a 500.
    """

    async def endpoint(request: Request) -> Response:
        hosts: HostPolicy = request.app.state.hosts
        if not hosts.allows(request.headers.get("host", "")):
            return hosts.refusal(request.headers.get("host", ""))
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[0] != "application/json":
            return JSONResponse({"error": "send a JSON object with Content-Type: application/json"}, 415)
        try:
            raw = await read_body(request, MAX_CONTROL_BODY)
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise TypeError("expected a JSON object")
            return await handler(request, body)
        except (MockAPIError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:
            return _bad(f"{type(error).__name__}: {error}")

    endpoint.__name__ = handler.__name__
    return endpoint


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


def _bounded(value: Any, name: str, low: float, high: float) -> float:
    number = float(value)
    if not low <= number <= high:
        raise ValueError(f"{name}: {low:g} to {high:g}")
    return number


@control_endpoint
async def reset(request: Request, body: dict[str, Any]) -> Response:
    backend_of(request).reset()
    return JSONResponse({"reset": True})


@control_endpoint
async def mint_token(request: Request, body: dict[str, Any]) -> Response:
    context = body.get("context")
    permissions = body.get("permissions") or ALL_PERMISSIONS
    if not isinstance(permissions, list | tuple) or not all(isinstance(p, str) for p in permissions):
        raise TypeError("permissions: a list of names")
    token = backend_of(request).mint_access_token(
        body.get("nip"),
        context=Context(str(context["type"]), str(context["value"])) if isinstance(context, dict) else None,
        permissions=permissions,
        ttl=dt.timedelta(seconds=_bounded(body.get("ttlSeconds", 900), "ttlSeconds", 1, 86_400 * 7)),
        allowed_ips=_allowed_ips(body.get("allowedIps")),
    )
    return JSONResponse({"accessToken": token})


def _allowed_ips(value: Any) -> AllowedIps | None:
    """``allowedIps`` of ``/_mock/tokens`` as ``authorizationPolicy.allowedIps`` of a login has it."""
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"ip4Addresses", "ip4Ranges", "ip4Masks"}:
        raise ValueError("allowedIps: an object of ip4Addresses, ip4Ranges and ip4Masks (lists)")
    lists = [value.get(key) or [] for key in ("ip4Addresses", "ip4Ranges", "ip4Masks")]
    if not all(isinstance(values, list) and all(isinstance(v, str) for v in values) for values in lists):
        raise ValueError("allowedIps: ip4Addresses, ip4Ranges and ip4Masks are lists of strings")
    return AllowedIps(*lists)


@control_endpoint
async def add_faults(request: Request, body: dict[str, Any]) -> Response:
    faults = backend_of(request).faults
    if isinstance(body.get("random"), dict):
        rate = _bounded(body["random"]["rate"], "random.rate", 0, 1)
        faults.set_random(rate, seed=int(_bounded(body["random"].get("seed", 0), "random.seed", 0, 2**63)))
    else:
        retry_after, code, details = body.get("retryAfter"), body.get("code"), body.get("details")
        if details is not None and (not isinstance(details, list) or not all(isinstance(d, str) for d in details)):
            raise TypeError("details: a list of strings")
        faults.add(
            int(_bounded(body["status"], "status", -1, 599)), operation=body.get("operation"),
            times=int(_bounded(body.get("times", 1), "times", 1, 1_000_000)),
            retry_after=None if retry_after is None else int(_bounded(retry_after, "retryAfter", 0, 86_400)),
            delay=_bounded(body.get("delay", 0.0), "delay", 0, 60),
            code=None if code is None else int(_bounded(code, "code", 1, 2**31 - 1)),
            description=body.get("description"), details=details,
        )  # fmt: skip
    return JSONResponse({"ok": True})


@control_endpoint
async def clear_faults(request: Request, body: dict[str, Any]) -> Response:
    backend_of(request).faults.clear()
    return Response(status_code=204)


@control_endpoint
async def set_transitions(request: Request, body: dict[str, Any]) -> Response:
    transitions = backend_of(request).transitions
    reads = int(_bounded(body.get("sessionReads", transitions.session_reads), "sessionReads", 0, 1_000_000))
    auth_reads = int(_bounded(body.get("authReads", transitions.auth_reads), "authReads", 0, 1_000_000))
    token_reads = int(_bounded(body.get("tokenReads", transitions.token_reads), "tokenReads", 0, 1_000_000))
    activation = _bounded(body.get("tokenActivation", transitions.token_activation), "tokenActivation", 0, 86_400)
    invoice_reads = int(_bounded(body.get("invoiceReads", transitions.invoice_reads), "invoiceReads", 0, 1_000_000))
    permission_reads = int(
        _bounded(body.get("permissionReads", transitions.permission_reads), "permissionReads", 0, 1_000_000)
    )
    enrollment_reads = int(
        _bounded(body.get("enrollmentReads", transitions.enrollment_reads), "enrollmentReads", 0, 1_000_000)
    )
    transitions.session_reads, transitions.auth_reads, transitions.invoice_reads = reads, auth_reads, invoice_reads
    transitions.token_reads, transitions.token_activation = token_reads, float(activation)
    storage_reads = int(_bounded(body.get("storageReads", transitions.storage_reads), "storageReads", 0, 1_000_000))
    storage_delay = _bounded(body.get("storageDelay", transitions.storage_delay), "storageDelay", 0, 86_400)
    transitions.permission_reads, transitions.enrollment_reads = permission_reads, enrollment_reads
    transitions.storage_reads, transitions.storage_delay = storage_reads, float(storage_delay)
    return JSONResponse(
        {
            "sessionReads": transitions.session_reads,
            "authReads": transitions.auth_reads,
            "invoiceReads": transitions.invoice_reads,
            "tokenReads": transitions.token_reads,
            "tokenActivation": transitions.token_activation,
            "permissionReads": transitions.permission_reads,
            "enrollmentReads": transitions.enrollment_reads,
            "storageReads": transitions.storage_reads,
            "storageDelay": transitions.storage_delay,
        }
    )


@control_endpoint
async def set_rate_limits(request: Request, body: dict[str, Any]) -> Response:
    backend = backend_of(request)
    backend.rate_limits = Throttle(scale=_bounded(body["scale"], "scale", 0, 1_000))
    return JSONResponse({"scale": backend.rate_limits.scale})


@control_endpoint
async def list_violations(request: Request, body: dict[str, Any]) -> Response:
    state = request.app.state
    return JSONResponse(
        {"strict": bool(getattr(state, "strict", False)), "violations": getattr(state, "violations", [])}
    )


ROUTES = [
    Route("/_mock/reset", reset, methods=["POST"]),
    Route("/_mock/tokens", mint_token, methods=["POST"]),
    Route("/_mock/faults", add_faults, methods=["POST"]),
    Route("/_mock/faults", clear_faults, methods=["DELETE"]),
    Route("/_mock/transitions", set_transitions, methods=["POST"]),
    Route("/_mock/rate-limits", set_rate_limits, methods=["POST"]),
    Route("/_mock/violations", list_violations, methods=["GET"]),
]
