"""The combined mosaic (jwst's ``i2d``): every input drizzled onto the output grid, tile by tile.

Per output tile the graph has one task per overlapping input (its :class:`~.kernel.Partial`),
a chain of running sums (float64) and a finalize task; so a tile's memory is a few tile-sized
planes whatever the number of inputs. See :mod:`webbflow.steps.resample.kernel` for
the arithmetic (it follows jwst/stcal ``Resample``: drizzle's weighted mean for SCI and WHT,
variances from drizzled sqrt(VAR) combined with squared weights, ERR from the variances).
"""

from __future__ import annotations

import copy
import logging
import math
import operator
from collections.abc import Sequence
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from webbflow.errors import UsageError
from webbflow.io.keywords import set_path
from webbflow.model import get_meta
from webbflow.steps.resample.drizzle_tiles import chain, pair_keys, prepare, settings_for, tile_ids, wcs_nodes
from webbflow.steps.resample.grid import OutputGrid
from webbflow.steps.resample.kernel import VARIANCES, add_partials, finalize

log = logging.getLogger("webbflow")

#: Mosaic planes with dims (y, x), in product order.
PLANES = ("sci", "err", "wht", *VARIANCES)


def resample(
    inputs: Sequence[xr.Dataset],
    grid: OutputGrid,
    *,
    pixfrac: float = 1.0,
    kernel: str = "square",
    weight_type: str = "ivm",
    fillval: float = math.nan,
    good_bits: str | int | None = "~DO_NOT_USE",
    pixmap_stepsize: int = 1,
    enable_ctx: bool = True,
) -> xr.Dataset:
    """Drizzle-combine calibrated exposures onto ``grid`` (lazy).

    Parameters
    ----------
    inputs
        cal Datasets (contract §1): ``sci`` (y, x) float32 MJy/sr, ``dq``, ``var_poisson``,
        ``var_rnoise``, ``var_flat`` ((MJy/sr)²), ``attrs["wcs"]``. A sky ``meta.background.level``
        with ``subtracted=False`` is subtracted first, as jwst.
    grid
        Output grid (:func:`~webbflow.steps.resample.grid.output_grid`).
    pixfrac, kernel
        Drizzle drop size and kernel ("square", "gaussian", "point", "turbo", "lanczos2/3").
    weight_type
        "ivm": input pixel weight 1/VAR_RNOISE; "exptime": the exposure (measurement) time.
    fillval
        SCI value where no input contributes.
    good_bits
        DQ bits that do NOT reject a pixel (jwst syntax, default "~DO_NOT_USE").
    pixmap_stepsize
        1: exact WCS evaluation per pixel; n > 1: bilinear between nodes every n px.
    enable_ctx
        Include ``con`` (plane, y, x) int32: bit ``i % 32`` of plane ``i // 32`` set where
        input i has weight.

    Returns
    -------
    xr.Dataset
        ``sci``, ``err`` (MJy/sr), ``wht``, ``var_poisson``, ``var_rnoise``, ``var_flat``
        ((MJy/sr)²) float32 (y, x) chunked by ``grid.tile``, ``con``; attrs ``meta`` (first
        input's, with the exposure-time sums and ``meta.resample``), ``wcs`` and ``grid``.
    """
    if not inputs:
        raise UsageError("resample: no input exposures")
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
    token = tokenize(
        [s.arrays["sci"].name for s in sources],
        [id(s.wcs) for s in sources],
        grid.shape,
        grid.tile,
        grid.crval,
        grid.crpix,
        grid.cd,
        settings,
        fillval,
        enable_ctx,
    )
    pair_layer, red, fin = f"resample-pair-{token}", f"resample-sum-{token}", f"resample-tile-{token}"
    nplanes = (len(sources) - 1) // 32 + 1
    core: dict[Any, Any] = dict(wcs_nodes(sources, grid))
    npairs = 0
    for tile_id, tile in tile_ids(grid):
        keys = [k for s in sources if (k := pair_keys(s, grid, settings, tile, tile_id, core, pair_layer))]
        npairs += len(keys)
        shape = (tile[1] - tile[0], tile[3] - tile[2])
        done = partial(
            finalize,
            shape=shape,
            fillval=float(fillval),
            nplanes=nplanes,
            pixel_scale_ratio=settings.pixel_scale_ratio,
        )
        if keys:
            core[(fin, *tile_id)] = (done, chain(core, keys, (red, *tile_id), add_partials))
        else:
            core[(fin, *tile_id)] = (done, None)
    log.info(
        "resample: %d inputs, %d output tiles, %d drizzle tasks", len(sources), len(grid.tiles()), npairs
    )
    deps: list[Any] = [a for s in sources for a in s.arrays.values()]
    out: dict[str, Any] = {}
    for plane in PLANES:
        name = f"resample-{plane}-{token}"
        layer: dict[Any, Any] = {(name, *t): (operator.getitem, (fin, *t), plane) for t, _ in tile_ids(grid)}
        graph = HighLevelGraph.from_collections(name, {**core, **layer}, dependencies=deps)
        out[plane] = (("y", "x"), da.Array(graph, name, grid.chunks, dtype=np.float32))
    if enable_ctx:
        name = f"resample-con-{token}"
        layer = {(name, 0, *t): (operator.getitem, (fin, *t), "con") for t, _ in tile_ids(grid)}
        graph = HighLevelGraph.from_collections(name, {**core, **layer}, dependencies=deps)
        out["con"] = (("plane", "y", "x"), da.Array(graph, name, ((nplanes,), *grid.chunks), dtype=np.int32))
    ny, nx = grid.shape
    coords = {"y": np.arange(ny, dtype=np.int32), "x": np.arange(nx, dtype=np.int32)}
    meta = mosaic_meta(
        inputs, grid, pixfrac=pixfrac, weight_type=weight_type, ratio=settings.pixel_scale_ratio
    )
    return xr.Dataset(out, coords=coords, attrs={"meta": meta, "wcs": grid.wcs, "grid": grid})


