"""The ``assign_wcs`` step: the gwcs imaging WCS of an exposure, in ``ds.attrs["wcs"]``.

No pixel is touched and nothing is computed: the step builds the WCS (:mod:`.wcs`) from the
pointing in ``meta.wcsinfo`` and the distortion (a jwst ``DISTORTION`` reference: an override,
CRDS when configured, else the embedded default set's, which holds the detector's SIAF
polynomials; ``override_distortion=N/A`` uses the SIAF polynomials directly), fills
``meta.wcsinfo.s_region`` from its footprint and, with ``sip_approx``, a FITS SIP
approximation in ``ds.attrs["wcs_sip"]`` (header cards for the ``SCI`` extension).

MIRI imager: as jwst, a ``FILTEROFFSET`` reference (an override or CRDS; there is no embedded
default, which means no offset) shifts the full-frame pixels by the filter's
``(column_offset, row_offset)`` before the distortion. Other instruments: ``N/A``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import asdf
import xarray as xr
from astropy.modeling import Model
from astropy.modeling import models as am

from webbflow.detectors import get_detector
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import RefFile, Rerun, Resolver, SkipStep, Step, default_resolver
from webbflow.errors import InputError, ReferenceFileError
from webbflow.io.wcs_asdf import read_distortion
from webbflow.model import get_meta, meta_value, with_meta
from webbflow.steps.assign_wcs.wcs import imaging_wcs, s_region, siaf_distortion, siaf_frame

log = logging.getLogger("webbflow")

#: Exposure types whose WCS is not an imaging one (spectra, grisms): skipped for now.
_NOT_IMAGING: Final = ("GRISM", "WFSS", "SOSS")


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of jwst 3.0's ``AssignWcsStep`` that apply to imaging (same names, defaults)."""

    sip_approx: bool = param(True, "Also fit a FITS SIP approximation of the WCS (attrs['wcs_sip']).")
    sip_max_pix_error: float = param(0.01, "Largest forward SIP error allowed, px.", minimum=0)
    sip_degree: int | None = param(None, "Forward SIP degree (<= 6); None: lowest reaching the error.")
    sip_max_inv_pix_error: float = param(0.01, "Largest inverse SIP error allowed, px.", minimum=0)
    sip_inv_degree: int | None = param(None, "Inverse SIP degree (<= 6); None: lowest reaching the error.")
    sip_npoints: int = param(12, "Grid points per axis for the SIP fit.", minimum=2)


class AssignWcsStep(Step):
    """Attach the imaging WCS (detector → v2v3 → v2v3vacorr → world) to a rate-level exposure."""

    name = "assign_wcs"
    reftypes = ("distortion", "filteroffset")
    optional_reftypes = ("distortion", "filteroffset")
    Params = Params

    def __call__(
        self, ds: xr.Dataset, resolver: Resolver | None = None, *, rerun: Rerun | None = None
    ) -> xr.Dataset:
        """As :meth:`Step.__call__`; the distortion reference is resolved by :class:`_DistortionResolver`."""
        return super().__call__(ds, _DistortionResolver(resolver), rerun=rerun)

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """``ds`` (data untouched) with ``attrs["wcs"]``, ``meta.wcsinfo.s_region`` and the SIP cards."""
        if "sci" not in ds or ds.sci.dims[-2:] != ("y", "x"):
            raise InputError("exposure: assign_wcs needs an image with dims (..., y, x) in 'sci'")
        exp_type = str(meta_value(ds, "exposure.type", "") or "").upper()
        if any(tag in exp_type for tag in _NOT_IMAGING):
            raise SkipStep(f"EXP_TYPE={exp_type}: only imaging WCSs are built")
        distortion = refs["distortion"].attrs["model"] if "distortion" in refs else None
        if "filteroffset" in refs:
            distortion = with_filter_offset(distortion, refs["filteroffset"], ds)
        wcs = imaging_wcs(get_meta(ds), ds.sizes["y"], ds.sizes["x"], distortion)
        log.info("assign_wcs: %s distortion", "reference" if distortion is not None else "SIAF")
        out = ds.copy()
        out.attrs = {**ds.attrs, "wcs": wcs}
        if cast(Params, self.params).sip_approx:
            out.attrs["wcs_sip"] = self._sip_cards(wcs)
        return with_meta(out, {"wcsinfo.s_region": s_region(wcs)})

    def _sip_cards(self, wcs: Any) -> list[tuple[str, Any, str]]:
        p = cast(Params, self.params)
        header = wcs.to_fits_sip(
            max_pix_error=p.sip_max_pix_error,
            degree=p.sip_degree,
            max_inv_pix_error=p.sip_max_inv_pix_error,
            inv_degree=p.sip_inv_degree,
            npoints=p.sip_npoints,
        )
        # the writer sets the array size: keep only WCS cards
        return [(c.keyword, c.value, c.comment) for c in header.cards if not c.keyword.startswith("NAXIS")]


