"""Built-in steps. Importing this package registers every step class by name.

Each step lives in ``steps/<name>/``: ``kernel.py`` (pure numpy/numba on one
tile) and ``step.py`` (the lazy wrapper, a :class:`~webbflow.engine.step.Step`).
Every sub-package with a ``step`` module is loaded; pipelines in
:mod:`webbflow.graphs` say which steps run and in what order.
"""

from __future__ import annotations

import importlib
import pkgutil

#: Names of the built-in step packages.
BUILTIN = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg))

for _name in BUILTIN:
    importlib.import_module(f"webbflow.steps.{_name}.step")
