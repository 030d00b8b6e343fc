"""Run a command and measure its wall time and peak memory (shared by the benchmarks)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil


def run_monitored(argv: list[str], env: dict[str, str], log_path: Path, interval: float) -> dict[str, Any]:
    """Run ``argv``; wall time (s) and peak RSS summed over the process tree (bytes).

    RSS counts pages shared between processes (forked workers) once per process,
    so for multiprocessing runs the sum is an upper bound of the real footprint.
    """
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = psutil.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak, nproc = 0, 1
        while proc.poll() is None:
            total = 0
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += p.memory_info().rss
            peak, nproc = max(peak, total), max(nproc, len(procs))
            time.sleep(interval)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "peak_rss_bytes": peak,
        "max_processes": nproc,
        "returncode": proc.returncode,
        "log": str(log_path),
    }
