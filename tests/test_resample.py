"""resample: output grid, drizzled mosaic (flux, flatness, variances, tiling invariance), median, blot."""

from __future__ import annotations

import copy
import functools
import io

import asdf
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from astropy.wcs import WCS as FitsWCS
from dask.core import get_dependencies

from webbflow.errors import UsageError
from webbflow.steps.assign_wcs.wcs import imaging_wcs
from webbflow.steps.resample import blot, median_mosaic, output_grid, resample
from webbflow.steps.resample.grid import native_scale
from webbflow.steps.resample.step import ResampleStep
from webbflow.testing import DEFAULT_META, raise_if_dask_computes

RA, DEC = 53.16, -27.79
NY, NX = 80, 96


def cal(
    sci: np.ndarray | None = None,
    *,
    ra: float = RA,
    dec: float = DEC,
    chunks: int | tuple[int, int] = 40,
    var_rnoise: float = 0.004,
) -> xr.Dataset:
    """A small NRCA1 subarray cal exposure pointed at (ra, dec) with attrs['wcs']."""
    meta = copy.deepcopy(DEFAULT_META)
    meta["subarray"].update(xstart=1001, ystart=1001, xsize=NX, ysize=NY, name="SUBARRAY")
    meta["wcsinfo"] = {
        "v2_ref": 120.6, "v3_ref": -527.3, "vparity": -1, "v3yangle": -0.1,
        "ra_ref": ra, "dec_ref": dec, "roll_ref": 30.0,
    }  # fmt: skip
    meta["exposure"].update(exposure_time=100.0, start_time=60000.0, end_time=60000.01)
    wcs = _wcs(ra, dec)
    if sci is None:
        sci = np.ones((NY, NX), np.float32)
    planes = {
        "sci": np.asarray(sci, np.float32),
        "dq": np.zeros((NY, NX), np.uint32),
        "var_poisson": np.full((NY, NX), 0.002, np.float32),
        "var_rnoise": np.full((NY, NX), var_rnoise, np.float32),
        "var_flat": np.full((NY, NX), 1e-4, np.float32),
    }
    planes["err"] = np.sqrt(planes["var_poisson"] + planes["var_rnoise"] + planes["var_flat"])
    data = {k: (("y", "x"), da.from_array(v, chunks=chunks)) for k, v in planes.items()}
    coords = {"y": np.arange(1000, 1000 + NY), "x": np.arange(1000, 1000 + NX)}
    return xr.Dataset(data, coords=coords, attrs={"meta": meta, "wcs": wcs})


@functools.cache
def _wcs(ra: float, dec: float):
    meta = copy.deepcopy(DEFAULT_META)
    meta["subarray"].update(xstart=1001, ystart=1001, xsize=NX, ysize=NY, name="SUBARRAY")
    meta["wcsinfo"] = {
        "v2_ref": 120.6, "v3_ref": -527.3, "vparity": -1, "v3yangle": -0.1,
        "ra_ref": ra, "dec_ref": dec, "roll_ref": 30.0,
    }  # fmt: skip
    return imaging_wcs(meta, NY, NX)


def scene(ds: xr.Dataset, func) -> np.ndarray:
    """``func(ra, dec)`` sampled at ``ds``'s pixel centres (a sky-consistent image)."""
    y, x = np.mgrid[0:NY, 0:NX].astype(float)
    ra, dec = ds.attrs["wcs"](x, y)
    return func(ra, dec).astype(np.float32)


