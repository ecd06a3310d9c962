"""ksef2's half of the side-by-side rows, run by ksef2's own venv (``peers/.venv-ksef2``, Python
3.12): ``python bench/side_ksef2.py ROW ARGS.json`` prints the row's figures as JSON.

ksef2 is pointed at the emulator by ``make peers``' own transport (``peers/drive_ksef2.py``:
its TEST host rewritten to loopback); nothing in ksef2 is patched. ksef2 logs in with a KSeF
token (not timed); each row then uses its public API as its docs show.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "peers")]

import httpx  # noqa: E402
from _child import invoices, main, peak_rss_mb, timed  # noqa: E402
from drive_ksef2 import LoopbackTransport  # noqa: E402
from ksef2 import Client, Environment, FormSchema, TransportConfig  # noqa: E402

INTERVAL = 0.1  # status polling, the same for both SDKs


def login(args: dict[str, Any]) -> Any:
    http = httpx.Client(transport=LoopbackTransport(args["api_url"]), timeout=60.0)
    client = Client(Environment.TEST, http_client=http, transport_config=TransportConfig())
    return client.authentication.with_token(ksef_token=args["ksef_token"], nip=args["nip"], timeout=60)


def session(args: dict[str, Any]) -> dict[str, Any]:
    """See ``bench/side_ours.py``: the same steps through ksef2. Its session UPO is bytes (ksef2
    has no parser for it)."""
    auth = login(args)
    out: dict[str, Any] = {}
    warm = _batch(auth, invoices(Path(args["template"]).read_bytes(), "WARM", 10), {})
    _numbers(warm)
    warm.download_upo()
    batch = _batch(auth, invoices(Path(args["template"]).read_bytes(), "KSEF2", args["count"]), out)
    out["batch_peak_rss_mb"] = peak_rss_mb()
    with timed(out, "list"):
        numbers = _numbers(batch)
    assert len(numbers) == args["count"] and all(numbers), len(numbers)
    batch.download_upo()  # the emulator builds and signs it on the first download
    with timed(out, "upo"):
        pages = batch.download_upo()
    assert pages
    return out


def _batch(auth: Any, xml: list[bytes], out: dict[str, Any]) -> Any:
    with timed(out, "batch"):
        batch = auth.batch.submit(xml)
        batch.wait(timeout=600, poll_interval=INTERVAL)
    return batch


def _numbers(batch: Any) -> list[str]:
    numbers, token = [], None
    while True:  # ksef2 lists one page per call; the caller follows the continuation token
        page = batch.list_invoices(page_size=1000, continuation_token=token)
        numbers += [item.ksef_number for item in page.invoices]
        token = page.continuation_token
        if not token:
            return numbers


def online(args: dict[str, Any]) -> dict[str, Any]:
    auth = login(args)
    out: dict[str, Any] = {}
    _online(auth, invoices(Path(args["template"]).read_bytes(), "WARMON", 2), {})
    _online(auth, invoices(Path(args["template"]).read_bytes(), "KSEF2ON", args["count"]), out)
    return out


def _online(auth: Any, xml: list[bytes], out: dict[str, Any]) -> None:
    with timed(out, "online"):
        with auth.online_session(form_code=FormSchema.FA3) as opened:
            for document in xml:
                opened.send_invoice(document)
        opened.wait(timeout=600, poll_interval=INTERVAL)


if __name__ == "__main__":
    sys.exit(main({"session": session, "online": online}))
