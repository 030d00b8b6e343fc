"""The ``lastframe`` step (jwst ``LastFrameStep``): MIRI last group → DO_NOT_USE.

As jwst 3.0: MIRI only (:class:`~webbflow.steps._miri.MiriStep`); skipped when
an integration has 2 groups or fewer. No parameters, no reference file.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.step import SkipStep
from webbflow.engine.tiles import map_tiles
from webbflow.model import RAMP_DIMS
from webbflow.steps._miri import MiriStep
from webbflow.steps.lastframe.kernel import lastframe_kernel


class LastFrameStep(MiriStep):
    """Flag the last group of each MIRI integration DO_NOT_USE."""

    name = "lastframe"
    cal_step = "lastframe"

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with the last group flagged in ``groupdq`` (lazy)."""
        if ds.sizes["group"] <= 2:
            raise SkipStep(f"too few groups ({ds.sizes['group']} <= 2)")
        out = map_tiles(
            lastframe_kernel,
            {"groupdq": ds["groupdq"]},
            {"groupdq": (RAMP_DIMS, np.uint8)},
            like=ds,
            kwargs={"do_not_use": dq.DO_NOT_USE},
        )
        return ds.assign(out)
