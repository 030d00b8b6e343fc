"""The ``rscd`` step (jwst ``RscdStep``, 3.0 baseline): flag the first groups of MIRI integrations.

As jwst 3.0: MIRI only (:class:`~webbflow.steps._miri.MiriStep`). The RSCD
reference row matching the exposure's ``READPATT`` and ``SUBARRAY`` (``SUBPRISM``
read as ``SLITLESSPRISM``) gives ``group_skip1`` (integration 1; -1 in old files
means 1) and ``group_skip`` (integrations 2+). No row: skipped. Fewer than 3
groups: skipped. With ≤ 5 groups both are 1. Each is capped at ngroups - 3
(``group_skip`` only when NINTS > 1). Integration 1 is flagged only if the data
start at the exposure's first integration (``INTSTART`` = 1); every later one
with ``group_skip``. Saturation back-off: :mod:`webbflow.steps.rscd.kernel`.

``meta.rscd.ngroups_skip_int1/int2p`` are recorded; jwst's pixel counts
(``keep_bright_firstgroup_*``, ``keep_groups_saturation_*``) need the data and
are not (they would force a compute while building the graph).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.step import SkipStep
from webbflow.engine.tiles import map_tiles
from webbflow.model import PIXEL_DIMS, RAMP_DIMS, meta_value, with_meta
from webbflow.steps._miri import MiriStep
from webbflow.steps.rscd.kernel import rscd_kernel


def group_skips(table: xr.Dataset, readpatt: str, subarray: str) -> tuple[int, int] | None:
    """``(group_skip1, group_skip)`` of the RSCD table row for ``readpatt``/``subarray``, or ``None``."""
    sub = subarray.strip().upper()
    sub = "SLITLESSPRISM" if sub == "SUBPRISM" else sub
    rows = np.flatnonzero(
        (table["subarray"].values == sub) & (table["readpatt"].values == readpatt.strip().upper())
    )
    if rows.size == 0:
        return None
    first = int(rows[0])
    return int(table["group_skip1"].values[first]), int(table["group_skip"].values[first])


def skip_per_integration(
    ngroups: int, nints: int, nint_data: int, int_start: int, skip1: int, skip2p: int
) -> tuple[np.ndarray, int, int]:
    """Groups to flag in each integration of the data (-1: none), and the two capped values.

    Parameters
    ----------
    ngroups, nints
        Groups per integration and integrations of the exposure (``NGROUPS``, ``NINTS``).
    nint_data
        Integrations present in the data (a segment may hold fewer than ``nints``).
    int_start
        Exposure number of the data's first integration (``INTSTART``, 1 if unsegmented).
    skip1, skip2p
        ``group_skip1`` (-1: 1) and ``group_skip`` from the reference.
    """
    skip1 = 1 if skip1 < 0 else skip1
    if ngroups <= 5:
        skip1 = skip2p = 1
    if ngroups < skip1 + 3:
        skip1 = max(0, ngroups - 3)
    if nints > 1 and ngroups < skip2p + 3:
        skip2p = max(0, ngroups - 3)
    per = np.full(nint_data, -1, dtype=np.int64)
    if nints > 1:
        per[:] = skip2p
    if int_start == 1 and nint_data:
        per[0] = skip1
    return per, skip1, skip2p


class RscdStep(MiriStep):
    """Flag the RSCD-affected first groups of each MIRI integration DO_NOT_USE."""

    name = "rscd"
    cal_step = "rscd"
    reftypes = ("rscd",)

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with the first groups flagged in ``groupdq`` (lazy)."""
        readpatt = str(meta_value(ds, "exposure.readpatt", "") or "")
        subarray = str(meta_value(ds, "subarray.name", "") or "")
        skips = group_skips(refs["rscd"], readpatt, subarray)
        if skips is None:
            raise SkipStep(f"READPATT={readpatt}, SUBARRAY={subarray} not in the RSCD reference")
        ngroups = int(meta_value(ds, "exposure.ngroups", ds.sizes["group"]) or ds.sizes["group"])
        if ngroups < 3:
            raise SkipStep(f"too few groups ({ngroups} < 3)")
        nints = int(meta_value(ds, "exposure.nints", ds.sizes["integration"]) or ds.sizes["integration"])
        int_start = int(meta_value(ds, "exposure.integration_start", 1) or 1)
        per, skip1, skip2p = skip_per_integration(ngroups, nints, ds.sizes["integration"], int_start, *skips)
        out = map_tiles(
            rscd_kernel,
            {"groupdq": ds["groupdq"], "pixeldq": ds["pixeldq"]},
            {"groupdq": (RAMP_DIMS, np.uint8), "pixeldq": (PIXEL_DIMS, np.uint32)},
            like=ds,
            kwargs={
                "skip": per,
                "do_not_use": dq.DO_NOT_USE,
                "saturated": dq.SATURATED,
                "flux_estimated": dq.FLUX_ESTIMATED,
            },
        )
        updates = {}
        if int_start == 1:
            updates["rscd.ngroups_skip_int1"] = skip1
        if nints > 1:
            updates["rscd.ngroups_skip_int2p"] = skip2p
        return with_meta(ds.assign(out), updates)
