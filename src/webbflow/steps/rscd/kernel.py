"""RSCD kernel: flag the first groups of MIRI integrations DO_NOT_USE, backing off at saturation.

Physics: MIRI's reset switch charge decay (RSCD) makes the first reads of an
integration relax non-linearly; jwst 3.0's baseline drops them from the slope.
The number of groups ``N`` comes from the RSCD reference (one value for the
first integration, one for the later ones). A pixel that saturates early would
be left with too few groups, so for every group g = N+1 … 1 (0-based) at which
it is SATURATED (and it is not already saturated in group 0), ``N`` is lowered
by one (never below 0); such pixels get FLUX_ESTIMATED in ``pixeldq``.

jwst stops lowering at the first group where *no* pixel of the exposure is
SATURATED; with SATURATED flags that persist to the end of the ramp (as the
saturation step sets them) that is the same as this per-pixel rule.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RscdResult(NamedTuple):
    """Output of :func:`rscd_kernel` (new arrays)."""

    groupdq: np.ndarray
    pixeldq: np.ndarray


def rscd_kernel(
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    *,
    skip: np.ndarray,
    do_not_use: int,
    saturated: int,
    flux_estimated: int,
) -> RscdResult:
    """Flag the RSCD-affected first groups of one tile.

    Parameters
    ----------
    groupdq
        (integration, group, y, x) uint8 group DQ.
    pixeldq
        (y, x) uint32 pixel DQ.
    skip
        (integration,) int: groups to flag in each integration (-1: leave the
        integration alone). Each value must be ≤ ngroups - 2 (the step ensures
        ngroups ≥ skip + 3).
    do_not_use, saturated, flux_estimated
        DQ bit values.

    Returns
    -------
    RscdResult
        ``groupdq`` uint8 (integration, group, y, x); ``pixeldq`` uint32 (y, x).
    """
    ngroups = groupdq.shape[1]
    sat = (groupdq & saturated) != 0  # (integration, group, y, x)
    usable = ~sat[:, 0]  # pixels saturated in group 0 cannot be recovered: keep N
    s = np.asarray(skip, dtype=np.int64)[:, None, None]  # (integration, 1, 1)
    g = np.arange(ngroups)[None, :, None, None]
    # a decrement for each group 1 … N+1 at which the pixel is saturated
    in_range = (g >= 1) & (g <= s[:, None] + 1)
    count = np.count_nonzero(sat & in_range, axis=1) * usable
    n = np.where(s >= 0, np.maximum(s - count, 0), -1)  # (integration, y, x)
    gdq = groupdq | np.where(g < n[:, None], do_not_use, 0).astype(np.uint8)
    lowered = ((n < s) & (s > 0)).any(axis=0)
    pdq = (pixeldq | np.where(lowered, flux_estimated, 0)).astype(np.uint32)
    return RscdResult(gdq.astype(np.uint8, copy=False), pdq)
