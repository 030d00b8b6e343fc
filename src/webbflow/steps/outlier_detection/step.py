"""The ``outlier_detection`` step: flag cosmic rays and other outliers of an imaging exposure list.

As jwst 3.0's imaging mode (``OutlierDetectionStep``, ``imaging.detect_outliers``):

1. every input is drizzled alone onto one output grid (:func:`~webbflow.steps.resample.output_grid`
   with the default scale and orientation) and the per-pixel median of these "single"
   images is taken, pixels whose drizzle weight is below ``maskpt`` times that input's
   typical weight left out (:func:`~webbflow.steps.resample.median_mosaic`); sky levels
   found by skymatch but not subtracted (``meta.background.level`` with
   ``meta.background.subtracted`` False) are removed from the inputs first;
2. the median is blotted back onto each input's pixels (:func:`~webbflow.steps.resample.blot`,
   linear interpolation as jwst);
3. each pixel is compared with its blot by the two-pass test of
   :func:`webbflow.steps.outlier_detection.kernel.flag_resampled`: ``snr``, ``scale`` and the
   sky level (the skymatch level as above, else ``backg``);
4. outliers get ``DO_NOT_USE | OUTLIER`` in ``dq``.

With ``resample_data=False`` the inputs must share one pixel grid (e.g. repeated exposures at
one pointing): the median is taken pixel by pixel without resampling and pixels are flagged
where ``|sci − median| > snr₁ err`` (:func:`~webbflow.steps.outlier_detection.kernel.flag_direct`),
as jwst does.

Differences from jwst 3.0: ``sci``/``err``/variances are left as they are at flagged pixels
(jwst also sets them to NaN); each input is its own "exposure group" (jwst drizzles the
detectors of one exposure together; this only changes which pixels ``maskpt`` removes);
``in_memory`` is ignored (tiles are streamed); ``fillval`` is accepted but has no effect (as in
jwst, pixels without data are NaN in the median and are never flagged); non-imaging modes
(TSO, coronagraphy, spectroscopy) and lists of fewer than two exposures are skipped; jwst's
``pixmap_stepsize``/``pixmap_order``/``search_output_file`` are not offered (WCS evaluated at
every pixel). On synthetic dithered NIRCam data the flagged pixel sets equal jwst 3.0's
(``tests/test_outlier_detection.py::test_jwst_oracle``).

The outputs are the ``crf`` products (same layout as ``cal``). The median and blots stay
available as :attr:`OutlierDetectionStep.intermediates` after a call, for writing the
``_median`` / ``_blot`` intermediates when ``save_intermediate_results`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import dask.array as da
import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.list_step import ListStep
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep
from webbflow.engine.tiles import map_tiles
from webbflow.errors import InputError, UsageError
from webbflow.model import meta_value, with_meta
from webbflow.steps.outlier_detection.kernel import HALO, flag_direct, flag_resampled
from webbflow.steps.resample import blot, median_mosaic, output_grid

log = logging.getLogger("webbflow")

#: EXP_TYPEs this (imaging) mode applies to, as jwst's ``IMAGE_MODES``.
IMAGE_MODES: Final = ("NRC_IMAGE", "MIR_IMAGE", "NRS_IMAGE", "NIS_IMAGE", "FGS_IMAGE")
#: Interpolation of the median back onto the inputs (jwst 3.0's ``gwcs_blot``).
BLOT_INTERP: Final = "linear"


def _pair(text: str, name: str) -> tuple[float, float]:
    """``"5.0 4.0"`` → ``(5.0, 4.0)``; UsageError naming the parameter otherwise."""
    try:
        first, second = (float(v) for v in str(text).split())
    except ValueError:
        raise UsageError(
            f"outlier_detection.{name}: expected two numbers like '5.0 4.0', got {text!r}"
        ) from None
    return first, second


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`OutlierDetectionStep` (the imaging ones of jwst 3.0's spec)."""

    weight_type: str = param("ivm", "Drizzle weight of the single images.", choices=("ivm", "exptime"))
    pixfrac: float = param(1.0, "Drizzle pixel shrinkage factor (0, 1].", minimum=0.0)
    kernel: str = param("square", "Drizzle kernel.", choices=("square", "point", "turbo"))
    fillval: str = param("NAN", "Accepted for jwst compatibility; no effect (no-data pixels are NaN).")
    maskpt: float = param(0.7, "Ignore single-image pixels of weight < maskpt × typical weight.", minimum=0.0)
    snr: str = param("5.0 4.0", "First- and second-pass thresholds, in sigma.")
    scale: str = param("1.2 0.7", "First- and second-pass multipliers of the blot's |derivative|.")
    backg: float = param(0.0, "Sky level in the data but not in the median, MJy/sr (unless skymatch's is).")
    save_intermediate_results: bool = param(False, "Ask the runner to write the median and blot images.")
    resample_data: bool = param(True, "Drizzle before the median (False: inputs share one pixel grid).")
    good_bits: str = param("~DO_NOT_USE", "DQ bits that do not exclude a pixel from the median.")
    in_memory: bool = param(True, "Ignored: tiles are always streamed.")

    def __post_init__(self) -> None:
        if not 0.0 < self.pixfrac <= 1.0:
            raise UsageError(f"outlier_detection.pixfrac: expected 0 < pixfrac <= 1, got {self.pixfrac}")
        _pair(self.snr, "snr")
        _pair(self.scale, "scale")
        bad_bits(self.good_bits)


