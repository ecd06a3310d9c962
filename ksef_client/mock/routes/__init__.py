"""The emulator's endpoints, one module per group of the API (and ``storage``, ``public``,
``control`` for what lives outside ``/v2``).

Importing a module registers its operations (``responses.api_endpoint`` fills ``REGISTRY``); a
module's ``ROUTES`` lists its routes outside ``/v2``.
"""

from ksef_client.mock.routes import (
    auth,
    certificates,
    collective_identifiers,
    control,
    invoices,
    limits,
    peppol,
    permissions,
    public,
    sending,
    sessions,
    storage,
    testdata,
    tokens,
)

MODULES = (
    auth, certificates, collective_identifiers, control, invoices, limits, peppol, permissions, public, sending,
    sessions, storage, testdata, tokens,
)  # fmt: skip
