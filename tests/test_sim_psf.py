"""Effective PSFs: normalisation, centring, pixel integration, cache, library files, fallback."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import integrate, special

from webbflow.errors import InputError, UsageError
from webbflow.sim import psf as psf_mod
from webbflow.sim.psf import PSF, get_psf

F200W_BAND = (1.764, 2.225)  # µm: stand-in top-hat edges, independent of fluxcal


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private PSF cache, empty in-memory caches, and a fixed band for every filter."""
    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path))
    monkeypatch.setattr(psf_mod, "_band", lambda *_: F200W_BAND)
    psf_mod._model_psf.cache_clear()
    psf_mod._library_psf.cache_clear()
    yield tmp_path
    psf_mod._model_psf.cache_clear()
    psf_mod._library_psf.cache_clear()


def _phase_sums(p: PSF) -> np.ndarray:
    os_ = p.oversample
    return np.array([p.data[i::os_, j::os_].sum() for i in range(os_) for j in range(os_)])


def _core_centroid(p: PSF, sigma: float = 1.0) -> np.ndarray:
    """Centroid (detector pixels) of the ePSF under a Gaussian window of ``sigma`` pixels at the centre."""
    ax = (np.arange(p.data.shape[0]) - (p.data.shape[0] - 1) / 2) / p.oversample
    w = p.data * np.exp(-0.5 * (ax[:, None] ** 2 + ax[None, :] ** 2) / sigma**2)
    return np.array([(w * ax[:, None]).sum(), (w * ax[None, :]).sum()]) / w.sum()


def test_generated_psf_normalisation_and_centre(fresh: Path) -> None:
    p = get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=41)
    assert p.data.shape == (41 * 4, 41 * 4) and p.oversample == 4
    assert p.pixel_scale == pytest.approx(0.0311)
    assert p.meta["source"] == "poppy"
    # The stated normalisation, and a detector-sampled image sums to it at any sub-pixel phase.
    assert p.data.sum() / 16 == pytest.approx(p.enclosed, rel=1e-12)
    assert 0.9 < p.enclosed < 1.0
    np.testing.assert_allclose(_phase_sums(p), p.enclosed, rtol=2e-4)
    # The core is centred on the source position.
    assert np.abs(_core_centroid(p)).max() < 0.01
    assert not p.data.flags.writeable


def test_poppy_pupil_is_jwst_like() -> None:
    pytest.importorskip("poppy")
    amp, opd = psf_mod._pupil(512)
    # 18 segments of 1.32 m flat-to-flat minus struts: ~25.4 m² collecting area.
    area = amp.sum() * (psf_mod.PUPIL_GRID_M / 512) ** 2
    assert 24.0 < area < 26.5
    np.testing.assert_allclose(amp, amp[:, ::-1], atol=1e-12)  # mirror symmetric about the +y strut
    assert amp[256, 256] == 0  # no central segment
    rms = np.sqrt(np.average(opd**2, weights=amp**2))
    assert rms == pytest.approx(psf_mod.WFE_RMS_NM * 1e-9, rel=1e-9)


def test_airy_fallback_symmetric_and_warns_once(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "poppy", None)
    monkeypatch.setattr(psf_mod, "_fallback_warned", False)
    with pytest.warns(RuntimeWarning, match="Airy"):
        p = get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=31)
    assert p.meta["source"] == "airy"
    np.testing.assert_allclose(p.data, p.data[::-1, :], atol=1e-12 * p.data.max())
    np.testing.assert_allclose(p.data, p.data[:, ::-1], atol=1e-12 * p.data.max())
    np.testing.assert_allclose(p.data, p.data.T, atol=1e-12 * p.data.max())
    psf_mod._model_psf.cache_clear()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=31)  # from the cache, and no second warning


def test_epsf_integrates_the_optical_psf_over_a_pixel() -> None:
    # A nearly monochromatic Airy ePSF against direct quadrature of the Airy pattern over pixels.
    wave_um, scale = 2.0, 0.0311
    data, _ = psf_mod._generate(wave_um * 0.9999, wave_um * 1.0001, scale, 4, 21, "airy")
    p = PSF(data, 4, scale, data.sum() / 16)
    k = np.pi * psf_mod.AIRY_DIAMETER_M * scale / psf_mod._ARCSEC / (wave_um * 1e-6)  # v per pixel

    def airy(yy: float, xx: float) -> float:
        v = k * np.hypot(xx, yy) + 1e-12
        return float(k**2 / np.pi * (special.j1(v) / v) ** 2)  # unit integral over the plane, per pixel²

    for dx, dy in [(0.0, 0.0), (0.25, 0.0), (1.0, 1.0), (-2.0, 0.5)]:
        expect, _ = integrate.dblquad(airy, dx - 0.5, dx + 0.5, dy - 0.5, dy + 0.5, epsabs=1e-9)
        assert p.evaluate(np.array(dx), np.array(dy)) == pytest.approx(expect, rel=2e-3, abs=2e-6)


