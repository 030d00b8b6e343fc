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
    pointing: {ra: 53.16, dec: -27.79, v3pa: 0.0}
    catalogs: {point: [../catalogs/ptsrc_radec.cat]}

* a Mirage input YAML (top-level ``Inst``, ``Readout``, ``Reffiles``... sections),
  translated by :func:`webbflow.io.mirage_yaml.from_mirage`.

Paths in a file are taken relative to that file; ``~`` and environment variables
(``$MIRAGE_DATA``) are expanded; input files must exist. Every problem is one
:class:`~webbflow.errors.InputError` line ``<file>: <dotted.key>: <what was wrong>``.

YAML is read with two YAML 1.1 surprises turned off: numbers with leading zeros
(``program_number: 01111``, ``observation_number: 002``) stay text instead of
becoming octal integers, and ``12:30:00``-like values stay text instead of
becoming base-60 numbers (``time_obs``, sexagesimal RA/Dec). Duplicate keys fail.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from webbflow.demo import READ_PATTERNS
from webbflow.detectors import get_detector
from webbflow.errors import InputError, suggest

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
)
#: Top-level sections that mark a Mirage input YAML.
MIRAGE_SECTIONS: Final = frozenset(
    {"Inst", "Readout", "Reffiles", "nonlin", "cosmicRay", "simSignals", "Telescope", "newRamp", "Output"}
)

_ENV_VAR = re.compile(r"\$(\{\w+\}|\w+)")
_APERTURES: Final = (
    (re.compile(r"NRC([AB])([1-4])_\w+"), "NRC{0}{1}"),
    (re.compile(r"NRC([AB])5_\w+"), "NRC{0}LONG"),
    (re.compile(r"NIS_\w+"), "NIS"),
    (re.compile(r"FGS([12])_\w+"), "GUIDER{0}"),
)
_NIS_PUPIL_WHEEL: Final = frozenset({"F090W", "F115W", "F140M", "F150W", "F158M", "F200W"})
_NOT_IMAGING = re.compile(r"(GRISM|GR150|GR700|NRM|MASK)\w*")
_NO_ELEMENT: Final = frozenset({"", "N/A", "NONE", "CLEAR"})
_BASE36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


class FieldError(ValueError):
    """A cross-field problem found by a model validator, reported under ``key`` (dotted)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def expand_path(text: str | os.PathLike[str], base_dir: Path | None = None, *, strict: bool = True) -> Path:
    """``text`` with environment variables and ``~`` expanded, made absolute against ``base_dir``.

    Parameters
    ----------
    text
        A path as written in a configuration file.
    base_dir
        Directory of that file; the current directory when ``None``.
    strict
        Raise ``ValueError`` when a ``$VARIABLE`` is not set; otherwise the text is kept.
    """
    raw = os.path.expandvars(os.fspath(text))
    unset = _ENV_VAR.search(raw)
    if unset and strict:
        raise ValueError(f"{os.fspath(text)}: environment variable {unset.group(1).strip('{}')} is not set")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    return Path(os.path.normpath(path))


def detector_for_aperture(aperture: str) -> str:
    """The ``DETECTOR`` keyword of a SIAF aperture (``NRCB5_FULL`` -> ``NRCBLONG``).

    Raises
    ------
    ValueError
        If the aperture does not name one NIRCam, NIRISS or FGS detector.
    """
    name = str(aperture).strip().upper()
    for pattern, template in _APERTURES:
        match = pattern.fullmatch(name)
        if match:
            return template.format(*match.groups())
    raise ValueError(
        f"{aperture!r} does not name one detector's SIAF aperture "
        "(expected e.g. NRCA1_FULL, NRCB5_FULL, NRCA1_SUB160, NIS_CEN, FGS1_FULL)"
    )


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context
    return context.get("base_dir") if isinstance(context, Mapping) else None


def _input_file(value: Path, info: ValidationInfo) -> Path:
    path = expand_path(value, _base_dir(info))
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


def _directory(value: Path, info: ValidationInfo) -> Path:
    return expand_path(value, _base_dir(info))


#: An input file: expanded, absolute, and existing.
InputFile = Annotated[Path, AfterValidator(_input_file)]
#: An output directory: expanded and absolute (created when writing).
Directory = Annotated[Path, AfterValidator(_directory)]


def _upper(value: Any) -> Any:
    return "" if value is None else value.strip().upper() if isinstance(value, str) else value


def _id_number(value: Any) -> Any:
    """IDs written as text with leading zeros (``'002'``) are integers."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Readout(_Model):
    """Readout pattern and ramp shape."""

    readpatt: str = "RAPID"
    """Readout pattern of the instrument (``webbflow.demo.READ_PATTERNS``), upper case."""
    ngroups: int = Field(default=10, ge=1)
    """Groups per integration."""
    nints: int = Field(default=1, ge=1)
    """Integrations in the exposure."""

    _readpatt = field_validator("readpatt", mode="before")(_upper)


