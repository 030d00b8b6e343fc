"""Closure test of MIRI imaging: simulate a star field, calibrate it with Detector1, measure, compare.

A MIRI imager SUB256 exposure in F770W (FASTR1, 40 groups, 3 integrations, low background,
every simulated MIRI effect on: dark per integration, reset anomaly, RSCD, EMI, nonlinearity,
cosmic rays and showers; no flat field, which Detector1 does not remove) of stars on a jittered
grid, written as an ordinary Mirage RA/Dec catalog. webbflow's MIRI Detector1 (emicorr turned
on, with ``reset_model``: it is skipped by default, as in jwst) turns the ramps into a rate
image, converted to e⁻/s with the same GAIN reference the simulation used, and the stars are
measured with photutils as in the near-infrared closure test (:mod:`sim_photometry`).

Requirements (the issue's "within the noise", not tuned): for stars with S/N > 50,
|median(measured/true − 1)| < 2 % and the robust standard deviation of (measured − true)/σ
between 0.7 and 1.5; median position error < 0.03 px for S/N > 100. The 2 % (not the
near-infrared 1 %) allows for the ~40 stars a 28″ subarray holds: the median of 40 ratios has
a standard error of ~0.3 % at S/N 50 on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from sim_photometry import (
    Apertures,
    Closure,
    format_table,
    jittered_grid,
    measure_closure,
    robust_std,
    write_point_catalog,
)
from webbflow import dq
from webbflow.graphs.simulate import Simulation, build_simulation
from webbflow.sim.config import config_from_dict
from webbflow.sim.geometry import Geometry, Pointing

pytestmark = pytest.mark.slow

RA, DEC, V3PA = 53.1625, -27.7914, 15.0
APERTURE, FILTER = "MIRIM_SUB256", "F770W"
BRIGHT, FAINT = 15.0, 21.0
SPACING, JITTER, MARGIN = 32.0, 4.0, 16.0
EDGES = np.arange(BRIGHT, FAINT + 1.0)
APERTURES = Apertures(radius=4.0, r_in=9.0, r_out=13.0)
BITS = {"DO_NOT_USE": dq.DO_NOT_USE, "SATURATED": dq.SATURATED, "JUMP_DET": dq.JUMP_DET}
#: Detector1 steps turned on for the closure (skipped by default, as in jwst 3.0).
#: ``reset_model``: the EMI fit sees the ramps with the RESET reference's anomaly removed (the
#: joint line + EMI model cannot absorb the simulated anomaly; see ``steps/emicorr/step.py``).
STEPS: dict[str, dict[str, Any]] = {"emicorr": {"skip": False, "reset_model": True}}


@dataclass(frozen=True)
class Field:
    sim: Simulation
    exposure: xr.Dataset
    mag: np.ndarray
    gain: np.ndarray
    seconds: float


def make_field(work: Path, *, seed: int = 5) -> Field:
    """Write the catalog, build the MIRI simulation and compute it (kept in memory)."""
    from webbflow.io.reffiles import ReferenceResolver

    geometry = Geometry.from_aperture(APERTURE, Pointing(RA, DEC, V3PA))
    rng = np.random.default_rng(20261123)
    x, y = jittered_grid(geometry.window, SPACING, JITTER, MARGIN, rng)
    mag = rng.uniform(BRIGHT, FAINT, x.size)
    ra, dec = geometry.pixel_to_sky(x, y)
    catalog = write_point_catalog(work / "stars.cat", ra, dec, mag, column="miri_f770w_magnitude")
    data: dict[str, Any] = {
        "instrument": "MIRI",
        "aperture": APERTURE,
        "filter": FILTER,
        "readout": {"readpatt": "FASTR1", "ngroups": 40, "nints": 3},
        "pointing": {"ra": RA, "dec": DEC, "v3pa": V3PA},
        "catalogs": {"point": [str(catalog)]},
        "background": {"level": "low"},
        "effects": {"flat": False},
        "seed": seed,
        "output": {"name": "jw01234001001_01101_00001_mirimage_uncal.fits"},
    }
    resolver = ReferenceResolver(use_crds=False)
    start = time.perf_counter()
    sim = build_simulation(config_from_dict(data), resolver=resolver)
    exposure = sim.exposure.persist()
    seconds = time.perf_counter() - start
    gain_ref = resolver.resolve("gain", exposure, None)
    assert gain_ref is not None
    gain = np.asarray(resolver.open(gain_ref, exposure)["sci"].values, np.float64)
    return Field(sim, exposure, mag, gain, seconds)


def calibrate(f: Field, steps: dict[str, dict[str, Any]]) -> xr.Dataset:
    """webbflow's MIRI Detector1 rate of the exposure (embedded default references)."""
    from webbflow.graphs.detector1 import Detector1
    from webbflow.model import split_rate

    rate, _ = split_rate(Detector1(steps=steps)(f.exposure[["sci", "groupdq", "pixeldq"]]))
    return rate.compute()


def measure(f: Field, rate: xr.Dataset) -> Closure:
    pts = f.sim.scene.points
    order = np.argsort(pts.index)
    xstart, ystart = f.sim.geometry.window[:2]
    x, y = pts.x[order] - (xstart - 1), pts.y[order] - (ystart - 1)
    mag = f.mag[pts.index[order] - 1]
    return measure_closure(
        rate.sci.values * f.gain,
        rate.err.values * f.gain,
        rate.dq.values,
        x,
        y,
        pts.flux[order],
        mag,
        f.sim.scene.psf,
        APERTURES,
        bits=BITS,
    )


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> Field:
    return make_field(tmp_path_factory.mktemp("miri_closure"))


@pytest.fixture(scope="module")
def rate(field: Field) -> xr.Dataset:
    return calibrate(field, STEPS)


def test_miri_calibration_runs_the_miri_steps(rate: xr.Dataset) -> None:
    steps = rate.attrs["meta"]["cal_step"]
    for name in ("emicorr", "firstframe", "lastframe", "reset", "rscd", "dark_sub", "jump", "ramp_fit"):
        assert name in steps, name
    assert steps["emicorr"] == "COMPLETE" and steps["reset"] == "COMPLETE" and steps["rscd"] == "COMPLETE"
    assert "superbias" not in steps and "persistence" not in steps  # near-infrared only


def test_miri_closure_recovers_fluxes(field: Field, rate: xr.Dataset) -> None:
    start = time.perf_counter()
    c = measure(field, rate)
    k = c.kept
    print("\n" + format_table(c.table(EDGES), f"MIRI closure: {k.sum()} of {k.size} stars measured"))
    seconds = time.perf_counter() - start
    print(f"  excluded: {c.excluded}; simulate {field.seconds:.1f} s, measure {seconds:.1f} s")
    strong = k & (c.snr > 50)
    assert strong.sum() >= 25, f"only {strong.sum()} stars with S/N > 50"
    bias = float(np.median(c.ratio[strong]) - 1.0)
    spread = robust_std(c.normalized[strong])
    assert abs(bias) < 0.02, f"flux bias {bias:+.4f} for S/N > 50"
    assert 0.7 < spread < 1.5, f"normalized flux residuals have robust std {spread:.3f} (S/N > 50)"
    sharp = k & (c.snr > 100)
    assert np.median(c.offset[sharp]) < 0.03, f"median position error {np.median(c.offset[sharp]):.4f} px"
