"""Pure drizzle kernels on one (input rectangle, output tile) pair; numpy in, numpy out.

The mosaic of N inputs is, per output pixel (jwst's ``ResampleStep`` with drizzle 2.x):

* ``sci = Σ_i Σ_p w_p a_p d_p / Σ_i Σ_p w_p a_p`` (drizzle's weighted mean; ``a_p`` the kernel
  overlap of input pixel p, ``w_p`` its weight: 1/VAR_RNOISE ("ivm") or the exposure time
  ("exptime"), 0 for DQ-rejected or non-finite pixels); ``wht = Σ_i Σ_p w_p a_p``.
* each variance plane k: input i alone gives ``v_ik = (drizzle of sqrt(var_k))²`` and an
  output weight ``W_i = 1/v_i,rnoise`` (ivm) or the exposure time (exptime); then
  ``var_k = Σ_i W_i² v_ik / (Σ_i W_i)² / r²`` (r = output/input pixel scale ratio) and
  ``err = sqrt(var_poisson + var_rnoise + var_flat)``.

So one input's contribution to an output tile is a :class:`Partial` of sums, and partials add
(in float64), which lets the graph reduce inputs one tile at a time in a tree: memory per output
tile does not grow with the number of inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from drizzle.resample import Drizzle

from webbflow.steps.resample.pixmap import pixmap

#: Variance planes drizzled as jwst does, in this order.
VARIANCES = ("var_poisson", "var_rnoise", "var_flat")


@dataclass(frozen=True)
class DrizzleSettings:
    """Per-run drizzle settings (hashable, shipped inside every task)."""

    pixfrac: float = 1.0
    kernel: str = "square"
    weight_type: str = "ivm"
    bad_bits: int = 1
    pixel_scale_ratio: float = 1.0
    pixmap_stepsize: int = 1


@dataclass(frozen=True)
class Region:
    """Where one task works: the input rectangle (with its 1-px pixmap halo) and the output tile.

    ``rows``/``cols`` are half-open input pixel ranges actually drizzled; ``hrows``/``hcols``
    are those ranges grown by 1 px (clipped to the input) — the array the task receives.
    ``tile`` is (y0, y1, x0, x1) on the output grid; ``pad`` (output px, > the drop's reach)
    the margin of the scratch array drizzle writes to.
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    hrows: tuple[int, int]
    hcols: tuple[int, int]
    tile: tuple[int, int, int, int]
    pad: int = 4


class Partial(NamedTuple):
    """One or more inputs' sums on an output tile, float64, shape (ty, tx) each."""

    wsci: np.ndarray  # Σ w a d
    wht: np.ndarray  # Σ w a
    wvar: np.ndarray  # (3, ty, tx) Σ_i W_i² v_ik
    wvar_wt: np.ndarray  # (3, ty, tx) Σ_i W_i
    con: dict[int, np.ndarray]  # context plane -> int32 bits


def input_weight(
    sci: np.ndarray,
    dq: np.ndarray,
    var_rnoise: np.ndarray | None,
    *,
    weight_type: str,
    exptime: float,
    bad_bits: int,
) -> np.ndarray:
    """Drizzle weight map of input pixels, float32: ivm = 1/VAR_RNOISE or exptime; 0 where rejected.

    Rejected: ``dq & bad_bits`` set, non-finite ``sci``, and (ivm) VAR_RNOISE non-finite or <= 0.
    Without ``var_rnoise``, ivm weights are 1 (as jwst when the array is absent).
    """
    good = ((np.asarray(dq).astype(np.uint32) & np.uint32(bad_bits)) == 0) & np.isfinite(sci)
    if weight_type == "exptime":
        w = np.full(sci.shape, exptime, np.float32)
    elif var_rnoise is None:
        w = np.ones(sci.shape, np.float32)
    else:
        v = np.asarray(var_rnoise, np.float32)
        ok = np.isfinite(v) & (v > 0)
        w = np.zeros(sci.shape, np.float32)
        np.divide(1.0, v, out=w, where=ok)
    return np.where(good, w, np.float32(0)).astype(np.float32)


def _drizzle_planes(
    planes: Sequence[np.ndarray],
    weight: np.ndarray,
    pmap: np.ndarray,
    region: Region,
    settings: DrizzleSettings,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Drizzle each plane alone with the same weights; (weighted means, NaN-filled; weight sum)."""
    y0, y1, x0, x1 = region.tile
    # drizzle drops input pixels that straddle the edge of its output array: drizzle onto the
    # tile grown by ``pad`` and crop, so edge pixels land exactly as in a whole-grid drizzle
    pad = region.pad
    pmap = pmap + pad
    box = {
        "xmin": region.cols[0] - region.hcols[0],
        "xmax": region.cols[1] - 1 - region.hcols[0],
        "ymin": region.rows[0] - region.hrows[0],
        "ymax": region.rows[1] - 1 - region.hrows[0],
    }
    images: list[np.ndarray] = []
    wht = np.zeros((y1 - y0, x1 - x0), np.float32)
    for plane in planes:
        driz = Drizzle(
            kernel=settings.kernel,
            out_shape=(y1 - y0 + 2 * pad, x1 - x0 + 2 * pad),
            fillval="NaN",
            disable_ctx=True,
        )
        driz.add_image(
            np.asarray(plane, np.float32),
            exptime=1.0,
            pixmap=pmap,
            weight_map=weight,
            pixfrac=settings.pixfrac,
            pixel_scale_ratio=settings.pixel_scale_ratio,
            in_units="cps",
            **box,
        )
        images.append(driz.out_img[pad:-pad, pad:-pad])
        wht = driz.out_wht[pad:-pad, pad:-pad]
    return images, wht


def drizzle_one(
    arrays: Mapping[str, np.ndarray],
    in_wcs: Any,
    out_wcs: Any,
    region: Region,
    settings: DrizzleSettings,
    *,
    exptime: float,
    sky: float = 0.0,
    index: int = 0,
    variances: bool = True,
) -> Partial:
    """One input's :class:`Partial` on an output tile.

    Parameters
    ----------
    arrays
        ``sci`` (MJy/sr), ``dq`` and optionally ``var_poisson``, ``var_rnoise``, ``var_flat``
        ((MJy/sr)²), each the input's ``region.hrows × region.hcols`` rectangle.
    in_wcs, out_wcs
        Input and output gwcs.
    region
        Input rectangle and output tile.
    settings
        Drizzle settings.
    exptime
        Exposure (measurement) time, s, for ``weight_type="exptime"``.
    sky
        Sky level (MJy/sr) subtracted from ``sci`` before drizzling.
    index
        The input's position in the list (its context bit).
    variances
        Also drizzle the variance planes.
    """
    sci = np.asarray(arrays["sci"], np.float32)
    weight = input_weight(
        sci,
        arrays["dq"],
        arrays.get("var_rnoise"),
        weight_type=settings.weight_type,
        exptime=exptime,
        bad_bits=settings.bad_bits,
    )
    data = np.where(weight > 0, sci - np.float32(sky), np.float32(0))
    pmap = pixmap(
        in_wcs,
        out_wcs,
        region.hrows,
        region.hcols,
        origin=(region.tile[0], region.tile[2]),
        stepsize=settings.pixmap_stepsize,
    )
    names = [v for v in VARIANCES if variances and v in arrays]
    planes = [data] + [np.sqrt(np.clip(np.asarray(arrays[v], np.float32), 0, None)) for v in names]
    images, wht = _drizzle_planes(planes, weight, pmap, region, settings)
    shape = wht.shape
    wht64 = wht.astype(np.float64)
    wsci = np.where(wht > 0, images[0].astype(np.float64) * wht64, 0.0)
    wvar = np.zeros((len(VARIANCES), *shape))
    wvar_wt = np.zeros((len(VARIANCES), *shape))
    var = {n: images[1 + k].astype(np.float64) ** 2 for k, n in enumerate(names)}
    if settings.weight_type == "exptime":
        w_out = np.where(wht > 0, float(exptime), 0.0)
    elif "var_rnoise" in var:
        rn = var["var_rnoise"]
        ok = np.isfinite(rn) & (rn > 0)
        w_out = np.zeros(shape)
        np.divide(1.0, rn, out=w_out, where=ok)
    else:
        w_out = np.where(wht > 0, 1.0, 0.0)
    for k, name in enumerate(VARIANCES):
        if name not in var:
            continue
        ok = np.isfinite(var[name]) & (var[name] >= 0) & (w_out > 0)
        wvar[k] = np.where(ok, var[name] * w_out * w_out, 0.0)
        wvar_wt[k] = np.where(ok, w_out, 0.0)
    bit = np.array(1 << (index % 32), np.uint32).view(np.int32)  # bit 31 is the int32 sign bit
    con = {index // 32: np.where(wht > 0, bit, np.int32(0)).astype(np.int32)}
    return Partial(wsci, wht64, wvar, wvar_wt, con)


def add_partials(*parts: Partial) -> Partial:
    """Sum of partials (context planes OR-ed)."""
    con: dict[int, np.ndarray] = {}
    for p in parts:
        for plane, bits in p.con.items():
            con[plane] = con[plane] | bits if plane in con else bits
    return Partial(
        sum((p.wsci for p in parts[1:]), parts[0].wsci),
        sum((p.wht for p in parts[1:]), parts[0].wht),
        sum((p.wvar for p in parts[1:]), parts[0].wvar),
        sum((p.wvar_wt for p in parts[1:]), parts[0].wvar_wt),
        con,
    )


def finalize(
    part: Partial | None, shape: tuple[int, int], *, fillval: float, nplanes: int, pixel_scale_ratio: float
) -> dict[str, np.ndarray]:
    """Mosaic arrays of one output tile from the summed partial (``None``: no input overlaps).

    Returns ``sci``, ``err``, ``wht``, the variances (float32, MJy/sr and (MJy/sr)²) and ``con``
    (nplanes, ty, tx) int32.
    """
    if part is None:
        nan = np.full(shape, np.nan, np.float32)
        out: dict[str, np.ndarray] = {
            "sci": np.full(shape, fillval, np.float32),
            "err": nan,
            "wht": np.zeros(shape, np.float32),
        }
        out.update({v: nan for v in VARIANCES})
        out["con"] = np.zeros((nplanes, *shape), np.int32)
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        has = part.wht > 0
        sci = np.where(has, part.wsci / np.where(has, part.wht, 1.0), fillval)
        out = {"sci": sci.astype(np.float32), "wht": part.wht.astype(np.float32)}
        var = np.where(part.wvar_wt > 0, part.wvar / part.wvar_wt**2, np.nan) / pixel_scale_ratio**2
    for k, name in enumerate(VARIANCES):
        out[name] = var[k].astype(np.float32)
    all_nan = np.all(np.isnan(var), axis=0)
    out["err"] = np.where(all_nan, np.nan, np.sqrt(np.nansum(var, axis=0))).astype(np.float32)
    con = np.zeros((nplanes, *shape), np.int32)
    for plane, bits in part.con.items():
        con[plane] = bits
    out["con"] = con
    return out
