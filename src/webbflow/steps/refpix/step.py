"""The ``refpix`` step: remove amplifier offsets and 1/f row drifts with the reference pixels.

Two lazy phases, never a whole-frame chunk:

1. *reduce*: the reference strips (detector rows and columns in the 4-pixel border, sliced out
   of the edge tiles only) are gathered, tiny, into one task that computes the per-group
   clipped-mean amplifier offsets and the running-median side signal
   (:func:`~webbflow.steps.refpix.kernel.refpix_statistics`). The clipped mean and median are
   not decomposable into per-tile partial sums, so the pixels themselves are gathered: for a
   full frame that is 16 × 2048 values per group, 0.8 % of the frame.
2. *broadcast*: every tile subtracts the statistics
   (:func:`~webbflow.steps.refpix.kernel.apply_refpix`), which enter each tile task as small
   whole arrays.

The reference pixels are found from the full-frame ``y``/``x`` coordinates, not from DQ. The
detector frame (amplifiers along the fast axis) is DMS ``x`` when ``|FASTAXIS| == 1`` (NIRCam)
and DMS ``y`` otherwise (NIRISS, FGS, NIRSpec). A window with no reference pixel is skipped,
like jwst.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep, Step
from webbflow.errors import UsageError
from webbflow.model import meta_value
from webbflow.steps.refpix.broadcast import apply_per_tile
from webbflow.steps.refpix.kernel import FRAME, NAMP, apply_refpix, is_reference, refpix_statistics
from webbflow.steps.refpix.miri import MIRI_REFCOLS, MIRI_SHAPE, correct_miri, miri_full_frame


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`RefPixStep` (names and defaults of jwst 3.0's ``refpix``)."""

    odd_even_columns: bool = param(True, "Separate top/bottom reference signal for even and odd columns.")
    use_side_ref_pixels: bool = param(True, "Subtract the side reference signal row by row (1/f).")
    side_smoothing_length: int = param(
        11, "Running-median window height of the side signal, rows.", minimum=1
    )
    side_gain: float = param(1.0, "Factor applied to the side signal before subtraction.")
    odd_even_rows: bool = param(True, "Even/odd rows separately (MIRI only).")
    ovr_corr_mitigation_ftr: float = param(3.0, "IRS2 bad-reference-pixel factor (IRS2 only; not built).")
    preserve_irs2_refpix: bool = param(False, "Keep IRS2 reference pixels (IRS2 only; not built).")
    irs2_mean_subtraction: bool = param(False, "IRS2 mean offset subtraction (IRS2 only; not built).")
    refpix_algorithm: str = param(
        "median", "Side-signal algorithm: median (sirs is not built).", choices=("median", "sirs")
    )
    sigreject: float = param(4.0, "SIRS outlier rejection, sigma (sirs only; not built).")
    gaussmooth: float = param(1.0, "SIRS Gaussian low-pass width (sirs only; not built).")
    halfwidth: int = param(30, "SIRS kernel half-width (sirs only; not built).")
    siglimit: float = param(3.0, "Clipping limit of the reference-pixel means, sigma.", minimum=0)


RefPixParams = Params


