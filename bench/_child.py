"""What the side-by-side children share (``bench/side_ours.py``, ``bench/side_ksef2.py``).

Standard library only: ``side_ksef2.py`` runs in ksef2's own venv (Python 3.12), where this
project is not installed; each child imports this file from its own directory.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """The process's peak RSS so far (VmHWM: ru_maxrss would carry the parent's size across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(into: dict[str, Any], name: str) -> Iterator[None]:
    """Wall time and this process's CPU time (every thread) of the block: the CPU time is the SDK's
    own work; the rest of the wall time is spent waiting on the emulator (another process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    into[f"{name}_s"] = time.perf_counter() - wall
    into[f"{name}_cpu_s"] = time.process_time() - cpu


def repeated(into: dict[str, Any], times: int, measure: Callable[[int, dict[str, Any]], None]) -> None:
    """``measure(index, figures)`` run ``times`` times; each figure's median goes ``into``. A row
    that takes half a second moves by 30 % between runs on a shared VM: one run per child would
    rank the SDKs by the host's mood."""
    runs: list[dict[str, Any]] = []
    for index in range(times):
        runs.append({})
        measure(index, runs[-1])
    into.update({key: statistics.median(run[key] for run in runs) for key in runs[0]})


def invoices(template: bytes, prefix: str, count: int) -> list[bytes]:
    """``count`` copies of the template invoice, each with its own number."""
    return [template.replace(b"FV/000000", f"{prefix}/{i:06d}".encode()) for i in range(count)]


def main(rows: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> int:
    """``child.py ROW ARGS.json``: run one row, print its figures as JSON."""
    row, args = sys.argv[1], json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    print(json.dumps(rows[row](args)))
    return 0
