"""The ``source_catalog`` step: a photometric catalogue and segmentation map of a mosaic.

As jwst 3.0's ``SourceCatalogStep`` (segmentation star finder), written on
photutils, over a mosaic of any size (Image3, contract §3: ``sci``/``err``
MJy/sr, ``wht``, ``attrs["wcs"]``):

1. **Background** (a small global reduction): sigma-clipped median and rms on a
   fixed box grid of ``bkg_boxsize`` pixels, median-filtered, interpolated
   bilinearly (:mod:`.background`).
2. **Per output tile, on the tile plus a ``halo``** (default 64 pixels): detect,
   deblend (:mod:`.segment`) and measure (:mod:`.measure`); keep the sources whose
   centroid falls in the tile's core (:mod:`.tiles`). Exact, and independent of
   the tiling, for sources (segments and sky annuli) smaller than the halo.
3. **Assemble** the per-tile rows (small): labels ``1…n`` in (y, x) order,
   nearest neighbours, sky positions, magnitudes (:mod:`.catalog`).
4. **Segmentation map**: lazy ``(y, x)`` int32, one task per tile, each
   recomputing its window's segmentation and labelling it from the catalogue
   (detection runs twice: the price of never holding the map in memory).

Fluxes: ``Jy = MJy/sr × 1e6 × PIXAR_SR`` with ``meta.photometry.pixelarea_steradians``
(else the WCS's pixel area at the mosaic centre; a warning when the two differ by
more than 1 %). AB magnitude ``-2.5 log10(Jy / 3631)``. Apertures and their
corrections come from webbflow's PSF model (:mod:`.apcorr`), the AB−Vega offset
from :func:`webbflow.sim.fluxcal.ab_minus_vega`.

Use :meth:`SourceCatalogStep.run` for an eager catalogue (a :class:`Catalog`);
:meth:`SourceCatalogStep.build` (via ``step(mosaic)``) stays lazy: the mosaic with
``segm`` and ``attrs["catalog"]`` (a ``dask.delayed`` table); compute both together
(``dask.compute(ds.attrs["catalog"], ds.segm.data)``). Run it on a written (or
persisted) mosaic: the background pass and the tile pass each read the mosaic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Step
from webbflow.errors import InputError, UsageError
from webbflow.model import get_meta, meta_value
from webbflow.steps.source_catalog.apcorr import ApertureParams, psf_aperture_params
from webbflow.steps.source_catalog.background import Mesh, box_edges, box_statistics, make_mesh
from webbflow.steps.source_catalog.catalog import assemble
from webbflow.steps.source_catalog.segment import DetectParams, coverage, kernel_radius
from webbflow.steps.source_catalog.tiles import Window, tile_segmentation, tile_sources

log = logging.getLogger("webbflow")


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`SourceCatalogStep` (jwst 3.0 names and defaults, plus tiling)."""

    bkg_boxsize: int = param(1000, "Background mesh box size, pixels.", minimum=1)
    kernel_fwhm: float = param(2.0, "FWHM of the Gaussian detection kernel, pixels.", minimum=0)
    snr_threshold: float = param(3.0, "Detection threshold, in background rms.", minimum=0)
    npixels: int = param(25, "Minimum number of connected pixels of a source.", minimum=1)
    connectivity: int = param(8, "Pixel connectivity of a segment.", choices=(4, 8))
    nlevels: int = param(32, "Number of multi-thresholding levels for deblending.", minimum=1)
    contrast: float = param(0.001, "Flux fraction a deblended source must have.", minimum=0)
    multithresh_mode: str = param(
        "exponential", "Spacing of the deblending levels.", choices=("exponential", "linear", "sinh")
    )
    deblend: bool = param(True, "Deblend overlapping sources.")
    aperture_ee1: int = param(30, "Encircled energy (%) of the smallest aperture.", minimum=1)
    aperture_ee2: int = param(50, "Encircled energy (%) of the middle aperture.", minimum=1)
    aperture_ee3: int = param(70, "Encircled energy (%) of the largest aperture.", minimum=1)
    aperture_radius1: float | None = param(None, "Explicit radius (px) of aperture 1 instead of EE1.")
    aperture_radius2: float | None = param(None, "Explicit radius (px) of aperture 2 instead of EE2.")
    aperture_radius3: float | None = param(None, "Explicit radius (px) of aperture 3 instead of EE3.")
    bkg_inner_radius: float | None = param(None, "Sky annulus inner radius, px (default 5 r(EE3)).")
    bkg_outer_radius: float | None = param(None, "Sky annulus outer radius, px (default 8 r(EE3)).")
    ci1_star_threshold: float = param(2.0, "CI 1 threshold above which a source may be extended.")
    ci2_star_threshold: float = param(1.8, "CI 2 threshold above which a source may be extended.")
    tile: int = param(0, "Catalogue tile side, px (0: the mosaic's chunks, else 2048).", minimum=0)
    halo: int = param(64, "Pixels around each tile seen by its task (largest exact source).", minimum=0)
    suffix: str = param("cat", "Suffix of the catalogue product.")


