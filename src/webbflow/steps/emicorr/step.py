"""The ``emicorr`` step (jwst ``EmiCorrStep``): fit and remove MIRI's periodic EMI pattern.

As jwst 3.0's default ``joint`` algorithm (physics and model: :mod:`.kernel`, :mod:`.fit`):
MIRI only, FAST/FASTR1/SLOW/SLOWR1 read patterns, at least 3 groups; the EMICORR reference
gives, for the exposure's subarray case, the readout clocks and the frequencies to remove,
each with a reference waveform. Frequencies are removed one after another, each fitted on the
data cleaned of the previous ones. Skipped by default (``skip = True``), as in jwst 3.0.

Graph, per frequency, never a whole-frame chunk:

1. every tile's read scatter (``(integration, y, x)``, 1/ngroups of the ramp) → one small
   task: the quiet-pixel threshold, twice the median scatter;
2. every tile → :func:`~.kernel.emi_sums` (integration × bin × group int64) → summed exactly →
   :func:`~.fit.fit_emi` (phase and amplitude; small);
3. every tile subtracts all fitted waveforms (:func:`~.kernel.subtract_emi`).

Each tile's ramp feeds steps 1-3, so it stays in memory (or is recomputed, if the scheduler
drops it) until the fit is known: the step needs the whole exposure before its first
corrected tile, as jwst's does.

Differences from jwst 3.0 (measured in ``tests/test_emicorr.py``): the waveform is a periodic
cubic spline through the reference samples (jwst: a cubic through the samples extended by
one at each end); each integration's trial waveform is evaluated at its exact phase (jwst:
the nearest point of its 500-phase grid); the read scatter is computed in float64.
``algorithm='sequential'`` and ``onthefly_corr_freq`` are not built (UsageError); the other
sequential-only parameters are accepted and have no effect, as in jwst's joint algorithm.

``reset_model`` (webbflow's own, off by default): the joint model of a ramp is a line plus the
EMI waveforms, and a line cannot absorb MIRI's reset anomaly (hundreds of DN in the first
groups, decaying over ~15 groups). On an exposure with that anomaly the fit trades EMI phase
and amplitude against the curvature, and the "correction" adds more pattern than it removes
(a simulated SUB64 exposure: 2.8 DN rms of EMI in, 7.8 DN rms left). The anomaly is known —
it is the RESET reference the later ``reset`` step subtracts — so it belongs in the model:
with ``reset_model=True`` the fit sees the ramps minus the RESET reference (integrations
mapped as :func:`webbflow.steps.reset.step.reference_integrations`; its DQ ORed in, as the
``reset`` step does), and the fitted waveforms are subtracted from the *original* ramps, so
``reset`` still removes the anomaly exactly once. It is off by default for jwst parity (jwst
fits the raw ramps); the RESET reference is then neither resolved nor recorded. When on and
the RESET reference is ``N/A`` the fit falls back to the raw ramps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np
import xarray as xr

from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep
from webbflow.errors import UsageError
from webbflow.io.reffiles.emicorr import EmiFrequency, select_case
from webbflow.model import meta_value
from webbflow.steps._miri import MiriStep
from webbflow.steps.emicorr.fit import EmiFit, fit_emi
from webbflow.steps.emicorr.kernel import EmiComponent, emi_sums, ramp_scatter, subtract_emi
from webbflow.steps.reset.step import ResetStep

log = logging.getLogger("webbflow")

#: Read patterns the correction applies to (jwst 3.0).
READPATTS = ("FAST", "FASTR1", "SLOW", "SLOWR1")
#: Rows of the full MIRI array; the rows a subarray skips cost this many clocks each.
FULL_ROWS, SKIPPED_ROW_CLOCKS = 1024, 7
#: Seconds per pixel clock.
PIXEL_CLOCK = 10.0e-6


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`EmiCorrStep` (names and defaults of jwst 3.0's ``emicorr``)."""

    skip: bool = param(True, "Skip this step (jwst 3.0 default).")
    algorithm: str = param(
        "joint", "EMI fitting algorithm (only 'joint' is built).", choices=("sequential", "joint")
    )
    nints_to_phase: int | None = param(None, "Integrations to phase ('sequential' only; no effect).")
    nbins: int | None = param(None, "Bins in one phased wave ('sequential' only; no effect).")
    scale_reference: bool = param(True, "Scale the reference wave ('sequential' only; no effect).")
    onthefly_corr_freq: tuple[float, ...] | None = param(
        None, "Frequencies for an on-the-fly reference (not built)."
    )
    use_n_cycles: int | None = param(3, "Cycles used to phase ('sequential' only; no effect).")
    fit_ints_separately: bool = param(False, "Fit amplitude and phase separately for each integration.")
    user_supplied_reffile: str | None = param(None, "Deprecated in jwst; use override_emicorr.")
    save_intermediate_results: bool = param(False, "Save an on-the-fly reference (not built; no effect).")
    reset_model: bool = param(
        False,
        "Fit the EMI on the ramps minus the RESET reference (webbflow only; off = jwst parity).",
    )


