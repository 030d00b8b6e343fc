"""Large-event ("snowball") expansion of jump flags on one tile (numpy + scipy.ndimage).

Following the jump step documentation of the JWST calibration software: in
each group, 8-connected regions of JUMP_DET pixels with a (hole-filled) area
of at least ``min_jump_area`` are described by their moment ellipse (centroid,
axis lengths from the inertia tensor, orientation). A region is a snowball if
it is near the array edge (``edge_size``) or, with ``sat_required_snowball``,
if the centroid of a region newly saturated in this or the next group (area
``>= min_sat_area``) lies inside its ellipse (without it, every region is a
snowball). Saturated cores with minor axis above ``min_sat_radius_extend`` are
grown by ``sat_expand`` pixels and flagged SATURATED in this and all later
groups (and, with ``mask_snowball_core_next_int``, JUMP_DET in the first groups
of the next integration). Each snowball's ellipse, enlarged by
``expand_factor``, is flagged JUMP_DET in its group where not saturated.

The ellipses are drawn with the pixel rule of scikit-image's ``draw.ellipse``
(centre rounded to a pixel; pixels whose normalised distance is below 1),
which is what jwst uses, so results match jwst pixel for pixel on all but
rounding ties.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage

from webbflow.steps.jump.kernel import JumpResult, detect_jumps

_EIGHT = np.ones((3, 3), dtype=bool)
#: Smallest 8-connected region that can enclose a hole (a ring around one pixel).
_MIN_HOLED_AREA = 8


class Ellipse(NamedTuple):
    """A region's moment ellipse, in array coordinates (row/col, pixels; angle, degrees)."""

    row: float
    col: float
    minor: float  # full axis length minus one, as jwst uses it
    major: float
    angle: float


def regions(
    mask: np.ndarray, min_area: float, keep: Callable[[float, float, float], bool] | None = None
) -> list[Ellipse]:
    """Moment ellipses of the 8-connected regions of ``mask`` with filled area ``>= min_area``.

    ``keep(row, col, reach)``, if given, is asked about each region's centroid
    first (``reach``: an upper bound of the ellipse's semi-major axis, twice
    the diagonal of the region's box); regions it rejects are skipped.
    """
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    areas = np.bincount(labels.ravel())
    out = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or (areas[index] < min_area and areas[index] < _MIN_HOLED_AREA):
            continue
        image = labels[box] == index
        if areas[index] < min_area and ndimage.binary_fill_holes(image, _EIGHT).sum() < min_area:
            continue
        rr, cc = np.nonzero(image)
        r0 = float((rr + box[0].start).mean())
        c0 = float((cc + box[1].start).mean())
        # semi-major axis < 2·sqrt(l1) <= 2 · (largest offset from the centroid)
        reach = 2 * math.hypot(image.shape[0], image.shape[1])
        if keep is not None and not keep(r0, c0, reach):
            continue
        a, b, c = _inertia(image)
        l1, l2 = sorted(np.clip(np.linalg.eigvalsh(np.array([[a, b], [b, c]])), 0, None))[::-1]
        if a - c == 0:
            orientation = math.pi / 4 if b < 0 else -math.pi / 4
        else:
            orientation = 0.5 * math.atan2(-2 * b, c - a)
        out.append(
            Ellipse(r0, c0, 4 * math.sqrt(l2) - 1, 4 * math.sqrt(l1) - 1, float(np.degrees(orientation)))
        )
    return out


def _inertia(image: np.ndarray) -> tuple[float, float, float]:
    """Inertia tensor ``(a, b, c)`` = ``[[a, b], [b, c]]`` of a boolean region image.

    Computed through tensor contractions of the pixel grid with powers of the
    offsets (order-3 moments), the way scikit-image's ``regionprops`` does, so
    that orientations agree to the last bit (ellipse edges are decided by ties).
    """
    img = image.astype(float)

    def moments(center: tuple[float, float]) -> np.ndarray:
        orders = np.arange(4, dtype=float)
        p0 = (np.arange(img.shape[0], dtype=float) - center[0])[:, None] ** orders
        p1 = (np.arange(img.shape[1], dtype=float) - center[1])[:, None] ** orders
        m = np.einsum(img, [2, 1], p0, [2, 3], [3, 1], optimize="greedy")
        return np.einsum(m, [0, 2], p1, [2, 3], [0, 3], optimize="greedy")

    raw = moments((0.0, 0.0))
    mu = moments((raw[1, 0] / raw[0, 0], raw[0, 1] / raw[0, 0]))
    total = np.sum([mu[2, 0], mu[0, 2]])
    a = (total - mu[2, 0]) / mu[0, 0]
    c = (total - mu[0, 2]) / mu[0, 0]
    b = -mu[1, 1] / mu[0, 0]
    return float(a), float(b), float(c)


