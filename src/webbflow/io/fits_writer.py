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
        primary = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
        primary.extend(_card_header(self.primary_cards), unique=True)
        tasks: list[Delayed] = []
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
                tasks.append(da.store(data, target, lock=False, compute=False))  # type: ignore[arg-type]
        return tasks

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
