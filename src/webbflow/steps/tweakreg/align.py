"""Match source lists and fit WCS corrections with tweakwcs (relative, then absolute).

Each exposure becomes a ``tweakwcs.correctors.JWSTWCSCorrector`` of its gwcs (frames
``detector → v2v3 → v2v3vacorr → world``) and the V2/V3 reference angles from
``meta.wcsinfo``. ``tweakwcs.imalign.align_wcs`` matches the catalogs (``XYXYMatch``:
2-D-histogram pre-offset within ``searchrad``, then nearest neighbours within ``tolerance``,
with sources closer than ``separation`` dropped) and fits a linear correction in the V2/V3
tangent plane (``fitgeom`` shift / rshift / rscale / general, ``nclip`` iterations of
``sigma``-clipping on the rms). The correction becomes a ``v2v3corr`` frame in each WCS.

Exposures with the same ``group_id`` (one exposure on several detectors) are fitted as one.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from gwcs import WCS

from webbflow.errors import InputError
from webbflow.io.keywords import get_path

log = logging.getLogger("webbflow")

FitGeometry = Literal["shift", "rshift", "rscale", "general"]

#: The group id jwst gives every exposure for the absolute fit (all fitted as one).
_ABSOLUTE_GROUP: Final = 987654


@dataclass(frozen=True)
class FitSettings:
    """Matching and fitting settings of one alignment pass (jwst tweakreg meanings)."""

    searchrad: float = 2.0
    separation: float = 1.0
    tolerance: float = 0.7
    use2dhist: bool = True
    xoffset: float = 0.0
    yoffset: float = 0.0
    fitgeometry: FitGeometry = "rshift"
    nclip: int = 3
    sigma: float = 3.0
    minobj: int = 15
    enforce_user_order: bool = False
    expand_refcat: bool = False

    def check(self, prefix: str = "") -> None:
        """Refuse ``separation <= sqrt(2) * tolerance`` (sources would be confused)."""
        if self.separation <= math.sqrt(2.0) * self.tolerance:
            raise InputError(
                f"tweakreg.{prefix}separation = {self.separation} must exceed sqrt(2) x "
                f"{prefix}tolerance = {math.sqrt(2.0) * self.tolerance:.3f} arcsec"
            )


def group_id(meta: Mapping[str, Any], index: int) -> str:
    """Exposures sharing this id are fitted together: the exposure's identity (as jwst's).

    ``meta.group_id`` when set; else program, observation, visit, visit group, sequence,
    activity and exposure number; else the exposure's position in the list.
    """
    explicit = get_path(meta, "group_id")
    if explicit:
        return str(explicit)
    keys = (
        "observation.program_number",
        "observation.observation_number",
        "observation.visit_number",
        "observation.visit_group",
        "observation.sequence_id",
        "observation.activity_id",
        "observation.exposure_number",
    )
    values = [get_path(meta, k) for k in keys]
    if any(v in (None, "") for v in values):
        return f"exposure-{index}"
    prog, obs, visit, vgroup, seq, act, exp = (str(v) for v in values)
    return f"jw{prog}{obs}{visit}_{vgroup}{seq}{act}_{exp}"


def make_corrector(wcs: WCS, meta: Mapping[str, Any], catalog: Table, name: str, gid: str) -> Any:
    """A ``JWSTWCSCorrector`` of ``wcs`` carrying ``catalog`` (sources inside the bounding box)."""
    from tweakwcs.correctors import JWSTWCSCorrector

    wcsinfo = {k: float(get_path(meta, f"wcsinfo.{k}")) for k in ("v2_ref", "v3_ref", "roll_ref")}
    if wcs.bounding_box is not None and len(catalog):
        (x0, x1), (y0, y1) = wcs.bounding_box
        x, y = np.asarray(catalog["x"]), np.asarray(catalog["y"])
        catalog = catalog[(x > x0) & (x < x1) & (y > y0) & (y < y1)]
    catalog.meta["name"] = name
    return JWSTWCSCorrector(
        wcs=wcs, wcsinfo=wcsinfo, meta={"catalog": catalog, "name": name, "group_id": gid}
    )


def relative_align(correctors: Sequence[Any], s: FitSettings) -> str | None:
    """Align the exposures to each other in place; ``None`` or why it failed (nothing applied)."""
    from tweakwcs.imalign import align_wcs
    from tweakwcs.matchutils import XYXYMatch

    s.check()
    match = XYXYMatch(
        searchrad=s.searchrad,
        separation=s.separation,
        use2dhist=s.use2dhist,
        tolerance=s.tolerance,
        xoffset=s.xoffset,
        yoffset=s.yoffset,
    )
    failure = _run(
        align_wcs,
        correctors,
        refcat=None,
        enforce_user_order=s.enforce_user_order,
        expand_refcat=s.expand_refcat,
        minobj=s.minobj,
        match=match,
        fitgeom=s.fitgeometry,
        nclip=s.nclip,
        sigma=(s.sigma, "rmse"),
    )
    if failure:
        return failure
    # a correction larger than the search area is a mismatch, not a pointing error (as jwst)
    limit = 2.0 * ((s.searchrad if s.use2dhist else max(abs(s.xoffset), abs(s.yoffset))) + s.tolerance)
    for c in correctors:
        moved = _footprint_motion(c)
        if moved >= limit:
            return f"{c.meta['name']}: WCS moved by {moved:.2f} arcsec (> {limit:.2f}), a likely mismatch"
    return None


def absolute_align(correctors: Sequence[Any], refcat: Table, s: FitSettings) -> str | None:
    """Align all exposures together to ``refcat`` (RA/DEC) in place; ``None`` or why it failed."""
    from tweakwcs.imalign import align_wcs
    from tweakwcs.matchutils import XYXYMatch

    s.check("abs_")
    if len(refcat) < s.minobj:
        return f"{len(refcat)} reference sources, fewer than abs_minobj = {s.minobj}"
    for c in correctors:
        c.meta["group_id"] = _ABSOLUTE_GROUP
        if "REFERENCE" in c.meta.get("fit_info", {}).get("status", ""):
            del c.meta["fit_info"]
    match = XYXYMatch(
        searchrad=s.searchrad, separation=s.separation, use2dhist=s.use2dhist, tolerance=s.tolerance
    )
    return _run(
        align_wcs,
        correctors,
        refcat=refcat,
        enforce_user_order=True,
        expand_refcat=False,
        minobj=s.minobj,
        match=match,
        fitgeom=s.fitgeometry,
        nclip=s.nclip,
        sigma=(s.sigma, "rmse"),
    )


def _run(align_wcs: Any, correctors: Sequence[Any], **kwargs: Any) -> str | None:
    """Call ``align_wcs``; turn tweakwcs's "cannot align" errors into a reason string."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            align_wcs(list(correctors), **kwargs)
    except ValueError as exc:  # e.g. too few images with non-empty catalogs
        return str(exc)
    except RuntimeError as exc:  # e.g. several sources matched to one reference source
        return f"{exc} (adjust tolerance and/or separation)"
    return None


