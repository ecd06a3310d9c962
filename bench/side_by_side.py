"""ksef-client beside ksef2 (issue 18's table), each SDK in its own process and its own venv.

Each round starts a fresh emulator per SDK (``peers.run.Emulator``, rate limits off) and runs a
child in the SDK's venv (``bench/side_ours.py`` here, ``bench/side_ksef2.py`` in
``peers/.venv-ksef2``, made by ``peers.run.ensure_venv``): after an untimed batch of the same size,
a batch of N invoices end to end without an XSD check and one with it (ksef2's user checking with
lxml), the check alone, every KSeF number of a session listed and its session UPO downloaded (the
median of several downloads). The order of the SDKs alternates between rounds. The online sessions
of M invoices, the same two ways, run after the rounds in pairs of children, one of each SDK
seconds apart against a fresh emulator per pair (``_online_pairs``). A child reports wall time and
its own CPU time per step (the SDK's own work; the rest is waiting on the emulator, another
process) and its peak RSS over both batches. Figures are medians with the range over rounds (over
pairs for the online rows). Cold start is each SDK's import + client in a fresh process over its
own bare interpreter (bytecode cached), best of alternating runs.

The quick profile (``make test``) runs small sizes, one round, and skips ksef2 unless its venv
already exists (it is never installed there).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ksef_client.testing import random_nip, sample_invoice
from peers.run import PEERS, Emulator, SetupError, ensure_venv, ksef_token

HERE = Path(__file__).resolve().parent
KSEF2 = next(peer for peer in PEERS if peer.name == "ksef2")
COLD_START = {
    "ksef-client": "from ksef_client import KSeF; KSeF(access_token='t')",
    "ksef2": "from ksef2 import Client, Environment; Client(Environment.TEST)",
}
# Each child's figures, in the order of the table.
FIGURES = ("batch_s", "batch_cpu_s", "batch_peak_rss_mb", "batch_unchecked_s", "batch_unchecked_cpu_s",
           "batch_checked_s", "batch_checked_cpu_s", "list_s", "list_cpu_s", "upo_s", "upo_cpu_s", "online_s",
           "online_cpu_s", "online_unchecked_s", "online_unchecked_cpu_s", "online_checked_s", "online_checked_cpu_s",
           "upo_xml_s", "upo_xml_cpu_s", "xsd_floor_cpu_s")  # fmt: skip


def _pythons(quick: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The interpreter of each SDK, and why one is skipped."""
    pythons, skipped = {"ksef-client": sys.executable}, {}
    try:
        if not quick:
            ensure_venv(KSEF2)
        if KSEF2.python.exists():
            pythons["ksef2"] = str(KSEF2.python)
        else:
            skipped["ksef2"] = "quick profile: peers/.venv-ksef2 absent (make peers or make bench installs it)"
    except SetupError as error:
        skipped["ksef2"] = f"not installable here: {error}"[:300]
    return pythons, skipped