def contains(e: Ellipse, row: float, col: float) -> bool:
    """Whether (row, col) lies inside ellipse ``e`` (jwst's point-in-ellipse convention)."""
    angle = math.radians(180 - e.angle)
    dx, dy = col - e.col, row - e.row
    xt = dx * math.cos(angle) - dy * math.sin(angle)
    yt = dx * math.sin(angle) + dy * math.cos(angle)
    semi_major = max(e.minor, e.major) * 0.5
    semi_minor = min(e.minor, e.major) * 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.float64(xt) ** 2 / np.float64(semi_major) ** 2 + np.float64(yt) ** 2 / (
            np.float64(semi_minor) ** 2
        )
    return bool(value <= 1)


def draw(shape: tuple[int, int], e: Ellipse, axis1: float, axis2: float) -> tuple[slice, slice, np.ndarray]:
    """Pixels of an ellipse of full axes ``axis1`` (along columns at angle 0) and ``axis2``.

    Returns the (row, col) window and a boolean mask of the pixels inside it.
    """
    rc, cc = int(np.round(e.row)), int(np.round(e.col))
    c_rad, r_rad = float(np.round(axis1 / 2)), float(np.round(axis2 / 2))
    half = int(max(c_rad, r_rad)) + 2
    r1, r2 = max(rc - half, 0), min(rc + half + 1, shape[0])
    c1, c2 = max(cc - half, 0), min(cc + half + 1, shape[1])
    mask = np.zeros((max(r2 - r1, 0), max(c2 - c1, 0)), dtype=bool)
    if c_rad == 0 or r_rad == 0 or mask.size == 0:
        return slice(r1, r2), slice(c1, c2), mask
    rot = np.radians(e.angle) % np.pi
    sin, cos = float(np.sin(rot)), float(np.cos(rot))
    # the bounding box rule of scikit-image's ellipse drawing (it matters for odd radii)
    ext_r = abs(r_rad * cos) + c_rad * sin
    ext_c = r_rad * sin + abs(c_rad * cos)
    lr0 = max(math.ceil(rc - r1 - ext_r), 0)
    lr1 = min(math.floor(rc - r1 + ext_r), mask.shape[0] - 1)
    lc0 = max(math.ceil(cc - c1 - ext_c), 0)
    lc1 = min(math.floor(cc - c1 + ext_c), mask.shape[1] - 1)
    if lr1 < lr0 or lc1 < lc0:
        return slice(r1, r2), slice(c1, c2), mask
    dr = np.arange(lr0, lr1 + 1, dtype=float)[:, None] - (rc - r1)
    dc = np.arange(lc0, lc1 + 1, dtype=float)[None, :] - (cc - c1)
    dist = ((dr * cos + dc * sin) / r_rad) ** 2 + ((dr * sin - dc * cos) / c_rad) ** 2
    mask[lr0 : lr1 + 1, lc0 : lc1 + 1] = dist < 1
    return slice(r1, r2), slice(c1, c2), mask


