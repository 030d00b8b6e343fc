"""MIRI ``emicorr``: kernels, the EMICORR reader, the lazy step, closure and the jwst oracle.

The synthetic exposures are MIRI SUB256 FASTR1 ramps (flat sky, Gaussian read noise) with EMI
injected from an *analytic* waveform evaluated at each read's absolute time, in pixel clocks:
``integration · (ngroups · frame + reset frame) + group · frame + row · rowclocks + column // 4``
(four amplifiers read four columns at once). The step only sees the waveform sampled in the
reference file, so the closure tests its timing model, its fit and its interpolation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oracle.jwst_runner import network_isolation_prefix, offline_crds_env
from webbflow.detectors import MIRI_SUBARRAYS
from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError, UsageError
from webbflow.io.reffiles.emicorr import case_name, select_case, write_emicorr
from webbflow.io.reffiles.opener import open_reference
from webbflow.steps.emicorr.fit import fit_emi
from webbflow.steps.emicorr.kernel import EmiComponent, emi_sums, read_phase, subtract_emi
from webbflow.steps.emicorr.step import EmiCorrStep, Timing
from webbflow.testing import make_exposure, raise_if_dask_computes

SUB256 = MIRI_SUBARRAYS["SUB256"]
ROWCLOCKS, FRAMECLOCKS = 96, 29952  # jwst's SUB256 case
FRAME = SUB256.ysize * ROWCLOCKS + (1024 - SUB256.ysize) * 7  # = FRAMECLOCKS
READ_NOISE = 6.5 / np.sqrt(2)  # DN per read (MIRIMAGE CDS noise 6.5 DN)
#: name -> (Hz, injected amplitude DN, injected phase, harmonic mix): two real MIRI frequencies
FREQS = {"Hz218a": (218.52055, 8.0, 0.37, 0.3), "Hz164": (164.9305, 5.0, 0.81, -0.2)}
CASES = {
    "SUB256": {
        "rowclocks": ROWCLOCKS,
        "frameclocks": FRAMECLOCKS,
        "freqs": {"FAST": ["Hz218a", "Hz164"], "SLOW": {"MIRIMAGE": ["Hz218a"]}},
    },
    "FULL_SLOW": {"rowclocks": 2333, "frameclocks": 2388992, "freqs": {"SLOW": {"MIRIMAGE": ["Hz164"]}}},
}


def shape(phase: np.ndarray, mix: float) -> np.ndarray:
    """Unit EMI waveform at ``phase`` (periods): a fundamental plus a second harmonic."""
    return np.sin(2 * np.pi * phase) + mix * np.cos(4 * np.pi * phase + 0.4)


def write_reference(path: Path, nsamples: int = 229) -> Path:
    """An EMICORR file with unit-amplitude waveforms of :data:`FREQS` (``nsamples`` each)."""
    phases = (np.arange(nsamples) + 0.5) / nsamples
    freqs = {name: (hz, shape(phases, mix)) for name, (hz, _, _, mix) in FREQS.items()}
    return write_emicorr(path, freqs, CASES)


def miri_meta(readpatt: str = "FASTR1") -> dict[str, Any]:
    """webbflow meta of a MIRI imager SUB256 exposure."""
    return {
        "instrument": {
            "name": "MIRI",
            "detector": "MIRIMAGE",
            "filter": "F770W",
            "module": "",
            "channel": "",
        },
        "exposure": {"type": "MIR_IMAGE", "readpatt": readpatt, "nsamples": 1},
        "subarray": {
            "name": "SUB256",
            "xstart": SUB256.xstart,
            "ystart": SUB256.ystart,
            "fastaxis": 1,
            "slowaxis": 2,
        },
    }


def injected_emi(nint: int, ngroup: int, freqs: dict[str, tuple[float, float, float, float]]) -> np.ndarray:
    """(integration, group, y, x) float64 EMI, DN, from each read's absolute time."""
    i, g, r, c = np.ix_(np.arange(nint), np.arange(ngroup), np.arange(SUB256.ysize), np.arange(SUB256.xsize))
    clocks = i * (ngroup * FRAME + FRAMECLOCKS) + g * FRAME + r * ROWCLOCKS + c // 4
    total = np.zeros((nint, ngroup, SUB256.ysize, SUB256.xsize))
    for hz, amp, phi, mix in freqs.values():
        total += amp * shape(clocks * 1e-5 * hz + phi, mix)
    return total


