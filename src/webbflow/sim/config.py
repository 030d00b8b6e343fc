"""The validated description of one simulated exposure on one detector.

A :class:`SimConfig` is what the simulator runs: instrument, SIAF aperture, optics,
readout, pointing, source catalogs, background, cosmic rays, switches for each
detector effect, reference-file overrides and the exposure's identity (program,
observation, visit...). It is a tree of frozen pydantic models: unknown keys fail,
every value is typed and checked once, here.

:func:`load_config` reads a YAML file in either of two formats:

* webbflow's own, whose keys are the field names below::

    instrument: NIRCAM
    aperture: NRCB5_FULL
    filter: F444W
    readout: {readpatt: DEEP8, ngroups: 6}
    pointing: {ra: 53.16, dec: -27.79, v3pa: 0.0}   # error: {dx: 0.1, dy: 0, droll: 0}
    catalogs: {point: [../catalogs/ptsrc_radec.cat]}

  MIRI imaging names the detector and subarray instead of the aperture (``aperture: MIRIM_SUB256``
  works too)::

    instrument: MIRI
    detector: MIRIMAGE          # or MIRIM
    subarray: FULL              # BRIGHTSKY, SUB256, SUB128, SUB64, MASK1065 ... (MIRI_SUBARRAYS)
    filter: F770W
    readout: {readpatt: FASTR1, ngroups: 50, nints: 5}   # SLOWR1 (full frame only); FAST/SLOW

* a Mirage input YAML (top-level ``Inst``, ``Readout``, ``Reffiles``... sections),
  translated by :func:`webbflow.io.mirage_yaml.from_mirage`.

Paths in a file are taken relative to that file; ``~`` and environment variables
(``$MIRAGE_DATA``) are expanded; input files must exist. Every problem is one
:class:`~webbflow.errors.InputError` line ``<file>: <dotted.key>: <what was wrong>``.
The sections (:class:`Readout`, :class:`Pointing`, ...) are defined in
:mod:`webbflow.sim._config_sections`.

YAML is read by :func:`webbflow.io.yaml_reader.read_yaml`: leading-zero numbers and
``12:30:00``-like values stay text (no YAML 1.1 octal or base-60), duplicate keys fail.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from webbflow.detectors import MIRI_SUBARRAYS, READ_PATTERNS, get_detector
from webbflow.errors import InputError, suggest

# The sections and the file helpers moved out of this module are re-exported (``X as X``)
# so that ``from webbflow.sim.config import ...`` keeps working.
from webbflow.io.yaml_reader import expand_path as expand_path
from webbflow.io.yaml_reader import read_yaml as read_yaml
from webbflow.sim._config_sections import Background as Background
from webbflow.sim._config_sections import Catalogs as Catalogs
from webbflow.sim._config_sections import CosmicRays as CosmicRays
from webbflow.sim._config_sections import Directory as Directory
from webbflow.sim._config_sections import Dither as Dither
from webbflow.sim._config_sections import Effects as Effects
from webbflow.sim._config_sections import FrozenModel, upper
from webbflow.sim._config_sections import InputFile as InputFile
from webbflow.sim._config_sections import Miri as Miri
from webbflow.sim._config_sections import Noise as Noise
from webbflow.sim._config_sections import Observation as Observation
from webbflow.sim._config_sections import Output as Output
from webbflow.sim._config_sections import Pointing as Pointing
from webbflow.sim._config_sections import PointingError as PointingError
from webbflow.sim._config_sections import Readout as Readout
from webbflow.sim._siaf_names import detector_for_aperture as detector_for_aperture

#: Reference types that ``reffiles`` may override (jwst REFTYPE names, lower case).
REFTYPES: Final = (
    "mask",
    "saturation",
    "superbias",
    "linearity",
    "dark",
    "gain",
    "readnoise",
    "ipc",
    "flat",
    "area",
    "distortion",
    "photom",
    "reset",
    "rscd",
    "emicorr",
)
#: Reference types of one instrument family only (the other has no such step or reference).
MIRI_ONLY_REFTYPES: Final = frozenset({"reset", "rscd", "emicorr"})
NIR_ONLY_REFTYPES: Final = frozenset({"superbias", "ipc"})
#: ``detector`` values that name the MIRI imager.
MIRI_IMAGER_NAMES: Final = frozenset({"MIRIMAGE", "MIRIM"})
#: Top-level sections that mark a Mirage input YAML.
MIRAGE_SECTIONS: Final = frozenset(
    {"Inst", "Readout", "Reffiles", "nonlin", "cosmicRay", "simSignals", "Telescope", "newRamp", "Output"}
)

_NIS_PUPIL_WHEEL: Final = frozenset({"F090W", "F115W", "F140M", "F150W", "F158M", "F200W"})
_NOT_IMAGING = re.compile(r"(GRISM|GR150|GR700|NRM|MASK)\w*")
_NO_ELEMENT: Final = frozenset({"", "N/A", "NONE", "CLEAR"})


class FieldError(ValueError):
    """A cross-field problem found by a model validator, reported under ``key`` (dotted)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class SimConfig(FrozenModel):
    """One exposure of one detector: everything the simulator needs, validated.

    Build it with :func:`load_config` or :func:`config_from_dict`; errors then come
    as one-line :class:`~webbflow.errors.InputError`.
    """

    instrument: Literal["NIRCAM", "NIRISS", "FGS", "MIRI"]
    """``NIRCAM``, ``NIRISS``, ``FGS`` or ``MIRI`` (any case)."""
    aperture: str
    """SIAF aperture name: ``NRCA1_FULL``, ``NRCB5_FULL``, ``NRCA1_SUB160``, ``NIS_CEN``, ``FGS1_FULL``,
    ``MIRIM_FULL``, ``MIRIM_SUB256``... (MIRI: or give ``detector`` and ``subarray``)."""
    filter: str = ""
    """Filter-wheel element (upper case); empty for FGS. NIRISS F090W-F200W sit in the pupil wheel."""
    pupil: str = "CLEAR"
    """Pupil-wheel element (NIRISS: ``CLEARP`` with filter-wheel filters; empty for FGS and MIRI)."""
    readout: Readout = Field(default_factory=Readout)
    pointing: Pointing = Field(default_factory=Pointing)
    date_obs: str = "2026-01-01"
    """UTC date of the exposure start, ``YYYY-MM-DD``."""
    time_obs: str = "00:00:00.000"
    """UTC time of the exposure start, ``HH:MM:SS[.sss]``."""
    catalogs: Catalogs = Field(default_factory=Catalogs)
    background: Background = Field(default_factory=Background)
    cosmic_rays: CosmicRays = Field(default_factory=CosmicRays)
    effects: Effects = Field(default_factory=Effects)
    noise: Noise = Field(default_factory=Noise)
    psf_library: InputFile | None = None
    """A webbpsf/stpsf gridded PSF library FITS file; ``None`` uses webbflow's poppy PSF."""
    dark_ramp: InputFile | None = None
    """A raw dark ramp to start from instead of the dark-current and read-noise model."""
    reffiles: dict[str, InputFile] = Field(default={})
    """Reference-file overrides by reftype (:data:`REFTYPES`); others come from the resolver."""
    segmap_threshold: float = Field(default=0.031, ge=0.0)
    """Lowest source rate, e⁻/s, for a pixel to enter the segmentation map."""
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Seed of every random stream of the exposure (fits a signed 64-bit integer)."""
    miri: Miri = Field(default_factory=Miri)
    """MIRI detector-effect amplitudes (ignored for NIR exposures)."""
    observation: Observation = Field(default_factory=Observation)
    output: Output = Field(default_factory=Output)
    notes: tuple[str, ...] = ()
    """What the loader replaced or ignored (printed once by the CLI)."""

    _optics = field_validator("instrument", "aperture", "filter", "pupil", mode="before")(upper)

    @property
    def detector(self) -> str:
        """``DETECTOR`` keyword value (``NRCB5_FULL`` -> ``NRCBLONG``)."""
        return detector_for_aperture(self.aperture)

    @property
    def subarray(self) -> str:
        """MIRI ``SUBARRAY`` keyword (``MIRIM_SUB256`` -> ``SUB256``); NIR: the aperture's suffix."""
        return self.aperture.partition("_")[2]

    @property
    def uncal_name(self) -> str:
        """The uncal file name: :attr:`Output.name`, or the JWST name built from :attr:`observation`.

        ``jw{program}{observation:03d}{visit:03d}_{visit_group:02d}{sequence}{act_id}_{exposure:05d}_
        {detector}_uncal.fits``, detector in lower case, ``act_id`` base 36 (as JWST file names).
        """
        if self.output.name:
            return self.output.name
        o = self.observation
        return (
            f"jw{o.program}{o.observation:03d}{o.visit:03d}_{o.visit_group:02d}{o.sequence:1d}{o.act_id}"
            f"_{o.exposure:05d}_{self.detector.lower()}_uncal.fits"
        )

    @model_validator(mode="before")
    @classmethod
    def _wheels(cls, data: Any) -> Any:
        """Put FGS's absent and NIRISS's pupil-wheel filters where jwst expects them."""
        if not isinstance(data, dict) or not isinstance(data.get("instrument"), str):
            return data
        data = dict(data)
        instrument = data["instrument"].strip().upper()
        data = _detector_subarray(data, instrument)
        filt, pupil = upper(data.get("filter", "")), upper(data.get("pupil", "CLEAR"))
        if not (isinstance(filt, str) and isinstance(pupil, str)):
            return data
        if instrument == "MIRI":
            data["pupil"] = "" if pupil in _NO_ELEMENT else pupil  # MIRI has no pupil wheel
            readout = data.get("readout")
            if readout is None or (isinstance(readout, Mapping) and "readpatt" not in readout):
                data["readout"] = {**(readout or {}), "readpatt": "FASTR1"}  # JDox: the imaging default
        elif instrument == "FGS":
            data["filter"] = "" if filt in _NO_ELEMENT else filt
            data["pupil"] = "" if pupil in _NO_ELEMENT else pupil
        elif instrument == "NIRISS":
            if filt in _NIS_PUPIL_WHEEL and pupil in {"CLEAR", "CLEARP", ""}:
                data["filter"], data["pupil"] = "CLEAR", filt
                note = f"NIRISS {filt} is a pupil-wheel filter: using filter CLEAR, pupil {filt}"
                data["notes"] = (*data.get("notes", ()), note)
            elif pupil == "CLEAR" and filt not in _NO_ELEMENT:
                data["pupil"] = "CLEARP"  # NIRISS's clear pupil-wheel position is called CLEARP
        return data

    @field_validator("reffiles", mode="before")
    @classmethod
    def _reftypes(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        for key in value:
            if str(key).lower() not in REFTYPES:
                raise FieldError(
                    f"reffiles.{key}",
                    f"unknown reference type {key!r}{suggest(str(key).lower(), REFTYPES)} "
                    f"(expected one of: {', '.join(REFTYPES)})",
                )
        return {str(k).lower(): v for k, v in value.items()}

    @field_validator("date_obs", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        value = value.isoformat()[:10] if isinstance(value, dt.date) else value
        try:
            dt.date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not a date (expected YYYY-MM-DD)") from None
        return str(value)

    @field_validator("time_obs", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        text = str(value).strip()
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?", text):
            raise ValueError(f"{value!r} is not a time (expected HH:MM:SS.sss, UTC)")
        return text

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        try:
            det = get_detector(detector_for_aperture(self.aperture))
        except ValueError as exc:
            raise FieldError("aperture", str(exc)) from None
        if det.instrument != self.instrument:
            raise FieldError(
                "aperture", f"{self.aperture} is a {det.instrument} aperture, not {self.instrument}"
            )
        patterns = READ_PATTERNS[self.instrument]
        if self.readout.readpatt not in patterns:
            raise FieldError(
                "readout.readpatt",
                f"{self.readout.readpatt!r} is not a {self.instrument} readout pattern"
                f"{suggest(self.readout.readpatt, patterns)} (expected one of: {', '.join(patterns)})",
            )
        self._check_reftypes()
        if self.instrument == "MIRI":
            self._check_miri()
        else:
            self._check_optics(det.channel)
        return self

    def _check_reftypes(self) -> None:
        wrong = MIRI_ONLY_REFTYPES if self.instrument != "MIRI" else NIR_ONLY_REFTYPES
        for reftype in self.reffiles:
            if reftype in wrong:
                family = "MIRI" if reftype in MIRI_ONLY_REFTYPES else "near-infrared"
                raise FieldError(
                    f"reffiles.{reftype}",
                    f"{reftype} is a {family} reference type: no {self.instrument} step uses it",
                )

    def _check_miri(self) -> None:
        from webbflow.sim.fluxcal import known_elements

        sub = self.subarray
        if sub not in MIRI_SUBARRAYS:
            raise FieldError(
                "aperture",
                f"{self.aperture}: not a MIRI imager subarray "
                f"(expected MIRIM_ + one of: {', '.join(MIRI_SUBARRAYS)})",
            )
        if self.readout.readpatt in {"SLOW", "SLOWR1"} and sub != "FULL":
            raise FieldError(
                "readout.readpatt", f"{self.readout.readpatt} reads the full array only, not {sub}"
            )
        if self.pupil:
            raise FieldError("pupil", f"{self.pupil!r}: MIRI has no pupil wheel (leave it empty)")
        elements = known_elements("MIRI")
        if self.filter not in elements:
            raise FieldError(
                "filter",
                f"{self.filter!r} is not a MIRI imager filter{suggest(self.filter, elements)} "
                f"(expected one of: {', '.join(elements)})",
            )

    def _check_optics(self, channel: str) -> None:
        from webbflow.sim.fluxcal import known_elements

        if self.filter in known_elements("MIRI") or self.pupil in known_elements("MIRI"):
            element = self.filter if self.filter in known_elements("MIRI") else self.pupil
            raise FieldError("filter", f"{element} is a MIRI filter, not a {self.instrument} one")
        if self.instrument == "FGS":
            for key in ("filter", "pupil"):
                if getattr(self, key):
                    raise FieldError(key, f"{getattr(self, key)!r}: FGS has no {key} wheel (leave it empty)")
            return
        if not self.filter:
            raise FieldError("filter", f"required for {self.instrument} (e.g. F200W, F444W; NIRISS: CLEAR)")
        for key in ("filter", "pupil"):
            element = getattr(self, key)
            if _NOT_IMAGING.fullmatch(element):
                raise FieldError(
                    key, f"{element} is not an imaging element (webbflow simulates imaging only)"
                )
            match = re.fullmatch(r"F(\d{3})[WMN]2?", element)
            if channel and match and (int(match.group(1)) >= 250) != (channel == "LONG"):
                band = "long" if channel == "SHORT" else "short"
                raise FieldError(
                    key,
                    f"{element} is a {band}-wavelength filter but {self.aperture} is on a "
                    f"{channel.lower()}-wavelength detector",
                )


def _detector_subarray(data: dict[str, Any], instrument: str) -> dict[str, Any]:
    """MIRI's ``detector`` + ``subarray`` keys -> ``aperture`` (``MIRIM_<subarray>``); others refuse them."""
    if "detector" not in data and "subarray" not in data:
        return data
    detector, subarray = upper(data.pop("detector", "")), upper(data.pop("subarray", ""))
    if instrument != "MIRI":
        key = "detector" if detector else "subarray"
        raise FieldError(key, f"{instrument} exposures name their SIAF aperture (e.g. NRCA1_FULL), not {key}")
    if detector and detector not in MIRI_IMAGER_NAMES:
        raise FieldError("detector", f"{detector!r} is not the MIRI imager (expected MIRIMAGE or MIRIM)")
    name = f"MIRIM_{subarray or 'FULL'}"
    if data.get("aperture") and upper(data["aperture"]) != name:
        raise FieldError("subarray", f"{subarray or 'FULL'} disagrees with aperture {data['aperture']}")
    data["aperture"] = name
    return data


def _one_line(exc: ValidationError, source: str, key_names: Mapping[str, str]) -> InputError:
    """The first problem of ``exc`` as ``<source>: <dotted.key>: <message>``."""
    errors = exc.errors()
    err = errors[0]
    loc = [str(part) for part in err["loc"]]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        loc = cause.key.split(".")
    if err["type"] == "extra_forbidden":
        fields = list(_model_at(loc[:-1]).model_fields)
        message = f"unknown key {loc[-1]!r}{suggest(loc[-1], fields)} (expected one of: {', '.join(fields)})"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif isinstance(cause, ValueError):
        message = str(cause)
    else:
        message = f"{err['msg'][:1].lower()}{err['msg'][1:]} (got {err['input']!r})"
    key = ".".join(loc)
    for n in range(len(loc), 0, -1):  # report Mirage's name of the key when converting
        prefix = ".".join(loc[:n])
        if prefix in key_names:
            key = key_names[prefix]  # the rest of the path is webbflow's structure, not the user's
            break
    more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    return InputError(f"{source}: {key or '<top level>'}: {message}{more}")


def _model_at(loc: list[str]) -> type[BaseModel]:
    """The model class holding the key at ``loc`` (for listing its valid keys)."""
    model: type[BaseModel] = SimConfig
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def config_from_dict(
    data: Mapping[str, Any],
    source: str = "<dict>",
    *,
    base_dir: Path | None = None,
    key_names: Mapping[str, str] | None = None,
) -> SimConfig:
    """Validate a webbflow-format configuration mapping.

    Parameters
    ----------
    data
        Keys and values as in a webbflow YAML file.
    source
        Name used in error messages (the file name).
    base_dir
        Directory that relative paths are relative to; the current directory when ``None``.
    key_names
        Dotted webbflow keys -> the names the user wrote (Mirage's), for error messages.

    Raises
    ------
    InputError
        One line naming ``source``, the dotted key and what was expected.
    """
    try:
        return SimConfig.model_validate(dict(data), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _one_line(exc, source, key_names or {}) from None


def load_config(path: str | os.PathLike[str]) -> SimConfig:
    """Read a webbflow or Mirage YAML configuration file (the format is detected).

    Raises
    ------
    InputError
        Missing or unreadable file, YAML syntax error (with its line), or an invalid value.
    """
    path = Path(path)
    data = read_yaml(path)
    if MIRAGE_SECTIONS & set(data):
        from webbflow.io.mirage_yaml import from_mirage

        return from_mirage(data, path)
    return config_from_dict(data, str(path), base_dir=path.absolute().parent)


def dump_config(config: SimConfig, path: str | os.PathLike[str] | None = None) -> str:
    """``config`` as webbflow YAML text (without its notes), written to ``path`` when given."""
    text = yaml.safe_dump(config.model_dump(mode="json", exclude={"notes"}), sort_keys=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
