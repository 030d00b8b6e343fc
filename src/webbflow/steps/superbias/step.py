"""The ``superbias`` step: subtract the SUPERBIAS reference (see the kernel for physics).

As jwst: NaNs in the bias are replaced by 0 without adding a flag; the
reference DQ is ORed into ``pixeldq``; the zero frame (when
``meta.exposure.zero_frame``) is corrected too, keeping its zeros.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow.engine.params import StepParams
from webbflow.engine.step import Step
from webbflow.engine.tiles import OutputSpec, map_tiles
from webbflow.model import PIXEL_DIMS, RAMP_DIMS, meta_value
from webbflow.steps.superbias.kernel import superbias_kernel


@dataclass(frozen=True)
class Params(StepParams):
    """superbias has no parameters besides ``skip``."""


class SuperBiasStep(Step):
    """Subtract the superbias image from every group."""

    name = "superbias"
    cal_step = "superbias"
    reftypes = ("superbias",)
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with the bias subtracted (lazy)."""
        ref = refs["superbias"]
        inputs = {"sci": ds["sci"], "pixeldq": ds["pixeldq"], "bias": ref["sci"], "bias_dq": ref["dq"]}
        outputs: dict[str, OutputSpec] = {"sci": (RAMP_DIMS, np.float32), "pixeldq": (PIXEL_DIMS, np.uint32)}
        if bool(meta_value(ds, "exposure.zero_frame", False)) and "zeroframe" in ds:
            inputs["zeroframe"] = ds["zeroframe"]
            outputs["zeroframe"] = (("integration", "y", "x"), np.float32)
        return ds.assign(map_tiles(superbias_kernel, inputs, outputs, like=ds))
