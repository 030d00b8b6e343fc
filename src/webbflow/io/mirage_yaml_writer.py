"""Write a :class:`~webbflow.sim.config.SimConfig` as a Mirage input YAML (one exposure, one detector).

For users who keep running Mirage on a webbflow plan, and so that ``webbflow simulate`` reads
the same file back: :func:`webbflow.io.mirage_yaml.from_mirage` turns what is written here into
the same :class:`SimConfig` (except ``notes``, and ``output.products``, which always holds
``seed`` because Mirage always writes its seed image).

The nine sections and their keys are those Mirage's ``yaml_generator`` writes. Reference files
are ``crds`` (Mirage and webbflow then choose them), or the configuration's own overrides; Mirage's
libraries (cosmic rays, PSFs) point into ``$MIRAGE_DATA``, which webbflow replaces by its models
when absent. Values with no Mirage form fail: a background given in MJy/sr, more than one
catalog of a kind. Mirage has two seeds where webbflow has one: the seed ``s`` is written as
``poissonseed = s >> 32`` and ``cosmicRay.seed = s & 0xFFFFFFFF``, which the reader recombines.

MIRI imaging: Mirage cannot simulate MIRI, so these files are for webbflow only. They keep
Mirage's shape with webbflow's MIRI extension (what :mod:`webbflow.io.mirage_yaml` reads):
``Inst.instrument: MIRI``, ``Readout.array_name: MIRIM_<subarray>`` (``MIRIM_SUB64``...),
``readpatt: FASTR1|SLOWR1``, ``pupil: N/A``, ``Reffiles`` keys ``reset``, ``rscd``, ``emicorr``
(no ``superbias``; MIRI has none). The ``miri`` effect amplitudes have no key: non-default
values fail.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from webbflow.detectors import get_detector
from webbflow.errors import InputError
from webbflow.io import atomic
from webbflow.sim.config import SimConfig

_NONE: Final = "None"  # Mirage's spelling of "off" (YAML text, as its generator writes)
#: webbflow reftype -> Mirage ``Reffiles`` key.
_REFFILE_KEYS: Final = {
    "mask": "badpixmask",
    "superbias": "superbias",
    "linearity": "linearity",
    "saturation": "saturation",
    "gain": "gain",
    "flat": "pixelflat",
    "distortion": "astrometric",
    "photom": "photom",
    "ipc": "ipc",
    "area": "pixelAreaMap",
}
#: Mirage file keys whose ``None`` turns an effect off (webbflow effect name).
_EFFECT_FILES: Final = {"pixelflat": "flat", "ipc": "ipc", "pixelAreaMap": "pixel_area"}
_INST_DIR: Final = {"NIRCAM": "nircam", "NIRISS": "niriss", "FGS": "fgs", "MIRI": "miri"}
#: MIRI-only reftypes (webbflow's extension of Mirage's ``Reffiles``), written under their own names.
_MIRI_REFTYPES: Final = ("reset", "rscd", "emicorr")


def mirage_yaml(config: SimConfig, row: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The Mirage input YAML of ``config`` as nested dicts (section -> key -> value).

    Parameters
    ----------
    config
        The exposure (e.g. :func:`webbflow.graphs.plan.sim_config` of a plan row).
    row
        The plan row, for the keys Mirage writes that a SimConfig does not hold (the ``.pointing``
        aperture, target coordinates, observation label); optional.

    Raises
    ------
    InputError
        A setting with no Mirage equivalent (named with the exposure's file name).
    """
    row = row or {}
    det = get_detector(config.detector)
    name = config.uncal_name
    readout = config.readout
    no_wheels = config.instrument in {"FGS", "MIRI"}  # Mirage writes N/A for elements FGS lacks
    if config.instrument == "MIRI" and config.miri != type(config.miri)():
        raise InputError(f"{name}: miri effect amplitudes have no Mirage key (keep the defaults)")
    return {
        "Inst": {"instrument": config.instrument, "mode": "imaging", "use_JWST_pipeline": True},
        "Readout": {
            "readpatt": readout.readpatt,
            "ngroup": readout.ngroups,
            "nint": readout.nints,
            "namp": 4,
            "resets_bet_ints": 1,
            "array_name": config.aperture,
            "intermediate_aperture": _NONE,
            "PPS_aperture": str(row.get("pointing_aperture") or config.aperture),
            "filter": "N/A" if config.instrument == "FGS" else config.filter,
            "pupil": "N/A" if no_wheels else config.pupil,
        },
        "Reffiles": _reffiles(config),
        "nonlin": {"limit": 60000.0, "accuracy": 0.000001, "maxiter": 10, "robberto": False},
        "cosmicRay": {
            "path": f"$MIRAGE_DATA/{_INST_DIR[config.instrument]}/cosmic_ray_library/",
            "library": "FLARE"
            if config.cosmic_rays.environment == "FLARES"
            else config.cosmic_rays.environment,
            "scale": config.cosmic_rays.scale,
            "suffix": f"IPC_{config.instrument.replace('NIRCAM', 'NIRCam')}_{_short_detector(det.name)}",
            "seed": config.seed & 0xFFFFFFFF,
        },
        "simSignals": _signals(config, name, det.gain),
        "Telescope": {
            "ra": config.pointing.ra,
            "dec": config.pointing.dec,
            "rotation": config.pointing.v3pa,
            "tracking": "sidereal",
        },
        "Output": _output(config, row),
    }


