"""Dark-current kernel: subtract the dark signal matched to the science readout.

Physics: thermally generated charge (and other signal present with no light,
e.g. amplifier glow) accumulates in every pixel along the ramp. The DARK
reference records it frame by frame (or already group-averaged) from the
start of an integration. Each science group is the average of the frames
read into it, so the matching dark is the average of the same dark frames;
subtracting it leaves the astronomical signal. NaNs in the dark count as 0
(no correction). The dark DQ is ORed into ``pixeldq``.

MIRI darks depend on the integration (the first one differs from the later
ones), so they carry an integration axis and each science integration is
matched to one dark integration (:func:`dark_kernel_by_integration`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DarkResult(NamedTuple):
    """Output of :func:`dark_kernel` (new arrays)."""

    sci: np.ndarray
    pixeldq: np.ndarray


def dark_kernel(
    sci: np.ndarray, pixeldq: np.ndarray, dark: np.ndarray, dark_dq: np.ndarray, *, planes: np.ndarray
) -> DarkResult:
    """Subtract, from group g, the mean of dark planes ``planes[g]``.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32, DN.
    pixeldq
        (y, x) uint32.
    dark
        (dark_group, y, x) float32 dark signal, DN (NaN: 0).
    dark_dq
        (y, x) uint32 dark DQ.
    planes
        (group, nframes) int indices into ``dark``'s first axis averaged for each group.

    Returns
    -------
    DarkResult
        ``sci`` float32 (integration, group, y, x) and ``pixeldq`` uint32 (y, x).
    """
    clean = np.where(np.isnan(dark), np.float32(0), dark).astype(np.float32)
    planes = np.asarray(planes, dtype=np.intp)
    matched = clean[planes].mean(axis=1, dtype=np.float32)  # (group, y, x)
    out = (sci - matched[None]).astype(np.float32)
    return DarkResult(out, (pixeldq | dark_dq).astype(np.uint32))


def dark_kernel_by_integration(
    sci: np.ndarray,
    pixeldq: np.ndarray,
    dark: np.ndarray,
    dark_dq: np.ndarray,
    *,
    planes: np.ndarray,
    dark_integration: np.ndarray,
) -> DarkResult:
    """Subtract, from group g of integration i, the mean of planes ``planes[g]`` of dark
    integration ``dark_integration[i]`` (MIRI per-integration darks).

    Parameters
    ----------
    sci
        (integration, group, y, x) float32, DN.
    pixeldq
        (y, x) uint32.
    dark
        (dark_integration, dark_group, y, x) float32 dark signal, DN (NaN: 0).
    dark_dq
        (y, x) uint32 dark DQ (all dark integrations ORed).
    planes
        (group, nframes) int indices into ``dark``'s group axis averaged for each group.
    dark_integration
        (integration,) int: 0-based dark integration used for each science integration.

    Returns
    -------
    DarkResult
        ``sci`` float32 (integration, group, y, x) and ``pixeldq`` uint32 (y, x).
    """
    clean = np.where(np.isnan(dark), np.float32(0), dark).astype(np.float32)
    planes = np.asarray(planes, dtype=np.intp)
    matched = clean[:, planes].mean(axis=2, dtype=np.float32)  # (dark_integration, group, y, x)
    out = (sci - matched[np.asarray(dark_integration, dtype=np.intp)]).astype(np.float32)
    return DarkResult(out, (pixeldq | dark_dq).astype(np.uint32))
