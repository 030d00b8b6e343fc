"""Median of single-drizzled inputs on the output grid (outlier detection's clean image).

Each input is drizzled alone onto each output tile it overlaps (jwst's ``single=True``
resample, same weights and kernel); its pixels whose drizzled weight is below
``maskpt × (the input's typical drizzled weight)`` are ignored, and the tile is the NaN-median
across inputs. A median needs every input's value at a pixel, so a tile task holds one
tile-sized plane per overlapping input (not per input of the association).

The typical weight: jwst takes the sigma-clipped mean of each single-drizzled weight image.
Drizzling an input pixel of weight w onto output pixels r times larger gives weight w·r² in
the interior (drizzle's weights are input-pixel areas), so here it is the sigma-clipped
(3σ, 5 iterations) mean of the input's non-zero weights (every 4th pixel in x and y) × r² — a
small reduction per input that avoids drizzling every input twice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from astropy.stats import sigma_clip
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from webbflow.errors import UsageError
from webbflow.steps.resample.drizzle_tiles import (
    Source,
    pair_keys,
    prepare,
    settings_for,
    tile_ids,
    wcs_nodes,
)
from webbflow.steps.resample.grid import OutputGrid
from webbflow.steps.resample.kernel import DrizzleSettings, input_weight

#: Subsampling step (px) of the input weights for the typical weight.
_SAMPLE = 4


def _weight_block(sci: np.ndarray, dq: np.ndarray, rn: np.ndarray | None, **kw: Any) -> np.ndarray:
    return input_weight(sci, dq, rn, **kw)


def _threshold(sample: np.ndarray, factor: float) -> float:
    values = sample[np.isfinite(sample) & (sample != 0)]
    if values.size == 0:
        return math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        clipped = sigma_clip(values, sigma=3, maxiters=5, masked=False, copy=False)
    return float(np.mean(clipped, dtype=np.float64)) * factor


def weight_threshold(src: Source, settings: DrizzleSettings, grid: OutputGrid, maskpt: float) -> Any:
    """Lazy (dask Delayed) drizzled-weight threshold of one input: maskpt × typical weight."""
    arrays = [src.arrays["sci"], src.arrays["dq"]]
    rn = src.arrays.get("var_rnoise") if settings.weight_type == "ivm" else None
    kw = {"weight_type": settings.weight_type, "exptime": src.exptime, "bad_bits": settings.bad_bits}
    if rn is not None:
        weights = da.map_blocks(_weight_block, *arrays, rn, dtype=np.float32, **kw)
    else:
        weights = da.map_blocks(partial(_weight_block, rn=None), *arrays, dtype=np.float32, **kw)
    ratio = grid.pixel_scale / src.scale
    return dask.delayed(_threshold, pure=True)(weights[::_SAMPLE, ::_SAMPLE], maskpt * ratio**2)


def _median(*planes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if not planes:
        return np.full(shape, np.nan, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return np.nanmedian(np.stack(planes), axis=0).astype(np.float32)


def median_mosaic(
    inputs: Sequence[xr.Dataset],
    grid: OutputGrid,
    *,
    pixfrac: float = 1.0,
    kernel: str = "square",
    weight_type: str = "ivm",
    good_bits: str | int = "~DO_NOT_USE",
    maskpt: float = 0.7,
    pixmap_stepsize: int = 1,
) -> xr.DataArray:
    """(y, x) float32 median (MJy/sr) of the inputs each drizzled alone onto ``grid`` (lazy).

    Parameters are those of :func:`~webbflow.steps.resample.resample` plus ``maskpt``: an
    input's pixels with drizzled weight below ``maskpt`` × its typical weight are ignored.
    NaN where no input is left. Chunked by ``grid.tile``; each tile's drizzle tasks read only
    the overlapping input chunks (the per-input threshold is a small reduction over the input).
    """
    if not inputs:
        raise UsageError("resample: median_mosaic needs at least one input")
    settings = settings_for(
        inputs,
        grid,
        pixfrac=pixfrac,
        kernel=kernel,
        weight_type=weight_type,
        good_bits=good_bits,
        pixmap_stepsize=pixmap_stepsize,
    )
    sources = prepare(inputs, grid)
    thresholds = [weight_threshold(s, settings, grid, maskpt) for s in sources]
    token = tokenize(
        [s.arrays["sci"].name for s in sources],
        [id(s.wcs) for s in sources],
        grid.shape,
        grid.tile,
        grid.crval,
        grid.crpix,
        grid.cd,
        settings,
        maskpt,
    )
    name, pair_layer = f"resample-median-{token}", f"resample-single-{token}"
    dsk: dict[Any, Any] = dict(wcs_nodes(sources, grid))
    for tile_id, tile in tile_ids(grid):
        keys = [
            k
            for s, t in zip(sources, thresholds, strict=True)
            if (
                k := pair_keys(
                    s, grid, settings, tile, tile_id, dsk, pair_layer, single=True, threshold=t.key
                )
            )
        ]
        dsk[(name, *tile_id)] = (partial(_median, shape=(tile[1] - tile[0], tile[3] - tile[2])), *keys)
    deps = [a for s in sources for a in s.arrays.values()] + thresholds
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    ny, nx = grid.shape
    data = da.Array(graph, name, grid.chunks, dtype=np.float32)
    coords = {"y": np.arange(ny, dtype=np.int32), "x": np.arange(nx, dtype=np.int32)}
    return xr.DataArray(
        data, dims=("y", "x"), coords=coords, name="median", attrs={"wcs": grid.wcs, "grid": grid}
    )
