"""Send a batch of invoices, then export them back (decrypted, unpacked) and compare.

python -m examples.batch_and_export
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

from examples._emulator import base_url
from ksef_client import KSeF
from ksef_client.testing import sample_invoice, self_signed_certificate


def main(out_dir: Path, count: int = 50) -> int:
    """Send ``count`` invoices in one batch and export them into ``out_dir``; returns how many came back."""
    seal = self_signed_certificate(kind="seal")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    sent = {f"B/{i}/2026": sample_invoice(f"B/{i}/2026", seller_nip=seal.nip) for i in range(count)}
    with base_url() as url, KSeF(base_url=url) as ksef:
        ksef.auth.login_with_certificate(seal, context_nip=seal.nip)
        done = ksef.send_batch(list(sent.values()), wait=True, progress=lambda stage, n, total: None)
        print(f"batch {done.reference_number}: {done.invoice_count} invoices in {done.part_count} part(s)")
        exported = ksef.invoices.export(out_dir, "Subject1", date_from=since)
        by_number = {m["ksefNumber"]: m["invoiceNumber"] for m in exported.metadata}
        same = sum(1 for path in exported.files if path.read_bytes() == sent[by_number[path.stem]])
        print(f"exported {len(exported.files)} invoices, {same} identical to what was sent")
        return same


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
