"""Detector1: raw ramps (``uncal``) to count-rate images (``rate``, ``rateints``).

One :class:`Detector1` object calibrates every instrument; the step order is chosen
from the exposure's ``meta.instrument.name`` when the graph is built, as jwst 3.0's
``calwebb_detector1`` does. Near-infrared (NIRCam, NIRISS, FGS)::

    group_scale → dq_init → saturation → ipc → superbias → refpix → linearity
    → persistence → dark_current → charge_migration → jump → ramp_fit → gain_scale

MIRI::

    group_scale → dq_init → emicorr → saturation → ipc → firstframe → lastframe
    → reset → linearity → rscd → dark_current → refpix → jump → ramp_fit → gain_scale

(``clean_flicker_noise``, skipped by default, sits between jump and ramp_fit in
both). Steps not in an exposure's order are neither run nor recorded. MIRI
defaults follow the jwst 3.0 step specs: ``emicorr`` and ``firstframe`` are
skipped (``skip = True`` in jwst 3.0; ``--steps.emicorr.skip=false`` turns the EMI
fit on); ``ipc`` is skipped unless an IPC reference is given (webbflow embeds
none for MIRI); ``refpix`` corrects full-frame MIRI exposures only.

Every step is lazy; the whole chain is one dask graph over the exposure's tiles.
"""

from __future__ import annotations

import xarray as xr

from webbflow.engine.step import Pipeline, Step
from webbflow.model import meta_value

#: jwst 3.0's near-infrared order.
NIR_ORDER: tuple[str, ...] = (
    "group_scale",
    "dq_init",
    "saturation",
    "ipc",
    "superbias",
    "refpix",
    "linearity",
    "persistence",
    "dark_current",
    "charge_migration",
    "jump",
    "clean_flicker_noise",  # skipped by default, as in jwst 3.0
    "ramp_fit",
    "gain_scale",
)

#: jwst 3.0's MIRI order (``Detector1Pipeline.process``, MIRI branch).
MIRI_ORDER: tuple[str, ...] = (
    "group_scale",
    "dq_init",
    "emicorr",
    "saturation",
    "ipc",
    "firstframe",
    "lastframe",
    "reset",
    "linearity",
    "rscd",
    "dark_current",
    "refpix",
    "jump",
    "clean_flicker_noise",
    "ramp_fit",
    "gain_scale",
)


def order_for(ds: xr.Dataset) -> tuple[str, ...]:
    """The Detector1 step order for ``ds``: :data:`MIRI_ORDER` for MIRI, else :data:`NIR_ORDER`."""
    name = str(meta_value(ds, "instrument.name", "") or "").strip().upper()
    return MIRI_ORDER if name == "MIRI" else NIR_ORDER


class Detector1(Pipeline):
    """The Detector1 pipeline for imaging exposures of every instrument.

    ``steps`` may configure any step of either order (``--steps.rscd.skip=true``
    is accepted for a NIRCam run and simply unused).

    Examples
    --------
    >>> from webbflow.graphs.detector1 import Detector1
    >>> pipe = Detector1(steps={"jump": {"rejection_threshold": 5.0}})
    >>> list(pipe.steps)[:3]
    ['group_scale', 'dq_init', 'saturation']
    >>> "rscd" in pipe.steps
    True
    """

    name = "detector1"
    cal_step = "detector1"
    #: Every step of either order (NIR order, then the MIRI-only steps).
    step_names = NIR_ORDER + tuple(s for s in MIRI_ORDER if s not in NIR_ORDER)

    def active_steps(self, ds: xr.Dataset) -> dict[str, Step]:
        """The steps of ``ds``'s instrument order (:func:`order_for`), configured as given."""
        return {name: self.steps[name] for name in order_for(ds)}
