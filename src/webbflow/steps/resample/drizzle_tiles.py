"""The dask graph of a tiled drizzle: one task per (input, output tile) pair that overlap.

Each pair task receives only the input chunks holding the input rectangle that reaches its
output tile (:mod:`webbflow.steps.resample.plan`), evaluates the pixmap there (plus a 1-px
halo) and drizzles it onto the tile. :func:`pair_keys` builds those tasks; the mosaic and the
median combine them per tile (a tree of partial sums, or a stack and a median).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from webbflow import dq as dqflags
from webbflow.errors import InputError, UsageError
from webbflow.io.lazy_fits import FitsImageArray
from webbflow.model import get_meta
from webbflow.steps.resample.grid import OutputGrid, input_wcs, native_scale
from webbflow.steps.resample.kernel import VARIANCES, DrizzleSettings, Region, drizzle_one
from webbflow.steps.resample.plan import CellMap, assemble, cell_size, chunk_bounds, chunk_span, grow

KERNELS = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")
WEIGHT_TYPES = ("ivm", "exptime")

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Source:
    """One input exposure prepared for the graph."""

    index: int
    arrays: dict[str, da.Array]
    wcs: Any
    shape: tuple[int, int]
    ybounds: np.ndarray
    xbounds: np.ndarray
    exptime: float
    sky: float
    cells: CellMap
    scale: float  # native pixel scale, arcsec/px

    @property
    def wcs_key(self) -> str:
        """Graph key holding this input's WCS."""
        return f"resample-wcs-{self.arrays['sci'].name}-{id(self.wcs):x}"


def bad_bits(good_bits: str | int | None) -> int:
    """DQ bits that reject a pixel, from jwst's ``good_bits`` (:func:`webbflow.dq.bad_bits`)."""
    return dqflags.bad_bits(good_bits, "resample.good_bits")


def settings_for(
    inputs: Sequence[xr.Dataset],
    grid: OutputGrid,
    *,
    pixfrac: float,
    kernel: str,
    weight_type: str,
    good_bits: str | int | None,
    pixmap_stepsize: int,
) -> DrizzleSettings:
    """Validated :class:`DrizzleSettings`; the pixel-scale ratio is output / first input's native scale."""
    if kernel not in KERNELS:
        raise UsageError(f"resample.kernel = {kernel!r}: expected one of {', '.join(KERNELS)}")
    if weight_type not in WEIGHT_TYPES:
        raise UsageError(f"resample.weight_type = {weight_type!r}: expected one of {', '.join(WEIGHT_TYPES)}")
    if not 0.0 < pixfrac <= 1.0:
        raise UsageError(f"resample.pixfrac = {pixfrac}: expected 0 < pixfrac <= 1")
    area = (get_meta(inputs[0]).get("photometry") or {}).get("pixelarea_steradians")
    if area:
        in_scale = math.degrees(math.sqrt(float(area))) * 3600.0
    else:
        in_scale = native_scale(input_wcs(inputs[0]), inputs[0])
    return DrizzleSettings(
        pixfrac=float(pixfrac),
        kernel=kernel,
        weight_type=weight_type,
        bad_bits=bad_bits(good_bits),
        pixel_scale_ratio=grid.pixel_scale / in_scale,
        pixmap_stepsize=max(int(pixmap_stepsize), 1),
    )


