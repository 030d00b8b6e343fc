"""DQ-initialisation kernel: seed the exposure's DQ from the bad-pixel mask.

Physics: the MASK reference lists pixels known to be bad (dead, hot, open,
reference pixels ...). Every flag goes into ``pixeldq``; pixels whose mask
carries DO_NOT_USE also get DO_NOT_USE in every group, so later steps never
fit a ramp to them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DqInitResult(NamedTuple):
    """Output of :func:`dq_init_kernel`."""

    pixeldq: np.ndarray
    groupdq: np.ndarray


def dq_init_kernel(
    pixeldq: np.ndarray, groupdq: np.ndarray, mask: np.ndarray, *, do_not_use: int
) -> DqInitResult:
    """OR the mask into ``pixeldq`` and its DO_NOT_USE bit into every group.

    Parameters
    ----------
    pixeldq
        (y, x) uint32 pixel DQ.
    groupdq
        (integration, group, y, x) uint8 group DQ.
    mask
        (y, x) uint32 mask-reference DQ (standard JWST bits).
    do_not_use
        The DO_NOT_USE bit value.

    Returns
    -------
    DqInitResult
        ``pixeldq`` (y, x) uint32 and ``groupdq`` (integration, group, y, x) uint8, new arrays.
    """
    mask = mask.astype(np.uint32, copy=False)
    pdq = pixeldq | mask
    gdq = groupdq | (mask & np.uint32(do_not_use)).astype(np.uint8)
    return DqInitResult(pdq.astype(np.uint32, copy=False), gdq.astype(np.uint8, copy=False))
