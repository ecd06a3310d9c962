"""``ksef_client.__all__`` is accurate: every name resolves, lazily imported or not."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ksef_client


def test_every_public_name_resolves() -> None:
    for name in ksef_client.__all__:
        assert getattr(ksef_client, name) is not None
    with pytest.raises(AttributeError):
        ksef_client.NoSuchThing  # noqa: B018


def test_import_does_not_load_the_client_or_the_generated_code() -> None:
    code = "import sys, ksef_client; print(sorted(m for m in sys.modules if m.startswith('ksef_client')))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "ksef_client._client" not in loaded and "ksef_client._generated" not in loaded
