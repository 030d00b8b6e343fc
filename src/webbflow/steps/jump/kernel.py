"""Two-point-difference jump detection on one tile (pure numpy/numba).

The method follows the jump step described in the JWST calibration software
documentation (two-point difference, Anderson & Gordon 2011):

1. Groups flagged DO_NOT_USE or SATURATED are excluded; the ramp is converted
   to electrons with the gain and first differences are taken, pooled over
   all integrations of a pixel.
2. The noise of a difference is ``sqrt(|median| + (g·rn)² / nframes)`` e⁻,
   the Poisson part taken from the median difference.
3. Detection, chosen once per exposure by the caller (``mode``):

   * ``MODE_ITERATIVE`` (fewer than ``min_diffs_single_pass`` usable
     differences): the median of the absolute differences (largest one left
     out when 4+ are usable; the smaller of two when only 2) sets the noise;
     the difference with the largest deviation ratio is flagged while that
     ratio exceeds the threshold for the number of usable differences
     (``>= 4``: ``rejection_threshold``; 3: ``four_group_rejection_threshold``;
     2: ``three_group_rejection_threshold``), then the median is recomputed.
   * ``MODE_SINGLE_PASS``: every difference deviating from the plain median by
     more than ``rejection_threshold`` sigma is flagged in one pass.
   * ``MODE_SIGMA_CLIP`` (many integrations): each difference is sigma-clipped
     (median centre, standard deviation, ``rejection_threshold`` sigma,
     5 iterations) against the same difference in the other integrations
     (``only_use_ints``) or against all differences of the pixel.

4. The four perpendicular neighbours of jumps whose ratio lies strictly
   between ``min_jump_to_flag_neighbors`` and ``max_jump_to_flag_neighbors``
   are flagged too (needs a 1-pixel halo), and jumps at least ``e1`` (``e2``)
   electrons above the median difference flag the following ``n1`` (``n2``)
   groups. JUMP_DET is never left on a DO_NOT_USE or SATURATED group.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

MODE_ITERATIVE = 0
MODE_SINGLE_PASS = 1
MODE_SIGMA_CLIP = 2

_SEED = np.uint8(1)  # neighbour-flagging seed
_BIG1 = np.uint8(2)  # jump above after_jump_flag_e1
_BIG2 = np.uint8(4)  # jump above after_jump_flag_e2


class JumpResult(NamedTuple):
    """Output of :func:`detect_jumps`.

    Attributes
    ----------
    groupdq : numpy.ndarray
        (nint, ngroup, ny, nx) uint8, the input group DQ with JUMP_DET added.
    """

    groupdq: np.ndarray


def detect_jumps(
    sci: np.ndarray,
    groupdq: np.ndarray,
    gain: np.ndarray,
    readnoise: np.ndarray,
    median_gain: np.ndarray | float = 1.0,
    *,
    nframes: int = 1,
    mode: int = MODE_ITERATIVE,
    rejection_threshold: float = 4.0,
    three_group_rejection_threshold: float = 6.0,
    four_group_rejection_threshold: float = 5.0,
    only_use_ints: bool = True,
    flag_4_neighbors: bool = True,
    max_jump_to_flag_neighbors: float = 1000.0,
    min_jump_to_flag_neighbors: float = 10.0,
    after_jump_flag_dn1: float = 0.0,
    after_jump_flag_n1: int = 0,
    after_jump_flag_dn2: float = 0.0,
    after_jump_flag_n2: int = 0,
    do_not_use: int = 1,
    saturated: int = 2,
    jump_det: int = 4,
) -> JumpResult:
    """Flag cosmic-ray jumps in one tile of ramps.

    Parameters
    ----------
    sci
        (nint, ngroup, ny, nx) float32 ramps, DN.
    groupdq
        (nint, ngroup, ny, nx) uint8 group DQ.
    gain
        (ny, nx) float32 gain, e⁻/DN.
    readnoise
        (ny, nx) float32 single-read read noise, DN.
    median_gain
        Scalar or (ny, nx) float, e⁻/DN: the exposure-wide median gain that
        converts the after-jump DN thresholds to electrons.
    nframes
        Frames averaged per group.
    mode
        ``MODE_ITERATIVE``, ``MODE_SINGLE_PASS`` or ``MODE_SIGMA_CLIP``.
    rejection_threshold, three_group_rejection_threshold, four_group_rejection_threshold
        Detection thresholds, sigma (for 4+, 2 and 3 usable differences).
    only_use_ints
        Sigma clipping compares each difference across integrations only.
    flag_4_neighbors, max_jump_to_flag_neighbors, min_jump_to_flag_neighbors
        Neighbour flagging switch and its ratio window, sigma.
    after_jump_flag_dn1, after_jump_flag_n1, after_jump_flag_dn2, after_jump_flag_n2
        Jumps of at least ``dn`` DN flag the next ``n`` groups (``n = 0``: off).
    do_not_use, saturated, jump_det
        DQ bit values.

    Returns
    -------
    JumpResult
    """
    ngroup, ny, nx = sci.shape[1:]
    mg = np.broadcast_to(np.asarray(median_gain, dtype=np.float64), (ny, nx))
    after = after_jump_flag_n1 > 0 or after_jump_flag_n2 > 0
    e1 = mg * float(after_jump_flag_dn1) if after else np.full((ny, nx), np.inf)
    e2 = mg * float(after_jump_flag_dn2) if after else np.full((ny, nx), np.inf)
    out, info = _primary(
        np.asarray(sci, np.float32),
        np.asarray(groupdq, np.uint8),
        np.asarray(gain, np.float32),
        np.asarray(readnoise, np.float32),
        np.ascontiguousarray(e1),
        np.ascontiguousarray(e2),
        float(nframes),
        int(mode),
        float(rejection_threshold),
        float(three_group_rejection_threshold),
        float(four_group_rejection_threshold),
        bool(only_use_ints),
        float(min_jump_to_flag_neighbors),
        float(max_jump_to_flag_neighbors),
        np.uint8(do_not_use | saturated),
        np.uint8(jump_det),
    )
    n1 = min(int(after_jump_flag_n1), ngroup - 2) if after else 0
    n2 = min(int(after_jump_flag_n2), ngroup - 2) if after else 0
    _secondary(
        out,
        info,
        bool(flag_4_neighbors),
        after,
        n1,
        n2,
        np.uint8(do_not_use),
        np.uint8(saturated),
        np.uint8(jump_det),
    )
    return JumpResult(out)


@numba.njit(nogil=True, cache=True)
def _median_sorted(v: np.ndarray, n: int) -> np.float32:
    """Median of the first ``n`` (sorted) values, float32 arithmetic."""
    if n == 0:
        return np.float32(np.nan)
    h = n // 2
    if n % 2:
        return v[h]
    return np.float32(v[h - 1] + v[h]) / np.float32(2.0)


@numba.njit(nogil=True, cache=True)
def _sort_valid(src: np.ndarray, valid: np.ndarray, dst: np.ndarray) -> int:
    """Copy the valid entries of ``src`` to ``dst`` sorted ascending; return how many."""
    n = 0
    for k in range(src.size):
        if valid[k]:
            x = src[k]
            j = n
            while j > 0 and dst[j - 1] > x:
                dst[j] = dst[j - 1]
                j -= 1
            dst[j] = x
            n += 1
    return n


@numba.njit(nogil=True, cache=True)
def _clip_bounds(vals: np.ndarray, n: int, nsig: float, maxiters: int) -> tuple[float, float]:
    """Sigma-clipping bounds (median centre, population std); ``vals`` is scratch."""
    lo = np.nan
    hi = np.nan
    it = 0
    while n > 0:
        buf = np.sort(vals[:n])
        med = buf[n // 2] if n % 2 else 0.5 * (buf[n // 2 - 1] + buf[n // 2])
        mean = 0.0
        for k in range(n):
            mean += vals[k]
        mean /= n
        var = 0.0
        for k in range(n):
            var += (vals[k] - mean) ** 2
        std = np.sqrt(var / n)
        lo = med - nsig * std
        hi = med + nsig * std
        m = 0
        for k in range(n):
            if lo <= vals[k] <= hi:
                vals[m] = vals[k]
                m += 1
        if m == n or m == 0:
            break
        n = m
        it += 1
        if it >= maxiters:
            break
    return lo, hi


@numba.njit(nogil=True, cache=True)
def _primary(
    sci, gdq, gain, rn, e1, e2, nframes, mode, thr, thr2, thr3, only_use_ints, nb_min, nb_max, bad, jump
):  # pragma: no cover - compiled
    nint, ngroup, ny, nx = sci.shape
    nd = ngroup - 1
    ntot = nint * nd
    out = gdq.copy()
    info = np.zeros(gdq.shape, np.uint8)
    d = np.empty(ntot, np.float32)
    a = np.empty(ntot, np.float32)
    valid = np.empty(ntot, np.bool_)
    live = np.empty(ntot, np.bool_)
    buf = np.empty(ntot, np.float32)
    cbuf = np.empty(ntot, np.float64)
    for y in range(ny):
        for x in range(nx):
            g = gain[y, x]
            rne = rn[y, x] * g
            noise2 = np.float64(rne * rne) / nframes
            nvalid = 0
            for i in range(nint):
                for j in range(nd):
                    k = i * nd + j
                    if (gdq[i, j, y, x] & bad) or (gdq[i, j + 1, y, x] & bad):
                        d[k] = np.nan
                    else:
                        d[k] = sci[i, j + 1, y, x] * g - sci[i, j, y, x] * g
                    valid[k] = np.isfinite(d[k])
                    a[k] = abs(d[k])
                    nvalid += valid[k]
            n = _sort_valid(d, valid, buf)
            med = _median_sorted(buf, n)
            sigma = np.sqrt(abs(np.float64(med)) + noise2)
            if mode == MODE_SINGLE_PASS:
                if sigma > 0:
                    for k in range(ntot):
                        if valid[k] and abs(np.float64(d[k] - med)) / sigma > thr:
                            out[k // nd, k % nd + 1, y, x] |= jump
            elif mode == MODE_SIGMA_CLIP:
                _sigma_clip_pixel(d, valid, cbuf, nint, nd, thr, only_use_ints, out, gdq, y, x, bad, jump)
            else:
                live[:] = valid
                _iterate_pixel(a, live, nvalid, buf, noise2, thr, thr2, thr3, nd, out, y, x, jump)
            # post-processing marks, w.r.t. the plain median: neighbour seeds
            # (jumps only) and after-jump sizes (any group; checked later)
            for k in range(ntot):
                if not valid[k]:
                    continue
                i = k // nd
                gi = k % nd + 1
                dev = np.float32(d[k] - med)
                flags = np.uint8(0)
                if out[i, gi, y, x] & jump and sigma > 0:
                    ratio = abs(np.float64(dev)) / sigma
                    if nb_min < ratio < nb_max:
                        flags |= _SEED
                if dev >= e1[y, x]:
                    flags |= _BIG1
                if dev >= e2[y, x]:
                    flags |= _BIG2
                info[i, gi, y, x] = flags
    return out, info


@numba.njit(nogil=True, cache=True)
def _iterate_pixel(
    a, valid, n, buf, noise2, thr, thr2, thr3, nd, out, y, x, jump
):  # pragma: no cover - compiled
    """Iteratively flag the largest outlier of one pixel's absolute differences."""
    ntot = a.size
    for _ in range(ntot):
        if n < 2:
            return
        m = _sort_valid(a, valid, buf)
        if n >= 4:
            top = buf[m - 1]
            while m > 0 and buf[m - 1] == top:
                m -= 1
            med = _median_sorted(buf, m)
        elif n == 3:
            med = _median_sorted(buf, m)
        else:
            med = buf[0]
        sigma = np.sqrt(abs(np.float64(med)) + noise2)
        if not sigma > 0:
            return
        best = -1.0
        for k in range(ntot):
            if valid[k]:
                r = abs(np.float64(np.float32(a[k] - med))) / sigma
                if r > best:
                    best = r
        limit = thr if n >= 4 else (thr3 if n == 3 else thr2)
        if not best > limit:
            return
        for k in range(ntot):
            if valid[k] and abs(np.float64(np.float32(a[k] - med))) / sigma == best:
                out[k // nd, k % nd + 1, y, x] |= jump
                valid[k] = False
                n -= 1


@numba.njit(nogil=True, cache=True)
def _sigma_clip_pixel(
    d, valid, cbuf, nint, nd, thr, only_use_ints, out, gdq, y, x, bad, jump
):  # pragma: no cover - compiled
    """Sigma-clip one pixel's differences across integrations (or all of them)."""
    nsets = nd if only_use_ints else 1
    for s in range(nsets):
        n = 0
        for k in range(d.size):
            if valid[k] and (not only_use_ints or k % nd == s):
                cbuf[n] = d[k]
                n += 1
        if n == 0:
            continue
        lo, hi = _clip_bounds(cbuf, n, thr, 5)
        for k in range(d.size):
            if valid[k] and (not only_use_ints or k % nd == s):
                v = np.float64(d[k])
                i = k // nd
                gi = k % nd + 1
                if (v < lo or v > hi) and not (gdq[i, gi, y, x] & bad):
                    out[i, gi, y, x] |= jump


@numba.njit(nogil=True, cache=True)
def _secondary(out, info, neighbors, after, n1, n2, dnu, sat, jump):  # pragma: no cover
    """Neighbour flagging, after-jump flagging, then drop JUMP on DNU/SAT groups (in place)."""
    nint, ngroup, ny, nx = out.shape
    bad = dnu | sat
    col = np.empty(ngroup, np.uint8)
    for y in range(ny):
        for x in range(nx):
            for i in range(nint):
                for gi in range(ngroup):
                    col[gi] = out[i, gi, y, x]
                    if neighbors and gi > 0 and not (col[gi] & bad):
                        hit = info[i, gi, y, x] & _SEED
                        if y > 0:
                            hit |= info[i, gi, y - 1, x] & _SEED
                        if y < ny - 1:
                            hit |= info[i, gi, y + 1, x] & _SEED
                        if x > 0:
                            hit |= info[i, gi, y, x - 1] & _SEED
                        if x < nx - 1:
                            hit |= info[i, gi, y, x + 1] & _SEED
                        if hit:
                            col[gi] |= jump
                if after:
                    last1 = -1
                    last2 = -1
                    for gi in range(1, ngroup):
                        f = info[i, gi, y, x]
                        if col[gi] & jump:
                            if f & _BIG1:
                                last1 = gi + n1
                            if f & _BIG2:
                                last2 = gi + n2
                        if (gi <= last1 or gi <= last2) and not (col[gi] & bad):
                            col[gi] |= jump
                for gi in range(ngroup):
                    v = col[gi]
                    if (v & jump) and (v & bad):
                        v ^= jump
                    out[i, gi, y, x] = v
