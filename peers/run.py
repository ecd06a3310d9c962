"""``make peers``: two other Python KSeF SDKs driven through their own public APIs against ksef-mock.

Runs in this project's venv (``python -m peers``). Steps:

1. Each peer gets its own venv under ``peers/`` from its pinned requirements file (rebuilt when
   the file changes; install time reported apart). ksef2 needs Python >= 3.12; ksef-client
   imports as ``ksef_client`` like this project, hence the separate venvs.
2. The emulator starts as a subprocess (``python -m ksef_client.mock --strict``) on 127.0.0.1:
   every answer it gives is checked against the spec (one KSeF would never give is a 500 naming
   the violation), so a peer cannot pass on a wrong answer, nor fail on one unnoticed.
3. Inputs per peer, made with this project's helpers (the peers cannot import them): a NIP of its
   own, a self-signed certificate + key (PEM files), FA(3) invoices (XML files), and a KSeF token
   created through the emulator's API with an access token from ``POST /_mock/tokens``.
4. The harnesses (``drive_ksef2.py``, ``drive_ksef_client.py``) run one after the other, each in
   its peer's venv, every flow with a deadline, and write JSON results.
5. The flows x SDK table is printed and written to ``peers/RESULTS.md``; every outcome is
   compared with ``peers/expected.json``. Exit 1 when a flow expected to pass did not, or when a
   pinned failure passes now (flip the pin), or fails otherwise than pinned, or when the emulator
   recorded a strict-mode violation (``GET /_mock/violations``): its bug, whichever flow met it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ksef_client.testing import random_nip, sample_invoice, self_signed_certificate
from peers._harness import FLOWS

HERE = Path(__file__).resolve().parent
EXPECTED_FILE = HERE / "expected.json"
RESULTS_FILE = HERE / "RESULTS.md"
DOCS_FILE = HERE.parent / "docs" / "testing-with-the-emulator.md"
DOCS_TABLE = re.compile(r"(<!-- peers-table[^>]*-->\n).*?(<!-- /peers-table -->)", re.DOTALL)


@dataclass(frozen=True)
class Peer:
    name: str  # as on PyPI
    requirements: str  # file under peers/
    venv: str  # directory under peers/
    harness: str  # script under peers/
    min_python: tuple[int, int]

    @property
    def python(self) -> Path:
        return HERE / self.venv / "bin" / "python"


PEERS = [
    Peer("ksef2", "requirements-ksef2.txt", ".venv-ksef2", "drive_ksef2.py", (3, 12)),
    Peer("ksef-client", "requirements-ksef-client.txt", ".venv-ksef-client", "drive_ksef_client.py", (3, 10)),
]


class SetupError(Exception):
    """The job cannot run (no suitable Python, a failed install, an emulator that does not start)."""


# --- 1. venvs ---------------------------------------------------------------------------------


def _python_version(executable: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None  # e.g. a pyenv shim for a version that is installed but not selected
    return int(out[0]), int(out[1])


def find_python(minimum: tuple[int, int]) -> str:
    """An interpreter >= ``minimum``: ``$PEERS_PYTHON312``, ``python3.12``/``python3.13`` on PATH, pyenv's."""
    candidates = [os.environ.get("PEERS_PYTHON312", "")]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(minimum[1], minimum[1] + 3)]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.*/bin/python3.*") if p.name.count(".") == 1)
    if sys.version_info[:2] >= minimum:
        candidates.insert(0, sys.executable)
    for candidate in filter(None, candidates):
        version = _python_version(candidate)
        if version is not None and version >= minimum:
            return candidate
    raise SetupError(
        f"no Python >= {minimum[0]}.{minimum[1]} found (tried $PEERS_PYTHON312, python3.{minimum[1]} on PATH, "
        f"{pyenv_root}/versions): ksef2 needs it. Install one, or set PEERS_PYTHON312=/path/to/python3.12."
    )


