"""The MIRI branch of :mod:`webbflow.graphs.simulate`: seed rate + references → lazy raw ramp.

The graph, per block-aligned tile::

    rate (e⁻/s) ─┐
    GAIN, LINEARITY, SATURATION, READNOISE, DARK, RESET ─► miri_ramp_kernel ─► sci
    RSCD table, EMICORR (frequencies, clocks) ─► MiriPlan ─┘

The RSCD skips, the reset-anomaly integrations and the EMI clocks are read the way the
``rscd``, ``reset`` and ``emicorr`` steps read them, so those steps remove what is added.
Options come from the configuration's ``miri`` section when it has one
(``emi_amplitude`` DN or ``None`` for the reference waveforms' own amplitudes,
``flicker_rms`` DN, ``rscd_fraction``, ``shower_scale``), else the defaults below.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import xarray as xr

from webbflow.detectors import Detector
from webbflow.engine.tiles import map_tiles
from webbflow.errors import UsageError
from webbflow.io.reffiles.emicorr import select_case
from webbflow.model import RAMP_DIMS
from webbflow.sim.config import SimConfig
from webbflow.sim.miri import EmiWave, MiriPlan, ReadClock, miri_ramp_kernel
from webbflow.sim.miri.effects import FULL_ROWS, PIXEL_CLOCK, SKIPPED_ROW_CLOCKS
from webbflow.sim.rng import WHOLE, Effect, exposure_key, rng
from webbflow.steps.rscd.step import group_skips, skip_per_integration

#: Defaults of the MIRI options: flicker rms as a fraction of the read noise, RSCD deficit, showers.
FLICKER_FRACTION: Final = 0.25
RSCD_FRACTION: Final = 0.01
SHOWER_SCALE: Final = 1.0


def _option(cfg: SimConfig, name: str, default: Any) -> Any:
    section = getattr(cfg, "miri", None)
    value = getattr(section, name, None) if section is not None else None
    return default if value is None else value


def _clock(
    cfg: SimConfig, refs: dict[str, xr.Dataset], meta: dict[str, Any], ny: int, tframe: float
) -> tuple:
    """(ReadClock, EMI frequencies) for the exposure, from the EMICORR reference's case."""
    exp = meta.get("exposure", {})
    readpatt = str(exp.get("readpatt", "")).strip().upper()
    nsamples = int(exp.get("nsamples", 9 if readpatt.startswith("SLOW") else 1) or 1)
    subarray = str(meta.get("subarray", {}).get("name", "FULL"))
    case = select_case(refs["emicorr"], subarray, readpatt, "MIRIMAGE") if "emicorr" in refs else None
    if case is None:  # no EMI; the flicker noise still needs a row clock
        rowclocks = max(1, round((tframe / PIXEL_CLOCK - (FULL_ROWS - ny) * SKIPPED_ROW_CLOCKS) / ny))
        frameclocks = round(tframe / PIXEL_CLOCK)
        freqs: tuple = ()
    else:
        rowclocks, frameclocks, freqs = case.rowclocks, case.frameclocks, case.frequencies
    reset = frameclocks if readpatt.endswith("R1") else 0
    return ReadClock(int(rowclocks), nsamples, int(reset), ny), freqs


def miri_ramp(
    cfg: SimConfig,
    det: Detector,
    refs: dict[str, xr.Dataset],
    rate: xr.DataArray,
    template: xr.Dataset,
    tframe: float,
    notes: list[str],
) -> tuple[MiriPlan, xr.DataArray]:
    """The MIRI exposure's plan and lazy raw ``sci`` (integration, group, y, x) float32 DN."""
    if cfg.dark_ramp is not None:
        raise UsageError("dark_ramp: real dark ramps are not supported for MIRI simulations")
    meta = template.attrs["meta"]
    eff = cfg.effects
    nints, ngroups = template.sizes["integration"], template.sizes["group"]
    xstart = int(template.x.values[0]) + 1
    ystart = int(template.y.values[0]) + 1
    window = (xstart, ystart, template.sizes["x"], template.sizes["y"])
    exposure = exposure_key(cfg.uncal_name)
    clock, freqs = _clock(cfg, refs, meta, template.sizes["y"], tframe)
    emi_amp = _option(cfg, "emi_amplitude", None)
    waves = []
    for k, f in enumerate(freqs):
        half = 0.5 * float(np.ptp(f.waveform))
        phase = float(rng(cfg.seed, exposure, Effect.EMI, WHOLE, WHOLE, k).random())
        waves.append(
            EmiWave(
                f.frequency, tuple(map(float, f.waveform)), half if emi_amp is None else float(emi_amp), phase
            )
        )
    if not freqs:
        notes.append("no EMICORR case for this subarray/readout: no EMI simulated")
    readpatt = str(meta["exposure"]["readpatt"]).strip().upper()
    subarray = str(meta.get("subarray", {}).get("name", "FULL"))
    skips = group_skips(refs["rscd"], readpatt, subarray) if "rscd" in refs else None
    rscd_skip: tuple[int, ...] = ()
    if skips is not None and ngroups >= 3:
        rscd_skip = tuple(int(v) for v in skip_per_integration(ngroups, nints, nints, 1, *skips)[0])
    reset = refs["reset"]
    header = reset.attrs.get("header", {})
    rn, rg = reset["sci"].shape[:2]
    reset_nints = min(int(header.get("NINTS", rn) or rn), rn)
    reset_groups = min(int(header.get("NGROUPS", rg) or rg), rg, ngroups)
    plan = MiriPlan(
        seed=cfg.seed,
        exposure=exposure,
        nints=nints,
        ngroups=ngroups,
        frame_time=tframe,
        window=window,
        bias=tuple(float(det.bias + o) for o in det.amp_bias_offsets),  # type: ignore[arg-type]
        clock=clock,
        reset_integration=tuple(min(i, reset_nints - 1) for i in range(nints)),
        reset_groups=reset_groups,
        rscd_skip=rscd_skip,
        rscd_fraction=float(_option(cfg, "rscd_fraction", RSCD_FRACTION)),
        emi=tuple(waves),
        flicker_rms=float(_option(cfg, "flicker_rms", FLICKER_FRACTION * det.read_noise))
        if eff.correlated_noise
        else 0.0,
        cr_environment=cfg.cosmic_rays.environment,
        cr_scale=cfg.cosmic_rays.scale,
        shower_scale=float(_option(cfg, "shower_scale", SHOWER_SCALE)) * cfg.cosmic_rays.scale,
        poisson=eff.poisson,
        cosmic_rays=eff.cosmic_rays,
        nonlinearity=eff.nonlinearity,
        saturation=eff.saturation,
        read_noise=eff.read_noise,
    )
    dark = refs["dark"]["sci"] if eff.dark_current else xr.zeros_like(rate)
    sci = map_tiles(
        miri_ramp_kernel,
        {
            "y": template.y,
            "x": template.x,
            "rate": rate,
            "gain": refs["gain"]["sci"],
            "coeffs": refs["linearity"]["coeffs"],
            "saturation": refs["saturation"]["sci"],
            "readnoise": refs["readnoise"]["sci"],
            "dark": dark,
            "reset": reset["sci"],
        },
        {"sci": (RAMP_DIMS, np.float32)},
        like=template,
        kwargs={"plan": plan},
        name="sim-miri-ramp",
    )["sci"]
    return plan, sci
