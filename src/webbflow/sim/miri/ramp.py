"""MIRI raw ramps, one tile at a time: FASTR1/SLOWR1 readout and the Si:As detector effects.

Readout. One frame per group (``NFRAMES = 1``, ``GROUPGAP = 0``), ``TFRAME`` from
:func:`webbflow.detectors.miri_frame_time`; every integration starts from a reset
(R1 patterns spend one more frame resetting, which only the clocked effects see).

Signal chain of :func:`miri_ramp_kernel`, per integration and frame:

1. Photo-electrons (``rate``, e⁻/s) and dark electrons accumulate with Poisson
   statistics. The dark is the per-integration DARK reference (``DarkMIRIModel``:
   plane 0 for integration 1, plane 1 for the later ones), linear DN: its group-to-group
   increments times the gain are drawn as electrons (a negative increment is added
   as is), so the ``dark_current`` step subtracts its mean exactly.
2. Cosmic rays (:mod:`webbflow.sim.cosmic_rays` at MIRI's 25 µm pitch) and showers
   (:mod:`webbflow.sim.miri.showers`) add their charge in the frame they arrive.
3. Linear DN = ``poly(bias) + charge / gain + dark``: MIRI has no superbias, so the
   ``linearity`` step applies the LINEARITY polynomial to the raw level including
   the bias; the raw level is the polynomial's inverse (Newton), held at a full well a
   little above the SATURATION reference (:func:`webbflow.sim.ramp.full_well`).
4. Raw-domain additions: the RESET anomaly cube, RSCD, EMI, flicker (1/f) noise
   (:mod:`webbflow.sim.miri.effects`), white read noise (READNOISE / √2 per read, the
   reference being CDS noise as in :mod:`webbflow.sim.ramp`), digitised to 16 bits.

The bias of a pixel is ``detectors.MIRIMAGE.bias`` plus its amplifier's offset
plus a per-integration reset (kTC) offset. No IPC (MIRI has no IPC step by default).

Reproducibility: every random draw comes from a fixed 256-px block stream or a
``WHOLE`` stream (:mod:`webbflow.sim.rng`); tiles must be block aligned
(:func:`webbflow.sim.ramp.block_aligned_chunks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np

from webbflow.sim import cosmic_rays as cr
from webbflow.sim.miri.effects import (
    EmiWave,
    ReadClock,
    emi_pattern,
    flicker_noise,
    reset_anomaly,
    rscd_offsets,
)
from webbflow.sim.miri.showers import shower_hits
from webbflow.sim.ramp import _to_raw, check_aligned, full_well
from webbflow.sim.rng import Effect, blocks, rng

#: MIRI pixel pitch, µm.
PITCH_UM: Final = 25.0
#: Light-sensitive full-frame region of the imager, ``(y0, y1, x0, x1)`` (reference columns excluded).
SENSITIVE: Final = (0, 1024, 4, 1028)
#: rms of the per-integration reset (kTC) offset, DN.
RESET_NOISE_DN: Final = 3.0


@dataclass(frozen=True)
class MiriPlan:
    """What every tile of one MIRI exposure needs (hashable, picklable).

    Attributes
    ----------
    seed, exposure
        Program seed and :func:`webbflow.sim.rng.exposure_key`.
    nints, ngroups, frame_time, window
        Readout (one frame per group), ``TFRAME`` s, ``(xstart, ystart, xsize, ysize)`` 1-based.
    bias
        Raw zero level of each amplifier (``x mod 4``), DN.
    clock
        Readout clocks (EMI and flicker timing).
    reset_integration, reset_groups
        Per integration, the RESET reference integration (-1: none); leading groups that get it.
    rscd_skip, rscd_fraction
        Per integration, the groups the ``rscd`` step flags (RSCD lies only there), and the deficit.
    emi
        EMI frequencies injected.
    flicker_rms, flicker_alpha
        1/f noise rms (DN) and index.
    cr_environment, cr_scale, shower_scale
        Cosmic-ray environment and rate factors.
    poisson, cosmic_rays, nonlinearity, saturation, read_noise
        Which effects are on.
    """

    seed: int
    exposure: int
    nints: int
    ngroups: int
    frame_time: float
    window: tuple[int, int, int, int]
    bias: tuple[float, float, float, float]
    clock: ReadClock
    reset_integration: tuple[int, ...] = ()
    reset_groups: int = 0
    rscd_skip: tuple[int, ...] = ()
    rscd_fraction: float = 0.01
    emi: tuple[EmiWave, ...] = ()
    flicker_rms: float = 0.0
    flicker_alpha: float = 1.0
    cr_environment: str = "SUNMAX"
    cr_scale: float = 1.0
    shower_scale: float = 1.0
    poisson: bool = True
    cosmic_rays: bool = True
    nonlinearity: bool = True
    saturation: bool = True
    read_noise: bool = True


class MiriRaw(NamedTuple):
    """Output of :func:`miri_ramp_kernel`."""

    sci: np.ndarray


def bias_level(plan: MiriPlan, y0: int, ny: int, x0: int, nx: int) -> np.ndarray:
    """Raw zero level of each integration, (nints, ny, nx) float64 DN (amplifier offset + kTC)."""
    amp = np.asarray(plan.bias, np.float64)[np.arange(x0, x0 + nx) % 4]
    out = np.broadcast_to(amp[None, None], (plan.nints, ny, nx)).copy()
    if plan.read_noise:
        for by, bx, ys, xs in blocks(y0, y0 + ny, x0, x0 + nx):
            sl = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
            for i in range(plan.nints):
                gen = rng(plan.seed, plan.exposure, Effect.RESET, by, bx, i)
                out[(i, *sl)] += gen.normal(0.0, RESET_NOISE_DN, (ys.stop - ys.start, xs.stop - xs.start))
    return out


def hits(plan: MiriPlan, y0: int, ny: int, x0: int, nx: int) -> cr.CosmicRayHits:
    """Cosmic-ray and shower deposits of the tile, sorted by (integration, frame, y, x)."""
    parts = []
    if plan.cosmic_rays and plan.cr_environment.upper() != "NONE" and plan.cr_scale > 0:
        parts.append(
            cr.cosmic_ray_hits(
                plan.cr_environment,
                plan.cr_scale,
                plan.seed,
                plan.exposure,
                plan.nints,
                plan.ngroups,
                plan.frame_time,
                plan.window,
                y0,
                y0 + ny,
                x0,
                x0 + nx,
                PITCH_UM,
                SENSITIVE,
            )
        )
    if plan.cosmic_rays and plan.shower_scale > 0:
        xs, ys, xsize, ysize = plan.window
        sens = (
            max(ys - 1, SENSITIVE[0]),
            min(ys - 1 + ysize, SENSITIVE[1]),
            max(xs - 1, SENSITIVE[2]),
            min(xs - 1 + xsize, SENSITIVE[3]),
        )
        parts.append(
            shower_hits(
                plan.shower_scale,
                plan.seed,
                plan.exposure,
                plan.nints,
                plan.ngroups,
                plan.frame_time,
                PITCH_UM,
                y0,
                y0 + ny,
                x0,
                x0 + nx,
                sens,
            )
        )
    if not parts:
        i32 = np.zeros(0, np.int32)
        return cr.CosmicRayHits(i32, i32, i32, i32, np.zeros(0, np.float32))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    key = ((cols[0].astype(np.int64) * plan.ngroups + cols[1]) * 4096 + cols[2]) * 4096 + cols[3]
    order = np.argsort(key, kind="stable")
    return cr.CosmicRayHits(*(c[order] for c in cols))


def _poly(coeffs: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``sum_k coeffs[k] raw**k`` (Horner), float64."""
    out = np.zeros_like(raw)
    for c in coeffs[::-1]:
        out = out * raw + c
    return out


