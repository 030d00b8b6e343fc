"""MIRI cosmic-ray shower flagging on tiles (numpy + scipy.ndimage), in three parts.

Following the jump step documentation of the JWST calibration software (MIRI
"showers": large, faint halos of excess charge around some cosmic-ray hits),
after two-point-difference detection:

1. :func:`extended_emission` (per tile, halo :func:`ring_halo`): ramps in
   electrons, groups flagged DO_NOT_USE/SATURATED/JUMP_DET set aside; each
   first difference's deviation from the pixel's median difference, in units
   of ``sqrt(|median| + (g·rn)² / nframes)`` (or, with many integrations, the
   sigma-clipped median and standard deviation of that difference across
   integrations), is averaged over a ring around every pixel (pixels flagged
   in that group or in ``pixeldq``, and reference pixels, left out). Pixels
   whose ring average exceeds ``extend_snr_threshold`` are "extended emission".
2. :func:`plane_ellipses` (per whole (integration, group) plane): 8-connected
   regions of extended emission with a hole-filled area of at least
   ``extend_min_area`` pixels are described by their moment ellipse.
3. :func:`flag_showers` (per tile, no halo): each ellipse, its minor axis
   scaled by ``extend_ellipse_expand_ratio`` and its major axis grown by the
   same number of pixels (full axes capped at ``2 * max_extended_radius``), is
   flagged JUMP_DET in its group and the next ``ngroups_masked`` groups where
   not saturated; a pixel whose mean group difference (flagged groups left
   out) changes by more than the shower amplitude limit, or becomes
   undefined, keeps its input flags.

Part 1 reads pixels at most :func:`ring_halo` away and part 3 only its own
pixels, and part 2 sees whole planes, so the result does not depend on the
tiling, whatever the size of a shower.

The ring follows jwst's use of astropy's ``Ring2DKernel(extend_inner_radius,
extend_outer_radius)``, whose second argument is a *width*: pixels whose
centre lies between ``inner`` and ``inner + outer`` pixels from the centre.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numba
import numpy as np

from webbflow.steps.jump.kernel import JumpResult
from webbflow.steps.jump.snowballs import Ellipse, draw, regions

#: Bits of :func:`extended_emission`'s output code.
EXTENDED = np.uint8(1)
GROUP_DNU = np.uint8(2)
#: Columns of a shower table: integration, group, row, col, minor, major (full axes
#: minus one, pixels), angle (degrees); rows/cols are exposure-array indices.
TABLE_COLUMNS = ("integration", "group", "row", "col", "minor", "major", "angle")
#: jwst (stcal) needs this many usable differences in the exposure to look for showers.
MIN_DIFFS_FOR_SHOWERS = 10


class ExtendedResult(NamedTuple):
    """Output of :func:`extended_emission`.

    Attributes
    ----------
    code : numpy.ndarray
        (nint, ngroup, ny, nx) uint8: :data:`EXTENDED` where the difference
        ending at that group is extended emission, :data:`GROUP_DNU` where
        the group is DO_NOT_USE.
    """

    code: np.ndarray


def ring_kernel(inner: float, width: float) -> np.ndarray:
    """(2h+1, 2h+1) float64 ring: 1 where ``inner <= r <= inner + width`` pixels, else 0."""
    half = ring_halo(inner, width)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    r = np.hypot(yy, xx)
    return ((r >= inner) & (r <= inner + width)).astype(np.float64)


def ring_halo(inner: float, width: float) -> int:
    """Half-size, pixels, of :func:`ring_kernel`: the halo that part 1 needs."""
    return max(1, math.ceil(inner + width))


def extended_emission(
    sci: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    gain: np.ndarray,
    readnoise: np.ndarray,
    *,
    nframes: int = 1,
    sigma_clip: bool = False,
    snr_threshold: float = 1.2,
    inner_radius: float = 1.0,
    outer_radius: float = 2.6,
    do_not_use: int = 1,
    saturated: int = 2,
    jump_det: int = 4,
    reference_pixel: int = 1 << 31,
) -> ExtendedResult:
    """Mark extended emission (step 1 of shower flagging) on one tile.

    Parameters
    ----------
    sci
        (nint, ngroup, ny, nx) float32 ramps, DN.
    groupdq
        (nint, ngroup, ny, nx) uint8 group DQ after two-point detection.
    pixeldq
        (ny, nx) uint32 pixel DQ.
    gain, readnoise
        (ny, nx) float32 gain (e⁻/DN) and read noise (DN).
    nframes
        Frames averaged per group.
    sigma_clip
        Normalise each difference by its sigma-clipped (5 sigma) median and
        standard deviation across integrations (jwst: when ``nints >=
        minimum_sigclip_groups``) instead of the pixel's median difference.
    snr_threshold, inner_radius, outer_radius
        ``extend_snr_threshold``, ``extend_inner_radius``, ``extend_outer_radius``.
    do_not_use, saturated, jump_det, reference_pixel
        DQ bit values.

    Returns
    -------
    ExtendedResult
    """
    nint = sci.shape[0]
    bad = do_not_use | saturated | jump_det
    g32 = gain.astype(np.float32)
    data = sci.astype(np.float32) * g32
    data[(groupdq & bad) != 0] = np.nan
    diffs = np.diff(data, axis=1)  # (nint, ngroup - 1, ny, nx), e⁻
    del data
    code = np.where((groupdq & do_not_use) != 0, GROUP_DNU, np.uint8(0)).astype(np.uint8)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if sigma_clip:
            from astropy.stats import sigma_clipped_stats

            _, centre, sigma = sigma_clipped_stats(diffs, sigma=5, axis=0)
            centre, sigma = np.asarray(centre)[None], np.asarray(sigma)[None]
        else:
            # pixels with no usable difference get 0, not nanmedian's thread-unsafe warning
            usable = np.isfinite(diffs).any(axis=(0, 1))
            stack = np.where(usable, diffs, np.float32(0)).reshape(-1, *diffs.shape[2:])
            centre = _nanmedian_first(stack)[None, None]
            rn_e = readnoise.astype(np.float32) * g32
            sigma = np.sqrt(np.abs(centre) + rn_e**2 / np.float32(nframes))
        ratio = np.abs(diffs - centre) / sigma
    del diffs
    ring = ring_kernel(inner_radius, outer_radius)[None]
    refpix = (pixeldq & reference_pixel) != 0
    for i in range(nint):
        excluded = (((groupdq[i, 1:] | pixeldq) & bad) != 0) | refpix
        values = np.where(excluded, np.nan, ratio[i]).astype(np.float64)
        smoothed = _ring_mean(values, ring)
        with np.errstate(invalid="ignore"):
            code[i, 1:] |= (smoothed > snr_threshold).astype(np.uint8) * EXTENDED
    return ExtendedResult(code)


def _ring_mean(values: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Mean of the finite ``values`` over ``ring`` around each pixel; NaN where a value is NaN.

    ``values`` is (n, ny, nx) float64, ``ring`` (1, 2h+1, 2h+1). Outside the array,
    values count as zeros of full weight (the convention of jwst's shower search at
    the detector edge). Direct sums in a fixed order give each pixel the same
    arithmetic whatever array it sits in: tile-exact. The sums are those of
    ``scipy.ndimage.correlate`` (ring cells in raster order, float64), bit for bit,
    but in a numba kernel that releases the GIL, so tiles run in parallel.
    """
    ny, nx = ring.shape[-2:]
    kernel = ring.reshape(ny, nx)
    half_y, half_x = ny // 2, nx // 2
    dy, dx = np.nonzero(kernel)  # raster order, as ndimage walks its footprint
    weights = kernel[dy, dx].astype(np.float64)
    floor = 1e-3 * float(ring.mean())
    return _ring_mean_kernel(
        np.ascontiguousarray(values, dtype=np.float64),
        (dy - half_y).astype(np.intp),
        (dx - half_x).astype(np.intp),
        weights,
        floor,
    )


