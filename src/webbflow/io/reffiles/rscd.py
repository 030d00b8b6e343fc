"""The RSCD reference: a table of initial groups to flag, per ``READPATT`` and ``SUBARRAY``.

A jwst ``RSCDModel`` file (jwst 3.0 / stdatamodels 6) is a binary table,
extension ``RSCD_GROUP_SKIP``, with columns ``subarray``, ``readpatt``,
``group_skip1`` (groups to flag in integration 1) and ``group_skip`` (in
integrations 2 and later). Files written before ``group_skip1`` existed lack
that column; it reads as -1 ("no value"), as stdatamodels fills it. The image
opener (:mod:`webbflow.io.reffiles.opener`) hands RSCD files here: a table has
no pixels to crop or tile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import xarray as xr
from astropy.io import fits

from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError
from webbflow.io.fits_reader import open_fits
from webbflow.io.keywords import header_to_meta
from webbflow.io.reffiles.photom import table_strings
from webbflow.model import meta_value

#: Extension holding the table.
RSCD_EXTNAME: Final = "RSCD_GROUP_SKIP"


def open_rscd_table(ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
    """An RSCD reference as a small in-memory Dataset along dim ``row``.

    Parameters
    ----------
    ref
        The resolved RSCD file.
    ds
        The exposure (its ``DETECTOR`` must match the file's unless that is ``ANY``).

    Returns
    -------
    xarray.Dataset
        ``subarray``, ``readpatt`` (upper-case str); ``group_skip1``, ``group_skip``
        (int32 groups; ``group_skip1`` = -1 when the file predates it). ``attrs``:
        ``header``, ``meta``, ``name``, ``path``.

    Raises
    ------
    ReferenceFileError
        Not FITS, no ``RSCD_GROUP_SKIP`` table or a missing column, or another detector.
    """
    path = Path(ref.path)
    with open_fits(path, expected="an rscd reference file", error=ReferenceFileError) as hdul:
        header = hdul[0].header
        if RSCD_EXTNAME not in hdul or not isinstance(hdul[RSCD_EXTNAME], fits.BinTableHDU):
            raise ReferenceFileError(
                f"{path}: no {RSCD_EXTNAME} table extension, expected one in an rscd reference file"
            )
        table = hdul[RSCD_EXTNAME].data
        names = [n.lower() for n in table.columns.names]
        for column in ("subarray", "readpatt", "group_skip"):
            if column not in names:
                raise ReferenceFileError(
                    f"{path}: {RSCD_EXTNAME} has no {column} column (columns: {', '.join(names)})"
                )
        nrows = len(table)
        skip1 = np.asarray(table["group_skip1"], np.int32) if "group_skip1" in names else np.full(nrows, -1)
        data = {
            "subarray": ("row", table_strings(table["subarray"])),
            "readpatt": ("row", table_strings(table["readpatt"])),
            "group_skip1": ("row", skip1.astype(np.int32)),
            "group_skip": ("row", np.asarray(table["group_skip"], np.int32)),
        }
        header_dict = {k: v for k, v in header.items() if k not in ("HISTORY", "COMMENT", "")}
        meta, _ = header_to_meta(header)
    ref_det = str(header_dict.get("DETECTOR", "") or "").strip().upper()
    exp_det = str(meta_value(ds, "instrument.detector", "") or "").strip().upper()
    if ref_det not in ("", "ANY", "N/A", "MULTIPLE") and exp_det and ref_det != exp_det:
        raise ReferenceFileError(f"{path}: reference is for DETECTOR={ref_det}, exposure is {exp_det}")
    attrs = {"header": header_dict, "meta": meta, "name": ref.label, "path": str(path)}
    return xr.Dataset(data, attrs=attrs)
