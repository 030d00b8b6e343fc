"""Simulated sets of exposures of one field with known truth: dithers and mosaics (Image3 inputs).

:func:`simulate_set` writes one synthetic field (:func:`webbflow.sim.field.write_field`) that
covers every pointing, simulates ``n`` exposures of it on one aperture in one dask graph, and
calibrates them to ``rate`` (Detector1) in a second. Each exposure may carry a pointing error
(``pointing.error`` of :class:`~webbflow.sim.config.SimConfig`): the sources are drawn where the
telescope really looked, the headers keep the commanded pointing, as for a guide-star error. The
returned :class:`SimulatedSet` holds the files, the truth catalog, the commanded pointings and the
injected errors (arcsec and detector pixels), and is also written as ``set.json``.

Layouts:

* ``"dither"``: small offsets (``dither`` arcsec, a 4-point parallelogram, repeated with sub-pixel
  steps) around one field: depth grows with ``n``, area stays;
* ``"mosaic"``: a grid of ``ceil(sqrt(n))`` columns of pointings overlapping by ``overlap``
  (fraction of the aperture): area grows with ``n``, depth stays ~1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from astropy.table import Table, vstack

from webbflow.detectors import get_detector
from webbflow.errors import UsageError
from webbflow.sim.config import config_from_dict, detector_for_aperture
from webbflow.sim.field import FieldCatalogs, write_field
from webbflow.sim.geometry import Geometry, Pointing

#: Default field centre (GOODS-S), deg.
RA: Final = 53.1625
DEC: Final = -27.7914
#: The dither pattern, in units of ``dither`` arcsec along ideal X, Y (a parallelogram).
_PATTERN: Final = ((0.0, 0.0), (1.0, 0.35), (0.35, 1.0), (1.35, 1.35))
#: Sub-pixel step between repeats of the pattern, pixels.
_SUBSTEP: Final = (0.37, 0.61)

Layout = Literal["dither", "mosaic"]


@dataclass(frozen=True)
class SimulatedExposure:
    """One exposure of a :class:`SimulatedSet`.

    Attributes
    ----------
    uncal, rate
        Raw and calibrated files (``rate`` is ``None`` when not calibrated).
    ra, dec, v3pa
        Commanded pointing of the aperture's reference point (deg), as in the headers.
    error
        Injected pointing error ``(dx, dy, droll)``: arcsec along ideal X, Y; deg.
    error_pixels
        The error's shift of a source at the reference point, full-frame detector pixels ``(x, y)``
        (where the sources are minus where the header WCS puts them).
    """

    uncal: Path
    rate: Path | None
    ra: float
    dec: float
    v3pa: float
    error: tuple[float, float, float]
    error_pixels: tuple[float, float]


@dataclass(frozen=True)
class SimulatedSet:
    """What :func:`simulate_set` wrote, with the truth.

    Attributes
    ----------
    directory
        Where the exposures, ``catalogs/`` and ``set.json`` are.
    parameters
        The arguments of :func:`simulate_set` that define the set (JSON-able).
    exposures
        Per exposure: files, commanded pointing, injected error.
    catalogs
        The Mirage catalog files of the field.
    truth
        Every source: ``id``, ``kind`` (``star``/``galaxy``), ``ra``, ``dec`` (deg), ``abmag``,
        and for galaxies ``radius`` (arcsec), ``ellipticity``, ``pos_angle`` (deg), ``sersic_index``.
    """

    directory: Path
    parameters: dict[str, Any]
    exposures: tuple[SimulatedExposure, ...]
    catalogs: FieldCatalogs
    truth: Table

    @property
    def uncal(self) -> list[Path]:
        """The raw files, in exposure order."""
        return [e.uncal for e in self.exposures]

    @property
    def rate(self) -> list[Path]:
        """The ``rate`` files, in exposure order (empty when not calibrated)."""
        return [e.rate for e in self.exposures if e.rate is not None]


def simulate_set(
    out_dir: str | Path,
    n: int,
    *,
    layout: Layout = "dither",
    aperture: str = "NRCA1_SUB640",
    filter: str = "F200W",
    readpatt: str = "RAPID",
    ngroups: int = 5,
    ra: float = RA,
    dec: float = DEC,
    v3pa: float = 0.0,
    stars: float = 40.0,
    galaxies: float = 10.0,
    bright: float = 19.0,
    faint: float = 26.0,
    dither: float = 2.0,
    overlap: float = 0.1,
    pointing_error_rms: float = 0.1,
    roll_error_rms: float = 0.0,
    errors: Sequence[tuple[float, float, float]] | None = None,
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    calibrate: bool = True,
    reuse: bool = False,
    scheduler: str | None = None,
) -> SimulatedSet:
    """Simulate ``n`` exposures of one synthetic field (and calibrate them to ``rate``).

    Parameters
    ----------
    out_dir
        Output directory (created): ``*_uncal.fits``, ``*_rate.fits``, ``*_rateints.fits``,
        ``catalogs/``, ``set.json``.
    n
        Number of exposures (1-9999); exposure numbers 1..n of observation 1, visit 1.
    layout
        ``"dither"`` or ``"mosaic"`` (module docstring).
    aperture, filter, readpatt, ngroups
        SIAF aperture (one detector), filter, readout pattern and groups (one integration).
    ra, dec, v3pa
        Centre of the set (deg) and ``PA_V3`` of every exposure (deg).
    stars, galaxies
        Mean numbers of sources per aperture footprint; the field's totals scale with its area.
    bright, faint
        Magnitude range, AB.
    dither
        Size of the dither pattern, arcsec (``"dither"`` layout).
    overlap
        Overlap of neighbouring tiles, fraction of the aperture's edge (``"mosaic"`` layout).
    pointing_error_rms, roll_error_rms
        Gaussian pointing errors drawn per exposure: arcsec per ideal axis, and deg of roll.
    errors
        Explicit ``(dx, dy, droll)`` per exposure (arcsec, arcsec, deg), instead of the draw.
    config
        Further configuration keys merged into every exposure's (e.g. ``{"effects": {...}}``).
    seed
        Seed of the field, the errors and the simulation noise.
    calibrate
        Also run Detector1 (embedded default references) to ``rate``.
    reuse
        Keep existing products when ``set.json`` records the same parameters (a cache).
    scheduler
        Dask scheduler (``webbflow.engine.execute.scheduler``).

    Returns
    -------
    SimulatedSet

    Raises
    ------
    UsageError
        Bad ``n``, ``layout``, ``overlap``, or ``errors`` of the wrong length.
    """
    from webbflow.graphs.runner import RunOptions, run_detector1, run_simulate

    if not 1 <= n <= 9999:
        raise UsageError(f"n = {n}: expected 1 to 9999 exposures")
    if layout not in ("dither", "mosaic"):
        raise UsageError(f"layout {layout!r}: expected 'dither' or 'mosaic'")
    if not 0.0 <= overlap < 1.0:
        raise UsageError(f"overlap {overlap}: expected a fraction in [0, 1)")
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "n": n, "layout": layout, "aperture": aperture.upper(), "filter": filter.upper(),
        "readpatt": readpatt.upper(), "ngroups": ngroups, "ra": ra, "dec": dec, "v3pa": v3pa,
        "stars": stars, "galaxies": galaxies, "bright": bright, "faint": faint, "dither": dither,
        "overlap": overlap, "pointing_error_rms": pointing_error_rms, "roll_error_rms": roll_error_rms,
        "errors": [list(map(float, e)) for e in errors] if errors is not None else None,
        "config": dict(config or {}), "seed": seed, "calibrate": calibrate,
    }  # fmt: skip
    params = json.loads(json.dumps(params, default=str))  # as set.json will hold them
    base = Geometry.from_aperture(aperture, Pointing(ra, dec, v3pa))
    offsets = _offsets(base, n, layout, dither, overlap)
    pointings = _pointings(base, offsets)
    errs = _errors(n, pointing_error_rms, roll_error_rms, errors, seed)

    xsize, ysize = base.window[2:]
    scale = float(np.mean(base.pixel_scale()))
    span = np.ptp(offsets, axis=0) + np.hypot(xsize, ysize)  # pixels, with a margin of a diagonal
    width = float(np.max(span)) * scale
    ratio = width**2 / (xsize * ysize * scale**2)
    detector = detector_for_aperture(base.aperture)
    instrument = get_detector(detector).instrument
    catalogs = write_field(
        out / "catalogs", ra=ra, dec=dec, width_arcsec=width, n_stars=round(stars * ratio),
        n_galaxies=round(galaxies * ratio), bands=((instrument, filter.upper(), "CLEAR"),),
        bright=bright, faint=faint, seed=seed, name="field",
    )  # fmt: skip
    configs = []
    for k, ((p_ra, p_dec), err) in enumerate(zip(pointings, errs, strict=True)):
        data: dict[str, Any] = {
            "instrument": instrument, "aperture": base.aperture, "filter": filter,
            "readout": {"readpatt": readpatt, "ngroups": ngroups, "nints": 1},
            "pointing": {"ra": p_ra, "dec": p_dec, "v3pa": v3pa},
            "catalogs": {"point": [catalogs.point], "galaxy": [catalogs.galaxy] if catalogs.galaxy else []},
            "seed": seed,
            "observation": {"exposure": k + 1, "dither": _dither_keys(layout, k, n, offsets[k], scale)},
            "output": {"directory": out, "products": ["uncal"]},
        }  # fmt: skip
        if any(err):
            data["pointing"]["error"] = dict(zip(("dx", "dy", "droll"), err, strict=True))
        configs.append(config_from_dict(_merged(data, config or {}), f"exposure {k + 1}"))

    uncal = [out / c.uncal_name for c in configs]
    rate = [p.with_name(p.name.replace("_uncal.fits", "_rate.fits")) for p in uncal]
    manifest = out / "set.json"
    cached = reuse and manifest.is_file() and json.loads(manifest.read_text()).get("parameters") == params
    options = RunOptions(output_dir=out, overwrite=True, progress=False, scheduler=scheduler)
    if not (cached and all(p.is_file() for p in uncal)):
        run_simulate(configs, options)
    if calibrate and not (cached and all(p.is_file() for p in rate)):
        run_detector1(uncal, {}, options)

    exposures = []
    for k, ((p_ra, p_dec), err) in enumerate(zip(pointings, errs, strict=True)):
        geo = Geometry.from_aperture(base.aperture, Pointing(p_ra, p_dec, v3pa))
        exposures.append(
            SimulatedExposure(
                uncal[k], rate[k] if calibrate else None, p_ra, p_dec, v3pa, err, _pixel_shift(geo, err)
            )
        )
    result = SimulatedSet(out, params, tuple(exposures), catalogs, _truth(catalogs))
    manifest.write_text(json.dumps(_manifest(result), indent=1, default=str))
    return result


def _offsets(base: Geometry, n: int, layout: Layout, dither: float, overlap: float) -> np.ndarray:
    """Pixel offsets ``(n, 2)`` (x, y) of the pointings from the set's centre."""
    if layout == "dither":
        sx, sy = base.pixel_scale()
        k = np.arange(n)
        pattern = np.array(_PATTERN)[k % len(_PATTERN)] * dither / np.array([sx, sy])
        offsets = pattern + (k // len(_PATTERN))[:, None] * np.array(_SUBSTEP)
    else:
        ncol = math.ceil(math.sqrt(n))
        step = (1.0 - overlap) * np.array(base.window[2:], float)
        k = np.arange(n)
        offsets = np.stack([k % ncol, k // ncol], axis=1) * step
    return offsets - (offsets.min(axis=0) + offsets.max(axis=0)) / 2


def _pointings(base: Geometry, offsets: np.ndarray) -> list[tuple[float, float]]:
    """Sky positions of the reference point moved by ``offsets`` pixels (TAN about the centre).

    The local pixel-to-sky Jacobian at the reference point is carried onto the tangent plane, so
    the grid stays regular on the sky far outside the detector.
    """
    x0, y0 = base.reference_pixel
    ra, dec = base.pixel_to_sky(np.array([x0, x0 + 1.0, x0]), np.array([y0, y0, y0 + 1.0]))
    xi, eta = _tan(ra, dec, float(ra[0]), float(dec[0]))
    jac = np.array([[xi[1] - xi[0], xi[2] - xi[0]], [eta[1] - eta[0], eta[2] - eta[0]]])
    txi, teta = jac @ offsets.T
    p_ra, p_dec = _untan(txi, teta, float(ra[0]), float(dec[0]))
    return [(float(a) % 360.0, float(d)) for a, d in zip(p_ra, p_dec, strict=True)]


def _tan(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection about (ra0, dec0): standard coordinates, rad."""
    a, d, a0, d0 = np.radians(ra), np.radians(dec), math.radians(ra0), math.radians(dec0)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return xi, eta


def _untan(xi: np.ndarray, eta: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`_tan`, deg."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    den = math.cos(d0) - eta * math.sin(d0)
    ra = a0 + np.arctan2(xi, den)
    dec = np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, den))
    return np.degrees(ra), np.degrees(dec)


def _errors(
    n: int, rms: float, roll_rms: float, explicit: Sequence[tuple[float, float, float]] | None, seed: int
) -> list[tuple[float, float, float]]:
    if explicit is not None:
        if len(explicit) != n:
            raise UsageError(f"errors: {len(explicit)} (dx, dy, droll) given for {n} exposures")
        return [(float(e[0]), float(e[1]), float(e[2])) for e in explicit]
    rng = np.random.default_rng(np.random.SeedSequence((seed, 5003)))
    draw = rng.normal(0.0, 1.0, (n, 3)) * np.array([rms, rms, roll_rms]) + 0.0  # no -0.0
    return [(round(float(a), 6), round(float(b), 6), round(float(c), 8)) for a, b, c in draw]


def _pixel_shift(geo: Geometry, err: tuple[float, float, float]) -> tuple[float, float]:
    """Detector shift of a source at the reference point: true pixel minus header pixel."""
    if not any(err):
        return (0.0, 0.0)
    x0, y0 = geo.reference_pixel
    x, y = geo.with_pointing_error(*err).sky_to_pixel(*geo.pixel_to_sky(x0, y0))
    return (float(x) - x0, float(y) - y0)


def _dither_keys(layout: Layout, k: int, n: int, offset: np.ndarray, scale: float) -> dict[str, Any]:
    return {
        "primary_dither_type": "NONE" if layout == "mosaic" else "SIMULATED",
        "total_primary_dither_positions": n,
        "primary_dither_position": k + 1,
        "xoffset": round(float(offset[0]) * scale, 4),
        "yoffset": round(float(offset[1]) * scale, 4),
    }


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _truth(catalogs: FieldCatalogs) -> Table:
    """The field's sources as one table (stars, then galaxies)."""
    tables = []
    for kind, path in (("star", catalogs.point), ("galaxy", catalogs.galaxy)):
        if path is None:
            continue
        cat = Table.read(path, format="ascii.basic")
        mag = next(c for c in cat.colnames if c.endswith("_magnitude"))
        cat.rename_columns(["index", "x_or_RA", "y_or_Dec", mag], ["id", "ra", "dec", "abmag"])
        cat.add_column(kind, name="kind", index=1)
        tables.append(cat)
    return vstack(tables, join_type="outer") if len(tables) > 1 else tables[0]


def _manifest(result: SimulatedSet) -> dict[str, Any]:
    return {
        "parameters": result.parameters,
        "catalogs": {"point": result.catalogs.point, "galaxy": result.catalogs.galaxy},
        "exposures": [asdict(e) for e in result.exposures],
    }
