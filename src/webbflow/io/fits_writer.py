"""Stream dask arrays into a FITS file, tile by tile, with bounded memory.

The file layout (headers and the byte offset of every extension's data) is
written first; each dask block is then written straight into its place with a
small memory map, so a 2048×2048×10-group ramp never has to exist in memory and
workers on a shared filesystem can write in parallel. Small binary tables are
appended afterwards, and the file is renamed into place only when complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from astropy.io import fits
from dask.delayed import Delayed

from webbflow.io.atomic import check_writable, commit, discard, temporary_name

BLOCK = 2880

#: numpy dtype -> (BITPIX, BZERO or None, big-endian on-disk dtype)
_ON_DISK: dict[str, tuple[int, int | None, str]] = {
    "uint8": (8, None, "u1"),
    "int16": (16, None, ">i2"),
    "uint16": (16, 32768, ">i2"),
    "int32": (32, None, ">i4"),
    "uint32": (32, 2147483648, ">i4"),
    "float32": (-32, None, ">f4"),
    "float64": (-64, None, ">f8"),
}


@dataclass
class ImageExtension:
    """One image extension to stream: its name, a dask/numpy array and header cards."""

    name: str
    data: Any
    cards: Sequence[tuple[str, Any, str]] = ()


@dataclass
class TableExtension:
    """A small binary table appended after the images (e.g. GROUP, INT_TIMES)."""

    name: str
    data: np.ndarray
    cards: Sequence[tuple[str, Any, str]] = ()


class _MemmapTarget:
    """``da.store`` target writing each block into the file at a fixed offset (picklable)."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], disk: str, dtype: str) -> None:
        self.path, self.offset, self.shape, self.disk, self.dtype = (
            str(path),
            offset,
            shape,
            disk,
            dtype,
        )

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        out = np.memmap(self.path, mode="r+", dtype=self.disk, offset=self.offset, shape=self.shape)
        value = np.asarray(value, dtype=self.dtype)
        if self.dtype in ("uint16", "uint32"):
            # FITS stores unsigned ints as signed with BZERO = 2**(bits-1): flip the sign bit
            signed = "int16" if self.dtype == "uint16" else "int32"
            value = (value ^ np.array(1 << (value.dtype.itemsize * 8 - 1), self.dtype)).view(signed)
        out[key] = value
        out.flush()
        del out


def _write_tile(targets: Sequence[_MemmapTarget], where: Sequence[tuple[slice, ...]], *blocks: Any) -> None:
    for target, key, block in zip(targets, where, blocks, strict=True):
        target[key] = block


def _store_by_tile(tiled: Sequence[tuple[da.Array, _MemmapTarget]]) -> list[Delayed]:
    """Delayed writes of ``(array, target)`` pairs: one task per (y, x) tile for all arrays.

    Arrays tiled like the first one in their last two dims (SCI, ERR, DQ, VAR_* of a product,
    all planes of a mosaic tile) are written together, so every block of a tile comes from the
    one upstream task that made them (e.g. a mosaic tile's finalize) while it is in memory:
    separate stores let the scheduler keep every tile's planes until the last plane's turn.
    Other arrays are stored on their own (``da.store``).
    """
    if not tiled:
        return []
    yx = tiled[0][0].chunks[-2:]
    grouped = [
        (a, t)
        for a, t in tiled
        if a.ndim >= 2 and a.chunks[-2:] == yx and a.numblocks[:-2] == (1,) * (a.ndim - 2)
    ]
    rest = [(a, t) for a, t in tiled if all(a is not g for g, _ in grouped)]
    tasks: list[Delayed] = [da.store(a, t, lock=False, compute=False) for a, t in rest]  # type: ignore[arg-type]
    if not grouped:
        return tasks
    blocks = [a.to_delayed(optimize_graph=False).reshape(a.numblocks[-2:]) for a, _ in grouped]
    targets = [t for _, t in grouped]
    ystarts = np.cumsum((0, *yx[0]))
    xstarts = np.cumsum((0, *yx[1]))
    write: Any = dask.delayed(_write_tile, pure=False)
    for j in range(len(yx[0])):
        for k in range(len(yx[1])):
            ys = slice(int(ystarts[j]), int(ystarts[j + 1]))
            xs = slice(int(xstarts[k]), int(xstarts[k + 1]))
            where = [(*(slice(None),) * (a.ndim - 2), ys, xs) for a, _ in grouped]
            tasks.append(write(targets, where, *[b[j, k] for b in blocks]))
    return tasks


