"""The exposure model: an ``xarray.Dataset`` of dask arrays, plus its metadata.

Ramp level (``uncal``/``ramp``): ``sci`` float32 DN and ``groupdq`` uint8 with
dims ``("integration", "group", "y", "x")``; ``pixeldq`` uint32 ``("y", "x")``;
optional ``zeroframe`` float32 ``("integration", "y", "x")``.
Rate level: ``sci``, ``err``, ``dq``, ``var_poisson``, ``var_rnoise`` with dims
``("y", "x")`` (rate) or ``("integration", "y", "x")`` (rateints).

``y``/``x`` coordinates are 0-based full-frame detector pixel indices (a
subarray starting at SUBSTRT1 = 1025 has ``x[0] == 1024``); ``integration`` and
``group`` are 1-based. Metadata are ``attrs["meta"]``, a nested JSON-able dict
with jwst datamodel paths. Functions here never modify their input.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import xarray as xr

from webbflow.errors import InputError
from webbflow.io.keywords import get_path, set_path

RAMP_DIMS: Final = ("integration", "group", "y", "x")
PIXEL_DIMS: Final = ("y", "x")


def get_meta(ds: xr.Dataset) -> dict[str, Any]:
    """The exposure's metadata dict (not a copy: treat as read-only)."""
    meta = ds.attrs.get("meta")
    return meta if isinstance(meta, dict) else {}


def meta_value(ds: xr.Dataset, path: str, default: Any = None) -> Any:
    """``meta.<path>`` of ``ds``, or ``default``."""
    return get_path(get_meta(ds), path, default)


def with_meta(ds: xr.Dataset, updates: Mapping[str, Any]) -> xr.Dataset:
    """A shallow copy of ``ds`` whose meta has ``updates`` (dotted paths) applied."""
    meta = copy.deepcopy(get_meta(ds))
    for path, value in updates.items():
        set_path(meta, path, value)
    out = ds.copy()
    out.attrs = {**ds.attrs, "meta": meta}
    return out


def pixel_coords(meta: Mapping[str, Any], ny: int, nx: int) -> dict[str, np.ndarray]:
    """Full-frame 0-based ``y``/``x`` coordinates of a (sub)array from its meta."""
    xstart = int(get_path(meta, "subarray.xstart", 1) or 1)
    ystart = int(get_path(meta, "subarray.ystart", 1) or 1)
    return {
        "y": np.arange(ystart - 1, ystart - 1 + ny, dtype=np.int32),
        "x": np.arange(xstart - 1, xstart - 1 + nx, dtype=np.int32),
    }


def window(ds: xr.Dataset) -> tuple[int, int, int, int]:
    """The exposure's full-frame window ``(y0, y1, x0, x1)``, half-open, 0-based."""
    y = ds["y"].values
    x = ds["x"].values
    return int(y[0]), int(y[-1]) + 1, int(x[0]), int(x[-1]) + 1


def tile_size(ds: xr.Dataset) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ``(y, x)`` chunk lengths of the exposure's tiles."""
    var = ds["sci"]
    if var.chunks is None:
        return (var.sizes["y"],), (var.sizes["x"],)
    chunks = dict(zip(var.dims, var.chunks, strict=True))
    return chunks["y"], chunks["x"]


def require_ramp(ds: xr.Dataset, source: str = "exposure") -> None:
    """Check ``ds`` is a ramp-level exposure; raise :class:`InputError` naming what is wrong."""
    for name, dims, dtype in (
        ("sci", RAMP_DIMS, np.float32),
        ("groupdq", RAMP_DIMS, np.uint8),
        ("pixeldq", PIXEL_DIMS, np.uint32),
    ):
        if name not in ds:
            raise InputError(f"{source}: missing variable {name!r} (a ramp needs sci, groupdq, pixeldq)")
        var = ds[name]
        if var.dims != dims:
            raise InputError(f"{source}: {name} has dims {var.dims}, expected {dims}")
        if var.dtype != dtype:
            raise InputError(f"{source}: {name} has dtype {var.dtype}, expected {np.dtype(dtype)}")


RATE_NAMES: Final = ("sci", "err", "dq", "var_poisson", "var_rnoise")


def split_rate(ds: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """The ``rate`` and ``rateints`` products of a rate-level exposure.

    Returns
    -------
    rate : xarray.Dataset
        ``sci, err, dq, var_poisson, var_rnoise`` with dims ``("y", "x")``.
    rateints : xarray.Dataset
        The same names (``_ints`` suffix removed) with dims ``("integration", "y", "x")``.
        Both keep ``ds``'s attrs.

    Raises
    ------
    InputError
        If ``ds`` lacks one of the rate or rateints variables.
    """
    ints_names = [f"{name}_ints" for name in RATE_NAMES]
    missing = [name for name in (*RATE_NAMES, *ints_names) if name not in ds]
    if missing:
        raise InputError(f"exposure: missing rate variable {missing[0]!r} (run ramp_fit first)")
    rate = ds[list(RATE_NAMES)]
    if "integration" in rate.coords:
        rate = rate.drop_vars("integration")
    rateints = ds[ints_names].rename(dict(zip(ints_names, RATE_NAMES, strict=True)))
    rate.attrs = dict(ds.attrs)
    rateints.attrs = dict(ds.attrs)
    return rate, rateints
