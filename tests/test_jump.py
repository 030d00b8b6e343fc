"""Tests of the jump step: hand-worked ramps, laziness, tiling, and stcal as an oracle."""

from __future__ import annotations

import numpy as np
import pytest

from webbflow import dq
from webbflow.engine.step import SkipStep
from webbflow.steps.jump.kernel import (
    MODE_SIGMA_CLIP,
    MODE_SINGLE_PASS,
    detect_jumps,
)
from webbflow.steps.jump.step import CODE_DEFAULTS, JumpStep, Params, detection_mode
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

JUMP = dq.JUMP_DET
GROUP_TIME = 10.73677  # make_exposure's default


def ramp_of(diffs: list[float], ny: int = 5, nx: int = 5) -> np.ndarray:
    """(1, ngroup, ny, nx) ramps with the given first differences in every pixel."""
    values = np.concatenate([[0.0], np.cumsum(diffs)])
    return np.broadcast_to(values[None, :, None, None], (1, len(values), ny, nx)).astype(np.float32)


def run(
    sci: np.ndarray, gdq: np.ndarray | None = None, *, gain: float = 1.0, rn: float = 2.0, **kw: object
) -> np.ndarray:
    """Kernel output groupdq with uniform gain and read noise."""
    ny, nx = sci.shape[-2:]
    gdq = np.zeros(sci.shape, np.uint8) if gdq is None else gdq
    return detect_jumps(
        sci, gdq, np.full((ny, nx), gain, np.float32), np.full((ny, nx), rn, np.float32), **kw
    ).groupdq


# --- hand-worked ramps -------------------------------------------------------------------------
# gain 1, read noise 2 DN -> sigma = sqrt(|median diff| + rn²) = sqrt(10 + 4) = 3.742 e⁻ for a
# median difference of 10.


def test_single_jump_and_neighbours() -> None:
    sci = ramp_of([10, 10, 10, 10, 10])
    sci = sci.copy()
    sci[0, 4:, 2, 2] += 90  # diffs 10,10,10,100,10: clipped median 10, ratio 90/3.742 = 24.1
    out = run(sci)
    flagged = np.argwhere(out & JUMP)
    # jump in group index 4 of the pixel and of its 4 neighbours (10 < 24.1 < 1000)
    assert {tuple(v) for v in flagged} == {
        (0, 4, 2, 2),
        (0, 4, 1, 2),
        (0, 4, 3, 2),
        (0, 4, 2, 1),
        (0, 4, 2, 3),
    }


@pytest.mark.parametrize(("extra", "expected"), [(14.0, False), (16.0, True)])
def test_normal_threshold(extra: float, expected: bool) -> None:
    # ratio = extra / 3.742: 14 -> 3.74 (< 4), 16 -> 4.28 (> 4); below 10 sigma: no neighbours
    out = run(ramp_of([10, 10, 10 + extra, 10, 10]))
    assert bool(out[0, 3, 2, 2] & JUMP) is expected
    assert np.count_nonzero(out & JUMP) == (25 if expected else 0)


@pytest.mark.parametrize(("extra", "expected"), [(20.0, False), (25.0, True)])
def test_three_group_threshold(extra: float, expected: bool) -> None:
    # 2 differences: median = smaller one (10); ratios 5.35 (> 4 but < 6) and 6.68 (> 6)
    out = run(ramp_of([10, 10 + extra]))
    assert bool(out[0, 2, 0, 0] & JUMP) is expected


@pytest.mark.parametrize(("extra", "expected"), [(18.0, False), (20.0, True)])
def test_four_group_threshold(extra: float, expected: bool) -> None:
    # 3 differences: plain median (10); ratios 4.81 (> 4 but < 5) and 5.35 (> 5)
    out = run(ramp_of([10, 10 + extra, 10]))
    assert bool(out[0, 2, 0, 0] & JUMP) is expected


def test_two_jumps_found_iteratively() -> None:
    sci = ramp_of([10, 60, 10, 10, 10, 210, 10]).copy()
    out = run(sci, flag_4_neighbors=False)
    assert np.array_equal(np.flatnonzero(out[0, :, 0, 0] & JUMP), [2, 6])


