"""Embedded default MIRI imaging references: FLAT, PHOTOM, AREA, DISTORTION (and a FILTEROFFSET).

Writers of :mod:`webbflow.io.reffiles.defaults` for ``DETECTOR = MIRIMAGE`` (its MIRI
dispatch merges :data:`WRITERS` and :data:`DATAMODELS` with the detector references'),
in the layouts of the jwst models named in :data:`DATAMODELS`:

* **flat** (``FlatModel``, ``FILTER = ANY``, no pupil): relative QE (y, x) float32 with a
  large-scale tilt, a per-amplifier step (MIRI's amplifier is ``x mod 4``) and 2 %
  pixel scatter, normalized to 1 on the illuminated pixels; the reference columns
  (x 0-3, 1028-1031) hold 1 and ``NO_FLAT_FIELD | DO_NOT_USE | REFERENCE_PIXEL``,
  dead pixels ``NO_FLAT_FIELD | DO_NOT_USE | DEAD`` (the same defect draw as the
  mask, :func:`webbflow.io.reffiles.arrays.defect_classes`); the coronagraph/LRS area
  left of the imager field is ``NON_SCIENCE`` as in the mask
  (:func:`webbflow.io.reffiles.miri_arrays.non_imaging_region`).
* **photom** (``MirImgPhotomModel``): one row per MIRI filter and imaging subarray,
  columns ``filter`` (S12), ``subarray`` (S17), ``photmjsr``, ``uncertainty``
  (float32, MJy/sr per DN/s). ``PHOTMJSR = photmjsr_e · Ω_fluxcal / PIXAR_SR · gain``
  from :func:`webbflow.sim.fluxcal.filter_info` (nominal, ~10 %), as
  :mod:`webbflow.io.reffiles.photom` does for the near-infrared.
* **area** (``PixelAreaModel``): the Jacobian of the SIAF ``MIRIM_FULL`` Sci2Idl
  polynomial relative to its reference point (``PIXAR_SR`` there).
* **distortion** (``DistortionModel`` ASDF): SIAF ``MIRIM_FULL`` pixels → V2/V3
  (:mod:`webbflow.io.reffiles.distortion`). MIRI's SIAF science frame *is* its
  1032 × 1024 detector frame, reference columns included (``XSciSize = 1032``,
  ``sci_to_det(1, 1) = (1, 1)``), so 0-based DMS pixel ``x`` is SIAF science ``x + 1``.
* **filteroffset** (``FilteroffsetModel`` ASDF, :func:`write_filteroffset`): zero
  column/row offsets for every filter. Not a default reftype (webbflow's WCS has no
  filter offset); jwst's MIRI imaging ``assign_wcs`` requires one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import asdf
import numpy as np
from astropy import units as u
from astropy.io import fits

from webbflow import dq
from webbflow.detectors import Detector
from webbflow.io.reffiles import arrays, distortion, miri_arrays, photom
from webbflow.io.reffiles.arrays import ARCSEC2_PER_SR, GENERATOR_VERSION
from webbflow.sim import fluxcal

#: jwst data model of each MIRI imaging reftype written here.
DATAMODELS: Final = {
    "flat": "FlatModel",
    "photom": "MirImgPhotomModel",
    "area": "PixelAreaModel",
    "distortion": "DistortionModel",
}

#: Subarrays with a PHOTOM row (the imager's; coronagraph/LRS subarrays are not imaging).
PHOTOM_SUBARRAYS: Final = ("FULL", "BRIGHTSKY", "SUB256", "SUB128", "SUB64")

#: ``EXP_TYPE`` values the imaging references apply to.
IMAGING_EXP_TYPES: Final = ("MIR_IMAGE", "MIR_TACQ", "MIR_TACONFIRM", "MIR_FLATIMAGE", "MIR_CORONCAL")

#: Flags of the default flat's DQ (standard bit values).
FLAT_BITS: Final = ("DO_NOT_USE", "DEAD", "LOW_QE", "NON_SCIENCE", "NO_FLAT_FIELD", "REFERENCE_PIXEL")


# -- arrays --------------------------------------------------------------------------------
def flat_arrays(det: Detector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sci, err, dq)`` of the MIRI imager's default pixel flat.

    Returns
    -------
    sci : ndarray, shape (1024, 1032), float32, dimensionless (mean 1 on good pixels)
    err : ndarray, same shape, float32 (``FLAT_REL_ERR * sci``; 0 where no flat)
    dq : ndarray, same shape, uint32, standard bits
    """
    rng = arrays.rng_for("flat", det.name)
    yy = np.linspace(-1.0, 1.0, det.ny)[:, None]
    xx = np.linspace(-1.0, 1.0, det.nx)[None, :]
    tilt_x, tilt_y = rng.uniform(-0.02, 0.02, 2)
    large = 1.0 + tilt_x * xx + tilt_y * yy - 0.01 * (xx**2 + yy**2)
    amp_gain = 1.0 + rng.normal(0.0, 0.005, det.namps)
    amps = amp_gain[det.amplifier(np.arange(det.nx)[None, :], np.arange(det.ny)[:, None])]
    sci = large * amps * (1.0 + rng.normal(0.0, 0.02, (det.ny, det.nx)))
    defects = arrays.defect_classes(det)
    sci[defects.low_qe] *= rng.uniform(0.4, 0.6, int(defects.low_qe.sum()))
    refcols = det.reference_mask()
    no_flat = refcols | defects.dead
    sci /= sci[~(no_flat | defects.low_qe)].mean()
    sci[no_flat] = 1.0
    err = arrays.FLAT_REL_ERR * sci
    err[no_flat] = 0.0
    dqarr = np.zeros((det.ny, det.nx), np.uint32)
    dqarr[defects.low_qe] = dq.LOW_QE
    dqarr[no_flat] = dq.NO_FLAT_FIELD | dq.DO_NOT_USE
    dqarr[defects.dead] |= np.uint32(dq.DEAD)
    dqarr[refcols] |= np.uint32(dq.REFERENCE_PIXEL)
    dqarr[miri_arrays.non_imaging_region(det)] |= np.uint32(dq.NON_SCIENCE)
    return sci.astype(np.float32), err.astype(np.float32), dqarr


