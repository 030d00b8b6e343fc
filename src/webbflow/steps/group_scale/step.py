"""The ``group_scale`` step: rescale groups averaged with a wrong on-board divisor.

Applies only when ``meta.exposure.frame_divisor`` (FRMDIVSR) is known and
differs from ``meta.exposure.nframes`` (NFRAMES); otherwise the step is
skipped, as in jwst. Only ``sci`` is rescaled (the zero frame is a single
frame and needs no rescaling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow.engine.params import StepParams
from webbflow.engine.step import SkipStep, Step
from webbflow.engine.tiles import map_tiles
from webbflow.model import RAMP_DIMS, meta_value
from webbflow.steps.group_scale.kernel import group_scale_kernel


@dataclass(frozen=True)
class Params(StepParams):
    """group_scale has no parameters besides ``skip``."""


class GroupScaleStep(Step):
    """Multiply ``sci`` by FRMDIVSR/NFRAMES when they differ."""

    name = "group_scale"
    cal_step = "group_scale"
    reftypes = ()
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with ``sci`` rescaled (lazy); SkipStep when no rescaling applies."""
        nframes = meta_value(ds, "exposure.nframes")
        divisor = meta_value(ds, "exposure.frame_divisor")
        if nframes is None:
            raise SkipStep("NFRAMES (meta.exposure.nframes) is not set")
        if divisor is None:
            raise SkipStep("FRMDIVSR (meta.exposure.frame_divisor) is not set")
        if int(divisor) == int(nframes):
            raise SkipStep(f"FRMDIVSR equals NFRAMES ({nframes}); no rescaling needed")
        out = map_tiles(
            group_scale_kernel,
            {"sci": ds["sci"]},
            {"sci": (RAMP_DIMS, np.float32)},
            like=ds,
            kwargs={"scale": float(divisor) / float(nframes)},
        )
        return ds.assign(sci=out["sci"])
