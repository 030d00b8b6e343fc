"""gain_scale: GAINFACT scaling of rate and rateints, skip without it."""

from __future__ import annotations

import numpy as np

from webbflow.steps.gain_scale.kernel import gain_scale_kernel
from webbflow.steps.gain_scale.step import GainScaleStep
from webbflow.steps.ramp_fit.step import RampFitStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes


def _rate_exposure(header):
    rng = np.random.default_rng(0)
    sci = np.cumsum(rng.uniform(0, 20, (2, 5, 6, 8)), axis=1).astype(np.float32)
    ds = make_exposure(sci, chunks=(4, 4))
    refs = {
        "readnoise": make_reference({"sci": (("y", "x"), np.full((6, 8), 6, np.float32))}, ds),
        "gain": make_reference({"sci": (("y", "x"), np.full((6, 8), 2, np.float32))}, ds, header=header),
    }
    return RampFitStep().build(ds, refs), refs


def test_kernel_scales_and_keeps_inputs() -> None:
    sci = np.array([[1.0, 2.0]], np.float32)
    copy = sci.copy()
    out = gain_scale_kernel(sci, sci, sci, sci, gain_factor=1.5)
    np.testing.assert_array_equal(out.sci, sci * np.float32(1.5))
    np.testing.assert_array_equal(out.var_rnoise, sci * np.float32(2.25))
    assert out.sci.dtype == np.float32
    np.testing.assert_array_equal(sci, copy)


def test_step_scales_rate_and_rateints() -> None:
    rate, refs = _rate_exposure({"GAINFACT": 2.0})
    with raise_if_dask_computes():
        out = GainScaleStep()(rate, resolver=_Resolver(refs["gain"]))
    assert out.attrs["meta"]["exposure"]["gain_factor"] == 2.0
    assert out.attrs["meta"]["cal_step"]["gain_scale"] == "COMPLETE"
    for suffix in ("", "_ints"):
        np.testing.assert_allclose(out["sci" + suffix], rate["sci" + suffix] * 2, rtol=1e-7)
        np.testing.assert_allclose(out["err" + suffix], rate["err" + suffix] * 2, rtol=1e-7)
        np.testing.assert_allclose(out["var_poisson" + suffix], rate["var_poisson" + suffix] * 4, rtol=1e-7)
        np.testing.assert_allclose(out["var_rnoise" + suffix], rate["var_rnoise" + suffix] * 4, rtol=1e-7)
        np.testing.assert_array_equal(out["dq" + suffix], rate["dq" + suffix])
        assert out["sci" + suffix].dtype == np.float32


def test_skipped_without_gainfact() -> None:
    rate, refs = _rate_exposure({})
    out = GainScaleStep()(rate, resolver=_Resolver(refs["gain"]))
    assert out.attrs["meta"]["cal_step"]["gain_scale"] == "SKIPPED"
    assert "gain_factor" not in out.attrs["meta"]["exposure"]
    np.testing.assert_array_equal(out.sci, rate.sci)


class _Resolver:
    """A resolver handing out one prepared gain reference."""

    def __init__(self, gain):
        self.gain = gain

    def resolve(self, reftype, ds, override):
        from pathlib import Path

        from webbflow.engine.step import RefFile

        return RefFile(reftype, Path("gain.fits"), "gain.fits")

    def open(self, ref, ds):
        return self.gain
