"""Helpers for tests of webbflow and of code built on it (like ``xarray.testing``).

:func:`make_exposure` builds a small lazy ramp-level exposure from numpy
arrays with any tiling; :func:`raise_if_dask_computes` proves a block of code
only builds graphs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from webbflow.model import RAMP_DIMS

DEFAULT_META: dict[str, Any] = {
    "telescope": "JWST",
    "instrument": {
        "name": "NIRCAM",
        "detector": "NRCA1",
        "module": "A",
        "channel": "SHORT",
        "filter": "F200W",
        "pupil": "CLEAR",
    },
    "exposure": {
        "type": "NRC_IMAGE",
        "readpatt": "RAPID",
        "nints": 1,
        "ngroups": 10,
        "nframes": 1,
        "groupgap": 0,
        "frame_time": 10.73677,
        "group_time": 10.73677,
        "nsamples": 1,
        "sample_time": 10.0,
        "frame_divisor": 1,
        "zero_frame": False,
        "nresets_at_start": 1,
        "nresets_between_ints": 1,
        "drop_frames1": 0,
        "drop_frames3": 0,
        "start_time": 60000.0,
        "mid_time": 60000.001,
        "end_time": 60000.002,
    },
    "subarray": {
        "name": "FULL",
        "xstart": 1,
        "ystart": 1,
        "xsize": 2048,
        "ysize": 2048,
        "fastaxis": -1,
        "slowaxis": 2,
    },
    "observation": {"date": "2026-01-01", "time": "00:00:00.000"},
    "filename": "test_nrca1_uncal.fits",
}


def make_exposure(
    sci: np.ndarray,
    *,
    groupdq: np.ndarray | None = None,
    pixeldq: np.ndarray | None = None,
    zeroframe: np.ndarray | None = None,
    meta: Mapping[str, Any] | None = None,
    chunks: int | tuple[int, int] | None = None,
) -> xr.Dataset:
    """A lazy ramp-level exposure around ``sci`` (nint, ngroup, ny, nx).

    ``meta`` entries (nested dicts) update :data:`DEFAULT_META`; ``nints``,
    ``ngroups`` and the subarray size are filled from ``sci``'s shape, and a
    frame smaller than 2048×2048 is labelled a subarray at ``xstart``/``ystart``.
    ``chunks`` is the (y, x) tile (``None``: one tile).
    """
    sci = np.asarray(sci, dtype=np.float32)
    nint, ngroup, ny, nx = sci.shape
    full = _merge(DEFAULT_META, meta or {})
    full["exposure"].update(nints=nint, ngroups=ngroup)
    sub = full["subarray"]
    sub.update(xsize=nx, ysize=ny)
    if (ny, nx) != (2048, 2048) and sub.get("name") == "FULL":
        sub["name"] = "SUBARRAY"
    ty, tx = (ny, nx) if chunks is None else ((chunks, chunks) if isinstance(chunks, int) else chunks)
    ramp_chunks = (nint, ngroup, ty, tx)
    y0, x0 = sub["ystart"] - 1, sub["xstart"] - 1
    gdq = np.zeros(sci.shape, np.uint8) if groupdq is None else np.asarray(groupdq, np.uint8)
    pdq = np.zeros((ny, nx), np.uint32) if pixeldq is None else np.asarray(pixeldq, np.uint32)
    data: dict[str, Any] = {
        "sci": (RAMP_DIMS, da.from_array(sci, chunks=ramp_chunks)),
        "groupdq": (RAMP_DIMS, da.from_array(gdq, chunks=ramp_chunks)),
        "pixeldq": (("y", "x"), da.from_array(pdq, chunks=(ty, tx))),
    }
    if zeroframe is not None:
        data["zeroframe"] = (
            ("integration", "y", "x"),
            da.from_array(np.asarray(zeroframe, np.float32), chunks=(nint, ty, tx)),
        )
    coords = {
        "integration": np.arange(1, nint + 1, dtype=np.int32),
        "group": np.arange(1, ngroup + 1, dtype=np.int32),
        "y": np.arange(y0, y0 + ny, dtype=np.int32),
        "x": np.arange(x0, x0 + nx, dtype=np.int32),
    }
    return xr.Dataset(data, coords=coords, attrs={"meta": full})


def make_reference(
    variables: Mapping[str, tuple[tuple[str, ...], np.ndarray]],
    like: xr.Dataset,
    header: Mapping[str, Any] | None = None,
    name: str = "test_ref.fits",
) -> xr.Dataset:
    """A reference Dataset as the resolver would give it: cropped, tiled like ``like``."""
    ychunks, xchunks = (
        like["sci"].chunks[-2:] if like["sci"].chunks else ((like.sizes["y"],), (like.sizes["x"],))
    )
    data = {}
    for var, (dims, arr) in variables.items():
        chunks = tuple(ychunks if d == "y" else xchunks if d == "x" else -1 for d in dims)
        data[var] = (dims, da.from_array(np.asarray(arr), chunks=chunks))
    coords = {d: like.coords[d] for d in ("y", "x")}
    return xr.Dataset(
        data,
        coords=coords,
        attrs={"meta": {}, "header": dict(header or {}), "name": name, "path": name},
    )


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: (_merge(v, {}) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for k, v in update.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, Mapping) else v
    return out


class _CountingScheduler:
    def __init__(self, max_computes: int) -> None:
        self.total = 0
        self.max = max_computes

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.total += 1
        if self.total > self.max:
            raise RuntimeError(f"too many dask computations: {self.total} > {self.max}")
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[None]:
    """Fail if code inside computes dask graphs more than ``max_computes`` times."""
    with dask.config.set(scheduler=_CountingScheduler(max_computes)):
        yield
