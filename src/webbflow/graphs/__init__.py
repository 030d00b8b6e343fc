"""Named pipelines composed from steps."""

from __future__ import annotations

from webbflow.graphs.detector1 import Detector1
from webbflow.graphs.image2 import Image2
from webbflow.graphs.image3 import Image3

#: Pipelines by the name used on the command line (``webbflow run NAME``).
PIPELINES = {"detector1": Detector1, "image2": Image2, "image3": Image3}

__all__ = ["PIPELINES", "Detector1", "Image2", "Image3"]
