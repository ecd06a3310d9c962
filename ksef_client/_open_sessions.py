"""The sessions a client opened and has not closed yet, so that ``sessions.wait`` can refuse at once
to wait for one: KSeF processes a session only after its close, and an open one stays at 100
until KSeF closes it itself (an online session at its ``validUntil``, 12 hours after the open).

A session is recorded when its open is answered (``OnlineSession``/``AsyncOnlineSession``, and the
batch session of ``send_batch``) and forgotten as soon as a close of it goes out, whatever the
close's fate: a close that failed may have gone through all the same, and ``wait`` then polls as
for any other session (its ``PollTimeoutError`` at 100 says the session may never have been
closed). A client and its ``with_options`` copies share one record.
"""

from __future__ import annotations

import threading
from typing import Literal

SessionKind = Literal["online", "batch"]

# What ``sessions.wait`` says, by the kind of session, when the session is one the client holds open.
STILL_OPEN: dict[SessionKind, str] = {
    "online": (
        "session {ref} is still open: this client opened it and has not closed it, and KSeF processes a "
        "session, so wait() can end, only after its close. Close it first: leave the `with "
        "ksef.online_session() as session:` block (`async with` on AsyncKSeF), or call session.close() "
        "(await session.close()); then wait"
    ),
    "batch": (
        "batch session {ref} is still open: the send_batch that opened it failed before closing it (its "
        "error's note said so), and KSeF processes nothing from a session that was not closed, so wait() "
        "would never end. Send the invoices again with send_batch (a new session)"
    ),
}


class OpenSessions:
    """Reference numbers of the sessions a client opened and sent no close for, with their kind."""

    def __init__(self) -> None:
        self._kinds: dict[str, SessionKind] = {}
        self._lock = threading.Lock()

    def opened(self, reference_number: str, kind: SessionKind) -> None:
        """Record a session whose open KSeF answered."""
        with self._lock:
            self._kinds[reference_number] = kind

    def closing(self, reference_number: str) -> None:
        """Forget a session: a close of it is going out (it may end closed even if the call fails)."""
        with self._lock:
            self._kinds.pop(reference_number, None)

    def check_not_open(self, reference_number: str) -> None:
        """``RuntimeError`` saying how to close it when the session is one this client holds open."""
        with self._lock:
            kind = self._kinds.get(reference_number)
        if kind is not None:
            raise RuntimeError(STILL_OPEN[kind].format(ref=reference_number))