def _dark_increments(dark: np.ndarray, ngroups: int) -> np.ndarray:
    """(dark_integration, group, y, x) group-to-group increments of the dark, DN.

    Groups beyond the reference continue its last increment.
    """
    d = np.nan_to_num(np.asarray(dark, np.float64))
    d = d.reshape((1,) * (4 - d.ndim) + d.shape)  # (y, x) and (group, y, x) count as one integration
    inc = np.diff(d, axis=1, prepend=0.0)
    if inc.shape[1] < ngroups:
        extra = np.repeat(inc[:, -1:], ngroups - inc.shape[1], axis=1)
        inc = np.concatenate([inc, extra], axis=1)
    return inc[:, :ngroups]


def miri_ramp_kernel(
    *,
    y: np.ndarray,
    x: np.ndarray,
    rate: np.ndarray,
    gain: np.ndarray,
    coeffs: np.ndarray,
    saturation: np.ndarray,
    readnoise: np.ndarray,
    dark: np.ndarray,
    reset: np.ndarray,
    plan: MiriPlan,
) -> MiriRaw:
    """Raw 16-bit MIRI ramp of one block-aligned tile.

    Parameters
    ----------
    y, x
        (ny,), (nx,) int: full-frame pixel indices of the tile.
    rate
        (ny, nx) float32 photo-electron rate, e⁻/s.
    gain
        (ny, nx) float32 GAIN, e⁻/DN.
    coeffs
        (ncoeff, ny, nx) float32 LINEARITY coefficients (raw → linear DN), lowest order first.
    saturation
        (ny, nx) float32 SATURATION, raw DN.
    readnoise
        (ny, nx) float32 READNOISE (CDS), DN.
    dark
        (dark_integration, dark_group, ny, nx), (dark_group, ny, nx) or (ny, nx) float32 DARK,
        linear DN (zeros: no dark).
    reset
        (reset_integration, reset_group, ny, nx) float32 RESET anomaly, DN (unused when
        ``plan.reset_groups`` is 0).
    plan
        The exposure's :class:`MiriPlan`.

    Returns
    -------
    MiriRaw
        ``sci`` (nints, ngroups, ny, nx) float32 integers in [0, 65535].
    """
    ny, nx = rate.shape
    y0, x0 = int(y[0]), int(x[0])
    check_aligned(plan.window, y0, ny, x0, nx)
    nints, ngroups = plan.nints, plan.ngroups
    g64 = np.where(np.isfinite(gain) & (gain > 0), gain, 1.0).astype(np.float64)
    lam = np.clip(np.nan_to_num(rate.astype(np.float64)), 0.0, None) * plan.frame_time
    coeffs64 = np.ascontiguousarray(np.nan_to_num(coeffs.astype(np.float64)))
    if coeffs64.shape[0] < 2 or not plan.nonlinearity:
        coeffs64 = np.ascontiguousarray(np.stack([np.zeros((ny, nx)), np.ones((ny, nx))]))
    dinc = _dark_increments(dark, ngroups)
    bias = bias_level(plan, y0, ny, x0, nx)
    cells = list(blocks(y0, y0 + ny, x0, x0 + nx))
    tile_hits = hits(plan, y0, ny, x0, nx)
    signal = np.empty((nints, ngroups, ny, nx))
    for i in range(nints):
        b = bias[i]
        well = np.ascontiguousarray(b + full_well(saturation, b.astype(np.float32)))
        level = _poly(coeffs64, b)
        inc = dinc[min(i, dinc.shape[0] - 1)]
        streams = [rng(plan.seed, plan.exposure, Effect.POISSON, by, bx, i) for by, bx, _, _ in cells]
        charge = np.zeros((ny, nx))
        negative = np.zeros((ny, nx))
        mine = tile_hits.integration == i
        for g in range(ngroups):
            mean = lam + np.clip(inc[g], 0.0, None) * g64
            negative += np.clip(inc[g], None, 0.0)
            if plan.poisson:
                for gen, (_, _, ys, xs) in zip(streams, cells, strict=True):
                    sl = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
                    charge[sl] += gen.poisson(mean[sl])
            else:
                charge += mean
            arrived = mine & (tile_hits.frame == g)
            if arrived.any():
                flat = (tile_hits.y[arrived] - y0) * nx + (tile_hits.x[arrived] - x0)
                charge += np.bincount(flat, tile_hits.electrons[arrived], minlength=ny * nx).reshape(ny, nx)
            linear = level + charge / g64 + negative
            signal[i, g] = _to_raw(linear, coeffs64, well, plan.nonlinearity, plan.saturation)
        signal[i] -= b[None]
    return MiriRaw(_raw(signal, bias, readnoise, reset, y0, x0, plan))


