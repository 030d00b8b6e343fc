"""outlier_detection: flagging kernel, tiling invariance, the step end to end, stcal/jwst oracles."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from _step_checks import assert_kernel_pure
from webbflow import dq
from webbflow.engine.tiles import map_tiles
from webbflow.errors import UsageError
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.steps.assign_wcs.wcs import imaging_wcs
from webbflow.steps.outlier_detection.kernel import HALO, abs_derivative, flag_direct, flag_resampled
from webbflow.steps.outlier_detection.step import OutlierDetectionStep, bad_bits
from webbflow.testing import DEFAULT_META, raise_if_dask_computes

FLAGS = {"do_not_use": dq.DO_NOT_USE, "outlier": dq.OUTLIER}
PASSES = {"snr1": 5.0, "snr2": 4.0, "scale1": 1.2, "scale2": 0.7}
BAD = dq.DO_NOT_USE | dq.OUTLIER


def _gaussian_star(ny: int, nx: int, y0: float, x0: float, peak: float, sigma: float = 1.2) -> np.ndarray:
    yy, xx = np.mgrid[:ny, :nx]
    return (peak * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sigma**2))).astype(np.float32)


def _aligned_set(rng: np.random.Generator, n: int = 3, shape: tuple[int, int] = (40, 50)):
    """``n`` noisy exposures of the same sky + star on one grid; their per-pixel median."""
    truth = 1.0 + _gaussian_star(*shape, 20.3, 25.6, peak=500.0)
    sigma = np.float32(0.1)
    scis = [(truth + rng.normal(0, sigma, shape)).astype(np.float32) for _ in range(n)]
    err = np.full(shape, sigma, np.float32)
    return scis, err, truth


def test_abs_derivative_by_hand() -> None:
    img = np.array([[0.0, 1.0, 3.0], [0.0, 5.0, np.nan]], np.float32)
    d = abs_derivative(img)
    # (0,0): |0-1|, |0-0| ; (0,1): |1-0|,|1-3|,|1-5| ; (1,1): |5-0|,|5-1|, NaN neighbour ignored
    np.testing.assert_array_equal(d[0], [1.0, 4.0, 2.0])
    assert d[1, 0] == 5.0 and d[1, 1] == 5.0 and np.isnan(d[1, 2])
    assert d.dtype == np.float32


def test_cosmic_ray_in_one_of_three_is_flagged_star_is_not() -> None:
    rng = np.random.default_rng(1)
    scis, err, truth = _aligned_set(rng)
    scis[1][10, 12] += 30.0  # a CR: 300 σ, far from the star
    scis[1][25, 25] += 30.0  # a CR 4.7 px from the star, whose 500 MJy/sr peak is in every exposure
    median = np.median(np.stack(scis), axis=0)
    zero_dq = np.zeros(truth.shape, np.uint32)
    outs = [
        assert_kernel_pure(
            flag_resampled,
            {"sci": s, "err": err, "dq": zero_dq, "blot": median},
            backg=0.0,
            **PASSES,
            **FLAGS,
        ).dq
        for s in scis
    ]
    assert outs[1][10, 12] == BAD and outs[1][25, 25] == BAD
    assert outs[1].dtype == np.uint32
    # nothing else anywhere: the star (peak 5000 σ) is in the median, and |∂B| absorbs its slope
    assert sum(int(np.count_nonzero(o)) for o in outs) == 2


def test_star_misaligned_by_a_fraction_of_a_pixel_is_protected_by_the_derivative() -> None:
    shape = (30, 30)
    sigma = np.float32(0.1)
    sci = 1.0 + _gaussian_star(*shape, 15.0, 15.0, peak=500.0)
    blot = 1.0 + _gaussian_star(*shape, 15.0, 15.08, peak=500.0)  # 0.08 px interpolation error
    err = np.full(shape, sigma, np.float32)
    zero_dq = np.zeros(shape, np.uint32)
    kw = {"sci": sci, "err": err, "dq": zero_dq, "blot": blot}
    flagged = flag_resampled(**kw, backg=0.0, **PASSES, **FLAGS).dq
    assert not flagged.any()
    # without the derivative term the residual of the slope (≫ 5 σ) would be flagged
    no_deriv = {**PASSES, "scale1": 0.0, "scale2": 0.0}
    assert flag_resampled(**kw, backg=0.0, **no_deriv, **FLAGS).dq.any()


def test_second_pass_flags_neighbours_above_lower_threshold() -> None:
    shape = (20, 20)
    err = np.ones(shape, np.float32)
    blot = np.zeros(shape, np.float32)
    sci = np.zeros(shape, np.float32)
    sci[10, 10] = 6.0  # > snr1 = 5: first pass
    sci[10, 11] = 4.5  # between snr2 and snr1, next to the core: second pass
    sci[10, 12] = 4.5  # same level but two pixels from the core: not flagged
    sci[3, 3] = 4.5  # isolated, below snr1: not flagged
    sci[9, 9] = 3.5  # next to the core but below snr2: not flagged
    out = flag_resampled(sci, err, np.zeros(shape, np.uint32), blot, backg=0.0, **PASSES, **FLAGS).dq
    assert set(zip(*np.nonzero(out), strict=True)) == {(10, 10), (10, 11)}


def test_background_level_and_do_not_use() -> None:
    shape = (12, 12)
    err = np.full(shape, 0.1, np.float32)
    blot = np.zeros(shape, np.float32)  # the sky-subtracted median
    sci = np.full(shape, 2.0, np.float32)  # the input still holds a sky of 2 MJy/sr
    sci[5, 5] = 10.0
    dq_in = np.zeros(shape, np.uint32)
    dq_in[5, 5] = dq.DO_NOT_USE | dq.SATURATED
    dq_in[2, 2] = dq.DO_NOT_USE
    sci[2, 2] = np.nan
    # without the sky every pixel is 20 σ off
    assert flag_resampled(sci, err, dq_in, blot, backg=0.0, **PASSES, **FLAGS).dq.all()
    out = flag_resampled(sci, err, dq_in, blot, backg=2.0, **PASSES, **FLAGS).dq
    # the DO_NOT_USE outlier is ignored (its DQ is unchanged) and flags no neighbour
    np.testing.assert_array_equal(out, dq_in)


def test_no_blot_no_flag() -> None:
    sci = np.full((6, 6), 50.0, np.float32)
    blot = np.full((6, 6), np.nan, np.float32)
    blot[:, :3] = 0.0
    out = flag_resampled(
        sci, np.ones_like(sci), np.zeros((6, 6), np.uint32), blot, backg=0.0, **PASSES, **FLAGS
    )
    assert (out.dq[:, :3] == BAD).all() and not out.dq[:, 3:].any()


def test_flag_direct() -> None:
    sci = np.array([[1.0, 9.0, 9.0, np.nan]], np.float32)
    err = np.array([[1.0, 1.0, np.nan, 1.0]], np.float32)
    dq_in = np.array([[0, 0, 0, dq.DO_NOT_USE]], np.uint32)
    out = flag_direct(sci, err, dq_in, np.ones_like(sci), snr=5.0, **FLAGS).dq
    # NaN error counts as 0 (as jwst); the NaN/DO_NOT_USE pixel is left alone
    np.testing.assert_array_equal(out, [[0, BAD, BAD, dq.DO_NOT_USE]])


@pytest.mark.parametrize("tiles", [(7, 9), (3, 50), (40, 4)])
def test_kernel_tiling_invariance(tiles: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    scis, err, _ = _aligned_set(rng)
    sci = scis[0].copy()
    hits = rng.integers(0, sci.size, 60)  # CRs of all strengths, many on tile edges
    sci.flat[hits] += rng.uniform(0.2, 5.0, hits.size).astype(np.float32)
    blot = np.median(np.stack(scis), axis=0).astype(np.float32)
    blot[:3, :] = np.nan
    arrays = {"sci": sci, "err": err, "dq": np.zeros(sci.shape, np.uint32), "blot": blot}
    whole = flag_resampled(**arrays, backg=0.0, **PASSES, **FLAGS).dq
    assert whole.any()

    def tiled(chunks: tuple[int, int]) -> np.ndarray:
        ds = xr.Dataset({k: (("y", "x"), v) for k, v in arrays.items()}).chunk(
            {"y": chunks[0], "x": chunks[1]}
        )
        out = map_tiles(
            flag_resampled,
            {k: ds[k] for k in arrays},
            {"dq": (("y", "x"), np.uint32)},
            like=ds,
            depth=HALO,
            kwargs={"backg": 0.0, **PASSES, **FLAGS},
        )
        return np.asarray(out["dq"].values)

    np.testing.assert_array_equal(tiled(tiles), whole)


def test_kernel_matches_stcal() -> None:
    utils = pytest.importorskip("stcal.outlier_detection.utils")
    rng = np.random.default_rng(3)
    scis, err, _ = _aligned_set(rng, n=4, shape=(60, 70))
    sci = scis[2].copy()
    hits = rng.integers(0, sci.size, 200)
    sci.flat[hits] += rng.uniform(0.0, 3.0, hits.size).astype(np.float32)
    blot = np.median(np.stack(scis), axis=0).astype(np.float32)
    blot[:, :5] = np.nan
    ours = flag_resampled(sci, err, np.zeros(sci.shape, np.uint32), blot, backg=0.05, **PASSES, **FLAGS).dq
    theirs = utils.flag_resampled_crs(sci, err, blot, 5.0, 4.0, 1.2, 0.7, 0.05)
    np.testing.assert_array_equal(ours != 0, theirs)
    assert theirs.sum() > 20


# -- the step on synthetic cal exposures -------------------------------------------------------

SKY_SIGMA = 0.02  # MJy/sr, read-noise-like floor
STAR_FREE = 7  # px from a star beyond which a pixel counts as star-free sky


def _meta(offset_arcsec: tuple[float, float], size: int, sky: float | None) -> dict[str, Any]:
    """NRCA1 meta at a pointing offset (east, north) from a field centre; a size² window."""
    ra0, dec0 = 53.16, -27.79
    dra = offset_arcsec[0] / 3600.0 / np.cos(np.radians(dec0))
    geom = Geometry.from_aperture("NRCA1_FULL", Pointing(ra0 + dra, dec0 + offset_arcsec[1] / 3600.0, 30.0))
    meta = copy.deepcopy(DEFAULT_META)
    for key, value in geom.meta().items():
        meta[key] = {**meta.get(key, {}), **value} if isinstance(value, dict) else value
    meta["subarray"].update(name="SUBARRAY", xstart=977, ystart=977, xsize=size, ysize=size)
    meta["exposure"].update(type="NRC_IMAGE", exposure_time=100.0)
    if sky is not None:
        meta["background"] = {"level": sky, "subtracted": False, "method": "match"}
    return meta


class Truth(NamedTuple):
    """What was injected: per exposure, the CR pixels (y, x) and the star-free pixel mask."""

    crs: list[np.ndarray]
    star_free: list[np.ndarray]


def _cal_set(
    offsets: list[tuple[float, float]],
    *,
    size: int = 96,
    chunks: int = 40,
    seed: int = 11,
    sky: bool = True,
    cr_sigma: tuple[float, float] = (15.0, 100.0),
) -> tuple[list[xr.Dataset], Truth]:
    """Dithered NRCA1 cal exposures of one star field with cosmic rays at known pixels."""
    rng = np.random.default_rng(seed)
    metas = [_meta(o, size, 0.3 + 0.02 * i if sky else None) for i, o in enumerate(offsets)]
    wcss = [imaging_wcs(m, size, size) for m in metas]
    star_xy = rng.uniform(15, size - 15, (6, 2))
    star_world = wcss[0](star_xy[:, 0], star_xy[:, 1])
    peaks = rng.uniform(2.0, 40.0, len(star_xy))  # MJy/sr
    yy, xx = np.mgrid[:size, :size]
    inputs, crs, free = [], [], []
    for meta, wcs in zip(metas, wcss, strict=True):
        sx, sy = wcs.invert(*star_world)
        flux = np.zeros((size, size))
        for x0, y0, peak in zip(sx, sy, peaks, strict=True):
            flux += peak * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * 1.1**2))
        var_poisson = 1e-4 * flux
        err = np.sqrt(SKY_SIGMA**2 + var_poisson)
        sci = flux + rng.normal(0, 1, flux.shape) * err + (meta.get("background", {}).get("level") or 0.0)
        dist = np.min(np.hypot(yy[..., None] - sy, xx[..., None] - sx), axis=-1)
        star_free = dist > STAR_FREE
        # CRs: single pixels of cr_sigma σ in the interior (covered by every dither), away from stars
        candidates = np.flatnonzero(star_free & (np.minimum(yy, xx) >= 10) & (np.maximum(yy, xx) < size - 10))
        hits = rng.choice(candidates, 25, replace=False)
        sci.flat[hits] += rng.uniform(*cr_sigma, hits.size) * SKY_SIGMA
        crs.append(np.array(np.unravel_index(hits, sci.shape)).T)
        free.append(star_free)
        data = {
            "sci": sci,
            "err": err,
            "var_poisson": var_poisson,
            "var_rnoise": np.full_like(sci, SKY_SIGMA**2),
            "var_flat": np.zeros_like(sci),
        }
        planes = {
            k: (("y", "x"), da.from_array(v.astype(np.float32), chunks=chunks)) for k, v in data.items()
        }
        planes["dq"] = (("y", "x"), da.zeros((size, size), dtype=np.uint32, chunks=chunks))
        coords = {"y": np.arange(976, 976 + size), "x": np.arange(976, 976 + size)}
        inputs.append(xr.Dataset(planes, coords=coords, attrs={"meta": meta, "wcs": wcs}))
    return inputs, Truth(crs, free)


def _dqs(outputs: list[xr.Dataset]) -> list[np.ndarray]:
    """Every output's dq, computed together (one median for all)."""
    return [np.asarray(a) for a in dask.compute(*(ds["dq"].data for ds in outputs))]