class _DistortionResolver:
    """Resolves ``distortion`` for :class:`AssignWcsStep`; other reftypes go to ``inner``.

    Resolution is the usual one (override → CRDS → embedded default,
    :mod:`webbflow.io.reffiles.distortion`); ``N/A`` means the SIAF polynomials built in
    memory. The opened reference is an empty Dataset whose ``attrs["model"]`` is the file's
    model (read whole: it is small and not tiled).
    """

    def __init__(self, inner: Resolver | None) -> None:
        self.inner = inner

    def _inner(self) -> Resolver:
        if self.inner is None:
            self.inner = default_resolver()
        return self.inner

    def resolve(self, reftype: str, ds: xr.Dataset, override: str | None) -> RefFile | None:
        if reftype != "filteroffset":
            return self._inner().resolve(reftype, ds, override)
        if str(meta_value(ds, "instrument.name", "") or "").upper() != "MIRI":
            return None
        if override is not None:
            return self._inner().resolve(reftype, ds, override)
        try:  # CRDS when configured; there is no embedded default (no offset)
            return self._inner().resolve(reftype, ds, None)
        except ReferenceFileError:
            return None

    def open(self, ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
        if ref.reftype == "filteroffset":
            offsets = read_filter_offsets(ref.path)
            return xr.Dataset(
                attrs={"offsets": offsets, "meta": {}, "name": ref.label, "path": str(ref.path)}
            )
        if ref.reftype != "distortion":
            return self._inner().open(ref, ds)
        model = read_distortion(ref.path, meta_value(ds, "instrument.detector"))
        return xr.Dataset(attrs={"model": model, "meta": {}, "name": ref.label, "path": str(ref.path)})


def read_filter_offsets(path: str | Path) -> dict[str, tuple[float, float]]:
    """``{FILTER: (column_offset, row_offset)}`` px of a jwst ``FILTEROFFSET`` ASDF reference."""
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            rows = list(af.tree.get("filters") or [])
            return {
                str(r["filter"]).strip().upper(): (float(r["column_offset"]), float(r["row_offset"]))
                for r in rows
            }
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ReferenceFileError(f"{path}: not a readable FILTEROFFSET reference ({exc})") from None


def with_filter_offset(distortion: Model | None, ref: xr.Dataset, ds: xr.Dataset) -> Model | None:
    """``Shift(col) & Shift(row) | distortion`` for the exposure's filter (MIRI imager), as jwst.

    The offsets are full-frame pixels added before the distortion; ``distortion`` ``None`` means
    the SIAF one. A filter without a row leaves the distortion unchanged.
    """
    filt = str(meta_value(ds, "instrument.filter", "") or "").strip().upper()
    col, row = ref.attrs["offsets"].get(filt, (0.0, 0.0))
    if col == 0.0 and row == 0.0:
        return distortion
    log.info("assign_wcs: %s filter offset (%.4g, %.4g) px", filt, col, row)
    if distortion is None:
        detector = str(meta_value(ds, "instrument.detector", "") or "")
        det = get_detector(detector)
        distortion = siaf_distortion(siaf_frame(detector), nx=det.nx, ny=det.ny)
    return am.Shift(col) & am.Shift(row) | distortion
