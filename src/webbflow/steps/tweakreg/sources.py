"""Point-source lists of an exposure for tweakreg, found tile by tile.

Each ``(y, x)`` tile of the exposure is read with a halo of :data:`HALO` pixels from its
neighbours (clipped at the array edge), so a star near a tile edge is measured on complete
data. On the tile + halo the kernel estimates a 2-D background (photutils ``Background2D``,
sigma-clipped median in boxes of ``bkg_boxsize``, at most the tile), subtracts it, and runs
the chosen finder (``IRAFStarFinder``, ``DAOStarFinder`` or segmentation + centroids) with a
threshold of ``snr_threshold`` × the background rms (the tile's median rms for the star
finders, per pixel for segmentation), ``DO_NOT_USE``/``NON_SCIENCE`` pixels masked. A source
is kept only by the tile whose core holds its centroid, so the concatenated list has each
star once. jwst estimates one background over the whole image; here the background and the
star finders' scalar threshold are per tile, which is the same for a uniform sky.

The lists are small (at most ``brightest`` rows per tile and per exposure) and are computed
eagerly: one ``dask.compute`` over every tile of every exposure, each task holding one tile
plus its halo, never a whole exposure.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import dask
import numpy as np
import xarray as xr
from astropy.convolution import Gaussian2DKernel, convolve
from astropy.stats import SigmaClip, gaussian_fwhm_to_sigma, sigma_clipped_stats
from astropy.table import Table

from webbflow import dq as dqflags
from webbflow.model import tile_size

#: Halo around each tile, px: covers the finders' kernels and a PSF core many times over.
HALO: Final = 24

#: Columns of a source list (and their dtypes): 0-based pixel position in the exposure's
#: array (not the full-frame coordinate), background-subtracted flux (sum, data units), peak,
#: and the centroid's weight (1 / variance, px^-2; 1 unless ``refine_centroids``).
COLUMNS: Final = (
    ("x", np.float64),
    ("y", np.float64),
    ("flux", np.float64),
    ("peak", np.float64),
    ("weight", np.float64),
)
_DTYPE: Final = np.dtype(list(COLUMNS))

_CENTROID_FLOOR: Final = 0.01  # px

StarFinder = Literal["iraf", "dao", "segmentation"]


@dataclass(frozen=True)
class FinderSettings:
    """Source-finding settings (jwst tweakreg parameter names and meanings)."""

    starfinder: StarFinder = "iraf"
    snr_threshold: float = 10.0
    kernel_fwhm: float = 2.5
    bkg_boxsize: int = 400
    minsep_fwhm: float = 0.0
    sigma_radius: float = 1.5
    sharplo: float = 0.5
    sharphi: float = 2.0
    roundlo: float = 0.0
    roundhi: float = 0.2
    brightest: int | None = 200
    peakmax: float | None = None
    npixels: int = 10
    connectivity: int = 8
    nlevels: int = 32
    contrast: float = 0.001
    deblend: bool = True
    refine_centroids: bool = False
    bad_bits: int = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE


def find_tile_sources(
    sci: np.ndarray,
    err: np.ndarray,
    dq: np.ndarray,
    *,
    core: tuple[int, int, int, int],
    origin: tuple[int, int],
    settings: FinderSettings,
) -> np.ndarray:
    """Point sources whose centroid lies in the tile's core.

    Parameters
    ----------
    sci, err : ndarray, shape (ny, nx), float32
        Science and error arrays of the tile plus its halo (any units, the same for both).
    dq : ndarray, shape (ny, nx), uint32
        JWST DQ bits; pixels with any of ``settings.bad_bits`` are masked.
    core : (y0, y1, x0, x1)
        The tile's own pixels inside these arrays (half-open, 0-based).
    origin : (oy, ox)
        Position of ``sci[0, 0]`` in the exposure's array, px: added to the centroids.
    settings
        Finder settings.

    Returns
    -------
    ndarray, structured (:data:`COLUMNS`)
        One row per source, brightest first, at most ``settings.brightest`` rows.
    """
    mask = ((dq & settings.bad_bits) != 0) | ~np.isfinite(sci)
    if mask.all():
        return np.empty(0, _DTYPE)
    data = np.where(mask, 0.0, sci).astype(np.float64)
    background, rms = _background(data, mask, settings.bkg_boxsize)
    if not np.isfinite(rms).any() or np.nanmedian(rms) <= 0:
        return np.empty(0, _DTYPE)
    data = np.where(mask, 0.0, data - background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no sources found", NaN-masking notices
        if settings.starfinder == "segmentation":
            rows = _segmentation(data, np.where(mask, np.inf, err), mask, rms, settings)
        else:
            rows = _star_finder(data, mask, float(np.nanmedian(rms)), settings)
    if rows.size == 0:
        return rows
    if settings.refine_centroids:
        rows = _refine(data, mask, rows, settings.kernel_fwhm)
        rows["weight"] = centroid_weight(rows["flux"], float(np.nanmedian(rms)), settings.kernel_fwhm)
    # keep a source only in the tile whose core holds its centroid (pixel centres are integers)
    iy = np.floor(rows["y"] + 0.5)
    ix = np.floor(rows["x"] + 0.5)
    y0, y1, x0, x1 = core
    rows = rows[(iy >= y0) & (iy < y1) & (ix >= x0) & (ix < x1)]
    rows = rows[np.argsort(-rows["flux"], kind="stable")][: settings.brightest]
    rows["y"] += origin[0]
    rows["x"] += origin[1]
    return rows


def _background(data: np.ndarray, mask: np.ndarray, boxsize: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D background and its rms (photutils ``Background2D``), or flat sigma-clipped values."""
    from photutils.background import Background2D, MedianBackground

    box = (min(boxsize, data.shape[0]), min(boxsize, data.shape[1]))
    try:
        bkg = Background2D(
            data,
            box,
            coverage_mask=mask,
            filter_size=(3, 3),
            sigma_clip=SigmaClip(sigma=3.0),
            bkg_estimator=MedianBackground(),
        )
        return np.asarray(bkg.background), np.asarray(bkg.background_rms)
    except ValueError:  # too few good pixels in every box: one value for the tile
        _, median, std = sigma_clipped_stats(data[~mask], sigma=3.0)
        return np.full(data.shape, median), np.full(data.shape, std)


