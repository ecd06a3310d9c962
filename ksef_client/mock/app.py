"""``create_app()``: the emulator as an ASGI application, served under ``/v2`` like KSeF, with its
OpenAPI spec at ``/docs/v2/openapi.json`` as KSeF publishes it."""

from __future__ import annotations

import contextlib
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from ksef_client._generated.operations import OPERATIONS
from ksef_client.mock._extra import missing_mock_extra

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.types import Receive, Scope, Send
except ModuleNotFoundError as error:  # pragma: no cover - without the mock extra
    raise missing_mock_extra(error) from error
from ksef_client.mock.exceptions import StrictModeViolation
from ksef_client.mock.hosts import HostPolicy
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.responses import REGISTRY, BrokenResponse, Endpoint
from ksef_client.mock.routes import MODULES
from ksef_client.mock.validation import invoice_metadata_problems, response_problems

API_PREFIX = "/v2"
# Strict-mode violations are logged here too (``ksef-mock --strict`` writes them to stderr).
logger = logging.getLogger("ksef_client.mock")


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
    for key, handler in REGISTRY.items():
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
            request.scope["ksef_operation"] = (request.method, route.template)
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


def create_app(
    backend: KSeFBackend | None = None,
    *,
    store: SQLiteStore | None = None,
    strict: bool = False,
    host: str | None = None,
    allowed_hosts: Iterable[str] = (),
) -> EmulatorApp:
    """The emulator app; pass a ``KSeFBackend`` to share or inspect its state from tests, and a
    ``SQLiteStore`` to keep the state across restarts (saved after every changing request).

    ``strict`` validates every answer of the API against the spec (status, media type, JSON body
    with enums strictly) before it leaves; a violation is recorded in ``app.violations`` and
    answered as a 500 naming it, so no test can pass on an answer KSeF would never give. The
    ``ksef_mock`` fixture, the conformance suite, the examples under test and ``make peers``
    (``ksef-mock --strict``) switch it on; ``GET /_mock/violations`` lists what was recorded.

    ``host`` is the address the server listens on; ``allowed_hosts`` are further names clients
    address it by (a container's service name): a guard against DNS rebinding
    (``ksef_client.mock.hosts``). Listening on a loopback address, every route (``/v2``, storage,
    ``/_mock/*``) answers only requests whose ``Host`` is a loopback name, ``host`` or an allowed
    name (403 otherwise). Listening elsewhere (``0.0.0.0``), or in-process without a ``host``
    (``httpx.ASGITransport``), ``/v2`` and storage answer any ``Host`` unless ``allowed_hosts``
    are given; the control endpoints answer those names only. ``ValueError`` for an allowed name
    with a port or a path, ``TypeError`` for one ``str`` instead of a list of names.
    """
    hosts = HostPolicy.of(host, allowed_hosts)
    routes = [route for module in MODULES for route in getattr(module, "ROUTES", [])]
    app = Starlette(routes=routes, lifespan=_stops_the_workers)
    app.state.backend = backend or KSeFBackend()
    if strict:  # what the emulator writes outside the answers is held to the spec too
        app.state.backend.core.check_metadata_record = invoice_metadata_problems
    app.state.hosts = hosts
    app.state.store = store
    if store is not None:
        store.load(app.state.backend)
    return EmulatorApp(app, _api_endpoint(_path_routes()), store, strict=strict)


@contextlib.asynccontextmanager
async def _stops_the_workers(app: Starlette) -> AsyncIterator[None]:
    """Served with ASGI lifespan events (``ksef-mock``, ``uvicorn``), the app stops the backend's
    batch worker processes and writes the store's last changes when the server shuts down."""
    yield
    await run_in_threadpool(app.state.backend.close)  # it waits for batches still being processed
    if app.state.store is not None:  # the writer is a daemon thread: the last changes, before the exit
        await run_in_threadpool(app.state.store.flush)


class EmulatorApp:
    """``/v2/...`` goes to the KSeF router (any path, even one with a newline in an identifier,
    which Starlette's path patterns would not match); the rest to Starlette. With a store, each
    request that may have changed the state (anything but GET) has it saved by the store's writer
    thread, off the event loop."""

    def __init__(self, app: Starlette, api: Endpoint, store: SQLiteStore | None, *, strict: bool = False) -> None:
        self.app, self.api, self.store = app, api, store
        self.state = app.state
        self.strict = strict
        self.violations: list[str] = []
        app.state.strict, app.state.violations = strict, self.violations  # for GET /_mock/violations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (refusal := self._misaddressed(scope)) is not None:
            await refusal(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX + "/"):
            scope = {**scope, "app": self.app, "path_params": {"rest": scope["path"][len(API_PREFIX) + 1 :]}}
            try:
                response = await self.api(Request(scope, receive))
                _echo_test_system_warning(scope, response, self.state.backend.profile)
                if self.strict:
                    response = self._checked(scope, response)
            except StrictModeViolation as error:  # raised only when strict mode set the checks
                method, path = scope.get("ksef_operation", (scope["method"], scope["path"]))
                response = self._violation(f"{method} {path}: {error}")
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)
        if self.store is not None and scope["type"] == "http" and scope["method"] != "GET":
            self.store.save_later(self.state.backend)

    def _misaddressed(self, scope: Scope) -> Response | None:
        """The 403 for a request addressed to a name the emulator does not answer to, when its
        ``HostPolicy`` holds the whole API to the names (the control endpoints check them anyway)."""
        hosts: HostPolicy = self.state.hosts
        if not hosts.everywhere:
            return None
        header = next((value for name, value in scope["headers"] if name.lower() == b"host"), b"")
        host = header.decode("latin-1")
        return None if hosts.allows(host) else hosts.refusal(host)

    def _checked(self, scope: Scope, response: Response) -> Response:
        operation = scope.get("ksef_operation")
        outside = scope.get("ksef_injected_fault") or scope.get("ksef_framework_answer")
        if operation is None or outside or isinstance(response, BrokenResponse):
            return response
        method, path = operation
        media = response.headers.get("content-type", "")
        problems = response_problems(method, path, response.status_code, media, bytes(response.body), response.headers)
        if not problems:
            return response
        return self._violation(f"{method} {path} -> {response.status_code}: {'; '.join(problems)}")

    def _violation(self, violation: str) -> Response:
        """Record ``violation`` and answer 500 naming it."""
        self.violations.append(violation)
        logger.error("strict mode violation: %s", violation)
        return JSONResponse({"strictModeViolation": violation}, status_code=500)


# KSeF TEST answers a request carrying X-Test-System-Warning with that text as X-System-Warning
# (api-changelog 2.9.0), ASCII-folded as KSeF normalises the header; production ignores it.
_TEST_WARNING = b"x-test-system-warning"
_FOLDED = str.maketrans({"ł": "l", "Ł": "L"})  # the one Polish letter NFKD does not decompose


def _echo_test_system_warning(scope: Scope, response: Response, profile: str) -> None:
    if profile != "TEST" or not 200 <= response.status_code < 300:
        return
    asked = next((value for name, value in scope["headers"] if name.lower() == _TEST_WARNING), None)
    if asked is None:
        return
    folded = unicodedata.normalize("NFKD", asked.decode("utf-8", "replace").translate(_FOLDED))
    text = "".join(c for c in folded.encode("ascii", "ignore").decode() if c.isprintable())[:1000]
    if text:
        response.headers["X-System-Warning"] = text