def _child(sdk: str, python: str, row: str, args: dict[str, Any], workdir: Path) -> dict[str, Any]:
    script = HERE / ("side_ours.py" if sdk == "ksef-client" else "side_ksef2.py")
    path = workdir / f"{sdk}-{row}.json"
    path.write_text(json.dumps(args), encoding="utf-8")
    done = subprocess.run(
        [python, str(script), row, str(path)], check=False, capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"{sdk} {row} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _context(emulator: Emulator, sdk: str, workdir: Path) -> dict[str, Any]:
    """A seller of its own for ``sdk`` on ``emulator``: its NIP, a KSeF token, an invoice template."""
    nip = random_nip()
    template = workdir / f"template-{sdk}.xml"
    template.write_bytes(sample_invoice("FV/000000", seller_nip=nip, buyer_nip=random_nip()))
    return {"api_url": emulator.api_url, "nip": nip, "template": str(template), "ksef_token": ksef_token(emulator, nip)}


def _round(sdk: str, python: str, sizes: dict[str, int], repeats: dict[str, int], workdir: Path) -> dict[str, Any]:
    """One SDK's batch, listing and UPO rows against a fresh emulator."""
    emulator = Emulator(rate_limits=0, log=workdir / f"emulator-{sdk}.log")
    try:
        emulator.wait_ready()
        session = {**_context(emulator, sdk, workdir), "count": sizes["batch"], "repeats": repeats["upo"]}
        return _child(sdk, python, "session", session, workdir)
    finally:
        emulator.stop()


def _online_pairs(pythons: dict[str, str], count: int, pairs: int, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    """The online rows in pairs: one child of each SDK after the other (order alternating) against
    the same fresh emulator, each SDK as a seller of its own. A session of 200 takes half a
    second, and this shared host's speed drifts over tens of seconds: the two halves of a pair
    run seconds apart, where the batch rounds put minutes between them."""
    runs: dict[str, list[dict[str, Any]]] = {sdk: [] for sdk in pythons}
    for index in range(pairs):
        emulator = Emulator(rate_limits=0, log=workdir / "emulator-online.log")
        try:
            emulator.wait_ready()
            for sdk in list(pythons) if index % 2 == 0 else list(reversed(pythons)):
                online = {**_context(emulator, sdk, workdir), "count": count}
                runs[sdk].append(_child(sdk, pythons[sdk], "online", online, workdir))
        finally:
            emulator.stop()
    return runs


def cold_start(pythons: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    """Import + client in a fresh process over the same interpreter doing nothing (best of
    ``repeat`` alternating runs); for ours also over ``import httpx`` alone."""
    codes = {(sdk, "bare"): "pass" for sdk in pythons}
    codes.update({(sdk, "client"): COLD_START[sdk] for sdk in pythons})
    codes[("ksef-client", "httpx")] = "import httpx"
    best: dict[tuple[str, str], float] = {}
    for key, code in codes.items():  # once each first: bytecode cached, as users run it
        subprocess.run([pythons[key[0]], "-c", code], check=True, capture_output=True)
    for _ in range(repeat):
        for key, code in codes.items():
            start = time.perf_counter()
            subprocess.run([pythons[key[0]], "-c", code], check=True, capture_output=True)
            best[key] = min(best.get(key, float("inf")), time.perf_counter() - start)
    out = {
        sdk: {"over_bare_ms": (best[(sdk, "client")] - best[(sdk, "bare")]) * 1e3, "bare_ms": best[(sdk, "bare")] * 1e3}
        for sdk in pythons
    }
    out["ksef-client"]["over_httpx_ms"] = (best[("ksef-client", "client")] - best[("ksef-client", "httpx")]) * 1e3
    out["ksef-client"]["httpx_over_bare_ms"] = (best[("ksef-client", "httpx")] - best[("ksef-client", "bare")]) * 1e3
    return out


def side_by_side(quick: bool) -> dict[str, Any]:
    """Every row for each SDK available: medians and ranges over rounds."""
    sizes = {"batch": 200, "online": 20} if quick else {"batch": 5_000, "online": 200}
    rounds = 1 if quick else 5
    # The UPO's download (10-20 ms) is the median of 5 within each round's child; the online rows
    # are measured in pairs of children (``_online_pairs``).
    repeats = {"upo": 1, "online_pairs": 2} if quick else {"upo": 5, "online_pairs": 8}  # 2: both orders
    pythons, skipped = _pythons(quick)
    runs: dict[str, list[dict[str, Any]]] = {sdk: [] for sdk in pythons}
    with tempfile.TemporaryDirectory(prefix="ksef-side-") as directory:
        for index in range(rounds):
            order = list(pythons) if index % 2 == 0 else list(reversed(pythons))
            for sdk in order:
                runs[sdk].append(_round(sdk, pythons[sdk], sizes, repeats, Path(directory)))
        online = _online_pairs(pythons, sizes["online"], repeats["online_pairs"], Path(directory))
    figures = {sdk: {**_spread(runs[sdk]), **_spread(online[sdk])} for sdk in pythons}
    return {
        "sizes": sizes,
        "rounds": rounds,
        "repeats": repeats,
        "sdks": figures,
        "cold_start": cold_start(pythons, 3 if quick else 9),
        "skipped": skipped,
        "versions": {sdk: _version(python, sdk) for sdk, python in pythons.items()},
    }


def _spread(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each figure of ``FIGURES`` the runs have: median, min and max."""
    return {
        key: {
            "median": statistics.median(run[key] for run in runs),
            "min": min(run[key] for run in runs),
            "max": max(run[key] for run in runs),
        }
        for key in FIGURES
        if key in runs[0]
    }


def _version(python: str, sdk: str) -> str:
    module = "ksef_sdk" if sdk == "ksef-client" else "ksef2"
    code = f"import importlib.metadata as m, sys; print(m.version({module!r}), sys.version.split()[0])"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False).stdout.split()
    return f"{out[0]} (Python {out[1]})" if len(out) == 2 else "?"


def markdown_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, ksef-client, ksef2, ours vs ksef2) for the README's and RESULTS.md's table."""
    sdks, sizes = result["sdks"], result["sizes"]
    ours, peer = sdks["ksef-client"], sdks.get("ksef2")

    def cell(figures: dict[str, Any] | None, key: str, digits: int = 2) -> str:
        if figures is None:
            return "skipped"
        if key not in figures:  # a figure of a later harness, absent from older results
            return "-"
        f = figures[key]
        return f"{f['median']:.{digits}f} ({f['min']:.{digits}f}-{f['max']:.{digits}f})"

    batch, online = sizes["batch"], sizes["online"]
    neither = "neither SDK checks the invoices against the XSD (ours `validate=False`)"
    both = "both check each invoice against the FA(3) XSD first (ours by default; ksef2's user with lxml)"
    # (what, ours, ksef2's): the same work on both sides of a row.
    rows = [
        (f"batch of {batch:,} invoices, end to end (build, encrypt, upload, close, processed), {neither}, s",
         "batch_unchecked_s", "batch_s"),
        ("same, the SDK's own time (its process's CPU time; the rest is the emulator), s",
         "batch_unchecked_cpu_s", "batch_cpu_s"),
        (f"same batch, {both}, s", "batch_s", "batch_checked_s"),
        ("same, the SDK's own time, s", "batch_cpu_s", "batch_checked_cpu_s"),
        ("client peak RSS over both batches, MB (each SDK's own child process)",
         "batch_peak_rss_mb", "batch_peak_rss_mb"),
        (f"XSD check of those {batch:,} invoices alone (lxml parse + validate, no SDK code; ours against "
         "ksef-client's compiled FA(3) schema, ksef2's against the XSD it ships), CPU s",
         "xsd_floor_cpu_s", "xsd_floor_cpu_s"),
        (f"online session of {online} invoices (open, send, close, processed), {neither}, s",
         "online_unchecked_s", "online_s"),
        ("same, the SDK's own time, s", "online_unchecked_cpu_s", "online_cpu_s"),
        (f"same session, {both}, s", "online_s", "online_checked_s"),
        ("same, the SDK's own time, s", "online_cpu_s", "online_checked_cpu_s"),
        (f"listing {batch:,} session invoices (pageSize 1000), s", "list_s", "list_s"),
        ("same, the SDK's own time, s", "list_cpu_s", "list_cpu_s"),
        (f"session UPO of {batch:,} invoices: ours `get_session_upo_xml` (download, hash check, page check), "
         "ksef2 download (bytes), s", "upo_xml_s", "upo_s"),
        ("same, the SDK's own time, s", "upo_xml_cpu_s", "upo_cpu_s"),
    ]  # fmt: skip
    # Work ksef2 has no counterpart for: ours alone (ksef2's figure beside it is its bytes' download).
    extra = [
        ("same UPO, ours also parsed into typed documents (`get_session_upo`; ksef2 has no UPO parser), s", "upo_s"),
        ("same, the SDK's own time, s", "upo_cpu_s"),
    ]

    def ratio(key: str, peer_key: str) -> str:  # how many times less ours takes (time, memory)
        return "-" if peer is None or peer_key not in peer else f"{peer[peer_key]['median'] / ours[key]['median']:.1f}x"

    table = [(label, cell(ours, key, 0 if "rss" in key else 3), cell(peer, peer_key, 0 if "rss" in key else 3),
              ratio(key, peer_key)) for label, key, peer_key in rows if key in ours]  # fmt: skip
    table += [(label, cell(ours, key, 3), "-", "-") for label, key in extra if key in ours]
    cold = result["cold_start"]
    peer_cold = cold.get("ksef2")
    table.append(
        (
            "cold start: import + client, ms over a bare interpreter (bytecode cached; ours: "
            f"{cold['ksef-client']['over_httpx_ms']:.0f} over `import httpx` alone)",
            f"{cold['ksef-client']['over_bare_ms']:.0f}",
            f"{peer_cold['over_bare_ms']:.0f}" if peer_cold else "skipped",
            f"{peer_cold['over_bare_ms'] / cold['ksef-client']['over_bare_ms']:.1f}x" if peer_cold else "-",
        )
    )
    return table