def bad_bits(good_bits: str | int | None) -> int:
    """The uint32 mask of DQ bits that exclude a pixel (:func:`webbflow.dq.bad_bits`)."""
    return dq.bad_bits(good_bits, "outlier_detection.good_bits")


class Intermediates(NamedTuple):
    """Lazy intermediate images of the last call."""

    #: The output grid of the median (``None`` without resampling).
    grid: Any
    #: (y, x) float32 median, MJy/sr (sky subtracted when skymatch found one).
    median: xr.DataArray
    #: Per input, the median on its pixels (y, x), MJy/sr.
    blots: list[xr.DataArray]


class OutlierDetectionStep(ListStep):
    """Flag pixels that disagree with the median of all exposures (DO_NOT_USE | OUTLIER)."""

    name = "outlier_detection"
    Params = Params

    #: The median and blots of the last :meth:`build_list` (lazy), for intermediate products.
    intermediates: Intermediates | None = None

    def build_list(self, inputs: Sequence[xr.Dataset]) -> list[xr.Dataset]:
        """The inputs with outliers flagged in ``dq`` (lazy); nothing else changes."""
        p: Any = self.params
        _check_inputs(inputs)
        snr1, snr2 = _pair(p.snr, "snr")
        scale1, scale2 = _pair(p.scale, "scale")
        flags = {"do_not_use": dq.DO_NOT_USE, "outlier": dq.OUTLIER}
        outputs = []
        if p.resample_data:
            unskied = [_without_sky(ds) for ds in inputs]
            grid = output_grid(unskied)
            log.info("outlier_detection: median of %d exposures on a %d x %d grid", len(inputs), *grid.shape)
            median = median_mosaic(
                unskied,
                grid,
                pixfrac=p.pixfrac,
                kernel=p.kernel,
                weight_type=p.weight_type,
                good_bits=p.good_bits,
                maskpt=p.maskpt,
            )
            blots = [blot(median, grid, ds, interp=BLOT_INTERP) for ds in inputs]
            for i, (ds, b) in enumerate(zip(inputs, blots, strict=True)):
                kwargs = {"snr1": snr1, "snr2": snr2, "scale1": scale1, "scale2": scale2}
                kwargs |= {"backg": sky_in_data(ds, p.backg), **flags}
                outputs.append(
                    _flagged(ds, flag_resampled, {"blot": b}, kwargs, depth=HALO, token=f"outlier-{i}")
                )
        else:
            grid = None
            median = direct_median(inputs, weight_type=p.weight_type, good_bits=p.good_bits, maskpt=p.maskpt)
            blots = [median.assign_coords(y=ds.y, x=ds.x) for ds in inputs]
            for i, (ds, b) in enumerate(zip(inputs, blots, strict=True)):
                kwargs = {"snr": snr1, **flags}
                outputs.append(
                    _flagged(ds, flag_direct, {"median": b}, kwargs, depth=0, token=f"outlier-{i}")
                )
        self.intermediates = Intermediates(grid, median, blots)
        return outputs


def _check_inputs(inputs: Sequence[xr.Dataset]) -> None:
    if len(inputs) < 2:
        raise SkipStep(f"needs at least 2 exposures, got {len(inputs)}")
    for i, ds in enumerate(inputs):
        exp_type = str(meta_value(ds, "exposure.type", "") or "").upper()
        if exp_type and exp_type not in IMAGE_MODES:
            raise SkipStep(f"input {i} has EXP_TYPE={exp_type}; only imaging ({', '.join(IMAGE_MODES)})")
        if meta_value(ds, "visit.tsovisit", False) is True:
            raise SkipStep(f"input {i} is a TSO exposure (TSOVISIT=T); TSO mode is not implemented")
        name = meta_value(ds, "filename", f"input {i}")
        for var in ("sci", "err", "dq"):
            if var not in ds or ds[var].dims != ("y", "x"):
                raise InputError(
                    f"{name}: outlier_detection needs 2-D {var} with dims ('y', 'x') (a cal product)"
                )


def sky_in_data(ds: xr.Dataset, backg: float) -> float:
    """The sky level (MJy/sr) in ``ds.sci`` that the median does not hold (jwst's rule).

    skymatch's ``meta.background.level`` when it was not subtracted, else ``backg``.
    """
    level = meta_value(ds, "background.level")
    if meta_value(ds, "background.subtracted") is False and level is not None:
        return float(level)
    return float(backg)


