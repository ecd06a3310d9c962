"""What both peer harnesses share: the flow list, the per-flow timeout and the JSON they write.

Standard library only: this module runs inside each peer's own virtualenv (where ``ksef_client``
is the peer, not this project), imported by ``drive_ksef2.py`` and ``drive_ksef_client.py`` from
their own directory.

A flow returns a short detail string when it worked, raises ``NotSupported`` when the SDK has no
public API for it ("n/a"), and raises anything else when it failed. A flow whose prerequisite did
not pass is "blocked", not run.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The flows, in the order of the table. Each peer harness runs every one of them.
FLOWS: dict[str, str] = {
    "login.token": "log in with a KSeF token (challenge, encrypted token, status, redeem)",
    "login.xades": "log in with XAdES, self-signed certificate (TEST accepts any NIP)",
    "login.xades_chain": "the same with verifyCertificateChain=true: refused (the spec: a self-signed chain fails)",
    "online.send": "online session: open, send 2 FA(3) invoices, close",
    "online.status": "invoice statuses until each has a KSeF number, session status 200",
    "online.invoice_upo": "UPO of each invoice",
    "online.session_upo": "session UPO (every page)",
    "batch.send": "batch session: ZIP of 2 invoices, encrypted parts uploaded, close, status 200",
    "batch.upo": "batch session UPO",
    "batch.targz": "batch session with compressionType TarGz: a .tar.gz of 2 invoices, status 200",
    "sessions.list": "list online and batch sessions: both sessions found",
    "sessions.filters": "list sessions closed from tomorrow on (dateClosedFrom): ours are not among them",
    "sessions.invoices": "list the invoices of the online session: 2 with KSeF numbers",
    "invoices.download": "download one invoice by KSeF number: the bytes sent",
    "invoices.metadata": "metadata query (seller, invoicing date): the 4 invoices, documented values",
    "invoices.export": "export: schedule, wait, download parts, decrypt, unpack: 4 XMLs + _metadata.json",
    "invoices.export_targz": "export with compressionType TarGz: the package says TarGz and unpacks as such",
    "limits": "context limits, subject limits and API rate limits",
    "tokens": "KSeF token lifecycle: generate (InvoiceRead), Active, listed, revoked",
    "tokens.introspection": "generate a KSeF token with Introspection (a TokenPermissionType of the spec)",
    "auth.refresh": "refresh the access token (token login's refresh token): the new one works",
    "auth.logout": "list auth sessions, revoke the current one: its refresh token no longer works",
}


class NotSupported(Exception):
    """The SDK has no public API for this flow."""


class Check(AssertionError):
    """The SDK answered, but not what the flow expects (a wrong count, a missing number...)."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise Check(message)


def _short(error: BaseException, limit: int = 300) -> str:
    text = str(error) or repr(error)
    details = getattr(error, "details", None)  # ksef2 keeps field-level reasons there
    body = getattr(error, "response_body", None)  # ksef-client keeps the answer there
    if isinstance(details, list) and details:
        text += " [" + "; ".join(map(str, details)) + "]"
    elif body:
        text += f" [{json.dumps(body, ensure_ascii=False) if not isinstance(body, str | bytes) else body!r}]"
    elif error.__cause__ is not None:
        text += f" [{type(error.__cause__).__name__}: {error.__cause__}]"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


LOGGED_IN = ("<logged in>",)
# The order both harnesses run the flows of ``FLOWS`` in, with what each needs (LOGGED_IN: whichever
# login worked).
PLAN: tuple[tuple[str, Sequence[str]], ...] = (
    ("login.token", ()), ("login.xades", ()), ("login.xades_chain", ()),
    ("online.send", LOGGED_IN), ("online.status", ["online.send"]),
    ("online.invoice_upo", ["online.status"]), ("online.session_upo", ["online.status"]),
    ("batch.send", LOGGED_IN), ("batch.upo", ["batch.send"]), ("batch.targz", LOGGED_IN),
    ("sessions.list", ["online.send"]), ("sessions.filters", ["online.status"]),
    ("sessions.invoices", ["online.status"]), ("invoices.download", ["online.status"]),
    ("invoices.metadata", ["online.status"]), ("invoices.export", ["online.status"]),
    ("invoices.export_targz", ["online.status"]), ("limits", LOGGED_IN), ("tokens", LOGGED_IN),
    ("tokens.introspection", LOGGED_IN), ("auth.refresh", ["login.token"]), ("auth.logout", ["login.token"]),
)  # fmt: skip


class Recorder:
    """Runs each flow on a worker thread with a deadline and records its outcome."""

    def __init__(self, sdk: str, version: str, flow_timeout: float) -> None:
        self.sdk, self.version, self.flow_timeout = sdk, version, flow_timeout
        self.results: dict[str, dict[str, Any]] = {}

    def run(self, flow: str, body: Callable[[], str | None], needs: Sequence[str] = ()) -> None:
        assert flow in FLOWS, flow
        missing = [n for n in needs if self.results.get(n, {}).get("status") != "ok"]
        if missing:
            self.results[flow] = {"status": "blocked", "detail": f"needs {', '.join(missing)}", "seconds": 0.0}
            return
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["detail"] = body() or ""
                outcome["status"] = "ok"
            except NotSupported as error:
                outcome.update(status="n/a", detail=_short(error))
            except BaseException as error:
                outcome.update(status="failed", error=type(error).__name__, detail=_short(error))
                outcome["traceback"] = traceback.format_exc(limit=-6)

        started = time.monotonic()
        worker = threading.Thread(target=target, name=f"flow {flow}", daemon=True)
        worker.start()
        worker.join(self.flow_timeout)
        seconds = round(time.monotonic() - started, 2)
        if worker.is_alive():
            outcome = {"status": "failed", "error": "Timeout", "detail": f"no answer within {self.flow_timeout:.0f} s"}
        self.results[flow] = {**outcome, "seconds": seconds}
        line = f"[{self.sdk}] {flow}: {self.results[flow]['status']} ({seconds:.2f} s)"
        if outcome.get("status") != "ok":
            line += f" {outcome.get('error', '')} {outcome.get('detail', '')}"
        print(line, file=sys.stderr, flush=True)

    def run_all(self, flows: Mapping[str, Any], *, xades_logged_in: Callable[[], bool]) -> None:
        """Every flow of ``PLAN``, in order, each after what it needs (both SDKs run the same plan).

        ``flows`` holds each flow's function under its name with ``_`` for ``.`` (a harness passes
        its ``locals()``: ``online_send`` runs ``online.send``); ``xades_logged_in`` is asked once
        the logins ran: which one the later flows build on."""
        for name, needs in PLAN:
            login = ["login.xades"] if needs == LOGGED_IN and xades_logged_in() else ["login.token"]
            self.run(name, flows[name.replace(".", "_")], login if needs == LOGGED_IN else needs)

    def write(self, path: str | Path) -> None:
        for flow in FLOWS:
            self.results.setdefault(flow, {"status": "failed", "error": "NotRun", "detail": "harness never ran it"})
        payload = {"sdk": self.sdk, "version": self.version, "python": sys.version.split()[0], "flows": self.results}
        Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_inputs(argv: Sequence[str]) -> dict[str, Any]:
    """The runner's inputs (``peers/run.py`` writes them): URLs, NIP, file paths, token, timeouts."""
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} INPUTS.json")
    inputs: dict[str, Any] = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    return inputs


def poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float, interval: float = 0.1) -> Any:
    """For SDKs with no waiting helper: call ``read`` until ``done`` says so (the harness's own loop)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout:.0f} s: last answer {value!r:.200}")
        time.sleep(interval)
