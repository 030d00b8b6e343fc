"""The mosaic's large-scale background: a global box mesh, evaluated anywhere by position.

As jwst's source_catalog (photutils ``Background2D`` with ``MedianBackground``,
3σ clipping and a 3×3 median filter of the mesh), but two-phase so that it never
needs the whole mosaic in one chunk and does not depend on the tiling:

1. :func:`box_statistics` on each box of a fixed grid anchored at pixel (0, 0)
   (``bkg_boxsize`` pixels, the boxes stretched to tile the mosaic exactly): the
   sigma-clipped median and standard deviation of its covered pixels. Boxes with
   less than :data:`MIN_COVERED` covered pixels take the median of the others.
2. :func:`make_mesh` median-filters the (small) mesh; :meth:`Mesh.evaluate`
   interpolates it bilinearly between box centres (constant beyond the outer
   centres) at absolute pixel positions, element by element, so a pixel's value
   is the same in every window that contains it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
from astropy.stats import SigmaClip
from astropy.utils.exceptions import AstropyUserWarning
from photutils.background import MedianBackground, StdBackgroundRMS
from scipy import ndimage

from webbflow.errors import InputError

#: Smallest fraction of covered pixels for a box to be measured.
MIN_COVERED: Final = 0.1
_CLIP: Final = SigmaClip(sigma=3.0, maxiters=10)


def box_edges(n: int, boxsize: int) -> np.ndarray:
    """Edges of the near-equal boxes tiling ``n`` pixels with about ``boxsize`` each.

    Returns
    -------
    numpy.ndarray, shape (nbox + 1,), int64
        ``0 = e[0] < e[1] < … < e[nbox] = n``.
    """
    nbox = max(1, round(n / max(int(boxsize), 1)))
    return np.round(np.linspace(0, n, nbox + 1)).astype(np.int64)


def box_statistics(sci: np.ndarray, covered: np.ndarray) -> tuple[float, float]:
    """Sigma-clipped ``(median, rms)`` of the covered pixels of one box, NaN if too few.

    Parameters
    ----------
    sci : numpy.ndarray, shape (ny, nx), float
        Surface brightness of the box (any unit).
    covered : numpy.ndarray, shape (ny, nx), bool
        Pixels with data.
    """
    values = sci[covered & np.isfinite(sci)]
    if values.size < max(MIN_COVERED * sci.size, 3):
        return np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        median = float(MedianBackground(sigma_clip=_CLIP).calc_background(values))
        rms = float(StdBackgroundRMS(sigma_clip=_CLIP).calc_background_rms(values))
    return median, rms


@dataclass(frozen=True)
class Mesh:
    """The filtered background mesh and where its boxes are.

    Attributes
    ----------
    bkg, rms : numpy.ndarray, shape (nby, nbx), float64
        Background level and noise per box, the unit of the data.
    ycen, xcen : numpy.ndarray, shape (nby,), (nbx,), float64
        Box centres, 0-based mosaic pixels.
    """

    bkg: np.ndarray
    rms: np.ndarray
    ycen: np.ndarray
    xcen: np.ndarray

    def evaluate(self, y0: int, x0: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Background and rms on the pixels ``[y0, y0 + ny) × [x0, x0 + nx)`` (float64)."""
        wy = _weights(self.ycen, np.arange(y0, y0 + shape[0], dtype=np.float64))
        wx = _weights(self.xcen, np.arange(x0, x0 + shape[1], dtype=np.float64))
        return _bilinear(self.bkg, wy, wx), _bilinear(self.rms, wy, wx)


def make_mesh(stats: np.ndarray, yedges: np.ndarray, xedges: np.ndarray, filter_size: int = 3) -> Mesh:
    """The :class:`Mesh` from per-box ``stats`` (shape (nby, nbx, 2): median, rms).

    Raises
    ------
    InputError
        No box has enough covered pixels.
    """
    stats = np.asarray(stats, dtype=np.float64)
    good = np.isfinite(stats).all(axis=-1)
    if not good.any():
        raise InputError("source_catalog: no background box has covered pixels (all sci NaN or wht 0?)")
    filled = np.where(good[..., None], stats, np.median(stats[good], axis=0))
    size = (min(filter_size, filled.shape[0]), min(filter_size, filled.shape[1]))
    bkg = ndimage.median_filter(filled[..., 0], size=size, mode="nearest")
    rms = ndimage.median_filter(filled[..., 1], size=size, mode="nearest")
    ycen = (yedges[:-1] + yedges[1:] - 1) / 2.0
    xcen = (xedges[:-1] + xedges[1:] - 1) / 2.0
    return Mesh(bkg, rms, ycen, xcen)


def _weights(centres: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower box index and the weight of the upper one for linear interpolation at ``pos``."""
    if centres.size == 1:
        return np.zeros(pos.size, np.int64), np.zeros(pos.size)
    p = np.clip(pos, centres[0], centres[-1])
    i = np.clip(np.searchsorted(centres, p, side="right") - 1, 0, centres.size - 2)
    t = (p - centres[i]) / (centres[i + 1] - centres[i])
    return i, t


def _bilinear(
    mesh: np.ndarray, wy: tuple[np.ndarray, np.ndarray], wx: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    (iy, ty), (ix, tx) = wy, wx
    # Pad a singleton axis so that i + 1 is valid; its weight is 0.
    m = np.pad(mesh, ((0, 1 if mesh.shape[0] == 1 else 0), (0, 1 if mesh.shape[1] == 1 else 0)), mode="edge")
    iy, ix, ty, tx = iy[:, None], ix[None, :], ty[:, None], tx[None, :]
    top = m[iy, ix] * (1.0 - tx) + m[iy, ix + 1] * tx
    bottom = m[iy + 1, ix] * (1.0 - tx) + m[iy + 1, ix + 1] * tx
    return np.asarray(top * (1.0 - ty) + bottom * ty)
