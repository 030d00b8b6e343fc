"""The ``gain_scale`` step: multiply rate and rateints by the gain reference's ``GAINFACT``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import xarray as xr

from webbflow.engine.params import StepParams
from webbflow.engine.step import SkipStep, Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import InputError
from webbflow.model import meta_value, with_meta
from webbflow.steps.gain_scale.kernel import GainScaled, gain_scale_kernel

log = logging.getLogger("webbflow")


@dataclass(frozen=True)
class Params(StepParams):
    """``gain_scale`` has no parameters besides ``skip`` (as jwst 3.0)."""


class GainScaleStep(Step):
    """Rescale count rates taken with a non-standard gain setting by ``GAINFACT``."""

    name = "gain_scale"
    reftypes = ("gain",)
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """``ds`` with rate and rateints sci/err scaled by GAINFACT and variances by its square."""
        factor = meta_value(ds, "exposure.gain_factor")
        if factor is None:
            factor = refs["gain"].attrs.get("header", {}).get("GAINFACT")
        if factor is None:
            raise SkipStep("no GAINFACT")
        if "sci" not in ds or ds.sci.dims != ("y", "x"):
            raise InputError("exposure: gain_scale needs a rate-level exposure (run ramp_fit first)")
        log.info("gain_scale: rescaling by %s", factor)
        out: dict[str, xr.DataArray] = {}
        for suffix, dims in (("", ("y", "x")), ("_ints", ("integration", "y", "x"))):
            names = [f"{field}{suffix}" for field in GainScaled._fields]
            if not all(name in ds for name in names):
                continue
            scaled = map_tiles(
                gain_scale_kernel,
                dict(zip(GainScaled._fields, (ds[n] for n in names), strict=True)),
                {name: (dims, ds[name].dtype) for name in names},
                like=ds,
                kwargs={"gain_factor": float(factor)},
                name=f"gain_scale{suffix}",
            )
            out.update(scaled)
        return with_meta(ds.assign(out), {"exposure.gain_factor": float(factor)})
