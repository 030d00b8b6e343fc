"""The resample entry point for Image3 (mosaic of a list of cal exposures) and Image2 (i2d of one).

``ResampleStep(**params)(inputs) -> mosaic Dataset`` with jwst's ``ResampleStep`` parameter
names (jwst 3.0 ``ResampleStep.spec``). It is not a :class:`~webbflow.engine.step.Step` (its
output is not an exposure) but it has the same typed ``Params`` and is configured the same way
(``ResampleStep(params)`` or keywords, validated by ``StepParams.replace``)::

    grid, mosaic = ResampleStep(pixel_scale_ratio=0.5, pixfrac=0.8).run(cal_list)
    mosaic = ResampleStep()(cal_list)                 # same, mosaic only
    mosaic = ResampleStep()([cal])                    # Image2's i2d of one exposure

Note ``output_shape`` is jwst's ``[nx, ny]`` order here; :func:`output_grid` takes (ny, nx).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import xarray as xr

from webbflow.engine.params import StepParams, param
from webbflow.errors import UsageError
from webbflow.steps.resample.drizzle_tiles import KERNELS
from webbflow.steps.resample.grid import OutputGrid, output_grid
from webbflow.steps.resample.mosaic import resample


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`ResampleStep` (jwst 3.0 ``ResampleStep`` names and defaults)."""

    pixfrac: float = param(1.0, "Pixel shrinkage factor (0 < pixfrac <= 1).", minimum=0.0)
    kernel: str = param("square", "Flux distribution kernel.", choices=KERNELS)
    fillval: str = param("NAN", "SCI value where no input contributes ('NAN', 'INDEF' or a number).")
    weight_type: str = param(
        "ivm", "Input weighting: 'ivm' (1/VAR_RNOISE) or 'exptime'.", choices=("ivm", "exptime")
    )
    output_shape: tuple[int, int] | None = param(None, "Output [nx, ny] (jwst order); None: fit the inputs.")
    crpix: tuple[float, float] | None = param(
        None, "0-based (x, y) pixel of crval; None: centre the footprint."
    )
    crval: tuple[float, float] | None = param(
        None, "(ra, dec) deg of the reference pixel; None: footprint centre."
    )
    rotation: float | None = param(
        None, "PA of the output +y axis east of north, deg; None: detector orientation."
    )
    pixel_scale_ratio: float = param(
        1.0, "Output / input pixel scale (ignored if pixel_scale is set).", minimum=0.0
    )
    pixel_scale: float | None = param(None, "Output pixel scale, arcsec/px.")
    good_bits: str = param("~DO_NOT_USE", "DQ bits that do not reject a pixel (jwst syntax).")
    enable_ctx: bool = param(True, "Compute the context (CON) array.")
    pixmap_stepsize: int = param(
        1, "1: exact pixel map; n > 1: interpolate between WCS nodes every n px.", minimum=1
    )
    tile: int = param(
        512, "Output tile (dask chunk) size, px (memory per task ~ 60 x tile^2 bytes).", minimum=16
    )


class ResampleStep:
    """Drizzle a list of calibrated exposures onto one TAN grid (lazy)."""

    name: ClassVar[str] = "resample"
    Params: ClassVar[type[StepParams]] = Params

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        base = params if params is not None else Params()
        self.params = cast(Params, base.replace(values, self.name) if values else base)

    def grid(self, inputs: Sequence[xr.Dataset]) -> OutputGrid:
        """The output grid these parameters give for ``inputs``."""
        p = self.params
        shape = None if p.output_shape is None else (int(p.output_shape[1]), int(p.output_shape[0]))
        return output_grid(
            inputs,
            pixel_scale_ratio=p.pixel_scale_ratio,
            pixel_scale=p.pixel_scale,
            rotation=p.rotation,
            crpix=None if p.crpix is None else (float(p.crpix[0]), float(p.crpix[1])),
            crval=None if p.crval is None else (float(p.crval[0]), float(p.crval[1])),
            output_shape=shape,
            tile=p.tile,
        )

    def run(self, inputs: Sequence[xr.Dataset]) -> tuple[OutputGrid, xr.Dataset]:
        """(grid, lazy mosaic Dataset) for ``inputs``."""
        if not inputs:
            raise UsageError("resample: no input exposures")
        p = self.params
        grid = self.grid(inputs)
        mosaic = resample(
            inputs,
            grid,
            pixfrac=p.pixfrac,
            kernel=p.kernel,
            weight_type=p.weight_type,
            fillval=parse_fillval(p.fillval),
            good_bits=p.good_bits,
            pixmap_stepsize=p.pixmap_stepsize,
            enable_ctx=p.enable_ctx,
        )
        return grid, mosaic

    def __call__(self, inputs: Sequence[xr.Dataset]) -> xr.Dataset:
        """The lazy mosaic of ``inputs`` (see :meth:`run`)."""
        return self.run(inputs)[1]


def parse_fillval(value: str | float) -> float:
    """jwst's ``fillval`` string as a float ('NAN'/'INDEF' → NaN)."""
    text = str(value).strip().upper()
    if text in ("NAN", "INDEF", ""):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"resample.fillval = {value!r}: expected 'NAN', 'INDEF' or a number") from None