def _star_finder(data: np.ndarray, mask: np.ndarray, rms: float, s: FinderSettings) -> np.ndarray:
    from photutils.detection import DAOStarFinder, IRAFStarFinder

    finder_class = DAOStarFinder if s.starfinder == "dao" else IRAFStarFinder
    finder = finder_class(
        s.snr_threshold * rms,
        s.kernel_fwhm,
        sigma_radius=s.sigma_radius,
        min_separation=max(2, int(s.minsep_fwhm * s.kernel_fwhm + 0.5)),
        sharpness_range=(s.sharplo, s.sharphi),
        roundness_range=(s.roundlo, s.roundhi),
        peak_max=s.peakmax,
    )
    table = finder(data, mask=mask)
    if table is None or len(table) == 0:
        return np.empty(0, _DTYPE)
    return _rows(table, "x_centroid", "y_centroid", "flux", "peak")


def _segmentation(
    data: np.ndarray, err: np.ndarray, mask: np.ndarray, rms: np.ndarray, s: FinderSettings
) -> np.ndarray:
    from photutils.segmentation import SourceCatalog, SourceFinder

    sigma = s.kernel_fwhm * gaussian_fwhm_to_sigma
    convolved = convolve(data, Gaussian2DKernel(sigma), mask=mask) if s.kernel_fwhm > 0 else data
    finder = SourceFinder(
        s.npixels,
        connectivity=s.connectivity,
        deblend=s.deblend,
        n_levels=s.nlevels,
        contrast=s.contrast,
        progress_bar=False,
    )
    segm = finder(convolved, s.snr_threshold * rms, mask=mask)
    if segm is None:
        return np.empty(0, _DTYPE)
    cat = SourceCatalog(data, segm, convolved_data=convolved, error=err, mask=mask)
    table = cat.to_table(columns=["x_centroid", "y_centroid", "segment_flux", "max_value"])
    rows = _rows(table, "x_centroid", "y_centroid", "segment_flux", "max_value")
    if s.peakmax is not None:
        rows = rows[rows["peak"] < s.peakmax]
    return rows


