"""Synthetic test-pattern exposures: a deterministic, lazily built raw ramp.

:func:`write_test_pattern` writes a jwst ``*_uncal.fits`` (``Level1bModel``) for
a NIRCam, NIRISS or FGS imaging exposure whose ramps contain the ingredients a
Detector1 run has to deal with: a bias with per-amplifier offsets, group-to-group
amplifier drifts (odd and even columns apart) and a 1/f-like pattern along the
slow axis shared by the four amplifiers, a slowly varying pattern along the fast
axis that the reference pixels see, dark current with hot pixels, a sparse field
of Gaussian point sources (one per block scaled to saturate partway up the
ramp, whatever the exposure time), shot noise, read noise, cosmic-ray
jumps and a quadratic non-linearity up to a per-pixel full well near the
detector's saturation level. It is a *test pattern*, not a simulation: the
primary header says so (``TESTPATT = T``).

Determinism: the detector is cut into fixed :data:`BLOCK` × :data:`BLOCK` pixel
blocks; every random effect of a block draws from its own
``numpy.random.Philox`` stream seeded by ``SeedSequence((seed, block_y, block_x,
effect))``, and whole-detector patterns from streams keyed like a block at
:data:`_WHOLE`. The values of a pixel therefore do not depend on the dask
chunking, nor on where a window of a given size sits (the frame time, hence
the ramps, depend on the window's size, ``nints``, ``ngroups`` and read pattern).
The same arguments give the same bytes on a given platform and numpy version.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Final

import dask
import dask.array as da
import numpy as np
import xarray as xr
from scipy.special import erf

from webbflow.detectors import READ_PATTERNS, Detector, frame_time, get_detector
from webbflow.engine.tiling import tile_shape
from webbflow.errors import UsageError
from webbflow.io.products import fits_product
from webbflow.model import RAMP_DIMS
from webbflow.sim.meta import Identity, exposure_meta

#: Edge of the fixed pixel blocks that carry the random streams, pixels.
BLOCK: Final = 256
_FULL: Final = 2048
_WHOLE: Final = 1 << 20  # block index of whole-detector streams
_PSF_RADIUS: Final = 12  # pixels rendered around a source
_ROW_NOISE_RMS: Final = 1.5  # DN, 1/f-like pattern along the slow axis, per group
_AMP_DRIFT_RMS: Final = 1.0  # DN, per amplifier, column parity and group
_DATE_OBS: Final = "2026-01-01"
_TIME_OBS: Final = "00:00:00.000"

_OPTICS: Final = {
    "NIRCAM": {"SHORT": ("F200W", "CLEAR"), "LONG": ("F444W", "CLEAR")},
    "NIRISS": {"": ("CLEAR", "F150W")},
}


class Effect(IntEnum):
    """The random effects; each has its own stream per block."""

    BIAS = 1
    DARK = 2
    SOURCES = 3
    SHOT = 4
    READ = 5
    COSMICS = 6
    RESET = 7
    FULL_WELL = 8
    ROW_NOISE = 9
    FAST_PATTERN = 10
    AMP_DRIFT = 11


def _rng(seed: int, by: int, bx: int, effect: Effect) -> np.random.Generator:
    key = np.random.SeedSequence((seed, by, bx, int(effect))).generate_state(2, np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


@dataclass(frozen=True)
class _Plan:
    """Everything a block needs (hashable, picklable)."""

    seed: int
    detector: str
    nints: int
    ngroups: int
    nframes: int
    groupgap: int
    frame_time: float

    @property
    def det(self) -> Detector:
        return get_detector(self.detector)

    @property
    def curvature(self) -> float:
        """``c`` of the raw signal ``r = s - c s²`` (DN), from the detector's non-linearity."""
        det = self.det
        s = det.saturation - det.bias
        return det.nonlinearity / (s * (1.0 + det.nonlinearity) ** 2)

    @property
    def group_times(self) -> np.ndarray:
        """Mean time after reset of the frames of each group, s, shape (ngroups,)."""
        g = np.arange(self.ngroups)
        return self.frame_time * (g * (self.nframes + self.groupgap) + (self.nframes + 1) / 2)


