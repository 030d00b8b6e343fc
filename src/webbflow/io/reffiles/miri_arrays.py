"""The arrays and tables of the embedded default MIRI imager (``MIRIMAGE``) Detector1 references.

Pure and deterministic like :mod:`.arrays` (whose defect draw, gain, read noise
and saturation maps they share, so every MIRI default agrees on which pixel is
which). Arrays are full frame, DMS orientation, numpy order ``(y, x)`` =
(1024, 1032). The simulator reads the written files back (contract §3), so the
numbers here are the *only* place the MIRI detector effects are defined.

Choices (nominal, not calibrated; the jwst MIRI reference files' layouts):

* **Mask.** Reference columns (x 0-3, 1028-1031) are ``REFERENCE_PIXEL`` only,
  as for the near-infrared detectors (refpix's sigma clip skips ``DO_NOT_USE``).
  The non-imaging part of the array left of the imager field, below the Lyot
  coronagraph (the three 4QPM coronagraphs and the LRS slit / slitless-prism
  area: 0-based x 4…358, y 0…717) is ``NON_SCIENCE`` without ``DO_NOT_USE``:
  those pixels see light through the coronagraph masks and are ramp-fitted, but
  resample and the catalogs skip them (jwst's resample rejects ``NON_SCIENCE``;
  jwst PR 4851 and 9174 flag the 4QPM/LRS area so while the Lyot area stays
  usable). Edges from pysiaf PRDOPSSOC-075: ``MIRIM_ILLUM`` starts at detector
  x = 360 (1-based), ``MIRIM_MASKLYOT`` at y = 719. The Lyot area is not flagged:
  the SUB128 and SUB64 imaging subarrays lie in it.
* **Linearity.** jwst MIRI Detector1 has no superbias: linearity sees raw DN
  including the zero level ``B`` (:func:`zero_level`). The COEFFS polynomial in
  raw DN is ``L(D) = D + a s² + b s³`` with ``s = D - B``, expanded in powers of
  ``D``; ``L(B) = B`` and ``a S² + b S³ = nonlinearity · S`` at the
  zero-level-subtracted saturation ``S``.
* **Dark** (``DarkMIRIModel``): integration 1 and "integrations after the first"
  planes; a linear dark ``rate·t`` (integration 1 10 % higher) plus a small
  settling term ``A_i (1 - exp(-(g+1)/4))``, full-frame FAST frame time ``t``.
* **Reset anomaly**: ``A_i(y, x) (exp(-g/τ) - exp(-G/τ)) / (1 - exp(-G/τ))`` for
  0-based group ``g < G`` = :data:`RESET_NGROUPS`, τ = 2.5 groups; ``A`` ≈ 400 DN in
  integration 1 and 300 DN later, ±8 % per pixel, per-amplifier ±5 %. Exactly 0 at
  group ``G``, where the reference stops.
* **RSCD**: groups to flag after the first integration ``ceil(3 τ_rscd / t_frame)``
  clipped to 1…8 with :data:`RSCD_DECAY_S` = 3.5 s (4 for the full array FAST),
  1 in integration 1 (the first frame).
* **EMICORR**: the jwst MIRI frequency names and values (10.039216, 164.9305,
  218.52055, 390.625 Hz), waveforms a fundamental plus harmonics of a few DN;
  the readout clocks of jwst's subarray table.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from webbflow import dq
from webbflow.detectors import MIRI_SUBARRAYS, Detector, miri_frame_time
from webbflow.io.reffiles import arrays

#: First column (0-based) of the imager field: pysiaf ``MIRIM_ILLUM`` detector x 360 (1-based).
IMAGER_X0: Final = 359
#: First row (0-based) of the Lyot coronagraph area: pysiaf ``MIRIM_MASKLYOT`` y 719 (1-based).
LYOT_Y0: Final = 718

#: Groups the default RESET reference describes (the anomaly is 0 from this group on).
RESET_NGROUPS: Final = 15
#: e-folding of the reset anomaly, groups.
RESET_TAU_GROUPS: Final = 2.5
#: Mean reset-anomaly amplitude in group 1, DN: integration 1, then the later ones.
RESET_AMPLITUDE_DN: Final = (400.0, 300.0)

#: Dark integrations of the default MIRI dark (1 and "after the first").
DARK_NINTS: Final = 2
#: Dark rate factor of each dark integration (integration 1 runs warmer).
DARK_RATE_FACTOR: Final = (1.10, 1.00)
#: Settling term of each dark integration, DN, and its e-folding in groups.
DARK_SETTLE_DN: Final = (4.0, 2.5)
DARK_SETTLE_GROUPS: Final = 4.0

#: e-folding time of the RSCD signal in integrations ≥ 2, s.
RSCD_DECAY_S: Final = 3.5
#: Most groups the default RSCD table flags.
RSCD_MAX_SKIP: Final = 8

#: jwst 3.0 ``emicorr.subarray_clocks``: (rowclocks, frameclocks) of 10 µs per case.
EMI_CLOCKS: Final = {
    "FULL_FAST": (271, 277504),
    "FULL_SLOW": (2333, 2388992),
    "BRIGHTSKY": (162, 86528),
    "SUB256": (96, 29952),
    "SUB128": (44, 11904),
    "SUB64": (28, 8512),
    "MASK1065": (82, 23968),
    "MASK1140": (82, 23968),
    "MASK1550": (82, 23968),
    "MASKLYOT": (90, 32400),
    "SLITLESSPRISM": (28, 15904),
}

#: EMI frequencies (jwst MIRI names): Hz, amplitude DN, (2nd, 3rd) harmonic fractions.
EMI_FREQUENCIES: Final = {
    "Hz10": (10.039216, 2.0, (0.35, 0.10)),
    "Hz10_slow_MIRIMAGE": (10.039216, 2.0, (0.25, 0.15)),
    "Hz164": (164.9305, 1.5, (0.20, 0.05)),
    "Hz218a": (218.52055, 2.0, (0.30, 0.10)),
    "Hz390": (390.625, 3.0, (0.40, 0.15)),
}
#: Samples of each reference waveform (one period).
EMI_SAMPLES: Final = 256


def non_imaging_region(det: Detector) -> np.ndarray:
    """(y, x) bool: the 4QPM/LRS area left of the imager field below the Lyot area (see module doc).

    Reference columns are excluded (they stay ``REFERENCE_PIXEL`` only).
    """
    out = np.zeros((det.ny, det.nx), bool)
    out[:LYOT_Y0, det.refpix : IMAGER_X0] = True
    return out


def mask_dq(det: Detector) -> np.ndarray:
    """Mask DQ (y, x) uint32, standard bits: :func:`.arrays.mask_dq` plus ``NON_SCIENCE``."""
    out = arrays.mask_dq(det)
    out[non_imaging_region(det)] |= np.uint32(dq.NON_SCIENCE)
    return out


def zero_level(det: Detector) -> np.ndarray:
    """Raw zero level (y, x) float64 DN: ``bias`` + the amplifier offsets (columns ``x mod 4``).

    The level the linearity polynomial is expanded about; the simulator starts ramps here.
    """
    return det.bias + arrays.amp_map(det, det.amp_bias_offsets)


def linearity(det: Detector) -> tuple[np.ndarray, np.ndarray]:
    """``(coeffs, dq)``: (4, y, x) float32 polynomial in raw DN, lowest order first; DQ NO_LIN_CORR.

    ``L(D) = D + a s² + b s³``, ``s = D - B`` (module doc), ``B`` = :func:`zero_level`;
    pixels without a correction (NO_LIN_CORR) hold the identity ``(0, 1, 0, 0)``.
    """
    rng = arrays.rng_for("linearity", det.name)
    base = zero_level(det)
    full_well = det.saturation - base
    scale = det.nonlinearity * (1.0 + rng.normal(0.0, 0.08, (det.ny, det.nx)))
    a = 0.75 * scale / full_well
    b = 0.25 * scale / full_well**2
    coeffs = np.zeros((arrays.N_LINEARITY_COEFFS, det.ny, det.nx), np.float64)
    coeffs[0] = a * base**2 - b * base**3
    coeffs[1] = 1.0 - 2.0 * a * base + 3.0 * b * base**2
    coeffs[2] = a - 3.0 * b * base
    coeffs[3] = b
    d = arrays.defect_classes(det)
    coeffs[:, d.no_lin] = np.array([0.0, 1.0, 0.0, 0.0])[:, None]
    dqarr = np.zeros((det.ny, det.nx), np.uint32)
    dqarr[d.no_lin] = dq.NO_LIN_CORR
    return coeffs.astype(np.float32), dqarr


def dark_rate_dn(det: Detector) -> np.ndarray:
    """Dark rate (y, x) float64, DN/s (:func:`.arrays.dark_rate` / gain); 0 on reference columns."""
    return arrays.dark_rate(det) / arrays.gain(det).astype(np.float64)


def dark_plane(det: Detector, rate_dn: np.ndarray, integration: int, group: int) -> np.ndarray:
    """Dark (y, x) float32 DN of 0-based dark ``integration`` (0 or 1) and ``group``.

    ``rate_dn · t · (g + 1) · f_i + A_i (1 - exp(-(g + 1) / 4))`` on light-sensitive pixels;
    ``t`` the full-frame FAST frame time (module doc).
    """
    i = min(integration, DARK_NINTS - 1)
    settle = DARK_SETTLE_DN[i] * (1.0 - math.exp(-(group + 1) / DARK_SETTLE_GROUPS))
    plane = rate_dn * ((group + 1) * det.frame_time_full * DARK_RATE_FACTOR[i]) + settle
    plane[det.reference_mask()] = 0.0
    return plane.astype(np.float32)


def dark_dq(det: Detector) -> np.ndarray:
    """Dark DQ (nints=2, 1, y, x) uint32 (``DarkMIRIModel`` layout): HOT and WARM, both integrations."""
    return np.broadcast_to(arrays.dark_dq(det), (DARK_NINTS, 1, det.ny, det.nx)).copy()


def reset_amplitudes(det: Detector) -> np.ndarray:
    """(nints=2, y, x) float64: the reset anomaly of group 1, DN, per reference integration."""
    rng = arrays.rng_for("reset", det.name)
    amps = arrays.amp_map(det, tuple(1.0 + rng.normal(0.0, 0.05, det.namps)))
    pixel = 1.0 + rng.normal(0.0, 0.08, (det.ny, det.nx))
    return np.stack([level * amps * pixel for level in RESET_AMPLITUDE_DN])


def reset_shape() -> np.ndarray:
    """(RESET_NGROUPS,) float64: the decay of the anomaly, 1 at group 1, 0 at group ``G + 1``."""
    g = np.arange(RESET_NGROUPS, dtype=np.float64)
    tail = math.exp(-RESET_NGROUPS / RESET_TAU_GROUPS)
    return (np.exp(-g / RESET_TAU_GROUPS) - tail) / (1.0 - tail)


def rscd_group_skip(frame_time: float) -> int:
    """Groups of integrations ≥ 2 flagged by RSCD for a frame time (s): ``ceil(3 τ / t)``, 1…8."""
    return int(min(max(math.ceil(3.0 * RSCD_DECAY_S / frame_time), 1), RSCD_MAX_SKIP))


def rscd_rows() -> list[tuple[str, str, int, int]]:
    """RSCD table rows ``(subarray, readpatt, group_skip1, group_skip)``.

    FAST and FASTR1 for every subarray; SLOW and SLOWR1 for the full array only.
    """
    rows = []
    for sub in MIRI_SUBARRAYS.values():
        patterns = ("FAST", "FASTR1", "SLOW", "SLOWR1") if sub.name == "FULL" else ("FAST", "FASTR1")
        for readpatt in patterns:
            skip = rscd_group_skip(miri_frame_time(sub.name, readpatt))
            rows.append((sub.name, readpatt, 1, skip))
    return rows


def emi_waveform(name: str) -> np.ndarray:
    """One period (EMI_SAMPLES,) float64 DN of frequency ``name``, sampled at ``(i + 0.5) / n``."""
    _, amplitude, (h2, h3) = EMI_FREQUENCIES[name]
    phase = 2.0 * np.pi * (np.arange(EMI_SAMPLES) + 0.5) / EMI_SAMPLES
    wave = np.sin(phase) + h2 * np.sin(2.0 * phase + 0.6) + h3 * np.sin(3.0 * phase + 1.9)
    return amplitude * wave / np.max(np.abs(wave))


def emi_cases() -> dict[str, dict[str, Any]]:
    """``subarray_cases`` of the default EMICORR file (the :mod:`.emicorr` layout).

    Full array: 10, 164 and 218 Hz (FAST), 10 Hz (SLOW); subarrays: 390 and 10 Hz (FAST).
    """
    cases: dict[str, dict[str, Any]] = {}
    for case, (rowclocks, frameclocks) in EMI_CLOCKS.items():
        if case == "FULL_SLOW":
            freqs: dict[str, Any] = {"SLOW": {"MIRIMAGE": ["Hz10_slow_MIRIMAGE"]}}
        elif case == "FULL_FAST":
            freqs = {"FAST": ["Hz10", "Hz164", "Hz218a"]}
        else:
            freqs = {"FAST": ["Hz390", "Hz10"]}
        cases[case] = {"rowclocks": rowclocks, "frameclocks": frameclocks, "freqs": freqs}
    return cases