@dataclass(frozen=True)
class Catalog:
    """An eager catalogue and its lazy segmentation map.

    Attributes
    ----------
    table : astropy.table.QTable
        One row per source (see :mod:`webbflow.steps.source_catalog.catalog`).
    segm : xarray.DataArray, dims (y, x), int32
        Lazy segmentation map (0 = background), chunked by the catalogue tiles.
    mesh : Mesh
        The background mesh used (MJy/sr).
    """

    table: Any
    segm: xr.DataArray
    mesh: Mesh


class SourceCatalogStep(Step):
    """Detect, deblend and measure the sources of a mosaic, tile by tile with a halo."""

    name = "source_catalog"
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """``ds`` with a lazy ``segm`` and ``attrs["catalog"]`` (a ``dask.delayed`` QTable)."""
        plan = _Plan(ds, self.params)
        mesh = plan.mesh()
        table = plan.table(mesh)
        reference = dask.delayed(_reference)(table)
        out = ds.assign(segm=plan.segm(mesh, reference))
        out.attrs = {**ds.attrs, "catalog": table}
        return out

    def run(self, mosaic: xr.Dataset) -> Catalog:
        """Compute the catalogue now (a small result); the segmentation map stays lazy."""
        plan = _Plan(mosaic, self.params)
        mesh_graph = plan.mesh()
        table, mesh = dask.compute(plan.table(mesh_graph), mesh_graph)
        return Catalog(table, plan.segm(mesh, _reference(table)), mesh)


def source_catalog(mosaic: xr.Dataset, **params: Any) -> Catalog:
    """Shortcut for ``SourceCatalogStep(**params).run(mosaic)``."""
    return SourceCatalogStep(**params).run(mosaic)


def _reference(table: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(table["xcentroid"], np.float64),
        np.asarray(table["ycentroid"], np.float64),
        np.asarray(table["label"], np.int64),
    )


