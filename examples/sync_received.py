"""Fetch received invoices incrementally: each run takes only what arrived since the last one.

python -m examples.sync_received STATE_DIR
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

from examples._emulator import base_url
from ksef_client import KSeF
from ksef_client.testing import random_nip, sample_invoice, self_signed_certificate


def main(state_dir: Path) -> tuple[int, int]:
    """A supplier sends invoices to us twice; two sync runs; returns how many each run fetched."""
    buyer = self_signed_certificate(kind="seal")
    supplier = self_signed_certificate(kind="seal", nip=random_nip())
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    state, inbox = state_dir / "sync-state.json", state_dir / "inbox"
    with base_url() as url, KSeF(base_url=url) as ours, KSeF(base_url=url) as theirs:
        ours.auth.login_with_certificate(buyer, context_nip=buyer.nip)
        theirs.auth.login_with_certificate(supplier, context_nip=supplier.nip)
        runs = []
        for batch in ("A", "B"):
            invoices = [sample_invoice(f"{batch}/{i}", seller_nip=supplier.nip, buyer_nip=buyer.nip) for i in range(5)]
            theirs.send_batch(invoices, wait=True)
            # syncing: the report is dropped only once this block ends without an error (an error
            # here, or a kill, and the next run reports these invoices again)
            with ours.invoices.syncing("Subject2", state, inbox, start=start) as fetched:
                print(f"run {batch}: {len(fetched.ksef_numbers)} new invoice(s) in {inbox}")
                runs.append(len(fetched.ksef_numbers))
        return runs[0], runs[1]


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
