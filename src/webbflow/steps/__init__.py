"""Built-in steps. Importing this package registers every step class by name.

Each step lives in ``steps/<name>/``: ``kernel.py`` (pure numpy/numba on one
tile) and ``step.py`` (the lazy wrapper, a :class:`~webbflow.engine.step.Step`).
"""

from __future__ import annotations

import importlib

#: Step packages, in Detector1 order.
BUILTIN = (
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
    "ramp_fit",
    "gain_scale",
)

for _name in BUILTIN:
    importlib.import_module(f"webbflow.steps.{_name}.step")
