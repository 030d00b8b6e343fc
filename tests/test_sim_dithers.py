"""Pointing errors and simulated exposure sets (``webbflow.sim.dithers``): the truth is where it says."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from webbflow.errors import InputError, UsageError
from webbflow.graphs.runner import RunOptions, run_detector1, run_simulate
from webbflow.graphs.simulate import simulate
from webbflow.io.fits_reader import open_product
from webbflow.io.reffiles.resolver import ReferenceResolver
from webbflow.sim.config import SimConfig, config_from_dict
from webbflow.sim.dithers import simulate_set
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.steps.assign_wcs.step import AssignWcsStep

RA, DEC, V3PA = 53.1625, -27.7914, 20.0
APERTURE = "NRCA1_SUB160"
#: Effects whose per-pixel structure Detector1 leaves in a rate image (or that add noise).
QUIET = {
    "poisson": False,
    "cosmic_rays": False,
    "read_noise": False,
    "correlated_noise": False,
    "flat": False,
    "background": False,
}
#: Window of the core centroid, pixels: lambda / 2D at F200W over the SW pixel scale.
SIGMA = 1.0


@pytest.fixture(scope="module")
def stars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three bright stars at known sub-pixel positions of the commanded SUB160 window."""
    geo = Geometry.from_aperture(APERTURE, Pointing(RA, DEC, V3PA))
    x0, y0 = geo.window[0] - 1, geo.window[1] - 1
    ra, dec = geo.pixel_to_sky(x0 + np.array([40.3, 115.6, 70.2]), y0 + np.array([45.7, 60.1, 118.4]))
    mags = [19.0, 19.5, 20.0]
    table = Table({"index": [1, 2, 3], "x_or_RA": ra, "y_or_Dec": dec, "nircam_f200w_clear_magnitude": mags})
    table.meta["comments"] = ["abmag"]
    path = tmp_path_factory.mktemp("stars") / "stars.cat"
    table.write(path, format="ascii.basic", comment="# ")
    return path


def _config(catalog: Path, out: Path, exposure: int = 1, **pointing: Any) -> SimConfig:
    return config_from_dict(
        {
            "instrument": "NIRCAM",
            "aperture": APERTURE,
            "filter": "F200W",
            "readout": {"readpatt": "RAPID", "ngroups": 3},
            "pointing": {"ra": RA, "dec": DEC, "v3pa": V3PA, **pointing},
            "catalogs": {"point": [catalog]},
            "effects": QUIET,
            "observation": {"exposure": exposure},
            "output": {"directory": out, "products": ["uncal"]},
        }
    )


def _windowed_centroid(image: np.ndarray, x: float, y: float, half: int = 6) -> tuple[float, float]:
    """Gaussian-windowed centroid (SExtractor XWIN) near ``(x, y)``, array pixels."""
    ix, iy = round(x), round(y)
    cut = image[iy - half : iy + half + 1, ix - half : ix + half + 1]
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    cx, cy = x - ix, y - iy
    for _ in range(50):
        w = cut * np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / SIGMA**2)
        dx, dy = 2 * ((w * xx).sum() / w.sum() - cx), 2 * ((w * yy).sum() / w.sum() - cy)
        cx, cy = cx + dx, cy + dy
        if max(abs(dx), abs(dy)) < 1e-7:
            break
    return ix + cx, iy + cy


