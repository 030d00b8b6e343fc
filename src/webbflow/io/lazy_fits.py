"""A picklable, lazily read view of one FITS image extension.

The header is read once, when the view is made: the byte offset of the data,
its on-disk (big-endian) type and BZERO/BSCALE. Each ``__getitem__`` then maps
the file read-only with ``numpy.memmap`` and copies out just the requested
tile, so a dask task on any worker reads only its own pixels (one strided read
from the page cache, not one seek per row) and no file handle is shared between
threads or processes. Compressed extensions fall back to astropy's
``ImageHDU.section``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from astropy.io import fits

_DISK = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class HduLayout(NamedTuple):
    """Where and how an image extension's data sit in its file."""

    offset: int
    disk_shape: tuple[int, ...]
    bitpix: int
    bzero: float
    bscale: float
    compressed: bool


def hdu_layout(hdu: Any) -> HduLayout:
    """The :class:`HduLayout` of an open image HDU (reads only its header)."""
    header = hdu.header
    return HduLayout(
        offset=int(hdu.fileinfo()["datLoc"]),
        disk_shape=tuple(int(header[f"NAXIS{i}"]) for i in range(header["NAXIS"], 0, -1)),
        bitpix=int(header["BITPIX"]),
        bzero=header.get("BZERO", 0),
        bscale=header.get("BSCALE", 1),
        compressed=isinstance(hdu, fits.CompImageHDU) or bool(header.get("ZIMAGE", False)),
    )


class FitsImageArray:
    """Array-like over extension ``ext`` of ``path``, optionally windowed in (y, x).

    Parameters
    ----------
    path
        The FITS file.
    ext
        Extension name (``"SCI"``) or index.
    shape
        Shape of the extension's data, numpy order, or of the window when
        ``window`` is given.
    dtype
        The dtype returned by indexing (data are scaled, then cast, on read).
    window
        Optional ``(y0, y1, x0, x1)`` crop of the last two axes, in the
        extension's pixel indices.
    layout
        The extension's :func:`hdu_layout`, when the caller has the file open
        already; otherwise the header is read here.
    """

    def __init__(
        self,
        path: str | Path,
        ext: str | int,
        shape: tuple[int, ...],
        dtype: np.dtype[Any] | type,
        window: tuple[int, int, int, int] | None = None,
        layout: HduLayout | None = None,
    ) -> None:
        self.path = str(path)
        self.ext = ext
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.window = window
        if layout is None:
            with fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
                layout = hdu_layout(hdul[ext])
        self._layout = layout

    def __getitem__(self, key: Any) -> np.ndarray:
        key = tuple(key) if isinstance(key, tuple) else (key,)
        if self.window is not None:
            y0, _, x0, _ = self.window
            key = key + (slice(None),) * (self.ndim - len(key))
            key = (*key[:-2], _shift(key[-2], y0, self.shape[-2]), _shift(key[-1], x0, self.shape[-1]))
        if self._layout.compressed:
            with fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
                return np.asarray(hdul[self.ext].section[key], dtype=self.dtype)
        raw = np.memmap(
            self.path,
            dtype=_DISK[self._layout.bitpix],
            mode="r",
            offset=self._layout.offset,
            shape=self._layout.disk_shape,
        )[key]
        return self._scale(np.array(raw))

    def _scale(self, raw: np.ndarray) -> np.ndarray:
        """Apply BZERO/BSCALE and cast to ``self.dtype`` (exactly, for unsigned ints)."""
        bits = raw.dtype.itemsize * 8
        if self._layout.bscale == 1 and raw.dtype.kind == "i" and self._layout.bzero == 2 ** (bits - 1):
            # the FITS convention for unsigned integers: flip the sign bit, no arithmetic
            unsigned = raw.astype(raw.dtype.newbyteorder("="), copy=False).view(f"u{raw.dtype.itemsize}")
            return (unsigned ^ np.array(1 << (bits - 1), unsigned.dtype)).astype(self.dtype, copy=False)
        data = raw.astype(self.dtype if self.dtype.kind == "f" else np.float64, copy=False)
        if self._layout.bscale != 1:
            data = data * self._layout.bscale
        if self._layout.bzero:
            data = data + self._layout.bzero
        return data.astype(self.dtype, copy=False)

    def __repr__(self) -> str:
        return f"FitsImageArray({self.path!r}, {self.ext!r}, shape={self.shape}, {self.dtype})"


def _shift(s: Any, offset: int, size: int) -> slice:
    """Slice ``s`` (on an axis of length ``size``) moved by ``offset``."""
    if isinstance(s, int | np.integer):
        i = int(s) + size if s < 0 else int(s)
        return slice(i + offset, i + offset + 1)
    start, stop, step = s.indices(size)
    if step != 1:
        raise IndexError("FitsImageArray supports unit-step slices only")
    return slice(start + offset, stop + offset)
