"""clean_flicker_noise: closure on a NIRCam subarray with injected 1/f rows, tiling, jwst oracle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from webbflow import dq
from webbflow.steps.clean_flicker_noise.kernel import apply_correction, fit_plane, scene_mask
from webbflow.steps.clean_flicker_noise.step import CleanFlickerNoiseStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

NY = NX = 256
NGROUP = 5
GROUP_TIME = 10.73677
READ_NOISE = 10.0  # DN per read
CDS_NOISE = READ_NOISE * np.sqrt(2)  # the READNOISE reference value, DN
GAIN = 2.0
SKY = 2.0  # DN/s
FLICKER = 8.0  # DN rms of the per-read row offsets
META = {"subarray": {"name": "SUB256", "xstart": 1025, "ystart": 1025, "fastaxis": -1, "slowaxis": 2}}
SOURCES = ((60, 70), (128, 200), (200, 40), (180, 150))


def scene(seed: int = 3, nint: int = 1) -> dict[str, np.ndarray]:
    """Noisy ramps (DN) of sky + Gaussian sources, with and without per-read row offsets."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:NY, :NX]
    rate = np.full((NY, NX), SKY)
    for y0, x0 in SOURCES:
        rate += 60.0 * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * 2.5**2))
    t = GROUP_TIME * np.arange(1, NGROUP + 1)
    truth = rate * t[:, None, None] + rng.normal(0, READ_NOISE, (nint, NGROUP, NY, NX))
    rows = rng.normal(0, FLICKER, (nint, NGROUP, NY))[..., None]  # row-correlated per read
    gdq = np.zeros(truth.shape, np.uint8)
    return {
        "truth": truth.astype(np.float32),
        "sci": (truth + rows).astype(np.float32),
        "groupdq": gdq,
        "rate": rate,
    }


def exposure(sci: np.ndarray, chunks: Any) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    ds = make_exposure(sci, meta=META, chunks=chunks)
    refs = {
        "readnoise": make_reference(
            {"sci": (("y", "x"), np.full((NY, NX), READ_NOISE * np.sqrt(2), np.float32))}, ds
        ),
        "gain": make_reference({"sci": (("y", "x"), np.full((NY, NX), GAIN, np.float32))}, ds),
    }
    return ds, refs


def run(sci: np.ndarray, chunks: Any, **params: Any) -> np.ndarray:
    ds, refs = exposure(sci, chunks)
    with raise_if_dask_computes():
        out = CleanFlickerNoiseStep(skip=False, **params).build(ds, refs)
    return np.asarray(out.sci.values)


def row_offsets(ramp: np.ndarray) -> np.ndarray:
    """(nint, ngroup - 1, ny) per-row median of each group's signal since group 1, less its frame median."""
    rows = np.median(ramp[:, 1:] - ramp[:, :1], axis=-1)
    return rows - np.median(rows, axis=-1, keepdims=True)


def slope_row_rms(ramp: np.ndarray) -> float:
    """Rms over rows of the row medians of the least-squares slope image (first integration), DN/group."""
    g = np.arange(ramp.shape[1]) - (ramp.shape[1] - 1) / 2
    slope = np.tensordot(g / (g**2).sum(), ramp[0], axes=(0, 0))
    rows = np.median(slope, axis=-1)
    return float(np.std(rows - np.median(rows)))


def test_closure_removes_rows_and_keeps_flux() -> None:
    case = scene()
    out = run(case["sci"], (128, NX))  # full-width strips
    # one group difference: the injected rows (8 DN per read, 11 DN per difference) go
    floor, before, after = (float(np.std(row_offsets(r)[:, 0])) for r in (case["truth"], case["sci"], out))
    assert before > 10.0 and after < 1.5 * floor and before / after > 6.0
    # the rate (slope) image: each difference's residual row error adds up along the ramp
    floor, before, after = (slope_row_rms(r) for r in (case["truth"], case["sci"], out))
    assert before / after > 3.0 and after < 3.0 * floor
    # source fluxes: aperture sums of the ramp's total signal, against the truth
    yy, xx = np.mgrid[:NY, :NX]
    for y0, x0 in SOURCES:
        ap = (yy - y0) ** 2 + (xx - x0) ** 2 <= 8**2
        got = float((out[0, -1] - out[0, 0])[ap].sum())
        want = float((case["truth"][0, -1] - case["truth"][0, 0])[ap].sum())
        noise = READ_NOISE * np.sqrt(2 * ap.sum())
        assert abs(got - want) < 3 * noise + 0.02 * want
    assert np.allclose(out[:, 0], case["sci"][:, 0])  # the first group is the reference


def test_same_result_for_strips_square_tiles_and_one_tile() -> None:
    case = scene(seed=5, nint=2)
    strips = run(case["sci"], (64, NX))
    square = run(case["sci"], 96)
    one = run(case["sci"], None)
    np.testing.assert_array_equal(strips, one)
    np.testing.assert_array_equal(square, one)