# -- whole-detector patterns (small, cached per process) -------------------------------------
@functools.lru_cache(maxsize=8)
def _whole_patterns(plan: _Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row_noise (nints, ngroups, 2048), fast_pattern (2048,), amp_drift (nints, ngroups, 4, 2))``."""
    shape = (plan.nints, plan.ngroups, _FULL)
    white = _rng(plan.seed, _WHOLE, _WHOLE, Effect.ROW_NOISE).standard_normal(shape)
    freq = np.fft.rfftfreq(_FULL)
    freq[0] = freq[1]
    pink = np.fft.irfft(np.fft.rfft(white, axis=-1) / np.sqrt(freq / freq[1]), n=_FULL, axis=-1)
    pink *= _ROW_NOISE_RMS / pink.std()
    rng = _rng(plan.seed, _WHOLE, _WHOLE, Effect.FAST_PATTERN)
    f = np.arange(_FULL)
    fast = sum(
        a * np.sin(2 * np.pi * f / p + rng.uniform(0, 2 * np.pi))
        for a, p in ((25.0, 1400.0), (10.0, 330.0), (4.0, 61.0))
    )
    drift = _rng(plan.seed, _WHOLE, _WHOLE, Effect.AMP_DRIFT).normal(
        0.0, _AMP_DRIFT_RMS, (plan.nints, plan.ngroups, 4, 2)
    )
    drift += np.linspace(0.0, 3.0, plan.ngroups)[None, :, None, None]
    return pink, np.asarray(fast), drift


def _sources(plan: _Plan, by: int, bx: int) -> np.ndarray:
    """Sources centred in block (by, bx): rows of (y, x, flux e⁻/s, sigma px), full-frame."""
    rng = _rng(plan.seed, by, bx, Effect.SOURCES)
    n = rng.poisson(6) + 1
    y = by * BLOCK + rng.uniform(0, BLOCK, n)
    x = bx * BLOCK + rng.uniform(0, BLOCK, n)
    flux = np.minimum(300.0 * rng.uniform(0, 1, n) ** -1.0, 1e7)  # N(>F) ∝ 1/F
    sigma = rng.uniform(0.9, 1.6, n)
    # one star per block, off the reference pixels, saturates its peak pixel after about
    # 1/k of the ramp, k in [1.5, 12]
    det = plan.det
    full_well_e = (det.saturation - det.bias) * (1 + det.nonlinearity) * det.gain
    k = 10 ** rng.uniform(np.log10(1.5), np.log10(12.0))
    flux[0] = k * full_well_e / plan.group_times[-1] * 2 * np.pi * sigma[0] ** 2
    y[0], x[0] = (np.clip(v, 16, _FULL - 17) for v in (y[0], x[0]))
    return np.column_stack([y, x, flux, sigma])


def _profile(edges: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """Fraction of a 1-D Gaussian falling in each pixel between consecutive ``edges``."""
    c = 0.5 * (1 + erf((edges - centre) / (np.sqrt(2) * sigma)))
    return np.diff(c)


def _source_rate(plan: _Plan, by: int, bx: int) -> np.ndarray:
    """Point-source rate in block (by, bx), e⁻/s, shape (BLOCK, BLOCK)."""
    nb = _FULL // BLOCK
    y0, x0 = by * BLOCK, bx * BLOCK
    rate = np.zeros((BLOCK, BLOCK))
    for ny in range(max(0, by - 1), min(nb, by + 2)):
        for nx in range(max(0, bx - 1), min(nb, bx + 2)):
            for yc, xc, flux, sigma in _sources(plan, ny, nx):
                ya, yb = max(y0, int(yc) - _PSF_RADIUS), min(y0 + BLOCK, int(yc) + _PSF_RADIUS + 1)
                xa, xb = max(x0, int(xc) - _PSF_RADIUS), min(x0 + BLOCK, int(xc) + _PSF_RADIUS + 1)
                if ya >= yb or xa >= xb:
                    continue
                py = _profile(np.arange(ya, yb + 1) - 0.5, yc, sigma)
                px = _profile(np.arange(xa, xb + 1) - 0.5, xc, sigma)
                rate[ya - y0 : yb - y0, xa - x0 : xb - x0] += flux * np.outer(py, px)
    return rate


def _block_ramp(plan: _Plan, by: int, bx: int) -> np.ndarray:
    """Raw DN of block (by, bx): float64 integers, shape (nints, ngroups, BLOCK, BLOCK)."""
    det = plan.det
    nints, ngroups = plan.nints, plan.ngroups
    ys = by * BLOCK + np.arange(BLOCK)
    xs = bx * BLOCK + np.arange(BLOCK)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    edge = det.refpix
    ref = (yy < edge) | (yy >= _FULL - edge) | (xx < edge) | (xx >= _FULL - edge)
    fast, slow = (xx, yy) if det.amp_axis == "x" else (yy, xx)

    # photo-electrons: sky + dark (+ hot pixels) + sources, none in reference pixels
    rng = _rng(plan.seed, by, bx, Effect.DARK)
    dark = det.dark_current * rng.lognormal(0.0, 0.4, (BLOCK, BLOCK))
    hot = rng.random((BLOCK, BLOCK)) < 1e-3
    dark[hot] += rng.uniform(0.5, 50.0, int(hot.sum()))
    rate = np.where(ref, 0.0, 0.4 + dark + _source_rate(plan, by, bx))
    t = plan.group_times
    dt = np.diff(t, prepend=0.0)
    shot = _rng(plan.seed, by, bx, Effect.SHOT).poisson(
        rate[None, None] * dt[None, :, None, None], (nints, ngroups, BLOCK, BLOCK)
    )
    charge = np.cumsum(shot, axis=1, dtype=np.float64)

    # cosmic rays: a jump in group g (0-based, g >= 1) that stays in every later group
    rng = _rng(plan.seed, by, bx, Effect.COSMICS)
    if ngroups > 1:
        for i in range(nints):
            n = rng.poisson(4)
            cy, cx = rng.integers(edge, BLOCK - edge, n), rng.integers(edge, BLOCK - edge, n)
            cg = rng.integers(1, ngroups, n)
            amp = 10 ** rng.uniform(2.5, 4.5, n)
            for y, x, g, a in zip(cy, cx, cg, amp, strict=True):
                if ref[y, x]:
                    continue
                charge[i, g:, y, x] += a
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):  # faint halo inside the block
                    if 0 <= y + dy < BLOCK and 0 <= x + dx < BLOCK and not ref[y + dy, x + dx]:
                        charge[i, g:, y + dy, x + dx] += 0.04 * a

    # non-linearity and full well: r = s - c s², flat beyond a per-pixel full well
    c = plan.curvature
    ceiling = (det.saturation - det.bias) * (
        1 + 0.01 * _rng(plan.seed, by, bx, Effect.FULL_WELL).standard_normal((BLOCK, BLOCK))
    )
    full_well = (1 - np.sqrt(1 - 4 * c * ceiling)) / (2 * c)
    s = np.minimum(charge / det.gain, full_well)
    signal = s - c * s * s

    # bias: per pixel, per amplifier, per reset; drifts, row noise and fast-axis pattern
    row_noise, fast_pattern, drift = _whole_patterns(plan)
    bias = det.bias + _rng(plan.seed, by, bx, Effect.BIAS).normal(0.0, 120.0, (BLOCK, BLOCK))
    amp = np.minimum(fast // det.amp_width, det.namps - 1)
    bias += np.asarray(det.amp_bias_offsets)[amp] + fast_pattern[fast]
    reset = _rng(plan.seed, by, bx, Effect.RESET).normal(0.0, 12.0, (nints, 1, BLOCK, BLOCK))
    read = _rng(plan.seed, by, bx, Effect.READ).normal(
        0.0,
        det.read_noise / np.sqrt(2 * plan.nframes),
        (nints, ngroups, BLOCK, BLOCK),  # READNOISE is CDS
    )
    raw = signal + bias + reset + read
    raw += drift[:, :, amp, fast % 2] + row_noise[:, :, slow]
    return np.clip(np.round(raw), 0, 65535)


def _chunk(plan: _Plan, y0: int, x0: int, block_info: Any = None) -> np.ndarray:
    """One dask chunk: assemble the blocks overlapping it (``y0``/``x0``: array origin)."""
    loc = block_info[None]["array-location"]
    ya, yb = y0 + loc[2][0], y0 + loc[2][1]
    xa, xb = x0 + loc[3][0], x0 + loc[3][1]
    out = np.empty((plan.nints, plan.ngroups, yb - ya, xb - xa), np.float32)
    for by in range(ya // BLOCK, (yb - 1) // BLOCK + 1):
        for bx in range(xa // BLOCK, (xb - 1) // BLOCK + 1):
            block = _block_ramp(plan, by, bx)
            sy = slice(max(ya, by * BLOCK), min(yb, (by + 1) * BLOCK))
            sx = slice(max(xa, bx * BLOCK), min(xb, (bx + 1) * BLOCK))
            out[:, :, sy.start - ya : sy.stop - ya, sx.start - xa : sx.stop - xa] = block[
                :,
                :,
                sy.start - by * BLOCK : sy.stop - by * BLOCK,
                sx.start - bx * BLOCK : sx.stop - bx * BLOCK,
            ]
    return out


def _aligned_chunks(start: int, size: int, tile: int) -> tuple[int, ...]:
    """Chunk lengths over ``[start, start + size)`` with edges on multiples of ``tile``."""
    edges = [start, *range((start // tile + 1) * tile, start + size, tile), start + size]
    return tuple(b - a for a, b in itertools.pairwise(edges))


def build_test_pattern(
    *,
    detector: str = "NRCA1",
    ngroups: int = 10,
    nints: int = 1,
    readpatt: str = "RAPID",
    subarray: tuple[int, int, int, int] | None = None,
    seed: int = 0,
    tile: int | None = None,
) -> xr.Dataset:
    """A lazy ramp-level exposure holding the test pattern (see :func:`write_test_pattern`).

    Returns
    -------
    xarray.Dataset
        ``sci`` float32 raw DN (integer values, 0-65535), ``groupdq`` uint8 zeros,
        dims ``("integration", "group", "y", "x")``; ``pixeldq`` uint32 zeros;
        ``y``/``x`` 0-based full-frame coordinates; ``attrs["meta"]`` jwst meta;
        ``attrs["fits_extra"]`` the ``TESTPATT``/``NOUTPUTS``/``TPSEED`` cards.
    """
    det = get_detector(detector)
    patterns = READ_PATTERNS.get(det.instrument, {})
    if readpatt.upper() not in patterns:
        raise UsageError(
            f"readpatt {readpatt!r} is not a {det.instrument} pattern (choose from {', '.join(patterns)})"
        )
    if ngroups < 1 or nints < 1:
        raise UsageError(f"ngroups and nints must be >= 1, got ngroups={ngroups}, nints={nints}")
    if seed < 0:
        raise UsageError(f"seed must be >= 0, got {seed}")
    xstart, ystart, xsize, ysize = subarray or (1, 1, _FULL, _FULL)
    if not (
        xstart >= 1
        and ystart >= 1
        and xsize >= 1
        and ysize >= 1
        and xstart + xsize - 1 <= _FULL
        and ystart + ysize - 1 <= _FULL
    ):
        raise UsageError(
            f"subarray {subarray} (xstart, ystart, xsize, ysize; 1-based) "
            f"does not fit in the {_FULL}×{_FULL} detector"
        )
    nframes, groupgap = patterns[readpatt.upper()]
    tframe, noutputs = frame_time(det, xsize, ysize)
    plan = _Plan(seed, det.name, nints, ngroups, nframes, groupgap, tframe)
    ty, tx = tile_shape(ysize, xsize, nints * ngroups, tile)
    chunks = (
        (nints,),
        (ngroups,),
        _aligned_chunks(ystart - 1, ysize, ty),
        _aligned_chunks(xstart - 1, xsize, tx),
    )
    name = "testpattern-" + dask.base.tokenize(plan, xstart, ystart, chunks)
    sci = da.map_blocks(
        _chunk,
        plan,
        ystart - 1,
        xstart - 1,
        chunks=chunks,
        dtype=np.float32,
        meta=np.empty((0, 0, 0, 0), np.float32),
        name=name,
    )
    coords = {
        "integration": np.arange(1, nints + 1, dtype=np.int32),
        "group": np.arange(1, ngroups + 1, dtype=np.int32),
        "y": np.arange(ystart - 1, ystart - 1 + ysize, dtype=np.int32),
        "x": np.arange(xstart - 1, xstart - 1 + xsize, dtype=np.int32),
    }
    data = {
        "sci": (RAMP_DIMS, sci),
        "groupdq": (RAMP_DIMS, da.zeros(sci.shape, dtype=np.uint8, chunks=sci.chunks)),
        "pixeldq": (("y", "x"), da.zeros((ysize, xsize), dtype=np.uint32, chunks=sci.chunks[2:])),
    }
    meta = _meta(det, plan, readpatt.upper(), (xstart, ystart, xsize, ysize))
    extra = [
        ["TESTPATT", True, "synthetic test pattern, not a simulation"],
        ["TPSEED", seed, "seed of the webbflow.demo test pattern"],
        ["NOUTPUTS", noutputs, "Number of detector outputs used"],  # if keywords lack it
    ]
    return xr.Dataset(data, coords=coords, attrs={"meta": meta, "fits_extra": extra})


def _meta(det: Detector, plan: _Plan, readpatt: str, window: tuple[int, int, int, int]) -> dict[str, Any]:
    _, _, xsize, ysize = window
    optics = _OPTICS.get(det.instrument, {}).get(det.channel, ("", ""))
    meta = exposure_meta(
        det,
        readpatt=readpatt,
        nints=plan.nints,
        ngroups=plan.ngroups,
        nframes=plan.nframes,
        groupgap=plan.groupgap,
        frame_time=plan.frame_time,
        noutputs=frame_time(det, xsize, ysize)[1],
        window=window,
        subarray_name="FULL" if (xsize, ysize) == (_FULL, _FULL) else "GENERIC",
        identity=Identity(),
        date_obs=_DATE_OBS,
        time_obs=_TIME_OBS,
        filter=optics[0],
        pupil=optics[1],
    )
    meta["target"] = {"proposer_name": "TEST PATTERN", "ra": 80.0, "dec": -69.5}
    return meta


def write_test_pattern(
    path: str | Path,
    *,
    detector: str = "NRCA1",
    ngroups: int = 10,
    nints: int = 1,
    readpatt: str = "RAPID",
    subarray: tuple[int, int, int, int] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    tile: int | None = None,
) -> Path:
    """Write a synthetic test-pattern ``*_uncal.fits`` exposure, tile by tile.

    Parameters
    ----------
    path
        Output file (jwst convention: ``..._uncal.fits``).
    detector
        ``DETECTOR`` name: ``NRCA1`` … ``NRCBLONG``, ``NIS``, ``GUIDER1``, ``GUIDER2``.
    ngroups, nints
        Groups per integration and integrations.
    readpatt
        Readout pattern of the instrument (``RAPID``, ``BRIGHT2``, ``NISRAPID``, ``FGSRAPID``…).
    subarray
        ``(xstart, ystart, xsize, ysize)``, 1-based like ``SUBSTRT1/2``; ``None``: full frame.
    seed
        Non-negative seed; the same arguments and seed give the same bytes.
    overwrite
        Replace an existing file.
    tile
        Edge of the dask chunks used to build and write it (does not change the data).

    Returns
    -------
    Path
        ``path``. The file is a ``Level1bModel``: PRIMARY with the exposure keywords and
        ``TESTPATT = T``, SCI uint16 ``(nints, ngroups, ysize, xsize)``.
    """
    ds = build_test_pattern(
        detector=detector,
        ngroups=ngroups,
        nints=nints,
        readpatt=readpatt,
        subarray=subarray,
        seed=seed,
        tile=tile,
    )
    product = fits_product(ds, path, "uncal", overwrite=overwrite)
    try:
        dask.compute(*product.prepare())
    except BaseException:
        product.abort()
        raise
    return product.finish()
