"""Group-scale kernel: undo the on-board frame-averaging divisor.

Physics: when NFRAMES frames are averaged on board into one group, the
flight software sums them and divides by FRMDIVSR, which is always a power
of 2. If NFRAMES is not a power of 2 the stored group is the frame mean
multiplied by NFRAMES/FRMDIVSR; multiplying by FRMDIVSR/NFRAMES restores the
true frame mean.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GroupScaleResult(NamedTuple):
    """Output of :func:`group_scale_kernel`."""

    sci: np.ndarray


def group_scale_kernel(sci: np.ndarray, *, scale: float) -> GroupScaleResult:
    """Multiply every group by ``scale``.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32, DN.
    scale
        FRMDIVSR / NFRAMES.

    Returns
    -------
    GroupScaleResult
        ``sci``: (integration, group, y, x) float32, DN (a new array).
    """
    return GroupScaleResult(sci * np.float32(scale))
