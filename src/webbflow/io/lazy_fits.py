"""A picklable, lazily read view of one FITS image extension.

Each ``__getitem__`` opens the file, reads only the requested section
(``astropy.io.fits`` ``ImageHDU.section``, BZERO/BSCALE applied) and closes it,
so a dask task on any worker reads just its own tile and no file handle is
shared between threads or processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits


class FitsImageArray:
    """Array-like over extension ``ext`` of ``path``, optionally windowed in (y, x).

    Parameters
    ----------
    path
        The FITS file.
    ext
        Extension name (``"SCI"``) or index.
    shape
        Shape of the extension's data, numpy order.
    dtype
        The dtype returned by indexing (data are cast on read).
    window
        Optional ``(y0, y1, x0, x1)`` crop of the last two axes, in the
        extension's pixel indices; ``shape`` is then the cropped shape.
    """

    def __init__(
        self,
        path: str | Path,
        ext: str | int,
        shape: tuple[int, ...],
        dtype: np.dtype[Any] | type,
        window: tuple[int, int, int, int] | None = None,
    ) -> None:
        self.path = str(path)
        self.ext = ext
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.window = window

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        key = tuple(key) if isinstance(key, tuple) else (key,)
        if self.window is not None:
            y0, _, x0, _ = self.window
            key = key + (slice(None),) * (self.ndim - len(key))
            key = (
                *key[:-2],
                _shift(key[-2], y0, self.shape[-2]),
                _shift(key[-1], x0, self.shape[-1]),
            )
        with fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
            data = hdul[self.ext].section[key]
        return np.asarray(data, dtype=self.dtype)

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
