"""bkg_subtract: clipped-mean kernels, the lazy step, keyword checks, and jwst as an oracle."""

from __future__ import annotations

import copy
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

from webbflow import dq
from webbflow.engine.execute import compute_products
from webbflow.errors import InputError
from webbflow.io.products import fits_product
from webbflow.steps.background.kernel import clipped_mean, subtract_background
from webbflow.steps.background.step import BackgroundStep
from webbflow.testing import DEFAULT_META, raise_if_dask_computes

NY, NX = 40, 48


def _meta(**instrument: str) -> dict:
    meta = copy.deepcopy(DEFAULT_META)
    meta["subarray"].update(name="SUB160", xstart=1889, ystart=1889, xsize=NX, ysize=NY)
    meta["instrument"].update(instrument)
    return meta


def _rate(sci: np.ndarray, seed: int = 0, name: str = "sci_rate.fits", chunks: int = 16, **inst: str):
    """A rate-level Dataset (2-D, or 3-D rateints) around ``sci`` with simple variances."""
    rng = np.random.default_rng(seed)
    dims = ("y", "x") if sci.ndim == 2 else ("integration", "y", "x")
    var_p = rng.uniform(0.01, 0.02, sci.shape).astype(np.float32)
    var_r = np.full(sci.shape, 0.004, np.float32)
    dqs = np.zeros(sci.shape, np.uint32)
    dqs[..., 3, 5] = dq.HOT
    meta = _meta(**inst)
    meta["filename"] = name
    data = {
        "sci": (dims, sci.astype(np.float32)),
        "err": (dims, np.sqrt(var_p + var_r)),
        "dq": (dims, dqs),
        "var_poisson": (dims, var_p),
        "var_rnoise": (dims, var_r),
    }
    coords = {"y": np.arange(1888, 1888 + NY), "x": np.arange(1888, 1888 + NX)}
    if sci.ndim == 3:
        coords["integration"] = np.arange(1, sci.shape[0] + 1)
    return xr.Dataset(data, coords=coords, attrs={"meta": meta}).chunk({"y": chunks, "x": chunks})


def _write(ds: xr.Dataset, path: Path) -> Path:
    suffix = "rateints" if ds.sci.ndim == 3 else "rate"
    compute_products([fits_product(ds, path, suffix)], progress=False)
    return path


def test_clipped_mean_kernel() -> None:
    # a value can lie more than 3 std from the median only among >= 11 values
    stack = np.full((12, 2, 3), 2.0, np.float32)
    stack[:, 0, 0] = [0.9, 1.1] * 5 + [1.0, 50.0]  # one outlier
    stack[:, 0, 1] = np.nan  # NaNs ignored
    stack[1:3, 0, 1] = [4.0, 6.0]
    stack[:, 1, 2] = np.nan  # no value at all
    var = np.full_like(stack, 0.04)
    dqs = np.zeros(stack.shape, np.uint32)
    dqs[1, 1, 1] = dq.HOT
    dqs[11, 1, 1] = dq.DO_NOT_USE
    before = [a.copy() for a in (stack, var, dqs)]
    out = clipped_mean(stack, var, var * 0.5, dqs, sigma=3.0, maxiters=None)
    for a, b in zip((stack, var, dqs), before, strict=True):
        np.testing.assert_array_equal(a, b)  # inputs untouched
    assert out.sci[0, 0] == pytest.approx(1.0)  # 50 clipped: mean of the other eleven
    assert out.var_poisson[0, 0] == pytest.approx(11 * 0.04 / 11**2)  # variance of an 11-value mean
    assert out.var_rnoise[0, 0] == pytest.approx(11 * 0.02 / 11**2)
    assert out.sci[0, 1] == pytest.approx(5.0) and out.var_poisson[0, 1] == pytest.approx(0.02)
    assert out.sci[1, 0] == pytest.approx(2.0) and out.var_poisson[1, 0] == pytest.approx(0.04 / 12)
    assert np.isnan(out.sci[1, 2]) and np.isnan(out.var_poisson[1, 2])
    assert out.dq[1, 1] == dq.HOT | dq.DO_NOT_USE and out.dq[0, 0] == 0
    assert out.sci.dtype == np.float32 and out.dq.dtype == np.uint32


def test_subtract_kernel_broadcasts_over_integrations() -> None:
    sci = np.full((2, 2, 2), 10.0, np.float32)
    var = np.full_like(sci, 0.09)
    err = np.sqrt(2 * var)
    science_dq = np.zeros(sci.shape, np.uint32)
    bkg = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    bkg_var = np.full((2, 2), 0.01, np.float32)
    bkg_dq = np.array([[0, dq.HOT], [0, 0]], np.uint32)
    out = subtract_background(
        sci, err, science_dq, var, var, bkg, bkg_var, bkg_var, bkg_dq, do_not_use=dq.DO_NOT_USE
    )
    np.testing.assert_allclose(out.sci[1], [[9.0, 8.0], [7.0, np.nan]])
    np.testing.assert_allclose(out.var_poisson[0, 0, 0], 0.10, rtol=1e-6)
    np.testing.assert_allclose(out.err[0, 0, 0], np.sqrt(0.18 + 0.02), rtol=1e-6)
    assert out.dq[0, 0, 1] == dq.HOT and out.dq[1, 1, 1] == dq.DO_NOT_USE and out.dq[0, 0, 0] == 0
    assert sci[0, 0, 0] == 10.0 and science_dq.max() == 0


