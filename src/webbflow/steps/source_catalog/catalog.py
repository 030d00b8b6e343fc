"""Assemble the per-tile rows into the final catalogue; write it as ECSV.

Rows are sorted by ``(ycentroid, xcentroid)`` and labelled ``1 … n`` in that
order, so labels depend only on the sources, not on the tiling. Columns carry
jwst's names, order, units and descriptions wherever we compute the same quantity
(``label`` … ``sky_bbox_ur``). Differences from jwst, on purpose:

* ``sky_orientation`` is the position angle (East of North, [0, 360) deg) of the
  direction ``orientation`` measured through the WCS at each source, not with one
  angle for the whole mosaic;
* ``aper*_flux_err`` include the sky-annulus error (``area × aper_bkg_flux_err``),
  and ``aper_total_flux_err`` also the aperture correction's scatter over
  sub-pixel positions (``apcorr_scatter``);
* ``xcentroid``/``ycentroid`` are windowed centroids (see :mod:`.measure`);
* aperture radii, corrections and the AB−Vega offset come from webbflow's own
  PSF and filter models (:mod:`~webbflow.steps.source_catalog.apcorr`,
  :func:`webbflow.sim.fluxcal.ab_minus_vega`), not from APCORR/ABVEGAOFFSET files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import QTable
from scipy.spatial import cKDTree

from webbflow.io.atomic import check_writable, commit, discard, temporary_name
from webbflow.steps.source_catalog.apcorr import ApertureParams

#: AB magnitude of 1 Jy, ``2.5 log10(3631)`` (jwst rounds it to 8.9: 6.6e-5 mag fainter than ours).
_AB_ZERO = 2.5 * np.log10(3631.0)


def to_abmag(flux: np.ndarray, flux_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitude ``-2.5 log10(flux / 3631 Jy)`` and ``2.5 log10(1 + err / flux)``; NaN if flux ≤ 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        good = flux > 0
        mag = np.where(good, -2.5 * np.log10(np.where(good, flux, 1.0)) + _AB_ZERO, np.nan)
        err = np.where(good, 2.5 * np.log10(1.0 + flux_err / np.where(good, flux, 1.0)), np.nan)
    return mag, err


def assemble(
    parts: Sequence[Mapping[str, np.ndarray]],
    wcs: Any,
    apertures: ApertureParams,
    abvega_offset: float,
    ci_thresholds: tuple[float, float],
    meta: Mapping[str, Any],
) -> QTable:
    """The catalogue from the rows of every tile (see the module docstring).

    Parameters
    ----------
    parts : sequence of dict
        :func:`~webbflow.steps.source_catalog.tiles.tile_sources` results.
    wcs : gwcs.WCS or None
        Mosaic pixel (x, y), 0-based → (ra, dec) deg.
    meta : mapping
        Table metadata (instrument, filter, software versions…).
    """
    parts = [p for p in parts if p and len(p["xcentroid"])]
    names = ("xcentroid", "ycentroid", "truncated", "aper_flux")
    cols: dict[str, np.ndarray] = (
        {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if parts
        else {k: np.zeros((0, len(apertures.radii)) if k == "aper_flux" else 0) for k in names}
    )
    n = len(cols["xcentroid"])
    order = np.lexsort((cols["xcentroid"], cols["ycentroid"]))
    cols = {k: v[order] for k, v in cols.items()}
    x, y = cols["xcentroid"], cols["ycentroid"]
    label = np.arange(1, n + 1, dtype=np.int64)
    t = QTable(meta=dict(meta))
    t["label"] = label
    t["xcentroid"], t["ycentroid"] = x, y
    t["sky_centroid"] = _sky(wcs, x, y)
    if n == 0:
        t.meta.update({**apertures.to_meta(), "abvega_offset": abvega_offset, "n_truncated": 0})
        return t
    t["aper_bkg_flux"] = cols["aper_bkg_flux"] * u.Jy
    t["aper_bkg_flux_err"] = cols["aper_bkg_flux_err"] * u.Jy
    ee = apertures.ee
    flux, flux_err = cols["aper_flux"], cols["aper_flux_err"]
    total = flux[:, -1] * apertures.corrections[-1]
    # the correction's scatter over sub-pixel positions is a real error of one source's total flux
    total_err = np.hypot(flux_err[:, -1] * apertures.corrections[-1], total * apertures.scatter[-1])
    fluxes = {f"aper{e}": (flux[:, i], flux_err[:, i]) for i, e in enumerate(ee)}
    fluxes["aper_total"] = (total, total_err)
    for name, (f, fe) in fluxes.items():
        t[f"{name}_flux"], t[f"{name}_flux_err"] = f * u.Jy, fe * u.Jy
    mags = {name: to_abmag(f, fe) for name, (f, fe) in fluxes.items()}
    for name, (m, me) in mags.items():
        t[f"{name}_abmag"], t[f"{name}_abmag_err"] = m, me
    for name, (m, me) in mags.items():
        t[f"{name}_vegamag"], t[f"{name}_vegamag_err"] = m - abvega_offset, me
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = [flux[:, j] / flux[:, i] for i, j in ((0, 1), (1, 2), (0, 2))]
    for (i, j), value in zip(((0, 1), (1, 2), (0, 2)), ci, strict=True):
        t[f"CI_{ee[j]}_{ee[i]}"] = value
    t["is_extended"] = (ci[0] > ci_thresholds[0]) & (ci[1] > ci_thresholds[1])
    t["sharpness"], t["roundness"] = cols["sharpness"], cols["roundness"]
    t["nn_label"], t["nn_dist"] = _nearest(x, y, label)
    iso, iso_err = cols["isophotal_flux"], cols["isophotal_flux_err"]
    t["isophotal_flux"], t["isophotal_flux_err"] = iso * u.Jy, iso_err * u.Jy
    m, me = to_abmag(iso, iso_err)
    t["isophotal_abmag"], t["isophotal_abmag_err"] = m, me
    t["isophotal_vegamag"], t["isophotal_vegamag_err"] = m - abvega_offset, me
    t["isophotal_area"] = cols["isophotal_area"] * u.pix**2
    t["semimajor_sigma"] = cols["semimajor_sigma"] * u.pix
    t["semiminor_sigma"] = cols["semiminor_sigma"] * u.pix
    t["ellipticity"] = cols["ellipticity"]
    t["orientation"] = cols["orientation"] * u.deg
    t["sky_orientation"] = _sky_orientation(wcs, x, y, cols["orientation"])
    x0, x1 = cols["bbox_xmin"] - 0.5, cols["bbox_xmax"] + 0.5
    y0, y1 = cols["bbox_ymin"] - 0.5, cols["bbox_ymax"] + 0.5
    for name, (bx, by) in {"ll": (x0, y0), "ul": (x0, y1), "lr": (x1, y0), "ur": (x1, y1)}.items():
        t[f"sky_bbox_{name}"] = _sky(wcs, bx, by)
    _describe(t, ee)
    t.meta.update(
        {
            **apertures.to_meta(),
            "abvega_offset": abvega_offset,
            "ci_star_thresholds": list(ci_thresholds),
            "n_truncated": int(np.count_nonzero(cols["truncated"])),
        }
    )
    return t


def write_catalog(table: QTable, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``table`` as ECSV at ``path`` atomically (temporary name, then rename).

    Raises
    ------
    OutputError
        ``path`` exists and not ``overwrite``, or its folder is not writable.
    """
    path = Path(path)
    check_writable(path, overwrite)
    tmp = temporary_name(path)
    try:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    return path


