"""Saturation kernel: flag groups at or above the full-well threshold, and the A-to-D floor.

Physics: a pixel whose accumulated charge reaches the saturation threshold
(SATURATION reference, DN) no longer responds linearly; that group and every
later group of the integration are flagged SATURATED. Charge spills into the
neighbours of a saturated pixel, so the flag is grown by ``n_grow`` pixels
(a (2n+1)×(2n+1) box). A raw value of 0 or less means the A-to-D converter
bottomed out: that group alone gets AD_FLOOR | DO_NOT_USE.

Frame-averaged groups (NFRAMES > 1) hide saturation: if a pixel saturates
part-way through group g+1, group g's *average* may sit below the threshold
although its last frames were near it. With a read pattern, a group that is
at/above ``threshold × mean(frames)/last(frame)`` and followed by a SATURATED
group gets DO_NOT_USE (grown like the saturation flag). A further test flags
group 2 DO_NOT_USE when group 3 is saturated, group 1 extrapolated (bias
removed) to group 3's last frame stays below the threshold, yet the jump from
group 1 to 2 exceeds the remaining head-room divided by the frames per group:
the signature of a saturating event inside group 2.

Pixels flagged NO_SAT_CHECK in the reference, or with a NaN threshold, get a
threshold above the A-to-D limit (never saturate) and NO_SAT_CHECK in
``pixeldq``. The zero frame is set to 0 where it is saturated (grown) or at
the A-to-D floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class SaturationResult(NamedTuple):
    """Output of :func:`saturation_kernel` (new arrays)."""

    groupdq: np.ndarray
    pixeldq: np.ndarray
    zeroframe: np.ndarray | None


def grow_box(mask: np.ndarray, n: int) -> np.ndarray:
    """Dilate a boolean ``mask`` by ``n`` pixels (a square box) over its last two axes.

    Pixels beyond the array edges count as unflagged. Returns a new array.
    """
    if n <= 0:
        return mask.copy()
    rows = mask.copy()
    for s in range(1, n + 1):
        rows[..., s:, :] |= mask[..., :-s, :]
        rows[..., :-s, :] |= mask[..., s:, :]
    out = rows.copy()
    for s in range(1, n + 1):
        out[..., :, s:] |= rows[..., :, :-s]
        out[..., :, :-s] |= rows[..., :, s:]
    return out


def saturation_kernel(
    sci: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    threshold: np.ndarray,
    threshold_dq: np.ndarray,
    bias: np.ndarray | None = None,
    zeroframe: np.ndarray | None = None,
    *,
    n_grow: int,
    read_pattern: Sequence[Sequence[int]] | None,
    atod_limit: float,
    saturated: int,
    do_not_use: int,
    ad_floor: int,
    no_sat_check: int,
) -> SaturationResult:
    """Flag saturation and A-to-D floor in one tile.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32 raw ramp, DN.
    groupdq
        (integration, group, y, x) uint8 group DQ.
    pixeldq
        (y, x) uint32 pixel DQ.
    threshold
        (y, x) float32 saturation threshold, DN (NaN: no check).
    threshold_dq
        (y, x) uint32 DQ of the saturation reference.
    bias
        (y, x) float32 superbias, DN, used by the group-2 test (``None``: 0).
    zeroframe
        (integration, y, x) float32 zero frame, DN, or ``None``.
    n_grow
        Number of pixels by which saturation flags are grown.
    read_pattern
        1-based frame numbers averaged into each group, or ``None`` to skip the
        frame-averaging tests.
    atod_limit
        Largest value of the 16-bit A-to-D converter, DN (65535).
    saturated, do_not_use, ad_floor, no_sat_check
        DQ bit values.

    Returns
    -------
    SaturationResult
        ``groupdq`` uint8 (integration, group, y, x); ``pixeldq`` uint32 (y, x);
        ``zeroframe`` float32 (integration, y, x) or ``None``.
    """
    nan_thresh = np.isnan(threshold)
    no_check = ((threshold_dq & no_sat_check) != 0) | nan_thresh
    thresh = np.where(no_check, np.float32(atod_limit + 1), threshold).astype(np.float32)
    pdq = (pixeldq | threshold_dq | np.where(nan_thresh, no_sat_check, 0)).astype(np.uint32)

    # first pass: saturated at and after the first group at/above threshold, grown
    over = np.logical_or.accumulate(sci >= thresh, axis=1)
    sat = grow_box(over | ((groupdq & saturated) != 0), n_grow)
    gdq = groupdq | np.where(sat, saturated, 0).astype(np.uint8)
    gdq |= np.where(sci <= 0, ad_floor | do_not_use, 0).astype(np.uint8)

    ngroups = sci.shape[1]
    if read_pattern is not None and ngroups > 1:
        gdq = _flag_diluted(sci, gdq, thresh, no_check, read_pattern, n_grow, saturated, do_not_use)
    if read_pattern is not None and ngroups > 2:
        gdq = _flag_group2(sci, gdq, thresh, bias, read_pattern, saturated, do_not_use)

    zf = None
    if zeroframe is not None:
        zsat = grow_box(zeroframe >= thresh, n_grow)
        zf = np.where(zsat | (zeroframe <= 0), np.float32(0), zeroframe).astype(np.float32)
    return SaturationResult(gdq, pdq, zf)


def _flag_diluted(
    sci: np.ndarray,
    gdq: np.ndarray,
    thresh: np.ndarray,
    no_check: np.ndarray,
    read_pattern: Sequence[Sequence[int]],
    n_grow: int,
    saturated: int,
    do_not_use: int,
) -> np.ndarray:
    """DO_NOT_USE on groups whose diluted average hides saturation before a SATURATED group."""
    frames = [np.asarray(f, dtype=np.float64) for f in read_pattern[: sci.shape[1] - 1]]
    dilution = np.array([f.mean() / f[-1] for f in frames])
    if np.all(dilution == 1):
        return gdq
    dil = np.where(no_check, 1.0, dilution[:, None, None])  # (group-1, y, x)
    dil[dilution == 1] = np.inf  # groups that are not averaged cannot hide saturation
    this, nxt = gdq[:, :-1], gdq[:, 1:]
    partial = (
        (sci[:, :-1] >= thresh * dil) & ((this & (saturated | do_not_use)) == 0) & ((nxt & saturated) != 0)
    )
    out = gdq.copy()
    out[:, :-1] |= np.where(grow_box(partial, n_grow), do_not_use, 0).astype(np.uint8)
    return out


def _flag_group2(
    sci: np.ndarray,
    gdq: np.ndarray,
    thresh: np.ndarray,
    bias: np.ndarray | None,
    read_pattern: Sequence[Sequence[int]],
    saturated: int,
    do_not_use: int,
) -> np.ndarray:
    """DO_NOT_USE on group 2 when a saturating event inside it is implied by groups 1-3."""
    b = np.float32(0) if bias is None else bias
    g1, g2 = sci[:, 0], sci[:, 1]
    mean1 = np.float64(np.mean(read_pattern[0]))
    last3 = float(read_pattern[2][-1])
    below = ((g1 - b) / mean1) * last3 + b < thresh
    jump = (g2 - g1) > (thresh - g1) / len(read_pattern[1])
    newly = ((gdq[:, 2] & saturated) != 0) & ((gdq[:, 1] & saturated) == 0)
    out = gdq.copy()
    out[:, 1] |= np.where(below & jump & newly, do_not_use, 0).astype(np.uint8)
    return out
