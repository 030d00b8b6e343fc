"""Per-tile EMI kernels: read phases, the reduction into phase-binned sums, the subtraction.

Physics: electromagnetic interference in the MIRI readout electronics adds a periodic signal
(390.625 Hz, 218.5 Hz, 10 Hz, …) to every read. Its value in a pixel depends only on *when*
that pixel was sampled. The four amplifiers sample the pixels ``4k … 4k + 3`` of a row at the
same time; sample ``k`` of row ``j`` is read ``j · rowclocks + k · nsamples`` pixel clocks
(10 µs) after the frame starts (``nsamples`` = 1 for FAST, 9 for SLOW), a frame lasts
``ny · rowclocks + (1024 − ny) · 7`` clocks (the rows a subarray skips still cost 7 clocks),
and R1 patterns add one reset frame (``frameclocks``) between integrations. So a pixel's phase
in group ``g`` of integration ``i`` is ``φ_pix + g · Δφ_group + i · Δφ_int + φ₀``, with only the
offset ``φ₀`` and the amplitude unknown (jwst ``emicorr`` documentation, "joint" algorithm).

The fit (:mod:`webbflow.steps.emicorr.fit`) needs, per integration, phase bin and group, the
sum of the ramps of "quiet" pixels (read-to-read scatter below twice the median, no pixel DQ,
not in local sample columns 1 and 2, which jwst treats as a bad reference column).
:func:`emi_sums` returns those sums for one tile. Ramps are first made zero-mean per pixel
(the fit removes a line from every ramp, so this changes nothing) and quantised to
2⁻¹⁶ DN so the sums are exact integers: adding tiles in any order gives the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.interpolate import CubicSpline

#: Quantum of the summed ramp values, DN (sums are exact int64 multiples of it).
SUM_QUANTUM = 2.0**-16
#: Sample columns (0-based, within the window, in units of 4 pixels) left out of the fit.
BAD_SAMPLE_COLUMNS = (1, 2)


class EmiSums(NamedTuple):
    """Output of :func:`emi_sums`: the tile's share of the fit's data."""

    ysum: np.ndarray  #: (integration, bin, group) int64, sum of zero-mean ramps / SUM_QUANTUM
    npix: np.ndarray  #: (integration, bin) int64, pixels summed


class EmiComponent(NamedTuple):
    """One fitted frequency, as :func:`subtract_emi` applies it."""

    waveform: np.ndarray  #: (n,) float64 DN, one period sampled at phases (k + 0.5) / n
    period: float  #: pixel clocks per period
    dphase_group: float  #: phase advance from one group to the next
    phases: np.ndarray  #: (integration,) float64 phase offset of each integration
    amplitudes: np.ndarray  #: (integration,) float64 scale of the waveform


class Subtracted(NamedTuple):
    """Output of :func:`subtract_emi`."""

    sci: np.ndarray  #: (integration, group, y, x) float32 DN


def waveform_function(waveform: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A periodic cubic spline through ``waveform`` sampled at phases ``(k + 0.5) / n``.

    Returns
    -------
    callable
        ``f(phase)`` for any float64 phases (taken modulo 1), same shape, DN.
    """
    wave = np.asarray(waveform, np.float64)
    n = wave.size
    knots = (np.arange(n + 1) + 0.5) / n
    spline = CubicSpline(knots, np.append(wave, wave[0]), bc_type="periodic")
    half = 0.5 / n

    def f(phase: np.ndarray) -> np.ndarray:
        return np.asarray(spline((np.asarray(phase) - half) % 1.0 + half))

    return f


