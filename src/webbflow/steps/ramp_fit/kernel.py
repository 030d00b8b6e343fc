"""Pure ramp-fitting kernel: ramps of one (y, x) tile in, rate and rateints planes out.

The fit follows the "OLS_C" ordinary-least-squares algorithm documented for
the jwst ``ramp_fit`` step: each integration ramp is split into segments at
jump groups, each segment is fitted with optimal weighting (Fixsen et al.
2000), segments are combined into the integration slope and integrations
into the exposure slope, weighting by the inverse read-noise variance.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from webbflow.steps.ramp_fit._core import fit_tile


class RampFitResult(NamedTuple):
    """Rate (``(y, x)``) and rateints (``(integration, y, x)``) planes of one tile.

    Slopes and errors are float32 DN/s, variances float32 (DN/s)**2, DQ uint32.
    """

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    sci_ints: np.ndarray
    err_ints: np.ndarray
    dq_ints: np.ndarray
    var_poisson_ints: np.ndarray
    var_rnoise_ints: np.ndarray


def group_mask(ngroups: int, firstgroup: int | None, lastgroup: int | None) -> np.ndarray:
    """Groups excluded by ``firstgroup``/``lastgroup`` (0-based, inclusive), as jwst selects them.

    Returns
    -------
    numpy.ndarray
        (ngroup,) bool, True for groups outside ``[firstgroup, lastgroup]``.
        Inconsistent selectors (``firstgroup >= lastgroup``) select every group.
    """
    first = 0 if firstgroup is None else max(int(firstgroup), 0)
    last = ngroups - 1 if lastgroup is None else int(lastgroup)
    if first >= last:
        first, last = 0, ngroups - 1
    index = np.arange(ngroups)
    return (index < first) | (index > last)


def ramp_fit_kernel(
    sci: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    readnoise: np.ndarray,
    gain: np.ndarray,
    *,
    group_time: float,
    frame_time: float,
    nframes: int,
    exclude: np.ndarray | tuple[bool, ...] = (),
    suppress_one_group: bool = True,
    zeroframe: np.ndarray | None = None,
    dark: np.ndarray | None = None,
    do_not_use: int,
    saturated: int,
    jump_det: int,
    persistence: int,
    no_gain_value: int,
    chargeloss: int,
) -> RampFitResult:
    """Fit the ramps of one tile.

    Parameters
    ----------
    sci
        (nint, ngroup, ny, nx) float32 ramps, DN.
    groupdq
        (nint, ngroup, ny, nx) uint8 group flags.
    pixeldq
        (ny, nx) uint32 pixel flags (start of the output DQ).
    readnoise
        (ny, nx) float32 single-read noise, DN.
    gain
        (ny, nx) float32 gain, e-/DN; non-positive or NaN marks the pixel
        DO_NOT_USE | NO_GAIN_VALUE.
    group_time, frame_time
        Seconds.
    nframes
        Frames averaged per group.
    exclude
        (ngroup,) bool, groups to treat as DO_NOT_USE (``firstgroup``/``lastgroup``);
        empty: none.
    suppress_one_group
        Treat ramps with a single good group as unusable (ignored if ngroup == 1).
    zeroframe
        (nint, ny, nx) float32 zero-frame reads, DN, used for ramps saturated
        from the first group when ``suppress_one_group`` is off; 0 means absent.
    dark
        (ny, nx) float32 average dark current, DN/s, added to the Poisson rate.
    do_not_use, saturated, jump_det, persistence, no_gain_value, chargeloss
        DQ bit values.

    Returns
    -------
    RampFitResult
    """
    nint, ngroups, ny, nx = sci.shape
    extra = np.zeros(ngroups, np.uint8)
    if len(exclude):
        extra[np.asarray(exclude, bool)] = do_not_use
    gain32 = np.asarray(gain, np.float32)
    # the fit's read-noise scale: single-read noise in electrons for a frame difference
    rnoise_e = np.asarray(readnoise, np.float32) * (gain32 / np.sqrt(2.0 * nframes))
    one_group_time = float(np.float32(nframes + 1.0) * np.float32(frame_time) / 2.0)
    zf = np.zeros((1, 1, 1), np.float32) if zeroframe is None else np.asarray(zeroframe, np.float32)
    dk = np.zeros((ny, nx), np.float32) if dark is None else np.asarray(dark, np.float32)
    rate = np.empty((4, ny, nx), np.float64)
    ints = np.empty((4, nint, ny, nx), np.float64)
    rate_dq = np.empty((ny, nx), np.uint32)
    ints_dq = np.empty((nint, ny, nx), np.uint32)
    fit_tile(
        np.asarray(sci, np.float32),
        np.asarray(groupdq, np.uint8),
        np.asarray(pixeldq, np.uint32),
        zf,
        zeroframe is not None,
        rnoise_e,
        gain32,
        dk,
        extra,
        float(np.float32(group_time)),
        float(np.float32(frame_time)),
        one_group_time,
        bool(suppress_one_group and ngroups > 1),
        int(do_not_use),
        int(saturated),
        int(jump_det),
        int(persistence),
        int(no_gain_value),
        int(chargeloss),
        rate,
        rate_dq,
        ints,
        ints_dq,
    )
    r = rate.astype(np.float32)
    i = ints.astype(np.float32)
    return RampFitResult(r[0], r[1], rate_dq, r[2], r[3], i[0], i[1], ints_dq, i[2], i[3])
