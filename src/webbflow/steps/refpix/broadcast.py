"""Phase 2 of the reference-pixel graphs: every tile applies small whole statistic arrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from webbflow.model import tile_size

_RAMP = ("i", "g", "Y", "X")


def apply_per_tile(
    func: Callable[..., np.ndarray],
    ds: xr.Dataset,
    sci: da.Array,
    *stats: tuple[da.Array, tuple[str, ...]],
    name: str,
    **kwargs: Any,
) -> da.Array:
    """Lazily call ``func(sci_tile, y, x, *stats, **kwargs)`` on every tile of ``sci``.

    Parameters
    ----------
    func
        Tile function returning the corrected ``(integration, group, y, x)`` float32 DN tile.
    ds
        The exposure: its tiling and full-frame ``y``/``x`` pixel indices (1-D int).
    sci
        ``(integration, group, y, x)`` float32 DN ramp, chunked like ``ds``.
    stats
        ``(array, index)`` pairs: whole small arrays (one chunk on the axes not named
        ``i``/``g``) and their :func:`dask.array.blockwise` index.
    name
        Graph key prefix (caller-tokenized, so the graph is deterministic).
    kwargs
        Passed to ``func``.

    Returns
    -------
    dask.array.Array
        ``(integration, group, y, x)`` float32 DN, chunked like ``sci``.
    """
    ychunks, xchunks = tile_size(ds)
    return da.blockwise(
        func,
        _RAMP,
        sci,
        _RAMP,
        da.from_array(ds.y.values, chunks=(ychunks,)),
        ("Y",),
        da.from_array(ds.x.values, chunks=(xchunks,)),
        ("X",),
        *(part for pair in stats for part in pair),
        concatenate=True,
        dtype=np.float32,
        meta=np.empty((0, 0, 0, 0), np.float32),
        name=name,
        **kwargs,
    )