@pytest.fixture(scope="module")
def backgrounds(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], np.ndarray]:
    """Twelve background rate files and their expected clipped mean."""
    tmp_path = tmp_path_factory.mktemp("backgrounds")
    rng = np.random.default_rng(5)
    # evenly spread levels (all within 1.6 std of the median) over a common pattern: only the star clips
    pattern = rng.normal(0.5, 0.05, (NY, NX))
    planes = [(pattern + 0.002 * (k - 5.5)).astype(np.float32) for k in range(12)]
    planes[2][10, 10] = 30.0  # a star in one of twelve backgrounds: clipped
    products = [
        fits_product(
            _rate(p, seed=i, name=f"b{i}_rate.fits", chunks=NX), tmp_path / f"b{i}_rate.fits", "rate"
        )
        for i, p in enumerate(planes)
    ]
    paths = compute_products(products, progress=False)
    stack = np.stack(planes)
    expected = stack.mean(axis=0)
    expected[10, 10] = np.mean(np.delete(stack[:, 10, 10], 2))
    return paths, expected


def test_step_subtracts_clipped_mean_lazily_and_tiling_invariant(
    backgrounds: tuple[list[Path], np.ndarray],
) -> None:
    paths, expected = backgrounds
    science = np.random.default_rng(9).normal(3.0, 0.1, (NY, NX)).astype(np.float32)
    results = []
    for chunks in (16, 40):
        ds = _rate(science, chunks=chunks)
        with raise_if_dask_computes():
            out = BackgroundStep(bkg_list=[str(p) for p in paths])(ds)
        assert out.attrs["meta"]["cal_step"]["bkg_subtract"] == "COMPLETE"
        results.append(out.compute())
    xr.testing.assert_identical(results[0].drop_attrs(), results[1].drop_attrs())
    out = results[0]
    np.testing.assert_allclose(out.sci.values, science - expected, atol=2e-6)
    assert out.dq.values[3, 5] == dq.HOT  # the science's own flag and the backgrounds' are ORed
    assert np.all(out.var_poisson.values > _rate(science).var_poisson.values)
    np.testing.assert_allclose(out.err.values**2, out.var_poisson.values + out.var_rnoise.values, rtol=1e-5)


def test_rateints_background_is_reduced_over_integrations(tmp_path: Path) -> None:
    values = [0.9, 1.1] * 5 + [1.0, 40.0]
    cube = np.stack([np.full((NY, NX), v, np.float32) for v in values])
    path = _write(_rate(cube, name="bi_rateints.fits"), tmp_path / "bi_rateints.fits")
    science = np.full((NY, NX), 5.0, np.float32)
    out = BackgroundStep(bkg_list=str(path))(_rate(science)).compute()
    np.testing.assert_allclose(out.sci.values, 4.0, atol=1e-6)  # 40 clipped; mean of the rest 1.0


def test_mismatched_background_is_a_one_line_error(tmp_path: Path) -> None:
    bad = _write(_rate(np.ones((NY, NX)), name="bf_rate.fits", filter="F150W"), tmp_path / "bf_rate.fits")
    with pytest.raises(InputError, match=r"bf_rate.fits: background has FILTER=F150W .* FILTER=F200W") as exc:
        BackgroundStep(bkg_list=[str(bad)])(_rate(np.ones((NY, NX))))
    assert "\n" not in str(exc.value)


def test_no_background_is_skipped_and_combined_background_kept(
    backgrounds: tuple[list[Path], np.ndarray],
) -> None:
    ds = _rate(np.ones((NY, NX)))
    out = BackgroundStep()(ds)
    assert out.attrs["meta"]["cal_step"]["bkg_subtract"] == "SKIPPED" and out.sci.data is ds.sci.data
    paths, expected = backgrounds
    step = BackgroundStep(bkg_list=",".join(str(p) for p in paths), save_combined_background=True)
    assert step.background_files == tuple(paths)
    combined = step(ds).attrs["combined_background"]
    np.testing.assert_allclose(combined.sci.values, expected, atol=2e-6)


@pytest.mark.oracle
def test_oracle_jwst_average_background(tmp_path: Path, backgrounds: tuple[list[Path], np.ndarray]) -> None:
    pytest.importorskip("jwst")
    from jwst.background.background_sub import average_background
    from stdatamodels.jwst import datamodels

    paths, _ = backgrounds
    science = _write(_rate(np.full((NY, NX), 3.0, np.float32)), tmp_path / "sci_rate.fits")
    ours = BackgroundStep(bkg_list=[str(p) for p in paths], save_combined_background=True)
    from webbflow.io.fits_reader import open_product

    combined = ours(open_product(science)).attrs["combined_background"].compute()
    with datamodels.open(str(science)) as model, dask.config.set(scheduler="sync"):
        theirs = average_background(model, [str(p) for p in paths], 3.0, None)
        diff_sci = np.max(np.abs(theirs.data - combined.sci.values))
        diff_err = np.max(np.abs(theirs.err - combined.err.values))
        assert diff_sci < 1e-6, diff_sci  # same clipped mean (float32 vs float64 rounding)
        assert diff_err < 1e-6, diff_err  # same sqrt(Σ err²) / n
        np.testing.assert_array_equal(theirs.dq, combined.dq.values)
