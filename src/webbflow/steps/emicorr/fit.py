"""The global EMI fit: phase and amplitude of a reference waveform from phase-binned ramp sums.

Model of a quiet ramp ``y`` (reads ``t = 0 … G−1``) in phase bin ``b`` of integration ``i``:
``y(t) = a + s·t + c · z_ib(t; φ₀)`` with ``z_ib(t; φ₀) = w(φ_b + t·Δφ_group + i·Δφ_int + φ₀)``,
``w`` the reference waveform and ``φ_b`` the bin centre. Removing each ramp's best line is the
projection ``P`` onto the reads orthogonal to ``1`` and ``t``, so the summed squared residual
of all ramps is, up to a constant,

    χ²(c, φ₀) = c² Σ n_ib ‖P z_ib‖² − 2c Σ ⟨P Y_ib, z_ib⟩ = c² A(φ₀) − 2c B(φ₀),

where ``Y_ib`` is the sum of the bin's ramps and ``n_ib`` their number: only those sums are
needed (:func:`~webbflow.steps.emicorr.kernel.emi_sums`). For each trial ``φ₀`` the best
amplitude is ``c = B/A`` and the χ² gain ``B²/A``; ``φ₀`` is searched on a grid of
``nphases`` values, refined by a parabola through the best grid point and its neighbours
(periodic), and ``c`` evaluated there. With ``separate=True`` each integration gets its own
``φ₀`` and ``c`` (jwst ``fit_ints_separately``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from webbflow.steps.emicorr.kernel import SUM_QUANTUM, waveform_function

#: Below this fraction of its norm left after removing lines, the waveform is indistinguishable
#: from ramps (e.g. a period dividing the frame time): it cannot be fitted, nor does it matter.
DEGENERATE = 1e-9
#: Elements of the trial-waveform block evaluated at once (bounds the fit's memory, ~64 MB).
_BLOCK = 1 << 23


class EmiFit(NamedTuple):
    """Output of :func:`fit_emi`."""

    phases: np.ndarray  #: (integration,) float64 phase offset of each integration, in [0, 1)
    amplitudes: np.ndarray  #: (integration,) float64 waveform scale (0 when nothing to fit)


def _normal_terms(
    f: Callable[[np.ndarray], np.ndarray],
    trial: np.ndarray,
    template: np.ndarray,
    ysum: np.ndarray,
    npix: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A``, ``B`` of the module docstring and ``Σ n ‖z‖²``, (trial, integration), per trial offset."""
    ngroup = template.shape[-1]
    t = np.arange(ngroup, dtype=np.float64)
    s_t, s_tt = t.sum(), (t * t).sum()
    delta = ngroup * s_tt - s_t**2
    s_y, s_ty = ysum.sum(-1), (ysum * t).sum(-1)
    a_out = np.empty((trial.size, template.shape[0]))
    b_out = np.empty_like(a_out)
    z_out = np.empty_like(a_out)
    step = max(1, _BLOCK // template.size)
    for lo in range(0, trial.size, step):
        z = f(template[None] + trial[lo : lo + step, None, None, None])  # (p, int, bin, group)
        s_z, s_tz, s_zz = z.sum(-1), (z * t).sum(-1), (z * z).sum(-1)
        s_yz = (z * ysum[None]).sum(-1)
        norm = s_zz - (s_tt * s_z**2 - 2 * s_t * s_z * s_tz + ngroup * s_tz**2) / delta
        proj = s_yz - (s_tt * s_z * s_y - s_t * (s_z * s_ty + s_tz * s_y) + ngroup * s_tz * s_ty) / delta
        a_out[lo : lo + step] = (npix[None] * norm).sum(-1)
        b_out[lo : lo + step] = proj.sum(-1)
        z_out[lo : lo + step] = (npix[None] * s_zz).sum(-1)
    return a_out, b_out, z_out


def _best_phase(trial: np.ndarray, gain: np.ndarray) -> float | None:
    """Offset maximising ``gain`` on the periodic grid ``trial``, parabola-refined; None if none."""
    if not np.isfinite(gain).any():
        return None
    k = int(np.nanargmax(gain))
    g_m, g_0, g_p = gain[k - 1], gain[k], gain[(k + 1) % gain.size]
    h = trial[1] - trial[0] if trial.size > 1 else 1.0
    curvature = g_m - 2 * g_0 + g_p
    shift = 0.0
    if np.isfinite(curvature) and curvature < 0:
        shift = float(np.clip(0.5 * h * (g_m - g_p) / curvature, -h, h))
    return float((trial[k] + shift) % 1.0)


def fit_emi(
    ysum: np.ndarray,
    npix: np.ndarray,
    waveform: np.ndarray,
    *,
    dphase_group: float,
    dphase_int: float,
    nphases: int = 500,
    separate: bool = False,
) -> EmiFit:
    """Fit the phase offset and amplitude of ``waveform`` to phase-binned ramp sums.

    Parameters
    ----------
    ysum
        (integration, bin, group) int64: summed zero-mean ramps in units of
        :data:`~webbflow.steps.emicorr.kernel.SUM_QUANTUM` (all tiles added).
    npix
        (integration, bin) int64: ramps summed.
    waveform
        (bin,) float64 DN: the reference waveform (one period).
    dphase_group, dphase_int
        Phase advance from one group to the next and from one integration to the next.
    nphases
        Trial offsets on the grid ``k / nphases``.
    separate
        Fit each integration on its own.

    Returns
    -------
    EmiFit
        Phase offsets already include ``i · dphase_int``: integration ``i``'s waveform is
        ``amplitudes[i] · w(φ_pix + g · dphase_group + phases[i])``.
    """
    nint, nbins, ngroup = ysum.shape
    f = waveform_function(waveform)
    y = ysum.astype(np.float64) * SUM_QUANTUM
    n = npix.astype(np.float64)
    centres = (np.arange(nbins) + 0.5) / nbins
    template = (
        centres[None, :, None]
        + np.arange(ngroup)[None, None, :] * dphase_group
        + np.arange(nint)[:, None, None] * dphase_int
    )
    trial = np.arange(nphases) / nphases
    a, b, zz = _normal_terms(f, trial, template, y, n)
    groups = [np.arange(nint)] if not separate else [np.array([i]) for i in range(nint)]
    phases = np.zeros(nint)
    amplitudes = np.zeros(nint)
    for ints in groups:
        a_sum, b_sum = a[:, ints].sum(1), b[:, ints].sum(1)
        fittable = a_sum > DEGENERATE * zz[:, ints].sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(fittable, b_sum**2 / a_sum, np.nan)
        best = _best_phase(trial, gain)
        if best is None:
            continue
        a1, b1, zz1 = _normal_terms(f, np.array([best]), template[ints], y[ints], n[ints])
        a_best, b_best = a1.sum(), b1.sum()
        amplitudes[ints] = b_best / a_best if a_best > DEGENERATE * zz1.sum() else 0.0
        phases[ints] = (best + ints * dphase_int) % 1.0
    return EmiFit(phases, amplitudes)
