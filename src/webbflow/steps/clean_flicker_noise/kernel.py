"""Pure kernels of ``clean_flicker_noise``: scene mask, per-group fit, per-tile correction.

The algorithm is the "median" (image1overf-like) method documented for jwst's
``clean_flicker_noise`` step:

1. a *scene mask* marks background pixels: finite, non-zero pixels of a draft rate image
   whose value lies within ``[center - 3 sigma, center + n_sigma sigma]`` of its
   sigma-clipped statistics (:func:`scene_mask`);
2. for every group difference ``d = ramp[j + 1] - ramp[j]`` the mask also drops
   DO_NOT_USE/JUMP groups and NaNs, a background level is the median of the pixels left
   after a lower-half (mirrored) sigma clip, a second clip at ``n_sigma`` refines the mask,
   and the flicker pattern is the masked median of ``d - background`` along each detector
   line of the fast-read direction, per channel if asked (:func:`fit_plane`);
3. the ramp is rebuilt from its first group plus the cleaned differences
   (:func:`apply_correction`).

Steps 1 and 2 need whole planes; step 3 is tile-local.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.utils.exceptions import AstropyUserWarning

#: Clip level (sigma) of the statistics that set the clip centre and width.
STATS_SIGMA = 3.0
#: Lower clip level of bad (too low) values in the scene mask, sigma.
SIGMA_LOWER = 3.0


def clip_limits(
    values: np.ndarray, *, sigma_lower: float, sigma_upper: float, lower_half_only: bool
) -> tuple[float, float]:
    """Background limits ``(low, high)`` of a set of background-dominated values.

    Parameters
    ----------
    values
        (n,) float64, the pixels currently marked as background (no NaN).
    sigma_lower, sigma_upper
        Limits below/above the centre, in units of the clipped standard deviation.
    lower_half_only
        Take the width from the values at or below the centre, mirrored about it, so
        a long upper tail (diffuse emission, faint sources) does not widen it.

    Returns
    -------
    (float, float)
        Values outside ``[low, high]`` are not background.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        _, center, std = sigma_clipped_stats(values, sigma=STATS_SIGMA)
        if lower_half_only:
            low = values[values <= center]
            mirrored = np.concatenate((low - center, center - low)) + center
            _, center, std = sigma_clipped_stats(mirrored, sigma=STATS_SIGMA)
    return float(center - sigma_lower * std), float(center + sigma_upper * std)


def _clip(image: np.ndarray, mask: np.ndarray, *, lower: float, upper: float, half: bool) -> None:
    """Drop non-background pixels of ``image`` from ``mask`` in place (no-op on an empty mask)."""
    if not mask.any():
        return
    img = image.astype(np.float64)
    lo, hi = clip_limits(img[mask], sigma_lower=lower, sigma_upper=upper, lower_half_only=half)
    mask &= (img >= lo) & (img <= hi)


def scene_mask(rate: np.ndarray, *, n_sigma: float, single_mask: bool) -> np.ndarray:
    """Background mask from a draft rate image or cube.

    Parameters
    ----------
    rate
        (ny, nx) or (nint, ny, nx) float32 draft count rate, DN/s; NaN where unusable.
    n_sigma
        Pixels more than ``n_sigma`` clipped standard deviations above the centre hold
        signal; 0 turns the clip off.
    single_mask
        Reduce a per-integration cube mask to one plane (a pixel is background only if it
        is in every integration).

    Returns
    -------
    numpy.ndarray
        (nmask, ny, nx) bool, True on background pixels; ``nmask`` is 1 for a 2-D rate or
        ``single_mask``, else nint.
    """
    planes = rate[None] if rate.ndim == 2 else rate
    mask = ~(np.isnan(planes) | (planes == 0))
    if n_sigma > 0:
        for plane, keep in zip(planes, mask, strict=True):
            _clip(plane, keep, lower=SIGMA_LOWER, upper=n_sigma, half=False)
    if single_mask and len(mask) > 1:
        mask = np.all(mask, axis=0, keepdims=True)
    return mask


class PlaneFit(NamedTuple):
    """The fit of one group difference.

    background
        0-d float32, the background level removed before, and restored after, the fit, DN.
    stripes
        (nlines, nchannels) float32, the flicker pattern of each detector line (and channel), DN;
        0 for a line with no background pixel.
    usable
        0-d bool; False when no pixel was background (the group is left as it is).
    """

    background: np.ndarray
    stripes: np.ndarray
    usable: np.ndarray


