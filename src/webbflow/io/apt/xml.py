"""Read APT's ``.xml`` export: proposal information, targets and each observation's templates.

Only the imaging templates webbflow simulates are parsed into :class:`TemplateSpec`
(NIRCam Imaging and Engineering Imaging, NIRISS Imaging and External Calibration, FGS External
Calibration, MIRI Imaging), as prime or as coordinated parallel (also to a prime that is not simulated);
any other template becomes an :class:`Unsupported` record with a reason.
The XML is read with :mod:`xml.etree.ElementTree` (APT exports are small).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from webbflow.errors import InputError
from webbflow.io.apt.model import ExposureSpec, TemplateSpec, Unsupported

APT = "{http://www.stsci.edu/JWST/APT}"
_TEMPLATE_NS = "{http://www.stsci.edu/JWST/APT/Template/%s}"

#: Templates webbflow expands into exposures, and their instrument.
SUPPORTED: dict[str, str] = {
    "NircamImaging": "NIRCAM",
    "NircamEngineeringImaging": "NIRCAM",
    "NirissImaging": "NIRISS",
    "NirissExternalCalibration": "NIRISS",
    "FgsExternalCalibration": "FGS",
    "MiriImaging": "MIRI",
}

#: APT's MIRI readout names → jwst ``READPATT`` (the one-frame-per-group patterns the MIRI
#: detectors have used since 2023; older APT exports say FAST/SLOW).
MIRI_READPATT: dict[str, str] = {"FAST": "FASTR1", "SLOW": "SLOWR1", "FASTR1": "FASTR1", "SLOWR1": "SLOWR1"}

_REASONS = (  # (substring of the template name, why it is not simulated)
    ("Wfss", "wide-field slitless spectroscopy is not simulated"),
    ("TimeSeries", "time-series observations are not simulated"),
    ("Coron", "coronagraphy is not simulated"),
    ("Ami", "aperture masking interferometry is not simulated"),
    ("Soss", "single-object slitless spectroscopy is not simulated"),
    ("Wfsc", "wavefront sensing and control is not simulated"),
    ("Miri", "only MIRI imaging is simulated"),
    ("Nirspec", "NIRSpec is not simulated"),
)

_MOVING = "moving (solar-system) target: non-sidereal tracking is not simulated"

#: NIRISS wheels: filters at 2.5 µm and beyond sit in the filter wheel (pupil CLEARP),
#: the shorter ones in the pupil wheel (filter CLEAR), as jwst's FILTER/PUPIL keywords say.
_NIRISS_FILTER_WHEEL_MIN_UM = 2.5


@dataclass(frozen=True)
class XmlObservation:
    """What the XML says about one observation (before joining with the pointing file)."""

    number: int
    label: str
    instrument: str
    target_id: int
    target_name: str
    prime_name: str
    prime: TemplateSpec | None
    parallel_name: str
    parallel: TemplateSpec | None


@dataclass(frozen=True)
class XmlProgram:
    program: str
    title: str
    pi_name: str
    targets: dict[int, tuple[float, float] | None]  # number -> (ra, dec) deg; None: non-sidereal
    observations: tuple[XmlObservation, ...]
    unsupported: tuple[Unsupported, ...]


def instrument_of(template: str) -> str:
    """The instrument of an APT template name (``NirissWfss`` → ``NIRISS``)."""
    for prefix, name in (("Nircam", "NIRCAM"), ("Niriss", "NIRISS"), ("Nirspec", "NIRSPEC")):
        if template.startswith(prefix):
            return name
    for prefix, name in (("Miri", "MIRI"), ("Fgs", "FGS"), ("Wfsc", "NIRCAM")):
        if template.startswith(prefix):
            return name
    return "UNKNOWN"


def reason_for(template: str) -> str:
    """Why ``template`` is not simulated (one short sentence)."""
    for key, reason in _REASONS:
        if key in template:
            return reason
    return f"template {template} is not simulated"


def _text(el: ET.Element | None, tag: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(tag)
    return (found.text or "").strip() if found is not None and found.text else default


def _leading_int(value: str, default: int = 1) -> int:
    """``"3"`` → 3, ``"2TIGHTGAPS"`` → 2, ``"2-POINT-MEDIUM-WITH-NIRISS"`` → 2, ``"NONE"`` → default."""
    m = re.match(r"\s*(\d+)", value or "")
    return int(m.group(1)) if m else default


def _sexagesimal(value: str) -> tuple[float, float]:
    """``"03 32 24.0000 -27 48 0.00"`` → (RA deg, Dec deg)."""
    h, m, s, dd, dm, ds = value.split()
    sign = -1.0 if dd.startswith("-") else 1.0
    ra = 15.0 * (float(h) + float(m) / 60 + float(s) / 3600)
    dec = sign * (abs(float(dd)) + float(dm) / 60 + float(ds) / 3600)
    return ra, dec


def _split_nircam_filter(value: str) -> tuple[str, str]:
    """APT's ``"F164N+F444W"`` (pupil+filter) or ``"F200W"`` → (filter, pupil)."""
    if "+" in value:
        pupil, filt = (v.strip() for v in value.split("+", 1))
        return filt, pupil
    return value.strip(), "CLEAR"


