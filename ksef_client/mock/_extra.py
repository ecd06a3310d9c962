"""What the emulator needs beyond the SDK: the ``mock`` extra (``pip install 'ksef-sdk[mock]'``)."""

from __future__ import annotations


def missing_mock_extra(error: ImportError) -> ModuleNotFoundError:
    """The error to raise when a module of the mock extra failed to import: it says what to install.

    ``ksef-sdk`` alone installs the ``ksef-mock`` script and registers the ``ksef_mock`` pytest
    fixture, so a user without the extra reaches the emulator and would otherwise see only
    "No module named 'uvicorn'"."""
    return ModuleNotFoundError(
        f"the KSeF emulator needs the mock extra: pip install 'ksef-sdk[mock]' ({error})", name=error.name
    )
