"""FITS products with the jwst layout: ``uncal``, ``ramp``, ``rate``, ``rateints``, ``cal``,
``calints``, ``crf`` and ``i2d``.

Each function turns an exposure Dataset into a :class:`FitsProduct` ready to
stream; nothing is computed here. The extension names, dtypes, ``DATAMODL``
and keywords are those the jwst tools expect, so ``stdatamodels.jwst.
datamodels.open`` reads every product. A Dataset's gwcs WCS (``attrs["wcs"]``)
goes into the ``ASDF`` extension as jwst's ``meta.wcs``; its FITS approximation
(``attrs["wcs_sip"]`` cards from assign_wcs, or ``attrs["grid"].fits_cards()`` of a
mosaic) into the SCI header.
"""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import io
import os
from pathlib import Path
from typing import Any, Final, Literal

import asdf
import numpy as np
import xarray as xr

from webbflow import __version__
from webbflow.io.fits_writer import FitsProduct, ImageExtension, TableExtension
from webbflow.io.keywords import meta_to_cards, set_path
from webbflow.io.wcs_asdf import asdf_extension_with_wcs
from webbflow.model import get_meta

Suffix = Literal["uncal", "ramp", "rate", "rateints", "cal", "calints", "crf", "i2d", "segm"]

#: suffix -> (DATAMODL, [(extension, variable, dtype)])
LAYOUTS: Final[dict[str, tuple[str, tuple[tuple[str, str, Any], ...]]]] = {
    "uncal": ("Level1bModel", (("SCI", "sci", np.uint16), ("ZEROFRAME", "zeroframe", np.uint16))),
    "ramp": (
        "RampModel",
        (
            ("SCI", "sci", np.float32),
            ("PIXELDQ", "pixeldq", np.uint32),
            ("GROUPDQ", "groupdq", np.uint8),
            ("ZEROFRAME", "zeroframe", np.float32),
        ),
    ),
    "rate": (
        "ImageModel",
        (
            ("SCI", "sci", np.float32),
            ("ERR", "err", np.float32),
            ("DQ", "dq", np.uint32),
            ("VAR_POISSON", "var_poisson", np.float32),
            ("VAR_RNOISE", "var_rnoise", np.float32),
        ),
    ),
}
LAYOUTS["rateints"] = ("CubeModel", LAYOUTS["rate"][1])
_CAL: Final = (
    ("SCI", "sci", np.float32),
    ("ERR", "err", np.float32),
    ("DQ", "dq", np.uint32),
    ("AREA", "area", np.float32),  # (y, x) in calints too
    ("VAR_POISSON", "var_poisson", np.float32),
    ("VAR_RNOISE", "var_rnoise", np.float32),
    ("VAR_FLAT", "var_flat", np.float32),
)
LAYOUTS["cal"] = ("ImageModel", _CAL)
LAYOUTS["calints"] = ("CubeModel", _CAL)
LAYOUTS["crf"] = ("ImageModel", _CAL)
LAYOUTS["i2d"] = (
    "ImageModel",
    (
        ("SCI", "sci", np.float32),
        ("ERR", "err", np.float32),
        ("CON", "con", np.int32),  # (plane, y, x) context bits
        ("WHT", "wht", np.float32),
        ("VAR_POISSON", "var_poisson", np.float32),
        ("VAR_RNOISE", "var_rnoise", np.float32),
        ("VAR_FLAT", "var_flat", np.float32),
    ),
)

# source_catalog's segmentation map: SCI = source labels (0 = background)
LAYOUTS["segm"] = ("SegmentationMapModel", (("SCI", "sci", np.uint32),))

#: BUNIT of SCI (and ERR) when ``meta.bunit_data`` does not say (photom sets MJy/sr).
_BUNIT: Final = {
    "uncal": "DN",
    "ramp": "DN",
    "rate": "DN/s",
    "rateints": "DN/s",
    "cal": "DN/s",
    "calints": "DN/s",
    "crf": "DN/s",
    "i2d": "MJy/sr",
    "segm": "",
}
_CALIBRATED: Final = ("cal", "calints", "crf", "i2d")