def write_mirage_yaml(
    config: SimConfig, path: str | os.PathLike[str], row: Mapping[str, Any] | None = None
) -> Path:
    """Write :func:`mirage_yaml` of ``config`` to ``path`` (atomically, replacing it); return the path."""
    out = Path(path)
    text = yaml.safe_dump(mirage_yaml(config, row), sort_keys=False, default_flow_style=False)
    atomic.check_writable(out, overwrite=True)
    tmp = atomic.temporary_name(out)
    try:
        tmp.write_text(text, encoding="utf-8")
        atomic.commit(tmp, out)
    finally:
        atomic.discard(tmp)
    return out


def _short_detector(name: str) -> str:
    """Mirage's detector tag in library names: ``NRCB1`` -> ``B1``, ``NRCBLONG`` -> ``B5``."""
    if name.startswith("NRC"):
        return name[3:].replace("LONG", "5")
    return name


def _reffiles(config: SimConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "dark": str(config.dark_ramp) if config.dark_ramp else _NONE,
        "linearized_darkfile": _NONE,
    }
    miri = config.instrument == "MIRI"
    for reftype, key in _REFFILE_KEYS.items():
        if miri and reftype == "superbias":
            continue
        effect = _EFFECT_FILES.get(key)
        if effect is not None and not getattr(config.effects, effect):
            out[key] = _NONE
        elif reftype in config.reffiles:
            out[key] = str(config.reffiles[reftype])
        else:
            out[key] = "crds"
    if miri:
        out.update({key: str(config.reffiles.get(key, "crds")) for key in _MIRI_REFTYPES})
    out["invertIPC"] = True
    out.update({"illumflat": _NONE, "occult": _NONE, "transmission": "crds"})
    # Mirage's own tables: "config" makes Mirage use those it ships
    for key in ("subarray_defs", "readpattdefs", "filtpupilcombo", "filter_wheel_positions", "flux_cal"):
        out[key] = "config"
    if config.instrument == "NIRCAM":
        out["crosstalk"] = "config"
    out["filter_throughput"] = "config"
    return out


def _one(paths: tuple[Path, ...], key: str, name: str) -> str:
    if len(paths) > 1:
        raise InputError(f"{name}: simSignals.{key}: Mirage takes one catalog of a kind, got {len(paths)}")
    return str(paths[0]) if paths else _NONE


