"""Serve the emulator with uvicorn: in a background thread (tests) or as ``ksef-mock`` (CLI)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ksef_client.mock._extra import missing_mock_extra

try:
    import uvicorn
except ModuleNotFoundError as error:  # pragma: no cover - without the mock extra
    raise missing_mock_extra(error) from error

from ksef_client.mock.app import API_PREFIX, create_app, logger
from ksef_client.mock.hosts import HostPolicy, allowed_host, is_loopback
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.persistence import SQLiteStore
from ksef_client.mock.responses import BrokenResponse


class InjectedDropsFilter(logging.Filter):
    """Keeps uvicorn from logging an injected connection drop as a crash.

    An answer that breaks off before its ``Content-Length`` (``BrokenResponse``: the ``DROP_AFTER``
    fault and the storage faults) is the fault a test asked for, yet uvicorn logs it as "Exception
    in ASGI application" with a traceback, which reads as the emulator failing. Such a record, and
    only one whose error was raised while a ``BrokenResponse`` was sending, is left out; every other
    error of the server is logged as before."""

    def filter(self, record: logging.LogRecord) -> bool:
        """``False`` for uvicorn's record of an injected drop."""
        traceback = record.exc_info[2] if record.exc_info else None
        while traceback is not None:
            if traceback.tb_frame.f_code is BrokenResponse.__call__.__code__:
                return False
            traceback = traceback.tb_next
        return True


def _quiet_injected_drops() -> None:
    """``InjectedDropsFilter`` on uvicorn's error logger, once per process."""
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, InjectedDropsFilter) for f in server_log.filters):
        server_log.addFilter(InjectedDropsFilter())


def exposure_warning(host: str) -> str | None:
    """What ``ksef-mock`` says when it listens beyond this machine (``None`` on loopback)."""
    if is_loopback(host):
        return None
    return (
        f"ksef-mock: WARNING: listening on {host}, not loopback: anyone who can reach this address can mint "
        "tokens and read every invoice in the emulator. Use it on a network you trust only."
    )


