"""tweakreg: tiled source lists, relative and absolute alignment recovering injected pointing errors.

Fast tests use synthetic exposures (Gaussian stars rendered through the true WCS); the slow ones
use the simulator (NIRCam PSFs, noise, Detector1) and check the recovery to 0.02 px.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from astropy.table import Table
from scipy.special import erf

from webbflow import dq as dqflags
from webbflow.engine.step import get_step
from webbflow.errors import InputError
from webbflow.io.wcs_asdf import wcs_tree_bytes
from webbflow.model import pixel_coords, with_meta
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.steps.assign_wcs.step import AssignWcsStep
from webbflow.steps.assign_wcs.wcs import imaging_wcs
from webbflow.steps.tweakreg import TweakRegStep
from webbflow.steps.tweakreg.refcat import read_refcat
from webbflow.steps.tweakreg.sources import FinderSettings, find_sources
from webbflow.testing import raise_if_dask_computes

RA, DEC = 53.1625, -27.7914
COSD = math.cos(math.radians(DEC))
APERTURE = "NRCB1_SUB400P"
PIXEL = 0.0311  # arcsec, NIRCam SW
#: Pointing errors injected into the header (RA*cos(Dec) arcsec, Dec arcsec, roll deg).
ERRORS = [(0.10, -0.05, 0.0), (-0.20, 0.15, 0.0), (0.05, 0.25, 0.03), (0.30, -0.10, 0.0)]
#: Telescope dithers of the exposures (RA*cos(Dec), Dec arcsec).
DITHERS = [(0.0, 0.0), (1.13, 0.77), (-0.91, 1.26), (0.69, -1.18)]
#: Matching for a dense field: sources ~1" apart, pointing errors < 0.5".
DENSE = {"searchrad": 1.0, "separation": 0.3, "tolerance": 0.1}
ABS_DENSE = {"abs_searchrad": 1.0, "abs_separation": 0.3, "abs_tolerance": 0.1}


# -- helpers -------------------------------------------------------------------------------------
def _offset_pointing(meta: dict[str, Any], error: tuple[float, float, float]) -> dict[str, Any]:
    w = meta["wcsinfo"]
    ex, ey, er = error
    return {
        "wcsinfo.ra_ref": w["ra_ref"] + ex / 3600.0 / COSD,
        "wcsinfo.dec_ref": w["dec_ref"] + ey / 3600.0,
        "wcsinfo.roll_ref": w["roll_ref"] + er,
    }


def _star_field(n: int, width: float, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    dx, dy = rng.uniform(-width / 2, width / 2, (2, n))
    return Table(
        {"RA": RA + dx / 3600 / COSD, "DEC": DEC + dy / 3600, "flux": 10 ** rng.uniform(2.5, 4.0, n)}
    )


def _render(wcs: Any, stars: Table, shape: tuple[int, int], sigma: float = 0.9) -> np.ndarray:
    """Pixel-integrated Gaussian stars at the positions ``wcs`` gives them."""
    x, y = wcs.invert(stars["RA"], stars["DEC"], with_bounding_box=False)
    image = np.zeros(shape)
    r = 7
    s = math.sqrt(2) * sigma
    for xi, yi, f in zip(x, y, stars["flux"], strict=True):
        cx, cy = round(xi), round(yi)
        ys, xs = np.arange(cy - r, cy + r + 1), np.arange(cx - r, cx + r + 1)
        gy = 0.5 * (erf((ys + 0.5 - yi) / s) - erf((ys - 0.5 - yi) / s))
        gx = 0.5 * (erf((xs + 0.5 - xi) / s) - erf((xs - 0.5 - xi) / s))
        oky, okx = (ys >= 0) & (ys < shape[0]), (xs >= 0) & (xs < shape[1])
        image[np.ix_(ys[oky], xs[okx])] += f * np.outer(gy[oky], gx[okx])
    return image


def _synthetic(
    stars: Table, k: int, *, chunks: int | tuple[int, int] = 200, noise: float = 1.0
) -> tuple[xr.Dataset, Any]:
    """A cal-like exposure at dither ``k`` with pointing error ``ERRORS[k]``, and its true WCS."""
    dx, dy = DITHERS[k]
    meta: dict[str, Any] = Geometry.from_aperture(
        APERTURE, Pointing(RA + dx / 3600 / COSD, DEC + dy / 3600, 15.0)
    ).meta()
    meta["filename"] = f"jw01234001001_01101_0000{k + 1}_nrcb1_cal.fits"
    ny, nx = meta["subarray"]["ysize"], meta["subarray"]["xsize"]
    true_wcs = imaging_wcs(meta, ny, nx)
    rng = np.random.default_rng(100 + k)
    sci = (_render(true_wcs, stars, (ny, nx)) + rng.normal(0.0, noise, (ny, nx))).astype(np.float32)
    zeros = np.zeros((ny, nx), np.float32)
    ds = xr.Dataset(
        {
            "sci": (("y", "x"), sci),
            "err": (("y", "x"), np.full((ny, nx), noise, np.float32)),
            "dq": (("y", "x"), np.zeros((ny, nx), np.uint32)),
            "var_poisson": (("y", "x"), zeros),
            "var_rnoise": (("y", "x"), zeros + noise**2),
        },
        coords=pixel_coords(meta, ny, nx),
        attrs={"meta": meta},
    )
    cy, cx = (chunks, chunks) if isinstance(chunks, int) else chunks
    ds = with_meta(ds.chunk({"y": cy, "x": cx}), _offset_pointing(meta, ERRORS[k]))
    return AssignWcsStep(sip_approx=False)(ds), true_wcs


def _grid(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0 : ds.sizes["y"] : 20, 0 : ds.sizes["x"] : 20]
    return xx.astype(float), yy.astype(float)


def relative_error(outputs: Sequence[xr.Dataset], truths: Sequence[Any]) -> list[float]:
    """Largest error, px, of where exposure i's pixels land on exposure 0 (corrected vs true WCSs)."""
    errors = []
    for i in range(1, len(outputs)):
        xx, yy = _grid(outputs[i])
        t = truths[0].invert(*truths[i](xx, yy, with_bounding_box=False), with_bounding_box=False)
        w0, wi = outputs[0].attrs["wcs"], outputs[i].attrs["wcs"]
        c = w0.invert(*wi(xx, yy, with_bounding_box=False), with_bounding_box=False)
        errors.append(float(np.max(np.hypot(t[0] - c[0], t[1] - c[1]))))
    return errors


