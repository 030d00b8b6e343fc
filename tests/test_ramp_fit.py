"""ramp_fit: exact values on hand-computable ramps, DQ rules, laziness, tiling invariance."""

from __future__ import annotations

import numpy as np
import pytest

from webbflow import dq
from webbflow.errors import UsageError
from webbflow.model import split_rate
from webbflow.steps.ramp_fit.kernel import ramp_fit_kernel
from webbflow.steps.ramp_fit.step import RampFitStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

GT = 10.73677  # group time = frame time, s (NIRCam full frame RAPID)
RN = 5.0  # single-read noise, DN
GAIN = 2.0  # e-/DN
FLAGS = {
    "do_not_use": dq.DO_NOT_USE,
    "saturated": dq.SATURATED,
    "jump_det": dq.JUMP_DET,
    "persistence": dq.PERSISTENCE,
    "no_gain_value": dq.NO_GAIN_VALUE,
    "chargeloss": dq.CHARGELOSS,
}


def fit(ramp: np.ndarray, gdq: np.ndarray | None = None, **kw):
    """Fit one pixel's ramps (nint, ngroup) with RN/GAIN/GT; returns the kernel result."""
    sci = np.asarray(ramp, np.float32).reshape(*np.shape(ramp), 1, 1)
    gdq = np.zeros(sci.shape, np.uint8) if gdq is None else np.asarray(gdq, np.uint8).reshape(sci.shape)
    kw = {"group_time": GT, "frame_time": GT, "nframes": 1, **FLAGS, **kw}
    return ramp_fit_kernel(
        sci,
        gdq,
        np.zeros((1, 1), np.uint32),
        np.full((1, 1), RN, np.float32),
        np.full((1, 1), GAIN, np.float32),
        **kw,
    )


def rnoise_var(n: int, t: float = GT) -> float:
    """Documented read-noise variance of an n-group segment: 12 sigma**2 / ((n**3 - n) t**2).

    sigma is the single-read noise over sqrt(2) (a frame difference has twice its variance).
    """
    sigma2 = RN**2 / 2.0
    return 12.0 * sigma2 / ((max(n, 2) ** 3 - max(n, 2)) * t**2)


def poisson_var(rate: float, n: int, t: float = GT) -> float:
    """Documented Poisson variance of an n-group segment: rate / (gain t (n - 1))."""
    return rate / (GAIN * t * max(n - 1, 1))


def test_noiseless_linear_ramp_exact() -> None:
    r = fit(100.0 + 5.0 * np.arange(10)[None])
    rate = 5.0 / GT
    vp, vr = poisson_var(rate, 10), rnoise_var(10)
    np.testing.assert_allclose(r.sci[0, 0], rate, rtol=1e-6)
    np.testing.assert_allclose(r.var_poisson[0, 0], vp, rtol=1e-6)
    np.testing.assert_allclose(r.var_rnoise[0, 0], vr, rtol=1e-6)
    np.testing.assert_allclose(r.err[0, 0], np.sqrt(vp + vr), rtol=1e-6)
    np.testing.assert_allclose(r.sci_ints[0, 0, 0], rate, rtol=1e-6)
    assert r.dq[0, 0] == 0 and r.dq_ints[0, 0, 0] == 0


def test_two_segments_around_jump() -> None:
    a, b = 3.0, 7.0  # DN/group before and after the jump at group 4
    ramp = np.where(np.arange(10) < 4, a * np.arange(10), 2000.0 + b * np.arange(10))
    gdq = np.zeros(10, np.uint8)
    gdq[4] = dq.JUMP_DET
    r = fit(ramp[None], gdq[None])
    # segments: groups 0-3 (n=4) and 4-9 (n=6; the jump group starts it)
    vr1, vr2 = rnoise_var(4), rnoise_var(6)
    mrate = b / GT  # median of 3 diffs of a and 5 diffs of b (the jump diff excluded)
    vp1, vp2 = poisson_var(mrate, 4), poisson_var(mrate, 6)
    slope = (a / GT / vr1 + b / GT / vr2) / (1 / vr1 + 1 / vr2)  # read-noise weighted
    np.testing.assert_allclose(r.sci[0, 0], slope, rtol=1e-6)
    np.testing.assert_allclose(r.var_rnoise[0, 0], 1 / (1 / vr1 + 1 / vr2), rtol=1e-6)
    np.testing.assert_allclose(r.var_poisson[0, 0], 1 / (1 / vp1 + 1 / vp2), rtol=1e-6)
    err_ints = np.sqrt(1 / (1 / (vp1 + vr1) + 1 / (vp2 + vr2)))
    np.testing.assert_allclose(r.err_ints[0, 0, 0], err_ints, rtol=1e-6)
    assert r.dq[0, 0] == dq.JUMP_DET and r.dq_ints[0, 0, 0] == dq.JUMP_DET