def fit_plane(
    first: np.ndarray,
    second: np.ndarray,
    groupdq: np.ndarray,
    mask: np.ndarray,
    *,
    median_axis: int,
    nchannels: int,
    background_method: str | None,
    n_sigma: float,
    unusable: int,
) -> PlaneFit:
    """Fit the flicker pattern of the difference of two consecutive groups.

    Parameters
    ----------
    first, second
        (ny, nx) float32 groups ``j`` and ``j + 1`` of one integration, DN.
    groupdq
        (ny, nx) uint8 flags of group ``j + 1``.
    mask
        (ny, nx) bool scene mask, True on background.
    median_axis
        Array axis (0: y, 1: x) along which each line's median is taken: the detector's
        fast-read direction (x for NIRCam, y for NIRISS/FGS and MIRI).
    nchannels
        Equal channels the lines are split into along ``median_axis`` (1 or 4).
    background_method
        ``"median"`` or ``None`` (no background level, no second clip).
    n_sigma
        Clip level of the second (refining) clip; 0 turns it off.
    unusable
        Group-DQ bits that drop a pixel from the fit (DO_NOT_USE | JUMP_DET).

    Returns
    -------
    PlaneFit
    """
    image = (second - first).astype(np.float32)
    keep = mask & ((groupdq & unusable) == 0)
    nan = np.isnan(image)
    image[nan] = 0.0
    keep &= ~nan
    nlines = image.shape[1 - median_axis]
    zero = PlaneFit(np.asarray(0.0, np.float32), np.zeros((nlines, nchannels), np.float32), np.asarray(False))
    if not keep.any():
        return zero
    background = np.float32(0.0)
    residual = image
    if background_method is not None:
        _clip(image, keep, lower=3.0, upper=3.0, half=True)
        background = np.float32(np.nanmedian(image[keep]))
        residual = image - background
        if n_sigma > 0:
            _clip(residual, keep, lower=n_sigma, upper=n_sigma, half=True)
    masked = np.where(keep, residual, np.nan)
    if median_axis == 0:
        masked = masked.T
    width = masked.shape[1] // nchannels
    stripes = np.zeros((nlines, nchannels), np.float32)
    for c in range(nchannels):  # 1 or 4 channels
        part = masked[:, c * width : (c + 1) * width]
        have = np.isfinite(part).any(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            stripes[have, c] = np.nanmedian(part[have], axis=1)
    return PlaneFit(np.asarray(background), stripes, np.asarray(True))


def apply_correction(
    sci: np.ndarray,
    background: np.ndarray,
    stripes: np.ndarray,
    usable: np.ndarray,
    channel: np.ndarray,
    *,
    median_axis: int,
) -> np.ndarray:
    """Rebuild the ramps of one tile from their first group and the cleaned differences.

    Parameters
    ----------
    sci
        (nint, ngroup, ny, nx) float32 ramps, DN.
    background
        (nint, ngroup - 1) float32 background level of each difference, DN.
    stripes
        (nint, ngroup - 1, nlines, nchannels) float32 flicker pattern of the tile's lines:
        its rows (``median_axis == 1``) or columns (``median_axis == 0``), DN.
    usable
        (nint, ngroup - 1) bool; a False difference leaves its group as it was.
    channel
        (n,) int channel index of the tile's pixels along ``median_axis``.
    median_axis
        0: lines are columns; 1: lines are rows.

    Returns
    -------
    numpy.ndarray
        (nint, ngroup, ny, nx) float32 cleaned ramps, DN. Group ``j + 1`` is cleaned group
        ``j`` plus (difference − background − stripe) + background; NaN differences stay NaN.
    """
    out = sci.astype(np.float32, copy=True)
    for j in range(sci.shape[1] - 1):  # groups, not pixels
        diff = (sci[:, j + 1] - sci[:, j]).astype(np.float32)
        nan = np.isnan(diff)
        diff[nan] = 0.0
        pattern = stripes[:, j][:, :, channel]  # (nint, nlines, n)
        if median_axis == 0:
            pattern = pattern.transpose(0, 2, 1)
        bkg = background[:, j][:, None, None]
        cleaned = (diff - bkg) - pattern + bkg
        cleaned[nan] = np.nan
        out[:, j + 1] = np.where(usable[:, j][:, None, None], out[:, j] + cleaned, sci[:, j + 1])
    return out
