"""Open JWST FITS exposures and products lazily as xarray Datasets.

``uncal`` (Level1bModel) and ``ramp`` (RampModel) files become ramp-level
exposures chunked in ``(y, x)`` tiles (see :mod:`webbflow.model`); ``rate``,
``rateints``, ``cal``, ``calints``, ``crf`` and ``i2d`` files become rate-level (or mosaic)
datasets, with the WCS of their ``ASDF`` extension in ``attrs["wcs"]``. Nothing but the
headers is read until a tile is computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits

from webbflow.engine.tiling import tile_chunks, tile_shape
from webbflow.errors import InputError, WebbflowError
from webbflow.io.keywords import get_path, header_to_meta
from webbflow.io.lazy_fits import FitsImageArray, hdu_layout
from webbflow.io.wcs_asdf import read_wcs
from webbflow.model import RAMP_DIMS, pixel_coords

#: Keywords without which a ramp cannot be calibrated.
REQUIRED_RAMP_KEYWORDS: Final = (
    ("INSTRUME", "instrument.name"),
    ("DETECTOR", "instrument.detector"),
    ("READPATT", "exposure.readpatt"),
    ("NINTS", "exposure.nints"),
    ("NGROUPS", "exposure.ngroups"),
    ("NFRAMES", "exposure.nframes"),
    ("GROUPGAP", "exposure.groupgap"),
    ("TFRAME", "exposure.frame_time"),
    ("TGROUP", "exposure.group_time"),
)

_RATE_VARS: Final = ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")


def open_fits(
    path: Path, *, expected: str = "a JWST exposure or product", error: type[WebbflowError] = InputError
) -> fits.HDUList:
    """Open ``path`` as FITS, or raise ``error`` with one line naming the file and ``expected``."""
    if not path.exists():
        raise error(f"{path}: no such file, expected {expected}")
    if path.is_dir():
        raise error(f"{path}: is a directory, expected {expected}")
    try:
        with path.open("rb") as f:
            start = f.read(30)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror}), expected {expected}") from None
    if not start.startswith(b"SIMPLE  =") or start[29:30] != b"T":
        raise error(f"{path}: not a FITS file, expected {expected}")
    try:
        return fits.open(path, memmap=False, lazy_load_hdus=False)
    except Exception as exc:
        raise error(f"{path}: unreadable FITS file, expected {expected} ({exc})") from None


def _lazy(path: Path, hdu: Any, dtype: Any, chunks: tuple[Any, ...]) -> da.Array:
    shape = tuple(hdu.shape)
    arr = FitsImageArray(path, hdu.name, shape, dtype, layout=hdu_layout(hdu))
    name = f"read-{path.name}-{hdu.name}-{np.dtype(dtype).str}-{path.stat().st_mtime_ns}"
    return da.from_array(
        arr, chunks=chunks, asarray=False, name=name, meta=np.empty((0,) * len(shape), dtype)
    )


def read_headers(path: str | Path) -> tuple[dict[str, Any], list[list[Any]], list[str]]:
    """``(meta, extra_cards, extension_names)`` of a FITS file, without its data."""
    p = Path(path)
    with open_fits(p) as hdul:
        sci = hdul["SCI"].header if "SCI" in hdul else None
        meta, extra = header_to_meta(hdul[0].header, sci)
        return meta, extra, [h.name for h in hdul]


def open_exposure(path: str | Path, tile: int | tuple[int, int] | None = None) -> xr.Dataset:
    """Open an ``uncal`` or ``ramp`` FITS file as a lazy ramp-level Dataset.

    Parameters
    ----------
    path
        ``*_uncal.fits`` (SCI uint16) or ``*_ramp.fits`` (SCI float32 with
        PIXELDQ/GROUPDQ).
    tile
        Tile edge in pixels (square), or ``(rows, columns)``; default: full-width strips
        from :func:`~webbflow.engine.tiling.choose_tile`.

    Returns
    -------
    xarray.Dataset
        ``sci`` float32 DN, ``groupdq`` uint8, ``pixeldq`` uint32 and, when
        present, ``zeroframe`` float32; chunked ``(nints, ngroups, tile, tile)``.

    Raises
    ------
    InputError
        Missing or unreadable file, not FITS, missing keywords, wrong dims.
    """
    p = Path(path)
    with open_fits(p) as hdul:
        if "SCI" not in hdul:
            raise InputError(f"{p}: no SCI extension; expected a JWST uncal or ramp file")
        sci_hdu = hdul["SCI"]
        meta, extra = header_to_meta(hdul[0].header, sci_hdu.header)
        for keyword, mpath in REQUIRED_RAMP_KEYWORDS:
            if get_path(meta, mpath) is None:
                raise InputError(f"{p}: missing required keyword {keyword} in the primary header")
        if sci_hdu.header.get("NAXIS") != 4:
            raise InputError(
                f"{p}: SCI has {sci_hdu.header.get('NAXIS')} dimensions, expected 4 "
                "(integration, group, y, x)"
            )
        nints, ngroups, ny, nx = sci_hdu.shape
        # NINTS may describe a whole segmented exposure; NGROUPS must match the data
        if ngroups != meta["exposure"]["ngroups"]:
            raise InputError(f"{p}: SCI has {ngroups} groups but NGROUPS = {meta['exposure']['ngroups']}")
        bitpix = sci_hdu.header["BITPIX"]
        if bitpix not in (16, -32, 32):
            raise InputError(f"{p}: SCI has BITPIX = {bitpix}, expected 16 (uint16) or -32 (float32)")
        ty, tx = tile_shape(ny, nx, nints * ngroups, tile)
        cy, cx = tile_chunks(ny, ty), tile_chunks(nx, tx)
        coords: dict[str, Any] = {
            **pixel_coords(meta, ny, nx),
            "integration": np.arange(1, nints + 1, dtype=np.int32),
            "group": np.arange(1, ngroups + 1, dtype=np.int32),
        }
        ramp_chunks = (nints, ngroups, cy, cx)
        data: dict[str, Any] = {"sci": (RAMP_DIMS, _lazy(p, sci_hdu, np.float32, ramp_chunks))}
        if "GROUPDQ" in hdul:
            data["groupdq"] = (RAMP_DIMS, _lazy(p, hdul["GROUPDQ"], np.uint8, ramp_chunks))
        else:
            data["groupdq"] = (
                RAMP_DIMS,
                da.zeros((nints, ngroups, ny, nx), dtype=np.uint8, chunks=ramp_chunks),
            )
        if "PIXELDQ" in hdul:
            data["pixeldq"] = (("y", "x"), _lazy(p, hdul["PIXELDQ"], np.uint32, (cy, cx)))
        else:
            data["pixeldq"] = (("y", "x"), da.zeros((ny, nx), dtype=np.uint32, chunks=(cy, cx)))
        if "ZEROFRAME" in hdul and hdul["ZEROFRAME"].header.get("NAXIS") == 3:
            data["zeroframe"] = (
                ("integration", "y", "x"),
                _lazy(p, hdul["ZEROFRAME"], np.float32, (nints, cy, cx)),
            )
        for name, var in data.items():
            if var[1].shape[-2:] != (ny, nx):
                raise InputError(f"{p}: {name.upper()} has shape {var[1].shape}, expected (..., {ny}, {nx})")
    meta.setdefault("filename", p.name)
    return xr.Dataset(data, coords=coords, attrs={"meta": meta, "fits_extra": extra, "source": str(p)})


def open_product(path: str | Path, tile: int | tuple[int, int] | None = None) -> xr.Dataset:
    """Open a ``rate``, ``rateints``, ``cal``, ``calints``, ``crf`` or ``i2d`` FITS product lazily.

    Every image extension among SCI, ERR, DQ and VAR_* shaped like SCI becomes a
    variable named in lower case, with dims ``("y", "x")`` or ``("integration", "y", "x")``;
    ``AREA`` and a mosaic's ``WHT`` are ``("y", "x")``, its ``CON`` ``("plane", "y", "x")``.
    The gwcs WCS of the ``ASDF`` extension, if any, is ``attrs["wcs"]``. A mosaic (a file
    with ``WHT``) has coordinates ``0 … n-1``; an exposure its full-frame pixel indices.

    Raises
    ------
    InputError
        Missing or unreadable file, no SCI, SCI not 2-D or 3-D, an unreadable ``ASDF`` WCS.
    """
    p = Path(path)
    with open_fits(p) as hdul:
        if "SCI" not in hdul:
            raise InputError(f"{p}: no SCI extension")
        meta, extra = header_to_meta(hdul[0].header, hdul["SCI"].header)
        shape = hdul["SCI"].shape
        if len(shape) not in (2, 3):
            raise InputError(f"{p}: SCI has {len(shape)} dimensions, expected 2 (rate) or 3 (rateints)")
        ny, nx = shape[-2:]
        ty, tx = tile_shape(ny, nx, shape[0] if len(shape) == 3 else 1, tile)
        cy, cx = tile_chunks(ny, ty), tile_chunks(nx, tx)
        dims: tuple[str, ...] = ("y", "x") if len(shape) == 2 else ("integration", "y", "x")
        chunks = (cy, cx) if len(shape) == 2 else (shape[0], cy, cx)
        data = {}
        for ext in _RATE_VARS:
            if ext in hdul and tuple(hdul[ext].shape) == tuple(shape):
                dtype = np.uint32 if ext == "DQ" else np.float32
                data[ext.lower()] = (dims, _lazy(p, hdul[ext], dtype, chunks))
        for ext, dtype in (("AREA", np.float32), ("WHT", np.float32)):
            if ext in hdul and tuple(hdul[ext].shape) == (ny, nx):
                data[ext.lower()] = (("y", "x"), _lazy(p, hdul[ext], dtype, (cy, cx)))
        if "CON" in hdul and len(hdul["CON"].shape) == 3 and tuple(hdul["CON"].shape[1:]) == (ny, nx):
            con = hdul["CON"]
            data["con"] = (("plane", "y", "x"), _lazy(p, con, np.int32, (con.shape[0], cy, cx)))
        mosaic = "wht" in data
        coords: dict[str, Any] = (
            {"y": np.arange(ny, dtype=np.int32), "x": np.arange(nx, dtype=np.int32)}
            if mosaic
            else dict(pixel_coords(meta, ny, nx))
        )
        if len(shape) == 3:
            coords["integration"] = np.arange(1, shape[0] + 1, dtype=np.int32)
        wcs = read_wcs(hdul)
    meta.setdefault("filename", p.name)
    attrs: dict[str, Any] = {"meta": meta, "fits_extra": extra, "source": str(p)}
    if wcs is not None:
        attrs["wcs"] = wcs
    return xr.Dataset(data, coords=coords, attrs=attrs)
