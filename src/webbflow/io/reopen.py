"""A lazy stand-in for reading back a product that is being written in the same graph.

A program run writes ``uncal`` and then calibrates it, writes ``rate`` and then runs Image2 on
it. Reading each file back would put a barrier between the stages; instead the next stage is
built on :func:`reopened`, which gives exactly what :func:`~webbflow.io.fits_reader.open_exposure`
or :func:`~webbflow.io.fits_reader.open_product` will return for the finished file: the same
metadata (parsed from the same FITS header text, so floats round as in the file), the same
dtypes (``uncal`` goes through uint16), variables the layout drops are replaced as the reader
replaces them, and the reader's chunks. So an exposure calibrated straight from its simulation
and one resumed from its ``uncal`` file give bit-identical products.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from webbflow.engine.tiling import tile_chunks, tile_shape
from webbflow.io.fits_reader import _RATE_VARS
from webbflow.io.keywords import header_to_meta
from webbflow.io.products import Suffix, fits_product
from webbflow.model import RAMP_DIMS, pixel_coords

_RAMP_LAYOUTS = ("uncal", "ramp")
_RATE_LAYOUTS = ("rate", "rateints", "cal", "calints")


def reopened(ds: xr.Dataset, path: str | Path, suffix: Suffix, *, tile: int | None = None) -> xr.Dataset:
    """What opening the ``suffix`` product of ``ds`` written at ``path`` will give, lazily.

    Parameters
    ----------
    ds
        The Dataset the product is written from (ramp level for ``uncal``/``ramp``, rate
        level for ``rate``/``rateints``/``cal``/``calints``).
    path
        Where the product is written (its name goes into ``FILENAME``).
    suffix
        The product layout.
    tile
        The tile the reader would be given (``None``: the reader's default).

    Returns
    -------
    xarray.Dataset
        Equal, variable by variable, chunk by chunk and in ``attrs["meta"]`` and
        ``attrs["fits_extra"]``, to the reader's Dataset of the finished file.
    """
    path = Path(path)
    product = fits_product(ds, path, suffix, overwrite=True)
    headers = product.headers()
    meta, extra = header_to_meta(headers["PRIMARY"], headers.get("SCI"))
    meta.setdefault("filename", path.name)
    planes = {ext.name: ext.data for ext in product.images}
    attrs: dict[str, Any] = {"meta": meta, "fits_extra": extra, "source": str(path)}
    if suffix in _RAMP_LAYOUTS:
        data, coords = _ramp(planes, meta, tile)
    elif suffix in _RATE_LAYOUTS:
        data, coords = _rate(planes, meta, tile)
        if ds.attrs.get("wcs") is not None:
            attrs["wcs"] = ds.attrs["wcs"]  # the file's ASDF copy of the same transforms
    else:
        raise ValueError(f"reopened: {suffix!r} products are not read back by a later stage")
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _as(array: Any, dtype: Any, chunks: tuple[Any, ...]) -> da.Array:
    out = da.asarray(array).astype(dtype)
    return out.rechunk(chunks)


def _ramp(planes: dict[str, Any], meta: dict[str, Any], tile: int | None) -> tuple[dict, dict]:
    nints, ngroups, ny, nx = planes["SCI"].shape
    ty, tx = tile_shape(ny, nx, nints * ngroups, tile)
    cy, cx = tile_chunks(ny, ty), tile_chunks(nx, tx)
    ramp_chunks = (nints, ngroups, cy, cx)
    data: dict[str, Any] = {"sci": (RAMP_DIMS, _as(planes["SCI"], np.float32, ramp_chunks))}
    zeros = {
        "groupdq": (RAMP_DIMS, np.uint8, (nints, ngroups, ny, nx), ramp_chunks),
        "pixeldq": (("y", "x"), np.uint32, (ny, nx), (cy, cx)),
    }
    for name, (dims, dtype, shape, chunks) in zeros.items():
        ext = name.upper()
        data[name] = (
            (dims, _as(planes[ext], dtype, chunks))
            if ext in planes
            else (dims, da.zeros(shape, dtype=dtype, chunks=chunks))
        )
    if "ZEROFRAME" in planes:
        data["zeroframe"] = (("integration", "y", "x"), _as(planes["ZEROFRAME"], np.float32, (nints, cy, cx)))
    coords = {
        **pixel_coords(meta, ny, nx),
        "integration": np.arange(1, nints + 1, dtype=np.int32),
        "group": np.arange(1, ngroups + 1, dtype=np.int32),
    }
    return data, coords


def _rate(planes: dict[str, Any], meta: dict[str, Any], tile: int | None) -> tuple[dict, dict]:
    shape = tuple(planes["SCI"].shape)
    ny, nx = shape[-2:]
    ty, tx = tile_shape(ny, nx, shape[0] if len(shape) == 3 else 1, tile)
    cy, cx = tile_chunks(ny, ty), tile_chunks(nx, tx)
    dims: tuple[str, ...] = ("y", "x") if len(shape) == 2 else ("integration", "y", "x")
    chunks = (cy, cx) if len(shape) == 2 else (shape[0], cy, cx)
    data: dict[str, Any] = {}
    for ext in _RATE_VARS:
        if ext in planes and tuple(planes[ext].shape) == shape:
            dtype = np.uint32 if ext == "DQ" else np.float32
            data[ext.lower()] = (dims, _as(planes[ext], dtype, chunks))
    if "AREA" in planes and tuple(planes["AREA"].shape) == (ny, nx):
        data["area"] = (("y", "x"), _as(planes["AREA"], np.float32, (cy, cx)))
    coords: dict[str, Any] = dict(pixel_coords(meta, ny, nx))
    if len(shape) == 3:
        coords["integration"] = np.arange(1, shape[0] + 1, dtype=np.int32)
    return data, coords
