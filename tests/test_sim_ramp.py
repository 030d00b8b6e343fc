"""Tests of the simulated signal chain (webbflow.sim.ramp)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from webbflow.sim.ramp import (
    FULL_WELL_MARGIN,
    RampPlan,
    block_aligned_chunks,
    coupling_kernel,
    full_well,
    ipc_kernel,
    raw_kernel,
    signal_kernel,
)
from webbflow.steps.ipc.kernel import ipc_kernel as ipc_correction
from webbflow.steps.linearity.kernel import polynomial


def plan(**kw: object) -> RampPlan:
    base = RampPlan(
        seed=3,
        exposure=11,
        detector="NRCA1",
        nints=1,
        ngroups=4,
        nframes=1,
        groupgap=0,
        frame_time=10.0,
        window=(1, 1, 2048, 2048),
        cosmic_rays=False,
    )
    return dataclasses.replace(base, **kw)


def inputs(ny: int, nx: int, rate: float = 50.0, c2: float = 2e-6) -> dict[str, np.ndarray]:
    coeffs = np.zeros((3, ny, nx), np.float32)
    coeffs[1] = 1.0
    coeffs[2] = c2
    return {
        "rate": np.full((ny, nx), rate, np.float32),
        "dark": np.zeros((ny, nx), np.float32),
        "gain": np.full((ny, nx), 2.0, np.float32),
        "coeffs": coeffs,
        "saturation": np.full((ny, nx), 60000.0, np.float32),
        "superbias": np.full((ny, nx), 12000.0, np.float32),
    }


def run_signal(p: RampPlan, y0: int, ny: int, x0: int, nx: int, **kw: float) -> np.ndarray:
    y = np.arange(y0, y0 + ny)
    x = np.arange(x0, x0 + nx)
    return signal_kernel(y=y, x=x, plan=p, **inputs(ny, nx, **kw)).signal


def test_block_aligned_chunks() -> None:
    assert block_aligned_chunks(0, 2048, 512) == (512,) * 4
    assert block_aligned_chunks(100, 700, 300) == (412, 288)  # inner edges on multiples of 512
    assert sum(block_aligned_chunks(1700, 348, 256)) == 348


def test_noiseless_groups_average_their_frames() -> None:
    """Without Poisson noise, group g is the mean of its reads' accumulated charge / gain."""
    for nframes, groupgap in ((1, 0), (2, 0), (2, 3), (8, 12)):
        p = plan(poisson=False, nonlinearity=False, ngroups=3, nframes=nframes, groupgap=groupgap)
        p = dataclasses.replace(p, window=(257, 257, 8, 8))
        out = run_signal(p, 256, 8, 256, 8, rate=20.0)
        for g in range(3):
            frames = g * (nframes + groupgap) + np.arange(nframes)
            expected = np.mean(20.0 * (frames + 1) * 10.0 / 2.0)
            np.testing.assert_allclose(out[0, g], expected, rtol=1e-6)


def test_poisson_statistics() -> None:
    """Group differences are Poisson: mean = variance = rate * dt (in electrons)."""
    p = plan(nonlinearity=False, ngroups=6)
    out = run_signal(p, 0, 256, 0, 256, rate=30.0).astype(np.float64) * 2.0  # electrons
    diffs = np.diff(out[0], axis=0).ravel()
    lam = 30.0 * 10.0
    assert abs(diffs.mean() - lam) < 5 * np.sqrt(lam / diffs.size)
    assert abs(diffs.var() / lam - 1) < 0.02


def test_inverse_linearity_round_trips_through_the_correction() -> None:
    """The linearity step's polynomial takes the simulated raw signal back to the linear signal."""
    p = plan(poisson=False, ngroups=5, window=(1, 1, 4, 4))
    ins = inputs(4, 4, rate=400.0)
    out = signal_kernel(y=np.arange(4), x=np.arange(4), plan=p, **ins).signal
    linear = polynomial(out.astype(np.float64), ins["coeffs"].astype(np.float64))
    expected = 400.0 * 10.0 * np.arange(1, 6) / 2.0
    np.testing.assert_allclose(linear[0, :, 0, 0], expected, rtol=1e-5)
    assert np.all(out[0, :, 0, 0] < expected)  # the raw signal sags below linear


