"""Source catalogs in Mirage's ASCII formats (and any astropy-readable table with the same columns).

Mirage catalogs are whitespace-separated ASCII tables whose first four comment lines
may hold one flag each:

- ``position_pixels``: ``x_or_RA``/``y_or_Dec`` are detector pixels, else RA/Dec (decimal
  degrees, ``03:32:21.273 -27:50:23.983`` or ``03h32m21.273s -27d50m23.983s``);
- ``radius_pixels``: galaxy half-light radii in pixels, else arcsec;
- ``abmag`` (default), ``vegamag`` or ``stmag``: the magnitude system.

Flags later than the fourth comment line are ignored, as Mirage does.

**Pixel positions** are Mirage's: 0-based, in the science (DMS) frame *of the aperture
being simulated* (0, 0 is the first pixel of the subarray). :class:`SourceCatalog` keeps
them as given; :meth:`SourceCatalog.full_frame_xy` turns them into webbflow's 0-based
full-frame pixels by adding ``xstart − 1``, ``ystart − 1`` of the exposure's window
(``SUBSTRT1``/``SUBSTRT2``; 1, 1 for full frame).

Brightness comes from, in order: the magnitude column of this instrument and band
(NIRCam ``nircam_<filter>_<pupil>_magnitude``, then ``nircam_<filter>_magnitude`` for a CLEAR
or grism pupil or ``nircam_<pupilfilter>_magnitude`` for a pupil-wheel filter; NIRISS
``niriss_<filter>_magnitude`` of the band-defining filter; FGS ``fgs_guider1_magnitude``,
``guider1_magnitude``, ``fgs1_magnitude``, ``fgs_magnitude`` for GUIDER1 and likewise for
GUIDER2), a ``countrate_e_per_s`` or ``countrate`` column (e⁻/s), or a generic ``magnitude``
column. Column names are matched without regard to case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.table import Table

from webbflow.errors import InputError, UsageError, suggest
from webbflow.sim.fluxcal import MAG_SYSTEMS, countrate, filter_info

Kind = Literal["point", "galaxy", "extended"]
KINDS: Final = get_args(Kind)
#: How many leading comment lines may hold flags (Mirage reads four).
FLAG_LINES: Final = 4
#: Columns that give the electron rate directly, e⁻/s.
RATE_COLUMNS: Final = ("countrate_e_per_s", "countrate")

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


@dataclass(frozen=True, eq=False)
class SourceCatalog:
    """One catalog, as numpy columns (all of length ``n``, read-only).

    Attributes
    ----------
    kind
        ``point``, ``galaxy`` or ``extended``.
    path
        The catalog file.
    index : ndarray (n,), int64
        Source indices (≥ 1; the segmentation-map value).
    ra, dec : ndarray (n,), float64, deg
        Sky positions; NaN when the catalog gives pixels.
    x, y : ndarray (n,), float64, pixels
        Mirage pixel positions (0-based, science frame of the simulated aperture); NaN when
        the catalog gives RA/Dec. See :meth:`full_frame_xy`.
    countrate : ndarray (n,), float64, e⁻/s
        Total electron rate; NaN for an extended source whose magnitude is ``None`` (keep
        the stamp's own values, which Mirage takes as ADU/s).
    position_pixels
        True when positions are pixels.
    magnitude_system
        ``abmag``/``vegamag``/``stmag``, or ``countrate`` when rates were given.
    brightness_column
        The column the brightness came from.
    radius : ndarray (n,), float64
        Galaxy half-light radius, arcsec (pixels when ``radius_in_pixels``); NaN otherwise.
    radius_in_pixels
        True when the catalog said ``radius_pixels``.
    ellipticity, sersic_index : ndarray (n,), float64
        Galaxies; NaN otherwise.
    pos_angle : ndarray (n,), float64, deg
        Position angle east of north (galaxy major axis, extended stamp's y-axis); NaN means
        none given (extended: no rotation) and for point sources.
    filename : tuple of Path
        Extended-source stamp files, resolved relative to the catalog; ``()`` for other kinds.
    """

    kind: Kind
    path: Path
    index: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    x: np.ndarray
    y: np.ndarray
    countrate: np.ndarray
    position_pixels: bool
    magnitude_system: str
    brightness_column: str
    radius: np.ndarray
    radius_in_pixels: bool
    ellipticity: np.ndarray
    pos_angle: np.ndarray
    sersic_index: np.ndarray
    filename: tuple[Path, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.index.size)

    def full_frame_xy(self, window: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions in webbflow's 0-based full-frame frame.

        Parameters
        ----------
        window
            ``(xstart, ystart, xsize, ysize)`` of the exposure, 1-based (``Geometry.window``).

        Returns
        -------
        x, y : ndarray (n,), float64; NaN for sky positions (project those through the WCS).
        """
        return self.x + (int(window[0]) - 1), self.y + (int(window[1]) - 1)


# ---------------------------------------------------------------------------- reading


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


def _read_table(path: Path) -> tuple[Table, list[str]]:
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
class _Flags:
    position_pixels: bool
    radius_pixels: bool
    system: str


def _flags(path: Path, comments: Sequence[str]) -> _Flags:
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
    return _Flags(position, radius, systems[0] if systems else "abmag")


class _Columns:
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
                self.fail(
                    ~np.isfinite(values), f"{name} is {_first(values, ~np.isfinite(values))}; expected {what}"
                )
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
        self.fail(bad, f"{name} is {_first(text, bad)!r}; expected {what}")
        return values

    def number(
        self, name: str, what: str, bad: Callable[[np.ndarray], np.ndarray] | None = None, expect: str = ""
    ) -> np.ndarray:
        """:meth:`floats` of a required column, failing the rows where ``bad(values)``."""
        values = self.floats(name, what=what)
        if bad is not None:
            mask = bad(values)
            self.fail(mask, f"{name} is {_first(values, mask)}; expected {expect or what}")
        return values


def _first(values: np.ndarray, bad: np.ndarray) -> Any:
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


def _angles(cols: _Columns, name: str, unit: u.UnitBase, what: str) -> np.ndarray:
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
    cols.fail(mixed, f"{name} is {_first(text, mixed)!r} but other rows are sexagesimal; expected one format")
    try:
        return np.asarray(Angle(text, unit=unit).deg, np.float64)
    except (ValueError, u.UnitsError):
        bad = np.array([not _is_angle(s, unit) for s in text], bool)  # error path: find the row
        cols.fail(bad, f"{name} is {_first(text, bad)!r}; expected {what}")
        raise InputError(f"{cols.path}: cannot parse column {name} as {what}") from None


def _is_angle(text: str, unit: u.UnitBase) -> bool:
    try:
        Angle(text, unit=unit)
    except (ValueError, u.UnitsError):
        return False
    return True


def _indices(cols: _Columns) -> np.ndarray:
    values = cols.number(cols.require("index"), "a positive integer", lambda v: (v < 1) | (v != np.round(v)))
    index = values.astype(np.int64)
    cols.index = index
    unique, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1][0]
        rows = np.flatnonzero(index == dup)[:2] + 1
        raise InputError(
            f"{cols.path}: index {dup} appears twice (rows {rows[0]} and {rows[1]}); expected unique"
        )
    return index


def _positions(cols: _Columns, flags: _Flags) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """(ra, dec, x, y, position_pixels); NaN where the other kind of position was given."""
    nan = np.full(len(cols.table), np.nan)
    xname, yname = cols.find("x_or_RA"), cols.find("y_or_Dec")
    pixels = flags.position_pixels
    if xname is None or yname is None:  # self-describing tables may name them ra/dec or x/y
        if not pixels and cols.find("ra") and cols.find("dec"):
            xname, yname = cols.find("ra"), cols.find("dec")
        elif cols.find("x") and cols.find("y"):
            xname, yname, pixels = cols.find("x"), cols.find("y"), True
        else:
            xname, yname = cols.require("x_or_RA"), cols.require("y_or_Dec")
    assert xname is not None and yname is not None
    if pixels:
        x = cols.floats(xname, what="a pixel position")
        y = cols.floats(yname, what="a pixel position")
        return nan, nan.copy(), x, y, True
    ra = _angles(cols, xname, u.hourangle, "RA in degrees or HH:MM:SS.s")
    dec = _angles(cols, yname, u.deg, "Dec in degrees or DD:MM:SS.s")
    for name, values, bad, expect in ((xname, ra, (ra < 0) | (ra >= 360), "0 <= RA < 360 deg"),
                                      (yname, dec, np.abs(dec) > 90, "-90 <= Dec <= 90 deg")):  # fmt: skip
        cols.fail(bad, f"{name} is {_first(values, bad)}; expected {expect}")
    return ra, dec, nan, nan.copy(), False


def magnitude_columns(
    instrument: str, filter: str | None, pupil: str | None, detector: str | None
) -> list[str]:
    """The band-specific magnitude column names to look for, most specific first."""
    info = filter_info(instrument, filter, pupil)
    inst = info.instrument
    if inst == "NIRCAM":
        fil = (info.filter or "").lower()
        pup = (info.pupil or "clear").lower()
        if pup in ("grismr", "grismc"):
            pup = "clear"
        names = [f"nircam_{fil}_{pup}_magnitude"]
        if pup == "clear":
            names.append(f"nircam_{fil}_magnitude")
        elif info.element.lower() == pup:
            names.append(f"nircam_{pup}_magnitude")
        return names
    if inst == "NIRISS":
        return [f"niriss_{info.element.lower()}_magnitude"]
    guider = (detector or "").strip().upper()
    names = []
    if guider in ("GUIDER1", "GUIDER2"):
        g = guider.lower()
        names = [f"fgs_{g}_magnitude", f"{g}_magnitude", f"fgs{g[-1]}_magnitude"]
    return [*names, "fgs_magnitude"]


def _brightness(
    cols: _Columns,
    kind: Kind,
    flags: _Flags,
    band: tuple[str, str | None, str | None, str | None],
) -> tuple[np.ndarray, str, str]:
    """(countrate e⁻/s, system, column)."""
    specific = magnitude_columns(*band)
    allow_none = kind == "extended"
    for names, is_rate in ((specific, False), (RATE_COLUMNS, True), (("magnitude",), False)):
        name = cols.find(*names)
        if name is None:
            continue
        if is_rate:
            rate = cols.floats(name, allow_none=allow_none, what="a count rate in e-/s")
            cols.fail(rate < 0, f"{name} is {_first(rate, rate < 0)}; expected a count rate >= 0 e-/s")
            return rate, "countrate", name
        what = "a magnitude" + (" or None" if allow_none else "")
        mags = cols.floats(name, allow_none=allow_none, what=what)
        return countrate(mags, flags.system, filter_info(*band[:3])), flags.system, name
    looked = ", ".join([*specific, *RATE_COLUMNS, "magnitude"])
    inst, fil, pup, _ = band
    raise InputError(f"{cols.path}: no brightness column for {inst} {fil}/{pup} (looked for {looked})")


def read_catalog(
    path: str | Path,
    kind: Kind,
    *,
    instrument: str,
    filter: str | None,
    pupil: str | None,
    detector: str | None = None,
) -> SourceCatalog:
    """Read a point-source, galaxy or extended-source catalog.

    Parameters
    ----------
    path
        Mirage ASCII catalog, or an ``.ecsv``/``.fits``/``.vot``/``.csv`` table with the same
        columns (flags as ``comments`` or ``position_pixels``/``radius_pixels``/
        ``magnitude_system`` meta keys).
    kind
        ``point``, ``galaxy`` (needs ``radius``, ``ellipticity``, ``pos_angle``, ``sersic_index``)
        or ``extended`` (needs ``filename``; ``pos_angle`` optional; magnitude may be ``None``).
    instrument, filter, pupil, detector
        Select the magnitude column and the flux calibration (:func:`webbflow.sim.fluxcal.filter_info`).

    Raises
    ------
    InputError
        Missing or unreadable file, missing column, or a bad row (NaN or unparseable
        position, missing magnitude, unknown magnitude-system flag, duplicate index, bad
        galaxy shape, missing stamp file); the message names the file and the row.
    UsageError
        Unknown ``kind``, instrument or filter.
    """
    if kind not in KINDS:
        raise UsageError(
            f"unknown catalog kind {kind!r}{suggest(str(kind), KINDS)} (expected {', '.join(KINDS)})"
        )
    path = Path(path)
    table, comments = _read_table(path)
    flags = _flags(path, comments)
    cols = _Columns(path, table)
    index = _indices(cols)
    ra, dec, x, y, pixels = _positions(cols, flags)
    rate, system, column = _brightness(cols, kind, flags, (instrument, filter, pupil, detector))
    n = len(table)
    radius, ellipticity, sersic, pos_angle = (np.full(n, np.nan) for _ in range(4))
    files: tuple[Path, ...] = ()
    if kind == "galaxy":
        positive = (lambda v: v <= 0), "> 0"
        radius = cols.number(cols.require("radius"), "a half-light radius", *positive)
        ellipticity = cols.number(cols.require("ellipticity"), "an ellipticity",
                                  lambda v: (v < 0) | (v >= 1), "0 <= ellipticity < 1")  # fmt: skip
        pos_angle = cols.number(cols.require("pos_angle"), "a position angle in degrees")
        sersic = cols.number(cols.require("sersic_index"), "a Sersic index", *positive)
    elif kind == "extended":
        files = _stamps(cols, path)
        name = cols.find("pos_angle")
        if name is not None:
            pos_angle = cols.floats(name, allow_none=True, what="a position angle in degrees or None")
    arrays = [index, ra, dec, x, y, rate, radius, ellipticity, pos_angle, sersic]
    for a in arrays:
        a.setflags(write=False)
    return SourceCatalog(
        kind=kind,
        path=path,
        index=index,
        ra=ra,
        dec=dec,
        x=x,
        y=y,
        countrate=rate,
        position_pixels=pixels,
        magnitude_system=system,
        brightness_column=column,
        radius=radius,
        radius_in_pixels=flags.radius_pixels,
        ellipticity=ellipticity,
        pos_angle=pos_angle,
        sersic_index=sersic,
        filename=files,
    )


def _stamps(cols: _Columns, path: Path) -> tuple[Path, ...]:
    names = cols.strings(cols.require("filename"))
    files = tuple(Path(s) if Path(s).is_absolute() else path.parent / s for s in names)
    missing = np.array([not s or not f.is_file() for s, f in zip(names, files, strict=True)], bool)
    cols.fail(missing, f"stamp file {_first(names, missing)!r} not found (relative to {path.parent})")
    return files


def check_unique_indices(catalogs: Sequence[SourceCatalog]) -> None:
    """Raise :class:`InputError` if a source index appears in more than one catalog.

    Indices label the segmentation map, so they must be unique across all the catalogs of
    one simulation (duplicates within one catalog are caught by :func:`read_catalog`).
    """
    if not catalogs:
        return
    index = np.concatenate([c.index for c in catalogs])
    owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(catalogs)])
    order = np.argsort(index, kind="stable")
    same = index[order][1:] == index[order][:-1]
    if same.any():
        k = int(np.flatnonzero(same)[0])
        a, b = catalogs[owner[order][k]], catalogs[owner[order][k + 1]]
        where = (
            f"both {a.path} and {b.path}"
            if a.path != b.path
            else f"{a.path} twice (read as {a.kind} and {b.kind})"
        )
        raise InputError(
            f"source index {index[order][k]} appears in {where}; indices must be unique across "
            "all catalogs of a simulation (they label the segmentation map)"
        )
