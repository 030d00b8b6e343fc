"""The one table that maps FITS keywords to ``meta`` paths (jwst datamodel names).

Used in both directions: :func:`header_to_meta` when an exposure or product is
read, :func:`meta_to_cards` when one is written. Paths are relative to
``meta`` (``"exposure.readpatt"`` is ``meta.exposure.readpatt``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal, NamedTuple

HDU = Literal["PRIMARY", "SCI"]


class Keyword(NamedTuple):
    """One FITS keyword: its meta path, type, home extension and comment."""

    keyword: str
    path: str
    type: type
    hdu: HDU = "PRIMARY"
    comment: str = ""


_K = Keyword

#: Every keyword webbflow reads and writes. Order is the order written.
KEYWORDS: Final[tuple[Keyword, ...]] = (
    _K("DATE", "date", str, comment="UTC date file created"),
    _K("ORIGIN", "origin", str, comment="Organization responsible for creating file"),
    _K("FILENAME", "filename", str, comment="Name of the file"),
    _K("DATAMODL", "model_type", str, comment="Type of data model"),
    _K("TELESCOP", "telescope", str, comment="Telescope used to acquire the data"),
    _K("CAL_VER", "calibration_software_version", str, comment="Calibration software version"),
    _K("CAL_SWNM", "calibration_software_name", str, comment="Calibration software name"),
    _K("CRDS_CTX", "ref_file.crds.context_used", str, comment="CRDS context used"),
    _K("CRDS_VER", "ref_file.crds.sw_version", str, comment="CRDS software version"),
    # observation identifiers
    _K("DATE-OBS", "observation.date", str, comment="[yyyy-mm-dd] UTC date at start of exposure"),
    _K("TIME-OBS", "observation.time", str, comment="[hh:mm:ss.sss] UTC time at start of exp"),
    _K("OBS_ID", "observation.obs_id", str, comment="Programmatic observation identifier"),
    _K("VISIT_ID", "observation.visit_id", str, comment="Visit identifier"),
    _K("PROGRAM", "observation.program_number", str, comment="Program number"),
    _K("OBSERVTN", "observation.observation_number", str, comment="Observation number"),
    _K("VISIT", "observation.visit_number", str, comment="Visit number"),
    _K("VISITGRP", "observation.visit_group", str, comment="Visit group identifier"),
    _K("SEQ_ID", "observation.sequence_id", str, comment="Parallel sequence identifier"),
    _K("ACT_ID", "observation.activity_id", str, comment="Activity identifier"),
    _K("EXPOSURE", "observation.exposure_number", str, comment="Exposure request number"),
    _K("TARGPROP", "target.proposer_name", str, comment="Proposer's name for the target"),
    _K("TARG_RA", "target.ra", float, comment="Target RA at mid time of exposure"),
    _K("TARG_DEC", "target.dec", float, comment="Target Dec at mid time of exposure"),
    # instrument
    _K("INSTRUME", "instrument.name", str, comment="Instrument used to acquire the data"),
    _K("DETECTOR", "instrument.detector", str, comment="Name of detector used to acquire the data"),
    _K("MODULE", "instrument.module", str, comment="NIRCam module: A, B"),
    _K("CHANNEL", "instrument.channel", str, comment="Instrument channel"),
    _K("FILTER", "instrument.filter", str, comment="Name of the filter element used"),
    _K("PUPIL", "instrument.pupil", str, comment="Name of the pupil element used"),
    # exposure
    _K("EXP_TYPE", "exposure.type", str, comment="Type of data in the exposure"),
    _K("EXPSTART", "exposure.start_time", float, comment="[d] exposure start time in MJD"),
    _K("EXPMID", "exposure.mid_time", float, comment="[d] exposure mid time in MJD"),
    _K("EXPEND", "exposure.end_time", float, comment="[d] exposure end time in MJD"),
    _K("READPATT", "exposure.readpatt", str, comment="Readout pattern"),
    _K("NRSTSTRT", "exposure.nresets_at_start", int, comment="Number of resets at start of exp"),
    _K("NRESETS", "exposure.nresets_between_ints", int, comment="Number of resets between ints"),
    _K("NINTS", "exposure.nints", int, comment="Number of integrations in exposure"),
    _K("INTSTART", "exposure.integration_start", int, comment="Starting integration number"),
    _K("INTEND", "exposure.integration_end", int, comment="Ending integration number"),
    _K("NGROUPS", "exposure.ngroups", int, comment="Number of groups in integration"),
    _K("NFRAMES", "exposure.nframes", int, comment="Number of frames per group"),
    _K("GROUPGAP", "exposure.groupgap", int, comment="Number of frames dropped between groups"),
    _K("NSAMPLES", "exposure.nsamples", int, comment="Number of A/D samples per pixel"),
    _K("NOUTPUTS", "exposure.noutputs", int, comment="Number of detector outputs (amplifiers) read"),
    _K("TSAMPLE", "exposure.sample_time", float, comment="[us] Time between samples"),
    _K("TFRAME", "exposure.frame_time", float, comment="[s] Time between frames"),
    _K("TGROUP", "exposure.group_time", float, comment="[s] Time between groups"),
    _K("EFFINTTM", "exposure.integration_time", float, comment="[s] Effective integration time"),
    _K("EFFEXPTM", "exposure.exposure_time", float, comment="[s] Effective exposure time"),
    _K("DURATION", "exposure.duration", float, comment="[s] Total duration of exposure"),
    _K(
        "FRMDIVSR",
        "exposure.frame_divisor",
        int,
        comment="Divisor applied to frame-averaged groups",
    ),
    _K("GRPAVG", "exposure.groups_averaged", int, comment="Number of groups averaged on board"),
    _K("ZEROFRAM", "exposure.zero_frame", bool, comment="T if a zero frame was read separately"),
    _K(
        "DRPFRMS1",
        "exposure.drop_frames1",
        int,
        comment="Frames dropped prior to first integration",
    ),
    _K("DRPFRMS3", "exposure.drop_frames3", int, comment="Frames dropped between integrations"),
    _K("GAINFACT", "exposure.gain_factor", float, comment="Gain scale factor"),
    # subarray
    _K("SUBARRAY", "subarray.name", str, comment="Subarray used"),
    _K("SUBSTRT1", "subarray.xstart", int, comment="Starting pixel in axis 1 direction"),
    _K("SUBSTRT2", "subarray.ystart", int, comment="Starting pixel in axis 2 direction"),
    _K("SUBSIZE1", "subarray.xsize", int, comment="Number of pixels in axis 1 direction"),
    _K("SUBSIZE2", "subarray.ysize", int, comment="Number of pixels in axis 2 direction"),
    _K("FASTAXIS", "subarray.fastaxis", int, comment="Fast readout axis direction"),
    _K("SLOWAXIS", "subarray.slowaxis", int, comment="Slow readout axis direction"),
    # aperture and pointing
    _K("APERNAME", "aperture.name", str, comment="PRD science aperture used"),
    _K("PPS_APER", "aperture.pps_name", str, comment="Original AperName supplied by PPS"),
    _K("VA_RA", "velocity_aberration.va_ra_ref", float, comment="[deg] Velocity aberrated ref RA"),
    _K("VA_DEC", "velocity_aberration.va_dec_ref", float, comment="[deg] Velocity aberrated ref Dec"),
    _K("PA_V3", "pointing.pa_v3", float, "SCI", "[deg] Position angle of V3-axis of JWST"),
    _K("RA_V1", "pointing.ra_v1", float, "SCI", "[deg] RA of telescope V1 axis"),
    _K("DEC_V1", "pointing.dec_v1", float, "SCI", "[deg] Dec of telescope V1 axis"),
    _K("PA_APER", "aperture.position_angle", float, "SCI", "[deg] Position angle of aperture used"),
    _K("VA_SCALE", "velocity_aberration.scale_factor", float, "SCI", "Velocity aberration scale factor"),
    _K("RADESYS", "coordinates.reference_frame", str, "SCI", "Name of the coordinate reference frame"),
    _K("WCSAXES", "wcsinfo.wcsaxes", int, "SCI", "Number of axes in the WCS description"),
    _K("CRPIX1", "wcsinfo.crpix1", float, "SCI", "Axis 1 coordinate of the reference pixel"),
    _K("CRPIX2", "wcsinfo.crpix2", float, "SCI", "Axis 2 coordinate of the reference pixel"),
    _K("CRVAL1", "wcsinfo.crval1", float, "SCI", "[deg] RA at the reference pixel"),
    _K("CRVAL2", "wcsinfo.crval2", float, "SCI", "[deg] Dec at the reference pixel"),
    _K("CTYPE1", "wcsinfo.ctype1", str, "SCI", "Axis 1 type"),
    _K("CTYPE2", "wcsinfo.ctype2", str, "SCI", "Axis 2 type"),
    _K("CUNIT1", "wcsinfo.cunit1", str, "SCI", "Axis 1 units"),
    _K("CUNIT2", "wcsinfo.cunit2", str, "SCI", "Axis 2 units"),
    _K("CDELT1", "wcsinfo.cdelt1", float, "SCI", "[deg/pix] Axis 1 increment"),
    _K("CDELT2", "wcsinfo.cdelt2", float, "SCI", "[deg/pix] Axis 2 increment"),
    _K("PC1_1", "wcsinfo.pc1_1", float, "SCI", "Linear transformation matrix element"),
    _K("PC1_2", "wcsinfo.pc1_2", float, "SCI", "Linear transformation matrix element"),
    _K("PC2_1", "wcsinfo.pc2_1", float, "SCI", "Linear transformation matrix element"),
    _K("PC2_2", "wcsinfo.pc2_2", float, "SCI", "Linear transformation matrix element"),
    _K("S_REGION", "wcsinfo.s_region", str, "SCI", "Spatial extent of the exposure"),
    _K("XREF_SCI", "wcsinfo.siaf_xref_sci", float, "SCI", "Aperture X reference point in SCI frame"),
    _K("YREF_SCI", "wcsinfo.siaf_yref_sci", float, "SCI", "Aperture Y reference point in SCI frame"),
    _K("RA_REF", "wcsinfo.ra_ref", float, "SCI", "[deg] Right ascension of the reference point"),
    _K("DEC_REF", "wcsinfo.dec_ref", float, "SCI", "[deg] Declination of the reference point"),
    _K("ROLL_REF", "wcsinfo.roll_ref", float, "SCI", "[deg] V3 roll angle at the ref point"),
    _K("V2_REF", "wcsinfo.v2_ref", float, "SCI", "[arcsec] Telescope v2 coordinate of ref point"),
    _K("V3_REF", "wcsinfo.v3_ref", float, "SCI", "[arcsec] Telescope v3 coordinate of ref point"),
    _K("VPARITY", "wcsinfo.vparity", int, "SCI", "Relative sense of rotation between Ideal xy"),
    _K("V3I_YANG", "wcsinfo.v3yangle", float, "SCI", "[deg] Angle from V3 axis to Ideal y axis"),
    _K("BUNIT", "bunit_data", str, "SCI", "physical units of the array values"),
    _K("BKGLEVEL", "background.level", float, comment="Computed constant background level"),
    _K("BKGSUB", "background.subtracted", bool, comment="Has background been subtracted from data?"),
    _K("BKGMETH", "background.method", str, comment="Background computation method"),
    _K("PHOTMJSR", "photometry.conversion_megajanskys", float, "SCI", "[MJy/sr] per DN/s"),
    _K("PHOTUJA2", "photometry.conversion_microjanskys", float, "SCI", "[uJy/arcsec2] per DN/s"),
    _K("PIXAR_SR", "photometry.pixelarea_steradians", float, "SCI", "Nominal pixel area in steradians"),
    _K("PIXAR_A2", "photometry.pixelarea_arcsecsq", float, "SCI", "Nominal pixel area in arcsec^2"),
    _K("PIXFRAC", "resample.pixfrac", float, comment="Drizzle pixel fraction"),
    _K("PXSCLRT", "resample.pixel_scale_ratio", float, comment="Output / input pixel scale ratio"),
)

#: ``meta.cal_step`` names and their ``S_*`` keywords (jwst conventions).
CAL_STEP_KEYWORDS: Final[Mapping[str, str]] = {
    "group_scale": "S_GRPSCL",
    "dq_init": "S_DQINIT",
    "emicorr": "S_MIREMI",  # jwst core.schema
    "saturation": "S_SATURA",
    "ipc": "S_IPC",
    "superbias": "S_SUPERB",
    "refpix": "S_REFPIX",
    "linearity": "S_LINEAR",
    "persistence": "S_PERSIS",
    "dark_sub": "S_DARK",
    "charge_migration": "S_CHGMIG",
    "jump": "S_JUMP",
    "clean_flicker_noise": "S_CLNFNS",
    "ramp_fit": "S_RAMP",
    "gain_scale": "S_GANSCL",
    "assign_wcs": "S_WCS",
    "flat_field": "S_FLAT",
    "photom": "S_PHOTOM",
    "bkg_subtract": "S_BKDSUB",
    "tweakreg": "S_TWKREG",
    "skymatch": "S_SKYMAT",
    "outlier_detection": "S_OUTLIR",
    "resample": "S_RESAMP",
    "firstframe": "S_FRSTFR",
    "lastframe": "S_LASTFR",
    "reset": "S_RESET",
    "rscd": "S_RSCD",
}

#: ``meta.ref_file.<reftype>.name`` and their ``R_*`` keywords (jwst conventions).
REF_FILE_KEYWORDS: Final[Mapping[str, str]] = {
    "mask": "R_MASK",
    "saturation": "R_SATURA",
    "superbias": "R_SUPERB",
    "refpix": "R_REFPIX",
    "sirskernel": "R_SIRSKN",
    "linearity": "R_LINEAR",
    "dark": "R_DARK",
    "gain": "R_GAIN",
    "readnoise": "R_READNO",
    "ipc": "R_IPC",
    "trapdensity": "R_TRPDEN",
    "trappars": "R_TRPPAR",
    "persat": "R_PERSAT",
    "flat": "R_FLAT",
    "photom": "R_PHOTOM",
    "area": "R_AREA",
    "distortion": "R_DISTOR",
    "filteroffset": "R_FILOFF",
    "reset": "R_RESET",
    "rscd": "R_RSCD",
    "emicorr": "R_MIREMI",
}

_BY_KEYWORD: Final = {k.keyword: k for k in KEYWORDS}


def get_path(meta: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """Value at dotted ``path`` in the nested ``meta`` dict, or ``default``."""
    node: Any = meta
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_path(meta: dict[str, Any], path: str, value: Any) -> None:
    """Set dotted ``path`` in the nested ``meta`` dict, creating levels as needed."""
    parts = path.split(".")
    node = meta
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _coerce(value: Any, kind: type) -> Any:
    if kind is bool:
        return bool(value)
    if kind is int:
        return int(value)
    if kind is float:
        return float(value)
    return str(value)


def header_to_meta(
    primary: Mapping[str, Any], sci: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[list[Any]]]:
    """Nested ``meta`` from FITS headers, and the cards the table does not know.

    Parameters
    ----------
    primary, sci
        Header-like mappings (``astropy.io.fits.Header`` works) of the primary
        and SCI extensions.

    Returns
    -------
    meta : dict
        jwst-style nested metadata.
    extra : list of [keyword, value, comment]
        Primary-header cards with no meta path, kept so products carry them on.
    """
    meta: dict[str, Any] = {}
    extra: list[list[Any]] = []
    for hdu_name, header in (("PRIMARY", primary), ("SCI", sci or {})):
        for key in header:
            value = header[key]
            if key in _BY_KEYWORD:
                kw = _BY_KEYWORD[key]
                if value is None or (isinstance(value, str) and value == "" and kw.type is not str):
                    continue
                try:
                    set_path(meta, kw.path, _coerce(value, kw.type))
                except (TypeError, ValueError):
                    continue
            elif key in _STEP_BY_KEYWORD:
                set_path(meta, f"cal_step.{_STEP_BY_KEYWORD[key]}", str(value))
            elif key in _REF_BY_KEYWORD:
                set_path(meta, f"ref_file.{_REF_BY_KEYWORD[key]}.name", str(value))
            elif hdu_name == "PRIMARY" and _is_plain_card(key, value):
                comment = header.comments[key] if hasattr(header, "comments") else ""
                extra.append([key, value, comment])
    return meta, extra


_STEP_BY_KEYWORD: Final = {v: k for k, v in CAL_STEP_KEYWORDS.items()}
_REF_BY_KEYWORD: Final = {v: k for k, v in REF_FILE_KEYWORDS.items()}
_STRUCTURAL = {
    "SIMPLE",
    "BITPIX",
    "EXTEND",
    "XTENSION",
    "PCOUNT",
    "GCOUNT",
    "EXTNAME",
    "EXTVER",
    "BZERO",
    "BSCALE",
    "COMMENT",
    "HISTORY",
    "",
}


def _is_plain_card(key: str, value: Any) -> bool:
    return (
        key not in _STRUCTURAL and not key.startswith("NAXIS") and isinstance(value, str | int | float | bool)
    )


def _fitting_comment(value: Any, comment: str) -> str:
    """``comment``, or ``""`` where a long string value leaves it no room in the 80-column card."""
    if isinstance(value, str) and len(value) + len(comment) > 80 - 16:  # "KEYWORD = '" … "' / "
        return ""
    return comment


def meta_to_cards(meta: Mapping[str, Any], hdu: HDU) -> Iterator[tuple[str, Any, str]]:
    """``(keyword, value, comment)`` cards for extension ``hdu`` from ``meta``."""
    for kw in KEYWORDS:
        if kw.hdu != hdu:
            continue
        value = get_path(meta, kw.path)
        if value is not None:
            value = _coerce(value, kw.type)
            yield kw.keyword, value, _fitting_comment(value, kw.comment)
    if hdu == "PRIMARY":
        for step, keyword in CAL_STEP_KEYWORDS.items():
            status = get_path(meta, f"cal_step.{step}")
            if status is not None:
                yield keyword, str(status), f"{step} step status"
        for reftype, keyword in REF_FILE_KEYWORDS.items():
            name = get_path(meta, f"ref_file.{reftype}.name")
            if name is not None:
                yield keyword, str(name), ""  # long names: a comment would overflow the card