def _moved(wcs: Any, wcsinfo: dict[str, Any], ra: float, dec: float, error: dict[str, float]) -> tuple:
    """Array pixel where a star lands when the sky moves by ``error`` in the aperture's ideal frame.

    Header-only: the header gwcs (sky -> V2/V3 -> pixel) and the SIAF ideal frame of the
    header's V2Ref, V3Ref, V3IdlYAngle and VIdlParity.
    """
    t, parity = math.radians(wcsinfo["v3yangle"]), wcsinfo["vparity"]
    v2, v3 = wcs.transform("world", "v2v3", ra, dec)
    d2, d3 = v2 - wcsinfo["v2_ref"], v3 - wcsinfo["v3_ref"]
    xi, yi = parity * (d2 * math.cos(t) - d3 * math.sin(t)), d2 * math.sin(t) + d3 * math.cos(t)
    r = math.radians(error["droll"])
    xi, yi = (
        xi * math.cos(r) - yi * math.sin(r) + error["dx"],
        xi * math.sin(r) + yi * math.cos(r) + error["dy"],
    )
    v2 = wcsinfo["v2_ref"] + parity * xi * math.cos(t) + yi * math.sin(t)
    v3 = wcsinfo["v3_ref"] - parity * xi * math.sin(t) + yi * math.cos(t)
    return wcs.transform("v2v3", "detector", v2, v3)


def test_pointing_error_moves_stars_not_headers(stars: Path, tmp_path: Path) -> None:
    error = {"dx": 0.23, "dy": -0.17, "droll": 0.2}
    configs = [_config(stars, tmp_path, 1), _config(stars, tmp_path, 2, error=error)]
    options = RunOptions(output_dir=tmp_path, progress=False)
    run_simulate(configs, options)
    written = run_detector1([tmp_path / c.uncal_name for c in configs], {}, options)
    rates = [p for p in written if p.name.endswith("_rate.fits")]
    catalog = Table.read(stars, format="ascii.basic")
    shifts = []
    for path, err in zip(rates, ({"dx": 0.0, "dy": 0.0, "droll": 0.0}, error), strict=True):
        ds = open_product(path)
        resolver = ReferenceResolver.default()
        ref = resolver.resolve("gain", ds, None)
        assert ref is not None
        gain = resolver.open(ref, ds)["sci"].values
        electrons = np.nan_to_num(ds.sci.values * gain)  # the gain map's 3 % pixel structure removed
        wcs = AssignWcsStep()(ds).attrs["wcs"]
        wcsinfo = ds.attrs["meta"]["wcsinfo"]
        for star in catalog:
            x, y = _moved(wcs, wcsinfo, star["x_or_RA"], star["y_or_Dec"], err)
            cx, cy = _windowed_centroid(electrons, x, y)
            assert abs(cx - x) < 0.02 and abs(cy - y) < 0.02, (path.name, star["index"], cx - x, cy - y)
            shifts.append(np.subtract((x, y), wcs.invert(star["x_or_RA"], star["y_or_Dec"])))
    # the headers do not see the error; the stars moved by ~(7.4, -5.4) px, turned by 0.2 deg
    headers = [fits.getheader(p, "SCI") for p in rates]
    for key in ("RA_REF", "DEC_REF", "ROLL_REF", "PA_V3", "CRVAL1", "CRVAL2", "PC1_1", "PC1_2", "CRPIX1"):
        assert headers[0][key] == headers[1][key]
    moved = np.array(shifts[3:])
    assert np.allclose(moved.mean(axis=0), (0.23 / 0.0312, -0.17 / 0.0313), atol=0.2)
    assert np.ptp(moved[:, 0]) > 0.15  # the roll: stars far from the reference point move more
    assert fits.getheader(tmp_path / configs[1].uncal_name)["PNTERRDX"] == 0.23


def test_zero_error_is_the_default(stars: Path, tmp_path: Path) -> None:
    plain = simulate(_config(stars, tmp_path))
    zero = simulate(_config(stars, tmp_path, error={"dx": 0, "dy": 0.0, "droll": 0}))
    off = simulate(_config(stars, tmp_path, error={"dx": 0.1, "dy": 0.0, "droll": 0}))
    assert plain.attrs == zero.attrs
    for name in ("sci", "seed", "segmap"):
        np.testing.assert_array_equal(plain[name].values, zero[name].values)
    assert off.attrs["meta"] == plain.attrs["meta"]  # an error is not in the headers...
    assert not np.array_equal(off.seed.values, plain.seed.values)  # ...only in the scene


