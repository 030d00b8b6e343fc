"""An observation plan: one row per exposure per detector of an APT program, ready to simulate.

:func:`make_plan` reads an APT export (:mod:`webbflow.io.apt`), expands it into exposures and
adds what Mirage's proposal-level inputs add: catalogs per target/instrument, a background per
observation, the roll and dates, and (for tests and demos) a reduced subarray size and fewer
groups or integrations. :class:`Plan` is written as an ECSV table (readable by any astropy), read
back by :func:`read_plan`, and each row becomes a :class:`~webbflow.sim.config.SimConfig` with
:func:`sim_config`.

Columns: those of :class:`webbflow.io.apt.PlannedExposure` (:data:`COLUMNS`), then
``catalog_point``, ``catalog_galaxy``, ``catalog_extended`` (absolute paths, ``""`` for none) and
``background`` (``none``/``low``/``medium``/``high`` or a number in MJy/sr, as text).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from astropy.table import MaskedColumn, Table

from webbflow.errors import InputError, UsageError
from webbflow.graphs._plan_options import (
    KINDS,
    aperture_radec,
    background_lookup,
    catalog_lookup,
    reduced_aperture,
)
from webbflow.io import atomic
from webbflow.sim.config import SimConfig, config_from_dict

if TYPE_CHECKING:
    from webbflow.io.apt import Unsupported

#: The plan's exposure columns (:class:`webbflow.io.apt.PlannedExposure` fields) and their types.
COLUMNS: Final[Mapping[str, type]] = {
    **dict.fromkeys(("filename", "program"), str),
    **dict.fromkeys(("observation", "visit", "visit_group", "sequence", "activity", "exposure"), int),
    "template": str,
    "prime": bool,
    **dict.fromkeys(("instrument", "detector", "aperture", "pointing_aperture", "subarray"), str),
    **dict.fromkeys(("filter", "pupil", "readpatt"), str),
    **dict.fromkeys(("ngroups", "nints", "target_id"), int),
    "target_name": str,
    **dict.fromkeys(("target_ra", "target_dec", "ra", "dec", "v3pa", "v2", "v3", "idl_x", "idl_y"), float),
    "primary_dither_type": str,
    **dict.fromkeys(("total_primary_dither_positions", "primary_dither_position"), int),
    "subpix_dither_type": str,
    **dict.fromkeys(("total_subpix_dither_positions", "subpix_dither_position"), int),
    **dict.fromkeys(("date_obs", "time_obs"), str),
}
#: Columns the plan adds to the exposures'.
EXTRA_COLUMNS: Final[Mapping[str, type]] = {
    **{f"catalog_{kind}": str for kind in KINDS},
    "background": str,
}
_META_KEY: Final = "webbflow_plan"


@dataclass(frozen=True)
class Plan:
    """The exposures of a program, one table row per exposure per detector.

    Attributes
    ----------
    table : astropy.table.Table
        :data:`COLUMNS` + :data:`EXTRA_COLUMNS` (more columns are kept as they are).
    unsupported : tuple of webbflow.io.apt.Unsupported
        Observations (or parallels) of the program that are not simulated, with the reason.
    source : tuple of str
        The APT ``.xml`` and ``.pointing`` files.
    """

    table: Table
    unsupported: tuple[Unsupported, ...] = ()
    source: tuple[str, str] = ("", "")
    extra_meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.table)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each row as a dict of plain Python values (str, int, float, bool)."""
        names = self.table.colnames
        for row in self.table:
            yield {name: _plain(row[name], COLUMNS.get(name) or EXTRA_COLUMNS.get(name)) for name in names}

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write the plan as ECSV, atomically; ``unsupported`` and ``source`` go in its metadata.

        Raises
        ------
        OutputError
            ``path`` exists and not ``overwrite``, or its folder is not writable.
        """
        out = Path(path)
        table = self.table.copy(copy_data=False)
        table.meta[_META_KEY] = {
            "source": list(self.source),
            "unsupported": [dataclasses.asdict(u) for u in self.unsupported],
            **self.extra_meta,
        }
        atomic.check_writable(out, overwrite)
        tmp = atomic.temporary_name(out)
        try:
            table.write(tmp, format="ascii.ecsv")
            atomic.commit(tmp, out)
        finally:
            atomic.discard(tmp)
        return out


def _plain(value: Any, kind: type | None) -> Any:
    if np.ma.is_masked(value):
        return "" if kind in (str, None) else None
    value = value.item() if isinstance(value, np.generic) else value
    return kind(value) if kind is not None else value


def select_detectors(plan: Plan, detectors: Sequence[str]) -> Plan:
    """``plan`` with only the rows of ``detectors`` (jwst DETECTOR names, any case).

    Raises
    ------
    UsageError
        A name that is no detector of the plan (with the ones it has).
    """
    wanted = {d.strip().upper() for d in detectors}
    have = sorted({str(d) for d in plan.table["detector"]})
    unknown = sorted(wanted - set(have))
    if unknown:
        raise UsageError(f"--detectors {','.join(unknown)}: not in the plan (it has {', '.join(have)})")
    keep = np.isin(np.asarray(plan.table["detector"], dtype=str), sorted(wanted))
    return dataclasses.replace(plan, table=plan.table[keep])


def plan_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """The plan table of ``rows`` (dicts with at least :data:`COLUMNS` + :data:`EXTRA_COLUMNS`)."""
    names = list(rows[0]) if rows else [*COLUMNS, *EXTRA_COLUMNS]
    types = {**COLUMNS, **EXTRA_COLUMNS}
    missing = [n for n in types if n not in names]
    if missing:
        raise InputError(f"plan rows: missing columns {', '.join(missing)}")
    dtypes = {str: str, int: np.int64, float: np.float64, bool: bool}
    cols: dict[str, Any] = {}
    for name in names:
        kind = types.get(name)
        values = [r[name] for r in rows]
        cols[name] = np.array(values, dtype=dtypes[kind]) if kind is not None else values
    return Table(cols)


def read_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan written by :meth:`Plan.write`.

    Raises
    ------
    InputError
        The file is missing, not an ECSV table, or lacks plan columns.
    """
    from webbflow.io.apt import Unsupported

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file, expected a plan (ECSV)")
    try:
        table = Table.read(p, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many types for malformed tables
        raise InputError(f"{p}: not an ECSV plan ({' '.join(str(exc).split())[:200]})") from None
    missing = [n for n in (*COLUMNS, *EXTRA_COLUMNS) if n not in table.colnames]
    if missing:
        raise InputError(f"{p}: not a webbflow plan: missing columns {', '.join(missing)}")
    for name in table.colnames:  # ECSV reads empty text back as masked
        col = table[name]
        if isinstance(col, MaskedColumn) and (COLUMNS.get(name) or EXTRA_COLUMNS.get(name)) is str:
            table[name] = col.astype(str).filled("")
    meta = dict(table.meta.pop(_META_KEY, None) or {})
    try:
        unsupported = tuple(Unsupported(**u) for u in meta.pop("unsupported", []))
        source = tuple(str(s) for s in meta.pop("source", ["", ""]))
    except TypeError as exc:
        raise InputError(f"{p}: meta.{_META_KEY}: not a plan's metadata ({exc})") from None
    return Plan(table, unsupported, (source[0], source[1]), meta)


def make_plan(
    xml: str | os.PathLike[str],
    pointing: str | os.PathLike[str],
    *,
    roll: float | Mapping[int, float] = 0.0,
    dates: str | Mapping[int, str] | None = None,
    catalogs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    background: str | float | Mapping[int, str | float] = "medium",
    subarray: str | None = None,
    max_groups: int | None = None,
    max_ints: int | None = None,
) -> Plan:
    """The plan of an APT program: its exposures with catalogs, backgrounds and reductions.

    Parameters
    ----------
    xml, pointing
        The APT export (``.xml`` and ``.pointing``).
    roll
        V3 position angle, deg, for all observations or ``{observation: deg}``.
    dates
        Start date-time (ISO, UTC) for all observations or ``{observation: date}``; default
        :func:`webbflow.io.apt.expand`'s.
    catalogs
        See :func:`webbflow.graphs._plan_options.catalog_lookup`: one catalog file, a YAML
        file or mapping in Mirage's shapes (per target and/or instrument), or ``None``.
    background
        ``none``/``low``/``medium``/``high`` or MJy/sr, for all or ``{observation: level}``.
    subarray
        A reduced size for tests and demos (e.g. ``SUB160``): full-frame apertures become that
        subarray of their detector (or the closest imaging one: NIRISS ``NIS_SUB128``, FGS
        ``FGS1_SUB128CNTR``; MIRI ``MIRIM_SUB64``...; ``MIRIM_SUB64`` is also accepted), with
        ``ra``/``dec`` moved to the new reference point. MIRI SLOW/SLOWR1 rows become FAST/FASTR1
        (SLOW reads the full array only).
    max_groups, max_ints
        Caps on ``ngroups`` and ``nints``.

    Raises
    ------
    InputError
        An unreadable APT file, or a missing catalog.
    UsageError
        A bad option value.
    """
    from webbflow.io.apt import expand, read_apt

    for name, cap in (("max_groups", max_groups), ("max_ints", max_ints)):
        if cap is not None and cap < 1:
            raise UsageError(f"{name}: must be >= 1, got {cap}")
    program = read_apt(Path(xml), Path(pointing))
    options: dict[str, Any] = {"roll": roll}
    if dates is not None:
        options["dates"] = dates
    rows = [dataclasses.asdict(e) for e in expand(program, **options)]
    cats = catalog_lookup(catalogs, {str(r["target_name"]) for r in rows})
    levels = background_lookup(background, {int(r["observation"]) for r in rows})
    for row in rows:
        if subarray:
            _reduce(row, subarray)
        if max_groups is not None:
            row["ngroups"] = min(int(row["ngroups"]), max_groups)
        if max_ints is not None:
            row["nints"] = min(int(row["nints"]), max_ints)
        row.update(
            {f"catalog_{k}": v for k, v in cats(str(row["target_name"]), str(row["instrument"])).items()}
        )
        row["background"] = levels(int(row["observation"]))
    extra = {"program": program.program, "title": program.title, "pi_name": program.pi_name}
    return Plan(plan_table(rows), tuple(program.unsupported), (str(xml), str(pointing)), extra)


def _reduce(row: dict[str, Any], subarray: str) -> None:
    """Turn a full-frame row into the reduced subarray (aperture, SUBARRAY, ra/dec)."""
    from webbflow.sim._siaf_names import subarray_name

    new = reduced_aperture(str(row["aperture"]), subarray)
    if new is None:
        return
    prefix, _, suffix = new.partition("_")
    row["aperture"], row["subarray"] = new, subarray_name(prefix, suffix, is_full=False)
    row["ra"], row["dec"] = aperture_radec(new, row)
    readpatt = str(row["readpatt"]).upper()
    if row["instrument"] == "MIRI" and readpatt.startswith("SLOW"):  # SLOW reads the full array only
        row["readpatt"] = "FAST" + readpatt[4:]


def sim_config(
    row: Mapping[str, Any],
    *,
    seed: int = 0,
    output_dir: str | os.PathLike[str],
    products: Sequence[str] = ("uncal",),
    title: str = "",
    pi_name: str = "",
) -> SimConfig:
    """The simulation of one plan row.

    Parameters
    ----------
    row
        A plan row (:meth:`Plan.rows`).
    seed
        The program's seed (exposures get independent streams from their names).
    output_dir
        Where the products go.
    products
        Some of ``uncal``, ``linear``, ``seed``.
    title, pi_name
        The program's title and PI (header keywords).

    Raises
    ------
    InputError
        One line naming the row's file name and the bad key; or a row whose file name
        differs from the one its identifiers give.
    """
    name = str(row["filename"])
    background = str(row.get("background", "medium") or "medium")
    level: str | float = background if background.isalpha() else float(background)
    dither = {
        key: row[key]
        for key in (
            "total_primary_dither_positions",
            "primary_dither_position",
            "total_subpix_dither_positions",
            "subpix_dither_position",
        )
    }
    for key in ("primary_dither_type", "subpix_dither_type"):
        text = str(row[key] or "").strip()
        dither[key] = None if text.lower() in {"", "none"} else text
    data = {
        "instrument": row["instrument"],
        "aperture": row["aperture"],
        "filter": row["filter"],
        "pupil": row["pupil"],
        "readout": {"readpatt": row["readpatt"], "ngroups": row["ngroups"], "nints": row["nints"]},
        "pointing": {"ra": float(row["ra"]) % 360.0, "dec": row["dec"], "v3pa": row["v3pa"]},
        "date_obs": row["date_obs"],
        "time_obs": row["time_obs"],
        "catalogs": {k: [row[f"catalog_{k}"]] for k in KINDS if row.get(f"catalog_{k}")},
        "background": {"level": level},
        "seed": seed,
        "observation": {
            **{k: row[k] for k in ("program", "observation", "visit", "visit_group", "sequence")},
            **{k: row[k] for k in ("activity", "exposure", "target_name")},
            "title": title,
            "pi_name": pi_name,
            "dither": dither,
        },
        "output": {"directory": Path(output_dir), "products": list(products), "name": f"{name}_uncal.fits"},
    }
    config = config_from_dict(data, f"plan row {name}")
    unnamed = config.model_copy(update={"output": config.output.model_copy(update={"name": None})})
    if unnamed.uncal_name != config.uncal_name:  # the name must say what the headers will say
        raise InputError(
            f"plan row {name}: its identifiers and aperture give {unnamed.uncal_name}, not {name}_uncal.fits"
        )
    return config
