"""The PHOTOM reference: the embedded default's table, and a reader for any PHOTOM file.

A jwst imaging PHOTOM reference (``NrcImgPhotomModel``, ``NisImgPhotomModel``,
``FgsImgPhotomModel``) is a binary table, extension ``PHOTOM``, with one row per
filter/pupil combination: ``filter``, ``pupil`` (not for FGS), ``photmjsr``
(MJy/sr producing 1 DN/s in a pixel of the nominal area) and ``uncertainty``
(MJy/sr); the primary header carries ``PIXAR_SR``/``PIXAR_A2``. Optional
``TIMECOEFF_LINEAR``/``_EXPONENTIAL``/``_POWERLAW`` tables, row-aligned with
``PHOTOM``, describe a throughput change with time.

Default values come from :mod:`webbflow.sim.fluxcal` (nominal, ~10 %):
``PHOTMJSR = photmjsr_e · Ω_fluxcal / PIXAR_SR · gain``, where ``photmjsr_e`` is
the surface brightness giving 1 e⁻/s in a pixel of fluxcal's nominal area
``Ω_fluxcal``; rescaling to the detector's ``PIXAR_SR`` (the AREA reference's
nominal area, from the SIAF distortion) keeps ``PHOTMJSR · PIXAR_SR`` equal to the
flux density of 1 DN/s, so point-source photometry on ``cal`` images gives back
the simulator's input fluxes; the detector's mean gain (e⁻/DN) converts e⁻ to DN.

:func:`open_photom_table` is this module's reader: the image opener
(:mod:`webbflow.io.reffiles.opener`) hands PHOTOM files to it, since a table has
no pixels to crop or tile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import xarray as xr
from astropy.io import fits

from webbflow.detectors import Detector
from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError
from webbflow.io.fits_reader import open_fits
from webbflow.io.keywords import header_to_meta
from webbflow.io.reffiles.arrays import ARCSEC2_PER_SR, FULL_APERTURES
from webbflow.model import meta_value
from webbflow.sim import fluxcal
from webbflow.sim.geometry import Geometry, Pointing

#: jwst data model of each instrument's imaging PHOTOM reference.
PHOTOM_DATAMODELS: Final = {
    "NIRCAM": "NrcImgPhotomModel",
    "NIRISS": "NisImgPhotomModel",
    "FGS": "FgsImgPhotomModel",
    "MIRI": "MirImgPhotomModel",
}

#: Relative uncertainty of the default PHOTMJSR values (fluxcal's stated accuracy).
PHOTOM_REL_UNCERTAINTY: Final = 0.10

#: NIRCam pupil-wheel filters and the filter-wheel filter they are used with.
NIRCAM_BLOCKING_FILTERS: Final = {
    "F162M": "F150W2",
    "F164N": "F150W2",
    "F323N": "F322W2",
    "F405N": "F444W",
    "F466N": "F444W",
    "F470N": "F444W",
}

#: Columns of each time-dependence table, in jwst's schema order.
TIMECOEFF_COLUMNS: Final = {
    "linear": ("t0", "lossperyear"),
    "exponential": ("t0", "amplitude", "tau", "const"),
    "powerlaw": ("t0", "year1value", "tsoft", "alpha"),
}


# -- the default table -----------------------------------------------------------------------
def combinations(det: Detector) -> list[tuple[str, str]]:
    """``(FILTER, PUPIL)`` imaging combinations of ``det`` (``[("", "")]`` for FGS).

    NIRCam: every band of the detector's channel, filter-wheel filters with
    ``PUPIL=CLEAR`` and pupil-wheel filters behind their blocking filter.
    NIRISS: pupil-wheel filters with ``FILTER=CLEAR``, filter-wheel filters with
    ``PUPIL=CLEARP``.
    """
    if det.instrument == "FGS":
        return [("", "")]
    rows = []
    for element in fluxcal.known_elements(det.instrument):
        # the "wheel" column of fluxcal's filters.ecsv (no public accessor yet)
        in_pupil_wheel = fluxcal._table()[(det.instrument, element)][0] == "pupil"
        if det.instrument == "NIRISS":
            rows.append(("CLEAR", element) if in_pupil_wheel else (element, "CLEARP"))
            continue
        pair = (NIRCAM_BLOCKING_FILTERS[element], element) if in_pupil_wheel else (element, "CLEAR")
        long = fluxcal.filter_info("NIRCAM", *pair).pivot_um > fluxcal.NIRCAM_LW_CUTON_UM
        if long == (det.channel == "LONG"):
            rows.append(pair)
    return rows


def nominal_pixel_area_sr(det: Detector) -> float:
    """``PIXAR_SR`` of ``det``: the pixel solid angle at its full-frame aperture's reference point.

    The same value the default AREA reference carries (SIAF distortion).
    """
    return Geometry.from_aperture(FULL_APERTURES[det.name], Pointing(0.0, 0.0, 0.0)).nominal_pixel_area_sr


def photom_table(det: Detector, pixar_sr: float) -> np.ndarray:
    """The default PHOTOM rows of ``det`` as a record array (jwst column names and dtypes).

    Parameters
    ----------
    det
        The detector (its instrument, channel and mean gain).
    pixar_sr
        Nominal pixel area, sr, the PHOTMJSR values refer to.

    Returns
    -------
    numpy.recarray
        Columns ``filter``, ``pupil`` (``S12``; not for FGS), ``photmjsr`` and
        ``uncertainty`` (float32, MJy/sr per DN/s).
    """
    pairs = combinations(det)
    values = []
    for fil, pup in pairs:
        info = fluxcal.filter_info(det.instrument, fil or None, pup or None)
        values.append(info.photmjsr * info.pixel_area_sr / pixar_sr * det.gain)
    photmjsr = np.array(values, np.float32)
    columns: list[np.ndarray] = [photmjsr, (photmjsr * np.float32(PHOTOM_REL_UNCERTAINTY)).astype(np.float32)]
    dtype: list[tuple[str, str]] = [("photmjsr", "f4"), ("uncertainty", "f4")]
    if det.instrument != "FGS":
        columns = [np.array([p[0] for p in pairs], "S12"), np.array([p[1] for p in pairs], "S12"), *columns]
        dtype = [("filter", "S12"), ("pupil", "S12"), *dtype]
    return np.rec.fromarrays(columns, dtype=dtype)


def photom_hdus(det: Detector) -> tuple[dict[str, tuple[Any, str]], fits.BinTableHDU]:
    """Primary-header cards and the ``PHOTOM`` table HDU of ``det``'s default PHOTOM reference."""
    pixar_sr = nominal_pixel_area_sr(det)
    cards = {
        "DATAMODL": (PHOTOM_DATAMODELS[det.instrument], "Type of data model"),
        "PIXAR_SR": (pixar_sr, "Nominal pixel area in steradians"),
        "PIXAR_A2": (pixar_sr * ARCSEC2_PER_SR, "Nominal pixel area in arcsec^2"),
    }
    return cards, fits.BinTableHDU(photom_table(det, pixar_sr), name="PHOTOM")


