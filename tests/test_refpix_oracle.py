"""Oracle tests: webbflow's refpix against jwst 3.0's ``RefPixStep`` on the same ramps.

jwst runs in a child process with an offline CRDS (``override_refpix``/``override_sirskernel``
= N/A: the NIR median algorithm needs no reference file), so this process never imports jwst.
Agreement: a pixel agrees when within 1e-3 DN or 1e-4 relative; at least 99.9 % must.
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
from webbflow import dq
from webbflow.steps.refpix.kernel import is_reference
from webbflow.steps.refpix.step import RefPixStep
from webbflow.testing import make_exposure

pytestmark = pytest.mark.oracle

#: Child-process script: read each case's npz + json, run jwst's RefPixStep, save the output.
JWST_SCRIPT = """
import json, sys
import numpy as np
from stdatamodels.jwst import datamodels
from jwst.refpix import RefPixStep

for stem in sys.argv[1:]:
    arrays = np.load(stem + ".npz")
    case = json.load(open(stem + ".json"))
    model = datamodels.RampModel(data=arrays["sci"], pixeldq=arrays["pixeldq"],
                                 groupdq=np.zeros(arrays["sci"].shape, np.uint8))
    for path, value in case["meta"].items():
        node = model.meta
        *parents, leaf = path.split(".")
        for part in parents:
            node = getattr(node, part)
        setattr(node, leaf, value)
    out = RefPixStep.call(model, override_refpix="N/A", override_sirskernel="N/A", **case["params"])
    np.save(stem + "_jwst.npy", out.data)
    print(stem, out.meta.cal_step.refpix)
"""


def ramp_case(seed: int, shape: tuple[int, int, int, int], ystart: int, xstart: int, rows_are_y: bool) -> Any:
    """Bias-subtracted-like ramps with amplifier/parity offsets, 1/f row drifts, bad pixels."""
    rng = np.random.default_rng(seed)
    nint, ngroup, ny, nx = shape
    y = np.arange(ystart - 1, ystart - 1 + ny)
    x = np.arange(xstart - 1, xstart - 1 + nx)
    rows, cols = (y, x) if rows_are_y else (x, y)
    sci = rng.normal(0, 6, shape)
    amp_offsets = rng.uniform(-30, 30, (nint, ngroup, 4))[..., np.minimum(cols // 512, 3)]
    amp_offsets += np.where(cols % 2 == 0, 0.0, 4.0)
    drift = np.cumsum(rng.normal(0, 0.8, (nint, ngroup, 2048)), axis=-1)[..., rows]  # 1/f-like
    if rows_are_y:
        sci += amp_offsets[..., None, :] + drift[..., :, None]
    else:
        sci += amp_offsets[..., :, None] + drift[..., None, :]
    ref = is_reference(y)[:, None] | is_reference(x)[None, :]
    sci[..., ~ref] += rng.uniform(0, 500, (nint, ngroup, int((~ref).sum())))
    hot = rng.integers(0, [ny, nx], (40, 2))
    sci[..., hot[:, 0], hot[:, 1]] += 3000.0  # some land on reference pixels: clipped
    pixeldq = np.zeros((ny, nx), np.uint32)
    bad = rng.integers(0, [ny, nx], (max(ny * nx // 1000, 5), 2))
    pixeldq[bad[:, 0], bad[:, 1]] = dq.DO_NOT_USE
    return sci.astype(np.float32), pixeldq, ref


def run_jwst(
    tmp_path: Path, cases: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]]
) -> dict:
    """jwst's refpix output of every case ``name -> (sci, pixeldq, meta, params)``."""
    pytest.importorskip("jwst")
    stems = []
    for name, (sci, pixeldq, meta, params) in cases.items():
        stem = str(tmp_path / name)
        np.savez(stem + ".npz", sci=sci, pixeldq=pixeldq)
        Path(stem + ".json").write_text(json.dumps({"meta": meta, "params": params}))
        stems.append(stem)
    env = {**os.environ, **offline_crds_env(tmp_path / "crds")}
    cmd = [*network_isolation_prefix(), sys.executable, "-c", JWST_SCRIPT, *stems]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: np.load(stem + "_jwst.npy") for name, stem in zip(cases, stems, strict=True)}


