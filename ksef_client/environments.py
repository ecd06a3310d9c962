"""KSeF environments and their API base URLs."""

from __future__ import annotations

from enum import Enum


class Environment(Enum):
    """The three public KSeF environments; the value is the API base URL."""

    TEST = "https://api-test.ksef.mf.gov.pl/v2"
    DEMO = "https://api-demo.ksef.mf.gov.pl/v2"
    PROD = "https://api.ksef.mf.gov.pl/v2"

    @property
    def base_url(self) -> str:
        """The API base URL, ending in ``/v2``."""
        return self.value

    @property
    def qr_host(self) -> str:
        """Host of the verification links printed as QR codes (KOD I, KOD II)."""
        return {"TEST": "qr-test.ksef.mf.gov.pl", "DEMO": "qr-demo.ksef.mf.gov.pl", "PROD": "qr.ksef.mf.gov.pl"}[
            self.name
        ]


def parse_environment(environment: Environment | str, field: str = "environment") -> Environment:
    """``environment`` as an ``Environment``: a member, or its name in any case (``"test"``,
    ``"DEMO"``, ``"Prod"``); ``ValueError`` naming ``field`` and the accepted names otherwise (the
    Ministry's abbreviations ``TE`` and ``PRD`` in kody-qr.md are not names of this enum)."""
    if isinstance(environment, Environment):
        return environment
    try:
        return Environment[str(environment).upper()]
    except KeyError:
        names = ", ".join(member.name for member in Environment)
        raise ValueError(f"{field}: {environment!r} is not an environment; one of {names} (any case)") from None
