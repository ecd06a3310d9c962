"""KSeF emulator: a stateful fake of the KSeF 2.0 API for tests (install ``ksef-sdk[mock]``).

``create_app()`` gives an ASGI app served under ``/v2``; ``KSeFBackend`` holds the state, one
component per group of the API (``backend.sessions``, ``backend.auth``...), and the test shortcuts
(``mint_access_token``, ``faults``, ``transitions``, ``rate_limits``, ``reset``);
``peppol_provider_certificate`` makes the certificate a Peppol provider logs in with.

The names are imported on first use (PEP 562): a batch worker process imports only the invoice
checks of ``mock.state``, not the web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksef_client._lazy import lazy_names

if TYPE_CHECKING:
    from ksef_client.mock.app import create_app
    from ksef_client.mock.faults import Fault, Faults
    from ksef_client.mock.models import Context, KSeFBackend, Transitions
    from ksef_client.mock.peppol import peppol_provider_certificate

__all__ = ["Context", "Fault", "Faults", "KSeFBackend", "Transitions", "create_app", "peppol_provider_certificate"]
_LOCATIONS = {
    "create_app": "ksef_client.mock.app",
    "Fault": "ksef_client.mock.faults",
    "Faults": "ksef_client.mock.faults",
    "Context": "ksef_client.mock.models",
    "KSeFBackend": "ksef_client.mock.models",
    "Transitions": "ksef_client.mock.models",
    "peppol_provider_certificate": "ksef_client.mock.peppol",
}


__getattr__, __dir__ = lazy_names(__name__, _LOCATIONS, __all__)
