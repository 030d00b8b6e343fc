"""The records of an APT program: what the XML and ``.pointing`` exports say, and the plan rows.

An :class:`AptProgram` is the joined, validated content of one APT export pair; ``expand``
turns it into :class:`PlannedExposure` rows, one per exposure per detector. Every record is
a frozen dataclass, so programs and plans are hashable, comparable and safe to share.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unsupported:
    """An observation, or the parallel of one, whose template webbflow does not simulate."""

    observation: int
    template: str
    instrument: str
    reason: str


@dataclass(frozen=True)
class ExposureSpec:
    """One exposure specification of a template (a NIRCam ``FilterConfig``, a NIRISS/FGS ``Exposure``).

    ``filter``/``pupil`` are the jwst keyword values (NIRCam: the short-wavelength channel);
    ``lw_filter``/``lw_pupil`` are NIRCam's long-wavelength channel (``""`` otherwise).
    """

    readpatt: str
    ngroups: int
    nints: int
    filter: str
    pupil: str
    lw_filter: str = ""
    lw_pupil: str = ""
    subarray: str = ""  # NIRISS External Calibration sets it per exposure
    dither_type: str = ""  # MIRI imaging: each filter has its own dither pattern


@dataclass(frozen=True)
class TemplateSpec:
    """A supported imaging template as the XML describes it.

    ``module`` is NIRCam's ``A``, ``B`` or ``ALL`` (``""`` otherwise); ``detector`` is the FGS
    guider (``GUIDER1``/``GUIDER2``, ``""`` otherwise). Dither counts are 1 when absent.
    """

    template: str
    instrument: str
    module: str
    subarray: str
    detector: str
    primary_dither_type: str
    primary_dithers: int
    subpix_dither_type: str
    subpix_positions: int
    exposures: tuple[ExposureSpec, ...]


@dataclass(frozen=True)
class PointingRow:
    """One exposure row of the ``.pointing`` file (V2/V3/IdlX/IdlY in arcsec, RA/Dec in deg)."""

    line: int  # 1-based line number in the file, for error messages
    observation: int
    visit: int
    tile: int
    exp: int  # index (1-based) of the exposure specification in the template
    dith: int  # dither position (1-based) of that specification
    aperture: str
    target_id: int
    target_name: str
    ra: float
    dec: float
    v2: float
    v3: float
    idl_x: float
    idl_y: float
    level: str  # TARGET, DITHER, SUBDITHER, FILTER, TILE…
    type: str  # SCIENCE, PARALLEL, T_ACQ, DIRECT, OUTOFFLD…


@dataclass(frozen=True)
class AptObservation:
    """A simulated observation: its templates (prime, parallel) and its pointing rows.

    ``prime`` is ``None`` when only the coordinated parallel is simulated (e.g. NIRCam imaging
    in parallel to MIRI imaging): the prime is then listed in ``AptProgram.unsupported`` and
    ``rows`` holds only the ``PARALLEL`` rows.
    """

    number: int
    label: str
    target_id: int
    target_name: str
    target_ra: float  # deg
    target_dec: float  # deg
    prime: TemplateSpec | None
    parallel: TemplateSpec | None
    rows: tuple[PointingRow, ...]  # SCIENCE rows (prime set), PARALLEL rows (parallel set)


@dataclass(frozen=True)
class AptProgram:
    """One APT proposal: identification, supported observations and what was left out."""

    program: str  # 5 digits
    title: str
    pi_name: str
    observations: tuple[AptObservation, ...]
    unsupported: tuple[Unsupported, ...]
    xml: str = ""
    pointing: str = ""


@dataclass(frozen=True)
class PlannedExposure:
    """One exposure of one detector. Field names are the plan table's column names."""

    filename: str
    program: str
    observation: int
    visit: int
    visit_group: int
    sequence: int
    activity: int
    exposure: int
    template: str
    prime: bool
    instrument: str
    detector: str
    aperture: str
    pointing_aperture: str
    subarray: str
    filter: str
    pupil: str
    readpatt: str
    ngroups: int
    nints: int
    target_id: int
    target_name: str
    target_ra: float
    target_dec: float
    ra: float
    dec: float
    v3pa: float
    v2: float
    v3: float
    idl_x: float
    idl_y: float
    primary_dither_type: str
    total_primary_dither_positions: int
    primary_dither_position: int
    subpix_dither_type: str
    total_subpix_dither_positions: int
    subpix_dither_position: int
    date_obs: str
    time_obs: str
