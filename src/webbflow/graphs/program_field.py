"""Zero-configuration scenes for a program: one synthetic field per target, covering its footprint.

When ``webbflow program`` gets no ``--catalogs``, every target gets a star and galaxy field
(:func:`webbflow.sim.field.write_field`, Mirage-format catalogs, deterministic for a seed) wide
enough for every detector of every exposure on that target, with magnitudes in each band the
plan uses.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from webbflow.sim.field import write_field

if TYPE_CHECKING:
    from webbflow.graphs.plan import Plan

#: Sources per square arcminute (a moderately rich extragalactic field at 18-27 AB mag).
STARS_PER_ARCMIN2 = 120.0
GALAXIES_PER_ARCMIN2 = 40.0
MAX_SOURCES = 20000


def _detector_extent_arcsec(aperture: str) -> float:
    """The longest side of a SIAF aperture on the sky, arcsec."""
    from webbflow.sim._siaf_names import lookup

    sub, _ = lookup(aperture, None)
    return float(max(sub.XSciSize * sub.XSciScale, sub.YSciSize * sub.YSciScale))


def with_synthetic_fields(plan: Plan, directory: str | Path, *, seed: int = 0) -> Plan:
    """``plan`` with ``catalog_point``/``catalog_galaxy`` set to a synthetic field per target.

    Parameters
    ----------
    plan
        The observation plan (its ``ra``, ``dec``, ``aperture``, ``target_id`` and optics columns).
    directory
        Where the catalogs are written (``target<N>_ptsrc.cat``, ``target<N>_galaxies.cat``).
    seed
        Seed of the draws (target ``N`` uses ``seed + N``).
    """
    table = plan.table.copy()
    point = np.array([""] * len(table), dtype=object)
    galaxy = np.array([""] * len(table), dtype=object)
    for target in sorted(set(int(t) for t in table["target_id"])):
        rows = np.flatnonzero(np.asarray(table["target_id"]) == target)
        ra, dec = np.asarray(table["ra"][rows], float), np.asarray(table["dec"][rows], float)
        dec0 = float(np.mean(dec))
        ra0 = float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(ra))))) % 360.0)
        dx = (((ra - ra0 + 180.0) % 360.0) - 180.0) * np.cos(np.radians(dec0)) * 3600.0
        dy = (dec - dec0) * 3600.0
        margin = max(_detector_extent_arcsec(str(a)) for a in table["aperture"][rows])
        width = float(2.0 * max(np.abs(dx).max(), np.abs(dy).max()) + 1.5 * margin)
        area = (width / 60.0) ** 2
        bands = sorted(
            {(str(table["instrument"][i]), str(table["filter"][i]), str(table["pupil"][i])) for i in rows}
        )
        cats = write_field(
            directory,
            ra=ra0,
            dec=dec0,
            width_arcsec=width,
            n_stars=int(min(MAX_SOURCES, max(20, STARS_PER_ARCMIN2 * area))),
            n_galaxies=int(min(MAX_SOURCES // 4, max(5, GALAXIES_PER_ARCMIN2 * area))),
            bands=bands,
            seed=seed + target,
            name=f"target{target}",
        )
        point[rows] = str(cats.point)
        galaxy[rows] = str(cats.galaxy or "")
    table["catalog_point"] = point.astype(str)
    table["catalog_galaxy"] = galaxy.astype(str)
    return replace(plan, table=table)