def test_gain_converts_to_electrons() -> None:
    # gain 2: diffs 20 e⁻, jump 32 e⁻ extra; sigma = sqrt(20 + (2·2)²) = 6 -> ratio 5.33 > 4
    out = run(ramp_of([10, 10, 26, 10, 10]), gain=2.0, flag_4_neighbors=False)
    assert out[0, 3, 0, 0] & JUMP
    # same DN ramp at gain 1: sigma = sqrt(10 + 4) = 3.742, ratio 16/3.742 = 4.28 > 4
    # at gain 0.5: sigma = sqrt(5 + 1) = 2.449, ratio 8/2.449 = 3.27 < 4
    out = run(ramp_of([10, 10, 26, 10, 10]), gain=0.5, flag_4_neighbors=False)
    assert not out[0, 3, 0, 0] & JUMP


def test_saturated_and_do_not_use_groups_ignored() -> None:
    sci = ramp_of([10, 10, 10, 10, 10, 10]).copy()
    sci[0, 5:, 1, 1] += 5000  # huge step into saturated groups
    sci[0, 2:, 3, 3] += 500  # a real jump, then a do-not-use group with a huge value
    sci[0, 4, 3, 3] += 1e5
    gdq = np.zeros(sci.shape, np.uint8)
    gdq[0, 5:, 1, 1] = dq.SATURATED
    gdq[0, 4, 3, 3] = dq.DO_NOT_USE
    out = run(sci, gdq, flag_4_neighbors=False)
    assert not np.any(out[0, :, 1, 1] & JUMP)
    assert np.array_equal(np.flatnonzero(out[0, :, 3, 3] & JUMP), [2])
    assert np.array_equal(out & ~np.uint8(JUMP), gdq)  # other bits untouched


def test_neighbour_not_flagged_when_saturated() -> None:
    sci = ramp_of([10, 10, 10, 10, 10]).copy()
    sci[0, 4:, 2, 2] += 90
    gdq = np.zeros(sci.shape, np.uint8)
    gdq[0, 4:, 1, 2] = dq.SATURATED
    out = run(sci, gdq)
    assert not out[0, 4, 1, 2] & JUMP
    assert out[0, 4, 3, 2] & JUMP


def test_after_jump_flagging_in_kernel() -> None:
    sci = ramp_of([10, 10, 500, 10, 10, 10, 10]).copy()
    out = run(sci, flag_4_neighbors=False, median_gain=1.0, after_jump_flag_dn1=100.0, after_jump_flag_n1=2)
    assert np.array_equal(np.flatnonzero(out[0, :, 0, 0] & JUMP), [3, 4, 5])


def test_no_false_positives_on_noise() -> None:
    rng = np.random.default_rng(42)
    ny = nx = 20
    ng = 10
    gain, rn = 2.0, 6.0
    flux = 50.0  # e⁻ per group
    electrons = rng.poisson(flux, (1, ng, ny, nx)).cumsum(axis=1).astype(float)
    electrons += rng.normal(0, rn * gain / np.sqrt(2), electrons.shape)  # diff noise = g·rn
    out = run((electrons / gain).astype(np.float32), gain=gain, rn=rn)
    rate = np.count_nonzero(out & JUMP) / out.size
    print(f"false-positive rate on pure noise: {rate:.5f}")
    assert rate < 0.002


def test_inputs_unchanged() -> None:
    rng = np.random.default_rng(1)
    sci = (np.arange(6)[None, :, None, None] * 20 + rng.normal(0, 3, (2, 6, 8, 8))).astype(np.float32)
    sci[1, 3:, 4, 4] += 400
    gdq = np.zeros(sci.shape, np.uint8)
    gdq[0, 4:, 2, 2] = dq.SATURATED
    gain = np.full((8, 8), 2.0, np.float32)
    rn = np.full((8, 8), 5.0, np.float32)
    copies = [a.copy() for a in (sci, gdq, gain, rn)]
    for mode in (0, MODE_SINGLE_PASS, MODE_SIGMA_CLIP):
        detect_jumps(sci, gdq, gain, rn, mode=mode, after_jump_flag_n1=1)
    for a, b in zip((sci, gdq, gain, rn), copies, strict=True):
        assert np.array_equal(a, b)


# --- the lazy step -----------------------------------------------------------------------------