def jwst_meta(
    shape: tuple[int, ...], ystart: int, xstart: int, noutputs: int, instrument: dict[str, Any]
) -> dict:
    nint, ngroup, ny, nx = shape
    full = (ny, nx) == (2048, 2048)
    return {
        "instrument.name": instrument["name"],
        "instrument.detector": instrument["detector"],
        "exposure.type": instrument["exp_type"],
        "exposure.readpatt": "RAPID" if instrument["name"] == "NIRCAM" else "NISRAPID",
        "exposure.nints": nint,
        "exposure.ngroups": ngroup,
        "exposure.nframes": 1,
        "exposure.groupgap": 0,
        "exposure.noutputs": noutputs,
        "subarray.name": "FULL" if full else instrument["subarray"],
        "subarray.xstart": xstart,
        "subarray.ystart": ystart,
        "subarray.xsize": nx,
        "subarray.ysize": ny,
        "subarray.fastaxis": instrument["fastaxis"],
        "subarray.slowaxis": instrument["slowaxis"],
        "observation.date": "2026-01-01",
        "observation.time": "00:00:00",
    }


NRCA1 = {
    "name": "NIRCAM",
    "detector": "NRCA1",
    "exp_type": "NRC_IMAGE",
    "fastaxis": -1,
    "slowaxis": 2,
    "subarray": "SUBGRISM64",
}
NIS = {
    "name": "NIRISS",
    "detector": "NIS",
    "exp_type": "NIS_IMAGE",
    "fastaxis": -2,
    "slowaxis": -1,
    "subarray": "SUB64",
}


def compare(tmp_path: Path, specs: dict[str, dict[str, Any]]) -> None:
    """Run every case through webbflow and jwst; print and assert the agreement."""
    cases = {}
    ours = {}
    for name, spec in specs.items():
        inst, shape, ystart, xstart = spec["inst"], spec["shape"], spec["ystart"], spec["xstart"]
        sci, pixeldq, ref = ramp_case(spec["seed"], shape, ystart, xstart, abs(inst["fastaxis"]) == 1)
        # jwst finds subarray reference pixels by the REFERENCE_PIXEL flag (set by dq_init)
        jwst_dq = pixeldq | np.where(ref, np.uint32(dq.REFERENCE_PIXEL), np.uint32(0))
        meta = jwst_meta(shape, ystart, xstart, spec["noutputs"], inst)
        cases[name] = (sci, jwst_dq, meta, spec.get("params", {}))
        ours_meta = {
            "instrument": {"name": inst["name"], "detector": inst["detector"]},
            "exposure": {"noutputs": spec["noutputs"]},
            "subarray": {
                "name": meta["subarray.name"],
                "xstart": xstart,
                "ystart": ystart,
                "fastaxis": inst["fastaxis"],
                "slowaxis": inst["slowaxis"],
            },
        }
        ds = make_exposure(sci, pixeldq=pixeldq, meta=ours_meta, chunks=spec.get("chunks", 256))
        ours[name] = RefPixStep(**spec.get("params", {}))(ds).sci.values
    theirs = run_jwst(tmp_path, cases)
    for name in specs:
        diff = np.abs(ours[name].astype(np.float64) - theirs[name])
        ok = (diff <= 1e-3) | (diff <= 1e-4 * np.abs(theirs[name]))
        print(f"refpix oracle {name}: {ok.mean():.6%} of pixels agree, max |diff| {diff.max():.3g} DN")
        assert ok.mean() >= 0.999, name


def test_subarrays_match_jwst(tmp_path: Path) -> None:
    compare(
        tmp_path,
        {
            "stripe_top": dict(
                inst=NRCA1,
                shape=(2, 3, 64, 2048),
                ystart=1985,
                xstart=1,
                noutputs=4,
                seed=1,
                chunks=(16, 300),
            ),
            "stripe_mid": dict(
                inst=NRCA1,
                shape=(1, 2, 64, 2048),
                ystart=1001,
                xstart=1,
                noutputs=4,
                seed=2,
                params={"side_smoothing_length": 10, "side_gain": 0.7},
            ),
            "corner_1out": dict(
                inst=NRCA1, shape=(2, 3, 64, 64), ystart=1, xstart=1985, noutputs=1, seed=3, chunks=20
            ),
            "flipped_rows": dict(
                inst={**NRCA1, "detector": "NRCA2", "fastaxis": 1, "slowaxis": -2},
                shape=(1, 2, 64, 2048),
                ystart=1985,
                xstart=1,
                noutputs=4,
                seed=7,
            ),
            "niriss_sub64": dict(inst=NIS, shape=(1, 3, 64, 64), ystart=1, xstart=1, noutputs=1, seed=4),
        },
    )


@pytest.mark.slow
def test_full_frame_matches_jwst(tmp_path: Path) -> None:
    compare(
        tmp_path,
        {
            "nrca1_full": dict(inst=NRCA1, shape=(1, 2, 2048, 2048), ystart=1, xstart=1, noutputs=4, seed=5),
            "nis_full": dict(
                inst=NIS,
                shape=(1, 2, 2048, 2048),
                ystart=1,
                xstart=1,
                noutputs=4,
                seed=6,
                params={"odd_even_columns": False},
            ),
        },
    )
