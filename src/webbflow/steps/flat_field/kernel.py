"""Pure flat-field arithmetic on rate-level planes (one tile, numpy only).

Imaging flat fielding as in jwst 3.0: the science rate is divided by the
flat; the Poisson and read-noise variances by the flat squared; the flat's own
uncertainty becomes a third variance, ``var_flat = (sci / flat)² (flat_err /
flat)²`` with ``sci / flat`` the flat-fielded rate; ``err`` is rebuilt as the
root of the three variances. Pixels whose flat is NaN or exactly 0, or flagged
``NO_FLAT_FIELD`` or ``DO_NOT_USE``, are left uncorrected (flat 1) and carry
``NO_FLAT_FIELD | DO_NOT_USE`` into the output DQ. Negative flat values are used as
they are (as jwst does). Finally :func:`match_invalid` makes NaNs and
``DO_NOT_USE`` agree, so a flagged pixel is NaN in every plane.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PreparedFlat(NamedTuple):
    """The flat as applied: bad values replaced by 1, their flags added."""

    flat: np.ndarray
    dq: np.ndarray


class FlatFielded(NamedTuple):
    """Flat-fielded planes, same shapes as the science inputs; float32 and uint32."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray


def prepare_flat(
    flat: np.ndarray, flat_dq: np.ndarray, *, do_not_use: int, no_flat_field: int
) -> PreparedFlat:
    """The flat with unusable pixels set to 1 and flagged; inputs are not modified.

    Parameters
    ----------
    flat : ndarray, shape (ny, nx), float32, dimensionless
        Relative response.
    flat_dq : ndarray, shape (ny, nx), uint32
        Flat DQ (standard bits).
    do_not_use, no_flat_field
        DQ bit values.

    Returns
    -------
    PreparedFlat
        ``flat`` (float32) and ``dq`` (uint32): NaN or 0 → ``DO_NOT_USE | NO_FLAT_FIELD``;
        ``NO_FLAT_FIELD`` → also ``DO_NOT_USE``; every ``DO_NOT_USE`` pixel gets flat 1.
    """
    bad_value = np.isnan(flat) | (flat == 0)
    dq = flat_dq.astype(np.uint32) | np.where(bad_value, np.uint32(do_not_use | no_flat_field), np.uint32(0))
    dq |= np.where((dq & np.uint32(no_flat_field)) != 0, np.uint32(do_not_use), np.uint32(0))
    unused = (dq & np.uint32(do_not_use)) != 0
    return PreparedFlat(np.where(unused, np.float32(1), flat).astype(np.float32), dq)


def match_invalid(
    planes: tuple[np.ndarray, ...], dq: np.ndarray, *, do_not_use: int
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Make NaNs and ``DO_NOT_USE`` agree: a pixel NaN in any plane or flagged is NaN and flagged.

    Parameters
    ----------
    planes
        Float planes of one shape (sci, err, variances).
    dq : ndarray, uint32, same shape
    do_not_use
        DQ bit value.

    Returns
    -------
    (planes, dq)
        New arrays; the inputs are not modified.
    """
    invalid = (dq & np.uint32(do_not_use)) != 0
    for plane in planes:
        invalid |= np.isnan(plane)
    out = tuple(np.where(invalid, np.array(np.nan, plane.dtype), plane) for plane in planes)
    return out, dq | np.where(invalid, np.uint32(do_not_use), np.uint32(0))


def flat_field_kernel(
    sci: np.ndarray,
    dq: np.ndarray,
    var_poisson: np.ndarray,
    var_rnoise: np.ndarray,
    flat: np.ndarray,
    flat_err: np.ndarray,
    flat_dq: np.ndarray,
    *,
    do_not_use: int,
    no_flat_field: int,
    inverse: bool = False,
) -> FlatFielded:
    """Apply (or, with ``inverse``, undo) the flat to one tile.

    Parameters
    ----------
    sci : ndarray, shape (ny, nx) or (nint, ny, nx), float32, DN/s
    dq : ndarray, same shape, uint32
    var_poisson, var_rnoise : ndarray, same shape, float32, (DN/s)²
    flat, flat_err : ndarray, shape (ny, nx), float32, dimensionless
    flat_dq : ndarray, shape (ny, nx), uint32
    do_not_use, no_flat_field
        DQ bit values.
    inverse
        Multiply by the flat (variances by its square) instead of dividing;
        ``var_flat`` is then 0 and ``err`` the root of the other two variances.

    Returns
    -------
    FlatFielded
        float32 planes and the uint32 DQ (input DQ OR the prepared flat DQ).
    """
    prepared = prepare_flat(flat, flat_dq, do_not_use=do_not_use, no_flat_field=no_flat_field)
    f = prepared.flat
    f2 = f * f
    if inverse:
        out = sci * f
        vp, vr = var_poisson * f2, var_rnoise * f2
        vf = np.zeros_like(out)
        err = np.sqrt(vp + vr)
    else:
        out = sci / f
        # same evaluation order as jwst, so float32 results agree bit for bit
        vf = out**2 / f2 * flat_err.astype(np.float32) ** 2
        vp, vr = var_poisson / f2, var_rnoise / f2
        err = np.sqrt(vp + vr + vf)
    (out, err, vr, vp, vf), dq_out = match_invalid(
        (out, err, vr, vp, vf), dq | prepared.dq, do_not_use=do_not_use
    )
    return FlatFielded(out, err, dq_out, vp, vr, vf)