def absolute_error(outputs: Sequence[xr.Dataset], truths: Sequence[Any]) -> tuple[list[float], list[float]]:
    """Per exposure: error, px, of the corrected WCS at the pointing reference point and worst on the array.

    The corrected WCS's sky position of a pixel, put back through the true WCS, lands this far away.
    """
    at_ref, worst = [], []
    for out, truth in zip(outputs, truths, strict=True):
        xx, yy = _grid(out)
        w = out.attrs["meta"]["wcsinfo"]
        x_ref, y_ref = truth.invert(w["ra_ref"], w["dec_ref"], with_bounding_box=False)
        xs, ys = np.append(xx.ravel(), x_ref), np.append(yy.ravel(), y_ref)
        back = truth.invert(*out.attrs["wcs"](xs, ys, with_bounding_box=False), with_bounding_box=False)
        px = np.hypot(back[0] - xs, back[1] - ys)
        at_ref.append(float(px[-1]))
        worst.append(float(px.max()))
    return at_ref, worst


def recovered_offsets(
    outputs: Sequence[xr.Dataset], inputs: Sequence[xr.Dataset]
) -> list[tuple[float, float]]:
    """Sky motion (RA*cos(Dec), Dec arcsec) tweakreg applied at each exposure's pointing reference pixel.

    The injected error moved that pixel's sky position by ``ERRORS[k][:2]``: an absolute fit should
    move it back by minus that, a relative one by minus the difference from the reference exposure.
    """
    moves = []
    for out, inp in zip(outputs, inputs, strict=True):
        w = inp.attrs["meta"]["wcsinfo"]
        x, y = inp.attrs["wcs"].invert(w["ra_ref"], w["dec_ref"], with_bounding_box=False)
        a = SkyCoord(*inp.attrs["wcs"](x, y, with_bounding_box=False), unit="deg")
        b = SkyCoord(*out.attrs["wcs"](x, y, with_bounding_box=False), unit="deg")
        dra, ddec = a.spherical_offsets_to(b)
        moves.append((float(dra.arcsec), float(ddec.arcsec)))
    return moves


def offset_errors(moves: Sequence[tuple[float, float]], *, relative: bool) -> list[float]:
    """|recovered - expected| motion of each reference pixel, px (see :func:`recovered_offsets`)."""
    e0 = np.array(ERRORS[0][:2]) if relative else np.zeros(2)
    m0 = np.array(moves[0]) if relative else np.zeros(2)
    return [
        float(np.hypot(*((np.array(m) - m0) + (np.array(e[:2]) - e0))) / PIXEL)
        for m, e in zip(moves, ERRORS, strict=False)
    ]


