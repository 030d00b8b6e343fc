"""Blot: resample an image on the output grid back onto an input exposure's pixels.

For each tile of the target, the pixmap (target pixel → grid pixel) is evaluated in the task,
and only the grid tiles under that footprint (plus the interpolation stencil, 4 px) are read,
then drizzle's ``blot_image`` interpolates (not flux-conserving; the image is in MJy/sr, so no
rescaling). Target pixels that land off the grid are NaN.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from drizzle.resample import blot_image

from webbflow.errors import InputError, UsageError
from webbflow.steps.resample.grid import OutputGrid, input_wcs
from webbflow.steps.resample.pixmap import pixmap
from webbflow.steps.resample.plan import CellMap, assemble, cell_size, chunk_bounds, chunk_span

INTERPS = ("nearest", "linear", "poly3", "poly5", "sinc", "lan3", "lan5")
#: Grid pixels read beyond a target tile's footprint: the widest stencil (lan5/poly5) + 1.
_STENCIL = 6


def _blot_tile(
    target_wcs: Any,
    grid_wcs: Any,
    blocks: list[list[np.ndarray]],
    *,
    rows: tuple[int, int],
    cols: tuple[int, int],
    sub: tuple[tuple[int, int], tuple[int, int]],
    start: tuple[int, int],
    interp: str,
    sinscl: float,
) -> np.ndarray:
    (gy0, gy1), (gx0, gx1) = sub
    data = np.ascontiguousarray(assemble(blocks, start, (gy0, gy1), (gx0, gx1)), dtype=np.float32)
    pmap = pixmap(target_wcs, grid_wcs, rows, cols, origin=(gy0, gx0))
    pmap[~np.isfinite(pmap)] = -1e6  # off the grid: blot_image leaves fillval there
    out = np.full((rows[1] - rows[0], cols[1] - cols[0]), np.nan, np.float32)
    blot_image(data, pmap, out_img=out, fillval=np.nan, iscale=1.0, interp=interp, sinscl=sinscl)
    return out


def blot(
    image: xr.DataArray, grid: OutputGrid, target: xr.Dataset, *, interp: str = "poly5", sinscl: float = 1.0
) -> xr.DataArray:
    """``image`` (y, x) on ``grid`` resampled onto ``target``'s pixels (lazy).

    Parameters
    ----------
    image
        (y, x) float32 on ``grid`` (e.g. :func:`median_mosaic`), MJy/sr.
    grid
        The grid ``image`` lives on.
    target
        Exposure with ``attrs["wcs"]`` and ``sci`` (y, x): the output has its dims, coords and chunks.
    interp, sinscl
        drizzle ``blot_image`` interpolation ("nearest", "linear", "poly3", "poly5", "sinc",
        "lan3", "lan5") and sinc scale.

    Returns
    -------
    xr.DataArray
        (y, x) float32, NaN where the target pixel is off the grid.
    """
    if interp not in INTERPS:
        raise UsageError(f"blot: interp = {interp!r}: expected one of {', '.join(INTERPS)}")
    if image.dims != ("y", "x") or image.shape != grid.shape:
        raise InputError(f"blot: image must be (y, x) of the grid's shape {grid.shape}, got {image.shape}")
    twcs = input_wcs(target, "blot target")
    tsci = target["sci"].data
    tchunks = tsci.chunks if isinstance(tsci, da.Array) else ((target.sizes["y"],), (target.sizes["x"],))
    img = (
        image.data
        if isinstance(image.data, da.Array)
        else da.from_array(np.asarray(image.data), chunks=grid.tile)
    )
    shape = (int(target.sizes["y"]), int(target.sizes["x"]))
    cells = CellMap.build(twcs, grid.wcs, shape, cell_size(tchunks))
    gyb, gxb = chunk_bounds(img.chunks[0]), chunk_bounds(img.chunks[1])
    tyb, txb = chunk_bounds(tchunks[0]), chunk_bounds(tchunks[1])
    token = tokenize(img.name, id(twcs), tchunks, grid.crval, grid.crpix, grid.cd, interp, sinscl)
    name = f"blot-{token}"
    twkey, gwkey = f"blot-target-wcs-{token}", f"blot-grid-wcs-{token}"
    dsk: dict[Any, Any] = {twkey: twcs, gwkey: grid.wcs}
    ny, nx = grid.shape
    for j in range(len(tchunks[0])):
        for k in range(len(tchunks[1])):
            rows, cols = (int(tyb[j]), int(tyb[j + 1])), (int(txb[k]), int(txb[k + 1]))
            foot = _footprint(cells, rows, cols)
            if not all(map(math.isfinite, foot)):
                foot = (0.0, -1.0 - 2 * _STENCIL, 0.0, -1.0 - 2 * _STENCIL)  # off the grid
            gy0, gy1 = max(math.floor(foot[2]) - _STENCIL, 0), min(math.ceil(foot[3]) + _STENCIL + 1, ny)
            gx0, gx1 = max(math.floor(foot[0]) - _STENCIL, 0), min(math.ceil(foot[1]) + _STENCIL + 1, nx)
            if not (gy0 < gy1 and gx0 < gx1):
                empty = partial(np.full, (rows[1] - rows[0], cols[1] - cols[0]), np.nan, dtype=np.float32)
                dsk[(name, j, k)] = (empty,)
                continue
            ys, xs = chunk_span(gyb, gy0, gy1), chunk_span(gxb, gx0, gx1)
            blocks = [[(img.name, a, b) for b in range(xs[0], xs[1] + 1)] for a in range(ys[0], ys[1] + 1)]
            func = partial(
                _blot_tile,
                rows=rows,
                cols=cols,
                sub=((gy0, gy1), (gx0, gx1)),
                start=(int(gyb[ys[0]]), int(gxb[xs[0]])),
                interp=interp,
                sinscl=float(sinscl),
            )
            dsk[(name, j, k)] = (func, twkey, gwkey, blocks)
    deps: list[Any] = [img]
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    data = da.Array(graph, name, tchunks, dtype=np.float32)
    return xr.DataArray(
        data,
        dims=("y", "x"),
        coords={d: target.coords[d] for d in ("y", "x") if d in target.coords},
        name="blot",
    )


def _footprint(
    cells: CellMap, rows: tuple[int, int], cols: tuple[int, int]
) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) grid px of the cells covering target ``rows × cols`` (NaN-safe)."""
    c = cells.cell
    cy = slice(rows[0] // c, -(-rows[1] // c))
    cx = slice(cols[0] // c, -(-cols[1] // c))
    lo, hi = cells.lo[cy, cx], cells.hi[cy, cx]
    with np.errstate(invalid="ignore"):
        if not (np.isfinite(lo).any() and np.isfinite(hi).any()):
            return (math.inf, -math.inf, math.inf, -math.inf)
        return (
            float(np.nanmin(lo[..., 0])),
            float(np.nanmax(hi[..., 0])),
            float(np.nanmin(lo[..., 1])),
            float(np.nanmax(hi[..., 1])),
        )
