"""emicorr ``reset_model``: the joint EMI fit with MIRI's reset anomaly in the model.

A simulated MIRI exposure carries the RESET reference's anomaly (hundreds of DN in the first
groups), which the joint model's per-ramp line cannot absorb. The same seed is simulated
with and without EMI, so their difference is the injected EMI (plus rounding): emicorr on the
exposure with EMI must give back the one without, to within the rounding.

SUB64 FASTR1: the default EMICORR case removes 390.625 and 10.04 Hz; a 390.625 Hz period is
256 pixel clocks and the SUB64 frame 8512, so the wave advances 1/4 period per group (not
degenerate, unlike FULL/SUB256/BRIGHTSKY where it advances a whole number of periods).
"""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

from webbflow.io.reffiles import ReferenceResolver
from webbflow.steps.dq_init.step import DQInitStep
from webbflow.steps.emicorr.step import PIXEL_CLOCK, EmiCorrStep, Timing

EMI_AMPLITUDE = 5.0  # DN, of each of the reference's waveforms (their peak is a few DN)


def _simulate(tmp_path: Path, emi_amplitude: float) -> xr.Dataset:
    from webbflow.graphs.simulate import build_simulation
    from webbflow.sim.config import load_config

    lines = [
        "instrument: MIRI",
        "detector: MIRIMAGE",
        "subarray: SUB64",
        "filter: F770W",
        "readout: {readpatt: FASTR1, ngroups: 30, nints: 3}",
        "seed: 23",
        f"miri: {{emi_amplitude: {emi_amplitude}}}",
    ]
    path = tmp_path / f"miri_emi{emi_amplitude:g}.yaml"
    path.write_text("\n".join(lines) + "\n")
    with dask.config.set(scheduler="synchronous"):
        return build_simulation(load_config(path)).exposure.compute()


@pytest.fixture(scope="module")
def exposures(tmp_path_factory: pytest.TempPathFactory) -> tuple[xr.Dataset, xr.Dataset]:
    """(with EMI, without EMI) SUB64 uncal ramps of the same seed, through dq_init."""
    tmp = tmp_path_factory.mktemp("emicorr_reset")
    resolver = ReferenceResolver.default()
    return tuple(DQInitStep()(_simulate(tmp, a), resolver) for a in (EMI_AMPLITUDE, 0.0))  # type: ignore[return-value]


def _reference(reftype: str, ds: xr.Dataset) -> xr.Dataset:
    """The default ``reftype`` reference opened for ``ds``."""
    resolver = ReferenceResolver.default()
    ref = resolver.resolve(reftype, ds, None)
    assert ref is not None
    return resolver.open(ref, ds)


def _residual(exposures: tuple[xr.Dataset, xr.Dataset], reset_model: bool) -> tuple[float, float]:
    """(rms of the injected EMI, rms of emicorr's residual) in DN, per-ramp means removed."""
    emi, clean = exposures
    resolver = ReferenceResolver.default()
    out = EmiCorrStep(skip=False, reset_model=reset_model)(emi, resolver)
    with dask.config.set(scheduler="synchronous"):
        fixed = out["sci"].values.astype(np.float64)
    ref = clean["sci"].values.astype(np.float64)
    injected = emi["sci"].values.astype(np.float64) - ref
    residual = fixed - ref
    # the joint fit leaves a constant per ramp (the EMI's mean over the ramp is degenerate with bias)
    injected -= injected.mean(axis=1, keepdims=True)
    residual -= residual.mean(axis=1, keepdims=True)
    return float(injected.std()), float(residual.std())


def test_sub64_emi_is_not_degenerate_with_the_frame() -> None:
    ds = xr.Dataset(
        {"sci": (("integration", "group", "y", "x"), np.zeros((1, 30, 64, 72), np.float32))},
        attrs={"meta": {"exposure": {"readpatt": "FASTR1"}}},
    )
    timing = Timing(ds, rowclocks=28, frameclocks=8512)
    for hz in (390.625, 10.039216):
        dgroup, _ = timing.dphases(1.0 / hz / PIXEL_CLOCK)
        assert 0.05 < dgroup < 0.95


def test_reset_model_removes_the_emi_below_the_read_noise(exposures) -> None:
    emi, _ = exposures
    readnoise = _reference("readnoise", emi)["sci"].values
    per_read = float(np.nanmedian(readnoise)) / np.sqrt(2.0)  # READNOISE is a CDS noise

    injected, with_model = _residual(exposures, reset_model=True)
    _, without_model = _residual(exposures, reset_model=False)
    print(
        f"\ninjected EMI {injected:.2f} DN rms; residual: reset_model on {with_model:.2f}, "
        f"off {without_model:.2f} DN rms; read noise per read {per_read:.2f} DN"
    )
    assert injected > 0.5 * EMI_AMPLITUDE  # the waves are really there
    assert with_model < per_read
    assert with_model < 0.2 * injected
    # without the reset model the line cannot take the anomaly and the fit goes wrong
    assert without_model > 2 * with_model


def test_correction_is_applied_to_the_original_ramps(exposures) -> None:
    """The anomaly stays in emicorr's output (the reset step removes it, once); RESET is recorded."""
    emi, _ = exposures
    resolver = ReferenceResolver.default()
    on = EmiCorrStep(skip=False, reset_model=True)(emi, resolver)
    meta = on.attrs["meta"]
    assert meta["cal_step"]["emicorr"] == "COMPLETE"
    assert meta["ref_file"]["reset"]["name"] != "N/A"
    # off: jwst parity, the RESET file is neither resolved nor recorded
    off = EmiCorrStep(skip=False)(emi, resolver)
    assert "reset" not in off.attrs["meta"].get("ref_file", {})
    assert EmiCorrStep().reftypes == ("emicorr",)
    assert EmiCorrStep(reset_model=True).reftypes == ("emicorr", "reset")

    with dask.config.set(scheduler="synchronous"):
        change = (on["sci"].values - emi["sci"].values).astype(np.float64)
    reset = _reference("reset", emi)["sci"].values
    anomaly = np.abs(np.nan_to_num(reset[:, 0])).max()
    assert anomaly > 50.0  # the simulated exposure's first group carries it
    # emicorr changed the data by the EMI only, a few DN, not by the anomaly
    assert np.abs(change - change.mean(axis=1, keepdims=True)).max() < 4 * EMI_AMPLITUDE
