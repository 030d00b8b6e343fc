"""The ``bkg_subtract`` step: subtract the combined background exposures from an image.

jwst 3.0's ``BackgroundStep`` for imaging (see :mod:`.kernel` for the arithmetic). The
background exposures (``rate`` or ``rateints`` files, e.g. an Image2 association's
``background`` members) are given as ``bkg_list``; they must have the science exposure's
instrument, detector, filter, pupil and subarray. Each background is opened lazily and read
tile by tile with the science tiles: a science tile's task reads the same pixels of every
background, so memory grows with the tile and the number of backgrounds, never with the
frame. Without backgrounds the step is SKIPPED.

Self-calibration (MIRI imaging, where the thermal background dominates and dedicated
background exposures are often not taken): ``combine="median"`` with ``bkg_list`` the
association's *other* dithered science exposures (an Image2 association's ``selfcal``
members, ``webbflow asn make --selfcal``) subtracts their sigma-clipped median, which keeps
the sky and detector background (constant and gradients) and rejects the sources, each on
other pixels in each exposure. Give at least 3 others; the exposures must share the
science exposure's detector, filter and subarray.

With ``save_combined_background`` the combined background (``sci``, ``err``, ``dq``, lazy)
is put in ``attrs["combined_background"]`` for the runner to write as
``<root>_combinedbackground.fits``. jwst's WFSS and SOSS parameters do not apply to imaging
and are not offered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import dask.array as da
import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep, Step
from webbflow.engine.tiles import map_tiles
from webbflow.errors import InputError
from webbflow.io.fits_reader import open_product
from webbflow.model import get_meta, meta_value, tile_size
from webbflow.steps.background.kernel import ClippedMean, Subtracted, clipped_mean, subtract_background
from webbflow.steps.flat_field.step import SUFFIXES, require_rate

log = logging.getLogger("webbflow")

#: Keywords a background must share with the science exposure: (keyword, meta path).
MATCH_KEYWORDS: Final = (
    ("INSTRUME", "instrument.name"),
    ("DETECTOR", "instrument.detector"),
    ("FILTER", "instrument.filter"),
    ("PUPIL", "instrument.pupil"),
    ("SUBARRAY", "subarray.name"),
    ("SUBSTRT1", "subarray.xstart"),
    ("SUBSTRT2", "subarray.ystart"),
)


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of jwst 3.0's ``BackgroundStep`` that apply to imaging (same names, defaults)."""

    bkg_list: tuple[str, ...] | str | None = param(
        None, "Background exposures (rate/rateints files; a list or comma-separated)."
    )
    save_combined_background: bool = param(False, "Also write the combined background image.")
    sigma: float = param(3.0, "Clipping threshold, standard deviations.", minimum=0)
    maxiters: int | None = param(None, "Clipping iterations; None: until nothing more is clipped.")
    combine: str = param(
        "mean",
        "Combine the backgrounds by their sigma-clipped 'mean' (jwst) or 'median' (self-calibration "
        "from the association's other science exposures: selfcal members).",
        choices=("mean", "median"),
    )


class BackgroundStep(Step):
    """Subtract the sigma-clipped mean of background exposures; OR their DQ into the science DQ."""

    name = "bkg_subtract"
    Params = Params

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        super().__init__(params, **values)
        files = _as_list(getattr(self.params, "bkg_list", None))
        self.params = self.params.replace({"bkg_list": files or None}, self.name)

    @property
    def background_files(self) -> tuple[Path, ...]:
        """The background exposures, in the order given."""
        return tuple(Path(f) for f in getattr(self.params, "bkg_list", None) or ())

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """``ds`` with the combined background subtracted (lazy)."""
        require_rate(ds, self.name)
        files = self.background_files
        if not files:
            raise SkipStep("no background exposures (bkg_list is empty)")
        p: Any = self.params
        stats = {"sigma": p.sigma, "maxiters": p.maxiters}
        planes = [_background_plane(open_product(f), ds, f, stats) for f in files]
        stack = {
            name: xr.DataArray(
                da.stack([plane[name].data for plane in planes]), dims=("background", "y", "x")
            )
            for name in ClippedMean._fields
        }
        combined = map_tiles(
            clipped_mean,
            stack,
            {f"bkg_{f}": (("y", "x"), np.uint32 if f == "dq" else np.float32) for f in ClippedMean._fields},
            like=ds,
            kwargs={**stats, "statistic": p.combine},
            name="bkg-combine",
        )
        log.info(
            "bkg_subtract: subtracting the clipped %s of %d background exposure(s)", p.combine, len(files)
        )
        out: dict[str, xr.DataArray] = {}
        for suffix in SUFFIXES:
            names = {f: f"{f}{suffix}" for f in Subtracted._fields}
            if not all(n in ds for n in names.values()):
                continue
            dims = tuple(str(d) for d in ds[names["sci"]].dims)
            inputs = {f: ds[n] for f, n in names.items()} | combined
            result = map_tiles(
                subtract_background,
                inputs,
                {f"{f}{suffix}": (dims, np.uint32 if f == "dq" else np.float32) for f in Subtracted._fields},
                like=ds,
                kwargs={"do_not_use": dq.DO_NOT_USE},
                name=f"bkg-subtract{suffix}",
            )
            out.update(result)
        result_ds = ds.assign(out)
        if p.save_combined_background:
            result_ds.attrs["combined_background"] = _combined_dataset(combined, ds)
        return result_ds


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(s.strip() for s in items if s and s.strip())


