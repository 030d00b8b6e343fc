"""Image3: a list of calibrated exposures (``cal``) to a mosaic (``i2d``) and a source catalog.

jwst's ``calwebb_image3`` order::

    tweakreg → skymatch → outlier_detection → resample → source_catalog

The first three transform the list of exposures together (:class:`~webbflow.engine.list_step.
ListStep`); ``resample`` drizzles them onto one tiled output grid; ``source_catalog`` measures
the mosaic tile by tile. Everything stays lazy: one dask graph writes every ``crf``, the
``i2d`` mosaic and the catalog, each output tile reading only the input tiles that overlap it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from webbflow.engine.step import Pipeline, Rerun, Resolver, Step, get_step
from webbflow.errors import InputError, UsageError, suggest
from webbflow.model import get_meta, meta_value, with_meta
from webbflow.steps.resample.step import ResampleStep

if TYPE_CHECKING:
    from webbflow.graphs.runner import RunOptions

log = logging.getLogger("webbflow")


@dataclass(frozen=True)
class Image3Result:
    """The lazy outputs of :meth:`Image3.run`.

    Attributes
    ----------
    crf : list of xarray.Dataset
        The input exposures after tweakreg, skymatch and outlier_detection, in input order.
    mosaic : xarray.Dataset or None
        The resampled mosaic (``None`` when resample is skipped). The source catalog is
        measured on the written mosaic (:func:`run_image3`), so that its two passes (background
        boxes, then tiles) read the file instead of resampling twice.
    """

    crf: list[xr.Dataset]
    mosaic: xr.Dataset | None


class Image3(Pipeline):
    """The Image3 pipeline for near-infrared imaging.

    Examples
    --------
    >>> from webbflow.graphs.image3 import Image3
    >>> list(Image3(steps={"tweakreg": {"fitgeometry": "shift"}}).steps)
    ['tweakreg', 'skymatch', 'outlier_detection', 'resample', 'source_catalog']
    """

    name = "image3"
    cal_step = "image3"
    step_names = ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")

    def __init__(self, steps: Mapping[str, Mapping[str, Any]] | None = None, **values: Any) -> None:
        # not Pipeline.__init__: resample is not an exposure-to-exposure Step
        Step.__init__(self, **values)
        config = dict(steps or {})
        for key in config:
            if key not in self.step_names:
                raise UsageError(f"{self.name} has no step {key!r}{suggest(key, self.step_names)}")
        self.steps: dict[str, Any] = {
            name: (ResampleStep if name == "resample" else get_step(name))(**dict(config.get(name, {})))
            for name in self.step_names
        }

    @property
    def all_reftypes(self) -> tuple[str, ...]:
        """Image3 uses no reference files."""
        return ()

    def __call__(
        self, ds: xr.Dataset, resolver: Resolver | None = None, *, rerun: Rerun | None = None
    ) -> xr.Dataset:
        """Image3 of one exposure: its mosaic (see :meth:`run` for lists)."""
        result = self.run([ds])
        if result.mosaic is None:
            raise UsageError("image3: resample was skipped, so there is no mosaic to return")
        return result.mosaic

    def run(self, inputs: Sequence[xr.Dataset]) -> Image3Result:
        """Build the lazy Image3 graph of ``inputs`` (cal Datasets with ``attrs["wcs"]``)."""
        crf = self.align(inputs)
        return Image3Result(crf, self.mosaic(crf))

    def align(self, inputs: Sequence[xr.Dataset]) -> list[xr.Dataset]:
        """tweakreg → skymatch → outlier_detection on ``inputs`` (lazy): the ``crf`` exposures."""
        exposures = list(inputs)
        if not exposures:
            raise UsageError("image3: no exposures given")
        check_inputs(exposures)
        for name in ("tweakreg", "skymatch", "outlier_detection"):
            exposures = self.steps[name](exposures)
        return exposures

    def mosaic(self, crf: Sequence[xr.Dataset]) -> xr.Dataset | None:
        """The resampled mosaic of ``crf`` (lazy), or ``None`` when resample is skipped."""
        return None if self.steps["resample"].params.skip else self.steps["resample"](list(crf))


def check_inputs(exposures: Sequence[xr.Dataset]) -> None:
    """Refuse exposures Image3 cannot combine: no WCS, not 2-D, not calibrated, or mixed optics.

    Raises
    ------
    InputError
        One line naming the exposure (its file) and what is wrong.
    """
    first: tuple[str, tuple[str, ...]] | None = None
    for ds in exposures:
        source = str(ds.attrs.get("source") or get_meta(ds).get("filename") or "exposure")
        if ds.attrs.get("wcs") is None:
            raise InputError(
                f"{source}: has no WCS (no ASDF extension with meta.wcs); run image2 (assign_wcs) first"
            )
        if "sci" not in ds or ds["sci"].dims != ("y", "x"):
            raise InputError(f"{source}: image3 needs 2-D cal images (y, x); got {ds['sci'].dims}")
        optics = tuple(
            str(meta_value(ds, f"instrument.{k}", "") or "").strip().upper()
            for k in ("name", "filter", "pupil")
        )
        if first is None:
            first = (source, optics)
            continue
        for kw, a, b in zip(("INSTRUME", "FILTER", "PUPIL"), first[1], optics, strict=True):
            if a != b:
                raise InputError(
                    f"{source}: {kw}={b or '(none)'} but {first[0]} has {kw}={a or '(none)'}; "
                    "one image3 run combines one instrument, filter and pupil"
                )


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class _Job:
    """What one Image3 run reads and how its outputs are named."""

    product: str
    members: tuple[Path, ...]
    asn_id: str | None


def _job(inputs: Sequence[str | Path], allow_outside: bool) -> _Job:
    from webbflow.io.asn import check_image3_members, make_association, read_association

    paths = [Path(p) for p in inputs]
    if not paths:
        raise UsageError("image3: no input given (a level-3 association, or cal files)")
    if any(p.suffix.lower() == ".json" for p in paths):
        if len(paths) != 1:
            raise UsageError("image3: give one association file, or cal files, not both")
        asn = read_association(paths[0], allow_outside=allow_outside)
        if asn.kind == "image2":
            raise InputError(f"{paths[0]}: a level-2 (image2) association; run it with 'webbflow run image2'")
    else:
        asn = make_association(paths, kind="image3")
    check_image3_members(asn)
    members = tuple(m.path for m in asn.products[0].by_type("science"))
    if not members:
        where = f"{asn.path}: " if asn.path is not None else ""
        raise InputError(f"{where}product {asn.products[0].name!r} has no science members")
    return _Job(asn.products[0].name, members, asn.asn_id)


def crf_name(member: Path, asn_id: str | None) -> str:
    """jwst's name for the outlier-flagged copy of ``member``: ``<root>_<asn_id>_crf.fits``."""
    from webbflow.io.asn import exposure_root

    root = exposure_root(member)
    return f"{root}_{asn_id}_crf.fits" if asn_id else f"{root}_crf.fits"


