"""Shared by the MIRI-only Detector1 steps (firstframe, lastframe, reset, rscd).

jwst runs these steps on MIRI exposures only and records ``SKIPPED`` for any
other detector. :class:`MiriStep` checks that *before* the reference files are
resolved, so a near-infrared exposure never asks for a RESET or RSCD file.
"""

from __future__ import annotations

import xarray as xr

from webbflow.engine.step import Rerun, Resolver, Step
from webbflow.model import meta_value


def is_miri(ds: xr.Dataset) -> bool:
    """Whether ``meta.instrument.detector`` is a MIRI detector (``MIR…``), as jwst tests it."""
    return str(meta_value(ds, "instrument.detector", "") or "").strip().upper().startswith("MIR")


class MiriStep(Step):
    """A step that applies to MIRI exposures only; others are marked ``SKIPPED``."""

    def __call__(
        self, ds: xr.Dataset, resolver: Resolver | None = None, *, rerun: Rerun | None = None
    ) -> xr.Dataset:
        """Apply the step to a MIRI ``ds``; return ``ds`` marked ``SKIPPED`` otherwise."""
        if not self.params.skip and not is_miri(ds):
            det = meta_value(ds, "instrument.detector", "?")
            return self.mark_skipped(ds, f"{self.name} is for MIRI only, DETECTOR={det}")
        return super().__call__(ds, resolver, rerun=rerun)
