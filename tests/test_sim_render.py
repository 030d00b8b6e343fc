"""Rendering of point sources, Sérsic galaxies and image stamps into tiles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from photutils.aperture import CircularAperture, aperture_photometry
from scipy import integrate, optimize, special

from webbflow.errors import UsageError
from webbflow.sim import psf as psf_mod
from webbflow.sim.psf import PSF
from webbflow.sim.render import SERSIC_ENCLOSED, render_points, render_sersic, render_stamps


@pytest.fixture(scope="module")
def airy() -> PSF:
    """A band-integrated Airy ePSF: symmetric, so its centroid is exactly at the source."""
    data, _ = psf_mod._generate(1.764, 2.225, 0.0311, 4, 41, "airy")
    return PSF(data, 4, 0.0311, data.sum() / 16, {"source": "airy"})


@pytest.fixture(scope="module")
def jwst() -> PSF:
    """The poppy model ePSF (segments, struts, aberrations): asymmetric."""
    pytest.importorskip("poppy")
    data, _ = psf_mod._generate(1.764, 2.225, 0.0311, 4, 41, "poppy")
    return PSF(data, 4, 0.0311, data.sum() / 16, {"source": "poppy"})


def _tile(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((ny, nx)), np.zeros((ny, nx), dtype=np.int32)


def _moments(img: np.ndarray) -> tuple[float, float]:
    yy, xx = np.indices(img.shape)
    return float((img * yy).sum() / img.sum()), float((img * xx).sum() / img.sum())


def _weighted_centroid(img: np.ndarray, y: np.ndarray, x: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Centroid offset from (0, 0) with a Gaussian window centred there; y, x are pixel offsets."""
    w = img * np.exp(-0.5 * (x**2 + y**2) / sigma**2)
    return np.array([(w * y).sum(), (w * x).sum()]) / w.sum()


@pytest.mark.parametrize("psf_name", ["airy", "jwst"])
def test_point_centroids_unbiased_at_any_subpixel_offset(
    psf_name: str, request: pytest.FixtureRequest
) -> None:
    p: PSF = request.getfixturevalue(psf_name)
    rng = np.random.default_rng(7)
    n = 16
    # One source per 60-pixel cell, at a random sub-pixel position.
    cell_y, cell_x = np.divmod(np.arange(n), 4)
    x = 30.0 + 60 * cell_x + rng.uniform(-0.5, 0.5, n)
    y = 30.0 + 60 * cell_y + rng.uniform(-0.5, 0.5, n)
    rate, seg = _tile(240, 240)
    render_points(rate, seg, 0, 0, x, y, np.full(n, 1e5), np.arange(1, n + 1), p, 1.0, floor=1e-9)
    # Reference: the same windowed centroid of the ePSF on its fine grid, independent of the render path
    # (a window keeps the field's truncated wings, which differ with phase, out of the comparison).
    fine = (np.arange(p.data.shape[0]) - (p.data.shape[0] - 1) / 2) / p.oversample
    ref = _weighted_centroid(p.data, fine[:, None], fine[None, :])
    raw_ref = np.array(_moments(p.data)) / p.oversample - fine[-1]
    windowed, raw = [], []
    for k in range(n):
        cy, cx = round(y[k]), round(x[k])
        stamp = rate[cy - 25 : cy + 26, cx - 25 : cx + 26]
        off = np.arange(-25, 26.0)
        windowed.append(_weighted_centroid(stamp, off[:, None] + cy - y[k], off[None, :] + cx - x[k]) - ref)
        raw.append(np.array(_moments(stamp)) + np.array([cy - 25 - y[k], cx - 25 - x[k]]) - raw_ref)
        # Flux: the detector-sampled stamp holds the enclosed fraction at any phase.
        assert stamp.sum() == pytest.approx(1e5 * p.enclosed, rel=5e-4)
    assert np.abs(windowed).max() < 1e-3
    assert np.abs(raw).max() < 0.01  # plain first moments over the whole stamp
    if psf_name == "airy":
        assert np.abs(ref).max() < 1e-9


def test_point_stamps_grow_with_flux_and_edges_contribute_overlap(airy: PSF) -> None:
    rate, seg = _tile(50, 50)
    # Sources outside the tile whose stamps reach into it.
    render_points(rate, seg, 100, 200, [195.0, 260.0], [125.0, 125.0], [1e6, 1e6], [1, 2], airy, 1e9)
    assert rate[:, :3].sum() > 0 and rate[:, -3:].sum() > 0
    faint, _ = _tile(50, 50)
    render_points(faint, _tile(50, 50)[1], 100, 200, [195.0], [125.0], [1.0], [1], airy, 1e9)
    assert faint.sum() == 0  # a faint source's small stamp does not reach


