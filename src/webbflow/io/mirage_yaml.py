"""Read a Mirage input YAML (one exposure on one detector) as a :class:`~webbflow.sim.config.SimConfig`.

Mirage's YAML (``docs/example_yaml.rst`` of spacetelescope/mirage) has nine sections:
``Inst``, ``Readout``, ``Reffiles``, ``nonlin``, ``cosmicRay``, ``simSignals``,
``Telescope``, ``newRamp`` and ``Output``. Every key with a meaning in webbflow is
translated; the rest are handled so that nothing changes the result silently:

* A key that would change the result materially and that webbflow cannot simulate
  (moving or non-sidereal targets, time-series catalogs, a mode other than imaging,
  per-segment PSFs, NIRISS ghosts) is an :class:`~webbflow.errors.InputError`.
* Files Mirage would read from ``$MIRAGE_DATA`` (raw dark ramps, its PSF and
  cosmic-ray libraries, reference files) are used when they exist; when they do not
  (the usual case: ``$MIRAGE_DATA`` is several hundred GB), webbflow's own model
  replaces them and one note per kind says what replaced what.
* ``crds``/``config`` entries leave the choice to webbflow's reference resolver
  (CRDS when ``CRDS_PATH`` is set, else its embedded defaults); a ``None`` pixel
  flat, IPC kernel or pixel-area map turns that effect off, as in Mirage.
* Keys set to a value webbflow ignores are listed in one note; keys that are not
  Mirage's are listed in another. Notes end up in :attr:`SimConfig.notes`.

Units: Mirage counts in ADU (DN); webbflow in electrons. A numeric ``bkgdrate``
(ADU/s/pixel) and a segmentation threshold in ADU/s are multiplied by the
detector's mean gain (:func:`webbflow.detectors.get_detector`). Seeds: Mirage has
one for Poisson noise and one for cosmic rays; webbflow has one for the exposure,
``(poissonseed * 2**32 + seed) mod 2**63`` when both are given (distinct for distinct
pairs of 31-bit seeds; it fits a FITS integer), else whichever is given.

MIRI (beyond Mirage): ``Inst.instrument: MIRI`` with ``Readout.array_name`` a ``MIRIM_<subarray>``
aperture (or ``MIRIMAGE``/``MIRIM`` for the full frame), ``readpatt: FASTR1|SLOWR1``; the
``Reffiles`` keys ``reset``, ``rscd`` and ``emicorr`` override those MIRI references.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from webbflow.detectors import get_detector
from webbflow.errors import InputError
from webbflow.sim.config import SimConfig, config_from_dict, detector_for_aperture, expand_path

_ANY: Final = None  # any value: the key has no meaning in webbflow and needs no mention
#: Keys webbflow does not use -> the values that mean "no effect" (others are listed in a note).
_IGNORED: Final[Mapping[str, Mapping[str, tuple[Any, ...] | None]]] = {
    "Inst": {"use_JWST_pipeline": _ANY},
    "Readout": {"namp": _ANY, "resets_bet_ints": (1,), "intermediate_aperture": (), "PPS_aperture": _ANY},
    "Reffiles": {
        "illumflat": (),
        "occult": (),
        "transmission": ("crds", "config"),
        "distortion_coeffs": _ANY,
        **dict.fromkeys(
            ("subarray_defs", "readpattdefs", "filtpupilcombo", "filter_wheel_positions", "flux_cal"), _ANY
        ),
        "filter_throughput": _ANY,
    },
    "nonlin": {"limit": _ANY, "accuracy": _ANY, "maxiter": _ANY, "robberto": (False,)},
    "cosmicRay": {"suffix": _ANY},
    "simSignals": {
        **dict.fromkeys(
            (
                "gridded_psf_library_row_padding",
                "psf_wing_threshold_file",
                "add_psf_wings",
                "psfwfegroup",
                "psfbasename",
                "psfpixfrac",
                "movingTargetConvolveExtended",
                "zodiscale",
                "scatteredscale",
                "photonyield",
                "pymethod",
                "PSFConvolveGhosts",
            ),
            _ANY,
        ),
        "psfwfe": ("predicted",),
        "extendedscale": (1.0,),
        "extendedCenter": ("1024,1024",),
        "PSFConvolveExtended": (True,),
        "zodiacal": (),
        "scattered": (),
        "use_dateobs_for_background": (False,),
    },
    "newRamp": dict.fromkeys(
        ("dq_configfile", "sat_configfile", "superbias_configfile", "refpix_configfile", "linear_configfile"),
        _ANY,
    ),
    "Output": {
        "format": ("dms",),
        "save_intermediates": (False,),
        "grism_source_image": (False,),
        "unsigned": (True,),
        "dmsOrient": (True,),
        **dict.fromkeys(
            (
                "Proposal_category",
                "Science_category",
                "target_ra",
                "target_dec",
                "observation_label",
                "visit_id",
                "obs_id",
                "obs_template",
            ),
            (),
        ),
    },
}
_NOT_SIMULATED: Final = "(webbflow simulates sidereal NIRCam, NIRISS and FGS imaging only)"
#: Keys whose other values webbflow cannot simulate -> (harmless values, what is not supported).
_FATAL: Final[Mapping[str, Mapping[str, tuple[tuple[Any, ...], str]]]] = {
    "Inst": {"mode": (("imaging",), "this observing mode is not supported")},
    "simSignals": {
        "movingTargetList": ((), "moving targets are not supported"),
        "movingTargetSersic": ((), "moving targets are not supported"),
        "movingTargetExtended": ((), "moving targets are not supported"),
        "movingTargetToTrack": ((), "non-sidereal targets are not supported"),
        "tso_imaging_catalog": ((), "time-series sources are not supported"),
        "tso_grism_catalog": ((), "time-series sources are not supported"),
        "expand_catalog_for_segments": ((False,), "per-segment PSFs are not supported"),
    },
    "Telescope": {"tracking": (("sidereal",), "non-sidereal tracking is not supported")},
}
_DITHER: Final = (
    "primary_dither_type",
    "total_primary_dither_positions",
    "primary_dither_position",
    "subpix_dither_type",
    "total_subpix_dither_positions",
    "subpix_dither_position",
    "xoffset",
    "yoffset",
)
_IDS: Final = {
    "program_number": "program",
    "observation_number": "observation",
    "visit_number": "visit",
    "visit_group": "visit_group",
    "sequence_id": "sequence",
    "activity_id": "activity",
    "exposure_number": "exposure",
    "target_name": "target_name",
    "title": "title",
    "PI_Name": "pi_name",
}
#: Mirage ``Reffiles`` key -> webbflow reftype.
_REFTYPES: Final = {
    "badpixmask": "mask",
    "superbias": "superbias",
    "linearity": "linearity",
    "saturation": "saturation",
    "gain": "gain",
    "pixelflat": "flat",
    "astrometric": "distortion",
    "photom": "photom",
    "ipc": "ipc",
    "pixelAreaMap": "area",
    # MIRI (an extension: Mirage stops at NIRCam/NIRISS/FGS)
    "reset": "reset",
    "rscd": "rscd",
    "emicorr": "emicorr",
}
#: Mirage skips these steps when the file is None; so does webbflow (the effect's name).
_OFF_WHEN_NONE: Final = {"pixelflat": "flat", "ipc": "ipc", "pixelAreaMap": "pixel_area"}
#: Keys translated by :func:`from_mirage` itself.
_USED: Final[Mapping[str, frozenset[str]]] = {
    "Inst": frozenset({"instrument"}),
    "Readout": frozenset({"readpatt", "ngroup", "nint", "array_name", "filter", "pupil"}),
    "Reffiles": frozenset({*_REFTYPES, "dark", "linearized_darkfile", "invertIPC", "crosstalk"}),
    "cosmicRay": frozenset({"path", "library", "scale", "seed"}),
    "simSignals": frozenset(
        {
            "pointsource",
            "galaxyListFile",
            "extended",
            "psfpath",
            "bkgdrate",
            "poissonseed",
            "signal_low_limit_for_segmap",
            "signal_low_limit_for_segmap_units",
            "add_ghosts",
        }
    ),
    "Telescope": frozenset({"ra", "dec", "rotation"}),
    "Output": frozenset({"file", "directory", "datatype", "date_obs", "time_obs", *_IDS, *_DITHER}),
}
#: webbflow's dotted keys -> Mirage's, so that validation errors name what the user wrote.
_KEY_NAMES: Final = {
    "instrument": "Inst.instrument",
    "aperture": "Readout.array_name",
    "filter": "Readout.filter",
    "pupil": "Readout.pupil",
    "readout.readpatt": "Readout.readpatt",
    "readout.ngroups": "Readout.ngroup",
    "readout.nints": "Readout.nint",
    "pointing.ra": "Telescope.ra",
    "pointing.dec": "Telescope.dec",
    "pointing.v3pa": "Telescope.rotation",
    "catalogs.point": "simSignals.pointsource",
    "catalogs.galaxy": "simSignals.galaxyListFile",
    "catalogs.extended": "simSignals.extended",
    "background": "simSignals.bkgdrate",
    "cosmic_rays.environment": "cosmicRay.library",
    "cosmic_rays.scale": "cosmicRay.scale",
    "segmap_threshold": "simSignals.signal_low_limit_for_segmap",
    "seed": "simSignals.poissonseed",
    "date_obs": "Output.date_obs",
    "time_obs": "Output.time_obs",
    "output.name": "Output.file",
    "output.directory": "Output.directory",
    "output.products": "Output.datatype",
    **{f"observation.{ours}": f"Output.{theirs}" for theirs, ours in _IDS.items()},
    **{f"observation.dither.{key}": f"Output.{key}" for key in _DITHER},
}
_NIRISS_GHOSTS: Final = frozenset({"F090W", "F115W", "F140M", "F150W", "F200W"})
_REPLACED_BY_RESOLVER: Final = (
    "webbflow's reference resolver (CRDS when CRDS_PATH is set, else embedded defaults)"
)


def _is_none(value: Any) -> bool:
    """Mirage writes ``None`` (text) or leaves the value blank to mean "off"."""
    return value is None or (isinstance(value, str) and value.strip().lower() in {"", "none"})


def _matches(value: Any, harmless: tuple[Any, ...]) -> bool:
    if _is_none(value):
        return True
    norm = value.strip().lower() if isinstance(value, str) else value
    # True == 1 in Python: a boolean only matches a boolean
    return any(norm == h and (isinstance(norm, bool) == isinstance(h, bool)) for h in harmless)


class _Reader:
    """One Mirage YAML being translated: its sections, base directory and notes."""

    def __init__(self, data: Mapping[str, Any], source: str, base_dir: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir
        self.notes: list[str] = []
        self.sections: dict[str, Mapping[str, Any]] = {}
        for name, section in data.items():
            if section is None:
                section = {}
            if not isinstance(section, Mapping):
                raise InputError(f"{source}: {name}: expected a section of keys, found {section!r}")
            self.sections[str(name)] = section

    def get(self, section: str, key: str, default: Any = None) -> Any:
        value = self.sections.get(section, {}).get(key, default)
        return default if _is_none(value) else value

    def fail(self, key: str, message: str) -> InputError:
        return InputError(f"{self.source}: {key}: {message}")

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def file(self, value: Any) -> tuple[str, Path | None]:
        """``(kind, path)``: kind none, crds, config, found (path set) or missing."""
        if _is_none(value):
            return "none", None
        text = str(value).strip()
        if text.lower() in {"crds", "config"}:
            return text.lower(), None
        path = expand_path(text, self.base_dir, strict=False)
        return ("found", path) if path.exists() else ("missing", None)


def from_mirage(data: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> SimConfig:
    """Translate a Mirage input YAML (already parsed) into a :class:`SimConfig`.

    Parameters
    ----------
    data
        The YAML's top-level mapping (``Inst``, ``Readout``, ... sections).
    path
        The YAML file: relative paths are relative to its directory, and errors name it.

    Raises
    ------
    InputError
        One line naming the file and the Mirage key: a missing or invalid value, or a
        setting webbflow cannot simulate (moving targets, non-imaging modes...).
    """
    source = os.fspath(path) if path is not None else "<mirage>"
    base_dir = Path(path).absolute().parent if path is not None else None
    r = _Reader(data, source, base_dir)
    _check_keys(r)
    out: dict[str, Any] = {}
    for key, where in (("instrument", "Inst"), ("array_name", "Readout")):
        if r.get(where, key) is None:
            raise r.fail(f"{where}.{key}", "required key is missing")
    out["instrument"] = r.get("Inst", "instrument")
    out["aperture"] = r.get("Readout", "array_name")
    if str(out["aperture"]).strip().upper() in {"MIRIMAGE", "MIRIM"}:  # the MIRI imager's full frame
        out["aperture"] = "MIRIM_FULL"
    try:
        detector = get_detector(detector_for_aperture(str(out["aperture"])))
    except ValueError as exc:
        raise r.fail("Readout.array_name", str(exc)) from None
    out["filter"] = r.get("Readout", "filter", "")
    out["pupil"] = r.get("Readout", "pupil", "CLEAR")
    _check_ghosts(r, out)
    readout = {"readpatt": r.get("Readout", "readpatt"), "ngroups": r.get("Readout", "ngroup")}
    readout["nints"] = r.get("Readout", "nint")
    out["readout"] = {k: v for k, v in readout.items() if v is not None}
    pointing = {"ra": r.get("Telescope", "ra"), "dec": r.get("Telescope", "dec")}
    pointing["v3pa"] = r.get("Telescope", "rotation")
    out["pointing"] = {k: v for k, v in pointing.items() if v is not None}
    out["catalogs"] = {
        ours: [r.get("simSignals", theirs)]
        for ours, theirs in (("point", "pointsource"), ("galaxy", "galaxyListFile"), ("extended", "extended"))
        if r.get("simSignals", theirs) is not None
    }
    out["background"] = _background(r, detector.gain)
    out["segmap_threshold"] = _segmap_threshold(r, detector.gain)
    out["cosmic_rays"] = _cosmic_rays(r)
    out["seed"] = _seed(r)
    out.update(_reference_files(r, detector.instrument))
    out.update(_psf_library(r, out, detector.name))
    out.update(_output(r))
    out["notes"] = tuple(r.notes)
    return config_from_dict(out, source, base_dir=base_dir, key_names=_KEY_NAMES)


def _check_keys(r: _Reader) -> None:
    """Fail on settings webbflow cannot simulate; note the ignored and the unknown keys."""
    ignored, unknown = [], []
    for name, section in r.sections.items():
        if name not in _IGNORED and name not in _USED and name not in _FATAL:
            unknown.append(name)
            continue
        for key, value in section.items():
            dotted = f"{name}.{key}"
            if key in _FATAL.get(name, {}):
                harmless, reason = _FATAL[name][key]
                if not _matches(value, harmless):
                    raise r.fail(dotted, f"{value!r}: {reason} {_NOT_SIMULATED}")
            elif key in _IGNORED.get(name, {}):
                neutral = _IGNORED[name][key]
                if neutral is not None and not _matches(value, neutral):
                    ignored.append(dotted)
            elif key not in _USED.get(name, frozenset()):
                unknown.append(dotted)
    if ignored:
        r.note(f"ignored Mirage keys (no effect in webbflow): {', '.join(ignored)}")
    if unknown:
        r.note(f"unknown keys (not Mirage's; not read): {', '.join(unknown)}")


def _check_ghosts(r: _Reader, out: Mapping[str, Any]) -> None:
    """Mirage adds optical ghosts only for NIRISS F090W-F200W; webbflow has no ghost model."""
    add = r.get("simSignals", "add_ghosts", False)
    elements = {str(out["filter"]).upper(), str(out["pupil"]).upper()}
    if add is True and str(out["instrument"]).upper() == "NIRISS" and elements & _NIRISS_GHOSTS:
        raise r.fail("simSignals.add_ghosts", f"True: optical ghosts are not supported {_NOT_SIMULATED}")


def _background(r: _Reader, gain: float) -> dict[str, Any]:
    rate = r.get("simSignals", "bkgdrate")
    if rate is None:
        return {"level": "none"}
    try:
        adu = float(rate)
    except (TypeError, ValueError):
        return {"level": rate}  # low/medium/high, checked by SimConfig
    r.note(
        f"simSignals.bkgdrate {adu:g} ADU/s/pixel taken as {adu * gain:.4g} e-/s/pixel "
        f"(× mean gain {gain:g} e-/DN)"
    )
    return {"rate": adu * gain}


def _segmap_threshold(r: _Reader, gain: float) -> Any:
    value = r.get("simSignals", "signal_low_limit_for_segmap")
    if value is None:
        return 0.031
    units = str(r.get("simSignals", "signal_low_limit_for_segmap_units", "ADU/sec")).replace(" ", "").lower()
    if units in {"adu/sec", "adu/s"}:
        return float(value) * gain if isinstance(value, int | float) else value
    if units in {"e/sec", "e/s", "e-/sec", "e-/s"}:
        return value
    r.note(
        f"simSignals.signal_low_limit_for_segmap in {units}: only ADU/sec and e/sec are supported; "
        "using 0.031 e-/s"
    )
    return 0.031


def _cosmic_rays(r: _Reader) -> dict[str, Any]:
    library = r.get("cosmicRay", "library", "SUNMAX")
    scale = r.get("cosmicRay", "scale", 1.0)
    name = "FLARES" if str(library).strip().upper() == "FLARE" else str(library).strip().upper()
    what = f"webbflow's cosmic-ray track model (library {name}, scale {scale})"
    path = r.get("cosmicRay", "path")
    if path is not None:
        kind, _ = r.file(path)
        verb = "is not read" if kind == "found" else "not found"
        r.note(f"cosmic-ray library {path} {verb}: using {what}")
    return {"environment": library, "scale": scale}


def _seed(r: _Reader) -> Any:
    poisson, cosmic = r.get("simSignals", "poissonseed"), r.get("cosmicRay", "seed")
    if poisson is None or cosmic is None:
        return next((s for s in (poisson, cosmic) if s is not None), 0)
    if not all(isinstance(s, int) and s >= 0 for s in (poisson, cosmic)):
        raise r.fail("simSignals.poissonseed", f"seeds must be integers >= 0, got {poisson!r} and {cosmic!r}")
    seed = (poisson * 2**32 + cosmic) % 2**63
    r.note(f"seed {seed} = (simSignals.poissonseed × 2**32 + cosmicRay.seed) mod 2**63")
    return seed


def _reference_files(r: _Reader, instrument: str) -> dict[str, Any]:
    """Reffiles -> reffiles overrides, dark ramp and effect switches, with one note per kind."""
    out: dict[str, Any] = {"reffiles": {}}
    resolver, missing, off = [], [], []
    for key, reftype in _REFTYPES.items():
        value = r.get("Reffiles", key)
        kind, path = r.file(value)
        if kind == "found" and key == "ipc" and r.get("Reffiles", "invertIPC", True) is False:
            r.note(
                f"Reffiles.ipc {value} is a kernel that adds IPC (invertIPC False), not a jwst IPC "
                f"reference: using {_REPLACED_BY_RESOLVER}"
            )
        elif kind == "found":
            out["reffiles"][reftype] = path
        elif kind in {"crds", "config"}:
            resolver.append(key)
        elif kind == "missing":
            missing.append(f"{key} {value}")
        elif key in _OFF_WHEN_NONE:
            off.append(_OFF_WHEN_NONE[key])
    if resolver:
        r.note(f"Reffiles {', '.join(resolver)} (crds/config): chosen by {_REPLACED_BY_RESOLVER}")
    if missing:
        r.note(f"reference files not found: {'; '.join(missing)}: using {_REPLACED_BY_RESOLVER}")
    if off:
        out["effects"] = dict.fromkeys(off, False)
        r.note(f"Reffiles set to None turn off: {', '.join(off)}")
    crosstalk = r.get("Reffiles", "crosstalk")
    if instrument == "NIRCAM" and crosstalk is not None:
        r.note(f"Reffiles.crosstalk {crosstalk}: webbflow has no crosstalk model (none is added)")
    out.update(_dark(r))
    return out


def _dark(r: _Reader) -> dict[str, Any]:
    dark, linearized = r.get("Reffiles", "dark"), r.get("Reffiles", "linearized_darkfile")
    kind, path = r.file(dark)
    if kind == "found":
        if linearized is not None:
            r.note(f"linearized dark {linearized} is not supported: using the raw dark ramp {dark}")
        return {"dark_ramp": path}
    problems = [f"linearized dark {linearized} is not supported"] if linearized is not None else []
    if kind == "missing":
        problems.append(f"dark ramp {dark} not found")
    elif kind != "none":
        problems.append(f"dark ramp {dark!r} cannot be looked up")
    elif not problems:
        problems.append("no dark ramp given")
    r.note(f"{'; '.join(problems)}: using webbflow's dark-current and HxRG noise model")
    return {}


def _psf_library(r: _Reader, out: Mapping[str, Any], detector: str) -> dict[str, Any]:
    """``psfpath``: a library FITS file, or Mirage's library directory searched for this detector/filter."""
    psfpath = r.get("simSignals", "psfpath")
    if psfpath is None:
        return {}
    kind, path = r.file(psfpath)
    if kind == "found" and path is not None and path.is_file():
        return {"psf_library": path}
    if kind == "found" and path is not None:
        aperture_det = str(out["aperture"]).upper().split("_")[0].lower()
        elements = [str(e).lower() for e in (out["filter"], out["pupil"]) if str(e).upper().startswith("F")]
        found = [
            p
            for p in sorted(path.glob("*.fits"))
            if any(d in p.name.lower() for d in (aperture_det, detector.lower()))
            and all(e in p.name.lower() for e in elements)
        ]
        wfe = str(r.get("simSignals", "psfwfe", "predicted")).lower()
        if len(found) > 1:
            found = [p for p in found if wfe in p.name.lower()] or found
        if len(found) == 1:
            return {"psf_library": found[0]}
        r.note(
            f"PSF library directory {psfpath} holds {len(found)} libraries for {detector} "
            f"{'/'.join(elements).upper()}: using webbflow's poppy PSF model"
        )
        return {}
    r.note(f"PSF library path {psfpath} not found: using webbflow's poppy PSF model")
    return {}