def smooth(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    dx, dy = (ra - RA) * 3600 * np.cos(np.radians(DEC)), (dec - DEC) * 3600
    return 1.0 + 0.5 * np.sin(dx / 0.5) * np.cos(dy / 0.4)


def dithers(func=smooth, chunks=40) -> list[xr.Dataset]:
    offsets = [(0.0, 0.0), (0.4, 0.25), (-0.3, 0.5)]  # arcsec
    out = []
    for ox, oy in offsets:
        ra, dec = RA + ox / 3600 / np.cos(np.radians(DEC)), DEC + oy / 3600
        ds = cal(ra=ra, dec=dec, chunks=chunks)
        out.append(ds.assign(sci=(("y", "x"), da.from_array(scene(ds, func), chunks=chunks))))
    return out


# -- grid -------------------------------------------------------------------------------------


def test_grid_covers_inputs_north_up_and_serialises() -> None:
    inputs = dithers()
    grid = output_grid(inputs, rotation=0.0, tile=32)
    assert grid.pixel_scale == pytest.approx(native_scale(inputs[0].attrs["wcs"], inputs[0]))
    assert 0.028 < grid.pixel_scale < 0.034  # NIRCam SW ~0.031"
    for ds in inputs:  # every input corner is inside the grid
        ra, dec = ds.attrs["wcs"](
            np.array([-0.5, NX - 0.5, -0.5, NX - 0.5]), np.array([-0.5, -0.5, NY - 0.5, NY - 0.5])
        )
        x, y = grid.wcs.invert(ra, dec, with_bounding_box=False)
        assert np.all((x >= -0.5 - 1e-6) & (x <= grid.shape[1] - 0.5 + 1e-6))
        assert np.all((y >= -0.5 - 1e-6) & (y <= grid.shape[0] - 0.5 + 1e-6))
    ra0, dec0 = grid.wcs(10.0, 10.0)
    ra1, _ = grid.wcs(11.0, 10.0)
    _, dec1 = grid.wcs(10.0, 11.0)
    assert ra1 < ra0 and dec1 > dec0  # east left, north up
    header = fits.Header([fits.Card(*c) for c in grid.fits_cards()])
    x, y = np.array([0.0, 17.0, grid.shape[1] - 1.0]), np.array([0.0, 33.0, grid.shape[0] - 1.0])
    fra, fdec = FitsWCS(header).all_pix2world(x, y, 0)
    gra, gdec = grid.wcs(x, y)
    np.testing.assert_allclose(np.c_[fra, fdec], np.c_[gra, gdec], rtol=0, atol=1e-10)
    buf = io.BytesIO()
    asdf.AsdfFile({"wcs": grid.wcs}).write_to(buf)
    buf.seek(0)
    with asdf.open(buf) as af:
        np.testing.assert_allclose(af["wcs"](x, y), (gra, gdec), rtol=0, atol=1e-12)


def test_grid_explicit_parameters() -> None:
    inputs = dithers()
    grid = output_grid(
        inputs, pixel_scale=0.05, rotation=45.0, crval=(RA, DEC), crpix=(10.0, 20.0), output_shape=(70, 90)
    )
    assert grid.shape == (70, 90)
    np.testing.assert_allclose(grid.wcs(10.0, 20.0), (RA, DEC), atol=1e-12)
    step = ResampleStep(pixel_scale_ratio=0.5, rotation=0.0)
    assert step.grid(inputs).pixel_scale == pytest.approx(
        0.5 * native_scale(inputs[0].attrs["wcs"], inputs[0])
    )
    with pytest.raises(UsageError, match="pixfac"):
        ResampleStep(pixfac=0.5)


# -- mosaic -----------------------------------------------------------------------------------


def test_flat_stays_flat_and_variances_combine() -> None:
    inputs = [cal(ra=RA + d / 3600, chunks=40) for d in (0.0, 0.5)]
    grid = output_grid(inputs, rotation=0.0, pixel_scale_ratio=0.8, tile=40)
    with raise_if_dask_computes():
        mosaic = resample(inputs, grid)
    m = mosaic.compute()
    has = m.wht.values > 0
    assert has.sum() > 0.5 * has.size
    np.testing.assert_allclose(m.sci.values[has], 1.0, rtol=1e-5)
    # where both inputs cover (context bits 1 and 2), ivm variance is var/2, scaled by 1/ratio²
    both = m.con.values[0] == 3
    ratio = m.attrs["meta"]["resample"]["pixel_scale_ratio"]
    interior = both & (m.wht.values > 0.99 * np.median(m.wht.values[both]))
    np.testing.assert_allclose(m.var_rnoise.values[interior], 0.004 / 2 / ratio**2, rtol=1e-4)
    expected_err = np.sqrt((0.004 + 0.002 + 1e-4) / 2 / ratio**2)
    np.testing.assert_allclose(m.err.values[interior], expected_err, rtol=1e-4)
    assert np.isnan(m.sci.values[~has]).all()
    meta = m.attrs["meta"]
    assert meta["exposure"]["exposure_time"] == 200.0 and meta["resample"]["pointings"] == 2


def test_point_source_flux_is_conserved() -> None:
    sigma = 1.5 / 3600 * 0.031  # deg, 1.5 px

    def star(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        r2 = ((ra - RA) * np.cos(np.radians(DEC))) ** 2 + (dec - DEC) ** 2
        return 100.0 * np.exp(-r2 / (2 * sigma**2))

    ds = cal(chunks=40)
    ds = ds.assign(sci=(("y", "x"), da.from_array(scene(ds, star), chunks=40)))
    wcs = ds.attrs["wcs"]
    # true solid angle of each input pixel from the WCS (distortion included), sr
    y, x = np.mgrid[0:NY, 0:NX].astype(float)
    area_in = _pixel_area(wcs, x, y)
    flux_in = float(np.sum(ds.sci.values * area_in))
    for ratio, pixfrac in ((1.0, 1.0), (0.6, 0.8)):
        grid = output_grid([ds], rotation=0.0, pixel_scale_ratio=ratio, tile=32)
        m = resample([ds], grid, pixfrac=pixfrac).compute()
        gy, gx = np.mgrid[0 : grid.shape[0], 0 : grid.shape[1]].astype(float)
        flux_out = float(np.nansum(m.sci.values * _pixel_area(grid.wcs, gx, gy)))
        assert flux_out == pytest.approx(flux_in, rel=1e-3)


def _pixel_area(wcs, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Solid angle (sr) of pixels from the WCS Jacobian (central differences)."""
    h = 0.5
    ra_x1, dec_x1 = wcs(x + h, y, with_bounding_box=False)
    ra_x0, dec_x0 = wcs(x - h, y, with_bounding_box=False)
    ra_y1, dec_y1 = wcs(x, y + h, with_bounding_box=False)
    ra_y0, dec_y0 = wcs(x, y - h, with_bounding_box=False)
    cosd = np.cos(np.radians(DEC))
    dxa, dxd = (ra_x1 - ra_x0) * cosd, dec_x1 - dec_x0
    dya, dyd = (ra_y1 - ra_y0) * cosd, dec_y1 - dec_y0
    return np.abs(dxa * dyd - dxd * dya) * np.radians(1.0) ** 2


def test_result_does_not_depend_on_tilings() -> None:
    rng = np.random.default_rng(5)
    noise = [rng.normal(1, 0.2, (NY, NX)).astype(np.float32) for _ in range(3)]

    def run(in_chunks, out_tile):
        inputs = [cal(n, ra=RA + 0.3 * i / 3600, chunks=in_chunks) for i, n in enumerate(noise)]
        grid = output_grid(inputs, rotation=20.0, pixel_scale_ratio=0.9, tile=out_tile)
        return resample(inputs, grid, pixfrac=0.7).compute(), median_mosaic(inputs, grid).compute()

    (a, ma), (b, mb) = run(40, 64), run((23, 50), (17, 31))
    for var in ("sci", "err", "wht", "var_poisson", "var_rnoise", "var_flat", "con"):
        x, y = a[var].values, b[var].values
        assert np.array_equal(np.isnan(x), np.isnan(y)), var
        np.testing.assert_allclose(
            np.nan_to_num(y), np.nan_to_num(x), rtol=1e-6, atol=1e-6 * np.nanmax(np.abs(x))
        )
    np.testing.assert_allclose(mb.values, ma.values, rtol=1e-6, equal_nan=True)


def test_output_tile_reads_only_overlapping_input_chunks() -> None:
    big = [cal(np.full((NY, NX), i + 1.0), ra=RA + 0.4 * i / 3600, chunks=16) for i in range(2)]
    grid = output_grid(big, rotation=0.0, tile=24)
    mosaic = resample(big, grid)
    graph = dict(mosaic.sci.data.__dask_graph__())
    names = {ds.sci.data.name: ds for ds in big}
    tj, tk = 1, 1
    key = (mosaic.sci.data.name, tj, tk)
    seen, stack = set(), [key]
    while stack:
        k = stack.pop()
        if k in seen or k not in graph:
            continue
        seen.add(k)
        stack.extend(get_dependencies(graph, k))
    read = {k for k in seen if isinstance(k, tuple) and k[0] in names}
    total = sum(len(ds.sci.data.chunks[0]) * len(ds.sci.data.chunks[1]) for ds in big)
    assert 0 < len(read) < total
    # every chunk read lands within a few px of the tile
    for name, j, k in read:
        ds = names[name]
        y = np.array([16 * j - 0.5, 16 * j + 15.5])
        x = np.array([16 * k - 0.5, 16 * k + 15.5])
        gx, gy = np.meshgrid(x, y)
        ox, oy = grid.wcs.invert(*ds.attrs["wcs"](gx, gy), with_bounding_box=False)
        near = 24 + 2 * 16  # tile + one chunk + margin, output px
        assert ox.max() > 24 * tk - near and ox.min() < 24 * (tk + 1) + near
        assert oy.max() > 24 * tj - near and oy.min() < 24 * (tj + 1) + near


# -- median and blot --------------------------------------------------------------------------


def test_median_rejects_cosmic_ray_in_one_input() -> None:
    inputs = dithers()
    sci = inputs[1].sci.values.copy()
    sci[40:42, 50:52] += 50.0
    inputs[1] = inputs[1].assign(sci=(("y", "x"), da.from_array(sci, chunks=40)))
    grid = output_grid(inputs, rotation=0.0, tile=40)
    with raise_if_dask_computes():
        med = median_mosaic(inputs, grid)
    med_v = med.compute().values
    mean_v = resample(inputs, grid).sci.values
    ra, dec = inputs[1].attrs["wcs"](50.5, 40.5)
    x, y = (round(float(v)) for v in grid.wcs.invert(ra, dec))
    truth = smooth(np.array(ra), np.array(dec))
    assert abs(med_v[y, x] - truth) < 0.1  # the CR is gone from the median
    assert mean_v[y, x] - truth > 5.0  # but present in the mean


def test_blot_of_resample_recovers_smooth_image() -> None:
    ds = dithers()[0]
    grid = output_grid([ds], tile=32)  # detector orientation
    mosaic = resample([ds], grid)
    with raise_if_dask_computes():
        back = blot(mosaic.sci, grid, ds, interp="poly5")
    assert back.dims == ("y", "x") and back.chunks == ds.sci.chunks
    np.testing.assert_array_equal(back.x.values, ds.x.values)
    b = back.values
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(b[inner], ds.sci.values[inner], atol=5e-3)