def _score(outputs: list[xr.Dataset], truth: Truth) -> tuple[float, float]:
    """(fraction of injected CRs flagged, false-positive fraction of star-free non-CR pixels)."""
    found = total = fp = sky = 0
    for dq_plane, crs, free in zip(_dqs(outputs), truth.crs, truth.star_free, strict=True):
        flagged = (dq_plane & BAD) == BAD
        found += int(flagged[crs[:, 0], crs[:, 1]].sum())
        total += len(crs)
        clean = free.copy()
        for y, x in crs:  # a CR's 3x3 neighbourhood may legitimately be flagged by the second pass
            clean[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = False
        fp += int((flagged & clean).sum())
        sky += int(clean.sum())
    return found / total, fp / sky


def test_step_without_resampling_same_pointing() -> None:
    inputs, truth = _cal_set([(0.0, 0.0)] * 4, sky=False)
    step = OutlierDetectionStep(resample_data=False)
    with raise_if_dask_computes():
        outputs = step(inputs)
    recovered, false_rate = _score(outputs, truth)
    assert recovered >= 0.95 and false_rate < 1e-3, (recovered, false_rate)
    for ds_in, ds_out in zip(inputs, outputs, strict=True):
        assert ds_out.attrs["meta"]["cal_step"]["outlier_detection"] == "COMPLETE"
        assert "cal_step" not in ds_in.attrs["meta"]  # inputs not modified
        np.testing.assert_array_equal(ds_out["sci"].values, ds_in["sci"].values)  # sci left as is
    assert step.intermediates is not None and step.intermediates.grid is None


def test_step_skips_single_exposure_and_checks_params() -> None:
    inputs, _ = _cal_set([(0.0, 0.0)], sky=False)
    (out,) = OutlierDetectionStep()(inputs)
    assert out.attrs["meta"]["cal_step"]["outlier_detection"] == "SKIPPED"
    with pytest.raises(UsageError, match="snr"):
        OutlierDetectionStep(snr="5.0")
    with pytest.raises(UsageError, match="good_bits"):
        OutlierDetectionStep(good_bits="NOT_A_FLAG")
    assert bad_bits("~DO_NOT_USE") == dq.DO_NOT_USE
    assert bad_bits(0) == 0xFFFFFFFF and bad_bits(None) == 0


DITHERS = [(0.0, 0.0), (0.1, 0.07), (-0.08, 0.12), (0.13, -0.05)]  # arcsec: 2-4 px steps


def test_step_dithered_recovers_cosmic_rays() -> None:
    inputs, truth = _cal_set(DITHERS)  # skymatch levels 0.30-0.36 MJy/sr, not subtracted
    step = OutlierDetectionStep()
    with raise_if_dask_computes():
        outputs = step(inputs)
    recovered, false_rate = _score(outputs, truth)
    assert recovered >= 0.95 and false_rate < 1e-3, (recovered, false_rate)
    assert step.intermediates is not None and step.intermediates.grid is not None
    for ds_in, ds_out in zip(inputs, outputs, strict=True):
        assert ds_out.attrs["wcs"] is ds_in.attrs["wcs"]
        assert ds_out["dq"].chunks == ds_in["dq"].chunks
        np.testing.assert_array_equal(ds_out["sci"].values, ds_in["sci"].values)


def test_step_tiling_invariant() -> None:
    one, _ = _cal_set(DITHERS[:3], chunks=96)
    many, _ = _cal_set(DITHERS[:3], chunks=23)
    for a, b in zip(_dqs(OutlierDetectionStep()(one)), _dqs(OutlierDetectionStep()(many)), strict=True):
        np.testing.assert_array_equal(a, b)


def _to_jwst(ds: xr.Dataset, i: int) -> Any:
    """Our cal Dataset as a jwst ImageModel (own exposure group, as ours)."""
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    model = datamodels.ImageModel(data=ds["sci"].values, err=ds["err"].values, dq=ds["dq"].values)
    for var in ("var_poisson", "var_rnoise", "var_flat"):
        setattr(model, var, ds[var].values)
    meta = ds.attrs["meta"]
    for key in ("name", "detector", "filter", "pupil", "channel", "module"):
        setattr(model.meta.instrument, key, meta["instrument"][key])
    model.meta.exposure.type = meta["exposure"]["type"]
    model.meta.exposure.exposure_time = meta["exposure"]["exposure_time"]
    model.meta.exposure.measurement_time = meta["exposure"]["exposure_time"]
    model.meta.exposure.start_time = meta["exposure"]["start_time"]
    model.meta.exposure.mid_time = meta["exposure"]["mid_time"]
    model.meta.exposure.end_time = meta["exposure"]["end_time"]
    model.meta.observation.date = meta["observation"]["date"]
    model.meta.observation.time = meta["observation"]["time"]
    model.meta.filename = f"in{i}_cal.fits"
    model.meta.group_id = f"exposure{i}"
    model.meta.wcs = wcs = ds.attrs["wcs"]
    for key in ("v2_ref", "v3_ref", "vparity", "v3yangle", "ra_ref", "dec_ref", "roll_ref"):
        setattr(model.meta.wcsinfo, key, meta["wcsinfo"][key])
    ny, nx = ds["sci"].shape  # jwst sizes its output grid from this window's S_REGION
    ra, dec = wcs(np.array([-0.5, nx - 0.5, nx - 0.5, -0.5]), np.array([-0.5, -0.5, ny - 0.5, ny - 0.5]))
    model.meta.wcsinfo.s_region = "POLYGON ICRS " + " ".join(
        f"{a:.9f} {d:.9f}" for a, d in zip(ra, dec, strict=True)
    )
    if "background" in meta:
        model.meta.background.level = meta["background"]["level"]
        model.meta.background.subtracted = meta["background"]["subtracted"]
    return model


@pytest.mark.slow
@pytest.mark.parametrize("resample_data", [True, False])
def test_jwst_oracle(resample_data: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("jwst")
    from oracle.jwst_runner import offline_crds_env

    for key, value in offline_crds_env(tmp_path / "crds").items():
        monkeypatch.setenv(key, value)
    from jwst.outlier_detection import OutlierDetectionStep as JwstStep

    # CRs from 3 σ: many sit near the thresholds, so the two implementations' noise terms are compared
    inputs, truth = _cal_set(DITHERS if resample_data else [(0.0, 0.0)] * 4, cr_sigma=(3.0, 100.0))
    library = JwstStep.call([_to_jwst(ds, i) for i, ds in enumerate(inputs)], resample_data=resample_data)
    theirs = []
    with library:
        for model in library:
            theirs.append((model.dq & dq.OUTLIER) != 0)
            library.shelve(model, modify=False)
    ours = [
        (ds["dq"].values & dq.OUTLIER) != 0
        for ds in OutlierDetectionStep(resample_data=resample_data)(inputs)
    ]
    both = sum(int((a & b).sum()) for a, b in zip(ours, theirs, strict=True))
    either = sum(int((a | b).sum()) for a, b in zip(ours, theirs, strict=True))
    # report, then require the flagged sets to agree on (nearly) every pixel
    print(f"outlier oracle resample_data={resample_data}: {both}/{either} flagged pixels in common")
    assert both / either >= 0.95
    jwst_outputs = [xr.Dataset({"dq": (("y", "x"), np.where(t, BAD, 0).astype(np.uint32))}) for t in theirs]
    assert _score(jwst_outputs, truth)[0] >= 0.8


def test_params_match_jwst_imaging_spec() -> None:
    step_module = pytest.importorskip("jwst.outlier_detection.outlier_detection_step")
    configobj = pytest.importorskip("configobj")
    jwst_step = step_module.OutlierDetectionStep()
    spec = configobj.ConfigObj(jwst_step.spec.splitlines(), list_values=False)
    ours = {name: field.default for name, field in OutlierDetectionStep.Params.fields().items()}
    not_imaging = {"kernel_size", "threshold_percent", "rolling_window_width", "ifu_second_check"}
    not_ours = {"search_output_file", "pixmap_stepsize", "pixmap_order"}  # see the step's docstring
    for name in set(spec) - not_imaging - not_ours:
        assert ours[name] == getattr(jwst_step, name), name
    assert set(ours) - {"skip"} <= set(spec)