@pytest.mark.parametrize(
    ("error", "message"),
    [({"dx": float("nan")}, "pointing.error.dx"), ({"droll": 5}, "pointing.error.droll"), ({"dz": 1}, "dz")],
)
def test_bad_pointing_error(stars: Path, tmp_path: Path, error: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _config(stars, tmp_path, error=error)


def test_dither_set(tmp_path: Path) -> None:
    errors = [(0.0, 0.0, 0.0), (0.1, -0.05, 0.0), (-0.2, 0.0, 0.01)]
    kw: dict[str, Any] = {"aperture": APERTURE, "ngroups": 3, "stars": 15, "galaxies": 3, "dither": 1.5}
    result = simulate_set(tmp_path, 3, errors=errors, reuse=True, **kw)
    names = [p.name for p in result.rate]
    assert len(set(names)) == 3 and all(p.is_file() for p in result.rate)
    assert [n.split("_")[2] for n in names] == ["00001", "00002", "00003"]
    assert set(result.truth["kind"]) == {"star", "galaxy"} and len(result.truth) > 18
    for exp, (dx, dy, _) in zip(result.exposures, errors, strict=True):
        assert fits.getheader(exp.uncal).get("PNTERRDX", 0.0) == dx
        assert exp.error_pixels[0] == pytest.approx(dx / 0.0311, abs=0.05)
        assert exp.error_pixels[1] == pytest.approx(dy / 0.0313, abs=0.05)
    # the pattern: exposure 2 is 1.5" along ideal X (+ 0.35 x 1.5" along Y) from exposure 1
    first = Geometry.from_aperture(APERTURE, Pointing(result.exposures[0].ra, result.exposures[0].dec, 0.0))
    second = result.exposures[1]
    x, y = first.sky_to_pixel(second.ra, second.dec)
    expected = (1.5 / 0.0311, 0.35 * 1.5 / 0.0313)
    assert np.subtract((x, y), first.reference_pixel) == pytest.approx(expected, abs=0.3)
    manifest = json.loads((tmp_path / "set.json").read_text())
    assert manifest["exposures"][2]["error"] == [-0.2, 0.0, 0.01]
    stamp = [p.stat().st_mtime_ns for p in result.rate]
    again = simulate_set(tmp_path, 3, errors=errors, reuse=True, **kw)  # cached: nothing rerun
    assert [p.stat().st_mtime_ns for p in again.rate] == stamp


def test_mosaic_set_tiles_the_sky(tmp_path: Path) -> None:
    result = simulate_set(
        tmp_path, 4, layout="mosaic", aperture=APERTURE, ngroups=2, overlap=0.1, calibrate=False,
        pointing_error_rms=0.0, stars=20, galaxies=0,
    )  # fmt: skip
    assert result.rate == [] and len(result.uncal) == 4
    geos = [Geometry.from_aperture(APERTURE, Pointing(e.ra, e.dec, 0.0)) for e in result.exposures]
    # a 2 x 2 grid stepping 0.9 x 160 px: neighbours' reference points 144 px apart along x, y
    for k, step in ((1, (144.0, 0.0)), (2, (0.0, 144.0)), (3, (144.0, 144.0))):
        x, y = geos[0].sky_to_pixel(result.exposures[k].ra, result.exposures[k].dec)
        assert np.subtract((x, y), geos[0].reference_pixel) == pytest.approx(step, abs=0.5)
    for geo in geos:  # the one field covers every tile
        x, y = geo.sky_to_pixel(result.truth["ra"], result.truth["dec"])
        x0, y0, nx, ny = geo.window
        inside = (x >= x0 - 1) & (x < x0 - 1 + nx) & (y >= y0 - 1) & (y < y0 - 1 + ny)
        assert inside.sum() >= 5
    assert all(e.error == (0.0, 0.0, 0.0) and e.error_pixels == (0.0, 0.0) for e in result.exposures)


def test_bad_set_arguments(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="layout"):
        simulate_set(tmp_path, 2, layout="spiral")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="errors"):
        simulate_set(tmp_path, 2, errors=[(0.0, 0.0, 0.0)])