class _Plan:
    """The mosaic's tiles, settings and task graphs."""

    def __init__(self, ds: xr.Dataset, params: Any) -> None:
        for var in ("sci", "err"):
            if var not in ds or ds[var].dims != ("y", "x"):
                raise InputError(f"source_catalog: mosaic variable {var!r} with dims ('y', 'x') is required")
        self.ds = ds
        self.params = params
        self.wcs = ds.attrs.get("wcs")
        self.ny, self.nx = (int(ds.sizes["y"]), int(ds.sizes["x"]))
        self.sci, self.err = _dask(ds["sci"]), _dask(ds["err"])
        self.wht = _dask(ds["wht"]) if "wht" in ds else None
        self.detect = DetectParams(
            params.snr_threshold,
            params.kernel_fwhm,
            params.npixels,
            params.connectivity,
            params.deblend,
            params.nlevels,
            params.contrast,
            params.multithresh_mode,
        )
        self.pixar_sr = pixel_area_sr(ds)
        self.to_jy = 1e6 * self.pixar_sr
        self.apertures = aperture_params(ds, params, self.pixar_sr)
        need = math.ceil(self.apertures.bkg_outer) + 1 + kernel_radius(params.kernel_fwhm)
        if params.halo < need:
            raise UsageError(
                f"source_catalog.halo={params.halo} is smaller than the sky annulus plus kernel "
                f"({need} px); raise halo or give smaller bkg_outer_radius"
            )
        self.ycuts, self.xcuts = _cuts(ds, self.ny, self.nx, params.tile)

    def _slices(self, ys: slice, xs: slice) -> tuple[Any, Any, Any]:
        wht = None if self.wht is None else self.wht[ys, xs]
        return self.sci[ys, xs], self.err[ys, xs], wht

    def mesh(self) -> Any:
        """Delayed :class:`Mesh` from one task per background box."""
        ye, xe = box_edges(self.ny, self.params.bkg_boxsize), box_edges(self.nx, self.params.bkg_boxsize)
        stats = [
            [
                dask.delayed(_box)(*self._slices(slice(ye[i], ye[i + 1]), slice(xe[j], xe[j + 1])))
                for j in range(len(xe) - 1)
            ]
            for i in range(len(ye) - 1)
        ]
        return dask.delayed(make_mesh)(stats, ye, xe)

    def windows(self) -> list[list[Window]]:
        """The :class:`Window` of every tile, row by row."""
        h = self.params.halo
        return [
            [
                Window(max(y0 - h, 0), max(x0 - h, 0), y0, y1, x0, x1, self.ny, self.nx)
                for x0, x1 in zip(self.xcuts[:-1], self.xcuts[1:], strict=True)
            ]
            for y0, y1 in zip(self.ycuts[:-1], self.ycuts[1:], strict=True)
        ]

    def _window_data(self, win: Window) -> tuple[Any, Any, Any]:
        h = self.params.halo
        return self._slices(
            slice(win.wy0, min(win.y1 + h, self.ny)), slice(win.wx0, min(win.x1 + h, self.nx))
        )

    def table(self, mesh: Any) -> Any:
        """Delayed catalogue QTable."""
        parts = [
            dask.delayed(tile_sources)(
                *self._window_data(w), mesh, w, self.detect, self.apertures, self.to_jy
            )
            for row in self.windows()
            for w in row
        ]
        return dask.delayed(assemble)(
            parts,
            self.wcs,
            self.apertures,
            abvega_offset(self.ds),
            (self.params.ci1_star_threshold, self.params.ci2_star_threshold),
            self.table_meta(),
        )

    def segm(self, mesh: Any, reference: Any) -> xr.DataArray:
        """Lazy (y, x) int32 segmentation map labelled like the catalogue."""
        blocks = [
            [
                da.from_delayed(
                    dask.delayed(tile_segmentation)(
                        *self._window_data(w), mesh, w, self.detect, self.to_jy, reference
                    ),
                    shape=(w.y1 - w.y0, w.x1 - w.x0),
                    dtype=np.int32,
                )
                for w in row
            ]
            for row in self.windows()
        ]
        coords = {c: self.ds[c] for c in ("y", "x") if c in self.ds.coords}
        return xr.DataArray(da.block(blocks), dims=("y", "x"), coords=coords, name="segm")

    def table_meta(self) -> dict[str, Any]:
        import astropy
        import numpy
        import photutils
        import scipy

        import webbflow

        meta = get_meta(self.ds)
        inst = meta.get("instrument", {}) if isinstance(meta.get("instrument"), dict) else {}
        versions = {"webbflow": webbflow.__version__, "photutils": photutils.__version__}
        versions |= {"astropy": astropy.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__}
        return {
            "instrument": inst.get("name"),
            "detector": inst.get("detector"),
            "filter": inst.get("filter"),
            "pupil": inst.get("pupil"),
            "product": meta.get("filename"),
            "pixelarea_steradians": self.pixar_sr,
            "bunit_flux": "Jy",
            "tile": [int(np.diff(self.ycuts).max()), int(np.diff(self.xcuts).max())],
            "halo": int(self.params.halo),
            "versions": versions,
            "parameters": {
                k: v for k, v in self.params.to_dict().items() if k not in ("skip",) and v is not None
            },
        }


def _box(sci: np.ndarray, err: np.ndarray, wht: np.ndarray | None) -> tuple[float, float]:
    return box_statistics(np.asarray(sci, np.float64), coverage(sci, err, wht))


def _dask(var: xr.DataArray) -> da.Array:
    data = var.data
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=-1)


