"""Cosmic-ray hits: rates, geometry, charge, window masking and tiling invariance."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from webbflow.errors import UsageError
from webbflow.sim import cosmic_rays as cr

FULL = (1, 1, 2048, 2048)
TFRAME = 10.73677
PITCH_CM = 18e-4


def _hits(env="SUNMIN", scale=1.0, seed=7, nints=1, nframes=10, window=FULL, region=(0, 2048, 0, 2048)):
    return cr.cosmic_ray_hits(env, scale, seed, 3, nints, nframes, TFRAME, window, *region)


def _events(env="SUNMIN", scale=1.0, seed=7, nints=1, nframes=10, region=(0, 2048, 0, 2048)):
    return cr.cosmic_ray_events(env, scale, seed, 3, nints, nframes, TFRAME, *region)


def _image(hits, shape=(2048, 2048), y0=0, x0=0) -> np.ndarray:
    img = np.zeros(shape)
    np.add.at(img, (hits.y - y0, hits.x - x0), hits.electrons.astype(np.float64))
    return img


def test_event_count_matches_rate_area_time():
    nints, nframes = 3, 10
    ev = _events("SUNMAX", nints=nints, nframes=nframes)
    expected = cr.RATES["SUNMAX"] * (2048 * PITCH_CM) ** 2 * nframes * TFRAME * nints
    assert abs(ev.x.size - expected) < 4 * np.sqrt(expected)
    per_int = np.bincount(ev.integration, minlength=nints)
    assert np.all(np.abs(per_int - expected / nints) < 4 * np.sqrt(expected / nints))


def test_solar_minimum_has_more_cosmic_rays_and_scale_multiplies():
    assert cr.RATES["SUNMIN"] > cr.RATES["SUNMAX"] and cr.RATES["FLARES"] > 100 * cr.RATES["SUNMIN"]
    n_min, n_max = _events("SUNMIN").x.size, _events("SUNMAX").x.size
    assert n_min > 2 * n_max
    n3 = _events("SUNMAX", scale=3.0).x.size
    assert abs(n3 / n_max - 3.0) < 4 * 3.0 * np.sqrt(1 / n3 + 1 / n_max)
    assert _events("SUNMAX", scale=0.0).x.size == 0


def test_environment_names():
    assert cr.environment_rate("flare") == cr.environment_rate("FLARES") == cr.RATES["FLARES"]
    assert cr.environment_rate(" sunmin ") == cr.RATES["SUNMIN"]
    assert cr.environment_rate("None") == 0.0
    assert _hits("NONE").x.size == 0
    with pytest.raises(UsageError, match="SUNMAX"):
        cr.environment_rate("SUNMAXX")
    with pytest.raises(UsageError, match="frame_time"):
        cr.cosmic_ray_hits("SUNMIN", 1.0, 1, 1, 1, 10, 0.0, FULL, 0, 10, 0, 10)
    with pytest.raises(UsageError, match="tile"):
        cr.cosmic_ray_hits("SUNMIN", 1.0, 1, 1, 1, 10, TFRAME, FULL, 0, 4000, 0, 10)


def test_arrival_frames_positions_and_angles():
    nframes = 7
    ev = _events("SUNMIN", scale=4.0, nframes=nframes)
    n = ev.x.size
    counts = np.bincount(ev.frame, minlength=nframes)
    assert counts.size == nframes and ev.frame.min() >= 0
    assert np.all(np.abs(counts - n / nframes) < 4.5 * np.sqrt(n / nframes))
    # Uniform midpoints over the frame (pixel edges at -0.5 and 2047.5).
    assert abs(ev.x.mean() - 1023.5) < 4 * 2048 / np.sqrt(12 * n)
    assert abs(ev.y.mean() - 1023.5) < 4 * 2048 / np.sqrt(12 * n)
    # Isotropic flux through a plane: p(cos θ) = 2 cos θ, so <cos θ> = 2/3, sd = sqrt(1/18).
    cos_t = np.cos(np.deg2rad(ev.theta))
    assert abs(cos_t.mean() - 2 / 3) < 4 * np.sqrt(1 / 18 / n)
    assert abs(np.mean(np.cos(np.deg2rad(ev.phi)))) < 4 * np.sqrt(0.5 / n)
    # Projected tracks stay within the documented cap.
    proj = cr.ABSORBER_THICKNESS_UM * np.tan(np.deg2rad(ev.theta)) / 18.0
    assert proj.max() <= cr.MAX_TRACK_PX + 1e-9
    assert np.allclose(ev.path, cr.ABSORBER_THICKNESS_UM / cos_t)


def test_charge_per_micron_and_typical_hit():
    ev = _events("SUNMIN", scale=4.0)
    per_um = ev.electrons / ev.z.astype(float) ** 2 / ev.path
    hist, edges = np.histogram(per_um, bins=np.arange(0.0, 2000.0, 20.0))
    mode = edges[hist.argmax()] + 10.0
    assert abs(mode - cr.CHARGE_MPV_E_PER_UM) < 0.06 * cr.CHARGE_MPV_E_PER_UM
    # Landau-like: long tail to high losses, mean well above the most probable value.
    assert per_um.mean() > 1.15 * mode and np.median(per_um) > mode
    # A typical (median) light-ion hit frees ~5200 e- in flight (Rauscher & Fixsen 2025).
    light = ev.z <= 2
    assert 0.8 * 5200 < np.median(ev.electrons[light]) < 1.2 * 5200
    # About 1 % heavy nuclei (Z > 2), each Z^2 brighter.
    heavy = np.mean(ev.z > 2)
    assert 0.003 < heavy < 0.03


def test_deposits_conserve_charge_and_stay_near_the_track():
    ev = _events("SUNMIN")
    hits = _hits("SUNMIN")
    inner = (ev.x > 30) & (ev.x < 2017) & (ev.y > 30) & (ev.y < 2017)
    total = _image(hits)[30:2018, 30:2018].sum()
    # Deposits of edge events inside the inner box roughly balance those lost from it;
    # floor losses are tiny (< 1 e- per dropped pixel).
    assert abs(total / ev.electrons[inner].sum() - 1.0) < 0.05
    assert np.all(hits.electrons >= cr.MIN_DEPOSIT_E)
    assert hits.electrons.dtype == np.float32 and hits.y.dtype == np.int32 and hits.frame.dtype == np.int32
    # Every deposit lies within half a maximal track plus the diffusion stencil of an event of its frame.
    ev = _events("SUNMIN", region=(0, 300, 0, 300))
    hits = _hits("SUNMIN", region=(20, 280, 20, 280))
    same = hits.frame[:, None] == ev.frame[None, :]
    dist = np.hypot(hits.y[:, None] - ev.y[None, :], hits.x[:, None] - ev.x[None, :])
    nearest = np.where(same, dist, np.inf).min(axis=1)
    assert nearest.max() < cr.MAX_TRACK_PX / 2 + 3 * np.sqrt(2) + 0.5
    assert np.median(nearest) < 2.0


def test_no_deposits_in_reference_pixels_or_outside_window():
    hits = _hits("SUNMIN", scale=3.0)
    for c in (hits.y, hits.x):
        assert c.min() >= 4 and c.max() < 2044
    sub = (1, 1, 160, 160)  # a corner subarray holding reference pixels
    hits = _hits("SUNMIN", scale=50.0, window=sub, region=(0, 256, 0, 256))
    assert hits.x.size > 0
    for c in (hits.y, hits.x):
        assert c.min() >= 4 and c.max() < 160
    offset = (301, 1001, 64, 80)  # xstart, ystart, xsize, ysize
    hits = _hits("SUNMIN", scale=50.0, window=offset, region=(900, 1200, 200, 500))
    assert hits.x.size > 0
    assert hits.x.min() >= 300 and hits.x.max() < 364 and hits.y.min() >= 1000 and hits.y.max() < 1080
    assert _hits("SUNMIN", scale=50.0, window=offset, region=(0, 256, 0, 256)).x.size == 0


def test_sorted_and_deterministic():
    a = _hits("SUNMIN", nints=2, region=(0, 600, 0, 600))
    b = _hits("SUNMIN", nints=2, region=(0, 600, 0, 600))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    keys = np.stack([a.integration, a.frame, a.y, a.x]).astype(np.int64)
    order = np.lexsort(keys[::-1])
    np.testing.assert_array_equal(order, np.arange(order.size))
    assert set(np.unique(a.integration)) == {0, 1}
    c = _hits("SUNMIN", seed=8, nints=2, region=(0, 600, 0, 600))
    assert c.x.size != a.x.size or not np.array_equal(c.x, a.x)


def test_tiles_are_bit_identical_to_the_whole():
    region = (200, 760, 100, 620)
    kw = {"env": "SUNMIN", "scale": 3.0, "nints": 2}
    whole = _hits(**kw, region=region)
    ys, xs = [200, 237, 256, 300, 511, 512, 760], [100, 153, 256, 257, 400, 620]
    pieces = [
        _hits(**kw, region=(ya, yb, xa, xb))
        for (ya, yb), (xa, xb) in itertools.product(itertools.pairwise(ys), itertools.pairwise(xs))
    ]
    cols = [np.concatenate(c) for c in zip(*pieces, strict=True)]
    order = np.lexsort((cols[3], cols[2], cols[1], cols[0]), axis=0)  # stable: keeps each pixel's rows
    for got, want in zip(cols, whole, strict=True):
        np.testing.assert_array_equal(got[order], want)
    assert whole.x.size > 1000


def test_events_table_round_trips_as_ecsv(tmp_path: Path):
    ev = _events("SUNMAX", region=(0, 512, 0, 512))
    table = cr.events_table(ev)
    path = tmp_path / "jw_cosmicrays.ecsv"
    table.write(path, format="ascii.ecsv")
    back = Table.read(path, format="ascii.ecsv")
    assert len(back) == ev.x.size > 0
    assert str(back["electrons"].unit) == "electron"
    np.testing.assert_array_equal(back["frame"], ev.frame)
    np.testing.assert_allclose(back["x"], ev.x)
    assert np.all((np.floor(ev.x + 0.5) < 512) & (np.floor(ev.y + 0.5) >= 0))
