"""Open a reference file for an exposure: lazily, cropped to its window, tiled like it.

:func:`open_reference` checks that the file is FITS, has the extensions of its
reftype and matches the exposure (``DETECTOR``, covered window, ``READPATT``),
then returns the Dataset described in ``docs/architecture.md`` ("Reference
Datasets"). Values are passed through untouched (NaNs included) except DQ
arrays, which are translated to the standard JWST bits through the file's
``DQ_DEF`` table.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import Any, Final, NamedTuple

import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits

from webbflow import dq
from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError
from webbflow.io.fits_reader import open_fits
from webbflow.io.keywords import header_to_meta
from webbflow.io.lazy_fits import FitsImageArray, hdu_layout
from webbflow.io.reffiles.emicorr import open_emicorr
from webbflow.io.reffiles.photom import open_photom_table
from webbflow.io.reffiles.rscd import open_rscd_table
from webbflow.model import meta_value, tile_size, window


class Var(NamedTuple):
    """One variable of a reference Dataset: where it comes from and its layout."""

    name: str
    ext: str
    dims: tuple[str, ...]
    dtype: type
    required: bool = True


_YX: Final = ("y", "x")

#: The variables of each reftype's Dataset (architecture.md, "Reference Datasets").
LAYOUTS: Final[dict[str, tuple[Var, ...]]] = {
    "mask": (Var("dq", "DQ", _YX, np.uint32),),
    "saturation": (Var("sci", "SCI", _YX, np.float32), Var("dq", "DQ", _YX, np.uint32, False)),
    "superbias": (
        Var("sci", "SCI", _YX, np.float32),
        Var("err", "ERR", _YX, np.float32, False),
        Var("dq", "DQ", _YX, np.uint32, False),
    ),
    "linearity": (
        Var("coeffs", "COEFFS", ("coeff", *_YX), np.float32),
        Var("dq", "DQ", _YX, np.uint32, False),
    ),
    "dark": (
        Var("sci", "SCI", ("dark_group", *_YX), np.float32),
        Var("dq", "DQ", _YX, np.uint32, False),
    ),
    "gain": (Var("sci", "SCI", _YX, np.float32),),
    "readnoise": (Var("sci", "SCI", _YX, np.float32),),
    "ipc": (Var("kernel", "SCI", ("ky", "kx"), np.float32),),
    "flat": (
        Var("sci", "SCI", _YX, np.float32),
        Var("err", "ERR", _YX, np.float32, False),
        Var("dq", "DQ", _YX, np.uint32, False),
    ),
    "area": (Var("sci", "SCI", _YX, np.float32),),
    # MIRI RESET: (NINTS, NGROUPS) planes of the reset anomaly; DQ is per pixel
    "reset": (
        Var("sci", "SCI", ("reset_integration", "reset_group", *_YX), np.float32),
        Var("dq", "DQ", _YX, np.uint32, False),
    ),
}

#: MIRI darks (``DarkMIRIModel``): a 4-D SCI (integration 1, integrations after the first, …)
#: and a DQ per integration (NINTS, 1, y, x), or 2-D in older files; :func:`open_reference`
#: ORs the DQ planes into one (y, x) array, as jwst's dark step does.
MIRI_DARK_LAYOUT: Final = (
    Var("sci", "SCI", ("dark_integration", "dark_group", *_YX), np.float32),
    Var("dq", "DQ", ("dark_dq_integration", "dark_dq_group", *_YX), np.uint32, False),
)

#: Reference types that are binary tables, not images: opened whole, not cropped or tiled.
TABLE_REFTYPES: Final = ("photom", "rscd")

_ANY: Final = {"", "ANY", "N/A", "NONE"}
_SKIP_CARDS: Final = {"HISTORY", "COMMENT", ""}


def _norm(value: Any) -> str:
    return str(value).strip().upper() if value is not None else ""


def check_match(path: Path, header: fits.Header, shape: tuple[int, int], ds: xr.Dataset) -> tuple[int, int]:
    """Check the reference matches ``ds``; return its full-frame origin ``(y0, x0)`` (0-based).

    Raises
    ------
    ReferenceFileError
        On a ``DETECTOR`` or ``READPATT`` mismatch, or if the file's window does
        not contain the exposure's.
    """
    ref_det, exp_det = _norm(header.get("DETECTOR")), _norm(meta_value(ds, "instrument.detector"))
    if ref_det not in _ANY | {"MULTIPLE"} and exp_det and ref_det != exp_det:
        raise ReferenceFileError(f"{path}: reference is for DETECTOR={ref_det}, exposure is {exp_det}")
    ref_rp, exp_rp = _norm(header.get("READPATT")), _norm(meta_value(ds, "exposure.readpatt"))
    if ref_rp not in _ANY and exp_rp and ref_rp != exp_rp:
        raise ReferenceFileError(f"{path}: reference is for READPATT={ref_rp}, exposure is {exp_rp}")
    ry0 = int(header.get("SUBSTRT2", 1) or 1) - 1
    rx0 = int(header.get("SUBSTRT1", 1) or 1) - 1
    ny, nx = shape
    y0, y1, x0, x1 = window(ds)
    if y0 < ry0 or x0 < rx0 or y1 > ry0 + ny or x1 > rx0 + nx:
        raise ReferenceFileError(
            f"{path}: reference covers full-frame pixels x {rx0 + 1}-{rx0 + nx}, y {ry0 + 1}-{ry0 + ny} "
            f"(SUBARRAY={header.get('SUBARRAY', '?')}), which does not contain the exposure's "
            f"x {x0 + 1}-{x1}, y {y0 + 1}-{y1} (SUBARRAY={meta_value(ds, 'subarray.name', '?')})"
        )
    return ry0, rx0


def dq_translation(path: Path, hdul: fits.HDUList) -> list[tuple[int, int]]:
    """``(file_value, standard_value)`` pairs from ``DQ_DEF``; ``[]`` if already standard."""
    if "DQ_DEF" not in hdul:
        return []
    table = hdul["DQ_DEF"].data
    try:
        rows = [(int(v), str(n).strip().upper()) for v, n in zip(table["VALUE"], table["NAME"], strict=True)]
    except (KeyError, TypeError):
        raise ReferenceFileError(f"{path}: DQ_DEF table lacks VALUE/NAME columns") from None
    pairs = [(value, dq.FLAGS[name]) for value, name in rows if name in dq.FLAGS]
    return [] if all(a == b for a, b in pairs) else pairs


def _translate(block: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(block.shape, np.uint32)
    for value, standard in pairs:
        out |= np.where((block & np.uint32(value)) != 0, np.uint32(standard), np.uint32(0))
    return out


def _dark_layout(hdul: fits.HDUList) -> tuple[Var, ...]:
    """The dark layout of a file: 3-D SCI (near-infrared) or 4-D (MIRI, :data:`MIRI_DARK_LAYOUT`)."""
    if "SCI" not in hdul or hdul["SCI"].header.get("NAXIS", 0) != 4:
        return LAYOUTS["dark"]
    dq_ndim = hdul["DQ"].header.get("NAXIS", 0) if "DQ" in hdul else 0
    return MIRI_DARK_LAYOUT if dq_ndim != 2 else (MIRI_DARK_LAYOUT[0], LAYOUTS["dark"][1])


def open_reference(ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
    """The reference ``ref`` as a lazy Dataset cropped to ``ds``'s window, tiled like ``ds``.

    Parameters
    ----------
    ref
        The resolved file; ``ref.reftype`` selects the layout (:data:`LAYOUTS`).
    ds
        The exposure: its ``y``/``x`` coordinates give the window, its ``sci``
        chunks the tiling.

    Returns
    -------
    xarray.Dataset
        Variables per :data:`LAYOUTS` (a 4-D MIRI dark: :data:`MIRI_DARK_LAYOUT`, its
        ``dq`` ORed to (y, x)); coords ``y``/``x`` equal ``ds``'s;
        ``attrs``: ``header`` (primary header dict), ``meta``, ``name`` (the
        label), ``path``.
    """
    path = Path(ref.path)
    if ref.reftype == "rscd":
        return open_rscd_table(ref, ds)
    if ref.reftype == "emicorr":  # ASDF waveforms, no pixels
        return open_emicorr(ref, ds)
    if ref.reftype in TABLE_REFTYPES:
        return open_photom_table(ref, ds)
    if ref.reftype not in LAYOUTS:
        raise ReferenceFileError(
            f"{path}: cannot open reftype {ref.reftype!r} (supported: {', '.join(LAYOUTS)})"
        )
    layout = LAYOUTS[ref.reftype]
    with open_fits(path, expected=f"a {ref.reftype} reference file", error=ReferenceFileError) as hdul:
        header = hdul[0].header
        if ref.reftype == "dark":
            layout = _dark_layout(hdul)
        for var in layout:
            if var.required and var.ext not in hdul:
                raise ReferenceFileError(
                    f"{path}: no {var.ext} extension, expected one in a {ref.reftype} reference file"
                )
        present = [v for v in layout if v.ext in hdul and hdul[v.ext].header.get("NAXIS", 0) > 0]
        shapes = {v.ext: tuple(hdul[v.ext].shape) for v in present}
        for var in present:
            if len(shapes[var.ext]) != len(var.dims):
                raise ReferenceFileError(
                    f"{path}: {var.ext} has shape {shapes[var.ext]}, expected {len(var.dims)} "
                    f"dimensions {var.dims} in a {ref.reftype} reference file"
                )
        spatial = [shapes[v.ext][-2:] for v in present if v.dims[-2:] == _YX]
        if spatial and any(s != spatial[0] for s in spatial):
            raise ReferenceFileError(f"{path}: image extensions differ in shape {spatial}")
        origin = check_match(path, header, spatial[0], ds) if spatial else (0, 0)
        pairs = dq_translation(path, hdul) if any(v.name == "dq" for v in present) else []
        layouts = {v.ext: hdu_layout(hdul[v.ext]) for v in present}
        header_dict = {k: v for k, v in header.items() if k not in _SKIP_CARDS}
        meta, _ = header_to_meta(header)
    y0, y1, x0, x1 = window(ds)
    crop = (y0 - origin[0], y1 - origin[0], x0 - origin[1], x1 - origin[1])
    ychunks, xchunks = tile_size(ds)
    mtime = path.stat().st_mtime_ns
    data: dict[str, Any] = {}
    for var in present:
        shape = shapes[var.ext]
        if var.dims[-2:] != _YX:  # small, untiled (IPC kernel)
            arr = FitsImageArray(path, var.ext, shape, var.dtype, layout=layouts[var.ext])[
                tuple(slice(None) for _ in shape)
            ]
            data[var.name] = (var.dims, arr)
            continue
        cropped = (*shape[:-2], y1 - y0, x1 - x0)
        lazy = da.from_array(
            FitsImageArray(path, var.ext, cropped, var.dtype, window=crop, layout=layouts[var.ext]),
            chunks=(*shape[:-2], ychunks, xchunks),
            asarray=False,
            name=f"ref-{path.name}-{var.ext}-{mtime}-{crop}-{ychunks}-{xchunks}",
            meta=np.empty((0,) * len(shape), var.dtype),
        )
        if var.name == "dq" and pairs:
            lazy = lazy.map_blocks(_translate, pairs, dtype=np.uint32)
        if var.name == "dq" and lazy.ndim == 4:  # MIRI dark: OR of each integration's first plane
            lazy = functools.reduce(operator.or_, [lazy[i, 0] for i in range(lazy.shape[0])])
            data[var.name] = (_YX, lazy)
            continue
        data[var.name] = (var.dims, lazy)
    for var in layout:  # optional variables missing from the file: neutral values
        if var.name not in data and var.dims[-2:] == _YX:
            data[var.name] = (
                _YX,
                da.zeros((y1 - y0, x1 - x0), dtype=var.dtype, chunks=(ychunks, xchunks)),
            )
    coords = {"y": ds["y"].values, "x": ds["x"].values}
    attrs = {"header": header_dict, "meta": meta, "name": ref.label, "path": str(path)}
    return xr.Dataset(data, coords=coords, attrs=attrs)
