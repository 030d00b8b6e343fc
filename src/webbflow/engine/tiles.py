"""Map a pure numpy kernel over an exposure's ``(y, x)`` tiles.

:func:`map_tiles` is the one bridge between kernels (numpy in, NamedTuple of
numpy out, one tile) and the lazy exposure: every input DataArray ends in
``("y", "x")`` (or is a 1-D ``y``/``x`` coordinate) and shares the exposure's
tiling; leading dims (integration, group, coefficient, ...) are whole in each
tile. With ``depth`` > 0 each tile is given a halo from its neighbours
(``dask.array.overlap``, no padding at the detector edge) and the outputs are
trimmed back, so neighbour-dependent kernels are exact across tile edges.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

OutputSpec = tuple[Sequence[str], Any]


def _as_tiled(var: xr.DataArray, ychunks: tuple[int, ...], xchunks: tuple[int, ...]) -> da.Array:
    """The dask array of ``var`` with whole leading dims and the exposure's (y, x) chunks."""
    dims = var.dims
    if dims[-2:] == ("y", "x"):
        chunks: tuple[Any, ...] = (*(-1,) * (var.ndim - 2), ychunks, xchunks)
    elif dims == ("y",):
        chunks = (ychunks,)
    elif dims == ("x",):
        chunks = (xchunks,)
    else:
        raise ValueError(f"map_tiles inputs must end in ('y', 'x') or be 'y'/'x', got {dims}")
    data = var.data if isinstance(var.data, da.Array) else da.from_array(np.asarray(var.data))
    return data.rechunk(chunks)


def _call(
    *blocks: np.ndarray, kernel: Callable[..., Any], names: Sequence[str], params: Mapping[str, Any]
) -> tuple[np.ndarray, ...]:
    result = kernel(**dict(zip(names, blocks, strict=True)), **params)
    return tuple(result)


def map_tiles(
    kernel: Callable[..., Any],
    inputs: Mapping[str, xr.DataArray],
    outputs: Mapping[str, OutputSpec],
    *,
    like: xr.Dataset,
    depth: int = 0,
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> dict[str, xr.DataArray]:
    """Apply ``kernel`` to every tile; return its outputs as lazy DataArrays.

    Parameters
    ----------
    kernel
        Called as ``kernel(**{input_name: tile_array}, **kwargs)`` and returning a
        tuple (e.g. a NamedTuple) of arrays in the order of ``outputs``. Input
        tiles keep their leading dims; ``y``/``x`` coordinate inputs arrive as
        1-D int arrays of the tile's full-frame pixel indices (halo included).
    inputs
        Keyword name -> DataArray ending in ``("y", "x")``, or ``ds.y``/``ds.x``.
    outputs
        Output name -> ``(dims, dtype)``; dims end in ``("y", "x")`` and their
        leading sizes are taken from ``like`` (e.g. ``("integration", "y", "x")``).
    like
        The exposure whose tiling and coordinates the outputs share.
    depth
        Halo width, pixels, on each side of each tile (0: none).
    kwargs
        Scalars and small arrays passed to every kernel call.
    name
        Prefix of the dask task names (defaults to the kernel's name).

    Returns
    -------
    dict of str to xarray.DataArray
    """
    kwargs = dict(kwargs or {})
    ychunks, xchunks = _exposure_chunks(like)
    names = list(inputs)
    arrays = [_as_tiled(inputs[n], ychunks, xchunks) for n in names]
    dims_of = [tuple(str(d) for d in inputs[n].dims) for n in names]
    if depth:
        arrays = [_overlap(a, d, depth) for a, d in zip(arrays, dims_of, strict=True)]
    # one index letter per input dim; all share "y" and "x", leading dims are contracted
    blockwise_args: list[Any] = []
    for i, (arr, dims) in enumerate(zip(arrays, dims_of, strict=True)):
        blockwise_args += [arr, _index(dims, i)]
    token = name or getattr(kernel, "__name__", "kernel")
    holder = da.blockwise(
        _call,
        ("Y", "X"),
        *blockwise_args,
        kernel=kernel,
        names=names,
        params=kwargs,
        concatenate=True,
        dtype=object,
        meta=np.empty((0, 0), dtype=object),
        name=f"{token}-{da.core.tokenize(kernel, names, kwargs, *arrays)}",
    )
    # holder chunks = (possibly overlapped) y, x chunks
    hy, hx = holder.chunks
    out: dict[str, xr.DataArray] = {}
    for k, (out_name, (out_dims, dtype)) in enumerate(outputs.items()):
        dims = tuple(out_dims)
        if dims[-2:] != ("y", "x"):
            raise ValueError(f"output {out_name!r} dims must end in ('y', 'x'), got {dims}")
        lead_sizes = tuple(like.sizes[d] for d in dims[:-2])
        arr = da.map_blocks(
            operator.itemgetter(k),
            holder,
            chunks=(*((s,) for s in lead_sizes), hy, hx),
            new_axis=list(range(len(lead_sizes))) or None,
            dtype=dtype,
            meta=np.empty((0,) * len(dims), dtype=dtype),
            name=f"{token}-{out_name}-{da.core.tokenize(holder, k)}",
        )
        if depth:
            axes = {len(dims) - 2: depth, len(dims) - 1: depth}
            arr = da.overlap.trim_internal(arr, axes, boundary="none")
        coords = {d: like.coords[d] for d in dims if d in like.coords}
        out[out_name] = xr.DataArray(arr, dims=dims, coords=coords)
    return out


def _index(dims: Sequence[str], i: int) -> tuple[str, ...]:
    return tuple(d.upper() if d in ("y", "x") else f"{d}{i}" for d in dims)


def _overlap(arr: da.Array, dims: Sequence[str], depth: int) -> da.Array:
    axes = {ax: (depth if d in ("y", "x") else 0) for ax, d in enumerate(dims)}
    return da.overlap.overlap(arr, depth=axes, boundary={ax: "none" for ax in axes})


def _exposure_chunks(like: xr.Dataset) -> tuple[tuple[int, ...], tuple[int, ...]]:
    for var in like.data_vars.values():
        if var.dims[-2:] == ("y", "x") and var.chunks is not None:
            chunks = dict(zip(var.dims, var.chunks, strict=True))
            return chunks["y"], chunks["x"]
    return (like.sizes["y"],), (like.sizes["x"],)
