"""Run a named pipeline over input files and write its products.

All the inputs go into one dask graph; products are written tile by tile and
renamed into place when complete (see :mod:`webbflow.engine.execute`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from webbflow.engine.execute import Product, compute_products, scheduler
from webbflow.errors import InputError, UsageError
from webbflow.graphs.image2 import Image2
from webbflow.io.fits_reader import open_exposure, open_product
from webbflow.io.products import fits_product, product_name
from webbflow.io.zarr_store import ZarrProduct
from webbflow.model import get_meta, require_ramp, split_rate

if TYPE_CHECKING:
    from webbflow.graphs.simulate import Simulation
    from webbflow.sim.config import SimConfig

log = logging.getLogger("webbflow")

Intermediate = Literal["zarr", "fits"]


@dataclass(frozen=True)
class RunOptions:
    """How to run: where outputs go, how to compute, what else to save."""

    output_dir: Path = Path()
    save_intermediate: Intermediate | None = None
    scheduler: str | None = None
    tile: int | None = None
    overwrite: bool = False
    progress: bool = True
    allow_outside: bool = False  # association members may lie outside the association's folder


def detector1_products(
    ds: xr.Dataset, steps: Mapping[str, Mapping[str, Any]], options: RunOptions
) -> list[Product]:
    """The products of Detector1 on one lazy exposure: rate, rateints (+ calibrated ramp)."""
    return detector1_outputs(ds, steps, options)[0]


def detector1_outputs(
    ds: xr.Dataset, steps: Mapping[str, Mapping[str, Any]], options: RunOptions
) -> tuple[list[Product], xr.Dataset, xr.Dataset]:
    """Like :func:`detector1_products`, also returning the lazy ``rate`` and ``rateints`` Datasets."""
    from webbflow.graphs.detector1 import Detector1

    require_ramp(ds, str(ds.attrs.get("source", "exposure")))
    pipe = Detector1(steps=steps)
    meta = get_meta(ds)
    out = options.output_dir
    products: list[Product] = []
    final = ds
    for name, stage in pipe.stages(ds):
        if name == "jump" and options.save_intermediate:
            ramp_path = out / product_name(meta, "ramp")
            if options.save_intermediate == "zarr":
                products.append(ZarrProduct(stage, ramp_path.with_suffix(".zarr"), options.overwrite))
            else:
                products.append(fits_product(stage, ramp_path, "ramp", overwrite=options.overwrite))
        final = stage
    if "sci_ints" not in final:
        raise UsageError("detector1 ended without a rate image: ramp_fit must not be skipped")
    rate, rateints = split_rate(final)
    products.append(fits_product(rate, out / product_name(meta, "rate"), "rate", overwrite=options.overwrite))
    products.append(
        fits_product(rateints, out / product_name(meta, "rateints"), "rateints", overwrite=options.overwrite)
    )
    return products, rate, rateints


def run_detector1(
    inputs: Sequence[str | Path],
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    options: RunOptions | None = None,
) -> list[Path]:
    """Calibrate ``uncal`` (or ``ramp``) files to ``rate`` and ``rateints``.

    Parameters
    ----------
    inputs
        Raw exposures.
    steps
        Per-step parameters, ``{"jump": {"rejection_threshold": 5}}``.
    options
        Output directory, scheduler, tile size, intermediates, overwrite.

    Returns
    -------
    list of Path
        The products written, in input order.
    """
    options = options or RunOptions()
    if not inputs:
        raise UsageError("no input files given")
    products: list[Product] = []
    for path in inputs:
        ds = open_exposure(path, tile=options.tile)
        products += detector1_products(ds, steps or {}, options)
    check_unique(products)
    with scheduler(options.scheduler, progress=options.progress) as client:
        return compute_products(products, client=client, progress=options.progress)


def run_image2(
    inputs: Sequence[str | Path] | str | Path,
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    options: RunOptions | None = None,
) -> list[Path]:
    """Calibrate ``rate``/``rateints`` files to ``cal``/``calints`` (jwst's Image2).

    Parameters
    ----------
    inputs
        Rate-level files (``*_rate.fits`` → ``<root>_cal.fits``, ``*_rateints.fits`` →
        ``<root>_calints.fits``) and/or level-2 association files (``*.json``: each product's
        science member is calibrated into ``<product name>_cal[ints].fits`` and its
        ``background`` members go to ``bkg_subtract``; ``selfcal`` members, the other
        science exposures, go to it with ``combine="median"``: self-calibration).
    steps
        Per-step parameters, ``{"flat_field": {"skip": True}}``; ``resample`` is accepted
        (see :func:`webbflow.graphs.image2.i2d_products`).
    options
        Output directory, scheduler, tile size, overwrite, ``allow_outside``.

    Returns
    -------
    list of Path
        The products written, in input order.

    Raises
    ------
    InputError
        An unreadable or non-rate-level input, an empty or level-3 association, a product
        without a science member, a background not matching its science exposure.
    UsageError
        No inputs, unknown steps or parameters, two inputs writing the same product.
    """
    options = options or RunOptions()
    paths = [Path(inputs)] if isinstance(inputs, str | Path) else [Path(p) for p in inputs]
    if not paths:
        raise UsageError("no input files given")
    products: list[Product] = []
    for science, backgrounds, stem, combine in _image2_jobs(paths, options.allow_outside):
        ds = open_product(science, tile=options.tile)
        _require_rate_file(ds, science)
        config = dict(steps or {})
        if combine:  # selfcal members: their clipped median, unless the user chose otherwise
            config["bkg_subtract"] = {"combine": combine, **config.get("bkg_subtract", {})}
        products += image2_products(ds, stem, backgrounds, config, options)
    check_unique(products)
    with scheduler(options.scheduler, progress=options.progress) as client:
        return compute_products(products, client=client, progress=options.progress)


def image2_products(
    ds: xr.Dataset,
    stem: str,
    backgrounds: Sequence[Path],
    steps: Mapping[str, Mapping[str, Any]],
    options: RunOptions,
) -> list[Product]:
    """The Image2 products of one lazy rate-level exposure: ``cal``/``calints`` (+ ``i2d``).

    ``stem`` names the outputs (``<stem>_cal.fits``); empty: the input's root.
    """
    from webbflow.graphs.image2 import HOOKED_STEPS, i2d_products

    config = {k: dict(v) for k, v in steps.items() if k not in HOOKED_STEPS}
    hooked = {k: dict(v) for k, v in steps.items() if k in HOOKED_STEPS}
    if backgrounds:
        bkg = {**config.get("bkg_subtract", {}), "bkg_list": tuple(str(b) for b in backgrounds)}
        config["bkg_subtract"] = bkg
    cal = Image2(steps=config)(ds)
    suffix: Literal["cal", "calints"] = "calints" if ds["sci"].ndim == 3 else "cal"
    name = f"{stem}_{suffix}.fits" if stem else product_name(get_meta(ds), suffix)
    out = options.output_dir
    products: list[Product] = [fits_product(cal, out / name, suffix, overwrite=options.overwrite)]
    combined = cal.attrs.get("combined_background")
    if combined is not None:
        bkg_name = name.replace(f"_{suffix}.fits", "_combinedbackground.fits")
        products.append(fits_product(combined, out / bkg_name, "rate", overwrite=options.overwrite))
    root = name.removesuffix(f"_{suffix}.fits")
    return products + i2d_products(cal, root, hooked.get("resample", {}), out, options.overwrite)


def _image2_jobs(
    paths: Sequence[Path], allow_outside: bool
) -> list[tuple[Path, tuple[Path, ...], str, str | None]]:
    """``(science file, background files, output stem or "", combine)`` for every exposure.

    ``combine`` is ``"median"`` when the backgrounds are the product's ``selfcal`` members
    (self-calibration from the other science exposures), else ``None``.
    """
    from webbflow.io.asn import read_association

    jobs: list[tuple[Path, tuple[Path, ...], str, str | None]] = []
    for path in paths:
        if path.suffix.lower() != ".json":
            jobs.append((path, (), "", None))
            continue
        asn = read_association(path, allow_outside=allow_outside)
        if asn.kind == "image3":
            raise InputError(f"{path}: a level-3 (image3) association; run it with 'webbflow run image3'")
        if not asn.products:
            raise InputError(f"{path}: the association has no products")
        for prod in asn.products:
            science = prod.by_type("science")
            if len(science) != 1:
                raise InputError(
                    f"{path}: product {prod.name!r} has {len(science)} science members, expected 1"
                )
            backgrounds = tuple(m.path for m in prod.by_type("background"))
            selfcal = tuple(m.path for m in prod.by_type("selfcal"))
            if backgrounds and selfcal:
                raise InputError(
                    f"{path}: product {prod.name!r} has both background and selfcal members; give one kind"
                )
            jobs.append((science[0].path, backgrounds or selfcal, prod.name, "median" if selfcal else None))
    return jobs


def _require_rate_file(ds: xr.Dataset, path: Path) -> None:
    missing = [v.upper() for v in ("sci", "dq", "var_poisson", "var_rnoise") if v not in ds]
    if missing or "wht" in ds:
        what = f"no {', '.join(missing)} extension" if missing else "a resampled mosaic (i2d)"
        raise InputError(f"{path}: {what}; image2 takes rate or rateints files")


def check_unique(products: Sequence[Product]) -> None:
    """Raise :class:`UsageError` if two products would write the same path."""
    seen: set[Path] = set()
    for product in products:
        key = product.path.resolve()
        if key in seen:
            raise UsageError(f"two inputs would both write {product.path}; give inputs distinct names")
        seen.add(key)


def simulation_products(
    sim: Simulation, products: Sequence[str], options: RunOptions, zarr: bool = False
) -> list[Product]:
    """The products of one simulated exposure.

    ``uncal``: the raw ramp (``Level1bModel``). ``linear``: Mirage's linearized ramp
    (``RampModel``: Detector1 through ``linearity``: bias and reference pixels
    removed, linearized, saturated groups flagged). ``seed``: the noiseless seed
    image in ADU/s with its segmentation map, Mirage's layout. ``zarr``: the whole
    lazy Dataset (raw ramp, seed, segmap) as a Zarr store.
    """
    from webbflow.graphs.detector1 import Detector1
    from webbflow.io.products import seed_product

    ds = sim.exposure
    meta = get_meta(ds)
    out = Path(options.output_dir)
    uncal = out / str(meta["filename"])
    result: list[Product] = []
    if "uncal" in products:
        result.append(fits_product(ds, uncal, "uncal", overwrite=options.overwrite))
    if "linear" in products:
        for name, stage in Detector1().stages(ds[["sci", "groupdq", "pixeldq"]]):
            if name == "linearity":
                path = out / product_name(meta, "linear")
                result.append(fits_product(stage, path, "ramp", overwrite=options.overwrite))
                break
    if "seed" in products:
        result.append(seed_product(ds, out, overwrite=options.overwrite))
    if zarr:
        path = out / product_name(meta, "sim").replace(".fits", ".zarr")
        result.append(ZarrProduct(ds, path, options.overwrite))
    return result


def run_simulate(configs: Sequence[SimConfig], options: RunOptions | None = None) -> list[Path]:
    """Simulate every exposure of ``configs`` in one dask graph and write its products.

    Returns
    -------
    list of Path
        The products written.
    """
    from webbflow.graphs.simulate import build_simulation

    options = options or RunOptions()
    if not configs:
        raise UsageError("no simulation configuration given")
    products: list[Product] = []
    for cfg in configs:
        opts = options if options.output_dir != Path() else replace(options, output_dir=cfg.output.directory)
        sim = build_simulation(cfg, tile=options.tile)
        products += simulation_products(sim, cfg.output.products, opts, zarr=cfg.output.zarr)
    check_unique(products)
    with scheduler(options.scheduler, progress=options.progress) as client:
        return compute_products(products, client=client, progress=options.progress)
