"""The output grid of a mosaic: a TAN (gnomonic) gwcs covering the union of the input footprints.

The output WCS is the FITS imaging model written as astropy models, so it serialises to ASDF
with asdf-astropy and jwst's datamodels read it::

    (x - crpix1) & (y - crpix2)  |  CD matrix (deg/px)  |  Pix2Sky_TAN  |  RotateNative2Celestial(crval, 180)

Conventions follow jwst's ``ResampleStep``: ``rotation`` is the position angle of the output
+y axis east of north (0 = north up, east left for the usual parity -1); ``rotation=None``
keeps the detector orientation of the first input (``roll_ref - vparity * v3yangle`` from its
``meta.wcsinfo``; north up when those keys are missing); the default pixel scale is the first
input's native scale at its reference point times ``pixel_scale_ratio``; ``crval`` defaults to
the centre of the footprints' bounding box on the sphere. Unlike jwst, the default ``crpix``
centres the footprint in the output array, whose edges (not pixel centres) enclose it.
``crpix`` here is 0-based, as jwst's parameter; :meth:`OutputGrid.fits_cards` writes it 1-based.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf

from webbflow.errors import InputError, UsageError
from webbflow.model import get_meta

#: Points per side of an input's bounding box used for its footprint (catches distortion bulges).
_EDGE_POINTS = 9


@dataclass(frozen=True)
class OutputGrid:
    """A mosaic's pixel grid: TAN WCS, shape and dask tiling.

    Attributes
    ----------
    wcs
        Output pixel (x, y), 0-based → (ra, dec) deg ICRS.
    shape
        (ny, nx) of the mosaic.
    tile
        (ty, tx) of an output tile (the mosaic's dask chunks).
    pixel_scale
        arcsec/px.
    crpix
        0-based (x, y) pixel of ``crval``.
    crval
        (ra, dec) deg of the reference pixel.
    cd
        2×2 CD matrix, deg/px: intermediate world (x, y) = ``cd @ (pixel - crpix)``.
    rotation
        Position angle of the +y axis east of north, deg.
    """

    wcs: WCS
    shape: tuple[int, int]
    tile: tuple[int, int]
    pixel_scale: float
    crpix: tuple[float, float] = (0.0, 0.0)
    crval: tuple[float, float] = (0.0, 0.0)
    cd: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 0.0), (0.0, 1.0))
    rotation: float = 0.0

    def tiles(self) -> list[tuple[slice, slice]]:
        """``(ys, xs)`` slices of every output tile, row by row."""
        ny, nx = self.shape
        ty, tx = self.tile
        return [
            (slice(y0, min(y0 + ty, ny)), slice(x0, min(x0 + tx, nx)))
            for y0 in range(0, ny, ty)
            for x0 in range(0, nx, tx)
        ]

    @property
    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """dask chunks ((ty, ...), (tx, ...)) of the mosaic."""
        return tuple(  # type: ignore[return-value]
            tuple(min(t, n - s) for s in range(0, n, t)) for n, t in zip(self.shape, self.tile, strict=True)
        )

    def fits_cards(self) -> list[tuple[str, object, str]]:
        """Equivalent FITS WCS cards (``CTYPE``, 1-based ``CRPIX``, ``CRVAL``, ``CD``) for the SCI header."""
        (c11, c12), (c21, c22) = self.cd
        return [
            ("WCSAXES", 2, "number of World Coordinate System axes"),
            ("CTYPE1", "RA---TAN", "first axis coordinate type"),
            ("CTYPE2", "DEC--TAN", "second axis coordinate type"),
            ("CUNIT1", "deg", "first axis units"),
            ("CUNIT2", "deg", "second axis units"),
            ("RADESYS", "ICRS", "name of the coordinate reference frame"),
            ("CRPIX1", self.crpix[0] + 1.0, "x reference pixel (1-based)"),
            ("CRPIX2", self.crpix[1] + 1.0, "y reference pixel (1-based)"),
            ("CRVAL1", self.crval[0], "[deg] RA at the reference pixel"),
            ("CRVAL2", self.crval[1], "[deg] Dec at the reference pixel"),
            ("CD1_1", c11, "[deg/px] linear transformation matrix"),
            ("CD1_2", c12, "[deg/px] linear transformation matrix"),
            ("CD2_1", c21, "[deg/px] linear transformation matrix"),
            ("CD2_2", c22, "[deg/px] linear transformation matrix"),
        ]


def tan_wcs(
    crpix: tuple[float, float], crval: tuple[float, float], cd: np.ndarray, shape: tuple[int, int]
) -> WCS:
    """The gwcs of a TAN grid: 0-based pixel (x, y) → (ra, dec) deg, bounding box = array edges."""
    transform = (
        am.Shift(-crpix[0]) & am.Shift(-crpix[1])
        | am.AffineTransformation2D(matrix=np.asarray(cd, float))
        | am.Pix2Sky_TAN()
        | am.RotateNative2Celestial(crval[0], crval[1], 180.0)
    )
    transform.name = "pix2sky"
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    wcs = WCS([(detector, transform), (world, None)])
    ny, nx = shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    return wcs


def footprint(wcs: WCS, ny: int, nx: int) -> np.ndarray:
    """(ra, dec) deg of points along the pixel edges of an ny×nx array, shape (npoints, 2)."""
    t = np.linspace(0.0, 1.0, _EDGE_POINTS)
    x0, x1, y0, y1 = -0.5, nx - 0.5, -0.5, ny - 0.5
    x = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)])
    y = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t])
    ra, dec = wcs(x, y, with_bounding_box=False)
    return np.column_stack([ra, dec])


def input_wcs(ds: xr.Dataset, where: str = "input") -> WCS:
    """``ds.attrs["wcs"]``, or an InputError saying assign_wcs must run first."""
    wcs = ds.attrs.get("wcs")
    if wcs is None:
        name = get_meta(ds).get("filename", where)
        raise InputError(f"{name}: no attrs['wcs'] (run assign_wcs before resample)")
    return wcs


def native_scale(wcs: WCS, ds: xr.Dataset) -> float:
    """Pixel scale (arcsec/px) of ``wcs`` at its reference point (array centre when unknown)."""
    info = get_meta(ds).get("wcsinfo", {}) or {}
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    x, y = (nx - 1) / 2.0, (ny - 1) / 2.0
    if info.get("ra_ref") is not None and info.get("dec_ref") is not None:
        xr_, yr_ = wcs.invert(float(info["ra_ref"]), float(info["dec_ref"]), with_bounding_box=False)
        if np.isfinite(xr_) and np.isfinite(yr_):
            x, y = float(xr_), float(yr_)
    ra, dec = wcs([x, x + 1.0, x], [y, y, y + 1.0], with_bounding_box=False)
    pts = coord.SkyCoord(ra, dec, unit="deg")
    sx = pts[0].separation(pts[1]).arcsec
    sy = pts[0].separation(pts[2]).arcsec
    return float(math.sqrt(sx * sy))


def _sky_centre(points: np.ndarray) -> tuple[float, float]:
    """Centre of the Cartesian bounding box of sky points, (ra, dec) deg."""
    lon, lat = np.deg2rad(points[:, 0]), np.deg2rad(points[:, 1])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    mid = (xyz.max(axis=1) + xyz.min(axis=1)) / 2.0
    ra = math.degrees(math.atan2(mid[1], mid[0])) % 360.0
    dec = math.degrees(math.atan2(mid[2], math.hypot(mid[0], mid[1])))
    return ra, dec


def _orientation(ds: xr.Dataset, rotation: float | None) -> tuple[float, int]:
    """(position angle of +y east of north, deg; x parity ±1) from ``rotation`` or the input's meta."""
    info: dict[str, Any] = get_meta(ds).get("wcsinfo", {}) or {}
    parity = int(info.get("vparity", -1) or -1)
    if rotation is not None:
        return float(rotation), parity
    if info.get("roll_ref") is None or info.get("v3yangle") is None:
        return 0.0, parity
    return float(info["roll_ref"]) - parity * float(info["v3yangle"]), parity


def cd_matrix(pixel_scale: float, rotation: float, parity: int = -1) -> np.ndarray:
    """2×2 CD matrix (deg/px) for ``pixel_scale`` arcsec/px and +y at PA ``rotation`` deg."""
    a = math.radians(rotation)
    pc = np.array([[parity * math.cos(a), math.sin(a)], [-parity * math.sin(a), math.cos(a)]])
    return pc * (pixel_scale / 3600.0)


def output_grid(
    inputs: Sequence[xr.Dataset],
    *,
    pixel_scale_ratio: float = 1.0,
    pixel_scale: float | None = None,
    rotation: float | None = None,
    crpix: tuple[float, float] | None = None,
    crval: tuple[float, float] | None = None,
    output_shape: tuple[int, int] | None = None,
    tile: int | tuple[int, int] = 512,
) -> OutputGrid:
    """A TAN grid covering the union of the inputs' footprints (jwst ``ResampleStep`` conventions).

    Parameters
    ----------
    inputs
        Exposures with ``attrs["wcs"]`` (dims ("y", "x")); the first sets the default scale and
        orientation.
    pixel_scale_ratio
        Output / input pixel scale (ignored when ``pixel_scale`` is given).
    pixel_scale
        Output pixel scale, arcsec/px.
    rotation
        Position angle of the output +y axis east of north, deg (0: north up); ``None``: the
        first input's detector orientation.
    crpix
        0-based (x, y) output pixel of ``crval``; default: the footprint is centred.
    crval
        (ra, dec) deg of the reference pixel; default: centre of the footprints.
    output_shape
        (ny, nx) of the mosaic; default: just enclosing the footprints.
    tile
        Output tile (ty, tx) or one size for both, px.

    Raises
    ------
    InputError
        An input without a WCS. UsageError: no inputs, or a non-positive scale/shape/tile.
    """
    if not inputs:
        raise UsageError("resample: output_grid needs at least one input exposure")
    wcss = [input_wcs(ds, f"input {i}") for i, ds in enumerate(inputs)]
    points = np.vstack(
        [footprint(w, ds.sizes["y"], ds.sizes["x"]) for w, ds in zip(wcss, inputs, strict=True)]
    )
    ref = (float(crval[0]), float(crval[1])) if crval is not None else _sky_centre(points)
    scale = float(pixel_scale) if pixel_scale else native_scale(wcss[0], inputs[0]) * float(pixel_scale_ratio)
    if not scale > 0:
        raise UsageError(f"resample: pixel_scale must be > 0 arcsec/px, got {scale}")
    pa, parity = _orientation(inputs[0], rotation)
    cd = cd_matrix(scale, pa, parity)
    # footprint in pixel offsets from crval
    native = tan_wcs((0.0, 0.0), ref, cd, (1, 1))
    ux, uy = native.invert(points[:, 0], points[:, 1], with_bounding_box=False)
    lo = np.array([np.min(ux), np.min(uy)])
    hi = np.array([np.max(ux), np.max(uy)])
    if output_shape is not None:
        ny, nx = (int(output_shape[0]), int(output_shape[1]))
    elif crpix is not None:
        ny, nx = (math.ceil(hi[1] + crpix[1] + 0.5), math.ceil(hi[0] + crpix[0] + 0.5))
    else:
        nx, ny = (math.ceil(s - 1e-6) for s in hi - lo)
    if nx < 1 or ny < 1:
        raise UsageError(f"resample: output_shape must be positive, got (ny, nx) = ({ny}, {nx})")
    if crpix is None:
        crpix = ((nx - 1) / 2.0 - (hi[0] + lo[0]) / 2.0, (ny - 1) / 2.0 - (hi[1] + lo[1]) / 2.0)
    ty, tx = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if ty < 1 or tx < 1:
        raise UsageError(f"resample: tile must be positive, got {tile}")
    cpix = (float(crpix[0]), float(crpix[1]))
    return OutputGrid(
        wcs=tan_wcs(cpix, ref, cd, (ny, nx)),
        shape=(ny, nx),
        tile=(min(ty, ny), min(tx, nx)),
        pixel_scale=scale,
        crpix=cpix,
        crval=ref,
        cd=((float(cd[0, 0]), float(cd[0, 1])), (float(cd[1, 0]), float(cd[1, 1]))),
        rotation=pa,
    )
