"""The ``linearity`` step: classic per-group non-linearity correction (see the kernel).

Reference: LINEARITY (``coeffs`` (coeff, y, x), lowest order first; ``dq``).
The zero frame is corrected when ``meta.exposure.zero_frame`` is true.

Not built: jwst's read-level correction for frame-averaged groups, which
needs inverse coefficients (``inv_coeffs``) that our reference Dataset does
not carry; frame-averaged groups get the per-group polynomial, which is what
jwst does when the reference has no inverse coefficients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams
from webbflow.engine.step import Step
from webbflow.engine.tiles import OutputSpec, map_tiles
from webbflow.errors import ReferenceFileError
from webbflow.model import PIXEL_DIMS, RAMP_DIMS, meta_value
from webbflow.steps.linearity.kernel import linearity_kernel


@dataclass(frozen=True)
class Params(StepParams):
    """linearity has no parameters besides ``skip``."""


class LinearityStep(Step):
    """Correct each unsaturated group for detector non-linearity."""

    name = "linearity"
    cal_step = "linearity"
    reftypes = ("linearity",)
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with linearised ``sci`` and NO_LIN_CORR flags (lazy)."""
        ref = refs["linearity"]
        coeffs = ref["coeffs"]
        if coeffs.dims[0] != "coeff" or coeffs.sizes["coeff"] < 2:
            raise ReferenceFileError(
                f"{ref.attrs.get('name', 'linearity reference')}: coeffs must be (coeff, y, x)"
                f" with at least 2 coefficients, got dims {coeffs.dims} shape {coeffs.shape}"
            )
        inputs = {
            "sci": ds["sci"],
            "groupdq": ds["groupdq"],
            "pixeldq": ds["pixeldq"],
            "coeffs": coeffs,
            "lin_dq": ref["dq"],
        }
        outputs: dict[str, OutputSpec] = {"sci": (RAMP_DIMS, np.float32), "pixeldq": (PIXEL_DIMS, np.uint32)}
        if bool(meta_value(ds, "exposure.zero_frame", False)) and "zeroframe" in ds:
            inputs["zeroframe"] = ds["zeroframe"]
            outputs["zeroframe"] = (("integration", "y", "x"), np.float32)
        out = map_tiles(
            linearity_kernel,
            inputs,
            outputs,
            like=ds,
            kwargs={"saturated": dq.SATURATED, "no_lin_corr": dq.NO_LIN_CORR},
        )
        return ds.assign(out)