def _output(r: _Reader) -> dict[str, Any]:
    """Output section -> output, observation, date and time."""
    output: dict[str, Any] = {}
    name = r.get("Output", "file")
    if name is not None:
        output["name"] = Path(str(name)).name
        if not output["name"].endswith("_uncal.fits"):
            stem = output["name"].removesuffix(".fits")
            output["name"] = f"{stem}_uncal.fits"
            r.note(f"Output.file {name} renamed {output['name']} (webbflow products end in _uncal.fits)")
    if r.get("Output", "directory") is not None:
        output["directory"] = r.get("Output", "directory")
    datatype = r.get("Output", "datatype")
    if datatype is not None:
        kinds = [k.strip().lower() for k in str(datatype).replace(",", " ").split()]
        table = {"raw": "uncal", "linear": "linear"}
        bad = [k for k in kinds if k not in table]
        if bad or not kinds:
            raise r.fail("Output.datatype", f"{datatype!r}: expected raw, linear, or linear,raw")
        output["products"] = [p for p in ("uncal", "linear") if p in {table[k] for k in kinds}] + ["seed"]
    observation: dict[str, Any] = {
        ours: str(r.get("Output", theirs)) if theirs == "activity_id" else r.get("Output", theirs)
        for theirs, ours in _IDS.items()
        if r.get("Output", theirs) is not None
    }
    dither = {key: r.get("Output", key) for key in _DITHER if r.get("Output", key) is not None}
    if dither:
        observation["dither"] = dither
    result: dict[str, Any] = {"output": output, "observation": observation}
    for key in ("date_obs", "time_obs"):
        if r.get("Output", key) is not None:
            result[key] = r.get("Output", key)
    return result
