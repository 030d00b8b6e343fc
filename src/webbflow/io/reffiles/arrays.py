"""The arrays of the embedded default reference set, generated deterministically.

Every function here is pure: the same detector and reftype give the same
arrays on every machine, because all randomness comes from
``numpy.random.Generator(Philox(SeedSequence(seed)))`` with ``seed`` a fixed
integer derived from ``(name, detector)`` (:func:`seed_for`). Arrays use the
DMS full-frame orientation, numpy order ``(y, x)``.

Pixel defects (dead, hot, warm, low-QE, no-linearity, no-saturation-check)
come from one per-detector draw (:func:`defect_classes`), so the mask, dark,
linearity, saturation and flat files agree on which pixel is which. The pixel
area map is not random: it is the SIAF distortion of the detector's full-frame
aperture (:func:`pixel_area`).
"""

from __future__ import annotations

import math
import zlib
from typing import Final, NamedTuple

import numpy as np

from webbflow import dq
from webbflow.detectors import Detector
from webbflow.sim._siaf_names import PREFIX as _SIAF_PREFIX
from webbflow.sim.geometry import Geometry, Pointing

#: Bumped whenever any generated value changes: the cache folder carries it.
GENERATOR_VERSION: Final = "4"

#: ``DETECTOR`` -> SIAF full-frame aperture whose science frame is the DMS pixel frame.
FULL_APERTURES: Final = {detector: full for _, detector, full in _SIAF_PREFIX.values()}

#: Square arcseconds per steradian.
ARCSEC2_PER_SR: Final = (180.0 * 3600.0 / math.pi) ** 2

#: Relative uncertainty (ERR / SCI) of the default flat's pixel values.
FLAT_REL_ERR: Final = 0.005

#: Number of linearity polynomial coefficients (c0 … c3).
N_LINEARITY_COEFFS: Final = 4

# Fraction of pixels in each defect class (mutually exclusive).
_DEFECT_FRACTIONS: Final = (
    ("dead", 3e-4),
    ("hot", 5e-4),
    ("warm", 2e-3),
    ("low_qe", 1e-3),
    ("no_lin", 1e-4),
    ("no_sat", 5e-5),
)


def seed_for(name: str, detector: str) -> int:
    """The fixed integer seed of ``(name, detector)`` (CRC-32 of the text: stable everywhere)."""
    return zlib.crc32(f"webbflow-defaults:{GENERATOR_VERSION}:{name}:{detector}".encode())


def rng_for(name: str, detector: str) -> np.random.Generator:
    """A Philox generator keyed by ``(name, detector)``."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(seed_for(name, detector))))


class Defects(NamedTuple):
    """Boolean (y, x) maps of each defect class; mutually exclusive."""

    dead: np.ndarray
    hot: np.ndarray
    warm: np.ndarray
    low_qe: np.ndarray
    no_lin: np.ndarray
    no_sat: np.ndarray


def refpix_border(det: Detector) -> np.ndarray:
    """Boolean (y, x) map of the reference pixels: the 4-pixel border (near-infrared), or the
    left and right reference columns only (MIRI, :meth:`Detector.reference_mask`)."""
    return det.reference_mask()


def defect_classes(det: Detector) -> Defects:
    """The detector's defective pixels (none in the reference-pixel border)."""
    u = rng_for("defects", det.name).random((det.ny, det.nx))
    u[refpix_border(det)] = 1.0
    maps = {}
    lo = 0.0
    for name, frac in _DEFECT_FRACTIONS:
        maps[name] = (u >= lo) & (u < lo + frac)
        lo += frac
    return Defects(**maps)