def _niriss_wheels(name: str) -> tuple[str, str]:
    """A NIRISS imaging filter name → (FILTER, PUPIL) keyword values."""
    m = re.match(r"F(\d{3})", name)
    if m and int(m.group(1)) / 100 >= _NIRISS_FILTER_WHEEL_MIN_UM:
        return name, "CLEARP"
    return "CLEAR", name


def _int(el: ET.Element, tag: str, where: str) -> int:
    value = _text(el, tag)
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{where}: <{tag.split('}')[-1]}> is {value!r}, expected an integer") from None


def _dithers(tpl: ET.Element, ns: str) -> tuple[str, int, str, int]:
    """(primary type, primary count, subpixel type, subpixel count) of any imaging template."""
    ptype = _text(tpl, ns + "PrimaryDitherType") or _text(tpl, ns + "DitherPatternType") or "NONE"
    pcount = _text(tpl, ns + "PrimaryDithers") or _text(tpl, ns + "ImageDithers")
    n_primary = 1 if ptype == "NONE" and not pcount else _leading_int(pcount)
    stype = _text(tpl, ns + "SubpixelDitherType") or "NONE"
    scount = _text(tpl, ns + "SubpixelPositions") or _text(tpl, ns + "SubpixelDithers")
    # e.g. 2-POINT-MEDIUM-WITH-NIRISS: the count leads the type
    n_sub = _leading_int(stype) if "-WITH-" in stype else _leading_int(scount)
    return ptype, max(n_primary, 1), stype, max(n_sub, 1)


def _template(tpl: ET.Element, name: str, where: str) -> TemplateSpec:
    ns = _TEMPLATE_NS % name
    instrument = SUPPORTED[name]
    ptype, npri, stype, nsub = _dithers(tpl, ns)
    exposures: list[ExposureSpec] = []
    if instrument == "MIRI":
        exposures = _miri_exposures(tpl, ns, where)
    elif instrument == "NIRCAM":
        for cfg in tpl.iter(ns + "FilterConfig"):
            sw, sw_pupil = _split_nircam_filter(_text(cfg, ns + "ShortFilter"))
            lw, lw_pupil = _split_nircam_filter(_text(cfg, ns + "LongFilter"))
            sw_pupil = _text(cfg, ns + "ShortPupil", sw_pupil)
            lw_pupil = _text(cfg, ns + "LongPupil", lw_pupil)
            exposures.append(
                ExposureSpec(
                    readpatt=_text(cfg, ns + "ReadoutPattern"),
                    ngroups=_int(cfg, ns + "Groups", where),
                    nints=_int(cfg, ns + "Integrations", where),
                    filter=sw,
                    pupil=sw_pupil,
                    lw_filter=lw,
                    lw_pupil=lw_pupil,
                )
            )
    else:
        for exp in tpl.iter(ns + "Exposure"):
            if instrument == "FGS":
                filt, pupil = "", ""
            elif name == "NirissExternalCalibration":
                filt, pupil = _text(exp, ns + "FilterWheel"), _text(exp, ns + "PupilWheel")
            else:
                filt, pupil = _niriss_wheels(_text(exp, ns + "Filter"))
            exposures.append(
                ExposureSpec(
                    readpatt=_text(exp, ns + "ReadoutPattern"),
                    ngroups=_int(exp, ns + "Groups", where),
                    nints=_int(exp, ns + "Integrations", where),
                    filter=filt,
                    pupil=pupil,
                    subarray=_text(exp, ns + "Subarray"),
                )
            )
    if not exposures:
        what = "<FilterConfig>" if instrument in ("NIRCAM", "MIRI") else "<Exposure>"
        raise InputError(f"{where}: {name} template has no {what}")
    return TemplateSpec(
        template=name,
        instrument=instrument,
        module=_text(tpl, ns + "Module") if instrument == "NIRCAM" else "",
        subarray=_text(tpl, ns + "Subarray", "FULL"),
        detector=_text(tpl, ns + "Detector").upper() if instrument == "FGS" else "",
        primary_dither_type=ptype,
        primary_dithers=npri,
        subpix_dither_type=stype,
        subpix_positions=nsub,
        exposures=tuple(exposures),
    )


