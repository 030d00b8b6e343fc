"""Correlated HxRG read noise: tiling invariance, readout geometry, recovered amplitudes."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

from webbflow.detectors import frame_time, get_detector
from webbflow.errors import UsageError
from webbflow.sim import noise
from webbflow.sim.noise import NoiseModel, Readout, measure_noise, read_noise

FULL = (1, 1, 2048, 2048)


def _pieces(model, readout, det, y0, y1, x0, x1, ycuts, xcuts, white):
    """The region computed tile by tile and assembled."""
    out = np.empty((readout.nints, readout.ngroups, y1 - y0, x1 - x0), np.float32)
    ys, xs = [y0, *ycuts, y1], [x0, *xcuts, x1]
    for a, b in itertools.pairwise(ys):
        for c, d in itertools.pairwise(xs):
            w = white[a - y0 : b - y0, c - x0 : d - x0]
            out[:, :, a - y0 : b - y0, c - x0 : d - x0] = read_noise(
                model, readout, det, 4, 99, a, b, c, d, w
            )
    return out


@pytest.mark.parametrize(
    ("name", "window", "region", "ycuts", "xcuts"),
    [
        ("NRCA1", FULL, (120, 300, 900, 1300), (201,), (1017, 1030)),  # 4 outputs, 3 segments
        ("NIS", FULL, (900, 1300, 120, 300), (1017, 1030), (201,)),  # fast axis y
        ("NRCB1", (1001, 501, 160, 160), (500, 660, 1000, 1160), (537, 628), (1077,)),  # 1 output, short seg
        ("GUIDER1", (301, 101, 64, 64), (100, 164, 300, 364), (111,), (333, 340)),  # sub-row low freq
    ],
)
def test_tile_independence(name, window, region, ycuts, xcuts):
    det = get_detector(name)
    model = NoiseModel.nominal(det)
    readout = Readout(nints=2, ngroups=2, nframes=2, groupgap=1, window=window)
    y0, y1, x0, x1 = region
    white = np.random.default_rng(0).uniform(5, 9, (y1 - y0, x1 - x0))
    whole = read_noise(model, readout, det, 4, 99, y0, y1, x0, x1, white)
    assert whole.shape == (2, 2, y1 - y0, x1 - x0) and whole.dtype == np.float32
    np.testing.assert_array_equal(_pieces(model, readout, det, *region, ycuts, xcuts, white), whole)


def test_deterministic_and_keyed():
    det = get_detector("NRCA2")
    model, readout = NoiseModel.nominal(det), Readout(1, 2, 1, 0, FULL)
    a = read_noise(model, readout, det, 1, 2, 0, 64, 0, 256, 6.0)
    np.testing.assert_array_equal(a, read_noise(model, readout, det, 1, 2, 0, 64, 0, 256, 6.0))
    assert not np.allclose(a, read_noise(model, readout, det, 2, 2, 0, 64, 0, 256, 6.0))
    assert not np.allclose(a, read_noise(model, readout, det, 1, 3, 0, 64, 0, 256, 6.0))


@pytest.mark.parametrize("name", ["NRCA1", "NRCA2", "NIS", "GUIDER2"])
def test_alternate_outputs_read_in_opposite_directions(name):
    """Correlated pink noise alone is the same stream in every output, mirrored in alternate ones."""
    det = get_detector(name)
    model = NoiseModel(pink_correlated=3.0, pink_uncorrelated=0.0, acn=0.0, pedestal=0.0)
    if det.amp_axis == "x":
        plane = read_noise(model, Readout(1, 1, 1, 0, FULL), det, 0, 0, 0, 40, 0, 2048, 0.0)[0, 0]
    else:
        plane = read_noise(model, Readout(1, 1, 1, 0, FULL), det, 0, 0, 0, 2048, 0, 40, 0.0)[0, 0].T
    stripes = plane.reshape(plane.shape[0], 4, 512)
    np.testing.assert_array_equal(stripes[:, 0, ::-1], stripes[:, 1])
    np.testing.assert_array_equal(stripes[:, 0], stripes[:, 2])
    assert np.std(stripes) > 1.0


@pytest.mark.parametrize(
    ("name", "window"), [("NRCA1", FULL), ("NRCA3", (1, 1, 2048, 64)), ("NIS", (1, 1, 2048, 256))]
)
def test_layout_matches_frame_time(name, window):
    det = get_detector(name)
    lay = noise._layout(window, det)
    tframe, noutputs = frame_time(det, window[2], window[3])
    assert lay.noutputs == noutputs
    assert lay.rows_per_frame * lay.row_len * noise.PIXEL_TIME == pytest.approx(tframe, abs=2e-5)
    assert lay.rows_per_frame > lay.nslow  # frame overhead rows


def test_measured_components_match_model():
    """White, pink (correlated, uncorrelated, slope) and ACN recovered within 5 % from a 512-row strip."""
    det = get_detector("NRCA1")
    model = NoiseModel.nominal(det)
    readout = Readout(1, 10, 1, 0, FULL)
    ramp = read_noise(model, readout, det, 3, 11, 0, 512, 0, 2048, det.read_noise)
    got = measure_noise(ramp, readout, det, origin=(0, 0))
    assert got["white"] == pytest.approx(det.read_noise, rel=0.01)
    assert got["pink_correlated"] == pytest.approx(model.pink_correlated, rel=0.05)
    assert got["pink_uncorrelated"] == pytest.approx(model.pink_uncorrelated, rel=0.05)
    assert got["acn"] == pytest.approx(model.acn, rel=0.05)
    assert got["alpha"] == pytest.approx(model.alpha, rel=0.05)
    assert np.median(got["white_map"]) == pytest.approx(det.read_noise, rel=0.05)
    ratio = np.log(got["psd"] / got["psd_fit"])
    assert np.all(np.abs(ratio[got["psd_freq"] > 500]) < 0.03)  # rows: thousands of periodograms per bin
    assert np.median(np.abs(ratio)) < 0.05


def test_measured_pedestal_and_white_scale_with_nframes():
    """The pedestal needs many frames: a 16-row full-width window read 700 times."""
    det = get_detector("NRCB2")
    model = NoiseModel(pink_correlated=0.0, pink_uncorrelated=0.0, acn=0.0, pedestal=2.0)
    readout = Readout(1, 700, 1, 0, (1, 101, 2048, 16))
    got = measure_noise(read_noise(model, readout, det, 8, 5, 100, 116, 0, 2048, 6.0), readout, det)
    assert got["pedestal"] == pytest.approx(model.pedestal, rel=0.05)  # 4 × 699 jumps: ≈ ±1.6 % rms
    assert got["white"] == pytest.approx(6.0, rel=0.01)
    # a group of 4 frames averages the white noise down by 2
    four = Readout(1, 2, 4, 0, (1, 101, 2048, 16))
    ramp = read_noise(NoiseModel(0, 0, 0, 0), four, det, 8, 5, 100, 116, 0, 2048, 6.0)
    assert ramp.std() == pytest.approx(3.0, rel=0.02)


@pytest.mark.slow
def test_measured_pedestal_under_nominal_pink():
    det = get_detector("NRCB2")
    model = NoiseModel.nominal(det)
    readout = Readout(1, 800, 1, 0, (1, 101, 2048, 16))
    got = measure_noise(
        read_noise(model, readout, det, 8, 5, 100, 116, 0, 2048, det.read_noise), readout, det
    )
    assert got["pedestal"] == pytest.approx(model.pedestal, rel=0.05)


@pytest.mark.slow
def test_measured_components_full_frame_niriss():
    det = get_detector("NIS")
    model = NoiseModel(pink_correlated=2.0, pink_uncorrelated=1.5, acn=1.0, pedestal=1.0, alpha=1.3)
    readout = Readout(1, 12, 1, 0, FULL)
    ramp = np.concatenate(
        [
            read_noise(model, readout, det, 1, 2, 0, 2048, x, x + 512, det.read_noise)
            for x in range(0, 2048, 512)
        ],
        axis=-1,
    )
    got = measure_noise(ramp, readout, det)
    for key in ("pink_correlated", "pink_uncorrelated", "acn", "alpha"):
        assert got[key] == pytest.approx(getattr(model, key), rel=0.05), key
    assert got["white"] == pytest.approx(det.read_noise, rel=0.01)


def test_memory_follows_the_tile():
    det = get_detector("NRCA1")
    model, readout = NoiseModel.nominal(det), Readout(1, 10, 1, 0, FULL)
    noise._lowfreq.cache_clear()
    tracemalloc.start()
    out = read_noise(model, readout, det, 0, 1, 1000, 1064, 0, 2048, 6.6)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole = 10 * 2048 * 2048 * 4
    assert peak < 4 * out.nbytes + 16 * 2**20 < whole / 4
    # the cache holds rows × groups × streams of the window, whatever the tile
    cached = noise._lowfreq(model, readout, det, 0, 1, 0)
    assert cached.shape == (9, 10, 2048 + 1) and cached.dtype == np.float32
    assert noise._lowfreq.cache_info().currsize == 1


def test_nominal_model_is_a_modest_correlated_part():
    det = get_detector("NRCALONG")
    model = NoiseModel.nominal(det)
    correlated = model.pink_correlated**2 + model.pink_uncorrelated**2 + model.acn**2 + model.pedestal**2
    assert 0.05 < correlated / det.read_noise**2 < 0.3
    assert model.pink_correlated > max(model.pink_uncorrelated, model.acn, model.pedestal)


def test_bad_arguments():
    det = get_detector("NRCA1")
    with pytest.raises(UsageError, match="pedestal"):
        NoiseModel(1.0, 1.0, 1.0, -1.0)
    with pytest.raises(UsageError, match="nframes"):
        Readout(1, 2, 0, 0, FULL)
    sub = Readout(1, 2, 1, 0, (1, 1, 64, 64))
    with pytest.raises(UsageError, match="window"):
        read_noise(NoiseModel.nominal(det), sub, det, 0, 0, 0, 65, 0, 64, 6.0)
    with pytest.raises(UsageError, match="nframes=1"):
        measure_noise(np.zeros((1, 2, 64, 64)), Readout(1, 2, 2, 0, (1, 1, 64, 64)), det)
