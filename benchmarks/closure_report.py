"""Report: the simulator's closure (simulate → Detector1 → photometry) over several seeds.

Runs the field of ``tests/test_sim_closure.py`` (NRCA1 SUB640, F200W, RAPID × 10, 361
isolated stars 17–24 AB) once per ``--seeds`` value, calibrates it with webbflow's Detector1
(and jwst's with ``--jwst``), measures the stars with ``tests/sim_photometry.py`` and prints
the bias and scatter per magnitude bin for each run and for all runs together, plus the sky
noise relative to the rate ``err``. Diagnostics:

* ``--readnoise-scale 0.7071`` simulates with the READNOISE reference scaled (the
  calibration keeps the unscaled file): shows what a read-noise convention fix would give;
* ``--no-correlated-noise`` turns off the 1/f, ACN and pedestal noise.

Run from the repository root::

    python benchmarks/closure_report.py --seeds 3 4 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from sim_photometry import Closure, format_table, robust_std  # noqa: E402
from test_sim_closure import EDGES, calibrate, make_field, measure, report, sky_noise  # noqa: E402


def _scaled_readnoise(work: Path, scale: float) -> Path:
    """A copy of the default READNOISE reference of the closure exposure, multiplied by ``scale``."""
    from astropy.io import fits

    from webbflow.graphs.simulate import build_simulation
    from webbflow.io.reffiles import ReferenceResolver
    from webbflow.sim.config import config_from_dict

    config = config_from_dict({"instrument": "NIRCAM", "aperture": "NRCA1_SUB640", "filter": "F200W"})
    probe = build_simulation(config)
    resolver = ReferenceResolver(use_crds=False)
    ref = resolver.resolve("readnoise", probe.exposure, None)
    if ref is None:
        raise SystemExit("no READNOISE reference for NRCA1")
    out = work / f"readnoise_x{scale:g}.fits"
    with fits.open(ref.path) as hdul:
        hdul["SCI"].data = (hdul["SCI"].data * scale).astype(np.float32)
        hdul.writeto(out, overwrite=True)
    return out


def _combine(closures: list[Closure]) -> Closure:
    """All runs' stars as one sample."""
    cat = {
        name: np.concatenate([getattr(c, name) for c in closures])
        for name in ("mag", "true_flux", "flux", "sigma", "dx", "dy", "kept", "saturated", "jump_core")
    }
    excluded = {k: sum(c.excluded[k] for c in closures) for k in closures[0].excluded}
    return Closure(excluded=excluded, **cat)


def _summary(c: Closure) -> str:
    k = c.kept
    strong, sharp = k & (c.snr > 50), k & (c.snr > 100)
    return (
        f"S/N > 50: {strong.sum()} stars, bias {np.median(c.ratio[strong]) - 1:+.4f}, normalized robust std "
        f"{robust_std(c.normalized[strong]):.3f}; S/N > 100: {sharp.sum()} stars, median |dxy| "
        f"{np.median(c.offset[sharp]):.4f} px, {np.mean(c.offset[sharp] < 0.05):.1%} within 0.05 px, "
        f"median dx {np.median(c.dx[sharp]):+.4f} dy {np.median(c.dy[sharp]):+.4f} px"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3])
    parser.add_argument("--readnoise-scale", type=float, default=1.0)
    parser.add_argument("--no-correlated-noise", action="store_true")
    parser.add_argument("--jwst", action="store_true", help="also calibrate with jwst's Detector1")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="closure-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WEBBFLOW_CACHE", str(work / "cache"))
    changes: dict[str, Any] = {}
    if args.readnoise_scale != 1.0:
        changes["reffiles"] = {"readnoise": str(_scaled_readnoise(work, args.readnoise_scale))}
    if args.no_correlated_noise:
        changes["effects"] = {"flat": False, "correlated_noise": False}
    runs: dict[str, list[Closure]] = {"webbflow": [], "jwst": []}
    for seed in args.seeds:
        run_dir = work / f"seed{seed}"
        run_dir.mkdir(exist_ok=True)
        field = make_field(run_dir, seed=seed, changes=changes)
        rate, seconds = calibrate(field)
        closure = measure(field, rate.sci.values, rate.err.values, rate.dq.values)
        runs["webbflow"].append(closure)
        print(report(f"webbflow, seed {seed}", closure, {"simulate": field.seconds, "detector1": seconds}))
        print(f"  sky noise / err: {sky_noise(rate, field.exposure.seed.values):.3f}")
        if args.jwst:
            from astropy.io import fits

            from oracle.jwst_runner import run_jwst_detector1
            from webbflow.engine.execute import compute_products
            from webbflow.io.products import fits_product

            uncal = run_dir / field.exposure.attrs["meta"]["filename"]
            compute_products([fits_product(field.exposure, uncal, "uncal", overwrite=True)], progress=False)
            rate_path, _ = run_jwst_detector1(uncal, field.refs, run_dir / "jwst")
            with fits.open(rate_path) as hdul:
                sci, err, dq = (np.asarray(hdul[k].data) for k in ("SCI", "ERR", "DQ"))
            theirs = measure(field, sci, err, dq)
            runs["jwst"].append(theirs)
            print(report(f"jwst, seed {seed}", theirs, {}))
    for name, closures in runs.items():
        if closures:
            total = _combine(closures)
            print(format_table(total.table(EDGES), f"\n{name}: all {len(closures)} runs"))
            print("  " + _summary(total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
