"""Sky differences between overlapping exposures on a coarse sky grid, and the offsets that match them.

jwst's ``match`` writes, for every pair of overlapping images, "the sky in the overlap is the
same in both" and solves the system by least squares. Here the overlap is sampled by blocks:

1. each exposure is cut into ``block``×``block`` pixel blocks; a block's sky is its
   sigma-clipped median (:func:`~webbflow.steps.skymatch.kernel.block_medians`, per tile) and its
   position the sky coordinates of its centre (the exposure's gwcs);
2. for a pair of exposures, each block of the first is paired with the nearest block centre of
   the second when that is closer than one block (on the sky); the pair's sky difference is the
   3-sigma-clipped mean of the block differences, weighted by the number of block pairs;
3. ``s_i - s_j = d_ij`` for every pair is solved by weighted least squares
   (:func:`numpy.linalg.lstsq`), one connected set of exposures at a time; in each set the lowest
   (``match_down``) or highest offset is then set to zero.

Cal data are surface brightness (MJy/sr): equal skies have equal values whatever the pixel
area, so no pixel-area scaling is applied between exposures (as jwst, which also works in the
data's units; exposures with different pixel scales still compare correctly for MJy/sr).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np
from astropy.stats import sigma_clipped_stats
from gwcs import WCS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

log = logging.getLogger("webbflow")

#: Fewest block pairs for a pair of exposures to give an equation.
MIN_BLOCK_PAIRS: Final = 3


class BlockSky(NamedTuple):
    """Block skies of one exposure (or group): values and where they are on the sky."""

    sky: np.ndarray  # (n,) float64, MJy/sr
    xyz: np.ndarray  # (n, 3) float64, unit vectors of the block centres (ICRS)
    radius: float  # rad, pairing distance: one block


class PairDifference(NamedTuple):
    """``sky_i - sky_j`` (MJy/sr) in the overlap of exposures (groups) ``i`` < ``j``."""

    i: int
    j: int
    delta: float
    weight: float  # number of block pairs
    scatter: float  # clipped std of the block differences, MJy/sr


def block_centres(ny: int, nx: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel ``(x, y)`` centres of the blocks of a (ny, nx) array, shape (nby, nbx).

    A partial block at the far edge is centred on the pixels it covers.
    """

    def centres(n: int) -> np.ndarray:
        start = np.arange(0, n, block)
        stop = np.minimum(start + block, n)
        return 0.5 * (start + stop - 1)

    x, y = np.meshgrid(centres(nx), centres(ny))
    return x, y


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors of (ra, dec) in degrees."""
    a, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)


def pixel_scale(wcs: WCS, ny: int, nx: int) -> float:
    """Mean pixel side at the array centre, radians (from the WCS's local Jacobian)."""
    cx, cy = 0.5 * (nx - 1), 0.5 * (ny - 1)
    ra, dec = wcs(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0]), with_bounding_box=False)
    v = unit_vectors(np.asarray(ra), np.asarray(dec))
    return float(np.sqrt(np.linalg.norm(np.cross(v[1] - v[0], v[2] - v[0]))))


def block_sky(medians: np.ndarray, wcs: WCS, ny: int, nx: int, block: int) -> BlockSky:
    """The finite block skies of an exposure with their sky positions.

    Parameters
    ----------
    medians : ndarray, shape (nby, nbx, 2)
        :func:`~webbflow.steps.skymatch.kernel.block_medians` of the whole array.
    wcs
        0-based pixel (x, y) of the array → (ra, dec) deg.
    ny, nx, block
        Array shape and block side, px.
    """
    x, y = block_centres(ny, nx, block)
    good = np.isfinite(medians[..., 0])
    ra, dec = wcs(x[good], y[good], with_bounding_box=False)
    xyz = unit_vectors(np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64))
    finite = np.all(np.isfinite(xyz), axis=1)
    return BlockSky(medians[..., 0][good][finite], xyz[finite], block * pixel_scale(wcs, ny, nx))


def merge_blocks(parts: Sequence[BlockSky]) -> BlockSky:
    """The blocks of several exposures taken as one (a jwst exposure group: one sky)."""
    return BlockSky(
        np.concatenate([p.sky for p in parts]),
        np.concatenate([p.xyz for p in parts]),
        max(p.radius for p in parts),
    )


def pair_differences(blocks: Sequence[BlockSky], sigma: float = 3.0) -> list[PairDifference]:
    """Sky differences of every overlapping pair, from their nearest blocks.

    Returns
    -------
    list of PairDifference, for the pairs with at least :data:`MIN_BLOCK_PAIRS` block pairs.
    """
    trees = [cKDTree(b.xyz) if len(b.sky) else None for b in blocks]
    pairs = []
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            tree = trees[j]
            if tree is None or len(blocks[i].sky) == 0:
                continue
            radius = max(blocks[i].radius, blocks[j].radius)
            dist, k = tree.query(blocks[i].xyz, distance_upper_bound=radius)
            hit = np.isfinite(dist)
            if np.count_nonzero(hit) < MIN_BLOCK_PAIRS:
                continue
            diff = blocks[i].sky[hit] - blocks[j].sky[k[hit]]
            mean, _, std = sigma_clipped_stats(diff, sigma=sigma, maxiters=10)
            pairs.append(PairDifference(i, j, float(mean), float(np.count_nonzero(hit)), float(std)))
    return pairs


def solve_offsets(pairs: Sequence[PairDifference], n: int, *, match_down: bool = True) -> np.ndarray:
    """Per-exposure sky offsets that best satisfy ``s_i - s_j = delta_ij`` (weighted least squares).

    Each connected set of exposures is solved alone; in each set the lowest (``match_down``) or
    highest offset is zero. Exposures in no pair get NaN.

    Returns
    -------
    ndarray, shape (n,), float64, MJy/sr
    """
    offsets = np.full(n, np.nan)
    if not pairs:
        return offsets
    i = np.array([p.i for p in pairs])
    j = np.array([p.j for p in pairs])
    graph = coo_matrix((np.ones(len(pairs)), (i, j)), shape=(n, n))
    ncomp, label = connected_components(graph, directed=False)
    linked = np.zeros(n, bool)
    linked[i] = linked[j] = True
    components = [np.flatnonzero((label == c) & linked) for c in range(ncomp)]
    components = [c for c in components if c.size > 1]
    if len(components) > 1:
        log.warning(
            "skymatch: the exposures form %d separate overlapping sets; each is matched alone",
            len(components),
        )
    for members in components:
        index = {int(m): k for k, m in enumerate(members)}
        rows = [p for p in pairs if p.i in index]
        design = np.zeros((len(rows), members.size))
        w = np.sqrt([p.weight for p in rows])
        for r, p in enumerate(rows):
            design[r, index[p.i]], design[r, index[p.j]] = w[r], -w[r]
        rhs = w * np.array([p.delta for p in rows])
        solution = np.linalg.lstsq(design, rhs, rcond=None)[0]
        offsets[members] = solution - (solution.min() if match_down else solution.max())
    return offsets