def test_full_well_plateau() -> None:
    p = plan(poisson=False, ngroups=10, window=(1, 1, 2, 2))
    out = run_signal(p, 0, 2, 0, 2, rate=3000.0)
    well = FULL_WELL_MARGIN * (60000.0 - 12000.0)
    assert out[0, -1, 0, 0] == pytest.approx(well, rel=1e-6)
    assert np.all(np.diff(out[0, :, 0, 0]) >= 0)
    np.testing.assert_allclose(full_well(np.array([[np.nan]]), np.array([[0.0]])), 65535.0 - 300.0)


def test_tiles_are_bit_identical_to_the_whole() -> None:
    p = plan(ngroups=3, nints=2)
    whole = run_signal(p, 0, 512, 0, 768)
    for ys, xs in (((0, 256), (0, 768)), ((256, 512), (256, 512)), ((0, 512), (512, 768))):
        part = run_signal(p, ys[0], ys[1] - ys[0], xs[0], xs[1] - xs[0])
        np.testing.assert_array_equal(part, whole[:, :, ys[0] : ys[1], xs[0] : xs[1]])


def test_misaligned_tile_is_refused() -> None:
    with pytest.raises(ValueError, match="cuts a 256-px"):
        run_signal(plan(), 100, 50, 0, 256)


def test_seed_and_exposure_change_the_draws() -> None:
    a = run_signal(plan(), 0, 256, 0, 256)
    assert not np.array_equal(a, run_signal(plan(seed=4), 0, 256, 0, 256))
    assert not np.array_equal(a, run_signal(plan(exposure=12), 0, 256, 0, 256))
    np.testing.assert_array_equal(a, run_signal(plan(), 0, 256, 0, 256))


def test_ipc_is_what_the_ipc_step_removes() -> None:
    """Coupling with the inverse of a reference deconvolution kernel, then the ipc step, is identity."""
    rng = np.random.default_rng(0)
    sig = rng.uniform(0, 1000, (1, 2, 32, 32)).astype(np.float32)
    sig[..., 8, 8] = 30000.0
    a, b = 0.006, 0.0006
    deconv = np.array([[-b, -a, -b], [-a, 1 + 4 * (a + b), -a], [-b, -a, -b]], np.float32)
    coupling = coupling_kernel(deconv)
    assert coupling.shape == (5, 5) and coupling.sum() == pytest.approx(1.0)
    assert coupling[2, 3] == pytest.approx(a, rel=0.05)  # first order: the coupling is alpha
    coupled = ipc_kernel(signal=sig, kernel=coupling).signal
    assert coupled[0, 0, 8, 9] > sig[0, 0, 8, 9] + 100  # charge leaked to the neighbour
    restored = ipc_correction(
        coupled.astype(np.float32), np.arange(32), np.arange(32), kernel=deconv, ref_border=0, frame_size=32
    ).sci
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(restored[inner], sig[inner], rtol=1e-4, atol=0.05)


def test_raw_is_digitised_and_reproducible() -> None:
    p = plan(ngroups=2, noise=None)
    sig = np.full((1, 2, 256, 256), 100.4, np.float32)
    bias = np.full((256, 256), 12000.0, np.float32)
    rn = np.full((256, 256), 6.0, np.float32)
    kw = {"y": np.arange(256), "x": np.arange(256), "signal": sig, "superbias": bias, "readnoise": rn}
    a = raw_kernel(plan=p, **kw).sci
    np.testing.assert_array_equal(a, np.round(a))
    assert a.min() >= 0 and a.max() <= 65535
    np.testing.assert_array_equal(a, raw_kernel(plan=p, **kw).sci)
    noiseless = raw_kernel(plan=dataclasses.replace(p, read_noise=False), **kw).sci
    np.testing.assert_array_equal(noiseless, np.round(12100.4))
    cds = np.diff(a[0], axis=0).std()
    assert cds == pytest.approx(6.0, rel=0.05)  # READNOISE is the noise of a two-read difference
