"""Pure outlier-flagging arithmetic on one tile (numpy/scipy only).

Imaging outlier detection compares each exposure with the median of all of them
blotted back onto its pixels (the "blot", ``B``). As in jwst 3.0 (and drizzlepac's
``driz_cr`` before it), a pixel of science value ``S`` and error ``σ`` is an outlier when

    first pass   |S − B − b| > scale₁ |∂B| + snr₁ σ
    second pass  |S − B − b| > scale₂ |∂B| + snr₂ σ   and a 3×3 neighbour passed the first

where ``b`` is the sky level still in ``S`` but not in ``B`` (0 once sky was subtracted),
and ``|∂B|`` the largest absolute difference between a blot pixel and its four
neighbours: it loosens the test on steep profiles (stars), where small alignment or
interpolation errors make large residuals. The final mask is first-pass-dilated ∩
second-pass, so the lower thresholds catch the wings of a cosmic ray next to its core.
A pixel already ``DO_NOT_USE`` or with non-finite data, and a pixel where the blot is
NaN (no input covered it), is never flagged. Flagged pixels get ``DO_NOT_USE | OUTLIER``.

Neighbour dependence: ``|∂B|`` reads one pixel around, the dilation one more, so a
tile needs a 2-pixel halo (``map_tiles(..., depth=2)``) to be exact across tile edges.

Without resampling (all inputs on one pixel grid) jwst uses a plain test,
``|S − M| > snr₁ σ`` with ``M`` the median (:func:`flag_direct`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

#: Halo (pixels) :func:`flag_resampled` needs on each side of a tile: 1 for |∂B|, 1 for the dilation.
HALO = 2

_NEIGHBOURS = np.ones((3, 3), dtype=bool)


class Flagged(NamedTuple):
    """The new DQ plane, uint32, same shape as the input tile."""

    dq: np.ndarray


def abs_derivative(image: np.ndarray) -> np.ndarray:
    """Largest absolute difference between each pixel and its 4 neighbours.

    Parameters
    ----------
    image : ndarray, shape (ny, nx), float
        E.g. the blotted median, MJy/sr.

    Returns
    -------
    ndarray, shape (ny, nx), same dtype
        ``max(|I[y,x] − I[y±1,x]|, |I[y,x] − I[y,x±1]|)`` over the neighbours inside the
        array whose value is finite; 0 where there is none; NaN where ``image`` is NaN.
    """
    out = np.zeros_like(image)
    dy = np.abs(np.diff(image, axis=0))
    dx = np.abs(np.diff(image, axis=1))
    # fmax ignores the NaN differences a NaN neighbour makes
    out[1:] = np.fmax(out[1:], dy)
    out[:-1] = np.fmax(out[:-1], dy)
    out[:, 1:] = np.fmax(out[:, 1:], dx)
    out[:, :-1] = np.fmax(out[:, :-1], dx)
    out[np.isnan(image)] = np.nan
    return out


def _usable(sci: np.ndarray, dq: np.ndarray, do_not_use: int) -> np.ndarray:
    return np.isfinite(sci) & ((dq & np.uint32(do_not_use)) == 0)


def _flag(dq: np.ndarray, mask: np.ndarray, flag: int) -> np.ndarray:
    return dq | np.where(mask, np.uint32(flag), np.uint32(0))


def flag_resampled(
    sci: np.ndarray,
    err: np.ndarray,
    dq: np.ndarray,
    blot: np.ndarray,
    *,
    snr1: float,
    snr2: float,
    scale1: float,
    scale2: float,
    backg: float,
    do_not_use: int,
    outlier: int,
) -> Flagged:
    """Flag outliers of one tile against the blotted median; inputs are not modified.

    Parameters
    ----------
    sci : ndarray, shape (ny, nx), float32, MJy/sr
        Calibrated data (sky not subtracted when ``backg`` carries the sky level).
    err : ndarray, shape (ny, nx), float32, MJy/sr
        1-σ error of ``sci``; NaN counts as 0 (as jwst).
    dq : ndarray, shape (ny, nx), uint32
    blot : ndarray, shape (ny, nx), float32, MJy/sr
        The median mosaic blotted onto these pixels; NaN where it has no data.
    snr1, snr2
        First- and second-pass thresholds, in σ (jwst ``snr = "5.0 4.0"``).
    scale1, scale2
        First- and second-pass multipliers of ``|∂blot|`` (jwst ``scale = "1.2 0.7"``).
    backg
        Sky level in ``sci`` that is not in ``blot``, MJy/sr.
    do_not_use, outlier
        DQ bit values.

    Returns
    -------
    Flagged
        ``dq`` with ``do_not_use | outlier`` added on outliers.
    """
    usable = _usable(sci, dq, do_not_use)
    deriv = abs_derivative(blot.astype(np.float32, copy=False))
    noise = np.nan_to_num(err, nan=0.0, posinf=0.0, neginf=0.0)
    with np.errstate(invalid="ignore"):
        residual = np.abs(sci - blot - np.float32(backg))
        # NaN residual or threshold (no blot) compares False: never flagged
        first = usable & (residual > np.float32(scale1) * deriv + np.float32(snr1) * noise)
        second = usable & (residual > np.float32(scale2) * deriv + np.float32(snr2) * noise)
    near_first = ndimage.binary_dilation(first, structure=_NEIGHBOURS)
    return Flagged(_flag(dq, near_first & second, do_not_use | outlier))


def flag_direct(
    sci: np.ndarray,
    err: np.ndarray,
    dq: np.ndarray,
    median: np.ndarray,
    *,
    snr: float,
    do_not_use: int,
    outlier: int,
) -> Flagged:
    """Flag ``|sci − median| > snr σ`` (inputs on the median's own grid); inputs are not modified.

    Parameters
    ----------
    sci, err : ndarray, shape (ny, nx), float32, MJy/sr
        Data and its 1-σ error (NaN error counts as 0, as jwst).
    dq : ndarray, shape (ny, nx), uint32
    median : ndarray, shape (ny, nx), float32, MJy/sr
        Per-pixel median of the inputs; NaN where none was usable.
    snr
        Threshold, in σ.
    do_not_use, outlier
        DQ bit values.

    Returns
    -------
    Flagged
        ``dq`` with ``do_not_use | outlier`` added on outliers.
    """
    noise = np.nan_to_num(err, nan=0.0, posinf=0.0, neginf=0.0)
    with np.errstate(invalid="ignore"):
        mask = _usable(sci, dq, do_not_use) & (np.abs(sci - median) > np.float32(snr) * noise)
    return Flagged(_flag(dq, mask, do_not_use | outlier))
