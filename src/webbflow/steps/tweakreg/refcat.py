"""The absolute astrometric reference catalog of tweakreg: a local file with RA/Dec columns.

jwst's ``abs_refcat`` also accepts the names of GAIA catalogs, which it downloads; webbflow
runs offline, so those names are refused with an error that says to give a file. Accepted:
anything astropy's ``Table.read`` reads (ECSV, FITS, CSV, other ASCII), with columns
``RA`` and ``DEC`` (any case, degrees) or a ``sky_centroid`` SkyCoord column (a jwst
``source_catalog`` product), or a Mirage point-source catalog (``x_or_RA``/``y_or_Dec``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
from astropy.table import Table

from webbflow.errors import InputError

#: Catalog names jwst fetches from the network (not available offline).
NETWORK_CATALOGS: Final = ("GAIAREFCAT", "GAIADR3", "GAIADR2", "GAIADR1", "GSC243", "GSC242")

_RA_NAMES: Final = ("ra", "x_or_ra")
_DEC_NAMES: Final = ("dec", "y_or_dec")


def read_refcat(path: str | Path) -> Table:
    """The reference catalog at ``path`` as a Table with float64 ``RA`` and ``DEC`` (deg) columns.

    Raises
    ------
    InputError
        A network catalog name, a missing or unreadable file, or a table without usable
        RA/Dec columns; the message names the file and what was expected.
    """
    text = str(path).strip()
    if text.upper() in NETWORK_CATALOGS:
        raise InputError(
            f"tweakreg.abs_refcat = {text!r}: only catalog files (ECSV/FITS/CSV with RA, DEC columns)"
            " are supported offline; download the catalog and give its path"
        )
    file = Path(text)
    if not file.is_file():
        raise InputError(
            f"tweakreg.abs_refcat: {file} is not a file (expected a catalog with RA, DEC columns)"
        )
    table = _read(file)
    ra, dec = _radec(table, file)
    good = np.isfinite(ra) & np.isfinite(dec)
    out = Table({"RA": ra[good], "DEC": dec[good]})
    out.meta["name"] = file.name  # tweakwcs logs it
    return out


def _read(file: Path) -> Table:
    errors = []
    for kwargs in ({}, {"format": "ascii"}):
        try:
            return Table.read(file, **kwargs)
        except Exception as exc:  # astropy raises many kinds; report the first
            errors.append(exc)
    raise InputError(f"tweakreg.abs_refcat: cannot read {file} as a table ({errors[0]})")


def _radec(table: Table, file: Path) -> tuple[np.ndarray, np.ndarray]:
    by_lower = {name.lower(): name for name in table.colnames}
    ra_col = next((by_lower[n] for n in _RA_NAMES if n in by_lower), None)
    dec_col = next((by_lower[n] for n in _DEC_NAMES if n in by_lower), None)
    if ra_col is not None and dec_col is not None:
        return _degrees(table[ra_col]), _degrees(table[dec_col])
    if "sky_centroid" in by_lower:
        sky = table[by_lower["sky_centroid"]]
        return np.asarray(sky.ra.deg, dtype=np.float64), np.asarray(sky.dec.deg, dtype=np.float64)
    raise InputError(
        f"tweakreg.abs_refcat: {file} has no RA/DEC columns (columns: {', '.join(table.colnames)})"
    )


def _degrees(column: object) -> np.ndarray:
    unit = getattr(column, "unit", None)
    values = getattr(column, "value", column)
    data = np.asarray(values, dtype=np.float64)
    if unit is not None and str(unit) not in ("", "deg"):
        data = (np.asarray(values) * unit).to_value("deg")
    return data
