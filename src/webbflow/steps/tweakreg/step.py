"""The ``tweakreg`` step (Image3): align the WCSs of a list of exposures to each other and to a catalog.

Three phases, as jwst 3.0's ``TweakRegStep`` (same parameter names and defaults):

1. **Sources** (:mod:`.sources`): a point-source list per exposure, found tile by tile and
   computed eagerly (a small reduction; pixels stay lazy).
2. **Relative alignment** (:mod:`.align`, tweakwcs): catalogs matched between exposures,
   and a linear correction of each exposure's V2/V3 tangent plane fitted (``fitgeometry``).
3. **Absolute alignment** (optional, ``abs_refcat`` = a local catalog file, :mod:`.refcat`):
   all exposures fitted together to the catalog's RA/Dec.

Outputs are the inputs (pixels untouched, still lazy) with, where a fit succeeded, the
corrected gwcs in ``attrs["wcs"]`` (a ``v2v3corr`` frame after ``v2v3vacorr``; named
``FIT-LVL3-<catalog>`` after an absolute fit), ``meta.wcsinfo.s_region`` of its footprint and
a new SIP approximation in ``attrs["wcs_sip"]``. ``meta.tweakreg`` records the fits:
``{"relative": {...}, "absolute": {...}}`` with, for each, ``status``, ``fitgeometry``,
``shift_pix``/``shift_arcsec`` (tangent-plane translation), ``rotation_deg``, ``scale``,
``skew_deg``, ``rms_pix``/``rms_arcsec``, ``nmatches``, ``nfit``; and ``nsources``.
``meta.wcsinfo.ra_ref/dec_ref/roll_ref`` are left as they were (the correction lives in
the WCS, as in jwst). The step is SKIPPED (the inputs returned unchanged, the reason
logged) with fewer than two exposure groups and no ``abs_refcat``, or when no exposure
could be fitted (e.g. fewer than ``minobj`` matched sources).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

import xarray as xr
from astropy.table import Table

from webbflow.engine.list_step import ListStep
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep
from webbflow.errors import InputError
from webbflow.model import get_meta, with_meta
from webbflow.steps.assign_wcs.wcs import s_region
from webbflow.steps.tweakreg import align
from webbflow.steps.tweakreg.refcat import read_refcat
from webbflow.steps.tweakreg.sources import FinderSettings, find_sources

log = logging.getLogger("webbflow")

_GEOMETRIES = ("shift", "rshift", "rscale", "general")


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of jwst 3.0's ``TweakRegStep`` (same names and defaults; custom catalogs not yet)."""

    save_catalogs: bool = param(False, "Write each exposure's source list (<filename>_cat.<format>).")
    catalog_format: Literal["ecsv", "fits"] = param("ecsv", "Format of saved source lists.")
    catalog_dir: str = param("", "Directory of saved source lists ('' = current directory).")
    starfinder: Literal["iraf", "dao", "segmentation"] = param("iraf", "photutils source finder.")
    snr_threshold: float = param(10.0, "Detection threshold, multiples of the background rms.", minimum=0)
    kernel_fwhm: float = param(2.5, "FWHM of the Gaussian detection kernel, px.", minimum=0)
    bkg_boxsize: int = param(400, "Background mesh box size, px (at most the tile + halo).", minimum=1)
    minsep_fwhm: float = param(0.0, "Minimum source separation, multiples of kernel_fwhm (dao/iraf).")
    sigma_radius: float = param(1.5, "Kernel truncation radius, sigmas (dao/iraf).", minimum=0)
    sharplo: float = param(0.5, "Lower bound on sharpness (dao/iraf).")
    sharphi: float = param(2.0, "Upper bound on sharpness (dao/iraf).")
    roundlo: float = param(0.0, "Lower bound on roundness (dao/iraf).")
    roundhi: float = param(0.2, "Upper bound on roundness (dao/iraf).")
    brightest: int | None = param(200, "Keep the brightest N sources per exposure (None: all).", minimum=1)
    peakmax: float | None = param(None, "Drop sources with a peak >= this (data units; None: keep).")
    npixels: int = param(10, "Minimum connected pixels of a source (segmentation).", minimum=1)
    connectivity: int = param(8, "Pixel connectivity, 4 or 8 (segmentation).", choices=(4, 8))
    nlevels: int = param(32, "Multi-thresholding levels for deblending (segmentation).", minimum=1)
    contrast: float = param(0.001, "Flux fraction for a deblended source (segmentation).", minimum=0)
    deblend: bool = param(True, "Deblend sources (segmentation).")
    refine_centroids: bool = param(
        True,
        "Gaussian-windowed centroids and inverse-variance weights (not in jwst, whose finder "
        "centroids carry a pixel-phase bias of ~0.05 px); False: the finder's centroids, as jwst.",
    )
    enforce_user_order: bool = param(False, "Align exposures in the given order.")
    expand_refcat: bool = param(False, "Add matched sources to the reference catalog as exposures align.")
    minobj: int = param(15, "Minimum matched sources for a fit.", minimum=1)
    fitgeometry: Literal["shift", "rshift", "rscale", "general"] = param("rshift", "Fit geometry.")
    nclip: int = param(3, "Sigma-clipping iterations of the fit.", minimum=0)
    sigma: float = param(3.0, "Clipping limit, rms units.", minimum=0)
    searchrad: float = param(2.0, "Search radius of a match, arcsec.", minimum=0)
    use2dhist: bool = param(True, "Find the initial offset from a 2-D histogram of separations.")
    separation: float = param(1.0, "Minimum source separation for matching, arcsec.", minimum=0)
    tolerance: float = param(0.7, "Matching tolerance, arcsec.", minimum=0)
    xoffset: float = param(0.0, "Initial guess of the x offset, arcsec.")
    yoffset: float = param(0.0, "Initial guess of the y offset, arcsec.")
    abs_refcat: str = param("", "Absolute reference catalog FILE with RA/DEC columns ('' = none).")
    abs_minobj: int = param(15, "Minimum matched sources for the absolute fit.", minimum=1)
    abs_fitgeometry: Literal["shift", "rshift", "rscale", "general"] = param(
        "rshift", "Absolute fit geometry."
    )
    abs_nclip: int = param(3, "Sigma-clipping iterations of the absolute fit.", minimum=0)
    abs_sigma: float = param(3.0, "Clipping limit of the absolute fit, rms units.", minimum=0)
    abs_searchrad: float = param(6.0, "Search radius of an absolute match, arcsec.", minimum=0)
    abs_use2dhist: bool = param(True, "2-D histogram initial offset for the absolute match.")
    abs_separation: float = param(1.0, "Minimum source separation, absolute matching, arcsec.", minimum=0)
    abs_tolerance: float = param(0.7, "Absolute matching tolerance, arcsec.", minimum=0)
    sip_approx: bool = param(True, "Refit the FITS SIP approximation of corrected WCSs (attrs['wcs_sip']).")
    sip_max_pix_error: float = param(0.01, "Largest forward SIP error allowed, px.", minimum=0)
    sip_degree: int | None = param(None, "Forward SIP degree (<= 6); None: lowest reaching the error.")
    sip_max_inv_pix_error: float = param(0.01, "Largest inverse SIP error allowed, px.", minimum=0)
    sip_inv_degree: int | None = param(None, "Inverse SIP degree (<= 6); None: lowest reaching the error.")
    sip_npoints: int = param(12, "Grid points per axis for the SIP fit.", minimum=2)

    def finder(self) -> FinderSettings:
        """The source-finding settings."""
        names = {f.name for f in fields(FinderSettings)} & set(self.to_dict())
        return FinderSettings(**{n: getattr(self, n) for n in names})

    def relative(self) -> align.FitSettings:
        """Matching and fitting settings of the relative alignment."""
        names = {f.name for f in fields(align.FitSettings)}
        return align.FitSettings(**{n: getattr(self, n) for n in names})

    def absolute(self) -> align.FitSettings:
        """Matching and fitting settings of the absolute alignment (the ``abs_*`` parameters)."""
        keys = (
            "searchrad",
            "separation",
            "tolerance",
            "use2dhist",
            "fitgeometry",
            "nclip",
            "sigma",
            "minobj",
        )
        return align.FitSettings(**{k: getattr(self, f"abs_{k}") for k in keys})