def _raw(
    signal: np.ndarray,
    bias: np.ndarray,
    readnoise: np.ndarray,
    reset: np.ndarray,
    y0: int,
    x0: int,
    plan: MiriPlan,
) -> np.ndarray:
    """Add bias, the raw-domain effects and read noise to ``signal`` (DN above bias); digitise."""
    nints, ngroups, ny, nx = signal.shape
    xs, ys = plan.window[:2]
    rows = np.arange(y0, y0 + ny) - (ys - 1)
    cols = np.arange(x0, x0 + nx) - (xs - 1)
    raw = signal + bias[:, None]
    if plan.reset_groups > 0:
        ref_int = np.asarray(plan.reset_integration, np.int64)
        raw += reset_anomaly(reset, ref_int, ngroups, plan.reset_groups)
    for i in range(1, nints):
        skip = plan.rscd_skip[i] if i < len(plan.rscd_skip) else 0
        raw[i] += rscd_offsets(signal[i - 1, -1], skip, ngroups, plan.rscd_fraction)
    if plan.emi:
        raw += emi_pattern(rows, cols, nints=nints, ngroups=ngroups, clock=plan.clock, waves=plan.emi)
    if plan.read_noise:
        raw += flicker_noise(
            rows, np.arange(x0, x0 + nx), seed=plan.seed, exposure=plan.exposure, nints=nints,
            ngroups=ngroups, clock=plan.clock, rms=plan.flicker_rms, alpha=plan.flicker_alpha,
        )  # fmt: skip
        sigma = np.nan_to_num(readnoise.astype(np.float64)) / np.sqrt(2.0)
        for by, bx, ysl, xsl in blocks(y0, y0 + ny, x0, x0 + nx):
            sl = (slice(ysl.start - y0, ysl.stop - y0), slice(xsl.start - x0, xsl.stop - x0))
            shape = (ysl.stop - ysl.start, xsl.stop - xsl.start)
            for i in range(nints):
                gen = rng(plan.seed, plan.exposure, Effect.WHITE_NOISE, by, bx, i)
                raw[(i, slice(None), *sl)] += gen.standard_normal((ngroups, *shape)) * sigma[sl]
    return np.clip(np.round(raw), 0.0, 65535.0).astype(np.float32)
