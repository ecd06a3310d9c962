"""ksef_client: Python SDK for KSeF 2.0, Poland's national e-invoicing API.

::

    from ksef_client import KSeF, Environment
    ksef = KSeF(environment=Environment.TEST, access_token="...")
    for session in ksef.sessions.list("Online", statuses=["Succeeded"]):
        ...

Names are imported on first use (PEP 562), so ``import ksef_client`` stays cheap for programs
that only need part of the SDK (for example the emulator or the identifiers).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ksef_client._lazy import lazy_names

if TYPE_CHECKING:
    from ksef_client._body import BodyLimits
    from ksef_client._client import AsyncKSeF, KSeF
    from ksef_client.environments import Environment
    from ksef_client.errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        AuthenticationFailedError,
        BadRequestError,
        BatchError,
        BatchFileNameError,
        CertificateEnrollmentError,
        CertificatePendingError,
        ExportError,
        ExportStatusError,
        GoneError,
        HashMissingError,
        InternalServerError,
        InvoiceRejectedError,
        InvoiceSchemaError,
        KSeFError,
        NotFoundError,
        PermissionDeniedError,
        PermissionOperationFailedError,
        PollTimeoutError,
        QueryLimitError,
        RateLimitError,
        ResponseFormatError,
        ResponseTooLargeError,
        RetryAfterTooLongError,
        SyncLockedError,
        ThrottleWaitTooLongError,
        TokenNotActiveError,
        UnsafePathError,
        UnsafeXMLError,
        UntrustedURLError,
        UPOError,
        UPOHashMismatchError,
        UPOMismatchError,
        UPONotAvailableError,
        UPOSignatureError,
        UPOValidationError,
    )
    from ksef_client.outcomes import InvoiceOutcome
    from ksef_client.upo import SessionUpo, Upo, parse_upo
    from ksef_client.xades import AllowedIps

__version__ = "0.2.0"
__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllowedIps",
    "AsyncKSeF",
    "AuthenticationError",
    "AuthenticationFailedError",
    "BadRequestError",
    "BatchError",
    "BatchFileNameError",
    "BodyLimits",
    "CertificateEnrollmentError",
    "CertificatePendingError",
    "Environment",
    "ExportError",
    "ExportStatusError",
    "GoneError",
    "HashMissingError",
    "InternalServerError",
    "InvoiceOutcome",
    "InvoiceRejectedError",
    "InvoiceSchemaError",
    "KSeF",
    "KSeFError",
    "NotFoundError",
    "PermissionDeniedError",
    "PermissionOperationFailedError",
    "PollTimeoutError",
    "QueryLimitError",
    "RateLimitError",
    "ResponseFormatError",
    "ResponseTooLargeError",
    "RetryAfterTooLongError",
    "SessionUpo",
    "SyncLockedError",
    "ThrottleWaitTooLongError",
    "TokenNotActiveError",
    "UPOError",
    "UPOHashMismatchError",
    "UPOMismatchError",
    "UPONotAvailableError",
    "UPOSignatureError",
    "UPOValidationError",
    "UnsafePathError",
    "UnsafeXMLError",
    "UntrustedURLError",
    "Upo",
    "__version__",
    "parse_upo",
]
# Where each name lives; the errors are every ``...Error`` of ``__all__``.
_LOCATIONS = {
    "KSeF": "ksef_client._client",
    "AsyncKSeF": "ksef_client._client",
    "BodyLimits": "ksef_client._body",
    "Environment": "ksef_client.environments",
    "InvoiceOutcome": "ksef_client.outcomes",
    "SessionUpo": "ksef_client.upo",
    "Upo": "ksef_client.upo",
    "parse_upo": "ksef_client.upo",
    "AllowedIps": "ksef_client.xades",
    **{name: "ksef_client.errors" for name in __all__ if name.endswith("Error")},
}

# The PyPI package ``ksef-client`` (another SDK, distribution ``ksef-client``; ours is ``ksef-sdk``)
# installs into the same ``ksef_client`` directory. Its modules beside ours mean both are installed
# over each other and neither works: say so at import (two stat calls, no directory listing).
OTHER_SDK_MARKERS = ("clients", "openapi_models.py")


def _refuse_other_sdk(directory: str, markers: tuple[str, ...] = OTHER_SDK_MARKERS) -> None:
    found = [name for name in markers if os.path.exists(os.path.join(directory, name))]
    if found:
        raise ImportError(
            f"{directory} also holds files of another SDK, the PyPI package 'ksef-client' ({', '.join(found)}): "
            "it uses the same import name 'ksef_client', so it cannot be installed together with 'ksef-sdk'. "
            "Fix: pip uninstall -y ksef-client ksef-sdk && pip install ksef-sdk "
            "(or keep each SDK in its own virtualenv)."
        )


_refuse_other_sdk(os.path.dirname(__file__))


__getattr__, __dir__ = lazy_names(__name__, _LOCATIONS, __all__)
