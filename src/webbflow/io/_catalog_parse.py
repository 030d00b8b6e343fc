"""Parsing of catalog tables: file format, Mirage's comment-line flags, and typed columns.

:func:`read_table` reads a Mirage ASCII catalog (whitespace-separated, flags in the leading
comment lines) or any astropy-readable table (flags as ``comments`` or meta keys);
:func:`parse_flags` reads the flags; :class:`Columns` turns columns into float64 arrays (numbers,
``None``, sexagesimal angles) and raises one-line errors naming the file, row and source index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.table import Table

from webbflow.errors import InputError, suggest
from webbflow.sim.fluxcal import MAG_SYSTEMS

#: How many leading comment lines may hold flags (Mirage reads four).
FLAG_LINES: Final = 4

_FORMATS: Final[Mapping[str, str]] = {
    ".ecsv": "ascii.ecsv",
    ".fits": "fits",
    ".fit": "fits",
    ".fits.gz": "fits",
    ".fit.gz": "fits",
    ".vot": "votable",
    ".votable": "votable",
    ".xml": "votable",
    ".csv": "ascii.csv",
}


def _format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    with path.open("rb") as f:
        head = f.read(16)
    return "ascii.ecsv" if head.startswith(b"# %ECSV") else "ascii.basic"


def _leading_comments(path: Path) -> list[str]:
    """The comment lines (without ``#``) before the first data or header line."""
    comments = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if not text:
                continue
            if not text.startswith("#"):
                break
            comments.append(text.lstrip("#").strip())
    return comments


def read_table(path: Path) -> tuple[Table, list[str]]:
    """The table of ``path`` and the text lines that may hold flags (for :func:`parse_flags`)."""
    if not path.is_file():
        raise InputError(f"{path}: catalog file not found")
    fmt = _format(path)
    try:
        # Mirage ASCII: whitespace (spaces or tabs) separated, header line, no format guessing
        extra = {"guess": False, "delimiter": r"\s"} if fmt == "ascii.basic" else {}
        table = Table.read(path, format=fmt, **extra)
    except Exception as exc:  # astropy raises many types for malformed tables
        detail = " ".join(str(exc).split())[:200]
        raise InputError(f"{path}: cannot read as a {fmt} table ({detail})") from None
    if fmt == "ascii.basic":
        return table, _leading_comments(path)
    meta = {str(k).lower(): v for k, v in table.meta.items()}
    comments = meta.get("comments") or meta.get("comment") or []
    comments = [str(c).lstrip("#").strip() for c in ([comments] if isinstance(comments, str) else comments)]
    # key-value flags of self-describing tables (ecsv meta, FITS header) go first
    keys = [
        k for k in ("position_pixels", "radius_pixels") if str(meta.get(k)).lower() in ("1", "true", "yes")
    ]
    system = [str(meta["magnitude_system"])] if meta.get("magnitude_system") else []
    return table, [*keys, *system, *comments]


@dataclass(frozen=True)
class Flags:
    """Mirage's catalog flags: pixel positions, pixel radii, magnitude system."""

    position_pixels: bool
    radius_pixels: bool
    system: str


def parse_flags(path: Path, comments: Sequence[str]) -> Flags:
    """Mirage's flags from the first :data:`FLAG_LINES` comment lines (one single-word flag per line)."""
    position = radius = False
    systems: list[str] = []
    for number, line in enumerate(comments[:FLAG_LINES], start=1):
        words = line.lower().split()
        if len(words) != 1:
            continue  # prose, not a flag
        word = words[0].strip("'\".,;")
        if word in ("position_pixels", "position_pixel"):
            position = True
        elif word in ("radius_pixels", "radius_pixel"):
            radius = True
        elif word in MAG_SYSTEMS:
            systems.append(word)
        elif "mag" in word:
            raise InputError(
                f"{path}: comment line {number}: unknown magnitude system {word!r}"
                f"{suggest(word, MAG_SYSTEMS)} (expected {', '.join(MAG_SYSTEMS)})"
            )
    if len(set(systems)) > 1:
        raise InputError(
            f"{path}: comment lines give two magnitude systems ({', '.join(systems)}); expected one"
        )
    return Flags(position, radius, systems[0] if systems else "abmag")


class Columns:
    """Case-insensitive column access with row-numbered errors."""

    def __init__(self, path: Path, table: Table) -> None:
        self.path = path
        self.table = table
        self.names = {name.lower(): name for name in reversed(table.colnames)}
        self.index: np.ndarray | None = None

    def find(self, *names: str) -> str | None:
        for name in names:
            if name.lower() in self.names:
                return self.names[name.lower()]
        return None

    def require(self, *names: str) -> str:
        found = self.find(*names)
        if found is None:
            raise InputError(
                f"{self.path}: no column {' or '.join(repr(n) for n in names)}"
                f"{suggest(names[0], self.table.colnames)} (columns: {', '.join(self.table.colnames)})"
            )
        return found

    def fail(self, bad: np.ndarray, what: str) -> None:
        """Raise for the first row where ``bad`` is true, if any."""
        rows = np.flatnonzero(bad)
        if rows.size:
            row = int(rows[0])
            label = f"row {row + 1}"
            if self.index is not None:
                label += f" (index {self.index[row]})"
            more = f" (and {rows.size - 1} more rows)" if rows.size > 1 else ""
            raise InputError(f"{self.path}: {label}: {what}{more}")

    def strings(self, name: str) -> np.ndarray:
        col = self.table[name]
        mask = np.ma.getmaskarray(col)
        text = np.char.strip(np.asarray(col, dtype=str))
        return np.where(mask, "", text)

    def floats(self, name: str, *, allow_none: bool = False, what: str = "a number") -> np.ndarray:
        """Column ``name`` as float64; ``None``/empty → NaN when ``allow_none``, else an error."""
        col = self.table[name]
        if col.dtype.kind in "biuf" and not np.ma.is_masked(col):
            values = np.asarray(col, np.float64)
            if not allow_none:
                bad = ~np.isfinite(values)
                self.fail(bad, f"{name} is {first_bad(values, bad)}; expected {what}")
            return values
        text = self.strings(name)
        missing = np.isin(np.char.lower(text), ("", "none", "--"))
        values = np.full(text.shape, np.nan)
        ok = ~missing
        values[ok], parsed = _parse_floats(text[ok])
        bad = np.zeros(text.shape, bool)
        bad[ok] = ~parsed | ~np.isfinite(values[ok])
        if not allow_none:
            bad |= missing
        self.fail(bad, f"{name} is {first_bad(text, bad)!r}; expected {what}")
        return values

    def number(
        self, name: str, what: str, bad: Callable[[np.ndarray], np.ndarray] | None = None, expect: str = ""
    ) -> np.ndarray:
        """:meth:`floats` of a required column, failing the rows where ``bad(values)``."""
        values = self.floats(name, what=what)
        if bad is not None:
            mask = bad(values)
            self.fail(mask, f"{name} is {first_bad(values, mask)}; expected {expect or what}")
        return values


def first_bad(values: np.ndarray, bad: np.ndarray) -> Any:
    """The value at the first row where ``bad`` is true (``None`` if none), for messages."""
    rows = np.flatnonzero(bad)
    return np.asarray(values)[rows[0]].item() if rows.size else None  # a Python scalar: plain repr


def _parse_floats(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse strings to float64; also returns which parsed (the loop runs only if some do not)."""
    try:
        return text.astype(np.float64), np.ones(text.shape, bool)
    except ValueError:
        values = np.full(text.shape, np.nan)
        ok = np.zeros(text.shape, bool)
        for i, s in enumerate(text):
            try:
                values[i] = float(s)
                ok[i] = True
            except ValueError:
                pass
        return values, ok


def angle_column(cols: Columns, name: str, unit: u.UnitBase, what: str) -> np.ndarray:
    """A sky-coordinate column in degrees: decimal degrees or sexagesimal strings (not mixed)."""
    if cols.table[name].dtype.kind in "biuf":
        return cols.floats(name, what=what)
    text = cols.strings(name)
    lower = np.char.lower(text)
    sexagesimal = np.zeros(text.shape, bool)
    for c in ":hdms":
        sexagesimal |= np.char.find(lower, c) >= 0
    if not np.any(sexagesimal):
        return cols.floats(name, what=what)
    mixed = ~sexagesimal
    what_mixed = f"{name} is {first_bad(text, mixed)!r} but other rows are sexagesimal; expected one format"
    cols.fail(mixed, what_mixed)
    try:
        return np.asarray(Angle(text, unit=unit).deg, np.float64)
    except (ValueError, u.UnitsError):
        bad = np.array([not _is_angle(s, unit) for s in text], bool)  # error path: find the row
        cols.fail(bad, f"{name} is {first_bad(text, bad)!r}; expected {what}")
        raise InputError(f"{cols.path}: cannot parse column {name} as {what}") from None


def _is_angle(text: str, unit: u.UnitBase) -> bool:
    try:
        Angle(text, unit=unit)
    except (ValueError, u.UnitsError):
        return False
    return True
