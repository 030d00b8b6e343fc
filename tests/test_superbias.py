"""Tests of the superbias step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from _step_checks import (
    FakeResolver,
    assert_inputs_unchanged,
    assert_kernel_pure,
    assert_params_match_jwst,
    assert_tiling_invariant,
    build_lazily,
)
from webbflow import dq
from webbflow.model import meta_value
from webbflow.steps.superbias.kernel import superbias_kernel
from webbflow.steps.superbias.step import SuperBiasStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

rng = np.random.default_rng(5)
SHAPE = (2, 3, 14, 17)
SCI = rng.normal(12000, 50, SHAPE).astype(np.float32)
BIAS = rng.normal(11000, 30, SHAPE[2:]).astype(np.float32)
BIAS[3, 4] = np.nan
BDQ = np.zeros(SHAPE[2:], np.uint32)
BDQ[3, 4] = dq.UNRELIABLE_BIAS | dq.DO_NOT_USE
BDQ[6, 1] = dq.WARM
PDQ = np.zeros(SHAPE[2:], np.uint32)
PDQ[6, 1] = dq.HOT
ZF = rng.normal(11500, 50, (2, *SHAPE[2:])).astype(np.float32)
ZF[1, 2, 2] = 0


def builder(chunks: Any, zero_frame: bool = True) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    ds = make_exposure(
        SCI, pixeldq=PDQ, zeroframe=ZF, chunks=chunks, meta={"exposure": {"zero_frame": zero_frame}}
    )
    ref = make_reference(
        {"sci": (("y", "x"), BIAS), "err": (("y", "x"), BIAS * 0), "dq": (("y", "x"), BDQ)},
        ds,
        name="bias.fits",
    )
    return ds, {"superbias": ref}


def test_values_by_hand() -> None:
    out = build_lazily(SuperBiasStep(), *builder(None))
    sci = out.sci.values
    np.testing.assert_array_equal(sci[1, 2, 0, 0], SCI[1, 2, 0, 0] - BIAS[0, 0])
    assert sci[0, 1, 3, 4] == SCI[0, 1, 3, 4]  # NaN bias -> 0, no new flag
    np.testing.assert_array_equal(out.pixeldq.values, PDQ | BDQ)
    zf = out.zeroframe.values
    assert zf[1, 2, 2] == 0  # zero stays zero
    assert zf[0, 2, 2] == ZF[0, 2, 2] - BIAS[2, 2]
    assert zf[0, 3, 4] == ZF[0, 3, 4]


def test_zeroframe_left_alone_without_zero_frame_flag() -> None:
    out = build_lazily(SuperBiasStep(), *builder(None, zero_frame=False))
    np.testing.assert_array_equal(out.zeroframe.values, ZF)


def test_tiling_and_inputs() -> None:
    assert_tiling_invariant(SuperBiasStep(), builder)
    assert_inputs_unchanged(SuperBiasStep(), builder)
    assert_kernel_pure(
        superbias_kernel, {"sci": SCI, "pixeldq": PDQ, "bias": BIAS, "bias_dq": BDQ, "zeroframe": ZF}
    )


def test_bookkeeping() -> None:
    ds, refs = builder((7, 9))
    with raise_if_dask_computes():
        out = SuperBiasStep()(ds, FakeResolver(refs))
    assert meta_value(out, "cal_step.superbias") == "COMPLETE"
    assert meta_value(out, "ref_file.superbias.name") == "bias.fits"


def test_matches_jwst() -> None:
    bias_sub = pytest.importorskip("jwst.superbias.bias_sub")
    dm = pytest.importorskip("stdatamodels.jwst.datamodels")
    model = dm.RampModel(data=SCI.copy(), pixeldq=PDQ.copy(), zeroframe=ZF.copy())
    ref = dm.SuperBiasModel(data=BIAS.copy(), dq=BDQ.copy(), err=BIAS * 0)
    for m in (model, ref):
        m.meta.subarray.xstart, m.meta.subarray.ystart = 1, 1
        m.meta.subarray.xsize, m.meta.subarray.ysize = SHAPE[3], SHAPE[2]
    model.meta.exposure.zero_frame = True
    result = bias_sub.do_correction(model, ref)
    out = build_lazily(SuperBiasStep(), *builder((7, 9)))
    np.testing.assert_array_equal(out.sci.values, result.data)
    np.testing.assert_array_equal(out.pixeldq.values, result.pixeldq)
    np.testing.assert_array_equal(out.zeroframe.values, result.zeroframe)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(SuperBiasStep)
