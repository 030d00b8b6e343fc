"""The sections of a :class:`~webbflow.sim.config.SimConfig`: readout, pointing, catalogs, background,
cosmic rays, effect switches, noise, observation identity and output.

Each is a frozen pydantic model that forbids unknown keys. Paths are validated against the
``base_dir`` of the validation context (the configuration file's directory): :data:`InputFile`
must exist, :data:`Directory` is only made absolute.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from webbflow.errors import suggest
from webbflow.io.yaml_reader import expand_path

_BASE36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


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


def upper(value: Any) -> Any:
    """Text stripped and upper-cased (``None`` -> ``""``); other values unchanged."""
    return "" if value is None else value.strip().upper() if isinstance(value, str) else value


def id_number(value: Any) -> Any:
    """IDs written as text with leading zeros (``'002'``) are integers."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


class FrozenModel(BaseModel):
    """Base of every section: unknown keys fail, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Readout(FrozenModel):
    """Readout pattern and ramp shape."""

    readpatt: str = "RAPID"
    """Readout pattern of the instrument (``webbflow.detectors.READ_PATTERNS``), upper case."""
    ngroups: int = Field(default=10, ge=1)
    """Groups per integration."""
    nints: int = Field(default=1, ge=1)
    """Integrations in the exposure."""

    _readpatt = field_validator("readpatt", mode="before")(upper)


class PointingError(FrozenModel):
    """A pointing error (as from the guide star): the scene is drawn off the commanded pointing.

    Sources land ``(dx, dy)`` arcsec away along the aperture's ideal X and Y axes (about
    ``dx / pixel_scale`` detector pixels) and rotated by ``droll`` deg (+X towards +Y) about the
    aperture's reference point, from where the header WCS (the commanded pointing) puts them.
    Zero (the default) changes nothing.
    """

    dx: float = Field(default=0.0, ge=-60.0, le=60.0, allow_inf_nan=False)
    """Shift along the ideal X axis, arcsec."""
    dy: float = Field(default=0.0, ge=-60.0, le=60.0, allow_inf_nan=False)
    """Shift along the ideal Y axis, arcsec."""
    droll: float = Field(default=0.0, ge=-1.0, le=1.0, allow_inf_nan=False)
    """Roll about the aperture's reference point, deg."""

    @property
    def is_zero(self) -> bool:
        """No error at all."""
        return self.dx == 0.0 and self.dy == 0.0 and self.droll == 0.0


class Pointing(FrozenModel):
    """Where the aperture's reference point looks, degrees."""

    ra: float = Field(default=53.1625, ge=0.0, le=360.0)
    """Right ascension, deg (or sexagesimal text ``"03:32:39.0"`` in hours)."""
    dec: float = Field(default=-27.7914, ge=-90.0, le=90.0)
    """Declination, deg (or sexagesimal text ``"-27:47:29"`` in degrees)."""
    v3pa: float = 0.0
    """Position angle of the telescope V3 axis, deg east of north."""
    error: PointingError = Field(default_factory=PointingError)
    """Where the telescope really looks relative to the above (headers keep the above)."""

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


class Catalogs(FrozenModel):
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


class Background(FrozenModel):
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


class CosmicRays(FrozenModel):
    """Cosmic-ray environment (rates of Robberto 2009, JWST-STScI-001928)."""

    environment: Literal["SUNMIN", "SUNMAX", "FLARES", "NONE"] = "SUNMAX"
    """Solar-activity case; ``FLARE`` is read as ``FLARES``; ``NONE`` adds no cosmic rays."""
    scale: float = Field(default=1.0, ge=0.0)
    """Multiplier of the environment's rate."""

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        value = upper(value)
        return "FLARES" if value == "FLARE" else "NONE" if value == "" else value


class Effects(FrozenModel):
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


class Noise(FrozenModel):
    """Read-noise amplitudes, DN per frame; ``None`` takes the detector's nominal value."""

    pink_correlated: float | None = Field(default=None, ge=0.0)
    """1/f noise common to the four amplifiers."""
    pink_uncorrelated: float | None = Field(default=None, ge=0.0)
    """1/f noise independent per amplifier."""
    acn: float | None = Field(default=None, ge=0.0)
    """Alternating-column noise."""
    pedestal: float | None = Field(default=None, ge=0.0)
    """Per-amplifier offset drawn once per integration."""


class Miri(FrozenModel):
    """MIRI detector-effect amplitudes (read by the MIRI ramp simulator; ignored for NIR)."""

    emi_amplitude: float = Field(default=3.0, ge=0.0, allow_inf_nan=False)
    """Amplitude of the injected EMI pattern, DN (each frequency of the EMICORR reference)."""
    flicker_rms: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    """1/f "flicker" noise rms per read, DN."""
    rscd_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    """RSCD deficit in the first groups of integrations after the first, fraction of the last signal."""
    shower_scale: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    """Multiplier of the rate of cosmic-ray showers."""


class Dither(FrozenModel):
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


class Observation(FrozenModel):
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
        id_number
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


class Output(FrozenModel):
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