def expand_snowballs(
    gdq: np.ndarray,
    row0: int,
    col0: int,
    nrows: int,
    *,
    min_sat_area: float,
    min_jump_area: float,
    expand_factor: float,
    sat_required_snowball: bool,
    min_sat_radius_extend: float,
    sat_expand: int,
    edge_size: int,
    max_extended_radius: int,
    persist_groups: int,
    saturated: int,
    jump_det: int,
) -> np.ndarray:
    """Snowball expansion of a (nint, ngroup, ny, nx) uint8 group DQ; returns a new array.

    ``row0``/``col0`` place the tile in the exposure array and ``nrows`` is the
    exposure's row count (jwst's edge test uses it for both axes). ``sat_expand``
    is the step parameter (pixels per radius; full axes grow by twice it).
    ``persist_groups`` groups at the start of the next integration get the
    saturated cores (0: off).
    """
    out = gdq.copy()
    nint, ngroup, ny, nx = out.shape
    width = 2 * max_extended_radius
    low, high = edge_size, max(0, nrows - edge_size)
    persist = np.zeros((nint, ny, nx), dtype=bool)

    def near_edge(row: float, col: float) -> bool:
        """jwst's edge test, on exposure-array coordinates (rows bound both axes)."""
        r, c = row + row0, col + col0
        return c < low or r < low or c > high or r > high

    for i in range(nint):
        for g in range(1, ngroup):
            sat = out[i, :, :, :] & saturated != 0
            new_sat = sat[g] & ~sat[g - 1]
            cores = regions(new_sat, min_sat_area)
            next_cores = regions(sat[g + 1] & ~sat[g], min_sat_area) if g < ngroup - 1 else []

            centres = [(s.row, s.col) for s in (*cores, *next_cores)]

            def candidate(row: float, col: float, reach: float) -> bool:
                """Near the edge, or some core centroid within reach (skips far regions)."""
                return near_edge(row, col) or any(
                    math.hypot(r - row, c - col) <= reach + 1
                    for r, c in centres  # noqa: B023
                )

            keep = candidate if sat_required_snowball else None
            jumps = regions(out[i, g] & jump_det != 0, min_jump_area, keep)
            if sat_required_snowball:
                balls = []
                for e in jumps:
                    if near_edge(e.row, e.col) or any(
                        contains(e, s.row, s.col) for s in (*cores, *next_cores)
                    ):
                        balls.append(e)
                for s in cores:
                    if min(s.minor, s.major) <= min_sat_radius_extend:
                        continue
                    a1 = min(s.minor + 2 * sat_expand, width)
                    a2 = min(s.major + 2 * sat_expand, width)
                    rs, cs, m = draw((ny, nx), s, a1, a2)
                    out[i, g:, rs, cs][:, m] = saturated
                    rs, cs, m = draw((ny, nx), s, s.minor, s.major)
                    persist[i, rs, cs] |= m
            else:
                balls = jumps
            for e in balls:
                if e.major < e.minor:
                    a1 = e.minor + (expand_factor - 1.0) * e.major
                    a2 = e.major * expand_factor
                else:
                    a1 = e.minor * expand_factor
                    a2 = e.major + (expand_factor - 1.0) * e.minor
                a1 = 2 * np.round(min(a1, width) / 2)
                a2 = 2 * np.round(min(a2, width) / 2)
                rs, cs, m = draw((ny, nx), e, a1, a2)
                plane = out[i, g, rs, cs]
                plane[m & (plane & saturated == 0)] |= jump_det
    last = min(persist_groups, ngroup)
    if last >= 1:
        for i in range(1, nint):
            out[i, 1:last] |= (persist[i - 1] * np.uint8(jump_det)).astype(np.uint8)
    return out


def detect_jumps_and_snowballs(
    sci: np.ndarray,
    groupdq: np.ndarray,
    gain: np.ndarray,
    readnoise: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    median_gain: np.ndarray | float = 1.0,
    *,
    y_origin: int,
    x_origin: int,
    nrows: int,
    snowballs: dict[str, Any],
    **detect: Any,
) -> JumpResult:
    """:func:`~webbflow.steps.jump.kernel.detect_jumps` then :func:`expand_snowballs`.

    ``y``/``x`` are the tile's full-frame pixel indices, ``y_origin``/``x_origin``
    those of the exposure's first pixel and ``nrows`` its row count; ``snowballs``
    holds the keyword arguments of :func:`expand_snowballs` (DQ bits excluded).
    """
    flagged = detect_jumps(sci, groupdq, gain, readnoise, median_gain, **detect).groupdq
    expanded = expand_snowballs(
        flagged,
        int(y[0]) - y_origin,
        int(x[0]) - x_origin,
        nrows,
        saturated=detect.get("saturated", 2),
        jump_det=detect.get("jump_det", 4),
        **snowballs,
    )
    return JumpResult(expanded)