def product_name(meta: dict[str, Any], suffix: str, fallback: str = "exposure") -> str:
    """The jwst file name for ``suffix``: ``<root>_<suffix>.fits``.

    The root is the input file name less its last ``_<suffix>`` (so
    ``jw01234001001_01101_00001_nrca1_uncal.fits`` gives
    ``jw01234001001_01101_00001_nrca1_rate.fits``).

    Examples
    --------
    >>> product_name({"filename": "jw01_nrca1_uncal.fits"}, "rate")
    'jw01_nrca1_rate.fits'
    """
    name = str(meta.get("filename") or fallback)
    stem = name[:-5] if name.endswith(".fits") else name
    root, sep, last = stem.rpartition("_")
    if sep and last.isalpha() and root:
        stem = root
    return f"{stem}_{suffix}.fits"


def fits_product(ds: xr.Dataset, path: str | Path, suffix: Suffix, *, overwrite: bool = False) -> FitsProduct:
    """A streaming FITS product of ``ds`` in the jwst layout for ``suffix``.

    Parameters
    ----------
    ds
        Ramp-level (``uncal``/``ramp``), rate-level (``rate``/``rateints``), calibrated
        (``cal``/``calints``/``crf``: also ``area``, ``var_flat``) exposure, or a mosaic
        (``i2d``: ``sci``, ``err``, ``con`` (plane, y, x) int32, ``wht``, ``var_*``), or a
        segmentation map (``segm``: ``sci`` (y, x) source labels, uint32).
        Variables the layout has but ``ds`` lacks are left out.
    path
        Output file.
    suffix
        Which product layout to write.
    overwrite
        Replace an existing file (otherwise an existing file is an error).
    """
    path = Path(path)
    datamodel, layout = LAYOUTS[suffix]
    meta = _product_meta(get_meta(ds), path, datamodel)
    bunit = _BUNIT[suffix]
    if suffix in _CALIBRATED:  # after photom the meta says MJy/sr
        bunit = str(meta.get("bunit_data") or bunit)
    sci_meta = {**meta, "bunit_data": bunit or None}  # a segmentation map has no unit
    wcs_cards = wcs_header_cards(ds)
    known_wcs = {card[0] for card in wcs_cards}
    sci_cards = wcs_cards + [c for c in meta_to_cards(sci_meta, "SCI") if c[0] not in known_wcs]
    err_unit = str(meta.get("bunit_err") or bunit) if suffix in _CALIBRATED else bunit
    ext_cards: dict[str, list[tuple[str, Any, str]]] = {
        "SCI": sci_cards,
        "ERR": [("BUNIT", err_unit, "physical units of the array values")],
    }
    images = []
    for extname, var, dtype in layout:
        if var not in ds:
            continue
        data = ds[var].data
        if suffix == "uncal" and var in ("sci", "zeroframe"):
            data = _to_uint16(data)
        else:
            data = data.astype(dtype, copy=False)
        images.append(ImageExtension(extname, data, ext_cards.get(extname, ())))
    primary = list(meta_to_cards(meta, "PRIMARY"))
    known = {card[0] for card in primary}
    extra = [(str(c[0]), c[1], str(c[2])) for c in ds.attrs.get("fits_extra", []) if c[0] not in known]
    wcs = ds.attrs.get("wcs")
    table = asdf_extension_with_wcs(wcs) if wcs is not None else asdf_extension()
    return FitsProduct(path, primary + extra, images, tables=[table], overwrite=overwrite)