class ThreadedServer:
    """The emulator on 127.0.0.1 in a daemon thread; ``base_url`` ends in ``/v2``.

    ::

        with ThreadedServer() as server:
            ksef = KSeF(base_url=server.base_url, access_token=server.backend.mint_access_token(nip))

    It answers requests addressed to ``127.0.0.1``, ``localhost`` or ``::1`` (a guard against DNS
    rebinding, ``create_app``); ``allowed_hosts=["name"]`` adds names to address it by.
    """

    def __init__(
        self, backend: KSeFBackend | None = None, host: str = "127.0.0.1", port: int = 0, *,
        store: SQLiteStore | None = None, strict: bool = False, allowed_hosts: Iterable[str] = (),
    ) -> None:  # fmt: skip
        allowed_hosts = allowed_hosts if isinstance(allowed_hosts, str) else tuple(allowed_hosts)  # read once
        HostPolicy.of(host, allowed_hosts)  # a bad name is refused before the socket is bound
        self.backend = backend or KSeFBackend()
        self.host = host
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
        # listening socket says so; without it every keep-alive answer waits ~40 ms (delayed ACK).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = self._socket.getsockname()[1]
        self.app = create_app(self.backend, store=store, strict=strict, host=host, allowed_hosts=allowed_hosts)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        _quiet_injected_drops()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def base_url(self) -> str:
        """API base URL, e.g. ``http://127.0.0.1:54321/v2``."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def start(self) -> ThreadedServer:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the KSeF emulator did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; the backend's batch worker processes stop too."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        if self.app.store is not None:
            self.app.store.flush()
        self.backend.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_parser() -> argparse.ArgumentParser:
    """Options of ``ksef-mock``."""
    parser = argparse.ArgumentParser(prog="ksef-mock", description="KSeF 2.0 emulator (API under /v2)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--allow-host", action="append", default=[], type=_host, metavar="NAME", dest="allow_hosts",
                        help="a name clients address the emulator by, besides loopback names and --host "
                             "(repeatable; e.g. a container's service name). On loopback it refuses requests "
                             "addressed to any other name (403: a guard against DNS rebinding); on another "
                             "address (0.0.0.0) /v2 and storage answer any name unless this is given, and "
                             "/_mock/* only loopback names, --host and these")  # fmt: skip
    parser.add_argument("--state", type=Path, help="SQLite file that keeps the state across restarts")
    parser.add_argument("--rate-limits", type=float, default=1.0, metavar="SCALE",
                        help="KSeF's rate limits times SCALE; 0 switches them off (default 1)")  # fmt: skip
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail (5xx, 429)")
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault sequence")
    parser.add_argument("--session-reads", type=int, default=0, help="status reads before a closed session is done")
    parser.add_argument("--invoice-reads", type=int, default=0,
                        help="status reads before a sent invoice is processed (default 0: at once)")  # fmt: skip
    parser.add_argument("--upo-page-size", type=int, default=10_000)
    parser.add_argument("--hwm-lag", type=_seconds, default=dt.timedelta(0), metavar="SECONDS",
                        help="how far the PermanentStorage high-water mark trails the present, as KSeF's "
                             "does (default 0: the present)")  # fmt: skip
    parser.add_argument("--late-storage", action="store_true",
                        help="invoices arrive late: each is stored only after an answer gave an HWM, "
                             "dated just past it (with --hwm-lag below invoices already visible)")  # fmt: skip
    parser.add_argument("--storage-resolution", type=_seconds, default=dt.timedelta(0), metavar="SECONDS",
                        help="permanentStorageDates on multiples of SECONDS: invoices numbered within one "
                             "period share one date (default 0: each its own)")  # fmt: skip
    parser.add_argument("--seven-digit-dates", action="store_true",
                        help="write the invoices' dates and the HWM as KSeF does, to 100 ns (7 digits)")  # fmt: skip
    parser.add_argument("--profile", choices=["TEST", "PROD"], default="TEST",
                        help="PROD adds production-only checks (NIP checksums of the parties)")  # fmt: skip
    parser.add_argument("--strict", action="store_true",
                        help="check every answer against the spec: one KSeF would never give becomes a 500 "
                             "naming the violation, logged to stderr and listed at GET /_mock/violations")  # fmt: skip
    parser.add_argument("--workers", type=_positive, default=None, metavar="N",
                        help="processes that check the invoices of large batch packages "
                             "(default: one per core; 1: none, all in the server process)")  # fmt: skip
    return parser


def _seconds(value: str) -> dt.timedelta:
    seconds = float(value)
    if not 0 <= seconds <= 86_400:
        raise argparse.ArgumentTypeError(f"0 to 86400 seconds, not {value}")
    return dt.timedelta(seconds=seconds)


def _host(value: str) -> str:
    try:
        return allowed_host(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {number}")
    return number


def _log_violations_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ksef-mock: %(message)s"))
    logger.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """``ksef-mock --host 127.0.0.1 --port 8000``: serve the emulator until interrupted."""
    args = build_parser().parse_args(argv)
    backend = KSeFBackend(
        upo_page_size=args.upo_page_size, rate_limit_scale=args.rate_limits, profile=args.profile,
        session_reads=args.session_reads, random_faults=(args.fault_rate, args.fault_seed) if args.fault_rate else None,
        workers=args.workers, invoice_reads=args.invoice_reads, hwm_lag=args.hwm_lag,
        late_storage=args.late_storage, storage_resolution=args.storage_resolution,
        seven_digit_dates=args.seven_digit_dates,
    )  # fmt: skip
    store = SQLiteStore(args.state) if args.state else None
    app = create_app(backend, store=store, strict=args.strict, host=args.host, allowed_hosts=args.allow_hosts)
    if (warning := exposure_warning(args.host)) is not None:
        print(warning, file=sys.stderr)
    if args.strict:
        _log_violations_to_stderr()
    mode = " (strict: every answer checked against the spec)" if args.strict else ""
    print(f"ksef-mock: serving http://{args.host}:{args.port}{API_PREFIX}{mode}", file=sys.stderr)
    _quiet_injected_drops()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if store is not None:
            store.flush()  # the last changes before the interrupt
        backend.close()  # the app's lifespan did it already unless the server failed to start
    return 0
