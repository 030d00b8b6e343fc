"""The lazy graph of MIRI shower flagging (see :mod:`webbflow.steps.jump.showers`).

Two tiled passes around one per-plane pass, all lazy:

1. :func:`~webbflow.steps.jump.showers.extended_emission` over tiles with a
   halo of :func:`~webbflow.steps.jump.showers.ring_halo` pixels (4 for the
   default ring): exact for any tiling.
2. Each (integration, group) plane of that uint8 mask, whole (one byte per
   pixel: 1 MiB for a full MIRI frame), gives its shower ellipses; a small
   table gathers them. Regions of any size are therefore seen whole, so no
   bound on a shower's extent is needed for tile-exactness.
3. :func:`~webbflow.steps.jump.showers.flag_showers` over tiles, no halo,
   with the table.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from webbflow import dq
from webbflow.engine.tiles import map_tiles
from webbflow.steps.jump.showers import (
    extended_emission,
    flag_showers,
    plane_ellipses,
    ring_halo,
    shower_table,
)

#: jwst 3.0 passes stcal's fixed shower amplitude limit (6, times the group
#: time, applied to rates in electrons), not its ``max_shower_amplitude`` parameter.
JWST_AMPLITUDE_PER_S = 6.0


def shower_groupdq(
    ds: xr.Dataset,
    groupdq: xr.DataArray,
    gain: xr.DataArray,
    readnoise: xr.DataArray,
    *,
    group_time: float,
    nframes: int,
    sigma_clip: bool,
    snr_threshold: float,
    min_area: float,
    inner_radius: float,
    outer_radius: float,
    expand_ratio: float,
    max_extended_radius: int,
    time_masked_after_shower: float,
    max_shower_amplitude: float | None,
) -> xr.DataArray:
    """Lazy (integration, group, y, x) uint8 group DQ with showers flagged JUMP_DET.

    Parameters
    ----------
    ds
        The ramp exposure (``sci``, ``pixeldq``, tiling, ``y``/``x``).
    groupdq
        Group DQ after two-point detection, tiled like ``ds``.
    gain, readnoise
        (y, x) float32 gain (e⁻/DN) and read noise (DN).
    group_time
        Seconds per group (0: unknown; then only the shower's group is flagged).
    nframes
        Frames averaged per group.
    sigma_clip
        Use per-difference sigma-clipped statistics across integrations.
    snr_threshold, min_area, inner_radius, outer_radius, expand_ratio
        The ``extend_*`` parameters of the jump step.
    max_extended_radius
        Full ellipse axes are capped at twice this, pixels.
    time_masked_after_shower
        Seconds flagged after the group of a shower.
    max_shower_amplitude
        DN/s; ``None``: jwst 3.0's effective limit (:data:`JWST_AMPLITUDE_PER_S`).

    Returns
    -------
    xarray.DataArray
    """
    nint, ngroup = ds.sizes["integration"], ds.sizes["group"]
    depth, like = ring_halo(inner_radius, outer_radius), ds
    if depth >= min(ds.sizes["y"], ds.sizes["x"]):
        depth, like = 0, ds.chunk({"y": -1, "x": -1})
    code = map_tiles(
        extended_emission,
        {
            "sci": ds["sci"],
            "groupdq": groupdq,
            "pixeldq": ds["pixeldq"],
            "gain": gain,
            "readnoise": readnoise,
        },
        {"code": (("integration", "group", "y", "x"), np.uint8)},
        like=like,
        depth=depth,
        name="jump-showers-extended",
        kwargs={
            "nframes": nframes,
            "sigma_clip": sigma_clip,
            "snr_threshold": snr_threshold,
            "inner_radius": inner_radius,
            "outer_radius": outer_radius,
            "do_not_use": dq.DO_NOT_USE,
            "saturated": dq.SATURATED,
            "jump_det": dq.JUMP_DET,
            "reference_pixel": dq.REFERENCE_PIXEL,
        },
    )["code"]
    table = _table(code.data, min_area, nint, ngroup)
    if max_shower_amplitude is None:
        amplitude, in_electrons = JWST_AMPLITUDE_PER_S * group_time, True
    else:
        amplitude, in_electrons = max_shower_amplitude * group_time, False
    masked = int(time_masked_after_shower // group_time) if group_time > 0 else 0
    sci = ds["sci"].data
    ychunks, xchunks = sci.chunks[-2:]
    tiled = [da.asarray(v.data).rechunk((ychunks, xchunks)) for v in (gain,)]
    y = da.from_array(np.asarray(ds["y"].values), chunks=(ychunks,))
    x = da.from_array(np.asarray(ds["x"].values), chunks=(xchunks,))
    kwargs = {
        "y_origin": int(ds["y"].values[0]),
        "x_origin": int(ds["x"].values[0]),
        "ngroups_masked": masked,
        "expand_ratio": expand_ratio,
        "max_width": 2.0 * max_extended_radius,
        "max_amplitude": amplitude,
        "amplitude_in_electrons": in_electrons,
        "do_not_use": dq.DO_NOT_USE,
        "saturated": dq.SATURATED,
        "jump_det": dq.JUMP_DET,
    }
    gdq = groupdq.data.rechunk(sci.chunks)
    flagged = da.blockwise(
        _flag_tile,
        "igyx",
        sci,
        "igyx",
        gdq,
        "igyx",
        tiled[0],
        "yx",
        y,
        "y",
        x,
        "x",
        table,
        "t",
        concatenate=True,
        dtype=np.uint8,
        meta=np.empty((0, 0, 0, 0), np.uint8),
        name=f"jump-showers-flag-{tokenize(sci, gdq, tiled[0], table, kwargs)}",
        **kwargs,
    )
    dims = groupdq.dims
    return xr.DataArray(flagged, dims=dims, coords={d: ds.coords[d] for d in dims if d in ds.coords})


def _flag_tile(
    sci: np.ndarray,
    groupdq: np.ndarray,
    gain: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    table: np.ndarray,
    **kwargs: Any,
) -> np.ndarray:
    """:func:`flag_showers` on one tile; ``table`` is the (1,) object array holding the table."""
    return flag_showers(sci, groupdq, gain, y, x, table=table[0], **kwargs).groupdq


def _plane_cell(plane: np.ndarray, min_area: float) -> np.ndarray:
    """(1, 1) object array holding :func:`plane_ellipses` of one whole (1, 1, ny, nx) plane."""
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = plane_ellipses(plane, min_area)
    return cell


def _gather(cells: np.ndarray, nint: int, ngroup: int) -> np.ndarray:
    """(1,) object array holding the :func:`shower_table` of the (nint, ngroup) cells."""
    found = [(i, g, *cells[i, g]) for i in range(nint) for g in range(ngroup)]
    out = np.empty((1,), dtype=object)
    out[0] = shower_table(found, nint, ngroup)
    return out


def _table(code: da.Array, min_area: float, nint: int, ngroup: int) -> da.Array:
    """A lazy (1,) object array holding the (k, 7) shower table of the extended-emission cube.

    Built from dask array operations only: wrapping the planes in ``dask.delayed`` culls
    the whole upstream graph once per plane at graph-construction time (minutes for a
    full MIRI exposure with hundreds of planes).
    """
    planes = code.rechunk((1, 1, -1, -1))
    cells = planes.map_blocks(
        _plane_cell,
        min_area,
        drop_axis=[2, 3],
        chunks=((1,) * nint, (1,) * ngroup),
        dtype=object,
        meta=np.empty((0, 0), dtype=object),
        name=f"jump-showers-planes-{tokenize(planes, min_area)}",
    )
    whole = cells.rechunk((-1, -1))
    return whole.map_blocks(
        _gather,
        nint,
        ngroup,
        drop_axis=[1],
        chunks=((1,),),
        dtype=object,
        meta=np.empty((0,), dtype=object),
        name=f"jump-showers-table-{tokenize(whole, nint, ngroup)}",
    )
