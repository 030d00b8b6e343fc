"""The ``firstframe`` step (jwst ``FirstFrameStep``): MIRI group 1 → DO_NOT_USE.

As jwst 3.0: MIRI only (:class:`~webbflow.steps._miri.MiriStep`); skipped when
an integration has 3 groups or fewer; ``bright_use_group1`` (default True)
keeps group 1 where group 3 is SATURATED and flags those pixels FLUX_ESTIMATED.
jwst 3.0 deprecates the step (the rscd step now flags the first groups) and
skips it by default (``skip = True``); so does webbflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep
from webbflow.engine.tiles import map_tiles
from webbflow.model import PIXEL_DIMS, RAMP_DIMS
from webbflow.steps._miri import MiriStep
from webbflow.steps.firstframe.kernel import firstframe_kernel


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`FirstFrameStep` (names and defaults as jwst 3.0)."""

    skip: bool = param(True, "Skip this step (jwst 3.0 default: the step is deprecated).")
    bright_use_group1: bool = param(True, "Do not flag group 1 where group 3 is saturated.")


class FirstFrameStep(MiriStep):
    """Flag the first group of each MIRI integration DO_NOT_USE."""

    name = "firstframe"
    cal_step = "firstframe"
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with group 1 flagged in ``groupdq`` (lazy)."""
        p = self.params
        assert isinstance(p, Params)
        if ds.sizes["group"] <= 3:
            raise SkipStep(f"too few groups ({ds.sizes['group']} <= 3)")
        out = map_tiles(
            firstframe_kernel,
            {"groupdq": ds["groupdq"], "pixeldq": ds["pixeldq"]},
            {"groupdq": (RAMP_DIMS, np.uint8), "pixeldq": (PIXEL_DIMS, np.uint32)},
            like=ds,
            kwargs={
                "bright_use_group1": p.bright_use_group1,
                "do_not_use": dq.DO_NOT_USE,
                "saturated": dq.SATURATED,
                "flux_estimated": dq.FLUX_ESTIMATED,
            },
        )
        return ds.assign(out)
