"""Charge-migration kernel: flag groups after a pixel's signal passes a threshold.

Physics: in a pixel holding a lot of charge (near the full well, typically
above ~25 000 DN) part of newly generated charge migrates to the four
adjacent pixels (the "brighter-fatter" effect), so the pixel's ramp and its
neighbours' ramps stop following the true flux. From the first group whose
value exceeds ``signal_threshold`` (skipping groups whose DQ is exactly
DO_NOT_USE) onward, the pixel and its 4 edge-sharing neighbours get
CHARGELOSS | DO_NOT_USE in every group of that integration.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ChargeMigrationResult(NamedTuple):
    """Output of :func:`charge_migration_kernel`."""

    groupdq: np.ndarray


def grow_cross(mask: np.ndarray) -> np.ndarray:
    """``mask`` ORed with its 4 edge neighbours over the last two axes (new array)."""
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    out[..., :, 1:] |= mask[..., :, :-1]
    out[..., :, :-1] |= mask[..., :, 1:]
    return out


def charge_migration_kernel(
    sci: np.ndarray, groupdq: np.ndarray, *, signal_threshold: float, do_not_use: int, chargeloss: int
) -> ChargeMigrationResult:
    """Flag CHARGELOSS | DO_NOT_USE from the first group above ``signal_threshold``.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32, DN.
    groupdq
        (integration, group, y, x) uint8.
    signal_threshold
        DN level above which charge migrates.
    do_not_use, chargeloss
        DQ bit values.

    Returns
    -------
    ChargeMigrationResult
        ``groupdq``: (integration, group, y, x) uint8 (a new array).
    """
    over = (sci > signal_threshold) & (groupdq != do_not_use)
    after = np.logical_or.accumulate(over, axis=1)
    flag = np.where(grow_cross(after), chargeloss | do_not_use, 0).astype(np.uint8)
    return ChargeMigrationResult((groupdq | flag).astype(np.uint8))
