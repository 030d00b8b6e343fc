"""Tiled drizzle resampling: output grid, mosaic, median of single drizzles, blot."""

from webbflow.steps.resample.blot import blot
from webbflow.steps.resample.grid import OutputGrid, output_grid
from webbflow.steps.resample.median import median_mosaic
from webbflow.steps.resample.mosaic import resample

__all__ = ["OutputGrid", "blot", "median_mosaic", "output_grid", "resample"]
