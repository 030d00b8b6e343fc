"""dark_current with MIRI per-integration darks (``DarkMIRIModel``, 4-D).

By hand on a tiny synthetic dark, then the embedded default MIRI dark on a SUB64
ramp (lazy, tiling-invariant), and an oracle: jwst 3.0's ``DarkCurrentStep`` on
the same ramps with the same default dark file, compared bit for bit.
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

from _step_checks import assert_kernel_pure, build_lazily
from oracle.jwst_runner import network_isolation_prefix, offline_crds_env
from oracle.miri_meta import SUB64, jwst_meta, sub64_meta
from webbflow import dq
from webbflow.io.reffiles import defaults
from webbflow.io.reffiles.miri_detector import cut_to_subarray
from webbflow.steps.dark_current.kernel import dark_kernel_by_integration
from webbflow.steps.dark_current.step import DarkCurrentStep, dark_integrations
from webbflow.testing import make_exposure, make_reference, raise_if_dask_computes

NY, NX = 6, 5


def miri_meta(**exposure: Any) -> dict[str, Any]:
    """webbflow meta of a MIRI imager SUB64 FASTR1 exposure."""
    return sub64_meta(nframes=1, groupgap=0, **exposure)


def tiny_dark() -> np.ndarray:
    """(2, 4, NY, NX): dark integration i, group g holds 10 (i + 1) + g DN."""
    values = 10.0 * np.arange(1, 3)[:, None] + np.arange(4)[None, :]
    return np.broadcast_to(values[:, :, None, None], (2, 4, NY, NX)).astype(np.float32).copy()


def test_kernel_by_hand() -> None:
    sci = np.full((3, 4, NY, NX), 100, np.float32)
    dark = tiny_dark()
    dark[0, 1, 2, 2] = np.nan
    dark_dq = np.zeros((NY, NX), np.uint32)
    dark_dq[1, 1] = dq.HOT
    planes = np.arange(4)[:, None]
    out = dark_kernel_by_integration(
        sci, np.zeros((NY, NX), np.uint32), dark, dark_dq, planes=planes, dark_integration=np.array([0, 1, 1])
    )
    np.testing.assert_array_equal(out.sci[0, :, 0, 0], [90, 89, 88, 87])
    np.testing.assert_array_equal(out.sci[1, :, 0, 0], [80, 79, 78, 77])
    np.testing.assert_array_equal(out.sci[2, :, 0, 0], [80, 79, 78, 77])  # later ints: last dark int
    assert out.sci[0, 1, 2, 2] == 100  # NaN dark: no correction
    assert out.pixeldq[1, 1] == dq.HOT and out.pixeldq.sum() == dq.HOT
    assert_kernel_pure(
        dark_kernel_by_integration,
        {"sci": sci, "pixeldq": dark_dq * 0, "dark": dark, "dark_dq": dark_dq},
        planes=planes,
        dark_integration=np.array([0, 1, 1]),
    )


def test_integration_rule() -> None:
    ds = make_exposure(np.zeros((4, 3, NY, NX), np.float32), meta=miri_meta())
    np.testing.assert_array_equal(dark_integrations(ds, 2), [0, 1, 1, 1])
    np.testing.assert_array_equal(dark_integrations(ds, 1), [0, 0, 0, 0])
    segment = make_exposure(np.zeros((2, 3, NY, NX), np.float32), meta=miri_meta(integration_start=3))
    np.testing.assert_array_equal(dark_integrations(segment, 2), [1, 1])  # not the first: last dark int
    first = make_exposure(np.zeros((2, 3, NY, NX), np.float32), meta=miri_meta(integration_start=1))
    np.testing.assert_array_equal(dark_integrations(first, 2), [0, 1])


def test_step_by_hand_is_lazy() -> None:
    sci = np.full((3, 4, NY, NX), 100, np.float32)
    ds = make_exposure(sci, meta=miri_meta(), chunks=(4, 3))
    ref = make_reference(
        {
            "sci": (("dark_integration", "dark_group", "y", "x"), tiny_dark()),
            "dq": (("y", "x"), np.zeros((NY, NX), np.uint32)),
        },
        ds,
        header={"NFRAMES": 1, "GROUPGAP": 0},
        name="miri_dark.fits",
    )
    out = build_lazily(DarkCurrentStep(), ds, {"dark": ref})
    np.testing.assert_array_equal(out.sci.values[:, 2, 3, 4], [88, 78, 78])


def sub64_ramp(nints: int, ngroups: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random SUB64 ramp (sci, groupdq, pixeldq) at raw MIRI levels."""
    rng = np.random.default_rng(seed)
    shape = (nints, ngroups, SUB64.ysize, SUB64.xsize)
    ramp = 12000.0 + np.arange(ngroups)[:, None, None] * rng.uniform(5, 400, shape[2:])
    sci = (ramp[None] + rng.normal(0, 5, shape)).astype(np.float32)
    gdq = np.where(rng.random(shape) < 0.01, dq.JUMP_DET, 0).astype(np.uint8)
    pdq = np.where(rng.random(shape[2:]) < 0.02, dq.DEAD | dq.DO_NOT_USE, 0).astype(np.uint32)
    return sci, gdq, pdq


