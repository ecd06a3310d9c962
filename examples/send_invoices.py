"""Log in with a certificate, send invoices in an online session, wait, save the UPO.

python -m examples.send_invoices            # against a local emulator
KSEF_BASE_URL=https://api-test.ksef.mf.gov.pl/v2 python -m examples.send_invoices
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from examples._emulator import base_url
from ksef_client import KSeF
from ksef_client.testing import sample_invoice, self_signed_certificate


def main(out_dir: Path) -> list[str]:
    """Send three invoices; returns their KSeF numbers and writes the session UPO to ``out_dir``."""
    seal = self_signed_certificate(kind="seal")  # TEST accepts self-signed seals for any valid NIP
    with base_url() as url, KSeF(base_url=url) as ksef:
        ksef.auth.login_with_certificate(seal, context_nip=seal.nip)
        with ksef.online_session(form="FA(3)") as session:
            for number in ("FV/1/2026", "FV/2/2026", "FV/3/2026"):
                session.send(sample_invoice(number, seller_nip=seal.nip))
        status = ksef.sessions.wait(str(session.reference_number), timeout=600)
        print(f"session {session.reference_number}: {status.status.code} {status.status.description}")
        numbers = [n for n in session.ksef_numbers() if n]
        ksef.upo.save_session_upo(str(session.reference_number), out_dir)
        return numbers


if __name__ == "__main__":
    print("\n".join(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))))
