"""pytest plugin (registered as ``ksef_mock`` by the package): the emulator as a fixture.

::

    def test_sending(ksef_mock):
        with ksef_mock.client(nip="5265877635") as ksef:
            with ksef.online_session() as session:
                session.send(invoice_xml)

``ksef_mock`` is one emulator on 127.0.0.1 for the whole test run, emptied before each test;
``ksef_mock.backend`` is its state (``faults``, ``transitions``, ``mint_access_token``). Its
clients pace their requests as the emulator enforces rate limits: not at all unless the test
turns them on (``backend.rate_limits.scale``) before making the client.
Needs ``pip install ksef-sdk[mock]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ksef_client import AsyncKSeF, KSeF
    from ksef_client.mock.models import KSeFBackend
    from ksef_client.mock.server import ThreadedServer
    from ksef_client.xades import AllowedIps


class KSeFMock:
    """A running emulator and factories for clients of it."""

    def __init__(self, server: ThreadedServer) -> None:
        self.server = server

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v2``."""
        return self.server.base_url

    @property
    def backend(self) -> KSeFBackend:
        """The emulator's state."""
        return self.server.backend

    def token(self, nip: str, permissions: list[str] | None = None, *, allowed_ips: AllowedIps | None = None) -> str:
        """An access token for the context ``nip`` (all permissions unless given); ``allowed_ips``:
        held to those addresses, as a login's ``allowed_ips=`` holds its tokens."""
        if permissions is None:
            return self.backend.mint_access_token(nip, allowed_ips=allowed_ips)
        return self.backend.mint_access_token(nip, permissions=permissions, allowed_ips=allowed_ips)

    def client(self, nip: str | None = None, **options: Any) -> KSeF:
        """A ``KSeF`` client of the emulator, logged in for ``nip`` when given.

        ``options`` go to ``KSeF``; ``rate_limit_scale`` defaults to what the emulator enforces
        now (``backend.rate_limits.scale``: 0, no client-side pacing, unless the test turned the
        emulator's rate limits on before).
        """
        from ksef_client import KSeF  # noqa: PLC0415 - the plugin loads with every pytest run: keep it light

        token = self.token(nip) if nip is not None else None
        return KSeF(base_url=self.base_url, access_token=token, **self._paced_as_enforced(options))

    def async_client(self, nip: str | None = None, **options: Any) -> AsyncKSeF:
        """An ``AsyncKSeF`` client of the emulator (``options`` as for ``client``)."""
        from ksef_client import AsyncKSeF  # noqa: PLC0415 - see ``client``

        token = self.token(nip) if nip is not None else None
        return AsyncKSeF(base_url=self.base_url, access_token=token, **self._paced_as_enforced(options))

    def _paced_as_enforced(self, options: dict[str, Any]) -> dict[str, Any]:
        # The client's default scale (1.0) paces at KSeF's production limits: against an emulator
        # that enforces none (GET /rate-limits reads -1) 35 online sends took a minute. Both
        # scales multiply the spec's limits, so the emulator's own scale is the pace it enforces.
        return {"rate_limit_scale": self.backend.rate_limits.scale, **options}


@pytest.fixture(scope="session")
def ksef_mock_server() -> Iterator[ThreadedServer]:
    """The emulator on 127.0.0.1 for the whole run."""
    # Imported here: the plugin is always registered, uvicorn only comes with ksef-sdk[mock].
    from ksef_client.mock.server import ThreadedServer  # noqa: PLC0415

    with ThreadedServer(strict=True) as server:
        yield server


@pytest.fixture
def ksef_mock(ksef_mock_server: ThreadedServer) -> Iterator[KSeFMock]:
    """A fresh emulator (state emptied, settings and clock as created, no client-side rate-limit
    counts carried over from earlier tests) and client factories.

    The emulator runs in strict mode: every answer it gives is checked against the KSeF spec, and
    the test fails if one did not conform (the emulator's bug, not the test's).
    """
    from ksef_client._throttle import forget_counts  # noqa: PLC0415 - see ``KSeFMock.client``

    ksef_mock_server.backend.reset()
    # The emulator counts from nothing again: so do the clients' throttles, also of clients an
    # earlier test made (kept alive, or not yet collected), which must not pace this test.
    forget_counts(ksef_mock_server.base_url)
    seen = len(ksef_mock_server.app.violations)
    yield KSeFMock(ksef_mock_server)
    violations = ksef_mock_server.app.violations[seen:]
    if violations:
        pytest.fail("the KSeF emulator answered against the spec:\n" + "\n".join(violations[:10]), pytrace=False)