def _without_sky(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with skymatch's unsubtracted sky level removed from ``sci`` (lazy), for the median."""
    level = meta_value(ds, "background.level")
    if meta_value(ds, "background.subtracted") is not False or level is None:
        return ds
    out = ds.assign(sci=ds["sci"] - np.float32(level))
    return with_meta(out, {"background.subtracted": True})


def _flagged(
    ds: xr.Dataset,
    kernel: Any,
    reference: dict[str, xr.DataArray],
    kwargs: dict[str, Any],
    *,
    depth: int,
    token: str,
) -> xr.Dataset:
    """``ds`` with ``dq`` from ``kernel`` (tile by tile, ``depth`` px halo); ``reference``: blot or median."""
    inputs = {"sci": ds["sci"], "err": ds["err"], "dq": ds["dq"], **reference}
    out = map_tiles(
        kernel, inputs, {"dq": (("y", "x"), np.uint32)}, like=ds, depth=depth, kwargs=kwargs, name=token
    )
    return ds.assign(dq=out["dq"])


def direct_median(
    inputs: Sequence[xr.Dataset],
    *,
    weight_type: str = "ivm",
    good_bits: str | int = "~DO_NOT_USE",
    maskpt: float = 0.7,
) -> xr.DataArray:
    """Per-pixel median of inputs that share one pixel grid (no resampling); lazy.

    Parameters
    ----------
    inputs
        Cal exposures of one shape: ``sci`` (y, x) float32 MJy/sr, ``dq`` uint32 and, for
        ``weight_type="ivm"``, ``var_rnoise`` (MJy/sr)².
    weight_type
        ``"ivm"`` (1 / var_rnoise) or ``"exptime"`` (``meta.exposure.exposure_time``).
    good_bits
        DQ bits that do not exclude a pixel (jwst syntax).
    maskpt
        Pixels whose weight is below ``maskpt`` × the input's typical (median over tiles of
        tile medians of the positive) weight are left out.

    Returns
    -------
    xarray.DataArray, (y, x) float32, MJy/sr
        NaN where no input is usable; coords and chunks of the first input.

    Raises
    ------
    InputError
        Inputs of different shapes.
    """
    first = inputs[0]
    shape = (first.sizes["y"], first.sizes["x"])
    bad = np.uint32(bad_bits(good_bits))
    chunks = first["sci"].chunks or shape
    planes = []
    for i, ds in enumerate(inputs):
        if (ds.sizes["y"], ds.sizes["x"]) != shape:
            name = meta_value(ds, "filename", f"input {i}")
            raise InputError(
                f"{name}: shape {(ds.sizes['y'], ds.sizes['x'])} differs from {shape}; "
                "resample_data=False needs inputs on one pixel grid"
            )
        sci = _dask(ds["sci"], chunks)
        good = (_dask(ds["dq"], chunks) & bad) == 0
        if weight_type == "ivm":
            if "var_rnoise" not in ds:
                raise InputError(
                    f"{meta_value(ds, 'filename', f'input {i}')}: weight_type='ivm' needs var_rnoise"
                )
            var = _dask(ds["var_rnoise"], chunks)
            weight = da.where(good & (var > 0) & da.isfinite(var), 1.0 / var, 0.0)
        else:
            exptime = float(meta_value(ds, "exposure.exposure_time", 1.0) or 1.0)
            weight = da.where(good, np.float32(exptime), np.float32(0.0))
        weight = da.where(da.isfinite(sci), weight, 0.0).astype(np.float32)
        threshold = maskpt * _typical_weight(weight)
        planes.append(da.where(weight >= threshold, sci, np.nan).astype(np.float32))
    stack = da.stack(planes).rechunk({0: -1})
    median = da.map_blocks(_nanmedian0, stack, drop_axis=0, dtype=np.float32)
    return xr.DataArray(median, dims=("y", "x"), coords={"y": first.y, "x": first.x})


def _dask(var: xr.DataArray, chunks: Any) -> da.Array:
    data = var.data if isinstance(var.data, da.Array) else da.from_array(np.asarray(var.data))
    return data.rechunk(chunks)


def _nanmedian0(block: np.ndarray) -> np.ndarray:
    out = np.full(block.shape[1:], np.nan, np.float32)
    some = np.isfinite(block).any(axis=0)
    out[some] = np.nanmedian(block[:, some], axis=0)
    return out


def _tile_median(block: np.ndarray) -> np.ndarray:
    positive = block[block > 0]
    return np.array([[np.median(positive) if positive.size else np.nan]], np.float64)


def _typical_weight(weight: da.Array) -> da.Array:
    """0-d lazy: median over tiles of each tile's median positive weight (no whole-frame chunk)."""
    per_tile = da.map_blocks(
        _tile_median,
        weight,
        chunks=((1,) * weight.numblocks[0], (1,) * weight.numblocks[1]),
        dtype=np.float64,
    )
    return da.nanmedian(per_tile.rechunk(-1), axis=(0, 1))
