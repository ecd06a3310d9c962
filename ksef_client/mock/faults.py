"""Injected faults: deterministic (queued rules) or a seeded random share of requests."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

DROP = 0  # ``Fault(DROP)``: the connection breaks before the request is handled
DROP_AFTER = -1  # ``Fault(DROP_AFTER)``: the request is handled, then the answer is lost


@dataclass(frozen=True)
class Fault:
    """Answer a request with ``status`` instead of handling it (429s carry ``retry_after``, 5xx
    answers when it is given); ``Fault(DROP)`` breaks the connection; ``delay`` (seconds) only
    slows the answer down.

    With ``code`` (``status`` 400) the answer is KSeF's error body for that exception code, in the
    format the request asked for (``ExceptionResponse``, or problem details with ``X-Error-Format:
    problem-details``): ``description`` and ``details`` as given, or, left ``None``, the spec's
    texts of the code (``Faults.add``).
    """

    status: int
    retry_after: int | None = None
    delay: float = 0.0
    code: int | None = None
    description: str | None = None
    details: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.code is None:
            if self.description is not None or self.details is not None:
                raise ValueError("description and details: only with a code")
            return
        if isinstance(self.code, bool) or not isinstance(self.code, int) or self.code <= 0:
            raise TypeError(f"code: a KSeF exception code (a positive int), not {self.code!r}")
        if self.status != 400:
            raise ValueError(f"code: KSeF's exception codes come with status 400, not {self.status}")
        if self.description is not None and not isinstance(self.description, str):
            raise TypeError("description: a str")
        if self.details is not None and (
            isinstance(self.details, str) or not all(isinstance(d, str) for d in self.details)
        ):
            raise TypeError("details: a sequence of str")


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
        delay: float = 0.0, code: int | None = None, description: str | None = None,
        details: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        """Fail the next ``times`` requests of ``operation`` (``tag.operation_id``, or
        ``storage.upload_part`` for batch part uploads, ``storage.download`` for presigned
        downloads; ``None``: any API operation).

        ``status`` 429 gives KSeF's rate-limit answer, 5xx a gateway page (with ``Retry-After``
        when ``retry_after`` is given; on storage an Azure-like error), ``DROP`` a broken
        connection, 200 with ``delay`` a slow but correct answer (any status below 400: the
        request is handled as without the rule); ``delay`` is waited before any of them.
        ``status`` 400 with ``code`` gives KSeF's error body for that code:
        ``faults.add(400, code=21184, operation="online_session.send_invoice")`` answers as KSeF
        does during maintenance ("Sesja tymczasowo niedostępna."). ``description`` and ``details``
        default to the spec's texts of the code (the operation's 400 table, else the first one
        listing it), ``{name}`` placeholders filled from the request's path parameters; a code no
        table lists needs a ``description`` (``ValueError`` otherwise, as for a code on a storage
        operation, whose errors are not KSeF's).
        """
        if isinstance(details, str):
            raise TypeError("details: a sequence of str, not one str")
        fault = Fault(status, retry_after, delay, code, description, None if details is None else tuple(details))
        if code is not None:
            if operation is not None and operation.startswith("storage."):
                raise ValueError(f"code: {operation} is blob storage, which gives no KSeF exception codes")
            if description is None:
                from ksef_client.mock.validation import documented_error  # noqa: PLC0415 - the spec, when needed

                if documented_error(code) is None:
                    raise ValueError(f"code {code}: no 400 table of the spec lists it; give its description")
        with self._lock:
            self._rules.append(_Rule(operation, fault, times))

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