class Timing:
    """Readout timing of an exposure in pixel clocks (see :mod:`.kernel`)."""

    def __init__(self, ds: xr.Dataset, rowclocks: int, frameclocks: int) -> None:
        readpatt = str(meta_value(ds, "exposure.readpatt", "")).strip().upper()
        default_samples = 9 if readpatt.startswith("SLOW") else 1
        self.rowclocks = rowclocks
        self.nsamples = int(meta_value(ds, "exposure.nsamples", default_samples) or default_samples)
        ny = ds.sizes["y"]
        self.frame = ny * rowclocks + (FULL_ROWS - ny) * float(SKIPPED_ROW_CLOCKS)
        # R1 patterns read one extra reset frame between integrations
        self.reset = frameclocks if readpatt.endswith("R1") else 0
        self.ngroups = ds.sizes["group"]

    def dphases(self, period: float) -> tuple[float, float]:
        """Phase advance per group and per integration of a waveform of ``period`` clocks."""
        group = (self.frame / period) % 1.0
        return group, group * self.ngroups + self.reset / period


class EmiCorrStep(MiriStep):
    """Remove MIRI's periodic electromagnetic interference from the ramps."""

    name = "emicorr"
    cal_step = "emicorr"
    #: "reset" is resolved only with ``reset_model=True`` (see ``__init__``).
    reftypes: ClassVar[tuple[str, ...]] = ("emicorr", "reset")
    optional_reftypes = ("reset",)
    Params = Params

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        super().__init__(params, **values)
        assert isinstance(self.params, Params)
        if not self.params.reset_model:
            # jwst parity: without the reset model the RESET file is neither resolved nor recorded
            self.reftypes = ("emicorr",)  # type: ignore[misc]

    def build(self, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
        """Return ``ds`` with the fitted EMI waveforms subtracted from ``sci`` (lazy)."""
        p = self.params
        assert isinstance(p, Params)
        if p.algorithm != "joint":
            raise UsageError("emicorr.algorithm='sequential' is not built in webbflow; use 'joint'")
        if p.onthefly_corr_freq is not None or p.user_supplied_reffile is not None:
            raise UsageError(
                "emicorr: onthefly_corr_freq and user_supplied_reffile are not built; use override_emicorr"
            )
        readpatt = str(meta_value(ds, "exposure.readpatt", "")).strip().upper()
        if readpatt not in READPATTS:
            raise SkipStep(f"EMI correction is not defined for READPATT={readpatt}")
        if ds.sizes["group"] < 3:
            raise SkipStep(f"too few groups ({ds.sizes['group']} < 3)")
        subarray = str(meta_value(ds, "subarray.name", "FULL"))
        detector = str(meta_value(ds, "instrument.detector", ""))
        case = select_case(refs["emicorr"], subarray, readpatt, detector)
        if case is None:
            raise SkipStep(f"the EMICORR reference has no case for {subarray} {readpatt} {detector}")
        timing = Timing(ds, case.rowclocks, case.frameclocks)
        tiles = _Tiles(ds)
        # the fit sees the ramps minus the known reset anomaly; the correction is applied to ds
        seen = tiles
        if p.reset_model and "reset" in refs:
            seen = _Tiles(ResetStep().build(ds, refs))
        elif p.reset_model:
            log.info("emicorr: RESET reference is N/A; fitting the ramps without the reset model")
        fits: list[tuple[EmiFrequency, Any]] = []
        for freq in case.frequencies:
            src = seen.subtracted(timing, fits) if fits else seen.sci
            fits.append((freq, _fit(freq, src, seen, timing, p.fit_ints_separately)))
        return ds.assign(sci=(ds["sci"].dims, tiles.subtract_graph(timing, fits)))


class _Tiles:
    """An exposure's ramp tiles as delayed blocks, with their window positions."""

    def __init__(self, ds: xr.Dataset) -> None:
        sci = ds["sci"].data if isinstance(ds["sci"].data, da.Array) else da.from_array(ds["sci"].values)
        self.array = sci.rechunk({0: -1, 1: -1})
        ychunks, xchunks = self.array.chunks[2:]
        self.sci = self.array.to_delayed()[0, 0]
        pdq = (
            ds["pixeldq"].data
            if isinstance(ds["pixeldq"].data, da.Array)
            else da.asarray(ds["pixeldq"].values)
        )
        self.pdq = pdq.rechunk((ychunks, xchunks)).to_delayed()
        self.rows = np.split(np.arange(ds.sizes["y"]), np.cumsum(ychunks)[:-1])
        self.cols = np.split(np.arange(ds.sizes["x"]), np.cumsum(xchunks)[:-1])

    def blocks(self, sci: Any) -> list[tuple[Any, Any, np.ndarray, np.ndarray]]:
        """``(sci, pixeldq, rows, cols)`` per tile, for delayed ``sci`` blocks."""
        return [
            (sci[by, bx], self.pdq[by, bx], r, c)
            for by, r in enumerate(self.rows)
            for bx, c in enumerate(self.cols)
        ]

    def subtracted(self, timing: Timing, fits: Sequence[tuple[EmiFrequency, Any]]) -> Any:
        """Delayed blocks (object array) of the ramp with ``fits`` subtracted."""
        out = np.empty(self.sci.shape, dtype=object)
        comps = _components(timing, fits)
        for by, r in enumerate(self.rows):
            for bx, c in enumerate(self.cols):
                out[by, bx] = dask.delayed(_subtract_block, pure=True)(
                    self.sci[by, bx], r, c, timing.rowclocks, timing.nsamples, comps
                )
        return out

    def subtract_graph(self, timing: Timing, fits: Sequence[tuple[EmiFrequency, Any]]) -> da.Array:
        """The corrected ramp as a dask array tiled like the input."""
        done = self.subtracted(timing, fits)
        lead = self.array.shape[:2]
        meta = np.empty((0, 0, 0, 0), np.float32)
        return da.block(
            [
                [
                    da.from_delayed(done[by, bx], (*lead, len(r), len(c)), dtype=np.float32, meta=meta)
                    for bx, c in enumerate(self.cols)
                ]
                for by, r in enumerate(self.rows)
            ]
        )


def _components(timing: Timing, fits: Sequence[tuple[EmiFrequency, Any]]) -> Any:
    """Delayed list of :class:`~.kernel.EmiComponent` for the fitted frequencies."""
    out = []
    for freq, fit in fits:
        period = (1.0 / freq.frequency) / PIXEL_CLOCK
        dgroup, _ = timing.dphases(period)
        out.append(dask.delayed(_component, pure=True)(freq.waveform, period, dgroup, fit))
    return dask.delayed(list, pure=True)(out)


def _component(waveform: np.ndarray, period: float, dgroup: float, fit: EmiFit) -> EmiComponent:
    return EmiComponent(waveform, period, dgroup, fit.phases, fit.amplitudes)


def _subtract_block(
    sci: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    rowclocks: int,
    nsamples: int,
    comps: list[EmiComponent],
) -> np.ndarray:
    return subtract_emi(sci, rows, cols, rowclocks=rowclocks, nsamples=nsamples, components=comps).sci


def _threshold(scatters: list[np.ndarray]) -> float:
    """Twice the median read scatter of every ramp of the exposure (jwst's quiet-pixel cut)."""
    return 2.0 * float(np.median(np.concatenate([s.ravel() for s in scatters])))


def _total(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Exact sum of the tiles' :class:`~.kernel.EmiSums` (int64)."""
    ysum = np.asarray(np.sum([q[0] for q in parts], axis=0, dtype=np.int64))
    npix = np.asarray(np.sum([q[1] for q in parts], axis=0, dtype=np.int64))
    return ysum, npix


def _fit_total(
    total: tuple[np.ndarray, np.ndarray], waveform: np.ndarray, dgroup: float, dint: float, separate: bool
) -> EmiFit:
    return fit_emi(total[0], total[1], waveform, dphase_group=dgroup, dphase_int=dint, separate=separate)


def _fit(freq: EmiFrequency, src: Any, tiles: _Tiles, timing: Timing, separate: bool) -> Any:
    """Delayed :class:`~.fit.EmiFit` of ``freq`` on the delayed ramp blocks ``src``."""
    period = (1.0 / freq.frequency) / PIXEL_CLOCK
    dgroup, dint = timing.dphases(period)
    blocks = tiles.blocks(src)
    scatter = [dask.delayed(ramp_scatter, pure=True)(b[0]) for b in blocks]
    threshold = dask.delayed(_threshold, pure=True)(scatter)
    parts = [
        dask.delayed(emi_sums, pure=True)(
            s,
            q,
            r,
            c,
            threshold=threshold,
            rowclocks=timing.rowclocks,
            nsamples=timing.nsamples,
            period=period,
            nbins=freq.waveform.size,
        )
        for s, q, r, c in blocks
    ]
    total = dask.delayed(_total, pure=True)(parts)
    return dask.delayed(_fit_total, pure=True)(total, freq.waveform, dgroup, dint, separate)