def test_niriss_orientation_medians_along_y() -> None:
    """NIRISS reads along DMS y: columns carry the flicker, and it is removed."""
    rng = np.random.default_rng(9)
    truth = (SKY * GROUP_TIME * np.arange(1, 4)[:, None, None] + rng.normal(0, 5, (3, 64, 64)))[None]
    cols = rng.normal(0, 12, (1, 3, 1, 64))
    meta = {
        "instrument": {"name": "NIRISS", "detector": "NIS"},
        "exposure": {"type": "NIS_IMAGE"},
        "subarray": {"name": "SUB64", "xstart": 1000, "ystart": 1000, "fastaxis": -2, "slowaxis": -1},
    }
    ds = make_exposure((truth + cols).astype(np.float32), meta=meta, chunks=(32, 64))
    user = np.ones((64, 64), bool)
    fit = [fit_plane(ds.sci.values[0, j], ds.sci.values[0, j + 1], ds.groupdq.values[0, j + 1], user,
                     median_axis=0, nchannels=1, background_method="median", n_sigma=2.0, unusable=5)
           for j in range(2)]  # fmt: skip
    out = apply_correction(
        ds.sci.values,
        np.array([[f.background for f in fit]]),
        np.array([[f.stripes for f in fit]]),
        np.array([[f.usable for f in fit]]),
        np.zeros(64, int),
        median_axis=0,
    )
    columns = np.median(out[0, 1] - out[0, 0], axis=0)  # median along y, per column
    injected = cols[0, 1, 0] - cols[0, 0, 0]
    assert np.std(columns) < 0.2 * np.std(injected)  # measured 0.12


def test_scene_mask_clips_sources_and_bad_values() -> None:
    rng = np.random.default_rng(1)
    rate = rng.normal(1.0, 0.05, (50, 60)).astype(np.float32)
    rate[10, 10] = 50.0  # source
    rate[20, 20] = -5.0  # bad low value
    rate[30, 30] = np.nan
    rate[40, 40] = 0.0
    mask = scene_mask(rate, n_sigma=2.0, single_mask=True)[0]
    assert not mask[10, 10] and not mask[20, 20] and not mask[30, 30] and not mask[40, 40]
    assert 0.9 < mask.mean() < 0.99  # 2-sigma upper clip drops ~2-3 % of the noise


def test_jump_and_do_not_use_groups_are_left_out_of_the_fit() -> None:
    first = np.zeros((8, 8), np.float32)
    second = np.full((8, 8), 10.0, np.float32)
    second[:, 0] = 1000.0  # a jump in column 0 of every row
    gdq = np.zeros((8, 8), np.uint8)
    gdq[:, 0] = dq.JUMP_DET
    fit = fit_plane(first, second, gdq, np.ones((8, 8), bool), median_axis=1, nchannels=1,
                    background_method=None, n_sigma=0.0, unusable=dq.DO_NOT_USE | dq.JUMP_DET)  # fmt: skip
    np.testing.assert_allclose(fit.stripes[:, 0], 10.0)


def test_skipped_by_default_and_fft_skips_for_imaging() -> None:
    case = scene()
    ds, _ = exposure(case["sci"], None)
    assert CleanFlickerNoiseStep.Params().skip is True
    out = CleanFlickerNoiseStep()(ds)
    assert out.attrs["meta"]["cal_step"]["clean_flicker_noise"] == "SKIPPED"
    out = CleanFlickerNoiseStep(skip=False, fit_method="fft", user_mask=None)
    from webbflow.engine.step import SkipStep

    with pytest.raises(SkipStep):
        out.build(ds, {})


def test_user_mask_file(tmp_path: Path) -> None:
    case = scene(seed=7)
    yy, xx = np.mgrid[:NY, :NX]
    mask = np.ones((NY, NX), np.uint8)
    for y0, x0 in SOURCES:
        mask[(yy - y0) ** 2 + (xx - x0) ** 2 <= 10**2] = 0
    path = tmp_path / "mask.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(mask, name="SCI")]).writeto(path)
    out = run(case["sci"], (128, NX), user_mask=str(path))
    floor, before, after = (float(np.std(row_offsets(r)[:, 0])) for r in (case["truth"], case["sci"], out))
    assert after < 1.5 * floor and before / after > 6.0