def _background_plane(
    bkg: xr.Dataset, ds: xr.Dataset, path: Path, stats: Mapping[str, Any]
) -> dict[str, xr.DataArray]:
    """One background as 2-D planes (``ClippedMean`` fields) tiled like ``ds``; integrations reduced."""
    sci_meta, bkg_meta = get_meta(ds), get_meta(bkg)
    for keyword, mpath in MATCH_KEYWORDS:
        want = _norm(meta_value(ds, mpath))
        have = _norm(meta_value(bkg, mpath))
        if want != have:
            raise InputError(
                f"{path}: background has {keyword}={have or '(none)'} but the science exposure "
                f"{sci_meta.get('filename', '')} has {keyword}={want or '(none)'}"
            )
    if (bkg.sizes["y"], bkg.sizes["x"]) != (ds.sizes["y"], ds.sizes["x"]):
        raise InputError(
            f"{path}: background is {bkg.sizes['y']}x{bkg.sizes['x']} px, "
            f"the science exposure {ds.sizes['y']}x{ds.sizes['x']}"
        )
    for var in ("sci", "dq"):
        if var not in bkg:
            raise InputError(f"{path}: background has no {var.upper()} extension")
    ychunks, xchunks = tile_size(ds)
    bkg = bkg.chunk({"y": ychunks, "x": xchunks})
    sci = bkg["sci"]
    err2 = bkg["err"] ** 2 if "err" in bkg else xr.zeros_like(sci)
    # a file without the variance split counts its ERR² as read noise
    var_poisson = bkg["var_poisson"] if "var_poisson" in bkg else xr.zeros_like(sci)
    var_rnoise = bkg["var_rnoise"] if "var_rnoise" in bkg else err2  # noqa: SIM401 - a variable, not a key
    planes = {"sci": sci, "var_poisson": var_poisson, "var_rnoise": var_rnoise, "dq": bkg["dq"]}
    if sci.ndim == 2:
        return planes
    log.debug("bkg_subtract: %s: clipped mean over %d integrations", bkg_meta.get("filename"), sci.shape[0])
    like = xr.Dataset({"sci": sci.isel(integration=0, drop=True)})
    return map_tiles(
        clipped_mean,
        planes,
        {f: (("y", "x"), np.uint32 if f == "dq" else np.float32) for f in ClippedMean._fields},
        like=like,
        kwargs=dict(stats),
        name="bkg-integrations",
    )


def _combined_dataset(combined: Mapping[str, xr.DataArray], ds: xr.Dataset) -> xr.Dataset:
    """The combined background as a rate-level Dataset (``sci``, ``err``, ``dq``, variances)."""
    var_p, var_r = combined["bkg_var_poisson"], combined["bkg_var_rnoise"]
    data = {
        "sci": combined["bkg_sci"],
        "err": np.sqrt(var_p + var_r).astype(np.float32),
        "dq": combined["bkg_dq"],
        "var_poisson": var_p,
        "var_rnoise": var_r,
    }
    return xr.Dataset(data, coords={"y": ds.y, "x": ds.x}, attrs={"meta": dict(get_meta(ds))})


def _norm(value: Any) -> str:
    return "" if value is None else str(value).strip().upper()
