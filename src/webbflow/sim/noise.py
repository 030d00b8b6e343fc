"""Correlated HxRG read noise, time-ordered like the real readout, on any tiling.

Model (after Rauscher 2015, "NGHXRG", PASP 127, 1144). Besides white read noise an H2RG read by
a SIDECAR ASIC shows 1/f ("pink") noise common to all outputs, pink noise of each output alone,
alternating-column noise (ACN: pink noise whose sign flips between even and odd columns in read
order) and a random offset per output and frame (pedestal). The pink components are stationary in
*time*, so they are laid out in readout order: one sample every 10 µs, the outputs read in
parallel, each row of an output followed by 12 line-overhead samples and each frame by the
frame-overhead rows (:func:`webbflow.detectors.frame_time`), alternate outputs reading the fast axis in
opposite directions, a reset frame before each integration and skipped frames taking their time.

Amplitudes. A pink component of amplitude ``sigma`` has the one-sided spectrum
``P(f) = K f**-alpha`` (DN²/Hz) with ``sigma**2 = ∫ P df`` from ``1 / t_frame`` (full frame) to the
50 kHz Nyquist frequency: ``sigma`` is its rms within one full frame. Frequencies below that
band (down to half the inverse integration time) are simulated as well.

Tiling. A 1/f stream cannot be cut into independent pieces without losing its low frequencies,
so each pink stream is the sum of two parts whose spectra add up to ``K f**-alpha``:

* low frequencies, weight ``w(f)`` (1 below ``3 / T_seg``, a cos² taper in log f, 0 above
  ``24 / T_seg``): one series per integration synthesised by FFT (zero-padded to twice its
  length so it is not periodic), sampled once per row (several times per row in windows of fewer
  than 128 rows) and linearly interpolated to the pixel times, the interpolation's sinc²
  response divided out. It holds rows × frames × streams values from a ``WHOLE`` stream, is
  computed identically by every tile, averaged over each group's frames and cached per process;
* high frequencies, weight ``1 - w``: an FFT synthesis per *segment* (128 window rows of one
  output, ``T_seg`` long) and group from its own stream; a tile synthesises only the segments
  it touches. Independent segments smear each spectral line by ``sinc²(f T_seg)``; with the
  crossover several lines above ``1 / T_seg`` the sum of the two parts stays within 2 % of
  ``K f**-alpha`` (a ripple near the crossover; < 0.5 % elsewhere, alpha 1 to 1.6). A segment
  shorter than ``T_seg`` (window edge) keeps its variance: the power below its first line goes
  to its mean.

White noise, the high-frequency pink parts and ACN are independent between frames, so a group
of ``nframes`` frames draws their average directly (``1 / sqrt(nframes)`` of one frame); the
low-frequency part and the pedestal are averaged over the group's frames.

Randomness: white noise from the 256-pixel block streams ``(by, bx, integration, group, band)``
(32-row bands of a block);
pedestal, low-frequency and segment streams from ``WHOLE`` streams keyed by integration, group,
output and window-relative segment number (the readout time, not the pixel grid, defines them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.fft import next_fast_len
from scipy.optimize import least_squares

from webbflow.detectors import Detector, frame_time
from webbflow.errors import UsageError
from webbflow.sim.rng import BLOCK, WHOLE, Effect, blocks, rng

Array = npt.NDArray[np.float64]

#: Time to read one pixel, s.
PIXEL_TIME: Final = 1e-5
#: Samples of overhead after each row of an output.
LINE_OVERHEAD: Final = 12
#: Rows of a high-frequency synthesis segment.
SEGMENT_ROWS: Final = 128
#: Crossover of the low- and high-frequency parts, in units of ``1 / T_seg``.
TAPER: Final = (3.0, 24.0)
#: Rows of a block drawn from one white-noise stream.
WHITE_BAND: Final = 32
_NYQUIST: Final = 0.5 / PIXEL_TIME


@dataclass(frozen=True)
class NoiseModel:
    """Amplitudes of the correlated read-noise components, DN per frame.

    Attributes
    ----------
    pink_correlated, pink_uncorrelated
        rms within one full frame of the 1/f noise common to all outputs / of each output.
    acn
        rms of the alternating-column noise (pink, sign flipping with column parity).
    pedestal
        rms of the per-output, per-frame offset.
    alpha
        Spectral index of the pink components, ``P ∝ f**-alpha``.
    """

    pink_correlated: float
    pink_uncorrelated: float
    acn: float
    pedestal: float
    alpha: float = 1.0

    def __post_init__(self) -> None:
        for name in ("pink_correlated", "pink_uncorrelated", "acn", "pedestal"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise UsageError(f"NoiseModel.{name} must be a finite number >= 0 DN, got {value!r}")
        if not 0 < self.alpha < 3:
            raise UsageError(f"NoiseModel.alpha must be in (0, 3), got {self.alpha!r}")

    @classmethod
    def nominal(cls, det: Detector) -> NoiseModel:
        """Nominal amplitudes: fractions 0.3, 0.2, 0.2, 0.2 of the detector's white read noise.

        The correlated components add 21 % to the single-frame variance (10 % to the noise), so
        white noise dominates as in the READNOISE references while the 1/f banding (correlated
        pink) is the largest correlated term.
        """
        rn = det.read_noise
        return cls(pink_correlated=0.3 * rn, pink_uncorrelated=0.2 * rn, acn=0.2 * rn, pedestal=0.2 * rn)


@dataclass(frozen=True)
class Readout:
    """Readout of an exposure.

    Attributes
    ----------
    nints, ngroups, nframes, groupgap
        As the ``NINTS``, ``NGROUPS``, ``NFRAMES``, ``GROUPGAP`` keywords.
    window
        ``(xstart, ystart, xsize, ysize)``, 1-based full-frame DMS pixels.
    """

    nints: int
    ngroups: int
    nframes: int
    groupgap: int
    window: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", tuple(int(v) for v in self.window))  # hashable, for the caches
        if min(self.nints, self.ngroups, self.nframes) < 1 or self.groupgap < 0:
            raise UsageError(
                f"Readout needs nints, ngroups, nframes >= 1 and groupgap >= 0, got {self.nints}, "
                f"{self.ngroups}, {self.nframes}, {self.groupgap}"
            )
        if len(self.window) != 4 or min(self.window) < 1:
            raise UsageError(f"Readout.window must be (xstart, ystart, xsize, ysize) >= 1, got {self.window}")

    def group_frames(self) -> npt.NDArray[np.int64]:
        """(ngroups, nframes) frame numbers of each group; frame 0 is the integration's reset."""
        g = np.arange(self.ngroups)[:, None] * (self.nframes + self.groupgap)
        return 1 + g + np.arange(self.nframes)