@numba.njit(nogil=True, cache=True)
def _ring_mean_kernel(
    values: np.ndarray, dy: np.ndarray, dx: np.ndarray, weights: np.ndarray, floor: float
) -> np.ndarray:  # pragma: no cover - compiled
    n, ny, nx = values.shape
    hy, hx = max(np.abs(dy).max(), 1), max(np.abs(dx).max(), 1)
    # padded planes: finite values (else 0) and their weights (outside: value 0, weight 1)
    vals = np.zeros((ny + 2 * hy, nx + 2 * hx), np.float64)
    good = np.ones((ny + 2 * hy, nx + 2 * hx), np.float64)
    total = np.empty((ny, nx), np.float64)
    weight = np.empty((ny, nx), np.float64)
    out = np.empty(values.shape, np.float64)
    for k in range(n):
        for r in range(ny):
            for c in range(nx):
                v = values[k, r, c]
                ok = np.isfinite(v)
                vals[r + hy, c + hx] = v if ok else 0.0
                good[r + hy, c + hx] = 1.0 if ok else 0.0
        total[:] = 0.0
        weight[:] = 0.0
        for j in range(dy.size):  # ring cells in raster order: each pixel's sums in that order
            oy, ox, w = hy + dy[j], hx + dx[j], weights[j]
            for r in range(ny):
                for c in range(nx):
                    total[r, c] += vals[r + oy, c + ox] * w
                    weight[r, c] += good[r + oy, c + ox] * w
        for r in range(ny):
            for c in range(nx):
                ok = good[r + hy, c + hx] != 0.0 and weight[r, c] > floor
                out[k, r, c] = total[r, c] / weight[r, c] if ok else np.nan
    return out