def photom_table(det: Detector, pixar_sr: float) -> np.ndarray:
    """The default MIRI PHOTOM rows (``MirImgPhotomModel`` columns and dtypes).

    Parameters
    ----------
    det
        The MIRI imager (its mean gain, e⁻/DN).
    pixar_sr
        Nominal pixel area, sr, the values refer to.

    Returns
    -------
    numpy.recarray
        ``filter`` (S12), ``subarray`` (S17), ``photmjsr``, ``uncertainty`` (float32,
        MJy/sr per DN/s): every filter of :func:`webbflow.sim.fluxcal.known_elements`
        times every :data:`PHOTOM_SUBARRAYS` (same value: flux calibration does not
        depend on the readout window).
    """
    rows = []
    for element in fluxcal.known_elements("MIRI"):
        info = fluxcal.filter_info("MIRI", element)
        value = info.photmjsr * info.pixel_area_sr / pixar_sr * det.gain
        rows += [(element, sub, value) for sub in PHOTOM_SUBARRAYS]
    values = np.array([r[2] for r in rows], np.float32)
    return np.rec.fromarrays(
        [
            np.array([r[0] for r in rows], "S12"),
            np.array([r[1] for r in rows], "S17"),
            values,
            (values * np.float32(photom.PHOTOM_REL_UNCERTAINTY)).astype(np.float32),
        ],
        dtype=[("filter", "S12"), ("subarray", "S17"), ("photmjsr", "f4"), ("uncertainty", "f4")],
    )


# -- writers -------------------------------------------------------------------------------
def _header(det: Detector, reftype: str, descrip: str, **extra: Any) -> fits.Header:
    from webbflow.io.reffiles.defaults import primary_header

    h = primary_header(det, reftype, descrip, **extra)
    h["DATAMODL"] = (DATAMODELS[reftype], "Type of data model")
    h["EXP_TYPE"] = ("MIR_IMAGE", "Type of data in the exposure")
    h["P_EXP_TY"] = ("|".join(IMAGING_EXP_TYPES) + "|", "")
    h["READPATT"] = ("ANY", "Readout pattern")
    h["FILTER"] = ("ANY", "Name of the filter element used")
    h["BAND"] = ("N/A", "MRS wavelength band")
    return h


def _write(tmp: Path, header: fits.Header, hdus: list[Any]) -> None:
    from webbflow.io.reffiles.defaults import _final_name

    header["FILENAME"] = _final_name(tmp)
    fits.HDUList([fits.PrimaryHDU(header=header), *hdus]).writeto(tmp)


