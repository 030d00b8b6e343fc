"""Firstframe kernel: flag the first group of every MIRI integration DO_NOT_USE.

Physics: the first read after a MIRI reset is offset by the reset transient, so
it is left out of the slope. For a bright pixel that is already SATURATED in
group 3, dropping group 1 would leave a single usable difference; with
``bright_use_group1`` such pixels keep group 1 (in that integration) and get
FLUX_ESTIMATED in ``pixeldq`` (if any integration kept it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class FirstFrameResult(NamedTuple):
    """Output of :func:`firstframe_kernel` (new arrays)."""

    groupdq: np.ndarray
    pixeldq: np.ndarray


def firstframe_kernel(
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    *,
    bright_use_group1: bool,
    do_not_use: int,
    saturated: int,
    flux_estimated: int,
) -> FirstFrameResult:
    """Flag group 1 DO_NOT_USE in one tile (the caller checks ngroups > 3).

    Parameters
    ----------
    groupdq
        (integration, group, y, x) uint8 group DQ, at least 3 groups.
    pixeldq
        (y, x) uint32 pixel DQ.
    bright_use_group1
        Keep group 1 where group 3 is SATURATED.
    do_not_use, saturated, flux_estimated
        DQ bit values.

    Returns
    -------
    FirstFrameResult
        ``groupdq`` uint8 (integration, group, y, x); ``pixeldq`` uint32 (y, x).
    """
    gdq = groupdq.copy()
    pdq = pixeldq.copy()
    if bright_use_group1:
        keep = (groupdq[:, 2] & saturated) != 0  # (integration, y, x)
        gdq[:, 0] |= np.where(keep, 0, do_not_use).astype(np.uint8)
        pdq |= np.where(keep.any(axis=0), flux_estimated, 0).astype(np.uint32)
    else:
        gdq[:, 0] |= np.uint8(do_not_use)
    return FirstFrameResult(gdq, pdq)
