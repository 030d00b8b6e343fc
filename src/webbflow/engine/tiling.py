"""Tile planning: pure integer arithmetic, no dask.

A tile is a ``(y, x)`` block of pixels that holds the whole
``integration × group`` extent of those pixels, so every ramp step sees
complete ramps. The tile edge is chosen from a memory budget for one tile's
ramp (float32), capped at 512 px and kept to a divisor-friendly size.
"""

from __future__ import annotations

from typing import Final

#: Memory one tile's float32 ramp may use by default. Steps such as jump hold a
#: few ramp-sized temporaries, so a worker thread needs a small multiple of it.
DEFAULT_TILE_BUDGET: Final = 48 * 2**20
MAX_TILE: Final = 512
MIN_TILE: Final = 32


def choose_tile(
    ny: int, nx: int, planes: int, *, itemsize: int = 4, budget: int = DEFAULT_TILE_BUDGET
) -> int:
    """Square tile edge for an exposure of ``planes = nints * ngroups`` frames.

    Parameters
    ----------
    ny, nx
        Exposure size, pixels.
    planes
        Frames per pixel held by a tile (``nints * ngroups``).
    itemsize
        Bytes per value.
    budget
        Bytes one tile's ramp may use.

    Returns
    -------
    int
        The tile edge, pixels: a power of two between ``MIN_TILE`` and
        ``MAX_TILE`` (never larger than the exposure's larger side).

    Examples
    --------
    >>> choose_tile(2048, 2048, 10)
    512
    >>> choose_tile(2048, 2048, 400)
    128
    """
    if ny <= 0 or nx <= 0 or planes <= 0:
        raise ValueError(f"exposure shape must be positive, got ny={ny}, nx={nx}, planes={planes}")
    edge = MAX_TILE
    while edge > MIN_TILE and edge * edge * planes * itemsize > budget:
        edge //= 2
    return max(1, min(edge, max(ny, nx)))


def tile_chunks(size: int, tile: int) -> tuple[int, ...]:
    """Chunk lengths covering ``size`` pixels in tiles of ``tile`` (last one shorter).

    Examples
    --------
    >>> tile_chunks(10, 4)
    (4, 4, 2)
    """
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    full, rest = divmod(size, tile)
    return (tile,) * full + ((rest,) if rest else ())
