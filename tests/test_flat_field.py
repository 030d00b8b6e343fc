"""flat_field: kernel vs hand calculation, laziness, tiling, DQ rules, parameters, jwst oracle.

Also holds the rate-level builders that ``test_photom.py`` imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from _step_checks import FakeResolver, assert_kernel_pure, build_lazily, computed
from webbflow import dq
from webbflow.errors import InputError, UsageError
from webbflow.steps.flat_field.kernel import flat_field_kernel, prepare_flat
from webbflow.steps.flat_field.step import FlatFieldStep
from webbflow.testing import DEFAULT_META, make_reference

PLANES = ("sci", "err", "dq", "var_poisson", "var_rnoise")


def make_rate(
    ny: int = 12,
    nx: int = 14,
    *,
    nints: int = 2,
    chunks: Any = None,
    seed: int = 0,
    origin: tuple[int, int] = (1000, 900),
    meta: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A lazy rate + rateints exposure of NRCA1 (subarray at 0-based ``origin``) with random planes.

    A few pixels are NaN (``DO_NOT_USE``) or flagged otherwise, to exercise the DQ logic.
    """
    rng = np.random.default_rng(seed)
    ty, tx = (ny, nx) if chunks is None else chunks
    full = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_META.items()}
    full["subarray"] = {
        **full["subarray"],
        "name": "SUBARRAY",
        "xstart": origin[1] + 1,
        "ystart": origin[0] + 1,
        "xsize": nx,
        "ysize": ny,
    }
    full["exposure"] = {**full["exposure"], "nints": nints}
    for key, value in (meta or {}).items():
        full[key] = {**full.get(key, {}), **value}
    data: dict[str, Any] = {}
    for suffix, shape, dims in (
        ("", (ny, nx), ("y", "x")),
        ("_ints", (nints, ny, nx), ("integration", "y", "x")),
    ):
        sci = rng.normal(5.0, 2.0, shape).astype(np.float32)
        vp = rng.uniform(0.01, 0.2, shape).astype(np.float32)
        vr = rng.uniform(0.01, 0.05, shape).astype(np.float32)
        dqa = np.zeros(shape, np.uint32)
        dqa[..., 1, 2] = 4  # JUMP_DET, still usable
        dqa[..., 3, 4] = 1  # DO_NOT_USE with NaN values
        sci[..., 3, 4] = np.nan
        vp[..., 3, 4] = np.nan
        vr[..., 3, 4] = np.nan
        planes = {"sci": sci, "err": np.sqrt(vp + vr), "dq": dqa, "var_poisson": vp, "var_rnoise": vr}
        chunk = (*shape[:-2], ty, tx)
        for name, arr in planes.items():
            data[name + suffix] = (dims, da.from_array(arr, chunks=chunk))
    coords = {
        "integration": np.arange(1, nints + 1, dtype=np.int32),
        "y": np.arange(origin[0], origin[0] + ny, dtype=np.int32),
        "x": np.arange(origin[1], origin[1] + nx, dtype=np.int32),
    }
    return xr.Dataset(data, coords=coords, attrs={"meta": full})


def run_jwst_step(step: str, rate: Path, out: Path, overrides: Mapping[str, str], crds_root: Path) -> None:
    """Run ``jwst.<step>`` (``FlatFieldStep``/``PhotomStep``) offline in a subprocess on ``rate``."""
    from oracle.jwst_runner import offline_crds_env

    module = {"FlatFieldStep": "jwst.flatfield", "PhotomStep": "jwst.photom"}[step]
    code = (
        "import json, sys\n"
        f"from {module} import {step}\n"
        "args = json.loads(sys.argv[1])\n"
        f"res = {step}.call(args['rate'], **args['overrides'])\n"
        "res.save(args['out'])\n"
    )
    env = {**os.environ, **offline_crds_env(crds_root)}
    payload = json.dumps({"rate": str(rate), "out": str(out), "overrides": dict(overrides)})
    done = subprocess.run(
        [sys.executable, "-c", code, payload], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"jwst {step} failed:\n{done.stderr[-3000:]}")


# -- builders ----------------------------------------------------------------------------------
def make_flat(rate: xr.Dataset, seed: int = 1) -> xr.Dataset:
    """A FLAT reference Dataset for ``rate``: values near 1 with NaN, 0, negative and flagged pixels."""
    ny, nx = rate.sizes["y"], rate.sizes["x"]
    rng = np.random.default_rng(seed)
    sci = rng.uniform(0.8, 1.2, (ny, nx)).astype(np.float32)
    err = (0.01 * sci).astype(np.float32)
    fdq = np.zeros((ny, nx), np.uint32)
    sci[0, 0] = np.nan
    sci[0, 1] = 0.0
    sci[0, 2] = -0.5  # used as it is, as jwst does
    fdq[2, 0] = dq.NO_FLAT_FIELD
    fdq[2, 1] = dq.LOW_QE
    fdq[2, 2] = dq.DO_NOT_USE
    return make_reference({"sci": (("y", "x"), sci), "err": (("y", "x"), err), "dq": (("y", "x"), fdq)}, rate)


