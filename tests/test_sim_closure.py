"""Closure test of the simulator: simulate a star field, calibrate it, measure the stars, compare.

A NIRCam NRCA1 SUB640 exposure in F200W (RAPID, 10 groups, one integration, SUNMAX cosmic
rays, low background, every detector effect on except the flat field, which Detector1 does not
remove) of 361 isolated stars, 17–24 AB, on a jittered grid written as an ordinary Mirage RA/Dec
catalog. Detector1 (webbflow's; jwst's in the oracle variant) turns the ramp into a rate image,
converted to e⁻/s with the same GAIN reference the simulation used. Stars are measured with
photutils (:mod:`sim_photometry`): positions by fitting the simulation's own effective PSF;
fluxes in r = 4 px apertures on the image with every other star's fitted model removed, with an
annulus-median background and an aperture correction from the same noiseless PSF model.

Requirements (the issue's, not tuned): for stars with S/N > 50, |median(measured/true − 1)|
< 1 % and the robust standard deviation of (measured − true)/σ between 0.7 and 1.5; for
S/N > 100, median position error < 0.02 px and ≥ 95 % within 0.05 px. Run with ``-s`` for
the table of bias and scatter per magnitude bin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import pytest
import xarray as xr

from sim_photometry import Apertures, Closure, format_table, jittered_grid, measure_closure, robust_std
from sim_photometry import write_point_catalog
from webbflow import dq
from webbflow.graphs.simulate import Simulation, build_simulation
from webbflow.sim.config import config_from_dict
from webbflow.sim.geometry import Geometry, Pointing

RA, DEC, V3PA = 53.1625, -27.7914, 15.0
APERTURE = "NRCA1_SUB640"
BRIGHT, FAINT = 17.0, 24.0
SPACING, JITTER, MARGIN = 32.0, 4.0, 16.0  # neighbours ≥ 24 px apart: beyond the 13 px annulus
EDGES = np.arange(BRIGHT, FAINT + 1.0)
APERTURES = Apertures(radius=4.0, r_in=9.0, r_out=13.0)
BITS = {"DO_NOT_USE": dq.DO_NOT_USE, "SATURATED": dq.SATURATED, "JUMP_DET": dq.JUMP_DET}
#: References the simulation reads; jwst gets the same files (every other type N/A).
REFTYPES = ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise", "ipc")


@dataclass(frozen=True)
class Field:
    """The simulated exposure (computed once) and its truth."""

    sim: Simulation
    exposure: xr.Dataset
    intended: tuple[np.ndarray, np.ndarray]
    mag: np.ndarray
    gain: np.ndarray
    refs: dict[str, Path]
    work: Path
    seconds: float


@pytest.fixture(scope="session")
def field(tmp_path_factory: pytest.TempPathFactory) -> Field:
    from webbflow.io.reffiles import ReferenceResolver

    work = tmp_path_factory.mktemp("closure")
    geometry = Geometry.from_aperture(APERTURE, Pointing(RA, DEC, V3PA))
    rng = np.random.default_rng(20260101)
    x, y = jittered_grid(geometry.window, SPACING, JITTER, MARGIN, rng)
    mag = rng.uniform(BRIGHT, FAINT, x.size)
    ra, dec = geometry.pixel_to_sky(x, y)
    catalog = write_point_catalog(work / "stars.cat", ra, dec, mag)
    config = config_from_dict(
        {
            "instrument": "NIRCAM",
            "aperture": APERTURE,
            "filter": "F200W",
            "pupil": "CLEAR",
            "readout": {"readpatt": "RAPID", "ngroups": 10, "nints": 1},
            "pointing": {"ra": RA, "dec": DEC, "v3pa": V3PA},
            "catalogs": {"point": [str(catalog)]},
            "background": {"level": "low"},
            "cosmic_rays": {"environment": "SUNMAX"},
            "effects": {"flat": False},  # Detector1 does not flat-field (Image2 does)
            "seed": 3,
            "output": {"name": "jw01234001001_01101_00001_nrca1_uncal.fits"},
        }
    )
    resolver = ReferenceResolver(use_crds=False)
    start = time.perf_counter()
    sim = build_simulation(config, resolver=resolver)
    exposure = sim.exposure.persist()
    seconds = time.perf_counter() - start
    refs = {}
    for reftype in REFTYPES:
        ref = resolver.resolve(reftype, exposure, None)
        assert ref is not None, reftype
        refs[reftype] = Path(ref.path)
    gain = np.asarray(resolver.open(resolver.resolve("gain", exposure, None), exposure)["sci"].values)
    return Field(sim, exposure, (x, y), mag, gain, refs, work, seconds)


def _truth(f: Field) -> tuple[np.ndarray, ...]:
    """True positions (array pixels), count rates and magnitudes, in catalog order."""
    pts = f.sim.scene.points
    order = np.argsort(pts.index)
    xstart, ystart = f.sim.geometry.window[:2]
    index = pts.index[order]
    return pts.x[order] - (xstart - 1), pts.y[order] - (ystart - 1), pts.flux[order], f.mag[index - 1]


def _measure(f: Field, sci: np.ndarray, err: np.ndarray, rate_dq: np.ndarray) -> Closure:
    """Stars measured on a DN/s rate (converted to e⁻/s with the simulation's gain)."""
    x, y, flux, mag = _truth(f)
    return measure_closure(
        sci * f.gain, err * f.gain, rate_dq, x, y, flux, mag, f.sim.scene.psf, APERTURES, bits=BITS
    )


def _report(name: str, c: Closure, seconds: dict[str, float]) -> str:
    k = c.kept
    lines = [
        format_table(c.table(EDGES), f"closure ({name}): {k.sum()} of {k.size} stars measured"),
        f"  excluded: {c.excluded}; kept with a SATURATED pixel in the aperture: "
        f"{(c.saturated & k).sum()}; kept with a JUMP_DET pixel within 1.5 px: {(c.jump_core & k).sum()}",
        f"  median bias of kept stars with a jump-flagged core: "
        f"{np.median(c.ratio[k & c.jump_core]) - 1:+.4f}; without: {np.median(c.ratio[k & ~c.jump_core]) - 1:+.4f}",
        "  times: " + ", ".join(f"{key} {value:.1f} s" for key, value in seconds.items()),
    ]
    return "\n".join(lines)


def _check(c: Closure) -> None:
    k = c.kept
    strong = k & (c.snr > 50)
    assert strong.sum() >= 100, f"only {strong.sum()} stars with S/N > 50"
    bias = float(np.median(c.ratio[strong]) - 1.0)
    spread = robust_std(c.normalized[strong])
    assert abs(bias) < 0.01, f"flux bias {bias:+.4f} for S/N > 50"
    assert 0.7 < spread < 1.5, f"normalized flux residuals have robust std {spread:.3f} (S/N > 50)"
    sharp = k & (c.snr > 100)
    offset = c.offset[sharp]
    assert np.median(offset) < 0.02, f"median position error {np.median(offset):.4f} px (S/N > 100)"
    assert np.mean(offset < 0.05) >= 0.95, f"{np.mean(offset < 0.05):.1%} within 0.05 px (S/N > 100)"
    # no direction is preferred: a frame offset would show as a common shift
    assert abs(np.median(c.dx[sharp])) < 0.01 and abs(np.median(c.dy[sharp])) < 0.01


@pytest.fixture(scope="session")
def webbflow_rate(field: Field) -> tuple[xr.Dataset, float]:
    """webbflow's Detector1 rate of the exposure, with exactly the simulation's references."""
    from webbflow.graphs.detector1 import Detector1
    from webbflow.model import split_rate

    probe = Detector1()
    steps = {
        name: {f"override_{r}": str(field.refs.get(r, "N/A")) for r in step.reftypes}
        for name, step in probe.steps.items()
        if step.reftypes
    }
    start = time.perf_counter()
    rate, _ = split_rate(Detector1(steps=steps)(field.exposure[["sci", "groupdq", "pixeldq"]]))
    return rate.compute(), time.perf_counter() - start


@pytest.fixture(scope="session")
def webbflow_closure(
    field: Field, webbflow_rate: tuple[xr.Dataset, float]
) -> tuple[Closure, dict[str, float]]:
    rate, calibrate = webbflow_rate
    start = time.perf_counter()
    closure = _measure(field, rate.sci.values, rate.err.values, rate.dq.values)
    seconds = {"simulate": field.seconds, "detector1": calibrate, "measure": time.perf_counter() - start}
    return closure, seconds


def test_scene_is_the_catalog(field: Field) -> None:
    """The truth the test compares with: every star, where it was put, at its catalog rate."""
    from webbflow.sim.fluxcal import countrate, filter_info

    x, y, flux, mag = _truth(field)
    xstart, ystart = field.sim.geometry.window[:2]
    assert x.size == field.mag.size
    np.testing.assert_allclose(x + xstart - 1, field.intended[0], atol=1e-3)
    np.testing.assert_allclose(y + ystart - 1, field.intended[1], atol=1e-3)
    expected = countrate(np.round(mag, 5), "abmag", filter_info("NIRCAM", "F200W", "CLEAR"))
    np.testing.assert_allclose(flux, expected, rtol=1e-6)


@pytest.mark.slow
def test_closure_webbflow_detector1(webbflow_closure: tuple[Closure, dict[str, float]]) -> None:
    closure, seconds = webbflow_closure
    print("\n" + _report("webbflow Detector1", closure, seconds))
    _check(closure)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="the simulator draws white read noise with sigma = READNOISE per frame, while ramp_fit and "
    "jump (webbflow's and jwst's) take READNOISE as the CDS noise, sigma_frame = READNOISE/sqrt(2)",
)
def test_sky_noise_matches_err(field: Field, webbflow_rate: tuple[xr.Dataset, float]) -> None:
    """Empty sky scatters as the rate ``err`` says (rows' medians removed: 1/f is not in ``err``)."""
    rate = webbflow_rate[0]
    seed = field.exposure.seed.values
    sky = ((rate.dq.values & (dq.DO_NOT_USE | dq.JUMP_DET)) == 0) & (seed < 1.02 * np.median(seed))
    values = np.where(sky, rate.sci.values, np.nan)
    resid = (values - np.nanmedian(values, axis=1, keepdims=True)) / rate.err.values
    spread = robust_std(resid[sky])
    print(f"\nsky pixels: {sky.sum()}, robust std of (rate - row median) / err = {spread:.3f}")
    assert 0.85 < spread < 1.2, f"sky noise is {spread:.3f} x the rate err"


@pytest.mark.oracle
@pytest.mark.slow
def test_closure_jwst_detector1(field: Field) -> None:
    """The same measurement on jwst's Detector1 rate of the same uncal, same references."""
    pytest.importorskip("jwst")
    from astropy.io import fits

    from oracle.jwst_runner import run_jwst_detector1
    from webbflow.engine.execute import compute_products
    from webbflow.io.products import fits_product

    uncal = field.work / field.exposure.attrs["meta"]["filename"]
    if not uncal.exists():
        compute_products([fits_product(field.exposure, uncal, "uncal")], progress=False)
    start = time.perf_counter()
    rate_path, _ = run_jwst_detector1(uncal, field.refs, field.work / "jwst")
    calibrated = time.perf_counter()
    with fits.open(rate_path) as hdul:
        sci, err, rate_dq = (np.asarray(hdul[k].data) for k in ("SCI", "ERR", "DQ"))
    closure = _measure(field, sci, err, rate_dq)
    seconds = {"jwst detector1": calibrated - start, "measure": time.perf_counter() - calibrated}
    print("\n" + _report("jwst Detector1", closure, seconds))
    _check(closure)