def test_cache_round_trip(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=25)
    files = list((fresh / "psf-v1").glob("*.fits"))
    assert len(files) == 1 and "f200w" in files[0].name and "fov25" in files[0].name
    assert not list((fresh / "psf-v1").glob("*.tmp"))

    def no_generation(*_: object) -> None:
        raise AssertionError("regenerated despite the cache")

    psf_mod._model_psf.cache_clear()
    monkeypatch.setattr(psf_mod, "_generate", no_generation)
    second = get_psf("NIRCAM", "NRCA2", "F200W", "CLEAR", fov_pixels=25)
    np.testing.assert_array_equal(first.data, second.data)
    assert second.enclosed == first.enclosed and second.pixel_scale == first.pixel_scale
    assert get_psf("NIRCAM", "NRCA2", "F200W", "CLEAR", fov_pixels=25) is second  # in-process cache
    clone = pickle.loads(pickle.dumps(second))
    np.testing.assert_array_equal(clone.data, second.data)
    np.testing.assert_array_equal(clone.stamp(0.3, -0.2, 5), second.stamp(0.3, -0.2, 5))


def test_corrupt_cache_file_is_regenerated(fresh: Path) -> None:
    first = get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=15)
    path = Path(first.meta["file"])
    path.write_bytes(b"not a FITS file")
    psf_mod._model_psf.cache_clear()
    again = get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=15)
    np.testing.assert_array_equal(first.data, again.data)


def test_pixel_scale_and_errors(fresh: Path) -> None:
    lw = get_psf("NIRCAM", "NRCALONG", "F200W", "CLEAR", fov_pixels=15, pixel_scale=0.0629)
    assert lw.pixel_scale == pytest.approx(0.0629)
    with pytest.raises(UsageError, match="NIRISS"):
        get_psf("NIRCAM", "NIS", "F200W", "CLEAR")
    with pytest.raises(UsageError, match="fov_pixels"):
        get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=3)


def test_real_filter_band_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fluxcal = pytest.importorskip("webbflow.sim.fluxcal")
    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path))
    psf_mod._model_psf.cache_clear()
    p = get_psf("NIRISS", "NIS", "F150W", None, fov_pixels=15)
    assert p.meta["band_um"] == pytest.approx(fluxcal.filter_info("NIRISS", "F150W", None).band_um)
    assert p.pixel_scale == pytest.approx(0.0656)
    psf_mod._model_psf.cache_clear()


def test_stamp_and_envelope_bound_what_is_left_out(fresh: Path) -> None:
    p = get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", fov_pixels=31)
    big = p.stamp(0.4, -0.3, p.max_radius)
    assert big.shape == (2 * p.max_radius + 1,) * 2
    assert np.unravel_index(big.argmax(), big.shape) == (p.max_radius, p.max_radius)
    fluxes = np.array([1.0, 1e2, 1e4, 1e6])
    radii = p.radius_for(fluxes, floor=1e-3)
    assert np.all(np.diff(radii) >= 0) and radii[-1] == p.max_radius
    for flux, r in zip(fluxes[:-1], radii[:-1], strict=True):
        inner = np.zeros_like(big, dtype=bool)
        c = p.max_radius
        inner[c - r : c + r + 1, c - r : c + r + 1] = True
        assert flux * big[~inner].max(initial=0) <= 1e-3


def _gaussian_epsf(sigma: float, n: int = 84, oversample: int = 4) -> np.ndarray:
    ax = (np.arange(n) - (n - 1) / 2) / oversample
    g = np.exp(-0.5 * (ax / sigma) ** 2)
    return np.outer(g, g) / (2 * np.pi * sigma**2)  # per detector pixel: sum / os² = 1


@pytest.mark.parametrize("photutils_convention", [True, False])
def test_library_reader_picks_psf_nearest_centre(fresh: Path, photutils_convention: bool) -> None:
    sigmas = [1.0, 1.5, 2.0]
    positions = [(0.0, 0.0), (1000.0, 1050.0), (2047.0, 2047.0)]
    cube = np.stack([_gaussian_epsf(s) for s in sigmas])
    if not photutils_convention:
        cube /= 16  # a library whose PSFs sum to 1 per fine pixel
    hdu = fits.PrimaryHDU(cube)
    hdu.header["OVERSAMP"] = 4
    hdu.header["NUM_PSFS"] = 3
    for i, (py, px) in enumerate(positions):
        hdu.header[f"DET_YX{i}"] = str((py, px))
    path = fresh / "nircam_nrca1_f200w_fovp21_samp4_npsf3.fits"
    hdu.writeto(path)
    p = get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", library=path)
    assert p.meta["source"] == "library" and p.meta["position_yx"] == (1000.0, 1050.0)
    np.testing.assert_allclose(p.data, _gaussian_epsf(1.5), rtol=1e-12)
    assert p.enclosed == pytest.approx(1.0, abs=1e-6)
    assert p.evaluate(np.array(0.0), np.array(0.0)) == pytest.approx(1 / (2 * np.pi * 1.5**2), rel=1e-4)


def test_library_reader_errors(fresh: Path) -> None:
    path = fresh / "lib.fits"
    fits.PrimaryHDU(np.ones((2, 8, 8))).writeto(path)
    with pytest.raises(InputError, match="OVERSAMP"):
        get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", library=path)
    hdu = fits.PrimaryHDU(np.ones((2, 8, 8)))
    hdu.header["OVERSAMP"] = 2
    hdu.header["DET_YX0"] = "(1.0, 2.0)"
    hdu.writeto(path, overwrite=True)
    psf_mod._library_psf.cache_clear()
    with pytest.raises(InputError, match="DET_YX1"):
        get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", library=path)
    psf_mod._library_psf.cache_clear()
    with pytest.raises(InputError, match="cannot read"):
        get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR", library=fresh / "missing.fits")
