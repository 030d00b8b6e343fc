"""The noiseless scene on the detector: sources and sky as a count-rate (*seed*) image.

:func:`build_scene` turns an exposure's catalogs into source lists in detector
pixels (through the SIAF distortion of :class:`~webbflow.sim.geometry.Geometry`),
count rates (through the filter's flux calibration) and one PSF, keeping only
the sources that can reach the exposure's window. :func:`scene_kernel` then
renders one tile: extended stamps, then Sérsic galaxies, then point sources (so
in the segmentation map points win over galaxies over extended sources, as in
Mirage), plus the sky background scaled by each pixel's area. Reference pixels
see no light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.io import fits

from webbflow.detectors import Detector
from webbflow.errors import InputError
from webbflow.io.catalogs import SourceCatalog, check_unique_indices, read_catalog
from webbflow.sim.geometry import Geometry
from webbflow.sim.psf import PSF
from webbflow.sim.render import render_points, render_sersic, render_stamps, sersic_radius

#: Pixels beyond the window within which a source may still throw light into it.
MARGIN = 64


@dataclass(frozen=True, eq=False)
class Sources:
    """One kind of source in detector pixels (0-based full frame), e⁻/s.

    ``params`` holds per-kind columns: galaxies ``r_eff`` (px), ``ellipticity``,
    ``theta`` (deg, major axis in the pixel frame), ``n``; stamps ``angle`` (deg).
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    index: np.ndarray
    params: dict[str, np.ndarray] = field(default_factory=dict)
    images: tuple[np.ndarray, ...] = ()

    def __len__(self) -> int:
        return int(self.x.size)

    def select(self, keep: np.ndarray) -> Sources:
        """The sources where ``keep`` is true."""
        images = tuple(im for im, k in zip(self.images, keep, strict=False) if k) if self.images else ()
        return Sources(
            self.x[keep],
            self.y[keep],
            self.flux[keep],
            self.index[keep],
            {k: v[keep] for k, v in self.params.items()},
            images,
        )


