"""cal / calints / crf / i2d products: layouts, WCS in and out, stdatamodels reading them, Zarr."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from webbflow.engine.execute import compute_products
from webbflow.io.fits_reader import open_product
from webbflow.io.products import fits_product
from webbflow.io.zarr_store import ZarrProduct, open_zarr
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.steps.assign_wcs.step import AssignWcsStep
from webbflow.steps.assign_wcs.wcs import imaging_wcs
from webbflow.steps.flat_field.step import FlatFieldStep
from webbflow.steps.photom.step import PhotomStep
from webbflow.testing import DEFAULT_META

POINTING = Pointing(53.16, -27.79, 30.0)


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def rate_dataset(aperture: str = "NRCA1_SUB160", nints: int = 0, seed: int = 1) -> xr.Dataset:
    """A lazy rate (``nints`` = 0) or rateints exposure of ``aperture`` with noise-like values, DN/s."""
    geom = Geometry.from_aperture(aperture, POINTING)
    xstart, ystart, nx, ny = geom.window
    meta = _merge(DEFAULT_META, geom.meta())
    meta["exposure"].update(type="NRC_IMAGE", exposure_time=100.0)
    meta["filename"] = "jw09999001001_01101_00001_nrca1_rate.fits"
    shape = (ny, nx) if nints == 0 else (nints, ny, nx)
    dims = ("y", "x") if nints == 0 else ("integration", "y", "x")
    rng = np.random.default_rng(seed)
    var_p = rng.uniform(0.01, 0.02, shape).astype(np.float32)
    var_r = np.full(shape, 0.003, np.float32)
    data = {
        "sci": (dims, rng.normal(2.0, 0.2, shape).astype(np.float32)),
        "err": (dims, np.sqrt(var_p + var_r)),
        "dq": (dims, np.zeros(shape, np.uint32)),
        "var_poisson": (dims, var_p),
        "var_rnoise": (dims, var_r),
    }
    coords: dict[str, Any] = {
        "y": np.arange(ystart - 1, ystart - 1 + ny),
        "x": np.arange(xstart - 1, xstart - 1 + nx),
    }
    if nints:
        coords["integration"] = np.arange(1, nints + 1)
    return xr.Dataset(data, coords=coords, attrs={"meta": meta}).chunk({"y": 64, "x": 64})


def calibrate(ds: xr.Dataset) -> xr.Dataset:
    return PhotomStep()(FlatFieldStep()(AssignWcsStep()(ds)))


def _write(ds: xr.Dataset, path: Path, suffix: Any) -> Path:
    return compute_products([fits_product(ds, path, suffix)], progress=False)[0]


def _offset_mas(w1: Any, w2: Any, nx: int, ny: int) -> float:
    y, x = np.mgrid[0 : ny - 1 : 9j, 0 : nx - 1 : 9j]
    ra1, dec1 = w1(x, y)
    ra2, dec2 = w2(x, y)
    return float(np.max(np.hypot((ra1 - ra2) * np.cos(np.radians(dec2)), dec1 - dec2)) * 3.6e6)


@pytest.fixture(scope="module")
def cal_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, xr.Dataset]:
    cal = calibrate(rate_dataset())
    path = _write(cal, tmp_path_factory.mktemp("cal") / "jw09999001001_01101_00001_nrca1_cal.fits", "cal")
    return path, cal


def test_cal_layout_and_keywords(cal_file: tuple[Path, xr.Dataset]) -> None:
    path, cal = cal_file
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names == [
            "PRIMARY",
            "SCI",
            "ERR",
            "DQ",
            "AREA",
            "VAR_POISSON",
            "VAR_RNOISE",
            "VAR_FLAT",
            "ASDF",
        ]
        sci, primary = hdul["SCI"].header, hdul[0].header
        assert sci["BUNIT"] == "MJy/sr" and hdul["ERR"].header["BUNIT"] == "MJy/sr"
        photometry = cal.attrs["meta"]["photometry"]
        assert sci["PHOTMJSR"] == pytest.approx(photometry["conversion_megajanskys"])
        assert sci["PIXAR_SR"] == pytest.approx(photometry["pixelarea_steradians"])
        assert sci["PIXAR_A2"] == pytest.approx(sci["PIXAR_SR"] * (180 / np.pi * 3600) ** 2)
        assert sci["S_REGION"].startswith("POLYGON ICRS")
        assert sci["CTYPE1"] == "RA---TAN-SIP" and "A_ORDER" in sci  # the SIP approximation
        assert primary["DATAMODL"] == "ImageModel"
        assert (primary["S_WCS"], primary["S_FLAT"], primary["S_PHOTOM"]) == ("COMPLETE",) * 3
        assert primary["R_DISTOR"].endswith("_distortion_v4.asdf")
        # values: rate / flat * PHOTMJSR, checked against the written planes
        flat_applied = cal.sci.values / sci["PHOTMJSR"]
        np.testing.assert_allclose(hdul["SCI"].data, cal.sci.values, rtol=0)
        assert np.nanmedian(flat_applied) == pytest.approx(2.0, rel=0.05)


def test_open_product_reads_wcs_area_var_flat(cal_file: tuple[Path, xr.Dataset]) -> None:
    path, cal = cal_file
    ds = open_product(path)
    assert set(ds.data_vars) == {"sci", "err", "dq", "area", "var_poisson", "var_rnoise", "var_flat"}
    assert ds.area.dims == ("y", "x") and ds.x.values[0] == cal.x.values[0]  # full-frame coordinates
    for var in ds.data_vars:
        np.testing.assert_array_equal(ds[var].values, cal[var].values)
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    assert _offset_mas(ds.attrs["wcs"], cal.attrs["wcs"], nx, ny) == 0.0
    assert ds.attrs["meta"]["photometry"] == cal.attrs["meta"]["photometry"]


def test_stdatamodels_reads_cal(cal_file: tuple[Path, xr.Dataset]) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    path, cal = cal_file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no validation warning either
        model = datamodels.open(str(path))
    with model:
        assert type(model).__name__ == "ImageModel"
        assert model.meta.bunit_data == "MJy/sr" and model.meta.bunit_err == "MJy/sr"
        photometry = cal.attrs["meta"]["photometry"]
        assert model.meta.photometry.conversion_megajanskys == pytest.approx(
            photometry["conversion_megajanskys"]
        )
        assert model.meta.photometry.pixelarea_steradians == pytest.approx(photometry["pixelarea_steradians"])
        assert model.meta.cal_step.photom == "COMPLETE"
        ny, nx = model.data.shape
        assert _offset_mas(model.meta.wcs, cal.attrs["wcs"], nx, ny) < 1.0
        np.testing.assert_array_equal(model.area, cal.area.values)
        np.testing.assert_array_equal(model.var_flat, cal.var_flat.values)


def test_calints_and_crf(tmp_path: Path) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    cal = calibrate(rate_dataset(nints=3))
    path = _write(cal, tmp_path / "x_calints.fits", "calints")
    with fits.open(path) as hdul:
        assert hdul["SCI"].data.shape == (3, 160, 160) and hdul["AREA"].data.shape == (160, 160)
        assert hdul[0].header["DATAMODL"] == "CubeModel"
    with datamodels.open(str(path)) as model:
        assert type(model).__name__ == "CubeModel" and model.meta.wcs is not None
    back = open_product(path)
    assert back.sci.dims == ("integration", "y", "x") and back.area.dims == ("y", "x")
    crf = _write(calibrate(rate_dataset()), tmp_path / "x_crf.fits", "crf")
    assert [h.name for h in fits.open(crf)][1:4] == ["SCI", "ERR", "DQ"]


class _Grid:
    """Stands in for steps.resample.grid.OutputGrid: a wcs and its FITS cards."""

    def __init__(self, wcs: Any) -> None:
        self.wcs = wcs

    def fits_cards(self) -> list[tuple[str, Any, str]]:
        return [("CTYPE1", "RA---TAN", ""), ("CTYPE2", "DEC--TAN", ""), ("CRPIX1", 25.0, "")]


def test_i2d_layout_and_zarr_wcs(tmp_path: Path) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    meta = copy.deepcopy(DEFAULT_META)
    meta.update(bunit_data="MJy/sr", bunit_err="MJy/sr")
    wcs = imaging_wcs(_merge(meta, Geometry.from_aperture("NRCA1_FULL", POINTING).meta()), 40, 50)
    plane = np.random.default_rng(3).normal(size=(40, 50)).astype(np.float32)
    data = {v: (("y", "x"), plane) for v in ("sci", "err", "wht", "var_poisson", "var_rnoise", "var_flat")}
    data["con"] = (("plane", "y", "x"), np.ones((1, 40, 50), np.int32))
    mosaic = xr.Dataset(data, coords={"y": np.arange(40), "x": np.arange(50)}, attrs={"meta": meta})
    mosaic.attrs.update(wcs=wcs, grid=_Grid(wcs))
    path = _write(mosaic.chunk({"y": 16, "x": 16}), tmp_path / "m_i2d.fits", "i2d")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names == [
            "PRIMARY",
            "SCI",
            "ERR",
            "CON",
            "WHT",
            "VAR_POISSON",
            "VAR_RNOISE",
            "VAR_FLAT",
            "ASDF",
        ]
        assert hdul["SCI"].header["CRPIX1"] == 25.0 and hdul["SCI"].header["BUNIT"] == "MJy/sr"
    back = open_product(path)
    assert back.con.dims == ("plane", "y", "x") and back.x.values[0] == 0
    np.testing.assert_array_equal(back.wht.values, plane)
    with datamodels.open(str(path)) as model:
        assert model.con.shape == (1, 40, 50) and model.wht.shape == (40, 50)
    store = tmp_path / "m_i2d.zarr"
    compute_products([ZarrProduct(mosaic.chunk({"y": 16, "x": 16}), store)], progress=False)
    reopened = open_zarr(store)
    assert "grid" not in reopened.attrs and reopened.attrs["meta"]["bunit_data"] == "MJy/sr"
    assert _offset_mas(reopened.attrs["wcs"], wcs, 50, 40) == 0.0
