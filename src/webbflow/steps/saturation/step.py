"""The ``saturation`` step: flag saturated and A-to-D-floor groups (see the kernel for physics).

References: SATURATION (threshold ``sci`` and ``dq``) and SUPERBIAS (``sci``,
used only by the frame-averaged group-2 test). As in jwst 3.0 the read pattern
used with ``use_readpatt`` numbers the frames of group g (0-based) as
``g*NFRAMES + 1 ... g*NFRAMES + NFRAMES`` (GROUPGAP is not included). The halo
is ``n_pix_grow_sat`` pixels, or twice that when the frame-averaging test runs
(its flags are grown from grown flags), so results are exact across tiles.
The zero frame is processed when ``meta.exposure.zero_frame`` is true.
MIRI exposures use no SUPERBIAS (N/A unless ``override_superbias`` is given),
as CRDS has none for MIRI.

Not built: NIRSpec IRS2 readouts, superstripe (4-D) references.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Resolver, Step
from webbflow.engine.tiles import OutputSpec, map_tiles
from webbflow.model import PIXEL_DIMS, RAMP_DIMS, meta_value
from webbflow.steps._miri import is_miri
from webbflow.steps.saturation.kernel import saturation_kernel

#: Largest value of the 16-bit A-to-D converter, DN.
ATOD_LIMIT = 65535.0


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`SaturationStep` (names and defaults as jwst 3.0)."""

    n_pix_grow_sat: int = param(1, "Number of layers of adjacent pixels to flag as saturated.", minimum=0)
    use_readpatt: bool = param(True, "Use the grouped read pattern to help flag saturation.")


class SaturationStep(Step):
    """Flag SATURATED / AD_FLOOR groups and NO_SAT_CHECK pixels."""

    name = "saturation"
    cal_step = "saturation"
    reftypes = ("saturation", "superbias")
    optional_reftypes = ("superbias",)
    Params = Params

    def _apply(self, ds: xr.Dataset, resolver: Resolver | None) -> xr.Dataset:
        # MIRI has no superbias (CRDS answers N/A; webbflow embeds none): do not ask for one
        if is_miri(ds) and "superbias" not in self.overrides:
            clone = copy.copy(self)
            clone.overrides = {**self.overrides, "superbias": "N/A"}
            return Step._apply(clone, ds, resolver)
        return super()._apply(ds, resolver)

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with saturation flags in ``groupdq``/``pixeldq`` (lazy)."""
        p = self.params
        assert isinstance(p, Params)
        ngroups = ds.sizes["group"]
        nframes = int(meta_value(ds, "exposure.nframes", 1) or 1)
        read_pattern = None
        if p.use_readpatt:
            read_pattern = tuple(tuple(g * nframes + f + 1 for f in range(nframes)) for g in range(ngroups))
        grow = p.n_pix_grow_sat
        diluted = read_pattern is not None and nframes > 1 and ngroups > 1
        inputs = {
            "sci": ds["sci"],
            "groupdq": ds["groupdq"],
            "pixeldq": ds["pixeldq"],
            "threshold": refs["saturation"]["sci"],
            "threshold_dq": refs["saturation"]["dq"],
        }
        if "superbias" in refs:
            inputs["bias"] = refs["superbias"]["sci"]
        outputs: dict[str, OutputSpec] = {
            "groupdq": (RAMP_DIMS, np.uint8),
            "pixeldq": (PIXEL_DIMS, np.uint32),
        }
        zero = bool(meta_value(ds, "exposure.zero_frame", False)) and "zeroframe" in ds
        if zero:
            inputs["zeroframe"] = ds["zeroframe"]
            outputs["zeroframe"] = (("integration", "y", "x"), np.float32)
        out = map_tiles(
            saturation_kernel,
            inputs,
            outputs,
            like=ds,
            depth=grow * (2 if diluted else 1),
            kwargs={
                "n_grow": grow,
                "read_pattern": read_pattern,
                "atod_limit": ATOD_LIMIT,
                "saturated": dq.SATURATED,
                "do_not_use": dq.DO_NOT_USE,
                "ad_floor": dq.AD_FLOOR,
                "no_sat_check": dq.NO_SAT_CHECK,
            },
        )
        return ds.assign(out)
