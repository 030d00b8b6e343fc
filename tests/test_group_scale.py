"""Tests of the group_scale step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from _step_checks import (
    assert_inputs_unchanged,
    assert_kernel_pure,
    assert_params_match_jwst,
    assert_tiling_invariant,
    build_lazily,
)
from webbflow.engine.step import SkipStep
from webbflow.model import meta_value
from webbflow.steps.group_scale.kernel import group_scale_kernel
from webbflow.steps.group_scale.step import GroupScaleStep
from webbflow.testing import make_exposure, raise_if_dask_computes

SCI = np.arange(2 * 3 * 12 * 14, dtype=np.float32).reshape(2, 3, 12, 14)


def builder(nframes: int = 5, divisor: int | None = 4) -> Any:
    def build(chunks: Any) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
        meta = {"exposure": {"nframes": nframes, "frame_divisor": divisor}}
        return make_exposure(SCI, meta=meta, chunks=chunks), {}

    return build


def test_rescales_by_divisor_over_nframes() -> None:
    ds, refs = builder()(None)
    out = build_lazily(GroupScaleStep(), ds, refs)
    np.testing.assert_array_equal(out.sci.values, SCI * np.float32(4 / 5))
    assert out.sci.dtype == np.float32
    np.testing.assert_array_equal(out.groupdq.values, 0)


@pytest.mark.parametrize(("nframes", "divisor"), [(4, 4), (None, 4), (3, None)])
def test_skips_when_not_needed(nframes: int | None, divisor: int | None) -> None:
    ds, refs = builder(nframes, divisor)(None)  # type: ignore[arg-type]
    with pytest.raises(SkipStep):
        GroupScaleStep().build(ds, refs)
    with raise_if_dask_computes():
        out = GroupScaleStep()(ds)
    assert meta_value(out, "cal_step.group_scale") == "SKIPPED"
    assert out.sci is ds.sci or out.sci.data is ds.sci.data


def test_bookkeeping_complete() -> None:
    ds, _ = builder()(None)
    with raise_if_dask_computes():
        out = GroupScaleStep()(ds)
    assert meta_value(out, "cal_step.group_scale") == "COMPLETE"
    assert meta_value(ds, "cal_step.group_scale") is None


def test_tiling_and_inputs() -> None:
    assert_tiling_invariant(GroupScaleStep(), builder())
    assert_inputs_unchanged(GroupScaleStep(), builder())
    out = assert_kernel_pure(group_scale_kernel, {"sci": SCI}, scale=0.8)
    np.testing.assert_array_equal(out.sci, SCI * np.float32(0.8))


def test_matches_jwst() -> None:
    gs = pytest.importorskip("jwst.group_scale.group_scale")
    dm = pytest.importorskip("stdatamodels.jwst.datamodels")
    model = dm.RampModel(data=SCI.copy())
    model.meta.exposure.nframes = 5
    model.meta.exposure.frame_divisor = 4
    gs.do_correction(model)
    ds, refs = builder()(None)
    out = build_lazily(GroupScaleStep(), ds, refs)
    np.testing.assert_array_equal(out.sci.values, model.data)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(GroupScaleStep)