def _sky(wcs: Any, x: np.ndarray, y: np.ndarray) -> SkyCoord:
    if wcs is None or len(x) == 0:
        return SkyCoord(np.full(len(x), np.nan) * u.deg, np.full(len(x), np.nan) * u.deg, frame="icrs")
    ra, dec = wcs(x, y, with_bounding_box=False)
    return SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg, frame="icrs")


def _sky_orientation(wcs: Any, x: np.ndarray, y: np.ndarray, orientation_deg: np.ndarray) -> Any:
    if wcs is None:
        return np.full(len(x), np.nan) * u.deg
    theta = np.deg2rad(orientation_deg)
    start = _sky(wcs, x, y)
    end = _sky(wcs, x + 0.5 * np.cos(theta), y + 0.5 * np.sin(theta))
    return start.position_angle(end).to(u.deg) % (360 * u.deg)


def _nearest(x: np.ndarray, y: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, Any]:
    n = len(x)
    if n < 2:
        return np.full(n, -1, np.int64), np.full(n, np.nan) * u.pix
    finite = np.isfinite(x) & np.isfinite(y)
    pos = np.column_stack([np.where(finite, x, -1e9), np.where(finite, y, -1e9)])
    dist, idx = cKDTree(pos).query(pos, k=[2])
    nn_label = np.where(finite, label[idx[:, 0]], -1)
    return nn_label, np.where(finite, dist[:, 0], np.nan) * u.pix


def _describe(t: QTable, ee: tuple[int, ...]) -> None:
    """Column descriptions (jwst's wording where the quantity is the same)."""
    desc = {
        "label": "Unique source identification label number",
        "xcentroid": "X pixel value of the source centroid (0 indexed)",
        "ycentroid": "Y pixel value of the source centroid (0 indexed)",
        "sky_centroid": "ICRS Sky coordinate of the source centroid",
        "aper_bkg_flux": "Local background per pixel: sigma-clipped median in the background annulus",
        "aper_bkg_flux_err": "Standard error of the sigma-clipped median background value",
        "is_extended": "Flag indicating whether the source is extended",
        "sharpness": "The DAOFind source sharpness statistic",
        "roundness": "The DAOFind source roundness statistic",
        "nn_label": "The label number of the nearest neighbor",
        "nn_dist": "The distance in pixels to the nearest neighbor",
        "isophotal_flux": "Isophotal flux",
        "isophotal_flux_err": "Isophotal flux error",
        "isophotal_area": "Isophotal area",
        "semimajor_sigma": "1-sigma length of the semimajor axis of the source's second moments",
        "semiminor_sigma": "1-sigma length of the semiminor axis of the source's second moments",
        "ellipticity": "1 minus the ratio of the semiminor and semimajor 1-sigma lengths",
        "orientation": "Angle (deg) from the +X axis to the major axis, counter-clockwise",
        "sky_orientation": "Position angle (deg, East of North) of the major axis",
    }
    for e in ee:
        desc[f"aper{e}_flux"] = f"Flux within the {e}% encircled energy circular aperture"
    desc["aper_total_flux"] = (
        f"Total aperture-corrected flux based on the {ee[-1]}% encircled energy circular aperture; "
        "should be used only for unresolved sources."
    )
    for name in t.colnames:
        base = name.removesuffix("_err")
        text = desc.get(name) or desc.get(base.replace("abmag", "flux").replace("vegamag", "flux"))
        if text is None and name.startswith("sky_bbox_"):
            text = f"Sky coordinate of the {name[9:]} vertex of the minimal bounding box of the source"
        if text is None and name.startswith("CI_"):
            a, b = name[3:].split("_")
            text = f"Concentration index calculated as (aper{a}_flux / aper{b}_flux)"
        if text and name != base and name not in desc:
            text += " (error)"
        if text and ("abmag" in name or "vegamag" in name):
            text += " [AB magnitude]" if "abmag" in name else " [Vega magnitude]"
        t[name].info.description = text
