"""MIRI Detector1: the instrument's step order, its skips, MIRI refpix, and a whole run.

The exposure is a synthetic MIRI SUB128 FASTR1 ramp (3 integrations × 10 groups, a 30 DN/s
background, three sources, reset anomaly, non-linearity, read noise, jumps) with reference
files built for it (:mod:`oracle.miri_inputs`); dark is N/A until the embedded MIRI defaults
carry a per-integration dark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest

from oracle.miri_inputs import BACKGROUND, write_miri_references, write_miri_uncal
from webbflow import dq
from webbflow.errors import UsageError
from webbflow.graphs.detector1 import MIRI_ORDER, NIR_ORDER, Detector1, order_for
from webbflow.model import get_meta, split_rate
from webbflow.steps.ipc.kernel import ipc_kernel
from webbflow.steps.refpix.miri import apply_miri_refpix, miri_refpix_offsets
from webbflow.testing import make_exposure

NINTS, NGROUPS = 3, 10


def override_steps(ds: Any, refs: dict[str, Path]) -> dict[str, dict[str, str]]:
    """``override_<reftype>`` of every step that runs on ``ds``: the given files, else N/A."""
    return {
        name: {f"override_{r}": str(refs.get(r, "N/A")) for r in step.reftypes}
        for name, step in Detector1().active_steps(ds).items()
        if step.reftypes
    }


def test_order_follows_the_instrument() -> None:
    nir = make_exposure(np.zeros((1, 3, 8, 8), np.float32))
    miri = make_exposure(
        np.zeros((1, 3, 8, 8), np.float32), meta={"instrument": {"name": "MIRI", "detector": "MIRIMAGE"}}
    )
    assert order_for(nir) == NIR_ORDER and order_for(miri) == MIRI_ORDER
    pipe = Detector1(steps={"rscd": {"skip": True}, "reset": {"skip": True}, "superbias": {"skip": True}})
    assert list(pipe.active_steps(miri))[:5] == ["group_scale", "dq_init", "emicorr", "saturation", "ipc"]
    assert list(pipe.active_steps(miri))[-4:] == ["jump", "clean_flicker_noise", "ramp_fit", "gain_scale"]
    assert pipe.active_steps(miri)["rscd"].params.skip
    assert {"superbias", "persistence", "charge_migration"}.isdisjoint(pipe.active_steps(miri))
    assert {"emicorr", "firstframe", "lastframe", "reset", "rscd"}.isdisjoint(pipe.active_steps(nir))
    for name in ("emicorr", "firstframe", "lastframe", "reset", "rscd"):
        assert name in Detector1.step_names
    with pytest.raises(UsageError, match="no step"):
        Detector1(steps={"rscdd": {}})


@pytest.fixture(scope="module")
def miri_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from webbflow.io.fits_reader import open_exposure

    work = tmp_path_factory.mktemp("miri_d1")
    uncal = write_miri_uncal(
        work / "jw09999001001_01101_00001_mirimage_uncal.fits", "SUB128", NINTS, NGROUPS, tile=64
    )
    refs = write_miri_references(work / "refs", "SUB128", NINTS, NGROUPS)
    results = {}
    for tile in (64, 128):
        ds = open_exposure(uncal, tile=tile)
        out = Detector1(steps=override_steps(ds, refs))(ds)
        rate, rateints = dask.compute(*split_rate(out))
        results[tile] = (get_meta(out), rate, rateints)
    return {"uncal": uncal, "refs": refs, "results": results}


def test_miri_pipeline_runs_the_miri_steps(miri_run: dict[str, Any]) -> None:
    meta = miri_run["results"][64][0]
    cal = meta["cal_step"]
    for name in ("dq_init", "saturation", "lastframe", "reset", "linearity", "rscd", "jump", "ramp_fit"):
        assert cal[name] == "COMPLETE", name
    # jwst 3.0 defaults: emicorr and firstframe skipped; no MIRI IPC; refpix is full-frame only
    for name in ("emicorr", "firstframe", "ipc", "refpix"):
        assert cal[name] == "SKIPPED", name
    assert not {"superbias", "persistence", "charge_migration"} & set(cal)


def test_miri_rates_recover_the_input(miri_run: dict[str, Any]) -> None:
    _, rate, rateints = miri_run["results"][64]
    sci = rate.sci.values
    assert rate.sci.shape == (128, 136) and rateints.sci.shape == (NINTS, 128, 136)
    science = sci[:, 8:120]
    # background: 30 DN/s; rate per pixel noise ~ a few DN/s, median of ~14000 pixels
    assert np.nanmedian(science) == pytest.approx(BACKGROUND, rel=0.03)
    # the 4000 DN/s source at (40, 30) of the window: peak 4000 / (2 pi 1.5^2) DN/s on the background
    assert sci[40, 30] == pytest.approx(4000 / (2 * np.pi * 1.5**2) + BACKGROUND, rel=0.05)
    # the three integrations agree with the combined rate
    assert np.nanmedian(rateints.sci.values[:, :, 8:120], axis=(1, 2)) == pytest.approx(
        [BACKGROUND] * 3, rel=0.03
    )
    dqv = rate.dq.values
    assert (dqv[:, :4] & dq.REFERENCE_PIXEL).all() and not (dqv[:, 8:] & dq.REFERENCE_PIXEL).any()
    assert dqv[128 // 3, 136 // 2] & dq.DO_NOT_USE and dqv[128 // 3, 136 // 2] & dq.DEAD
    # jumps were injected in ~0.3 % of the pixels per integration and are flagged
    assert 0.002 < (dqv & dq.JUMP_DET != 0).mean() < 0.05


def test_miri_pipeline_is_tile_exact(miri_run: dict[str, Any]) -> None:
    (_, a, ai), (_, b, bi) = miri_run["results"][64], miri_run["results"][128]
    np.testing.assert_array_equal(a.sci.values, b.sci.values)
    np.testing.assert_array_equal(ai.dq.values, bi.dq.values)


# -- MIRI reference-pixel correction -------------------------------------------------------------
def full_frame_ramp(
    rng: np.random.Generator, nint: int = 2, ngroup: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """A full MIRI frame whose every group g carries offset[i, g, x mod 4, y mod 2]."""
    offsets = rng.normal(0, 20, (nint, ngroup, 4, 2)).astype(np.float32)
    y, x = np.mgrid[0:1024, 0:1032]
    sci = 10000 + rng.normal(0, 3, (nint, ngroup, 1024, 1032)) + offsets[:, :, x % 4, y % 2]
    sci += (np.arange(ngroup) * 50.0)[None, :, None, None] * (x >= 4) * (x < 1028)
    return sci.astype(np.float32), offsets


def test_miri_refpix_removes_amplifier_offsets() -> None:
    rng = np.random.default_rng(3)
    sci, offsets = full_frame_ramp(rng)
    left, right = sci[..., 0:4], sci[..., 1028:1032]
    pdq = np.zeros((1024, 4), np.uint32)
    pdq[::7, 1] = dq.DO_NOT_USE  # excluded pixels do not matter
    left[:, :, ::7, 1] = 1e6
    got = miri_refpix_offsets(
        left, right, pdq, pdq, odd_even_rows=True, siglimit=3.0, do_not_use=dq.DO_NOT_USE
    )
    want = offsets - offsets[:, :1]  # relative to the first group, which is left unchanged
    np.testing.assert_allclose(got, want, atol=0.3)
    assert (got[:, 0] == 0).all()
    out = apply_miri_refpix(sci, np.arange(1024), np.arange(1032), got)
    resid = out[:, :, 100:900, 100:900] - out[:, :1, 100:900, 100:900]
    expect = (np.arange(4) * 50.0)[None, :, None, None]
    assert np.abs(resid.mean(axis=(2, 3)) - expect[..., 0, 0]).max() < 0.1


def test_miri_refpix_step_full_frame_is_tile_exact() -> None:
    from webbflow.steps.refpix.step import RefPixStep

    rng = np.random.default_rng(4)
    sci, _ = full_frame_ramp(rng, nint=1, ngroup=3)
    meta = {
        "instrument": {"name": "MIRI", "detector": "MIRIMAGE"},
        "subarray": {"name": "FULL", "xstart": 1, "ystart": 1},
    }
    one = RefPixStep()(make_exposure(sci, meta=meta))
    tiled = RefPixStep()(make_exposure(sci, meta=meta, chunks=(256, 300)))
    assert get_meta(tiled)["cal_step"]["refpix"] == "COMPLETE"
    np.testing.assert_array_equal(one.sci.values, tiled.sci.values)
    sub = RefPixStep()(make_exposure(sci[..., :64, :72], meta={**meta, "subarray": {"name": "SUB64"}}))
    assert get_meta(sub)["cal_step"]["refpix"] == "SKIPPED"


def test_miri_refpix_matches_jwst() -> None:
    pytest.importorskip("jwst")
    from jwst.refpix.reference_pixels import correct_model
    from stdatamodels.jwst.datamodels import RampModel

    rng = np.random.default_rng(5)
    sci, _ = full_frame_ramp(rng, nint=2, ngroup=3)
    model = RampModel(data=sci.copy(), pixeldq=np.zeros((1024, 1032), np.uint32))
    model.groupdq = np.zeros(sci.shape, np.uint8)
    model.meta.instrument.name, model.meta.instrument.detector = "MIRI", "MIRIMAGE"
    model.meta.subarray.name, model.meta.subarray.xstart, model.meta.subarray.ystart = "FULL", 1, 1
    model.meta.subarray.xsize, model.meta.subarray.ysize = 1032, 1024
    model.meta.exposure.readpatt = "FASTR1"
    conv = {
        "refpix_algorithm": "median",
        "sirs_kernel_model": None,
        "sigreject": 4.0,
        "gaussmooth": 1.0,
        "halfwidth": 30,
    }
    correct_model(model, True, True, 11, 1.0, True, conv, 3.0)
    offsets = miri_refpix_offsets(
        sci[..., 0:4],
        sci[..., 1028:],
        np.zeros((1024, 4), np.uint32),
        np.zeros((1024, 4), np.uint32),
        odd_even_rows=True,
        siglimit=3.0,
        do_not_use=dq.DO_NOT_USE,
    )
    ours = apply_miri_refpix(sci, np.arange(1024), np.arange(1032), offsets)
    diff = np.abs(ours - model.data)
    print(f"MIRI refpix vs jwst: max |diff| = {diff.max():.2e} DN")
    assert diff.max() < 2e-3  # float32 rounding of ~1e4 DN values


def test_ipc_kernel_miri_geometry() -> None:
    sci = np.ones((1, 1, 3, 8), np.float32)
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, 1], kernel[1, 2] = 1.0, -0.1  # out[x] = in[x] - 0.1 in[x - 1]
    out = ipc_kernel(
        sci, np.arange(3), np.arange(8), kernel=kernel, ref_border=(0, 4), frame_size=(1024, 1032)
    ).sci
    # row 0 is a science row for MIRI (no reference rows); columns 0-3 are reference columns, kept
    np.testing.assert_array_equal(out[0, 0, :, :4], 1.0)
    np.testing.assert_allclose(out[0, 0, :, 5:], 0.9)
    np.testing.assert_allclose(out[0, 0, :, 4], 1.0)  # its left neighbour is a zeroed reference pixel
