"""``create_app()``: the emulator as an ASGI application, served under ``/v2`` like KSeF, with its
OpenAPI spec at ``/docs/v2/openapi.json`` as KSeF publishes it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ksef_client._generated.operations import OPERATIONS
from ksef_client.mock import control, responses
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.routes import auth, certificates, invoices, permissions, sending, testdata
from ksef_client.spec_version import SPEC_PATH

API_PREFIX = "/v2"
Endpoint = Callable[[Request], Awaitable[Response]]

# operation key -> handler; paths and methods come from the spec's operation table.
HANDLERS = {
    "sessions_status.list_sessions": responses.list_sessions,
    "sessions_status.get_session_status": responses.get_session_status,
    "sessions_status.list_session_invoices": responses.list_session_invoices,
    "sessions_status.list_session_failed_invoices": responses.list_session_failed_invoices,
    "sessions_status.get_session_invoice_status": responses.get_session_invoice_status,
    "sessions_status.get_invoice_upo_by_reference_number": responses.get_invoice_upo_by_reference_number,
    "sessions_status.get_invoice_upo_by_ksef_number": responses.get_invoice_upo_by_ksef_number,
    "sessions_status.get_session_upo": responses.get_session_upo,
    "security.get_public_key_certificates": auth.get_public_key_certificates,
    "auth.create_challenge": auth.create_challenge,
    "auth.authenticate_ksef_token": auth.authenticate_ksef_token,
    "auth.authenticate_xades_signature": auth.authenticate_xades_signature,
    "auth.get_auth_status": auth.get_auth_status,
    "auth.redeem_token": auth.redeem_token,
    "auth.refresh_token": auth.refresh_token,
    "auth_sessions.list_auth_sessions": auth.list_auth_sessions,
    "auth_sessions.revoke_current_auth_session": auth.revoke_current_auth_session,
    "auth_sessions.revoke_auth_session": auth.revoke_auth_session,
    "tokens.create_token": auth.create_token,
    "tokens.list_tokens": auth.list_tokens,
    "tokens.get_token_status": auth.get_token_status,
    "tokens.revoke_token": auth.revoke_token,
    "online_session.open_online_session": sending.open_online_session,
    "online_session.send_invoice": sending.send_invoice,
    "online_session.close_online_session": sending.close_online_session,
    "batch_session.open_batch_session": sending.open_batch_session,
    "batch_session.close_batch_session": sending.close_batch_session,
    "invoices.get_invoice": invoices.get_invoice,
    "invoices.query_invoice_metadata": invoices.query_invoice_metadata,
    "invoices.export_invoices": invoices.export_invoices,
    "invoices.get_invoice_export_status": invoices.get_invoice_export_status,
    **testdata.HANDLERS,
    **permissions.HANDLERS,
    **certificates.HANDLERS,
}


@dataclass(frozen=True)
class _PathRoute:
    template: str
    pattern: re.Pattern[str]
    handlers: dict[str, Endpoint]
    loose: re.Pattern[str]


def _compile(template: str, segment: str = "[^/]+") -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{([^}]+)\\\}", rf"(?P<\1>{segment})", re.escape(template)) + "$")


def _path_routes() -> list[_PathRoute]:
    # Literal segments first: /auth/challenge is that operation even for a GET, not /auth/{ref}.
    paths: dict[str, dict[str, Endpoint]] = {}
    for key, handler in HANDLERS.items():
        paths.setdefault(OPERATIONS[key].path, {})[OPERATIONS[key].method] = handler
    ordered = sorted(paths, key=lambda path: (path.count("{"), path))
    return [_PathRoute(path, _compile(path), paths[path], _compile(path, ".+")) for path in ordered]


def _api_endpoint(routes: list[_PathRoute]) -> Endpoint:
    """Dispatch ``/v2/...`` like KSeF's router: the most specific path decides, then the method
    (a 405 lists every method of that path in ``Allow``)."""

    async def dispatch(request: Request) -> Response:
        path = "/" + request.path_params["rest"]
        # Second pass: an identifier holding "/" still reaches its operation, whose validator
        # answers 400 (as KSeF does) instead of an undocumented 404.
        for route, match in _matches(routes, path):
            handler = route.handlers.get(request.method)
            if handler is None:
                allow = ", ".join(sorted(route.handlers))
                return Response(status_code=405, headers={"Allow": allow})
            request.scope["path_params"] = match.groupdict()
            return await handler(request)
        return Response(status_code=404)

    return dispatch


def _matches(routes: list[_PathRoute], path: str) -> Iterator[tuple[_PathRoute, re.Match[str]]]:
    for attempt in ("pattern", "loose"):
        for route in routes:
            match = getattr(route, attempt).match(path)
            if match is not None:
                yield route, match
                return


def create_app(backend: KSeFBackend | None = None, *, store: SQLiteStore | None = None) -> ASGIApp:
    """The emulator app; pass a ``KSeFBackend`` to share or inspect its state from tests, and a
    ``SQLiteStore`` to keep the state across restarts (saved after every changing request)."""
    app = Starlette(
        routes=[
            Route(SPEC_PATH, responses.spec_document, methods=["GET"]),
            Route("/_storage/{name}", responses.storage_get, methods=["GET"]),
            Route("/_upload/{name}", sending.upload_part, methods=["PUT"]),
            *control.ROUTES,
        ]
    )
    app.state.backend = backend or KSeFBackend()
    if store is not None:
        store.load(app.state.backend)
    return _EmulatorApp(app, _api_endpoint(_path_routes()), store)


class _EmulatorApp:
    """``/v2/...`` goes to the KSeF router (any path, even one with a newline in an identifier,
    which Starlette's path patterns would not match); the rest to Starlette. With a store, the
    state is saved after each request that may have changed it (anything but GET)."""

    def __init__(self, app: Starlette, api: Endpoint, store: SQLiteStore | None) -> None:
        self.app, self.api, self.store = app, api, store
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX + "/"):
            scope = {**scope, "app": self.app, "path_params": {"rest": scope["path"][len(API_PREFIX) + 1 :]}}
            response = await self.api(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)
        if self.store is not None and scope["type"] == "http" and scope["method"] != "GET":
            self.store.save(self.state.backend)
