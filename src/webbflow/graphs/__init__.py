"""Named pipelines composed from steps."""

from __future__ import annotations

from webbflow.graphs.detector1 import Detector1

#: Pipelines by the name used on the command line (``webbflow run NAME``).
PIPELINES = {"detector1": Detector1}

__all__ = ["PIPELINES", "Detector1"]