def _cuts(ds: xr.Dataset, ny: int, nx: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile edges along y and x: the mosaic's chunks (``tile == 0``) or ``tile``-pixel squares."""
    chunks = ds["sci"].chunks
    if tile == 0 and chunks is not None:
        return (np.concatenate([[0], np.cumsum(chunks[0])]), np.concatenate([[0], np.cumsum(chunks[1])]))
    side = tile or 2048
    return (np.append(np.arange(0, ny, side), ny), np.append(np.arange(0, nx, side), nx))


def wcs_pixel_area_sr(wcs: Any, ny: int, nx: int) -> float:
    """Solid angle (sr) of the pixel at the mosaic centre, from the WCS's local Jacobian."""
    x, y = (nx - 1) / 2.0, (ny - 1) / 2.0
    xs = np.array([x, x + 0.5, x - 0.5, x, x])
    ys = np.array([y, y, y, y + 0.5, y - 0.5])
    ra, dec = (np.deg2rad(np.asarray(v, np.float64)) for v in wcs(xs, ys, with_bounding_box=False))
    cosd = np.cos(dec[0])
    dra_dx, ddec_dx = (ra[1] - ra[2]) * cosd, dec[1] - dec[2]
    dra_dy, ddec_dy = (ra[3] - ra[4]) * cosd, dec[3] - dec[4]
    return float(abs(dra_dx * ddec_dy - dra_dy * ddec_dx))


def pixel_area_sr(ds: xr.Dataset) -> float:
    """``meta.photometry.pixelarea_steradians``, else the WCS's pixel area (see the module docstring).

    Raises
    ------
    InputError
        Neither is available.
    """
    meta_area = meta_value(ds, "photometry.pixelarea_steradians")
    wcs = ds.attrs.get("wcs")
    wcs_area = wcs_pixel_area_sr(wcs, ds.sizes["y"], ds.sizes["x"]) if wcs is not None else None
    if meta_area is None:
        if wcs_area is None:
            raise InputError(
                "source_catalog: mosaic has neither meta.photometry.pixelarea_steradians nor attrs['wcs']"
            )
        log.info("source_catalog: pixel area %.4e sr from the WCS (no PIXAR_SR in meta)", wcs_area)
        return wcs_area
    if wcs_area is not None and abs(float(meta_area) / wcs_area - 1.0) > 0.01:
        log.warning(
            "source_catalog: meta PIXAR_SR %.4e sr differs from the WCS pixel area %.4e sr by %.1f %%",
            float(meta_area),
            wcs_area,
            100 * abs(float(meta_area) / wcs_area - 1.0),
        )
    return float(meta_area)


def aperture_params(ds: xr.Dataset, params: Any, pixar_sr: float) -> ApertureParams:
    """Apertures from the PSF model for the mosaic's instrument/filter/pupil at its pixel scale."""
    ee = (params.aperture_ee1, params.aperture_ee2, params.aperture_ee3)
    radii_given = (params.aperture_radius1, params.aperture_radius2, params.aperture_radius3)
    if any(r is not None for r in radii_given) and not all(r is not None for r in radii_given):
        raise UsageError("source_catalog: give all three aperture_radius1/2/3 or none")
    radii = None if radii_given[0] is None else tuple(float(r) for r in radii_given)
    annulus = None
    if params.bkg_inner_radius is not None or params.bkg_outer_radius is not None:
        if params.bkg_inner_radius is None or params.bkg_outer_radius is None:
            raise UsageError("source_catalog: give both bkg_inner_radius and bkg_outer_radius or neither")
        annulus = (float(params.bkg_inner_radius), float(params.bkg_outer_radius))
    instrument = meta_value(ds, "instrument.name")
    filt = meta_value(ds, "instrument.filter")
    if not instrument or (not filt and str(instrument).upper() != "FGS"):
        raise InputError("source_catalog: mosaic meta needs instrument.name and instrument.filter")
    grid = ds.attrs.get("grid")
    scale = float(getattr(grid, "pixel_scale", 0.0) or math.sqrt(pixar_sr) * 180 / math.pi * 3600)
    drizzle_width = 0.0
    if str(instrument).upper() == "MIRI":  # compact PSF: model the drizzle drop's blur
        pixfrac = meta_value(ds, "resample.pixfrac")
        ratio = meta_value(ds, "resample.pixel_scale_ratio")
        if pixfrac is not None and ratio:
            drizzle_width = float(pixfrac) / float(ratio)
    return psf_aperture_params(
        str(instrument),
        meta_value(ds, "instrument.detector"),
        str(filt or "NONE"),
        meta_value(ds, "instrument.pupil"),
        scale,
        ee,
        radii,
        annulus,
        drizzle_width=drizzle_width,
    )


def abvega_offset(ds: xr.Dataset) -> float:
    """``m_AB − m_Vega`` of the mosaic's band from webbflow's filter model (0 if unknown)."""
    from webbflow.sim.fluxcal import ab_minus_vega, filter_info

    try:
        info = filter_info(
            str(meta_value(ds, "instrument.name")),
            meta_value(ds, "instrument.filter"),
            meta_value(ds, "instrument.pupil"),
        )
    except (UsageError, KeyError):
        log.warning("source_catalog: unknown band, Vega magnitudes equal AB magnitudes")
        return 0.0
    return float(ab_minus_vega(info))
