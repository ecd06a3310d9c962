"""Where the examples run: ``KSEF_BASE_URL`` if set (e.g. KSeF TEST), else a local emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def base_url() -> Iterator[str]:
    """The API base URL to use; starts the emulator on 127.0.0.1 when none is configured.

    The emulator runs in strict mode: an answer KSeF would never give is a 500 naming the
    violation, and leaving the block raises if there was one (the emulator's bug, not the example's).
    """
    configured = os.environ.get("KSEF_BASE_URL")
    if configured:
        yield configured
        return
    from ksef_client.mock.server import ThreadedServer  # noqa: PLC0415 - only without KSEF_BASE_URL

    with ThreadedServer(strict=True) as server:
        yield server.base_url
    if server.app.violations:
        raise RuntimeError("the KSeF emulator answered against the spec:\n" + "\n".join(server.app.violations[:10]))