def mosaic_meta(
    inputs: Sequence[xr.Dataset], grid: OutputGrid, *, pixfrac: float, weight_type: str, ratio: float
) -> dict[str, Any]:
    """The first input's meta with jwst's i2d updates: exposure-time sums, ``resample.*``, wcsinfo."""
    meta = copy.deepcopy(get_meta(inputs[0]))
    exposures = [get_meta(ds).get("exposure") or {} for ds in inputs]

    def total(key: str) -> float | None:
        values = [e.get(key) for e in exposures]
        return float(sum(float(v) for v in values if v is not None)) if None not in values else None

    starts = [e["start_time"] for e in exposures if e.get("start_time") is not None]
    ends = [e["end_time"] for e in exposures if e.get("end_time") is not None]
    updates: dict[str, Any] = {
        "exposure.exposure_time": total("exposure_time"),
        "exposure.measurement_time": total("measurement_time"),
        "exposure.duration": total("duration"),
        "exposure.start_time": min(starts) if starts else None,
        "exposure.end_time": max(ends) if ends else None,
        "resample.pointings": len(inputs),
        "resample.pixfrac": float(pixfrac),
        "resample.weight_type": weight_type,
        "resample.pixel_scale_ratio": float(ratio),
        "cal_step.resample": "COMPLETE",
        "wcsinfo.ctype1": "RA---TAN",
        "wcsinfo.ctype2": "DEC--TAN",
        "wcsinfo.crpix1": grid.crpix[0] + 1.0,
        "wcsinfo.crpix2": grid.crpix[1] + 1.0,
        "wcsinfo.crval1": grid.crval[0],
        "wcsinfo.crval2": grid.crval[1],
        "wcsinfo.cdelt1": grid.pixel_scale / 3600.0,
        "wcsinfo.cdelt2": grid.pixel_scale / 3600.0,
        "wcsinfo.s_region": "POLYGON ICRS "
        + " ".join(f"{ra % 360:.9f} {dec:.9f}" for ra, dec in grid.wcs.footprint()),
        "bunit_data": "MJy/sr",
        "bunit_err": "MJy/sr",
    }
    for path, value in updates.items():
        if value is not None:
            set_path(meta, path, value)
    return meta
