"""``make soak``: send invoices through a faulty emulator and prove nothing is lost or numbered twice.

20 % of API requests fail (seeded): 500/502/503, 429 with Retry-After, connections reset before
and after the server handled the request, latency spikes. Online sessions and batches are sent,
every session is waited for, every UPO downloaded (hash-checked), everything listed back.
``SOAK_QUICK=1`` (CI) sends 120 + 120 invoices with simulated waiting; the full run 2,000 + 2,000
in real time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Any

from ksef_client import KSeF
from ksef_client.mock.faults import DROP, DROP_AFTER, Fault
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import sample_invoice

NIP = "5265877635"
FAULTS = (
    Fault(500),
    Fault(502),
    Fault(503),
    Fault(429, retry_after=1),
    Fault(DROP),
    Fault(DROP_AFTER),
    Fault(200, delay=2.0),
)


class SimulatedTime:
    """Sleeps advance a counter instead of the wall clock (quick profile)."""

    def __init__(self) -> None:
        self.slept = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept += seconds

    def clock(self) -> float:
        return time.monotonic() + self.slept


def soak(online: int, batch: int, *, rate: float = 0.2, seed: int = 7, quick: bool = False) -> dict[str, Any]:
    """Run the soak; returns the figures (the caller asserts on them)."""
    faults = tuple(Fault(f.status, f.retry_after, 0.01 if quick else f.delay) for f in FAULTS)
    started = time.perf_counter()
    simulated = SimulatedTime()
    options: dict[str, Any] = {"max_retries": 8, "max_retry_after": 5, "rate_limit_scale": 0}
    if quick:
        options.update(sleep=simulated.sleep, clock=simulated.clock)
    with ThreadedServer() as server:
        backend = server.backend
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        with KSeF(base_url=server.base_url, access_token=backend.mint_access_token(NIP), **options) as ksef:
            keys = ksef.auth.public_key_certificates()  # fetched before the faults start
            assert keys
            backend.faults.set_random(rate, seed=seed, faults=faults)
            numbers: dict[str, str | None] = {}
            sessions: list[str] = []
            for first in range(0, online, 100):
                names = [f"ON/{i}" for i in range(first, min(online, first + 100))]
                with ksef.online_session() as session:
                    for name in names:
                        session.send(sample_invoice(name))
                ksef.sessions.wait(str(session.reference_number), timeout=3600)
                numbers.update(zip(names, session.ksef_numbers(), strict=True))
                sessions.append(str(session.reference_number))
            for first in range(0, batch, 500):
                names = [f"BA/{i}" for i in range(first, min(batch, first + 500))]
                result = ksef.send_batch([(f"{n.replace('/', '-')}.xml", sample_invoice(n)) for n in names], wait=True)
                listed = {i.invoice_file_name: i.ksef_number for i in ksef.sessions.invoices(result.reference_number)}
                numbers.update({n: listed.get(f"{n.replace('/', '-')}.xml") for n in names})  # type: ignore[misc]
                sessions.append(result.reference_number)
            upo_numbers = {d.ksef_number for ref in sessions for d in ksef.upo.get_session_upo(ref).documents}
            listed_back = {r.ksef_number for r in ksef.invoices.query("Subject1", date_from=since, page_size=250)}
            injected = backend.faults.injected
            backend.faults.clear()
            requests, retries = ksef.send_state.requests_sent, ksef.send_state.retries
    stored = Counter(
        i.invoice_number for s in backend.sessions.state.sessions.values() for i in s.invoices if i.status.code == 200
    )
    resolved = {name: number for name, number in numbers.items() if number}
    return {
        "invoices_sent": online + batch,
        "lost": online + batch - len(resolved),
        "duplicates": sum(count - 1 for count in stored.values() if count > 1),
        "distinct_ksef_numbers": len(set(resolved.values())),
        "upo_missing": len(set(resolved.values()) - upo_numbers),
        "listed_back_missing": len(set(resolved.values()) - listed_back),
        "requests": requests,
        "faults_injected": injected,
        "client_retries": retries,
        "sessions": len(sessions),
        "wall_seconds": time.perf_counter() - started,
        "simulated_wait_seconds": simulated.slept,
    }


def main() -> int:
    # The emulator's deliberately broken answers would each print a traceback.
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    quick = os.environ.get("SOAK_QUICK") == "1"
    figures = soak(120, 120, quick=True) if quick else soak(2000, 2000)
    print(json.dumps(figures, indent=2))
    ok = figures["lost"] == figures["duplicates"] == figures["upo_missing"] == figures["listed_back_missing"] == 0
    print("soak: OK" if ok else "soak: FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