def test_segmap_threshold_and_later_sources_win(airy: PSF) -> None:
    rate, seg = _tile(40, 40)
    x, y, flux = np.array([18.0, 22.0]), np.array([20.0, 20.0]), np.array([1e4, 1e4])
    render_points(rate, seg, 0, 0, x, y, flux, [5, 9], airy, 10.0)
    one, _ = _tile(40, 40)
    render_points(one, _tile(40, 40)[1], 0, 0, x[:1], y[:1], flux[:1], [5], airy, 10.0)
    two = rate - one
    assert np.all(seg[two >= 10.0] == 9)
    assert np.all(seg[(one >= 10.0) & (two < 10.0)] == 5)
    assert np.all(seg[(one < 10.0) & (two < 10.0)] == 0)
    assert seg[20, 18] == 9 and seg[20, 14] == 5


def _half_light_radius(img: np.ndarray, cy: float, cx: float, total: float) -> float:
    def excess(r: float) -> float:
        phot = aperture_photometry(img, CircularAperture((cx, cy), r), method="exact")
        return float(phot["aperture_sum"][0]) - 0.5 * total

    return float(optimize.brentq(excess, 0.3, min(img.shape) / 2 - 1, xtol=1e-4))


@pytest.mark.parametrize(("n", "r_eff"), [(1.0, 4.0), (4.0, 5.0), (0.5, 6.0), (2.5, 8.0)])
def test_sersic_flux_and_half_light_radius(n: float, r_eff: float) -> None:
    rate, seg = _tile(461, 461)
    x, y = 230.3, 229.8
    render_sersic(rate, seg, 0, 0, [x], [y], [1000.0], [r_eff], [0.0], [0.0], [n], [3], None, 0.5)
    assert rate.sum() == pytest.approx(1000.0 * SERSIC_ENCLOSED, rel=5e-3)
    assert rate.sum() <= 1000.0 * 1.001
    # Radii of a few pixels or more, where the pixel box hardly widens the profile.
    assert _half_light_radius(rate, y, x, 1000.0) == pytest.approx(r_eff, rel=0.02)
    my, mx = _moments(rate)
    assert (my, mx) == pytest.approx((y, x), abs=0.02)  # the stamp cuts the 0.5 % wings a little unevenly
    assert np.all(seg[rate >= 0.5] == 3) and np.all(seg[rate < 0.5] == 0)


@pytest.mark.parametrize(
    ("n", "r_eff", "ell"), [(4.0, 0.8, 0.0), (1.0, 0.5, 0.3), (2.0, 1.5, 0.6), (6.0, 2.0, 0.2)]
)
def test_sersic_pixels_are_integrals_of_the_profile(n: float, r_eff: float, ell: float) -> None:
    # Independent expectation: the profile normalised by 1-D quadrature, integrated over pixels by dblquad.
    q, theta = 1.0 - ell, np.radians(25.0)
    b = special.gammaincinv(2 * n, 0.5)

    def shape(r: float) -> float:
        return float(np.exp(-b * (r / r_eff) ** (1 / n)))

    norm = integrate.quad(lambda r: 2 * np.pi * q * r * shape(r), 0, np.inf, limit=200)[0]

    def profile(yy: float, xx: float) -> float:
        major = xx * np.cos(theta) + yy * np.sin(theta)
        minor = (yy * np.cos(theta) - xx * np.sin(theta)) / q
        return 100.0 * shape(float(np.hypot(major, minor))) / norm

    rate, seg = _tile(81, 81)
    fx, fy = 0.2, -0.35
    render_sersic(rate, seg, 0, 0, [40 + fx], [40 + fy], [100.0], [r_eff], [ell], [25.0], [n], [1], None, 1e9)
    for dy, dx in [(0, 0), (0, 1), (-1, 1), (2, -1)]:
        expect = integrate.dblquad(
            profile, dx - fx - 0.5, dx - fx + 0.5, dy - fy - 0.5, dy - fy + 0.5, epsabs=1e-7
        )
        assert rate[40 + dy, 40 + dx] == pytest.approx(expect[0], rel=5e-3, abs=1e-5)


def test_sersic_orientation_and_psf_convolution(airy: PSF) -> None:
    rate, seg = _tile(200, 200)
    theta = 30.0
    render_sersic(rate, seg, 0, 0, [100.0], [100.0], [500.0], [6.0], [0.5], [theta], [1.0], [1], None, 0.1)
    yy, xx = np.indices(rate.shape) - 100.0
    w = rate / rate.sum()
    cxx, cyy, cxy = (w * xx * xx).sum(), (w * yy * yy).sum(), (w * xx * yy).sum()
    assert np.degrees(0.5 * np.arctan2(2 * cxy, cxx - cyy)) == pytest.approx(theta, abs=0.5)
    conv, seg2 = _tile(200, 200)
    render_sersic(conv, seg2, 0, 0, [100.0], [100.0], [500.0], [6.0], [0.5], [theta], [1.0], [1], airy, 0.1)
    kernel_sum = airy.stamp(0, 0, airy.max_radius).sum()
    assert conv.sum() == pytest.approx(rate.sum() * kernel_sum, rel=1e-9)
    assert conv.max() < rate.max()


def test_sersic_rejects_bad_parameters() -> None:
    rate, seg = _tile(10, 10)
    with pytest.raises(UsageError, match="index 7"):
        render_sersic(rate, seg, 0, 0, [5.0], [5.0], [1.0], [2.0], [1.0], [0.0], [1.0], [7], None, 1.0)


