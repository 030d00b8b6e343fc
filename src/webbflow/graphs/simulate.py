"""Simulate a raw exposure: configuration → lazy ``uncal`` Dataset (plus seed image and segmap).

The graph, per block-aligned tile (:func:`webbflow.sim.ramp.block_aligned_chunks`)::

    catalogs + PSF ──► seed (e⁻/s) ─× flat ─► signal_kernel ─► ipc_kernel ─► raw_kernel ─► sci
    dark, gain, linearity, saturation ──────────┘    IPC ref ──┘  superbias, readnoise ──┘

Reference files come from the same resolver the calibration uses (override →
CRDS → embedded default set), so a simulated exposure calibrated with the same
references recovers its input (the closure test). Nothing is computed here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.detectors import READ_PATTERNS, Detector, frame_time, get_detector, miri_frame_time
from webbflow.engine.tiles import map_tiles
from webbflow.engine.tiling import tile_shape
from webbflow.errors import ReferenceFileError
from webbflow.graphs.simulate_miri import miri_ramp
from webbflow.io.keywords import set_path
from webbflow.io.reffiles import ReferenceResolver
from webbflow.model import PIXEL_DIMS, RAMP_DIMS
from webbflow.sim import noise as hxrg
from webbflow.sim.background import background_rate
from webbflow.sim.config import SimConfig
from webbflow.sim.dark_ramp import dark_groups
from webbflow.sim.fluxcal import filter_info
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.sim.meta import Identity, exposure_meta
from webbflow.sim.miri import MiriPlan
from webbflow.sim.psf import get_psf
from webbflow.sim.ramp import (
    RampPlan,
    block_aligned_chunks,
    coupling_kernel,
    ipc_kernel,
    raw_kernel,
    signal_kernel,
)
from webbflow.sim.rng import exposure_key
from webbflow.sim.scene import Scene, build_scene, scene_kernel

log = logging.getLogger("webbflow")

#: Reference types the simulation reads (the detector's truth).
REFTYPES = ("mask", "gain", "linearity", "saturation", "superbias", "readnoise", "ipc", "dark")
#: Reference types of a MIRI simulation (no superbias, no IPC; :mod:`webbflow.graphs.simulate_miri`).
MIRI_REFTYPES = ("mask", "gain", "linearity", "saturation", "readnoise", "dark", "reset", "rscd", "emicorr")
#: Reference types used when available (no embedded default yet).
OPTIONAL_REFTYPES = ("flat",)


@dataclass(frozen=True)
class Simulation:
    """A built (lazy) simulation: the exposure and what went into it.

    ``geometry`` is the commanded one (that of the headers); ``scene.geometry`` the one the
    sources were drawn with (they differ by ``pointing.error``).
    """

    exposure: xr.Dataset
    scene: Scene
    plan: RampPlan | MiriPlan
    geometry: Geometry
    notes: tuple[str, ...]


def simulate(config: SimConfig, *, tile: int | None = None, resolver: Any = None) -> xr.Dataset:
    """The lazy raw exposure described by ``config``.

    Parameters
    ----------
    config
        The exposure description (:func:`webbflow.sim.config.load_config` reads
        our YAML or a Mirage YAML).
    tile
        Tile edge, pixels (rounded up to the 256-px block grid); ``None`` chooses
        from a memory budget. The data do not depend on it.
    resolver
        Reference resolver (default: override → CRDS if configured → embedded defaults).

    Returns
    -------
    xarray.Dataset
        ``sci`` float32 raw DN (integers 0-65535), ``groupdq`` uint8, dims
        ``("integration", "group", "y", "x")``; ``pixeldq`` uint32; ``seed``
        float32 e⁻/s and ``segmap`` int32, dims ``("y", "x")``; ``attrs["meta"]``
        the jwst metadata, ``attrs["fits_extra"]`` provenance cards.
    """
    return build_simulation(config, tile=tile, resolver=resolver).exposure


def build_simulation(config: SimConfig, *, tile: int | None = None, resolver: Any = None) -> Simulation:
    """Like :func:`simulate`, also returning the scene, plan and notes (for products and tests)."""
    notes: list[str] = list(config.notes)
    cfg = config
    geometry = Geometry.from_aperture(
        cfg.aperture, Pointing(cfg.pointing.ra, cfg.pointing.dec, cfg.pointing.v3pa)
    )
    error = cfg.pointing.error  # the scene is drawn where the telescope looks; headers keep `geometry`
    true_geometry = (
        geometry if error.is_zero else geometry.with_pointing_error(error.dx, error.dy, error.droll)
    )
    det = get_detector(geometry.detector)
    readpatt = cfg.readout.readpatt  # validated against the instrument's patterns by SimConfig
    nframes, groupgap = READ_PATTERNS[det.instrument][readpatt]
    nints, ngroups = cfg.readout.nints, cfg.readout.ngroups
    window = geometry.window
    xstart, ystart, xsize, ysize = window
    tframe, noutputs = frame_time(det, xsize, ysize)
    if det.instrument == "MIRI":  # the table knows SLOW; frame_time() gives FAST
        tframe = miri_frame_time(geometry.subarray_name, readpatt)
    ident = Identity(
        cfg.observation.program,
        cfg.observation.observation,
        cfg.observation.visit,
        cfg.observation.visit_group,
        cfg.observation.sequence,
        cfg.observation.act_id,
        cfg.observation.exposure,
    )
    meta = exposure_meta(
        det,
        readpatt=readpatt,
        nints=nints,
        ngroups=ngroups,
        nframes=nframes,
        groupgap=groupgap,
        frame_time=tframe,
        noutputs=noutputs,
        window=window,
        subarray_name=geometry.subarray_name,
        identity=ident,
        date_obs=cfg.date_obs,
        time_obs=cfg.time_obs,
        filter=cfg.filter if det.instrument != "FGS" else "",
        pupil=cfg.pupil if det.instrument != "FGS" else "",
    )
    _merge(meta, geometry.meta())
    meta["filename"] = cfg.uncal_name
    meta.setdefault("target", {})["catalog_name"] = cfg.observation.target_name
    set_path(meta, "target.proposer_name", cfg.observation.target_name)
    set_path(meta, "program.title", cfg.observation.title)
    set_path(meta, "program.pi_name", cfg.observation.pi_name)

    ty, tx = tile_shape(ysize, xsize, nints * ngroups, tile)
    ychunks = block_aligned_chunks(ystart - 1, ysize, ty)
    xchunks = block_aligned_chunks(xstart - 1, xsize, tx if tx < xsize else xsize)
    coords = {
        "integration": np.arange(1, nints + 1, dtype=np.int32),
        "group": np.arange(1, ngroups + 1, dtype=np.int32),
        "y": np.arange(ystart - 1, ystart - 1 + ysize, dtype=np.int32),
        "x": np.arange(xstart - 1, xstart - 1 + xsize, dtype=np.int32),
    }
    chunks2d = (ychunks, xchunks)
    ramp_chunks = (nints, ngroups, *chunks2d)
    template = xr.Dataset(
        {
            "sci": (
                RAMP_DIMS,
                da.zeros((nints, ngroups, ysize, xsize), dtype=np.float32, chunks=ramp_chunks),
            ),
            "pixeldq": (PIXEL_DIMS, da.zeros((ysize, xsize), dtype=np.uint32, chunks=chunks2d)),
        },
        coords=coords,
        attrs={"meta": meta},
    )
    reftypes = MIRI_REFTYPES if det.instrument == "MIRI" else REFTYPES
    refs = _references(cfg, template, resolver or ReferenceResolver.default(), notes, reftypes)

    eff = cfg.effects
    info = filter_info(det.instrument, cfg.filter, cfg.pupil)
    sky = 0.0
    if eff.background:
        if cfg.background.rate is not None:
            sky = float(cfg.background.rate)
        elif cfg.background.level != "none":
            sky = background_rate(cfg.background.level, info, geometry.nominal_pixel_area_sr)
    psf = get_psf(
        det.instrument,
        det.name,
        cfg.filter,
        cfg.pupil,
        library=_str(cfg.psf_library),
        pixel_scale=float(np.mean(geometry.pixel_scale())),
    )
    catalogs = cfg.catalogs
    scene = build_scene(
        {"point": catalogs.point, "galaxy": catalogs.galaxy, "extended": catalogs.extended}
        if eff.sources
        else {},
        geometry=true_geometry,
        det=det,
        instrument=det.instrument,
        filter=cfg.filter,
        pupil=cfg.pupil,
        psf=psf,
        background=sky,
        threshold=cfg.segmap_threshold,
        pixel_area=eff.pixel_area,
    )
    seeded = map_tiles(
        scene_kernel,
        {"y": template.y, "x": template.x},
        {"seed": (PIXEL_DIMS, np.float32), "segmap": (PIXEL_DIMS, np.int32)},
        like=template,
        kwargs={"scene": scene},
        name="sim-seed",
    )
    rate = seeded["seed"]
    if "flat" in refs and eff.flat:
        flat = refs["flat"]["sci"]
        rate = rate * xr.where(np.isfinite(flat) & (flat > 0), flat, 1.0).astype(np.float32)
    dead = (refs["mask"]["dq"] & np.uint32(dq.DEAD)) != 0
    rate = xr.where(dead, np.float32(0), rate).astype(np.float32)
    if det.instrument == "MIRI":
        miri_plan, sci = miri_ramp(cfg, det, refs, rate, template, tframe, notes)
        out = _exposure(sci, template, seeded, coords, meta, _provenance(cfg, scene, refs, sky))
        for line in notes[len(config.notes) :]:
            log.info(line)
        return Simulation(out, scene, miri_plan, geometry, tuple(notes))

    plan = RampPlan(
        seed=cfg.seed,
        exposure=exposure_key(cfg.uncal_name),
        detector=det.name,
        nints=nints,
        ngroups=ngroups,
        nframes=nframes,
        groupgap=groupgap,
        frame_time=tframe,
        window=window,
        poisson=eff.poisson,
        cosmic_rays=eff.cosmic_rays,
        nonlinearity=eff.nonlinearity,
        saturation=eff.saturation,
        read_noise=eff.read_noise,
        superbias=eff.superbias,
        cr_environment=cfg.cosmic_rays.environment,
        cr_scale=cfg.cosmic_rays.scale,
        noise=_noise_model(cfg, det) if eff.correlated_noise else None,
    )
    real_dark = None
    if cfg.dark_ramp is not None:
        real_dark = dark_groups(
            cfg.dark_ramp,
            detector=det.name,
            readpatt=readpatt,
            nints=nints,
            ngroups=ngroups,
            nframes=nframes,
            groupgap=groupgap,
            like=template,
        )
        notes.append(f"dark ramp {cfg.dark_ramp.name}: bias, read noise and dark current come from it")
    if eff.dark_current and real_dark is None:
        dark = _dark_rate(refs["dark"], refs["gain"]["sci"], det)
    else:
        dark = xr.zeros_like(rate)
    signal = map_tiles(
        signal_kernel,
        {
            "y": template.y,
            "x": template.x,
            "rate": rate,
            "dark": dark,
            "gain": refs["gain"]["sci"],
            "coeffs": refs["linearity"]["coeffs"],
            "saturation": refs["saturation"]["sci"],
            "superbias": refs["superbias"]["sci"],
        },
        {"signal": (RAMP_DIMS, np.float32)},
        like=template,
        kwargs={"plan": plan},
        name="sim-signal",
    )["signal"]
    if eff.ipc:
        deconvolution = np.asarray(refs["ipc"]["kernel"].values, np.float64)
        if deconvolution.ndim != 2:
            raise ReferenceFileError(f"{refs['ipc'].attrs['path']}: only 2-D IPC kernels are simulated")
        kernel = coupling_kernel(deconvolution)
        signal = map_tiles(
            ipc_kernel, {"signal": signal}, {"signal": (RAMP_DIMS, np.float32)},
            like=template, depth=kernel.shape[0] // 2, kwargs={"kernel": kernel}, name="sim-ipc",
        )["signal"]  # fmt: skip
    if real_dark is not None:
        sci = (signal + real_dark).round().clip(0, 65535).astype(np.float32)
    else:
        sci = map_tiles(
            raw_kernel,
            {
                "y": template.y,
                "x": template.x,
                "signal": signal,
                "superbias": refs["superbias"]["sci"],
                "readnoise": refs["readnoise"]["sci"],
            },
            {"sci": (RAMP_DIMS, np.float32)},
            like=template,
            kwargs={"plan": plan},
            name="sim-raw",
        )["sci"]

    out = _exposure(sci, template, seeded, coords, meta, _provenance(cfg, scene, refs, sky))
    for line in notes[len(config.notes) :]:  # the configuration's own notes are the caller's to show
        log.info(line)
    return Simulation(out, scene, plan, geometry, tuple(notes))


def _exposure(
    sci: xr.DataArray,
    template: xr.Dataset,
    seeded: dict[str, xr.DataArray],
    coords: dict[str, np.ndarray],
    meta: dict[str, Any],
    cards: list[list[Any]],
) -> xr.Dataset:
    """The ``uncal`` Dataset: raw ``sci``, empty ``groupdq``/``pixeldq``, the seed and segmap."""
    sizes = template["sci"].shape
    groupdq = da.zeros(sizes, dtype=np.uint8, chunks=template["sci"].data.chunks)
    return xr.Dataset(
        {
            "sci": sci,
            "groupdq": (RAMP_DIMS, groupdq),
            "pixeldq": template["pixeldq"],
            "seed": seeded["seed"],
            "segmap": seeded["segmap"],
        },
        coords=coords,
        attrs={"meta": meta, "fits_extra": cards},
    )


def _references(
    cfg: SimConfig,
    template: xr.Dataset,
    resolver: Any,
    notes: list[str],
    reftypes: tuple[str, ...] = REFTYPES,
) -> dict[str, xr.Dataset]:
    """Open the references the simulation reads; optional ones that are missing are noted."""
    refs: dict[str, xr.Dataset] = {}
    for reftype in (*reftypes, *OPTIONAL_REFTYPES):
        override = cfg.reffiles.get(reftype)
        optional = reftype in OPTIONAL_REFTYPES
        try:
            ref = resolver.resolve(reftype, template, str(override) if override else None)
            if ref is None:
                if optional:
                    continue
                raise ReferenceFileError(f"reffiles.{reftype}: N/A is not allowed for a simulation")
            refs[reftype] = resolver.open(ref, template)
        except ReferenceFileError:
            if not optional or override:
                raise
            notes.append(f"no {reftype} reference available: the {reftype} effect is not simulated")
    return refs


def _dark_rate(dark: xr.Dataset, gain: xr.DataArray, det: Detector) -> xr.DataArray:
    """Dark current, e⁻/s, from the slope between the dark reference's first and last planes."""
    hdr = dark.attrs.get("header", {})
    n = dark.sizes["dark_group"]
    if n < 2:
        raise ReferenceFileError(f"{dark.attrs.get('path')}: a dark with one plane has no dark-current slope")
    tframe = float(hdr.get("TFRAME") or det.frame_time_full)
    tgroup = tframe * (int(hdr.get("NFRAMES", 1) or 1) + int(hdr.get("GROUPGAP", 0) or 0))
    sci = dark["sci"]
    slope = (sci.isel(dark_group=n - 1) - sci.isel(dark_group=0)) / ((n - 1) * tgroup)
    return (slope.clip(min=0) * gain).astype(np.float32)