# -- source finding ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stars() -> Table:
    return _star_field(150, 16.0, seed=5)


@pytest.fixture(scope="module")
def synthetic(stars: Table) -> tuple[list[xr.Dataset], list[Any]]:
    pairs = [_synthetic(stars, k) for k in range(4)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def test_sources_found_at_true_positions_on_any_tiling(stars: Table) -> None:
    ds, truth = _synthetic(stars, 0, chunks=400)
    settings = FinderSettings(refine_centroids=True)
    [whole] = find_sources([ds], settings)
    x, y = truth.invert(stars["RA"], stars["DEC"], with_bounding_box=False)
    inside = (x > 3) & (x < 396) & (y > 3) & (y < 396)
    assert len(whole) >= 0.9 * inside.sum()
    d = np.hypot(whole["x"][:, None] - x[None], whole["y"][:, None] - y[None])
    assert np.median(d.min(axis=1)) < 0.02  # Gaussian stars: the fit centroids are unbiased
    for chunks in ((97, 113), (400, 50)):
        [tiled] = find_sources([ds.chunk({"y": chunks[0], "x": chunks[1]})], settings)
        # every star once (no duplicates from halos), at the same place to a small fraction of a px
        assert len(tiled) == len(whole)
        dd = np.hypot(tiled["x"][:, None] - whole["x"][None], tiled["y"][:, None] - whole["y"][None])
        assert np.all(dd.min(axis=1) < 0.01) and np.all(dd.min(axis=0) < 0.01)


def test_masked_pixels_hide_a_star(stars: Table) -> None:
    ds, _ = _synthetic(stars, 0)
    [found] = find_sources([ds], FinderSettings())
    xs, ys = float(found["x"][0]), float(found["y"][0])  # the brightest star
    yi, xi = round(ys), round(xs)
    dq = ds.dq.values.copy()
    dq[yi - 3 : yi + 4, xi - 3 : xi + 4] = dqflags.DO_NOT_USE
    [masked] = find_sources([ds.assign(dq=(("y", "x"), dq)).chunk({"y": 200, "x": 200})], FinderSettings())
    assert np.min(np.hypot(masked["x"] - xs, masked["y"] - ys)) > 3.0
    assert len(masked) >= len(found) - 1


def test_brightest_keeps_the_brightest(stars: Table) -> None:
    ds, _ = _synthetic(stars, 0, chunks=(97, 113))
    [all_] = find_sources([ds], FinderSettings(brightest=None))
    [top] = find_sources([ds], FinderSettings(brightest=10))
    assert len(top) == 10
    np.testing.assert_allclose(np.sort(top["flux"]), np.sort(all_["flux"])[-10:])


# -- alignment -----------------------------------------------------------------------------------
def test_relative_alignment_recovers_injected_offsets(synthetic: Any) -> None:
    inputs, truths = synthetic
    step = TweakRegStep(refine_centroids=True, **DENSE)
    before = relative_error(inputs, truths)
    with raise_if_dask_computes(max_computes=1):  # the source lists; pixels stay lazy
        outputs = step(inputs)
    after = relative_error(outputs, truths)
    assert min(before) > 2.0  # the injected errors are pixels, the recovered ones hundredths
    assert max(after) < 0.01, after
    for inp, out in zip(inputs, outputs, strict=True):
        assert out.attrs["meta"]["cal_step"]["tweakreg"] == "COMPLETE"
        assert "tweakreg" not in inp.attrs["meta"]  # inputs untouched
        assert "v2v3corr" not in inp.attrs["wcs"].available_frames
        assert out.sci.chunks == inp.sci.chunks
    fitted = [o for o in outputs if o.attrs["meta"]["tweakreg"]["relative"]["status"] == "SUCCESS"]
    assert len(fitted) == 3
    for out in fitted:
        rec = out.attrs["meta"]["tweakreg"]["relative"]
        assert "v2v3corr" in out.attrs["wcs"].available_frames
        assert rec["nmatches"] >= 40 and rec["rms_pix"] < 0.05
        assert math.hypot(*rec["shift_pix"]) == pytest.approx(
            math.hypot(*rec["shift_arcsec"]) / PIXEL, rel=0.02
        )
        assert out.attrs["wcs_sip"] and out.attrs["meta"]["wcsinfo"]["s_region"].startswith("POLYGON")
        assert len(wcs_tree_bytes(out.attrs["wcs"])) > 1000  # the corrected gwcs serialises to ASDF


def test_absolute_alignment_to_a_catalog_file(synthetic: Any, stars: Table, tmp_path: Path) -> None:
    inputs, truths = synthetic
    path = tmp_path / "refcat.ecsv"
    stars["RA", "DEC"].write(path)
    outputs = TweakRegStep(refine_centroids=True, abs_refcat=str(path), **DENSE, **ABS_DENSE)(inputs)
    at_ref, worst = absolute_error(outputs, truths)
    assert max(worst) < 0.01 and max(at_ref) < 0.01, worst
    for out in outputs:
        assert out.attrs["meta"]["tweakreg"]["absolute"]["status"] == "SUCCESS"
        assert out.attrs["wcs"].name == "FIT-LVL3-refcat.ecsv"


def test_skipped_with_one_exposure(synthetic: Any, caplog: pytest.LogCaptureFixture) -> None:
    inputs, _ = synthetic
    with caplog.at_level(logging.INFO, logger="webbflow"):
        [out] = TweakRegStep()(inputs[:1])
    assert out.attrs["meta"]["cal_step"]["tweakreg"] == "SKIPPED"
    assert out.attrs["wcs"] is inputs[0].attrs["wcs"]
    assert "at least two exposures" in caplog.text


def test_skipped_when_too_few_matches(synthetic: Any, caplog: pytest.LogCaptureFixture) -> None:
    inputs, _ = synthetic
    with caplog.at_level(logging.INFO, logger="webbflow"):
        outputs = TweakRegStep(minobj=500, **DENSE)(inputs[:2])
    assert [o.attrs["meta"]["cal_step"]["tweakreg"] for o in outputs] == ["SKIPPED"] * 2
    assert "skipped" in caplog.text


def test_save_catalogs(synthetic: Any, tmp_path: Path) -> None:
    inputs, _ = synthetic
    outputs = TweakRegStep(save_catalogs=True, catalog_dir=str(tmp_path), **DENSE)(inputs[:2])
    path = Path(outputs[0].attrs["meta"]["tweakreg_catalog"])
    assert path == tmp_path / "jw01234001001_01101_00001_nrcb1_cal_cat.ecsv"
    table = Table.read(path)
    assert {"id", "x", "y", "flux"} <= set(table.colnames) and len(table) > 50


def test_bad_parameters_and_inputs(synthetic: Any) -> None:
    inputs, _ = synthetic
    with pytest.raises(InputError, match="separation"):
        TweakRegStep(separation=0.5, tolerance=0.5)(inputs[:2])
    with pytest.raises(InputError, match="offline"):
        TweakRegStep(abs_refcat="GAIADR3")(inputs[:2])
    no_wcs = inputs[0].copy()
    no_wcs.attrs = {k: v for k, v in inputs[0].attrs.items() if k != "wcs"}
    with pytest.raises(InputError, match="assign_wcs"):
        TweakRegStep()([no_wcs, inputs[1]])
    assert get_step("tweakreg") is TweakRegStep


def test_read_refcat_formats(tmp_path: Path) -> None:
    ra, dec = np.array([53.1, 53.2]), np.array([-27.7, -27.8])
    Table({"ra": ra, "dec": dec}).write(tmp_path / "a.csv")
    Table({"RA": ra, "Dec": dec}).write(tmp_path / "a.fits")
    Table({"sky_centroid": SkyCoord(ra, dec, unit="deg")}).write(tmp_path / "b.ecsv")
    for name in ("a.csv", "a.fits", "b.ecsv"):
        table = read_refcat(tmp_path / name)
        np.testing.assert_allclose(table["RA"], ra)
        np.testing.assert_allclose(table["DEC"], dec)
    Table({"x": ra}).write(tmp_path / "bad.ecsv")
    with pytest.raises(InputError, match="no RA/DEC"):
        read_refcat(tmp_path / "bad.ecsv")
    with pytest.raises(InputError, match="not a file"):
        read_refcat(tmp_path / "missing.ecsv")
    with pytest.raises(InputError, match="only catalog files"):
        read_refcat("gaiadr3")


# -- simulated NIRCam exposures --------------------------------------------------------------------
@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[xr.Dataset], list[Any], Path]:
    """Four dithered NRCB1 SUB400P F200W exposures (~130 stars of 18-23 AB each), rate level,
    with the header pointing off by ``ERRORS``; their true WCSs; the input star catalog (ECSV)."""
    from webbflow.graphs.detector1 import Detector1
    from webbflow.graphs.simulate import build_simulation
    from webbflow.model import split_rate
    from webbflow.sim.config import config_from_dict
    from webbflow.sim.field import write_field

    where = tmp_path_factory.mktemp("tweakreg_field")
    field = write_field(
        where, ra=RA, dec=DEC, width_arcsec=15, n_stars=200, n_galaxies=0, bright=18, faint=23
    )
    inputs, truths = [], []
    for k, (dx, dy) in enumerate(DITHERS):
        cfg = config_from_dict(
            {
                "instrument": "NIRCAM",
                "aperture": APERTURE,
                "filter": "F200W",
                "readout": {"readpatt": "RAPID", "ngroups": 5},
                "pointing": {"ra": RA + dx / 3600 / COSD, "dec": DEC + dy / 3600, "v3pa": 15.0},
                "catalogs": {"point": [str(field.point)]},
                "background": {"level": "low"},
                "cosmic_rays": {"environment": "SUNMIN"},
                "observation": {"exposure": k + 1},
                "seed": 1,
            }
        )
        rate, _ = split_rate(Detector1()(build_simulation(cfg).exposure))
        rate = rate[["sci", "err", "dq"]].persist()  # the simulation runs once for every test
        truths.append(AssignWcsStep(sip_approx=False)(rate).attrs["wcs"])
        header = with_meta(rate, _offset_pointing(rate.attrs["meta"], ERRORS[k]))
        inputs.append(AssignWcsStep(sip_approx=False)(header))
    catalog = read_refcat(field.point)
    catalog.write(where / "truth.ecsv")
    return inputs, truths, where / "truth.ecsv"