def exposure_and_refs(sci, gdq=None, gain=None, chunks=None):  # type: ignore[no-untyped-def]
    ds = make_exposure(sci, groupdq=gdq, chunks=chunks)
    ny, nx = sci.shape[-2:]
    gain = np.full((ny, nx), 2.0, np.float32) if gain is None else gain
    refs = {
        "gain": make_reference({"sci": (("y", "x"), gain)}, ds),
        "readnoise": make_reference({"sci": (("y", "x"), np.full((ny, nx), 5.0, np.float32))}, ds),
    }
    return ds, refs


def noisy_ramps(seed: int, nint: int = 2, ng: int = 6, ny: int = 20, nx: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.poisson(40.0, (nint, ng, ny, nx)).cumsum(axis=1) + rng.normal(0, 7, (nint, ng, ny, nx))
    return (e / 2.0).astype(np.float32)


@pytest.mark.parametrize("snowballs", [False, True])
def test_step_is_lazy(snowballs: bool) -> None:
    ds, refs = exposure_and_refs(noisy_ramps(0), chunks=8)
    step = JumpStep(
        after_jump_flag_dn1=50.0,
        after_jump_flag_time1=30.0,
        expand_large_events=snowballs,
        max_extended_radius=3,
    )
    with raise_if_dask_computes():
        out = step.build(ds, refs)
    assert out["groupdq"].dtype == np.uint8
    assert out["pixeldq"].dtype == np.uint32
    assert out["groupdq"].chunks == ds["groupdq"].chunks
    assert out["sci"] is ds["sci"] or out["sci"].identical(ds["sci"])


@pytest.mark.parametrize("after", [False, True])
def test_tiling_invariance(after: bool) -> None:
    sci = noisy_ramps(3)
    # cosmic rays on tile edges of 7×9 and 16×16 tilings, and a corner one
    for i, g, y, x in [(0, 2, 7, 9), (1, 3, 6, 8), (0, 4, 15, 16), (1, 1, 16, 15), (0, 3, 0, 0)]:
        sci[i, g:, y, x] += 300.0
    kwargs = {"after_jump_flag_dn1": 100.0, "after_jump_flag_time1": 25.0} if after else {}
    results = []
    for chunks in (None, (7, 9), 16):
        ds, refs = exposure_and_refs(sci, chunks=chunks)
        results.append(JumpStep(**kwargs).build(ds, refs)["groupdq"].values)
    assert np.count_nonzero(results[0] & JUMP) >= 4 * 5 + 3  # corner CR: 2 neighbours
    for r in results[1:]:
        assert np.array_equal(results[0], r)
    assert results[0][0, 2, 7, 8] & JUMP and results[0][0, 2, 6, 9] & JUMP  # neighbours
    if after:  # 25 s // 10.74 s = 2 groups after the jump
        assert np.all(results[0][0, 2:5, 7, 9] & JUMP)


def test_step_after_jump_uses_group_time() -> None:
    sci = noisy_ramps(5, nint=1, ng=8)
    sci[0, 2:, 4, 4] += 800.0
    ds, refs = exposure_and_refs(sci, chunks=8)
    out = (
        JumpStep(
            after_jump_flag_dn1=200.0, after_jump_flag_time1=3 * GROUP_TIME + 0.1, flag_4_neighbors=False
        )
        .build(ds, refs)["groupdq"]
        .values
    )
    assert np.all(out[0, 2:6, 4, 4] & JUMP)


def test_bad_gain_sets_pixeldq() -> None:
    sci = noisy_ramps(6)
    gain = np.full(sci.shape[-2:], 2.0, np.float32)
    gain[1, 2] = 0.0
    gain[3, 4] = np.nan
    ds, refs = exposure_and_refs(sci, gain=gain, chunks=8)
    pdq = JumpStep().build(ds, refs)["pixeldq"].values
    flag = dq.NO_GAIN_VALUE | dq.DO_NOT_USE
    assert pdq[1, 2] == flag and pdq[3, 4] == flag
    assert np.count_nonzero(pdq) == 2


def test_skips_and_unsupported() -> None:
    ds, refs = exposure_and_refs(noisy_ramps(0, ng=2))
    with pytest.raises(SkipStep):
        JumpStep().build(ds, refs)
    # a snowball halo larger than the exposure: processed as one tile, same chunks out
    out = JumpStep(expand_large_events=True).build(*exposure_and_refs(noisy_ramps(0), chunks=8))
    assert out["groupdq"].chunks == exposure_and_refs(noisy_ramps(0), chunks=8)[0]["groupdq"].chunks
    assert out["groupdq"].values.shape == (2, 6, 20, 20)


def test_detection_mode() -> None:
    p = Params()
    assert detection_mode(p, 1, 10) == 0
    assert detection_mode(p, 1, 11) == MODE_SINGLE_PASS
    assert detection_mode(p, 100, 5) == MODE_SIGMA_CLIP
    assert detection_mode(Params(only_use_ints=False), 10, 10) == MODE_SIGMA_CLIP


def test_params_match_jwst() -> None:
    jwst_jump = pytest.importorskip("jwst.jump")
    theirs = jwst_jump.JumpStep()
    for name, field in Params.fields().items():
        if name == "max_shower_amplitude":  # None: jwst's effective limit (it ignores the parameter)
            continue
        assert getattr(theirs, name) == CODE_DEFAULTS.get(name, field.default), name


# --- snowballs ---------------------------------------------------------------------------------

SNOW = {
    "min_sat_area": 1.0,
    "min_jump_area": 5.0,
    "expand_factor": 2.5,
    "sat_required_snowball": True,
    "min_sat_radius_extend": 2.5,
    "sat_expand": 2,
    "edge_size": 0,
    "max_extended_radius": 200,
    "persist_groups": 0,
    "saturated": dq.SATURATED,
    "jump_det": JUMP,
}


def test_snowball_expands_a_square_with_saturated_core() -> None:
    from webbflow.steps.jump.snowballs import expand_snowballs

    gdq = np.zeros((1, 4, 15, 15), np.uint8)
    gdq[0, 2, 6:9, 6:9] = JUMP  # 3×3 jump region: axes 4·sqrt(2/3) - 1 = 2.27 px
    gdq[0, 2:, 7, 7] = dq.SATURATED  # newly saturated core at its centre
    out = expand_snowballs(gdq, 0, 0, 15, **SNOW)
    # radius round(2.5 · 2.27 / 2) = 3 around (7, 7): the 5×5 block is flagged, nothing ≥ 3 px out
    yy, xx = np.mgrid[:15, :15]
    dist = np.hypot(yy - 7, xx - 7)
    flagged = (out[0, 2] & JUMP) != 0
    assert np.all(flagged[5:10, 5:10] | (out[0, 2, 5:10, 5:10] & dq.SATURATED != 0))
    assert not np.any(flagged[dist > 3])
    assert np.array_equal(out[0, [0, 1, 3]], gdq[0, [0, 1, 3]])  # other groups untouched
    # without a saturated core (and away from the edge) it is not a snowball
    gdq[0, 2:, 7, 7] = 0
    gdq[0, 2, 7, 7] = JUMP
    assert np.array_equal(expand_snowballs(gdq, 0, 0, 15, **SNOW), gdq)
    # ...unless the core is not required
    out = expand_snowballs(gdq, 0, 0, 15, **{**SNOW, "sat_required_snowball": False})
    assert np.all(out[0, 2, 5:10, 5:10] & JUMP)


def test_step_snowballs_tiling_invariance() -> None:
    rng = np.random.default_rng(11)
    size, ng = 40, 6
    sci = noisy_ramps(11, nint=2, ng=ng, ny=size, nx=size)
    gdq = np.zeros(sci.shape, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i, g, cy, cx, r in [(0, 2, 16.3, 15.8, 4.0), (1, 3, 7.2, 9.1, 3.0), (0, 4, 30, 27, 5.0)]:
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        sci[i, g:, d2 < r**2] += 500 + rng.uniform(0, 100)
        gdq[i, g:, d2 < (0.5 * r) ** 2] |= dq.SATURATED
    params = {"expand_large_events": True, "max_extended_radius": 8, "edge_size": 3}
    results = []
    for chunks in (None, (7, 9), 16):
        ds, refs = exposure_and_refs(sci, gdq=gdq, chunks=chunks)
        out = JumpStep(**params).build(ds, refs)["groupdq"]
        assert out.chunks == ds["groupdq"].chunks
        results.append(out.values)
    plain = JumpStep().build(*exposure_and_refs(sci, gdq=gdq))["groupdq"].values
    assert np.count_nonzero(results[0] & JUMP) > np.count_nonzero(plain & JUMP)
    for r in results[1:]:
        assert np.array_equal(results[0], r)