# -- the reader ----------------------------------------------------------------------------
def table_strings(column: Any) -> np.ndarray:
    """A FITS table's text column as stripped upper-case ``str`` (bytes decoded)."""
    return np.array(
        [str(v.decode() if isinstance(v, bytes) else v).strip().upper() for v in column], dtype=str
    )


def open_photom_table(ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
    """A PHOTOM reference as a small in-memory Dataset along dim ``row``.

    Parameters
    ----------
    ref
        The resolved PHOTOM file.
    ds
        The exposure (its ``DETECTOR`` must match the file's, unless that is ``ANY``).

    Returns
    -------
    xarray.Dataset
        ``photmjsr``, ``uncertainty`` (float32, MJy/sr per DN/s); ``filter``, ``pupil``,
        ``subarray`` (upper-case str) when the table has them; per time-dependence
        table ``<kind>_<column>`` (float64, e.g. ``linear_t0``). ``attrs``: ``header``,
        ``meta``, ``name``, ``path``.

    Raises
    ------
    ReferenceFileError
        Not FITS, no ``PHOTOM`` table or ``photmjsr`` column, a time-dependence table
        of another length, or another detector.
    """
    path = Path(ref.path)
    with open_fits(path, expected="a photom reference file", error=ReferenceFileError) as hdul:
        header = hdul[0].header
        if "PHOTOM" not in hdul or not isinstance(hdul["PHOTOM"], fits.BinTableHDU):
            raise ReferenceFileError(
                f"{path}: no PHOTOM table extension, expected one in a photom reference file"
            )
        table = hdul["PHOTOM"].data
        names = [n.lower() for n in table.columns.names]
        if "photmjsr" not in names:
            raise ReferenceFileError(
                f"{path}: PHOTOM table has no photmjsr column (columns: {', '.join(names)}); "
                "only imaging photom references are supported"
            )
        nrows = len(table)
        data: dict[str, Any] = {
            "photmjsr": ("row", np.asarray(table["photmjsr"], np.float32)),
            "uncertainty": (
                "row",
                np.asarray(table["uncertainty"] if "uncertainty" in names else np.zeros(nrows), np.float32),
            ),
        }
        for column in ("filter", "pupil", "subarray"):
            if column in names:
                data[column] = ("row", table_strings(table[column]))
        for kind, columns in TIMECOEFF_COLUMNS.items():
            extname = f"TIMECOEFF_{kind.upper()}"
            if extname not in hdul:
                continue
            coeffs = hdul[extname].data
            if len(coeffs) != nrows:
                raise ReferenceFileError(
                    f"{path}: {extname} has {len(coeffs)} rows, expected {nrows} (one per PHOTOM row)"
                )
            for column in columns:
                data[f"{kind}_{column}"] = ("row", np.asarray(coeffs[column], np.float64))
        header_dict = {k: v for k, v in header.items() if k not in ("HISTORY", "COMMENT", "")}
        meta, _ = header_to_meta(header)
    ref_det = str(header_dict.get("DETECTOR", "") or "").strip().upper()
    exp_det = str(meta_value(ds, "instrument.detector", "") or "").strip().upper()
    if ref_det not in ("", "ANY", "N/A", "MULTIPLE") and exp_det and ref_det != exp_det:
        raise ReferenceFileError(f"{path}: reference is for DETECTOR={ref_det}, exposure is {exp_det}")
    attrs = {"header": header_dict, "meta": meta, "name": ref.label, "path": str(path)}
    return xr.Dataset(data, attrs=attrs)