def prepare(inputs: Sequence[xr.Dataset], grid: OutputGrid) -> list[Source]:
    """:class:`Source` of every input: its arrays on ``sci``'s chunks, WCS, times, cell map."""
    sources = []
    for i, ds in enumerate(inputs):
        name = get_meta(ds).get("filename", f"input {i}")
        if "sci" not in ds or ds["sci"].dims != ("y", "x"):
            raise InputError(f"{name}: resample needs a 2-D 'sci' with dims ('y', 'x')")
        wcs = input_wcs(ds, name)
        sci = ds["sci"].data
        sci = sci if isinstance(sci, da.Array) else da.from_array(np.asarray(sci), chunks=grid.tile)
        arrays = {"sci": sci}
        for var in ("dq", *VARIANCES):
            if var in ds:
                arr = ds[var].data
                arr = arr if isinstance(arr, da.Array) else da.from_array(np.asarray(arr), chunks=sci.chunks)
                arrays[var] = arr.rechunk(sci.chunks) if arr.chunks != sci.chunks else arr
        if "dq" not in arrays:
            arrays["dq"] = da.zeros(sci.shape, np.uint32, chunks=sci.chunks)
        meta = get_meta(ds)
        exposure = meta.get("exposure") or {}
        exptime = exposure.get("measurement_time") or exposure.get("exposure_time") or 1.0
        background = meta.get("background") or {}
        sky = background.get("level") if background.get("subtracted") is False else None
        shape = (int(sci.shape[0]), int(sci.shape[1]))
        sources.append(
            Source(
                index=i,
                arrays=arrays,
                wcs=wcs,
                shape=shape,
                ybounds=chunk_bounds(sci.chunks[0]),
                xbounds=chunk_bounds(sci.chunks[1]),
                exptime=float(exptime),
                sky=float(sky or 0.0),
                cells=CellMap.build(wcs, grid.wcs, shape, cell_size(sci.chunks)),
                scale=native_scale(wcs, ds),
            )
        )
    return sources


class _FileWindow:
    """A window of a file-backed input array, read by the task that drizzles it.

    Input arrays opened straight from FITS (:func:`webbflow.io.fits_reader.open_product`) are
    read by each drizzle task for just its window instead of through shared chunk keys: the
    scheduler would otherwise keep every chunk until its last output tile is done, which for a
    mosaic held a band of whole exposures (memory growing with the mosaic's width).
    """

    def __init__(self, source: Any) -> None:
        self.source = source

    def read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        return np.asarray(self.source[rows[0] : rows[1], cols[0] : cols[1]])


def file_source(arr: da.Array) -> FitsImageArray | None:
    """The 2-D FITS reader a dask array is a plain ``da.from_array`` of, or None."""
    graph = arr.__dask_graph__()
    root = f"original-{arr.name}"
    if set(getattr(graph, "layers", {})) != {root, arr.name}:
        return None
    source = graph.get(root)
    return source if isinstance(source, FitsImageArray) and source.ndim == 2 else None


def _blocks(arr: da.Array, ys: tuple[int, int], xs: tuple[int, int]) -> list[list[Key]]:
    """Nested list of the chunk keys of ``arr`` in chunk rows ys[0]..ys[1], cols xs[0]..xs[1]."""
    return [[(arr.name, j, k) for k in range(xs[0], xs[1] + 1)] for j in range(ys[0], ys[1] + 1)]


def _pair(
    in_wcs: Any,
    out_wcs: Any,
    threshold: float | None,
    *blocks: list[list[np.ndarray]],
    names: list[str],
    start: tuple[int, int],
    region: Region,
    settings: DrizzleSettings,
    exptime: float,
    sky: float,
    index: int,
    single: bool,
) -> Any:
    arrays = {
        n: b.read(region.hrows, region.hcols)
        if isinstance(b, _FileWindow)
        else assemble(b, start, region.hrows, region.hcols)
        for n, b in zip(names, blocks, strict=True)
    }
    part = drizzle_one(
        arrays, in_wcs, out_wcs, region, settings, exptime=exptime, sky=sky, index=index, variances=not single
    )
    if not single:
        return part
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = part.wht > (threshold or 0.0)
        return np.where(keep, part.wsci / np.where(keep, part.wht, 1.0), np.nan).astype(np.float32)


