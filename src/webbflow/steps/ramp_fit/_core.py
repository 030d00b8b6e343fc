"""The numba tile loop of the ramp fit: every pixel, every integration, every segment.

See :mod:`webbflow.steps.ramp_fit.kernel` for the public kernel and the
meaning of the arrays; this module only holds the compiled loop.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from webbflow.steps.ramp_fit._segments import (
    find_segments,
    integration_median_rate,
    poisson_var,
    rnoise_var,
    weighted_slope,
)

#: Variances at or above this are reported as 0 (unusable), as jwst does.
LARGE_VARIANCE = 1.0e6


@numba.njit(nogil=True, cache=True, error_model="numpy")
def fit_tile(
    sci: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    zeroframe: np.ndarray,
    has_zeroframe: bool,
    rnoise_e: np.ndarray,
    gain: np.ndarray,
    dark: np.ndarray,
    extra_dnu: np.ndarray,
    group_time: float,
    frame_time: float,
    one_group_time: float,
    suppress1g: bool,
    dnu: int,
    sat: int,
    jump: int,
    pers: int,
    ngval: int,
    chargeloss: int,
    rate: np.ndarray,
    rate_dq: np.ndarray,
    ints: np.ndarray,
    ints_dq: np.ndarray,
) -> None:
    """Fit every ramp of a tile into ``rate`` (4, ny, nx) and ``ints`` (4, nint, ny, nx) and the DQs.

    The four planes of ``rate``/``ints`` are slope, err, var_poisson, var_rnoise.
    """
    nint, ngroups, ny, nx = sci.shape
    keep = (~pers) & 0xFF
    invalid = dnu | sat
    data = np.empty((nint, ngroups), np.float64)
    dq = np.empty((nint, ngroups), np.uint8)
    diffs = np.empty(max(ngroups - 1, 1), np.float64)
    starts = np.empty(ngroups, np.int64)
    lengths = np.empty(ngroups, np.int64)
    cnt_sat = np.empty(nint, np.int64)
    has_cl = np.empty(nint, np.bool_)
    is_0th = np.empty(nint, np.bool_)
    is_zf = np.empty(nint, np.bool_)
    for y in range(ny):
        for x in range(nx):
            g_ = float(gain[y, x])
            pdq = np.uint32(pixeldq[y, x])
            if g_ <= 0.0 or math.isnan(g_):
                pdq |= np.uint32(dnu | ngval)
            rn = float(rnoise_e[y, x])
            dc = float(dark[y, x])
            rdq = pdq
            r_vp = 0.0
            r_vr = 0.0
            r_num = 0.0
            inv_e_sum = 0.0
            # ---- load ramps, suppress one-good-group ramps, group statistics
            for i in range(nint):
                ngood_np = 0
                for g in range(ngroups):
                    f = np.uint8(groupdq[i, g, y, x] | extra_dnu[g])
                    dq[i, g] = f
                    if (f & keep) == 0:
                        ngood_np += 1
                if suppress1g and ngood_np == 1:
                    for g in range(ngroups):
                        dq[i, g] |= np.uint8(dnu)
                idq = pdq
                cnt_good = 0
                cnt_sat[i] = 0
                has_cl[i] = False
                for g in range(ngroups):
                    f = dq[i, g]
                    if f & jump:
                        idq |= np.uint32(jump)
                    if f & pers:
                        idq |= np.uint32(pers)
                    if f & chargeloss:
                        has_cl[i] = True
                    if f == 0:
                        cnt_good += 1
                    if f & sat:
                        data[i, g] = math.nan
                        cnt_sat[i] += 1
                    else:
                        data[i, g] = sci[i, g, y, x]
                is_0th[i] = False
                is_zf[i] = False
                if not suppress1g:
                    if cnt_good == 1 and dq[i, 0] == 0:
                        is_0th[i] = True
                    elif cnt_good == 0 and has_zeroframe and zeroframe[i, y, x] != 0.0:
                        data[i, 0] = zeroframe[i, y, x]
                        dq[i, 0] = 0
                        if cnt_sat[i] == ngroups:
                            cnt_sat[i] -= 1
                        is_zf[i] = True
                ints_dq[i, y, x] = idq
                rdq |= idq & np.uint32(jump | pers)
            # ---- median rate of the pixel (mean over integrations)
            acc = 0.0
            for i in range(nint):
                if ngroups == 1 or is_0th[i]:
                    m = data[i, 0] / one_group_time
                elif is_zf[i]:
                    m = data[i, 0] / frame_time
                else:
                    m = integration_median_rate(data[i], dq[i], ngroups, dnu, jump, group_time, diffs)
                    if math.isnan(m):
                        m = 0.0
                acc += m
            mrate = acc / nint
            # ---- per-integration fits
            dnu_cnt = 0
            sat_cnt = 0
            any_partial_sat = False
            for i in range(nint):
                idq = ints_dq[i, y, x]
                slope = 0.0
                err = 0.0
                vp = 0.0
                vr = 0.0
                unusable = True
                if dq[i, 0] & sat:
                    idq |= np.uint32(dnu | sat)
                    nseg = 0
                else:
                    nseg = find_segments(dq[i], ngroups, keep, jump, starts, lengths)
                    n_bad = 0
                    for g in range(ngroups):
                        if dq[i, g] & (dnu | sat):
                            n_bad += 1
                    if n_bad == ngroups:
                        idq |= np.uint32(dnu)
                        if cnt_sat[i] == ngroups:
                            idq |= np.uint32(sat)
                    else:
                        unusable = False
                if not unusable and nseg > 0:
                    inv_r = 0.0
                    inv_p = 0.0
                    inv_e = 0.0
                    num = 0.0
                    for s in range(nseg):
                        st = starts[s]
                        ln = lengths[s]
                        if ln == 1:
                            t = group_time
                            if not suppress1g:
                                if is_0th[i]:
                                    t = one_group_time
                                elif is_zf[i]:
                                    t = frame_time
                            s_slope = data[i, st] / t
                            s_vp = poisson_var(mrate, dc, t, g_, 1)
                            s_vr = rnoise_var(rn, g_, 1, t)
                        elif ln == 2:
                            s_slope = (data[i, st + 1] - data[i, st]) / group_time
                            s_vp = poisson_var(mrate, dc, group_time, g_, 1)
                            s_vr = rnoise_var(rn, g_, 2, group_time)
                        else:
                            s_slope = weighted_slope(data[i], st, ln, rn, g_) / group_time
                            s_vp = poisson_var(mrate, dc, group_time, g_, ln - 1)
                            s_vr = rnoise_var(rn, g_, ln, group_time)
                        inv_r += 1.0 / s_vr
                        if s_vp > 0.0:
                            inv_p += 1.0 / s_vp
                        inv_e += 1.0 / (s_vp + s_vr)
                        num += s_slope / s_vr
                    if inv_p > 0.0:
                        vp = 1.0 / inv_p
                    if vp >= LARGE_VARIANCE:
                        vp = 0.0
                    vr = 1.0 / inv_r
                    if vr >= LARGE_VARIANCE:
                        vr = 0.0
                    if idq & invalid:
                        slope = math.nan
                        vp = 0.0
                        vr = 0.0
                    else:
                        slope = num * vr
                        ve = 1.0 / inv_e
                        err = 0.0 if ve > LARGE_VARIANCE else math.sqrt(ve)
                    if inv_p > 0.0:
                        r_vp += inv_p
                    r_vr += inv_r
                    inv_e_sum += inv_e
                    r_num += num
                if idq & dnu:
                    dnu_cnt += 1
                    slope = math.nan
                if idq & sat:
                    sat_cnt += 1
                    slope = math.nan
                if cnt_sat[i] > 0:
                    idq |= np.uint32(sat)
                    any_partial_sat = True
                ints_dq[i, y, x] = idq
                ints[0, i, y, x] = slope
                ints[1, i, y, x] = err
                ints[2, i, y, x] = vp
                ints[3, i, y, x] = vr
            # ---- exposure level
            if dnu_cnt == nint:
                rdq |= np.uint32(dnu)
            if sat_cnt == nint:
                rdq |= np.uint32(sat)
            if r_vp > 0.0:
                r_vp = 1.0 / r_vp
            if r_vp >= LARGE_VARIANCE or r_vp < 0.0:
                r_vp = 0.0
            if r_vr > 0.0:
                r_vr = 1.0 / r_vr
            if r_vr >= LARGE_VARIANCE:
                r_vr = 0.0
            r_err = math.sqrt(r_vp + r_vr)
            r_slope = r_num
            if rdq & invalid:
                r_slope = math.nan
                r_vp = 0.0
                r_vr = 0.0
                r_err = 0.0
            if any_partial_sat:
                rdq |= np.uint32(sat)
            if not math.isnan(r_slope):
                r_slope = r_slope * r_vr
            # ---- CHARGELOSS: read noise from the ramps with charge-loss groups restored
            any_cl = False
            for i in range(nint):
                any_cl = any_cl or has_cl[i]
            if any_cl:
                evar_r = 0.0
                flip = np.uint8(dnu | chargeloss)
                for i in range(nint):
                    if not has_cl[i]:
                        if ints[3, i, y, x] > 0.0:
                            evar_r += 1.0 / ints[3, i, y, x]
                        continue
                    for g in range(ngroups):
                        f = np.uint8(groupdq[i, g, y, x] | extra_dnu[g])
                        dq[i, g] = f ^ flip if f & chargeloss else f
                    nseg = find_segments(dq[i], ngroups, keep, jump, starts, lengths)
                    inv_r = 0.0
                    for s in range(nseg):
                        t = group_time
                        if lengths[s] == 1 and not suppress1g:
                            if is_0th[i]:
                                t = one_group_time
                            elif is_zf[i]:
                                t = frame_time
                        s_vr = rnoise_var(rn, g_, lengths[s], t)
                        if s_vr > 0.0:
                            inv_r += 1.0 / s_vr
                    vr = 1.0 / inv_r if inv_r > 0.0 else math.inf
                    ints[3, i, y, x] = 0.0 if vr >= LARGE_VARIANCE else vr
                    evar_r += inv_r
                if evar_r > 0.0:
                    r_vr = 1.0 / evar_r
                if r_vr >= LARGE_VARIANCE:
                    r_vr = 0.0
            rate_dq[y, x] = rdq
            rate[0, y, x] = r_slope
            rate[1, y, x] = r_err
            rate[2, y, x] = r_vp
            rate[3, y, x] = r_vr
