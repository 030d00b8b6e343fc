"""Sky statistics of whole exposures from per-tile reductions (the ``skystat`` of jwst's skymatch).

The statistic is that of ``stsci.imagestats.ImageStats`` as jwst's skymatch uses it, computed
without ever holding an exposure in one chunk:

1. ``nclip + 1`` rounds of clipping. Each round is one small reduction over tiles (count, mean,
   sum of squared deviations, min, max of the usable pixels in ``[lo, hi]``, merged exactly with
   :func:`~webbflow.steps.skymatch.kernel.merge_moments`); between rounds
   ``[lo, hi] = [max(lower, mean - lsigma·std), min(upper, mean + usigma·std)]``. A round whose
   range did not change would repeat the last one, so it is not run.
2. ``mean``: the last round's mean. ``mode`` / ``midpt``: a histogram of the last round's pixels
   with bins of ``binwidth·std`` from their minimum, summed over tiles; the mode is the peak bin
   refined by a parabola through its neighbours, the midpoint the linear interpolation of the
   cumulative histogram at one half. ``median``: exact, by narrowing a 4096-bin histogram onto
   the middle rank(s) until the few values left are gathered and sorted.

Every pass works on all exposures at once (one ``dask.compute``), so shared upstream work runs
once per pass. A usable pixel is finite, has no ``bad_bits`` DQ bit set and lies in the range;
``offset`` is subtracted first (the ``global+match`` sky is measured on matched data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import dask
import dask.array as da
import numpy as np

from webbflow.steps.skymatch import kernel

#: Values gathered per exposure to finish an exact median (memory bound of that pass).
MEDIAN_GATHER_LIMIT: Final = 200_000
_MEDIAN_BINS: Final = 4096
_MAX_MEDIAN_PASSES: Final = 12
#: Largest histogram for ``mode``/``midpt`` (unclipped data with a wide range would ask for more).
MAX_HISTOGRAM_BINS: Final = 1 << 20


@dataclass(frozen=True)
class SkyStat:
    """How to compute a sky value (jwst ``skystat``, ``lower``, ``upper``, ``nclip``, ...)."""

    skystat: str = "mode"
    lower: float | None = None
    upper: float | None = None
    nclip: int = 5
    lsigma: float = 4.0
    usigma: float = 4.0
    binwidth: float = 0.1


class Source(NamedTuple):
    """One exposure's pixels for the statistic: lazy ``sci`` (MJy/sr) and ``dq``, same chunks."""

    sci: da.Array
    dq: da.Array
    bad_bits: int
    offset: float = 0.0


class SkyValue(NamedTuple):
    """A sky value (MJy/sr; ``None`` when no usable pixel) and the number of pixels behind it."""

    value: float | None
    npix: int


def sky_values(sources: Sequence[Source], stat: SkyStat) -> list[SkyValue]:
    """The sky statistic of every source (eager: a few small reductions over tiles).

    Parameters
    ----------
    sources
        Exposures (or parts of exposures) to measure.
    stat
        The statistic and its clipping parameters.

    Returns
    -------
    list of SkyValue, one per source (``value`` None when no pixel is usable).
    """
    lower = -math.inf if stat.lower is None else float(stat.lower)
    upper = math.inf if stat.upper is None else float(stat.upper)
    ranges = dict.fromkeys(range(len(sources)), (lower, upper))
    moments: dict[int, np.ndarray] = {}
    active = list(ranges)
    for round_ in range(stat.nclip + 1):
        results = _compute([_per_tile(kernel.tile_moments, sources[i], *ranges[i]) for i in active])
        still = []
        for i, parts in zip(active, results, strict=True):
            moments[i] = kernel.merge_moments(np.stack(parts))
            n, mean, m2 = moments[i][:3]
            if n == 0 or round_ == stat.nclip:
                continue
            std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
            new = (max(lower, mean - stat.lsigma * std), min(upper, mean + stat.usigma * std))
            if new != ranges[i]:  # an unchanged range would repeat the same round
                ranges[i] = new
                still.append(i)
        active = still
        if not active:
            break
    valid = {i: m for i, m in moments.items() if m[0] > 0}
    if stat.skystat == "mean":
        values = {i: float(m[1]) for i, m in valid.items()}
    elif stat.skystat == "median":
        values = _medians(sources, ranges, valid)
    else:
        values = _histogram_stats(sources, ranges, valid, stat)
    return [
        SkyValue(values[i], int(valid[i][0])) if i in valid else SkyValue(None, 0)
        for i in range(len(sources))
    ]


def _compute(items: Sequence[Any]) -> list[Any]:
    return list(dask.compute(*items)) if items else []


def _per_tile(fn: Callable[..., Any], src: Source, lo: float, hi: float, **kwargs: Any) -> list[Any]:
    """Delayed ``fn(sci_tile, dq_tile, bad_bits=, offset=, lo=, hi=, **kwargs)`` for every tile."""
    call = dask.delayed(fn, pure=True)
    dq = src.dq.rechunk(src.sci.chunks)
    return [
        call(s, d, bad_bits=src.bad_bits, offset=src.offset, lo=lo, hi=hi, **kwargs)
        for s, d in zip(src.sci.to_delayed().ravel(), dq.to_delayed().ravel(), strict=True)
    ]


