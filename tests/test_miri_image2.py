"""MIRI imaging Image2: default references, SIAF WCS, flat + photom, background self-calibration.

The MIRI rates here are small synthetic ones (SUB256 at its true SUBSTRT, or FULL) with the
pointing keywords of :class:`webbflow.sim.geometry.Geometry`; the references are the
embedded MIRI defaults (:mod:`webbflow.io.reffiles.miri_imaging`) written to ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from webbflow import dq
from webbflow.detectors import MIRIMAGE
from webbflow.engine.execute import compute_products
from webbflow.io.products import fits_product
from webbflow.io.reffiles import miri_imaging
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.steps.assign_wcs.step import AssignWcsStep
from webbflow.steps.background.step import BackgroundStep
from webbflow.steps.flat_field.step import FlatFieldStep
from webbflow.steps.photom.step import PhotomStep
from webbflow.testing import DEFAULT_META, _merge

POINTING = Pointing(80.49, -69.52, 230.0)


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The MIRI default references (+ a zero FILTEROFFSET for jwst), written once."""
    folder = tmp_path_factory.mktemp("miri_refs")
    out = {}
    for reftype, writer in miri_imaging.WRITERS.items():
        path = folder / f"webbflow_mirimage_{reftype}.{'asdf' if reftype == 'distortion' else 'fits'}"
        writer(MIRIMAGE, path, None)
        out[reftype] = str(path)
    out["filteroffset"] = str(folder / "webbflow_mirimage_filteroffset.asdf")
    offsets = {"F770W": (0.75, -0.4)}
    miri_imaging.write_filteroffset(MIRIMAGE, Path(out["filteroffset"]), offsets=offsets)
    return out


