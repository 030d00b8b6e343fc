"""The ``dark_current`` step (``meta.cal_step.dark_sub``): subtract the DARK reference.

Matching the dark to the science readout (NFRAMES, GROUPGAP from the
exposure meta and the dark header):

* same NFRAMES and GROUPGAP: dark group g is subtracted from science group g;
* a frame-by-frame dark (NFRAMES=1, GROUPGAP=0): science group g (0-based)
  gets the mean of dark frames ``g*(nframes+groupgap) … +nframes-1``;
* dark NFRAMES or GROUPGAP larger than the science's: cannot be matched, the
  step is skipped (as jwst);
* any other averaged dark: :class:`ReferenceFileError`.

A dark with fewer frames than the science readout spans raises
:class:`ReferenceFileError` naming the file and the frames needed (jwst
instead extrapolates linearly from the dark's last two groups).
MIRI darks (4-D, ``DarkMIRIModel``: dims ``dark_integration, dark_group``) are
matched per integration as jwst's (stcal ``subtract_dark``): science integration
i (0-based) uses dark integration i while i < the dark's NINTS and the data start
at the exposure's first integration (``INTSTART`` = 1), else the dark's last
integration (so with jwst's 2-integration MIRI darks, integration 1 uses the first
and every later one the second; a segment starting later uses the last for all).
The match is made lazily per tile; the near-infrared path is unchanged.

The output carries ``average_dark_current`` (y, x) float32, e⁻/s, for ramp
fitting's Poisson variance, as jwst fills it: the ``average_dark_current``
parameter if given, else the dark header's AVDRKCUR, else 0. (jwst would
first use a 2-D AVDRKCUR extension of the dark; the reference opener does not
load it.) ``dark_output`` (saving the matched dark) is
**not built**: setting it is a :class:`UsageError`. The zero frame is not
dark-subtracted (as jwst).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep, Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import ReferenceFileError, UsageError
from webbflow.model import PIXEL_DIMS, RAMP_DIMS, meta_value, tile_size
from webbflow.steps.dark_current.kernel import dark_kernel, dark_kernel_by_integration


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`DarkCurrentStep` (names and defaults as jwst 3.0)."""

    dark_output: str | None = param(None, "File for the matched dark (not built).")
    average_dark_current: float | None = param(
        None, "Average dark current of the detector, e-/s (used by ramp fitting)."
    )


class DarkCurrentStep(Step):
    """Subtract the dark reference, averaged to the science readout pattern."""

    name = "dark_current"
    cal_step = "dark_sub"
    reftypes = ("dark",)
    Params = Params

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        super().__init__(params, **values)
        if getattr(self.params, "dark_output", None) is not None:
            raise UsageError("dark_current.dark_output is not built in webbflow; leave it unset")

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with the matched dark subtracted (lazy)."""
        p = self.params
        assert isinstance(p, Params)
        ref = refs["dark"]
        planes = dark_planes(ds, ref)
        dark = ref["sci"].isel(dark_group=slice(0, int(planes.max()) + 1))
        inputs = {"sci": ds["sci"], "pixeldq": ds["pixeldq"], "dark": dark, "dark_dq": ref["dq"]}
        outputs = {"sci": (RAMP_DIMS, np.float32), "pixeldq": (PIXEL_DIMS, np.uint32)}
        if "dark_integration" in dark.dims:  # MIRI: one dark per integration
            which = dark_integrations(ds, dark.sizes["dark_integration"])
            used = slice(0, int(which.max()) + 1)
            inputs["dark"] = dark.isel(dark_integration=used)
            kwargs = {"planes": planes, "dark_integration": which}
            out = map_tiles(dark_kernel_by_integration, inputs, outputs, like=ds, kwargs=kwargs)
        else:
            out = map_tiles(dark_kernel, inputs, outputs, like=ds, kwargs={"planes": planes})
        avg = p.average_dark_current
        if avg is None:
            avg = float(ref.attrs.get("header", {}).get("AVDRKCUR", 0.0) or 0.0)
        return ds.assign({**out, "average_dark_current": _filled(ds, avg)})


def _filled(ds: xr.Dataset, value: float) -> xr.DataArray:
    """A lazy (y, x) float32 plane of ``value`` tiled like ``ds``."""
    ychunks, xchunks = tile_size(ds)
    data = da.full((ds.sizes["y"], ds.sizes["x"]), value, dtype=np.float32, chunks=(ychunks, xchunks))
    return xr.DataArray(data, dims=PIXEL_DIMS, coords={d: ds.coords[d] for d in PIXEL_DIMS})


def dark_integrations(ds: xr.Dataset, dark_nints: int) -> np.ndarray:
    """(integration,) 0-based dark integration for each integration of ``ds`` (MIRI darks).

    Integration i uses dark integration i if ``i < dark_nints`` and the data start at the
    exposure's first integration (``INTSTART`` = 1), else the dark's last integration.
    """
    nint = ds.sizes["integration"]
    int_start = int(meta_value(ds, "exposure.integration_start", 1) or 1)
    index = np.arange(nint, dtype=np.intp)
    own = (index < dark_nints) & (int_start == 1)
    return np.where(own, index, dark_nints - 1).astype(np.intp)


def dark_planes(ds: xr.Dataset, ref: xr.Dataset) -> np.ndarray:
    """(group, nframes) indices of the dark planes averaged for each science group.

    Raises
    ------
    SkipStep
        If the dark's NFRAMES or GROUPGAP exceed the science's.
    ReferenceFileError
        If the dark is too short or averaged in a way that cannot be matched.
    """
    label = ref.attrs.get("name") or ref.attrs.get("path") or "dark reference"
    header = ref.attrs.get("header", {})
    ngroups = ds.sizes["group"]
    nframes = int(meta_value(ds, "exposure.nframes", 1) or 1)
    groupgap = int(meta_value(ds, "exposure.groupgap", 0) or 0)
    d_nframes = int(header.get("NFRAMES", 1) or 1)
    d_groupgap = int(header.get("GROUPGAP", 0) or 0)
    d_groups = ref.sizes["dark_group"]
    if d_nframes > nframes or d_groupgap > groupgap:
        raise SkipStep(
            f"{label}: dark NFRAMES/GROUPGAP = {d_nframes}/{d_groupgap} exceed the "
            f"science's {nframes}/{groupgap}; dark cannot be matched"
        )
    if d_nframes == nframes and d_groupgap == groupgap:
        if d_groups < ngroups:
            raise ReferenceFileError(
                f"{label}: dark has {d_groups} groups, the science exposure needs {ngroups}"
            )
        return np.arange(ngroups, dtype=np.intp)[:, None]
    if d_nframes != 1 or d_groupgap != 0:
        raise ReferenceFileError(
            f"{label}: dark NFRAMES/GROUPGAP = {d_nframes}/{d_groupgap} cannot be averaged to "
            f"the science readout {nframes}/{groupgap}; need a frame-by-frame dark (NFRAMES=1)"
        )
    needed = ngroups * nframes + (ngroups - 1) * groupgap
    if d_groups < needed:
        raise ReferenceFileError(f"{label}: dark has {d_groups} frames, the science readout needs {needed}")
    starts = np.arange(ngroups, dtype=np.intp) * (nframes + groupgap)
    return starts[:, None] + np.arange(nframes, dtype=np.intp)[None, :]