def _signals(config: SimConfig, name: str, gain: float) -> dict[str, Any]:
    bkg = config.background
    if bkg.rate is not None:
        bkgdrate: Any = bkg.rate / gain  # Mirage counts in ADU/s; the reader multiplies by the gain back
    elif isinstance(bkg.level, str):
        bkgdrate = _NONE if bkg.level == "none" else bkg.level
    else:
        raise InputError(
            f"{name}: background {bkg.level} MJy/sr has no Mirage equivalent "
            "(use low, medium, high, none or a rate in e-/s)"
        )
    cats = config.catalogs
    inst = _INST_DIR[config.instrument]
    return {
        "pointsource": _one(cats.point, "pointsource", name),
        "gridded_psf_library_row_padding": 4,
        "psfpath": str(config.psf_library)
        if config.psf_library
        else f"$MIRAGE_DATA/{inst}/gridded_psf_library/",
        "psfwfe": "predicted",
        "psfwfegroup": 0,
        "galaxyListFile": _one(cats.galaxy, "galaxyListFile", name),
        "extended": _one(cats.extended, "extended", name),
        "extendedscale": 1.0,
        "extendedCenter": "1024,1024",
        "PSFConvolveExtended": True,
        **dict.fromkeys(
            ("movingTargetList", "movingTargetSersic", "movingTargetExtended", "movingTargetToTrack"), _NONE
        ),
        "tso_imaging_catalog": _NONE,
        "tso_grism_catalog": _NONE,
        "zodiacal": _NONE,
        "zodiscale": 1.0,
        "scattered": _NONE,
        "scatteredscale": 1.0,
        "bkgdrate": bkgdrate,
        "poissonseed": config.seed >> 32,
        "photonyield": True,
        "pymethod": True,
        "expand_catalog_for_segments": False,
        "use_dateobs_for_background": False,
        "signal_low_limit_for_segmap": config.segmap_threshold,
        "signal_low_limit_for_segmap_units": "e/sec",
        "add_ghosts": False,
        "PSFConvolveGhosts": False,
    }


def _output(config: SimConfig, row: Mapping[str, Any]) -> dict[str, Any]:
    o = config.observation
    d = o.dither
    kinds = [k for k, p in (("linear", "linear"), ("raw", "uncal")) if p in config.output.products]
    out: dict[str, Any] = {
        "directory": str(config.output.directory),
        "file": config.uncal_name,
        "datatype": ", ".join(kinds) if kinds else "raw",
        "format": "DMS",
        "save_intermediates": False,
        "grism_source_image": False,
        "unsigned": True,
        "dmsOrient": True,
        "program_number": o.program,
        "title": o.title or _NONE,
        "PI_Name": o.pi_name or _NONE,
        "target_name": o.target_name,
    }
    if "target_ra" in row:  # as Mirage: the APT target position (not used by the simulation)
        out["target_ra"], out["target_dec"] = float(row["target_ra"]), float(row["target_dec"])
    out.update(
        {
            "observation_number": f"{o.observation:03d}",
            "visit_number": f"{o.visit:03d}",
            "visit_group": f"{o.visit_group:02d}",
            "visit_id": f"{o.program}{o.observation:03d}{o.visit:03d}",
            "sequence_id": f"{o.sequence:d}",
            "activity_id": o.act_id,
            "exposure_number": f"{o.exposure:05d}",
            "obs_id": (
                f"V{o.program}{o.observation:03d}{o.visit:03d}P0000000{o.visit_group:02d}{o.sequence:d}{o.act_id}"
            ),
            "date_obs": config.date_obs,
            "time_obs": config.time_obs,
            "primary_dither_type": d.primary_dither_type or _NONE,
            "total_primary_dither_positions": d.total_primary_dither_positions,
            "primary_dither_position": d.primary_dither_position,
            "subpix_dither_type": d.subpix_dither_type or _NONE,
            "total_subpix_dither_positions": d.total_subpix_dither_positions,
            "subpix_dither_position": d.subpix_dither_position,
            "xoffset": d.xoffset,
            "yoffset": d.yoffset,
        }
    )
    return out
