"""Reset kernel: subtract the MIRI reset anomaly from the first groups of each integration.

Physics: after a reset the MIRI pixel level relaxes for a while, adding a
pixel-dependent, decaying offset to the first reads of every integration (the
"reset anomaly"). The RESET reference holds that offset for its first NINTS
integrations and NGROUPS groups; later integrations use its last integration,
later groups are not corrected. NaNs in the reference count as 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ResetResult(NamedTuple):
    """Output of :func:`reset_kernel` (new arrays)."""

    sci: np.ndarray
    pixeldq: np.ndarray


def reset_kernel(
    sci: np.ndarray,
    pixeldq: np.ndarray,
    reset: np.ndarray,
    reset_dq: np.ndarray,
    *,
    ref_integration: np.ndarray,
    ngroups: int,
) -> ResetResult:
    """Subtract the reset anomaly from one tile.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32 ramp, DN.
    pixeldq
        (y, x) uint32 pixel DQ.
    reset
        (reset_integration, reset_group, y, x) float32 reset anomaly, DN.
    reset_dq
        (y, x) uint32 DQ of the reference (standard bits), ORed into ``pixeldq``.
    ref_integration
        (integration,) int: 0-based reference integration used for each
        integration of ``sci``, or -1 for an integration left uncorrected.
    ngroups
        Number of leading groups corrected (≤ both ``sci``'s and ``reset``'s).

    Returns
    -------
    ResetResult
        ``sci`` float32 (integration, group, y, x); ``pixeldq`` uint32 (y, x).
    """
    corr = np.nan_to_num(reset[:, :ngroups], nan=0.0).astype(np.float32, copy=False)
    out = sci.copy()
    done = ref_integration >= 0
    out[done, :ngroups] -= corr[ref_integration[done]]
    pdq = pixeldq | reset_dq if done.any() else pixeldq.copy()
    return ResetResult(out, pdq.astype(np.uint32, copy=False))