def windowed_centroids(
    data: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: float, iterations: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-windowed centroids (SExtractor's XWIN/YWIN), all sources at once.

    The window of width ``sigma`` follows the centroid, ``c <- c + 2 (<r w I> / <w I> - c)``,
    until it moves by less than 1e-4 px. On a PSF with a Gaussian-like core this is nearly
    free of the pixel-phase bias of plain moments (the simulator defines a source's position
    the same way).

    Parameters
    ----------
    data : ndarray, shape (ny, nx), float
        Background-subtracted image.
    mask : ndarray, shape (ny, nx), bool
        Pixels to ignore.
    x, y : ndarray, shape (n,), float64
        Starting centroids, px (0-based).
    sigma
        Window width, px.

    Returns
    -------
    x, y : ndarray, shape (n,), float64
        The centroids; NaN where the window's flux is not positive.
    """
    r = int(np.ceil(3.0 * sigma)) + 1
    offsets = np.arange(-r, r + 1)
    cy, cx = np.round(y).astype(np.intp), np.round(x).astype(np.intp)
    yy = cy[:, None, None] + offsets[None, :, None]  # (n, b, 1)
    xx = cx[:, None, None] + offsets[None, None, :]  # (n, 1, b)
    inside = (yy >= 0) & (yy < data.shape[0]) & (xx >= 0) & (xx < data.shape[1])
    yc, xc = np.clip(yy, 0, data.shape[0] - 1), np.clip(xx, 0, data.shape[1] - 1)
    stamps = np.where(inside & ~mask[yc, xc], data[yc, xc], 0.0)  # (n, b, b)
    py, px = yy.astype(np.float64), xx.astype(np.float64)
    ex, ey = x.astype(np.float64).copy(), y.astype(np.float64).copy()
    for _ in range(iterations):
        w = stamps * np.exp(-0.5 * ((py - ey[:, None, None]) ** 2 + (px - ex[:, None, None]) ** 2) / sigma**2)
        total = w.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            dx = 2.0 * ((w * px).sum(axis=(1, 2)) / total - ex)
            dy = 2.0 * ((w * py).sum(axis=(1, 2)) / total - ey)
        bad = ~(total > 0)
        ex, ey = ex + np.where(bad, 0.0, dx), ey + np.where(bad, 0.0, dy)
        ex[bad] = ey[bad] = np.nan
        if np.all(np.isnan(dx) | (np.abs(dx) < 1e-4)) and np.all(np.isnan(dy) | (np.abs(dy) < 1e-4)):
            break
    return ex, ey


def _refine(data: np.ndarray, mask: np.ndarray, rows: np.ndarray, fwhm: float) -> np.ndarray:
    """``rows`` with windowed centroids; a source whose centroid fails or runs off keeps its own."""
    sigma = max(fwhm, 1.0) * gaussian_fwhm_to_sigma
    x, y = windowed_centroids(data, mask, rows["x"], rows["y"], sigma)
    good = np.isfinite(x) & np.isfinite(y) & (np.hypot(x - rows["x"], y - rows["y"]) < max(fwhm, 1.0))
    out = rows.copy()
    out["x"] = np.where(good, x, rows["x"])
    out["y"] = np.where(good, y, rows["y"])
    return out


def centroid_weight(flux: np.ndarray, rms: float, fwhm: float) -> np.ndarray:
    """Inverse variance of a centroid, px^-2: background-limited Gaussian PSF plus a 0.01 px floor.

    A Gaussian PSF of width ``s = fwhm / 2.355`` on a background of rms ``b`` per pixel gives a
    centroid variance ``8 pi s^4 b^2 / F^2`` per axis (King 1983, PASP 95, 163); the floor
    stands for the residual pixel-phase error of the fit.
    """
    s = max(fwhm, 1.0) / 2.3548
    variance = 8.0 * np.pi * s**4 * rms**2 / np.maximum(flux, 1e-30) ** 2
    return 1.0 / (variance + _CENTROID_FLOOR**2)


def _rows(table: Any, x: str, y: str, flux: str, peak: str) -> np.ndarray:
    out = np.ones(len(table), _DTYPE)
    for name, column in zip(("x", "y", "flux", "peak"), (x, y, flux, peak), strict=True):
        out[name] = np.asarray(table[column], dtype=np.float64)
    return out[np.isfinite(out["x"]) & np.isfinite(out["y"]) & np.isfinite(out["flux"])]


def _tile_tasks(ds: xr.Dataset, settings: FinderSettings) -> list[Any]:
    """One delayed :func:`find_tile_sources` per tile of ``ds`` (tile + halo of sci/err/dq)."""
    ychunks, xchunks = tile_size(ds)
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    sci, err, dq = (ds[name].data for name in ("sci", "err", "dq"))
    tasks = []
    ystarts = np.concatenate([[0], np.cumsum(ychunks)])
    xstarts = np.concatenate([[0], np.cumsum(xchunks)])
    for y0, y1 in itertools.pairwise(ystarts):
        for x0, x1 in itertools.pairwise(xstarts):
            hy0, hy1 = max(0, int(y0) - HALO), min(ny, int(y1) + HALO)
            hx0, hx1 = max(0, int(x0) - HALO), min(nx, int(x1) + HALO)
            window = (slice(hy0, hy1), slice(hx0, hx1))
            core = (int(y0) - hy0, int(y1) - hy0, int(x0) - hx0, int(x1) - hx0)
            tasks.append(
                dask.delayed(find_tile_sources)(
                    sci[window],
                    err[window],
                    dq[window],
                    core=core,
                    origin=(hy0, hx0),
                    settings=settings,
                    dask_key_name=f"tweakreg-sources-{dask.base.tokenize(sci, window, settings)}",
                )
            )
    return tasks


def find_sources(inputs: Sequence[xr.Dataset], settings: FinderSettings) -> list[Table]:
    """The source list of every exposure, computed now (one small reduction over all tiles).

    Parameters
    ----------
    inputs
        Cal Datasets with ``sci``, ``err``, ``dq`` of dims ``("y", "x")``, chunked in tiles.
    settings
        Finder settings.

    Returns
    -------
    list of astropy.table.Table
        Per exposure, columns ``id`` (1-based), ``x``, ``y`` (0-based array pixels), ``flux``,
        ``peak``; brightest first, at most ``settings.brightest`` rows.
    """
    per_exposure = [_tile_tasks(ds, settings) for ds in inputs]
    computed = dask.compute(*per_exposure)
    tables = []
    for tiles in computed:
        rows = np.concatenate([np.empty(0, _DTYPE), *tiles])
        rows = rows[np.argsort(-rows["flux"], kind="stable")][: settings.brightest]
        table = Table(rows)
        table.add_column(np.arange(1, len(table) + 1), name="id", index=0)
        if not settings.refine_centroids:
            table.remove_column("weight")  # tweakwcs then weighs all sources equally
        tables.append(table)
    return tables
