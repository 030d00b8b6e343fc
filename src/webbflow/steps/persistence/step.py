"""The ``persistence`` step: a documented pass-through — persistence correction is **not built**.

jwst 3.0's persistence step is skipped by default (``skip=True``) and has no
reference files. webbflow keeps the step so that pipelines and parameter
files naming it work: its parameters are accepted, ``skip`` defaults to True,
and running it with ``skip=False`` records ``meta.cal_step.persistence =
SKIPPED`` with the reason "persistence correction is not built". The data are
never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import xarray as xr

from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep, Step


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`PersistenceStep` (as jwst 3.0; accepted, unused)."""

    skip: bool = param(True, "Skip this step (default True, as jwst).")
    save_persistence: str | None = param(None, "ASDF file for the persistence array (unused).")
    persistence_time: int | None = param(None, "Persistence window, s (unused).")
    dn_threshold: float | None = param(None, "Threshold above which to flag persistence (unused).")
    persistence_array_file: str | None = param(
        None, "ASDF file with a 2-D array of persistence times per pixel (unused)."
    )
    persistence_dnu: bool = param(False, "Also set DO_NOT_USE with PERSISTENCE (unused).")


class PersistenceStep(Step):
    """Persistence correction: not built; always skipped."""

    name = "persistence"
    cal_step = "persistence"
    reftypes = ()
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Always raise :class:`SkipStep`: persistence correction is not built."""
        raise SkipStep("persistence correction is not built")
