"""Tests of the dq_init step."""

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
from webbflow.errors import UsageError
from webbflow.model import meta_value
from webbflow.steps.dq_init.kernel import dq_init_kernel
from webbflow.steps.dq_init.step import DQInitStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

rng = np.random.default_rng(3)
SHAPE = (2, 4, 13, 16)
SCI = rng.normal(1000, 10, SHAPE).astype(np.float32)
MASK = np.zeros(SHAPE[2:], np.uint32)
MASK[2, 3] = dq.DO_NOT_USE | dq.HOT
MASK[5, 7] = dq.WARM
MASK[12, 15] = dq.DO_NOT_USE | dq.REFERENCE_PIXEL
PDQ = np.zeros(SHAPE[2:], np.uint32)
PDQ[5, 7] = dq.LOW_QE
GDQ = np.zeros(SHAPE, np.uint8)
GDQ[1, 2, 2, 3] = dq.JUMP_DET


def builder(chunks: Any) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    ds = make_exposure(SCI, groupdq=GDQ, pixeldq=PDQ, chunks=chunks)
    return ds, {"mask": make_reference({"dq": (("y", "x"), MASK)}, ds, name="mask.fits")}


def test_values_by_hand() -> None:
    ds, refs = builder(None)
    out = build_lazily(DQInitStep(), ds, refs)
    pdq = out.pixeldq.values
    gdq = out.groupdq.values
    assert pdq[2, 3] == dq.DO_NOT_USE | dq.HOT
    assert pdq[5, 7] == dq.WARM | dq.LOW_QE
    assert pdq[12, 15] == dq.DO_NOT_USE | dq.REFERENCE_PIXEL
    assert pdq.sum() == pdq[2, 3] + pdq[5, 7] + pdq[12, 15]
    # DO_NOT_USE from the mask goes into every group; other mask bits do not
    assert (gdq[:, :, 2, 3] & dq.DO_NOT_USE).all()
    assert gdq[1, 2, 2, 3] == dq.DO_NOT_USE | dq.JUMP_DET
    assert (gdq[:, :, 12, 15] == dq.DO_NOT_USE).all()
    assert (gdq[:, :, 5, 7] == 0).all()
    assert out.pixeldq.dtype == np.uint32 and out.groupdq.dtype == np.uint8
    np.testing.assert_array_equal(out.sci.values, SCI)


def test_creates_missing_dq_arrays() -> None:
    ds, refs = builder((7, 9))
    ds = ds.drop_vars(["groupdq", "pixeldq"])
    out = build_lazily(DQInitStep(), ds, refs)
    assert out.groupdq.dtype == np.uint8 and out.groupdq.shape == SHAPE
    assert out.groupdq.dims == ("integration", "group", "y", "x")
    np.testing.assert_array_equal(out.pixeldq.values, MASK)
    np.testing.assert_array_equal(out.groupdq.values[0, 0], (MASK & dq.DO_NOT_USE).astype(np.uint8))


def test_user_supplied_dq_not_built() -> None:
    with pytest.raises(UsageError, match="user_supplied_dq"):
        DQInitStep(user_supplied_dq="extra_dq.fits")


def test_bookkeeping() -> None:
    ds, refs = builder((7, 9))
    with raise_if_dask_computes():
        out = DQInitStep()(ds, FakeResolver(refs))
        skipped = DQInitStep()(ds, FakeResolver({"mask": None}))
    assert meta_value(out, "cal_step.dq_init") == "COMPLETE"
    assert meta_value(out, "ref_file.mask.name") == "mask.fits"
    assert meta_value(skipped, "cal_step.dq_init") == "SKIPPED"
    assert meta_value(skipped, "ref_file.mask.name") == "N/A"


def test_tiling_and_inputs() -> None:
    assert_tiling_invariant(DQInitStep(), builder)
    assert_inputs_unchanged(DQInitStep(), builder)
    assert_kernel_pure(
        dq_init_kernel, {"pixeldq": PDQ, "groupdq": GDQ, "mask": MASK}, do_not_use=dq.DO_NOT_USE
    )


def test_matches_jwst() -> None:
    dqi = pytest.importorskip("jwst.dq_init.dq_initialization")
    dm = pytest.importorskip("stdatamodels.jwst.datamodels")
    model = dm.RampModel(data=SCI.copy(), groupdq=GDQ.copy(), pixeldq=PDQ.copy())
    model.meta.subarray.xstart, model.meta.subarray.ystart = 1, 1
    model.meta.subarray.xsize, model.meta.subarray.ysize = SHAPE[3], SHAPE[2]
    model.meta.exposure.type = "NRC_IMAGE"
    mask = dm.MaskModel(dq=MASK.copy())
    mask.meta.subarray.xstart, mask.meta.subarray.ystart = 1, 1
    mask.meta.subarray.xsize, mask.meta.subarray.ysize = SHAPE[3], SHAPE[2]
    result = dqi.do_dqinit(model, mask)
    out = build_lazily(DQInitStep(), *builder((7, 9)))
    np.testing.assert_array_equal(out.pixeldq.values, result.pixeldq)
    np.testing.assert_array_equal(out.groupdq.values, result.groupdq)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(DQInitStep)
