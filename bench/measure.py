"""The benchmark figures, each a function returning a dict of numbers (no assertions here).

Every figure is a median of repeated runs after a warm-up, except parsing: microseconds per item
are the best of 25 runs, measured in alternation with ``json.loads`` so that the ratio does not
depend on a noisy moment. Process-level figures (import time, peak memory of a batch build) run in
a fresh interpreter.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from ksef_client import KSeF
from ksef_client._generated import Client
from ksef_client._generated.api.invoices import query_invoice_metadata
from ksef_client._generated.api.sessions_status import list_session_invoices
from ksef_client._generated.models import QueryInvoicesMetadataResponse, SessionInvoicesResponse
from ksef_client.crypto import sha256_b64
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.upo import PageInfo, UpoDocument, UpoHeader, build_upo
from ksef_client.testing import sample_invoice
from ksef_client.upo import parse_upo, validate_upo, verify_hash

NIP = "5265877635"


def median_seconds(run: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``run`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def fastest_pair(first: Callable[[], object], second: Callable[[], object], repeat: int = 25) -> tuple[float, float]:
    """Best times of two runs measured in alternation, so that a noisy moment of the machine hits
    both alike (the ratio is what the targets are about); the minimum is the least disturbed run."""
    first(), second()
    a, b = [], []
    for _ in range(repeat):
        for run, timings in ((first, a), (second, b)):
            start = time.perf_counter()
            run()
            timings.append(time.perf_counter() - start)
    return min(a), min(b)


def fastest_blocks(
    first: Callable[[], object], second: Callable[[], object], blocks: int = 5, runs: int = 8
) -> tuple[float, float]:
    """Best times of two runs measured in alternating blocks (``runs`` of the first, then ``runs``
    of the second, ``blocks`` times): each run follows one of its own kind, as in a program that
    does that work, while a noisy moment of the machine still hits both alike. ``fastest_pair``
    instead makes each run follow the other: a run that walks a tree then pays for the memory the
    other's tree left behind (``parse_upo`` after lxml parsed the same bytes, whitespace nodes
    included: 4-6 ms more of about 20)."""
    first(), second()
    a, b = [], []
    for _ in range(blocks):
        for run, timings in ((first, a), (second, b)):
            for _ in range(runs):
                start = time.perf_counter()
                run()
                timings.append(time.perf_counter() - start)
    return min(a), min(b)


def parsing(files: dict[str, str]) -> dict[str, float]:
    """Typed parsing of a 1000-item session-invoices page and a 250-item metadata page (``files``:
    their paths), as the SDK does it: the generated endpoint's response parser (decode with
    orjson, then from_dict). The models alone (from_dict on already-decoded JSON) are reported
    beside it."""
    invoices_raw = Path(files["session_invoices"]).read_bytes()
    metadata_raw = Path(files["metadata"]).read_bytes()
    client = Client(base_url="http://bench.invalid")

    def sdk(module: Any, raw: bytes) -> Callable[[], object]:
        return lambda: module._parse_response(client=client, response=httpx.Response(200, content=raw))

    json_invoices, ours_invoices = fastest_pair(
        lambda: json.loads(invoices_raw), sdk(list_session_invoices, invoices_raw)
    )
    json_metadata, ours_metadata = fastest_pair(
        lambda: json.loads(metadata_raw), sdk(query_invoice_metadata, metadata_raw)
    )
    decoded_invoices, decoded_metadata = json.loads(invoices_raw), json.loads(metadata_raw)
    models_invoices, models_metadata = fastest_pair(
        lambda: SessionInvoicesResponse.from_dict(decoded_invoices),
        lambda: QueryInvoicesMetadataResponse.from_dict(decoded_metadata),
    )
    assert isinstance(sdk(list_session_invoices, invoices_raw)(), SessionInvoicesResponse)
    return {
        "session_invoices_us_per_item": ours_invoices / 1000 * 1e6,
        "session_invoices_json_loads_us_per_item": json_invoices / 1000 * 1e6,
        "session_invoices_models_us_per_item": models_invoices / 1000 * 1e6,
        "metadata_ms_per_page": ours_metadata * 1e3,
        "metadata_json_loads_ms_per_page": json_metadata * 1e3,
        "metadata_models_ms_per_page": models_metadata * 1e3,
        "metadata_ratio_to_json_loads": ours_metadata / json_metadata,
        "session_invoices_ratio_to_json_loads": ours_invoices / json_invoices,
    }


def import_time(
    python: str = sys.executable, statement: str = "import ksef_client", repeat: int = 7
) -> dict[str, float]:
    """Fresh-process time of ``statement`` (median), and a bare interpreter for reference."""

    def run(code: str) -> float:
        timings = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([python, "-c", code], check=True, capture_output=True)
            timings.append(time.perf_counter() - start)
        return statistics.median(timings)

    bare = run("pass")
    with_import = run(statement)
    return {"import_ms": with_import * 1e3, "interpreter_ms": bare * 1e3, "import_only_ms": (with_import - bare) * 1e3}


# Prepended to every child script: the process's peak RSS. VmHWM, not ru_maxrss: Linux keeps
# ru_maxrss across exec, so it would show the parent's size.
_PEAK_RSS = textwrap.dedent(
    """
    import resource
    def peak_rss_mb():
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")]
        return int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    """
)

_BATCH_CHILD = _PEAK_RSS + textwrap.dedent(
    """
    import json, sys, time, zlib
    from ksef_client.batch import BatchPackage
    from ksef_client.crypto import SymmetricKey
    from ksef_client.testing import sample_invoice
    count, compression, lines = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    template = sample_invoice("FV/000000", lines=lines)
    size = 0
    def invoices(first, last):
        global size
        for i in range(first, last):
            data = template.replace(b"FV/000000", b"FV/%06d" % i)
            size += len(data)
            yield (f"{i}.xml", data)
    start = time.perf_counter()
    parts = zipped = 0
    for first in range(0, count, 10_000):  # KSeF takes at most 10,000 invoices per batch
        batch = invoices(first, min(count, first + 10_000))
        with BatchPackage.build(batch, SymmetricKey.generate(), compression=compression) as package:
            parts += len(package.parts)
            zipped += package.file_size
    seconds = time.perf_counter() - start
    rss_mb = peak_rss_mb()
    # The floor of a deflated build: one deflate stream per invoice (as zip members need), in one
    # thread, by the library the zip writer uses (ISA-L or zlib); zlib beside it for reference.
    from ksef_client import _zipstream
    def floor(deflate):
        floor_start = time.perf_counter()
        for _ in range(2000):
            deflate(template, 1, -15)
        return 2000 * len(template) / 1e6 / (time.perf_counter() - floor_start)
    deflate_floor, zlib_floor = floor(_zipstream._deflate), floor(zlib.compress)
    print(json.dumps({"seconds": seconds, "input_mb": size / 1e6, "zip_mb": zipped / 1e6, "parts": parts,
                      "deflate_floor_mb_per_s": deflate_floor, "zlib_floor_mb_per_s": zlib_floor,
                      "deflate_library": _zipstream.DEFLATE_LIBRARY,
                      "peak_rss_mb": rss_mb, "invoice_bytes": len(template), "compression": compression,
                      "lines": lines}))
    """
)


def batch_build(count: int, compression: str = "deflate", lines: int = 1) -> dict[str, Any]:
    """Zip + split + AES-256-CBC + SHA-256 of ``count`` FA(3) invoices (batches of 10,000), each build
    in a fresh process, so peak RSS shows whether memory grows with the number of invoices; the
    median of three builds (the highest peak RSS)."""
    command = [sys.executable, "-c", _BATCH_CHILD, str(count), compression, str(lines)]
    runs = [json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout) for _ in range(3)]
    result: dict[str, Any] = sorted(runs, key=lambda run: run["seconds"])[1]  # the median of three builds
    result["input_mb_per_s"] = result["input_mb"] / result["seconds"]
    result["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    return result


def crypto_floor(megabytes: int = 64) -> dict[str, float]:
    """Raw AES-256-CBC and SHA-256 throughput of ``cryptography`` (the batch build's floor)."""
    data = os.urandom(megabytes * 1_000_000 // 16 * 16)

    def aes() -> None:
        encryptor = Cipher(algorithms.AES(os.urandom(32)), modes.CBC(os.urandom(16))).encryptor()
        encryptor.update(data)
        encryptor.finalize()

    def sha() -> None:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(data)
        digest.finalize()

    return {
        "aes_256_cbc_mb_per_s": len(data) / 1e6 / median_seconds(aes, repeat=3),
        "sha256_mb_per_s": len(data) / 1e6 / median_seconds(sha, repeat=3),
    }


def list_sessions(counts: tuple[int, ...]) -> dict[str, float]:
    """Auto-paginate N sessions (pageSize 1000) from the emulator over loopback (uvicorn)."""
    results = {}
    with ThreadedServer() as server:
        backend = server.backend
        access = backend.authenticate("Bearer " + backend.mint_access_token(NIP))
        with KSeF(base_url=server.base_url, access_token=backend.mint_access_token(NIP), rate_limit_scale=0) as ksef:
            for count in counts:
                backend.reset()
                for _ in range(count):
                    backend.sessions.open(access)
                start = time.perf_counter()
                listed = sum(1 for _ in ksef.sessions.list("Online", page_size=1000))
                seconds = time.perf_counter() - start
                assert listed == count
                results[f"sessions_{count}_items_per_s"] = count / seconds
    return results


class EmulatorProcess:
    """``ksef-mock`` in its own process (so the client's threads do not share its GIL)."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [sys.executable, "-m", "ksef_client.mock", "--port", str(self.port), "--rate-limits", "0"]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        self.process.stderr.readline()  # "serving ..." once the app is built
        self.root = f"http://127.0.0.1:{self.port}"
        with httpx.Client(transport=httpx.HTTPTransport(retries=20)) as http:
            self.token = http.post(f"{self.root}/_mock/tokens", json={"nip": NIP}).json()["accessToken"]

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


_SEND_CHILD = _PEAK_RSS + textwrap.dedent(
    """
    import json, sys, time
    from ksef_client import KSeF
    from ksef_client.testing import sample_invoice
    base_url, token, count, lines = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    template = sample_invoice("FV/000000", lines=lines)
    invoices = ((f"{i}.xml", template.replace(b"FV/000000", b"FV/%06d" % i)) for i in range(count))
    with KSeF(base_url=base_url, access_token=token, rate_limit_scale=0) as ksef:
        start = time.perf_counter()
        result = ksef.send_batch(invoices, compression="stored", wait=True)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "input_mb": count * len(template) / 1e6, "parts": result.part_count,
                      "peak_rss_mb": peak_rss_mb()}))
    """
)

_EXPORT_CHILD = _PEAK_RSS + textwrap.dedent(
    """
    import datetime as dt, json, sys, tempfile
    from pathlib import Path
    from ksef_client import KSeF
    base_url, token = sys.argv[1], sys.argv[2]
    with KSeF(base_url=base_url, access_token=token, rate_limit_scale=0) as ksef, \
            tempfile.TemporaryDirectory() as directory:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        result = ksef.invoices.export(Path(directory), date_from=since, timeout=600, interval=0.2)
        files = len(result.files)
    print(json.dumps({"files": files, "peak_rss_mb": peak_rss_mb()}))
    """
)


def batch_send(count: int, lines: int = 20) -> dict[str, Any]:
    """Build and upload one batch (stored: the largest parts) to the emulator in another process,
    then export every invoice back in a fresh process: the clients' peak RSS shows whether uploads
    and downloads hold parts in memory."""
    with EmulatorProcess() as emulator:
        command = [sys.executable, "-c", _SEND_CHILD, f"{emulator.root}/v2", emulator.token, str(count), str(lines)]
        result: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        command = [sys.executable, "-c", _EXPORT_CHILD, f"{emulator.root}/v2", emulator.token]
        exported = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    result["input_mb_per_s"] = result["input_mb"] / result["seconds"]
    result["export"] = exported
    return result


def upo_download(count: int, concurrency: int = 16) -> dict[str, float]:
    """Every invoice UPO of a session: presigned links in parallel vs one by one via the API.

    The API path is rate-limited by KSeF (the operation's ``x-rate-limits``); its figure adds the
    waiting the client's throttle imposes, counted on a simulated clock instead of slept.
    """
    waited = [0.0]
    now = [0.0]

    def fake_sleep(seconds: float) -> None:
        waited[0] += seconds
        now[0] += seconds

    with EmulatorProcess() as emulator, tempfile.TemporaryDirectory() as directory:
        base_url = f"{emulator.root}/v2"
        with KSeF(base_url=base_url, access_token=emulator.token, rate_limit_scale=0) as ksef:
            result = ksef.send_batch([sample_invoice(f"U/{i}") for i in range(count)], wait=True)
            ref = result.reference_number
            numbers = [str(i.ksef_number) for i in ksef.sessions.invoices(ref, page_size=1000)]
            # The emulator signs a UPO on its first download and keeps it: a first pass makes every
            # UPO, so neither timed path pays for signing.
            ksef.upo.save_invoice_upos(ref, Path(directory), concurrency=concurrency)
            start = time.perf_counter()
            ksef.upo.save_invoice_upos(ref, Path(directory), concurrency=concurrency)
            presigned = time.perf_counter() - start
        # The hour's 1,200 status reads run out at a large count: the waits past them are longer
        # than max_retry_after, which would raise instead of (simulated) waiting.
        limited = KSeF(
            base_url=base_url,
            access_token=emulator.token,
            sleep=fake_sleep,
            clock=lambda: now[0] + time.perf_counter(),
            max_retry_after=math.inf,
        )
        with limited:
            start = time.perf_counter()
            for number in numbers:
                limited.upo.get_invoice_upo(ref, ksef_number=number)
            requests = time.perf_counter() - start
    one_by_one = requests + waited[0]
    return {
        "presigned_parallel_s": presigned,
        "api_one_by_one_s": one_by_one,
        "api_requests_s": requests,
        "api_rate_limit_wait_s": waited[0],
        "speedup": one_by_one / presigned,
        "invoices": count,
    }


def emulator_throughput(seconds: float = 3.0) -> dict[str, float]:
    """``GET /sessions/{ref}`` requests per second against one uvicorn worker (keep-alive client)."""
    with ThreadedServer() as server:
        backend = server.backend
        token = backend.mint_access_token(NIP)
        session = backend.sessions.open(backend.authenticate("Bearer " + token))
        url = f"{server.base_url}/sessions/{session.reference_number}"
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                http.get(url).raise_for_status()
                done += 1
            elapsed = time.perf_counter() - start
    return {"get_session_status_req_per_s": done / elapsed}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "date": time.strftime("%Y-%m-%d"),
    }


_EMULATOR_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from ksef_client import KSeF
    from ksef_client.sending import OnlineSession
    from ksef_client._flows import Upload, run
    from ksef_client._generated.api.batch_session import close_batch_session
    from ksef_client.batch import BatchPackage, part_uploads
    from ksef_client.crypto import SymmetricKey
    from ksef_client.schemas import form_code
    from ksef_client.sending import close_flow, open_batch_flow
    from ksef_client.testing import sample_invoice
    base_url, token, kind, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    template = sample_invoice("FV/000000")
    invoices = [(f"{i}.xml", template.replace(b"FV/000000", b"FV/%06d" % i)) for i in range(count)]
    with KSeF(base_url=base_url, access_token=token, rate_limit_scale=0) as ksef:
        start = time.perf_counter()
        if kind == "batch":
            key, code = SymmetricKey.generate(), form_code("FA(3)")
            def upload(package):
                opened = yield from open_batch_flow(code, package, key, ksef._public_keys, False)
                yield Upload(part_uploads(opened.part_upload_requests, package.parts), 4, None)
                return opened.reference_number
            with BatchPackage.build(invoices, key) as package:
                ref = run(upload(package), ksef)
            sent = time.perf_counter()
            run(close_flow(ref, close_batch_session), ksef)
        else:
            session = OnlineSession(ksef, validate=False).open()
            ref = session.reference_number
            for _, xml in invoices:
                session.send(xml)
            sent = time.perf_counter()
            session.close()
        closed = time.perf_counter()
        ksef.sessions.wait(ref, interval=0.05)
        numbers = [i.ksef_number for i in ksef.sessions.invoices(ref, page_size=1000)]
        upo = ksef.upo.get_session_upo(ref)
        done = time.perf_counter()
    assert len(numbers) == count and all(numbers) and len(upo.documents) == count, (len(numbers), count)
    print(json.dumps({"send_s": sent - start, "close_s": closed - sent, "close_to_upo_s": done - sent}))
    """
)


