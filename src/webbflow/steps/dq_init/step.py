"""The ``dq_init`` step: initialise ``pixeldq``/``groupdq`` from the MASK reference.

``pixeldq |= mask.dq`` and ``groupdq |= mask.dq & DO_NOT_USE`` in every group
(as jwst). Missing ``groupdq``/``pixeldq`` variables are created as zeros.
``user_supplied_dq`` (an extra DQ file ORed into the mask) is accepted for
jwst compatibility but **not built**: setting it is a :class:`UsageError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import UsageError
from webbflow.model import PIXEL_DIMS, RAMP_DIMS
from webbflow.steps.dq_init.kernel import dq_init_kernel


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`DQInitStep`."""

    user_supplied_dq: str | None = param(None, "FITS user-supplied DQ file (not built).")


class DQInitStep(Step):
    """OR the MASK reference into the exposure's DQ arrays."""

    name = "dq_init"
    cal_step = "dq_init"
    reftypes = ("mask",)
    Params = Params

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        super().__init__(params, **values)
        if getattr(self.params, "user_supplied_dq", None) is not None:
            raise UsageError("dq_init.user_supplied_dq is not built in webbflow; leave it unset")

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with the mask ORed into ``pixeldq`` and ``groupdq`` (lazy)."""
        ds = _with_dq_arrays(ds)
        out = map_tiles(
            dq_init_kernel,
            {"pixeldq": ds["pixeldq"], "groupdq": ds["groupdq"], "mask": refs["mask"]["dq"]},
            {"pixeldq": (PIXEL_DIMS, np.uint32), "groupdq": (RAMP_DIMS, np.uint8)},
            like=ds,
            kwargs={"do_not_use": dq.DO_NOT_USE},
        )
        return ds.assign(pixeldq=out["pixeldq"], groupdq=out["groupdq"])


def _with_dq_arrays(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with zero ``groupdq`` (uint8) / ``pixeldq`` (uint32) added if they are missing."""
    sci = ds["sci"]
    new: dict[str, xr.DataArray] = {}
    if "groupdq" not in ds:
        data = da.zeros(sci.shape, dtype=np.uint8, chunks=sci.chunks or sci.shape)
        new["groupdq"] = xr.DataArray(data, dims=sci.dims, coords=sci.coords)
    if "pixeldq" not in ds:
        ychunks, xchunks = sci.chunks[-2:] if sci.chunks else (sci.shape[-2], sci.shape[-1])
        data = da.zeros(sci.shape[-2:], dtype=np.uint32, chunks=(ychunks, xchunks))
        new["pixeldq"] = xr.DataArray(data, dims=PIXEL_DIMS, coords={d: ds.coords[d] for d in PIXEL_DIMS})
    return ds.assign(new) if new else ds