def test_saturation_after_group_3() -> None:
    ramp = 10.0 + 4.0 * np.arange(8)
    gdq = np.where(np.arange(8) >= 3, dq.SATURATED, 0)
    r = fit(ramp[None], gdq[None])
    np.testing.assert_allclose(r.sci[0, 0], 4.0 / GT, rtol=1e-6)
    np.testing.assert_allclose(r.var_poisson[0, 0], poisson_var(4.0 / GT, 3), rtol=1e-6)
    np.testing.assert_allclose(r.var_rnoise[0, 0], rnoise_var(3), rtol=1e-6)
    assert r.dq[0, 0] == dq.SATURATED and r.dq_ints[0, 0, 0] == dq.SATURATED


def test_one_group_exposure() -> None:
    r = fit(np.array([[40.0]]), frame_time=GT, nframes=1)
    t = (1 + 1) * GT / 2  # (nframes + 1) / 2 frame times
    np.testing.assert_allclose(r.sci[0, 0], 40.0 / t, rtol=1e-6)
    np.testing.assert_allclose(r.var_poisson[0, 0], poisson_var(40.0 / t, 1, t), rtol=1e-6)
    np.testing.assert_allclose(r.var_rnoise[0, 0], rnoise_var(1, t), rtol=1e-6)


def test_fully_saturated_and_first_group_only() -> None:
    sat = np.full((1, 6), dq.SATURATED, np.uint8)
    r = fit(np.arange(6.0)[None], sat)
    assert np.isnan(r.sci[0, 0]) and np.isnan(r.sci_ints[0, 0, 0])
    assert r.dq[0, 0] == dq.SATURATED | dq.DO_NOT_USE
    assert r.var_poisson[0, 0] == 0 and r.var_rnoise[0, 0] == 0 and r.err[0, 0] == 0
    first_only = sat.copy()
    first_only[0, 0] = 0
    suppressed = fit(30.0 + np.arange(6.0)[None], first_only)
    assert np.isnan(suppressed.sci[0, 0])
    assert suppressed.dq[0, 0] == dq.SATURATED | dq.DO_NOT_USE
    kept = fit(30.0 + np.arange(6.0)[None], first_only, suppress_one_group=False)
    np.testing.assert_allclose(kept.sci[0, 0], 30.0 / GT, rtol=1e-6)  # (nframes+1)/2 frame times
    assert kept.dq[0, 0] == dq.SATURATED


def test_zeroframe_used_when_first_group_saturated() -> None:
    sat = np.full((1, 6), dq.SATURATED, np.uint8)
    zf = np.full((1, 1, 1), 25.0, np.float32)
    r = fit(np.arange(6.0)[None], sat, suppress_one_group=False, zeroframe=zf, frame_time=GT / 4)
    np.testing.assert_allclose(r.sci[0, 0], 25.0 / (GT / 4), rtol=1e-6)
    assert r.dq[0, 0] == dq.SATURATED
    ignored = fit(np.arange(6.0)[None], sat, zeroframe=zf)  # suppress_one_group=True ignores it
    assert np.isnan(ignored.sci[0, 0])


def test_group_selection_equals_sliced_ramp() -> None:
    ramp = (3.0 * np.arange(10) + 0.2 * np.arange(10) ** 2)[None]
    selected = fit(ramp, exclude=np.isin(np.arange(10), [0, 1, 8, 9]))
    # excluded groups only count in the fit through their absence: same as the ramp 2..7
    sliced = fit(ramp[:, 2:8])
    np.testing.assert_allclose(selected.sci, sliced.sci, rtol=1e-6)
    np.testing.assert_allclose(selected.var_rnoise, sliced.var_rnoise, rtol=1e-6)


