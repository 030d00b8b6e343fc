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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, get_args

import astropy.units as u
import numpy as np

from webbflow.errors import InputError, UsageError, suggest
from webbflow.io._catalog_parse import FLAG_LINES as FLAG_LINES
from webbflow.io._catalog_parse import Columns, Flags, angle_column, first_bad, parse_flags, read_table
from webbflow.sim.fluxcal import countrate, filter_info

Kind = Literal["point", "galaxy", "extended"]
KINDS: Final = get_args(Kind)
#: Columns that give the electron rate directly, e⁻/s.
RATE_COLUMNS: Final = ("countrate_e_per_s", "countrate")


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


def _indices(cols: Columns) -> np.ndarray:
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


def _positions(cols: Columns, flags: Flags) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
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
    ra = angle_column(cols, xname, u.hourangle, "RA in degrees or HH:MM:SS.s")
    dec = angle_column(cols, yname, u.deg, "Dec in degrees or DD:MM:SS.s")
    for name, values, bad, expect in ((xname, ra, (ra < 0) | (ra >= 360), "0 <= RA < 360 deg"),
                                      (yname, dec, np.abs(dec) > 90, "-90 <= Dec <= 90 deg")):  # fmt: skip
        cols.fail(bad, f"{name} is {first_bad(values, bad)}; expected {expect}")
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
    if inst == "MIRI":
        return [f"miri_{info.element.lower()}_magnitude"]
    guider = (detector or "").strip().upper()
    names = []
    if guider in ("GUIDER1", "GUIDER2"):
        g = guider.lower()
        names = [f"fgs_{g}_magnitude", f"{g}_magnitude", f"fgs{g[-1]}_magnitude"]
    return [*names, "fgs_magnitude"]


def _brightness(
    cols: Columns,
    kind: Kind,
    flags: Flags,
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
            cols.fail(rate < 0, f"{name} is {first_bad(rate, rate < 0)}; expected a count rate >= 0 e-/s")
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
    table, comments = read_table(path)
    flags = parse_flags(path, comments)
    cols = Columns(path, table)
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


def _stamps(cols: Columns, path: Path) -> tuple[Path, ...]:
    names = cols.strings(cols.require("filename"))
    files = tuple(Path(s) if Path(s).is_absolute() else path.parent / s for s in names)
    missing = np.array([not s or not f.is_file() for s, f in zip(names, files, strict=True)], bool)
    cols.fail(missing, f"stamp file {first_bad(names, missing)!r} not found (relative to {path.parent})")
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
