"""Photometry and shape of the sources of one window: pure numpy (photutils), no dask.

* Segment properties (photutils :class:`~photutils.segmentation.SourceCatalog`
  on the background-subtracted data, the convolved data giving the shape, as
  jwst does): isophotal flux and error, area, semi-major/minor σ, ellipticity,
  orientation, bounding box. The centroid is the *windowed* one (photutils
  ``centroid_win``, SExtractor's XWIN/YWIN), not jwst's first moment: on the
  NIRCam PSF the moment centroid is pulled ~0.03 px by the asymmetric wings,
  the windowed one is within 0.003 px of the true position.
* Circular apertures on the sci data (not background-subtracted) minus the local
  background: the 3σ-clipped median in a ``[bkg_inner, bkg_outer)`` annulus
  (pixel centres), its error the standard error of the median
  ``sqrt(π / 2N) · std``, as jwst's ``aper_bkg_flux``.
* DAOFind sharpness and roundness (Stetson 1987) on a Gaussian kernel of
  FWHM ``kernel_fwhm`` centred on the pixel nearest the centroid.

Data arrive in Jy per pixel (``sci [MJy/sr] × 1e6 × PIXAR_SR``), so fluxes are Jy.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from astropy.stats import SigmaClip, gaussian_fwhm_to_sigma
from astropy.utils.exceptions import AstropyUserWarning
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry
from photutils.segmentation import SegmentationImage, SourceCatalog
from scipy import ndimage

from webbflow.steps.source_catalog.segment import Detection

_CLIP = SigmaClip(sigma=3.0, maxiters=10)


class Apertures(NamedTuple):
    """Local-background-subtracted aperture photometry of n sources in k apertures.

    ``flux_err`` adds the sky term ``area × bkg_err`` in quadrature to the pixel
    errors (jwst leaves it out).
    """

    flux: np.ndarray  # (n, k) float64, Jy
    flux_err: np.ndarray  # (n, k) float64, Jy
    bkg: np.ndarray  # (n,) float64, Jy per pixel
    bkg_err: np.ndarray  # (n,) float64, Jy per pixel


def local_background(
    data: np.ndarray, covered: np.ndarray, x: np.ndarray, y: np.ndarray, inner: float, outer: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped median and its standard error in an annulus about each ``(x, y)``.

    Returns
    -------
    (median, error) : numpy.ndarray, shape (n,), float64, the unit of ``data``
        NaN where the annulus holds no covered pixel.
    """
    n = len(x)
    median, error = np.full(n, np.nan), np.full(n, np.nan)
    if n == 0:
        return median, error
    masks = CircularAnnulus(np.column_stack([x, y]), inner, outer).to_mask(method="center")
    masked = np.where(covered, data, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, mask in enumerate(masks):  # one small cutout per source, not per pixel
            values = mask.get_values(masked)
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            kept = _CLIP(values, masked=False)
            median[i] = np.median(kept)
            error[i] = np.sqrt(np.pi / (2.0 * kept.size)) * np.std(kept)
    return median, error


def aperture_fluxes(
    data: np.ndarray,
    err: np.ndarray | None,
    covered: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    radii: tuple[float, ...],
    bkg_inner: float,
    bkg_outer: float,
) -> Apertures:
    """Exact-overlap circular-aperture sums minus ``local background × aperture area``.

    Parameters
    ----------
    data, err : numpy.ndarray, shape (ny, nx), float64
        Flux per pixel and its 1σ error (Jy); pixels not ``covered`` count as 0.
    x, y : numpy.ndarray, shape (n,), float64
        Positions, pixels of ``data`` (0-based).
    radii : tuple of float
        Aperture radii, pixels.
    """
    n, k = len(x), len(radii)
    bkg, bkg_err = local_background(data, covered, x, y, bkg_inner, bkg_outer)
    if n == 0:
        return Apertures(np.zeros((0, k)), np.zeros((0, k)), bkg, bkg_err)
    pos = np.column_stack([x, y])
    apertures = [CircularAperture(pos, r) for r in radii]
    clean = np.where(covered, data, 0.0)
    error = None if err is None else np.where(covered, err, 0.0)
    table = aperture_photometry(clean, apertures, error=error, method="exact")
    flux = np.column_stack([np.asarray(table[f"aperture_sum_{i}"], np.float64) for i in range(k)])
    area = np.array([a.area for a in apertures])
    flux = flux - bkg[:, None] * area[None, :]
    if error is None:
        flux_err = np.full_like(flux, np.nan)
    else:
        pixel_err = np.column_stack(
            [np.asarray(table[f"aperture_sum_err_{i}"], np.float64) for i in range(k)]
        )
        flux_err = np.hypot(pixel_err, bkg_err[:, None] * area[None, :])
    return Apertures(flux, flux_err, bkg, bkg_err)


def dao_sharp_round(
    data: np.ndarray, x: np.ndarray, y: np.ndarray, kernel_fwhm: float
) -> tuple[np.ndarray, np.ndarray]:
    """DAOFind ``sharpness`` and ``roundness`` (symmetry) at the pixels nearest ``(x, y)``.

    The kernel is a circular Gaussian of ``kernel_fwhm`` pixels normalised to zero sum
    inside a circle of ``max(2, 1.5σ)`` pixels; cutouts falling off ``data`` are zero-filled.
    """
    sigma = kernel_fwhm * gaussian_fwhm_to_sigma
    rad = max(2.0, 1.5 * sigma)
    half = int(rad)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    inside = np.hypot(yy, xx) <= rad
    gauss = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2) * inside
    npix = inside.sum()
    kernel = (gauss - gauss.sum() / npix) / (np.sum(gauss**2) - gauss.sum() ** 2 / npix) * inside
    pad = 2 * half
    padded = np.pad(data, pad)
    conv = ndimage.convolve(padded, kernel, mode="constant")
    cy = np.floor(np.nan_to_num(y, nan=-1e6) + 0.5).astype(np.int64) + pad
    cx = np.floor(np.nan_to_num(x, nan=-1e6) + 0.5).astype(np.int64) + pad
    ok = (cy >= half) & (cy < padded.shape[0] - half) & (cx >= half) & (cx < padded.shape[1] - half)
    cy, cx = np.where(ok, cy, half), np.where(ok, cx, half)
    rows, cols = cy[:, None, None] + yy[None], cx[:, None, None] + xx[None]
    cut, cut_conv = padded[rows, cols] * ok[:, None, None], conv[rows, cols] * ok[:, None, None]
    peak, conv_peak = cut[:, half, half], cut_conv[:, half, half]
    mean = ((cut * inside).sum(axis=(1, 2)) - peak) / (npix - 1)
    c = cut_conv.copy()
    c[:, half, half] = 0.0
    q1 = c[:, : half + 1, half + 1 :].sum(axis=(1, 2))
    q2 = c[:, :half, : half + 1].sum(axis=(1, 2))
    q3 = c[:, half:, :half].sum(axis=(1, 2))
    q4 = c[:, half + 1 :, half:].sum(axis=(1, 2))
    sum4 = np.abs(c).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        sharp = (peak - mean) / conv_peak
        rnd = 2.0 * (-q1 + q2 - q3 + q4) / np.where(sum4 == 0, np.nan, sum4)
    return np.where(ok, sharp, np.nan), np.where(ok, rnd, np.nan)


