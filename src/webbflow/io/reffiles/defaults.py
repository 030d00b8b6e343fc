"""Write the embedded default reference set: jwst-format FITS files, made on first use.

:func:`default_reference` returns the path of the default file of a reftype
for a detector, generating it (only that one) into the cache folder if it is
not there. The folder is ``$WEBBFLOW_CACHE`` or
``platformdirs.user_cache_dir("webbflow")``, subfolder
``defaults-v<GENERATOR_VERSION>/<DETECTOR>``. Files are written under a
temporary name and renamed, so concurrent workers may race harmlessly: every
writer produces the same bytes (no date or other varying card is written).

The layouts follow the jwst reference-file data models (``MaskModel``,
``SaturationModel``, ``SuperBiasModel``, ``LinearityModel``, ``DarkModel``,
``GainModel``, ``ReadnoiseModel``, ``IPCModel``, ``FlatModel``,
``PixelAreaModel``, ``NrcImgPhotomModel``; the ``DistortionModel`` is an ASDF file,
:mod:`.distortion`) so the jwst pipeline can read the files too.

MIRI detectors take their writers and model names from :data:`MIRI_MODULES`
(:mod:`.miri_detector`: mask … emicorr, ``DarkMIRIModel`` darks; :mod:`.miri_imaging`:
flat, photom, area, distortion); MIRI has no superbias or IPC default.

One file per reftype and detector: the default FLAT and AREA are written with
``FILTER = PUPIL = ANY`` and do not depend on the filter (jwst's flats do; CRDS
or an override gives per-filter ones).
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import platformdirs
from astropy.io import fits

from webbflow import dq
from webbflow.detectors import Detector, get_detector
from webbflow.errors import ReferenceFileError, UsageError, suggest
from webbflow.io.reffiles import arrays, distortion, photom
from webbflow.io.reffiles.arrays import GENERATOR_VERSION

#: A default-set writer: ``(detector, temporary path, dark frames or None)``.
Writer = Callable[[Detector, Path, int | None], None]

#: Reftypes the embedded default set provides, with their jwst data model name.
DATAMODELS: Final = {
    "mask": "MaskModel",
    "saturation": "SaturationModel",
    "superbias": "SuperBiasModel",
    "linearity": "LinearityModel",
    "dark": "DarkModel",
    "gain": "GainModel",
    "readnoise": "ReadnoiseModel",
    "ipc": "IPCModel",
    "flat": "FlatModel",
    "area": "PixelAreaModel",
    # NIRCam's; NIRISS and FGS files say NisImgPhotomModel / FgsImgPhotomModel (reffiles.photom)
    "photom": "NrcImgPhotomModel",
}

#: Reftypes of the default set written as ASDF files (not FITS images or tables), opened by
#: their step rather than by the reference opener: the SIAF distortion (:mod:`.distortion`).
ASDF_DATAMODELS: Final = {"distortion": "DistortionModel"}

#: Reftypes written as ASDF for any instrument (the MIRI EMICORR file is one).
ASDF_REFTYPES: Final = ("distortion", "emicorr")

#: Modules whose ``WRITERS``/``DATAMODELS`` make the MIRI default set (the second, MIRI
#: imaging, is optional: the dispatch works without it).
MIRI_MODULES: Final = ("webbflow.io.reffiles.miri_detector", "webbflow.io.reffiles.miri_imaging")

#: Fewest frames a default dark holds.
MIN_DARK_FRAMES: Final = 10

#: Local DQ_DEF bit numbering of the default mask (compact, as many jwst masks).
MASK_BITS: Final = ("DO_NOT_USE", "DEAD", "HOT", "WARM", "LOW_QE", "REFERENCE_PIXEL")

#: Flags of the default flat's DQ (standard bit values).
FLAT_BITS: Final = ("DO_NOT_USE", "DEAD", "LOW_QE", "NO_FLAT_FIELD", "REFERENCE_PIXEL")

_DESCRIPTIONS: Final = {
    "DO_NOT_USE": "Bad pixel, do not use",
    "DEAD": "Dead pixel",
    "HOT": "Hot pixel",
    "WARM": "Warm pixel",
    "LOW_QE": "Low quantum efficiency",
    "REFERENCE_PIXEL": "Reference pixel",
    "NO_SAT_CHECK": "Saturation check not available",
    "NO_LIN_CORR": "Linearity correction not available",
    "UNRELIABLE_BIAS": "Bias variance large",
    "NO_FLAT_FIELD": "Flat field cannot be measured",
}


def cache_root() -> Path:
    """The folder of the default set for this generator version."""
    base = os.environ.get("WEBBFLOW_CACHE") or platformdirs.user_cache_dir("webbflow")
    return Path(base) / f"defaults-v{GENERATOR_VERSION}"


def dark_frames_needed(ngroups: int, nframes: int, groupgap: int) -> int:
    """Frames a default dark must hold for an exposure: ``ngroups*(nframes+groupgap)``, ≥ 10."""
    return max(MIN_DARK_FRAMES, int(ngroups) * (int(nframes) + int(groupgap)))


def default_filename(reftype: str, detector: str, dark_frames: int | None = None) -> str:
    """File name of a default reference (the dark's carries its frame count)."""
    tag = f"dark_{dark_frames}f" if reftype == "dark" else reftype
    ext = "asdf" if reftype in ASDF_REFTYPES else "fits"
    return f"webbflow_{detector.lower()}_{tag}_v{GENERATOR_VERSION}.{ext}"


def default_reference(reftype: str, detector: str, dark_frames: int | None = None) -> Path:
    """Path of the default ``reftype`` file for ``detector``, generated if missing.

    Parameters
    ----------
    reftype
        One of :data:`DATAMODELS` or :data:`ASDF_DATAMODELS` (near-infrared), or of
        :func:`miri_datamodels` (MIRI: no superbias, no ipc).
    detector
        ``DETECTOR`` keyword value (see :mod:`webbflow.detectors`).
    dark_frames
        For ``dark`` only: number of frames (``NFRAMES=1``, ``GROUPGAP=0``; MIRI: groups);
        default :data:`MIN_DARK_FRAMES`.

    Raises
    ------
    ReferenceFileError
        If there is no default of this reftype or for this detector.
    """
    known = {**DATAMODELS, **ASDF_DATAMODELS, **miri_datamodels()}
    if reftype not in known:
        raise ReferenceFileError(
            f"no embedded default {reftype} reference{suggest(reftype, known)} "
            f"(defaults exist for {', '.join(known)}); pass override_{reftype} or use CRDS"
        )
    try:
        det = get_detector(detector)
    except UsageError as exc:
        raise ReferenceFileError(
            f"no embedded default {reftype} reference for DETECTOR={detector!r} ({exc}); "
            f"pass override_{reftype} or use CRDS"
        ) from None
    writers = miri_writers() if det.instrument == "MIRI" else _WRITERS
    if reftype not in writers:
        raise ReferenceFileError(
            f"no embedded default {reftype} reference for {det.instrument} DETECTOR={det.name} "
            f"(defaults exist for {', '.join(writers)}); pass override_{reftype} or use CRDS"
        )
    frames = max(int(dark_frames or MIN_DARK_FRAMES), 1) if reftype == "dark" else None
    path = cache_root() / det.name / default_filename(reftype, det.name, frames)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            writers[reftype](det, tmp, frames)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def miri_writers() -> dict[str, Writer]:
    """Writers of the MIRI default set: every importable module of :data:`MIRI_MODULES` merged."""
    return {k: v for module in _miri_modules() for k, v in module.WRITERS.items()}


def miri_datamodels() -> dict[str, str]:
    """jwst data model name of each reftype of the MIRI default set."""
    return {k: v for module in _miri_modules() for k, v in module.DATAMODELS.items()}


def _miri_modules() -> list[Any]:
    found = []
    for name in MIRI_MODULES:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing dependency inside the module is a real error
                raise
    return found


# -- headers -------------------------------------------------------------------------------
def primary_header(det: Detector, reftype: str, descrip: str, **extra: Any) -> fits.Header:
    """Primary header of a default reference: the keywords the jwst models and CRDS use.

    ``DATAMODL`` is the reftype's model: :data:`DATAMODELS`, or :func:`miri_datamodels` for MIRI.
    """
    models = {**DATAMODELS, **miri_datamodels()} if det.instrument == "MIRI" else DATAMODELS
    h = fits.Header()
    cards: list[tuple[str, Any, str]] = [
        ("TELESCOP", "JWST", "Telescope used to acquire the data"),
        ("INSTRUME", det.instrument, "Instrument used to acquire the data"),
        ("DETECTOR", det.name, "Name of detector used to acquire the data"),
        ("REFTYPE", reftype.upper(), "Type of reference file"),
        ("DATAMODL", models[reftype], "Type of data model"),
        ("FILENAME", "", "Name of the file"),
        ("DESCRIP", descrip, ""),
        ("AUTHOR", "webbflow", "Author of the reference file"),
        ("PEDIGREE", "DUMMY", "The pedigree of the reference file"),
        ("USEAFTER", "2000-01-01T00:00:00", "Use after date of the reference file"),
        ("SUBARRAY", "FULL", "Subarray used"),
        ("SUBSTRT1", 1, "Starting pixel in axis 1 direction"),
        ("SUBSTRT2", 1, "Starting pixel in axis 2 direction"),
        ("SUBSIZE1", det.nx, "Number of pixels in axis 1 direction"),
        ("SUBSIZE2", det.ny, "Number of pixels in axis 2 direction"),
        ("FASTAXIS", det.fastaxis, "Fast readout axis direction"),
        ("SLOWAXIS", det.slowaxis, "Slow readout axis direction"),
        ("WFGENVER", GENERATOR_VERSION, "webbflow default-set generator version"),
    ]
    if det.instrument == "NIRCAM":
        cards += [("CHANNEL", det.channel, "Instrument channel"), ("MODULE", det.module, "NIRCam module")]
    for key, value, comment in cards:
        h[key] = (value, comment)
    for key, value in extra.items():
        h[key] = value
    h.add_history("Generated by webbflow from nominal detector properties")
    h.add_history("(webbflow.detectors) with seeded pseudo-random pixel structure.")
    h.add_history("Not a calibrated reference file: for simulations and tests.")
    return h


def _exptype_cards(det: Detector) -> dict[str, tuple[str, str]]:
    return {
        "EXP_TYPE": ("ANY", "Type of data in the exposure"),
        "P_EXP_TY": ("|".join(det.exp_types) + "|", ""),
        "READPATT": ("ANY", "Readout pattern"),
    }


def _optical_cards() -> dict[str, tuple[str, str]]:
    """Any filter and pupil: the default flat and area map do not depend on them."""
    return {
        "FILTER": ("ANY", "Name of the filter element used"),
        "PUPIL": ("ANY", "Name of the pupil element used"),
    }


def dq_def_hdu(names: tuple[str, ...], local_bits: bool) -> fits.BinTableHDU:
    """DQ_DEF table of ``names``: bit numbers ``0, 1, …`` if ``local_bits``, else the standard ones."""
    values = [1 << i if local_bits else dq.FLAGS[n] for i, n in enumerate(names)]
    rec = np.rec.fromarrays(
        [
            np.array([int(v).bit_length() - 1 for v in values], np.int32),
            np.array(values, np.uint32),
            np.array(names, "S40"),
            np.array([_DESCRIPTIONS.get(n, n) for n in names], "S80"),
        ],
        dtype=[("BIT", "i4"), ("VALUE", "u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")],
    )
    return fits.BinTableHDU(rec, name="DQ_DEF")


def _image(data: np.ndarray, name: str, bunit: str | None = None) -> fits.ImageHDU:
    hdu = fits.ImageHDU(data, name=name)
    if bunit:
        hdu.header["BUNIT"] = bunit
    return hdu


def _write(tmp: Path, header: fits.Header, hdus: list[Any]) -> None:
    header["FILENAME"] = _final_name(tmp)
    fits.HDUList([fits.PrimaryHDU(header=header), *hdus]).writeto(tmp)


def _final_name(tmp: Path) -> str:
    """``webbflow_x.fits`` from its temporary name ``.webbflow_x.fits.<hex>.partial``."""
    return tmp.name.removeprefix(".").removesuffix(".partial").rsplit(".", 1)[0]


def _to_local(std: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    out = np.zeros(std.shape, np.uint32)
    for i, name in enumerate(names):
        out[(std & dq.FLAGS[name]) != 0] |= np.uint32(1 << i)
    return out


# -- writers -------------------------------------------------------------------------------
def _write_mask(det: Detector, tmp: Path, _: int | None) -> None:
    h = primary_header(det, "mask", "webbflow default bad-pixel mask", **_exptype_cards(det))
    local = _to_local(arrays.mask_dq(det), MASK_BITS)
    _write(tmp, h, [_image(local, "DQ"), dq_def_hdu(MASK_BITS, local_bits=True)])


def _write_saturation(det: Detector, tmp: Path, _: int | None) -> None:
    sci, dqarr = arrays.saturation(det)
    h = primary_header(det, "saturation", "webbflow default saturation thresholds (raw DN)")
    _write(
        tmp,
        h,
        [_image(sci, "SCI", "DN"), _image(dqarr, "DQ"), dq_def_hdu(("NO_SAT_CHECK",), local_bits=False)],
    )


def _write_superbias(det: Detector, tmp: Path, _: int | None) -> None:
    sci, err, dqarr = arrays.superbias(det)
    h = primary_header(det, "superbias", "webbflow default superbias", READPATT="ANY", NOUTPUTS=det.namps)
    _write(
        tmp,
        h,
        [
            _image(sci, "SCI", "DN"),
            _image(err, "ERR", "DN"),
            _image(dqarr, "DQ"),
            dq_def_hdu(("UNRELIABLE_BIAS",), local_bits=False),
        ],
    )


def _write_linearity(det: Detector, tmp: Path, _: int | None) -> None:
    coeffs, dqarr = arrays.linearity(det)
    h = primary_header(det, "linearity", "webbflow default linearity coefficients")
    _write(
        tmp,
        h,
        [_image(coeffs, "COEFFS"), _image(dqarr, "DQ"), dq_def_hdu(("NO_LIN_CORR",), local_bits=False)],
    )


def _write_gain(det: Detector, tmp: Path, _: int | None) -> None:
    h = primary_header(det, "gain", "webbflow default gain (e-/DN)")
    _write(tmp, h, [_image(arrays.gain(det), "SCI", "ELECTRONS/DN")])


def _write_readnoise(det: Detector, tmp: Path, _: int | None) -> None:
    h = primary_header(
        det, "readnoise", "webbflow default single-read read noise (DN)", READPATT="ANY", NOUTPUTS=det.namps
    )
    _write(tmp, h, [_image(arrays.readnoise(det), "SCI", "DN")])


def _write_ipc(det: Detector, tmp: Path, _: int | None) -> None:
    h = primary_header(det, "ipc", "webbflow default 3x3 IPC kernel")
    _write(tmp, h, [_image(arrays.ipc_kernel(det), "SCI")])


def _write_flat(det: Detector, tmp: Path, _: int | None) -> None:
    sci, err, dqarr = arrays.flat(det)
    h = primary_header(
        det,
        "flat",
        "webbflow default pixel flat (relative QE, any filter)",
        **_exptype_cards(det),
        **_optical_cards(),
    )
    _write(
        tmp,
        h,
        [
            _image(sci, "SCI"),
            _image(err, "ERR"),
            _image(dqarr, "DQ"),
            dq_def_hdu(FLAT_BITS, local_bits=False),
        ],
    )


def _write_area(det: Detector, tmp: Path, _: int | None) -> None:
    sci, nominal_sr = arrays.pixel_area(det)
    h = primary_header(
        det,
        "area",
        f"webbflow default pixel area map (SIAF {arrays.FULL_APERTURES[det.name]} distortion)",
        **_exptype_cards(det),
        **_optical_cards(),
        PIXAR_SR=(nominal_sr, "Nominal pixel area in steradians"),
        PIXAR_A2=(nominal_sr * arrays.ARCSEC2_PER_SR, "Nominal pixel area in arcsec^2"),
    )
    _write(tmp, h, [_image(sci, "SCI")])


def _write_photom(det: Detector, tmp: Path, _: int | None) -> None:
    """PHOTOM binary table (one row per filter/pupil of the detector), see :mod:`.photom`."""
    cards, table = photom.photom_hdus(det)
    descrip = "webbflow default imaging photom (nominal)"
    h = primary_header(det, "photom", descrip, **_exptype_cards(det), **cards)
    _write(tmp, h, [table])


def _write_distortion(det: Detector, tmp: Path, _: int | None) -> None:
    """ASDF ``DistortionModel``: SIAF full-frame pixels → V2/V3 arcsec, see :mod:`.distortion`."""
    distortion.write_distortion(det, tmp, GENERATOR_VERSION, _final_name(tmp))


def _write_dark(det: Detector, tmp: Path, frames: int | None) -> None:
    """Dark (frames, y, x) float32 DN, streamed frame by frame; DQ (y, x); no ERR cube."""
    nframes = int(frames or MIN_DARK_FRAMES)
    rate = arrays.dark_rate(det)
    h = primary_header(
        det,
        "dark",
        f"webbflow default dark, {nframes} frames, bias subtracted (DN)",
        **_exptype_cards(det),
        NFRAMES=1,
        GROUPGAP=0,
        NGROUPS=nframes,
        NINTS=1,
        NOUTPUTS=det.namps,
        TFRAME=det.frame_time_full,
        AVDRKCUR=float(np.mean(rate[~arrays.refpix_border(det)])),
    )
    _write(tmp, h, [])
    sci_header = fits.ImageHDU(np.zeros((1, 1, 1), np.float32), name="SCI").header
    sci_header["NAXIS3"] = nframes
    sci_header["NAXIS2"] = det.ny
    sci_header["NAXIS1"] = det.nx
    sci_header["BUNIT"] = "DN"
    stream = fits.StreamingHDU(str(tmp), sci_header)
    rate_dn = rate / arrays.gain(det).astype(np.float64)
    try:
        for k in range(nframes):
            stream.write(arrays.dark_frame(det, rate_dn, k))
    finally:
        stream.close()
    fits.append(tmp, arrays.dark_dq(det), fits.Header([("EXTNAME", "DQ")]))
    with fits.open(tmp, mode="append") as hdul:
        hdul.append(dq_def_hdu(("HOT", "WARM"), local_bits=False))


_WRITERS: Final[dict[str, Writer]] = {
    "mask": _write_mask,
    "saturation": _write_saturation,
    "superbias": _write_superbias,
    "linearity": _write_linearity,
    "dark": _write_dark,
    "gain": _write_gain,
    "readnoise": _write_readnoise,
    "ipc": _write_ipc,
    "flat": _write_flat,
    "area": _write_area,
    "photom": _write_photom,
    "distortion": _write_distortion,
}