def _histogram(src: Source, lo: float, hi: float, plan: tuple[float, float, int]) -> da.Array:
    """The tiles' histograms (``plan`` = start, width, nbins) summed by a dask tree reduction."""
    start, width, nbins = plan
    dq = src.dq.rechunk(src.sci.chunks)
    kwargs = {"bad_bits": src.bad_bits, "offset": src.offset, "lo": lo, "hi": hi}
    parts = da.map_blocks(
        _histogram_block,
        src.sci,
        dq,
        new_axis=2,
        chunks=((1,) * len(src.sci.chunks[0]), (1,) * len(src.sci.chunks[1]), (nbins,)),
        dtype=np.int64,
        meta=np.empty((0, 0, 0), np.int64),
        **kwargs,
        start=start,
        width=width,
        nbins=nbins,
    )
    return parts.sum(axis=(0, 1))


def _histogram_block(sci: np.ndarray, dq: np.ndarray, **kwargs: Any) -> np.ndarray:
    return kernel.tile_histogram(sci, dq, **kwargs)[None, None, :]


def _histogram_stats(
    sources: Sequence[Source],
    ranges: Mapping[int, tuple[float, float]],
    moments: Mapping[int, np.ndarray],
    stat: SkyStat,
) -> dict[int, float]:
    """``mode`` or ``midpt`` of the sources in ``moments`` from one histogram pass."""
    plans: dict[int, tuple[float, float, int]] = {}
    values: dict[int, float] = {}
    tiny = 10.0 * float(np.finfo(np.float32).eps)
    for i, (n, _, m2, mn, mx) in moments.items():
        width = stat.binwidth * (math.sqrt(m2 / (n - 1)) if n > 1 else 0.0)
        if width < tiny or mx - mn < tiny or width > mx - mn:
            values[i] = 0.5 * (mn + mx)  # all pixels fall in one bin
            continue
        nbins = int((mx - mn) / width) + 1
        if nbins > MAX_HISTOGRAM_BINS:
            nbins, width = MAX_HISTOGRAM_BINS, (mx - mn) / MAX_HISTOGRAM_BINS
        plans[i] = (mn, width, nbins)
    counts = _compute([_histogram(sources[i], *ranges[i], plans[i]) for i in plans])
    for i, hist in zip(plans, counts, strict=True):
        start, width, _ = plans[i]
        values[i] = start + width * (_mode_bin(hist) if stat.skystat == "mode" else _midpt_bin(hist))
    return values


def _mode_bin(hist: np.ndarray) -> float:
    """Position of the histogram's peak, in bins from the first edge (parabolic refinement)."""
    k = int(np.argmax(hist))
    if k == 0 or k == hist.size - 1:
        return k + 0.5
    dh1 = float(hist[k] - hist[k - 1])
    dh2 = float(hist[k] - hist[k + 1])
    return k + 0.5 + (0.5 * (dh1 - dh2) / (dh1 + dh2) if dh1 + dh2 > 0 else 0.0)


def _midpt_bin(hist: np.ndarray) -> float:
    """Where the cumulative histogram reaches one half, in bins (linear within the bin)."""
    cdf = np.cumsum(hist) / hist.sum()
    k = int(np.searchsorted(cdf, 0.5))
    before = cdf[k - 1] if k > 0 else 0.0
    return k + (0.5 - before) / (cdf[k] - before)


def _medians(
    sources: Sequence[Source], ranges: Mapping[int, tuple[float, float]], moments: Mapping[int, np.ndarray]
) -> dict[int, float]:
    """Exact medians (the mean of the two middle values for an even count) of the pixels in range.

    Each pass either gathers the values of a window ``[a, b]`` known to hold the middle rank(s)
    (when it holds at most :data:`MEDIAN_GATHER_LIMIT`) or histograms it to narrow it.
    """
    todo = {i: (float(m[3]), float(m[4]), int(m[0])) for i, m in moments.items()}
    ranks = {i: ((int(m[0]) - 1) // 2, int(m[0]) // 2) for i, m in moments.items()}
    out: dict[int, float] = {}
    for _ in range(_MAX_MEDIAN_PASSES):
        if not todo:
            break
        nbins = {i: 0 if count <= MEDIAN_GATHER_LIMIT else _MEDIAN_BINS for i, (_, _, count) in todo.items()}
        jobs = [
            _per_tile(kernel.tile_rank_window, sources[i], *ranges[i], a=a, b=b, nbins=nbins[i])
            for i, (a, b, _) in todo.items()
        ]
        for (i, (a, b, _)), parts in zip(list(todo.items()), _compute(jobs), strict=True):
            n_below = sum(int(p[0]) for p in parts)
            k1, k2 = ranks[i]
            if nbins[i] == 0:
                values = np.sort(np.concatenate([p[1] for p in parts]))
                out[i] = 0.5 * (float(values[k1 - n_below]) + float(values[k2 - n_below]))
                del todo[i]
                continue
            cum = n_below + np.cumsum(np.sum([p[1] for p in parts], axis=0))
            j1, j2 = (int(np.searchsorted(cum, k, side="right")) for k in (k1, k2))
            edges = kernel.bin_edges(a, b, nbins[i])
            a, b = float(edges[j1]), float(edges[j2 + 1])
            todo[i] = (a, b, int(cum[j2] - (cum[j1 - 1] if j1 > 0 else n_below)))
            if b - a <= 4 * np.spacing(max(abs(a), abs(b))):
                out[i] = a  # the middle values are equal to float64 precision
                del todo[i]
    out.update({i: a for i, (a, _, _) in todo.items()})
    return out
