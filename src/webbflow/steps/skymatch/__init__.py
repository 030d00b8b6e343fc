"""Image3 sky matching: sky levels of a list of cal exposures from tiled reductions.

See :mod:`webbflow.steps.skymatch.step` (the step), :mod:`~webbflow.steps.skymatch.stats`
(sky statistics), :mod:`~webbflow.steps.skymatch.match` (matching overlaps) and
:mod:`~webbflow.steps.skymatch.kernel` (per-tile numpy).
"""

from webbflow.steps.skymatch.step import SkyMatchStep

__all__ = ["SkyMatchStep"]
