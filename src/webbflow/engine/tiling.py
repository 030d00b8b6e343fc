"""Tile planning: pure integer arithmetic, no dask.

A tile is a block of pixels that holds the whole ``integration × group``
extent of those pixels, so every ramp step sees complete ramps. By default a
tile is a **full-width strip** of rows whose float32 ramp fits a memory budget.

Why strips: steps that need neighbours (saturation growth, IPC, jump
neighbours) read a halo from adjacent tiles, so while one tile is computed its
neighbours' results must be kept. With square tiles that is a whole row of
tiles per halo step — more tiles as ngroups grows and tiles shrink — whereas
with strips it is one strip, a fixed number of bytes. Peak memory then follows
the tile budget, not ngroups × nints.
"""

from __future__ import annotations

from typing import Final

#: Memory one tile's float32 ramp may use by default. Steps such as jump hold a
#: few ramp-sized temporaries, so a worker thread needs a small multiple of it.
DEFAULT_TILE_BUDGET: Final = 16 * 2**20
MIN_ROWS: Final = 16
MIN_EDGE: Final = 32
MAX_EDGE: Final = 512


def choose_tile(
    ny: int, nx: int, planes: int, *, itemsize: int = 4, budget: int = DEFAULT_TILE_BUDGET
) -> tuple[int, int]:
    """Tile shape ``(rows, columns)`` for an exposure of ``planes = nints * ngroups`` frames.

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
    (int, int)
        Full-width strips (``columns == nx``) of as many rows as fit the budget,
        rounded down to a multiple of 16 and at most half the rows (so two
        workers have work). When even ``MIN_ROWS`` full-width rows exceed the
        budget (hundreds of groups), square tiles of a power-of-two edge.

    Examples
    --------
    >>> choose_tile(2048, 2048, 10)
    (192, 2048)
    >>> choose_tile(2048, 2048, 40)
    (48, 2048)
    >>> choose_tile(64, 64, 5)
    (32, 64)
    """
    if ny <= 0 or nx <= 0 or planes <= 0:
        raise ValueError(f"exposure shape must be positive, got ny={ny}, nx={nx}, planes={planes}")
    row_bytes = nx * planes * itemsize
    rows = budget // row_bytes
    if rows >= MIN_ROWS or rows >= ny:
        rows = min(rows, max(MIN_ROWS, -(-ny // 2)), ny)
        if rows >= MIN_ROWS:
            rows -= rows % MIN_ROWS
        return max(1, rows), nx
    edge = MAX_EDGE
    while edge > MIN_EDGE and edge * edge * planes * itemsize > budget:
        edge //= 2
    return min(edge, ny), min(edge, nx)


def tile_shape(ny: int, nx: int, planes: int, tile: int | tuple[int, int] | None) -> tuple[int, int]:
    """The tile shape a user asked for (an int means square), or :func:`choose_tile`'s."""
    if tile is None:
        return choose_tile(ny, nx, planes)
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    if ty < 1 or tx < 1:
        raise ValueError(f"tile must be positive, got {tile}")
    return min(ty, ny), min(tx, nx)


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
