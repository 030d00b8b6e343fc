"""assign_wcs: the gwcs imaging WCS against the SIAF geometry, laziness, ASDF round trip, jwst oracle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import asdf
import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from webbflow.errors import InputError, ReferenceFileError
from webbflow.io.products import fits_product
from webbflow.io.wcs_asdf import asdf_extension_with_wcs, read_distortion, read_wcs
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.steps.assign_wcs.step import AssignWcsStep
from webbflow.steps.assign_wcs.wcs import siaf_distortion, siaf_frame
from webbflow.testing import DEFAULT_META, raise_if_dask_computes

POINTING = Pointing(53.16, -27.79, 30.0)


def _merge(base: dict, update: dict) -> dict:
    out = {k: (_merge(v, {}) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in update.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def _rate(
    aperture: str, pointing: Pointing = POINTING, reference: str | None = None
) -> tuple[xr.Dataset, Geometry]:
    """A lazy rate exposure of ``aperture`` (zeros) with the geometry's meta."""
    geom = Geometry.from_aperture(aperture, pointing, reference=reference)
    xstart, ystart, nx, ny = geom.window
    meta = _merge(DEFAULT_META, geom.meta())
    meta["exposure"]["type"] = "NRC_IMAGE" if geom.instrument == "NIRCAM" else "FGS_IMAGE"
    plane = da.zeros((ny, nx), np.float32, chunks=256)
    data = {k: (("y", "x"), plane) for k in ("sci", "err", "var_poisson", "var_rnoise")}
    data["dq"] = (("y", "x"), da.zeros((ny, nx), np.uint32, chunks=256))
    coords = {"y": np.arange(ystart - 1, ystart - 1 + ny), "x": np.arange(xstart - 1, xstart - 1 + nx)}
    return xr.Dataset(data, coords=coords, attrs={"meta": meta}), geom


def _sky_offset_mas(ra1, dec1, ra2, dec2) -> np.ndarray:
    return np.hypot((ra1 - ra2) * np.cos(np.radians(dec2)), dec1 - dec2) * 3.6e6


def _grid(nx: int, ny: int, n: int = 17) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0 : ny - 1 : n * 1j, 0 : nx - 1 : n * 1j]  # pixel centres, corners included
    return x, y


@pytest.mark.parametrize("aperture", ["NRCA1_FULL", "NRCB5_FULL", "NIS_CEN", "FGS1_FULL", "NRCA3_SUB400P"])
def test_wcs_matches_geometry(aperture: str) -> None:
    rate, geom = _rate(aperture)
    wcs = AssignWcsStep(sip_approx=False)(rate).attrs["wcs"]
    xstart, ystart, nx, ny = geom.window
    x, y = _grid(nx, ny)
    ra, dec = wcs(x, y)  # 0-based pixels of the readout window
    ra_geom, dec_geom = geom.pixel_to_sky(x + xstart - 1, y + ystart - 1)  # full-frame pixels
    assert np.max(_sky_offset_mas(ra, dec, ra_geom, dec_geom)) < 1.0
    xb, yb = wcs.invert(ra, dec)
    assert np.max(np.hypot(xb - x, yb - y)) < 1e-3


def test_subarray_frame_is_zero_based_in_window() -> None:
    full, _ = _rate("NRCA3_FULL", reference="NRCALL_FULL")
    sub, geom = _rate("NRCA3_SUB400P", reference="NRCALL_FULL")
    xstart, ystart, _, _ = geom.window
    assert (xstart, ystart) != (1, 1)
    wcs_full = AssignWcsStep(sip_approx=False)(full).attrs["wcs"]
    wcs_sub = AssignWcsStep(sip_approx=False)(sub).attrs["wcs"]
    # one attitude, two readout windows: a full-frame pixel has one sky position
    ra_f, dec_f = wcs_full(10.0 + xstart - 1, 20.0 + ystart - 1)
    ra_s, dec_s = wcs_sub(10.0, 20.0)
    assert _sky_offset_mas(ra_s, dec_s, ra_f, dec_f) < 1.0


def test_step_is_lazy_and_records_meta() -> None:
    rate, geom = _rate("NRCA1_FULL")
    with raise_if_dask_computes():
        out = AssignWcsStep()(rate)
    meta = out.attrs["meta"]
    assert meta["cal_step"]["assign_wcs"] == "COMPLETE"
    assert out.sci.data is rate.sci.data
    # S_REGION: the four outer pixel-edge corners of the frame (9 decimals of a degree ~ 1e-4 px)
    assert meta["wcsinfo"]["s_region"].startswith("POLYGON ICRS ")
    corners = np.array(meta["wcsinfo"]["s_region"].split()[2:], float).reshape(4, 2)
    x, y = geom.sky_to_pixel(*corners.T)
    expected = {(-0.5, -0.5), (-0.5, 2047.5), (2047.5, -0.5), (2047.5, 2047.5)}
    assert {(round(a * 2) / 2, round(b * 2) / 2) for a, b in zip(x, y, strict=True)} == expected
    assert np.max(np.abs(np.concatenate([x, y]) - np.round(np.concatenate([x, y]) * 2) / 2)) < 1e-3
    sip = dict((k, v) for k, v, _ in out.attrs["wcs_sip"])
    assert sip["CTYPE1"] == "RA---TAN-SIP" and "NAXIS1" not in sip


