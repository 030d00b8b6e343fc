"""Tests of the ipc step."""

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
from webbflow.errors import ReferenceFileError
from webbflow.model import meta_value
from webbflow.steps.ipc.kernel import ipc_kernel
from webbflow.steps.ipc.step import IPCStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

# asymmetric, so that convolution vs correlation is visible
KERNEL = np.array([[0.001, -0.004, 0.002], [-0.006, 1.02, -0.005], [0.003, -0.007, 0.0005]], np.float32)


def exposure(
    sci: np.ndarray, kernel: np.ndarray = KERNEL, *, start: int = 1, chunks: Any = None
) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    ds = make_exposure(sci, chunks=chunks, meta={"subarray": {"xstart": start, "ystart": start}})
    ref = make_reference({"kernel": (("ky", "kx"), kernel)}, ds, name="ipc.fits")
    return ds, {"ipc": ref}


def test_delta_is_convolved_with_kernel() -> None:
    sci = np.zeros((1, 2, 16, 16), np.float32)
    sci[0, :, 8, 8] = 1000
    out = build_lazily(IPCStep(), *exposure(sci, start=101)).sci.values[0, 1]
    expected = np.zeros((16, 16), np.float32)
    # out[y, x] = sum_jk K[j, k] data[y + 1 - j, x + 1 - k]  ->  out[8+a, 8+b] = 1000 K[1+a, 1+b]
    expected[7:10, 7:10] = 1000 * KERNEL
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)
    assert out[9, 8] == pytest.approx(1000 * KERNEL[2, 1])  # -7: kernel row 2 lands below
    assert out[8, 7] == pytest.approx(1000 * KERNEL[1, 0])


def test_reference_pixels_and_edges() -> None:
    sci = np.full((1, 1, 12, 12), 100, np.float32)
    out = build_lazily(IPCStep(), *exposure(sci, start=1)).sci.values[0, 0]
    total = KERNEL.astype(np.float64).sum()
    # full-frame rows/columns 0-3 are reference pixels: unchanged, and not used as input
    np.testing.assert_array_equal(out[:4], 100)
    np.testing.assert_array_equal(out[:, :4], 100)
    assert out[7, 7] == pytest.approx(100 * total, rel=1e-6)
    # row 4 borders reference row 3 (zero input): kernel row 2 terms drop out
    assert out[4, 7] == pytest.approx(100 * (total - KERNEL[2].sum()), rel=1e-6)
    # row 11 is the last row of the array: kernel row 0 terms (data row 12) drop out
    assert out[11, 7] == pytest.approx(100 * (total - KERNEL[0].sum()), rel=1e-6)
    assert out[4, 4] == pytest.approx(100 * KERNEL[:2, :2].sum(), rel=1e-6)


def random_builder(kernel: np.ndarray = KERNEL, start: int = 1) -> Any:
    sci = np.random.default_rng(2).normal(1000, 100, (2, 3, 20, 18)).astype(np.float32)
    return lambda chunks: exposure(sci, kernel, start=start, chunks=chunks)


def test_tiling_invariance() -> None:
    assert_tiling_invariant(IPCStep(), random_builder())
    assert_tiling_invariant(IPCStep(), random_builder(start=2030), tiles=(4, 5))
    k5 = np.random.default_rng(1).normal(0, 0.01, (5, 5)).astype(np.float32)
    k5[2, 2] = 1.05
    assert_tiling_invariant(IPCStep(), random_builder(k5))


def test_inputs_unchanged() -> None:
    assert_inputs_unchanged(IPCStep(), random_builder())
    sci = np.ones((1, 2, 6, 7), np.float32)
    assert_kernel_pure(
        ipc_kernel,
        {"sci": sci, "y": np.arange(6), "x": np.arange(7)},
        kernel=KERNEL,
        ref_border=4,
        frame_size=2048,
    )


def test_4d_kernel_rejected() -> None:
    ds, _ = exposure(np.zeros((1, 1, 8, 8), np.float32))
    ref = make_reference({"kernel": (("a", "b", "y", "x"), np.zeros((3, 3, 8, 8), np.float32))}, ds)
    with pytest.raises(ReferenceFileError, match="2-D"):
        IPCStep().build(ds, {"ipc": ref})


def test_bookkeeping() -> None:
    ds, refs = random_builder()((7, 9))
    with raise_if_dask_computes():
        out = IPCStep()(ds, FakeResolver(refs))
    assert meta_value(out, "cal_step.ipc") == "COMPLETE"
    assert meta_value(out, "ref_file.ipc.name") == "ipc.fits"


@pytest.mark.parametrize("start", [1, 101, 2035])
def test_matches_jwst(start: int) -> None:
    ipc_corr = pytest.importorskip("jwst.ipc.ipc_corr")
    ds, refs = random_builder(start=start)((7, 9))
    sci = ds.sci.values
    ny, nx = sci.shape[2:]
    s0 = start - 1
    nref = ipc_corr.NumRefPixels(
        bottom_rows=max(0, 4 - s0),
        top_rows=max(0, s0 + ny - 2044),
        left_columns=max(0, 4 - s0),
        right_columns=max(0, s0 + nx - 2044),
    )
    expected = sci.copy()
    for i in range(sci.shape[0]):
        for g in range(sci.shape[1]):
            ipc_corr.ipc_convolve(expected[i, g], KERNEL, nref)
    ours = build_lazily(IPCStep(), ds, refs).sci.values
    diff = np.abs(ours - expected).max()
    print(f"ipc vs jwst (start={start}): max |diff| = {diff:.3g} DN")
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-3)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(IPCStep)
