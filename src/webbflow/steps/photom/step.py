"""The ``photom`` step: DN/s → MJy/sr with the PHOTOM reference; attach the AREA map.

As jwst 3.0 for NIRCam, NIRISS, FGS and MIRI imaging: the PHOTOM row is chosen by
``FILTER`` and ``PUPIL`` (NIRCam also ``SUBARRAY`` when the table has that
column; FGS has one row; MIRI: ``FILTER`` and ``SUBARRAY``, else the filter's
``SUBARRAY=GENERIC`` row), its ``PHOTMJSR`` (divided by the time-dependence
factor at ``EXPMID`` when the file has one and ``apply_time_correction``) scales
the rate planes (:mod:`webbflow.steps.photom.kernel`). ``meta.photometry``
records ``PHOTMJSR``, ``PHOTUJA2`` and the nominal pixel area (``PIXAR_SR``,
``PIXAR_A2`` from the AREA reference, else from the PHOTOM one); the AREA map
(relative pixel area, not applied to the data) becomes the variable ``area``
(y, x), as jwst attaches it to the model. Unlike jwst, a missing row is an error
rather than a warning, and NIRISS ``calints`` are calibrated too (jwst skips them).
``source_type`` only matters for tables in MJy (spectroscopy), so it has no effect
on imaging.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import ReferenceFileError
from webbflow.model import meta_value, with_meta
from webbflow.steps.flat_field.step import SUFFIXES, require_rate
from webbflow.steps.photom.kernel import Calibrated, photom_kernel, time_correction

log = logging.getLogger("webbflow")

#: µJy/arcsec² per MJy/sr.
MJSR_TO_UJA2: Final = 1e12 * (math.pi / 180.0 / 3600.0) ** 2

_TIME_LAWS: Final = ("linear", "exponential", "powerlaw")


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`PhotomStep` (jwst 3.0 ``PhotomStep.spec``)."""

    inverse: bool = param(False, "Divide by the conversion instead of multiplying (undo photom).")
    source_type: str | None = param(
        None,
        "Process as this source type (POINT/EXTENDED); no effect on imaging.",
        choices=(None, "POINT", "EXTENDED"),
    )
    apply_time_correction: bool = param(True, "Apply the PHOTOM file's time dependence, if it has one.")


class PhotomStep(Step):
    """Multiply rates by PHOTMJSR (MJy/sr per DN/s); record the pixel area; attach the area map."""

    name = "photom"
    reftypes = ("photom", "area")
    optional_reftypes = ("area",)
    Params = Params

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """``ds`` in MJy/sr (lazy), with ``area`` and ``meta.photometry``."""
        require_rate(ds, self.name)
        table = refs["photom"]
        params: Any = self.params
        conversion = photmjsr(table, ds, apply_time_correction=params.apply_time_correction)
        log.info("photom: PHOTMJSR = %.6g MJy/sr per DN/s from %s", conversion, table.attrs.get("name"))
        out: dict[str, xr.DataArray] = {}
        for suffix in SUFFIXES:
            names = {f: f"{f}{suffix}" for f in Calibrated._fields}
            required = [n for f, n in names.items() if f != "var_flat"]
            if not all(n in ds for n in required):
                continue
            if names["var_flat"] not in ds:
                del names["var_flat"]
            dims = tuple(str(d) for d in ds[names["sci"]].dims)
            result = map_tiles(
                photom_kernel,
                {f: ds[n] for f, n in names.items()},
                {f"{f}{suffix}": (dims, np.uint32 if f == "dq" else np.float32) for f in Calibrated._fields},
                like=ds,
                kwargs={"conversion": conversion, "do_not_use": dq.DO_NOT_USE, "inverse": params.inverse},
                name=f"photom{suffix}",
            )
            out.update(result)
        pixar_sr, pixar_a2 = pixel_area(refs)
        if "area" in refs:
            out["area"] = refs["area"]["sci"].astype(np.float32)
        unit = "DN/s" if params.inverse else "MJy/sr"
        meta = {
            "photometry.conversion_megajanskys": conversion,
            "photometry.conversion_microjanskys": conversion * MJSR_TO_UJA2,
            "photometry.pixelarea_steradians": pixar_sr,
            "photometry.pixelarea_arcsecsq": pixar_a2,
            "bunit_data": unit,
            "bunit_err": unit,
        }
        return with_meta(ds.assign(out), meta)