def ensure_venv(peer: Peer) -> float | None:
    """Create or refresh the peer's venv from its requirements; seconds spent, None if up to date."""
    requirements = HERE / peer.requirements
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = HERE / peer.venv / ".requirements.sha256"
    if peer.python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return None
    started = time.monotonic()
    python = find_python(peer.min_python)
    shutil.rmtree(HERE / peer.venv, ignore_errors=True)
    print(f"peers: installing {peer.name} into peers/{peer.venv} with {python} (PyPI)", flush=True)
    steps = [
        [python, "-m", "venv", str(HERE / peer.venv)],
        [str(peer.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
    ]
    for step in steps:
        done = subprocess.run(step, check=False, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SetupError(
                f"installing {peer.name} failed ({' '.join(step[-3:])}, exit {done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-4000:]}"
            )
    stamp.write_text(digest + "\n")
    return time.monotonic() - started


# --- 2. emulator ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    """``python -m ksef_client.mock --strict`` on 127.0.0.1, from this project's venv."""

    def __init__(self, rate_limits: float, log: Path) -> None:
        self.port = _free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.api_url = self.root + "/v2"
        self.log = log.open("w")
        command = [sys.executable, "-m", "ksef_client.mock", "--host", "127.0.0.1", "--port", str(self.port),
                   "--rate-limits", str(rate_limits), "--strict"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(f"the emulator exited with {self.process.returncode}: see {self.log.name}")
            try:
                if httpx.get(self.api_url + "/security/public-key-certificates", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SetupError(f"the emulator did not answer within {timeout:.0f} s: see {self.log.name}")

    def violations(self) -> list[str]:
        """The answers strict mode refused so far; ``SetupError`` if the emulator is not strict."""
        answer = httpx.get(self.root + "/_mock/violations", timeout=10)
        answer.raise_for_status()
        body = answer.json()
        if body.get("strict") is not True:
            raise SetupError("the emulator does not run in strict mode: its answers went unchecked")
        return [str(v) for v in body["violations"]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- 3. inputs --------------------------------------------------------------------------------


def ksef_token(emulator: Emulator, nip: str, timeout: float = 20.0) -> str:
    """A KSeF token for ``nip``'s context, made through the API (setup, not a flow under test)."""
    minted = httpx.post(emulator.root + "/_mock/tokens", json={"nip": nip}, timeout=10)
    minted.raise_for_status()
    headers = {"Authorization": f"Bearer {minted.json()['accessToken']}"}
    body = {"permissions": ["InvoiceRead", "InvoiceWrite"], "description": "make peers: login with a KSeF token"}
    created = httpx.post(emulator.api_url + "/tokens", json=body, headers=headers, timeout=10)
    if created.status_code != 202:
        raise SetupError(f"POST /tokens: {created.status_code} {created.text[:300]}")
    reference, token = created.json()["referenceNumber"], created.json()["token"]
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{emulator.api_url}/tokens/{reference}", headers=headers, timeout=10).json()["status"]
        if status == "Active":
            return str(token)
        if time.monotonic() > deadline:
            raise SetupError(f"KSeF token {reference} still {status} after {timeout:.0f} s")
        time.sleep(0.1)


def prepare_inputs(peer: Peer, emulator: Emulator, workdir: Path, flow_timeout: float) -> Path:
    folder = workdir / peer.name
    folder.mkdir()
    nip, buyer = random_nip(), random_nip()
    credentials = self_signed_certificate(nip, kind="seal")
    (folder / "cert.pem").write_bytes(credentials.certificate_pem())
    (folder / "key.pem").write_bytes(credentials.private_key_pem())
    invoices: dict[str, list[str]] = {"online": [], "batch": [], "targz": []}
    for kind, paths in invoices.items():
        for index in (1, 2):
            path = folder / f"{kind}-{index}.xml"
            path.write_bytes(sample_invoice(f"PEERS/{peer.name}/{kind}/{index}", seller_nip=nip, buyer_nip=buyer))
            paths.append(str(path))
    inputs = {
        "api_url": emulator.api_url,
        "nip": nip,
        "cert_pem": str(folder / "cert.pem"),
        "key_pem": str(folder / "key.pem"),
        "ksef_token": ksef_token(emulator, nip),
        "online_invoices": invoices["online"],
        "batch_invoices": invoices["batch"],
        "targz_invoices": invoices["targz"],
        "flow_timeout": flow_timeout,
        "wait_timeout": max(5.0, flow_timeout - 5.0),
        "out": str(folder / "results.json"),
    }
    path = folder / "inputs.json"
    path.write_text(json.dumps(inputs, indent=2))
    return path


# --- 4. harnesses -----------------------------------------------------------------------------


def run_harness(peer: Peer, inputs: Path, timeout: float) -> tuple[dict[str, Any], float, str]:
    """The peer's harness in its venv: (results, seconds, its output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(peer.python), str(HERE / peer.harness), str(inputs)],
            check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE,
        )  # fmt: skip
        log = done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr or ""
        log = f"harness killed after {timeout:.0f} s\n{stderr}"
    seconds = time.monotonic() - started
    out = Path(json.loads(inputs.read_text())["out"])
    if out.exists():
        return json.loads(out.read_text()), seconds, log
    crashed = {"status": "failed", "error": "HarnessCrashed", "detail": log.strip().splitlines()[-1:] or ["no output"]}
    crashed["detail"] = " ".join(crashed["detail"])[:300]
    return {"sdk": peer.name, "version": "?", "flows": {flow: dict(crashed) for flow in FLOWS}}, seconds, log


# --- 5. verdicts ------------------------------------------------------------------------------


@dataclass
class Verdict:
    sdk: str
    flow: str
    result: dict[str, Any]
    pin: dict[str, Any] | None
    good: bool
    note: str

    @property
    def cell(self) -> str:
        status = str(self.result.get("status"))
        if self.pin and self.good:
            return f"{status} [{self.pin['id']}]"
        return status if self.good else f"**{status.upper()}**" if status != "ok" else "**ok, pin stale**"


def judge(sdk: str, results: dict[str, dict[str, Any]], expected: dict[str, Any]) -> list[Verdict]:
    pins: dict[str, dict[str, Any]] = expected.get(sdk, {})
    verdicts: dict[str, Verdict] = {}
    for flow in FLOWS:
        result = results.get(flow, {"status": "failed", "error": "Missing", "detail": "no result"})
        pin = pins.get(flow)
        status = result.get("status")
        if pin is None:
            if status == "ok":
                verdicts[flow] = Verdict(sdk, flow, result, None, True, "")
            elif status == "blocked":
                needs = str(result.get("detail", "")).removeprefix("needs ").split(", ")
                excused = all(n in verdicts and verdicts[n].good for n in needs)
                note = "blocked by a pinned failure" if excused else "blocked by an unexpected failure"
                verdicts[flow] = Verdict(sdk, flow, result, None, excused, note)
            else:
                verdicts[flow] = Verdict(sdk, flow, result, None, False, "expected ok")
            continue
        if status == "ok":
            verdicts[flow] = Verdict(sdk, flow, result, pin, False, "passes now: remove or flip the pin")
        elif status != pin["status"]:
            verdicts[flow] = Verdict(sdk, flow, result, pin, False, f"pinned {pin['status']}, got {status}")
        elif pin.get("match") and pin["match"] not in f"{result.get('error', '')}: {result.get('detail', '')}":
            verdicts[flow] = Verdict(sdk, flow, result, pin, False, f"fails otherwise than pinned ({pin['match']!r})")
        else:
            verdicts[flow] = Verdict(sdk, flow, result, pin, True, "as pinned")
    return list(verdicts.values())


def table(runs: list[dict[str, Any]], verdicts: dict[str, list[Verdict]]) -> str:
    head = ["flow", *(f"{r['sdk']} {r['version']}" for r in runs)]
    rows = [head, ["---"] * len(head)]
    for index, flow in enumerate(FLOWS):
        rows.append([f"`{flow}`", *(verdicts[r["sdk"]][index].cell for r in runs)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def pins_section(expected: dict[str, Any], verdicts: dict[str, list[Verdict]]) -> list[str]:
    lines = []
    for sdk, pins in expected.items():
        if sdk.startswith("_"):
            continue
        for flow, pin in pins.items():
            verdict = next((v for v in verdicts.get(sdk, []) if v.flow == flow), None)
            lines.append(f"- **[{pin['id']}]** {sdk} `{flow}`: {pin['status']}, **{pin['who']}**. {pin['reason']}")
            if verdict is not None:  # no message: it holds trace ids and dates, and the file stays stable
                error = verdict.result.get("error")
                seen = f"{verdict.result.get('status')}" + (f" ({error})" if error else "")
                lines.append(
                    f"  This run: {seen}, {verdict.note}" + (f" (`{pin['match']}`)" if pin.get("match") else "")
                )
    return lines


def report(
    runs: list[dict[str, Any]],
    verdicts: dict[str, list[Verdict]],
    expected: dict[str, Any],
    violations: list[str] | None = None,
) -> str:
    lines = [
        "# Other SDKs against the emulator",
        "",
        "Written by `make peers` (`python -m peers`, see `peers/run.py`): each SDK installed from PyPI in a",
        "venv of its own and driven through its own public API against `ksef-mock --strict` on loopback",
        "(every answer checked against the spec; a violation fails the job). Cells: `ok`; `failed`;",
        "`n/a` (the SDK has no public API for it); `blocked` (a flow it needs did not pass). `[Pn]`",
        "marks an outcome pinned in `peers/expected.json`, explained below.",
        "",
        table(runs, verdicts),
        "",
        "Flows:",
        "",
        *(f"- `{flow}`: {text}" for flow, text in FLOWS.items()),
        "",
        "Pinned outcomes (`peers/expected.json`; who is wrong, judged from the spec and the Ministry's docs):",
        "",
        *(pins_section(expected, verdicts) or ["- none"]),
        "",
    ]
    unexpected = [v for vs in verdicts.values() for v in vs if not v.good]
    if unexpected or violations:
        lines += ["Unexpected in this run:", ""]
        for v in unexpected:
            lines.append(f"- {v.sdk} `{v.flow}`: {v.note}: `{v.result.get('error', '')}: {v.result.get('detail', '')}`")
        lines += [f"- the emulator answered against the spec (strict mode): `{found}`" for found in violations or []]
        lines.append("")
    return "\n".join(lines)


def write_docs_table(text: str) -> None:
    """The table between the markers of docs/testing-with-the-emulator.md, as in RESULTS.md."""
    page = DOCS_FILE.read_text(encoding="utf-8")
    if DOCS_TABLE.search(page):
        DOCS_FILE.write_text(DOCS_TABLE.sub(lambda m: f"{m[1]}{text}\n{m[2]}", page), encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m peers", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", choices=[p.name for p in PEERS], action="append", help="run these peers only")
    parser.add_argument("--flow-timeout", type=float, default=30.0, help="seconds per flow (default 30)")
    parser.add_argument(
        "--rate-limits", type=float, default=0.0,
        help="emulator's --rate-limits (default 0: off; 1: KSeF's, which ksef-client does not retry by itself)",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="do not rewrite peers/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (inputs, results, emulator log)")
    return parser.parse_args(argv)


def drive(peers: list[Peer], args: argparse.Namespace) -> tuple[list[tuple[dict[str, Any], str]], list[str]]:
    """Start the emulator, prepare the inputs, run each harness: [(results, harness log)] and the
    emulator's strict-mode violations."""
    workdir = Path(tempfile.mkdtemp(prefix="ksef-peers-"))
    emulator = Emulator(args.rate_limits, workdir / "emulator.log")
    runs: list[tuple[dict[str, Any], str]] = []
    try:
        emulator.wait_ready()
        print(f"peers: emulator on {emulator.api_url} (rate limits x{args.rate_limits:g})")
        inputs = {peer.name: prepare_inputs(peer, emulator, workdir, args.flow_timeout) for peer in peers}
        harness_timeout = args.flow_timeout * len(FLOWS) + 30
        # One peer after the other, so that each log reads in order. With --rate-limits 1 they
        # would still share one budget: the emulator counts per client address, not per (context,
        # address) as KSeF does (reported with issue 16).
        for peer in peers:
            result, seconds, log = run_harness(peer, inputs[peer.name], harness_timeout)
            print(f"peers: {peer.name} {result['version']} ran in {seconds:.1f} s")
            runs.append((result, log))
        violations = emulator.violations()
    finally:
        emulator.stop()
        if args.keep:
            print(f"peers: work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return runs, violations


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    peers = [p for p in PEERS if not args.only or p.name in args.only]
    expected = json.loads(EXPECTED_FILE.read_text(encoding="utf-8"))
    started = time.monotonic()
    try:
        for peer in peers:
            seconds = ensure_venv(peer)
            print(f"peers: {peer.name} venv " + ("up to date" if seconds is None else f"installed in {seconds:.1f} s"))
        after_install = time.monotonic()
        runs, violations = drive(peers, args)
    except SetupError as error:
        print(f"peers: SETUP FAILED: {error}", file=sys.stderr)
        return 2

    verdicts = {result["sdk"]: judge(result["sdk"], result["flows"], expected) for result, _ in runs}
    for result, log in runs:
        if os.environ.get("PEERS_VERBOSE") or not all(v.good for v in verdicts[result["sdk"]]):
            sys.stdout.write("".join(f"    {line}\n" for line in log.strip().splitlines()))
    results = [result for result, _ in runs]
    print(f"\n{table(results, verdicts)}\n")
    for v in (v for vs in verdicts.values() for v in vs if v.result.get("status") != "ok" or not v.good):
        why = f"[{v.pin['id']}] {v.pin['who']}" if v.pin and v.good else v.note
        print(f"  {v.sdk} {v.flow}: {why}: {v.result.get('error', '')} {v.result.get('detail', '')}"[:400])
    if not args.no_write and len(results) == len(PEERS):
        RESULTS_FILE.write_text(report(results, verdicts, expected, violations), encoding="utf-8")
        write_docs_table(table(results, verdicts))
    bad = [v for vs in verdicts.values() for v in vs if not v.good]
    flows, total = time.monotonic() - after_install, time.monotonic() - started
    print(f"\npeers: {len(bad) + len(violations)} unexpected outcome(s); flows {flows:.1f} s, total {total:.1f} s")
    for v in bad:
        print(f"  UNEXPECTED {v.sdk} {v.flow}: {v.note}", file=sys.stderr)
    for violation in violations:  # the emulator's bug, whichever flow met it and however it ended
        print(f"  UNEXPECTED strict-mode violation: {violation}"[:400], file=sys.stderr)
    return 1 if bad or violations else 0


if __name__ == "__main__":
    sys.exit(main())
