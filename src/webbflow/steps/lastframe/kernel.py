"""Lastframe kernel: flag the last group of every MIRI integration DO_NOT_USE.

Physics: MIRI's last read of an integration is pulled down by the reset of the
next row pair happening during it (the "last frame effect"), so it is left out
of the slope.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LastFrameResult(NamedTuple):
    """Output of :func:`lastframe_kernel` (a new array)."""

    groupdq: np.ndarray


def lastframe_kernel(groupdq: np.ndarray, *, do_not_use: int) -> LastFrameResult:
    """Flag the last group DO_NOT_USE in one tile (the caller checks ngroups > 2).

    Parameters
    ----------
    groupdq
        (integration, group, y, x) uint8 group DQ.
    do_not_use
        DQ bit value.

    Returns
    -------
    LastFrameResult
        ``groupdq`` uint8 (integration, group, y, x).
    """
    gdq = groupdq.copy()
    gdq[:, -1] |= np.uint8(do_not_use)
    return LastFrameResult(gdq)
