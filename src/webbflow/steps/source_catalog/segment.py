"""Detection and deblending on one window (an output tile plus its halo): pure numpy.

As jwst's ``segmentation`` star finder: subtract the background, convolve with a
normalised 2-D Gaussian of FWHM ``kernel_fwhm`` pixels, keep connected groups of
at least ``npixels`` pixels above ``snr_threshold × background rms`` and deblend
them by multi-thresholding and watershed (photutils :class:`SourceFinder`).
Pixels without data (sci or err not finite, or ``wht == 0``) are set to 0 before
the convolution, so they never start a detection.

Why a window gives the mosaic's answer: the background comes from the global
:class:`~webbflow.steps.source_catalog.background.Mesh`; convolution is exact
farther than the kernel radius from the window's edge; a connected segment that
does not reach that border is the same segment it is in the whole mosaic; and
photutils deblends each segment on its own. So every source whose segment stays
inside the window is found and cut exactly as in one pass over the whole mosaic.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from photutils.segmentation import SourceFinder, make_2dgaussian_kernel
from photutils.utils import NoDetectionsWarning
from scipy import ndimage


class DetectParams(NamedTuple):
    """Detection settings (jwst ``SourceCatalogStep`` names)."""

    snr_threshold: float = 3.0
    kernel_fwhm: float = 2.0
    npixels: int = 25
    connectivity: int = 8
    deblend: bool = True
    nlevels: int = 32
    contrast: float = 0.001
    mode: str = "exponential"


class Detection(NamedTuple):
    """Result of :func:`detect` on one window; arrays of shape (ny, nx)."""

    segm: np.ndarray  # int32 local labels 1..n, 0 = background
    data: np.ndarray  # float64 background-subtracted sci (0 where not covered)
    conv: np.ndarray  # float64 ``data`` convolved with the detection kernel
    covered: np.ndarray  # bool pixels with data


def kernel_radius(kernel_fwhm: float) -> int:
    """Half-width of the detection kernel, pixels (the window border that is not exact)."""
    return int(np.ceil(2.0 * kernel_fwhm)) if kernel_fwhm > 0 else 0


def coverage(sci: np.ndarray, err: np.ndarray, wht: np.ndarray | None) -> np.ndarray:
    """``True`` where a mosaic pixel has data: finite sci and err, and positive weight."""
    covered = np.isfinite(sci) & np.isfinite(err)
    if wht is not None:
        covered &= wht > 0
    return covered


def detect(
    sci: np.ndarray,
    covered: np.ndarray,
    bkg: np.ndarray,
    rms: np.ndarray,
    params: DetectParams,
) -> Detection:
    """Segment one window.

    Parameters
    ----------
    sci : numpy.ndarray, shape (ny, nx), float
        Surface brightness (any unit, e.g. MJy/sr).
    covered : numpy.ndarray, shape (ny, nx), bool
        Pixels with data (:func:`coverage`).
    bkg, rms : numpy.ndarray, shape (ny, nx), float64
        Background and its noise, the unit of ``sci``.
    params : DetectParams

    Returns
    -------
    Detection
        ``segm`` is all zeros when nothing is detected.
    """
    data = np.where(covered, sci.astype(np.float64) - bkg, 0.0)
    if params.kernel_fwhm > 0:
        size = 2 * kernel_radius(params.kernel_fwhm) + 1
        kernel = make_2dgaussian_kernel(params.kernel_fwhm, size=size).array
        conv = ndimage.convolve(data, kernel, mode="constant", cval=0.0)
    else:
        conv = data
    threshold = params.snr_threshold * np.where(covered, rms, np.inf)
    finder = SourceFinder(
        params.npixels,
        connectivity=params.connectivity,
        deblend=params.deblend,
        n_levels=params.nlevels,
        contrast=params.contrast,
        mode=params.mode,
        relabel=True,
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        warnings.simplefilter("ignore", AstropyUserWarning)
        found = finder(conv, threshold)
    segm = np.zeros(sci.shape, np.int32) if found is None else np.asarray(found.data, dtype=np.int32)
    return Detection(segm, data, conv, covered)
