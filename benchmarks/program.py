"""Benchmark: whole programs (simulate → detector1 → image2 → image3) on a local Dask cluster.

The program is Mirage's example NIRCam imaging proposal (``tests/data/apt/
example_imaging_program``: module B, 2 × 2 dithers), reduced to the four short-wave detectors
read as ``--subarray`` (default SUB640) with its own readout (RAPID, 4 groups). To grow it to N
exposures the plan's 16 rows are repeated as further observations (same pointings, new
observation numbers, so new files and one more pair of mosaics per 16 exposures).

For each worker count W (``--workers``) and size N (``--n``) it runs ``webbflow program PLAN.ecsv
--scheduler local:W`` in a subprocess and samples every process of the tree (psutil): wall time,
peak RSS of the client process and the peak RSS of each worker process. Throughput is given in
exposures per hour and raw ramp pixels (groups × integrations × pixels) per second.

The claim to check: the memory of each worker stays about flat as the program grows 16-fold.

Writes ``benchmarks/results/program.json`` and ``.md``. Run from the repository root::

    python benchmarks/program.py --n 4 16 64 --workers 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
APT = REPO / "tests" / "data" / "apt"
GIB = 2**30


def make_plan(n: int, subarray: str, workdir: Path) -> tuple[Path, int]:
    """A plan of ``n`` exposures (see the module docstring); its path and raw pixel count."""
    from astropy.table import vstack

    from webbflow.graphs.plan import make_plan, select_detectors
    from webbflow.graphs.program_field import with_synthetic_fields

    xml, pointing = APT / "example_imaging_program.xml", APT / "example_imaging_program.pointing"
    base = select_detectors(make_plan(xml, pointing, subarray=subarray), ["NRCB1", "NRCB2", "NRCB3", "NRCB4"])
    copies = []
    for k in range(-(-n // len(base.table))):
        t = base.table.copy()
        t["observation"] = k + 1
        t["filename"] = [re.sub(r"^(jw\d{5})\d{3}", rf"\g<1>{k + 1:03d}", str(f)) for f in t["filename"]]
        copies.append(t)
    plan = type(base)(vstack(copies)[:n], base.unsupported, base.source, base.extra_meta)
    plan = with_synthetic_fields(plan, workdir / "catalogs", seed=1)
    path = plan.write(workdir / f"plan_n{n:03d}.ecsv")
    size = {"SUB640": 640 * 640, "SUB320": 320 * 320, "SUB160": 160 * 160, "FULL": 2048 * 2048}[subarray]
    pixels = int(np.sum(np.asarray(plan.table["ngroups"]) * np.asarray(plan.table["nints"]))) * size
    return path, pixels


def run_sampled(argv: list[str], log_path: Path, interval: float) -> dict[str, Any]:
    """Run ``argv``; wall time and the peak RSS of the main process and of each child process."""
    peaks: dict[int, int] = {}
    names: dict[int, str] = {}
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = psutil.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                for p in [proc, *proc.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        rss = p.memory_info().rss
                        peaks[p.pid] = max(peaks.get(p.pid, 0), rss)
                        names.setdefault(p.pid, " ".join(p.cmdline()[:3]))
            time.sleep(interval)
    wall = time.perf_counter() - start
    workers = [v for pid, v in peaks.items() if pid != proc.pid and v > 150 * 2**20]  # not the helpers
    return {
        "wall_s": wall,
        "returncode": proc.returncode,
        "client_peak_gib": peaks.get(proc.pid, 0) / GIB,
        "worker_peaks_gib": sorted((v / GIB for v in workers), reverse=True),
        "log": str(log_path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--subarray", default="SUB640")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/webbflow-bench-program"))
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for workers in args.workers:
        for n in args.n:
            plan, pixels = make_plan(n, args.subarray, args.workdir)
            out = args.workdir / f"w{workers}_n{n:03d}"
            shutil.rmtree(out, ignore_errors=True)
            argv = [sys.executable, "-m", "webbflow", "program", str(plan), "-o", str(out)]
            argv += ["--scheduler", f"local:{workers}", "--quiet"]
            res = run_sampled(argv, args.workdir / f"w{workers}_n{n:03d}.log", args.interval)
            if res["returncode"] != 0:
                raise SystemExit(f"webbflow program failed (exit {res['returncode']}); see {res['log']}")
            row = {
                "workers": workers,
                "n": n,
                "raw_pixels": pixels,
                **res,
                "exposures_per_hour": n / res["wall_s"] * 3600,
                "pixels_per_s": pixels / res["wall_s"],
                "worker_peak_gib": max(res["worker_peaks_gib"], default=0.0),
            }
            rows.append(row)
            print(
                f"workers={workers} n={n}: {res['wall_s']:.0f} s, {row['exposures_per_hour']:.0f} exp/h, "
                f"{row['pixels_per_s'] / 1e6:.2f} Mpix/s, worker peak {row['worker_peak_gib']:.2f} GiB, "
                f"client {res['client_peak_gib']:.2f} GiB",
                flush=True,
            )
            write_results(rows, args)


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """``program.json`` and ``program.md`` of the runs so far (a stopped sweep keeps them)."""
    machine = {
        "cpus": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / GIB,
        "python": platform.python_version(),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "program.json").write_text(
        json.dumps({"machine": machine, "runs": rows}, indent=2) + "\n"
    )
    lines = [
        f"# Program benchmark ({args.subarray}, NIRCam SW, RAPID 4 groups; all four stages)",
        "",
        f"Machine: {machine['cpus']} CPUs, {machine['memory_gib']:.0f} GiB. `python benchmarks/program.py`.",
        "",
        "| workers | exposures | wall s | exposures/h | Mpix/s | peak per worker GiB | client GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['n']} | {r['wall_s']:.0f} | {r['exposures_per_hour']:.0f} | "
            f"{r['pixels_per_s'] / 1e6:.2f} | {r['worker_peak_gib']:.2f} | {r['client_peak_gib']:.2f} |"
        )
    (args.results / "program.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
