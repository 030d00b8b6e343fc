"""An xarray backend: ``xr.open_dataset("x_uncal.fits", engine="webbflow", chunks={})``.

``chunks={}`` keeps webbflow's tiling (the backend's preferred chunks);
without it xarray wraps the same lazy reader in its own lazy indexing.

Gives the same lazy Dataset as :func:`webbflow.io.fits_reader.open_exposure`
(ramps) or :func:`~webbflow.io.fits_reader.open_product` (rate, rateints,
cal), so ``xr.open_mfdataset`` can stack many exposures.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import xarray as xr
from astropy.io import fits
from xarray.backends import BackendEntrypoint

from webbflow.io.fits_reader import open_exposure, open_product


class WebbflowBackendEntrypoint(BackendEntrypoint):
    """Open JWST ``uncal``/``ramp``/``rate``/``rateints``/``cal`` FITS files lazily."""

    description: ClassVar[str] = "JWST exposures and products as lazy, tiled Datasets (webbflow)"
    url: ClassVar[str] = "https://pypi.org/project/webbflow/"
    open_dataset_parameters: ClassVar[tuple[str, ...]] = (
        "filename_or_obj",
        "drop_variables",
        "tile",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[Any],
        *,
        drop_variables: str | Iterable[str] | None = None,
        tile: int | None = None,
    ) -> xr.Dataset:
        path = Path(os.fspath(filename_or_obj))
        with fits.open(path, lazy_load_hdus=True) as hdul:
            ndim = hdul["SCI"].header.get("NAXIS", 0) if "SCI" in hdul else 0
        ds = open_exposure(path, tile=tile) if ndim == 4 else open_product(path, tile=tile)
        if drop_variables:
            names = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables)
            ds = ds.drop_vars(names, errors="ignore")
        for var in ds.data_vars.values():
            if var.chunks is not None:
                var.encoding["preferred_chunks"] = {
                    d: c[0] for d, c in zip(var.dims, var.chunks, strict=True)
                }
        ds.encoding["source"] = str(path)
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            name = os.fspath(filename_or_obj)
        except TypeError:
            return False
        return str(name).endswith((".fits", ".fits.gz", ".fit"))