# -- kernel ------------------------------------------------------------------------------------
def test_prepare_flat_rules() -> None:
    flat = np.array([[np.nan, 0.0, -0.5, 2.0, 3.0, 4.0]], np.float32)
    fdq = np.array([[0, 0, 0, dq.NO_FLAT_FIELD, dq.DO_NOT_USE, dq.LOW_QE]], np.uint32)
    out = assert_kernel_pure(
        prepare_flat, {"flat": flat, "flat_dq": fdq}, do_not_use=dq.DO_NOT_USE, no_flat_field=dq.NO_FLAT_FIELD
    )
    np.testing.assert_array_equal(out.flat, [[1, 1, -0.5, 1, 1, 4]])
    both = dq.DO_NOT_USE | dq.NO_FLAT_FIELD
    np.testing.assert_array_equal(out.dq, [[both, both, 0, both, dq.DO_NOT_USE, dq.LOW_QE]])


def test_kernel_matches_hand_calculation() -> None:
    sci = np.array([[10.0, 4.0, 7.0]], np.float32)
    vp, vr = np.array([[1.0, 0.5, 0.2]], np.float32), np.array([[0.25, 0.1, 0.3]], np.float32)
    flat = np.array([[2.0, 0.5, 1.0]], np.float32)
    ferr = np.array([[0.2, 0.05, 0.0]], np.float32)
    sdq = np.array([[0, dq.JUMP_DET, 0]], np.uint32)
    fdq = np.array([[dq.LOW_QE, 0, dq.NO_FLAT_FIELD]], np.uint32)
    arrays = {"sci": sci, "dq": sdq, "var_poisson": vp, "var_rnoise": vr, "flat": flat, "flat_err": ferr}
    out = assert_kernel_pure(
        flat_field_kernel,
        {**arrays, "flat_dq": fdq},
        do_not_use=dq.DO_NOT_USE,
        no_flat_field=dq.NO_FLAT_FIELD,
    )
    # pixel 0: 10 / 2 = 5; var_flat = 5² (0.2/2)² = 0.25; var_poisson 1/4, var_rnoise 0.25/4
    np.testing.assert_allclose(out.sci[0, :2], [5.0, 8.0], rtol=1e-7)
    np.testing.assert_allclose(out.var_flat[0, :2], [0.25, 64 * 0.01], rtol=1e-6)
    np.testing.assert_allclose(out.var_poisson[0, :2], [0.25, 2.0], rtol=1e-7)
    np.testing.assert_allclose(out.var_rnoise[0, :2], [0.0625, 0.4], rtol=1e-7)
    np.testing.assert_allclose(out.err[0, 0], np.sqrt(0.25 + 0.0625 + 0.25), rtol=1e-6)
    assert out.dq[0, 0] == dq.LOW_QE and out.dq[0, 1] == dq.JUMP_DET
    # pixel 2: NO_FLAT_FIELD -> not corrected, flagged DO_NOT_USE, hence NaN everywhere
    assert out.dq[0, 2] == dq.NO_FLAT_FIELD | dq.DO_NOT_USE
    assert all(
        np.isnan(getattr(out, p)[0, 2]) for p in ("sci", "err", "var_poisson", "var_rnoise", "var_flat")
    )
    assert all(getattr(out, p).dtype == np.float32 for p in ("sci", "err", "var_flat"))
    assert out.dq.dtype == np.uint32


def test_kernel_inverse_undoes_the_flat() -> None:
    rng = np.random.default_rng(3)
    sci, vp, vr = (rng.uniform(1, 2, (3, 4, 5)).astype(np.float32) for _ in range(3))
    flat = rng.uniform(0.5, 1.5, (4, 5)).astype(np.float32)
    zero = np.zeros((4, 5), np.float32)
    bits = {"do_not_use": dq.DO_NOT_USE, "no_flat_field": dq.NO_FLAT_FIELD}
    sdq, fdq = np.zeros((3, 4, 5), np.uint32), np.zeros((4, 5), np.uint32)
    fwd = flat_field_kernel(sci, sdq, vp, vr, flat, zero, fdq, **bits)
    back = flat_field_kernel(
        fwd.sci, sdq, fwd.var_poisson, fwd.var_rnoise, flat, zero, fdq, inverse=True, **bits
    )
    np.testing.assert_allclose(back.sci, sci, rtol=1e-6)
    np.testing.assert_allclose(back.var_poisson, vp, rtol=1e-6)
    np.testing.assert_array_equal(back.var_flat, 0)
    np.testing.assert_allclose(back.err, np.sqrt(back.var_poisson + back.var_rnoise), rtol=1e-7)


# -- step --------------------------------------------------------------------------------------
def test_step_lazy_and_tiling_invariant() -> None:
    outputs = []
    for chunks in (None, (5, 4)):
        rate = make_rate(chunks=chunks)
        with_flat = build_lazily(FlatFieldStep(), rate, {"flat": make_flat(rate)})
        outputs.append(computed(with_flat))
    one, many = outputs
    assert {"var_flat", "var_flat_ints"} <= one.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], many[name], err_msg=name)


