"""The ``flat_field`` step: divide rate and rateints by the FLAT reference (imaging).

See :mod:`webbflow.steps.flat_field.kernel` for the arithmetic (jwst 3.0
imaging semantics). The step adds ``var_flat`` (and ``var_flat_ints``) and
rebuilds ``err``. Of jwst's parameters, ``inverse`` is built;
``user_supplied_flat`` (use ``override_flat``) and ``save_interpolated_flat``
(NIRSpec only) are accepted for compatibility but **not built**: setting them
is a :class:`~webbflow.errors.UsageError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import InputError, UsageError
from webbflow.steps.flat_field.kernel import FlatFielded, flat_field_kernel

log = logging.getLogger("webbflow")

#: Variable-name suffixes of the rate-level planes: ``sci`` (a rate, or a rateints file's
#: (integration, y, x) cube) and ``sci_ints`` (rateints next to a rate, after ramp_fit).
SUFFIXES: tuple[str, ...] = ("", "_ints")
_RATE_DIMS: tuple[tuple[str, ...], ...] = (("y", "x"), ("integration", "y", "x"))


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`FlatFieldStep` (jwst 3.0 ``FlatFieldStep.spec``)."""

    save_interpolated_flat: bool = param(
        False, "Save the interpolated NIRSpec flat (NIRSpec only; not built)."
    )
    user_supplied_flat: str | None = param(None, "A user-supplied flat (not built: use override_flat).")
    inverse: bool = param(False, "Multiply by the flat instead of dividing (undo a flat field).")


class FlatFieldStep(Step):
    """Divide count rates by the pixel flat; add ``var_flat``; OR the flat's DQ."""

    name = "flat_field"
    reftypes = ("flat",)
    Params = Params

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        super().__init__(params, **values)
        if getattr(self.params, "user_supplied_flat", None) is not None:
            raise UsageError("flat_field.user_supplied_flat is not built in webbflow; use override_flat")
        if getattr(self.params, "save_interpolated_flat", False):
            raise UsageError("flat_field.save_interpolated_flat applies to NIRSpec only and is not built")

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """``ds`` with rate and rateints planes flat-fielded (lazy)."""
        require_rate(ds, self.name)
        flat = refs["flat"]
        inverse = bool(getattr(self.params, "inverse", False))
        log.info("flat_field: %s %s", "multiplying by" if inverse else "dividing by", flat.attrs.get("name"))
        out: dict[str, xr.DataArray] = {}
        for suffix in SUFFIXES:
            names = {f: f"{f}{suffix}" for f in ("sci", "dq", "var_poisson", "var_rnoise")}
            if not all(n in ds for n in names.values()):
                continue
            dims = tuple(str(d) for d in ds[names["sci"]].dims)
            inputs = {f: ds[n] for f, n in names.items()}
            inputs.update(flat=flat["sci"], flat_err=flat["err"], flat_dq=flat["dq"])
            types = {"dq": np.uint32}
            result = map_tiles(
                flat_field_kernel,
                inputs,
                {f"{f}{suffix}": (dims, types.get(f, np.float32)) for f in FlatFielded._fields},
                like=ds,
                kwargs={"do_not_use": dq.DO_NOT_USE, "no_flat_field": dq.NO_FLAT_FIELD, "inverse": inverse},
                name=f"flat_field{suffix}",
            )
            out.update(result)
        return ds.assign(out)


def require_rate(ds: xr.Dataset, step: str) -> None:
    """Raise :class:`InputError` unless ``ds`` is a rate-level exposure with variances."""
    missing = [v for v in ("sci", "dq", "var_poisson", "var_rnoise") if v not in ds]
    if "sci" in ds and ds["sci"].dims not in _RATE_DIMS:
        raise InputError(
            f"exposure: {step} needs a rate-level exposure (sci dims (y, x) or (integration, y, x), "
            f"got {ds['sci'].dims}); run ramp_fit first"
        )
    if missing:
        raise InputError(
            f"exposure: {step} needs rate variables {', '.join(missing)} (a rate/rateints product)"
        )