def miri_rate(
    aperture: str = "MIRIM_SUB256",
    pointing: Pointing = POINTING,
    sky: np.ndarray | float = 20.0,
    stars: list[tuple[float, float, float]] = (),  # type: ignore[assignment]
    seed: int = 1,
    noise: float = 0.05,
) -> xr.Dataset:
    """A lazy MIRI F770W rate (DN/s): ``sky`` + Gaussian ``stars`` (x, y, total DN/s) + noise."""
    geom = Geometry.from_aperture(aperture, pointing)
    xstart, ystart, nx, ny = geom.window
    meta = _merge(DEFAULT_META, geom.meta())
    meta["instrument"] = {"name": "MIRI", "detector": "MIRIMAGE", "filter": "F770W"}
    meta["exposure"].update(type="MIR_IMAGE", readpatt="FASTR1", exposure_time=100.0, frame_time=2.775)
    meta["subarray"].update(fastaxis=1, slowaxis=2)
    meta["observation"].update(program_number="09999", observation_number="001", visit_number="001")
    meta["filename"] = f"jw09999001001_01101_0000{seed}_mirimage_rate.fits"
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    sci = np.broadcast_to(np.asarray(sky, float), (ny, nx)).copy()
    for x, y, flux in stars:
        sci += flux / (2 * np.pi * 1.5**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    sci += rng.normal(0.0, noise, (ny, nx))
    var = np.full((ny, nx), noise**2, np.float32)
    data = {
        "sci": (("y", "x"), sci.astype(np.float32)),
        "err": (("y", "x"), np.sqrt(2 * var)),
        "dq": (("y", "x"), np.zeros((ny, nx), np.uint32)),
        "var_poisson": (("y", "x"), var),
        "var_rnoise": (("y", "x"), var.copy()),
    }
    coords = {"y": np.arange(ystart - 1, ystart - 1 + ny), "x": np.arange(xstart - 1, xstart - 1 + nx)}
    return xr.Dataset(data, coords=coords, attrs={"meta": meta}).chunk({"y": 128, "x": 128})


def calibrate(ds: xr.Dataset, refs: dict[str, str]) -> xr.Dataset:
    overrides = {"override_distortion": refs["distortion"], "override_filteroffset": refs["filteroffset"]}
    wcs = AssignWcsStep(**overrides)(ds)
    flat = FlatFieldStep(override_flat=refs["flat"])(wcs)
    return PhotomStep(override_photom=refs["photom"], override_area=refs["area"])(flat)


def test_references_open_as_their_jwst_models(refs: dict[str, str]) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    for reftype, model_name in {**miri_imaging.DATAMODELS, "filteroffset": "FilteroffsetModel"}.items():
        with getattr(datamodels, model_name)(refs[reftype]) as model:
            model.validate()
            assert model.meta.instrument.name == "MIRI"
    with datamodels.FlatModel(refs["flat"]) as flat:
        refcols = np.zeros(flat.dq.shape, bool)
        refcols[:, :4] = refcols[:, -4:] = True
        assert np.all(flat.dq[refcols] & dq.REFERENCE_PIXEL) and np.all(flat.dq[refcols] & dq.DO_NOT_USE)
        good = (flat.dq & dq.DO_NOT_USE) == 0
        assert np.mean(flat.data[good]) == pytest.approx(1.0, abs=2e-3)
    with datamodels.MirImgPhotomModel(refs["photom"]) as ph:
        rows = {(r["filter"], r["subarray"]) for r in ph.phot_table}
        assert ("F770W", "FULL") in rows and ("F2100W", "SUB256") in rows
        # PIXAR_SR: a 0.1108" pixel (SIAF MIRIM_FULL at its reference point)
        assert np.sqrt(ph.meta.photometry.pixelarea_steradians) * 206264.806 == pytest.approx(
            0.1108, abs=5e-4
        )


@pytest.mark.parametrize("aperture", ["MIRIM_FULL", "MIRIM_SUB256"])
def test_wcs_matches_pysiaf(refs: dict[str, str], aperture: str) -> None:
    """Our assign_wcs (distortion reference) vs pysiaf's MIRIM_FULL sci→sky at the same attitude."""
    pysiaf = pytest.importorskip("pysiaf")
    ds = AssignWcsStep(override_distortion=refs["distortion"])(miri_rate(aperture))
    w = ds.attrs["wcs"]
    info = ds.attrs["meta"]["wcsinfo"]
    full = pysiaf.Siaf("MIRI")["MIRIM_FULL"]
    att = pysiaf.utils.rotations.attitude(
        info["v2_ref"], info["v3_ref"], info["ra_ref"], info["dec_ref"], info["roll_ref"]
    )
    full.set_attitude_matrix(att)
    x0, y0 = int(ds.x[0]), int(ds.y[0])
    x = np.array([4.0, 100.0, 200.3, 250.0, 10.7, 255.0])
    y = np.array([0.0, 30.0, 128.5, 255.0, 200.0, 3.0])
    ra, dec = w(x, y)
    # window pixel (0-based) -> full-frame science pixel (1-based): + start
    ra_s, dec_s = full.sci_to_sky(x + x0 + 1.0, y + y0 + 1.0)
    sep_mas = np.hypot((ra - ra_s) * np.cos(np.radians(dec)), dec - dec_s) * 3.6e6
    assert np.max(sep_mas) < 1.0
    # reference columns are outside the WCS's bounding box (they see no sky)
    (xlo, xhi), _ = w.bounding_box
    assert xlo == pytest.approx(max(-0.5, 3.5 - x0)) and xhi == pytest.approx(
        min(ds.sizes["x"], 1028 - x0) - 0.5
    )


def test_filter_offset_shifts_the_detector_pixels(refs: dict[str, str]) -> None:
    """FILTEROFFSET (F770W: +0.75, -0.4 px) is added to the pixels before the distortion, as jwst."""
    ds = miri_rate("MIRIM_SUB256")
    overrides = {"override_distortion": refs["distortion"], "override_filteroffset": refs["filteroffset"]}
    plain = AssignWcsStep(override_distortion=refs["distortion"])(ds)
    shifted = AssignWcsStep(**overrides)(ds)
    assert shifted.attrs["meta"]["ref_file"]["filteroffset"]["name"].endswith("filteroffset.asdf")
    x, y = np.array([10.0, 128.0, 250.0]), np.array([20.0, 128.0, 240.0])
    ra, dec = shifted.attrs["wcs"](x, y)
    ra0, dec0 = plain.attrs["wcs"](x + 0.75, y - 0.4)
    assert np.max(np.hypot((ra - ra0) * np.cos(np.radians(dec)), dec - dec0)) * 3.6e6 < 0.01
    # a filter without an offset keeps the plain WCS
    meta = {**ds.attrs["meta"], "instrument": {**ds.attrs["meta"]["instrument"], "filter": "F1000W"}}
    other = AssignWcsStep(**overrides)(ds.assign_attrs(meta=meta))
    np.testing.assert_allclose(other.attrs["wcs"](x, y), plain.attrs["wcs"](x, y), rtol=0, atol=1e-12)


def test_photom_converts_dn_per_s_to_mjy_per_sr(refs: dict[str, str]) -> None:
    ds = miri_rate("MIRIM_SUB256", sky=3.0, noise=0.0)
    cal = calibrate(ds, refs)
    with fits.open(refs["photom"]) as hdul:
        table = hdul["PHOTOM"].data
        row = (np.char.strip(table["filter"]) == "F770W") & (np.char.strip(table["subarray"]) == "SUB256")
        photmjsr = float(table["photmjsr"][row][0])
    with fits.open(refs["flat"]) as hdul:
        y0, x0 = int(ds.y[0]), int(ds.x[0])
        flat = hdul["SCI"].data[y0 : y0 + 256, x0 : x0 + 256]
    out = cal.compute()
    assert out.attrs["meta"]["photometry"]["conversion_megajanskys"] == pytest.approx(photmjsr)
    assert out.attrs["meta"]["bunit_data"] == "MJy/sr"
    good = (out.dq.values & dq.DO_NOT_USE) == 0
    expected = np.float32(3.0) / flat * np.float32(photmjsr)
    np.testing.assert_allclose(out.sci.values[good], expected[good], rtol=1e-6)


def test_reference_columns_are_do_not_use_in_cal(refs: dict[str, str]) -> None:
    cal = calibrate(miri_rate("MIRIM_SUB64", sky=3.0), refs).compute()  # SUB64 starts at x = 1
    assert int(cal.x[0]) == 0
    assert np.all(cal.dq.values[:, :4] & dq.DO_NOT_USE) and np.all(cal.dq.values[:, :4] & dq.REFERENCE_PIXEL)
    assert not np.any(cal.dq.values[:, 4:] & dq.REFERENCE_PIXEL)


def test_self_calibration_removes_constant_and_gradient_sky(tmp_path: Path) -> None:
    """4 dithered exposures: sky = constant + gradient (same on the detector), stars move."""
    yy, xx = np.mgrid[0:256, 0:256].astype(float)
    sky = 40.0 + 0.03 * xx - 0.02 * yy + 5e-5 * (xx - 128) ** 2
    stars = [(60.0, 70.0, 400.0), (180.0, 150.0, 800.0), (120.0, 210.0, 300.0)]
    paths = []
    for i, (dx, dy) in enumerate([(0, 0), (17, 9), (-11, 21), (23, -14)]):
        ds = miri_rate(sky=sky, stars=[(x + dx, y + dy, f) for x, y, f in stars], seed=i + 1)
        path = tmp_path / f"exp{i}_rate.fits"
        compute_products([fits_product(ds, path, "rate")], progress=False)
        paths.append((path, ds))
    _, ds0 = paths[0]
    others = tuple(str(p) for p, _ in paths[1:])
    out = BackgroundStep(bkg_list=others, combine="median")(ds0).compute()
    star_free = np.ones((256, 256), bool)
    for x, y, _ in stars:
        star_free &= np.hypot(xx - x, yy - y) > 8
    residual = out.sci.values[star_free]
    assert abs(np.mean(residual)) < 0.01  # sky of 40-50 DN/s removed to < 0.01 DN/s
    # the gradient is gone: residual uncorrelated with x and y
    for coord in (xx, yy):
        slope = np.polyfit(coord[star_free], residual, 1)[0]
        assert abs(slope) < 2e-4
    # star fluxes survive (the others' copies of the star sit elsewhere and are rejected)
    for x, y, flux in stars:
        r = np.hypot(xx - x, yy - y) < 6
        assert out.sci.values[r].sum() == pytest.approx(flux, rel=0.02)
    # the jwst mean of 3 others keeps a fraction of every other exposure's stars
    mean = BackgroundStep(bkg_list=others)(ds0).compute()
    x, y, flux = stars[1]
    shifted = np.hypot(xx - (x + 17), yy - (y + 9)) < 4
    assert np.min(mean.sci.values[shifted]) < -5.0 < np.min(out.sci.values[shifted])


def test_asn_selfcal_run_image2_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``asn make --selfcal`` → run_image2 with the embedded MIRI defaults → cal + i2d."""
    from webbflow.graphs.runner import RunOptions, run_image2
    from webbflow.io.asn import make_association, write_association

    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path / "cache"))
    files = []
    for i, (dx, dy) in enumerate([(0, 0), (17, 9), (-11, 21)]):
        path = tmp_path / f"jw09999001001_01101_0000{i + 1}_mirimage_rate.fits"
        ds = miri_rate("MIRIM_SUB128", sky=30.0, stars=[(70 + dx, 50 + dy, 500.0)], seed=i + 1)
        compute_products([fits_product(ds, path, "rate")], progress=False)
        files.append(path)
    asn = make_association(files, kind="image2", selfcal=True)
    assert [m.exptype for m in asn.products[0].members] == ["science", "selfcal", "selfcal"]
    asn_path = tmp_path / "selfcal_asn.json"
    write_association(asn, asn_path)
    products = run_image2([asn_path], {}, RunOptions(output_dir=tmp_path / "out", progress=False))
    cals = [p for p in products if p.name.endswith("_cal.fits")]
    i2ds = [p for p in products if p.name.endswith("_i2d.fits")]
    assert len(cals) == len(i2ds) == 3
    with fits.open(cals[0]) as hdul:
        h = hdul[0].header
        assert (h["S_BKDSUB"], h["S_FLAT"], h["S_PHOTOM"]) == ("COMPLETE",) * 3
        assert hdul["SCI"].header["BUNIT"] == "MJy/sr"
        good = (hdul["DQ"].data & dq.DO_NOT_USE) == 0
        assert abs(np.median(hdul["SCI"].data[good])) < 0.05  # the 30 DN/s sky is gone
        assert np.all(hdul["DQ"].data[:, :4] & dq.DO_NOT_USE)  # SUB128 holds reference columns
    with fits.open(i2ds[0]) as hdul:
        # the mosaic covers only the sky columns: 132 of SUB128's 136
        covered_x = np.flatnonzero((hdul["WHT"].data > 0).any(axis=0))
        assert 128 <= covered_x.size <= 134


_CHILD = """
import json, sys
args = json.loads(sys.argv[1])
from jwst.assign_wcs import AssignWcsStep
from jwst.flatfield import FlatFieldStep
from jwst.photom import PhotomStep
refs = args["refs"]
m = args["input"]
for step in (AssignWcsStep, FlatFieldStep, PhotomStep):
    m = step.call(m, **{f"override_{r}": refs.get(r, "N/A") for r in step.reference_file_types})
m.save(args["out"])
"""


@pytest.mark.oracle
def test_jwst_assign_wcs_and_photom_agree(refs: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("jwst")
    from stdatamodels.jwst import datamodels

    from oracle.jwst_runner import offline_crds_env

    rate = miri_rate("MIRIM_SUB256", sky=5.0, stars=[(100.0, 120.0, 300.0)])
    rate_path = tmp_path / "jw09999001001_01101_00001_mirimage_rate.fits"
    compute_products([fits_product(rate, rate_path, "rate")], progress=False)
    ours_path = tmp_path / "ours_cal.fits"
    compute_products([fits_product(calibrate(rate, refs), ours_path, "cal")], progress=False)
    theirs_path = tmp_path / "jwst_cal.fits"
    env = {**os.environ, **offline_crds_env(tmp_path / "crds")}
    payload = json.dumps({"input": str(rate_path), "out": str(theirs_path), "refs": refs})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, payload], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with datamodels.open(str(ours_path)) as a, datamodels.open(str(theirs_path)) as b:
        y, x = np.mgrid[0:255:9j, 4:255:9j]
        ra1, dec1 = a.meta.wcs(x, y)
        ra2, dec2 = b.meta.wcs(x, y)
        wcs_mas = float(np.max(np.hypot((ra1 - ra2) * np.cos(np.radians(dec2)), dec1 - dec2)) * 3.6e6)
        dsci = float(np.nanmax(np.abs(a.data - b.data)))
        print(f"\nMIRI SUB256 vs jwst: WCS {wcs_mas:.3g} mas, max|dSCI| {dsci:.3g} MJy/sr")
        assert wcs_mas < 0.01
        assert a.meta.photometry.conversion_megajanskys == pytest.approx(
            b.meta.photometry.conversion_megajanskys
        )
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-6)
        assert np.array_equal(np.isnan(a.data), np.isnan(b.data))
