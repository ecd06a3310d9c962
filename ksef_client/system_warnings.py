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
# Read of a header value, at most (KSeF's warnings are a line or two). A server may send up to h11's
# 16 KB header: all of it would be parsed on every answer and logged in full at WARNING.
MAX_HEADER = 2048

# One warning, as the spec gives its format: ``[code]: message``, several joined by `` | `` (its
# regex is ``\[(?<code>[^\]]+)\]: (?<message>[^|]+)``). The code here holds no ``[`` and at most
# 100 characters: the spec's ``[^\]]+`` runs from every ``[`` of a run of them to its end, quadratic
# in the run's length (16 KB of ``[``: 0.7 s of CPU per answer).
_WARNING = re.compile(r"\[(?P<code>[^\[\]]{1,100})\]: (?P<message>[^|]+)")


@dataclass(frozen=True)
class SystemWarning:
    """One warning of an answer: KSeF's ``code`` (``None`` when the header breaks the spec's
    format, then ``message`` is the whole header) and the request it came with."""

    code: str | None
    message: str
    method: str
    path: str


def parse_system_warnings(value: str, method: str, path: str) -> list[SystemWarning]:
    """The warnings of one ``X-System-Warning`` header value, in order; only its first
    ``MAX_HEADER`` characters are read (``…`` marks a value cut there), and only their printable
    ones: the warnings are logged, and a log may be a terminal (C1 controls such as CSI pass h11
    as obs-text)."""
    if len(value) > MAX_HEADER:
        value = value[:MAX_HEADER] + "…"
    if not value.isprintable():
        value = "".join(filter(str.isprintable, value))
    found = [
        SystemWarning(match["code"].strip(), match["message"].strip(), method, path)
        for match in _WARNING.finditer(value)
    ]
    return found or [SystemWarning(None, value.strip(), method, path)]