def photmjsr(table: xr.Dataset, ds: xr.Dataset, *, apply_time_correction: bool = True) -> float:
    """The conversion (MJy/sr per DN/s) of ``ds``'s filter/pupil from the PHOTOM ``table``.

    Raises
    ------
    ReferenceFileError
        No row (or several rows) matching the exposure's FILTER/PUPIL(/SUBARRAY).
    """
    path = table.attrs.get("path", "PHOTOM reference")
    instrument = str(meta_value(ds, "instrument.name", "") or "").upper()
    keys = {
        "filter": meta_value(ds, "instrument.filter"),
        "pupil": meta_value(ds, "instrument.pupil"),
        "subarray": meta_value(ds, "subarray.name"),
    }
    match, used = _match_rows(table, keys, instrument)
    if instrument == "MIRI" and not match.any() and "subarray" in table:
        # older MIRI files have one SUBARRAY=GENERIC row per filter (jwst's fallback)
        match, used = _match_rows(table, {**keys, "subarray": "GENERIC"}, instrument)
    rows = np.flatnonzero(match)[:1] if instrument == "FGS" else np.flatnonzero(match)
    where = " ".join(f"{k}={v}" for k, v in used.items())
    if len(rows) != 1:
        what = "no row" if len(rows) == 0 else f"{len(rows)} rows"
        raise ReferenceFileError(f"{path}: {what} for {where} in the PHOTOM table (expected exactly one)")
    row = int(rows[0])
    value = float(table["photmjsr"].values[row])
    coeffs = {
        law: {
            str(v).removeprefix(f"{law}_"): table[v].values
            for v in table.data_vars
            if str(v).startswith(f"{law}_")
        }
        for law in _TIME_LAWS
        if f"{law}_t0" in table
    }
    if apply_time_correction and coeffs:
        mid_time = meta_value(ds, "exposure.mid_time")
        if mid_time is None:
            raise ReferenceFileError(
                f"{path}: has a time dependence but the exposure has no EXPMID; "
                "set apply_time_correction=False"
            )
        factor = float(time_correction(float(mid_time), coeffs)[row])
        if factor != 1.0:
            log.info("photom: time-dependence correction %.6g", factor)
            value /= factor
    return value


def _match_rows(
    table: xr.Dataset, keys: Mapping[str, Any], instrument: str
) -> tuple[np.ndarray, dict[str, str]]:
    """Rows of ``table`` matching ``keys`` (FILTER, PUPIL; SUBARRAY for NIRCam and MIRI)."""
    match = np.ones(table.sizes.get("row", 0), bool)
    used: dict[str, str] = {}
    if instrument == "FGS":
        return match, used
    for column, value in keys.items():
        if column not in table or (column == "subarray" and instrument not in ("NIRCAM", "MIRI")):
            continue
        wanted = str(value or "").strip().upper()
        used[column.upper()] = wanted or "(none)"
        match &= np.asarray(table[column].values) == wanted
    return match, used


def pixel_area(refs: Mapping[str, xr.Dataset]) -> tuple[float | None, float | None]:
    """``(PIXAR_SR, PIXAR_A2)`` from the AREA reference's header, else the PHOTOM one's."""
    for reftype in ("area", "photom"):
        header = refs[reftype].attrs.get("header", {}) if reftype in refs else {}
        sr, a2 = header.get("PIXAR_SR"), header.get("PIXAR_A2")
        if sr is not None or a2 is not None:
            return (None if sr is None else float(sr)), (None if a2 is None else float(a2))
    return None, None
