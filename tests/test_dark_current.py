"""Tests of the dark_current step."""

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
from webbflow.engine.step import SkipStep
from webbflow.errors import ReferenceFileError, UsageError
from webbflow.model import meta_value
from webbflow.steps.dark_current.kernel import dark_kernel
from webbflow.steps.dark_current.step import DarkCurrentStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

NY, NX = 12, 11
#: frame-by-frame dark: frame k (0-based) holds 2 (k + 1) DN
DARK = (2.0 * np.arange(1, 21, dtype=np.float32))[:, None, None] * np.ones((1, NY, NX), np.float32)
DARK[0, 2, 2] = np.nan
DDQ = np.zeros((NY, NX), np.uint32)
DDQ[5, 5] = dq.HOT
SCI = np.full((2, 3, NY, NX), 100, np.float32)


def exposure(
    dark: np.ndarray = DARK,
    *,
    nframes: int = 2,
    groupgap: int = 1,
    dark_header: dict[str, int] | None = None,
    sci: np.ndarray = SCI,
    chunks: Any = None,
) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    ds = make_exposure(sci, chunks=chunks, meta={"exposure": {"nframes": nframes, "groupgap": groupgap}})
    header = {"NFRAMES": 1, "GROUPGAP": 0} if dark_header is None else dark_header
    ref = make_reference(
        {"sci": (("dark_group", "y", "x"), dark), "dq": (("y", "x"), DDQ)},
        ds,
        header=header,
        name="dark.fits",
    )
    return ds, {"dark": ref}


def test_frame_averaging_by_hand() -> None:
    # nframes=2, groupgap=1: group g averages frames 3g, 3g+1 -> mean 2(3g+1.5) = 6g + 3
    out = build_lazily(DarkCurrentStep(), *exposure())
    sci = out.sci.values
    np.testing.assert_array_equal(sci[1, :, 0, 0], [97, 91, 85])
    np.testing.assert_array_equal(sci[0, :, 2, 2], [98, 91, 85])  # NaN frame counts as 0
    assert out.pixeldq.values[5, 5] == dq.HOT and out.pixeldq.values.sum() == dq.HOT


def test_matching_readout_subtracts_group_by_group() -> None:
    out = build_lazily(DarkCurrentStep(), *exposure(dark_header={"NFRAMES": 2, "GROUPGAP": 1}))
    np.testing.assert_array_equal(out.sci.values[0, :, 0, 0], [98, 96, 94])
    np.testing.assert_array_equal(out.sci.values[0, :, 2, 2], [100, 96, 94])


def test_unmatchable_darks() -> None:
    ds, refs = exposure(dark_header={"NFRAMES": 4, "GROUPGAP": 0})
    with pytest.raises(SkipStep):
        DarkCurrentStep().build(ds, refs)
    with raise_if_dask_computes():
        out = DarkCurrentStep()(ds, FakeResolver(refs))
    assert meta_value(out, "cal_step.dark_sub") == "SKIPPED"
    ds, refs = exposure(nframes=4, groupgap=0, dark_header={"NFRAMES": 2, "GROUPGAP": 0})
    with pytest.raises(ReferenceFileError, match=r"dark\.fits"):
        DarkCurrentStep().build(ds, refs)


def test_too_few_frames() -> None:
    ds, refs = exposure(DARK[:7])  # needs 3*2 + 2*1 = 8 frames
    with pytest.raises(ReferenceFileError, match=r"dark\.fits.*7 frames.*needs 8"):
        DarkCurrentStep().build(ds, refs)
    ds, refs = exposure(DARK[:2], dark_header={"NFRAMES": 2, "GROUPGAP": 1})
    with pytest.raises(ReferenceFileError, match=r"dark\.fits.*2 groups.*needs 3"):
        DarkCurrentStep().build(ds, refs)