def _card_header(cards: Iterable[tuple[str, Any, str]]) -> fits.Header:
    header = fits.Header()
    for key, value, comment in cards:
        if key in header:
            continue
        header[key] = (value, comment) if comment else value
    return header


def _image_header(ext: ImageExtension) -> tuple[bytes, tuple[int, ...], str, str]:
    dtype = np.dtype(ext.data.dtype).name
    if dtype not in _ON_DISK:
        raise TypeError(f"extension {ext.name}: cannot write dtype {dtype} to FITS")
    bitpix, bzero, disk = _ON_DISK[dtype]
    shape = tuple(int(s) for s in ext.data.shape)
    header = fits.Header()
    header["XTENSION"] = ("IMAGE", "Image extension")
    header["BITPIX"] = bitpix
    header["NAXIS"] = len(shape)
    for i, n in enumerate(reversed(shape), start=1):
        header[f"NAXIS{i}"] = n
    header["PCOUNT"] = 0
    header["GCOUNT"] = 1
    if bzero is not None:
        header["BZERO"] = bzero
        header["BSCALE"] = 1
    header["EXTNAME"] = (ext.name, "extension name")
    header.extend(_card_header(ext.cards), unique=True)
    return header.tostring(padding=True).encode("ascii"), shape, disk, dtype


@dataclass
class FitsProduct:
    """A FITS file being written: call :meth:`prepare`, compute the tasks, then :meth:`finish`."""

    path: Path
    primary_cards: Sequence[tuple[str, Any, str]]
    images: Sequence[ImageExtension]
    tables: Sequence[TableExtension] = ()
    overwrite: bool = False
    tmp: Path = field(init=False)

    def prepare(self) -> list[Delayed]:
        """Write the headers and the file's full size; return the delayed tile writes."""
        check_writable(self.path, self.overwrite)
        self.tmp = temporary_name(self.path)
        primary = self._primary_header()
        tiled: list[tuple[da.Array, _MemmapTarget]] = []
        with self.tmp.open("wb") as f:
            f.write(primary.tostring(padding=True).encode("ascii"))
            for ext in self.images:
                raw, shape, disk, dtype = _image_header(ext)
                f.write(raw)
                offset = f.tell()
                nbytes = int(np.prod(shape)) * np.dtype(disk).itemsize
                padded = -(-nbytes // BLOCK) * BLOCK
                f.seek(offset + padded - 1)
                f.write(b"\0")
                if nbytes == 0:
                    continue
                target = _MemmapTarget(self.tmp, offset, shape, disk, dtype)
                data = ext.data if isinstance(ext.data, da.Array) else da.from_array(np.asarray(ext.data))
                tiled.append((data, target))
        return _store_by_tile(tiled)

    def _primary_header(self) -> fits.Header:
        primary = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
        primary.extend(_card_header(self.primary_cards), unique=True)
        return primary

    def headers(self) -> dict[str, fits.Header]:
        """The headers as a reader of the finished file will parse them, by extension name.

        They go through the same FITS text as the file (so floats round like the file's),
        which lets a lazy graph stand in for reading the product back (:mod:`webbflow.io.reopen`).
        """
        out = {"PRIMARY": fits.Header.fromstring(self._primary_header().tostring(padding=True))}
        for ext in self.images:
            out[ext.name] = fits.Header.fromstring(_image_header(ext)[0].decode("ascii"))
        return out

    def finish(self) -> Path:
        """Append the tables and move the file into place."""
        for table in self.tables:
            hdu = fits.BinTableHDU(table.data, header=_card_header(table.cards), name=table.name)
            fits.append(self.tmp, hdu.data, hdu.header)
        commit(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Remove the partial file."""
        if hasattr(self, "tmp"):
            discard(self.tmp)
