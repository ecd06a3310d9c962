"""KSeF emulator: a stateful fake of the KSeF 2.0 API for tests (install ``ksef-sdk[mock]``).

``create_app()`` gives an ASGI app served under ``/v2``; ``KSeFBackend`` holds the state, one
component per group of the API (``backend.sessions``, ``backend.auth``...), and the test shortcuts
(``mint_access_token``, ``faults``, ``transitions``, ``rate_limits``, ``reset``).
"""

from ksef_client.mock.app import create_app
from ksef_client.mock.faults import Fault, Faults
from ksef_client.mock.models import Context, KSeFBackend, Transitions

__all__ = ["Context", "Fault", "Faults", "KSeFBackend", "Transitions", "create_app"]