def _empty() -> Sources:
    z = np.zeros(0)
    return Sources(z, z, z, np.zeros(0, np.int64))


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything a tile needs to render its part of the seed image."""

    points: Sources
    galaxies: Sources
    stamps: Sources
    psf: PSF
    background: float
    threshold: float
    geometry: Geometry
    refpix: int
    pixel_area: bool = True
    frame: tuple[int, int] = (2048, 2048)
    """Full-frame (ny, nx) of the detector (MIRIMAGE: 1024 × 1032)."""
    refpix_rows: bool = True
    """Reference pixels also on the bottom/top rows (near-infrared); MIRI has columns only."""

    @property
    def nsources(self) -> int:
        """Number of sources that may reach the window."""
        return len(self.points) + len(self.galaxies) + len(self.stamps)


class SeedTile(NamedTuple):
    """Output of :func:`scene_kernel`."""

    seed: np.ndarray
    segmap: np.ndarray


def scene_kernel(*, y: np.ndarray, x: np.ndarray, scene: Scene) -> SeedTile:
    """Render one tile of the seed image.

    Parameters
    ----------
    y, x
        (ny,), (nx,) int: full-frame pixel indices of the tile.
    scene
        The exposure's :class:`Scene`.

    Returns
    -------
    SeedTile
        ``seed`` (ny, nx) float32 e⁻/s and ``segmap`` (ny, nx) int32 (catalog ``index``, 0 = sky).
    """
    y0, x0, ny, nx = int(y[0]), int(x[0]), y.size, x.size
    rate = np.zeros((ny, nx))
    segmap = np.zeros((ny, nx), np.int32)
    psf, thr = scene.psf, scene.threshold
    s = scene.stamps
    if len(s):
        render_stamps(rate, segmap, y0, x0, s.x, s.y, s.images, s.flux, s.params["angle"], s.index, psf, thr)
    g = scene.galaxies
    if len(g):
        p = g.params
        render_sersic(
            rate, segmap, y0, x0, g.x, g.y, g.flux, p["r_eff"], p["ellipticity"], p["theta"], p["n"],
            g.index, psf, thr,
        )  # fmt: skip
    pt = scene.points
    if len(pt):
        render_points(rate, segmap, y0, x0, pt.x, pt.y, pt.flux, pt.index, psf, thr)
    if scene.background:
        area = scene.geometry.pixel_area(y0, y0 + ny, x0, x0 + nx) if scene.pixel_area else 1.0
        rate += scene.background * np.asarray(area, np.float64)
    r, (fy, fx) = scene.refpix, scene.frame
    dark_rows = ((y < r) | (y >= fy - r)) & scene.refpix_rows
    dark_cols = (x < r) | (x >= fx - r)
    rate[dark_rows, :] = 0.0
    rate[:, dark_cols] = 0.0
    segmap[dark_rows, :] = 0
    segmap[:, dark_cols] = 0
    return SeedTile(rate.astype(np.float32), segmap)


def build_scene(
    catalogs: dict[str, Sequence[Path]],
    *,
    geometry: Geometry,
    det: Detector,
    instrument: str,
    filter: str,
    pupil: str,
    psf: PSF,
    background: float,
    threshold: float,
    pixel_area: bool = True,
) -> Scene:
    """The sources of ``catalogs`` that can reach the exposure, in detector pixels.

    Parameters
    ----------
    catalogs
        ``{"point": [...], "galaxy": [...], "extended": [...]}`` catalog files.
    geometry
        The exposure's pointing and distortion.
    det
        The detector.
    instrument, filter, pupil
        Select the magnitude column and flux calibration.
    psf
        The PSF of this detector and filter.
    background
        Sky rate at the nominal pixel area, e⁻/s/pixel.
    threshold
        Segmentation-map threshold, e⁻/s.
    pixel_area
        Scale the sky by each pixel's relative area.
    """
    read = {
        kind: [
            read_catalog(p, kind, instrument=instrument, filter=filter, pupil=pupil, detector=det.name)
            for p in catalogs.get(kind, [])
        ]
        for kind in ("point", "galaxy", "extended")
    }
    check_unique_indices([c for cats in read.values() for c in cats])
    window = geometry.window
    points = _concat([_sources(c, geometry) for c in read["point"]])
    galaxies = _concat([_galaxies(c, geometry) for c in read["galaxy"]])
    stamps = _concat([_stamps(c, geometry, det.gain) for c in read["extended"]])
    return Scene(
        points=_in_reach(points, window, MARGIN),
        galaxies=_in_reach(galaxies, window, MARGIN, _galaxy_radius(galaxies)),
        stamps=_in_reach(stamps, window, MARGIN, _stamp_radius(stamps)),
        psf=psf,
        background=float(background),
        threshold=float(threshold),
        geometry=geometry,
        refpix=det.refpix,
        pixel_area=pixel_area,
        frame=(det.ny, det.nx),
        refpix_rows=det.refpix_rows,
    )


def _positions(cat: SourceCatalog, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame 0-based pixel positions of a catalog's rows (sky positions through the SIAF)."""
    x = np.asarray(cat.x, np.float64).copy()
    y = np.asarray(cat.y, np.float64).copy()
    sky = np.isfinite(np.asarray(cat.ra, np.float64))
    if sky.any():
        x[sky], y[sky] = geometry.sky_to_pixel(np.asarray(cat.ra)[sky], np.asarray(cat.dec)[sky])
    # Mirage pixel positions are in the aperture's frame: shift subarrays into the full frame
    xstart, ystart = geometry.window[:2]
    x[~sky] += xstart - 1
    y[~sky] += ystart - 1
    return x, y


def _sources(cat: SourceCatalog, geometry: Geometry) -> Sources:
    x, y = _positions(cat, geometry)
    return Sources(x, y, np.asarray(cat.countrate, np.float64), np.asarray(cat.index, np.int64))


