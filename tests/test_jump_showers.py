"""MIRI cosmic-ray showers in the jump step: halo coverage, tiling, NIR off, stcal as an oracle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from webbflow import dq
from webbflow.steps.jump.showers import flagged_axes, plane_ellipses, ring_kernel
from webbflow.steps.jump.step import MIRI_DEFAULTS, JumpStep, Params, resolve_defaults
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

JUMP = dq.JUMP_DET
GROUP_TIME = 2.775  # MIRI FASTR1 full frame, s
GAIN, READNOISE = 4.0, 3.0  # e⁻/DN, DN
NY = NX = 128
NG = 20
HIT = (8, 64, 64)  # group, row, col of the shower's primary cosmic ray
HALO_RADIUS = 15.0  # pixels
MIRI_META = {
    "instrument": {"name": "MIRI", "detector": "MIRIMAGE", "filter": "F770W"},
    "exposure": {
        "type": "MIR_IMAGE",
        "readpatt": "FASTR1",
        "group_time": GROUP_TIME,
        "frame_time": GROUP_TIME,
    },
}


#: jwst's documented code defaults for the shower search, meant for faint halos (the
#: MIRI CRDS values, threshold 3 and area 50, only catch halos of ~4 sigma per difference).
FAINT = {"extend_snr_threshold": 1.2, "extend_min_area": 90}


def halo_profile(ny: int = NY, nx: int = NX, amplitude: float = 2.0) -> np.ndarray:
    """(ny, nx) halo amplitude in units of the difference noise.

    An ``amplitude``-sigma plateau out to HALO_RADIUS pixels, fading linearly to 0
    over 8 more: far below the 4-sigma two-point threshold of single pixels.
    """
    yy, xx = np.mgrid[:ny, :nx]
    r = np.hypot(yy - HIT[1], xx - HIT[2])
    return amplitude * np.clip((HALO_RADIUS + 8 - r) / 8, 0, 1)


def shower_ramp(seed: int = 1, amplitude: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """One integration of MIRI-like ramps (DN) with a bright hit inside a large faint halo.

    Groups 0 and NG-1 are DO_NOT_USE (as firstframe/lastframe leave them).
    """
    rng = np.random.default_rng(seed)
    flux_e = 50.0  # e⁻ per group
    e = rng.poisson(flux_e, (1, NG, NY, NX)).cumsum(axis=1).astype(float)
    e += rng.normal(0, READNOISE * GAIN / np.sqrt(2), e.shape)  # jwst: a difference has rn
    sigma_e = np.sqrt(flux_e + (READNOISE * GAIN) ** 2)
    g, y, x = HIT
    e[0, g:] += halo_profile(amplitude=amplitude) * sigma_e  # the faint halo appears with the hit and stays
    e[0, g:, y - 1 : y + 2, x - 1 : x + 2] += 8000.0  # the bright primary
    gdq = np.zeros(e.shape, np.uint8)
    gdq[:, 0] = gdq[:, -1] = dq.DO_NOT_USE
    return (e / GAIN).astype(np.float32), gdq


def exposure(sci: np.ndarray, gdq: np.ndarray, meta: dict[str, Any], chunks: Any = None):  # type: ignore[no-untyped-def]
    ds = make_exposure(sci, groupdq=gdq, meta=meta, chunks=chunks)
    shape = sci.shape[-2:]
    refs = {
        "gain": make_reference({"sci": (("y", "x"), np.full(shape, GAIN, np.float32))}, ds),
        "readnoise": make_reference({"sci": (("y", "x"), np.full(shape, READNOISE, np.float32))}, ds),
    }
    return ds, refs


def regions() -> tuple[np.ndarray, np.ndarray]:
    """(halo, clean) pixel masks: halo where it is >= 1 sigma; clean far from the hit."""
    amp = halo_profile()
    yy, xx = np.mgrid[:NY, :NX]
    far = np.hypot(yy - HIT[1], xx - HIT[2]) > 50
    return amp >= 1.0, far


@pytest.fixture(scope="module")
def miri_result() -> np.ndarray:
    sci, gdq = shower_ramp()
    ds, refs = exposure(sci, gdq, MIRI_META)
    return JumpStep(**FAINT).build(ds, refs)["groupdq"].values


def test_miri_defaults() -> None:
    sci, gdq = shower_ramp()
    miri, _ = exposure(sci, gdq, MIRI_META)
    nir, _ = exposure(sci, gdq, {})
    p = resolve_defaults(Params(), miri)
    assert p.find_showers is True
    assert all(getattr(p, k) == v for k, v in MIRI_DEFAULTS.items())
    assert resolve_defaults(Params(), nir).find_showers is False
    assert resolve_defaults(Params(find_showers=False), miri).find_showers is False  # user wins


def test_halo_flagged_not_clean_area(miri_result: np.ndarray) -> None:
    halo, clean = regions()
    g = HIT[0]
    at_hit = miri_result[0, g] & JUMP != 0
    coverage = at_hit[halo].mean()
    assert coverage > 0.9, coverage  # the halo is covered...
    assert at_hit[clean].mean() < 0.01  # ... not the clean area
    # time_masked_after_shower: 30 s // 2.775 s = 10 groups flagged after the hit's group
    ramp = miri_result[0, :, HIT[1], HIT[2] + 10] & JUMP
    assert np.all(ramp[g : g + 11]) and not np.any(ramp[g + 11 :])
    assert (miri_result[0, 1:g] & JUMP != 0)[:, halo].mean() < 0.01  # nothing before the hit


def test_miri_default_thresholds_catch_bright_halos() -> None:
    """With the MIRI (CRDS) thresholds a 4-sigma halo is flagged beyond what two-point finds."""
    sci, gdq = shower_ramp(amplitude=4.0)
    on = JumpStep().build(*exposure(sci, gdq, MIRI_META))["groupdq"].values[0, HIT[0]] & JUMP != 0
    off = JumpStep(find_showers=False).build(*exposure(sci, gdq, MIRI_META))["groupdq"].values
    off_hit = off[0, HIT[0]] & JUMP != 0
    halo, clean = regions()
    assert on[halo].mean() > off_hit[halo].mean() + 0.2
    assert on[clean].mean() < 0.01


def test_nir_unchanged() -> None:
    """Showers are off for NIR: the halo stays mostly unflagged, as with find_showers=False on MIRI."""
    sci, gdq = shower_ramp()
    nir = JumpStep().build(*exposure(sci, gdq, {}))["groupdq"].values
    halo, _ = regions()
    assert (nir[0, HIT[0]] & JUMP != 0)[halo].mean() < 0.5
    explicit = JumpStep(**{**MIRI_DEFAULTS, "find_showers": False}).build(*exposure(sci, gdq, {}))
    miri_off = JumpStep(find_showers=False).build(*exposure(sci, gdq, MIRI_META))
    assert np.array_equal(explicit["groupdq"].values, miri_off["groupdq"].values)


def test_two_tilings_identical(miri_result: np.ndarray) -> None:
    sci, gdq = shower_ramp()
    # a second, smaller shower at the array edge in another group
    yy, xx = np.mgrid[:NY, :NX]
    edge = 5.0 * np.exp(-((yy - 3) ** 2 + (xx - 100) ** 2) / (2 * 6.0**2))
    sci[0, 14:] += (edge * np.sqrt(50 + (READNOISE * GAIN) ** 2) / GAIN).astype(np.float32)
    results = []
    for chunks in (None, (40, 56), 32):
        ds, refs = exposure(sci, gdq, MIRI_META, chunks=chunks)
        with raise_if_dask_computes():
            out = JumpStep(**FAINT).build(ds, refs)["groupdq"]
        assert out.chunks == ds["groupdq"].chunks
        results.append(out.values)
    assert np.count_nonzero(results[0][0, 14, :10, 90:110] & JUMP) > 50  # the edge shower
    for r in results[1:]:
        assert np.array_equal(results[0], r)


def test_helpers() -> None:
    ring = ring_kernel(1.0, 2.6)  # jwst's Ring2DKernel(1, 2.6): radii 1 to 3.6
    assert ring.shape == (9, 9) and ring[4, 4] == 0 and ring[4, 5] == 1 and ring[4, 8] == 0
    assert ring.sum() == 36
    assert flagged_axes(20.0, 40.0, 1.1, 400.0) == (22, 42)  # minor x1.1, major + same pixels
    assert flagged_axes(100.0, 900.0, 1.1, 400.0)[1] == 400  # capped
    code = np.zeros((30, 30), np.uint8)
    code[5:15, 5:25] = 1  # a 10x20 rectangle
    ellipses, all_dnu = plane_ellipses(code, 50)
    assert not all_dnu and ellipses.shape == (1, 5)
    row, col, minor, major, angle = ellipses[0]
    assert (row, col) == (9.5, 14.5) and minor < major and abs(abs(angle) - 90) < 1e-6
    assert plane_ellipses(code, 201)[0].shape == (0, 5)


def stcal_showers(sci: np.ndarray, gdq: np.ndarray) -> np.ndarray:
    """stcal's group DQ with MIRI shower flagging, parameters as jwst's JumpStep sets them."""
    jump_class = pytest.importorskip("stcal.jump.jump_class")
    jump = pytest.importorskip("stcal.jump.jump")
    flags = {k: getattr(dq, k) for k in ("DO_NOT_USE", "SATURATED", "JUMP_DET", "REFERENCE_PIXEL")}
    flags |= {"GOOD": 0, "NO_GAIN_VALUE": dq.NO_GAIN_VALUE}
    shape = sci.shape[-2:]
    data = jump_class.JumpData(
        gain2d=np.full(shape, GAIN, np.float32), rnoise2d=np.full(shape, READNOISE, np.float32), dqflags=flags
    )
    data.init_arrays_from_arrays(sci.copy(), gdq.copy(), np.zeros(shape, np.uint32))
    data.nframes = 1
    data.dt_group = np.ones(1)
    data.n_reads_groupdiff = np.ones(1) * 2
    data.max_cores = "none"
    m = MIRI_DEFAULTS
    data.set_detection_settings(4.0, 6.0, 5.0, 1000.0, m["min_jump_to_flag_neighbors"], True)
    data.set_after_jump(
        m["after_jump_flag_dn1"],
        int(m["after_jump_flag_time1"] // GROUP_TIME),
        m["after_jump_flag_dn2"],
        int(m["after_jump_flag_time2"] // GROUP_TIME),
    )
    data.set_shower_info(
        True, FAINT["extend_snr_threshold"], FAINT["extend_min_area"], 1.0, 2.6, 1.1, 10, 400
    )
    data.grps_masked_after_shower = int(m["time_masked_after_shower"] // GROUP_TIME)
    data.max_shower_amplitude = 6.0 * GROUP_TIME
    return jump.detect_jumps_data(data)[0]


@pytest.mark.oracle
def test_matches_stcal(miri_result: np.ndarray) -> None:
    sci, gdq = shower_ramp()
    theirs = stcal_showers(sci, gdq)
    ours_j, theirs_j = miri_result & JUMP != 0, theirs & JUMP != 0
    overlap = (ours_j & theirs_j).sum() / max((ours_j | theirs_j).sum(), 1)
    print(f"jump flags: ours {ours_j.sum()}, stcal {theirs_j.sum()}, overlap (IoU) {overlap:.4f}")
    assert overlap > 0.9
