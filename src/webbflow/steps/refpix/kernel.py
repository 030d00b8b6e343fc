"""Reference-pixel correction of near-infrared (HgCdTe, SIDECAR) ramps: pure numpy kernels.

Physics
-------
Each group read out by a NIR detector carries a signal added by the readout electronics: an
offset per amplifier (each of the 4 outputs reads 512 detector columns) that drifts from group
to group, different for even and odd columns, plus a common-mode drift with time that appears as
a pattern along the slow (row) axis, the "1/f" noise. The detector's outer 4-pixel border is
light-insensitive reference pixels that see the same electronics signal. Per integration and
group:

1. *amplifier offsets*: for each amplifier and column parity, the sigma-clipped mean
   (iterative, ``siglimit``-sigma about the mean with the population standard deviation, as
   :func:`scipy.stats.sigmaclip`) of the bottom reference rows and, separately, of the top
   reference rows; their average (or the one available) is subtracted from all the columns of
   that amplifier and parity;
2. *side signal*: the left (and right) reference columns, already offset-corrected, are
   smoothed by a running median over ``smoothing_length`` rows (all 4 columns of a side pooled;
   the window is reflected at the detector's first and last rows and, in a subarray, simply
   shorter where it leaves the window); the average of the left
   and right medians times ``side_gain`` is subtracted row by row.

A one-output subarray pools every reference pixel it has into one clipped mean per column
parity and gets no side correction. Pixels flagged DO_NOT_USE never enter a statistic.

Everything here is in the *detector* frame: "rows" are the slow readout axis, "columns" the fast
one (the amplifier axis), both as 0-based full-frame indices; the step maps the DMS ``y``/``x``
axes onto them. A flip of either axis only relabels amplifiers and parities, so the DMS
orientation does not change the result.

The computation is split in two so it can run lazily on tiles: :func:`refpix_statistics`
reduces the reference strips (a few percent of the frame) to tiny per-group statistics, and
:func:`apply_refpix` subtracts them from one tile.
"""

from __future__ import annotations

import warnings
from typing import Final, NamedTuple

import numpy as np

#: Detector size along each axis, pixels (all NIR detectors), and reference border width.
FRAME: Final = 2048
BORDER: Final = 4
#: Columns read by each of the 4 amplifiers of a 4-output readout.
AMP_WIDTH: Final = 512
NAMP: Final = FRAME // AMP_WIDTH


class RefpixStatistics(NamedTuple):
    """Per-group reference signals of an exposure.

    Attributes
    ----------
    offsets
        ``(integration, group, amplifier, parity)`` float32 DN: the clipped-mean offset of each
        amplifier (one entry for a one-output readout) and column parity (0 even, 1 odd); NaN
        where no reference pixel was usable.
    side
        ``(integration, group, row)`` float32 DN: the smoothed side signal of every row of the
        window, before ``side_gain`` (applied by :func:`apply_refpix`); 0 where there is none.
    """

    offsets: np.ndarray
    side: np.ndarray


class RefpixCorrected(NamedTuple):
    """One corrected tile: ``sci`` ``(integration, group, y, x)`` float32 DN."""

    sci: np.ndarray


def is_reference(index: np.ndarray) -> np.ndarray:
    """Whether full-frame ``index`` (rows or columns) lies in the 4-pixel reference border."""
    index = np.asarray(index)
    return (index < BORDER) | (index >= FRAME - BORDER)


def clipped_mean(values: np.ndarray, valid: np.ndarray, nsigma: float) -> np.ndarray:
    """Iterative sigma-clipped mean along the last axis (``scipy.stats.sigmaclip`` semantics).

    Parameters
    ----------
    values
        ``(..., n)`` float DN.
    valid
        ``(..., n)`` or ``(n,)`` bool: which values may be used at all.
    nsigma
        Rejection threshold about the mean, in population standard deviations.

    Returns
    -------
    numpy.ndarray
        ``values.shape[:-1]`` float64; NaN where nothing is usable.
    """
    vals = np.asarray(values, dtype=np.float64)
    keep = np.broadcast_to(valid, vals.shape) & np.isfinite(vals)
    while True:
        count = keep.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(keep, vals, 0.0).sum(axis=-1) / count
            dev = np.where(keep, vals - mean[..., None], 0.0)
            std = np.sqrt((dev * dev).sum(axis=-1) / count)
        lo = (mean - nsigma * std)[..., None]
        hi = (mean + nsigma * std)[..., None]
        new = keep & (vals >= lo) & (vals <= hi)
        if np.array_equal(new, keep):
            return mean
        keep = new