def _nanmedian_first(stack: np.ndarray) -> np.ndarray:
    """(ny, nx) median over axis 0 of (n, ny, nx) float32 ``stack``, NaNs left out.

    As ``numpy.nanmedian`` (float32 arithmetic: the mean of the two middle values
    for an even count; NaN where every value is NaN), but by one pixel-major sort
    (NaNs sort last) instead of its masked-array path, which is several times slower.
    """
    n = stack.shape[0]
    pixels = np.sort(np.ascontiguousarray(stack.reshape(n, -1).T, dtype=np.float32), axis=1)
    count = n - np.isnan(pixels).sum(axis=1)
    hi = np.take_along_axis(pixels, np.minimum(count // 2, n - 1)[:, None], axis=1)[:, 0]
    lo = np.take_along_axis(pixels, np.maximum((count - 1) // 2, 0)[:, None], axis=1)[:, 0]
    median = np.where(count % 2 == 1, hi, (lo + hi) / np.float32(2.0))
    median[count == 0] = np.nan
    return median.astype(np.float32).reshape(stack.shape[1:])


def plane_ellipses(code: np.ndarray, min_area: float) -> tuple[np.ndarray, bool]:
    """Moment ellipses of the extended-emission regions of one whole plane.

    Parameters
    ----------
    code
        (..., ny, nx) uint8 output of :func:`extended_emission` for ONE
        (integration, group) plane (leading dims of size 1 allowed).
    min_area
        ``extend_min_area``, pixels (hole-filled area).

    Returns
    -------
    ellipses : numpy.ndarray
        (k, 5) float64 rows ``row, col, minor, major, angle`` (see :data:`TABLE_COLUMNS`).
    all_dnu : bool
        Whether the group is DO_NOT_USE on every pixel of the plane.
    """
    plane = code.reshape(code.shape[-2:])
    found = regions((plane & EXTENDED) != 0, min_area)
    rows = np.array([tuple(e) for e in found], dtype=np.float64).reshape(-1, 5)
    return rows, bool(np.all(plane & GROUP_DNU))


def shower_table(planes: list[tuple[int, int, np.ndarray, bool]], nint: int, ngroup: int) -> np.ndarray:
    """Gather :func:`plane_ellipses` results into a (k, 7) table (:data:`TABLE_COLUMNS`).

    ``planes`` holds ``(integration, group, ellipses, all_dnu)``. Like jwst, no
    showers are flagged when the exposure has fewer than
    :data:`MIN_DIFFS_FOR_SHOWERS` differences once the groups that are
    DO_NOT_USE on every pixel are discounted.
    """
    n_dnu = sum(all_dnu for _, _, _, all_dnu in planes)
    rows = [np.column_stack([np.full(len(e), i), np.full(len(e), g), e]) for i, g, e, _ in planes if len(e)]
    if nint * (ngroup - 1) - n_dnu < MIN_DIFFS_FOR_SHOWERS or not rows:
        return np.zeros((0, len(TABLE_COLUMNS)), np.float64)
    return np.concatenate(rows).astype(np.float64)


def flagged_axes(minor: float, major: float, ratio: float, max_width: float) -> tuple[float, float]:
    """Full axes (along columns at angle 0, along rows) drawn for a shower, pixels.

    The minor axis is scaled by ``ratio`` and the major axis grown by the same
    number of pixels (so elongated events do not become huge); each is capped
    at ``max_width`` and rounded to an even number (a whole radius).
    """
    if major < minor:
        a1, a2 = minor + (ratio - 1.0) * major, major * ratio
    else:
        a1, a2 = minor * ratio, major + (ratio - 1.0) * minor
    return 2 * round(min(a1, max_width) / 2), 2 * round(min(a2, max_width) / 2)


def flag_showers(
    sci: np.ndarray,
    groupdq: np.ndarray,
    gain: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    *,
    table: np.ndarray,
    y_origin: int,
    x_origin: int,
    ngroups_masked: int,
    expand_ratio: float,
    max_width: float,
    max_amplitude: float,
    amplitude_in_electrons: bool,
    do_not_use: int = 1,
    saturated: int = 2,
    jump_det: int = 4,
) -> JumpResult:
    """Flag the showers of ``table`` that reach this tile (step 3 of shower flagging).

    Parameters
    ----------
    sci
        (nint, ngroup, ny, nx) float32 ramps, DN.
    groupdq
        (nint, ngroup, ny, nx) uint8 group DQ after two-point detection.
    gain
        (ny, nx) float32 gain, e⁻/DN.
    y, x
        1-D int full-frame pixel indices of the tile's rows and columns.
    table
        (k, 7) float64 shower table of the whole exposure (:func:`shower_table`).
    y_origin, x_origin
        Full-frame indices of the exposure's first row and column.
    ngroups_masked
        Groups flagged after the one where the shower is seen.
    expand_ratio, max_width
        ``extend_ellipse_expand_ratio`` and the cap on full axes (pixels).
    max_amplitude
        Largest change of a pixel's mean group difference the flags may cause,
        per group: e⁻ if ``amplitude_in_electrons`` else DN.
    do_not_use, saturated, jump_det
        DQ bit values.

    Returns
    -------
    JumpResult
    """
    out = groupdq.copy()
    nint, ngroup, ny, nx = out.shape
    row0, col0 = int(y[0]) - y_origin, int(x[0]) - x_origin
    touched = np.zeros(nint, dtype=bool)
    for i, g, r, c, minor, major, angle in table:
        i, g = int(i), int(g)
        a1, a2 = flagged_axes(minor, major, expand_ratio, max_width)
        reach = max(a1, a2) / 2 + 2
        if r + reach < row0 or r - reach > row0 + ny or c + reach < col0 or c - reach > col0 + nx:
            continue
        rs, cs, mask = draw((ny, nx), Ellipse(r - row0, c - col0, minor, major, angle), a1, a2)
        if not mask.any():
            continue
        touched[i] = True
        keep = mask.copy()
        for fg in range(g, min(g + ngroups_masked + 1, ngroup)):
            window = out[i, fg, rs, cs]
            keep &= (window & saturated) == 0  # a pixel saturated once stays unflagged after
            window[keep] |= np.uint8(jump_det)
    bad = do_not_use | saturated | jump_det
    scale = gain.astype(np.float32) if amplitude_in_electrons else np.float32(1.0)
    for i in np.flatnonzero(touched):
        data = sci[i].astype(np.float32) * scale
        before, after = _mean_diff(data, groupdq[i] & bad), _mean_diff(data, out[i] & bad)
        with np.errstate(invalid="ignore"):
            change = np.abs(before - after)
            revert = ~np.isfinite(change) | (change > max_amplitude)
        out[i][:, revert] = groupdq[i][:, revert]
    return JumpResult(out)


def _mean_diff(data: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """(ny, nx) mean first difference of (ngroup, ny, nx) ``data`` without ``flagged`` groups."""
    masked = np.where(flagged != 0, np.float32(np.nan), data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.diff(masked, axis=0), axis=0)
