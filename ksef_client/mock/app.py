"""``create_app()``: the emulator as an ASGI application, served under ``/v2`` like KSeF."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ksef_client._generated.operations import OPERATIONS
from ksef_client.mock import control, responses
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.routes import auth, certificates, invoices, permissions, sending, testdata

API_PREFIX = "/v2"

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


def _api_routes() -> list[Route]:
    # Literal segments before {parameters}, so /sessions/{ref}/invoices/failed is not an invoice id.
    keys = sorted(HANDLERS, key=lambda k: (OPERATIONS[k].path.count("{"), OPERATIONS[k].path))
    return [Route(API_PREFIX + OPERATIONS[k].path, HANDLERS[k], methods=[OPERATIONS[k].method], name=k) for k in keys]


def create_app(backend: KSeFBackend | None = None, *, store: SQLiteStore | None = None) -> ASGIApp:
    """The emulator app; pass a ``KSeFBackend`` to share or inspect its state from tests, and a
    ``SQLiteStore`` to keep the state across restarts (saved after every changing request)."""
    app = Starlette(
        routes=[
            *_api_routes(),
            Route("/_storage/{name}", responses.storage_get, methods=["GET"]),
            Route("/_upload/{name}", sending.upload_part, methods=["PUT"]),
            *control.ROUTES,
        ]
    )
    app.state.backend = backend or KSeFBackend()
    if store is None:
        return app
    store.load(app.state.backend)
    return _SavingApp(app, store, app.state.backend)


class _SavingApp:
    """Saves the state after each request that may have changed it (anything but GET)."""

    def __init__(self, app: Starlette, store: SQLiteStore, backend: KSeFBackend) -> None:
        self.app, self.store, self.backend = app, store, backend
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["method"] != "GET":
            self.store.save(self.backend)
