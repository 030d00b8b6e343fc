"""Oracle test: webbflow's jump kernel against stcal's ``detect_jumps_data`` on random ramps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from webbflow import dq
from webbflow.steps.jump.kernel import MODE_SIGMA_CLIP, MODE_SINGLE_PASS, detect_jumps

pytestmark = pytest.mark.oracle

FLAGS = {
    "GOOD": 0,
    "DO_NOT_USE": dq.DO_NOT_USE,
    "SATURATED": dq.SATURATED,
    "JUMP_DET": dq.JUMP_DET,
    "NO_GAIN_VALUE": dq.NO_GAIN_VALUE,
    "REFERENCE_PIXEL": dq.REFERENCE_PIXEL,
}


def random_ramps(
    seed: int, nint: int, ng: int, ny: int = 20, nx: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Poisson + read-noise ramps (DN) with injected cosmic rays, saturation and DO_NOT_USE."""
    rng = np.random.default_rng(seed)
    gain = rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32)
    rn = rng.uniform(4, 8, (ny, nx)).astype(np.float32)
    flux = rng.uniform(0, 200, (ny, nx))  # e⁻ per group
    e = rng.poisson(np.broadcast_to(flux, (nint, ng, ny, nx))).cumsum(axis=1).astype(float)
    e += rng.normal(0, 1, e.shape) * (rn * gain / np.sqrt(2))
    sci = e / gain
    gdq = np.zeros(sci.shape, np.uint8)
    for _ in range(30 * nint):
        i, g, y, x = rng.integers(nint), rng.integers(1, ng), rng.integers(ny), rng.integers(nx)
        sci[i, g:, y, x] += rng.uniform(20, 3000)
    for _ in range(10):
        i, g, y, x = rng.integers(nint), rng.integers(1, ng), rng.integers(ny), rng.integers(nx)
        gdq[i, g:, y, x] |= dq.SATURATED
    gdq[:, :, 0, 3] |= dq.DO_NOT_USE
    gdq[0, 1, 5, 5] |= dq.DO_NOT_USE
    return sci.astype(np.float32), gdq, gain, rn


def stcal_jumps(
    sci: np.ndarray, gdq: np.ndarray, gain: np.ndarray, rn: np.ndarray, **options: Any
) -> np.ndarray:
    """stcal's group DQ for the same ramps (JWST conventions: nframes 1, uniform groups)."""
    jump_class = pytest.importorskip("stcal.jump.jump_class")
    jump = pytest.importorskip("stcal.jump.jump")
    data = jump_class.JumpData(gain2d=gain.copy(), rnoise2d=rn.copy(), dqflags=FLAGS)
    data.init_arrays_from_arrays(sci.copy(), gdq.copy(), np.zeros(sci.shape[-2:], np.uint32))
    data.nframes = 1
    data.dt_group = np.ones(1)
    data.n_reads_groupdiff = np.ones(1) * 2
    data.max_cores = "none"
    for key, value in options.items():
        setattr(data, key, value)
    return jump.detect_jumps_data(data)[0]


AFTER = {
    "after_jump_flag_dn1": 100.0,
    "after_jump_flag_n1": 2,
    "after_jump_flag_dn2": 1000.0,
    "after_jump_flag_n2": 4,
}

CASES = [
    ("iterative 1x10", 1, 10, {}, {}),
    ("iterative 2x5", 2, 5, {}, {}),
    ("4 groups", 1, 4, {}, {}),
    ("3 groups", 1, 3, {}, {}),
    ("single pass 1x15", 1, 15, {}, {"mode": MODE_SINGLE_PASS}),
    ("after-jump 3x6", 3, 6, AFTER, AFTER),
    ("no neighbours", 2, 6, {"flag_4_neighbors": False}, {"flag_4_neighbors": False}),
    ("sigma clip 100 ints", 100, 4, {}, {"mode": MODE_SIGMA_CLIP}),
    (
        "sigma clip all groups",
        10,
        12,
        {"minimum_sigclip_groups": 50, "only_use_ints": False},
        {"mode": MODE_SIGMA_CLIP, "only_use_ints": False},
    ),
]