def emulator_session(kind: str, count: int) -> dict[str, Any]:
    """The emulator's own speed: a batch (or online) session of ``count`` invoices, from the close
    request to every KSeF number listed and the session UPO downloaded (a fresh emulator process)."""
    with EmulatorProcess() as emulator:
        command = [sys.executable, "-c", _EMULATOR_CHILD, f"{emulator.root}/v2", emulator.token, kind, str(count)]
        result: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    result["invoices"] = count
    return result


def upo_parsing(count: int = 5000) -> dict[str, float]:
    """``parse_upo`` of a session UPO of ``count`` documents beside lxml parsing the same bytes
    (best times in alternating blocks, ``fastest_blocks``; ``interleaved_ratio``: each run right
    after one of the other, ``fastest_pair``), and on their own: reading every document of the
    parsed UPO (they are built on access), the hash check and the XSD validation. The UPO is laid
    out as KSeF's are (one tab a level, as the emulator writes it); the same UPO with no whitespace
    between elements is measured beside it."""
    documents = [
        UpoDocument(NIP, f"{NIP}-20261120-{i:012X}-00", f"FV/{i}", "2026-11-20", "2026-11-20T10:00:00.123+00:00",
                    "2026-11-20T10:00:01.456+00:00", "q" * 43 + "=", "Online")
        for i in range(count)
    ]  # fmt: skip
    header = UpoHeader("20261120-SB-0000000000-0000000000-00", "Nip", NIP, "h" * 43 + "=", "FA (3)")
    xml = build_upo(header, documents, PageInfo(1, 1, 1, count, count))
    compact = etree.tostring(etree.fromstring(xml, etree.XMLParser(remove_blank_text=True)), xml_declaration=True)
    parser = etree.XMLParser()
    lxml_s, ours_s = fastest_blocks(lambda: etree.fromstring(xml, parser), lambda: parse_upo(xml))
    compact_lxml_s, compact_ours_s = fastest_blocks(
        lambda: etree.fromstring(compact, parser), lambda: parse_upo(compact)
    )
    interleaved_lxml_s, interleaved_ours_s = fastest_pair(
        lambda: etree.fromstring(xml, parser), lambda: parse_upo(xml), repeat=40
    )
    upo = parse_upo(xml)
    assert len(upo.documents) == count and parse_upo(compact).documents == upo.documents
    digest = sha256_b64(xml)
    return {
        "documents": count,
        "lxml_parse_ms": lxml_s * 1e3,
        "parse_upo_ms": ours_s * 1e3,
        "ratio": ours_s / lxml_s,
        "compact_lxml_parse_ms": compact_lxml_s * 1e3,
        "compact_parse_upo_ms": compact_ours_s * 1e3,
        "compact_ratio": compact_ours_s / compact_lxml_s,
        "interleaved_ratio": interleaved_ours_s / interleaved_lxml_s,
        "read_all_documents_ms": median_seconds(lambda: list(upo.documents), repeat=5) * 1e3,
        "hash_check_ms": median_seconds(lambda: verify_hash(xml, digest), repeat=5) * 1e3,
        "xsd_validation_ms": median_seconds(lambda: validate_upo(xml), repeat=3) * 1e3,
    }


def cli_help(python: str = sys.executable, repeat: int = 9) -> dict[str, float]:
    """``ksef --help`` in a fresh process (bytecode cached, as users run it) over a bare interpreter
    (the best of ``repeat`` alternating runs of each)."""
    bare, help_ = [], []
    for _ in range(repeat):
        for command, timings in ((["-c", "pass"], bare), (["-m", "ksef_client.cli", "--help"], help_)):
            start = time.perf_counter()
            subprocess.run([python, *command], check=True, capture_output=True)
            timings.append(time.perf_counter() - start)
    return {
        "help_ms": min(help_) * 1e3,
        "interpreter_ms": min(bare) * 1e3,
        "over_bare_ms": (min(help_) - min(bare)) * 1e3,
    }