def synthetic(nint: int = 2, ngroup: int = 10, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(ramp with EMI float32, injected EMI float64): sky 30 DN/group, read noise."""
    rng = np.random.default_rng(seed)
    sky = 15000.0 + 30.0 * np.arange(ngroup)[None, :, None, None]
    noise = rng.normal(0.0, READ_NOISE, (nint, ngroup, SUB256.ysize, SUB256.xsize))
    emi = injected_emi(nint, ngroup, FREQS)
    return (sky + noise + emi).astype(np.float32), emi


# -- kernels ---------------------------------------------------------------------------------
def test_read_phase_is_shared_by_the_four_amplifiers() -> None:
    phase = read_phase(np.arange(3), np.arange(8), rowclocks=96, nsamples=9, period=400.0)
    assert (phase[:, 0:4] == phase[:, [0]]).all() and (phase[:, 4:8] == phase[:, [4]]).all()
    np.testing.assert_allclose(phase[1, 4], ((96 + 9) / 400.0) % 1)
    np.testing.assert_allclose(phase[2, 0], (192 / 400.0) % 1)


def test_emi_sums_add_up_exactly_over_any_split() -> None:
    sci, _ = synthetic(nint=2, ngroup=5)
    sci = sci[:, :, :40, :48]
    pdq = np.zeros(sci.shape[2:], np.uint32)
    pdq[3, 20] = 1
    before = sci.copy()
    kw: dict[str, Any] = dict(threshold=1e9, rowclocks=ROWCLOCKS, nsamples=1, period=457.6, nbins=50)
    whole = emi_sums(sci, pdq, np.arange(40), np.arange(48), **kw)
    top = emi_sums(sci[:, :, :17], pdq[:17], np.arange(17), np.arange(48), **kw)
    bottom = emi_sums(sci[:, :, 17:], pdq[17:], np.arange(17, 40), np.arange(48), **kw)
    np.testing.assert_array_equal(whole.ysum, top.ysum + bottom.ysum)
    np.testing.assert_array_equal(whole.npix, top.npix + bottom.npix)
    # every pixel but the flagged one and the 8 columns of samples 1 and 2, in each integration
    assert whole.npix.sum() == 2 * (40 * 40 - 1)
    np.testing.assert_array_equal(sci, before)
    quiet = emi_sums(sci, pdq, np.arange(40), np.arange(48), **(kw | {"threshold": 0.0}))
    assert quiet.npix.sum() == 0


def test_fit_recovers_phase_and_amplitude_from_sums() -> None:
    nbins, ngroup, nint = 64, 6, 3
    wave = shape((np.arange(nbins) + 0.5) / nbins, 0.3)
    dgroup, dint = 0.3137, 0.71
    centres = (np.arange(nbins) + 0.5) / nbins
    t = np.arange(ngroup)
    true_phase, amp = 0.62, 4.0
    phase = centres[None, :, None] + t * dgroup + np.arange(nint)[:, None, None] * dint + true_phase
    npix = np.full((nint, nbins), 7)
    ramps = npix[..., None] * (100 + 3.0 * t + amp * shape(phase, 0.3))  # lines drop out
    fit = fit_emi(np.rint(ramps * 2**16).astype(np.int64), npix, wave, dphase_group=dgroup, dphase_int=dint)
    np.testing.assert_allclose(fit.amplitudes, amp, rtol=2e-3)
    np.testing.assert_allclose(fit.phases, (true_phase + np.arange(nint) * dint) % 1, atol=2e-3)
    sep = fit_emi(
        np.rint(ramps * 2**16).astype(np.int64),
        npix,
        wave,
        dphase_group=dgroup,
        dphase_int=dint,
        separate=True,
    )
    np.testing.assert_allclose(sep.amplitudes, amp, rtol=2e-3)
    # a waveform in step with the frame (dphase 0) is a constant per ramp: nothing to fit
    flat = fit_emi(np.rint(ramps * 2**16).astype(np.int64), npix, wave, dphase_group=0.0, dphase_int=0.0)
    assert (flat.amplitudes == 0).all()


def test_subtract_emi_leaves_input_alone() -> None:
    sci = np.full((1, 2, 2, 8), 100.0, np.float32)
    comp = EmiComponent(np.array([1.0, 1.0, 1.0, 1.0]), 400.0, 0.25, np.array([0.0]), np.array([2.0]))
    out = subtract_emi(sci, np.arange(2), np.arange(8), rowclocks=96, nsamples=1, components=[comp]).sci
    np.testing.assert_allclose(out, 98.0)
    assert (sci == 100.0).all() and out.dtype == np.float32


# -- reference reader ----------------------------------------------------------------------------
def test_reference_cases(tmp_path: Path) -> None:
    ds = make_exposure(np.zeros((1, 3, 4, 4)), meta=miri_meta())
    ref = open_reference(RefFile("emicorr", write_reference(tmp_path / "emi.asdf"), "emi.asdf"), ds)
    case = select_case(ref, "SUB256", "FASTR1", "MIRIMAGE")
    assert case is not None and (case.rowclocks, case.frameclocks) == (ROWCLOCKS, FRAMECLOCKS)
    assert [(f.name, f.frequency, f.waveform.size) for f in case.frequencies] == [
        ("Hz218a", 218.52055, 229),
        ("Hz164", 164.9305, 229),
    ]
    slow = select_case(ref, "FULL", "SLOWR1", "MIRIMAGE")
    assert case_name("FULL", "SLOWR1") == "FULL_SLOW" and slow is not None
    assert [f.name for f in slow.frequencies] == ["Hz164"]
    assert select_case(ref, "SUB64", "FASTR1", "MIRIMAGE") is None
    assert select_case(ref, "SUB256", "SLOWR1", "MIRIFULONG") is None
    bad = tmp_path / "bad.asdf"
    bad.write_text("not asdf")
    with pytest.raises(ReferenceFileError, match=r"bad\.asdf"):
        open_reference(RefFile("emicorr", bad, "bad.asdf"), ds)


# -- step -----------------------------------------------------------------------------------------
def test_step_is_lazy_and_skips_where_jwst_does(tmp_path: Path) -> None:
    ref = str(write_reference(tmp_path / "emi.asdf"))
    sci, _ = synthetic(nint=1, ngroup=4)
    ds = make_exposure(sci, meta=miri_meta(), chunks=(64, 128))
    with raise_if_dask_computes():
        out = EmiCorrStep(skip=False, override_emicorr=ref)(ds)
    assert out.attrs["meta"]["cal_step"]["emicorr"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["emicorr"]["name"] == ref
    assert out["sci"].chunks == ds["sci"].chunks
    assert EmiCorrStep()(ds).attrs["meta"]["cal_step"]["emicorr"] == "SKIPPED"  # jwst 3.0 default
    fast = make_exposure(sci, meta=miri_meta("FAST"))
    assert (
        EmiCorrStep(skip=False, override_emicorr=ref)(fast).attrs["meta"]["cal_step"]["emicorr"] == "COMPLETE"
    )
    for skipped in (
        make_exposure(sci, meta=miri_meta("FASTGRPAVG")),  # not a corrected pattern
        make_exposure(sci[:, :2], meta=miri_meta()),  # < 3 groups
        make_exposure(sci, meta=miri_meta() | {"subarray": {"name": "SUB64"}}),  # no case
        make_exposure(np.zeros((1, 4, 8, 8), np.float32)),  # near infrared
    ):
        assert (
            EmiCorrStep(skip=False, override_emicorr=ref)(skipped).attrs["meta"]["cal_step"]["emicorr"]
            == "SKIPPED"
        )
    with pytest.raises(UsageError, match="sequential"):
        EmiCorrStep(skip=False, algorithm="sequential", override_emicorr=ref)(ds)


def test_timing_matches_the_subarray_frame() -> None:
    ds = make_exposure(np.zeros((1, 5, SUB256.ysize, SUB256.xsize)), meta=miri_meta())
    timing = Timing(ds, ROWCLOCKS, FRAMECLOCKS)
    assert timing.frame == FRAMECLOCKS == FRAME and timing.reset == FRAMECLOCKS
    # 390.625 Hz has a 256-clock period, which divides SUB256's frame: invisible in ramps
    assert timing.dphases(256.0)[0] == 0.0


def test_closure_removes_injected_emi_below_read_noise(tmp_path: Path) -> None:
    ref = str(write_reference(tmp_path / "emi.asdf"))
    sci, emi = synthetic(nint=2, ngroup=10)
    outs = []
    for chunks in ((SUB256.ysize, SUB256.xsize), (48, 100)):  # one tile; ragged tiles
        ds = make_exposure(sci, meta=miri_meta(), chunks=chunks)
        outs.append(EmiCorrStep(skip=False, override_emicorr=ref)(ds)["sci"].values)
    np.testing.assert_array_equal(outs[0], outs[1])  # tiling-independent, bit for bit
    residual = (sci.astype(np.float64) - outs[0]) - emi  # removed minus injected
    print(
        f"EMI rms {emi.std():.3f} DN; residual pattern max {np.abs(residual).max():.4f} DN, "
        f"rms {residual.std():.4f} DN; read noise {READ_NOISE:.2f} DN/read"
    )
    assert emi.std() > READ_NOISE  # the injected pattern is above the noise
    assert np.abs(residual).max() < 0.05 * READ_NOISE


# -- oracle ---------------------------------------------------------------------------------------
JWST_SCRIPT = """
import json, sys, warnings
import numpy as np
from stdatamodels.jwst import datamodels
from jwst.emicorr import EmiCorrStep

warnings.simplefilter("ignore", DeprecationWarning)
stem, ref = sys.argv[1], sys.argv[2]
arrays = np.load(stem + ".npz")
meta = json.load(open(stem + ".json"))
model = datamodels.RampModel(data=arrays["sci"].copy(), pixeldq=arrays["pixeldq"].copy(),
                             groupdq=np.zeros(arrays["sci"].shape, np.uint8))
for path, value in meta.items():
    node = model.meta
    *parents, leaf = path.split(".")
    for part in parents:
        node = getattr(node, part)
    setattr(node, leaf, value)
out = EmiCorrStep.call(model, skip=False, override_emicorr=ref)
np.save(stem + "_jwst.npy", out.data)
json.dump({"emicorr": out.meta.cal_step.emicorr}, open(stem + "_status.json", "w"))
"""

JWST_META = {
    "instrument.name": "MIRI",
    "instrument.detector": "MIRIMAGE",
    "instrument.filter": "F770W",
    "exposure.type": "MIR_IMAGE",
    "exposure.readpatt": "FASTR1",
    "exposure.nsamples": 1,
    "exposure.nframes": 1,
    "exposure.groupgap": 0,
    "subarray.name": "SUB256",
    "subarray.xstart": SUB256.xstart,
    "subarray.ystart": SUB256.ystart,
    "subarray.xsize": SUB256.xsize,
    "subarray.ysize": SUB256.ysize,
    "subarray.fastaxis": 1,
    "subarray.slowaxis": 2,
    "observation.date": "2026-01-01",
    "observation.time": "00:00:00",
}


@pytest.mark.oracle
def test_oracle_jwst_emicorr(tmp_path: Path) -> None:
    """jwst 3.0's EmiCorrStep (joint) on the same ramps and EMICORR file as ours.

    Compared: the corrected ``sci`` (every read of every pixel), and each one's removed
    pattern against the injected one. Not bit-identical by design (see the step's docstring).
    """
    pytest.importorskip("jwst")
    ref = write_reference(tmp_path / "miri_emicorr.asdf")
    sci, emi = synthetic(nint=2, ngroup=10, seed=11)
    nint, ngroup = sci.shape[:2]
    pdq = np.zeros(sci.shape[2:], np.uint32)
    stem = str(tmp_path / "case")
    np.savez(stem + ".npz", sci=sci, pixeldq=pdq)
    meta = JWST_META | {"exposure.nints": nint, "exposure.ngroups": ngroup}
    Path(stem + ".json").write_text(json.dumps(meta))
    env = {**os.environ, **offline_crds_env(tmp_path / "crds")}
    cmd = [*network_isolation_prefix(), sys.executable, "-c", JWST_SCRIPT, stem, str(ref)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(Path(stem + "_status.json").read_text()) == {"emicorr": "COMPLETE"}
    theirs = np.load(stem + "_jwst.npy")

    ds = make_exposure(sci, pixeldq=pdq, meta=miri_meta(), chunks=(64, 128))
    ours = EmiCorrStep(skip=False, override_emicorr=str(ref))(ds)["sci"].values
    diff = ours.astype(np.float64) - theirs
    res_ours = np.abs((sci - ours.astype(np.float64)) - emi).max()
    res_jwst = np.abs((sci - theirs.astype(np.float64)) - emi).max()
    print(
        f"ours - jwst: max |d| {np.abs(diff).max():.4f} DN "
        f"({np.abs(diff).max() / READ_NOISE:.4f} read noise), "
        f"rms {diff.std():.4f} DN; residual vs injected: ours {res_ours:.4f}, jwst {res_jwst:.4f} DN"
    )
    assert theirs.dtype == np.float32 and not np.array_equal(theirs, sci)  # jwst did correct
    assert np.abs(diff).max() < 0.1 * READ_NOISE
    assert res_ours <= res_jwst + 0.01
