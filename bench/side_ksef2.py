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
import ksef2  # noqa: E402
from _child import invoices, main, peak_rss_mb, repeated, timed  # noqa: E402
from drive_ksef2 import LoopbackTransport  # noqa: E402
from ksef2 import Client, Environment, FormSchema, TransportConfig  # noqa: E402
from lxml import etree  # noqa: E402

INTERVAL = 0.1  # status polling, the same for both SDKs
# The FA(3) XSD that ksef2 ships (its invoice builder validates against it): what its user has at
# hand to check invoices before sending, as ksef-client does by default.
FA3_XSD = Path(ksef2.__file__).parent / "_infra" / "schema" / "fa3" / "definitions" / "schemat.xsd"


def checker() -> Any:
    """A check of one invoice against the FA(3) XSD as a ksef2 user writes it: lxml's parse and
    libxml2's validation (``DocumentInvalid`` on fault), the schema compiled once, untimed."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    schema = etree.XMLSchema(etree.parse(str(FA3_XSD), parser))
    return lambda document: schema.assertValid(etree.fromstring(document, parser))


def login(args: dict[str, Any]) -> Any:
    http = httpx.Client(transport=LoopbackTransport(args["api_url"]), timeout=60.0)
    client = Client(Environment.TEST, http_client=http, transport_config=TransportConfig())
    return client.authentication.with_token(ksef_token=args["ksef_token"], nip=args["nip"], timeout=60)


def session(args: dict[str, Any]) -> dict[str, Any]:
    """See ``bench/side_ours.py``: the same steps through ksef2. Its session UPO is bytes (ksef2
    has no parser for it)."""
    auth = login(args)
    out: dict[str, Any] = {}
    template, check = Path(args["template"]).read_bytes(), checker()
    warm = _batch(auth, invoices(template, "WARM", args["count"]), {})  # as large as the timed ones
    _numbers(warm)
    warm.download_upo()
    batch = _batch(auth, invoices(template, "KSEF2", args["count"]), out)
    # The same work as ksef-client's default: every invoice checked against the XSD first.
    _batch(auth, invoices(template, "KSEF2V", args["count"]), out, check)
    out["batch_peak_rss_mb"] = peak_rss_mb()
    floor = invoices(template, "FLOOR", args["count"])
    with timed(out, "xsd_floor"):  # the check alone, as ksef2's user writes it (ksef-client's child: its own)
        for document in floor:
            check(document)
    with timed(out, "list"):
        numbers = _numbers(batch)
    assert len(numbers) == args["count"] and all(numbers), len(numbers)
    pages = batch.download_upo()  # the emulator builds and signs it on the first download
    assert pages

    def upo(_: int, figures: dict[str, Any]) -> None:
        with timed(figures, "upo"):
            assert batch.download_upo() == pages

    repeated(out, args["repeats"], upo)
    return out


def _batch(auth: Any, xml: list[bytes], out: dict[str, Any], check: Any = None) -> Any:
    with timed(out, "batch" if check is None else "batch_checked"):
        if check is not None:
            for document in xml:
                check(document)
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
    template, check = Path(args["template"]).read_bytes(), checker()
    # Both ways once, untimed, as ksef-client's child does.
    _online(auth, invoices(template, "WARMON", 2), {})
    _online(auth, invoices(template, "WARMOV", 2), {}, check)
    _online(auth, invoices(template, "KSEF2ON", args["count"]), out)
    # The same work as ksef-client's default: each invoice checked against the XSD before it is sent.
    _online(auth, invoices(template, "KSEF2OV", args["count"]), out, check)
    return out


def _online(auth: Any, xml: list[bytes], out: dict[str, Any], check: Any = None) -> None:
    with timed(out, "online" if check is None else "online_checked"):
        with auth.online_session(form_code=FormSchema.FA3) as opened:
            for document in xml:
                if check is not None:
                    check(document)
                opened.send_invoice(document)
        opened.wait(timeout=600, poll_interval=INTERVAL)


if __name__ == "__main__":
    sys.exit(main({"session": session, "online": online}))
