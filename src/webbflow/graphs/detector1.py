"""Detector1: raw ramps (``uncal``) to count-rate images (``rate``, ``rateints``).

The near-infrared (NIRCam, NIRISS, FGS) order of jwst's ``calwebb_detector1``::

    group_scale → dq_init → saturation → ipc → superbias → refpix → linearity
    → persistence → dark_current → charge_migration → jump → ramp_fit → gain_scale

Every step is lazy; the whole chain is one dask graph over the exposure's tiles.
"""

from __future__ import annotations

from webbflow.engine.step import Pipeline


class Detector1(Pipeline):
    """The Detector1 pipeline for near-infrared imaging exposures.

    Examples
    --------
    >>> from webbflow.graphs.detector1 import Detector1
    >>> pipe = Detector1(steps={"jump": {"rejection_threshold": 5.0}})
    >>> list(pipe.steps)[:3]
    ['group_scale', 'dq_init', 'saturation']
    """

    name = "detector1"
    cal_step = "detector1"
    step_names = (
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