def _report(label: str, moves: Sequence[tuple[float, float]], errors: Sequence[float]) -> None:
    for k, (m, e, err) in enumerate(zip(moves, ERRORS, errors, strict=True)):
        print(f"{label} exp{k}: injected ({e[0]:+.3f}, {e[1]:+.3f})\" roll {e[2]:+.3f} deg; "
              f"tweakreg moved ({m[0]:+.4f}, {m[1]:+.4f})\"; error {err:.4f} px")  # fmt: skip


@pytest.mark.slow
def test_simulated_relative_alignment(simulated: Any) -> None:
    inputs, truths, _ = simulated
    outputs = TweakRegStep(refine_centroids=True, **DENSE)(inputs)
    assert outputs[0].attrs["meta"]["tweakreg"]["relative"]["status"] == "REFERENCE"
    errors = offset_errors(recovered_offsets(outputs, inputs), relative=True)
    _report("relative", recovered_offsets(outputs, inputs), errors)
    worst = relative_error(outputs, truths)
    print("relative: worst error over the array, px:", np.round(worst, 4))
    # the injected offsets (at the reference pixel) to 0.02 px; over the array the fitted rotation's
    # uncertainty (~60 matched stars on a 12" field) adds up to ~0.01 px at the corners
    assert max(errors) < 0.02 and max(worst) < 0.03
    rec = outputs[2].attrs["meta"]["tweakreg"]["relative"]
    assert rec["rotation_deg"] == pytest.approx(-(ERRORS[2][2] - ERRORS[0][2]), abs=0.005)
    # jwst's own centroids (IRAFStarFinder moments) carry a pixel-phase bias: still < 0.1 px, but worse
    plain = relative_error(TweakRegStep(refine_centroids=False, **DENSE)(inputs), truths)
    print("relative, finder centroids: worst error over the array, px:", np.round(plain, 4))
    assert max(worst) < max(plain) < 0.1


@pytest.mark.slow
def test_simulated_absolute_alignment(simulated: Any) -> None:
    inputs, truths, refcat = simulated
    outputs = TweakRegStep(refine_centroids=True, abs_refcat=str(refcat), **DENSE, **ABS_DENSE)(inputs)
    moves = recovered_offsets(outputs, inputs)
    errors = offset_errors(moves, relative=False)
    _report("absolute", moves, errors)
    at_ref, worst = absolute_error(outputs, truths)
    print("absolute: error at the reference pixel, px:", np.round(at_ref, 4), "worst:", np.round(worst, 4))
    assert max(errors) < 0.02 and max(at_ref) < 0.02 and max(worst) < 0.03