def pair_keys(
    src: Source,
    grid: OutputGrid,
    settings: DrizzleSettings,
    tile: tuple[int, int, int, int],
    tile_id: tuple[int, int],
    dsk: dict[Any, Any],
    layer: str,
    *,
    single: bool = False,
    threshold: Key | None = None,
) -> Key | None:
    """Add the task drizzling ``src`` onto output ``tile`` to ``dsk``; its key, or None if no overlap."""
    # kernel reach (≤ 3 input px for lanczos3/gaussian) + curvature inside a cell, output px
    margin = 2.0 + 4.0 * src.scale / grid.pixel_scale
    rect = src.cells.rectangle(tile, margin)
    if rect is None:
        return None
    rows, cols = rect
    ny, nx = src.shape
    hrows, hcols = grow(rows, 1, ny), grow(cols, 1, nx)
    ys, xs = chunk_span(src.ybounds, *hrows), chunk_span(src.xbounds, *hcols)
    wanted = ("sci", "dq", "var_rnoise") if single else ("sci", "dq", *VARIANCES)
    names = [n for n in wanted if n in src.arrays]
    region = Region(rows=rows, cols=cols, hrows=hrows, hcols=hcols, tile=tile, pad=math.ceil(margin))
    func = partial(
        _pair,
        names=names,
        start=(int(src.ybounds[ys[0]]), int(src.xbounds[xs[0]])),
        region=region,
        settings=settings,
        exptime=src.exptime,
        sky=src.sky,
        index=src.index,
        single=single,
    )
    key = (layer, *tile_id, src.index)
    dsk[key] = (
        func,
        src.wcs_key,
        grid_wcs_key(grid),
        threshold,
        *[_window_or_blocks(src.arrays[n], ys, xs) for n in names],
    )
    return key


def _window_or_blocks(arr: da.Array, ys: tuple[int, int], xs: tuple[int, int]) -> Any:
    source = file_source(arr)
    return _FileWindow(source) if source is not None else _blocks(arr, ys, xs)


def grid_wcs_key(grid: OutputGrid) -> str:
    """Graph key holding the output WCS."""
    return f"resample-grid-wcs-{tokenize(grid.shape, grid.crpix, grid.crval, grid.cd)}"


def wcs_nodes(sources: Sequence[Source], grid: OutputGrid) -> dict[str, Any]:
    """Graph nodes holding the WCS objects (shipped once, not once per task)."""
    nodes: dict[str, Any] = {s.wcs_key: s.wcs for s in sources}
    nodes[grid_wcs_key(grid)] = grid.wcs
    return nodes


def tree(
    dsk: dict[Any, Any], keys: list[Key], prefix: tuple[Any, ...], func: Callable[..., Any], fanin: int = 8
) -> Key:
    """Reduce ``keys`` with ``func`` in a tree of fan-in ``fanin``; the root key."""
    level = 0
    while len(keys) > 1:
        nxt = []
        for g in range(0, len(keys), fanin):
            group = keys[g : g + fanin]
            if len(group) == 1:
                nxt.append(group[0])
                continue
            key = (*prefix, level, g // fanin)
            dsk[key] = (func, *group)
            nxt.append(key)
        keys, level = nxt, level + 1
    return keys[0]


def chain(dsk: dict[Any, Any], keys: list[Key], prefix: tuple[Any, ...], func: Callable[..., Any]) -> Key:
    """Fold ``keys`` left to right with ``func`` (``func(func(k0, k1), k2)...``); the last key.

    A chain keeps one running sum per output tile: each input's partial is added as soon as it
    exists and then freed, so a tile's memory does not grow with the number of inputs (a tree
    lets the scheduler compute every partial of a level first).
    """
    acc = keys[0]
    for i, key in enumerate(keys[1:]):
        new = (*prefix, i)
        dsk[new] = (func, acc, key)
        acc = new
    return acc


def tile_ids(grid: OutputGrid) -> list[tuple[tuple[int, int], tuple[int, int, int, int]]]:
    """((j, k) chunk index, (y0, y1, x0, x1)) of every output tile."""
    ty, tx = grid.tile
    return [
        ((ys.start // ty, xs.start // tx), (ys.start, ys.stop, xs.start, xs.stop)) for ys, xs in grid.tiles()
    ]