class RefPixStep(Step):
    """Reference-pixel correction of NIR ramps (NIRCam, NIRISS, FGS; NIRSpec non-IRS2) and MIRI.

    Declares no reference types: jwst's ``refpix`` and ``sirskernel`` references only serve
    NIRSpec IRS2 and the SIRS algorithm, neither of which is built. MIRI full-frame
    exposures get the MIRI algorithm (:mod:`webbflow.steps.refpix.miri`); MIRI subarrays
    are skipped, as in jwst.
    """

    name = "refpix"
    cal_step = "refpix"
    reftypes = ()
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """The lazily corrected exposure (``sci`` and, if present, ``zeroframe``)."""
        p: Params = self.params  # type: ignore[assignment]
        if p.refpix_algorithm == "sirs":
            raise UsageError("refpix.refpix_algorithm='sirs' is not built in webbflow; use 'median'")
        if str(meta_value(ds, "instrument.name", "")).upper() == "MIRI":
            return self._build_miri(ds, p)
        if "IRS2" in str(meta_value(ds, "exposure.readpatt", "")).upper():
            raise UsageError("refpix: NIRSpec IRS2 readouts are not built; use --steps.refpix.skip=true")
        rows_are_y = abs(int(meta_value(ds, "subarray.fastaxis", -1) or -1)) == 1
        rows, cols = (ds.y.values, ds.x.values) if rows_are_y else (ds.x.values, ds.y.values)
        if not (is_reference(rows).any() or is_reference(cols).any()):
            raise SkipStep("the window contains no reference pixels")
        noutputs = _noutputs(ds, cols)

        ref_rows, ref_cols = np.flatnonzero(is_reference(rows)), np.flatnonzero(is_reference(cols))
        row_dim, col_dim = ("y", "x") if rows_are_y else ("x", "y")

        def sources(var: str) -> tuple[da.Array, ...] | None:
            """The reference strips of ``var`` and pixeldq, recomputed from the pipeline input.

            Statistics from these depend only on the strips, so they are ready before any
            tile is corrected and no tile waits in memory for them.
            """
            if not (len(ref_rows) and len(ref_cols)):
                return None
            out: list[da.Array] = []
            for dim, index in ((row_dim, ref_rows), (col_dim, ref_cols)):
                # one contiguous window per edge: reference files are opened by window
                crops = [self.rerun(ds, {dim: slice(run[0], run[-1] + 1)}) for run in _runs(index)]
                crop = crops[0] if len(crops) == 1 else xr.concat(crops, dim=dim)
                ramp = crop[var].data if var == "sci" else crop[var].data[:, None]
                pdq = crop.pixeldq.data
                out += [ramp, pdq] if rows_are_y else [ramp.transpose(0, 1, 3, 2), pdq.T]
            return tuple(out)

        def corrected(ramp: da.Array, var: str) -> da.Array:
            return correct(
                ramp,
                ds.pixeldq.data,
                ds,
                rows_are_y=rows_are_y,
                noutputs=noutputs,
                params=p,
                strips=sources(var),
            )

        out = ds.assign(sci=(ds.sci.dims, corrected(ds.sci.data, "sci")))
        if "zeroframe" in ds:
            zero = corrected(ds.zeroframe.data[:, None], "zeroframe")[:, 0]
            out["zeroframe"] = (ds.zeroframe.dims, zero)
        return out

    def _build_miri(self, ds: xr.Dataset, p: RefPixParams) -> xr.Dataset:
        """MIRI: left/right reference columns per amplifier and row parity (full frame only)."""
        if not miri_full_frame(ds):
            raise SkipStep("MIRI reference-pixel correction is for full-frame exposures only (as jwst)")
        # emicorr's fit is global over the frame: a rerun on the reference columns alone
        # would fit them alone, so take them from ds after a completed emicorr
        emi_done = meta_value(ds, "cal_step.emicorr", "") == "COMPLETE"
        strips: list[da.Array] = []
        for start in (0, MIRI_SHAPE[1] - MIRI_REFCOLS):
            window = {"x": slice(start, start + MIRI_REFCOLS)}
            crop = ds.isel(window) if emi_done else self.rerun(ds, window)
            strips += [crop.sci.data, crop.pixeldq.data]
        left, left_dq, right, right_dq = strips
        sci = correct_miri(
            ds,
            (left, left_dq, right, right_dq),
            odd_even_rows=p.odd_even_rows,
            siglimit=p.siglimit,
            do_not_use=dq.DO_NOT_USE,
        )
        return ds.assign(sci=(ds.sci.dims, sci))


