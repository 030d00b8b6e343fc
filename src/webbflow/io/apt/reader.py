"""Join an APT ``.xml`` and ``.pointing`` export into an :class:`AptProgram`.

The pointing file is the source of truth for which exposures exist and in which order
(``SCIENCE`` rows are the prime's, ``PARALLEL`` rows the coordinated parallel's); the XML says
what each row's exposure specification (``Exp``) is: filters, readout, groups, integrations.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from webbflow.detectors import READ_PATTERNS
from webbflow.errors import InputError
from webbflow.io.apt.apertures import detectors
from webbflow.io.apt.model import AptObservation, AptProgram, PointingRow, TemplateSpec, Unsupported
from webbflow.io.apt.pointing import read_pointing
from webbflow.io.apt.xml import XmlObservation, instrument_of, read_xml

_ROW_KINDS = {"T_ACQ": "target acquisition", "DIRECT": "WFSS direct image", "OUTOFFLD": "WFSS out-of-field"}


def read_apt(xml: str | Path, pointing: str | Path) -> AptProgram:
    """Read an APT export pair into an :class:`AptProgram`.

    Parameters
    ----------
    xml, pointing
        The APT ``.xml`` and ``.pointing`` exports of one proposal.

    Returns
    -------
    AptProgram
        Supported observations with their pointing rows, and every observation, parallel or
        row kind that is not simulated in ``unsupported`` (never silently dropped).

    Raises
    ------
    InputError
        A missing or malformed file, or pointing rows that do not match the XML (one line
        naming the file and line or element).
    """
    xp = read_xml(xml)
    header_program, rows = read_pointing(pointing)
    if header_program is not None and xp.program != "00042" and int(header_program) != int(xp.program):
        raise InputError(
            f"{pointing}: pointing file of proposal {header_program}, but {xml} is proposal {xp.program}"
        )
    by_obs: dict[int, list[PointingRow]] = defaultdict(list)
    for row in rows:
        by_obs[row.observation].append(row)
    known = {o.number for o in xp.observations}
    for number, obs_rows in by_obs.items():
        if number not in known:
            raise InputError(f"{pointing}:{obs_rows[0].line}: observation {number} is not in {xml}")
    observations: list[AptObservation] = []
    unsupported = list(xp.unsupported)
    for obs in xp.observations:
        if obs.prime is not None and (problem := _unreadable(obs.prime)):
            unsupported.append(Unsupported(obs.number, obs.prime_name, obs.instrument, problem))
            obs = replace(obs, prime=None)
        if obs.parallel is not None and (problem := _unreadable(obs.parallel)):
            unsupported.append(Unsupported(obs.number, obs.parallel_name, obs.parallel.instrument, problem))
            obs = replace(obs, parallel=None)
        if obs.prime is None and obs.parallel is None:
            continue
        obs_rows = by_obs.get(obs.number, [])
        if not obs_rows:
            raise InputError(f"{pointing}: no rows for observation {obs.number} ({obs.prime_name}) of {xml}")
        kept = _check_rows(obs, obs_rows, pointing, xml)
        # an unsimulated prime is already listed whole; its row kinds need no extra records
        kinds = Counter(r.type for r in obs_rows if r.type in _ROW_KINDS and obs.prime is not None)
        for kind, n in kinds.items():
            name, inst = obs.prime_name, obs.instrument
            if kind != "T_ACQ" and "Wfss" in obs.parallel_name:  # the parallel's direct images
                name, inst = obs.parallel_name, instrument_of(obs.parallel_name)
            why = f"{n} {_ROW_KINDS[kind]} exposure(s) not simulated"
            unsupported.append(Unsupported(obs.number, name, inst, why))
        first = kept[0] if kept else obs_rows[0]
        radec = xp.targets.get(obs.target_id) or (math.nan, math.nan)
        if not all(math.isfinite(v) for v in radec):
            radec = (first.ra, first.dec)
        observations.append(
            AptObservation(
                number=obs.number,
                label=obs.label,
                target_id=obs.target_id,
                target_name=obs.target_name,
                target_ra=radec[0],
                target_dec=radec[1],
                prime=obs.prime,
                parallel=obs.parallel,
                rows=tuple(kept),
            )
        )
    return AptProgram(
        program=xp.program
        if xp.program != "00042" or header_program is None
        else f"{int(header_program):05d}",
        title=xp.title,
        pi_name=xp.pi_name,
        observations=tuple(observations),
        unsupported=tuple(unsupported),
        xml=str(xml),
        pointing=str(pointing),
    )


def _unreadable(template: TemplateSpec) -> str:
    """Why ``template``'s exposures cannot be simulated ("" if they can)."""
    patterns = READ_PATTERNS[template.instrument]
    for spec in template.exposures:
        if spec.readpatt not in patterns:
            return (
                f"readout pattern {spec.readpatt!r} is not one of {template.instrument}'s {sorted(patterns)}"
            )
        guider_from_rows = template.instrument == "FGS" and not template.detector
        if not guider_from_rows and not detectors(template, spec):
            sub = spec.subarray or template.subarray
            return f"subarray {sub} has no {template.instrument} imaging aperture in the SIAF"
    return ""


def spec_index(template: TemplateSpec, exp: int, prime_count: int) -> int:
    """0-based index of the exposure specification a row with ``Exp = exp`` uses.

    A parallel with a single specification repeats it for every prime specification.
    """
    if len(template.exposures) == 1 and prime_count > 1:
        return 0
    return exp - 1


def _check_rows(
    obs: XmlObservation, rows: list[PointingRow], pointing: str | Path, xml: str | Path
) -> list[PointingRow]:
    """The SCIENCE (prime simulated) and PARALLEL (parallel simulated) rows of ``obs``, checked."""
    n_prime = prime_count(obs.prime, rows)
    kept = []
    for row in rows:
        if row.type == "SCIENCE" and obs.prime is not None:
            template = obs.prime
        elif row.type == "PARALLEL" and obs.parallel is not None:
            template = obs.parallel
        else:
            continue
        index = spec_index(template, row.exp, n_prime)
        if not 0 <= index < len(template.exposures) or row.dith < 1:
            raise InputError(
                f"{pointing}:{row.line}: Exp {row.exp} Dith {row.dith}, but observation {obs.number} "
                f"({template.template}) in {Path(xml).name} has {len(template.exposures)} "
                "exposure specification(s)"
            )
        kept.append(row)
    kind = "SCIENCE" if obs.prime is not None else "PARALLEL"
    if not any(r.type == kind for r in kept):
        name = obs.prime_name if obs.prime is not None else obs.parallel_name
        raise InputError(f"{pointing}: no {kind} rows for observation {obs.number} ({name}) of {xml}")
    return kept


def prime_count(prime: TemplateSpec | None, rows: Sequence[PointingRow]) -> int:
    """How many exposure specifications the prime has.

    Without the prime's template, the rows tell: a parallel row carries its prime's ``Exp``.
    """
    if prime is not None:
        return len(prime.exposures)
    return max((r.exp for r in rows), default=1)
