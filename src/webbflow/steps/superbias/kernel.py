"""Superbias kernel: subtract the detector's bias pattern from every read.

Physics: each pixel starts every integration at a pedestal (bias) level that
is stable in time; the SUPERBIAS reference is its average. Subtracting it
from every group (and from the zero frame) leaves the accumulated signal.
NaN bias values are taken as 0 (the pixel is left uncorrected), and the
reference's DQ flags are ORed into ``pixeldq``. A zero-frame value of 0 marks
unusable data and stays 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SuperbiasResult(NamedTuple):
    """Output of :func:`superbias_kernel` (new arrays)."""

    sci: np.ndarray
    pixeldq: np.ndarray
    zeroframe: np.ndarray | None


def superbias_kernel(
    sci: np.ndarray,
    pixeldq: np.ndarray,
    bias: np.ndarray,
    bias_dq: np.ndarray,
    zeroframe: np.ndarray | None = None,
) -> SuperbiasResult:
    """Subtract ``bias`` from each group and the zero frame.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32, DN.
    pixeldq
        (y, x) uint32.
    bias
        (y, x) float32 superbias, DN (NaN: no correction).
    bias_dq
        (y, x) uint32 superbias DQ.
    zeroframe
        (integration, y, x) float32, DN, or ``None``.

    Returns
    -------
    SuperbiasResult
        ``sci`` float32 (integration, group, y, x), ``pixeldq`` uint32 (y, x),
        ``zeroframe`` float32 (integration, y, x) or ``None``.
    """
    b = np.where(np.isnan(bias), np.float32(0), bias).astype(np.float32)
    out = (sci - b).astype(np.float32)
    pdq = (pixeldq | bias_dq).astype(np.uint32)
    zf = None
    if zeroframe is not None:
        zf = np.where(zeroframe == 0, np.float32(0), zeroframe - b).astype(np.float32)
    return SuperbiasResult(out, pdq, zf)
