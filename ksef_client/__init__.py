"""ksef_client: Python SDK for KSeF 2.0, Poland's national e-invoicing API.

::

    from ksef_client import KSeF, Environment
    ksef = KSeF(environment=Environment.TEST, access_token="...")
    for session in ksef.sessions.list("Online", statuses=["Succeeded"]):
        ...
"""

from ksef_client._client import AsyncKSeF, KSeF
from ksef_client.environments import Environment
from ksef_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    KSeFError,
    PermissionDeniedError,
    PollTimeoutError,
    RateLimitError,
    UPOHashMismatchError,
)
from ksef_client.upo import SessionUpo, Upo, parse_upo

__version__ = "0.1.0"
__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncKSeF",
    "AuthenticationError",
    "BadRequestError",
    "Environment",
    "KSeF",
    "KSeFError",
    "PermissionDeniedError",
    "PollTimeoutError",
    "RateLimitError",
    "SessionUpo",
    "UPOHashMismatchError",
    "Upo",
    "__version__",
    "parse_upo",
]
