"""The ``reset`` step (jwst ``ResetStep``): subtract the MIRI reset anomaly.

As jwst 3.0: MIRI only (:class:`~webbflow.steps._miri.MiriStep`); the RESET
reference's header ``NINTS``/``NGROUPS`` give how many integrations and groups
it describes (the array shape when absent). Groups 1…min(NGROUPS, ngroups) of
every integration get the reference's integration of the same number, or its
last one beyond NINTS. For segmented exposures (``INTSTART``/``INTEND``) the
integration numbers are the exposure's. The reference DQ is ORed into
``pixeldq``; ERR is not changed (jwst leaves it alone too).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from webbflow.engine.tiles import map_tiles
from webbflow.model import PIXEL_DIMS, RAMP_DIMS, meta_value
from webbflow.steps._miri import MiriStep
from webbflow.steps.reset.kernel import reset_kernel


def reference_integrations(ds: xr.Dataset, reset_nints: int) -> np.ndarray:
    """(integration,) 0-based RESET integration for each integration of ``ds`` (-1: none).

    Follows jwst: integrations ``INTSTART``…``INTEND`` (1-based, defaults 1 and
    NINTS) of the exposure are corrected; the i-th uses reference integration
    ``min(i, reset_nints) - 1``.
    """
    nint = ds.sizes["integration"]
    istart = int(meta_value(ds, "exposure.integration_start", 1) or 1) - 1
    end = meta_value(ds, "exposure.integration_end", None)
    iend = int(end) if end is not None else int(meta_value(ds, "exposure.nints", nint) or nint)
    absolute = istart + np.arange(nint)
    return np.where(absolute < iend, np.minimum(absolute, reset_nints - 1), -1).astype(np.int64)


class ResetStep(MiriStep):
    """Subtract the RESET reference from the first groups of each integration."""

    name = "reset"
    cal_step = "reset"
    reftypes = ("reset",)

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with the reset anomaly subtracted from ``sci`` (lazy)."""
        ref = refs["reset"]
        header = ref.attrs.get("header", {})
        shape_nints, shape_ngroups = ref["sci"].shape[:2]
        reset_nints = min(int(header.get("NINTS", shape_nints) or shape_nints), shape_nints)
        reset_ngroups = min(int(header.get("NGROUPS", shape_ngroups) or shape_ngroups), shape_ngroups)
        out = map_tiles(
            reset_kernel,
            {"sci": ds["sci"], "pixeldq": ds["pixeldq"], "reset": ref["sci"], "reset_dq": ref["dq"]},
            {"sci": (RAMP_DIMS, np.float32), "pixeldq": (PIXEL_DIMS, np.uint32)},
            like=ds,
            kwargs={
                "ref_integration": reference_integrations(ds, reset_nints),
                "ngroups": min(reset_ngroups, ds.sizes["group"]),
            },
        )
        return ds.assign(out)