def _miri_exposures(tpl: ET.Element, ns: str, where: str) -> list[ExposureSpec]:
    """The ``<FilterConfig>`` rows of a MiriImaging template (one filter, readout and size each)."""
    patterns = [_text(d, ns + "DitherType", "NONE") for d in tpl.iter(ns + "DitherSpecification")]
    out = []
    for cfg in tpl.iter(ns + "FilterConfig"):
        dither = _text(cfg, ns + "Dither", "None")  # "Dither 2": the 2nd <DitherSpecification>
        number = _leading_int(dither.split()[-1], 0)
        if dither.upper() != "NONE" and not 1 <= number <= len(patterns):
            raise InputError(f"{where}: MIRI <Dither> {dither!r} names no <DitherSpecification>")
        pattern = _text(cfg, ns + "ReadoutPattern").upper()
        if pattern not in MIRI_READPATT:
            raise InputError(
                f"{where}: MIRI <ReadoutPattern> is {pattern!r}, expected one of {', '.join(MIRI_READPATT)}"
            )
        out.append(
            ExposureSpec(
                readpatt=MIRI_READPATT[pattern],
                ngroups=_int(cfg, ns + "Groups", where),
                nints=_int(cfg, ns + "Integrations", where),
                filter=_text(cfg, ns + "Filter"),
                pupil="",
                dither_type=patterns[number - 1].upper() if number else "NONE",
            )
        )
    return out


def _first_child(el: ET.Element | None) -> ET.Element | None:
    return next(iter(el), None) if el is not None else None


def read_xml(path: str | Path) -> XmlProgram:
    """Parse an APT ``.xml`` export.

    Raises
    ------
    InputError
        Missing/unparsable file (with the parser's line and column) or a missing element.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the APT XML file ({exc.strerror or exc})") from None
    except ET.ParseError as exc:
        line, col = exc.position
        raise InputError(f"{path}:{line}:{col}: not a well-formed APT XML file ({exc.msg})") from None
    info = root.find(APT + "ProposalInformation")
    if root.tag != APT + "JwstProposal" or info is None:
        raise InputError(f"{path}: no <JwstProposal>/<ProposalInformation>: not an APT XML export")
    pid = _text(info, APT + "ProposalID")
    program = f"{int(pid):05d}" if pid.isdigit() else "00042"  # 42: APT's draft number, as Mirage
    first, last = _text(info, f".//{APT}FirstName"), _text(info, f".//{APT}LastName")
    targets: dict[int, tuple[float, float] | None] = {}
    for tgt in root.iterfind(f"{APT}Targets/{APT}Target"):
        coords = tgt.find(APT + "EquatorialCoordinates")
        value = coords.get("Value") if coords is not None else None
        sidereal = "SolarSystem" not in "".join(tgt.attrib.values())
        try:
            # None marks a moving target; a fixed one without coordinates takes the pointing's
            radec = _sexagesimal(value) if value else (float("nan"), float("nan"))
            targets[int(_text(tgt, APT + "Number"))] = radec if sidereal else None
        except ValueError:
            raise InputError(
                f"{path}: <Target> {_text(tgt, APT + 'TargetName')!r}: bad Number or coordinates"
            ) from None
    observations: list[XmlObservation] = []
    unsupported: list[Unsupported] = []
    for obs in root.iterfind(f"{APT}DataRequests/{APT}ObservationGroup/{APT}Observation"):
        number_text = _text(obs, APT + "Number")
        if not number_text.isdigit():
            raise InputError(f"{path}: <Observation> without a numeric <Number> ({number_text!r})")
        number = int(number_text)
        where = f"{path}: observation {number}"
        instrument = _text(obs, APT + "Instrument")
        tid = _text(obs, APT + "TargetID").split(" ", 1)
        prime_el = _first_child(obs.find(APT + "Template"))
        if prime_el is None:
            raise InputError(f"{where}: no <Template>")
        prime_name = prime_el.tag.split("}")[-1]
        par_el = None
        if _text(obs, APT + "CoordinatedParallel") == "true":
            par_el = _first_child(obs.find(APT + "FirstCoordinatedTemplate"))
        par_name = par_el.tag.split("}")[-1] if par_el is not None else ""
        target_id = int(tid[0]) if tid[0].isdigit() else 0
        moving = target_id in targets and targets[target_id] is None
        prime = _template(prime_el, prime_name, where) if prime_name in SUPPORTED and not moving else None
        parallel = None
        if prime is None:
            why = _MOVING if moving else reason_for(prime_name)
            unsupported.append(Unsupported(number, prime_name, instrument, why))
        if par_el is not None:
            # an imaging parallel is simulated even when its prime is not (MIRI imaging +
            # NIRCam imaging, NIRSpec MOS + NIRCam, NIRISS WFSS + NIRCam …), as Mirage does
            if par_name in SUPPORTED and not moving:
                parallel = _template(par_el, par_name, where + " (parallel)")
            else:
                why = _MOVING if moving else reason_for(par_name)
                unsupported.append(Unsupported(number, par_name, instrument_of(par_name), why))
        observations.append(
            XmlObservation(
                number=number,
                label=_text(obs, APT + "Label"),
                instrument=instrument,
                target_id=target_id,
                target_name=tid[1] if len(tid) > 1 else tid[0],
                prime_name=prime_name,
                prime=prime,
                parallel_name=par_name,
                parallel=parallel,
            )
        )
    return XmlProgram(
        program=program,
        title=_text(info, APT + "Title"),
        pi_name=" ".join(p for p in (first, last) if p),
        targets=targets,
        observations=tuple(observations),
        unsupported=tuple(unsupported),
    )