def test_step_on_rate_and_rateints_and_records_meta() -> None:
    rate = make_rate(chunks=(5, 4))
    flat = make_flat(rate)
    out = FlatFieldStep()(rate, FakeResolver({"flat": flat}))
    assert out.attrs["meta"]["cal_step"]["flat_field"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["flat"]["name"] == "test_ref.fits"
    f = flat["sci"].values
    good = np.isfinite(f) & (f != 0) & ((flat["dq"].values & (dq.DO_NOT_USE | dq.NO_FLAT_FIELD)) == 0)
    for suffix in ("", "_ints"):
        expected = rate["sci" + suffix].values / np.where(good, f, 1)
        ok = ~np.isnan(expected) & good
        np.testing.assert_allclose(out["sci" + suffix].values[ok], expected[ok], rtol=1e-6)
        dq_out = out["dq" + suffix].values
        assert (dq_out[..., ~good] & dq.DO_NOT_USE).all()
        assert np.isnan(out["sci" + suffix].values[..., ~good]).all()
        assert (dq_out[..., 2, 1] & dq.LOW_QE).all()
        assert (dq_out[..., 1, 2] & dq.JUMP_DET).all()


def test_params_and_errors() -> None:
    with pytest.raises(UsageError, match="override_flat"):
        FlatFieldStep(user_supplied_flat="my_flat.fits")
    with pytest.raises(UsageError, match="NIRSpec"):
        FlatFieldStep(save_interpolated_flat=True)
    with pytest.raises(UsageError, match="inverse"):
        FlatFieldStep(invers=True)
    ramp = xr.Dataset({"sci": (("integration", "group", "y", "x"), np.zeros((1, 2, 3, 3), np.float32))})
    with pytest.raises(InputError, match="ramp_fit"):
        FlatFieldStep().build(ramp, {})


def test_params_match_jwst() -> None:
    configobj = pytest.importorskip("configobj")
    flatfield = pytest.importorskip("jwst.flatfield")
    spec = configobj.ConfigObj(flatfield.FlatFieldStep.spec.splitlines(), list_values=False)
    ours = {name: f.default for name, f in FlatFieldStep.Params.fields().items()}
    jwst_step = flatfield.FlatFieldStep()
    assert set(ours) == {*spec, "skip"}
    for name in spec:
        assert ours[name] == getattr(jwst_step, name), name


# -- oracle ------------------------------------------------------------------------------------
def write_rate(rate: xr.Dataset, path: Path) -> Path:
    """Write the ``rate`` product of ``rate`` (its (y, x) planes) to ``path``."""
    from webbflow.engine.execute import compute_products
    from webbflow.io.products import fits_product

    compute_products([fits_product(rate, path, "rate")], progress=False)
    return path


def compare(ours: Mapping[str, np.ndarray], path: Path, names: tuple[str, ...]) -> dict[str, float]:
    """Largest relative difference per plane (NaNs must coincide; DQ must be equal)."""
    from astropy.io import fits

    diffs: dict[str, float] = {}
    with fits.open(path) as hdul:
        for name in names:
            theirs = np.asarray(hdul[name.upper()].data)
            mine = ours[name]
            if name == "dq":
                np.testing.assert_array_equal(mine, theirs, err_msg=name)
                diffs[name] = float(np.count_nonzero(mine != theirs))
                continue
            np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs), err_msg=f"{name} NaNs")
            ok = ~np.isnan(mine)
            scale = np.maximum(np.abs(theirs[ok]), 1e-30)
            diffs[name] = float(np.max(np.abs(mine[ok] - theirs[ok]) / scale)) if ok.any() else 0.0
    return diffs


@pytest.mark.oracle
def test_oracle_jwst_flat_field(tmp_path: Path) -> None:
    pytest.importorskip("jwst.flatfield")
    from webbflow.io.fits_reader import open_product
    from webbflow.io.reffiles import ReferenceResolver, default_reference

    path = write_rate(
        make_rate(64, 80, chunks=(32, 40), origin=(0, 0)).drop_dims("integration"), tmp_path / "t_rate.fits"
    )
    rate = open_product(path)
    flat_file = default_reference("flat", "NRCA1")
    ours = computed(FlatFieldStep(override_flat=str(flat_file))(rate, ReferenceResolver(use_crds=False)))
    run_jwst_step(
        "FlatFieldStep",
        path,
        tmp_path / "jwst_cal.fits",
        {"override_flat": str(flat_file), **{f"override_{r}": "N/A" for r in ("fflat", "sflat", "dflat")}},
        tmp_path / "crds",
    )
    diffs = compare(
        ours, tmp_path / "jwst_cal.fits", ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat")
    )
    print("flat_field vs jwst, max relative difference:", diffs)
    assert max(diffs.values()) <= 1e-6
