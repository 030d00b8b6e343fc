"""Render catalog sources into a tile of a count-rate image and its segmentation map.

Each function adds sources to ``rate`` (e⁻/s per pixel) and marks
``segmap`` in place, for the tile whose first pixel is full-frame ``(y0, x0)``.
Every source's image is a function of the source alone, computed on its own
stamp (centred on the source's nearest pixel, sized from its flux or profile)
and only the overlap with the tile is added; contributions to a pixel are
summed in a fixed order. So a region rendered whole or as any set of tiles
gives bit-identical ``rate`` and ``segmap``.

The segmentation map takes a source's ``index`` where the source's own
contribution is at least ``threshold`` e⁻/s; a later source in a call
overwrites an earlier one, as does a later call (the caller renders extended
sources, then galaxies, then points, so points win).

Coordinates are 0-based full-frame pixels with pixel centres at integers, ``x``
along columns (axis -1) and ``y`` along rows. Angles are counter-clockwise from
+x towards +y.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage, signal, special

from webbflow.errors import UsageError
from webbflow.sim.psf import PSF

#: Fraction of a Sérsic profile's flux inside its stamp (before the size cap).
SERSIC_ENCLOSED: Final = 0.995
#: Largest Sérsic stamp half-width, pixels.
SERSIC_MAX_RADIUS: Final = 400
#: Default largest pixel value a point-source stamp may leave out, e⁻/s.
POINT_FLOOR: Final = 1e-3
_BATCH: Final = 1 << 20  # stamp pixels evaluated at once by render_points
_CUSP: Final = 0.25  # pixels: semi-major axis of the central ellipse integrated by flux quantiles
_CUSP_POINTS: Final = 96  # radii and angles of that integration (96² points)


def render_points(
    rate: np.ndarray,
    segmap: np.ndarray,
    y0: int,
    x0: int,
    x: ArrayLike,
    y: ArrayLike,
    flux: ArrayLike,
    index: ArrayLike,
    psf: PSF,
    threshold: float,
    *,
    floor: float = POINT_FLOOR,
) -> None:
    """Add point sources, the ePSF read at each pixel centre by cubic spline.

    Parameters
    ----------
    rate : numpy.ndarray, shape (ny, nx), float64
        Count-rate tile, e⁻/s; updated in place.
    segmap : numpy.ndarray, shape (ny, nx), int32
        Segmentation tile; updated in place.
    y0, x0 : int
        Full-frame row and column of the tile's first pixel.
    x, y : array_like, shape (n,), float64
        Source positions, full-frame pixels.
    flux : array_like, shape (n,), float64
        Total source count rates, e⁻/s (the stamps hold ``flux * psf.enclosed`` at most).
    index : array_like, shape (n,), int
        Segmentation-map values of the sources.
    psf : PSF
        Effective PSF.
    threshold : float
        Segmentation threshold, e⁻/s per pixel.
    floor : float
        Stamps grow with flux until no pixel left out would exceed ``floor`` e⁻/s
        (up to the PSF's field of view).
    """
    xs, ys, fl, idx = _columns(rate, segmap, x, y, flux, index)
    ny, nx = rate.shape
    radius = psf.radius_for(fl, floor)
    cx = np.floor(xs + 0.5).astype(np.int64)
    cy = np.floor(ys + 0.5).astype(np.int64)
    keep = (cx + radius >= x0) & (cx - radius < x0 + nx) & (cy + radius >= y0) & (cy - radius < y0 + ny)
    keep &= fl != 0
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        return
    flat_rate = rate.reshape(-1)  # views: _columns checked that the tile is C-contiguous
    flat_seg = segmap.reshape(-1)
    # Batches of about _BATCH stamp pixels bound the memory; every pixel's contributions are still
    # added one by one in catalog order (np.add.at is sequential), whatever the batches and the tile.
    cum = np.cumsum((2 * radius[kept] + 1) ** 2)
    cuts = np.unique(np.searchsorted(cum, np.arange(_BATCH, cum[-1], _BATCH))) + 1
    for batch in np.split(kept, cuts[cuts < kept.size]):
        src, col, row = _stamp_pixels(cx[batch], cy[batch], radius[batch])
        src, col, row = batch[src], col - x0, row - y0
        inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        src, col, row = src[inside], col[inside], row[inside]
        # Offsets from full-frame integers, so a pixel's value never depends on the tile origin.
        values = psf.evaluate((col + x0) - xs[src], (row + y0) - ys[src]) * fl[src]
        pix = row * nx + col
        np.add.at(flat_rate, pix, values)
        bright = values >= threshold
        if bright.any():
            # The last source (in catalog order) above threshold wins each pixel.
            pb, sb = pix[bright], src[bright]
            order = np.lexsort((sb, pb))
            pb, sb = pb[order], sb[order]
            last = np.append(pb[1:] != pb[:-1], True)
            flat_seg[pb[last]] = idx[sb[last]]


def _stamp_pixels(
    cx: np.ndarray, cy: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pixel of square stamps of half-widths ``radius`` about ``(cx, cy)``, source by source.

    Returns
    -------
    (src, col, row) : tuple of numpy.ndarray, shape (sum((2 radius + 1)²),), int64
        Position of the source in the inputs, and full-frame column and row of each pixel.
    """
    width = 2 * radius + 1
    counts = width**2
    src = np.repeat(np.arange(cx.size), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # index within the stamp
    w = width[src]
    return src, cx[src] + k % w - radius[src], cy[src] + k // w - radius[src]


def sersic_radius(r_eff_px: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Semi-major axis of a Sérsic stamp, pixels: the radius holding :data:`SERSIC_ENCLOSED` of
    the light, rounded up plus one, capped at :data:`SERSIC_MAX_RADIUS`.

    Parameters
    ----------
    r_eff_px, n : array_like, float64
        Half-light radius (pixels) and Sérsic index.
    """
    re, sersic_n = np.asarray(r_eff_px, np.float64), np.asarray(n, np.float64)
    b_n = special.gammaincinv(2.0 * sersic_n, 0.5)
    r_out = re * (special.gammaincinv(2.0 * sersic_n, SERSIC_ENCLOSED) / b_n) ** sersic_n
    return np.minimum(np.ceil(r_out) + 1, SERSIC_MAX_RADIUS)


def render_sersic(
    rate: np.ndarray,
    segmap: np.ndarray,
    y0: int,
    x0: int,
    x: ArrayLike,
    y: ArrayLike,
    flux: ArrayLike,
    r_eff_px: ArrayLike,
    ellipticity: ArrayLike,
    theta_deg: ArrayLike,
    n: ArrayLike,
    index: ArrayLike,
    psf: PSF | None,
    threshold: float,
) -> None:
    """Add Sérsic galaxies, pixel-integrated and convolved with the detector-sampled PSF.

    Parameters
    ----------
    rate, segmap, y0, x0
        The tile, as in :func:`render_points`.
    x, y : array_like, shape (n,), float64
        Galaxy centres, full-frame pixels.
    flux : array_like, shape (n,), float64
        Total count rates of the (untruncated) profiles, e⁻/s. A stamp holds
        the profile out to the radius enclosing :data:`SERSIC_ENCLOSED` of it
        (capped at :data:`SERSIC_MAX_RADIUS`), so it sums to slightly less;
        after the PSF, to that times about ``psf.enclosed``.
    r_eff_px : array_like, shape (n,), float64
        Half-light radius along the major axis, pixels.
    ellipticity : array_like, shape (n,), float64
        ``1 - b/a``, in ``[0, 1)``.
    theta_deg : array_like, shape (n,), float64
        Angle of the major axis, degrees counter-clockwise from +x towards +y.
    n : array_like, shape (n,), float64
        Sérsic indices, in ``[0.2, 10]``.
    index : array_like, shape (n,), int
        Segmentation-map values.
    psf : PSF or None
        Effective PSF to convolve with (``None``: no convolution).
    threshold : float
        Segmentation threshold, e⁻/s per pixel.
    """
    xs, ys, fl, idx = _columns(rate, segmap, x, y, flux, index)
    re, ell, theta, sersic_n = (
        _column(v, xs.size, name)
        for v, name in (
            (r_eff_px, "r_eff_px"),
            (ellipticity, "ellipticity"),
            (theta_deg, "theta_deg"),
            (n, "n"),
        )
    )
    bad = ~((re > 0) & (ell >= 0) & (ell < 1) & (sersic_n >= 0.2) & (sersic_n <= 10) & np.isfinite(theta))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UsageError(
            f"Sérsic source index {idx[i]}: need r_eff_px > 0, 0 <= ellipticity < 1, 0.2 <= n <= 10; "
            f"got {re[i]}, {ell[i]}, {sersic_n[i]}"
        )
    kernel = psf.stamp(0.0, 0.0, psf.max_radius) if psf is not None else None
    pad = psf.max_radius if psf is not None else 0
    b_n = special.gammaincinv(2.0 * sersic_n, 0.5)
    r_out = sersic_radius(re, sersic_n)
    t = np.deg2rad(theta)
    q = 1.0 - ell
    # Half-extents of the ellipse (semi-axes r_out, q * r_out) along x and y.
    hx = np.ceil(r_out * np.hypot(np.cos(t), q * np.sin(t))).astype(np.int64)
    hy = np.ceil(r_out * np.hypot(np.sin(t), q * np.cos(t))).astype(np.int64)
    cx = np.floor(xs + 0.5).astype(np.int64)
    cy = np.floor(ys + 0.5).astype(np.int64)
    ny, nx = rate.shape
    keep = (
        (cx + hx + pad >= x0) & (cx - hx - pad < x0 + nx) & (cy + hy + pad >= y0) & (cy - hy - pad < y0 + ny)
    )
    keep &= fl != 0
    for k in np.flatnonzero(keep):  # one stamp per galaxy, vectorized inside
        image = _sersic_stamp(
            xs[k] - cx[k],
            ys[k] - cy[k],
            int(hx[k]),
            int(hy[k]),
            fl[k],
            re[k],
            q[k],
            t[k],
            sersic_n[k],
            b_n[k],
        )
        if kernel is not None:
            image = signal.fftconvolve(image, kernel, mode="full")
        _add_stamp(rate, segmap, y0, x0, image, cy[k] - hy[k] - pad, cx[k] - hx[k] - pad, idx[k], threshold)


def render_stamps(
    rate: np.ndarray,
    segmap: np.ndarray,
    y0: int,
    x0: int,
    x: ArrayLike,
    y: ArrayLike,
    images: Sequence[np.ndarray],
    flux: ArrayLike,
    angle_deg: ArrayLike,
    index: ArrayLike,
    psf: PSF | None,
    threshold: float,
) -> None:
    """Add extended sources given as images, rotated, shifted and optionally PSF-convolved.

    Parameters
    ----------
    rate, segmap, y0, x0
        The tile, as in :func:`render_points`.
    x, y : array_like, shape (n,), float64
        Where each image's centre (``((h - 1) / 2, (w - 1) / 2)``) lands, full-frame pixels.
    images : sequence of numpy.ndarray, each shape (h, w)
        Source images, e⁻/s per pixel when ``flux`` is NaN.
    flux : array_like, shape (n,), float64
        Total count rate each image is scaled to after resampling, e⁻/s; NaN
        keeps the image's values (per pixel; rotation preserves them).
    angle_deg : array_like, shape (n,), float64
        Rotation of each image, degrees counter-clockwise from +x towards +y
        (NaN: none).
    index : array_like, shape (n,), int
        Segmentation-map values.
    psf : PSF or None
        Effective PSF to convolve with (``None``: no convolution).
    threshold : float
        Segmentation threshold, e⁻/s per pixel.

    Notes
    -----
    Rotation and the sub-pixel shift are one bilinear resampling
    (``scipy.ndimage.affine_transform``, order 1, zero outside the image).
    """
    if len(images) != np.size(x):
        raise UsageError(f"render_stamps: {len(images)} images for {np.size(x)} positions")
    xs, ys, fl, idx = _columns(rate, segmap, x, y, flux, index, allow_nan_flux=True)
    angle = np.nan_to_num(_column(angle_deg, xs.size, "angle_deg"), nan=0.0)
    kernel = psf.stamp(0.0, 0.0, psf.max_radius) if psf is not None else None
    pad = psf.max_radius if psf is not None else 0
    ny, nx = rate.shape
    for k, img in enumerate(images):
        img = np.asarray(img, dtype=np.float64)
        if img.ndim != 2 or img.size == 0:
            raise UsageError(
                f"render_stamps: image of source index {idx[k]} must be 2-D, got shape {img.shape}"
            )
        cos, sin = np.cos(np.deg2rad(angle[k])), np.sin(np.deg2rad(angle[k]))
        h, w = img.shape
        half_x = 0.5 * (abs(cos) * w + abs(sin) * h) + 1
        half_y = 0.5 * (abs(sin) * w + abs(cos) * h) + 1
        sx0, sx1 = int(np.floor(xs[k] - half_x)), int(np.ceil(xs[k] + half_x))
        sy0, sy1 = int(np.floor(ys[k] - half_y)), int(np.ceil(ys[k] + half_y))
        if sx1 + pad < x0 or sx0 - pad >= x0 + nx or sy1 + pad < y0 or sy0 - pad >= y0 + ny:
            continue
        # Output pixel (row, col) of the stamp -> input (row, col): the inverse rotation about the centre.
        matrix = np.array([[cos, -sin], [sin, cos]])
        start = np.array([sy0 - ys[k], sx0 - xs[k]])
        offset = np.array([(h - 1) / 2.0, (w - 1) / 2.0]) + matrix @ start
        image = ndimage.affine_transform(
            img,
            matrix,
            offset=offset,
            output_shape=(sy1 - sy0 + 1, sx1 - sx0 + 1),
            order=1,
            mode="grid-constant",
        )
        if np.isfinite(fl[k]):
            total = image.sum()
            if total == 0:
                raise UsageError(
                    f"render_stamps: image of source index {idx[k]} sums to 0; cannot scale to flux"
                )
            image *= fl[k] / total
        if kernel is not None:
            image = signal.fftconvolve(image, kernel, mode="full")
        _add_stamp(rate, segmap, y0, x0, image, sy0 - pad, sx0 - pad, idx[k], threshold)


def _sersic_stamp(
    fx: float, fy: float, hx: int, hy: int, flux: float, re: float, q: float, theta: float, n: float, b: float
) -> np.ndarray:
    """Pixel-integrated Sérsic profile, shape (2 hy + 1, 2 hx + 1), e⁻/s; centre at (hy + fy, hx + fx).

    Midpoint sums on sub-pixel grids, finer in the central pixels; the cusp inside the ellipse of
    semi-major axis :data:`_CUSP` pixels is placed by flux quantiles instead (exact for any ``n``).
    """
    # I(r) = amp * exp(-b (r / re)^(1/n)) integrates to `flux` over the plane.
    log_norm = np.log(2.0 * np.pi * n * q * re**2) + special.gammaln(2.0 * n) - 2.0 * n * np.log(b)
    amp = flux * np.exp(-log_norm)
    cos, sin = np.cos(theta), np.sin(theta)

    def mean_profile(off_x: np.ndarray, off_y: np.ndarray, sub: int, hole: float) -> np.ndarray:
        # Mean over sub x sub points in each pixel (centre offsets given), skipping radii < hole;
        # in blocks of rows of about 2**20 points to bound the memory.
        t = (np.arange(sub) + 0.5) / sub - 0.5
        px = (off_x[:, None] + t[None, :]).ravel() - fx
        out = np.empty((off_y.size, off_x.size))
        step = max(1, (1 << 20) // (px.size * sub))
        for start in range(0, off_y.size, step):
            py = (off_y[start : start + step, None] + t[None, :]).ravel() - fy
            r2 = (px[None, :] * cos + py[:, None] * sin) ** 2 + (
                (py[:, None] * cos - px[None, :] * sin) / q
            ) ** 2
            prof = amp * np.exp(-b * (r2 / re**2) ** (0.5 / n))
            if hole > 0:
                prof[r2 < hole**2] = 0.0
            out[start : start + step] = prof.reshape(-1, sub, off_x.size, sub).mean(axis=(1, 3))
        return out

    # Nested zones, each overwriting the last. Beyond ~3 re the profile's e-folding length is at least
    # `scale`: enough points that the midpoint rule errs by < 0.2 %. Within 3 re, enough to resolve the
    # minor-axis scale; in the central 5 x 5 pixels, more.
    scale = q * n * re / b * 3.0 ** (1.0 - 1.0 / n)
    outer = int(min(np.ceil(1.0 / (scale * np.sqrt(24 * 0.002))), 5)) | 1
    image = mean_profile(np.arange(-hx, hx + 1.0), np.arange(-hy, hy + 1.0), outer, 0.0)
    mid_x, mid_y = min(hx, int(np.ceil(3 * re)) + 2), min(hy, int(np.ceil(3 * re)) + 2)
    sub = int(min(max(3, np.ceil(10.0 / (q * re))), 31)) | 1
    mid = mean_profile(np.arange(-mid_x, mid_x + 1.0), np.arange(-mid_y, mid_y + 1.0), sub, 0.0)
    image[hy - mid_y : hy + mid_y + 1, hx - mid_x : hx + mid_x + 1] = mid
    core = min(2, hx, hy)
    ax = np.arange(-core, core + 1.0)
    image[hy - core : hy + core + 1, hx - core : hx + core + 1] = mean_profile(
        ax, ax, min(4 * sub, 101) | 1, _CUSP
    )
    # The cusp: points at equal flux steps in radius and equal angles, each binned into its pixel.
    inner = special.gammainc(2.0 * n, b * (_CUSP / re) ** (1.0 / n))
    steps = (np.arange(_CUSP_POINTS) + 0.5) / _CUSP_POINTS
    rad = re * (special.gammaincinv(2.0 * n, inner * steps) / b) ** n
    phi = 2.0 * np.pi * steps
    major = (rad[:, None] * np.cos(phi)[None, :]).ravel()
    minor = (q * rad[:, None] * np.sin(phi)[None, :]).ravel()
    col = np.floor(hx + fx + major * cos - minor * sin + 0.5).astype(np.int64)
    row = np.floor(hy + fy + major * sin + minor * cos + 0.5).astype(np.int64)
    image += np.bincount(row * image.shape[1] + col, minlength=image.size).reshape(image.shape) * (
        flux * inner / _CUSP_POINTS**2
    )
    return image


def _add_stamp(
    rate: np.ndarray,
    segmap: np.ndarray,
    y0: int,
    x0: int,
    image: np.ndarray,
    sy0: int,
    sx0: int,
    index: int,
    threshold: float,
) -> None:
    """Add the overlap of a stamp whose first pixel is full-frame (sy0, sx0) to the tile."""
    ny, nx = rate.shape
    r0, r1 = max(sy0, y0), min(sy0 + image.shape[0], y0 + ny)
    c0, c1 = max(sx0, x0), min(sx0 + image.shape[1], x0 + nx)
    if r0 >= r1 or c0 >= c1:
        return
    part = image[r0 - sy0 : r1 - sy0, c0 - sx0 : c1 - sx0]
    rate[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0] += part
    segmap[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0][part >= threshold] = index


def _columns(
    rate: np.ndarray,
    segmap: np.ndarray,
    x: ArrayLike,
    y: ArrayLike,
    flux: ArrayLike,
    index: ArrayLike,
    *,
    allow_nan_flux: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check the tile and the common source columns; return x, y, flux (float64) and index (int64)."""
    if rate.ndim != 2 or rate.dtype != np.float64:
        raise UsageError(f"rate must be a 2-D float64 array, got {rate.dtype} shape {rate.shape}")
    if segmap.shape != rate.shape or segmap.dtype != np.int32:
        raise UsageError(
            f"segmap must be int32 of shape {rate.shape}, got {segmap.dtype} shape {segmap.shape}"
        )
    if not (rate.flags.c_contiguous and segmap.flags.c_contiguous):
        raise UsageError("rate and segmap must be C-contiguous arrays (updated in place)")
    xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
    ys = _column(y, xs.size, "y")
    fl = _column(flux, xs.size, "flux")
    idx = np.atleast_1d(np.asarray(index)).astype(np.int64)
    if idx.shape != xs.shape:
        raise UsageError(f"index has {idx.size} values for {xs.size} sources")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        k = int(np.flatnonzero(~(np.isfinite(xs) & np.isfinite(ys)))[0])
        raise UsageError(f"source index {idx[k]} has a non-finite position ({xs[k]}, {ys[k]})")
    bad = ~np.isfinite(fl) & ~(allow_nan_flux & np.isnan(fl))
    if bad.any():
        raise UsageError(f"source index {idx[bad][0]} has a non-finite flux {fl[bad][0]}")
    return xs, ys, fl, idx


def _column(values: ArrayLike, size: int, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.shape != (size,):
        raise UsageError(f"{name} has {arr.size} values for {size} sources")
    return arr
