"""MIRI detector effects added to a raw ramp tile: reset anomaly, RSCD, EMI, flicker noise.

All functions are pure numpy on one tile and depend only on the pixel, the plan's
numbers and the program seed, never on the tile, so a pixel gets the same values on
any tiling.

Reset anomaly
    After a reset the Si:As pixel level relaxes, adding a decaying, pixel-dependent
    offset to the first groups of every integration: exactly the RESET reference
    cube the ``reset`` step subtracts (integration ``i`` uses reference integration
    ``min(i, NINTS_ref - 1)``, groups beyond the reference get nothing).
RSCD
    Reset switch charge decay: in integrations after the first the first groups sit
    below their ideal level by an amount proportional to the charge left by the
    previous integration, decaying with time. Modelled as
    ``-fraction × S_prev × exp(-g / tau)`` for groups ``g < skip`` (``S_prev``: the
    previous integration's last-group signal above bias, ``tau = skip / 3`` groups),
    zero from group ``skip`` on: the groups the ``rscd`` step flags (its reference
    table's ``group_skip``), so the baseline calibration discards all of it.
EMI
    Electromagnetic interference adds, at each frequency of the EMICORR reference,
    the reference's waveform (one period, mean removed, scaled so its half
    peak-to-peak is ``amplitude`` DN) evaluated at the phase at which the pixel is
    read: the clock of :mod:`webbflow.steps.emicorr` (rows of ``rowclocks``, samples
    of ``nsamples`` pixel clocks, skipped rows of a subarray 7 clocks each, one
    reset frame between R1 integrations), with a random phase offset per exposure
    and frequency.
Flicker (1/f) noise
    Low-frequency noise in readout time, sampled once per row: each amplifier
    (``x mod 4``) has its own 1/f series, plus one common to the four; a pixel gets
    the value of its amplifier's series at the row's read time. One series per
    integration, synthesised by FFT (zero-padded to twice its length, so not
    periodic) from ``WHOLE`` streams and cached per process. ``rms`` is the
    standard deviation of the sum over a whole integration.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from webbflow.sim.rng import WHOLE, Effect, rng
from webbflow.steps.emicorr.kernel import read_phase, waveform_function

#: Rows of the full MIRI array (the rows a subarray skips still take time).
FULL_ROWS = 1024
#: Pixel clocks of each row a subarray skips (as :mod:`webbflow.steps.emicorr.step` times it).
SKIPPED_ROW_CLOCKS = 7
#: Seconds per pixel clock.
PIXEL_CLOCK = 10.0e-6
#: Amplifiers (interleaved by column: ``x mod 4``).
NAMPS = 4
#: Fraction of the flicker variance common to the four amplifiers.
FLICKER_COMMON = 0.5


@dataclass(frozen=True)
class EmiWave:
    """One EMI frequency as the simulation injects it.

    Attributes
    ----------
    frequency
        Hz.
    waveform
        One period of the reference waveform, sampled at phases ``(k + 0.5) / n``, DN.
    amplitude
        Half peak-to-peak of the injected wave, DN.
    phase
        Phase offset of the exposure's first read of pixel (0, 0), in [0, 1).
    """

    frequency: float
    waveform: tuple[float, ...]
    amplitude: float
    phase: float


@dataclass(frozen=True)
class ReadClock:
    """Readout timing of a MIRI exposure in 10 µs pixel clocks (``steps/emicorr`` Timing).

    Attributes
    ----------
    rowclocks
        Clocks between the starts of two rows.
    nsamples
        Clocks per sample of 4 pixels (1 FAST, 9 SLOW).
    frameclocks
        Clocks of the reset frame between integrations of an R1 pattern (0: none).
    nrows
        Rows of the window.
    """

    rowclocks: int
    nsamples: int
    frameclocks: int
    nrows: int

    @property
    def frame(self) -> float:
        """Clocks from one frame's start to the next's."""
        return self.nrows * self.rowclocks + (FULL_ROWS - self.nrows) * float(SKIPPED_ROW_CLOCKS)

    def dphases(self, period: float, ngroups: int) -> tuple[float, float]:
        """Phase advance per group and per integration of a wave of ``period`` clocks."""
        group = (self.frame / period) % 1.0
        return group, group * ngroups + self.frameclocks / period


def reset_anomaly(reset: np.ndarray, ref_integration: np.ndarray, ngroups: int, nreset: int) -> np.ndarray:
    """Reset-anomaly offsets of one tile, (integration, group, y, x) float64 DN.

    Parameters
    ----------
    reset
        (reset_integration, reset_group, y, x) float32 RESET reference, DN (NaN counts as 0).
    ref_integration
        (integration,) int: reference integration of each integration (-1: none).
    ngroups
        Groups of the exposure.
    nreset
        Leading groups that get the anomaly (≤ the reference's and the exposure's groups).
    """
    ref = np.nan_to_num(np.asarray(reset, np.float64), nan=0.0)
    out = np.zeros((ref_integration.size, ngroups, *ref.shape[2:]))
    done = ref_integration >= 0
    out[done, :nreset] = ref[ref_integration[done], :nreset]
    return out


def rscd_offsets(previous: np.ndarray, skip: int, ngroups: int, fraction: float) -> np.ndarray:
    """RSCD offsets of one integration after the first, (group, y, x) float64 DN.

    Parameters
    ----------
    previous
        (y, x) signal above bias of the previous integration's last group, DN.
    skip
        Groups the ``rscd`` step flags in this integration; the offset is zero from there on.
    ngroups
        Groups of the exposure.
    fraction
        Deficit of the first group relative to ``previous``.
    """
    out = np.zeros((ngroups, *previous.shape))
    if skip <= 0 or fraction == 0.0:
        return out
    tau = skip / 3.0
    g = np.arange(min(skip, ngroups), dtype=np.float64)
    out[: g.size] = -fraction * np.exp(-g / tau)[:, None, None] * np.clip(previous, 0.0, None)[None]
    return out


def emi_pattern(
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    nints: int,
    ngroups: int,
    clock: ReadClock,
    waves: tuple[EmiWave, ...],
) -> np.ndarray:
    """The EMI added to each read of one tile, (integration, group, y, x) float64 DN.

    Parameters
    ----------
    rows, cols
        (ny,), (nx,) int: 0-based positions *within the exposure's window*.
    nints, ngroups
        Integrations and groups (one frame per group).
    clock
        The exposure's readout timing.
    waves
        The frequencies to inject.
    """
    out = np.zeros((nints, ngroups, rows.size, cols.size))
    for wave in waves:
        ref = np.asarray(wave.waveform, np.float64)
        half = 0.5 * float(ref.max() - ref.min())
        if half <= 0.0 or wave.amplitude == 0.0:
            continue
        f = waveform_function((ref - ref.mean()) * (wave.amplitude / half))
        period = (1.0 / wave.frequency) / PIXEL_CLOCK
        base = read_phase(rows, cols, rowclocks=clock.rowclocks, nsamples=clock.nsamples, period=period)
        dgroup, dint = clock.dphases(period, ngroups)
        for i in range(nints):
            for g in range(ngroups):
                out[i, g] += f(base + g * dgroup + i * dint + wave.phase)
    return out


@lru_cache(maxsize=16)
def _flicker_series(
    seed: int, exposure: int, integration: int, nsamples: int, rms: float, alpha: float
) -> np.ndarray:
    """(NAMPS, nsamples) float64 flicker series of one integration, one sample per row read."""
    n = 2 * nsamples
    f = np.fft.rfftfreq(n)
    amp = np.zeros(f.size)
    amp[1:] = f[1:] ** (-alpha / 2.0)
    parts = []
    for stream in range(NAMPS + 1):  # four amplifiers, then the common one
        gen = rng(seed, exposure, Effect.FLICKER, WHOLE, WHOLE, integration, stream)
        spec = amp * (gen.standard_normal(f.size) + 1j * gen.standard_normal(f.size))
        series = np.fft.irfft(spec, n)[:nsamples]
        series -= series.mean()
        parts.append(series / max(float(series.std()), 1e-300))
    own, common = np.stack(parts[:NAMPS]), parts[NAMPS]
    out = rms * (np.sqrt(1.0 - FLICKER_COMMON) * own + np.sqrt(FLICKER_COMMON) * common[None])
    out.setflags(write=False)
    return out


def flicker_noise(
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    seed: int,
    exposure: int,
    nints: int,
    ngroups: int,
    clock: ReadClock,
    rms: float,
    alpha: float = 1.0,
) -> np.ndarray:
    """Row-correlated 1/f noise of one tile, (integration, group, y, x) float64 DN.

    Parameters
    ----------
    rows
        (ny,) int: 0-based rows within the exposure's window.
    cols
        (nx,) int: full-frame 0-based columns (their amplifier is ``x mod 4``).
    seed, exposure
        Program seed and exposure key.
    nints, ngroups
        Integrations and groups (one frame per group).
    clock
        Readout timing: a frame lasts ``ceil(frame / rowclocks)`` row samples.
    rms, alpha
        Standard deviation (DN) and spectral index (``P ∝ f**-alpha``).
    """
    out = np.zeros((nints, ngroups, rows.size, cols.size))
    if rms <= 0.0:
        return out
    per_frame = int(np.ceil(clock.frame / clock.rowclocks))
    amps = np.asarray(cols) % NAMPS
    for i in range(nints):
        series = _flicker_series(int(seed), int(exposure), i, per_frame * ngroups, float(rms), float(alpha))
        for g in range(ngroups):
            out[i, g] = series[amps[None, :], (g * per_frame + np.asarray(rows))[:, None]]
    return out
