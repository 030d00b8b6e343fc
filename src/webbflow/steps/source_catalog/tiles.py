"""What one output tile's task does: detect and measure on the tile plus its halo.

A *window* is a tile's core ``[y0, y1) × [x0, x1)`` grown by ``halo`` pixels on
each side (clipped at the mosaic's edges). The window is segmented
(:mod:`~webbflow.steps.source_catalog.segment`) and measured
(:mod:`~webbflow.steps.source_catalog.measure`); a source is kept only by the tile
whose core holds the pixel nearest its centroid, so every source is reported
once. Sources whose segment stays farther than the detection kernel radius from
the window's inner edges are found, cut and measured exactly as in the whole
mosaic: this holds for any source (and sky annulus) smaller than the halo.
Larger ones are measured on their truncated segment and counted in
``n_truncated``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from webbflow.steps.source_catalog.apcorr import ApertureParams
from webbflow.steps.source_catalog.background import Mesh
from webbflow.steps.source_catalog.measure import (
    aperture_fluxes,
    dao_sharp_round,
    segment_catalog,
    segment_columns,
)
from webbflow.steps.source_catalog.segment import Detection, DetectParams, coverage, detect, kernel_radius

#: Centroids of the same source in two windows agree far better than this, pixels.
MATCH_TOLERANCE = 1e-3


class Window(NamedTuple):
    """Where a window and its tile's core sit in the mosaic (0-based pixels, ends exclusive)."""

    wy0: int
    wx0: int
    y0: int
    y1: int
    x0: int
    x1: int
    ny: int  # mosaic shape
    nx: int


def _detect(
    sci: np.ndarray, err: np.ndarray, wht: np.ndarray | None, mesh: Mesh, win: Window, params: DetectParams
) -> Detection:
    covered = coverage(sci, err, wht)
    bkg, rms = mesh.evaluate(win.wy0, win.wx0, sci.shape)
    return detect(sci, covered, bkg, rms, params)


def _owned(cols: dict[str, np.ndarray], win: Window) -> np.ndarray:
    """Sources whose centroid's nearest pixel is in the core (absolute coordinates)."""
    with np.errstate(invalid="ignore"):
        iy = np.floor(cols["ycentroid"] + 0.5)
        ix = np.floor(cols["xcentroid"] + 0.5)
        return (iy >= win.y0) & (iy < win.y1) & (ix >= win.x0) & (ix < win.x1)


def tile_sources(
    sci: np.ndarray,
    err: np.ndarray,
    wht: np.ndarray | None,
    mesh: Mesh,
    win: Window,
    params: DetectParams,
    apertures: ApertureParams,
    to_jy: float,
) -> dict[str, np.ndarray]:
    """Catalogue rows of the sources owned by one tile.

    Parameters
    ----------
    sci, err : numpy.ndarray, shape (wy, wx), float32, MJy/sr
        The window's data and 1σ error.
    wht : numpy.ndarray, shape (wy, wx), float32, optional
        Drizzle weight (0 = no data).
    mesh : Mesh
        Global background (MJy/sr).
    win : Window
    params : DetectParams
    apertures : ApertureParams
    to_jy : float
        Jy per (MJy/sr) in one pixel: ``1e6 × PIXAR_SR``.

    Returns
    -------
    dict of str to numpy.ndarray, each shape (n,)
        Centroids and bounding boxes in absolute mosaic pixels, fluxes in Jy, the
        segment shape (pixels, degrees), ``aper_flux``/``aper_flux_err`` (n, k),
        ``aper_bkg_flux(_err)`` (Jy per pixel), ``sharpness``, ``roundness``,
        ``truncated`` (bool).
    """
    det = _detect(sci, err, wht, mesh, win, params)
    err_jy = err.astype(np.float64) * to_jy
    cat = segment_catalog(det, to_jy, err_jy)
    if cat is None:
        return {}
    cols = segment_columns(cat)
    for name in ("xcentroid", "bbox_xmin", "bbox_xmax"):
        cols[name] = cols[name] + win.wx0
    for name in ("ycentroid", "bbox_ymin", "bbox_ymax"):
        cols[name] = cols[name] + win.wy0
    keep = _owned(cols, win)
    cols = {k: v[keep] for k, v in cols.items()}
    wy, wx = sci.shape
    margin = kernel_radius(params.kernel_fwhm)
    cols["truncated"] = (
        ((cols["bbox_xmin"] - win.wx0 < margin) & (win.wx0 > 0))
        | ((win.wx0 + wx - 1 - cols["bbox_xmax"] < margin) & (win.wx0 + wx < win.nx))
        | ((cols["bbox_ymin"] - win.wy0 < margin) & (win.wy0 > 0))
        | ((win.wy0 + wy - 1 - cols["bbox_ymax"] < margin) & (win.wy0 + wy < win.ny))
    )
    x, y = cols["xcentroid"] - win.wx0, cols["ycentroid"] - win.wy0
    finite = np.isfinite(x) & np.isfinite(y)
    xs, ys = np.where(finite, x, -1e4), np.where(finite, y, -1e4)  # off the data: NaN fluxes
    sci_jy = np.where(det.covered, sci.astype(np.float64) * to_jy, 0.0)
    phot = aperture_fluxes(
        sci_jy, err_jy, det.covered, xs, ys, apertures.radii, apertures.bkg_inner, apertures.bkg_outer
    )
    cols["aper_flux"] = np.where(finite[:, None], phot.flux, np.nan)
    cols["aper_flux_err"] = np.where(finite[:, None], phot.flux_err, np.nan)
    cols["aper_bkg_flux"], cols["aper_bkg_flux_err"] = phot.bkg, phot.bkg_err
    cols["sharpness"], cols["roundness"] = dao_sharp_round(sci_jy, xs, ys, params.kernel_fwhm)
    return cols


