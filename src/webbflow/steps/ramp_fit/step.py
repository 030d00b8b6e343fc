"""The ``ramp_fit`` step: ramps -> count rates, lazily per (y, x) tile.

The exposure Dataset goes from ramp level (``sci``/``groupdq``/``pixeldq``
over integration and group) to rate level: ``sci, err, dq, var_poisson,
var_rnoise`` over ``(y, x)`` and the same with suffix ``_ints`` over
``(integration, y, x)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import InputError, UsageError
from webbflow.model import meta_value, require_ramp
from webbflow.steps.ramp_fit.kernel import RampFitResult, group_mask, ramp_fit_kernel

log = logging.getLogger("webbflow")

#: Output name -> (dims, dtype), in the order of :class:`RampFitResult`.
OUTPUTS: dict[str, tuple[tuple[str, ...], type]] = {
    name: (
        (("integration", "y", "x") if name.endswith("_ints") else ("y", "x")),
        np.uint32 if name.startswith("dq") else np.float32,
    )
    for name in RampFitResult._fields
}


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`RampFitStep` (jwst 3.0 names and defaults)."""

    algorithm: str = param(
        "OLS_C", "Ramp fitting algorithm (only OLS_C is built).", choices=("OLS_C", "LIKELY")
    )
    int_name: str = param("", "Output name of the rateints product.")
    save_opt: bool = param(False, "Save the optional fit results (not built).")
    opt_name: str = param("", "Output name of the optional results product.")
    suppress_one_group: bool = param(True, "Treat ramps with only one good group as unusable.")
    firstgroup: int | None = param(None, "Ignore groups before this one (0-based).")
    lastgroup: int | None = param(None, "Ignore groups after this one (0-based).")
    maximum_cores: str = param("1", "Accepted for jwst compatibility; dask sets the parallelism.")


class RampFitStep(Step):
    """Fit the ramps: optimally weighted OLS per segment, combined per integration and exposure."""

    name = "ramp_fit"
    reftypes = ("readnoise", "gain")
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """The rate-level exposure (lazy) fitted from the ramps of ``ds``."""
        p = self.params
        assert isinstance(p, Params)
        if p.algorithm.upper() != "OLS_C":
            raise UsageError(f"ramp_fit.algorithm={p.algorithm!r} is not built in webbflow; use OLS_C")
        if p.save_opt:
            raise UsageError("ramp_fit.save_opt=True (optional fit results) is not built in webbflow")
        require_ramp(ds)
        ngroups = ds.sizes["group"]
        exposure = {key: meta_value(ds, f"exposure.{key}") for key in ("group_time", "frame_time", "nframes")}
        missing = [key for key, value in exposure.items() if value is None]
        if missing:
            raise InputError(f"exposure: meta.exposure.{missing[0]} is missing; ramp_fit needs it")
        first, last = _checked_groups(p.firstgroup, p.lastgroup, ngroups)
        inputs = {
            "sci": ds.sci,
            "groupdq": ds.groupdq,
            "pixeldq": ds.pixeldq,
            "readnoise": refs["readnoise"].sci,
            "gain": refs["gain"].sci,
        }
        if "zeroframe" in ds:
            inputs["zeroframe"] = ds.zeroframe
        if "average_dark_current" in ds:
            inputs["dark"] = ds.average_dark_current
        kwargs = {
            "group_time": float(exposure["group_time"]),
            "frame_time": float(exposure["frame_time"]),
            "nframes": int(exposure["nframes"]),
            "exclude": tuple(bool(v) for v in group_mask(ngroups, first, last)),
            "suppress_one_group": p.suppress_one_group,
            "do_not_use": dq.DO_NOT_USE,
            "saturated": dq.SATURATED,
            "jump_det": dq.JUMP_DET,
            "persistence": dq.PERSISTENCE,
            "no_gain_value": dq.NO_GAIN_VALUE,
            "chargeloss": dq.CHARGELOSS,
        }
        out = map_tiles(ramp_fit_kernel, inputs, OUTPUTS, like=ds, kwargs=kwargs, name="ramp_fit")
        ramp_vars = [
            name
            for name, var in ds.data_vars.items()
            if "group" in var.dims or name in ("pixeldq", "zeroframe", "average_dark_current")
        ]
        rate = ds.drop_vars(ramp_vars).drop_dims("group", errors="ignore")
        return rate.assign(out)


def _checked_groups(first: int | None, last: int | None, ngroups: int) -> tuple[int | None, int | None]:
    """``firstgroup``/``lastgroup`` as jwst applies them, logging the same warnings."""
    if first is None and last is None:
        return None, None
    f = 0 if first is None else first
    n = ngroups - 1 if last is None else last
    if f < 0:
        log.warning("ramp_fit: firstgroup < 0, reset to 0")
        f = 0
    if n >= ngroups:
        log.warning("ramp_fit: lastgroup >= number of groups (%d)", ngroups)
    if f >= n:
        log.warning("ramp_fit: firstgroup (%d) cannot be >= lastgroup (%d); group selectors ignored", f, n)
        return None, None
    return f, n
