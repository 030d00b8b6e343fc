"""A table product (``*_cat.ecsv``) computed in the same dask graph as the images it measures.

:class:`TableProduct` follows the product protocol of :mod:`webbflow.engine.execute`: its one task
computes the table (from a :class:`dask.delayed.Delayed`, so the mosaic tiles it reads are shared
with the ``i2d`` writes) and writes it under a temporary name; :meth:`finish` renames it into place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
from astropy.table import Table
from dask.delayed import Delayed

from webbflow.io.atomic import check_writable, commit, discard, temporary_name


def _write(table: Table, path: Path, fmt: str) -> None:
    table.write(path, format=fmt, overwrite=True)


@dataclass
class TableProduct:
    """An astropy table written as ECSV (or any astropy format) once the graph computes it.

    Parameters
    ----------
    table : dask.delayed.Delayed
        Evaluates to an :class:`astropy.table.Table`.
    path : Path
        Output file.
    overwrite : bool
        Replace an existing file.
    format : str
        astropy format name (default ``ascii.ecsv``).
    """

    table: Delayed
    path: Path
    overwrite: bool = False
    format: str = "ascii.ecsv"
    tmp: Path = field(init=False)

    def prepare(self) -> list[Delayed]:
        """Check the target; return the task that computes and writes the table."""
        check_writable(self.path, self.overwrite)
        self.tmp = temporary_name(self.path)
        write: Any = dask.delayed(_write, pure=False)
        return [write(self.table, self.tmp, self.format)]

    def finish(self) -> Path:
        """Move the written table into place."""
        commit(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Remove the partial file."""
        if hasattr(self, "tmp"):
            discard(self.tmp)
