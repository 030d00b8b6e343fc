"""IPC kernel: remove inter-pixel capacitance by convolving with a deconvolution kernel.

Physics: capacitive coupling between neighbouring pixels moves a small
fraction of each pixel's signal into its neighbours. The IPC reference holds
a small deconvolution kernel (centre slightly above 1, neighbours slightly
negative); convolving the science pixels with it undoes the coupling. Only
light-sensitive pixels take part: the reference-pixel border (4 pixels on
each side of a 2048×2048 near-infrared detector) is neither used as input
(it counts as zero) nor changed. Pixels beyond the array edge count as zero.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class IpcResult(NamedTuple):
    """Output of :func:`ipc_kernel`."""

    sci: np.ndarray


def ipc_kernel(
    sci: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    *,
    kernel: np.ndarray,
    ref_border: int | tuple[int, int],
    frame_size: int | tuple[int, int],
) -> IpcResult:
    """Convolve the science pixels of every group with ``kernel``.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32, DN.
    y, x
        0-based full-frame row / column indices of the tile, int.
    kernel
        (ky, kx) float32 deconvolution kernel (dimensionless), centre at (ky//2, kx//2).
    ref_border
        Width of the reference-pixel border, pixels: one value for both axes (4, NIR) or
        ``(rows, columns)`` (MIRI: ``(0, 4)``, reference columns only).
    frame_size
        Full-frame size, pixels: one value (2048) or ``(y, x)`` (MIRI: ``(1024, 1032)``).

    Returns
    -------
    IpcResult
        ``sci``: (integration, group, y, x) float32, DN (a new array).
    """
    kernel = np.asarray(kernel, dtype=np.float32)
    ky, kx = kernel.shape
    ny, nx = sci.shape[-2:]
    (by, bx), (fy, fx) = np.broadcast_to(ref_border, 2), np.broadcast_to(frame_size, 2)
    ref_y = (y < by) | (y >= fy - by)
    ref_x = (x < bx) | (x >= fx - bx)
    is_ref = ref_y[:, None] | ref_x[None, :]
    bottom, left = ky // 2, kx // 2
    padded = np.zeros((*sci.shape[:-2], ny + ky - 1, nx + kx - 1), dtype=np.float32)
    inner = padded[..., bottom : bottom + ny, left : left + nx]
    inner[...] = sci
    inner[..., is_ref] = 0
    out = np.zeros(sci.shape, dtype=np.float32)
    term = np.empty(sci.shape, dtype=np.float32)  # one reused temporary: memory ~3 tiles, not ~6
    # out[y, x] = sum_jk kernel[j, k] * data[y + bottom - j, x + left - k]; centre term last
    order = [(j, k) for j in range(ky) for k in range(kx) if (j, k) != (bottom, left)]
    for j, k in [*order, (bottom, left)]:
        np.multiply(
            kernel[j, k], padded[..., ky - 1 - j : ky - 1 - j + ny, kx - 1 - k : kx - 1 - k + nx], out=term
        )
        out += term
    out[..., is_ref] = sci[..., is_ref]
    return IpcResult(out)
