"""Benchmark: webbflow Detector1 against jwst's Detector1Pipeline on a full-frame exposure.

For each ``--ngroups`` value: write a full-frame NIRCam test pattern
(``webbflow.demo.write_test_pattern``), resolve webbflow's default reference
files for it, then run, each in its own subprocess,

* jwst ``Detector1Pipeline`` offline (``tests/oracle/jwst_runner.py``; every
  reference given explicitly, ``maximum_cores='all'`` for jump and ramp_fit,
  other parameters jwst's code defaults), and
* webbflow Detector1 (``webbflow run detector1`` with the same references as
  overrides; the Python API in a subprocess if the CLI is missing),

measuring wall time and peak resident memory summed over each process tree
(sampled with psutil every ``--interval`` s), then compare the products with
``compare_products``. Prints a table and writes ``--json``.

Run from the repository root::

    python benchmarks/detector1_vs_jwst.py --json bench.json
    python benchmarks/detector1_vs_jwst.py --ngroups 10 40 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _monitor import run_monitored  # noqa: E402

from oracle.jwst_runner import (  # noqa: E402
    compare_products,
    format_comparison,
    prepare_jwst_detector1,
    product_paths,
)

REFTYPES = ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise", "ipc")


def _references(uncal: Path) -> dict[str, Path]:
    from webbflow.io.fits_reader import open_exposure
    from webbflow.io.reffiles import ReferenceResolver

    ds = open_exposure(uncal)
    resolver = ReferenceResolver(use_crds=False)
    out = {}
    for reftype in REFTYPES:
        ref = resolver.resolve(reftype, ds, None)
        if ref is not None:
            out[reftype] = ref.path
    return out


def webbflow_command(
    uncal: Path, refs: dict[str, Path], out_dir: Path, scheduler: str | None, tile: int | None
) -> list[str]:
    """``webbflow run detector1`` with every reference given; the Python API if no CLI."""
    from webbflow.graphs.detector1 import Detector1

    overrides = {
        name: {f"override_{r}": str(refs.get(r, "N/A")) for r in step.reftypes}
        for name, step in Detector1().steps.items()
        if step.reftypes
    }
    exe = shutil.which("webbflow")
    cli_ok = exe is not None and subprocess.run([exe, "run", "--help"], capture_output=True).returncode == 0
    if cli_ok:
        argv = [exe, "run", "detector1", str(uncal), "--output-dir", str(out_dir), "--overwrite", "--quiet"]
        argv += [f"--steps.{s}.{k}={v}" for s, params in overrides.items() for k, v in params.items()]
        if scheduler:
            argv += ["--scheduler", scheduler]
        if tile:
            argv += ["--tile", str(tile)]
        return argv
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from webbflow.graphs.runner import RunOptions, run_detector1\n"
        "a = json.loads(sys.argv[1])\n"
        "run_detector1([a['uncal']], a['steps'], RunOptions(output_dir=Path(a['out']), "
        "scheduler=a['scheduler'], tile=a['tile'], overwrite=True, progress=False))\n"
    )
    args = {
        "uncal": str(uncal),
        "steps": overrides,
        "out": str(out_dir),
        "scheduler": scheduler,
        "tile": tile,
    }
    return [sys.executable, "-c", code, json.dumps(args)]


def bench_one(ngroups: int, args: argparse.Namespace) -> dict[str, Any]:
    from webbflow.demo import write_test_pattern

    work = args.workdir / f"ng{ngroups}"
    work.mkdir(parents=True, exist_ok=True)
    uncal = work / f"jw09999001001_01101_00001_{args.detector.lower()}_uncal.fits"
    t0 = time.perf_counter()
    write_test_pattern(
        uncal, detector=args.detector, ngroups=ngroups, nints=args.nints, seed=args.seed, overwrite=True
    )
    result: dict[str, Any] = {
        "ngroups": ngroups,
        "nints": args.nints,
        "detector": args.detector,
        "uncal": str(uncal),
        "uncal_bytes": uncal.stat().st_size,
        "write_test_pattern_s": time.perf_counter() - t0,
    }
    refs = _references(uncal)
    result["refs"] = {k: str(v) for k, v in refs.items()}
    runs: dict[str, dict[str, Any]] = {}
    if not args.skip_jwst:
        jw = prepare_jwst_detector1(
            uncal,
            refs,
            work / "jwst",
            {"jump": {"maximum_cores": "all"}, "ramp_fit": {"maximum_cores": "all"}},
        )
        for p in (jw.rate_path, jw.rateints_path):
            p.unlink(missing_ok=True)
        print(f"[ngroups={ngroups}] jwst Detector1 ...", flush=True)
        runs["jwst"] = run_monitored(jw.argv, jw.env, work / "jwst.log", args.interval)
        runs["jwst"].update(
            rate=str(jw.rate_path), rateints=str(jw.rateints_path), network_isolated=jw.isolated
        )
    if not args.skip_webbflow:
        out = work / "webbflow"
        out.mkdir(exist_ok=True)
        argv = webbflow_command(uncal, refs, out, args.scheduler, args.tile)
        print(f"[ngroups={ngroups}] webbflow Detector1 ...", flush=True)
        runs["webbflow"] = run_monitored(argv, dict(os.environ), work / "webbflow.log", args.interval)
        rate, rateints = product_paths(uncal, out)
        runs["webbflow"].update(rate=str(rate), rateints=str(rateints), argv0=argv[0])
    result["runs"] = runs
    ok = {k: v["returncode"] == 0 and Path(v["rate"]).exists() for k, v in runs.items()}
    if len(ok) == 2 and all(ok.values()):
        result["comparison"] = {
            p: compare_products(runs["webbflow"][p], runs["jwst"][p]) for p in ("rate", "rateints")
        }
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    gib = 2**30
    print()
    print(f"{'ngroups':>7} {'pipeline':>9} {'wall s':>8} {'peak RSS GiB':>13} {'procs':>5} {'exit':>4}")
    for r in results:
        for name, run in r["runs"].items():
            print(
                f"{r['ngroups']:>7} {name:>9} {run['wall_s']:>8.1f} {run['peak_rss_bytes'] / gib:>13.2f} "
                f"{run['max_processes']:>5} {run['returncode']:>4}"
            )
        if {"jwst", "webbflow"} <= set(r["runs"]):
            j, w = r["runs"]["jwst"], r["runs"]["webbflow"]
            print(
                f"{'':>7} {'ratio':>9} {'jwst/webbflow time':} {j['wall_s'] / w['wall_s']:.2f}x, "
                f"memory {j['peak_rss_bytes'] / max(w['peak_rss_bytes'], 1):.2f}x"
            )
        for product, cmp in r.get("comparison", {}).items():
            print("   ", format_comparison(product, cmp))
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ngroups", type=int, nargs="+", default=[10], help="one run per value (default 10)")
    parser.add_argument("--nints", type=int, default=1)
    parser.add_argument("--detector", default="NRCA1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("bench-detector1"))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--scheduler", help="webbflow --scheduler (default: its own)")
    parser.add_argument("--tile", type=int, help="webbflow --tile")
    parser.add_argument("--interval", type=float, default=0.1, help="memory sampling period, s")
    parser.add_argument("--skip-jwst", action="store_true")
    parser.add_argument("--skip-webbflow", action="store_true")
    args = parser.parse_args(argv)
    args.workdir = args.workdir.resolve()
    machine = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }
    results = [bench_one(n, args) for n in args.ngroups]
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
        print(f"wrote {args.json}")
    failed = [f"{r['ngroups']}:{k}" for r in results for k, v in r["runs"].items() if v["returncode"]]
    if failed:
        print(f"failed runs: {', '.join(failed)} (see the logs in {args.workdir})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
