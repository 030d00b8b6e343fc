"""The ``charge_migration`` step: flag groups affected by charge migration (see the kernel).

No reference files; skipped by default, as in jwst 3.0. The halo is 1 pixel
(neighbour flagging), so results are exact across tile edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Step
from webbflow.engine.tiles import map_tiles
from webbflow.model import RAMP_DIMS
from webbflow.steps.charge_migration.kernel import charge_migration_kernel


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`ChargeMigrationStep` (names and defaults as jwst 3.0)."""

    skip: bool = param(True, "Skip this step (default True, as jwst).")
    signal_threshold: float = param(25000.0, "Signal, DN, above which groups are flagged.")


class ChargeMigrationStep(Step):
    """Flag CHARGELOSS | DO_NOT_USE in and around pixels above the signal threshold."""

    name = "charge_migration"
    cal_step = "charge_migration"
    reftypes = ()
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with CHARGELOSS flags in ``groupdq`` (lazy)."""
        p = self.params
        assert isinstance(p, Params)
        out = map_tiles(
            charge_migration_kernel,
            {"sci": ds["sci"], "groupdq": ds["groupdq"]},
            {"groupdq": (RAMP_DIMS, np.uint8)},
            like=ds,
            depth=1,
            kwargs={
                "signal_threshold": p.signal_threshold,
                "do_not_use": dq.DO_NOT_USE,
                "chargeloss": dq.CHARGELOSS,
            },
        )
        return ds.assign(groupdq=out["groupdq"])
