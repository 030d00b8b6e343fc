"""Tests of the saturation step."""

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
from webbflow.steps.saturation.kernel import grow_box, saturation_kernel
from webbflow.steps.saturation.step import ATOD_LIMIT, SaturationStep
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

SAT, DNU, FLOOR, NSC = dq.SATURATED, dq.DO_NOT_USE, dq.AD_FLOOR, dq.NO_SAT_CHECK


def exposure(
    sci: np.ndarray,
    thresh: np.ndarray,
    tdq: np.ndarray,
    *,
    chunks: Any = None,
    nframes: int = 1,
    bias: np.ndarray | None = None,
    zeroframe: np.ndarray | None = None,
) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    meta = {"exposure": {"nframes": nframes, "zero_frame": zeroframe is not None}}
    ds = make_exposure(sci, meta=meta, chunks=chunks, zeroframe=zeroframe)
    ny, nx = sci.shape[2:]
    b = np.zeros((ny, nx), np.float32) if bias is None else bias
    refs = {
        "saturation": make_reference(
            {"sci": (("y", "x"), thresh), "dq": (("y", "x"), tdq)}, ds, name="sat.fits"
        ),
        "superbias": make_reference(
            {"sci": (("y", "x"), b), "dq": (("y", "x"), np.zeros((ny, nx), np.uint32))}, ds, name="bias.fits"
        ),
    }
    return ds, refs


def simple_case(chunks: Any = None) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    """16x16, 5 groups, threshold 1000 DN, background 10 DN."""
    sci = np.full((1, 5, 16, 16), 10, np.float32)
    sci[0, :, 5, 5] = [200, 600, 1000, 1400, 1800]  # saturates in group 3
    sci[0, 0, 0, 0] = 0  # A-to-D floor in group 1 only
    sci[0, :, 12, 12] = [2000, 3000, 4000, 5000, 6000]  # NaN threshold: never saturates
    sci[0, :, 12, 2] = [2000, 3000, 4000, 5000, 6000]  # NO_SAT_CHECK in the reference
    thresh = np.full((16, 16), 1000, np.float32)
    thresh[12, 12] = np.nan
    tdq = np.zeros((16, 16), np.uint32)
    tdq[12, 2] = NSC
    tdq[1, 14] = dq.DEAD
    zf = np.full((1, 16, 16), 5, np.float32)
    zf[0, 5, 5] = 1200  # saturated in the zero frame (and grown)
    zf[0, 9, 0] = -3  # at the A-to-D floor
    return exposure(sci, thresh, tdq, chunks=chunks, zeroframe=zf)


def test_values_by_hand() -> None:
    ds, refs = simple_case()
    out = build_lazily(SaturationStep(), ds, refs)
    gdq, pdq, zf = out.groupdq.values[0], out.pixeldq.values, out.zeroframe.values[0]
    # the pixel and its 8 neighbours: SATURATED from group 3 on, nothing before
    for y in (4, 5, 6):
        for x in (4, 5, 6):
            assert list(gdq[:, y, x]) == [0, 0, SAT, SAT, SAT], (y, x)
    assert (gdq[:, 3, 5] == 0).all() and (gdq[:, 5, 7] == 0).all()
    assert list(gdq[:, 0, 0]) == [FLOOR | DNU, 0, 0, 0, 0]
    assert (gdq[:, 12, 12] == 0).all() and (gdq[:, 12, 2] == 0).all()
    expected_pdq = np.zeros((16, 16), np.uint32)
    expected_pdq[12, 12] = NSC
    expected_pdq[12, 2] = NSC
    expected_pdq[1, 14] = dq.DEAD
    np.testing.assert_array_equal(pdq, expected_pdq)
    n_flagged = np.count_nonzero(gdq.any(axis=0))
    assert n_flagged == 9 + 1
    # zero frame: saturated pixel and its neighbours, and the floor pixel, set to 0
    expected_zf = np.full((16, 16), 5, np.float32)
    expected_zf[4:7, 4:7] = 0
    expected_zf[9, 0] = 0
    np.testing.assert_array_equal(zf, expected_zf)


def test_grow_zero_and_two() -> None:
    ds, refs = simple_case()
    g0 = build_lazily(SaturationStep(n_pix_grow_sat=0), ds, refs).groupdq.values[0]
    assert np.count_nonzero(g0[4] & SAT) == 1
    g2 = build_lazily(SaturationStep(n_pix_grow_sat=2), ds, refs).groupdq.values[0]
    assert np.count_nonzero(g2[4] & SAT) == 25
    assert (g2[2, 3:8, 3:8] == SAT).all()


