"""Numba helpers of the ramp fit: per-ramp segmentation, median rate, segment fits.

Everything here works on one pixel's ramp held in small work buffers; the
tile loop lives in :mod:`webbflow.steps.ramp_fit._core`. Conventions (see the
jwst ``ramp_fitting`` documentation):

* a *segment* is a run of good groups (no flag other than PERSISTENCE); a
  group flagged exactly JUMP_DET opens the following segment (its value is the
  segment's first read); if any segment has two or more groups, one-group
  segments are dropped, otherwise only the first one-group segment is kept;
* segment slopes are optimally weighted least-squares fits (Fixsen et al.
  2000 weights ``|k - mid| / mid`` raised to a power chosen from the segment's
  signal-to-noise ratio), Poisson variance ``rate / (t_group * gain * (n - 1))``
  from the pixel's median rate and read-noise variance
  ``12 sigma_r**2 / ((n**3 - n) t_group**2)``.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, error_model="numpy")
def find_segments(
    dq: np.ndarray, ngroups: int, keep_mask: int, jump: int, starts: np.ndarray, lengths: np.ndarray
) -> int:
    """Write the segments of one integration ramp into ``starts``/``lengths``; return their count.

    ``dq`` (ngroup,) uint8 group flags; ``keep_mask`` is the complement of the
    flags that do not break a segment (PERSISTENCE).
    """
    nseg = 0
    longest = 0
    in_seg = False
    start = 0
    for g in range(ngroups + 1):
        good = g < ngroups and (dq[g] & keep_mask) == 0
        if good and not in_seg:
            start = g - 1 if g > 0 and (dq[g - 1] & keep_mask) == jump else g
            in_seg = True
        elif not good and in_seg:
            starts[nseg] = start
            lengths[nseg] = g - start
            longest = max(longest, g - start)
            nseg += 1
            in_seg = False
    if nseg < 2:
        return nseg
    if longest < 2:  # only one-group segments: keep the first
        return 1
    kept = 0
    for s in range(nseg):
        if lengths[s] > 1:
            starts[kept] = starts[s]
            lengths[kept] = lengths[s]
            kept += 1
    return kept


@numba.njit(nogil=True, cache=True, error_model="numpy")
def nan_median(values: np.ndarray, n: int) -> float:
    """Median of the non-NaN entries of ``values[:n]`` (NaN if none); sorts a copy."""
    buf = np.empty(n, np.float64)
    m = 0
    for k in range(n):
        if not math.isnan(values[k]):
            buf[m] = values[k]
            m += 1
    if m == 0:
        return math.nan
    s = np.sort(buf[:m])
    half = m // 2
    if m % 2 == 1:
        return s[half]
    return (s[half] + s[half - 1]) / 2.0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def integration_median_rate(
    data: np.ndarray, dq: np.ndarray, ngroups: int, dnu: int, jump: int, group_time: float, diffs: np.ndarray
) -> float:
    """Median first difference (DN/s) of one integration ramp, flagged groups excluded.

    Groups flagged DO_NOT_USE (and saturated groups, NaN in ``data``) are
    excluded; a difference ending on a JUMP_DET group is excluded. When no
    difference is usable the first group's value over ``group_time`` is used.
    """
    first = math.nan if dq[0] & dnu else data[0] / group_time
    all_nan = True
    for k in range(ngroups - 1):
        if dq[k + 1] & jump:
            diffs[k] = math.nan
        else:
            a = math.nan if dq[k] & dnu else data[k] / group_time
            b = math.nan if dq[k + 1] & dnu else data[k + 1] / group_time
            diffs[k] = b - a
        if not math.isnan(diffs[k]):
            all_nan = False
    if all_nan and not math.isnan(first):
        diffs[0] = first
    return nan_median(diffs, ngroups - 1)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def snr_power(snr: float) -> float:
    """Exponent of the optimal weights for a segment of signal-to-noise ratio ``snr``."""
    if snr < 5.0:
        return 0.0
    if snr < 10.0:
        return 0.4
    if snr < 20.0:
        return 1.0
    if snr < 50.0:
        return 3.0
    if snr < 100.0:
        return 6.0
    return 10.0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def rnoise_var(rnoise_e: float, gain: float, seglen: int, timing: float) -> float:
    """Read-noise variance (DN/s)**2 of a segment slope.

    ``rnoise_e`` is the read noise scaled as the fit uses it (electrons, single
    read noise times ``gain / sqrt(2 nframes)``); one- and two-group segments
    use the two-group formula with ``timing`` their time base.
    """
    if seglen <= 2:
        r = rnoise_e / timing
        return 12.0 * r * r / (6.0 * gain * gain)
    if gain <= 0.0 or math.isnan(gain):
        return 0.0
    r = rnoise_e / timing
    return 12.0 * r * r / ((seglen * seglen * seglen - seglen) * gain * gain)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def poisson_var(median_rate: float, dark: float, timing: float, gain: float, nintervals: int) -> float:
    """Poisson variance (DN/s)**2 of a segment slope with ``nintervals`` group intervals."""
    rate = median_rate + dark if median_rate > 0.0 else dark
    return rate / (timing * gain * nintervals)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def weighted_slope(data: np.ndarray, start: int, length: int, rnoise_e: float, gain: float) -> float:
    """Optimally weighted least-squares slope (DN/group) of ``data[start:start+length]``."""
    diff = data[start + length - 1] - data[start]
    den = rnoise_e * rnoise_e + diff * gain
    snr = 0.0
    if den > 0.0 and gain != 0.0:
        snr = max(diff * gain / math.sqrt(den), 0.0)
    power = np.float32(snr_power(snr))
    mid = (length - 1) / 2.0
    inv_rn2 = 1.0 / (rnoise_e * rnoise_e)
    sw = sx = sxx = sy = sxy = 0.0
    for k in range(length):
        w = float(np.float32(abs((k - mid) / mid)) ** power) * inv_rn2
        x = float(k + start)
        y = data[start + k]
        if math.isnan(y):
            y = 0.0
        sw += w
        sx += x * w
        sxx += x * x * w
        sy += y * w
        sxy += x * y * w
    return (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
