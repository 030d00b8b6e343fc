"""Graph-build-time geometry: which input pixels land on which output tile (cheap, conservative).

Each input is cut into square cells of :data:`CELL` px; the cells' corners (pixel edges) are
mapped once through the WCSs onto the other grid, giving every cell a bounding box there. The
input rectangle that matters for an output tile is the bounding rectangle of the cells whose
box, grown by a margin (kernel reach + curvature), meets the tile. Pixels outside that rectangle
cannot reach the tile, so drizzling only the rectangle gives the same result as the whole input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Largest cell size, input px (smaller when the input's chunks are smaller).
CELL = 64


def cell_size(chunks: tuple[tuple[int, ...], ...]) -> int:
    """Cell size for an array with dask ``chunks``: the smallest chunk, within 8..:data:`CELL` px."""
    return int(min(max(min(min(c) for c in chunks), 8), CELL))


@dataclass(frozen=True)
class CellMap:
    """Bounding boxes on a destination grid of the cells of a source array.

    ``lo``/``hi``: (ncy, ncx, 2) float64, min and max (x, y) destination px of each cell;
    NaN where a corner does not map.
    """

    shape: tuple[int, int]
    lo: np.ndarray
    hi: np.ndarray
    cell: int = CELL

    @classmethod
    def build(cls, src_wcs: Any, dst_wcs: Any, shape: tuple[int, int], cell: int = CELL) -> CellMap:
        """Map the corners of ``cell``-px cells of a ``shape`` (ny, nx) source through the WCSs."""
        ny, nx = shape
        ey = np.append(np.arange(0, ny, cell), ny) - 0.5
        ex = np.append(np.arange(0, nx, cell), nx) - 0.5
        gy, gx = np.meshgrid(ey, ex, indexing="ij")
        ra, dec = src_wcs.forward_transform(gx, gy)
        ox, oy = dst_wcs.backward_transform(ra, dec)
        corners = np.stack([np.asarray(ox, float), np.asarray(oy, float)], axis=-1)
        quad = np.stack([corners[:-1, :-1], corners[1:, :-1], corners[:-1, 1:], corners[1:, 1:]])
        return cls(shape=(ny, nx), lo=np.min(quad, axis=0), hi=np.max(quad, axis=0), cell=cell)

    def rectangle(
        self, tile: tuple[int, int, int, int], margin: float
    ) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """Source (rows, cols) half-open ranges reaching destination ``tile`` (y0, y1, x0, x1), or None."""
        y0, y1, x0, x1 = tile
        with np.errstate(invalid="ignore"):
            hit = (
                (self.hi[..., 0] >= x0 - 0.5 - margin)
                & (self.lo[..., 0] <= x1 - 0.5 + margin)
                & (self.hi[..., 1] >= y0 - 0.5 - margin)
                & (self.lo[..., 1] <= y1 - 0.5 + margin)
            )
        if not hit.any():
            return None
        cy = np.flatnonzero(hit.any(axis=1))
        cx = np.flatnonzero(hit.any(axis=0))
        ny, nx = self.shape
        c = self.cell
        rows = (int(cy[0]) * c, min((int(cy[-1]) + 1) * c, ny))
        cols = (int(cx[0]) * c, min((int(cx[-1]) + 1) * c, nx))
        return rows, cols


def chunk_bounds(chunks: Sequence[int]) -> np.ndarray:
    """Edges of dask chunks along one axis: (0, c0, c0+c1, ...)."""
    return np.concatenate([[0], np.cumsum(chunks)]).astype(int)


def chunk_span(bounds: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Indices [first, last] of the chunks holding pixels ``lo:hi``."""
    first = int(np.searchsorted(bounds, lo, side="right") - 1)
    last = int(np.searchsorted(bounds, hi - 1, side="right") - 1)
    return first, last


def grow(rng: tuple[int, int], by: int, size: int) -> tuple[int, int]:
    """``rng`` grown by ``by`` px on each side, clipped to ``0:size``."""
    return max(rng[0] - by, 0), min(rng[1] + by, size)


def assemble(
    blocks: list[list[np.ndarray]], start: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """The ``rows × cols`` rectangle from a 2-D list of chunks whose corner is at ``start`` (y, x)."""
    whole = blocks[0][0] if len(blocks) == 1 and len(blocks[0]) == 1 else np.block(blocks)
    return whole[rows[0] - start[0] : rows[1] - start[0], cols[0] - start[1] : cols[1] - start[1]]