@pytest.mark.parametrize(("label", "nint", "ng", "theirs", "ours"), CASES, ids=[c[0] for c in CASES])
def test_agrees_with_stcal(
    label: str, nint: int, ng: int, theirs: dict[str, Any], ours: dict[str, Any]
) -> None:
    sci, gdq, gain, rn = random_ramps(nint * 7 + ng, nint, ng)
    expected = stcal_jumps(sci, gdq, gain, rn, **theirs)
    got = detect_jumps(sci, gdq, gain, rn, median_gain=float(np.nanmedian(gain)), **ours).groupdq
    same = np.all((expected & dq.JUMP_DET != 0) == (got & dq.JUMP_DET != 0), axis=(0, 1))
    print(
        f"{label}: {same.mean():.2%} of pixels agree with stcal "
        f"({np.count_nonzero(expected & dq.JUMP_DET)} stcal / "
        f"{np.count_nonzero(got & dq.JUMP_DET)} webbflow jump flags); "
        f"groupdq identical: {np.array_equal(expected, got)}"
    )
    assert same.mean() >= 0.995


def snowball_ramps(
    seed: int, nint: int = 2, ng: int = 8, size: int = 60
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random ramps plus a few elliptical snowballs with saturated cores."""
    rng = np.random.default_rng(seed)
    sci, gdq, gain, rn = random_ramps(seed, nint, ng, size, size)
    gdq[:] = 0
    yy, xx = np.mgrid[:size, :size]
    for _ in range(4):
        i, g = rng.integers(nint), rng.integers(1, ng - 1)
        cy, cx = rng.uniform(0, size, 2)
        a, b, th = rng.uniform(2, 6), rng.uniform(2, 6), rng.uniform(0, np.pi)
        u = ((yy - cy) * np.cos(th) + (xx - cx) * np.sin(th)) / a
        v = ((yy - cy) * np.sin(th) - (xx - cx) * np.cos(th)) / b
        r2 = u**2 + v**2
        sci[i, g:, r2 < 1] += 400
        gdq[i, g + rng.integers(0, 2) :, r2 < 0.3 * rng.uniform(0.3, 1.0)] |= dq.SATURATED
    return sci, gdq, gain, rn


@pytest.mark.parametrize("required", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_snowballs_agree_with_stcal(seed: int, required: bool) -> None:
    from webbflow.steps.jump.snowballs import detect_jumps_and_snowballs

    sci, gdq, gain, rn = snowball_ramps(seed)
    expected = stcal_jumps(
        sci,
        gdq,
        gain,
        rn,
        expand_large_events=True,
        sat_required_snowball=required,
        sat_expand=2 * 2,
        persist_grps_flagged=3,
        max_extended_width=2 * 200,
    )
    got = detect_jumps_and_snowballs(
        sci,
        gdq,
        gain,
        rn,
        np.arange(60),
        np.arange(60),
        y_origin=0,
        x_origin=0,
        nrows=60,
        snowballs={
            "min_sat_area": 1.0,
            "min_jump_area": 5.0,
            "expand_factor": 2.0,
            "sat_required_snowball": required,
            "min_sat_radius_extend": 2.5,
            "sat_expand": 2,
            "edge_size": 25,
            "max_extended_radius": 200,
            "persist_groups": 3,
        },
    ).groupdq
    same = np.all(expected == got, axis=(0, 1))
    print(
        f"snowballs seed {seed} required={required}: {same.mean():.2%} of pixels have "
        f"identical groupdq ({np.count_nonzero(expected & dq.JUMP_DET)} stcal / "
        f"{np.count_nonzero(got & dq.JUMP_DET)} webbflow jump flags)"
    )
    assert same.mean() >= 0.995


def test_region_ellipses_match_skimage() -> None:
    measure = pytest.importorskip("skimage.measure")
    from webbflow.steps.jump.snowballs import regions

    rng = np.random.default_rng(3)
    mask = rng.random((40, 40)) < 0.45
    ours = regions(mask, 1)
    theirs = [r for r in measure.regionprops(measure.label(mask)) if r.area_filled >= 1]
    assert len(ours) == len(theirs)
    for e, r in zip(ours, theirs, strict=True):
        assert (e.row, e.col) == r.centroid
        assert e.minor == r.axis_minor_length - 1 and e.major == r.axis_major_length - 1
        assert e.angle == np.degrees(r.orientation)
