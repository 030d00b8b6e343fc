"""Steps over a list of exposures (Image3's tweakreg, skymatch, outlier_detection).

A :class:`ListStep` is a :class:`~webbflow.engine.step.Step` (registered by ``name``, with typed
``Params``, listed by ``webbflow steps``, configured by ``--steps.<name>.<param>``) whose
subclasses implement ``build_list(inputs) -> list`` instead of ``build(ds, refs)``: the
alignment, sky levels and outlier medians of one exposure depend on the others. Calling it
handles ``skip``, :class:`~webbflow.engine.step.SkipStep` and ``meta.cal_step`` bookkeeping on
every output, as :meth:`Step.__call__` does for one exposure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import xarray as xr

from webbflow.engine.step import Rerun, Resolver, SkipStep, Step
from webbflow.errors import UsageError
from webbflow.model import with_meta

log = logging.getLogger("webbflow")


class ListStep(Step):
    """Base class of steps that transform a list of exposures together."""

    def build_list(self, inputs: Sequence[xr.Dataset]) -> list[xr.Dataset]:
        """Return the lazily transformed exposures, in input order (override in subclasses)."""
        raise NotImplementedError(f"{type(self).__name__}.build_list")

    def __call__(
        self,
        inputs: Sequence[xr.Dataset] | xr.Dataset,
        resolver: Resolver | None = None,
        *,
        rerun: Rerun | None = None,
    ) -> Any:
        """Apply the step to ``inputs`` (a list, or one Dataset) and record it in every output's meta.

        Returns a list for a list, a Dataset for a Dataset.
        """
        if isinstance(inputs, xr.Dataset):
            return self([inputs], resolver)[0]
        inputs = list(inputs)
        if not inputs:
            raise UsageError(f"{self.name}: no exposures given")
        if self.params.skip:
            return [
                self.mark_skipped(ds, "skip=True") if i == 0 else self._skip_quiet(ds)
                for i, ds in enumerate(inputs)
            ]
        start = time.perf_counter()
        try:
            outputs = self.build_list(inputs)
        except SkipStep as why:
            return [
                self.mark_skipped(ds, str(why)) if i == 0 else self._skip_quiet(ds)
                for i, ds in enumerate(inputs)
            ]
        if len(outputs) != len(inputs):
            raise RuntimeError(f"{self.name}: build_list returned {len(outputs)} exposures for {len(inputs)}")
        log.debug("%s: graph built in %.3f s", self.name, time.perf_counter() - start)
        return [with_meta(ds, {f"cal_step.{self.cal_step}": "COMPLETE"}) for ds in outputs]

    def _skip_quiet(self, ds: xr.Dataset) -> xr.Dataset:
        return with_meta(ds, {f"cal_step.{self.cal_step}": "SKIPPED"})
