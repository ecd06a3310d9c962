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