class Pointing(_Model):
    """Where the aperture's reference point looks, degrees."""

    ra: float = Field(default=53.1625, ge=0.0, le=360.0)
    """Right ascension, deg (or sexagesimal text ``"03:32:39.0"`` in hours)."""
    dec: float = Field(default=-27.7914, ge=-90.0, le=90.0)
    """Declination, deg (or sexagesimal text ``"-27:47:29"`` in degrees)."""
    v3pa: float = 0.0
    """Position angle of the telescope V3 axis, deg east of north."""

    @field_validator("ra", "dec", mode="before")
    @classmethod
    def _sexagesimal(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str) or not re.search(r"[:hdms ]", value.strip()):
            return value
        from astropy import units as u
        from astropy.coordinates import Angle

        unit = u.hourangle if info.field_name == "ra" else u.deg
        try:
            return float(Angle(value, unit=unit).deg)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an angle (decimal degrees or 'HH:MM:SS.s'): {exc}") from None


class Catalogs(_Model):
    """Source catalogs (Mirage ASCII formats or any astropy table), all merged into one scene."""

    point: tuple[InputFile, ...] = ()
    """Point-source catalogs."""
    galaxy: tuple[InputFile, ...] = ()
    """Sersic-galaxy catalogs."""
    extended: tuple[InputFile, ...] = ()
    """Extended-stamp catalogs."""

    @field_validator("point", "galaxy", "extended", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | os.PathLike) else value


class Background(_Model):
    """Uniform sky + telescope background."""

    level: Literal["none", "low", "medium", "high"] | float = "medium"
    """``low``/``medium``/``high`` (zodiacal + thermal model per filter), ``none``, or MJy/sr."""
    rate: float | None = Field(default=None, ge=0.0)
    """e⁻/s/pixel; overrides ``level`` when given."""

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        words = ("none", "low", "medium", "high")
        if isinstance(value, str):
            word = value.strip().lower()
            if word in words:
                return word
            raise ValueError(
                f"{value!r} is not a background level{suggest(word, words)} "
                "(expected none, low, medium, high, or a number in MJy/sr)"
            )
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{value} MJy/sr is negative (expected >= 0)")
        return value


class CosmicRays(_Model):
    """Cosmic-ray environment (rates of Robberto 2009, JWST-STScI-001928)."""

    environment: Literal["SUNMIN", "SUNMAX", "FLARES", "NONE"] = "SUNMAX"
    """Solar-activity case; ``FLARE`` is read as ``FLARES``; ``NONE`` adds no cosmic rays."""
    scale: float = Field(default=1.0, ge=0.0)
    """Multiplier of the environment's rate."""

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        value = _upper(value)
        return "FLARES" if value == "FLARE" else "NONE" if value == "" else value


class Effects(_Model):
    """On/off switch of every signal and detector effect."""

    sources: bool = True
    background: bool = True
    poisson: bool = True
    dark_current: bool = True
    cosmic_rays: bool = True
    ipc: bool = True
    nonlinearity: bool = True
    saturation: bool = True
    flat: bool = True
    pixel_area: bool = True
    superbias: bool = True
    read_noise: bool = True
    correlated_noise: bool = True


class Noise(_Model):
    """Read-noise amplitudes, DN per frame; ``None`` takes the detector's nominal value."""

    pink_correlated: float | None = Field(default=None, ge=0.0)
    """1/f noise common to the four amplifiers."""
    pink_uncorrelated: float | None = Field(default=None, ge=0.0)
    """1/f noise independent per amplifier."""
    acn: float | None = Field(default=None, ge=0.0)
    """Alternating-column noise."""
    pedestal: float | None = Field(default=None, ge=0.0)
    """Per-amplifier offset drawn once per integration."""


class Dither(_Model):
    """Dither position of the exposure (header keywords only; the pointing is not moved)."""

    primary_dither_type: str | None = None
    total_primary_dither_positions: int = Field(default=1, ge=1)
    primary_dither_position: int = Field(default=1, ge=1)
    subpix_dither_type: str | None = None
    total_subpix_dither_positions: int = Field(default=1, ge=1)
    subpix_dither_position: int = Field(default=1, ge=1)
    xoffset: float = 0.0
    """Offset from the pattern origin along the aperture's x axis, arcsec."""
    yoffset: float = 0.0
    """Offset along y, arcsec."""


