"""MIRI reference-pixel correction (jwst 3.0's MIRI algorithm, written from its description).

Physics
-------
The MIRI arrays (1032 × 1024, x × y) have 4 light-insensitive reference columns on each
side: x 0-3 and x 1028-1031. Pixel ``x`` is read by amplifier ``x mod 4``, so left column
``a`` and right column ``1028 + a`` see amplifier ``a``'s drift. Per integration, the first
group is taken as the zero of every ramp; then for every later group, amplifier and
(with ``odd_even_rows``) row parity, the sigma-clipped mean of the *differences from the
first group* of the left reference pixels, and separately of the right ones, are averaged;
that average is subtracted from every pixel (reference columns included) of that amplifier
and row parity. The first group is left unchanged. Pixels flagged DO_NOT_USE never enter a
mean. If some set has no usable pixel, that group and every later one (in integration,
group order) are left uncorrected, as jwst does. As in jwst, only full-frame exposures are
corrected.

Lazy graph: the 8 reference columns (all rows, 0.8 % of the frame) are recomputed from
the pipeline input (:meth:`~webbflow.engine.step.Step.rerun`) and reduced in one small
task to ``(integration, group, amplifier, parity)`` offsets (:func:`miri_refpix_offsets`),
which every tile then subtracts (:func:`apply_miri_refpix`).
"""

from __future__ import annotations

from typing import Final

import dask
import dask.array as da
import numpy as np
import xarray as xr

from webbflow.steps.refpix.broadcast import apply_per_tile
from webbflow.steps.refpix.kernel import clipped_mean

#: Full MIRI frame (y, x), reference columns per side, amplifiers.
MIRI_SHAPE: Final = (1024, 1032)
MIRI_REFCOLS: Final = 4
MIRI_NAMP: Final = 4


def miri_refpix_offsets(
    left: np.ndarray,
    right: np.ndarray,
    left_dq: np.ndarray,
    right_dq: np.ndarray,
    *,
    odd_even_rows: bool,
    siglimit: float,
    do_not_use: int,
) -> np.ndarray:
    """Per-group reference offsets of a full-frame MIRI exposure.

    Parameters
    ----------
    left, right
        ``(integration, group, row, 4)`` float32 DN: columns x 0-3 and x 1028-1031, all rows
        (row 0 first). Column ``a`` of each is amplifier ``a``.
    left_dq, right_dq
        ``(row, 4)`` uint32 pixel DQ of ``left``/``right``.
    odd_even_rows
        Separate offsets for even and odd rows (0-based); otherwise one per amplifier.
    siglimit
        Clipping threshold, population standard deviations (``scipy.stats.sigmaclip``).
    do_not_use
        DQ bit excluding a reference pixel.

    Returns
    -------
    numpy.ndarray
        ``(integration, group, amplifier, parity)`` float32 DN to subtract; 0 for the first
        group and for groups left uncorrected.
    """
    nint, ngroup, nrow, _ = left.shape
    parities = 2 if odd_even_rows else 1
    row_parity = np.arange(nrow) % parities
    means = []
    for side, side_dq in ((left, left_dq), (right, right_dq)):
        diff = side[:, 1:].astype(np.float32) - side[:, :1].astype(np.float32)  # float32, as jwst
        ok = (np.asarray(side_dq) & do_not_use) == 0
        per = np.empty((nint, ngroup - 1, MIRI_NAMP, parities))
        for amp in range(MIRI_NAMP):  # 4 amplifiers x 2 parities: sets of pixels, not pixels
            for par in range(parities):
                rows = row_parity == par
                per[..., amp, par] = clipped_mean(diff[..., rows, amp], ok[rows, amp], siglimit)
        means.append(per)
    signal = 0.5 * (means[0] + means[1])
    # jwst stops at the first group lacking usable reference pixels (and never restarts)
    bad = np.isnan(signal).any(axis=(-2, -1)).ravel()
    stop = np.cumsum(bad).reshape(nint, ngroup - 1) > 0
    signal = np.where(stop[..., None, None], 0.0, signal)
    out = np.zeros((nint, ngroup, MIRI_NAMP, 2), np.float32)
    out[:, 1:] = signal if odd_even_rows else signal[..., :1]
    return out


def apply_miri_refpix(sci: np.ndarray, y: np.ndarray, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Subtract ``offsets`` ``(integration, group, amplifier, parity)`` from one tile.

    ``sci`` is ``(integration, group, y, x)`` float32 DN; ``y``/``x`` are the tile's
    full-frame pixel indices. Returns float32 DN.
    """
    off = offsets[:, :, np.asarray(x)[None, :] % MIRI_NAMP, np.asarray(y)[:, None] % 2]
    return (sci - off).astype(np.float32, copy=False)


def miri_full_frame(ds: xr.Dataset) -> bool:
    """Whether ``ds`` covers the whole MIRI array (jwst corrects nothing else)."""
    return (
        (ds.sizes["y"], ds.sizes["x"]) == MIRI_SHAPE and int(ds.x.values[0]) == 0 and int(ds.y.values[0]) == 0
    )


def correct_miri(
    ds: xr.Dataset, strips: tuple[da.Array, ...], *, odd_even_rows: bool, siglimit: float, do_not_use: int
) -> da.Array:
    """Lazily correct ``ds.sci`` (a full-frame MIRI ramp) with the two-phase graph.

    ``strips`` is ``(left, left_dq, right, right_dq)``: the reference columns of the ramp
    ``(integration, group, y, 4)`` and of pixeldq ``(y, 4)``. Returns the corrected
    ``(integration, group, y, x)`` float32 DN ramp, chunked like ``ds.sci``.
    """
    sci = ds.sci.data
    nint, ngroup = sci.shape[:2]
    left, left_dq, right, right_dq = strips
    stats = dask.delayed(miri_refpix_offsets, pure=True)(
        left, right, left_dq, right_dq, odd_even_rows=odd_even_rows, siglimit=siglimit, do_not_use=do_not_use
    )
    offsets = da.from_delayed(stats, (nint, ngroup, MIRI_NAMP, 2), dtype=np.float32)
    return apply_per_tile(
        apply_miri_refpix,
        ds,
        sci,
        (offsets, ("i", "g", "a", "p")),
        name=f"refpix-miri-{da.core.tokenize(sci, offsets)}",
    )