def _noise_model(cfg: SimConfig, det: Detector) -> hxrg.NoiseModel:
    base = hxrg.NoiseModel.nominal(det)
    n = cfg.noise
    return hxrg.NoiseModel(
        pink_correlated=base.pink_correlated if n.pink_correlated is None else n.pink_correlated,
        pink_uncorrelated=base.pink_uncorrelated if n.pink_uncorrelated is None else n.pink_uncorrelated,
        acn=base.acn if n.acn is None else n.acn,
        pedestal=base.pedestal if n.pedestal is None else n.pedestal,
        alpha=base.alpha,
    )


def _provenance(cfg: SimConfig, scene: Scene, refs: dict[str, xr.Dataset], sky: float) -> list[list[Any]]:
    cards: list[list[Any]] = [
        ["SIMULATD", True, "simulated by webbflow"],
        ["SIMSEED", cfg.seed, "webbflow simulation seed"],
        ["NSOURCES", scene.nsources, "catalog sources that reach the window"],
        ["BKGDRATE", round(sky, 6), "sky background, e-/s/pixel at nominal area"],
        ["CRLIB", cfg.cosmic_rays.environment, "cosmic-ray environment"],
        ["CRSCALE", cfg.cosmic_rays.scale, "cosmic-ray rate scale"],
    ]
    error = cfg.pointing.error
    if not error.is_zero:  # the truth of an injected pointing error (absent when none)
        cards += [
            ["PNTERRDX", error.dx, "injected pointing error, ideal X, arcsec"],
            ["PNTERRDY", error.dy, "injected pointing error, ideal Y, arcsec"],
            ["PNTERRRL", error.droll, "injected roll error about reference point, deg"],
        ]
    for kind, files in (("PTSRCCAT", cfg.catalogs.point), ("GALAXCAT", cfg.catalogs.galaxy)):
        cards.append([kind, ",".join(p.name for p in files)[:60] or "None", f"{kind[:-3].lower()} catalog"])
    cards.append(["EXTNDCAT", ",".join(p.name for p in cfg.catalogs.extended)[:60] or "None", "extended"])
    return cards


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _str(path: Any) -> str | None:
    return None if path is None else str(path)