class Observation(_Model):
    """Identity of the exposure within its program (file name and header keywords)."""

    program: str = "01234"
    """Five-digit program ID (integers are zero-padded)."""
    observation: int = Field(default=1, ge=1, le=999)
    visit: int = Field(default=1, ge=1, le=999)
    visit_group: int = Field(default=1, ge=1, le=99)
    sequence: int = Field(default=1, ge=0, le=9)
    """Parallel sequence ID (one digit)."""
    activity: int = Field(default=1, ge=1, le=36**2 - 1)
    """Activity number; text is read as the base-36 ``ACT_ID`` of file names (``'01'``, ``'2o'``)."""
    exposure: int = Field(default=1, ge=1, le=99999)
    target_name: str = "SIMULATED"
    title: str = ""
    pi_name: str = ""
    dither: Dither = Field(default_factory=Dither)

    _ids = field_validator("observation", "visit", "visit_group", "sequence", "exposure", mode="before")(
        _id_number
    )

    @field_validator("program", mode="before")
    @classmethod
    def _program(cls, value: Any) -> Any:
        text = f"{value:05d}" if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(text, str) and text.strip().isdigit() and len(text.strip()) <= 5:
            return text.strip().zfill(5)
        raise ValueError(f"{value!r} is not a program ID (expected up to 5 digits, e.g. 01234)")

    @field_validator("activity", mode="before")
    @classmethod
    def _activity(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return int(value.strip(), 36)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an activity ID (base-36 text like '01' or '2o')"
                ) from None
        return value

    @property
    def act_id(self) -> str:
        """``ACT_ID``: the activity as two base-36 characters (``1`` -> ``'01'``, ``96`` -> ``'2o'``)."""
        return _BASE36[self.activity // 36] + _BASE36[self.activity % 36]


class Output(_Model):
    """Where and what to write."""

    directory: Directory = Field(default=Path(), validate_default=True)
    """Output directory; relative to the configuration file, default the current directory."""
    name: str | None = None
    """Uncal file name (``..._uncal.fits``); default from :class:`Observation` and the detector."""
    products: tuple[Literal["uncal", "linear", "seed"], ...] = ("uncal", "seed")
    """Products to write: raw ramp, linearized ramp, noiseless seed (rate + segmentation map)."""
    zarr: bool = False
    """Also write the ramp as a Zarr store."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (Path(value).name != value or not value.endswith("_uncal.fits")):
            raise ValueError(f"{value!r} must be a file name ending in '_uncal.fits' (no directory)")
        return value

    @field_validator("products")
    @classmethod
    def _products(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("no products requested (expected some of uncal, linear, seed)")
        return tuple(dict.fromkeys(value))


class SimConfig(_Model):
    """One exposure of one detector: everything the simulator needs, validated.

    Build it with :func:`load_config` or :func:`config_from_dict`; errors then come
    as one-line :class:`~webbflow.errors.InputError`.
    """

    instrument: Literal["NIRCAM", "NIRISS", "FGS"]
    """``NIRCAM``, ``NIRISS`` or ``FGS`` (any case)."""
    aperture: str
    """SIAF aperture name: ``NRCA1_FULL``, ``NRCB5_FULL``, ``NRCA1_SUB160``, ``NIS_CEN``, ``FGS1_FULL``..."""
    filter: str = ""
    """Filter-wheel element (upper case); empty for FGS. NIRISS F090W-F200W sit in the pupil wheel."""
    pupil: str = "CLEAR"
    """Pupil-wheel element (NIRISS: ``CLEARP`` with filter-wheel filters; empty for FGS)."""
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
    reffiles: dict[str, InputFile] = {}
    """Reference-file overrides by reftype (:data:`REFTYPES`); others come from the resolver."""
    segmap_threshold: float = Field(default=0.031, ge=0.0)
    """Lowest source rate, e⁻/s, for a pixel to enter the segmentation map."""
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Seed of every random stream of the exposure (fits a signed 64-bit integer)."""
    observation: Observation = Field(default_factory=Observation)
    output: Output = Field(default_factory=Output)
    notes: tuple[str, ...] = ()
    """What the loader replaced or ignored (printed once by the CLI)."""

    _optics = field_validator("instrument", "aperture", "filter", "pupil", mode="before")(_upper)

    @property
    def detector(self) -> str:
        """``DETECTOR`` keyword value (``NRCB5_FULL`` -> ``NRCBLONG``)."""
        return detector_for_aperture(self.aperture)

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
        filt, pupil = _upper(data.get("filter", "")), _upper(data.get("pupil", "CLEAR"))
        if not (isinstance(filt, str) and isinstance(pupil, str)):
            return data
        if instrument == "FGS":
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
        self._check_optics(det.channel)
        return self

    def _check_optics(self, channel: str) -> None:
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


class _Loader(yaml.SafeLoader):
    """SafeLoader without octal/base-60 surprises and with duplicate-key errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key == "<<" or not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_AS_TEXT = re.compile(r"^(?:[-+]?0[0-9_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$")
for _first in "+-0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, ("tag:yaml.org,2002:str", _AS_TEXT))


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level mapping of a YAML file.

    Raises
    ------
    InputError
        If the file is missing or unreadable, is not valid YAML (the message gives the
        line and column), or does not hold a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the configuration file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InputError(f"{path}: {where}YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: YAML syntax error: {exc}") from None
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise InputError(f"{path}: expected a mapping of keys (instrument:, aperture:, ...), found {found}")
    return data
