"""Cosmic-ray showers on MIRI: rare large events with a bright core and a faint extended halo.

MIRI's Si:As detectors show, besides ordinary cosmic-ray hits, large events
("showers") whose charge spreads into a faint halo tens of pixels across (jwst
``jump`` documentation, "find_showers"; Morrison et al. 2023, PASP 135, 075004).
Model per event: a core of ``core`` e⁻ (log-uniform in :data:`CORE_E`), a 2-D
Gaussian of sigma :data:`CORE_SIGMA_PX`, integrated over pixels; a halo of peak
``halo`` e⁻ per pixel (log-uniform in :data:`HALO_PEAK_E`) falling as
``exp(-r / scale)`` with ``scale`` uniform in :data:`HALO_SCALE_PX`, cut at
:data:`HALO_MAX_PX`. Events arrive uniformly in time at :data:`RATE` events
cm⁻² s⁻¹ (a nominal value: about one per 30 s on the imager), times ``scale``.

Reproducibility: each fixed 256-px block (:mod:`webbflow.sim.rng`) draws its own
events for each integration from its own stream; a tile collects the deposits of
every block within :data:`HALO_MAX_PX` of it, so a halo crossing a block (or tile)
edge is the same on any tiling.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from scipy.special import ndtr

from webbflow.sim.cosmic_rays import CosmicRayHits
from webbflow.sim.rng import BLOCK, Effect, blocks, rng

#: Shower rate, events cm⁻² s⁻¹.
RATE: Final = 0.005
#: Core charge range (log-uniform), e⁻.
CORE_E: Final = (3.0e4, 3.0e5)
#: rms radius of the core, pixels.
CORE_SIGMA_PX: Final = 0.8
#: Halo peak range (log-uniform), e⁻ per pixel.
HALO_PEAK_E: Final = (20.0, 200.0)
#: Halo exponential scale range (uniform), pixels.
HALO_SCALE_PX: Final = (4.0, 12.0)
#: Largest distance from the centre that gets charge, pixels.
HALO_MAX_PX: Final = 40
#: Smallest deposit kept, e⁻.
MIN_DEPOSIT_E: Final = 1.0


def _draw(
    seed: int, exposure: int, by: int, bx: int, integration: int, mean: float, nframes: int
) -> tuple[np.ndarray, ...]:
    """(frame, y, x, core, halo, scale) of the showers of one block and integration."""
    gen = rng(seed, exposure, Effect.SHOWERS, by, bx, integration)
    n = int(gen.poisson(mean))
    yc = by * BLOCK - 0.5 + BLOCK * gen.random(n)
    xc = bx * BLOCK - 0.5 + BLOCK * gen.random(n)
    frame = gen.integers(0, nframes, n)
    core = np.exp(np.log(CORE_E[0]) + np.log(CORE_E[1] / CORE_E[0]) * gen.random(n))
    halo = np.exp(np.log(HALO_PEAK_E[0]) + np.log(HALO_PEAK_E[1] / HALO_PEAK_E[0]) * gen.random(n))
    scale = HALO_SCALE_PX[0] + (HALO_SCALE_PX[1] - HALO_SCALE_PX[0]) * gen.random(n)
    return frame, yc, xc, core, halo, scale


def _profile(dy: np.ndarray, dx: np.ndarray, core: float, halo: float, scale: float) -> np.ndarray:
    """Charge in pixels at offsets ``dy``, ``dx`` (pixel centre − event centre), e⁻."""
    s = CORE_SIGMA_PX
    fy = ndtr((dy + 0.5) / s) - ndtr((dy - 0.5) / s)
    fx = ndtr((dx + 0.5) / s) - ndtr((dx - 0.5) / s)
    r = np.hypot(dy, dx)
    return core * fy * fx + np.where(r <= HALO_MAX_PX, halo * np.exp(-r / scale), 0.0)


def shower_hits(
    scale: float,
    seed: int,
    exposure: int,
    nints: int,
    nframes: int,
    frame_time: float,
    pitch_um: float,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    sensitive: tuple[int, int, int, int],
) -> CosmicRayHits:
    """Shower deposits in the tile rows ``[y0, y1)``, columns ``[x0, x1)``.

    Parameters
    ----------
    scale
        Factor on :data:`RATE`, >= 0.
    seed, exposure
        Program seed and exposure key.
    nints, nframes
        Integrations and frames from the reset to the last read of one.
    frame_time
        s.
    pitch_um
        Pixel pitch, µm.
    y0, y1, x0, x1
        Tile, full-frame 0-based pixels.
    sensitive
        ``(y0, y1, x0, x1)`` light-sensitive pixels of the window; nothing lands elsewhere.

    Returns
    -------
    CosmicRayHits
        Deposits sorted by (integration, frame, y, x), ties in block then event order.
    """
    mean = RATE * scale * (BLOCK * pitch_um * 1e-4) ** 2 * nframes * frame_time
    ty0, ty1 = max(y0, sensitive[0]), min(y1, sensitive[1])
    tx0, tx1 = max(x0, sensitive[2]), min(x1, sensitive[3])
    parts: list[tuple[np.ndarray, ...]] = []
    if mean <= 0.0 or ty0 >= ty1 or tx0 >= tx1:
        return _collect(parts, nframes)
    h = HALO_MAX_PX + 1
    region = (max(0, ty0 - h), ty1 + h, max(0, tx0 - h), tx1 + h)
    for by, bx, _, _ in blocks(*region):
        for i in range(nints):
            for frame, yc, xc, core, halo, sc in zip(
                *_draw(seed, exposure, by, bx, i, mean, nframes), strict=True
            ):
                ylo, yhi = (
                    max(ty0, int(np.floor(yc)) - HALO_MAX_PX),
                    min(ty1, int(np.ceil(yc)) + HALO_MAX_PX + 1),
                )
                xlo, xhi = (
                    max(tx0, int(np.floor(xc)) - HALO_MAX_PX),
                    min(tx1, int(np.ceil(xc)) + HALO_MAX_PX + 1),
                )
                if ylo >= yhi or xlo >= xhi:
                    continue
                yy, xx = np.mgrid[ylo:yhi, xlo:xhi]
                q = _profile(yy - yc, xx - xc, core, halo, sc)
                keep = q >= MIN_DEPOSIT_E
                n = int(keep.sum())
                parts.append((np.full(n, i), np.full(n, frame), yy[keep], xx[keep], q[keep]))
    return _collect(parts, nframes)


def _collect(parts: list[tuple[np.ndarray, ...]], nframes: int) -> CosmicRayHits:
    if not parts:
        i32 = np.zeros(0, np.int32)
        return CosmicRayHits(i32, i32, i32, i32, np.zeros(0, np.float32))
    integ, frame, y, x, q = (np.concatenate(c) for c in zip(*parts, strict=True))
    key = ((integ.astype(np.int64) * nframes + frame) * 4096 + y) * 4096 + x
    order = np.argsort(key, kind="stable")
    return CosmicRayHits(
        integ[order].astype(np.int32),
        frame[order].astype(np.int32),
        y[order].astype(np.int32),
        x[order].astype(np.int32),
        q[order].astype(np.float32),
    )
