"""webbflow: lazy, tiled simulation and calibration of JWST detector exposures on Dask."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