def _label_means(
    values: np.ndarray, valid: np.ndarray, labels: np.ndarray, nlabels: int, nsigma: float
) -> np.ndarray:
    """Clipped mean of ``values (..., n)`` per label in ``labels (n,)`` -> ``(..., nlabels)``."""
    out = np.full((*values.shape[:-1], nlabels), np.nan)
    for label in range(nlabels):  # at most 8 amplifier/parity sets, never pixels
        sel = labels == label
        if sel.any():
            out[..., label] = clipped_mean(values[..., sel], valid[sel], nsigma)
    return out


def _labels(cols: np.ndarray, namp: int, odd_even: bool) -> np.ndarray:
    amp = np.clip(cols // AMP_WIDTH, 0, NAMP - 1) if namp > 1 else np.zeros_like(cols)
    return 2 * amp + (cols % 2 if odd_even else 0)


def median_filter_rows(values: np.ndarray, valid: np.ndarray, rows: np.ndarray, length: int) -> np.ndarray:
    """Running median over ``length`` detector rows of all good pixels of a few columns.

    Parameters
    ----------
    values
        ``(..., row, col)`` float DN (one side's reference columns).
    valid
        ``(row, col)`` bool: usable pixels.
    rows
        ``(row,)`` int full-frame detector rows of ``values``, ascending and contiguous.
    length
        Window height, rows: row ``r`` uses rows ``r - length//2`` to
        ``r - length//2 + length - 1``. Window rows beyond the detector edge are reflected
        about the edge row (not repeated); rows outside ``rows`` (a subarray) are absent.

    Returns
    -------
    numpy.ndarray
        ``(..., row)`` float64; NaN where a window holds no usable pixel.
    """
    rows = np.asarray(rows)
    window = rows[:, None] - length // 2 + np.arange(length)[None, :]  # (row, length)
    window = np.abs(window)  # reflect about row 0
    window = np.where(window > FRAME - 1, 2 * (FRAME - 1) - window, window)  # ... and the last
    index = window - rows[0]
    inside = (index >= 0) & (index < len(rows))
    index = np.where(inside, index, 0)
    data = np.where(valid, values, np.nan).astype(np.float64)
    picked = data[..., index, :]  # (..., row, length, col)
    picked = np.where(inside[:, :, None], picked, np.nan)
    picked = picked.reshape(*picked.shape[:-2], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, on purpose
        return np.nanmedian(picked, axis=-1)


def refpix_statistics(
    rowref: np.ndarray,
    rowref_dq: np.ndarray,
    rowref_rows: np.ndarray,
    cols: np.ndarray,
    side: np.ndarray,
    side_dq: np.ndarray,
    side_rows: np.ndarray,
    side_cols: np.ndarray,
    *,
    noutputs: int,
    odd_even_columns: bool,
    use_side_ref_pixels: bool,
    side_smoothing_length: int,
    siglimit: float,
    do_not_use: int,
) -> RefpixStatistics:
    """Reduce an exposure's reference strips to per-group offsets and side signal.

    Parameters
    ----------
    rowref
        ``(integration, group, refrow, col)`` float32 DN: the window's reference rows (detector
        rows in the border), all columns of the window.
    rowref_dq
        ``(refrow, col)`` uint32 pixel DQ of ``rowref``.
    rowref_rows
        ``(refrow,)`` int full-frame rows of ``rowref``.
    cols
        ``(col,)`` int full-frame columns of the window.
    side
        ``(integration, group, row, refcol)`` float32 DN: the window's reference columns, all
        rows of the window.
    side_dq
        ``(row, refcol)`` uint32 pixel DQ of ``side``.
    side_rows, side_cols
        Full-frame rows ``(row,)`` of the window and columns ``(refcol,)`` of ``side``.
    noutputs
        Amplifiers used for the readout: 4 (per-amplifier offsets, side signal) or 1 (all
        reference pixels pooled, no side signal).
    odd_even_columns
        Separate offsets for even and odd columns.
    use_side_ref_pixels
        Compute the side signal (4-output readouts only).
    side_smoothing_length
        Running-median window height, rows.
    siglimit
        Clipping threshold of the means, standard deviations.
    do_not_use
        DQ bit excluding a reference pixel.

    Returns
    -------
    RefpixStatistics
    """
    nint, ngroup = rowref.shape[:2] if rowref.size else side.shape[:2]
    namp = NAMP if noutputs > 1 else 1
    rowref_ok = (np.asarray(rowref_dq) & do_not_use) == 0
    side_ok = (np.asarray(side_dq) & do_not_use) == 0
    lead = (nint, ngroup)
    if namp > 1:
        labels = np.broadcast_to(_labels(cols, namp, odd_even_columns), rowref.shape[-2:])
        top = np.asarray(rowref_rows)[:, None] >= FRAME // 2
        halves = []
        for half in (~top, top):
            sel = np.broadcast_to(half, labels.shape)
            halves.append(_label_means(rowref[..., sel], rowref_ok[sel], labels[sel], 2 * namp, siglimit))
        with np.errstate(invalid="ignore"):
            both = np.stack(halves)
            means = np.where(
                np.isnan(both).all(axis=0),
                np.nan,
                np.nansum(both, axis=0) / np.maximum((~np.isnan(both)).sum(axis=0), 1),
            )
    else:
        inner = ~is_reference(side_rows)
        vals = np.concatenate([rowref.reshape(*lead, -1), side[..., inner, :].reshape(*lead, -1)], axis=-1)
        ok = np.concatenate([rowref_ok.ravel(), side_ok[inner].ravel()])
        pool_cols = np.concatenate(
            [
                np.broadcast_to(cols, rowref.shape[-2:]).ravel(),
                np.broadcast_to(side_cols, side_ok.shape)[inner].ravel(),
            ]
        )
        means = _label_means(vals, ok, _labels(pool_cols, 1, odd_even_columns), 2, siglimit)
    offsets = means.reshape(*lead, namp, 2).astype(np.float32)
    if not odd_even_columns:
        offsets[..., 1] = offsets[..., 0]

    signal = np.zeros((*lead, len(side_rows)), np.float64)
    if namp > 1 and use_side_ref_pixels and len(side_cols):
        amp = np.clip(np.asarray(side_cols) // AMP_WIDTH, 0, NAMP - 1)
        corr = side - np.nan_to_num(offsets[..., amp, np.asarray(side_cols) % 2])[..., None, :]
        left = np.asarray(side_cols) < FRAME // 2
        medians = [
            median_filter_rows(corr[..., part], side_ok[:, part], side_rows, side_smoothing_length)
            for part in (left, ~left)
            if part.any()
        ]
        with np.errstate(invalid="ignore"):
            stack = np.stack(medians)
            count = (~np.isnan(stack)).sum(axis=0)
            signal = np.where(count > 0, np.nansum(stack, axis=0) / np.maximum(count, 1), 0.0)
    return RefpixStatistics(offsets, signal.astype(np.float32))


def apply_refpix(
    sci: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    offsets: np.ndarray,
    side: np.ndarray,
    *,
    rows_are_y: bool,
    first_row: int,
    side_gain: float,
) -> RefpixCorrected:
    """Subtract the amplifier offsets and the side signal from one tile.

    Parameters
    ----------
    sci
        ``(integration, group, y, x)`` float32 DN tile.
    y, x
        ``(y,)``, ``(x,)`` int full-frame DMS pixel indices of the tile.
    offsets
        ``(integration, group, amplifier, parity)`` float32 DN (see :class:`RefpixStatistics`);
        one amplifier means a one-output readout; NaN subtracts nothing.
    side
        ``(integration, group, row)`` float32 DN side signal of every window row.
    rows_are_y
        True when detector rows run along DMS ``y`` (NIRCam); False when transposed
        (NIRISS, FGS, NIRSpec).
    first_row
        Full-frame detector row of ``side[..., 0]``.
    side_gain
        Factor applied to ``side`` before subtraction.

    Returns
    -------
    RefpixCorrected
    """
    rows, cols = (y, x) if rows_are_y else (x, y)
    cols = np.asarray(cols)
    amp = np.clip(cols // AMP_WIDTH, 0, offsets.shape[2] - 1) if offsets.shape[2] > 1 else 0 * cols
    col_off = np.nan_to_num(offsets[:, :, amp, cols % 2]).astype(np.float32)
    row_sig = (side_gain * side[:, :, np.asarray(rows) - first_row].astype(np.float64)).astype(np.float32)
    if rows_are_y:
        out = (sci - col_off[:, :, None, :]) - row_sig[:, :, :, None]
    else:
        out = (sci - col_off[:, :, :, None]) - row_sig[:, :, None, :]
    return RefpixCorrected(out.astype(np.float32, copy=False))
