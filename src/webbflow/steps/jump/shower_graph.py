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

import dask
import dask.array as da
import numpy as np
import xarray as xr

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
    flagged = map_tiles(
        flag_showers,
        {"sci": ds["sci"], "groupdq": groupdq, "gain": gain, "y": ds["y"], "x": ds["x"]},
        {"groupdq": (("integration", "group", "y", "x"), np.uint8)},
        like=ds,
        name="jump-showers-flag",
        kwargs={
            "table": table,
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
        },
    )["groupdq"]
    return flagged


def _table(code: da.Array, min_area: float, nint: int, ngroup: int) -> Any:
    """A dask Delayed (k, 7) shower table from the lazy extended-emission code cube."""
    planes = code.rechunk((1, 1, -1, -1)).to_delayed()
    find = dask.delayed(plane_ellipses, nout=2, pure=True)
    found = []
    for i in range(nint):
        for g in range(ngroup):
            ellipses, all_dnu = find(planes[i, g, 0, 0], min_area)
            found.append((i, g, ellipses, all_dnu))
    return dask.delayed(shower_table, pure=True)(found, nint, ngroup)
