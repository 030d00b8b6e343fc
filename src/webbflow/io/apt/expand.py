"""Expand an :class:`AptProgram` into :class:`PlannedExposure` rows: one per exposure per detector.

Numbering follows jwst file names ``jw<PPPPP><OOO><VVV>_<GG><S><AA>_<EEEEE>_<detector>``:
the visit from the ``.pointing`` file; visit group 01 and activity 01 (the APT exports do not
carry the on-board activity numbers, so every exposure of a visit is put in one activity, as
Mirage does); sequence 1 for the prime and 2 for the coordinated parallel (also when only the
parallel is simulated, as in jwst's names and Mirage's); exposures numbered
1, 2, … per visit and sequence in pointing-file order. Exposures of an observation follow
each other in time from the observation's date: each lasts its readout time (reset + groups
of ``nframes + nskip`` frames, per integration) plus a fixed overhead between dithers, and a
longer one between visits (a slew).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from webbflow.detectors import READ_PATTERNS, frame_time, get_detector, miri_frame_time
from webbflow.errors import InputError, UsageError
from webbflow.io.apt.apertures import DetectorExposure, detectors, frame_size, sky
from webbflow.io.apt.model import (
    AptObservation,
    AptProgram,
    ExposureSpec,
    PlannedExposure,
    PointingRow,
    TemplateSpec,
)
from webbflow.io.apt.reader import prime_count, spec_index

#: Seconds between two exposures of a visit (dither move, filter change) and between visits (slew).
DITHER_OVERHEAD_S = 30.0
VISIT_OVERHEAD_S = 600.0
DEFAULT_DATE = "2026-01-01T00:00:00"

_T = TypeVar("_T", float, str)


def _per_observation(value: _T | Mapping[int, _T], number: int, default: _T) -> _T:
    if isinstance(value, Mapping):
        return value.get(number, default)
    return value


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return digits[n // 36] + digits[n % 36]


def jwst_filename(program: str, observation: int, visit: int, visit_group: int, sequence: int, activity: int,
                  exposure: int, detector: str) -> str:  # fmt: skip
    """The jwst file root (no suffix), e.g. ``jw42424001001_01101_00001_nrcb1``."""
    return (
        f"jw{program}{observation:03d}{visit:03d}_{visit_group:02d}{sequence}{_base36(activity)}"
        f"_{exposure:05d}_{detector.lower()}"
    )


def exposure_seconds(instrument: str, spec: ExposureSpec, det: DetectorExposure) -> float:
    """Readout time (s) of one exposure: per integration one reset frame, then the groups."""
    nframes, nskip = READ_PATTERNS[instrument][spec.readpatt]
    if instrument == "MIRI":  # SLOW sampling has its own frame time
        tframe = miri_frame_time(det.subarray, spec.readpatt)
    else:
        tframe, _ = frame_time(get_detector(det.detector), *frame_size(instrument, det.aperture))
    frames = 1 + spec.ngroups * nframes + (spec.ngroups - 1) * nskip
    return spec.nints * frames * tframe


def _start(dates: str | Mapping[int, str], number: int) -> datetime:
    value = _per_observation(dates, number, DEFAULT_DATE)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"dates[{number}]: {value!r} is not an ISO date (YYYY-MM-DD[THH:MM:SS])") from None


def expand(
    program: AptProgram,
    *,
    roll: float | Mapping[int, float] = 0.0,
    dates: str | Mapping[int, str] = DEFAULT_DATE,
) -> list[PlannedExposure]:
    """One :class:`PlannedExposure` per exposure per detector of every supported observation.

    Parameters
    ----------
    program
        From :func:`webbflow.io.apt.read_apt`.
    roll
        V3 position angle (deg) at the target: one value, or per observation number
        (observations not in the mapping get 0).
    dates
        ISO start of each observation: one value, or per observation number (others get
        ``2026-01-01T00:00:00``).

    Returns
    -------
    list of PlannedExposure
        In observation, pointing-row and detector order.
    """
    out: list[PlannedExposure] = []
    for obs in program.observations:
        out.extend(_expand_observation(program, obs, float(_per_observation(roll, obs.number, 0.0)), dates))
    return out


def _expand_observation(
    program: AptProgram, obs: AptObservation, v3pa: float, dates: str | Mapping[int, str]
) -> list[PlannedExposure]:
    out: list[PlannedExposure] = []
    counters: dict[tuple[int, int], int] = defaultdict(int)
    t = _start(dates, obs.number)
    slot_start, slot_seconds, visit = t, 0.0, obs.rows[0].visit
    n_prime = prime_count(obs.prime, obs.rows)
    # dithers per specification: the prime's rows when it is simulated, else the parallel's
    kind = "SCIENCE" if obs.prime is not None else "PARALLEL"
    positions = Counter((r.visit, r.tile, r.exp) for r in obs.rows if r.type == kind)
    for i, row in enumerate(obs.rows):
        is_prime = row.type == "SCIENCE"
        template = obs.prime if is_prime else obs.parallel
        assert template is not None
        spec = template.exposures[spec_index(template, row.exp, n_prime)]
        dets = detectors(template, spec, row.aperture)
        if not dets:
            raise InputError(
                f"{program.pointing}:{row.line}: aperture {row.aperture} names no FGS guider "
                f"for {template.template}"
            )
        if is_prime or obs.prime is None:  # a prime row opens a time slot; its parallel rows share it
            if i:
                gap = VISIT_OVERHEAD_S if row.visit != visit else DITHER_OVERHEAD_S
                slot_start += timedelta(seconds=slot_seconds + gap)
            slot_seconds, visit = exposure_seconds(template.instrument, spec, dets[0]), row.visit
        sequence = 1 if is_prime else 2
        counters[(row.visit, sequence)] += 1
        dither = _dither(obs.prime, row, positions[(row.visit, row.tile, row.exp)], n_prime)
        for det in dets:
            ra, dec = sky(template.instrument, det.aperture, row, obs.target_ra, obs.target_dec, v3pa)
            out.append(
                PlannedExposure(
                    filename=jwst_filename(
                        program.program,
                        obs.number,
                        row.visit,
                        1,
                        sequence,
                        1,
                        counters[(row.visit, sequence)],
                        det.detector,
                    ),
                    program=program.program,
                    observation=obs.number,
                    visit=row.visit,
                    visit_group=1,
                    sequence=sequence,
                    activity=1,
                    exposure=counters[(row.visit, sequence)],
                    template=template.template,
                    prime=is_prime,
                    instrument=template.instrument,
                    detector=det.detector,
                    aperture=det.aperture,
                    pointing_aperture=row.aperture,
                    subarray=det.subarray,
                    filter=det.filter,
                    pupil=det.pupil,
                    readpatt=spec.readpatt,
                    ngroups=spec.ngroups,
                    nints=spec.nints,
                    target_id=obs.target_id,
                    target_name=obs.target_name,
                    target_ra=obs.target_ra,
                    target_dec=obs.target_dec,
                    ra=ra,
                    dec=dec,
                    v3pa=v3pa,
                    v2=row.v2,
                    v3=row.v3,
                    idl_x=row.idl_x,
                    idl_y=row.idl_y,
                    **dither,
                    date_obs=slot_start.strftime("%Y-%m-%d"),
                    time_obs=slot_start.strftime("%H:%M:%S.") + f"{slot_start.microsecond // 1000:03d}",
                )
            )
    return out


def _dither(prime: TemplateSpec | None, row: PointingRow, positions: int, n_prime: int) -> dict[str, Any]:
    """Dither keywords of a row: the prime's pattern (a parallel dithers with its prime).

    ``Dith`` counts primary positions in the outer loop and subpixel positions in the inner
    one, as APT lists them: position ``d`` is primary ``ceil(d / nsub)``, subpixel
    ``(d - 1) % nsub + 1``. Without the prime's template (not simulated), the ``positions``
    rows of the row's specification are counted as primary positions of no named pattern.
    MIRI imaging has one pattern per filter: its rows are its positions.
    """
    if prime is None or prime.instrument == "MIRI":
        kind = prime.exposures[spec_index(prime, row.exp, n_prime)].dither_type if prime else "NONE"
        return {
            "primary_dither_type": kind or "NONE",
            "total_primary_dither_positions": positions,
            "primary_dither_position": row.dith,
            "subpix_dither_type": "NONE",
            "total_subpix_dither_positions": 1,
            "subpix_dither_position": 1,
        }
    nsub = prime.subpix_positions
    return {
        "primary_dither_type": prime.primary_dither_type,
        "total_primary_dither_positions": prime.primary_dithers,
        "primary_dither_position": math.ceil(row.dith / nsub),
        "subpix_dither_type": prime.subpix_dither_type,
        "total_subpix_dither_positions": nsub,
        "subpix_dither_position": (row.dith - 1) % nsub + 1,
    }


def mirage_names(exposures: list[PlannedExposure]) -> list[str]:
    """The names Mirage's yaml generator gives the same exposures (for oracle comparisons).

    Mirage differs from jwst in two ways: it numbers exposures per observation and sequence
    across visits (jwst restarts at 1 in every visit), and it names the NIRCam long-wavelength
    detectors ``nrca5``/``nrcb5`` and the guiders ``g1``/``g2``.
    """
    seen: dict[tuple[int, int], dict[tuple[int, int], int]] = defaultdict(dict)
    names = []
    for e in exposures:
        numbers = seen[(e.observation, e.sequence)]
        number = numbers.setdefault((e.visit, e.exposure), len(numbers) + 1)
        det = {"NRCALONG": "NRCA5", "NRCBLONG": "NRCB5", "GUIDER1": "G1", "GUIDER2": "G2"}.get(
            e.detector, e.detector
        )
        names.append(
            jwst_filename(
                e.program, e.observation, e.visit, e.visit_group, e.sequence, e.activity, number, det
            )
        )
    return names
