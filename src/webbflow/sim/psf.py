"""Effective point-spread functions (ePSFs) of the JWST imagers (NIRCam, NIRISS, FGS, MIRI).

A :class:`PSF` is an *effective* PSF: the optical PSF convolved with the
response of one detector pixel (a uniform square), sampled on a grid
``oversample`` times finer than the detector. Its value at a grid point is the
fraction of a point source's flux that falls in a detector pixel centred
there, so a source's detector-sampled image is the ePSF read at the pixel
centres (Anderson & King 2000, PASP 112, 1360). Sampling it on one
sub-pixel phase of the fine grid sums to :attr:`PSF.enclosed`, the true
fraction of the flux inside the field of view (not renormalized to 1: the far
wings are lost, as they are for the real telescope's finite stamps).

**MIRI imager**: the same poppy model at the MIRI band's wavelengths (5–27 µm) with 0.1108″
pixels over a wider field (:data:`MIRI_FOV_PIXELS`, 11″, so the F2550W PSF, λ/D ≈ 0.8″, keeps
≳ 90 % of its flux). What is modelled: the OTE pupil (segments, gaps, secondary and struts; the
MIRI cold stop is taken to match it), diffraction integrated over the band, the pixel box. What
is not: the imager's own wavefront error (≪ λ/14 at MIRI wavelengths), field dependence, the
detector's cruciform scattering at 5–10 µm and the pixel-to-pixel diffusion that broaden the
observed F560W core by ~10 % (Dicken et al. 2024, A&A 689, A5). So the model's FWHM is the
diffraction limit, ≈ 1.03 λ/D convolved with the pixel (F770W ≈ 0.26″ ≈ 2.4 px).

Three sources, chosen by :func:`get_psf`:

* **poppy model** (default): a JWST-like pupil (18 hexagonal segments of
  1.32 m flat-to-flat with 7 mm gaps and no central segment; a 0.74 m
  secondary obscuration on three 0.1 m struts, one along +y), a fixed
  low-order wavefront error (Noll Z4–Z11, mostly even terms with little coma,
  80 nm rms over the pupil), integrated
  over the top-hat band with the filter's pivot wavelength and width, the
  matrix Fourier transform sampled finely enough to be Nyquist sampled, then
  convolved with the pixel box in Fourier space (exact for a band-limited PSF)
  and shifted so that the core's windowed centroid (Gaussian window of
  σ ≈ λ/2D) is the source position: centroids and PSF fits measured on
  simulated images then return the catalogue positions. One model serves every
  detector of an instrument: no field dependence.
* **gridded library** (``library=``): a webbpsf/stpsf gridded PSF FITS file (a
  cube of oversampled ePSFs with ``OVERSAMP`` and ``DET_YX<i>`` keywords); the
  PSF nearest the detector centre is used, with no spatial interpolation yet.
* **Airy fallback**, when poppy cannot be imported: the same band-integrated
  pipeline with an unobstructed 6.5 m circular aperture. It warns once.

Generated PSFs are cached as FITS files in ``$WEBBFLOW_CACHE/psf-v1/`` (or the
platform's user cache directory), written under a temporary name and renamed so
that racing workers never read half a file, and kept in memory per process.
Generation is deterministic on one machine; for bit-identical tiles across
machines compute the PSF once on the client and ship the (picklable) object.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from astropy.io import fits
from scipy import ndimage, special

from webbflow.detectors import get_detector
from webbflow.errors import InputError, UsageError

log = logging.getLogger(__name__)

#: Version of the generated-PSF cache layout and model; bump when either changes.
CACHE_VERSION: Final = "psf-v1"
#: Default oversampling of generated PSFs (fine-grid points per detector pixel).
OVERSAMPLE: Final = 4
#: Default field of view of generated PSFs, detector pixels.
FOV_PIXELS: Final = 63
#: Default field of view of generated MIRI imager PSFs, detector pixels (11.2 arcsec).
MIRI_FOV_PIXELS: Final = 101
#: Nominal detector pixel scales, arcsec/pixel (the caller may pass pysiaf's).
PIXEL_SCALES: Final[Mapping[str, float]] = {
    "SHORT": 0.0311,
    "LONG": 0.0630,
    "NIS": 0.0656,
    "FGS": 0.069,
    "MIRI": 0.1108,
}
#: ``PIXEL_SCALES`` key of each non-NIRCam instrument (NIRCam's is the detector's channel).
_SCALE_KEY: Final[Mapping[str, str]] = {"NIRISS": "NIS", "FGS": "FGS", "MIRI": "MIRI"}
#: Fixed low-order wavefront error: relative weights of Noll Z4 … Z11, scaled to WFE_RMS_NM over the pupil.
WFE_WEIGHTS: Final = (25.0, -20.0, 30.0, 4.0, -3.0, 20.0, -15.0, 18.0)
#: Root-mean-square wavefront error over the pupil, nm.
WFE_RMS_NM: Final = 80.0
#: Side of the square pupil grid, m (the 2-ring pupil spans 6.64 m vertex to vertex).
PUPIL_GRID_M: Final = 6.8
#: Diameter of the Airy-fallback aperture, m.
AIRY_DIAMETER_M: Final = 6.5
_ARCSEC: Final = 180.0 / np.pi * 3600.0
_MARGIN: Final = 2  # detector pixels computed around the field so the pixel box sees its neighbours
_fallback_warned = False


@dataclass(frozen=True, eq=False)
class PSF:
    """An oversampled effective PSF of one instrument, filter and pupil.

    Attributes
    ----------
    data : numpy.ndarray, shape (ny, nx), float64, read-only
        Fraction of the source flux falling in a detector pixel whose centre
        sits at each fine-grid point. The source is at the array centre,
        ``((ny - 1) / 2, (nx - 1) / 2)``; fine-grid points are ``1 / oversample``
        detector pixels apart. ``data.sum() / oversample**2 == enclosed``.
    oversample : int
        Fine-grid points per detector pixel along each axis.
    pixel_scale : float
        Detector pixel scale, arcsec/pixel.
    enclosed : float
        Fraction of the flux inside the field of view (≤ 1).
    meta : dict
        Provenance: ``source`` (``poppy``, ``library``, ``airy``), instrument,
        filter, pupil, band, file name…
    """

    data: np.ndarray
    oversample: int
    pixel_scale: float
    enclosed: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.array(self.data, dtype=np.float64, order="C")
        if arr.ndim != 2 or min(arr.shape) < 2 * self.oversample:
            raise UsageError(f"PSF data must be 2-D and span at least 2 pixels, got shape {arr.shape}")
        arr.setflags(write=False)
        object.__setattr__(self, "data", arr)

    def __getstate__(self) -> dict[str, Any]:
        # Ship only the defining fields: the spline coefficients are rebuilt on first use.
        return {k: self.__dict__[k] for k in ("data", "oversample", "pixel_scale", "enclosed", "meta")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def fov_pixels(self) -> float:
        """Width of the field of view, detector pixels."""
        return min(self.data.shape) / self.oversample

    @property
    def max_radius(self) -> int:
        """Largest stamp half-width: its pixel centres stay inside the field at any sub-pixel offset."""
        return max(int((self.fov_pixels - 1.0) // 2), 0)

    @functools.cached_property
    def _coeffs(self) -> np.ndarray:
        # Zero border so that evaluations just outside the field fall smoothly to 0.
        padded = np.pad(self.data, 4)
        return ndimage.spline_filter(padded, order=3, mode="mirror")

    @functools.cached_property
    def envelope(self) -> np.ndarray:
        """Largest ePSF value at Chebyshev distance ≥ r + 0.5 pixels, for r = 0 … max_radius.

        A square stamp of half-width ``r`` centred on the source's nearest pixel
        leaves out only pixels at least ``r + 0.5`` pixels from the source, so
        ``flux * envelope[r]`` bounds the largest pixel value it misses.
        """
        ny, nx = self.data.shape
        dy = np.abs(np.arange(ny) - (ny - 1) / 2.0)[:, None]
        dx = np.abs(np.arange(nx) - (nx - 1) / 2.0)[None, :]
        dist = np.maximum(dy, dx) / self.oversample
        order = np.argsort(dist, axis=None)[::-1]
        tail_max = np.maximum.accumulate(self.data.ravel()[order])  # max over all points farther out
        dist_sorted = dist.ravel()[order]
        radii = np.arange(self.max_radius + 1) + 0.5
        # Index of the last point (in descending distance) still at distance >= r + 0.5.
        last = np.searchsorted(-dist_sorted, -radii, side="right") - 1
        return np.where(last >= 0, tail_max[np.maximum(last, 0)], 0.0)

    def radius_for(self, flux: np.ndarray, floor: float, min_radius: int = 3) -> np.ndarray:
        """Stamp half-width for each flux so that no left-out pixel exceeds ``floor``.

        Parameters
        ----------
        flux : numpy.ndarray, shape (n,), float64
            Source fluxes, e⁻/s.
        floor : float
            Largest per-pixel value a stamp may leave out, e⁻/s.
        min_radius : int
            Smallest half-width returned.

        Returns
        -------
        numpy.ndarray, shape (n,), int64
            Half-widths in ``[min(min_radius, max_radius), max_radius]``.
        """
        env = self.envelope
        # envelope is non-increasing: count radii whose left-out maximum is still too bright.
        n_bright = np.searchsorted(-env, -floor / np.maximum(np.abs(flux), 1e-300), side="left")
        lo = min(min_radius, self.max_radius)
        return np.clip(n_bright, lo, self.max_radius).astype(np.int64)

    def evaluate(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """ePSF at pixel-centre offsets ``(dx, dy)`` from the source, by cubic spline.

        Parameters
        ----------
        dx, dy : numpy.ndarray, float64, broadcastable shapes
            Offset of each pixel centre from the source, detector pixels.

        Returns
        -------
        numpy.ndarray, float64, the broadcast shape
            Fraction of the source flux in each pixel; 0 outside the field of view.
        """
        ny, nx = self.data.shape
        dx, dy = np.broadcast_arrays(np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64))
        u = (ny - 1) / 2.0 + 4 + dy * self.oversample
        v = (nx - 1) / 2.0 + 4 + dx * self.oversample
        out = ndimage.map_coordinates(self._coeffs, [u.ravel(), v.ravel()], order=3, prefilter=False)
        # The field's edge is half a fine step beyond the outer samples; the spline falls to the zero border.
        inside = (u.ravel() >= 3.5) & (u.ravel() <= ny + 3.5) & (v.ravel() >= 3.5) & (v.ravel() <= nx + 3.5)
        return np.where(inside, out, 0.0).reshape(np.shape(u))

    def stamp(self, dx: float, dy: float, radius: int) -> np.ndarray:
        """Detector-sampled image of a unit-flux source.

        Parameters
        ----------
        dx, dy : float
            Offset of the source from the stamp's central pixel, detector pixels.
        radius : int
            Half-width of the stamp, pixels.

        Returns
        -------
        numpy.ndarray, shape (2 * radius + 1, 2 * radius + 1), float64
            Fraction of the flux in each pixel; the source sits at
            ``(radius + dy, radius + dx)``.
        """
        if radius < 0:
            raise UsageError(f"PSF stamp radius must be >= 0, got {radius}")
        off = np.arange(-radius, radius + 1, dtype=np.float64)
        return self.evaluate(off[None, :] - dx, off[:, None] - dy)


def get_psf(
    instrument: str,
    detector: str,
    filter: str,
    pupil: str | None,
    *,
    library: str | os.PathLike[str] | None = None,
    fov_pixels: int | None = None,
    pixel_scale: float | None = None,
) -> PSF:
    """The effective PSF of an exposure, generated once and cached.

    Parameters
    ----------
    instrument, detector, filter, pupil : str
        ``INSTRUME``, ``DETECTOR``, ``FILTER`` and ``PUPIL`` keyword values
        (pupil ``None`` for FGS).
    library : path, optional
        A webbpsf/stpsf gridded PSF library FITS file to use instead of the model.
    fov_pixels : int, optional
        Field of view of a generated PSF, detector pixels (default :data:`FOV_PIXELS`; MIRI
        :data:`MIRI_FOV_PIXELS`).
    pixel_scale : float, optional
        Detector pixel scale, arcsec/pixel (default :data:`PIXEL_SCALES` for the detector).

    Returns
    -------
    PSF
        Shared between calls with the same arguments: do not modify.
    """
    det = get_detector(detector)
    if det.instrument != instrument.upper():
        raise UsageError(f"detector {detector!r} belongs to {det.instrument}, not {instrument!r}")
    key = det.channel if det.instrument == "NIRCAM" else _SCALE_KEY[det.instrument]
    scale = float(pixel_scale) if pixel_scale is not None else PIXEL_SCALES[key]
    default_fov = MIRI_FOV_PIXELS if det.instrument == "MIRI" else FOV_PIXELS
    fov = int(fov_pixels) if fov_pixels is not None else default_fov
    if fov < 5:
        raise UsageError(f"fov_pixels must be >= 5, got {fov}")
    if library is not None:
        return _library_psf(str(Path(library).resolve()), det.ny, det.nx, scale)
    pupil_name = str(pupil).upper() if pupil else "NONE"
    return _model_psf(det.instrument, str(filter).upper(), pupil_name, round(scale, 7), OVERSAMPLE, fov)


def cache_dir() -> Path:
    """Directory of the generated-PSF FITS files (``$WEBBFLOW_CACHE/psf-v1``)."""
    root = os.environ.get("WEBBFLOW_CACHE")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("webbflow")
    return Path(root) / CACHE_VERSION


def _band(instrument: str, filter: str, pupil: str) -> tuple[float, float]:
    """Edges ``(λ1, λ2)``, µm, of the top-hat band of a filter/pupil (same pivot and width)."""
    from webbflow.sim.fluxcal import filter_info

    info = filter_info(instrument, filter, None if pupil == "NONE" else pupil)
    lo, hi = info.band_um
    return float(lo), float(hi)


@functools.lru_cache(maxsize=32)
def _model_psf(instrument: str, filter: str, pupil: str, scale: float, oversample: int, fov: int) -> PSF:
    lo, hi = _band(instrument, filter, pupil)
    source = "poppy" if _have_poppy() else "airy"
    name = f"{instrument}_{filter}_{pupil}_{lo:.4f}-{hi:.4f}um_s{scale:.6f}_os{oversample}_fov{fov}"
    path = cache_dir() / f"{name.lower()}_{source}.fits"
    meta = {
        "source": source,
        "instrument": instrument,
        "filter": filter,
        "pupil": pupil,
        "band_um": (lo, hi),
        "file": str(path),
    }
    if path.exists():
        try:
            return _read_cached(path, meta)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("regenerating unreadable cached PSF %s (%s)", path, exc)
    data, nwaves = _generate(lo, hi, scale, oversample, fov, source)
    psf = PSF(data, oversample, scale, float(data.sum()) / oversample**2, {**meta, "nwaves": nwaves})
    _write_cached(path, psf)
    return psf


def _have_poppy() -> bool:
    global _fallback_warned
    try:  # find_spec, not import: importing poppy takes seconds and a cached PSF does not need it
        found = importlib.util.find_spec("poppy") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        if not _fallback_warned:
            _fallback_warned = True
            msg = "poppy is not importable: using an Airy-disc PSF (no segments, struts or wavefront error)"
            log.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return False
    return True


def _read_cached(path: Path, meta: dict[str, Any]) -> PSF:
    with fits.open(path, memmap=False) as hdul:
        hdr = hdul[0].header
        data = np.asarray(hdul[0].data, dtype=np.float64)
        return PSF(
            data,
            int(hdr["OVERSAMP"]),
            float(hdr["PIXELSCL"]),
            float(hdr["ENCLOSED"]),
            {**meta, "nwaves": int(hdr["NWAVES"])},
        )


def _write_cached(path: Path, psf: PSF) -> None:
    hdu = fits.PrimaryHDU(psf.data)
    hdr = hdu.header
    hdr["OVERSAMP"] = (psf.oversample, "fine-grid points per detector pixel")
    hdr["PIXELSCL"] = (psf.pixel_scale, "detector pixel scale, arcsec")
    hdr["ENCLOSED"] = (psf.enclosed, "fraction of the flux inside the field")
    hdr["NWAVES"] = (psf.meta["nwaves"], "wavelengths integrated")
    for key, fits_key in (("instrument", "INSTRUME"), ("filter", "FILTER"), ("pupil", "PUPIL")):
        hdr[fits_key] = psf.meta[key]
    hdr["PSFSRC"] = (psf.meta["source"], "poppy model or Airy fallback")
    hdr["BAND_LO"] = (psf.meta["band_um"][0], "short edge of the top-hat band, um")
    hdr["BAND_HI"] = (psf.meta["band_um"][1], "long edge of the top-hat band, um")
    hdr["WFERMS"] = (WFE_RMS_NM, "rms wavefront error, nm")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            hdu.writeto(fh)
        Path(tmp).replace(path)  # atomic: a racing reader sees the old file or the whole new one
    except OSError as exc:
        log.warning("cannot cache PSF in %s (%s); keeping it in memory only", path.parent, exc)


def _n_waves(lo: float, hi: float) -> int:
    # Enough wavelengths that rings out to ~25 lambda/D blur as they do over a continuous band.
    return int(np.clip(np.ceil(50.0 * (hi - lo) / (hi + lo)), 3, 15))


def _generate(
    lo: float, hi: float, scale: float, oversample: int, fov: int, source: str
) -> tuple[np.ndarray, int]:
    """Band-integrated ePSF over ``[lo, hi]`` µm, shape (fov * oversample,) * 2: see the module docstring."""
    nwaves = _n_waves(lo, hi)
    waves = (lo + (hi - lo) * (np.arange(nwaves) + 0.5) / nwaves) * 1e-6  # m, equal photon weights
    # Odd supersampling that makes the fine grid Nyquist sampled at the shortest wavelength.
    nyquist = waves.min() / (2.0 * PUPIL_GRID_M) * _ARCSEC
    sup = int(np.ceil(scale / oversample / nyquist))
    sup += 1 - sup % 2
    step = oversample * sup  # internal points per detector pixel
    n_int = (fov + 2 * _MARGIN) * step
    scale_int = scale / step
    intensity = np.zeros((n_int, n_int))
    for wave in waves:
        mono = _mft_psf(wave, scale_int, n_int) if source == "poppy" else _airy_psf(wave, scale_int, n_int)
        intensity += mono / nwaves
    # Pixel response: a box one detector pixel wide, applied as its sinc transfer function; and a
    # shift that puts the core's windowed centroid on the grid centre, where a source's position is.
    sigma = 0.5 * (lo + hi) * 1e-6 / (2.0 * PUPIL_GRID_M) * _ARCSEC / scale_int  # ~lambda/2D, internal px
    shift_y, shift_x = _core_centroid(intensity, sigma)
    npad = n_int + 2 * step
    freq_y = np.fft.fftfreq(npad)[:, None]
    freq_x = np.fft.rfftfreq(npad)[None, :]
    spec = np.fft.rfft2(intensity, s=(npad, npad)) * np.sinc(step * freq_y) * np.sinc(step * freq_x)
    spec *= np.exp(2j * np.pi * (freq_y * shift_y + freq_x * shift_x))
    epsf = np.fft.irfft2(spec, s=(npad, npad))[:n_int, :n_int] * step**2
    # Keep the points that coincide with the output grid (internal index sup*m + (sup-1)/2), less the margin.
    fine = epsf[(sup - 1) // 2 :: sup, (sup - 1) // 2 :: sup]
    cut = _MARGIN * oversample
    return np.ascontiguousarray(fine[cut:-cut, cut:-cut]), nwaves


def _core_centroid(image: np.ndarray, sigma: float) -> tuple[float, float]:
    """Offset from the array centre of the Gaussian-windowed centroid of the core, pixels.

    The window (``sigma`` pixels) follows the centroid until it settles, like SExtractor's XWIN.
    """
    ny, nx = image.shape
    yy = np.arange(ny)[:, None] - (ny - 1) / 2.0
    xx = np.arange(nx)[None, :] - (nx - 1) / 2.0
    cy = cx = 0.0
    for _ in range(20):
        weighted = image * np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / sigma**2)
        total = weighted.sum()
        # For a Gaussian-like core, doubling the step converges in a few iterations.
        dy = 2.0 * ((weighted * yy).sum() / total - cy)
        dx = 2.0 * ((weighted * xx).sum() / total - cx)
        cy, cx = cy + dy, cx + dx
        if abs(dy) < 1e-6 and abs(dx) < 1e-6:
            break
    return cy, cx


@functools.lru_cache(maxsize=2)
def _pupil(npix: int) -> tuple[np.ndarray, np.ndarray]:
    """JWST-like pupil amplitude (gray at segment edges) and OPD (m) on an npix grid of PUPIL_GRID_M."""
    import astropy.units as u
    import poppy

    grid = PUPIL_GRID_M * u.m
    segments = poppy.MultiHexagonAperture(rings=2, flattoflat=1.32, gap=0.007, segmentlist=list(range(1, 19)))
    secondary = poppy.SecondaryObscuration(
        secondary_radius=0.37, n_supports=3, support_width=0.1, support_angle_offset=90.0
    )
    fine = 2 * npix  # sample the hard edges twice as finely, then average: 7 mm gaps stay visible
    amp = segments.sample(wavelength=2e-6 * u.m, npix=fine, grid_size=grid, what="amplitude")
    amp = amp * secondary.sample(wavelength=2e-6 * u.m, npix=fine, grid_size=grid, what="amplitude")
    amp = np.asarray(amp, dtype=np.float64).reshape(npix, 2, npix, 2).mean(axis=(1, 3))
    coeffs = np.concatenate([np.zeros(3), np.asarray(WFE_WEIGHTS) * 1e-9])  # Noll 1-3 (piston, tilts) = 0
    wfe = poppy.ZernikeWFE(coefficients=coeffs, radius=PUPIL_GRID_M / 2.0)
    opd = np.asarray(wfe.sample(wavelength=2e-6 * u.m, npix=npix, grid_size=grid, what="opd"), np.float64)
    weight = amp**2
    # Remove the mean wavefront slope (G-tilt): the PSF centroid then sits on the chief ray.
    slope_y, slope_x = (np.average(g, weights=weight) for g in np.gradient(opd))
    ramp = np.arange(npix) - (npix - 1) / 2.0
    opd = opd - slope_y * ramp[:, None] - slope_x * ramp[None, :]
    opd -= np.average(opd, weights=weight)
    opd *= WFE_RMS_NM * 1e-9 / np.sqrt(np.average(opd**2, weights=weight))
    return amp, opd


def _mft_psf(wave: float, scale_int: float, n_int: int) -> np.ndarray:
    """Monochromatic PSF, fraction of the pupil's power per internal pixel, centred at (n-1)/2."""
    from poppy.matrixDFT import matrix_dft

    lam_d = wave / PUPIL_GRID_M * _ARCSEC  # arcsec per lambda/D of the pupil grid
    half_fov = n_int * scale_int / 2.0 / lam_d  # lambda/D
    npix = 512 if half_fov < 200 else 1024  # the pupil grid must resolve the highest spatial frequency
    amp, opd = _pupil(npix)
    field = amp * np.exp(2j * np.pi * opd / wave)
    image = matrix_dft(field, n_int * scale_int / lam_d, n_int, centering="ADJUSTABLE")
    return np.abs(image) ** 2 / np.sum(amp**2)