def write_flat(det: Detector, tmp: Path, _: int | None) -> None:
    """``FlatModel``: SCI, ERR, DQ, DQ_DEF (any filter)."""
    from webbflow.io.reffiles.defaults import dq_def_hdu

    sci, err, dqarr = flat_arrays(det)
    h = _header(det, "flat", "webbflow default MIRI imager pixel flat (relative QE, any filter)")
    hdus = [fits.ImageHDU(sci, name="SCI"), fits.ImageHDU(err, name="ERR"), fits.ImageHDU(dqarr, name="DQ")]
    _write(tmp, h, [*hdus, dq_def_hdu(FLAT_BITS, local_bits=False)])


def write_area(det: Detector, tmp: Path, _: int | None) -> None:
    """``PixelAreaModel``: SCI relative area (SIAF ``MIRIM_FULL``), ``PIXAR_SR``/``PIXAR_A2``."""
    sci, nominal_sr = arrays.pixel_area(det)
    h = _header(
        det,
        "area",
        "webbflow default MIRI pixel area map (SIAF MIRIM_FULL distortion)",
        PIXAR_SR=(nominal_sr, "Nominal pixel area in steradians"),
        PIXAR_A2=(nominal_sr * ARCSEC2_PER_SR, "Nominal pixel area in arcsec^2"),
    )
    _write(tmp, h, [fits.ImageHDU(sci, name="SCI")])


def write_photom(det: Detector, tmp: Path, _: int | None) -> None:
    """``MirImgPhotomModel``: the PHOTOM table of :func:`photom_table`."""
    pixar_sr = photom.nominal_pixel_area_sr(det)
    h = _header(
        det,
        "photom",
        "webbflow default MIRI imaging photom (nominal)",
        PIXAR_SR=(pixar_sr, "Nominal pixel area in steradians"),
        PIXAR_A2=(pixar_sr * ARCSEC2_PER_SR, "Nominal pixel area in arcsec^2"),
    )
    _write(tmp, h, [fits.BinTableHDU(photom_table(det, pixar_sr), name="PHOTOM")])


def write_distortion(det: Detector, tmp: Path, _: int | None) -> None:
    """``DistortionModel`` ASDF: SIAF ``MIRIM_FULL`` pixels → V2/V3 arcsec."""
    from webbflow.io.reffiles.defaults import _final_name

    distortion.write_distortion(det, tmp, GENERATOR_VERSION, _final_name(tmp))


def write_filteroffset(
    det: Detector,
    path: Path,
    _: int | None = None,
    *,
    offsets: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """A ``FilteroffsetModel`` ASDF for every MIRI filter (jwst's MIRI imaging WCS needs one).

    ``offsets``: ``{FILTER: (column_offset, row_offset)}`` px; other filters (default all) get 0.
    """
    given = {k.upper(): (float(v[0]), float(v[1])) for k, v in (offsets or {}).items()}
    filters = []
    for element in fluxcal.known_elements("MIRI"):
        col, row = given.get(element, (0.0, 0.0))
        filters.append({"filter": element, "column_offset": col, "row_offset": row})
    meta = {
        "telescope": "JWST",
        "reftype": "FILTEROFFSET",
        "model_type": "FilteroffsetModel",
        "filename": path.name,
        "description": "webbflow zero MIRI imager filter offsets (nominal)",
        "author": "webbflow",
        "pedigree": "DUMMY",
        "useafter": "2000-01-01T00:00:00",
        "instrument": {"name": "MIRI", "detector": det.name},
        "exposure": {"type": "MIR_IMAGE", "p_exptype": "|".join(IMAGING_EXP_TYPES) + "|"},
        "input_units": u.pix,
    }
    with path.open("wb") as f:
        asdf.AsdfFile({"meta": meta, "filters": filters}).write_to(f, all_array_storage="inline")


#: reftype → writer ``(detector, temporary path, dark frames) -> None`` (contract §1).
WRITERS: Final[dict[str, Callable[[Detector, Path, int | None], None]]] = {
    "flat": write_flat,
    "photom": write_photom,
    "area": write_area,
    "distortion": write_distortion,
}

__all__ = ["DATAMODELS", "WRITERS", "flat_arrays", "photom_table", "write_filteroffset"]
