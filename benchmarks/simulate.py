"""Benchmark: simulate NIRCam full-frame exposures with ``webbflow simulate``.

Cases (each run in its own subprocess, wall time and peak RSS of the process
tree sampled with psutil):

* ``one``: one NIRCam SW full frame (NRCA1), ``--ngroups`` groups RAPID, a
  synthetic field of about ``--sources`` sources (3/4 stars, 1/4 Sérsic
  galaxies) covering the detector;
* ``module``: the four SW detectors of module A (NRCA1-NRCA4) in one command
  (one dask graph), the same source density over the module.

Memory is bounded by the tile, not the number of detectors: the ``module``
case should need far less than 4× the memory of ``one``. Prints a table and
writes ``--json``. Run from the repository root::

    python benchmarks/simulate.py --json bench-sim.json
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
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _monitor import run_monitored  # noqa: E402

from webbflow.sim.field import write_field  # noqa: E402
from webbflow.sim.geometry import Geometry, Pointing  # noqa: E402

RA, DEC = 53.1625, -27.7914


def _config(aperture: str, ra: float, dec: float, catalogs: Any, ngroups: int, out: Path, exp: int) -> dict:
    return {
        "instrument": "NIRCAM",
        "aperture": aperture,
        "filter": "F200W",
        "pupil": "CLEAR",
        "readout": {"readpatt": "RAPID", "ngroups": ngroups, "nints": 1},
        "pointing": {"ra": ra, "dec": dec, "v3pa": 0.0},
        "catalogs": {"point": [str(catalogs.point)], "galaxy": [str(catalogs.galaxy)]},
        "seed": 1,
        "observation": {"exposure": exp},
        "output": {"directory": str(out), "products": ["uncal"]},
    }


def _write_configs(work: Path, case: str, ngroups: int, sources: int) -> list[Path]:
    """Configs of a case; each detector's reference point placed by the module's attitude."""
    apertures = ["NRCA1_FULL"] if case == "one" else [f"NRCA{i}_FULL" for i in range(1, 5)]
    width = 70.0 if case == "one" else 140.0
    reference = "NRCA1_FULL" if case == "one" else "NRCAS_FULL"  # module A SW centre
    n = sources * len(apertures)
    cats = write_field(
        work / "catalogs",
        ra=RA,
        dec=DEC,
        width_arcsec=width,
        n_stars=3 * n // 4,
        n_galaxies=n // 4,
        name=case,
        seed=5,
    )
    paths = []
    for i, aperture in enumerate(apertures):
        geo = Geometry.from_aperture(aperture, Pointing(RA, DEC, 0.0), reference=reference)
        ra, dec = geo.pixel_to_sky(*geo.reference_pixel)
        cfg = _config(aperture, float(ra), float(dec), cats, ngroups, work / case, i + 1)
        path = work / f"{case}_{aperture}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngroups", type=int, default=10)
    parser.add_argument("--sources", type=int, default=2000, help="sources per detector")
    parser.add_argument("--cases", nargs="+", default=["one", "module"], choices=["one", "module"])
    parser.add_argument("--workdir", type=Path, default=Path("bench-simulate"))
    parser.add_argument("--scheduler", default="threads")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total,
            "python": platform.python_version(),
        },
        "ngroups": args.ngroups,
        "cases": {},
    }
    # generate the default references and PSF once, outside the timed runs
    warm = _write_configs(work / "warm", "one", 1, 10)
    run_monitored(
        [sys.executable, "-m", "webbflow", "simulate", *map(str, warm), "--overwrite", "-q", "--tile", "256"],
        env,
        work / "warm.log",
        args.interval,
    )
    for case in args.cases:
        configs = _write_configs(work, case, args.ngroups, args.sources)
        argv_ = [sys.executable, "-m", "webbflow", "simulate", *map(str, configs), "--overwrite", "-q"]
        argv_ += ["--scheduler", args.scheduler]
        run = run_monitored(argv_, env, work / f"{case}.log", args.interval)
        if run["returncode"] != 0:
            print(f"{case}: failed (see {run['log']})", file=sys.stderr)
            return 1
        pixels = len(configs) * 2048 * 2048 * args.ngroups
        run.update(detectors=len(configs), pixels_per_s=pixels / run["wall_s"])
        results["cases"][case] = run
    print(f"{'case':8s} {'detectors':>9s} {'wall s':>8s} {'peak GiB':>9s} {'Mpix/s':>8s}")
    for case, r in results["cases"].items():
        print(
            f"{case:8s} {r['detectors']:9d} {r['wall_s']:8.1f} {r['peak_rss_bytes'] / 2**30:9.2f}"
            f" {r['pixels_per_s'] / 1e6:8.2f}"
        )
    cases = results["cases"]
    if "one" in cases and "module" in cases:
        ratio = cases["module"]["peak_rss_bytes"] / cases["one"]["peak_rss_bytes"]
        results["module_over_one_memory"] = ratio
        print(f"memory, 4 detectors / 1 detector: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
