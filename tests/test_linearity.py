"""Tests of the linearity step."""

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
from webbflow.errors import ReferenceFileError
from webbflow.model import meta_value
from webbflow.steps.linearity.kernel import linearity_kernel
from webbflow.steps.linearity.step import LinearityStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

NLC = dq.NO_LIN_CORR


def exposure(
    sci: np.ndarray,
    coeffs: np.ndarray,
    lin_dq: np.ndarray,
    *,
    gdq: Any = None,
    zf: Any = None,
    chunks: Any = None,
) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    ds = make_exposure(
        sci, groupdq=gdq, zeroframe=zf, chunks=chunks, meta={"exposure": {"zero_frame": zf is not None}}
    )
    ref = make_reference(
        {"coeffs": (("coeff", "y", "x"), coeffs), "dq": (("y", "x"), lin_dq)}, ds, name="lin.fits"
    )
    return ds, {"linearity": ref}


def test_values_by_hand() -> None:
    sci = np.full((1, 3, 10, 10), 1000, np.float32)
    coeffs = np.zeros((3, 10, 10), np.float32)
    coeffs[1] = 1
    coeffs[2] = 1e-5  # S + 1e-5 S^2: 1000 -> 1010
    coeffs[0, 2, 2] = 5.0  # offset: 1000 -> 1015
    coeffs[2, 4, 4] = np.nan  # NaN: no correction, NO_LIN_CORR
    coeffs[1, 6, 6] = 0  # zero linear term: no correction, NO_LIN_CORR
    lin_dq = np.zeros((10, 10), np.uint32)
    lin_dq[8, 8] = NLC  # flagged in the reference: no correction
    lin_dq[1, 1] = dq.WARM
    gdq = np.zeros(sci.shape, np.uint8)
    gdq[0, 2, 3, 3] = dq.SATURATED
    zf = np.full((1, 10, 10), 500, np.float32)
    zf[0, 0, 0] = 0
    out = build_lazily(LinearityStep(), *exposure(sci, coeffs, lin_dq, gdq=gdq, zf=zf))
    s = out.sci.values[0]
    assert s[0, 0, 0] == pytest.approx(1010)
    assert s[1, 2, 2] == pytest.approx(1015)
    assert list(s[:, 3, 3]) == pytest.approx([1010, 1010, 1000])  # saturated group untouched
    for y, x in ((4, 4), (6, 6), (8, 8)):
        assert (s[:, y, x] == 1000).all()
    pdq = out.pixeldq.values
    expected = np.zeros((10, 10), np.uint32)
    expected[4, 4] = expected[6, 6] = expected[8, 8] = NLC
    expected[1, 1] = dq.WARM
    np.testing.assert_array_equal(pdq, expected)
    z = out.zeroframe.values[0]
    assert z[0, 0] == 0 and z[5, 5] == pytest.approx(502.5) and z[4, 4] == 500


def random_case(seed: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (2, 5, 15, 19)
    sci = np.cumsum(rng.uniform(0, 8000, shape), axis=1).astype(np.float32)
    coeffs = np.stack(
        [
            rng.normal(0, 5, shape[2:]),
            rng.normal(1, 0.01, shape[2:]),
            rng.normal(2e-6, 1e-7, shape[2:]),
            rng.normal(1e-11, 1e-12, shape[2:]),
            rng.normal(-1e-16, 1e-17, shape[2:]),
        ]
    ).astype(np.float32)
    coeffs[3, 2, 5] = np.nan
    coeffs[1, 7, 1] = 0
    lin_dq = np.where(rng.random(shape[2:]) < 0.05, NLC, 0).astype(np.uint32)
    lin_dq[rng.random(shape[2:]) < 0.05] |= dq.HOT
    gdq = np.where(sci > 30000, dq.SATURATED, 0).astype(np.uint8)
    gdq[rng.random(shape) < 0.05] |= dq.JUMP_DET
    pdq = np.where(rng.random(shape[2:]) < 0.05, dq.DEAD, 0).astype(np.uint32)
    zf = rng.uniform(0, 3000, (2, *shape[2:])).astype(np.float32)
    zf[0, 3, 3] = 0
    return {"sci": sci, "groupdq": gdq, "pixeldq": pdq, "coeffs": coeffs, "lin_dq": lin_dq, "zeroframe": zf}


def random_builder(chunks: Any) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    c = random_case()
    ds = make_exposure(
        c["sci"],
        groupdq=c["groupdq"],
        pixeldq=c["pixeldq"],
        zeroframe=c["zeroframe"],
        chunks=chunks,
        meta={"exposure": {"zero_frame": True}},
    )
    ref = make_reference(
        {"coeffs": (("coeff", "y", "x"), c["coeffs"]), "dq": (("y", "x"), c["lin_dq"])}, ds, name="lin.fits"
    )
    return ds, {"linearity": ref}


def test_tiling_and_inputs() -> None:
    assert_tiling_invariant(LinearityStep(), random_builder)
    assert_inputs_unchanged(LinearityStep(), random_builder)
    assert_kernel_pure(linearity_kernel, random_case(), saturated=dq.SATURATED, no_lin_corr=NLC)


def test_too_few_coefficients() -> None:
    ds, refs = exposure(
        np.zeros((1, 2, 4, 4), np.float32), np.ones((1, 4, 4), np.float32), np.zeros((4, 4), np.uint32)
    )
    with pytest.raises(ReferenceFileError, match=r"lin\.fits"):
        LinearityStep().build(ds, refs)


def test_bookkeeping() -> None:
    ds, refs = random_builder((7, 9))
    with raise_if_dask_computes():
        out = LinearityStep()(ds, FakeResolver(refs))
    assert meta_value(out, "cal_step.linearity") == "COMPLETE"
    assert meta_value(out, "ref_file.linearity.name") == "lin.fits"


def test_matches_stcal() -> None:
    lin = pytest.importorskip("stcal.linearity.linearity")
    c = random_case()
    flags = {"SATURATED": dq.SATURATED, "NO_LIN_CORR": NLC}
    data, pdq, zf = lin.linearity_correction(
        c["sci"].copy(),
        c["groupdq"].copy(),
        c["pixeldq"].copy(),
        c["coeffs"].copy(),
        c["lin_dq"].copy(),
        flags,
        zframe=c["zeroframe"].copy(),
    )
    out = build_lazily(LinearityStep(), *random_builder((7, 9)))
    diff = np.abs(out.sci.values - data).max()
    print(
        f"linearity vs stcal: max |diff| = {diff:.3g} DN "
        f"(max value {data.max():.0f} DN); pixeldq identical: "
        f"{np.array_equal(out.pixeldq.values, pdq)}"
    )
    np.testing.assert_array_equal(out.sci.values, data)
    np.testing.assert_array_equal(out.pixeldq.values, pdq)
    np.testing.assert_array_equal(out.zeroframe.values, zf)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(LinearityStep)