def read_phase(
    rows: np.ndarray, cols: np.ndarray, *, rowclocks: int, nsamples: int, period: float
) -> np.ndarray:
    """Phase (0 ≤ φ < 1) at which each pixel is read in the first group, relative to pixel (0, 0).

    Parameters
    ----------
    rows, cols
        (ny,), (nx,) int: 0-based row and column *within the exposure's window*.
    rowclocks
        Pixel clocks per row.
    nsamples
        Pixel clocks per sample (1 FAST, 9 SLOW).
    period
        Pixel clocks per period of the waveform.

    Returns
    -------
    ndarray, shape (ny, nx), float64
    """
    clocks = (
        np.asarray(rows, np.int64)[:, None] * rowclocks
        + (np.asarray(cols, np.int64) // 4)[None, :] * nsamples
    )
    return (clocks.astype(np.float64) / period) % 1.0


def _group_sum(values: np.ndarray) -> np.ndarray:
    """Sum over axis 1 in a fixed order (the same bits for a pixel in any tile shape)."""
    acc = values[:, 0].copy()
    for g in range(1, values.shape[1]):
        acc += values[:, g]
    return acc


def ramp_scatter(sci: np.ndarray) -> np.ndarray:
    """(integration, y, x) float64 standard deviation of each ramp's reads, DN.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32 DN.
    """
    data = sci.astype(np.float64)
    ngroup = data.shape[1]
    mean = _group_sum(data) / ngroup
    return np.sqrt(_group_sum((data - mean[:, None]) ** 2) / ngroup)


def emi_sums(
    sci: np.ndarray,
    pixeldq: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    threshold: float,
    rowclocks: int,
    nsamples: int,
    period: float,
    nbins: int,
) -> EmiSums:
    """Phase-binned sums of the quiet ramps of one tile.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32 DN.
    pixeldq
        (y, x) uint32; any bit set leaves the pixel out.
    rows, cols
        (y,), (x,) int: 0-based positions within the exposure's window.
    threshold
        Ramps whose read scatter (:func:`ramp_scatter`) is not below this are left out, DN.
    rowclocks, nsamples, period
        Readout timing (:func:`read_phase`).
    nbins
        Phase bins (the reference waveform's length); bin ``b`` holds phases
        ``[b / nbins, (b + 1) / nbins)`` of the first group.

    Returns
    -------
    EmiSums
    """
    nint, ngroup = sci.shape[:2]
    data = sci.astype(np.float64)
    mean = _group_sum(data) / ngroup
    scatter = np.sqrt(_group_sum((data - mean[:, None]) ** 2) / ngroup)
    usable = (pixeldq == 0) & ~np.isin(np.asarray(cols) // 4, BAD_SAMPLE_COLUMNS)[None, :]
    good = (scatter < threshold) & usable[None]
    phase = read_phase(rows, cols, rowclocks=rowclocks, nsamples=nsamples, period=period)
    bins = np.minimum((phase * nbins).astype(np.int64), nbins - 1)
    ints, ys, xs = np.nonzero(good)
    key = ints * nbins + bins[ys, xs]
    # zero-mean reads of the good ramps, (npix, group), as exact integers in float64
    values = np.rint((data[ints, :, ys, xs] - mean[ints, ys, xs][:, None]) / SUM_QUANTUM)
    size = nint * nbins
    ysum = np.empty((size, ngroup), np.int64)
    for g in range(ngroup):  # float64 sums of integers below 2**53 are exact
        ysum[:, g] = np.bincount(key, weights=values[:, g], minlength=size).astype(np.int64)
    npix = np.bincount(key, minlength=size).astype(np.int64)
    return EmiSums(ysum.reshape(nint, nbins, ngroup), npix.reshape(nint, nbins))


def subtract_emi(
    sci: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    rowclocks: int,
    nsamples: int,
    components: Sequence[EmiComponent],
) -> Subtracted:
    """Subtract the fitted waveforms from every pixel of one tile (a new array).

    Parameters
    ----------
    sci
        (integration, group, y, x) float32 DN.
    rows, cols
        (y,), (x,) int: 0-based positions within the exposure's window.
    rowclocks, nsamples
        Readout timing (:func:`read_phase`).
    components
        The fitted frequencies, subtracted in order (float32 after each, as the data is stored).

    Returns
    -------
    Subtracted
    """
    out = sci.astype(np.float32, copy=True)
    for comp in components:
        f = waveform_function(comp.waveform)
        phase = read_phase(rows, cols, rowclocks=rowclocks, nsamples=nsamples, period=comp.period)
        for i in range(out.shape[0]):
            if comp.amplitudes[i] == 0.0:
                continue
            for g in range(out.shape[1]):
                emi = comp.amplitudes[i] * f(phase + g * comp.dphase_group + comp.phases[i])
                out[i, g] = (out[i, g].astype(np.float64) - emi).astype(np.float32)
    return Subtracted(out)