def run_image3(
    inputs: Sequence[str | Path],
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    options: RunOptions | None = None,
) -> list[Path]:
    """Combine calibrated exposures into a mosaic and a source catalog.

    Parameters
    ----------
    inputs
        One level-3 association (``*_asn.json``), or ``cal`` files (the product is then
        named from their headers, as ``webbflow asn make --kind image3``).
    steps
        Per-step parameters, ``{"resample": {"pixfrac": 0.8}}``.
    options
        Output directory, scheduler, tile size (of the inputs), overwrite, ``allow_outside``;
        ``save_intermediate="zarr"`` also writes the mosaic as ``<product>_i2d.zarr``.

    Returns
    -------
    list of Path
        ``<root>_<asn_id>_crf.fits`` per exposure, ``<product>_i2d.fits`` (and ``.zarr``),
        ``<product>_cat.ecsv`` and ``<product>_segm.fits``, as each step runs.
    """
    from webbflow.engine.execute import compute_products, scheduler
    from webbflow.graphs.runner import RunOptions, check_unique
    from webbflow.io.fits_reader import open_product
    from webbflow.io.products import fits_product
    from webbflow.io.zarr_store import ZarrProduct

    options = options or RunOptions()
    job = _job(inputs, options.allow_outside)
    pipe = Image3(steps=steps)
    exposures = [open_product(path, tile=options.tile) for path in job.members]
    log.info("image3: %d exposures -> %s", len(exposures), job.product)
    out = Path(options.output_dir)
    i2d = out / f"{job.product}_i2d.fits"
    written: list[Path] = []
    products: list[Any]
    with scheduler(options.scheduler, progress=options.progress) as client:
        # 1. align, match skies, flag outliers; the crf files are written and read back, so the
        #    mosaic's tiles read their inputs from files (each tile task just its window)
        crfs = pipe.align(exposures)
        if not pipe.steps["outlier_detection"].params.skip:
            paths = [out / crf_name(member, job.asn_id) for member in job.members]
            products = [
                fits_product(ds, path, "crf", overwrite=options.overwrite)
                for ds, path in zip(crfs, paths, strict=True)
            ]
            check_unique(products)
            written += compute_products(products, client=client, progress=options.progress)
            crfs = [open_product(path, tile=options.tile) for path in paths]
        # 2. the mosaic
        mosaic = pipe.mosaic(crfs)
        if mosaic is None:
            return written
        mosaic = with_meta(mosaic, {"filename": i2d.name})
        products = [fits_product(mosaic, i2d, "i2d", overwrite=options.overwrite)]
        if options.save_intermediate == "zarr":
            products.append(ZarrProduct(mosaic, i2d.with_suffix(".zarr"), options.overwrite))
        written += compute_products(products, client=client, progress=options.progress)
        # 3. the catalog, from the written mosaic (its two passes read the file)
        if not pipe.steps["source_catalog"].params.skip:
            catalog = catalog_products(
                open_product(i2d), pipe.steps["source_catalog"], out, job.product, options
            )
            written += compute_products(catalog, client=client, progress=options.progress)
    return written


def catalog_products(
    mosaic: xr.Dataset, step: Any, out: Path, product: str, options: RunOptions
) -> list[Any]:
    """The ``<product>_cat.ecsv`` table and ``<product>_segm.fits`` map of a written mosaic (lazy)."""
    from webbflow.io.products import fits_product
    from webbflow.io.table_product import TableProduct

    measured = step(mosaic)
    if meta_value(measured, "cal_step.source_catalog") == "SKIPPED":
        return []
    segm = measured[["segm"]].rename(segm="sci")
    segm.attrs = {k: v for k, v in measured.attrs.items() if k != "catalog"}
    segm_path = out / f"{product}_segm.fits"
    segm = with_meta(segm, {"filename": segm_path.name})
    return [
        TableProduct(measured.attrs["catalog"], out / f"{product}_cat.ecsv", options.overwrite),
        fits_product(segm, segm_path, "segm", overwrite=options.overwrite),
    ]
