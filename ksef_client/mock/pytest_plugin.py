"""pytest plugin (registered as ``ksef_mock`` by the package): the emulator as a fixture.

::

    def test_sending(ksef_mock):
        with ksef_mock.client(nip="5265877635") as ksef:
            with ksef.online_session() as session:
                session.send(invoice_xml)

``ksef_mock`` is one emulator on 127.0.0.1 for the whole test run, emptied before each test;
``ksef_mock.backend`` is its state (``faults``, ``transitions``, ``mint_access_token``).
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

    def token(self, nip: str, permissions: list[str] | None = None) -> str:
        """An access token for the context ``nip`` (all permissions unless given)."""
        if permissions is None:
            return self.backend.mint_access_token(nip)
        return self.backend.mint_access_token(nip, permissions=permissions)

    def client(self, nip: str | None = None, **options: Any) -> KSeF:
        """A ``KSeF`` client of the emulator, logged in for ``nip`` when given."""
        from ksef_client import KSeF  # noqa: PLC0415 - the plugin loads with every pytest run: keep it light

        token = self.token(nip) if nip is not None else None
        return KSeF(base_url=self.base_url, access_token=token, **options)

    def async_client(self, nip: str | None = None, **options: Any) -> AsyncKSeF:
        """An ``AsyncKSeF`` client of the emulator."""
        from ksef_client import AsyncKSeF  # noqa: PLC0415 - see ``client``

        token = self.token(nip) if nip is not None else None
        return AsyncKSeF(base_url=self.base_url, access_token=token, **options)


@pytest.fixture(scope="session")
def ksef_mock_server() -> Iterator[ThreadedServer]:
    """The emulator on 127.0.0.1 for the whole run."""
    # Imported here: the plugin is always registered, uvicorn only comes with ksef-sdk[mock].
    from ksef_client.mock.server import ThreadedServer  # noqa: PLC0415

    with ThreadedServer(strict=True) as server:
        yield server


@pytest.fixture
def ksef_mock(ksef_mock_server: ThreadedServer) -> Iterator[KSeFMock]:
    """A fresh emulator (state emptied, settings as created) and client factories.

    The emulator runs in strict mode: every answer it gives is checked against the KSeF spec, and
    the test fails if one did not conform (the emulator's bug, not the test's).
    """
    ksef_mock_server.backend.reset()
    seen = len(ksef_mock_server.app.violations)
    yield KSeFMock(ksef_mock_server)
    violations = ksef_mock_server.app.violations[seen:]
    if violations:
        pytest.fail("the KSeF emulator answered against the spec:\n" + "\n".join(violations[:10]), pytrace=False)