def _pixel_angle(cat: SourceCatalog, geometry: Geometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Catalog position angles in the pixel frame, degrees anticlockwise from +x.

    Sky position angles (deg E of N, rows with RA/Dec) go through the local
    distortion; rows given in pixels are taken as pixel-frame angles already.
    """
    pa = np.asarray(cat.pos_angle, np.float64)
    sky = np.isfinite(np.asarray(cat.ra, np.float64))
    out = pa.copy()
    if sky.any():
        out[sky] = geometry.pixel_angle(pa[sky], x[sky], y[sky])
    return out


def _galaxies(cat: SourceCatalog, geometry: Geometry) -> Sources:
    x, y = _positions(cat, geometry)
    radius = np.asarray(cat.radius, np.float64)
    in_pixels = np.asarray(cat.radius_in_pixels, bool) if cat.radius_in_pixels is not None else False
    scale = float(np.mean(geometry.pixel_scale()))
    r_eff = np.where(in_pixels, radius, radius / scale)
    params = {
        "r_eff": r_eff,
        "ellipticity": np.asarray(cat.ellipticity, np.float64),
        "theta": _pixel_angle(cat, geometry, x, y),
        "n": np.asarray(cat.sersic_index, np.float64),
    }
    return Sources(x, y, np.asarray(cat.countrate, np.float64), np.asarray(cat.index, np.int64), params)


def _stamps(cat: SourceCatalog, geometry: Geometry, gain: float) -> Sources:
    """Extended sources; a stamp without a magnitude holds Mirage's ADU/s, turned into e⁻/s."""
    x, y = _positions(cat, geometry)
    rates = np.asarray(cat.countrate, np.float64)
    images = tuple(
        _read_stamp(Path(f)) * (gain if not np.isfinite(r) else 1.0)
        for f, r in zip(cat.filename, rates, strict=True)
    )
    angle = _pixel_angle(cat, geometry, x, y)
    angle = np.where(np.isfinite(np.asarray(cat.pos_angle, np.float64)), angle, 0.0)
    return Sources(x, y, rates, np.asarray(cat.index, np.int64), {"angle": angle}, images)


def _read_stamp(path: Path) -> np.ndarray:
    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.data is not None and np.ndim(hdu.data) == 2:
                    return np.asarray(hdu.data, np.float64)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the extended-source stamp ({exc})") from None
    raise InputError(f"{path}: no 2-D image in the extended-source stamp file")


def _galaxy_radius(g: Sources) -> np.ndarray | None:
    """The radius each galaxy's stamp reaches (the renderer's own rule), pixels."""
    return sersic_radius(g.params["r_eff"], g.params["n"]) if len(g) else None


def _stamp_radius(s: Sources) -> np.ndarray | None:
    if not s.images:
        return None
    return np.array([0.75 * max(im.shape) for im in s.images])


def _concat(parts: list[Sources]) -> Sources:
    if not parts:
        return _empty()
    keys = parts[0].params.keys()
    return Sources(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.flux for p in parts]),
        np.concatenate([p.index for p in parts]),
        {k: np.concatenate([p.params[k] for p in parts]) for k in keys},
        tuple(im for p in parts for im in p.images),
    )


def _in_reach(
    s: Sources, window: tuple[int, int, int, int], margin: float, extent: np.ndarray | None = None
) -> Sources:
    """Sources within ``margin`` (+ their own ``extent``) pixels of the window."""
    if not len(s):
        return s
    xstart, ystart, xsize, ysize = window
    reach = margin + (np.asarray(extent) if extent is not None else 0.0)
    keep = (
        np.isfinite(s.x)
        & np.isfinite(s.y)
        & (s.x >= xstart - 1 - reach)
        & (s.x <= xstart - 2 + xsize + reach)
        & (s.y >= ystart - 1 - reach)
        & (s.y <= ystart - 2 + ysize + reach)
    )
    return s.select(keep)
