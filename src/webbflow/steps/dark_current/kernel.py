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
    matched = _matched_dark(dark, planes)  # (group, y, x)
    return _subtract(sci, matched[None], pixeldq, dark_dq)


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
    matched = _matched_dark(dark, planes)  # (dark_integration, group, y, x)
    return _subtract(sci, matched[np.asarray(dark_integration, dtype=np.intp)], pixeldq, dark_dq)


def _matched_dark(dark: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """float32 (..., group, y, x): the mean of group-axis planes ``planes[g]`` of
    (..., dark_group, y, x) ``dark`` for each group g, NaN counted as 0."""
    clean = np.where(np.isnan(dark), np.float32(0), dark).astype(np.float32)
    return clean[..., np.asarray(planes, dtype=np.intp), :, :].mean(axis=-3, dtype=np.float32)


def _subtract(sci: np.ndarray, matched: np.ndarray, pixeldq: np.ndarray, dark_dq: np.ndarray) -> DarkResult:
    """``sci - matched`` as float32 and ``pixeldq | dark_dq`` as uint32."""
    return DarkResult((sci - matched).astype(np.float32), (pixeldq | dark_dq).astype(np.uint32))
