"""Injected faults: deterministic (queued rules) or a seeded random share of requests."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

DROP = 0  # ``Fault(DROP)``: the connection breaks before the request is handled
DROP_AFTER = -1  # ``Fault(DROP_AFTER)``: the request is handled, then the answer is lost


@dataclass(frozen=True)
class Fault:
    """Answer a request with ``status`` instead of handling it (429s carry ``retry_after``, 5xx
    answers when it is given); ``Fault(DROP)`` breaks the connection; ``delay`` (seconds) only
    slows the answer down."""

    status: int
    retry_after: int | None = None
    delay: float = 0.0


@dataclass
class _Rule:
    operation: str | None
    fault: Fault
    remaining: int


class Faults:
    """Which requests fail. Rules apply first, in order; then the random share, if any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """No faults."""
        with self._lock:
            self._rules: list[_Rule] = []
            self.injected = 0  # how many requests got a fault (for reports)
            self._rate = 0.0
            self._random_faults: tuple[Fault, ...] = ()
            self._rng = random.Random(0)  # noqa: S311 - seeded faults must repeat
            # Presigned downloads answer with a wrong x-ms-meta-hash (a corrupted transfer).
            self.corrupt_downloads = False
            # Export packages built from now on carry a damaged ``_metadata.json``: ``"missing"``
            # leaves the file out, ``"short"`` leaves its last record out (that invoice's file stays).
            self.export_metadata: str | None = None

    def add(
        self, status: int, *, operation: str | None = None, times: int = 1, retry_after: int | None = None,
        delay: float = 0.0,
    ) -> None:  # fmt: skip
        """Fail the next ``times`` requests of ``operation`` (``tag.operation_id``, or
        ``storage.upload_part`` for batch part uploads; ``None``: any API operation).

        ``status`` 429 gives KSeF's rate-limit answer, 5xx a gateway page (with ``Retry-After``
        when ``retry_after`` is given), ``DROP`` a broken connection, 200 with ``delay`` a slow
        but correct answer.
        """
        with self._lock:
            self._rules.append(_Rule(operation, Fault(status, retry_after, delay), times))

    def set_random(self, rate: float, *, seed: int = 0, faults: tuple[Fault, ...] | None = None) -> None:
        """Fail a seeded share ``rate`` of all requests with faults drawn from ``faults``."""
        with self._lock:
            self._rate = rate
            self._rng = random.Random(seed)  # noqa: S311 - seeded faults must repeat
            self._random_faults = faults or (Fault(500), Fault(502), Fault(503), Fault(429, retry_after=1))

    def take(self, operation: str, *, seeded: bool = True) -> Fault | None:
        """The fault for this request, if one applies (consuming a rule's count); ``seeded=False``:
        only the rules naming ``operation`` apply (storage, whose errors are not KSeF's)."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.operation in ((None, operation) if seeded else (operation,)):
                    rule.remaining -= 1
                    self.injected += 1
                    return rule.fault
            if seeded and self._rate and self._rng.random() < self._rate:
                self.injected += 1
                return self._rng.choice(self._random_faults)
        return None
