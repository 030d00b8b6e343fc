"""MIRI ramp simulation: kernels (reset anomaly, RSCD, EMI, showers, tiling) and an end-to-end uncal."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from webbflow.sim.miri import EmiWave, MiriPlan, ReadClock, miri_ramp_kernel
from webbflow.sim.miri.effects import PIXEL_CLOCK
from webbflow.sim.miri.showers import shower_hits

SUB64 = (1, 779, 72, 64)  # xstart, ystart, xsize, ysize
BIAS = (11000.0, 11040.0, 10970.0, 11060.0)


def _plan(window=SUB64, nints=3, ngroups=6, **kw) -> MiriPlan:
    quiet = dict(poisson=False, cosmic_rays=False, nonlinearity=False, saturation=False, read_noise=False)
    quiet.update(kw)
    return MiriPlan(
        seed=7,
        exposure=1234,
        nints=nints,
        ngroups=ngroups,
        frame_time=0.08512,
        window=window,
        bias=BIAS,
        clock=ReadClock(rowclocks=28, nsamples=1, frameclocks=8512, nrows=window[3]),
        **quiet,
    )


def _inputs(plan: MiriPlan, y0=None, y1=None, x0=None, x1=None, rate=0.0, dark=None, reset=None):
    xs, ys, nx, ny = plan.window
    y0 = ys - 1 if y0 is None else y0
    x0 = xs - 1 if x0 is None else x0
    y1 = ys - 1 + ny if y1 is None else y1
    x1 = xs - 1 + nx if x1 is None else x1
    shape = (y1 - y0, x1 - x0)
    return dict(
        y=np.arange(y0, y1),
        x=np.arange(x0, x1),
        rate=np.full(shape, rate, np.float32),
        gain=np.full(shape, 5.5, np.float32),
        coeffs=np.stack([np.zeros(shape), np.ones(shape), np.full(shape, -1e-6)]).astype(np.float32),
        saturation=np.full(shape, 60000.0, np.float32),
        readnoise=np.full(shape, 6.5, np.float32),
        dark=np.zeros((2, plan.ngroups, *shape), np.float32) if dark is None else dark,
        reset=np.zeros((1, 1, *shape), np.float32) if reset is None else reset,
        plan=plan,
    )


def _bias_map(plan: MiriPlan) -> np.ndarray:
    xs, _, nx, _ = plan.window
    return np.asarray(BIAS)[np.arange(xs - 1, xs - 1 + nx) % 4]


def test_reset_anomaly_added_equals_reference():
    plan = _plan(reset_integration=(0, 1, 1), reset_groups=3)
    rng = np.random.default_rng(1)
    reset = np.round(rng.normal(0, 50, (2, 4, 64, 72))).astype(np.float32)
    sci = miri_ramp_kernel(**_inputs(plan, reset=reset)).sci
    added = sci - _bias_map(plan)[None, None, None]
    np.testing.assert_array_equal(added[0, :3], reset[0, :3])
    np.testing.assert_array_equal(added[1, :3], reset[1, :3])
    np.testing.assert_array_equal(added[2, :3], reset[1, :3])  # later integrations: the last one
    assert not added[:, 3:].any()  # groups beyond reset_groups get nothing


def test_dark_added_equals_reference_and_rate_accumulates():
    plan = _plan()
    dark = np.zeros((2, 6, 64, 72), np.float32)
    dark[0] = (np.arange(6) * 4.0 + 10.0)[:, None, None]
    dark[1] = (np.arange(6) * 2.0)[:, None, None]
    sci = miri_ramp_kernel(**_inputs(plan, rate=55.0, dark=dark)).sci - _bias_map(plan)
    signal = 55.0 * plan.frame_time / 5.5 * (np.arange(6) + 1)
    np.testing.assert_allclose(sci[0, :, 10, 10], np.round(signal + dark[0, :, 0, 0]), atol=0.5)
    np.testing.assert_allclose(sci[2, :, 10, 10], np.round(signal + dark[1, :, 0, 0]), atol=0.5)


def test_rscd_only_in_first_groups_of_later_integrations():
    base = _plan(rscd_skip=(1, 3, 3), rscd_fraction=0.0)
    on = dataclasses.replace(base, rscd_fraction=0.02)
    inputs = _inputs(base, rate=2.0e5)
    diff = miri_ramp_kernel(**{**inputs, "plan": on}).sci - miri_ramp_kernel(**inputs).sci
    assert not diff[0].any()  # integration 1: no previous integration
    assert not diff[1:, 3:].any()  # nothing from group `skip` on: the rscd step flags exactly these
    assert (diff[1:, 0] < 0).all()  # a deficit ...
    assert (np.abs(diff[1:, 0]) > np.abs(diff[1:, 2])).all()  # ... that decays
    last = 2.0e5 * base.frame_time * 6 / 5.5  # previous integration's last-group signal, DN
    np.testing.assert_allclose(diff[1:, 0], -0.02 * last, atol=1.0)


def test_emi_frequency_and_amplitude_recovered_by_periodogram():
    from astropy.timeseries import LombScargle

    freq, amp = 218.3, 4.0
    wave = np.sin(2 * np.pi * (np.arange(64) + 0.5) / 64)
    plan = _plan(nints=2, ngroups=5, emi=(EmiWave(freq, tuple(wave), amp, 0.3),))
    sci = miri_ramp_kernel(**_inputs(plan)).sci.astype(np.float64) - _bias_map(plan)
    clock = plan.clock
    rows, cols = np.arange(64), np.arange(72)
    pix = rows[:, None] * clock.rowclocks + (cols[None, :] // 4) * clock.nsamples
    g = np.arange(5)[:, None, None] * clock.frame
    i = np.arange(2)[:, None, None, None] * (5 * clock.frame + clock.frameclocks)
    t = ((i + g + pix) * PIXEL_CLOCK).ravel()
    y = sci.ravel()
    grid = np.linspace(150.0, 400.0, 5001)
    power = LombScargle(t, y).power(grid)
    best = grid[np.argmax(power)]
    assert abs(best - freq) < 0.1
    model = LombScargle(t, y).model_parameters(best)
    assert np.hypot(model[1], model[2]) == pytest.approx(amp, rel=0.05)


def test_emi_removed_by_emicorr_kernel_fit():
    """The injected wave is what steps/emicorr fits: its fit recovers phase and amplitude."""
    from webbflow.steps.emicorr.fit import fit_emi
    from webbflow.steps.emicorr.kernel import EmiComponent, emi_sums, subtract_emi

    freq = 218.3
    wave = np.sin(2 * np.pi * (np.arange(64) + 0.5) / 64) * 3.0
    plan = _plan(nints=2, ngroups=8, emi=(EmiWave(freq, tuple(wave), 6.0, 0.25),), read_noise=True)
    sci = miri_ramp_kernel(**_inputs(plan, rate=50.0)).sci
    period = 1.0 / freq / PIXEL_CLOCK
    sums = emi_sums(
        sci, np.zeros((64, 72), np.uint32), np.arange(64), np.arange(72), threshold=1e9,
        rowclocks=28, nsamples=1, period=period, nbins=64,
    )  # fmt: skip
    dg, di = plan.clock.dphases(period, 8)
    fit = fit_emi(sums.ysum, sums.npix, wave, dphase_group=dg, dphase_int=di)
    assert abs(fit.amplitudes[0]) == pytest.approx(2.0, rel=0.05)  # 6 DN half-amplitude / 3 DN waveform
    comp = EmiComponent(wave, period, dg, fit.phases, fit.amplitudes)
    cleaned = subtract_emi(sci, np.arange(64), np.arange(72), rowclocks=28, nsamples=1, components=[comp])
    clean = miri_ramp_kernel(**_inputs(dataclasses.replace(plan, emi=()), rate=50.0)).sci
    residual = (cleaned.sci - clean).astype(np.float64)
    residual -= residual.mean(axis=(1, 2, 3), keepdims=True)  # emicorr leaves a constant per integration
    assert residual.std() < 0.6  # the 6 DN wave removed to below the 0.29 DN rounding and 4.6 DN noise


def test_showers_are_extended_and_faint():
    hits = shower_hits(200.0, 3, 4, 1, 20, 2.775, 25.0, 0, 512, 0, 512, (0, 1024, 4, 1028))
    assert hits.y.size > 0
    events = {}
    for f, y, x, q in zip(hits.frame, hits.y, hits.x, hits.electrons, strict=True):
        events.setdefault(int(f), []).append((y, x, q))
    extents = []
    for deposits in events.values():
        y, x, q = (np.array(c) for c in zip(*deposits, strict=True))
        peak = np.argmax(q)
        r = np.hypot(y - y[peak], x - x[peak])
        halo = (r > 5) & (q < 300)
        extents.append((r[q >= 5].max(), halo.sum(), q.max()))
    radius, halo_pixels, peak = max(extents)
    assert radius > 20  # halos reach tens of pixels
    assert halo_pixels > 200  # over hundreds of faint pixels
    assert peak > 3000  # around a bright core


def _tiled(plan: MiriPlan, ycuts, xcuts, **kw) -> np.ndarray:
    rows = []
    for ya, yb in itertools.pairwise(ycuts):
        tiles = [
            miri_ramp_kernel(**_inputs(plan, ya, yb, xa, xb, **kw)).sci
            for xa, xb in itertools.pairwise(xcuts)
        ]
        rows.append(np.concatenate(tiles, axis=-1))
    return np.concatenate(rows, axis=-2)


def test_same_output_on_two_tilings():
    window = (200, 200, 400, 330)  # crosses the 256 and 512 block edges in y and x
    wave = tuple(np.sin(2 * np.pi * (np.arange(32) + 0.5) / 32))
    plan = dataclasses.replace(
        _plan(window, nints=2, ngroups=4, poisson=True, cosmic_rays=True, nonlinearity=True,
              saturation=True, read_noise=True, shower_scale=300.0, flicker_rms=2.0,
              emi=(EmiWave(390.625, wave, 3.0, 0.1),), rscd_skip=(1, 2)),
        clock=ReadClock(rowclocks=270, nsamples=1, frameclocks=277504, nrows=330),
    )  # fmt: skip
    whole = _tiled(plan, [199, 529], [199, 599], rate=30.0)
    tiles = _tiled(plan, [199, 256, 512, 529], [199, 256, 512, 599], rate=30.0)
    np.testing.assert_array_equal(whole, tiles)
    assert (whole > 11200).any()  # cosmic rays and showers are there


# --- end to end: configuration → uncal -------------------------------------------------------


def _config(tmp_path, subarray="SUB64", ngroups=30, nints=3, **extra):
    from webbflow.sim.config import load_config

    lines = [
        "instrument: MIRI",
        "detector: MIRIMAGE",
        f"subarray: {subarray}",
        "filter: F770W",
        f"readout: {{readpatt: FASTR1, ngroups: {ngroups}, nints: {nints}}}",
        "seed: 11",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    path = tmp_path / "miri.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path / "cache"))


def test_uncal_opens_in_jwst_and_slopes_recover_the_seed(tmp_path, cache):
    pytest.importorskip("jwst")
    from stdatamodels.jwst import datamodels

    from webbflow.graphs.runner import RunOptions, run_simulate
    from webbflow.graphs.simulate import build_simulation
    from webbflow.io.reffiles import ReferenceResolver

    cfg = _config(tmp_path, output=f"{{directory: {tmp_path}}}")
    paths = run_simulate([cfg], RunOptions(output_dir=tmp_path, progress=False, scheduler="synchronous"))
    uncal = next(p for p in paths if p.name.endswith("_uncal.fits"))
    with datamodels.RampModel(str(uncal)) as model:
        assert model.meta.instrument.name == "MIRI"
        assert model.meta.exposure.readpatt == "FASTR1"
        assert model.data.shape == (3, 30, 64, 72)
        raw = model.data.astype(np.float64)

    # calibrate by hand with the same references: reset, linearity, dark (jwst's order)
    sim = build_simulation(cfg)
    resolver = ReferenceResolver.default()
    refs = {
        t: resolver.open(resolver.resolve(t, sim.exposure, None), sim.exposure).compute()
        for t in ("reset", "linearity", "dark", "gain", "mask")
    }
    nreset = min(refs["reset"]["sci"].shape[1], 30)
    ints = np.asarray(sim.plan.reset_integration)
    raw[:, :nreset] -= np.nan_to_num(refs["reset"]["sci"].values[ints, :nreset])
    coeffs = refs["linearity"]["coeffs"].values.astype(np.float64)
    lin = np.zeros_like(raw)
    for c in coeffs[::-1]:
        lin = lin * raw + c
    dark = refs["dark"]["sci"].values
    dark = dark if dark.ndim == 4 else dark[None]
    lin -= dark[np.minimum(np.arange(3), dark.shape[0] - 1), :30]
    first = max(sim.plan.rscd_skip)  # the rscd step's groups; the last group is lastframe's
    d = np.diff(lin[:, first:-1], axis=1)  # (int, diffs, y, x)
    slope = np.median(d, axis=(0, 1)) / sim.plan.frame_time  # DN/s, robust to cosmic rays
    expected = sim.exposure["seed"].values / refs["gain"]["sci"].values
    good = (refs["mask"]["dq"].values == 0) & (sim.exposure["seed"].values < 200)
    ratio = slope[good] / expected[good]
    # each median of ~ 60 differences of 4.6-DN reads: ~ 8 DN/s per pixel; the mean over pixels is tight
    err = np.std(ratio) / np.sqrt(ratio.size)
    assert abs(np.mean(ratio) - 1.0) < 4 * err
    # noise of a median of n independent CDS differences (READNOISE 6.5 DN): an upper bound here
    n = d.shape[0] * d.shape[1]
    assert np.std(slope[good] - expected[good]) < 1.2533 * 6.5 / sim.plan.frame_time / np.sqrt(n)


def test_graph_same_on_two_tilings_and_thread_counts(tmp_path, cache):
    import dask

    from webbflow.graphs.simulate import simulate

    cfg = _config(tmp_path, subarray="BRIGHTSKY", ngroups=3, nints=2)  # 512² crossing block edges
    a = simulate(cfg, tile=256)
    b = simulate(cfg, tile=1024)
    assert a.sci.chunks[2:] != b.sci.chunks[2:]
    with dask.config.set(scheduler="synchronous"):
        one = a.sci.values
    with dask.config.set(scheduler="threads", num_workers=2):
        two = a.sci.values
        whole = b.sci.values
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, whole)


def test_emicorr_step_removes_the_simulated_emi(tmp_path, cache):
    """The graph's EMI (default EMICORR reference: 390.625 and 10 Hz on SUB64) is what emicorr fits.

    The RESET anomaly is subtracted first: it is not a line, and the joint fit (which removes a
    line from each ramp) would otherwise absorb it.
    """
    import dask

    from webbflow.graphs.simulate import build_simulation
    from webbflow.io.reffiles import ReferenceResolver
    from webbflow.steps.emicorr.step import EmiCorrStep

    on = build_simulation(_config(tmp_path, ngroups=20, nints=2))
    off = build_simulation(_config(tmp_path, ngroups=20, nints=2, miri="{emi_amplitude: 0}"))
    assert len(on.plan.emi) == 2 and all(w.amplitude == 3.0 for w in on.plan.emi)
    resolver = ReferenceResolver.default()
    reset = resolver.open(resolver.resolve("reset", on.exposure, None), on.exposure)["sci"].values
    n = on.plan.reset_groups
    ints = np.asarray(on.plan.reset_integration)
    with dask.config.set(scheduler="synchronous"):
        data = on.exposure.compute()
        clean = off.exposure["sci"].values.astype(np.float64)
    data["sci"].values[:, :n] -= reset[ints, :n]
    clean[:, :n] -= reset[ints, :n]
    injected = data["sci"].values - clean
    assert injected.std() > 2.0
    fixed = EmiCorrStep(skip=False)(data, resolver)["sci"].values.astype(np.float64) - clean
    fixed -= fixed.mean(axis=1, keepdims=True)  # emicorr leaves a constant per ramp
    assert fixed.std() < 0.6  # 16-bit rounding of both ramps: 0.41 DN rms; read noise 4.6 DN