def correct(
    sci: da.Array,
    pixeldq: da.Array,
    ds: xr.Dataset,
    *,
    rows_are_y: bool,
    noutputs: int,
    params: Params,
    strips: tuple[da.Array, ...] | None = None,
) -> da.Array:
    """Lazily reference-pixel-correct a ramp array with the two-phase graph.

    Parameters
    ----------
    sci
        ``(integration, group, y, x)`` float32 DN, tiled like ``ds``.
    pixeldq
        ``(y, x)`` uint32 pixel DQ.
    ds
        The exposure (its ``y``/``x`` coordinates and tiling).
    rows_are_y
        Detector rows along DMS ``y``.
    noutputs
        1 or 4 readout amplifiers.
    params
        Step parameters.
    strips
        ``(row_sci, row_dq, col_sci, col_dq)``: the reference rows and columns of the
        ramp and pixeldq in detector orientation, if computed elsewhere (see
        :meth:`~webbflow.engine.step.Step.rerun`); by default sliced out of ``sci``.

    Returns
    -------
    dask.array.Array
        ``(integration, group, y, x)`` float32 DN, same chunks as ``sci``.
    """
    nint, ngroup = sci.shape[:2]
    det_sci = sci if rows_are_y else sci.transpose(0, 1, 3, 2)
    det_dq = pixeldq if rows_are_y else pixeldq.T
    rows, cols = (ds.y.values, ds.x.values) if rows_are_y else (ds.x.values, ds.y.values)
    ref_rows = np.flatnonzero(is_reference(rows))
    ref_cols = np.flatnonzero(is_reference(cols))
    if strips is None:
        strips = (
            _take(det_sci, ref_rows, 2),
            _take(det_dq, ref_rows, 0),
            _take(det_sci, ref_cols, 3),
            _take(det_dq, ref_cols, 1),
        )
    row_sci, row_dq, col_sci, col_dq = strips
    stats = dask.delayed(refpix_statistics, nout=2, pure=True)(
        row_sci,
        row_dq,
        rows[ref_rows],
        cols,
        col_sci,
        col_dq,
        rows,
        cols[ref_cols],
        noutputs=noutputs,
        odd_even_columns=params.odd_even_columns,
        use_side_ref_pixels=params.use_side_ref_pixels,
        side_smoothing_length=params.side_smoothing_length,
        siglimit=params.siglimit,
        do_not_use=dq.DO_NOT_USE,
    )
    namp = NAMP if noutputs > 1 else 1
    offsets = da.from_delayed(stats[0], (nint, ngroup, namp, 2), dtype=np.float32)
    side = da.from_delayed(stats[1], (nint, ngroup, len(rows)), dtype=np.float32)
    kwargs: dict[str, Any] = dict(rows_are_y=rows_are_y, first_row=int(rows[0]), side_gain=params.side_gain)
    return apply_per_tile(
        _apply_block,
        ds,
        sci,
        (offsets, ("i", "g", "a", "p")),
        (side, ("i", "g", "r")),
        name=f"refpix-apply-{da.core.tokenize(sci, offsets, side, kwargs)}",
        **kwargs,
    )


def _runs(index: np.ndarray) -> list[np.ndarray]:
    """Sorted positions split into runs of consecutive values."""
    return np.split(index, np.flatnonzero(np.diff(index) != 1) + 1) if len(index) else []


def _take(arr: da.Array, index: np.ndarray, axis: int) -> da.Array:
    """``arr`` at the sorted positions ``index`` along ``axis``, by contiguous slices.

    Slices touch only the tiles holding the positions (a fancy index would shuffle every tile).
    """
    parts = [arr[(slice(None),) * axis + (slice(run[0], run[-1] + 1),)] for run in _runs(index)]
    if not parts:
        return arr[(slice(None),) * axis + (slice(0, 0),)]
    return da.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]


def _apply_block(
    sci: np.ndarray, y: np.ndarray, x: np.ndarray, offsets: np.ndarray, side: np.ndarray, **kwargs: Any
) -> np.ndarray:
    return apply_refpix(sci, y, x, offsets, side, **kwargs).sci


def _noutputs(ds: xr.Dataset, cols: np.ndarray) -> int:
    """NOUTPUTS from meta or the carried header, else 4 when the window spans every column."""
    value = meta_value(ds, "exposure.noutputs")
    if value is None:
        extra = {str(card[0]).upper(): card[1] for card in ds.attrs.get("fits_extra", []) if card}
        value = extra.get("NOUTPUTS")
    if value is None:
        value = NAMP if len(cols) == FRAME else 1
    return 1 if int(value) <= 1 else NAMP