def segment_catalog(det: Detection, to_jy: float, err_jy: np.ndarray) -> SourceCatalog | None:
    """photutils :class:`SourceCatalog` of every segment of ``det`` (data in Jy), or None."""
    if not det.segm.any():
        return None
    return SourceCatalog(
        det.data * to_jy,
        SegmentationImage(det.segm),
        convolved_data=det.conv * to_jy,
        error=np.where(det.covered, err_jy, 0.0),
        mask=~det.covered,
    )


def segment_columns(cat: SourceCatalog) -> dict[str, np.ndarray]:
    """Per-segment columns (window pixels, Jy, pixel², pixels, degrees) as float64 arrays."""

    def value(name: str) -> np.ndarray:
        v = getattr(cat, name)
        return np.atleast_1d(np.asarray(getattr(v, "value", v), dtype=np.float64))

    return {
        "local_label": np.atleast_1d(np.asarray(cat.label, np.int64)),
        "xcentroid": value("x_centroid_win"),
        "ycentroid": value("y_centroid_win"),
        "isophotal_flux": value("segment_flux"),
        "isophotal_flux_err": value("segment_flux_err"),
        "isophotal_area": value("area"),
        "semimajor_sigma": value("semimajor_axis"),
        "semiminor_sigma": value("semiminor_axis"),
        "ellipticity": value("ellipticity"),
        "orientation": value("orientation"),
        "bbox_xmin": value("bbox_xmin"),
        "bbox_xmax": value("bbox_xmax"),
        "bbox_ymin": value("bbox_ymin"),
        "bbox_ymax": value("bbox_ymax"),
    }
