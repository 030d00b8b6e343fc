"""Per-tile sky reductions for :mod:`webbflow.steps.skymatch` (pure numpy; one tile, no dask).

Every function takes one tile of ``sci`` (float32, MJy/sr) and ``dq`` (uint32) and returns a
small array that the caller merges over tiles (sums, minima, maxima, concatenations), so the
sky statistic of an exposure never needs the exposure in one chunk. A pixel is used when its
value is finite, ``dq & bad_bits == 0`` and, after subtracting ``offset``, it lies in the
closed clipping range ``[lo, hi]``. Inputs are never modified.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: Fields of :func:`tile_moments`' result, in order.
MOMENT_FIELDS: Final = ("n", "mean", "m2", "min", "max")


def usable(sci: np.ndarray, dq: np.ndarray, bad_bits: int, offset: float, lo: float, hi: float) -> np.ndarray:
    """``sci - offset`` of the usable pixels of a tile, as a flat float64 array.

    Parameters
    ----------
    sci : ndarray, shape (ny, nx), float32, MJy/sr
    dq : ndarray, shape (ny, nx), uint32
    bad_bits
        DQ bits that make a pixel unusable (0: DQ ignored).
    offset
        Level subtracted from the data before the range test, MJy/sr.
    lo, hi
        Closed range of usable values (after subtracting ``offset``), MJy/sr.
    """
    data = np.asarray(sci, dtype=np.float64) - offset
    good = np.isfinite(data) & (data >= lo) & (data <= hi)
    if bad_bits:
        good &= (np.asarray(dq) & np.uint32(bad_bits)) == 0
    return data[good]


def tile_moments(
    sci: np.ndarray, dq: np.ndarray, *, bad_bits: int, offset: float, lo: float, hi: float
) -> np.ndarray:
    """Count, mean, sum of squared deviations, min and max of a tile's usable pixels.

    Returns
    -------
    ndarray, shape (5,), float64
        ``(n, mean, m2, min, max)`` (see :data:`MOMENT_FIELDS`); an empty tile gives
        ``(0, 0, 0, +inf, -inf)``. Tiles combine with :func:`merge_moments`.
    """
    values = usable(sci, dq, bad_bits, offset, lo, hi)
    if values.size == 0:
        return np.array([0.0, 0.0, 0.0, np.inf, -np.inf])
    mean = values.mean()
    return np.array(
        [values.size, mean, np.sum((values - mean) ** 2), values.min(), values.max()], dtype=np.float64
    )


def merge_moments(parts: np.ndarray) -> np.ndarray:
    """Combine :func:`tile_moments` rows ``(..., 5)`` into one ``(5,)`` (Chan et al. 1979).

    The pairwise update is exact and stable, so the result does not depend on the tiling
    beyond float64 rounding.
    """
    rows = np.asarray(parts, dtype=np.float64).reshape(-1, 5)
    rows = rows[rows[:, 0] > 0]
    if rows.shape[0] == 0:
        return np.array([0.0, 0.0, 0.0, np.inf, -np.inf])
    n = rows[:, 0].sum()
    mean = np.sum(rows[:, 0] * rows[:, 1]) / n
    m2 = np.sum(rows[:, 2]) + np.sum(rows[:, 0] * (rows[:, 1] - mean) ** 2)
    return np.array([n, mean, m2, rows[:, 3].min(), rows[:, 4].max()])


def tile_histogram(
    sci: np.ndarray,
    dq: np.ndarray,
    *,
    bad_bits: int,
    offset: float,
    lo: float,
    hi: float,
    start: float,
    width: float,
    nbins: int,
) -> np.ndarray:
    """Counts of a tile's usable pixels in ``nbins`` bins ``[start + k width, start + (k+1) width)``.

    Values past the last bin edge (rounding at the top of the range) go to the last bin, values
    below ``start`` are not counted.

    Returns
    -------
    ndarray, shape (nbins,), int64
    """
    values = usable(sci, dq, bad_bits, offset, lo, hi)
    index = np.floor((values - start) / width)
    index = index[index >= 0]
    index = np.minimum(index, nbins - 1).astype(np.int64)
    return np.bincount(index, minlength=nbins).astype(np.int64)


def tile_values(
    sci: np.ndarray, dq: np.ndarray, *, bad_bits: int, offset: float, lo: float, hi: float
) -> np.ndarray:
    """The usable values of a tile (used on narrow ranges only, to finish an exact median).

    Returns
    -------
    ndarray, shape (n,), float64, MJy/sr
    """
    return usable(sci, dq, bad_bits, offset, lo, hi)


def block_medians(
    sci: np.ndarray,
    dq: np.ndarray,
    *,
    bad_bits: int,
    block: int,
    nclip: int,
    sigma: float,
    min_fraction: float,
) -> np.ndarray:
    """Sigma-clipped median and count of every ``block``×``block`` block of a tile.

    The tile must start on the block grid (the caller tiles the exposure in multiples of
    ``block``); a partial block at the tile's far edge covers the pixels that exist. Clipping
    is ``nclip`` rounds of ``|value - median| <= sigma * 1.4826 * MAD``, vectorised over blocks.

    Parameters
    ----------
    sci : ndarray, shape (ny, nx), float32, MJy/sr
    dq : ndarray, shape (ny, nx), uint32
    bad_bits
        DQ bits that make a pixel unusable.
    block
        Block side, px.
    nclip, sigma
        Clipping rounds and half-width in robust sigma.
    min_fraction
        Blocks with fewer usable pixels than this fraction of their pixels are NaN.

    Returns
    -------
    ndarray, shape (nby, nbx, 2), float64
        ``[..., 0]`` the clipped median (MJy/sr, NaN when too few pixels),
        ``[..., 1]`` the number of pixels it used.
    """
    ny, nx = sci.shape
    nby, nbx = -(-ny // block), -(-nx // block)
    data = np.full((nby * block, nbx * block), np.nan)
    good = np.isfinite(sci)
    if bad_bits:
        good &= (np.asarray(dq) & np.uint32(bad_bits)) == 0
    data[:ny, :nx] = np.where(good, sci, np.nan)
    cube = data.reshape(nby, block, nbx, block).transpose(0, 2, 1, 3).reshape(nby, nbx, block * block)
    for _ in range(nclip):
        med = _nanmedian_last(cube)[..., None]
        mad = _nanmedian_last(np.abs(cube - med))[..., None]
        with np.errstate(invalid="ignore"):
            keep = np.abs(cube - med) <= sigma * 1.4826 * mad
        cube = np.where(keep, cube, np.nan)
    count = np.sum(np.isfinite(cube), axis=-1)
    med = _nanmedian_last(cube)
    present = (
        np.minimum(block, ny - block * np.arange(nby))[:, None]
        * np.minimum(block, nx - block * np.arange(nbx))[None, :]
    )  # pixels of each block inside the array (edge blocks may be partial)
    med = np.where(count >= min_fraction * present, med, np.nan)
    return np.stack([med, count.astype(np.float64)], axis=-1)


def bin_edges(a: float, b: float, nbins: int) -> np.ndarray:
    """``nbins + 1`` equal bin edges from ``a`` to exactly ``b``, float64."""
    edges = a + (b - a) * np.arange(nbins + 1, dtype=np.float64) / nbins
    edges[-1] = b
    return edges


def tile_rank_window(
    sci: np.ndarray,
    dq: np.ndarray,
    *,
    bad_bits: int,
    offset: float,
    lo: float,
    hi: float,
    a: float,
    b: float,
    nbins: int = 0,
) -> tuple[int, np.ndarray]:
    """What a tile holds of a window ``[a, b]`` of its usable values, to locate a rank exactly.

    Returns
    -------
    below : int
        Number of usable values ``< a``.
    window : ndarray
        ``nbins == 0``: the usable values in ``[a, b]`` (float64, MJy/sr). Otherwise their
        counts (int64, shape (nbins,)) in the bins ``[e_k, e_k+1)`` of :func:`bin_edges`
        (the last bin closed); a value is in bin k exactly when ``e_k <= value``.
    """
    values = usable(sci, dq, bad_bits, offset, lo, hi)
    below = int(np.count_nonzero(values < a))
    inside = values[(values >= a) & (values <= b)]
    if nbins == 0:
        return below, inside
    index = np.searchsorted(bin_edges(a, b, nbins), inside, side="right") - 1
    return below, np.bincount(np.clip(index, 0, nbins - 1), minlength=nbins).astype(np.int64)


def _nanmedian_last(cube: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where all are NaN); one sort, no Python loop.

    (``numpy.nanmedian`` loops over the blocks in Python when they hold NaNs.)
    """
    ordered = np.sort(cube, axis=-1)  # NaNs sort last
    n = np.sum(np.isfinite(cube), axis=-1)
    lo = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(ordered, (n // 2)[..., None], axis=-1)[..., 0]
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)
