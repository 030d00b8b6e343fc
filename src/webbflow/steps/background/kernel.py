"""Pure background-subtraction arithmetic for imaging (one tile, numpy only).

As jwst 3.0's ``BackgroundStep`` for images: the background exposures are combined pixel by
pixel with a sigma-clipped mean (clipping about the median with the standard deviation,
``astropy.stats.sigma_clip``), a background with several integrations being first reduced the
same way over its integrations; the combined background is subtracted from every integration
of the science exposure and the backgrounds' DQ (every integration of every background) is
ORed into the science DQ.

Uncertainty: the combined background's variance is that of the mean of the values kept,
``Σ var / n²`` for each variance component (Poisson and read noise), and is added to the
science variances and ``err``. jwst computes the same ``sqrt(Σ err²) / n`` across backgrounds
but does not propagate it into the science ``ERR``; within one background's integrations it
averages the clipped ``err²`` instead (the variance of one integration, not of their mean).
Where every background value is NaN the result is NaN and ``DO_NOT_USE``.

Self-calibration (``statistic="median"``): the "backgrounds" are the other dithered science
exposures of the association; a source sits on different pixels in each, so a clipped
*median* across them (at least 3 recommended) estimates the sky and detector background
without the sources.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning


class ClippedMean(NamedTuple):
    """The clipped mean along the first axis, its variances and the OR of the DQ, (ny, nx)."""

    sci: np.ndarray  # float32
    var_poisson: np.ndarray  # float32
    var_rnoise: np.ndarray  # float32
    dq: np.ndarray  # uint32


class Subtracted(NamedTuple):
    """Background-subtracted science planes, shaped like the science inputs."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray


def clipped_mean(
    sci: np.ndarray,
    var_poisson: np.ndarray,
    var_rnoise: np.ndarray,
    dq: np.ndarray,
    *,
    sigma: float = 3.0,
    maxiters: int | None = None,
    statistic: str = "mean",
) -> ClippedMean:
    """Sigma-clipped mean (or median) of a stack along axis 0 (backgrounds, or one's integrations).

    Parameters
    ----------
    sci : ndarray, shape (n, ny, nx), float32, DN/s
        The stack; NaNs are ignored.
    var_poisson, var_rnoise : ndarray, shape (n, ny, nx), float32, (DN/s)²
    dq : ndarray, shape (n, ny, nx), uint32
    sigma
        Clipping limit, in standard deviations about the median (both sides).
    maxiters
        Most clipping iterations; ``None`` until nothing more is clipped.
    statistic
        ``"mean"`` (jwst) or ``"median"`` of the kept values (self-calibration from dithered
        science exposures: robust to the sources the clipping leaves); the median's variances
        are the mean's times π/2 (its asymptotic efficiency for Gaussian noise).

    Returns
    -------
    ClippedMean
        ``sci``: mean (median) of the kept values (NaN where none); variances ``Σ var / n_kept²``
        over the kept values (× π/2 for the median); ``dq``: bitwise OR over the whole stack.
        Inputs are not modified.
    """
    data = sci.astype(np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=AstropyUserWarning)  # NaNs are masked, as wanted
        warnings.filterwarnings("ignore", category=RuntimeWarning)  # all-NaN pixels
        clipped = sigma_clip(data, sigma=sigma, maxiters=maxiters, axis=0, masked=True, copy=True)
    keep = ~np.ma.getmaskarray(clipped)
    n = keep.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(keep, data, 0.0).sum(axis=0) / n
        variances = [
            np.where(keep, v.astype(np.float64), 0.0).sum(axis=0) / n**2 for v in (var_poisson, var_rnoise)
        ]
    if statistic == "median":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning)  # all-NaN pixels
            mean = np.nanmedian(np.where(keep, data, np.nan), axis=0)
        variances = [v * (np.pi / 2.0) for v in variances]
    elif statistic != "mean":
        raise ValueError(f"statistic {statistic!r}: expected 'mean' or 'median'")
    none = n == 0
    mean = np.where(none, np.nan, mean)
    vp, vr = (np.where(none, np.nan, v) for v in variances)
    return ClippedMean(
        mean.astype(np.float32),
        vp.astype(np.float32),
        vr.astype(np.float32),
        np.bitwise_or.reduce(dq.astype(np.uint32), axis=0),
    )


def subtract_background(
    sci: np.ndarray,
    err: np.ndarray,
    dq: np.ndarray,
    var_poisson: np.ndarray,
    var_rnoise: np.ndarray,
    bkg_sci: np.ndarray,
    bkg_var_poisson: np.ndarray,
    bkg_var_rnoise: np.ndarray,
    bkg_dq: np.ndarray,
    *,
    do_not_use: int,
) -> Subtracted:
    """Subtract the combined background from one science tile; inputs are not modified.

    Parameters
    ----------
    sci, err : ndarray, shape (ny, nx) or (nint, ny, nx), float32, DN/s
    dq : ndarray, same shape, uint32
    var_poisson, var_rnoise : ndarray, same shape, float32, (DN/s)²
    bkg_sci, bkg_var_poisson, bkg_var_rnoise : ndarray, shape (ny, nx), float32
        The combined background (:func:`clipped_mean`), DN/s and (DN/s)².
    bkg_dq : ndarray, shape (ny, nx), uint32
    do_not_use
        DQ bit value, set where the background is NaN.

    Returns
    -------
    Subtracted
        ``sci - bkg_sci``; variances increased by the background's; ``err = sqrt(err² + bkg_var)``;
        ``dq | bkg_dq`` (``| do_not_use`` where the background is NaN).
    """
    no_bkg = np.isnan(bkg_sci)
    bkg_var = bkg_var_poisson + bkg_var_rnoise
    out_dq = dq | bkg_dq | np.where(no_bkg, np.uint32(do_not_use), np.uint32(0))
    return Subtracted(
        (sci - bkg_sci).astype(np.float32),
        np.sqrt(err * err + bkg_var).astype(np.float32),
        out_dq.astype(np.uint32),
        (var_poisson + bkg_var_poisson).astype(np.float32),
        (var_rnoise + bkg_var_rnoise).astype(np.float32),
    )