def test_integrations_combined_by_read_noise_weight() -> None:
    ramps = np.stack([2.0 * np.arange(6), 6.0 * np.arange(6)])
    r = fit(ramps)
    np.testing.assert_allclose(r.sci_ints[:, 0, 0], [2.0 / GT, 6.0 / GT], rtol=1e-6)
    np.testing.assert_allclose(r.sci[0, 0], 4.0 / GT, rtol=1e-6)  # equal read-noise weights
    np.testing.assert_allclose(r.var_rnoise[0, 0], rnoise_var(6) / 2, rtol=1e-6)


def _exposure(chunks=None, seed=3):
    rng = np.random.default_rng(seed)
    nint, ngroup, ny, nx = 2, 7, 23, 31
    sci = (
        np.cumsum(rng.uniform(0, 40, (nint, ngroup, ny, nx)), axis=1)
        + rng.normal(0, 5, (nint, ngroup, ny, nx))
    ).astype(np.float32)
    gdq = np.where(rng.random(sci.shape) < 0.05, dq.JUMP_DET, 0).astype(np.uint8)
    gdq[:, 5:][rng.random((nint, 2, ny, nx)) < 0.3] |= dq.SATURATED
    ds = make_exposure(sci, groupdq=gdq, chunks=chunks)
    refs = {
        "readnoise": make_reference(
            {"sci": (("y", "x"), rng.uniform(4, 9, (ny, nx)).astype(np.float32))}, ds
        ),
        "gain": make_reference({"sci": (("y", "x"), rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32))}, ds),
    }
    return ds, refs


def test_step_lazy_inputs_unchanged_and_products() -> None:
    ds, refs = _exposure(chunks=(8, 16))
    before = {k: v.values.copy() for k, v in ds.data_vars.items()}
    with raise_if_dask_computes():
        out = RampFitStep().build(ds, refs)
    assert set(out.data_vars) == {
        "sci",
        "err",
        "dq",
        "var_poisson",
        "var_rnoise",
        "sci_ints",
        "err_ints",
        "dq_ints",
        "var_poisson_ints",
        "var_rnoise_ints",
    }
    assert out.sci.dims == ("y", "x") and out.sci_ints.dims == ("integration", "y", "x")
    assert out.sci.dtype == np.float32 and out.dq.dtype == np.uint32
    assert out.attrs["meta"]["exposure"] == ds.attrs["meta"]["exposure"]
    np.testing.assert_array_equal(out.x, ds.x)
    out.compute()
    for k, v in before.items():
        np.testing.assert_array_equal(ds[k].values, v)
    rate, rateints = split_rate(out)
    assert (
        list(rate.data_vars) == list(rateints.data_vars) == ["sci", "err", "dq", "var_poisson", "var_rnoise"]
    )
    assert rateints.sci.dims == ("integration", "y", "x") and "integration" not in rate.dims
    assert rate.attrs == out.attrs


def test_tiling_invariance() -> None:
    results = []
    for chunks in ((7, 9), (16, 16), None):
        ds, refs = _exposure(chunks=chunks)
        results.append(RampFitStep().build(ds, refs).compute())
    for other in results[1:]:
        for name in results[0].data_vars:
            a, b = results[0][name].values, other[name].values
            assert a.tobytes() == b.tobytes(), name


def test_params() -> None:
    ds, refs = _exposure()
    with pytest.raises(UsageError, match="LIKELY"):
        RampFitStep(algorithm="LIKELY").build(ds, refs)
    with pytest.raises(UsageError, match="save_opt"):
        RampFitStep(save_opt=True).build(ds, refs)
    with pytest.raises(UsageError):
        RampFitStep(algorithm="GLS")
    RampFitStep(maximum_cores="all", int_name="x", opt_name="y")  # accepted
    a = RampFitStep(firstgroup=1, lastgroup=5).build(ds, refs).sci.values
    b = RampFitStep(firstgroup=5, lastgroup=1).build(ds, refs).sci.values  # ignored, as jwst
    c = RampFitStep().build(ds, refs).sci.values
    assert not np.array_equal(a, c, equal_nan=True)
    np.testing.assert_array_equal(b, c)