def _airy_psf(wave: float, scale_int: float, n_int: int) -> np.ndarray:
    """Monochromatic Airy pattern of a clear circular aperture, fraction of the flux per pixel."""
    axis = (np.arange(n_int) - (n_int - 1) / 2.0) * scale_int / _ARCSEC  # rad
    theta = np.hypot(axis[:, None], axis[None, :])
    v = np.pi * AIRY_DIAMETER_M * theta / wave
    core = np.where(v > 1e-8, 2.0 * special.j1(v) / np.where(v > 1e-8, v, 1.0), 1.0)
    peak = np.pi * AIRY_DIAMETER_M**2 / (4.0 * wave**2)  # per steradian, for unit total flux
    return peak * core**2 * (scale_int / _ARCSEC) ** 2


@functools.lru_cache(maxsize=8)
def _library_psf(path: str, det_ny: int, det_nx: int, scale: float) -> PSF:
    """The PSF nearest the detector centre in a webbpsf/stpsf gridded library file."""
    try:
        with fits.open(path, memmap=False) as hdul:
            hdr = hdul[0].header
            cube = np.asarray(hdul[0].data, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the PSF library ({exc})") from exc
    if "OVERSAMP" not in hdr:
        raise InputError(f"{path}: keyword OVERSAMP missing (expected a gridded PSF library)")
    oversample = int(hdr["OVERSAMP"])
    if cube.ndim == 2:
        cube = cube[None]
    if cube.ndim != 3:
        raise InputError(f"{path}: primary data must be (npsf, ny, nx), got shape {cube.shape}")
    try:
        yx = np.array([_parse_yx(hdr[f"DET_YX{i}"]) for i in range(cube.shape[0])])
    except KeyError as exc:
        raise InputError(f"{path}: keyword {exc.args[0]} missing: one DET_YX<i> per PSF expected") from exc
    except ValueError as exc:
        raise InputError(f"{path}: DET_YX keywords must read '(y, x)': {exc}") from exc
    best = int(np.argmin(np.hypot(yx[:, 0] - (det_ny - 1) / 2.0, yx[:, 1] - (det_nx - 1) / 2.0)))
    data = cube[best]
    # Libraries store either photutils' convention (sum = oversample**2) or a unit sum per fine pixel.
    total = float(data.sum())
    if total < 0.5 * oversample**2:
        data = data * oversample**2
    meta = {
        "source": "library",
        "file": path,
        "position_yx": tuple(float(v) for v in yx[best]),
        "instrument": hdr.get("INSTRUME", ""),
        "filter": hdr.get("FILTER", ""),
        "detector": hdr.get("DETECTOR", ""),
    }
    return PSF(data, oversample, scale, float(data.sum()) / oversample**2, meta)


def _parse_yx(text: object) -> tuple[float, float]:
    parts = str(text).strip().strip("()").split(",")
    if len(parts) != 2:
        raise ValueError(repr(text))
    return float(parts[0]), float(parts[1])