class TweakRegStep(ListStep):
    """Align exposures' WCSs to each other and, optionally, to an absolute catalog file."""

    name = "tweakreg"
    Params = Params

    def build_list(self, inputs: Sequence[xr.Dataset]) -> list[xr.Dataset]:
        """The inputs with corrected WCSs (pixels untouched and lazy); source lists computed now."""
        p = cast(Params, self.params)
        for i, ds in enumerate(inputs):
            _check(ds, i)
        metas = [get_meta(ds) for ds in inputs]
        names = [_name(m, i) for i, m in enumerate(metas)]
        groups = [align.group_id(m, i) for i, m in enumerate(metas)]
        absolute = bool(p.abs_refcat.strip())
        refcat = read_refcat(p.abs_refcat) if absolute else None  # bad names fail before any work
        if not absolute and len(set(groups)) < 2 and not p.save_catalogs:
            raise SkipStep(
                "at least two exposures are needed for relative alignment (and abs_refcat is not set)"
            )

        catalogs = find_sources(inputs, p.finder())
        for name, cat in zip(names, catalogs, strict=True):
            log.info("tweakreg: %d sources in %s", len(cat), name)
        saved = [self._save(cat, m, name) for cat, m, name in zip(catalogs, metas, names, strict=True)]
        if not absolute and len(set(groups)) < 2:
            raise SkipStep("at least two exposures are needed for relative alignment (catalogs saved)")

        def fresh_correctors() -> list[Any]:
            return [
                align.make_corrector(ds.attrs["wcs"], m, cat, name, gid)
                for ds, m, cat, name, gid in zip(inputs, metas, catalogs, names, groups, strict=True)
            ]

        correctors = fresh_correctors()
        relative: list[dict[str, Any]] = [{"status": "NOT RUN"}] * len(inputs)
        relative_failed = len(set(groups)) < 2
        if not relative_failed:
            settings = p.relative()
            if absolute:  # as jwst: no duplicate sources in the catalog later matched to abs_refcat
                settings = replace(settings, expand_refcat=True)
            why = align.relative_align(correctors, settings)
            relative = [align.fit_record(c) for c in correctors]
            relative_failed = why is not None or not any(align.fit_succeeded(c) for c in correctors)
            if relative_failed:
                log.warning("tweakreg: relative alignment failed: %s", why or _reasons(relative))
                correctors = fresh_correctors()  # a failed pass applies nothing
        records = [
            {"nsources": len(cat), "relative": rec} for cat, rec in zip(catalogs, relative, strict=True)
        ]

        if refcat is not None:
            why = align.absolute_align(correctors, refcat, p.absolute())
            if why is not None or not any(align.fit_succeeded(c) for c in correctors):
                reason = why or _reasons([align.fit_record(c) for c in correctors])
                raise SkipStep(f"alignment to {Path(p.abs_refcat).name} failed: {reason}")
            for rec, c in zip(records, correctors, strict=True):
                rec["absolute"] = align.fit_record(c)
                c.wcs.name = f"FIT-LVL3-{Path(p.abs_refcat).name}"
        elif relative_failed:
            raise SkipStep(f"no exposure could be aligned ({_reasons(relative)})")

        outputs = []
        for ds, c, rec, path in zip(inputs, correctors, records, saved, strict=True):
            outputs.append(self._output(ds, c.wcs if align.fit_succeeded(c) else None, rec, path))
        return outputs

    def _output(self, ds: xr.Dataset, wcs: Any, record: dict[str, Any], catalog: str | None) -> xr.Dataset:
        updates: dict[str, Any] = {"tweakreg": record}
        if catalog is not None:
            updates["tweakreg_catalog"] = catalog
        out = ds.copy()
        out.attrs = dict(ds.attrs)
        if wcs is not None:
            out.attrs["wcs"] = wcs
            updates["wcsinfo.s_region"] = s_region(wcs)
            if cast(Params, self.params).sip_approx:
                out.attrs["wcs_sip"] = self._sip_cards(wcs)
        return with_meta(out, updates)

    def _sip_cards(self, wcs: Any) -> list[tuple[str, Any, str]]:
        p = cast(Params, self.params)
        try:
            header = wcs.to_fits_sip(
                max_pix_error=p.sip_max_pix_error,
                degree=p.sip_degree,
                max_inv_pix_error=p.sip_max_inv_pix_error,
                inv_degree=p.sip_inv_degree,
                npoints=p.sip_npoints,
            )
        except (ValueError, RuntimeError) as exc:
            log.warning("tweakreg: no SIP approximation of the corrected WCS (%s)", exc)
            return []
        return [(c.keyword, c.value, c.comment) for c in header.cards if not c.keyword.startswith("NAXIS")]

    def _save(self, catalog: Table, meta: dict[str, Any], name: str) -> str | None:
        p = cast(Params, self.params)
        if not p.save_catalogs:
            return None
        stem = Path(str(meta.get("filename") or name)).name
        stem = stem[: -len(".fits")] if stem.endswith(".fits") else stem
        path = Path(p.catalog_dir or ".") / f"{stem}_cat.{p.catalog_format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog.write(path, format="ascii.ecsv" if p.catalog_format == "ecsv" else "fits", overwrite=True)
        log.info("tweakreg: wrote %s", path)
        return str(path)


def _check(ds: xr.Dataset, index: int) -> None:
    for name in ("sci", "err", "dq"):
        if name not in ds or ds[name].dims != ("y", "x"):
            raise InputError(f"tweakreg input {index}: needs {name!r} with dims ('y', 'x') (a cal image)")
    if ds.attrs.get("wcs") is None:
        raise InputError(f"tweakreg input {index}: no WCS in attrs['wcs'] (run assign_wcs first)")


def _name(meta: dict[str, Any], index: int) -> str:
    filename = str(meta.get("filename") or f"exposure{index}")
    return Path(filename).stem


def _reasons(records: Sequence[dict[str, Any]]) -> str:
    return "; ".join(sorted({str(r.get("status")) for r in records}))