def test_frame_averaged_groups() -> None:
    """NFRAMES=4: group g holds frames 4g+1..4g+4, dilution = mean/last (0.625, 0.8125, ...)."""
    sci = np.full((1, 4, 16, 16), 10, np.float32)
    # group 2 at 900 >= 0.8125 * 1000 and group 3 saturated -> group 2 DO_NOT_USE, grown
    sci[0, :, 4, 4] = [500, 900, 1100, 1200]
    # group 1 -> 2 jump implies a saturating event inside group 2 (group-2 test)
    sci[0, :, 11, 11] = [100, 700, 1200, 1300]
    thresh = np.full((16, 16), 1000, np.float32)
    ds, refs = exposure(sci, thresh, np.zeros((16, 16), np.uint32), nframes=4)
    gdq = build_lazily(SaturationStep(), ds, refs).groupdq.values[0]
    assert list(gdq[:, 4, 4]) == [0, DNU, SAT, SAT]
    assert (gdq[1, 3:6, 3:6] == DNU).all() and (gdq[0, 3:6, 3:6] == 0).all()
    assert list(gdq[:, 11, 11]) == [0, DNU, SAT, SAT]
    assert gdq[1, 10, 10] == 0  # the group-2 test flag is not grown
    assert (gdq[2, 10:13, 10:13] == SAT).all()
    # without the read pattern only the threshold flags remain
    plain = build_lazily(SaturationStep(use_readpatt=False), ds, refs).groupdq.values[0]
    assert list(plain[:, 4, 4]) == [0, 0, SAT, SAT]
    assert list(plain[:, 11, 11]) == [0, 0, SAT, SAT]


def random_case(seed: int = 7, nframes: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (2, 6, 20, 18)
    rate = rng.lognormal(4.0, 1.5, shape[2:]).astype(np.float32)
    bias = rng.normal(500, 20, shape[2:]).astype(np.float32)
    t = np.arange(1, shape[1] + 1, dtype=np.float32)[None, :, None, None]
    sci = (bias + rate * t * nframes + rng.normal(0, 3, shape)).astype(np.float32)
    sci[rng.random(shape) < 0.01] = 0
    jump = rng.random(shape) < 0.03
    sci += np.cumsum(np.where(jump, rng.uniform(500, 5000, shape), 0), axis=1).astype(np.float32)
    thresh = rng.uniform(1500, 6000, shape[2:]).astype(np.float32)
    thresh[rng.random(shape[2:]) < 0.03] = np.nan
    tdq = np.where(rng.random(shape[2:]) < 0.03, NSC, 0).astype(np.uint32)
    tdq[rng.random(shape[2:]) < 0.05] |= dq.WARM
    gdq = np.where(rng.random(shape) < 0.02, dq.JUMP_DET, 0).astype(np.uint8)
    gdq[0, 3, 7, 7] |= SAT  # an already-saturated input flag
    zf = (bias + rate * 0.5 + rng.normal(0, 3, shape[2:]))[None].repeat(2, 0).astype(np.float32)
    zf[0, 3, 3] = 9000
    zf[1, 10, 10] = 0
    pdq = np.where(rng.random(shape[2:]) < 0.05, dq.HOT, 0).astype(np.uint32)
    return {
        "sci": sci,
        "groupdq": gdq,
        "pixeldq": pdq,
        "threshold": thresh,
        "threshold_dq": tdq,
        "bias": bias,
        "zeroframe": zf,
    }


def random_builder(nframes: int = 4) -> Any:
    case = random_case(nframes=nframes)

    def build(chunks: Any) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
        meta = {"exposure": {"nframes": nframes, "zero_frame": True}}
        ds = make_exposure(
            case["sci"],
            groupdq=case["groupdq"],
            pixeldq=case["pixeldq"],
            zeroframe=case["zeroframe"],
            meta=meta,
            chunks=chunks,
        )
        refs = {
            "saturation": make_reference(
                {"sci": (("y", "x"), case["threshold"]), "dq": (("y", "x"), case["threshold_dq"])}, ds
            ),
            "superbias": make_reference(
                {"sci": (("y", "x"), case["bias"]), "dq": (("y", "x"), case["pixeldq"] * 0)}, ds
            ),
        }
        return ds, refs

    return build


@pytest.mark.parametrize("grow", [0, 1, 2])
def test_tiling_invariance(grow: int) -> None:
    assert_tiling_invariant(SaturationStep(n_pix_grow_sat=grow), random_builder())
    assert_tiling_invariant(SaturationStep(n_pix_grow_sat=grow), random_builder(1), tiles=(5, 4))


def test_inputs_unchanged() -> None:
    assert_inputs_unchanged(SaturationStep(), random_builder())
    case = random_case()
    assert_kernel_pure(
        saturation_kernel,
        case,
        n_grow=1,
        read_pattern=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)),
        atod_limit=ATOD_LIMIT,
        saturated=SAT,
        do_not_use=DNU,
        ad_floor=FLOOR,
        no_sat_check=NSC,
    )


