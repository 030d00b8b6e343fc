"""Benchmark: Image3 (tweakreg → skymatch → outlier_detection → resample) on growing mosaics.

For each ``--n`` N (default 4 16 64):

1. simulates N NIRCam exposures tiling the sky (``webbflow.sim.dithers.simulate_set``,
   ``layout="mosaic"``: a ceil(sqrt N)-column grid, 10 % overlap, one synthetic field, 0.05″ rms
   pointing errors) and calibrates them with Detector1 and ``webbflow run image2`` to ``cal``;
   all of this is cached in the work directory and reused on a rerun (not timed);
2. makes the level-3 association (``webbflow asn make --kind image3``);
3. times ``webbflow run image3 ASN`` in a subprocess: wall time and peak RSS of the process
   tree (``_monitor.run_monitored``, psutil sampling);
4. with ``--jwst`` (and jwst installed, N <= ``--jwst-max-n``): the same for jwst's
   ``calwebb_image3`` (``Image3Pipeline``) on the same ``cal`` files and association, offline
   (local CRDS cache naming a context that is never fetched; ``unshare -n`` when available),
   jwst's default parameters (``in_memory=True``).

``source_catalog`` is skipped on both sides (it needs APCORR/ABVEGAOFFSET references on the jwst
side): the timed work is tweakreg, skymatch, outlier_detection and resample, writing the ``crf``
files and the ``i2d`` mosaic. The claim to check: webbflow's peak memory stays about flat as N
(the sky area) grows; jwst's grows with N.

Writes ``benchmarks/results/mosaic.json`` and ``benchmarks/results/mosaic.md`` (``--results``).
Run from the repository root::

    python benchmarks/mosaic.py --n 4 16 64 --jwst
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

GIB = 2**30
#: Timed pipelines skip source_catalog (module docstring).
SKIPPED = ("source_catalog",)


def _webbflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "webbflow", *args]


def _check(argv: list[str], log: Path) -> None:
    """Run an untimed preparation command; raise with its log's tail on failure."""
    with log.open("w") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{' '.join(argv[:5])} ... failed (exit {proc.returncode}); {log}:\n{tail}")