def wcs_header_cards(ds: xr.Dataset) -> list[tuple[str, Any, str]]:
    """FITS WCS cards for the SCI header: a mosaic grid's, else assign_wcs's SIP approximation.

    ``attrs["grid"].fits_cards()`` (an :class:`~webbflow.steps.resample.grid.OutputGrid`)
    wins over ``attrs["wcs_sip"]``; none gives ``[]`` (the meta's ``wcsinfo`` cards stay).
    """
    grid = ds.attrs.get("grid")
    cards = grid.fits_cards() if grid is not None and hasattr(grid, "fits_cards") else ds.attrs.get("wcs_sip")
    return [(str(c[0]), c[1], str(c[2]) if len(c) > 2 else "") for c in cards or ()]


@functools.cache
def asdf_extension() -> TableExtension:
    """The ``ASDF`` extension the jwst tools look for in a datamodel FITS file.

    jwst reads a file's metadata through its embedded ASDF tree before anything
    else. Ours is minimal (no FITS hash), so readers take every value from the
    FITS headers, which stay the single source of truth.
    """
    buffer = io.BytesIO()
    asdf.AsdfFile({"webbflow_version": __version__}).write_to(buffer)
    raw = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    table = np.zeros(1, dtype=[("ASDF_METADATA", np.uint8, (raw.size,))])
    table["ASDF_METADATA"][0] = raw
    return TableExtension("ASDF", table)


def _to_uint16(data: Any) -> Any:
    return data.clip(0, 65535).round().astype(np.uint16) if data.dtype != np.uint16 else data


def _creation_time() -> _dt.datetime:
    """Now, or ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention) for byte-identical files."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
    return _dt.datetime.now(_dt.UTC)


def _product_meta(meta: dict[str, Any], path: Path, datamodel: str) -> dict[str, Any]:
    out = copy.deepcopy(meta)
    now = _creation_time().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    for key, value in (
        ("filename", path.name),
        ("model_type", datamodel),
        ("date", now),
        ("telescope", meta.get("telescope", "JWST")),
        ("origin", meta.get("origin", "webbflow")),
        ("calibration_software_name", "webbflow"),
        ("calibration_software_version", __version__),
    ):
        set_path(out, key, value)
    return out


def seed_product(ds: xr.Dataset, directory: str | Path, *, overwrite: bool = False) -> FitsProduct:
    """The noiseless seed image and segmentation map of a simulation, in Mirage's layout.

    ``<root>_<FILTER>_<PUPIL>_final_seed_image.fits`` (FGS: ``<root>_final_seed_image.fits``):
    PRIMARY with the exposure keywords, ``DATA`` (y, x) float32 in ADU/s (the
    ``seed`` e⁻/s divided by the detector's mean gain, as Mirage writes it; the
    gain used is the ``GAIN`` card) and ``SEGMAP`` (y, x) int32 catalog indices.
    """
    from webbflow.detectors import get_detector

    meta = get_meta(ds)
    det = get_detector(str(meta["instrument"]["detector"]))
    stem = product_name(meta, "x")[: -len("_x.fits")]
    optics = [meta["instrument"].get(k, "") for k in ("filter", "pupil")]
    tags = "".join(f"_{v}" for v in optics if v) if det.instrument != "FGS" else ""
    path = Path(directory) / f"{stem}{tags}_final_seed_image.fits"
    primary = list(meta_to_cards(_product_meta(meta, path, "ImageModel"), "PRIMARY"))
    known = {card[0] for card in primary}
    primary += [(str(c[0]), c[1], str(c[2])) for c in ds.attrs.get("fits_extra", []) if c[0] not in known]
    primary += [
        ("UNITS", "ADU/sec", "units of the seed image"),
        ("GAIN", det.gain, "mean gain used for e-/s -> ADU/s, e-/DN"),
        ("TGROUP", meta.get("exposure", {}).get("group_time", 0.0), "group time, s"),
    ]
    images = [
        ImageExtension("DATA", (ds["seed"].data / np.float32(det.gain)).astype(np.float32)),
        ImageExtension("SEGMAP", ds["segmap"].data.astype(np.int32)),
    ]
    return FitsProduct(path, primary, images, tables=[], overwrite=overwrite)