def tile_segmentation(
    sci: np.ndarray,
    err: np.ndarray,
    wht: np.ndarray | None,
    mesh: Mesh,
    win: Window,
    params: DetectParams,
    to_jy: float,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """The tile's core of the segmentation map, labelled with the catalogue's labels.

    The window is segmented again (the same deterministic computation as
    :func:`tile_sources`); each local segment touching the core takes the label of
    the catalogue source at its centroid (within :data:`MATCH_TOLERANCE` pixels).
    Segments with no such source (pieces of sources larger than the halo) are 0.

    Parameters
    ----------
    reference : (x, y, label)
        Catalogue centroids (absolute pixels, float64) and labels (int).

    Returns
    -------
    numpy.ndarray, shape (y1 - y0, x1 - x0), int32
    """
    core = (slice(win.y0 - win.wy0, win.y1 - win.wy0), slice(win.x0 - win.wx0, win.x1 - win.wx0))
    det = _detect(sci, err, wht, mesh, win, params)
    local = det.segm[core]
    out = np.zeros(local.shape, np.int32)
    if not local.any():
        return out
    cat = segment_catalog(det, to_jy, err.astype(np.float64) * to_jy)
    if cat is None:
        return out
    wanted = np.unique(local[local > 0])
    cat = cat.select_labels(wanted) if hasattr(cat, "select_labels") else cat
    labels = np.atleast_1d(np.asarray(cat.label, np.int64))
    x = np.atleast_1d(np.asarray(cat.x_centroid_win, np.float64)) + win.wx0
    y = np.atleast_1d(np.asarray(cat.y_centroid_win, np.float64)) + win.wy0
    rx, ry, rlabel = reference
    near = (rx >= win.wx0 - 1) & (rx <= win.wx0 + sci.shape[1]) & (ry >= win.wy0 - 1)
    near &= ry <= win.wy0 + sci.shape[0]
    lut = np.zeros(int(det.segm.max()) + 1, np.int32)
    if near.any():
        tree = cKDTree(np.column_stack([rx[near], ry[near]]))
        ok = np.isfinite(x) & np.isfinite(y)
        dist, idx = tree.query(np.column_stack([np.where(ok, x, -1e9), np.where(ok, y, -1e9)]))
        hit = ok & (dist <= MATCH_TOLERANCE)
        lut[labels[hit]] = np.asarray(rlabel)[near][idx[hit]]
    return lut[local]
