"""Pure photometric-calibration arithmetic (one tile, numpy only).

Imaging photom as in jwst 3.0: every rate plane is multiplied by the scalar
``PHOTMJSR`` of the exposure's filter/pupil (MJy/sr per DN/s) and every variance
by its square (``inverse`` divides instead); NaNs and ``DO_NOT_USE`` are then
made to agree. The PHOTOM file's optional time dependence divides ``PHOTMJSR``
by a throughput factor evaluated at the exposure's mid time
(:func:`time_correction`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from webbflow.steps.flat_field.kernel import match_invalid


class Calibrated(NamedTuple):
    """Calibrated planes, same shapes as the inputs; float32 and uint32."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray


def photom_kernel(
    sci: np.ndarray,
    err: np.ndarray,
    dq: np.ndarray,
    var_poisson: np.ndarray,
    var_rnoise: np.ndarray,
    var_flat: np.ndarray | None = None,
    *,
    conversion: float,
    do_not_use: int,
    inverse: bool = False,
) -> Calibrated:
    """Scale one tile by ``conversion`` (variances by its square); inputs are not modified.

    Parameters
    ----------
    sci, err : ndarray, shape (ny, nx) or (nint, ny, nx), float32, DN/s
    dq : ndarray, same shape, uint32
    var_poisson, var_rnoise, var_flat : ndarray, same shape, float32, (DN/s)²
        ``var_flat`` may be ``None`` (flat_field not run): zeros are returned for it.
    conversion
        ``PHOTMJSR``, MJy/sr per DN/s (applied in float32, as jwst).
    do_not_use
        DQ bit value.
    inverse
        Divide instead of multiply (undo a calibration).

    Returns
    -------
    Calibrated
        MJy/sr and (MJy/sr)² (or DN/s with ``inverse``).
    """
    c = np.float32(conversion)
    c2 = c * c
    vf = np.zeros_like(sci) if var_flat is None else var_flat
    if inverse:
        planes = (sci / c, err / c, var_rnoise / c2, var_poisson / c2, vf / c2)
    else:
        planes = (sci * c, err * c, var_rnoise * c2, var_poisson * c2, vf * c2)
    (s, e, vr, vp, vf_out), dq_out = match_invalid(planes, dq, do_not_use=do_not_use)
    return Calibrated(s, e, dq_out, vp, vr, vf_out)


def time_correction(mid_time: float, coeffs: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
    """Throughput relative to the reference epoch, one value per PHOTOM row.

    Parameters
    ----------
    mid_time
        Exposure mid time, MJD.
    coeffs
        ``{"linear": {"t0", "lossperyear"}, "exponential": {"t0", "amplitude", "tau",
        "const"}, "powerlaw": {"t0", "year1value", "tsoft", "alpha"}}``, any subset; arrays
        (nrows,), float64, times in days (MJD).

    Returns
    -------
    ndarray, shape (nrows,), float64
        The product of the present laws: linear ``1 − loss (t − t0)/365``; exponential
        ``A exp(−(t − t0)/τ) + c``; power law ``(t − t0 + ts)^α (year1 / (365 + ts)^α)``.
        Ones when ``coeffs`` is empty (then of length 1).
    """
    out: np.ndarray = np.ones(1)
    for kind, p in coeffs.items():
        dt = mid_time - np.asarray(p["t0"], np.float64)
        if kind == "linear":
            factor = 1.0 - p["lossperyear"] * dt / 365.0
        elif kind == "exponential":
            factor = p["amplitude"] * np.exp(-dt / p["tau"]) + p["const"]
        elif kind == "powerlaw":
            factor = (dt + p["tsoft"]) ** p["alpha"] * (p["year1value"] / (365.0 + p["tsoft"]) ** p["alpha"])
        else:
            raise ValueError(f"unknown time-dependence law {kind!r} (linear, exponential, powerlaw)")
        out = out * np.asarray(factor, np.float64)
    return out
