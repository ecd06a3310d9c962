"""The HWM an export's package promises is the one of the moment its invoices were chosen."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ksef_client import KSeF
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.testing import random_nip, sample_invoice


class _Time:
    """A fake clock for the client; ``hook`` runs at each sleep (each status poll's wait)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.hook: list[object] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        while self.hook:
            hook = self.hook.pop()
            hook()  # type: ignore[operator]


def _send(ksef: KSeF, seller: str, numbers: list[str]) -> None:
    with ksef.online_session() as session:
        for number in numbers:
            session.send(sample_invoice(number, seller_nip=seller))
    ksef.sessions.wait(session.reference_number)


def test_invoices_stored_while_an_export_runs_come_with_the_next_sync(tmp_path: Path) -> None:
    # Found in review: the package's permanentStorageHwmDate was read when the package was built (a
    # later poll), its invoices chosen when the export started; invoices stored in between were in
    # neither this package nor the next window (which starts at that HWM), so sync() lost them.
    # Spec, InvoicePackage.permanentStorageHwmDate: "System gwarantuje, że dane poniżej tej wartości
    # są spójne i kompletne".
    seller = random_nip()
    with ThreadedServer(KSeFBackend(workers=1), strict=True) as server:
        server.backend.transitions.session_reads = 1  # an export answers 100 once, then is built
        time = _Time()
        ours = KSeF(base_url=server.base_url, access_token=server.backend.mint_access_token(seller),
                    sleep=time.sleep, clock=time.clock, rate_limit_scale=0)  # fmt: skip
        other = KSeF(base_url=server.base_url, access_token=server.backend.mint_access_token(seller),
                     rate_limit_scale=0)  # fmt: skip
        with ours, other:
            _send(other, seller, ["FV/EXP/1"])
            state, folder = tmp_path / "state.json", tmp_path / "in"
            start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            got = set(ours.invoices.sync("Subject1", state, folder, start=start).ksef_numbers)
            time.hook.append(lambda: _send(other, seller, ["FV/EXP/2", "FV/EXP/3"]))  # during the export
            for _ in range(3):
                got |= set(ours.invoices.sync("Subject1", state, folder).ksef_numbers)
        stored = {invoice.ksef_number for invoice in server.backend.invoices.state.accepted}
        assert len(stored) == 3 and got == stored
        assert server.app.violations == []
