"""From a count-rate image to a raw ramp: the detector's signal chain, one tile at a time.

Three kernels, run in this order by :mod:`webbflow.graphs.simulate`:

1. :func:`signal_kernel`: photo-electrons and dark electrons accumulate frame by
   frame with Poisson statistics, cosmic rays add their charge in the frame they
   arrive, each read is turned into DN through the gain, passed through the
   inverse of the linearity correction and held at the pixel's full well, and
   the reads of each group are averaged (skipped frames still collect charge).
   The result is the bias-free, noise-free raw signal, DN.
2. :func:`ipc_kernel`: inter-pixel capacitance couples each pixel's signal to its
   neighbours (a convolution with the IPC reference kernel, the operation the
   ``ipc`` calibration step inverts); it needs a 1-pixel halo.
3. :func:`raw_kernel`: the bias (superbias reference plus a per-integration
   reset offset), the HxRG read noise (:mod:`webbflow.sim.noise`) and the
   16-bit digitisation.

Reproducibility: Poisson draws come from the stream of their fixed 256-px block
(:mod:`webbflow.sim.rng`), drawn for the block's whole overlap with the exposure
window. Tiles must therefore not cut a block inside the window:
:func:`block_aligned_chunks` makes such tiles.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np
from scipy import ndimage

from webbflow.detectors import get_detector
from webbflow.sim import cosmic_rays as cr
from webbflow.sim import noise as hxrg
from webbflow.sim.rng import BLOCK, Effect, blocks, rng

#: Largest raw DN a pixel may hold above its bias (leaves room for noise below 65535).
_ADC_HEADROOM = 300.0
#: Full well relative to the SATURATION reference level (bias subtracted): pixels
#: plateau a little above the threshold the ``saturation`` step flags.
FULL_WELL_MARGIN = 1.03
#: Newton iterations of the inverse linearity (converges to < 1e-6 DN in ~4).
_NEWTON_STEPS = 8
#: rms of the per-integration reset (kTC) offset, DN.
RESET_NOISE_DN = 5.0


@dataclass(frozen=True)
class RampPlan:
    """What every tile of one exposure needs to know (hashable, picklable).

    Attributes
    ----------
    seed, exposure
        Program seed and :func:`webbflow.sim.rng.exposure_key` of the exposure.
    detector
        ``DETECTOR`` name.
    nints, ngroups, nframes, groupgap
        Readout (``NFRAMES`` reads averaged per group, ``GROUPGAP`` skipped between groups).
    frame_time
        ``TFRAME``, s.
    window
        ``(xstart, ystart, xsize, ysize)``, 1-based, full frame.
    poisson, cosmic_rays, nonlinearity, saturation, read_noise, superbias
        Which effects are on.
    cr_environment, cr_scale
        Cosmic-ray environment (``SUNMIN``/``SUNMAX``/``FLARES``) and rate factor.
    noise
        Correlated-noise amplitudes (DN per frame); ``None``: white noise only.
    """

    seed: int
    exposure: int
    detector: str
    nints: int
    ngroups: int
    nframes: int
    groupgap: int
    frame_time: float
    window: tuple[int, int, int, int]
    poisson: bool = True
    cosmic_rays: bool = True
    nonlinearity: bool = True
    saturation: bool = True
    read_noise: bool = True
    superbias: bool = True
    cr_environment: str = "SUNMAX"
    cr_scale: float = 1.0
    noise: hxrg.NoiseModel | None = field(default=None)

    @property
    def reads(self) -> np.ndarray:
        """``(ngroups * nframes, 2)`` int: frame index (0-based after the reset) and group of each read."""
        period = self.nframes + self.groupgap
        frames = [(g * period + j, g) for g in range(self.ngroups) for j in range(self.nframes)]
        return np.asarray(frames, dtype=np.int64)

    @property
    def frames_per_int(self) -> int:
        """Frames from the reset to the last read of an integration."""
        return self.ngroups * (self.nframes + self.groupgap) - self.groupgap

    @property
    def readout(self) -> hxrg.Readout:
        """The readout description the noise model uses."""
        return hxrg.Readout(self.nints, self.ngroups, self.nframes, self.groupgap, self.window)


def block_aligned_chunks(start: int, size: int, tile: int) -> tuple[int, ...]:
    """Chunk lengths over full-frame ``[start, start + size)`` with inner edges on the block grid.

    ``tile`` is rounded up to a multiple of :data:`~webbflow.sim.rng.BLOCK`.
    """
    step = max(BLOCK, -(-int(tile) // BLOCK) * BLOCK)
    edges = [start, *range((start // step + 1) * step, start + size, step), start + size]
    return tuple(b - a for a, b in itertools.pairwise(edges))


class Signal(NamedTuple):
    """Output of :func:`signal_kernel`."""

    signal: np.ndarray


class Raw(NamedTuple):
    """Output of :func:`raw_kernel`."""

    sci: np.ndarray


def full_well(saturation: np.ndarray, superbias: np.ndarray) -> np.ndarray:
    """Raw DN above bias at which a pixel stops collecting, (y, x) float64.

    A little above the ``SATURATION`` threshold so the ``saturation`` step flags
    the plateau, and never so high that bias plus signal leaves the 16-bit range.
    """
    sat = np.nan_to_num(saturation.astype(np.float64), nan=65535.0)
    bias = np.nan_to_num(superbias.astype(np.float64), nan=0.0)
    well = FULL_WELL_MARGIN * (sat - bias)
    return np.clip(well, 0.0, 65535.0 - _ADC_HEADROOM - bias)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _to_raw(
    linear: np.ndarray, coeffs: np.ndarray, well: np.ndarray, nonlinear: bool, saturate: bool
) -> np.ndarray:  # pragma: no cover - compiled
    """Raw DN (y, x) of linear DN ``linear``: inverse of ``linear = sum_k c_k raw**k``, held at ``well``."""
    ny, nx = linear.shape
    nc = coeffs.shape[0]
    out = np.empty((ny, nx), np.float64)
    for i in range(ny):
        for j in range(nx):
            lin = linear[i, j]
            cap = well[i, j]
            if not nonlinear:
                out[i, j] = min(lin, cap) if saturate else lin
                continue
            # linear value at the full well: beyond it the pixel is flat
            p = 0.0
            for k in range(nc - 1, -1, -1):
                p = p * cap + coeffs[k, i, j]
            if saturate and lin >= p:
                out[i, j] = cap
                continue
            r = lin
            for _ in range(_NEWTON_STEPS):
                f = 0.0
                d = 0.0
                for k in range(nc - 1, -1, -1):
                    d = d * r + f
                    f = f * r + coeffs[k, i, j]
                if d <= 0.0 or not np.isfinite(d):
                    break
                r -= (f - lin) / d
            out[i, j] = r if np.isfinite(r) else lin
    return out


def signal_kernel(
    *,
    y: np.ndarray,
    x: np.ndarray,
    rate: np.ndarray,
    dark: np.ndarray,
    gain: np.ndarray,
    coeffs: np.ndarray,
    saturation: np.ndarray,
    superbias: np.ndarray,
    plan: RampPlan,
) -> Signal:
    """Group-averaged raw signal above bias of one tile, before IPC and noise.

    Parameters
    ----------
    y, x
        (ny,), (nx,) int: full-frame pixel indices of the tile (block aligned).
    rate
        (ny, nx) float32 photo-electron rate, e⁻/s (sources, sky; flat and pixel area applied).
    dark
        (ny, nx) float32 dark current, e⁻/s.
    gain
        (ny, nx) float32 gain, e⁻/DN.
    coeffs
        (ncoeff, ny, nx) float32 linearity coefficients (raw above bias → linear DN), lowest order first.
    saturation, superbias
        (ny, nx) float32 ``SATURATION`` and ``SUPERBIAS`` reference levels, DN: they set the full well.
    plan
        The exposure's :class:`RampPlan`.

    Returns
    -------
    Signal
        ``signal`` (nints, ngroups, ny, nx) float32, raw DN above bias.
    """
    ny, nx = rate.shape
    y0, x0 = int(y[0]), int(x[0])
    check_aligned(plan.window, y0, ny, x0, nx)
    lam = np.clip(np.nan_to_num(rate.astype(np.float64)) + np.nan_to_num(dark.astype(np.float64)), 0, None)
    inv_gain = 1.0 / np.where(np.isfinite(gain) & (gain > 0), gain, 1.0).astype(np.float64)
    coeffs64 = np.ascontiguousarray(np.nan_to_num(coeffs.astype(np.float64)))
    if coeffs64.shape[0] < 2:
        coeffs64 = np.stack([np.zeros((ny, nx)), np.ones((ny, nx))])
    well64 = np.ascontiguousarray(full_well(saturation, superbias))
    reads = plan.reads
    last_read = {int(g): int(reads[reads[:, 1] == g, 0].max()) for g in np.unique(reads[:, 1])}
    out = np.empty((plan.nints, plan.ngroups, ny, nx), np.float32)
    cells = list(blocks(y0, y0 + ny, x0, x0 + nx))
    hits = _hits(plan, y0, ny, x0, nx)
    for i in range(plan.nints):
        streams = [rng(plan.seed, plan.exposure, Effect.POISSON, by, bx, i) for by, bx, _, _ in cells]
        charge = np.zeros((ny, nx))
        acc = np.zeros((ny, nx))
        prev = -1
        mine = hits.integration == i
        for frame, group in reads:
            dt = (frame - prev) * plan.frame_time
            if plan.poisson:
                for gen, (_, _, ys, xs) in zip(streams, cells, strict=True):
                    sl = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
                    charge[sl] += gen.poisson(lam[sl] * dt)
            else:
                charge += lam * dt
            arrived = mine & (hits.frame > prev) & (hits.frame <= frame)
            if arrived.any():
                flat = (hits.y[arrived] - y0) * nx + (hits.x[arrived] - x0)
                charge += np.bincount(flat, hits.electrons[arrived], minlength=ny * nx).reshape(ny, nx)
            prev = frame
            acc += _to_raw(charge * inv_gain, coeffs64, well64, plan.nonlinearity, plan.saturation)
            if frame == last_read[group]:
                out[i, group] = acc / plan.nframes
                acc[:] = 0.0
    return Signal(out)


def _hits(plan: RampPlan, y0: int, ny: int, x0: int, nx: int) -> cr.CosmicRayHits:
    if plan.cosmic_rays and plan.cr_environment.upper() != "NONE" and plan.cr_scale > 0:
        return cr.cosmic_ray_hits(
            plan.cr_environment,
            plan.cr_scale,
            plan.seed,
            plan.exposure,
            plan.nints,
            plan.frames_per_int,
            plan.frame_time,
            plan.window,
            y0,
            y0 + ny,
            x0,
            x0 + nx,
        )
    empty = np.zeros(0, np.int32)
    return cr.CosmicRayHits(empty, empty, empty, empty, np.zeros(0, np.float32))


def check_aligned(window: tuple[int, int, int, int], y0: int, ny: int, x0: int, nx: int) -> None:
    """A tile must hold whole block ∩ window cells (their Poisson streams are drawn whole).

    ``window`` is the exposure's ``(xstart, ystart, xsize, ysize)``, 1-based.
    """
    xs, ys, xsize, ysize = window
    wy0, wx0 = ys - 1, xs - 1
    for lo, n, w0, wn in ((y0, ny, wy0, ysize), (x0, nx, wx0, xsize)):
        if (lo != w0 and lo % BLOCK) or (lo + n != w0 + wn and (lo + n) % BLOCK):
            raise ValueError(
                f"simulation tile [{lo}, {lo + n}) cuts a {BLOCK}-px random-number block; "
                "use block_aligned_chunks"
            )


def coupling_kernel(deconvolution: np.ndarray, size: int = 5) -> np.ndarray:
    """The IPC coupling the detector applies, from an ``IPC`` reference's deconvolution kernel.

    The exact inverse of the reference kernel (computed by FFT on a padded
    grid), cropped to ``size`` × ``size`` and normalized to sum 1, so the ``ipc``
    step undoes it up to the crop (terms of order alpha³).

    Parameters
    ----------
    deconvolution
        (ky, kx) float deconvolution kernel (odd sizes, centre at ``(ky//2, kx//2)``).
    size
        Odd edge of the returned kernel.

    Returns
    -------
    numpy.ndarray
        (size, size) float64 coupling kernel, centre at ``(size//2, size//2)``.
    """
    k = np.asarray(deconvolution, np.float64)
    n = 64
    padded = np.zeros((n, n))
    cy, cx = k.shape[0] // 2, k.shape[1] // 2
    padded[: k.shape[0], : k.shape[1]] = k
    padded = np.roll(padded, (-cy, -cx), axis=(0, 1))  # centre at the origin
    inverse = np.real(np.fft.ifft2(1.0 / np.fft.fft2(padded)))
    h = size // 2
    out = np.roll(inverse, (h, h), axis=(0, 1))[:size, :size]
    return out / out.sum()


def ipc_kernel(*, signal: np.ndarray, kernel: np.ndarray) -> Signal:
    """Couple neighbours: convolve each group image with the IPC kernel (zero beyond the tile).

    Parameters
    ----------
    signal
        (nints, ngroups, ny, nx) float32 raw DN above bias (halo included).
    kernel
        (ky, kx) float coupling kernel summing to 1 (:func:`coupling_kernel` of the ``IPC`` reference).
    """
    weights = np.asarray(kernel, np.float64)[None, None]
    out = ndimage.convolve(signal.astype(np.float64), weights, mode="constant", cval=0.0)
    return Signal(out.astype(np.float32))


def reset_offsets(plan: RampPlan, y0: int, ny: int, x0: int, nx: int) -> np.ndarray:
    """Per-integration reset (kTC) offset of each pixel, (nints, ny, nx) float64 DN.

    Constant within an integration, so it cancels in slopes; drawn per block.
    """
    reset = np.empty((plan.nints, ny, nx))
    for by, bx, ys, xs in blocks(y0, y0 + ny, x0, x0 + nx):
        sl = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
        for i in range(plan.nints):
            gen = rng(plan.seed, plan.exposure, Effect.RESET, by, bx, i)
            reset[(i, *sl)] = gen.normal(0.0, RESET_NOISE_DN, (ys.stop - ys.start, xs.stop - xs.start))
    return reset


def raw_kernel(
    *,
    y: np.ndarray,
    x: np.ndarray,
    signal: np.ndarray,
    superbias: np.ndarray,
    readnoise: np.ndarray,
    plan: RampPlan,
) -> Raw:
    """Raw 16-bit DN of one tile: signal + bias + reset offset + read noise, digitised.

    Parameters
    ----------
    y, x
        Full-frame pixel indices of the tile.
    signal
        (nints, ngroups, ny, nx) float32 raw DN above bias (after IPC).
    superbias
        (ny, nx) float32 bias level, DN (the ``SUPERBIAS`` reference).
    readnoise
        (ny, nx) float32 ``READNOISE`` reference, DN: the noise of a difference of two reads,
        as jwst's ramp fitting and jump detection read it; one read gets ``readnoise / √2``.
    plan
        The exposure's :class:`RampPlan`.

    Returns
    -------
    Raw
        ``sci`` (nints, ngroups, ny, nx) float32 holding integers in [0, 65535].
    """
    ny, nx = superbias.shape
    y0, x0 = int(y[0]), int(x[0])
    raw = signal.astype(np.float64)
    if plan.superbias:
        raw += np.nan_to_num(superbias.astype(np.float64))[None, None]
    if plan.read_noise:
        raw += reset_offsets(plan, y0, ny, x0, nx)[:, None]
        det = get_detector(plan.detector)
        model = plan.noise or hxrg.NoiseModel(0.0, 0.0, 0.0, 0.0)
        white = np.nan_to_num(readnoise.astype(np.float64)) / np.sqrt(2.0)
        raw += hxrg.read_noise(
            model, plan.readout, det, plan.seed, plan.exposure, y0, y0 + ny, x0, x0 + nx, white
        )
    return Raw(np.clip(np.round(raw), 0.0, 65535.0).astype(np.float32))
