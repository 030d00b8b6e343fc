"""Synthetic star and galaxy fields written as Mirage-format catalogs (for demos, tests, benchmarks).

Stars follow a power-law magnitude distribution (``N(<m) ∝ 10^(0.3 m)``),
galaxies a steeper one with Sérsic shapes; all positions are uniform in a box
on the sky around a centre. The catalogs are ordinary Mirage ASCII files that
any user could have written, so everything downstream is exercised as with
real inputs. Deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from webbflow.io.atomic import commit, discard, temporary_name


@dataclass(frozen=True)
class FieldCatalogs:
    """The files written by :func:`write_field`."""

    point: Path
    galaxy: Path | None


def _column(instrument: str, filter: str, pupil: str) -> str:
    inst = instrument.lower()
    if inst == "nircam":
        return f"nircam_{filter.lower()}_{(pupil or 'clear').lower()}_magnitude"
    if inst == "niriss":
        band = pupil if filter.upper() == "CLEAR" else filter
        return f"niriss_{band.lower()}_magnitude"
    if inst == "miri":
        return f"miri_{filter.lower()}_magnitude"
    return "fgs_magnitude"


def _box(
    rng: np.random.Generator, n: int, ra: float, dec: float, half_width: float
) -> tuple[np.ndarray, ...]:
    dy = rng.uniform(-half_width, half_width, n) / 3600.0
    dx = rng.uniform(-half_width, half_width, n) / 3600.0
    return ra + dx / np.cos(np.radians(dec)), dec + dy


def _magnitudes(rng: np.random.Generator, n: int, bright: float, faint: float, slope: float) -> np.ndarray:
    """``n`` magnitudes in [bright, faint] with ``N(<m) ∝ 10^(slope m)``."""
    u = rng.uniform(0.0, 1.0, n)
    lo, hi = 10 ** (slope * bright), 10 ** (slope * faint)
    return np.log10(lo + u * (hi - lo)) / slope


def write_field(
    directory: str | Path,
    *,
    ra: float,
    dec: float,
    width_arcsec: float = 120.0,
    n_stars: int = 200,
    n_galaxies: int = 50,
    bands: Sequence[tuple[str, str, str]] = (("NIRCAM", "F200W", "CLEAR"),),
    bright: float = 18.0,
    faint: float = 27.0,
    seed: int = 0,
    name: str = "field",
) -> FieldCatalogs:
    """Write ``<name>_ptsrc.cat`` and ``<name>_galaxies.cat`` (Mirage formats, RA/Dec, AB mag).

    Parameters
    ----------
    directory
        Where the catalogs go (created).
    ra, dec
        Field centre, deg.
    width_arcsec
        Edge of the square field, arcsec.
    n_stars, n_galaxies
        Numbers of sources (``n_galaxies = 0``: no galaxy catalog).
    bands
        ``(instrument, filter, pupil)`` of the magnitude columns to write; the
        same magnitude is used in every band (flat spectrum in AB).
    bright, faint
        Magnitude range, AB.
    seed
        Seed of the draw.
    name
        Prefix of the file names.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence((seed, 7001)))
    columns = list(dict.fromkeys(_column(*b) for b in bands))
    s_ra, s_dec = _box(rng, n_stars, ra, dec, width_arcsec / 2)
    stars = Table({"index": np.arange(1, n_stars + 1), "x_or_RA": s_ra, "y_or_Dec": s_dec})
    mags = _magnitudes(rng, n_stars, bright, faint, 0.3)
    for col in columns:
        stars[col] = np.round(mags, 4)
    point = out / f"{name}_ptsrc.cat"
    _write(stars, point, ["abmag"])
    galaxy = None
    if n_galaxies:
        g_ra, g_dec = _box(rng, n_galaxies, ra, dec, width_arcsec / 2)
        gal = Table(
            {
                "index": np.arange(100001, 100001 + n_galaxies),
                "x_or_RA": g_ra,
                "y_or_Dec": g_dec,
                "radius": np.round(rng.uniform(0.05, 0.4, n_galaxies), 4),
                "ellipticity": np.round(rng.uniform(0.0, 0.6, n_galaxies), 3),
                "pos_angle": np.round(rng.uniform(0.0, 180.0, n_galaxies), 2),
                "sersic_index": np.round(rng.uniform(0.6, 4.0, n_galaxies), 2),
            }
        )
        gmags = _magnitudes(rng, n_galaxies, bright + 2.0, faint, 0.4)
        for col in columns:
            gal[col] = np.round(gmags, 4)
        galaxy = out / f"{name}_galaxies.cat"
        _write(gal, galaxy, ["abmag"])
    return FieldCatalogs(point, galaxy)


def _write(table: Table, path: Path, flags: list[str]) -> None:
    table.meta["comments"] = [*flags, "written by webbflow.sim.field (synthetic field)"]
    tmp = temporary_name(path)
    try:
        table.write(tmp, format="ascii.basic", delimiter=" ", comment="# ")
        commit(tmp, path)
    finally:
        discard(tmp)