def amp_map(det: Detector, values: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """A (y, x) float64 map holding ``values[i]`` on the pixels of amplifier ``i``.

    Stripes (near-infrared) or columns interleaved ``x mod namps`` (MIRI,
    :meth:`Detector.amplifier`).
    """
    if det.amp_layout == "interleaved":
        columns = np.asarray(values, np.float64)[det.amplifier(np.arange(det.nx), 0)]
        return np.broadcast_to(columns[None, :], (det.ny, det.nx)).copy()
    per_amp = np.repeat(np.asarray(values, np.float64), det.amp_width)
    if det.amp_axis == "x":
        return np.broadcast_to(per_amp[None, :], (det.ny, det.nx)).copy()
    return np.broadcast_to(per_amp[:, None], (det.ny, det.nx)).copy()


def mask_dq(det: Detector) -> np.ndarray:
    """Mask DQ (y, x) uint32 in **standard** bits: dead, hot, warm, low QE, reference pixels.

    Reference pixels are REFERENCE_PIXEL only: ``refpix`` (jwst's and ours) uses just the
    reference pixels *without* DO_NOT_USE, so flagging the border DO_NOT_USE would turn the
    reference-pixel correction off.
    """
    d = defect_classes(det)
    out = np.zeros((det.ny, det.nx), np.uint32)
    out[d.dead] = dq.DEAD | dq.DO_NOT_USE
    out[d.hot] = dq.HOT | dq.DO_NOT_USE
    out[d.warm] = dq.WARM
    out[d.low_qe] = dq.LOW_QE
    out[refpix_border(det)] = dq.REFERENCE_PIXEL
    return out


def superbias(det: Detector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sci, err, dq)``: bias level (DN, float32) with per-amplifier offsets and
    column structure, its uncertainty (DN) and DQ (UNRELIABLE_BIAS on a few pixels)."""
    rng = rng_for("superbias", det.name)
    level = det.bias + amp_map(det, det.amp_bias_offsets)
    columns = rng.normal(0.0, 4.0, det.nx)[None, :]
    yy = np.linspace(-1.0, 1.0, det.ny)[:, None]
    sci = level + columns + 25.0 * yy**2 + rng.normal(0.0, 12.0, (det.ny, det.nx))
    err = np.full((det.ny, det.nx), 0.4 * det.read_noise / 5.0) + rng.uniform(0.0, 0.1, (det.ny, det.nx))
    dqarr = np.zeros((det.ny, det.nx), np.uint32)
    dqarr[rng.random((det.ny, det.nx)) < 1e-4] = dq.UNRELIABLE_BIAS
    return sci.astype(np.float32), err.astype(np.float32), dqarr


def saturation(det: Detector) -> tuple[np.ndarray, np.ndarray]:
    """``(sci, dq)``: saturation thresholds in raw DN (bias included), DQ with NO_SAT_CHECK."""
    rng = rng_for("saturation", det.name)
    level = det.saturation + amp_map(det, det.amp_bias_offsets)
    sci = level + rng.normal(0.0, 450.0, (det.ny, det.nx))
    d = defect_classes(det)
    sci[d.dead] = det.bias + 0.5 * (det.saturation - det.bias)  # dead pixels saturate early
    dqarr = np.zeros((det.ny, det.nx), np.uint32)
    dqarr[d.no_sat] = dq.NO_SAT_CHECK
    return sci.astype(np.float32), dqarr


def linearity(det: Detector) -> tuple[np.ndarray, np.ndarray]:
    """``(coeffs, dq)``: (ncoeff, y, x) float32 polynomial, lowest order first, taking
    bias-subtracted raw DN to linear DN; DQ with NO_LIN_CORR (identity coefficients there).

    With ``S`` the bias-subtracted saturation level, ``c2 S² + c3 S³ ≈ nonlinearity · S``:
    the correction adds ``nonlinearity`` (≈ 7-9 %) of the signal at saturation.
    """
    rng = rng_for("linearity", det.name)
    full_well = det.saturation - det.bias
    scale = det.nonlinearity * (1.0 + rng.normal(0.0, 0.08, (det.ny, det.nx)))
    coeffs = np.zeros((N_LINEARITY_COEFFS, det.ny, det.nx), np.float32)
    coeffs[1] = 1.0
    coeffs[2] = 0.75 * scale / full_well
    coeffs[3] = 0.25 * scale / full_well**2
    d = defect_classes(det)
    coeffs[2:, d.no_lin] = 0.0
    dqarr = np.zeros((det.ny, det.nx), np.uint32)
    dqarr[d.no_lin] = dq.NO_LIN_CORR
    return coeffs, dqarr


def dark_rate(det: Detector) -> np.ndarray:
    """Dark current (y, x) float64, e⁻/s: log-normal scatter, warm and hot pixels."""
    rng = rng_for("dark", det.name)
    rate = det.dark_current * rng.lognormal(0.0, 0.3, (det.ny, det.nx))
    d = defect_classes(det)
    rate[d.warm] = rng.uniform(0.1, 1.0, int(d.warm.sum()))
    rate[d.hot] = rng.uniform(2.0, 20.0, int(d.hot.sum()))
    rate[refpix_border(det)] = 0.0
    return rate


def dark_dq(det: Detector) -> np.ndarray:
    """Dark DQ (y, x) uint32: HOT and WARM pixels."""
    d = defect_classes(det)
    out = np.zeros((det.ny, det.nx), np.uint32)
    out[d.hot] = dq.HOT
    out[d.warm] = dq.WARM
    return out


def dark_frame(det: Detector, rate_dn: np.ndarray, k: int) -> np.ndarray:
    """Dark frame ``k`` (0-based), float32 DN: ``rate_dn * (k + 1) * frame_time``.

    ``rate_dn`` is the dark rate in DN/s (:func:`dark_rate` / gain).
    """
    return (rate_dn * ((k + 1) * det.frame_time_full)).astype(np.float32)


def gain(det: Detector) -> np.ndarray:
    """Gain (y, x) float32, e⁻/DN: ±3 % pixel scatter, ±2 % per amplifier."""
    rng = rng_for("gain", det.name)
    amps = 1.0 + rng.normal(0.0, 0.02, det.namps)
    return (det.gain * amp_map(det, tuple(amps)) * (1.0 + rng.normal(0.0, 0.03, (det.ny, det.nx)))).astype(
        np.float32
    )


def readnoise(det: Detector) -> np.ndarray:
    """Single-read read noise (y, x) float32, DN: per-amplifier level, 8 % pixel scatter."""
    rng = rng_for("readnoise", det.name)
    amps = 1.0 + rng.normal(0.0, 0.05, det.namps)
    noise = det.read_noise * amp_map(det, tuple(amps)) * (1.0 + rng.normal(0.0, 0.08, (det.ny, det.nx)))
    return np.maximum(noise, 0.3 * det.read_noise).astype(np.float32)


def ipc_kernel(det: Detector) -> np.ndarray:
    """3×3 IPC *deconvolution* kernel (ky, kx) float32 summing to 1, as jwst ``IPC`` references hold.

    The coupling itself sends ``alpha`` of a pixel's signal to each of its 4
    nearest neighbours and ``alpha / 10`` to each diagonal; the ``ipc`` step
    convolves the data with this kernel to undo it. To first order in alpha
    the inverse of the coupling is ``2 δ - coupling``: neighbours ``-alpha``,
    diagonals ``-alpha / 10``, centre ``1 + 4.4 alpha`` (the neglected terms are
    of order alpha² ≈ 3e-5).
    """
    a = det.ipc_alpha
    b = a / 10.0
    k = -np.array([[b, a, b], [a, 0.0, a], [b, a, b]], np.float64)
    k[1, 1] = 1.0 - k.sum()
    return k.astype(np.float32)


def flat(det: Detector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sci, err, dq)`` of the pixel flat: relative QE (y, x) float32, normalized to 1.

    The product of a large-scale gradient (tilts of ≤ 1.5 % per half-frame and a
    1-2 % radial fall-off), a per-amplifier step (σ 0.5 %) and pixel-to-pixel scatter
    (σ 2 %), normalized so the mean of the good pixels is 1. LOW_QE pixels respond at
    40-60 % of their neighbourhood. As in the jwst flats, pixels without a flat value
    hold 1 (no correction), ERR 0 and NO_FLAT_FIELD | DO_NOT_USE: the reference-pixel
    border (also REFERENCE_PIXEL) and dead pixels (also DEAD). Independent of filter.

    Returns
    -------
    sci : ndarray, shape (ny, nx), float32, dimensionless
    err : ndarray, shape (ny, nx), float32, dimensionless (``FLAT_REL_ERR * sci``)
    dq : ndarray, shape (ny, nx), uint32, standard bits
    """
    rng = rng_for("flat", det.name)
    yy = np.linspace(-1.0, 1.0, det.ny)[:, None]
    xx = np.linspace(-1.0, 1.0, det.nx)[None, :]
    tilt_x, tilt_y = rng.uniform(-0.015, 0.015, 2)
    falloff = rng.uniform(0.01, 0.02)
    large = 1.0 + tilt_x * xx + tilt_y * yy - 0.5 * falloff * (xx**2 + yy**2)
    amps = amp_map(det, tuple(1.0 + rng.normal(0.0, 0.005, det.namps)))
    sci = large * amps * (1.0 + rng.normal(0.0, 0.02, (det.ny, det.nx)))
    d = defect_classes(det)
    sci[d.low_qe] *= rng.uniform(0.4, 0.6, int(d.low_qe.sum()))
    border = refpix_border(det)
    no_flat = border | d.dead
    sci /= sci[~(no_flat | d.low_qe)].mean()
    sci[no_flat] = 1.0
    err = FLAT_REL_ERR * sci
    err[no_flat] = 0.0
    dqarr = np.zeros((det.ny, det.nx), np.uint32)
    dqarr[d.low_qe] = dq.LOW_QE
    dqarr[no_flat] = dq.NO_FLAT_FIELD | dq.DO_NOT_USE
    dqarr[d.dead] |= np.uint32(dq.DEAD)
    dqarr[border] |= np.uint32(dq.REFERENCE_PIXEL)
    return sci.astype(np.float32), err.astype(np.float32), dqarr


def pixel_area(det: Detector) -> tuple[np.ndarray, float]:
    """``(sci, nominal_sr)``: pixel solid angle relative to the nominal one, from the SIAF distortion.

    The Jacobian of the science-to-ideal polynomial of the detector's full-frame
    aperture (:data:`FULL_APERTURES`), as :meth:`webbflow.sim.geometry.Geometry.pixel_area`
    computes it for the simulation, so calibration and simulation share one map. It is 1
    at the aperture's reference point (the detector centre).

    Returns
    -------
    sci : ndarray, shape (ny, nx), float32, dimensionless
    nominal_sr : float
        Pixel solid angle at the reference point, sr (``PIXAR_SR``).
    """
    geometry = Geometry.from_aperture(FULL_APERTURES[det.name], Pointing(0.0, 0.0, 0.0))
    return geometry.pixel_area(0, det.ny, 0, det.nx), geometry.nominal_pixel_area_sr