def test_parameters() -> None:
    with pytest.raises(UsageError, match="dark_output"):
        DarkCurrentStep(dark_output="mydark.fits")
    ds, refs = exposure()
    with raise_if_dask_computes():
        out = DarkCurrentStep(average_dark_current=0.05)(ds, FakeResolver(refs))
    np.testing.assert_array_equal(out.average_dark_current.values, np.float32(0.05))
    assert out.average_dark_current.dims == ("y", "x")
    assert out.average_dark_current.dtype == np.float32
    ds, refs = exposure(chunks=(5, 4))
    refs["dark"].attrs["header"]["AVDRKCUR"] = 0.002
    out = build_lazily(DarkCurrentStep(), ds, refs)
    assert out.average_dark_current.chunks == ds.pixeldq.chunks
    np.testing.assert_array_equal(out.average_dark_current.values, np.float32(0.002))
    out = build_lazily(DarkCurrentStep(), *exposure())
    np.testing.assert_array_equal(out.average_dark_current.values, 0)


def test_bookkeeping() -> None:
    ds, refs = exposure(chunks=(7, 9))
    with raise_if_dask_computes():
        out = DarkCurrentStep()(ds, FakeResolver(refs))
    assert meta_value(out, "cal_step.dark_sub") == "COMPLETE"
    assert meta_value(out, "ref_file.dark.name") == "dark.fits"
    assert meta_value(ds, "cal_step.dark_sub") is None


def random_builder(nframes: int = 4, groupgap: int = 2) -> Any:
    rng = np.random.default_rng(9)
    dark = np.cumsum(rng.normal(0.5, 2, (30, NY, NX)), axis=0).astype(np.float32)
    dark[rng.random(dark.shape) < 0.01] = np.nan
    sci = rng.normal(1000, 30, (2, 4, NY, NX)).astype(np.float32)
    return lambda chunks: exposure(dark, nframes=nframes, groupgap=groupgap, sci=sci, chunks=chunks)


def test_tiling_and_inputs() -> None:
    assert_tiling_invariant(DarkCurrentStep(), random_builder())
    assert_inputs_unchanged(DarkCurrentStep(), random_builder())
    assert_kernel_pure(
        dark_kernel,
        {"sci": SCI, "pixeldq": DDQ * 0, "dark": DARK, "dark_dq": DDQ},
        planes=np.array([[0, 1], [3, 4], [6, 7]]),
    )


@pytest.mark.parametrize(("nframes", "groupgap"), [(1, 0), (4, 2), (3, 0), (1, 5)])
def test_matches_stcal(nframes: int, groupgap: int) -> None:
    dark_sub = pytest.importorskip("stcal.dark_current.dark_sub")
    dark_class = pytest.importorskip("stcal.dark_current.dark_class")
    ds, refs = random_builder(nframes, groupgap)((7, 9))
    sci_data = dark_class.ScienceData()
    sci_data.data = ds.sci.values.copy()
    sci_data.groupdq = ds.groupdq.values.copy()
    sci_data.pixeldq = ds.pixeldq.values.copy()
    sci_data.exp_nframes, sci_data.exp_groupgap = nframes, groupgap
    dark_data = dark_class.DarkData()
    dark_data.data = refs["dark"].sci.values.copy()
    dark_data.groupdq = refs["dark"].dq.values.copy()
    dark_data.exp_nframes, dark_data.exp_groupgap = 1, 0
    dark_data.exp_ngroups = dark_data.data.shape[0]
    expected, _ = dark_sub.do_correction_data(sci_data, dark_data)
    out = build_lazily(DarkCurrentStep(), ds, refs)
    diff = np.abs(out.sci.values - expected.data).max()
    print(f"dark vs stcal (nframes={nframes}, groupgap={groupgap}): max |diff| = {diff:.3g} DN")
    np.testing.assert_allclose(out.sci.values, expected.data, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(out.pixeldq.values, expected.pixeldq)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(DarkCurrentStep)