@dataclass(frozen=True)
class _Layout:
    """Where each pixel of a window sits in readout time ("slow"/"fast" = readout axes)."""

    transposed: bool  # fast axis is DMS y: (slow, fast) arrays are DMS (x, y)
    slow0: int
    nslow: int
    fast0: int
    nfast: int
    noutputs: int
    nout: int  # pixels per output along the fast axis
    row_len: int  # samples per row of an output, overhead included
    rows_per_frame: int
    slow_dir: int
    out_dirs: tuple[int, ...]
    seg_rows: int
    sub: int  # low-frequency samples per row

    @property
    def t_seg(self) -> float:
        return self.seg_rows * self.row_len * PIXEL_TIME

    def time_rows(self, s: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Row number in read order within a frame of full-frame slow coordinates ``s``."""
        j = s - self.slow0
        return j if self.slow_dir > 0 else self.nslow - 1 - j

    def time_cols(self, f: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(output, sample within the output's row in read order) of full-frame fast coordinates."""
        k = f - self.fast0
        o, m = np.divmod(k, self.nout)
        return o, np.where(np.asarray(self.out_dirs)[o] > 0, m, self.nout - 1 - m)


@lru_cache(maxsize=64)
def _layout(window: tuple[int, int, int, int], det: Detector) -> _Layout:
    """The read-order layout of ``window`` (1-based ``(xstart, ystart, xsize, ysize)``) on ``det``."""
    xstart, ystart, xsize, ysize = window
    if xstart + xsize - 1 > det.nx or ystart + ysize - 1 > det.ny:
        raise UsageError(f"window {window} (xstart, ystart, xsize, ysize) does not fit in {det.name}")
    tframe, noutputs = frame_time(det, xsize, ysize)
    transposed = det.amp_axis == "y"
    fast0, nfast, slow0, nslow = (
        (ystart - 1, ysize, xstart - 1, xsize) if transposed else (xstart - 1, xsize, ystart - 1, ysize)
    )
    nout = nfast // noutputs
    row_len = nout + LINE_OVERHEAD
    seg_rows = min(SEGMENT_ROWS, nslow)
    first = 1 if det.fastaxis > 0 else -1
    return _Layout(
        transposed=transposed,
        slow0=slow0,
        nslow=nslow,
        fast0=fast0,
        nfast=nfast,
        noutputs=noutputs,
        nout=nout,
        row_len=row_len,
        rows_per_frame=round(tframe / PIXEL_TIME / row_len),
        slow_dir=1 if det.slowaxis > 0 else -1,
        out_dirs=tuple(first * (-1) ** o for o in range(noutputs)),
        seg_rows=seg_rows,
        sub=-(-SEGMENT_ROWS // seg_rows),
    )


def _band(alpha: float, a: Any, b: Any) -> Any:
    """``∫_a^b f**-alpha df``."""
    if abs(alpha - 1.0) < 1e-12:
        return np.log(b / a)
    return (b ** (1 - alpha) - a ** (1 - alpha)) / (1 - alpha)


def psd_level(sigma: float, alpha: float, det: Detector) -> float:
    """``K`` of the spectrum ``K f**-alpha`` (DN²/Hz) of a pink component of rms ``sigma`` DN."""
    return float(sigma**2 / _band(alpha, 1.0 / det.frame_time_full, _NYQUIST))


def _lowpass(f: Array, t_seg: float) -> Array:
    """Weight ``w(f)`` of the low-frequency part."""
    x = np.log(np.maximum(f * t_seg, 1e-300) / TAPER[0]) / np.log(TAPER[1] / TAPER[0])
    return np.cos(0.5 * np.pi * np.clip(x, 0.0, 1.0)) ** 2


def _highpass_cumulative(f: Array, t_seg: float, alpha: float) -> Array:
    """``∫_0^f t**-alpha (1 - w(t)) dt`` (the high-frequency part's power up to f, per unit K)."""
    f1, f2 = TAPER[0] / t_seg, TAPER[1] / t_seg
    grid = np.geomspace(f1, f2, 4097)
    dens = grid**-alpha * (1 - _lowpass(grid, t_seg))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    tail = cum[-1] + _band(alpha, f2, np.maximum(f, f2))
    return np.where(f <= f1, 0.0, np.where(f <= f2, np.interp(f, grid, cum), tail))


@lru_cache(maxsize=32)
def _hf_amplitude(n: int, t_seg: float, alpha: float) -> tuple[int, Array]:
    """(FFT length, rfft amplitudes) synthesising ``n`` samples of the high-frequency part (K = 1).

    Each bin carries the power of its band ``[f - df/2, f + df/2]``, so a segment shorter than
    ``T_seg`` keeps the variance (what lies below its first line goes to its mean).
    """
    nfft = next_fast_len(n, real=True)
    nbins = nfft // 2 + 1
    edges = np.minimum((np.arange(nbins + 1) - 0.5) / (nfft * PIXEL_TIME), _NYQUIST)
    power = np.diff(_highpass_cumulative(np.maximum(edges, 0.0), t_seg, alpha))
    amp = 0.5 * nfft * np.sqrt(power)
    amp[0] *= 2.0  # DC (and Nyquist, below) are real: their whole power in one coefficient
    if nfft % 2 == 0:
        amp[-1] *= 2.0
    return nfft, amp


def _synthesise(nfft: int, amp: Array, n: int, gen: np.random.Generator) -> Array:
    """``n`` samples of a Gaussian series with rfft amplitudes ``amp``."""
    g = gen.standard_normal((2, amp.size))
    spec = amp * (g[0] + 1j * g[1])
    spec[0] = amp[0] * g[0, 0]
    if nfft % 2 == 0:
        spec[-1] = amp[-1] * g[0, -1]
    return np.fft.irfft(spec, nfft)[:n]


def _streams(model: NoiseModel, noutputs: int) -> list[tuple[Effect, int, float]]:
    """(effect, output, rms) of the pink streams: correlated, uncorrelated per output, ACN per output."""
    return (
        [(Effect.PINK_CORRELATED, 0, model.pink_correlated)]
        + [(Effect.PINK_UNCORRELATED, o, model.pink_uncorrelated) for o in range(noutputs)]
        + [(Effect.ACN, o, model.acn) for o in range(noutputs)]
    )


def _lowfreq_grid(readout: Readout, lay: _Layout) -> tuple[int, int, float]:
    """(samples, FFT length, sample interval s) of an integration's low-frequency series."""
    n = int(readout.group_frames()[-1, -1] + 1) * lay.rows_per_frame * lay.sub + 1
    return n, next_fast_len(2 * n, real=True), lay.row_len * PIXEL_TIME / lay.sub


@lru_cache(maxsize=32)
def _lowfreq(
    model: NoiseModel, readout: Readout, det: Detector, seed: int, exposure: int, integration: int
) -> npt.NDArray[np.float32]:
    """Group-averaged low-frequency pink series of one integration.

    Returns
    -------
    ndarray, shape (1 + 2 noutputs, ngroups, nslow * sub + 1), float32, DN
        Streams as :func:`_streams`; sample ``j`` of a group is at ``j / sub`` rows after the
        start of its frames' first row in read order.
    """
    lay = _layout(readout.window, det)
    n, nfft, q = _lowfreq_grid(readout, lay)
    f = np.arange(1, nfft // 2 + 1) / (nfft * q)
    w = _lowpass(f, lay.t_seg)
    keep = w > 0
    shape = np.zeros_like(f)
    shape[keep] = f[keep] ** -model.alpha * w[keep] / np.sinc(f[keep] * q) ** 2
    amp = np.concatenate([[0.0], 0.5 * nfft * np.sqrt(shape / (nfft * q))])
    width = lay.nslow * lay.sub + 1
    idx = (readout.group_frames() * lay.rows_per_frame * lay.sub)[:, :, None] + np.arange(width)
    out = np.zeros((1 + 2 * lay.noutputs, readout.ngroups, width), np.float32)
    for k, (effect, o, sigma) in enumerate(_streams(model, lay.noutputs)):
        if sigma > 0:
            gen = rng(seed, exposure, Effect.PINK_ROW, WHOLE, WHOLE, integration, int(effect), o)
            series = _synthesise(nfft, amp, n, gen) * np.sqrt(psd_level(sigma, model.alpha, det))
            out[k] = series[idx].mean(axis=1)
    out.flags.writeable = False  # shared by every tile
    return out


def _pedestal(model: NoiseModel, readout: Readout, noutputs: int, seed: int, exposure: int, i: int) -> Array:
    """(ngroups, noutputs) group-averaged pedestal of integration ``i``, DN."""
    frames = readout.group_frames()
    gen = rng(seed, exposure, Effect.PEDESTAL, WHOLE, WHOLE, i)
    return model.pedestal * gen.standard_normal((int(frames[-1, -1]) + 1, noutputs))[frames].mean(axis=1)


def _white(seed: int, exposure: int, i: int, g: int, y0: int, y1: int, x0: int, x1: int) -> Array:
    """(y1 - y0, x1 - x0) standard normal deviates of group ``g`` from the block streams.

    Each block draws in bands of :data:`WHITE_BAND` rows, so a thin tile does not draw whole blocks.
    """
    out = np.empty((y1 - y0, x1 - x0), np.float32)
    for by, bx, ys, xs in blocks(y0, y1, x0, x1):
        cols = slice(xs.start - bx * BLOCK, xs.stop - bx * BLOCK)
        for band in range(
            (ys.start - by * BLOCK) // WHITE_BAND, (ys.stop - 1 - by * BLOCK) // WHITE_BAND + 1
        ):
            top = by * BLOCK + band * WHITE_BAND
            lo, hi = max(ys.start, top), min(ys.stop, top + WHITE_BAND)
            gen = rng(seed, exposure, Effect.WHITE_NOISE, by, bx, i, g, band)
            z = gen.standard_normal((WHITE_BAND, BLOCK), np.float32)
            out[lo - y0 : hi - y0, xs.start - x0 : xs.stop - x0] = z[lo - top : hi - top, cols]
    return out.astype(np.float64)


@dataclass(frozen=True)
class _Tile:
    """Read-order coordinates of a tile's pixels (rows along the slow axis, columns along the fast)."""

    trow: npt.NDArray[np.int64]  # (ns,) row in read order
    seg: npt.NDArray[np.int64]  # (ns,) segment number
    out: npt.NDArray[np.int64]  # (nf,) output
    tcol: npt.NDArray[np.int64]  # (nf,) sample within the output's row in read order
    sign: npt.NDArray[np.floating[Any]]  # (nf,) ACN sign


def _segment(
    stream: tuple[Effect, int, float],
    key: tuple[int, int, int, int, int],
    n: int,
    alpha: float,
    t_seg: float,
    det: Detector,
    nframes: int,
) -> Array:
    """``n`` samples of one high-frequency stream of segment ``key = (seed, exposure, i, g, seg)``, DN."""
    effect, o, sigma = stream
    if sigma == 0:
        return np.zeros(n)
    seed, exposure, i, g, seg = key
    nfft, amp = _hf_amplitude(n, t_seg, alpha)
    gen = rng(seed, exposure, effect, WHOLE, WHOLE, i, g, o, seg)
    return _synthesise(nfft, amp, n, gen) * np.sqrt(psd_level(sigma, alpha, det) / nframes)


def _high(
    model: NoiseModel, lay: _Layout, det: Detector, tile: _Tile, key: tuple[int, int, int, int], nframes: int
) -> Array:
    """(ns, nf) group-averaged high-frequency pink noise and ACN of a tile, DN."""
    plane = np.zeros((tile.trow.size, tile.out.size))
    streams = _streams(model, lay.noutputs)
    if not any(s > 0 for _, _, s in streams):
        return plane
    outputs = np.unique(tile.out)
    slot = np.searchsorted(outputs, tile.out)
    for seg in np.unique(tile.seg).tolist():
        rows = tile.seg == seg
        first = seg * lay.seg_rows
        nrows = min(lay.seg_rows, lay.nslow - first)
        t0 = first if lay.slow_dir > 0 else lay.nslow - first - nrows
        n = nrows * lay.row_len
        alt = 1.0 - 2.0 * (np.arange(n) % lay.row_len % 2)
        draw = partial(
            _segment, key=(*key, seg), n=n, alpha=model.alpha, t_seg=lay.t_seg, det=det, nframes=nframes
        )
        common = draw(streams[0])
        stack = np.stack(
            [
                common + draw(streams[1 + o]) + alt * draw(streams[1 + lay.noutputs + o])
                for o in outputs.tolist()
            ]
        )
        sample = (tile.trow[rows] - t0)[:, None] * lay.row_len + tile.tcol[None, :]
        plane[rows] = stack[slot[None, :], sample]
    return plane


def _low(lf: npt.NDArray[np.float32], lay: _Layout, tile: _Tile) -> Array:
    """(ns, nf) low-frequency pink noise and ACN of a tile from one group's series ``lf``, DN."""
    n = lay.noutputs
    level = lf[0].astype(np.float64)[None, :] + lf[1 : 1 + n]
    acn = lf[1 + n :].astype(np.float64)
    col, frac = np.divmod(tile.tcol * lay.sub, lay.row_len)
    frac = frac / lay.row_len
    plane = np.empty((tile.trow.size, tile.out.size))
    for o in np.unique(tile.out).tolist():
        at = np.flatnonzero(tile.out == o)
        c = slice(at[0], at[-1] + 1)  # an output's columns are contiguous
        # one sample per row (sub == 1): the row's samples broadcast over its columns
        j = tile.trow[:, None] * lay.sub + (col[None, c] if lay.sub > 1 else 0)
        fr = frac[c]
        plane[:, c] = (
            level[o, j] * (1 - fr)
            + level[o, j + 1] * fr
            + tile.sign[c] * (acn[o, j] * (1 - fr) + acn[o, j + 1] * fr)
        )
    return plane


def read_noise(
    model: NoiseModel,
    readout: Readout,
    det: Detector,
    seed: int,
    exposure: int,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    white: npt.ArrayLike,
) -> npt.NDArray[np.float32]:
    """Group-averaged read noise of the tile rows ``[y0, y1)``, columns ``[x0, x1)``.

    Parameters
    ----------
    model, readout, det
        Noise amplitudes, readout and detector.
    seed, exposure
        Program seed and :func:`webbflow.sim.rng.exposure_key` of the exposure.
    y0, y1, x0, x1
        Tile, 0-based full-frame DMS pixels, inside ``readout.window``.
    white
        (y1 - y0, x1 - x0) single-frame white read noise sigma, DN (the READNOISE reference);
        anything broadcastable to that shape.

    Returns
    -------
    ndarray, shape (nints, ngroups, y1 - y0, x1 - x0), float32, DN
        The same values for a pixel on any tiling; memory proportional to the tile (plus the
        cached low-frequency series, rows × groups × streams per integration).
    """
    lay = _layout(readout.window, det)
    xs, ys, nx, ny = readout.window
    if not (ys - 1 <= y0 < y1 <= ys - 1 + ny and xs - 1 <= x0 < x1 <= xs - 1 + nx):
        raise UsageError(
            f"tile rows [{y0}, {y1}) columns [{x0}, {x1}) is not inside the window {readout.window}"
        )
    sigma = np.broadcast_to(np.asarray(white, np.float64), (y1 - y0, x1 - x0)) / np.sqrt(readout.nframes)
    s0, s1, f0, f1 = (x0, x1, y0, y1) if lay.transposed else (y0, y1, x0, x1)
    s, f = np.arange(s0, s1), np.arange(f0, f1)
    out, tcol = lay.time_cols(f)
    tile = _Tile(lay.time_rows(s), (s - lay.slow0) // lay.seg_rows, out, tcol, 1.0 - 2.0 * (tcol % 2))
    pink = model.pink_correlated > 0 or model.pink_uncorrelated > 0 or model.acn > 0
    result = np.empty((readout.nints, readout.ngroups, y1 - y0, x1 - x0), np.float32)
    for i in range(readout.nints):
        lf = _lowfreq(model, readout, det, seed, exposure, i) if pink else None
        ped = _pedestal(model, readout, lay.noutputs, seed, exposure, i)
        for g in range(readout.ngroups):
            plane = _high(model, lay, det, tile, (seed, exposure, i, g), readout.nframes)
            if lf is not None:
                plane += _low(lf[:, g], lay, tile)
            plane += ped[g][tile.out][None, :]
            result[i, g] = (plane.T if lay.transposed else plane) + _white(
                seed, exposure, i, g, y0, y1, x0, x1
            ) * sigma
    return result


# --- measurement -------------------------------------------------------------------------------


def _dirichlet2(f: Array, n: int, d: float) -> Array:
    """``|mean of exp(2πi f k d), k < n|²``: response of an ``n``-sample mean at spacing ``d``."""
    den = n * np.sin(np.pi * f * d)
    safe = np.abs(den) > 1e-300
    return np.where(safe, np.sin(np.pi * f * n * d) / np.where(safe, den, 1.0), 1.0) ** 2


def _periodogram(x: Array, d: float) -> tuple[Any, Array]:
    """(rfft of the mean-removed, Hann-windowed last axis, one-sided density scale) of ``x``."""
    w = np.hanning(x.shape[-1] + 1)[:-1]
    spec = np.fft.rfft((x - x.mean(axis=-1, keepdims=True)) * w, axis=-1)
    return spec, np.full(spec.shape[-1], 2 * d / np.sum(w**2))


class _Spectra:
    """Running sums of the auto and cross periodograms of the read-order streams."""

    def __init__(self) -> None:
        self.sums: dict[str, Array] = {}
        self.count: dict[str, int] = {}

    def add(self, name: str, spec: Any, scale: Array) -> None:
        """Add spectra ``spec`` (noutputs, nseg, nbins): auto over outputs, cross over output pairs."""
        power = np.abs(spec) ** 2
        auto = power.sum(axis=(0, 1)) * scale
        self._acc(name, auto, spec.shape[0] * spec.shape[1])
        if spec.shape[0] > 1:
            cross = (np.abs(spec.sum(axis=0)) ** 2 - power.sum(axis=0)).sum(axis=0) * scale
            self._acc(name + "_cross", cross, spec.shape[0] * (spec.shape[0] - 1) * spec.shape[1])

    def _acc(self, name: str, value: Array, n: int) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.count[name] = self.count.get(name, 0) + n

    def mean(self, name: str) -> tuple[Array, int]:
        return self.sums[name] / self.count[name], self.count[name]


def _logbins(f: Array, per_decade: int = 10) -> npt.NDArray[np.int64]:
    """Log-spaced bin number of each frequency."""
    return np.floor(np.log10(f) * per_decade).astype(np.int64)


def _jump_response(alpha: float, f_lo: float, ns: int, nout: int, t_row: float, lag: float) -> float:
    """``∫ f**-alpha |C(f)|² df`` of the jump between the means of ``ns`` rows ``lag`` seconds apart."""
    top = 0.5 / t_row  # beyond, only row harmonics damped by the row mean: negligible
    knee = min(1 / lag, 1 / (ns * t_row))
    f = np.unique(np.concatenate([np.geomspace(f_lo, knee, 512), np.arange(knee, top, knee / 16)]))
    resp = _dirichlet2(f, nout, PIXEL_TIME) * _dirichlet2(f, ns, t_row) * 4 * np.sin(np.pi * f * lag) ** 2
    return float(np.trapezoid(f**-alpha * resp, f))


def measure_noise(
    ramp: npt.ArrayLike, readout: Readout, det: Detector, *, origin: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Estimate the read-noise components of a noise-only ramp, to check :func:`read_noise`.

    The ramp is put back in read order. Periodograms (Hann window, mean removed) of each output's
    rows (1.6–49 kHz at full frame) and of its row means (low frequencies, up to 0.15 / t_row)
    are fitted jointly, in log space over log-spaced bins, with the one-sided spectra the model
    predicts: ``K_p f**-a + K_acn (f_N - f)**-a + W`` along a row, ``K_p f**-a |B(f)|² + W_mean``
    for row means (``B`` the row-mean response; the ACN, alternating, appears in the
    alternating-sign row means). The cross-spectra between time-aligned outputs give the
    correlated part. The pedestal comes from the jumps of each output's mean between groups,
    less what the fitted pink and white noise contribute (computed from the same spectra).

    Parameters
    ----------
    ramp
        (nints, ngroups, ny, nx) noise-only ramp, DN, rows of the window spanning the whole fast
        axis (all columns for NIRCam, all rows for NIRISS/FGS); ``ngroups >= 2``.
    readout, det
        As given to :func:`read_noise`; ``nframes`` must be 1 (one frame per group).
    origin
        Full-frame ``(y0, x0)`` of ``ramp[..., 0, 0]``; default the window's corner.

    Returns
    -------
    dict
        ``white`` (rms single-frame white noise, DN), ``pink`` (total pink per output),
        ``pink_correlated``, ``pink_uncorrelated`` (NaN with one output), ``acn``, ``pedestal``
        (rms, DN, as :class:`NoiseModel`), ``alpha``; ``white_map`` (ny, nx) float32 per-pixel
        CDS estimate (group differences less their row and column-parity medians, over √2:
        slightly high, it keeps the in-row pink noise); ``psd_freq``, ``psd``, ``psd_fit``
        log-binned spectrum of one output's read-order stream (row means below ~30 Hz, rows
        above), DN²/Hz.
    """
    lay = _layout(readout.window, det)
    data = np.asarray(ramp)
    if readout.nframes != 1:
        raise UsageError(
            f"measure_noise needs one frame per group (nframes=1), got nframes={readout.nframes}"
        )
    if data.ndim != 4 or data.shape[:2] != (readout.nints, readout.ngroups) or readout.ngroups < 2:
        raise UsageError(f"ramp must be (nints, ngroups >= 2, ny, nx) matching the readout, got {data.shape}")
    nints, ngroups, ny, nx = data.shape
    y0, x0 = origin if origin is not None else (readout.window[1] - 1, readout.window[0] - 1)
    s0, ns, f0, nf = (x0, nx, y0, ny) if lay.transposed else (y0, ny, x0, nx)
    if (f0, nf) != (lay.fast0, lay.nfast) or s0 < lay.slow0 or s0 + ns > lay.slow0 + lay.nslow:
        raise UsageError(
            f"ramp at (y0, x0)={(y0, x0)} of shape {(ny, nx)} must span the whole fast axis of the window "
            f"{readout.window} and lie inside it"
        )
    rows = np.argsort(lay.time_rows(np.arange(s0, s0 + ns)))
    out, tcol = lay.time_cols(np.arange(f0, f0 + nf))
    cols = np.lexsort((tcol, out))
    t_row = lay.row_len * PIXEL_TIME
    parity = 1.0 - 2.0 * (np.arange(lay.nout) % 2)
    spectra = _Spectra()
    means = np.empty((nints, ngroups, lay.noutputs))
    sq = np.zeros((lay.noutputs, ns, lay.nout))
    chunk = max(1, (16 * 2**20) // (8 * ns * nf))  # groups per step: ~16 MiB of float64
    for i in range(nints):
        prev = None
        for g0 in range(0, ngroups, chunk):
            planes = np.asarray(data[i, g0 : g0 + chunk], np.float64)
            planes = planes.transpose(0, 2, 1) if lay.transposed else planes
            # (groups, outputs, rows, samples) in read order
            x = planes[:, rows][:, :, cols].reshape(-1, ns, lay.noutputs, lay.nout).transpose(0, 2, 1, 3)
            spec, scale = _periodogram(x, PIXEL_TIME)
            spectra.add("row", spec.transpose(1, 0, 2, 3).reshape(lay.noutputs, -1, scale.size), scale)
            rm = x.mean(axis=-1).transpose(1, 0, 2)  # (outputs, groups, rows)
            spectra.add("mean", *_periodogram(rm, t_row))
            spectra.add("alt", *_periodogram((x * parity).mean(axis=-1).transpose(1, 0, 2), t_row))
            means[i, g0 : g0 + len(x)] = rm.mean(axis=-1).T
            both = x if prev is None else np.concatenate([prev[None], x])
            d = np.diff(both, axis=0)
            for p in (slice(0, None, 2), slice(1, None, 2)):
                sq[..., p] += np.sum((d[..., p] - np.median(d[..., p], axis=-1, keepdims=True)) ** 2, axis=0)
            prev = x[-1]
    fit = _fit_spectra(spectra, lay, ns)
    band = _band(fit["alpha"], 1.0 / det.frame_time_full, _NYQUIST)
    white = np.sqrt(fit["W"] / (2 * PIXEL_TIME))
    lag = (readout.nframes + readout.groupgap) * lay.rows_per_frame * t_row
    _, nfft, q = _lowfreq_grid(readout, lay)
    jump = fit["Kp"] * _jump_response(fit["alpha"], 1 / (nfft * q), ns, lay.nout, t_row, lag)
    jump += 2 * white**2 / (ns * lay.nout)
    ped2 = (np.mean(np.diff(means, axis=1) ** 2) - jump) / 2
    wmap = np.empty((ns, nf))
    wmap[np.ix_(rows, cols)] = np.sqrt(sq / (2 * nints * (ngroups - 1))).transpose(1, 0, 2).reshape(ns, nf)
    return {
        "white": float(white),
        "pink": float(np.sqrt(fit["Kp"] * band)),
        "pink_correlated": float(np.sqrt(max(fit["Kc"], 0.0) * band)),
        "pink_uncorrelated": float(np.sqrt(max(fit["Kp"] - fit["Kc"], 0.0) * band)),
        "acn": float(np.sqrt(fit["Ka"] * band)),
        "pedestal": float(np.sqrt(max(ped2, 0.0))),
        "alpha": float(fit["alpha"]),
        "white_map": (wmap.T if lay.transposed else wmap).astype(np.float32),
        "psd_freq": fit["freq"],
        "psd": fit["psd"],
        "psd_fit": fit["psd_fit"],
    }


def _fit_spectra(spectra: _Spectra, lay: _Layout, ns: int) -> dict[str, Any]:
    """Fit ``K_p``, ``K_acn``, ``alpha``, ``W`` (and ``K_c`` from the cross-spectra) to the periodograms."""
    t_row = lay.row_len * PIXEL_TIME
    row, n_row = spectra.mean("row")
    mean, n_mean = spectra.mean("mean")
    alt, _ = spectra.mean("alt")
    k_row, k_mean = np.arange(row.size), np.arange(mean.size)
    f_row, f_mean = k_row / (lay.nout * PIXEL_TIME), k_mean / (ns * t_row)
    use_row = (k_row >= 8) & (k_row <= lay.nout // 2 - 4)  # above 8 lines: Hann leakage of 1/f < 1 %
    use_mean = (k_mean >= 4) & (f_mean <= 0.15 / t_row)
    fr, fm = f_row[use_row], f_mean[use_mean]
    resp, resp_alt = _dirichlet2(fm, lay.nout, PIXEL_TIME), _dirichlet2(fm + _NYQUIST, lay.nout, PIXEL_TIME)
    w_mean = t_row / (lay.nout * PIXEL_TIME)  # white level of row means over that of the stream

    def model(p: Array) -> tuple[Array, Array, Array]:
        kp, ka, a, w = np.exp(p[0]), np.exp(p[1]), p[2], np.exp(p[3])
        m_row = kp * fr**-a + ka * (_NYQUIST - fr) ** -a + w
        m_mean = kp * fm**-a * resp + ka * fm**-a * resp_alt + w * w_mean
        m_alt = ka * fm**-a * resp + kp * fm**-a * resp_alt + w * w_mean
        return m_row, m_mean, m_alt

    groups = [(fr, row[use_row], n_row), (fm, mean[use_mean], n_mean), (fm, alt[use_mean], n_mean)]
    bins = [np.unique(_logbins(f), return_inverse=True, return_counts=True) for f, _, _ in groups]
    data = [np.bincount(inv, d) / c for (_, inv, c), (_, d, _) in zip(bins, groups, strict=True)]
    weight = [np.sqrt(c * n) for (_, _, c), (_, _, n) in zip(bins, groups, strict=True)]

    def resid(p: Array) -> Array:
        parts = [
            (np.log(d) - np.log(np.bincount(inv, m) / c)) * wt
            for d, m, (_, inv, c), wt in zip(data, model(p), bins, weight, strict=True)
        ]
        return np.concatenate(parts)

    w0 = float(np.median(row[use_row][-16:]))
    kp0 = max(float(np.median((row[use_row][:16] - w0) * fr[:16])), 1e-6 * w0 * _NYQUIST)
    p0 = np.array([np.log(kp0), np.log(kp0 / 4), 1.0, np.log(w0)])
    p = least_squares(resid, p0, bounds=([-60, -60, 0.05, -80], [20, 20, 2.95, 20])).x
    kp, ka, alpha, w = float(np.exp(p[0])), float(np.exp(p[1])), float(p[2]), float(np.exp(p[3]))
    kc = np.nan
    if lay.noutputs > 1:
        # weighted least squares of K_c, each log bin weighted by its inverse variance ~ n / auto²
        (cross_row, n_cr), (cross_mean, n_cm) = spectra.mean("row_cross"), spectra.mean("mean_cross")
        m_row, m_mean, _ = model(p)
        num = den = 0.0
        for (_, inv, c), d, n, unit, auto in zip(
            bins[:2],
            (cross_row[use_row], cross_mean[use_mean]),
            (n_cr, n_cm),
            (fr**-alpha, fm**-alpha * resp),
            (m_row, m_mean),
            strict=True,
        ):
            db, ub, ab = (np.bincount(inv, v) / c for v in (d, unit, auto))
            num += float(np.sum(c * n * db * ub / ab**2))
            den += float(np.sum(c * n * ub**2 / ab**2))
        kc = num / den
    (_, inv_r, c_r), (_, inv_m, c_m) = bins[0], bins[1]
    m_row, m_mean, _ = model(p)
    return {
        "Kp": kp,
        "Ka": ka,
        "alpha": alpha,
        "W": w,
        "Kc": kc,
        "freq": np.concatenate([np.bincount(inv_m, fm) / c_m, np.bincount(inv_r, fr) / c_r]),
        "psd": np.concatenate([data[1], data[0]]),
        "psd_fit": np.concatenate([np.bincount(inv_m, m_mean) / c_m, np.bincount(inv_r, m_row) / c_r]),
    }