def prepare(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Simulate, calibrate and associate N exposures (cached); what the timed runs need."""
    from astropy.io import fits

    from webbflow.sim.dithers import simulate_set

    work = args.workdir / f"n{n:03d}"
    t0 = time.perf_counter()
    data = simulate_set(
        work / "data", n, layout="mosaic", aperture=args.aperture, filter="F200W", ngroups=args.ngroups,
        overlap=args.overlap, stars=args.stars, galaxies=args.galaxies, bright=args.bright, faint=args.faint,
        pointing_error_rms=0.05, seed=args.seed,
        reuse=True, scheduler=args.scheduler,
    )  # fmt: skip
    simulate_s = time.perf_counter() - t0
    cal_dir = work / "cal"
    cal_dir.mkdir(exist_ok=True)
    cal = [cal_dir / p.name.replace("_rate.fits", "_cal.fits") for p in data.rate]
    t0 = time.perf_counter()
    fresh = [
        c.is_file() and c.stat().st_mtime >= r.stat().st_mtime for c, r in zip(cal, data.rate, strict=True)
    ]
    if not all(fresh):
        argv = _webbflow("run", "image2", *map(str, data.rate), "-o", str(cal_dir), "--overwrite", "-q")
        _check(argv + (["--scheduler", args.scheduler] if args.scheduler else []), work / "image2.log")
    image2_s = time.perf_counter() - t0
    asn = cal_dir / "image3_asn.json"
    _check(
        _webbflow("asn", "make", "--kind", "image3", *map(str, cal), "-o", str(asn), "--overwrite"),
        work / "asn.log",
    )
    pixels = 0
    for path in cal:
        h = fits.getheader(path, "SCI")
        pixels += int(h["NAXIS1"]) * int(h["NAXIS2"])
    return {
        "n": n,
        "work": work,
        "asn": asn,
        "cal": cal,
        "input_pixels": pixels,
        "simulate_detector1_s": simulate_s,
        "image2_s": image2_s,
        "pointing_errors_arcsec": [e.error[:2] for e in data.exposures],
    }


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def _mosaic_shape(out: Path) -> list[int] | None:
    from astropy.io import fits

    found = sorted(out.glob("*_i2d.fits"))
    if not found:
        return None
    h = fits.getheader(found[0], "SCI")
    return [int(h["NAXIS2"]), int(h["NAXIS1"])]


def run_webbflow(prep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    out = _fresh(prep["work"] / "webbflow")
    argv = _webbflow("run", "image3", str(prep["asn"]), "-o", str(out), "--overwrite", "-q")
    argv += [f"--steps.{step}.skip=true" for step in SKIPPED]
    argv += ["--scheduler", args.scheduler] if args.scheduler else []
    argv += ["--tile", str(args.tile)] if args.tile else []
    print(f"[N={prep['n']}] webbflow image3 ...", flush=True)
    run = run_monitored(argv, dict(os.environ), prep["work"] / "webbflow.log", args.interval)
    run.update(mosaic_shape=_mosaic_shape(out), argv=argv[2:])
    return run


def run_jwst(prep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from oracle.jwst_runner import network_isolation_prefix, offline_crds_env

    out = _fresh(prep["work"] / "jwst")
    config = {"asn": str(prep["asn"]), "output_dir": str(out), "skip": list(SKIPPED)}
    cfg = out / "image3.json"
    cfg.write_text(json.dumps(config))
    env = {**os.environ, **offline_crds_env(prep["work"] / ".crds")}
    prefix = network_isolation_prefix()
    argv = [*prefix, sys.executable, str(Path(__file__).resolve()), "--jwst-child", str(cfg)]
    print(f"[N={prep['n']}] jwst calwebb_image3 ...", flush=True)
    run = run_monitored(argv, env, prep["work"] / "jwst.log", args.interval)
    run.update(mosaic_shape=_mosaic_shape(out), network_isolated=bool(prefix))
    return run


def _jwst_child(cfg_path: str) -> int:
    """In a fresh interpreter with the offline CRDS environment: jwst's Image3Pipeline."""
    config = json.loads(Path(cfg_path).read_text())
    from jwst.pipeline import Image3Pipeline

    steps: dict[str, dict[str, Any]] = {}
    for name, cls in Image3Pipeline.step_defs.items():
        steps[name] = {f"override_{r}": "N/A" for r in cls.reference_file_types}
        if name in config["skip"]:
            steps[name]["skip"] = True
    Image3Pipeline.call(config["asn"], steps=steps, save_results=True, output_dir=config["output_dir"])
    return 0


def _jwst_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("jwst") is not None


def row(result: dict[str, Any]) -> dict[str, Any]:
    """The table row of one N."""
    w, j = result["runs"].get("webbflow"), result["runs"].get("jwst")
    ok = {k: v for k, v in (("webbflow", w), ("jwst", j)) if v and v["returncode"] == 0}
    r: dict[str, Any] = {
        "N": result["n"],
        "input Mpix": result["input_pixels"] / 1e6,
        "mosaic": "×".join(
            map(str, (ok.get("webbflow") or ok.get("jwst") or {}).get("mosaic_shape") or ["-"])
        ),
    }
    for name in ("webbflow", "jwst"):
        run = result["runs"].get(name)
        failed = run is not None and name not in ok
        r[f"{name} wall s"] = "failed" if failed else run["wall_s"] if run else None
        r[f"{name} peak GiB"] = "failed" if failed else run["peak_rss_bytes"] / GIB if run else None
    if len(ok) == 2:
        r["jwst/webbflow wall"] = j["wall_s"] / w["wall_s"]
        r["jwst/webbflow memory"] = j["peak_rss_bytes"] / max(w["peak_rss_bytes"], 1)
    return r


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """The results as a markdown table."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [
        f"Image3 (source_catalog skipped on both sides) on {machine['cpus']} CPUs, "
        f"{machine['memory_bytes'] / GIB:.0f} GiB; peak RSS of the process tree.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        cells = [
            "-" if r.get(c) is None else f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4, 16, 64], help="exposures per mosaic")
    parser.add_argument("--jwst", action="store_true", help="also time jwst's calwebb_image3")
    parser.add_argument("--jwst-max-n", type=int, default=64, help="largest N given to jwst")
    parser.add_argument("--skip-webbflow", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("bench-mosaic"))
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--aperture", default="NRCA1_SUB640")
    parser.add_argument("--ngroups", type=int, default=3)
    parser.add_argument("--overlap", type=float, default=0.2, help="overlap of neighbouring tiles")
    parser.add_argument("--stars", type=float, default=500.0, help="stars per exposure footprint")
    parser.add_argument("--galaxies", type=float, default=100.0, help="galaxies per exposure footprint")
    parser.add_argument("--bright", type=float, default=17.0, help="brightest source, AB mag")
    parser.add_argument("--faint", type=float, default=23.0, help="faintest source, AB mag")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scheduler", help="webbflow --scheduler (default: its own)")
    parser.add_argument("--tile", type=int, help="webbflow --tile")
    parser.add_argument("--interval", type=float, default=0.1, help="memory sampling period, s")
    parser.add_argument("--jwst-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jwst_child:
        return _jwst_child(args.jwst_child)
    args.workdir = args.workdir.resolve()
    if args.jwst and not _jwst_available():
        print("jwst is not installed: timing webbflow only", file=sys.stderr)
        args.jwst = False
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }
    results, status = [], 0
    for n in args.n:
        prep = prepare(n, args)
        runs: dict[str, Any] = {}
        if not args.skip_webbflow:
            runs["webbflow"] = run_webbflow(prep, args)
        if args.jwst and n <= args.jwst_max_n:
            runs["jwst"] = run_jwst(prep, args)
        for name, run in runs.items():
            if run["returncode"] != 0:
                print(f"[N={n}] {name} failed (exit {run['returncode']}); log {run['log']}", file=sys.stderr)
                status = 1
        keep = ("n", "input_pixels", "simulate_detector1_s", "image2_s", "pointing_errors_arcsec")
        results.append({**{k: prep[k] for k in keep}, "aperture": args.aperture, "runs": runs})
        write_results(args.results, results, machine, args)  # after every N: a crash keeps the rest
        print(markdown([row(r) for r in results], machine), flush=True)
    return status


def write_results(directory: Path, results: list[dict[str, Any]], machine: dict[str, Any], args: Any) -> None:
    """``mosaic.json`` (every measurement) and ``mosaic.md`` (the table) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [row(r) for r in results]
    report = {
        "machine": machine,
        "skipped_steps": list(SKIPPED),
        "setup": {k: getattr(args, k) for k in ("aperture", "ngroups", "overlap", "stars", "galaxies")},
        "rows": rows,
        "results": results,
    }
    (directory / "mosaic.json").write_text(json.dumps(report, indent=1, default=str))
    (directory / "mosaic.md").write_text(markdown(rows, machine))


if __name__ == "__main__":
    sys.exit(main())
