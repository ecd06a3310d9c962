"""ksef_client: Python SDK for KSeF 2.0, Poland's national e-invoicing API."""

__version__ = "0.1.0"
__all__ = ["__version__"]
