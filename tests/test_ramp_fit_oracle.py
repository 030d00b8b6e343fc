"""ramp_fit against stcal's OLS_C ramp fit (the jwst implementation) on random ramps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from webbflow import dq
from webbflow.steps.ramp_fit.step import RampFitStep
from webbflow.testing import make_exposure, make_reference

pytest.importorskip("stcal")

QUANTITIES = (("slope", "sci"), ("var_poisson", "var_poisson"), ("var_rnoise", "var_rnoise"), ("err", "err"))


def random_ramps(
    seed: int, nint: int, ngroup: int, ny: int = 24, nx: int = 20, group_time: float = 10.73677
) -> dict[str, np.ndarray]:
    """Noisy ramps (DN) with flagged jumps, saturation, DO_NOT_USE/PERSISTENCE/CHARGELOSS flags."""
    rng = np.random.default_rng(seed)
    gain = rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32)
    readnoise = rng.uniform(4.0, 12.0, (ny, nx)).astype(np.float32)
    rate = rng.lognormal(0.0, 2.0, (ny, nx)).astype(np.float32)  # DN/s, ~0.01 .. 1000
    electrons = rng.poisson(rate * gain * group_time, (nint, ngroup, ny, nx))
    signal = np.cumsum(electrons, axis=1) / gain
    sci = 1000.0 + signal + rng.normal(0, 1, signal.shape) * readnoise
    gdq = np.zeros(sci.shape, np.uint8)
    hits = rng.random(sci.shape) < 0.03
    hits[:, 0] = False
    sci += np.cumsum(np.where(hits, rng.uniform(200, 3000, sci.shape), 0.0), axis=1)
    gdq[hits] |= dq.JUMP_DET
    sat_level = np.where(rng.random((ny, nx)) < 0.2, 1000 + rng.uniform(50, 3000, (ny, nx)), 6.0e4)
    gdq[np.maximum.accumulate(sci > sat_level, axis=1)] |= dq.SATURATED
    gdq[rng.random(sci.shape) < 0.01] |= dq.DO_NOT_USE
    gdq[rng.random(sci.shape) < 0.005] |= dq.PERSISTENCE
    gdq[rng.random(sci.shape) < 0.02] |= dq.CHARGELOSS | dq.DO_NOT_USE
    pdq = np.zeros((ny, nx), np.uint32)
    pdq[rng.random((ny, nx)) < 0.02] |= dq.DO_NOT_USE | dq.HOT
    pdq[rng.random((ny, nx)) < 0.02] |= dq.WARM
    gain[0, 0] = 0.0
    gain[1, 1] = np.nan
    zeroframe = (0.25 * sci[:, 0]).astype(np.float32)
    zeroframe[:, ::3] = 0.0  # no zero-frame value
    return {
        "sci": sci.astype(np.float32),
        "groupdq": gdq,
        "pixeldq": pdq,
        "gain": gain,
        "readnoise": readnoise,
        "zeroframe": zeroframe,
    }


def stcal_fit(
    ramps: dict[str, np.ndarray], exposure: dict[str, Any], suppress_one_group: bool, firstgroup: int | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """stcal's OLS_C fit (as jwst's RampFitStep calls it) on copies of ``ramps``."""
    from stcal.ramp_fitting import ramp_fit, ramp_fit_class

    gdq = ramps["groupdq"].copy()
    if firstgroup is not None:
        gdq[:, :firstgroup] |= dq.DO_NOT_USE
    flags = {
        name: dq.FLAGS[name]
        for name in (
            "DO_NOT_USE",
            "SATURATED",
            "JUMP_DET",
            "PERSISTENCE",
            "NO_GAIN_VALUE",
            "UNRELIABLE_SLOPE",
            "CHARGELOSS",
        )
    }
    rd = ramp_fit_class.RampData()
    rd.set_arrays(
        ramps["sci"].copy(),
        gdq,
        ramps["pixeldq"].copy(),
        np.zeros(gdq.shape[2:], np.float32),
        orig_gdq=gdq.copy() if np.any(gdq & dq.CHARGELOSS) else None,
        zeroframe=ramps["zeroframe"].copy(),
    )
    rd.set_meta(
        name="NIRCAM",
        frame_time=exposure["frame_time"],
        group_time=exposure["group_time"],
        groupgap=exposure["groupgap"],
        nframes=exposure["nframes"],
        drop_frames1=0,
    )
    rd.algorithm = "OLS_C"
    rd.set_dqflags(flags)
    rd.start_row, rd.num_rows = 0, gdq.shape[2]
    rd.suppress_one_group_ramps = suppress_one_group and gdq.shape[1] > 1
    image, integ, _ = ramp_fit.ramp_fit_data(
        rd, False, ramps["readnoise"].copy(), ramps["gain"].copy(), "OLS_C", "optimal", "1"
    )
    return image, integ


CASES = [  # seed, nint, ngroup, nframes, suppress_one_group, firstgroup
    (1, 3, 8, 1, True, None),
    (2, 2, 10, 4, False, None),
    (3, 4, 3, 1, True, None),
    (4, 2, 3, 2, False, None),
    (5, 3, 2, 1, True, None),
    (6, 2, 1, 1, True, None),
    (7, 2, 9, 1, True, 2),
]


@pytest.mark.parametrize(("seed", "nint", "ngroup", "nframes", "suppress", "firstgroup"), CASES)
def test_matches_stcal_ols_c(
    seed: int, nint: int, ngroup: int, nframes: int, suppress: bool, firstgroup: int | None
) -> None:
    ramps = random_ramps(seed, nint, ngroup)
    frame_time = 10.73677 / nframes
    exposure = {
        "nframes": nframes,
        "frame_time": frame_time,
        "group_time": frame_time * nframes,
        "groupgap": 0,
        "drop_frames1": 0,
    }
    image, integ = stcal_fit(ramps, exposure, suppress, firstgroup)
    ds = make_exposure(
        ramps["sci"],
        groupdq=ramps["groupdq"],
        pixeldq=ramps["pixeldq"],
        zeroframe=ramps["zeroframe"],
        meta={"exposure": exposure},
        chunks=(10, 7),
    )
    refs = {
        "readnoise": make_reference({"sci": (("y", "x"), ramps["readnoise"])}, ds),
        "gain": make_reference({"sci": (("y", "x"), ramps["gain"])}, ds),
    }
    out = RampFitStep(suppress_one_group=suppress, firstgroup=firstgroup).build(ds, refs).compute()
    report = []
    for theirs, ours in QUANTITIES:
        for suffix, ref in (("", image), ("_ints", integ)):
            close = np.isclose(out[ours + suffix].values, ref[theirs], rtol=1e-4, atol=0, equal_nan=True)
            report.append(f"{ours}{suffix}={close.mean():.5f}")
            threshold = 0.999 if theirs == "slope" else 0.99
            assert close.mean() >= threshold, (ours + suffix, close.mean())
    dq_rate = np.mean(out.dq.values == image["dq"])
    dq_ints = np.mean(out.dq_ints.values == integ["dq"])
    print(f"case {seed}: within 1e-4 relative: {', '.join(report)}; dq={dq_rate:.5f} dq_ints={dq_ints:.5f}")
    assert dq_rate == 1.0 and dq_ints == 1.0