# -- oracle: jwst 3.0's CleanFlickerNoiseStep on the same RampModel --------------------------------
JWST_SCRIPT = """
import json, sys
import numpy as np
from stdatamodels.jwst import datamodels
import jwst.clean_flicker_noise.clean_flicker_noise as cfn
from jwst.clean_flicker_noise import CleanFlickerNoiseStep
from jwst.ramp_fitting import RampFitStep

stem = sys.argv[1]
arrays = np.load(stem + ".npz")
case = json.load(open(stem + ".json"))

def make_rate(model, input_dir="", return_cube=False):
    rate, rateints = RampFitStep.call(model, override_gain=stem + "_gain.fits",
                                      override_readnoise=stem + "_readnoise.fits")
    return rateints if return_cube else rate

cfn.make_rate = make_rate

def set_meta(model, meta):
    for path, value in meta.items():
        node = model.meta
        *parents, leaf = path.split(".")
        for part in parents:
            node = getattr(node, part)
        setattr(node, leaf, value)

full_meta = {k: v for k, v in case["meta"].items() if k.startswith("instrument.")}
full_meta.update({"subarray.name": "FULL", "subarray.xstart": 1, "subarray.ystart": 1,
                  "subarray.xsize": 2048, "subarray.ysize": 2048, "subarray.fastaxis": -1,
                  "subarray.slowaxis": 2, "description": "test", "author": "test", "pedigree": "DUMMY",
                  "useafter": "2020-01-01T00:00:00", "reftype": "GAIN"})
for kind, value in (("gain", case["gain"]), ("readnoise", case["readnoise"])):
    ref = (datamodels.GainModel if kind == "gain" else datamodels.ReadnoiseModel)(
        data=np.full((2048, 2048), value, np.float32))
    set_meta(ref, dict(full_meta, reftype=kind.upper()))
    ref.save(stem + "_" + kind + ".fits")

model = datamodels.RampModel(data=arrays["sci"], groupdq=arrays["groupdq"], pixeldq=arrays["pixeldq"])
set_meta(model, case["meta"])
out = CleanFlickerNoiseStep.call(model, skip=False, **case["params"])
np.save(stem + "_jwst.npy", out.data)
print(out.meta.cal_step.clean_flicker_noise)
"""

JWST_META = {
    "instrument.name": "NIRCAM",
    "instrument.detector": "NRCA1",
    "instrument.channel": "SHORT",
    "instrument.module": "A",
    "instrument.filter": "F200W",
    "instrument.pupil": "CLEAR",
    "exposure.type": "NRC_IMAGE",
    "exposure.readpatt": "RAPID",
    "exposure.nframes": 1,
    "exposure.groupgap": 0,
    "exposure.frame_time": GROUP_TIME,
    "exposure.group_time": GROUP_TIME,
    "exposure.drop_frames1": 0,
    "exposure.nints": 1,
    "exposure.ngroups": NGROUP,
    "exposure.start_time": 60000.0,
    "observation.date": "2026-01-01",
    "observation.time": "00:00:00",
    "subarray.name": "SUB256",
    "subarray.xstart": 1025,
    "subarray.ystart": 1025,
    "subarray.xsize": NX,
    "subarray.ysize": NY,
    "subarray.fastaxis": -1,
    "subarray.slowaxis": 2,
}


@pytest.mark.oracle
@pytest.mark.parametrize("params", [{}, {"background_method": None, "n_sigma": 3.0}])
def test_matches_jwst(tmp_path: Path, params: dict[str, Any]) -> None:
    pytest.importorskip("jwst")
    from oracle.jwst_runner import offline_crds_env

    case = scene(seed=11)
    gdq = case["groupdq"].copy()
    rng = np.random.default_rng(2)
    hit = rng.integers(0, NY, (30, 2))
    gdq[0, 3, hit[:, 0], hit[:, 1]] = dq.JUMP_DET
    sci = case["sci"].copy()
    sci[0, 3:, hit[:, 0], hit[:, 1]] += 800.0
    stem = str(tmp_path / "case")
    np.savez(stem + ".npz", sci=sci, groupdq=gdq, pixeldq=np.zeros((NY, NX), np.uint32))
    wire = {k: ("None" if v is None else v) for k, v in params.items()}
    Path(stem + ".json").write_text(
        json.dumps({"meta": JWST_META, "params": wire, "gain": GAIN, "readnoise": CDS_NOISE})
    )
    env = {**os.environ, **offline_crds_env(tmp_path / "crds")}
    proc = subprocess.run(
        [sys.executable, "-c", JWST_SCRIPT, stem], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "COMPLETE"
    want = np.load(stem + "_jwst.npy")
    assert np.abs(want - sci).max() > 5.0  # jwst did correct

    ds = make_exposure(sci, groupdq=gdq, meta=META, chunks=(128, NX))
    refs = exposure(sci, (128, NX))[1]
    got = CleanFlickerNoiseStep(skip=False, **params).build(ds, refs).sci.values
    diff = np.abs(got - want)
    rel = diff / READ_NOISE
    print(f"params={params}: max |webbflow - jwst| = {diff.max():.3g} DN = {rel.max():.3g} read noise; "
          f"99.9th pct {np.percentile(diff, 99.9):.3g} DN")  # fmt: skip
    assert np.percentile(rel, 99.9) < 0.01
    assert rel.max() < 0.1
