"""Pixel maps between an input exposure and the output grid, for one rectangle of pixels.

A pixmap (ny, nx, 2) float64 gives, for every input pixel centre, the (x, y) position on the
output grid (drizzle's convention). It is evaluated inside each task for just the input
rectangle it drizzles, plus a 1-px halo: drizzle places a pixel's corners between its centre and
its neighbours' centres, so the pixels on the edge of a rectangle need their neighbours' map to
land exactly where they would in a whole-image drizzle. This halo is what makes the result
independent of the input and output tilings.

With ``stepsize > 1`` the WCSs are evaluated on nodes at multiples of ``stepsize`` input pixels
(anchored at pixel 0, so the same nodes serve every tile) and interpolated bilinearly, as jwst's
``pixmap_stepsize``; the error is ~stepsize²/8 × the map's curvature (measured: see the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _forward(in_wcs: Any, out_wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input pixel (x, y) → output pixel (x, y) through the sky, no bounding boxes."""
    ra, dec = in_wcs.forward_transform(x, y)
    ox, oy = out_wcs.backward_transform(ra, dec)
    return np.asarray(ox, np.float64), np.asarray(oy, np.float64)


def pixmap(
    in_wcs: Any,
    out_wcs: Any,
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    origin: tuple[int, int] = (0, 0),
    stepsize: int = 1,
) -> np.ndarray:
    """Output-grid positions of the input pixels ``[rows[0]:rows[1], cols[0]:cols[1]]``.

    Parameters
    ----------
    in_wcs
        Input gwcs (0-based pixel → sky); its ``forward_transform`` is used.
    out_wcs
        Output gwcs; its ``backward_transform`` (sky → 0-based pixel) is used.
    rows, cols
        Half-open ranges of input pixel indices (positional, 0-based).
    origin
        (y0, x0) subtracted from the output positions (the output tile's corner).
    stepsize
        1: exact evaluation at every pixel; > 1: bilinear interpolation between nodes every
        ``stepsize`` input pixels.

    Returns
    -------
    ndarray, shape (rows[1] - rows[0], cols[1] - cols[0], 2), float64
        ``[..., 0]`` output x, ``[..., 1]`` output y, px relative to ``origin``.
    """
    (r0, r1), (c0, c1) = rows, cols
    if stepsize <= 1:
        y, x = np.mgrid[r0:r1, c0:c1].astype(np.float64)
        ox, oy = _forward(in_wcs, out_wcs, x, y)
    else:
        s = int(stepsize)
        ky0, kx0 = r0 // s, c0 // s
        ky1 = max(-(-(r1 - 1) // s) + 1, ky0 + 2)  # at least two nodes per axis
        kx1 = max(-(-(c1 - 1) // s) + 1, kx0 + 2)
        ny_, nx_ = np.mgrid[ky0 * s : ky1 * s : s, kx0 * s : kx1 * s : s].astype(np.float64)
        nodes_x, nodes_y = _forward(in_wcs, out_wcs, nx_, ny_)
        ty, iy = _weights(np.arange(r0, r1), s, ky0, nodes_x.shape[0])
        tx, ix = _weights(np.arange(c0, c1), s, kx0, nodes_x.shape[1])
        ox = _bilinear(nodes_x, iy, ty, ix, tx)
        oy = _bilinear(nodes_y, iy, ty, ix, tx)
    out = np.empty((r1 - r0, c1 - c0, 2), np.float64)
    out[..., 0] = ox - origin[1]
    out[..., 1] = oy - origin[0]
    return out


def _weights(p: np.ndarray, s: int, k0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fraction and node index (relative to ``k0``) of positions ``p`` on nodes every ``s``."""
    k = np.minimum(p // s, k0 + n - 2)
    return (p - k * s) / s, k - k0


def _bilinear(
    nodes: np.ndarray, iy: np.ndarray, ty: np.ndarray, ix: np.ndarray, tx: np.ndarray
) -> np.ndarray:
    a = nodes[iy][:, ix]
    b = nodes[iy][:, ix + 1]
    c = nodes[iy + 1][:, ix]
    d = nodes[iy + 1][:, ix + 1]
    wy = ty[:, None]
    wx = tx[None, :]
    return (a * (1 - wx) + b * wx) * (1 - wy) + (c * (1 - wx) + d * wx) * wy