def test_stamps_placement_rotation_and_scaling(airy: PSF) -> None:
    img = np.zeros((7, 9))
    img[3, 4] = 2.0  # centre
    img[3, 7] = 1.0  # three pixels towards +x
    rate, seg = _tile(40, 40)
    render_stamps(rate, seg, 0, 0, [20.0], [15.0], [img], [np.nan], [np.nan], [4], None, 0.5)
    np.testing.assert_array_equal(rate[12:19, 16:25], img)
    assert np.all(seg[rate >= 0.5] == 4)
    rot, seg = _tile(40, 40)
    render_stamps(rot, seg, 0, 0, [20.0], [15.0], [img], [np.nan], [90.0], [4], None, 0.5)
    assert rot[15, 20] == pytest.approx(2.0) and rot[18, 20] == pytest.approx(1.0)  # +x went to +y
    assert rot.sum() == pytest.approx(3.0)
    half, seg = _tile(40, 40)
    render_stamps(half, seg, 0, 0, [20.5], [15.0], [img], [30.0], [np.nan], [4], None, 0.5)
    assert half.sum() == pytest.approx(30.0) and half[15, 20] == pytest.approx(half[15, 21])
    conv, seg = _tile(80, 80)
    render_stamps(conv, seg, 0, 0, [40.0], [35.0], [img], [30.0], [0.0], [4], airy, 0.5)
    assert conv.sum() == pytest.approx(30.0 * airy.stamp(0, 0, airy.max_radius).sum(), rel=1e-9)


def _render_all(rate: np.ndarray, seg: np.ndarray, y0: int, x0: int, p: PSF) -> None:
    rng = np.random.default_rng(3)
    n = 60
    # Sources over region rows [1000, 1200), columns [500, 660) and a little beyond its edges.
    xs, ys = rng.uniform(485, 675, n), rng.uniform(985, 1215, n)
    img = rng.uniform(0, 1, (11, 17))
    render_stamps(
        rate,
        seg,
        y0,
        x0,
        xs[:3],
        ys[:3],
        [img] * 3,
        [50.0, np.nan, 20.0],
        [0.0, 33.0, 120.0],
        [1, 2, 3],
        p,
        0.05,
    )
    render_sersic(
        rate,
        seg,
        y0,
        x0,
        xs[3:13],
        ys[3:13],
        rng.uniform(10, 500, 10),
        rng.uniform(0.5, 8, 10),
        rng.uniform(0, 0.8, 10),
        rng.uniform(0, 180, 10),
        rng.uniform(0.5, 5, 10),
        np.arange(4, 14),
        p,
        0.05,
    )
    render_points(
        rate, seg, y0, x0, xs[13:], ys[13:], 10 ** rng.uniform(0, 5, n - 13), np.arange(14, n + 1), p, 0.05
    )


def test_tiles_are_bit_identical_to_the_whole(jwst: PSF) -> None:
    y0, x0, ny, nx = 1000, 500, 200, 160
    whole, whole_seg = _tile(ny, nx)
    _render_all(whole, whole_seg, y0, x0, jwst)
    for rows, cols in [([0, 37, 120, 200], [0, 53, 101, 160]), ([0, 1, 199, 200], [0, 80, 81, 160])]:
        rate, seg = _tile(ny, nx)
        for r0, r1 in itertools.pairwise(rows):
            for c0, c1 in itertools.pairwise(cols):
                tile, tile_seg = _tile(r1 - r0, c1 - c0)
                _render_all(tile, tile_seg, y0 + r0, x0 + c0, jwst)
                rate[r0:r1, c0:c1], seg[r0:r1, c0:c1] = tile, tile_seg
        np.testing.assert_array_equal(rate, whole)
        np.testing.assert_array_equal(seg, whole_seg)
    assert whole.sum() > 0 and len(np.unique(whole_seg)) > 20


def test_inputs_checked_and_left_unchanged(airy: PSF) -> None:
    rate, seg = _tile(20, 20)
    x, y, flux = np.array([5.0, 9.0]), np.array([4.0, 12.0]), np.array([10.0, 20.0])
    copies = [a.copy() for a in (x, y, flux)]
    render_points(rate, seg, 0, 0, x, y, flux, [1, 2], airy, 1.0)
    for a, b in zip((x, y, flux), copies, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UsageError, match="flux"):
        render_points(rate, seg, 0, 0, x, y, flux[:1], [1, 2], airy, 1.0)
    with pytest.raises(UsageError, match="int32"):
        render_points(rate, seg.astype(np.int64), 0, 0, x, y, flux, [1, 2], airy, 1.0)
    with pytest.raises(UsageError, match="float64"):
        render_points(rate.astype(np.float32), seg, 0, 0, x, y, flux, [1, 2], airy, 1.0)
    with pytest.raises(UsageError, match="non-finite"):
        render_points(rate, seg, 0, 0, [np.nan, 1.0], y, flux, [1, 2], airy, 1.0)