def test_default_dark_through_resolver_is_tiling_invariant() -> None:
    sci, gdq, pdq = sub64_ramp(3, 6, 1)
    outs = []
    for chunks in (None, (24, 40), (17, 13)):
        ds = make_exposure(sci, groupdq=gdq, pixeldq=pdq, meta=miri_meta(), chunks=chunks)
        with raise_if_dask_computes():
            out = DarkCurrentStep()(ds)
        outs.append(out)
    ref = outs[0].attrs["meta"]["ref_file"]["dark"]["name"]
    assert "webbflow_mirimage_dark_10f" in ref
    for other in outs[1:]:
        np.testing.assert_array_equal(other.sci.values, outs[0].sci.values)
        np.testing.assert_array_equal(other.pixeldq.values, outs[0].pixeldq.values)
    removed = sci - outs[0].sci.values
    # the dark grows along the ramp, and integration 1's is larger than the later ones'
    good = (pdq == 0) & ((outs[0].pixeldq.values & (dq.HOT | dq.WARM)) == 0)
    good &= (outs[0].x.values >= 4)[None, :]  # SUB64 holds reference columns 0-3: no dark there
    np.testing.assert_array_equal(removed[:, :, :, :4], 0.0)
    assert np.all(np.diff(removed[:, :, good], axis=1) > 0)
    assert np.all(removed[0, -1, good] > removed[1, -1, good])
    np.testing.assert_allclose(removed[1], removed[2], rtol=0, atol=2e-3)  # float32 rounding at 12000 DN


JWST_SCRIPT = r"""
import json, sys, warnings
import numpy as np
from stdatamodels.jwst import datamodels
from jwst.dark_current import DarkCurrentStep

warnings.simplefilter("ignore")
for stem in sys.argv[1:]:
    arrays = np.load(stem + ".npz")
    case = json.load(open(stem + ".json"))
    m = datamodels.RampModel(data=arrays["sci"].copy(), pixeldq=arrays["pixeldq"].copy(),
                             groupdq=arrays["groupdq"].copy())
    for path, value in case["meta"].items():
        node = m.meta
        *parents, leaf = path.split(".")
        for part in parents:
            node = getattr(node, part)
        setattr(node, leaf, value)
    res = DarkCurrentStep.call(m, override_dark=case["dark"])
    np.savez(stem + "_jwst.npz", sci=res.data, pixeldq=res.pixeldq, groupdq=res.groupdq)
    json.dump({"status": res.meta.cal_step.dark_sub}, open(stem + "_status.json", "w"))
"""


#: name -> (NINTS of the exposure, ngroups, integrations in the data, INTSTART)
ORACLE_CASES = {"three_ints": (3, 6, 3, None), "one_int": (1, 4, 1, None), "segment": (5, 6, 2, 3)}


@pytest.mark.oracle
def test_oracle_against_jwst(tmp_path: Path) -> None:
    pytest.importorskip("jwst")
    full = defaults.default_reference("dark", "MIRIMAGE", 10)
    dark = cut_to_subarray(full, tmp_path / "dark_sub64.fits", "SUB64")  # jwst does not cut darks
    cases: dict[str, Any] = {}
    for seed, (name, (nints, ngroups, nint_data, int_start)) in enumerate(ORACLE_CASES.items()):
        sci, gdq, pdq = sub64_ramp(nint_data, ngroups, seed + 10)
        stem = str(tmp_path / name)
        np.savez(stem + ".npz", sci=sci, groupdq=gdq, pixeldq=pdq)
        meta = jwst_meta(nints, ngroups, nint_data, int_start)
        Path(stem + ".json").write_text(json.dumps({"meta": meta, "dark": str(dark)}))
        exposure: dict[str, Any] = {}
        if int_start is not None:
            exposure = {"integration_start": int_start, "integration_end": int_start + nint_data - 1}
        ds = make_exposure(sci, groupdq=gdq, pixeldq=pdq, meta=miri_meta(**exposure), chunks=(24, 40))
        ds.attrs["meta"]["exposure"]["nints"] = nints
        cases[name] = (stem, ds)
    env = {**os.environ, **offline_crds_env(tmp_path / "crds")}
    cmd = [*network_isolation_prefix(), sys.executable, "-c", JWST_SCRIPT, *(s for s, _ in cases.values())]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, (stem, ds) in cases.items():
        theirs = np.load(stem + "_jwst.npz")
        assert json.loads(Path(stem + "_status.json").read_text())["status"] == "COMPLETE"
        out = DarkCurrentStep(override_dark=str(dark))(ds)
        diff = float(np.abs(out.sci.values - theirs["sci"]).max())
        print(f"MIRI dark_current vs jwst ({name}): max |diff| = {diff:.3g} DN")
        np.testing.assert_array_equal(out.sci.values, theirs["sci"], err_msg=name)
        np.testing.assert_array_equal(out.pixeldq.values, theirs["pixeldq"], err_msg=name)
        np.testing.assert_array_equal(out.groupdq.values, theirs["groupdq"], err_msg=name)


def test_subarray_cut_equals_full_frame_crop(tmp_path: Path) -> None:
    sci, gdq, pdq = sub64_ramp(2, 5, 3)
    ds = make_exposure(sci, groupdq=gdq, pixeldq=pdq, meta=miri_meta(), chunks=(24, 40))
    full = defaults.default_reference("dark", "MIRIMAGE", 10)
    cut = cut_to_subarray(full, tmp_path / "dark_sub64.fits", "SUB64")
    a = DarkCurrentStep(override_dark=str(full))(ds)
    b = DarkCurrentStep(override_dark=str(cut))(ds)
    np.testing.assert_array_equal(a.sci.values, b.sci.values)
    np.testing.assert_array_equal(a.pixeldq.values, b.pixeldq.values)