def test_grow_box_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    mask = np.random.default_rng(0).random((2, 11, 13)) < 0.05
    for n in (1, 2, 3):
        ref = ndimage.binary_dilation(mask, structure=np.ones((1, 2 * n + 1, 2 * n + 1), bool))
        np.testing.assert_array_equal(grow_box(mask, n), ref)


def test_bookkeeping() -> None:
    ds, refs = simple_case((7, 9))
    with raise_if_dask_computes():
        out = SaturationStep()(ds, FakeResolver(refs))
    assert meta_value(out, "cal_step.saturation") == "COMPLETE"
    assert meta_value(out, "ref_file.saturation.name") == "sat.fits"
    assert meta_value(out, "ref_file.superbias.name") == "bias.fits"


@pytest.mark.parametrize(
    ("grow", "nframes", "readpatt"), [(1, 4, True), (2, 4, True), (1, 1, True), (1, 4, False), (0, 2, True)]
)
def test_matches_stcal(grow: int, nframes: int, readpatt: bool) -> None:
    sat = pytest.importorskip("stcal.saturation.saturation")
    case = random_case(nframes=nframes)
    ngroups = case["sci"].shape[1]
    rp = [[x + 1 + g * nframes for x in range(nframes)] for g in range(ngroups)] if readpatt else None
    flags = {"DO_NOT_USE": DNU, "SATURATED": SAT, "AD_FLOOR": FLOOR, "NO_SAT_CHECK": NSC}
    zf = case["zeroframe"].copy()
    gdq, pdq, zf = sat.flag_saturated_pixels(
        case["sci"].copy(),
        case["groupdq"].copy(),
        case["pixeldq"].copy(),
        case["threshold"].copy(),
        case["threshold_dq"].copy(),
        ATOD_LIMIT,
        flags,
        n_pix_grow_sat=grow,
        zframe=zf,
        read_pattern=rp,
        bias=case["bias"].copy(),
    )
    ds, refs = random_builder(nframes)((7, 9))
    step = SaturationStep(n_pix_grow_sat=grow, use_readpatt=readpatt)
    out = build_lazily(step, ds, refs)
    ours = out.groupdq.values
    print(
        f"saturation vs stcal (grow={grow}, nframes={nframes}): groupdq agree on "
        f"{np.mean(ours == gdq):.6f} of values, "
        f"{np.count_nonzero(gdq & SAT)} SATURATED, {np.count_nonzero(gdq & DNU)} DO_NOT_USE"
    )
    np.testing.assert_array_equal(ours, gdq)
    np.testing.assert_array_equal(out.pixeldq.values, pdq)
    np.testing.assert_array_equal(out.zeroframe.values, zf)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(SaturationStep)


def test_superbias_na_runs_without_bias_instead_of_skipping() -> None:
    """jwst runs saturation without a superbias when it is N/A; so do we (optional reftype)."""
    sci = np.full((1, 3, 8, 8), 100.0, np.float32)
    sci[0, 1:, 2, 2] = 70000.0
    ds = make_exposure(sci, chunks=4, meta={"subarray": {"xstart": 100, "ystart": 100}})
    out = SaturationStep(override_superbias="N/A")(ds)
    meta = out.attrs["meta"]
    assert meta["cal_step"]["saturation"] == "COMPLETE"
    assert meta["ref_file"]["superbias"]["name"] == "N/A"
    assert meta["ref_file"]["saturation"]["name"].startswith("webbflow://")
    assert out.groupdq.values[0, 1, 2, 2] & dq.SATURATED
