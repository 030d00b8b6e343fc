"""Zarr stores of any exposure Dataset: checkpoints, intermediates, analysis.

Metadata (``attrs["meta"]``, ``attrs["fits_extra"]``, ``attrs["wcs_sip"]``) are JSON, so they
go into the store's attributes as they are; a gwcs WCS (``attrs["wcs"]``, or the ``wcs`` of a
mosaic's ``attrs["grid"]``) is stored as the base64 text of an ASDF file
(:func:`webbflow.io.wcs_asdf.wcs_tree_bytes`) and read back as ``attrs["wcs"]``. Other
non-scalar attributes (the :class:`OutputGrid` itself) are dropped, with a log line.
:func:`open_zarr` gives back the same lazy Dataset, chunked as it was written.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr
from dask.delayed import Delayed

from webbflow.errors import InputError
from webbflow.io.atomic import check_writable, commit, discard, temporary_name
from webbflow.io.wcs_asdf import wcs_tree_bytes

log = logging.getLogger("webbflow")

_JSON_ATTRS = ("meta", "fits_extra", "wcs_sip")
_WCS_ATTR = "webbflow_wcs_asdf"


def _encode_attrs(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy()
    out.attrs = {
        k: (json.dumps(v) if k in _JSON_ATTRS else v)
        for k, v in ds.attrs.items()
        if k in _JSON_ATTRS or isinstance(v, str | int | float)
    }
    out.attrs["webbflow_json_attrs"] = ",".join(k for k in _JSON_ATTRS if k in ds.attrs)
    grid = ds.attrs.get("grid")
    wcs = ds.attrs.get("wcs", getattr(grid, "wcs", None))
    if wcs is not None:
        out.attrs[_WCS_ATTR] = base64.b64encode(wcs_tree_bytes(wcs)).decode("ascii")
    dropped = [k for k in ds.attrs if k not in out.attrs and k != "wcs"]
    if dropped:
        log.info("zarr: attributes %s not stored (not JSON; the WCS is kept)", ", ".join(dropped))
    for var in out.variables.values():
        var.encoding = {}
    return out


@dataclass
class ZarrProduct:
    """A Zarr store being written (same protocol as :class:`~webbflow.io.fits_writer.FitsProduct`)."""

    ds: xr.Dataset
    path: Path
    overwrite: bool = False
    tmp: Path = field(init=False)

    def prepare(self) -> list[Delayed]:
        check_writable(self.path, self.overwrite)
        self.tmp = temporary_name(self.path)
        ds = _encode_attrs(_regular_chunks(self.ds))
        delayed = ds.to_zarr(self.tmp, mode="w", compute=False, consolidated=True)
        return [delayed]

    def finish(self) -> Path:
        commit(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if hasattr(self, "tmp"):
            discard(self.tmp)


def _regular_chunks(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with chunks Zarr can store: equal along each dim but the last.

    Tiles aligned to a grid (the simulator's 256-px random-number blocks) start with a short
    chunk when the window is not aligned; each new chunk draws on at most two old ones.
    """
    sizes: dict[Any, int] = {}
    for var in ds.data_vars.values():
        if var.chunks is None:
            continue
        for dim, chunks in zip(var.dims, var.chunks, strict=True):
            if any(c != chunks[0] for c in chunks[:-1]) or chunks[-1] > chunks[0]:
                sizes[dim] = max(sizes.get(dim, 0), max(chunks))
    return ds.chunk(sizes) if sizes else ds


def open_zarr(path: str | Path) -> xr.Dataset:
    """Open a store written by :class:`ZarrProduct` as a lazy Dataset with its metadata."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such Zarr store")
    try:
        ds = xr.open_zarr(p, consolidated=True)
    except Exception as exc:
        raise InputError(f"{p}: not a readable Zarr store ({exc})") from None
    attrs: dict[str, Any] = dict(ds.attrs)
    for key in str(attrs.pop("webbflow_json_attrs", "")).split(","):
        if key:
            attrs[key] = json.loads(attrs[key])
    if _WCS_ATTR in attrs:
        attrs["wcs"] = _decode_wcs(p, str(attrs.pop(_WCS_ATTR)))
    ds.attrs = attrs
    return ds


def _decode_wcs(path: Path, text: str) -> Any:
    import asdf

    try:
        with asdf.open(io.BytesIO(base64.b64decode(text)), lazy_load=False, memmap=False) as af:
            return af.tree["meta"]["wcs"]
    except Exception as exc:  # asdf raises many types for a corrupt tree
        raise InputError(f"{path}: attribute {_WCS_ATTR} is not a readable ASDF WCS ({exc})") from None