def test_input_not_modified() -> None:
    rate, _ = _rate("NIS_CEN")
    before = dict(rate.attrs["meta"]["wcsinfo"])
    AssignWcsStep(sip_approx=False)(rate)
    assert rate.attrs["meta"]["wcsinfo"] == before and "wcs" not in rate.attrs


def test_missing_pointing_is_a_clear_error() -> None:
    rate, _ = _rate("NRCA1_FULL")
    del rate.attrs["meta"]["wcsinfo"]["roll_ref"]
    with pytest.raises(InputError, match=r"wcsinfo\.roll_ref"):
        AssignWcsStep()(rate)


def test_spectroscopic_type_is_skipped() -> None:
    rate, _ = _rate("NRCA5_FULL")
    rate.attrs["meta"]["exposure"]["type"] = "NRC_WFSS"
    out = AssignWcsStep()(rate)
    assert out.attrs["meta"]["cal_step"]["assign_wcs"] == "SKIPPED" and "wcs" not in out.attrs


def test_asdf_extension_round_trip(tmp_path: Path) -> None:
    rate, geom = _rate("FGS2_SUB128CNTR")
    wcs = AssignWcsStep(sip_approx=False)(rate).attrs["wcs"]
    path = _write_product(rate, wcs, tmp_path / "x_cal.fits")
    back = read_wcs(path)
    assert back is not None
    assert back.available_frames == wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
    x, y = _grid(*geom.window[2:])
    np.testing.assert_array_equal(np.array(back(x, y)), np.array(wcs(x, y)))
    ra, dec = wcs(x, y)
    np.testing.assert_array_equal(np.array(back.invert(ra, dec)), np.array(wcs.invert(ra, dec)))


def test_override_distortion(tmp_path: Path) -> None:
    rate, geom = _rate("NRCA3_SUB400P")
    siaf = AssignWcsStep(sip_approx=False)(rate).attrs["wcs"]
    frame = siaf_frame("NRCA3")
    reference = tmp_path / "distortion.asdf"  # a DISTORTION reference: full-frame pixels -> V2/V3
    model = siaf_distortion(dataclasses.replace(frame, v2_ref=frame.v2_ref + 1.0))
    asdf.AsdfFile({"model": model, "meta": {"instrument": {"detector": "NRCA3"}}}).write_to(reference)
    out = AssignWcsStep(sip_approx=False, override_distortion=str(reference))(rate)
    assert out.attrs["meta"]["ref_file"]["distortion"]["name"] == str(reference)
    # the reference moves V2 by 1 arcsec: every pixel's V2 is 1″ larger than with SIAF
    x, y = _grid(*geom.window[2:], n=5)
    v2_siaf, _ = siaf.get_transform("detector", "v2v3")(x, y)
    v2_ref, _ = out.attrs["wcs"].get_transform("detector", "v2v3")(x, y)
    np.testing.assert_allclose(v2_ref - v2_siaf, 1.0, atol=1e-9)
    with pytest.raises(ReferenceFileError, match="DETECTOR=NRCA3"):
        read_distortion(reference, "NRCA1")


def test_distortion_na_uses_siaf() -> None:
    rate, _ = _rate("NIS_CEN")
    out = AssignWcsStep(sip_approx=False, override_distortion="N/A")(rate)
    assert out.attrs["meta"]["cal_step"]["assign_wcs"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["distortion"]["name"] == "N/A"


def test_jwst_datamodel_reads_our_wcs(tmp_path: Path) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    rate, geom = _rate("NRCA1_FULL", Pointing(10.0, 45.0, 250.0))
    out = AssignWcsStep(sip_approx=False)(rate)
    path = _write_product(out, out.attrs["wcs"], tmp_path / "jw_nrca1_rate.fits")
    with datamodels.ImageModel(str(path)) as model:
        theirs = model.meta.wcs
        assert theirs is not None
        x, y = _grid(2048, 2048)
        ra, dec = theirs.pixel_to_world_values(x, y)
        ra_geom, dec_geom = geom.pixel_to_sky(x, y)
        assert np.max(_sky_offset_mas(ra, dec, ra_geom, dec_geom)) < 1.0


def _write_product(ds: xr.Dataset, wcs, path: Path) -> Path:
    product = fits_product(ds, path, "rate")
    product = dataclasses.replace(product, tables=[asdf_extension_with_wcs(wcs)])
    with dask.config.set(scheduler="sync"):
        dask.compute(*product.prepare())
    return product.finish()