def _footprint_motion(corrector: Any) -> float:
    """Largest motion of the footprint's corners between the original and corrected WCS, arcsec."""
    before = corrector.original_wcs.footprint(axis_type="spatial")
    after = corrector.wcs.footprint(axis_type="spatial")
    a = SkyCoord(before[:, 0], before[:, 1], unit="deg")
    b = SkyCoord(after[:, 0], after[:, 1], unit="deg")
    return float(np.max(a.separation(b).arcsec))


def fit_succeeded(corrector: Any) -> bool:
    """Whether tweakwcs fitted (and applied) a correction to this exposure."""
    return "SUCCESS" in str(corrector.meta.get("fit_info", {}).get("status", ""))


def fit_record(corrector: Any) -> dict[str, Any]:
    """The fit of one exposure as JSON-able numbers (``meta.tweakreg`` of the output).

    ``shift_pix`` / ``shift_arcsec``: translation in the V2/V3 tangent plane of the fit
    (axes not along the detector's); ``rotation_deg``: proper rotation; ``scale``: mean
    scale; ``skew_deg``; ``rms_pix`` / ``rms_arcsec``: rms of the fit residuals; ``nmatches``
    matched and ``nfit`` kept sources. A reference exposure has ``status = "REFERENCE"``.
    """
    info = corrector.meta.get("fit_info", {})
    status = str(info.get("status", "NOT FITTED"))
    record: dict[str, Any] = {"status": status, "group_id": str(corrector.meta.get("group_id"))}
    if "SUCCESS" not in status:
        return record
    scale_tp = float(corrector.tanp_center_pixel_scale)  # tangent-plane units per pixel
    arcsec_per_pix = _pixel_scale_arcsec(corrector.original_wcs)
    shift = np.asarray(info["shift"], dtype=np.float64) / scale_tp
    record.update(
        fitgeometry=str(info.get("fitgeom")),
        shift_pix=[float(v) for v in shift],
        shift_arcsec=[float(v * arcsec_per_pix) for v in shift],
        rotation_deg=float(info.get("proper_rot", 0.0)),
        scale=float(info.get("<scale>", 1.0)),
        skew_deg=float(info.get("skew", 0.0)),
        rms_pix=float(info.get("rmse", math.nan)) / scale_tp,
        rms_arcsec=float(info.get("rmse", math.nan)) / scale_tp * arcsec_per_pix,
        nmatches=int(info.get("nmatches", 0)),
        nfit=int(np.count_nonzero(info.get("fitmask", []))),
    )
    return record


def _pixel_scale_arcsec(wcs: WCS) -> float:
    """Geometric-mean pixel scale at the centre of the bounding box, arcsec/px."""
    (x0, x1), (y0, y1) = wcs.bounding_box
    xc, yc = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    ra, dec = wcs(np.array([xc, xc + 1.0, xc]), np.array([yc, yc, yc + 1.0]), with_bounding_box=False)
    p = SkyCoord(ra, dec, unit="deg")
    return float(math.sqrt(p[0].separation(p[1]).arcsec * p[0].separation(p[2]).arcsec))
