"""Linearity kernel: map measured counts to counts proportional to accumulated charge.

Physics: as charge builds up, a pixel's response falls below linear (the
junction capacitance changes). The LINEARITY reference gives, per pixel, a
polynomial ``c0 + c1·S + c2·S² + …`` (lowest order first) that turns the
bias-subtracted signal S (DN) into the linearised signal. Groups flagged
SATURATED are left unchanged (the polynomial is only valid below
saturation). Pixels whose coefficients contain NaN or whose linear term is 0
are left uncorrected and flagged NO_LIN_CORR; pixels already NO_LIN_CORR in
the reference are left uncorrected. The reference DQ is ORed into ``pixeldq``.
A zero-frame value of 0 marks unusable data and stays 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LinearityResult(NamedTuple):
    """Output of :func:`linearity_kernel` (new arrays)."""

    sci: np.ndarray
    pixeldq: np.ndarray
    zeroframe: np.ndarray | None


def polynomial(data: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Evaluate ``sum_k coeffs[k] * data**k`` by Horner's rule in float32.

    ``coeffs`` is (ncoeff, y, x), lowest order first; ``data`` ends in (y, x).
    """
    acc = coeffs[-1] * data
    for c in coeffs[-2:0:-1]:
        acc = (acc + c) * data
    return (acc + coeffs[0]).astype(np.float32)


def linearity_kernel(
    sci: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    coeffs: np.ndarray,
    lin_dq: np.ndarray,
    zeroframe: np.ndarray | None = None,
    *,
    saturated: int,
    no_lin_corr: int,
) -> LinearityResult:
    """Apply the linearity polynomial to every unsaturated group.

    Parameters
    ----------
    sci
        (integration, group, y, x) float32, DN.
    groupdq
        (integration, group, y, x) uint8.
    pixeldq
        (y, x) uint32.
    coeffs
        (coeff, y, x) float32 polynomial coefficients, lowest order first (≥ 2).
    lin_dq
        (y, x) uint32 linearity-reference DQ.
    zeroframe
        (integration, y, x) float32, DN, or ``None``.
    saturated, no_lin_corr
        DQ bit values.

    Returns
    -------
    LinearityResult
        ``sci`` float32 (integration, group, y, x), ``pixeldq`` uint32 (y, x),
        ``zeroframe`` float32 (integration, y, x) or ``None``.
    """
    coeffs = coeffs.astype(np.float32, copy=False)
    flagged = (lin_dq & no_lin_corr) != 0
    has_nan = np.isnan(coeffs).any(axis=0)
    zero_linear = (coeffs[1] == 0) & ~flagged & ~has_nan
    newly = has_nan | zero_linear
    skip = flagged | newly
    pdq = (pixeldq | lin_dq | np.where(newly, no_lin_corr, 0)).astype(np.uint32)
    corrected = polynomial(sci, coeffs)
    keep = skip | ((groupdq & saturated) != 0)
    out = np.where(keep, sci, corrected).astype(np.float32)
    zf = None
    if zeroframe is not None:
        zcorr = np.where(skip, zeroframe, polynomial(zeroframe, coeffs))
        zf = np.where(zeroframe == 0, np.float32(0), zcorr).astype(np.float32)
    return LinearityResult(out, pdq, zf)
