"""ksef-client's half of the side-by-side rows (run by ``bench/side_by_side.py`` in this venv).

``python bench/side_ours.py ROW ARGS.json`` prints the row's figures as JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _child import invoices, main, peak_rss_mb, repeated, timed
from lxml import etree

from ksef_client import KSeF
from ksef_client.schemas import form_schema

INTERVAL = 0.1  # status polling, the same for both SDKs


def client(args: dict[str, Any]) -> KSeF:
    """Logged in with a KSeF token, as ksef2 is (not timed)."""
    ksef = KSeF(base_url=args["api_url"], rate_limit_scale=0)
    ksef.auth.login_with_token(args["ksef_token"], context_nip=args["nip"], interval=INTERVAL)
    return ksef


def _batch(ksef: KSeF, xml: list[bytes], out: dict[str, Any], *, validate: bool = True) -> str:
    with timed(out, "batch" if validate else "batch_unchecked"):
        ref = ksef.send_batch(xml, validate=validate).reference_number
        ksef.sessions.wait(ref, interval=INTERVAL, timeout=600)
    return ref


def session(args: dict[str, Any]) -> dict[str, Any]:
    """A batch of N invoices end to end (build, encrypt, upload, close, processed) as ksef2 sends
    it (no XSD check), then the same with the check (the default), then every KSeF number of the
    session listed, and the session UPO downloaded, checked and parsed (ksef2 hands out its bytes).
    A batch of the same size first, untimed: both timed batches run in the steady state, the
    emulator's worker processes (started by a package of 500 invoices or more) and each process's
    heap grown already (start-up is a row of its own)."""
    out: dict[str, Any] = {}
    template = Path(args["template"]).read_bytes()
    with client(args) as ksef:
        warm = _batch(ksef, invoices(template, "WARM", args["count"]), {})
        list(ksef.sessions.invoices(warm))
        ksef.upo.get_session_upo(warm)
        # The same order as ksef2's child: without the check first, then with it.
        _batch(ksef, invoices(template, "OURSNV", args["count"]), out, validate=False)
        ref = _batch(ksef, invoices(template, "OURS", args["count"]), out)
        out["batch_peak_rss_mb"] = peak_rss_mb()
        _xsd_floor(invoices(template, "FLOOR", args["count"]), out)
        with timed(out, "list"):
            numbers = [item.ksef_number for item in ksef.sessions.invoices(ref, page_size=1000)]
        assert len(numbers) == args["count"] and all(numbers), len(numbers)
        pages = ksef.upo.get_session_upo_xml(ref)  # the emulator builds and signs it on the first download

        def upo_xml(_: int, figures: dict[str, Any]) -> None:  # like for like with ksef2: the bytes
            with timed(figures, "upo_xml"):
                assert ksef.upo.get_session_upo_xml(ref) == pages  # x-ms-meta-hash and pages checked

        def upo(_: int, figures: dict[str, Any]) -> None:  # ours alone: also parsed
            with timed(figures, "upo"):
                assert ksef.upo.get_session_upo(ref).xml == pages

        repeated(out, args["repeats"], upo_xml)
        repeated(out, args["repeats"], upo)
    return out


def _xsd_floor(xml: list[bytes], out: dict[str, Any]) -> None:
    """What the XSD check of these invoices costs on its own: lxml's parse and libxml2's validation
    against ksef-client's compiled FA(3) schema (PL and PLN first in its enumerations), with none
    of the SDK's code around them (ksef2's child measures the same with the XSD it ships)."""
    schema, parser = form_schema("FA (3)"), etree.XMLParser(resolve_entities=False, no_network=True)
    with timed(out, "xsd_floor"):
        valid = all([schema.validate(etree.fromstring(document, parser)) for document in xml])
    assert valid


def online(args: dict[str, Any]) -> dict[str, Any]:
    """An online session of N invoices (open, send each, close, processed) without the XSD check
    (as ksef2 sends), then one with each invoice checked before it is sent (``validate=True``, the
    default; ksef2's child checks with lxml). A session of 2 each way first, untimed."""
    out: dict[str, Any] = {}
    template = Path(args["template"]).read_bytes()
    with client(args) as ksef:
        # Both ways once, untimed: each timed session runs on warm code paths.
        _online(ksef, invoices(template, "WARMNV", 2), {}, validate=False)
        _online(ksef, invoices(template, "WARMON", 2), {})
        # The same order as ksef2's child: without the check first (as ksef2 sends), then with it.
        _online(ksef, invoices(template, "OURSNV", args["count"]), out, validate=False)
        _online(ksef, invoices(template, "OURSON", args["count"]), out)
    return out


def _online(ksef: KSeF, xml: list[bytes], out: dict[str, Any], *, validate: bool = True) -> None:
    with timed(out, "online" if validate else "online_unchecked"):
        with ksef.online_session(validate=validate) as opened:
            for document in xml:
                opened.send(document)
        ksef.sessions.wait(opened.reference_number, interval=INTERVAL, timeout=600)


if __name__ == "__main__":
    sys.exit(main({"session": session, "online": online}))
