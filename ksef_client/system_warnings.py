"""``X-System-Warning``: technical warnings KSeF attaches to a successful answer (API 2.9.0).

A warning does not change the answer; it says that something the integration does may be refused
in a future release. The SDK logs each one on the ``ksef_client`` logger (WARNING) and keeps the
latest on ``ksef.send_state.system_warnings``, so a test or a health check can assert there are
none. On KSeF TEST (and the emulator) a request header ``X-Test-System-Warning`` makes the answer
carry its text, to try the handling out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER = "x-system-warning"
TEST_HEADER = "X-Test-System-Warning"
KEPT = 100  # the latest warnings kept on send_state (a long-running client must not grow)

# One warning, as the spec gives its format: ``[code]: message``, several joined by `` | ``.
_WARNING = re.compile(r"\[(?P<code>[^\]]+)\]: (?P<message>[^|]+)")


@dataclass(frozen=True)
class SystemWarning:
    """One warning of an answer: KSeF's ``code`` (``None`` when the header breaks the spec's
    format, then ``message`` is the whole header) and the request it came with."""

    code: str | None
    message: str
    method: str
    path: str


def parse_system_warnings(value: str, method: str, path: str) -> list[SystemWarning]:
    """The warnings of one ``X-System-Warning`` header value, in order."""
    found = [
        SystemWarning(match["code"].strip(), match["message"].strip(), method, path)
        for match in _WARNING.finditer(value)
    ]
    return found or [SystemWarning(None, value.strip(), method, path)]
