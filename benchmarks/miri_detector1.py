"""Benchmark: MIRI Detector1, webbflow vs jwst, full array, 5 integrations × 50 groups FASTR1.

Both run in their own subprocess on the same ``uncal`` simulated by
:mod:`webbflow.graphs.simulate` (MIRI F770W FASTR1, high background, cosmic rays, showers,
reset anomaly, dark, EMI) with the same reference files: webbflow's embedded default MIRI
references (mask, saturation, linearity, dark, gain, readnoise, reset, rscd, emicorr; others
N/A, CRDS off). jwst gets the jump parameters webbflow resolves for MIRI (its CRDS
``pars-jumpstep`` is off). Step defaults otherwise (``emicorr`` skipped on both, as jwst 3.0).
Wall time and peak RSS (process tree) are measured by :func:`_monitor.run_monitored`;
results go to ``benchmarks/results/miri_detector1.{md,json}``.

    python benchmarks/miri_detector1.py [--nints 5 --ngroups 50 --subarray FULL --work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _monitor import run_monitored  # noqa: E402

from oracle.jwst_runner import compare_products, prepare_jwst_detector1  # noqa: E402
from oracle.miri_inputs import (  # noqa: E402
    default_miri_references,
    jwst_jump_parameters,
    jwst_miri_references,
    simulate_miri_uncal,
)

RESULTS = REPO / "benchmarks" / "results"


def webbflow_argv(uncal: Path, refs: dict[str, Path], out: Path, tile: int | None) -> list[str]:
    """The command running webbflow's Detector1 with exactly ``refs`` (others N/A)."""
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from webbflow.graphs.detector1 import Detector1\n"
        "from webbflow.graphs.runner import RunOptions, run_detector1\n"
        "from webbflow.io.fits_reader import open_exposure\n"
        "a = json.loads(sys.argv[1])\n"
        "ds = open_exposure(a['uncal'])\n"
        "steps = {n: {f'override_{r}': a['refs'].get(r, 'N/A') for r in s.reftypes}\n"
        "         for n, s in Detector1().active_steps(ds).items() if s.reftypes}\n"
        "run_detector1([a['uncal']], steps, RunOptions(output_dir=Path(a['out']), tile=a['tile'],\n"
        "              overwrite=True, progress=False))\n"
    )
    args = {"uncal": str(uncal), "refs": {k: str(v) for k, v in refs.items()}, "out": str(out), "tile": tile}
    return [sys.executable, "-c", code, json.dumps(args)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=int, default=5)
    ap.add_argument("--ngroups", type=int, default=50)
    ap.add_argument("--subarray", default="FULL")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path("/tmp/webbflow_bench_miri"))
    ap.add_argument("--skip-jwst", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse an uncal already in --work")
    args = ap.parse_args(argv)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    os.environ["WEBBFLOW_CACHE"] = str(work / "cache")  # the defaults are generated here once
    env = dict(os.environ)
    uncal = next(work.glob("*_uncal.fits"), None)
    if uncal is None or not args.reuse:
        uncal = simulate_miri_uncal(work, args.subarray, args.nints, args.ngroups)
    refs = default_miri_references(args.ngroups)
    from webbflow.io.fits_reader import open_exposure

    jump = jwst_jump_parameters(open_exposure(uncal))
    runs: dict[str, Any] = {}
    ours_dir = work / "webbflow"
    ours_dir.mkdir(exist_ok=True)
    runs["webbflow"] = run_monitored(
        webbflow_argv(uncal, refs, ours_dir, args.tile), env, work / "webbflow.log", 0.2
    )
    if not args.skip_jwst:
        jwst_refs = jwst_miri_references(refs, args.subarray, work / "jwst_refs")
        run = prepare_jwst_detector1(uncal, jwst_refs, work / "jwst", {"jump": jump})
        runs["jwst"] = run_monitored(list(run.argv), run.env, work / "jwst.log", 0.2)
        stem = uncal.name.removesuffix("_uncal.fits")
        if runs["jwst"]["returncode"] == 0 and runs["webbflow"]["returncode"] == 0:
            runs["agreement"] = {
                p: compare_products(
                    ours_dir / f"{stem}_{p}.fits", run.rate_path if p == "rate" else run.rateints_path
                )
                for p in ("rate", "rateints")
            }
    result = {
        "case": {
            "subarray": args.subarray,
            "nints": args.nints,
            "ngroups": args.ngroups,
            "readpatt": "FASTR1",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "miri_detector1.json").write_text(json.dumps(result, indent=1, default=str))
    lines = [
        f"# MIRI Detector1: {args.subarray}, {args.nints} integrations × {args.ngroups} groups FASTR1",
        "",
        f"{os.cpu_count()} CPUs, {result['machine']['memory_gib']} GiB.",
        "",
        "| pipeline | wall (s) | peak RSS (GiB) | exit |",
        "|---|---|---|---|",
    ]
    for name in ("webbflow", "jwst"):
        if name in runs:
            r = runs[name]
            lines.append(
                f"| {name} | {r['wall_s']:.1f} | {r['peak_rss_bytes'] / 2**30:.2f} | {r['returncode']} |"
            )
    if "webbflow" in runs and "jwst" in runs:
        w, j = runs["webbflow"], runs["jwst"]
        result["ratios"] = {
            "wall_jwst_over_webbflow": j["wall_s"] / w["wall_s"],
            "peak_rss_jwst_over_webbflow": j["peak_rss_bytes"] / w["peak_rss_bytes"],
        }
        lines.append(
            f"\njwst / webbflow: wall × {result['ratios']['wall_jwst_over_webbflow']:.2f}, "
            f"peak RSS × {result['ratios']['peak_rss_jwst_over_webbflow']:.2f}"
        )
    for prod, agree in runs.get("agreement", {}).items():
        lines.append(
            f"\n{prod}: SCI agree {100 * agree['sci_agree']:.4f} % (max rel diff "
            f"{agree['sci_max_rel_diff']:.3g}), ERR agree {100 * agree['err_agree']:.4f} %, DQ identical "
            f"{100 * agree['dq_identical']:.4f} %, "
            f"JUMP_DET identical {100 * agree['JUMP_DET_identical']:.4f} % "
            f"(ours {agree['JUMP_DET_ours']}, jwst {agree['JUMP_DET_theirs']})"
        )
    (RESULTS / "miri_detector1.json").write_text(json.dumps(result, indent=1, default=str))
    (RESULTS / "miri_detector1.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r.get("returncode", 0) == 0 for k, r in runs.items() if k != "agreement") else 1


if __name__ == "__main__":
    sys.exit(main())
